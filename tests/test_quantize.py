"""``lifgate.compilers.quantize`` and ``lifgate quantize``: units to bits, judged by the
fixed-point model.

Every firing rate here comes from ``lifgate.golden.fixed.simulate`` (rate = 1 / mean ISI over
T) and is compared against the analytic LIF rate or the float references of the seeds.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from lifgate.golden import float_ref
from lifgate.golden.fixed import simulate
from lifgate.golden.noise import centered, lane_seeds

from lifgate.app.cli import main
from lifgate.compilers.quantize import NOISE_STD, quantize, quantize_euler, quantize_iaf
from lifgate.config import Config, ConfigError, LeakMode, ResetMode

RATE_GRID = np.arange(250.0, 501.0, 1.0)


@pytest.fixture(scope="module")
def q():
    return quantize()


@pytest.fixture(scope="module")
def sweep(q):
    return q.rates(RATE_GRID)


# Scales -------------------------------------------------------------------------------------


def test_default_scales_follow_the_rule(q):
    p = q.pars
    lo, hi = min(p["V_th"], p["V_reset"], p["E_L"], p["V_init"]), p["V_th"]
    span = hi - lo
    vmin, vmax = q.shape.v_range

    def fits(e):
        return (lo - span / 2 - q.origin) * 2.0**e >= vmin and \
            (hi + span / 2 - q.origin) * 2.0**e <= vmax

    assert q.shape.v_width == 16 and q.shape.i_width == 16
    assert fits(q.exponent) and not fits(q.exponent + 1)
    assert q.origin == round((lo + hi) / 2) and q.origin == int(q.origin)
    assert q.lsb == 2.0**-q.exponent
    F = q.shape.decay_frac
    assert q.params.leak_mode == LeakMode.MULT
    assert q.params.leak == round((1 - p["dt"] / p["tau_m"]) * 2**F)
    assert q.gain == (2**F - q.params.leak) / 2**F
    assert q.tau_eff == pytest.approx(p["dt"] / q.gain)
    assert q.params.t_ref == 20 and q.params.reset_mode == ResetMode.VALUE
    for name, field in (("V_th", "v_th"), ("V_reset", "v_reset"), ("E_L", "v_rest"),
                        ("V_init", "v_init")):
        assert q.int_to_mV(getattr(q.params, field)) == p[name]  # whole mV: exact


def test_conversions(q):
    assert q.mV_to_int(q.int_to_mV(1234)) == 1234
    assert q.current_to_int(0.0) == 0
    u = q.current_to_int(RATE_GRID)
    assert np.all(np.diff(u) >= 0)
    # the effective current of the integer input is within half an LSB of the request
    assert np.all(np.abs(q.int_to_current(u) - RATE_GRID) <= 0.5 / q.lsb_per_pA + 1e-9)
    # per-step input: I dt / (tau_eff g_L) in mV
    assert q.int_to_current(1) * q.dt / (q.tau_eff * q.pars["g_L"]) == pytest.approx(q.lsb)
    with pytest.raises(ConfigError, match="input current must be in"):
        q.current_to_int(1e9)
    cfg = q.with_input(300.0)
    assert cfg.params[0].bias == q.current_to_int(300.0) and cfg.noise.gain == 0


def test_config_is_valid_and_round_trips(q):
    cfg = q.config
    assert isinstance(cfg, Config)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.from_json(cfg.to_json()) == cfg


# Rates against the analytic LIF --------------------------------------------------------------


def test_fixed_rate_within_one_percent(sweep):
    """The default 16-bit configuration, 250 to 500 pA every 1 pA, rate = 1 / mean ISI."""
    assert np.all(sweep.analytic > 0)
    assert np.abs(sweep.fixed_error_pct).max() < 1.0


def test_fixed_rate_uses_isi_not_count(q):
    spikes = q.fixed_spikes([300.0])[:, 0]
    times = np.flatnonzero(spikes)
    isi = np.diff(times)
    assert np.all(isi == isi[0])  # constant input, deterministic: every ISI alike
    assert q.rates([300.0]).fixed[0] == pytest.approx(1000.0 / (isi[0] * q.dt))


def test_float_sweep_agrees_with_float_ref(q, sweep):
    p = float_ref.default_pars()
    for k in (0, 100, 250):
        _, sp = float_ref.run_lif(p, RATE_GRID[k])
        assert sweep.float[k] == pytest.approx(1000.0 * float_ref.isi_rate(sp))
    np.testing.assert_allclose(sweep.analytic, float_ref.analytic_rate(p, RATE_GRID))


def test_no_spike_at_or_below_rheobase(q):
    rheo = q.rheobase()
    assert rheo == pytest.approx(200.0)
    currents = np.array([-100.0, 0.0, 50.0, 100.0, 150.0, 190.0, 199.0, 199.5, 199.9, 200.0])
    steps = max(q.steps, int(40 * q.tau_eff / q.dt))
    spikes = q.fixed_spikes(currents, steps)
    assert not spikes.any()
    check = q.check_rheobase()
    assert check["ok"] and check["spikes"] == 0 and check["margin_lsb"] > 0
    assert check["v_max"] == check["settle"]  # the exact fixed point was reached
    # and just above it does fire
    assert q.fixed_spikes([205.0], steps).any()


@pytest.mark.parametrize("overrides", [
    dict(V_th=-50.0), dict(tau_m=20.0), dict(g_L=7.0, V_th=-52.5), dict(E_L=-70.0),
    dict(dt=0.05), dict(tau_m=12.8, leak="shift"),
])
def test_rheobase_exact_for_other_parameters(overrides):
    q = quantize(**overrides)
    check = q.check_rheobase()
    # the closed-form fixed point decides; the simulation must agree with it
    assert check["v_max"] == check["settle"]
    assert check["ok"] == (check["settle"] < q.params.v_th)
    assert check["ok"], check


def test_shift_leak():
    q = quantize(tau_m=12.8, leak="shift")
    assert q.params.leak_mode == LeakMode.SHIFT and q.params.leak == 7
    assert q.tau_eff == pytest.approx(12.8)
    with pytest.raises(ConfigError, match="'tau_m'.*power of two"):
        quantize(leak="shift")


@pytest.mark.parametrize("width", [20, 24, 32])
def test_other_widths(width):
    q = quantize(width=width)
    assert q.shape.v_width == width and q.shape.i_width == width
    assert q.check_rheobase()["ok"]
    s = q.rates(RATE_GRID[::10])
    assert np.abs(s.fixed_error_pct).max() < 1.0


# Noise ----------------------------------------------------------------------------------------


def test_noise_gain_matches_my_gwn(q):
    sig = 2.5
    gain = q.noise_gain(sig)
    # my_GWN: per-step current std sig / sqrt(dt/1000) pA -> mV through dt / (tau g_L)
    want_mv = sig / math.sqrt(q.dt / 1000.0) * q.dt / (q.tau_eff * q.pars["g_L"])
    assert q.noise_std(gain) == pytest.approx(want_mv, rel=0.5 / gain + 1e-9)
    # empirically: z = (c * gain) >> 8 from the golden noise generator
    x = lane_seeds(12345, 64)
    from lifgate.golden.noise import advance

    cs = []
    for _ in range(400):
        x = advance(x)
        cs.append(centered(x))
    z = (np.concatenate(cs) * gain) >> 8
    assert NOISE_STD == pytest.approx(147.8, abs=0.01)
    assert z.std() * q.lsb == pytest.approx(want_mv, rel=0.03)
    assert q.with_input(0.0, sig=sig, seed=7).noise.gain == gain
    with pytest.raises(ConfigError, match="sig"):
        q.noise_gain(-1.0)


# Unit-free seeds in fixed point -----------------------------------------------------------


def test_euler_seed_in_fixed_point():
    qe = quantize_euler()
    res = simulate(qe.with_input(11.0), 100)
    assert res.spike_times(0) == float_ref.euler_lif().spikes == [47, 94]


@pytest.mark.parametrize("width", [13, 20, 32])
def test_euler_seed_other_widths(width):
    """13 bits are the fewest that keep [47, 94] (12 bits: [48, 96])."""
    qe = quantize_euler(width=width)
    assert simulate(qe.with_input(11.0), 100).spike_times(0) == float_ref.euler_lif().spikes


@pytest.mark.parametrize("width", [11, 20, 32])
def test_iaf_seed_other_widths(width):
    """11 bits are the fewest that keep 2 spikes (10 bits round the bias up to 0.03: 3)."""
    qi = quantize_iaf(width=width)
    assert len(simulate(qi.with_input(0.025), 100).spike_times(0)) == 2


def test_iaf_seed_in_fixed_point():
    qi = quantize_iaf()
    assert qi.params.leak_mode == LeakMode.CONST and qi.params.leak == 0
    assert qi.params.reset_mode == ResetMode.SUBTRACT
    res = simulate(qi.with_input(0.025), 100)
    assert len(res.spike_times(0)) == float_ref.iaf(0.025).spikes.sum() == 2


def test_iaf_sweep_in_fixed_point_is_relu_shaped():
    """Binary spikes: count = min(floor(99 B / theta), 99) for integer bias B > 0, else 0.

    The hardware tests the threshold on the stored membrane before integrating, so step 0
    never spikes (99 chances in 100 steps) and the rate saturates at one spike per step;
    below saturation it follows the float model's ReLU.
    """
    qi = quantize_iaf()
    biases = np.arange(-5, 5, 0.2)
    theta = qi.params.v_th
    counts = []
    for b in biases:
        res = simulate(qi.with_input(float(b)), 100)
        counts.append(len(res.spike_times(0)))
        bias = qi.current_to_int(float(b))
        want = 0 if bias <= 0 else min((99 * bias) // theta, 99)
        assert counts[-1] == want, (b, bias)
    counts = np.array(counts)
    assert np.all(np.diff(counts) >= 0)
    _, float_counts = float_ref.iaf_sweep(biases, multi_spike=False)
    below = (biases > 1e-9) & (biases < 1.0 - 1e-9)
    assert np.all(np.abs(counts[below] - float_counts[below]) <= 1)


# Errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(tau_m=0.01), "'tau_m' must be in"),
    (dict(dt=-1.0), "'dt' must be in"),
    (dict(g_L=0.0), "'g_L' must be in"),
    (dict(V_th=-80.0), "'V_th' must be above V_reset"),
    (dict(tref=100.0), r"'tref' must be in \[0, 25.5\] ms"),
    (dict(V_reset=float("nan")), "'V_reset' must be a finite number"),
    (dict(E_L=5000.0), r"'E_L' must be in \[-1000, 1000\] mV"),
    (dict(tau_m=1e5), "'tau_m' must be in .* for the mult leak"),
    (dict(width=3), r"'width' must be an integer in \[4, 32\]"),
    (dict(bogus=1.0), "unknown parameter"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        quantize(**kwargs)


# CLI ------------------------------------------------------------------------------------------


def test_cli_json(capsys):
    assert main(["quantize", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Config.from_dict(out["config"]) == quantize().config
    assert 0 <= out["rate_error_max_pct"] < 1.0
    assert out["sweep"]["currents"][0] == 250.0 and out["sweep"]["currents"][-1] == 500.0
    assert out["rheobase"]["ok"] is True


def test_cli_table_and_options(capsys):
    assert main(["quantize", "--width", "20", "--tau_m", "12.8", "--leak", "shift",
                 "--sigma", "2.5", "--points", "11"]) == 0
    out = capsys.readouterr().out
    assert "SHIFT" in out and "rheobase" in out and "noise" in out
    assert main(["quantize", "--model", "euler"]) == 0
    assert "fixed point at [47, 94]" in capsys.readouterr().out
    assert main(["quantize", "--model", "iaf", "--json"]) == 0
    seed = json.loads(capsys.readouterr().out)["seed"]
    assert len(seed["fixed_spikes"]) == len(seed["float_spikes"]) == 2


@pytest.mark.parametrize("argv,name", [
    (["--tau_m", "0.01"], "tau_m"),
    (["--tref", "30"], "tref"),
    (["--width", "40"], "width"),
    (["--V_th", "-90"], "V_th"),
    (["--sweep", "300", "200"], "sweep"),
    (["--model", "euler", "--V_th", "3"], "model euler"),
])
def test_cli_errors(capsys, argv, name):
    assert main(["quantize", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifgate quantize: error:") and name in err
    assert "Traceback" not in err


def test_cli_error_subprocess():
    r = subprocess.run([sys.executable, "-m", "lifgate.app.cli", "quantize", "--dt", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "'dt' must be in (0, 1000] ms" in r.stderr and "Traceback" not in r.stderr


def test_cli_bench_quick(capsys):
    assert main(["bench", "--list"]) == 0
    assert "golden" in capsys.readouterr().out
    assert main(["bench", "golden", "--quick", "--no-brian", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["results"][0]
    assert row["model"] == "golden" and row["updates_per_s"] > 0
    assert main(["bench", "nonexistent"]) == 2
