"""Program images: a Program and its off-chip memory packed into the tables the core reads.

Purely additive and behaviour-neutral: every table entry is a value the simulator
(`sim/engine.py`) derives from the same Program arrays, precomputed once so that the
hardware looks up one record per unit and cycle.  Records are bit fields packed into
integers (:class:`Fields`); the core slices them with the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.program import Program

__all__ = ["HdlError", "Fields", "CoreParams", "Image", "pack", "layouts", "CYCLE_BITS",
           "LUTRAM_MAX_BITS", "BRAM_MIN_DEPTH", "ram_style", "mem_attrs", "core_memories", "table_reads",
           "step_chain", "WB_CUTS", "wb_registers",
           "AllBut", "copy_fields",
           "table_depth", "DSP_PRIMITIVES", "check_multipliers", "ecp5_lmem_outreg",
           "lmem_unified", "lmem_unified_depth",
           "DP16KD_DEPTH", "DP16KD_WIDTH", "ecp5_fifo_outreg", "out_bank_async",
           "out_bank_unified", "out_bank_unified_depth"]

#: Width of the core's cycle counter and of every stored cycle number.
CYCLE_BITS = 32


class HdlError(AxwError):
    """A Program or parameter the RTL cannot implement."""


def _bits(n: int) -> int:
    """Bits of an unsigned field holding 0..n."""
    return max(1, int(n).bit_length())


class Fields:
    """An ordered list of named bit fields packed LSB first into one unsigned integer."""

    def __init__(self, fields):
        self.fields = []
        off = 0
        for name, width in fields:
            if width < 1:
                raise HdlError(f"field {name!r} has width {width}")
            self.fields.append((name, off, width))
            off += width
        self.width = max(off, 1)
        self._by = {n: (o, w) for n, o, w in self.fields}

    def pack(self, **values) -> int:
        v = 0
        for name, off, width in self.fields:
            x = int(values.get(name, 0))
            if not -(1 << width) < x < (1 << width):
                raise HdlError(f"value {x} of field {name!r} does not fit {width} bits")
            v |= (x & ((1 << width) - 1)) << off
        return v

    def get(self, value, name):
        """The slice of Amaranth ``value`` holding field ``name``."""
        off, width = self._by[name]
        return value[off:off + width]

    def width_of(self, name) -> int:
        return self._by[name][1]

    def unpack(self, value: int) -> dict:
        """``{field: unsigned value}`` of a packed integer."""
        return {n: (int(value) >> off) & ((1 << w) - 1) for n, off, w in self.fields}


#: How a PE's 18 × 18 multipliers are written: ``None``, Amaranth's ``*`` between fabric
#: registers (any tool, any simulator); ``"ecp5"``, instantiated ``MULT18X18D`` blocks that
#: hold the operand and partial-product registers themselves (synthesis for ECP5; simulated
#: with the model of :mod:`hdl.models`).
DSP_PRIMITIVES = (None, "ecp5")


def check_multipliers(config: HardwareConfig, lut_multipliers, dsp_primitive) -> None:
    """Raise HdlError unless ``lut_multipliers`` is a PE count of ``config`` and
    ``dsp_primitive`` one of :data:`DSP_PRIMITIVES`."""
    n = lut_multipliers
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= config.pes:
        raise HdlError(f"lut_multipliers must be an integer in 0..{config.pes} "
                       f"(the PEs), got {n!r}")
    if dsp_primitive not in DSP_PRIMITIVES:
        raise HdlError(f"dsp_primitive must be None or one of "
                       f"{', '.join(p for p in DSP_PRIMITIVES if p)}, got {dsp_primitive!r}")


@dataclass(frozen=True)
class CoreParams:
    """Everything the core's shape depends on: the HardwareConfig and the capacities of
    its program memories (a program must fit them; :func:`pack` checks)."""

    config: HardwareConfig
    max_tiles: int = 256
    max_blocks: int = 64
    max_steps: int = 1024
    max_lane_elems: int = 4096
    max_lane_loads: int = 1024
    max_phases: int = 8
    mem_words: int = 1 << 20
    #: PEs (the last ones in row-major order) whose product is computed in logic instead
    #: of 18 × 18 multiplier blocks; same bits and cycles (hdl.pe.PE ``multiplier``)
    lut_multipliers: int = 0
    #: how the other PEs' multipliers are written (:data:`DSP_PRIMITIVES`)
    dsp_primitive: str | None = None

    def __post_init__(self):
        for k in ("max_tiles", "max_blocks", "max_steps", "max_lane_elems", "max_lane_loads",
                  "max_phases", "mem_words"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise HdlError(f"{k} must be a positive integer, got {v!r}")
        if not isinstance(self.config, HardwareConfig):
            raise HdlError(f"config must be a HardwareConfig, got {type(self.config).__name__}")
        if self.config.request_lag_cycles == 1:
            raise HdlError("request_lag_cycles=1: the RTL implements request_lag_cycles 0 "
                           "and 2 or more (the simulator and the model implement every lag)")
        if self.config.credit_lag_cycles and self.config.request_lag_cycles < 3:
            raise HdlError(f"credit_lag_cycles=1 with request_lag_cycles="
                           f"{self.config.request_lag_cycles}: the RTL registers the grants "
                           f"from sums made two cycles ahead, which needs request_lag_cycles "
                           f">= 3 (the simulator implements every combination)")
        check_multipliers(self.config, self.lut_multipliers, self.dsp_primitive)

    @property
    def addr_bits(self) -> int:
        return _bits(self.mem_words)

    @property
    def tile_bits(self) -> int:
        return _bits(self.max_tiles)

    @property
    def block_bits(self) -> int:
        return _bits(self.max_blocks)

    @property
    def wb_direct(self) -> bool:
        """Every lane and the merged row have their own output vector in every writeback
        step (``rows + 1`` vectors): no selection between the bank reads and the
        requantizers."""
        return self.config.writeback_vectors == self.config.rows + 1

    @property
    def wb_sum_all(self) -> bool:
        """The writeback's merge sums every lane's bank data, none chosen by a merge flag:
        with at most two output vectors (and not :attr:`wb_direct`), where the merged row
        is that sum less the lane written beside it (``hdl.core``).  Its steps then
        carry no merge flags."""
        return not self.wb_direct and self.config.writeback_vectors <= 2

    @property
    def step_bits(self) -> int:
        return _bits(self.max_steps)

    @property
    def elem_bits(self) -> int:
        return _bits(self.max_lane_elems)

    @property
    def load_bits(self) -> int:
        return _bits(self.max_lane_loads)

    @property
    def phase_bits(self) -> int:
        return _bits(self.max_phases)

    @property
    def max_credit(self) -> int:
        """Upper bound of the arbiter's credit cap (twice the largest transfer; :func:`pack`
        computes the cap): memory words are ``acc_bits`` wide and every tensor fits them."""
        c = self.config
        value_bytes = c.acc_bytes
        largest = max(c.dram_bytes_per_cycle, value_bytes + c.stream_index_bytes,
                      value_bytes * c.cols * c.rows)
        return 2 * largest

    @property
    def credit_bits(self) -> int:
        """Width of the credit register: it holds at most the cap, and ``credit + B`` is
        compared with the cap before it is clamped."""
        return _bits(self.max_credit + self.config.dram_bytes_per_cycle)

    @property
    def grant_bits(self) -> int:
        """Width of the arbiter's prefix sums of the bytes requested in one cycle (2R + 1
        requests, each at most the cap): the credit's and log2 2R more.  The tables' byte
        count of one request needs only the credit's width (it is at most the cap)."""
        return self.credit_bits + (2 * self.config.rows).bit_length()

    @property
    def col_bits(self) -> int:
        """Bits of a column offset inside an output row (bounded by the address)."""
        return self.addr_bits

    @classmethod
    def fit(cls, program: Program, memory_words: int) -> "CoreParams":
        """The smallest capacities (powers of two) that hold ``program``."""
        def p2(n):
            return 1 << max(0, int(n - 1).bit_length()) if n > 1 else 1
        a = program.arrays
        rsp = a["row_stream_ptr"]
        lp = a["load_ptr"]
        lane_elems = int((rsp[:, -1] - rsp[:, 0]).max()) if rsp.size else 0
        lane_loads = int((lp[:, 1:] - lp[:, :-1]).sum(axis=0).max()) if lp.size else 0
        return cls(program.config, max_tiles=p2(program.n_tiles + 1),
                   max_blocks=p2(program.n_blocks + 1),
                   max_steps=p2(len(a["wb_slot"]) + 1), max_lane_elems=p2(lane_elems + 1),
                   max_lane_loads=p2(lane_loads + 1), max_phases=p2(program.n_phases + 1),
                   mem_words=p2(memory_words + 1))


