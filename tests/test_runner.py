"""Tests of accel.runner: outputs against the reference, stats as ratios of sums, atomic writes."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

import sim
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.problem import make_problem
from accel.reference import reference
from accel.runner import OutputDirError, evaluate, run_problems
from accel.workloads import gcn_model, power_law_graph

CFG = HardwareConfig(rows=4, cols=4, lmem_depth=64, out_bank_depth=64, dram_latency_cycles=4)
EXACT = make_contract("exact", 8, 32)


def small_problem(seed=0, o=23, n=17, c=9, h=6, name="small"):
    rng = np.random.default_rng(seed)
    a = sp.random(o, n, density=0.25, random_state=seed, format="csr",
                  data_rvs=lambda k: rng.integers(-128, 128, k))
    x = rng.integers(-128, 128, size=(n, c))
    w = rng.integers(-128, 128, size=(c, h))
    return make_problem(a, x, w, EXACT, name)


def small_gcn(seed=0):
    adj = power_law_graph(60, 240, seed=seed)
    x = sp.random(60, 12, density=0.2, random_state=seed, format="csr")
    x.data[:] = 1
    return gcn_model(adj, x, hidden=8, classes=3, seed=seed, name="gcn-small")


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def corrupting_simulate(original):
    """A simulator whose Y differs from the true one in element (1, 2)."""
    def run(program, memory, **kw):
        res = original(program, memory, **kw)
        mem = list(res.memory)
        y = program.tensor_id("Y")
        mem[y] = mem[y].copy()
        mem[y][1, 2] += 1
        return sim.SimResult(mem, res.cycles, res.stats)
    return run


def test_one_problem_writes_every_file_and_matches_the_reference(tmp_path):
    p = small_problem()
    res = run_problems(p, CFG, out_dir=tmp_path / "run")
    assert res.bit_exact
    assert files_under(tmp_path / "run") == sorted(
        ["output.npy", "program/program.npz", "program/program.json", "config.json",
         "summary.md", "stats.json"])
    y = np.load(tmp_path / "run" / "output.npy")
    assert y.dtype == np.int64 and y.shape == (p.o, p.h)
    np.testing.assert_array_equal(y, reference(p))
    assert HardwareConfig.from_json((tmp_path / "run" / "config.json").read_text()) == CFG
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["files"] == list(res.files)
    assert stats["config_id"] == CFG.id


@pytest.mark.parametrize("order", ["a(xw)", "(ax)w"])
def test_forced_order_is_recorded(tmp_path, order):
    res = run_problems(small_problem(1), CFG, order=order, out_dir=tmp_path)
    assert res.stats["order"] == order and res.stats["layers"][0]["order"] == order
    assert res.stats["order_requested"] == order and res.bit_exact


def test_stats_are_ratios_of_sums_over_layers(tmp_path):
    res = run_problems([small_problem(2, name="p1"), small_problem(3, o=40, name="p2")], CFG,
                       out_dir=tmp_path)
    s = json.loads((tmp_path / "stats.json").read_text())
    layers = s["layers"]
    assert len(layers) == 2 and s["name"] == "p1+p2"
    for key in ("cycles", "useful_macs", "pe_slot_cycles", "offchip_bytes"):
        assert s[key] == sum(l[key] for l in layers), key
    R, C = CFG.rows, CFG.cols
    for d in layers + [s]:
        assert d["utilization"] == pytest.approx(d["useful_macs"] / (R * C * d["cycles"]),
                                                 rel=1e-12)
        assert d["mapping_efficiency"] == pytest.approx(d["useful_macs"] / d["pe_slot_cycles"],
                                                        rel=1e-12)
        busy = np.asarray(d["busy_cycles_per_row"])
        assert d["balance"] == pytest.approx(busy.mean() / busy.max(), rel=1e-12)
        assert d["cycles_over_ideal"] == pytest.approx(d["cycles"] / d["ideal_cycles"], rel=1e-12)
    for l in layers:
        assert l["ideal_cycles"] == min(l["useful_macs_by_order"].values()) / (R * C)
        assert l["bit_exact"] and l["mismatches"] == 0 and l["first_mismatch"] is None
        assert {"problem", "decisions", "phases", "stall_row_cycles", "offchip_read_bytes",
                "wall_seconds"} <= set(l)
    assert s["stall_row_cycles"] == {k: sum(l["stall_row_cycles"][k] for l in layers)
                                     for k in sim.STALL_CAUSES}
    assert s["orders"] == [l["order"] for l in layers] and s["order"] == layers[-1]["order"]
    assert set(s["wall_seconds"]) == {"compile", "simulate", "reference"}
    assert res.y is res.layers[-1].y


def test_gcn_chain_feeds_the_simulated_layer1_output_to_layer2(tmp_path):
    m = small_gcn()
    res = run_problems(m, CFG, out_dir=tmp_path)
    assert res.bit_exact and len(res.layers) == 2
    y1 = reference(m.layer1())
    y2 = reference(m.layer2(y1))
    np.testing.assert_array_equal(np.load(tmp_path / "layer1_output.npy"), y1)
    np.testing.assert_array_equal(np.load(tmp_path / "layer2_output.npy"), y2)
    np.testing.assert_array_equal(np.load(tmp_path / "output.npy"), y2)
    assert {"layer1/program.npz", "layer1/program.json", "layer2/program.npz",
            "layer2/program.json"} <= set(files_under(tmp_path))
    assert not (tmp_path / "program").exists()


def test_gcn_layer2_is_built_from_the_simulated_output(monkeypatch):
    m = small_gcn()
    monkeypatch.setattr(sim, "simulate", corrupting_simulate(sim.simulate))
    res = evaluate(m, CFG)
    l1, l2 = res.layers
    np.testing.assert_array_equal(l2.problem.x, m.layer2(l1.y).x)
    assert not np.array_equal(l1.y, reference(m.layer1()))


def test_mismatch_is_recorded_and_still_written(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "simulate", corrupting_simulate(sim.simulate))
    p = small_problem()
    res = run_problems(p, CFG, out_dir=tmp_path)
    s = json.loads((tmp_path / "stats.json").read_text())
    assert not res.bit_exact and s["bit_exact"] is False
    layer = s["layers"][0]
    ref = reference(p)
    assert layer["mismatches"] == 1
    assert layer["first_mismatch"] == {"row": 1, "col": 2, "sim": int(ref[1, 2]) + 1,
                                       "ref": int(ref[1, 2])}
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "output.npy").is_file()


def test_failed_simulation_writes_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulator exploded")
    monkeypatch.setattr(sim, "simulate", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        run_problems(small_problem(), CFG, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_failure_in_a_later_layer_writes_nothing(tmp_path, monkeypatch):
    calls = []
    original = sim.simulate

    def second_fails(program, memory, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("layer 2 failed")
        return original(program, memory, **kw)
    monkeypatch.setattr(sim, "simulate", second_fails)
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(RuntimeError, match="layer 2"):
        run_problems(small_gcn(), CFG, out_dir=out)
    assert files_under(out) == []


def test_output_folder_that_is_a_file_is_an_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(OutputDirError, match="taken"):
        run_problems(small_problem(), CFG, out_dir=target)


def test_nothing_to_run_is_a_caller_bug():
    with pytest.raises(ValueError):
        evaluate([], CFG)
    with pytest.raises(TypeError, match="str"):
        evaluate(["not a problem"], CFG)
