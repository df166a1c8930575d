"""Analytical model of the sparse-row array: cycles, traffic and energy counts in closed form.

The model never builds a Program.  :func:`problem_stats` extracts, once per problem, what
the machine's timing depends on: per phase of each association order the nonzeros per
output row, D's rows and columns, the operand widths and the distribution of D rows
touched by the nonzeros.  :func:`evaluate` then takes a HardwareConfig (or many) and

1. replays the compiler's decisions from the same closed forms the compiler uses
   (association order, row blocks, broadcast or gathered loading of D), so the model
   describes the schedule the compiler would emit;
2. times each phase as a pipeline of *units* (one row block in one column tile): a unit
   lasts as long as the slowest of its compute (nonzeros / rows), its local-memory loads
   (one D row per cycle), and the off-chip bytes that move while it runs divided by the
   bandwidth; each unit's writeback overlaps the next unit and must finish before the unit
   after next reuses the output-bank half; the first load, the pipeline fill, the DRAM
   latency and the last writeback are exposed;
3. counts off-chip bytes per phase and the on-chip accesses that the energy table prices.

Its error against the cycle-level simulator is measured by ``bench/bench_model.py`` and by
``accel dse --verify``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .compiler import _assign, _estimate, _plan, _row_blocks, choose_order
from .config import HardwareConfig
from .errors import AxwError
from .problem import Problem
from .reference import ORDERS

__all__ = ["ModelError", "PhaseStats", "ProblemStats", "ModelResult", "problem_stats",
           "evaluate", "evaluate_many"]


class ModelError(AxwError):
    """The analytical model cannot describe this problem or configuration."""


@dataclass(frozen=True, eq=False)
class PhaseStats:
    """What the timing of one phase S·D depends on."""

    label: str
    row_nnz: np.ndarray        # nonzeros of S per output row
    cum: np.ndarray            # prefix sums of row_nnz (0 first)
    d_rows: int
    d_cols: int
    s_bits: int
    d_bits: int
    o_bits: int
    k_share: np.ndarray        # sorted fractions of S's nonzeros in each D row (descending)
    k_share_cum: np.ndarray
    k_cum: np.ndarray          # prefix sums of S's nonzeros per D row, in D-row order
    d_from_previous: bool      # D is written by an earlier phase (a barrier)
    uniform_len: int           # every nonempty row has this many nonzeros (0: rows differ)


@dataclass(frozen=True, eq=False)
class ProblemStats:
    """Per association order, the phases' statistics; plus the problem's summary."""

    name: str
    phases: dict               # order -> tuple[PhaseStats, ...]
    problem: Problem
    gather_only: bool

    @property
    def orders(self) -> tuple[str, ...]:
        return tuple(self.phases)


def problem_stats(problem: Problem) -> ProblemStats:
    """Precompute everything the model needs from ``problem`` (once per problem)."""
    from .compiler import _gather_structure
    gather_only = problem.gather is not None and all(
        _gather_structure(problem, p) is not None for p in problem.parts)
    orders = ("(ax)w",) if gather_only else ORDERS
    cfg = HardwareConfig(operand_bits=problem.contract.operand.bits,
                         acc_bits=problem.contract.acc.bits)
    out = {}
    for order in orders:
        tens, phases = _plan(problem, order, cfg)
        bits = [t["bits"] for t in tens.items]
        written = set()
        stats = []
        for ph in phases:
            nnz = np.diff(ph.s_ptr).astype(np.int64)
            counts = np.bincount(ph.s_k, minlength=ph.d_rows).astype(float)
            tot = counts.sum()
            share = np.sort(counts[counts > 0])[::-1] / tot if tot else np.zeros(0)
            stats.append(PhaseStats(ph.label, nnz, np.concatenate([[0], np.cumsum(nnz)]),
                                    int(ph.d_rows), int(ph.d_cols), bits[ph.s_tensor],
                                    bits[ph.d_tensor], bits[ph.out_tensor], share,
                                    np.concatenate([[0.0], np.cumsum(share)]),
                                    np.concatenate([[0.0], np.cumsum(counts)]),
                                    ph.d_tensor in written, _uniform(nnz)))
            written.add(ph.out_tensor)
        out[order] = tuple(stats)
    return ProblemStats(problem.name, out, problem, gather_only)


def _uniform(nnz: np.ndarray) -> int:
    live = nnz[nnz > 0]
    return int(live[0]) if live.size and np.all(live == live[0]) else 0


@dataclass(frozen=True)
class ModelResult:
    """The model's figures for one problem on one configuration."""

    config_id: str
    order: str
    cycles: float
    useful_macs: int
    utilization: float
    offchip_bytes: float
    offchip_bytes_by_phase: tuple
    cycles_by_phase: tuple
    decisions: tuple           # (phase, d_mode, row_blocks, col_tiles) per phase
    counts: dict               # access counts for reports.energy.energy_from_counts

    def to_dict(self) -> dict:
        return {"config_id": self.config_id, "order": self.order, "cycles": self.cycles,
                "useful_macs": self.useful_macs, "utilization": self.utilization,
                "offchip_bytes": self.offchip_bytes, "cycles_by_phase": list(self.cycles_by_phase),
                "decisions": [list(d) for d in self.decisions], "counts": dict(self.counts)}


