"""LIFArray in Amaranth's simulator against the golden model, every spike and membrane value."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module
from amaranth.lib import data
from amaranth.sim import Simulator
from lifgate.golden import noise as golden_noise
from lifgate.hdl.array import (
    LATENCY,
    LeakModeHW,
    LIFArray,
    ResetModeHW,
    ResetModeWideHW,
    param_struct,
    reset_mode_hw,
)
from lifgate.hdl.noise import LaneNoise
from lifgate.sim.driver import (
    clear,
    collect,
    golden_script,
    load_params,
    run,
    simulate_rtl,
)

from lifgate.config import (
    DEFAULT_RESET_MODES,
    ArrayShape,
    Config,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
    pack_params,
    param_layout,
)


@pytest.fixture(params=["deep", "compact"])
def pipeline(request):
    """Both pipeline profiles of LIFArray: same behaviour, different structure."""
    return request.param


def check(config, script, **kwargs):
    """Run ``script`` on the RTL and on the golden model; compare every run bit for bit."""
    rtl = simulate_rtl(config, script, **kwargs)
    ref = golden_script(config, script)
    assert len(rtl) == len(ref)
    for i, (a, b) in enumerate(zip(rtl, ref, strict=True)):
        bad = np.argwhere(a.spikes != b.spikes)
        assert not bad.size, f"run {i}: spikes differ at (step, neuron) {bad[:5].tolist()}"
        if a.v is not None:
            bad = np.argwhere(a.v != b.v)
            assert not bad.size, (
                f"run {i}: v differs at (step, neuron) {bad[:5].tolist()}: "
                f"rtl {a.v[tuple(bad[0])]}, golden {b.v[tuple(bad[0])]}"
            )
    return rtl, ref


def random_params(rng, shape, mode=None, reset=None):
    lo, hi = shape.v_range
    mode = LeakMode(mode if mode is not None else rng.choice([int(m) for m in shape.leak_modes]))
    llo, lhi = shape.leak_range(mode)

    def val(a=lo, b=hi):
        return int(rng.integers(a, b + 1))

    return NeuronParams(
        v_th=val(lo // 4, hi),
        v_reset=val(),
        v_rest=val(lo // 2, hi // 2),
        v_init=val(),
        bias=val(lo // 16, hi // 16),
        leak_mode=mode,
        leak=val(llo, lhi),
        reset_mode=ResetMode(reset if reset is not None
                             else int(rng.integers(0, len(shape.reset_modes)))),
        t_ref=int(rng.choice([0, 1, shape.t_ref_max, val(0, shape.t_ref_max)])),
    )


def random_config(seed, gain=0, **shape_kw):
    rng = np.random.default_rng(seed)
    shape = ArrayShape(**shape_kw)
    params = tuple(random_params(rng, shape) for _ in range(shape.groups))
    noise = NoiseParams(seed=int(rng.integers(0, 1 << 32)), gain=gain)
    return Config(shape=shape, params=params, noise=noise), rng


def currents(rng, shape, steps, scale=1.0):
    lo, hi = shape.i_range
    return rng.integers(int(lo * scale), int(hi * scale) + 1, size=(steps, shape.neurons))


# Shapes: N/P/G, widths, all three leak modes alone and together, odd lane counts, groups
# smaller and larger than the lanes, depth 1.
SHAPES = [
    dict(neurons=8, lanes=2, groups=1, v_width=12, i_width=10, ref_width=3, decay_frac=8),
    dict(neurons=12, lanes=3, groups=4, v_width=10, i_width=8, ref_width=2, decay_frac=6,
         reset_modes=("value", "subtract", "subtract_after_leak")),
    dict(neurons=16, lanes=4, groups=16, v_width=16, i_width=16, ref_width=4, decay_frac=16),
    dict(neurons=6, lanes=6, groups=3, v_width=8, i_width=12, ref_width=1, decay_frac=3,
         leak_modes=("mult",)),
    dict(neurons=9, lanes=1, groups=3, v_width=6, i_width=4, ref_width=2, decay_frac=5,
         leak_modes=("const",)),
    dict(neurons=10, lanes=5, groups=2, v_width=20, i_width=24, ref_width=5, decay_frac=20,
         leak_modes=("shift", "const")),
    dict(neurons=24, lanes=8, groups=6, v_width=14, i_width=14, ref_width=3, decay_frac=12,
         leak_modes=("shift", "mult"), reset_modes=("value", "subtract", "subtract_after_leak")),
    dict(neurons=4, lanes=4, groups=2, v_width=32, i_width=32, ref_width=16, decay_frac=24,
         step_width=32),
]


@pytest.mark.parametrize("index", range(len(SHAPES)))
def test_random_configs(index, pipeline):
    config, rng = random_config(100 + index, **SHAPES[index])
    cur = currents(rng, config.shape, 24, scale=0.5)
    check(config, [("clear",), ("run", 24, cur)], pipeline=pipeline)


@pytest.mark.parametrize("mode", list(LeakMode))
@pytest.mark.parametrize("reset", list(ResetMode))
def test_leak_and_reset_modes(mode, reset, pipeline):
    """Each mode built alone, with spikes, refractory periods and negative currents
    (SUBTRACT_AFTER_LEAK on a shape that builds it, the others on the default build)."""
    resets = list(ResetMode) if reset == ResetMode.SUBTRACT_AFTER_LEAK else DEFAULT_RESET_MODES
    shape = ArrayShape(neurons=8, lanes=2, groups=4, v_width=10, i_width=9, ref_width=2,
                       decay_frac=7, leak_modes=(mode,), reset_modes=resets)
    rng = np.random.default_rng(int(mode) * 2 + int(reset))
    params = []
    for _ in range(4):
        p = random_params(rng, shape, mode, reset)
        params.append(dataclasses.replace(p, v_th=int(rng.integers(50, 200))))
    config = Config(shape=shape, params=tuple(params))
    cur = rng.integers(-40, 120, size=(30, 8))
    _, ref = check(config, [("clear",), ("run", 30, cur)], pipeline=pipeline)
    assert ref[0].spikes.any(), "the stimulus must make neurons spike"


def test_mixed_groups_all_modes(pipeline):
    """Every (leak mode, reset mode) pair in one array: the mode mux and the group counters
    with fewer neurons per group (2) than lanes (3)."""
    shape = ArrayShape(neurons=18, lanes=3, groups=9, v_width=12, i_width=10, ref_width=3,
                       decay_frac=10, reset_modes=list(ResetMode))
    rng = np.random.default_rng(7)
    params = tuple(
        random_params(rng, shape, mode, reset) for mode in LeakMode for reset in ResetMode
    )
    config = Config(shape=shape, params=params, noise=NoiseParams(seed=99, gain=3000))
    check(config, [("clear",), ("run", 25, currents(rng, shape, 25, 0.3))], pipeline=pipeline)


def test_saturation_at_both_ends(pipeline):
    shape = ArrayShape(neurons=4, lanes=2, groups=2, v_width=8, i_width=12, ref_width=2,
                       leak_modes=("shift", "const"))
    hi = NeuronParams(v_th=127, v_reset=-128, v_rest=0, v_init=100, bias=127,
                      leak_mode="const", leak=-128, t_ref=0)
    lo = NeuronParams(v_th=127, v_reset=-128, v_rest=-100, v_init=-120, bias=-128,
                      leak_mode="shift", leak=0, reset_mode="subtract", t_ref=1)
    config = Config(shape=shape, params=(hi, lo))
    cur = np.tile([2047, 2047, -2048, -2048], (12, 1))
    cur[6:, :2] = -2048
    _, ref = check(config, [("clear",), ("run", 12, cur)], pipeline=pipeline)
    assert (ref[0].v == 127).any() and (ref[0].v == -128).any()


def test_threshold_equality_and_subtract_below_range(pipeline):
    """v == v_th spikes; a negative v_th in SUBTRACT mode makes h = v - v_th leave the range."""
    shape = ArrayShape(neurons=4, lanes=1, groups=4, v_width=8, i_width=8, ref_width=2,
                       leak_modes=("const",))
    params = (
        NeuronParams(v_th=50, v_reset=0, v_init=50, leak_mode="const", leak=0, t_ref=0),
        NeuronParams(v_th=50, v_reset=-3, v_init=49, leak_mode="const", leak=0, t_ref=2),
        NeuronParams(v_th=-100, v_init=120, leak_mode="const", leak=0,
                     reset_mode="subtract", t_ref=1),
        NeuronParams(v_th=-128, v_init=127, leak_mode="const", leak=-5,
                     reset_mode="subtract", t_ref=0),
    )
    config = Config(shape=shape, params=params)
    cur = np.zeros((10, 4), dtype=int)
    cur[0, 1] = 1  # 49 + 1 = 50 = v_th: spikes at step 1
    _, ref = check(config, [("clear",), ("run", 10, cur)], pipeline=pipeline)
    assert ref[0].spikes[0, 0] and ref[0].spikes[1, 1]


@pytest.mark.parametrize("t_ref", ["zero", "one", "max"])
def test_refractory_boundaries(t_ref, pipeline):
    shape = ArrayShape(neurons=4, lanes=2, groups=2, v_width=10, i_width=10, ref_width=3,
                       leak_modes=("shift",))
    t = {"zero": 0, "one": 1, "max": shape.t_ref_max}[t_ref]
    params = (
        NeuronParams(v_th=100, v_reset=-20, v_rest=5, leak=3, t_ref=t),
        NeuronParams(v_th=100, v_reset=-20, v_rest=5, leak=2, t_ref=t, reset_mode="subtract"),
    )
    config = Config(shape=shape, params=params)
    _, ref = check(config, [("clear",), ("run", 30, np.full((30, 4), 60))], pipeline=pipeline)
    gaps = np.diff(np.flatnonzero(ref[0].spikes[:, 0]))
    assert gaps.size and gaps.min() >= t + 1


def test_clear_mid_run_and_continue(pipeline):
    config, rng = random_config(5, gain=20000, neurons=12, lanes=4, groups=3, v_width=12,
                                i_width=10, ref_width=3, decay_frac=9)
    shape = config.shape
    other = Config(shape=shape, params=config.params, noise=NoiseParams(seed=12345, gain=20000))
    script = [
        ("clear",),
        ("run", 7, currents(rng, shape, 7, 0.3)),
        ("run", 5, currents(rng, shape, 5, 0.3)),  # continues: state and noise carry on
        ("clear", other),  # mid-way: new seed, state back to v_init
        ("run", 9, currents(rng, shape, 9, 0.3)),
        ("run", 3),  # input off
    ]
    check(config, script, pipeline=pipeline)


def test_reset_while_idle_keeps_state(pipeline):
    """A synchronous reset between runs, without a clear (docs/hardware.md, "Reset, power-up
    and X"): membranes, refractory counters and noise carry over, the step label restarts at
    0 (``collect`` checks every beat's label)."""
    config, rng = random_config(6, gain=3000, neurons=8, lanes=2, groups=2, v_width=10,
                                i_width=8, ref_width=3, decay_frac=7)
    shape = config.shape
    script = [
        ("clear",),
        ("run", 6, currents(rng, shape, 6, 0.3)),
        ("reset",),
        ("run", 5, currents(rng, shape, 5, 0.3)),
        ("reset",),
        ("run", 2),
    ]
    rtl, ref = check(config, script, pipeline=pipeline)
    assert [r.beats[0].step for r in rtl] == [0, 0, 0]
    assert not np.array_equal(ref[1].v[0], golden_script(config, script[:1] + script[3:4])[0].v[0])


@pytest.mark.parametrize("lanes_per_enable", [None, 1, 2])
@pytest.mark.parametrize("ready,valid", [(0.3, 1.0), (1.0, 0.3), (0.5, 0.5)])
def test_backpressure(ready, valid, lanes_per_enable, pipeline):
    """Random o_stream.ready and i_stream.valid gaps. D = 16 > LATENCY, so that stalls also
    hit the first stages (and the noise generator) while the pipeline is full. With
    ``lanes_per_enable`` every lane (or pair of lanes) runs on its own copy of the enable."""
    config, rng = random_config(11, gain=5000, neurons=48, lanes=3, groups=4, v_width=12,
                                i_width=10, ref_width=3, decay_frac=9)
    assert config.shape.depth > LATENCY
    check(config, [("clear",), ("run", 8, currents(rng, config.shape, 8, 0.4))],
          ready=ready, valid=valid, seed=int(ready * 10 + valid * 100),
          lanes_per_enable=lanes_per_enable, pipeline=pipeline)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("bad", [0, 4, True, 1.0])
def test_lanes_per_enable_checked(bad):
    config, _ = random_config(11, neurons=48, lanes=3, groups=4, v_width=12, i_width=10)
    with pytest.raises(TypeError, match=r"Lanes per enable must be None or an integer in \[1, 3\]"):
        LIFArray(config, lanes_per_enable=bad)


@pytest.mark.parametrize("gain", [1, 777, 65535])
def test_noise(gain, pipeline):
    config, rng = random_config(21, gain=gain, neurons=16, lanes=4, groups=2, v_width=16,
                                i_width=12, ref_width=3, decay_frac=12)
    config = config.replace(params=tuple(dataclasses.replace(p, t_ref=0) for p in config.params))
    _, ref = check(config, [("clear",), ("run", 20)], pipeline=pipeline)
    if gain == 65535:
        quiet = golden_script(config.replace(noise=NoiseParams(seed=1, gain=0)),
                              [("clear",), ("run", 20)])
        assert (quiet[0].v != ref[0].v).any(), "noise must change the membrane"


def test_noise_gain_switched_on_without_clear(pipeline):
    # The generators advance on every update whatever the gain (numerics.md "Noise"), so
    # turning the noise on after a quiet run continues the sequence where the hardware is.
    config, _ = random_config(22, gain=0, neurons=16, lanes=4, groups=2, v_width=16,
                              i_width=12, ref_width=3, decay_frac=12)
    check(config, [("clear",), ("run", 3), ("gain", 3000), ("run", 3)], pipeline=pipeline)


def test_step_label_wraps():
    config, _ = random_config(3, neurons=2, lanes=2, groups=1, v_width=8, i_width=4,
                              step_width=8)
    rtl, _ = check(config, [("clear",), ("run", 200), ("run", 70)])
    assert rtl[1].beats[-1].step == (270 - 1) % 256


def test_no_membrane_no_noise_build():
    config, rng = random_config(8, neurons=8, lanes=4, groups=2, v_width=10, i_width=8)
    cur = currents(rng, config.shape, 15, 0.5)
    rtl, _ = check(config, [("clear",), ("run", 15, cur)], membrane=False, noise=False)
    assert rtl[0].v is None
    dut = LIFArray(config, membrane=False, noise=False)
    Fragment.get(dut, None)
    assert not hasattr(dut, "noise_seed") and "v" not in dict(dut.o_stream.payload.shape())


def test_param_writes_beyond_groups_are_ignored():
    config, rng = random_config(9, neurons=6, lanes=2, groups=3, v_width=10, i_width=8)
    dut = LIFArray(config)
    cur = currents(rng, config.shape, 6, 0.5)

    async def bench(ctx):
        await load_params(ctx, dut, config)
        ctx.set(dut.param_we, 1)
        ctx.set(dut.param_group, 3)  # GW = 2: 3 is not a group
        ctx.set(dut.param_data.as_value(), (1 << len(dut.param_data.as_value())) - 1)
        await ctx.tick()
        ctx.set(dut.param_we, 0)
        await clear(ctx, dut, config)
        words, _ = await run(ctx, dut, 6, cur)
        bench.result = collect(config.shape, words, 6)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    ref = golden_script(config, [("clear",), ("run", 6, cur)])[0]
    assert (bench.result[0] == ref.spikes).all() and (bench.result[1] == ref.v).all()


def test_reset_then_clear_and_zero_steps():
    """rst mid-run returns to idle; a start with 0 steps pulses done and emits nothing."""
    config, rng = random_config(4, neurons=4, lanes=2, groups=1, v_width=10, i_width=8)
    dut = LIFArray(config)
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = sync = ClockDomain("sync")
    cur = currents(rng, config.shape, 5, 0.5)

    async def bench(ctx):
        await load_params(ctx, dut, config)
        await clear(ctx, dut, config)
        ctx.set(dut.steps, 100)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(13):
            await ctx.tick()
        assert ctx.get(dut.busy)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        await ctx.tick()
        assert not ctx.get(dut.busy) and not ctx.get(dut.o_stream.valid)
        # zero steps
        ctx.set(dut.steps, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        seen = 0
        for _ in range(4):
            seen += ctx.get(dut.done)
            assert not ctx.get(dut.o_stream.valid)
            await ctx.tick()
        assert seen == 1
        await clear(ctx, dut, config)
        words, _ = await run(ctx, dut, 5, cur)
        bench.result = collect(config.shape, words, 5)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    ref = golden_script(config, [("clear",), ("run", 5, cur)])[0]
    assert (bench.result[0] == ref.spikes).all() and (bench.result[1] == ref.v).all()


def test_latency_and_cycle_counts(pipeline):
    """The timing stated in LIFArray's docstring, in clocks (not wall time)."""
    depth, steps = 5, 3
    config, _ = random_config(2, neurons=2 * depth, lanes=2, groups=1, v_width=10)
    dut = LIFArray(config, pipeline=pipeline)
    latency = dut.latency
    assert latency == {"deep": LATENCY, "compact": 8}[pipeline]

    async def bench(ctx):
        await load_params(ctx, dut, config)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        n = 1
        while not ctx.get(dut.done):
            await ctx.tick()
            n += 1
        assert n == depth + 3
        await ctx.tick()
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.steps, steps)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        n, first_valid = 1, None
        while not ctx.get(dut.done):
            if first_valid is None and ctx.get(dut.o_stream.valid):
                first_valid = n
            await ctx.tick()
            n += 1
        assert first_valid == 2 + latency  # start -> LAUNCH -> first issue at clock 2
        assert n == steps * (depth + latency + 2) + 2

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_param_struct_agrees_with_pack_params():
    rng = np.random.default_rng(0)
    for kw in SHAPES:
        shape = ArrayShape(**kw)
        layout = param_struct(shape)
        assert layout.size == sum(w for _, w in param_layout(shape))
        for _ in range(10):
            p = random_params(rng, shape)
            view = data.Const(layout, pack_params(shape, p))
            for name in ("v_th", "v_reset", "v_rest", "v_init", "bias", "t_ref"):
                assert view[name] == getattr(p, name), name
            assert view.leak_mode == LeakModeHW(int(p.leak_mode))
            assert view.reset_mode == reset_mode_hw(shape)(int(p.reset_mode))


def test_mode_enums_mirror_config():
    assert [(m.name, m.value) for m in LeakModeHW] == [(m.name, m.value) for m in LeakMode]
    assert [(m.name, m.value) for m in ResetModeWideHW] == [(m.name, m.value) for m in ResetMode]
    assert [(m.name, m.value) for m in ResetModeHW] == [(m.name, m.value)
                                                        for m in DEFAULT_RESET_MODES]
    assert reset_mode_hw(ArrayShape()) is ResetModeHW
    assert reset_mode_hw(ArrayShape(reset_modes=list(ResetMode))) is ResetModeWideHW


@pytest.mark.parametrize("lane", [0, 5])
def test_lane_noise_matches_golden(lane):
    """The noise source on its own: state and z after every advance, with ce gaps
    (``z = sum >> 8`` with ``addend = -510 * gain``)."""
    dut = LaneNoise(lane=lane)
    seed, gain, n = 0x9E3779B9 * (lane + 1) & 0xFFFFFFFF, 40000, 40  # seed gives x = 0 -> 1
    rng = np.random.default_rng(lane)
    pattern = rng.random(200) < 0.6

    async def bench(ctx):
        ctx.set(dut.seed, seed)
        ctx.set(dut.gain, gain)
        ctx.set(dut.addend, -510 * gain)
        ctx.set(dut.reseed, 1)
        await ctx.tick()
        ctx.set(dut.reseed, 0)
        await ctx.tick()
        states, zs, pending = [], [], []
        i = 0
        while len(zs) < n:
            go = bool(pattern[i % len(pattern)])
            i += 1
            ctx.set(dut.ce, go)
            ctx.set(dut.advance, go and len(states) < n)
            await ctx.tick()
            if go:
                if len(states) < n:
                    states.append(ctx.get(dut.state))
                    pending.append(0)
                pending = [d + 1 for d in pending]
                while pending and pending[0] == LaneNoise.latency:
                    pending.pop(0)
                    zs.append(ctx.get(dut.sum) >> 8)
        bench.states, bench.zs = states, zs

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    x = golden_noise.lane_seeds(seed, lane + 1)[lane:lane + 1]
    assert x[0] == 1
    want_states, want_z = [], []
    for _ in range(n):
        x = golden_noise.advance(x)
        want_states.append(int(x[0]))
        want_z.append(int((golden_noise.centered(x)[0] * gain) >> 8))
    assert bench.states == want_states
    assert bench.zs == want_z


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_pipeline_checked():
    config, _ = random_config(1, neurons=4, lanes=2, groups=1, v_width=10)
    with pytest.raises(ValueError, match="Pipeline must be one of 'deep', 'compact', not 'fast'"):
        LIFArray(config, pipeline="fast")


def test_compact_sliced_state_memories():
    """D = 512: the compact pipeline splits v and r into 8-bit-wide memories (and v's last
    slice is narrower than the others)."""
    config, rng = random_config(31, gain=3000, neurons=1024, lanes=2, groups=2, v_width=13,
                                i_width=10, ref_width=3, decay_frac=9)
    cur = currents(rng, config.shape, 3, 0.4)
    check(config, [("clear",), ("run", 3, cur)], pipeline="compact", ready=0.7, valid=0.8)
