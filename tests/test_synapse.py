"""The synaptic stage (hdl/synapse.py) against its golden model, on Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator
from lifgate.golden.synapse import (
    Layer,
    Network,
    acc_width,
    synapse_clocks,
    synaptic_current,
)
from lifgate.hdl.noise import LaneNoise
from lifgate.hdl.ram import PipelinedRAM
from lifgate.hdl.synapse import Synapse, _below, _two_lowest

from lifgate.config import ArrayShape, ConfigError


def run_synapse(weights, xs, *, lanes, w_width, x_width, i_width, ready_pattern=None,
                events=None, clocks=None, event_ports=1):
    """Load ``weights`` through the write port, then compute every x in ``xs``. ``clocks``
    (a list) gets the clocks from ``start`` until ``busy`` falls, per x."""
    outputs, inputs = weights.shape
    dut = Synapse(inputs=inputs, outputs=outputs, lanes=lanes, w_width=w_width,
                  x_width=x_width, i_width=i_width, events=events, event_ports=event_ports)
    got = []

    async def tb(ctx):
        for j in range(outputs):
            for i in range(inputs):
                ctx.set(dut.w_addr, (j // lanes) * inputs + i)
                ctx.set(dut.w_lane, j % lanes)
                ctx.set(dut.w_data, int(weights[j, i]))
                ctx.set(dut.w_we, 1)
                await ctx.tick()
        ctx.set(dut.w_we, 0)
        cycle = 0
        for x in xs:
            ctx.set(dut.x, [int(v) for v in x])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            beats = []
            n_clocks = 1
            while len(beats) < outputs // lanes:
                n_clocks += 1
                ready = 1 if ready_pattern is None else ready_pattern[cycle % len(ready_pattern)]
                cycle += 1
                ctx.set(dut.i_stream.ready, ready)
                if ctx.get(dut.i_stream.valid) and ready:
                    beats.append([int(v) for v in ctx.get(dut.i_stream.payload)])
                await ctx.tick()
            ctx.set(dut.i_stream.ready, 0)
            while ctx.get(dut.busy):
                n_clocks += 1
                await ctx.tick()
            if clocks is not None:
                clocks.append(n_clocks - 1)
            got.append(np.array(beats).reshape(-1))  # address-major: neuron a*P + p
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return np.array(got)


@pytest.mark.parametrize("lanes,x_width,w_width,i_width,inputs,outputs", [
    (1, 1, 8, 16, 5, 3),
    (2, 1, 4, 6, 12, 4),     # i_width narrow: saturates often
    (3, 3, 6, 8, 7, 6),      # multi-bit inputs
    (4, 5, 8, 16, 9, 8),
    (1, 1, 8, 16, 1, 2),     # the input selection's edge cases: 1, 2 and 64 inputs
    (2, 2, 8, 16, 2, 4),
    (1, 5, 8, 16, 64, 2),
])
def test_synapse_matches_golden(lanes, x_width, w_width, i_width, inputs, outputs):
    rng = np.random.default_rng(inputs * 100 + lanes)
    lo, hi = -(1 << (w_width - 1)), (1 << (w_width - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(outputs, inputs))
    w[0, :] = hi  # a row that saturates high for all-ones inputs
    w[-1, :] = lo
    xs = rng.integers(0, 1 << x_width, size=(4, inputs))
    xs[0] = (1 << x_width) - 1
    xs[1] = 0
    got = run_synapse(w, xs, lanes=lanes, w_width=w_width, x_width=x_width, i_width=i_width,
                      ready_pattern=[1, 0, 0, 1, 1] if lanes == 2 else None)
    want = synaptic_current(w, xs, i_width)
    assert got.tolist() == want.tolist()


def test_saturation_never_wraps():
    # 12 inputs of +7 * 1 = 84 > 31 (i_width 6): must clamp to 31, not wrap.
    w = np.full((2, 12), 7)
    w[1] = -8
    got = run_synapse(w, np.ones((1, 12), dtype=int), lanes=2, w_width=4, x_width=1, i_width=6)
    assert got.tolist() == [[31, -32]]
    assert synaptic_current(w, np.ones(12, dtype=int), 6).tolist() == [31, -32]


def test_acc_width_is_exact():
    # The worst case of W . x fits the accumulator: -2^(w-1) * (2^xw - 1) * n.
    for n, w, xw in [(1, 2, 1), (64, 8, 5), (1000, 18, 16)]:
        worst = (1 << (w - 1)) * ((1 << xw) - 1) * n
        assert worst <= (1 << (acc_width(n, w, xw) - 1))


def test_bad_parameters_rejected():
    with pytest.raises(TypeError, match="Outputs must be a multiple of lanes"):
        Synapse(inputs=3, outputs=5, lanes=2)
    with pytest.raises(TypeError, match="Weight width must be"):
        Synapse(inputs=3, outputs=4, lanes=2, w_width=1)
    from lifgate.config import Config
    cfg = Config(shape=ArrayShape(neurons=2, lanes=1, groups=1))
    with pytest.raises(ConfigError, match="w_width 4"):
        Network((Layer(np.full((2, 3), 8), cfg),), w_width=4)
    with pytest.raises(ConfigError, match="must have 2 rows"):
        Network((Layer(np.zeros((3, 3), int), cfg),))


def test_ecp5_multiplier_is_one_mult18x18d_per_lane_of_a_dense_multibit_synapse():
    """``multiplier="ecp5"``: each lane's dense product is a MULT18X18D with its own registers
    (issue 17); 1-bit inputs (an AND) and spike-driven synapses have none; a bad kind is
    refused by name. The sums are checked on Icarus and Verilator in
    tests/test_synapse_network.py (Amaranth's simulator has no model of the block)."""
    from lifgate.hdl.network import Network as NetworkHW
    from lifgate.hdl.verilog import convert_verilog

    def mults(**kw):
        return convert_verilog(Synapse(inputs=6, outputs=8, lanes=4, **kw),
                               name="syn").count("MULT18X18D ")

    assert mults(x_width=5, multiplier="ecp5") == 4
    assert mults(x_width=5) == 0
    assert mults(x_width=1, events=False, multiplier="ecp5") == 0
    assert mults(x_width=1, multiplier="ecp5") == 0
    with pytest.raises(ConfigError, match="Multiplier must be one of 'fabric'.*not 'dsp'"):
        Synapse(inputs=6, outputs=8, lanes=4, x_width=5, multiplier="dsp")
    shape = ArrayShape(neurons=2, lanes=1, groups=1)
    with pytest.raises(ConfigError, match="parameter 'multiplier' must be one of"):
        NetworkHW([shape], inputs=3, x_width=4, multiplier="dsp")


def test_a_bad_gateware_argument_is_a_config_error_and_a_type_error():
    """One error type for user mistakes (issue 15, Build 7): the gateware's refusals are
    ConfigErrors (the CLI prints them as one line), still TypeErrors as Amaranth's convention."""
    for make in (lambda: Synapse(inputs=4, outputs=3, lanes=2),
                 lambda: LaneNoise(lane=64),
                 lambda: PipelinedRAM(8, 1)):
        with pytest.raises(ConfigError) as e:
            make()
        assert isinstance(e.value, TypeError)


@pytest.mark.parametrize("ports", [1, 2])
@pytest.mark.parametrize("lanes,inputs,outputs", [
    (1, 1, 2), (2, 2, 4), (2, 5, 4), (1, 33, 3), (10, 32, 10), (4, 64, 8),
])
def test_spike_driven_matches_dense_and_golden(lanes, inputs, outputs, ports):
    """The spike-driven synapse (issue 17): the same currents as the dense one and the golden
    model for no spike, every input spiking, one input spiking, and random sparse spikes;
    and its cost: ``ceil(max(k, 1) / ports) + 3`` clocks per address for ``k`` spikes, not
    the fan-in."""
    rng = np.random.default_rng(inputs * 7 + lanes)
    w = rng.integers(-128, 128, size=(outputs, inputs))
    w[0, :] = 127
    xs = [np.zeros(inputs, int), np.ones(inputs, int)]
    for j in (0, inputs - 1, inputs // 2):
        one = np.zeros(inputs, int)
        one[j] = 1
        xs.append(one)
    xs += [(rng.random(inputs) < q).astype(int) for q in (0.1, 0.3, 0.7)]
    xs = np.array(xs)
    want = synaptic_current(w, xs, 10)
    clk_ev, clk_dense = [], []
    got_ev = run_synapse(w, xs, lanes=lanes, w_width=8, x_width=1, i_width=10, clocks=clk_ev,
                         event_ports=ports)
    got_dense = run_synapse(w, xs, lanes=lanes, w_width=8, x_width=1, i_width=10,
                            events=False, clocks=clk_dense)
    assert got_ev.tolist() == want.tolist()
    assert got_dense.tolist() == want.tolist()
    D = outputs // lanes
    assert clk_ev == [synapse_clocks(inputs, D, x, ports=ports) for x in xs]
    assert clk_dense == [synapse_clocks(inputs, D) for _ in xs]
    ev = Synapse(inputs=inputs, outputs=outputs, lanes=lanes, event_ports=ports)
    dense = Synapse(inputs=inputs, outputs=outputs, lanes=lanes, events=False)
    ev._MustUse__silence = dense._MustUse__silence = True
    assert clk_ev == [ev.step_clocks(int(x.sum())) for x in xs]
    assert clk_dense == [dense.step_clocks(int(x.sum())) for x in xs]
    assert clk_ev[0] == D * 4  # no spike: one read whose product is 0, 3 clocks of latency
    assert clk_ev[0] < clk_dense[0]  # even for one input: no weight register


@pytest.mark.parametrize("ports", [1, 2])
def test_spike_driven_under_backpressure(ports):
    rng = np.random.default_rng(5)
    w = rng.integers(-8, 8, size=(6, 9))
    xs = np.array([rng.random(9) < 0.4 for _ in range(4)] + [np.zeros(9, bool)], dtype=int)
    got = run_synapse(w, xs, lanes=2, w_width=4, x_width=1, i_width=5,
                      ready_pattern=[0, 0, 1, 0, 1, 1, 0], event_ports=ports)
    assert got.tolist() == synaptic_current(w, xs, 5).tolist()


def test_events_only_for_one_bit_inputs():
    with pytest.raises(ConfigError, match="Events must be a bool"):
        Synapse(inputs=3, outputs=2, lanes=1, x_width=2, events=True)
    for x_width, events in ((2, False), (1, True)):
        syn = Synapse(inputs=3, outputs=2, lanes=1, x_width=x_width)
        syn._MustUse__silence = True
        assert syn.events == events
        assert syn.step_clocks(1) == synapse_clocks(3, 2, 1 if events else None)
        assert syn.step_clocks(0) == synapse_clocks(3, 2, 0 if events else None)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 8, 33])
