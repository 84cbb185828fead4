"""``lifgate digits``: ANN-to-SNN conversion on scikit-learn's 8x8 digits, golden model and RTL.

Trains a 64-32-10 ReLU MLP (fixed seed), converts it (``lifgate.compilers.convert``), runs the
fixed-point SNN on the golden model over the whole held-out split and on the RTL (Verilator)
over the first ``--samples`` held-out digits, and checks the RTL against the golden model spike
for spike and membrane for membrane on every layer and step. Exit code 1 if they differ.

With ``--board SPEC`` the converted network also goes through a network board's host link
(``lifgate.boards.nethost``): its weights and parameters are loaded over the link, then the
first ``--limit`` held-out digits run on the board (inputs written, clear, run, the output
layer's spikes and membranes read back); the board's classes must equal the golden model's,
its output spikes and membranes too (exit code 1 otherwise). A real board
(``serial:PORT``, built by ``lifgate build --network digits``) says in its ``VERSION`` reply
which lanes per layer and membrane readback it has: the network is laid out with its lanes
(the same neurons, weights and parameters) and, without membrane readback, only the spikes are
compared. ``--layer-lanes P0,P1`` converts with those lanes (default 8,2; 1,2 when ``--hidden``
is not a multiple of 8), so that ``sim:verilator`` runs the very network board that ``lifgate
build --network digits --board icebreaker`` (1,1) or ``--board ulx3s-85f`` (8,2) makes.

Every argument (``--board`` and ``--build-dir`` included) is checked before the training
starts: one line, exit code 2, nothing created. ``--json`` prints one object with ``ok`` (the
RTL and the board, where run, equal to the golden model); progress goes to stderr
(``--no-progress`` silences it).
"""

from __future__ import annotations

import json
import time

import numpy as np

from lifgate.app.cli import add_report_options
from lifgate.app.netboard import check_board_spec, run_on_board, same_run
from lifgate.app.netbuild import check_lanes
from lifgate.app.progress import ticker
from lifgate.checks import check_int, writable_dir
from lifgate.compilers import convert as conversion
from lifgate.compilers.convert import convert, load_dataset
from lifgate.config import ConfigError
from lifgate.sim import tb_network

#: Held-out digits of the stratified 75/25 split of scikit-learn's 1797 digits.
TEST_DIGITS = 450


def register(subparsers, summary):
    p = subparsers.add_parser("digits", help=summary, description=summary + ".")
    p.add_argument("--steps", type=int, default=32, metavar="T",
                   help="timesteps per inference (default 32)")
    p.add_argument("--samples", type=int, default=20, metavar="K",
                   help="held-out digits run on the RTL, 0 to skip the RTL (default 20)")
    p.add_argument("--hidden", type=int, default=32,
                   help="hidden neurons, 1 to 4096 (default 32)")
    p.add_argument("--w-width", type=int, default=8,
                   help="weight width in bits, 2 to 18 (default 8)")
    p.add_argument("--seed", type=int, default=0,
                   help="split and training seed, 0 to 2**32 - 1 (default 0)")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                   help="RTL simulator (default verilator)")
    p.add_argument("--build-dir", default="build/digits", help="RTL build folder")
    p.add_argument("--board", metavar="SPEC", default=None,
                   help="also run the network through a network board's host link: model, "
                        "sim:verilator, sim:icarus or serial:PORT[@BAUD] (weights loaded over "
                        "the link)")
    p.add_argument("--layer-lanes", default=None, metavar="P0,P1",
                   help="lanes of the two layers, powers of two dividing their neurons "
                   "(default 8,2, or 1,2 when --hidden is not a multiple of 8; a serial board's "
                   "own lanes for --board serial:PORT)")
    p.add_argument("--limit", type=int, default=None, metavar="K",
                   help="held-out digits run on --board (default: all 450 for model and "
                        "serial, 40 for a simulated board: a simulated UART takes about "
                        "0.1 s (Verilator) to 2 s (Icarus) per digit)")
    add_report_options(p)
    p.set_defaults(func=run)


