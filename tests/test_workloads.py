"""Tests of accel.workloads: builders against independent direct models, generators, registry."""

import dataclasses
import os
import time

import numpy as np
import pytest
import scipy.signal
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import naive
from accel import workloads as wl
from accel.contract import IntFormat, make_contract
from accel.errors import ShapeError, ValueRangeError, WorkloadError
from accel.loaders import data_dir
from accel.reference import ORDERS, reference

S32 = IntFormat(32)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rand_int(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def dense_x(problem):
    """The same problem with X stored dense (reference's "(ax)w" path wants a dense X)."""
    x = problem.x.toarray() if sp.issparse(problem.x) else problem.x
    return dataclasses.replace(problem, x=x)


def as_image(problem, oh, ow):
    """Reference output of a conv problem reshaped to (OH, OW, F), checked in both orders."""
    y = reference(problem, "a(xw)")
    np.testing.assert_array_equal(reference(dense_x(problem), "(ax)w"), y)
    return y.reshape(oh, ow, -1)


def check_conv(image, kernel, transposed=False, **kw):
    build, model = ((wl.conv_transpose2d, naive.conv_transpose2d) if transposed
                    else (wl.conv2d, naive.conv2d))
    p = build(image, kernel, **kw)
    want = S32.wrap(model(image, kernel, **kw))
    got = as_image(p, p.meta["out_h"], p.meta["out_w"])
    np.testing.assert_array_equal(got, want, err_msg=f"config {kw}, image {image.shape}, "
                                                     f"kernel {kernel.shape}")
    return p


# ------------------------------------------------------------------ naive models vs scipy

def test_naive_models_agree_with_scipy_correlate_and_convolve():
    rng = np.random.default_rng(1)
    img, ker = rand_int(rng, (6, 5, 3)), rand_int(rng, (3, 2, 3, 2))
    corr = np.stack([sum(scipy.signal.correlate2d(img[:, :, c], ker[:, :, c, f], "valid")
                         for c in range(3)) for f in range(2)], axis=-1)
    np.testing.assert_array_equal(naive.conv2d(img, ker), corr)
    full = np.stack([sum(scipy.signal.convolve2d(img[:, :, c], ker[:, :, c, f], "full")
                         for c in range(3)) for f in range(2)], axis=-1)
    np.testing.assert_array_equal(naive.conv_transpose2d(img, ker), full)


# ------------------------------------------------------------------ conv2d

@st.composite
def conv_configs(draw, transposed=False):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c = groups * draw(st.integers(1, 2))
    f = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    dilation = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2))))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    kc, kf = (c, f // groups) if transposed else (c // groups, f)
    return (h, w, c), (kh, kw, kc, kf), dict(stride=stride, padding=padding,
                                             dilation=dilation, groups=groups), seed


def _out_ok(img_shape, ker_shape, kw, transposed):
    (sy, sx), (py, px), (dy, dx) = (naive._pair(kw[k]) for k in ("stride", "padding", "dilation"))
    if transposed:
        oh = (img_shape[0] - 1) * sy - 2 * py + dy * (ker_shape[0] - 1) + 1
        ow = (img_shape[1] - 1) * sx - 2 * px + dx * (ker_shape[1] - 1) + 1
    else:
        oh = (img_shape[0] + 2 * py - dy * (ker_shape[0] - 1) - 1) // sy + 1
        ow = (img_shape[1] + 2 * px - dx * (ker_shape[1] - 1) - 1) // sx + 1
    return oh > 0 and ow > 0


@FAST
@given(conv_configs())
def test_conv2d_matches_naive_random(cfg):
    img_shape, ker_shape, kw, seed = cfg
    assume(_out_ok(img_shape, ker_shape, kw, False))
    rng = np.random.default_rng(seed)
    check_conv(rand_int(rng, img_shape), rand_int(rng, ker_shape), **kw)


@FAST
@given(conv_configs(transposed=True))
def test_conv_transpose2d_matches_naive_random(cfg):
    img_shape, ker_shape, kw, seed = cfg
    assume(_out_ok(img_shape, ker_shape, kw, True))
    rng = np.random.default_rng(seed)
    check_conv(rand_int(rng, img_shape), rand_int(rng, ker_shape), transposed=True, **kw)


CONV_CASES = [
    ((7, 7, 3), (3, 3, 3, 4), dict(stride=2)),
    ((6, 5, 2), (3, 3, 2, 3), dict(padding=1)),
    ((6, 6, 2), (3, 3, 2, 2), dict(padding=(2, 1), stride=(1, 2))),
    ((8, 7, 2), (3, 3, 2, 2), dict(dilation=2)),
    ((8, 8, 2), (3, 2, 2, 2), dict(dilation=(2, 3), padding=2, stride=2)),
    ((5, 5, 4), (3, 3, 2, 6), dict(groups=2, padding=1)),
    ((5, 6, 4), (3, 3, 1, 4), dict(groups=4, padding=1)),          # depthwise
    ((5, 6, 3), (3, 3, 1, 6), dict(groups=3, stride=2)),           # depthwise, multiplier 2
    ((4, 5, 3), (1, 1, 3, 5), {}),                                 # 1×1
    ((4, 4, 3), (1, 1, 3, 2), dict(stride=2)),
    ((2, 3, 2), (5, 5, 2, 2), dict(padding=2)),                    # kernel larger than image
    ((1, 1, 3), (3, 3, 3, 2), dict(padding=1)),
]


@pytest.mark.parametrize("img_shape,ker_shape,kw", CONV_CASES)
def test_conv2d_explicit_cases(img_shape, ker_shape, kw):
    rng = np.random.default_rng(7)
    p = check_conv(rand_int(rng, img_shape), rand_int(rng, ker_shape), **kw)
    groups = kw.get("groups", 1)
    assert len(p.parts) == groups and p.meta["groups"] == groups
    assert p.gather.taps == ker_shape[0] * ker_shape[1]
    assert p.gather.pixels == img_shape[0] * img_shape[1] and p.gather.channels == img_shape[2]


def test_conv2d_structure_of_a_x_w():
    rng = np.random.default_rng(3)
    img, ker = rand_int(rng, (4, 5, 2)), rand_int(rng, (3, 3, 2, 3))
    p = wl.conv2d(img, ker, padding=1)
    T, P = 9, 20
    assert p.a.shape == (20, T * P) and p.x.shape == (T * P, T * 2) and p.w.shape == (T * 2, 3)
    a = p.a.toarray()
    assert set(np.unique(a)) <= {0, 1}
    per_block = a.reshape(20, T, P).sum(axis=2)
    assert per_block.max() == 1
    # corner output pixel (0, 0) with padding 1: taps (0,*) and (*,0) fall in the padding
    assert per_block[0].sum() == 4
    # interior output pixel (1, 1) reads input pixel (oy-1+ky, ox-1+kx) for tap (ky, kx)
    r = 1 * 5 + 1
    cols = np.nonzero(a[r])[0]
    np.testing.assert_array_equal(cols, [t * P + (ky * 5 + kx) for t, (ky, kx) in
                                         enumerate((ky, kx) for ky in range(3) for kx in range(3))])
    np.testing.assert_array_equal(sp.csr_matrix(p.x)[:P, :2].toarray(), img.reshape(P, 2))
    np.testing.assert_array_equal(p.w, ker.reshape(18, 3))


def test_conv2d_groups_zero_outside_group():
    rng = np.random.default_rng(4)
    p = wl.conv2d(rand_int(rng, (3, 3, 4)), rand_int(rng, (2, 2, 2, 4)), groups=2)
    w = p.w.reshape(4, 4, 4)                     # taps, channels, filters
    assert not w[:, :2, 2:].any() and not w[:, 2:, :2].any()
    np.testing.assert_array_equal(p.parts[1].y_cols, [2, 3])
    np.testing.assert_array_equal(p.parts[1].x_cols, [2, 3, 6, 7, 10, 11, 14, 15])


TRANSPOSE_CASES = [
    ((3, 3, 2), (3, 3, 2, 2), dict(stride=2)),
    ((4, 3, 2), (3, 3, 2, 3), dict(stride=2, padding=1)),
    ((3, 4, 2), (2, 3, 2, 2), dict(stride=(2, 3), dilation=2)),
    ((3, 3, 4), (3, 3, 4, 1), dict(groups=4, stride=2)),           # depthwise
    ((3, 3, 4), (2, 2, 4, 3), dict(groups=2)),
    ((2, 2, 1), (1, 1, 1, 2), dict(stride=3)),                     # 1×1, holes in the output
    ((2, 2, 2), (4, 4, 2, 2), dict(padding=1)),
]


@pytest.mark.parametrize("img_shape,ker_shape,kw", TRANSPOSE_CASES)
def test_conv_transpose2d_explicit_cases(img_shape, ker_shape, kw):
    rng = np.random.default_rng(8)
    check_conv(rand_int(rng, img_shape), rand_int(rng, ker_shape), transposed=True, **kw)


def test_conv_transpose2d_output_larger_than_input():
    rng = np.random.default_rng(9)
    p = check_conv(rand_int(rng, (3, 3, 2)), rand_int(rng, (3, 3, 2, 2)), transposed=True, stride=2)
    assert (p.meta["out_h"], p.meta["out_w"]) == (7, 7)
    assert p.o == 49 > p.gather.pixels == 9


@FAST
@given(st.integers(1, 3), st.integers(0, 2), st.integers(1, 2), st.integers(1, 3),
       st.integers(1, 4), st.integers(0, 2 ** 32 - 1))
def test_conv_transpose_is_adjoint_of_conv(s, p, d, k, m, seed):
    # <conv2d(x, k), z> == <x, conv_transpose2d(z, k^T)> when the sizes round-trip exactly
    h = (m - 1) * s + d * (k - 1) + 1 - 2 * p
    assume(h >= 1)
    rng = np.random.default_rng(seed)
    x, ker = rand_int(rng, (h, h, 2), -8, 8), rand_int(rng, (k, k, 2, 3), -8, 8)
    y = reference(wl.conv2d(x, ker, stride=s, padding=p, dilation=d))
    z = rand_int(rng, y.shape, -8, 8)
    pt = wl.conv_transpose2d(z.reshape(m, m, 3), ker.transpose(0, 1, 3, 2), stride=s, padding=p,
                             dilation=d)
    assert (pt.meta["out_h"], pt.meta["out_w"]) == (h, h)
    assert int((y * z).sum()) == int((x.reshape(h * h, 2) * reference(pt)).sum())


def test_conv_other_widths_and_wrap():
    rng = np.random.default_rng(10)
    img, ker = rand_int(rng, (4, 4, 3), -8, 7), rand_int(rng, (3, 3, 3, 2), -8, 7)
    p = wl.conv2d(img, ker, padding=1, operand_bits=4)
    assert p.contract.operand.bits == 4
    np.testing.assert_array_equal(as_image(p, 4, 4), naive.conv2d(img, ker, padding=1))
    # 16-bit extremes overflow s32 and must wrap exactly as the contract says
    img = np.full((3, 3, 8), -32768, dtype=np.int64)
    ker = np.full((3, 3, 8, 1), -32768, dtype=np.int64)
    p = wl.conv2d(img, ker, operand_bits=16)
    np.testing.assert_array_equal(as_image(p, 1, 1), S32.wrap(naive.conv2d(img, ker)))
    with pytest.raises(ValueRangeError, match="-32768"):
        wl.conv2d(img, ker)


@pytest.mark.parametrize("kw,exc,needle", [
    (dict(stride=0), WorkloadError, "stride"),
    (dict(stride=(1, -2)), WorkloadError, "-2"),
    (dict(dilation=0), WorkloadError, "dilation"),
    (dict(padding=-1), WorkloadError, "-1"),
    (dict(padding=1.5), WorkloadError, "1.5"),
    (dict(stride=(1, 2, 3)), WorkloadError, r"\(1, 2, 3\)"),
    (dict(groups=3), WorkloadError, "groups=3"),
    (dict(groups=0), WorkloadError, "0"),
])
def test_conv2d_rejects_bad_parameters(kw, exc, needle):
    rng = np.random.default_rng(0)
    img, ker = rand_int(rng, (5, 5, 4)), rand_int(rng, (3, 3, 4, 4))
    if kw.get("groups") == 3:
        img, ker = rand_int(rng, (5, 5, 6)), rand_int(rng, (3, 3, 2, 4))
    with pytest.raises(exc, match=needle):
        wl.conv2d(img, ker, **kw)


def test_conv_rejects_bad_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(ShapeError, match=r"\(5, 5\)"):
        wl.conv2d(rand_int(rng, (5, 5)), rand_int(rng, (3, 3, 1, 1)))
    with pytest.raises(ShapeError, match=r"\(3, 3, 4\)"):
        wl.conv2d(rand_int(rng, (5, 5, 4)), rand_int(rng, (3, 3, 4)))
    with pytest.raises(ShapeError, match="C=4"):
        wl.conv2d(rand_int(rng, (5, 5, 4)), rand_int(rng, (3, 3, 3, 2)))
    with pytest.raises(ShapeError, match="empty"):
        wl.conv2d(rand_int(rng, (2, 2, 1)), rand_int(rng, (3, 3, 1, 1)))
    with pytest.raises(ShapeError, match="empty"):
        wl.conv2d(rand_int(rng, (5, 5, 1)), rand_int(rng, (3, 3, 1, 1)), dilation=3)
    with pytest.raises(ShapeError, match="C=4"):
        wl.conv_transpose2d(rand_int(rng, (3, 3, 4)), rand_int(rng, (3, 3, 2, 2)))
    with pytest.raises(ShapeError, match="empty"):
        wl.conv_transpose2d(rand_int(rng, (1, 1, 1)), rand_int(rng, (1, 1, 1, 1)), padding=1)
    with pytest.raises(WorkloadError, match="groups=3"):
        wl.conv_transpose2d(rand_int(rng, (3, 3, 4)), rand_int(rng, (3, 3, 4, 1)), groups=3)
    with pytest.raises(ValueRangeError, match="0.5"):
        wl.conv2d(np.full((3, 3, 1), 0.5), rand_int(rng, (1, 1, 1, 1)))


# ------------------------------------------------------------------ per_kernel / generic

def test_per_kernel_matches_direct_columns_and_groups():
    rng = np.random.default_rng(11)
    n, c, h, o = 9, 4, 6, 7
    x = rand_int(rng, (n, c))
    w = rand_int(rng, (c, h))
    base = [sp.random(o, n, density=0.4, random_state=i, format="csr",
                      data_rvs=lambda k, r=rng: r.integers(-5, 6, k)) for i in range(3)]
    # column i uses base[i % 3] (re-built so identity is by content, not by object)
    a_list = [sp.csr_matrix(base[i % 3].toarray()) for i in range(h)]
    p = wl.per_kernel(a_list, x, w)
    assert p.meta["groups"] == len(p.parts) == 3
    np.testing.assert_array_equal(p.parts[0].y_cols, [0, 3])
    want = np.stack([a_list[i].toarray().astype(np.int64) @ x @ w[:, i] for i in range(h)], axis=1)
    for order in ORDERS:
        np.testing.assert_array_equal(reference(p, order), want)


def test_per_kernel_separates_same_pattern_different_values():
    a = sp.csr_matrix(np.eye(3))
    p = wl.per_kernel([a, 2 * a, a], np.ones((3, 2)), np.ones((2, 3)))
    assert p.meta["groups"] == 2
    with pytest.raises(ShapeError, match="2 A for 3 columns"):
        wl.per_kernel([a, a], np.ones((3, 2)), np.ones((2, 3)))


def test_generic_wraps_make_problem():
    rng = np.random.default_rng(12)
    a = sp.random(5, 4, density=0.5, random_state=1, format="csr",
                  data_rvs=lambda k: rng.integers(-9, 10, k))
    x, w = rand_int(rng, (4, 3)), rand_int(rng, (3, 2))
    p = wl.generic(a, x, w, name="g")
    assert p.name == "g" and p.contract == make_contract("exact")
    np.testing.assert_array_equal(reference(p), a.toarray().astype(np.int64) @ x @ w)
    with pytest.raises(ShapeError, match=r"\(4, 3\)"):
        wl.generic(a, x, rand_int(rng, (4, 2)))


# ------------------------------------------------------------------ GCN / GAT

def small_graph():
    g = wl.power_law_graph(60, 300, seed=5)
    return g, wl.binary_features(60, 20, 0.2, seed=6)


def test_gcn_normalize_rows():
    # path 0-1-2: degrees with self-loops 2, 3, 2
    g = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32))
    a = wl.gcn_normalize(g).toarray()
    s2, s6 = 1 / 2, 1 / np.sqrt(6)
    np.testing.assert_allclose(a, [[s2, s6, 0], [s6, 1 / 3, s6], [0, s6, s2]], rtol=1e-12)
    g, _ = small_graph()
    a = wl.gcn_normalize(g)
    deg = np.asarray(g.astype(np.float64).sum(axis=1)).ravel() + 1
    np.testing.assert_allclose(a.toarray(), np.diag(deg ** -0.5) @ (g.toarray() + np.eye(60))
                               @ np.diag(deg ** -0.5), rtol=1e-12)


