"""Tests of accel.reference: the contract suite at the reference level, and its own rules."""

import numpy as np
import pytest
from hypothesis import given

from accel.contract import make_contract
from accel.errors import AxwError
from accel.problem import make_problem
from accel.reference import ORDERS, reference
from contract_suite import ContractSuite, assert_ints_equal, cases, model_y, random_problem


class TestReferenceLevel(ContractSuite):
    """run = accel.reference; every expectation of the suite is a Python-int model."""

    def run(self, problem, config, order, **kw):
        return reference(problem, order), None

    @given(case=cases("exact"))
    def test_exact_contract_is_order_independent(self, case):
        problem, _, _, _, ctx = case
        y = reference(problem, "a(xw)")
        assert_ints_equal(reference(problem, "(ax)w"), y, f"(ax)w vs a(xw): {ctx}")
        assert_ints_equal(model_y(problem, "(ax)w"), y, f"model (ax)w vs reference: {ctx}")


# ------------------------------------------------------------ hand-computed values

def test_hand_example_exact():
    # X·W = [[1], [1]]; A·(X·W) = [[1 + 2], [3]]
    a = np.array([[1, 2], [0, 3]])
    x = np.array([[1, 0], [2, 1]])
    w = np.array([[1], [-1]])
    p = make_problem(a, x, w, make_contract("exact"))
    for order in ORDERS:
        y = reference(p, order)
        assert y.dtype == np.int64 and y.tolist() == [[3], [3]]


@pytest.mark.parametrize("a,order,want", [
    # int8 contract, mid and out shift 1 (round half up), X = [[1]], W = [[3]]
    (1, "a(xw)", 1),    # T = 3 → 2;  A·T = 2 → 1
    (1, "(ax)w", 2),    # U = 1 → 1;  U·W = 3 → 2
    (-1, "a(xw)", -1),  # T = 3 → 2;  A·T = -2 → (-2 + 1) >> 1 = -1
    (-1, "(ax)w", 0),   # U = -1 → (-1 + 1) >> 1 = 0;  U·W = 0 → 0
])
def test_hand_example_int8_orders(a, order, want):
    p = make_problem(np.array([[a]]), np.array([[1]]), np.array([[3]]),
                     make_contract("int8", 8, 32, 1, 1))
    assert reference(p, order).tolist() == [[want]]


def test_int8_saturates_the_intermediate():
    # T = 100·100 + 100·100 = 20000 → shift 4 → 1250 → saturates to 127; Y = 127·2 → 254 → 127
    p = make_problem(np.array([[1, 1]]), np.full((2, 2), 100), np.full((2, 1), 100),
                     make_contract("int8", 8, 32, 4, 0))
    assert reference(p, "a(xw)").tolist() == [[127]]


def test_wrap_hand_example():
    # 127³·3 = 6145149 does not fit s16: 6145149 - 93·65536 = 50301 → 50301 - 65536 = -15235
    p = make_problem(np.full((1, 3), 127), np.full((3, 1), 127), np.full((1, 1), 127),
                     make_contract("exact", 8, 16))
    for order in ORDERS:
        assert reference(p, order).tolist() == [[-15235]]


def test_reference_does_not_depend_on_x_storage():
    p = random_problem(7, 9, 8, 6, 5, dens_a=0.4, dens_x=0.2)
    dense = make_problem(p.a, p.x.toarray() if p.x_is_sparse else p.x, p.w, p.contract,
                         x_sparse=False)
    sparse = make_problem(p.a, p.x, p.w, p.contract, x_sparse=True)
    for order in ORDERS:
        assert_ints_equal(reference(dense, order), reference(sparse, order), order)


def test_unknown_order():
    p = random_problem(8, 3, 3, 3, 3)
    with pytest.raises(AxwError, match=r"unknown order 'xw'; expected one of \('a\(xw\)', '\(ax\)w'\)"):
        reference(p, "xw")
