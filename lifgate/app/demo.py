"""The experiments of ``lifgate demo``: both seed notebooks on float, fixed point and RTL.

Everything here is reusable on its own (``examples/explore.ipynb`` and the tests use it):

* :func:`unitless_experiment`: the unit-free seed neurons on one array, one parameter group
  each: the Euler LIF (group 0, tau 20, threshold 10, input 11: spikes at steps 47 and 94), the
  sinabs-style IAF with bias 0.025 (group 1: 2 spikes in 100 steps) and the IAF activation
  sweep (groups 2 to 51: bias -5 to 4.8 in steps of 0.2, spike count against bias).
* :func:`lif_experiments`: the biophysical LIF with the notebook's ``default_pars``: one neuron
  per constant current (0 to 500 pA, as per-group bias), the same with the on-chip noise source,
  and the same with the float reference's Gaussian white noise streamed in as input current.
* :class:`ArrayRun`: one run of the array (a :class:`~lifgate.config.Config`, a number of steps
  and optional input currents) with its golden-model result and, once :func:`run_rtl` has run
  it, the RTL's spikes and membrane values and the bit-exact verdict.
* :func:`rtl_run` / :func:`run_rtl`: run configurations on the generated RTL (Verilator or
  Icarus through ``lifgate.sim``, or Amaranth's simulator through ``lifgate.sim.driver``).
* :func:`run_demo`: everything, plots and the summary; what ``lifgate demo`` calls.

Fixed-point scales come from :mod:`lifgate.compilers.quantize`; the float references from
:mod:`lifgate.golden.float_ref`; the fixed-point results from :mod:`lifgate.golden.fixed`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lifgate.app.progress import progress_bar, ticker
from lifgate.checks import check_number, output_dir, output_file
from lifgate.compilers.quantize import Quantized, quantize, quantize_euler, quantize_iaf
from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, NoiseParams, ResetMode
from lifgate.golden import float_ref
from lifgate.golden.fixed import Result, simulate

__all__ = [
    "PLOTS",
    "SIMS",
    "ArrayRun",
    "check_outputs",
    "DemoResult",
    "LIFExperiments",
    "RTLOutcome",
    "UnitlessExperiment",
    "lif_experiments",
    "min_duration",
    "notebook_trace",
    "rate_hz",
    "rtl_run",
    "run_demo",
    "run_rtl",
    "unitless_experiment",
]

#: Simulators ``lifgate demo --sim`` accepts; the first is the default.
SIMS = ("verilator", "icarus", "amaranth")
#: The PNG files the demo writes into its output folder (``NAME.png``).
PLOTS = ("euler_lif", "lif_membrane", "lif_rate", "lif_noise", "iaf")
#: Legal length of the biophysical runs [ms].
DURATION_RANGE = (1.0, 2000.0)

#: The Euler LIF seed: tau, threshold, reset, input, steps, and where the notebook spikes.
EULER = {"tau": 20.0, "v_th": 10.0, "v_reset": 0.0, "i_syn": 11.0, "steps": 100}
EULER_SPIKES = [47, 94]
#: The IAF seed: bias of the membrane trace, and its spike count in 100 steps.
IAF_BIAS = 0.025
IAF_STEPS = 100
IAF_SPIKES = 2
#: Constant currents of the rate curve [pA], one neuron each.
RATE_CURRENTS = np.arange(0.0, 501.0, 10.0)
#: Current of the membrane trace under constant input [pA] (on the rate-curve grid).
TRACE_CURRENT = 300.0
#: Mean current of the membrane trace with noise [pA]: just above the rheobase, where noise
#: matters most (the ideal neuron fires slowly, the noisy one irregularly).
NOISE_TRACE_CURRENT = 210.0
#: Gaussian white noise amplitude ``sig`` of ``float_ref.my_GWN`` [pA sqrt(s)]: a per-step
#: kick of 0.25 mV with the default parameters.
NOISE_SIG = 2.5
#: Seed of the float reference noise (neuron ``k`` uses ``NOISE_SEED + k``) and of the chip's.
NOISE_SEED = 2020


# Array runs ---------------------------------------------------------------------------------


@dataclass
class RTLOutcome:
    """What the RTL did on one :class:`ArrayRun`.

    Members
    -------
    sim : str
        The simulator.
    spikes : bool array [steps, N] or None
        The RTL's spikes (None if the backend only reports the verdict).
    v : int array [steps, N] or None
        The RTL's membrane ``v'`` after each step.
    bit_exact : bool
        Every spike and membrane value equals the golden model's.
    mismatch : dict or None
        The first difference (step, neuron, field, expected, got) if not bit-exact.
    updates : int
        Neuron updates compared (steps x neurons).
    cycles : int
        Clock cycles the run took in simulation (0 if unknown).
    seconds : float
        Wall-clock time of the simulation.
    """

    sim: str
    spikes: np.ndarray | None
    v: np.ndarray | None
    bit_exact: bool
    mismatch: dict | None
    updates: int
    cycles: int = 0
    seconds: float = 0.0


@dataclass
class ArrayRun:
    """One run of the whole array: configuration, steps, input, golden result, RTL outcome.

    Members
    -------
    name : str
    config : Config
    steps : int
    currents : int array [steps, N] or None
        Input currents streamed in (None: input stream off).
    golden : Result
        :func:`lifgate.golden.fixed.simulate` of the run (computed on construction).
    rtl : RTLOutcome or None
        Set by :func:`run_rtl`.
    """

    name: str
    config: Config
    steps: int
    currents: np.ndarray | None = None
    golden: Result | None = None
    rtl: RTLOutcome | None = None

    def __post_init__(self):
        if self.golden is None:
            self.golden = simulate(self.config, self.steps, self.currents)

    @property
    def updates(self) -> int:
        return self.steps * self.config.shape.neurons

    def check_rtl(self, spikes, v) -> tuple[bool, dict | None]:
        """Compare RTL outputs with the golden model; ``(bit_exact, first mismatch)``."""
        g = self.golden
        spikes = np.asarray(spikes)
        v = np.asarray(v)
        if spikes.shape != g.spikes.shape or v.shape != g.v.shape:
            return False, {"field": "shape", "expected": list(g.spikes.shape),
                           "got": [list(spikes.shape), list(v.shape)]}
        diff = (spikes != g.spikes) | (v != g.v)
        if not diff.any():
            return True, None
        t, n = (int(x) for x in np.argwhere(diff)[0])
        return False, {
            "step": t, "neuron": n,
            "expected": {"spike": int(g.spikes[t, n]), "v": int(g.v[t, n])},
            "got": {"spike": int(spikes[t, n]), "v": int(v[t, n])},
            "mismatches": int(diff.sum()),
        }

    def spikes_of(self, source: str) -> np.ndarray:
        """Spikes [steps, N] of ``"fixed"`` (golden model) or ``"rtl"``."""
        if source == "fixed":
            return self.golden.spikes
        if source == "rtl" and self.rtl is not None and self.rtl.spikes is not None:
            return self.rtl.spikes
        raise KeyError(f"no {source!r} spikes for run {self.name!r}")

    def v_of(self, source: str) -> np.ndarray:
        if source == "fixed":
            return self.golden.v
        if source == "rtl" and self.rtl is not None and self.rtl.v is not None:
            return self.rtl.v
        raise KeyError(f"no {source!r} membrane for run {self.name!r}")


def notebook_trace(config: Config, spikes: np.ndarray, v: np.ndarray, neuron: int) -> np.ndarray:
    """The notebook-style membrane trace of one neuron: ``steps + 1`` integers.

    Element ``t < steps`` is ``h`` of step ``t`` (``docs/numerics.md``, "Outputs"): the
    membrane the step starts from, but ``v_reset`` at a spike step and during the refractory
    period (``v - v_th`` at a spike step in SUBTRACT mode). The last element is the membrane
    after the last step, integrated but not yet tested, like the notebooks' last sample.
    """
    p = config.neuron_params(neuron)
    before = np.concatenate([[p.v_init], np.asarray(v)[:, neuron]]).astype(np.int64)
    trace = before.copy()
    fired = np.flatnonzero(np.asarray(spikes)[:, neuron])
    if p.reset_mode == ResetMode.VALUE:
        for s in fired:
            trace[s:s + p.t_ref + 1] = p.v_reset
        trace[-1] = before[-1]
    else:
        trace[fired] = before[fired] - p.v_th
    return trace


def rate_hz(spikes: np.ndarray, dt_ms: float, silent=None) -> np.ndarray:
    """``1 / mean ISI`` [Hz] of every column of ``spikes`` [steps, K]; NaN below two spikes.

    Fewer than two spikes measure no rate (NaN), which is not 0 Hz: a neuron at 30 Hz fires
    once in 40 ms. Where ``silent`` (bool [K]) says the neuron provably never fires (constant
    current at or below the rheobase) and it did not fire after step 0, the rate is 0 Hz.
    """
    spikes = np.asarray(spikes)
    rates = float_ref.isi_rates(spikes, dt=dt_ms) * 1000.0
    if silent is not None:
        quiet = spikes[1:].sum(axis=0) == 0
        rates = np.where(np.isnan(rates) & np.asarray(silent, bool) & quiet, 0.0, rates)
    return rates


# The unit-free seed neurons -------------------------------------------------------------------


@dataclass
class UnitlessExperiment:
    """The Euler LIF and the IAF seeds, on one array run (one group per neuron model).

    Members
    -------
    euler_q, iaf_q : Quantized
        Fixed-point scales of the Euler LIF and of the IAF.
    run : ArrayRun
        ``IAF_STEPS`` steps; group 0 the Euler LIF, group 1 the IAF with ``IAF_BIAS``,
        groups ``2 ..`` the IAF sweep.
    euler : float_ref.EulerTrace
        The float Euler LIF.
    iaf : float_ref.IAFTrace
        The float IAF (sinabs, multi-spike) with ``IAF_BIAS``.
    iaf_single : float_ref.IAFTrace
        The float IAF emitting at most one spike per step, like lifgate.
    biases : float array [K]
        The sweep's biases (the notebook's ``np.arange(-5, 5, 0.2)``).
    sweep_sinabs, sweep_single : int arrays [K]
        Float spike counts of the sweep: sinabs (multi-spike) and single-spike.
    """

    euler_q: Quantized
    iaf_q: Quantized
    run: ArrayRun
    euler: float_ref.EulerTrace
    iaf: float_ref.IAFTrace
    iaf_single: float_ref.IAFTrace
    biases: np.ndarray
    sweep_sinabs: np.ndarray
    sweep_single: np.ndarray

    EULER_GROUP = 0
    IAF_GROUP = 1
    SWEEP_GROUP = 2

    def neuron(self, group: int) -> int:
        return group * self.run.config.shape.group_size

    @property
    def sweep_neurons(self) -> np.ndarray:
        return (self.SWEEP_GROUP + np.arange(self.biases.size)) * self.run.config.shape.group_size

    def euler_spikes(self, source: str = "fixed") -> list[int]:
        if source == "float":
            return list(self.euler.spikes)
        return np.flatnonzero(self.run.spikes_of(source)[:, self.neuron(self.EULER_GROUP)]).tolist()

    def euler_trace(self, source: str = "fixed") -> np.ndarray:
        """Euler LIF membrane (unit-free), ``steps + 1`` values like the notebook's ``vmem``."""
        if source == "float":
            return self.euler.v
        r = self.run
        n = self.neuron(self.EULER_GROUP)
        return self.euler_q.int_to_mV(
            notebook_trace(r.config, r.spikes_of(source), r.v_of(source), n))

    def iaf_spikes(self, source: str = "fixed") -> list[int]:
        if source == "float":
            return self.iaf.spike_steps
        return np.flatnonzero(self.run.spikes_of(source)[:, self.neuron(self.IAF_GROUP)]).tolist()

    def iaf_trace(self, source: str = "fixed") -> np.ndarray:
        """IAF membrane after each step (unit-free), ``steps + 1`` values starting at 0.

        The lifgate value is ``v'``, which equals sinabs' ``neuron.state`` after the same step:
        both subtract the threshold for the previous step's spike before adding the input.
        """
        if source == "float":
            return self.iaf.v
        n = self.neuron(self.IAF_GROUP)
        v = self.run.v_of(source)[:, n]
        return self.iaf_q.int_to_mV(np.concatenate([[0], v]))

    def sweep_counts(self, source: str = "fixed") -> np.ndarray:
        if source == "sinabs":
            return self.sweep_sinabs
        if source == "float":
            return self.sweep_single
        return self.run.spikes_of(source)[:, self.sweep_neurons].sum(axis=0)


