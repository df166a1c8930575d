"""The ``accel report`` subcommand: an HTML + Markdown report of one or more run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DESCRIPTION", "add_report_arguments", "cmd_report"]

DESCRIPTION = """\
Write a report of one or more run folders (written by `accel run`) into --out:
report.html (self-contained: plots embedded), report.md (links the PNGs), report.json
(every number shown) and the PNGs. Several folders are shown side by side.

Contents: results table; latency by cause (useful compute, partial column tiles,
local-memory loading, DRAM stalls, output-bank writeback, fill/drain, imbalance) and per
phase; PE utilization heatmap (rows x cols) and busy cycles per PE row; roofline against
the config's compute and bandwidth ceilings; off-chip bytes per tensor against the
compulsory minimum; energy by part (MAC, local memory, buffers, DRAM) from a per-access
energy table (default: Horowitz, ISSCC 2014, 45 nm; override with --energy-table);
glossary.
"""


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s)")
    p.add_argument("--out", metavar="DIR", required=True, help="report folder")
    p.add_argument("--label", action="append", metavar="NAME",
                   help="label of each run, in order (default: folder names)")
    p.add_argument("--energy-table", metavar="TOML",
                   help="per-access energy table (keys as reports/data/energy_45nm.toml)")


def cmd_report(args) -> int:
    # imported on use: matplotlib is only needed by this subcommand
    from reports.energy import load_energy_table
    from reports.report import ReportError, write_report

    if args.label and len(args.label) != len(args.run_dirs):
        raise ReportError(f"--label given {len(args.label)} times for {len(args.run_dirs)} "
                          f"run folders")
    table = load_energy_table(args.energy_table) if args.energy_table else None
    written = write_report(args.run_dirs, args.out, labels=args.label, energy_table=table)
    html = next(p for p in written if p.name == "report.html")
    print(f"report       {html}")
    print(f"markdown     {Path(args.out) / 'report.md'}")
    return 0
