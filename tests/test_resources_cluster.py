"""``lifgate resources`` sweeps (board x shape x seed) as Dask jobs: one row per build in plan
order, each with its seed and shape, the jobs' outcome in the JSON; a build that raises is
reported, retried, and a failed row when it never succeeds (exit 1). The builds are stand-ins
(``boards.resources.measure`` patched, threads of this process as the workers): no
place-and-route runs here."""

from __future__ import annotations

import json

import pytest
from distributed import LocalCluster
from lifgate.boards import resources

from lifgate.app.cli import main


class _Rep:
    def __init__(self, board, shape, seed):
        self.d = {"board": board.name, "fmax_mhz": 40.0 + seed, "clock_mhz": 30.0,
                  "timing_met": True, "critical_paths": {}, "bitstream": None,
                  "utilization": {"logic_cells": {"used": shape.neurons, "available": 5280}}}

    def to_dict(self):
        return self.d


@pytest.fixture
def threads_cluster():
    with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cl:
        yield cl.scheduler_address


def test_sweep_rows_in_plan_order(threads_cluster, monkeypatch, tmp_path, capsys):
    calls = []

    def fake(board, shape, out, *, design, frequency_mhz, seed, noise):
        calls.append((board.name, shape.neurons, seed, out.name))
        return _Rep(board, shape, seed)

    monkeypatch.setattr(resources, "measure", fake)
    rc = main(["resources", "--board", "icebreaker", "--shapes", "64x4,128x4", "--seeds", "1,2",
               "--scheduler", threads_cluster, "--json", "--no-progress",
               "--build-dir", str(tmp_path / "b")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"]
    got = [(r["neurons"], r["seed"], r["fmax_mhz"]) for r in out["boards"]]
    assert got == [(64, 1, 41.0), (64, 2, 42.0), (128, 1, 41.0), (128, 2, 42.0)]
    assert sorted(c[3] for c in calls) == sorted(
        f"icebreaker-array-n{n}p4g1-s{s}" for n in (64, 128) for s in (1, 2))
    assert out["cluster"]["jobs"] == 4 and out["cluster"]["failed_jobs"] == []


def test_failing_build_is_retried_then_a_failed_row(threads_cluster, monkeypatch, tmp_path,
                                                     capsys):
    def fake(board, shape, out, *, design, frequency_mhz, seed, noise):
        if seed == 2:
            raise MemoryError("nextpnr ran out of memory")
        return _Rep(board, shape, seed)

    monkeypatch.setattr(resources, "measure", fake)
    rc = main(["resources", "--board", "icebreaker", "--neurons", "64", "--lanes", "4",
               "--seeds", "1,2", "--scheduler", threads_cluster, "--json",
               "--build-dir", str(tmp_path / "b")])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert rc == 1 and not out["ok"]
    assert "error" not in out["boards"][0]
    assert "job failed" in out["boards"][1]["error"] and "MemoryError" in out["boards"][1]["error"]
    assert out["cluster"]["retried_attempts"] == 3  # first attempt and two retries, reported
    assert cap.err.count("out of memory") == 3


@pytest.mark.parametrize("args, name", [
    (["--seeds", "1,x"], "--seeds"), (["--seeds", "1,1"], "--seeds"),
    (["--seeds", "-1"], "--seeds"), (["--shapes", "64"], "--shapes"),
    (["--workers", "0"], "--workers"), (["--scheduler", "somewhere"], "--scheduler"),
])
def test_bad_sweep_arguments(args, name, capsys, tmp_path):
    rc = main(["resources", "--board", "icebreaker", *args, "--build-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and name in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
