# amaranth: UnusedElaboratable=no
"""The contract suite on the Amaranth simulation of the core (hdl.core), with every cycle
count equal to the simulator's, plus unit tests of the PE and the requantizer.

Amaranth's simulator runs about 1k cycles/s on these cores, so the random properties
take fewer examples here than at the other levels (same strategies, same checks).
"""

from __future__ import annotations

import dataclasses
import gc
import numpy as np
import pytest
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.sim import Simulator
from hypothesis import given, settings

import sim.engine as engine
from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig
from accel.problem import make_problem
from accel.program import Program
from accel.reference import reference
from hdl.core import (Core, requantize, rq_bound, rq_clamp, rq_round, rq_scale,
                      rq_scale_amount)
from hdl.image import (WB_CUTS, CoreParams, HdlError, layouts, out_bank_async, pack,
                       stream_fifo_copies, wb_registers)
from hdl.pe import PE, whole_operands
from hdl.array import Array
from hdl.simulate import LmemCollision, lmem_monitor, run_amaranth
from contract_suite import (ContractSuite, _cfg, cases, make_contract, random_problem,
                            requant_int, split_row_problem, wrap_int)


def amaranth_run(problem, config, order, *, stall_permille=0, d_mode=None, row_blocks=None,
                 write_cycles=None):
    prog = compile_problem(problem, config, order, d_mode=d_mode, row_blocks=row_blocks)
    mem = build_memory(problem, prog)
    want = engine.simulate(prog, mem, stall_permille=stall_permille)
    # a core that would take twice the simulator's cycles fails at once, not hours later
    out, cycles = run_amaranth(prog, mem, stall_permille=stall_permille,
                               write_cycles=write_cycles, max_cycles=2 * want.cycles + 1000)
    y = out[prog.tensor_id("Y")]
    assert cycles == want.cycles, f"RTL {cycles} cycles, simulator {want.cycles}"
    np.testing.assert_array_equal(y, want.memory[prog.tensor_id("Y")])
    return y, cycles


_FEW = settings(max_examples=4)


class TestAmaranthLevel(ContractSuite):
    """run = compile + Amaranth simulation of the core; cycles equal sim.simulate's."""

    def run(self, problem, config, order, **kw):
        return amaranth_run(problem, config, order, **kw)

    # the suite's strategies with smaller shapes (Amaranth simulates ~1k cycles/s)
    @_FEW
    @given(case=cases("exact", max_dim=12))
    def test_random_problems_exact(self, case):
        problem, cfg, order, kw, ctx = case
        self.check_model(problem, cfg, order, ctx, **kw)

    @_FEW
    @given(case=cases("int8", max_dim=10))
    def test_random_problems_int8(self, case):
        problem, cfg, order, kw, ctx = case
        self.check_model(problem, cfg, order, ctx, **kw)


class TestAmaranthLevelRequestLag2(TestAmaranthLevel):
    """The suite on the core whose requests are decided two cycles ahead
    (``request_lag_cycles`` 2, docs/machine.md rule 0): refused requests asked again out
    of order, FIFOs filled out of order; cycles equal sim.simulate's at the same lag.
    Like the other classes, the default run takes each test's first parametrization
    (conftest; ``pytest -m rtl_slow`` runs the rest)."""

    def run(self, problem, config, order, **kw):
        return amaranth_run(problem, config.with_(request_lag_cycles=2), order, **kw)


class TestAmaranthLevelCreditLag(TestAmaranthLevel):
    """Part of the suite on the core whose grants are registered (``credit_lag_cycles``
    1 with ``request_lag_cycles`` 3, docs/machine.md rule 0): the random problems, the
    rule-0 cases, memory stalls, the writeback's short steps and the tiling; cycles equal
    sim.simulate's.  (The rest of the suite runs at lag 0 and 2; each class costs minutes.)"""

    def run(self, problem, config, order, **kw):
        return amaranth_run(problem, config.with_(request_lag_cycles=3, credit_lag_cycles=1),
                            order, **kw)


def _keep_only(cls, names):
    """Collect only the tests ``names`` of the suite class ``cls``."""
    for name in dir(cls):
        if name.startswith("test_") and name not in names:
            setattr(cls, name, None)     # not collected


# the suite's random problems and the cases that exercise the whole machine
_PART = {"test_random_problems_exact", "test_random_problems_int8",
         "test_memory_stalls_change_time_not_results",
         "test_writeback_steps_of_few_vectors", "test_k_tiles_and_row_blocks",
         "test_long_row_is_split_across_pe_rows", "test_empty_rows_and_columns",
         "test_conv2d_int8_requantizes_the_intermediate"}
