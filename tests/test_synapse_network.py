"""Two-layer networks (hdl/network.py) against the golden model, on Amaranth's simulator."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator
from lifgate.boards.nettop import network_array_options
from lifgate.boards.toolchain import board as board_of
from lifgate.golden.synapse import Layer, Network, simulate_network
from lifgate.hdl.network import Network as NetworkHW
from lifgate.hdl.network import param_writes
from lifgate.sim.driver import load_network, network_clear, network_run, write_network_params

from lifgate.config import ArrayShape, Config, ConfigError, LeakMode, NeuronParams, ResetMode


def random_network(seed, *, inputs=6, hidden=4, out=2, lanes=(2, 1), x_width=1, w_width=6,
                   i_width=8, v_width=10):
    rng = np.random.default_rng(seed)
    layers = []
    fan_in = inputs
    for neurons, p in zip((hidden, out), lanes, strict=True):
        shape = ArrayShape(neurons=neurons, lanes=p, groups=neurons, v_width=v_width,
                           i_width=i_width, ref_width=2,
                           leak_modes=(LeakMode.SHIFT, LeakMode.CONST))
        params = []
        for _ in range(neurons):
            mode = LeakMode.CONST if rng.random() < 0.5 else LeakMode.SHIFT
            params.append(NeuronParams(
                v_th=int(rng.integers(20, 120)), v_reset=int(rng.integers(-20, 5)),
                v_rest=int(rng.integers(-5, 5)), v_init=int(rng.integers(-10, 10)),
                bias=int(rng.integers(-3, 4)), leak_mode=mode,
                leak=int(rng.integers(0, 3)) if mode == LeakMode.CONST else int(rng.integers(1, 5)),
                reset_mode=ResetMode(int(rng.integers(0, 2))), t_ref=int(rng.integers(0, 3)),
            ))
        lo = -(1 << (w_width - 1))
        w = rng.integers(lo, -lo, size=(neurons, fan_in))
        layers.append(Layer(w, Config(shape=shape, params=tuple(params))))
        fan_in = neurons
    return Network(tuple(layers), w_width=w_width, x_width=x_width)


def run_amaranth(net, runs, *, membrane=True, ready=None, events=True, event_ports=1,
                 x_memory=False, array_options=None, process=None, reuse=True):
    """``runs``: list of (x, steps); a clear first. Returns records per layer: spikes, v.
    ``x_memory``: ``x`` written through the network's x memory port before each run.
    ``process(dut)``: a background process to add to the simulation."""
    dut = NetworkHW.for_network(net, membrane=membrane, events=events, event_ports=event_ports,
                                x_memory=x_memory, array_options=array_options, reuse=reuse)
    recs = []

    async def tb(ctx):
        await load_network(ctx, dut, net)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        while not ctx.get(dut.done):
            await ctx.tick()
        cycle = 0
        for x, steps in runs:
            if x_memory:
                for i, v in enumerate(x):
                    ctx.set(dut.x_addr, i)
                    ctx.set(dut.x_data, int(v))
                    ctx.set(dut.x_we, 1)
                    await ctx.tick()
                ctx.set(dut.x_we, 0)
            else:
                ctx.set(dut.x, [int(v) for v in x])
            ctx.set(dut.steps, steps)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while True:
                r = 1 if ready is None else ready[cycle % len(ready)]
                cycle += 1
                ctx.set(dut.s_stream.ready, r)
                if ctx.get(dut.s_stream.valid) and r:
                    p = ctx.get(dut.s_stream.payload)
                    recs.append((int(p.layer), int(p.step), int(p.spikes),
                                 [int(v) for v in p.v] if membrane else None))
                if ctx.get(dut.done):
                    break
                await ctx.tick()
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    if process is not None:
        sim.add_process(process(dut))
    sim.run()
    return recs


def expected_records(net, runs, membrane=True):
    states = None
    out = []
    t0 = 0
    for x, steps in runs:
        res = simulate_network(net, steps, x, states=states)
        states = res.final
        for t in range(steps):
            for n in range(len(net.layers)):
                bits = sum(1 << j for j in np.flatnonzero(res.spikes[n][t]))
                nmax = max(layer.neurons for layer in net.layers)
                v = list(res.v[n][t]) + [0] * (nmax - net.layers[n].neurons)
                out.append((n, t0 + t, bits, [int(a) for a in v] if membrane else None))
        t0 += steps
    return out


@pytest.mark.parametrize("events,ports", [(True, 1), (True, 2), (False, 1)],
                         ids=["spike-driven", "two-events-per-clock", "dense"])
@pytest.mark.parametrize("seed,x_width,lanes", [(1, 1, (2, 1)), (2, 3, (4, 2)), (3, 1, (1, 2))])
def test_network_matches_golden(seed, x_width, lanes, events, ports):
    net = random_network(seed, x_width=x_width, lanes=lanes)
    rng = np.random.default_rng(seed)
    runs = [(rng.integers(0, 1 << x_width, size=net.inputs), 5),
            (rng.integers(0, 1 << x_width, size=net.inputs), 0),
            (rng.integers(0, 1 << x_width, size=net.inputs), 3)]
    got = run_amaranth(net, runs, ready=[1, 0, 1] if seed == 2 else None, events=events,
                       event_ports=ports)
    want = expected_records(net, runs)
    assert sum(bin(r[2]).count("1") for r in want) > 0  # the case exercises spikes
    assert got == want


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_network_with_the_boards_array_options(board):
    """The arrays as the network board top builds them (``network_array_options``: the
    board's pipeline profile, a copy of the pipeline enable per lane on the ECP5): the same
    records as the golden model, under backpressure too."""
    options = network_array_options(board_of(board))
    net = random_network(4, x_width=1, lanes=(4, 2))
    rng = np.random.default_rng(4)
    runs = [(rng.integers(0, 2, size=net.inputs), 6), (np.ones(net.inputs, int), 3)]
    got = run_amaranth(net, runs, ready=[1, 1, 0], array_options=options)
    assert got == expected_records(net, runs)


@pytest.mark.parametrize("x_width,reuse", [(1, True), (3, True), (3, False)])
def test_valid_copies_equal_valid_in_every_clock(x_width, reuse):
    """With copies of the arrays' enable (the ULX3S board's ``lanes_per_enable=1``), every
    synapse and the current cache give each copy its own copy of the valid bit
    (``valid_copies``, issue 17): every copy equals its ``valid`` in every clock, through
    replays and backpressure, and the records are the golden model's."""
    options = network_array_options(board_of("ulx3s-85f"))
    net = random_network(6, x_width=x_width, lanes=(4, 2))
    rng = np.random.default_rng(6)
    runs = [(rng.integers(0, 1 << x_width, size=net.inputs), 5),
            (rng.integers(0, 1 << x_width, size=net.inputs), 1)]
    seen = {"clocks": 0, "valid": 0, "bad": []}

    def process(dut):
        assert dut.enable_groups == [4, 2] and (dut.cache is not None) == reuse
        pairs = [(syn.i_stream.valid, syn.valid_c) for syn in dut.synapses]
        if dut.cache is not None:
            pairs.append((dut.cache.o_stream.valid, dut.cache.o_valid_c))

        flat = [sig for pair in pairs for sig in pair]

        async def check(ctx):
            async for _, _, *values in ctx.tick().sample(*flat):
                seen["clocks"] += 1
                for (valid, copies), v, c in zip(pairs, values[::2], values[1::2], strict=True):
                    seen["valid"] += v
                    if c != (v << len(copies)) - v:
                        seen["bad"].append((seen["clocks"], valid.name, v, c))
        return check

    got = run_amaranth(net, runs, ready=[1, 1, 0], array_options=options, process=process,
                       reuse=reuse)
    assert seen["bad"] == []
    assert seen["valid"] > 10 and seen["clocks"] > 100
    assert got == expected_records(net, runs)