def unitless_experiment(shape: ArrayShape | None = None) -> UnitlessExperiment:
    """Build the unit-free run (Euler LIF, IAF trace, IAF sweep) and its float references."""
    shape = shape or ArrayShape()
    biases = np.arange(-5, 5, 0.2)
    need = UnitlessExperiment.SWEEP_GROUP + biases.size
    if shape.groups < need:
        raise ConfigError(
            f"the unit-free demo needs at least {need} parameter groups (one per neuron model "
            f"and bias), not {shape.groups}"
        )
    eq = quantize_euler(EULER["tau"], EULER["v_th"], EULER["v_reset"], steps=EULER["steps"],
                        shape=shape)
    iq = quantize_iaf(1.0, 5.0, IAF_STEPS, shape=shape)
    euler_p = eq.with_input(EULER["i_syn"]).params[0]
    params = [euler_p, iq.with_input(IAF_BIAS).params[0]]
    params += [iq.with_input(float(b)).params[0] for b in biases]
    params += [iq.params] * (shape.groups - len(params))
    config = Config(shape=shape, params=tuple(params), noise=NoiseParams())
    run = ArrayRun("unitless", config, IAF_STEPS)
    _, sinabs = float_ref.iaf_sweep(biases, IAF_STEPS)
    _, single = float_ref.iaf_sweep(biases, IAF_STEPS, multi_spike=False)
    return UnitlessExperiment(
        euler_q=eq,
        iaf_q=iq,
        run=run,
        euler=float_ref.euler_lif(EULER["tau"], EULER["v_th"], EULER["v_reset"], EULER["i_syn"],
                                  EULER["steps"]),
        iaf=float_ref.iaf(IAF_BIAS, IAF_STEPS),
        iaf_single=float_ref.iaf(IAF_BIAS, IAF_STEPS, multi_spike=False),
        biases=biases,
        sweep_sinabs=sinabs,
        sweep_single=single,
    )


