"""Analytical model of the sparse-row array: cycles, traffic and energy counts in closed form.

The model never builds a Program.  :func:`problem_stats` extracts, once per problem, what
the machine's timing depends on: per phase of each association order the nonzeros per
output row, D's rows and columns, the operand widths and the distribution of D rows
touched by the nonzeros.  :func:`evaluate_many` (and :func:`evaluate` for one) then takes
HardwareConfigs and

1. replays the compiler's decisions from the same closed forms the compiler uses
   (association order, row blocks, broadcast or gathered loading of D), so the model
   describes the schedule the compiler would emit;
2. lays out each phase's tiles in program order (column tiles > row blocks > K tiles):
   per tile the issue cycles of the fullest PE row (the compiler's own balancing), the
   stream bytes, and the load that runs under it (the next tile's, or for a D tile that
   stays resident the next column tile's, spread over every tile since the previous load);
3. times every tile with the memory's grant order (docs/machine.md, rule 0): the
   stream fetch first, then the loads on what the stream leaves (a refused request stops
   every later one); writeback steps, which need R·ncols outputs' bytes at once, on what
   is left after both; a unit (row block × column tile) starts when its
   first load is in and the writeback of the unit two before it (its output-bank half) is
   done; the first load, the per-unit synchronisation, the DRAM latency and the last
   writeback are exposed; a FIFO shallower than the memory's round trip lets its lane
   fetch (stream) or write (loads) at most depth / (latency + 2 + request lag) per cycle
   (``HardwareConfig.stream_fifo_rate``, ``load_fifo_rate``);
4. counts off-chip bytes per phase and the on-chip accesses that the energy table prices.

Schedules depend on the array and its memories, not on the bandwidth or latency, and are
memoised; the timing of all configurations runs as array expressions.  The error against
the cycle-level simulator is measured by ``bench/bench_model.py`` and by
``accel dse --verify``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .compiler import _assign, _pattern_nnz, _plan, _row_blocks
from .config import HardwareConfig
from .errors import AxwError
from .problem import Problem
from .reference import ORDERS

__all__ = ["ModelError", "PhaseStats", "ProblemStats", "ModelResult", "problem_stats",
           "evaluate", "evaluate_many", "clear_caches"]


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
    order_terms: dict          # order -> per part, (elements, columns) of choose_order

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
    # compiler.choose_order's terms: per part, the elements each phase streams and the
    # columns they are multiplied by
    terms: dict = {o: [] for o in ORDERS}
    for part in problem.parts:
        hp, cp = len(part.y_cols), len(part.x_cols)
        xp = problem.x_part(part)
        nnz_x = xp.nnz if sp.issparse(xp) else int(xp.size)
        terms["a(xw)"].append(((nnz_x, hp), (part.a.nnz, hp)))
        terms["(ax)w"].append(((part.a.nnz, cp), (_pattern_nnz(part.a, xp), hp)))
    return ProblemStats(problem.name, out, problem, gather_only, terms)


def _uniform(nnz: np.ndarray) -> int:
    live = nnz[nnz > 0]
    return int(live[0]) if live.size and np.all(live == live[0]) else 0


@dataclass(frozen=True)
class ModelResult:
    """The model's figures for one problem on one configuration."""

    config: HardwareConfig
    order: str
    cycles: float
    useful_macs: int
    utilization: float
    offchip_bytes: float
    offchip_bytes_by_phase: tuple
    cycles_by_phase: tuple
    decisions: tuple           # (phase, d_mode, row_blocks, col_tiles) per phase
    counts: dict               # access counts for reports.energy.energy_from_counts

    @property
    def config_id(self) -> str:
        return self.config.id

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


def _transfer_bytes(ph: PhaseStats, cfg: HardwareConfig) -> tuple[int, int, int]:
    """Bytes of one streamed element, one loaded D value and one written output value
    (``accel.program.transfer_bytes``)."""
    return (_bytes_of(ph.s_bits) + cfg.stream_index_bytes, _bytes_of(ph.d_bits),
            _bytes_of(ph.o_bits))


def _distinct_values(a: np.ndarray):
    """(distinct values in order of appearance, index of each element among them); for
    the few bandwidths of a group, cheaper than ``np.unique``."""
    seen: dict = {}
    inv = [seen.setdefault(v, len(seen)) for v in a.tolist()]
    return np.fromiter(seen, float, len(seen)), np.array(inv, np.int64)


def _candidates(ph: PhaseStats, cfg: HardwareConfig) -> list:
    """The compiler's (mode, row blocks) candidates for a phase, in its order."""
    R = cfg.rows
    o = ph.row_nnz.size
    nb_min = max(1, math.ceil(o / (R * cfg.out_bank_depth)))
    cands = []
    for nb in sorted({nb_min, 2 * nb_min, 4 * nb_min, 8 * nb_min, 16 * nb_min}):
        if nb > 1 and o / nb < 4 * R:
            continue
        cands += [("broadcast", nb), ("gathered", nb)]
    return cands


