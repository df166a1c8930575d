"""Runs problems end to end (compile, simulate, check the reference) and writes one run's results.

:func:`evaluate` does all the work in memory; :func:`write_run` writes a finished
:class:`RunResult` to a folder; :func:`run_problems` is the two together.  Nothing is
written until every layer has been compiled, simulated and checked, and every file is
written atomically, so a run that fails leaves no partial results behind.

Folder layout (``stats.json`` is written last)::

    output.npy             final Y (o × h, int64)
    layer{k}_output.npy    each layer's simulated Y, when there is more than one layer
    program/program.*      the Program (one layer), or layer{k}/program.* (several)
    config.json            HardwareConfig.to_json()
    summary.md             reports.summary.render_summary
    stats.json             totals over layers plus ``layers``: per-layer statistics
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reports.summary import render_summary

from .compiler import build_memory, compile_problem
from .config import HardwareConfig
from .errors import AxwError
from .fileio import atomic_save_npy, atomic_write_text
from .problem import Problem
from .program import Program
from .reference import reference
from .workloads import GcnModel

__all__ = ["LayerResult", "RunResult", "OutputDirError", "STATS_FORMAT", "evaluate", "write_run",
           "run_problems"]

#: ``format`` field of stats.json.
STATS_FORMAT = "axw-stats-1"
#: Wall-clock stages timed per layer.
_STAGES = ("compile", "simulate", "reference")


class OutputDirError(AxwError):
    """The output folder cannot be created or written."""


@dataclass(frozen=True, eq=False)
class LayerResult:
    """One problem compiled, simulated and checked: ``y`` is the simulated output."""

    problem: Problem
    program: Program
    y: np.ndarray
    y_ref: np.ndarray
    stats: dict

    @property
    def bit_exact(self) -> bool:
        return self.stats["bit_exact"]


@dataclass(frozen=True, eq=False)
class RunResult:
    """All layers of one run, their totals (``stats``, the content of stats.json) and,
    once written, the folder and the files in it."""

    name: str
    config: HardwareConfig
    layers: tuple[LayerResult, ...]
    stats: dict
    out_dir: Path | None = None
    files: tuple[str, ...] = ()

    @property
    def y(self) -> np.ndarray:
        """The final output: the last layer's simulated Y."""
        return self.layers[-1].y

    @property
    def bit_exact(self) -> bool:
        return self.stats["bit_exact"]

    @property
    def cycles(self) -> int:
        return self.stats["cycles"]

    @property
    def utilization(self) -> float:
        return self.stats["utilization"]


def _run_layer(problem: Problem, config: HardwareConfig, order: str, stall_permille: int,
               stall_seed: int, simulator=None) -> LayerResult:
    if simulator is None:
        # sim is imported on use: accel itself stays importable without numba (DESIGN §3).
        import sim as simulator

    t0 = time.perf_counter()
    program = compile_problem(problem, config, order)
    memory = build_memory(problem, program)
    t1 = time.perf_counter()
    # the reference runs beside the simulator (whose kernel releases the GIL)
    ref = {}

    def run_reference():
        t = time.perf_counter()
        try:
            ref["y"] = reference(problem, program.meta["order"])
        except BaseException as e:   # re-raised in the caller's thread
            ref["error"] = e
        ref["seconds"] = time.perf_counter() - t

    worker = threading.Thread(target=run_reference, name="axw-reference")
    worker.start()
    try:
        result = simulator.simulate(program, memory, stall_permille=stall_permille,
                                    stall_seed=stall_seed)
        t2 = time.perf_counter()
    finally:
        worker.join()
    if "error" in ref:
        raise ref["error"]
    y_ref = ref["y"]
    y = np.asarray(result.memory[program.tensor_id("Y")], dtype=np.int64)
    seconds = {"compile": t1 - t0, "simulate": t2 - t1, "reference": ref["seconds"]}
    stats = _layer_stats(problem, program, result.stats, y, y_ref, seconds)
    return LayerResult(problem, program, y, y_ref, stats)


