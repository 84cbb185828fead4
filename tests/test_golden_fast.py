"""The fused kernel (``lifgate.golden.fast``) against the numpy reference, and the recordings.

* ``engine="fused"`` equals ``engine="numpy"`` bit for bit (spikes, membranes, their dtype,
  the final state with the noise generators) on the hypothesis-generated runs the numerics
  property tests fuzz (``tests/test_numerics_props.py``: every leak mode and reset rule, the
  shapes with and without SUBTRACT_AFTER_LEAK, noise on and off, saturation at 4 to 32 bits),
  in batches, over several 512-neuron blocks
  with groups that straddle them, and when a run is continued from its final state.
  ``bench/bench_golden_exact.py`` runs the same comparison on 10,000 configurations.
* The kernel's int32 path (taken when ``fixed._work_dtype`` proves every intermediate fits)
  and its int64 path agree with the reference at the int32 bound, every intermediate at its
  extreme (``test_fused_work_dtype_at_its_bound``; computing the MULT product unsplit in
  int32 fails it).
* Each recording (``spikes``, ``counts``, ``probes``) equals what is derived from the full
  record, on both engines.
* Bad ``record``/``probes``/``engine`` values: a ConfigError naming the parameter.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.golden.fixed import ENGINES, simulate, simulate_batch
from test_numerics_props import configs, runs

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
)

EXAMPLES = int(os.environ.get("LIFGATE_FUSED_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def wide_runs(draw):
    """Like ``runs()`` but up to 32-bit membranes and currents (the int64 corner)."""
    cfg = draw(configs(max_width=32))
    steps = draw(st.integers(1, 30))
    lo, hi = cfg.shape.i_range
    kind = draw(st.sampled_from(["none", "const", "random"]))
    cur = None
    if kind != "none":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        size = (cfg.shape.neurons,) if kind == "const" else (steps, cfg.shape.neurons)
        cur = rng.integers(lo, hi, size=size, endpoint=True)
    return cfg, steps, cur


def assert_same(a, b):
    """Two full-record results are identical, final state included."""
    assert a.v.dtype == b.v.dtype
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.v, b.v)
    np.testing.assert_array_equal(a.final.v, b.final.v)
    np.testing.assert_array_equal(a.final.r, b.final.r)
    np.testing.assert_array_equal(a.final.noise, b.final.noise)
    assert a.final.step == b.final.step


@FUZZ
@given(runs())
def test_fused_equals_numpy(run):
    cfg, steps, cur = run
    assert_same(simulate(cfg, steps, cur), simulate(cfg, steps, cur, engine="fused"))


@FUZZ
@given(wide_runs())
def test_fused_equals_numpy_wide(run):
    cfg, steps, cur = run
    assert_same(simulate(cfg, steps, cur), simulate(cfg, steps, cur, engine="fused"))


@FUZZ
@given(runs(), st.data())
def test_fused_continuation(run, data):
    cfg, steps, cur = run
    t1 = data.draw(st.integers(0, steps))
    ref = simulate(cfg, steps, cur)
    c1 = None if cur is None or cur.ndim == 1 else cur[:t1]
    c2 = None if cur is None or cur.ndim == 1 else cur[t1:]
    if cur is not None and cur.ndim == 1:
        c1 = c2 = cur
    a = simulate(cfg, t1, c1, engine="fused")
    b = simulate(cfg, steps - t1, c2, state=a.final, engine="fused")
    np.testing.assert_array_equal(np.concatenate([a.v, b.v]), ref.v)
    np.testing.assert_array_equal(np.concatenate([a.spikes, b.spikes]), ref.spikes)
    np.testing.assert_array_equal(b.final.noise, ref.final.noise)


def _mixed(neurons, lanes, groups, gain, seed=3):
    """Groups of every leak mode and reset rule (all 9 pairs with 9 groups or more), groups not
    aligned to the 64-neuron blocks."""
    shape = ArrayShape(neurons=neurons, lanes=lanes, groups=groups,
                       leak_modes=(LeakMode.SHIFT, LeakMode.MULT, LeakMode.CONST),
                       reset_modes=tuple(ResetMode))
    rng = np.random.default_rng(seed)
    params = []
    for g in range(groups):
        mode = LeakMode(g % 3)
        leak = {LeakMode.SHIFT: int(rng.integers(0, 8)), LeakMode.MULT: int(rng.integers(0, 65536)),
                LeakMode.CONST: int(rng.integers(-50, 50))}[mode]
        params.append(NeuronParams(v_th=int(rng.integers(100, 3000)), v_reset=-200, v_rest=-50,
                                   v_init=int(rng.integers(-500, 500)), bias=int(g) - 5,
                                   leak_mode=mode, leak=leak, reset_mode=(g + g // 3) % 3,
                                   t_ref=int(rng.integers(0, 4))))
    return Config(shape=shape, params=tuple(params), noise=NoiseParams(seed=seed, gain=gain))


@pytest.mark.parametrize("gain", [0, 900])
def test_fused_many_blocks(gain):
    cfg = _mixed(neurons=1001, lanes=7, groups=11, gain=gain)
    cur = np.random.default_rng(1).integers(-300, 400, size=(50, 1001))
    assert_same(simulate(cfg, 50, cur), simulate(cfg, 50, cur, engine="fused"))


def test_fused_batch():
    cfgs = [_mixed(neurons=130, lanes=2, groups=5, gain=g, seed=s)
            for s, g in ((1, 0), (2, 700), (3, 65535))]
    cur = np.random.default_rng(2).integers(-500, 500, size=(3, 40, 130))
    ref = simulate_batch(cfgs, 40, cur)
    got = simulate_batch(cfgs, 40, cur, engine="fused")
    for a, b in zip(ref, got, strict=True):
        assert_same(a, b)


# Recordings ---------------------------------------------------------------------------------


def derived(full, record, probes):
    """What a recording must hold, computed from the full record."""
    s = full.spikes
    if record == "spikes":
        return {"packed": np.packbits(s, axis=1)}
    if record == "counts":
        t = np.arange(s.shape[0])[:, None]
        any_ = s.any(axis=0)
        return {"spike_count": s.sum(axis=0),
                "first_spike": np.where(any_, np.where(s, t, s.shape[0]).min(axis=0), -1),
                "last_spike": np.where(s, t, -1).max(axis=0, initial=-1)}
    return {"probe_v": full.v[:, list(probes)]}


@FUZZ
@given(runs(), st.sampled_from(["spikes", "counts", "probes"]), st.sampled_from(ENGINES),
       st.data())
def test_recording_equals_derived(run, record, engine, data):
    cfg, steps, cur = run
    n = cfg.shape.neurons
    probes = None
    if record == "probes":
        probes = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    full = simulate(cfg, steps, cur)
    got = simulate(cfg, steps, cur, record=record, probes=probes, engine=engine)
    assert got.record == record and got.spikes is None and got.v is None
    for name, want in derived(full, record, probes).items():
        np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
    np.testing.assert_array_equal(got.final.v, full.final.v)
    np.testing.assert_array_equal(got.final.noise, full.final.noise)
    if record != "probes":
        np.testing.assert_array_equal(got.counts(), full.counts())
    if record == "spikes":
        np.testing.assert_array_equal(got.spike_raster(), full.spikes)
        assert got.spike_times(n - 1) == full.spike_times(n - 1)
    if record == "probes":
        assert got.probes == tuple(probes) and got.probe_v.dtype == full.v.dtype


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("record", ["spikes", "counts", "probes"])
def test_recording_many_blocks_batch(engine, record):
    cfgs = [_mixed(neurons=1001, lanes=7, groups=11, gain=g, seed=s)
            for s, g in ((4, 0), (5, 1200))]
    cur = np.random.default_rng(3).integers(-300, 600, size=(2, 30, 1001))
    probes = [1000, 0, 64, 63, 500] if record == "probes" else None
    full = simulate_batch(cfgs, 30, cur)
    got = simulate_batch(cfgs, 30, cur, record=record, probes=probes, engine=engine)
    for f, g in zip(full, got, strict=True):
        for name, want in derived(f, record, probes).items():
            np.testing.assert_array_equal(getattr(g, name), want, err_msg=name)


@pytest.mark.parametrize("kwargs, name", [
    ({"record": "all"}, "'record'"),
    ({"record": "probes"}, "'probes'"),
    ({"record": "probes", "probes": [16]}, "'probes'"),
    ({"record": "probes", "probes": [1, 1]}, "'probes'"),
    ({"record": "spikes", "probes": [1]}, "'probes'"),
    ({"engine": "numba"}, "'engine'"),
])
def test_bad_recording_arguments(kwargs, name):
    cfg = Config(shape=ArrayShape(neurons=16, lanes=4, groups=1))
    with pytest.raises(ConfigError, match=name):
        simulate(cfg, 3, **kwargs)


def test_no_record_has_no_raster():
    cfg = Config(shape=ArrayShape(neurons=16, lanes=4, groups=1))
    res = simulate(cfg, 3, record="counts", engine="fused")
    with pytest.raises(ConfigError, match="record='full' or 'spikes'"):
        res.spike_raster()


def test_reference_import_does_not_load_numba():
    """numba takes seconds to import; every cocotb session and CLI command imports the numpy
    reference, so it must not pull in the fused kernel until a run asks for it."""
    code = "import sys, lifgate.golden.fixed; assert 'numba' not in sys.modules, 'numba loaded'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape_of_cur", ["per_neuron", "per_step"])
def test_currents_out_of_range_name_the_values(engine, shape_of_cur):
    """The range check runs on the array as given (not on its [T, N] broadcast)."""
    cfg = Config(shape=ArrayShape(neurons=16, lanes=4, groups=1, i_width=8))
    cur = np.zeros(16, dtype=np.int64)
    cur[3] = 128
    cur[5] = -200
    if shape_of_cur == "per_step":
        cur = np.tile(cur, (5, 1))
    with pytest.raises(ConfigError, match=r"'currents' must lie in \[-128, 127\].*\[-200, 128\]"):
        simulate(cfg, 5, cur, engine=engine)


def _extremes(v_width, decay_frac, i_width, seed):
    """Groups at the extremes of every intermediate: the largest |v - v_rest| and MULT factor,
    a SUBTRACT reset from the lowest threshold, the widest shift, the largest constant leak."""
    shape = ArrayShape(neurons=96, lanes=4, groups=8, v_width=v_width, i_width=i_width,
                       decay_frac=decay_frac,
                       leak_modes=(LeakMode.SHIFT, LeakMode.MULT, LeakMode.CONST))
    lo, hi = shape.v_range
    top = (1 << decay_frac) - 1
    rows = [  # (v_th, v_reset, v_rest, v_init, bias, mode, leak, reset)
        (hi, lo, lo, hi, hi, LeakMode.MULT, top, 0),
        (hi, hi, hi, lo, lo, LeakMode.MULT, top, 1),
        (lo, lo, hi, hi, hi, LeakMode.MULT, top - 1, 1),
        (lo, hi, lo, lo, lo, LeakMode.MULT, 1 << (decay_frac - 1), 1),
        (lo + 1, hi, lo, hi, hi, LeakMode.SHIFT, v_width, 1),
        (hi, lo, hi, lo, lo, LeakMode.SHIFT, 1, 0),
        (0, lo, 0, hi, hi, LeakMode.CONST, lo, 1),
        (hi, hi, 0, lo, lo, LeakMode.CONST, hi, 0),
    ]
    params = tuple(NeuronParams(v_th=a, v_reset=b, v_rest=c, v_init=d, bias=e, leak_mode=m,
                                leak=k, reset_mode=rm, t_ref=1) for a, b, c, d, e, m, k, rm in rows)
    ilo, ihi = shape.i_range
    cur = np.random.default_rng(seed).choice([ilo, ihi, 0, ilo + 1, ihi - 1], size=(40, 96))
    return Config(shape=shape, params=params, noise=NoiseParams(seed=seed, gain=65535)), cur


@pytest.mark.parametrize("v_width, decay_frac, i_width, dtype", [
    (21, 16, 24, np.int32),  # v_width + 1 + max(8, F - 8) = 30: the int32 bound, reached
    (16, 21, 24, np.int32),
    (22, 16, 24, np.int64),  # one bit over: int64
    (24, 8, 24, np.int64),
    (24, 16, 16, np.int64),
    (20, 7, 8, np.int64),  # MULT with decay_frac < 8: no split, int64
])
def test_fused_work_dtype_at_its_bound(v_width, decay_frac, i_width, dtype):
    """The fused kernel computes in int32 exactly when ``fixed._work_dtype`` proves every
    intermediate fits; at that bound, every intermediate at its extreme, both engines agree."""
    for seed in (1, 2):
        cfg, cur = _extremes(v_width, decay_frac, i_width, seed)
        ref = simulate(cfg, 40, cur)
        assert ref.v.dtype == dtype
        got = simulate(cfg, 40, cur, engine="fused")
        assert_same(ref, got)
        assert ref.spikes.any() and not ref.spikes.all()
        for record in ("spikes", "counts"):
            part = simulate(cfg, 40, cur, record=record, engine="fused")
            for name, want in derived(ref, record, None).items():
                np.testing.assert_array_equal(getattr(part, name), want, err_msg=name)
