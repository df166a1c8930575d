"""The dataflow compiler: lowers a Problem onto a HardwareConfig and emits a Program.

Decisions, each from a closed-form cost model (``meta['decisions']`` records them):

* association order per problem: ``a(xw)`` or ``(ax)w`` (forced by the user or cheapest);
* per phase, how the stationary operand D reaches the local memories: ``broadcast`` (one
  D tile shared by every PE row; K tiles of ``lmem_depth`` rows) or ``gathered`` (each PE
  row loads only the D rows its own nonzeros touch, packed densely);
* row blocks (so each PE row's output slots fit one half of its output bank, and so the
  writeback of one block hides under the next), and column tiles of ``cols`` outputs;
* assignment of output rows to PE rows: rows longer than an even share are split, pieces
  are dealt to PE rows in a boustrophedon order of decreasing length (static balancing);
* conv gathers (0/1 A times a block-diagonal X) become address generation into the image.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .config import HardwareConfig
from .errors import AxwError, ProgramError
from .problem import Problem
from .program import (FLAG_FIRST, FLAG_FRESH, FLAG_LAST, SLOT_NONE, SLOT_ZERO, Program,
                      transfer_bytes)
from .reference import ORDERS

__all__ = ["compile_problem", "build_memory", "useful_macs_by_order", "choose_order"]


@dataclass
class _Phase:
    """One S·D product before scheduling."""

    label: str
    s_ptr: np.ndarray     # (rows+1,) per output row
    s_k: np.ndarray       # D row of each entry
    s_src: np.ndarray     # flat index into the S tensor of each entry
    s_tensor: int
    d_tensor: int
    out_tensor: int
    out_cols: np.ndarray  # D column j -> out tensor column
    d_rows: int
    d_cols: int
    rq_shift: int
    rq_bits: int          # 0: no requantization at writeback
    s_rq_shift: int = 0   # requantization of streamed values (a gather under a ``mid`` rule)
    s_rq_bits: int = 0


def _csr_parts(m: sp.csr_matrix):
    return (m.indptr.astype(np.int64), m.indices.astype(np.int64),
            np.arange(m.nnz, dtype=np.int64))


def _dense_parts(rows: int, cols: int):
    ptr = np.arange(rows + 1, dtype=np.int64) * cols
    k = np.tile(np.arange(cols, dtype=np.int64), rows)
    return ptr, k, np.arange(rows * cols, dtype=np.int64)


def _pattern_product(a: sp.csr_matrix, x, *, sort: bool = True) -> sp.csr_matrix:
    """Structural nonzeros of A·X: positions that can be nonzero whatever the values."""
    # int32 ones: the product counts each position's contributions, and a count must not
    # wrap to zero (with int8, 256 contributions did, and the position was dropped)
    pa = sp.csr_matrix((np.ones(a.nnz, np.int32), a.indices, a.indptr), shape=a.shape)
    if sp.issparse(x):
        px = sp.csr_matrix((np.ones(x.nnz, np.int32), x.indices, x.indptr), shape=x.shape)
        pp = (pa @ px).tocsr()
    else:
        nonempty = (np.diff(a.indptr) > 0).astype(np.int8)
        pp = sp.csr_matrix(np.repeat(nonempty[:, None], x.shape[1], axis=1))
    if sort:
        pp.sort_indices()
    return pp


_NNZ_CACHE: dict = {}


def _pattern_nnz(a: sp.csr_matrix, x) -> int:
    """nnz of the structural product, memoised per operand pair (cost model, reports)."""
    key = (id(a), id(x))
    hit = _NNZ_CACHE.get(key)
    if hit is not None and hit[0] is a and hit[1] is x:
        return hit[2]
    if not sp.issparse(x):
        n = int((np.diff(a.indptr) > 0).sum()) * x.shape[1]
    else:
        n = int(_pattern_product(a, x, sort=False).nnz)
    _NNZ_CACHE.clear()
    _NNZ_CACHE[key] = (a, x, n)
    return n


def useful_macs_by_order(problem: Problem) -> dict:
    """MACs each order needs with X's zeros skipped (gathers count their taps only)."""
    out = {"a(xw)": 0, "(ax)w": 0}
    for part in problem.parts:
        hp, cp = len(part.y_cols), len(part.x_cols)
        xp = problem.x_part(part)
        nnz_x = xp.nnz if sp.issparse(xp) else int(xp.size)
        ch = _gather_channels(problem, part)
        if ch is not None:
            # every nonzero of A expands to the part's channels
            out["(ax)w"] += part.a.nnz * ch.size * hp
            out["a(xw)"] += part.a.nnz * ch.size * hp
            continue
        out["a(xw)"] += nnz_x * hp + part.a.nnz * hp
        out["(ax)w"] += part.a.nnz * cp + _pattern_nnz(part.a, xp) * hp
    return out


def choose_order(problem: Problem, config: HardwareConfig) -> tuple[str, dict]:
    """Pick the order with fewer estimated cycles: MACs over the columns actually used."""
    est = {}
    C = config.cols
    for order in ORDERS:
        cyc = 0.0
        for part in problem.parts:
            hp, cp = len(part.y_cols), len(part.x_cols)
            xp = problem.x_part(part)
            nnz_x = xp.nnz if sp.issparse(xp) else int(xp.size)
            if order == "a(xw)":
                elems = [(nnz_x, hp), (part.a.nnz, hp)]
            else:
                elems = [(part.a.nnz, cp), (_pattern_nnz(part.a, xp), hp)]
            cyc += sum(e * math.ceil(w / C) for e, w in elems) / config.rows
        est[order] = cyc
    best = min(ORDERS, key=lambda o: (est[o], ORDERS.index(o)))
    return best, est


