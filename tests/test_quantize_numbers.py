"""Issue 14, "numbers a neuroscientist would misread": ``lifgate quantize`` under bad widths,
short runs, sweeps below the rheobase, and ``--save``.

Every claim is checked against the models (``golden.fixed.simulate`` through
``Quantized.fixed_spikes``, ``float_ref``), never against figures copied from a run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from lifgate.golden import float_ref
from lifgate.golden.fixed import simulate

from lifgate.app.cli import main
from lifgate.compilers.quantize import RATE_ERROR_WARN_PCT, quantize
from lifgate.config import Config, ConfigError


def _run(capsys, *argv):
    code = main(["quantize", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("lifgate quantize: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


# Useless widths: an error, and the width it proposes works -----------------------------------


@pytest.mark.parametrize("width", [4, 6])
def test_width_where_the_neuron_cannot_fire_is_an_error(capsys, tmp_path, width):
    q = quantize(width=width)
    cur = q.sweep_currents()
    # The claim, from the models: where the LIF fires twice in T, the fixed point never does.
    t2 = float_ref.second_spike_time(float_ref.default_pars(), cur)
    assert (t2 < q.pars["T"]).all()
    assert (q.fixed_spikes(cur).sum(axis=0) < 2).all()

    save = tmp_path / "cfg.toml"
    code, out, err = _run(capsys, "--width", str(width), "--save", str(save))
    line = _error_line(err)
    assert code == 2 and out == ""
    assert f"--width {width}:" in line and "nothing useful" in line
    assert not save.exists()  # nothing saved for a useless configuration
    proposed = int(line.rsplit("use --width ", 1)[1].split()[0])
    good = quantize(width=proposed).report(cur)
    assert good["ok"] and good["rate_error_max_pct"] <= RATE_ERROR_WARN_PCT
    worse = quantize(width=proposed - 1).report(cur)
    assert not worse["ok"]  # the smallest such width


def test_width_8_warns_and_names_the_silent_currents(capsys):
    code, out, err = _run(capsys, "--width", "8", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["ok"] is False and rep["warnings"]
    assert err.count("lifgate quantize: warning:") == len(rep["warnings"])
    # the currents the JSON leaves without a fixed-point rate fire < 2 spikes in the model
    q = quantize(width=8)
    cur = np.array(rep["sweep"]["currents"])
    counts = q.fixed_spikes(cur).sum(axis=0)
    fixed = np.array([np.nan if r is None else r for r in rep["sweep"]["fixed"]])
    assert np.array_equal(np.isnan(fixed), counts < 2)
    assert (counts < 2).any() and "fewer than two spikes" in err
    # no rate is reported as 0 Hz where the LIF fires
    assert not (fixed[np.array(rep["sweep"]["analytic"]) > 0] == 0).any()
    assert rep["rate_error_max_pct"] > RATE_ERROR_WARN_PCT and "use --width" in err


def test_default_configuration_is_ok_without_warning(capsys):
    code, out, err = _run(capsys, "--json", "--points", "26")
    rep = json.loads(out)
    assert code == 0 and rep["ok"] is True and rep["warnings"] == [] and err == ""


# Formatting ------------------------------------------------------------------------------------


def test_lsb_of_a_negative_exponent(capsys):
    q = quantize(width=4)
    assert q.exponent < 0
    from lifgate.app.commands.quantize import format_report

    text = format_report(q, q.report(np.array([q.rheobase() * 10])))
    assert "2^--" not in text
    assert f"LSB 2^{-q.exponent} = {q.lsb:g} mV" in text


def test_width_32_columns_stay_apart(capsys):
    code, out, _ = _run(capsys, "--width", "32", "--points", "3")
    assert code == 0
    q = quantize(width=32)
    cur = q.sweep_currents(points=3)
    rows = [ln.split() for ln in out.splitlines() if ln.strip().split()[:1] in
            [[f"{c:.5g}"] for c in cur]]
    assert len(rows) == 3
    for row, c in zip(rows, cur, strict=True):
        assert len(row) == 7, row
        assert float(row[0]) == c and int(row[1]) == q.current_to_int(c)
    params = [ln.split() for ln in out.splitlines() if ln.startswith(("V_th", "V_reset"))]
    assert [int(p[3]) for p in params] == [q.params.v_th, q.params.v_reset]


def test_sweep_below_rheobase_has_no_nan(capsys):
    code, out, err = _run(capsys, "--sweep", "100", "300", "--points", "5")
    assert code == 0 and "nan" not in out.lower() and err == ""
    q = quantize()
    cur = np.linspace(100, 300, 5)
    silent = float_ref.analytic_rate(q.pars, cur) == 0
    assert (q.fixed_spikes(cur)[:, silent].sum(axis=0) == 0).all()
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in
            [[f"{c:.5g}"] for c in cur]]
    assert [r[-1] == "silent" for r in rows] == silent.tolist()


def test_v_init_above_threshold_is_not_a_rheobase_failure(capsys):
    q = quantize(V_init=0.0)
    rh = q.check_rheobase()
    res = simulate(q._sweep_config(1), rh["steps"], np.array([rh["input"]]))
    assert res.spikes[0, 0]  # the initial spike, from V_init >= V_th
    assert res.spikes[1:, 0].sum() == 0  # none driven by the rheobase current
    assert rh["ok"] is True and rh["initial_spike"] is True and rh["spikes"] == 0
    code, out, _ = _run(capsys, "--V_init", "0", "--points", "3")
    line = next(ln for ln in out.splitlines() if ln.startswith("rheobase"))
    assert code == 0 and "SPIKES" not in line and "step 0" in line


def test_rate_needs_two_spikes(capsys):
    """A short T: currents without two spikes get no rate (not 0 Hz) and a warning."""
    code, out, err = _run(capsys, "--T", "30", "--points", "6", "--json")
    rep = json.loads(out)
    p = quantize(T=30.0)
    cur = np.array(rep["sweep"]["currents"])
    fx = p.fixed_spikes(cur).sum(axis=0)
    fl = float_ref.lif_batch(float_ref.default_pars(T=30.0), cur).spikes.sum(axis=0)
    assert code == 0 and rep["ok"] is False
    for k in range(cur.size):
        assert (rep["sweep"]["fixed"][k] is None) == (fx[k] < 2)
        assert (rep["sweep"]["float"][k] is None) == (fl[k] < 2)
    assert (fx < 2).any() and "use T >=" in err
    need = float(err.split("use T >= ")[1].split()[0])
    longer = quantize(T=need).rates(cur)
    assert not np.isnan(longer.fixed).any() and not np.isnan(longer.float).any()


def test_isi_rates_nan_below_two_spikes():
    s = np.zeros((50, 3), bool)
    s[[3, 13, 23], 0] = True
    s[7, 1] = True
    r = float_ref.isi_rates(s, dt=0.1)
    assert r[0] == pytest.approx(1.0) and math.isnan(r[1]) and math.isnan(r[2])
    assert r[0] == pytest.approx(float_ref.isi_rate([3, 13, 23], dt=0.1))


# Messages ----------------------------------------------------------------------------------------


def test_tau_m_dt_gives_one_short_line(capsys):
    code, out, err = _run(capsys, "--tau_m", "0.1")
    line = _error_line(err)
    assert code == 2 and len(err.splitlines()) == 1 and len(line) < 300
    assert "array(" not in err and "--sweep" in line
    q = quantize(tau_m=0.1)
    lo, hi = (float(x) for x in line.split("must be in [")[1].split(")")[0].split(", "))
    assert q.current_to_int(lo + 0.01) >= q.shape.i_range[0]  # bounds printed to 6 digits
    assert q.current_to_int(hi - 0.01) <= q.shape.i_range[1]
    with pytest.raises(ConfigError):
        q.current_to_int(hi + 0.01)


def test_negative_exponent_value_is_a_number_not_an_option():
    r = subprocess.run([sys.executable, "-m", "lifgate.app.cli", "quantize", "--V_reset", "-1e5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "expected one argument" not in r.stderr
    assert "'V_reset' must be in [-1000, 1000] mV" in r.stderr and "-100000" in r.stderr


@pytest.mark.parametrize("argv,name", [
    (["--width", "3"], "--width must be an integer in [4, 32]"),
    (["--points", "0"], "--points must be an integer in [1, 100000]"),
    (["--sigma", "-1"], "--sigma must be a finite number >= 0"),
    (["--sigma", "nan"], "--sigma must be a finite number >= 0"),
    (["--sigma", "1e6"], "--sigma must be a finite number in [0, "),
    (["--sweep", "nan", "300"], "--sweep LO must be a finite number"),
    (["--sweep", "300", "200"], "--sweep LO HI must have LO <= HI"),
    (["--save", "x.txt"], "--save must name a .toml or .json file"),
])
def test_bad_numbers_one_line(capsys, argv, name):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and name in _error_line(err)


def test_sweep_too_big_for_memory_is_refused_up_front():
    r = subprocess.run([sys.executable, "-m", "lifgate.app.cli", "quantize", "--points", "100000",
                        "--T", "5000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--points must be an integer in [1, 500] for T = 5000 ms" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lifgate.app.cli", "quantize", "--points", "500",
                        "--T", "5000", "--sweep", "300", "310", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr  # the bound it names is accepted


def test_sigma_bound_is_legal(capsys):
    code, _, err = _run(capsys, "--sigma", "1e6")
    top = float(_error_line(err).split("in [0, ")[1].split("]")[0])
    q = quantize()
    assert q.noise_gain(top) <= 0xFFFF  # the bound it prints is accepted...
    assert q.with_input(0.0, sig=top).noise.gain == q.noise_gain(top)
    with pytest.raises(ConfigError):
        q.noise_gain(top * 1.01)  # ...and is within 1 % of the real limit
    code, out, _ = _run(capsys, "--sigma", f"{top!r}", "--points", "2", "--json")
    assert code == 0 and json.loads(out)["noise"]["gain"] == q.noise_gain(top)


# --save ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_save_round_trip(capsys, tmp_path, suffix):
    path = tmp_path / f"neuron{suffix}"
    code, out, _ = _run(capsys, "--sigma", "2.5", "--points", "3", "--save", str(path),
                        "--json")
    rep = json.loads(out)
    assert code == 0 and rep["saved"] == str(path)
    q = quantize()
    assert Config.load(path) == q.with_input(0.0, sig=2.5)
    assert Config.load(path) == Config.from_dict(rep["config"])
    code, out, _ = _run(capsys, "--width", "20", "--points", "3", "--save", str(path))
    assert code == 0 and Config.load(path) == quantize(width=20).config


def test_saved_file_drives_generate(capsys, tmp_path):
    path = tmp_path / "w12.toml"
    assert _run(capsys, "--width", "13", "--points", "3", "--save", str(path))[0] == 0
    verilog = tmp_path / "lif.v"
    assert main(["generate", "--config", str(path), "-o", str(verilog)]) == 0
    capsys.readouterr()
    text = verilog.read_text()
    assert "module" in text and "[12:0]" in text  # the 13-bit membrane


@pytest.mark.parametrize("kind", ["missing_dir", "directory", "dangling_link"])
def test_save_path_checked_before_any_work(capsys, tmp_path, kind):
    if kind == "missing_dir":
        path = tmp_path / "nope" / "c.toml"
    elif kind == "directory":
        path = tmp_path / "d.toml"
        path.mkdir()
    else:  # a link into a folder that does not exist (a permission test means nothing as root)
        path = tmp_path / "c.toml"
        path.symlink_to(tmp_path / "gone" / "c.toml")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    # --width 4 would be refused after the sweep: the --save error must come first
    code, out, err = _run(capsys, "--width", "4", "--save", str(path))
    assert code == 2 and out == "" and "--save" in _error_line(err)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_output_into_a_closed_pipe_ends_quietly():
    """``lifgate quantize | head -3``: the reader leaves early; no traceback, exit 0.

    The JSON of 3001 currents (hundreds of kB) is larger than a pipe's buffer, so the writer is
    still writing when the reader closes: the broken pipe happens, whatever the timing."""
    proc = subprocess.Popen([sys.executable, "-m", "lifgate.app.cli", "quantize", "--points",
                             "3001", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # what head does after three lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert head[0] == b"{\n" and "Traceback" not in err
    assert "BrokenPipe" not in err
