"""Tests of accel.dse and `accel dse`: space parsing, the sweep table, Pareto fronts,
parallel and Dask runs, and resuming a sweep killed with SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from accel.cli import main
from accel.contract import make_contract
from accel.dse import DseError, expand_space, load_space, pareto_mask, sweep
from accel.problem import make_problem

from conftest import in_ci

SPACE = {"rows": [2, 4], "cols": [2, 4], "dram_bytes_per_cycle": [4, 32],
         "lmem_depth": 64, "out_bank_depth": 64, "dram_latency_cycles": 4}


def _problem():
    rng = np.random.default_rng(3)
    a = sp.random(60, 50, density=0.08, random_state=3, format="csr",
                  data_rvs=lambda m: rng.integers(-9, 10, m))
    return make_problem(a, rng.integers(-9, 10, (50, 9)), rng.integers(-9, 10, (9, 6)),
                        make_contract("exact", 8, 32), "small")


def test_space_is_strict_and_names_the_field(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("rows = [4, 8]\nrowz = [1]\n")
    with pytest.raises(DseError, match="rowz"):
        load_space(p)
    p.write_text("rows = [4, 8]\ncols = 4\npreset = \"tiny\"\n")
    swept, cfgs, bad = expand_space(load_space(p))
    assert swept == ["rows"] and [c.rows for c in cfgs] == [4, 8]
    assert all(c.cols == 4 and c.lmem_depth == 64 for c in cfgs)   # tiny's depth kept


def test_cross_product_skips_invalid_points():
    swept, cfgs, bad = expand_space({"operand_bits": [8, 16], "acc_bits": [16, 32]})
    assert len(cfgs) == 3 and len(bad) == 1 and "acc_bits" in bad[0]


def test_pareto_mask_hand_example():
    m = pareto_mask([1, 2, 3, 2, 1], [5, 3, 1, 4, 6])
    assert m.tolist() == [True, True, True, False, False]


def test_sweep_table_and_verify_all(tmp_path):
    rows = sweep(_problem(), SPACE, out_dir=tmp_path, verify="all")
    assert len(rows) == 8
    assert all(r["simulated"] and r["cycles_sim"] > 0 for r in rows)
    errs = [abs(r["model_error"]) for r in rows]
    assert np.median(errs) <= 0.10
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8
    for k in ("config_id", "rows", "cols", "dram_bytes_per_cycle", "cycles_model", "cycles_sim",
              "utilization_model", "offchip_bytes_model", "energy_uj_model", "lut", "bram",
              "fits_device"):
        assert k in table[0]
    # the area axis is the calibrated resource model, and the summary states its error
    from reports.resources import estimate_resources
    cfg0 = expand_space(SPACE)[1][0]
    r0 = next(r for r in rows if r["config_id"] == cfg0.id)
    est = estimate_resources(cfg0)
    assert (r0["lut"], r0["dsp"], r0["bram"], r0["fits_device"]) == \
        (est["lut"], est["dsp"], est["bram"], est["fits_device"])
    s = sweep.last_summary
    assert s["resources_calibrated"] is True
    assert s["points_fitting_device"] == sum(r["fits_device"] for r in rows)
    assert 0 <= s["resources_error_loo"]["lut"]["median"] <= s["resources_error_loo"]["lut"]["max"]
    assert (tmp_path / "pareto_energy.png").stat().st_size > 1000
    assert (tmp_path / "pareto_resources.png").stat().st_size > 1000


def test_verify_pareto_simulates_only_the_front(tmp_path):
    rows = sweep(_problem(), SPACE, verify="pareto")
    for r in rows:
        assert r["simulated"] == (r["pareto_energy"] or r["pareto_resources"])


def test_jobs_equal_serial(tmp_path):
    a = sweep(_problem(), SPACE, verify="all", jobs=1)
    b = sweep(_problem(), SPACE, verify="all", jobs=2)
    assert [r["cycles_sim"] for r in a] == [r["cycles_sim"] for r in b]


def test_dask_local_cluster_equals_serial():
    try:
        from distributed import LocalCluster
    except ImportError:
        if in_ci():
            pytest.fail("dask[distributed] not installed", pytrace=False)
        pytest.skip("dask[distributed] not installed")
    a = sweep(_problem(), SPACE, verify="all")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        b = sweep(_problem(), SPACE, verify="all", scheduler=cluster.scheduler_address)
    assert [r["cycles_sim"] for r in a] == [r["cycles_sim"] for r in b]


def _lines(path: Path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_killed_sweep_resumes_with_nothing_lost_or_repeated(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("rows = [2, 4, 8]\ncols = [4, 8]\ndram_bytes_per_cycle = [8, 32, 64]\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "accel", "dse", "--space", str(space), "--out", str(out),
           "--verify", "all", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sim = out / "sim.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120:
        if sim.exists() and len(sim.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"sweep ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = sim.read_text()
    done_before = {r["config_id"] for r in _lines(sim)}
    assert 3 <= len(done_before) < 18
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    after = sim.read_text()
    assert after.startswith(before.rstrip("\n"))          # nothing rewritten
    ids = [x["config_id"] for x in _lines(sim)]
    assert len(ids) == len(set(ids)) == 18                # nothing repeated, nothing lost
    pts = [x["config_id"] for x in _lines(out / "points.jsonl")]
    assert len(pts) == len(set(pts)) == 18
    assert "simulated    18 points" in r.stdout
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 18


def test_cli_dse_errors(tmp_path, capsys):
    s = tmp_path / "s.toml"
    s.write_text("rows = [4]\nbogus = 1\n")
    assert main(["dse", "--space", str(s), "--out", str(tmp_path / "o")]) == 2
    assert "bogus" in capsys.readouterr().err


def test_model_records_equal_evaluate():
    from accel.model import evaluate, problem_stats
    rows = sweep(_problem(), SPACE, verify="none")
    st = problem_stats(_problem())
    _, cfgs, _ = expand_space(SPACE)
    by_id = {r["config_id"]: r for r in rows}
    for c in cfgs:
        m = evaluate(st, c)
        assert by_id[c.id]["cycles_model"] == round(m.cycles, 1)
        assert by_id[c.id]["offchip_bytes_model"] == round(m.offchip_bytes)
        assert by_id[c.id]["useful_macs"] == m.useful_macs
    assert sweep.last_summary["model_points_evaluated"] == len(cfgs)


def test_writeback_vectors_change_the_resources_and_the_cycles():
    """Points that differ only in wb_vectors get their own resource estimate (a smaller
    writeback) and their own schedule (more writeback steps)."""
    space = {"rows": 4, "cols": 4, "wb_vectors": [0, 1], "lmem_depth": 64,
             "out_bank_depth": 64, "dram_bytes_per_cycle": 256, "dram_latency_cycles": 4}
    full, one = sorted(sweep(_problem(), space, verify="all"), key=lambda r: -r["lut"])
    assert full["lut"] > one["lut"]
    assert full["cycles_sim"] < one["cycles_sim"]
    assert full["cycles_model"] < one["cycles_model"]


def test_cora1000_space_file():
    root = Path(__file__).resolve().parents[1]
    swept, cfgs, bad = expand_space(load_space(root / "bench" / "spaces" / "cora1000.toml"))
    assert len(cfgs) == 1000 and not bad
    assert set(swept) == {"rows", "cols", "lmem_depth", "dram_bytes_per_cycle",
                          "dram_latency_cycles"}
