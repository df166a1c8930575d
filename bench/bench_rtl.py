"""Verilator vs the Numba simulator on the same Program: simulated cycles per wall second.

Builds a bundle (`hdl.bundle.write_bundle`) of a random sparse problem, compiles it with
Verilator, runs it, runs `sim.simulate` (warm JIT, median of 5), asserts identical cycle
counts and output, and prints one JSON line.

    python bench/bench_rtl.py [--o 200 --n 160 --c 32 --h 16 --rows 4 --cols 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accel.compiler import build_memory, compile_problem  # noqa: E402
from accel.config import HardwareConfig  # noqa: E402
from accel.contract import make_contract  # noqa: E402
from accel.problem import make_problem  # noqa: E402
from accel.reference import reference  # noqa: E402
from hdl.bundle import write_bundle  # noqa: E402
from sim import simulate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--o", type=int, default=200)
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--c", type=int, default=32)
    ap.add_argument("--h", type=int, default=16)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    a = sp.random(args.o, args.n, args.density, random_state=1, format="csr",
                  data_rvs=lambda k: rng.integers(-128, 128, k))
    x = rng.integers(-128, 128, (args.n, args.c))
    w = rng.integers(-128, 128, (args.c, args.h))
    problem = make_problem(a, x, w, make_contract("exact"), "bench-rtl")
    cfg = HardwareConfig(rows=args.rows, cols=args.cols, lmem_depth=256, out_bank_depth=128,
                         stream_fifo_depth=16, load_fifo_depth=16, dram_bytes_per_cycle=64,
                         dram_latency_cycles=20)
    prog = compile_problem(problem, cfg)
    mem = build_memory(problem, prog)
    order = prog.meta["order"]
    y = reference(problem, order)
    simulate(prog, mem)                                   # JIT warm-up
    times = []
    for _ in range(5):
        t = time.perf_counter()
        res = simulate(prog, mem)
        times.append(time.perf_counter() - t)
    sim_s = statistics.median(times)
    with tempfile.TemporaryDirectory() as d:
        write_bundle(d, cfg, prog, mem, y)
        t = time.perf_counter()
        subprocess.run(["verilator", "--binary", "-j", "2", "-f", "files.f", "--top-module",
                        "tb"], cwd=d, check=True, capture_output=True)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        out = subprocess.run(["./obj_dir/Vtb"], cwd=d, check=True, capture_output=True,
                             text=True).stdout
        vl_s = time.perf_counter() - t
    lines = [ln for ln in out.splitlines() if ln.startswith("AXW_")]
    rtl_cycles = int(lines[0].split()[1])
    assert lines[1] == "AXW_PASS", out
    assert rtl_cycles == res.cycles, (rtl_cycles, res.cycles)
    print(json.dumps({
        "problem": f"o={args.o} n={args.n} c={args.c} h={args.h} density={args.density}",
        "array": f"{args.rows}x{args.cols}", "order": order, "cycles": res.cycles,
        "cycles_equal": True, "sim_seconds": round(sim_s, 6),
        "sim_cycles_per_s": round(res.cycles / sim_s),
        "verilator_build_seconds": round(build_s, 2), "verilator_run_seconds": round(vl_s, 4),
        "verilator_cycles_per_s": round(res.cycles / vl_s),
        "sim_over_verilator": round(vl_s / sim_s, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