def check_args(*, steps, samples, hidden, w_width, seed, board, limit, build_dir,
               layer_lanes=None) -> int:
    """Check every argument before any work; return ``limit`` with its default filled in."""
    check_int("--steps", steps, 1, 100000)
    lanes = check_lanes(layer_lanes, 2)
    if lanes and hidden % lanes[0]:
        raise ConfigError(f"--layer-lanes: {lanes[0]} lanes do not divide --hidden {hidden}")
    check_int("--samples", samples, 0, TEST_DIGITS)
    check_int("--hidden", hidden, 1, 4096)
    check_int("--w-width", w_width, 2, 18)
    check_int("--seed", seed, 0, (1 << 32) - 1)
    if board is not None:
        check_board_spec(board)
    if limit is None:
        limit = 40 if board is not None and board.startswith("sim:") else TEST_DIGITS
    check_int("--limit", limit, 1, TEST_DIGITS)
    if samples or (board is not None and board.startswith("sim:")):
        writable_dir("--build-dir", build_dir)
    return limit


def digits_report(*, steps=32, samples=20, hidden=32, w_width=8, seed=0, sim="verilator",
                  build_dir="build/digits", board=None, limit=None, progress=False,
                  layer_lanes=None) -> dict:
    """Train, convert, run; see the module docstring. ``progress``: show it on stderr."""
    limit = check_args(steps=steps, samples=samples, hidden=hidden, w_width=w_width, seed=seed,
                       board=board, limit=limit, build_dir=build_dir, layer_lanes=layer_lanes)
    data = load_dataset(seed)
    assert len(data.x_test) == TEST_DIGITS, len(data.x_test)
    mlp = ticker(lambda: conversion.train_ann(data, hidden=hidden, seed=seed),
                 "digits: training the ANN", enabled=progress)
    ann = float((mlp.predict(data.x_test / 16) == data.y_test).mean())
    lanes = check_lanes(layer_lanes, 2) or (8 if hidden % 8 == 0 else 1, 2)
    conv = convert(mlp, data.x_train, w_width=w_width, lanes=lanes)
    t0 = time.perf_counter()
    res = ticker(lambda: conv.run(data.x_test, steps),
                 f"digits: golden model, {len(data.x_test)} digits", enabled=progress)
    golden_s = time.perf_counter() - t0
    pred = conv.predict(res)
    out = {
        "dataset": "sklearn load_digits (8x8), stratified 75/25 split",
        "train": len(data.x_train), "test": len(data.x_test),
        "topology": [64, hidden, conv.classes],
        "steps": steps,
        "w_width": w_width,
        "thresholds": conv.thetas,
        "lambdas": [round(x, 4) for x in conv.lambdas],
        "ann_accuracy": ann,
        "snn_accuracy": float((pred == data.y_test).mean()),
        "spikes_per_inference": float(np.mean([sum(int(s.sum()) for s in r.spikes)
                                               for r in res])),
        "synops_per_inference": float(np.mean([r.spike_ops for r in res])),
        "input_macs_per_inference": float(np.mean([r.input_ops for r in res])),
        "golden_seconds": round(golden_s, 3),
        "rtl_samples": samples,
    }
    if samples:
        xs = data.x_test[:samples]
        t0 = time.perf_counter()
        runs = ticker(lambda: tb_network.run_network(conv.network, [(x, steps) for x in xs],
                                          build_dir=build_dir, sim=sim),
                      f"digits: RTL ({sim}), build and {samples} digits", enabled=progress)
        out["rtl_seconds"] = round(time.perf_counter() - t0, 1)
        mismatches = 0
        for r, g in zip(runs, res[:samples], strict=True):
            for layer in range(len(g.spikes)):
                if not (np.array_equal(r.spikes[layer], g.spikes[layer])
                        and np.array_equal(r.v[layer], g.v[layer])):
                    mismatches += 1
                    break
        rtl_pred = np.array([conv.predict([r])[0] for r in runs])
        out.update({
            "rtl_simulator": sim,
            "rtl_accuracy": float((rtl_pred == data.y_test[:samples]).mean()),
            "snn_accuracy_on_rtl_samples": float((pred[:samples] == data.y_test[:samples]).mean()),
            "rtl_mismatching_samples": mismatches,
            "rtl_bit_exact": mismatches == 0,
            "rtl_cycles_per_inference": float(np.mean([r.cycles for r in runs])),
        })
    if board is not None:
        out.update(ticker(lambda: _board_run(conv, res, pred, data, steps, board, limit,
                                             build_dir),
                          f"digits: board {board}, {limit} digits", enabled=progress))
    out["ok"] = bool(out.get("rtl_bit_exact", True) and out.get("board_bit_exact", True))
    return out