def test_layer_two_sees_same_step_spikes():
    # Layer 0 neuron fires at step 0 (v_init = v_th); layer 1 has weight 50 >= its threshold
    # 50 and v_init 0: with no delay its membrane reads 50 after step 0 and it fires at step 1.
    shape = ArrayShape(neurons=1, lanes=1, groups=1, v_width=10, i_width=8,
                       leak_modes=(LeakMode.CONST,))
    p0 = NeuronParams(v_th=10, v_init=10, leak_mode=LeakMode.CONST, leak=0,
                      reset_mode=ResetMode.SUBTRACT)
    p1 = NeuronParams(v_th=50, v_init=0, leak_mode=LeakMode.CONST, leak=0,
                      reset_mode=ResetMode.SUBTRACT)
    net = Network((Layer(np.zeros((1, 1), int), Config(shape=shape, params=(p0,))),
                   Layer(np.full((1, 1), 50), Config(shape=shape, params=(p1,)))), w_width=8)
    res = simulate_network(net, 3, np.zeros(1, int))
    assert res.spikes[0][:, 0].tolist() == [True, False, False]
    assert res.v[1][:, 0].tolist() == [50, 0, 0]
    assert res.spikes[1][:, 0].tolist() == [False, True, False]
    got = run_amaranth(net, [(np.zeros(1, int), 3)])
    assert got == expected_records(net, [(np.zeros(1, int), 3)])