@pytest.mark.parametrize("bad,needle", [
    (np.array([[0, 2], [2, 0]]), "value 2"),
    (np.array([[1, 1], [1, 0]]), "self-loop at node 0"),
    (np.array([[0, 1], [0, 0]]), r"not symmetric, e.g. entry \((0, 1|1, 0)\)"),
])
def test_gcn_normalize_rejects_bad_graphs(bad, needle):
    with pytest.raises(WorkloadError, match=needle):
        wl.gcn_normalize(sp.csr_matrix(bad))
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        wl.gcn_normalize(sp.csr_matrix(np.zeros((2, 3))))


def test_quantize_symmetric():
    m = np.array([[0.5, -0.25], [0.1, 0.0]])
    q, s = wl.quantize_symmetric(m, 8)
    assert s == 2.0 ** -7                               # 0.5 / 2**-8 = 128 > 127
    np.testing.assert_array_equal(q, [[64, -32], [13, 0]])
    q, s = wl.quantize_symmetric(m, 8, pow2=False)
    assert s == 0.5 / 127
    np.testing.assert_array_equal(q, [[127, -64], [25, 0]])
    qs, s = wl.quantize_symmetric(sp.csr_matrix(m), 4)
    assert sp.issparse(qs) and s == 2.0 ** -3 and np.abs(qs.data).max() <= 7
    q, s = wl.quantize_symmetric(np.zeros((2, 2)), 8)
    assert s == 1.0 and not q.any()
    with pytest.raises(WorkloadError, match="NaN"):
        wl.quantize_symmetric(np.array([np.nan]), 8)