def _step_fields(p: CoreParams) -> list:
    """A writeback step: its bytes, per lane what it reads (``kind``, ``slot``) and
    whether it joins the merged row; per output vector its row.  With ``rows + 1``
    vectors vector i is lane i's and vector R the merged row (``mrow``); with fewer, each
    vector says whether it is written (``on``) and from where (``src``: a lane, or R for
    the merged row)."""
    c = p.config
    R, slot = c.rows, c.slot_bits
    need = min(32, p.credit_bits)       # a transfer is at most the cap
    lane = [lambda i: (f"kind{i}", 2), lambda i: (f"slot{i}", slot)]
    if not p.wb_sum_all:
        lane.append(lambda i: (f"merge{i}", 1))
    if p.wb_direct:
        lane.append(lambda i: (f"row{i}", p.addr_bits))
        return [("need", need), ("mrow", p.addr_bits)] + [f(i) for i in range(R) for f in lane]
    return ([("need", need)] + [f(i) for i in range(R) for f in lane]
            + [f for v in range(c.writeback_vectors)
               for f in ((f"on{v}", 1), (f"src{v}", _bits(R)), (f"row{v}", p.addr_bits))])


def layouts(p: CoreParams) -> dict:
    """The record layouts of every program table, computed from ``p``."""
    c = p.config
    R, C = c.rows, c.cols
    slot = c.slot_bits
    return {
        # per lane, by tile, one record per unit that walks the tiles; ``nrs0`` is the
        # next tile's first element (0 after the last tile): the walkers read the tables
        # synchronously, one cycle ahead, so they need it before they reach that tile;
        # ``ne`` (the tile has elements) and ``one`` (exactly one) spare the fetch and
        # issue sides comparisons on the paths to their decisions
        "lane_ftile": Fields([("rs0", p.elem_bits), ("rs1", p.elem_bits), ("nrs0", p.elem_bits),
                              ("ne", 1), ("one", 1), ("s_dep_ok", 1), ("s_dep", p.phase_bits),
                              ("s_bytes", min(16, p.credit_bits))]),
        "lane_itile": Fields([("rs0", p.elem_bits), ("n", p.elem_bits), ("nrs0", p.elem_bits),
                              ("ne", 1), ("one", 1),
                              ("wbprev_ok", 1), ("wbprev", p.block_bits), ("half", 1),
                              ("bank", 1), ("sel", 1), ("s_rq_shift", 7), ("s_rq_bits", 7)]),
        "lane_ltile": Fields([("ld_end", p.load_bits), ("bc", 1), ("prev_ok", 1),
                              ("prev", p.tile_bits), ("d_dep_ok", 1), ("d_dep", p.phase_bits),
                              ("bank", 1)]),
        # per lane, by element: word address of S's value, local address, slot, flags
        "lane_elem": Fields([("src", p.addr_bits), ("addr", c.lmem_addr_bits),
                             ("slot", slot), ("flags", 3)]),
        # per lane, by load entry (request order)
        "lane_load": Fields([("row", p.addr_bits), ("addr", c.lmem_addr_bits),
                             ("ncols", _bits(C)), ("dep_ok", 1), ("dep", p.phase_bits),
                             ("bytes", min(24, p.credit_bits))]),
        # global, by block
        "block": Fields([("last_tile", p.tile_bits), ("s1", p.step_bits), ("last_of_phase", 1),
                         ("phase", p.phase_bits), ("ncols", _bits(C)), ("rq_shift", 7),
                         ("rq_bits", 7)] + [(f"col{j}", p.col_bits) for j in range(C)]),
        # global, by writeback step
        "step": Fields(_step_fields(p)),
        # scalar registers: number of tiles, blocks, credit cap, per-lane load totals
        "const": Fields([("value", 32)]),
    }


