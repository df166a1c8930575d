"""FPGA resource model (LUT, FF, DSP, BRAM, Fmax) of a HardwareConfig, with a calibrator.

The form is fixed (per-PE, per-row and per-column terms; memory bits to block RAMs) and
the coefficients live in a TOML table, ``reports/data/fpga_resources.toml`` by default.
Those default coefficients are UNCALIBRATED estimates until :func:`calibrate` fits them to
synthesis results::

    python -m reports.resources calibrate run1/synth.json run2/synth.json ... --out fit.toml

A synth.json is read as ``{"config": {HardwareConfig fields}, "lut": N, "ff": N,
"dsp": N, "bram": N, "fmax_mhz": F}`` (the keys may also sit under ``"resources"``).
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

__all__ = ["ResourceModelError", "load_coefficients", "estimate_resources", "features",
           "calibrate"]

_KEYS = ("lut_base", "lut_per_pe", "lut_per_pe_bit", "lut_per_row", "lut_per_col", "ff_base",
         "ff_per_pe", "ff_per_pe_bit", "ff_per_row", "ff_per_col", "dsp_per_pe", "dsp_width",
         "bram_bits", "lutram_max_bits", "fmax_base_mhz", "fmax_log2_pe")


class ResourceModelError(AxwError):
    """A resource table or a synthesis result is malformed."""


def load_coefficients(path: str | Path | None = None) -> dict:
    d, where = read_toml(path, ResourceModelError,
                         default=("reports", "data/fpga_resources.toml"))
    known = set(_KEYS) | {"calibrated", "source", "error"}
    unknown = sorted(set(d) - known)
    missing = [k for k in _KEYS if k not in d]
    if unknown or missing:
        raise ResourceModelError(f"{where}: unknown key(s) {unknown} / missing key(s) {missing}")
    return d


_DEFAULT: list = []


def _default() -> dict:
    if not _DEFAULT:
        _DEFAULT.append(load_coefficients())
    return _DEFAULT[0]


def _blocks(bits, k) -> int:
    return 0 if bits <= k["lutram_max_bits"] else math.ceil(bits / k["bram_bits"])


def features(cfg: HardwareConfig) -> dict:
    """The model's linear terms for LUT and FF."""
    P = cfg.pes
    return {"base": 1.0, "per_pe": P, "per_pe_bit": P * cfg.acc_bits, "per_row": cfg.rows,
            "per_col": cfg.cols}


def estimate_resources(cfg: HardwareConfig, coeffs: dict | None = None) -> dict:
    """``lut, ff, dsp, bram, fmax_mhz`` and whether the coefficients are calibrated."""
    k = coeffs or _default()
    f = features(cfg)
    lut = sum(k[f"lut_{n}"] * v for n, v in f.items())
    ff = sum(k[f"ff_{n}"] * v for n, v in f.items())
    dsp = k["dsp_per_pe"] * cfg.pes * math.ceil(cfg.operand_bits / k["dsp_width"])
    elem = cfg.operand_bits + cfg.lmem_addr_bits + cfg.slot_bits + 3
    a = cfg.acc_bits
    bram = (cfg.pes * _blocks(2 * cfg.lmem_depth * a, k)
            + cfg.rows * _blocks(2 * cfg.out_bank_depth * cfg.cols * a, k)
            + cfg.rows * _blocks(cfg.stream_fifo_depth * elem, k)
            + cfg.rows * _blocks(cfg.load_fifo_depth * cfg.cols * a, k))
    fmax = k["fmax_base_mhz"] / (1.0 + k["fmax_log2_pe"] * math.log2(max(cfg.pes, 1)))
    return {"lut": round(lut), "ff": round(ff), "dsp": int(dsp), "bram": int(bram),
            "fmax_mhz": round(fmax, 1), "resources_calibrated": bool(k.get("calibrated"))}


def _read_synth(path: Path):
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResourceModelError(f"{path}: cannot read synthesis result ({e})") from None
    r = d.get("resources", d)
    try:
        cfg = HardwareConfig.from_dict(d["config"], source=str(path))
        return cfg, {k: float(r[k]) for k in ("lut", "ff", "dsp", "bram", "fmax_mhz")}
    except KeyError as e:
        raise ResourceModelError(f"{path}: missing key {e}") from None


def calibrate(synth_files, base: dict | None = None) -> dict:
    """Least-squares LUT and FF coefficients and the Fmax curve from synthesis results;
    the relative error of each figure is returned under ``error``."""
    data = [_read_synth(Path(p)) for p in synth_files]
    if len(data) < 2:
        raise ResourceModelError("calibration needs at least 2 synthesis results")
    k = dict(base or _default())
    names = list(features(data[0][0]))
    X = np.array([[features(c)[n] for n in names] for c, _ in data], float)
    for what in ("lut", "ff"):
        y = np.array([r[what] for _, r in data])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        for n, v in zip(names, coef):
            k[f"{what}_{n}"] = float(v)
    # 1/fmax = (1 + a·log2 P) / f0 is linear in log2 P
    lp = np.array([math.log2(c.pes) for c, _ in data])
    inv = np.array([1.0 / r["fmax_mhz"] for _, r in data])
    slope, icpt = np.polyfit(lp, inv, 1) if len(set(lp)) > 1 else (0.0, inv.mean())
    k["fmax_base_mhz"] = float(1.0 / icpt)
    k["fmax_log2_pe"] = float(slope / icpt)
    k["calibrated"] = True
    k["source"] = f"calibrated on {len(data)} synthesis result(s)"
    err = {}
    for what in ("lut", "ff", "dsp", "bram", "fmax_mhz"):
        rel = [abs(estimate_resources(c, k)[what] - r[what]) / r[what] for c, r in data if r[what]]
        err[what] = {"median": float(np.median(rel)) if rel else None,
                     "max": float(max(rel)) if rel else None}
    k["error"] = err
    return k


def _toml(k: dict) -> str:
    lines = []
    for key, v in k.items():
        if key == "error":
            continue
        lines.append(f"{key} = {json.dumps(v)}")
    lines.append("")
    lines.append("[error]")
    for what, e in k.get("error", {}).items():
        lines.append(f"{what} = {{ median = {e['median']}, max = {e['max']} }}")
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
    print(json.dumps(k["error"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
