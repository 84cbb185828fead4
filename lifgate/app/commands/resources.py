"""``lifgate resources``: synthesise, place and route for the boards, report cells, RAMs, Fmax.

Runs Yosys and nextpnr through the pip-installed YoWASP tools (no bitstream is packed) on the
board's PLL clock at its goal frequency (iCEBreaker / iCE40UP5K: 48 MHz; ULX3S / ECP5-85F:
100 MHz), and prints one row per board: logic cells (iCE40) or LUTs and flip-flops (ECP5),
block RAMs (EBR / DP16KD), SPRAM, DSPs (SB_MAC16 / MULT18X18D), Fmax against the goal, and the
critical path when the goal is missed. ``--design array`` (default) measures the neuron array
with a minimal I/O harness, ``--design top`` the whole board top of ``lifgate build``. An 85F
build takes several minutes.

Sweeps: ``--seeds 1,2,3`` (nextpnr seeds) and ``--shapes 2048x8,4096x8`` (neurons x lanes)
build every board x shape x seed, one row each. Two or more builds run as independent jobs on
Dask (``lifgate.app.cluster``): on ``--scheduler ADDRESS``, else on a local cluster of
``--workers`` processes (default: one per core, at most one per build); ``--workers 1`` builds
one after the other in this process. A failed or lost job is reported and retried; a build
that fails every attempt is a failed row (exit 1).

Every argument and ``--build-dir`` are checked before the first build (one line, exit code 2,
nothing created). ``--json`` prints ``{"ok": ..., "boards": [row, ...]}``; ``ok`` is false when
a build failed (exit code 1); a missed goal frequency is reported, not a failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, UsageError, add_report_options
from lifgate.app.cluster import Cluster, check_scheduler, int_list
from lifgate.app.progress import ticker
from lifgate.boards import resources
from lifgate.boards.resources import board_shape
from lifgate.boards.toolchain import BOARDS, ToolchainError, board
from lifgate.checks import check_int, check_number, check_reset_modes, writable_dir
from lifgate.config import ConfigError


def register(subparsers, summary):
    p = subparsers.add_parser("resources", help=summary, description=summary + ".")
    p.add_argument("--board", default="all", metavar="BOARD",
                   help="icebreaker, ulx3s-85f or all (default)")
    p.add_argument("--neurons", type=int, default=None, metavar="N",
                   help="neurons (default: the board's goal, 4096 / 65536)")
    p.add_argument("--lanes", type=int, default=None, metavar="P",
                   help="lanes (default: the board's goal, 8 / 32)")
    p.add_argument("--groups", type=int, default=None, metavar="G",
                   help=f"parameter groups, dividing N (default {DEFAULT_GROUPS}, as in every "
                   "lifgate command)")
    p.add_argument("--leak-modes", default=None, metavar="MODES",
                   help="comma-separated leak modes (default: iCE40 shift,const; ECP5 all)")
    p.add_argument("--reset-modes", default=None, metavar="MODES",
                   help="comma-separated reset modes to build: value,subtract (always built; "
                   "the default) and subtract_after_leak (snnTorch's subtract reset; a 2-bit "
                   "reset_mode field and its logic)")
    p.add_argument("--no-noise", action="store_true",
                   help="build the array without its noise source (array design only; on the "
                        "UP5K the noise source of 8 lanes does not fit)")
    p.add_argument("--design", choices=("array", "top"), default="array",
                   help="array: the array in a minimal harness (default); top: the board top")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock to build for (default: the board's goal)")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed, 0 to 2**31 - 1 (default 1)")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="several nextpnr seeds, comma-separated (a row per seed; replaces "
                   "--seed)")
    p.add_argument("--shapes", default=None, metavar="NxP,...",
                   help="several shapes, neurons x lanes, comma-separated, e.g. 2048x8,4096x8 "
                   "(replaces --neurons/--lanes)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="local Dask worker processes for two or more builds, 1 to 256 "
                   "(default: one per core; 1: one build after the other, no cluster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the builds on this Dask scheduler (tcp://HOST:8786; every worker "
                   "must see --build-dir); see docs/cluster.md")
    p.add_argument("--build-dir", default="build/resources", metavar="DIR",
                   help="where the builds go (default build/resources)")
    add_report_options(p, json_help="print {\"ok\": ..., \"boards\": [...]} instead of a table")
    p.set_defaults(func=run)


def _boards(name):

    if name == "all":
        return list(BOARDS.values())
    return [board(name)]


def _modes(text):
    if text is None:
        return None
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _shape_list(args) -> list[tuple]:
    """``[(neurons, lanes)]`` of ``--shapes``, or ``[(--neurons, --lanes)]``."""
    if args.shapes is None:
        return [(args.neurons, args.lanes)]
    out = []
    for part in str(args.shapes).split(","):
        n, _, p = part.strip().lower().partition("x")
        try:
            n, p = int(n), int(p)
        except ValueError:
            n = p = 0
        if not (1 <= n <= 1 << 20 and 1 <= p <= 64):
            raise ConfigError(f"parameter '--shapes' must be comma-separated NxP (neurons 1 to "
                              f"2**20 x lanes 1 to 64) such as 4096x8, not {args.shapes!r}"[:160])
        out.append((n, p))
    return out


def plan(args) -> list[tuple]:
    """Every build to run, checked before any starts: ``[(board, shape, seed, out), ...]``."""
    boards = _boards(args.board)
    groups = DEFAULT_GROUPS if args.groups is None else args.groups
    seeds = [args.seed] if args.seeds is None else int_list("--seeds", args.seeds, 0,
                                                            (1 << 31) - 1)
    jobs = []
    for b in boards:
        for neurons, lanes in _shape_list(args):
            s = board_shape(b, neurons=neurons, lanes=lanes, groups=groups,
                            leak_modes=_modes(args.leak_modes))
            if args.reset_modes is not None:
                resets = check_reset_modes("--reset-modes", args.reset_modes)
                s = dataclasses.replace(s, reset_modes=resets)
            if args.design == "top" and s.lanes & (s.lanes - 1):
                raise ConfigError(
                    f"parameter 'lanes' must be a power of two for a board top, not {s.lanes}"
                )
            for seed in seeds:
                key = f"{b.name}-{args.design}-n{s.neurons}p{s.lanes}g{s.groups}"
                key += "-nonoise" if args.no_noise else ""
                key += "-afterleak" if s.reset_width > 1 else ""
                key += f"-s{seed}" if len(seeds) > 1 else ""
                jobs.append((b, s, seed, Path(args.build_dir) / key))
    return jobs


def _row(args, b, shape, seed, rep: dict) -> dict:
    d = dict(rep)
    d.update({
        "design": args.design, "neurons": shape.neurons, "lanes": shape.lanes,
        "groups": shape.groups, "noise": not args.no_noise,
        "leak_modes": [m.name.lower() for m in shape.leak_modes],
        "reset_modes": [m.name.lower() for m in shape.reset_modes],
        "goal_mhz": b.goal_mhz if args.freq is None else args.freq,
        "device": b.device, "seed": seed,
    })
    return d


def _error_row(args, b, shape, seed, text) -> dict:
    return {"board": b.name, "design": args.design, "neurons": shape.neurons,
            "lanes": shape.lanes, "seed": seed, "error": text}


def measure_job(board_name, shape, out, design, freq, seed, noise) -> dict:
    """One build (a Dask job): its figures, or ``{"error": ...}`` for a toolchain failure (a
    failed build is a result, not a lost job: it is not retried)."""
    try:
        rep = resources.measure(board(board_name), shape, Path(out), design=design,
                                frequency_mhz=freq, seed=seed, noise=noise)
    except ToolchainError as e:
        return {"error": str(e)}
    return rep.to_dict()


def measure_rows(args) -> list[dict]:
    """Build every selected board x shape x seed and return one result dict per build."""
    # Check every argument and shape before building anything.
    if args.no_noise and args.design != "array":
        raise UsageError("--no-noise applies to --design array only (the board top always has "
                         "the noise source)")
    if args.freq is not None:
        check_number("--freq", args.freq, 1, 400, unit="MHz")
    check_int("--seed", args.seed, 0, (1 << 31) - 1)
    if getattr(args, "workers", None) is not None:
        check_int("--workers", args.workers, 1, 256)
    if getattr(args, "scheduler", None) is not None:
        check_scheduler("--scheduler", args.scheduler)
    jobs = plan(args)
    writable_dir("--build-dir", args.build_dir)
    show = not getattr(args, "no_progress", False)
    workers = getattr(args, "workers", None)
    if getattr(args, "scheduler", None) is not None or (len(jobs) > 1 and workers != 1):
        return _measure_on_cluster(args, jobs, show)
    rows = []
    for b, shape, seed, out in jobs:
        if show:
            print(f"building {b.name} ({args.design}, {shape.neurons} neurons, {shape.lanes} "
                  f"lanes) in {out} ...", file=sys.stderr, flush=True)
        rep = ticker(lambda b=b, shape=shape, out=out, seed=seed: measure_job(
            b.name, shape, out, args.design, args.freq, seed, not args.no_noise),
            f"resources {b.name}", enabled=show)
        rows.append(_error_row(args, b, shape, seed, rep["error"]) if "error" in rep
                    else _row(args, b, shape, seed, rep))
    return rows


def _measure_on_cluster(args, jobs, show) -> list[dict]:
    workers = args.workers or min(len(jobs), os.cpu_count() or 1)

    def say(text):
        if show:
            print(text, file=sys.stderr, flush=True)

    def on_result(i, rep):
        b, shape, seed, out = jobs[i]
        say(f"resources: {b.name} {shape.neurons}x{shape.lanes} seed {seed} done "
            f"({'FAILED' if 'error' in rep else 'ok'})")

    def on_event(e):
        b, shape, seed, _ = jobs[e["job"]]
        say(f"resources: job {b.name} {shape.neurons}x{shape.lanes} seed {seed}, attempt "
            f"{e['attempt'] + 1}: {e['error']}")

    say(f"resources: {len(jobs)} builds as Dask jobs "
        f"({'on ' + args.scheduler if args.scheduler else f'{workers} local workers'})")
    with Cluster(scheduler=args.scheduler, workers=workers) as cluster:
        out = cluster.map(measure_job, [(b.name, s, str(o), args.design, args.freq, seed,
                                         not args.no_noise) for b, s, seed, o in jobs],
                          name="resources", on_result=on_result, on_event=on_event)
    rows = []
    for i, (b, shape, seed, _) in enumerate(jobs):
        rep = out.results[i]
        if i in out.failed:
            rows.append(_error_row(args, b, shape, seed, f"job failed: {out.failed[i]}"))
        elif "error" in rep:
            rows.append(_error_row(args, b, shape, seed, rep["error"]))
        else:
            rows.append(_row(args, b, shape, seed, rep))
    args.cluster_outcome = out.to_dict()
    return rows


def _u(row, key):
    u = row["utilization"].get(key)
    return f"{u['used']}/{u['available']}" if u else "-"


def format_table(rows) -> str:
    head = ("board", "design", "neurons", "lanes", "cells", "FFs", "BRAM", "SPRAM", "DSP",
            "Fmax MHz", "goal", "")
    lines = []
    seeds = len({r.get("seed") for r in rows}) > 1
    for r in rows:
        if seeds:
            r = dict(r, board=f"{r['board']} seed {r.get('seed')}")
        if "error" in r:
            first = r["error"].splitlines()[0]
            lines.append((r["board"], r["design"], str(r["neurons"]), str(r["lanes"]),
                          "-", "-", "-", "-", "-", "-", "-", f"FAILED: {first}"))
            continue
        ice = "logic_cells" in r["utilization"]
        lines.append((
            r["board"], r["design"], str(r["neurons"]), str(r["lanes"]),
            _u(r, "logic_cells" if ice else "luts"),
            "-" if ice else _u(r, "ffs"),
            _u(r, "ebr" if ice else "dp16kd"),
            _u(r, "spram") if ice else "-",
            _u(r, "dsp" if ice else "mult18"),
            f"{r['fmax_mhz']:.1f}", f"{r['goal_mhz']:g}",
            "met" if r["fmax_mhz"] >= r["goal_mhz"] else "MISSED",
        ))
    widths = [max(len(x[k]) for x in [head, *lines]) for k in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for ln in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(ln, widths, strict=True)).rstrip())
    for r in rows:
        if "error" in r or r["fmax_mhz"] >= r["goal_mhz"]:
            continue
        for clk, cp in r["critical_paths"].items():
            out.append("")
            out.append(f"critical path of {r['board']} ({clk}): {cp['delay_ns']} ns, "
                       f"{cp['logic_levels']} logic levels ({cp['logic_ns']} ns logic, "
                       f"{cp['routing_ns']} ns routing)")
            out.append(f"  from {cp['from']}")
            for net in cp["nets"]:
                out.append(f"    {net}")
            out.append(f"  to   {cp['to']}")
    return "\n".join(out)


def run(args) -> int:
    rows = measure_rows(args)
    if args.json:
        ok = not any("error" in r for r in rows)
        print(json.dumps({"ok": ok, "boards": rows,
                          "cluster": getattr(args, "cluster_outcome", None)}, indent=2))
    else:
        print(format_table(rows))
    return 1 if any("error" in r for r in rows) else 0
