"""Layer-0 current reuse (hdl/current_cache.py, hdl/network.py): the cache alone against its
cost model, and the network's use of it, on Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator
from lifgate.golden.synapse import layer0_clocks, replay_clocks, simulate_network, synapse_clocks
from lifgate.hdl.current_cache import CurrentCache
from lifgate.hdl.network import Network as NetworkHW
from lifgate.sim.driver import load_network
from test_synapse_network import expected_records, random_network, run_amaranth

from lifgate.config import ConfigError


def run_cache(depth, lanes, steps, *, ready_pattern=None, offer=1):
    """Pass ``steps[0]`` through (recording), then replay ``len(steps) - 1`` times (the
    producer's ``valid`` is ``offer`` meanwhile: 1 offers garbage, 0 is idle, as the network's
    synapse), then offer one beat: it must pass straight through. Returns the beats the
    consumer took per step and the clocks ``replaying`` was high per replay."""
    layout = data.ArrayLayout(signed(9), lanes)
    dut = CurrentCache(layout=layout, depth=depth)
    got, clocks = [], []

    async def tb(ctx):
        cycle = 0

        def ready():
            nonlocal cycle
            r = 1 if ready_pattern is None else ready_pattern[cycle % len(ready_pattern)]
            cycle += 1
            return r

        # Pass-through: the producer offers the beats of steps[0] in order.
        ctx.set(dut.record, 1)
        await ctx.tick()
        ctx.set(dut.record, 0)
        beats = []
        for beat in steps[0]:
            ctx.set(dut.i_stream.payload, [int(v) for v in beat])
            ctx.set(dut.i_stream.valid, 1)
            while True:
                r = ready()
                ctx.set(dut.o_stream.ready, r)
                assert ctx.get(dut.o_stream.valid)
                assert ctx.get(dut.i_stream.ready) == r
                if r:
                    beats.append([int(v) for v in ctx.get(dut.o_stream.payload)])
                    await ctx.tick()
                    break
                await ctx.tick()
        ctx.set(dut.i_stream.valid, 0)
        ctx.set(dut.o_stream.ready, 0)
        got.append(beats)
        for _ in steps[1:]:
            # The producer offers garbage while replaying: it must be neither taken nor sent.
            ctx.set(dut.i_stream.payload, [-1] * lanes)
            ctx.set(dut.i_stream.valid, offer)
            ctx.set(dut.replay, 1)
            await ctx.tick()
            ctx.set(dut.replay, 0)
            beats, n = [], 0
            while ctx.get(dut.replaying):
                n += 1
                r = ready()
                ctx.set(dut.o_stream.ready, r)
                assert not ctx.get(dut.i_stream.ready)
                if ctx.get(dut.o_stream.valid) and r:
                    beats.append([int(v) for v in ctx.get(dut.o_stream.payload)])
                await ctx.tick()
            ctx.set(dut.i_stream.valid, 0)
            ctx.set(dut.o_stream.ready, 0)
            got.append(beats)
            clocks.append(n)
        # Pass-through again (``o_stream.valid`` follows the producer once the replay ended).
        ctx.set(dut.i_stream.valid, 1)
        ctx.set(dut.o_stream.ready, 1)
        assert ctx.get(dut.o_stream.valid) and ctx.get(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)
        assert not ctx.get(dut.o_stream.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got, clocks


@pytest.mark.parametrize("depth,lanes", [(1, 1), (2, 3), (3, 1), (4, 2), (32, 1)])
def test_replay_sends_the_kept_beats_at_the_model_cost(depth, lanes):
    rng = np.random.default_rng(depth * 10 + lanes)
    beats = rng.integers(-256, 256, size=(depth, lanes)).tolist()
    got, clocks = run_cache(depth, lanes, [beats, None, None])
    assert got == [beats] * 3
    cache = CurrentCache(layout=data.ArrayLayout(signed(9), lanes), depth=depth)
    cache._MustUse__silence = True
    assert clocks == [replay_clocks(depth)] * 2 == [cache.replay_clocks()] * 2


@pytest.mark.parametrize("offer", [1, 0])
@pytest.mark.parametrize("depth", [2, 5])
def test_replay_under_backpressure(depth, offer):
    rng = np.random.default_rng(depth)
    beats = rng.integers(-256, 256, size=(depth, 2)).tolist()
    got, clocks = run_cache(depth, 2, [beats, None, None], ready_pattern=[0, 1, 0, 0, 1, 1],
                            offer=offer)
    assert got == [beats] * 3
    assert all(c > replay_clocks(depth) for c in clocks)


def test_bad_depth_rejected():
    with pytest.raises(ConfigError, match="Depth must be an integer in \\[1, 65536\\]"):
        CurrentCache(layout=data.ArrayLayout(signed(4), 1), depth=0)
    with pytest.raises(ConfigError, match="'reuse' must be a bool"):
        NetworkHW.for_network(random_network(1), reuse=1)


def test_layer0_clocks_model():
    assert layer0_clocks(64, 32, 3) == [32 * 68, 33, 33]
    assert layer0_clocks(64, 32, 3, reuse=False) == [32 * 68] * 3
    assert layer0_clocks(6, 2, 2, [1, 0, 1, 0, 0, 0]) == [synapse_clocks(6, 2, 2), 3]
    assert layer0_clocks(6, 2, 0) == []


def count_strobes(net, runs, *, reuse):
    """Per run: how often layer 0's synapse started and how often its cache replayed."""
    dut = NetworkHW.for_network(net, membrane=False, reuse=reuse)
    out = []

    async def tb(ctx):
        await load_network(ctx, dut, net)
        ctx.set(dut.s_stream.ready, 1)
        syn0 = dut.synapses[0]
        for x, steps in runs:
            ctx.set(dut.x, [int(v) for v in x])
            ctx.set(dut.steps, steps)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            starts, replays, rising = 0, 0, 0
            was = 0
            while not ctx.get(dut.done):
                starts += ctx.get(syn0.busy) and not was
                was = ctx.get(syn0.busy)
                if reuse:
                    now = ctx.get(dut.cache.replaying)
                    replays += now and not rising
                    rising = now
                await ctx.tick()
            out.append((starts, replays))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


