"""Property tests of the fixed-point model (``lifgate.golden.fixed``) against ``docs/numerics.md``.

Each property is read off the contract's text and checked on the model's outputs only (spikes
and the membrane after each step), so none of them repeats the model's own arithmetic:
bounds, the refractory period, spike iff threshold reached outside it, the held values, the
CONST-leak step, independence of the lane count, continuation of a run, and the exact fixed
point that ``lifgate.compilers.quantize`` relies on for "no spike at the rheobase".
"""

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lifgate.golden.fixed import simulate

from lifgate.compilers.quantize import quantize
from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
    pack_params,
    param_layout,
    unpack_params,
)

PROPS = settings(max_examples=80, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def shapes(draw, max_width=24):
    lanes = draw(st.sampled_from([1, 2, 4]))
    depth = draw(st.integers(1, 4))
    neurons = lanes * depth
    groups = draw(st.sampled_from([g for g in range(1, neurons + 1) if neurons % g == 0]))
    modes = draw(st.sets(st.sampled_from(list(LeakMode)), min_size=1))
    # VALUE and SUBTRACT are always built; SUBTRACT_AFTER_LEAK is a shape option
    resets = list(ResetMode) if draw(st.booleans()) else [ResetMode.VALUE, ResetMode.SUBTRACT]
    return ArrayShape(
        neurons=neurons, lanes=lanes, groups=groups,
        v_width=draw(st.integers(4, max_width)), i_width=draw(st.integers(2, max_width)),
        ref_width=draw(st.integers(1, 6)), decay_frac=draw(st.integers(1, 20)),
        leak_modes=tuple(modes), step_width=draw(st.integers(8, 32)),
        reset_modes=tuple(resets),
    )


@st.composite
def neuron_params(draw, shape, modes=None):
    lo, hi = shape.v_range
    v = st.integers(lo, hi)
    mode = draw(st.sampled_from(sorted(modes or shape.leak_modes)))
    llo, lhi = shape.leak_range(mode)
    return NeuronParams(
        v_th=draw(v), v_reset=draw(v), v_rest=draw(v), v_init=draw(v), bias=draw(v),
        leak_mode=mode, leak=draw(st.integers(llo, lhi)),
        reset_mode=draw(st.sampled_from(shape.reset_modes)),
        t_ref=draw(st.integers(0, shape.t_ref_max)),
    )


@st.composite
def configs(draw, noise=None, modes=None, max_width=24):
    shape = draw(shapes(max_width))
    if modes is not None:
        shape = dataclasses.replace(shape, leak_modes=tuple(modes))
    n = draw(st.sampled_from([1, shape.groups]))
    params = tuple(draw(neuron_params(shape, modes)) for _ in range(n))
    with_noise = draw(st.booleans()) if noise is None else noise
    nz = NoiseParams(seed=draw(st.integers(0, 2**32 - 1)),
                     gain=draw(st.integers(1, 2**16 - 1)) if with_noise else 0)
    return Config(shape=shape, params=params, noise=nz)


@st.composite
def runs(draw, noise=None, modes=None):
    cfg = draw(configs(noise=noise, modes=modes))
    steps = draw(st.integers(1, 40))
    lo, hi = cfg.shape.i_range
    kind = draw(st.sampled_from(["none", "const", "random"]))
    if kind == "none":
        cur = None
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        size = (cfg.shape.neurons,) if kind == "const" else (steps, cfg.shape.neurons)
        cur = rng.integers(lo, hi, size=size, endpoint=True)
    return cfg, steps, cur


def _group_arrays(cfg, name):
    return np.array([getattr(cfg.neuron_params(n), name) for n in range(cfg.shape.neurons)])


def _sat(x, shape):
    lo, hi = shape.v_range
    return np.clip(x, lo, hi)


# Step properties ----------------------------------------------------------------------------


@PROPS
@given(runs())
def test_membrane_within_bounds(run):
    cfg, steps, cur = run
    res = simulate(cfg, steps, cur)
    lo, hi = cfg.shape.v_range
    assert res.v.shape == (steps, cfg.shape.neurons) and res.spikes.shape == res.v.shape
    assert res.v.min() >= lo and res.v.max() <= hi


@PROPS
@given(runs())
def test_spikes_refractory_and_held_values(run):
    """Spike iff ``v >= v_th`` outside the refractory period; exactly ``t_ref`` steps of it.

    After a spike at ``s`` the neuron is refractory at ``s+1 .. s+t_ref``; the membrane is
    held at the spike step and every refractory step but the last: ``sat(v_reset)`` in VALUE
    mode, ``sat(v - v_th)`` (then unchanged) in SUBTRACT mode.
    """
    cfg, steps, cur = run
    res = simulate(cfg, steps, cur)
    n = cfg.shape.neurons
    v_th, v_reset = _group_arrays(cfg, "v_th"), _group_arrays(cfg, "v_reset")
    t_ref, v_init = _group_arrays(cfg, "t_ref"), _group_arrays(cfg, "v_init")
    value = _group_arrays(cfg, "reset_mode") == ResetMode.VALUE
    for k in range(n):
        last = None  # step of the last spike
        for t in range(steps):
            v_before = v_init[k] if t == 0 else res.v[t - 1, k]
            refractory = last is not None and t <= last + t_ref[k]
            assert res.spikes[t, k] == (not refractory and v_before >= v_th[k]), (k, t)
            if res.spikes[t, k]:
                last = t
            if last is not None and last <= t < last + t_ref[k]:  # held
                if value[k]:
                    want = _sat(v_reset[k], cfg.shape)
                elif t == last:
                    want = _sat(v_before - v_th[k], cfg.shape)
                else:
                    want = res.v[t - 1, k]
                assert res.v[t, k] == want, (k, t)
    # the final refractory counter is what is left of the last spike's period
    # (checked through a continuation in test_continuation)


@PROPS
@given(runs(noise=False, modes=[LeakMode.CONST]))
def test_const_leak_step(run):
    """CONST leak, no noise: an integrating step is ``sat(h - c + bias + i)``."""
    cfg, steps, cur = run
    res = simulate(cfg, steps, cur)
    n, sh = cfg.shape.neurons, cfg.shape
    g = {name: _group_arrays(cfg, name) for name in
         ("v_th", "v_reset", "v_init", "bias", "leak", "t_ref", "reset_mode")}
    i = np.zeros((steps, n), dtype=np.int64) if cur is None else np.broadcast_to(cur, (steps, n))
    for k in range(n):
        last = None
        for t in range(steps):
            v_before = g["v_init"][k] if t == 0 else int(res.v[t - 1, k])
            if res.spikes[t, k]:
                last = t
            integrating = last is None or t >= last + g["t_ref"][k]
            if not integrating:
                continue
            if last is not None and t <= last + g["t_ref"][k]:  # spike step or last refractory
                h = (g["v_reset"][k] if g["reset_mode"][k] == ResetMode.VALUE else
                     (v_before - g["v_th"][k] if t == last else v_before))
            else:
                h = v_before
            want = _sat(h - g["leak"][k] + g["bias"][k] + int(i[t, k]), sh)
            assert res.v[t, k] == want, (k, t)


@PROPS
@given(runs(noise=False), st.sampled_from([1, 2, 4]))
def test_independent_of_lanes_without_noise(run, lanes):
    cfg, steps, cur = run
    assume(cfg.shape.neurons % lanes == 0)
    other = cfg.replace(shape=dataclasses.replace(cfg.shape, lanes=lanes))
    a, b = simulate(cfg, steps, cur), simulate(other, steps, cur)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.v, b.v)