def _decide_all(items, Ball: np.ndarray, Lall: np.ndarray) -> list:
    """(mode, row blocks) of each phase for each configuration, as
    ``compiler._schedule_phase`` picks them: the same candidates, the same closed-form
    estimate (``compiler._estimate``), the first smallest.  ``items`` lists (phase, a
    configuration of the group, the group's configuration indices); every estimate of
    every item is evaluated in one array computation."""
    cand = []                         # per (item, candidate): its scalars
    blocks_n, blocks_r, rows_of, cands_of, bw_of = [], [], [], [], []
    for it, (ph, cfg0, ia) in enumerate(items):
        cands = _candidates(ph, cfg0)
        cands_of.append(cands)
        # the latency only adds to every candidate's estimate: evaluate each distinct
        # bandwidth once, add each configuration's latency at the end
        bw_of.append(_distinct_values(Ball[ia]))
        R, C, depth = cfg0.rows, cfg0.cols, cfg0.lmem_depth
        s_b, d_b, o_b = _transfer_bytes(ph, cfg0)
        sync = C + cfg0.pe_latency_cycles + cfg0.merge_latency_cycles + 8
        for m, nb in cands:
            nnz_b, rows_b = _blocks(ph, nb)
            blocks_n.append(nnz_b)
            blocks_r.append(rows_b)
            rows_of.append(it)
            cand.append((R, cfg0.writeback_lanes, min(C, ph.d_cols), 8.0 * C, depth, ph.d_rows, s_b, d_b, o_b,
                         m == "broadcast", math.ceil(ph.d_rows / depth),
                         math.ceil(ph.d_cols / C), sync * nnz_b.size))
    out = []
    if cand:
        # the terms of compiler._estimate for every block of every candidate
        nblk = np.array([x.size for x in blocks_n])
        nnz, rws = np.concatenate(blocks_n), np.concatenate(blocks_r)
        (R, WV, ncols, cap8, depth, d_rows, s_b, d_b, o_b, bc, nk, nct,
         syncs) = (np.array(col, float) for col in zip(*cand))
        bc = bc.astype(bool)
        boff = np.concatenate([[0], np.cumsum(nblk)[:-1]])
        cb = np.repeat(np.arange(nblk.size), nblk)       # candidate of each block
        comp = np.ceil(nnz / R[cb])
        blk0 = np.arange(nnz.size) == boff[cb]
        kload = np.minimum(d_rows, depth) * nk           # a broadcast K-tile sweep
        load = np.where(bc[cb], np.where(blk0 | (nk[cb] != 1), kload[cb], 0.0), comp)
        ld_bytes = np.where(bc[cb], load * ncols[cb] * d_b[cb], nnz * ncols[cb] * d_b[cb])
        byts = nnz * s_b[cb] + ld_bytes + rws * ncols[cb] * o_b[cb]
        cl = np.maximum(comp, load)
        wbr = np.ceil(rws / WV[cb])
        wbb = rws * ncols[cb] * o_b[cb]
        first = np.where(bc, np.minimum(d_rows, depth), np.minimum(comp[boff], cap8))
        # rows: one (candidate, distinct bandwidth) each
        ncfg = np.array([bw_of[r][0].size for r in rows_of])
        cand_r = np.repeat(np.arange(len(cand)), ncfg)
        B_r = np.concatenate([bw_of[r][0] for r in rows_of])
        nrow = cand_r.size
        # elements: one (row, block) each
        E = nblk[cand_r]
        estart = np.concatenate([[0], np.cumsum(E)[:-1]])
        row_e = np.repeat(np.arange(nrow), E)
        blk = np.arange(E.sum()) - estart[row_e]
        gb = boff[cand_r[row_e]] + blk
        Be = B_r[row_e]
        wb = np.maximum(wbr[gb], wbb[gb] / Be)
        per = np.maximum(cl[gb], byts[gb] / Be)
        notfirst = blk > 0
        per[notfirst] = np.maximum(per[notfirst], wb[np.flatnonzero(notfirst) - 1])
        tot = np.bincount(row_e, per, nrow)
        wb_last = wb[estart + E - 1]
        c = cand_r
        est = nct[c] * (tot + syncs[c]) + wb_last + first[c]
        # per item: a matrix candidates × configurations; the first minimum wins
        r0 = 0
        for it, (ph, cfg0, ia) in enumerate(items):
            k = len(cands_of[it])
            if k == 0:
                out.append([("gathered", _fits(ph, cfg0, max(1, math.ceil(
                    ph.row_nnz.size / (cfg0.rows * cfg0.out_bank_depth)))))] * ia.size)
                continue
            ub, inv = bw_of[it]
            n = ub.size
            mat = est[r0:r0 + k * n].reshape(k, n)[:, inv] + Lall[ia]
            r0 += k * n
            best = mat.argmin(axis=0)
            fitted: dict = {}
            picks = []
            for ci in best.tolist():
                if ci not in fitted:
                    m, nb = cands_of[it][ci]
                    fitted[ci] = (m, _fits(ph, cfg0, nb))
                picks.append(fitted[ci])
            out.append(picks)
    else:
        for ph, cfg0, ia in items:
            out.append([("gathered", _fits(ph, cfg0, max(1, math.ceil(
                ph.row_nnz.size / (cfg0.rows * cfg0.out_bank_depth)))))] * ia.size)
    return out


_PLAN_CACHE: dict = {}


