"""``lifgate demo``: both seed notebooks on the float model, the fixed-point model and the RTL.

The demo in three parts, each reusable on its own (``examples/explore.ipynb`` and the tests use
them):

* :mod:`lifgate.app.experiments`: the experiments, pure functions over the golden and float
  models (re-exported here: ``demo.unitless_experiment``, ``demo.lif_experiments``, ...);
* this module: :func:`rtl_run` / :func:`run_rtl` run the experiments' :class:`ArrayRun` objects
  on the generated RTL through ``sim``'s one dispatcher, :func:`lifgate.sim.regress.regress`
  (Verilator, Icarus, or Amaranth's simulator), and :func:`run_demo` does everything, plots
  (:mod:`lifgate.app.plots`) and the summary; what ``lifgate demo`` calls;
* :mod:`lifgate.app.report`: the summary table and its JSON.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lifgate.app import plots as plotting

# The experiments are re-exported: ``demo.lif_experiments`` and so on, as the notebook uses them.
from lifgate.app.board_demo import board_features, demo_needs, run_on_board
from lifgate.app.experiments import (
    NOISE_TRACE_CURRENT,
    RATE_CURRENTS,
    TRACE_CURRENT,
    ArrayRun,
    LIFExperiments,
    RTLOutcome,
    UnitlessExperiment,
    lif_experiments,
    min_duration,
    notebook_trace,
    rate_hz,
    seed_checks,
    shape_params,
    unitless_experiment,
)
from lifgate.app.progress import progress_bar, ticker
from lifgate.app.report import format_summary, json_list, summary_json
from lifgate.checks import check_choice, check_number, output_dir, output_file
from lifgate.config import ArrayShape, Config, ConfigError
from lifgate.sim import runner
from lifgate.sim.cases import Segment, SimCase
from lifgate.sim.regress import regress

__all__ = [
    "DURATION_RANGE",
    "LINK_MODES",
    "PLOTS",
    "SIMS",
    "DemoResult",
    "check_outputs",
    "format_summary",
    "rtl_run",
    "run_demo",
    "run_rtl",
    "summary_json",
    # from lifgate.app.experiments
    "NOISE_TRACE_CURRENT",
    "RATE_CURRENTS",
    "TRACE_CURRENT",
    "ArrayRun",
    "LIFExperiments",
    "RTLOutcome",
    "UnitlessExperiment",
    "lif_experiments",
    "min_duration",
    "notebook_trace",
    "rate_hz",
    "shape_params",
    "unitless_experiment",
]

#: Simulators ``lifgate demo --sim`` accepts; the first is the default.
SIMS = ("verilator", "icarus", "amaranth")
#: The PNG files the demo writes into its output folder (``NAME.png``).
PLOTS = ("euler_lif", "lif_membrane", "lif_rate", "lif_noise", "iaf")
#: Legal length of the biophysical runs [ms].
DURATION_RANGE = (1.0, 2000.0)
#: ``--link-modes``: the cheapest run modes a board has, or ``STEP`` frames for everything.
LINK_MODES = ("auto", "step")


# RTL -----------------------------------------------------------------------------------------


def rtl_run(config: Config, steps: int, currents=None, *, sim: str = "verilator",
            build_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``config`` for ``steps`` steps (after a clear) on the RTL; return ``(spikes, v)``.

    ``spikes`` bool [steps, N] and ``v`` int64 [steps, N], the layout of
    :func:`lifgate.golden.fixed.simulate`. ``currents`` is None or an int array [steps, N].
    """
    run = ArrayRun("rtl_run", config, steps, currents)
    run_rtl([run], sim=sim, build_dir=build_dir)
    if run.rtl.spikes is None:
        raise RuntimeError(f"the {sim} backend did not return the run's outputs")
    return run.rtl.spikes, run.rtl.v


