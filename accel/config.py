"""HardwareConfig: the single source of truth for the accelerator's sizes and widths."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError
from .fileio import read_toml

__all__ = ["HardwareConfig", "PRESETS", "preset", "load_config"]

#: Pipeline depth of a PE whose local-memory data goes straight to the operand selects
#: (``lmem_read_cycles`` 1): local-memory read, registered operands, registered partial
#: products, registered product, accumulate.  Each further ``lmem_read_cycles`` adds one.
PE_LATENCY_CYCLES = 5
#: Output-bank read (registered, with forwarding) and read-modify-write of the bank.
MERGE_LATENCY_CYCLES = 2
#: Multiplier blocks are 18 × 18 signed (the FPGA's DSP multiplier width).
_DSP_WIDTH = 18

_LIMITS = {
    "rows": (1, 256), "cols": (1, 256), "operand_bits": (2, 16), "acc_bits": (8, 64),
    "lmem_depth": (1, 1 << 20), "out_bank_depth": (1, 1 << 22),
    "stream_fifo_depth": (2, 1 << 16), "load_fifo_depth": (2, 1 << 16), "wb_vectors": (0, 257),
    "dram_bytes_per_cycle": (1, 1 << 20), "dram_latency_cycles": (0, 1 << 16),
    "request_lag_cycles": (0, 16), "credit_lag_cycles": (0, 1), "lmem_read_cycles": (1, 3),
}

#: Fields added after configurations were first written: left out of the id while at
#: their default, so those configurations keep their ids.
_LATE_DEFAULTS = {"request_lag_cycles": 0, "credit_lag_cycles": 0, "lmem_read_cycles": 1}


@dataclass(frozen=True)
class HardwareConfig:
    """One accelerator: an R×C output-stationary sparse-row array and its memories.

    Parameters
    ----------
    rows, cols : PE rows and columns of the array.
    operand_bits : width of A, X and W elements (signed).
    acc_bits : accumulator width; the intermediate X·W / A·X is kept at this width
        under the ``exact`` contract, so local memories are this wide.
    lmem_depth : entries per bank of each PE's double-buffered local memory.
    out_bank_depth : output slots (C accumulators each) per half of a PE row's
        double-buffered output bank.
    stream_fifo_depth, load_fifo_depth : entries of each PE row's stream and load FIFOs
        (in-flight DRAM requests included).
    wb_vectors : output vectors (``cols`` values each) one writeback step may write: the
        number of requantizers × ``cols`` and of write ports on the memory interface.
        0 means one per PE row plus the merged row (``rows + 1``, every lane every step);
        fewer make writeback steps longer and the hardware smaller.
    dram_bytes_per_cycle : off-chip bandwidth; dram_latency_cycles : read latency.
    request_lag_cycles : d, how far ahead the memory's requesters decide (docs/machine.md,
        rule 0): the request for cycle c is made from the state at the start of cycle
        c - d, without the outcomes of the last d cycles' requests, and a refused one is
        asked for again, out of order, d + 1 cycles after it was refused.  0 is the machine
        whose requests follow every grant at once; a larger d lets the hardware pipeline
        its arbitration (d registers between a request and its grant).
    credit_lag_cycles : 0 or 1 (docs/machine.md, rule 0): with 1 the grants of cycle c are
        checked against ``min(K(c−1) + B − w(c−1), cap)``, K(c−1) the credit at the start
        of the cycle before and w(c−1) that cycle's writeback grant, so its stream and
        load grants are not yet counted (the credit may then go below zero, never below
        ``B − cap``); the hardware can register the grants and take the credit loop out
        of the arbitration's cycle.
    lmem_read_cycles : 1, 2 or 3, cycles from a PE's local-memory read to the operand
        registers.  With 1 the memory's output goes through the bank and operand selects
        into them; with 2 it is registered first, so a block RAM drives only a register
        (its 5.8 ns clock-to-output on the ECP5 leaves room for no logic at 125 MHz), and
        ``pe_latency_cycles`` is one more; with 3 the selected operands are registered once
        more (a register between the block RAM and the multiplier, which the placer may
        put apart), and ``pe_latency_cycles`` is two more.
    clock_mhz : clock used to turn cycles into seconds.
    """

    rows: int = 8
    cols: int = 8
    operand_bits: int = 8
    acc_bits: int = 32
    lmem_depth: int = 1024
    out_bank_depth: int = 512
    stream_fifo_depth: int = 128
    load_fifo_depth: int = 128
    wb_vectors: int = 0
    dram_bytes_per_cycle: int = 64
    dram_latency_cycles: int = 100
    clock_mhz: float = 200.0
    request_lag_cycles: int = 0
    credit_lag_cycles: int = 0
    lmem_read_cycles: int = 1

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "clock_mhz":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                        or not 0 < v <= 10_000:
                    raise ConfigError(f"clock_mhz must be a number in (0, 10000], got {v!r}")
                continue
            lo, hi = _LIMITS[f.name]
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{f.name} must be an integer, got {v!r}")
            if not lo <= v <= hi:
                raise ConfigError(f"{f.name} must be in {lo}..{hi}, got {v}")
        if self.acc_bits < 2 * self.operand_bits:
            raise ConfigError(f"acc_bits ({self.acc_bits}) must be at least twice "
                              f"operand_bits ({self.operand_bits}) to hold exact products")

    # ---- derived widths and sizes: computed here and nowhere else -------------------
    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def operand_bytes(self) -> int:
        return (self.operand_bits + 7) // 8

    @property
    def acc_bytes(self) -> int:
        return (self.acc_bits + 7) // 8

    @property
    def lmem_addr_bits(self) -> int:
        return max(1, (self.lmem_depth - 1).bit_length())

    @property
    def slot_bits(self) -> int:
        return max(1, (self.out_bank_depth - 1).bit_length())

    @property
    def writeback_vectors(self) -> int:
        """Vectors a writeback step writes at most (``wb_vectors``, 0 and anything above
        ``rows + 1`` meaning ``rows + 1``)."""
        full = self.rows + 1
        return full if self.wb_vectors == 0 else min(self.wb_vectors, full)

    @property
    def writeback_lanes(self) -> int:
        """Lanes' entries a writeback step writes at most: ``writeback_vectors``, at most
        one per PE row."""
        return min(self.rows, self.writeback_vectors)

    @property
    def stream_fifo_rate(self) -> float:
        """Elements per cycle a PE row's stream can bring at most: a FIFO entry is held
        from its request until its element issues, and the requester sees it free
        ``dram_latency_cycles + 2 + request_lag_cycles`` cycles after it asked, at least
        (docs/machine.md, rules 0, 1 and 4)."""
        return min(1.0, self.stream_fifo_depth / self.fifo_round_trip)

    @property
    def fifo_round_trip(self) -> int:
        """Cycles from a FIFO entry's request to the first request that can reuse it."""
        return self.dram_latency_cycles + 2 + self.request_lag_cycles

    @property
    def load_fifo_rate(self) -> float:
        """Load entries per cycle a lane can write at most, for the same reason."""
        return min(1.0, self.load_fifo_depth / self.fifo_round_trip)

    @property
    def stream_index_bytes(self) -> int:
        """Bytes of the compressed index sent with each streamed nonzero."""
        return (self.lmem_addr_bits + 7) // 8

    @property
    def pe_latency_cycles(self) -> int:
        return PE_LATENCY_CYCLES + self.lmem_read_cycles - 1

    @property
    def merge_latency_cycles(self) -> int:
        return MERGE_LATENCY_CYCLES

    @property
    def wide_chunks(self) -> tuple:
        """``(offset, width, signed)`` slices of the ``acc_bits`` operand of the PE's
        ``operand_bits`` × ``acc_bits`` product, one 18 × 18 multiplier each: unsigned
        17-bit slices from the bottom and a signed top slice of at most 18 bits."""
        if self.acc_bits <= _DSP_WIDTH:
            return ((0, self.acc_bits, True),)
        out, off = [], 0
        while self.acc_bits - off > _DSP_WIDTH:
            out.append((off, _DSP_WIDTH - 1, False))
            off += _DSP_WIDTH - 1
        out.append((off, self.acc_bits - off, True))
        return tuple(out)

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pes

    # ---- serialization --------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def id(self) -> str:
        """Stable id: hash of the canonical JSON of the fields (those added later,
        ``_LATE_DEFAULTS``, left out while at their defaults, so configurations written
        before they existed keep their ids)."""
        d = self.to_dict()
        for late, default in _LATE_DEFAULTS.items():
            if d[late] == default:
                del d[late]
        canon = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps({"id": self.id, **self.to_dict()}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "HardwareConfig":
        known = {f.name for f in fields(cls)}
        d = dict(d)
        d.pop("id", None)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str, *, source: str = "config.json") -> "HardwareConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{source}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        want = d.get("id")
        cfg = cls.from_dict(d, source=source)
        if want is not None and want != cfg.id:
            raise ConfigError(f"{source}: id {want!r} does not match its fields ({cfg.id})")
        return cfg

    def with_(self, **changes) -> "HardwareConfig":
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown HardwareConfig field(s): {', '.join(unknown)}")
        return replace(self, **changes)


PRESETS = {
    "default": HardwareConfig(),
    "tiny": HardwareConfig(rows=4, cols=4, lmem_depth=64, out_bank_depth=64,
                           stream_fifo_depth=8, load_fifo_depth=8,
                           dram_bytes_per_cycle=16, dram_latency_cycles=4),
    "array16": HardwareConfig(rows=16, cols=16, lmem_depth=1024, out_bank_depth=512,
                              dram_bytes_per_cycle=128),
    "ample": HardwareConfig(dram_bytes_per_cycle=1024),
}


def preset(name: str) -> HardwareConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def load_config(path: str | Path) -> HardwareConfig:
    """Load a TOML file: optional ``preset = NAME`` plus any HardwareConfig fields."""
    path = Path(path)
    d, _ = read_toml(path, ConfigError)
    base = preset(d.pop("preset")) if "preset" in d else HardwareConfig()
    known = {f.name for f in fields(HardwareConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    try:
        return base.with_(**d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
