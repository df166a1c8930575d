"""FPGA resource model (LUT, FF, DSP, BRAM, Fmax) of the core of a HardwareConfig, and its
calibrator.

The model describes the core that ``accel hdl --synth ecp5`` builds (hdl/core.py with the
program-memory capacities of ``hdl.synth.SYNTH_CAPACITIES``), on an ECP5 with Yosys's
``synth_ecp5`` and nextpnr.  Its form follows the RTL:

* **DSP** and **BRAM** are counted from the structure, not fitted.  Each PE multiplies an
  ``operand_bits`` value by an ``acc_bits`` value in one 18×18 multiplier per slice of
  ``HardwareConfig.wide_chunks``.  The core's memories are ``hdl.image.core_memories``
  (the PEs' local-memory banks and output-bank halves, the lanes' program tables and
  FIFOs, the global tables), each copied once per read port; the core marks each one
  ``block`` or ``distributed`` (``hdl.image.ram_style``) and a block one takes the fewest
  ``DP16KD`` of one aspect ratio (16K×1 … 512×36).
* **LUT** and **FF** are linear in terms of the structure, with coefficients fitted to
  synthesis results by non-negative least squares on relative error::

      lut = lut_base + lut_rows·R + lut_rows_sq·R² + lut_cols·C + lut_pe_bits·P·a
            + lut_wb_bits·V·C·a + lut_lutram_bits·M + lut_flag_bits·F
      ff  = ff_base  + ff_rows·R  + ff_rows_sq·R²  + ff_cols·C  + ff_pe_bits·P·a
            + ff_flag_bits·F

  (R rows, C cols, P = R·C PEs, a = acc_bits; V the writeback's output vectors
  (``HardwareConfig.writeback_vectors``: V·C requantizers, each behind a selection when
  V < R + 1); M the bits of the distributed-RAM memories,
  one copy per read port; F the FIFOs' arrival flags, ``R·(stream_fifo_depth +
  load_fifo_depth)``, each a register with its set/clear logic).
* **Fmax**: the critical path is the one-cycle loop of rule 0 (docs/rtl.md, *Critical
  path*): registered requests → the rotation's selection → a parallel prefix per class
  (log2 R adder levels) → credit − sum → grants → the next cycle's requests, or the
  block-RAM address or counter a grant selects. Its logic grows with log2 R but its
  wires with the lanes it spans (routing is about three quarters of it), so the fit is
  ``1000/fmax = fmax_ns_base + fmax_ns_rows·R + fmax_ns_log2_cols·log2 C``
  (nanoseconds), to placed results.

The coefficients live in ``reports/data/fpga_resources.toml``, written by::

    python -m reports.resources calibrate reports/data/synth/*.json --out reports/data/fpga_resources.toml

which also states the error of each figure: in-sample and leave-one-out (each result
predicted by a fit without it).  ``synth.json`` files are those of ``accel hdl --synth``
(``--synth-pack-only`` results count for LUT/FF/DSP/BRAM but not for Fmax).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.fileio import read_toml
from hdl.image import CoreParams, core_memories, ecp5_lmem_outreg, ram_style
from hdl.pe import whole_operands
from hdl.synth import SYNTH_CAPACITIES

__all__ = ["ResourceModelError", "load_coefficients", "estimate_resources", "features",
           "read_register_bits", "bram_blocks", "calibrate", "stated_error", "error_text",
           "DEVICE_NAME", "DEVICE_LIMITS"]

#: one DP16KD's aspect ratios (depth, width)
_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))

#: the device ``fits_device`` is about, and what it holds
DEVICE_NAME = "LFE5U-85F"
DEVICE_LIMITS = {"lut": 83640, "ff": 83640, "dsp": 156, "bram": 208}

_FIT = {"lut": ("base", "rows", "rows_sq", "cols", "pe_bits", "wb_bits", "lutram_bits",
                "flag_bits"),
        "ff": ("base", "rows", "rows_sq", "cols", "pe_bits", "flag_bits")}
_FMAX = ("base", "rows", "log2_cols")
_KEYS = tuple(f"{w}_{n}" for w, ns in _FIT.items() for n in ns) + tuple(
    f"fmax_ns_{n}" for n in _FMAX)
_CAPACITY_KEYS = ("max_tiles", "max_blocks", "max_steps", "max_lane_elems", "max_lane_loads",
                  "max_phases", "mem_words")


class ResourceModelError(AxwError):
    """A resource table or a synthesis result is malformed."""


def load_coefficients(path: str | Path | None = None) -> dict:
    d, where = read_toml(path, ResourceModelError,
                         default=("reports", "data/fpga_resources.toml"))
    known = set(_KEYS) | {"calibrated", "source", "error", "capacities", "device", "results"}
    unknown = sorted(set(d) - known)
    missing = [k for k in _KEYS if k not in d]
    if unknown or missing:
        raise ResourceModelError(f"{where}: unknown key(s) {unknown} / missing key(s) {missing}")
    for k in _KEYS:
        if not isinstance(d[k], (int, float)) or isinstance(d[k], bool) or not \
                math.isfinite(d[k]) or d[k] < 0:
            raise ResourceModelError(f"{where}: {k} must be a non-negative number, got {d[k]!r}")
    return d


_DEFAULT: list = []


def _default() -> dict:
    if not _DEFAULT:
        _DEFAULT.append(load_coefficients())
    return _DEFAULT[0]


def bram_blocks(depth: int, width: int) -> int:
    """DP16KD blocks of one ``depth × width`` memory in block RAM."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _ASPECTS)


