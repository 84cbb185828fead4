"""``ResetMode.SUBTRACT_AFTER_LEAK`` (docs/numerics.md, "Subtract before or after the leak").

The golden model against the framework's own step (snnTorch's ``Leaky`` with
``reset_mechanism="subtract"``: ``mem' = beta mem + x - s theta``), the vectorised model against
the literal :func:`step_scalar` with the three reset modes side by side, and the claims of the
numerics page: one saturation at the end, the same step as SUBTRACT under a CONST leak, the
held value ``v - v_th`` with a refractory period. (The lane against ``step_scalar``:
tests/test_hdl_lane.py; the whole array on Icarus and Verilator: tests/test_sim_regression.py
through the directed cases of ``lifgate.sim.cases``.)
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from lifgate.golden.fixed import simulate, step_scalar

from lifgate.config import ArrayShape, Config, LeakMode, NeuronParams, ResetMode

AFTER = ResetMode.SUBTRACT_AFTER_LEAK
AFTER_FIRST = [AFTER, ResetMode.SUBTRACT, ResetMode.VALUE]
SHAPE = ArrayShape(neurons=6, lanes=2, groups=3, v_width=12, i_width=10, ref_width=3,
                   decay_frac=12, reset_modes=tuple(ResetMode))


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-2048, 2047), D=st.integers(0, 4095), v_th=st.integers(1, 1000),
       i=st.integers(-300, 300))
def test_mult_leak_is_snntorch_subtract_reset(v, D, v_th, i):
    """One step equals snnTorch's ``beta mem + x - s theta`` (beta = D / 2^F) up to the
    rounding of ``beta mem``, wherever the exact value is in range; SUBTRACT is off by
    ``(1 - beta) theta`` on a spike, so this fails if the mode subtracts before the leak."""
    p = NeuronParams(v_th=v_th, v_rest=0, leak_mode=LeakMode.MULT, leak=D, reset_mode=AFTER)
    s, v1, r1 = step_scalar(SHAPE, p, v, 0, i)
    beta = D / 4096
    want = beta * v + i - (v_th if v >= v_th else 0)
    lo, hi = SHAPE.v_range
    assert s == (v >= v_th) and r1 == 0
    if lo <= want <= hi:
        assert abs(v1 - want) <= 0.5, (v1, want)


def test_one_saturation_at_the_end():
    """``leak(v) + bias`` above VMAX, ``- v_th`` back in range: the exact sum, clipped once."""
    lo, hi = SHAPE.v_range
    p = NeuronParams(v_th=hi, v_init=hi, bias=hi, leak_mode=LeakMode.CONST, leak=0,
                     reset_mode=AFTER)
    assert step_scalar(SHAPE, p, hi, 0, 0) == (1, hi, 0)  # clipping first would give 0
    res = simulate(Config(shape=SHAPE, params=(p,)), 1)
    assert res.spikes[0].all() and (res.v[0] == hi).all()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_simulate_matches_step_scalar_with_every_reset_mode(data):
    """The vectorised model (three groups: one per reset mode, or all drawn) against
    ``step_scalar``, neuron by neuron, with refractory periods, every leak mode and currents
    that saturate."""
    lo, hi = SHAPE.v_range
    v = st.integers(lo, hi)
    mixed = data.draw(st.booleans())
    params = []
    for g in range(3):
        mode = data.draw(st.sampled_from(list(LeakMode)))
        llo, lhi = SHAPE.leak_range(mode)
        params.append(NeuronParams(
            v_th=data.draw(v), v_reset=data.draw(v), v_rest=data.draw(v), v_init=data.draw(v),
            bias=data.draw(st.integers(lo // 8, hi // 8)), leak_mode=mode,
            leak=data.draw(st.integers(llo, lhi)),
            reset_mode=list(ResetMode)[g] if mixed else data.draw(st.sampled_from(AFTER_FIRST)),
            t_ref=data.draw(st.integers(0, 2))))
    cfg = Config(shape=SHAPE, params=tuple(params))
    steps = 12
    ilo, ihi = SHAPE.i_range
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cur = rng.integers(ilo, ihi, size=(steps, SHAPE.neurons), endpoint=True)
    res = simulate(cfg, steps, cur)
    for n in range(SHAPE.neurons):
        p = cfg.neuron_params(n)
        vn, rn = p.v_init, 0
        for t in range(steps):
            s, vn, rn = step_scalar(SHAPE, p, vn, rn, int(cur[t, n]))
            assert (res.spikes[t, n], res.v[t, n]) == (s, vn), (n, t, p)


@settings(max_examples=200, deadline=None)
@given(v=st.integers(-2048, 2047), r=st.integers(0, 7), v_th=st.integers(-2048, 2047),
       c=st.integers(-2048, 2047), bias=st.integers(-2048, 2047), t_ref=st.integers(0, 7),
       i=st.integers(-512, 511))
def test_const_leak_after_equals_subtract(v, r, v_th, c, bias, t_ref, i):
    """With the CONST leak (IAF) subtracting before or after the leak is the same step,
    refractory period and held value ``sat(v - v_th)`` included."""
    p = NeuronParams(v_th=v_th, bias=bias, leak_mode=LeakMode.CONST, leak=c, t_ref=t_ref,
                     reset_mode=AFTER)
    q = NeuronParams(v_th=v_th, bias=bias, leak_mode=LeakMode.CONST, leak=c, t_ref=t_ref,
                     reset_mode=ResetMode.SUBTRACT)
    assert step_scalar(SHAPE, p, v, r, i) == step_scalar(SHAPE, q, v, r, i)


def test_held_spike_holds_v_minus_v_th():
    """A spike with ``t_ref > 0`` holds ``sat(v - v_th)`` (no leak in a held step); the
    refractory steps after it hold ``v``."""
    p = NeuronParams(v_th=100, v_rest=-50, leak_mode=LeakMode.SHIFT, leak=2, bias=7,
                     reset_mode=AFTER, t_ref=2)
    assert step_scalar(SHAPE, p, 130, 0, 9) == (1, 30, 2)
    assert step_scalar(SHAPE, p, 30, 2, 9) == (0, 30, 1)
    hi = SHAPE.v_range[1]
    assert step_scalar(SHAPE, NeuronParams(v_th=-2000, reset_mode=AFTER, t_ref=1),
                       hi, 0, 0) == (1, hi, 1)  # v - v_th = 4047, saturated
