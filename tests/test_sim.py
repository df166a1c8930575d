"""Tests of sim.engine: the contract suite at the simulator level, cycle counts derived by
hand from docs/machine.md, and the consistency of the statistics."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.errors import AxwError, ProgramError
from accel.problem import make_problem
from accel.program import Program
from sim.engine import STALL_CAUSES, simulate
from contract_suite import ContractSuite, cases, random_problem


def sim_run(problem, config, order, *, stall_permille=0, d_mode=None, row_blocks=None):
    prog = compile_problem(problem, config, order, d_mode=d_mode, row_blocks=row_blocks)
    res = simulate(prog, build_memory(problem, prog), stall_permille=stall_permille)
    return prog, res


class TestSimLevel(ContractSuite):
    """run = compile + simulate; the suite also compares with accel.reference."""

    def run(self, problem, config, order, **kw):
        prog, res = sim_run(problem, config, order, **kw)
        return res.memory[prog.tensor_id("Y")], res.cycles


class TestSimLevelRequestLag1(ContractSuite):
    """The suite on machines whose requests are decided ahead (``request_lag_cycles``,
    rule 0): refused requests are asked for again out of order, the FIFOs fill out of
    order and the writeback's steps too; the outputs must not change."""

    LAG = 1

    def run(self, problem, config, order, **kw):
        prog, res = sim_run(problem, config.with_(request_lag_cycles=self.LAG), order, **kw)
        return res.memory[prog.tensor_id("Y")], res.cycles


class TestSimLevelRequestLag3(TestSimLevelRequestLag1):
    LAG = 3


class TestSimLevelCreditLag(ContractSuite):
    """The suite on machines whose grants are checked against the credit of the cycle
    before less only its writeback grant (``credit_lag_cycles`` 1, rule 0), with and
    without a request lag: the outputs must not change."""

    LAG = 0

    def run(self, problem, config, order, **kw):
        prog, res = sim_run(problem, config.with_(request_lag_cycles=self.LAG,
                                                  credit_lag_cycles=1), order, **kw)
        return res.memory[prog.tensor_id("Y")], res.cycles


class TestSimLevelCreditLagRequestLag3(TestSimLevelCreditLag):
    LAG = 3


# ------------------------------------------------------------ hand-derived cycle counts
#
# Common to all cases: order a(xw), so phase 0 is X·W (S = X, dense, D = W) and phase 1
# is A·T (S = A, D = T, written by phase 0).  Contract s8/s32, so an X or A element costs
# 1 + stream_index_bytes = 1 + 2 = 3 bytes (lmem_depth 1024 → 10 address bits → 2 bytes),
# a W row entry 1 byte per column, a T row entry 4 bytes per column, an output vector
# 4 bytes per column.  C = 1, so a LAST issued at cycle i completes its merge at
# i + C - 1 + pe_latency + merge_latency = i + 7 and the block's writeback may start at
# the first c > i + 7 (rule 3).  Data requested at c is usable at c + L + 1 (rule 0).
# Loads are done at `load_done`; an element may issue only at c > load_done (rule 4).
# The A stream (tensor A is never written) may be fetched from cycle 0; loads of T wait
# for "phase 0 done" = its last writeback cycle + 1 (the dependency rule).
# cycles = last writeback cycle + 1.

def _hand_case(a, x, w, rows, latency, bytes_per_cycle=1024, d_mode=None, lag=0,
               credit_lag=0):
    cfg = HardwareConfig(rows=rows, cols=1, dram_latency_cycles=latency,
                         dram_bytes_per_cycle=bytes_per_cycle, request_lag_cycles=lag,
                         credit_lag_cycles=credit_lag)
    problem = make_problem(np.array(a), np.array(x), np.array(w), make_contract("exact"),
                           "hand", x_sparse=False)
    prog = compile_problem(problem, cfg, "a(xw)", d_mode=d_mode)
    res = simulate(prog, build_memory(problem, prog))
    np.testing.assert_array_equal(res.memory[prog.tensor_id("Y")],
                                  np.array(a) @ np.array(x) @ np.array(w))
    return prog, res