def test_gcn_layer_quant_error_and_operands():
    g, x = small_graph()
    p = wl.gcn_layer(g, x, hidden=8, seed=1)
    assert (p.o, p.n, p.c, p.h) == (60, 60, 20, 8)
    assert p.x_is_sparse and p.meta["x_scale"] == 1.0
    assert 0 < p.meta["quant_rel_error"] < 0.05
    assert np.abs(p.w).max() <= 127 and np.abs(p.a.data).max() <= 127
    # the reported error is the honest one
    a_hat = wl.gcn_normalize(g)
    rng = np.random.default_rng(1)
    lim = np.sqrt(6 / 28)
    w_float = rng.uniform(-lim, lim, (20, 8))
    y_float = a_hat @ (x.toarray() @ w_float)
    err = np.linalg.norm(y_float - reference(p) * p.meta["y_scale"]) / np.linalg.norm(y_float)
    assert err == pytest.approx(p.meta["quant_rel_error"], rel=1e-9)
    # same seed, same problem; float features get quantized
    np.testing.assert_array_equal(wl.gcn_layer(g, x, hidden=8, seed=1).w, p.w)
    pf = wl.gcn_layer(g, x.toarray() * 0.3, hidden=8, seed=1)
    assert pf.meta["x_scale"] != 1.0 and pf.meta["quant_rel_error"] < 0.05