def _mismatch(y: np.ndarray, y_ref: np.ndarray) -> tuple[int | None, dict | None]:
    """(number of differing elements, first difference) of two outputs."""
    if y.shape != y_ref.shape:
        return None, {"sim_shape": list(y.shape), "ref_shape": list(y_ref.shape)}
    bad = np.argwhere(y != y_ref)
    if not bad.size:
        return 0, None
    r, c = (int(v) for v in bad[0])
    return len(bad), {"row": r, "col": c, "sim": int(y[r, c]), "ref": int(y_ref[r, c])}


def _layer_stats(problem, program, sim_stats, y, y_ref, seconds) -> dict:
    cfg, meta = program.config, program.meta
    exact = bool(np.array_equal(y, y_ref))
    count, first = (0, None) if exact else _mismatch(y, y_ref)
    ideal = min(meta["useful_macs_by_order"].values()) / cfg.pes
    return {
        "name": problem.name,
        "order": meta["order"],
        "bit_exact": exact,
        "mismatches": count,
        "first_mismatch": first,
        **sim_stats,
        "ideal_cycles": ideal,
        "cycles_over_ideal": sim_stats["cycles"] / ideal if ideal else None,
        "useful_macs_by_order": meta["useful_macs_by_order"],
        "order_estimates": meta["order_estimates"],
        "decisions": meta["decisions"],
        "loop_order": meta["loop_order"],
        "problem": meta["problem"],
        "workload_meta": problem.meta,
        "wall_seconds": seconds,
    }


def _totals(layers: Sequence[dict], config: HardwareConfig) -> dict:
    """Run-level numbers: sums over layers, and ratios of those sums."""
    def total(key):
        return sum(s[key] for s in layers)

    cycles, useful, slots = total("cycles"), total("useful_macs"), total("pe_slot_cycles")
    busy = np.sum([s["busy_cycles_per_row"] for s in layers], axis=0)
    ideal = total("ideal_cycles")
    return {
        "cycles": cycles,
        "useful_macs": useful,
        "utilization": useful / (config.pes * cycles) if cycles else 0.0,
        "mapping_efficiency": useful / slots if slots else 0.0,
        "pe_slot_cycles": slots,
        "balance": float(busy.mean() / busy.max()) if busy.max() else 1.0,
        "busy_cycles_per_row": [int(b) for b in busy],
        "ideal_cycles": ideal,
        "cycles_over_ideal": cycles / ideal if ideal else None,
        "stall_row_cycles": {k: sum(s["stall_row_cycles"][k] for s in layers)
                             for k in layers[0]["stall_row_cycles"]},
        "memory_stall_cycles": total("memory_stall_cycles"),
        "offchip_bytes": total("offchip_bytes"),
        "wall_seconds": {k: sum(s["wall_seconds"][k] for s in layers) for k in _STAGES},
    }


def _layer_sources(source, run_one) -> tuple[str, list[LayerResult]]:
    """Run every layer of ``source``; a GcnModel's layer 2 takes layer 1's SIMULATED Y."""
    if isinstance(source, GcnModel):
        first = run_one(source.layer1())
        return source.name, [first, run_one(source.layer2(first.y))]
    problems = [source] if isinstance(source, Problem) else list(source)
    if not problems:
        raise ValueError("nothing to run: no problems given")
    for p in problems:
        if not isinstance(p, Problem):
            raise TypeError(f"expected a Problem, a sequence of Problems or a GcnModel, "
                            f"got {type(p).__name__}")
    names = list(dict.fromkeys(p.name for p in problems))
    return "+".join(names), [run_one(p) for p in problems]