# The biophysical LIF ---------------------------------------------------------------------------


@dataclass
class LIFExperiments:
    """The notebook's biophysical LIF: rate curve, membrane traces, white noise.

    Members
    -------
    q : Quantized
        The fixed-point scales (:func:`lifgate.compilers.quantize.quantize` of ``pars``).
    pars : dict
        The float parameters (``float_ref.default_pars`` with overrides).
    currents : float array [K]
        Constant currents [pA], neuron ``k`` (group ``k``) gets ``currents[k]``.
    sig : float
        White noise amplitude (``my_GWN``'s ``sig``).
    const : ArrayRun
        Constant currents as per-group bias, no noise.
    chip_noise : ArrayRun
        The same with the on-chip noise source (gain ``q.noise_gain(sig)``).
    float_noise : ArrayRun
        Mean currents plus the float reference's white noise, quantized and streamed in.
    float_const, float_noisy : float_ref.LIFBatch
        The float model with constant currents and with white noise.
    noise_currents : float array [Lt, K]
        The float white-noise currents [pA] (``my_GWN``, seed ``NOISE_SEED + k``).
    """

    q: Quantized
    pars: dict
    currents: np.ndarray
    sig: float
    const: ArrayRun
    chip_noise: ArrayRun
    float_noise: ArrayRun
    float_const: float_ref.LIFBatch
    float_noisy: float_ref.LIFBatch
    noise_currents: np.ndarray

    @property
    def dt(self) -> float:
        return self.pars["dt"]

    @property
    def steps(self) -> int:
        return self.const.steps

    @property
    def time_ms(self) -> np.ndarray:
        """Time axis of the traces [ms] (``steps + 1`` samples, the notebook's ``range_t``)."""
        return np.arange(self.steps + 1) * self.dt

    def neuron_of(self, current: float) -> int:
        k = int(np.argmin(np.abs(self.currents - current)))
        if not math.isclose(self.currents[k], current):
            raise ValueError(f"{current} pA is not one of the demo's currents")
        return k * self.const.config.shape.group_size

    def _k(self, n: int) -> int:
        return n // self.const.config.shape.group_size

    @property
    def neurons(self) -> np.ndarray:
        return np.arange(self.currents.size) * self.const.config.shape.group_size

    def analytic_rates(self) -> np.ndarray:
        return np.asarray(float_ref.analytic_rate(self.pars, self.currents), dtype=float)

    def rates(self, run: str, source: str) -> np.ndarray:
        """Rates [Hz] per current of ``run`` (``const``, ``chip_noise``, ``float_noise``) on
        ``source`` (``float``, ``fixed``, ``rtl``). ``float`` of ``chip_noise`` is the float
        model with the float white noise (the chip's noise has no float twin).

        NaN where the neuron fired fewer than two spikes (no rate measured), except for
        constant currents at or below the rheobase that stayed silent: 0 Hz."""
        silent = (self.analytic_rates() == 0) if run == "const" else None
        if source == "float":
            batch = self.float_const if run == "const" else self.float_noisy
            return rate_hz(batch.spikes[: self.steps], self.dt, silent)
        r = getattr(self, run)
        return rate_hz(r.spikes_of(source)[:, self.neurons], self.dt, silent)

    def unmeasurable(self) -> np.ndarray:
        """Currents [K] where the LIF fires but too slowly for two spikes in the run."""
        t2 = np.asarray(float_ref.second_spike_time(self.pars, self.currents), dtype=float)
        window = (self.steps - 1) * self.dt
        return (self.analytic_rates() > 0) & (t2 * 1.02 + self.dt > window)

    def trace_mV(self, run: str, source: str, current: float) -> np.ndarray:  # noqa: N802
        """Notebook-style membrane trace [mV] of the neuron with ``current``."""
        n = self.neuron_of(current)
        if source == "float":
            batch = self.float_const if run == "const" else self.float_noisy
            return batch.v[:, self._k(n)]
        r = getattr(self, run)
        return self.q.int_to_mV(
            notebook_trace(r.config, r.spikes_of(source), r.v_of(source), n))

    def spike_steps(self, run: str, source: str, current: float) -> np.ndarray:
        n = self.neuron_of(current)
        if source == "float":
            batch = self.float_const if run == "const" else self.float_noisy
            return np.flatnonzero(batch.spikes[:, self._k(n)])
        return np.flatnonzero(getattr(self, run).spikes_of(source)[:, n])