_keep_only(TestAmaranthLevelCreditLag,
           _PART | {"test_a_request_that_does_not_fit_stops_the_later_ones",
                    "test_a_refused_request_stops_the_other_classes"})


class TestAmaranthLevelLmemRead2(TestAmaranthLevel):
    """Part of the suite on the PE whose local-memory data is registered before the
    operand selects (``lmem_read_cycles`` 2: one cycle more PE latency, which the
    simulator and the compiler take from the HardwareConfig)."""

    def run(self, problem, config, order, **kw):
        return amaranth_run(problem, config.with_(lmem_read_cycles=2), order, **kw)


_keep_only(TestAmaranthLevelLmemRead2, _PART)


class TestAmaranthLevelWritebackRegisters(TestAmaranthLevel):
    """Part of the suite on the core whose writeback data path has every register of
    ``hdl.image.WB_CUTS`` (``request_lag_cycles`` 8 with the credit lag: the banks read
    five request stages before the grant, the merge, the vectors' sources and the
    requantizer carried down the stages): cycles equal sim.simulate's at that lag."""

    def run(self, problem, config, order, **kw):
        return amaranth_run(problem, config.with_(request_lag_cycles=8, credit_lag_cycles=1),
                            order, **kw)


_keep_only(TestAmaranthLevelWritebackRegisters,
           {"test_random_problems_int8", "test_writeback_steps_of_few_vectors",
            "test_long_row_is_split_across_pe_rows", "test_memory_stalls_change_time_not_results",
            "test_conv2d_int8_requantizes_the_intermediate"})


@pytest.mark.parametrize("lags", [(4, 0), (5, 1), (6, 0), (7, 1)])
def test_writeback_registers_under_each_lag(lags):
    # each count of the writeback's data-path registers (wb_registers 1 to 4): split rows
    # merged from several lanes, two output vectors chosen among them, requantized, with
    # refused steps asked again; bits and cycles equal the simulator's at that lag
    lag, credit_lag = lags
    assert wb_registers(credit_lag, lag) == lag - 3
    rng = np.random.default_rng(lag)
    o, n = 17, 60
    a = np.where(rng.random((o, n)) < 0.1, rng.integers(-128, 128, (o, n)), 0)
    a[5, :] = rng.integers(-128, 128, n) | 1
    problem = make_problem(a, rng.integers(-128, 128, (n, 4)), rng.integers(-128, 128, (4, 3)),
                           make_contract("int8", 8, 32, 5, 6), "wbr")
    cfg = HardwareConfig(rows=3, cols=3, lmem_depth=64, out_bank_depth=8, stream_fifo_depth=4,
                         load_fifo_depth=4, dram_bytes_per_cycle=8, dram_latency_cycles=2,
                         wb_vectors=2, request_lag_cycles=lag, credit_lag_cycles=credit_lag)
    prog = compile_problem(problem, cfg, "a(xw)")
    assert prog.arrays["wb_merge"].any(), "no split row: weak test"
    amaranth_run(problem, cfg, "a(xw)", stall_permille=300)


@pytest.mark.parametrize("vectors,lags", [(2, (0, 0)), (2, (7, 1)), (1, (7, 1))])
def test_merged_row_beside_a_lane_written_as_it_is(vectors, lags):
    # with one or two output vectors the merge sums every lane (CoreParams.wb_sum_all)
    # and takes off the lane written beside the merged row: a step merging three lanes
    # with the fourth written as it is, exact contract (no saturation to hide a wrong
    # sum), both rows not zero
    lag, credit_lag = lags
    problem = split_row_problem()
    cfg = _cfg(rows=4, cols=3, lmem_depth=128, wb_vectors=vectors, request_lag_cycles=lag,
               credit_lag_cycles=credit_lag)
    assert CoreParams(cfg).wb_sum_all
    prog = compile_problem(problem, cfg, "a(xw)")
    ar = prog.arrays
    used = ar["wb_slot"] != -1
    merged = (ar["wb_merge"] != 0) & used
    y = reference(problem, "a(xw)")
    beside = [(st, int(ar["wb_row"][st][i])) for st in np.nonzero(merged.any(axis=1))[0]
              for i in np.nonzero(used[st] & ~merged[st])[0] if ar["wb_slot"][st][i] >= 0]
    if vectors == 2:
        assert any(y[row].any() for _, row in beside), "no lane beside a merged row: weak test"
    assert y[ar["wb_mrow"][merged.any(axis=1)]].any(), "merged rows all zero: weak test"
    amaranth_run(problem, cfg, "a(xw)", stall_permille=200)


