"""The run report: latency, utilization, roofline, traffic and energy of one or more run folders.

``write_report(run_dirs, out_dir)`` writes ``report.html`` (self-contained: the plots are
embedded as PNG data URIs), ``report.md`` (links the PNGs) and the PNGs.  Several run
folders are shown side by side.  Every number is computed from the run's ``stats.json``,
``config.json`` and Program; ratios are ratios of sums.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accel.config import HardwareConfig
from accel.errors import AxwError, InputFileError
from accel.fileio import atomic_write_bytes, atomic_write_text
from accel.program import Program

from . import plots
from .energy import (ENERGY_PARTS, EnergyTable, compulsory_bytes, counts_from_stats,
                     default_energy_table, energy_from_counts)
from .resources import (DEVICE_NAME, error_text, estimate_resources, load_coefficients,
                        stated_error)
from .summary import GLOSSARY as _SUMMARY_GLOSSARY

__all__ = ["ReportError", "RunData", "load_run", "latency_breakdown", "pe_macs",
           "report_data", "render_markdown", "render_html", "write_report", "GLOSSARY",
           "CAUSES", "PLOTS"]


class ReportError(AxwError):
    """A run folder cannot be reported (missing or inconsistent files)."""


#: Latency causes, in plot order; each is cycles, and they sum to the run's cycles.
CAUSES = (
    ("useful compute", "useful MACs / (rows · cols)"),
    ("partial column tiles", "cycles PE rows spent issuing, minus useful compute: PE "
                             "columns idle because the last column tile is narrower than cols"),
    ("local-memory loading", "load stall row-cycles / rows: a PE row waits for its "
                             "stationary tile to be written into local memory"),
    ("DRAM stalls", "stream stall row-cycles / rows: a PE row's next nonzero has not "
                    "arrived from off-chip memory (bandwidth or latency)"),
    ("output-bank writeback", "bank stall row-cycles / rows: a PE row waits for the "
                              "output-bank half it needs to be written back"),
    ("fill/drain", "(barrier + drain) stall row-cycles / rows: waiting for the previous "
                   "phase's output, and the last writeback after every row is done"),
    ("imbalance", "imbalance stall row-cycles / rows: a PE row has no work while others do"),
)

#: Every metric of the report, defined once (the run summary's terms plus these).
GLOSSARY = _SUMMARY_GLOSSARY + (
    ("latency by cause", "the run's cycles split by what the PE rows did: "
     + "; ".join(f"{name} = {text}" for name, text in CAUSES)
     + ". Row-cycles are summed over PE rows, so each is divided by rows; the parts sum to "
       "the cycles"),
    ("PE utilization (heatmap)", "useful MACs of PE (i, j) / cycles"),
    ("operational intensity", "useful MACs / off-chip bytes"),
    ("roofline ceiling", "min(rows · cols, dram_bytes_per_cycle · operational intensity) "
                         "useful MACs per cycle"),
    ("compulsory bytes", "each input tensor read once (a streamed sparse tensor with its "
                         "compressed index), Y written once, intermediates (T, U) zero because "
                         "they could stay on chip"),
    ("traffic / compulsory", "off-chip bytes / compulsory bytes (sums over tensors)"),
    ("energy", "access counts × the per-access energies of the energy table: MAC = useful "
               "MACs; local memory = local-memory reads and writes; buffers = output-bank "
               "reads and writes plus stream and load FIFO entries (written and read); DRAM "
               "= off-chip bytes"),
    ("energy per MAC", "total energy / useful MACs"),
    ("FPGA resources (model)", "LUT, FF, DSP, BRAM and Fmax of the run's core on an ECP5 as "
                               "estimated by the calibrated resource model "
                               "(reports/resources.py); fits = every figure within the "
                               f"{DEVICE_NAME}"),
    ("latency at Fmax", "cycles / the model's Fmax, in µs"),
)

#: (file name, title) of each plot, in report order.
PLOTS = (("latency_breakdown.png", "Latency by cause"),
         ("latency_phases.png", "Latency per phase"),
         ("busy_rows.png", "Busy cycles per PE row"),
         ("roofline.png", "Roofline"),
         ("traffic.png", "Off-chip bytes per tensor"),
         ("energy.png", "Energy by part"))


@dataclass(frozen=True, eq=False)
class RunData:
    """One run folder, read back."""

    folder: Path
    label: str
    stats: dict
    config: HardwareConfig
    programs: tuple[Program, ...]


def load_run(folder: str | Path, label: str | None = None) -> RunData:
    """Read ``stats.json``, ``config.json`` and the Program(s) of a run folder."""
    folder = Path(folder)
    try:
        stats = json.loads((folder / "stats.json").read_text())
        config = HardwareConfig.from_json((folder / "config.json").read_text(),
                                          source=f"{folder}/config.json")
    except FileNotFoundError as e:
        raise ReportError(f"{folder}: not a run folder (missing {Path(e.filename).name})") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{folder}: cannot read run ({e})") from None
    n = len(stats.get("layers", []))
    if n == 0:
        raise ReportError(f"{folder}/stats.json: no layers")
    dirs = [folder / "program"] if n == 1 else [folder / f"layer{k}" for k in range(1, n + 1)]
    try:
        programs = tuple(Program.load(d) for d in dirs)
    except InputFileError as e:
        raise ReportError(str(e)) from None
    return RunData(folder, label or folder.name, stats, config, programs)


def latency_breakdown(stats: dict, rows: int, cols: int) -> dict:
    """Cycles per cause (``CAUSES``) of one run or layer; the values sum to its cycles
    (every PE row either issues or stalls for one cause in every cycle)."""
    st = stats["stall_row_cycles"]
    busy = float(sum(stats["busy_cycles_per_row"]))
    useful = stats["useful_macs"] / (rows * cols)
    parts = {"useful compute": useful,
             "partial column tiles": busy / rows - useful,
             "local-memory loading": st["load"] / rows,
             "DRAM stalls": st["stream"] / rows,
             "output-bank writeback": st["bank"] / rows,
             "fill/drain": (st["barrier"] + st["drain"]) / rows,
             "imbalance": st["imbalance"] / rows}
    return parts


def pe_macs(program: Program) -> np.ndarray:
    """Useful MACs of each PE (rows × cols) of a Program: every element of a tile is issued
    once by its PE row and multiplies in the tile's first ``t_ncols`` columns."""
    a = program.arrays
    R, C = program.config.rows, program.config.cols
    rsp = a["row_stream_ptr"]
    g = a["t_stream"].astype(np.int64)
    issues = (rsp[:, g + 1] - rsp[:, g]) if g.size else np.zeros((R, 0), np.int64)  # R × tiles
    cover = (np.arange(C)[None, :] < a["t_ncols"][:, None]).astype(np.int64)          # tiles × C
    return issues @ cover


