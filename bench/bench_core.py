"""Benchmark of the core issue: `accel run` on the standard workloads, one JSON line each.

Every case runs `accel run` in a fresh subprocess (so peak RSS is that run's own) after one
warm-up run that fills Numba's on-disk cache, ``--repeats`` times (default 3).  Printed per
case: median and minimum wall seconds of the whole command, peak RSS, cycles, useful MACs,
simulated MACs per second (inside the run, and again in this process with the kernel
already loaded: ``*_warm``),
cycles over the ideal (useful MACs of the cheaper order / PEs), and bit_exact.

    python bench/bench_core.py                       # all cases
    python bench/bench_core.py --case resnet18-conv2_x-nopad
    python bench/bench_core.py --case resnet18-conv2_x-nopad --peer scalesim   # + SCALE-Sim

With ``--peer scalesim`` the same layer and array also run under SCALE-Sim 3 (PyPI package
``scalesim``, which needs numpy < 2: install it in its own venv and pass that interpreter as
``--peer-python``) and the ratios of wall time and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    # name: accel run arguments
    "gcn-cora-8x8": ["--workload", "gcn-cora", "--rows", "8", "--cols", "8"],
    "gcn-pubmed-8x8": ["--workload", "gcn-pubmed", "--rows", "8", "--cols", "8"],
    "resnet18-conv2_x-nopad": ["--workload", "resnet18-conv2_x-nopad", "--rows", "8",
                               "--cols", "8"],
    "gcn-scale-1M-10M": ["--workload", "gcn-scale", "--rows", "16", "--cols", "16"],
}


def run_measured(cmd: list[str], env=None) -> tuple[float, int, int]:
    """Run ``cmd``; return (wall seconds, peak RSS bytes of the child, exit code).

    The child's output goes to temporary files (a pipe that nobody reads while waiting
    would block a chatty child); its stderr is shown when it fails."""
    if env is None:
        # Python's default: compiled bytecode is kept (the warm-up run writes it), as on a
        # user's machine; some shells here set PYTHONDONTWRITEBYTECODE, which would make
        # every measured run recompile the project's modules from source
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace")[-4000:])
    return wall, usage.ru_maxrss * 1024, code


def accel_cmd(args: list[str], out: Path) -> list[str]:
    # the core job: compile, simulate, check, write the run folder; the HTML report that
    # `accel run` also draws by default (matplotlib, about 1.5 s) is left out
    return [sys.executable, "-m", "accel", "run", *args, "--no-report", "--out", str(out)]


def bench_case(name: str, args: list[str], extra: list[str], repeats: int) -> dict:
    walls, rsss = [], []
    with tempfile.TemporaryDirectory(prefix="axw-bench-") as tmp:
        warm = Path(tmp) / "warm"
        run_measured(accel_cmd(args + extra, warm))          # fills the JIT cache
        for k in range(repeats):
            out = Path(tmp) / f"run{k}"
            wall, rss, code = run_measured(accel_cmd(args + extra, out))
            if code != 0:
                return {"case": name, "error": f"accel run exited {code}"}
            walls.append(wall)
            rsss.append(rss)
        stats = json.loads((out / "stats.json").read_text())
    walls.sort()
    wall, rss = walls[len(walls) // 2], max(rsss)
    sim_s = stats.get("wall_seconds", {}).get("simulate")
    rec = {
        "case": name,
        "wall_s": round(wall, 3),
        "wall_s_min": round(walls[0], 3),
        "repeats": repeats,
        "peak_rss_mb": round(rss / 2**20, 1),
        "cycles": stats["cycles"],
        "useful_macs": stats["useful_macs"],
        "sim_macs_per_s": round(stats["useful_macs"] / sim_s) if sim_s else None,
        "sim_cycles_per_s": round(stats["cycles"] / sim_s) if sim_s else None,
        "utilization": round(stats["utilization"], 4),
        "cycles_over_ideal": [round(l["cycles_over_ideal"], 4) for l in stats["layers"]],
        "bit_exact": stats["bit_exact"],
        "wall_seconds": stats.get("wall_seconds"),
    }
    return rec


def sim_throughput(args: list[str]) -> dict:
    """Simulator alone, in this process, kernel already loaded: cycles and MACs per second."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from accel.compiler import build_memory, compile_problem
    from accel.config import HardwareConfig
    from accel.workloads import get_workload
    import sim

    opts = dict(zip(args[::2], args[1::2]))
    cfg = HardwareConfig(rows=int(opts.get("--rows", 8)), cols=int(opts.get("--cols", 8)))
    problem = get_workload(opts["--workload"])[0]
    program = compile_problem(problem, cfg)
    memory = build_memory(problem, program)
    sim.warm_up()
    t0 = time.perf_counter()
    res = sim.simulate(program, memory)
    dt = time.perf_counter() - t0
    return {"sim_s_warm": round(dt, 3), "sim_cycles_per_s_warm": round(res.cycles / dt),
            "sim_macs_per_s_warm": round(res.stats["useful_macs"] / dt)}


