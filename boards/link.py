"""Gateware of the host link: frame decoder and encoder, command executor around ``LIFArray``.

The behaviour is the one of the pure-Python model in :mod:`lifgate.boards.protocol`
(:class:`~lifgate.boards.protocol.FrameDecoder` and :class:`~lifgate.boards.protocol.BoardModel`);
the tests compare the two byte for byte.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.boards.protocol import (
    SYNC,
    Cmd,
    ErrorCode,
    Features,
    version_payload,
)
from lifgate.boards.uart import UARTRx, UARTTx

from lifgate.config import ConfigError, LeakMode, param_layout

__all__ = ["CurrentMemory", "FrameRx", "FrameTx", "HostLink", "SkidBuffer", "crc16_update",
           "receive_states", "reply_states"]

_POLY = 0x1021


def crc16_update(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT-FALSE of ``crc`` after one more byte, most significant bit first."""
    c = [crc[k] for k in range(16)]
    for i in range(8):
        fb = c[15] ^ byte[7 - i]
        c = [fb] + [c[k - 1] ^ fb if (_POLY >> k) & 1 else c[k - 1] for k in range(1, 16)]
    return Cat(*c)


class FrameRx(wiring.Component):
    """Frame decoder: :class:`lifgate.boards.protocol.FrameDecoder` in gateware.

    Received payload bytes are written to a buffer (the first ``max_payload`` of them, at their
    offset); the header and the verdict come out as an event.

    Parameters
    ----------
    max_payload : int
        Buffer size in bytes; longer frames end in an ``ERR_LENGTH`` event.
    timeout : int
        Clocks of silence after which a partial frame is dropped (``ERR_TIMEOUT``), and after
        which an overrun is reported.

    Members
    -------
    byte : ``In(stream.Signature(8, always_ready=True))``
        Received bytes, at least 3 clocks apart (as from a UART).
    busy : ``In(1)``
        The executor is busy: a byte that arrives now is an overrun; the decoder drops it and
        everything up to the next idle period, then reports ``ERR_OVERRUN`` once ``busy`` is low.
    buf_addr, buf_data, buf_we : ``Out``
        Write port of the payload buffer.
    event : ``Out(1)``
        One-clock pulse: a frame ended (``error`` low) or was rejected (``error`` high).
        ``error``, ``code``, ``cmd`` and ``length`` hold until the next event.
    """

    def __init__(self, *, max_payload: int, timeout: int):
        if not isinstance(timeout, int) or timeout < 2:
            raise TypeError(f"Timeout must be an integer of at least 2 clocks, not {timeout!r}")
        self.max_payload = max_payload
        self.timeout = timeout
        super().__init__({
            "byte": In(stream.Signature(8, always_ready=True)),
            "busy": In(1),
            "buf_addr": Out(range(max_payload)),
            "buf_data": Out(8),
            "buf_we": Out(1),
            "event": Out(1),
            "error": Out(1),
            "code": Out(3),
            "cmd": Out(8),
            "length": Out(24),
        })

    def elaborate(self, platform):
        m = Module()
        byte, got = self.byte.payload, self.byte.valid
        timer = Signal(range(self.timeout + 1))
        expired = Signal()
        m.d.comb += expired.eq(timer == self.timeout)
        with m.If(got):
            m.d.sync += timer.eq(0)
        with m.Elif(~expired):
            m.d.sync += timer.eq(timer + 1)

        crc = Signal(16)
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_update(crc, byte))
        cmd = Signal(8)
        have_cmd = Signal()
        length = Signal(24)
        hcnt = Signal(2)
        count = Signal(24)
        ccnt = Signal()
        m.d.comb += [
            self.buf_addr.eq(count[:ceil_log2(self.max_payload)]),
            self.buf_data.eq(byte),
        ]
        m.d.sync += self.event.eq(0)
        # Compares of the counters, registered: bytes arrive at least 3 clocks apart (a UART
        # byte takes 10 bit times), so they are up to date whenever a byte comes.
        last_payload, in_buf, too_long = Signal(), Signal(), Signal()
        m.d.sync += [
            last_payload.eq(count + 1 == length),
            in_buf.eq(count < self.max_payload),
            too_long.eq(length > self.max_payload),
        ]

        def emit(error, code=0, cmd_=None):
            m.d.sync += [
                self.event.eq(1),
                self.error.eq(error),
                self.code.eq(code),
                self.cmd.eq(cmd if cmd_ is None else cmd_),
                self.length.eq(length),
            ]

        with m.FSM(name="rx"):
            with m.State("HUNT"):
                with m.If(got):
                    with m.If(self.busy):
                        m.next = "DROP"
                    with m.Elif(byte == SYNC):
                        m.d.sync += [crc.eq(0xFFFF), hcnt.eq(0), have_cmd.eq(0), length.eq(0)]
                        m.next = "HDR"
            with m.State("HDR"):
                with m.If(got & self.busy):
                    m.next = "DROP"
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc_next), hcnt.eq(hcnt + 1), count.eq(0)]
                    with m.Switch(hcnt):
                        with m.Case(0):
                            m.d.sync += [cmd.eq(byte), have_cmd.eq(1)]
                        with m.Case(1):
                            m.d.sync += length[0:8].eq(byte)
                        with m.Case(2):
                            m.d.sync += length[8:16].eq(byte)
                        with m.Case(3):
                            m.d.sync += length[16:24].eq(byte)
                            with m.If(Cat(length[:16], byte) == 0):
                                m.d.sync += ccnt.eq(0)
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                with m.Elif(expired):
                    emit(1, ErrorCode.TIMEOUT, Mux(have_cmd, cmd, 0))
                    m.next = "HUNT"
            with m.State("PAYLOAD"):
                with m.If(got & self.busy):
                    m.next = "DROP"
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    m.d.comb += self.buf_we.eq(in_buf)
                    with m.If(last_payload):
                        m.d.sync += ccnt.eq(0)
                        m.next = "CRC"
                with m.Elif(expired):
                    emit(1, ErrorCode.TIMEOUT)
                    m.next = "HUNT"
            with m.State("CRC"):
                with m.If(got & self.busy):
                    m.next = "DROP"
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc_next), ccnt.eq(1)]
                    with m.If(ccnt):
                        with m.If(crc_next != 0):
                            emit(1, ErrorCode.CRC)
                        with m.Elif(too_long):
                            emit(1, ErrorCode.LENGTH)
                        with m.Else():
                            emit(0)
                        m.next = "HUNT"
                with m.Elif(expired):
                    emit(1, ErrorCode.TIMEOUT)
                    m.next = "HUNT"
            with m.State("DROP"):
                with m.If(~got & expired & ~self.busy):
                    emit(1, ErrorCode.OVERRUN, 0)
                    m.next = "HUNT"
        return m


