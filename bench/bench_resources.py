"""Resource and speed figures of the neuron array and the board tops (``lifgate bench resources``).

Builds, through the YoWASP tools, every (board, design, size) of the table below and prints a
Markdown table of cells, block RAMs, SPRAM, DSPs and Fmax against the goal, followed by the
critical path of every build that misses its goal. ``--markdown FILE`` also writes the table
into FILE between the markers ``<!-- resources:begin -->`` and ``<!-- resources:end -->``
(``docs/resources.md`` and ``README.md``). The ECP5-85F builds take 15 to 20 minutes each.

    python bench/bench_resources.py --markdown docs/resources.md README.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lifgate.boards.resources import board_shape
from lifgate.boards.resources import measure as build
from lifgate.boards.toolchain import BOARDS, ToolchainError

from lifgate.app.markers import write_between_markers

# (board, design, neurons, lanes, noise source): the goals, with and without the noise source
# on the UP5K (8 lanes of it take 1,000 of the 5,280 cells: the xorshift step and the byte
# sum; its multiply-add, bias included, is in the SB_MAC16), and the 4 lanes of the board top.
RUNS = [
    ("icebreaker", "array", 4096, 8, False),
    ("icebreaker", "array", 4096, 8, True),
    ("icebreaker", "array", 4096, 4, True),
    ("icebreaker", "top", 4096, 4, True),
    ("ulx3s-85f", "array", 65536, 32, True),
    ("ulx3s-85f", "top", 65536, 32, True),
]
QUICK = [
    ("icebreaker", "array", 256, 4, True),
    ("icebreaker", "top", 256, 4, True),
]


def measure(runs, build_dir, seed=1):
    rows = []
    for name, design, n, p, noise in runs:
        b = BOARDS[name]
        shape = board_shape(b, neurons=n, lanes=p)
        out = Path(build_dir) / f"{name}-{design}-n{n}p{p}{'' if noise else '-nonoise'}"
        print(f"[{time.strftime('%H:%M:%S')}] {name} {design} {n}x{p} noise={noise} -> {out}",
              file=sys.stderr, flush=True)
        row = {"board": name, "design": design, "neurons": n, "lanes": p, "noise": noise,
               "leak_modes": [m.name.lower() for m in shape.leak_modes],
               "pipeline": b.pipeline, "lanes_per_enable": b.lanes_per_enable,
               "goal_mhz": b.goal_mhz, "device": b.device}
        try:
            rep = build(b, shape, out, design=design, seed=seed, noise=noise)
        except ToolchainError as e:
            row["error"] = str(e)
            row["utilization"] = e.utilization
        else:
            row.update(rep.to_dict())
        rows.append(row)
    return rows


def _cell(row, key):
    u = row.get("utilization", {}).get(key)
    return f"{u['used']} / {u['available']}" if u else "-"


def markdown(rows) -> str:
    lines = [
        "| board | design | neurons x lanes | noise | logic | FFs | block RAM | SPRAM | DSP | "
        "Fmax (MHz) | goal (MHz) | neuron-updates/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in rows:
        plain = f"{r['neurons']} x {r['lanes']}" + ("" if r.get("noise", True) else ", no noise")
        size = f"{r['neurons']} x {r['lanes']} | {'yes' if r.get('noise', True) else 'no'}"
        ice = r["board"] == "icebreaker"
        if "error" in r:
            why = r["error"].splitlines()
            last = ([ln for ln in why if "ERROR" in ln] or why[:1])[-1].strip()
            last = last.replace("|", "\\|")
            lines.append(
                f"| {r['board']} | {r['design']} | {size} | "
                f"{_cell(r, 'logic_cells' if ice else 'luts')} {'LC' if ice else 'LUT4'} | "
                f"{'-' if ice else _cell(r, 'ffs')} | "
                f"{_cell(r, 'ebr' if ice else 'dp16kd')} | {_cell(r, 'spram') if ice else '-'} | "
                f"{_cell(r, 'dsp' if ice else 'mult18')} | does not fit: `{last}` | "
                f"{r['goal_mhz']:g} | - |")
            continue
        met = r["fmax_mhz"] >= r["goal_mhz"]
        lines.append(
            f"| {r['board']} | {r['design']} | {size} | "
            f"{_cell(r, 'logic_cells' if ice else 'luts')} {'LC' if ice else 'LUT4'} | "
            f"{'-' if ice else _cell(r, 'ffs')} | "
            f"{_cell(r, 'ebr' if ice else 'dp16kd')} {'EBR' if ice else 'DP16KD'} | "
            f"{_cell(r, 'spram') if ice else '-'} | "
            f"{_cell(r, 'dsp' if ice else 'mult18')} {'SB_MAC16' if ice else 'MULT18X18D'} | "
            f"{r['fmax_mhz']:.1f} {'(met)' if met else '(**missed**)'} | {r['goal_mhz']:g} | "
            f"{r['lanes'] * min(r['fmax_mhz'], r['goal_mhz']) * 1e6:.2e} |"
        )
        if not met:
            for clk, cp in r["critical_paths"].items():
                notes.append(
                    f"* {r['board']} {r['design']} {plain}, clock `{clk}`: {cp['delay_ns']} ns "
                    f"({cp['logic_levels']} logic levels, {cp['logic_ns']} ns logic, "
                    f"{cp['routing_ns']} ns routing) from `{cp['from']}` to `{cp['to']}` "
                    f"through " + ", ".join(f"`{n}`" for n in cp["nets"])
                )
    text = "\n".join(lines)
    if notes:
        text += "\n\nCritical paths of the builds that miss their goal (nextpnr's report):\n\n"
        text += "\n".join(notes)
    return text + "\n"


def write_markdown(path: Path, table: str) -> None:
    """Put ``table`` between the ``resources`` markers of ``path``."""
    write_between_markers(path, table, "resources")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_resources", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two small iCE40 builds only")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--markdown", metavar="FILE", nargs="+", default=None,
                   help="write the table into each FILE (between the resources markers), "
                        "e.g. docs/resources.md README.md")
    p.add_argument("--only", metavar="BOARD", default=None, help="only this board's rows")
    p.add_argument("--merge", metavar="JSON", default=None,
                   help="rows of an earlier --json run: kept where this run measures nothing")
    p.add_argument("--build-dir", default="build/bench-resources")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    runs = QUICK if args.quick else RUNS
    if args.only:
        runs = [r for r in runs if r[0] == args.only]
    rows = measure(runs, args.build_dir, seed=args.seed)
    if args.merge:
        def key(r):
            return (r["board"], r["design"], r["neurons"], r["lanes"], r.get("noise", True))

        new = {key(r): r for r in rows}
        old = json.loads(Path(args.merge).read_text())
        rows = [new.pop(key(r), r) for r in old] + list(new.values())
    table = markdown(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table)
    for path in args.markdown or ():
        write_markdown(Path(path), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
