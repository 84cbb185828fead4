"""The float references of the seed notebooks (``lifgate.golden.float_ref``).

Oracles: the seed notebooks' printed results ([47, 94]; 2 spikes), closed forms of the
Euler recurrences, a literal transcription of the notebook's ``run_LIF`` loop, and the
analytic LIF rate.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lifgate.golden.float_ref import (
    analytic_rate,
    default_pars,
    euler_lif,
    iaf,
    iaf_sweep,
    isi_rate,
    lif_batch,
    lif_steps,
    my_GWN,
    refractory_steps,
    run_lif,
)


def notebook_run_lif(pars, Iinj):
    """The neuromatch W2D3 / seed notebook loop, literally (float ``v``, float ``tr``)."""
    V_th, V_reset = pars["V_th"], pars["V_reset"]
    tau_m, g_L = pars["tau_m"], pars["g_L"]
    V_init, E_L = pars["V_init"], pars["E_L"]
    dt, range_t = pars["dt"], pars["range_t"]
    Lt = range_t.size
    tref = pars["tref"]
    v = np.zeros(Lt)
    v[0] = V_init
    Iinj = Iinj * np.ones(Lt)
    rec_spikes = []
    tr = 0.0
    for it in range(Lt - 1):
        if tr > 0:
            v[it] = V_reset
            tr = tr - 1
        elif v[it] >= V_th:
            rec_spikes.append(it)
            v[it] = V_reset
            tr = tref / dt
        dv = (-(v[it] - E_L) + Iinj[it] / g_L) * (dt / tau_m)
        v[it + 1] = v[it] + dv
    return v, np.array(rec_spikes) * dt


# Unit-free Euler LIF ---------------------------------------------------------------------------


def test_euler_seed_spikes():
    tr = euler_lif()
    assert tr.spikes == [47, 94]  # the notebook's printed output
    assert len(tr.v) == 101
    assert tr.v[47] == 0.0 and tr.v[94] == 0.0


def test_euler_matches_closed_form():
    # Before the first spike v_t = i (1 - (1 - 1/tau)^t); the first spike is the first t with
    # v_t >= v_th.
    tr = euler_lif()
    t = np.arange(47)
    closed = 11.0 * (1.0 - (1.0 - 1.0 / 20.0) ** t)
    np.testing.assert_allclose(tr.v[:47], closed, rtol=0, atol=1e-12)
    first = int(np.argmax(11.0 * (1.0 - 0.95 ** np.arange(200)) >= 10.0))
    assert tr.spikes[0] == first
    # after a reset to 0 the trajectory repeats: ISI constant
    assert tr.spikes[1] - tr.spikes[0] == first


def test_euler_is_the_biophysical_loop_without_units():
    # dt = 1, g_L = 1, E_L = 0, no refractory period: the same recurrence
    p = default_pars(V_th=10.0, V_reset=0.0, tau_m=20.0, g_L=1.0, V_init=0.0, E_L=0.0,
                     tref=0.0, T=100.0, dt=1.0)
    v, sp = run_lif(p, 11.0)
    assert sp.tolist() == euler_lif().spikes
    np.testing.assert_allclose(v, euler_lif().v[:100], rtol=0, atol=1e-12)


# Biophysical LIF ---------------------------------------------------------------------------


def test_default_pars():
    p = default_pars()
    assert (p["V_th"], p["V_reset"], p["tau_m"], p["g_L"]) == (-55.0, -75.0, 10.0, 10.0)
    assert (p["V_init"], p["E_L"], p["tref"], p["T"], p["dt"]) == (-75.0, -75.0, 2.0, 500.0, 0.1)
    assert p["range_t"].size == 5000
    q = default_pars(T=100.0, V_th=-50.0)
    assert q["range_t"].size == 1000 and q["V_th"] == -50.0


@pytest.mark.parametrize("current", [0.0, 150.0, 200.0, 210.0, 250.0, 333.0, 500.0, 1000.0])
def test_matches_notebook_loop_constant(current):
    p = default_pars()
    v_ref, sp_ref = notebook_run_lif(p, current)
    v, sp = run_lif(p, current)
    assert sp.tolist() == sp_ref.tolist()
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mu,sig,seed", [(200.0, 2.5, 2020), (250.0, 0.5, 1), (300.0, 3.0, 7)])
def test_matches_notebook_loop_noise(mu, sig, seed):
    p = default_pars()
    current = my_GWN(p, mu, sig, myseed=seed)
    _, sp_ref = notebook_run_lif(p, current)
    _, sp = run_lif(p, current)
    assert sp.tolist() == sp_ref.tolist()


def test_refractory_ordering():
    # membrane reads V_reset at the spike step and the tref/dt steps after it; the next
    # sample is V_reset integrated once
    p = default_pars()
    res = lif_steps(p, 400.0)
    s = int(res.spikes[0])
    t_ref = refractory_steps(p)
    assert t_ref == 20
    assert np.all(res.v[s:s + t_ref + 1] == p["V_reset"])
    assert res.v[s + t_ref + 1] > p["V_reset"]
    assert res.spikes[1] - res.spikes[0] > t_ref


def test_refractory_steps_counts_like_the_notebook():
    # the notebook counts tr = tref/dt down while tr > 0
    for tref, dt in [(2.0, 0.1), (0.3, 0.1), (0.25, 0.1), (0.0, 0.1), (1.0, 0.3)]:
        tr, n = tref / dt, 0
        while tr > 1e-9:
            tr -= 1
            n += 1
        assert refractory_steps({"tref": tref, "dt": dt}) == n


def test_no_spike_at_rheobase():
    # V_inf == V_th exactly at 200 pA: the membrane approaches the threshold, never reaches it
    p = default_pars(T=3000.0)
    res = lif_batch(p, np.array([150.0, 199.0, 199.99, 200.0]))
    assert not res.spikes.any()
    assert res.v.max() < p["V_th"]
    assert res.v[-1, 3] > p["V_th"] - 1e-9  # it did get there


finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    e_l=st.floats(-90, -50, **finite),
    delta=st.floats(0.5, 40, **finite),
    g_l=st.floats(1, 50, **finite),
    tau_steps=st.integers(3, 200),  # dt/tau_m < 1/2
)
def test_no_spike_when_v_inf_equals_v_th(e_l, delta, g_l, tau_steps):
    # (with dt/tau_m = 1/2 the last step is a rounding tie: 1 - 2**-53 + 2**-54 rounds to 1.0)
    v_th = e_l + delta
    current = g_l * (v_th - e_l)
    assume(current / g_l == v_th - e_l)  # V_inf == V_th in floating point, exactly
    p = default_pars(E_L=e_l, V_th=v_th, V_reset=e_l, V_init=e_l, g_L=g_l,
                     tau_m=0.1 * tau_steps, T=0.1 * 40 * tau_steps)
    assert not lif_steps(p, current).spikes.size


def test_analytic_rate():
    p = default_pars()
    assert analytic_rate(p, 200.0) == 0.0
    assert analytic_rate(p, 100.0) == 0.0
    assert analytic_rate(p, 250.0) == pytest.approx(1000.0 / (2.0 + 10.0 * math.log(25 / 5)))
    r = analytic_rate(p, np.array([0.0, 250.0, 500.0]))
    assert r.shape == (3,) and r[0] == 0 and r[2] > r[1] > 0


def test_isi_rate():
    assert isi_rate([0, 10, 20, 30]) == pytest.approx(0.1)
    assert isi_rate([5, 25], dt=0.1) == pytest.approx(0.5)
    assert isi_rate([3]) == 0.0 and isi_rate([]) == 0.0


GRID_25 = np.arange(250.0, 501.0, 25.0)
GRID_1 = np.arange(250.0, 501.0, 1.0)


def _float_rates(p, currents):
    res = lif_batch(p, currents)
    return np.array([1000.0 * isi_rate(res.spike_steps(k), dt=p["dt"])
                     for k in range(currents.size)])


def test_float_rate_within_half_percent():
    """At 250, 275, ..., 500 pA the notebook's Euler model is within 0.5 % of the analytic rate."""
    p = default_pars()
    err = _float_rates(p, GRID_25) / analytic_rate(p, GRID_25) - 1
    assert np.abs(err).max() < 0.005


