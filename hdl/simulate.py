"""Run a Program on the Amaranth simulation of the core with a behavioural memory.

The memory model is the one of docs/rtl.md: a request accepted (valid and ready) at
cycle c is answered at cycle c + L on the same lane's response port; ``ready`` is low in
the cycles the xorshift32 stall sequence of docs/machine.md refuses.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from amaranth.sim import Simulator

from accel.program import Program

from .core import Core
from .image import CoreParams, HdlError, pack

__all__ = ["stall_sequence", "run_amaranth", "lmem_monitor", "LmemCollision"]


class LmemCollision(AssertionError):
    """A PE read its local memory in the cycle a write to the same address landed: the
    simulation returns the old value, a block RAM without read-during-write logic
    (``hdl.image.mem_attrs``) need not."""


def stall_sequence(seed: int):
    """xorshift32 draws, one per cycle from cycle 0 (docs/machine.md, rule 0)."""
    x = seed if seed != 0 else 1
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def run_amaranth(program: Program, memory: list, *, stall_permille: int = 0,
                 stall_seed: int = 1, params: CoreParams | None = None,
                 max_cycles: int = 2_000_000, vcd: str | None = None,
                 check_lmem: bool = False, write_cycles: list | None = None,
                 runs: int = 1):
    """Simulate; return ``(memory after the run (list of 2-D arrays), cycles)``.

    ``check_lmem`` also watches every PE's local memory and raises
    :class:`LmemCollision` if an element reads an address in the cycle a write to it
    lands (the PEs register their writes: one driven in cycle w lands in w + 1; PE(i, j)
    sees the element issued to row i j cycles after PE(i, 0)).  ``write_cycles``, a list,
    gets the cycle of every writeback step the memory takes (one with a write).  With
    ``runs`` > 1 the core is started again after each run, without a new program load
    (each run with the same stalls), and every run must take the same cycles: a state
    left over from a run shows as a difference."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise HdlError(f"runs must be a positive integer, got {runs!r}")
    img = pack(program, memory, params)
    core = Core(img.params, img)
    cfg = program.config
    R, C, L = cfg.rows, cfg.cols, cfg.dram_latency_cycles
    mem = [int(v) for v in img.memory]
    words = len(mem)
    result = {}

    def quiet(ctx, when):
        """docs/rtl.md, *Memory*: the core raises no request or write while not busy."""
        for name in ("sreq_valid", "lreq_valid", "wr_valid"):
            for k, v in enumerate(getattr(core, name)):
                if ctx.get(v):
                    raise HdlError(f"core raised {name}[{k}] while not busy ({when})")

    async def bench(ctx):
        for r in range(runs):
            await one_run(ctx)
            cycles = result.setdefault("each", [])
            cycles.append(result["cycles"])
            if cycles[-1] != cycles[0]:
                raise HdlError(f"run {r + 1} took {cycles[-1]} cycles, run 1 {cycles[0]}")

    async def one_run(ctx):
        stalls = stall_sequence(stall_seed)
        ctx.set(core.start, 1)
        await ctx.tick()
        ctx.set(core.start, 0)
        while not (ctx.get(core.busy) or ctx.get(core.done)):   # the core's PRIME cycles
            quiet(ctx, "before cycle 0")
            await ctx.tick()
        pend_s = [deque() for _ in range(R)]
        pend_l = [deque() for _ in range(R)]
        c = 0
        while ctx.get(core.busy):
            if c > max_cycles:
                raise RuntimeError(f"core did not finish in {max_cycles} cycles")
            ok = True
            if stall_permille:
                ok = next(stalls) % 1000 >= stall_permille
            ctx.set(core.mem_ready, ok)
            if ok:
                for i in range(R):
                    if ctx.get(core.sreq_valid[i]):
                        a = ctx.get(core.sreq_addr[i])
                        pend_s[i].append((c + L, mem[a] if a < words else 0))
                    if ctx.get(core.lreq_valid[i]):
                        a = ctx.get(core.lreq_addr[i])
                        pend_l[i].append((c + L, [mem[a + j] if a + j < words else 0
                                                  for j in range(C)]))
                wv = [ctx.get(core.wr_valid[v]) for v in range(len(core.wr_valid))]
                if any(wv):
                    if write_cycles is not None:
                        write_cycles.append(c)
                    n = ctx.get(core.wr_ncols)
                    cols = [ctx.get(core.wr_col[j]) for j in range(n)]
                    for v in range(len(wv)):
                        if wv[v]:
                            row = ctx.get(core.wr_row[v])
                            for j in range(n):
                                mem[row + cols[j]] = ctx.get(core.wr_data[v][j])
            for i in range(R):
                if pend_s[i] and pend_s[i][0][0] == c:
                    ctx.set(core.srsp_valid[i], 1)
                    ctx.set(core.srsp_data[i], pend_s[i].popleft()[1])
                else:
                    ctx.set(core.srsp_valid[i], 0)
                if pend_l[i] and pend_l[i][0][0] == c:
                    ctx.set(core.lrsp_valid[i], 1)
                    vals = pend_l[i].popleft()[1]
                    for j in range(C):
                        ctx.set(core.lrsp_data[i][j], vals[j])
                else:
                    ctx.set(core.lrsp_valid[i], 0)
            await ctx.tick()
            c += 1
        result["cycles"] = ctx.get(core.cycles)
        for k in range(2):      # and after its last cycle (no request left registered)
            quiet(ctx, f"{k + 1} cycles after the run")
            await ctx.tick()

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    if check_lmem:
        sim.add_process(lmem_monitor(core.array, cfg))
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    flat = np.array(mem, np.int64)
    out = []
    for off, m in zip(img.offsets, memory):
        out.append(flat[off:off + m.size].reshape(m.shape).copy())
    return out, int(result["cycles"])


def lmem_monitor(arr, cfg):
    """A simulator process raising :class:`LmemCollision` (see :func:`run_amaranth`)."""
    R, C = cfg.rows, cfg.cols
    els = [(arr.e[i].valid, arr.e[i].bank, arr.e[i].addr) for i in range(R)]
    wrs = [(arr.lw_en[i], arr.lw_bank[i], arr.lw_addr[i], arr.lw_mask[i]) for i in range(R)]
    sigs = [s for t in els + wrs for s in t]

    async def monitor(ctx):
        # the element at PE(i, j) in a cycle: hist[i][-1 - j]
        hist = [deque([(0, 0, 0)] * C, maxlen=C) for _ in range(R)]
        landing = []    # writes driven in the cycle before: (i, b, addr, mask)
        cycle = 0
        ticks = ctx.tick().sample(*sigs)
        while True:
            _clk, _rst, *vals = await ticks   # the values of the cycle just ended
            for i in range(R):
                hist[i].append(tuple(vals[3 * i:3 * i + 3]))
            for i, b, a, mask in landing:
                for j in range(C):
                    valid, bank, addr = hist[i][-1 - j]
                    if (mask >> j) & 1 and valid and bank == b and addr == a:
                        raise LmemCollision(f"cycle {cycle}: PE({i}, {j}) reads bank {b} "
                                            f"address {a} as a write to it lands")
            w = vals[3 * R:]
            landing = [(i, w[4 * i + 1], w[4 * i + 2], w[4 * i + 3])
                       for i in range(R) if w[4 * i]]
            cycle += 1
    return monitor
