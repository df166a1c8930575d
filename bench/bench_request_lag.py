"""What deciding memory requests ahead costs in cycles (``request_lag_cycles`` and
``credit_lag_cycles``, rule 0), and registering the PEs' local-memory reads
(``lmem_read_cycles`` 2: one more cycle of PE latency).

A lag of d lets the hardware register every request d times before its arbitration; the
machine pays for it where a request waits on a grant it does not know yet.  A credit lag
(grants decided against the credit of the cycle before) lets it register the grants; the
machine pays for it where the bandwidth binds.  For each built-in workload's first
problem, bandwidth and memory-stall rate, simulates lags 0..4 and lags 3 and 4 with the
credit lag ("3c", "4c"), and lags 0, 4c, 6c and 7c with ``lmem_read_cycles`` 2 ("0r",
"4cr", "6cr", "7cr": the lags a writeback pipelined down the request's stages would
need, docs/rtl.md *Session 20*), on
the default 8×8 configuration (and on one with 8-entry FIFOs,
whose round trip the lag lengthens) and prints one JSON line per case: the cycles per
lag, and the ratio to lag 0; then the largest and smallest ratio per lag and FIFO depth.

    python bench/bench_request_lag.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accel.compiler import build_memory, compile_problem  # noqa: E402
from accel.config import HardwareConfig  # noqa: E402
from accel.workloads import get_workload  # noqa: E402
from sim import simulate  # noqa: E402

WORKLOADS = ("gcn-cora-like", "gat-cora-like", "resnet18-conv2_1a")
# name: (request_lag_cycles, credit_lag_cycles, lmem_read_cycles)
LAGS = {"0": (0, 0, 1), "1": (1, 0, 1), "2": (2, 0, 1), "3": (3, 0, 1), "4": (4, 0, 1),
        "3c": (3, 1, 1), "4c": (4, 1, 1), "0r": (0, 0, 2), "4cr": (4, 1, 2),
        "6cr": (6, 1, 2), "7cr": (7, 1, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="B = 64 only, no stalls")
    args = ap.parse_args(argv)
    bands = (64,) if args.quick else (64, 16, 4)
    stalls = (0,) if args.quick else (0, 300)
    worst: dict = {}
    best: dict = {}
    t0 = time.perf_counter()
    for wl in WORKLOADS:
        problem = get_workload(wl)[0]
        for fifo in (128, 8):
            for B in bands:
                for pm in stalls:
                    cycles = {}
                    for lag, (d, k, r) in LAGS.items():
                        cfg = HardwareConfig(dram_bytes_per_cycle=B, stream_fifo_depth=fifo,
                                             load_fifo_depth=fifo, request_lag_cycles=d,
                                             credit_lag_cycles=k, lmem_read_cycles=r)
                        prog = compile_problem(problem, cfg, "a(xw)")
                        cycles[lag] = simulate(prog, build_memory(problem, prog),
                                               stall_permille=pm).cycles
                    ratio = {d: cycles[d] / cycles["0"] for d in LAGS}
                    w = worst.setdefault(f"fifo_depth_{fifo}", {})
                    b = best.setdefault(f"fifo_depth_{fifo}", {})
                    for d in LAGS:
                        w[d] = max(w.get(d, 1.0), round(ratio[d], 5))
                        b[d] = min(b.get(d, 1.0), round(ratio[d], 5))
                    print(json.dumps({"workload": wl, "fifo_depth": fifo,
                                      "dram_bytes_per_cycle": B, "stall_permille": pm,
                                      "cycles": cycles,
                                      "ratio_to_lag0": {d: round(r, 5) for d, r in ratio.items()}}),
                          flush=True)
    print(json.dumps({"summary": {"max_ratio_to_lag0": worst, "min_ratio_to_lag0": best,
                                  "wall_s": round(time.perf_counter() - t0, 1)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
