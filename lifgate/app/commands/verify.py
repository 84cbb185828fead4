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
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, UsageError, add_report_options
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
    add_report_options(p)
    p.set_defaults(func=run)


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
    return shape, steps, seed


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
        try:
            report = regress.regress(args.sim, shape, cases, build_dir=Path(args.build_dir),
                                     membrane=not args.no_membrane,
                                     waves_dir=None if args.waves is None else Path(args.waves),
                                     progress=progress)
        except runner.SimulatorError as e:
            raise UsageError(str(e)) from None
    out = regress.summary(report, seed=seed, command=command)
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
