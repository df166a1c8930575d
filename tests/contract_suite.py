"""The contract suite: one set of bit-exactness tests that every level of AXW inherits.

A level subclasses :class:`ContractSuite` and implements one hook,
``run(problem, config, order, **kw) -> (y, cycles)``: ``y`` is the o × h integer output,
``cycles`` the cycle count when the level knows it (None otherwise).  ``kw`` may hold
``stall_permille`` (memory stalls, for levels with time), ``d_mode`` and ``row_blocks``
(forwarded to :func:`accel.compiler.compile_problem` by levels that compile); a level
ignores what does not apply to it.  Levels: reference (tests/test_reference.py),
functional interpreter of the Program (tests/test_program.py), simulator
(tests/test_sim.py), and later the RTL.

Every expectation comes from models written here and in tests/naive.py, independent of
accel.reference: dense object-dtype matrices of Python ints, reduced with an explicit
``% 2**acc_bits``.  Outputs are compared with ``assert_array_equal`` and a message that
names the seed, the shapes and the first mismatching coordinates.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, note
from hypothesis import strategies as st

import naive
from accel import workloads as wl
from accel.compiler import compile_problem
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.problem import make_problem
from accel.reference import ORDERS, reference

__all__ = ["ContractSuite", "model_y", "wrap_int", "requant_int", "assert_ints_equal",
           "random_problem", "cases", "xfail_inherited"]


# ---------------------------------------------------------------- the suite's own model

def wrap_int(v: int, bits: int) -> int:
    """Python int ``v`` reduced to ``bits``-bit two's complement."""
    m = 1 << bits
    v %= m
    return v - m if v >= m >> 1 else v


def requant_int(v: int, shift: int, bits: int) -> int:
    """Round half up (toward +inf) by ``shift``, then saturate to signed ``bits``."""
    if shift:
        v = (v + (1 << (shift - 1))) // (1 << shift)
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def _obj(m) -> np.ndarray:
    d = m.toarray() if sp.issparse(m) else np.asarray(m)
    return np.array([[int(v) for v in row] for row in d], dtype=object).reshape(d.shape)


def _wrap_all(m: np.ndarray, bits: int) -> np.ndarray:
    return np.vectorize(lambda v: wrap_int(int(v), bits), otypes=[object])(m) if m.size else m


def _rq_all(m: np.ndarray, rq) -> np.ndarray:
    if rq is None or not m.size:
        return m
    return np.vectorize(lambda v: requant_int(int(v), rq.shift, rq.out.bits), otypes=[object])(m)


def model_y(problem, order: str, *, stages: dict | None = None) -> np.ndarray:
    """Y of ``problem`` in ``order`` with Python ints: exact products and sums, one modulo
    at the end of each product (equal to wrapping every add), the contract's requantization
    of the intermediate and of the output.  ``stages``, if given, receives per part the
    intermediate exact (``mid_exact``), wrapped (``mid_acc``) and requantized (``mid``),
    and the exact output sums (``y_exact``)."""
    k = problem.contract
    acc = k.acc.bits
    y = np.zeros((problem.o, problem.h), dtype=np.int64)
    for pi, part in enumerate(problem.parts):
        a, x, w = _obj(part.a), _obj(problem.x_part(part)), _obj(problem.w_part(part))
        mid_exact = x.dot(w) if order == "a(xw)" else a.dot(x)
        mid_acc = _wrap_all(mid_exact, acc)
        mid = _rq_all(mid_acc, k.mid)
        y_exact = a.dot(mid) if order == "a(xw)" else mid.dot(w)
        yp = _rq_all(_wrap_all(y_exact, acc), k.out)
        y[:, part.y_cols] = np.asarray(yp, dtype=np.int64).reshape(problem.o, -1)
        if stages is not None:
            stages[pi] = {"mid_exact": mid_exact, "mid_acc": mid_acc, "mid": mid,
                          "y_exact": y_exact}
    return y