def evaluate(problems_or_chain, config: HardwareConfig, *, order: str = "auto",
             stall_permille: int = 0, stall_seed: int = 1, simulator=None) -> RunResult:
    """Compile, simulate and check every layer in memory; write nothing.

    ``problems_or_chain`` is a Problem, a sequence of independent Problems, or a
    :class:`~accel.workloads.GcnModel` (its two layers, chained through the simulated
    output).  ``order`` applies to every layer.  A simulated output that differs from the
    reference is not an error: the layer's ``bit_exact`` is false and ``first_mismatch``
    says where.  ``simulator`` is an object with ``sim.simulate``'s ``simulate`` (for
    example an :class:`accel.simproc.SimProcess`); by default the :mod:`sim` module.
    """
    def run_one(problem):
        return _run_layer(problem, config, order, stall_permille, stall_seed, simulator)

    name, layers = _layer_sources(problems_or_chain, run_one)
    layer_stats = [lr.stats for lr in layers]
    stats = {
        "format": STATS_FORMAT,
        "name": name,
        "config_id": config.id,
        "order": layer_stats[-1]["order"],
        "orders": [s["order"] for s in layer_stats],
        "order_requested": order,
        "bit_exact": all(s["bit_exact"] for s in layer_stats),
        "stall_permille": stall_permille,
        "stall_seed": stall_seed,
        **_totals(layer_stats, config),
        "layers": layer_stats,
    }
    return RunResult(name, config, tuple(layers), stats)


def _plain(v):
    """``v`` with only JSON types: numpy scalars and arrays, tuples and non-finite floats
    (written as null) are converted so that stats.json is strict JSON."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or isinstance(v, str):
        return v
    return str(v)


def _planned_files(n_layers: int) -> tuple[str, ...]:
    files = ["output.npy"]
    if n_layers == 1:
        files += ["program/program.npz", "program/program.json"]
    else:
        for k in range(1, n_layers + 1):
            files += [f"layer{k}_output.npy", f"layer{k}/program.npz", f"layer{k}/program.json"]
    return tuple(files + ["config.json", "summary.md", "stats.json"])


def write_run(result: RunResult, out_dir: str | Path) -> RunResult:
    """Write ``result`` into ``out_dir`` (created if needed); returns it with the folder
    and the relative paths of the files written (also listed in stats.json)."""
    out = Path(out_dir)
    files = _planned_files(len(result.layers))
    stats = dict(result.stats)
    # energy (from the documented per-access table) and traffic figures, per layer and run
    from reports.energy import run_extras
    extras = run_extras(result)
    stats["layers"] = [{**ls, **ex} for ls, ex in zip(stats["layers"], extras["layers"])]
    stats.update({k: v for k, v in extras.items() if k != "layers"})
    stats = _plain({**stats, "files": list(files)})
    stats_text = json.dumps(stats, indent=1, allow_nan=False) + "\n"
    summary = render_summary(stats, result.config)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(out / "output.npy", result.y.astype(np.int64, copy=False))
        if len(result.layers) == 1:
            result.layers[0].program.save(out / "program")
        else:
            for k, lr in enumerate(result.layers, start=1):
                atomic_save_npy(out / f"layer{k}_output.npy", lr.y.astype(np.int64, copy=False))
                lr.program.save(out / f"layer{k}")
        atomic_write_text(out / "config.json", result.config.to_json() + "\n")
        atomic_write_text(out / "summary.md", summary)
        atomic_write_text(out / "stats.json", stats_text)
    except OSError as e:
        raise OutputDirError(f"cannot write results to {out}: {e.strerror or e}") from e
    return replace(result, stats=stats, out_dir=out, files=files)


def run_problems(problems_or_chain, config: HardwareConfig, *, order: str = "auto",
                 out_dir: str | Path, stall_permille: int = 0, stall_seed: int = 1,
                 simulator=None) -> RunResult:
    """:func:`evaluate` then :func:`write_run`: a failure anywhere before the writes
    leaves ``out_dir`` untouched."""
    result = evaluate(problems_or_chain, config, order=order, stall_permille=stall_permille,
                      stall_seed=stall_seed, simulator=simulator)
    return write_run(result, out_dir)
