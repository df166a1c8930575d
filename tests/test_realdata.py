"""Real data through the whole stack: compile + simulate bit-exact against accel.reference
on HardwareConfig() and a 16×16 array (GCN on the Planetoid graphs and as20graph, karate
and bcsstk13 as A, scaled-down layers of the SCALE-Sim CNN tables).

The data folder is required: missing data fails in CI and skips elsewhere (conftest)."""

import numpy as np
import pytest
import scipy.sparse as sp

import naive
from accel import loaders as ld
from accel import workloads as wl
from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig, preset
from accel.problem import make_problem
from accel.reference import reference
from sim.engine import simulate
from contract_suite import assert_ints_equal, wrap_int

CONFIGS = {"default": HardwareConfig(), "16x16": preset("array16")}


def check_bit_exact(problem, label, orders=("auto",)):
    """Y of every config (and order) equals the reference; returns the simulated cycles."""
    cycles = {}
    for cname, cfg in CONFIGS.items():
        for order in orders:
            prog = compile_problem(problem, cfg, order)
            res = simulate(prog, build_memory(problem, prog))
            y = res.memory[prog.tensor_id("Y")]
            assert_ints_equal(y, reference(problem, prog.meta["order"]),
                              f"{label} on {cname} order={prog.meta['order']} "
                              f"(o, n, c, h)=({problem.o}, {problem.n}, {problem.c}, {problem.h})")
            assert res.stats["useful_macs"] == prog.meta["useful_macs_by_order"][prog.meta["order"]]
            cycles[cname, order] = res.cycles
    return cycles


@pytest.mark.parametrize("name", ld.PLANETOID_NAMES)
def test_gcn_layer1_planetoid(name, need_data):
    need_data(f"planetoid/{name}_adj.npz")
    p = ld.load_planetoid(name)
    problem = wl.gcn_layer(p.adj, p.matched_features(seed=0), hidden=16, name=f"gcn-{name}")
    assert problem.o == problem.n == p.nodes and problem.h == 16
    cycles = check_bit_exact(problem, name)
    # 4× the PEs must not be slower
    assert cycles["16x16", "auto"] < cycles["default", "auto"]


def test_gcn_layer1_as20graph_with_density_matched_features(need_data):
    need_data("other/as20graph_adj.npz")
    need_data("planetoid/cora_features.npz")
    adj = ld.load_other("as20graph")
    density = ld.load_planetoid("cora").feature_density     # Cora's binary feature density
    x = ld.density_matched_features(adj.shape[0], 256, density, seed=1)
    assert x.nnz == round(adj.shape[0] * 256 * density)
    problem = wl.gcn_layer(adj, x, hidden=16, name="gcn-as20graph")
    check_bit_exact(problem, "as20graph", orders=("a(xw)", "(ax)w"))


def test_karate_as_gcn_adjacency(need_data):
    need_data("other/karate.mtx")
    adj = ld.load_other("karate")
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (adj.shape[0], 12))
    problem = wl.gcn_layer(adj, x, hidden=7, name="gcn-karate")
    check_bit_exact(problem, "karate", orders=("a(xw)", "(ax)w"))


def test_bcsstk13_pattern_as_a(need_data):
    # the stiffness values span 1e-23 .. 1e12, so keep the pattern and draw int8 values
    # (never 0, so nnz is the real one); X dense, W small
    need_data("other/bcsstk13.mtx.gz")
    m = ld.load_other("bcsstk13")
    rng = np.random.default_rng(3)
    vals = rng.integers(1, 128, m.nnz) * np.where(m.data < 0, -1, 1)
    a = sp.csr_matrix((vals, m.indices, m.indptr), shape=m.shape)
    problem = make_problem(a, rng.integers(-128, 128, (m.shape[1], 16)),
                           rng.integers(-128, 128, (16, 8)), wl.default_contract(), "bcsstk13")
    assert problem.a.nnz == m.nnz == 83883
    check_bit_exact(problem, "bcsstk13", orders=("a(xw)", "(ax)w"))


def _scaled(layer: ld.ConvLayer, scale: float, seed: int):
    shape = wl.ConvShape(layer.name, layer.ifmap_h, layer.ifmap_w, layer.channels,
                         layer.filter_h, layer.filter_w, layer.filters, layer.stride, 0)
    return wl.conv_from_shape(shape, seed=seed, scale=scale)


@pytest.mark.parametrize("table,layer,scale", [
    ("Resnet18", "Conv1", 0.15),        # 7×7 stride 2
    ("alexnet", "Conv2", 0.25),         # 5×5, 24 channels, 64 filters
    ("mobilenet", "Conv3", 0.15),       # 1×1 pointwise
])
def test_cnn_table_layers(table, layer, scale, need_data):
    need_data(f"cnn/{table}.csv")
    rows = {lay.name: lay for lay in ld.load_cnn_table(table)}
    problem = _scaled(rows[layer], scale, seed=4)
    check_bit_exact(problem, f"{table}/{layer}")
    if table == "Resnet18":   # small enough for the direct model as well
        m = problem.meta
        img = problem.x[:m["image"][0] * m["image"][1], :m["image"][2]]
        img = (img.toarray() if sp.issparse(img) else img).reshape(m["image"])
        ker = problem.w.reshape(m["kernel"])
        want = naive.conv2d(img, ker, stride=m["stride"], padding=m["padding"])
        want = np.vectorize(lambda v: wrap_int(int(v), 32))(want).reshape(-1, want.shape[-1])
        assert_ints_equal(reference(problem), want, f"{table}/{layer} vs naive.conv2d")