def xfail_inherited(test, reason: str):
    """``test`` of the suite, marked as a strict expected failure (a wrong result) in one
    level's subclass only (a mark on the inherited function would reach every level)."""
    @functools.wraps(test)
    def wrapper(self, *args, **kwargs):
        return test(self, *args, **kwargs)
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)(wrapper)


def assert_ints_equal(got, want, ctx: str) -> None:
    """assert_array_equal with a message naming ``ctx``, the shapes and the first mismatch."""
    got, want = np.asarray(got), np.asarray(want)
    msg = f"{ctx}; got shape {got.shape}, want {want.shape}"
    if got.shape == want.shape:
        bad = np.argwhere(got != want)
        if bad.size:
            first = tuple(int(v) for v in bad[0])
            msg += (f"; {len(bad)} mismatching elements, first at {first}: "
                    f"got {got[first]}, want {want[first]}")
    np.testing.assert_array_equal(got, want, err_msg=msg)


# ---------------------------------------------------------------- random problems

VALUE_MODES = ("uniform", "extreme", "small", "min")


def _values(rng, size, bits: int, mode: str) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if mode == "uniform":
        return rng.integers(lo, hi + 1, size=size)
    if mode == "extreme":
        return rng.choice(np.array([lo, hi]), size=size)
    if mode == "min":
        return np.full(size, lo, dtype=np.int64)
    return rng.integers(max(lo, -2), min(hi, 2) + 1, size=size)


def random_problem(seed: int, o: int, n: int, c: int, h: int, *, bits: int = 8,
                   acc_bits: int = 32, dens_a: float = 0.3, dens_x: float = 1.0,
                   x_sparse: bool = False, mode: str = "uniform", contract=None):
    """A seeded random Problem; A and X have about the given densities of nonzeros."""
    rng = np.random.default_rng(seed)
    k = contract or make_contract("exact", bits, acc_bits)
    a = np.where(rng.random((o, n)) < dens_a, _values(rng, (o, n), bits, mode), 0)
    x = np.where(rng.random((n, c)) < dens_x, _values(rng, (n, c), bits, mode), 0)
    w = _values(rng, (c, h), bits, mode)
    return make_problem(sp.csr_matrix(a), x, w, k, f"random-{seed}", x_sparse=x_sparse)


_DENSITY = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@st.composite
def cases(draw, contract_name: str = "exact", max_dim: int = 40):
    """(problem, config, order, kw, ctx): shapes, densities, widths, array and memory
    sizes small enough to force K tiles and several row blocks, both orders and D modes."""
    bits = draw(st.integers(2, 12), label="operand_bits")
    acc_bits = draw(st.integers(max(8, 2 * bits), 32), label="acc_bits")
    o, n, c, h = (draw(st.integers(1, max_dim), label=s) for s in "onch")
    dens_a = draw(_DENSITY, label="density_a")
    x_sparse = draw(st.booleans(), label="x_sparse")
    dens_x = draw(_DENSITY, label="density_x") if x_sparse else draw(
        st.sampled_from([1.0, 0.7]), label="density_x")
    mode = draw(st.sampled_from(VALUE_MODES), label="values")
    seed = draw(st.integers(0, 2 ** 32 - 1), label="seed")
    if contract_name == "int8":
        k = make_contract("int8", bits, acc_bits, draw(st.integers(0, bits + 4), label="mid_shift"),
                          draw(st.integers(0, bits + 4), label="out_shift"))
    else:
        k = make_contract(contract_name, bits, acc_bits)
    problem = random_problem(seed, o, n, c, h, bits=bits, acc_bits=acc_bits, dens_a=dens_a,
                             dens_x=dens_x, x_sparse=x_sparse, mode=mode, contract=k)
    cfg = HardwareConfig(
        rows=draw(st.integers(1, 9), label="rows"), cols=draw(st.integers(1, 9), label="cols"),
        operand_bits=bits, acc_bits=acc_bits,
        lmem_depth=draw(st.integers(1, 48), label="lmem_depth"),
        out_bank_depth=draw(st.integers(1, 48), label="out_bank_depth"),
        stream_fifo_depth=draw(st.integers(2, 8), label="stream_fifo_depth"),
        load_fifo_depth=draw(st.integers(2, 8), label="load_fifo_depth"),
        dram_bytes_per_cycle=draw(st.sampled_from([1, 3, 16, 256]), label="bytes_per_cycle"),
        dram_latency_cycles=draw(st.sampled_from([0, 1, 7, 40]), label="latency"),
        wb_vectors=draw(st.sampled_from([0, 0, 1, 2, 3]), label="wb_vectors"))
    order = draw(st.sampled_from(ORDERS), label="order")
    kw = {"d_mode": draw(st.sampled_from([None, "broadcast", "gathered"]), label="d_mode"),
          "row_blocks": draw(st.sampled_from([None, None, 2, 3]), label="row_blocks")}
    ctx = (f"seed={seed} o,n,c,h={o},{n},{c},{h} nnz_a={problem.parts[0].a.nnz} "
           f"x_sparse={x_sparse} values={mode} contract={k.to_json()} order={order} {kw} "
           f"config={cfg.to_dict()}")
    note(ctx)
    return problem, cfg, order, kw, ctx