def test_wb_registers():
    # none without the step chain (lag 3 with the credit lag, lag 2, lag 0), lag - 3 after,
    # at most one per cut
    assert [wb_registers(1, d) for d in (0, 3, 4, 5, 8, 9, 20)] == [0, 0, 1, 2, 5, 5, 5]
    assert [wb_registers(0, d) for d in (0, 2, 3, 4, 8)] == [0, 0, 0, 1, 5]
    assert len(WB_CUTS) == 5 and WB_CUTS[0] == "o"


@pytest.mark.parametrize("lags, read", [((0, 0), 2), ((4, 1), 2), ((0, 0), 3), ((7, 1), 3)])
def test_lmem_read_cycles_change_the_cycles_as_the_simulator_does(lags, read):
    # the extra PE stages delay the writeback of every block (rule 3's wait), alone and
    # with the pipelined requests; the core must take exactly the simulator's cycles
    lag, credit_lag = lags
    problem = random_problem(7, 11, 9, 6, 5, dens_a=0.4)
    cfg = HardwareConfig(rows=3, cols=2, lmem_depth=8, out_bank_depth=4, stream_fifo_depth=8,
                         load_fifo_depth=8, dram_bytes_per_cycle=16, dram_latency_cycles=2,
                         request_lag_cycles=lag, credit_lag_cycles=credit_lag,
                         lmem_read_cycles=read)
    prog1 = compile_problem(problem, cfg.with_(lmem_read_cycles=read - 1), "a(xw)")
    before = engine.simulate(prog1, build_memory(problem, prog1), stall_permille=200).cycles
    _, cycles = amaranth_run(problem, cfg, "a(xw)", stall_permille=200)
    assert cycles > before


@pytest.mark.parametrize("case", [
    # seed, (o, n, c, h), rows, cols, bytes/cycle, latency, stalls ‰, request lag, FIFO
    (1, (9, 8, 5, 4), 2, 2, 4, 3, 0, 3, 8),          # one cycle fewer
    (29, (10, 4, 5, 4), 1, 1, 4, 2, 0, 3, 6),        # one cycle more
    (83, (10, 3, 4, 9), 2, 2, 2, 0, 300, 4, 6),      # latency 0, stalls
    (64, (6, 5, 11, 7), 3, 1, 3, 1, 0, 3, 6),
    (97, (5, 6, 3, 7), 2, 3, 3, 0, 0, 4, 2),
])
def test_credit_lag_where_it_changes_the_cycles(case):
    # bandwidth-bound problems on which the credit lag changes the cycle count; the core
    # must change it the same way
    seed, dims, R, C, B, L, pm, lag, fifo = case
    problem = random_problem(seed, *dims)
    cfg = HardwareConfig(rows=R, cols=C, lmem_depth=16, out_bank_depth=16,
                         stream_fifo_depth=fifo, load_fifo_depth=fifo, dram_bytes_per_cycle=B,
                         dram_latency_cycles=L, request_lag_cycles=lag, credit_lag_cycles=1)
    prog0 = compile_problem(problem, cfg.with_(credit_lag_cycles=0), "a(xw)")
    before = engine.simulate(prog0, build_memory(problem, prog0), stall_permille=pm).cycles
    _, cycles = amaranth_run(problem, cfg, "a(xw)", stall_permille=pm)
    assert cycles != before


@pytest.mark.parametrize("lags", [(2, 0), (3, 1)])
def test_full_stream_fifos_under_a_lag(lags):
    # two-entry FIFOs, one-entry local memories and ample bandwidth: the stream walkers
    # run ahead of the loads and find their FIFO full (the room the lag keeps as a
    # register; letting one more element in hangs or corrupts this run)
    lag, credit_lag = lags
    cfg = HardwareConfig(rows=2, cols=2, lmem_depth=2, out_bank_depth=8, stream_fifo_depth=2,
                         load_fifo_depth=2, dram_bytes_per_cycle=256, dram_latency_cycles=0,
                         request_lag_cycles=lag, credit_lag_cycles=credit_lag)
    amaranth_run(random_problem(11, 12, 14, 10, 8, dens_a=1.0), cfg, "a(xw)")


