"""The frame core of the host links in gateware: UART, framing, CRC, payload reader and loader,
reply and error states, shared by the array board (:class:`lifgate.boards.link.HostLink`) and
the network board (:class:`lifgate.boards.netlink.NetworkLink`).

Its reference is :mod:`lifgate.boards.frameproto` (:class:`~lifgate.boards.frameproto.FrameDecoder`
and :class:`~lifgate.boards.frameproto.LinkModel`); each link is a thin executor on top: a
command table and the states that carry its commands out.

An executor's FSM (``exec``), states in the order a frame goes through them:

============  ===================================================================================
``IDLE``      waits for a frame event; a framing error goes to ``ERROR`` (core)
``DECODE``    looks the command up in the executor's table: known, length right, bytes to load
              (core, :meth:`FrameCore.decode_state`)
``CHECK``     ``ERR_UNKNOWN`` / ``ERR_LENGTH`` (core)
``LOAD``      reads the payload's first bytes into the loader (core, :meth:`FrameCore.load_state`)
``VALIDATE``  the executor's registered value checks, then ``DISPATCH``
``DISPATCH``  ``VERSION`` and ``STATUS`` are the core's; every other command's entry goes to its
              executor's states (core, :meth:`FrameCore.dispatch_state`)
``ERROR``     sends ``ERR`` with ``err_code`` (core)
``REPLY``     sends the reply ``rsel`` selects (core), then ``IDLE``
============  ===================================================================================

Adding a command (see also ``docs/boards.md``): a row in the executor's decode table
(``(code, length ok, statements)``: the statements set up ``LOAD``, e.g. how many header bytes
to load), an entry in its dispatch table (a function that adds the statements of the
``DISPATCH`` case and sets ``m.next`` to the command's own states, or to ``REPLY`` /
``ERROR``; :meth:`FrameCore.reply_if` for a checked one-frame command), those states
(:meth:`FrameCore.two_pass_reader`, :meth:`FrameCore.decide_state` and
:meth:`FrameCore.wait_state` build the usual ones), and the same command in the protocol
model's table (:class:`lifgate.boards.frameproto.Command`).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.boards.frameproto import SYNC, ErrorCode
from lifgate.boards.uart import UARTRx, UARTTx

from lifgate.config import ConfigTypeError, LeakMode

__all__ = ["FrameCore", "FrameRx", "FrameTx", "LinkComponent", "R_DONE", "R_ERROR", "R_NONE",
           "R_STATUS", "R_VERSION", "crc16_update", "le_bytes", "param_word_ok"]

#: Reply selectors (``FrameCore.rsel``): none (a bare ``cmd | 0x80`` reply), ``VERSION``,
#: ``STATUS``, ``ERR``, the run's end.
R_NONE, R_VERSION, R_STATUS, R_ERROR, R_DONE = range(5)

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
            raise ConfigTypeError(
                f"Timeout must be an integer of at least 2 clocks, not {timeout!r}")
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
        # expired == (timer == timeout), kept as a register: the wide compare then ends in a
        # flip-flop instead of feeding the decoder's state logic (the UP5K top's critical path).
        expired = Signal()
        with m.If(got):
            m.d.sync += [timer.eq(0), expired.eq(0)]
        with m.Elif(~expired):
            m.d.sync += [timer.eq(timer + 1), expired.eq(timer + 1 == self.timeout)]

        # The CRC runs a clock behind the bytes: a byte is registered (``crc_byte``) and goes
        # into ``crc`` in the next clock, and ``crc_zero`` (the CRC with it is 0) is a
        # register too, so the received byte never reaches the verdict in one clock (the UP5K
        # top's critical path). Bytes come at least 3 clocks apart, so a byte is in ``crc``
        # before the next one arrives; the verdict waits two clocks (``CHECK``, ``VERDICT``).
        crc = Signal(16)
        crc_byte = Signal(8)
        crc_pend = Signal()
        crc_zero = Signal()
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_update(crc, crc_byte))
        m.d.sync += crc_pend.eq(0)
        with m.If(crc_pend):
            m.d.sync += [crc.eq(crc_next), crc_zero.eq(crc_next == 0)]
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

        with m.FSM(name="rx") as fsm:
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
                    m.d.sync += [crc_byte.eq(byte), crc_pend.eq(1), hcnt.eq(hcnt + 1),
                                 count.eq(0)]
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
                    m.d.sync += [crc_byte.eq(byte), crc_pend.eq(1), count.eq(count + 1)]
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
                    m.d.sync += [crc_byte.eq(byte), crc_pend.eq(1), ccnt.eq(1)]
                    with m.If(ccnt):
                        m.next = "CHECK"
                with m.Elif(expired):
                    emit(1, ErrorCode.TIMEOUT)
                    m.next = "HUNT"
            with m.State("CHECK"):  # the last byte goes into the CRC
                m.next = "VERDICT"
            with m.State("VERDICT"):
                with m.If(~crc_zero):
                    emit(1, ErrorCode.CRC)
                with m.Elif(too_long):
                    emit(1, ErrorCode.LENGTH)
                with m.Else():
                    emit(0)
                m.next = "HUNT"
            with m.State("DROP"):
                with m.If(~got & expired & ~self.busy):
                    emit(1, ErrorCode.OVERRUN, 0)
                    m.next = "HUNT"
        # One-hot (Yosys keeps a state register with an initial value binary otherwise): the
        # state's decode stays off the decoder's paths. The ``sync`` reset sets the state.
        fsm.state.attrs["fsm_encoding"] = "one-hot"
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
        # A payload byte is taken into ``hold`` and goes to ``tx`` from there: the source's
        # byte multiplexer then ends in this register, not in the CRC and the UART's shift
        # register (the UP5K top's critical path), and ``data.ready`` is made of registers.
        hold = Signal(8)
        held = Signal()
        sent = Signal()
        m.d.comb += sent.eq(self.tx.valid & self.tx.ready)
        with m.FSM(name="tx") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start):
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length),
                                 left.eq(self.length), none_left.eq(self.length == 0),
                                 crc.eq(0xFFFF), idx.eq(0), held.eq(0)]
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
                m.d.comb += [
                    self.data.ready.eq(~held & ~none_left),
                    self.tx.valid.eq(held),
                    self.tx.payload.eq(hold),
                ]
                with m.If(self.data.valid & self.data.ready):
                    m.d.sync += [hold.eq(self.data.payload), held.eq(1),
                                 left.eq(left - 1), none_left.eq(left == 1)]
                with m.If(sent):
                    m.d.sync += [crc.eq(crc16_update(crc, hold)), held.eq(0)]
                with m.If(none_left & ~held):
                    m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.tx.valid.eq(1),
                             self.tx.payload.eq(Mux(idx[0], crc[0:8], crc[8:16]))]
                with m.If(sent):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx[0]):
                        m.next = "IDLE"
        fsm.state.attrs["fsm_encoding"] = "one-hot"  # as FrameRx's
        return m


def le_bytes(value: Value, n: int) -> list:
    """The ``n`` little-endian bytes of ``value`` (zero-extended)."""
    v = Cat(value, Const(0, 8 * n))
    return [v[8 * k:8 * k + 8] for k in range(n)]


class LinkComponent(wiring.Component):
    """The pins of a host link and what its frame core is built with; :class:`HostLink
    <lifgate.boards.link.HostLink>` and :class:`NetworkLink
    <lifgate.boards.netlink.NetworkLink>` are subclasses.

    Members
    -------
    rx : ``In(1)``
        UART line from the host (asynchronous).
    tx : ``Out(1)``
        UART line to the host.
    status : ``Out(4)``
        Bit 0: array (network) busy; bit 1: the last reply was an error; bit 2: a byte is
        being received or sent; bit 3: the executor's own.
    """

    def __init__(self, features, *, divisor: int, timeout: int):
        self.features = features
        self.divisor = divisor
        self.timeout = timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(4),
        })

    def elaborate(self, platform):
        m = Module()
        core = FrameCore(m, rx=self.rx, tx=self.tx, max_payload=self.features.max_payload,
                         divisor=self.divisor, timeout=self.timeout)
        busy, bit3 = self.executor(m, core)
        m.d.comb += self.status.eq(Cat(busy, core.last_error, core.activity, bit3))
        return m

    def executor(self, m: Module, core: FrameCore) -> tuple:
        """Build the executor on ``core`` into ``m``; return the status bits 0 and 3."""
        raise NotImplementedError


class FrameCore:
    """The frame machinery of a link, built into the link's module ``m``.

    Makes the UART (pins ``rx``, ``tx``), :class:`FrameRx`, :class:`FrameTx`, the payload
    buffer and its byte reader, the decoder's busy input and the registers every executor
    shares; its methods add the shared states to the executor's FSM.

    Parameters
    ----------
    m : Module
    rx, tx : Value
        The link's UART pins.
    max_payload : int
        Frame buffer size in bytes.
    divisor, timeout : int
        UART clocks per bit; clocks of line silence that end a partial frame.

    Attributes
    ----------
    cmd, length : Signal
        The frame being executed (``length`` never exceeds ``max_payload``).
    br : read port of the payload buffer; ``rd_idx`` the address presented, ``rd_ok`` says
        ``br.data`` holds the byte at ``rd_idx - 1``; ``rd_run`` (comb) steps the reader.
    busy : Signal
        Comb, set by every state but ``IDLE``.
    err_code, err_cmd, last_error, rsel, ridx, reply_cmd : Signal
        Error and reply registers.
    ftx : FrameTx
        For executors that send frames of their own (``STEP``, ``READ_WEIGHTS``).
    activity : Signal
        A byte is being received or sent.
    """

    def __init__(self, m: Module, *, rx, tx, max_payload: int, divisor: int, timeout: int):
        self.m = m
        m.submodules.uart_rx = urx = UARTRx(divisor=divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=divisor)
        m.submodules.frx = frx = FrameRx(max_payload=max_payload, timeout=timeout)
        m.submodules.ftx = ftx = FrameTx()
        m.d.comb += [urx.rx.eq(rx), tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, frx.byte)
        wiring.connect(m, ftx.tx, utx.stream)
        self.frx, self.ftx = frx, ftx

        # Payload buffer.
        m.submodules.buf = buf = Memory(shape=8, depth=max_payload, init=[])
        bw = buf.write_port()
        br = buf.read_port()
        m.d.comb += [bw.addr.eq(frx.buf_addr), bw.data.eq(frx.buf_data), bw.en.eq(frx.buf_we)]
        self.br = br

        cmd = Signal(8)
        length = Signal(range(max_payload + 1))  # frames longer never reach the executor
        err_code = Signal(3)
        err_cmd = Signal(8)
        last_error = Signal()
        self.cmd, self.length = cmd, length
        self.err_code, self.err_cmd, self.last_error = err_code, err_cmd, last_error

        # Byte reader over the buffer.
        rd_idx = Signal(range(max_payload + 1))
        rd_ok = Signal()
        rd_run = Signal()
        m.d.comb += br.addr.eq(rd_idx)
        m.d.sync += rd_ok.eq(0)
        with m.If(rd_run):
            m.d.sync += [rd_idx.eq(rd_idx + 1), rd_ok.eq(1)]
        self.rd_idx, self.rd_ok, self.rd_run = rd_idx, rd_ok, rd_run

        # The decoder's busy input comes from registers only: the executor's state (a clock
        # late) or a frame event of the last two clocks (the executor may not have left IDLE
        # yet). A byte takes at least 40 clocks, so no byte can slip through the gap.
        busy = Signal()
        busy_r, event_d = Signal(), Signal()
        m.d.sync += [busy_r.eq(busy), event_d.eq(frx.event)]
        m.d.comb += frx.busy.eq(busy_r | frx.event | event_d)
        self.busy = busy

        activity = Signal()
        m.d.comb += activity.eq(~utx.idle | (urx.stream.valid))
        self.activity = activity
        self.known_r, self.lenok_r = Signal(name="known_r"), Signal(name="lenok_r")

    def loader(self, nbytes: int, *, gate: Value | None = None) -> Signal:
        """The loader: a shift register that takes every byte the reader delivers (while
        ``gate``, if given), so that after ``LOAD`` the payload's first ``nbytes`` bytes sit in
        it, byte 0 lowest."""
        m = self.m
        acc = Signal(8 * nbytes, name="acc")
        with m.If(self.rd_ok if gate is None else self.rd_ok & gate):
            m.d.sync += acc.eq(Cat(acc[8:], self.br.data))
        return acc

    def replies(self, *, version: list, status: list, done: list, size: int) -> None:
        """The reply bytes: ``VERSION``, ``STATUS``, ``ERR`` and the run's end (lists of byte
        values) as ``rsel`` selects them; ``size`` bounds every reply's length."""
        m = self.m
        ridx = Signal(range(size), name="ridx")
        rsel = Signal(3, name="rsel")  # R_NONE, R_VERSION, R_STATUS, R_ERROR, R_DONE
        reply_cmd = Signal(8, name="reply_cmd")
        rbyte = Signal(8, name="rbyte")
        errb = [Cat(self.err_code, Const(0, 5)), self.err_cmd]
        self.reply_len = {R_NONE: 0, R_VERSION: len(version), R_STATUS: len(status),
                          R_ERROR: 2, R_DONE: len(done)}
        pad = 1 << ceil_log2(size)
        # ``rbyte`` is a register, the byte at ``ridx`` one clock late: ``FrameTx`` takes a
        # payload byte at most every other clock (it holds one until the UART has it), and
        # ``rsel`` and ``ridx`` are set several clocks before the body starts.
        with m.Switch(rsel):
            for sel, table in ((R_VERSION, version), (R_STATUS, status), (R_ERROR, errb),
                               (R_DONE, done)):
                with m.Case(sel):
                    m.d.sync += rbyte.eq(Array(table + [Const(0, 8)] * (pad - len(table)))[ridx])
        self.ridx, self.rsel, self.reply_cmd, self.rbyte = ridx, rsel, reply_cmd, rbyte

    def receive_states(self) -> None:
        """``IDLE``: wait for a frame event; latch command and length, go to ``ERROR`` (a
        framing error) or ``DECODE``. ``CHECK``: reject an unknown command or a wrong length."""
        m, frx = self.m, self.frx
        with m.State("IDLE"):
            m.d.sync += [self.ridx.eq(0), self.rd_idx.eq(0)]
            with m.If(frx.event):
                m.d.sync += [self.cmd.eq(frx.cmd), self.length.eq(frx.length),
                             self.err_cmd.eq(frx.cmd)]
                with m.If(frx.error):
                    m.d.sync += self.err_code.eq(frx.code)
                    m.next = "ERROR"
                with m.Else():
                    m.next = "DECODE"
        with m.State("CHECK"):
            m.d.comb += self.busy.eq(1)
            with m.If(~self.known_r | ~self.lenok_r):
                m.d.sync += self.err_code.eq(Mux(self.known_r, ErrorCode.LENGTH,
                                                 ErrorCode.UNKNOWN))
                m.next = "ERROR"
            with m.Else():
                m.next = "LOAD"

    def decode_state(self, table, extra=()) -> None:
        """``DECODE``: ``table`` rows ``(code, length ok, statements)`` set ``known_r``,
        ``lenok_r`` and the row's statements (registered); ``extra`` statements always."""
        m = self.m
        with m.State("DECODE"):
            m.d.comb += self.busy.eq(1)
            m.d.sync += [self.known_r.eq(0), self.lenok_r.eq(0)]
            with m.Switch(self.cmd):
                for code, ok, stmts in table:
                    with m.Case(code):
                        m.d.sync += [self.known_r.eq(1), self.lenok_r.eq(ok), *stmts]
            m.d.sync += list(extra)
            m.next = "CHECK"

    def load_state(self, nbytes, loading: Signal | None = None) -> None:
        """``LOAD``: read payload bytes until ``nbytes`` went through the loader."""
        m = self.m
        with m.State("LOAD"):
            m.d.comb += [self.busy.eq(1), self.rd_run.eq(self.rd_idx < nbytes)]
            if loading is not None:
                m.d.comb += loading.eq(1)
            with m.If((self.rd_idx == nbytes) & ~self.rd_ok):
                m.next = "VALIDATE"

    def dispatch_state(self, handlers: dict) -> None:
        """``DISPATCH``: ``VERSION`` and ``STATUS`` reply; every other command code of
        ``handlers`` runs its function (no arguments), which adds the statements of its case
        and sets ``m.next``. The reply defaults to a bare ``cmd | 0x80``."""
        m = self.m
        with m.State("DISPATCH"):
            m.d.comb += self.busy.eq(1)
            m.d.sync += [self.rsel.eq(R_NONE), self.ridx.eq(0), self.reply_cmd.eq(self.cmd | 0x80)]
            with m.Switch(self.cmd):
                for code, handler in handlers.items():
                    with m.Case(*(code if isinstance(code, tuple) else (code,))):
                        handler()

    def reply_version(self) -> None:
        """A dispatch handler: the ``VERSION`` reply."""
        self.m.d.sync += self.rsel.eq(R_VERSION)
        self.m.next = "REPLY"

    def reply_status(self) -> None:
        """A dispatch handler: the ``STATUS`` reply."""
        self.m.d.sync += self.rsel.eq(R_STATUS)
        self.m.next = "REPLY"

    def reply_if(self, ok: Value, stmts=(), code: int = ErrorCode.RANGE) -> None:
        """In a dispatch handler: with ``ok``, ``stmts`` and a bare reply; else ``ERR`` with
        ``code``."""
        m = self.m
        with m.If(ok):
            m.d.sync += list(stmts)
            m.next = "REPLY"
        with m.Else():
            self.fail(code)

    def fail(self, code: int) -> None:
        """In any state: reply ``ERR`` with ``code``."""
        self.m.d.sync += self.err_code.eq(code)
        self.m.next = "ERROR"

    def two_pass_reader(self, pass2: Signal, check_state: str) -> None:
        """In a two-pass command's value state (busy): read the payload to its end, then go to
        ``check_state`` after the first pass (``pass2`` low), to ``REPLY`` after the second."""
        m = self.m
        m.d.comb += [self.busy.eq(1), self.rd_run.eq(self.rd_idx < self.length)]
        with m.If((self.rd_idx == self.length) & ~self.rd_ok):
            with m.If(pass2):
                m.next = "REPLY"
            with m.Else():
                m.next = check_state

    def decide_state(self, name: str, *, len_bad: Value, range_bad: Value, stmts,
                     next_state: str, then=None) -> None:
        """A two-pass command's verdict after its check pass: ``ERR_LENGTH`` if ``len_bad``,
        ``ERR_RANGE`` if ``range_bad``, else ``stmts`` (and what ``then()`` adds) and
        ``next_state`` (the write pass)."""
        m = self.m
        with m.State(name):
            m.d.comb += self.busy.eq(1)
            with m.If(len_bad):
                self.fail(ErrorCode.LENGTH)
            with m.Elif(range_bad):
                self.fail(ErrorCode.RANGE)
            with m.Else():
                m.d.sync += list(stmts)
                if then is not None:
                    then()
                m.next = next_state

    def wait_state(self, name: str, cond: Value, next_state: str, stmts=()) -> None:
        """A state that waits (busy) for ``cond``, then runs ``stmts`` and goes on."""
        m = self.m
        with m.State(name):
            m.d.comb += self.busy.eq(1)
            with m.If(cond):
                m.d.sync += list(stmts)
                m.next = next_state

    def init_states(self, body, *, clear: Signal, done: Value) -> None:
        """The states after reset: ``INIT`` (busy, ``body()`` adds its statements and goes to
        ``INIT_CLEAR`` when done), ``INIT_CLEAR`` strobes ``clear``, ``CLEAR_WAIT_INIT`` waits
        for ``done``, then ``IDLE``."""
        m = self.m
        with m.State("INIT"):
            m.d.comb += self.busy.eq(1)
            body()
        with m.State("INIT_CLEAR"):
            m.d.comb += self.busy.eq(1)
            m.d.sync += clear.eq(1)
            m.next = "CLEAR_WAIT_INIT"
        self.wait_state("CLEAR_WAIT_INIT", done, "IDLE")

    def reply_states(self, err_reply: int) -> None:
        """``ERROR`` selects the error reply (command ``err_reply``) and sets ``last_error``;
        ``REPLY`` (``rsel`` and ``reply_cmd`` already set) clears it. ``REPLY_START`` starts the
        frame with the length of ``rsel``'s reply, ``REPLY_BODY`` sends its bytes, then
        ``IDLE``."""
        m, ftx, busy = self.m, self.ftx, self.busy
        with m.State("ERROR"):
            m.d.comb += busy.eq(1)
            m.d.sync += [self.rsel.eq(R_ERROR), self.ridx.eq(0), self.reply_cmd.eq(err_reply),
                         self.last_error.eq(1)]
            m.next = "REPLY_START"
        with m.State("REPLY"):
            m.d.comb += busy.eq(1)
            with m.If(self.reply_cmd != err_reply):
                m.d.sync += self.last_error.eq(0)
            m.next = "REPLY_START"
        with m.State("REPLY_START"):
            m.d.comb += busy.eq(1)
            rlen = Signal(8)
            with m.Switch(self.rsel):
                for sel, n in self.reply_len.items():
                    with m.Case(sel):
                        m.d.comb += rlen.eq(n)
            with m.If(ftx.idle):
                m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(self.reply_cmd), ftx.length.eq(rlen)]
                m.next = "REPLY_BODY"
        with m.State("REPLY_BODY"):
            m.d.comb += [busy.eq(1), ftx.data.valid.eq(1), ftx.data.payload.eq(self.rbyte)]
            with m.If(ftx.data.ready):
                m.d.sync += self.ridx.eq(self.ridx + 1)
            with m.If(ftx.idle):
                m.next = "IDLE"