@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_1x1_identity(latency):
    # 1×1 array; A = [[1]], X = [[3]], W = [[5]]; B = 1024 bytes/cycle (never limiting).
    # Program: tile 0 (phase 0, broadcast, load W[0] → addr 0), element e0 = X[0,0]
    # (FIRST|LAST|FRESH, slot 0); tile 1 (phase 1, broadcast, load T[0] → addr 0),
    # element e1 = A[0,0]; one writeback step per block.
    #   c = 0      fetch e0 (usable L+1); fetch W[0] (usable L+1); tile 0 starts writing
    #   c = 2      fetch side has moved to tile 1 (one cycle at c = 1); fetch e1
    #   c = L+1    write W[0]: load_done[0] = L+1
    #   c = L+2    issue e0 (LAST): merge completes at L+9
    #   c = L+3    the row moves to tile 1; T is not ready: `barrier`
    #   c = L+10   writeback of block 0 (first c > L+9); phase 0 done from L+11
    #   c = L+11   fetch T[0] (usable 2L+12); tile 1 starts writing
    #   c = 2L+12  write T[0]: load_done[1] = 2L+12
    #   c = 2L+13  issue e1 (arrived at L+3): merge completes at 2L+20
    #   c = 2L+14  the row moves past its last tile: `drain` from here
    #   c = 2L+21  writeback of block 1  →  cycles = 2L+22
    # Stalls: load at 0..L+1 and L+11..2L+12 (2L+4), barrier L+3..L+10 (8),
    # drain 2L+14..2L+21 (8), busy 2: total 2L+22 = cycles.
    prog, res = _hand_case([[1]], [[3]], [[5]], rows=1, latency=latency)
    L = latency
    assert res.cycles == 2 * L + 22
    assert res.stats["stall_row_cycles"] == {
        "load": 2 * L + 4, "stream": 0, "bank": 0, "barrier": 8, "imbalance": 0, "drain": 8}
    assert res.stats["busy_cycles_per_row"] == [2]
    assert [p["end_cycle"] for p in res.stats["phases"]] == [L + 10, 2 * L + 21]


@pytest.mark.parametrize("lag", [1, 2, 5])
@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_1x1_identity_with_request_lag(latency, lag):
    # test_cycles_1x1_identity with request_lag_cycles = d (rule 0): a request for cycle
    # c is decided from the state at the start of c - d.  Every request on the critical
    # path moves by d: e0 and W[0] are asked for at d (nothing is decided before cycle
    # 0), so e0 issues at d+L+2 and its merge is done at d+L+9; block 0's writeback waits
    # for c - d > d+L+9: 2d+L+10, phase 0 done from 2d+L+11; T[0] waits for phase 0 done
    # at c - d: 3d+L+11, written at 3d+2L+12; e1 issues at 3d+2L+13, merge done 3d+2L+20;
    # block 1's writeback at 4d+2L+21  →  cycles = 2L+22+4d.
    prog, res = _hand_case([[1]], [[3]], [[5]], rows=1, latency=latency, lag=lag)
    assert res.cycles == 2 * latency + 22 + 4 * lag
    assert [p["end_cycle"] for p in res.stats["phases"]] == [
        latency + 10 + 2 * lag, 2 * latency + 21 + 4 * lag]


@pytest.mark.parametrize("lag", [0, 2])
@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_two_element_row(latency, lag):
    # 1×1 array; A = [[2, 3]] (one row, two nonzeros), X = [[3], [4]], W = [[5]].
    # Phase 0 streams e0 = X[0,0] (slot 0) and e1 = X[1,0] (slot 1); block 0 has two
    # writeback steps.  Phase 1 loads T[0], T[1] (addr 0, 1) and streams e2 = A[0,0]
    # (FIRST) and e3 = A[0,1] (LAST|FRESH); block 1 has one step.
    #   c = 0, 1   fetch e0, e1 (usable L+1, L+2); c = 0 also fetches W[0] (usable L+1)
    #   c = 2      fetch side moves to tile 1;  c = 3, 4: fetch e2, e3
    #   c = L+1    write W[0]: load_done[0] = L+1
    #   c = L+2    issue e0;  c = L+3: issue e1 (LAST): merge completes at L+10
    #   c = L+11   writeback step 0;  c = L+12: step 1; phase 0 done from L+13
    #   c = L+13   fetch T[0] (usable 2L+14);  c = L+14: fetch T[1] (usable 2L+15)
    #   c = 2L+14  write T[0];  c = 2L+15: write T[1]: load_done[1] = 2L+15
    #   c = 2L+16  issue e2;  c = 2L+17: issue e3 (LAST): merge completes at 2L+24
    #   c = 2L+25  writeback of block 1  →  cycles = 2L+26
    # With request_lag_cycles = d every request moves as in
    # test_cycles_1x1_identity_with_request_lag: the fetches by d, block 0's two steps
    # (asked for in a row, the second before the first's grant is known) to 2d+L+11 and
    # 2d+L+12, T[0], T[1] to 3d+L+13, 3d+L+14, block 1's step to 4d+2L+25.
    prog, res = _hand_case([[2, 3]], [[3], [4]], [[5]], rows=1, latency=latency, lag=lag)
    L = latency
    assert prog.n_tiles == 2 and list(np.diff(prog.arrays["wb_ptr"])) == [2, 1]
    assert res.cycles == 2 * L + 26 + 4 * lag
    assert res.stats["busy_cycles_per_row"] == [4]
    assert res.stats["stall_row_cycles"]["barrier"] == 9 + lag       # L+d+4 .. L+2d+12