def spiking_network(seed, *, inputs=12, hidden=8, out=4, lanes=(4, 2), x_width=1):
    """:func:`random_network` whose hidden neuron 0 fires at every step whatever its input
    (no weights, ``v_init = v_th = bias``, subtractive reset), and whose hidden neuron 1 gets
    weights that make it fire on any input spike."""
    net = random_network(seed, inputs=inputs, hidden=hidden, out=out, lanes=lanes,
                         x_width=x_width)
    l0 = net.layers[0]
    w = l0.weights.copy()
    w[0] = 0
    w[1] = 31
    always = NeuronParams(v_th=40, v_init=40, bias=40, leak_mode=LeakMode.CONST, leak=0,
                          reset_mode=ResetMode.SUBTRACT, t_ref=0)
    params = (always,) + tuple(l0.config.params[1:])
    cfg = Config(shape=l0.config.shape, params=params)
    return Network((Layer(w, cfg),) + net.layers[1:], w_width=net.w_width, x_width=net.x_width)


def test_mismatched_shapes_rejected():
    a = ArrayShape(neurons=2, lanes=1, groups=1, v_width=10)
    b = ArrayShape(neurons=2, lanes=1, groups=1, v_width=12)
    with pytest.raises(ConfigError, match="shapes\\[1\\]"):
        NetworkHW([a, b], inputs=2)


@pytest.mark.icarus
@pytest.mark.verilator
def test_network_rtl_on_icarus_and_verilator(tmp_path):
    # The generated Verilog, spike for spike and membrane for membrane against the golden model
    # on both simulators (Icarus 4-state: tb_network fails on any X), and the two simulators
    # agree on everything including the clock count of each run.
    from lifgate.sim.tb_network import run_network

    net = random_network(9, inputs=12, hidden=8, out=4, x_width=3, lanes=(4, 2))
    rng = np.random.default_rng(9)
    samples = [(rng.integers(0, 8, size=net.inputs), 10) for _ in range(3)]
    samples.append((np.zeros(net.inputs, int), 4))
    # Layer-0 current reuse: one step at a time, a new x at every step.
    samples.append((rng.integers(0, 8, size=(6, net.inputs)), 6))
    runs = {sim: run_network(net, samples, build_dir=tmp_path, sim=sim, optimize=False)
            for sim in ("icarus", "verilator")}
    for sim, got in runs.items():
        for (x, steps), r in zip(samples, got, strict=True):
            want = simulate_network(net, steps, x)
            for n in range(len(net.layers)):
                assert np.array_equal(r.spikes[n], want.spikes[n]), (sim, n)
                assert np.array_equal(r.v[n], want.v[n]), (sim, n)
    assert sum(int(r.spikes[1].sum()) for r in runs["icarus"]) > 0  # layer 1 fires
    assert len({tuple(s) for s in runs["icarus"][-1].spikes[0]}) > 1  # x per step matters
    # Without reuse (Icarus only: a quick build): the same records, and layer 0's synapse
    # (dense, 3-bit inputs) works at every step, so every run of more than a step is slower.
    plain = run_network(net, samples, build_dir=tmp_path, sim="icarus", optimize=False,
                        reuse=False)
    for (x, steps), a, b in zip(samples, runs["icarus"], plain, strict=True):
        for n in range(len(net.layers)):
            assert np.array_equal(a.spikes[n], b.spikes[n])
            assert np.array_equal(a.v[n], b.v[n])
        assert a.cycles < b.cycles if steps > 1 and np.ndim(x) == 1 else a.cycles == b.cycles
    for a, b in zip(runs["icarus"], runs["verilator"], strict=True):
        assert a.cycles == b.cycles > 0
        for n in range(len(net.layers)):
            assert np.array_equal(a.spikes[n], b.spikes[n])
            assert np.array_equal(a.v[n], b.v[n])
    # Layer 0's products in MULT18X18D blocks with their own registers (multiplier="ecp5",
    # the ULX3S network board's; hdl/dsp.py's model of the block): the same records in the
    # same clocks, on both simulators.
    for sim in ("icarus", "verilator"):
        dsp = run_network(net, samples, build_dir=tmp_path, sim=sim, optimize=False,
                          multiplier="ecp5")
        for a, b in zip(runs[sim], dsp, strict=True):
            assert a.cycles == b.cycles, sim
            for n in range(len(net.layers)):
                assert np.array_equal(a.spikes[n], b.spikes[n]), (sim, n)
                assert np.array_equal(a.v[n], b.v[n]), (sim, n)