def _plans(ph: PhaseStats, R: int, nb: int):
    """Per row block of ``nb``: the fullest PE row's nonzeros over the mean, and the most
    pieces any PE row holds, from the compiler's own balancing (``compiler._assign``).
    Neither depends on the output-bank depth, which only decides whether the pieces fit,
    so the assignment runs once per (phase, rows, row blocks)."""
    key = (id(ph), R, nb)
    hit = _PLAN_CACHE.get(key)
    if hit is not None and hit[0] is ph:
        return hit[1], hit[2]
    scale, most = [], []
    for rows in _row_blocks(ph.row_nnz, nb):
        plan = _assign(rows, ph.row_nnz, R, 1 << 62)
        tot = float(ph.row_nnz[rows].sum())
        scale.append(float(plan[-1].max()) * R / tot if tot else 1.0)
        most.append(int(np.bincount(plan[3], minlength=R).max()) if plan[0].size else 0)
    if len(_PLAN_CACHE) > 4096:
        _PLAN_CACHE.clear()
    _PLAN_CACHE[key] = (ph, np.asarray(scale), np.asarray(most))
    return _PLAN_CACHE[key][1], _PLAN_CACHE[key][2]


def _fits(ph: PhaseStats, cfg: HardwareConfig, nb: int) -> int:
    """The compiler raises the row-block count until every PE row's pieces fit its output
    bank; where that is in doubt (a lane could need more than 3/4 of the slots) the
    compiler's own assignment decides."""
    R, depth = cfg.rows, cfg.out_bank_depth
    o = ph.row_nnz.size
    while True:
        _, rows_b = _blocks(ph, nb)
        if rows_b.size == 0 or rows_b.max() <= 0.75 * R * depth:
            return nb
        if _plans(ph, R, nb)[1].max() <= depth or nb >= o:
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
    return np.sum(-np.expm1(-m[:, None] * q[None, :]), axis=1)


def _lane_scale(ph: PhaseStats, cfg: HardwareConfig, nb: int) -> np.ndarray:
    """Per row block, the fullest PE row's nonzeros over the mean (1 where the pieces do
    not fit the output bank: the compiler then uses more blocks)."""
    scale, most = _plans(ph, cfg.rows, nb)
    return np.where(most <= cfg.out_bank_depth, scale, 1.0)