#: A memory of at most this many bits, or shallower than :data:`BRAM_MIN_DEPTH`, is
#: distributed RAM (LUTs); a larger one block RAM (a shallow, wide table would use a
#: block per 36 bits of width and leave it almost empty).
LUTRAM_MAX_BITS = 1024
BRAM_MIN_DEPTH = 64


def ram_style(depth: int, width: int, sync: bool = True) -> str:
    """The ``ram_style`` the core gives a memory (Yosys honours it): ``block`` for a
    synchronously read memory of at least :data:`BRAM_MIN_DEPTH` entries and more than
    :data:`LUTRAM_MAX_BITS` bits, else ``distributed``."""
    big = depth >= BRAM_MIN_DEPTH and depth * width > LUTRAM_MAX_BITS
    return "block" if sync and big else "distributed"


#: Words and bits of one ECP5 ``DP16KD`` in its widest mode.
DP16KD_DEPTH, DP16KD_WIDTH = 512, 36


def ecp5_lmem_outreg(config: HardwareConfig) -> bool:
    """Whether a PE built for ECP5 (``primitive="ecp5"``) makes each local-memory bank a
    ``DP16KD`` whose output register is the bank's read register: with
    ``lmem_read_cycles`` 2 or 3 (the register exists) and a bank the core puts in block RAM
    (``hdl.image.ram_style``) that fits one in its 512 × 36 mode (both banks in one when
    they fit it together: :func:`lmem_unified`).  Otherwise the bank is a memory Yosys
    maps (the same cycles)."""
    D, W = config.lmem_depth, config.acc_bits
    return (config.lmem_read_cycles >= 2 and ram_style(D, W) == "block"
            and D <= DP16KD_DEPTH and W <= DP16KD_WIDTH)