def _memories(cfg: HardwareConfig, k: dict) -> tuple[int, int]:
    """(DP16KD blocks, distributed-RAM bits) of the core's memories (every table copy
    counted), for the program capacities the coefficients were calibrated with (those of
    the lag-0 core for any ``request_lag_cycles`` or ``credit_lag_cycles``)."""
    lag0 = cfg.with_(request_lag_cycles=0, credit_lag_cycles=0)
    # built as `accel hdl --synth ecp5` builds it, with the ECP5 primitives (a PE's two
    # local-memory banks one DP16KD where they fit it: hdl.image.lmem_unified)
    params = CoreParams(lag0, dsp_primitive="ecp5",
                        **{**SYNTH_CAPACITIES, **k.get("capacities", {})})
    blocks = bits = 0
    for mem in core_memories(params):
        n = mem["count"] * mem["ports"]
        if ram_style(mem["depth"], mem["width"], mem["sync"]) == "block":
            blocks += n * bram_blocks(mem["depth"], mem["width"])
        else:
            bits += n * mem["depth"] * mem["width"]
    return blocks, bits


def features(cfg: HardwareConfig, coeffs: dict | None = None) -> dict:
    """The model's structural terms: ``{"lut": {term: value}, "ff": {term: value}}``."""
    k = coeffs or _default()
    R, C, P, a = cfg.rows, cfg.cols, cfg.pes, cfg.acc_bits
    flags = R * (cfg.stream_fifo_depth + cfg.load_fifo_depth)
    _, lutram = _memories(cfg, k)
    wb = cfg.writeback_vectors * C * a
    return {"lut": {"base": 1.0, "rows": R, "rows_sq": R * R, "cols": C, "pe_bits": P * a,
                    "wb_bits": wb, "lutram_bits": lutram, "flag_bits": flags},
            "ff": {"base": 1.0, "rows": R, "rows_sq": R * R, "cols": C, "pe_bits": P * a,
                   "flag_bits": flags}}


def read_register_bits(cfg: HardwareConfig) -> int:
    """Flip-flops ``lmem_read_cycles`` 2 adds to the core ECP5 synthesis builds, counted
    from the RTL: in every row the last PE's element registered once more (its ``sel``,
    ``bank``, slot, half and flags; in the other columns that register equals the next
    PE's input register, which Yosys merges it with) and the issue's stages (the shift's
    rest, the rounded value, the bound and the saturation mask, the saturated value); the
    value's own register in each PE (``vo``) takes the place of the element's (none in the
    last column, whose ``vo`` drives nothing).  Both local-memory banks' data registers
    (``acc_bits`` each, every PE) are the block RAMs' output registers where
    ``hdl.image.ecp5_lmem_outreg`` holds, else flip-flops.  Measured (Yosys, lag 4 with
    the credit lag, the fit8 depths, output registers): 1×1 +111 FFs (this count: 110),
    2×3 +218 (220).  ``lmem_read_cycles`` 3 adds to those the selected operands (the
    narrow one and the wide one, every PE) and, in every row, the last PE's element once
    more (its slot, half and flags: the other columns' equal the next PE's); counted
    from the RTL, not yet measured against Yosys."""
    a = cfg.acc_bits
    if cfg.lmem_read_cycles == 1:
        return 0
    lmem = 0 if ecp5_lmem_outreg(cfg) else 2 * a * cfg.pes
    narrow = a if whole_operands(cfg, "dsp") else cfg.operand_bits
    third = (((a + narrow) * cfg.pes + cfg.rows * (cfg.slot_bits + 6))
             if cfg.lmem_read_cycles == 3 else 0)
    return lmem + cfg.rows * (3 * a + cfg.slot_bits + 10) + third


