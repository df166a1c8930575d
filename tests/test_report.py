"""Tests of reports.report, reports.energy and `accel report`: numbers, files, and the HTML
in headless Chromium (fails, not skips, in CI when Chromium is missing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

from accel.cli import main
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.runner import run_problems
from reports.energy import (ENERGY_PARTS, EnergyTableError, compulsory_bytes, counts_from_stats,
                            default_energy_table, energy_from_counts, load_energy_table,
                            stats_extras)
from reports.report import CAUSES, GLOSSARY, latency_breakdown, pe_macs, write_report

from conftest import in_ci

CFG_A = HardwareConfig(rows=4, cols=4, lmem_depth=64, out_bank_depth=64, dram_latency_cycles=4)
CFG_B = CFG_A.with_(rows=2, cols=8, dram_bytes_per_cycle=8)


def _problem(seed=0):
    from accel.problem import make_problem
    rng = np.random.default_rng(seed)
    a = sp.random(40, 30, density=0.15, random_state=seed, format="csr",
                  data_rvs=lambda m: rng.integers(-9, 10, m))
    return make_problem(a, rng.integers(-9, 10, (30, 11)), rng.integers(-9, 10, (11, 5)),
                        make_contract("exact", 8, 32), "tiny")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = []
    for name, cfg in (("a", CFG_A), ("b", CFG_B)):
        res = run_problems(_problem(), cfg, out_dir=base / name)
        out.append(res)
    return base, out


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    base, _ = runs
    out = tmp_path_factory.mktemp("report")
    write_report([base / "a", base / "b"], out)
    return out


def test_latency_causes_sum_to_cycles(runs):
    for res in runs[1]:
        parts = latency_breakdown(res.stats, res.config.rows, res.config.cols)
        assert list(parts) == [c for c, _ in CAUSES]
        assert sum(parts.values()) == pytest.approx(res.stats["cycles"], rel=1e-12)
        assert all(v >= 0 for v in parts.values())


def test_pe_macs_sum_to_useful_macs_and_rows_to_busy(runs):
    for res in runs[1]:
        prog = res.layers[0].program
        m = pe_macs(prog)
        assert m.shape == (res.config.rows, res.config.cols)
        assert m.sum() == res.stats["useful_macs"]
        # column 0 multiplies on every issued element: its MACs are the row's busy cycles
        assert m[:, 0].tolist() == res.stats["busy_cycles_per_row"]


def test_energy_is_counts_times_table():
    t = default_energy_table()
    assert "Horowitz" in t.source and "ISSCC 2014" in t.source
    cfg = HardwareConfig()
    counts = dict(useful_macs=10, lmem_reads=10, lmem_writes=2, out_bank_reads=1,
                  out_bank_writes=3, stream_fifo_writes=0, load_fifo_writes=0, offchip_bytes=5)
    e = energy_from_counts(counts, cfg, t)
    assert e["mac"] == pytest.approx(10 * t.mac_pj)
    assert e["local_memory"] == pytest.approx(12 * 32 * t.lmem_pj_per_bit)
    assert e["buffers"] == pytest.approx(4 * 32 * t.bank_pj_per_bit)
    assert e["dram"] == pytest.approx(40 * t.dram_pj_per_bit)
    assert e["total"] == pytest.approx(sum(e[p] for p in ENERGY_PARTS))


def test_energy_table_is_strict(tmp_path):
    p = tmp_path / "e.toml"
    good = (tmp_path / "g.toml")
    src = load_energy_table().to_dict()
    good.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in src.items()))
    assert load_energy_table(good) == load_energy_table()
    p.write_text(good.read_text() + "\nsram_pj = 1.0\n")
    with pytest.raises(EnergyTableError, match="unknown key.*sram_pj"):
        load_energy_table(p)
    p.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in src.items() if k != "mac_pj"))
    with pytest.raises(EnergyTableError, match="missing key.*mac_pj"):
        load_energy_table(p)


def test_compulsory_bytes_and_stats_extras(runs):
    res = runs[1][0]
    prog = res.layers[0].program
    comp = compulsory_bytes(prog.tensors, res.config)
    names = {t["name"]: t for t in prog.tensors}
    assert comp["Y"] == 40 * 5 * 4          # o × h written once, s32
    assert comp["W0"] == 11 * 5             # c × h once, s8
    assert all(comp[n] == 0 for n, t in names.items() if t["kind"] == "intermediate")
    ex = stats_extras(res.stats["layers"][0], prog.tensors, res.config)
    assert ex["traffic"]["bytes"] == res.stats["offchip_bytes"]
    assert ex["traffic"]["bytes"] >= ex["traffic"]["compulsory_bytes"]
    e = energy_from_counts(counts_from_stats(res.stats["layers"][0]), res.config)
    assert ex["energy_pj"]["total"] == pytest.approx(e["total"])


def test_report_files_tables_and_glossary(report, runs):
    names = {p.name for p in report.iterdir()}
    for f in ("report.html", "report.md", "report.json", "latency_breakdown.png",
              "latency_phases.png", "busy_rows.png", "roofline.png", "traffic.png",
              "energy.png", "heatmap_1.png", "heatmap_2.png"):
        assert f in names
    md = (report / "report.md").read_text()
    data = json.loads((report / "report.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["a", "b"]
    for r, res in zip(data["runs"], runs[1]):
        assert r["cycles"] == res.stats["cycles"]
        # ratios of sums
        assert r["utilization"] == pytest.approx(
            res.stats["useful_macs"] / (res.config.pes * res.stats["cycles"]))
        assert r["traffic_over_compulsory"] == pytest.approx(
            sum(v[0] for v in r["traffic_per_tensor"].values())
            / sum(v[1] for v in r["traffic_per_tensor"].values()))
        # the resource model's estimate of the run's core, and the latency at its Fmax
        from reports.resources import estimate_resources
        est = estimate_resources(res.config)
        assert {k: r["fpga"][k] for k in est} == est
        assert r["fpga"]["latency_us_at_fmax"] == pytest.approx(r["cycles"] / est["fmax_mhz"])
    assert "## FPGA resources (model)" in md and "leave-one-out error LUT" in md
    terms = [t for t, _ in GLOSSARY]
    assert len(terms) == len(set(terms))
    assert "## Glossary" in md and "Horowitz" in md
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (report / png).is_file()


def test_cli_report(runs, tmp_path, capsys):
    base, _ = runs
    assert main(["report", str(base / "a"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")]) == 2
    assert "not a run folder" in capsys.readouterr().err


_CHECK = """<script>
window.__axwErrors = [];
window.addEventListener('error', e => window.__axwErrors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
  const pre = document.createElement('pre');
  pre.id = 'axw-check';
  pre.textContent = 'AXWCHECK ' + imgs.length + ' ' + ok + ' ' + window.__axwErrors.length;
  document.body.appendChild(pre);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (Debian package `chromium`)"
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def test_html_loads_in_headless_chromium_and_every_image_decodes(report, tmp_path):
    exe = _chromium()
    page = (report / "report.html").read_text()
    assert "src=\"data:image/png;base64," in page and "<img src=\"http" not in page
    n_img = page.count("<img ")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + _CHECK, 1))
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    m = re.search(r"AXWCHECK (\d+) (\d+) (\d+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    total, decoded, errors = map(int, m.groups())
    assert total == n_img >= 8
    assert decoded == total
    assert errors == 0