@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_two_rows_on_2x1_array(latency):
    # 2×1 array; A = diag(2, 3), X = [[3], [4]], W = [[5]], broadcast D tiles (forced).
    # Phase 0: lane 0 streams X[0,0], lane 1 streams X[1,0]; tile 0 loads W[0] once in
    # lane 0 and writes both lanes.  Phase 1: lane 0 streams A[0,0] (addr 0), lane 1
    # A[1,1] (addr 1); the broadcast tile 1 loads T[0], T[1] into addr 0, 1 of both lanes.
    # Each block has one writeback step with two vectors (8 bytes).
    #   c = 0      both lanes fetch (usable L+1); W[0] fetched (usable L+1)
    #   c = L+1    write W[0] into both lanes: load_done[0] = L+1
    #   c = L+2    both rows issue (LAST): merges complete at L+9
    #   c = L+10   writeback of block 0; phase 0 done from L+11
    #   c = L+11   fetch T[0] (usable 2L+12); c = L+12: fetch T[1] (usable 2L+13)
    #   c = 2L+13  last write: load_done[1] = 2L+13
    #   c = 2L+14  both rows issue: merges complete at 2L+21
    #   c = 2L+22  writeback of block 1  →  cycles = 2L+23
    prog, res = _hand_case([[2, 0], [0, 3]], [[3], [4]], [[5]], rows=2, latency=latency,
                           d_mode="broadcast")
    assert res.cycles == 2 * latency + 23
    assert res.stats["busy_cycles_per_row"] == [2, 2]


@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_one_byte_per_cycle(latency):
    # The 1×1 identity case of test_cycles_1x1_identity with B = 1 byte/cycle.  The largest
    # transfer is 4 bytes (a T entry or an output vector), so the bucket holds at most
    # cap = 2·max(B, 4) = 8; credit starts empty and gains 1 per cycle (rule 0, evaluated
    # before the other rules of the cycle).  The cycle's priority order is stream, loads,
    # writeback, and a refused request stops every later one (rule 0): W[0] (1 byte)
    # would fit at cycle 0 but waits behind the refused stream element.
    #   c = 0, 1   credit 1, 2: e0 (3 bytes) refused, W[0] stopped behind it
    #   c = 2      credit 3: fetch e0 → 0 (usable at L + 3); W[0] refused (credit 0)
    #   c = 3      fetch side moves to tile 1; c = 3, 4: e1 refused, W[0] stopped
    #   c = 5      credit 3: fetch e1 → 0; W[0] refused
    #   c = 6      credit 1: W[0] granted → 0 (no stream request is left)
    #   L = 0: W[0] written at 7 → issue e0 at 8, merge done at 15; writeback at 16 needs
    #          4 bytes: credit capped at 8 → 4; phase 0 done from 17; T[0] granted at 17
    #          (credit 5 → 1), usable and written at 18; issue e1 at 19, merge done 26;
    #          writeback at 27 (credit capped at 8) → cycles = 28
    #   L = 3: W[0] written at 10 → issue e0 at 11, merge done 18; writeback at 19;
    #          phase 0 done from 20; T[0] granted at 20, usable and written at 24; issue
    #          e1 at 25, merge done 32; writeback at 33 → cycles = 34
    #   Both elements arrive before their loads are written: no stream stall.  Load
    #   stalls: c = 0..7 and 17, 18 (L = 0), c = 0..10 and 20..24 (L = 3); barrier 8 each.
    prog, res = _hand_case([[1]], [[3]], [[5]], rows=1, latency=latency, bytes_per_cycle=1)
    assert res.cycles == {0: 28, 3: 34}[latency]
    assert res.stats["stall_row_cycles"]["stream"] == 0
    assert res.stats["stall_row_cycles"]["load"] == {0: 10, 3: 16}[latency]