class FrameTx(wiring.Component):
    """Frame encoder: ``SYNC``, ``cmd``, ``length``, the payload bytes, CRC.

    Members
    -------
    start : ``In(1)``
        Strobe while ``idle``: send a frame with ``cmd`` and ``length`` (sampled now).
    data : ``In(stream.Signature(8))``
        The ``length`` payload bytes, taken after the header has gone out.
    tx : ``Out(stream.Signature(8))``
        Bytes to the UART.
    idle : ``Out(1)``
        No frame in progress (the last CRC byte has been handed to ``tx``).
    """

    def __init__(self):
        super().__init__({
            "start": In(1),
            "cmd": In(8),
            "length": In(24),
            "data": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cmd = Signal(8)
        length = Signal(24)
        left = Signal(24)
        none_left = Signal()  # left == 0, kept as a register (off the ready path)
        crc = Signal(16)
        idx = Signal(3)
        sent = Signal()
        m.d.comb += sent.eq(self.tx.valid & self.tx.ready)
        with m.FSM(name="tx"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start):
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length),
                                 left.eq(self.length), none_left.eq(self.length == 0),
                                 crc.eq(0xFFFF), idx.eq(0)]
                    m.next = "HDR"
            with m.State("HDR"):
                hdr = Array([Const(SYNC, 8), cmd, length[0:8], length[8:16], length[16:24]])
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(hdr[idx])]
                with m.If(sent):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx != 0):
                        m.d.sync += crc.eq(crc16_update(crc, self.tx.payload))
                    with m.If(idx == 4):
                        m.d.sync += idx.eq(0)
                        m.next = "BODY"
            with m.State("BODY"):
                with m.If(none_left):
                    m.next = "CRC"
                with m.Else():
                    m.d.comb += [
                        self.tx.valid.eq(self.data.valid),
                        self.tx.payload.eq(self.data.payload),
                        self.data.ready.eq(self.tx.ready),
                    ]
                    with m.If(sent):
                        m.d.sync += [crc.eq(crc16_update(crc, self.tx.payload)),
                                     left.eq(left - 1), none_left.eq(left == 1)]
            with m.State("CRC"):
                m.d.comb += [self.tx.valid.eq(1),
                             self.tx.payload.eq(Mux(idx[0], crc[0:8], crc[8:16]))]
                with m.If(sent):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx[0]):
                        m.next = "IDLE"
        return m