def run_rtl(runs, *, sim: str = "verilator", build_dir=None, progress: bool = False) -> dict:
    """Run every :class:`ArrayRun` on the RTL and set its ``rtl`` outcome.

    All runs must share one :class:`ArrayShape` (one Verilog build). They go through the one
    simulator dispatcher, :func:`lifgate.sim.regress.regress`: each run becomes a
    :class:`lifgate.sim.cases.SimCase` whose stimulus (if any) is an ``.npy`` file and whose
    outputs the simulation writes to an ``.npz`` file; the simulation compares every beat with
    the golden model itself, and this function compares the returned arrays once more
    (:meth:`ArrayRun.check_rtl`). Verilator and Icarus keep these files in
    ``build_dir/SIM-io``; Amaranth's simulator builds nothing and writes them to a temporary
    folder. Returns ``{"sim", "build_seconds", "seconds"}``.
    """
    runs = list(runs)
    if sim not in SIMS:
        raise ConfigError(f"parameter 'sim' must be one of {', '.join(SIMS)}, not {sim!r}")
    if not runs:
        return {"sim": sim, "build_seconds": 0.0, "seconds": 0.0}
    shape = runs[0].config.shape
    for r in runs:
        if r.config.shape != shape:
            raise ConfigError("every RTL run of one call must have the same shape")
    t0 = time.perf_counter()
    root = Path(build_dir or "build/demo").resolve()
    with contextlib.ExitStack() as stack:
        if sim == "amaranth":
            io_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lifgate-")))
        else:
            io_dir = root / f"{sim}-io"
        try:
            io_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # checked up front, but a file system can still refuse (/proc)
            raise ConfigError(
                f"build_dir: cannot create {str(io_dir)!r}: {e.strerror or e}") from None
        cases = [_case(k, r, io_dir) for k, r in enumerate(runs)]
        model_dir = root / f"{sim}-{runner.shape_key(shape, True)}"
        bar = progress_bar(total=sum(r.updates for r in runs), desc=f"RTL ({sim})",
                           unit="updates", unit_scale=True, enabled=progress)
        report = regress(
            sim, shape, cases, build_dir=root, membrane=True, test_dir=io_dir / "session",
            progress=lambda res: bar.update(res.get("updates", 0)),
            around_build=lambda build: ticker(
                build, f"building the {sim} model in {model_dir} (reused next time)",
                enabled=progress))
        bar.close()
        by_name = {res["name"]: res for res in report.results}
        for r, case in zip(runs, cases, strict=True):
            r.rtl = _outcome(sim, r, case, by_name.get(r.name, {}))
    return {"sim": sim, "build_seconds": report.build_seconds,
            "seconds": time.perf_counter() - t0}


def _case(k: int, r: ArrayRun, io_dir: Path) -> SimCase:
    """The :class:`SimCase` of run number ``k``, its files in ``io_dir``."""
    stim = None
    if r.currents is not None:
        stim = io_dir / f"{k}-{r.name}-stimulus.npy"
        np.save(stim, np.ascontiguousarray(r.currents, dtype=np.int64))
    outputs = io_dir / f"{k}-{r.name}-outputs.npz"
    outputs.unlink(missing_ok=True)
    return SimCase(name=r.name, config=r.config, segments=(Segment(r.steps),),
                   stimulus=None if stim is None else str(stim), outputs=str(outputs))


def _outcome(sim: str, r: ArrayRun, case: SimCase, res: dict) -> RTLOutcome:
    """The RTL's outputs of ``r`` (read from ``case.outputs``) and their verdict."""
    spikes = v = None
    try:
        with np.load(case.outputs) as f:
            spikes, v = f["spikes"], f["v"]
    except (OSError, KeyError):
        pass
    if spikes is None:
        ok, mismatch = False, res.get("mismatch") or {"field": "error",
                                                      "error": "no outputs written"}
    else:
        ok, mismatch = r.check_rtl(spikes, v)
        # The simulation's own verdict (beat order, X/Z) must agree.
        if ok and (res.get("mismatch") is not None or res.get("xz", 0)):
            ok, mismatch = False, res.get("mismatch") or {"field": "X/Z",
                                                          "cycles": res.get("xz")}
    return RTLOutcome(sim, spikes, v, ok, mismatch, r.updates, int(res.get("cycles", 0)),
                      float(res.get("seconds", 0.0)))