def test_float_isi_is_the_euler_crossing_time():
    """Every ISI is ``t_ref + ceil(k)`` steps, ``k`` the Euler crossing time from V_reset.

    This is why the rate error is bounded by one step per ISI and not better: at 491 pA one
    0.1 ms step is 1.4 % of the 7.2 ms ISI, and the 1-pA grid reaches an error of 0.94 %.
    """
    p = default_pars()
    res = lif_batch(p, GRID_1)
    a = p["dt"] / p["tau_m"]
    v_inf = GRID_1 / p["g_L"]  # relative to E_L == V_reset
    k = np.log(1 - (p["V_th"] - p["E_L"]) / v_inf) / np.log(1 - a)
    for j in range(GRID_1.size):
        isi = np.diff(res.spike_steps(j))
        if abs(k[j] - round(k[j])) < 1e-6:
            continue  # a crossing exactly on a step: round-off decides
        assert np.all(isi == refractory_steps(p) + math.ceil(k[j]))
    err = _float_rates(p, GRID_1) / analytic_rate(p, GRID_1) - 1
    assert np.abs(err).max() < 0.01


def test_my_gwn_convention():
    p = default_pars(T=1000.0)
    i1 = my_GWN(p, 250.0, 2.5, myseed=2020)
    i2 = my_GWN(p, 250.0, 2.5, myseed=2020)
    np.testing.assert_array_equal(i1, i2)
    # the notebook's global-seed form gives the same samples
    state = np.random.get_state()
    try:
        np.random.seed(seed=2020)
        ref = 250.0 + 2.5 * np.random.randn(p["range_t"].size) / np.sqrt(p["dt"] / 1000.0)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(i1, ref)
    assert i1.std() == pytest.approx(250.0, rel=0.05)  # 2.5 / sqrt(1e-4)