def test_gcn_layer_given_integer_w_and_other_width():
    g, x = small_graph()
    w = np.arange(-10, 10).reshape(20, 1)
    p = wl.gcn_layer(g, x, w)
    np.testing.assert_array_equal(p.w, w)
    assert p.meta["w_scale"] == 1.0
    # 16-bit operands need a wider accumulator than the default s32 to avoid wrapping
    p16 = wl.gcn_layer(g, x, hidden=4, contract=make_contract("exact", 16, 64))
    assert p16.contract.operand.bits == 16 and p16.meta["quant_rel_error"] < 1e-3
    with pytest.raises(ShapeError, match=r"\(19, 1\)"):
        wl.gcn_layer(g, x, w[:19])
    with pytest.raises(ShapeError, match="61 rows"):
        wl.gcn_layer(g, sp.vstack([x, x[:1]]))
    with pytest.raises(WorkloadError, match="operand_bits=4"):
        wl.gcn_layer(g, x, operand_bits=4, contract=make_contract("exact"))


def test_cora_like_two_layer_chain():
    m = wl.cora_like(seed=0)
    l1 = m.layer1()
    assert (l1.o, l1.n, l1.c, l1.h) == (2708, 2708, 1433, 16)
    assert l1.meta["quant_rel_error"] < 0.04
    y1 = reference(l1)
    l2 = m.layer2(y1)
    assert (l2.o, l2.n, l2.c, l2.h) == (2708, 2708, 16, 7)
    s = l2.meta["x_requant_shift"]
    x2 = l2.x.toarray() if sp.issparse(l2.x) else l2.x
    assert x2.min() >= 0 and x2.max() <= 127 and (s == 0 or x2.max() >= 64)
    np.testing.assert_array_equal(x2, np.minimum((np.maximum(y1, 0) + (1 << s >> 1)) >> s, 127))
    assert l2.meta["quant_rel_error"] < 0.06
    with pytest.raises(ShapeError, match=r"\(2708, 15\)"):
        m.layer2(y1[:, :15])
    with pytest.raises(WorkloadError, match="float64"):
        m.layer2(y1.astype(np.float64))


