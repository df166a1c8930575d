"""Design-space sweeps: the analytical model on every point, the simulator on some, resumable.

A *space* maps HardwareConfig field names to a list of values (swept) or a single value
(fixed); the sweep is the cross product.  :func:`sweep` evaluates every point with
:mod:`accel.model`, optionally simulates all points, the Pareto front, or none, and returns
one row (a dict) per point.  With ``out_dir`` every finished point is appended to
``points.jsonl`` (model) or ``sim.jsonl`` (simulator) as one line written by a single
``os.write`` on an ``O_APPEND`` descriptor by the one parent process, so a killed sweep
keeps every finished point, a restarted one skips them, and no point is written twice.
``results.csv`` and the Pareto plots are written (atomically) at the end.

Example::

    from accel.dse import sweep
    rows = sweep("gcn-cora-like", {"rows": [4, 8, 16], "cols": [4, 8, 16],
                                   "dram_bytes_per_cycle": [8, 32, 128]}, verify="pareto")
    best = min(rows, key=lambda r: r["cycles_model"])
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from .config import HardwareConfig, preset
from .errors import AxwError, ConfigError
from .fileio import atomic_write_bytes, atomic_write_text, read_toml
from .problem import Problem

__all__ = ["DseError", "load_space", "expand_space", "sweep", "pareto_mask", "CSV_FIELDS",
           "VERIFY_MODES"]

VERIFY_MODES = ("all", "pareto", "none")
_FIELDS = tuple(f.name for f in fields(HardwareConfig))


class DseError(AxwError):
    """A design space or sweep request is malformed."""


def _check_space(space: dict, source: str) -> dict:
    space = dict(space)
    unknown = sorted(set(space) - set(_FIELDS) - {"preset"})
    if unknown:
        raise DseError(f"{source}: unknown HardwareConfig field(s) {', '.join(unknown)}; "
                       f"known: {', '.join(_FIELDS)}")
    for k, v in space.items():
        if k == "preset":
            continue
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise DseError(f"{source}: {k} has no values")
        for x in vals:
            if isinstance(x, (list, dict)) or isinstance(x, bool) or not isinstance(x, (int, float)):
                raise DseError(f"{source}: {k} values must be numbers, got {x!r}")
    return space


def load_space(path: str | Path) -> dict:
    """Read SPACE.toml: ``field = [v1, v2, ...]`` (swept) or ``field = v`` (fixed), and an
    optional ``preset = NAME`` as the base; strict about unknown fields."""
    d, where = read_toml(path, DseError)
    return _check_space(d, where)


def expand_space(space: dict, base: HardwareConfig | None = None
                 ) -> tuple[list[str], list[HardwareConfig], list[str]]:
    """(swept field names, one config per valid point, messages for invalid points)."""
    space = _check_space(space, "space")
    if "preset" in space:
        base = preset(space.pop("preset"))
    base = base or HardwareConfig()
    fixed = {k: v for k, v in space.items() if not isinstance(v, list)}
    swept = [k for k in _FIELDS if isinstance(space.get(k), list)]
    try:
        base = base.with_(**fixed)
    except ConfigError as e:
        raise DseError(f"space: fixed fields give an invalid config: {e}") from None
    configs, invalid, seen = [], [], set()
    for combo in itertools.product(*(space[k] for k in swept)):
        try:
            cfg = base.with_(**dict(zip(swept, combo)))
        except ConfigError as e:
            invalid.append(f"{dict(zip(swept, combo))}: {e}")
            continue
        if cfg.id not in seen:
            seen.add(cfg.id)
            configs.append(cfg)
    return swept, configs, invalid


def pareto_mask(*objectives) -> np.ndarray:
    """True where no other point is at least as good in every objective and better in one
    (all minimised)."""
    pts = np.column_stack([np.asarray(o, float) for o in objectives])
    n = len(pts)
    mask = np.ones(n, bool)
    order = np.lexsort(pts.T[::-1])
    best = []
    for i in order:
        p = pts[i]
        dominated = any(np.all(q <= p) and np.any(q < p) for q in best)
        if dominated:
            mask[i] = False
        else:
            best.append(p)
    return mask


# ---- workers --------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(problems):
    _WORKER["problems"] = problems


def _simulate_point(cfg_dict: dict, order: str, problems=None) -> dict:
    """Simulate every layer on one config (in a worker process); cycles summed over layers."""
    import sim
    from .compiler import build_memory, compile_problem
    problems = problems if problems is not None else _WORKER["problems"]
    cfg = HardwareConfig.from_dict(cfg_dict)
    cycles = 0
    useful = 0
    byts = 0
    for p in problems:
        prog = compile_problem(p, cfg, order)
        res = sim.simulate(prog, build_memory(p, prog))
        cycles += res.cycles
        useful += res.stats["useful_macs"]
        byts += res.stats["offchip_bytes"]
    return {"config_id": cfg.id, "cycles_sim": cycles, "useful_macs_sim": useful,
            "offchip_bytes_sim": byts}


_ENERGY_FIELDS = ("operand_bits", "acc_bits", "cols", "lmem_depth", "out_bank_depth")


def _model_points(stats_list, cfgs: list, ids: list, order: str) -> list[dict]:
    """The model's record of each config (cycles, traffic and energy summed over the
    layers; the resource estimate): :func:`accel.model.evaluate_many` on all of them, the
    energy of all of them in one array expression."""
    from reports.energy import energy_from_counts
    from reports.resources import estimate_resources
    from .model import evaluate_many
    n = len(cfgs)
    cycles = [0.0] * n
    macs = [0] * n
    byts = [0.0] * n
    counts: dict = {}
    for st in stats_list:
        for i, m in enumerate(evaluate_many(st, cfgs, order)):
            cycles[i] += m.cycles
            macs[i] += m.useful_macs
            byts[i] += m.offchip_bytes
            for k, v in m.counts.items():
                counts.setdefault(k, [0.0] * n)[i] += v
    e = energy_from_counts({k: np.asarray(v) for k, v in counts.items()},
                           {f: np.array([getattr(c, f) for c in cfgs]) for f in _ENERGY_FIELDS})
    total = np.asarray(e["total"], float).tolist()
    res_of: dict = {}
    out = []
    for i, cfg in enumerate(cfgs):
        # the resource estimate does not depend on the bandwidth, latency or clock
        key = (cfg.rows, cfg.cols, cfg.operand_bits, cfg.acc_bits, cfg.lmem_depth,
               cfg.out_bank_depth, cfg.stream_fifo_depth, cfg.load_fifo_depth,
               cfg.writeback_vectors, cfg.request_lag_cycles, cfg.credit_lag_cycles,
               cfg.lmem_read_cycles)
        res = res_of.get(key)
        if res is None:
            res = res_of[key] = estimate_resources(cfg)
        c = cycles[i]
        out.append({"config_id": ids[i], "cycles_model": round(c, 1),
                    "utilization_model": macs[i] / (cfg.pes * c) if c else 0.0,
                    "useful_macs": macs[i], "offchip_bytes_model": round(byts[i]),
                    "energy_uj_model": total[i] / 1e6, **res})
    return out


# ---- persistence ---------------------------------------------------------------------
def _read_jsonl(path: Path) -> dict:
    """config_id -> record; a torn last line (killed mid-write) is ignored."""
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "config_id" in rec:
            out.setdefault(rec["config_id"], rec)
    return out


class _Appender:
    """One O_APPEND descriptor; each record is one os.write of one line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # a torn line from a killed run must not glue onto the next record
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            os.write(self.fd, b"\n")

    def write(self, rec: dict) -> None:
        os.write(self.fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())

    def close(self):
        os.close(self.fd)


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.n = total, label, 0
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def update(self, k: int = 1):
        self.n += k
        if self.on and self.total:
            frac = self.n / self.total
            bar = "#" * int(30 * frac)
            dt = time.perf_counter() - self.t0
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {self.n}/{self.total} {dt:6.1f}s")
            sys.stderr.flush()

    def close(self):
        if self.on and self.total:
            sys.stderr.write("\n")