# The whole demo --------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """Everything :func:`run_demo` computed.

    Members
    -------
    summary : dict
        The JSON figures (``lifgate demo --json``).
    unitless : UnitlessExperiment
    lif : LIFExperiments
    plots : dict
        Plot name -> path of the PNG written.
    ok : bool
        RTL bit-exact and every seed check passed.
    """

    summary: dict
    unitless: UnitlessExperiment
    lif: LIFExperiments
    plots: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.summary["ok"])


def check_outputs(out, build_dir, *, sim: str | None = "verilator", plots: bool = True,
                  names=("out", "build_dir")) -> None:
    """Check, before any work, that the demo can write its plots and its simulator build.

    ``out`` must be (or become) a folder in which every ``PLOTS`` file can be written;
    ``build_dir`` likewise for Verilator and Icarus (Amaranth's simulator builds nothing).
    Nothing is created. ``names`` name the two in the error (the CLI's ``--out``,
    ``--build-dir``). Raises ``ConfigError``.
    """
    if plots:
        out = output_dir(names[0], out)
        for name in PLOTS:
            output_file(names[0], out / f"{name}.png", create_parents=True)
    if sim in ("verilator", "icarus"):
        output_dir(names[1], build_dir)


def run_demo(out=None, *, sim: str | None = "verilator", quick: bool = False,
             duration: float | None = None, progress: bool = True, build_dir=None,
             plots: bool = True, board: str | None = None,
             link_modes: str = "auto") -> DemoResult:
    """Run the whole demo on the default :class:`ArrayShape`; write plots into ``out``.

    ``quick`` shortens the biophysical runs from the notebook's 500 ms to 100 ms;
    ``duration`` [ms] sets their length explicitly. ``sim=None`` skips the RTL (the result is
    then not ``ok``). ``build_dir`` holds the simulator build (default ``build/demo``).
    ``board`` (a host-library spec: ``model``, ``sim:verilator``, ``sim:icarus``,
    ``serial:PORT[@BAUD]``) runs the array runs through that board's host link instead of the
    RTL simulator (:mod:`lifgate.app.board_demo`); ``sim`` is then not used. ``link_modes``
    ``auto`` reads each experiment in the cheapest run modes the board has (COUNTS, EVENTS,
    PROBES), ``step`` reads every bitmap and membrane in ``STEP`` frames.
    """
    if board is not None:
        board_features(board)  # checks the spec before any work
        check_choice("link_modes", link_modes, LINK_MODES)
        sim = "board"
    elif sim is not None and sim not in SIMS:
        raise ConfigError(f"parameter 'sim' must be one of {', '.join(SIMS)}, not {sim!r}")
    if duration is not None:
        duration = check_number("duration", duration, *DURATION_RANGE, unit="ms")
    out = Path(out or "lifgate-demo")
    build_dir = Path(build_dir or "build/demo")
    check_outputs(out, build_dir, plots=plots,  # before any work
                  sim=("verilator" if board.startswith("sim:") else None) if board else sim)
    t0 = time.perf_counter()
    shape = ArrayShape()
    ux = unitless_experiment(shape)
    if duration is None:
        duration = 100.0 if quick else None
    lif = lif_experiments(shape=shape, T=duration, progress=progress)
    runs = [ux.run, lif.const, lif.chip_noise, lif.float_noise]
    board_info = None
    if board is not None:
        board_info = run_on_board(runs, board, build_dir=build_dir / "board", progress=progress,
                                  needs=demo_needs(ux, lif) if link_modes == "auto" else None)
        rtl_info = {"sim": "board", "build_seconds": board_info["build_seconds"],
                    "seconds": board_info["seconds"]}
    elif sim is None:  # no RTL (exploring the models only): not a passing demo
        rtl_info = {"sim": None, "build_seconds": 0.0, "seconds": 0.0}
    else:
        rtl_info = run_rtl(runs, sim=sim, build_dir=build_dir, progress=progress)
    sources = ["fixed"]
    have_rtl_data = all(r.rtl is not None and r.rtl.spikes is not None for r in runs)
    if have_rtl_data:
        sources.append("rtl")
    checks = seed_checks(ux, lif, sources)
    rtl_exact = all(r.rtl is not None and r.rtl.bit_exact for r in runs)

    fl = lif.rates("const", "float")
    fx = lif.rates("const", "fixed")
    analytic = lif.analytic_rates()
    # errors only where both rates were measured (NaN: fewer than two spikes, no rate)
    fires = np.isfinite(fl) & np.isfinite(fx) & (fl > 0)
    err = np.abs(fx[fires] / fl[fires] - 1.0) * 100.0
    above = analytic > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        err_an_fx = np.abs(fx[above] / analytic[above] - 1.0) * 100.0
        err_an_fl = np.abs(fl[above] / analytic[above] - 1.0) * 100.0
    err_an_fx, err_an_fl = err_an_fx[np.isfinite(err_an_fx)], err_an_fl[np.isfinite(err_an_fl)]
    unmeasured = lif.unmeasurable()
    tr_fl = lif.trace_mV("const", "float", TRACE_CURRENT)
    tr_fx = lif.trace_mV("const", "fixed", TRACE_CURRENT)
    first = lif.spike_steps("const", "float", TRACE_CURRENT)
    upto = int(first[0]) if first.size else tr_fl.size
    summary = {
        "shape": Config(shape=shape, params=(shape_params(shape),)).to_dict()["shape"],
        "sim": sim,
        **({"board": board_info} if board_info else {}),
        "quick": quick,
        "duration_ms": lif.pars["T"],
        "euler_lif_spikes": {s: ux.euler_spikes(s) for s in ("float", *sources)},
        "iaf_spikes": {s: ux.iaf_spikes(s) for s in ("float", *sources)},
        "rtl_bit_exact": rtl_exact,
        "rtl_runs": [
            {
                "name": r.name,
                "steps": r.steps,
                "neurons": r.config.shape.neurons,
                "updates": r.updates,
                "spikes": int(r.golden.spikes.sum()),
                "input_stream": r.currents is not None,
                "noise_gain": r.config.noise.gain,
                "bit_exact": bool(r.rtl and r.rtl.bit_exact),
                "rtl_ran": r.rtl is not None,
                "mismatch": r.rtl.mismatch if r.rtl else None,
                "cycles": r.rtl.cycles if r.rtl else 0,
                "seconds": round(r.rtl.seconds, 3) if r.rtl else None,
            }
            for r in runs
        ],
        "rtl_updates": sum(r.updates for r in runs),
        "rtl_build_seconds": round(rtl_info.get("build_seconds", 0.0), 2),
        "rtl_seconds": round(rtl_info["seconds"] - rtl_info.get("build_seconds", 0.0), 2),
        "updates_per_s": None,
        # None, never 0, when no rate could be compared
        "rate_error_max_pct": float(err.max()) if err.size else None,
        "rate_error_vs_analytic_max_pct": {
            "float": float(err_an_fl.max()) if err_an_fl.size else None,
            "fixed": float(err_an_fx.max()) if err_an_fx.size else None,
        },
        "rate_curve": {
            "currents_pA": lif.currents.tolist(),
            "analytic_hz": json_list(analytic.round(4)),
            "float_hz": json_list(fl.round(4)),
            "fixed_hz": json_list(fx.round(4)),
            **({"rtl_hz": json_list(lif.rates("const", "rtl").round(4))} if have_rtl_data else {}),
        },
        "rates_not_measured_pA": lif.currents[unmeasured].tolist(),
        "min_duration_ms": min_duration(lif.pars, lif.currents),
        "membrane_error_max_mV": float(np.abs(tr_fx[:upto] - tr_fl[:upto]).max()),
        "membrane_lsb_mV": lif.q.lsb,
        "noise": {"sig": lif.sig, "gain": lif.chip_noise.config.noise.gain,
                  "std_per_step_mV": lif.q.noise_std(lif.chip_noise.config.noise.gain)},
        "checks": checks,
    }
    run_s = summary["rtl_seconds"]
    if summary["rtl_updates"] and run_s > 0 and sim is not None:
        summary["updates_per_s"] = round(summary["rtl_updates"] / run_s, 1)
    summary["ok"] = bool(rtl_exact and all(c["ok"] for c in checks))
    failed = not rtl_exact or any(not c["ok"] and c.get("status") != "not measured"
                                  for c in checks)
    summary["result"] = "OK" if summary["ok"] else "FAILED" if failed else "INCOMPLETE"
    result = DemoResult(summary, ux, lif)
    if plots:
        result.plots = plotting.demo_plots(result, out, trace_current=TRACE_CURRENT,
                                           noise_trace_current=NOISE_TRACE_CURRENT,
                                           progress=progress)
        summary["plots"] = {k: str(v) for k, v in result.plots.items()}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return result