# Shared by the executors ------------------------------------------------------------------------


def param_word_ok(m: Module, shape, word: Value, width: int) -> Value:
    """:func:`lifgate.boards.protocol.param_word_valid` of ``word`` (``8 * param_bytes`` bits,
    the parameter word in its low ``width`` bits) for the array of ``shape``, in gateware."""
    fields = shape.layout.params

    def fld(name):
        f = fields[name]
        return word[f.offset:f.offset + f.width]

    W = shape.v_width
    mode, leak = fld("leak_mode"), fld("leak")
    mode_ok = Signal()
    m.d.comb += mode_ok.eq(0)
    for lm in shape.leak_modes:
        if lm == LeakMode.SHIFT:
            ok = leak <= W
        elif lm == LeakMode.MULT:
            # The field is max(W, F) bits wide: with F >= W every value is a legal factor,
            # and the compare would be constant (Verilator's CMPCONST stops the build).
            ok = (leak <= (1 << shape.decay_frac) - 1
                  if shape.leak_width > shape.decay_frac else Const(1))
        else:
            sleak = leak.as_signed()
            ok = ((sleak >= -(1 << (W - 1))) & (sleak <= (1 << (W - 1)) - 1)
                  if shape.leak_width > W else Const(1))
        with m.If(mode == int(lm)):
            m.d.comb += mode_ok.eq(ok)
    pad_ok = (word[width:] == 0) if len(word) > width else Const(1)
    if shape.reset_width > 1:
        # SUBTRACT_AFTER_LEAK built: the 2-bit reset field's code 3 is no reset mode (the
        # default 1-bit field has no illegal code, and no check)
        return mode_ok & pad_ok & (fld("reset_mode") != 3)
    return mode_ok & pad_ok
