"""``lifgate demo --board``: the seed experiments through a board's host link, bit-exact."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from lifgate.boards.host import Board, open_board
from lifgate.boards.protocol import Features
from lifgate.golden.fixed import simulate

from lifgate.app import board_demo
from lifgate.app.cli import main
from lifgate.app.demo import run_demo
from lifgate.app.experiments import (
    SpikeCounts,
    lif_experiments,
    rate_hz,
    rate_hz_counts,
    unitless_experiment,
)
from lifgate.config import ArrayShape, ConfigError

#: The run modes of the demo's board runs on a board built with all of them.
MODES = {"unitless.0": ["events", "probes"], "unitless.1": ["events", "probes"],
         "lif_const.0": ["counts", "events", "probes"],
         "lif_chip_noise.0": ["counts", "events", "probes"],
         "lif_float_noise.0": ["events", "probes"]}


def _runs(duration=5.0):
    ux = unitless_experiment(ArrayShape())
    lif = lif_experiments(shape=ArrayShape(), T=duration)
    return [ux.run, lif.const, lif.chip_noise, lif.float_noise]


@pytest.mark.parametrize("board", [
    ArrayShape(groups=1),
    ArrayShape(neurons=128, lanes=8, groups=2),
    ArrayShape(neurons=96, lanes=3, groups=1),
])
def test_plan_moves_biases_into_currents_exactly(board):
    """A board run's neuron j computes its demo neuron exactly (noise-free runs: for any
    board shape; the bias moved into the input current gives the same numbers)."""
    for run in _runs():
        if run.config.noise.gain:
            continue
        brs = board_demo.plan(run, board)
        covered = np.concatenate([br.demo_neurons for br in brs])
        assert sorted(covered.tolist()) == list(range(run.config.shape.neurons))
        for br in brs:
            assert all(p == br.config.params[0] and p.bias == 0 for p in br.config.params)
            j = np.arange(br.demo_neurons.size)
            assert (br.golden.spikes[:, j] == run.golden.spikes[:, br.demo_neurons]).all()
            assert (br.golden.v[:, j] == run.golden.v[:, br.demo_neurons]).all()


def test_plan_refuses_what_the_board_cannot_hold():
    run = _runs()[1]
    with pytest.raises(ConfigError, match="needs 64 neurons of one model, the board has 32"):
        board_demo.plan(run, ArrayShape(neurons=32, lanes=4, groups=1))
    narrow = ArrayShape(groups=1, i_width=8)
    with pytest.raises(ConfigError, match="i_width 8"):
        board_demo.plan(run, narrow)


def test_model_board_demo_is_bit_exact_and_matches_the_rtl_view():
    """The whole demo on the protocol model: every board run bit-exact against its own golden
    run, and (same lanes as the demo, so the same noise) the laid-out view equals the demo's
    golden runs number for number; the seed checks pass on the board's numbers."""
    res = run_demo(None, board="model", progress=False, plots=False)
    s = res.summary
    assert s["result"] == "OK" and s["ok"] and s["rtl_bit_exact"]
    assert s["board"]["board"] == "model"
    assert s["board"]["shape"] == {"neurons": 64, "lanes": 4, "groups": 1}
    assert {r["input"] for r in s["board"]["runs"]} == {"constant", "per step"}
    assert all(r["bit_exact"] for r in s["board"]["runs"])
    needs = board_demo.demo_needs(res.unitless, res.lif)
    for run in (res.unitless.run, res.lif.const, res.lif.chip_noise, res.lif.float_noise):
        assert run.rtl.sim == "board model"
        assert (run.rtl.spikes == run.golden.spikes).all()
        # The membranes read are those of the plotted traces, each equal to the golden run's.
        probed = run.rtl.v_neurons
        assert probed.tolist() == sorted(needs[run.name].membranes)
        assert (run.rtl.v[:, probed] == run.golden.v[:, probed]).all()
    for run in (res.lif.const, res.lif.chip_noise):  # the rate curve from the counts
        want = SpikeCounts.of(run.golden.spikes)
        for name in ("counts", "first", "last"):
            assert (getattr(run.rtl.counts, name) == getattr(want, name)).all()
    assert s["euler_lif_spikes"]["rtl"] == [47, 94]
    assert all(c["ok"] for c in s["checks"])
    assert s["rate_curve"]["rtl_hz"] == s["rate_curve"]["fixed_hz"]
    with pytest.raises(KeyError, match="neuron 0"):  # a membrane not read is not plotted as 0
        res.lif.const.v_of("rtl", 0)