def _layer_energy(s: dict, cfg: HardwareConfig, table: EnergyTable) -> dict:
    if "energy_pj" in s and table is default_energy_table():
        return s["energy_pj"]
    return energy_from_counts(counts_from_stats(s), cfg, table)


def report_data(runs: list[RunData], table: EnergyTable | None = None) -> dict:
    """Every number the report shows, per run (plain JSON types)."""
    table = table or default_energy_table()
    out = []
    for r in runs:
        s, cfg = r.stats, r.config
        R, C = cfg.rows, cfg.cols
        macs = sum(pe_macs(p) for p in r.programs)
        cycles = s["cycles"]
        energy = {k: 0.0 for k in (*ENERGY_PARTS, "total")}
        tensors, per_tensor = [], {}
        phases = []
        multi = len(s["layers"]) > 1
        for k, (ls, prog) in enumerate(zip(s["layers"], r.programs), start=1):
            e = _layer_energy(ls, cfg, table)
            for key in energy:
                energy[key] += float(e[key])
            comp = compulsory_bytes(prog.tensors, cfg)
            for t in prog.tensors:
                name = f"L{k}:{t['name']}" if multi else t["name"]
                moved = ls["offchip_read_bytes"].get(t["name"], 0) + \
                    ls["offchip_write_bytes"].get(t["name"], 0)
                per_tensor[name] = (int(moved), int(comp[t["name"]]))
                tensors.append(name)
            for ph in ls["phases"]:
                phases.append({"phase": (f"L{k}:" if multi else "") + ph["phase"],
                               "cycles": ph["cycles"], "useful_macs": ph["useful_macs"],
                               "useful_compute_cycles": ph["useful_macs"] / (R * C)})
        moved = sum(v[0] for v in per_tensor.values())
        comp = sum(v[1] for v in per_tensor.values())
        out.append({
            "label": r.label, "folder": str(r.folder), "name": s["name"],
            "config": cfg.to_dict(), "config_id": cfg.id,
            "cycles": cycles, "useful_macs": s["useful_macs"],
            "utilization": s["utilization"], "mapping_efficiency": s["mapping_efficiency"],
            "balance": s["balance"], "ideal_cycles": s.get("ideal_cycles"),
            "cycles_over_ideal": s.get("cycles_over_ideal"), "bit_exact": s["bit_exact"],
            "latency_by_cause": latency_breakdown(s, R, C),
            "phases": phases,
            "pe_macs": macs.tolist(),
            "pe_utilization": (macs / cycles).tolist() if cycles else macs.tolist(),
            "busy_cycles_per_row": s["busy_cycles_per_row"],
            "offchip_bytes": s["offchip_bytes"],
            "operational_intensity": s["useful_macs"] / s["offchip_bytes"] if s["offchip_bytes"] else None,
            "macs_per_cycle": s["useful_macs"] / cycles if cycles else 0.0,
            "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
            "dram_bytes_per_cycle": cfg.dram_bytes_per_cycle,
            "traffic_per_tensor": per_tensor, "tensors": tensors,
            "compulsory_bytes": comp,
            "traffic_over_compulsory": moved / comp if comp else None,
            "energy_pj": energy,
            "energy_pj_per_mac": energy["total"] / s["useful_macs"] if s["useful_macs"] else None,
            "fpga": _fpga(cfg, cycles),
        })
    return {"runs": out, "energy_table": table.to_dict(), "fpga_model": _fpga_model()}