def _fmax_terms(cfg: HardwareConfig) -> dict:
    return {"base": 1.0, "rows": cfg.rows, "log2_cols": math.log2(cfg.cols)}


def estimate_resources(cfg: HardwareConfig, coeffs: dict | None = None) -> dict:
    """``lut, ff, dsp, bram, fmax_mhz``, whether that fits the LFE5U-85F
    (``fits_device``) and whether the coefficients are calibrated.  The calibration is of
    the lag-0 core (``request_lag_cycles`` and ``credit_lag_cycles`` 0): for another lag
    ``fmax_mhz`` is None
    (not calibrated), and the other figures are those of lag 0 (the lag adds d request
    registers and a position queue per lane, which the model does not count).  So is it
    for ``lmem_read_cycles`` 2 and 3, whose FFs are those of 1 plus the registers it adds
    (:func:`read_register_bits`)."""
    k = coeffs or _default()
    f = features(cfg, k)
    lut = sum(k[f"lut_{n}"] * v for n, v in f["lut"].items())
    ff = sum(k[f"ff_{n}"] * v for n, v in f["ff"].items())
    ff += read_register_bits(cfg)
    dsp = cfg.pes * len(cfg.wide_chunks)
    bram, _ = _memories(cfg, k)
    ns = sum(k[f"fmax_ns_{n}"] * v for n, v in _fmax_terms(cfg).items())
    out = {"lut": round(lut), "ff": round(ff), "dsp": int(dsp), "bram": int(bram),
           "fmax_mhz": round(1000.0 / ns, 1)
           if ns > 0 and cfg.request_lag_cycles == cfg.credit_lag_cycles == 0
           and cfg.lmem_read_cycles == 1 else None}
    out["fits_device"] = all(out[r] <= lim for r, lim in DEVICE_LIMITS.items())
    out["resources_calibrated"] = bool(k.get("calibrated"))
    return out


def stated_error(coeffs: dict | None = None, kind: str = "loo") -> dict:
    """The relative error per figure (``median``, ``max``, ``results``) that the
    calibration states, in-sample (``kind="in_sample"``) or leave-one-out."""
    k = coeffs or _default()
    return {w: dict(e) for w, e in k.get("error", {}).get(kind, {}).items()}


_ERROR_NAMES = {"lut": "LUT", "ff": "FF", "fmax_mhz": "Fmax"}


def error_text(err: dict) -> str:
    """``LUT 0.8/5.4 %, FF …`` (median/max) of a :func:`stated_error` dict."""
    return ", ".join(f"{n} {100 * err[w]['median']:.1f}/{100 * err[w]['max']:.1f} %"
                     for w, n in _ERROR_NAMES.items() if w in err)


# ---- calibration ------------------------------------------------------------------------
def _read_synth(path: Path):
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResourceModelError(f"{path}: cannot read synthesis result ({e})") from None
    if not isinstance(d, dict):
        raise ResourceModelError(f"{path}: expected a JSON object")
    if d.get("top", "core") != "core":
        raise ResourceModelError(f"{path}: a synthesis of {d['top']!r}, not of the whole core")
    try:
        cfg = HardwareConfig.from_dict(d["config"], source=str(path))
        r = {k: float(d[k]) for k in ("lut", "ff", "dsp", "bram")}
        caps = {k: d["capacities"][k] for k in _CAPACITY_KEYS}
    except (KeyError, TypeError, ValueError) as e:
        raise ResourceModelError(f"{path}: missing or bad key {e}") from None
    fm = d.get("fmax_mhz")
    r["fmax_mhz"] = float(fm) if d.get("placed") and fm else None
    return {"path": str(path), "config": cfg, "capacities": caps, "device": d.get("device"),
            **r}


