"""Cycle-level simulation of a Program: private @njit kernel behind a validating wrapper.

The machine and the order of events inside one cycle are specified in docs/machine.md;
the RTL implements the same rules, so cycle counts must match it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from accel.errors import AxwError, ProgramError
from accel.program import Program

__all__ = ["SimResult", "simulate", "warm_up", "STALL_CAUSES"]

#: Why a PE row did not start an element in a cycle (row-cycles, summed over rows).
STALL_CAUSES = ("load", "stream", "bank", "barrier", "imbalance", "drain")
_ST_LOAD, _ST_STREAM, _ST_BANK, _ST_BARRIER, _ST_IMBALANCE, _ST_DRAIN = range(6)

# counter indices
(_C_CYCLES, _C_ELEMS, _C_USEFUL, _C_SLOTS, _C_LMEM_RD, _C_LMEM_WR, _C_BANK_RD, _C_BANK_WR,
 _C_WB_RD, _C_SFIFO, _C_LFIFO, _C_WB_VECS, _C_WB_STEPS, _C_STALL_MEM) = range(14)
_N_COUNTERS = 14
_INF = np.int64(1) << np.int64(62)


@njit(cache=True, inline="always")
def _wrap(v, bits):
    sh = np.int64(64 - bits)
    return (v << sh) >> sh


@njit(cache=True)
def _requant(v, shift, bits):
    if bits == 0:
        return v
    if shift > 0:
        v = (v + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    hi = (np.int64(1) << np.int64(bits - 1)) - 1
    lo = -hi - 1
    if v > hi:
        return hi
    if v < lo:
        return lo
    return v


@njit(cache=True, inline="always")
def _mac(acc, lmem, ab, lb, n, sv, first):
    # unsigned indices: no negative-index wrap-around test, so LLVM vectorizes the loop
    if first:
        for j in range(n):
            acc[ab + j] = sv * lmem[lb + j]
    else:
        for j in range(n):
            acc[ab + j] += sv * lmem[lb + j]


@njit(cache=True, nogil=True)
def _run(P, mem, lmem, acc, t_off, t_cols,
         ph_s, ph_d, ph_out, ph_rq_shift, ph_rq_bits, ph_s_rq_shift, ph_s_rq_bits,
         ph_oc_ptr, ph_oc,
         ph_s_bytes, ph_d_bytes, ph_o_bytes, ph_s_dep, ph_d_dep,
         t_phase, t_bank, t_block, t_col0, t_ncols, t_bc, t_prev,
         load_ptr, ld_drow, ld_addr, lane_cum, lq_ptr, lq_ent, lq_phase, lq_bytes, lq_tensor,
         b_phase, b_half, b_last_tile, b_prev_half, b_col0, b_ncols,
         wb_ptr, wb_slot, wb_row, wb_merge, wb_mrow,
         t_stream, rsp, e_src, e_addr, e_slot, e_flags,
         counters, stall, busy, rd_bytes, wr_bytes, ph_first, ph_end, tile_issues):
    R = P[0]; C = P[1]; depth = P[2]; obd = P[3]; sfifo = P[4]; lfifo = P[5]
    B = P[6]; L = P[7]; acc_bits = P[8]; pe_lat = P[9]; merge_lat = P[10]
    stall_pm = P[11]; seed = P[12]; max_idle = P[13]
    # rules 0-3 with request lag d: the request for cycle c is decided from the state at
    # the start of cycle c - d and the outcomes of the requests of cycles before c - d;
    # ring buffers over d + 1 cycles (kc: this cycle's entry, kl: that of cycle c - d)
    lag = P[15]
    D1 = lag + 1
    # credit lag: the grants of cycle c are decided without the stream and load grants of
    # cycle c - 1, against min(k_prev + B - g_wbp, cap): k_prev the credit at the start of
    # c - 1, g_wbp the writeback's grant in c - 1; the credit itself takes every grant
    # and may go below zero (never below B - cap)
    clag = P[16]
    k_prev = np.int64(0)
    g_wbp = np.int64(0)
    kc = np.int64(-1)
    nt = t_phase.shape[0]
    nb = b_phase.shape[0]
    nph = ph_s.shape[0]
    bank = np.zeros((2, R, obd, C), np.int64)
    # lmem [bank][row][addr][col] and acc [row][col], flat, zeroed by the caller: int32
    # when acc_bits <= 32 (every value they hold is wrapped to acc_bits), int64 otherwise
    narrow = acc_bits <= 32
    cap = P[14]     # token bucket: B bytes per cycle up to Program.credit_cap()
    credit = np.int64(0)
    lfsr = np.int64(seed if seed != 0 else 1)   # xorshift32 state, kept in 32 bits
    # phase barrier: cycle from which phase p may read memory
    # phase_done[q]: first cycle at which the output of phase q is in memory; a phase
    # reads a tensor only after the phase that writes it (ph_s_dep / ph_d_dep) is done
    phase_done = np.full(nph + 1, _INF, np.int64)
    phase_done[nph] = 0
    # stream state per row
    # fetch side walks tiles (replaying each tile's stream group); FIFO slots are
    # indexed by per-lane sequence numbers
    f_tile = np.zeros(R, np.int64); f_ptr = np.empty(R, np.int64); f_end = np.empty(R, np.int64)
    f_seq = np.zeros(R, np.int64); h_seq = np.zeros(R, np.int64)
    f_pos = np.zeros(R, np.int64); h_pos = np.zeros(R, np.int64)   # ring positions
    rot = np.int64(-1)
    s_arr = np.zeros((R, sfifo), np.int64)
    s_tag = np.full((R, sfifo), -1, np.int64)     # sequence number whose data arrived
    # what a reserved slot's element needs to be requested (again): its element, bytes,
    # S base, requantization, local-memory base and sequence number
    q_e = np.zeros((R, sfifo), np.int64); q_need = np.zeros((R, sfifo), np.int64)
    q_sbase = np.zeros((R, sfifo), np.int64); q_lbase = np.zeros((R, sfifo), np.int64)
    q_rqs = np.zeros((R, sfifo), np.int64); q_rqb = np.zeros((R, sfifo), np.int64)
    q_seq = np.zeros((R, sfifo), np.int64)
    # per requester: the slot (or load entry, or writeback step) refused in each of the
    # last d + 1 cycles (-1: none), asked for again in the cycle its refusal is known
    # (at most one a cycle, so it never waits); the issue side's and the load writer's
    # progress at the start of each of those cycles (kept when d > 0)
    s_pend = np.full((R, D1), -1, np.int64)
    h_hist = np.zeros((R, D1), np.int64)
    # a FIFO entry holds what the element brings to its PE row: the value (read when it
    # is fetched: a phase streams S only once S's writer is done, so memory no longer
    # changes under it), its local-memory offset, its flags and its output slot
    s_val = np.zeros((R, sfifo), np.int64)
    s_lb = np.zeros((R, sfifo), np.int64)
    s_fl = np.zeros((R, sfifo), np.int64)
    s_sl = np.zeros((R, sfifo), np.int64)
    # the fetch side's tile facts per lane, set when it enters a tile: the phase's
    # dependency, bytes per element, S's base address, requantization, and the lane's
    # local-memory base in the tile's bank
    f_dep = np.zeros(R, np.int64); f_need = np.zeros(R, np.int64)
    f_sbase = np.zeros(R, np.int64); f_lbase = np.zeros(R, np.int64)
    f_rqs = np.zeros(R, np.int64); f_rqb = np.zeros(R, np.int64)
    cur = np.zeros(R, np.int64); rem = np.zeros(R, np.int64)
    ready_tile = np.full(R, -1, np.int64)   # tile whose issue conditions a row has met
    fin = np.zeros(R, np.int64)             # rows past their last tile, this cycle
    last_issue = np.full(R, -_INF, np.int64)
    for i in range(R):
        if nt > 0:
            g = t_stream[0]
            f_ptr[i] = rsp[i, g]; f_end[i] = rsp[i, g + 1]
            rem[i] = rsp[i, g + 1] - rsp[i, g]
            p = t_phase[0]
            f_dep[i] = ph_s_dep[p]; f_need[i] = ph_s_bytes[p]; f_sbase[i] = t_off[ph_s[p]]
            f_rqs[i] = ph_s_rq_shift[p]; f_rqb[i] = ph_s_rq_bits[p]
            f_lbase[i] = (t_bank[0] * R + i) * depth
        else:
            f_ptr[i] = 0; f_end[i] = 0
    read_done = np.full((max(nt, 1), R), _INF, np.int64)
    load_done = np.full((max(nt, 1), R), _INF, np.int64)
    blk_merge = np.zeros(max(nb, 1), np.int64)
    wb_done = np.full(max(nb, 1), _INF, np.int64)
    # load unit
    lw_tile = np.zeros(R, np.int64)
    lw_started = np.zeros(R, np.bool_)
    lr_cnt = np.zeros(R, np.int64); lw_cnt = np.zeros(R, np.int64)
    req_left = lq_ptr[R] - lq_ptr[0]
    lanes_loading = R if nt > 0 else 0
    l_arr = np.zeros((R, lfifo), np.int64)
    l_tag = np.full((R, lfifo), -1, np.int64)
    l_pend = np.full((R, D1), -1, np.int64)
    lw_hist = np.zeros((R, D1), np.int64)
    # writeback unit: the next step not yet asked for, the block's steps not yet granted
    # (-1: block not entered), the first cycle it may ask for a step of a new block
    wb_blk = 0
    wb_next = np.int64(0)
    wb_left = np.int64(-1)
    wb_go = np.int64(0)
    w_pend = np.full(D1, -1, np.int64)
    # lanes past each block's last tile and the cycle from whose start all of them are
    blk_npass = np.zeros(max(nb, 1), np.int64)
    blk_pass = np.zeros(max(nb, 1), np.int64)
    c = np.int64(0)
    idle = 0
    rows_done = 0
    while wb_blk < nb:
        progress = False
        credit = min(credit + B, cap)
        if clag > 0:
            avail = min(k_prev + B - g_wbp, cap)
            k_prev = credit
        else:
            avail = credit
        g_wbp = 0
        avail0 = avail
        mem_ok = True
        if stall_pm > 0:
            lfsr = (lfsr ^ (lfsr << 13)) & 0xFFFFFFFF
            lfsr = lfsr ^ (lfsr >> 17)
            lfsr = (lfsr ^ (lfsr << 5)) & 0xFFFFFFFF
            if lfsr % 1000 < stall_pm:
                mem_ok = False
                counters[_C_STALL_MEM] += 1
        # ring entries: kc holds the refusals of cycle c - d - 1 (known now) and takes
        # this cycle's; kl the progress at the start of cycle c - d
        kc = kc + 1 if kc + 1 < D1 else 0               # == c mod (d + 1)
        kl = kc + 1 if kc + 1 < D1 else 0               # == (c - d) mod (d + 1)
        if lag > 0:
            for i in range(R):
                h_hist[i, kc] = h_seq[i]; lw_hist[i, kc] = lw_cnt[i]
        c_lag = c - lag
        # ---- 1. stream fetch: one request per PE row per cycle, rotating priority ------
        rot = rot + 1 if rot + 1 < R else 0          # == c mod R
        # one priority order per cycle: the stream lanes (rotating), the load lanes
        # (rotating), the writeback; the first request that does not fit stops every later one
        stop = False
        # no request is decided before cycle 0, so the first ones are for cycle d
        for q in range(R if c >= lag else 0):
            i = q + rot if q + rot < R else q + rot - R
            q2 = s_pend[i, kc]
            if q2 >= 0:
                # an element refused d + 1 cycles ago is asked for again before any new one
                s_pend[i, kc] = -1
                e = q_e[i, q2]; need = q_need[i, q2]; sq = q_seq[i, q2]
                sbase = q_sbase[i, q2]; lbase = q_lbase[i, q2]
                rqs = q_rqs[i, q2]; rqb = q_rqb[i, q2]
            else:
                if f_ptr[i] >= f_end[i] and f_tile[i] < nt:
                    # one tile advance per cycle on the fetch side
                    t = f_tile[i] + 1
                    f_tile[i] = t
                    if t < nt:
                        g = t_stream[t]
                        f_ptr[i] = rsp[i, g]; f_end[i] = rsp[i, g + 1]
                        p = t_phase[t]
                        f_dep[i] = ph_s_dep[p]; f_need[i] = ph_s_bytes[p]
                        f_sbase[i] = t_off[ph_s[p]]
                        f_rqs[i] = ph_s_rq_shift[p]; f_rqb[i] = ph_s_rq_bits[p]
                        f_lbase[i] = (t_bank[t] * R + i) * depth
                if f_tile[i] >= nt or f_ptr[i] >= f_end[i]:
                    continue
                if f_seq[i] - (h_hist[i, kl] if lag > 0 else h_seq[i]) >= sfifo:
                    continue
                if phase_done[f_dep[i]] > c_lag:
                    continue
                # the next element takes the next slot
                q2 = f_pos[i]
                e = f_ptr[i]; need = f_need[i]; sq = f_seq[i]
                sbase = f_sbase[i]; lbase = f_lbase[i]; rqs = f_rqs[i]; rqb = f_rqb[i]
                f_pos[i] = q2 + 1 if q2 + 1 < sfifo else 0
                f_seq[i] = sq + 1
                f_ptr[i] = e + 1
            if stop or avail < need or not mem_ok:
                stop = True
                # the slot keeps what asking for its element again needs
                q_e[i, q2] = e; q_need[i, q2] = need; q_seq[i, q2] = sq
                q_sbase[i, q2] = sbase; q_lbase[i, q2] = lbase
                q_rqs[i, q2] = rqs; q_rqb[i, q2] = rqb
                s_pend[i, kc] = q2
                continue
            avail -= need
            s_arr[i, q2] = c + L + 1
            s_tag[i, q2] = sq
            sv = mem[sbase + e_src[e]]
            if rqb != 0:
                sv = _requant(sv, rqs, rqb)
            s_val[i, q2] = sv
            s_lb[i, q2] = (lbase + e_addr[e]) * C
            s_fl[i, q2] = e_flags[e]
            s_sl[i, q2] = e_slot[e]
            progress = True
        # ---- 2. load unit: requests run ahead per lane; writes fill one tile at a time --
        for q in range(R if req_left > 0 and c >= lag else 0):
            i = q + rot if q + rot < R else q + rot - R
            n = l_pend[i, kc]
            if n >= 0:
                l_pend[i, kc] = -1
                en = lq_ptr[i] + n
            else:
                n = lr_cnt[i]
                if n >= lq_ptr[i + 1] - lq_ptr[i] \
                        or n - (lw_hist[i, kl] if lag > 0 else lw_cnt[i]) >= lfifo:
                    continue
                en = lq_ptr[i] + n
                if phase_done[ph_d_dep[lq_phase[en]]] > c_lag:
                    continue
                lr_cnt[i] = n + 1
            need = lq_bytes[en]
            if stop or avail < need or not mem_ok:
                stop = True
                l_pend[i, kc] = n
                continue
            avail -= need
            j = n % lfifo
            l_arr[i, j] = c + L + 1
            l_tag[i, j] = n
            req_left -= 1
            rd_bytes[lq_tensor[en]] += need
            progress = True
        # writes: each lane fills its own shadow bank; a broadcast tile waits for every
        # lane to reach it and then writes all lanes from lane 0's queue; the other lanes
        # move past it at the end of the cycle lane 0 finishes it
        bc_end = False
        for i in range(R if lanes_loading > 0 else 0):
            if bc_end:
                break
            t = lw_tile[i]
            if t >= nt:
                continue
            bc = t_bc[t] != 0
            if bc and i > 0:
                continue
            p = t_phase[t]
            if not lw_started[i]:
                ok = phase_done[ph_d_dep[p]] <= c
                pv = t_prev[t]
                if bc:
                    for ii in range(R):
                        if lw_tile[ii] != t or (pv >= 0 and read_done[pv, ii] > c):
                            ok = False
                            break
                elif ok and pv >= 0 and read_done[pv, i] > c:
                    ok = False
                if not ok:
                    continue
                lw_started[i] = True
                if ph_first[p] > c:
                    ph_first[p] = c
            n = lw_cnt[i]
            j = n % lfifo
            if n < lane_cum[i, t + 1] and l_tag[i, j] == n and l_arr[i, j] <= c:
                ncols = t_ncols[t]
                col0 = t_col0[t]
                bk = t_bank[t]
                dt = ph_d[p]
                k = lq_ent[lq_ptr[i] + n]
                a = ld_addr[k]
                rowbase = t_off[dt] + ld_drow[k] * t_cols[dt] + col0
                if bc:
                    for ii in range(R):
                        lb = ((bk * R + ii) * depth + a) * C
                        for j in range(ncols):
                            lmem[lb + j] = mem[rowbase + j]
                    counters[_C_LMEM_WR] += R * ncols
                else:
                    lb = ((bk * R + i) * depth + a) * C
                    for j in range(ncols):
                        lmem[lb + j] = mem[rowbase + j]
                    counters[_C_LMEM_WR] += ncols
                counters[_C_LFIFO] += 1
                lw_cnt[i] = n + 1
                progress = True
            if lw_cnt[i] >= lane_cum[i, t + 1]:
                if bc:
                    bc_end = True
                    for ii in range(R):
                        load_done[t, ii] = c
                        lw_tile[ii] = t + 1
                        lw_started[ii] = False
                        if t + 1 == nt:
                            lanes_loading -= 1
                else:
                    load_done[t, i] = c
                    lw_tile[i] = t + 1
                    lw_started[i] = False
                    if t + 1 == nt:
                        lanes_loading -= 1
                progress = True
        # ---- 3. writeback: one step per cycle once the block's merges are complete -----
        if wb_blk < nb:
            b = wb_blk
            s1 = wb_ptr[b + 1]
            if wb_left < 0:
                wb_next = wb_ptr[b]
                wb_left = s1 - wb_next
            if c >= wb_go and blk_npass[b] == R and blk_pass[b] <= c_lag \
                    and blk_merge[b] < c_lag:
                st = w_pend[kc]
                if st >= 0:
                    w_pend[kc] = -1
                elif wb_next < s1:
                    st = wb_next
                    wb_next += 1
                if st >= 0:
                    p = b_phase[b]
                    ncols = b_ncols[b]
                    nvec = 0
                    merged = False
                    for i in range(R):
                        if wb_slot[st, i] != -1:
                            if wb_merge[st, i] != 0:
                                merged = True
                            else:
                                nvec += 1
                    if merged:
                        nvec += 1
                    need = nvec * ncols * ph_o_bytes[p]
                    if stop or avail < need or not mem_ok:
                        stop = True
                        w_pend[kc] = st
                    else:
                        avail -= need
                        g_wbp += need
                        half = b_half[b]
                        out_t = ph_out[p]
                        ocols = t_cols[out_t]
                        base = t_off[out_t]
                        oc0 = ph_oc_ptr[p] + b_col0[b]
                        for j in range(ncols):
                            msum = np.int64(0)
                            for i in range(R):
                                sl = wb_slot[st, i]
                                if sl == -1:
                                    continue
                                v = np.int64(0)
                                if sl >= 0:
                                    v = bank[half, i, sl, j]
                                    counters[_C_WB_RD] += 1
                                if wb_merge[st, i] != 0:
                                    msum = _wrap(msum + v, acc_bits)
                                else:
                                    r = wb_row[st, i]
                                    mem[base + r * ocols + ph_oc[oc0 + j]] = _requant(
                                        v, ph_rq_shift[p], ph_rq_bits[p])
                            if merged:
                                r = wb_mrow[st]
                                mem[base + r * ocols + ph_oc[oc0 + j]] = _requant(
                                    msum, ph_rq_shift[p], ph_rq_bits[p])
                        wr_bytes[out_t] += need
                        counters[_C_WB_VECS] += nvec
                        counters[_C_WB_STEPS] += 1
                        wb_left -= 1
                        progress = True
                if wb_left == 0:
                    p = b_phase[b]
                    wb_done[b] = c
                    if ph_end[p] < c:
                        ph_end[p] = c
                    last_of_phase = (b + 1 == nb) or (b_phase[b + 1] != p)
                    if last_of_phase:
                        phase_done[p] = c + 1
                    wb_blk += 1
                    wb_left = -1
                    # the next block's first request is decided once this block's last
                    # grant is known
                    wb_go = c + lag + 1
                    progress = True
        credit -= avail0 - avail
        # ---- 4. stream issue: at most one element per PE row per cycle -----------------
        # a row first moves past an exhausted tile, then issues or stalls; a row past its
        # last tile is counted once every row has moved (drain if all are done), so the
        # causes do not depend on the order rows are looked at
        n_fin = 0
        for i in range(R):
            if cur[i] < nt and rem[i] == 0:
                t = cur[i]
                read_done[t, i] = last_issue[i] + C if last_issue[i] + C > 0 else 0
                b = t_block[t]
                if b_last_tile[b] == t:
                    blk_npass[b] += 1
                    blk_pass[b] = c + 1
                cur[i] += 1
                if cur[i] < nt:
                    g = t_stream[cur[i]]
                    rem[i] = rsp[i, g + 1] - rsp[i, g]
                else:
                    rows_done += 1
                progress = True
            if cur[i] >= nt:
                fin[n_fin] = i
                n_fin += 1
                continue
            t = cur[i]
            if rem[i] == 0:
                stall[i, _ST_IMBALANCE] += 1
                continue
            # the load, barrier and bank conditions, once met for a tile, stay met
            if ready_tile[i] != t and load_done[t, i] >= c:
                p = t_phase[t]
                if phase_done[ph_d_dep[p]] > c:
                    stall[i, _ST_BARRIER] += 1
                elif t_bc[t] != 0 and lw_tile[i] == t and not lw_started[0]:
                    # a broadcast tile waits for the slowest lane to reach it
                    stall[i, _ST_IMBALANCE] += 1
                else:
                    stall[i, _ST_LOAD] += 1
                continue
            blk = t_block[t]
            if ready_tile[i] != t:
                pb = b_prev_half[blk]
                if pb >= 0 and wb_done[pb] >= c:
                    stall[i, _ST_BANK] += 1
                    continue
                ready_tile[i] = t
            hp = h_pos[i]
            if h_seq[i] >= f_seq[i] or s_tag[i, hp] != h_seq[i] or s_arr[i, hp] > c:
                stall[i, _ST_STREAM] += 1
                continue
            # issue the element at the head of the FIFO
            p = t_phase[t]
            ncols = t_ncols[t]
            sv = s_val[i, hp]
            lb = s_lb[i, hp]
            fl = s_fl[i, hp]
            ab = i * C
            # integer arithmetic wraps modulo 2**32 or 2**64 (the dtype of acc and lmem), so
            # wrapping to acc_bits once, when the sum leaves the accumulator, gives the same
            # bits as wrapping every step
            if narrow:
                _mac(acc, lmem, np.uint64(ab), np.uint64(lb), np.uint64(ncols), np.int32(sv),
                     (fl & 1) != 0)
            else:
                _mac(acc, lmem, np.uint64(ab), np.uint64(lb), np.uint64(ncols), sv,
                     (fl & 1) != 0)
            if fl & 2:
                half = b_half[blk]
                sl = s_sl[i, hp]
                if fl & 4:
                    for j in range(ncols):
                        bank[half, i, sl, j] = _wrap(acc[ab + j], acc_bits)
                else:
                    for j in range(ncols):
                        bank[half, i, sl, j] = _wrap(bank[half, i, sl, j] + acc[ab + j], acc_bits)
                    counters[_C_BANK_RD] += ncols
                counters[_C_BANK_WR] += ncols
                m = c + C - 1 + pe_lat + merge_lat
                if blk_merge[blk] < m:
                    blk_merge[blk] = m
            if ph_first[p] > c:
                ph_first[p] = c
            last_issue[i] = c
            h_seq[i] += 1
            h_pos[i] = hp + 1 if hp + 1 < sfifo else 0
            rem[i] -= 1
            progress = True
        for k in range(n_fin):
            stall[fin[k], _ST_DRAIN if rows_done == R else _ST_IMBALANCE] += 1
        if progress:
            idle = 0
        else:
            idle += 1
            if idle > max_idle:
                counters[_C_CYCLES] = c + 1
                return -1
        c += 1
    counters[_C_CYCLES] = c
    return 0


def warm_up() -> None:
    """Load the cached kernel (and Numba's own lazy initialisation, about half a second)
    by simulating a one-element problem; safe to call from a background thread."""
    prog = _warm_up_program()
    simulate(prog, [np.zeros((t["rows"], t["cols"]), np.int64) for t in prog.tensors])


def _warm_up_program() -> Program:
    """The one-element Program, kept beside Numba's cache so that loading it needs neither
    SciPy nor the compiler (0.15 s of a fresh process); compiled again when missing or
    unreadable."""
    folder = Path(__file__).resolve().parent / "__pycache__" / "axw-warm-up"
    try:
        return Program.load(folder)
    except AxwError:
        pass
    import scipy.sparse as sp

    from accel.compiler import compile_problem
    from accel.config import HardwareConfig
    from accel.contract import make_contract
    from accel.problem import make_problem
    one = np.ones((1, 1), np.int64)
    prob = make_problem(sp.csr_matrix(one), one, one, make_contract("exact"), name="warm-up")
    prog = compile_problem(prob, HardwareConfig(rows=1, cols=1))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        prog.save(folder)
    except OSError:   # a read-only installation: compile it every time
        pass
    return prog


@dataclass(frozen=True, eq=False)
class SimResult:
    """Outputs and statistics of one simulated Program."""

    memory: list
    cycles: int
    stats: dict


def _dependencies(program: Program):
    """Program.phase_dependencies with "none" as index ``n_phases`` (always ready)."""
    nph = program.n_phases
    return tuple(np.where(d < 0, nph, d) for d in program.phase_dependencies())


def _load_queues(program: Program, ph_d_bytes: np.ndarray):
    """Per-lane request order of the load list (tile by tile) and its per-entry facts."""
    a = program.arrays
    R = program.config.rows
    lp = a["load_ptr"]
    nt = lp.shape[0]
    lens = (lp[:, 1:] - lp[:, :-1]).T if nt else np.zeros((R, 0), np.int64)  # R × nt
    lane_cum = np.zeros((R, nt + 1), np.int64)
    lane_cum[:, 1:] = np.cumsum(lens, axis=1)
    ents = []
    tile_of = []
    for i in range(R):
        n = lens[i]
        starts = lp[:, i] if nt else np.zeros(0, np.int64)
        tot = int(n.sum())
        off = np.repeat(starts - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
        ents.append(np.arange(tot, dtype=np.int64) + off)
        tile_of.append(np.repeat(np.arange(nt), n))
    lq_ptr = np.concatenate([[0], np.cumsum([e.size for e in ents])]).astype(np.int64)
    lq_ent = np.concatenate(ents) if ents else np.zeros(0, np.int64)
    tiles = np.concatenate(tile_of).astype(np.int64) if tile_of else np.zeros(0, np.int64)
    lq_phase = a["t_phase"].astype(np.int64)[tiles]
    lq_bytes = (ph_d_bytes[lq_phase] * a["t_ncols"].astype(np.int64)[tiles]).astype(np.int64)
    lq_tensor = a["ph_d"].astype(np.int64)[lq_phase]
    return lane_cum, lq_ptr, lq_ent, lq_phase, lq_bytes, lq_tensor


def simulate(program: Program, memory: list, *, stall_permille: int = 0,
             stall_seed: int = 1) -> SimResult:
    """Run ``program`` on ``memory`` (one 2-D int64 array per tensor; not modified).

    ``stall_permille`` makes the memory interface refuse transfers in that fraction of
    cycles, drawn from a xorshift32 sequence seeded with ``stall_seed`` (the RTL test
    bench draws the same sequence).
    """
    cfg = program.config
    if len(memory) != len(program.tensors):
        raise ProgramError(f"memory has {len(memory)} tensors, program needs {len(program.tensors)}")
    for t, m in zip(program.tensors, memory):
        if m.shape != (t["rows"], t["cols"]):
            raise ProgramError(f"tensor {t['name']}: memory shape {m.shape}, program says "
                               f"({t['rows']}, {t['cols']})")
    if not 0 <= stall_permille < 1000:
        raise AxwError(f"stall_permille must be in 0..999, got {stall_permille}")
    if not 0 < stall_seed < 2 ** 32:
        raise AxwError(f"stall_seed must be in 1..2**32-1, got {stall_seed}")
    sizes = np.array([m.size for m in memory], np.int64)
    t_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    t_cols = np.array([t["cols"] for t in program.tensors], np.int64)
    flat = np.concatenate([np.asarray(m, np.int64).ravel() for m in memory]) if memory else \
        np.zeros(0, np.int64)
    a = program.arrays
    ph_s_bytes, ph_d_bytes, ph_o_bytes = program.phase_transfer_bytes()
    R = cfg.rows
    nph = program.n_phases
    nten = len(program.tensors)
    counters = np.zeros(_N_COUNTERS, np.int64)
    stall = np.zeros((R, len(STALL_CAUSES)), np.int64)
    busy = np.zeros(R, np.int64)
    rd = np.zeros(nten, np.int64)
    wr = np.zeros(nten, np.int64)
    ph_first = np.full(nph, _INF, np.int64)
    ph_end = np.zeros(nph, np.int64)
    tile_issues = np.zeros(max(program.n_tiles, 1), np.int64)
    P = np.array([R, cfg.cols, cfg.lmem_depth, cfg.out_bank_depth, cfg.stream_fifo_depth,
                  cfg.load_fifo_depth, cfg.dram_bytes_per_cycle, cfg.dram_latency_cycles,
                  cfg.acc_bits, cfg.pe_latency_cycles, cfg.merge_latency_cycles,
                  stall_permille, stall_seed, 100_000 + 10 * cfg.dram_latency_cycles,
                  program.credit_cap(), cfg.request_lag_cycles, cfg.credit_lag_cycles],
                 np.int64)
    dt = np.int32 if cfg.acc_bits <= 32 else np.int64
    lmem = np.zeros(2 * R * cfg.lmem_depth * cfg.cols, dt)
    acc = np.zeros(R * cfg.cols, dt)
    rc = _run(P, flat, lmem, acc, t_off, t_cols,
              a["ph_s"].astype(np.int64), a["ph_d"].astype(np.int64), a["ph_out"].astype(np.int64),
              a["ph_rq_shift"].astype(np.int64), a["ph_rq_bits"].astype(np.int64),
              a["ph_s_rq_shift"].astype(np.int64), a["ph_s_rq_bits"].astype(np.int64),
              a["ph_out_cols_ptr"], a["ph_out_cols"], ph_s_bytes, ph_d_bytes, ph_o_bytes,
              *_dependencies(program),
              a["t_phase"].astype(np.int64), a["t_bank"].astype(np.int64),
              a["t_block"].astype(np.int64), a["t_col0"].astype(np.int64),
              a["t_ncols"].astype(np.int64), a["t_broadcast"].astype(np.int64),
              a["t_prev_same_bank"].astype(np.int64), a["load_ptr"], a["ld_drow"],
              a["ld_addr"].astype(np.int64), *_load_queues(program, ph_d_bytes),
              a["b_phase"].astype(np.int64), a["b_half"].astype(np.int64),
              a["b_last_tile"].astype(np.int64), a["b_prev_same_half"].astype(np.int64),
              a["b_col0"].astype(np.int64), a["b_ncols"].astype(np.int64),
              a["wb_ptr"], a["wb_slot"].astype(np.int64), a["wb_row"],
              a["wb_merge"].astype(np.int64), a["wb_mrow"],
              a["t_stream"].astype(np.int64), a["row_stream_ptr"], a["e_src"], a["e_addr"],
              a["e_slot"], a["e_flags"],
              counters, stall, busy, rd, wr, ph_first, ph_end, tile_issues)
    if rc != 0:
        raise ProgramError(f"simulation made no progress for {P[13]} cycles at cycle "
                           f"{counters[_C_CYCLES]}: the program deadlocks on this hardware")
    # a run that completes issues every element of every tile once: the issues of a
    # tile, and each row's busy cycles, follow from the stream groups
    nt = program.n_tiles
    rsp = a["row_stream_ptr"]
    if nt:
        per_row = (rsp[:, 1:] - rsp[:, :-1])[:, a["t_stream"].astype(np.int64)]   # R × nt
        tile_issues[:nt] = per_row.sum(axis=0)
        busy[:] = per_row.sum(axis=1)
    issues = tile_issues[:nt]
    ncols = a["t_ncols"].astype(np.int64)
    counters[_C_ELEMS] = issues.sum()
    counters[_C_USEFUL] = (issues * ncols).sum()
    counters[_C_LMEM_RD] = counters[_C_USEFUL]
    counters[_C_SLOTS] = issues.sum() * cfg.cols
    counters[_C_SFIFO] = counters[_C_ELEMS]        # every fetched element is issued
    if nt:
        s_by_tile = ph_s_bytes[a["t_phase"]] * issues
        np.add.at(rd, a["ph_s"][a["t_phase"]].astype(np.int64), s_by_tile)
    ph_macs = np.bincount(a["t_phase"], weights=issues * ncols, minlength=nph).astype(np.int64) \
        if nt else np.zeros(nph, np.int64)
    out = []
    for m, off in zip(memory, t_off):
        out.append(flat[off:off + m.size].reshape(m.shape).copy())
    cycles = int(counters[_C_CYCLES])
    stats = _stats(program, counters, stall, busy, rd, wr, ph_first, ph_end, ph_macs, cycles)
    return SimResult(out, cycles, stats)


def _stats(program, counters, stall, busy, rd, wr, ph_first, ph_end, ph_macs, cycles):
    cfg = program.config
    R, C = cfg.rows, cfg.cols
    useful = int(counters[_C_USEFUL])
    slots = int(counters[_C_SLOTS])
    busy_l = [int(x) for x in busy]
    maxb = max(busy_l) if busy_l else 0
    phases = []
    labels = program.meta.get("phases", [])
    for p in range(program.n_phases):
        first = int(ph_first[p]) if ph_first[p] < _INF else None
        phases.append({"phase": labels[p] if p < len(labels) else str(p),
                       "first_cycle": first, "end_cycle": int(ph_end[p]),
                       "cycles": int(ph_end[p]) + 1 - (first or 0) if first is not None else 0,
                       "useful_macs": int(ph_macs[p])})
    stall_tot = {k: int(stall[:, n].sum()) for n, k in enumerate(STALL_CAUSES)}
    tens = program.tensors
    return {
        "cycles": cycles,
        "useful_macs": useful,
        "utilization": useful / (R * C * cycles) if cycles else 0.0,
        "mapping_efficiency": useful / slots if slots else 0.0,
        "pe_slot_cycles": slots,
        "elements": int(counters[_C_ELEMS]),
        "phases": phases,
        "stall_row_cycles": stall_tot,
        "stall_row_cycles_per_row": {k: [int(x) for x in stall[:, n]]
                                     for n, k in enumerate(STALL_CAUSES)},
        "busy_cycles_per_row": busy_l,
        "balance": (sum(busy_l) / len(busy_l)) / maxb if maxb else 1.0,
        "memory_stall_cycles": int(counters[_C_STALL_MEM]),
        "onchip": {
            "lmem_reads": int(counters[_C_LMEM_RD]), "lmem_writes": int(counters[_C_LMEM_WR]),
            "out_bank_reads": int(counters[_C_BANK_RD] + counters[_C_WB_RD]),
            "out_bank_writes": int(counters[_C_BANK_WR]),
            "stream_fifo_writes": int(counters[_C_SFIFO]),
            "load_fifo_writes": int(counters[_C_LFIFO]),
            "writeback_vectors": int(counters[_C_WB_VECS]),
            "writeback_steps": int(counters[_C_WB_STEPS]),
        },
        "offchip_read_bytes": {t["name"]: int(rd[i]) for i, t in enumerate(tens)},
        "offchip_write_bytes": {t["name"]: int(wr[i]) for i, t in enumerate(tens)},
        "offchip_bytes": int(rd.sum() + wr.sum()),
    }