def _fpga(cfg: HardwareConfig, cycles: int) -> dict:
    """The resource model's estimate of the run's core, and the run's latency at the
    estimated Fmax."""
    est = estimate_resources(cfg)
    fmax = est["fmax_mhz"]
    return {**est, "latency_us_at_fmax": cycles / fmax if fmax else None}


def _fpga_model() -> dict:
    k = load_coefficients()
    return {"calibrated": bool(k.get("calibrated")), "source": k.get("source", ""),
            "device": k.get("device", ""), "error_loo": stated_error(k)}


def _plots(data: dict) -> dict[str, bytes]:
    runs = data["runs"]
    names = [r["label"] for r in runs]
    pngs = {}
    pngs["latency_breakdown.png"] = plots.breakdown_png(
        names, {c: [r["latency_by_cause"][c] for r in runs] for c, _ in CAUSES})
    labels = [f"{r['label']}:{p['phase']}" if len(runs) > 1 else p["phase"]
              for r in runs for p in r["phases"]]
    useful = [p["useful_compute_cycles"] for r in runs for p in r["phases"]]
    other = [p["cycles"] - p["useful_compute_cycles"] for r in runs for p in r["phases"]]
    pngs["latency_phases.png"] = plots.phase_png(labels, useful, other)
    pngs["busy_rows.png"] = plots.busy_rows_png(names, [r["busy_cycles_per_row"] for r in runs])
    pngs["roofline.png"] = plots.roofline_png([
        {"name": r["label"], "intensity": r["operational_intensity"] or 0.0,
         "perf": r["macs_per_cycle"], "peak": r["peak_macs_per_cycle"],
         "bandwidth": r["dram_bytes_per_cycle"]} for r in runs])
    tensors = list(dict.fromkeys(t for r in runs for t in r["tensors"]))
    pngs["traffic.png"] = plots.traffic_png(
        tensors, [(r["label"], r["traffic_per_tensor"]) for r in runs])
    pngs["energy.png"] = plots.energy_png(
        names, {p: [r["energy_pj"][p] / 1e6 for r in runs] for p in ENERGY_PARTS})
    for k, r in enumerate(runs):
        cfg = r["config"]
        pngs[f"heatmap_{k + 1}.png"] = plots.heatmap_png(
            np.asarray(r["pe_utilization"]),
            f"{r['label']}: PE utilization ({cfg['rows']} × {cfg['cols']})")
    return pngs


# ---- text ------------------------------------------------------------------------------
def _fmt(v, kind="int") -> str:
    if v is None:
        return "–"
    if kind == "pct":
        return f"{100.0 * v:.1f} %"
    if kind == "ratio":
        return f"{v:.3f}"
    if kind == "f1":
        return f"{v:,.1f}"
    return f"{int(round(v)):,}"