def test_host_requantize():
    x, s = wl.host_requantize(np.array([[-5, 0, 300, 255]]), IntFormat(8))
    assert s == 2
    np.testing.assert_array_equal(x, [[0, 0, 75, 64]])
    x, s = wl.host_requantize(np.array([[3, 127]]), IntFormat(8))
    assert s == 0
    np.testing.assert_array_equal(x, [[3, 127]])


def test_gat_layer_rows_and_attention():
    g, x = small_graph()
    p = wl.gat_layer(g, x, seed=2)
    assert p.meta["attention_row_sum_max_dev"] < 1e-12
    assert p.meta["quant_rel_error"] < 0.05
    pattern = (g + sp.identity(60)).tocsr()
    pattern.sort_indices()
    assert (p.a.toarray() != 0).sum() <= pattern.nnz
    assert not (p.a.toarray() != 0)[pattern.toarray() == 0].any()
    # given attention: uniform weights 1/deg
    deg = np.diff(pattern.indptr)
    att = sp.csr_matrix((np.repeat(1.0 / deg, deg), pattern.indices, pattern.indptr), shape=(60, 60))
    pa = wl.gat_layer(g, x, attention=att)
    assert pa.meta["quant_rel_error"] < 0.05
    bad = att.copy()
    bad.data[bad.indptr[4]] += 0.5
    with pytest.raises(WorkloadError, match="row 4 sums to 1.5"):
        wl.gat_layer(g, x, attention=bad)
    with pytest.raises(WorkloadError, match="pattern"):
        wl.gat_layer(g, x, attention=sp.identity(60, format="csr"))


