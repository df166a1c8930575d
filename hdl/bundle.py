"""The Verilog bundle: the core, a self-checking test bench ``tb`` with a behavioural
memory, ``$readmemh`` images of the Program and the operands, the expected output,
``config.json`` and ``files.f``.

Everything written is deterministic (no dates, no source locations), so two runs on the
same inputs give byte-identical bundles.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from accel.config import HardwareConfig
from accel.fileio import atomic_write_text
from accel.program import Program

from .image import (CYCLE_BITS, CoreParams, HdlError, Image, ecp5_fifo_outreg,
                    ecp5_lmem_outreg, pack)
from .models import MODELS_FILE, models_verilog

__all__ = ["core_verilog", "component_verilog", "write_bundle", "TOP", "CORE"]

#: Module names of the test bench and of the core.
TOP = "tb"
CORE = "axw_core"


#: Verilator lint waivers of the core (docs/rtl.md explains each); written at the top of
#: the core's file so that `verilator -Wall` and `verilator --binary` accept it as is.
LINT_WAIVERS = ("WIDTH", "UNUSEDSIGNAL", "DECLFILENAME", "CASEINCOMPLETE")


@contextmanager
def _no_zero_init():
    """Within the block, Amaranth's RTLIL backend leaves out the initial contents of a
    memory that are all zero (the core's local memories, output banks and FIFOs, and its
    program tables unless an image fills them).  Amaranth 0.5 always writes a memory's
    every bit as a constant, one object per bit while it builds the RTLIL: 25 M at 16×16,
    which took 17.5 GB of RAM and then more than the 4 GB of the WebAssembly Yosys that
    turns the RTLIL into Verilog; the Verilog then held an initial block per word.  The
    core never reads a word before it has written it in the same run (the contract tests
    check it at the Verilog level, where Icarus starts such memories at x; a second run
    finds the first one's contents), so nothing depends on them; on the FPGA a block or
    distributed RAM without initial contents starts at 0."""
    from amaranth.back import rtlil

    orig = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            orig(self, cell_idx, cell)
    rtlil.ModuleEmitter.emit_memory = emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = orig


def component_verilog(component, name: str, *, what: str | None = None) -> str:
    """Verilog of an Amaranth component as module ``name`` (``emit_src=False``), its
    all-zero memory contents left out (:func:`_no_zero_init`); a Yosys failure is an
    HdlError naming ``what`` (default: the module)."""
    from amaranth._toolchain.yosys import YosysError
    from amaranth.back import verilog

    try:
        with _no_zero_init():
            return verilog.convert(component, name=name, emit_src=False)
    except YosysError as e:
        lines = str(e).strip().splitlines()
        raise HdlError(f"Yosys could not write the Verilog of {what or name} "
                       f"({lines[0] if lines else 'no message'})") from None


def core_verilog(params: CoreParams, *, waivers: bool = True) -> str:
    """Verilog of the core for ``params`` (``emit_src=False``: no source paths), headed by
    the lint waivers unless ``waivers`` is false."""
    from .core import Core
    c = params.config
    text = component_verilog(Core(params), CORE, what=f"the {c.rows}×{c.cols} core")
    if waivers:
        text = "".join(f"/* verilator lint_off {w} */\n" for w in LINT_WAIVERS) + text
    return text


def _hex(values, bits: int) -> str:
    digits = (bits + 3) // 4
    mask = (1 << bits) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def _program_words(img: Image, pl_width: int, ids: dict) -> list[int]:
    words = []
    for name in sorted(img.tables, key=lambda n: ids[n]):
        for addr, value in enumerate(img.tables[name]):
            words.append((ids[name] << (32 + pl_width)) | (addr << pl_width) | int(value))
    return words


def _testbench(cfg: HardwareConfig, p: CoreParams, *, pl_width: int, n_prog: int,
               words: int, y_off: int, y_count: int, y_bits: int, stall_permille: int,
               stall_seed: int, max_cycles: int) -> str:
    R, C, W, L = cfg.rows, cfg.cols, cfg.acc_bits, cfg.dram_latency_cycles
    WV = cfg.writeback_vectors
    AW = p.addr_bits
    PW = 8 + 32 + pl_width
    o = []
    w = o.append
    w("// Self-checking test bench of the AXW core: loads the Program through the core's")
    w("// program port, runs it against a behavioural memory (docs/rtl.md), prints")
    w("// AXW_CYCLES <n> and AXW_PASS or AXW_FAIL <mismatches>, writes y_rtl.hex.")
    w("/* verilator lint_off WIDTH */")
    w("/* verilator lint_off INITIALDLY */")
    w(f"module {TOP};")
    w(f"  localparam integer R = {R}, C = {C}, W = {W}, L = {L}, AW = {AW};")
    w(f"  localparam integer WORDS = {max(words, 1)}, NPROG = {max(n_prog, 1)}, "
      f"NPROG_USED = {n_prog};")
    w(f"  localparam integer YOFF = {y_off}, NY = {y_count}, YB = {y_bits};")
    w(f"  localparam integer STALL_PERMILLE = {stall_permille}, MAX_CYCLES = {max_cycles};")
    w("  reg clk = 0, rst = 1;")
    w("  always #5 clk = ~clk;")
    w(f"  reg [{PW - 1}:0] prog [0:NPROG-1];")
    w("  reg signed [W-1:0] mem [0:WORDS-1];")
    w("  reg [YB-1:0] yexp [0:(NY > 0 ? NY : 1)-1];")
    w("  reg pl_en = 0; reg [7:0] pl_table = 0; reg [31:0] pl_addr = 0;")
    w(f"  reg [{pl_width - 1}:0] pl_data = 0;")
    w("  reg start = 0;")
    w("  wire busy, done;")
    w(f"  wire [{CYCLE_BITS - 1}:0] cycles;")
    w("  reg [31:0] lfsr;")
    w("  wire mem_ready = (STALL_PERMILLE == 0) || ((lfsr % 32'd1000) >= STALL_PERMILLE);")
    # request / response wires per lane
    for i in range(R):
        w(f"  wire sreq_valid_{i}; wire [AW-1:0] sreq_addr_{i};")
        w(f"  wire lreq_valid_{i}; wire [AW-1:0] lreq_addr_{i};")
        w(f"  wire srsp_valid_{i}; wire signed [W-1:0] srsp_data_{i};")
        w(f"  wire lrsp_valid_{i};")
        for j in range(C):
            w(f"  wire signed [W-1:0] lrsp_data_{i}_{j};")
    for v in range(WV):
        w(f"  wire wr_valid_{v}; wire [AW-1:0] wr_row_{v};")
        for j in range(C):
            w(f"  wire signed [W-1:0] wr_data_{v}_{j};")
    for j in range(C):
        w(f"  wire [AW-1:0] wr_col_{j};")
    w(f"  wire [{(C).bit_length() - 1}:0] wr_ncols;")
    # the core
    conns = [".clk(clk)", ".rst(rst)", ".start(start)", ".busy(busy)", ".done(done)",
             ".cycles(cycles)", ".pl_en(pl_en)", ".pl_table(pl_table)", ".pl_addr(pl_addr)",
             ".pl_data(pl_data)", ".mem_ready(mem_ready)", ".wr_ncols(wr_ncols)"]
    for i in range(R):
        conns += [f".sreq_valid__{i}(sreq_valid_{i})", f".sreq_addr__{i}(sreq_addr_{i})",
                  f".lreq_valid__{i}(lreq_valid_{i})", f".lreq_addr__{i}(lreq_addr_{i})",
                  f".srsp_valid__{i}(srsp_valid_{i})", f".srsp_data__{i}(srsp_data_{i})",
                  f".lrsp_valid__{i}(lrsp_valid_{i})"]
        conns += [f".lrsp_data__{i}__{j}(lrsp_data_{i}_{j})" for j in range(C)]
    for v in range(WV):
        conns += [f".wr_valid__{v}(wr_valid_{v})", f".wr_row__{v}(wr_row_{v})"]
        conns += [f".wr_data__{v}__{j}(wr_data_{v}_{j})" for j in range(C)]
    conns += [f".wr_col__{j}(wr_col_{j})" for j in range(C)]
    w(f"  {CORE} dut (")
    w(",\n".join("    " + x for x in conns))
    w("  );")
    # behavioural memory: words beyond the image read as zero
    w("  function signed [W-1:0] rd(input [AW:0] a);")
    w("    rd = (a < WORDS) ? mem[a] : {W{1'b0}};")
    w("  endfunction")
    # responses: combinational for L = 0, otherwise an L-stage delay line per lane
    for i in range(R):
        if L == 0:
            # sampled at the falling edge: requests are settled and this cycle's memory
            # contents are final (a continuous assignment would not see `mem` change)
            w(f"  reg sv0_{i}, lv0_{i}; reg signed [W-1:0] sd0_{i}; reg signed [W-1:0] ld0_{i} [0:C-1];")
            w("  always @(negedge clk) begin")
            w(f"    sv0_{i} <= sreq_valid_{i} & mem_ready & busy; sd0_{i} <= rd(sreq_addr_{i});")
            w(f"    lv0_{i} <= lreq_valid_{i} & mem_ready & busy;")
            for j in range(C):
                w(f"    ld0_{i}[{j}] <= rd(lreq_addr_{i} + {j});")
            w("  end")
            w(f"  assign srsp_valid_{i} = sv0_{i}; assign srsp_data_{i} = sd0_{i};")
            w(f"  assign lrsp_valid_{i} = lv0_{i};")
            for j in range(C):
                w(f"  assign lrsp_data_{i}_{j} = ld0_{i}[{j}];")
        else:
            w(f"  reg sv_{i} [1:L]; reg signed [W-1:0] sd_{i} [1:L];")
            w(f"  reg lv_{i} [1:L]; reg signed [W-1:0] ld_{i} [1:L][0:C-1];")
            w(f"  assign srsp_valid_{i} = sv_{i}[L]; assign srsp_data_{i} = sd_{i}[L];")
            w(f"  assign lrsp_valid_{i} = lv_{i}[L];")
            for j in range(C):
                w(f"  assign lrsp_data_{i}_{j} = ld_{i}[L][{j}];")
    w("  integer k, mismatches, fd, ncyc;")
    w("  integer dk, dj, ik, ij;")
    if L > 0:
        w("  initial begin")
        w("    for (ik = 1; ik <= L; ik = ik + 1) begin")
        for i in range(R):
            w(f"      sv_{i}[ik] = 0; lv_{i}[ik] = 0; sd_{i}[ik] = 0;")
            w(f"      for (ij = 0; ij < C; ij = ij + 1) ld_{i}[ik][ij] = 0;")
        w("    end")
        w("  end")
        w("  always @(posedge clk) begin")
        w("    for (dk = L; dk > 1; dk = dk - 1) begin")
        for i in range(R):
            w(f"      sv_{i}[dk] <= sv_{i}[dk-1]; sd_{i}[dk] <= sd_{i}[dk-1]; lv_{i}[dk] <= lv_{i}[dk-1];")
            w(f"      for (dj = 0; dj < C; dj = dj + 1) ld_{i}[dk][dj] <= ld_{i}[dk-1][dj];")
        w("    end")
        for i in range(R):
            w(f"    sv_{i}[1] <= sreq_valid_{i} & mem_ready & busy; sd_{i}[1] <= rd(sreq_addr_{i});")
            w(f"    lv_{i}[1] <= lreq_valid_{i} & mem_ready & busy;")
            for j in range(C):
                w(f"    ld_{i}[1][{j}] <= rd(lreq_addr_{i} + {j});")
        w("  end")
    # writes
    w("  always @(posedge clk) begin")
    w("    if (busy && mem_ready) begin")
    for v in range(WV):
        w(f"      if (wr_valid_{v}) begin")
        for j in range(C):
            w(f"        if (wr_ncols > {j}) mem[wr_row_{v} + wr_col_{j}] <= wr_data_{v}_{j};")
        w("      end")
    w("    end")
    w("  end")
    # stall sequence: the draw of the current cycle (xorshift32, one per running cycle)
    w("  function [31:0] xs(input [31:0] x);")
    w("    reg [31:0] y;")
    w("    begin y = x ^ (x << 13); y = y ^ (y >> 17); xs = y ^ (y << 5); end")
    w("  endfunction")
    w("  always @(posedge clk) begin")
    w(f"    if (start) lfsr <= xs(32'd{stall_seed or 1});")
    w("    else if (busy) lfsr <= xs(lfsr);")
    w("  end")
    w("  always @(posedge clk) if (busy) ncyc <= ncyc + 1;")
    # main sequence
    w("  initial begin")
    w('    $readmemh("mem.hex", mem);')
    w('    if (NPROG_USED > 0) $readmemh("prog.hex", prog);')
    w('    if (NY > 0) $readmemh("y_expected.hex", yexp);')
    w("    ncyc = 0; lfsr = 1;")
    w("    repeat (3) @(posedge clk);")
    w("    rst <= 0;")
    w("    for (k = 0; k < NPROG_USED; k = k + 1) begin")
    w("      @(posedge clk);")
    w(f"      pl_en <= 1; pl_table <= prog[k][{PW - 1}:{PW - 8}];")
    w(f"      pl_addr <= prog[k][{PW - 9}:{pl_width}]; pl_data <= prog[k][{pl_width - 1}:0];")
    w("    end")
    w("    @(posedge clk); pl_en <= 0; start <= 1;")
    w("    @(posedge clk); start <= 0;")
    w("    while (!done && ncyc < MAX_CYCLES) @(posedge clk);")
    w("    @(negedge clk);")
    w("    if (!done) begin $display(\"AXW_TIMEOUT %0d\", ncyc); $finish; end")
    w("    if (ncyc != cycles) $display(\"AXW_WARN core counted %0d cycles\", cycles);")
    w('    $display("AXW_CYCLES %0d", ncyc);')
    w("    mismatches = 0;")
    w('    fd = $fopen("y_rtl.hex", "w");')
    w("    for (k = 0; k < NY; k = k + 1) begin")
    w("      $fdisplay(fd, \"%h\", mem[YOFF + k][YB-1:0]);")
    sign = "mem[YOFF + k]" if y_bits == W else "mem[YOFF + k]"
    ext = ("$signed(yexp[k])" if y_bits == W else
           "{{(W-YB){yexp[k][YB-1]}}, yexp[k]}")
    w(f"      if ({sign} !== {ext}) begin")
    w("        if (mismatches < 5) $display(\"AXW_MISMATCH %0d got %0d\", k, mem[YOFF + k]);")
    w("        mismatches = mismatches + 1;")
    w("      end")
    w("    end")
    w("    $fclose(fd);")
    w('    if (mismatches == 0) $display("AXW_PASS"); else $display("AXW_FAIL %0d", mismatches);')
    w("    $finish;")
    w("  end")
    w("endmodule")
    return "\n".join(o) + "\n"


def _with(params: CoreParams, lut: int | None, prim: str | None) -> CoreParams:
    if lut is not None:
        params = dataclasses.replace(params, lut_multipliers=lut)
    if prim is not None:
        params = dataclasses.replace(params, dsp_primitive=prim)
    return params


def write_bundle(out_dir, config: HardwareConfig, program: Program | None = None,
                 memory: list | None = None, expected: np.ndarray | None = None, *,
                 stall_permille: int = 0, stall_seed: int = 1,
                 params: CoreParams | None = None, max_cycles: int = 50_000_000,
                 lut_multipliers: int | None = None, dsp_primitive: str | None = None) -> dict:
    """Write the bundle into ``out_dir``; return ``{"files": [...], "params": {...}}``.

    Without ``program`` only the core (for ``params`` or the default capacities),
    ``config.json`` and ``files.f`` are written.  ``lut_multipliers`` and
    ``dsp_primitive`` override those fields of the core's parameters; with a primitive the
    bundle also holds its simulation model (``hdl.models``)."""
    out = Path(out_dir)
    files = {}
    files["config.json"] = config.to_json() + "\n"
    if program is None:
        p = _with(params or CoreParams(config), lut_multipliers, dsp_primitive)
        files[f"{CORE}.v"] = core_verilog(p)
        files["files.f"] = f"{CORE}.v\n"
    else:
        if lut_multipliers is not None or dsp_primitive is not None:
            params = _with(params or CoreParams.fit(
                program, int(sum(np.asarray(m).size for m in memory))), lut_multipliers,
                dsp_primitive)
        img = pack(program, memory, params)
        p = img.params
        from .core import table_ids
        from .image import layouts
        pl_width = max(f.width for f in layouts(p).values())
        ids = table_ids(config.rows)
        words = _program_words(img, pl_width, ids)
        files[f"{CORE}.v"] = core_verilog(p)
        y = program.tensor_id("Y")
        yt = program.tensors[y]
        y_bits = int(yt["bits"])
        if expected is None:
            raise ValueError("expected output is required with a program")
        exp = np.asarray(expected, np.int64).ravel()
        files["prog.hex"] = _hex(words, 8 + 32 + pl_width)
        files["mem.hex"] = _hex(img.memory if img.memory.size else [0], config.acc_bits)
        files["y_expected.hex"] = _hex(exp, y_bits) if exp.size else "0\n"
        files[f"{TOP}.v"] = _testbench(
            config, p, pl_width=pl_width, n_prog=len(words), words=int(img.memory.size),
            y_off=int(img.offsets[y]), y_count=int(exp.size), y_bits=y_bits,
            stall_permille=stall_permille, stall_seed=stall_seed, max_cycles=max_cycles)
        files["files.f"] = f"{CORE}.v\n{TOP}.v\n"
    if p.dsp_primitive is not None:
        files[MODELS_FILE] = models_verilog(
            dp16kd=p.dsp_primitive == "ecp5" and (ecp5_lmem_outreg(config)
                                                   or ecp5_fifo_outreg(config)))
        files["files.f"] = f"{MODELS_FILE}\n" + files["files.f"]
    out.mkdir(parents=True, exist_ok=True)   # only once everything is built and checked
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return {"files": sorted(files), "params": {k: getattr(p, k) for k in (
        "max_tiles", "max_blocks", "max_steps", "max_lane_elems", "max_lane_loads",
        "max_phases", "mem_words")}}