def _flip_spike(br):
    br.spikes = br.spikes.copy()
    br.spikes[3, 5] ^= True


def _probe_off(br):
    br.probe_v = br.probe_v.copy()
    br.probe_v[3, 0] += 1


def _count_off(br):
    br.counts = SpikeCounts(br.counts.counts.copy(), br.counts.first, br.counts.last)
    br.counts.counts[5] += 1


def _last_off(br):
    br.counts = SpikeCounts(br.counts.counts, br.counts.first, br.counts.last.copy())
    br.counts.last[5] += 1


def _step_v_off(br):
    br.v = br.v.copy()
    br.v[3, 5] += 1


@pytest.mark.parametrize("link_modes, corrupt, want", [
    ("auto", _flip_spike, {"mode": "events", "field": "spike", "step": 3, "neuron": 5}),
    ("auto", _probe_off, {"mode": "probes", "field": "v", "step": 3, "neuron": 30}),
    ("auto", _count_off, {"mode": "counts", "field": "counts", "neuron": 5}),
    ("auto", _last_off, {"mode": "counts", "field": "last", "neuron": 5}),
    ("step", _step_v_off, {"mode": "step", "step": 3, "neuron": 5}),
])
def test_a_wrong_board_number_fails_the_demo(monkeypatch, link_modes, corrupt, want):
    """One number off on the board, in each run mode (an event, a probe's membrane by one
    LSB, a count, a last spike step; a STEP frame's membrane): the run is not bit-exact, the
    mismatch names the run, the mode, step and neuron, and the demo fails."""
    real = board_demo.execute

    def wrong(board, br, *, bar=None):
        real(board, br, bar=bar)
        if br.name == "lif_const.0":
            corrupt(br)

    monkeypatch.setattr(board_demo, "execute", wrong)
    res = run_demo(None, board="model", progress=False, plots=False, duration=5.0,
                   link_modes=link_modes)
    s = res.summary
    assert not s["rtl_bit_exact"] and s["result"] == "FAILED"
    bad = [r for r in s["board"]["runs"] if not r["bit_exact"]]
    assert [r["name"] for r in bad] == ["lif_const.0"]
    assert {k: bad[0]["mismatch"][k] for k in want} == want


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_demo_board_on_the_simulated_top(tmp_path, sim):
    """The simulated board top (through cocotb's UART), built with the run modes: every run
    in its run modes (counts for the rate curve, events, probes), bit-exact."""
    res = run_demo(tmp_path / "out", board=f"sim:{sim}", progress=False, plots=False,
                   duration=1.0, build_dir=tmp_path / "build")
    s = res.summary
    assert s["rtl_bit_exact"], s["board"]["runs"]
    assert len(s["board"]["runs"]) == 5 and all(r["bit_exact"] for r in s["board"]["runs"])
    assert s["board"]["run_modes"] == {"counts": True, "events": True,
                                       "probes": board_demo.SIM_BOARD_PROBES}
    assert {r["name"]: r["modes"] for r in s["board"]["runs"]} == MODES
    assert s["euler_lif_spikes"]["rtl"] == [47, 94]
    # The gateware moves the protocol model's bytes, both ways, in every run.
    model = run_demo(None, board="model", progress=False, plots=False, duration=1.0).summary
    assert [r["link_bytes"] for r in s["board"]["runs"]] == [
        r["link_bytes"] for r in model["board"]["runs"]]


def test_cli_board_options(capsys, tmp_path):
    for argv, msg in [
        (["demo", "--board", "bogus"], "--board: board must be 'model'"),
        (["demo", "--board", "model", "--sim", "icarus"], "--sim and --board exclude"),
        (["demo", "--board", "sim:ghdl"], "simulator must be verilator or icarus"),
    ]:
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not (tmp_path / "o").exists()


def test_cli_demo_board_model_json(capsys, tmp_path):
    rc = main(["demo", "--board", "model", "--duration", "5", "--out", str(tmp_path / "o"),
               "--json", "--no-progress"])
    s = json.loads(capsys.readouterr().out)
    assert rc == 1 and s["result"] == "INCOMPLETE"  # 5 ms measures no rate; the runs are exact
    assert s["rtl_bit_exact"] and all(r["bit_exact"] for r in s["board"]["runs"])
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(
        f"{n}.png" for n in ("euler_lif", "lif_membrane", "lif_rate", "lif_noise", "iaf"))