# ------------------------------------------------------------------ generators

def test_power_law_graph_properties():
    g = wl.power_law_graph(2000, 12000, seed=3)
    assert g.shape == (2000, 2000) and g.dtype == np.float32 and g.nnz == 12000
    assert (g != g.T).nnz == 0 and g.diagonal().sum() == 0 and (g.data == 1).all()
    deg = np.diff(g.indptr)
    assert deg.min() >= 1                       # edges >= 2·nodes: nobody isolated
    assert deg.max() > 10 * deg.mean()          # heavy tail
    g2 = wl.power_law_graph(2000, 12000, seed=3)
    np.testing.assert_array_equal(g2.indices, g.indices)
    np.testing.assert_array_equal(g2.indptr, g.indptr)
    assert (wl.power_law_graph(2000, 12000, seed=4) != g).nnz > 0
    assert wl.power_law_graph(34, 156, seed=0).nnz == 156      # dense request
    assert wl.power_law_graph(5, 20).nnz == 20                 # complete graph
    assert wl.power_law_graph(100, 51).nnz == 50


@pytest.mark.parametrize("kw,needle", [
    (dict(nodes=0, edges=4), "nodes"),
    (dict(nodes=5, edges=22), "edges=22"),
    (dict(nodes=5, edges=-1), "-1"),
    (dict(nodes=5, edges=4, exponent=1.0), "1.0"),
])
def test_power_law_graph_rejects(kw, needle):
    with pytest.raises(WorkloadError, match=needle):
        wl.power_law_graph(**kw)