def lmem_unified_depth(config: HardwareConfig) -> int:
    """Entries of a local memory holding both banks, addressed by bank (the top bit) and
    address: ``2 << lmem_addr_bits``."""
    return 2 << config.lmem_addr_bits


def lmem_unified(config: HardwareConfig, primitive: str | None) -> bool:
    """Whether a PE's two local-memory banks are one memory of :func:`lmem_unified_depth`
    entries addressed by bank and address, read with no choice of bank after it: one
    ``DP16KD`` with its output register (:func:`ecp5_lmem_outreg`) when both banks fit
    it together.  Otherwise one memory per bank.  Either way the PE has one write port:
    the machine writes a PE's local memory at most once a cycle (docs/machine.md,
    rule 2: a lane writes its own entries only at a tile lane 0 does not broadcast)."""
    return (primitive == "ecp5" and ecp5_lmem_outreg(config)
            and lmem_unified_depth(config) <= DP16KD_DEPTH)


def fifo_async(config, depth: int, width: int) -> bool:
    """Whether the core reads a stream or load FIFO of ``depth`` × ``width`` bits
    asynchronously, at its head register: under a request lag (``request_lag_cycles``
    ≥ 2), for a FIFO small enough for distributed RAM.  A head is read only once it has
    arrived, which is at the end of a cycle before, so the asynchronous read needs no
    read-during-write logic and gives what the synchronous, transparent read addressed
    with the next head gives; but its address is a register instead of the cycle's own
    issue or write decision (cycle-neutral; the lag-0 netlist keeps its form)."""
    return config.request_lag_cycles >= 2 and ram_style(depth, width) != "block"


def table_async(config, kind: str, depth: int, width: int) -> bool:
    """Whether the core reads a program table ``kind`` of ``depth`` × ``width`` bits
    asynchronously at a register that takes the read address, instead of synchronously:
    under a request lag, for a table in distributed RAM (as :func:`fifo_async`).  A
    table is written only while idle, so both give the record at the address of the
    cycle before; the register moves from the record to the address, so no walker's
    decision reaches a distributed RAM's read (cycle-neutral; the lag-0 netlist keeps
    its form).  The issue walker's tile table keeps the synchronous read: the record
    its port reads feeds the requantizer's constants, which would follow the read in
    the same cycle."""
    return kind != "lane_itile" and fifo_async(config, depth, width)


def out_bank_async(config) -> bool:
    """Whether each half of a PE's output bank is read asynchronously at a register that
    takes the read address (the slot of a merge or of the writeback), instead of
    synchronously: for a bank in distributed RAM.  The write of the addressing cycle has
    then landed when the read is made, so the PE forwards only the merge written in the
    read's own cycle (the synchronous read also forwards the one of the addressing cycle,
    for a merge and for the writeback).  Same data, same cycles."""
    return ram_style(config.out_bank_depth, config.acc_bits) == "distributed"


def out_bank_unified(config) -> bool:
    """Whether a PE's output bank is one memory addressed by half and slot, in two copies
    written alike, one read by the merge and one by the writeback, instead of one memory
    per half read by either: for a bank read asynchronously (:func:`out_bank_async`)
    whose two halves fit one distributed RAM's 16 entries (``out_bank_depth`` <= 8).
    The same distributed RAM either way (each half alone fills one as much), and no
    choice of half or address in front of the reads or after them.  Same data, same
    cycles: the writeback never reads the half a merge writes."""
    return out_bank_async(config) and out_bank_unified_depth(config) <= 16


def out_bank_unified_depth(config) -> int:
    """Entries of a unified output bank (:func:`out_bank_unified`): both halves, the half
    the top address bit above the slot."""
    return 2 << config.slot_bits


