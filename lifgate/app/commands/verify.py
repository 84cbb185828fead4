"""``lifgate verify``: the bit-exact regression of the RTL against the golden model.

Generates the Verilog of one array shape (``--neurons``, ``--lanes``, ``--groups``; widths at
their defaults), builds it with the cocotb harness on Icarus or Verilator (or runs the Amaranth
design in Amaranth's simulator), and runs the directed edge cases plus ``--configs`` seeded
random run-time configurations, comparing every spike and membrane value with
``lifgate.golden.fixed.simulate``. Any mismatch (or X/Z on an output under Icarus) exits 1,
after printing the first mismatch as (configuration, step, neuron, expected, got) and the
command that reproduces the run.

``--verilog FILE`` runs the same cases on a Verilog file from elsewhere (an edited copy, another
implementation of ``docs/hardware.md``, a netlist): the shape from ``lifgate generate``'s
header comment or ``--config``, the ports checked against the contract before any build (one
line naming the first port that differs, exit 2), FPGA primitives simulated with Yosys' cell
models or the project's. ``--netlist BOARD`` synthesises the array as that board's build does
and runs the netlist (:mod:`lifgate.sim.foreign`, :func:`lifgate.boards.netlist.synthesise_array`).

Every argument and path (``--build-dir``, ``--waves``) is checked before the build starts: a bad
one is one line ``lifgate verify: error: ...`` with exit code 2 and nothing is created.
``--json`` prints one object with ``"ok"`` (no mismatch) and ``updates_per_s``.

Many configurations run as independent jobs on Dask (``lifgate.app.cluster``): with
``--scheduler ADDRESS`` on an existing cluster, else on a local cluster of ``--workers`` processes
(default: one per idle core when the run is at least ``AUTO_CLUSTER`` neuron-updates, cases x
steps x neurons, one process below that or when no core is idle: starting a cluster and one
cocotb session per job cost more than a second core returns for a short run or a busy
machine, docs/cluster.md "Wall time"; :func:`cluster_workers`). The model is built
once, here; each job runs a slice of the cases in a cocotb session of its own. A failed or
lost job is reported and retried; a job that fails every attempt counts its cases as failures
(exit 1).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import shlex
import sys
import time
import uuid
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, UsageError, add_report_options
from lifgate.app.cluster import Cluster, check_scheduler
from lifgate.app.progress import progress_bar
from lifgate.boards.netlist import (
    NETLIST_BOARDS,
    NetlistError,
    gate_level_text,
    synthesise_array,
)
from lifgate.checks import check_int, input_file, read_config_file, writable_dir
from lifgate.config import ArrayShape, ConfigError
from lifgate.sim import foreign, regress, runner

DEFAULT_NEURONS, DEFAULT_LANES = 64, 4
# neuron-updates (cases x steps x neurons) from which the default is a local cluster of one
# worker per idle core: the cluster costs about 11 s more than one process (2-case runs at load
# 17), which two free cores win back from about 2e6 updates (docs/cluster.md, "Wall time")
AUTO_CLUSTER = 5_000_000
# slices of the cases per worker: each slice is one cocotb session, which costs seconds to
# start (a 200-case verify on 2 workers: 31-35 s with 2 slices per worker, 24-25 s with 1,
# docs/cluster.md); a lost job re-runs its slice
JOBS_PER_WORKER = 1


@dataclasses.dataclass
class Design:
    """What ``verify`` runs: the generated RTL (``text`` None) or a text from elsewhere.

    Members
    -------
    shape : ArrayShape
    membrane : bool
    text : str or None
        Verilog to simulate (a file's text, or a netlist with its cell models).
    top : str
        Its module implementing the contract.
    models : str or None
        Primitive models (``""`` when ``text`` carries them; None: the runner's choice).
    source : str
        What it is, for the report.
    """

    shape: ArrayShape
    membrane: bool
    text: str | None = None
    top: str = "lif_array"
    models: str | None = None
    source: str = "generated"


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
    p.add_argument("--neurons", type=int, default=None, metavar="N",
                   help="neurons, 1 to 2**20, a multiple of P (default 64)")
    p.add_argument("--lanes", type=int, default=None, metavar="P",
                   help="lanes, 1 to 64 (default 4)")
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
    p.add_argument("--verilog", default=None, metavar="FILE",
                   help="verify this Verilog file instead of the generated RTL: any design "
                   "implementing docs/hardware.md's ports (an edited copy, another "
                   "implementation, a netlist; iCE40/ECP5 primitives are simulated with "
                   "Yosys' cell models or lifgate's). The shape comes from lifgate generate's "
                   "header comment in the file or from --config; ports that do not match the "
                   "contract are refused before any build")
    p.add_argument("--top", default=None, metavar="NAME",
                   help="with --verilog: the module implementing the contract (default "
                   "lif_array)")
    p.add_argument("--config", default=None, metavar="F",
                   help="a .toml/.json configuration whose [shape] is the compile-time shape "
                   "(instead of --neurons/--lanes/--groups, or of --verilog's header)")
    p.add_argument("--netlist", choices=NETLIST_BOARDS, default=None,
                   help="synthesise the array as this board's build does (synth_ice40 "
                   "-spram / synth_ecp5, the board's pipeline, multiplier and memory kinds) "
                   "and verify the netlist with the cell models")
    p.add_argument("--build-dir", default="build/verify", metavar="DIR",
                   help="where models are built (default build/verify)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="local Dask worker processes, 1 to 256 (default: one per idle core, "
                   "from the load average, from "
                   f"{AUTO_CLUSTER:.0e} neuron-updates, cases x steps x neurons, on; below "
                   "that, or with no idle core, 1 = no cluster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the jobs on this Dask scheduler (tcp://HOST:8786; every worker "
                   "must see --build-dir); see docs/cluster.md")
    add_report_options(p)
    p.set_defaults(func=run)


def _shape_from_args(args) -> ArrayShape:
    if args.config is not None:
        given = [o for o, v in (("--neurons", args.neurons), ("--lanes", args.lanes),
                                ("--groups", args.groups)) if v is not None]
        if given:
            raise UsageError(f"{given[0]} and --config both give the shape; give one")
        return read_config_file("--config", args.config)[1].shape
    neurons = DEFAULT_NEURONS if args.neurons is None else args.neurons
    lanes = DEFAULT_LANES if args.lanes is None else args.lanes
    check_int("--neurons", neurons, 1, 1 << 20)
    check_int("--lanes", lanes, 1, 64)
    groups = args.groups if args.groups is not None else DEFAULT_GROUPS
    check_int("--groups", groups, 1, neurons)
    return ArrayShape(neurons=neurons, lanes=lanes, groups=groups)


def _read_text(path) -> str:
    path = input_file("--verilog", path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"--verilog: {str(path)!r} is not a UTF-8 text file "
                          f"(byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"--verilog: cannot read {str(path)!r}: {e.strerror or e}") from None


def _file_design(args) -> Design:
    """The ``--verilog`` file: read, shape, ports checked against the contract, models."""
    given = [o for o, v in (("--neurons", args.neurons), ("--lanes", args.lanes),
                            ("--groups", args.groups)) if v is not None]
    if given:
        raise UsageError(f"{given[0]}: with --verilog the shape comes from the file's header "
                         f"or --config, not from options")
    if args.no_membrane:
        raise UsageError("--no-membrane: with --verilog the file's o_stream__payload width "
                         "says whether it has membrane readback")
    text = _read_text(args.verilog)
    top = args.top or "lif_array"
    found = foreign.module_ports(text, top)
    header = foreign.header_shape(text)
    if args.config is not None:
        shape = _shape_from_args(args)
        widths = {name: w for _, w, name in found}
        membrane = widths.get("o_stream__payload") != shape.layout.beat(False).width
        noise = "noise_seed" in widths
    elif header is not None:
        shape, membrane, noise = header
    else:
        raise UsageError(f"--verilog: {args.verilog!r} has no lifgate generate header comment; "
                         f"give the shape with --config FILE")
    if not noise:
        raise UsageError(f"--verilog: module {top!r} is built without noise (no noise_seed/"
                         f"noise_gain ports); the regression drives them: generate it with noise")
    foreign.check_ports(found, foreign.contract_ports(shape, membrane=membrane, noise=True),
                        top=top)
    family, _cells = foreign.vendor_cells(text)
    if family is not None:
        return Design(shape, membrane, gate_level_text(family, text), top, "",
                      f"{args.verilog} ({family} primitives with cell models)")
    return Design(shape, membrane, text, top, None, str(args.verilog))


def check_args(args) -> tuple[Design, int, int]:
    """Every argument and path, before any work: ``(design, steps, seed)``."""
    check_int("--configs", args.configs, 0, 100000)
    steps = args.steps if args.steps is not None else (16 if args.sim == "amaranth" else 48)
    check_int("--steps", steps, 1, 1 << 20)
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    check_int("--seed", seed, 0, (1 << 63) - 1)
    if args.top is not None and args.verilog is None:
        raise UsageError("--top names a module of --verilog's file; give --verilog")
    if args.verilog is not None and args.netlist is not None:
        raise UsageError("--verilog and --netlist: give one (a netlist file goes to --verilog)")
    if args.sim == "amaranth" and (args.verilog or args.netlist):
        raise UsageError(f"--{'verilog' if args.verilog else 'netlist'} runs on --sim icarus "
                         f"or verilator, not on amaranth")
    if args.verilog is not None:
        design = _file_design(args)
    else:
        design = Design(_shape_from_args(args), not args.no_membrane)
    if args.configs == 0 and args.no_directed:
        raise UsageError("nothing to run: --configs 0 with --no-directed")
    if getattr(args, "workers", None) is not None:
        check_int("--workers", args.workers, 1, 256)
    if getattr(args, "scheduler", None) is not None:
        check_scheduler("--scheduler", args.scheduler)
    if getattr(args, "scheduler", None) is not None and args.waves is not None:
        raise UsageError("--waves writes one wave file from one process: not with --scheduler")
    # Strings, not argparse's type=Path: Path("") is ".", and an empty path must be refused.
    if args.sim != "amaranth":
        writable_dir("--build-dir", args.build_dir)
    if args.waves is not None:
        writable_dir("--waves", args.waves)
    return design, steps, seed


def _netlist_design(args, design: Design) -> Design:
    """Synthesise the array for ``--netlist`` (kept in the build folder)."""
    shape = design.shape
    key = runner.shape_key(shape, design.membrane)
    folder = Path(args.build_dir) / f"netlist-{args.netlist}-{key}"
    try:
        family, netlist, cells, _ = synthesise_array(shape, args.netlist, folder,
                                                     membrane=design.membrane)
    except ValueError as e:  # an operand too wide for the board's primitives
        raise ConfigError(f"--netlist {args.netlist}: {e}") from None
    except NetlistError as e:
        raise UsageError(str(e)) from None
    used = ", ".join(f"{n} {k}" for k, n in sorted(cells.items()))
    return dataclasses.replace(design, text=gate_level_text(family, netlist), models="",
                               source=f"{args.netlist} netlist ({used})")


def cluster_workers(args, updates: int) -> int:
    """Local workers for a run of ``updates`` neuron-updates (1: no cluster); ``--scheduler``
    ignores it.

    By default, from ``AUTO_CLUSTER`` updates on, one worker per idle core: ``cores + 1 - load``
    (the 1-minute load average, rounded down), at least 1, at most one per core. On a machine
    whose cores other jobs hold, two simulations at once are no faster than one after the
    other (docs/cluster.md, "Wall time"), and the cluster's start-up is then pure cost.
    """
    if args.waves is not None:
        return 1
    if args.workers is not None:
        return args.workers
    if updates < AUTO_CLUSTER:
        return 1
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform: assume idle cores
        load = 0.0
    return max(1, min(cores, int(cores + 1 - load)))


def regress_on_cluster(args, design: Design, cases, workers, progress, say) -> regress.Report:
    """The regression with its cases spread over Dask jobs (see the module docstring)."""
    shape, membrane = design.shape, design.membrane
    t0 = time.perf_counter()
    # the cluster starts (and its workers import the simulation code) while the model builds
    with Cluster(scheduler=args.scheduler, workers=workers, background=True,
                 warm=_warm_worker) as cluster:
        model, key = regress.build_model(args.sim, shape, build_dir=args.build_dir,
                                         membrane=membrane, verilog=design.text,
                                         top=design.top, models=design.models)
        t1 = time.perf_counter()
        cluster.ready()
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


def _warm_worker() -> int:
    """Run once on each worker when the cluster is up: unpickling it imports this module, and
    with it the simulation runner, before the first job."""
    return os.getpid()


def _job(sim, model, shape, cases, test_dir, membrane):
    return regress.run_chunk(sim, model, shape, cases, test_dir=test_dir, membrane=membrane)


def _command(args, design: Design, steps: int, seed: int) -> str:
    command = regress.verify_command(args.sim, design.shape, configs=args.configs, steps=steps,
                                     seed=seed, directed=not args.no_directed)
    if args.verilog is not None:  # the shape comes from the file (or --config)
        words = shlex.split(command)
        for opt in ("--neurons", "--lanes", "--groups"):
            i = words.index(opt)
            del words[i : i + 2]
        words += ["--verilog", args.verilog] + (["--top", args.top] if args.top else [])
        words += ["--config", args.config] if args.config else []
        return shlex.join(words)
    if args.netlist is not None:
        command += f" --netlist {args.netlist}"
    if args.no_membrane:
        command += " --no-membrane"
    return command


def run(args) -> int:

    design, steps, seed = check_args(args)
    shape = design.shape
    cases = regress.make_cases(shape, seed=seed, configs=args.configs, steps=steps,
                               directed=not args.no_directed)
    command = _command(args, design, steps, seed)
    if args.netlist is not None:
        if not args.json and not args.no_progress:
            print(f"verify: synthesising the array for {args.netlist} (kept in "
                  f"{args.build_dir}) ...", file=sys.stderr, flush=True)
        design = _netlist_design(args, design)
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

        workers = cluster_workers(args, len(cases) * steps * shape.neurons)
        bar.set_postfix_str("building", refresh=True)
        if not args.no_progress and args.sim != "amaranth" and not sys.stderr.isatty():
            # The plain-line progress speaks at the first result; say what the wait is for.
            print(f"verify {args.sim}: building the model in {args.build_dir} (reused when up "
                  f"to date) ...", file=sys.stderr, flush=True)
        try:
            if args.scheduler is not None or workers > 1:
                report = regress_on_cluster(
                    args, design, cases, workers, progress,
                    lambda text: print(text, file=sys.stderr, flush=True))
            else:
                report = regress.regress(
                    args.sim, shape, cases, build_dir=Path(args.build_dir),
                    membrane=design.membrane, verilog=design.text, top=design.top,
                    models=design.models,
                    waves_dir=None if args.waves is None else Path(args.waves),
                    progress=progress)
        except runner.SimulatorError as e:
            raise UsageError(str(e)) from None
    out = regress.summary(report, seed=seed, command=command)
    out["random_configs"] = args.configs
    out["directed_configs"] = len(cases) - args.configs
    out["design"] = design.source
    out["cluster"] = getattr(report, "cluster", None)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"design: {design.source}")
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
