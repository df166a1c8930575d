"""One processing element: local memory of the stationary operand, registered product,
accumulator, and its column of the row's output bank (read-modify-write merge).

Timing (cycle numbers relative to the cycle ``x`` an element is at the PE's input):
``x`` local-memory read; ``x+1`` product (registered) and output-bank read; ``x+2``
accumulate and, on LAST, write the output bank.  The element leaves to the right at ``x+1``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import HardwareConfig

from .image import HdlError

__all__ = ["PE", "element_layout"]


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


class PE(wiring.Component):
    """A processing element of ``config``'s array.

    Parameters
    ----------
    config : HardwareConfig
        Widths: ``operand_bits`` (narrow multiplier port), ``acc_bits`` (wide port,
        product, accumulator and output bank), ``lmem_depth`` (entries per bank of the
        local memory), ``out_bank_depth`` (slots per half of the output bank).

    Members
    -------
    ei : In(element_layout)     element from the left (or the row's issue register)
    eo : Out(element_layout)    the same element one cycle later, to the right
    lw_en[b], lw_addr[b], lw_data[b] : In   write of local-memory bank b
    wb_half, wb_addr : In       output-bank read for writeback (data next cycle)
    wb_data : Out(signed(acc_bits))
    """

    def __init__(self, config: HardwareConfig):
        _check_config(config)
        self._config = config
        W = config.acc_bits
        super().__init__({
            "ei": In(element_layout(config)),
            "eo": Out(element_layout(config)),
            "lw_en": In(1).array(2), "lw_addr": In(config.lmem_addr_bits).array(2),
            "lw_data": In(signed(W)).array(2),
            "wb_half": In(1), "wb_addr": In(config.slot_bits),
            "wb_data": Out(signed(W)),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        W, N = cfg.acc_bits, cfg.operand_bits
        m = Module()
        # one memory per local-memory bank, so a broadcast write to one bank and a lane's
        # own write to the other can happen in the same cycle (rule 3 allows it)
        lr = []
        for b in range(2):
            mem = Memory(shape=signed(W), depth=cfg.lmem_depth, init=[])
            m.submodules[f"lmem{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(self.lw_addr[b]), wp.data.eq(self.lw_data[b]),
                         wp.en.eq(self.lw_en[b]), rp.addr.eq(self.ei.addr)]
            lr.append(rp.data)
        # stage 1: the element (eo), the local operand; product registered
        m.d.sync += self.eo.eq(self.ei)
        e1 = self.eo
        lval = Mux(e1.bank, lr[1], lr[0])
        narrow = Mux(e1.sel, e1.value[:N], lval[:N]).as_signed()
        wide = Mux(e1.sel, lval, e1.value)
        prod = Signal(signed(W))
        m.d.sync += prod.eq((narrow * wide)[:W])
        e2 = Signal(element_layout(cfg))
        m.d.sync += e2.eq(e1)
        # output bank: one memory per half; reads are transparent to the same half's write
        # so back-to-back merges of one slot see each other
        acc = Signal(signed(W))
        acc_new = Signal(signed(W))
        m.d.comb += acc_new.eq(Mux(e2.first, prod, (acc + prod)[:W]))
        with m.If(e2.valid):
            m.d.sync += acc.eq(acc_new)
        rd = []
        for h in range(2):
            bank = Memory(shape=signed(W), depth=cfg.out_bank_depth, init=[])
            m.submodules[f"bank{h}"] = bank
            wp = bank.write_port()
            rp = bank.read_port(transparent_for=(wp,))
            rmw = e1.valid & e1.last & (e1.half == h)
            m.d.comb += rp.addr.eq(Mux(rmw, e1.slot, self.wb_addr))
            wr = e2.valid & e2.last & (e2.half == h)
            m.d.comb += [wp.addr.eq(e2.slot), wp.en.eq(wr),
                         wp.data.eq(Mux(e2.fresh, acc_new, (rp.data + acc_new)[:W]))]
            rd.append(rp.data)
        half_q = Signal()
        m.d.sync += half_q.eq(self.wb_half)
        m.d.comb += self.wb_data.eq(Mux(half_q, rd[1], rd[0]))
        return m
