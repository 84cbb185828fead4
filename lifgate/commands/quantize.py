"""``lifgate quantize``: biological LIF parameters to a fixed-point configuration.

Prints the chosen scales, the integer parameters with the values they stand for, and the
firing-rate error of the fixed-point model against the analytic LIF rate (and, for context,
of the notebook's float Euler model). ``--json`` prints the same as one JSON object with at
least ``config`` (``Config.to_dict()``) and ``rate_error_max_pct``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from lifgate.config import ConfigError
from lifgate.quantize import BIO_DEFAULTS, quantize, quantize_euler, quantize_iaf

_HELP = {
    "V_th": "spike threshold [mV]",
    "V_reset": "reset potential [mV]",
    "tau_m": "membrane time constant [ms]",
    "g_L": "leak conductance [nS]",
    "V_init": "initial potential [mV]",
    "E_L": "leak reversal potential [mV]",
    "tref": "refractory time [ms]",
    "dt": "time step [ms]",
    "T": "duration of the rate measurement [ms]",
}


def register(subparsers, summary):
    p = subparsers.add_parser(
        "quantize",
        help=summary,
        description=summary + ". Defaults are the seed notebook's (default_pars()).",
    )
    g = p.add_argument_group("neuron parameters (the notebook's names)")
    for name, text in _HELP.items():
        g.add_argument(f"--{name}", type=float, default=None, metavar="X",
                       help=f"{text}; default {BIO_DEFAULTS[name]:g}")
    p.add_argument("--width", type=int, default=None, metavar="N",
                   help="membrane and input width in bits (v_width = i_width), 4 to 32; default 16")
    p.add_argument("--leak", choices=("mult", "shift"), default="mult",
                   help="leak mode; shift needs tau_m/dt to be a power of two (default: mult)")
    p.add_argument("--sigma", type=float, default=0.0, metavar="SIG",
                   help="white noise amplitude of the notebook's my_GWN [pA*sqrt(s)]: sets the "
                   "noise gain in the printed configuration (default 0: off)")
    p.add_argument("--sweep", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="currents [pA] of the rate comparison (default 1.25 to 2.5 x rheobase: "
                   "250 to 500 pA for the defaults)")
    p.add_argument("--points", type=int, default=251,
                   help="number of currents in the sweep (default 251: 1 pA apart by default)")
    p.add_argument("--model", choices=("lif", "euler", "iaf"), default="lif",
                   help="lif: the biophysical LIF (default); euler, iaf: the unit-free seed "
                   "neurons (tau 20, threshold 10, input 11; IAF threshold 1, bias 0.025)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=run)


def run(args) -> int:
    given = {name: getattr(args, name) for name in _HELP if getattr(args, name) is not None}
    if args.model != "lif":
        if given:
            raise ConfigError(
                f"--model {args.model} takes no neuron parameters (got {', '.join(given)})"
            )
        return _run_seed(args)
    q = quantize(given, width=args.width, leak=args.leak)
    lo, hi = args.sweep if args.sweep is not None else (None, None)
    currents = q.sweep_currents(lo, hi, args.points)
    rep = q.report(currents)
    if args.sigma:
        cfg = q.with_input(0.0, sig=args.sigma)
        rep["config"] = cfg.to_dict()
        rep["noise"] = {"sigma": args.sigma, "gain": cfg.noise.gain,
                        "std_per_step": q.noise_std(cfg.noise.gain)}
    if args.json:
        print(json.dumps(_clean(rep), indent=2, allow_nan=False))
    else:
        print(format_report(q, rep))
    return 0


def _run_seed(args) -> int:
    from lifgate.golden import float_ref
    from lifgate.golden.fixed import simulate

    if args.model == "euler":
        q = quantize_euler(width=args.width, leak=args.leak)
        cfg = q.with_input(11.0)
        fixed = simulate(cfg, 100).spike_times(0)
        ref = float_ref.euler_lif().spikes
        title = "Euler LIF seed (tau 20, v_th 10, i_syn 11, 100 steps)"
    else:
        if args.leak != "mult":
            raise ConfigError("--leak does not apply to --model iaf (constant leak 0)")
        q = quantize_iaf(width=args.width)
        cfg = q.with_input(0.025)
        fixed = simulate(cfg, 100).spike_times(0)
        ref = float_ref.iaf(0.025).spike_steps
        title = "IAF seed (threshold 1, bias 0.025, 100 steps)"
    rep = q.report()
    rep["config"] = cfg.to_dict()
    rep["seed"] = {"float_spikes": list(ref), "fixed_spikes": list(fixed)}
    if args.json:
        print(json.dumps(_clean(rep), indent=2, allow_nan=False))
        return 0
    print(format_report(q, rep, title=title))
    print(f"\nbias {cfg.params[0].bias}: float spikes at {list(ref)}, fixed point at {list(fixed)}")
    return 0


def _clean(x):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _fmt(x, unit=""):
    return f"{x:.6g}{(' ' + unit) if unit else ''}"


def format_report(q, rep: dict, title: str | None = None) -> str:
    """The readable table of ``lifgate quantize``."""
    u = q.units
    sh = q.shape
    lines = []
    lines.append(title or "LIF (mV, ms, nS, pA) -> fixed point")
    lines.append(
        f"shape: v_width {sh.v_width}, i_width {sh.i_width}, decay_frac {sh.decay_frac}, "
        f"ref_width {sh.ref_width}"
    )
    sc = rep["scales"]
    lines.append(
        f"membrane: LSB 2^-{q.exponent} = {_fmt(q.lsb, u)}, origin {_fmt(q.origin, u)} "
        f"(integer 0), range [{_fmt(sc['v_range'][0])}, {_fmt(sc['v_range'][1])}] {u}".rstrip()
    )
    lines.append("")
    lines.append(f"{'parameter':<10}{'given':>14}{'integer':>12}{'effective':>16}{'error':>12}")
    for name, d in rep["parameters"].items():
        lines.append(
            f"{name:<10}{_fmt(d['value'], u):>14}{d['int']:>12}{_fmt(d['effective'], u):>16}"
            f"{d['error']:>12.3g}"
        )
    eff = rep["effective"]
    p = q.params
    tunit = "ms" if u else "steps"
    if eff["leak_mode"] == "mult":
        lines.append(
            f"{'tau_m':<10}{_fmt(q.pars['tau_m'], tunit):>14}{p.leak:>12}"
            f"{_fmt(eff['tau'], tunit):>16}{eff['tau'] - q.pars['tau_m']:>12.3g}"
            f"   (MULT: D = {p.leak} / 2^{sh.decay_frac})"
        )
    elif eff["leak_mode"] == "shift":
        lines.append(
            f"{'tau_m':<10}{_fmt(q.pars['tau_m'], tunit):>14}{p.leak:>12}"
            f"{_fmt(eff['tau'], tunit):>16}{eff['tau'] - q.pars['tau_m']:>12.3g}"
            f"   (SHIFT: k = {p.leak})"
        )
    else:
        lines.append(f"{'leak':<10}{'none':>14}{p.leak:>12}   (CONST, reset by subtraction)")
    lines.append(
        f"{'tref':<10}{_fmt(q.pars['tref'], tunit):>14}{p.t_ref:>12}"
        f"{_fmt(eff['t_ref'], tunit):>16}{eff['t_ref'] - q.pars['tref']:>12.3g}   (steps)"
    )
    iu = "pA" if u else ""
    lines.append(
        f"input: 1 {iu or 'unit'} -> {q.lsb_per_pA:.6g} LSB per step; representable "
        f"[{_fmt(sc['input_range'][0])}, {_fmt(sc['input_range'][1])}] {iu}".rstrip()
    )
    if "noise" in rep:
        n = rep["noise"]
        lines.append(
            f"noise: sigma {n['sigma']:g} pA*sqrt(s) -> gain {n['gain']} "
            f"(per-step kick std {_fmt(n['std_per_step'], u)})"
        )
    rh = rep.get("rheobase")
    if rh and rh.get("current") is not None:
        lines.append("")
        verdict = "no spike" if rh["ok"] else "SPIKES"
        lines.append(
            f"rheobase {_fmt(rh['current'], iu)} (V_inf = V_th) -> input {rh['input']}: "
            f"{verdict}; the membrane settles at {rh['settle']}, {rh['margin_lsb']} LSB "
            f"({_fmt(rh['margin'], u)}) below the threshold ({rh['steps']} steps, "
            f"{rh['spikes']} spikes)"
        )
    if "sweep" in rep:
        sw = rep["sweep"]
        cur = np.asarray(sw["currents"])
        lines.append("")
        lines.append(
            f"firing rate over T = {_fmt(q.pars['T'], tunit)} (1 / mean ISI) against the "
            f"analytic LIF rate, {len(cur)} currents {_fmt(cur[0])} to {_fmt(cur[-1], iu)}:"
        )
        w, wf = rep["rate_error_worst"], rep["float_rate_error_worst"]
        lines.append(
            f"  fixed point   max |error| {rep['rate_error_max_pct']:.3f} %  "
            f"(worst {w['error_pct']:+.3f} % at {_fmt(w['current'], iu)})"
        )
        lines.append(
            f"  float Euler   max |error| {rep['float_rate_error_max_pct']:.3f} %  "
            f"(worst {wf['error_pct']:+.3f} % at {_fmt(wf['current'], iu)})"
        )
        an, fl, fx = (np.asarray(sw[k]) for k in ("analytic", "float", "fixed"))
        every = max(1, (len(cur) - 1) // 10)
        lines.append(
            f"  {'I':>8}{'input':>8}{'analytic':>11}{'float':>10}{'fixed':>10}"
            f"{'err float':>11}{'err fixed':>11}"
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(0, len(cur), every):
                ef = (fl[k] / an[k] - 1) * 100 if an[k] > 0 else float("nan")
                ex = (fx[k] / an[k] - 1) * 100 if an[k] > 0 else float("nan")
                lines.append(
                    f"  {cur[k]:>8.5g}{sw['inputs'][k]:>8}{an[k]:>11.4f}{fl[k]:>10.4f}"
                    f"{fx[k]:>10.4f}{ef:>10.3f}%{ex:>10.3f}%"
                )
        lines.append("  (rates in Hz; error = rate / analytic - 1)")
    return "\n".join(lines)
