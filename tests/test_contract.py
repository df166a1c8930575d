"""Tests of accel.contract: integer formats, requantization, contracts and their errors."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from accel.contract import CONTRACT_NAMES, Contract, IntFormat, Requant, make_contract
from accel.errors import ContractError, ValueRangeError
from contract_suite import requant_int, wrap_int


# ------------------------------------------------------------ IntFormat

@pytest.mark.parametrize("bits,signed,lo,hi,name", [
    (8, True, -128, 127, "s8"), (8, False, 0, 255, "u8"), (1, True, -1, 0, "s1"),
    (32, True, -2 ** 31, 2 ** 31 - 1, "s32"), (64, True, -2 ** 63, 2 ** 63 - 1, "s64"),
    (64, False, 0, 2 ** 64 - 1, "u64")])
def test_intformat_range_and_name(bits, signed, lo, hi, name):
    f = IntFormat(bits, signed)
    assert (f.min, f.max, f.name) == (lo, hi, name)


@pytest.mark.parametrize("bits", [0, 65, -8, 8.0, "8", None])
def test_intformat_rejects_bad_bits(bits):
    with pytest.raises(ContractError, match=rf"bits must be in 1..64, got {bits!r}"):
        IntFormat(bits)


def test_intformat_is_frozen_value():
    assert IntFormat(8) == IntFormat(8, True) != IntFormat(8, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        IntFormat(8).bits = 9


def test_wrap_hand_values():
    s8, u8 = IntFormat(8), IntFormat(8, False)
    v = np.array([127, 128, -129, 255, 256, -128, -1, 1000])
    np.testing.assert_array_equal(s8.wrap(v), [127, -128, 127, -1, 0, -128, -1, -24])
    np.testing.assert_array_equal(u8.wrap(v), [127, 128, 127, 255, 0, 128, 255, 232])
    assert s8.wrap(v).dtype == np.int64


def test_wrap_64_bits():
    s64, u64 = IntFormat(64), IntFormat(64, False)
    big = np.array([2 ** 63 - 1, -2 ** 63, -1, 0], dtype=np.int64)
    np.testing.assert_array_equal(s64.wrap(big), big)
    top = np.array([2 ** 63, 2 ** 64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(s64.wrap(top), np.array([-2 ** 63, -1], dtype=np.int64))
    got = u64.wrap(np.array([-1, 5], dtype=np.int64))
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, np.array([2 ** 64 - 1, 5], dtype=np.uint64))


@given(bits=st.integers(1, 63), signed=st.booleans(),
       v=st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), min_size=1, max_size=20))
def test_wrap_matches_python_modulo(bits, signed, v):
    f = IntFormat(bits, signed)
    m = 1 << bits
    want = [wrap_int(x, bits) if signed else x % m for x in v]
    got = f.wrap(np.array(v, dtype=np.int64))
    assert [int(g) for g in got] == want


def test_saturate_and_check():
    s8, u4 = IntFormat(8), IntFormat(4, False)
    np.testing.assert_array_equal(s8.saturate([-1000, -128, 0, 127, 1000]), [-128, -128, 0, 127, 127])
    np.testing.assert_array_equal(u4.saturate([-3, 7, 16]), [0, 7, 15])
    s8.check(np.array([[-128, 127]]), "X")
    s8.check(np.zeros((0, 3)), "X")
    with pytest.raises(ValueRangeError, match=r"X: value 128 at position \(1, 0\) is outside s8 \[-128, 127\]"):
        s8.check(np.array([[1, 2], [128, -129]]), "X")
    with pytest.raises(ValueRangeError, match=r"W: value -1 at position \(2,\) is outside u4 \[0, 15\]"):
        u4.check(np.array([0, 15, -1]), "W")


# ------------------------------------------------------------ Requant

@pytest.mark.parametrize("v,shift,want", [
    (5, 1, 3),      # 2.5 → 3
    (-5, 1, -2),    # -2.5 → -2 (half up, toward +inf: not away from zero)
    (-3, 1, -1),    # -1.5 → -1
    (-1, 1, 0),     # -0.5 → 0
    (-6, 2, -1),    # -1.5 → -1
    (-7, 2, -2),    # -1.75 → -2
    (-10, 2, -2),   # -2.5 → -2
    (6, 2, 2),      # 1.5 → 2
    (7, 0, 7),
    (1000, 0, 127), (-1000, 0, -128), (255, 1, 127), (-257, 1, -128), (-256, 1, -128)])
def test_requant_rounds_half_up_then_saturates(v, shift, want):
    assert int(Requant(shift, IntFormat(8)).apply(np.array([v]))[0]) == want
    assert requant_int(v, shift, 8) == want   # the suite's model agrees


@given(v=st.integers(-2 ** 40, 2 ** 40), shift=st.integers(0, 20), bits=st.integers(2, 32))
def test_requant_matches_python_floor(v, shift, bits):
    got = int(Requant(shift, IntFormat(bits)).apply(np.array([v]))[0])
    q = (2 * v + (1 << shift)) // (2 << shift) if shift else v    # floor(v/2^s + 1/2)
    assert got == max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, q))


@pytest.mark.parametrize("shift", [-1, 63, 1.0, "2"])
def test_requant_rejects_bad_shift(shift):
    with pytest.raises(ContractError, match=rf"shift must be in 0..62, got {shift!r}"):
        Requant(shift, IntFormat(8))


# ------------------------------------------------------------ Contract

def test_make_contract_exact_and_int8():
    k = make_contract("exact")
    assert (k.operand, k.acc, k.mid, k.out) == (IntFormat(8), IntFormat(32), None, None)
    assert k.order_independent and k.mid_format == k.acc and k.out_format == k.acc
    q = make_contract("int8", 6, 20, 3, 5)
    assert q.mid == Requant(3, IntFormat(6)) and q.out == Requant(5, IntFormat(6))
    assert not q.order_independent and q.mid_format == IntFormat(6) == q.out_format
    assert CONTRACT_NAMES == ("exact", "int8")


@pytest.mark.parametrize("args,match", [
    (("fp16",), "unknown contract 'fp16'; known: exact, int8"),
    (("exact", 0), "bits must be in 1..64, got 0"),
    (("exact", 8, 65), "bits must be in 1..64, got 65"),
    (("exact", 16, 8), r"accumulator \(s8\) narrower than operands \(s16\)"),
    (("int8", 8, 32, 63), "shift must be in 0..62, got 63"),
    (("int8", 8, 32, 0, -1), "shift must be in 0..62, got -1"),
])
def test_make_contract_errors(args, match):
    with pytest.raises(ContractError, match=match):
        make_contract(*args)


def test_contract_rejects_requant_wider_than_acc():
    with pytest.raises(ContractError, match="requantized format s16 wider than s12"):
        Contract("x", IntFormat(6), IntFormat(12), Requant(0, IntFormat(16)))


@pytest.mark.parametrize("k", [make_contract("exact", 5, 13), make_contract("int8", 8, 32, 4, 7)],
                         ids=["exact", "int8"])
def test_contract_json_round_trip(k):
    d = k.to_json()
    assert d["accumulate"] == "wrap"
    assert Contract.from_json(d) == k


@given(seed=st.integers(0, 2 ** 32 - 1), acc=st.sampled_from([8, 16, 24, 32, 64]))
def test_product_accumulate_is_the_wrapped_exact_product(seed, acc):
    rng = np.random.default_rng(seed)
    k = make_contract("exact", 4 if acc == 8 else 8, acc)
    lo, hi = k.operand.min, k.operand.max
    s = rng.integers(lo, hi + 1, (5, 9))
    d = rng.integers(lo, hi + 1, (9, 4)) * (1 << (acc - 9) if acc > 16 else 1)
    want = [[wrap_int(sum(int(s[i, m]) * int(d[m, j]) for m in range(9)), acc) for j in range(4)]
            for i in range(5)]
    for sm in (s, sp.csr_matrix(s)):
        got = k.product_accumulate(sm, d)
        assert got.dtype == np.int64
        assert got.tolist() == want
