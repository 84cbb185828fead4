"""Gateware of a network board's host link: the executor of :mod:`lifgate.boards.netproto`.

The UART, the frame receiver and transmitter are :mod:`lifgate.boards.link`'s (:class:`FrameRx`,
:class:`FrameTx`); the command executor here drives a :class:`lifgate.hdl.network.Network`
instead of a ``LIFArray``. Its replies must equal
:class:`lifgate.boards.netproto.NetworkBoardModel`'s byte for byte.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.boards.link import FrameRx, FrameTx, _le_bytes, receive_states, reply_states
from lifgate.boards.netproto import (
    NetCmd,
    NetFeatures,
    default_param_word,
    net_version_payload,
)
from lifgate.boards.protocol import ErrorCode
from lifgate.boards.uart import UARTRx, UARTTx

from lifgate.config import ConfigError, LeakMode, param_layout

__all__ = ["NetworkLink"]


def _word_ok(m: Module, shape, word: Value, width: int) -> Value:
    """:func:`lifgate.boards.protocol.param_word_valid` of ``word`` (``8 * param_bytes`` bits)
    for the array of ``shape``, in gateware."""
    offs, o = {}, 0
    for name, w in param_layout(shape):
        offs[name] = (o, w)
        o += w

    def fld(name):
        off, w = offs[name]
        return word[off:off + w]

    W = shape.v_width
    mode, leak = fld("leak_mode"), fld("leak")
    ok = Signal()
    m.d.comb += ok.eq(0)
    for lm in shape.leak_modes:
        if lm == LeakMode.SHIFT:
            good = leak <= W
        elif lm == LeakMode.MULT:
            # Constant when the field is F bits wide (F >= W): every value is legal.
            good = (leak <= (1 << shape.decay_frac) - 1
                    if shape.leak_width > shape.decay_frac else Const(1))
        else:
            sleak = leak.as_signed()
            good = ((sleak >= -(1 << (W - 1))) & (sleak <= (1 << (W - 1)) - 1)
                    if shape.leak_width > W else Const(1))
        with m.If(mode == int(lm)):
            m.d.comb += ok.eq(good)
    pad_ok = (word[width:] == 0) if len(word) > width else Const(1)
    return ok & pad_ok


class NetworkLink(wiring.Component):
    """UART, frame decoder, command executor and the layered network of a network board.

    Implements :mod:`lifgate.boards.netproto`; :class:`NetworkBoardModel
    <lifgate.boards.netproto.NetworkBoardModel>` is its reference. Weights go through the
    network's write port (``w_we``, ...) and come back through its read-back port
    (``r_layer``, ...); the inputs ``x`` are a register here.

    Parameters
    ----------
    features : NetFeatures
        Layer shapes, widths, membrane readback, frame buffer size.
    divisor : int
        UART clocks per bit.
    timeout : int
        Clocks of line silence that end a partial frame (``ERR_TIMEOUT``) or an overrun.

    Members
    -------
    rx : ``In(1)``
        UART line from the host (asynchronous).
    tx : ``Out(1)``
        UART line to the host.
    status : ``Out(4)``
        Bit 0: network busy; bit 1: the last reply was an error; bit 2: a byte is being
        received or sent; bit 3: 0.
    """

    def __init__(self, features: NetFeatures, *, divisor: int, timeout: int):
        if not isinstance(features, NetFeatures):
            raise ConfigError(f"parameter 'features' must be a NetFeatures, not {features!r}")
        self.features = features
        self.divisor = divisor
        self.timeout = timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(4),
        })

    def elaborate(self, platform):
        from lifgate.hdl.network import Network

        m = Module()
        f = self.features
        L = f.layers
        shapes = f.shapes
        fan = f.fan_in
        PB, WB, XB, VB = f.param_bytes, f.weight_bytes, f.x_bytes, f.value_bytes
        PW, WW, XW = f.param_width, f.w_width, f.x_width
        Vw = shapes[0].v_width
        NMAX = max(s.neurons for s in shapes)
        FMAX = max(fan)
        ROWS = max(s.depth * n for s, n in zip(shapes, fan, strict=True))
        GMAX = max(s.groups for s in shapes)

        m.submodules.uart_rx = urx = UARTRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self.divisor)
        m.submodules.frx = frx = FrameRx(max_payload=f.max_payload, timeout=self.timeout)
        m.submodules.ftx = ftx = FrameTx()
        m.submodules.net = net = Network(shapes, inputs=f.inputs, w_width=WW, x_width=XW,
                                         membrane=f.membrane)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, frx.byte)
        wiring.connect(m, ftx.tx, utx.stream)

        # Payload buffer and the byte reader over it: rd_idx is the address presented, rd_ok
        # says br.data holds the byte at rd_idx - 1.
        m.submodules.buf = buf = Memory(shape=8, depth=f.max_payload, init=[])
        bw, br = buf.write_port(), buf.read_port()
        m.d.comb += [bw.addr.eq(frx.buf_addr), bw.data.eq(frx.buf_data), bw.en.eq(frx.buf_we)]
        rd_idx = Signal(range(f.max_payload + 1))
        rd_ok, rd_run = Signal(), Signal()
        m.d.comb += br.addr.eq(rd_idx)
        m.d.sync += rd_ok.eq(0)
        with m.If(rd_run):
            m.d.sync += [rd_idx.eq(rd_idx + 1), rd_ok.eq(1)]
        # The header: LOAD reads the first NL payload bytes of every command into acc (bytes
        # past a shorter payload are stale and unused), so every field has a fixed place;
        # only LOAD shifts acc, so it holds them until the next frame.
        NL = max(5 + PB, 11)  # <= max_payload (NetFeatures checks both)
        acc = Signal(8 * NL)
        loading = Signal()
        with m.If(rd_ok & loading):
            m.d.sync += acc.eq(Cat(acc[8:], br.data))

        cmd = Signal(8)
        length = Signal(range(f.max_payload + 1))
        err_code, err_cmd = Signal(3), Signal(8)
        last_error = Signal()

        # Network inputs, step counter (steps since the clear, as the network's own).
        x_reg = Signal(data.ArrayLayout(XW, f.inputs))
        m.d.comb += net.x.eq(x_reg)
        step = Signal(shapes[0].step_width)

        # Registered strobes and write ports of the network.
        n_clear, n_start = Signal(), Signal()
        pw_we = Signal()
        pw_layer = Signal.like(net.param_layer)
        pw_group = Signal.like(net.param_group)
        pw_data = Signal(PW)
        ww_we = Signal()
        ww_layer, ww_addr = Signal.like(net.w_layer), Signal.like(net.w_addr)
        ww_lane, ww_data = Signal.like(net.w_lane), Signal(WW)
        steps_r = Signal(32)
        m.d.sync += [n_clear.eq(0), n_start.eq(0), pw_we.eq(0), ww_we.eq(0)]
        m.d.comb += [
            net.clear.eq(n_clear), net.start.eq(n_start), net.steps.eq(steps_r),
            net.param_we.eq(pw_we), net.param_layer.eq(pw_layer),
            net.param_group.eq(pw_group), net.param_data.eq(pw_data),
            net.w_we.eq(ww_we), net.w_layer.eq(ww_layer), net.w_addr.eq(ww_addr),
            net.w_lane.eq(ww_lane), net.w_data.eq(ww_data),
        ]

        # Header fields ------------------------------------------------------------------------
        is_read = Signal()
        m.d.comb += is_read.eq(cmd == NetCmd.READ_WEIGHTS)
        p_layer, p_group, p_word = acc[0:8], acc[8:40], acc[40:40 + 8 * PB]
        h_layer, h_neuron, h_input, h_count = acc[0:8], acc[8:40], acc[40:72], acc[72:88]
        run_steps, run_flags = acc[0:32], acc[32:40]
        x_start = acc[0:32]

        params_ok = Signal()
        start_ok = Signal()
        m.d.comb += [params_ok.eq(0), start_ok.eq(0)]
        with m.Switch(p_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += params_ok.eq((p_group < s.groups) & _word_ok(m, s, p_word, PW))
        with m.Switch(h_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += start_ok.eq((h_neuron < s.neurons) & (h_input < fan[n]))
        flags_bad = run_flags[3:].any() | (Const(0) if f.membrane else run_flags[1])

        # Weight walk: position (neuron j, input i) and its memory place (row, lane) of the
        # layer wl; advance() moves to the next weight in row-major order.
        wl = Signal(range(max(2, L)))
        j = Signal(range(NMAX + 1))
        i = Signal(range(max(2, FMAX)))
        lane = Signal(range(max(2, max(s.lanes for s in shapes))))
        row = Signal(range(ROWS + 1))
        j0, i0, lane0, row0 = Signal.like(j), Signal.like(i), Signal.like(lane), Signal.like(row)
        nm1 = Signal.like(i)  # n_l - 1
        pm1 = Signal.like(lane)  # P_l - 1
        n_l = Signal(range(NMAX + 1))  # N_l

        def advance():
            with m.If(i == nm1):
                m.d.sync += [i.eq(0), j.eq(j + 1)]
                with m.If(lane == pm1):
                    m.d.sync += [lane.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += [lane.eq(lane + 1), row.eq(row - nm1)]
            with m.Else():
                m.d.sync += [i.eq(i + 1), row.eq(row + 1)]

        def reload():
            m.d.sync += [j.eq(j0), i.eq(i0), lane.eq(lane0), row.eq(row0)]

        m.d.comb += [net.r_layer.eq(wl), net.r_addr.eq(row), net.r_lane.eq(lane)]

        # Values of WRITE_X and WRITE_WEIGHTS, little-endian, vbytes each.
        VMAX = max(XB, WB)
        val = Signal(8 * VMAX)
        full = Signal(8 * VMAX)
        bi = Signal(range(VMAX + 1))
        vbytes = Signal(range(VMAX + 1))
        m.d.comb += full.eq(val)
        with m.Switch(bi):
            for k in range(VMAX):
                with m.Case(k):
                    m.d.comb += full[8 * k:8 * k + 8].eq(br.data)
                    if k == 0 and VMAX > 1:
                        m.d.comb += full[8:].eq(0)
        x_bad = full[XW:8 * XB].any() if 8 * XB > XW else Const(0)
        wtop = full[WW - 1:8 * WB]
        w_bad = ~(wtop.all() | ~wtop.any()) if 8 * WB > WW else Const(0)
        n_idx = Signal(23)  # input index of WRITE_X: start < 2**22 (else start_hi)
        start_hi = Signal()
        bad = Signal()
        pass2 = Signal()
        len_bad_r, range_bad_r = Signal(), Signal()
        params_ok_r, start_ok_r, flags_bad_r = Signal(), Signal(), Signal()
        left = Signal(16)  # READ_WEIGHTS: weights still to walk or send
        wait = Signal(3)
        rweight = Signal(8 * WB)

        # Replies --------------------------------------------------------------------------------
        version = [Const(b, 8) for b in net_version_payload(f)]
        status = _le_bytes(step, 4)
        errb = [Cat(err_code, Const(0, 5)), err_cmd]
        reply_len = {0: 0, 1: len(version), 2: 4, 3: 2, 4: 4}
        ridx = Signal(range(len(version) + 1))
        rsel = Signal(3)  # 0 none, 1 version, 2 status, 3 error, 4 run done
        reply_cmd = Signal(8)
        rbyte = Signal(8)
        with m.Switch(rsel):
            for sel, table in ((1, version), (2, status), (3, errb), (4, status)):
                with m.Case(sel):
                    size = 1 << ceil_log2(len(version) + 1)
                    m.d.comb += rbyte.eq(Array(table + [Const(0, 8)] * (size - len(table)))[ridx])

        # The decoder's busy input comes from registers only, as in HostLink.
        busy = Signal()
        busy_r, event_d = Signal(), Signal()
        m.d.sync += [busy_r.eq(busy), event_d.eq(frx.event)]
        m.d.comb += frx.busy.eq(busy_r | frx.event | event_d)

        # STEP frames: one per kept record of net.s_stream.
        rec = net.s_stream.payload
        flags = Signal(3)
        in_frame = Signal()
        bidx = Signal(range(6 + (NMAX + 7) // 8 + NMAX * VB))
        last_b = Signal.like(bidx)
        net_done = Signal()
        rec_byte = Signal(8)
        for n, s in enumerate(shapes):
            N = s.neurons
            tab = ([Const(n, 8)] + _le_bytes(rec.step, 4)
                   + _le_bytes(rec.spikes[:N], f.spike_bytes(n)))
            if f.membrane:
                for k in range(N):
                    v = rec.v[k]
                    tab += _le_bytes(Cat(v, *([v[-1]] * (8 * VB - Vw))), VB)
            tab += [Const(0, 8)] * ((1 << ceil_log2(len(tab))) - len(tab))
            with m.If(rec.layer == n):
                m.d.comb += rec_byte.eq(Array(tab)[bidx])
        frame_len = Signal(24)
        m.d.comb += frame_len.eq(0)
        last_sel = Signal.like(bidx)
        with m.Switch(rec.layer):
            for n, _s in enumerate(shapes):
                with m.Case(n):
                    spk, mem = f.step_length(n, False), f.step_length(n, True) if f.membrane \
                        else f.step_length(n, False)
                    m.d.comb += [frame_len.eq(Mux(flags[1], mem, spk)),
                                 last_sel.eq(Mux(flags[1], mem - 1, spk - 1))]

        # Defaults of the reset's parameter writes.
        init_layer = Signal(range(max(2, L)))
        init_group = Signal(range(max(2, GMAX)))
        init_last_g = Signal()
        init_word = Signal(PW)
        m.d.comb += init_last_g.eq(0)
        with m.Switch(init_layer):
            for n, s in enumerate(shapes):
                with m.Case(n):
                    m.d.comb += [init_word.eq(default_param_word(s)),
                                 init_last_g.eq(init_group == s.groups - 1)]

        with m.FSM(name="exec"):
            with m.State("INIT"):
                # Every parameter set to its default, then clear the network.
                m.d.comb += busy.eq(1)
                m.d.sync += [pw_we.eq(1), pw_layer.eq(init_layer), pw_group.eq(init_group),
                             pw_data.eq(init_word), init_group.eq(init_group + 1)]
                with m.If(init_last_g):
                    m.d.sync += [init_group.eq(0), init_layer.eq(init_layer + 1)]
                    with m.If(init_layer == L - 1):
                        m.next = "INIT_CLEAR"
            with m.State("INIT_CLEAR"):
                m.d.comb += busy.eq(1)
                m.d.sync += n_clear.eq(1)
                m.next = "CLEAR_WAIT_INIT"
            with m.State("CLEAR_WAIT_INIT"):
                m.d.comb += busy.eq(1)
                with m.If(net.done):
                    m.next = "IDLE"
            known_r, lenok_r = Signal(), Signal()
            receive_states(m, frx=frx, busy=busy, cmd=cmd, length=length, err_cmd=err_cmd,
                           err_code=err_code, ridx=ridx, rd_idx=rd_idx, known_r=known_r,
                           lenok_r=lenok_r)
            with m.State("DECODE"):
                m.d.comb += busy.eq(1)
                m.d.sync += [known_r.eq(0), lenok_r.eq(0)]
                with m.Switch(cmd):
                    for code, ok in (
                        (NetCmd.VERSION, length == 0),
                        (NetCmd.STATUS, length == 0),
                        (NetCmd.CLEAR, length == 0),
                        (NetCmd.SET_PARAMS, length == 5 + PB),
                        (NetCmd.WRITE_X, length >= 4),
                        (NetCmd.WRITE_WEIGHTS, length >= 9),
                        (NetCmd.READ_WEIGHTS, length == 11),
                        (NetCmd.RUN, length == 5),
                    ):
                        with m.Case(code):
                            m.d.sync += [known_r.eq(1), lenok_r.eq(ok)]
                m.d.sync += vbytes.eq(Mux(cmd == NetCmd.WRITE_X, XB, WB))
                m.next = "CHECK"
            with m.State("LOAD"):
                m.d.comb += [busy.eq(1), rd_run.eq(rd_idx < NL), loading.eq(1)]
                with m.If((rd_idx == NL) & ~rd_ok):
                    m.next = "VALIDATE"
            with m.State("VALIDATE"):
                m.d.comb += busy.eq(1)
                m.d.sync += [params_ok_r.eq(params_ok & (p_layer < L)),
                             start_ok_r.eq(start_ok & (h_layer < L)),
                             flags_bad_r.eq(flags_bad)]
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.comb += busy.eq(1)
                m.d.sync += [rsel.eq(0), ridx.eq(0), reply_cmd.eq(cmd | 0x80)]
                with m.Switch(cmd):
                    with m.Case(NetCmd.VERSION):
                        m.d.sync += rsel.eq(1)
                        m.next = "REPLY"
                    with m.Case(NetCmd.STATUS):
                        m.d.sync += rsel.eq(2)
                        m.next = "REPLY"
                    with m.Case(NetCmd.CLEAR):
                        m.d.sync += n_clear.eq(1)
                        m.next = "CLEAR_WAIT"
                    with m.Case(NetCmd.SET_PARAMS):
                        with m.If(params_ok_r):
                            m.d.sync += [pw_we.eq(1), pw_layer.eq(p_layer),
                                         pw_group.eq(p_group), pw_data.eq(p_word[:PW])]
                            m.next = "REPLY"
                        with m.Else():
                            m.d.sync += err_code.eq(ErrorCode.RANGE)
                            m.next = "ERROR"
                    with m.Case(NetCmd.WRITE_X):
                        m.d.sync += [n_idx.eq(x_start[:22]), start_hi.eq(x_start[22:].any()),
                                     bad.eq(0), bi.eq(0), pass2.eq(0), rd_idx.eq(4)]
                        m.next = "VALUES"
                    with m.Case(NetCmd.WRITE_WEIGHTS, NetCmd.READ_WEIGHTS):
                        m.d.sync += [bad.eq(0), bi.eq(0), pass2.eq(0), rd_idx.eq(9),
                                     left.eq(h_count), wl.eq(h_layer)]
                        nb = max(1, ceil_log2(NMAX))
                        fb = max(1, ceil_log2(FMAX))
                        with m.Switch(h_layer):
                            for n, s in enumerate(shapes):
                                with m.Case(n):
                                    lb = ceil_log2(s.lanes)
                                    nt, it = h_neuron[:nb], h_input[:fb]
                                    a0 = nt >> lb
                                    m.d.sync += [
                                        nm1.eq(fan[n] - 1), pm1.eq(s.lanes - 1),
                                        n_l.eq(s.neurons),
                                        j0.eq(nt), i0.eq(it),
                                        lane0.eq(nt[:lb] if lb else 0),
                                        row0.eq(a0 * fan[n] + it),
                                        j.eq(nt), i.eq(it),
                                        lane.eq(nt[:lb] if lb else 0),
                                        row.eq(a0 * fan[n] + it),
                                    ]
                        m.next = "WEIGHTS_SPLIT"
                    with m.Case(NetCmd.RUN):
                        with m.If(flags_bad_r):
                            m.d.sync += err_code.eq(ErrorCode.RANGE)
                            m.next = "ERROR"
                        with m.Else():
                            m.d.sync += [flags.eq(run_flags[:3]), steps_r.eq(run_steps),
                                         in_frame.eq(0), bidx.eq(0), net_done.eq(0)]
                            m.next = "RUN_START"
            with m.State("CLEAR_WAIT"):
                m.d.comb += busy.eq(1)
                with m.If(net.done):
                    m.d.sync += step.eq(0)
                    m.next = "REPLY"

            # WRITE_X and WRITE_WEIGHTS: two passes over the values, check then write.
            with m.State("WEIGHTS_SPLIT"):
                m.d.comb += busy.eq(1)
                with m.If(is_read):
                    m.next = "READ_CHECK"
                with m.Else():
                    m.next = "VALUES"
            with m.State("VALUES"):
                m.d.comb += [busy.eq(1), rd_run.eq(rd_idx < length)]
                value_done = rd_ok & (bi == vbytes - 1)
                with m.If(rd_ok):
                    m.d.sync += [val.eq(full), bi.eq(Mux(bi == vbytes - 1, 0, bi + 1))]
                with m.If(value_done):
                    with m.If(cmd == NetCmd.WRITE_X):
                        m.d.sync += n_idx.eq(n_idx + 1)
                        with m.If(x_bad):
                            m.d.sync += bad.eq(1)
                        with m.If(pass2):
                            # Range-checked in the first pass: the low bits name the input.
                            with m.Switch(n_idx[:max(1, ceil_log2(f.inputs))]):
                                for k in range(f.inputs):
                                    with m.Case(k):
                                        m.d.sync += x_reg[k].eq(full[:XW])
                    with m.Else():
                        advance()
                        with m.If(w_bad | (j == n_l)):
                            m.d.sync += bad.eq(1)
                        with m.If(pass2):
                            m.d.sync += [ww_we.eq(1), ww_layer.eq(wl), ww_addr.eq(row),
                                         ww_lane.eq(lane), ww_data.eq(full[:WW])]
                with m.If((rd_idx == length) & ~rd_ok):
                    with m.If(pass2):
                        m.next = "REPLY"
                    with m.Else():
                        m.next = "VALUES_CHECK"
            with m.State("VALUES_CHECK"):
                m.d.comb += busy.eq(1)
                with m.If(cmd == NetCmd.WRITE_X):
                    m.d.sync += range_bad_r.eq(bad | start_hi | (n_idx > f.inputs))
                with m.Else():
                    m.d.sync += range_bad_r.eq(bad | ~start_ok_r)
                m.d.sync += len_bad_r.eq(bi != 0)
                m.next = "VALUES_DECIDE"
            with m.State("VALUES_DECIDE"):
                m.d.comb += busy.eq(1)
                with m.If(len_bad_r):
                    m.d.sync += err_code.eq(ErrorCode.LENGTH)
                    m.next = "ERROR"
                with m.Elif(range_bad_r):
                    m.d.sync += err_code.eq(ErrorCode.RANGE)
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [pass2.eq(1), rd_idx.eq(Mux(cmd == NetCmd.WRITE_X, 4, 9)),
                                 n_idx.eq(x_start[:22])]
                    reload()
                    m.next = "VALUES"

            # READ_WEIGHTS: walk the run (range check), then send the weights.
            with m.State("READ_CHECK"):
                m.d.comb += busy.eq(1)
                with m.If(left != 0):
                    m.d.sync += left.eq(left - 1)
                    advance()
                    with m.If(j == n_l):
                        m.d.sync += bad.eq(1)
                with m.Else():
                    m.next = "READ_DECIDE"
            with m.State("READ_DECIDE"):
                m.d.comb += busy.eq(1)
                with m.If(bad | ~start_ok_r):
                    m.d.sync += err_code.eq(ErrorCode.RANGE)
                    m.next = "ERROR"
                with m.Else():
                    reload()
                    m.d.sync += left.eq(h_count)
                    m.next = "READ_START"
            with m.State("READ_START"):
                m.d.comb += busy.eq(1)
                with m.If(ftx.idle):
                    m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(reply_cmd),
                                 ftx.length.eq(h_count * WB)]
                    m.d.sync += [wait.eq(0), bi.eq(0)]
                    m.next = "READ_FETCH"
            with m.State("READ_FETCH"):
                # net.r_* follow the walk; the weight is in r_data three clocks later.
                m.d.comb += busy.eq(1)
                with m.If(left == 0):
                    m.next = "READ_END"
                with m.Else():
                    m.d.sync += wait.eq(wait + 1)
                    with m.If(wait == 4):
                        rw = net.r_data
                        m.d.sync += [rweight.eq(Cat(rw, *([rw[-1]] * (8 * WB - WW)))),
                                     wait.eq(0), bi.eq(0)]
                        m.next = "READ_SEND"
            with m.State("READ_SEND"):
                m.d.comb += [busy.eq(1), ftx.data.valid.eq(1),
                             ftx.data.payload.eq(Array(_le_bytes(rweight, WB))[bi])]
                with m.If(ftx.data.ready):
                    m.d.sync += bi.eq(bi + 1)
                    with m.If(bi == WB - 1):
                        m.d.sync += [bi.eq(0), left.eq(left - 1)]
                        advance()
                        m.next = "READ_FETCH"
            with m.State("READ_END"):
                m.d.comb += busy.eq(1)
                with m.If(ftx.idle):
                    m.d.sync += last_error.eq(0)
                    m.next = "IDLE"

            # RUN: start the network, send the kept records as STEP frames.
            with m.State("RUN_START"):
                m.d.comb += busy.eq(1)
                m.d.sync += n_start.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                with m.If(net.done):
                    m.d.sync += net_done.eq(1)
                keep = (flags[2] | (rec.layer == L - 1)) & (flags[0] | flags[1])
                take = Signal()
                m.d.comb += net.s_stream.ready.eq(take)
                with m.If(net.s_stream.valid & take & (rec.layer == L - 1)):
                    m.d.sync += step.eq(step + 1)
                with m.If(~in_frame):
                    with m.If(net.s_stream.valid):
                        with m.If(keep):
                            with m.If(ftx.idle):
                                m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(NetCmd.STEP),
                                             ftx.length.eq(frame_len)]
                                m.d.sync += [in_frame.eq(1), bidx.eq(0), last_b.eq(last_sel)]
                        with m.Else():
                            m.d.comb += take.eq(1)
                    with m.Elif(net_done & ftx.idle):
                        m.d.sync += [rsel.eq(4), ridx.eq(0), reply_cmd.eq(NetCmd.RUN_DONE)]
                        m.next = "REPLY"
                with m.Else():
                    m.d.comb += [ftx.data.valid.eq(1), ftx.data.payload.eq(rec_byte)]
                    with m.If(ftx.data.ready):
                        m.d.sync += bidx.eq(bidx + 1)
                        with m.If(bidx == last_b):
                            m.d.comb += take.eq(1)
                            m.d.sync += in_frame.eq(0)

            reply_states(m, ftx=ftx, busy=busy, rsel=rsel, ridx=ridx, rbyte=rbyte,
                         reply_cmd=reply_cmd, reply_len=reply_len, last_error=last_error,
                         err_reply=NetCmd.ERR)

        activity = Signal()
        m.d.comb += activity.eq(~utx.idle | urx.stream.valid)
        m.d.comb += self.status.eq(Cat(net.busy, last_error, activity, Const(0, 1)))
        return m
