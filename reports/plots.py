"""PNG plots of runs and sweeps, drawn with matplotlib's Agg backend and returned as bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: never a window, never a GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["breakdown_png", "phase_png", "heatmap_png", "busy_rows_png", "roofline_png",
           "traffic_png", "energy_png", "pareto_png"]

_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _stacked(names, parts: dict, ylabel: str, title: str) -> bytes:
    """Stacked bars, one per run; ``parts`` maps a label to one value per run."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(names) + 3), 3.6))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for k, (label, vals) in enumerate(parts.items()):
        v = np.asarray(vals, float)
        ax.bar(x, v, 0.6, bottom=bottom, label=label, color=_COLORS[k % len(_COLORS)])
        bottom += v
    ax.set_xticks(x, names, rotation=15 if len(names) > 2 else 0, ha="right" if len(names) > 2 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def breakdown_png(names, parts: dict) -> bytes:
    """Latency per cause (cycles; the parts of each bar sum to the run's cycles)."""
    return _stacked(names, parts, "cycles", "Latency by cause")


def phase_png(labels, useful, other) -> bytes:
    """Per phase: useful-compute cycles and the rest of the phase's cycles."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(labels) + 3), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, useful, 0.6, label="useful compute", color=_COLORS[0])
    ax.bar(x, other, 0.6, bottom=useful, label="other (loads, stalls, fill/drain)",
           color=_COLORS[1])
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("cycles")
    ax.set_title("Latency per phase")
    ax.legend(fontsize=7)
    return _png(fig)


def heatmap_png(util: np.ndarray, title: str) -> bytes:
    """Utilization of each PE (rows × cols grid)."""
    R, C = util.shape
    fig, ax = plt.subplots(figsize=(min(8, 1.5 + 0.35 * C), min(7, 1.2 + 0.3 * R)))
    im = ax.imshow(util, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xlabel("PE column")
    ax.set_ylabel("PE row")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="utilization")
    return _png(fig)


def busy_rows_png(names, busy_per_row) -> bytes:
    """Busy cycles of each PE row, one line per run."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for k, (name, b) in enumerate(zip(names, busy_per_row)):
        ax.plot(np.arange(len(b)), b, marker="o", ms=3, label=name, color=_COLORS[k % 10])
    ax.set_xlabel("PE row")
    ax.set_ylabel("busy cycles")
    ax.set_ylim(bottom=0)
    ax.set_title("Busy cycles per PE row (balance)")
    ax.legend(fontsize=7)
    return _png(fig)


def roofline_png(points) -> bytes:
    """``points``: dicts with name, intensity (MACs/byte), perf (MACs/cycle), peak
    (MACs/cycle), bandwidth (bytes/cycle)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["intensity"] for p in points if p["intensity"] > 0]
    lo = min(xs + [0.01]) / 10
    hi = max(xs + [1.0]) * 10
    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    for k, p in enumerate(points):
        c = _COLORS[k % 10]
        ax.plot(grid, np.minimum(p["peak"], p["bandwidth"] * grid), color=c, lw=1, ls="--",
                label=f"{p['name']}: ceiling ({p['peak']} MACs/cycle, {p['bandwidth']} B/cycle)")
        ax.plot([p["intensity"]], [p["perf"]], "o", color=c, ms=7, label=f"{p['name']}: run")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (useful MACs / off-chip byte)")
    ax.set_ylabel("useful MACs / cycle")
    ax.set_title("Roofline")
    ax.legend(fontsize=6)
    return _png(fig)


def traffic_png(tensors, runs) -> bytes:
    """``runs``: (name, {tensor: (bytes, compulsory)}) — bars of bytes, ticks at compulsory."""
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(tensors) * len(runs) + 2), 3.8))
    n = len(runs)
    width = 0.8 / max(n, 1)
    x = np.arange(len(tensors))
    for k, (name, per) in enumerate(runs):
        b = np.array([per.get(t, (0, 0))[0] for t in tensors], float)
        c = np.array([per.get(t, (0, 0))[1] for t in tensors], float)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, b, width * 0.9, label=f"{name}: moved", color=_COLORS[k % 10])
        ax.scatter(pos, c, marker="_", s=300, color="black", zorder=3,
                   label="compulsory minimum" if k == 0 else None)
    ax.set_xticks(x, tensors)
    ax.set_ylabel("off-chip bytes")
    ax.set_title("Off-chip bytes per tensor")
    ax.legend(fontsize=7)
    return _png(fig)


def energy_png(names, parts: dict) -> bytes:
    """Energy per part (µJ), stacked per run."""
    return _stacked(names, parts, "energy (µJ)", "Energy by part")


def pareto_png(x, y, front_mask, xlabel: str, ylabel: str, title: str,
               verified=None, limit: tuple[float, str] | None = None) -> bytes:
    """All points, the Pareto front highlighted (minimise both axes); ``limit``
    ``(x, label)`` draws a vertical line, e.g. what a device holds."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x, y, s=6, color="#bab0ac", label="design points")
    m = np.asarray(front_mask, bool)
    order = np.argsort(x[m])
    ax.plot(x[m][order], y[m][order], "-o", ms=4, color=_COLORS[2], label="Pareto front")
    if verified is not None:
        v = np.asarray(verified, bool)
        if v.any():
            ax.scatter(x[v], y[v], s=30, facecolors="none", edgecolors=_COLORS[0],
                       label="simulated")
    if limit is not None:
        ax.axvline(limit[0], ls="--", lw=1, color="#555555", label=limit[1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)
