"""Float references of the two seed notebooks, in plain numpy.

Three models, each a faithful transcription of a seed notebook, plus the closed-form rate:

* :func:`euler_lif`: the unit-free Euler LIF of "A quick (and over-simplified) introduction to
  spiking neurons" (tau 20, threshold 10, constant input 11: spikes at steps 47 and 94).
* :func:`default_pars`, :func:`run_lif`, :func:`my_GWN`: the biophysical LIF of the "Leaky
  Fire Integrate Model" notebook, which is the neuromatch W2D3 model (mV, ms, nS, pA).
* :func:`iaf`, :func:`iaf_sweep`: the constant-leak integrate-and-fire neuron of the same
  introduction, as the old ``sinabs.layers.SpikingLayer`` computed it (bias 0.025 for 100
  steps: 2 spikes; spike count against bias: ReLU-shaped).
* :func:`analytic_rate`: the LIF firing rate for a constant current.

These are the references the fixed-point model (``lifgate.golden.fixed``) is judged against;
they know nothing of integers. Nothing here imports Amaranth.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "EulerTrace",
    "IAFTrace",
    "LIFBatch",
    "LIFRun",
    "analytic_rate",
    "default_pars",
    "euler_lif",
    "iaf",
    "iaf_sweep",
    "isi_rate",
    "isi_rates",
    "lif_batch",
    "lif_steps",
    "my_GWN",
    "refractory_steps",
    "run_lif",
    "second_spike_time",
]


# Unit-free Euler LIF ------------------------------------------------------------------------


class EulerTrace(NamedTuple):
    """Result of :func:`euler_lif`.

    Members
    -------
    spikes : list of int
        Steps at which the neuron spiked.
    v : float array [steps + 1]
        The notebook's ``vmem`` list: ``v[0] = v0``; ``v[t]`` reads ``v_reset`` at a spike step.
    """

    spikes: list
    v: np.ndarray


def euler_lif(tau=20.0, v_th=10.0, v_reset=0.0, i_syn=11.0, steps=100, v0=0.0) -> EulerTrace:
    """The seed notebook's Euler LIF loop, verbatim.

    Each step ``t``: if ``v[t] >= v_th`` the neuron spikes and ``v[t]`` becomes ``v_reset``;
    then ``v[t+1] = v[t] + (1/tau) * (-v[t] + i_syn)``. ``i_syn`` may also be an array of
    ``steps`` values. With the defaults the neuron spikes at steps 47 and 94.
    """
    i_syn = np.broadcast_to(np.asarray(i_syn, dtype=float), (steps,))
    vmem = [float(v0)]
    st = []
    for t in range(steps):
        if vmem[t] >= v_th:
            vmem[t] = v_reset
            st.append(t)
        dv = (1 / tau) * (-vmem[t] + i_syn[t])
        vmem.append(vmem[t] + dv)
    return EulerTrace(st, np.array(vmem))


# Biophysical LIF (neuromatch W2D3) -------------------------------------------------------------


def default_pars(**kwargs) -> dict:
    """The notebook's parameter dictionary; every entry can be overridden by keyword.

    ``V_th`` -55 mV, ``V_reset`` -75 mV, ``tau_m`` 10 ms, ``g_L`` 10 nS, ``V_init`` -75 mV,
    ``E_L`` -75 mV, ``tref`` 2 ms, ``T`` 500 ms, ``dt`` 0.1 ms; ``range_t`` is
    ``np.arange(0, T, dt)`` (recomputed after the overrides).
    """
    pars = {
        "V_th": -55.0,  # spike threshold [mV]
        "V_reset": -75.0,  # reset potential [mV]
        "tau_m": 10.0,  # membrane time constant [ms]
        "g_L": 10.0,  # leak conductance [nS]
        "V_init": -75.0,  # initial potential [mV]
        "E_L": -75.0,  # leak reversal potential [mV]
        "tref": 2.0,  # refractory time [ms]
        "T": 500.0,  # total duration of the simulation [ms]
        "dt": 0.1,  # time step [ms]
    }
    pars.update(kwargs)
    pars["range_t"] = np.arange(0, pars["T"], pars["dt"])
    return pars


def my_GWN(pars: dict, mu, sig, myseed=False) -> np.ndarray:
    """Gaussian white noise current [pA], neuromatch W2D3 convention.

    ``I[t] = mu + sig * xi[t] / sqrt(dt / 1000)``, ``xi`` standard normal, ``dt`` in ms (the
    ``/ 1000`` turns it into seconds, so ``sig`` is in pA * sqrt(s)). With ``dt = 0.1`` ms each
    sample has a standard deviation of ``100 * sig`` pA; through the membrane that is a
    per-step voltage kick of standard deviation ``sig * dt / (tau_m * g_L * sqrt(dt / 1000))``
    mV (0.25 mV for ``sig = 2.5`` with the default parameters).

    ``myseed`` (an int) gives the same samples as the notebook's ``np.random.seed(myseed);
    np.random.randn(Lt)``, without touching numpy's global generator; ``False`` draws fresh ones.
    """
    dt = pars["dt"]
    lt = pars["range_t"].size
    rng = np.random.RandomState(myseed) if myseed else np.random.RandomState()
    return mu + sig * rng.randn(lt) / np.sqrt(dt / 1000.0)


def refractory_steps(pars: dict) -> int:
    """Refractory period in steps, as the notebook counts it.

    The notebook sets ``tr = tref / dt`` and counts it down by 1 while ``tr > 0``: that is
    ``ceil(tref / dt)`` steps (20 for 2 ms at 0.1 ms). A relative tolerance of 1e-9 keeps a
    quotient like ``0.3 / 0.1 = 2.9999999999999996`` at 3.
    """
    q = pars["tref"] / pars["dt"]
    return max(0, int(np.ceil(q - 1e-9 * max(1.0, abs(q)))))


class LIFBatch(NamedTuple):
    """Result of :func:`lif_batch`.

    Members
    -------
    v : float array [Lt, N]
        Membrane traces [mV], the notebook's ``v`` for each neuron.
    spikes : bool array [Lt, N]
        ``spikes[t, n]``: neuron ``n`` spiked at step ``t``.
    """

    v: np.ndarray
    spikes: np.ndarray

    def spike_steps(self, neuron: int = 0) -> np.ndarray:
        return np.flatnonzero(self.spikes[:, neuron])


def lif_batch(pars: dict, currents) -> LIFBatch:
    """Simulate ``N`` independent notebook LIF neurons for ``len(pars['range_t'])`` steps.

    ``currents`` [pA] is one constant per neuron ([N]) or one value per step and neuron
    ([Lt, N]). Same ordering as the notebook (neuromatch W2D3 ``run_LIF``), for each step
    ``it``::

        if tr > 0:            v[it] = V_reset; tr -= 1
        elif v[it] >= V_th:   spike at it; v[it] = V_reset; tr = tref / dt
        v[it+1] = v[it] + (-(v[it] - E_L) + I[it] / g_L) * (dt / tau_m)

    One deliberate difference in *how* (not *what*) it computes: the state is the deviation
    ``u = v - E_L`` and the threshold test is ``u >= V_th - E_L``. In exact arithmetic this is
    the same loop. In floating point it is what guarantees that ``V_inf == V_th`` (200 pA with
    the default parameters) never spikes: ``u`` approaches ``I / g_L`` strictly from below,
    and a step of ``(dt / tau_m) * (target - u)`` with ``dt / tau_m < 1/2`` leaves a gap of
    more than half an ulp, so it can never round onto the target (at exactly 1/2 the last
    step is a tie); ``v`` itself, computed around -55 mV, carries cancellation errors of
    order 1e-14 mV that nothing stops from landing on ``V_th``.
    """
    V_th, V_reset = pars["V_th"], pars["V_reset"]
    tau_m, g_L, E_L = pars["tau_m"], pars["g_L"], pars["E_L"]
    lt = pars["range_t"].size
    cur = np.asarray(currents, dtype=float)
    if cur.ndim == 0:
        cur = cur.reshape(1)
    if cur.ndim == 1:
        cur = np.broadcast_to(cur, (lt, cur.size))
    if cur.ndim != 2 or cur.shape[0] != lt:
        raise ValueError(
            f"currents must have shape [N] or [{lt}, N] (Lt = len(range_t)), not {cur.shape}"
        )
    n = cur.shape[1]
    target = cur / g_L  # the deviation v - E_L each current holds the membrane at
    c = pars["dt"] / tau_m
    u_th = V_th - E_L
    u_reset = V_reset - E_L
    t_ref = refractory_steps(pars)

    u = np.empty((lt, n))
    spikes = np.zeros((lt, n), dtype=bool)
    if lt == 0:
        return LIFBatch(u, spikes)
    u[0] = pars["V_init"] - E_L
    tr = np.zeros(n, dtype=np.int64)
    held = np.zeros((lt, n), dtype=bool)
    for it in range(lt - 1):
        ui = u[it]
        refr = tr > 0
        fire = (ui >= u_th) & ~refr
        spikes[it] = fire
        reset = refr | fire
        held[it] = reset
        ui = np.where(reset, u_reset, ui)
        tr = np.where(refr, tr - 1, np.where(fire, t_ref, 0))
        u[it] = ui
        u[it + 1] = ui + (target[it] - ui) * c
    # The notebook's loop stops at Lt - 1: the last sample is integrated, never tested.
    v = u + E_L
    v[held] = V_reset  # spike and refractory samples read exactly V_reset, as in the notebook
    return LIFBatch(v, spikes)


class LIFRun(NamedTuple):
    """Result of :func:`lif_steps`.

    Members
    -------
    v : float array [Lt]
        Membrane trace [mV], the notebook's ``v``: ``V_reset`` at the spike step and during
        the refractory period.
    spikes : int array
        Steps at which the neuron spiked (the notebook's ``rec_spikes`` before ``* dt``).
    """

    v: np.ndarray
    spikes: np.ndarray


def lif_steps(pars: dict, Iinj) -> LIFRun:
    """One neuron of :func:`lif_batch`; ``Iinj`` is a constant or one current per step [pA]."""
    lt = pars["range_t"].size
    cur = np.broadcast_to(np.asarray(Iinj, dtype=float), (lt,))
    res = lif_batch(pars, cur[:, None])
    return LIFRun(res.v[:, 0], res.spike_steps(0).astype(np.int64))


def run_lif(pars: dict, Iinj):
    """The notebook's ``run_LIF(pars, Iinj)``: returns ``(v, sp)``, spike times ``sp`` in ms.

    ``Iinj`` is a constant current [pA] or an array of one current per step (e.g. from
    :func:`my_GWN`). See :func:`lif_steps` for the loop.
    """
    v, spikes = lif_steps(pars, Iinj)
    return v, spikes * pars["dt"]


def isi_rate(spike_times, *, dt: float = 1.0) -> float:
    """Firing rate as ``1 / mean inter-spike interval``, in 1/unit of ``spike_times * dt``.

    With spike times in ms (or steps and ``dt`` in ms) multiply by 1000 for Hz. Fewer than two
    spikes give 0: no interval, no rate. A spike count over a window is *not* used: it depends
    on where the window cuts the first and last intervals.
    """
    t = np.asarray(spike_times, dtype=float) * dt
    if t.size < 2:
        return 0.0
    return float(1.0 / np.mean(np.diff(t)))


def isi_rates(spikes, *, dt: float = 1.0) -> np.ndarray:
    """``1 / mean ISI`` of every column of ``spikes`` [steps, K]; NaN below two spikes.

    Unlike :func:`isi_rate`, a neuron with fewer than two spikes gets NaN, not 0: its rate is
    not measured by the window, which is not the same as a rate of 0 Hz (a neuron firing at
    30 Hz fires once in a 40 ms window). Spike steps times ``dt`` give the unit: steps and
    ``dt`` in ms give 1/ms (multiply by 1000 for Hz).
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise ValueError(f"spikes must be a [steps, K] array, not of shape {spikes.shape}")
    out = np.full(spikes.shape[1], np.nan)
    for k in range(spikes.shape[1]):
        t = np.flatnonzero(spikes[:, k])
        if t.size >= 2:
            out[k] = 1.0 / (float(t[-1] - t[0]) * dt / (t.size - 1))
    return out


def second_spike_time(pars: dict, I):  # noqa: E741 (physics name)
    """Time [ms] of the second spike of the continuous-time LIF under a constant ``I`` [pA].

    The first spike comes at ``tau_m ln((V_inf - V_init) / (V_inf - V_th))`` (at 0 when
    ``V_init >= V_th``, where the notebook's loop spikes at its first step), the second one
    inter-spike interval later (``t_ref + tau_m ln((V_inf - V_reset) / (V_inf - V_th))``).
    ``inf`` where ``V_inf <= V_th`` (no spike at all). A rate of ``1 / mean ISI`` needs two
    spikes, so a run shorter than this cannot measure the rate at ``I``.
    """
    current = np.asarray(I, dtype=float)
    v_inf = pars["E_L"] + current / pars["g_L"]
    above = v_inf > pars["V_th"]
    safe_inf = np.where(above, v_inf, pars["V_th"] + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        isi = pars["tref"] + pars["tau_m"] * np.log(
            (safe_inf - pars["V_reset"]) / (safe_inf - pars["V_th"]))
        if pars["V_init"] >= pars["V_th"]:
            first = np.zeros_like(safe_inf)
        else:
            first = pars["tau_m"] * np.log(
                (safe_inf - pars["V_init"]) / (safe_inf - pars["V_th"]))
    t2 = np.where(above, first + isi, np.inf)
    return float(t2) if t2.ndim == 0 else t2


def analytic_rate(pars: dict, I):  # noqa: E741 (physics name)
    """Firing rate [Hz] of the continuous-time LIF for a constant current ``I`` [pA].

    ``r = 1 / (t_ref + tau_m ln((V_inf - V_reset) / (V_inf - V_th)))`` with
    ``V_inf = E_L + I / g_L``; 0 when ``V_inf <= V_th`` (the membrane never reaches the
    threshold). Times in ms, so the result is multiplied by 1000. ``I`` may be an array.
    """
    current = np.asarray(I, dtype=float)
    v_inf = pars["E_L"] + current / pars["g_L"]
    above = v_inf > pars["V_th"]
    safe_inf = np.where(above, v_inf, pars["V_th"] + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_isi = pars["tref"] + pars["tau_m"] * np.log(
            (safe_inf - pars["V_reset"]) / (safe_inf - pars["V_th"])
        )
    rate = np.where(above, 1000.0 / t_isi, 0.0)
    return float(rate) if rate.ndim == 0 else rate


# Constant-leak integrate-and-fire, sinabs style ----------------------------------------------


class IAFTrace(NamedTuple):
    """Result of :func:`iaf`.

    Members
    -------
    spikes : int array [steps]
        Spikes emitted at each step (more than 1 possible in multi-spike mode).
    v : float array [steps + 1]
        The notebook's ``vmem``: 0, then ``neuron.state`` after each step (before the
        subtraction of that step's spikes, which sinabs applies at the next step).
    """

    spikes: np.ndarray
    v: np.ndarray

    @property
    def spike_steps(self) -> list[int]:
        return np.flatnonzero(self.spikes).tolist()


def iaf(
    inp,
    steps: int = 100,
    *,
    threshold: float = 1.0,
    threshold_low: float | None = -1.0,
    multi_spike: bool = True,
    dtype=np.float32,
) -> IAFTrace:
    """The old ``sinabs.layers.SpikingLayer`` (sinabs 0.x, default arguments) on one neuron.

    For each step ``t`` (``inp`` is a constant or an array of ``steps`` values)::

        state = inp[t] + state - spikes[t-1] * threshold     # reset by subtraction
        state = max(state, threshold_low)                     # lower clamp (None: none)
        spikes[t] = floor(state / threshold) if state > 0 else 0

    ``multi_spike=True`` is what sinabs did: a neuron can emit several spikes in one step, so
    the spike count over ``steps`` grows without bound with the input, exactly like a ReLU
    (``floor(steps * bias)`` for a constant bias). ``multi_spike=False`` emits at most one
    spike per step (``state >= threshold``), like later sinabs' ``SingleSpike``.

    ``dtype`` defaults to float32, the precision of the notebook's torch tensors.

    With bias 0.025 the spikes come at steps 40 and 80: in exact arithmetic the state would
    reach 1.0 at step 39, but forty float32 additions of 0.025 give 0.9999996.

    How the binary-spike lifgate neuron differs (CONST leak 0, SUBTRACT reset): it tests the
    threshold on the *stored* membrane at the start of a step, then integrates, so in exact
    arithmetic each spike comes one step later than here (the integer membrane has no float32
    round-off; with bias 0.025 it spikes twice in 100 steps all the same); it emits at most one
    spike per step, so its rate saturates at one
    spike per step for ``bias >= threshold`` (the membrane then keeps growing by
    ``bias - threshold`` per step until it saturates at VMAX) where sinabs' count keeps
    growing; and it has no lower clamp at -1 (only the saturation at VMIN), which matters for
    the membrane trace under negative input but not for the spike count.
    """
    if steps < 0:
        raise ValueError(f"steps must be a non-negative integer, not {steps!r}")
    x = np.broadcast_to(np.asarray(inp, dtype=dtype), (steps,))
    thr = dtype(threshold)
    low = None if threshold_low is None else dtype(threshold_low)
    state = dtype(0)
    act = dtype(0)
    spikes = np.zeros(steps, dtype=np.int64)
    vmem = np.zeros(steps + 1, dtype=dtype)
    for t in range(steps):
        state = dtype(x[t] + state) - dtype(act * thr)
        if low is not None and state < low:
            state = low
        if multi_spike:
            act = dtype(np.trunc(state / thr)) if state > 0 else dtype(0)
        else:
            act = dtype(1) if state >= thr else dtype(0)
        spikes[t] = int(act)
        vmem[t + 1] = state
    return IAFTrace(spikes, vmem.astype(float))


def iaf_sweep(biases=None, steps: int = 100, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Spike count over ``steps`` steps against a constant bias: the notebook's activation plot.

    ``biases`` defaults to the notebook's ``np.arange(-5, 5, 0.2)``. Returns
    ``(biases, counts)``. Other keywords go to :func:`iaf`.
    """
    if biases is None:
        biases = np.arange(-5, 5, 0.2)
    biases = np.asarray(biases, dtype=float)
    counts = np.array([iaf(b, steps, **kwargs).spikes.sum() for b in biases], dtype=np.int64)
    return biases, counts
