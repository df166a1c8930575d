"""A deliberately naive functional interpreter of a Program: tiles in order, no time.

It reads docs/machine.md's *Program structure* literally and nothing of sim/engine.py:
every tile first performs its loads into its local-memory bank, then every lane streams
its elements through its accumulators (a gather phase first requantizes each streamed
value by ``ph_s_rq_*``; FIRST restarts, LAST hands the sums to the lane's
output bank slot, FRESH writes it, otherwise adds), and once the last tile of a block has
run the block's writeback steps move the bank slots to off-chip memory (merging split
rows, requantizing).  Arithmetic uses Python ints and an explicit modulo, so it shares no
wrap helper with the reference or the simulator.

Being untimed it cannot deadlock or stall; instead it is strict about what a correct
schedule may rely on and raises :class:`FunctionalError` when a Program reads a local
memory word that the current phase and column tile never loaded, continues an
accumulator without FIRST, adds to or writes back an output slot this block never
wrote, or writes an element of an output tensor twice or not at all.
"""

from __future__ import annotations

import numpy as np

from accel.program import FLAG_FIRST, FLAG_FRESH, FLAG_LAST, SLOT_NONE, SLOT_ZERO, Program

__all__ = ["FunctionalError", "run_functional"]


class FunctionalError(AssertionError):
    """The Program relies on state that the machine's rules do not guarantee."""