def stream_fifo_copies(config) -> int:
    """Copies of each stream FIFO: three under a request lag for a block-RAM FIFO (the
    core keeps the head and the entry after it in registers, and reads the three entries
    after those, one from each copy, at registers two cycles before it may take one of
    them: the read port and a register after it, which on ECP5 is the block RAM's own
    output register, :func:`ecp5_fifo_outreg`), else one."""
    W, SF = config.acc_bits, config.stream_fifo_depth
    return 3 if config.request_lag_cycles >= 2 and not fifo_async(config, SF, W) else 1


def ecp5_fifo_outreg(config: HardwareConfig) -> bool:
    """Whether a core built for ECP5 (``dsp_primitive="ecp5"``) makes each copy of a
    stream FIFO a ``DP16KD`` whose output register is the copy's read register: with
    three copies (:func:`stream_fifo_copies`) of a FIFO that fits one in its 512 × 36
    mode.  Otherwise each copy is a memory Yosys maps, and a register (the same cycles)."""
    return (stream_fifo_copies(config) == 3 and config.stream_fifo_depth <= DP16KD_DEPTH
            and config.acc_bits <= DP16KD_WIDTH)


def mem_attrs(depth: int, width: int, *, sync: bool = True,
              read_during_write: bool = False) -> dict:
    """Attributes of a core memory: its :func:`ram_style`, and, unless a read may use the
    value being written to its address in the same cycle (``read_during_write``), Yosys's
    ``no_rw_check``, so synthesis builds no bypass logic for such collisions (a block RAM
    reading the address the other port writes gives undefined data).  The core only
    leaves it out where it relies on it: the FIFOs' transparent reads, and the PE's
    output banks read at a registered address (:func:`out_bank_async`), whose
    asynchronous read Yosys may turn into a synchronous one."""
    attrs = {"ram_style": ram_style(depth, width, sync)}
    if not read_during_write:
        attrs["no_rw_check"] = 1
    return attrs


def table_reads(rows: int, credit_lag: int = 0, lag: int = 0) -> dict:
    """The fields each read port of each program table uses, by table kind: a list with
    one tuple of field names per port (None: every field; :class:`AllBut`: every field but
    those).  The core stores one copy of a table per read port holding just those fields (a
    one-write one-read memory, as a block RAM has them).  With ``credit_lag`` the
    writeback reads its steps' byte counts once more, a step earlier (the sums made two
    cycles ahead); with :func:`step_chain` the writeback reads each step once."""
    slots = tuple(f"slot{i}" for i in range(rows))
    return {
        "lane_ftile": [None], "lane_itile": [None],
        "lane_ltile": [None],
        "lane_elem": [("src",), ("addr", "slot", "flags")],
        "lane_load": [("row", "dep_ok", "dep", "bytes"), ("addr", "ncols")],
        # the block after the current one and the one after it; under a lag only the
        # block after the current one, read two cycles ahead (hdl.core ahead_pair)
        "block": [None] if lag else [None, None],
        # the writeback's requests and bank reads use the step after the current one too:
        # its slots and byte count are read one ahead, the rest of the step is not
        "step": [None] if step_chain(credit_lag, lag) else
        [AllBut(slots + ("need",)), slots + ("need",)] + ([("need",)] if credit_lag else []),
    }


def step_chain(credit_lag: int, lag: int) -> bool:
    """Whether the writeback reads its steps from one port two request stages before the
    earliest stage whose record it uses (the stage before the grant, or two before with
    ``credit_lag``, or the stage before the bank read with :func:`wb_registers`), the
    record landing in a register and moving down the stages with its
    request: a block RAM's output then feeds only a register.  It needs a request
    ``lag`` of 3, or 4 with the credit lag."""
    return lag >= (4 if credit_lag else 3)


# where the writeback's data path is registered, in the order the registers are added:
# the output (`wr_data`), the banks' data, the scaled value, the merge (with each vector's
# lane chosen beside it), the rounded value
WB_CUTS = ("o", "v", "u", "m", "r")


def wb_registers(credit_lag: int, lag: int) -> int:
    """How many registers the writeback's data path gets under a request ``lag``: the
    stages between the bank read and the grant.  With :func:`step_chain` the step table is
    read at request stage 0 at the earliest, its record is in a register at stage 2 and
    addresses the banks, whose data come out at stage 3; so ``lag - 3``, at most one per
    :data:`WB_CUTS` (0: the data path is combinational in the grant's cycle)."""
    if not step_chain(credit_lag, lag):
        return 0
    return max(0, min(len(WB_CUTS), lag - 3))


class AllBut(tuple):
    """A :func:`table_reads` entry: every field of the table except these."""