def _tables(data: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(section title, header, rows) of every table, shared by Markdown and HTML."""
    runs = data["runs"]
    head = ["metric"] + [r["label"] for r in runs]
    spec = (("workload", lambda r: r["name"]), ("config id", lambda r: r["config_id"]),
            ("array", lambda r: f"{r['config']['rows']} × {r['config']['cols']}"),
            ("dram_bytes_per_cycle", lambda r: str(r["dram_bytes_per_cycle"])),
            ("cycles", lambda r: _fmt(r["cycles"])),
            ("useful MACs", lambda r: _fmt(r["useful_macs"])),
            ("ideal cycles", lambda r: _fmt(r["ideal_cycles"], "f1")),
            ("cycles / ideal", lambda r: _fmt(r["cycles_over_ideal"], "ratio")),
            ("utilization", lambda r: _fmt(r["utilization"], "pct")),
            ("mapping efficiency", lambda r: _fmt(r["mapping_efficiency"], "pct")),
            ("balance", lambda r: _fmt(r["balance"], "ratio")),
            ("off-chip bytes", lambda r: _fmt(r["offchip_bytes"])),
            ("compulsory bytes", lambda r: _fmt(r["compulsory_bytes"])),
            ("traffic / compulsory", lambda r: _fmt(r["traffic_over_compulsory"], "ratio")),
            ("operational intensity", lambda r: _fmt(r["operational_intensity"], "ratio")),
            ("energy (µJ)", lambda r: f"{r['energy_pj']['total'] / 1e6:.3f}"),
            ("energy per MAC (pJ)", lambda r: _fmt(r["energy_pj_per_mac"], "ratio")),
            ("bit-exact", lambda r: "yes" if r["bit_exact"] else "NO"))
    out = [("Results", head, [[label] + [f(r) for r in runs] for label, f in spec])]
    out.append(("Latency by cause (cycles)", head,
                [[c] + [f"{_fmt(r['latency_by_cause'][c])} "
                        f"({100.0 * r['latency_by_cause'][c] / r['cycles']:.1f} %)"
                        for r in runs] for c, _ in CAUSES]))
    prow = []
    for r in runs:
        for p in r["phases"]:
            prow.append([r["label"], p["phase"], _fmt(p["cycles"]),
                         _fmt(p["useful_compute_cycles"]),
                         _fmt(p["useful_macs"] / (p["cycles"] * r["peak_macs_per_cycle"])
                              if p["cycles"] else None, "pct")])
    out.append(("Phases", ["run", "phase", "cycles", "useful compute cycles", "utilization"],
                prow))
    trow = []
    for r in runs:
        for t in r["tensors"]:
            moved, comp = r["traffic_per_tensor"][t]
            trow.append([r["label"], t, _fmt(moved), _fmt(comp),
                         _fmt(moved / comp if comp else None, "ratio")])
    out.append(("Off-chip bytes per tensor", ["run", "tensor", "bytes", "compulsory bytes",
                                              "bytes / compulsory"], trow))
    out.append(("Energy by part (µJ)", head,
                [[p] + [f"{r['energy_pj'][p] / 1e6:.3f}" for r in runs]
                 for p in (*ENERGY_PARTS, "total")]))
    fp = (("LUT", lambda f: _fmt(f["lut"])), ("FF", lambda f: _fmt(f["ff"])),
          ("DSP (MULT18X18D)", lambda f: _fmt(f["dsp"])),
          ("BRAM (DP16KD)", lambda f: _fmt(f["bram"])),
          ("Fmax (MHz)", lambda f: _fmt(f["fmax_mhz"], "f1")),
          (f"fits the {DEVICE_NAME}", lambda f: "yes" if f["fits_device"] else "no"),
          ("latency at Fmax (µs)", lambda f: _fmt(f["latency_us_at_fmax"], "f1")))
    out.append(("FPGA resources (model)", head,
                [[label] + [f(r["fpga"]) for r in runs] for label, f in fp]))
    t = data["energy_table"]
    out.append(("Energy table (pJ per access)", ["entry", "value"],
                [[k, str(v)] for k, v in t.items() if k != "source"]))
    out.append(("Glossary", ["term", "definition"], [[a, b] for a, b in GLOSSARY]))
    return out


def _sections(data: dict):
    """(kind, payload) in page order: tables and plots interleaved."""
    tables = {t[0]: t for t in _tables(data)}
    runs = data["runs"]
    seq = [("p", f"{len(runs)} run(s): " + ", ".join(f"{r['label']} ({r['folder']})" for r in runs)),
           ("table", tables["Results"]),
           ("table", tables["Latency by cause (cycles)"]),
           ("img", ("latency_breakdown.png", "Latency by cause")),
           ("table", tables["Phases"]),
           ("img", ("latency_phases.png", "Latency per phase")),
           ("h", "PE utilization")]
    for k, r in enumerate(runs):
        seq.append(("img", (f"heatmap_{k + 1}.png", f"{r['label']}: PE utilization")))
    seq += [("img", ("busy_rows.png", "Busy cycles per PE row")),
            ("h", "Roofline"), ("img", ("roofline.png", "Roofline")),
            ("table", tables["Off-chip bytes per tensor"]),
            ("img", ("traffic.png", "Off-chip bytes per tensor")),
            ("table", tables["Energy by part (µJ)"]),
            ("img", ("energy.png", "Energy by part")),
            ("p", f"Energy table source: {data['energy_table']['source']}."),
            ("table", tables["Energy table (pJ per access)"]),
            ("table", tables["FPGA resources (model)"]),
            ("p", _fpga_note(data["fpga_model"])),
            ("table", tables["Glossary"])]
    return seq


def _fpga_note(m: dict) -> str:
    if not m["calibrated"]:
        return "FPGA resources: UNCALIBRATED estimates of reports/resources.py."
    return (f"FPGA resources: the resource model of reports/resources.py for the core as "
            f"`accel hdl --synth ecp5` builds it on the {m['device']}, {m['source']}; "
            f"leave-one-out error {error_text(m['error_loo'])} (median/max); DSP and BRAM are "
            f"counted from the structure (docs/rtl.md).")


def render_markdown(data: dict) -> str:
    out = ["# AXW report", ""]
    for kind, x in _sections(data):
        if kind == "p":
            out += [x, ""]
        elif kind == "h":
            out += [f"## {x}", ""]
        elif kind == "img":
            out += [f"![{x[1]}]({x[0]})", ""]
        else:
            title, head, rows = x
            out += [f"## {title}", "", "| " + " | ".join(head) + " |",
                    "|" + "---|" * len(head)]
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out) + "\n"


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;"
        "margin:0.5em 0 1.5em}")


def _align(cell: str) -> str:
    """Numbers stay right-aligned (the table default); words go left."""
    return "" if re.fullmatch(r"[-–+\d.,% ()]*", cell) else ' style="text-align:left"'


def render_html(data: dict, pngs: dict[str, bytes]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>AXW report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>AXW report</h1>"]
    for kind, x in _sections(data):
        if kind == "p":
            out.append(f"<p>{e(x)}</p>")
        elif kind == "h":
            out.append(f"<h2>{e(x)}</h2>")
        elif kind == "img":
            b64 = base64.b64encode(pngs[x[0]]).decode()
            out.append(f"<img alt=\"{e(x[1])}\" src=\"data:image/png;base64,{b64}\">")
        else:
            title, head, rows = x
            out.append(f"<h2>{e(title)}</h2><table><tr>"
                       + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td{_align(c)}>{e(c)}</td>" for c in row) + "</tr>"
                    for row in rows]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run_dirs, out_dir, *, labels=None, energy_table: EnergyTable | None = None
                 ) -> list[Path]:
    """Write report.html, report.md, report.json and the PNGs for ``run_dirs`` into
    ``out_dir``; returns the paths written."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ReportError("no run folders given")
    labels = list(labels) if labels else _labels(run_dirs)
    runs = [load_run(d, lab) for d, lab in zip(run_dirs, labels)]
    data = report_data(runs, energy_table)
    pngs = _plots(data)
    out = Path(out_dir)
    written = []
    try:
        for name, blob in pngs.items():
            atomic_write_bytes(out / name, blob)
            written.append(out / name)
        atomic_write_text(out / "report.json", json.dumps(data, indent=1) + "\n")
        atomic_write_text(out / "report.md", render_markdown(data))
        atomic_write_text(out / "report.html", render_html(data, pngs))
    except OSError as e:
        raise ReportError(f"cannot write the report to {out}: {e.strerror or e}") from e
    return written + [out / "report.json", out / "report.md", out / "report.html"]


def _labels(dirs: list[Path]) -> list[str]:
    """Folder names, made unique with their parent when two are the same."""
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in dirs]
