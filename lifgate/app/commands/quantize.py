"""``lifgate quantize``: biological LIF parameters to a fixed-point configuration.

Prints the chosen scales, the integer parameters with the values they stand for, and the
firing-rate error of the fixed-point model against the analytic LIF rate (and, for context,
of the notebook's float Euler model). ``--json`` prints the same as one JSON object with at
least ``ok``, ``warnings``, ``config`` (``Config.to_dict()``) and ``rate_error_max_pct``.
``--save FILE.toml`` (or ``.json``) writes the configuration in the format ``Config.load``
reads, for ``lifgate generate --config FILE.toml``.

How a configuration that cannot serve is reported:

* **error** (exit code 2, nothing saved): the fixed-point neuron fires fewer than two spikes in
  ``T`` at *every* current of the sweep where the LIF fires twice; the message says which
  ``--width`` would do.
* **warning** (stderr ``lifgate quantize: warning: ...``, repeated under the table; exit code
  0, ``"ok": false`` in JSON): it does so at some currents, fires where the LIF is silent,
  its rate error exceeds ``RATE_ERROR_WARN_PCT`` (5 %), the rheobase current makes it fire,
  or some currents fire too slowly for ``T`` to measure their rate.

A rate is ``1 / mean ISI`` and needs two spikes: fewer give no rate (``n/a`` in the table,
``null`` in JSON), never 0 Hz, except where the LIF is provably silent (``V_inf <= V_th``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from lifgate.app.progress import ticker
from lifgate.checks import check_int, check_number, output_file, write_output
from lifgate.compilers.quantize import (
    BIO_DEFAULTS,
    MAX_SWEEP_UPDATES,
    NOISE_STD,
    RATE_ERROR_WARN_PCT,
    quantize,
    quantize_euler,
    quantize_iaf,
    suggest_width,
)
from lifgate.config import ConfigError
from lifgate.golden import float_ref
from lifgate.golden.fixed import simulate

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
        description=summary + ". Defaults are the seed notebook's (default_pars()). Exit code "
        "2 when the configuration cannot fire where the LIF does (nothing useful can come "
        f"out); a warning on stderr when its rate error exceeds {RATE_ERROR_WARN_PCT:g} %% or "
        "a rate cannot be measured.",
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
                   help="white noise amplitude of the notebook's my_GWN [pA*sqrt(s)], >= 0: sets "
                   "the noise gain in the printed configuration (default 0: off)")
    p.add_argument("--sweep", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="currents [pA] of the rate comparison, LO <= HI, within the input range "
                   "(default 1.25 to 2.5 x rheobase: 250 to 500 pA for the defaults)")
    p.add_argument("--points", type=int, default=251,
                   help="number of currents in the sweep, 1 to 100000 (default 251: 1 pA apart "
                   "by default)")
    p.add_argument("--model", choices=("lif", "euler", "iaf"), default="lif",
                   help="lif: the biophysical LIF (default); euler, iaf: the unit-free seed "
                   "neurons (tau 20, threshold 10, input 11; IAF threshold 1, bias 0.025)")
    p.add_argument("--save", default=None, metavar="FILE.toml",
                   help="write the configuration to FILE (.toml or .json, the format "
                   "Config.load reads: lifgate generate --config FILE); checked before any work")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _check_save(path):
    """``--save``: a .toml or .json file that can be written (nothing is written yet)."""
    if path is None:
        return None
    if Path(path).suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"--save must name a .toml or .json file, not {path!r}")
    return output_file("--save", path)


def _save(path, cfg) -> None:
    text = cfg.to_toml() if path.suffix.lower() == ".toml" else cfg.to_json(indent=2) + "\n"
    write_output("--save", path, text)


def run(args) -> int:
    save = _check_save(args.save)  # before any work: a bad path costs nothing
    if args.width is not None:
        check_int("--width", args.width, 4, 32)
    check_int("--points", args.points, 1, 100_000)
    check_number("--sigma", args.sigma, 0.0, None, unit="pA*sqrt(s)")
    if args.sweep is not None:
        lo = check_number("--sweep LO", args.sweep[0], unit="pA")
        hi = check_number("--sweep HI", args.sweep[1], unit="pA")
        if lo > hi:
            raise ConfigError(f"--sweep LO HI must have LO <= HI, not {lo:g} > {hi:g}")
    show = not (args.no_progress or args.json)
    given = {name: getattr(args, name) for name in _HELP if getattr(args, name) is not None}
    if args.model != "lif":
        if given:
            raise ConfigError(
                f"--model {args.model} takes no neuron parameters (got {', '.join(given)})"
            )
        return _run_seed(args, save)
    q = quantize(given, width=args.width, leak=args.leak)
    most = max(1, MAX_SWEEP_UPDATES // q.steps)
    if args.points > most:
        raise ConfigError(
            f"--points must be an integer in [1, {most}] for T = {q.pars['T']:g} ms "
            f"({q.steps:,} steps; a sweep holds at most {MAX_SWEEP_UPDATES:,} neuron updates), "
            f"not {args.points}")
    lo, hi = args.sweep if args.sweep is not None else (None, None)
    try:
        currents = q.sweep_currents(lo, hi, args.points)
    except ConfigError as e:
        raise ConfigError(f"--sweep: {e}") from None
    # the largest sigma whose noise gain fits 16 bits (noise_gain is linear in sigma)
    top = (0xFFFF * NOISE_STD / 256.0 * q.lsb * q.pars["g_L"] / q.gain
           * math.sqrt(q.dt / 1000.0))
    step = 10.0 ** (math.floor(math.log10(top)) - 3)  # 4 digits, rounded down: all legal
    check_number("--sigma", args.sigma, 0.0, math.floor(top / step) * step, unit="pA*sqrt(s)")
    cfg = q.with_input(0.0, sig=args.sigma) if args.sigma else q.config
    # about a second by default: a progress line only when the sweep is much larger
    big = currents.size * q.steps >= 20_000_000
    rep = ticker(lambda: q.report(currents), "quantize: rate sweep", enabled=show and big)
    if rep["useless"] or rep["warnings"]:
        width = ticker(lambda: suggest_width(q, currents), "quantize: trying wider widths",
                       enabled=show)
        rep["suggested_width"] = width
        hint = (f"use --width {width} or more (up to 32)" if width else
                "no width up to 32 helps: change the parameters or the sweep")
        if rep["useless"]:
            raise ConfigError(f"--width {q.shape.v_width}: {rep['useless']}; {hint}")
        if width and any("fixed-point" in w for w in rep["warnings"]):
            rep["warnings"].append(f"{hint} for a rate error within {RATE_ERROR_WARN_PCT:g} %")
    if args.sigma:
        rep["config"] = cfg.to_dict()
        rep["noise"] = {"sigma": args.sigma, "gain": cfg.noise.gain,
                        "std_per_step": q.noise_std(cfg.noise.gain)}
    return _finish(args, q, rep, cfg, save)


def _finish(args, q, rep, cfg, save, title=None, tail=None) -> int:
    if save is not None:
        _save(save, cfg)
        rep["saved"] = str(save)
    for w in rep["warnings"]:
        print(f"lifgate quantize: warning: {w}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(_clean(rep), indent=2, allow_nan=False))
        return 0
    print(format_report(q, rep, title=title))
    if tail:
        print(tail)
    return 0


def _run_seed(args, save) -> int:
    if args.model == "euler":
        q = quantize_euler(width=args.width, leak=args.leak)
        cfg = q.with_input(11.0)
        fixed = simulate(cfg, 100, record="spikes").spike_times(0)
        ref = float_ref.euler_lif().spikes
        title = "Euler LIF seed (tau 20, v_th 10, i_syn 11, 100 steps)"
    else:
        if args.leak != "mult":
            raise ConfigError("--leak does not apply to --model iaf (constant leak 0)")
        q = quantize_iaf(width=args.width)
        cfg = q.with_input(0.025)
        fixed = simulate(cfg, 100, record="spikes").spike_times(0)
        ref = float_ref.iaf(0.025).spike_steps
        title = "IAF seed (threshold 1, bias 0.025, 100 steps)"
    rep = q.report()
    rep["config"] = cfg.to_dict()
    rep["seed"] = {"float_spikes": list(ref), "fixed_spikes": list(fixed)}
    # The Euler seed must spike at the same steps; the IAF seed the same number of times
    # (lifgate tests before it integrates: its IAF spikes one step after sinabs').
    same = list(ref) == list(fixed) if args.model == "euler" else len(ref) == len(fixed)
    if not same:
        rep["warnings"].append(f"the fixed-point seed spikes at {list(fixed)}, the float seed "
                               f"at {list(ref)}")
        rep["ok"] = False
    tail = f"\nbias {cfg.params[0].bias}: float spikes at {list(ref)}, fixed point at {list(fixed)}"
    return _finish(args, q, rep, cfg, save, title=title, tail=tail)


def _clean(x):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _fmt(x, unit=""):
    return f"{x:.6g}{(' ' + unit) if unit else ''}"


def _pow2(e: int) -> str:
    """``2^-10`` for an LSB of ``2**-10``, ``2^2`` for ``2**2`` (never ``2^--2``)."""
    return f"2^{-e}"


def _err_cell(rate: float, ref: float, measurable: bool) -> str:
    """One error cell: a percentage, or why there is none."""
    if math.isnan(rate):
        return "<2 spikes" if measurable else "n/a"
    if ref > 0:
        return f"{(rate / ref - 1) * 100:+.3f}%"
    return "silent" if rate == 0 else "fires"


def _rate_cell(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{rate:.4f}"


def _table(head, rows, indent="  ") -> list[str]:
    """Right-aligned columns, each as wide as its widest cell plus two spaces."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) + 2 for i in range(len(head))]
    return [indent + "".join(f"{str(c):>{w}}" for c, w in zip(r, widths, strict=True))
            for r in [head, *rows]]


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
        f"membrane: LSB {_pow2(q.exponent)} = {_fmt(q.lsb, u)}, origin {_fmt(q.origin, u)} "
        f"(integer 0), range [{_fmt(sc['v_range'][0])}, {_fmt(sc['v_range'][1])}] {u}".rstrip()
    )
    lines.append("")
    eff = rep["effective"]
    p = q.params
    tunit = "ms" if u else "steps"
    rows = []
    for name, d in rep["parameters"].items():
        rows.append([name, _fmt(d["value"], u), str(d["int"]), _fmt(d["effective"], u),
                     f"{d['error']:.3g}", ""])
    if eff["leak_mode"] in ("mult", "shift"):
        note = (f"(MULT: D = {p.leak} / 2^{sh.decay_frac})" if eff["leak_mode"] == "mult"
                else f"(SHIFT: k = {p.leak})")
        rows.append(["tau_m", _fmt(q.pars["tau_m"], tunit), str(p.leak), _fmt(eff["tau"], tunit),
                     f"{eff['tau'] - q.pars['tau_m']:.3g}", note])
    else:
        rows.append(["leak", "none", str(p.leak), "", "", "(CONST, reset by subtraction)"])
    rows.append(["tref", _fmt(q.pars["tref"], tunit), str(p.t_ref), _fmt(eff["t_ref"], tunit),
                 f"{eff['t_ref'] - q.pars['tref']:.3g}", "(steps)"])
    head = ["parameter", "given", "integer", "effective", "error"]
    widths = [max(10, *(len(r[0]) + 1 for r in rows))]
    widths += [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(head) if i]
    for r in [[*head, ""], *rows]:
        cells = f"{r[0]:<{widths[0]}}" + "".join(
            f"{c:>{w}}" for c, w in zip(r[1:5], widths[1:], strict=True))
        lines.append((cells + (f"   {r[5]}" if r[5] else "")).rstrip())
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
        verdict = "no spike" if rh["ok"] else f"SPIKES ({rh['spikes']} spikes)"
        if rh.get("initial_spike"):
            verdict += " after the one at step 0 (V_init >= V_th fires at once)"
        lines.append(
            f"rheobase {_fmt(rh['current'], iu)} (V_inf = V_th) -> input {rh['input']}: "
            f"{verdict}; the membrane settles at {rh['settle']}, {rh['margin_lsb']} LSB "
            f"({_fmt(rh['margin'], u)}) below the threshold ({rh['steps']} steps)"
        )
    if "sweep" in rep:
        sw = rep["sweep"]
        cur = np.asarray(sw["currents"])
        lines.append("")
        lines.append(
            f"firing rate over T = {_fmt(q.pars['T'], tunit)} (1 / mean ISI) against the "
            f"analytic LIF rate, {len(cur)} currents {_fmt(cur[0])} to {_fmt(cur[-1], iu)}:"
        )
        for label, key in (("fixed point", "rate"), ("float Euler", "float_rate")):
            w = rep[f"{key}_error_worst"]
            if w is None:
                lines.append(f"  {label:<13} no rate measured (fewer than two spikes)")
            else:
                lines.append(
                    f"  {label:<13} max |error| {rep[f'{key}_error_max_pct']:.3f} %  "
                    f"(worst {w['error_pct']:+.3f} % at {_fmt(w['current'], iu)})"
                )
        an, fl, fx = (np.array(sw[k], dtype=float) for k in ("analytic", "float", "fixed"))
        meas = np.asarray(sw["measurable"], dtype=bool)
        every = max(1, (len(cur) - 1) // 10)
        rows = []
        for k in range(0, len(cur), every):
            rows.append([f"{cur[k]:.5g}", str(sw["inputs"][k]), f"{an[k]:.4f}",
                         _rate_cell(fl[k]), _rate_cell(fx[k]),
                         _err_cell(fl[k], an[k], meas[k]), _err_cell(fx[k], an[k], meas[k])])
        lines += _table(["I", "input", "analytic", "float", "fixed", "err float", "err fixed"],
                        rows)
        lines.append("  (rates in Hz, 1 / mean ISI; error = rate / analytic - 1; silent: no spike, "
                     "like the LIF;")
        lines.append("   n/a: fewer than two spikes in T, no rate; <2 spikes: the LIF fires twice "
                     "in T, this model does not)")
    if rep.get("warnings"):
        lines.append("")
        lines += [f"WARNING: {w}" for w in rep["warnings"]]
    if rep.get("saved"):
        lines.append("")
        lines.append(f"saved to {rep['saved']} (lifgate generate --config {rep['saved']})")
    return "\n".join(lines)