@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_one_byte_per_cycle_with_request_lag(latency):
    # test_cycles_one_byte_per_cycle with request_lag_cycles = 1: a request for cycle c
    # knows the outcomes of the requests up to c - 2, so a refused element is asked for
    # again two cycles after its refusal, after the elements asked for since (rule 0).
    #   c = 0      credit 1: nothing is decided before cycle 0, no request
    #   c = 1      credit 2: e0 (3 bytes) refused, W[0] stopped behind it
    #   c = 2      credit 3: the fetch side, not knowing e0's refusal, moves to tile 1 and
    #              asks for e1: granted → 0 (e1 arrives before e0, into its own slot)
    #   c = 3      credit 1: e0's and W[0]'s refusals are known: asked again, refused
    #   c = 4      credit 2: nothing asked (the re-asks of c = 3 are not known yet)
    #   c = 5      credit 3: e0 granted → 0 (usable at L + 6); W[0] refused
    #   c = 7      credit 2: W[0] granted → 1 (usable at L + 8)
    #   L = 0: W[0] written at 8 → issue e0 at 9, merge done at 16; writeback at the first
    #          c with c - 1 > 16: 18 (credit 8 → 4); phase 0 done from 19; T[0] asked for
    #          at the first c with c - 1 >= 19: 20 (credit 6 → 2), written at 21; issue
    #          e1 at 22, merge done 29; writeback at 31 → cycles = 32
    #   L = 3: W[0] written at 11 → issue e0 at 12, merge done 19; writeback at 21; phase 0
    #          done from 22; T[0] granted at 23, written at 27; issue e1 at 28, merge done
    #          35; writeback at 37 → cycles = 38
    prog, res = _hand_case([[1]], [[3]], [[5]], rows=1, latency=latency, bytes_per_cycle=1,
                           lag=1)
    assert res.cycles == {0: 32, 3: 38}[latency]
    assert res.stats["stall_row_cycles"]["stream"] == 0


@pytest.mark.parametrize("latency", [0, 3])
def test_cycles_one_byte_per_cycle_with_credit_lag(latency):
    # test_cycles_one_byte_per_cycle with credit_lag_cycles = 1 (rule 0): the grants of
    # cycle c are checked against min(K(c-1) + B - wb(c-1), cap), K(c-1) the credit at
    # the start of c - 1 (after its refill; K(-1) = 0) and wb(c-1) the writeback's grant
    # then; the credit K itself takes every grant and may go below zero.
    #   c = 0, 1   K 1, 2; checked against 1, 2: e0 (3 bytes) refused, W[0] stopped
    #   c = 2      K 3; against 3: e0 granted (usable at L + 3), W[0] refused; K → 0
    #   c = 3      K 1; against K(2) + 1 = 4, which does not know e0's grant: the fetch
    #              side moves to tile 1, e1 granted (3 bytes), W[0] granted (1 byte);
    #              K → -3 (usable at L + 4 both)
    #   c >= 4     K = c - 6 up to the cap of 8 (nothing else is asked until phase 0 ends)
    #   L = 0: W[0] written at 4 → issue e0 at 5, merge done 12; writeback at 13 (4 bytes
    #          against K(12) + 1 = 7; K 7 → 3); phase 0 done from 14; T[0] at 14 against
    #          K(13) + 1 - 4 = 4: granted (K 4 → 0), written at 15; issue e1 at 16, merge
    #          done 23; writeback at 24 → cycles = 25
    #   L = 3: W[0] written at 7 → issue e0 at 8, merge done 15; writeback at 16 (K 8 →
    #          4); phase 0 done from 17; T[0] at 17 against K(16) + 1 - 4 = 5: granted,
    #          written at 21; issue e1 at 22, merge done 29; writeback at 30 → cycles = 31
    prog, res = _hand_case([[1]], [[3]], [[5]], rows=1, latency=latency, bytes_per_cycle=1,
                           credit_lag=1)
    assert res.cycles == {0: 25, 3: 31}[latency]
    assert res.stats["stall_row_cycles"]["stream"] == 0
    # load stalls: c = 0..4 and 14, 15 (L = 0), c = 0..7 and 17..21 (L = 3); barrier 8
    assert res.stats["stall_row_cycles"]["load"] == {0: 7, 3: 13}[latency]
    assert res.stats["stall_row_cycles"]["barrier"] == 8