def test_binary_features():
    x = wl.binary_features(300, 50, 0.1, seed=1)
    assert x.shape == (300, 50) and x.nnz == 1500 and (x.data == 1).all()
    np.testing.assert_array_equal(wl.binary_features(300, 50, 0.1, seed=1).indices, x.indices)
    assert wl.binary_features(10, 10, 0.95, seed=1).nnz == 95
    with pytest.raises(WorkloadError, match="1.5"):
        wl.binary_features(3, 3, 1.5)


def test_cora_like_statistics():
    m = wl.cora_like(seed=0)
    assert m.a_hat.shape == (2708, 2708) and m.a_hat.nnz == 10556 + 2708
    assert m.a.nnz == m.a_hat.nnz                 # no entry of Â quantized to zero
    assert m.x.shape == (2708, 1433)
    assert m.x.nnz / (2708 * 1433) == pytest.approx(0.0127, rel=1e-3)
    assert (m.hidden, m.classes) == (16, 7)


def test_scale_graph_full_size_is_fast():
    t0 = time.perf_counter()
    m = wl.scale_graph(seed=0)
    elapsed = time.perf_counter() - t0
    assert m.a_hat.shape == (1_000_000, 1_000_000)
    assert m.a_hat.nnz == 10_000_000 + 1_000_000           # G plus the added self-loops
    assert m.x.shape == (1_000_000, 64) and m.x.nnz == round(64e6 * 0.03)
    assert elapsed < 60, f"scale_graph took {elapsed:.1f} s"


# ------------------------------------------------------------------ ResNet-18