@pytest.mark.icarus
@pytest.mark.verilator
def test_spike_driven_network_rtl_edge_cases(tmp_path):
    """Issue 17: spike-driven synapses (layer 0 too: 1-bit inputs) on both simulators, against
    the golden model and against the dense build of the same network, with one and with two
    events per clock: a step with no input spike, one with every input spiking, a hidden
    neuron that spikes at every step, and random sparse inputs. The spike-driven run takes
    fewer clocks than the dense one."""
    from lifgate.sim.tb_network import run_network

    net = spiking_network(17)
    rng = np.random.default_rng(17)
    n = net.inputs
    samples = [(np.zeros(n, int), 6), (np.ones(n, int), 6),
               ((rng.random(n) < 0.2).astype(int), 8),  # run_network: x constant per run
               ((rng.random((5, n)) < 0.4).astype(int), 5)]  # one step at a time, new x
    for sim, ports in (("icarus", 1), ("verilator", 1), ("icarus", 2), ("verilator", 2)):
        got = run_network(net, samples, build_dir=tmp_path, sim=sim, optimize=False,
                          event_ports=ports)
        for (x, steps), r in zip(samples, got, strict=True):
            want = simulate_network(net, steps, x)
            for k in range(len(net.layers)):
                assert np.array_equal(r.spikes[k], want.spikes[k]), (sim, k)
                assert np.array_equal(r.v[k], want.v[k]), (sim, k)
            assert want.spikes[0][:, 0].all()  # the neuron that spikes at every step
        want = [simulate_network(net, steps, x) for x, steps in samples]
        assert want[1].spikes[0].sum() > 1  # every input spiking reaches layer 1 as spikes
        if sim == "icarus" and ports == 1:
            dense = run_network(net, samples, build_dir=tmp_path, sim=sim, optimize=False,
                                events=False)
            for a, b in zip(got, dense, strict=True):
                for k in range(len(net.layers)):
                    assert np.array_equal(a.spikes[k], b.spikes[k])
                    assert np.array_equal(a.v[k], b.v[k])
            # The silent and the sparse samples cost less spike-driven than dense.
            assert got[0].cycles < dense[0].cycles
            assert got[2].cycles < dense[2].cycles


def _record(ctx, p):
    return (ctx.get(p.layer), ctx.get(p.step), ctx.get(p.spikes), [ctx.get(v) for v in p.v])


def _simulate(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_parameter_write_the_clock_before_start():
    """The network registers parameter writes once (``Network._param_writes``, session 10):
    a write still reaches the arrays when ``start`` comes the very next clock. The network is
    loaded and cleared with one set of thresholds, then every set is written again with
    thresholds 7 higher and the run starts the clock after the last write: its records are
    the golden model's with the new thresholds (the clear's state does not depend on them)."""
    net = random_network(4)
    new = replace(net, layers=tuple(
        replace(layer, config=replace(layer.config, params=tuple(
            replace(p, v_th=p.v_th + 7) for p in layer.config.params)))
        for layer in net.layers))
    x, steps = [1, 0, 1, 1, 0, 1], 6
    dut = NetworkHW.for_network(net, membrane=True)
    recs = []

    async def tb(ctx):
        await load_network(ctx, dut, net)
        await network_clear(ctx, dut)
        await write_network_params(ctx, dut, param_writes(new))
        recs.extend(await network_run(ctx, dut, x, steps, _record))

    _simulate(dut, tb)
    assert recs == expected_records(new, [(x, steps)])
    assert recs != expected_records(net, [(x, steps)])  # the thresholds matter here


def test_parameter_write_past_a_layers_groups_is_ignored():
    """``param_group`` is as wide as the widest layer needs; a write to a group past layer
    ``n``'s groups must not land on the group its low bits name (checked before the
    registered write, ``Network._param_writes``)."""
    net = random_network(5)  # groups 4 (2 bits) and 2 (1 bit)
    x, steps = [1, 1, 0, 1, 0, 1], 5
    dut = NetworkHW.for_network(net, membrane=True)
    recs = []
    bad = param_writes(net)[-1][2] ^ ((1 << 40) - 1)

    async def tb(ctx):
        await load_network(ctx, dut, net)
        # layer 1 has groups 0 and 1: group 2 has bit 1 set and the low bit 0
        await write_network_params(ctx, dut, [(1, 2, bad)])
        await network_clear(ctx, dut)
        recs.extend(await network_run(ctx, dut, x, steps, _record))

    _simulate(dut, tb)
    assert recs == expected_records(net, [(x, steps)])
