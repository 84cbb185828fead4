"""``lifgate verify``: JSON output, exit codes, waves, bad input."""

from __future__ import annotations

import json

import pytest

from lifgate.app.cli import main

SMALL = ["--neurons", "8", "--lanes", "2", "--steps", "4", "--seed", "11"]


@pytest.mark.icarus
def test_verify_icarus_json_and_waves(tmp_path, capsys):
    rc = main(["verify", "--sim", "icarus", *SMALL, "--configs", "3", "--no-directed", "--json",
               "--build-dir", str(tmp_path / "b"), "--waves", str(tmp_path / "w")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("sim", "configs", "updates", "mismatches", "seconds", "seed", "repro",
                "first_mismatch"):
        assert key in out
    assert out["sim"] == "icarus" and out["configs"] == 3 and out["seed"] == 11
    assert out["mismatches"] == 0 and out["first_mismatch"] is None and out["updates"] > 0
    assert out["ok"] is True and out["updates_per_s"] > 0 and "updates_per_second" not in out
    assert out["repro"].startswith("lifgate verify --sim icarus --neurons 8 --lanes 2")
    assert "--seed 11" in out["repro"] and "--no-directed" in out["repro"]
    waves = list((tmp_path / "w").iterdir())
    assert len(waves) == 1 and waves[0].suffix == ".fst" and waves[0].stat().st_size > 0


def test_verify_amaranth_reports_a_mismatch_and_exits_1(tmp_path, capsys, monkeypatch):
    """With a golden model that is off by one in one membrane value, verify must fail."""
    from lifgate.golden import fixed

    real = fixed.simulate

    def wrong(config, steps, currents=None, *, state=None):
        res = real(config, steps, currents, state=state)
        if steps > 1:
            res.v = res.v.copy()
            res.v[1, 3] += 1
        return res

    monkeypatch.setattr(fixed, "simulate", wrong)
    rc = main(["verify", "--sim", "amaranth", *SMALL, "--configs", "1", "--no-directed",
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["mismatches"] == 1 and out["ok"] is False
    m = out["first_mismatch"]
    assert (m["case"], m["step"], m["neuron"], m["field"]) == ("random0", 1, 3, "v")
    assert m["expected"]["v"] == m["got"]["v"] + 1


def test_verify_amaranth_passes(capsys):
    rc = main(["verify", "--sim", "amaranth", *SMALL, "--configs", "2", "--no-directed"])
    out = capsys.readouterr()
    assert rc == 0, out.out
    assert "0 failing" in out.out
    assert "reproduce with: lifgate verify --sim amaranth" in out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--neurons", "8", "--lanes", "3"], "parameter 'neurons' must be a multiple of lanes"),
        (["--neurons", "8", "--groups", "3"], "parameter 'groups' must divide neurons"),
        (["--steps", "0"], "--steps must be an integer in [1, "),
        (["--configs", "0", "--no-directed"], "nothing to run"),
    ],
)
def test_verify_bad_input(args, message, capsys):
    rc = main(["verify", "--sim", "icarus", *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("lifgate verify: error: ") and message in err


def test_verify_default_groups():
    from lifgate.sim.regress import default_groups

    from lifgate.app.cli import DEFAULT_GROUPS

    # One rule for every command (issue 14): one parameter group unless --groups says else.
    assert DEFAULT_GROUPS == 1
    assert [default_groups(n) for n in (1, 8, 64, 100, 1000)] == [DEFAULT_GROUPS] * 5
