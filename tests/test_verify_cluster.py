"""``lifgate verify`` on Dask: the same report as one process (same configurations, updates,
verdict), on a local cluster (``--workers``) and on an existing scheduler (``--scheduler``),
with the jobs' outcome in the JSON; a job that fails every attempt fails the run (exit 1)."""

from __future__ import annotations

import argparse
import json
import os

import pytest
from distributed import LocalCluster

from lifgate.app.cli import main
from lifgate.app.commands import verify

SMALL = ["--neurons", "8", "--lanes", "2", "--steps", "4", "--seed", "11", "--no-directed",
         "--json", "--no-progress"]


def _run(capsys, *args):
    rc = main(["verify", *SMALL, *args])
    return rc, json.loads(capsys.readouterr().out)


@pytest.mark.icarus
def test_verify_on_local_cluster_equals_one_process(tmp_path, capsys):
    b = ["--build-dir", str(tmp_path / "b")]
    rc1, one = _run(capsys, "--sim", "icarus", "--configs", "5", "--workers", "1", *b)
    rc2, many = _run(capsys, "--sim", "icarus", "--configs", "5", "--workers", "2", *b)
    assert rc1 == rc2 == 0 and one["ok"] and many["ok"]
    assert one["cluster"] is None
    assert many["cluster"]["workers"] == 2 and many["cluster"]["jobs"] >= 2
    assert many["cluster"]["failed_jobs"] == []
    for key in ("configs", "updates", "cycles", "mismatches", "repro"):
        assert one[key] == many[key], key


def test_verify_on_existing_scheduler(capsys):
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cl:
        rc, out = _run(capsys, "--sim", "amaranth", "--configs", "2",
                       "--scheduler", cl.scheduler_address)
    assert rc == 0 and out["ok"] and out["configs"] == 2 and out["updates"] > 0
    assert out["cluster"]["workers"] == 1 and out["cluster"]["failed_jobs"] == []


def test_failed_job_fails_the_run(capsys, monkeypatch):
    """Every attempt of every job raises: each case is reported as failed, exit 1."""
    monkeypatch.setattr(verify, "_job", _always_fails)
    # threads in this process as workers: they see the patched job function
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cl:
        rc, out = _run(capsys, "--sim", "amaranth", "--configs", "2",
                       "--scheduler", cl.scheduler_address)
    assert rc == 1 and not out["ok"] and out["mismatches"] == 2
    assert "job failed" in out["first_mismatch"]["error"]
    assert out["cluster"]["retried_attempts"] >= 2


def _always_fails(*args):
    raise RuntimeError("simulator crashed")


@pytest.mark.parametrize("args, name", [
    (["--workers", "0"], "--workers"),
    (["--scheduler", "tcp://x:1", "--waves", "w"], "--waves"),
])
def test_bad_cluster_arguments(args, name, capsys, tmp_path):
    rc = main(["verify", "--sim", "amaranth", *SMALL[:-2], *args])
    err = capsys.readouterr().err
    assert rc == 2 and name in err and "Traceback" not in err


def test_default_workers_follow_the_size_of_the_run(monkeypatch):
    """One process below AUTO_CLUSTER neuron-updates (a short run is faster without a
    cluster, docs/cluster.md), one worker per idle core from there (none idle: one process);
    --workers and --waves win."""
    cores = os.cpu_count() or 1
    args = argparse.Namespace(waves=None, workers=None)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert verify.cluster_workers(args, verify.AUTO_CLUSTER - 1) == 1
    assert verify.cluster_workers(args, verify.AUTO_CLUSTER) == cores
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 0.5, 1.0, 1.0))
    assert verify.cluster_workers(args, verify.AUTO_CLUSTER) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 1.0, 1.0))
    assert verify.cluster_workers(args, verify.AUTO_CLUSTER) == 1
    if cores > 2:
        monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 1.0, 1.0))
        assert verify.cluster_workers(args, verify.AUTO_CLUSTER) == cores - 1
    assert verify.cluster_workers(argparse.Namespace(waves=None, workers=3), 10) == 3
    assert verify.cluster_workers(argparse.Namespace(waves="w", workers=3), 10**9) == 1
