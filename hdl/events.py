"""Spike events from the beats of :class:`~lifgate.hdl.array.LIFArray`."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from lifgate.hdl.array import beat_layout

from lifgate.config import ConfigTypeError, shape_of

__all__ = ["SpikeEvents", "event_layout"]


def event_layout(shape) -> data.StructLayout:
    """Payload of an event: ``neuron`` (0 to N-1) and ``step``, least significant first."""
    shape = shape_of(shape)
    return data.StructLayout({
        "neuron": unsigned(shape.layout.neuron_width),
        "step": unsigned(shape.step_width),
    })


class SpikeEvents(wiring.Component):
    """Turns ``o_stream`` beats into one (neuron, step) event per spike.

    A beat with spikes in lanes ``p0 < p1 < ...`` gives the events ``(addr * P + p0, step)``,
    ``(addr * P + p1, step)``, ... in that order, one per clock while ``o_stream.ready`` is high;
    a beat without spikes gives none and is taken in one clock. The next beat is taken in the
    clock its predecessor's last event leaves, so a stream of one-spike beats runs at one event
    per clock. Nothing is lost or duplicated under backpressure on either side.

    Parameters
    ----------
    config : Config or ArrayShape
        The array's configuration; only the shape is used.
    membrane : bool
        Whether the array's beats carry the ``v`` field (it is ignored here).

    Members
    -------
    i_stream : ``In(stream.Signature(beat_layout(shape, membrane=membrane)))``
        Beats, connected to ``LIFArray.o_stream``.
    o_stream : ``Out(stream.Signature(event_layout(shape)))``
        Events. ``valid`` does not depend on either ``ready`` combinationally;
        ``i_stream.ready`` depends on ``o_stream.ready``.
    """

    def __init__(self, config, *, membrane: bool = True):
        shape = shape_of(config)
        if not isinstance(membrane, bool):
            raise ConfigTypeError(f"Membrane must be a bool, not {membrane!r}")
        self._shape = shape
        super().__init__({
            "i_stream": In(stream.Signature(beat_layout(shape, membrane=membrane))),
            "o_stream": Out(stream.Signature(event_layout(shape))),
        })

    def elaborate(self, platform):
        m = Module()
        shape = self._shape
        P = shape.lanes
        layout = event_layout(shape)

        pending = Signal(P)  # spikes of the held beat not yet sent
        base = Signal(layout["neuron"].shape)  # addr * P of the held beat
        step = Signal(shape.step_width)

        # Lowest pending lane (priority encoder) and the mask without it.
        lane = Signal(range(P))
        for p in reversed(range(P)):
            with m.If(pending[p]):
                m.d.comb += lane.eq(p)
        rest = Signal(P)
        m.d.comb += rest.eq(pending & (pending - 1))

        out_fire = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(pending.any()),
            self.o_stream.payload.neuron.eq(base + lane),
            self.o_stream.payload.step.eq(step),
            out_fire.eq(self.o_stream.valid & self.o_stream.ready),
            # Take a new beat when nothing is held, or when the last pending event leaves now.
            self.i_stream.ready.eq(~pending.any() | (out_fire & ~rest.any())),
        ]
        with m.If(out_fire):
            m.d.sync += pending.eq(rest)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            beat = self.i_stream.payload
            m.d.sync += [
                pending.eq(beat.spikes),
                base.eq(beat.addr * P if P > 1 else beat.addr),
                step.eq(beat.step),
            ]
        return m
