"""Multi-spike output (``ArrayShape.spike_max``, ``docs/numerics.md``, "Multi-spike output").

The vectorised golden model equals the literal one-neuron transcription (``step_scalar``)
step for step; the counts obey the contract's formula read off the outputs; ``spike_max = 1``
changes nothing; a network feeds the counts to the next layer (``W . n``); what the option
does not support is refused in one line.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.golden.fixed import simulate, step_scalar
from lifgate.golden.synapse import Layer, Network, simulate_network, synaptic_current

from lifgate.config import (
    SPIKE_MAXES,
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    ResetMode,
)

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def multi_runs(draw, spike_max=None):
    """A small array with ``spike_max > 1``, every run-time option drawn (``v_th >= 1``)."""
    lanes = draw(st.sampled_from([1, 2]))
    neurons = lanes * draw(st.integers(1, 3))
    w = draw(st.integers(4, 16))
    shape = ArrayShape(neurons=neurons, lanes=lanes, groups=neurons, v_width=w,
                       i_width=draw(st.integers(2, w + 1)), ref_width=draw(st.integers(1, 3)),
                       decay_frac=draw(st.integers(1, 12)),
                       spike_max=spike_max or draw(st.sampled_from(SPIKE_MAXES[1:])))
    lo, hi = shape.v_range
    v = st.integers(lo, hi)
    params = []
    for _ in range(neurons):
        mode = draw(st.sampled_from(list(LeakMode)))
        llo, lhi = shape.leak_range(mode)
        # small thresholds make large counts (and the cap) common
        v_th = draw(st.one_of(st.integers(1, max(1, hi >> (w // 2))), st.integers(1, hi)))
        params.append(NeuronParams(
            v_th=v_th, v_reset=draw(v), v_rest=draw(v), v_init=draw(v), bias=draw(v),
            leak_mode=mode, leak=draw(st.integers(llo, lhi)),
            reset_mode=draw(st.sampled_from(shape.reset_modes)),
            t_ref=draw(st.integers(0, shape.t_ref_max))))
    steps = draw(st.integers(1, 25))
    ilo, ihi = shape.i_range
    seed = draw(st.integers(0, 2**32 - 1))
    cur = np.random.default_rng(seed).integers(ilo, ihi, size=(steps, neurons), endpoint=True)
    return Config(shape=shape, params=tuple(params)), steps, cur


@PROPS
@given(multi_runs())
def test_vectorised_equals_step_scalar(run):
    """``simulate`` (numpy, record full) equals ``step_scalar`` iterated, count for count."""
    cfg, steps, cur = run
    res = simulate(cfg, steps, cur)
    assert res.spikes.dtype == np.uint8
    for k in range(cfg.shape.neurons):
        p = cfg.neuron_params(k)
        v, r = p.v_init, 0
        for t in range(steps):
            s, v, r = step_scalar(cfg.shape, p, v, r, int(cur[t, k]))
            assert (int(res.spikes[t, k]), int(res.v[t, k])) == (s, v), (k, t)


@PROPS
@given(multi_runs())
def test_counts_follow_the_contract(run):
    """Read off the outputs: outside the refractory period a neuron emits
    ``n = min(v // v_th, spike_max)`` when ``v >= v_th`` (else 0), and in SUBTRACT mode a
    held spike step leaves ``sat(v - n v_th)``; the counts record sums the counts."""
    cfg, steps, cur = run
    res = simulate(cfg, steps, cur)
    sm = cfg.shape.spike_max
    for k in range(cfg.shape.neurons):
        p = cfg.neuron_params(k)
        last = None
        for t in range(steps):
            v = p.v_init if t == 0 else int(res.v[t - 1, k])
            refractory = last is not None and t <= last + p.t_ref
            want = 0 if refractory or v < p.v_th else min(v // p.v_th, sm)
            assert res.spikes[t, k] == want, (k, t)
            if want:
                last = t
                if p.t_ref and p.reset_mode == ResetMode.SUBTRACT:
                    lo, hi = cfg.shape.v_range
                    assert res.v[t, k] == min(max(v - want * p.v_th, lo), hi)
    counts = simulate(cfg, steps, cur, record="counts")
    np.testing.assert_array_equal(counts.spike_count, res.spikes.sum(axis=0, dtype=np.int64))
    np.testing.assert_array_equal(counts.final.v, res.final.v)


def test_iaf_against_the_sinabs_recurrence():
    """An IAF neuron (CONST leak 0, SUBTRACT, t_ref 0) is sinabs' MultiSpike one step later:
    ``n = floor(v / th)`` capped at ``spike_max``, ``v -= n th``, ``v += i``; written here
    independently of the model."""
    rng = np.random.default_rng(7)
    shape = ArrayShape(neurons=8, lanes=2, groups=1, v_width=16, i_width=16, spike_max=7)
    p = NeuronParams(v_th=100, leak_mode=LeakMode.CONST, leak=0, reset_mode=ResetMode.SUBTRACT)
    cur = rng.integers(0, 900, size=(50, 8))
    res = simulate(Config(shape=shape, params=(p,)), 50, cur)
    v = np.zeros(8, dtype=np.int64)
    capped = 0
    for t in range(50):
        n = np.where(v >= 100, np.minimum(v // 100, 7), 0)
        capped += int((v // 100 > 7).sum())
        v = v - n * 100 + cur[t]
        np.testing.assert_array_equal(res.spikes[t], n)
        np.testing.assert_array_equal(res.v[t], v)
    assert res.spikes.max() == 7 and capped  # the cap was reached and kept


def test_spike_max_one_is_unchanged():
    """The default shape and an explicit ``spike_max=1`` are one shape; its spikes are bool."""
    assert ArrayShape() == ArrayShape(spike_max=1)
    assert Config().to_dict()["shape"]["spike_max"] == 1
    cfg = Config(shape=ArrayShape(neurons=4, lanes=2, groups=1),
                 params=(NeuronParams(v_th=10, leak_mode=LeakMode.CONST, leak=0,
                                      reset_mode=ResetMode.SUBTRACT),))
    res = simulate(cfg, 5, np.full(4, 35))
    assert res.spikes.dtype == bool and res.spikes.sum() == 4 * 4
    multi = cfg.replace(shape=dataclasses.replace(cfg.shape, spike_max=3))
    assert Config.from_dict(multi.to_dict()) == multi


def test_network_feeds_counts():
    """Layer 1 receives ``W . n``: the counts of layer 0 of the same step, and the
    accumulator width counts their bits."""
    shape = ArrayShape(neurons=4, lanes=2, groups=1, v_width=12, i_width=12, spike_max=15)
    p = NeuronParams(v_th=10, leak_mode=LeakMode.CONST, leak=0, reset_mode=ResetMode.SUBTRACT)
    w0 = np.array([[30], [50], [90], [200]])
    w1 = np.array([[1, -2, 3, 1]] * 4)
    net = Network((Layer(w0, Config(shape=shape, params=(p,))),
                   Layer(w1, Config(shape=shape, params=(p,)))), w_width=9)
    res = simulate_network(net, 6, np.ones((6, 1), dtype=np.int64))
    assert res.spikes[0].max() == 15  # 200 // 10 = 20, capped
    np.testing.assert_array_equal(res.currents[1], synaptic_current(w1, res.spikes[0], 12))
    assert res.currents[1][2, 0] == 3 - 10 + 27 + 15
    assert res.spike_ops == int(res.spikes[0].sum()) * 4


@pytest.mark.parametrize("kwargs,match", [
    ({"shape": {"spike_max": 2}}, "'spike_max' must be one of 1, 3, 7, 15, not 2"),
    ({"shape": {"spike_max": 16}}, "'spike_max' must be one of 1, 3, 7, 15, not 16"),
    ({"shape": {"spike_max": 3.0}}, "'spike_max' must be one of 1, 3, 7, 15, not 3.0"),
    ({"shape": {"spike_max": 3}, "params": [{"v_th": 0}]},
     r"v_th \(spike_max 3\)' must be an integer in \[1, 32767\], not 0"),
])
def test_bad_multispike_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_dict(kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"engine": "fused"}, "engine='fused' does not support multi-spike"),
    ({"record": "spikes"}, "record='spikes' .* does not support multi-spike"),
])
def test_unsupported_runs_refused(kwargs, match):
    cfg = Config(shape=ArrayShape(neurons=2, lanes=1, groups=1, spike_max=3))
    with pytest.raises(ConfigError, match=match):
        simulate(cfg, 3, **kwargs)
