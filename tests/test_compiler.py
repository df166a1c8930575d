"""Tests of accel.compiler: recorded decisions, order choice, D modes, MAC accounting and
regressions of crashes found by these tests."""

import numpy as np
import pytest
import scipy.sparse as sp

from accel import workloads as wl
from accel.compiler import build_memory, compile_problem, useful_macs_by_order
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.errors import AxwError
from accel.problem import make_problem
from accel.reference import ORDERS, reference
from sim.engine import simulate
from contract_suite import assert_ints_equal, model_y, random_problem

K = make_contract("exact")


def _sim_y(problem, prog):
    res = simulate(prog, build_memory(problem, prog))
    return res.memory[prog.tensor_id("Y")], res


def test_decisions_are_recorded():
    problem = random_problem(1, 30, 40, 20, 5, dens_a=0.1)
    prog = compile_problem(problem, HardwareConfig(rows=4, cols=4), "auto")
    m = prog.meta
    assert m["order"] in ORDERS and set(m["order_estimates"]) == set(ORDERS)
    assert m["useful_macs_by_order"] == useful_macs_by_order(problem)
    assert m["problem"] == problem.summary()
    assert len(m["phases"]) == prog.n_phases == len(m["decisions"]) == 2
    for d in m["decisions"]:
        assert d["d_mode"] in ("broadcast", "gathered")
        assert d["row_blocks"] >= 1 and d["col_tiles"] >= 1 and d["estimated_cycles"] > 0
    assert m["decisions"][0]["col_tiles"] == (5 if m["order"] == "(ax)w" else 2)  # ceil(c|h / 4)


def test_compile_is_deterministic():
    problem = random_problem(2, 25, 20, 9, 7, dens_a=0.3)
    cfg = HardwareConfig(rows=3, cols=2, lmem_depth=8)
    p1, p2 = compile_problem(problem, cfg), compile_problem(problem, cfg)
    assert sorted(p1.arrays) == sorted(p2.arrays)
    for k in p1.arrays:
        np.testing.assert_array_equal(p1.arrays[k], p2.arrays[k], err_msg=k)


@pytest.mark.parametrize("o,n,c,h,want", [
    (200, 200, 64, 4, "a(xw)"),    # GCN layer 1: few outputs per node, wide features
    (100, 100, 8, 64, "(ax)w"),    # a last layer with many classes: h > c
])
def test_auto_order_picks_the_cheaper(o, n, c, h, want):
    rng = np.random.default_rng(o + h)
    a = sp.random(o, n, density=10 / n, random_state=3,
                  data_rvs=lambda k: rng.integers(1, 128, k))
    problem = make_problem(a, rng.integers(-128, 128, (n, c)), rng.integers(-128, 128, (c, h)), K)
    cfg = HardwareConfig(rows=4, cols=4, dram_bytes_per_cycle=256, dram_latency_cycles=10)
    auto = compile_problem(problem, cfg, "auto")
    est = auto.meta["order_estimates"]
    assert auto.meta["order"] == min(est, key=est.get) == want
    cycles = {}
    for order in ORDERS:
        prog = compile_problem(problem, cfg, order)
        y, res = _sim_y(problem, prog)
        assert_ints_equal(y, reference(problem), f"order {order}")
        cycles[order] = res.cycles
    other = [x for x in ORDERS if x != want][0]
    assert cycles[want] < cycles[other], cycles


@pytest.mark.parametrize("order", ORDERS)
def test_gathered_and_broadcast_are_both_bit_exact(order):
    problem = random_problem(3, 40, 60, 12, 9, dens_a=0.08)
    cfg = HardwareConfig(rows=4, cols=3, lmem_depth=10, out_bank_depth=16)
    ys = {}
    for mode in ("broadcast", "gathered"):
        prog = compile_problem(problem, cfg, order, d_mode=mode)
        assert {d["d_mode"] for d in prog.meta["decisions"]} == {mode}
        bc = prog.arrays["t_broadcast"].astype(bool)
        assert bc.all() if mode == "broadcast" else not bc.any()
        ys[mode], _ = _sim_y(problem, prog)
        assert_ints_equal(ys[mode], model_y(problem, order), f"{mode} {order}")
    assert_ints_equal(ys["broadcast"], ys["gathered"], "broadcast vs gathered")


@pytest.mark.parametrize("x_sparse", [False, True])
@pytest.mark.parametrize("order", ["auto", "a(xw)", "(ax)w"])
def test_sim_useful_macs_equal_the_compilers_count(order, x_sparse):
    problem = random_problem(4, 33, 27, 14, 6, dens_a=0.2, dens_x=0.2 if x_sparse else 0.6,
                             x_sparse=x_sparse)
    assert problem.x_is_sparse == x_sparse
    prog = compile_problem(problem, HardwareConfig(rows=3, cols=4, lmem_depth=12), order)
    _, res = _sim_y(problem, prog)
    assert res.stats["useful_macs"] == prog.meta["useful_macs_by_order"][prog.meta["order"]]


