"""One processing element: local memory of the stationary operand, a pipelined multiplier,
accumulator, and its column of the row's output bank (read-modify-write merge).

Timing (cycle numbers relative to the cycle ``x`` an element is at the PE's input; the
element leaves to the right at ``x+1``):

====  ================================================================================
x     local-memory read (address and bank from the element)
x+1   bank select (none with both banks in one memory: ``hdl.image.lmem_unified``),
      narrow/wide operand select (none when ``acc_bits`` <= 18: :func:`whole_operands`)
      → operand registers
x+2   partial products (one 18 × 18 multiplier per slice of the wide operand, or the
      LUT multiplier's two half sums) → registers
x+3   sum of the partial products → product register
x+4   accumulate (FIRST restarts); on LAST the output-bank read is addressed
x+5   bank data registered (0 for FRESH; forwarded from the merges of the two elements
      before when they wrote the slot)
x+6   on LAST, write ``bank + acc`` to the output bank
====  ================================================================================

With ``lmem_read_cycles`` 2 the local memory's data and the element are registered once
more between x and x+1 (the memory's output drives only that register), and every stage
from x+1 on is a cycle later: ``pe_latency_cycles`` is 6.  The element's value then
comes apart from it, on ``vi`` two cycles after the element (in x+2, when the operands
are selected), and leaves on ``vo`` a cycle later: the issue has a cycle more for it
(its requantization's rounding and saturation each end in a register).  For ECP5
(``primitive="ecp5"``) that register is the block RAM's own output register: the local
memory is a ``DP16KD`` instance per bank (one for both when they fit it) in its 512 × 36
mode with its output registers (``"OUTREG"``)
(``hdl.image.ecp5_lmem_outreg``; Yosys maps a memory's read port, never the register
after it, and the output register takes the block RAM's clock-to-output delay off the path).

With ``lmem_read_cycles`` 3 the selected operands and the element are registered once
more after the operand selects, and every stage from there on is one more cycle later
(``pe_latency_cycles`` 7).  On ECP5 this puts a register between the block RAM's output
register and the multiplier's input registers, which the placer may put apart (in the
8×8 array at 2, their route was the critical path: docs/rtl.md).

So the merge of a LAST element issued to its row at cycle ``i`` is written in PE column
``j`` at ``i + 1 + j + 6 = i + j + PE_LATENCY_CYCLES + MERGE_LATENCY_CYCLES``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import HardwareConfig

from .image import (DP16KD_WIDTH, HdlError, check_multipliers, ecp5_lmem_outreg,
                    lmem_unified, mem_attrs, out_bank_async,
                    out_bank_unified, out_bank_unified_depth)

__all__ = ["PE", "MULTIPLIERS", "element_layout", "ecp5_dp16kd", "whole_operands"]


def element_layout(config: HardwareConfig) -> data.StructLayout:
    """One streamed element inside the array: the value, which operand is narrow (``sel``:
    the value), local address and bank, output slot and half, and the flags."""
    return data.StructLayout({
        "valid": 1, "value": signed(config.acc_bits), "sel": 1,
        "addr": unsigned(config.lmem_addr_bits), "bank": 1,
        "slot": unsigned(config.slot_bits), "half": 1,
        "first": 1, "last": 1, "fresh": 1})


def _check_config(config):
    if not isinstance(config, HardwareConfig):
        raise HdlError(f"config must be a HardwareConfig, got {type(config).__name__}")


#: Multiplier implementations of a PE.
MULTIPLIERS = ("dsp", "lut")


def ecp5_dp16kd(m, name, wen, waddr, wdata, raddr, qname):
    """An ECP5 ``DP16KD`` block RAM in its 512 × 36 mode with its output registers, as
    submodule ``name`` of ``m``: written through port A (``wen`` on the four byte enables
    ``ADA0``–``ADA3``, ``waddr`` on the word address), read through port B at ``raddr``;
    in this mode the read data's low half leaves through port A's output register
    (``DOA``), so ``REGMODE_A`` and ``REGMODE_B`` are both ``"OUTREG"``.  The data of an
    address comes two cycles after it, as a memory's synchronous read port followed by a
    register gives it; a read of the word written in the same cycle is undefined (the
    caller never uses one).  Returns the data, ``len(wdata)`` bits (signal ``qname``
    holds all 36), signed as ``wdata``."""
    W = len(wdata)
    if W > DP16KD_WIDTH or max(len(waddr), len(raddr)) > 9:
        raise HdlError(f"{name}: {W} bits at {max(len(waddr), len(raddr))} address bits "
                       f"do not fit a DP16KD's 512 x 36 mode")
    rdata = Signal(DP16KD_WIDTH, name=qname)
    ports = {"i_CLKA": ClockSignal(), "i_CLKB": ClockSignal(),
             "i_CEA": 1, "i_OCEA": 1, "i_WEA": 1, "i_RSTA": 0,
             "i_CEB": 1, "i_OCEB": 1, "i_WEB": 0, "i_RSTB": 0}
    for k in range(3):
        ports[f"i_CSA{k}"] = 0
        ports[f"i_CSB{k}"] = 0
    for k in range(14):
        # address bits 5..13 are the word (512 words); 0..3 of port A the byte enables
        word = k - 5
        ports[f"i_ADA{k}"] = (wen if k < 4 else 0) if word < 0 else (
            waddr[word] if word < len(waddr) else 0)
        ports[f"i_ADB{k}"] = 0 if word < 0 else (raddr[word] if word < len(raddr) else 0)
    for k in range(18):
        ports[f"i_DIA{k}"] = wdata[k] if k < W else 0
        ports[f"i_DIB{k}"] = wdata[18 + k] if 18 + k < W else 0
        ports[f"o_DOA{k}"] = rdata[k]
        ports[f"o_DOB{k}"] = rdata[18 + k]
    m.submodules[name] = Instance(
        "DP16KD", p_DATA_WIDTH_A=DP16KD_WIDTH, p_DATA_WIDTH_B=DP16KD_WIDTH,
        p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG", p_CSDECODE_A="0b000",
        p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
        p_GSR="DISABLED", p_RESETMODE="SYNC", **ports)
    q = rdata[:W]
    return q.as_signed() if wdata.shape().signed else q


def whole_operands(config: HardwareConfig, multiplier: str) -> bool:
    """Whether a PE's multiplier takes both operands whole: a ``"dsp"`` one whose wide
    operand is one slice (``acc_bits`` <= 18, :attr:`HardwareConfig.wide_chunks`), so the
    local memory's value and the streamed one both fit an 18 × 18 multiplier's ports and
    need no select of which is narrow.  The product is the same as the narrow one's low
    ``operand_bits`` times the wide one because the narrow one is in that range
    (``hdl.image.pack`` chooses ``sel`` so, and the simulator multiplies them whole)."""
    return multiplier == "dsp" and len(config.wide_chunks) == 1


def _slice(wide, off: int, width: int, is_signed: bool):
    """Slice ``(off, width, is_signed)`` of ``HardwareConfig.wide_chunks`` as a signed
    value: the top slice keeps its sign, a lower one gets a zero sign bit."""
    piece = wide[off:off + width]
    return piece.as_signed() if is_signed else Cat(piece, Const(0, 1)).as_signed()


class PE(wiring.Component):
    """A processing element of ``config``'s array.

    Parameters
    ----------
    config : HardwareConfig
        Widths: ``operand_bits`` (narrow multiplier port), ``acc_bits`` (wide port,
        product, accumulator and output bank), ``lmem_depth`` (entries per bank of the
        local memory), ``out_bank_depth`` (slots per half of the output bank).
    multiplier : "dsp" or "lut"
        ``dsp``: one multiplier per slice of ``config.wide_chunks`` (18 × 18 blocks);
        ``lut``: shift-and-add over the narrow operand's bits in logic.  Same latency
        and bits either way.
    primitive : None or "ecp5"
        See :data:`hdl.image.DSP_PRIMITIVES`.

    Members
    -------
    ei : In(element_layout)     element from the left (or the row's issue register)
    eo : Out(element_layout)    the same element one cycle later, to the right
    lw_en, lw_bank, lw_addr, lw_data : In   write of the local memory's bank ``lw_bank``
        (lands a cycle later; at most one a cycle: :func:`hdl.image.lmem_unified`)
    wb_half, wb_addr : In       output-bank read for writeback (data next cycle)
    wb_zero : In                in the data's cycle: 0 in the place of the data
    wb_data : Out(signed(acc_bits))
    vi : In(signed(acc_bits)), vo : Out   with ``lmem_read_cycles`` 2 or 3 only: the
        value, two cycles after its element (``ei.value`` is unused), and the same a
        cycle later
    """

    def __init__(self, config: HardwareConfig, multiplier: str = "dsp",
                 primitive: str | None = None):
        _check_config(config)
        if multiplier not in MULTIPLIERS:
            raise HdlError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, "
                           f"got {multiplier!r}")
        check_multipliers(config, 0, primitive)
        self._config = config
        self._multiplier = multiplier
        self._primitive = primitive
        W = config.acc_bits
        super().__init__({
            "ei": In(element_layout(config)),
            "eo": Out(element_layout(config)),
            "lw_en": In(1), "lw_bank": In(1), "lw_addr": In(config.lmem_addr_bits),
            "lw_data": In(signed(W)),
            "wb_half": In(1), "wb_addr": In(config.slot_bits), "wb_zero": In(1),
            "wb_data": Out(signed(W)),
            **({"vi": In(signed(W)), "vo": Out(signed(W))}
               if config.lmem_read_cycles > 1 else {}),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def multiplier(self) -> str:
        return self._multiplier

    def _ecp5_partials(self, m, narrow_d, wide_d):
        """Stages x+1 and x+2 in ECP5 ``MULT18X18D`` blocks, signed 18 × 18, with their
        input registers (the operand registers) and output register (the partial product
        register): the same bits and cycles as :meth:`_partials`."""
        cfg = self._config
        out = []
        for k, chunk in enumerate(cfg.wide_chunks):
            a = Signal(signed(18), name=f"dsp{k}_a")
            b = Signal(signed(18), name=f"dsp{k}_b")
            piece = _slice(wide_d, *chunk)
            m.d.comb += [a.eq(narrow_d), b.eq(piece)]   # sign-extended to 18 bits
            p = Signal(36, name=f"dsp{k}_p")
            ports = {"i_CLK0": ClockSignal(), "i_CE0": 1, "i_RST0": 0,
                     "i_SIGNEDA": 1, "i_SIGNEDB": 1, "i_SOURCEA": 0, "i_SOURCEB": 0}
            for bit in range(18):
                ports[f"i_A{bit}"] = a[bit]
                ports[f"i_B{bit}"] = b[bit]
                ports[f"i_C{bit}"] = 0
            for bit in range(36):
                ports[f"o_P{bit}"] = p[bit]
            m.submodules[f"mult{k}"] = Instance(
                "MULT18X18D", p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
                p_REG_OUTPUT_CLK="CLK0", p_GSR="DISABLED", p_RESETMODE="SYNC", **ports)
            out.append((chunk[0], p[:len(narrow_d) + len(piece)].as_signed()))
        return out

    def _partials(self, m, narrow, wide):
        """Stage x+2: registered partial products whose wrapped sum is the product."""
        cfg = self._config
        W, N = cfg.acc_bits, cfg.operand_bits
        out = []
        if self._multiplier == "dsp":
            for k, chunk in enumerate(cfg.wide_chunks):
                piece = _slice(wide, *chunk)
                pp = Signal(signed(len(narrow) + len(piece)), name=f"pp{k}")
                m.d.sync += pp.eq(narrow * piece)
                out.append((chunk[0], pp))
            return out
        # shift-and-add: narrow = Σ_{k<N-1} n_k 2^k − n_{N-1} 2^(N-1), two half sums
        terms = []
        for k in range(N):
            t = (wide << k)[:W]
            terms.append(Mux(narrow[k], (-t)[:W] if k == N - 1 else t, 0))
        half = (len(terms) + 1) // 2
        for g, grp in enumerate((terms[:half], terms[half:])):
            acc = Const(0, W)
            for t in grp:
                acc = (acc + t)[:W]
            ps = Signal(W, name=f"ps{g}")
            m.d.sync += ps.eq(acc)
            out.append((0, ps))
        return out

    def elaborate(self, platform):
        cfg = self._config
        W, N = cfg.acc_bits, cfg.operand_bits
        m = Module()
        # x: the local memory, one write port (the machine writes a PE's local memory at
        # most once a cycle), both banks in one memory addressed by bank and address
        # (hdl.image.lmem_unified) or one memory per bank.  Writes are registered: one
        # issued in cycle w lands at the end of w+1.  The rules then keep every read away
        # from a write of the same cycle: a tile's loads end at w, its first element is
        # issued at w+1 at the earliest and reaches PE(i, 0) at w+2; a bank is rewritten
        # from cycle `last issue + C` of the tile it held, whose last read, in
        # PE(i, C-1), is in that cycle, before the write lands.
        outreg = self._primitive == "ecp5" and ecp5_lmem_outreg(cfg)
        en_q = Signal(name="lw_en_q")
        bank_q = Signal(name="lw_bank_q")
        addr_q = Signal.like(self.lw_addr, name="lw_addr_q")
        data_q = Signal(signed(W), name="lw_data_q")
        m.d.sync += [en_q.eq(self.lw_en), bank_q.eq(self.lw_bank), addr_q.eq(self.lw_addr),
                     data_q.eq(self.lw_data)]
        if lmem_unified(cfg, self._primitive):
            lr = [ecp5_dp16kd(m, "lmem", en_q, Cat(addr_q, bank_q), data_q,
                              Cat(self.ei.addr, self.ei.bank), "lr_q0")]
        else:
            lr = []
            for b in range(2):
                en_b = en_q & (bank_q == b)
                if outreg:
                    lr.append(ecp5_dp16kd(m, f"lmem{b}", en_b, addr_q, data_q, self.ei.addr,
                                          f"lr_q0_{b}"))
                    continue
                mem = Memory(shape=signed(W), depth=cfg.lmem_depth, init=[],
                             attrs=mem_attrs(cfg.lmem_depth, W))
                m.submodules[f"lmem{b}"] = mem
                wp = mem.write_port()
                rp = mem.read_port()
                m.d.comb += [wp.addr.eq(addr_q), wp.data.eq(data_q), wp.en.eq(en_b),
                             rp.addr.eq(self.ei.addr)]
                lr.append(rp.data)
        m.d.sync += self.eo.eq(self.ei)
        e1 = self.eo
        value = e1.value
        if cfg.lmem_read_cycles >= 2:
            # the memories' outputs and the element registered once more; the value comes
            # on its own port, in step with them (the block RAMs' output registers hold
            # the outputs already)
            e_q = Signal(element_layout(cfg), name="e_q0")
            if not outreg:
                lr_q = [Signal(signed(W), name=f"lr_q0_{b}") for b in range(2)]
                m.d.sync += [q.eq(d) for q, d in zip(lr_q, lr)]
                lr = lr_q
            m.d.sync += [e_q.eq(e1), self.vo.eq(self.vi)]
            e1, value = e_q, self.vi
        ctl = data.StructLayout({"valid": 1, "slot": unsigned(cfg.slot_bits), "half": 1,
                                 "first": 1, "last": 1, "fresh": 1})

        def stage(src, name):
            s = Signal(ctl, name=name)
            m.d.sync += [s.valid.eq(src.valid), s.slot.eq(src.slot), s.half.eq(src.half),
                         s.first.eq(src.first), s.last.eq(src.last), s.fresh.eq(src.fresh)]
            return s

        # x+1: operands (registered here, or by the multiplier blocks' input registers)
        lval = Mux(e1.bank, lr[1], lr[0]) if len(lr) == 2 else lr[0]
        if whole_operands(cfg, self._multiplier):
            # one 18 × 18 multiplier takes both operands whole: no select in front of it
            # (the narrow one is in its range, hdl.image.pack's ``sel``)
            narrow_d, wide_d = Signal(signed(W)), Signal(signed(W))
            m.d.comb += [narrow_d.eq(lval), wide_d.eq(value)]
        else:
            narrow_d = Signal(signed(N))
            wide_d = Signal(signed(W))
            m.d.comb += [narrow_d.eq(Mux(e1.sel, value[:N], lval[:N]).as_signed()),
                         wide_d.eq(Mux(e1.sel, lval, value))]
        if cfg.lmem_read_cycles == 3:
            # the selected operands registered once more, with the element: between the
            # block RAM's output register and the multipliers' input registers stand a
            # select and this register, which the placer may put between them
            narrow_q = Signal.like(narrow_d, name="op_narrow_q")
            wide_q = Signal.like(wide_d, name="op_wide_q")
            e_q1 = Signal(element_layout(cfg), name="e_q1")
            m.d.sync += [narrow_q.eq(narrow_d), wide_q.eq(wide_d), e_q1.eq(e1)]
            narrow_d, wide_d, e1 = narrow_q, wide_q, e_q1
        e2 = stage(e1, "e2")
        # x+2: partial products; x+3: product
        if self._multiplier == "dsp" and self._primitive == "ecp5":
            parts = self._ecp5_partials(m, narrow_d, wide_d)
        else:
            narrow = Signal.like(narrow_d)
            wide = Signal(signed(W))
            m.d.sync += [narrow.eq(narrow_d), wide.eq(wide_d)]
            parts = self._partials(m, narrow, wide)
        e3 = stage(e2, "e3")
        total = Const(0, W)
        for k, (off, pp) in enumerate(parts):
            term = Signal(W, name=f"term{k}")   # assignment sign-extends, then wraps
            m.d.comb += term.eq(pp << off)
            total = (total + term)[:W]
        prod = Signal(signed(W))
        m.d.sync += prod.eq(total)
        e4 = stage(e3, "e4")
        # x+4: accumulate; the LAST element addresses its slot in the output bank.  `accb`
        # is `acc`, or 0 when the element entering this stage next cycle is FIRST: a
        # synchronous reset one cycle early instead of a FIRST mux before the adder
        acc = Signal(signed(W))
        accb = Signal(signed(W))
        total = Signal(signed(W))
        m.d.comb += total.eq(accb + prod)
        with m.If(e4.valid):
            m.d.sync += acc.eq(total)
        with m.If(e3.valid & e3.first):
            m.d.sync += accb.eq(0)
        with m.Elif(e4.valid):
            m.d.sync += accb.eq(total)
        e5 = stage(e4, "e5")
        e6 = stage(e5, "e6")
        # output bank: one memory per half, read where its slot was addressed a cycle
        # before.  A merge may still be in flight when its slot is read: the one written
        # in the read's cycle (`fwd`, forwarded), and, when the read is synchronous, the
        # one written in the addressing cycle (registered then: `fwd2`, `wv2`) and, for a
        # writeback's read, the last merge of its slot written then (`fwb`), so the
        # memory's own read-during-write data is never used.  A bank in distributed RAM
        # is read asynchronously at a registered address instead: the write of the
        # addressing cycle has landed when the read is made, and only `fwd` is needed.
        acc6 = Signal(signed(W))
        m.d.sync += acc6.eq(acc)
        rdq = Signal(signed(W))     # 0 for a FRESH merge: wval = acc6
        wval = Signal(signed(W))
        m.d.comb += wval.eq(rdq + acc6)
        wen = e6.valid & e6.last
        late = out_bank_async(cfg)
        if out_bank_unified(cfg):
            # one memory addressed by half and slot, in two copies written alike: one
            # read for the merges at e4's slot, one for the writeback (hdl.image)
            depth = out_bank_unified_depth(cfg)
            rd = []
            for name, addr in (("bank", Cat(e4.slot, e4.half)),
                               ("bank_wb", Cat(self.wb_addr, self.wb_half))):
                bank = Memory(shape=signed(W), depth=depth, init=[],
                              attrs=mem_attrs(depth, W, sync=False, read_during_write=True))
                m.submodules[name] = bank
                wp = bank.write_port()
                rp = bank.read_port(domain="comb")
                addr_q = Signal(len(addr), name=f"{name}_addr_q")
                m.d.sync += addr_q.eq(addr)
                m.d.comb += [rp.addr.eq(addr_q), wp.addr.eq(Cat(e6.slot, e6.half)),
                             wp.data.eq(wval), wp.en.eq(wen)]
                rd.append(rp.data)
            bank_rd, wb_rd = rd
        else:
            rd = []
            for h in range(2):
                bank = Memory(shape=signed(W), depth=cfg.out_bank_depth, init=[],
                              attrs=mem_attrs(cfg.out_bank_depth, W, sync=not late,
                                              read_during_write=late))
                m.submodules[f"bank{h}"] = bank
                wp = bank.write_port()
                rmw = e4.valid & e4.last & (e4.half == h)
                addr = Mux(rmw, e4.slot, self.wb_addr)
                if late:
                    rp = bank.read_port(domain="comb")
                    addr_q = Signal.like(e4.slot, name=f"bank{h}_addr_q")
                    m.d.sync += addr_q.eq(addr)
                    m.d.comb += rp.addr.eq(addr_q)
                else:
                    rp = bank.read_port()
                    m.d.comb += rp.addr.eq(addr)
                m.d.comb += [wp.addr.eq(e6.slot), wp.data.eq(wval),
                             wp.en.eq(wen & (e6.half == h))]
                rd.append(rp.data)
            half_q = Signal()
            m.d.sync += half_q.eq(self.wb_half)
            bank_rd = Mux(e5.half, rd[1], rd[0])
            wb_rd = Mux(half_q, rd[1], rd[0])
        # x+5: the bank data of e5's slot
        fwd = wen & (e6.half == e5.half) & (e6.slot == e5.slot)
        if not late:
            fwd2 = Signal()
            wv2 = Signal(signed(W))
            fwb = Signal()
            m.d.sync += [fwd2.eq(wen & (e6.half == e4.half) & (e6.slot == e4.slot)),
                         wv2.eq(wval),
                         fwb.eq(wen & (e6.half == self.wb_half) & (e6.slot == self.wb_addr))]
            bank_rd = Mux(fwd2, wv2, bank_rd)
            wb_rd = Mux(fwb, wv2, wb_rd)
        with m.If(e5.fresh):
            m.d.sync += rdq.eq(0)
        with m.Else():
            m.d.sync += rdq.eq(Mux(fwd, wval, bank_rd))
        m.d.comb += self.wb_data.eq(Mux(self.wb_zero, 0, wb_rd))
        return m
