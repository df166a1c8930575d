"""A short Markdown page for one run: what ran, on which hardware, and where the cycles went."""

from __future__ import annotations

from pathlib import Path

from accel.config import HardwareConfig
from accel.fileio import atomic_write_text

__all__ = ["GLOSSARY", "render_summary", "write_summary"]

#: Each metric of the page, defined once.
GLOSSARY = (
    ("cycles", "clock cycles of the simulated run, from the first memory request to the last "
               "output write (summed over layers)"),
    ("useful MACs", "multiply-accumulates that contribute to the result (zeros of the sparse "
                    "operand are never streamed)"),
    ("ideal cycles", "the smaller useful-MAC count of the two association orders / "
                     "(rows · cols)"),
    ("utilization", "useful MACs / (rows · cols · cycles)"),
    ("mapping efficiency", "useful MACs / PE-slot cycles while computing; a PE row that "
                           "streams one element occupies cols PE slots for one cycle"),
    ("balance", "mean / max busy cycles over PE rows (busy: the row started an element)"),
    ("stall row-cycles", "cycles in which a PE row did not start an element, summed over "
                         "rows, by cause: load (its local-memory tile is still loading), "
                         "stream (its next element has not arrived from memory), bank (its "
                         "output bank half is still being written back), barrier (the previous "
                         "phase's output is not yet in memory), imbalance (it has no work while "
                         "other rows still do), drain (all rows are done; the last writeback runs)"),
    ("off-chip bytes", "bytes moved between the accelerator and off-chip memory"),
    ("bit-exact", "the simulated Y equals the NumPy reference of the same contract and order "
                  "in every element"),
)


def _int(v) -> str:
    """A count with thousands separators; a fractional one (ideal cycles) keeps one decimal."""
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def _pct(v) -> str:
    return "–" if v is None else f"{100.0 * v:.1f} %"


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _yes(v: bool) -> str:
    return "yes" if v else "**NO**"


def _table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _columns(stats: dict) -> list[tuple[str, dict]]:
    """(heading, stats) per column: one per layer plus the total, or just the value."""
    layers = stats["layers"]
    if len(layers) == 1:
        return [("value", stats)]
    return [(f"layer {k}", s) for k, s in enumerate(layers, start=1)] + [("total", stats)]


def _what_ran(stats: dict) -> list[str]:
    rows = []
    for k, s in enumerate(stats["layers"], start=1):
        p = s["problem"]
        rows.append((k, f"`{s['name']}`", f"{p['o']} × {p['n']} × {p['c']} × {p['h']}",
                     _int(p["nnz_a"]), _int(p["nnz_x"]), p["contract"]["name"], s["order"],
                     _yes(s["bit_exact"])))
    return _table(("layer", "problem", "o × n × c × h", "nnz(A)", "nnz(X)", "contract", "order",
                   "bit-exact"), rows)


def _metrics(stats: dict) -> list[str]:
    cols = _columns(stats)
    spec = (("cycles", "cycles", _int), ("useful MACs", "useful_macs", _int),
            ("ideal cycles", "ideal_cycles", _int), ("cycles / ideal", "cycles_over_ideal", _ratio),
            ("utilization", "utilization", _pct),
            ("mapping efficiency", "mapping_efficiency", _pct), ("balance", "balance", _ratio),
            ("off-chip bytes", "offchip_bytes", _int),
            ("memory-stall cycles", "memory_stall_cycles", _int))
    rows = [(label, *(fmt(s.get(key)) for _, s in cols)) for label, key, fmt in spec]
    return _table(("metric", *(h for h, _ in cols)), rows)


def _phases(stats: dict, pes: int) -> list[str]:
    rows = []
    for k, s in enumerate(stats["layers"], start=1):
        for ph in s["phases"]:
            util = ph["useful_macs"] / (pes * ph["cycles"]) if ph["cycles"] else None
            rows.append((k, f"`{ph['phase']}`", _int(ph["first_cycle"]), _int(ph["end_cycle"]),
                         _int(ph["cycles"]), _int(ph["useful_macs"]), _pct(util)))
    return _table(("layer", "phase", "first cycle", "end cycle", "cycles", "useful MACs",
                   "utilization"), rows)


def _stalls(stats: dict) -> list[str]:
    cols = _columns(stats)
    rows = [(cause, *(_int(s["stall_row_cycles"][cause]) for _, s in cols))
            for cause in stats["stall_row_cycles"]]
    return _table(("cause", *(h for h, _ in cols)), rows)


def _offchip(stats: dict) -> list[str]:
    rows = []
    for k, s in enumerate(stats["layers"], start=1):
        rd, wr = s["offchip_read_bytes"], s["offchip_write_bytes"]
        rows += [(k, f"`{t}`", _int(rd.get(t, 0)), _int(wr.get(t, 0))) for t in rd]
    return _table(("layer", "tensor", "read", "written"), rows)


def _mismatches(stats: dict) -> list[str]:
    lines = []
    for k, s in enumerate(stats["layers"], start=1):
        if not s["bit_exact"]:
            lines.append(f"- layer {k}: {_int(s.get('mismatches'))} elements differ; first: "
                         f"`{s.get('first_mismatch')}`")
    return lines + [""] if lines else []


def render_summary(stats: dict, config: HardwareConfig) -> str:
    """Markdown for the run statistics ``stats`` (the content of stats.json) on ``config``."""
    n = len(stats["layers"])
    orders = " / ".join(stats["orders"])
    out = [f"# AXW run: {stats['name']}", "",
           f"{n} layer{'s' if n > 1 else ''} on a {config.rows} × {config.cols} array "
           f"(config `{stats['config_id']}`), order {orders}: {_int(stats['cycles'])} cycles, "
           f"utilization {_pct(stats['utilization'])}, bit-exact: {_yes(stats['bit_exact'])}.", ""]
    if stats.get("stall_permille"):
        out += [f"Memory interface refuses transfers in {stats['stall_permille']} ‰ of cycles "
                f"(seed {stats['stall_seed']}).", ""]
    out += ["## What ran", ""] + _what_ran(stats) + _mismatches(stats)
    out += ["## Hardware", ""]
    out += _table(("field", "value"), [(k, v) for k, v in config.to_dict().items()])
    out += ["## Results", ""] + _metrics(stats)
    out += ["## Phases", ""] + _phases(stats, config.pes)
    out += ["## Stall row-cycles by cause", ""] + _stalls(stats)
    out += ["## Off-chip bytes per tensor", ""] + _offchip(stats)
    out += ["## Glossary", ""] + [f"- **{term}**: {text}." for term, text in GLOSSARY]
    return "\n".join(out) + "\n"


def write_summary(stats: dict, config: HardwareConfig, path: str | Path) -> None:
    """Write :func:`render_summary` to ``path`` atomically."""
    atomic_write_text(path, render_summary(stats, config))