def _gather_channels(problem: Problem, part) -> np.ndarray | None:
    """The channels of a conv part whose X columns are a clean gather (every tap of the
    same channels), or None: then the part is multiplied as an ordinary A·X."""
    g = problem.gather
    if g is None:
        return None
    T, C = g.taps, g.channels
    xc = part.x_cols
    ch = xc[xc < C]
    if ch.size == 0 or xc.size != T * ch.size or \
            not np.array_equal(xc, (np.arange(T)[:, None] * C + ch[None, :]).ravel()):
        return None
    return ch


def _gather_structure(problem: Problem, part):
    """(ptr, k, src) of the patch stream of a conv part, or None if not a clean gather."""
    ch = _gather_channels(problem, part)
    if ch is None:
        return None
    P, C = problem.gather.pixels, problem.gather.channels
    a = part.a
    ind = a.indices.astype(np.int64)
    tap = ind // P
    pix = ind % P
    # each nonzero of A expands to the group's channels
    cg = ch.size
    k = (tap[:, None] * cg + np.arange(cg)[None, :]).ravel()
    src = (pix[:, None] * C + ch[None, :]).ravel()
    counts = np.diff(a.indptr).astype(np.int64) * cg
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ptr, k, src


# ---- tensors and phases ---------------------------------------------------------------
class _Tensors:
    def __init__(self):
        self.items = []

    def add(self, name, rows, cols, bits, kind, source=None):
        self.items.append({"name": name, "rows": int(rows), "cols": int(cols),
                           "bits": int(bits), "kind": kind, "source": source})
        return len(self.items) - 1


def _plan(problem: Problem, order: str, cfg: HardwareConfig):
    k = problem.contract
    tens = _Tensors()
    op_bits, mid_bits, out_bits = k.operand.bits, k.mid_format.bits, k.out_format.bits
    y = tens.add("Y", problem.o, problem.h, out_bits, "output")
    mid_rq = (k.mid.shift, k.mid.out.bits) if k.mid else (0, 0)
    out_rq = (k.out.shift, k.out.out.bits) if k.out else (0, 0)
    phases = []
    for pi, part in enumerate(problem.parts):
        hp, cp = len(part.y_cols), len(part.x_cols)
        xp = problem.x_part(part)
        wt = tens.add(f"W{pi}", cp, hp, op_bits, "input", {"what": "w", "part": pi})
        gs = _gather_structure(problem, part) if problem.gather is not None else None
        if gs is not None:
            g = problem.gather
            img = tens.add(f"I{pi}", g.pixels, g.channels, op_bits, "input",
                           {"what": "image", "part": pi})
            # U = A·X is a pure gather of image values, so the contract's ``mid`` rule
            # becomes a requantization of each streamed value
            phases.append(_Phase(f"p{pi}:gather(A·X)·W", *gs, img, wt, y, part.y_cols,
                                 cp, hp, *out_rq, *mid_rq))
            continue
        a = part.a
        at = tens.add(f"A{pi}", 1, a.nnz, op_bits, "input", {"what": "a_data", "part": pi})
        if order == "a(xw)":
            if sp.issparse(xp):
                xs = tens.add(f"X{pi}", 1, xp.nnz, op_bits, "input", {"what": "x_data", "part": pi})
                sptr, sk, ssrc = _csr_parts(xp)
            else:
                xs = tens.add(f"X{pi}", xp.shape[0], cp, op_bits, "input", {"what": "x_dense", "part": pi})
                sptr, sk, ssrc = _dense_parts(xp.shape[0], cp)
            t = tens.add(f"T{pi}", problem.n, hp, mid_bits, "intermediate")
            phases.append(_Phase(f"p{pi}:X·W", sptr, sk, ssrc, xs, wt, t,
                                 np.arange(hp, dtype=np.int64), cp, hp, *mid_rq))
            phases.append(_Phase(f"p{pi}:A·T", *_csr_parts(a), at, t, y, part.y_cols,
                                 problem.n, hp, *out_rq))
        else:
            xd = tens.add(f"X{pi}", xp.shape[0], cp, op_bits, "input", {"what": "x_dense", "part": pi})
            u = tens.add(f"U{pi}", problem.o, cp, mid_bits, "intermediate")
            phases.append(_Phase(f"p{pi}:A·X", *_csr_parts(a), at, xd, u,
                                 np.arange(cp, dtype=np.int64), problem.n, cp, *mid_rq))
            pp = _pattern_product(a, xp)
            rows = np.repeat(np.arange(pp.shape[0], dtype=np.int64), np.diff(pp.indptr))
            phases.append(_Phase(f"p{pi}:U·W", pp.indptr.astype(np.int64),
                                 pp.indices.astype(np.int64), rows * cp + pp.indices, u, wt, y,
                                 part.y_cols, cp, hp, *out_rq))
    return tens, phases