@PROPS
@given(runs(), st.data())
def test_continuation(run, data):
    """Running T1 then T2 steps from the final state equals one run of T1 + T2 steps."""
    cfg, steps, cur = run
    assume(steps >= 2)
    t1 = data.draw(st.integers(1, steps - 1))
    whole = simulate(cfg, steps, cur)
    if cur is None or cur.ndim == 1:
        c1 = c2 = cur
    else:
        c1, c2 = cur[:t1], cur[t1:]
    first = simulate(cfg, t1, c1)
    second = simulate(cfg, steps - t1, c2, state=first.final)
    np.testing.assert_array_equal(np.concatenate([first.spikes, second.spikes]), whole.spikes)
    np.testing.assert_array_equal(np.concatenate([first.v, second.v]), whole.v)
    np.testing.assert_array_equal(second.final.r, whole.final.r)
    assert second.final.step == whole.final.step == steps


@PROPS
@given(runs(noise=False))
def test_deterministic(run):
    cfg, steps, cur = run
    a, b = simulate(cfg, steps, cur), simulate(cfg, steps, cur)
    np.testing.assert_array_equal(a.v, b.v)


# The exact fixed point that lifgate.compilers.quantize uses ---------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    tau_steps=st.integers(2, 64),
    mode=st.sampled_from(["mult", "shift"]),
    frac=st.floats(0.0, 1.0),
)
def test_settle_is_the_fixed_point(tau_steps, mode, frac):
    """From below, constant input ``u`` settles exactly at ``Quantized.settle(u)``."""
    if mode == "shift":
        tau_steps = 1 << (tau_steps.bit_length() - 1)
    q = quantize(tau_m=0.1 * tau_steps, leak=mode, V_th=-35.0)
    # inputs whose V_inf lies between E_L and just above the threshold
    u = 1 + int(frac * 1.05 * (q.params.v_th - q.params.v_rest) * q.gain)
    settle = q.settle(u)
    assert settle > q.params.v_init  # u >= 1: the fixed point lies above the start
    assume(settle < q.params.v_th)
    steps = 45 * tau_steps + 50
    res = simulate(q._sweep_config(1), steps, np.array([u]))
    assert not res.spikes.any()
    assert res.v[-1, 0] == settle and res.v[:, 0].max() == settle
    # one more unit of input settles at least as high (monotone in the input)
    assert q.settle(u + 1) >= settle


