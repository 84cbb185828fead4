"""The report of ``lifgate demo``: the summary table and its JSON form."""

from __future__ import annotations

import json
import math

import numpy as np

from lifgate.app.experiments import TRACE_CURRENT

__all__ = ["format_summary", "json_list", "summary_json"]


def json_list(values) -> list:
    """A float array as a JSON list: NaN (no rate measured) becomes None."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.2f} %"


def format_summary(summary: dict) -> str:
    """The summary table ``lifgate demo`` prints."""
    s = summary["shape"]
    board = summary.get("board")
    where = summary["sim"] or "nothing (not run)"
    if board:
        b = board["shape"]
        where = (f"board {board['board']} ({b['neurons']} neurons, {b['lanes']} lanes, "
                 f"{b['groups']} group{'s' if b['groups'] != 1 else ''})")
    lines = [
        f"lifgate demo: {s['neurons']} neurons, {s['lanes']} lanes, {s['groups']} groups, "
        f"{s['v_width']}-bit membrane; RTL on {where}; "
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
    if board:
        lines += ["", "On the board each run is one parameter set per neuron model, the groups' "
                  "biases moved into the input currents, checked against its own golden run:"]
        lines += _table(["board run", "steps", "neurons used", "input", "run modes",
                         "link bytes", "STEP frames", "seconds", "result"], [
            [r["name"], str(r["steps"]), f"{r['models_neurons']} of {r['neurons']}", r["input"],
             "+".join(r["modes"]), f"{r['link_bytes']['total']:,}",
             f"{r['step_frames_bytes']:,}", f"{r['seconds']:.1f}",
             "bit-exact" if r["bit_exact"] else _mismatch(r["mismatch"])]
            for r in board["runs"]])
        lines.append(f"link: {board['link_bytes']:,} bytes both ways, about "
                     f"{board['link_seconds']:.3g} s at the board's {board['baud']:,} baud "
                     f"(STEP frames for everything: {board['step_frames_bytes']:,} bytes)")
        lines += [f"  {r['name']}: {r['fallback']}" for r in board["runs"] if "fallback" in r]
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