# ---- compiler decisions -----------------------------------------------------------------
_BLOCK_CACHE: dict = {}


def _blocks(ph: PhaseStats, nb: int):
    """(nonzeros, rows) per row block of the compiler's ``_row_blocks``; memoised."""
    key = (id(ph), nb)
    hit = _BLOCK_CACHE.get(key)
    if hit is not None and hit[0] is ph:
        return hit[1], hit[2]
    blocks = _row_blocks(ph.row_nnz, nb)
    bounds = np.array([b[0] for b in blocks] + [blocks[-1][-1] + 1]) if blocks[0].size else \
        np.array([0, 0])
    nnz_b = np.diff(ph.cum[bounds]).astype(float)
    rows_b = np.diff(bounds).astype(float)
    if len(_BLOCK_CACHE) > 4096:
        _BLOCK_CACHE.clear()
    _BLOCK_CACHE[key] = (ph, nnz_b, rows_b)
    return nnz_b, rows_b


def _bytes_of(bits: int) -> int:
    return (bits + 7) // 8


def _decide(ph: PhaseStats, cfg: HardwareConfig):
    """(mode, row blocks) as ``compiler._schedule_phase`` picks them."""
    R, C = cfg.rows, cfg.cols
    o = ph.row_nnz.size
    nct = math.ceil(ph.d_cols / C)
    nb_min = max(1, math.ceil(o / (R * cfg.out_bank_depth)))
    s_b = _bytes_of(ph.s_bits) + cfg.stream_index_bytes
    d_b, o_b = _bytes_of(ph.d_bits), _bytes_of(ph.o_bits)
    best = None
    for nb in sorted({nb_min, 2 * nb_min, 4 * nb_min, 8 * nb_min, 16 * nb_min}):
        if nb > 1 and o / nb < 4 * R:
            continue
        nnz_b, rows_b = _blocks(ph, nb)
        for m in ("broadcast", "gathered"):
            est = _estimate(nnz_b, rows_b, nct, m, ph.d_rows, cfg.lmem_depth, cfg, s_b, d_b,
                            o_b, min(C, ph.d_cols))
            if best is None or est < best[0]:
                best = (est, nb, m)
    if best is None:
        best = (None, nb_min, "gathered")
    return best[2], _fits(ph, cfg, best[1])


_FIT_CACHE: dict = {}