def build_memory(problem: Problem, program: Program) -> list[np.ndarray]:
    """The off-chip memory image: one 2-D int64 array per tensor (zeros if computed)."""
    mem = []
    for t in program.tensors:
        arr = np.zeros((t["rows"], t["cols"]), dtype=np.int64)
        src = t.get("source")
        if src is not None:
            part = problem.parts[src["part"]]
            what = src["what"]
            if what == "w":
                arr[:] = problem.w_part(part)
            elif what == "a_data":
                arr[0, :] = part.a.data
            elif what == "x_data":
                xp = sp.csr_matrix(problem.x_part(part))
                xp.sort_indices()
                arr[0, :] = xp.data
            elif what == "x_dense":
                xp = problem.x_part(part)
                arr[:] = xp.toarray() if sp.issparse(xp) else xp
            elif what == "image":
                g = problem.gather
                x = problem.x
                img = x[:g.pixels, :g.channels]
                arr[:] = img.toarray() if sp.issparse(img) else img
            else:
                raise ProgramError(f"unknown tensor source {what!r}")
        mem.append(arr)
    return mem


# ---- scheduling one phase ---------------------------------------------------------------
def _row_blocks(weights: np.ndarray, nb: int) -> list[np.ndarray]:
    """Split rows 0..o-1 into nb contiguous ranges; the last carries a quarter of the
    weight of the others, because its writeback is the one no computation hides."""
    o = weights.size
    if nb <= 1:
        return [np.arange(o)]
    if nb >= o:
        return [np.arange(r, r + 1) for r in range(o)]
    cum = np.cumsum(weights + 1)
    share = np.concatenate([np.ones(nb - 1), [0.25]])
    cuts = np.searchsorted(cum, cum[-1] * np.cumsum(share)[:-1] / share.sum())
    bounds = np.concatenate([[0], cuts, [o]])
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(nb) if bounds[i + 1] > bounds[i]]


