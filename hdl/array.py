"""The R×C grid: each PE row is a chain (the skew: PE(i, j) sees an element j cycles
after PE(i, 0)); each PE column writes its own column of the row's output bank j cycles
later than column 0 (the deskew is in time, not in registers)."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.config import HardwareConfig

from .image import HdlError, check_multipliers
from .pe import PE, element_layout

__all__ = ["Array"]


class Array(wiring.Component):
    """The grid of ``config.rows`` × ``config.cols`` PEs; the last ``lut_multipliers`` of
    them in row-major order multiply in logic, the others in 18 × 18 multiplier blocks
    (written as ``dsp_primitive`` says: :data:`hdl.image.DSP_PRIMITIVES`).

    Members (per PE row ``i``)
    --------------------------
    e[i] : In(element_layout)   element issued to PE(i, 0)
    v[i] : In(signed(acc_bits)) with ``lmem_read_cycles`` 2 only: the value of the element
        issued two cycles before (its ``e[i].value`` is then unused)
    lw_en[i], lw_bank[i], lw_addr[i] : In; lw_data[i][j], lw_mask[i] : In
        write of bank ``lw_bank[i]`` of row i's local memories (column j gets
        ``lw_data[i][j]`` if bit j of ``lw_mask[i]`` is set)
    wb_half[i], wb_addr[i] : In; wb_data[i][j] : Out   output-bank read (data next cycle)
    wb_zero[i] : In             in the data's cycle: row i's data 0
    """

    def __init__(self, config: HardwareConfig, lut_multipliers: int = 0,
                 dsp_primitive: str | None = None):
        if not isinstance(config, HardwareConfig):
            raise HdlError(f"config must be a HardwareConfig, got {type(config).__name__}")
        check_multipliers(config, lut_multipliers, dsp_primitive)
        self._config = config
        self._lut = lut_multipliers
        self._primitive = dsp_primitive
        R, C, W = config.rows, config.cols, config.acc_bits
        super().__init__({
            "e": In(element_layout(config)).array(R),
            "lw_en": In(1).array(R), "lw_bank": In(1).array(R),
            "lw_addr": In(config.lmem_addr_bits).array(R),
            "lw_data": In(signed(W)).array(R, C), "lw_mask": In(C).array(R),
            "wb_half": In(1).array(R), "wb_addr": In(config.slot_bits).array(R),
            "wb_zero": In(1).array(R),
            "wb_data": Out(signed(W)).array(R, C),
            # with lmem_read_cycles 2 each row's values come apart from its elements
            **({"v": In(signed(W)).array(R)} if config.lmem_read_cycles > 1 else {}),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        for i in range(cfg.rows):
            prev = self.e[i]
            prev_v = self.v[i] if cfg.lmem_read_cycles > 1 else None
            for j in range(cfg.cols):
                lut = i * cfg.cols + j >= cfg.pes - self._lut
                pe = PE(cfg, multiplier="lut" if lut else "dsp", primitive=self._primitive)
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [pe.ei.eq(prev),
                             pe.lw_en.eq(self.lw_en[i] & self.lw_mask[i][j]),
                             pe.lw_bank.eq(self.lw_bank[i]), pe.lw_addr.eq(self.lw_addr[i]),
                             pe.lw_data.eq(self.lw_data[i][j]),
                             pe.wb_half.eq(self.wb_half[i]), pe.wb_addr.eq(self.wb_addr[i]),
                             pe.wb_zero.eq(self.wb_zero[i]),
                             self.wb_data[i][j].eq(pe.wb_data)]
                prev = pe.eo
                if prev_v is not None:
                    m.d.comb += pe.vi.eq(prev_v)
                    prev_v = pe.vo
        return m
