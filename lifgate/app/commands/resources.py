"""``lifgate resources``: synthesise, place and route for the boards, report cells, RAMs, Fmax.

Runs Yosys and nextpnr through the pip-installed YoWASP tools (no bitstream is packed) on the
board's PLL clock at its goal frequency (iCEBreaker / iCE40UP5K: 48 MHz; ULX3S / ECP5-85F:
100 MHz), and prints one row per board: logic cells (iCE40) or LUTs and flip-flops (ECP5),
block RAMs (EBR / DP16KD), SPRAM, DSPs (SB_MAC16 / MULT18X18D), Fmax against the goal, and the
critical path when the goal is missed. ``--design array`` (default) measures the neuron array
with a minimal I/O harness, ``--design top`` the whole board top of ``lifgate build``. An 85F
build takes several minutes.

Every argument and ``--build-dir`` are checked before the first build (one line, exit code 2,
nothing created). ``--json`` prints ``{"ok": ..., "boards": [row, ...]}``; ``ok`` is false when
a build failed (exit code 1); a missed goal frequency is reported, not a failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, UsageError, add_report_options
from lifgate.app.progress import ticker
from lifgate.boards import resources
from lifgate.boards.resources import board_shape
from lifgate.boards.toolchain import BOARDS, ToolchainError, board
from lifgate.checks import check_int, check_number, writable_dir
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
    p.add_argument("--no-noise", action="store_true",
                   help="build the array without its noise source (array design only; on the "
                        "UP5K the noise source of 8 lanes does not fit)")
    p.add_argument("--design", choices=("array", "top"), default="array",
                   help="array: the array in a minimal harness (default); top: the board top")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock to build for (default: the board's goal)")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed, 0 to 2**31 - 1 (default 1)")
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


def measure_rows(args) -> list[dict]:
    """Build every selected board and return one result dict per board."""
    boards = _boards(args.board)
    # Check every shape before building anything.
    groups = DEFAULT_GROUPS if args.groups is None else args.groups
    shapes = [board_shape(b, neurons=args.neurons, lanes=args.lanes, groups=groups,
                          leak_modes=_modes(args.leak_modes)) for b in boards]
    if args.design == "top":
        for s in shapes:
            if s.lanes & (s.lanes - 1):
                raise ConfigError(
                    f"parameter 'lanes' must be a power of two for a board top, not {s.lanes}"
                )
    if args.no_noise and args.design != "array":
        raise UsageError("--no-noise applies to --design array only (the board top always has "
                         "the noise source)")
    if args.freq is not None:
        check_number("--freq", args.freq, 1, 400, unit="MHz")
    check_int("--seed", args.seed, 0, (1 << 31) - 1)
    writable_dir("--build-dir", args.build_dir)
    show = not getattr(args, "no_progress", False)
    rows = []
    for b, shape in zip(boards, shapes, strict=True):
        key = f"{b.name}-{args.design}-n{shape.neurons}p{shape.lanes}g{shape.groups}"
        key += "-nonoise" if args.no_noise else ""
        out = Path(args.build_dir) / key
        if show:
            print(f"building {b.name} ({args.design}, {shape.neurons} neurons, {shape.lanes} "
                  f"lanes) in {out} ...", file=sys.stderr, flush=True)
        try:
            rep = ticker(lambda b=b, shape=shape, out=out: resources.measure(
                b, shape, out, design=args.design, frequency_mhz=args.freq, seed=args.seed,
                noise=not args.no_noise), f"resources {b.name}", enabled=show)
        except ToolchainError as e:
            rows.append({"board": b.name, "design": args.design, "neurons": shape.neurons,
                         "lanes": shape.lanes, "error": str(e)})
            continue
        d = rep.to_dict()
        d.update({
            "design": args.design, "neurons": shape.neurons, "lanes": shape.lanes,
            "groups": shape.groups, "noise": not args.no_noise,
            "leak_modes": [m.name.lower() for m in shape.leak_modes],
            "goal_mhz": b.goal_mhz if args.freq is None else args.freq,
            "device": b.device,
        })
        rows.append(d)
    return rows


def _u(row, key):
    u = row["utilization"].get(key)
    return f"{u['used']}/{u['available']}" if u else "-"


def format_table(rows) -> str:
    head = ("board", "design", "neurons", "lanes", "cells", "FFs", "BRAM", "SPRAM", "DSP",
            "Fmax MHz", "goal", "")
    lines = []
    for r in rows:
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
        print(json.dumps({"ok": ok, "boards": rows}, indent=2))
    else:
        print(format_table(rows))
    return 1 if any("error" in r for r in rows) else 0