class SkidBuffer(wiring.Component):
    """A register slice for a stream: two entries, every output driven by a register.

    ``i.ready`` does not depend on ``o.ready`` in the same clock, nor ``o.valid``/``o.payload``
    on ``i.valid``, so the slice cuts combinational paths between producer and consumer
    without losing throughput.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
    flush : ``In(1)``
        Drop whatever the slice holds (only with ``flush=True``).
    """

    def __init__(self, shape, *, flush: bool = False):
        self._shape = shape
        self._flush = flush
        members = {
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        }
        if flush:
            members["flush"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        main_v, skid_v = Signal(), Signal()
        main_d = Signal(self._shape)
        skid_d = Signal(self._shape)
        m.d.comb += [
            self.i.ready.eq(~skid_v),
            self.o.valid.eq(main_v),
            self.o.payload.eq(main_d),
        ]
        take = self.i.valid & ~skid_v
        with m.If(self.o.ready | ~main_v):
            with m.If(skid_v):
                m.d.sync += [main_d.eq(skid_d), main_v.eq(1), skid_v.eq(0)]
            with m.Else():
                m.d.sync += [main_d.eq(self.i.payload), main_v.eq(take)]
        with m.Elif(take):
            m.d.sync += [skid_d.eq(self.i.payload), skid_v.eq(1)]
        if self._flush:
            with m.If(self.flush):
                m.d.sync += [main_v.eq(0), skid_v.eq(0)]
        return m


class CurrentMemory(wiring.Component):
    """The input-current memory: ``depth`` rows of ``lanes`` currents of ``width`` bits.

    A single-port RAM that reads every clock: ``rdata`` is the row ``addr`` had one clock
    earlier (unless that clock wrote). A write stores ``wdata``'s lanes selected by ``we``.

    Parameters
    ----------
    lanes, width, depth : int
    spram : bool
        Build it from iCE40 UltraPlus ``SB_SPRAM256KA`` (16K x 16 each, nibble write mask;
        needs ``width`` a multiple of 4 and ``depth <= 16384``) instead of an Amaranth memory.
        Synthesis only: simulators have no model of the primitive.

    Members
    -------
    addr : ``In(range(depth))``
    rdata : ``Out(lanes * width)``
    we : ``In(lanes)``
    wdata : ``In(lanes * width)``
    """

    def __init__(self, *, lanes: int, width: int, depth: int, spram: bool = False):
        if spram and (width % 4 or depth > 16384):
            raise ValueError(f"SPRAM needs a width that is a multiple of 4 and a depth of at "
                             f"most 16384, not {width} x {depth}")
        self.lanes, self.width, self.depth, self.spram = lanes, width, depth, spram
        super().__init__({
            "addr": In(range(max(2, depth))),
            "rdata": Out(lanes * width),
            "we": In(lanes),
            "wdata": In(lanes * width),
        })

    def elaborate(self, platform):
        m = Module()
        P, IW = self.lanes, self.width
        if not self.spram:
            m.submodules.mem = mem = Memory(shape=P * IW, depth=self.depth, init=[])
            wp = mem.write_port(granularity=IW)
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                         rp.addr.eq(self.addr), self.rdata.eq(rp.data)]
            return m
        total = P * IW
        nblocks = (total + 15) // 16
        data = Cat(self.wdata, Const(0, 16 * nblocks - total))
        out = []
        for k in range(nblocks):
            # Nibble j of block k holds bits 16k + 4j ..: lane (16k + 4j) // IW.
            mask = Cat(*[self.we[min(P - 1, (16 * k + 4 * j) // IW)] for j in range(4)])
            dout = Signal(16, name=f"spram{k}_out")
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=Cat(self.addr, Const(0, 14))[:14],
                i_DATAIN=data[16 * k:16 * k + 16],
                i_MASKWREN=mask,
                i_WREN=self.we.any(),
                i_CHIPSELECT=1, i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=dout,
            )
            out.append(dout)
        m.d.comb += self.rdata.eq(Cat(*out)[:total])
        return m


def _le_bytes(value: Value, n: int) -> list:
    """The ``n`` little-endian bytes of ``value`` (zero-extended)."""
    v = Cat(value, Const(0, 8 * n))
    return [v[8 * k:8 * k + 8] for k in range(n)]


def receive_states(m: Module, *, frx, busy, cmd, length, err_cmd, err_code, ridx, rd_idx,
                   known_r, lenok_r) -> None:
    """Add an executor's ``IDLE`` and ``CHECK`` states to the FSM being built in ``m``.

    ``IDLE`` waits for a frame event of ``frx`` (a :class:`FrameRx`): it latches the command
    and length and goes to ``ERROR`` (a framing error, ``err_code`` set) or ``DECODE`` (the
    executor's own, which must set ``known_r`` and ``lenok_r`` and go to ``CHECK``).
    ``CHECK`` rejects an unknown command or a wrong length (``ERROR``), else goes to
    ``LOAD``. Shared by the array board (:class:`HostLink`) and the network board.
    """
    with m.State("IDLE"):
        m.d.sync += [ridx.eq(0), rd_idx.eq(0)]
        with m.If(frx.event):
            m.d.sync += [cmd.eq(frx.cmd), length.eq(frx.length), err_cmd.eq(frx.cmd)]
            with m.If(frx.error):
                m.d.sync += err_code.eq(frx.code)
                m.next = "ERROR"
            with m.Else():
                m.next = "DECODE"
    with m.State("CHECK"):
        m.d.comb += busy.eq(1)
        with m.If(~known_r | ~lenok_r):
            m.d.sync += err_code.eq(Mux(known_r, ErrorCode.LENGTH, ErrorCode.UNKNOWN))
            m.next = "ERROR"
        with m.Else():
            m.next = "LOAD"


def reply_states(m: Module, *, ftx, busy, rsel, ridx, rbyte, reply_cmd, reply_len, last_error,
                 err_reply: int) -> None:
    """Add an executor's reply states to the FSM being built in ``m``.

    ``ERROR`` selects the error reply (``rsel = 3``, command ``err_reply``) and sets
    ``last_error``; ``REPLY`` (a normal reply, ``rsel`` and ``reply_cmd`` already set) clears
    it. ``REPLY_START`` starts a frame on ``ftx`` (a :class:`FrameTx`) with the length
    ``reply_len[rsel]``, ``REPLY_BODY`` sends ``rbyte`` (byte ``ridx`` of the reply) until the
    frame is out, then ``IDLE``. Shared by the array board and the network board.
    """
    with m.State("ERROR"):
        m.d.comb += busy.eq(1)
        m.d.sync += [rsel.eq(3), ridx.eq(0), reply_cmd.eq(err_reply), last_error.eq(1)]
        m.next = "REPLY_START"
    with m.State("REPLY"):
        m.d.comb += busy.eq(1)
        with m.If(reply_cmd != err_reply):
            m.d.sync += last_error.eq(0)
        m.next = "REPLY_START"
    with m.State("REPLY_START"):
        m.d.comb += busy.eq(1)
        rlen = Signal(8)
        with m.Switch(rsel):
            for sel, n in reply_len.items():
                with m.Case(sel):
                    m.d.comb += rlen.eq(n)
        with m.If(ftx.idle):
            m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(reply_cmd), ftx.length.eq(rlen)]
            m.next = "REPLY_BODY"
    with m.State("REPLY_BODY"):
        m.d.comb += [busy.eq(1), ftx.data.valid.eq(1), ftx.data.payload.eq(rbyte)]
        with m.If(ftx.data.ready):
            m.d.sync += ridx.eq(ridx + 1)
        with m.If(ftx.idle):
            m.next = "IDLE"


class HostLink(wiring.Component):
    """UART, frame decoder, command executor, input-current memory and the neuron array.

    Implements the protocol of :mod:`lifgate.boards.protocol`; :class:`BoardModel
    <lifgate.boards.protocol.BoardModel>` is its reference. The number of lanes must be a
    power of two (input currents are addressed as ``neuron // P``, ``neuron % P``).

    Parameters
    ----------
    features : Features
        Array shape, membrane readback, noise, frame buffer size.
    divisor : int
        UART clocks per bit.
    timeout : int
        Clocks of line silence that end a partial frame (``ERR_TIMEOUT``) or an overrun.
    current_ram : str
        ``"memory"``: the input currents are an Amaranth memory (block RAM); ``"spram"``:
        iCE40 UltraPlus ``SB_SPRAM256KA`` instances (see :class:`CurrentMemory`).
    array_options : dict, optional
        Structural options of the :class:`~lifgate.hdl.array.LIFArray` (``pipeline``,
        ``lanes_per_enable``); they change its size and speed, not its behaviour.

    Members
    -------
    rx : ``In(1)``
        UART line from the host (asynchronous).
    tx : ``Out(1)``
        UART line to the host.
    status : ``Out(4)``
        Bit 0: array busy; bit 1: the last reply was an error; bit 2: a byte is being
        received or sent; bit 3: input enabled.
    """

    def __init__(self, features: Features, *, divisor: int, timeout: int,
                 current_ram: str = "memory", array_options: dict | None = None):
        if not isinstance(features, Features):
            raise TypeError(f"Features must be a Features, not {features!r}")
        lanes = features.shape.lanes
        if lanes & (lanes - 1):
            raise ConfigError(
                f"parameter 'lanes' must be a power of two for a board top, not {lanes!r}"
            )
        self.features = features
        self.divisor = divisor
        self.timeout = timeout
        if current_ram not in ("memory", "spram"):
            raise ValueError(f"Current RAM must be 'memory' or 'spram', not {current_ram!r}")
        self.current_ram = current_ram
        self.array_options = dict(array_options or {})
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(4),
        })

    def elaborate(self, platform):
        from lifgate.hdl.array import LIFArray

        m = Module()
        f = self.features
        shape = f.shape
        P, D, N, G = shape.lanes, shape.depth, shape.neurons, shape.groups
        IW, W = shape.i_width, shape.v_width
        IB, VB, SB, PB = f.current_bytes, f.value_bytes, f.spike_bytes, f.param_bytes
        PW = f.param_width
        LB = ceil_log2(P)  # lane bits

        m.submodules.uart_rx = urx = UARTRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self.divisor)
        m.submodules.frx = frx = FrameRx(max_payload=f.max_payload, timeout=self.timeout)
        m.submodules.ftx = ftx = FrameTx()
        m.submodules.array = array = LIFArray(shape, membrane=f.membrane, noise=f.noise,
                                              **self.array_options)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, frx.byte)
        wiring.connect(m, ftx.tx, utx.stream)

        # Payload buffer.
        m.submodules.buf = buf = Memory(shape=8, depth=f.max_payload, init=[])
        bw = buf.write_port()
        br = buf.read_port()
        m.d.comb += [bw.addr.eq(frx.buf_addr), bw.data.eq(frx.buf_data), bw.en.eq(frx.buf_we)]

        # Input-current memory: one row per lane address, lane p in bits p*IW.
        m.submodules.cur = cur = CurrentMemory(lanes=P, width=IW, depth=D,
                                               spram=self.current_ram == "spram")

        # Run-time registers.
        seed = Signal(32, init=1)
        gain = Signal(16)
        input_en = Signal()
        if f.noise:
            m.d.comb += [array.noise_seed.eq(seed), array.noise_gain.eq(gain)]

        # Executor ------------------------------------------------------------------------------
        cmd = Signal(8)
        length = Signal(range(f.max_payload + 1))  # frames longer never reach the executor
        err_code = Signal(3)
        err_cmd = Signal(8)
        last_error = Signal()

        # Byte reader over the buffer: rd_idx is the address presented, rd_ok says br.data holds
        # the byte at rd_idx - 1.
        rd_idx = Signal(range(f.max_payload + 1))
        rd_ok = Signal()
        rd_run = Signal()
        m.d.comb += br.addr.eq(rd_idx)
        m.d.sync += rd_ok.eq(0)
        with m.If(rd_run):
            m.d.sync += [rd_idx.eq(rd_idx + 1), rd_ok.eq(1)]
        acc_w = 8 * (4 + PB)
        acc = Signal(acc_w)
        with m.If(rd_ok):
            m.d.sync += acc.eq(Cat(acc[8:], br.data))

        def loaded(n):  # the first n bytes of the payload, once n bytes went through acc
            return acc[acc_w - 8 * n:]

        nload = Signal(range(acc_w // 8 + 1))

        # Values of WRITE_CURRENTS.
        val = Signal(8 * IB)
        bi = Signal(range(IB + 1))
        # Neuron index, start + values so far: start < 2**22 (else start_hi), fewer than
        # 2**16 values, so 23 bits never wrap.
        n_idx = Signal(23)
        bad_value = Signal()
        wr_addr = Signal(range(max(2, D)))
        wr_lane = Signal(range(max(2, P)))
        pass2 = Signal()
        start_hi = Signal()  # start >= 2**22: certainly out of range

        # Reply bytes.
        ridx = Signal(range(64))
        rsel = Signal(3)  # 0 none, 1 version, 2 status, 3 error, 4 run done
        version = [Const(b, 8) for b in version_payload(f)]
        status = (_le_bytes(input_en, 1) + _le_bytes(array.step, 4) + _le_bytes(seed, 4)
                  + _le_bytes(gain, 2))
        errb = [Cat(err_code, Const(0, 5)), err_cmd]
        doneb = _le_bytes(array.step, 4)
        reply_len = {0: 0, 1: len(version), 2: len(status), 3: 2, 4: 4}
        reply_cmd = Signal(8)
        rbyte = Signal(8)
        with m.Switch(rsel):
            for sel, table in ((1, version), (2, status), (3, errb), (4, doneb)):
                with m.Case(sel):
                    m.d.comb += rbyte.eq(Array(table + [Const(0, 8)] * (64 - len(table)))[ridx])

        # Run: flags, i_stream feeder, STEP frame serializer.
        flags = Signal(2)
        running = Signal()
        arr_done = Signal()
        serialize = Signal()  # a run sends STEP frames
        drain = Signal()  # a run sends none: take every beat
        feed_addr = Signal(range(max(2, D)))
        feed_ok = Signal()
        # Register slices on both streams of the array: its ready signals (its pipeline
        # enable) then never depend combinationally on the serializer or the feeder.
        m.submodules.islice = islice = SkidBuffer(array.i_stream.payload.shape(), flush=True)
        # The output slice carries two flags beside the beat, computed before its registers:
        # first (address 0) and last (address D - 1) beat of a step.
        out_layout = data.StructLayout({"beat": array.o_stream.payload.shape(),
                                        "first": 1, "last": 1})
        m.submodules.oslice = oslice = SkidBuffer(out_layout)
        wiring.connect(m, islice.o, array.i_stream)
        m.d.comb += [
            oslice.i.valid.eq(array.o_stream.valid),
            oslice.i.payload.beat.eq(array.o_stream.payload),
            oslice.i.payload.first.eq(array.o_stream.payload.addr == 0),
            oslice.i.payload.last.eq(array.o_stream.payload.addr == D - 1),
            array.o_stream.ready.eq(oslice.i.ready),
        ]
        ostream = oslice.o
        m.d.comb += [
            islice.i.payload.eq(cur.rdata),
            islice.i.valid.eq(running & feed_ok),
        ]
        feed_en = Signal()
        m.d.comb += feed_en.eq(running & (~feed_ok | islice.i.ready))
        with m.If(feed_en):
            m.d.sync += [feed_addr.eq(Mux(feed_addr == D - 1, 0, feed_addr + 1)), feed_ok.eq(1)]
        # The memory reads every clock: while the feeder stalls, the address of the beat it
        # holds is presented again. Writes happen only while not running.
        held = Signal.like(feed_addr)
        with m.If(feed_en):
            m.d.sync += held.eq(feed_addr)
        # Writes go through one register stage (address, lanes, data): the payload buffer and
        # the current memory are block RAMs far apart on a large device.
        wr_we, wr_data = Signal(P), Signal(P * IW)
        wr_we_r, wr_data_r = Signal(P), Signal(P * IW)
        wr_addr_r = Signal.like(wr_addr)
        m.d.sync += [wr_we_r.eq(wr_we), wr_data_r.eq(wr_data), wr_addr_r.eq(wr_addr)]
        m.d.comb += [
            cur.addr.eq(Mux(running, Mux(feed_en, feed_addr, held), wr_addr_r)),
            cur.we.eq(wr_we_r),
            cur.wdata.eq(wr_data_r),
        ]

        beat = ostream.payload.beat
        rec = _le_bytes(beat.step, 4) + _le_bytes(beat.spikes, SB)
        if f.membrane:
            for p in range(P):
                rec += _le_bytes(beat.v[p].as_unsigned(), VB) if VB * 8 == W else \
                    _le_bytes(Cat(beat.v[p], *([beat.v[p][-1]] * (8 * VB - W))), VB)
        rec_tab = Array(rec + [Const(0, 8)] * ((1 << ceil_log2(len(rec))) - len(rec)))
        bidx = Signal(range(len(rec) + 1))
        at_last = Signal()  # bidx == last_byte, kept as a register (off the ready path)
        in_frame = Signal()
        last_spk = 3 + SB
        last_mem = 3 + SB + P * VB
        step_len_spk = f.step_length(False)
        step_len_mem = f.step_length(True) if f.membrane else step_len_spk
        last_byte = Mux(flags[1], last_mem, last_spk) if f.membrane else last_spk

        m.d.comb += [
            array.param_group.eq(loaded(4 + PB)[:32]),
            array.param_data.eq(loaded(4 + PB)[32:32 + PW]),
            array.steps.eq(loaded(5)[:32]),
            array.input_en.eq(input_en),
        ]

        # Parameter word check (protocol.param_word_valid).
        offs, o = {}, 0
        for name, width in param_layout(shape):
            offs[name] = (o, width)
            o += width
        word = loaded(4 + PB)[32:]

        def fld(name):
            off, width = offs[name]
            return word[off:off + width]

        mode = fld("leak_mode")
        leak = fld("leak")
        mode_ok = Signal()
        m.d.comb += mode_ok.eq(0)
        for lm in shape.leak_modes:
            if lm == LeakMode.SHIFT:
                ok = leak <= W
            elif lm == LeakMode.MULT:
                # The field is max(W, F) bits wide: with F >= W every value is a legal factor,
                # and the compare would be constant (Verilator's CMPCONST stops the build).
                ok = leak <= (1 << shape.decay_frac) - 1 if shape.leak_width > shape.decay_frac \
                    else Const(1)
            else:
                lw = shape.leak_width
                sleak = leak.as_signed()
                ok = (sleak >= -(1 << (W - 1))) & (sleak <= (1 << (W - 1)) - 1) if lw > W \
                    else Const(1)
            with m.If(mode == int(lm)):
                m.d.comb += mode_ok.eq(ok)
        pad_ok = (word[PW:] == 0) if 8 * PB > PW else Const(1)
        group = loaded(4 + PB)[:32]
        params_ok = Signal()
        m.d.comb += params_ok.eq(mode_ok & pad_ok & (group < G))

        run_flags = loaded(5)[32:40]
        flags_bad = run_flags[2:].any() if f.membrane else run_flags[1:].any()
        known_r, lenok_r = Signal(), Signal()
        cur_len_bad, cur_range_bad = Signal(), Signal()
        params_ok_r, input_ok_r, flags_bad_r = Signal(), Signal(), Signal()

        # The decoder's busy input comes from registers only: the executor's state (a clock
        # late) or a frame event of the last two clocks (the executor may not have left IDLE
        # yet). A byte takes at least 40 clocks, so no byte can slip through the gap.
        # The array's strobes come from registers (set in the state before).
        arr_clear, arr_start, arr_pwe = Signal(), Signal(), Signal()
        m.d.sync += [arr_clear.eq(0), arr_start.eq(0), arr_pwe.eq(0)]
        m.d.comb += [array.clear.eq(arr_clear), array.start.eq(arr_start),
                     array.param_we.eq(arr_pwe)]

        busy = Signal()
        busy_r, event_d = Signal(), Signal()
        m.d.sync += [busy_r.eq(busy), event_d.eq(frx.event)]
        m.d.comb += frx.busy.eq(busy_r | frx.event | event_d)

        # STEP frame serializer: runs beside the executor while `serialize` is set (registers
        # only gate it, so the executor's state decoding stays off the stream's ready path).
        with m.If(drain):
            m.d.comb += ostream.ready.eq(1)
        with m.If(serialize):
            ovalid = ostream.valid
            with m.If(ovalid & ostream.payload.first & ~in_frame & ftx.idle):
                m.d.comb += [
                    ftx.start.eq(1), ftx.cmd.eq(Cmd.STEP),
                    ftx.length.eq(Mux(flags[1], step_len_mem, step_len_spk)),
                ]
                m.d.sync += in_frame.eq(1)
            m.d.comb += [
                ftx.data.valid.eq(ovalid & in_frame),
                ftx.data.payload.eq(rec_tab[bidx]),
            ]
            with m.If(ftx.data.valid & ftx.data.ready):
                m.d.sync += [bidx.eq(bidx + 1), at_last.eq(bidx + 1 == last_byte)]
                with m.If(at_last):
                    m.d.comb += ostream.ready.eq(1)
                    with m.If(ostream.payload.last):
                        m.d.sync += [bidx.eq(0), in_frame.eq(0), at_last.eq(0)]
                    with m.Else():
                        m.d.sync += [bidx.eq(4), at_last.eq(last_byte == 4)]

        with m.FSM(name="exec"):
            with m.State("INIT"):
                # Zero the input currents (SPRAM powers up undefined), then clear the array.
                m.d.comb += [busy.eq(1), wr_we.eq((1 << P) - 1), wr_data.eq(0)]
                m.d.sync += wr_addr.eq(wr_addr + 1)
                with m.If(wr_addr == D - 1):
                    m.next = "INIT_CLEAR"
            with m.State("INIT_CLEAR"):
                m.d.comb += busy.eq(1)
                m.d.sync += arr_clear.eq(1)
                m.next = "CLEAR_WAIT_INIT"
            with m.State("CLEAR_WAIT_INIT"):
                m.d.comb += busy.eq(1)
                with m.If(array.done):
                    m.next = "IDLE"
            receive_states(m, frx=frx, busy=busy, cmd=cmd, length=length, err_cmd=err_cmd,
                           err_code=err_code, ridx=ridx, rd_idx=rd_idx, known_r=known_r,
                           lenok_r=lenok_r)
            with m.State("DECODE"):
                # Registered: is the command known, is its length right, how much to load.
                m.d.comb += busy.eq(1)
                m.d.sync += [known_r.eq(0), lenok_r.eq(0)]
                with m.Switch(cmd):
                    for code, ok, n in (
                        (Cmd.VERSION, length == 0, 0),
                        (Cmd.STATUS, length == 0, 0),
                        (Cmd.CLEAR, length == 0, 0),
                        (Cmd.SET_PARAMS, length == 4 + PB, 4 + PB),
                        (Cmd.SET_NOISE, length == 6, 6),
                        (Cmd.SET_INPUT, length == 1, 1),
                        (Cmd.WRITE_CURRENTS, length >= 4, 4),
                        (Cmd.RUN, length == 5, 5),
                    ):
                        with m.Case(code):
                            m.d.sync += [known_r.eq(1), lenok_r.eq(ok), nload.eq(n)]
                m.next = "CHECK"
            with m.State("LOAD"):
                # Read the first nload payload bytes into acc.
                m.d.comb += busy.eq(1)
                m.d.comb += rd_run.eq(rd_idx < nload)
                with m.If((rd_idx == nload) & ~rd_ok):
                    m.next = "VALIDATE"
            with m.State("VALIDATE"):
                # Registered checks of the loaded values.
                m.d.comb += busy.eq(1)
                m.d.sync += [params_ok_r.eq(params_ok), input_ok_r.eq(loaded(1)[1:8] == 0),
                             flags_bad_r.eq(flags_bad)]
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.comb += busy.eq(1)
                m.d.sync += [rsel.eq(0), ridx.eq(0), reply_cmd.eq(cmd | 0x80)]
                with m.Switch(cmd):
                    with m.Case(Cmd.VERSION):
                        m.d.sync += rsel.eq(1)
                        m.next = "REPLY"
                    with m.Case(Cmd.STATUS):
                        m.d.sync += rsel.eq(2)
                        m.next = "REPLY"
                    with m.Case(Cmd.SET_PARAMS):
                        with m.If(params_ok_r):
                            m.d.sync += arr_pwe.eq(1)
                            m.next = "REPLY"
                        with m.Else():
                            m.d.sync += err_code.eq(ErrorCode.RANGE)
                            m.next = "ERROR"
                    with m.Case(Cmd.SET_NOISE):
                        m.d.sync += [seed.eq(loaded(6)[:32]), gain.eq(loaded(6)[32:48])]
                        m.next = "REPLY"
                    with m.Case(Cmd.SET_INPUT):
                        with m.If(input_ok_r):
                            m.d.sync += input_en.eq(loaded(1)[0])
                            m.next = "REPLY"
                        with m.Else():
                            m.d.sync += err_code.eq(ErrorCode.RANGE)
                            m.next = "ERROR"
                    with m.Case(Cmd.CLEAR):
                        m.d.sync += arr_clear.eq(1)
                        m.next = "CLEAR_WAIT"
                    with m.Case(Cmd.WRITE_CURRENTS):
                        start = loaded(4)[:32]
                        m.d.sync += [
                            n_idx.eq(start[:22]),
                            start_hi.eq(start[22:].any()),
                            wr_addr.eq(start[LB:LB + max(1, ceil_log2(D))] if D > 1 else 0),
                            wr_lane.eq(start[:LB] if P > 1 else 0),
                            bad_value.eq(0), bi.eq(0), pass2.eq(0),
                        ]
                        m.next = "CURRENTS"
                    with m.Case(Cmd.RUN):
                        fl = loaded(5)[32:40]
                        with m.If(flags_bad_r):
                            m.d.sync += err_code.eq(ErrorCode.RANGE)
                            m.next = "ERROR"
                        with m.Else():
                            m.d.sync += [flags.eq(fl[:2]), feed_addr.eq(0), feed_ok.eq(0),
                                         bidx.eq(0), in_frame.eq(0), at_last.eq(0)]
                            m.d.comb += islice.flush.eq(1)
                            m.next = "RUN_START"
            with m.State("CLEAR_WAIT"):
                m.d.comb += busy.eq(1)
                with m.If(array.done):
                    m.next = "REPLY"
            with m.State("CURRENTS"):
                # Two passes over the values (payload bytes 4..length-1): check, then write.
                m.d.comb += busy.eq(1)
                m.d.comb += rd_run.eq(rd_idx < length)
                value_done = rd_ok & (bi == IB - 1)
                full = Cat(val[8:], br.data) if IB > 1 else br.data
                with m.If(rd_ok):
                    m.d.sync += [val.eq(full), bi.eq(Mux(bi == IB - 1, 0, bi + 1))]
                with m.If(value_done):
                    m.d.sync += n_idx.eq(n_idx + 1)
                    if 8 * IB > IW:
                        top = full[IW - 1:]
                        with m.If(~(top.all() | ~top.any())):
                            m.d.sync += bad_value.eq(1)
                    with m.If(pass2):
                        m.d.comb += [wr_data.eq(Cat(*([full[:IW]] * P))),
                                     wr_we.eq((Const(1, P) << wr_lane)[:P])]
                        if P > 1:
                            m.d.sync += wr_lane.eq(wr_lane + 1)
                            with m.If(wr_lane == P - 1):
                                m.d.sync += wr_addr.eq(wr_addr + 1)
                        else:
                            m.d.sync += wr_addr.eq(wr_addr + 1)
                with m.If((rd_idx == length) & ~rd_ok):
                    with m.If(pass2):
                        m.next = "REPLY"
                    with m.Else():
                        m.next = "CURRENTS_CHECK"
            with m.State("CURRENTS_CHECK"):
                m.d.comb += busy.eq(1)
                m.d.sync += [cur_len_bad.eq(bi != 0),
                             cur_range_bad.eq(bad_value | start_hi | (n_idx > N))]
                m.next = "CURRENTS_DECIDE"
            with m.State("CURRENTS_DECIDE"):
                m.d.comb += busy.eq(1)
                with m.If(cur_len_bad):
                    m.d.sync += err_code.eq(ErrorCode.LENGTH)
                    m.next = "ERROR"
                with m.Elif(cur_range_bad):
                    m.d.sync += err_code.eq(ErrorCode.RANGE)
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [pass2.eq(1), rd_idx.eq(4), n_idx.eq(0)]
                    m.next = "CURRENTS"
            with m.State("RUN_START"):
                m.d.comb += busy.eq(1)
                m.d.sync += arr_start.eq(1)
                m.d.sync += [running.eq(1), arr_done.eq(0), serialize.eq(flags != 0),
                             drain.eq(flags == 0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                with m.If(array.done):
                    m.d.sync += [running.eq(0), arr_done.eq(1)]
                with m.If(arr_done & ~ostream.valid):  # the last beats have left the slice
                    m.d.sync += [rsel.eq(4), ridx.eq(0), reply_cmd.eq(Cmd.RUN_DONE),
                                 serialize.eq(0), drain.eq(0)]
                    m.next = "RUN_END"
            with m.State("RUN_END"):
                m.d.comb += busy.eq(1)
                with m.If(ftx.idle):
                    m.next = "REPLY"
            reply_states(m, ftx=ftx, busy=busy, rsel=rsel, ridx=ridx, rbyte=rbyte,
                         reply_cmd=reply_cmd, reply_len=reply_len, last_error=last_error,
                         err_reply=Cmd.ERR)

        activity = Signal()
        m.d.comb += activity.eq(~utx.idle | (urx.stream.valid))
        m.d.comb += self.status.eq(Cat(array.busy, last_error, activity, input_en))
        return m