# ------------------------------------------------------------ statistics

def _element_counts(prog: Program):
    """Issued elements per tile per lane, from the Program alone."""
    a = prog.arrays
    rp = a["row_stream_ptr"]
    g = a["t_stream"]
    return (rp[:, g + 1] - rp[:, g]).T          # (tiles, rows)


@given(case=cases("exact", max_dim=30))
def test_stats_are_consistent(case):
    problem, cfg, order, kw, ctx = case
    prog, res = sim_run(problem, cfg, order, **kw)
    st = res.stats
    R, C = cfg.rows, cfg.cols
    assert st["cycles"] == res.cycles
    assert st["utilization"] == pytest.approx(st["useful_macs"] / (R * C * res.cycles)), ctx
    # every row-cycle is either an issue or one stall cause
    stall_rows = np.array([st["stall_row_cycles_per_row"][k] for k in STALL_CAUSES])
    busy = np.array(st["busy_cycles_per_row"])
    np.testing.assert_array_equal(busy + stall_rows.sum(axis=0), np.full(R, res.cycles),
                                  err_msg=ctx)
    assert sum(st["stall_row_cycles"].values()) + busy.sum() == R * res.cycles
    # MAC counts follow from the Program: each element costs t_ncols useful MACs, C slots
    per_tile = _element_counts(prog)
    assert st["elements"] == int(per_tile.sum()) == int(busy.sum())
    assert st["useful_macs"] == int((per_tile.sum(axis=1) * prog.arrays["t_ncols"]).sum())
    assert st["pe_slot_cycles"] == C * st["elements"]
    assert st["useful_macs"] == sum(p["useful_macs"] for p in st["phases"])
    if st["pe_slot_cycles"]:
        assert 0 < st["mapping_efficiency"] <= 1
        assert st["mapping_efficiency"] == pytest.approx(st["useful_macs"] / st["pe_slot_cycles"])
    assert 0 <= st["utilization"] <= st["mapping_efficiency"] + 1e-12
    assert 0 < st["balance"] <= 1
    # off-chip: Y is written once per element, A streamed once per column tile
    y_bytes = (problem.contract.out_format.bits + 7) // 8
    assert st["offchip_write_bytes"]["Y"] == problem.o * problem.h * y_bytes, ctx
    ob = (cfg.operand_bits + 7) // 8
    nnz = problem.parts[0].a.nnz
    d_cols = problem.h if order == "a(xw)" else problem.c
    assert st["offchip_read_bytes"]["A0"] == nnz * (ob + cfg.stream_index_bytes) * \
        math.ceil(d_cols / C), ctx
    assert st["offchip_bytes"] == sum(st["offchip_read_bytes"].values()) + \
        sum(st["offchip_write_bytes"].values())


def test_offchip_bytes_of_a_hand_count():
    # A with 37 nonzeros, h = 10 output columns on a 4-column array: 3 column tiles;
    # lmem_depth 16 → 4 address bits → 1 index byte: 37 · (1 + 1) · 3 = 222 bytes.
    rng = np.random.default_rng(3)
    a = np.zeros((12, 9), np.int64)
    a.flat[rng.choice(a.size, 37, replace=False)] = rng.integers(1, 128, 37)
    problem = make_problem(a, rng.integers(-128, 128, (9, 5)), rng.integers(-128, 128, (5, 10)),
                           make_contract("exact"), "bytes")
    cfg = HardwareConfig(rows=3, cols=4, lmem_depth=16)
    _, res = sim_run(problem, cfg, "a(xw)")
    assert cfg.stream_index_bytes == 1
    assert res.stats["offchip_read_bytes"]["A0"] == 222
    assert res.stats["offchip_write_bytes"]["Y"] == 12 * 10 * 4


