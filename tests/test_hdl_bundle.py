"""The Verilog bundle (hdl.bundle, `accel hdl`): runs under Icarus and Verilator with the
simulator's cycle count and the reference output; deterministic; lint of the core.

Without a tool the tests skip, except in CI (CI=true), where a missing tool fails."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from accel.cli import main
from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig
from accel.reference import reference
from hdl.bundle import LINT_WAIVERS, write_bundle
from hdl.image import lmem_unified
from sim import simulate
from conftest import in_ci
from contract_suite import _cfg, random_problem


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


def _bundle(tmp_path, problem, cfg, order, stall_permille=0, dsp_primitive=None, **kw):
    prog = compile_problem(problem, cfg, order, **kw)
    mem = build_memory(problem, prog)
    want = simulate(prog, mem, stall_permille=stall_permille)
    y = reference(problem, order)
    write_bundle(tmp_path, cfg, prog, mem, y, stall_permille=stall_permille,
                 dsp_primitive=dsp_primitive)
    return prog, want, y


def _run_icarus(d):
    need_tool("iverilog")
    subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-c", "files.f"], cwd=d, check=True)
    return subprocess.run(["vvp", "-n", "tb.vvp"], cwd=d, check=True, capture_output=True,
                          text=True).stdout


def _run_verilator(d):
    need_tool("verilator")
    subprocess.run(["verilator", "--binary", "-j", "2", "-f", "files.f", "--top-module", "tb"],
                   cwd=d, check=True, capture_output=True)
    return subprocess.run(["./obj_dir/Vtb"], cwd=d, check=True, capture_output=True,
                          text=True).stdout


def _check(out, d, prog, want_cycles, y):
    lines = [ln for ln in out.splitlines() if ln.startswith("AXW_")]
    assert lines[:2] == [f"AXW_CYCLES {want_cycles}", "AXW_PASS"], out
    bits = prog.tensors[prog.tensor_id("Y")]["bits"]
    got = [int(v, 16) for v in (d / "y_rtl.hex").read_text().split()]
    got = np.array([v - (1 << bits) if v >> (bits - 1) else v for v in got]).reshape(y.shape)
    np.testing.assert_array_equal(got, y)


CASES = {
    "empty-rows": (lambda: random_problem(3, 11, 9, 6, 5, dens_a=0.15),
                   _cfg(rows=3, cols=2), "a(xw)", {}),
    # two output vectors per writeback step: the lanes reach the requantizers through the
    # selection (the other cases give every lane its own)
    "split-long-row": (lambda: _long_row(), _cfg(rows=4, cols=3, lmem_depth=64, wb_vectors=2),
                       "(ax)w", {}),
    "k-tiles-broadcast": (lambda: random_problem(9, 13, 17, 11, 7, dens_a=0.3),
                          _cfg(rows=2, cols=3, lmem_depth=5, out_bank_depth=5), "a(xw)",
                          {"d_mode": "broadcast", "row_blocks": 2}),
}


def _long_row():
    from accel.contract import make_contract
    from accel.problem import make_problem
    rng = np.random.default_rng(8)
    a = np.zeros((10, 40), np.int64)
    for r in range(10):
        a[r, rng.choice(40, 2, replace=False)] = rng.integers(1, 128, 2)
    a[4, :] = rng.integers(-128, 128, 40) | 1
    return make_problem(a, rng.integers(-128, 128, (40, 5)), rng.integers(-128, 128, (5, 4)),
                        make_contract("exact"), "long")


@pytest.mark.parametrize("name", sorted(CASES))
def test_icarus_runs_the_bundle_cycle_exact(tmp_path, name):
    build, cfg, order, kw = CASES[name]
    prog, want, y = _bundle(tmp_path, build(), cfg, order, **kw)
    _check(_run_icarus(tmp_path), tmp_path, prog, want.cycles, y)


def test_verilator_runs_the_bundle_cycle_exact(tmp_path):
    build, cfg, order, kw = CASES["split-long-row"]
    prog, want, y = _bundle(tmp_path, build(), cfg, order, **kw)
    assert prog.arrays["wb_merge"].any()
    _check(_run_verilator(tmp_path), tmp_path, prog, want.cycles, y)


@pytest.mark.parametrize("run", [_run_icarus, _run_verilator], ids=["icarus", "verilator"])
def test_bundle_with_ecp5_multiplier_blocks_and_lut_multipliers(tmp_path, run):
    # the netlist that ECP5 synthesis maps: MULT18X18D instances (simulated by the
    # bundle's model) for the first PEs, logic multipliers for the last 4; wide values
    problem = random_problem(21, 12, 10, 7, 6, mode="extreme")
    cfg = _cfg(rows=3, cols=3)
    prog = compile_problem(problem, cfg, "(ax)w")
    mem = build_memory(problem, prog)
    want = simulate(prog, mem)
    y = reference(problem, "(ax)w")
    write_bundle(tmp_path, cfg, prog, mem, y, lut_multipliers=4, dsp_primitive="ecp5")
    core = (tmp_path / "axw_core.v").read_text()
    assert core.count("MULT18X18D") == 5 * len(cfg.wide_chunks)
    # no block RAM instance, so no block RAM model (Icarus would make it a top of its own)
    assert "module DP16KD" not in (tmp_path / "axw_models.v").read_text()
    assert (tmp_path / "files.f").read_text().split() == ["axw_models.v", "axw_core.v", "tb.v"]
    _check(run(tmp_path), tmp_path, prog, want.cycles, y)


def test_icarus_with_ecp5_multiplier_blocks_taking_whole_operands(tmp_path):
    # acc_bits 16: each MULT18X18D takes the local memory's value and the streamed one
    # whole (hdl.pe.whole_operands); the last 2 PEs multiply in logic; both operand roles
    problem = random_problem(22, 12, 10, 7, 6, acc_bits=16, mode="extreme")
    cfg = _cfg(rows=3, cols=3, acc_bits=16)
    prog = compile_problem(problem, cfg, "(ax)w")
    mem = build_memory(problem, prog)
    want = simulate(prog, mem)
    y = reference(problem, "(ax)w")
    write_bundle(tmp_path, cfg, prog, mem, y, lut_multipliers=2, dsp_primitive="ecp5")
    assert (tmp_path / "axw_core.v").read_text().count("MULT18X18D #(") == 7
    _check(_run_icarus(tmp_path), tmp_path, prog, want.cycles, y)


def test_icarus_with_memory_stalls_and_latency_zero(tmp_path):
    problem = random_problem(15, 12, 10, 6, 5, dens_a=0.3)
    cfg = _cfg(rows=3, cols=2, dram_latency_cycles=0)
    prog = compile_problem(problem, cfg, "a(xw)")
    mem = build_memory(problem, prog)
    want = simulate(prog, mem, stall_permille=300)
    y = reference(problem, "a(xw)")
    write_bundle(tmp_path, cfg, prog, mem, y, stall_permille=300)
    _check(_run_icarus(tmp_path), tmp_path, prog, want.cycles, y)


_REQUEST_LAG = dict(rows=3, cols=2, dram_bytes_per_cycle=6, request_lag_cycles=3)
_CREDIT_LAG = dict(rows=2, cols=2, stream_fifo_depth=6, load_fifo_depth=6,
                   request_lag_cycles=3, credit_lag_cycles=1)


@pytest.mark.parametrize("latency, problem, hw, without", [
    # requests decided three cycles ahead: refused requests come back out of order and the
    # FIFOs fill out of order (docs/machine.md rule 0)
    (0, (16, 12, 10, 6, 5), _REQUEST_LAG, {"request_lag_cycles": 0}),
    (3, (16, 12, 10, 6, 5), _REQUEST_LAG, {"request_lag_cycles": 0}),
    # a stream FIFO in block RAM: its head and the entry after it in registers
    (3, (16, 12, 10, 6, 5), {**_REQUEST_LAG, "stream_fifo_depth": 64}, {"request_lag_cycles": 0}),
    # and the grants registered (the credit lag), where the bandwidth binds
    (0, (83, 10, 3, 4, 9), {**_CREDIT_LAG, "dram_bytes_per_cycle": 2}, {"credit_lag_cycles": 0}),
    (3, (29, 10, 3, 4, 9), {**_CREDIT_LAG, "dram_bytes_per_cycle": 4}, {"credit_lag_cycles": 0}),
])
def test_icarus_with_lags(tmp_path, latency, problem, hw, without):
    # with memory stalls; the lag changes the cycle count, and the core the same way
    problem = random_problem(*problem, dens_a=0.3)
    cfg = _cfg(dram_latency_cycles=latency, **hw)
    prog = compile_problem(problem, cfg, "a(xw)")
    mem = build_memory(problem, prog)
    want = simulate(prog, mem, stall_permille=300)
    prog0 = compile_problem(problem, cfg.with_(**without), "a(xw)")
    assert want.cycles != simulate(prog0, build_memory(problem, prog0), stall_permille=300).cycles
    y = reference(problem, "a(xw)")
    write_bundle(tmp_path, cfg, prog, mem, y, stall_permille=300)
    _check(_run_icarus(tmp_path), tmp_path, prog, want.cycles, y)


def test_verilator_with_a_credit_lag(tmp_path):
    build, cfg, order, kw = CASES["split-long-row"]
    # with a stream FIFO in block RAM (hdl.image.stream_fifo_copies)
    cfg = cfg.with_(request_lag_cycles=4, credit_lag_cycles=1, stream_fifo_depth=64)
    prog, want, y = _bundle(tmp_path, build(), cfg, order, stall_permille=200, **kw)
    _check(_run_verilator(tmp_path), tmp_path, prog, want.cycles, y)


def test_verilator_with_registered_local_memory_reads(tmp_path):
    # lmem_read_cycles 2 (one PE stage more) with the pipelined requests, and stream
    # FIFOs in block RAM (three copies each, read two cycles ahead)
    build, cfg, order, kw = CASES["split-long-row"]
    cfg = cfg.with_(request_lag_cycles=4, credit_lag_cycles=1, lmem_read_cycles=2,
                    stream_fifo_depth=64)
    prog, want, y = _bundle(tmp_path, build(), cfg, order, stall_permille=200, **kw)
    _check(_run_verilator(tmp_path), tmp_path, prog, want.cycles, y)


@pytest.mark.parametrize("lmem_depth,per_pe,read", [(64, 1, 2), (512, 2, 2), (64, 1, 3)])
@pytest.mark.parametrize("run", [_run_icarus, _run_verilator], ids=["icarus", "verilator"])
def test_bundle_with_ecp5_block_rams_holding_the_read_register(tmp_path, run, lmem_depth,
                                                               per_pe, read):
    # lmem_read_cycles 2 and the ECP5 primitives: each PE's local memory a DP16KD with
    # its output register (the model in axw_models.v, whose read of a word written in
    # the same cycle is undefined), both banks in one when they fit it together
    # (hdl.image.lmem_unified), else one per bank, and so is each of the three copies of every lane's
    # block-RAM stream FIFO under the lag; the multipliers MULT18X18D.  With 3 the
    # selected operands are registered once more in front of the multipliers
    build, cfg, order, kw = CASES["split-long-row"]
    cfg = cfg.with_(request_lag_cycles=4, credit_lag_cycles=1, lmem_read_cycles=read,
                    lmem_depth=lmem_depth, stream_fifo_depth=64)
    assert lmem_unified(cfg, "ecp5") == (per_pe == 1)
    prog, want, y = _bundle(tmp_path, build(), cfg, order, stall_permille=200,
                            dsp_primitive="ecp5", **kw)
    core = (tmp_path / "axw_core.v").read_text()
    blocks = per_pe * cfg.pes + 3 * cfg.rows
    assert core.count("DP16KD #(") == blocks and core.count('"OUTREG"') == 2 * blocks
    assert all(f"sfifo{i}_2 (" in core for i in range(cfg.rows))
    assert ("op_wide_q" in core) == (read == 3)
    _check(run(tmp_path), tmp_path, prog, want.cycles, y)


def test_verilator_with_a_request_lag(tmp_path):
    build, cfg, order, kw = CASES["split-long-row"]
    cfg = cfg.with_(request_lag_cycles=2)
    prog, want, y = _bundle(tmp_path, build(), cfg, order, stall_permille=200, **kw)
    _check(_run_verilator(tmp_path), tmp_path, prog, want.cycles, y)


def test_verilator_with_the_writeback_registered_and_two_columns(tmp_path):
    # request lag 7 with the credit lag: the writeback's data path with four registers
    # (hdl.image.wb_registers); two columns: an issue window of one entry, whose
    # read-done check once compared a tile with a constant 0 (Verilator's UNSIGNED)
    build, cfg, order, kw = CASES["empty-rows"]
    cfg = cfg.with_(request_lag_cycles=7, credit_lag_cycles=1)
    assert cfg.cols == 2
    prog, want, y = _bundle(tmp_path, build(), cfg, order, stall_permille=250, **kw)
    _check(_run_verilator(tmp_path), tmp_path, prog, want.cycles, y)


def test_accel_hdl_matches_accel_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = np.where(rng.random((9, 7)) < 0.4, rng.integers(-128, 128, (9, 7)), 0)
    for name, m in (("a", a), ("x", rng.integers(-128, 128, (7, 5))),
                    ("w", rng.integers(-128, 128, (5, 4)))):
        np.save(tmp_path / f"{name}.npy", m)
    (tmp_path / "hw.toml").write_text('preset = "tiny"\nrows = 2\ncols = 3\n')
    common = ["--a", str(tmp_path / "a.npy"), "--x", str(tmp_path / "x.npy"), "--w",
              str(tmp_path / "w.npy"), "--config", str(tmp_path / "hw.toml")]
    assert main(["run", *common, "--out", str(tmp_path / "run")]) == 0
    assert main(["hdl", *common, "--out", str(tmp_path / "b")]) == 0
    cycles = json.loads((tmp_path / "run" / "stats.json").read_text())["cycles"]
    cfg = HardwareConfig.from_json((tmp_path / "b" / "config.json").read_text())
    assert cfg.id == json.loads((tmp_path / "run" / "config.json").read_text())["id"]
    out = _run_icarus(tmp_path / "b")
    assert f"AXW_CYCLES {cycles}" in out and "AXW_PASS" in out
    assert (tmp_path / "b" / "files.f").read_text().split() == ["axw_core.v", "tb.v"]
    # deterministic: a second bundle is byte-identical
    assert main(["hdl", *common, "--out", str(tmp_path / "b2")]) == 0
    for f in ("axw_core.v", "tb.v", "prog.hex", "mem.hex", "y_expected.hex", "config.json"):
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "b2" / f).read_bytes(), f


def test_accel_hdl_without_a_problem_writes_the_core(tmp_path):
    assert main(["hdl", "--rows", "2", "--cols", "2", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["axw_core.v", "config.json", "files.f"]


def test_a_yosys_failure_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    # a core too large for the 4 GB of the WebAssembly Yosys that converts it to Verilog
    # fails with libc++abi: bad_alloc; stood in for here by a conversion that fails so
    from amaranth._toolchain.yosys import YosysError
    from amaranth.back import verilog

    def fail(core, *a, **k):
        core._MustUse__silence = True      # Amaranth's "never elaborated" warning
        raise YosysError("libc++abi: bad_alloc was thrown in -fno-exceptions mode\nmore")
    monkeypatch.setattr(verilog, "convert", fail)
    out = tmp_path / "b"
    assert main(["hdl", "--rows", "2", "--cols", "2", "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["accel: error: Yosys could not write the Verilog of the 2×2 core (libc++abi: "
                   "bad_alloc was thrown in -fno-exceptions mode)"]
    assert not out.exists()


def test_verilog_leaves_out_all_zero_memory_contents():
    """Memories whose contents are all zero get no initial block (the Icarus and Verilator
    runs above check that the core never reads a word it has not written); contents that
    are not all zero stay, and the backend is restored afterwards."""
    import re

    from amaranth.back import rtlil
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from hdl.bundle import component_verilog, core_verilog
    from hdl.image import CoreParams

    class Two(wiring.Component):
        def __init__(self):
            super().__init__({"addr": In(2), "a": Out(8), "b": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.ma = ma = Memory(shape=8, depth=4, init=[0x5a, 1])
            m.submodules.mb = mb = Memory(shape=8, depth=4, init=[])
            for mem, out in ((ma, self.a), (mb, self.b)):
                rp = mem.read_port(domain="comb")
                m.d.comb += [rp.addr.eq(self.addr), out.eq(rp.data)]
            return m
    emit = rtlil.ModuleEmitter.emit_memory
    text = component_verilog(Two(), "two")
    assert rtlil.ModuleEmitter.emit_memory is emit
    assert "8'h5a" in text
    inits = re.findall(r"^\s*(\w+)\[\d+\] = ", text, re.M)
    assert inits and set(inits) == {"ma"}, inits
    core = core_verilog(CoreParams(HardwareConfig(rows=2, cols=2)))
    assert not re.search(r"^\s*\w+\[\d+\] = ", core, re.M)


@pytest.mark.parametrize("args,message", [
    (["--lut-multipliers", "9"], "lut_multipliers must be an integer in 0..4 (the PEs), got 9"),
    (["--dsp-primitive", "ecp5", "--synth", "ice40"],
     "--dsp-primitive ecp5 cannot be synthesized for ice40"),
    (["--synth-widelut"], "--synth-widelut needs --synth ecp5|ice40"),
    (["--synth-widelut", "--synth", "ice40"], "--synth-widelut is an ECP5 option, not one for ice40"),
    (["--synth-mapper", "abc9"], "--synth-mapper needs --synth ecp5|ice40"),
    (["--synth-mapper", "abc", "--synth", "ice40"],
     "--synth-mapper abc is an ECP5 option, not one for ice40"),
    (["--synth-mapper", "abc-mean", "--synth", "ice40"],
     "--synth-mapper abc-mean is an ECP5 option, not one for ice40"),
    (["--synth-placer", "static"], "--synth-placer needs --synth ecp5|ice40"),
    (["--synth-router", "router2"], "--synth-router needs --synth ecp5|ice40"),
    (["--synth-jobs", "2"], "--synth-jobs needs --synth ecp5|ice40"),
])
def test_accel_hdl_rejects_bad_synthesis_options(tmp_path, capsys, args, message):
    out = tmp_path / "b"
    assert main(["hdl", "--rows", "2", "--cols", "2", *args, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"accel: error: {message}"]
    assert not out.exists()


@pytest.mark.parametrize("jobs", ["0", "two"])
def test_accel_hdl_rejects_a_bad_job_count(tmp_path, capsys, jobs):
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as exc:
        main(["hdl", "--rows", "2", "--cols", "2", "--synth", "ecp5", "--synth-jobs", jobs,
              "--out", str(out)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"accel hdl: error: argument --synth-jobs: expected a positive integer, got {jobs!r}")
    assert not out.exists()


def test_accel_hdl_writes_the_ecp5_netlist_with_its_model(tmp_path):
    assert main(["hdl", "--rows", "2", "--cols", "2", "--dsp-primitive", "ecp5",
                 "--lut-multipliers", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "files.f").read_text().split() == ["axw_models.v", "axw_core.v"]
    assert (tmp_path / "axw_core.v").read_text().count("MULT18X18D #(") == 3 * 2


@pytest.mark.parametrize("lags", [{}, {"request_lag_cycles": 2},
                                  {"request_lag_cycles": 3, "credit_lag_cycles": 1},
                                  {"request_lag_cycles": 8, "credit_lag_cycles": 1}])
def test_core_lints_clean_with_the_documented_waivers(tmp_path, lags):
    need_tool("verilator")
    cfg = HardwareConfig(rows=2, cols=3, lmem_depth=16, out_bank_depth=8, **lags)
    write_bundle(tmp_path, cfg)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "axw_core.v"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert LINT_WAIVERS == ("WIDTH", "UNUSEDSIGNAL", "DECLFILENAME", "CASEINCOMPLETE")
