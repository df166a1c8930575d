"""Where the LUTs of a synthesized core are: its logic LUTs by the register (or output
port) whose input cone they are in, from the netlist `accel hdl --synth` left behind.

    python bench/lut_cones.py DIR [--most 40]

DIR is an `accel hdl --synth ecp5|ice40 --out DIR` folder (``--synth-pack-only`` is
enough): its ``synth.json`` names the target and the top, ``DIR/synth/<top>.json`` is
Yosys's netlist.  Prints one JSON object (``hdl.synth.lut_cones``): the total logic LUTs
(an ECP5 carry cell counts two, as nextpnr's TRELLIS_COMB does; distributed RAM is not
counted), the largest cones by signal (the PEs' registers of one name together, digits
written ``#``; a LUT shared by k cones counts 1/k to each) and the rest.  An 8×8
core's netlist takes about 7 s and 0.45 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))   # after PYTHONPATH

from hdl.synth import TOPS, SynthError, lut_cones  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="an `accel hdl --synth` output folder")
    ap.add_argument("--most", type=int, default=40, help="cones listed (default 40)")
    args = ap.parse_args(argv)
    try:
        if args.most < 1:
            raise SynthError(f"--most must be at least 1, got {args.most}")
        res = json.loads((args.dir / "synth.json").read_text())
        top = TOPS.get(res.get("top"))
        if top is None or "target" not in res:
            raise SynthError(f"{args.dir / 'synth.json'}: no known top and target "
                             f"(top {res.get('top')!r})")
        path = args.dir / "synth" / f"{top}.json"
        net = json.loads(path.read_text())
        out = {"netlist": str(path), "target": res["target"], "top": top,
               **lut_cones(net, top, res["target"], args.most)}
    except (OSError, ValueError, SynthError) as e:
        print(f"lut_cones: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
