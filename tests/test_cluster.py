"""Jobs on a local Dask cluster (``lifgate.app.cluster``): gathered in order, a failing job
reported and retried (and reported as failed when it never succeeds), and a worker killed
mid-run (SIGKILL of its process) without losing a job: the job is re-run and the re-run is
reported."""

import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
from distributed import LocalCluster

from lifgate.app.cluster import Cluster, ClusterError

# the job functions below travel to the workers by value (the workers cannot import tests/)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square(x):
    return x * x


def flaky(marker: str, x):
    """Fails on its first call for each marker file, then succeeds."""
    p = Path(marker)
    if not p.exists():
        p.write_text("failed once")
        raise RuntimeError(f"first attempt of job {x} fails")
    return x + 100


def broken(x):
    raise ValueError(f"job {x} always fails")


def slow(x, seconds):
    time.sleep(seconds)
    return (x, os.getpid())


@pytest.fixture(scope="module")
def cluster():
    with Cluster(workers=2) as c:
        yield c


def test_map_in_job_order(cluster):
    seen = []
    out = cluster.map(square, [(i,) for i in range(7)], on_result=lambda i, r: seen.append(i))
    assert out.results == [i * i for i in range(7)]
    assert sorted(seen) == list(range(7)) and not out.failed and not out.events


def test_failed_job_is_reported_and_retried(cluster, tmp_path):
    events = []
    jobs = [(str(tmp_path / f"m{i}"), i) for i in range(3)]
    out = cluster.map(flaky, jobs, retries=1, on_event=events.append)
    assert out.results == [100, 101, 102]
    assert sorted(e["job"] for e in events) == [0, 1, 2]
    assert all("first attempt" in e["error"] and e["attempt"] == 0 for e in events)
    assert out.to_dict()["retried_attempts"] == 3 and not out.failed


def test_job_that_never_succeeds_is_not_dropped(cluster):
    out = cluster.map(broken, [(1,), (2,)], retries=2)
    assert out.results == [None, None]
    assert set(out.failed) == {0, 1} and "always fails" in out.failed[0]
    assert len(out.events) == 6  # 3 attempts each, every one reported


def test_worker_killed_mid_run_job_completes():
    with Cluster(workers=2) as c:
        pids = list(c.worker_pids().values())
        assert len(pids) == 2
        events = []
        killed = []

        def kill():
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

        timer = threading.Timer(1.5, kill)  # every job runs 4 s: both workers are busy
        timer.start()
        try:
            out = c.map(slow, [(i, 4.0) for i in range(4)], on_event=events.append)
        finally:
            timer.cancel()
        assert killed, "the worker was not killed during the run"
        assert [r[0] for r in out.results] == [0, 1, 2, 3]
        assert not out.failed
        assert killed[0] not in {r[1] for r in out.results}
        # the job that was running on the killed worker is reported, not silently re-run
        lost = sum(out.lost.values()) + sum(e["lost_worker"] for e in out.events)
        assert lost >= 1, (out.to_dict(), events)
        assert any(e["lost_worker"] for e in events)



def _warm(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()} {threading.get_ident()}\n")


def test_background_start_warms_every_worker_and_waits_in_ready(tmp_path):
    """``background=True``: ``with`` returns before the cluster is up (the caller builds
    meanwhile), ``ready()`` waits for it, and ``warm`` ran once on every worker first
    (each call leaves a line in a file)."""
    marks = tmp_path / "warm"
    with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cl:
        with Cluster(scheduler=cl.scheduler_address, background=True,
                     warm=functools.partial(_warm, marks)) as c:
            assert c.ready() is c
            assert len(marks.read_text().splitlines()) == 2  # one call per worker
            assert c.map(square, [(x,) for x in range(4)]).results == [0, 1, 4, 9]


def test_background_start_error_is_raised_by_ready(monkeypatch):
    """What the start raised in its thread (here: an unreachable scheduler, without the 30 s
    that a real one takes to time out) comes out of ``ready()``, and ``with`` still exits."""

    def unreachable(self):
        raise ClusterError("cannot reach the Dask scheduler at tcp://127.0.0.1:9")

    monkeypatch.setattr(Cluster, "_connect", unreachable)
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        with Cluster(scheduler="tcp://127.0.0.1:9", background=True) as c:
            c.ready()