def lif_config(q: Quantized, currents, *, gain: int = 0, seed: int = NOISE_SEED) -> Config:
    """One group per current [pA] (as bias), the rest idle; noise ``gain``."""
    shape = q.shape
    currents = np.asarray(currents, dtype=float)
    if currents.size > shape.groups:
        raise ConfigError(
            f"{currents.size} currents need as many parameter groups, the shape has {shape.groups}"
        )
    params = [q.with_input(float(c)).params[0] for c in currents]
    params += [q.params] * (shape.groups - len(params))
    return Config(shape=shape, params=tuple(params), noise=NoiseParams(seed=seed, gain=gain))


def lif_experiments(pars: dict | None = None, *, shape: ArrayShape | None = None,
                    currents=None, sig: float = NOISE_SIG, T: float | None = None,  # noqa: N803
                    progress: bool = False) -> LIFExperiments:
    """Build the biophysical LIF runs and their float references.

    ``pars`` are the notebook's parameters (``float_ref.default_pars`` names; defaults for the
    missing ones), ``T`` overrides the duration [ms]. The float model runs ``len(range_t)``
    samples; the array runs one step fewer (the notebook's last sample is integrated, never
    tested), so traces line up sample for sample.
    """
    pars = dict(pars or {})
    pars.pop("range_t", None)
    if T is not None:
        pars["T"] = T
    fpars = float_ref.default_pars(**pars)
    q = quantize({k: v for k, v in fpars.items() if k != "range_t"}, shape=shape)
    currents = RATE_CURRENTS if currents is None else np.asarray(currents, dtype=float)
    lt = fpars["range_t"].size
    steps = lt - 1
    if steps < 1:
        raise ConfigError(f"parameter 'T' must be at least 2 * dt, not {fpars['T']!r}")
    bar = progress_bar(total=5, desc="LIF float + fixed point", unit="run", enabled=progress)
    float_const = float_ref.lif_batch(fpars, currents)
    bar.update()
    noise = np.stack([float_ref.my_GWN(fpars, float(c), sig, myseed=NOISE_SEED + k)
                      for k, c in enumerate(currents)], axis=1)
    float_noisy = float_ref.lif_batch(fpars, noise)
    bar.update()
    const = ArrayRun("lif_const", lif_config(q, currents), steps)
    bar.update()
    gain = q.noise_gain(sig)
    chip = ArrayRun("lif_chip_noise", lif_config(q, currents, gain=gain), steps)
    bar.update()
    stream = np.zeros((steps, q.shape.neurons), dtype=np.int64)
    n = np.arange(currents.size) * q.shape.group_size
    stream[:, n] = q.current_to_int(noise[:steps])
    # The stream carries the whole current, so the groups get no bias.
    base = lif_config(q, np.zeros(currents.size))
    float_noise = ArrayRun("lif_float_noise", base, steps, stream)
    bar.update()
    bar.close()
    return LIFExperiments(q, fpars, currents, sig, const, chip, float_noise, float_const,
                          float_noisy, noise)


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

    All runs must share one :class:`ArrayShape` (one Verilog build). Returns
    ``{"sim", "build_seconds", "seconds"}``.
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
    if sim == "amaranth":
        info = _run_amaranth(runs, progress)
    else:
        info = _run_cocotb(runs, sim, build_dir, progress)
    info["sim"] = sim
    info["seconds"] = time.perf_counter() - t0
    return info