def test_event_picks_and_mask_prefix(n):
    """The spike-driven visit's pickers (``_two_lowest``: the two lowest set bits of the mask,
    and whether they exist) and the mask's prefix counts (``_below``: at least one / two set
    bits below each position), against Python for every mask of up to 8 bits and random 33-bit
    masks."""
    bits = Signal(n)
    has1, has2, first, second = _two_lowest(bits)
    below = _below(bits)
    sig = [Signal.like(v, name=f"o{k}") for k, v in enumerate((has1, has2, first, second))]
    one, two = Signal(n), Signal(n)
    m = Module()
    m.d.comb += [s.eq(v) for s, v in zip(sig, (has1, has2, first, second), strict=True)]
    m.d.comb += [one.eq(Cat(a for a, _ in below)), two.eq(Cat(t for _, t in below))]
    rng = np.random.default_rng(n)
    masks = range(1 << n) if n <= 8 else [int(v) for v in rng.integers(0, 1 << n, 300)]
    masks = list(masks) + ([0, (1 << n) - 1, 1 << (n - 1)] if n > 8 else [])

    async def bench(ctx):
        for mask in masks:
            ctx.set(bits, mask)
            set_ = [j for j in range(n) if mask >> j & 1]
            h1, h2, f, s = (ctx.get(v) for v in sig)
            assert (h1, h2) == (len(set_) >= 1, len(set_) >= 2), mask
            if set_:
                assert f == set_[0], mask
            if len(set_) >= 2:
                assert s == set_[1], mask
            want1 = sum(1 << j for j in range(n) if any(k < j for k in set_))
            want2 = sum(1 << j for j in range(n) if sum(k < j for k in set_) >= 2)
            assert (ctx.get(one), ctx.get(two)) == (want1, want2), mask

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