@pytest.mark.parametrize("case", ["lag2", "lag6"])
def test_block_ram_stream_fifos_under_a_lag(case):
    # a stream FIFO in block RAM under a lag keeps its head and the next entry in
    # registers and reads the three entries after them from its three copies two cycles
    # ahead; an entry written in one of those two cycles comes from the refill's own
    # registers instead (dropping the bypass of the write of two cycles before changes
    # the bits of both runs, checked by mutant)
    if case == "lag2":
        problem = random_problem(1611432939, 1, 11, 6, 9, dens_a=0.5)
        cfg = HardwareConfig(rows=1, cols=4, lmem_depth=11, out_bank_depth=15,
                             stream_fifo_depth=64, load_fifo_depth=4, dram_bytes_per_cycle=3,
                             dram_latency_cycles=1, request_lag_cycles=2, wb_vectors=2)
        order, d_mode = "a(xw)", "broadcast"
    else:
        problem = random_problem(1283041921, 5, 11, 6, 4, dens_a=0.2,
                                 contract=make_contract("int8", 8, 32, 7, 12))
        cfg = HardwareConfig(rows=4, cols=2, lmem_depth=7, out_bank_depth=14,
                             stream_fifo_depth=128, load_fifo_depth=64,
                             dram_bytes_per_cycle=256, dram_latency_cycles=2,
                             request_lag_cycles=6, lmem_read_cycles=2, wb_vectors=2)
        order, d_mode = "(ax)w", None
    assert stream_fifo_copies(cfg) == 3
    amaranth_run(problem, cfg, order, stall_permille=300, d_mode=d_mode)


@pytest.mark.parametrize("lags", [(0, 0), (4, 1), (3, 0)])
def test_a_second_run_from_the_same_load_is_the_same(lags):
    # start again after done, without a new program load: every run takes the cycles of
    # the first (run_amaranth checks) and the memory ends as the simulator's; a state a
    # run leaves behind (a lane's copy of running, a step record in the writeback's
    # registers) shows here
    lag, credit_lag = lags
    problem = random_problem(5, 9, 8, 5, 4)
    cfg = HardwareConfig(rows=2, cols=2, lmem_depth=8, out_bank_depth=8,
                         stream_fifo_depth=8, load_fifo_depth=8, dram_bytes_per_cycle=4,
                         dram_latency_cycles=2, request_lag_cycles=lag,
                         credit_lag_cycles=credit_lag)
    prog = compile_problem(problem, cfg, "a(xw)")
    mem = build_memory(problem, prog)
    out, cycles = run_amaranth(prog, mem, stall_permille=200, runs=3)
    want = engine.simulate(prog, mem, stall_permille=200)
    assert cycles == want.cycles
    np.testing.assert_array_equal(out[prog.tensor_id("Y")], want.memory[prog.tensor_id("Y")])


def test_runs_is_checked():
    problem = random_problem(5, 3, 3, 3, 3)
    prog = compile_problem(problem, _cfg(), "a(xw)")
    with pytest.raises(HdlError, match="^runs must be a positive integer, got 0$"):
        run_amaranth(prog, build_memory(problem, prog), runs=0)


# ------------------------------------------------------------------- parameters

def test_core_rejects_bad_parameters():
    with pytest.raises(HdlError, match="^params must be a CoreParams, got HardwareConfig$"):
        Core(HardwareConfig())
    with pytest.raises(HdlError, match="^max_tiles must be a positive integer, got 0$"):
        CoreParams(HardwareConfig(), max_tiles=0)
    with pytest.raises(HdlError, match="^config must be a HardwareConfig, got int$"):
        PE(3)
    with pytest.raises(HdlError, match="^request_lag_cycles=1: the RTL implements "
                                       "request_lag_cycles 0 and 2 or more"):
        CoreParams(HardwareConfig(request_lag_cycles=1))
    with pytest.raises(HdlError, match="^credit_lag_cycles=1 with request_lag_cycles=2: "):
        CoreParams(HardwareConfig(request_lag_cycles=2, credit_lag_cycles=1))


def test_pack_rejects_a_program_too_big_for_the_core():
    problem = random_problem(1, 9, 8, 5, 4)
    prog = compile_problem(problem, _cfg(), "a(xw)")
    small = CoreParams(prog.config, max_tiles=2)
    with pytest.raises(HdlError, match=r"^program needs \d+ tiles entries, the core holds 2$"):
        pack(prog, build_memory(problem, prog), small)