# Invalid configurations ---------------------------------------------------------------------


@st.composite
def bad_param(draw):
    shape = draw(shapes())
    p = draw(neuron_params(shape))
    lo, hi = shape.v_range
    field = draw(st.sampled_from(["v_th", "v_reset", "v_rest", "v_init", "bias", "t_ref",
                                  "leak"]))
    off = draw(st.integers(1, 1000))
    if field == "t_ref":
        value = draw(st.sampled_from([-off, shape.t_ref_max + off]))
    elif field == "leak":
        llo, lhi = shape.leak_range(p.leak_mode)
        value = draw(st.sampled_from([llo - off, lhi + off]))
    else:
        value = draw(st.sampled_from([lo - off, hi + off]))
    return shape, dataclasses.replace(p, **{field: value}), field


@PROPS
@given(bad_param())
def test_out_of_range_parameter_raises(case):
    shape, p, field = case
    with pytest.raises(ConfigError, match=field):
        Config(shape=shape, params=(p,))
    with pytest.raises(ConfigError):
        pack_params(shape, p)


@PROPS
@given(shapes(), st.data())
def test_unsupported_leak_mode_raises(shape, data):
    missing = [m for m in LeakMode if m not in shape.leak_modes]
    assume(missing)
    mode = data.draw(st.sampled_from(missing))
    with pytest.raises(ConfigError, match="leak_mode"):
        Config(shape=shape, params=(NeuronParams(leak_mode=mode, leak=0, v_th=1),))


