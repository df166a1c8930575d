"""Markdown table of synthesis results (``synth.json`` files of ``accel hdl --synth``) and
the resource model's estimate of each:

    python bench/synth_table.py reports/data/synth/*.json

Placed results show fmax (minimum over their seeds) and the critical path's logic levels;
packed-only results show whether they fit the device.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accel.config import HardwareConfig  # noqa: E402
from reports.resources import estimate_resources  # noqa: E402

_DEFAULTS = HardwareConfig()


def _shape(cfg: HardwareConfig) -> str:
    extra = [f"{f} {getattr(cfg, f)}" for f in ("acc_bits", "lmem_depth", "out_bank_depth",
                                                 "stream_fifo_depth", "load_fifo_depth", "wb_vectors")
             if getattr(cfg, f) != getattr(_DEFAULTS, f)]
    return f"{cfg.rows}×{cfg.cols}" + (f" ({', '.join(extra)})" if extra else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("synth", nargs="+")
    a = ap.parse_args(argv)
    rows = []
    for path in a.synth:
        d = json.loads(Path(path).read_text())
        cfg = HardwareConfig.from_dict(d["config"])
        est = estimate_resources(cfg)
        if d.get("placed"):
            seeds = ",".join(str(s) for s in d["seeds"])
            timing = (f"{d['fmax_mhz']:.1f} (seed {seeds}; model {est['fmax_mhz']:.1f}), "
                      f"{d['critical_path'].get('logic_levels', '?')} levels")
        else:
            timing = "packed only: " + ("fits" if d.get("fits") else "**does not fit**")
        wall = sum(d.get("wall_s", {}).values()) / 60
        rows.append((cfg.pes, cfg.rows, str(path), "| " + " | ".join([
            _shape(cfg), f"{d['lut']:,} ({est['lut']:,})", f"{d['ff']:,} ({est['ff']:,})",
            f"{d['dsp']} ({est['dsp']})", f"{d['bram']} ({est['bram']})",
            f"{d['yosys_cells'].get('TRELLIS_DPR16X4', 0):,}", timing,
            f"{wall:.0f} min"]) + " |"))
    print("| array | lut (model) | ff (model) | dsp (model) | bram (model) | DPR16X4 | "
          "fmax MHz / fit | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for *_, line in sorted(rows):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