def _run_amaranth(runs, progress) -> dict:
    from lifgate.sim.driver import simulate_rtl

    bar = progress_bar(total=sum(r.updates for r in runs), desc="RTL (amaranth)",
                       unit="updates", unit_scale=True, enabled=progress)
    for r in runs:
        t0 = time.perf_counter()
        script = [("clear", r.config), ("run", r.steps)
                  + (() if r.currents is None else (r.currents,))]
        res = simulate_rtl(r.config, script)[0]
        ok, mismatch = r.check_rtl(res.spikes, res.v)
        r.rtl = RTLOutcome("amaranth", res.spikes, res.v, ok, mismatch, r.updates,
                           res.cycles, time.perf_counter() - t0)
        bar.update(r.updates)
    bar.close()
    return {"build_seconds": 0.0}


def _run_cocotb(runs, sim, build_dir, progress) -> dict:
    """Icarus or Verilator through ``lifgate.sim.runner``: one build, one cocotb session.

    Each run becomes a :class:`lifgate.sim.cases.SimCase` whose stimulus (if any) is an
    ``.npy`` file and whose outputs the testbench writes to an ``.npz`` file; the testbench
    compares every beat with the golden model itself, and this function compares the returned
    arrays once more (:meth:`ArrayRun.check_rtl`).
    """
    from lifgate.sim import runner
    from lifgate.sim.cases import Segment, SimCase

    shape = runs[0].config.shape
    root = Path(build_dir or "build/demo").resolve()
    model_dir = root / f"{sim}-{runner.shape_key(shape, True)}"
    io_dir = root / f"{sim}-io"
    try:
        io_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # checked up front, but a file system can still refuse (/proc, full)
        raise ConfigError(f"build_dir: cannot create {str(io_dir)!r}: {e.strerror or e}") from None
    t0 = time.perf_counter()
    model = ticker(
        lambda: runner.build(sim, shape, build_dir=model_dir, membrane=True),
        f"building the {sim} model in {model_dir} (reused next time)", enabled=progress)
    build_seconds = time.perf_counter() - t0
    cases = []
    for k, r in enumerate(runs):
        stim = None
        if r.currents is not None:
            stim = io_dir / f"{k}-{r.name}-stimulus.npy"
            np.save(stim, np.ascontiguousarray(r.currents, dtype=np.int64))
        outputs = io_dir / f"{k}-{r.name}-outputs.npz"
        outputs.unlink(missing_ok=True)
        cases.append(SimCase(name=r.name, config=r.config, segments=(Segment(r.steps),),
                             stimulus=None if stim is None else str(stim), outputs=str(outputs)))
    bar = progress_bar(total=sum(r.updates for r in runs), desc=f"RTL ({sim})",
                       unit="updates", unit_scale=True, enabled=progress)
    results = runner.run(model, cases, test_dir=io_dir / "session",
                         progress=lambda res: bar.update(res.get("updates", 0)))
    bar.close()
    by_name = {res["name"]: res for res in results}
    for r, case in zip(runs, cases, strict=True):
        res = by_name.get(r.name, {})
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
            # The testbench's own verdict (beat order, X/Z) must agree.
            if ok and (res.get("mismatch") is not None or res.get("xz", 0)):
                ok, mismatch = False, res.get("mismatch") or {"field": "X/Z",
                                                              "cycles": res.get("xz")}
        r.rtl = RTLOutcome(sim, spikes, v, ok, mismatch, r.updates, int(res.get("cycles", 0)),
                           float(res.get("seconds", 0.0)))
    return {"build_seconds": build_seconds}


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


