"""The experiments of ``lifgate demo``: both seed notebooks on the float and fixed-point models.

Pure functions over :mod:`lifgate.golden.float_ref` and :mod:`lifgate.golden.fixed` (no RTL, no
files); :mod:`lifgate.app.demo` runs their :class:`ArrayRun` objects on the RTL and
:mod:`lifgate.app.report` formats the outcome.

* :func:`unitless_experiment`: the unit-free seed neurons on one array, one parameter group
  each: the Euler LIF (group 0, tau 20, threshold 10, input 11: spikes at steps 47 and 94), the
  sinabs-style IAF with bias 0.025 (group 1: 2 spikes in 100 steps) and the IAF activation
  sweep (groups 2 to 51: bias -5 to 4.8 in steps of 0.2, spike count against bias).
* :func:`lif_experiments`: the biophysical LIF with the notebook's ``default_pars``: one neuron
  per constant current (0 to 500 pA, as per-group bias), the same with the on-chip noise source,
  and the same with the float reference's Gaussian white noise streamed in as input current.
* :class:`ArrayRun`: one run of the array (a :class:`~lifgate.config.Config`, a number of steps
  and optional input currents) with its golden-model result and, once the RTL ran it, the RTL's
  spikes and membrane values and the bit-exact verdict (:class:`RTLOutcome`).
* :func:`seed_checks`: the seed notebooks' checks over these experiments.

Fixed-point scales come from :mod:`lifgate.compilers.quantize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lifgate.app.progress import progress_bar
from lifgate.compilers.quantize import Quantized, quantize, quantize_euler, quantize_iaf
from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, NoiseParams, ResetMode
from lifgate.golden import float_ref
from lifgate.golden.fixed import Result, simulate

__all__ = [
    "EULER",
    "EULER_SPIKES",
    "IAF_BIAS",
    "IAF_SPIKES",
    "IAF_STEPS",
    "NOISE_SEED",
    "NOISE_SIG",
    "NOISE_TRACE_CURRENT",
    "RATE_CURRENTS",
    "TRACE_CURRENT",
    "ArrayRun",
    "LIFExperiments",
    "RTLOutcome",
    "SpikeCounts",
    "UnitlessExperiment",
    "lif_config",
    "lif_experiments",
    "min_duration",
    "notebook_trace",
    "rate_hz",
    "rate_hz_counts",
    "seed_checks",
    "shape_params",
    "unitless_experiment",
]

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
    v_neurons : int array [K] or None
        The neurons whose membrane ``v`` holds (a board's probe neurons; the other columns are
        not measured); None: every neuron's.
    counts : SpikeCounts or None
        Spike counts read back (a board's COUNTS run mode); where present, rates come from them.
    """

    sim: str
    spikes: np.ndarray | None
    v: np.ndarray | None
    bit_exact: bool
    mismatch: dict | None
    updates: int
    cycles: int = 0
    seconds: float = 0.0
    v_neurons: np.ndarray | None = None
    counts: SpikeCounts | None = None


@dataclass
class SpikeCounts:
    """Per-neuron spike counts over a run, with the steps of the first and the last spike
    (0 for a neuron that never fired), as a board's COUNTS run mode reports them.

    Members
    -------
    counts, first, last : int arrays [N]
    """

    counts: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, spikes: np.ndarray) -> SpikeCounts:
        """The counts of a spike bitmap [steps, N]."""
        spikes = np.asarray(spikes, dtype=bool)
        steps = spikes.shape[0]
        fired = spikes.any(axis=0)
        first = np.where(fired, spikes.argmax(axis=0), 0)
        last = np.where(fired, steps - 1 - spikes[::-1].argmax(axis=0), 0)
        return cls(spikes.sum(axis=0).astype(np.int64), first.astype(np.int64),
                   last.astype(np.int64))

    def take(self, neurons) -> SpikeCounts:
        return SpikeCounts(self.counts[neurons], self.first[neurons], self.last[neurons])


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

    def v_of(self, source: str, neuron: int | None = None) -> np.ndarray:
        """Membranes [steps, N] of ``"fixed"`` or ``"rtl"``; with ``neuron``, a KeyError
        unless that neuron's membrane was measured (a board reads only its probe neurons')."""
        if source == "fixed":
            return self.golden.v
        if source == "rtl" and self.rtl is not None and self.rtl.v is not None:
            probed = self.rtl.v_neurons
            if neuron is None or probed is None or neuron in np.asarray(probed).tolist():
                return self.rtl.v
        raise KeyError(f"no {source!r} membrane for run {self.name!r}"
                       + ("" if neuron is None else f" neuron {neuron}"))

    def counts_of(self, source: str) -> SpikeCounts:
        """Spike counts [N] of ``"fixed"`` or ``"rtl"`` (a board's COUNTS readback when it
        was read, else the counts of the RTL's spikes)."""
        if source == "rtl" and self.rtl is not None and self.rtl.counts is not None:
            return self.rtl.counts
        return SpikeCounts.of(self.spikes_of(source))


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


def rate_hz_counts(counts: SpikeCounts, dt_ms: float, silent=None) -> np.ndarray:
    """:func:`rate_hz` from spike counts and the steps of the first and last spike (what a
    board's COUNTS run mode returns): the same numbers, ``(c - 1) / ((last - first) dt)``
    computed as :func:`lifgate.golden.float_ref.isi_rates` computes it from the bitmap."""
    c = np.asarray(counts.counts, dtype=np.int64)
    span = np.asarray(counts.last, dtype=np.int64) - np.asarray(counts.first, dtype=np.int64)
    out = np.full(c.size, np.nan)
    for k in np.flatnonzero(c >= 2):
        out[k] = 1.0 / (float(span[k]) * dt_ms / int(c[k] - 1))
    rates = out * 1000.0
    if silent is not None:
        quiet = (c == 0) | ((c == 1) & (np.asarray(counts.first) == 0))
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
            notebook_trace(r.config, r.spikes_of(source), r.v_of(source, n), n))

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
        v = self.run.v_of(source, n)[:, n]
        return self.iaf_q.int_to_mV(np.concatenate([[0], v]))

    def sweep_counts(self, source: str = "fixed") -> np.ndarray:
        if source == "sinabs":
            return self.sweep_sinabs
        if source == "float":
            return self.sweep_single
        return self.run.counts_of(source).counts[self.sweep_neurons]


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
        if source == "rtl" and r.rtl is not None and r.rtl.counts is not None:
            return rate_hz_counts(r.rtl.counts.take(self.neurons), self.dt, silent)
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
            notebook_trace(r.config, r.spikes_of(source), r.v_of(source, n), n))

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


# Checks ---------------------------------------------------------------------------------------


def seed_checks(ux: UnitlessExperiment, lif: LIFExperiments, sources) -> list[dict]:
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


def shape_params(shape: ArrayShape) -> NeuronParams:
    """A parameter set legal for ``shape`` (for printing a shape through ``Config``)."""
    return NeuronParams(leak_mode=shape.leak_modes[0], leak=0)