def _assign(rows: np.ndarray, nnz: np.ndarray, R: int, depth: int):
    """Pieces (row, e0, e1, lane, slot) balancing nonzeros over R lanes."""
    w = nnz[rows]
    live = rows[w > 0]
    wl = nnz[live]
    total = int(wl.sum())
    share = max(1, math.ceil(total / R))
    npieces = np.minimum(np.maximum(1, -(-wl // share)), R)
    prow = np.repeat(live, npieces)
    pidx = np.arange(prow.size) - np.repeat(np.cumsum(npieces) - npieces, npieces)
    pn = np.repeat(npieces, npieces)
    plen = np.repeat(wl, npieces)
    e0 = (plen * pidx) // pn
    e1 = (plen * (pidx + 1)) // pn
    pw = e1 - e0
    # split rows first (distinct lanes), then deal the rest boustrophedon by weight
    lane = np.full(prow.size, -1, dtype=np.int64)
    load = np.zeros(R, dtype=np.int64)
    split = pn > 1
    sidx = np.flatnonzero(split)
    if sidx.size:
        start = 0
        while start < sidx.size:
            n = int(pn[sidx[start]])
            grp = sidx[start:start + n]
            order = np.argsort(load, kind="stable")[:n]
            lane[grp] = order
            load[order] += pw[grp]
            start += n
    rest = np.flatnonzero(~split)
    if rest.size:
        # longest-processing-time first for the heavy head, then fill each lane's
        # deficit from the light tail with contiguous runs of the sorted weights
        rest = rest[np.argsort(-pw[rest], kind="stable")]
        head = rest[:4 * R]
        heap = [(ld, i) for i, ld in enumerate(load.tolist())]
        heapq.heapify(heap)
        head_lane = []
        for wgt in pw[head].tolist():   # Python ints: no NumPy scalar per step
            ld, i = heapq.heappop(heap)
            head_lane.append(i)
            heapq.heappush(heap, (ld + wgt, i))
        lane[head] = head_lane
        load = np.zeros(R, dtype=np.int64)
        done = np.flatnonzero(lane >= 0)
        np.add.at(load, lane[done], pw[done])
        tail = rest[4 * R:]
        if tail.size:
            # each lane takes a share of the (descending) tail proportional to its
            # deficit, interleaved by stride scheduling so every lane gets a mix of
            # long and short rows: weights and row counts both come out even
            tw = pw[tail]
            target = (load.sum() + tw.sum()) / R
            deficit = np.maximum(0.0, target - load)
            share = deficit / deficit.sum() if deficit.sum() > 0 else np.full(R, 1.0 / R)
            n_i = np.floor(share * tail.size).astype(np.int64)
            extra = tail.size - n_i.sum()
            n_i[np.argsort(-(share * tail.size - n_i), kind="stable")[:extra]] += 1
            who = np.repeat(np.arange(R), n_i)
            j = np.arange(who.size) - np.repeat(np.cumsum(n_i) - n_i, n_i)
            vt = (j + 0.5) / n_i[who]
            lane[tail] = who[np.argsort(vt, kind="stable")]
            np.add.at(load, lane[tail], tw)
    # slots: order of pieces within each lane by row index
    # (lane, row) pairs are distinct: one stable sort of the combined key is lexsort's order
    order = np.argsort(lane * (int(prow.max(initial=0)) + 1) + prow, kind="stable")
    slot = np.empty(prow.size, dtype=np.int64)
    counts = np.bincount(lane, minlength=R)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot[order] = np.arange(prow.size) - np.repeat(starts, counts)
    if prow.size and counts.max() > depth:
        return None
    return prow, e0, e1, lane, slot, pn, load


def _ktile_bounds_gathered(ent_lane, ent_k, R, C, depth, d_rows):
    """K ranges for per-lane gathered tiles.

    Boundaries sit at quantiles of all entries, so every lane gets about the same share
    of each tile; the number of tiles is chosen so each lane streams about 8·C elements
    per tile (the bank swap costs about C cycles) with at least two tiles to overlap
    loading and computing.  A range where some lane would touch more than ``depth``
    distinct D rows is bisected until it fits."""
    n = ent_k.size
    if n == 0:
        return np.array([0, d_rows], dtype=np.int64)
    per_lane = n / R
    pieces = int(min(64, max(2, per_lane // (8 * C))))
    ks = np.sort(ent_k)
    q = ks[(np.arange(1, pieces) * n) // pieces]
    bounds = np.unique(np.concatenate([[0], q, [d_rows]])).astype(np.int64)
    uniq = [np.unique(ent_k[ent_lane == i]) for i in range(R)]

    def fits(lo, hi):
        return all(np.searchsorted(u, hi) - np.searchsorted(u, lo) <= depth for u in uniq)

    out = [int(bounds[0])]
    stack = [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(bounds) - 1)][::-1]
    while stack:
        lo, hi = stack.pop()
        if fits(lo, hi) or hi - lo <= 1:
            out.append(hi)
        else:
            mid = (lo + hi) // 2
            stack.append((mid, hi))
            stack.append((lo, mid))
    return np.asarray(out, dtype=np.int64)


def _wb_arrays(nsteps, R, nsplit, split_rows):
    wslot = np.full((nsteps, R), SLOT_NONE, np.int64)
    wrow = np.full((nsteps, R), -1, np.int64)
    wmerge = np.zeros((nsteps, R), np.int8)
    wmrow = np.full(nsteps, -1, np.int64)
    wmrow[:nsplit] = split_rows
    return wslot, wrow, wmerge, wmrow


def _wb_merged(wslot, wmerge, pn, prow, split_rows, lane, slot):
    """Step q < len(split_rows) merges split row q: its parts' lanes read their slots."""
    for p_ in np.flatnonzero(pn > 1):
        q = int(np.searchsorted(split_rows, prow[p_]))
        wslot[q, lane[p_]] = slot[p_]
        wmerge[q, lane[p_]] = 1


def _wb_capped(per_lane, used_steps, nsplit, split_rows, pn, prow, lane, slot, R, cap):
    """Writeback steps of at most ``cap`` vectors (``cap`` ≤ R): the merged rows first,
    one per step (one vector, whatever the number of lanes it sums), then each step takes
    one entry from each of the lanes with the most entries left, up to the cap (longest
    queue first keeps the number of steps at its lower bound, max(longest queue,
    entries / cap), when no row is split)."""
    left = np.array([len(x[0]) for x in per_lane], np.int64)
    taken = np.zeros(R, np.int64)
    busy = np.zeros((nsplit, R), bool)
    for i in range(R):
        busy[np.asarray(used_steps[i], np.int64), i] = True
    rows_s, rows_l, rows_r = [], [], []          # (step, lane, entry) triples
    st = 0
    while st < nsplit or left.any():
        free = cap - (st < nsplit)
        ok = left > 0
        if st < nsplit:
            ok &= ~busy[st]
        cand = np.flatnonzero(ok)
        if cand.size > free:
            cand = cand[np.argsort(-left[cand], kind="stable")[:free]]
        rows_s.append(np.full(cand.size, st, np.int64))
        rows_l.append(cand)
        rows_r.append(taken[cand].copy())
        taken[cand] += 1
        left[cand] -= 1
        st += 1
    wslot, wrow, wmerge, wmrow = _wb_arrays(st, R, nsplit, split_rows)
    _wb_merged(wslot, wmerge, pn, prow, split_rows, lane, slot)
    if rows_s:
        s_, l_, e_ = (np.concatenate(x) for x in (rows_s, rows_l, rows_r))
        for i in range(R):
            m = l_ == i
            s_i, r_i = per_lane[i]
            wslot[s_[m], i] = s_i[e_[m]]
            wrow[s_[m], i] = r_i[e_[m]]
    return wslot, wrow, wmerge, wmrow


class _Builder:
    """Accumulates tiles, blocks and elements across phases."""

    def __init__(self, cfg: HardwareConfig):
        self.cfg = cfg
        self.tiles = []      # dicts
        self.loads = []      # per tile: list of R (drow, addr) arrays
        self.blocks = []
        self.wb = []         # per block: (slot, row, merge, mrow)
        self.elem = []       # (lane, tile, src, addr, slot, flags) chunks
        self.last_bank = 1
        self.last_key = None
        self.n_groups = 0    # stream groups: one per (row block, K tile), shared by column tiles

    def add_tile(self, phase, block, col0, ncols, broadcast, key, loads, group):
        same = broadcast and key is not None and key == self.last_key
        bank = self.last_bank if same else 1 - self.last_bank
        prev = -1
        if not same:
            for t in range(len(self.tiles) - 1, -1, -1):
                if self.tiles[t]["bank"] == bank:
                    prev = t
                    break
        self.tiles.append({"phase": phase, "bank": bank, "block": block, "col0": col0,
                           "ncols": ncols, "broadcast": int(broadcast), "prev": prev,
                           "group": group})
        R = self.cfg.rows
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.loads.append([empty] * R if same else loads)
        self.last_bank, self.last_key = bank, key
        return len(self.tiles) - 1

    def finish(self, tens, phases, meta) -> Program:
        cfg = self.cfg
        R = cfg.rows
        nt = len(self.tiles)
        arr = {}
        T = self.tiles
        arr["t_phase"] = np.array([t["phase"] for t in T], np.int32)
        arr["t_bank"] = np.array([t["bank"] for t in T], np.int8)
        arr["t_block"] = np.array([t["block"] for t in T], np.int32)
        arr["t_col0"] = np.array([t["col0"] for t in T], np.int32)
        arr["t_ncols"] = np.array([t["ncols"] for t in T], np.int32)
        arr["t_broadcast"] = np.array([t["broadcast"] for t in T], np.int8)
        arr["t_prev_same_bank"] = np.array([t["prev"] for t in T], np.int32)
        arr["t_stream"] = np.array([t["group"] for t in T], np.int32)
        ng = self.n_groups
        lens = np.array([[len(l[0]) for l in ls] for ls in self.loads], np.int64).reshape(nt, R)
        flat = np.concatenate([[0], np.cumsum(lens.ravel())])
        lp = np.zeros((nt, R + 1), np.int64)
        if nt:
            lp[:, :R] = flat[:-1].reshape(nt, R)
            lp[:, R] = flat[1:].reshape(nt, R)[:, -1]
        arr["load_ptr"] = lp
        dr = [l[0] for ls in self.loads for l in ls]
        ad = [l[1] for ls in self.loads for l in ls]
        arr["ld_drow"] = np.concatenate(dr).astype(np.int64) if dr else np.zeros(0, np.int64)
        arr["ld_addr"] = np.concatenate(ad).astype(np.int32) if ad else np.zeros(0, np.int32)
        B = self.blocks
        arr["b_phase"] = np.array([b["phase"] for b in B], np.int32)
        arr["b_half"] = np.array([i % 2 for i in range(len(B))], np.int8)
        arr["b_first_tile"] = np.array([b["first"] for b in B], np.int32)
        arr["b_last_tile"] = np.array([b["last"] for b in B], np.int32)
        arr["b_prev_same_half"] = np.array([i - 2 if i >= 2 else -1 for i in range(len(B))], np.int32)
        arr["b_col0"] = np.array([b["col0"] for b in B], np.int32)
        arr["b_ncols"] = np.array([b["ncols"] for b in B], np.int32)
        steps = np.array([w[0].shape[0] for w in self.wb], np.int64)
        arr["wb_ptr"] = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
        cat = (lambda i, dt, shp: np.concatenate([w[i] for w in self.wb]).astype(dt)
               if self.wb else np.zeros(shp, dt))
        arr["wb_slot"] = cat(0, np.int32, (0, R))
        arr["wb_row"] = cat(1, np.int64, (0, R))
        arr["wb_merge"] = cat(2, np.int8, (0, R))
        arr["wb_mrow"] = cat(3, np.int64, (0,))
        if self.elem:
            # each chunk (one row block) is sorted by (lane, group) and its groups follow
            # the previous chunk's, so lane by lane, chunk by chunk is the sorted order
            cuts = [np.searchsorted(e[0], np.arange(R + 1)) for e in self.elem]
            parts = [(ci, c[i], c[i + 1]) for i in range(R) for ci, c in enumerate(cuts)]

            def column(i):
                if len(self.elem) == 1:
                    return self.elem[0][i]
                return np.concatenate([self.elem[ci][i][lo:hi] for ci, lo, hi in parts])
            key = column(0).astype(np.int64) * (ng + 1)
            key += column(1)
            order = None
            if key.size > 1 and not (key[1:] >= key[:-1]).all():
                order = np.argsort(key, kind="stable")   # keeps emission order in a group
                key = key[order]
            for i, (k, dt) in enumerate((("e_src", np.int64), ("e_addr", np.int32),
                                         ("e_slot", np.int32), ("e_flags", np.int8)), start=2):
                col = column(i)
                arr[k] = (col if order is None else col[order]).astype(dt, copy=False)
            del order
        else:
            for k, dt in (("e_src", np.int64), ("e_addr", np.int32), ("e_slot", np.int32),
                          ("e_flags", np.int8)):
                arr[k] = np.zeros(0, dt)
            key = np.zeros(0, np.int64)
        bounds = (np.arange(R)[:, None] * (ng + 1) + np.arange(ng + 1)[None, :]).ravel()
        arr["row_stream_ptr"] = np.searchsorted(key, bounds).reshape(R, ng + 1).astype(np.int64)
        arr["ph_s"] = np.array([p.s_tensor for p in phases], np.int32)
        arr["ph_d"] = np.array([p.d_tensor for p in phases], np.int32)
        arr["ph_out"] = np.array([p.out_tensor for p in phases], np.int32)
        arr["ph_rq_shift"] = np.array([p.rq_shift for p in phases], np.int32)
        arr["ph_rq_bits"] = np.array([p.rq_bits for p in phases], np.int32)
        arr["ph_s_rq_shift"] = np.array([p.s_rq_shift for p in phases], np.int32)
        arr["ph_s_rq_bits"] = np.array([p.s_rq_bits for p in phases], np.int32)
        arr["ph_out_cols_ptr"] = np.concatenate(
            [[0], np.cumsum([p.out_cols.size for p in phases])]).astype(np.int64)
        arr["ph_out_cols"] = np.concatenate([p.out_cols for p in phases]).astype(np.int64)
        return Program(cfg, tuple(tens.items), arr, meta).validate()


def _estimate(nnz_blocks, rows_blocks, nct, mode, d_rows, depth, cfg, s_bytes, d_bytes,
              o_bytes, ncols):
    """Closed-form cycles of one phase: per block the slowest of compute, loads, the
    previous block's writeback and the DRAM bytes they all move, a synchronisation cost
    per block (lanes meet, the last merges drain), plus the exposed first load and last
    writeback."""
    R, C, B = cfg.rows, cfg.cols, cfg.dram_bytes_per_cycle
    comp = np.ceil(nnz_blocks / R)
    wb = np.maximum(np.ceil(rows_blocks / cfg.writeback_lanes), rows_blocks * ncols * o_bytes / B)
    if mode == "broadcast":
        nk = math.ceil(d_rows / depth)
        load = np.full(comp.shape, float(min(d_rows, depth) * nk))
        if nk == 1:
            load[1:] = 0.0
        ld_bytes = load * ncols * d_bytes
        first = min(d_rows, depth)
    else:
        load = comp.copy()
        ld_bytes = nnz_blocks * ncols * d_bytes
        first = min(float(comp[0]), 8.0 * C)
    byts = nnz_blocks * s_bytes + ld_bytes + rows_blocks * ncols * o_bytes
    per = np.maximum.reduce([comp, load, np.concatenate([[0.0], wb[:-1]]), byts / B])
    sync = C + cfg.pe_latency_cycles + cfg.merge_latency_cycles + 8
    return float(nct * (per.sum() + sync * comp.size) + wb[-1] + first
                 + cfg.dram_latency_cycles)


def _loop_order_bytes(ph: _Phase, cfg: HardwareConfig, nb: int, nct: int, mode: str,
                      s_bytes: int, d_bytes: int, o_bytes: int) -> dict:
    """Closed-form off-chip bytes of the two loop orders over (column tile, row block).

    S is streamed once per column tile in both.  With broadcast loading and a single K
    tile, ``column tiles > row blocks`` keeps the D tile resident across row blocks,
    while ``row blocks > column tiles`` reloads it for every block; otherwise both load
    the same.  The compiler emits the order with fewer bytes (the first wins ties)."""
    nnz = int(ph.s_ptr[-1])
    s_tot = nnz * s_bytes * nct
    o_tot = (ph.s_ptr.size - 1) * ph.d_cols * o_bytes
    if mode == "broadcast":
        nk = math.ceil(ph.d_rows / cfg.lmem_depth)
        d_ct_outer = ph.d_rows * ph.d_cols * d_bytes * (1 if nk == 1 else nb)
        d_rb_outer = ph.d_rows * ph.d_cols * d_bytes * nb
    else:
        d_ct_outer = d_rb_outer = nnz * ph.d_cols * d_bytes   # upper bound: no reuse
    ct_outer = s_tot + d_ct_outer + o_tot
    rb_outer = s_tot + d_rb_outer + o_tot
    if rb_outer < ct_outer:   # cannot happen for this machine; kept as a checked claim
        raise ProgramError("row-block-outer loop order would move fewer bytes")
    return {"column tiles > row blocks > K tiles": ct_outer,
            "row blocks > column tiles > K tiles": rb_outer}


def _phase_bytes(tens, ph: _Phase, cfg: HardwareConfig):
    """Bytes per streamed element, per loaded D value and per written output value."""
    return transfer_bytes([t["bits"] for t in tens.items], ph.s_tensor, ph.d_tensor,
                          ph.out_tensor, cfg)


def _schedule_phase(b: _Builder, pi: int, ph: _Phase, mode: str | None, decisions: list,
                    force_nb: int | None = None):
    cfg = b.cfg
    R, C, depth = cfg.rows, cfg.cols, cfg.lmem_depth
    o = ph.s_ptr.size - 1
    nnz = np.diff(ph.s_ptr)
    nct = math.ceil(ph.d_cols / C)
    live = int((nnz > 0).sum())
    nb_min = max(1, math.ceil(o / (R * cfg.out_bank_depth)))
    s_bytes, d_bytes, o_bytes = _phase_bytes(b.tensors, ph, cfg)
    # candidate row-block counts and D modes, picked by the closed-form estimate
    best = None
    cands = {nb_min, 2 * nb_min, 4 * nb_min, 8 * nb_min, 16 * nb_min}
    if force_nb is not None:
        cands = {max(nb_min, force_nb)}
    for nb in sorted(cands):
        if nb > 1 and o / nb < 4 * R and force_nb is None:
            continue
        blocks = _row_blocks(nnz, nb)
        nnz_b = np.array([nnz[r].sum() for r in blocks], float)
        rows_b = np.array([r.size for r in blocks], float)
        for m in (("broadcast", "gathered") if mode is None else (mode,)):
            est = _estimate(nnz_b, rows_b, nct, m, ph.d_rows, depth, cfg, s_bytes, d_bytes,
                            o_bytes, min(C, ph.d_cols))
            if best is None or est < best[0]:
                best = (est, nb, m)
    if best is None:   # every multiple of nb_min leaves blocks of very few rows
        best = (None, nb_min, mode or "gathered")
    est, nb, mode = best
    while True:
        blocks = _row_blocks(nnz, nb)
        plans = [_assign(rows, nnz, R, cfg.out_bank_depth) for rows in blocks]
        if all(p is not None for p in plans):
            break
        if nb >= o:
            raise ProgramError(f"phase {ph.label}: cannot fit output rows in banks of "
                               f"{cfg.out_bank_depth} slots")
        nb = min(o, nb + max(1, nb // 4))
    decisions.append({"phase": ph.label, "d_mode": mode, "row_blocks": len(blocks),
                      "col_tiles": nct, "estimated_cycles": est, "rows": o, "nnz": int(nnz.sum()),
                      "live_rows": live,
                      "loop_order_bytes": _loop_order_bytes(ph, cfg, len(blocks), nct, mode,
                                                            s_bytes, d_bytes, o_bytes)})
    broadcast = mode == "broadcast"
    prepared = []
    for rows, plan in zip(blocks, plans):
        prow, e0, e1, lane, slot, pn, load = plan
        # entries of every piece, in row order
        plen = e1 - e0
        # narrow dtypes where the range allows: these arrays have one entry per streamed
        # element (millions for a conv layer), and fresh memory costs page faults
        pid = np.repeat(np.arange(prow.size, dtype=np.int32), plen)
        ent = np.repeat(ph.s_ptr[prow] + e0 - (np.cumsum(plen) - plen), plen)
        ent += np.arange(ent.size)
        ek = ph.s_k[ent]
        elane = lane.astype(np.int32)[pid]
        if broadcast:
            kb = np.arange(0, ph.d_rows + depth, depth, dtype=np.int64)
            kb[-1] = ph.d_rows
            kb = np.unique(np.minimum(kb, ph.d_rows))
        else:
            kb = _ktile_bounds_gathered(elane, ek, R, C, depth, ph.d_rows)
        if kb.size == 2:   # one K tile
            etile = np.zeros(ek.size, np.int32)
        else:
            etile = np.searchsorted(kb, ek, side="right").astype(np.int32)
            etile -= 1
        used = np.flatnonzero(np.bincount(etile, minlength=kb.size))
        nkt = used.size
        if nkt < kb.size - 1:
            remap = np.full(kb.size, -1, np.int32)
            remap[used] = np.arange(nkt)
            etile = remap[etile]
        # each piece's first K tile (entries are still in piece order here)
        first_tile = np.zeros(prow.size, np.int32)
        nonempty = plen > 0
        if nonempty.any():
            first_tile[nonempty] = np.minimum.reduceat(etile, (np.cumsum(plen) - plen)[nonempty])
        # pieces are generated in entry order, so a stable sort by (lane, tile, slot)
        # keeps each segment's entries in order
        key = elane.astype(np.int64)
        key *= nkt + 1
        key += etile
        key *= cfg.out_bank_depth + 1
        key += slot[pid]
        order = np.argsort(key, kind="stable")
        del key
        ent, pid = ent[order], pid[order]
        ek, etile = ek[order], etile[order]
        del order
        elane = lane.astype(np.int32)[pid]
        eslot = slot.astype(np.int32)[pid]
        n = ent.size
        seg = np.ones(n, bool)
        if n:
            seg[1:] = (elane[1:] != elane[:-1]) | (etile[1:] != etile[:-1]) | (pid[1:] != pid[:-1])
        last = np.ones(n, bool)
        if n:
            last[:-1] = seg[1:]
        flags = seg.view(np.int8) * np.int8(FLAG_FIRST)
        flags |= last.view(np.int8) * np.int8(FLAG_LAST)
        flags |= (last & (etile == first_tile[pid])).view(np.int8) * np.int8(FLAG_FRESH)
        loads = []
        if broadcast:
            k0 = kb[used]
            addr = (ek - k0[etile]).astype(np.int32)
            for t in range(nkt):
                lo, hi = kb[used[t]], kb[used[t] + 1]
                ld = [(np.arange(lo, hi, dtype=np.int64), np.arange(hi - lo, dtype=np.int64))]
                ld += [(np.zeros(0, np.int64), np.zeros(0, np.int64))] * (R - 1)
                loads.append((ld, ("bc", pi, int(lo), int(hi))))
        else:
            key = (elane.astype(np.int64) * (nkt + 1) + etile) * (ph.d_rows + 1) + ek
            uk, inv = np.unique(key, return_inverse=True)
            grp = uk // (ph.d_rows + 1)
            gstart = np.searchsorted(grp, grp, side="left")
            rank = np.arange(uk.size) - gstart
            addr = rank[inv]
            uk_k = uk % (ph.d_rows + 1)
            # uk is sorted by (lane, tile, k): each (lane, tile) list is one slice
            cuts = np.searchsorted(grp, np.arange(R * (nkt + 1) + 1))
            for t in range(nkt):
                ld = []
                for i in range(R):
                    lo_, hi_ = cuts[i * (nkt + 1) + t], cuts[i * (nkt + 1) + t + 1]
                    ld.append((uk_k[lo_:hi_], rank[lo_:hi_]))
                loads.append((ld, None))
        # writeback steps: split rows merged in lockstep, the rest fill free steps per lane
        split_rows = np.unique(prow[pn > 1])
        empty = rows[nnz[rows] == 0]
        nsplit = split_rows.size
        normal = pn == 1
        used_steps = [[] for _ in range(R)]
        for q, r in enumerate(split_rows):
            for p_ in np.flatnonzero(prow == r):
                used_steps[lane[p_]].append(q)
        zero_lane = np.arange(empty.size) % R
        per_lane = []
        for i in range(R):
            m = normal & (lane == i)
            s_i = slot[m]
            r_i = prow[m]
            o_ = np.argsort(s_i, kind="stable")
            z = empty[zero_lane == i]
            per_lane.append((np.concatenate([s_i[o_], np.full(z.size, SLOT_ZERO)]),
                             np.concatenate([r_i[o_], z])))
        cap = cfg.writeback_vectors
        if cap > R:
            # every lane and the merged row fit in a step: each lane fills its free steps
            nsteps = nsplit + max((len(x[0]) for x in per_lane), default=0)
            wslot, wrow, wmerge, wmrow = _wb_arrays(nsteps, R, nsplit, split_rows)
            _wb_merged(wslot, wmerge, pn, prow, split_rows, lane, slot)
            for i in range(R):
                free = np.setdiff1d(np.arange(nsteps), np.asarray(used_steps[i], np.int64))
                s_i, r_i = per_lane[i]
                wslot[free[:s_i.size], i] = s_i
                wrow[free[:s_i.size], i] = r_i
        else:
            wslot, wrow, wmerge, wmrow = _wb_capped(per_lane, used_steps, nsplit, split_rows,
                                                    pn, prow, lane, slot, R, cap)
        busy = (wslot != SLOT_NONE).any(axis=1)
        keep = np.flatnonzero(busy).max() + 1 if busy.any() else 0
        wb = (wslot[:keep], wrow[:keep], wmerge[:keep], wmrow[:keep])
        prepared.append((elane, etile, ph.s_src[ent], addr, eslot, flags, loads, nkt, wb))
    # emit: column tiles outer, row blocks inner, K tiles innermost; the stream of a
    # (row block, K tile) is stored once and replayed for every column tile
    groups = []
    for (elane, etile, src, addr, eslot, flags, loads, nkt, wb) in prepared:
        g0 = b.n_groups
        b.n_groups += max(1, nkt)
        groups.append(g0)
        b.elem.append((elane, g0 + etile, src, addr, eslot, flags))
    for ct in range(nct):
        col0 = ct * C
        ncols = min(C, ph.d_cols - col0)
        for g0, (elane, etile, src, addr, eslot, flags, loads, nkt, wb) in zip(groups, prepared):
            blk = len(b.blocks)
            first = len(b.tiles)
            if nkt == 0:
                # a block of empty rows still needs a tile to carry its writeback
                empty_ld = [(np.zeros(0, np.int64), np.zeros(0, np.int64))] * R
                b.add_tile(pi, blk, col0, ncols, broadcast, ("none", pi), empty_ld, g0)
            for t in range(nkt):
                ld, key = loads[t]
                key = None if key is None else key + (ct,)
                b.add_tile(pi, blk, col0, ncols, broadcast, key, ld, g0 + t)
            b.blocks.append({"phase": pi, "first": first, "last": len(b.tiles) - 1,
                             "col0": col0, "ncols": ncols})
            b.wb.append(wb)


def compile_problem(problem: Problem, config: HardwareConfig, order: str = "auto",
                    d_mode: str | None = None, row_blocks: int | None = None) -> Program:
    """Compile ``problem`` for ``config``; ``order`` is ``auto`` or one of ORDERS."""
    if order not in ("auto",) + ORDERS:
        raise AxwError(f"unknown order {order!r}; expected auto, a(xw) or (ax)w")
    if d_mode not in (None, "broadcast", "gathered"):
        raise AxwError(f"unknown D mode {d_mode!r}")
    k = problem.contract
    if k.operand.bits != config.operand_bits or k.acc.bits != config.acc_bits:
        raise AxwError(f"contract {k.name} ({k.operand.name}/{k.acc.name}) does not match the "
                       f"hardware (s{config.operand_bits}/s{config.acc_bits})")
    if problem.gather is not None and all(_gather_channels(problem, p) is not None
                                          for p in problem.parts):
        # the gather is lowered to addresses: A·X is never multiplied, so the order is
        # (ax)w; under an order-dependent contract a forced a(xw) cannot be honoured
        if order == "a(xw)" and not k.order_independent:
            raise AxwError(f"problem {problem.name!r} is a convolution gather, which runs "
                           f"as (ax)w; order a(xw) changes its result under contract "
                           f"{k.name!r}")
        order, est = "(ax)w", {}
    else:
        chosen, est = choose_order(problem, config)
        if order == "auto":
            order = chosen
    tens, phases = _plan(problem, order, config)
    b = _Builder(config)
    b.tensors = tens
    decisions = []
    for pi, ph in enumerate(phases):
        _schedule_phase(b, pi, ph, d_mode, decisions, row_blocks)
    meta = {"problem": problem.summary(), "order": order, "order_estimates": est,
            "useful_macs_by_order": useful_macs_by_order(problem),
            "phases": [p.label for p in phases], "decisions": decisions,
            "loop_order": "column tiles > row blocks > K tiles"}
    return b.finish(tens, phases, meta)
