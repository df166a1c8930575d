"""Simulation models of the FPGA primitives the core may instantiate (``hdl.pe.PE`` with
``primitive="ecp5"``), written from the vendor's documented behaviour, so that the
bundle's test bench can run the same netlist that synthesis maps.

``MULT18X18D`` (ECP5 sysDSP): ``P = A × B`` (signed when ``SIGNEDA``/``SIGNEDB``), with
optional input registers (``REG_INPUTA_CLK``/``REG_INPUTB_CLK`` = ``"CLK0"``) and output
register (``REG_OUTPUT_CLK`` = ``"CLK0"``), enabled by ``CE0`` and reset synchronously by
``RST0``.  Only the ports and settings the PE uses are modelled; anything else is
rejected at elaboration (``$fatal``), so the model cannot silently stand in for a
configuration it does not describe.

``DP16KD`` (ECP5 sysMEM block RAM) in the one mode ``hdl.pe.ecp5_dp16kd`` instantiates
(for the PE's banks, ``hdl.image.ecp5_lmem_outreg``, and the stream FIFOs' copies,
``hdl.image.ecp5_fifo_outreg``): 512 words of 36 bits, written through port A (address
``ADA5``–``ADA13``, byte enables ``ADA0``–``ADA3``, data ``DIA0``–``DIA17`` then
``DIB0``–``DIB17``, when ``CEA`` and ``WEA``) and read through port B (address
``ADB5``–``ADB13``, when ``CEB``; data ``DOA0``–``DOA17`` then ``DOB0``–``DOB17``), the
read data registered once more when ``REGMODE_A`` and ``REGMODE_B`` are ``"OUTREG"`` (in
this mode the low half leaves through port A's output register, enabled by ``OCEA``, the
high half through port B's, by ``OCEB``; both modes must be the same, and the model
clocks both registers by ``CLKB``); the chip selects at 0 with ``CSDECODE`` ``"0b000"``,
``RSTA``/``RSTB`` synchronous.  The contents start at 0, as the memory the portable
netlist has does.
"""

from __future__ import annotations

__all__ = ["MODELS_FILE", "models_verilog"]

#: File name of the models in a Verilog bundle.
MODELS_FILE = "axw_models.v"


def models_verilog(dp16kd: bool = False) -> str:
    """The models' Verilog: ``MULT18X18D``, and ``DP16KD`` when ``dp16kd`` (only when the
    core instantiates it: Icarus elaborates a module nothing instantiates as a top of
    its own, with its default parameters, which this model refuses)."""
    a = ", ".join(f"A{i}" for i in range(18))
    b = ", ".join(f"B{i}" for i in range(18))
    cc = ", ".join(f"C{i}" for i in range(18))
    p = ", ".join(f"P{i}" for i in range(36))
    pin = lambda name, n: "{" + ", ".join(f"{name}{i}" for i in reversed(range(n))) + "}"
    return f"""// Simulation models of the FPGA primitives instantiated by the AXW core (hdl/models.py).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module MULT18X18D #(
  parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
  parameter REG_OUTPUT_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
  parameter GSR = "ENABLED", parameter RESETMODE = "SYNC"
) (
  input {a},
  input {b},
  input {cc},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
  output {p}
);
  wire [17:0] a = {pin("A", 18)};
  wire [17:0] b = {pin("B", 18)};
  reg [17:0] a_q = 18'd0, b_q = 18'd0;
  reg [35:0] p_q = 36'd0;
  initial begin
    if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
        || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
        || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")
        || REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC")
      $fatal(1, "MULT18X18D model: unsupported register setting");
  end
  always @(posedge CLK0) begin
    if (RST0) begin a_q <= 18'd0; b_q <= 18'd0; end
    else if (CE0) begin a_q <= a; b_q <= b; end
  end
  wire [17:0] a_u = (REG_INPUTA_CLK == "CLK0") ? a_q : a;
  wire [17:0] b_u = (REG_INPUTB_CLK == "CLK0") ? b_q : b;
  wire [35:0] ext_a = SIGNEDA ? {{{{18{{a_u[17]}}}}, a_u}} : {{18'd0, a_u}};
  wire [35:0] ext_b = SIGNEDB ? {{{{18{{b_u[17]}}}}, b_u}} : {{18'd0, b_u}};
  wire [35:0] prod = ext_a * ext_b;
  always @(posedge CLK0) begin
    if (RST0) p_q <= 36'd0;
    else if (CE0) p_q <= prod;
  end
  assign {pin("P", 36)} = (REG_OUTPUT_CLK == "CLK0") ? p_q : prod;
endmodule
""" + (_dp16kd() if dp16kd else "")


def _pins(name: str, lo: int, hi: int) -> str:
    return ", ".join(f"{name}{i}" for i in reversed(range(lo, hi)))


def _dp16kd() -> str:
    dia, dib, doa, dob = (_pins(n, 0, 18) for n in ("DIA", "DIB", "DOA", "DOB"))
    ada, adb = _pins("ADA", 0, 14), _pins("ADB", 0, 14)
    pin_ada, pin_adb = "{" + _pins("ADA", 5, 14) + "}", "{" + _pins("ADB", 5, 14) + "}"
    pin_be = "{" + _pins("ADA", 0, 4) + "}"
    return f"""
module DP16KD #(
  parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
  parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
  parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
  parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
  parameter GSR = "ENABLED", parameter RESETMODE = "SYNC"
) (
  input {dia}, {dib},
  input {ada}, {adb},
  input CEA, OCEA, CLKA, WEA, CSA0, CSA1, CSA2, RSTA,
  input CEB, OCEB, CLKB, WEB, CSB0, CSB1, CSB2, RSTB,
  output {doa}, {dob}
);
  reg [35:0] mem [0:511];
  reg [35:0] q = 36'd0, q_out = 36'd0;
  integer k;
  initial begin
    if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36 || REGMODE_A != REGMODE_B
        || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") || CSDECODE_A != "0b000"
        || CSDECODE_B != "0b000" || RESETMODE != "SYNC")
      $fatal(1, "DP16KD model: unsupported mode");
    for (k = 0; k < 512; k = k + 1) mem[k] = 36'd0;
  end
  wire [8:0] wa = {pin_ada};
  wire [3:0] be = {pin_be};
  wire [35:0] di = {{{dib}, {dia}}};
  wire [8:0] ra = {pin_adb};
  wire cs_a = !CSA0 && !CSA1 && !CSA2, cs_b = !CSB0 && !CSB1 && !CSB2;
  always @(posedge CLKA)
    if (CEA && WEA && cs_a && !RSTA) begin
      if (be[0]) mem[wa][8:0] <= di[8:0];
      if (be[1]) mem[wa][17:9] <= di[17:9];
      if (be[2]) mem[wa][26:18] <= di[26:18];
      if (be[3]) mem[wa][35:27] <= di[35:27];
    end
  always @(posedge CLKB) begin
    if (RSTB) q <= 36'd0;
    else if (CEB && cs_b && !WEB)
      // a read of the word port A writes in the same cycle is undefined on the device
      q <= (CEA && WEA && cs_a && !RSTA && be != 4'd0 && wa == ra) ? 36'bx : mem[ra];
    if (RSTA) q_out[17:0] <= 18'd0;
    else if (OCEA) q_out[17:0] <= q[17:0];
    if (RSTB) q_out[35:18] <= 18'd0;
    else if (OCEB) q_out[35:18] <= q[35:18];
  end
  assign {{{dob}, {doa}}} = (REGMODE_B == "OUTREG") ? q_out : q;
endmodule
"""