_SCALESIM_CFG = """[general]
run_name = conv2_x

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    64
FilterSramSzkB:   64
OfmapSramSzkB:    64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : os
Bandwidth : 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
FilterCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def bench_scalesim(rows: int, cols: int, python: str) -> dict:
    """SCALE-Sim 3 on ResNet-18 conv2_x (56×56×64, 3×3, 64 filters, stride 1, no padding)
    on a rows×cols output-stationary array, run with ``python`` (an interpreter that has
    the PyPI package ``scalesim``; it needs numpy < 2, so a separate venv)."""
    with tempfile.TemporaryDirectory(prefix="axw-scalesim-") as tmp:
        tmp = Path(tmp)
        topo = tmp / "topo.csv"
        topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\nconv2_x, 56, 56, 3, 3, 64, 64, 1,\n")
        (tmp / "scale.cfg").write_text(_SCALESIM_CFG.format(rows=rows, cols=cols))
        cmd = [python, "-m", "scalesim.scale", "-c", str(tmp / "scale.cfg"), "-t", str(topo),
               "-l", str(topo), "-p", str(tmp / "out")]
        wall, rss, code = run_measured(cmd)
    return {"peer": "scalesim", "layer": "resnet18 conv2_x nopad", "rows": rows, "cols": cols,
            "wall_s": round(wall, 1), "peak_rss_mb": round(rss / 2**20, 1), "exit_code": code}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES),
                    help="case to run (repeatable; default: all)")
    ap.add_argument("--peer", choices=["scalesim"], help="also run a peer simulator")
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter that has the peer installed (default: this one)")
    ap.add_argument("--dram-bytes-per-cycle", type=int, default=None)
    ap.add_argument("--no-warm-throughput", action="store_true",
                    help="skip the in-process simulator throughput measurement")
    ap.add_argument("--repeats", type=int, default=3,
                    help="measured runs per case; the median wall time is reported")
    a = ap.parse_args(argv)
    extra = [] if a.dram_bytes_per_cycle is None else \
        ["--dram-bytes-per-cycle", str(a.dram_bytes_per_cycle)]
    results = []
    for name in a.case or list(CASES):
        rec = bench_case(name, CASES[name], extra, a.repeats)
        if "error" not in rec and not a.no_warm_throughput:
            rec.update(sim_throughput(CASES[name]))
        results.append(rec)
        print(json.dumps(rec), flush=True)
    if a.peer == "scalesim":
        peer = bench_scalesim(8, 8, a.peer_python)
        mine = next((r for r in results if r["case"] == "resnet18-conv2_x-nopad"), None)
        if mine and "wall_s" in peer:
            peer["wall_ratio_peer_over_accel"] = round(peer["wall_s"] / mine["wall_s"], 1)
            peer["rss_ratio_peer_over_accel"] = round(peer["peak_rss_mb"] / mine["peak_rss_mb"], 1)
        print(json.dumps(peer), flush=True)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
