"""Independent jobs on a Dask cluster: the sweeps of ``lifgate verify`` and ``lifgate resources``.

:class:`Cluster` starts a ``distributed.LocalCluster`` (one single-threaded worker process per
core by default) or connects to an existing scheduler (``--scheduler tcp://HOST:8786``), and
:meth:`Cluster.map` runs one function over a list of jobs, gathering the results in job order.
Nothing is dropped silently:

* a job that raises, or whose worker dies under it more often than the scheduler tolerates
  (``KilledWorker``), is reported (one line per attempt, via ``on_event``) and resubmitted, up
  to ``retries`` times; one that still fails is returned in :attr:`Outcome.failed` and the
  command reports it and exits 1;
* a job whose worker died while it ran and that the scheduler re-ran on another worker by
  itself is counted in :attr:`Outcome.lost` (the scheduler's ``suspicious`` count), so a lost
  worker shows up in the report even when every job finished.

Starting workers for ``--scheduler`` (docs/cluster.md): ``dask scheduler`` on one machine,
``dask worker tcp://SCHEDULER:8786 --nthreads 1`` on each machine (a lifgate install of the
same version; ``lifgate verify`` needs the build folder on a file system every worker sees).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re

import dask
from distributed import Client, KilledWorker, LocalCluster, as_completed

from lifgate.checks import check_int, short_repr
from lifgate.config import ConfigError

__all__ = ["Cluster", "ClusterError", "Outcome", "check_scheduler", "int_list"]


class ClusterError(ConfigError):
    """The Dask scheduler cannot be reached (or the cluster cannot start)."""


def check_scheduler(name: str, text) -> str:
    """A Dask scheduler address: ``PROTOCOL://HOST:PORT`` (tcp, tls, ws, wss, ucx), or an
    ``inproc://`` address of a cluster in this process."""
    pattern = r"(tcp|tls|ws|wss|ucx)://[^\s/]+:\d{1,5}|inproc://\S+"
    if not isinstance(text, str) or not re.fullmatch(pattern, text):
        raise ConfigError(f"parameter {name!r} must be a Dask scheduler address "
                          f"PROTOCOL://HOST:PORT such as tcp://10.0.0.5:8786, not "
                          f"{short_repr(text)}")
    return text


def int_list(name: str, text: str, lo: int, hi: int) -> list[int]:
    """Comma-separated integers in [lo, hi], at least one, no repeats (``"1,2,3"``)."""
    parts = [p.strip() for p in str(text).split(",")]
    values = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise ConfigError(f"parameter {name!r} must be comma-separated integers in "
                              f"[{lo}, {hi}], not {short_repr(text)}") from None
        values.append(check_int(name, v, lo, hi))
    if len(set(values)) != len(values):
        raise ConfigError(f"parameter {name!r} must not repeat a value, not {short_repr(text)}")
    return values


class Outcome:
    """The gathered results of :meth:`Cluster.map`.

    Members
    -------
    results : list
        One per job, in job order; ``None`` for a job in ``failed``.
    failed : dict
        Job index -> the last error (text) of a job that failed every attempt.
    events : list of dict
        Every failed attempt: ``{"job", "attempt", "error", "lost_worker"}``.
    lost : dict
        Job index -> times its worker died while it ran (the scheduler re-ran it).
    workers : int
        Workers the cluster had when the jobs were submitted.
    """

    def __init__(self, n: int, workers: int):
        self.results = [None] * n
        self.failed: dict[int, str] = {}
        self.events: list[dict] = []
        self.lost: dict[int, int] = {}
        self.workers = workers

    def to_dict(self) -> dict:
        return {"workers": self.workers, "jobs": len(self.results),
                "failed_jobs": sorted(self.failed), "retried_attempts": len(self.events),
                "lost_worker_reruns": sum(self.lost.values()), "events": self.events}