def _fits(ph: PhaseStats, cfg: HardwareConfig, nb: int) -> int:
    """The compiler raises the row-block count until every PE row's pieces fit its output
    bank; where that is in doubt (a lane could need more than 3/4 of the slots) the
    compiler's own assignment is run on the block's rows, memoised."""
    R, depth = cfg.rows, cfg.out_bank_depth
    o = ph.row_nnz.size
    while True:
        _, rows_b = _blocks(ph, nb)
        if rows_b.size == 0 or rows_b.max() <= 0.75 * R * depth:
            return nb
        key = (id(ph), R, depth, nb)
        ok = _FIT_CACHE.get(key)
        if ok is None or ok[0] is not ph:
            blocks = _row_blocks(ph.row_nnz, nb)
            fit = all(_assign(rows, ph.row_nnz, R, depth) is not None for rows in blocks)
            _FIT_CACHE[key] = ok = (ph, fit)
        if ok[1] or nb >= o:
            return nb
        nb = min(o, nb + max(1, nb // 4))


# ---- timing -----------------------------------------------------------------------------
def _distinct(ph: PhaseStats, m: np.ndarray) -> np.ndarray:
    """Expected distinct D rows touched by ``m`` nonzeros drawn from S's row distribution."""
    m = np.atleast_1d(np.asarray(m, float))
    q = ph.k_share
    if q.size == 0:
        return np.zeros_like(m)
    # each D row k is touched unless all m draws miss it: 1 - (1 - q_k)^m ≈ 1 - e^(-m q_k)
    return np.array([float(np.sum(-np.expm1(-mi * q))) for mi in m])


_LANE_CACHE: dict = {}


def _lane_scale(ph: PhaseStats, cfg: HardwareConfig, nb: int) -> np.ndarray:
    """Per row block, the fullest PE row's nonzeros over the mean: the compiler's own
    balancing (``compiler._assign``) run once per (phase, rows, bank depth, row blocks)."""
    R = cfg.rows
    key = (id(ph), R, cfg.out_bank_depth, nb)
    hit = _LANE_CACHE.get(key)
    if hit is not None and hit[0] is ph:
        return hit[1]
    out = []
    for rows in _row_blocks(ph.row_nnz, nb):
        plan = _assign(rows, ph.row_nnz, R, cfg.out_bank_depth)
        tot = float(ph.row_nnz[rows].sum())
        if plan is None or tot == 0:
            out.append(1.0)
        else:
            out.append(float(plan[-1].max()) * R / tot)
    if len(_LANE_CACHE) > 4096:
        _LANE_CACHE.clear()
    _LANE_CACHE[key] = (ph, np.asarray(out))
    return _LANE_CACHE[key][1]


def _max_lane(mean: np.ndarray, R: int) -> np.ndarray:
    """Expected largest of R lanes' element counts in one tile when each holds ``mean`` on
    average (balanced over whole rows, so per tile the counts scatter like Poisson)."""
    if R <= 1:
        return mean
    return mean + np.sqrt(2.0 * np.maximum(mean, 0.0) * math.log(R)) * 0.5


def _phase_time(ph: PhaseStats, cfg: HardwareConfig, mode: str, nb: int):
    """Cycles, off-chip bytes and access counts of one phase.

    Tiles form one pipeline: tile j computes while tile j+1 loads (double-buffered local
    memory), so a tile lasts max(compute_j, load_{j+1}, bytes moved meanwhile / B); the
    first load is exposed.  A unit (row block × column tile) may start only when the unit
    two before it has written back its output-bank half."""
    R, C, B, L = cfg.rows, cfg.cols, float(cfg.dram_bytes_per_cycle), cfg.dram_latency_cycles
    depth = cfg.lmem_depth
    nct = math.ceil(ph.d_cols / C)
    nnz_b, rows_b = _blocks(ph, nb)
    s_b = _bytes_of(ph.s_bits) + cfg.stream_index_bytes
    d_b, o_b = _bytes_of(ph.d_bits), _bytes_of(ph.o_bits)
    tot = ph.k_cum[-1]
    if mode == "broadcast":
        kb = np.unique(np.minimum(np.arange(0, ph.d_rows + depth, depth), ph.d_rows))
        frac = np.diff(ph.k_cum[kb]) / tot if tot else np.zeros(kb.size - 1)
        keep = frac > 0
        ld_rows_k = np.diff(kb).astype(float)[keep]
        frac = frac[keep]
        resident = ld_rows_k.size == 1
    else:
        frac = None
    lane_scale = _lane_scale(ph, cfg, nb)
    sync = C + cfg.pe_latency_cycles + cfg.merge_latency_cycles
    comps, loadl, lbytes, sbytes, unit_of, wb_units, wbb_units = [], [], [], [], [], [], []
    macs = lmem_w = ld_fetch = 0.0
    u = 0
    for ct in range(nct):
        ncols = min(C, ph.d_cols - ct * C)
        for b in range(nnz_b.size):
            per_lane = nnz_b[b] / R
            scale = float(lane_scale[b])
            if mode == "broadcast":
                if frac.size > 1 and not ph.uniform_len:
                    # per K tile the lanes' shares scatter around their whole-row balance
                    comp = _max_lane(per_lane * frac, R) * scale
                else:
                    comp = per_lane * frac * scale
                loads = ld_rows_k.copy()
                if resident and b > 0:
                    loads[:] = 0.0
                fetch = loads
            else:
                pieces = int(min(64, max(2, per_lane // (8 * C))))
                comp = np.full(pieces, per_lane * scale / pieces)
                dist = float(_distinct(ph, np.array([per_lane]))[0])
                loads = np.full(pieces, dist / pieces)
                fetch = loads * R
            lmem_w += float(loads.sum()) * R * ncols
            ld_fetch += float(fetch.sum())
            comps.append(comp)
            loadl.append(loads)
            lbytes.append(fetch * ncols * d_b)
            # stream bytes follow the elements: the FIFO runs at most a few entries ahead
            w = comp / comp.sum() if comp.sum() else np.full(comp.size, 1.0 / comp.size)
            sbytes.append(nnz_b[b] * s_b * w)
            unit_of.append(np.full(comp.size, u))
            wbb = rows_b[b] * ncols * o_b
            wbb_units.append(wbb)
            wb_units.append(max(rows_b[b] / R, wbb / B))
            macs += nnz_b[b] * ncols
            u += 1
    comp = np.concatenate(comps)
    loads = np.concatenate(loadl)
    lb = np.concatenate(lbytes)
    sb = np.concatenate(sbytes)
    unit = np.concatenate(unit_of)
    wbb_units = np.asarray(wbb_units)
    # the writeback of unit u streams out while unit u+1 computes, spread over its tiles
    ucomp = np.bincount(unit, weights=comp, minlength=u)
    prev_wbb = np.concatenate([[0.0], wbb_units[:-1]])
    wb_share = np.where(ucomp[unit] > 0, prev_wbb[unit] * comp / np.maximum(ucomp[unit], 1e-9), 0.0)
    nxt = np.concatenate([loads[1:], [0.0]])
    nxt_b = np.concatenate([lb[1:], [0.0]])
    dur = np.maximum.reduce([comp, nxt, (sb + nxt_b + wb_share) / B])
    udur = np.bincount(unit, weights=dur, minlength=u) + sync
    t = max(loads[0], lb[0] / B) if loads.size else 0.0
    wb_end = [0.0, 0.0]
    for k in range(u):
        t = max(t, wb_end[k % 2]) + udur[k]
        wb_end[k % 2] = t + wb_units[k]
    byts = float(sb.sum() + lb.sum() + wbb_units.sum())
    cyc = t + (wbb_units[-1] / B if u else 0.0) + L
    counts = {"useful_macs": macs, "lmem_reads": macs, "lmem_writes": lmem_w,
              "out_bank_reads": float(np.sum(rows_b)) * ph.d_cols,
              "out_bank_writes": float(np.sum(rows_b)) * ph.d_cols,
              "stream_fifo_writes": float(np.sum(nnz_b)) * nct,
              "load_fifo_writes": ld_fetch, "offchip_bytes": byts}
    return cyc, byts, counts


def evaluate(stats: ProblemStats | Problem, cfg: HardwareConfig, order: str = "auto") -> ModelResult:
    """The model's cycles, traffic and access counts for one configuration."""
    if isinstance(stats, Problem):
        stats = problem_stats(stats)
    k = stats.problem.contract
    if k.operand.bits != cfg.operand_bits or k.acc.bits != cfg.acc_bits:
        raise ModelError(f"contract {k.name} ({k.operand.name}/{k.acc.name}) does not match "
                         f"the hardware (s{cfg.operand_bits}/s{cfg.acc_bits})")
    if stats.gather_only:
        order = "(ax)w"
    elif order == "auto":
        order = choose_order(stats.problem, cfg)[0]
    elif order not in ORDERS:
        raise ModelError(f"unknown order {order!r}; expected auto, a(xw) or (ax)w")
    cycles, byts, decisions = [], [], []
    counts: dict = {}
    for ph in stats.phases[order]:
        mode, nb = _decide(ph, cfg)
        c, b, cnt = _phase_time(ph, cfg, mode, nb)
        cycles.append(c)
        byts.append(b)
        decisions.append((ph.label, mode, nb, math.ceil(ph.d_cols / cfg.cols)))
        for key, v in cnt.items():
            counts[key] = counts.get(key, 0.0) + v
    total = float(sum(cycles))
    macs = int(round(counts["useful_macs"]))
    return ModelResult(cfg.id, order, total, macs, macs / (cfg.pes * total) if total else 0.0,
                       float(sum(byts)), tuple(byts), tuple(cycles), tuple(decisions), counts)


def evaluate_many(stats: ProblemStats | Problem, configs, order: str = "auto") -> list[ModelResult]:
    if isinstance(stats, Problem):
        stats = problem_stats(stats)
    return [evaluate(stats, c, order) for c in configs]
