"""Figures of ``lifgate demo`` and of ``examples/explore.ipynb`` (matplotlib).

Every function builds a :class:`matplotlib.figure.Figure` with the object-oriented API (no
``pyplot``, no global state), so it works under any backend: files are written through the
Agg canvas, and a notebook displays the returned figure. Each takes the experiment objects of
:mod:`lifgate.app.demo` and the list of sources to draw (``"fixed"`` and, when the RTL ran,
``"rtl"``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lifgate.app.progress import progress_bar
from lifgate.checks import write_output
from lifgate.config import ConfigError
from lifgate.golden.float_ref import analytic_rate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "demo_plots",
    "euler_figure",
    "explore_figure",
    "iaf_figure",
    "lif_membrane_figure",
    "noise_figure",
    "rate_figure",
    "save",
]

# One look per source, the same in every figure.
STYLE = {
    "analytic": {"color": "0.35", "ls": "-", "lw": 1.5, "label": "analytic (continuous time)"},
    "float": {"color": "C0", "ls": "-", "lw": 1.6, "label": "float (notebook)"},
    "fixed": {"color": "C1", "ls": "--", "lw": 1.4, "label": "fixed point (golden model)"},
    "rtl": {"color": "C3", "ls": ":", "lw": 2.0, "label": "RTL"},
    "sinabs": {"color": "C2", "ls": "-", "lw": 1.6, "label": "float, sinabs multi-spike"},
}
NAMES = {"float": "float", "fixed": "fixed point", "rtl": "RTL", "analytic": "analytic"}
MARKERS = {"analytic": None, "float": "o", "fixed": "x", "rtl": "+", "sinabs": "s"}
THRESHOLD = {"color": "k", "ls": "-.", "lw": 1.0}
DPI = 110


def _fig(w=8.0, h=4.5, rows=1, cols=1, **kw):
    # matplotlib is heavy (over a second to import): only drawing pays for it, not every
    # lifgate command (the CLI imports every command module, demo included, to list them).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _label(source: str, sim: str | None = None) -> str:
    label = STYLE[source]["label"]
    if source == "rtl" and sim:
        label = f"RTL ({sim})"
    return label


def _line(ax, x, y, source, sim=None, marker=False, **extra):
    label = extra.pop("label", _label(source, sim))
    st = {k: v for k, v in STYLE[source].items() if k != "label"}
    st.update(extra)
    if marker and MARKERS[source]:
        st.setdefault("marker", MARKERS[source])
        st.setdefault("ms", 5)
    return ax.plot(x, y, label=label, **st)


def _sim_of(run) -> str | None:
    return run.rtl.sim if run.rtl is not None else None


def save(fig: Figure, path, *, name: str = "--out") -> Path:
    """Write ``fig`` as a PNG (parent folders created); return the path.

    Written through :func:`lifgate.checks.write_output`: a symbolic link is written through, a
    device written into, a regular file replaced atomically; a failure is a ``ConfigError``
    naming ``name``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{name}: cannot create {str(path.parent)!r}: {e.strerror or e}") \
            from None
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    write_output(name, path, buf.getvalue())
    return path


def _hz(rate: float) -> str:
    """A rate for a label: ``55.3 Hz``, or ``no rate`` where fewer than two spikes gave none."""
    return "no rate" if math.isnan(rate) else f"{rate:.1f} Hz"


# Unit-free seeds ------------------------------------------------------------------------------


def euler_figure(ux, sources=("fixed",)) -> Figure:
    """Euler LIF seed: membrane against threshold, float vs fixed point vs RTL."""
    fig, axes = _fig(8.0, 4.2)
    ax = axes[0, 0]
    t = np.arange(ux.euler.v.size)
    sim = _sim_of(ux.run)
    _line(ax, t, ux.euler_trace("float"), "float")
    for s in sources:
        _line(ax, t, ux.euler_trace(s), s, sim)
    ax.axhline(10.0, label="threshold $v_{th}$ = 10", **THRESHOLD)
    for k, s in enumerate(ux.euler_spikes("float")):
        ax.axvline(s, color="C0", alpha=0.25, lw=6, label="float spikes" if k == 0 else None)
    spikes = {NAMES[s]: ux.euler_spikes(s) for s in ("float", *sources)}
    ax.set_title(
        "Euler LIF seed ($\\tau$ = 20 steps, threshold 10, input 11): spikes at "
        + ", ".join(f"{k} {v}" for k, v in spikes.items()),
        fontsize=10,
    )
    ax.set_xlabel("time step $t$")
    ax.set_ylabel("membrane $V_{mem}$ (unit-free)")
    ax.set_xlim(0, t[-1])
    fig.legend(loc="outside lower center", fontsize=8, ncols=5)
    ax.grid(alpha=0.3)
    return fig