def _checks(ux: UnitlessExperiment, lif: LIFExperiments, sources) -> list[dict]:
    """Seed checks: each ``{"name", "expected", <source>: value..., "ok"}``."""
    checks = []

    def add(name, expected, values, ok):
        checks.append({"name": name, "expected": expected, **values, "ok": bool(ok)})

    euler = {s: ux.euler_spikes(s) for s in ("float", *sources)}
    add("Euler LIF spike steps", EULER_SPIKES, euler,
        all(v == EULER_SPIKES for v in euler.values()))
    iaf = {s: len(ux.iaf_spikes(s)) for s in ("float", *sources)}
    add(f"IAF spikes in {IAF_STEPS} steps, bias {IAF_BIAS}", IAF_SPIKES, iaf,
        all(v == IAF_SPIKES for v in iaf.values()))
    # ReLU: silent for bias <= 0, and the binary-spike count follows the single-spike float
    # model within the one-step delay of lifgate's test-then-integrate order.
    relu = {}
    ok = True
    for s in sources:
        c = ux.sweep_counts(s)
        silent = bool((c[ux.biases <= 1e-9] == 0).all())
        dev = int(np.abs(c - ux.sweep_single).max())
        relu[s] = f"max |count - float| = {dev}"
        ok &= silent and dev <= 1 and bool((np.diff(c) >= 0).all())
    add("IAF activation: ReLU, within 1 spike of float", "<= 1", relu, ok)
    # Rate curve: the fixed-point mean ISI within one step of the float model's, and both
    # models measure a rate wherever the LIF fires twice in the run (0 Hz where it is silent).
    # Currents where the LIF fires too slowly for two spikes in the run are not measured: the
    # check then cannot pass, whatever the rest shows.
    isi = {}
    ok = True
    fl = lif.rates("const", "float")
    unmeasured = lif.unmeasurable()
    need = ~unmeasured
    for s in sources:
        fx = lif.rates("const", s)
        both = np.isfinite(fl) & np.isfinite(fx) & (fl > 0) & (fx > 0)
        dev = np.abs(1000.0 / fx[both] - 1000.0 / fl[both]) / lif.dt
        worst = float(dev.max()) if dev.size else 0.0
        isi[s] = f"{worst:.2f} steps" if dev.size else "no rate"
        ok &= bool(np.isfinite(fl[need]).all() and np.isfinite(fx[need]).all())
        ok &= bool(((fl[need] > 0) == (fx[need] > 0)).all()) and worst <= 1.0 + 1e-9
    add("LIF rate curve: mean ISI within 1 step of float", "<= 1 step", isi, ok)
    if unmeasured.any() and ok:
        checks[-1]["ok"] = False
        checks[-1]["status"] = "not measured"
        checks[-1]["not_measured_pA"] = lif.currents[unmeasured].tolist()
    rheo = lif.q.check_rheobase()
    add(f"LIF rheobase {rheo['current']:g} pA stays below threshold", "no spike",
        {"fixed": f"margin {rheo['margin']:.4f} mV"}, rheo["ok"])
    return checks


