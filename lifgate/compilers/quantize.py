"""From biological LIF parameters (mV, ms, nS, pA) to a fixed-point :class:`~lifgate.config.Config`.

The hardware knows no units (``docs/numerics.md``, "Units"). This module chooses the scales
that map the notebook's parameters (the names of ``lifgate.golden.float_ref.default_pars``)
onto the integers of one neuron step, and keeps every mapping in one :class:`Quantized` object,
so the demo, the host library and ``lifgate quantize`` agree on them:

* membrane: ``V = origin + v * 2**-e`` mV. ``e`` is the largest exponent for which the needed
  voltage span (``V_reset``, ``E_L``, ``V_init``, ``V_th``) fits in the middle half of the
  ``v_width``-bit range, so a quarter of the range is left free on each side for overshoot
  and noise; ``origin`` is the whole mV nearest the middle of the span.
* leak: MULT with ``D = round((1 - dt/tau_m) * 2**F)`` (the notebook's Euler step), or SHIFT
  with ``k = log2(tau_m/dt)`` when asked for and ``tau_m/dt`` is a power of two. The quantized
  leak decays by ``a = 1 - D/2**F`` (``2**-k``) per step: an effective time constant
  ``tau_eff = dt / a``.
* input: a current ``I`` [pA] becomes the per-step integer ``round(I * dt / (tau_eff g_L) /
  lsb)``, i.e. the notebook's ``I dt / (tau_m g_L)`` with the leak's effective time constant.
  That keeps ``V_inf = E_L + I/g_L`` exact up to the final rounding: with the nominal tau_m,
  D's rounding error (``D = 64881``: ``tau_eff = 10.0055`` ms) would raise every V_inf by
  0.055 %, enough to make the rheobase current (``V_inf == V_th``) spike.
* refractory period: ``t_ref = ceil(tref / dt)`` steps, the notebook's count.
* noise: the notebook's Gaussian white noise ``sig`` (``my_GWN``: a per-step current of
  standard deviation ``sig / sqrt(dt / 1000)`` pA) becomes the noise gain whose ``z`` has the
  same standard deviation in LSB: ``std(z) = 147.8 * gain / 256`` (``docs/numerics.md``,
  "Noise").

Unit-free variants reproduce the two seed notebooks' other neurons: :func:`quantize_euler`
(tau 20, threshold 10, input 11: spikes at steps 47 and 94) and :func:`quantize_iaf`
(threshold 1, bias 0.025: 2 spikes in 100 steps).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lifgate.checks import short_repr
from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
)
from lifgate.golden.fixed import simulate
from lifgate.golden.float_ref import (
    analytic_rate,
    default_pars,
    isi_rates,
    lif_batch,
    refractory_steps,
    second_spike_time,
)

__all__ = [
    "BIO_DEFAULTS",
    "MAX_SWEEP_UPDATES",
    "NOISE_STD",
    "RATE_ERROR_WARN_PCT",
    "Quantized",
    "RateSweep",
    "quantize",
    "quantize_euler",
    "quantize_iaf",
    "suggest_width",
]

#: The notebook's defaults (``lifgate.golden.float_ref.default_pars`` without ``range_t``).
BIO_DEFAULTS = {
    "V_th": -55.0,
    "V_reset": -75.0,
    "tau_m": 10.0,
    "g_L": 10.0,
    "V_init": -75.0,
    "E_L": -75.0,
    "tref": 2.0,
    "T": 500.0,
    "dt": 0.1,
}

#: Standard deviation of the noise source's centred value ``c`` (sum of four uniform bytes).
NOISE_STD = math.sqrt(4 * (256**2 - 1) / 12)

#: Above this fixed-point rate error [%] against the analytic LIF rate, :meth:`Quantized.report`
#: warns. The notebook's float Euler model itself is within 1 % at the default parameters, so
#: 5 % means the quantization, not the time step, dominates the error.
RATE_ERROR_WARN_PCT = 5.0

#: Most neuron updates (currents x steps) of one rate sweep: the models keep every membrane
#: value ([steps, K] arrays of 8 bytes, float and fixed), so this bounds the memory (~400 MB).
MAX_SWEEP_UPDATES = 25_000_000

_VOLTS = ("V_th", "V_reset", "V_init", "E_L")
_MAX_STEPS = 10_000_000


def _round_half_up(x):
    """Round to nearest, ties towards plus infinity (as the gateware rounds)."""
    return np.floor(np.asarray(x, dtype=float) + 0.5).astype(np.int64)


def _check_pars(pars: dict, units: str) -> dict:
    unknown = set(pars) - set(BIO_DEFAULTS) - {"range_t"}
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {sorted(unknown)}; legal: {', '.join(BIO_DEFAULTS)}"
        )
    p = dict(BIO_DEFAULTS)
    p.update({k: v for k, v in pars.items() if k != "range_t"})
    mv = f" {units}" if units else ""
    ms = " ms" if units else " steps"
    for name, value in p.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"parameter {name!r} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"parameter {name!r} must be a finite number, not {value!r}")
        p[name] = float(value)
    for name in _VOLTS:
        if not -1000.0 <= p[name] <= 1000.0:
            raise ConfigError(f"parameter {name!r} must be in [-1000, 1000]{mv}, not {p[name]!r}")
    if not 0.0 < p["dt"] <= 1000.0:
        raise ConfigError(f"parameter 'dt' must be in (0, 1000]{ms}, not {p['dt']!r}")
    if not p["dt"] <= p["tau_m"] <= 1e6:
        raise ConfigError(
            f"parameter 'tau_m' must be in [dt, 1e6] = [{p['dt']:g}, 1e6]{ms}, "
            f"not {p['tau_m']!r}"
        )
    if not 0.0 < p["g_L"] <= 1e6:
        unit = " nS" if units else ""
        raise ConfigError(f"parameter 'g_L' must be in (0, 1e6]{unit}, not {p['g_L']!r}")
    if not p["V_th"] > p["V_reset"]:
        raise ConfigError(
            f"parameter 'V_th' must be above V_reset ({p['V_reset']:g}{mv}), not {p['V_th']!r}"
        )
    if not 0.0 <= p["tref"] <= 1e6:
        raise ConfigError(f"parameter 'tref' must be in [0, 1e6]{ms}, not {p['tref']!r}")
    if not 0.0 < p["T"] <= _MAX_STEPS * p["dt"]:
        raise ConfigError(
            f"parameter 'T' must be in (0, {_MAX_STEPS:g} * dt] = (0, {_MAX_STEPS * p['dt']:g}]"
            f"{ms}, not {p['T']!r}"
        )
    return p


def _count(mask, noun: str) -> str:
    n = int(np.sum(mask))
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _float_pars(p: dict) -> dict:

    return default_pars(**p)


class RateSweep(NamedTuple):
    """Firing rates against a constant input current (:meth:`Quantized.rates`).

    Members
    -------
    currents : float array [K]
        Input currents [pA].
    analytic, float, fixed : float arrays [K]
        Rates [Hz] of the continuous-time LIF (``analytic_rate``), of the notebook's float
        Euler model (``float_ref.lif_batch``) and of the fixed-point model
        (``golden.fixed.simulate``); the simulated ones are ``1 / mean ISI`` over ``T``.
        A simulated rate is NaN (not measured) where the model fired fewer than two spikes
        in ``T``, except where the LIF is provably silent (``V_inf <= V_th``) and the model
        did not fire either (its spike at step 0 from ``V_init >= V_th`` aside): 0 Hz.
    measurable : bool array [K]
        The analytic LIF fires at least twice within ``T`` (with a 2 % margin), so a model
        without a measured rate there is wrong (too slow or silent), not just unmeasured.
        True where the LIF is silent (0 Hz is then a measurement).
    """

    currents: np.ndarray
    analytic: np.ndarray
    float: np.ndarray
    fixed: np.ndarray
    measurable: np.ndarray | None = None

    @staticmethod
    def _error(rate, ref):
        """``rate / ref - 1`` in percent; 0 where both are 0, inf where only ``rate`` fires,
        NaN where ``rate`` was not measured."""
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(ref > 0, (rate / ref - 1.0) * 100.0, np.where(rate > 0, np.inf, 0.0))
        return np.where(np.isnan(rate), np.nan, err)

    @property
    def fixed_slow(self) -> np.ndarray:
        """Currents where the LIF fires twice in ``T`` but the fixed-point neuron does not."""
        meas = np.ones(self.currents.shape, bool) if self.measurable is None else self.measurable
        return meas & (self.analytic > 0) & np.isnan(self.fixed)

    @property
    def unmeasured(self) -> np.ndarray:
        """Currents where the LIF fires but too slowly for two spikes in ``T``."""
        if self.measurable is None:
            return np.zeros(self.currents.shape, bool)
        return ~self.measurable & (self.analytic > 0)

    @property
    def fixed_error_pct(self) -> np.ndarray:
        """Relative error of the fixed-point rate against the analytic rate, in percent."""
        return self._error(self.fixed, self.analytic)

    @property
    def float_error_pct(self) -> np.ndarray:
        """Relative error of the float Euler rate against the analytic rate, in percent."""
        return self._error(self.float, self.analytic)


@dataclass(frozen=True)
class Quantized:
    """One choice of fixed-point scales for a LIF neuron, with every unit conversion.

    Build it with :func:`quantize` (biological units), :func:`quantize_euler` or
    :func:`quantize_iaf` (the unit-free seed neurons), not directly.

    Members
    -------
    pars : dict
        The parameters it was made from (the notebook's names; ``dt``, ``tau_m``, ``tref``,
        ``T`` in ms, voltages in mV, ``g_L`` in nS; unit-free variants use steps and plain
        numbers).
    units : str
        ``"mV"`` for biological parameters, ``""`` for the unit-free seed models.
    exponent : int
        ``e``: the membrane LSB is ``2**-e`` (mV).
    origin : float
        The voltage of integer 0 (a whole number).
    gain : float
        Per-step fraction ``a`` of the quantized leak (``1 - D/2**F``, ``2**-k``, or 1 for
        CONST): the integer input for a current ``I`` is ``round(I / g_L * a / lsb)``.
    config : Config
        The configuration, with bias 0 and the noise off; :meth:`with_input` adds both.
    """

    pars: dict
    units: str
    exponent: int
    origin: float
    gain: float
    config: Config

    # Scales -----------------------------------------------------------------------------------

    @property
    def shape(self) -> ArrayShape:
        return self.config.shape

    @property
    def params(self) -> NeuronParams:
        return self.config.params[0]

    @property
    def lsb(self) -> float:
        """Membrane LSB, ``2**-exponent`` (mV)."""
        return 2.0**-self.exponent

    @property
    def lsb_mV(self) -> float:
        return self.lsb

    @property
    def origin_mV(self) -> float:
        return self.origin

    @property
    def dt(self) -> float:
        return self.pars["dt"]

    @property
    def steps(self) -> int:
        """Steps of a run of ``T``, counted as the notebook does.

        ``range_t = np.arange(0, T, dt)`` has ``Lt`` samples and the loop tests the threshold
        at the first ``Lt - 1`` of them (the last one is only integrated into).
        """
        return max(1, int(np.arange(0, self.pars["T"], self.pars["dt"]).size) - 1)

    @property
    def tau_eff(self) -> float:
        """Effective membrane time constant of the quantized leak, ``dt / a`` (inf: no leak)."""
        return self.dt / self.gain if self.params.leak_mode != LeakMode.CONST else math.inf

    @property
    def t_ref_steps(self) -> int:
        return self.params.t_ref

    def mV_to_int(self, volts):
        """Membrane integer nearest to ``volts`` (rounded half up), not range-checked."""
        v = _round_half_up((np.asarray(volts, dtype=float) - self.origin) / self.lsb)
        return int(v) if v.ndim == 0 else v

    def int_to_mV(self, v):
        """Voltage of membrane integer(s) ``v``."""
        x = self.origin + np.asarray(v, dtype=float) * self.lsb
        return float(x) if x.ndim == 0 else x

    @property
    def lsb_per_pA(self) -> float:
        """Per-step integer input per pA of current (before rounding)."""
        return self.gain / (self.pars["g_L"] * self.lsb)

    def current_to_int(self, current):
        """Per-step integer input for a current [pA] (scalar or array), range-checked.

        ``round(I * dt / (tau_eff * g_L) / lsb)``, ties rounded up. Raises ``ConfigError``
        when the result does not fit the ``i_width``-bit input.
        """
        cur = np.asarray(current, dtype=float)
        if not np.all(np.isfinite(cur)):
            raise ConfigError(f"input current must be finite, not {short_repr(current)}")
        u = _round_half_up(cur * self.lsb_per_pA)
        lo, hi = self.shape.i_range
        if u.size and (u.min() < lo or u.max() > hi):
            unit = " pA" if self.units else ""
            ilo, ihi = (lo - 0.5) / self.lsb_per_pA, (hi + 0.5) / self.lsb_per_pA
            got = (f"{short_repr(current)}" if cur.ndim == 0 else
                   f"currents {cur.min():.6g} to {cur.max():.6g}{unit}")
            raise ConfigError(
                f"input current must be in [{ilo:.6g}, {ihi:.6g}){unit} "
                f"(i_width {self.shape.i_width} at {self.lsb_per_pA:.4g} LSB per "
                f"{unit.strip() or 'unit'}), not {got}"
            )
        return int(u) if u.ndim == 0 else u

    def int_to_current(self, u):
        """Current [pA] that integer input ``u`` stands for exactly."""
        x = np.asarray(u, dtype=float) / self.lsb_per_pA
        return float(x) if x.ndim == 0 else x

    def noise_gain_for_std(self, std: float) -> int:
        """Noise gain whose per-step kick ``z`` has a standard deviation of ``std`` (mV)."""
        if not (math.isfinite(std) and std >= 0):
            raise ConfigError(f"noise standard deviation must be a finite number >= 0, not {std!r}")
        g = int(_round_half_up(std / self.lsb * 256.0 / NOISE_STD))
        if g > 0xFFFF:
            top = 0xFFFF * NOISE_STD / 256.0 * self.lsb
            raise ConfigError(
                f"noise standard deviation must be at most {top:.6g} {self.units or 'units'} "
                f"per step (gain 65535), not {std!r}"
            )
        return g

    def noise_gain(self, sig: float) -> int:
        """Noise gain for the notebook's white noise amplitude ``sig`` (``my_GWN``).

        ``my_GWN`` adds a per-step current of standard deviation ``sig / sqrt(dt / 1000)`` pA
        (dt in ms); through the membrane that is ``sig / sqrt(dt/1000) * dt / (tau g_L)`` mV.
        """
        if not (math.isfinite(sig) and sig >= 0):
            raise ConfigError(f"parameter 'sig' must be a finite number >= 0, not {sig!r}")
        per_step_pA = sig / math.sqrt(self.dt / 1000.0)
        return self.noise_gain_for_std(per_step_pA * self.gain / self.pars["g_L"])

    def noise_std(self, gain: int) -> float:
        """Standard deviation of the per-step noise kick of ``gain``, in mV."""
        return NOISE_STD * gain / 256.0 * self.lsb

    def with_input(self, current: float = 0.0, *, sig: float = 0.0, seed: int = 1) -> Config:
        """The configuration with a constant input ``current`` [pA] as bias and noise ``sig``.

        Raises ``ConfigError`` if the bias does not fit the ``v_width``-bit bias field.
        """
        bias = self.current_to_int(current)
        lo, hi = self.shape.v_range
        if not lo <= bias <= hi:
            raise ConfigError(
                f"input current {current!r} maps to bias {bias}, outside [{lo}, {hi}] "
                f"(v_width {self.shape.v_width}); stream it as an input current instead"
            )
        return self.config.replace(
            params=(dataclasses.replace(self.params, bias=bias),),
            noise=NoiseParams(seed=seed, gain=self.noise_gain(sig) if sig else 0),
        )

    # Checks -------------------------------------------------------------------------------

    def rheobase(self) -> float | None:
        """Current [pA] at which ``V_inf == V_th``: ``g_L (V_th - E_L)``; None if <= 0."""
        r = self.pars["g_L"] * (self.pars["V_th"] - self.pars["E_L"])
        return r if r > 0 and self.params.leak_mode != LeakMode.CONST else None

    def _sweep_config(self, n: int) -> Config:
        shape = dataclasses.replace(self.shape, neurons=n, lanes=1, groups=1)
        return Config(shape=shape, params=(self.params,))

    def fixed_spikes(self, currents, steps: int | None = None) -> np.ndarray:
        """Spikes [steps, K] of the fixed-point model, one neuron per constant current [pA]."""
        cur = np.atleast_1d(np.asarray(currents, dtype=float))
        u = self.current_to_int(cur)
        steps = self.steps if steps is None else steps
        # a rate sweep (the notebook's sliders): the fused kernel, spikes only (bit-packed)
        res = simulate(self._sweep_config(cur.size), steps, u, record="spikes", engine="fused")
        return res.spike_raster()

    def settle(self, u: int) -> int | None:
        """Membrane integer a neuron settles at under constant integer input ``u``, no spikes.

        Exact for a neuron that starts at or below it (``v_init = E_L`` and ``u >= 1``), for
        the integer map of ``docs/numerics.md``: with ``g(d)`` the
        integrating step on ``d = v - v_rest``, ``g`` is nondecreasing and ``g(d+1) - g(d)``
        is 0 or 1, so a trajectory rising from below stops at the least ``d`` with
        ``g(d) <= d`` and never passes it. MULT: ``d* = floor((2u - 1) 2**(F-1) / (2**F - D))
        + 1``; SHIFT: ``d* = u 2**k - floor(2**(k-1))``. None for the CONST leak (no fixed
        point). Saturation is applied.
        """
        q = self.params
        if q.leak_mode == LeakMode.MULT:
            F = self.shape.decay_frac
            d = ((2 * u - 1) << (F - 1)) // ((1 << F) - q.leak) + 1
        elif q.leak_mode == LeakMode.SHIFT:
            d = (u << q.leak) - ((1 << q.leak) >> 1)
        else:
            return None
        lo, hi = self.shape.v_range
        return min(max(q.v_rest + d, lo), hi)

    def check_rheobase(self) -> dict:
        """Does the rheobase current (``V_inf == V_th``) stay below threshold for ever?

        A neuron that starts at or above the threshold (``V_init >= V_th``) fires at step 0
        whatever its input; that spike is reported as ``initial_spike`` and not counted in
        ``spikes``: the check is about the spikes the rheobase current drives.

        The integer input is nondecreasing in the current and the fixed-point trajectory is
        monotone in the input, so no spike at the rheobase means no spike at any current
        below it. Decided exactly by :meth:`settle`, and confirmed by running the fixed-point
        model for ``max(T, 40 tau_eff)`` (capped at 100,000 steps): the approach to the fixed
        point of the integer map takes about ``ln(range) tau_eff`` plus at most
        ``tau_eff / dt`` unit steps.
        """
        rheo = self.rheobase()
        if rheo is None:
            return {"current": None, "ok": None}
        q = self.params
        u = self.current_to_int(rheo)
        settle = self.settle(u)
        steps = min(max(self.steps, int(math.ceil(40 * self.tau_eff / self.dt))), 100_000)
        res = simulate(self._sweep_config(1), steps, np.array([u]))
        # V_init >= V_th fires once at step 0 whatever the input: that spike is the initial
        # condition's, not the rheobase current's, and is reported apart.
        initial = bool(q.v_init >= q.v_th)
        spikes = int(res.spikes[1:, 0].sum()) if initial else int(res.spikes.sum())
        return {
            "current": rheo,
            "input": u,
            "settle": settle,
            "margin_lsb": q.v_th - settle,
            "margin": (q.v_th - settle) * self.lsb,
            "steps": steps,
            "spikes": spikes,
            "initial_spike": initial,
            "v_max": int(res.v[:, 0].max()),
            "ok": bool(settle < q.v_th and spikes == 0),
        }

    def sweep_currents(self, lo: float | None = None, hi: float | None = None, points: int = 251):
        """Default sweep: 1.25 to 2.5 times the rheobase (250 to 500 pA by default)."""
        rheo = self.rheobase()
        if lo is None or hi is None:
            if rheo is None:
                raise ConfigError(
                    "no rheobase (E_L >= V_th or no leak): give the sweep range explicitly"
                )
            lo = 1.25 * rheo if lo is None else lo
            hi = 2.5 * rheo if hi is None else hi
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ConfigError(f"sweep range must be finite with lo <= hi, not [{lo!r}, {hi!r}]")
        if isinstance(points, bool) or not isinstance(points, (int, np.integer)) \
                or not 1 <= points <= 100_000:
            raise ConfigError(f"parameter 'points' must be an integer in [1, 100000], "
                              f"not {short_repr(points)}")
        self._check_sweep_size(points)
        unit = " pA" if self.units else ""
        ilo, ihi = (self.int_to_current(self.shape.i_range[0] - 0.5),
                    self.int_to_current(self.shape.i_range[1] + 0.5))
        if lo < ilo or hi >= ihi:
            raise ConfigError(
                f"sweep currents must be in [{ilo:.6g}, {ihi:.6g}){unit}, the "
                f"{self.shape.i_width}-bit input at {self.lsb_per_pA:.4g} LSB per "
                f"{unit.strip() or 'unit'}, not {lo:.6g} to {hi:.6g}{unit}: sweep a smaller "
                "range or use a wider input (width)"
            )
        return np.linspace(lo, hi, points)

    def _check_sweep_size(self, points: int) -> None:
        if points * self.steps > MAX_SWEEP_UPDATES:
            raise ConfigError(
                f"a rate sweep must be at most {MAX_SWEEP_UPDATES:,} neuron updates (points x "
                f"steps of T), not {points:,} x {self.steps:,}: use at most "
                f"{max(1, MAX_SWEEP_UPDATES // self.steps):,} points or a shorter T")

    def rates(self, currents=None) -> RateSweep:
        """Analytic, float and fixed-point rates for constant currents [pA] over ``T``."""
        cur = self.sweep_currents() if currents is None else np.atleast_1d(
            np.asarray(currents, dtype=float)
        )
        self._check_sweep_size(cur.size)
        fp = _float_pars(self.pars)
        analytic = np.asarray(analytic_rate(fp, cur), dtype=float).reshape(cur.shape)
        fl = lif_batch(fp, cur).spikes
        fx = self.fixed_spikes(cur)
        scale = 1000.0 / self.dt  # rate per step -> Hz (per 1000 steps when unit-free)
        silent = analytic == 0
        rates = []
        for spikes in (fl, fx):
            r = isi_rates(spikes) * scale
            # Where the LIF never fires, a model that did not fire either is measured silent.
            quiet = spikes[1:].sum(axis=0) == 0
            rates.append(np.where(np.isnan(r) & silent & quiet, 0.0, r))
        # The last tested step is steps - 1: the second spike must come before it, with a
        # margin for the discretisation of the spike times.
        t2 = np.asarray(second_spike_time(fp, cur), dtype=float).reshape(cur.shape)
        measurable = silent | (t2 * 1.02 + self.dt <= (self.steps - 1) * self.dt)
        return RateSweep(cur, analytic, rates[0], rates[1], measurable)

    # Report -------------------------------------------------------------------------------

    def report(self, currents=None) -> dict:
        """Everything ``lifgate quantize`` prints, as a JSON-able dict."""
        p, q = self.pars, self.params
        out = {
            "units": self.units or None,
            "config": self.config.to_dict(),
            "scales": {
                "exponent": self.exponent,
                "lsb": self.lsb,
                "origin": self.origin,
                "v_range": [self.int_to_mV(self.shape.v_range[0]),
                            self.int_to_mV(self.shape.v_range[1])],
                "input_per_pA": self.lsb_per_pA,
                "input_range": [self.int_to_current(self.shape.i_range[0]),
                                self.int_to_current(self.shape.i_range[1])],
            },
            "parameters": {},
            "effective": {
                "tau": self.tau_eff if math.isfinite(self.tau_eff) else None,
                "tau_steps": (self.tau_eff / self.dt) if math.isfinite(self.tau_eff) else None,
                "t_ref_steps": q.t_ref,
                "t_ref": q.t_ref * self.dt,
                "leak_mode": q.leak_mode.name.lower(),
                "leak": q.leak,
                "gain": self.gain,
            },
        }
        for name, field in (("V_th", "v_th"), ("V_reset", "v_reset"), ("E_L", "v_rest"),
                            ("V_init", "v_init")):
            v = getattr(q, field)
            out["parameters"][name] = {
                "value": p[name], "int": v, "effective": self.int_to_mV(v),
                "error": self.int_to_mV(v) - p[name],
            }
        if self.rheobase() is not None:
            out["rheobase"] = self.check_rheobase()
        if self.rheobase() is not None and (self.units or currents is not None):
            # unit-free seeds: no rate sweep unless asked (their runs are 100 steps long)
            sweep = self.rates(currents)
            err_fx, err_fl = sweep.fixed_error_pct, sweep.float_error_pct
            for key, err in (("rate", err_fx), ("float_rate", err_fl)):
                finite = np.isfinite(err)
                if finite.any():
                    i = int(np.flatnonzero(finite)[np.argmax(np.abs(err[finite]))])
                    out[f"{key}_error_max_pct"] = float(abs(err[i]))
                    out[f"{key}_error_worst"] = {"current": float(sweep.currents[i]),
                                                 "error_pct": float(err[i])}
                else:  # nothing measured: no error figure (never a 0 that looks good)
                    out[f"{key}_error_max_pct"] = None
                    out[f"{key}_error_worst"] = None
            out["sweep"] = {
                "currents": sweep.currents.tolist(),
                "inputs": np.atleast_1d(self.current_to_int(sweep.currents)).tolist(),
                "analytic": sweep.analytic.tolist(),
                "float": sweep.float.tolist(),
                "fixed": sweep.fixed.tolist(),
                "measurable": sweep.measurable.tolist(),
            }
            out.update(self._assess(sweep))
        else:
            out.update(self._assess(None))
        rh = out.get("rheobase")
        if rh and rh.get("ok") is False:
            out["warnings"].append(
                f"the fixed-point neuron fires at the rheobase current {rh['current']:g}"
                f"{' pA' if self.units else ''} (V_inf = V_th), where the LIF never fires")
        out["ok"] = out["useless"] is None and not out["warnings"]
        return out

    def _assess(self, sweep: RateSweep | None) -> dict:
        """``useless`` (why nothing useful comes out, or None) and ``warnings`` of a sweep.

        Useless: the fixed-point neuron fires fewer than two spikes at every current of the
        sweep where the LIF fires at least twice in ``T``. Warnings: it does so at some of
        them, fires where the LIF is silent, its rate error exceeds
        :data:`RATE_ERROR_WARN_PCT`, or some currents fire too slowly for ``T`` to measure.
        """
        res = {"useless": None, "warnings": []}
        if sweep is None:
            return res
        iu = " pA" if self.units else ""
        tu = " ms" if self.units else " steps"
        cur = sweep.currents

        def span(mask):
            c = cur[mask]
            return f"{c.min():.6g}{iu}" if c.size == 1 else f"{c.min():.6g} to {c.max():.6g}{iu}"

        firing = sweep.measurable & (sweep.analytic > 0)
        slow = sweep.fixed_slow
        per = 1.0 / self.lsb_per_pA
        if firing.any() and slow[firing].all():
            res["useless"] = (
                f"the fixed-point neuron fires fewer than two spikes in T = "
                f"{self.pars['T']:g}{tu} at every current of the sweep where the LIF fires "
                f"({span(firing)}, {sweep.analytic[firing].min():.3g} to "
                f"{sweep.analytic[firing].max():.3g} Hz): one input LSB per step is "
                f"{per:.4g}{iu} at this width, nothing useful can come out")
        elif slow.any():
            res["warnings"].append(
                f"the fixed-point neuron fires fewer than two spikes in T at {int(slow.sum())} "
                f"of {int(firing.sum())} currents where the LIF fires ({span(slow)}): its "
                f"rate there is wrong, not just imprecise (one input LSB per step is "
                f"{per:.4g}{iu})")
        err = sweep.fixed_error_pct
        fires_silent = np.isinf(err)
        if fires_silent.any():
            res["warnings"].append(
                f"the fixed-point neuron fires at {_count(fires_silent, 'current')} where the "
                f"LIF is silent ({span(fires_silent)})")
        finite = np.isfinite(err)
        if finite.any() and np.abs(err[finite]).max() > RATE_ERROR_WARN_PCT:
            res["warnings"].append(
                f"the fixed-point rate error reaches {np.abs(err[finite]).max():.3g} % "
                f"(warning above {RATE_ERROR_WARN_PCT:g} %)")
        unmeasured = sweep.unmeasured
        if unmeasured.any():
            need = float(np.max(second_spike_time(_float_pars(self.pars), cur[unmeasured])))
            res["warnings"].append(
                f"{_count(unmeasured, 'current')} ({span(unmeasured)}) fire too slowly for "
                f"two spikes in T = {self.pars['T']:g}{tu}: their rates are not measured; "
                f"use T >= {math.ceil(need * 1.05 + 2 * self.dt):g}{tu}")
        return res


def _choose_exponent(lo: float, hi: float, width: int) -> tuple[int, float]:
    """Largest ``e`` (and the origin) for which ``[lo, hi]`` fits the middle half of the range.

    The origin is the whole number nearest ``(lo + hi) / 2``; the interval widened by half
    its span on each side must map inside ``[-2**(W-1), 2**(W-1) - 1]``.
    """
    span = hi - lo
    origin = float(math.floor((lo + hi) / 2 + 0.5))
    need_lo, need_hi = lo - span / 2 - origin, hi + span / 2 - origin
    vmin, vmax = -(1 << (width - 1)), (1 << (width - 1)) - 1
    reach = max(-need_lo, need_hi)
    e = math.floor(math.log2(vmax / reach)) + 1 if reach > 0 else 0
    while need_lo * 2.0**e < vmin or need_hi * 2.0**e > vmax:
        e -= 1
    return e, origin


def _leak(pars: dict, shape: ArrayShape, leak: str, units: str):
    """Leak mode, leak value and per-step fraction ``a`` for ``tau_m`` and ``dt``."""
    F = shape.decay_frac
    ratio = pars["tau_m"] / pars["dt"]
    ms = " ms" if units else " steps"
    if leak == "shift":
        k = round(math.log2(ratio))
        if abs(ratio - 2.0**k) > 1e-9 * ratio or not 0 <= k <= shape.v_width:
            raise ConfigError(
                f"parameter 'tau_m' must be dt times a power of two 2**k, k in 0..v_width "
                f"({shape.v_width}), for the shift leak, not {pars['tau_m']!r}{ms} "
                f"(tau_m/dt = {ratio:.6g}); use the mult leak"
            )
        return LeakMode.SHIFT, k, 2.0**-k
    if leak != "mult":
        raise ConfigError(f"parameter 'leak' must be one of mult, shift, not {leak!r}")
    top = 2.0 ** (F + 1) * pars["dt"]
    if not ratio < 2.0 ** (F + 1):
        raise ConfigError(
            f"parameter 'tau_m' must be in [dt, dt * 2**(F+1)) = [{pars['dt']:g}, {top:g})"
            f"{ms} for the mult leak with decay_frac F = {F}, not {pars['tau_m']!r}"
        )
    D = int(_round_half_up((1.0 - pars["dt"] / pars["tau_m"]) * 2.0**F))
    return LeakMode.MULT, D, (2**F - D) / 2.0**F


def _shape_for(width: int | None, shape: ArrayShape | None) -> ArrayShape:
    if shape is not None:
        if not isinstance(shape, ArrayShape):
            raise ConfigError(f"parameter 'shape' must be an ArrayShape, not {shape!r}")
        if width is not None and width != shape.v_width:
            raise ConfigError("give either 'width' or 'shape', not both")
        return shape
    if width is None:
        return ArrayShape()
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 4 <= width <= 32:
        raise ConfigError(f"parameter 'width' must be an integer in [4, 32], not {width!r}")
    return ArrayShape(v_width=int(width), i_width=int(width))


def _build(pars, shape, leak, units, reset_mode=ResetMode.VALUE, span=None, exponent=None):
    mode, leak_value, a = _leak(pars, shape, leak, units) if leak != "const" else (
        LeakMode.CONST, 0, 1.0)
    if mode not in shape.leak_modes:
        legal = ", ".join(m.name.lower() for m in shape.leak_modes)
        raise ConfigError(f"parameter 'leak' must be one the array supports ({legal}), "
                          f"not {mode.name.lower()!r}")
    if exponent is None:
        lo, hi = span if span is not None else (
            min(pars[n] for n in _VOLTS), max(pars[n] for n in _VOLTS))
        exponent, origin = _choose_exponent(lo, hi, shape.v_width)
    else:
        origin = 0.0
    lsb = 2.0**-exponent
    t_ref_max = shape.t_ref_max
    t_ref = refractory_steps(pars)
    if t_ref > t_ref_max:
        unit = " ms" if units else " steps"
        raise ConfigError(
            f"parameter 'tref' must be in [0, {t_ref_max * pars['dt']:g}]{unit} "
            f"({t_ref_max} steps of dt = {pars['dt']:g}, ref_width {shape.ref_width}), "
            f"not {pars['tref']!r}"
        )

    def to_int(name):
        v = int(_round_half_up((pars[name] - origin) / lsb))
        vlo, vhi = shape.v_range
        if not vlo <= v <= vhi:  # only when the exponent was forced
            raise ConfigError(
                f"parameter {name!r} = {pars[name]!r} does not fit {shape.v_width} bits"
            )
        return v

    params = NeuronParams(
        v_th=to_int("V_th"),
        v_reset=to_int("V_reset"),
        v_rest=to_int("E_L"),
        v_init=to_int("V_init"),
        bias=0,
        leak_mode=mode,
        leak=leak_value,
        reset_mode=reset_mode,
        t_ref=t_ref,
    )
    config = Config(shape=shape, params=(params,), noise=NoiseParams())
    return Quantized(pars=pars, units=units, exponent=exponent, origin=origin, gain=a,
                     config=config)


def quantize(pars: dict | None = None, *, width: int | None = None, leak: str = "mult",
             shape: ArrayShape | None = None, **overrides) -> Quantized:
    """Fixed-point scales for the notebook's biophysical LIF.

    Parameters
    ----------
    pars : dict, optional
        Parameters with the notebook's names (``default_pars()`` output is accepted); missing
        ones take the notebook's defaults. Keywords override entries.
    width : int, optional
        Membrane and input width in bits (``v_width = i_width = width``) of an otherwise
        default :class:`ArrayShape`; default 16.
    leak : {"mult", "shift"}
        ``shift`` needs ``tau_m / dt`` to be a power of two.
    shape : ArrayShape, optional
        The whole shape instead of ``width``.

    Raises ``ConfigError`` naming the parameter and its legal range for out-of-range input.
    """
    p = dict(pars or {})
    p.update(overrides)
    p = _check_pars(p, "mV")
    return _build(p, _shape_for(width, shape), leak, "mV")


def quantize_euler(tau: float = 20.0, v_th: float = 10.0, v_reset: float = 0.0,
                   v0: float = 0.0, steps: int = 100, *, width: int | None = None,
                   leak: str = "mult", shape: ArrayShape | None = None) -> Quantized:
    """Unit-free scales for the seed's Euler LIF (``float_ref.euler_lif``).

    It is the biophysical model with ``dt = 1``, ``g_L = 1``, ``E_L = 0`` and no refractory
    period, so ``current_to_int(i_syn)`` is the per-step input (or :meth:`Quantized.with_input`
    the bias) for the synaptic input ``i_syn``. With the defaults and ``with_input(11)`` the
    fixed-point neuron spikes at steps 47 and 94, as the notebook's float loop does.
    """
    p = _check_pars({"V_th": v_th, "V_reset": v_reset, "V_init": v0, "E_L": 0.0,
                     "tau_m": tau, "g_L": 1.0, "tref": 0.0, "dt": 1.0, "T": float(steps)}, "")
    return _build(p, _shape_for(width, shape), leak, "")


def quantize_iaf(threshold: float = 1.0, input_max: float = 5.0, steps: int = 100, *,
                 width: int | None = None, shape: ArrayShape | None = None) -> Quantized:
    """Unit-free scales for the seed's constant-leak IAF (``float_ref.iaf``).

    CONST leak 0, reset by subtraction, no refractory period, threshold ``threshold``. The
    exponent is the largest that keeps ``2 * threshold`` and inputs up to ``input_max`` (the
    notebook sweeps the bias up to 5) inside the ``v_width``-bit bias and membrane range; the
    origin is 0. ``with_input(0.025)`` gives 2 spikes in 100 steps.
    """
    shape = _shape_for(width, shape)
    for name, value in (("threshold", threshold), ("input_max", input_max)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1e6):
            raise ConfigError(f"parameter {name!r} must be a number in (0, 1e6], not {value!r}")
    vmax = shape.v_range[1]
    reach = max(2.0 * threshold, float(input_max))
    e = math.floor(math.log2(vmax / reach)) + 1
    while reach * 2.0**e > vmax:
        e -= 1
    p = _check_pars({"V_th": threshold, "V_reset": 0.0, "V_init": 0.0, "E_L": 0.0,
                     "tau_m": 1.0, "g_L": 1.0, "tref": 0.0, "dt": 1.0, "T": float(steps)}, "")
    return _build(p, shape, "const", "", reset_mode=ResetMode.SUBTRACT, exponent=e)


def suggest_width(q: Quantized, currents, *, max_points: int = 51) -> int | None:
    """The smallest width above ``q``'s whose rate sweep over ``currents`` gives no warning.

    Widths ``q.shape.v_width + 1`` to 32 are tried (``v_width = i_width``, the rest of the
    shape kept) on at most ``max_points`` of the currents: no current where the fixed-point
    neuron fires too little or where only it fires, and a rate error within
    :data:`RATE_ERROR_WARN_PCT`. None if none qualifies (or ``q`` is unit-free).
    """
    if not q.units:
        return None
    full = np.asarray(currents, dtype=float)
    few = full
    if full.size > max_points:
        few = full[np.unique(np.linspace(0, full.size - 1, max_points).round().astype(int))]
    leak = q.params.leak_mode.name.lower()

    def good(cand, cur):
        sweep = cand.rates(cur)
        err = sweep.fixed_error_pct
        finite = np.isfinite(err)
        return (not sweep.fixed_slow.any() and not np.isinf(err).any()
                and (not finite.any() or np.abs(err[finite]).max() <= RATE_ERROR_WARN_PCT))

    for width in range(q.shape.v_width + 1, 33):
        try:
            shape = dataclasses.replace(q.shape, v_width=width, i_width=width)
            cand = _build(q.pars, shape, leak, q.units)
            # a few currents first (cheap), then all of them for the one that passes
            if good(cand, few) and (few is full or good(cand, full)):
                return width
        except ConfigError:
            continue
    return None