def iaf_figure(ux, sources=("fixed",)) -> Figure:
    """IAF seed: membrane trace with bias 0.025, and spike count against bias (ReLU)."""
    fig, axes = _fig(11.0, 4.2, 1, 2)
    ax = axes[0, 0]
    t = np.arange(ux.iaf.v.size)
    sim = _sim_of(ux.run)
    _line(ax, t, ux.iaf_trace("float"), "sinabs",
          label=f"float, sinabs (spikes at {ux.iaf_spikes('float')})")
    for s in sources:
        _line(ax, t, ux.iaf_trace(s), s, sim,
              label=f"{_label(s, sim)} (spikes at {ux.iaf_spikes(s)})")
    ax.axhline(1.0, label="threshold 1", **THRESHOLD)
    ax.set_title("IAF membrane, bias 0.025 per step, reset by subtraction\n(lifgate tests the "
                 "threshold before integrating: each spike one step later)", fontsize=10)
    ax.set_xlabel("time step $t$")
    ax.set_ylabel("membrane $V_{mem}$ (unit-free)")
    ax.set_xlim(0, t[-1])
    ax.set_ylim(-0.05, 1.45)  # room for the legend above the trace
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[0, 1]
    b = ux.biases
    ax.plot(b, np.maximum(0.0, b) * ux.run.steps, color="0.6", lw=4, alpha=0.5,
            label="ReLU: steps $\\times$ max(0, bias)")
    _line(ax, b, ux.sweep_counts("sinabs"), "sinabs", marker=True, ms=3)
    _line(ax, b, ux.sweep_counts("float"), "float", marker=True, ms=3,
          label="float, one spike per step at most")
    for s in sources:
        _line(ax, b, ux.sweep_counts(s), s, sim, marker=True)
    ax.set_title(f"IAF activation: spike count in {ux.run.steps} steps\n(lifgate emits at "
                 "most one spike per step)", fontsize=10)
    ax.set_xlabel("input (bias per step, unit-free)")
    ax.set_ylabel("output spike count")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


# Biophysical LIF -----------------------------------------------------------------------------


def _mv_axes(ax, lif, window, legend_room=0.3):
    p = lif.pars
    ax.axhline(p["V_th"], label=f"$V_{{th}}$ = {p['V_th']:g} mV", **THRESHOLD)
    ax.axhline(p["V_reset"], color="0.5", ls=":", lw=1.0,
               label=f"$V_{{reset}}$ = {p['V_reset']:g} mV")
    ax.set_xlim(0, window)
    # Room below V_reset for the legend, so that it hides no trace.
    lo, hi = ax.get_ylim()
    span = p["V_th"] - p["V_reset"]
    ax.set_ylim(min(lo, p["V_reset"] - legend_room * span), max(hi, p["V_th"] + 0.05 * span))
    ax.set_ylabel("membrane potential $V_m$ [mV]")
    ax.grid(alpha=0.3)