# ---------------------------------------------------------------- the suite

def split_row_problem():
    """26 × 120 A with 3 nonzeros a row, rows 2, 7, ... empty and row 11 full (split over
    lanes and merged), exact contract: on 4 × 3 arrays writeback steps merge several
    lanes beside plain and zero rows, with no saturation to hide a wrong sum."""
    rng = np.random.default_rng(9)
    o, n = 26, 120
    a = np.zeros((o, n), np.int64)
    for r in range(o):
        if r % 5 != 2:                        # rows 2, 7, ... stay empty
            a[r, rng.choice(n, 3, replace=False)] = rng.integers(-128, 128, 3) | 1
    a[11, :] = rng.integers(-128, 128, n) | 1
    return make_problem(a, rng.integers(-128, 128, (n, 4)),
                        rng.integers(-128, 128, (4, 5)), make_contract("exact"), "wbv")


def _cfg(bits: int = 8, acc_bits: int = 32, **kw) -> HardwareConfig:
    base = dict(rows=3, cols=4, lmem_depth=16, out_bank_depth=16, stream_fifo_depth=4,
                load_fifo_depth=4, dram_bytes_per_cycle=16, dram_latency_cycles=5)
    base.update(kw)
    return HardwareConfig(operand_bits=bits, acc_bits=acc_bits, **base)


