"""How many endpoints of placed and routed seeds miss a clock: from the slack histograms
of `accel hdl --synth` folders (``synth.json``'s ``slack_histogram_per_seed``, or the
seeds' nextpnr logs of a folder written before it had them).

    python bench/synth_slack.py DIR... [--mhz 125]

Prints one JSON object per folder: each seed's Fmax, the target clock nextpnr timed
against, and ``failing``: the endpoints with negative slack at ``--mhz`` (default: the
target), between two bounds, as nextpnr's histogram draws them (``hdl.synth.endpoints_failing``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))   # after PYTHONPATH

from hdl.synth import SynthError, _slack_histogram, endpoints_failing  # noqa: E402


def seeds_of(folder: Path, at_mhz: float | None) -> dict:
    res = json.loads((folder / "synth.json").read_text())
    if not res.get("placed"):
        raise SynthError(f"{folder / 'synth.json'}: not placed (no slack to count)")
    target = res["target_mhz"]
    hists = res.get("slack_histogram_per_seed") or [
        _slack_histogram((folder / "synth" / f"nextpnr_seed{s}.log").read_text(errors="replace"))
        for s in res["seeds"]]
    at = at_mhz or target
    return {"dir": str(folder), "target_mhz": target, "at_mhz": at,
            "seeds": [{"seed": s, "fmax_mhz": f, "endpoints_failing": endpoints_failing(h, target, at)}
                      for s, f, h in zip(res["seeds"], res["fmax_mhz_per_seed"], hists)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="`accel hdl --synth` output folders")
    ap.add_argument("--mhz", type=float, default=None, help="the clock to count against")
    args = ap.parse_args(argv)
    try:
        if args.mhz is not None and not args.mhz > 0:
            raise SynthError(f"--mhz must be positive, got {args.mhz}")
        for d in args.dirs:
            print(json.dumps(seeds_of(d, args.mhz)))
    except (SynthError, OSError, KeyError, ValueError) as e:
        print(f"synth_slack: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