def lif_membrane_figure(lif, current: float, sources=("fixed",),
                        window: float = 100.0) -> Figure:
    """Membrane under the constant ``current`` [pA] against the threshold; fixed - float below."""
    fig, axes = _fig(9.0, 5.6, 2, 1, sharex=True, height_ratios=[3, 1])
    ax = axes[0, 0]
    t = lif.time_ms
    window = min(window, t[-1])
    sim = _sim_of(lif.const)
    ref = lif.trace_mV("const", "float", current)
    _line(ax, t, ref, "float")
    for s in sources:
        _line(ax, t, lif.trace_mV("const", s, current), s, sim)
    _mv_axes(ax, lif, window)
    k = lif.neuron_of(current) // lif.const.config.shape.group_size
    rates = {NAMES[s]: lif.rates("const", s)[k] for s in ("float", *sources)}
    ax.set_title(
        f"LIF, constant input {current:g} pA ($\\tau_m$ = {lif.pars['tau_m']:g} ms, "
        f"$t_{{ref}}$ = {lif.pars['tref']:g} ms, dt = {lif.dt:g} ms): "
        + ", ".join(f"{k} {_hz(v)}" for k, v in rates.items()),
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8, ncols=2)
    ax = axes[1, 0]
    for s in sources:
        diff = lif.trace_mV("const", s, current) - ref
        _line(ax, t, diff * 1000.0, s, sim)
    ax.axhspan(-lif.q.lsb * 500, lif.q.lsb * 500, color="0.85",
               label=f"$\\pm$ LSB/2 = {lif.q.lsb * 500:.2f} $\\mu$V")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + (hi - lo) * 0.8)  # room for the legend above the curves
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("minus float [$\\mu$V]")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncols=3)
    return fig


def rate_figure(lif, sources=("fixed",)) -> Figure:
    """Firing rate against constant current: analytic, float, fixed point, RTL; errors below."""
    fig, axes = _fig(8.5, 6.0, 2, 1, sharex=True, height_ratios=[3, 1.3])
    ax = axes[0, 0]
    sim = _sim_of(lif.const)
    cur = lif.currents
    fine = np.linspace(cur.min(), cur.max(), 1001)
    _line(ax, fine, float_ref_rate(lif, fine), "analytic")
    _line(ax, cur, lif.rates("const", "float"), "float", marker=True, ls="none", ms=7,
          mfc="none")
    for s in sources:
        _line(ax, cur, lif.rates("const", s), s, sim, marker=True, ls="none", ms=7)
    rheo = lif.q.rheobase()
    if rheo:
        ax.axvline(rheo, color="0.6", ls=":", lw=1, label=f"rheobase {rheo:g} pA")
    # Where the LIF fires but a model gave fewer than two spikes there is no rate to plot:
    # shade those currents (a marker at 0 would read as 0 Hz).
    an = lif.analytic_rates()
    missing = (an > 0) & np.any([np.isnan(lif.rates("const", s)) for s in ("float", *sources)],
                                axis=0)
    half = float(np.min(np.diff(cur))) / 2 if cur.size > 1 else 1.0
    for k, c in enumerate(cur[missing]):
        ax.axvspan(c - half, c + half, color="0.88", lw=0,
                   label=f"no rate: < 2 spikes in {lif.pars['T']:g} ms" if k == 0 else None)
    ax.set_ylabel("firing rate [Hz] (1 / mean ISI)")
    ax.set_title(
        f"LIF rate curve, one neuron per current, {lif.pars['T']:g} ms "
        f"({lif.steps} steps of {lif.dt:g} ms)",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1, 0]
    fl = lif.rates("const", "float")
    an = lif.analytic_rates()
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in sources:
            e = np.where(fl > 0, (lif.rates("const", s) / fl - 1) * 100, np.nan)
            _line(ax, cur, e, s, sim, marker=True, ls="none",
                  label=f"{_label(s, sim)} vs float")
        e = np.where(an > 0, (fl / an - 1) * 100, np.nan)
        _line(ax, cur, e, "float", marker=True, ls="none", ms=4, mfc="none",
              label="float vs analytic")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("input current $I$ [pA]")
    ax.set_ylabel("rate error [%]")
    ax.legend(loc="lower left", fontsize=7)  # no rate below the rheobase: empty corner
    ax.grid(alpha=0.3)
    return fig


def float_ref_rate(lif, currents):

    return np.asarray(analytic_rate(lif.pars, currents), dtype=float)