def _nnls_relative(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimizing the sum of squared relative errors."""
    from scipy.optimize import nnls
    scale = X.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((X / scale) / y[:, None], np.ones_like(y))
    return coef / scale


def _fit(data, k: dict) -> dict:
    out = dict(k)
    for what, names in _FIT.items():
        X = np.array([[features(d["config"], k)[what][n] for n in names] for d in data], float)
        y = np.array([d[what] for d in data])
        for n, v in zip(names, _nnls_relative(X, y)):
            out[f"{what}_{n}"] = float(v)
    placed = [d for d in data if d["fmax_mhz"]]
    if placed:
        X = np.array([[_fmax_terms(d["config"])[n] for n in _FMAX] for d in placed])
        y = np.array([1000.0 / d["fmax_mhz"] for d in placed])
        for n, v in zip(_FMAX, _nnls_relative(X, y)):
            out[f"fmax_ns_{n}"] = float(v)
    return out


def _errors(data, predict) -> dict:
    err = {}
    for what in ("lut", "ff", "dsp", "bram", "fmax_mhz"):
        rel = []
        for i, d in enumerate(data):
            if d[what]:
                est = predict(i)[what]
                rel.append(abs(est - d[what]) / d[what] if est is not None else math.inf)
        err[what] = {"median": float(np.median(rel)) if rel else None,
                     "max": float(max(rel)) if rel else None, "results": len(rel)}
    return err


def _result_name(path: Path) -> str:
    return path.parent.name if path.name == "synth.json" else path.name


def calibrate(synth_files, base: dict | None = None) -> dict:
    """Fit the LUT, FF and Fmax coefficients to ``synth.json`` results; ``error`` holds
    each figure's relative error in-sample and leave-one-out (``loo``)."""
    data = [_read_synth(Path(p)) for p in synth_files]
    k = dict(base or _default())
    caps = {json.dumps(d["capacities"], sort_keys=True) for d in data}
    if len(caps) > 1:
        raise ResourceModelError("the synthesis results were built with different program "
                                 "capacities; calibrate on one set")
    n_coef = max(len(v) for v in _FIT.values())
    if len(data) <= n_coef:
        raise ResourceModelError(f"calibration needs more than {n_coef} synthesis results "
                                 f"(got {len(data)})")
    if sum(1 for d in data if d["fmax_mhz"]) <= len(_FMAX):
        raise ResourceModelError(f"calibration needs more than {len(_FMAX)} placed results "
                                 "(with fmax_mhz)")
    fit = _fit(data, k)

    def loo(i):
        rest = data[:i] + data[i + 1:]
        return estimate_resources(data[i]["config"], _fit(rest, k))
    fit.update(calibrated=True, device=data[0]["device"] or "",
               capacities=json.loads(caps.pop()),
               source=f"calibrated on {len(data)} synthesis results "
                      f"({sum(1 for d in data if d['fmax_mhz'])} placed)",
               results=[_result_name(Path(d["path"])) for d in data])
    fit["error"] = {"in_sample": _errors(data, lambda i: estimate_resources(data[i]["config"],
                                                                             fit)),
                    "loo": _errors(data, loo)}
    return fit


def _toml(k: dict) -> str:
    lines = ["# FPGA resource model of the core (reports/resources.py explains the form).",
             "# Written by: python -m reports.resources calibrate "
             "reports/data/synth/*.json --out reports/data/fpga_resources.toml", ""]
    order = [key for key in ("calibrated", "source", "device", "results") if key in k]
    order += [key for key in _KEYS] + [key for key in k if key not in order and key not in
                                       _KEYS and key not in ("error", "capacities")]
    for key in order:
        lines.append(f"{key} = {json.dumps(k[key])}")
    lines += ["", "[capacities]"]
    lines += [f"{n} = {v}" for n, v in k.get("capacities", {}).items()]
    for kind, errs in k.get("error", {}).items():
        lines += ["", f"[error.{kind}]"]
        for what, e in errs.items():
            if e["median"] is None:
                continue
            fields = ", ".join(f"{n} = {json.dumps(v)}" for n, v in e.items())
            lines.append(f"{what} = {{ {fields} }}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.resources",
                                 description="Fit the FPGA resource model to synth.json files.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("synth", nargs="+")
    c.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        k = calibrate(a.synth)
    except AxwError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from accel.fileio import atomic_write_text
    atomic_write_text(a.out, _toml(k))
    for kind, errs in k["error"].items():
        for what, e in errs.items():
            if e["median"] is not None:
                print(f"{kind:9s} {what:8s} median {100 * e['median']:5.1f} %  "
                      f"max {100 * e['max']:5.1f} %  ({e['results']} results)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