def test_stalls_are_deterministic_in_the_seed():
    problem = random_problem(4, 20, 15, 9, 7, dens_a=0.3)
    cfg = HardwareConfig(rows=2, cols=3, lmem_depth=8, dram_latency_cycles=4)
    prog = compile_problem(problem, cfg, "a(xw)")
    mem = build_memory(problem, prog)
    base = simulate(prog, mem)
    runs = [simulate(prog, mem, stall_permille=300, stall_seed=s) for s in (1, 1, 99)]
    assert runs[0].cycles == runs[1].cycles and runs[0].stats == runs[1].stats
    assert base.stats["memory_stall_cycles"] == 0
    for r in runs:
        assert r.stats["memory_stall_cycles"] > 0 and r.cycles >= base.cycles
        np.testing.assert_array_equal(r.memory[0], base.memory[0])


def test_simulate_does_not_modify_its_memory_argument():
    problem = random_problem(5, 6, 5, 4, 3)
    prog = compile_problem(problem, HardwareConfig(rows=2, cols=2), "a(xw)")
    mem = build_memory(problem, prog)
    before = [m.copy() for m in mem]
    simulate(prog, mem)
    for m, b in zip(mem, before):
        np.testing.assert_array_equal(m, b)


def test_simulate_rejects_bad_arguments():
    problem = random_problem(6, 6, 5, 4, 3)
    prog = compile_problem(problem, HardwareConfig(rows=2, cols=2), "a(xw)")
    mem = build_memory(problem, prog)
    with pytest.raises(ProgramError, match="memory has 4 tensors"):
        simulate(prog, mem[:4])
    bad = [m.copy() for m in mem]
    bad[1] = np.zeros((1, 1), np.int64)
    with pytest.raises(ProgramError, match=r"tensor W0: memory shape \(1, 1\)"):
        simulate(prog, bad)
    with pytest.raises(AxwError, match="stall_permille must be in 0..999, got 1000"):
        simulate(prog, mem, stall_permille=1000)
    with pytest.raises(AxwError, match="stall_seed must be in"):
        simulate(prog, mem, stall_seed=0)


def test_deadlock_is_detected():
    # Corrupt block 0 to end at the very last tile: its writeback then waits for every
    # lane to pass phase 1's tile, which waits for phase 0's writeback of T.  validate()
    # does not look at b_last_tile, so only the simulator can notice.
    problem = make_problem(np.array([[1, 2], [3, 4]]), np.array([[1], [2]]), np.array([[1]]),
                           make_contract("exact"), "deadlock", x_sparse=False)
    prog = compile_problem(problem, HardwareConfig(rows=1, cols=1), "a(xw)")
    arrays = {k: v.copy() for k, v in prog.arrays.items()}
    arrays["b_last_tile"][0] = prog.n_tiles - 1
    bad = Program(prog.config, prog.tensors, arrays, prog.meta).validate()
    with pytest.raises(ProgramError, match="deadlocks"):
        simulate(bad, build_memory(problem, bad))


def test_symmetric_rows_get_the_same_stall_causes():
    # Two identical rows on a 2×1 array (test_cycles_two_rows_on_2x1_array): they issue
    # and finish in the same cycles, so their stall breakdowns must be equal.  (Regression:
    # the row evaluated first used to count its last cycle as `imbalance`, the other as
    # `drain`, an order the RTL's parallel rows cannot reproduce.)
    _, res = _hand_case([[2, 0], [0, 3]], [[3], [4]], [[5]], rows=2, latency=0,
                        d_mode="broadcast")
    per_row = res.stats["stall_row_cycles_per_row"]
    assert {k: v[0] for k, v in per_row.items()} == {k: v[1] for k, v in per_row.items()}


def test_warm_up_rebuilds_an_unreadable_kept_program():
    from sim import engine
    folder = Path(engine.__file__).resolve().parent / "__pycache__" / "axw-warm-up"
    engine.warm_up()
    assert (folder / "program.json").exists()
    (folder / "program.json").write_text("{not json")
    engine.warm_up()                       # falls back to compiling it, and keeps it again
    assert Program.load(folder).n_tiles >= 1