def test_useful_macs_by_order_hand_count():
    # A: 3 nonzeros in 2 rows (o = 3, row 2 empty); X dense 4 × 2; W 2 × 5.
    # a(xw): X·W streams all n·c = 8 elements × h = 5 → 40, A·T: 3 × 5 = 15 → 55.
    # (ax)w: A·X: 3 × c = 6; U has 2 nonempty rows × c = 4 structural nonzeros × h → 20 → 26.
    a = np.array([[1, 0, 2, 0], [0, 0, 0, 3], [0, 0, 0, 0]])
    problem = make_problem(a, np.ones((4, 2)), np.ones((2, 5)), K, x_sparse=False)
    assert useful_macs_by_order(problem) == {"a(xw)": 55, "(ax)w": 26}
    # sparse X with 3 nonzeros: a(xw) 3·5 + 15 = 30; (ax)w: pattern of A·X
    x = np.zeros((4, 2))
    x[0, 0] = x[2, 1] = x[1, 1] = 1     # rows 0, 2 feed row 0 of A; row 3 of X is empty
    problem = make_problem(a, sp.csr_matrix(x), np.ones((2, 5)), K)
    assert useful_macs_by_order(problem) == {"a(xw)": 30, "(ax)w": 6 + 2 * 5}


def test_conv_is_lowered_to_a_gather_and_counts_taps_only():
    rng = np.random.default_rng(5)
    img, ker = rng.integers(-128, 128, (5, 4, 3)), rng.integers(-128, 128, (3, 3, 3, 2))
    problem = wl.conv2d(img, ker, padding=1)
    for order in ("auto", "a(xw)"):
        prog = compile_problem(problem, HardwareConfig(rows=4, cols=2), order)
        assert prog.meta["order"] == "(ax)w" and prog.n_phases == 1
        assert "gather" in prog.meta["phases"][0]
        y, res = _sim_y(problem, prog)
        assert_ints_equal(y, reference(problem), "conv")
        taps = problem.a.nnz          # one nonzero of A per (output pixel, valid tap)
        assert res.stats["useful_macs"] == taps * 3 * 2 == prog.meta["useful_macs_by_order"]["(ax)w"]


def test_compile_errors():
    problem = random_problem(6, 5, 4, 3, 2)
    with pytest.raises(AxwError, match="unknown order 'xaw'; expected auto, a\\(xw\\) or \\(ax\\)w"):
        compile_problem(problem, HardwareConfig(), "xaw")
    with pytest.raises(AxwError, match="unknown D mode 'scatter'"):
        compile_problem(problem, HardwareConfig(), d_mode="scatter")
    with pytest.raises(AxwError, match=r"contract exact \(s8/s32\) does not match the hardware "
                                       r"\(s8/s24\)"):
        compile_problem(problem, HardwareConfig(acc_bits=24))


def test_split_rows_are_merged_in_lockstep():
    # one row of 120 nonzeros among rows of 1 on a 4-row array: it is split into pieces on
    # distinct PE rows, merged by one writeback step with wb_merge set on those lanes
    a = np.zeros((9, 120), np.int64)
    a[4] = 1
    a[np.arange(9) != 4, 0] = 1
    rng = np.random.default_rng(7)
    problem = make_problem(a, rng.integers(-128, 128, (120, 3)), rng.integers(-128, 128, (3, 2)), K)
    prog = compile_problem(problem, HardwareConfig(rows=4, cols=2, lmem_depth=128), "(ax)w")
    merge = prog.arrays["wb_merge"].astype(bool)
    steps = np.flatnonzero(merge.any(axis=1))
    assert steps.size >= 1 and (prog.arrays["wb_mrow"][steps] == 4).all()
    assert merge[steps].sum(axis=1).max() > 1       # pieces on several lanes
    y, _ = _sim_y(problem, prog)
    assert_ints_equal(y, reference(problem), "split row")


# ------------------------------------------------------------ regressions (once bugs)