def test_view_of_a_board_with_more_lanes_is_its_own_noise():
    """On a board with other lanes the on-chip noise differs from the demo's RTL run, but the
    board run is still checked against its own golden run."""
    run = _runs()[2]
    assert run.config.noise.gain
    board = ArrayShape(neurons=128, lanes=8, groups=1)
    (br,) = board_demo.plan(run, board)
    g = simulate(br.config, br.steps, br.currents)
    br.spikes, br.v = g.spikes, g.v
    out = board_demo.view(run, [br], "board test")
    assert out.bit_exact and out.mismatch is None
    br2 = dataclasses.replace(br, v=g.v + 1)
    assert not board_demo.view(run, [br2], "board test").bit_exact


class _Counting:
    """A transport wrapper counting the bytes in both directions."""

    def __init__(self, inner):
        self.inner, self.count = inner, 0

    def write(self, data):
        self.count += len(data)
        self.inner.write(data)

    def read(self, timeout):
        data = self.inner.read(timeout)
        self.count += len(data)
        return data

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("board", [ArrayShape(groups=1), ArrayShape(neurons=256, lanes=8,
                                                                     groups=2)])
def test_link_bytes_is_what_the_link_carries(board):
    """The volume the demo announces for a serial board is the bytes the host library moves."""
    features = Features(board)
    with open_board("model", features=features) as b:
        b.transport = _Counting(b.transport)
        for run in _runs()[1:]:
            for br in board_demo.plan(run, board):
                b.transport.count = 0
                board_demo.execute(b, br)
                assert b.transport.count == board_demo.link_bytes(features, br), br.name


def _record_runs(monkeypatch) -> list:
    """Record the RUN flags of every run the host library sends (bitmap or not)."""
    calls = []
    real = Board.run

    def run(self, steps, **kw):
        calls.append(kw)
        return real(self, steps, **kw)

    monkeypatch.setattr(Board, "run", run)
    return calls


def _bitmaps(calls) -> int:
    """Runs that read STEP frames (the spike bitmap or the membranes of every neuron)."""
    return sum(1 for kw in calls if not (kw.get("events") or kw.get("probes"))
               and (kw.get("spikes", True) or kw.get("membrane")))