# ---- the sweep ------------------------------------------------------------------------
#: Configurations the model evaluates per batch (each batch is appended to points.jsonl).
_MODEL_CHUNK = 512

#: Columns of results.csv after config_id and the swept fields.
CSV_FIELDS = ("cycles_model", "cycles_sim", "model_error", "utilization_model",
              "utilization_sim", "useful_macs", "offchip_bytes_model", "offchip_bytes_sim",
              "energy_uj_model", "lut", "ff", "dsp", "bram", "fmax_mhz", "fits_device",
              "pareto_energy",
              "pareto_resources", "simulated")


def _problems(source, seed: int = 0) -> list[Problem]:
    from .workloads import DEFAULT_WORKLOAD, GcnModel, get_workload
    from .reference import reference
    if source is None:
        source = DEFAULT_WORKLOAD
    if isinstance(source, str):
        return list(get_workload(source, seed=seed))
    if isinstance(source, Problem):
        return [source]
    if isinstance(source, GcnModel):
        l1 = source.layer1()
        return [l1, source.layer2(reference(l1))]
    probs = list(source)
    if not probs or not all(isinstance(p, Problem) for p in probs):
        raise DseError("expected a workload name, a Problem, a GcnModel or a list of Problems")
    return probs


def _run_sims(todo, problems, order, jobs, scheduler, on_done):
    cfgs = [c.to_dict() for c in todo]
    if not cfgs:
        return
    if scheduler:
        from distributed import Client
        with Client(scheduler) as client:
            fut_p = client.scatter(problems, broadcast=True)
            futs = [client.submit(_simulate_point, c, order, fut_p, pure=False) for c in cfgs]
            from distributed import as_completed
            for f in as_completed(futs):
                on_done(f.result())
        return
    if jobs <= 1:
        for c in cfgs:
            on_done(_simulate_point(c, order, problems))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    ctx = mp.get_context("spawn")   # the parent may hold threads; workers import numba fresh
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(problems,)) as ex:
        futs = [ex.submit(_simulate_point, c, order) for c in cfgs]
        for f in as_completed(futs):
            on_done(f.result())


