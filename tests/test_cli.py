"""Tests of accel.cli: runs in-process and as a process, one-line errors, exit codes, no output."""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sp

import naive
import sim
from accel.cli import main
from accel.workloads import power_law_graph

RUN_FILES = {"output.npy", "stats.json", "config.json", "summary.md"}
TINY = ["--rows", "4", "--cols", "4"]


def rand_int(rng, shape, lo=-20, hi=20):
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def files_under(folder):
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def assert_nothing_written(folder):
    assert not folder.exists() or not files_under(folder), files_under(folder)


def stats_of(folder):
    return json.loads((folder / "stats.json").read_text())


@pytest.fixture
def operands(tmp_path):
    """A (sparse, .npz), X (.npy), W (.mtx) and the exact Y = A·X·W."""
    rng = np.random.default_rng(7)
    a = sp.random(19, 13, density=0.3, random_state=7, format="csr",
                  data_rvs=lambda k: rng.integers(-20, 21, k)).astype(np.int16)
    x = rand_int(rng, (13, 5)).astype(np.float64)   # integer-valued floats are taken as is
    w = rand_int(rng, (5, 6)).astype(np.int32)
    paths = {"a": tmp_path / "A.npz", "x": tmp_path / "X.npy", "w": tmp_path / "W.mtx"}
    sp.save_npz(paths["a"], a)
    np.save(paths["x"], x)
    sio.mmwrite(str(paths["w"]), w)
    y = a.toarray().astype(np.int64) @ x.astype(np.int64) @ w.astype(np.int64)
    return paths, y


def generic_args(paths):
    return ["--a", str(paths["a"]), "--x", str(paths["x"]), "--w", str(paths["w"])]


