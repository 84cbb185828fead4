"""Gateware of the run streams of the array board's link: ``EVENTS`` and ``PROBES``.

The protocol is described in :mod:`lifgate.boards.protocol` (section "Run streams"); its model
is :class:`~lifgate.boards.protocol.BoardModel` with :func:`~lifgate.boards.protocol.encode_events`,
:func:`~lifgate.boards.protocol.probe_record` and
:class:`~lifgate.boards.protocol.StreamChunker`. Three units, wired into the array link's
executor by :class:`lifgate.boards.link.HostLink` when the board is built with them:

* :class:`EventEncoder`: the array's output beats to the bytes of the ``EVENTS`` code, one byte
  per clock at most, stalling the array while its output is not taken;
* :class:`ProbeCapture`: the membrane values of the probe neurons, one record per step;
* :class:`StreamSender`: the stream FIFO (one block RAM of ``max_payload`` bytes rounded up to a
  power of two) and the frames it is cut into, on the link's shared :class:`FrameTx
  <lifgate.boards.framelink.FrameTx>`.

What they cost on a 4,096 x 8 UP5K link (Yosys ``synth_ice40 -dsp -spram``, no place and
route, against the same link without them): EVENTS +283 ``SB_LUT4``, +119 ``SB_CARRY``, +164
flip-flops and one ``SB_RAM40_4K`` (the 512-byte FIFO); PROBES with 8 slots on top of that
+495 ``SB_LUT4``, +70 ``SB_CARRY``, +306 flip-flops (1,030 LUTs with a comparator and lane
multiplexer per slot, the design before the slots were sorted). No SPRAM.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.boards.framelink import le_bytes
from lifgate.boards.protocol import EVENT_SKIP, Features

from lifgate.config import ConfigTypeError

__all__ = ["EventEncoder", "ProbeCapture", "StreamSender", "beat_in_layout"]


def _lane_bits(shape) -> int:
    return ceil_log2(shape.lanes)


def _addr_bits(shape) -> int:
    return max(1, ceil_log2(shape.depth))


def beat_in_layout(shape, *, membrane: bool) -> data.StructLayout:
    """What the stream units read of an output beat: ``addr``, ``spikes``, ``last`` (the
    step's last beat) and, with ``membrane``, ``v``."""
    fields = {"addr": unsigned(_addr_bits(shape)), "spikes": unsigned(shape.lanes),
              "last": unsigned(1)}
    if membrane:
        fields["v"] = data.ArrayLayout(signed(shape.v_width), shape.lanes)
    return data.StructLayout(fields)


def _check_features(features):
    if not isinstance(features, Features):
        raise ConfigTypeError(f"Features must be a Features, not {features!r}")
    lanes = features.shape.lanes
    if lanes & (lanes - 1):
        raise ConfigTypeError(f"Lanes must be a power of two, not {lanes!r}")


class EventEncoder(wiring.Component):
    """The ``EVENTS`` code of the beats: per event its distance byte(s), per step ``0x00``.

    Holds one beat; per clock it sends at most one byte: a skip ``0xFF`` or the distance of the
    lowest pending spike, or the end-of-step marker once the step's last beat has no pending
    spike. A beat without spikes that is not a step's last is replaced in the clock it arrives
    after, so the array runs at one beat per clock between events.

    Parameters
    ----------
    features : Features
        The board (its shape; lanes a power of two).

    Members
    -------
    i : ``In(stream.Signature(beat_in_layout(shape, membrane=False)))``
        Beats in step order.
    o : ``Out(stream.Signature(8))``
        The stream bytes.
    idle : ``Out(1)``
        No beat held.
    """

    def __init__(self, features: Features):
        _check_features(features)
        self._shape = features.shape
        super().__init__({
            "i": In(stream.Signature(beat_in_layout(features.shape, membrane=False))),
            "o": Out(stream.Signature(8)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shape = self._shape
        P, N, LB = shape.lanes, shape.neurons, _lane_bits(shape)
        have = Signal()
        pending = Signal(P)
        addr = Signal(_addr_bits(shape))
        last = Signal()
        # The step's previous event (-1: none yet), or where the skips have brought it.
        prev = Signal(range(-1, N), init=-1)
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(pending[p]):
                m.d.comb += lane.eq(p)
        # Lanes are a power of two: the neuron is the address and the lane side by side, and
        # the distance one subtraction.
        n = Signal(range(N))
        dist = Signal(range(N + 2))
        far = Signal()
        m.d.comb += [
            n.eq(Cat(lane[:LB], addr) if LB else addr),
            dist.eq(n - prev),
            far.eq(dist > EVENT_SKIP),
            self.idle.eq(~have),
            self.i.ready.eq(~have | (~pending.any() & ~last)),
        ]
        with m.If(have & pending.any()):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Mux(far, 0xFF, dist[:8]))]
            with m.If(self.o.ready):
                with m.If(far):
                    m.d.sync += prev.eq(prev + EVENT_SKIP)
                with m.Else():
                    m.d.sync += [prev.eq(n), pending.eq(pending & (pending - 1))]
        with m.Elif(have & last):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(0)]
            with m.If(self.o.ready):
                m.d.sync += [prev.eq(-1), have.eq(0)]
        with m.Elif(have):
            m.d.sync += have.eq(0)  # nothing left to send: dropped (or replaced below)
        with m.If(self.i.valid & self.i.ready):
            beat = self.i.payload
            m.d.sync += [have.eq(1), pending.eq(beat.spikes), last.eq(beat.last),
                         addr.eq(beat.addr)]
        return m


class ProbeCapture(wiring.Component):
    """The ``PROBES`` records: the membrane values of up to ``features.probes`` neurons.

    The slots hold their neurons in increasing order (``SET_PROBES`` refuses any other), and
    the beats come in address order, so one comparator and one lane multiplexer serve them
    all: while the next slot's neuron lies in the beat at hand, its value is kept and the
    beat is held for a clock (so one clock per probe and step); else the beat is taken. After
    a step's last beat the record (the first ``count`` slots, ``value_bytes`` bytes each) goes
    out, one byte per clock, while the next beat waits.

    Parameters
    ----------
    features : Features
        The board (membrane readback built, ``probes > 0`` slots, lanes a power of two).

    Members
    -------
    i : ``In(stream.Signature(beat_in_layout(shape, membrane=True)))``
        Beats in step order.
    neuron : ``In(data.ArrayLayout(range(N), probes))``
        The probe neurons, in increasing order (held while a run goes).
    count : ``In(range(probes + 1))``
        How many slots are set.
    o : ``Out(stream.Signature(8))``
        The stream bytes.
    idle : ``Out(1)``
        No record being sent.
    """

    def __init__(self, features: Features):
        _check_features(features)
        if not features.probes or not features.membrane:
            raise ConfigTypeError(f"ProbeCapture needs probes and membrane readback, not "
                                  f"{features!r}")
        self._f = features
        shape, S = features.shape, features.probes
        super().__init__({
            "i": In(stream.Signature(beat_in_layout(shape, membrane=True))),
            "neuron": In(data.ArrayLayout(unsigned(_lane_bits(shape) + _addr_bits(shape)), S)),
            "count": In(range(S + 1)),
            "o": Out(stream.Signature(8)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        f, shape = self._f, self._f.shape
        S, W, VB, LB = f.probes, shape.v_width, f.value_bytes, _lane_bits(shape)
        beat = self.i.payload
        ptr = Signal(range(S + 1))  # the next slot to fill this step
        slot = Signal(len(self.neuron[0]))
        m.d.comb += slot.eq(Array(self.neuron[s] for s in range(S))[ptr[:max(1, ceil_log2(S))]]
                            if S > 1 else self.neuron[0])
        match = Signal()
        push = Signal()  # the record of the step before is going out: the next beat waits
        m.d.comb += match.eq(self.i.valid & ~push & (ptr < self.count)
                             & (slot[LB:] == beat.addr))
        lane_v = Array(beat.v[p] for p in range(shape.lanes))[slot[:LB]] if LB else beat.v[0]
        caps = []
        for s in range(S):
            cap = Signal(signed(W), name=f"cap{s}")
            with m.If(match & (ptr == s)):
                m.d.sync += cap.eq(lane_v)
            caps.append(cap)
        with m.If(match):
            m.d.sync += ptr.eq(ptr + 1)
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        with m.If(take & beat.last):
            m.d.sync += ptr.eq(0)
        rec = []
        for cap in caps:
            rec += le_bytes(Cat(cap, *([cap[-1]] * (8 * VB - W))), VB)
        rec_tab = Array(rec + [Const(0, 8)] * ((1 << ceil_log2(len(rec))) - len(rec)))
        j = Signal(range(len(rec) + 1))
        last_j = Signal(range(len(rec) + 1))
        m.d.comb += [last_j.eq(self.count * VB - 1), self.i.ready.eq(~push & ~match),
                     self.idle.eq(~push), self.o.valid.eq(push),
                     self.o.payload.eq(rec_tab[j])]
        with m.If(take & beat.last & (self.count != 0)):
            m.d.sync += [push.eq(1), j.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += j.eq(j + 1)
            with m.If(j == last_j):
                m.d.sync += push.eq(0)
        return m


class StreamSender(wiring.Component):
    """The stream FIFO and its frames: ``label u32`` + ``chunk`` stream bytes per frame, the
    rest in the run's last frame (:class:`~lifgate.boards.protocol.StreamChunker`).

    A frame starts when the FIFO holds ``chunk`` bytes, or, once ``finish`` is high (nothing
    more will come), when it holds any; its label is the step of its first byte, counted from
    ``start_label`` by the bytes sent: a ``0x00`` (with ``record == 0``) or every
    ``record``-th byte ends a step.

    Parameters
    ----------
    features : Features
        ``stream_chunk`` and ``stream_fifo`` size the frames and the FIFO.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Stream bytes; not ready while the FIFO is full.
    begin : ``In(1)``
        Strobe before a run (idle): empty FIFO, label ``start_label``.
    start_label : ``In(step_width)``
    record : ``In(range(4 * probes + 1))``
        Bytes of a step's record, 0 for the ``EVENTS`` code (held during a run).
    cmd : ``In(8)``
        The frames' command (held during a run).
    finish : ``In(1)``
        Level: no more bytes will come this run.
    idle : ``Out(1)``
        The FIFO is empty and no frame is being handed to ``FrameTx``.
    tx_start, tx_cmd, tx_length, tx_data, tx_idle
        To the link's :class:`~lifgate.boards.framelink.FrameTx`.
    """

    def __init__(self, features: Features):
        _check_features(features)
        self._f = features
        shape = features.shape
        super().__init__({
            "i": In(stream.Signature(8)),
            "begin": In(1),
            "start_label": In(shape.step_width),
            "record": In(range(4 * max(1, features.probes) + 1)),
            "cmd": In(8),
            "finish": In(1),
            "idle": Out(1),
            "tx_start": Out(1),
            "tx_cmd": Out(8),
            "tx_length": Out(24),
            "tx_data": Out(stream.Signature(8)),
            "tx_idle": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        f = self._f
        B, C, SW = f.stream_fifo, f.stream_chunk, f.shape.step_width
        m.submodules.fifo = fifo = Memory(shape=8, depth=B, init=[])
        wp, rp = fifo.write_port(), fifo.read_port()
        AB = ceil_log2(B)
        wr, rd = Signal(AB), Signal(AB)
        count = Signal(range(B + 1))
        label = Signal(SW)
        rec_i = Signal.like(self.record)
        in_frame = Signal()
        j = Signal(range(C + 5))  # payload byte being handed over
        flen = Signal(range(C + 1))
        frame_label = Signal(SW)

        push = Signal()
        pop = Signal()
        m.d.comb += [
            self.i.ready.eq(count != B),
            push.eq(self.i.valid & self.i.ready),
            wp.addr.eq(wr), wp.data.eq(self.i.payload), wp.en.eq(push),
            rp.addr.eq(rd + pop),
            self.idle.eq((count == 0) & ~in_frame),
        ]
        m.d.sync += count.eq(count + push - pop)
        with m.If(push):
            m.d.sync += wr.eq(wr + 1)
        with m.If(pop):
            m.d.sync += rd.eq(rd + 1)
            ends = Signal()
            with m.If(self.record == 0):
                m.d.comb += ends.eq(rp.data == 0)
            with m.Else():
                m.d.comb += ends.eq(rec_i == self.record - 1)
                m.d.sync += rec_i.eq(Mux(ends, 0, rec_i + 1))
            with m.If(ends):
                m.d.sync += label.eq(label + 1)

        # Frames.
        full = Signal()
        m.d.comb += full.eq(count >= C)
        m.d.comb += [self.tx_cmd.eq(self.cmd),
                     self.tx_length.eq(4 + Mux(full, C, count))]
        with m.If(~in_frame & self.tx_idle & (full | (self.finish & (count != 0)))):
            m.d.comb += self.tx_start.eq(1)
            m.d.sync += [in_frame.eq(1), j.eq(0), flen.eq(Mux(full, C, count)),
                         frame_label.eq(label)]
        lab = Array(le_bytes(frame_label, 4))
        m.d.comb += [
            self.tx_data.valid.eq(in_frame),
            self.tx_data.payload.eq(Mux(j < 4, lab[j[:2]], rp.data)),
            pop.eq(in_frame & self.tx_data.ready & (j >= 4)),
        ]
        with m.If(self.tx_data.valid & self.tx_data.ready):
            m.d.sync += j.eq(j + 1)
            with m.If(j == flen + 3):
                m.d.sync += in_frame.eq(0)
        with m.If(self.begin):
            m.d.sync += [wr.eq(0), rd.eq(0), count.eq(0), label.eq(self.start_label),
                         rec_i.eq(0), in_frame.eq(0)]
        return m
