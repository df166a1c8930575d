"""``accel hdl``: write the Verilog bundle of a problem (or just the core) and optionally
synthesize it.  Amaranth is imported only inside :func:`cmd_hdl` (through ``hdl``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_hdl_arguments", "cmd_hdl", "HDL_DESCRIPTION"]

HDL_DESCRIPTION = """\
Write DIR/axw_core.v (the core, deterministic Verilog), and with a problem also tb.v (a
self-checking test bench, top module tb, with a behavioural memory), prog.hex, mem.hex
and y_expected.hex ($readmemh images), config.json and files.f.  From DIR:
  iverilog -g2012 -o tb.vvp -c files.f && vvp -n tb.vvp
  verilator --binary -j 2 -f files.f --top-module tb && ./obj_dir/Vtb
print AXW_CYCLES <n> (equal to `accel run`'s cycles) and AXW_PASS or AXW_FAIL <n>, and
write y_rtl.hex.  Without a problem (no --a/--x/--w, --conv2d or --workload) only the
core for the hardware options is written.  --synth ecp5|ice40 also runs Yosys and
nextpnr (pip install "axw[synth]") and writes DIR/synth.json; the synthesized core has the
program-memory capacities of hdl.synth.SYNTH_CAPACITIES (max_tiles 32, max_blocks 16,
max_steps 128, max_lane_elems 256, max_lane_loads 128), each changed with
--synth-capacity NAME=N.  --synth-pack-only stops after nextpnr's packing (resource
counts and whether they fit, no fmax); --synth-top array synthesizes only the grid of
PEs, to time the datapath apart from the controller; --synth-top ports the core with a
register on every port, so that the paths through its ports are timed as well (out of
context nextpnr times none of them).  --lut-multipliers N builds the last
N PEs (row-major) with multipliers in logic instead of DSP blocks (same bits, same cycles),
for arrays with more PEs than the device has multipliers.  --dsp-primitive ecp5 writes the
other PEs' multipliers as ECP5 MULT18X18D blocks that hold the operand and product
registers themselves (the default of --synth ecp5; the bundle then also gets a
simulation model of the block, axw_models.v); none writes the portable `*`.
"""


def add_hdl_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import _add_run_arguments
    _add_run_arguments(p)
    g = p.add_argument_group("hdl")
    g.add_argument("--synth", choices=("ecp5", "ice40"),
                   help="synthesize the core and place and route it (3 seeds)")
    g.add_argument("--device", help="synthesis device (default LFE5U-85F CABGA381 / UP5K)")
    g.add_argument("--synth-capacity", action="append", default=[], type=_capacity,
                   metavar="NAME=N", help="program-memory capacity of the synthesized core, "
                   "e.g. max_lane_elems=256 (repeatable)")
    g.add_argument("--synth-seeds", type=_seeds, default=(1, 2, 3), metavar="S,S,...",
                   help="nextpnr placement seeds; fmax is the minimum (default 1,2,3)")
    g.add_argument("--synth-jobs", type=_jobs, default=1, metavar="N",
                   help="place and route N seeds at once, one nextpnr process each "
                   "(default 1)")
    g.add_argument("--synth-top", choices=("core", "array", "ports"), default="core",
                   help="what to synthesize: the whole core (default), only its grid of "
                   "PEs (the datapath without the controller), or the core with a register "
                   "on every port (times the paths through the ports, which out of context "
                   "are not timed)")
    g.add_argument("--lut-multipliers", type=int, default=0, metavar="N",
                   help="the last N PEs multiply in logic instead of DSP blocks (default 0)")
    g.add_argument("--dsp-primitive", choices=("auto", "none", "ecp5"), default="auto",
                   help="multipliers as ECP5 MULT18X18D instances with their own registers "
                   "(auto: for --synth ecp5 only) or as the portable `*` (none)")
    g.add_argument("--synth-widelut", action="store_true",
                   help="ECP5: let Yosys build LUT5-LUT7 from the slice muxes (fewer logic "
                   "levels, about 40%% more LUTs); default LUT4s only")
    g.add_argument("--synth-mapper", choices=("abc9", "abc", "abc-mean"),
                   default=None,
                   help="Yosys's LUT mapping: ABC's classic mapping in the place of "
                   "synth_ecp5's ABC9 (abc, ECP5 only; the ECP5 default: fewer logic levels), "
                   "the same with its cuts chosen for the mean logic level rather than the "
                   "deepest (abc-mean, ECP5 only) or ABC9 as the synth script runs it (abc9, "
                   "the iCE40 default)")
    g.add_argument("--synth-placer", choices=("heap", "static", "sa"), default="heap",
                   help="nextpnr's placer (default heap, nextpnr's own default)")
    g.add_argument("--synth-router", choices=("router1", "router2"), default="router1",
                   help="nextpnr's router (default router1, nextpnr's own default)")
    g.add_argument("--synth-pack-only", action="store_true",
                   help="stop after nextpnr's packing: LUT/FF/DSP/BRAM counts and whether "
                   "they fit, no placement and no fmax (minutes instead of tens of minutes)")


def _capacity(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not sep or n < 1:
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with N a positive integer, got {text!r}")
    return name.strip(), n


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    return seeds


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def cmd_hdl(args) -> int:
    from .cli import EXIT_OK, _check_run_flags, _hardware, _problem
    from .compiler import build_memory, compile_problem
    from .errors import AxwError
    from .reference import reference
    from hdl.bundle import write_bundle

    _check_run_flags(args)
    for flag, on in (("--synth-pack-only", args.synth_pack_only),
                     ("--synth-top", args.synth_top != "core"),
                     ("--synth-widelut", args.synth_widelut),
                     ("--synth-mapper", args.synth_mapper is not None),
                     ("--synth-placer", args.synth_placer != "heap"),
                     ("--synth-router", args.synth_router != "router1"),
                     ("--synth-jobs", args.synth_jobs != 1)):
        if on and not args.synth:
            raise AxwError(f"{flag} needs --synth ecp5|ice40")
    cfg = _hardware(args)
    if args.synth_widelut and args.synth != "ecp5":
        raise AxwError(f"--synth-widelut is an ECP5 option, not one for {args.synth}")
    if args.synth_mapper not in (None, "abc9") and args.synth != "ecp5":
        raise AxwError(f"--synth-mapper {args.synth_mapper} is an ECP5 option, "
                       f"not one for {args.synth}")
    if args.dsp_primitive == "ecp5" and args.synth not in (None, "ecp5"):
        raise AxwError(f"--dsp-primitive ecp5 cannot be synthesized for {args.synth}")
    prim = ("ecp5" if args.dsp_primitive == "ecp5" or (args.dsp_primitive == "auto"
                                                       and args.synth == "ecp5") else None)
    out = Path(args.out) if args.out else Path("hdl_out")
    has_problem = bool(args.a or args.conv2d or args.workload)
    if not has_problem:
        info = write_bundle(out, cfg, lut_multipliers=args.lut_multipliers, dsp_primitive=prim)
        print(f"out dir      {out}")
        print(f"files        {', '.join(info['files'])}")
    else:
        name, source = _problem(args, cfg)
        if not hasattr(source, "parts"):
            raise AxwError(f"{name}: accel hdl takes a single-layer problem")
        prog = compile_problem(source, cfg, args.order)
        mem = build_memory(source, prog)
        expected = reference(source, prog.meta["order"])
        info = write_bundle(out, cfg, prog, mem, expected, stall_permille=args.stall_permille,
                            stall_seed=args.stall_seed, lut_multipliers=args.lut_multipliers,
                            dsp_primitive=prim)
        print(f"out dir      {out}")
        print(f"files        {', '.join(info['files'])}")
    if args.synth:
        from hdl.synth import synth_params, synthesize
        params = synth_params(cfg, args.lut_multipliers, prim, **dict(args.synth_capacity))
        res = synthesize(out, cfg, args.synth, device=args.device, seeds=args.synth_seeds,
                         params=params, place=not args.synth_pack_only, top=args.synth_top,
                         widelut=args.synth_widelut, lut_mapper=args.synth_mapper,
                         placer=args.synth_placer, router=args.synth_router,
                         jobs=args.synth_jobs)
        caps = ", ".join(f"{k} {v}" for k, v in res["capacities"].items())
        timing = (f"fmax {res['fmax_mhz']:.1f} MHz (min of seeds "
                  f"{','.join(map(str, res['seeds']))})" if res["placed"] else
                  f"packed only, {'fits' if res['fits'] else 'does NOT fit'} the device")
        print(f"synth        {res['device']}: lut {res['lut']}, ff {res['ff']}, dsp {res['dsp']}, "
              f"bram {res['bram']}, {timing}")
        if res["lut_multipliers"]:
            print(f"multipliers  {res['lut_multipliers']} of {cfg.pes} PEs in logic")
        slow = [k for k, v in res["bram_outputs"].items() if v["logic"] and not v.get("outreg")]
        if slow:
            print(f"bram outputs {len(slow)} of {len(res['bram_outputs'])} block RAMs without "
                  f"their output register feed logic (synth.json: bram_outputs)")
        ld = res["logic_depth"]
        deep = ", ".join(g["name"] for g in ld["groups"] if g["over"])
        print(f"logic depth  max {ld['max']} levels; {ld['over']} of {ld['endpoints']} endpoints "
              f"deeper than {ld['threshold']}" + (f" ({deep})" if deep else "")
              + " (synth.json: logic_depth)")
        ports = [f"{d['port']} {d['levels']}" for d in ld["outputs"][:1] + ld["inputs"][:1]
                 if d["levels"]]
        if ports:
            print(f"port paths   deepest through the ports, not timed out of context: "
                  f"{', '.join(ports)} levels (synth.json: logic_depth.outputs, .inputs)")
        print(f"capacities   {caps}")
        print(f"synth.json   {out / 'synth.json'}")
    return EXIT_OK
