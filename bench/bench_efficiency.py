"""Efficiency benchmark: cycles against the ideal with ample bandwidth, one JSON line a case.

The ideal is the useful MACs of the cheaper association order (X's zeros skipped) over
rows·cols.  Cases: GCN layer 1 (hidden 16) on Citeseer, Pubmed (density-matched
features) and as20graph (Cora-density binary features), and dense ResNet-18 conv layers,
each on 8×8 and 16×16 arrays with ``--dram-bytes-per-cycle 1024``.  Every case is checked
bit-exact against the reference.  The issue's bar is ``cycles_over_ideal <= 1.15``.

    python bench/bench_efficiency.py [--bytes-per-cycle 1024] [--sizes 8 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from accel.compiler import build_memory, compile_problem  # noqa: E402
from accel.config import HardwareConfig  # noqa: E402
from accel.loaders import density_matched_features, load_other, load_planetoid  # noqa: E402
from accel.reference import reference  # noqa: E402
from accel.workloads import RESNET18_CONV2_X_NOPAD, RESNET18_LAYERS, conv_from_shape, gcn_layer  # noqa: E402
from sim import simulate  # noqa: E402


def gcn_cases(seed: int = 0):
    for ds in ("citeseer", "pubmed"):
        p = load_planetoid(ds)
        yield f"gcn-{ds}", gcn_layer(p.adj, p.matched_features(seed), hidden=16, seed=seed,
                                      name=f"gcn-{ds}")
    adj = load_other("as20graph")
    x = density_matched_features(adj.shape[0], 1433, 0.0127, seed)
    yield "gcn-as20graph", gcn_layer(adj, x, hidden=16, seed=seed, name="gcn-as20graph")


def conv_cases(seed: int = 0):
    yield "resnet18-conv2_x-nopad", conv_from_shape(RESNET18_CONV2_X_NOPAD, seed)
    by_name = {s.name: s for s in RESNET18_LAYERS}
    for name in ("conv3_1b", "conv4_1b", "conv5_1b"):
        if name in by_name:
            yield f"resnet18-{name}", conv_from_shape(by_name[name], seed)


def measure(name, problem, cfg):
    t0 = time.perf_counter()
    prog = compile_problem(problem, cfg)
    t1 = time.perf_counter()
    res = simulate(prog, build_memory(problem, prog))
    t2 = time.perf_counter()
    y = res.memory[prog.tensor_id("Y")]
    exact = bool(np.array_equal(y, reference(problem, prog.meta["order"])))
    useful = prog.meta["useful_macs_by_order"]
    ideal = min(useful.values()) / cfg.pes
    return {"case": name, "rows": cfg.rows, "cols": cfg.cols,
            "dram_bytes_per_cycle": cfg.dram_bytes_per_cycle, "order": prog.meta["order"],
            "cycles": res.cycles, "ideal_cycles": round(ideal, 1),
            "cycles_over_ideal": round(res.cycles / ideal, 4),
            "utilization": round(res.stats["utilization"], 4),
            "balance": round(res.stats["balance"], 4), "bit_exact": exact,
            "compile_s": round(t1 - t0, 3), "simulate_s": round(t2 - t1, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes-per-cycle", type=int, default=1024)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--only", choices=["gcn", "conv"], default=None)
    a = ap.parse_args(argv)
    cases = []
    if a.only in (None, "gcn"):
        cases += list(gcn_cases())
    if a.only in (None, "conv"):
        cases += list(conv_cases())
    worst = 0.0
    ok = True
    for name, prob in cases:
        for size in a.sizes:
            cfg = HardwareConfig(rows=size, cols=size, dram_bytes_per_cycle=a.bytes_per_cycle)
            rec = measure(name, prob, cfg)
            worst = max(worst, rec["cycles_over_ideal"])
            ok &= rec["bit_exact"]
            print(json.dumps(rec), flush=True)
    print(json.dumps({"summary": "efficiency", "worst_cycles_over_ideal": worst,
                      "all_bit_exact": ok, "target": 1.15}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
