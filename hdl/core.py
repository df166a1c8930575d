"""The whole machine of docs/machine.md: stream fetch, token-bucket arbiter, writeback with
the merge adder, double-buffered loads, issue, and the controller walking the Program.

State registers hold the values at the start of a cycle; everything a rule of
docs/machine.md evaluates inside one cycle is combinational, in the rule order
(memory → stream fetch → writeback → loads → issue), so the core's cycle count equals
``sim.simulate``'s.  The program tables and FIFOs are read synchronously (block RAM).
The tables a memory request or a tile walker decides on are read one record ahead into
registers (the tile walkers hold the records of their tile and of the next one, the load
requests and the writeback their current record), so a block RAM's output reaches no
arbitration in the cycle it is read; the element tables are addressed with the next
value of the register that walks them (the element a tile starts at is in its record,
``nrs0``).  The memory interface is documented in docs/rtl.md.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import Array as PEArray
from .image import (CYCLE_BITS, KIND_NONE, KIND_SLOT, CoreParams, Fields, HdlError, Image,
                    copy_fields, ecp5_fifo_outreg, fifo_async, layouts, mem_attrs,
                    stream_fifo_copies, table_async, table_depth, table_reads, step_chain,
                    WB_CUTS, wb_registers)
from .pe import ecp5_dp16kd, element_layout

__all__ = ["Core", "table_ids", "LANE_TABLES", "PRIME", "prime_cycles"]


#: Cycles between ``start`` and machine cycle 0, while the table ports settle on the
#: cycle-0 addresses (tile records, then the element records they point to).
PRIME = 2


def prime_cycles(config) -> int:
    """The PRIME cycles of the core of ``config``: two more under a request lag, whose
    table walkers fill their last record register from the port first and each one
    before it from the one after it (hdl.core ``tile_walk``; the fetch's and the issue's
    with three), so that the record read in the cycle before ``start`` (which may be the
    last cycle of the run before, or the program load's last write) reaches none."""
    return PRIME + 2 if config.request_lag_cycles else PRIME

#: Per-lane program tables, in table-number order.
LANE_TABLES = ("lane_ftile", "lane_itile", "lane_ltile", "lane_elem", "lane_load")


def table_ids(rows: int) -> dict:
    """Program-load table numbers: the global tables, then five per lane."""
    ids = {"block": 0, "step": 1, "const": 2}
    for i in range(rows):
        for k, name in enumerate(LANE_TABLES):
            ids[f"{name}{i}"] = 3 + len(LANE_TABLES) * i + k
    return ids


def kept(m, value, name):
    """``value`` as a signal Yosys keeps (``keep``): an adder or a choice whose result is
    only selected afterwards stays in front of the select, where ``opt_share`` would
    otherwise move the select in front of one shared carry chain."""
    s = Signal(value.shape(), name=name, attrs={"keep": 1})
    m.d.comb += s.eq(value)
    return s


def rq_scale_amount(m, shift, bits, width):
    """The shift the requantization rule of ``accel.contract`` applies (``bits`` 0: none),
    clamped to ``width``: a shift of ``width`` or more rounds every ``width``-bit value
    to 0, as the clamped one does."""
    SB = width.bit_length()        # holds 0..W
    s = Signal(SB)
    m.d.comb += s.eq(Mux(bits == 0, 0, Mux(shift > width, width, shift[:SB])))
    return s


def rq_scale(m, v, s, width):
    """``v`` (``width`` bits) shifted right by ``s - 1`` with one fraction bit:
    ``u = (2 v) >> s`` in ``width + 1`` bits, whose top ``width`` bits are ``v >> s`` and
    whose bit 0 is the rounding bit ``v[s - 1]`` (0 for ``s`` 0).  Round half up is then
    ``(v + 2**(s-1)) >> s = (v >> s) + v[s - 1]``: see :func:`rq_saturate`."""
    u = Signal(signed(width + 1))
    m.d.comb += u.eq(Cat(Const(0, 1), v).as_signed() >> s)
    return u


def rq_bound(m, bits, width):
    """What the saturation to signed ``bits`` (0: none) needs: the bound
    ``2**(bits-1) - 1`` and whether it applies."""
    W = width
    hi = Signal(W)
    on = Signal()
    # bit j of the bound is whether j < min(bits, W) - 1: a compare of bits with a
    # constant per bit, no carry chain (all ones for bits 0, where it is not applied)
    zero = bits == 0
    m.d.comb += [hi.eq(Cat(*(zero | (bits > j + 1) if j < W - 1 else zero
                             for j in range(W)))),
                 on.eq(~zero & (bits <= W))]
    return hi, on


def rq_round(m, u, width):
    """A scaled ``u`` (:func:`rq_scale`) rounded half up: ``(u >> 1) + u[0]``, wrapped to
    ``width`` bits (no value the shift leaves wraps)."""
    r = Signal(signed(width))
    m.d.comb += r.eq((u[1:] + u[0])[:width])
    return r


def rq_clamp(m, r, hi, on, width, tree=False, mask=None):
    """A rounded ``r`` (:func:`rq_round`) saturated to the bound ``hi`` when ``on``
    (:func:`rq_bound`).  A value fits iff its bits from ``bits - 1`` up all equal its
    sign; the saturated value is ``hi`` with every bit flipped when negative.  With
    ``tree`` the bits that do not fit are gathered four at a time into kept signals, a
    tree Yosys's LUT mapping keeps (it builds the plain form as a chain of LUTs).
    ``mask``: ``Mux(on, ~hi, 0)`` from a register, in the place of ``on``."""
    W = width
    sign = Signal(W)
    ovf = Signal()
    out = Signal(signed(W))
    bad = (r ^ sign) & (Mux(on, ~hi, 0) if mask is None else mask)
    if tree:
        groups = []
        for k in range(0, W, 4):
            g = Signal(name=f"rq_ovf{k // 4}", attrs={"keep": 1})
            m.d.comb += g.eq(bad[k:k + 4].any())
            groups.append(g)
        bad = Cat(*groups)
    m.d.comb += [sign.eq(r[W - 1].replicate(W)),
                 ovf.eq(bad.any()),
                 out.eq(Mux(ovf, hi ^ sign, r))]
    return out


def rq_saturate(m, u, hi, on, width, tree=False):
    """The requantized value of a scaled ``u`` (:func:`rq_scale`): rounded, then saturated
    to the bound ``hi`` when ``on`` (:func:`rq_bound`; ``tree``: :func:`rq_clamp`)."""
    return rq_clamp(m, rq_round(m, u, width), hi, on, width, tree)


def requantizer(m, shift, bits, width, tree=False):
    """The requantization rule of ``accel.contract`` (round half up by ``shift``, then
    saturate to signed ``bits``; ``bits`` 0: none) for ``width``-bit values, as a function
    ``v -> out``.  What depends only on ``shift`` and ``bits`` (the clamped shift, the
    saturation bound) is built once and shared by every value applied.  ``tree``: see
    :func:`rq_clamp`."""
    s = rq_scale_amount(m, shift, bits, width)
    hi, on = rq_bound(m, bits, width)
    return lambda v: rq_saturate(m, rq_scale(m, v, s, width), hi, on, width, tree)


def requantize(m, v, shift, bits, width, tree=False):
    """:func:`requantizer` applied to the one value ``v``."""
    return requantizer(m, shift, bits, width, tree)(v)


class Core(wiring.Component):
    """The accelerator core for ``params`` (a HardwareConfig plus program capacities).

    Parameters
    ----------
    params : CoreParams
    image : Image, optional
        Initial contents of the program memories (simulation); without it the program is
        written through the ``pl_*`` port before ``start``.

    Members: see docs/rtl.md (control, program load, memory interface).
    """

    def __init__(self, params: CoreParams, image: Image | None = None):
        if not isinstance(params, CoreParams):
            raise HdlError(f"params must be a CoreParams, got {type(params).__name__}")
        if image is not None and image.params != params:
            raise HdlError("image was packed for other core parameters")
        self._params = params
        self._image = image
        cfg = params.config
        R, C, W = cfg.rows, cfg.cols, cfg.acc_bits
        WV = cfg.writeback_vectors
        AW = params.addr_bits
        self._layouts = layouts(params)
        if 3 + len(LANE_TABLES) * R > 256:
            raise HdlError(f"the core's 8-bit table numbers cover at most 50 rows, got {R}")
        self._ids = table_ids(R)
        plw = max(f.width for f in self._layouts.values())
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(CYCLE_BITS),
            "pl_en": In(1), "pl_table": In(8), "pl_addr": In(32), "pl_data": In(plw),
            "mem_ready": In(1),
            "sreq_valid": Out(1).array(R), "sreq_addr": Out(AW).array(R),
            "srsp_valid": In(1).array(R), "srsp_data": In(signed(W)).array(R),
            "lreq_valid": Out(1).array(R), "lreq_addr": Out(AW).array(R),
            "lrsp_valid": In(1).array(R), "lrsp_data": In(signed(W)).array(R, C),
            "wr_valid": Out(1).array(WV), "wr_row": Out(AW).array(WV),
            "wr_data": Out(signed(W)).array(WV, C), "wr_col": Out(AW).array(C),
            "wr_ncols": Out(range(C + 1)),
        })

    @property
    def params(self) -> CoreParams:
        return self._params

    @property
    def table_ids(self) -> dict:
        return dict(self._ids)

    @property
    def pl_width(self) -> int:
        return len(self.pl_data)

    @staticmethod
    def _load_checks(m, issue_next, own_okr, bc_okr, lw_walk, lw_tile, lw_step, lw_fin,
                     bc0, cur, running, HW, TB):
        """Under a request lag, the load writer's reading checks (rule 2) for the next
        cycle, registered: lane i's own (``own_okr[i]``: the lane has finished reading its
        load tile's ``prev``) and lane 0's broadcast check of lane i (``bc_okr[i]``: lane i
        is at lane 0's load tile and has finished reading its ``prev``).  Each is formed
        for both outcomes of the load walkers' steps, from the records a and b, and for
        both of the issue's pass, from the current tile, and chosen by them last; the
        issue window takes this cycle's issue.  The broadcast check is formed for both
        outcomes of lane 0's end of tile (``lw_fin[0]``: its step, and with ``bc0``, its
        broadcast tile, every lane's) and chosen by it last, so the loop through lane 0's
        check of every lane is short.  Cycle-neutral: the lag-0 netlist compares in the
        cycle of the write."""
        R = len(lw_tile)

        def done_next(i, tile):
            """read_done(i, tile) of the next cycle (while running, or the first cycle)."""
            iss, pas, old_any, old_tile = issue_next[i]
            c = cur[i]
            past = Mux(pas, c >= tile, c > tile)                     # cur + pas > tile
            before_cur = Mux(pas, tile <= c, tile < c)               # tile < cur + pas
            w_any_n = (old_any | iss) if HW else Const(0, 1)
            # tile < w_tile next (a window of one entry has no older one: a compare with a
            # constant 0 would be Verilator's UNSIGNED warning)
            before_w = Mux(old_any, tile < old_tile, before_cur) if HW > 1 else before_cur
            return running & past & (~w_any_n | before_w)

        def own(i, rec):
            return ~rec("prev_ok") | done_next(i, rec("prev"))

        t0 = lw_tile[0]
        for i in range(R):
            # kept in front of the lane's step, which chooses last
            rec_a, rec_b = lw_walk[i][:2]
            ra, rb = (kept(m, own(i, rec), f"lw_own_{x}{i}") for x, rec in
                      (("a", rec_a), ("b", rec_b)))
            # the first cycle of a run: every walker at tile 0, the checks false unless
            # there is no prev (done_next is 0 then)
            m.d.sync += own_okr[i].eq(Mux(running & lw_step[i], rb, ra))
            # lane i at lane 0's tile next cycle, for the outcomes of the two steps: lane
            # 0's (y: its tile's end) and lane i's (its own end, or lane 0's broadcast end)
            ti = lw_tile[i]
            e0, ep, em = ti == t0, (ti + 1)[:TB] == t0, ti == (t0 + 1)[:TB]
            r0a, r0b = lw_walk[0][:2]
            ca, cb = (kept(m, own(i, rec), f"lw_bc_{x}{i}") for x, rec in
                      (("a", r0a), ("b", r0b)))
            cand = []
            for y in range(2):
                si = (lw_fin[i] | (bc0 & y)) if i else Const(y, 1)
                teq = ~running | Mux(si == y, e0, Mux(si, ep, em))
                cand.append(kept(m, teq & (cb if y else ca), f"lw_bc_if{y}_{i}"))
            m.d.sync += bc_okr[i].eq(Mux(running & lw_fin[0], cand[1], cand[0]))

    def elaborate(self, platform):
        p = self._params
        cfg = p.config
        R, C, W = cfg.rows, cfg.cols, cfg.acc_bits
        WV = cfg.writeback_vectors
        SF, LF = cfg.stream_fifo_depth, cfg.load_fifo_depth
        B = cfg.dram_bytes_per_cycle
        Lt = self._layouts
        m = Module()
        m.submodules.array = arr = PEArray(cfg, p.lut_multipliers, p.dsp_primitive)
        fifo_outreg = p.dsp_primitive == "ecp5" and ecp5_fifo_outreg(cfg)
        self.array = arr   # the grid of the latest elaboration, for simulation monitors

        # ---------------------------------------------------------- program memories
        # Every table is read synchronously: a port's address is the *next* value of the
        # register that walks the table (or that value + 1, for a walker that may step
        # onto the next tile in the cycle), so the record is there when the cycle starts.
        # While idle the addresses are those of cycle 0; `start` waits PRIME cycles for
        # them to settle.
        reads = table_reads(R, cfg.credit_lag_cycles, cfg.request_lag_cycles)
        n_copies = {}

        def table_copy(name):
            """The next copy of table ``name``: one per read port, holding the fields that
            port uses (hdl.image.table_reads), written by the program-load port."""
            kind = name.rstrip("0123456789")
            k = n_copies[name] = n_copies.get(name, -1) + 1
            fields = reads[kind][k]
            full = Lt[kind]
            names = copy_fields(full, fields)
            sub = Fields([(n, full.width_of(n)) for n in names])
            init = [sub.pack(**{n: x for n, x in full.unpack(v).items() if n in names})
                    for v in self._image.tables.get(name, [])] if self._image else []
            depth = table_depth(p, kind)
            # written only while idle (program load): no read meets a write
            mem = Memory(shape=unsigned(sub.width), depth=depth, init=init,
                         attrs=mem_attrs(depth, sub.width))
            m.submodules[f"pm_{name}_{k}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.pl_en & (self.pl_table == self._ids[name])),
                         wp.addr.eq(self.pl_addr),
                         wp.data.eq(Cat(*[full.get(self.pl_data, n) for n in names]))]
            return mem, sub

        def read_next(mem, f, name, addr_next):
            """A read port on ``mem``, copy of table ``name`` with fields ``f``
            (:func:`table_copy`): in each cycle the record at the address ``addr_next``
            had in the cycle before.  A synchronous read, or for a table
            :func:`hdl.image.table_async` reads, an asynchronous one at a register that
            takes ``addr_next``."""
            if table_async(cfg, name.rstrip("0123456789"), mem.depth, f.width):
                rp = mem.read_port(domain="comb")
                aq = Signal(len(rp.addr), name=f"pm_{name}_{n_copies[name]}_aq")
                m.d.sync += aq.eq(addr_next)
                m.d.comb += rp.addr.eq(aq)
            else:
                rp = mem.read_port()
                m.d.comb += rp.addr.eq(addr_next)
            return rp.data

        def table_read(name, addr_next):
            """:func:`read_next` on the next copy of table ``name``: the record and its
            fields."""
            mem, f = table_copy(name)
            return read_next(mem, f, name, addr_next), f

        const_init = list(self._image.consts) if self._image else []
        # with a request lag each constant has its own width (the tile and block counts,
        # the cap, the lanes' load totals: :func:`hdl.image.pack` checks they fit), so no
        # comparison with one is 32 bits wide; the lag-0 netlist keeps 32 bits
        cwidths = ([p.tile_bits + 1, p.block_bits + 1, p.credit_bits] + [p.load_bits] * R
                   if cfg.request_lag_cycles else [32] * (3 + R))
        consts = [Signal(w, name=f"const{k}", init=(const_init[k] if k < len(const_init) else 0))
                  for k, w in enumerate(cwidths)]
        with m.If(self.pl_en & (self.pl_table == self._ids["const"])):
            for k, s in enumerate(consts):
                with m.If(self.pl_addr == k):
                    m.d.sync += s.eq(self.pl_data[:32])
        nt, nb, cap = consts[0], consts[1], consts[2]
        lane_total = consts[3:]

        def const_reg(k, name, shape, fn):
            """A register holding ``fn`` of constant k, written with the constant (its
            reset value from the image): never a cycle stale."""
            v0 = const_init[k] if k < len(const_init) else 0
            reg = Signal(shape, name=name, init=int(fn(v0)))
            with m.If(self.pl_en & (self.pl_table == self._ids["const"])
                      & (self.pl_addr == k)):
                m.d.sync += reg.eq(fn(self.pl_data[:len(consts[k])]))
            return reg
        # whether nt > k (k = 0, 1, 2), for the walkers' start: with a request lag
        # registers (cycle-neutral), else comparisons
        nt_gt = ([const_reg(0, f"nt_gt{k}", 1, lambda v, k=k: v > k) for k in range(3)]
                 if cfg.request_lag_cycles else [nt > k for k in range(3)])

        def port(name, addr_next):
            """Sync read port of table ``name`` addressed by ``addr_next``: a field getter
            of the record at that address, one cycle later."""
            data, f = table_read(name, addr_next)
            return lambda field: f.get(data, field)

        # ---------------------------------------------------------- state
        running = Signal()
        run_copies = {}

        def lane_run(i, part):
            """``running`` for lane i's ``part`` of the machine (f: stream fetch, l: load
            requests, w: load writes, i: issue).  With a request lag a copy of its own
            (cycle-neutral: set and cleared with ``running``, below), so that no one
            register drives every lane's logic across the device; else ``running``."""
            if not cfg.request_lag_cycles:
                return running
            if (part, i) not in run_copies:
                run_copies[part, i] = Signal(name=f"run_{part}{i}")
            return run_copies[part, i]
        idle = Signal()
        m.d.comb += idle.eq(~running)
        c = Signal(CYCLE_BITS)
        CR = p.credit_bits  # the credit never exceeds the cap (CoreParams.max_credit)
        credit = Signal(CR)
        rot_oh = Signal(R, init=1)      # one-hot: lane c mod R
        ph_done = Signal(p.max_phases)
        TB = p.tile_bits + 1
        EB = p.elem_bits
        f_tile = [Signal(TB, name=f"f_tile{i}") for i in range(R)]
        f_ptr = [Signal(EB, name=f"f_ptr{i}") for i in range(R)]
        f_end = [Signal(EB, name=f"f_end{i}") for i in range(R)]
        f_atend = [Signal(name=f"f_atend{i}") for i in range(R)]
        f_last = [Signal(name=f"f_last{i}") for i in range(R)]     # f_ptr + 1 == f_end (lag)
        f_live0 = [Signal(name=f"f_live0{i}") for i in range(R)]
        f_live1 = [Signal(name=f"f_live1{i}") for i in range(R)]
        f_live2 = [Signal(name=f"f_live2{i}") for i in range(R)]    # f_tile + 2 < nt (lag)
        i_live0 = [Signal(name=f"i_live0{i}") for i in range(R)]
        i_live1 = [Signal(name=f"i_live1{i}") for i in range(R)]
        i_live2 = [Signal(name=f"i_live2{i}") for i in range(R)]    # cur + 2 < nt (lag)
        i_zero = [Signal(name=f"i_zero{i}") for i in range(R)]
        l_more = [Signal(name=f"l_more{i}") for i in range(R)]
        l_room = [Signal(name=f"l_room{i}") for i in range(R)]
        s_occ = [Signal(range(SF + 1), name=f"s_occ{i}") for i in range(R)]
        s_free = [Signal(name=f"s_free{i}") for i in range(R)]     # s_occ < SF (lag)
        s_rpos = [Signal(range(SF), name=f"s_rpos{i}") for i in range(R)]
        s_hpos = [Signal(range(SF), name=f"s_hpos{i}") for i in range(R)]
        s_arr = [Signal(SF, name=f"s_arr{i}") for i in range(R)]
        s_head = [Signal(name=f"s_head{i}") for i in range(R)]    # s_arr at s_hpos
        cur = [Signal(TB, name=f"cur{i}") for i in range(R)]
        rem = [Signal(EB, name=f"rem{i}") for i in range(R)]
        h_ptr = [Signal(EB, name=f"h_ptr{i}") for i in range(R)]
        # a lane has finished reading tile p when it is past p and issued nothing of a
        # tile <= p in the last C - 1 cycles (rule 2: its last issue of p plus C cycles).
        # Tiles issue in order, so the oldest issue in that window has its smallest tile:
        # w_tile (valid: w_any) for this cycle, from the issue of the cycle before and the
        # history of the C - 2 before that.
        HW = C - 1
        hist_v = [[Signal(name=f"hist_v{i}_{k}") for k in range(HW - 1)] for i in range(R)]
        hist_t = [[Signal(TB, name=f"hist_t{i}_{k}") for k in range(HW - 1)] for i in range(R)]
        w_any = [Signal(name=f"w_any{i}") for i in range(R)]
        w_tile = [Signal(TB, name=f"w_tile{i}") for i in range(R)]
        # cycles until the last merge of the latest LAST issued on each output half is
        # complete (0: complete; rule 3's "c > issue + C - 1 + pe_latency + merge_latency")
        KM = C - 1 + cfg.pe_latency_cycles + cfg.merge_latency_cycles
        m_wait = [Signal(range(KM + 1), name=f"m_wait{h}") for h in range(2)]
        lr_cnt = [Signal(p.load_bits, name=f"lr_cnt{i}") for i in range(R)]
        lw_cnt = [Signal(p.load_bits, name=f"lw_cnt{i}") for i in range(R)]
        l_rpos = [Signal(range(LF), name=f"l_rpos{i}") for i in range(R)]
        l_wpos = [Signal(range(LF), name=f"l_wpos{i}") for i in range(R)]
        l_arr = [Signal(LF, name=f"l_arr{i}") for i in range(R)]
        l_head = [Signal(name=f"l_head{i}") for i in range(R)]    # l_arr at l_wpos
        lw_tile = [Signal(TB, name=f"lw_tile{i}") for i in range(R)]
        lw_started = [Signal(name=f"lw_started{i}") for i in range(R)]
        wb_blk = Signal(p.block_bits + 1)
        wb_cur = Signal(p.step_bits + 1)
        PC = prime_cycles(cfg)
        prime = Signal(range(PC + 1))

        m.d.comb += [self.busy.eq(running), self.cycles.eq(c)]
        ready = self.mem_ready
        # request lag d (docs/machine.md rule 0): with d >= 2 a request is decided from
        # registers d cycles before its arbitration and held in d registers; a refused
        # one comes back (registered) and is asked again before any new one
        LAG = cfg.request_lag_cycles
        # credit lag (rule 0): the grants are registered, checked against the credit of
        # the cycle before less only its writeback grant (with LAG >= 3, CoreParams)
        CLAG = cfg.credit_lag_cycles

        # The helpers below that build a lane's logic take ``run``, that lane's copy of
        # ``running`` (lane_run); ``running`` itself by default.
        def lag_pipe(name, d0, widths, run=running):
            """Registers ``name``_k for k = 1..LAG taking ``d0`` (a list of values of
            ``widths``) one stage a cycle, all 0 while idle: returns the stages."""
            stages, prev = [], d0
            for k in range(1, LAG + 1):
                regs = [Signal(w, name=f"{name}_{f}{k}") for f, w in enumerate(widths)]
                m.d.sync += [r.eq(Mux(run, v, 0)) for r, v in zip(regs, prev)]
                stages.append(regs)
                prev = regs
            return stages

        def lag_request(tag, i, ref, take, need, addr, wpos, depth, want_o, need_o, addr_o,
                        fire, valid, run):
            """A lane's request with a lag: the refused one (``ref``: valid, bytes,
            address, position) again, else the taken element or entry (``need``,
            ``addr`` at the reserved position ``wpos``), through :func:`lag_pipe` onto
            the arbitrated ``want_o``/``need_o``/``addr_o``.  Returns the stages
            (want, bytes) from the first register on, and the position each response
            fills.  The address enters a stage later: the first register takes
            ``addr`` as it is (a table's output: a block RAM's feeds only a register),
            with the refused address and the choice beside it, and the second chooses."""
            rv, rneed, raddr, rpos = ref
            stg = lag_pipe(f"{tag}_req{i}", [
                rv | take, Mux(rv, rneed, Mux(take, need, 0)), Mux(rv, rpos, wpos)],
                [1, len(rneed), len(rpos)], run=run)
            a1, r1 = Signal.like(raddr, name=f"{tag}_req{i}_a1"), Signal(name=f"{tag}_req{i}_r1")
            ra1 = Signal.like(raddr, name=f"{tag}_req{i}_ra1")
            m.d.sync += [a1.eq(addr), r1.eq(rv), ra1.eq(raddr)]
            prev = Mux(r1, ra1, a1)
            for k in range(2, LAG + 1):
                ak = Signal.like(raddr, name=f"{tag}_req{i}_a{k}")
                m.d.sync += ak.eq(Mux(run, prev, 0))
                prev = ak
            last = stg[-1]
            m.d.comb += [want_o.eq(last[0]), need_o.eq(last[1]), addr_o.eq(prev)]
            m.d.sync += [rv.eq(run & last[0] & ~fire), rneed.eq(last[1]),
                         raddr.eq(prev), rpos.eq(last[2]),
                         wpos.eq(Mux(run, Mux(take, inc(wpos, depth), wpos), 0))]
            return [g[:2] for g in stg], arrival_pos(f"{tag}_arrive{i}", depth, fire, last[2],
                                                     valid, run=run)

        def arrival_pos(name, depth, fire, pos, valid, run=running):
            """The FIFO position a response fills: that of the request it answers,
            ``dram_latency_cycles`` after it fired (responses come in request order); for
            latency 0 the request's own, else from a queue of the fired positions."""
            if cfg.dram_latency_cycles == 0:
                return pos
            qd = min(depth, cfg.dram_latency_cycles + 1)
            q = Memory(shape=range(depth), depth=qd, init=[],
                       attrs=mem_attrs(qd, len(pos), sync=False))
            m.submodules[f"{name}_q"] = q
            wp = q.write_port()
            wptr = Signal(range(qd), name=f"{name}_qw")
            rptr = Signal(range(qd), name=f"{name}_qr")
            rnext = Signal(range(qd), name=f"{name}_qr_n")
            # the queue's head is read for the next cycle and registered: the position a
            # response fills comes from a register, not from the queue's memory.  The head
            # and the entry after it are read at registers (rptr and rptr1, two read
            # ports) and this cycle's response chooses between them last (cycle-neutral).
            # A response comes L cycles after its request fired (docs/rtl.md, the memory
            # interface): at latency 1 the entry written in this cycle is taken straight
            # from the request; from latency 2 on it has landed in the queue by the cycle
            # before its response, and from latency 3 on the queue is written a cycle
            # after the fire, from registers, so no grant reaches the queue in its own
            # cycle (cycle-neutral)
            if cfg.dram_latency_cycles >= 3:
                fire_q = Signal(name=f"{name}_fire_q")
                pos_q = Signal.like(pos, name=f"{name}_wpos_q")
                m.d.sync += [fire_q.eq(run & fire), pos_q.eq(pos)]
                fire, pos = fire_q, pos_q
            rptr1 = Signal(range(qd), name=f"{name}_qr1")
            apos = Signal(range(depth), name=f"{name}_pos")
            cand = []
            for k, r_ in enumerate((rptr, rptr1)):
                rp = q.read_port(domain="comb")
                m.d.comb += rp.addr.eq(r_)
                cand.append(kept(m, Mux(fire & (wptr == r_), pos, rp.data)
                                 if cfg.dram_latency_cycles == 1 else rp.data,
                                 f"{name}_pos_if{k}"))
            m.d.comb += [wp.addr.eq(wptr), wp.data.eq(pos), wp.en.eq(fire),
                         rnext.eq(Mux(run, Mux(valid, rptr1, rptr), 0))]
            m.d.sync += [wptr.eq(Mux(run, Mux(fire, inc(wptr, qd), wptr), 0)),
                         rptr.eq(rnext),
                         rptr1.eq(Mux(run, Mux(valid, inc(rptr1, qd), rptr1), 1 % qd)),
                         apos.eq(Mux(run & valid, cand[1], cand[0]))]
            return apos

        def dep_ok(ok, q):
            return ~ok | ph_done.bit_select(q, 1)

        # For the requests registered a cycle ahead, by the outcome x of this cycle's
        # writeback grant (driven by the writeback): whether this cycle ends a phase
        # (rule 3) and whether the machine still runs next cycle.
        pe_if = [Signal(name=f"phase_end_if{x}") for x in range(2)]
        rn_if = [Signal(name=f"run_n_if{x}") for x in range(2)]
        end_phase = Signal(p.phase_bits)
        wb_fire = Signal()

        def dep_ok_n(ok, q, x, run=running):
            """``dep_ok`` of the next cycle if the writeback's grant is ``x`` (the phases
            done then; while idle, those of cycle 0: none)."""
            return Mux(run, ~ok | ph_done.bit_select(q, 1) | (pe_if[x] & (q == end_phase)),
                       ~ok)

        def request_next(fire, cand, idle, run=running):
            """The next cycle's value of a registered request: ``cand(f, x)`` if this
            requester's grant is ``f`` and the writeback's ``x`` (both late: selected
            last), ``idle`` for cycle 0 (while idle), 0 when the machine stops."""
            return Mux(run,
                       Mux(wb_fire, Mux(rn_if[1], Mux(fire, cand(1, 1), cand(0, 1)), 0),
                           Mux(rn_if[0], Mux(fire, cand(1, 0), cand(0, 0)), 0)),
                       Mux((prime == 1) & (nb != 0), idle, 0))

        def dep_reg(name, step, now, after, idle, okf, depf, run, late_step=False):
            """Under a request lag, a register holding ``dep_ok`` of the record a walker
            holds (fields ``okf``, ``depf``): next cycle the record ``after`` if it
            steps, else ``now`` (getters), both for the writeback's grant side by side
            and chosen last; while idle, of the record ``idle`` in cycle 0 (no phase
            done).  ``late_step``: the step comes later than the grant (the load
            writer's), so all four outcomes are kept and the step chooses last.
            Cycle-neutral: the lag-0 netlist looks the phase up in the cycle."""
            reg = Signal(name=name)

            def dn(rec, x):
                return dep_ok_n(rec(okf), rec(depf), x, run=run)
            if late_step:
                c = {(st, x): kept(m, Mux(run, dn(after if st else now, x), ~idle(okf)),
                                   f"{name}_if{st}{x}") for st in range(2) for x in range(2)}
                m.d.sync += reg.eq(Mux(step, Mux(wb_fire, c[1, 1], c[1, 0]),
                                       Mux(wb_fire, c[0, 1], c[0, 0])))
                return reg
            # for each outcome of the writeback's grant (which reaches every lane late)
            # kept in front of it, so that it chooses last
            cand = [kept(m, Mux(run, Mux(step, dn(after, x), dn(now, x)), ~idle(okf)),
                         f"{name}_if{x}") for x in range(2)]
            m.d.sync += reg.eq(Mux(wb_fire, cand[1], cand[0]))
            return reg

        def inc(sig, depth):
            return Mux(sig == depth - 1, 0, sig + 1)

        def head_next(arr, rpos, arrive, hpos, depth, take, run=running):
            """Whether a FIFO's head (the entry at ``hpos``) has arrived next cycle: the
            entry after it if this cycle takes the head, else it (depth >= 2, so taking
            clears neither), counting this cycle's arrival at ``rpos``; 0 while idle."""
            def arrived(pos):
                return arr.bit_select(pos, 1) | (arrive & (rpos == pos))
            return run & Mux(take, arrived(inc(hpos, depth)), arrived(hpos))

        # rotating priority: position q of a class's order is lane (c + q) mod R, that is
        # rot_oh (one-hot of c mod R, a register) turned by q: a selection by AND-OR
        def rot_ahead(n):
            """The rotation n cycles on (the register's value then, while running): for
            sums and selections made n cycles before the grant's."""
            return [[rot_oh[(i - q - n) % R] for i in range(R)] for q in range(R)]
        rot_sel = rot_ahead(0)
        rot_next_sel, rot_next2_sel, rot_next3_sel, rot_next4_sel = map(rot_ahead, (1, 2, 3, 4))

        def pick(values, q, sel=rot_sel):
            out = 0
            for i, v in enumerate(values):
                out = out | Mux(sel[q][i], v, 0)
            return out

        def prefix(pre, tag, d=1, upto=R):
            """Kogge-Stone levels over the values ``pre`` in position order, of span
            ``d``, 2d, ... below ``upto``: after the level of span d, position q sums
            q-2d+1..q (from ``d`` 1 and ``upto`` R: the whole prefix)."""
            while d < upto:
                nxt = list(pre[:d])
                for q in range(d, R):
                    v = Signal(p.grant_bits, name=f"{tag}_{d}_{q}")
                    m.d.comb += v.eq(pre[q - d] + pre[q])
                    nxt.append(v)
                pre, d = nxt, 2 * d
            return pre

        def position_sums(classes, sel, lone_first):
            """The positions of rule 0's priority order over ``classes`` (a list of
            ``(wants, bytes, rotating)``, ``bytes`` 0 where a requester does not want): for
            each class in turn, its lanes in the rotation ``sel`` if rotating, else its one
            requester (``rotating`` "ordered": already in position order; an int S:
            ordered, and ``bytes`` already the sums over spans of S).  Each
            rotating class sums its own requests in a parallel prefix
            (log2 R adder levels), offset by the totals of the classes before it (one
            level more).  Returns ``(class, rotation position or None, want, bytes up to
            here, bytes of a lone requester)``: with ``lone_first`` a lone requester's sum
            is left to the caller (its bytes are taken from the credit beforehand), else
            it is summed like the others."""
            PW = p.grant_bits
            pos = []
            offset = None       # total bytes of the classes so far
            for k, (wants, needs, rotating) in enumerate(classes):
                if not rotating:
                    # credit_in - need - offset: the need is known early, the offset late
                    v = Signal(PW, name=f"arb_n{k}")
                    m.d.comb += v.eq(needs[0])
                    if lone_first:
                        pos.append((k, None, wants[0], offset, v))
                        offset = v if offset is None else offset + v
                    else:
                        tot = v
                        if offset is not None:
                            tot = Signal(PW, name=f"arb_s{k}")
                            m.d.comb += tot.eq(offset + v)
                        pos.append((k, None, wants[0], tot, None))
                        offset = tot
                    continue
                ordered = rotating is not True
                span = rotating if type(rotating) is int else 1
                pre = []
                for q in range(R):
                    v = Signal(PW, name=f"arb_n{k}_{q}")
                    m.d.comb += v.eq(needs[q] if ordered else pick(needs, q, sel))
                    pre.append(v)
                pre = prefix(pre, f"arb_p{k}", span)
                for q in range(R):
                    if offset is None:
                        tot = pre[q]
                    else:
                        tot = Signal(PW, name=f"arb_s{k}_{q}")
                        m.d.comb += tot.eq(offset + pre[q])
                    pos.append((k, q, wants[q] if ordered else pick(wants, q, sel), tot, None))
                tot_k = Signal(PW, name=f"arb_t{k}")
                m.d.comb += tot_k.eq(pos[-1][3])
                offset = tot_k
            return pos

        def lane_grants(classes, late):
            """The grants of each class, by lane (``grants``), driven by ``add(k, rq, g)``
            for each position (class k, rotation position rq or None, grant g in this
            cycle's rotation) and ``close()`` after the last.  ``late``: as continuous ORs
            (a block with a default whose inputs stay constant from time 0 is never
            evaluated by Icarus), else as ``m.If`` defaults."""
            grants = [[Signal(name=f"arb_grant{k}_{i}") for i in range(len(cl[0]))]
                      for k, cl in enumerate(classes)]
            terms = {(k, i): [] for k in range(len(classes)) for i in range(R)}

            def add(k, rq, g):
                if rq is None:
                    m.d.comb += grants[k][0].eq(g)
                elif late:
                    for i in range(R):
                        terms[k, i].append(g & rot_sel[rq][i])
                else:
                    for i in range(R):
                        with m.If(g & rot_sel[rq][i]):
                            m.d.comb += grants[k][i].eq(1)

            def close():
                for (k, i), ts in terms.items():
                    if ts:
                        m.d.comb += grants[k][i].eq(Cat(*ts).any())
            return grants, add, close

        def ordered_ahead(lanes, early=False):
            """The lanes' classes ``lanes`` (the requests arbitrated three cycles on) put
            in the position order of that cycle, summed over spans of up to 4 (the first
            two levels of the prefix) and registered: the rotation's selection and those
            levels get a stage of their own.  With ``early`` the classes are those a
            stage before (arbitrated four cycles on) and the selection has a stage of its
            own too: it is made in the cycle before, with the rotation of four cycles on,
            and registered, 0 while idle as the lanes' next stage is."""
            out, S = [], min(R, 4)
            sel = rot_next4_sel if early else rot_next3_sel
            for k, (wants, needs, _) in enumerate(lanes):
                w_o = [Signal(name=f"arb_ow{k}_{q}") for q in range(R)]
                n_o = [Signal(p.grant_bits, name=f"arb_on{k}_{q}") for q in range(R)]
                picked, pw = [], []
                for q in range(R):
                    v = Signal(p.grant_bits, name=f"arb_pk{k}_{q}")
                    if early:
                        x = Signal(name=f"arb_pw{k}_{q}")
                        m.d.sync += [v.eq(Mux(running, pick(needs, q, sel), 0)),
                                     x.eq(running & pick(wants, q, sel))]
                    else:
                        m.d.comb += v.eq(pick(needs, q, sel))
                        x = pick(wants, q, sel)
                    picked.append(v)
                    pw.append(x)
                spans = prefix(picked, f"arb_op{k}", 1, S)
                m.d.sync += [w_o[q].eq(pw[q]) for q in range(R)]
                m.d.sync += [n_o[q].eq(spans[q]) for q in range(R)]
                out.append((w_o, n_o, S))
            return out

        def sum_le(a, b, c, name):
            """Whether ``a + b <= c`` (``a``, ``b`` unsigned, ``c`` signed) in one carry
            chain: ``a + b + ~c`` (= ``a + b - c - 1``) reduced to two operands by a
            carry-save stage (one LUT per bit), then the sign of their sum."""
            n = max(len(a), len(b), len(c)) + 2
            x, y, z = (Signal(n, name=f"{name}_{t}") for t in "xyz")
            cs, cc = Signal(n, name=f"{name}_s"), Signal(n, name=f"{name}_c")
            tot = Signal(n, name=f"{name}_t")
            m.d.comb += [x.eq(a), y.eq(b), z.eq(~c), cs.eq(x ^ y ^ z),
                         cc.eq((x & y) | (x & z) | (y & z)), tot.eq(cs + (cc << 1))]
            return tot[n - 1]

        def arbitrate_ahead(classes, early2, kb_, wneed, cap_, wb_take):
            """Rule 0 with the credit lag (``credit_lag_cycles`` 1): the grants of a cycle
            are registered.  The sums are made two cycles before the grant, from
            ``early2`` (the classes two register stages before) with that cycle's
            rotation, and registered; in the cycle before the grant they are compared
            with the credit the grant is checked against, the least of ``cap_`` and
            ``kb_`` (this cycle's credit plus B), less the writeback's bytes ``wneed`` if
            ``wb_take`` (granted and fired): that compare adds the bytes to the sum
            rather than take them from the credit (:func:`sum_le`: one carry chain, not
            two), and the fits are registered.
            Returns the grants of each class, by lane, whether none fits, and for each
            position whether it is the last that fits with its sum less B (the bytes
            the granted take, less the refill: the caller forms the credit's update
            from these side by side)."""
            PW = p.grant_bits
            pos = position_sums(early2, rot_next2_sel, False)

            def fit_reg(sum_, fit, tag):
                """``fit`` (a register) takes whether ``sum_`` fits next cycle: both
                outcomes of the writeback's grant compared, then chosen by it.  Returns
                that choice, for copies of ``fit``."""
                fa_, fb_ = Signal(name=f"arb_{tag}a"), Signal(name=f"arb_{tag}b")
                fc_ = Signal(name=f"arb_{tag}c")
                m.d.comb += [fc_.eq(sum_ <= cap_), fa_.eq(sum_ <= kb_),
                             fb_.eq(sum_le(sum_, wneed, kb_, f"arb_{tag}w"))]
                chosen = fc_ & Mux(wb_take, fb_, fa_)
                m.d.sync += fit.eq(chosen)
                return chosen

            # the positions' own sums and fits only where no lane's stand for them: each
            # class's first position (what follows the last lane of the class before:
            # registers, not a selection by the rotation in the grant's cycle) and the
            # lone requester's
            fit, r2, first = {}, {}, {}
            for q, (k, rq, _, tot, _) in enumerate(pos):
                if rq not in (None, 0):
                    continue
                first[k] = q
                r1 = Signal(PW, name=f"arb_rs{q}")
                fit[q] = Signal(name=f"arb_fit{q}")
                m.d.sync += r1.eq(tot)
                fit_reg(r1, fit[q], f"f{q}")
                if rq is None:
                    r2[q] = Signal(signed(PW + 1), name=f"arb_rrm{q}")
                    m.d.sync += r2[q].eq(r1 - B)
            grants, add, close = lane_grants(classes, True)
            # a rotating class's grants by lane, each from two registers: the sum up to
            # the lane's position and its want, picked from the positions in the cycle
            # the sums are made (the rotation of the grant's cycle), and the sum's
            # compares, registered as the lane's fit; the lanes' fits and sums give the
            # credit's update too (cycle-neutral: a lane's grant is the fit and want of
            # its position, and its fit and sum are its position's)
            # The grant a lane reads is made of copies of the two registers, gated by the
            # lane's copy of running (the same values: no request is pending when running
            # changes; Yosys keeps them apart from the arbiter's), so that they stay by
            # the lane: its fire, the refusal and the arrival queue it drives are the
            # lane's own logic, and the way across the device ends in a register
            lasts = []
            for k, (wants, _, rotating) in enumerate(classes):
                if not rotating:
                    continue
                ps = [(rq, w, tot) for kk, rq, w, tot, _ in pos if kk == k]
                lfits = []
                for i in range(len(wants)):
                    sv, wv = 0, 0
                    for rq, w, tot in ps:
                        sv = sv | Mux(rot_next2_sel[rq][i], tot, 0)
                        wv = wv | (w & rot_next2_sel[rq][i])
                    ls = Signal(PW, name=f"arb_ls{k}_{i}")
                    lw = [Signal(name=f"arb_lw{k}_{i}_{x}") for x in range(2)]
                    lf = Signal(name=f"arb_lfit{k}_{i}")
                    lfc = Signal(name=f"arb_lfitc{k}_{i}")     # the lane's copy of lf
                    lr2 = Signal(signed(PW + 1), name=f"arb_lrm{k}_{i}")
                    run = lane_run(i, "fl"[k])
                    m.d.sync += [ls.eq(sv), lw[0].eq(wv), lw[1].eq(run & lw[0]),
                                 lr2.eq(ls - B), lfc.eq(run & fit_reg(ls, lf, f"lf{k}_{i}"))]
                    m.d.comb += grants[k][i].eq(lw[1] & lfc)
                    lfits.append((lf, lr2))
                # the sums rise with the position: the last that fits is what the granted
                # take.  Lane i's position is followed by lane i + 1's, or, at the class's
                # last position, by the next class's first
                nxt = first.get(k + 1)
                after = fit[nxt] if nxt is not None else Const(0, 1)
                for i, (lf, lr2) in enumerate(lfits):
                    last = Signal(name=f"arb_llast{k}_{i}")
                    succ = Mux(rot_sel[R - 1][i], after, lfits[(i + 1) % R][0])
                    m.d.comb += last.eq(lf & ~succ)
                    lasts.append((last, lr2))
            for q, (k, rq, *_) in enumerate(pos):
                if rq is None:     # its want two registers on, and its fit
                    w = pos[q][2]
                    w1, w2 = Signal(name=f"arb_rw{q}"), Signal(name=f"arb_rrw{q}")
                    m.d.sync += [w1.eq(w), w2.eq(w1)]
                    g = Signal(name=f"arb_g{q}")
                    m.d.comb += g.eq(w2 & fit[q])
                    add(k, rq, g)
                    last = Signal(name=f"arb_last{q}")
                    m.d.comb += last.eq(fit[q] & ~fit[first[k + 1]] if k + 1 in first
                                        else fit[q])
                    lasts.append((last, r2[q]))
            close()
            return grants, ~fit[0], lasts

        def arbitrate(classes, credit_in, early=None):
            """Rule 0's grants over one priority order (:func:`position_sums`): a
            requester is granted while the sum fits in the credit (so the first that
            does not fit stops every later one).  No chain through the requesters or the
            classes: a lone requester's bytes are taken from the credit beforehand, and
            the comparisons with the credit (the sign of the difference, which is also
            the credit left) are side by side.  Returns the grants of each class, by
            lane, and the credit left.  With ``early`` (the same classes one register
            stage before), the sums are made from those in the cycle before, with that
            cycle's view of this one's rotation, and registered: only the comparisons
            with the credit remain in the cycle of the grant."""
            PW = p.grant_bits
            pos = position_sums(classes if early is None else early,
                                rot_sel if early is None else rot_next_sel, True)
            if early is not None:
                # registered: this cycle's positions, wants and sums
                regd = []
                for q, (k, rq, w, tot, minus) in enumerate(pos):
                    vals = []
                    for tag, v, width in (("w", w, 1), ("s", tot, PW), ("m", minus, PW)):
                        if v is None:
                            vals.append(None)
                            continue
                        r = Signal(width, name=f"arb_r{tag}{q}")
                        m.d.sync += r.eq(v)
                        vals.append(r)
                    regd.append((k, rq, *vals))
                pos = regd
            N = len(pos)
            # credit_in - (bytes up to q) for every q side by side: its sign says whether
            # the requests up to q fit, and the last that fits leaves its difference
            fits, left = [], []
            for q, (_, _, _, tot, minus) in enumerate(pos):
                dq = Signal(PW + 1, name=f"arb_d{q}")
                f = Signal(name=f"arb_fit{q}")
                if minus is None:
                    m.d.comb += dq.eq(credit_in - tot)
                else:
                    cm = Signal(signed(CR + 1), name=f"arb_cm{q}")
                    m.d.comb += [cm.eq(credit_in - minus),
                                 dq.eq(cm if tot is None else cm - tot)]
                m.d.comb += f.eq(~dq[PW])
                fits.append(f); left.append(dq[:CR])
            grants, add, close = lane_grants(classes, early is not None)
            cr_ = Mux(fits[0], 0, credit_in)    # nothing fits: nothing taken
            for q, (k, rq, w, _, _) in enumerate(pos):
                g = Signal(name=f"arb_g{q}")
                m.d.comb += g.eq(w & fits[q])
                add(k, rq, g)
                # the sums rise with q: the last that fits is what the granted take
                last = fits[q] & ~fits[q + 1] if q + 1 < N else fits[q]
                cr_ = cr_ | Mux(last, left[q], 0)
            close()
            cr = Signal(CR, name="arb_cr")
            m.d.comb += cr.eq(cr_)
            return grants, cr

        def ahead(name, addr_next, take, run=running):
            """A table walked one record at a time, read one record ahead: returns a getter
            of the record ``r`` held in a register (the current one) and of the port's
            record ``nx`` (the one after it).  The port is addressed with the position
            after the next one (``addr_next``, while running); ``r`` takes ``nx`` when
            ``take``.  While idle the port reads record 0, then record 1 in the last PRIME
            cycle, so ``r`` holds record 0 from the cycle before cycle 0 and the port the
            record after it."""
            data, f = table_read(name, Mux(run, addr_next, prime == 1))
            r = Signal(f.width, name=f"{name}_r")
            m.d.sync += r.eq(Mux(run, Mux(take, data, r),
                                 Mux(prime == 1, r, data)))
            return (lambda field: f.get(r, field)), (lambda field: f.get(data, field))

        def ahead_pair(name, pos, take):
            """:func:`ahead` for a walker at ``pos`` whose port addresses must not wait
            for ``take``: two copies of the table read records ``pos + 1`` and
            ``pos + 2`` (registers plus constants), and the record after the current one
            is the one of the two that the previous cycle's ``take`` (registered) makes
            it.  Returns getters of the current record ``r`` and of the next, ``nx``, and
            ``nx_of(fn, name)``: ``fn`` of the next record formed on both ports' records
            (kept) and chosen by ``took`` last.

            Under a request lag ``take`` (a block's last step granted) comes at least
            LAG + 1 >= 3 cycles after the one before it, since a block's steps are asked
            for only once it is the current block: so in a cycle of ``take`` the walker
            has not moved in the two before, and one copy reading ``pos + 1``, its record
            registered once more (two cycles from the address; a block RAM's output feeds
            only that register), holds the next record then.  ``nx`` is used only with
            ``take`` (its value in other cycles does not matter)."""
            if LAG:
                data, f = table_read(name, Mux(running, pos + 1,
                                               Mux((prime == 1) | (prime == 2), 1, 0)))
                nx = Signal(f.width, name=f"{name}_nx")
                m.d.sync += nx.eq(data)
                ports = [nx]
            else:
                ports = []
                for k in (1, 2):
                    data, f = table_read(name, Mux(running, pos + k, Mux(prime == 1, k, 0)))
                    ports.append(data)
                took = Signal(name=f"{name}_took")
                m.d.sync += took.eq(running & take)
                nx = Signal(f.width, name=f"{name}_nx")
                m.d.comb += nx.eq(Mux(took, ports[1], ports[0]))
            r = Signal(f.width, name=f"{name}_r")
            m.d.sync += r.eq(Mux(running, Mux(take, nx, r), Mux(prime == 1, r, ports[0])))

            def nx_of(fn, tag):
                vals = [kept(m, fn(lambda field, d=d: f.get(d, field)), f"{tag}_p{k}")
                        for k, d in enumerate(ports)]
                return vals[0] if LAG else Mux(took, vals[1], vals[0])
            return (lambda field: f.get(r, field)), (lambda field: f.get(nx, field)), nx_of

        def tile_walk(name, i, pos, step, run=running, bits=None, third=False):
            """For a walker at tile ``pos`` that moves to ``pos + 1`` when ``step``: getters
            of the records of its tiles ``pos`` and ``pos + 1`` (``a`` and ``b``, both
            registers) and of tile ``pos + step``.  One read port, at ``pos + 2`` of the
            next cycle, refills ``b`` (a block RAM's output feeds only registers).  Any
            table walked one record at a time will do (``bits``: the positions' width, the
            tile index's by default).  With ``third`` (under a lag) a third register
            ``c`` holds tile ``pos + 2``, ``b`` takes it on a step and the port, at
            ``pos + 3`` of the next cycle, refills it: the record ``b`` takes next (the
            last getter) is then a register too, not the port's output."""
            bits = TB if bits is None else bits
            mem, f = table_copy(f"{name}{i}")
            ra = Signal(f.width, name=f"{name}_a{i}")
            rb = Signal(f.width, name=f"{name}_b{i}")
            k0 = 3 if third else 2
            pk = [Signal(bits, name=f"{name}_p{k}_{i}") for k in (k0, k0 + 1)]
            m.d.comb += [pk[0].eq(pos + k0), pk[1].eq(pos + k0 + 1)]
            # idle: the port reads records 1, 2 (and 3 with the third register) in the
            # last PRIME cycles, record 0 before them
            idle_addr = 0
            for k in range(1, k0 + 1):
                idle_addr = Mux(prime == k, k0 + 1 - k, idle_addr)
            rdata = read_next(mem, f, f"{name}{i}", Mux(run, Mux(step, pk[1], pk[0]), idle_addr))
            # idle: a takes record 0 until the last PRIME cycle, b record 1 in it.  Under
            # a lag b takes the port's record and a takes b in every idle cycle, so the
            # port's output feeds only b, and only through its enable (cycle-neutral):
            # with prime_cycles' third cycle, b holds record 0 from the second PRIME
            # cycle on and a from the last (the port reads address 0 from the cycle of
            # `start`, idle, on).  With the third register the records move c → b → a
            # in every idle cycle, c taking the port's: record 0 (read in the cycle of
            # `start` and the first PRIME cycle) in the second and third, so a holds it
            # from the last on (prime_cycles: four under a lag)
            na = Signal(f.width, name=f"{name}_a_n{i}")
            nb_ = Signal(f.width, name=f"{name}_b_n{i}")
            if third:
                assert LAG and PC == 4
                rc = Signal(f.width, name=f"{name}_c{i}")
                m.d.sync += rc.eq(Mux(run & ~step, rc, rdata))
                fill = rc
            else:
                fill = rdata
            m.d.comb += [na.eq(Mux(run & ~step, ra, rb) if LAG else
                               Mux(run, Mux(step, rb, ra), Mux(prime == 1, ra, rdata))),
                         nb_.eq(Mux(run, Mux(step, fill, rb), fill))]
            m.d.sync += [ra.eq(na), rb.eq(nb_)]
            a = lambda field: f.get(ra, field)
            b = lambda field: f.get(rb, field)
            nxt = ((lambda field: f.get(na, field)), (lambda field: f.get(nb_, field)))
            rd = lambda field: f.get(fill, field)
            return a, b, (lambda field: Mux(step, b(field), a(field))), nxt, rd

        def elem_addr_lag(tag, i, move, step, ra, rb, ptr, last_, end_, live):
            """Under a request lag, the element-table address of a walker's next cycle
            (the fetch's or the issue's: pointer ``ptr`` into its tile's elements, ``last_``
            whether it is at the tile's last element, ``end_`` past it, ``live`` the flags
            of its tiles ``t``, ``t + 1``, ``t + 2``; records ``ra``/``rb`` of ``t`` and
            ``t + 1``) formed for the four outcomes of its ``step`` to the next tile and its
            ``move`` to the next element from the registers alone (kept), chosen by them
            last: with the step its flags are those one tile on and its record ``rb``'s,
            and it enters the next tile if that is live (docs/rtl.md, *Logic depth*)."""
            out = {}
            for a in (0, 1):
                en = live[1] if a else Const(0, 1)
                nxa = live[1] & live[2] if a else live[0] & live[1]
                nrs = rb("nrs0") if a else ra("nrs0")
                out[1, a] = kept(m, Mux(Mux(en, rb("one"), last_) & nxa, nrs,
                                        Mux(en, rb("rs0") + 1, ptr + 1))[:EB],
                                 f"{tag}_ea1_if{a}_{i}")
                out[0, a] = kept(m, Mux(Mux(en, ~rb("ne"), end_) & nxa, nrs,
                                        Mux(en, rb("rs0"), ptr))[:EB], f"{tag}_ea0_if{a}_{i}")
            return Mux(move, Mux(step, out[1, 1], out[1, 0]), Mux(step, out[0, 1], out[0, 0]))

        def walk_idle(walk):
            """Getters of the records a and b of a :func:`tile_walk` take in a cycle
            while idle (the idle branch of its ``na`` and ``nb_``, formed without its
            step), for registers set the cycle before."""
            a, b, _, _, rd = walk
            if LAG:
                return b, rd
            return (lambda field: Mux(prime == 1, a(field), rd(field))), rd

        def walk_regs(regs_a, regs_b, step, values, run=running):
            """Registers that follow a tile walker's records a and b (:func:`tile_walk`,
            with its ``step``), holding ``values`` of the record its port reads."""
            for ra_, rb_, v in zip(regs_a, regs_b, values):
                m.d.sync += [ra_.eq(Mux(run & ~step, ra_, rb_) if LAG else
                                    Mux(run, Mux(step, rb_, ra_), Mux(prime == 1, ra_, v))),
                             rb_.eq(Mux(run, Mux(step, v, rb_), v))]

        if not CLAG:    # the credit lag keeps its own signed credit (below)
            credit0 = Signal(CR)
            m.d.comb += credit0.eq(Mux(credit + B > cap, cap, credit + B))

        # ---------------------------------------------------------- 1. stream fetch
        s_want, s_need, s_fin = [], [], []
        # stream-FIFO room next cycle if the lane's request is granted / is not (issue)
        s_room_if = [(Signal(name=f"s_room1_{i}"), Signal(name=f"s_room0_{i}"))
                     for i in range(R)]
        # with a lag: the refused request of the cycle before (valid, bytes, address,
        # FIFO position), the position the next new element reserves, and the position
        # each response fills
        s_ref = [[Signal(name=f"s_ref_v{i}"), Signal(Lt["lane_ftile"].width_of("s_bytes"),
                                                     name=f"s_ref_need{i}"),
                  Signal(p.addr_bits, name=f"s_ref_addr{i}"),
                  Signal(range(SF), name=f"s_ref_pos{i}")] for i in range(R)]
        s_wpos = [Signal(range(SF), name=f"s_wpos{i}") for i in range(R)]
        s_early = []    # each lane's request stages (want, bytes), first register first
        s_deps = []     # with a lag, the dependency of each walker's records a and b
        s_apos = list(s_rpos)
        for i in range(R):
            run = lane_run(i, "f")
            # flags for this cycle, registered: f_atend (f_ptr >= f_end), f_live0/1
            # (f_tile < nt, f_tile + 1 < nt); the walk needs no comparison of its own
            # (with a lag the walker holds while the lane asks again)
            adv = Signal(name=f"f_adv{i}")
            live_e = Signal(name=f"f_live_e{i}")
            m.d.comb += [adv.eq(f_atend[i] & f_live0[i] & ~s_ref[i][0] if LAG
                                else f_atend[i] & f_live0[i]),
                         live_e.eq(Mux(adv, f_live1[i], f_live0[i]))]
            te = Signal(TB, name=f"f_tile_e{i}")
            m.d.comb += te.eq(f_tile[i] + adv)
            ft_n = Signal(TB, name=f"f_tile_n{i}")
            fwalk = tile_walk("lane_ftile", i, f_tile[i], adv, run=run, third=bool(LAG))
            fa, fb, _, fnx, frd = fwalk
            enter = Signal(name=f"f_enter{i}")
            m.d.comb += enter.eq(adv & f_live1[i])
            pe_, ee = Signal(EB, name=f"f_ptr_e{i}"), Signal(EB, name=f"f_end_e{i}")
            m.d.comb += [pe_.eq(Mux(enter, fb("rs0"), f_ptr[i])),
                         ee.eq(Mux(enter, fb("rs1"), f_end[i]))]
            # the request itself is a register (want, and its bytes or 0), computed in
            # the cycle before from that cycle's next state (below)
            w = Signal(name=f"s_want{i}")
            need = Signal(Lt["lane_ftile"].width_of("s_bytes"), name=f"s_need{i}")
            s_want.append(w); s_need.append(need)
            s_fin.append((te, pe_, ee, ft_n, fa, fb, adv, enter, live_e, fnx))
            if LAG:
                # the dependency of the records a and b, registers (dep_reg)
                s_deps.append((
                    dep_reg(f"s_dep_a{i}", adv, fa, fb, walk_idle(fwalk)[0], "s_dep_ok",
                            "s_dep", run),
                    dep_reg(f"s_dep_b{i}", adv, fb, frd, walk_idle(fwalk)[1], "s_dep_ok",
                            "s_dep", run)))
        s_grant = [Signal(name=f"s_grant{i}") for i in range(R)]   # rule 0, below
        s_fire = []
        for i in range(R):
            run = lane_run(i, "f")
            te, pe_, ee, ft_n, fa, fb, adv, enter, live_e, fnx = s_fin[i]
            m.d.comb += self.sreq_valid[i].eq(s_grant[i])
            fire = Signal(name=f"s_fire{i}")
            m.d.comb += fire.eq(s_grant[i] & ready)
            # the walker moves on a grant (lag 0) or on the decision to ask for its element
            # (take: from registers only, with a lag)
            take = Signal(name=f"s_take{i}")
            if LAG:
                # the FIFO's room is a register (s_free, set with s_occ below) and the
                # dependency is checked on both records side by side
                # the same function in two levels of registers (docs/rtl.md, *Logic
                # depth*): with no refused request, adv is f_atend & f_live0, and a lane
                # that advances without a next tile (live_e 0) takes nothing
                t_run = kept(m, run & ~s_ref[i][0] & f_live0[i] & s_free[i], f"s_take_run{i}")
                t_b = kept(m, f_live1[i] & fb("ne") & s_deps[i][1], f"s_take_b{i}")
                m.d.comb += take.eq(t_run & Mux(f_atend[i], t_b, s_deps[i][0]))
                mv = take
            else:
                mv = fire
            s_fire.append((fire, take))
            # next state; while idle, that of cycle 0 (tile 0, from port a at address 0).
            # What depends on the move is computed for both outcomes and selected by it.
            ptr_n = Signal(EB, name=f"f_ptr_n{i}")
            end_n = Signal(EB, name=f"f_end_n{i}")
            nrs0_n = Signal(EB, name=f"f_nrs0_n{i}")
            pe1 = Signal(EB, name=f"f_ptr_e1_{i}")
            last_el = Signal(name=f"f_last_el{i}")
            atend_n = Signal(name=f"f_atend_n{i}")
            live0_n = Signal(name=f"f_live0_n{i}")
            live1_n = Signal(name=f"f_live1_n{i}")
            m.d.comb += [pe1.eq(Mux(enter, fb("rs0") + 1, f_ptr[i] + 1)),
                         last_el.eq(Mux(enter, fb("one"),
                                        f_last[i] if LAG else f_ptr[i] + 1 == f_end[i])),
                         ft_n.eq(Mux(run, te, 0)),
                         ptr_n.eq(Mux(run, Mux(mv, pe1, pe_), fa("rs0"))),
                         end_n.eq(Mux(run, ee, fa("rs1"))),
                         nrs0_n.eq(Mux(run & adv, fb("nrs0"), fa("nrs0"))),
                         atend_n.eq(Mux(run, Mux(mv, last_el,
                                                     Mux(enter, ~fb("ne"), f_atend[i])),
                                        ~fa("ne"))),
                         live0_n.eq(Mux(run, live_e, nt_gt[0])),
                         live1_n.eq(Mux(run, Mux(adv, f_live2[i] if LAG else f_tile[i] + 2 < nt,
                                                     f_live1[i]),
                                        nt_gt[1]))]
            if LAG:     # the live flags one tile further, so no comparison precedes the move
                m.d.sync += f_live2[i].eq(Mux(run, Mux(adv, f_tile[i] + 3 < nt, f_live2[i]),
                                              nt_gt[2]))
            m.d.sync += [f_tile[i].eq(ft_n), f_ptr[i].eq(ptr_n), f_end[i].eq(end_n),
                         f_atend[i].eq(atend_n), f_live0[i].eq(live0_n),
                         f_live1[i].eq(live1_n)]
            if LAG:
                # whether the walker is at its tile's last element (f_ptr + 1 == f_end), set for
                # the outcomes of the move and the tile's end side by side (cycle-neutral;
                # the lag-0 netlist compares the pointer with the end in the cycle)
                m.d.sync += f_last[i].eq(Mux(
                    run,
                    Mux(mv, Mux(enter, fb("rs0") + 2 == fb("rs1"), f_ptr[i] + 2 == f_end[i]),
                        Mux(enter, fb("one"), f_last[i])),
                    fa("one")))
            # the element the fetch side will look at next cycle
            # its address for both outcomes of the grant, then the grant's choice
            nx = Signal(name=f"f_nx{i}")
            if LAG:
                # formed for both outcomes of adv as well, from registers (cycle-neutral)
                run_addr = elem_addr_lag("f", i, mv, adv, fa, fb, f_ptr[i], f_last[i],
                                         f_atend[i], (f_live0[i], f_live1[i], f_live2[i]))
            else:
                ea1, ea0 = Signal(EB, name=f"f_ea1_{i}"), Signal(EB, name=f"f_ea0_{i}")
                m.d.comb += [nx.eq(live0_n & live1_n),
                             ea1.eq(Mux(last_el & nx, nrs0_n, pe1)),
                             ea0.eq(Mux(Mux(enter, ~fb("ne"), f_atend[i]) & nx, nrs0_n, pe_))]
                run_addr = Mux(mv, ea1, ea0)
            # while idle: the address of cycle 0, with the idle values of nx and nrs0_n
            # written out under a lag, so the move is not in its cone (cycle-neutral)
            el = port(f"lane_elem{i}", Mux(run, run_addr,
                                           Mux(~fa("ne") & nt_gt[0] & nt_gt[1], fa("nrs0"),
                                               fa("rs0")) if LAG else
                                           Mux(~fa("ne") & nx, nrs0_n, fa("rs0"))))
            if LAG:
                # the request: the refused one again, else the element taken; d registers
                early, s_apos[i] = lag_request(
                    "s", i, s_ref[i], take, Mux(enter, fb("s_bytes"), fa("s_bytes")),
                    el("src"), s_wpos[i], SF, s_want[i], s_need[i], self.sreq_addr[i], fire,
                    self.srsp_valid[i], run)
                s_early.append(early)
                continue
            m.d.comb += self.sreq_addr[i].eq(el("src"))
            # next cycle's request (rule 1) from the next state, for both outcomes of the
            # grant (the end-of-group flag and the FIFO room depend on it) and for cycle 0
            na, nb_ = fnx
            oka = [Signal(name=f"s_oka{x}_{i}") for x in range(2)]
            okb = [Signal(name=f"s_okb{x}_{i}") for x in range(2)]
            for x in range(2):
                m.d.comb += [oka[x].eq(dep_ok_n(na("s_dep_ok"), na("s_dep"), x, run=run)),
                             okb[x].eq(dep_ok_n(nb_("s_dep_ok"), nb_("s_dep"), x, run=run))]
            room1, room0 = s_room_if[i]
            adv_f = [Signal(name=f"s_adv{f}_{i}") for f in range(2)]
            m.d.comb += [adv_f[1].eq(last_el & live0_n),
                         adv_f[0].eq(Mux(enter, ~fb("ne"), f_atend[i]) & live0_n)]

            def want_of(adv_v, room_v, x, tag):
                wv = Signal(name=f"s_w{tag}_{i}")
                m.d.comb += wv.eq(Mux(adv_v, live1_n & nb_("ne") & okb[x], live0_n & oka[x])
                                  & room_v)
                return wv, Mux(wv, Mux(adv_v, nb_("s_bytes"), na("s_bytes")), 0)
            cands = {(f, x): want_of(adv_f[f], (room0, room1)[f], x, f"{f}{x}")
                     for f in range(2) for x in range(2)}
            adv_i = Signal(name=f"s_advi_{i}")
            m.d.comb += adv_i.eq(~fa("ne") & live0_n)
            wi, ni = want_of(adv_i, 1, 0, "i")
            m.d.sync += [s_want[i].eq(request_next(fire, lambda f, x: cands[f, x][0], wi, run=run)),
                         s_need[i].eq(request_next(fire, lambda f, x: cands[f, x][1], ni, run=run))]

        # ---------------------------------------------------------- 3. writeback
        wb_blk_n = Signal.like(wb_blk)
        wb_cur_n = Signal.like(wb_cur)
        wb_fin = Signal()
        # the block's record and the step's byte count in registers (read one ahead); the
        # step's other fields from its port, with the slots of the step after it
        br, bnx, bnx_of = ahead_pair("block", wb_blk, wb_fin)
        WREG = 0
        if not LAG:
            sr = port("step", wb_cur_n)
            srr, sr1 = ahead("step", Mux(wb_fire, wb_cur + 2, wb_cur + 1), wb_fire)
        # whether the block may go on (rule 3) and whether it requests a step: registers,
        # set in the cycle before (below)
        wb_ready = Signal()
        wb_try = Signal()
        if not LAG:
            wb_need = srr("need")
        wb_grant = Signal()     # rule 0, below
        m.d.comb += wb_fire.eq(wb_grant & ready)
        wb_step_n = Signal.like(wb_cur)
        wb_cur1 = Signal.like(wb_cur)
        m.d.comb += [wb_cur1.eq(wb_cur + 1), wb_step_n.eq(Mux(wb_fire, wb_cur1, wb_cur))]
        if LAG:
            # wb_cur counts the granted steps, wb_next the steps asked for; the request
            # (the refused step again, else the block's next step once it may go on)
            # passes d registers; the step table is read from the request two stages
            # before the grant (slots, for the bank read, and bytes) and one before (the
            # rest, for the write)
            wb_next = Signal.like(wb_cur)
            # the writeback's data path gets WREG registers: the banks are read at stage WA
            WREG = wb_registers(CLAG, LAG)
            WA = LAG - WREG
            wref_v, wref_step = Signal(name="wb_ref_v"), Signal.like(wb_cur, name="wb_ref_step")
            ask = Signal(name="wb_ask")
            m.d.comb += ask.eq(running & ~wref_v & wb_ready & (wb_next < br("s1")))
            d0 = [wref_v | ask, Mux(wref_v, wref_step, wb_next)]
            stages = [d0] + lag_pipe("wb_req", d0, [1, len(wb_cur)])
            if step_chain(CLAG, LAG):
                # one port, two stages before the earliest stage read (the stage before
                # the grant, or two before with the credit lag, or with WREG the stage
                # before the bank read, WA - 1): its record lands in a
                # register and moves down one stage a cycle, as the request does
                # (cycle-neutral: the stages are 0 while idle, so by cycle 0 each register
                # but the grant stage's holds step 0's record; the grant stage holds no
                # request in cycle 0, and its record is used only with a grant)
                first = min(LAG - 2 if CLAG else LAG - 1, WA - 1)
                sdata, sf = table_read("step", stages[first - 2][1])
                chain = {}
                for k in range(first, LAG + 1):
                    chain[k] = Signal(sf.width, name=f"wb_rec{k}")
                    m.d.sync += chain[k].eq(chain[k - 1] if k > first else sdata)
                srec = (lambda k: lambda field: sf.get(chain[k], field))
                sr, sra = srec(LAG), srec(LAG - 1)
                if CLAG:
                    srb = srec(LAG - 2)
            else:
                sr = port("step", stages[LAG - 1][1])
                sra = port("step", stages[LAG - 2][1])
            if step_chain(CLAG, LAG):
                # the grant stage's record is the register that would hold sra's bytes
                wb_need = sr("need")
            else:
                wb_need = Signal(Lt["step"].width_of("need"), name="wb_need")
                m.d.sync += wb_need.eq(sra("need"))
            m.d.comb += wb_try.eq(stages[LAG][0])
            w_early = stages[LAG - 1][0]
            if CLAG:
                # and from the request three stages before the grant (bytes, for the sums
                # made two cycles ahead)
                if not step_chain(CLAG, LAG):
                    srb = port("step", stages[LAG - 3][1])
                w_early2 = stages[LAG - 2][0]
            m.d.sync += [wref_v.eq(running & stages[LAG][0] & ~wb_fire),
                         wref_step.eq(stages[LAG][1]),
                         wb_next.eq(Mux(running, wb_next + ask, 0))]
        fin_if = [Signal(name=f"wb_fin_if{x}") for x in range(2)]
        if LAG:
            # whether the block's steps end at wb_cur (+ 1): registers, set for the next
            # cycle from both outcomes of this one's step grant and block end side by side
            # (cycle-neutral; the lag-0 netlist compares the count with the block's end in
            # the cycle).  While idle, for step 0 and the record the block register holds
            # (block 0's by the last PRIME cycle)
            at_end = [Signal(name=f"wb_at_end{x}") for x in range(2)]
            wb_cur2 = wb_cur + 2
            # the compares kept apart from the grant's choice (docs/rtl.md, *Logic depth*)
            e1n = bnx_of(lambda rec: wb_cur1 >= rec("s1"), "wb_end1_nx")
            e2n = bnx_of(lambda rec: wb_cur2 >= rec("s1"), "wb_end2_nx")
            e2r = kept(m, wb_cur2 >= br("s1"), "wb_end2_r")
            m.d.sync += [
                at_end[0].eq(Mux(running, Mux(wb_fire, at_end[1] & e1n, at_end[0]),
                                 br("s1") == 0)),
                at_end[1].eq(Mux(running, Mux(wb_fire, Mux(at_end[1], e2n, e2r), at_end[1]),
                                 br("s1") <= 1))]
            m.d.comb += [fin_if[1].eq(wb_ready & at_end[1]),
                         fin_if[0].eq(wb_ready & at_end[0]),
                         wb_fin.eq(wb_fire & at_end[1])]
        else:
            m.d.comb += [fin_if[1].eq(wb_ready & (wb_cur1 >= br("s1"))),
                         fin_if[0].eq(wb_ready & (wb_cur >= br("s1"))),
                         wb_fin.eq(Mux(wb_fire, fin_if[1], fin_if[0]))]
        m.d.comb += [wb_cur_n.eq(Mux(running, wb_step_n, 0)),
                     wb_blk_n.eq(Mux(running, Mux(wb_fin, wb_blk + 1, wb_blk), 0))]
        m.d.sync += [wb_cur.eq(wb_cur_n), wb_blk.eq(wb_blk_n)]
        last_blk = Signal()
        if LAG:
            # a register, set for both outcomes of the block's end side by side
            # (cycle-neutral; the lag-0 netlist compares in the cycle)
            m.d.comb += end_phase.eq(br("phase"))
            m.d.sync += last_blk.eq(Mux(running, Mux(wb_fin, wb_blk + 2 == nb,
                                                     wb_blk + 1 == nb), nb == 1))
        else:
            m.d.comb += [end_phase.eq(br("phase")), last_blk.eq(wb_blk + 1 == nb)]
        for x in range(2):
            m.d.comb += [pe_if[x].eq(running & fin_if[x] & br("last_of_phase")),
                         rn_if[x].eq(~(fin_if[x] & last_blk))]
        with m.If(running & wb_fin & br("last_of_phase") if LAG
                  else Mux(wb_fire, pe_if[1], pe_if[0])):
            m.d.sync += ph_done.eq(ph_done | (Const(1, p.max_phases) << br("phase"))[:p.max_phases])
        # bank reads: with the data path registered (wb_registers) the step of request stage
        # WA - 1 addresses the banks and its data come out at stage WA; otherwise the next
        # cycle's step: the step after this one if this one fires (with a lag: the step one
        # register before the grant)
        for i in range(R):
            m.d.comb += [arr.wb_addr[i].eq(srec(WA - 1)(f"slot{i}") if WREG else
                                           sra(f"slot{i}") if LAG else
                                           Mux(wb_fire, sr1(f"slot{i}"), srr(f"slot{i}"))),
                         arr.wb_half[i].eq(wb_blk_n[0])]
        # the data path: the banks' data (a lane whose kind is not SLOT gives 0: the PE's
        # output select takes it in), the merge of the lanes summed into one row, each output
        # vector's source, the requantizer.  With WREG registers (hdl.image.wb_registers)
        # it is cut at the first WREG of WB_CUTS, the values moving down one request stage a
        # register (cycle-neutral: rule 3 decides a block's requests only after its last
        # merge has landed, and the bank half is not written again before its last grant,
        # so a request reads the same data at any stage, and a refused one again; every
        # request in the stages is of block wb_blk, so br holds its requantization)
        cuts = set(WB_CUTS[:WREG])
        at = [WA if WREG else LAG]      # the request stage the values are at

        def rec(field):
            return (srec(at[0]) if WREG else sr)(field)

        def cut(tag, values):
            """``values`` (lists of signals), registered if ``tag`` is a cut."""
            if tag not in cuts:
                return values
            at[0] += 1
            regs = [[Signal.like(v, name=f"wb_{tag}{a}_{b}") for b, v in enumerate(row)]
                    for a, row in enumerate(values)]
            m.d.sync += [r.eq(v) for rr, vv in zip(regs, values) for r, v in zip(rr, vv)]
            return regs

        if WREG:
            # the lanes' zero flags from the stage before, in registers
            for i in range(R):
                z = Signal(name=f"wb_zero{i}")
                m.d.sync += z.eq(srec(WA - 1)(f"kind{i}") != KIND_SLOT)
                m.d.comb += arr.wb_zero[i].eq(z)
        else:
            m.d.comb += [arr.wb_zero[i].eq(sr(f"kind{i}") != KIND_SLOT) for i in range(R)]
        lanes = cut("v", [[arr.wb_data[i][j] for j in range(C)] for i in range(R)])
        direct = p.wb_direct
        # the merge takes every lane ungated (hdl.image.CoreParams.wb_sum_all) and the
        # lane written beside the merged row is taken off after the tree (below)
        every = p.wb_sum_all
        # the merge: the lanes that take part, summed as a tree (wrapping adds: exact in
        # any order)
        terms = []
        for i in range(R):
            if every:
                terms.append(list(lanes[i]))
                continue
            mi = Signal(name=f"wb_mg{i}")
            m.d.comb += mi.eq(rec(f"merge{i}"))
            terms.append([Mux(mi, lanes[i][j], 0) for j in range(C)])
        lvl = 0
        while len(terms) > 1:
            nxt = []
            for a in range(0, len(terms) - 1, 2):
                # with the path registered, each add kept as its own carry chain: Yosys
                # would otherwise gather the tree into one multi-operand add and build
                # it as a chain of LUT compressors (7 levels on the 8×8, against 3
                # carry chains)
                s = [Signal(signed(W), name=f"wb_msum{lvl}_{a // 2}_{j}",
                            attrs={"keep": 1} if WREG else {}) for j in range(C)]
                m.d.comb += [s[j].eq((terms[a][j] + terms[a + 1][j])[:W].as_signed())
                             for j in range(C)]
                nxt.append(s)
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms, lvl = nxt, lvl + 1
        ms = [Signal(signed(W), name=f"wb_msum{j}") for j in range(C)]
        m.d.comb += [ms[j].eq(terms[0][j]) for j in range(C)]
        if direct:
            vecs = cut("m", lanes + [ms])
        else:
            # each output vector chooses its lane beside the merge, then the merged row or
            # that lane: WV requantizers instead of R + 1
            srcs = [Signal(range(R + 1), name=f"wb_src{v}") for v in range(WV)]
            m.d.comb += [srcs[v].eq(rec(f"src{v}")) for v in range(WV)]
            lsel = []
            for v in range(WV):
                row = []
                for j in range(C):
                    x = Signal(signed(W), name=f"wb_lsel{v}_{j}")
                    m.d.comb += x.eq(Array(lanes[i][j] for i in range(R))[
                        srcs[v][:max(1, (R - 1).bit_length())]] if R > 1 else lanes[0][j])
                    row.append(x)
                lsel.append(row)
            mrg = [[Signal(name=f"wb_ism{v}") for v in range(WV)]]
            m.d.comb += [mrg[0][v].eq(srcs[v] == R) for v in range(WV)]
            # the merged row of each vector: the tree's sum, or, ungated (every), the sum
            # less the lanes of the vectors before it.  hdl.image.pack puts the merged row
            # after a step's direct lanes, every lane it reads is merged or direct, and a
            # lane it does not read gives 0 (wb_zero), so the sum of every lane less the
            # direct ones is the merge (wrapping: exact)
            merged = [ms]
            if every and WV == 2:
                d = [Signal(signed(W), name=f"wb_mless{j}") for j in range(C)]
                m.d.comb += [d[j].eq((ms[j] - lsel[0][j])[:W].as_signed()) for j in range(C)]
                merged.append(d)
            got = cut("m", merged + lsel + mrg)
            M = len(merged)
            vecs = []
            for v in range(WV):
                row = []
                for j in range(C):
                    x = Signal(signed(W), name=f"wb_sel{v}_{j}")
                    m.d.comb += x.eq(Mux(got[-1][v], got[min(v, M - 1)][j], got[M + v][j]))
                    row.append(x)
                vecs.append(row)
        # the requantizer: what depends on the block's shift and bits only in registers
        # when the path is (br holds them from before the block's first request)
        s_amt = rq_scale_amount(m, br("rq_shift"), br("rq_bits"), W)
        hi, on = rq_bound(m, br("rq_bits"), W)
        if WREG:
            q = [Signal.like(x, name=f"wb_rq_{n}") for x, n in ((s_amt, "s"), (hi, "hi"), (on, "on"))]
            m.d.sync += [a.eq(b) for a, b in zip(q, (s_amt, hi, on))]
            s_amt, hi, on = q
        scaled = cut("u", [[rq_scale(m, x, s_amt, W) for x in row] for row in vecs])
        rounded = cut("r", [[rq_round(m, x, W) for x in row] for row in scaled])
        out = cut("o", [[rq_clamp(m, x, hi, on, W) for x in row] for row in rounded])
        assert at[0] == LAG, (at[0], LAG)
        for v, row in enumerate(out):
            m.d.comb += [self.wr_data[v][j].eq(row[j]) for j in range(C)]
        for j in range(C):
            m.d.comb += self.wr_col[j].eq(br(f"col{j}"))
        m.d.comb += self.wr_ncols.eq(br("ncols"))
        if direct:
            any_merge = Signal()
            m.d.comb += any_merge.eq(Cat(*[sr(f"merge{i}") for i in range(R)]).any())
            for i in range(R):
                m.d.comb += [self.wr_valid[i].eq(wb_grant & (sr(f"kind{i}") != KIND_NONE)
                                                 & ~sr(f"merge{i}")),
                             self.wr_row[i].eq(sr(f"row{i}"))]
            m.d.comb += [self.wr_valid[R].eq(wb_grant & any_merge),
                         self.wr_row[R].eq(sr("mrow"))]
        else:
            for v in range(WV):
                m.d.comb += [self.wr_valid[v].eq(wb_grant & sr(f"on{v}")),
                             self.wr_row[v].eq(sr(f"row{v}"))]

        # ---------------------------------------------------------- 2a. load requests
        l_want, l_need, l_ports = [], [], []
        l_wr = [Signal(name=f"l_wr{i}") for i in range(R)]      # rule 2's writes, below
        # with a lag, as the stream's: the refused request, the next position reserved
        l_ref = [[Signal(name=f"l_ref_v{i}"),
                  Signal(Lt["lane_load"].width_of("bytes"), name=f"l_ref_need{i}"),
                  Signal(p.addr_bits, name=f"l_ref_addr{i}"),
                  Signal(range(LF), name=f"l_ref_pos{i}")] for i in range(R)]
        l_resv = [Signal(range(LF), name=f"l_resv{i}") for i in range(R)]
        l_early = []
        l_apos = list(l_rpos)
        for i in range(R):
            run = lane_run(i, "l")
            lr_n = Signal(p.load_bits, name=f"lr_cnt_n{i}")
            lfire = Signal(name=f"l_fire{i}")
            # the count moves on a grant (lag 0) or on the decision to ask for the entry
            ltake = Signal(name=f"l_take{i}")
            lmv = ltake if LAG else lfire
            if LAG:
                # walked as a tile table: the entry and the one after it in registers
                # (their dependencies too, dep_reg: no block RAM's output before them)
                lwk = tile_walk("lane_load", i, lr_cnt[i], lmv, run=run, bits=p.load_bits + 1)
                ld, ld_nx, ld_idle = lwk[0], lwk[1], walk_idle(lwk)[0]
            else:
                lr2 = Signal(p.load_bits, name=f"lr_cnt2_{i}")
                m.d.comb += lr2.eq(lr_cnt[i] + 2)
                ld, ld_nx = ahead(f"lane_load{i}", Mux(lmv, lr2, lr_cnt[i] + 1), lmv, run=run)
            # the request is a register, set in the cycle before (below)
            w = Signal(name=f"l_want{i}")
            n = Signal(Lt["lane_load"].width_of("bytes"), name=f"l_need{i}")
            l_want.append(w); l_need.append(n); l_ports.append((lr_n, lfire, ld, ld_nx, lmv))
            if LAG:
                l_dep = dep_reg(f"l_dep{i}", lmv, ld, ld_nx, ld_idle, "dep_ok", "dep", run)
                m.d.comb += ltake.eq(run & ~l_ref[i][0] & l_more[i] & l_room[i] & l_dep)
                early, l_apos[i] = lag_request(
                    "l", i, l_ref[i], ltake, ld("bytes"), ld("row"), l_resv[i], LF, w, n,
                    self.lreq_addr[i], lfire, self.lrsp_valid[i], run)
                l_early.append(early)
            else:
                m.d.comb += self.lreq_addr[i].eq(ld("row"))
        # ---------------------------------------------------------- 0. memory grants
        classes = [(s_want, s_need, True), (l_want, l_need, True),
                   ([wb_try], [Mux(wb_try, wb_need, 0)], False)]

        def lanes_back(k, copy=False):
            """The stream and load lanes' classes from their k-th request register
            counted back from the grant's (k = 1: the arbitrated requests, k = 2: the
            ones arbitrated a cycle later, ...).  With ``copy`` (and a register before
            that one) from a copy of it for the arbitration alone, gated by ``running``
            rather than the lane's copy (so Yosys keeps it apart; the same values): the
            lane's register stays by the lane, the copy goes by the arbiter, and the
            way across the device between them is a register-to-register path."""
            if not copy or k >= LAG:
                return [([e[-k][0] for e in es], [e[-k][1] for e in es], True)
                        for es in (s_early, l_early)]
            out = []
            for tag, es in (("s", s_early), ("l", l_early)):
                wants, needs = [], []
                for i, e in enumerate(es):
                    w, n = e[-k - 1]
                    wc = Signal(name=f"arb_cw{tag}{i}")
                    nc = Signal(len(n), name=f"arb_cn{tag}{i}")
                    m.d.sync += [wc.eq(running & w), nc.eq(Mux(running, n, 0))]
                    wants.append(wc)
                    needs.append(nc)
                out.append((wants, needs, True))
            return out
        if CLAG:
            # the credit at the start of this cycle, after its refill (below zero while
            # the stream and load grants of the cycle before overdraw it: never below
            # B - cap), plus B: a register; the grants of the next cycle are checked
            # against it, less the writeback's bytes if its grant fires now, and against
            # the cap.  Its update min(K - taken, cap) + B is formed for every position
            # side by side from the sums less B (K - (sum - B), and whether it reaches
            # cap + B: the sign of (K - B - cap) - (sum - B), with K - B - cap a
            # register too) and the last that fits chooses; cap + B and B - cap are
            # registers written with the program's constant
            kb = Signal(signed(CR + 2), name="credit_kb")
            kc = Signal(signed(CR + 2), name="credit_kc")     # kb - B - cap
            capb = const_reg(2, "credit_capb", CR + 1, lambda v: v + B)
            bmc = const_reg(2, "credit_bmc", signed(CR + 2), lambda v: B - v)
            # the lanes' requests put in position order a stage before the sums (LAG >= 4),
            # the selection a stage before that (LAG >= 6)
            if LAG >= 6:
                lanes = ordered_ahead(lanes_back(5, copy=True), early=True)
            else:
                lanes = ordered_ahead(lanes_back(4, copy=True)) if LAG >= 4 else lanes_back(3)
            early2 = lanes + [([w_early2], [Mux(w_early2, srb("need"), 0)], False)]
            (sg, l_grant, (wg,)), none, lasts = arbitrate_ahead(classes, early2, kb, wb_need,
                                                                cap, wb_fire)
            kb_n, kc_n = 0, 0
            for q, (use, less) in enumerate([(none | ~ready, -B)]
                                            + [(ready & lst, r) for lst, r in lasts]):
                dk = Signal(signed(CR + 2), name=f"credit_dk{q}")
                dc = kc - less
                full = Signal(name=f"credit_full{q}")
                m.d.comb += [dk.eq(kb - less), full.eq(dc >= 0)]
                kb_n = kb_n | Mux(use, Mux(full, capb, dk), 0)
                kc_n = kc_n | Mux(use, Mux(full, 0, dc), 0)
            with m.If(running):
                m.d.sync += [kb.eq(kb_n), kc.eq(kc_n)]
            with m.If(prime == 1):
                m.d.sync += [kb.eq(2 * B), kc.eq(bmc)]
        else:
            (sg, l_grant, (wg,)), credit_n = arbitrate(
                classes, credit0,
                early=lanes_back(2) + [([w_early], [Mux(w_early, sra("need"), 0)], False)]
                if LAG else None)
            with m.If(running):
                m.d.sync += credit.eq(Mux(ready, credit_n, credit0))
        m.d.comb += [a.eq(b) for a, b in zip(s_grant, sg)] + [wb_grant.eq(wg)]
        for i in range(R):
            run = lane_run(i, "l")
            m.d.comb += self.lreq_valid[i].eq(l_grant[i])
            # l_more / l_room for the next cycle, for both outcomes of the grant
            lr_n, lfire, ld, ld_nx, lmv = l_ports[i]
            m.d.comb += lfire.eq(l_grant[i] & ready)
            lr1 = Signal(p.load_bits, name=f"lr_cnt1_{i}")
            dl = Signal(p.load_bits, name=f"l_inflight{i}")     # requested, not written
            m.d.comb += [lr1.eq(lr_cnt[i] + 1), dl.eq(lr_cnt[i] - lw_cnt[i]),
                         lr_n.eq(Mux(run, Mux(lmv, lr1, lr_cnt[i]), 0))]
            m.d.sync += [lr_cnt[i].eq(lr_n),
                         l_more[i].eq(Mux(run, Mux(lmv, lr1 < lane_total[i], l_more[i]),
                                          lane_total[i] > 0)),
                         l_room[i].eq(~run | Mux(lmv & ~l_wr[i], dl < LF - 1,
                                                     (~lmv & l_wr[i]) | l_room[i]))]
            if LAG:
                continue
            # next cycle's request (rule 2) from the next state, for both outcomes of the
            # grant and for cycle 0: loads left, FIFO room, the record and its dependency
            more1, room1 = Signal(name=f"l_more1_{i}"), Signal(name=f"l_room1_{i}")
            m.d.comb += [more1.eq(lr1 < lane_total[i]),
                         room1.eq(Mux(l_wr[i], l_room[i], dl < LF - 1))]
            lw = {}
            for x in range(2):
                for f, (more_v, room_v, rec) in enumerate(
                        [(l_more[i], l_wr[i] | l_room[i], ld), (more1, room1, ld_nx)]):
                    wv = Signal(name=f"l_w{f}{x}_{i}")
                    m.d.comb += wv.eq(more_v & room_v & dep_ok_n(rec("dep_ok"), rec("dep"), x, run=run))
                    lw[f, x] = (wv, Mux(wv, rec("bytes"), 0))
            lwi = Signal(name=f"l_wi_{i}")
            m.d.comb += lwi.eq((lane_total[i] > 0) & dep_ok_n(ld("dep_ok"), ld("dep"), 0, run=run))
            m.d.sync += [
                l_want[i].eq(request_next(lfire, lambda f, x: lw[f, x][0], lwi, run=run)),
                l_need[i].eq(request_next(lfire, lambda f, x: lw[f, x][1],
                                          Mux(lwi, ld("bytes"), 0), run=run))]

        # ---------------------------------------------------------- 2b. load writes
        def read_done(i, tile):
            """Lane i has finished reading ``tile`` (rule 2), from registers only."""
            return (cur[i] > tile) & (~w_any[i] | (tile < w_tile[i]))

        lw_tile_n = [Signal(TB, name=f"lw_tile_n{i}") for i in range(R)]
        # each lane's load tile and the next one in registers; it steps when it finishes
        lw_step = [Signal(name=f"lw_step{i}") for i in range(R)]
        lw_walk = [tile_walk("lane_ltile", i, lw_tile[i], lw_step[i], run=lane_run(i, "w"))
                   for i in range(R)]
        lwa = [w[0] for w in lw_walk]
        t0 = lw_tile[0]
        tr0 = lwa[0]
        bc_fin = Signal()
        lfifo = []
        lw_cnt_n = [Signal(p.load_bits, name=f"lw_cnt_n{i}") for i in range(R)]
        l_wpos_n = [Signal(range(LF), name=f"l_wpos_n{i}") for i in range(R)]
        for i in range(R):
            l_async = fifo_async(cfg, LF, W * C)
            mem = Memory(shape=unsigned(W * C), depth=LF, init=[],
                         attrs=mem_attrs(LF, W * C, sync=not l_async,
                                         read_during_write=not l_async))
            m.submodules[f"lfifo{i}"] = mem
            wp = mem.write_port()
            # read at the head register (hdl.image.fifo_async), or at the next head
            rp = (mem.read_port(domain="comb") if l_async
                  else mem.read_port(transparent_for=(wp,)))
            m.d.comb += [wp.addr.eq(l_apos[i]), wp.data.eq(Cat(*self.lrsp_data[i])),
                         wp.en.eq(self.lrsp_valid[i]),
                         rp.addr.eq(l_wpos[i] if l_async else l_wpos_n[i])]
            lfifo.append(rp.data)
            with m.If(self.lrsp_valid[i]):
                m.d.sync += l_rpos[i].eq(inc(l_rpos[i], LF))
        # the broadcast check of lane 0: has every lane finished reading lane 0's prev
        bc_rd_ok = []
        own_okr = [Signal(name=f"lw_own_ok{i}") for i in range(R)] if LAG else []
        bc_okr = [Signal(name=f"lw_bc_ok{i}") for i in range(R)] if LAG else []
        for i in range(R if not LAG else 0):
            ok = Signal(name=f"bc_rd_ok{i}")
            m.d.comb += ok.eq((lw_tile[i] == t0) & (~tr0("prev_ok") | read_done(i, tr0("prev"))))
            bc_rd_ok.append(ok)
        lw_go_bc = Signal()
        lw_fin = []

        def lw_flags(i, wr, at_end):
            """Under a request lag, lane i's load-writer flags for this cycle as registers
            set in the cycle before (cycle-neutral; the lag-0 netlist compares in the
            cycle): its tile is live (``lw_tile < nt``), the tile's data dependency is met,
            and ``at_end`` (the count at the tile's end, and one short of it).  Each is
            formed for the records a and b of the walker, the outcomes of the write and
            the writeback's grant side by side, and chosen by the step, the write and the
            grant last; while idle, the values of cycle 0 (tile 0, count 0, no phase
            done).  Returns (live, dependency met)."""
            run = lane_run(i, "w")
            ra_, rb_ = lw_walk[i][:2]
            na_ = walk_idle(lw_walk[i])[0]
            t, cnt, step = lw_tile[i], lw_cnt[i], lw_step[i]
            live = Signal(name=f"lw_live{i}")
            m.d.sync += live.eq(Mux(run, Mux(step, t + 1 < nt, t < nt), nt_gt[0]))
            dep = dep_reg(f"lw_dep{i}", step, ra_, rb_, na_, "d_dep_ok", "d_dep", run,
                          late_step=True)
            # cnt + k >= the end of record b (k = 0..2) and of a (k = 2; 0 and 1 are at_end)
            gb = [Signal(name=f"lw_gb{k}_{i}") for k in range(3)]
            g2a = Signal(name=f"lw_ga2_{i}")
            m.d.comb += [g.eq(cnt + k >= rb_("ld_end")) for k, g in enumerate(gb)]
            m.d.comb += g2a.eq(cnt + 2 >= ra_("ld_end"))
            ga = [at_end[0], at_end[1], g2a]
            # the write's choices kept in front of the step's, which comes last
            for k in range(2):
                u = kept(m, Mux(wr, gb[k + 1], gb[k]), f"lw_end_s{k}_{i}")
                v = kept(m, Mux(run, Mux(wr, ga[k + 1], ga[k]), k >= na_("ld_end")),
                         f"lw_end_h{k}_{i}")
                m.d.sync += at_end[k].eq(Mux(run & step, u, v))
            return live, dep
        lw_ports = []
        for i in range(R):
            run = lane_run(i, "w")
            # a lane other than 0 waits at a broadcast tile; it moves past it at the end
            # of the cycle lane 0 finishes it (rule 2)
            t, started, tr = lw_tile[i], lw_started[i], lwa[i]
            wr = Signal(name=f"lw_wr{i}")
            at_end = [Signal(name=f"lw_end{k}_{i}") for k in range(2)]
            if LAG:
                # the tile's live flag, its data dependency and its end for both outcomes
                # of the write are registers, set the cycle before (lw_flags)
                live, dep = lw_flags(i, wr, at_end)
            else:
                live, dep = t < nt, dep_ok(tr("d_dep_ok"), tr("d_dep"))
            active = Signal(name=f"lw_active{i}")
            m.d.comb += active.eq(run & live & (~tr("bc") if i else 1))
            ok = Signal(name=f"lw_ok{i}")
            # under a lag both reading checks are registers, set the cycle before (below)
            own_rd = own_okr[i] if LAG else (~tr("prev_ok")) | read_done(i, tr("prev"))
            if i == 0:
                m.d.comb += ok.eq(dep & Mux(tr("bc"), Cat(*(bc_okr if LAG else bc_rd_ok)).all(),
                                            own_rd))
            else:
                m.d.comb += ok.eq(dep & own_rd)
            go = Signal(name=f"lw_go{i}")
            m.d.comb += go.eq(active & (started | ok))
            if LAG:
                # the entry at the count in a register, walked as a tile table is (the
                # port's record, a block RAM's output, feeds only that walk's registers;
                # cycle-neutral: the lag-0 netlist addresses one port with the next count)
                ld = tile_walk("lane_load", i, lw_cnt[i], wr, run=run,
                               bits=p.load_bits + 1)[0]
            else:
                ld = port(f"lane_load{i}", lw_cnt_n[i])
            # the write and the tile's end for both outcomes of it, side by side: the
            # head's arrival is a register (l_head, below), the counts compare in parallel
            if not LAG:
                m.d.comb += [at_end[0].eq(lw_cnt[i] >= tr("ld_end")),
                             at_end[1].eq(lw_cnt[i] + 1 >= tr("ld_end"))]
            m.d.comb += [wr.eq(go & ~at_end[0] & l_head[i]), l_wr[i].eq(wr)]
            fin = Signal(name=f"lw_fin{i}")
            lw_fin.append(fin)
            m.d.comb += fin.eq(go & Mux(wr, at_end[1], at_end[0]))
            mask = Signal(C, name=f"lw_mask{i}")
            m.d.comb += mask.eq((Const(1, C + 1) << ld("ncols"))[:C + 1] - 1)
            if i == 0:
                m.d.comb += [bc_fin.eq(fin & tr("bc")), lw_go_bc.eq(wr & tr("bc"))]
            lw_ports.append((wr, tr("bank"), ld("addr"), mask, lfifo[i]))
            m.d.comb += [lw_cnt_n[i].eq(Mux(run, lw_cnt[i] + wr, 0)),
                         l_wpos_n[i].eq(Mux(run & wr, inc(l_wpos[i], LF),
                                            Mux(run, l_wpos[i], 0))),
                         lw_step[i].eq(fin | (bc_fin if i else 0)),
                         lw_tile_n[i].eq(Mux(run, Mux(lw_step[i], t + 1, t), 0))]
            m.d.sync += [lw_cnt[i].eq(lw_cnt_n[i]), l_wpos[i].eq(l_wpos_n[i]),
                         lw_tile[i].eq(lw_tile_n[i])]
            with m.If(run):
                with m.If(fin | (bc_fin if i else 0)):
                    m.d.sync += lw_started[i].eq(0)
                with m.Elif(go):
                    m.d.sync += lw_started[i].eq(1)
            # arrivals and consumption of the load FIFO flags
            setb = Signal(LF, name=f"l_set{i}")
            clrb = Signal(LF, name=f"l_clr{i}")
            m.d.comb += [setb.eq(Mux(self.lrsp_valid[i], Const(1, LF) << l_apos[i], 0)),
                         clrb.eq(Mux(wr & run, Const(1, LF) << l_wpos[i], 0))]
            m.d.sync += l_arr[i].eq((l_arr[i] & ~clrb) | setb)
            if LAG:
                # under a lag the flags of the head and of the entry after it are
                # registers (l_head, l_hf1), the latter set from the entry at head + 2
                # (a position register: l_wp2) for a write, so the write decision only
                # chooses (cycle-neutral)
                wp1 = Signal(range(LF), name=f"l_wp1_{i}")
                wp2 = Signal(range(LF), name=f"l_wp2_{i}")
                hf1 = Signal(name=f"l_hf1{i}")
                m.d.sync += [wp1.eq(Mux(run, Mux(wr, wp2, wp1), 1 % LF)),
                             wp2.eq(Mux(run, Mux(wr, inc(wp2, LF), wp2), 2 % LF))]
                hit = [self.lrsp_valid[i] & (l_apos[i] == q) for q in (l_wpos[i], wp1, wp2)]
                # head + 2 is the head itself for two entries: it is taken and cleared now
                a2 = (l_arr[i].bit_select(wp2, 1) if LF > 2 else 0) | hit[2]
                m.d.sync += [l_head[i].eq(run & Mux(wr, hf1 | hit[1], l_head[i] | hit[0])),
                             hf1.eq(run & Mux(wr, kept(m, a2, f"l_hf2_{i}"),
                                              hf1 | hit[1]))]
            else:
                m.d.sync += l_head[i].eq(head_next(l_arr[i], l_apos[i], self.lrsp_valid[i],
                                                   l_wpos[i], LF, wr, run=run))
        # the local-memory write of each row of the array: a broadcast write from lane 0
        # goes to every lane.  One a cycle: a lane at a broadcast tile writes nothing of
        # its own (lw_active) and lane 0 writes one only while every lane is at it, so the
        # enable is either, and the bank the lane's own tile's (the broadcast tile's then)
        wr0, bank0, addr0, mask0, data0 = lw_ports[0]
        for i in range(R):
            wr, bank, addr, mask, data = lw_ports[i]
            # under a lag the address, mask and data are chosen by lane i's own tile
            # record, a register, instead of by the broadcast's write decision (which
            # chooses at lag 0; cycle-neutral); lane 0's are its own
            pick = 0 if i == 0 else lwa[i]("bc") if LAG else lw_go_bc
            m.d.comb += [
                arr.lw_en[i].eq(wr if i == 0 else lw_go_bc | wr),
                arr.lw_bank[i].eq(bank),
                arr.lw_addr[i].eq(Mux(pick, addr0, addr)),
                arr.lw_mask[i].eq(Mux(pick, mask0, mask)),
            ]
            for j in range(C):
                m.d.comb += arr.lw_data[i][j].eq(
                    Mux(pick, data0[j * W:(j + 1) * W], data[j * W:(j + 1) * W]).as_signed())

        # ---------------------------------------------------------- 4. issue
        any_last = [Signal(name=f"any_last{h}") for h in range(2)]
        cur_next = []
        issue_next = []     # per lane: the issue, the pass and the oldest issue in the window
        lasts = [[], []]
        lasts_q = [[], []]
        for i in range(R):
            run = lane_run(i, "i")
            s_hpos_n = Signal(range(SF), name=f"s_hpos_n{i}")
            s_async = fifo_async(cfg, SF, W)
            s_copies = stream_fifo_copies(cfg)
            # under a lag a block-RAM FIFO keeps its head and the entry after it in
            # registers (s_hb), refilled from three copies read at registers (the
            # positions head + 2, head + 3 and head + 4, s_hq) whose data comes two
            # cycles later (a read register after the port: the block RAM's output
            # register on ECP5), and an arrival for either goes straight in
            if s_copies == 3:
                hb = [Signal(signed(W), name=f"s_hb{k}_{i}") for k in range(2)]
                hq = [Signal(range(SF), name=f"s_hq{k}_{i}") for k in (1, 2, 3, 4)]
                hp1, hq = hq[0], hq[1:]     # head + 1 (for the flags), head + 2..4
            dq = []
            for k in range(s_copies):
                name = f"sfifo{i}" + ("" if k == 0 else f"_{k}")
                if s_copies == 3 and fifo_outreg:
                    dq.append(ecp5_dp16kd(m, name, self.srsp_valid[i], s_apos[i],
                                          self.srsp_data[i], hq[k], f"s_fq{k}_{i}"))
                    continue
                mem = Memory(shape=signed(W), depth=SF, init=[],
                             attrs=mem_attrs(SF, W, sync=not s_async,
                                             read_during_write=s_copies == 1 and not s_async))
                m.submodules[name] = mem
                wp = mem.write_port()
                # read at the head register (hdl.image.fifo_async), at the next head, or
                # (three copies) at head + 2, head + 3 and head + 4, not transparent: the
                # refill takes a write of the two cycles before from its own registers
                rp = (mem.read_port(domain="comb") if s_async
                      else mem.read_port(transparent_for=(wp,) if s_copies == 1 else ()))
                m.d.comb += [wp.addr.eq(s_apos[i]), wp.data.eq(self.srsp_data[i]),
                             wp.en.eq(self.srsp_valid[i]),
                             rp.addr.eq(s_hpos[i] if s_async else
                                        hq[k] if s_copies == 3 else s_hpos_n)]
                if s_copies == 3:
                    fq = Signal(signed(W), name=f"s_fq{k}_{i}")
                    m.d.sync += fq.eq(rp.data)
                    dq.append(fq)
                else:
                    dq.append(rp.data)
            sval = hb[0] if s_copies == 3 else dq[0]
            with m.If(self.srsp_valid[i]):
                m.d.sync += s_rpos[i].eq(inc(s_rpos[i], SF))
            # flags for this cycle, registered like the fetch side's: i_live0/1 (cur < nt,
            # cur + 1 < nt) and i_zero (rem == 0)
            pas = Signal(name=f"pass{i}")
            live_e = Signal(name=f"i_live_e{i}")
            m.d.comb += [pas.eq(run & i_live0[i] & i_zero[i]),
                         live_e.eq(Mux(pas, i_live1[i], i_live0[i]))]
            ce = Signal(TB, name=f"cur_e{i}")
            m.d.comb += ce.eq(cur[i] + pas)
            cur_n = Signal(TB, name=f"cur_n{i}")
            cur_next.append(cur_n)
            ia, ib, tr, _, ird = tile_walk("lane_itile", i, cur[i], pas, run=run, third=bool(LAG))
            enter = Signal(name=f"i_enter{i}")
            m.d.comb += enter.eq(pas & i_live1[i])
            re_ = Signal(EB, name=f"rem_e{i}")
            he = Signal(EB, name=f"h_ptr_e{i}")
            m.d.comb += [re_.eq(Mux(enter, ib("n"), rem[i])), he.eq(Mux(enter, ib("rs0"), h_ptr[i]))]
            # lw_tile > ce for both outcomes of the pass
            ld_ok = Signal(name=f"i_ld_ok{i}")
            if LAG:
                # both from registers (cycle-neutral; the lag-0 netlist compares here):
                # ld_ge[k] = lw_tile - cur >= k, kept with the difference itself and set
                # for the next cycle from comparisons of this one's, chosen by the load
                # walker's step and this pass; the record's output half free (wb_blk >
                # wbprev) for the tiles a and b, next cycle's chosen by the block's end
                dif = Signal(signed(TB + 1), name=f"i_ld_dif{i}")
                ld_ge = [None] + [Signal(name=f"i_ld_ge{k}_{i}") for k in (1, 2)]
                # dif + step - pass, the sums formed beside the step and the pass
                # (kept in front of the step's choice, which comes late)
                d_up = kept(m, Mux(pas, dif, dif + 1), f"i_ld_dup{i}")
                d_st = kept(m, Mux(pas, dif - 1, dif), f"i_ld_dst{i}")
                m.d.sync += dif.eq(Mux(run, Mux(lw_step[i], d_up, d_st), 0))
                # the compares and the pass's choices kept in front of the step's
                # (a late signal), which chooses last
                cmp_ = [kept(m, dif >= k, f"i_ld_c{k}_{i}") for k in range(4)]
                for k in (1, 2):
                    up = kept(m, Mux(pas, cmp_[k], cmp_[k - 1]), f"i_ld_up{k}_{i}")
                    st = kept(m, Mux(pas, cmp_[k + 1], cmp_[k]), f"i_ld_st{k}_{i}")
                    m.d.sync += ld_ge[k].eq(run & Mux(lw_step[i], up, st))
                m.d.comb += ld_ok.eq(Mux(pas, ld_ge[2], ld_ge[1]))
                hf = [Signal(name=f"i_half_ok{x}_{i}") for x in ("a", "b")]
                # each compares the record it takes next cycle (a: a, or b after a pass;
                # b: b, or the port's record after a pass) with the block count for both
                # outcomes of the block's end: wb_blk + 1 > wbprev as wb_blk >= wbprev
                # (no adder in front of the compare); the compares are made on the
                # records themselves and kept, then chosen by the pass, then by the
                # block's end (late)
                for reg, (keep_, moved) in zip(hf, ((ia, ib), (ib, ird))):
                    cand = []
                    for f in range(2):
                        hc = [kept(m, ~rec("wbprev_ok") | (run & (
                            wb_blk >= rec("wbprev") if f else wb_blk > rec("wbprev"))),
                            f"{reg.name}_c{f}{k}") for k, rec in enumerate((keep_, moved))]
                        cand.append(kept(m, Mux(run & ~pas, hc[0], hc[1]),
                                         f"{reg.name}_if{f}"))
                    m.d.sync += reg.eq(Mux(run & wb_fin, cand[1], cand[0]))
                half_ok = Mux(pas, hf[1], hf[0])
            else:
                m.d.comb += ld_ok.eq(Mux(pas, lw_tile[i] > cur[i] + 1, lw_tile[i] > cur[i]))
                half_ok = ~tr("wbprev_ok") | (wb_blk > tr("wbprev"))
            iss = Signal(name=f"issue{i}")
            if LAG:
                # the same function in two levels of registers: a lane that passes
                # (i_zero) issues from its next tile's record, one that does not from
                # the current tile's; without i_live0 it issues nothing either way
                i_run = kept(m, run & i_live0[i] & s_head[i], f"i_run{i}")
                i_b = kept(m, i_live1[i] & ib("ne") & ld_ge[2] & hf[1], f"i_ok_b{i}")
                i_a = kept(m, ld_ge[1] & hf[0], f"i_ok_a{i}")
                m.d.comb += iss.eq(i_run & Mux(i_zero[i], i_b, i_a))
            else:
                m.d.comb += iss.eq(run & live_e & Mux(enter, ib("ne"), ~i_zero[i]) & ld_ok
                                   & half_ok & s_head[i])
            rem_n = Signal(EB, name=f"rem_n{i}")
            hp_n = Signal(EB, name=f"h_ptr_n{i}")
            nrs0_n = Signal(EB, name=f"i_nrs0_n{i}")
            zero_n = Signal(name=f"i_zero_n{i}")
            live0_n = Signal(name=f"i_live0_n{i}")
            live1_n = Signal(name=f"i_live1_n{i}")
            m.d.comb += [cur_n.eq(Mux(run, ce, 0)),
                         rem_n.eq(Mux(run, Mux(iss, re_ - 1, re_), ia("n"))),
                         hp_n.eq(Mux(run, Mux(iss, Mux(enter, ib("rs0") + 1, h_ptr[i] + 1),
                                                  he), ia("rs0"))),
                         nrs0_n.eq(Mux(run & pas, ib("nrs0"), ia("nrs0"))),
                         zero_n.eq(Mux(run,
                                       Mux(iss, Mux(enter, ib("one"), rem[i] == 1),
                                           Mux(enter, ~ib("ne"), i_zero[i])),
                                       ~ia("ne"))),
                         live0_n.eq(Mux(run, live_e, nt_gt[0])),
                         live1_n.eq(Mux(run, Mux(pas, i_live2[i] if LAG else cur[i] + 2 < nt,
                                                     i_live1[i]), nt_gt[1])),
                         s_hpos_n.eq(Mux(run & iss, inc(s_hpos[i], SF),
                                         Mux(run, s_hpos[i], 0)))]
            if s_copies == 3:
                take = run & iss
                hit = [Signal(name=f"s_hit{k}_{i}") for k in range(3)]
                m.d.comb += [hit[k].eq(self.srsp_valid[i] & (s_apos[i] == q)) for k, q in
                             enumerate((s_hpos[i], hp1, hq[0]))]
                # the entry at head + 2 of this cycle: the copy n read two cycles ago,
                # n the takes since (one-hot registers), unless it was written in one of
                # those two cycles (the copies' data predates those writes): then the
                # write's own data, kept in registers, as are its address compares, made
                # in the cycle of the write for the takes possible since
                sel = [Signal(name=f"s_fsel{n}_{i}") for n in range(3)]
                take_q = Signal(name=f"s_take_q{i}")
                m.d.sync += [take_q.eq(take),
                             sel[0].eq(~take & ~take_q), sel[1].eq(take ^ take_q),
                             sel[2].eq(take & take_q)]
                wd = [Signal(signed(W), name=f"s_wd{j}_{i}") for j in (1, 2)]
                m.d.sync += [wd[0].eq(self.srsp_data[i]), wd[1].eq(wd[0])]
                # write of the cycle before: at head + 2 (no take then) or head + 3
                w1 = [Signal(name=f"s_w1_{n}_{i}") for n in range(2)]
                m.d.sync += [w1[n].eq(self.srsp_valid[i] & (s_apos[i] == hq[n]))
                             for n in range(2)]
                # write of two cycles before: at head + 2 + k of its cycle (w2c), then
                # chosen by that cycle's take (w2d[n]: k = that take + n) and the next's
                w2c = [Signal(name=f"s_w2c{k}_{i}") for k in range(3)]
                w2d = [Signal(name=f"s_w2d{n}_{i}") for n in range(2)]
                m.d.sync += [w2c[k].eq(self.srsp_valid[i] & (s_apos[i] == hq[k]))
                             for k in range(3)]
                m.d.sync += [w2d[n].eq(Mux(take_q, w2c[n + 1], w2c[n])) for n in range(2)]
                hit1 = Mux(take_q, w1[1], w1[0])
                hit2 = Mux(take_q, w2d[1], w2d[0])
                from_mem = (Mux(sel[0], dq[0], 0) | Mux(sel[1], dq[1], 0)
                            | Mux(sel[2], dq[2], 0))
                third = Signal(signed(W), name=f"s_third{i}")
                m.d.comb += third.eq(Mux(hit1, wd[0], Mux(hit2, wd[1], from_mem)))
                # the arrival flags go the same way: the head's (s_head) and the next
                # entry's (s_hf1) are registers, and the one at head + 2 comes from the
                # arrival vector read at the copies' positions two cycles ago and from
                # the same two cycles' writes, so no flag indexes the vector in the
                # cycle it is needed (cycle-neutral).  The read takes both cycles: a
                # group's bit by the position's low bits into registers (s_fa), then
                # the group by its high bits (s_fb)
                lb = ((SF - 1).bit_length() + 1) // 2
                groups = [Cat(*(s_arr[i][j] if j < SF else Const(0, 1)
                                for j in range(g << lb, (g + 1) << lb)))
                          for g in range(-(-SF >> lb))]
                fb = [Signal(name=f"s_fb{k}_{i}") for k in range(3)]
                for k in range(3):
                    fa = Signal(len(groups), name=f"s_fa{k}_{i}")
                    fh = Signal(range(len(groups)), name=f"s_fh{k}_{i}")
                    m.d.sync += [fa.eq(Cat(*(run & g.bit_select(hq[k][:lb], 1)
                                             for g in groups))),
                                 fh.eq(hq[k][lb:]), fb[k].eq(fa.bit_select(fh, 1))]
                arr2 = (hit1 | hit2 | (sel[0] & fb[0]) | (sel[1] & fb[1])
                        | (sel[2] & fb[2]))
                hf1 = Signal(name=f"s_hf1{i}")
                m.d.sync += [hf1.eq(run & Mux(take, arr2 | hit[2], hf1 | hit[1])),
                             s_head[i].eq(run & Mux(take, hf1 | hit[1], s_head[i] | hit[0]))]
                m.d.sync += [hb[0].eq(Mux(Mux(take, hit[1], hit[0]), self.srsp_data[i],
                                          Mux(take, hb[1], hb[0]))),
                             hb[1].eq(Mux(Mux(take, hit[2], hit[1]), self.srsp_data[i],
                                          Mux(take, third, hb[1])))]
                for k in range(3):
                    m.d.sync += hq[k].eq(Mux(take, inc(hq[k], SF),
                                             Mux(run, hq[k], (k + 2) % SF)))
                m.d.sync += hp1.eq(Mux(take, hq[0], Mux(run, hp1, 1 % SF)))
            m.d.sync += [cur[i].eq(cur_n), rem[i].eq(rem_n), h_ptr[i].eq(hp_n),
                         s_hpos[i].eq(s_hpos_n), i_zero[i].eq(zero_n),
                         i_live0[i].eq(live0_n), i_live1[i].eq(live1_n)]
            if LAG:
                m.d.sync += i_live2[i].eq(Mux(run, Mux(pas, cur[i] + 3 < nt, i_live2[i]),
                                              nt_gt[2]))
            # the element's address for both outcomes of the issue, then the issue's choice
            nx = Signal(name=f"i_nx{i}")
            if LAG:
                # formed for both outcomes of the pass as well, from registers (cycle-neutral)
                run_addr = elem_addr_lag("i", i, iss, pas, ia, ib, h_ptr[i], rem[i] == 1,
                                         i_zero[i], (i_live0[i], i_live1[i], i_live2[i]))
            else:
                ia1, ia0 = Signal(EB, name=f"i_ea1_{i}"), Signal(EB, name=f"i_ea0_{i}")
                m.d.comb += [nx.eq(live0_n & live1_n),
                             ia1.eq(Mux(Mux(enter, ib("one"), rem[i] == 1) & nx, nrs0_n,
                                        Mux(enter, ib("rs0") + 1, h_ptr[i] + 1))),
                             ia0.eq(Mux(Mux(enter, ~ib("ne"), i_zero[i]) & nx, nrs0_n, he))]
                run_addr = Mux(iss, ia1, ia0)
            el = port(f"lane_elem{i}", Mux(run, run_addr,
                                           Mux(~ia("ne") & nt_gt[0] & nt_gt[1], ia("nrs0"),
                                               ia("rs0")) if LAG else
                                           Mux(~ia("ne") & nx, nrs0_n, ia("rs0"))))
            fl = el("flags")
            # the tile's requantization is split around the issue register: the value is
            # shifted as it is read (rq_scale: the register holds it with its rounding
            # bit, and the tile's saturation bound), rounded and saturated between the
            # register and PE(i, 0), whose stage x only registers the value (docs/rtl.md:
            # the element's value is used from x+1)
            e = Signal(element_layout(cfg), name=f"ereg{i}")
            e_u = Signal(signed(W + 1), name=f"e_scaled{i}")
            e_hi = Signal(W, name=f"e_rq_hi{i}")
            e_on = Signal(name=f"e_rq_on{i}")
            if LAG:
                # the tile's shift, bound and saturation flag kept for both tile records
                # the issue looks at, from the records' next values (cycle-neutral; the
                # lag-0 netlist computes them from the record the pass chooses)
                consts = [(Signal(W.bit_length(), name=f"i_rq_amt{x}_{i}"),
                           Signal(W, name=f"i_rq_hi{x}_{i}"), Signal(name=f"i_rq_on{x}_{i}"))
                          for x in "ab"]
                h_, o_ = rq_bound(m, ird("s_rq_bits"), W)
                walk_regs(*consts, pas, (rq_scale_amount(m, ird("s_rq_shift"),
                                                         ird("s_rq_bits"), W), h_, o_), run=run)
                amt, hi_, on_ = (Mux(pas, b_, a_) for a_, b_ in zip(*consts))
            else:
                hi_, on_ = rq_bound(m, tr("s_rq_bits"), W)
                amt = rq_scale_amount(m, tr("s_rq_shift"), tr("s_rq_bits"), W)
            if cfg.lmem_read_cycles >= 2:
                # the shift in two parts, the multiple of 8 here and the rest with the
                # rounding in the next cycle: (2 v) >> s = ((2 v) >> 8 (s >> 3)) >> (s & 7)
                e_fine = Signal(3, name=f"e_rq_fine{i}")
                m.d.sync += e_fine.eq(amt[:3])
                amt = Cat(Const(0, 3), amt[3:])
            m.d.sync += [e.valid.eq(iss),
                         e_u.eq(rq_scale(m, sval, amt, W)),
                         e_hi.eq(hi_), e_on.eq(on_),
                         e.sel.eq(tr("sel")), e.addr.eq(el("addr")), e.bank.eq(tr("bank")),
                         e.slot.eq(el("slot")), e.half.eq(tr("half")),
                         e.first.eq(fl[0]), e.last.eq(fl[1]), e.fresh.eq(fl[2])]
            if cfg.lmem_read_cycles == 1:
                m.d.comb += [arr.e[i].eq(e),
                             arr.e[i].value.eq(rq_saturate(m, e_u, e_hi, e_on, W))]
            else:
                # the PEs take the value with the local memory's registered data, two
                # cycles after the element (hdl/pe.py): it is rounded in the first and
                # saturated in the second, each ending in a register
                r_q = Signal(signed(W), name=f"e_round{i}")
                hi_q = Signal(W, name=f"e_rq_hi_q{i}")
                mask_q = Signal(W, name=f"e_rq_mask{i}")
                v_q = Signal(signed(W), name=f"e_value{i}")
                m.d.sync += [r_q.eq(rq_round(m, e_u >> e_fine, W)), hi_q.eq(e_hi),
                             mask_q.eq(Mux(e_on, ~e_hi, 0)),
                             v_q.eq(rq_clamp(m, r_q, hi_q, None, W, tree=True, mask=mask_q))]
                m.d.comb += [arr.e[i].eq(e), arr.e[i].value.eq(0), arr.v[i].eq(v_q)]
            for h in range(2):
                lasts[h].append(iss & fl[1] & (tr("half") == h))
                if LAG:     # the same a cycle later, from the issue register
                    lasts_q[h].append(e.valid & e.last & (e.half == h))
            # the issue window: shift in this cycle's issue; the oldest valid entry
            # afterwards is next cycle's w_tile
            old_any, old_tile = Const(0, 1), Const(0, TB)
            for k in range(HW - 1):         # newest first: the last valid is oldest
                v, t = hist_v[i][k], hist_t[i][k]
                old_any, old_tile = v | old_any, Mux(v, t, old_tile)
            if HW:
                with m.If(run):
                    newer = [(iss, ce)] + list(zip(hist_v[i], hist_t[i]))
                    for k in range(HW - 1):
                        m.d.sync += [hist_v[i][k].eq(newer[k][0]), hist_t[i][k].eq(newer[k][1])]
                    m.d.sync += [w_any[i].eq(old_any | iss),
                                 w_tile[i].eq(Mux(old_any, old_tile, ce))]
            issue_next.append((iss, pas, old_any, old_tile))
            # stream FIFO flags and occupancy
            setb = Signal(SF, name=f"s_set{i}")
            clrb = Signal(SF, name=f"s_clr{i}")
            m.d.comb += [setb.eq(Mux(self.srsp_valid[i], Const(1, SF) << s_apos[i], 0)),
                         clrb.eq(Mux(iss, Const(1, SF) << s_hpos[i], 0))]
            m.d.sync += s_arr[i].eq((s_arr[i] & ~clrb) | setb)
            if s_copies != 3:
                m.d.sync += s_head[i].eq(head_next(s_arr[i], s_apos[i], self.srsp_valid[i],
                                                   s_hpos[i], SF, iss, run=run))
            # the room next cycle (occupancy - issue + grant < SF), compared before the
            # issue is known and then chosen by it
            room_a, room_b = Signal(name=f"s_room_a{i}"), Signal(name=f"s_room_b{i}")
            m.d.comb += [room_a.eq(s_occ[i] < SF - 1), room_b.eq(s_occ[i] < SF),
                         s_room_if[i][0].eq(Mux(iss, room_b, room_a)),
                         s_room_if[i][1].eq(iss | room_b)]
            if LAG:
                # occupancy - issue + take, and whether it is below the depth, for the
                # outcomes side by side (an issue leaves room: it frees an entry)
                take = s_fire[i][1]
                up, down = take & ~iss, iss & ~take
                # both neighbours from the register, then the choice (docs/rtl.md,
                # *Logic depth*)
                inc_, dec_ = (kept(m, (s_occ[i] + d)[:len(s_occ[i])], f"s_occ_{n}{i}")
                              for d, n in ((1, "up"), (-1, "down")))
                with m.If(run):
                    m.d.sync += s_occ[i].eq(Mux(up, inc_, Mux(down, dec_, s_occ[i])))
                m.d.sync += s_free[i].eq(~run | Mux(up, room_a, down | room_b))
            else:
                with m.If(run):
                    m.d.sync += s_occ[i].eq(s_occ[i] - iss + s_fire[i][1 if LAG else 0])
        # the writeback's wb_ready and wb_try of the next cycle, for both outcomes of this
        # cycle's last step (wb_fin: the block after this one) and step grant (wb_fire),
        # chosen by them last: the block may start when every lane is past its last tile
        # and its half's last merge is complete (m_wait 0 next cycle; 0 at cycle 0)
        m_zero = [Signal(name=f"m_zero_n{h}") for h in range(2)]
        m_lastq = [Signal(name=f"m_lastq{h}") for h in range(2)]
        for h in range(2):
            if LAG:
                # a LAST issued in this cycle on the block's half is of one of the block's
                # own tiles (a later block on that half waits for this one's writeback),
                # so that lane is not past the block's last tile and the block is not
                # ready anyway: the issue is left out of this path (cycle-neutral; the
                # lag-0 netlist keeps it, byte for byte)
                # The counter itself takes a LAST a cycle late, from the issue
                # registers (m_lastq: the element table's block-RAM output reaches no
                # logic), and counts from KM - 1; in that cycle its value is KM, not zero
                m.d.comb += m_zero[h].eq(~running | (~m_lastq[h] & (m_wait[h] <= 1)))
            else:
                m.d.comb += m_zero[h].eq(~running | (~any_last[h] & (m_wait[h] <= 1)))
        rdy_if, try_if = [], []
        for f, rec in enumerate((br, bnx)):
            rdy = Signal(name=f"wb_ready_if{f}")
            lt = rec("last_tile")
            # every lane past the record's last tile next cycle; with a lag from the
            # registers: the lane's tile and its pass side by side (cur + pass > last:
            # cur >= last if it passes) instead of after the sum (cycle-neutral)
            if LAG and f == 1:
                # the next record's compares formed on both of its ports' records
                past = [running & Mux(ne[1],
                                      bnx_of(lambda r_, c_=cr: c_ >= r_("last_tile"),
                                             f"wb_past_ge{k}"),
                                      bnx_of(lambda r_, c_=cr: c_ > r_("last_tile"),
                                             f"wb_past_gt{k}"))
                        for k, (ne, cr) in enumerate(zip(issue_next, cur))]
            else:
                past = ([running & Mux(ne[1], cr >= lt, cr > lt)
                         for ne, cr in zip(issue_next, cur)]
                        if LAG else [cn > lt for cn in cur_next])
            m.d.comb += rdy.eq((wb_blk + f < nb) & Array(m_zero)[wb_blk[0] ^ f]
                               & Cat(*past).all())
            rdy_if.append(rdy)
            try_if.append([Signal(name=f"wb_try_if{f}{g}") for g in range(2)])
            m.d.comb += [try_if[f][0].eq(rdy & (wb_cur < rec("s1"))),
                         try_if[f][1].eq(rdy & (wb_cur1 < rec("s1")))]
        start0 = (prime == 1) & (nb != 0)
        m.d.sync += wb_ready.eq(Mux(running, Mux(wb_fin, rdy_if[1], rdy_if[0]),
                                    start0 & rdy_if[0]))
        if not LAG:
            m.d.sync += wb_try.eq(Mux(running, Mux(wb_fin, Mux(wb_fire, try_if[1][1],
                                                                try_if[1][0]),
                                                   Mux(wb_fire, try_if[0][1], try_if[0][0])),
                                      start0 & try_if[0][0]))
        if LAG:
            self._load_checks(m, issue_next, own_okr, bc_okr, lw_walk, lw_tile, lw_step,
                              lw_fin, lwa[0]("bc"), cur, running, HW, TB)
        for h in range(2):
            m.d.comb += any_last[h].eq(Cat(*lasts[h]).any())
            if LAG:
                m.d.comb += m_lastq[h].eq(running & Cat(*lasts_q[h]).any())
            with m.If(running & m_lastq[h] if LAG else running & any_last[h]):
                m.d.sync += m_wait[h].eq(KM - 1 if LAG else KM)
            with m.Elif(running & (m_wait[h] != 0)):
                m.d.sync += m_wait[h].eq(m_wait[h] - 1)

        # ---------------------------------------------------------- control
        # start → PRIME cycles with the cycle-0 addresses on every table port → cycle 0
        with m.If(self.start & idle & (prime == 0)):
            m.d.sync += [prime.eq(PC), self.done.eq(0)]
        with m.Elif(prime != 0):
            m.d.sync += prime.eq(prime - 1)
            with m.If(prime == 1):
                m.d.sync += [running.eq(nb != 0), self.done.eq(nb == 0), c.eq(0),
                             credit.eq(0), rot_oh.eq(1), ph_done.eq(0),
                             m_wait[0].eq(0), m_wait[1].eq(0)]
                for i in range(R):
                    m.d.sync += [s_occ[i].eq(0), s_rpos[i].eq(0), s_arr[i].eq(0),
                                 w_any[i].eq(0), l_rpos[i].eq(0), l_arr[i].eq(0),
                                 lw_started[i].eq(0)]
                    m.d.sync += [v.eq(0) for v in hist_v[i]]
        with m.Elif(running):
            m.d.sync += [c.eq(c + 1), rot_oh.eq(Cat(rot_oh[R - 1], rot_oh[:R - 1]) if R > 1 else 1)]
            # the last block's writeback ends (running, wb_blk < nb)
            with m.If(wb_fin & last_blk):
                m.d.sync += [running.eq(0), self.done.eq(1)]
        # the lanes' copies: each is cleared under its own value, so no two have the same
        # inputs and Yosys keeps them apart (it merges flip-flops with equal inputs)
        for r in run_copies.values():
            with m.If(prime == 1):
                m.d.sync += r.eq(nb != 0)
            with m.Elif(r & wb_fin & last_blk):
                m.d.sync += r.eq(0)
        return m
