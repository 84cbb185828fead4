"""``lifgate demo``: the experiments, the JSON figures, the plots and the RTL runs.

The RTL is always compared with the golden model (``lifgate.golden.fixed.simulate``), never
with numbers copied from a run; the seed figures (spikes at 47 and 94, 2 IAF spikes) are the
seed notebooks' own published outputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from lifgate.golden import float_ref
from lifgate.golden.fixed import simulate

from lifgate.app import demo
from lifgate.app.cli import main
from lifgate.config import ArrayShape, Config, NeuronParams, NoiseParams

PNG = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG, path
    assert 10_000 < len(data) < 400_000, (path, len(data))


def test_cli_json_plots_and_rtl(tmp_path, capsys):
    """The whole demo, as short as measures every rate, on Amaranth's simulator (no Verilog
    build): JSON, plots, exit 0; progress on a non-terminal stderr is plain lines."""
    out = tmp_path / "plots"
    duration = demo.min_duration()
    code = main(["demo", "--sim", "amaranth", "--duration", f"{duration:g}", "--json",
                 "--out", str(out), "--build-dir", str(tmp_path / "build")])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "RTL vs golden model" in captured.err  # the table goes to stderr with --json
    assert "\r" not in captured.err
    for key in ("euler_lif_spikes", "rtl_bit_exact", "rate_error_max_pct", "plots", "checks",
                "rtl_runs", "ok", "updates_per_s", "result"):
        assert key in summary, key
    assert summary["rtl_bit_exact"] is True
    assert summary["euler_lif_spikes"] == {"float": [47, 94], "fixed": [47, 94],
                                           "rtl": [47, 94]}
    assert all(c["ok"] for c in summary["checks"]), summary["checks"]
    assert summary["ok"] is True and summary["result"] == "OK" and code == 0
    assert summary["rates_not_measured_pA"] == []
    assert None not in summary["rate_curve"]["fixed_hz"]
    assert summary["updates_per_s"] == pytest.approx(
        summary["rtl_updates"] / summary["rtl_seconds"], rel=0.01)
    assert set(summary["plots"]) == {"euler_lif", "lif_membrane", "lif_rate", "lif_noise", "iaf"}
    assert set(summary["plots"]) == set(demo.PLOTS)
    for path in summary["plots"].values():
        assert path.startswith(str(out))
        _check_png(out / path.rsplit("/", 1)[-1])
    steps = round(duration / 0.1) - 1
    assert summary["rtl_updates"] == sum(r["updates"] for r in summary["rtl_runs"])
    assert summary["rtl_updates"] == 100 * 64 + 3 * steps * 64


def test_short_run_cannot_say_ok(tmp_path, capsys):
    """20 ms: the rate at 210 to 330 pA needs more than 20 ms for two spikes. No 0 Hz for
    them, a warning before the run, ``result: INCOMPLETE`` and exit 1, never ``OK``."""
    code = main(["demo", "--sim", "amaranth", "--duration", "20", "--no-progress",
                 "--out", str(tmp_path / "o"), "--build-dir", str(tmp_path / "b")])
    cap = capsys.readouterr()
    assert code == 1
    assert "result: OK" not in cap.out and "result: INCOMPLETE" in cap.out
    assert cap.err.startswith("lifgate demo: warning: 20 ms is too short")
    need = demo.min_duration()
    assert f"--duration {need:g} or more" in cap.out
    # from the models: every current it names fires fewer than two spikes in 20 ms in the
    # float model, and fires twice in the notebook's model once the run is min_duration long
    lif = demo.lif_experiments(T=20.0)
    fl = lif.float_const.spikes.sum(axis=0)
    fx = lif.const.spikes_of("fixed")[:, lif.neurons].sum(axis=0)
    an = lif.analytic_rates()
    unmeasured = lif.unmeasurable()
    assert unmeasured.any() and (fl[unmeasured & (fl < 2)].size > 0)
    rates = lif.rates("const", "fixed")
    assert np.array_equal(np.isnan(rates), (fx < 2) & (an > 0))
    assert (rates[an == 0] == 0).all()  # below the rheobase: measured silent
    long = demo.lif_experiments(T=need)
    assert not long.unmeasurable().any()
    assert (long.float_const.spikes.sum(axis=0)[long.analytic_rates() > 0] >= 2).all()
    assert (long.const.spikes_of("fixed")[:, long.neurons].sum(axis=0)[
        long.analytic_rates() > 0] >= 2).all()


def test_cli_rejects_bad_duration(capsys):
    assert main(["demo", "--duration", "0", "--sim", "amaranth"]) == 2
    assert "--duration must be a finite number in [1, 2000] ms" in capsys.readouterr().err


def test_unitless_seeds_fixed_point():
    ux = demo.unitless_experiment()
    assert ux.euler_spikes("float") == float_ref.euler_lif().spikes == [47, 94]
    assert ux.euler_spikes("fixed") == [47, 94]
    assert len(ux.iaf_spikes("float")) == len(ux.iaf_spikes("fixed")) == 2
    counts = ux.sweep_counts("fixed")
    assert (counts[ux.biases <= 0] == 0).all()
    assert (np.diff(counts) >= 0).all()
    # Test-then-integrate delays every lifgate spike by one step against sinabs' order.
    assert np.abs(counts - ux.sweep_single).max() <= 1
    # The lifgate membrane v' is sinabs' state after the same step (up to float32 rounding).
    assert np.allclose(ux.iaf_trace("fixed"), ux.iaf_trace("float"), atol=0.01)
    assert np.abs(ux.euler_trace("fixed") - ux.euler_trace("float")).max() < 0.01


def test_lif_traces_line_up_with_the_notebook():
    lif = demo.lif_experiments(T=60.0)
    fl = lif.trace_mV("const", "float", demo.TRACE_CURRENT)
    fx = lif.trace_mV("const", "fixed", demo.TRACE_CURRENT)
    assert fl.shape == fx.shape == (600,)
    np.testing.assert_array_equal(lif.spike_steps("const", "float", demo.TRACE_CURRENT),
                                  lif.spike_steps("const", "fixed", demo.TRACE_CURRENT))
    assert np.abs(fx - fl).max() < 0.05  # mV; the LSB is about 1 uV
    # Refractory samples read V_reset exactly in both.
    held = fl == lif.pars["V_reset"]
    assert held.sum() > 20 and (fx[held] == lif.pars["V_reset"]).all()
    # The streamed float noise: same samples, so spike times agree within a step or two.
    a = lif.spike_steps("float_noise", "float", demo.NOISE_TRACE_CURRENT)
    b = lif.spike_steps("float_noise", "fixed", demo.NOISE_TRACE_CURRENT)
    assert len(a) == len(b) and np.abs(a - b).max() <= 2


def test_notebook_trace_matches_contract():
    """h of docs/numerics.md: v_reset at the spike step and the t_ref steps after it."""
    shape = ArrayShape(neurons=1, lanes=1, groups=1)
    p = NeuronParams(v_th=100, v_reset=-7, v_init=3, bias=30, leak_mode="const", leak=0,
                     t_ref=2)
    cfg = Config(shape=shape, params=(p,))
    r = simulate(cfg, 12)
    trace = demo.notebook_trace(cfg, r.spikes, r.v, 0)
    # v: 3, 33, 63, 93, 123 -> spike at step 4; held at 4, 5, 6; step 6 integrates to 23.
    assert r.spike_times(0)[0] == 4
    assert trace[:8].tolist() == [3, 33, 63, 93, -7, -7, -7, 23]


@pytest.mark.parametrize("sim", [
    pytest.param("icarus", marks=pytest.mark.icarus),
    pytest.param("verilator", marks=[pytest.mark.verilator, pytest.mark.slow]),
])
def test_rtl_run_streams_currents_and_returns_outputs(sim, tmp_path):
    """rtl_run on the generated Verilog, with a streamed stimulus and noise, equals the golden
    model step for step (the path the demo's white-noise run takes)."""
    shape = ArrayShape()
    rng = np.random.default_rng(7)
    params = tuple(
        NeuronParams(v_th=int(rng.integers(200, 2000)), v_reset=-100, v_rest=0, v_init=0,
                     bias=int(rng.integers(-20, 60)), leak_mode="mult", leak=60000,
                     t_ref=int(rng.integers(0, 4)))
        for _ in range(shape.groups)
    )
    cfg = Config(shape=shape, params=params, noise=NoiseParams(seed=5, gain=300))
    steps = 40
    currents = rng.integers(-300, 300, size=(steps, shape.neurons))
    spikes, v = demo.rtl_run(cfg, steps, currents, sim=sim, build_dir=tmp_path)
    ref = simulate(cfg, steps, currents)
    assert ref.spikes.any() and not ref.spikes.all()
    np.testing.assert_array_equal(spikes, ref.spikes)
    np.testing.assert_array_equal(v, ref.v)


def test_rtl_mismatch_is_reported(tmp_path):
    """check_rtl names the first differing step and neuron (so a broken RTL fails the demo)."""
    cfg = Config(shape=ArrayShape(neurons=4, lanes=1, groups=1),
                 params=(NeuronParams(bias=100),))
    run = demo.ArrayRun("x", cfg, 5)
    v = run.golden.v.copy()
    v[3, 2] += 1
    ok, m = run.check_rtl(run.golden.spikes, v)
    assert not ok and (m["step"], m["neuron"], m["mismatches"]) == (3, 2, 1)
    assert run.check_rtl(run.golden.spikes, run.golden.v) == (True, None)


def test_rtl_run_on_amaranth_goes_through_the_dispatcher(tmp_path):
    """rtl_run on Amaranth's simulator (through lifgate.sim.regress, which writes the case's
    outputs as the cocotb testbench does) equals the golden model, with a streamed stimulus and
    the noise source; it writes nothing into build_dir (Amaranth builds nothing)."""
    shape = ArrayShape(neurons=8, lanes=2, groups=1)
    cfg = Config(shape=shape, params=(NeuronParams(v_th=500, v_reset=-100, bias=30,
                                                   leak_mode="mult", leak=60000, t_ref=2),),
                 noise=NoiseParams(seed=5, gain=300))
    currents = np.random.default_rng(1).integers(-300, 300, size=(20, shape.neurons))
    spikes, v = demo.rtl_run(cfg, 20, currents, sim="amaranth", build_dir=tmp_path / "b")
    ref = simulate(cfg, 20, currents)
    assert ref.spikes.any() and not ref.spikes.all()
    np.testing.assert_array_equal(spikes, ref.spikes)
    np.testing.assert_array_equal(v, ref.v)
    assert not (tmp_path / "b").exists()
