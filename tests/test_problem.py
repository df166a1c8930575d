"""Tests of accel.problem: operand validation, dtypes, storage of X, parts and gathers."""

import numpy as np
import pytest
import scipy.sparse as sp

from accel.contract import make_contract
from accel.errors import ShapeError, ValueRangeError
from accel.problem import GatherSpec, make_problem
from accel.reference import reference

K = make_contract("exact")


def _ops(o=3, n=4, c=2, h=3):
    rng = np.random.default_rng(0)
    return (rng.integers(-5, 6, (o, n)), rng.integers(-5, 6, (n, c)), rng.integers(-5, 6, (c, h)))


@pytest.mark.parametrize("which,bad,match", [
    ("x", np.nan, r"X: value nan at position \(1, 0\) is not finite"),
    ("x", np.inf, r"X: value inf at position \(1, 0\) is not finite"),
    ("w", -np.inf, r"W: value -inf at position \(1, 0\) is not finite"),
    ("w", 128, r"W: value 128 at position \(1, 0\) is outside s8 \[-128, 127\]"),
    ("x", -129.0, r"X: value -129.0 at position \(1, 0\) is outside s8"),
    ("a", 200, r"A: value 200 at position \(1, 0\) is outside s8"),
])
def test_bad_values_name_operand_value_and_position(which, bad, match):
    a, x, w = (m.astype(type(bad)) for m in _ops())
    {"a": a, "x": x, "w": w}[which][1, 0] = bad
    with pytest.raises(ValueRangeError, match=match):
        make_problem(a, x, w, K)


@pytest.mark.parametrize("which,bad,match", [
    ("x", 3.5, r"X: value 3.5 at position \(1, 0\) is not an integer"),
    ("a", 0.25, r"A: value 0.25 at position \(1, 0\) is not an integer"),
])
def test_fractional_value_is_named_plainly(which, bad, match):
    # Regression: the value was formatted with !r, 'value np.float64(3.5)' under numpy 2
    a, x, w = (m.astype(np.float64) for m in _ops())
    {"a": a, "x": x, "w": w}[which][1, 0] = bad
    with pytest.raises(ValueRangeError, match=match):
        make_problem(a, x, w, K)


def test_sparse_a_error_names_the_dense_position():
    a = sp.csr_matrix(([1.0, 7.5], ([0, 2], [1, 3])), shape=(3, 4))
    _, x, w = _ops()
    with pytest.raises(ValueRangeError, match=r"A: value 7.5 at position \(2, 3\) is not an integer"):
        make_problem(a, x, w, K)


def test_narrow_contract_bounds():
    a, x, w = _ops()
    k4 = make_contract("exact", 4, 8)
    make_problem(np.clip(a, -8, 7), np.clip(x, -8, 7), np.clip(w, -8, 7), k4)
    with pytest.raises(ValueRangeError, match=r"outside s4 \[-8, 7\]"):
        make_problem(a * 0 + 8, x, w, k4)


def test_complex_and_non_numeric_rejected():
    a, x, w = _ops()
    with pytest.raises(ValueRangeError, match="X: complex values are not supported"):
        make_problem(a, x.astype(complex), w, K)
    with pytest.raises(ValueRangeError, match="W: dtype <U"):
        make_problem(a, x, w.astype(str), K)


@pytest.mark.parametrize("shapes,match", [
    (((3, 4), (4, 2), (3, 3)), r"X has 2 columns but W has 3 rows \(shapes \(4, 2\) and \(3, 3\)\)"),
    (((3, 5), (4, 2), (2, 3)), r"A has 5 columns but X has 4 rows"),
    (((3, 4), (4, 0), (0, 3)), "empty operand"),
    (((0, 4), (4, 2), (2, 3)), "A has no rows"),
])
def test_shape_errors(shapes, match):
    a, x, w = (np.ones(s, np.int64) for s in shapes)
    with pytest.raises(ShapeError, match=match):
        make_problem(a, x, w, K)


def test_dimension_errors():
    a, x, w = _ops()
    with pytest.raises(ShapeError, match=r"W: expected 2 dimensions, got shape \(2,\)"):
        make_problem(a, x, w[:, 0], K)
    with pytest.raises(ShapeError, match="A: expected 2 dimensions"):
        make_problem(np.ones((2, 2, 2)), x, w, K)


@pytest.mark.parametrize("dtype", [np.bool_, np.float32, np.float64, np.uint8, np.uint16,
                                   np.int8, np.int16, np.uint64])