def noise_figure(lif, current: float, sources=("fixed",), window: float = 200.0) -> Figure:
    """White noise at the mean ``current`` [pA]: membrane (ideal vs noisy) and rate curves."""
    fig, axes = _fig(9.0, 8.0, 2, 1, height_ratios=[1, 1.1])
    ax = axes[0, 0]
    t = lif.time_ms
    window = min(window, t[-1])
    sim = _sim_of(lif.chip_noise)
    gain = lif.chip_noise.config.noise.gain
    ax.plot(t, lif.trace_mV("const", "float", current), color="0.3", lw=1.2,
            label="ideal (no noise), float")
    ax.plot(t, lif.trace_mV("float_noise", "float", current), color="C0", lw=0.9,
            label=f"float + white noise ($\\sigma$ = {lif.sig:g})")
    src = "rtl" if "rtl" in sources else "fixed"
    who = f"RTL ({sim})" if src == "rtl" else "fixed point"
    ax.plot(t, lif.trace_mV("float_noise", src, current), color="C1", lw=0.9, ls="--",
            label=f"{who}, same noise samples streamed in")
    ax.plot(t, lif.trace_mV("chip_noise", src, current), color="C3", lw=0.9, alpha=0.8,
            label=f"{who}, on-chip noise (gain {gain})")
    _mv_axes(ax, lif, window, legend_room=0.5)
    ax.set_title(
        f"LIF with Gaussian white noise, mean input {current:g} pA "
        f"(per-step kick {lif.q.noise_std(gain):.2f} mV)",
        fontsize=10,
    )
    ax.set_xlabel("time [ms]")
    ax.legend(loc="lower right", fontsize=7, ncols=2)

    ax = axes[1, 0]
    cur = lif.currents
    ax.plot(cur, lif.rates("const", "float"), color="0.3", lw=1.2, label="ideal, float")
    ax.plot(cur, lif.rates("float_noise", "float"), color="C0", marker="o", ms=4, lw=1,
            label="noisy, float")
    for s in sources:
        st = {"rtl": dict(marker="+", ms=8), "fixed": dict(marker="x", ms=6)}[s]
        w = f"RTL ({sim})" if s == "rtl" else "fixed point"
        ax.plot(cur, lif.rates("float_noise", s), color="C1", ls="none", label=
                f"noisy, {w}, float noise streamed", **st)
        ax.plot(cur, lif.rates("chip_noise", s), color="C3", ls="none", label=
                f"noisy, {w}, on-chip noise", **st)
    rheo = lif.q.rheobase()
    if rheo:
        ax.axvline(rheo, color="0.6", ls=":", lw=1, label=f"rheobase {rheo:g} pA")
    ax.set_xlabel("mean input current $\\mu$ [pA]")
    ax.set_ylabel("firing rate [Hz] (1 / mean ISI)")
    ax.set_title("Rate curve: ideal against noisy input", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


# All of them -------------------------------------------------------------------------------


def demo_plots(result, out, *, trace_current: float, noise_trace_current: float,
               progress: bool = False) -> dict:
    """Write every figure of a :class:`lifgate.app.demo.DemoResult` into ``out``; return paths.

    ``trace_current`` and ``noise_trace_current`` [pA] pick the neurons of the membrane
    traces without and with noise (the demo's ``TRACE_CURRENT`` and ``NOISE_TRACE_CURRENT``).
    """
    out = Path(out)
    ux, lif = result.unitless, result.lif
    sources = ["fixed"]
    runs = [ux.run, lif.const, lif.chip_noise, lif.float_noise]
    if all(r.rtl is not None and r.rtl.spikes is not None for r in runs):
        sources.append("rtl")
    makers = {
        "euler_lif": lambda: euler_figure(ux, sources),
        "lif_membrane": lambda: lif_membrane_figure(lif, trace_current, sources),
        "lif_rate": lambda: rate_figure(lif, sources),
        "lif_noise": lambda: noise_figure(lif, noise_trace_current, sources),
        "iaf": lambda: iaf_figure(ux, sources),
    }
    paths = {}
    for name, make in progress_bar(makers.items(), total=len(makers), desc="plots", unit="plot",
                                   enabled=progress):
        paths[name] = save(make(), out / f"{name}.png")
    return paths


def explore_figure(lif, current: float, sources=("fixed",), rates=None) -> Figure:
    """The notebook's figure: ideal and noisy membrane traces, and the rate curve.

    ``lif`` is a :class:`lifgate.app.demo.LIFExperiments` with one neuron at ``current``;
    ``rates`` an optional :class:`lifgate.compilers.quantize.RateSweep` for the right-hand panel.
    """
    fig, axes = _fig(12.0, 6.4, 2, 2, width_ratios=[2.2, 1])
    t = lif.time_ms
    sim = _sim_of(lif.const)
    gain = lif.chip_noise.config.noise.gain

    ax = axes[0, 0]
    _line(ax, t, lif.trace_mV("const", "float", current), "float")
    for s in sources:
        _line(ax, t, lif.trace_mV("const", s, current), s, sim)
    _mv_axes(ax, lif, t[-1])
    ax.set_title(f"ideal: constant {current:g} pA", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, ncols=2)

    ax = axes[1, 0]
    ax.plot(t, lif.trace_mV("float_noise", "float", current), color="C0", lw=0.9,
            label="float + white noise")
    src = "rtl" if "rtl" in sources else "fixed"
    who = f"RTL ({sim})" if src == "rtl" else "fixed point"
    ax.plot(t, lif.trace_mV("float_noise", src, current), color="C1", lw=0.9, ls="--",
            label=f"{who}, same noise streamed in")
    ax.plot(t, lif.trace_mV("chip_noise", src, current), color="C3", lw=0.9, alpha=0.8,
            label=f"{who}, on-chip noise (gain {gain})")
    _mv_axes(ax, lif, t[-1])
    ax.set_title(f"noisy: white noise $\\sigma$ = {lif.sig:g} "
                 f"(per-step kick {lif.q.noise_std(gain):.3f} mV)", fontsize=10)
    ax.set_xlabel("time [ms]")
    ax.legend(loc="lower right", fontsize=7, ncols=2)

    ax = axes[0, 1]
    if rates is not None:
        ax.plot(rates.currents, rates.analytic, **{k: v for k, v in STYLE["analytic"].items()})
        ax.plot(rates.currents, rates.float, **{k: v for k, v in STYLE["float"].items()})
        ax.plot(rates.currents, rates.fixed, **{k: v for k, v in STYLE["fixed"].items()})
        ax.axvline(current, color="0.6", ls=":", lw=1, label=f"{current:g} pA")
        ax.set_xlabel("input current $I$ [pA]")
        ax.set_ylabel("firing rate [Hz]")
        ax.set_title("rate curve (1 / mean ISI)", fontsize=10)
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    else:
        ax.set_axis_off()

    ax = axes[1, 1]
    ax.set_axis_off()
    q = lif.q
    p = q.params
    text = [
        f"membrane: {q.shape.v_width} bits, LSB 2^-{q.exponent} mV",
        f"  = {q.lsb * 1000:.3g} uV, origin {q.origin:g} mV",
        f"V_th {p.v_th}, V_reset {p.v_reset}, E_L {p.v_rest}",
        f"leak {p.leak_mode.name.lower()} {p.leak} (tau_eff {q.tau_eff:.4g} ms)",
        f"t_ref {p.t_ref} steps, input {q.lsb_per_pA:.4g} LSB/pA",
        f"bias for {current:g} pA: {lif.const.config.params[0].bias}",
        f"noise gain {gain}",
    ]
    for s in ("float", *sources):
        r = lif.rates("const", s)[0]
        rn = lif.rates("float_noise", s)[0]
        text.append(f"{s}: {_hz(r)} ideal, {_hz(rn)} noisy")
    if "fixed" in sources:
        text.append(f"fixed, on-chip noise: {_hz(lif.rates('chip_noise', 'fixed')[0])}")
    if lif.const.rtl is not None:
        exact = all(r.rtl is not None and r.rtl.bit_exact
                    for r in (lif.const, lif.chip_noise, lif.float_noise))
        text.append(f"RTL ({sim}) vs golden: {'bit-exact' if exact else 'MISMATCH'}")
    ax.text(0.0, 1.0, "\n".join(text), va="top", ha="left", family="monospace", fontsize=8,
            transform=ax.transAxes)
    return fig
