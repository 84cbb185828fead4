"""Throughput of the RTL regression: neuron updates per second verified through the harness.

For each simulator (Verilator, Icarus) this builds one shape from scratch (timed), then runs
random run-time configurations (input stream on, no backpressure, long runs) through
``sim/harness.v`` and the cocotb testbench, every update compared with the golden model, and
reports updates/s excluding and including the build. It also splits the run time into the
simulator process's CPU time, the Python work inside it (stimulus encoding, golden model, beat
decoding and comparison) and cocotb's share, so a slow number can be traced.

Not a timed test: ``python bench/bench_sim.py`` or ``lifgate bench sim``. Targets on a 2-core
machine: Verilator >= 2e6 updates/s, Icarus >= 2e5 updates/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lifgate.sim import runner
from lifgate.sim.cases import random_cases

from lifgate.config import ArrayShape

GOALS = {"verilator": 2e6, "icarus": 2e5}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_one(sim: str, shape: ArrayShape, *, updates: int, configs: int, seed: int,
              build_dir: Path) -> dict:
    steps = max(1, updates // (configs * shape.neurons))
    cases = [
        dataclasses.replace(c, ready_thresh=0, gap_thresh=0,
                            segments=(dataclasses.replace(c.segments[0], steps=steps,
                                                          clear=False),),
                            input={"kind": "uniform", "bits": shape.i_width, "seed": k})
        for k, c in enumerate(random_cases(shape, seed, configs, steps=steps))
    ]
    shutil.rmtree(build_dir, ignore_errors=True)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    model = runner.build(sim, shape, build_dir=build_dir)
    t1, cpu1 = time.perf_counter(), _children_cpu()
    results = runner.run(model, cases)
    t2, cpu2 = time.perf_counter(), _children_cpu()
    bad = [r for r in results if r["mismatch"] is not None or r.get("xz", 0)]
    n_upd = sum(r["updates"] for r in results)
    cycles = sum(r["cycles"] for r in results)
    case_s = sum(r["seconds"] for r in results)
    py_s = sum(r.get("py_seconds", 0.0) for r in results)
    run_s = t2 - t1
    return {
        "sim": sim,
        "neurons": shape.neurons,
        "lanes": shape.lanes,
        "groups": shape.groups,
        "configs": configs,
        "steps_per_config": steps,
        "updates": n_upd,
        "cycles": cycles,
        "failures": len(bad),
        "build_seconds": t1 - t0,
        "build_cpu_seconds": cpu1 - cpu0,
        "run_seconds": run_s,
        "sim_process_cpu_seconds": cpu2 - cpu1,
        "in_cases_seconds": case_s,
        "python_work_seconds": py_s,
        "updates_per_s": n_upd / run_s,
        "updates_per_s_with_build": n_upd / (t2 - t0),
        "updates_per_cpu_second": n_upd / max(1e-9, cpu2 - cpu1),
        "cycles_per_second_in_cases": cycles / max(1e-9, case_s - py_s),
        "goal_updates_per_s": GOALS[sim],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", default="verilator,icarus",
                   help="comma-separated simulators (default verilator,icarus)")
    p.add_argument("--neurons", type=int, default=4096)
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--groups", type=int, default=16)
    p.add_argument("--configs", type=int, default=4, help="configurations per simulator")
    p.add_argument("--updates", type=float, default=None,
                   help="updates per simulator (default 8e6 Verilator, 4e5 Icarus)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a short run (smaller shape, fewer)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", type=Path, default=None, help="build here and keep the builds")
    args = p.parse_args(argv)
    sims = [s.strip() for s in args.sim.split(",") if s.strip()]
    shape = ArrayShape(neurons=args.neurons, lanes=args.lanes, groups=args.groups)
    if args.quick:
        shape = ArrayShape(neurons=256, lanes=8, groups=8)
    out = []
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_sim_"))
    try:
        for sim in sims:
            default = {"verilator": 8e6, "icarus": 4e5}[sim]
            n = int(args.updates or (default / (10 if args.quick else 1)))
            res = bench_one(sim, shape, updates=n, configs=args.configs, seed=args.seed,
                            build_dir=base / sim)
            out.append(res)
            if not args.json:
                print(
                    f"{sim:>9}: {res['updates']:.3g} updates in {res['run_seconds']:.2f} s = "
                    f"{res['updates_per_s']:.3g} updates/s "
                    f"(goal {res['goal_updates_per_s']:.0e}); "
                    f"with the {res['build_seconds']:.1f} s build: "
                    f"{res['updates_per_s_with_build']:.3g}/s; "
                    f"sim CPU {res['sim_process_cpu_seconds']:.2f} s "
                    f"({res['updates_per_cpu_second']:.3g} updates/CPU-s), Python work "
                    f"{res['python_work_seconds']:.2f} s, {res['cycles_per_second_in_cases']:.3g} "
                    f"cycles/s; failures {res['failures']}",
                    flush=True,
                )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps({"load_average": os.getloadavg(), "results": out}, indent=2))
    return 1 if any(r["failures"] for r in out) else 0


if __name__ == "__main__":
    sys.exit(main())
