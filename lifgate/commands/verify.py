"""``lifgate verify``: the bit-exact regression of the RTL against the golden model.

Generates the Verilog of one array shape (``--neurons``, ``--lanes``, ``--groups``; widths at
their defaults), builds it with the cocotb harness on Icarus or Verilator (or runs the Amaranth
design in Amaranth's simulator), and runs the directed edge cases plus ``--configs`` seeded
random run-time configurations, comparing every spike and membrane value with
``lifgate.golden.fixed.simulate``. Any mismatch (or X/Z on an output under Icarus) exits 1,
after printing the first mismatch as (configuration, step, neuron, expected, got) and the
command that reproduces the run.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path


def register(subparsers, summary):
    p = subparsers.add_parser(
        "verify",
        help=summary,
        description=summary + ". Builds go to build/verify/ (reused when up to date).",
    )
    p.add_argument("--sim", choices=("icarus", "verilator", "amaranth"), default="verilator",
                   help="simulator (default: verilator)")
    p.add_argument("--configs", type=int, default=20, metavar="K",
                   help="random run-time configurations (default 20)")
    p.add_argument("--neurons", type=int, default=64, metavar="N", help="neurons (default 64)")
    p.add_argument("--lanes", type=int, default=4, metavar="P", help="lanes (default 4)")
    p.add_argument("--groups", type=int, default=None, metavar="G",
                   help="parameter groups, dividing N (default: the largest divisor of N up "
                   "to 16)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="steps per case, about (default 48; 16 with --sim amaranth)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed of the random configurations (default: a fresh one, printed)")
    p.add_argument("--no-directed", action="store_true",
                   help="run only the random configurations")
    p.add_argument("--no-membrane", action="store_true",
                   help="build without membrane readback (compare spikes only)")
    p.add_argument("--waves", type=Path, default=None, metavar="DIR",
                   help="write waveforms to DIR (Icarus: FST, Verilator: VCD, amaranth: one "
                   "VCD per case)")
    p.add_argument("--build-dir", type=Path, default=Path("build/verify"), metavar="DIR",
                   help="where models are built (default build/verify)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _check(name, value, lo, hi):
    from lifgate.cli import UsageError

    if not lo <= value <= hi:
        raise UsageError(f"--{name} must be in [{lo}, {hi}], not {value}")


def run(args) -> int:
    from lifgate.cli import UsageError
    from lifgate.config import ArrayShape
    from lifgate.sim import regress, runner

    _check("configs", args.configs, 0, 100000)
    steps = args.steps if args.steps is not None else (16 if args.sim == "amaranth" else 48)
    _check("steps", steps, 1, 1 << 20)
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    _check("seed", seed, 0, (1 << 63) - 1)
    groups = args.groups if args.groups is not None else regress.default_groups(args.neurons)
    shape = ArrayShape(neurons=args.neurons, lanes=args.lanes, groups=groups)
    cases = regress.make_cases(shape, seed=seed, configs=args.configs, steps=steps,
                               directed=not args.no_directed)
    if not cases:
        raise UsageError("nothing to run: --configs 0 with --no-directed")
    command = regress.verify_command(args.sim, shape, configs=args.configs, steps=steps,
                                     seed=seed, directed=not args.no_directed)
    if args.no_membrane:
        command += " --no-membrane"
    if not args.json:
        print(f"seed {seed}; reproduce with: {command}", file=sys.stderr, flush=True)

    from tqdm import tqdm

    bar = tqdm(total=len(cases), unit="config", file=sys.stderr, desc=f"verify {args.sim}",
               dynamic_ncols=True)
    state = {"updates": 0, "bad": 0}

    def progress(res):
        state["updates"] += res["updates"]
        if res["mismatch"] is not None or res.get("xz", 0):
            state["bad"] += 1
        bar.set_postfix(updates=state["updates"], mismatches=state["bad"], refresh=False)
        bar.update(1)

    bar.set_postfix_str("building", refresh=True)
    try:
        report = regress.regress(args.sim, shape, cases, build_dir=args.build_dir,
                                 membrane=not args.no_membrane, waves_dir=args.waves,
                                 progress=progress)
    except runner.SimulatorError as e:
        bar.close()
        raise UsageError(str(e)) from None
    bar.close()
    out = regress.summary(report, seed=seed, command=command)
    out["random_configs"] = args.configs
    out["directed_configs"] = len(cases) - args.configs
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        rate = out["updates_per_second"]
        print(
            f"{args.sim}: {out['configs']} configurations, {out['updates']} neuron updates "
            f"compared, {out['mismatches']} failing; build {out['build_seconds']:.1f} s, "
            f"run {out['run_seconds']:.1f} s ({rate:.3g} updates/s)"
        )
        if report.failures:
            print(report.describe_failure(cases))
            print(f"reproduce with: {command}")
    return 1 if report.failures else 0