def _suspicious(dask_scheduler=None, key=None) -> int:
    ts = dask_scheduler.tasks.get(key)
    return 0 if ts is None else int(ts.suspicious)


class Cluster:
    """A Dask cluster for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : str or None
        Address of a running Dask scheduler; None starts a local cluster.
    workers : int or None
        Worker processes of the local cluster (default: one per core).
    background : bool
        Start (or connect) in a thread: ``with`` returns at once, so the caller can build
        meanwhile; :meth:`ready` waits for the cluster (and raises what the start raised).
        Starting a local cluster costs seconds (a scheduler and a nanny plus a worker process
        per worker, each importing Dask and lifgate).
    warm : callable or None
        Run once on every worker as soon as the cluster is up (in the background too): imports
        that the first job would otherwise pay for.

    Members
    -------
    client : distributed.Client or None
        Set once the cluster is up (after :meth:`ready` when ``background``).
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None, *,
                 background: bool = False, warm=None):
        self.scheduler = scheduler
        self.n_workers = workers or os.cpu_count() or 1
        self.cluster = None
        self.client = None
        self.background = background
        self.warm = warm
        self._start = None

    def _connect(self):
        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout=30)
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"cannot reach the Dask scheduler at {self.scheduler} "
                                   f"({type(e).__name__}): start it and its workers "
                                   "(docs/cluster.md) or leave out --scheduler") from None
        else:
            with dask.config.set({"distributed.worker.daemon": False}):
                self.cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1,
                                            processes=True, dashboard_address=":0",
                                            silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        if self.warm is not None:
            self.client.run(self.warm)

    def __enter__(self) -> Cluster:
        if self.background:
            self._start = concurrent.futures.ThreadPoolExecutor(1, "cluster-start")
            self._started = self._start.submit(self._connect)
        else:
            self._connect()
        return self

    def ready(self) -> Cluster:
        """Wait until the cluster is up (``background``); raise what its start raised."""
        if self._start is not None:
            self._started.result()
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            concurrent.futures.wait([self._started])
            self._start.shutdown()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def worker_pids(self) -> dict:
        """Worker address -> process id (the test that kills a worker uses it)."""
        return self.client.run(os.getpid)

    def map(self, fn, jobs, *, name="job", retries: int = 2, on_result=None,
            on_event=None) -> Outcome:
        """Run ``fn(*args)`` for each ``args`` in ``jobs``; see the module docstring.

        ``on_result(index, result)`` is called as each job finishes, ``on_event(event)`` for
        each failed attempt (before it is retried).
        """
        jobs = list(jobs)
        out = Outcome(len(jobs), len(self.client.scheduler_info().get("workers", {})))
        pending = {}

        def submit(i, attempt):
            fut = self.client.submit(fn, *jobs[i], key=f"{name}-{i}-try{attempt}", pure=False)
            pending[fut.key] = (i, attempt)
            return fut

        done = as_completed([submit(i, 0) for i in range(len(jobs))])
        for fut in done:
            i, attempt = pending.pop(fut.key)
            if fut.status == "finished":
                lost = self.client.run_on_scheduler(_suspicious, key=fut.key)
                if lost:
                    out.lost[i] = out.lost.get(i, 0) + lost
                    if on_event:
                        on_event({"job": i, "attempt": attempt, "lost_worker": True,
                                  "error": f"its worker died {lost} time(s); re-run by the "
                                  "scheduler"})
                out.results[i] = fut.result()
                if on_result:
                    on_result(i, out.results[i])
            else:
                exc = fut.exception()
                event = {"job": i, "attempt": attempt, "lost_worker": isinstance(exc,
                                                                                 KilledWorker),
                         "error": f"{type(exc).__name__}: {exc}"[:500]}
                out.events.append(event)
                if on_event:
                    on_event(event)
                if attempt < retries:
                    done.add(submit(i, attempt + 1))
                else:
                    out.failed[i] = event["error"]
            fut.release()
        return out