def test_signature_follows_the_config():
    cfg = HardwareConfig(rows=3, cols=5, acc_bits=24, operand_bits=6, lmem_depth=20,
                         out_bank_depth=9)
    core = Core(CoreParams(cfg, mem_words=1000))
    assert len(core.sreq_valid) == 3 and len(core.lrsp_data[0]) == 5
    assert len(core.wr_valid) == 4 and core.wr_data[0][0].shape() == signed(24)
    assert len(core.sreq_addr[0]) == 10
    pe = PE(cfg)
    assert len(pe.lw_addr) == cfg.lmem_addr_bits == 5 and len(pe.wb_addr) == 4


@pytest.mark.parametrize("lut", [5, 12])
def test_lut_multipliers_change_neither_bits_nor_cycles(lut):
    # 3×4 array: the last 5 PEs, then all 12, multiply in logic; extreme values included
    problem = random_problem(11, 9, 8, 5, 6, mode="extreme")
    cfg = _cfg()
    prog = compile_problem(problem, cfg, "(ax)w")
    mem = build_memory(problem, prog)
    params = dataclasses.replace(CoreParams.fit(prog, sum(m.size for m in mem)),
                                 lut_multipliers=lut)
    out, cycles = run_amaranth(prog, mem, params=params)
    want = engine.simulate(prog, mem)
    assert cycles == want.cycles
    np.testing.assert_array_equal(out[prog.tensor_id("Y")], want.memory[prog.tensor_id("Y")])


@pytest.mark.parametrize("order", ["(ax)w", "a(xw)"])
def test_whole_operands_at_16_bit_accumulators(order):
    # acc_bits 16: every PE's one 18 × 18 multiplier takes both operands whole (no select
    # of the narrow one, hdl.pe.whole_operands); both orders, so that the streamed value
    # is the narrow operand in one phase and the wide one in another; extreme values
    problem = random_problem(12, 9, 8, 5, 6, acc_bits=16, mode="extreme")
    cfg = _cfg(acc_bits=16)
    assert whole_operands(cfg, "dsp") and not whole_operands(_cfg(), "dsp")
    prog = compile_problem(problem, cfg, order)
    mem = build_memory(problem, prog)
    image = pack(prog, mem)
    lay = layouts(image.params)["lane_itile"]
    sels = {lay.unpack(int(v))["sel"] for i in range(cfg.rows)
            for v in image.tables[f"lane_itile{i}"]}
    assert sels == ({0, 1} if order == "(ax)w" else {1})
    out, cycles = run_amaranth(prog, mem)
    want = engine.simulate(prog, mem)
    assert cycles == want.cycles
    np.testing.assert_array_equal(out[prog.tensor_id("Y")], want.memory[prog.tensor_id("Y")])
    np.testing.assert_array_equal(out[prog.tensor_id("Y")], reference(problem, order))


def test_lut_multipliers_are_checked():
    with pytest.raises(HdlError, match=r"^lut_multipliers must be an integer in 0\.\.12 "
                                       r"\(the PEs\), got 13$"):
        CoreParams(_cfg(), lut_multipliers=13)
    with pytest.raises(HdlError, match="^multiplier must be one of dsp, lut, got 'mixed'$"):
        PE(_cfg(), multiplier="mixed")


@pytest.mark.parametrize("lags", [{}, {"request_lag_cycles": 3, "credit_lag_cycles": 1,
                                       "stream_fifo_depth": 16, "load_fifo_depth": 16},
                                  {"request_lag_cycles": 2, "stream_fifo_depth": 64}])
def test_core_memories_lists_every_memory_of_the_core(lags):
    """hdl.image.core_memories (what the resource model counts) against the memories of
    the elaborated core, by depth, width and whether the read is synchronous (under a
    lag, small FIFOs are read asynchronously at their head)."""
    from collections import Counter

    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance

    from hdl.image import core_memories
    from hdl.synth import SYNTH_CAPACITIES
    p = CoreParams(HardwareConfig(rows=3, cols=2, lmem_depth=64, out_bank_depth=16, **lags),
                   **SYNTH_CAPACITIES)
    found = Counter()

    def walk(f):
        if isinstance(f, MemoryInstance):
            sync = all(port._domain != "comb" for port in f._read_ports)
            found[f._data.depth, Shape.cast(f._data.shape).width, sync] += 1
        for sub, *_ in getattr(f, "subfragments", []):
            walk(sub)
    walk(Fragment.get(Core(p), None))
    listed = Counter()
    for mem in core_memories(p):
        listed[mem["depth"], mem["width"], mem["sync"]] += mem["count"]
    assert found == listed


# ------------------------------------------------------------------- PE against a naive model

