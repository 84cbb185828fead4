"""Mutation test of the RTL regression: inject known faults, check the regression catches each.

Each mutant is a textual patch of the gateware source (``hdl/array.py`` or ``hdl/noise.py``):
the patched text is executed as a fresh module (the files on disk are never touched) and its
``LIFArray`` replaces the real one in :mod:`lifgate.sim.driver` for the duration of the run.
The regression is the project's own: :func:`lifgate.sim.regress.regress` on Amaranth's
simulator, comparing every spike and membrane value bit for bit against
:mod:`lifgate.golden.fixed`, over the directed cases of :mod:`lifgate.sim.cases` and a few
seeded random ones. A mutant is *killed* when some case mismatches (or the driver sees a lost or
duplicated beat, or the run does not finish); the cases run in order and stop at the first kill.

Every patch must match the source exactly once; if the gateware changed so that a patch no
longer applies, the mutant is reported ``STALE`` (not silently counted as killed or survived).

Run::

    python bench/mutants.py            # all mutants, prints a table and the kill rate
    python bench/mutants.py --list
    python bench/mutants.py -m ge_to_gt -m stuck_lfsr

The unmutated design must pass the same cases first (otherwise the kill rate means nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import lifgate.hdl
import lifgate.sim.driver as driver
from lifgate.sim.cases import directed_cases, random_cases
from lifgate.sim.regress import regress

from lifgate.config import ArrayShape, ResetMode

__all__ = ["LONG_RUN_MUTANTS", "MUTANTS", "SHAPE", "Mutant", "build_mutant", "cases",
           "run_mutant", "main"]


@dataclass(frozen=True)
class Mutant:
    """A fault: ``patches`` is a tuple of ``(file, old, new)`` exact text replacements."""

    name: str
    fault: str
    patches: tuple


MUTANTS = [
    Mutant("refractory_off_by_one", "off-by-one refractory period (t_ref + 1 steps)", (
        ("array.py", "r_next = Mux(refr3, rdec3, Mux(fire, t_ref, 0))",
         "r_next = Mux(refr3, rdec3, Mux(fire, t_ref + 1, 0))"),
        ("array.py", "hold = Mux(refr3, rmore3, fire & t_ref.any())",
         "hold = Mux(refr3, rmore3, fire)"),
    )),
    Mutant("shift_round_floor", "wrong rounding: SHIFT leak floors instead of rounding half up", (
        ("array.py", "lk = h6 + ~(t6 >> 1) + ~t6[0]", "lk = h6 + ~(t6 >> 1) + 1"),
    )),
    Mutant("mult_round_floor", "wrong rounding: MULT leak floors (no 2^(F-1) added)", (
        ("array.py", "rnd = Cat(Const(1 << (F - 1), F), vr6).as_signed()",
         "rnd = Cat(Const(0, F), vr6).as_signed()"),
    )),
    Mutant("no_saturation", "missing saturation: v' wraps", (
        ("array.py", "stage(8, (s9, s8), (v9, _saturate(tot8, W)))",
         "stage(8, (s9, s8), (v9, tot8[:W].as_signed()))"),
    )),
    Mutant("ge_to_gt", "'>' instead of '>=' in the threshold compare", (
        ("array.py", "(ge3, v2 >= v_th)", "(ge3, v2 > v_th)"),
    )),
    Mutant("dropped_lane", "a dropped lane: the last lane's results never reach o_stream", (
        ("array.py", "out_spikes.append(s9)",
         "out_spikes.append(s9 if p != P - 1 else Const(0, 1))"),
        ("array.py", "out_v.append(v9)", "out_v.append(v9 if p != P - 1 else Const(0, signed(W)))"),
    )),
    Mutant("swapped_reset_mode", "swapped reset mode (VALUE behaves as SUBTRACT and back)", (
        ("array.py", "value_mode = mode == hw.VALUE",
         "value_mode = mode == hw.SUBTRACT"),
    )),
    Mutant("after_leak_before", "SUBTRACT_AFTER_LEAK subtracts before the leak (as SUBTRACT)", (
        ("array.py", "after_mode = mode == hw.SUBTRACT_AFTER_LEAK",
         "after_mode = Const(0)"),
    )),
    Mutant("stuck_lfsr", "stuck noise generator: the xorshift state never advances", (
        ("noise.py", "m.d.sync += x.eq(xorshift32(x))", "m.d.sync += x.eq(x)"),
    )),
]

#: Faults that only a run of 2**19 steps or more shows: the regression above does not kill them
#: (its runs are short); the long run of :mod:`lifgate.sim.longrun` does
#: (``tests/test_mutants.py``). A hand-made twin of Yosys mutant 160 of issue 20.
LONG_RUN_MUTANTS = [
    Mutant("remaining_bit19_into_26",
           "the run counter's bit 26 gets bit 19 XORed in at every decrement (a run of 2^19 "
           "steps or more lasts 2^26 steps longer)", (
               ("array.py", "remaining.eq(rem_dec),",
                "remaining.eq(rem_dec ^ (rem_dec[19] << 26)),"),
           )),
]

#: Regression shape: 2 lanes x 4 addresses, 2 parameter groups, every leak mode and reset mode,
#: noise built.
SHAPE = ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=6, ref_width=3,
                   decay_frac=6, step_width=8, reset_modes=tuple(ResetMode))


def _hdl_dir() -> Path:

    return Path(lifgate.hdl.__file__).resolve().parent


def _exec_module(name: str, text: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    sys.modules[name] = mod  # enum mirroring and dataclasses look the module up
    try:
        exec(compile(text, str(path), "exec"), mod.__dict__)
    finally:
        del sys.modules[name]
    return mod


class StalePatch(Exception):
    """A patch does not match the gateware source exactly once."""


def build_mutant(mutant: Mutant | None):
    """The ``LIFArray`` class of ``mutant`` (``None``: the unmutated source, loaded alike)."""
    hdl = _hdl_dir()
    texts = {f: (hdl / f).read_text() for f in ("array.py", "noise.py")}
    for file, old, new in (mutant.patches if mutant else ()):
        n = texts[file].count(old)
        if n != 1:
            raise StalePatch(f"{mutant.name}: {old!r} occurs {n} times in hdl/{file}")
        texts[file] = texts[file].replace(old, new)
    noise = _exec_module("lifgate.hdl._mutant_noise", texts["noise.py"], hdl / "noise.py")
    array = _exec_module("lifgate.hdl._mutant_array", texts["array.py"], hdl / "array.py")
    array.LaneNoise = noise.LaneNoise
    array.Z_WIDTH = noise.Z_WIDTH
    return array.LIFArray


@contextlib.contextmanager
def _patched_driver(cls):

    saved = driver.LIFArray
    driver.LIFArray = cls
    try:
        yield
    finally:
        driver.LIFArray = saved


def cases(shape: ArrayShape = SHAPE, *, random: int = 4, seed: int = 2024):
    """Directed cases (short runs) followed by ``random`` seeded random ones."""
    return directed_cases(shape, steps=12, long_steps=40) + random_cases(
        shape, seed, random, steps=24)


def run_mutant(mutant: Mutant | None, case_list, shape: ArrayShape = SHAPE) -> dict:
    """Run ``case_list`` on the mutant until the first failure.

    Returns ``{"name", "status": KILLED | SURVIVED | STALE | PASS | FAIL, "case", "detail",
    "cases_run", "seconds"}`` (``PASS``/``FAIL`` for the unmutated design).
    """
    name = mutant.name if mutant else "original"
    t0 = time.perf_counter()
    try:
        cls = build_mutant(mutant)
    except StalePatch as e:
        return {"name": name, "status": "STALE", "case": None, "detail": str(e),
                "cases_run": 0, "seconds": time.perf_counter() - t0}
    failed, detail, ran = None, None, 0
    with _patched_driver(cls):
        for case in case_list:
            ran += 1
            try:
                rep = regress("amaranth", shape, [case], build_dir="build/mutants")
            except RuntimeError as e:  # no done: the driver gives up (a hang)
                failed, detail = case.name, f"hang: {e}"
                break
            if rep.failures:
                failed, detail = case.name, str(rep.first_mismatch)
                break
    if mutant is None:
        status = "FAIL" if failed else "PASS"
    else:
        status = "KILLED" if failed else "SURVIVED"
    return {"name": name, "status": status, "case": failed, "detail": detail,
            "cases_run": ran, "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mutant", action="append", help="run only these mutants")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--random", type=int, default=4, help="random cases after the directed ones")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--skip-original", action="store_true",
                    help="do not first check that the unmutated design passes")
    args = ap.parse_args(argv)
    if args.list:
        for mu in MUTANTS:
            print(f"{mu.name:<24} {mu.fault}")
        return 0
    chosen = MUTANTS
    if args.mutant:
        known = {mu.name: mu for mu in MUTANTS}
        bad = [n for n in args.mutant if n not in known]
        if bad:
            ap.error(f"unknown mutant(s) {bad}; --list shows them")
        chosen = [known[n] for n in args.mutant]
    case_list = cases(SHAPE, random=args.random, seed=args.seed)
    if not args.skip_original:
        r = run_mutant(None, case_list)
        print(f"{'original':<24} {r['status']:<8} {r['cases_run']:>3} cases {r['seconds']:6.1f} s",
              flush=True)
        if r["status"] != "PASS":
            print(f"  the unmutated design fails {r['case']}: {r['detail']}")
            return 2
    killed = 0
    for mu in chosen:
        r = run_mutant(mu, case_list)
        killed += r["status"] == "KILLED"
        where = f"by {r['case']}" if r["case"] else (r["detail"] or "")
        print(f"{mu.name:<24} {r['status']:<8} {r['cases_run']:>3} cases {r['seconds']:6.1f} s  "
              f"{where}", flush=True)
    print(f"kill rate: {killed}/{len(chosen)} = {100 * killed / len(chosen):.0f}%")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
