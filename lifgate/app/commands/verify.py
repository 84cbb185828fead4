"""``lifgate verify``: the bit-exact regression of the RTL against the golden model.

Generates the Verilog of one array shape (``--neurons``, ``--lanes``, ``--groups``; widths at
their defaults), builds it with the cocotb harness on Icarus or Verilator (or runs the Amaranth
design in Amaranth's simulator), and runs the directed edge cases plus ``--configs`` seeded
random run-time configurations, comparing every spike and membrane value with
``lifgate.golden.fixed.simulate``. Any mismatch (or X/Z on an output under Icarus) exits 1,
after printing the first mismatch as (configuration, step, neuron, expected, got) and the
command that reproduces the run.

Every argument and path (``--build-dir``, ``--waves``) is checked before the build starts: a bad
one is one line ``lifgate verify: error: ...`` with exit code 2 and nothing is created.
``--json`` prints one object with ``"ok"`` (no mismatch) and ``updates_per_s``.

Many configurations run as independent jobs on Dask (``lifgate.app.cluster``): with
``--scheduler ADDRESS`` on an existing cluster, else on a local cluster of ``--workers`` processes
(default: one per core when the run is at least ``AUTO_CLUSTER`` neuron-updates, cases x steps x
neurons, one process below that: starting a cluster and one cocotb session per job cost more
than a second core returns for a short run, docs/cluster.md "Wall time"). The model is built
once, here; each job runs a slice of the cases in a cocotb session of its own. A failed or
lost job is reported and retried; a job that fails every attempt counts its cases as failures
(exit 1).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, UsageError, add_report_options
from lifgate.app.cluster import Cluster, check_scheduler
from lifgate.app.progress import progress_bar
from lifgate.checks import check_int, writable_dir
from lifgate.config import ArrayShape
from lifgate.sim import regress, runner


def register(subparsers, summary):
    p = subparsers.add_parser(
        "verify",
        help=summary,
        description=summary + ". Builds go to build/verify/ (reused when up to date).",
    )
    p.add_argument("--sim", choices=("icarus", "verilator", "amaranth"), default="verilator",
                   help="simulator (default: verilator)")
    p.add_argument("--configs", type=int, default=20, metavar="K",
                   help="random run-time configurations, 0 to 100000 (default 20)")
    p.add_argument("--neurons", type=int, default=64, metavar="N",
                   help="neurons, 1 to 2**20, a multiple of P (default 64)")
    p.add_argument("--lanes", type=int, default=4, metavar="P", help="lanes, 1 to 64 (default 4)")
    p.add_argument("--groups", type=int, default=None, metavar="G",
                   help="parameter groups, dividing N (default 1, as in every lifgate command; "
                   "give G > 1, e.g. 16, to exercise per-group parameter sets)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="steps per case, about, 1 to 2**20 (default 48; 16 with --sim amaranth)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed of the random configurations, >= 0 (default: a fresh one, "
                   "printed)")
    p.add_argument("--no-directed", action="store_true",
                   help="run only the random configurations")
    p.add_argument("--no-membrane", action="store_true",
                   help="build without membrane readback (compare spikes only)")
    p.add_argument("--waves", default=None, metavar="DIR",
                   help="write waveforms to DIR (Icarus: FST, Verilator: VCD, amaranth: one "
                   "VCD per case)")
    p.add_argument("--build-dir", default="build/verify", metavar="DIR",
                   help="where models are built (default build/verify)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="local Dask worker processes, 1 to 256 (default: one per core from "
                   f"{AUTO_CLUSTER:.0e} neuron-updates, cases x steps x neurons, on; below "
                   "that 1 = no cluster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the jobs on this Dask scheduler (tcp://HOST:8786; every worker "
                   "must see --build-dir); see docs/cluster.md")
    add_report_options(p)
    p.set_defaults(func=run)


# neuron-updates (cases x steps x neurons) from which the default is a local cluster of one
# worker per core: a 200-case verify of 64 neurons (6e5 updates) ran slower on 2 workers
AUTO_CLUSTER = 5_000_000
# slices of the cases per worker: a lost job re-runs a part only; each slice is one cocotb
# session, which costs seconds to start
JOBS_PER_WORKER = 2


def check_args(args) -> tuple[ArrayShape, int, int]:
    """Every argument and path, before any work: ``(shape, steps, seed)``."""
    check_int("--configs", args.configs, 0, 100000)
    steps = args.steps if args.steps is not None else (16 if args.sim == "amaranth" else 48)
    check_int("--steps", steps, 1, 1 << 20)
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    check_int("--seed", seed, 0, (1 << 63) - 1)
    check_int("--neurons", args.neurons, 1, 1 << 20)
    check_int("--lanes", args.lanes, 1, 64)
    groups = args.groups if args.groups is not None else DEFAULT_GROUPS
    check_int("--groups", groups, 1, args.neurons)
    shape = ArrayShape(neurons=args.neurons, lanes=args.lanes, groups=groups)
    if args.configs == 0 and args.no_directed:
        raise UsageError("nothing to run: --configs 0 with --no-directed")
    # Strings, not argparse's type=Path: Path("") is ".", and an empty path must be refused.
    if args.sim != "amaranth":
        writable_dir("--build-dir", args.build_dir)
    if args.waves is not None:
        writable_dir("--waves", args.waves)
    if getattr(args, "workers", None) is not None:
        check_int("--workers", args.workers, 1, 256)
    if getattr(args, "scheduler", None) is not None:
        check_scheduler("--scheduler", args.scheduler)
    if getattr(args, "scheduler", None) is not None and args.waves is not None:
        raise UsageError("--waves writes one wave file from one process: not with --scheduler")
    return shape, steps, seed


def cluster_workers(args, updates: int) -> int:
    """Local workers for a run of ``updates`` neuron-updates (1: no cluster); ``--scheduler``
    ignores it."""
    if args.waves is not None:
        return 1
    if args.workers is not None:
        return args.workers
    return (os.cpu_count() or 1) if updates >= AUTO_CLUSTER else 1


def regress_on_cluster(args, shape, cases, workers, progress, say) -> regress.Report:
    """The regression with its cases spread over Dask jobs (see the module docstring)."""
    membrane = not args.no_membrane
    t0 = time.perf_counter()
    model, key = regress.build_model(args.sim, shape, build_dir=args.build_dir,
                                     membrane=membrane)
    t1 = time.perf_counter()
    with Cluster(scheduler=args.scheduler, workers=workers) as cluster:
        n_workers = len(cluster.client.scheduler_info().get("workers", {})) or workers
        size = max(1, math.ceil(len(cases) / (n_workers * JOBS_PER_WORKER)))
        chunks = [cases[i:i + size] for i in range(0, len(cases), size)]
        run_dir = Path(args.build_dir).resolve() / f"runs-{key}"
        jobs = [(args.sim, model, shape, chunk)
                for chunk in chunks]

        def on_result(i, results):
            for res in results:
                progress(res)

        def on_event(e):
            say(f"verify: job {e['job']} (cases {e['job'] * size} to "
                f"{min(len(cases), (e['job'] + 1) * size) - 1}), attempt {e['attempt'] + 1}: "
                f"{e['error']}" + ("" if e.get("lost_worker") and "re-run" in e["error"]
                                   else "; retrying"))

        out = cluster.map(_job, [(*j, str(run_dir / uuid.uuid4().hex), membrane) for j in jobs],
                          name="verify", on_result=on_result, on_event=on_event)
    results = []
    for i, chunk in enumerate(chunks):
        if i in out.failed:
            for case in chunk:
                res = {"name": case.name, "updates": 0, "origin": case.origin, "xz": 0,
                       "cycles": 0, "mismatch": {"case": case.name, "field": "error",
                                                 "error": f"job failed: {out.failed[i]}"}}
                progress(res)
                results.append(res)
        else:
            results += out.results[i]
    report = regress.Report(args.sim, shape, results, t1 - t0, time.perf_counter() - t1,
                            membrane)
    report.cluster = out.to_dict()
    return report


def _job(sim, model, shape, cases, test_dir, membrane):
    return regress.run_chunk(sim, model, shape, cases, test_dir=test_dir, membrane=membrane)


def run(args) -> int:

    shape, steps, seed = check_args(args)
    cases = regress.make_cases(shape, seed=seed, configs=args.configs, steps=steps,
                               directed=not args.no_directed)
    command = regress.verify_command(args.sim, shape, configs=args.configs, steps=steps,
                                     seed=seed, directed=not args.no_directed)
    if args.no_membrane:
        command += " --no-membrane"
    if not args.json:
        print(f"seed {seed}; reproduce with: {command}", file=sys.stderr, flush=True)

    state = {"updates": 0, "bad": 0}
    with progress_bar(total=len(cases), unit="config", desc=f"verify {args.sim}",
                      enabled=not args.no_progress) as bar:

        def progress(res):
            state["updates"] += res["updates"]
            if res["mismatch"] is not None or res.get("xz", 0):
                state["bad"] += 1
            bar.set_postfix(updates=state["updates"], mismatches=state["bad"], refresh=False)
            bar.update(1)

        bar.set_postfix_str("building", refresh=True)
        if not args.no_progress and args.sim != "amaranth" and not sys.stderr.isatty():
            # The plain-line progress speaks at the first result; say what the wait is for.
            print(f"verify {args.sim}: building the model in {args.build_dir} (reused when up "
                  f"to date) ...", file=sys.stderr, flush=True)
        workers = cluster_workers(args, len(cases) * steps * shape.neurons)
        try:
            if args.scheduler is not None or workers > 1:
                report = regress_on_cluster(
                    args, shape, cases, workers, progress,
                    lambda text: print(text, file=sys.stderr, flush=True))
            else:
                report = regress.regress(
                    args.sim, shape, cases, build_dir=Path(args.build_dir),
                    membrane=not args.no_membrane,
                    waves_dir=None if args.waves is None else Path(args.waves),
                    progress=progress)
        except runner.SimulatorError as e:
            raise UsageError(str(e)) from None
    out = regress.summary(report, seed=seed, command=command)
    out["cluster"] = getattr(report, "cluster", None)
    out["random_configs"] = args.configs
    out["directed_configs"] = len(cases) - args.configs
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        rate = out["updates_per_s"]
        print(
            f"{args.sim}: {out['configs']} configurations, {out['updates']} neuron updates "
            f"compared, {out['mismatches']} failing; build {out['build_seconds']:.1f} s, "
            f"run {out['run_seconds']:.1f} s ("
            f"{'-' if rate is None else format(rate, '.3g')} updates/s)"
        )
        if report.failures:
            print(report.describe_failure(cases))
            print(f"reproduce with: {command}")
    return 1 if report.failures else 0