class ContractSuite:
    """Base class of every level's contract tests (not collected: no ``Test`` prefix)."""

    def run(self, problem, config: HardwareConfig, order: str, **kw):
        """Compute Y of ``problem`` on ``config`` in ``order``; return ``(y, cycles)``."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------
    def check(self, problem, config, order, want, ctx: str, **kw):
        """Run the level, compare with ``want`` and with accel.reference; return cycles."""
        y, cycles = self.run(problem, config, order, **kw)
        assert_ints_equal(y, want, f"{type(self).__name__}: {ctx}")
        assert_ints_equal(y, reference(problem, order),
                          f"{type(self).__name__} vs accel.reference: {ctx}")
        if cycles is not None:
            assert isinstance(cycles, (int, np.integer)) and cycles > 0, f"{ctx}: cycles={cycles!r}"
        return cycles

    def check_model(self, problem, config, order, ctx: str, **kw):
        return self.check(problem, config, order, model_y(problem, order), ctx, **kw)

    # -- properties over random inputs ----------------------------------------------
    @given(case=cases("exact"))
    def test_random_problems_exact(self, case):
        problem, cfg, order, kw, ctx = case
        self.check_model(problem, cfg, order, ctx, **kw)

    @given(case=cases("int8", max_dim=24))
    def test_random_problems_int8(self, case):
        problem, cfg, order, kw, ctx = case
        self.check_model(problem, cfg, order, ctx, **kw)

    # -- wrapping and saturation ----------------------------------------------------
    @pytest.mark.parametrize("order", ORDERS)
    @pytest.mark.parametrize("bits,acc_bits,pattern", [
        (8, 32, "min"), (8, 32, "max"), (8, 32, "minmax"), (12, 32, "min"),
        (12, 24, "minmax"), (2, 8, "min"), (2, 8, "minmax"), (5, 10, "max")])
    def test_extreme_values_wrap(self, bits, acc_bits, pattern, order):
        """Every operand at the format's min and/or max: the sums cross 2**acc_bits
        several times (asserted), in the intermediate as well for narrow accumulators."""
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        o, n, c, h = 9, 70, 130, 6
        va, vx, vw = {"min": (lo, lo, lo), "max": (hi, hi, hi), "minmax": (lo, hi, lo)}[pattern]
        a, x, w = np.full((o, n), va), np.full((n, c), vx), np.full((c, h), vw)
        x[::7, ::3] = lo if vx == hi else hi      # a few of the other extreme
        problem = make_problem(a, x, w, make_contract("exact", bits, acc_bits), "extremes")
        # expectation in Python ints: the exact sum, then modulo 2**acc_bits
        exact = _obj(a).dot(_obj(x)).dot(_obj(w))
        want = np.array([[wrap_int(v, acc_bits) for v in row] for row in exact], np.int64)
        big = max(abs(v) for v in exact.ravel())
        assert big >= 3 * (1 << acc_bits), f"{pattern}: max |sum| {big} wraps too little"
        assert_ints_equal(model_y(problem, order), want, "suite model vs Python-int sum")
        self.check(problem, _cfg(bits, acc_bits), order, want,
                   f"extremes bits={bits} acc={acc_bits} pattern={pattern} order={order}")

    @pytest.mark.parametrize("order", ORDERS)
    @pytest.mark.parametrize("mid_shift,out_shift", [(0, 0), (3, 5), (9, 1)])
    def test_int8_extremes_saturate(self, mid_shift, out_shift, order):
        rng = np.random.default_rng(mid_shift * 31 + out_shift)
        o, n, c, h = 11, 13, 7, 5
        a = rng.choice([-128, 127, 0], size=(o, n), p=[0.3, 0.3, 0.4])
        x = rng.choice([-128, 127], size=(n, c))
        w = rng.choice([-128, 127], size=(c, h))
        k = make_contract("int8", 8, 32, mid_shift, out_shift)
        problem = make_problem(a, x, w, k, "saturate")
        stages = {}
        want = model_y(problem, order, stages=stages)
        mid = stages[0]["mid_acc"]
        assert any(abs(int(v)) > (127 << mid_shift) for v in mid.ravel()), \
            "the intermediate never saturates"
        assert (np.abs(want) == 128).any() or (want == 127).any(), "the output never saturates"
        self.check(problem, _cfg(), order, want,
                   f"int8 saturate shifts=({mid_shift},{out_shift}) order={order}")

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_int8_orders_give_order_specific_answers(self, seed):
        problem = random_problem(seed, 17, 19, 13, 11, dens_a=0.4,
                                 contract=make_contract("int8", 8, 32, 6, 4))
        want = {o: model_y(problem, o) for o in ORDERS}
        assert not np.array_equal(want["a(xw)"], want["(ax)w"]), "orders agree: weak test"
        for order in ORDERS:
            self.check(problem, _cfg(rows=4, cols=3), order, want[order],
                       f"int8 seed={seed} order={order}")

    # -- structure of A ----------------------------------------------------------------
    @pytest.mark.parametrize("order", ORDERS)
    def test_empty_rows_and_columns(self, order):
        rng = np.random.default_rng(5)
        a = rng.integers(-128, 128, (23, 19))
        a[[0, 3, 4, 5, 11, 22], :] = 0
        a[:, [0, 7, 18]] = 0
        problem = make_problem(a, rng.integers(-128, 128, (19, 10)),
                               rng.integers(-128, 128, (10, 9)), make_contract("exact"), "empty")
        self.check_model(problem, _cfg(), order, f"empty rows/cols order={order}")

    @pytest.mark.parametrize("x_sparse", [False, True])
    @pytest.mark.parametrize("order", ORDERS)
    def test_all_zero_a(self, order, x_sparse):
        rng = np.random.default_rng(6)
        problem = make_problem(sp.csr_matrix((12, 8), dtype=np.int64),
                               rng.integers(-128, 128, (8, 5)), rng.integers(-128, 128, (5, 7)),
                               make_contract("exact"), "zero-a", x_sparse=x_sparse)
        y, _ = self.run(problem, _cfg(), order)
        assert_ints_equal(y, np.zeros((12, 7), np.int64), f"all-zero A order={order}")

    @pytest.mark.parametrize("order", ORDERS)
    def test_all_zero_sparse_x(self, order):
        rng = np.random.default_rng(16)
        problem = make_problem(rng.integers(-128, 128, (6, 8)), sp.csr_matrix((8, 5), dtype=np.int64),
                               rng.integers(-128, 128, (5, 7)), make_contract("exact"), "zero-x")
        y, _ = self.run(problem, _cfg(), order)
        assert_ints_equal(y, np.zeros((6, 7), np.int64), f"all-zero sparse X order={order}")

    @pytest.mark.parametrize("order", ORDERS)
    @pytest.mark.parametrize("where", [(0, 0), (6, 4), (3, 2)])
    def test_single_nonzero(self, where, order):
        a = np.zeros((7, 5), np.int64)
        a[where] = -128
        rng = np.random.default_rng(7)
        problem = make_problem(a, rng.integers(-128, 128, (5, 6)),
                               rng.integers(-128, 128, (6, 3)), make_contract("exact"), "single")
        self.check_model(problem, _cfg(rows=2, cols=2), order, f"single nonzero at {where}")

    @pytest.mark.parametrize("order", ORDERS)
    def test_long_row_is_split_across_pe_rows(self, order):
        rng = np.random.default_rng(8)
        o, n = 30, 200
        a = np.zeros((o, n), np.int64)
        for r in range(o):
            a[r, rng.choice(n, 2, replace=False)] = rng.integers(1, 128, 2)
        a[13, :] = rng.integers(-128, 128, n) | 1     # one row 100× longer than the rest
        problem = make_problem(a, rng.integers(-128, 128, (n, 5)),
                               rng.integers(-128, 128, (5, 6)), make_contract("exact"), "long")
        cfg = _cfg(rows=4, cols=3, lmem_depth=256)
        prog = compile_problem(problem, cfg, order)
        assert prog.arrays["wb_merge"].any(), "the long row was not split: weak test"
        self.check_model(problem, cfg, order, f"long row order={order}")

    @pytest.mark.parametrize("vectors", [1, 2])
    def test_writeback_steps_of_few_vectors(self, vectors):
        """``wb_vectors`` caps the output vectors of a writeback step: split rows (one
        merged vector from several lanes), zero rows and plain rows share the capped
        steps, so lanes' vectors reach the requantizers through the selection."""
        problem = split_row_problem()
        cfg = _cfg(rows=4, cols=3, lmem_depth=128, wb_vectors=vectors)
        prog = compile_problem(problem, cfg, "a(xw)")
        used = prog.arrays["wb_slot"] != -1
        assert prog.arrays["wb_merge"].any() and (prog.arrays["wb_slot"] == -2).any(), \
            "no split or zero row: weak test"
        assert used.sum(axis=1).max() > vectors, "no step merges more lanes than the cap"
        self.check_model(problem, cfg, "a(xw)", f"wb_vectors={vectors}")

    @pytest.mark.parametrize("order", ORDERS)
    @pytest.mark.parametrize("rows,cols", [(1, 1), (3, 5), (7, 2), (9, 9)])
    def test_sizes_not_multiples_of_the_array(self, rows, cols, order):
        problem = random_problem(rows * 10 + cols, 29, 23, 17, 13, dens_a=0.25)
        self.check_model(problem, _cfg(rows=rows, cols=cols), order,
                         f"29x23x17x13 on {rows}x{cols} order={order}")

    def test_a_request_that_does_not_fit_stops_the_later_ones(self):
        """Lanes loading column tiles of different widths (3, 3, 1 columns of W) ask for
        different byte counts in one cycle on a narrow memory: a request that does not
        fit stops every later one in the cycle's priority order, even smaller requests
        (docs/machine.md rule 0).  A simulator that let the smaller load through finishes
        this problem one cycle sooner (259 instead of 260), so the RTL levels, which
        compare cycles with the simulator, fail unless both implement the same rule."""
        problem = random_problem(74, 3, 12, 5, 7, dens_a=0.5)
        cfg = _cfg(rows=3, cols=3, dram_bytes_per_cycle=5, dram_latency_cycles=2,
                   stream_fifo_depth=4, load_fifo_depth=4)
        self.check_model(problem, cfg, "a(xw)", "loads of 3 and 1 columns, B=5",
                         d_mode="gathered")

    def test_a_refused_request_stops_the_other_classes(self):
        """One-column outputs of one byte (an int8 contract) on a 3-byte memory: a
        writeback step of one vector needs 1 byte, a load of W 1 byte and a stream element
        3, so the small requests would often fit behind a refused larger one.  The
        priority order is stream lanes, load lanes, writeback, and a refused request
        stops every later one of any class (docs/machine.md rule 0): 81 cycles.  A
        simulator whose loads ignored a refused stream request takes 80, one whose
        writeback ignored refused requests before it 83."""
        k = make_contract("int8", 8, 32, 4, 4)
        problem = random_problem(170, 4, 6, 3, 2, dens_a=0.5, contract=k)
        cfg = _cfg(rows=2, cols=1, dram_bytes_per_cycle=3, dram_latency_cycles=1,
                   stream_fifo_depth=2, load_fifo_depth=2)
        self.check_model(problem, cfg, "(ax)w", "1-byte writeback and loads, B=3")

    @pytest.mark.parametrize("order", ORDERS)
    @pytest.mark.parametrize("d_mode", ["broadcast", "gathered"])
    def test_k_tiles_and_row_blocks(self, d_mode, order):
        problem = random_problem(9, 40, 37, 31, 10, dens_a=0.3)
        cfg = _cfg(rows=2, cols=3, lmem_depth=5, out_bank_depth=5)
        self.check_model(problem, cfg, order, f"tiny memories {d_mode} order={order}",
                         d_mode=d_mode)
        self.check_model(problem, cfg, order, f"row_blocks=4 {d_mode} order={order}",
                         d_mode=d_mode, row_blocks=4)

    @pytest.mark.parametrize("order", ORDERS)
    def test_x_dense_and_sparse_agree(self, order):
        rng = np.random.default_rng(10)
        a = sp.random(21, 18, 0.3, random_state=1, data_rvs=lambda k: rng.integers(-128, 128, k))
        x = np.where(rng.random((18, 14)) < 0.15, rng.integers(-128, 128, (18, 14)), 0)
        w = rng.integers(-128, 128, (14, 6))
        k = make_contract("exact")
        ys = []
        for xs in (False, True):
            problem = make_problem(a, x, w, k, "x-storage", x_sparse=xs)
            ys.append(self.run(problem, _cfg(), order)[0])
            self.check_model(problem, _cfg(), order, f"x_sparse={xs} order={order}")
        assert_ints_equal(ys[0], ys[1], "dense vs sparse X storage")

    # -- workloads -----------------------------------------------------------------------
    @pytest.mark.parametrize("order", ORDERS)
    def test_per_kernel(self, order):
        rng = np.random.default_rng(11)
        n, c, h, o = 16, 9, 7, 12
        shapes = [sp.random(o, n, 0.3, random_state=s, data_rvs=lambda k: rng.integers(-128, 128, k))
                  for s in range(3)]
        a_list = [shapes[i % 3] for i in range(h)]          # three distinct A, shared
        x = rng.integers(-128, 128, (n, c))
        w = rng.integers(-128, 128, (c, h))
        problem = wl.per_kernel(a_list, x, w)
        assert len(problem.parts) == 3
        xo, wo = _obj(x), _obj(w)
        want = np.zeros((o, h), np.int64)
        for i in range(h):
            col = _obj(a_list[i]).dot(xo).dot(wo[:, i:i + 1])
            want[:, i] = [wrap_int(int(v), 32) for v in col.ravel()]
        self.check(problem, _cfg(), order, want, f"per-kernel order={order}")

    @pytest.mark.parametrize("kw", [
        dict(stride=1, padding=0), dict(stride=2, padding=1), dict(stride=1, padding=2, dilation=2),
        dict(stride=(2, 1), padding=(0, 1), groups=2)], ids=str)
    def test_conv2d(self, kw):
        rng = np.random.default_rng(12)
        groups = kw.get("groups", 1)
        img = rng.integers(-128, 128, (6, 7, 4))
        ker = rng.integers(-128, 128, (3, 2, 4 // groups, 6))
        self._check_conv(wl.conv2d, naive.conv2d, img, ker, kw)

    def test_depthwise_conv2d(self):
        rng = np.random.default_rng(13)
        img = rng.choice([-128, 127], (5, 5, 3))
        ker = rng.choice([-128, 127], (3, 3, 1, 3))
        self._check_conv(wl.conv2d, naive.conv2d, img, ker, dict(padding=1, groups=3))

    @pytest.mark.parametrize("kw", [dict(stride=2), dict(stride=2, padding=1, dilation=1),
                                    dict(stride=1, padding=1, groups=2)], ids=str)
    def test_conv_transpose2d(self, kw):
        rng = np.random.default_rng(14)
        img = rng.integers(-128, 128, (4, 3, 4))
        ker = rng.integers(-128, 128, (3, 3, 4, 5))
        self._check_conv(wl.conv_transpose2d, naive.conv_transpose2d, img, ker, kw)

    def _check_conv_int8(self, mid_shift):
        # U = A·X is the gathered patch matrix; the int8 contract requantizes it (round
        # half up by mid_shift) before ·W, whatever way a level computes the gather.
        rng = np.random.default_rng(17)
        k = make_contract("int8", 8, 32, mid_shift, 6)
        problem = wl.conv2d(rng.integers(-128, 128, (4, 3, 2)),
                            rng.integers(-128, 128, (2, 2, 2, 3)), padding=1, contract=k)
        self.check(problem, _cfg(), "(ax)w", model_y(problem, "(ax)w"),
                   f"int8 conv2d mid_shift={mid_shift}")

    def test_conv2d_int8_without_mid_shift(self):
        self._check_conv_int8(0)

    def test_conv2d_int8_requantizes_the_intermediate(self):
        self._check_conv_int8(2)

    def _check_conv(self, build, direct, img, ker, kw):
        problem = build(img, ker, **kw)
        want = direct(img, ker, **kw)
        want = np.array([wrap_int(int(v), 32) for v in want.ravel()], np.int64).reshape(
            -1, want.shape[-1])
        for order in ORDERS:
            self.check(problem, _cfg(rows=4, cols=3, lmem_depth=8), order, want,
                       f"{build.__name__} {kw} image {img.shape} kernel {ker.shape} order={order}")

    # -- time ----------------------------------------------------------------------------
    @pytest.mark.parametrize("order", ORDERS)
    def test_memory_stalls_change_time_not_results(self, order):
        problem = random_problem(15, 26, 21, 12, 9, dens_a=0.3)
        cfg = _cfg(rows=3, cols=2, lmem_depth=8, out_bank_depth=9)
        want = model_y(problem, order)
        cycles = {pm: self.check(problem, cfg, order, want, f"stall_permille={pm} order={order}",
                                 stall_permille=pm, row_blocks=2) for pm in (0, 100, 500)}
        if cycles[0] is not None:
            assert cycles[100] >= cycles[0] and cycles[500] >= cycles[0], cycles
