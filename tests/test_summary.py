"""Tests of reports.summary: sections, numbers taken from the stats, one glossary."""

import re

import numpy as np
import scipy.sparse as sp

from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.problem import make_problem
from accel.runner import evaluate
from reports.summary import GLOSSARY, render_summary, write_summary

CFG = HardwareConfig(rows=4, cols=4, lmem_depth=64, out_bank_depth=64, dram_latency_cycles=4)
SECTIONS = ("## What ran", "## Hardware", "## Results", "## Phases",
            "## Stall row-cycles by cause", "## Off-chip bytes per tensor", "## Glossary")


def run_stats(n_layers=1):
    rng = np.random.default_rng(0)
    k = make_contract("exact", 8, 32)
    probs = []
    for i in range(n_layers):
        a = sp.random(12, 10, density=0.3, random_state=i, format="csr",
                      data_rvs=lambda m: rng.integers(-9, 10, m))
        probs.append(make_problem(a, rng.integers(-9, 10, (10, 5)), rng.integers(-9, 10, (5, 3)),
                                  k, f"p{i + 1}"))
    return evaluate(probs, CFG).stats


def row(md, label):
    """Cells of the table row whose first cell is ``label``."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r}")


def test_sections_in_order_and_glossary_defines_each_metric_once():
    md = render_summary(run_stats(), CFG)
    pos = [md.index(s) for s in SECTIONS]
    assert pos == sorted(pos)
    for term, _ in GLOSSARY:
        assert len(re.findall(rf"^- \*\*{re.escape(term)}\*\*:", md, re.M)) == 1, term
    assert "useful MACs / (rows · cols · cycles)" in md
    assert "mean / max busy cycles over PE rows" in md


def test_numbers_come_from_the_stats():
    s = run_stats()
    md = render_summary(s, CFG)
    assert row(md, "cycles") == [f"{s['cycles']:,}"]
    assert row(md, "utilization") == [f"{100 * s['utilization']:.1f} %"]
    assert row(md, "mapping efficiency") == [f"{100 * s['mapping_efficiency']:.1f} %"]
    assert row(md, "balance") == [f"{s['balance']:.3f}"]
    assert row(md, "rows") == ["4"] and row(md, "lmem_depth") == ["64"]
    for cause, v in s["stall_row_cycles"].items():
        assert row(md, cause) == [f"{v:,}"]
    assert "bit-exact: yes" in md


def test_hand_made_phase_utilization():
    s = run_stats()
    s["layers"][0]["phases"] = [{"phase": "p0:X·W", "first_cycle": 0, "end_cycle": 99,
                                 "cycles": 100, "useful_macs": 800}]
    md = render_summary(s, CFG)
    # 800 useful MACs over 4·4 PEs · 100 cycles
    assert "| 1 | `p0:X·W` | 0 | 99 | 100 | 800 | 50.0 % |" in md


def test_several_layers_get_a_column_each_and_a_total():
    s = run_stats(2)
    md = render_summary(s, CFG)
    assert "| metric | layer 1 | layer 2 | total |" in md
    l1, l2 = s["layers"]
    assert row(md, "cycles") == [f"{l1['cycles']:,}", f"{l2['cycles']:,}", f"{s['cycles']:,}"]


def test_not_bit_exact_is_flagged():
    s = run_stats()
    s["bit_exact"] = False
    s["layers"][0].update(bit_exact=False, mismatches=3,
                          first_mismatch={"row": 1, "col": 0, "sim": 5, "ref": 4})
    md = render_summary(s, CFG)
    assert "bit-exact: **NO**" in md
    assert "layer 1: 3 elements differ" in md


def test_write_summary_writes_the_rendered_page(tmp_path):
    s = run_stats()
    write_summary(s, CFG, tmp_path / "sub" / "summary.md")
    assert (tmp_path / "sub" / "summary.md").read_text() == render_summary(s, CFG)
