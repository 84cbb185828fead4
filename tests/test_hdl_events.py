"""SpikeEvents: one (neuron, step) event per spike of the array's beats, under backpressure."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from lifgate.golden.fixed import simulate
from lifgate.hdl.array import LIFArray, beat_layout
from lifgate.hdl.events import SpikeEvents, event_layout
from lifgate.sim.driver import clear, encode_inputs, load_params

from lifgate.config import ArrayShape, Config, NeuronParams


def _encode(layout, **fields):
    word = 0
    for name, value in fields.items():
        f = layout[name]
        word |= value << f.offset
    return word


def _decode_event(shape, word):
    layout = event_layout(shape)
    nw = layout["neuron"].shape.width
    return word & ((1 << nw) - 1), word >> layout["step"].offset


@pytest.mark.parametrize("lanes,ready,valid", [(1, 1.0, 1.0), (4, 0.4, 0.6), (5, 0.7, 0.3),
                                               (8, 1.0, 0.5)])
def test_events_from_beats(lanes, ready, valid):
    shape = ArrayShape(neurons=lanes * 6, lanes=lanes, groups=1, step_width=8)
    dut = SpikeEvents(shape, membrane=False)
    layout = beat_layout(shape, membrane=False)
    rng = np.random.default_rng(lanes)
    beats = []
    for i in range(60):
        spikes = 0 if rng.random() < 0.3 else int(rng.integers(0, 1 << lanes))
        beats.append((i // 6 + 250, i % 6, spikes))  # the step label wraps at 256
    expected = [
        ((a * lanes + p), s % 256) for s, a, m in beats for p in range(lanes) if (m >> p) & 1
    ]
    got = []

    async def bench(ctx):
        i = 0
        offered = False
        cycles = 0
        while len(got) < len(expected) or i < len(beats):
            cycles += 1
            assert cycles < 20 * (len(beats) + len(expected)) + 100, "SpikeEvents hangs"
            if not offered and i < len(beats) and rng.random() < valid:
                s, a, msk = beats[i]
                ctx.set(dut.i_stream.payload.as_value(),
                        _encode(layout, step=s % 256, addr=a, spikes=msk))
                ctx.set(dut.i_stream.valid, 1)
                offered = True
            r = int(rng.random() < ready)
            ctx.set(dut.o_stream.ready, r)
            if r and ctx.get(dut.o_stream.valid):
                got.append(_decode_event(shape, ctx.get(dut.o_stream.payload.as_value())))
            took = offered and ctx.get(dut.i_stream.ready)
            await ctx.tick()
            if took:
                i += 1
                offered = False
                ctx.set(dut.i_stream.valid, 0)
        for _ in range(5):  # nothing more comes out
            ctx.set(dut.o_stream.ready, 1)
            assert not ctx.get(dut.o_stream.valid)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected


def test_events_one_per_clock():
    """A stream of one-spike beats gives one event per clock (no bubble per beat)."""
    shape = ArrayShape(neurons=8, lanes=4, groups=1)
    dut = SpikeEvents(shape)
    layout = beat_layout(shape)

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.i_stream.payload.as_value(), _encode(layout, step=1, addr=1, spikes=0b0100))
        await ctx.tick()
        count = 0
        for _ in range(10):
            count += ctx.get(dut.o_stream.valid)
            await ctx.tick()
        assert count == 10

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_events_from_the_array():
    """LIFArray -> SpikeEvents, against the golden model's spikes."""
    shape = ArrayShape(neurons=12, lanes=3, groups=3, v_width=10, i_width=8, ref_width=2,
                       leak_modes=("shift",))
    params = tuple(NeuronParams(v_th=60 + 20 * g, v_reset=-5, leak=3, t_ref=g) for g in range(3))
    config = Config(shape=shape, params=params)
    rng = np.random.default_rng(3)
    steps = 15
    cur = rng.integers(-10, 60, size=(steps, 12))

    top = Module()
    top.submodules.array = array = LIFArray(config)
    top.submodules.events = events = SpikeEvents(config)
    wiring.connect(top, array.o_stream, events.i_stream)
    feed = list(encode_inputs(shape, cur).reshape(-1))
    got = []

    async def bench(ctx):
        await load_params(ctx, array, config)
        await clear(ctx, array, config)
        ctx.set(array.steps, steps)
        ctx.set(array.input_en, 1)
        ctx.set(array.start, 1)
        await ctx.tick()
        ctx.set(array.start, 0)
        fed, cycles, idle = 0, 0, 0
        while idle < 30:
            cycles += 1
            if fed < len(feed):
                ctx.set(array.i_stream.payload.as_value(), int(feed[fed]))
                ctx.set(array.i_stream.valid, 1)
            r = int(rng.random() < 0.6)
            ctx.set(events.o_stream.ready, r)
            if r and ctx.get(events.o_stream.valid):
                got.append(_decode_event(shape, ctx.get(events.o_stream.payload.as_value())))
            took = fed < len(feed) and ctx.get(array.i_stream.ready)
            busy = ctx.get(array.busy) or ctx.get(events.o_stream.valid)
            await ctx.tick()
            if took:
                fed += 1
                ctx.set(array.i_stream.valid, 0)
            idle = 0 if busy else idle + 1

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    ref = simulate(config, steps, cur)
    expected = [(int(n), int(t)) for t, n in np.argwhere(ref.spikes)]
    assert expected, "the stimulus must make neurons spike"
    assert got == expected
