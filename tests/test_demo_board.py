"""``lifgate demo --board``: the seed experiments through a board's host link, bit-exact."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from lifgate.boards.host import open_board
from lifgate.boards.protocol import Features
from lifgate.golden.fixed import simulate

from lifgate.app import board_demo
from lifgate.app.cli import main
from lifgate.app.demo import run_demo
from lifgate.app.experiments import lif_experiments, unitless_experiment
from lifgate.config import ArrayShape, ConfigError


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
    for run in (res.unitless.run, res.lif.const, res.lif.chip_noise, res.lif.float_noise):
        assert run.rtl.sim == "board model"
        assert (run.rtl.spikes == run.golden.spikes).all()
        assert (run.rtl.v == run.golden.v).all()
    assert s["euler_lif_spikes"]["rtl"] == [47, 94]
    assert all(c["ok"] for c in s["checks"])


def test_a_wrong_board_number_fails_the_demo(monkeypatch):
    """One membrane value off by one LSB on the board: the run is not bit-exact, the mismatch
    names the run, step and neuron, and the demo fails."""
    real = board_demo.execute

    def corrupt(board, br, *, bar=None):
        real(board, br, bar=bar)
        if br.name == "lif_const.0":
            br.v = br.v.copy()
            br.v[3, 5] += 1

    monkeypatch.setattr(board_demo, "execute", corrupt)
    res = run_demo(None, board="model", progress=False, plots=False, duration=5.0)
    s = res.summary
    assert not s["rtl_bit_exact"] and s["result"] == "FAILED"
    bad = [r for r in s["board"]["runs"] if not r["bit_exact"]]
    assert [r["name"] for r in bad] == ["lif_const.0"]
    assert bad[0]["mismatch"]["step"] == 3 and bad[0]["mismatch"]["neuron"] == 5


def test_demo_board_on_the_simulated_top(tmp_path):
    """The simulated board top (Verilator, through cocotb's UART): every run bit-exact."""
    res = run_demo(tmp_path / "out", board="sim:verilator", progress=False, plots=False,
                   duration=1.0, build_dir=tmp_path / "build")
    s = res.summary
    assert s["rtl_bit_exact"], s["board"]["runs"]
    assert len(s["board"]["runs"]) == 5 and all(r["bit_exact"] for r in s["board"]["runs"])
    assert s["euler_lif_spikes"]["rtl"] == [47, 94]


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