def _wrap(v: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((v + half) % (1 << bits)) - half


def _requant(v: int, shift: int, bits: int) -> int:
    if bits == 0:
        return v
    if shift:
        v = (v + (1 << (shift - 1))) >> shift   # Python >> floors: round half up
    hi = (1 << (bits - 1)) - 1
    return max(-hi - 1, min(hi, v))


def run_functional(program: Program, memory: list) -> list:
    """Execute ``program`` on ``memory`` (one 2-D integer array per tensor); return the
    memory after it, as int64 arrays (inputs untouched, computed tensors filled)."""
    cfg = program.config
    R, C, acc_bits = cfg.rows, cfg.cols, cfg.acc_bits
    a = program.arrays
    tensors = program.tensors
    mem = [[[int(v) for v in row] for row in np.asarray(m)] for m in memory]
    computed = {int(p) for p in a["ph_out"]}
    writes = {t: np.zeros((tensors[t]["rows"], tensors[t]["cols"]), np.int64) for t in computed}

    # local memory: lmem[bank][lane][addr] = (tag, [C values]); tag = (phase, col0)
    lmem = [[dict() for _ in range(R)] for _ in range(2)]
    # output banks: bank[half][lane][slot] = [C values], present only when written this block
    obank = [[dict() for _ in range(R)] for _ in range(2)]
    acc = [None] * R            # None: no open segment on that lane

    def flat(t: int, i: int) -> int:
        cols = tensors[t]["cols"]
        return mem[t][i // cols][i % cols]

    def store(p: int, t_out: int, row: int, col: int, value: int, shift: int, bits: int):
        if not 0 <= row < tensors[t_out]["rows"]:
            raise FunctionalError(f"phase {p}: writeback to row {row} outside "
                                  f"{tensors[t_out]['name']}")
        mem[t_out][row][col] = _requant(value, shift, bits)
        writes[t_out][row, col] += 1

    def writeback(b: int):
        p = int(a["b_phase"][b])
        half, col0, ncols = int(a["b_half"][b]), int(a["b_col0"][b]), int(a["b_ncols"][b])
        t_out = int(a["ph_out"][p])
        shift, bits = int(a["ph_rq_shift"][p]), int(a["ph_rq_bits"][p])
        ocols = a["ph_out_cols"][a["ph_out_cols_ptr"][p]:a["ph_out_cols_ptr"][p + 1]]
        for st in range(int(a["wb_ptr"][b]), int(a["wb_ptr"][b + 1])):
            merged = None
            for i in range(R):
                slot = int(a["wb_slot"][st, i])
                if slot == SLOT_NONE:
                    continue
                if slot == SLOT_ZERO:
                    vec = [0] * C
                elif slot in obank[half][i]:
                    vec = obank[half][i][slot]
                else:
                    raise FunctionalError(f"block {b} step {st}: lane {i} writes back slot "
                                          f"{slot}, which no element of the block wrote")
                if a["wb_merge"][st, i]:
                    merged = vec[:] if merged is None else [
                        _wrap(u + v, acc_bits) for u, v in zip(merged, vec)]
                else:
                    for j in range(ncols):
                        store(p, t_out, int(a["wb_row"][st, i]), int(ocols[col0 + j]),
                              vec[j], shift, bits)
            if merged is not None:
                for j in range(ncols):
                    store(p, t_out, int(a["wb_mrow"][st]), int(ocols[col0 + j]),
                          merged[j], shift, bits)
        for i in range(R):
            obank[half][i].clear()   # the half is free for the block two later

    lp = a["load_ptr"]
    if "t_stream" in a:   # a (row block, K tile) stream replayed by every column tile
        rp, stream_of = a["row_stream_ptr"], a["t_stream"]
    else:
        rp, stream_of = a["row_tile_ptr"], np.arange(program.n_tiles)
    for t in range(program.n_tiles):
        p = int(a["t_phase"][t])
        bank, b = int(a["t_bank"][t]), int(a["t_block"][t])
        col0, ncols = int(a["t_col0"][t]), int(a["t_ncols"][t])
        s_t, d_t = int(a["ph_s"][p]), int(a["ph_d"][p])
        s_rq = (int(a["ph_s_rq_shift"][p]), int(a["ph_s_rq_bits"][p])) if "ph_s_rq_bits" in a \
            else (0, 0)
        tag = (p, col0)
        for i in range(R):
            lanes = range(R) if a["t_broadcast"][t] else (i,)
            for ld in range(int(lp[t, i]), int(lp[t, i + 1])):
                drow, addr = int(a["ld_drow"][ld]), int(a["ld_addr"][ld])
                vals = mem[d_t][drow][col0:col0 + ncols]
                for ln in lanes:
                    lmem[bank][ln][addr] = (tag, vals + [0] * (C - ncols))
        half = int(a["b_half"][b])
        for i in range(R):
            g = int(stream_of[t])
            for e in range(int(rp[i, g]), int(rp[i, g + 1])):
                fl = int(a["e_flags"][e])
                addr = int(a["e_addr"][e])
                word = lmem[bank][i].get(addr)
                if word is None or word[0] != tag:
                    raise FunctionalError(f"tile {t} lane {i} element {e}: local memory bank "
                                          f"{bank} address {addr} was not loaded for phase "
                                          f"{p} columns {col0}.. (holds {word and word[0]})")
                s = _requant(flat(s_t, int(a["e_src"][e])), *s_rq)
                prod = [_wrap(s * d, acc_bits) for d in word[1]]
                if fl & FLAG_FIRST:
                    acc[i] = prod
                elif acc[i] is None:
                    raise FunctionalError(f"tile {t} lane {i} element {e}: no FIRST since the "
                                          f"last LAST")
                else:
                    acc[i] = [_wrap(u + v, acc_bits) for u, v in zip(acc[i], prod)]
                if fl & FLAG_LAST:
                    slot = int(a["e_slot"][e])
                    if fl & FLAG_FRESH:
                        obank[half][i][slot] = acc[i]
                    elif slot in obank[half][i]:
                        obank[half][i][slot] = [_wrap(u + v, acc_bits)
                                                for u, v in zip(obank[half][i][slot], acc[i])]
                    else:
                        raise FunctionalError(f"tile {t} lane {i} element {e}: merges into "
                                              f"slot {slot}, which this block never wrote")
                    acc[i] = None
        if t == int(a["b_last_tile"][b]):
            writeback(b)
    for t_out, w in writes.items():
        if (w != 1).any():
            r, c = (int(v) for v in np.argwhere(w != 1)[0])
            raise FunctionalError(f"tensor {tensors[t_out]['name']}: element ({r}, {c}) "
                                  f"written {int(w[r, c])} times (want exactly once)")
    return [np.array(m, dtype=np.int64).reshape(np.asarray(orig).shape)
            for m, orig in zip(mem, memory)]