@PROPS
@given(shapes())
def test_unsupported_reset_mode_raises(shape):
    """SUBTRACT_AFTER_LEAK on a shape that does not build it: one line naming the parameter
    and the modes the shape has; VALUE and SUBTRACT are legal on every shape."""
    p = NeuronParams(reset_mode=ResetMode.SUBTRACT_AFTER_LEAK, leak_mode=shape.leak_modes[0],
                     leak=0, v_th=1)
    if ResetMode.SUBTRACT_AFTER_LEAK in shape.reset_modes:
        Config(shape=shape, params=(p,))
        assert shape.layout.params["reset_mode"].width == 2
        return
    assert shape.layout.params["reset_mode"].width == 1
    with pytest.raises(ConfigError) as e:
        Config(shape=shape, params=(p,))
    assert "reset_mode' must be one the array supports (value, subtract)" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="reset_mode"):
        pack_params(shape, p)
    for mode in (ResetMode.VALUE, ResetMode.SUBTRACT):
        Config(shape=shape, params=(dataclasses.replace(p, reset_mode=mode),))


@pytest.mark.parametrize("kwargs,field", [
    (dict(v_width=3), "v_width"), (dict(v_width=33), "v_width"), (dict(i_width=1), "i_width"),
    (dict(ref_width=0), "ref_width"), (dict(decay_frac=25), "decay_frac"),
    (dict(lanes=65), "lanes"), (dict(neurons=6, lanes=4), "neurons"),
    (dict(neurons=8, lanes=4, groups=3), "groups"), (dict(leak_modes=()), "leak_modes"),
    (dict(step_width=7), "step_width"), (dict(v_width=16.0), "v_width"),
    (dict(reset_modes=()), "reset_modes"), (dict(reset_modes=("value",)), "reset_modes"),
    (dict(reset_modes=("subtract_after_leak",)), "reset_modes"),
    (dict(reset_modes=("value", "subtract", "after")), "reset_modes"),
])
def test_bad_shape_raises(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ArrayShape(**kwargs)


@PROPS
@given(runs(noise=False), st.sampled_from(["low", "high"]))
def test_out_of_range_current_raises(run, side):
    cfg, steps, _ = run
    lo, hi = cfg.shape.i_range
    cur = np.zeros((steps, cfg.shape.neurons), dtype=np.int64)
    cur[-1, -1] = lo - 1 if side == "low" else hi + 1
    with pytest.raises(ConfigError, match="currents"):
        simulate(cfg, steps, cur)


# Round trips ----------------------------------------------------------------------------------


@PROPS
@given(configs())
def test_json_toml_round_trip(cfg):
    assert Config.from_json(cfg.to_json()) == cfg
    assert Config.from_toml(cfg.to_toml()) == cfg
    assert Config.from_dict(cfg.to_dict()) == cfg
    with tempfile.TemporaryDirectory() as d:
        for name in ("c.json", "c.toml"):
            cfg.save(Path(d) / name)
            assert Config.load(Path(d) / name) == cfg


@PROPS
@given(shapes(max_width=32), st.data())
def test_pack_unpack_round_trip(shape, data):
    p = data.draw(neuron_params(shape))
    word = pack_params(shape, p)
    total = sum(w for _, w in param_layout(shape))
    assert 0 <= word < 1 << total
    assert unpack_params(shape, word) == p
    # each field sits where param_layout says, two's complement for the signed ones
    offset = 0
    for name, width in param_layout(shape):
        raw = (word >> offset) & ((1 << width) - 1)
        assert raw == int(getattr(p, name)) & ((1 << width) - 1), name
        offset += width


def test_noise_state_advances_whatever_the_gain():
    # numerics.md "Noise": every update advances the generator, gain 0 included.
    from lifgate.golden.fixed import simulate

    from lifgate.config import ArrayShape, Config, NeuronParams, NoiseParams

    shape = ArrayShape(neurons=8, lanes=2, groups=1)
    quiet = Config(shape=shape, params=(NeuronParams(),), noise=NoiseParams(seed=5, gain=0))
    loud = quiet.replace(noise=NoiseParams(seed=5, gain=9))
    assert (simulate(quiet, 7).final.noise == simulate(loud, 7).final.noise).all()
