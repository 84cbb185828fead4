"""Gateware of a network board's host link: the executor of :mod:`lifgate.boards.netproto`.

The UART, the frame receiver and transmitter, the payload reader and the replies are
:class:`lifgate.boards.framelink.FrameCore`'s; the command executor here drives a
:class:`lifgate.hdl.network.Network` instead of a ``LIFArray``. Its replies must equal
:class:`lifgate.boards.netproto.NetworkBoardModel`'s byte for byte. How to add a command:
:mod:`lifgate.boards.framelink`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data
from amaranth.utils import ceil_log2
from lifgate.boards.framelink import R_DONE, FrameCore, LinkComponent, le_bytes, param_word_ok
from lifgate.boards.frameproto import ErrorCode
from lifgate.boards.netproto import (
    NetCmd,
    NetFeatures,
    default_param_word,
    net_version_payload,
)
from lifgate.hdl.network import Network

from lifgate.config import ConfigError

__all__ = ["NetworkLink"]


class NetworkLink(LinkComponent):
    """UART, frame decoder, command executor and the layered network of a network board.

    Implements :mod:`lifgate.boards.netproto`; :class:`NetworkBoardModel
    <lifgate.boards.netproto.NetworkBoardModel>` is its reference. Weights go through the
    network's write port (``w_we``, ...) and come back through its read-back port
    (``r_layer``, ...); the inputs ``x`` are a register here, or (multi-bit inputs, a dense
    layer 0) the network's x memory (``Network(x_memory=True)``).

    Parameters
    ----------
    features : NetFeatures
        Layer shapes, widths, membrane readback, frame buffer size.
    divisor : int
        UART clocks per bit.
    timeout : int
        Clocks of line silence that end a partial frame (``ERR_TIMEOUT``) or an overrun.
    cache_ram : str
        ``Network(cache_ram=)``: ``"spram"`` on the UP5K (layer 0's current cache in an
        SPRAM, one EBR fewer), else ``"memory"``.
    array_options : dict or None
        ``Network(array_options=)``: the board's array profile.
    multiplier : str
        ``Network(multiplier=)``: ``"ecp5"`` on the ULX3S (layer 0's products in
        ``MULT18X18D`` blocks with their own registers), else ``"fabric"``.

    The pins ``rx``, ``tx`` and ``status`` are :class:`~lifgate.boards.framelink.LinkComponent`'s;
    ``status`` bit 0 is the network's busy, bit 3 is 0.
    """

    def __init__(self, features: NetFeatures, *, divisor: int, timeout: int,
                 cache_ram: str = "memory",
                 array_options: dict | None = None, multiplier: str = "fabric"):
        if not isinstance(features, NetFeatures):
            raise ConfigError(f"parameter 'features' must be a NetFeatures, not {features!r}")
        if cache_ram not in ("memory", "spram"):
            raise ConfigError(f"parameter 'cache_ram' must be 'memory' or 'spram', not "
                              f"{cache_ram!r}")
        self.cache_ram = cache_ram
        self.array_options = dict(array_options or {})
        self.multiplier = multiplier
        super().__init__(features, divisor=divisor, timeout=timeout)

    def executor(self, m: Module, core: FrameCore) -> tuple:
        f = self.features
        # Multi-bit inputs (a dense layer 0) live in the network's x memory (a block RAM),
        # not in a register of inputs x x_width bits (320 flip-flops for the digits network).
        # A recurrent layer 0 changes its currents every step: no layer-0 current reuse.
        m.submodules.net = net = Network(f.shapes, inputs=f.inputs, w_width=f.w_width,
                                         x_width=f.x_width, membrane=f.membrane,
                                         x_memory=f.x_width > 1, cache_ram=self.cache_ram,
                                         array_options=self.array_options,
                                         multiplier=self.multiplier,
                                         recurrent=f.recurrent, skips=f.skips,
                                         reuse=not f.recurrent[0])
        _NetExecutor(m, core, net, f)
        return net.busy, Const(0, 1)


class _NetExecutor:
    """The network board's command executor on a :class:`FrameCore`: the network's ports,
    the header fields, the weight walk, the ``STEP`` records, and the FSM states of its
    commands."""

    def __init__(self, m: Module, core: FrameCore, net: Network, f: NetFeatures):
        self.m, self.core, self.net, self.f = m, core, net, f
        shapes = f.shapes
        PB = f.param_bytes
        # The header: LOAD reads the first NL payload bytes of every command into acc (bytes
        # past a shorter payload are stale and unused), so every field has a fixed place;
        # only LOAD shifts acc, so it holds them until the next frame.
        self.NL = max(5 + PB, 11)  # <= max_payload (NetFeatures checks both)
        self.loading = Signal(name="loading")
        acc = core.loader(self.NL, gate=self.loading)
        # Network inputs, step counter (steps since the clear, as the network's own).
        if net.x_memory:
            # Registered write strobe into the network's x memory (a reset zeroes the memory
            # in state INIT_X, as it would the register).
            self.x_we = Signal(name="x_we")
            self.x_addr = Signal.like(net.x_addr, name="x_addr")
            self.x_data = Signal(f.x_width, name="x_data")
            # WRITE_X's write is made a clock after its value ended (``x_pend``, the input's
            # index in ``x_idx``), from ``val`` (the whole value, a register) rather than from
            # the frame buffer's read data: that path (the buffer's DP16KD, the byte
            # multiplexer, x_data) was in the ULX3S network board's critical path at 100 MHz
            # (issue 17). The x memory is read only by a run, frames later.
            self.x_pend = Signal(name="x_pend")
            self.x_idx = Signal.like(net.x_addr, name="x_idx")
            m.d.sync += [self.x_we.eq(0), self.x_pend.eq(0)]
            m.d.comb += [net.x_we.eq(self.x_we), net.x_addr.eq(self.x_addr),
                         net.x_data.eq(self.x_data)]
        else:
            self.x_reg = Signal(data.ArrayLayout(f.x_width, f.inputs), name="x_reg")
            m.d.comb += net.x.eq(self.x_reg)
        self.step = Signal(shapes[0].step_width, name="step")
        self._ports()

        # Header fields.
        self.p_layer, self.p_group, self.p_word = acc[0:8], acc[8:40], acc[40:40 + 8 * PB]
        self.h_layer, self.h_neuron = acc[0:8], acc[8:40]
        self.h_input, self.h_count = acc[40:72], acc[72:88]
        self.run_steps, self.run_flags = acc[0:32], acc[32:40]
        self.x_start = acc[0:32]
        self._checks()
        self._walk()
        self._values()
        if net.x_memory:
            with m.If(self.x_pend):
                m.d.sync += [self.x_we.eq(1), self.x_addr.eq(self.x_idx),
                             self.x_data.eq(self.val[:f.x_width])]

        # Replies.
        version = [Const(b, 8) for b in net_version_payload(f)]
        status = le_bytes(self.step, 4)
        core.replies(version=version, status=status, done=status, size=len(version) + 1)
        self._records()
        self._init_words()
        self._fsm()

    def _ports(self):
        """Registered strobes and write ports of the network."""
        m, net, f = self.m, self.net, self.f
        n_clear, n_start = Signal(), Signal()
        pw_we = Signal()
        pw_layer = Signal.like(net.param_layer)
        pw_group = Signal.like(net.param_group)
        pw_data = Signal(f.param_width)
        ww_we = Signal()
        ww_layer, ww_addr = Signal.like(net.w_layer), Signal.like(net.w_addr)
        ww_lane, ww_data = Signal.like(net.w_lane), Signal(f.w_width)
        steps_r = Signal(32)
        m.d.sync += [n_clear.eq(0), n_start.eq(0), pw_we.eq(0), ww_we.eq(0)]
        m.d.comb += [
            net.clear.eq(n_clear), net.start.eq(n_start), net.steps.eq(steps_r),
            net.param_we.eq(pw_we), net.param_layer.eq(pw_layer),
            net.param_group.eq(pw_group), net.param_data.eq(pw_data),
            net.w_we.eq(ww_we), net.w_layer.eq(ww_layer), net.w_addr.eq(ww_addr),
            net.w_lane.eq(ww_lane), net.w_data.eq(ww_data),
        ]
        self.n_clear, self.n_start, self.steps_r = n_clear, n_start, steps_r
        self.pw = (pw_we, pw_layer, pw_group, pw_data)
        self.ww = (ww_we, ww_layer, ww_addr, ww_lane, ww_data)

    def _checks(self):
        """The value checks of SET_PARAMS, the weight commands and RUN."""
        m, f, shapes = self.m, self.f, self.f.shapes
        params_ok = Signal()
        start_ok = Signal()
        m.d.comb += [params_ok.eq(0), start_ok.eq(0)]
        with m.Switch(self.p_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += params_ok.eq((self.p_group < s.groups)
                                             & param_word_ok(m, s, self.p_word, f.param_width))
        with m.Switch(self.h_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += start_ok.eq((self.h_neuron < s.neurons)
                                            & (self.h_input < f.fan_in[n]))
        flags_bad = self.run_flags[3:].any() | (Const(0) if f.membrane else self.run_flags[1])
        self.params_ok_r = Signal(name="params_ok_r")
        self.start_ok_r = Signal(name="start_ok_r")
        self.flags_bad_r = Signal(name="flags_bad_r")
        L = f.layers
        self._validate = [self.params_ok_r.eq(params_ok & (self.p_layer < L)),
                          self.start_ok_r.eq(start_ok & (self.h_layer < L)),
                          self.flags_bad_r.eq(flags_bad)]

    def _walk(self):
        """Weight walk: position (neuron j, input i) and its memory place (row, lane) of the
        layer wl; :meth:`advance` moves to the next weight in row-major order."""
        shapes, fan = self.f.shapes, self.f.fan_in
        NMAX, FMAX = max(s.neurons for s in shapes), max(fan)
        ROWS = max(s.depth * n for s, n in zip(shapes, fan, strict=True))
        self.wl = Signal(range(max(2, self.f.layers)), name="wl")
        self.j = j = Signal(range(NMAX + 1), name="j")
        self.i = i = Signal(range(max(2, FMAX)), name="i")
        self.lane = lane = Signal(range(max(2, max(s.lanes for s in shapes))), name="lane")
        self.row = row = Signal(range(ROWS + 1), name="row")
        self.start = tuple(Signal.like(s, name=f"{s.name}0") for s in (j, i, lane, row))
        self.nm1 = Signal.like(i, name="nm1")  # n_l - 1
        self.pm1 = Signal.like(lane, name="pm1")  # P_l - 1
        self.n_l = Signal(range(NMAX + 1), name="n_l")  # N_l
        self.m.d.comb += [self.net.r_layer.eq(self.wl), self.net.r_addr.eq(row),
                          self.net.r_lane.eq(lane)]

    def advance(self):
        m, i, j, lane, row = self.m, self.i, self.j, self.lane, self.row
        with m.If(i == self.nm1):
            m.d.sync += [i.eq(0), j.eq(j + 1)]
            with m.If(lane == self.pm1):
                m.d.sync += [lane.eq(0), row.eq(row + 1)]
            with m.Else():
                m.d.sync += [lane.eq(lane + 1), row.eq(row - self.nm1)]
        with m.Else():
            m.d.sync += [i.eq(i + 1), row.eq(row + 1)]

    def reload(self):
        self.m.d.sync += [s.eq(s0) for s, s0 in zip((self.j, self.i, self.lane, self.row),
                                                   self.start, strict=True)]

    def _values(self):
        """Values of WRITE_X and WRITE_WEIGHTS, little-endian, vbytes each, and the registers
        of the two-pass commands."""
        m, f, br = self.m, self.f, self.core.br
        XB, WB, XW, WW = f.x_bytes, f.weight_bytes, f.x_width, f.w_width
        VMAX = max(XB, WB)
        self.val = val = Signal(8 * VMAX, name="val")
        self.full = full = Signal(8 * VMAX, name="full")
        self.bi = bi = Signal(range(VMAX + 1), name="bi")
        self.vbytes = Signal(range(VMAX + 1), name="vbytes")
        m.d.comb += full.eq(val)
        with m.Switch(bi):
            for k in range(VMAX):
                with m.Case(k):
                    m.d.comb += full[8 * k:8 * k + 8].eq(br.data)
                    if k == 0 and VMAX > 1:
                        m.d.comb += full[8:].eq(0)
        # The values' range checks look at ``val`` (the whole value, registered at its last
        # byte) a clock after the value ended (``vchk``): the buffer's read data then ends in
        # flip-flops, not in ``bad``'s enable (the ULX3S board's critical path). The last
        # value's check still lands in ``bad`` before ``VALUES_CHECK`` reads it (the reader
        # leaves ``VALUES`` a clock after the last byte at the earliest).
        self.x_bad = val[XW:8 * XB].any() if 8 * XB > XW else Const(0)
        wtop = val[WW - 1:8 * WB]
        self.w_bad = ~(wtop.all() | ~wtop.any()) if 8 * WB > WW else Const(0)
        self.vchk = Signal(name="vchk")
        m.d.sync += self.vchk.eq(0)
        self.n_idx = Signal(23, name="n_idx")  # input index of WRITE_X: start < 2**22
        self.start_hi = Signal(name="start_hi")  # (else start_hi)
        self.bad = Signal(name="bad")
        self.pass2 = Signal(name="pass2")
        self.len_bad_r, self.range_bad_r = Signal(name="len_bad_r"), Signal(name="range_bad_r")
        self.left = Signal(16, name="left")  # READ_WEIGHTS: weights still to walk or send
        # left == 0 as a register, set beside every write of left: the 16-bit compare fed
        # the walk's clock enables (the UP5K network board's critical path, 31.9 MHz).
        self.left_z = Signal(name="left_z", init=1)
        self.wait = Signal(3, name="wait")
        self.rweight = Signal(8 * WB, name="rweight")

    def _records(self):
        """STEP frames: one per kept record of net.s_stream; ``rec_byte`` is byte ``bidx`` of
        the current record's frame."""
        m, f, shapes = self.m, self.f, self.f.shapes
        NMAX, VB, Vw = max(s.neurons for s in shapes), f.value_bytes, shapes[0].v_width
        rec = self.net.s_stream.payload
        self.flags = flags = Signal(3, name="flags")
        self.in_frame = Signal(name="in_frame")
        self.bidx = bidx = Signal(range(6 + (NMAX + 7) // 8 + NMAX * VB), name="bidx")
        self.last_b = Signal.like(bidx, name="last_b")
        self.net_done = Signal(name="net_done")
        self.rec_byte = rec_byte = Signal(8, name="rec_byte")
        # The byte multiplexer in two pipeline stages, so that neither ends in FrameTx's hold
        # register nor is a wide mux in one clock (the ULX3S board's critical path: 7 logic
        # levels from ``bidx``, 76.9-80 MHz with one stage): stage 1 registers the byte at
        # ``bidx``'s low 3 bits of every group of 8 (``rec_grp``) and the high bits, stage 2
        # the group's byte (``rec_byte``). ``rec_fresh`` says both stages hold the current
        # ``bidx`` and record: it drops for two clocks whenever ``bidx`` moves (``rec_moved``,
        # a byte taken or a frame started); the record itself changes only between frames.
        tabs = []
        for n, s in enumerate(shapes):
            N = s.neurons
            tab = ([Const(n, 8)] + le_bytes(rec.step, 4)
                   + le_bytes(rec.spikes[:N], f.spike_bytes(n)))
            if f.membrane:
                for k in range(N):
                    v = rec.v[k]
                    tab += le_bytes(Cat(v, *([v[-1]] * (8 * VB - Vw))), VB)
            tab += [Const(0, 8)] * ((1 << max(3, ceil_log2(len(tab)))) - len(tab))
            tabs.append(tab)
        G = max(len(t) for t in tabs) // 8
        grp = [Signal(8, name=f"rec_grp{g}") for g in range(G)]
        # bidx's low 3 bits, one copy per group (set and counted beside bidx, :meth:`bidx_set`,
        # :meth:`bidx_next`): one register fed every group's first stage (the ULX3S board's
        # critical path at 100 MHz, its fan-out over the record's bytes mostly routing).
        self.bidx_lo = [Signal(3, name=f"rec_lo{g}") for g in range(G)]
        for n, tab in enumerate(tabs):
            with m.If(rec.layer == n):
                m.d.sync += [grp[g].eq(Array(tab[8 * g:8 * g + 8])[self.bidx_lo[g]]
                                       if 8 * g < len(tab) else 0) for g in range(G)]
        if G > 1:
            hi_r = Signal(len(bidx) - 3, name="rec_hi")
            m.d.sync += [hi_r.eq(bidx[3:]), rec_byte.eq(Array(grp)[hi_r])]
        else:
            m.d.sync += rec_byte.eq(grp[0])
        self.rec_moved = Signal(name="rec_moved")
        self.rec_fresh = Signal(name="rec_fresh")
        fresh1 = Signal(name="rec_fresh1")
        m.d.sync += [fresh1.eq(~self.rec_moved), self.rec_fresh.eq(fresh1 & ~self.rec_moved)]
        # What the record's layer decides, registered (the record's layer register fed the
        # frame encoder's start and length through them, a ULX3S path at 100 MHz): a clock
        # late after a new record, so the executor takes a record only from the clock after
        # it became valid (``rec_seen``).
        L = f.layers
        self.frame_len = frame_len = Signal(24, name="frame_len")
        self.last_sel = last_sel = Signal.like(bidx, name="last_sel")
        self.rec_last = Signal(name="rec_last")  # the record is the last layer's
        self.keep = Signal(name="keep")  # the record is sent
        m.d.sync += [self.rec_last.eq(rec.layer == L - 1),
                     self.keep.eq((flags[2] | (rec.layer == L - 1)) & (flags[0] | flags[1]))]
        with m.Switch(rec.layer):
            for n, _s in enumerate(shapes):
                with m.Case(n):
                    spk, mem = f.step_length(n, False), f.step_length(n, True) if f.membrane \
                        else f.step_length(n, False)
                    m.d.sync += [frame_len.eq(Mux(flags[1], mem, spk)),
                                 last_sel.eq(Mux(flags[1], mem - 1, spk - 1))]

    def bidx_set(self, value: int = 0):
        """``bidx`` and its low bits' copies to ``value``."""
        self.m.d.sync += [self.bidx.eq(value)] + [lo.eq(value & 7) for lo in self.bidx_lo]

    def bidx_next(self):
        """``bidx`` and its low bits' copies to the next byte (each copy counts itself)."""
        self.m.d.sync += [self.bidx.eq(self.bidx + 1)] + [lo.eq(lo + 1) for lo in self.bidx_lo]

    def _init_words(self):
        """Defaults of the reset's parameter writes."""
        m, shapes = self.m, self.f.shapes
        self.init_layer = Signal(range(max(2, self.f.layers)), name="init_layer")
        self.init_group = Signal(range(max(2, max(s.groups for s in shapes))), name="init_group")
        self.init_last_g = Signal(name="init_last_g")
        self.init_word = Signal(self.f.param_width, name="init_word")
        m.d.comb += self.init_last_g.eq(0)
        with m.Switch(self.init_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += [self.init_word.eq(default_param_word(s)),
                                 self.init_last_g.eq(self.init_group == s.groups - 1)]

    # The executor's states --------------------------------------------------------------------

    def _fsm(self):
        m, core, f = self.m, self.core, self.f
        length, cmd = core.length, core.cmd
        with m.FSM(name="exec"):
            self._init_states()
            core.receive_states()
            core.decode_state([
                (NetCmd.VERSION, length == 0, []),
                (NetCmd.STATUS, length == 0, []),
                (NetCmd.CLEAR, length == 0, []),
                (NetCmd.SET_PARAMS, length == 5 + f.param_bytes, []),
                (NetCmd.WRITE_X, length >= 4, []),
                (NetCmd.WRITE_WEIGHTS, length >= 9, []),
                (NetCmd.READ_WEIGHTS, length == 11, []),
                (NetCmd.RUN, length == 5, []),
            ], extra=[self.vbytes.eq(Mux(cmd == NetCmd.WRITE_X, f.x_bytes, f.weight_bytes))])
            core.load_state(self.NL, self.loading)
            with m.State("VALIDATE"):
                m.d.comb += core.busy.eq(1)
                m.d.sync += self._validate
                m.next = "DISPATCH"
            pw_we, pw_layer, pw_group, pw_data = self.pw
            core.dispatch_state({
                NetCmd.VERSION: core.reply_version,
                NetCmd.STATUS: core.reply_status,
                NetCmd.CLEAR: self._clear,
                NetCmd.SET_PARAMS: lambda: core.reply_if(self.params_ok_r, [
                    pw_we.eq(1), pw_layer.eq(self.p_layer), pw_group.eq(self.p_group),
                    pw_data.eq(self.p_word[:f.param_width])]),
                NetCmd.WRITE_X: self._write_x,
                (NetCmd.WRITE_WEIGHTS, NetCmd.READ_WEIGHTS): self._weights,
                NetCmd.RUN: self._run,
            })
            core.wait_state("CLEAR_WAIT", self.net.done, "REPLY", [self.step.eq(0)])
            self._values_states()
            self._read_states()
            self._run_states()
            core.reply_states(NetCmd.ERR)
        self._record_bytes()

    def _init_states(self):
        """Every parameter set to its default, then clear the network."""
        m, core, L = self.m, self.core, self.f.layers
        pw_we, pw_layer, pw_group, pw_data = self.pw

        def body():
            m.d.sync += [pw_we.eq(1), pw_layer.eq(self.init_layer), pw_group.eq(self.init_group),
                         pw_data.eq(self.init_word), self.init_group.eq(self.init_group + 1)]
            with m.If(self.init_last_g):
                m.d.sync += [self.init_group.eq(0), self.init_layer.eq(self.init_layer + 1)]
                with m.If(self.init_layer == L - 1):
                    m.next = "INIT_X" if self.net.x_memory else "INIT_CLEAR"

        core.init_states(body, clear=self.n_clear, done=self.net.done)
        if self.net.x_memory:
            with m.State("INIT_X"):
                # Inputs 0, one per clock (x_addr counts up from 0 after the reset).
                m.d.comb += core.busy.eq(1)
                m.d.sync += [self.x_we.eq(1), self.x_data.eq(0),
                             self.x_addr.eq(Mux(self.x_we, self.x_addr + 1, 0))]
                with m.If(self.x_we & (self.x_addr == self.f.inputs - 1)):
                    m.d.sync += self.x_we.eq(0)
                    m.next = "INIT_CLEAR"

    def _clear(self):
        self.m.d.sync += self.n_clear.eq(1)
        self.m.next = "CLEAR_WAIT"

    def _write_x(self):
        x_start = self.x_start
        self.m.d.sync += [self.n_idx.eq(x_start[:22]), self.start_hi.eq(x_start[22:].any()),
                          self.bad.eq(0), self.bi.eq(0), self.pass2.eq(0),
                          self.core.rd_idx.eq(4)]
        self.m.next = "VALUES"

    def _weights(self):
        """WRITE_WEIGHTS and READ_WEIGHTS: the walk starts at (neuron, input) of the header."""
        m, f = self.m, self.f
        NMAX, FMAX = max(s.neurons for s in f.shapes), max(f.fan_in)
        m.d.sync += [self.bad.eq(0), self.bi.eq(0), self.pass2.eq(0), self.core.rd_idx.eq(9),
                     self.left.eq(self.h_count), self.left_z.eq(self.h_count == 0),
                     self.wl.eq(self.h_layer)]
        nb = max(1, ceil_log2(NMAX))
        fb = max(1, ceil_log2(FMAX))
        j0, i0, lane0, row0 = self.start
        with m.Switch(self.h_layer):
            for n, s in enumerate(f.shapes):
                with m.Case(n):
                    lb = ceil_log2(s.lanes)
                    nt, it = self.h_neuron[:nb], self.h_input[:fb]
                    a0 = nt >> lb
                    fan = f.fan_in[n]
                    m.d.sync += [
                        self.nm1.eq(fan - 1), self.pm1.eq(s.lanes - 1), self.n_l.eq(s.neurons),
                        j0.eq(nt), i0.eq(it),
                        lane0.eq(nt[:lb] if lb else 0),
                        row0.eq(a0 * fan + it),
                        self.j.eq(nt), self.i.eq(it),
                        self.lane.eq(nt[:lb] if lb else 0),
                        self.row.eq(a0 * fan + it),
                    ]
        m.next = "WEIGHTS_SPLIT"

    def _run(self):
        m = self.m
        with m.If(self.flags_bad_r):
            self.core.fail(ErrorCode.RANGE)
        with m.Else():
            m.d.sync += [self.flags.eq(self.run_flags[:3]), self.steps_r.eq(self.run_steps),
                         self.in_frame.eq(0), self.net_done.eq(0)]
            m.next = "RUN_START"

    def _values_states(self):
        """WRITE_X and WRITE_WEIGHTS: two passes over the values, check then write."""
        m, core, f = self.m, self.core, self.f
        bi, full, cmd = self.bi, self.full, core.cmd
        with m.State("WEIGHTS_SPLIT"):
            m.d.comb += core.busy.eq(1)
            with m.If(cmd == NetCmd.READ_WEIGHTS):
                m.next = "READ_CHECK"
            with m.Else():
                m.next = "VALUES"
        with m.State("VALUES"):
            core.two_pass_reader(self.pass2, "VALUES_CHECK")
            value_done = core.rd_ok & (bi == self.vbytes - 1)
            with m.If(core.rd_ok):
                m.d.sync += [self.val.eq(full), bi.eq(Mux(bi == self.vbytes - 1, 0, bi + 1))]
            m.d.sync += self.vchk.eq(value_done)
            with m.If(self.vchk & Mux(cmd == NetCmd.WRITE_X, self.x_bad, self.w_bad)):
                m.d.sync += self.bad.eq(1)
            with m.If(value_done):
                with m.If(cmd == NetCmd.WRITE_X):
                    self._x_value()
                with m.Else():
                    self.advance()
                    with m.If(self.j == self.n_l):
                        m.d.sync += self.bad.eq(1)
                    with m.If(self.pass2):
                        ww_we, ww_layer, ww_addr, ww_lane, ww_data = self.ww
                        m.d.sync += [ww_we.eq(1), ww_layer.eq(self.wl), ww_addr.eq(self.row),
                                     ww_lane.eq(self.lane), ww_data.eq(full[:f.w_width])]
        with m.State("VALUES_CHECK"):
            m.d.comb += core.busy.eq(1)
            with m.If(cmd == NetCmd.WRITE_X):
                m.d.sync += self.range_bad_r.eq(self.bad | self.start_hi
                                                | (self.n_idx > f.inputs))
            with m.Else():
                m.d.sync += self.range_bad_r.eq(self.bad | ~self.start_ok_r)
            m.d.sync += self.len_bad_r.eq(bi != 0)
            m.next = "VALUES_DECIDE"
        core.decide_state("VALUES_DECIDE", len_bad=self.len_bad_r, range_bad=self.range_bad_r,
                          stmts=[self.pass2.eq(1),
                                 core.rd_idx.eq(Mux(cmd == NetCmd.WRITE_X, 4, 9)),
                                 self.n_idx.eq(self.x_start[:22])],
                          next_state="VALUES", then=self.reload)

    def _x_value(self):
        """One value of WRITE_X: range check, and in the second pass the write."""
        m, f = self.m, self.f
        m.d.sync += self.n_idx.eq(self.n_idx + 1)
        with m.If(self.pass2):
            # Range-checked in the first pass: the low bits name the input.
            idx = self.n_idx[:max(1, ceil_log2(f.inputs))]
            if self.net.x_memory:
                m.d.sync += [self.x_pend.eq(1), self.x_idx.eq(idx)]
            else:
                with m.Switch(idx):
                    for k in range(f.inputs):
                        with m.Case(k):
                            m.d.sync += self.x_reg[k].eq(self.full[:f.x_width])

    def _read_states(self):
        """READ_WEIGHTS: walk the run (range check), then send the weights."""
        m, core, ftx = self.m, self.core, self.core.ftx
        WB, WW = self.f.weight_bytes, self.f.w_width
        left, bi = self.left, self.bi
        with m.State("READ_CHECK"):
            m.d.comb += core.busy.eq(1)
            with m.If(~self.left_z):
                m.d.sync += [left.eq(left - 1), self.left_z.eq(left == 1)]
                self.advance()
                with m.If(self.j == self.n_l):
                    m.d.sync += self.bad.eq(1)
            with m.Else():
                m.next = "READ_DECIDE"
        with m.State("READ_DECIDE"):
            m.d.comb += core.busy.eq(1)
            with m.If(self.bad | ~self.start_ok_r):
                core.fail(ErrorCode.RANGE)
            with m.Else():
                self.reload()
                m.d.sync += [left.eq(self.h_count), self.left_z.eq(self.h_count == 0)]
                m.next = "READ_START"
        with m.State("READ_START"):
            m.d.comb += core.busy.eq(1)
            with m.If(ftx.idle):
                m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(core.reply_cmd),
                             ftx.length.eq(self.h_count * WB)]
                m.d.sync += [self.wait.eq(0), bi.eq(0)]
                m.next = "READ_FETCH"
        with m.State("READ_FETCH"):
            # net.r_* follow the walk; the weight is in r_data four clocks later (wait == 4).
            m.d.comb += core.busy.eq(1)
            with m.If(self.left_z):
                m.next = "READ_END"
            with m.Else():
                m.d.sync += self.wait.eq(self.wait + 1)
                with m.If(self.wait == 4):
                    rw = self.net.r_data
                    m.d.sync += [self.rweight.eq(Cat(rw, *([rw[-1]] * (8 * WB - WW)))),
                                 self.wait.eq(0), bi.eq(0)]
                    m.next = "READ_SEND"
        with m.State("READ_SEND"):
            m.d.comb += [core.busy.eq(1), ftx.data.valid.eq(1),
                         ftx.data.payload.eq(Array(le_bytes(self.rweight, WB))[bi])]
            with m.If(ftx.data.ready):
                m.d.sync += bi.eq(bi + 1)
                with m.If(bi == WB - 1):
                    m.d.sync += [bi.eq(0), left.eq(left - 1), self.left_z.eq(left == 1)]
                    self.advance()
                    m.next = "READ_FETCH"
        core.wait_state("READ_END", ftx.idle, "IDLE", [core.last_error.eq(0)])

    def _run_states(self):
        """RUN: start the network, send the kept records as STEP frames."""
        m, core, ftx, net = self.m, self.core, self.core.ftx, self.net
        in_frame, bidx = self.in_frame, self.bidx
        self.take = Signal(name="take")
        m.d.sync += self.take.eq(0)
        self.rec_seen = Signal(name="rec_seen")
        m.d.sync += self.rec_seen.eq(net.s_stream.valid & ~self.take)
        m.d.comb += net.s_stream.ready.eq(self.take)
        # A STEP frame starts a clock after it is decided (``go``, high for one clock): the
        # decision (the executor's state, the record's valid, ``keep``, the encoder idle) fed
        # ``in_frame``, ``last_b`` and ``bidx`` and its copies in the same clock (the ULX3S
        # board's critical path at 100 MHz, 4 logic levels, 9.8 of 11.2 ns routing). Nothing
        # else starts the encoder or takes the record in between, so both still hold.
        go = Signal(name="go")
        m.d.sync += go.eq(0)
        # ``at_last``: bidx == last_b, registered. It is current whenever ``rec_fresh`` is
        # high (two clocks after ``bidx`` or ``last_b`` moved, both beside ``rec_moved``).
        self.at_last = Signal(name="at_last")
        m.d.sync += self.at_last.eq(bidx == self.last_b)
        with m.State("RUN_START"):
            m.d.comb += core.busy.eq(1)
            m.d.sync += self.n_start.eq(1)
            m.next = "RUN"
        with m.State("RUN"):
            m.d.comb += core.busy.eq(1)
            with m.If(net.done):
                m.d.sync += self.net_done.eq(1)
            # s_stream.ready from a register (``take``, high for one clock): the decision fed
            # the network's record-valid and step logic in the same clock (a path of the
            # ULX3S board at 100 MHz). The record is still valid in the clock ``take`` is
            # high; ``valid`` masks it there, so it is taken once. ``rec_seen``: the record
            # was valid in the clock before, so ``keep``, ``frame_len`` ... are its own.
            take = self.take
            valid = net.s_stream.valid & self.rec_seen & ~take
            with m.If(take & self.rec_last):
                m.d.sync += self.step.eq(self.step + 1)
            with m.If(go):
                m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(NetCmd.STEP),
                             ftx.length.eq(self.frame_len)]
                m.d.comb += self.rec_moved.eq(1)
                m.d.sync += [in_frame.eq(1), self.last_b.eq(self.last_sel)]
            with m.Elif(~in_frame):
                with m.If(valid):
                    with m.If(self.keep):
                        with m.If(ftx.idle):
                            m.d.sync += go.eq(1)
                    with m.Else():
                        m.d.sync += take.eq(1)
                with m.Elif(self.net_done & ftx.idle):
                    m.d.sync += [core.rsel.eq(R_DONE), core.ridx.eq(0),
                                 core.reply_cmd.eq(NetCmd.RUN_DONE)]
                    m.next = "REPLY"

    def _record_bytes(self):
        """The bytes of a STEP frame, outside the executor's state machine (``in_frame`` is
        high in RUN only), so the state's decode is not in ``bidx``'s clock enable. ``bidx``
        (and its copies) goes back to 0 with the frame's last byte: it is 0 whenever no frame
        is being sent (from the reset on), so a frame's start does not touch it."""
        m, ftx, in_frame = self.m, self.core.ftx, self.in_frame
        with m.If(in_frame):
            m.d.comb += [ftx.data.valid.eq(self.rec_fresh), ftx.data.payload.eq(self.rec_byte)]
            with m.If(self.rec_fresh & ftx.data.ready):
                m.d.comb += self.rec_moved.eq(1)
                with m.If(self.at_last):
                    m.d.sync += [self.take.eq(1), in_frame.eq(0)]
                    self.bidx_set(0)
                with m.Else():
                    self.bidx_next()