def copy_fields(f: Fields, spec) -> list:
    """The names of the fields of table layout ``f`` that a :func:`table_reads` entry
    ``spec`` keeps, in layout order."""
    names = [n for n, _, _ in f.fields]
    if spec is None:
        return names
    if isinstance(spec, AllBut):
        return [n for n in names if n not in spec]
    return list(spec)


def table_depth(p: CoreParams, kind: str) -> int:
    """Entries of program table ``kind`` (a key of :func:`layouts`) in the core for ``p``."""
    return {"lane_ftile": p.max_tiles, "lane_itile": p.max_tiles, "lane_ltile": p.max_tiles,
            "lane_elem": p.max_lane_elems, "lane_load": p.max_lane_loads,
            "block": p.max_blocks, "step": p.max_steps, "const": 3 + p.config.rows}[kind]


def _copy_width(f: Fields, fields) -> int:
    return sum(f.width_of(n) for n in copy_fields(f, fields))


def core_memories(p: CoreParams) -> list[dict]:
    """Every memory of the core built for ``p``, as ``{name, count, depth, width, sync,
    ports}``: ``count`` such memories (each program-table copy of :func:`table_reads` is
    one), each with ``ports`` read ports (one for every memory the core has now; a
    distributed RAM read through k ports is held k times)."""
    c = p.config
    R, C, W, P = c.rows, c.cols, c.acc_bits, c.pes
    L = layouts(p)
    lmem = (("lmem", P, lmem_unified_depth(c), W, True) if lmem_unified(c, p.dsp_primitive)
            else ("lmem", 2 * P, c.lmem_depth, W, True))
    rows = [lmem,
            (("out_bank", 2 * P, out_bank_unified_depth(c), W, False) if out_bank_unified(c) else
             ("out_bank", 2 * P, c.out_bank_depth, W, not out_bank_async(c))),
            ("stream_fifo", R * stream_fifo_copies(c), c.stream_fifo_depth, W,
             not fifo_async(c, c.stream_fifo_depth, W)),
            ("load_fifo", R, c.load_fifo_depth, W * C,
             not fifo_async(c, c.load_fifo_depth, W * C))]
    if c.request_lag_cycles and c.dram_latency_cycles:
        # under a lag, the FIFO position of each fired request waits in a queue for its
        # response (read asynchronously)
        for name, depth in (("stream_pos_queue", c.stream_fifo_depth),
                            ("load_pos_queue", c.load_fifo_depth)):
            rows.append((name, R, min(depth, c.dram_latency_cycles + 1),
                         (depth - 1).bit_length(), False))
    for name, reads in table_reads(R, c.credit_lag_cycles, c.request_lag_cycles).items():
        count = 1 if name in ("block", "step") else R
        for k, fields in enumerate(reads):
            depth, width = table_depth(p, name), _copy_width(L[name], fields)
            rows.append((f"{name}[{k}]", count, depth, width,
                         not table_async(c, name, depth, width)))
    return [dict(name=n, count=k, depth=d, width=w, sync=sy, ports=1)
            for n, k, d, w, sy in rows if k]


#: ``kind`` of a writeback lane.
KIND_NONE, KIND_ZERO, KIND_SLOT = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Image:
    """Packed tables (``name -> list of int``; per-lane tables as ``name{i}``), the
    off-chip memory image (one signed word per element, tensors concatenated), the
    tensor offsets, and the scalar constants."""

    params: CoreParams
    tables: dict
    memory: np.ndarray
    offsets: np.ndarray
    consts: list

    def output(self, memory: np.ndarray, program: Program, name: str = "Y") -> np.ndarray:
        t = program.tensor_id(name)
        ten = program.tensors[t]
        off = int(self.offsets[t])
        return np.asarray(memory[off:off + ten["rows"] * ten["cols"]], np.int64).reshape(
            ten["rows"], ten["cols"])