def test_few_rows_per_block_compiles():
    # Regression: _schedule_phase crashed with "TypeError: cannot unpack non-iterable
    # NoneType object" when every candidate block count was skipped.
    # 3 output rows, 2 PE rows, 1 slot per bank half: nb_min = ceil(3 / (2·1)) = 2 blocks,
    # and 3 / 2 rows per block < 4·2, so the candidate loop skips every block count
    a = np.array([[1, 1, 1], [1, 0, 0], [1, 0, 0]])
    problem = make_problem(a, np.ones((3, 1)), np.ones((1, 1)), K, x_sparse=False)
    prog = compile_problem(problem, HardwareConfig(rows=2, cols=1, out_bank_depth=1), "(ax)w")
    assert_ints_equal(_sim_y(problem, prog)[0], reference(problem), "few rows")


def test_one_row_per_block_fits_any_bank():
    # rows with 3, 1, 1 nonzeros, 1 PE row, 1 slot: three one-row blocks fit.  Regression:
    # the quantile split for nb = 3 was [row 0], [rows 1, 2], nb then jumped to 4 > o and
    # the compiler raised ProgramError "cannot fit output rows in banks of 1 slots".
    a = np.array([[1, 1, 1], [1, 0, 0], [1, 0, 0]])
    problem = make_problem(a, np.ones((3, 1)), np.ones((1, 1)), K, x_sparse=False)
    prog = compile_problem(problem, HardwareConfig(rows=1, cols=1, out_bank_depth=1), "(ax)w",
                           row_blocks=3)
    assert_ints_equal(_sim_y(problem, prog)[0], reference(problem), "one row per block")


def test_forced_axw_on_a_conv_under_int8_is_refused():
    """A conv gather always runs as (ax)w; forcing a(xw) would silently change an int8
    result, so the compiler refuses; under 'exact' both orders agree and it runs."""
    rng = np.random.default_rng(3)
    img = rng.integers(-128, 128, (5, 5, 2))
    ker = rng.integers(-128, 128, (3, 3, 2, 2))
    p8 = wl.conv2d(img, ker, contract=make_contract("int8", 8, 32, 2, 8))
    with pytest.raises(AxwError, match=r"a\(xw\) changes its result under contract 'int8'"):
        compile_problem(p8, HardwareConfig(rows=2, cols=2), "a(xw)")
    pe = wl.conv2d(img, ker)
    assert compile_problem(pe, HardwareConfig(rows=2, cols=2), "a(xw)").meta["order"] == "(ax)w"


def test_a_position_fed_by_256_products_is_kept():
    # regression: the structural product A·X counted contributions in int8, so a position
    # fed by exactly 256 products wrapped to 0 and was dropped from U under (ax)w
    n = 256
    a = sp.csr_matrix(np.ones((1, n), np.int64))
    x = sp.csr_matrix(np.ones((n, 1), np.int64))
    problem = make_problem(a, x, np.ones((1, 2), np.int64), K)
    assert useful_macs_by_order(problem)["(ax)w"] == n + 2
    prog = compile_problem(problem, HardwareConfig(rows=2, cols=2), "(ax)w")
    y, _ = _sim_y(problem, prog)
    assert_ints_equal(y, reference(problem, "(ax)w"), "simulator vs reference")
    assert_ints_equal(y, np.full((1, 2), n), "simulator vs hand count")


@pytest.mark.parametrize("vectors", [1, 2, 3])
def test_capped_writeback_steps_reach_their_lower_bound(vectors):
    """Without split rows, a block's steps are as few as the cap allows: the longest
    lane's entries, or all entries over the cap, whichever is more; every entry is
    written once."""
    problem = random_problem(5, 37, 30, 8, 4, dens_a=0.2)
    base = compile_problem(problem, HardwareConfig(rows=4, cols=2), "a(xw)")
    prog = compile_problem(problem, HardwareConfig(rows=4, cols=2, wb_vectors=vectors), "a(xw)")
    a0, a = base.arrays, prog.arrays
    assert not a["wb_merge"].any(), "a split row: the bound below does not hold"
    for b in range(prog.n_blocks):
        sl0 = slice(a0["wb_ptr"][b], a0["wb_ptr"][b + 1])
        sl = slice(a["wb_ptr"][b], a["wb_ptr"][b + 1])
        used0 = a0["wb_slot"][sl0] != -1
        used = a["wb_slot"][sl] != -1
        assert used.sum(axis=1).max() <= vectors
        bound = max(int(used0.sum(axis=0).max()), -(-int(used0.sum()) // vectors))
        assert used.shape[0] == bound
        for i in range(4):                  # the same (slot, row) pairs per lane
            got = sorted(zip(a["wb_slot"][sl][used[:, i], i], a["wb_row"][sl][used[:, i], i]))
            want = sorted(zip(a0["wb_slot"][sl0][used0[:, i], i], a0["wb_row"][sl0][used0[:, i], i]))
            assert got == want
    assert_ints_equal(_sim_y(problem, prog)[0], reference(problem, "a(xw)"), "capped wb")
