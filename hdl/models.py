"""Simulation models of the FPGA primitives the core may instantiate (``hdl.pe.PE`` with
``primitive="ecp5"``), written from the vendor's documented behaviour, so that the
bundle's test bench can run the same netlist that synthesis maps.

``MULT18X18D`` (ECP5 sysDSP): ``P = A × B`` (signed when ``SIGNEDA``/``SIGNEDB``), with
optional input registers (``REG_INPUTA_CLK``/``REG_INPUTB_CLK`` = ``"CLK0"``) and output
register (``REG_OUTPUT_CLK`` = ``"CLK0"``), enabled by ``CE0`` and reset synchronously by
``RST0``.  Only the ports and settings the PE uses are modelled; anything else is
rejected at elaboration (``$fatal``), so the model cannot silently stand in for a
configuration it does not describe.
"""

from __future__ import annotations

__all__ = ["MODELS_FILE", "models_verilog"]

#: File name of the models in a Verilog bundle.
MODELS_FILE = "axw_models.v"


def models_verilog() -> str:
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
"""