def test_the_demo_reads_no_bitmap_when_the_board_has_run_modes(monkeypatch):
    """On a board with COUNTS, EVENTS and probes no run reads a STEP frame: the rate curve
    comes from the counts (one READ_COUNTS per rate run), spikes from events, membranes from
    probes; and the link carries fewer bytes than STEP frames would."""
    calls = _record_runs(monkeypatch)
    reads = []
    real = Board.read_counts
    monkeypatch.setattr(Board, "read_counts",
                        lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    res = run_demo(None, board="model", progress=False, plots=False, duration=5.0)
    b = res.summary["board"]
    assert res.summary["rtl_bit_exact"]
    assert _bitmaps(calls) == 0, calls[:3]
    assert any(kw.get("counts") for kw in calls) and len(reads) == 2
    assert {r["name"]: r["modes"] for r in b["runs"]} == MODES
    assert not any("fallback" in r for r in b["runs"])
    for r in b["runs"]:
        assert r["link_bytes"]["total"] == r["link_bytes"]["to_board"] + \
            r["link_bytes"]["from_board"]
        assert 0 < r["link_bytes"]["total"] < r["step_frames_bytes"], r["name"]
        assert r["link_seconds"] == round(r["link_bytes"]["total"] * 10 / b["baud"], 6)
    assert b["link_bytes"] == sum(e["link_bytes"]["total"] for e in b["experiments"])
    assert [e["name"] for e in b["experiments"]] == [
        "unitless", "lif_const", "lif_chip_noise", "lif_float_noise"]
    assert b["experiments"][1]["modes"] == ["counts", "events", "probes"]


@pytest.mark.parametrize("features, modes, fallback", [
    (Features(board_demo.SIM_BOARD_SHAPE), None, "lacks EVENTS"),
    (Features(board_demo.SIM_BOARD_SHAPE, counts=True, events=True), None,
     "lacks 1 probe slots (it has 0)"),
    (Features(board_demo.SIM_BOARD_SHAPE, events=True, probes=1),
     {**MODES, "lif_const.0": ["events", "probes"], "lif_chip_noise.0": ["events", "probes"]},
     "lacks COUNTS: rates from the events"),
])
def test_fallback_when_the_board_lacks_a_mode(monkeypatch, features, modes, fallback):
    """A board without EVENTS or probe slots: every run reads STEP frames as before, says so,
    and stays bit-exact; without COUNTS the rates come from the events (same numbers)."""
    calls = _record_runs(monkeypatch)
    ux = unitless_experiment(ArrayShape())
    lif = lif_experiments(shape=ArrayShape(), T=70.0)
    runs = [ux.run, lif.const, lif.chip_noise, lif.float_noise]
    info = board_demo.run_on_board(runs, "model", build_dir=None,
                                   needs=board_demo.demo_needs(ux, lif), features=features)
    assert all(r["bit_exact"] for r in info["runs"])
    if modes is None:
        assert all(r["modes"] == ["step"] for r in info["runs"])
        assert all(fallback in r["fallback"] for r in info["runs"])
        assert _bitmaps(calls) > 0
        assert info["link_bytes"] == info["step_frames_bytes"]
    else:
        assert {r["name"]: r["modes"] for r in info["runs"]} == modes
        assert _bitmaps(calls) == 0
        assert [r["name"] for r in info["runs"] if fallback in r.get("fallback", "")] == [
            "lif_const.0", "lif_chip_noise.0"]
    for run in runs:
        assert (run.rtl.spikes == run.golden.spikes).all() and run.rtl.bit_exact
    for name in ("const", "chip_noise", "float_noise"):
        rtl = lif.rates(name, "rtl")
        assert np.isfinite(rtl).sum() > 20
        assert np.array_equal(rtl, lif.rates(name, "fixed"), equal_nan=True)


def test_rates_from_counts_are_the_rates_from_the_bitmap():
    """rate_hz_counts on the counts of a bitmap gives rate_hz of the bitmap number for number
    (NaN where fewer than two spikes, 0 Hz where told silent and quiet after step 0)."""
    rng = np.random.default_rng(7)
    spikes = rng.random((300, 200)) < rng.random(200) * 0.05
    spikes[:, :5] = False
    spikes[0, 1] = spikes[0, 2] = spikes[100, 2] = spikes[7, 3] = True
    silent = np.zeros(200, dtype=bool)
    silent[:4] = True
    for sil in (None, silent):
        a = rate_hz(spikes, 0.1, sil)
        b = rate_hz_counts(SpikeCounts.of(spikes), 0.1, sil)
        assert np.array_equal(a, b, equal_nan=True)
    assert np.isnan(b[3]) and b[0] == 0.0 and b[1] == 0.0 and np.isfinite(b[2])


def test_cli_link_modes(capsys, tmp_path):
    """--link-modes step reads STEP frames; --link-modes without --board is refused."""
    assert main(["demo", "--link-modes", "step", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--link-modes goes with --board" in err[0]
    rc = main(["demo", "--board", "model", "--link-modes", "step", "--duration", "5", "--out",
               str(tmp_path / "o"), "--json", "--no-progress"])
    s = json.loads(capsys.readouterr().out)
    assert rc == 1 and s["rtl_bit_exact"]
    assert all(r["modes"] == ["step"] and "fallback" not in r for r in s["board"]["runs"])
    assert s["board"]["link_bytes"] == s["board"]["step_frames_bytes"]


def test_run_modes_on_a_larger_board_read_only_the_neurons_used(monkeypatch):
    """On a board with more neurons and lanes than the demo (its own noise), every run in its
    run modes is bit-exact against its own golden run, and the counts are read for the demo's
    neurons only (not the whole board)."""
    board = ArrayShape(neurons=256, lanes=8, groups=1)
    features = Features(board, counts=True, events=True, probes=1)
    reads = []
    real = Board.read_counts

    def read(self, start=0, count=None, **kw):
        reads.append((start, count))
        return real(self, start, count, **kw)

    monkeypatch.setattr(Board, "read_counts", read)
    ux = unitless_experiment(ArrayShape())
    lif = lif_experiments(shape=ArrayShape(), T=5.0)
    runs = [ux.run, lif.const, lif.chip_noise, lif.float_noise]
    info = board_demo.run_on_board(runs, "model", build_dir=None,
                                   needs=board_demo.demo_needs(ux, lif), features=features)
    assert info["shape"]["neurons"] == 256
    assert {r["name"]: r["modes"] for r in info["runs"]} == MODES
    assert all(r["bit_exact"] for r in info["runs"]), info["runs"]
    assert reads == [(0, 64), (0, 64)]
    for run in runs:
        assert run.rtl.bit_exact
        assert (run.rtl.counts is not None) == (run.name in ("lif_const", "lif_chip_noise"))