def min_duration(pars: dict | None = None, currents=None) -> float:
    """Shortest biophysical run [ms] that measures the rate at every firing current.

    A rate is ``1 / mean ISI``: it needs two spikes within the tested steps (``T - 2 dt``),
    with the 2 % margin of :meth:`LIFExperiments.unmeasurable`. Whole ms, rounded up.
    """
    fp = float_ref.default_pars(**{k: v for k, v in (pars or {}).items() if k != "range_t"})
    cur = RATE_CURRENTS if currents is None else np.asarray(currents, dtype=float)
    t2 = np.asarray(float_ref.second_spike_time(fp, cur), dtype=float)
    t2 = t2[np.isfinite(t2)]
    if not t2.size:
        return 0.0
    return float(math.ceil(t2.max() * 1.02 + 3 * fp["dt"]))


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
             plots: bool = True) -> DemoResult:
    """Run the whole demo on the default :class:`ArrayShape`; write plots into ``out``.

    ``quick`` shortens the biophysical runs from the notebook's 500 ms to 100 ms;
    ``duration`` [ms] sets their length explicitly. ``sim=None`` skips the RTL (the result is
    then not ``ok``). ``build_dir`` holds the simulator build (default ``build/demo``).
    """
    if sim is not None and sim not in SIMS:
        raise ConfigError(f"parameter 'sim' must be one of {', '.join(SIMS)}, not {sim!r}")
    if duration is not None:
        duration = check_number("duration", duration, *DURATION_RANGE, unit="ms")
    out = Path(out or "lifgate-demo")
    build_dir = Path(build_dir or "build/demo")
    check_outputs(out, build_dir, sim=sim, plots=plots)  # before any work
    t0 = time.perf_counter()
    shape = ArrayShape()
    ux = unitless_experiment(shape)
    if duration is None:
        duration = 100.0 if quick else None
    lif = lif_experiments(shape=shape, T=duration, progress=progress)
    runs = [ux.run, lif.const, lif.chip_noise, lif.float_noise]
    if sim is None:  # no RTL (exploring the models only): not a passing demo
        rtl_info = {"sim": None, "build_seconds": 0.0, "seconds": 0.0}
    else:
        rtl_info = run_rtl(runs, sim=sim, build_dir=build_dir, progress=progress)
    sources = ["fixed"]
    have_rtl_data = all(r.rtl is not None and r.rtl.spikes is not None for r in runs)
    if have_rtl_data:
        sources.append("rtl")
    checks = _checks(ux, lif, sources)
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
            "analytic_hz": _nones(analytic.round(4)),
            "float_hz": _nones(fl.round(4)),
            "fixed_hz": _nones(fx.round(4)),
            **({"rtl_hz": _nones(lif.rates("const", "rtl").round(4))} if have_rtl_data else {}),
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
        from lifgate.app import plots as plotting

        result.plots = plotting.demo_plots(result, out, progress=progress)
        summary["plots"] = {k: str(v) for k, v in result.plots.items()}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def shape_params(shape: ArrayShape) -> NeuronParams:
    """A parameter set legal for ``shape`` (for printing a shape through ``Config``)."""
    return NeuronParams(leak_mode=shape.leak_modes[0], leak=0)