def run_bad(tmp_path, capsys, args):
    """Run ``accel run ARGS --out DIR``; check exit 2, one stderr line, nothing written."""
    out = tmp_path / "out"
    rc = main(["run", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("accel: error: "), err
    assert_nothing_written(out)
    return err


# ------------------------------------------------------------------ successful runs

def test_default_run_is_a_bit_exact_two_layer_gcn(tmp_path, capsys):
    out = tmp_path / "default"
    assert main(["run", "--out", str(out)]) == 0
    assert RUN_FILES | {"layer1_output.npy", "layer2_output.npy", "layer1/program.npz",
                        "layer2/program.json"} <= files_under(out)
    s = stats_of(out)
    assert s["bit_exact"] is True and s["name"] == "gcn-cora-like" and len(s["layers"]) == 2
    assert np.load(out / "output.npy").shape == (2708, 7)
    assert s["utilization"] == pytest.approx(s["useful_macs"] / (8 * 8 * s["cycles"]), rel=1e-12)
    printed = capsys.readouterr().out
    assert str(out) in printed and f"{s['cycles']:,}" in printed and "bit_exact    true" in printed


def test_generic_files_of_every_format(tmp_path, operands):
    paths, y = operands
    out = tmp_path / "run"
    assert main(["run", *generic_args(paths), *TINY, "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out / "output.npy"), y)
    got = files_under(out)
    report = {f for f in got if f.startswith("report/")}
    assert {"report/report.html", "report/report.md"} <= report
    assert RUN_FILES | {"program/program.npz", "program/program.json"} == got - report
    s = stats_of(out)
    assert s["layers"][0]["problem"]["o"] == 19 and s["bit_exact"]
    assert json.loads((out / "config.json").read_text())["rows"] == 4


def test_default_out_dir_is_named_after_the_inputs(tmp_path, operands, monkeypatch):
    paths, _ = operands
    monkeypatch.chdir(tmp_path)
    assert main(["run", *generic_args(paths), *TINY]) == 0
    assert RUN_FILES <= files_under(tmp_path / "runs" / "A-X-W")


def test_hardware_from_toml_with_overrides_and_forced_order(tmp_path, operands):
    paths, y = operands
    toml = tmp_path / "hw.toml"
    toml.write_text('preset = "tiny"\nlmem_depth = 32\n')
    out = tmp_path / "run"
    assert main(["run", *generic_args(paths), "--config", str(toml), "--cols", "2",
                 "--dram-bytes-per-cycle", "8", "--order", "(ax)w", "--stall-permille", "100",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["rows"], cfg["cols"], cfg["lmem_depth"], cfg["dram_bytes_per_cycle"]) == \
        (4, 2, 32, 8)
    s = stats_of(out)
    assert s["order"] == "(ax)w" and s["stall_permille"] == 100 and s["memory_stall_cycles"] > 0
    np.testing.assert_array_equal(np.load(out / "output.npy"), y)


@pytest.mark.parametrize("transposed", [False, True])
def test_conv2d_matches_a_direct_convolution(tmp_path, transposed):
    rng = np.random.default_rng(3)
    image = rand_int(rng, (7, 6, 4))
    # groups 2: (KH, KW, C/groups, F) for conv2d, (KH, KW, C, F/groups) transposed
    kernel = rand_int(rng, (3, 3, 4, 2) if transposed else (3, 3, 2, 4))
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "k.npy", kernel)
    out = tmp_path / "run"
    argv = ["run", "--conv2d", "--image", str(tmp_path / "img.npy"), "--kernel",
            str(tmp_path / "k.npy"), "--stride", "2", "--padding", "1,0", "--dilation", "1,2",
            "--groups", "2", *TINY, "--out", str(out)] + (["--transposed"] if transposed else [])
    model = naive.conv_transpose2d if transposed else naive.conv2d
    want = model(image, kernel, stride=2, padding=(1, 0), dilation=(1, 2), groups=2)
    assert main(argv) == 0
    np.testing.assert_array_equal(np.load(out / "output.npy").reshape(want.shape), want)
    s = stats_of(out)
    assert s["bit_exact"] and s["layers"][0]["problem"]["o"] == want.shape[0] * want.shape[1]
    kind = "conv_transpose2d" if transposed else "conv2d"
    assert s["name"] == f"{kind}-img-k"


def test_named_workload(tmp_path):
    out = tmp_path / "fc"
    assert main(["run", "--workload", "resnet18-fc", "--out", str(out)]) == 0
    s = stats_of(out)
    assert s["name"] == "fc" and s["bit_exact"] and np.load(out / "output.npy").shape == (1, 1000)


@pytest.mark.parametrize("workload,layers", [("gcn", 1), ("gcn-2layer", 2)])
def test_gcn_on_a_graph_file(tmp_path, workload, layers):
    sp.save_npz(tmp_path / "g.npz", power_law_graph(50, 200, seed=2))
    out = tmp_path / "run"
    assert main(["run", "--workload", workload, "--graph", str(tmp_path / "g.npz"),
                 "--features", "24", "--feature-density", "0.1", *TINY, "--out", str(out)]) == 0
    s = stats_of(out)
    assert len(s["layers"]) == layers and s["bit_exact"]
    assert s["layers"][0]["problem"]["c"] == 24
    assert np.load(out / "output.npy").shape == (50, 16 if layers == 1 else 7)


def test_python_dash_m_accel_in_a_subprocess(tmp_path, operands):
    paths, y = operands
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "accel", "run", *generic_args(paths), *TINY,
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "bit_exact    true" in proc.stdout
    np.testing.assert_array_equal(np.load(out / "output.npy"), y)


# ------------------------------------------------------------------ results that differ

def test_not_bit_exact_exits_3_after_writing(tmp_path, operands, monkeypatch, capsys):
    original = sim.simulate

    def corrupt(program, memory, **kw):
        res = original(program, memory, **kw)
        res.memory[program.tensor_id("Y")][0, 0] += 1
        return res
    monkeypatch.setattr(sim, "simulate", corrupt)
    paths, _ = operands
    out = tmp_path / "run"
    assert main(["run", *generic_args(paths), *TINY, "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not bit-exact" in err and str(out) in err
    assert "first at (0, 0)" in err
    assert RUN_FILES <= files_under(out) and stats_of(out)["bit_exact"] is False


# ------------------------------------------------------------------ bad input

def test_nan_in_x(tmp_path, operands, capsys):
    paths, _ = operands
    x = np.load(paths["x"])
    x[4, 2] = np.nan
    np.save(paths["x"], x)
    err = run_bad(tmp_path, capsys, generic_args(paths))
    assert str(paths["x"]) in err and "nan" in err and "(4, 2)" in err


def test_fraction_in_w(tmp_path, operands, capsys):
    paths, _ = operands
    w = np.ones((5, 6))
    w[3, 1] = 3.5
    np.save(tmp_path / "W.npy", w)
    paths["w"] = tmp_path / "W.npy"
    err = run_bad(tmp_path, capsys, generic_args(paths))
    assert str(paths["w"]) in err and "3.5" in err and "(3, 1)" in err


def test_a_value_outside_s8(tmp_path, operands, capsys):
    paths, _ = operands
    a = sp.load_npz(paths["a"]).tolil()
    a[2, 3] = 300
    sp.save_npz(paths["a"], a.tocsr())
    err = run_bad(tmp_path, capsys, generic_args(paths))
    assert str(paths["a"]) in err and "300" in err and "(2, 3)" in err and "s8" in err


def test_shape_mismatch(tmp_path, operands, capsys):
    paths, _ = operands
    np.save(tmp_path / "W.npy", np.ones((4, 6)))
    paths["w"] = tmp_path / "W.npy"
    err = run_bad(tmp_path, capsys, generic_args(paths))
    assert str(paths["x"]) in err and str(paths["w"]) in err and "(13, 5)" in err


def test_unknown_config_key(tmp_path, operands, capsys):
    paths, _ = operands
    toml = tmp_path / "hw.toml"
    toml.write_text("rows = 4\nbanana = 1\n")
    err = run_bad(tmp_path, capsys, [*generic_args(paths), "--config", str(toml)])
    assert str(toml) in err and "banana" in err


def test_rows_zero(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, ["--rows", "0"])
    assert "rows" in err and "got 0" in err


def test_missing_file(tmp_path, operands, capsys):
    paths, _ = operands
    paths["a"] = tmp_path / "nope.mtx"
    err = run_bad(tmp_path, capsys, generic_args(paths))
    assert str(paths["a"]) in err and "not found" in err


def test_bad_image_value_names_the_image_file(tmp_path, capsys):
    image = np.zeros((4, 4, 2))
    image[1, 2, 0] = -129
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "k.npy", np.ones((2, 2, 2, 3)))
    err = run_bad(tmp_path, capsys, ["--conv2d", "--image", str(tmp_path / "img.npy"),
                                     "--kernel", str(tmp_path / "k.npy")])
    assert str(tmp_path / "img.npy") in err and "-129" in err and "(1, 2, 0)" in err


def test_bad_graph_names_the_graph_file(tmp_path, capsys):
    g = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))   # not symmetric
    sp.save_npz(tmp_path / "g.npz", g)
    err = run_bad(tmp_path, capsys, ["--workload", "gcn", "--graph", str(tmp_path / "g.npz")])
    assert str(tmp_path / "g.npz") in err and "symmetric" in err


def test_unknown_workload(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, ["--workload", "nope"])
    assert "'nope'" in err and "gcn-cora-like" in err


@pytest.mark.parametrize("args", [
    ["--order", "xa(w)"],
    ["--a", "A.npy"],
    ["--stride", "2"],
    ["--conv2d", "--image", "i.npy"],
    ["--workload", "gcn-cora-like", "--conv2d"],
    ["--graph", "g.npz"],
    ["--workload", "gat-cora-like", "--graph", "g.npz"],
    ["--rows", "four"],
    ["--out-shift", "3"],
])
def test_bad_flags_are_usage_errors(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as e:
        main(["run", *args, "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "usage: accel run" in capsys.readouterr().err
    assert_nothing_written(tmp_path / "out")


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
