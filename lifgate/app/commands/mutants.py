"""``lifgate mutants``: the mutation score of the regression, with Yosys-made mutants.

A benchmark (minutes), not a test: Yosys' ``mutate -list N -seed S`` picks ``N`` mutations of
the netlist of a small array (8 neurons x 2 lanes, 2 groups, 8-bit membranes, every leak mode,
noise), all of them built into one simulator model behind a control input (MCY style, one
build for every mutant), and each runs through the default regression (the directed cases and
``--configs`` random configurations of ``lifgate verify``, stopped at the first failure).
A mutant that passes is checked for equivalence with the original by Yosys: an induction proof
over every signal that reaches an output (bit slices no output reads removed first;
``equiv_make``, ``equiv_simple``, ``equiv_induct``: unbounded) makes it
equivalent (not counted). Otherwise the outputs of a ``miter`` go under ``sat -seq --depth``;
"no output differs in the first ``--depth`` clocks after reset" is reported, but the mutant
still counts as a survivor (a timestep takes more clocks than that from reset). The
score is killed / (killed + survived); every survivor is listed with its place in the Amaranth
source. See :mod:`lifgate.sim.mutate`.

Seeded (``--seed``: same seed, same mutants and cases), resumable (results are appended to
``--results`` as they come; a rerun skips the mutants already there), parallel (``--jobs``).
``--json`` prints one object with ``"ok"`` (the score reaches ``--goal``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from lifgate.app.cli import UsageError, add_report_options
from lifgate.app.progress import progress_bar
from lifgate.checks import check_int, check_number, writable_dir, writable_file
from lifgate.sim import longrun, mutate, regress, runner


def register(subparsers, summary):
    p = subparsers.add_parser(
        "mutants", help=summary,
        description=summary + ". A benchmark: 200 mutants take tens of minutes.")
    p.add_argument("--count", type=int, default=240, metavar="N",
                   help="mutants Yosys picks (mutate -list N), 1 to 4000 (default 240)")
    p.add_argument("--seed", type=int, default=1, metavar="S",
                   help="seed of the mutants (mutate -seed) and of the random cases, "
                   "0 to 2**31-1 (default 1)")
    p.add_argument("--configs", type=int, default=20, metavar="K",
                   help="random configurations after the directed cases, 0 to 10000 "
                   "(default 20, as lifgate verify)")
    p.add_argument("--steps", type=int, default=48, metavar="T",
                   help="steps per case, 1 to 4096 (default 48, as lifgate verify)")
    p.add_argument("--sim", choices=runner.SIMULATORS, default="verilator",
                   help="simulator (default verilator: one build for every mutant)")
    p.add_argument("--jobs", type=int, default=2, metavar="J",
                   help="simulations at a time, 1 to 64 (default 2)")
    p.add_argument("--depth", type=int, default=8, metavar="C",
                   help="clocks after reset of the bounded equivalence check of a mutant "
                   "that passed (sat -seq C on the outputs), 1 to 64 (default 8)")
    p.add_argument("--goal", type=float, default=0.95, metavar="F",
                   help="score (killed / non-equivalent) for \"ok\", 0 to 1 (default 0.95)")
    p.add_argument("--long-steps", type=int, default=longrun.STEPS, metavar="T",
                   help="steps of the long run every mutant that passes the cases also runs "
                   f"(natively clocked, on Verilator), 0 (none) to 2**32-1 (default "
                   f"2**19 + 3 = {longrun.STEPS}: every bit 0 to 19 of the run counter falls)")
    p.add_argument("--results", default="build/mutants/results.jsonl", metavar="FILE",
                   help="results file, appended to and reused (default "
                   "build/mutants/results.jsonl)")
    p.add_argument("--build-dir", default="build/mutants", metavar="DIR",
                   help="where the mutants and the model are built (default build/mutants)")
    add_report_options(p)
    p.set_defaults(func=run)


def check_args(args) -> None:
    check_int("--count", args.count, 1, 4000)
    check_int("--seed", args.seed, 0, (1 << 31) - 1)
    check_int("--configs", args.configs, 0, 10000)
    check_int("--steps", args.steps, 1, 4096)
    check_int("--jobs", args.jobs, 1, 64)
    check_int("--depth", args.depth, 1, 64)
    check_int("--long-steps", args.long_steps, 0, (1 << 32) - 1)
    check_number("--goal", args.goal, 0, 1)
    writable_dir("--build-dir", args.build_dir)
    writable_file("--results", args.results)


def run(args) -> int:
    check_args(args)
    shape = mutate.DEFAULT_SHAPE
    build = Path(args.build_dir)
    say = (lambda msg: None) if args.no_progress or args.json else (
        lambda msg: print(f"mutants: {msg}", file=sys.stderr, flush=True))
    say(f"listing {args.count} mutants (seed {args.seed}) and building them into one netlist")
    mset = mutate.prepare(shape, build / "design", seed=args.seed, count=args.count)
    say(f"building the {args.sim} model of all {args.count} mutants")
    try:
        model = runner.build(args.sim, shape, build_dir=build / args.sim, verilog=mset.verilog,
                             models="", latency=mset.latency)
    except runner.SimulatorError as e:
        raise UsageError(str(e)) from None
    cases = regress.make_cases(shape, seed=args.seed, configs=args.configs, steps=args.steps)
    digest = hashlib.sha256(json.dumps([c.to_dict() for c in cases]).encode()).hexdigest()
    cases_key = f"{args.sim}/seed{args.seed}/cases-{digest[:12]}"
    long = None
    if args.long_steps:
        case = longrun.default_case(shape, args.long_steps)
        say(f"building the long run ({args.long_steps} steps, Verilator) of all mutants")
        try:
            lmodel = longrun.build(case, build_dir=build / "longrun", latency=mset.latency,
                                   verilog=mset.verilog)
        except runner.SimulatorError as e:
            raise UsageError(str(e)) from None
        long = (lmodel, longrun.expected(case))
        text = longrun.driver_verilog(case, latency=mset.latency)
        cases_key += f"/long-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    with progress_bar(total=args.count + 1, unit="mutant", desc="mutants",
                      enabled=not args.no_progress) as bar:
        def progress(r):
            bar.update(1)
            bar.set_postfix(status=r["status"], refresh=False)

        try:
            results = mutate.run_mutants(mset, model, cases, results=args.results,
                                         cases_key=cases_key, depth=args.depth,
                                         jobs=args.jobs, progress=progress, long=long)
        except RuntimeError as e:
            raise UsageError(str(e)) from None
    sc = mutate.score(results)
    survivors = mutate.survivors(results)
    ok = sc["score"] is not None and sc["score"] >= args.goal
    out = {"ok": ok, **sc, "goal": args.goal, "seed": args.seed, "sim": args.sim,
           "cases": len(cases), "configs": args.configs, "steps": args.steps,
           "long_steps": args.long_steps,
           "equivalence_depth": args.depth, "shape": runner.shape_dict(shape),
           "results": str(args.results), "survivors": survivors,
           "seconds": sum(r.get("seconds", 0.0) for r in results)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        pct = "-" if sc["score"] is None else f"{100 * sc['score']:.1f} %"
        print(f"{sc['mutants']} mutants: {sc['killed']} killed, {sc['survived']} survived "
              f"({sc['bounded_equal']} of them with equal outputs for {args.depth} clocks after "
              f"reset), {sc['equivalent']} proved equivalent; score {pct} of the "
              f"non-equivalent (goal {100 * args.goal:.0f} %)")
        for s in survivors:
            print(f"  survivor {s['mutant']}: {s['location']}: {s['proof']}  [{s['mutation']}]")
    return 0 if ok else 1