def _pe_model(cfg, ops, lmem, whole=False):
    """Per element (value, sel, addr, bank, slot, half, first, last, fresh): the bank.
    ``whole``: the multiplier takes both operands whole (hdl.pe.whole_operands)."""
    W, N = cfg.acc_bits, cfg.operand_bits
    acc, bank = 0, {}
    for v, sel, addr, bk, slot, half, first, last, fresh in ops:
        loc = lmem[bk][addr]
        narrow, wide = (v, loc) if sel else (loc, v)   # the narrow one keeps its low N bits
        prod = wrap_int((narrow if whole else wrap_int(narrow, N)) * wide, W)
        acc = prod if first else wrap_int(acc + prod, W)
        if last:
            bank[half, slot] = acc if fresh else wrap_int(bank.get((half, slot), 0) + acc, W)
    return bank


_PE_CASES = [  # (operand_bits, acc_bits, multiplier): one, two and four 18×18 slices
    (4, 10, "dsp"), (8, 32, "dsp"), (8, 64, "dsp"), (6, 20, "lut"), (8, 32, "lut")]


@pytest.mark.parametrize("read", [1, 2])
@pytest.mark.parametrize("gap", [0, 1, 3])
@pytest.mark.parametrize("nbits,wbits,mult", _PE_CASES)
@pytest.mark.parametrize("banks", [3, 128])
def test_pe_against_naive_model(gap, nbits, wbits, mult, read, banks):
    # read: lmem_read_cycles (2: the value comes on vi two cycles after its element);
    # banks: out_bank_depth, 3 read at a registered address, 128 (block RAM) synchronously
    cfg = HardwareConfig(rows=1, cols=1, operand_bits=nbits, acc_bits=wbits, lmem_depth=4,
                         out_bank_depth=banks, lmem_read_cycles=read)
    assert out_bank_async(cfg) == (banks == 3)
    rng = np.random.default_rng(gap + wbits)
    wmax, nmax = 1 << (wbits - 1), 1 << (nbits - 1)
    # extremes included: the most negative values exercise every slice's sign handling
    lmem = [[int(v) for v in rng.choice([-wmax, wmax - 1, -1, int(rng.integers(-wmax, wmax))], 4)]
            for _ in range(2)]
    ops = []
    for k in range(40):
        first = k % 3 == 0
        last = k % 3 == 2 or rng.random() < 0.3
        sel = int(rng.integers(0, 2))   # 1: streamed value narrow; 0: streamed value wide
        v = int(rng.integers(-nmax, nmax)) if sel else int(rng.integers(-wmax, wmax))
        if rng.random() < 0.2:
            v = -nmax if sel else -wmax
        ops.append((v, sel, int(rng.integers(0, 4)), int(rng.integers(0, 2)),
                    int(rng.integers(0, 2)), int(rng.integers(0, 2)), first, last,
                    bool(rng.random() < 0.3)))
    # every slot written FRESH once first so the model and the memory start equal
    init = [(0, 1, 0, 0, s, h, True, True, True) for s in range(3) for h in range(2)]
    ops = init + ops
    pe = PE(cfg, multiplier=mult)
    got, zeroed = {}, []

    async def bench(ctx):
        for b in range(2):
            for a in range(4):
                ctx.set(pe.lw_en, 1); ctx.set(pe.lw_bank, b); ctx.set(pe.lw_addr, a)
                ctx.set(pe.lw_data, lmem[b][a])
                await ctx.tick()
        ctx.set(pe.lw_en, 0)
        # cycle by cycle: the element entering (None: none), its value on vi two cycles on
        cycles = [c for op in ops for c in [op] + [None] * gap] + [None] * 2
        for t, op in enumerate(cycles):
            if op is None:
                ctx.set(pe.ei.valid, 0)
            else:
                v, sel, addr, bk, slot, half, first, last, fresh = op
                ctx.set(pe.ei, {"valid": 1, "value": v if read == 1 else 0, "sel": sel,
                                "addr": addr, "bank": bk, "slot": slot, "half": half,
                                "first": first, "last": last, "fresh": fresh})
            if read > 1:
                ctx.set(pe.vi, cycles[t - 2][0] if t >= 2 and cycles[t - 2] else 0)
            await ctx.tick()
        # the last merge is written 6 (7) cycles after the element entered the PE
        await ctx.tick().repeat(4 + read)
        for h in range(2):
            for s in range(3):
                ctx.set(pe.wb_half, h); ctx.set(pe.wb_addr, s)
                await ctx.tick()
                got[h, s] = ctx.get(pe.wb_data)
                ctx.set(pe.wb_zero, 1)      # in the data's cycle: 0 instead
                zeroed.append(ctx.get(pe.wb_data))
                ctx.set(pe.wb_zero, 0)

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    whole = whole_operands(cfg, mult)
    assert whole == (mult == "dsp" and wbits <= 18)
    want = _pe_model(cfg, ops, lmem, whole)
    assert got == {k: want[k] for k in got}, (got, want)
    if whole:
        # local-memory values out of the narrow range (sel 0) are multiplied whole
        assert want != _pe_model(cfg, ops, lmem), "the case does not tell the two apart"
    assert zeroed == [0] * 6 and any(got.values())


