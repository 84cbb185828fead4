"""The fused kernel bit-exact against the numpy reference on many fuzzed configurations.

Draws ``--configs`` (default 10,000) runs from the hypothesis strategy the numerics property
tests fuzz (``tests/test_numerics_props.py``, ``runs()``: shapes of 1 to 16 neurons, 4- to
24-bit membranes, every leak mode and reset rule, noise on and off, no/constant/random input,
1 to 40 steps; with ``--wide`` half of them up to 32 bits), runs each with
``simulate(..., engine="numpy")`` and ``engine="fused"`` and compares spikes, membranes and the
final state (noise generators included). Reports the count, the mismatches (the first one in
full) and the time. Exit 1 on any mismatch.

Run: ``python bench/bench_golden_exact.py [--configs N] [--json]`` or
``lifgate bench golden_exact``. The default test suite runs the same comparison on a modest
count (``tests/test_golden_fast.py``; ``LIFGATE_FUSED_EXAMPLES=N`` raises it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.golden.fixed import simulate

# the strategies the test suite fuzzes with live in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_golden_fast import wide_runs  # noqa: E402
from test_numerics_props import runs  # noqa: E402


def _same(a, b) -> bool:
    return (a.v.dtype == b.v.dtype and np.array_equal(a.spikes, b.spikes)
            and np.array_equal(a.v, b.v) and np.array_equal(a.final.v, b.final.v)
            and np.array_equal(a.final.r, b.final.r)
            and np.array_equal(a.final.noise, b.final.noise))


def check(count: int, wide: bool) -> dict:
    strategy = st.one_of(runs(), wide_runs()) if wide else runs()
    stats = {"configs": 0, "mismatches": 0, "first_mismatch": None, "updates": 0}

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(run):
        cfg, steps, cur = run
        ref = simulate(cfg, steps, cur)
        got = simulate(cfg, steps, cur, engine="fused")
        stats["configs"] += 1
        stats["updates"] += steps * cfg.shape.neurons
        if not _same(ref, got):
            stats["mismatches"] += 1
            if stats["first_mismatch"] is None:
                stats["first_mismatch"] = repr((cfg, steps, cur))

    t0 = time.perf_counter()
    one()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_golden_exact", description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=10_000,
                    help="fuzzed configurations to compare (default 10,000)")
    ap.add_argument("--wide", action="store_true",
                    help="half of the runs up to 32-bit membranes and currents")
    ap.add_argument("--quick", action="store_true", help="200 configurations")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.configs = 200
    if args.configs < 1:
        ap.error("--configs must be positive")
    stats = check(args.configs, args.wide)
    result = {"benchmark": "golden_exact", "ok": stats["mismatches"] == 0, **stats}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"fused vs numpy: {stats['configs']} fuzzed configurations, {stats['updates']} "
              f"neuron-updates, {stats['mismatches']} mismatches, {stats['seconds']:.1f} s")
        if stats["first_mismatch"]:
            print("first mismatch:", stats["first_mismatch"])
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