def _max_lane(mean: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Expected largest of R lanes' element counts in one tile when each holds ``mean`` on
    average (balanced over whole rows, so per tile the counts scatter like Poisson)."""
    spread = np.sqrt(2.0 * np.maximum(mean, 0.0) * np.log(np.maximum(R, 1.0))) * 0.5
    return np.where(R > 1, mean + spread, mean)


@dataclass(frozen=True, eq=False)
class _Schedule:
    """The bandwidth-independent shape of one phase on one array: per tile (in program
    order) its issue cycles, stream bytes and the load of the next tile that overlaps it;
    per unit (row block × column tile) its writeback; the traffic and access counts."""

    comp: np.ndarray       # issue cycles of the fullest PE row
    s_elems: np.ndarray    # streamed elements fetched while the tile issues
    nxt_rows: np.ndarray   # local-memory writes (per lane) of the next load overlapping it
    nxt_bytes: np.ndarray  # their off-chip bytes
    nxt_rate: np.ndarray   # the most load bytes per cycle (one write per loading lane)
    starts: np.ndarray     # first tile of each unit
    last: np.ndarray       # last tile of each unit
    unit_of: np.ndarray    # unit of each tile
    mult: np.ndarray       # identical consecutive tiles of a unit are stored once
    sync: int              # per unit: lanes meet, the last merges drain
    wb_bytes: np.ndarray   # per unit
    wb_steps: np.ndarray   # per unit: writeback steps (one per cycle at most)
    first_rows: float      # the exposed first load
    first_bytes: float
    stream_elems: float    # elements streamed in the phase (times its bytes: S traffic)
    other_bytes: float     # load and writeback traffic
    counts: dict           # access counts, without offchip_bytes


def _offchip(sch: _Schedule, s_b: int) -> float:
    return sch.stream_elems * s_b + sch.other_bytes


_SCHED_CACHE: dict = {}


def _schedules(specs) -> list:
    """The schedules of ``specs`` (phase, configuration, mode, row blocks), memoised; the
    missing ones are built together (:func:`_build_schedules`)."""
    out, keys, todo = [], [], {}
    for ph, cfg, mode, nb in specs:
        scale = _lane_scale(ph, cfg, nb)
        kdepth = min(cfg.lmem_depth, ph.d_rows) if mode == "broadcast" else 0
        key = (id(ph), cfg.rows, cfg.cols, cfg.writeback_vectors, kdepth, mode, nb,
               scale.tobytes())
        hit = _SCHED_CACHE.get(key)
        if hit is not None and hit[0] is ph:
            out.append(hit[1])
        else:
            out.append(None)
            if key not in todo:
                todo[key] = (ph, cfg, mode, nb, scale)
        keys.append(key)
    if todo:
        if len(_SCHED_CACHE) + len(todo) > 4096:
            _SCHED_CACHE.clear()
        for key, sch in zip(todo, _build_schedules(list(todo.values()))):
            _SCHED_CACHE[key] = (todo[key][0], sch)
        out = [o if o is not None else _SCHED_CACHE[k][1] for o, k in zip(out, keys)]
    return out


def _starts_of(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _build_schedules(specs) -> list:
    """Tiles in program order (column tiles > row blocks > K tiles), as the compiler emits
    them, for every spec at once.  Broadcast: K tiles of ``lmem_depth`` D rows loaded by
    lane 0 into every lane (a single K tile stays resident across the row blocks of a
    column tile); gathered: each lane loads the distinct D rows its own nonzeros touch, in
    about 8·C-element pieces.  Every column tile repeats the row blocks' tiles; only its
    width differs."""
    n = len(specs)
    # per spec
    R = np.array([sp_[1].rows for sp_ in specs], float)
    WV = np.array([sp_[1].writeback_lanes for sp_ in specs], float)
    C = np.array([sp_[1].cols for sp_ in specs], float)
    dcols = np.array([sp_[0].d_cols for sp_ in specs], float)
    d_b = np.array([_bytes_of(sp_[0].d_bits) for sp_ in specs], float)
    o_b = np.array([_bytes_of(sp_[0].o_bits) for sp_ in specs], float)
    nct = np.ceil(dcols / C).astype(np.int64)
    bc = np.array([sp_[2] == "broadcast" for sp_ in specs])
    blocks = [_blocks(sp_[0], sp_[3]) for sp_ in specs]
    nbk = np.array([b[0].size for b in blocks])
    kt = [_ktiles(sp_[0], sp_[1].lmem_depth) if sp_[2] == "broadcast" else (None, None)
          for sp_ in specs]
    nk = np.array([k[0].size if k[0] is not None else 0 for k in kt])
    bump = bc & (nk > 1) & np.array([not sp_[0].uniform_len for sp_ in specs])
    # per block
    sb_ = np.repeat(np.arange(n), nbk)
    nnz = np.concatenate([b[0] for b in blocks])
    rows = np.concatenate([b[1] for b in blocks])
    scale = np.concatenate([sp_[4] for sp_ in specs])
    boff = _starts_of(nbk)
    blocal = np.arange(nnz.size) - boff[sb_]
    per_lane = nnz / R[sb_]
    pieces = np.minimum(64, np.maximum(2, per_lane // (8 * C[sb_]))).astype(np.int64)
    dist = np.zeros(nnz.size)
    for i in np.flatnonzero(~bc).tolist():
        dist[boff[i]:boff[i] + nbk[i]] = _distinct_blocks(specs[i][0], specs[i][1].rows,
                                                          specs[i][3])
    tiles_b = np.where(bc[sb_], nk[sb_], pieces)
    # per template tile (one column tile's)
    tb = np.repeat(np.arange(nnz.size), tiles_b)          # block of each template tile
    ts = sb_[tb]                                           # spec of each template tile
    k = np.arange(tb.size) - _starts_of(tiles_b)[tb]       # K tile or piece index
    ktab = np.concatenate([x[0] for x in kt if x[0] is not None] or [np.zeros(0)])
    ltab = np.concatenate([x[1] for x in kt if x[1] is not None] or [np.zeros(0)])
    koff = _starts_of(nk)
    isbc = bc[ts]
    kidx = np.where(isbc, koff[ts] + k, 0)
    frac = ktab[kidx] if ktab.size else np.zeros(tb.size)
    mean = per_lane[tb] * frac
    Rt = R[ts]
    # per K tile the lanes' shares scatter around their whole-row balance
    comp_bc = np.where(bump[ts], _max_lane(mean, Rt), mean) * scale[tb]
    loads_bc = ltab[kidx] if ltab.size else np.zeros(tb.size)
    loads_bc = np.where((nk[ts] == 1) & (blocal[tb] > 0), 0.0, loads_bc)   # resident
    pt = pieces[tb]
    comp = np.where(isbc, comp_bc, per_lane[tb] * scale[tb] / pt)
    loads = np.where(isbc, loads_bc, dist[tb] / pt)
    fetch = np.where(isbc, loads, loads * Rt)
    # stream bytes follow the elements: the FIFO runs at most a few entries ahead
    csum = np.bincount(tb, comp, nnz.size)
    w = np.where(csum[tb] > 0, comp / np.where(csum[tb] > 0, csum[tb], 1.0), 1.0 / tiles_b[tb])
    sw = nnz[tb] * w
    # per tile: every column tile repeats the template
    T1 = np.bincount(ts, minlength=n)
    t1off = _starts_of(T1)
    NT = nct * T1
    fs = np.repeat(np.arange(n), NT)
    fl = np.arange(NT.sum()) - _starts_of(NT)[fs]
    ct = fl // np.maximum(T1[fs], 1)
    ti = t1off[fs] + fl % np.maximum(T1[fs], 1)
    ncols = np.minimum(C[fs], dcols[fs] - ct * C[fs])
    comp_f = comp[ti]
    lrows = loads[ti]
    lbytes = fetch[ti] * ncols * d_b[fs]
    sw_f = sw[ti]
    NU = nct * nbk
    uoff = _starts_of(NU)
    unit = uoff[fs] + ct * nbk[fs] + blocal[tb[ti]]        # global unit id
    # per unit
    us = np.repeat(np.arange(n), NU)
    ul = np.arange(NU.sum()) - uoff[us]
    uct = ul // np.maximum(nbk[us], 1)
    ub = boff[us] + ul % np.maximum(nbk[us], 1)
    u_ncols = np.minimum(C[us], dcols[us] - uct * C[us])
    wbb = u_ncols * rows[ub] * o_b[us]
    steps = rows[ub] / WV[us]
    # A tile's load may start once the load unit has finished the previous load and the
    # tile that last used its bank has been read (t_prev_same_bank): the load of the next
    # loading tile overlaps every tile since the previous loading tile (one tile when the
    # banks alternate; a whole column tile when one D tile stays resident), spread over
    # them in proportion to their issue cycles.
    is_load = lrows > 0
    L = np.flatnonzero(is_load)
    grp = np.cumsum(is_load) - 1
    specL = fs[L]
    first_g = np.searchsorted(specL, np.arange(n))         # first load (index in L) per spec
    has = (first_g < L.size)
    has[has] = specL[first_g[has]] == np.arange(n)[has]
    nxt_ok = np.zeros(L.size, bool)
    if L.size > 1:
        nxt_ok[:-1] = specL[1:] == specL[:-1]
    nxt_r = np.where(nxt_ok, np.append(lrows[L[1:]], 0.0) if L.size else np.zeros(0), 0.0)
    nxt_b = np.where(nxt_ok, np.append(lbytes[L[1:]], 0.0) if L.size else np.zeros(0), 0.0)
    inside = (grp >= 0) & has[fs]
    inside[inside] = grp[inside] >= first_g[fs[inside]]
    g = grp[inside]
    gsum = np.bincount(g, comp_f[inside], L.size)
    gcnt = np.bincount(g, minlength=L.size).astype(float)
    share = np.where(gsum[g] > 0, comp_f[inside] / np.where(gsum[g] > 0, gsum[g], 1.0),
                     1.0 / np.maximum(gcnt[g], 1.0))
    nxt_rows = np.zeros(comp_f.size)
    nxt_bytes = np.zeros(comp_f.size)
    nxt_rows[inside] = nxt_r[g] * share
    nxt_bytes[inside] = nxt_b[g] * share
    fidx = L[np.minimum(first_g, max(L.size - 1, 0))] if L.size else np.zeros(n, np.int64)
    first_rows = np.where(has, lrows[fidx] if L.size else 0.0, 0.0)
    first_bytes = np.where(has, lbytes[fidx] if L.size else 0.0, 0.0)
    rate = np.where(nxt_rows > 0, nxt_bytes / np.where(nxt_rows > 0, nxt_rows, 1.0), 0.0)
    # identical consecutive tiles of a unit (a gathered block's pieces) are stored once,
    # with their multiplicity; a unit's last tile stays on its own
    nt = comp_f.size
    last_t = np.ones(nt, bool)
    last_t[:-1] = unit[1:] != unit[:-1]
    same = ((unit[1:] == unit[:-1]) & ~last_t[1:] & (comp_f[1:] == comp_f[:-1])
            & (sw_f[1:] == sw_f[:-1]) & (nxt_rows[1:] == nxt_rows[:-1])
            & (nxt_bytes[1:] == nxt_bytes[:-1]))
    run = np.flatnonzero(np.concatenate([[True], ~same]))
    mult = np.diff(np.append(run, nt)).astype(float)
    r_unit = unit[run]
    r_spec = fs[run]
    rcut = np.searchsorted(r_spec, np.arange(n + 1))
    ucut = np.append(uoff, NU.sum())
    # per spec: traffic and access counts
    ld_sum = np.bincount(ts, loads, n)
    fetch_sum = np.bincount(ts, fetch, n)
    ncols_sum = np.bincount(fs, ncols, n) / np.maximum(T1, 1)   # sum over column tiles
    lb_sum = np.bincount(fs, lbytes, n)
    wb_sum = np.bincount(us, wbb, n)
    nnz_sum = np.bincount(sb_, nnz, n)
    rows_sum = np.bincount(sb_, rows, n)
    out = []
    for i in range(n):
        a, b = rcut[i], rcut[i + 1]
        ru = r_unit[a:b] - uoff[i]
        starts = np.flatnonzero(np.concatenate([[True], ru[1:] != ru[:-1]]))
        last = np.append(starts[1:], b - a) - 1
        macs = float(nnz_sum[i]) * float(dcols[i])
        elems = float(nnz_sum[i]) * int(nct[i])
        counts = {"useful_macs": macs, "lmem_reads": macs,
                  "lmem_writes": float(ld_sum[i]) * R[i] * float(ncols_sum[i]),
                  "out_bank_reads": float(rows_sum[i]) * dcols[i],
                  "out_bank_writes": float(rows_sum[i]) * dcols[i],
                  "stream_fifo_writes": elems,
                  "load_fifo_writes": float(fetch_sum[i]) * int(nct[i])}
        sel = run[a:b]
        cfg = specs[i][1]
        out.append(_Schedule(comp_f[sel], sw_f[sel], nxt_rows[sel], nxt_bytes[sel], rate[sel],
                             starts, last, ru, mult[a:b],
                             cfg.cols + cfg.pe_latency_cycles + cfg.merge_latency_cycles,
                             wbb[ucut[i]:ucut[i + 1]], steps[ucut[i]:ucut[i + 1]],
                             float(first_rows[i]), float(first_bytes[i]), elems,
                             float(lb_sum[i] + wb_sum[i]), counts))
    return out


_KT_CACHE: dict = {}


def _ktiles(ph: PhaseStats, depth: int):
    """Broadcast K tiles of ``depth`` D rows that hold nonzeros: the fraction of S's
    nonzeros in each and its D rows (one empty tile if S has none)."""
    key = (id(ph), min(depth, ph.d_rows))
    hit = _KT_CACHE.get(key)
    if hit is not None and hit[0] is ph:
        return hit[1], hit[2]
    tot = ph.k_cum[-1]
    kb = np.unique(np.minimum(np.arange(0, ph.d_rows + depth, depth), ph.d_rows))
    frac = np.diff(ph.k_cum[kb]) / tot if tot else np.zeros(kb.size - 1)
    keep = frac > 0
    ld_rows_k = np.diff(kb).astype(float)[keep]
    frac = frac[keep]
    if frac.size == 0:
        frac, ld_rows_k = np.zeros(1), np.zeros(1)
    if len(_KT_CACHE) > 4096:
        _KT_CACHE.clear()
    _KT_CACHE[key] = (ph, frac, ld_rows_k)
    return frac, ld_rows_k


_DIST_CACHE: dict = {}


def _distinct_blocks(ph: PhaseStats, R: int, nb: int) -> np.ndarray:
    """Expected distinct D rows each PE row touches in each row block (memoised)."""
    key = (id(ph), R, nb)
    hit = _DIST_CACHE.get(key)
    if hit is not None and hit[0] is ph:
        return hit[1]
    d = _distinct(ph, _blocks(ph, nb)[0] / R)
    if len(_DIST_CACHE) > 4096:
        _DIST_CACHE.clear()
    _DIST_CACHE[key] = (ph, d)
    return d


def _unit_terms(comp, S, Lb, rate, B):
    """Per tile (every argument an array over tiles × bandwidths, flattened), for one
    configuration's bandwidth ``B``: the issue time, the load wait beyond it and the
    bytes left for writebacks in each.

    Each tile issues while the next load runs (double-buffered local memory).  The memory
    grants transfers in a fixed order inside a cycle (docs/machine.md, rule 0): the
    stream fetch of every lane, the loads, a writeback step, and a request that does not
    fit stops every later one.

    * the stream moves its bytes at most as fast as the rows issue and as B allows:
      ``T_s = max(issue, stream bytes / B)``, using ``u = stream bytes / T_s`` per cycle;
    * the loads only get what the stream leaves, however small their requests:
      ``a = min(rate, B - u)`` while the stream runs, then ``min(rate, B)`` (``rate``:
      one write per loading lane per cycle);
    * a writeback step moves R·ncols outputs at once and waits until the bucket holds all
      of them, so it gets what stream and loads leave (:func:`_units_cycles`)."""
    one = 1.0
    Ts = np.maximum(comp, S / B)
    u = S / np.where(Ts > 0, Ts, one)
    a = np.minimum(np.maximum(B - u, 0.0), rate)
    aT = a * Ts
    t_during = Lb / np.where(a > 0, a, one)
    full = np.minimum(rate, B)
    t_after = Ts + (Lb - aT) / np.where(full > 0, full, one)
    Tl = np.where(aT >= Lb, t_during, t_after)
    ld_in = np.minimum(Lb, aT)                     # load bytes moved while the tile issues
    x = np.maximum(Tl - Ts, 0.0)                   # the load outlasts the issue
    left_c = np.maximum(B * Ts - S - ld_in, 0.0)   # bytes free while issuing
    left_x = np.maximum(B * x - (Lb - ld_in), 0.0)
    return Ts, x, left_c, left_x


def _units_cycles(first, udur, lam, ux, uxl, rx, W, steps, B) -> np.ndarray:
    """The unit recurrence, for many phases at once (one per row; every array is
    (phases, units), left-padded with zero units, which leave the state unchanged).

    Unit k starts when its first load is done (the load wait ``ux`` after unit k-1) and
    the writeback of unit k-2 (its output-bank half) is done.  The writeback of unit k-1
    starts when k-1 has issued its last element and the previous writeback is done; it
    uses what is left: the rest of the load wait before unit k (``rx`` per cycle), unit
    k's issue (``lam`` per cycle), the load wait after unit k, then all of B; at least
    one cycle per step."""
    cend = first                                   # a virtual unit -1 ends at ``first``
    we = np.zeros(first.size)                      # writeback end of unit k-2
    one = 1.0
    for k in range(udur.shape[1]):
        if k:
            xk, rxk, w, stp = ux[:, k - 1], rx[:, k - 1], W[:, k - 1], steps[:, k - 1]
        else:
            xk = rxk = w = stp = np.zeros(first.size)
        ws = np.maximum(cend, we)
        s = np.maximum(cend + xk, we)
        dk, lk, rk = udur[:, k], lam[:, k], rx[:, k]
        new_cend = s + dk
        p1 = np.maximum(cend + xk - ws, 0.0)
        a1 = rxk * p1
        a12 = a1 + lk * dk
        a123 = a12 + uxl[:, k]
        t1 = ws + w / np.where(rxk > 0, rxk, one)
        t2 = s + (w - a1) / np.where(lk > 0, lk, one)
        t3 = new_cend + (w - a12) / np.where(rk > 0, rk, one)
        t4 = new_cend + ux[:, k] + (w - a123) / B
        we = np.where(w <= a1, t1, np.where(w <= a12, t2, np.where(w <= a123, t3, t4)))
        we = np.maximum(we, ws + stp)
        cend = new_cend
    return np.maximum(cend, we) + np.maximum(steps[:, -1], W[:, -1] / B)


# ---- evaluation -------------------------------------------------------------------------
def _order_of(stats: ProblemStats, cfg: HardwareConfig, order: str) -> str:
    """The association order ``compile_problem`` uses: ``compiler.choose_order``'s
    estimate (streamed elements times column tiles, over the rows) from the problem's
    precomputed terms, the first smallest."""
    if stats.gather_only:
        return "(ax)w"
    if order == "auto":
        C = cfg.cols
        est = {}
        for o in ORDERS:
            cyc = 0.0
            for elems in stats.order_terms[o]:
                cyc += sum(e * math.ceil(w / C) for e, w in elems) / cfg.rows
            est[o] = cyc
        return min(ORDERS, key=lambda o: (est[o], ORDERS.index(o)))
    if order not in ORDERS:
        raise ModelError(f"unknown order {order!r}; expected auto, a(xw) or (ax)w")
    return order


def _batch_cycles(jobs, Ball: np.ndarray, Lall: np.ndarray) -> np.ndarray:
    """Cycles of every (configuration, phase) in ``jobs`` (config indices, phase position,
    schedule), as one array computation: per tile, per unit, then the unit recurrence."""
    uniq: dict = {}
    for job in jobs:
        uniq.setdefault(id(job[2]), (len(uniq), job[2]))
    schs = [v[1] for v in uniq.values()]
    T = np.array([x.comp.size for x in schs])
    U = np.array([x.starts.size for x in schs])
    toff = np.concatenate([[0], np.cumsum(T)[:-1]])
    uoff = np.concatenate([[0], np.cumsum(U)[:-1]])
    cat = lambda name: np.concatenate([getattr(x, name) for x in schs])  # noqa: E731
    comp, Se, Lb, rate = (cat(k) for k in ("comp", "s_elems", "nxt_bytes", "nxt_rate"))
    unit_of = cat("unit_of")
    mult = cat("mult")
    is_last = np.zeros(comp.size, bool)
    is_last[np.concatenate([x.last + o for x, o in zip(schs, toff)])] = True
    W, steps = cat("wb_bytes"), cat("wb_steps")
    sync = np.array([x.sync for x in schs], float)
    f_rows = np.array([x.first_rows for x in schs])
    f_bytes = np.array([x.first_bytes for x in schs])
    # jobs: schedule, configurations
    js = np.array([uniq[id(j[2])][0] for j in jobs])
    # rows: one (job, distinct bandwidth) each; the latency is added per configuration
    bw = [_distinct_values(Ball[j[0]]) for j in jobs]
    nj = np.array([b[0].size for b in bw])
    sbj = np.array([j[3] for j in jobs], float)      # bytes of a streamed element
    # the FIFOs' rate limits (HardwareConfig.stream_fifo_rate, load_fifo_rate)
    fs_r = np.repeat(np.array([j[4] for j in jobs], float), nj)
    fl_r = np.repeat(np.array([j[5] for j in jobs], float), nj)
    row_s = np.repeat(js, nj)                          # schedule of each row
    Br = np.concatenate([b[0] for b in bw])
    nrow = row_s.size
    # elements: one (row, tile) each, rows in order, tiles in order
    E = T[row_s]
    estart = np.concatenate([[0], np.cumsum(E)[:-1]])
    row_e = np.repeat(np.arange(nrow), E)
    tile = np.arange(E.sum()) - estart[row_e] + toff[row_s[row_e]]
    Be = Br[row_e]
    sb_e = np.repeat(sbj, nj)[row_e]
    # the stream fetch is granted first in a cycle; the loads get what it leaves
    Ts, x, left_c, left_x = _unit_terms(comp[tile] / fs_r[row_e], Se[tile] * sb_e, Lb[tile],
                                        rate[tile] * fl_r[row_e], Be)
    last_e = is_last[tile]
    m = mult[tile]
    dur = np.where(last_e, Ts, (Ts + x) * m)           # a unit ends with its last issue
    left = np.where(last_e, left_c, (left_c + left_x) * m)
    # units: one (row, unit) each
    Ur = U[row_s]
    ustart = np.concatenate([[0], np.cumsum(Ur)[:-1]])
    uid = ustart[row_e] + unit_of[tile]
    nu = int(Ur.sum())
    row_u = np.repeat(np.arange(nrow), Ur)
    su = sync[row_s[row_u]]
    udur = np.bincount(uid, dur, nu) + su
    # while the lanes meet and the last merges drain nothing is fetched for the unit:
    # the memory is the writeback's
    lam = (np.bincount(uid, left, nu) + su * Br[row_u]) / udur
    ux = np.zeros(nu)
    uxl = np.zeros(nu)
    ux[uid[last_e]] = x[last_e]                        # the next unit's first load, after
    uxl[uid[last_e]] = left_x[last_e]
    rx = np.where(ux > 0, uxl / np.where(ux > 0, ux, 1.0), 0.0)
    ulocal = np.arange(nu) - ustart[row_u]
    Wu = W[uoff[row_s[row_u]] + ulocal]
    Su = steps[uoff[row_s[row_u]] + ulocal]
    first = np.maximum(f_rows[row_s] / fl_r, f_bytes[row_s] / Br)
    out = np.empty(nrow)
    # the recurrence, rows bucketed by unit count (a power of two, zero units in front)
    width = np.array([1 << int(v - 1).bit_length() for v in Ur])
    for Ub in np.unique(width).tolist():
        rows = np.flatnonzero(width == Ub)
        where = np.full(nrow, -1)
        where[rows] = np.arange(rows.size)
        mu = np.flatnonzero(width[row_u] == Ub)
        r_in = where[row_u[mu]]
        col = Ub - Ur[row_u[mu]] + ulocal[mu]
        mats = np.zeros((7, rows.size, Ub))
        for k, v in enumerate((udur, lam, ux, uxl, rx, Wu, Su)):
            mats[k][r_in, col] = v[mu]
        out[rows] = _units_cycles(first[rows], *mats, Br[rows])
    res = np.zeros((Ball.size, max(j[1] for j in jobs) + 1))
    r0 = 0
    for (sel, pos, *_), (ub, inv) in zip(jobs, bw):
        res[sel, pos] = out[r0 + inv] + Lall[sel]
        r0 += ub.size
    return res


def clear_caches() -> None:
    """Forget every memoised schedule, plan and decision (for timing a cold sweep)."""
    for c in (_BLOCK_CACHE, _PLAN_CACHE, _SCHED_CACHE, _KT_CACHE, _DIST_CACHE):
        c.clear()


def evaluate(stats: ProblemStats | Problem, cfg: HardwareConfig,
             order: str = "auto") -> ModelResult:
    """The model's cycles, traffic and access counts for one configuration."""
    return evaluate_many(stats, [cfg], order)[0]


def evaluate_many(stats: ProblemStats | Problem, configs, order: str = "auto") -> list[ModelResult]:
    """:func:`evaluate` for many configurations at once, in their order.

    Configurations that share the array and its memories (rows, cols, lmem_depth,
    out_bank_depth, the PE's latency) share the compiler's candidates and the schedules' shapes; their
    bandwidths and latencies are evaluated together as arrays, and the unit recurrence of
    every phase of every configuration runs as one array loop.  Each element goes through
    the same arithmetic as a configuration evaluated alone, so the results equal
    ``evaluate(stats, cfg)`` exactly."""
    if isinstance(stats, Problem):
        stats = problem_stats(stats)
    configs = list(configs)
    k = stats.problem.contract
    groups: dict = {}
    for i, cfg in enumerate(configs):
        if k.operand.bits != cfg.operand_bits or k.acc.bits != cfg.acc_bits:
            raise ModelError(f"contract {k.name} ({k.operand.name}/{k.acc.name}) does not "
                             f"match the hardware (s{cfg.operand_bits}/s{cfg.acc_bits})")
        groups.setdefault((cfg.rows, cfg.cols, cfg.lmem_depth, cfg.out_bank_depth,
                           cfg.writeback_vectors, cfg.stream_fifo_rate, cfg.load_fifo_rate,
                           cfg.pe_latency_cycles),
                          []).append(i)
    n = len(configs)
    Ball = np.array([c.dram_bytes_per_cycle for c in configs], float)
    # exposed once per phase: the DRAM latency, and the request lag twice (the phase's
    # first requests and its last writeback are decided d cycles ahead, rule 0); the
    # credit lag is left out (it keeps the bandwidth B: bench_request_lag.py measures
    # -0.3 % .. +0.2 % cycles at the default FIFOs)
    Lall = np.array([c.dram_latency_cycles + 2 * c.request_lag_cycles for c in configs],
                    float)
    order_of = [""] * n
    picks_of: list = [[] for _ in range(n)]      # per config: the schedule of each phase
    jobs = []                                     # (config indices, phase position, schedule)
    items = []
    for idx in groups.values():
        cfg0 = configs[idx[0]]
        ia = np.asarray(idx)
        order_g = _order_of(stats, cfg0, order)
        for i in idx:
            order_of[i] = order_g
        for pos, ph in enumerate(stats.phases[order_g]):
            items.append((ph, cfg0, ia, pos))
    decided = _decide_all([it[:3] for it in items], Ball, Lall)
    pending = []
    for (ph, cfg0, ia, pos), picks in zip(items, decided):
        by_pick: dict = {}
        for j, pk in enumerate(picks):
            by_pick.setdefault(pk, []).append(j)
        for pk, js in by_pick.items():
            pending.append((ph, cfg0, ia, pos, pk, js))
    schs = _schedules([(ph, cfg0, *pk) for ph, cfg0, _, _, pk, _ in pending])
    for (ph, cfg0, ia, pos, pk, js), sch in zip(pending, schs):
        sel = ia[js]
        s_b = _transfer_bytes(ph, cfg0)[0]
        jobs.append((sel, pos, sch, s_b, cfg0.stream_fifo_rate, cfg0.load_fifo_rate))
        dec = (sch, (ph.label, pk[0], pk[1], math.ceil(ph.d_cols / cfg0.cols)), s_b)
        for i in sel.tolist():
            picks_of[i].append(dec)
    nph = max((len(stats.phases[o]) for o in set(order_of)), default=0)
    cyc = np.zeros((n, nph))
    if jobs:
        cyc[:] = _batch_cycles(jobs, Ball, Lall)
    results: list = []
    merged: dict = {}
    cyc_rows = cyc.tolist()
    for i, cfg in enumerate(configs):
        pk = picks_of[i]
        key = tuple(pk)
        hit = merged.get(key)
        if hit is None:
            counts: dict = {}
            for sch, _, _ in pk:
                for name, v in sch.counts.items():
                    counts[name] = counts.get(name, 0.0) + v
            byts = tuple(_offchip(sch, s_b) for sch, _, s_b in pk)
            tot_b = float(sum(byts))
            counts["offchip_bytes"] = tot_b
            hit = merged[key] = (counts, byts, tot_b, tuple(d for _, d, _ in pk),
                                 int(round(counts["useful_macs"])))
        counts, byts, tot_b, decs, macs = hit
        cycles = tuple(cyc_rows[i][:len(pk)])
        total = float(sum(cycles))
        results.append(ModelResult(cfg, order_of[i], total, macs,
                                   macs / (cfg.pes * total) if total else 0.0, tot_b, byts,
                                   cycles, decs, dict(counts)))
    return results
