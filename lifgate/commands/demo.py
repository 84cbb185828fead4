"""``lifgate demo``: both seed notebooks on the float model, the fixed-point model and the RTL.

On the embedded default configuration (``ArrayShape()``: 64 neurons, 4 lanes, 64 groups,
16-bit), it reproduces the Euler LIF seed (spikes at steps 47 and 94), the biophysical LIF of
the notebook (membrane trace, rate curve from 0 to 500 pA, Gaussian white noise against the
on-chip noise source) and the sinabs-style IAF (membrane trace, ReLU-shaped activation),
writes PNG plots, checks the RTL bit for bit against the golden model and prints a summary.
Exit code 0 when the RTL is bit-exact and every seed check passes, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lifgate.cli import UsageError
from lifgate.demo import SIMS, format_summary, run_demo, summary_json


def register(subparsers, summary):
    p = subparsers.add_parser(
        "demo",
        help=summary,
        description=summary + ", on the default 64-neuron array; writes PNG plots and prints "
        "a summary. Exit code 1 if the RTL is not bit-exact or a seed check fails.",
    )
    p.add_argument("--out", default="lifgate-demo", metavar="DIR",
                   help="folder for the PNG plots (default: lifgate-demo/)")
    p.add_argument("--sim", choices=SIMS, default=SIMS[0],
                   help=f"simulator of the RTL runs (default: {SIMS[0]})")
    p.add_argument("--build-dir", default="build/demo", metavar="DIR",
                   help="folder of the simulator build, reused between runs "
                   "(default: build/demo)")
    p.add_argument("--quick", action="store_true",
                   help="100 ms instead of the notebook's 500 ms for the biophysical runs")
    p.add_argument("--duration", type=float, default=None, metavar="MS",
                   help="length of the biophysical runs in ms, 1 to 2000 (default: the "
                   "notebook's 500; 100 with --quick)")
    p.add_argument("--json", action="store_true",
                   help="print the figures as one JSON object on stdout (the table goes to "
                   "stderr)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.duration is not None and not 1.0 <= args.duration <= 2000.0:
        raise UsageError(f"--duration must be in [1, 2000] ms, not {args.duration:g}")
    out = Path(args.out)
    result = run_demo(out, sim=args.sim, quick=args.quick, duration=args.duration,
                      progress=not args.no_progress, build_dir=Path(args.build_dir))
    table = format_summary(result.summary)
    if args.json:
        print(table, file=sys.stderr)
        print(summary_json(result.summary))
    else:
        print(table)
    return 0 if result.ok else 1
