"""``lifgate demo``: both seed notebooks on the float model, the fixed-point model and the RTL.

On the embedded default configuration (``ArrayShape()``: 64 neurons, 4 lanes, 64 groups,
16-bit), it reproduces the Euler LIF seed (spikes at steps 47 and 94), the biophysical LIF of
the notebook (membrane trace, rate curve from 0 to 500 pA, Gaussian white noise against the
on-chip noise source) and the sinabs-style IAF (membrane trace, ReLU-shaped activation),
writes PNG plots, checks the RTL bit for bit against the golden model and prints a summary.
Exit code 0 when the RTL is bit-exact and every seed check passes (``result: OK``), 1 when
one fails (``FAILED``) or when the run is too short to measure a rate of the rate curve
(``INCOMPLETE``: a rate is 1 / mean ISI and needs two spikes), 2 for a bad option: ``--out``
and ``--build-dir`` are checked before any build, nothing is created when they are refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lifgate.app.board_demo import board_features
from lifgate.app.demo import (
    DURATION_RANGE,
    LINK_MODES,
    RATE_CURRENTS,
    SIMS,
    check_outputs,
    format_summary,
    min_duration,
    run_demo,
    summary_json,
)
from lifgate.checks import check_number
from lifgate.config import ConfigError
from lifgate.golden import float_ref


def register(subparsers, summary):
    p = subparsers.add_parser(
        "demo",
        help=summary,
        description=summary + ", on the default 64-neuron array; writes PNG plots and prints "
        "a summary. Exit code 1 if the RTL is not bit-exact or a seed check fails.",
    )
    p.add_argument("--out", default="lifgate-demo", metavar="DIR",
                   help="folder for the PNG plots (default: lifgate-demo/)")
    p.add_argument("--sim", choices=SIMS, default=None,
                   help=f"simulator of the RTL runs (default: {SIMS[0]}; not with --board)")
    p.add_argument("--board", default=None, metavar="SPEC",
                   help="run the experiments through a board's host link instead of the RTL "
                   "simulator: model (the protocol model), sim:verilator or sim:icarus (the "
                   "simulated board top, 64 neurons x 4 lanes, one parameter group, with the "
                   "COUNTS, EVENTS and PROBES run modes), or serial:PORT[@BAUD] (a flashed "
                   "board, its own shape and modes; see docs/boards.md); every run is checked "
                   "bit for bit against the golden model")
    p.add_argument("--link-modes", choices=LINK_MODES, default=None,
                   help="with --board: auto (default) reads each experiment in the cheapest "
                   "run modes the board was built with (spike counts for the rate curve, "
                   "address events for spike steps, probes for the plotted membranes; STEP "
                   "frames where the board lacks them); step reads the whole spike bitmap and "
                   "every membrane of every step, as a board without run modes does")
    p.add_argument("--build-dir", default="build/demo", metavar="DIR",
                   help="folder of the simulator build, reused between runs "
                   "(default: build/demo)")
    p.add_argument("--quick", action="store_true",
                   help="100 ms instead of the notebook's 500 ms for the biophysical runs")
    p.add_argument("--duration", type=float, default=None, metavar="MS",
                   help="length of the biophysical runs in ms, 1 to 2000 (default: the "
                   f"notebook's 500; 100 with --quick); below {min_duration():g} ms some "
                   "rates of the rate curve cannot be measured and the result is INCOMPLETE")
    p.add_argument("--json", action="store_true",
                   help="print the figures as one JSON object on stdout (the table goes to "
                   "stderr)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.duration is not None:
        check_number("--duration", args.duration, *DURATION_RANGE, unit="ms")
    out, build_dir = Path(args.out), Path(args.build_dir)
    if args.board is not None and args.sim is not None:
        raise ConfigError("--sim and --board exclude each other: --board runs the experiments "
                          "on the board instead of the RTL simulator")
    if args.link_modes is not None and args.board is None:
        raise ConfigError("--link-modes goes with --board: it says how the board's results "
                          "travel over the host link")
    sim = args.sim or SIMS[0]
    if args.board is not None:
        try:
            board_features(args.board)
        except ConfigError as e:
            raise ConfigError(f"--board: {e}") from None
    # Before any work: a bad path must not cost the 40-55 s simulator build.
    check_outputs(out, build_dir, sim=None if args.board == "model" else sim,
                  names=("--out", "--build-dir"))
    duration = args.duration if args.duration is not None else 100.0 if args.quick else 500.0
    need = min_duration()
    if duration < need:
        fp = float_ref.default_pars(T=duration)
        t2 = np.asarray(float_ref.second_spike_time(fp, RATE_CURRENTS))
        short = RATE_CURRENTS[np.isfinite(t2) & (t2 * 1.02 + 3 * fp["dt"] > duration)]
        print(f"lifgate demo: warning: {duration:g} ms is too short to measure the rate at "
              f"{short[0]:g} to {short[-1]:g} pA (fewer than two spikes); the result will be "
              f"INCOMPLETE: use --duration {need:g} or more", file=sys.stderr, flush=True)
    result = run_demo(out, sim=sim, quick=args.quick, duration=args.duration,
                      progress=not (args.no_progress or args.json), build_dir=build_dir,
                      board=args.board, link_modes=args.link_modes or "auto")
    table = format_summary(result.summary)
    if args.json:
        print(table, file=sys.stderr)
        print(summary_json(result.summary))
    else:
        print(table)
    return 0 if result.ok else 1