def _board_run(conv, res, pred, data, steps, spec, limit, build_dir) -> dict:
    """The first ``limit`` held-out digits through a network board's host link."""
    # A real board's lanes (same neurons, weights and parameters) and membrane readback.
    brun = run_on_board(conv.network, spec, [(x, steps) for x in data.x_test[:limit]],
                        build_dir=build_dir,
                        build="lifgate build --network digits --board icebreaker|ulx3s-85f")
    last = [len(conv.network.layers) - 1]
    mismatches = sum(not same_run(r, g, last, brun.membrane)
                     for r, g in zip(brun.runs, res[:limit], strict=True))
    bpred = conv.predict(brun.runs)
    y = data.y_test[:limit]
    return {
        "board": spec,
        "board_samples": limit,
        "board_lanes": [s.lanes for s in brun.network.shapes],
        "board_membrane": brun.membrane,
        "board_weights_read_back": brun.loaded,
        "board_accuracy": float((bpred == y).mean()),
        "snn_accuracy_on_board_samples": float((pred[:limit] == y).mean()),
        "board_class_mismatches": int((bpred != pred[:limit]).sum()),
        "board_mismatching_samples": int(mismatches),
        "board_bit_exact": bool(brun.loaded and mismatches == 0
                                and (bpred == pred[:limit]).all()),
        "board_open_seconds": round(brun.seconds["open"], 1),
        "board_load_seconds": round(brun.seconds["load"], 2),
        "board_seconds_per_digit": round(brun.seconds["run"] / limit, 4),
    }


def run(args) -> int:
    rep = digits_report(steps=args.steps, samples=args.samples, hidden=args.hidden,
                        w_width=args.w_width, seed=args.seed, sim=args.sim,
                        build_dir=args.build_dir, board=args.board, limit=args.limit,
                        progress=not args.no_progress, layer_lanes=args.layer_lanes)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"digits {rep['topology']}: train {rep['train']}, held-out test {rep['test']}")
        print(f"  ANN (float ReLU MLP) accuracy   {100 * rep['ann_accuracy']:.2f} %")
        print(f"  SNN (golden, fixed point)       {100 * rep['snn_accuracy']:.2f} %  "
              f"({rep['steps']} steps, {rep['w_width']}-bit weights, thresholds "
              f"{rep['thresholds']})")
        print(f"  spikes per inference            {rep['spikes_per_inference']:.1f}")
        print(f"  SynOps per inference            {rep['synops_per_inference']:.0f} "
              f"(spike-driven) + {rep['input_macs_per_inference']:.0f} input MACs")
        if rep["rtl_samples"]:
            print(f"  RTL ({rep['rtl_simulator']}) on {rep['rtl_samples']} held-out digits: "
                  f"{100 * rep['rtl_accuracy']:.2f} % (golden on the same: "
                  f"{100 * rep['snn_accuracy_on_rtl_samples']:.2f} %), "
                  f"{'bit-exact' if rep['rtl_bit_exact'] else 'MISMATCH'} "
                  f"({rep['rtl_mismatching_samples']} samples differ), "
                  f"{rep['rtl_cycles_per_inference']:.0f} cycles per inference, "
                  f"{rep['rtl_seconds']} s")
        if rep.get("board"):
            back = "equal" if rep["board_weights_read_back"] else "DIFFERENT"
            print(f"  board {rep['board']} on {rep['board_samples']} held-out digits: "
                  f"{100 * rep['board_accuracy']:.2f} % (golden on the same: "
                  f"{100 * rep['snn_accuracy_on_board_samples']:.2f} %), weights loaded over "
                  f"the link and read back {back}, "
                  f"output layer {'bit-exact' if rep['board_bit_exact'] else 'MISMATCH'} "
                  f"({rep['board_mismatching_samples']} samples differ), "
                  f"{rep['board_seconds_per_digit']} s per digit")
    return 0 if rep["ok"] else 1