def sweep(problem_or_workload=None, space: dict | None = None, *, out_dir=None,
          verify: str = "pareto", jobs: int = 1, scheduler: str | None = None,
          order: str = "auto", base: HardwareConfig | None = None, seed: int = 0,
          progress: bool | None = None) -> list[dict]:
    """Evaluate every point of ``space`` with the model; simulate per ``verify``.

    ``problem_or_workload``: a workload name (default: the built-in default workload), a
    Problem, a GcnModel or a list of Problems (cycles are summed over them).  Returns one
    dict per point with ``config_id``, the swept fields and :data:`CSV_FIELDS`.  With
    ``out_dir`` the sweep is resumable and writes ``results.csv``, ``summary.json`` and the
    Pareto plots there.
    """
    from reports.resources import stated_error
    from .model import problem_stats
    if verify not in VERIFY_MODES:
        raise DseError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    if jobs < 1:
        raise DseError(f"jobs must be at least 1, got {jobs}")
    swept, configs, invalid = expand_space(space or {}, base)
    if not configs:
        raise DseError("the design space has no valid point" +
                       (f" (first invalid: {invalid[0]})" if invalid else ""))
    problems = _problems(problem_or_workload, seed)
    out = Path(out_dir) if out_dir is not None else None
    t0 = time.perf_counter()
    # ---- model on every point
    stats_list = [problem_stats(p) for p in problems]
    done = _read_jsonl(out / "points.jsonl") if out else {}
    ids = [c.id for c in configs]
    app = _Appender(out / "points.jsonl") if out else None
    bar = _Progress(len(configs), "model", progress)
    bar.update(sum(1 for i in ids if i in done))
    tm = time.perf_counter()
    n_model = 0
    todo_m = [j for j, i in enumerate(ids) if i not in done]
    try:
        # in chunks, so a killed sweep keeps what the model has finished
        for c0 in range(0, len(todo_m), _MODEL_CHUNK):
            chunk = todo_m[c0:c0 + _MODEL_CHUNK]
            recs = _model_points(stats_list, [configs[j] for j in chunk],
                                 [ids[j] for j in chunk], order)
            for rec in recs:
                done[rec["config_id"]] = rec
                if app:
                    app.write(rec)
            n_model += len(recs)
            bar.update(len(recs))
    finally:
        bar.close()
        if app:
            app.close()
    model_seconds = time.perf_counter() - tm
    recs = [done[i] for i in ids]
    cyc = np.array([r["cycles_model"] for r in recs])
    energy = np.array([r["energy_uj_model"] for r in recs])
    area = np.array([r["lut"] for r in recs])
    pe = pareto_mask(cyc, energy)
    pr = pareto_mask(cyc, area)
    # ---- simulator
    sims = _read_jsonl(out / "sim.jsonl") if out else {}
    want = {"all": [True] * len(configs), "pareto": list(pe | pr),
            "none": [False] * len(configs)}[verify]
    todo = [c for c, i, w in zip(configs, ids, want) if w and i not in sims]
    sapp = _Appender(out / "sim.jsonl") if out and todo else None
    sbar = _Progress(len(todo), "simulate", progress)
    ts = time.perf_counter()

    def on_done(rec):
        sims[rec["config_id"]] = rec
        if sapp:
            sapp.write(rec)
        sbar.update()
    try:
        _run_sims(todo, problems, order, jobs, scheduler, on_done)
    finally:
        sbar.close()
        if sapp:
            sapp.close()
    sim_seconds = time.perf_counter() - ts
    rows = []
    for cfg, cid, rec, ep, rp in zip(configs, ids, recs, pe, pr):
        s = sims.get(cid)
        row = {"config_id": cid, **{k: getattr(cfg, k) for k in swept}}
        for k in CSV_FIELDS:
            row[k] = rec.get(k)
        if s:
            row["cycles_sim"] = s["cycles_sim"]
            row["offchip_bytes_sim"] = s["offchip_bytes_sim"]
            row["utilization_sim"] = s["useful_macs_sim"] / (cfg.pes * s["cycles_sim"])
            row["model_error"] = rec["cycles_model"] / s["cycles_sim"] - 1.0
        row["pareto_energy"] = bool(ep)
        row["pareto_resources"] = bool(rp)
        row["simulated"] = bool(s)
        rows.append(row)
    errs = np.array([abs(r["model_error"]) for r in rows if r["model_error"] is not None])
    summary = {"points": len(rows), "invalid_points": len(invalid), "swept": swept,
               "problems": [p.name for p in problems], "verify": verify,
               "model_points_evaluated": n_model, "model_seconds": model_seconds,
               "model_points_per_second": n_model / model_seconds if n_model else None,
               "simulated_points": int(errs.size), "sim_seconds": sim_seconds,
               "model_error_median": float(np.median(errs)) if errs.size else None,
               "model_error_max": float(errs.max()) if errs.size else None,
               "resources_calibrated": bool(recs and recs[0].get("resources_calibrated")),
               "resources_error_loo": stated_error(),
               "points_fitting_device": sum(1 for r in rows if r.get("fits_device")),
               "seconds": time.perf_counter() - t0}
    if out:
        _write_outputs(out, rows, swept, summary)
    sweep.last_summary = summary
    return rows


sweep.last_summary = None


def _write_outputs(out: Path, rows, swept, summary) -> None:
    from reports.plots import pareto_png
    from reports.resources import DEVICE_LIMITS, DEVICE_NAME
    header = ["config_id", *swept, *CSV_FIELDS]
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    cyc = [r["cycles_model"] for r in rows]
    sim = [r["simulated"] for r in rows]
    atomic_write_bytes(out / "pareto_energy.png", pareto_png(
        [r["energy_uj_model"] for r in rows], cyc, [r["pareto_energy"] for r in rows],
        "energy (µJ, model)", "cycles (model)", "Latency vs energy", sim))
    atomic_write_bytes(out / "pareto_resources.png", pareto_png(
        [r["lut"] for r in rows], cyc, [r["pareto_resources"] for r in rows],
        "LUTs (resource model)", "cycles (model)", "Latency vs resources", sim,
        limit=(DEVICE_LIMITS["lut"], f"{DEVICE_NAME} LUTs")))