def _nones(values) -> list:
    """A float array as a JSON list: NaN (no rate measured) becomes None."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.2f} %"


def format_summary(summary: dict) -> str:
    """The summary table ``lifgate demo`` prints."""
    s = summary["shape"]
    lines = [
        f"lifgate demo: {s['neurons']} neurons, {s['lanes']} lanes, {s['groups']} groups, "
        f"{s['v_width']}-bit membrane; RTL on {summary['sim'] or 'nothing (not run)'}; "
        f"biophysical runs {summary['duration_ms']:g} ms",
        "",
    ]
    checks = summary["checks"]
    cols = [c for c in ("float", "fixed", "rtl") if any(c in ch for ch in checks)]
    head = ["seed check", "expected", *cols, "result"]
    rows = []
    for c in checks:
        rows.append([c["name"], _fmt(c["expected"]), *(_fmt(c.get(k, "")) for k in cols),
                     "ok" if c["ok"] else c.get("status", "FAIL")])
    lines += _table(head, rows)
    lines.append("")
    head = ["RTL run", "steps", "updates", "spikes", "input", "noise gain", "cycles", "result"]
    rows = []
    for r in summary["rtl_runs"]:
        rows.append([r["name"], str(r["steps"]), f"{r['updates']:,}", f"{r['spikes']:,}",
                     "stream" if r["input_stream"] else "bias", str(r["noise_gain"]),
                     f"{r['cycles']:,}" if r["cycles"] else "-",
                     "bit-exact" if r["bit_exact"]
                     else _mismatch(r["mismatch"]) if r["rtl_ran"] else "not run"])
    lines += _table(head, rows)
    verdict = ("bit-exact" if summary["rtl_bit_exact"] else
               "MISMATCH" if summary["sim"] else "NOT RUN")
    lines.append(
        f"RTL vs golden model: {verdict} on "
        f"{summary['rtl_updates']:,} neuron updates ({summary['sim']}: build "
        f"{summary['rtl_build_seconds']:.1f} s, runs {summary['rtl_seconds']:.1f} s)"
    )
    lines.append("")
    an = summary["rate_error_vs_analytic_max_pct"]
    lines.append(
        f"fixed point vs float: rate error max {_pct(summary['rate_error_max_pct'])} "
        f"(where both have a rate); membrane error max "
        f"{summary['membrane_error_max_mV']:.4f} mV before the first spike at "
        f"{TRACE_CURRENT:g} pA (LSB {summary['membrane_lsb_mV'] * 1000:.3g} uV)"
    )
    lines.append(
        f"vs analytic rate: float {_pct(an['float'])}, fixed {_pct(an['fixed'])} "
        "(Euler discretisation at dt = 0.1 ms)"
    )
    missing = summary.get("rates_not_measured_pA") or []
    if missing:
        lines.append(
            f"no rate at {_span(missing)} pA: fewer than two spikes in "
            f"{summary['duration_ms']:g} ms (a rate is 1 / mean ISI); --duration "
            f"{summary['min_duration_ms']:g} or more measures every current"
        )
    n = summary["noise"]
    lines.append(
        f"white noise sig {n['sig']:g}: per-step kick {n['std_per_step_mV']:.3f} mV, "
        f"on-chip noise gain {n['gain']}"
    )
    if summary.get("plots"):
        lines.append("")
        lines.append("plots: " + ", ".join(summary["plots"].values()))
    lines.append("")
    result = summary.get("result") or ("OK" if summary["ok"] else "FAILED")
    if result == "INCOMPLETE":
        result += (f": the rate curve is not measured at {_span(missing)} pA; "
                   f"use --duration {summary['min_duration_ms']:g} or more")
    lines.append(f"result: {result}")
    return "\n".join(lines)


def _span(values) -> str:
    return f"{values[0]:g}" if len(values) == 1 else f"{values[0]:g} to {values[-1]:g}"


def _fmt(x) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(str(v) for v in x) + "]"
    return str(x)


def _mismatch(m) -> str:
    if not m:
        return "MISMATCH"
    return f"MISMATCH at step {m.get('step')}, neuron {m.get('neuron')}"


def _table(head, rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return out


def summary_json(summary: dict) -> str:
    """The summary as strict JSON (no NaN: a rate not measured is null)."""
    return json.dumps(summary, indent=2, allow_nan=False)