def pack(program: Program, memory: list, params: CoreParams | None = None) -> Image:
    """Pack ``program`` and its memory (one 2-D array per tensor) for the core."""
    cfg = program.config
    R, C = cfg.rows, cfg.cols
    WV = cfg.writeback_vectors
    sizes = np.array([m.size for m in memory], np.int64)
    words = int(sizes.sum())
    p = params or CoreParams.fit(program, words)
    if p.config != cfg:
        raise HdlError(f"program is for config {cfg.id}, core for {p.config.id}")
    a = program.arrays
    nt, nb, nph = program.n_tiles, program.n_blocks, program.n_phases
    nsteps = len(a["wb_slot"])
    rsp = a["row_stream_ptr"]
    lp = a["load_ptr"]
    for what, n, cap in (("tiles", nt + 1, p.max_tiles), ("blocks", nb + 1, p.max_blocks),
                         ("writeback steps", nsteps + 1, p.max_steps),
                         ("phases", nph + 1, p.max_phases), ("memory words", words + 1, p.mem_words)):
        if n > cap:
            raise HdlError(f"program needs {n} {what} entries, the core holds {cap}")
    empty = np.flatnonzero(np.diff(a["wb_ptr"]) == 0)
    if cfg.request_lag_cycles and empty.size:
        raise HdlError(f"block {int(empty[0])} has no writeback step: with a request lag the "
                       f"core ends a block on its last step's grant")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    tcols = [t["cols"] for t in program.tensors]
    tbits = [t["bits"] for t in program.tensors]
    if max(tbits, default=0) > cfg.acc_bits:
        raise HdlError(f"a tensor is {max(tbits)} bits wide, memory words are {cfg.acc_bits}")
    s_dep, d_dep = program.phase_dependencies()
    ph_s_bytes, ph_d_bytes, ph_o_bytes = (v.tolist() for v in program.phase_transfer_bytes())
    cap = program.credit_cap()
    if cap > p.max_credit:  # unreachable while every tensor fits acc_bits (checked above)
        raise HdlError(f"credit cap {cap} exceeds the core's bound {p.max_credit}")
    # which operand is narrow enough for the PE's operand_bits port
    sel = []
    for q in range(nph):
        sb = int(a["ph_s_rq_bits"][q]) or tbits[a["ph_s"][q]]
        db = tbits[a["ph_d"][q]]
        if sb <= cfg.operand_bits:
            sel.append(1)
        elif db <= cfg.operand_bits:
            sel.append(0)
        else:
            raise HdlError(f"phase {q}: neither S ({sb} bits) nor D ({db} bits) fits the "
                           f"PE's {cfg.operand_bits}-bit operand port")
    if (a["b_half"].astype(np.int64) != np.arange(nb) % 2).any():
        raise HdlError("b_half is not block index mod 2")
    L = layouts(p)
    # ---- per-tile facts shared by the lanes' tile records
    tile_f = []
    for t in range(nt):
        q = int(a["t_phase"][t])
        blk = int(a["t_block"][t])
        pv = int(a["t_prev_same_bank"][t])
        pb = int(a["b_prev_same_half"][blk])
        tile_f.append({
            "f": dict(s_dep_ok=s_dep[q] >= 0, s_dep=max(s_dep[q], 0), s_bytes=ph_s_bytes[q]),
            "i": dict(wbprev_ok=pb >= 0, wbprev=max(pb, 0), half=blk % 2, bank=a["t_bank"][t],
                      sel=sel[q], s_rq_shift=a["ph_s_rq_shift"][q],
                      s_rq_bits=a["ph_s_rq_bits"][q]),
            "l": dict(bc=a["t_broadcast"][t], prev_ok=pv >= 0, prev=max(pv, 0),
                      d_dep_ok=d_dep[q] >= 0, d_dep=max(d_dep[q], 0), bank=a["t_bank"][t])})
    tables = {}
    # ---- stream groups: one phase each
    ng = rsp.shape[1] - 1
    g_phase = np.full(ng, -1, np.int64)
    for t in range(nt):
        g, q = int(a["t_stream"][t]), int(a["t_phase"][t])
        if g_phase[g] not in (-1, q):
            raise HdlError(f"stream group {g} is used by phases {g_phase[g]} and {q}")
        g_phase[g] = q
    # ---- per lane
    lens = (lp[:, 1:] - lp[:, :-1]).T if nt else np.zeros((R, 0), np.int64)
    consts = [nt, nb, cap]
    for i in range(R):
        e0 = int(rsp[i, 0])
        n_el = int(rsp[i, -1]) - e0
        if n_el + 1 > p.max_lane_elems:
            raise HdlError(f"lane {i} has {n_el} elements, the core holds {p.max_lane_elems - 1}")
        ft, it, lt = [], [], []
        cum = 0
        ents = []
        for t in range(nt):
            g = int(a["t_stream"][t])
            cum += int(lens[i, t])
            rs0, rs1 = int(rsp[i, g]) - e0, int(rsp[i, g + 1]) - e0
            nrs0 = int(rsp[i, a["t_stream"][t + 1]]) - e0 if t + 1 < nt else 0
            ft.append(L["lane_ftile"].pack(rs0=rs0, rs1=rs1, nrs0=nrs0, ne=int(rs1 > rs0),
                                           one=int(rs1 == rs0 + 1), **tile_f[t]["f"]))
            it.append(L["lane_itile"].pack(rs0=rs0, n=rs1 - rs0, nrs0=nrs0, ne=int(rs1 > rs0),
                                           one=int(rs1 == rs0 + 1), **tile_f[t]["i"]))
            lt.append(L["lane_ltile"].pack(ld_end=cum, **tile_f[t]["l"]))
            q = int(a["t_phase"][t])
            dt = int(a["ph_d"][q])
            for k in range(int(lp[t, i]), int(lp[t, i + 1])):
                ents.append(L["lane_load"].pack(
                    row=offsets[dt] + int(a["ld_drow"][k]) * tcols[dt] + int(a["t_col0"][t]),
                    addr=a["ld_addr"][k], ncols=a["t_ncols"][t], dep_ok=d_dep[q] >= 0,
                    dep=max(d_dep[q], 0), bytes=ph_d_bytes[q] * int(a["t_ncols"][t])))
        if len(ents) + 1 > p.max_lane_loads:
            raise HdlError(f"lane {i} has {len(ents)} loads, the core holds {p.max_lane_loads - 1}")
        els = []
        for g in range(ng):
            q = int(g_phase[g])
            st = int(offsets[a["ph_s"][q]]) if q >= 0 else 0
            for e in range(int(rsp[i, g]), int(rsp[i, g + 1])):
                els.append(L["lane_elem"].pack(src=st + int(a["e_src"][e]), addr=a["e_addr"][e],
                                               slot=a["e_slot"][e], flags=a["e_flags"][e]))
        tables[f"lane_ftile{i}"] = ft
        tables[f"lane_itile{i}"] = it
        tables[f"lane_ltile{i}"] = lt
        tables[f"lane_elem{i}"] = els
        tables[f"lane_load{i}"] = ents
        consts.append(len(ents))
    # ---- blocks and steps
    blocks = []
    wp = a["wb_ptr"]
    for b in range(nb):
        q = int(a["b_phase"][b])
        ot = int(a["ph_out"][q])
        oc0 = int(a["ph_out_cols_ptr"][q]) + int(a["b_col0"][b])
        ncols = int(a["b_ncols"][b])
        cols = {f"col{j}": int(a["ph_out_cols"][oc0 + j]) if j < ncols else 0 for j in range(C)}
        last = (b + 1 == nb) or int(a["b_phase"][b + 1]) != q
        blocks.append(L["block"].pack(last_tile=a["b_last_tile"][b], s1=wp[b + 1],
                                      last_of_phase=last, phase=q, ncols=ncols,
                                      rq_shift=a["ph_rq_shift"][q], rq_bits=a["ph_rq_bits"][q],
                                      **cols))
        for st in range(int(wp[b]), int(wp[b + 1])):
            f = {"need": 0}
            vecs = []                            # (source, word address of the row)
            mrow = None
            for i in range(R):
                sl = int(a["wb_slot"][st, i])
                mg = int(a["wb_merge"][st, i]) != 0 and sl != -1
                kind = KIND_NONE if sl == -1 else KIND_ZERO if sl == -2 else KIND_SLOT
                f.update({f"kind{i}": kind, f"slot{i}": max(sl, 0), f"merge{i}": mg})
                if mg:
                    mrow = offsets[ot] + int(a["wb_mrow"][st]) * tcols[ot]
                elif sl != -1:
                    vecs.append((i, offsets[ot] + int(a["wb_row"][st, i]) * tcols[ot]))
            if mrow is not None:
                vecs.append((R, mrow))
            f["need"] = len(vecs) * ncols * ph_o_bytes[q]
            if p.wb_direct:
                f.update({f"row{i}": 0 for i in range(R)})
                f.update({f"row{i}": row for i, row in vecs if i < R})
                f["mrow"] = 0 if mrow is None else mrow
            else:
                if len(vecs) > WV:
                    raise HdlError(f"writeback step {st} writes {len(vecs)} vectors; the core "
                                   f"has {WV}")
                for v in range(WV):
                    src, row = vecs[v] if v < len(vecs) else (0, 0)
                    f.update({f"on{v}": v < len(vecs), f"src{v}": src, f"row{v}": row})
            tables.setdefault("step", []).append(L["step"].pack(**f))
    tables["block"] = blocks
    tables.setdefault("step", [])
    tables["const"] = consts
    flat = np.concatenate([np.asarray(m, np.int64).ravel() for m in memory]) if memory else \
        np.zeros(0, np.int64)
    return Image(p, tables, flat, offsets, consts)