def test_layer0_synapse_works_once_per_run():
    """With reuse, layer 0's synapse runs on a run's first step only and the cache replays the
    others; without, the synapse runs every step."""
    net = random_network(3, x_width=3, lanes=(2, 1))
    x = np.arange(net.inputs) % 8
    runs = [(x, 4), (x, 1), (x, 0), (x, 3)]
    assert count_strobes(net, runs, reuse=True) == [(1, 3), (1, 0), (0, 0), (1, 2)]
    assert count_strobes(net, runs, reuse=False) == [(4, 0), (1, 0), (0, 0), (3, 0)]


@pytest.mark.parametrize("x_width,events", [(3, True), (1, True), (1, False)])
def test_one_step_at_a_time_with_a_new_x_each_step(x_width, events):
    """Runs of one step, each with a different ``x``, then longer runs: the kept currents must
    never outlive their run (a cache kept across ``start`` fails here)."""
    net = random_network(5, x_width=x_width, lanes=(2, 1))
    rng = np.random.default_rng(5)
    xs = [rng.integers(0, 1 << x_width, size=net.inputs) for _ in range(8)]
    runs = [(x, 1) for x in xs] + [(xs[0], 3), (xs[1], 2)]
    want = expected_records(net, runs, membrane=True)
    assert len({r[2] for r in want if r[0] == 0}) > 1  # layer 0's spikes change with x
    got = run_amaranth(net, runs, events=events)
    assert got == want
    # The same inputs as one constant run: the golden model over [steps, inputs] agrees.
    res = simulate_network(net, len(xs), np.array(xs))
    assert [r[2] for r in want[:2 * len(xs):2]] == [
        sum(1 << j for j in np.flatnonzero(s)) for s in res.spikes[0]]


@pytest.mark.parametrize("x_width,events", [(3, True), (1, False)])
def test_x_memory_network_matches_golden(x_width, events):
    """Layer 0's inputs from the network's x memory (the network board's), a new x per run
    and per step: the same records as the golden model."""
    net = random_network(6, inputs=9, x_width=x_width, lanes=(2, 1))
    rng = np.random.default_rng(6)
    xs = [rng.integers(0, 1 << x_width, size=net.inputs) for _ in range(4)]
    runs = [(xs[0], 4), (xs[1], 1), (xs[2], 1), (xs[3], 3)]
    assert run_amaranth(net, runs, events=events, x_memory=True) == expected_records(net, runs)


def test_x_memory_only_with_a_dense_layer0():
    with pytest.raises(ConfigError, match="'x_memory' must be a bool, True only with a dense"):
        NetworkHW.for_network(random_network(1, x_width=1), x_memory=True)