def _check_requantizer(build, W, shifts):
    """``build(m, v, shift, bits)`` (a requantizer's output) against the suite's model on
    every value of W bits at W = 8 (a sample at 12), the ``shifts`` and every target width
    the 7-bit field can ask for that the contract allows (bits <= W)."""
    v, shift, bits = Signal(signed(W)), Signal(7), Signal(7)
    m = Module()
    out = build(m, v, shift, bits)
    lo, hi = -(1 << (W - 1)), (1 << (W - 1)) - 1
    values = range(lo, hi + 1) if W == 8 else (lo, lo + 1, -1000, -129, -128, -1, 0, 1,
                                               63, 64, 127, 128, 1000, hi - 1, hi)
    cases = [(x, s, b) for x in values for s in shifts
             for b in (0, 1, 2, 3, W // 2, W - 1, W)]
    got = []

    async def bench(ctx):
        for x, s, b in cases:
            ctx.set(v, x); ctx.set(shift, s); ctx.set(bits, b)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [x if b == 0 else requant_int(x, s, b) for x, s, b in cases]
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not bad, bad[:10]


@pytest.mark.parametrize("tree", [False, True])
@pytest.mark.parametrize("W", [8, 12])
def test_requantize_against_the_suite_model(W, tree):
    # shifts up to and past W (the contract allows 0..62: every value rounds to 0 from W on)
    _check_requantizer(lambda m, v, shift, bits: requantize(m, v, shift, bits, W, tree), W,
                       (0, 1, 2, 3, W - 2, W - 1, W, W + 1, 40, 62))


@pytest.mark.parametrize("W", [8, 12, 32])
def test_rq_bound_for_every_bit_count(W):
    # the saturation bound 2**(min(bits, W) - 1) - 1 and whether it applies (1 <= bits
    # <= W), for every value of a 7-bit field (bits 0: not applied)
    m = Module()
    bits = Signal(7)
    hi, on = rq_bound(m, bits, W)
    got = []

    async def bench(ctx):
        for b in range(128):
            ctx.set(bits, b)
            got.append((b, ctx.get(hi), ctx.get(on)))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for b, h, o in got:
        assert o == (1 <= b <= W), b
        if b:
            assert h == (1 << (min(b, W) - 1)) - 1, (b, h)


@pytest.mark.parametrize("W", [8, 12])
def test_split_requantization_against_the_suite_model(W):
    # the lane's form at lmem_read_cycles 2: the shift's multiple of 8 before the issue
    # register, the rest of it with the rounding after it, and the saturation from a mask
    # register (Mux(on, ~hi, 0)); registers left out, the same values
    def split(m, v, shift, bits):
        amt = rq_scale_amount(m, shift, bits, W)
        hi, on = rq_bound(m, bits, W)
        coarse = rq_scale(m, v, Cat(Const(0, 3), amt[3:]), W)
        r = rq_round(m, coarse >> amt[:3], W)
        return rq_clamp(m, r, hi, None, W, tree=True, mask=Mux(on, ~hi, 0))
    _check_requantizer(split, W, (0, 1, 3, 7, 8, 9, 15, 16, W - 1, W, W + 1, 62))


# The local memories are built without read-during-write logic (hdl.image.mem_attrs): the
# rules must never let a PE read an address in the cycle a write to it lands.  The monitor
# watches every PE in the Amaranth simulation of the core.

@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the raise
@pytest.mark.parametrize("collide", [False, True])
def test_lmem_monitor_sees_a_read_meeting_a_landing_write(collide):
    cfg = HardwareConfig(rows=2, cols=3, lmem_depth=8, out_bank_depth=4)
    arr = Array(cfg)

    async def bench(ctx):
        # a write to row 1, bank 1, address 5, columns 0 and 2, driven in cycle 2 lands in
        # cycle 3; the element issued to row 1 in cycle 1 reads in PE(1, 2) in cycle 3
        await ctx.tick().repeat(1)
        ctx.set(arr.e[1].valid, 1); ctx.set(arr.e[1].bank, 1)
        ctx.set(arr.e[1].addr, 5 if collide else 4)
        await ctx.tick()
        ctx.set(arr.e[1].valid, 0)
        ctx.set(arr.lw_en[1], 1); ctx.set(arr.lw_bank[1], 1); ctx.set(arr.lw_addr[1], 5)
        ctx.set(arr.lw_mask[1], 0b101)
        await ctx.tick()
        ctx.set(arr.lw_en[1], 0)
        await ctx.tick().repeat(4)

    sim = Simulator(arr)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(lmem_monitor(arr, cfg))
    if collide:
        with pytest.raises(LmemCollision, match=r"PE\(1, 2\) reads bank 1 address 5"):
            sim.run()
        # the testbench left waiting when the monitor raised is finalized now, under this
        # test's filter, instead of warning in whichever test the collector runs next
        del sim
        gc.collect()
    else:
        sim.run()


@pytest.mark.parametrize("cfg", [
    _cfg(rows=2, cols=3, lmem_depth=8, dram_latency_cycles=1),
    _cfg(rows=3, cols=2, lmem_depth=4, dram_latency_cycles=2, dram_bytes_per_cycle=256),
    # the load writer's reading checks registered (every lag >= 2)
    _cfg(rows=3, cols=2, lmem_depth=4, dram_latency_cycles=2, dram_bytes_per_cycle=256,
         request_lag_cycles=3, credit_lag_cycles=1)],
    ids=["2x3", "3x2", "3x2-lag3c"])
@pytest.mark.parametrize("order", ["a(xw)", "(ax)w"])
def test_no_local_memory_read_meets_a_landing_write(cfg, order):
    # many small tiles, short latency: loads of the next tile of a bank follow its last
    # reads as closely as the rules allow
    problem = random_problem(3, 30, 40, 12, 10)
    prog = compile_problem(problem, cfg, order)
    mem = build_memory(problem, prog)
    out, cycles = run_amaranth(prog, mem, check_lmem=True)
    want = engine.simulate(prog, mem)
    assert cycles == want.cycles
    np.testing.assert_array_equal(out[prog.tensor_id("Y")], want.memory[prog.tensor_id("Y")])


# ------------------------------------------------------------------- writeback timing

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("lag", [0, 2])
def test_blocks_whose_writebacks_end_in_consecutive_cycles(seed, lag):
    # one output slot per lane, so every block is one writeback step; memory stalls let
    # the credit fill while the next block completes, so at lag 0 some block's last step
    # fires the cycle after the one before it: the block table's read-ahead (two copies,
    # the previous cycle's move picking between them) must then hand over two records in
    # a row.  Under a lag a block's steps are asked for once it is the current block, so
    # its last step comes LAG + 1 cycles after the block before it ends at the earliest:
    # the read-ahead's records, registered once more there, rely on two cycles
    problem = random_problem(seed, 24, 10, 6, 3, dens_a=0.4)
    cfg = _cfg(rows=2, cols=2, out_bank_depth=1, lmem_depth=16, request_lag_cycles=lag)
    wp = compile_problem(problem, cfg, "a(xw)").arrays["wb_ptr"]
    steps = []
    amaranth_run(problem, cfg, "a(xw)", stall_permille=600, write_cycles=steps)  # equal to sim
    assert len(steps) == wp[-1]
    ends = [steps[wp[b + 1] - 1] for b in range(len(wp) - 1)]
    gap = min(e1 - e0 for e0, e1 in zip(ends, ends[1:]))
    assert gap == (1 if lag == 0 else lag + 1), f"closest block ends {gap} cycles apart"


def test_pack_rejects_a_block_without_steps_under_a_request_lag():
    # with a lag the core ends a block on its last step's grant; the compiler never
    # makes a block without steps, so a hand-edited Program stands for one
    problem = random_problem(1, 9, 8, 5, 4)
    prog = compile_problem(problem, _cfg(request_lag_cycles=2), "a(xw)")
    mem = build_memory(problem, prog)
    pack(prog, mem)
    wp = prog.arrays["wb_ptr"].copy()
    assert prog.n_blocks >= 2 and wp[1] > 0
    wp[1] = 0
    edited = Program(prog.config, prog.tensors, {**prog.arrays, "wb_ptr": wp}, prog.meta)
    with pytest.raises(HdlError, match="^block 0 has no writeback step: with a request lag"):
        pack(edited, mem)