# Constant-leak IAF, sinabs style ---------------------------------------------------------------


def test_iaf_seed_two_spikes():
    tr = iaf(0.025, 100)
    assert tr.spikes.sum() == 2  # the notebook's "output of 2 for a bias of 0.025"
    assert len(tr.v) == 101 and tr.v[0] == 0
    # float64 arithmetic reaches 1.0 one step earlier than float32 does; same count
    assert iaf(0.025, 100, dtype=np.float64).spikes.sum() == 2


def test_iaf_reset_by_subtraction():
    tr = iaf(0.3, 10, dtype=np.float64)
    # 0.3, 0.6, 0.9, 1.2 -> spike; next state 1.2 - 1 + 0.3 = 0.5
    assert tr.spike_steps[0] == 3
    assert tr.v[5] == pytest.approx(0.5)


def test_iaf_multi_spike_and_clamp():
    tr = iaf(2.5, 3, dtype=np.float64)
    assert tr.spikes.tolist() == [2, 3, 2]  # 2.5 -> 2; 2.5-2+2.5=3 -> 3; 3-3+2.5 -> 2
    low = iaf(-0.4, 10, dtype=np.float64)
    assert low.v.min() == -1.0 and not low.spikes.any()  # threshold_low clamps at -1
    single = iaf(2.5, 3, multi_spike=False, dtype=np.float64)
    assert single.spikes.tolist() == [1, 1, 1]


def test_iaf_sweep_is_relu_shaped():
    biases, counts = iaf_sweep()
    assert biases.size == 50 and biases[0] == -5.0  # np.arange(-5, 5, 0.2)
    neg = biases <= 1e-9
    assert np.all(counts[neg] == 0)
    assert np.all(np.diff(counts) >= 0)
    # linear above zero: floor(100 b) up to float32 round-off (exactly so in float64)
    assert np.all(np.abs(counts[~neg] - 100 * biases[~neg]) <= 1.0 + 1e-9)
    _, counts64 = iaf_sweep(dtype=np.float64)
    np.testing.assert_array_equal(counts64[~neg], np.floor(100 * biases[~neg] + 1e-9))
    slope, icpt = np.polyfit(biases[~neg], counts[~neg], 1)
    assert slope == pytest.approx(100, rel=0.01)


def test_iaf_single_spike_saturates():
    biases, counts = iaf_sweep(multi_spike=False)
    assert np.all(counts[biases >= 1.0 - 1e-9] == 100)
    assert np.all(counts[biases <= 1e-9] == 0)