def test_resnet18_shapes():
    by = {s.name: s for s in wl.RESNET18_LAYERS}
    assert len(by) == len(wl.RESNET18_LAYERS) == 21
    assert (by["conv1"].out_h, by["conv1"].out_w) == (112, 112)
    for stage, size in ((2, 56), (3, 28), (4, 14), (5, 7)):
        convs = [s for s in wl.RESNET18_LAYERS if s.name.startswith(f"conv{stage}_")]
        assert len(convs) == (4 if stage == 2 else 5)
        assert {(s.out_h, s.out_w) for s in convs} == {(size, size)}
    assert by["conv3_ds"] == wl.ConvShape("conv3_ds", 56, 56, 64, 1, 1, 128, 2, 0)
    assert by["conv5_2b"].c == by["conv5_2b"].f == 512
    assert wl.RESNET18_CONV2_X_NOPAD.out_h == 54
    # 3×3 and 7×7 convs plus projections: 1.8 GFLOPs in the paper counts multiply-adds
    gmacs = sum(s.macs for s in wl.RESNET18_LAYERS) / 1e9
    assert 1.8 < gmacs < 1.85


@pytest.mark.parametrize("shape", [s for s in wl.RESNET18_LAYERS if s.name in
                                   ("conv1", "conv3_1a", "conv4_ds", "conv5_2b", "fc")]
                         + [wl.RESNET18_CONV2_X_NOPAD])
def test_conv_from_shape_scaled(shape):
    p = wl.conv_from_shape(shape, seed=1, scale=0.1)
    h, w, c = p.meta["image"]
    x = p.x.toarray() if sp.issparse(p.x) else p.x
    img = x[:h * w, :c].reshape(h, w, c)          # first tap block of the block diagonal
    ker = p.w.reshape(shape.kh, shape.kw, c, -1)
    want = naive.conv2d(img, ker, stride=shape.stride, padding=shape.padding)
    np.testing.assert_array_equal(as_image(p, p.meta["out_h"], p.meta["out_w"]), want)
    assert p.meta["stride"] == (shape.stride, shape.stride)
    q = wl.conv_from_shape(shape, seed=1, scale=0.1)
    np.testing.assert_array_equal(q.w, p.w)


def test_conv_from_shape_full_size_conv2_x():
    p = wl.conv_from_shape(wl.RESNET18_LAYERS[1], seed=0)
    assert (p.o, p.h) == (56 * 56, 64) and p.gather.taps == 9
    assert p.a.nnz == 56 * 56 * 9 - 4 * 56 * 3 + 4        # padding removes the border taps
    with pytest.raises(WorkloadError, match="1.5"):
        wl.conv_from_shape(wl.RESNET18_LAYERS[1], scale=1.5)


# ------------------------------------------------------------------ registry

def test_registry():
    for name in ("gcn-cora-like", "gat-cora-like", "resnet18-conv2_x", "resnet18-conv2_x-nopad",
                 "resnet18-conv1", "resnet18-conv5_ds", "gcn-cora-like-2layer"):
        assert name in wl.WORKLOADS
    assert wl.DEFAULT_WORKLOAD == "gcn-cora-like"
    (p,) = wl.get_workload("gcn-cora-like")
    assert p.h == 16 and p.o == 2708
    (p,) = wl.get_workload("resnet18-conv2_x-nopad")
    assert (p.meta["out_h"], p.meta["out_w"], p.h) == (54, 54, 64)
    l1, l2 = wl.get_workload("gcn-cora-like-2layer")
    assert l2.c == 16 and l2.h == 7
    with pytest.raises(WorkloadError, match="'nope'.*gcn-cora-like"):
        wl.get_workload("nope")


def test_registry_real_graphs():
    if not (data_dir() / "planetoid" / "cora_adj.npz").is_file():
        msg = f"data folder {data_dir()} missing"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    (p,) = wl.get_workload("gcn-cora")
    assert (p.o, p.c, p.h) == (2708, 1433, 16) and p.a.nnz == 10556 + 2708
    assert p.meta["quant_rel_error"] < 0.04
    (p,) = wl.get_workload("gcn-pubmed")
    assert (p.o, p.c) == (19717, 500) and p.meta["quant_rel_error"] < 0.04