def test_integer_valued_dtypes_are_accepted(dtype):
    rng = np.random.default_rng(1)
    hi = 1 if dtype is np.bool_ else 100
    lo = 0 if dtype in (np.bool_, np.uint8, np.uint16, np.uint64) else -100
    a, x, w = (rng.integers(lo, hi + 1, s) for s in ((5, 6), (6, 3), (3, 4)))
    want = make_problem(a, x, w, K)
    got = make_problem(a.astype(dtype), x.astype(dtype), w.astype(dtype), K)
    for g, m in ((got.x, want.x), (got.w, want.w), (got.a.toarray(), want.a.toarray())):
        g = g.toarray() if sp.issparse(g) else g
        m = m.toarray() if sp.issparse(m) else m
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, m)
    np.testing.assert_array_equal(reference(got), reference(want))


def test_uint_out_of_range_is_named():
    a, x, w = _ops()
    with pytest.raises(ValueRangeError, match=r"W: value 200 at position \(0, 0\) is outside s8"):
        make_problem(a, x, np.full((2, 3), 200, np.uint8), K)


def test_sparse_a_is_canonical():
    # duplicates summed, explicit zeros dropped, indices sorted, int64
    a = sp.coo_matrix(([2, 3, 0, 5], ([0, 0, 1, 2], [1, 1, 0, 3])), shape=(3, 4))
    _, x, w = _ops()
    p = make_problem(a, x, w, K)
    assert p.a.nnz == 2 and p.a.has_sorted_indices and p.a.dtype == np.int64
    np.testing.assert_array_equal(p.a.toarray(), a.toarray())
    with pytest.raises(ValueRangeError, match=r"A: value 130 at position \(0, 1\)"):
        make_problem(sp.coo_matrix(([65, 65], ([0, 0], [1, 1])), shape=(3, 4)), x, w, K)


def test_x_storage():
    a, x, w = _ops(n=8, c=4)
    dense = np.zeros((8, 4), np.int64)
    dense[0, 0] = dense[3, 2] = 1                  # 2 of 32 nonzero: stored sparse
    assert make_problem(a, dense, np.ones((4, 3)), K).x_is_sparse
    assert not make_problem(a, x, np.ones((4, 3)), K).x_is_sparse
    assert not make_problem(a, dense, np.ones((4, 3)), K, x_sparse=False).x_is_sparse
    p = make_problem(a, sp.csr_matrix(x), np.ones((4, 3)), K, x_sparse=False)
    assert isinstance(p.x, np.ndarray)
    np.testing.assert_array_equal(p.x, x)


def test_parts_must_cover_every_output_column_once():
    a, x, w = _ops(h=4)
    a2 = a[::-1]
    p = make_problem(None, x, w, K, parts=[(a, None, [0, 2]), (a2, [1], [1, 3])])
    assert len(p.parts) == 2 and (p.o, p.n, p.c, p.h) == (3, 4, 2, 4)
    with pytest.raises(ShapeError, match="has 2 parts; use .parts"):
        p.a
    want = np.zeros((3, 4), np.int64)
    want[:, [0, 2]] = a @ x @ w[:, [0, 2]]
    want[:, [1, 3]] = a2 @ x[:, [1]] @ w[[1]][:, [1, 3]]
    np.testing.assert_array_equal(reference(p), want)
    with pytest.raises(ShapeError, match="output column 2 is covered by 2 parts"):
        make_problem(None, x, w, K, parts=[(a, None, [0, 2]), (a2, None, [1, 2, 3])])
    with pytest.raises(ShapeError, match="output column 3 is covered by 0 parts"):
        make_problem(None, x, w, K, parts=[(a, None, [0, 2]), (a2, None, [1])])
    with pytest.raises(ShapeError, match="part 1: column selection out of range"):
        make_problem(None, x, w, K, parts=[(a, None, [0, 2]), (a2, [2], [1, 3])])
    with pytest.raises(ShapeError, match="part 0: column selection out of range"):
        make_problem(None, x, w, K, parts=[(a, None, []), (a2, None, [0, 1, 2, 3])])
    with pytest.raises(ShapeError, match=r"A\[1\] has 2 rows, part 0 has 3"):
        make_problem(None, x, w, K, parts=[(a, None, [0, 2]), (a2[:2], None, [1, 3])])


def test_gather_spec_must_match_x():
    a, x, w = _ops(n=4, c=2)
    make_problem(a, x, w, K, gather=GatherSpec(taps=2, pixels=2, channels=1))
    with pytest.raises(ShapeError, match="does not match X shape"):
        make_problem(a, x, w, K, gather=GatherSpec(taps=2, pixels=3, channels=1))


def test_summary():
    a, x, w = _ops()
    s = make_problem(a, x, w, K, "s").summary()
    assert {k: s[k] for k in ("name", "o", "n", "c", "h", "parts", "gather")} == \
        {"name": "s", "o": 3, "n": 4, "c": 2, "h": 3, "parts": 1, "gather": False}
    assert s["nnz_a"] == np.count_nonzero(a) and s["nnz_x"] == np.count_nonzero(x)
    assert s["contract"] == K.to_json()
