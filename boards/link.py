"""Gateware of the array board's host link: the command executor around ``LIFArray``.

The frame handling (UART, decoder, encoder, payload reader, replies) is
:class:`~lifgate.boards.framelink.FrameCore`'s; this module adds the array's commands on top.
The behaviour is the one of the pure-Python model in :mod:`lifgate.boards.protocol`
(:class:`~lifgate.boards.protocol.FrameDecoder` and :class:`~lifgate.boards.protocol.BoardModel`);
the tests compare the two byte for byte. How to add a command: :mod:`lifgate.boards.framelink`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.boards.feed import CurrentFeeder
from lifgate.boards.framelink import (
    R_DONE,
    FrameCore,
    FrameRx,
    FrameTx,
    LinkComponent,
    crc16_update,
    le_bytes,
    param_word_ok,
)
from lifgate.boards.linkcompact import RAMP_BYTES, CompactCommands
from lifgate.boards.protocol import (
    COUNT_PACKED,
    RUN_EVENTS,
    RUN_PROBES,
    Cmd,
    ErrorCode,
    Features,
    version_payload,
)
from lifgate.boards.runstreams import EventEncoder, ProbeCapture, StreamSender
from lifgate.hdl.array import LIFArray
from lifgate.hdl.counts import SpikeCounter

from lifgate.config import ConfigError

__all__ = ["CURRENT_RAMS", "CurrentMemory", "FrameRx", "FrameTx", "HostLink", "SkidBuffer",
           "crc16_update"]


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


#: Kinds of the input-current memory: ``memory`` and ``spram`` (:class:`CurrentMemory`, read
#: through an address multiplexer), ``ecp5`` (:class:`~lifgate.boards.feed.CurrentFeeder`:
#: ``DP16KD`` blocks per lane with registered addresses) and ``feeder`` (the same feeder on
#: inferred memories of the same latency, for simulators without the primitive's model).
CURRENT_RAMS = ("memory", "spram", "ecp5", "feeder")


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


class HostLink(LinkComponent):
    """UART, frame decoder, command executor, input-current memory and the neuron array.

    Implements the protocol of :mod:`lifgate.boards.protocol`; :class:`BoardModel
    <lifgate.boards.protocol.BoardModel>` is its reference. The number of lanes must be a
    power of two (input currents are addressed as ``neuron // P``, ``neuron % P``). The frame
    handling is :class:`~lifgate.boards.framelink.FrameCore`'s; the executor of the array's
    commands is :class:`_ArrayExecutor`.

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
        iCE40 UltraPlus ``SB_SPRAM256KA`` instances (see :class:`CurrentMemory`); ``"ecp5"``
        / ``"feeder"``: :class:`~lifgate.boards.feed.CurrentFeeder` (see :data:`CURRENT_RAMS`).
    array_options : dict, optional
        Structural options of the :class:`~lifgate.hdl.array.LIFArray` (``pipeline``,
        ``lanes_per_enable``); they change its size and speed, not its behaviour.
    counts_ram : str
        With ``features.counts``: ``"memory"`` (block RAM) or ``"spram"`` (iCE40 UltraPlus
        ``SB_SPRAM256KA``) for the counts (:class:`~lifgate.hdl.counts.SpikeCounter`).

    The pins ``rx``, ``tx`` and ``status`` are :class:`~lifgate.boards.framelink.LinkComponent`'s;
    ``status`` bit 0 is the array's busy, bit 3 the input enable.
    """

    def __init__(self, features: Features, *, divisor: int, timeout: int,
                 current_ram: str = "memory", array_options: dict | None = None,
                 counts_ram: str = "memory"):
        if not isinstance(features, Features):
            raise TypeError(f"Features must be a Features, not {features!r}")
        lanes = features.shape.lanes
        if lanes & (lanes - 1):
            raise ConfigError(
                f"parameter 'lanes' must be a power of two for a board top, not {lanes!r}"
            )
        if current_ram not in CURRENT_RAMS:
            raise ValueError(f"Current RAM must be one of {', '.join(map(repr, CURRENT_RAMS))}"
                             f", not {current_ram!r}")
        if counts_ram not in ("memory", "spram"):
            raise ValueError(f"Counts RAM must be 'memory' or 'spram', not {counts_ram!r}")
        self.current_ram = current_ram
        self.counts_ram = counts_ram
        self.array_options = dict(array_options or {})
        super().__init__(features, divisor=divisor, timeout=timeout)

    def executor(self, m: Module, core: FrameCore) -> tuple:
        f = self.features
        m.submodules.array = array = LIFArray(f.shape, membrane=f.membrane, noise=f.noise,
                                              **self.array_options)
        ex = _ArrayExecutor(m, core, array, f, spram=self.current_ram == "spram",
                            counts_spram=self.counts_ram == "spram",
                            feeder={"ecp5": "ecp5", "feeder": "inferred"}.get(self.current_ram))
        return array.busy, ex.input_en


class _ArrayExecutor:
    """The array board's command executor on a :class:`FrameCore`: registers, the current
    memory, the run's feeder and ``STEP`` serializer, and the FSM states of its commands."""

    def __init__(self, m: Module, core: FrameCore, array, f: Features, *, spram: bool,
                 counts_spram: bool = False, feeder: str | None = None):
        self.m, self.core, self.array, self.f = m, core, array, f
        self.counts_spram = counts_spram
        shape = f.shape
        P, D, IW = shape.lanes, shape.depth, shape.i_width
        IB, PB = f.current_bytes, f.param_bytes

        # Input-current memory: one row per lane address, lane p in bits p*IW.
        # With a feeder (``feeder``: its RAMs' kind) the memory is the feeder's.
        self.feeder = feeder
        if feeder is None:
            m.submodules.cur = self.cur = CurrentMemory(lanes=P, width=IW, depth=D,
                                                        spram=spram)
        else:
            m.submodules.feeder = self.cur = CurrentFeeder(lanes=P, width=IW, depth=D,
                                                           kind=feeder)

        # Run-time registers.
        seed = Signal(32, init=1)
        gain = Signal(16)
        input_en = Signal()
        if f.noise:
            m.d.comb += [array.noise_seed.eq(seed), array.noise_gain.eq(gain)]
        self.seed, self.gain, self.input_en = seed, gain, input_en

        # The loader: SET_PARAMS is the longest header (or WRITE_RAMP's 16 bytes).
        self.acc_w = 8 * max(4 + PB, RAMP_BYTES if f.counts else 0)
        self.acc = core.loader(self.acc_w // 8)
        self.nload = Signal(range(self.acc_w // 8 + 1), name="nload")

        # Values of WRITE_CURRENTS.
        self.val = Signal(8 * IB, name="val")
        self.bi = Signal(range(IB + 1), name="bi")
        # Neuron index, start + values so far: start < 2**22 (else start_hi), fewer than
        # 2**16 values, so 23 bits never wrap.
        self.n_idx = Signal(23, name="n_idx")
        self.bad_value = Signal(name="bad_value")
        self.wr_addr = Signal(range(max(2, D)), name="wr_addr")
        self.wr_lane = Signal(range(max(2, P)), name="wr_lane")
        self.pass2 = Signal(name="pass2")
        self.start_hi = Signal(name="start_hi")  # start >= 2**22: certainly out of range

        # Replies.
        version = [Const(b, 8) for b in version_payload(f)]
        status = (le_bytes(input_en, 1) + le_bytes(array.step, 4) + le_bytes(seed, 4)
                  + le_bytes(gain, 2))
        core.replies(version=version, status=status, done=le_bytes(array.step, 4), size=64)

        self._run_path()
        self._record()
        self._checks()
        self._counts_path()
        self._strobes()
        self._serializer()
        self._streams()
        self._fsm()

    def loaded(self, n):
        """The first ``n`` bytes of the payload, once ``n`` bytes went through the loader."""
        return self.acc[self.acc_w - 8 * n:]

    def _run_path(self):
        """Run: flags, the i_stream feeder over the current memory, register slices, and the
        writes into the current memory."""
        m, array, cur = self.m, self.array, self.cur
        shape = self.f.shape
        P, D, IW = shape.lanes, shape.depth, shape.i_width
        self.flags = Signal(5, name="flags")
        self.running = running = Signal(name="running")
        self.arr_done = Signal(name="arr_done")
        self.serialize = Signal(name="serialize")  # a run sends STEP frames
        self.drain = Signal(name="drain")  # a run sends none: take every beat
        self.feed_addr = feed_addr = Signal(range(max(2, D)), name="feed_addr")
        self.feed_ok = feed_ok = Signal(name="feed_ok")
        # Register slices on both streams of the array: its ready signals (its pipeline
        # enable) then never depend combinationally on the serializer or the feeder.
        if self.feeder is None:
            m.submodules.islice = islice = SkidBuffer(array.i_stream.payload.shape(),
                                                      flush=True)
        else:
            islice = cur  # its stream's valid and payload are registers; flush begins a run
        # The output slice carries two flags beside the beat, computed before its registers:
        # first (address 0) and last (address D - 1) beat of a step.
        out_layout = data.StructLayout({"beat": array.o_stream.payload.shape(),
                                        "first": 1, "last": 1})
        m.submodules.oslice = oslice = SkidBuffer(out_layout)
        if self.feeder is None:
            wiring.connect(m, islice.o, array.i_stream)
        else:
            m.d.comb += [array.i_stream.payload.eq(cur.o.payload),
                         array.i_stream.valid.eq(cur.o.valid),
                         cur.o.ready.eq(array.i_stream.ready)]
        # The slice (or the feeder) is flushed in RUN_START (``flush_r``, set by RUN's
        # dispatch), before the feeder runs and the array starts: a register, not the
        # dispatch's command decode.
        self.flush_r = flush_r = Signal(name="flush_r")
        m.d.sync += flush_r.eq(0)
        m.d.comb += islice.flush.eq(flush_r)
        # A beat leaves the array when the slice and (a run with COUNTS) the counts unit
        # take it; ``out_ok`` is the latter's say (registers only).
        self.out_ok = out_ok = Signal(name="out_ok")
        m.d.comb += [
            oslice.i.valid.eq(array.o_stream.valid & out_ok),
            oslice.i.payload.beat.eq(array.o_stream.payload),
            oslice.i.payload.first.eq(array.o_stream.payload.addr == 0),
            oslice.i.payload.last.eq(array.o_stream.payload.addr == D - 1),
            array.o_stream.ready.eq(oslice.i.ready & out_ok),
        ]
        self.islice, self.oslice, self.ostream = islice, oslice, oslice.o
        self.wr_we = wr_we = Signal(P, name="wr_we")
        self.wr_data = wr_data = Signal(P * IW, name="wr_data")
        if self.feeder is not None:
            # The feeder's address counters and FIFOs (boards/feed.py); its write port
            # takes the write registers below.
            wr_we_r, wr_data_r = Signal(P), Signal(P * IW)
            wr_addr_r = Signal.like(self.wr_addr)
            m.d.sync += [wr_we_r.eq(wr_we), wr_data_r.eq(wr_data), wr_addr_r.eq(self.wr_addr)]
            m.d.comb += [cur.run.eq(running), cur.w_addr.eq(wr_addr_r), cur.w_we.eq(wr_we_r),
                         cur.w_data.eq(wr_data_r)]
            return
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
        wr_we_r, wr_data_r = Signal(P), Signal(P * IW)
        wr_addr_r = Signal.like(self.wr_addr)
        m.d.sync += [wr_we_r.eq(wr_we), wr_data_r.eq(wr_data), wr_addr_r.eq(self.wr_addr)]
        m.d.comb += [
            cur.addr.eq(Mux(running, Mux(feed_en, feed_addr, held), wr_addr_r)),
            cur.we.eq(wr_we_r),
            cur.wdata.eq(wr_data_r),
        ]

    def _record(self):
        """The bytes of one lane address's record in a ``STEP`` frame, and its counters."""
        f, shape = self.f, self.f.shape
        P, W = shape.lanes, shape.v_width
        VB, SB = f.value_bytes, f.spike_bytes
        beat = self.ostream.payload.beat
        rec = le_bytes(beat.step, 4) + le_bytes(beat.spikes, SB)
        if f.membrane:
            for p in range(P):
                rec += le_bytes(beat.v[p].as_unsigned(), VB) if VB * 8 == W else \
                    le_bytes(Cat(beat.v[p], *([beat.v[p][-1]] * (8 * VB - W))), VB)
        self.rec_tab = Array(rec + [Const(0, 8)] * ((1 << ceil_log2(len(rec))) - len(rec)))
        self.bidx = Signal(range(len(rec) + 1), name="bidx")
        self.at_last = Signal(name="at_last")  # bidx == last_byte, a register (off ready)
        self.in_frame = Signal(name="in_frame")
        last_spk = 3 + SB
        last_mem = 3 + SB + P * VB
        self.step_len_spk = f.step_length(False)
        self.step_len_mem = f.step_length(True) if f.membrane else self.step_len_spk
        self.last_byte = Mux(self.flags[1], last_mem, last_spk) if f.membrane else last_spk

    def _checks(self):
        """The array's inputs from the loader, and the value checks of SET_PARAMS, SET_INPUT
        and RUN (registered in ``VALIDATE``)."""
        m, array, f = self.m, self.array, self.f
        PB, PW = f.param_bytes, f.param_width
        loaded = self.loaded
        m.d.comb += [
            array.param_group.eq(loaded(4 + PB)[:32]),
            array.param_data.eq(loaded(4 + PB)[32:32 + PW]),
            array.steps.eq(loaded(5)[:32]),
            array.input_en.eq(self.input_en),
        ]
        # Parameter word check (protocol.param_word_valid).
        word = loaded(4 + PB)[32:]
        group = loaded(4 + PB)[:32]
        params_ok = Signal()
        m.d.comb += params_ok.eq(param_word_ok(m, f.shape, word, PW) & (group < f.shape.groups))
        flags_bad = self._flags_bad(loaded(5)[32:40])
        self.cur_len_bad, self.cur_range_bad = Signal(name="cur_len_bad"), \
            Signal(name="cur_range_bad")
        self.params_ok_r = Signal(name="params_ok_r")
        self.input_ok_r = Signal(name="input_ok_r")
        self.flags_bad_r = Signal(name="flags_bad_r")
        self._validate = [self.params_ok_r.eq(params_ok),
                          self.input_ok_r.eq(loaded(1)[1:8] == 0),
                          self.flags_bad_r.eq(flags_bad)]

    def _flags_bad(self, run_flags):
        """RUN flags the board does not take (:meth:`BoardModel.run_flags_ok
        <lifgate.boards.protocol.BoardModel.run_flags_ok>`)."""
        f = self.f
        bad = (run_flags & (0xFF & ~f.run_flags_built)).any()
        for mode, built in ((RUN_EVENTS, f.events), (RUN_PROBES, f.probes)):
            if built:  # a stream mode goes alone
                bad = bad | ((run_flags & mode).any() & (run_flags & (0xFF & ~mode)).any())
        return bad

    def _strobes(self):
        """The array's strobes come from registers (set in the state before)."""
        m, array = self.m, self.array
        arr_clear, arr_start, arr_pwe = Signal(), Signal(), Signal()
        m.d.sync += [arr_clear.eq(0), arr_start.eq(0), arr_pwe.eq(0)]
        m.d.comb += [array.clear.eq(arr_clear), array.start.eq(arr_start),
                     array.param_we.eq(arr_pwe)]
        self.arr_clear, self.arr_start, self.arr_pwe = arr_clear, arr_start, arr_pwe

    def _serializer(self):
        """STEP frame serializer: runs beside the executor while ``serialize`` is set (registers
        only gate it, so the executor's state decoding stays off the stream's ready path).

        A beat leaves the output slice the clock after its record's last byte was handed to
        the frame encoder (``popped``, a register), and the serializer does not look at the
        slice in that clock: the slice's ``ready`` is then a register, not the end of a path
        from the executor's state through the encoder's handshake (the UP5K board top's
        critical path, 31.25 MHz)."""
        m, ftx, ostream = self.m, self.core.ftx, self.ostream
        bidx, at_last, in_frame, flags = self.bidx, self.at_last, self.in_frame, self.flags
        popped = Signal(name="popped")
        m.d.sync += popped.eq(0)
        # The record's byte is a register (``rec_byte``, the byte at ``bidx`` of the beat one
        # clock late: the byte multiplexer ends in a flip-flop); ``fresh`` says it belongs to
        # the current ``bidx`` and beat: neither changed in the clock before (a byte taken,
        # a beat popped, the slice empty).
        rec_byte = Signal(8, name="rec_byte")
        fresh = Signal(name="fresh")
        m.d.sync += [rec_byte.eq(self.rec_tab[bidx]), fresh.eq(ostream.valid & ~popped)]
        m.d.comb += ostream.ready.eq(self.drain | popped)
        with m.If(self.serialize):
            ovalid = ostream.valid & ~popped
            with m.If(ovalid & ostream.payload.first & ~in_frame & ftx.idle):
                m.d.comb += [
                    ftx.start.eq(1), ftx.cmd.eq(Cmd.STEP),
                    ftx.length.eq(Mux(flags[1], self.step_len_mem, self.step_len_spk)),
                ]
                m.d.sync += in_frame.eq(1)
            m.d.comb += [
                ftx.data.valid.eq(ovalid & in_frame & fresh),
                ftx.data.payload.eq(rec_byte),
            ]
            with m.If(ftx.data.valid & ftx.data.ready):
                m.d.sync += fresh.eq(0)
                m.d.sync += [bidx.eq(bidx + 1), at_last.eq(bidx + 1 == self.last_byte)]
                with m.If(at_last):
                    m.d.sync += popped.eq(1)
                    with m.If(ostream.payload.last):
                        m.d.sync += [bidx.eq(0), in_frame.eq(0), at_last.eq(0)]
                    with m.Else():
                        m.d.sync += [bidx.eq(4), at_last.eq(self.last_byte == 4)]

    def _streams(self):
        """The run streams (``EVENTS``, ``PROBES``): encoder, probe capture and the stream
        sender on the frame core's ``FrameTx`` (:mod:`lifgate.boards.runstreams`), and the
        probe registers ``SET_PROBES`` writes."""
        m, f, core, ostream = self.m, self.f, self.core, self.ostream
        self.smode = smode = Signal(2, name="smode")  # bit 0 EVENTS, bit 1 PROBES run
        self.streams_idle = Const(1)
        if not (f.events or f.probes):
            return
        m.submodules.stream_tx = snd = self.sender = StreamSender(f)
        beat, last = ostream.payload.beat, ostream.payload.last
        producers_idle = Const(1)
        units = []
        if f.events:
            m.submodules.events = enc = EventEncoder(f)
            m.d.comb += [enc.i.payload.addr.eq(beat.addr), enc.i.payload.spikes.eq(beat.spikes),
                         enc.i.payload.last.eq(last)]
            units.append((smode[0], enc))
            producers_idle = producers_idle & enc.idle
        S = f.probes
        self.probe_n, self.probe_k = [], Const(0, 1)
        if S:
            self.probe_k = Signal(range(S + 1), name="probe_k")
            m.submodules.probes = cap = ProbeCapture(f)
            nb = len(cap.neuron[0])
            self.probe_n = [Signal(nb, name=f"probe{s}") for s in range(S)]
            m.d.comb += [cap.i.payload.addr.eq(beat.addr), cap.i.payload.spikes.eq(beat.spikes),
                         cap.i.payload.v.eq(beat.v), cap.i.payload.last.eq(last),
                         cap.count.eq(self.probe_k)]
            m.d.comb += [cap.neuron[s].eq(self.probe_n[s]) for s in range(S)]
            units.append((smode[1], cap))
            producers_idle = producers_idle & cap.idle
        for on, unit in units:
            with m.If(on):
                m.d.comb += [unit.i.valid.eq(ostream.valid), ostream.ready.eq(unit.i.ready),
                             snd.i.valid.eq(unit.o.valid), snd.i.payload.eq(unit.o.payload),
                             unit.o.ready.eq(snd.i.ready)]
        ftx = core.ftx
        m.d.comb += [
            snd.tx_idle.eq(ftx.idle),
            snd.start_label.eq(self.array.step),
            snd.record.eq(Mux(smode[1], self.probe_k * f.value_bytes, 0)),
            snd.cmd.eq(Mux(smode[1], Cmd.PROBES, Cmd.EVENTS)),
            snd.finish.eq(self.arr_done & ~ostream.valid & producers_idle),
        ]
        with m.If(smode.any()):
            m.d.comb += [ftx.start.eq(snd.tx_start), ftx.cmd.eq(snd.tx_cmd),
                         ftx.length.eq(snd.tx_length), ftx.data.valid.eq(snd.tx_data.valid),
                         ftx.data.payload.eq(snd.tx_data.payload),
                         snd.tx_data.ready.eq(ftx.data.ready)]
        self.streams_idle = producers_idle & snd.idle
        # SET_PROBES: the value being read, its byte count, the slot written, a bad value seen.
        self.pv = Signal(32, name="pv")
        self.pbi = Signal(2, name="pbi")
        self.pslot = Signal(range(max(2, S)), name="pslot")
        self.pbad = Signal(name="pbad")
        self.pprev = Signal(32, name="pprev")  # the neuron before (they must not decrease)

    def _stream_decode(self) -> list:
        """Rows of the decode table for the run streams' commands."""
        S, length = self.f.probes, self.core.length
        if not S:
            return []
        return [(Cmd.SET_PROBES, (length[:2] == 0) & (length <= 4 * S), [self.nload.eq(0)])]

    def _stream_dispatch(self) -> dict:
        """Entries of the dispatch table for the run streams' commands."""
        if not self.f.probes:
            return {}

        def set_probes():
            self.m.d.sync += [self.pass2.eq(0), self.pbad.eq(0), self.pbi.eq(0),
                              self.pslot.eq(0), self.pprev.eq(0)]
            self.m.next = "PROBES_SET"

        return {Cmd.SET_PROBES: set_probes}

    def _probes_states(self):
        """SET_PROBES: two passes over the neuron indices (u32 each): check (each ``< N`` and
        not below the one before), then write."""
        m, core, f = self.m, self.core, self.f
        if not f.probes:
            return
        br = core.br
        with m.State("PROBES_SET"):
            core.two_pass_reader(self.pass2, "PROBES_DECIDE")
            full = Cat(self.pv[8:], br.data)
            with m.If(core.rd_ok):
                m.d.sync += [self.pv.eq(full), self.pbi.eq(self.pbi + 1)]
                with m.If(self.pbi == 3):
                    m.d.sync += self.pprev.eq(full)
                    with m.If(~self.pass2 & ((full >= f.shape.neurons) | (full < self.pprev))):
                        m.d.sync += self.pbad.eq(1)
                    with m.If(self.pass2):
                        with m.Switch(self.pslot):
                            for s, reg in enumerate(self.probe_n):
                                with m.Case(s):
                                    m.d.sync += reg.eq(full[:len(reg)])
                        m.d.sync += self.pslot.eq(self.pslot + 1)
        core.decide_state("PROBES_DECIDE", len_bad=Const(0), range_bad=self.pbad,
                          stmts=[self.pass2.eq(1), core.rd_idx.eq(0), self.pslot.eq(0),
                                 self.probe_k.eq(core.length >> 2)],
                          next_state="PROBES_SET")

    # The executor's states --------------------------------------------------------------------

    def _fsm(self):
        m, core, length = self.m, self.core, self.core.length
        PB = self.f.param_bytes
        with m.FSM(name="exec") as fsm:
            self._init_states()
            core.receive_states()
            core.decode_state([
                (Cmd.VERSION, length == 0, [self.nload.eq(0)]),
                (Cmd.STATUS, length == 0, [self.nload.eq(0)]),
                (Cmd.CLEAR, length == 0, [self.nload.eq(0)]),
                (Cmd.SET_PARAMS, length == 4 + PB, [self.nload.eq(4 + PB)]),
                (Cmd.SET_NOISE, length == 6, [self.nload.eq(6)]),
                (Cmd.SET_INPUT, length == 1, [self.nload.eq(1)]),
                (Cmd.WRITE_CURRENTS, length >= 4, [self.nload.eq(4)]),
                (Cmd.RUN, length == 5, [self.nload.eq(5)]),
                *self._counts_decode(),
                *self._stream_decode(),
            ])
            core.load_state(self.nload)
            with m.State("VALIDATE"):
                # Registered checks of the loaded values.
                m.d.comb += core.busy.eq(1)
                m.d.sync += self._validate
                m.next = "DISPATCH"
            core.dispatch_state({
                Cmd.VERSION: core.reply_version,
                Cmd.STATUS: core.reply_status,
                Cmd.SET_PARAMS: lambda: core.reply_if(self.params_ok_r, [self.arr_pwe.eq(1)]),
                Cmd.SET_NOISE: self._set_noise,
                Cmd.SET_INPUT: lambda: core.reply_if(
                    self.input_ok_r, [self.input_en.eq(self.loaded(1)[0])]),
                Cmd.CLEAR: self._clear,
                Cmd.WRITE_CURRENTS: self._write_currents,
                Cmd.RUN: self._run,
                **self._counts_dispatch(),
                **self._stream_dispatch(),
            })
            core.wait_state("CLEAR_WAIT", self.array.done, "REPLY")
            self._currents_states()
            self._run_states()
            self._counts_states()
            self._probes_states()
            core.reply_states(Cmd.ERR)
        # One-hot: Yosys leaves a state register with an initial value binary, and the decode
        # of its 5 bits sat in front of every register the states enable (the UP5K top's
        # critical path, 33.6 MHz). The ``sync`` reset (held until the PLL locks) sets it.
        fsm.state.attrs["fsm_encoding"] = "one-hot"

    def _init_states(self):
        """Zero the input currents (SPRAM powers up undefined), then clear the array."""
        m, core, shape = self.m, self.core, self.f.shape
        P, D = shape.lanes, shape.depth

        def body():
            m.d.comb += [self.wr_we.eq((1 << P) - 1), self.wr_data.eq(0)]
            m.d.sync += self.wr_addr.eq(self.wr_addr + 1)
            with m.If(self.wr_addr == D - 1):
                m.next = "INIT_CLEAR"

        core.init_states(body, clear=self.arr_clear, done=self.array.done)

    def _set_noise(self):
        self.m.d.sync += [self.seed.eq(self.loaded(6)[:32]), self.gain.eq(self.loaded(6)[32:48])]
        self.m.next = "REPLY"

    def _clear(self):
        self.m.d.sync += self.arr_clear.eq(1)
        self.m.next = "CLEAR_WAIT"

    def _write_currents(self):
        shape = self.f.shape
        P, D = shape.lanes, shape.depth
        LB = ceil_log2(P)  # lane bits
        start = self.loaded(4)[:32]
        self.m.d.sync += [
            self.n_idx.eq(start[:22]),
            self.start_hi.eq(start[22:].any()),
            self.wr_addr.eq(start[LB:LB + max(1, ceil_log2(D))] if D > 1 else 0),
            self.wr_lane.eq(start[:LB] if P > 1 else 0),
            self.bad_value.eq(0), self.bi.eq(0), self.pass2.eq(0),
        ]
        self.m.next = "CURRENTS"

    def _run(self):
        m, core = self.m, self.core
        fl = self.loaded(5)[32:40]
        with m.If(self.flags_bad_r):
            core.fail(ErrorCode.RANGE)
        with m.Else():
            m.d.sync += [self.flags.eq(fl[:5]), self.feed_addr.eq(0), self.feed_ok.eq(0),
                         self.bidx.eq(0), self.in_frame.eq(0), self.at_last.eq(0)]
            m.d.sync += self.flush_r.eq(1)
            if self.f.events or self.f.probes:
                m.d.sync += self.smode.eq(Cat(fl[3], fl[4]))
                m.d.comb += self.sender.begin.eq(1)
            m.next = "RUN_START"

    def _currents_states(self):
        """WRITE_CURRENTS: two passes over the values (payload bytes 4..length-1): check, then
        write."""
        m, core, f = self.m, self.core, self.f
        IW, N = f.shape.i_width, f.shape.neurons
        IB = f.current_bytes
        br, bi, val = core.br, self.bi, self.val
        with m.State("CURRENTS"):
            core.two_pass_reader(self.pass2, "CURRENTS_CHECK")
            value_done = core.rd_ok & (bi == IB - 1)
            full = Cat(val[8:], br.data) if IB > 1 else br.data
            with m.If(core.rd_ok):
                m.d.sync += [val.eq(full), bi.eq(Mux(bi == IB - 1, 0, bi + 1))]
            with m.If(value_done):
                m.d.sync += self.n_idx.eq(self.n_idx + 1)
                if 8 * IB > IW:
                    top = full[IW - 1:]
                    with m.If(~(top.all() | ~top.any())):
                        m.d.sync += self.bad_value.eq(1)
                with m.If(self.pass2):
                    self.write_current(full[:IW])
        with m.State("CURRENTS_CHECK"):
            m.d.comb += core.busy.eq(1)
            m.d.sync += [self.cur_len_bad.eq(bi != 0),
                         self.cur_range_bad.eq(self.bad_value | self.start_hi | (self.n_idx > N))]
            m.next = "CURRENTS_DECIDE"
        core.decide_state("CURRENTS_DECIDE", len_bad=self.cur_len_bad,
                          range_bad=self.cur_range_bad,
                          stmts=[self.pass2.eq(1), core.rd_idx.eq(4), self.n_idx.eq(0)],
                          next_state="CURRENTS")

    def write_current(self, value):
        """Write ``value`` (``i_width`` bits) into the current memory at neuron
        (``wr_addr``, ``wr_lane``) in this clock and step to the next neuron (lane first); the
        caller's condition says when (the second pass of WRITE_CURRENTS, of WRITE_RAMP)."""
        m, P = self.m, self.f.shape.lanes
        m.d.comb += [self.wr_data.eq(Cat(*([value] * P))),
                     self.wr_we.eq((Const(1, P) << self.wr_lane)[:P])]
        if P > 1:
            m.d.sync += self.wr_lane.eq(self.wr_lane + 1)
            with m.If(self.wr_lane == P - 1):
                m.d.sync += self.wr_addr.eq(self.wr_addr + 1)
        else:
            m.d.sync += self.wr_addr.eq(self.wr_addr + 1)

    def _run_states(self):
        m, core, flags = self.m, self.core, self.flags
        with m.State("RUN_START"):
            m.d.comb += core.busy.eq(1)
            m.d.sync += self.arr_start.eq(1)
            m.d.sync += [self.running.eq(1), self.arr_done.eq(0),
                         self.serialize.eq(flags[:2] != 0),
                         self.drain.eq((flags[:2] == 0) & ~self.smode.any())]
            if self.f.counts:
                m.d.sync += self.counting.eq(flags[2])
            m.next = "RUN"
        with m.State("RUN"):
            m.d.comb += core.busy.eq(1)
            with m.If(self.array.done):
                m.d.sync += [self.running.eq(0), self.arr_done.eq(1)]
            # The last beats left the slice (and were counted; the run streams are out).
            with m.If(self.arr_done & ~self.ostream.valid & self.counts_idle
                      & self.streams_idle):
                m.d.sync += [core.rsel.eq(R_DONE), core.ridx.eq(0),
                             core.reply_cmd.eq(Cmd.RUN_DONE),
                             self.serialize.eq(0), self.drain.eq(0), self.smode.eq(0)]
                if self.f.counts:
                    m.d.sync += self.counting.eq(0)
                m.next = "RUN_END"
        core.wait_state("RUN_END", core.ftx.idle, "REPLY")

    # Spike counts (COUNTS) ----------------------------------------------------------------------

    def _counts_path(self):
        """The counts unit (:class:`~lifgate.hdl.counts.SpikeCounter`) beside the output slice:
        during a run with COUNTS every beat the array hands out goes to both."""
        m, f, array = self.m, self.f, self.array
        shape = f.shape
        P, D = shape.lanes, shape.depth
        if not f.counts:
            m.d.comb += self.out_ok.eq(1)
            self.counts_idle = Const(1)
            return
        m.submodules.counts = cnt = SpikeCounter(depth=D, lanes=P, spram=self.counts_spram)
        self.cnt = cnt
        self.counting = counting = Signal(name="counting")
        self.counts_idle = cnt.idle
        beat = array.o_stream.payload
        m.d.comb += [
            self.out_ok.eq(~counting | cnt.i.ready),
            cnt.i.valid.eq(array.o_stream.valid & counting & self.oslice.i.ready),
            cnt.i.payload.addr.eq(beat.addr),
            cnt.i.payload.spikes.eq(beat.spikes),
            cnt.i.payload.last.eq(beat.addr == D - 1),
        ]
        # READ_COUNTS: header fields (registered in VALIDATE), the reply's sequencer.
        nb = cnt.neuron_bits
        self.rc_neuron = Signal(nb + 1, name="rc_neuron")
        self.rc_left = Signal(nb + 1, name="rc_left")  # records still to send
        self.rc_fmt = Signal(2, name="rc_fmt")
        self.rc_len = Signal(24, name="rc_len")
        self.rc_bad = Signal(name="rc_bad")
        self.rc_k = Signal(range(4), name="rc_k")  # words fetched of the record
        self.rc_b = Signal(range(8), name="rc_b")  # byte of the header / record
        self.rc_words = [Signal(16, name=f"rc_w{k}") for k in range(3)]
        start, count, fmt = self.loaded(9)[:32], self.loaded(9)[32:64], self.loaded(9)[64:72]
        total = Signal(33)
        m.d.comb += total.eq(start + count)
        self._validate += [
            self.rc_bad.eq((total > shape.neurons) | (fmt > COUNT_PACKED)),
            self.rc_neuron.eq(start[:nb + 1]),
            self.rc_left.eq(count[:nb + 1]),
            self.rc_fmt.eq(fmt[:2]),
            self.rc_len.eq(4 + Mux(fmt[0], (count[:22] << 1) + count[:22],
                                   (count[:22] << 2) + (count[:22] << 1))),
        ]
        m.d.comb += [cnt.rd_neuron.eq(self.rc_neuron[:nb]),
                     cnt.rd_plane.eq(Mux(self.rc_k == 3, 2, self.rc_k))]
        self.compact = CompactCommands(self)  # WRITE_RAMP, READ_COUNTS format 2

    def _counts_decode(self) -> list:
        if not self.f.counts:
            return []
        length = self.core.length
        return [(Cmd.CLEAR_COUNTS, length == 0, [self.nload.eq(0)]),
                (Cmd.READ_COUNTS, length == 9, [self.nload.eq(9)]), *self.compact.decode()]

    def _counts_dispatch(self) -> dict:
        if not self.f.counts:
            return {}
        return {Cmd.CLEAR_COUNTS: self._clear_counts, Cmd.READ_COUNTS: self._read_counts,
                **self.compact.dispatch()}

    def _clear_counts(self):
        m, core = self.m, self.core
        m.d.comb += self.cnt.clear.eq(1)
        m.d.sync += core.reply_cmd.eq(Cmd.COUNTS_CLEARED)
        m.next = "COUNTS_CLEAR_WAIT"

    def _read_counts(self):
        m, core = self.m, self.core
        with m.If(self.rc_bad):
            core.fail(ErrorCode.RANGE)
        with m.Else():
            m.d.sync += [self.rc_k.eq(0), self.rc_b.eq(0)]
            m.next = "COUNTS_START"
            self.compact.read_counts()

    def _counts_states(self):
        """``CLEAR_COUNTS`` waits for the unit; ``READ_COUNTS`` sends its ``COUNTS`` frame:
        the window, then per neuron the three words fetched, then the record's bytes."""
        if not self.f.counts:
            return
        m, core, ftx, cnt = self.m, self.core, self.core.ftx, self.cnt
        core.wait_state("COUNTS_CLEAR_WAIT", cnt.idle, "REPLY")
        c, first, last = self.rc_words
        span = Signal(16, name="rc_span")
        m.d.comb += span.eq(last - first)
        rec0 = le_bytes(c, 2) + le_bytes(first, 2) + le_bytes(last, 2)
        rec1 = [Mux(c[8:].any(), 0xFF, c[:8])] + le_bytes(span, 2)
        rec = Signal(8, name="rc_byte")
        m.d.comb += rec.eq(Mux(self.rc_fmt[0], Array(rec1 + [Const(0, 8)] * 5)[self.rc_b],
                               Array(rec0 + [Const(0, 8)] * 2)[self.rc_b]))
        rec_last = Mux(self.rc_fmt[0], 2, 5)
        window = le_bytes(cnt.window, 4)
        with m.State("COUNTS_START"):  # the unit is idle once the executor is (no run)
            m.d.comb += core.busy.eq(1)
            with m.If(ftx.idle & cnt.idle):
                m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(Cmd.COUNTS), ftx.length.eq(self.rc_len)]
                m.d.sync += core.last_error.eq(0)
                m.next = "COUNTS_HDR"
        with m.State("COUNTS_HDR"):
            m.d.comb += [core.busy.eq(1), ftx.data.valid.eq(1),
                         ftx.data.payload.eq(Array(window + [Const(0, 8)] * 4)[self.rc_b])]
            with m.If(ftx.data.ready):
                m.d.sync += self.rc_b.eq(self.rc_b + 1)
                with m.If(self.rc_b == 3):
                    m.d.sync += self.rc_b.eq(0)
                    m.next = "COUNTS_NEXT"
                    self.compact.after_window()
        with m.State("COUNTS_NEXT"):
            m.d.comb += core.busy.eq(1)
            with m.If(self.rc_left == 0):
                m.next = "COUNTS_END"
            with m.Else():
                m.d.sync += self.rc_k.eq(0)
                m.next = "COUNTS_FETCH"
        with m.State("COUNTS_FETCH"):  # address k this clock, word k - 1 arrives
            m.d.comb += core.busy.eq(1)
            m.d.sync += self.rc_k.eq(self.rc_k + 1)
            for k in range(1, 4):
                with m.If(self.rc_k == k):
                    m.d.sync += self.rc_words[k - 1].eq(cnt.rd_data)
            with m.If(self.rc_k == 3):
                m.d.sync += self.rc_b.eq(0)
                m.next = "COUNTS_EMIT"
        with m.State("COUNTS_EMIT"):
            m.d.comb += [core.busy.eq(1), ftx.data.valid.eq(1), ftx.data.payload.eq(rec)]
            with m.If(ftx.data.ready):
                m.d.sync += self.rc_b.eq(self.rc_b + 1)
                with m.If(self.rc_b == rec_last):
                    m.d.sync += [self.rc_neuron.eq(self.rc_neuron + 1),
                                 self.rc_left.eq(self.rc_left - 1)]
                    m.next = "COUNTS_NEXT"
        core.wait_state("COUNTS_END", ftx.idle, "IDLE")
        self.compact.ramp_states()
        self.compact.packed_states()
