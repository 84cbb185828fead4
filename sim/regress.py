"""The RTL regression as one call: build, run directed and random cases, summarise.

Used by ``lifgate verify``, by ``tests/test_sim_regression.py`` and by ``bench/bench_sim.py``.
:func:`regress` runs on Icarus or Verilator (through :mod:`lifgate.sim.runner` and the cocotb
testbench) or on Amaranth's simulator (through ``lifgate.sim.driver.simulate_rtl``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import time
from pathlib import Path

import numpy as np
from lifgate.golden import fixed
from lifgate.sim import runner
from lifgate.sim.beats import compare_outputs
from lifgate.sim.cases import SimCase, directed_cases, random_cases
from lifgate.sim.driver import simulate_rtl

from lifgate.config import ArrayShape, ConfigError

__all__ = ["SIMS", "Report", "build_model", "default_groups", "make_cases", "regress",
           "run_chunk", "verify_command"]

SIMS = ("icarus", "verilator", "amaranth")


def default_groups(neurons: int) -> int:
    """Parameter groups used when none are given: 1, the one rule of every lifgate command.

    (Before issue 14 ``verify`` took the largest divisor of N up to 16, ``generate`` 64 and
    ``build`` 1.) ``neurons`` is kept for callers; it must be at least 1.
    """
    if neurons < 1:
        raise ConfigError(f"parameter 'neurons' must be an integer >= 1, not {neurons!r}")
    return 1


def verify_command(sim: str, shape: ArrayShape, *, configs: int, steps: int, seed: int,
                   directed: bool = True) -> str:
    """The ``lifgate verify`` command line that reruns exactly these cases."""
    args = ["lifgate", "verify", "--sim", sim, "--neurons", shape.neurons, "--lanes",
            shape.lanes, "--groups", shape.groups, "--steps", steps, "--configs", configs,
            "--seed", seed]
    if not directed:
        args.append("--no-directed")
    return shlex.join(str(a) for a in args)


def make_cases(shape: ArrayShape, *, seed: int, configs: int, steps: int,
               directed: bool = True) -> list[SimCase]:
    """Directed cases (``directed``) followed by ``configs`` random ones from ``seed``."""
    cases = directed_cases(shape, steps=steps) if directed else []
    return cases + random_cases(shape, seed, configs, steps=steps)


@dataclasses.dataclass
class Report:
    """Summary of a regression run.

    Members
    -------
    sim : str
    shape : ArrayShape
    results : list of dict
        One per case (see :mod:`lifgate.sim.tb_array`).
    build_seconds, run_seconds : float
        Time to generate and build the model, and to run every case (wall clock).
    """

    sim: str
    shape: ArrayShape
    results: list
    build_seconds: float
    run_seconds: float
    membrane: bool = True

    @property
    def updates(self) -> int:
        return sum(r["updates"] for r in self.results)

    @property
    def failures(self) -> list[dict]:
        """Results with a mismatch or with X/Z on an output."""
        return [r for r in self.results if r["mismatch"] is not None or r.get("xz", 0)]

    @property
    def first_mismatch(self) -> dict | None:
        for r in self.results:
            if r["mismatch"] is not None:
                return r["mismatch"]
            if r.get("xz", 0):
                return {"case": r["name"], "field": "X/Z on a lif_array output",
                        "cycles": r["xz"]}
        return None

    @property
    def cycles(self) -> int:
        return sum(r.get("cycles", 0) for r in self.results)

    def describe_failure(self, cases: list[SimCase]) -> str:
        """First failure, with the configuration of its case, for an assertion message."""
        m = self.first_mismatch
        if m is None:
            return "no mismatch"
        by_name = {c.name: c for c in cases}
        case = by_name.get(m.get("case"))
        where = (f"configuration {m.get('case')!r}, step {m.get('step')}, neuron "
                 f"{m.get('neuron')}: expected {m.get('expected')}, got {m.get('got')} "
                 f"[{m.get('field')}; {m.get('mismatches', '?')} values differ in that run]")
        if m.get("field") == "error":
            where = f"configuration {m.get('case')!r}: {m.get('error')}"
        if "cycles" in m and m.get("field", "").startswith("X/Z"):
            where = f"configuration {m.get('case')!r}: X/Z on an output in {m['cycles']} cycles"
        cfg = case.to_dict() if case is not None else {}
        return f"{self.sim}: first mismatch in {where}\ncase: {cfg}"


def regress(sim: str, shape: ArrayShape, cases: list[SimCase], *, build_dir,
            membrane: bool = True, waves_dir=None, progress=None,
            optimize: bool = True, options: dict | None = None, test_dir=None,
            around_build=None, verilog: str | None = None, top: str = "lif_array",
            models: str | None = None) -> Report:
    """Run ``cases`` on ``sim`` for ``shape``; see :class:`Report`.

    The one simulator dispatcher of lifgate (``lifgate verify``, ``lifgate demo``, the tests).
    ``build_dir`` holds the model (reused when it is up to date); ``waves_dir`` receives one
    wave file (Icarus: FST via vvp, Verilator: VCD, Amaranth: VCD per case). ``optimize``:
    see :func:`lifgate.sim.runner.build`. ``options``: structural options of ``LIFArray``
    (``pipeline``, ``lanes_per_enable``), for every simulator. ``test_dir``: the cocotb
    session's folder (:func:`lifgate.sim.runner.run`). ``around_build``: called with the build
    (a function of no arguments returning the model) and returns what it returns, to show
    progress around it. A case with ``outputs`` gets its RTL outputs written there, on every
    simulator. ``verilog``, ``top``, ``models``: a design from elsewhere instead of the
    generated one (``lifgate verify --verilog``, see :func:`lifgate.sim.runner.build`; not on
    Amaranth's simulator).
    """
    if sim not in SIMS:
        raise ConfigError(f"parameter 'sim' must be one of {', '.join(SIMS)}, not {sim!r}")
    if sim == "amaranth":
        if verilog is not None:
            raise ConfigError("a Verilog text runs on icarus or verilator, not on amaranth")
        return _regress_amaranth(shape, cases, membrane=membrane, waves_dir=waves_dir,
                                 progress=progress, options=options)
    waves = waves_dir is not None
    t0 = time.perf_counter()
    model, key = build_model(sim, shape, build_dir=build_dir, membrane=membrane, waves=waves,
                             optimize=optimize, options=options, around_build=around_build,
                             verilog=verilog, top=top, models=models)
    t1 = time.perf_counter()
    wave_file = None
    if waves:
        wave_file = Path(waves_dir) / f"{sim}-{key}.{'fst' if sim == 'icarus' else 'vcd'}"
    results = runner.run(model, cases, test_dir=test_dir, waves=wave_file, progress=progress)
    t2 = time.perf_counter()
    return Report(sim, shape, results, t1 - t0, t2 - t1, membrane)


def build_model(sim: str, shape: ArrayShape, *, build_dir, membrane: bool = True,
                waves: bool = False, optimize: bool = True, options: dict | None = None,
                around_build=None, verilog: str | None = None, top: str = "lif_array",
                models: str | None = None):
    """Build (or reuse) the model :func:`regress` runs on: ``(model, key)``; ``model`` is None
    for ``amaranth`` (nothing to build). ``verilog``/``top``/``models``: see :func:`regress`."""
    if sim == "amaranth":
        return None, "amaranth"
    key = runner.shape_key(shape, membrane, options)
    key += "-waves" if waves and sim == "verilator" else ""
    if verilog is not None:  # its own folder: the generated design's build stays cached
        key += "-file" + hashlib.sha1(f"{top}\0{verilog}".encode()).hexdigest()[:10]

    def build():
        return runner.build(sim, shape, build_dir=Path(build_dir) / f"{sim}-{key}",
                            membrane=membrane, waves=waves, optimize=optimize, options=options,
                            verilog=verilog, top=top, models=models)

    return (build() if around_build is None else around_build(build)), key


def run_chunk(sim: str, model, shape: ArrayShape, cases: list[SimCase], *, test_dir=None,
              membrane: bool = True, options: dict | None = None) -> list[dict]:
    """One job of a distributed regression: ``cases`` on a built ``model`` (or on Amaranth's
    simulator), in a cocotb session of its own in ``test_dir``; one result dict per case."""
    if sim == "amaranth":
        return _regress_amaranth(shape, cases, membrane=membrane, waves_dir=None,
                                 progress=None, options=options).results
    return runner.run(model, cases, test_dir=test_dir)


def _regress_amaranth(shape, cases, *, membrane, waves_dir, progress, options=None) -> Report:
    results = []
    t0 = time.perf_counter()
    for case in cases:
        c0 = time.perf_counter()
        config = case.config
        script, expect = [], []
        state = fixed.fresh_state(config)
        for si, seg in enumerate(case.segments):
            if seg.reset:  # while idle, no clear: the step label restarts, the state carries over
                script.append(("reset",))
                state = state.copy()
                state.step = 0
            if seg.abort_after is not None or (seg.clear and si > 0):
                # The Amaranth driver has no reset operation: an aborted run is replaced by the
                # clear that follows it (the state the next segment starts from is the same).
                script.append(("clear",))
                state = fixed.fresh_state(config)
                if seg.abort_after is not None:
                    continue
            cur = case.currents(si)
            exp = fixed.simulate(config, seg.steps, cur, state=state)
            script.append(("run", seg.steps) if cur is None else ("run", seg.steps, cur))
            expect.append(exp)
            state = exp.final
        vcd = None
        if waves_dir is not None:
            Path(waves_dir).mkdir(parents=True, exist_ok=True)
            vcd = str(Path(waves_dir) / f"amaranth-{case.name}.vcd")
        res = {"name": case.name, "updates": 0, "mismatch": None, "origin": case.origin,
               "xz": 0, "cycles": 0}
        try:
            runs = simulate_rtl(
                config, [("clear",), *script], membrane=membrane,
                ready=1 - case.ready_thresh / 256, valid=1 - case.gap_thresh / 256,
                seed=case.lfsr_seed, vcd=vcd, **(options or {}),
            )
            base, kept = 0, []
            for run, exp in zip(runs, expect, strict=True):
                m = compare_outputs(run.spikes, run.v, exp, case=case.name, base_step=base)
                res["updates"] += exp.spikes.size
                res["cycles"] += run.cycles
                kept.append(run)
                if m is not None:
                    res["mismatch"] = m
                    break
                base += exp.spikes.shape[0]
            if case.outputs is not None and kept:  # as the cocotb testbench writes them
                np.savez(case.outputs, spikes=np.concatenate([k.spikes for k in kept]),
                         **({} if not membrane else {"v": np.concatenate([k.v for k in kept])}))
        except AssertionError as e:  # beat order or count, raised by the driver
            res["mismatch"] = {"case": case.name, "field": "error", "error": str(e)}
        res["seconds"] = time.perf_counter() - c0
        results.append(res)
        if progress:
            progress(res)
    return Report("amaranth", shape, results, 0.0, time.perf_counter() - t0, membrane)


def summary(report: Report, *, seed: int, command: str) -> dict:
    """The JSON object of ``lifgate verify --json``."""
    run_s = report.run_seconds
    total = report.build_seconds + run_s
    return {
        "ok": not report.failures,
        "sim": report.sim,
        "shape": runner.shape_dict(report.shape),
        "membrane": report.membrane,
        "seed": seed,
        "configs": len(report.results),
        "updates": report.updates,
        "cycles": report.cycles,
        "mismatches": len(report.failures),
        "first_mismatch": report.first_mismatch,
        "xz_cycles": sum(r.get("xz", 0) for r in report.results),
        "seconds": total,
        "build_seconds": report.build_seconds,
        "run_seconds": run_s,
        # None, not NaN, when nothing ran: NaN is not JSON.
        "updates_per_s": report.updates / run_s if run_s > 0 else None,
        "repro": command,
    }

