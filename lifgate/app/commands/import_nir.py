"""``lifgate import-nir GRAPH.nir``: map a NIR graph onto a lifgate network and report how.

Prints the discretisation report (dt, reset mode, refractory period, threshold and timing
conventions, quantisation error per parameter) and the integer network. With ``--steps T`` it
also runs T steps of a seeded random input spike vector (held constant) on the golden model, and
with ``--rtl`` on the RTL as well, checking every spike and membrane (exit code 1 on a
mismatch). ``--rtl`` alone runs ``RTL_STEPS`` (32) steps. With ``--reference REC.npz`` (a
framework's own run, ``lifgate.compilers.nir_reference``) the input is the recorded one, and
the spike counts of every layer are compared with the framework's after the documented shift
(exit code 1 when one differs by more than ``--tolerance``).

Widths default to the narrowest whose every parameter's relative quantisation error is within
``--warn-error``; a parameter above it is a warning on stderr, above ``--max-error`` an error
(exit code 2, before anything runs).

Every argument and path (the graph, ``--build-dir`` with ``--rtl``) is checked before any work:
one line, exit code 2, nothing created. ``--json`` prints one object with ``ok`` (false when the
RTL differs from the golden model); progress goes to stderr (``--no-progress`` silences it).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from lifgate.app.cli import add_report_options
from lifgate.app.netboard import check_board_spec, run_on_board, same_run
from lifgate.app.netbuild import check_lanes, relane
from lifgate.app.progress import ticker
from lifgate.boards.netproto import NetFeatures
from lifgate.checks import check_choice, check_int, check_number, input_file, writable_dir
from lifgate.compilers.nir_import import DEFAULT_TARGET, RESETS, import_nir
from lifgate.compilers.nir_reference import compare, load_reference
from lifgate.config import SPIKE_MAXES, ConfigError
from lifgate.golden.synapse import simulate_network
from lifgate.sim import tb_network

#: Steps of ``--rtl`` without ``--steps``: the golden model and the RTL, spike for spike.
RTL_STEPS = 32


def register(subparsers, summary):
    p = subparsers.add_parser("import-nir", help=summary, description=summary + ".")
    p.add_argument("graph", metavar="GRAPH.nir", help="NIR graph file (nir.write)")
    p.add_argument("--dt", type=float, default=None,
                   help="time step in the graph's time unit, > 0 (default: the graph's "
                   "metadata dt)")
    p.add_argument("--scale", type=float, default=None,
                   help="membrane LSBs per NIR voltage unit, all layers, > 0 (default: per "
                   "layer, the largest power of two that fits)")
    p.add_argument("--w-width", type=int, default=None,
                   help="weight width, 2 to 18 (default: the narrowest of 8, 10, ..., 18 that "
                   "meets --warn-error)")
    p.add_argument("--v-width", type=int, default=None,
                   help="membrane width, 4 to 32 (default: 16, 24 or 32, the narrowest that "
                   "meets --warn-error)")
    p.add_argument("--i-width", type=int, default=None,
                   help="input current width, 2 to 32 (default: the membrane width)")
    p.add_argument("--reset", default="value", choices=tuple(RESETS),
                   help="what a spike does: value (NIR: v = v_reset, default), subtract "
                   "(v - v_th before the decay: sinabs' MembraneSubtract) or "
                   "subtract-after-leak (v_th subtracted after the decay: snnTorch's Leaky "
                   "with reset_mechanism='subtract', its default)")
    p.add_argument("--fire", default="gt", choices=("gt", "ge"),
                   help="spike when v > v_threshold (gt, NIR, snnTorch, Norse; default) or "
                   "v >= v_threshold (ge, sinabs)")
    p.add_argument("--spike-max", type=int, default=1, metavar="K",
                   help="largest spike count of a neuron in one step, 1, 3, 7 or 15 (default "
                   "1): sinabs' MultiSpike emits floor(v / v_th) spikes at once and the next "
                   "layer receives the counts (docs/numerics.md, \"Multi-spike output\")")
    p.add_argument("--warn-error", type=float, default=100 * DEFAULT_TARGET, metavar="PCT",
                   help="warn when a parameter's quantisation error exceeds PCT %% of its "
                   "typical magnitude, 0 to 100 (default %(default)g)")
    p.add_argument("--max-error", type=float, default=None, metavar="PCT",
                   help="refuse (exit 2) when a parameter's quantisation error exceeds PCT %% "
                   "of its typical magnitude, 0 to 100 (default: no limit)")
    p.add_argument("--reference", default=None, metavar="REC.npz",
                   help="a framework's recorded run (docs/networks.md): run its input and "
                   "compare spike counts per layer")
    p.add_argument("--tolerance", type=float, default=1.0, metavar="PCT",
                   help="with --reference: largest spike-count difference per layer, in %% of "
                   "the framework's count, 0 to 100 (default 1)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="run T steps (0 to 1000000) of a random input spike vector (p = 0.5, "
                   f"seed 0, held constant) on the golden model (default: none; {RTL_STEPS} "
                   "with --rtl)")
    p.add_argument("--rtl", action="store_true",
                   help=f"also run them on the RTL (Verilator), {RTL_STEPS} steps unless "
                   "--steps says else")
    p.add_argument("--board", metavar="SPEC", default=None,
                   help="also run them on a network board: sim:verilator, sim:icarus (the "
                   "network board's gateware simulated, built for this network) or "
                   "serial:PORT[@BAUD] (a board from 'lifgate build --network GRAPH.nir' with "
                   "the same import options); weights and parameters load over the link, "
                   f"{RTL_STEPS} steps unless --steps says else")
    p.add_argument("--layer-lanes", default=None, metavar="P0,P1,...",
                   help="with --board sim:...: lanes per layer of the simulated board, powers "
                   "of two dividing each layer's neurons (default: the import's); a serial "
                   "board's own lanes are used")
    p.add_argument("--build-dir", default="build/nir",
                   help="RTL and simulated board build folder (default build/nir)")
    add_report_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    input_file("GRAPH.nir", args.graph)
    if args.w_width is not None:
        check_int("--w-width", args.w_width, 2, 18)
    if args.v_width is not None:
        check_int("--v-width", args.v_width, 4, 32)
    if args.i_width is not None:
        check_int("--i-width", args.i_width, 2, 32)
    check_choice("--reset", args.reset, tuple(RESETS))
    check_choice("--fire", args.fire, ("gt", "ge"))
    check_choice("--spike-max", args.spike_max, SPIKE_MAXES)
    if args.dt is not None:
        check_number("--dt", args.dt, 0, None, lo_open=True)
    if args.scale is not None:
        check_number("--scale", args.scale, 0, None, lo_open=True)
    check_number("--warn-error", args.warn_error, 0, 100)
    if args.max_error is not None:
        check_number("--max-error", args.max_error, 0, 100)
    check_number("--tolerance", args.tolerance, 0, 100)
    ref = load_reference(input_file("--reference", args.reference)) if args.reference else None
    hardware = args.rtl or args.board is not None
    default = ref.steps if ref is not None else (RTL_STEPS if hardware else 0)
    steps = args.steps if args.steps is not None else default
    if hardware and steps == 0:
        raise ConfigError(f"--steps must be at least 1 with --rtl or --board (default "
                          f"{RTL_STEPS}), not 0")
    check_int("--steps", steps, 0 if ref is None else 1, 1_000_000)
    kind = check_board_spec(args.board)[0] if args.board is not None else None
    lanes = check_lanes(args.layer_lanes)
    if lanes is not None and kind not in ("sim", "model"):
        raise ConfigError("--layer-lanes needs --board sim:verilator|sim:icarus (a serial "
                          "board has its own lanes)")
    if args.rtl or kind == "sim":
        writable_dir("--build-dir", args.build_dir)
    imp = import_nir(args.graph, dt=args.dt, scale=args.scale, w_width=args.w_width,
                     v_width=args.v_width, i_width=args.i_width, reset=args.reset,
                     fire=args.fire, target=args.warn_error / 100,
                     max_error=None if args.max_error is None else args.max_error / 100,
                     spike_max=args.spike_max)
    if args.board is not None:
        _check_board_network(args, imp, lanes)
    out = _describe(args, imp)
    if ref is not None:
        peak = max((int(np.max(a, initial=0)) for a in ref.spikes), default=0)
        if peak > imp.spike_max:
            fit = next((k for k in SPIKE_MAXES if k >= peak), SPIKE_MAXES[-1])
            out["warnings"].append(
                f"the reference run emits up to {peak} spikes of one neuron in one step "
                f"(multi-spike), --spike-max {imp.spike_max} caps them: give --spike-max {fit}")
    out["steps"] = steps
    code = _simulate(args, imp, ref, steps, out)
    out["ok"] = code == 0
    _print(args, imp, out)
    return code


def _build_command(args) -> str:
    """``lifgate build --network GRAPH.nir`` with the import options given here: the command
    that builds a board for this network."""
    words = ["lifgate build --network", args.graph, "--board icebreaker|ulx3s-85f"]
    for option, value, default in (("--dt", args.dt, None), ("--scale", args.scale, None),
                                   ("--w-width", args.w_width, None),
                                   ("--v-width", args.v_width, None),
                                   ("--i-width", args.i_width, None),
                                   ("--reset", args.reset, "value"),
                                   ("--fire", args.fire, "gt"),
                                   ("--warn-error", args.warn_error, 100 * DEFAULT_TARGET)):
        if value is not None and value != default:
            words += [option, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(words)


def _check_board_network(args, imp, lanes) -> None:
    """Refuse, before anything runs, a network no network board carries (multi-spike
    output) and ``--layer-lanes`` that do not fit it."""
    try:
        NetFeatures.for_network(imp.network)
    except ConfigError as e:
        raise ConfigError(f"--board: a network board cannot run this network: {e}") from None
    if lanes is not None:
        if len(lanes) != len(imp.network.layers):
            raise ConfigError(f"--layer-lanes must name the network's {len(imp.network.layers)} "
                              f"layers, not {len(lanes)} ({args.layer_lanes!r})")
        try:
            imp.network = relane(imp.network, lanes)
        except ConfigError as e:
            raise ConfigError(f"--layer-lanes: {e}") from None


def _describe(args, imp) -> dict:
    net = imp.network
    sh = net.layers[0].config.shape
    return {
        "graph": args.graph, "dt": imp.dt, "scale": imp.scale, "readout": imp.readout,
        "widths": {"w_width": net.w_width, "v_width": sh.v_width, "i_width": sh.i_width},
        "layers": [{"nodes": list(pair), "inputs": layer.inputs, "neurons": layer.neurons,
                    "config": layer.config.to_dict(), "weights": layer.weights.tolist(),
                    "recurrent_weights": None if layer.rec is None else layer.rec.tolist(),
                    "skip_connections": [{"layer": k, "delay": d, "weights": w.tolist()}
                                         for k, w, d in layer.skip]}
                   for pair, layer in zip(imp.nodes, net.layers, strict=True)],
        "reset_mode": imp.reset, "fire": imp.fire, "t_ref": 0, "spike_max": imp.spike_max,
        "notes": imp.notes,
        "quantisation_error": {k: {"abs": a, "rel": r, "zeroed": z, "count": c}
                               for k, (a, r, z, c) in imp.errors.items()},
        "warnings": imp.warnings(),
    }


def _simulate(args, imp, ref, steps, out) -> int:
    """The golden run (and the RTL's, and the framework comparison); the exit code."""
    if not steps:
        return 0
    net = imp.network
    code = 0
    if ref is not None:
        cmp = compare(imp, ref, steps)
        res, x, run_steps = cmp.pop("result"), ref.x, cmp["run_steps"]
        out["reference"] = cmp
        if any(layer["count_difference"] > args.tolerance / 100 for layer in cmp["layers"]):
            code = 1
    else:
        # A seeded random spike vector (p = 0.5), held for the whole run.
        x = (np.random.default_rng(0).random(net.inputs) < 0.5).astype(np.int64)
        run_steps = steps
        res = simulate_network(net, run_steps, x)
    out["golden_spikes_per_layer"] = [int(s.sum()) for s in res.spikes]
    if args.rtl:
        rtl = ticker(lambda: tb_network.run_network(net, [(x, run_steps)],
                                                    build_dir=args.build_dir)[0],
                     f"import-nir: RTL (verilator), build and {run_steps} steps",
                     enabled=not args.no_progress)
        exact = all(np.array_equal(a, b) for a, b in zip(rtl.spikes, res.spikes, strict=True))
        exact = exact and all(np.array_equal(a, b) for a, b in zip(rtl.v, res.v, strict=True))
        out["rtl_bit_exact"] = exact
        code = code or (0 if exact else 1)
    if args.board is not None:
        brun = ticker(lambda: run_on_board(net, args.board, [(x, run_steps)],
                                           build_dir=args.build_dir, all_layers=True,
                                           build=_build_command(args),
                                           optimize=run_steps > 1000),
                      f"import-nir: board {args.board}, load and {run_steps} steps",
                      enabled=not args.no_progress)
        same = same_run(brun.runs[0], res, range(len(net.layers)), brun.membrane)
        out.update({
            "board": args.board,
            "board_lanes": [s.lanes for s in brun.network.shapes],
            "board_membrane": brun.membrane,
            "board_weights_read_back": brun.loaded,
            "board_spikes_per_layer": [int(s.sum()) for s in brun.runs[0].spikes],
            "board_bit_exact": bool(brun.loaded and same),
            "board_seconds": {k: round(v, 2) for k, v in brun.seconds.items()},
        })
        code = code or (0 if out["board_bit_exact"] else 1)
        if imp.readout == "membrane" and not brun.membrane:
            out["warnings"].append(
                "the board reads back spikes only (built without membrane readback): the "
                "graph's membrane readout (its last layer) is not compared; build the board "
                "with --membrane")
    return code


def _print(args, imp, out) -> None:
    for w in out["warnings"]:
        print(f"lifgate import-nir: warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(imp.report())
    for pair, layer in zip(imp.nodes, imp.network.layers, strict=True):
        p = layer.config.params[0]
        print(f"  layer {pair[0]} -> {pair[1]}: {layer.inputs} -> {layer.neurons}, weights "
              f"[{layer.weights.min()}, {layer.weights.max()}], {p.leak_mode.name.lower()} "
              f"leak, neuron 0: v_th {p.v_th}, v_reset {p.v_reset}, v_rest {p.v_rest}, "
              f"leak {p.leak}, bias {p.bias}")
    if "golden_spikes_per_layer" in out:
        what = "the reference input" if "reference" in out else "random spikes"
        print(f"  golden run, {out['steps']} steps of {what}: spikes per layer "
              f"{out['golden_spikes_per_layer']}")
    for layer in out.get("reference", {}).get("layers", []):
        print(f"  layer {layer['layer']} against the framework (shifted {layer['shift']} "
              f"step(s)): {layer['lifgate_spikes']} spikes, framework "
              f"{layer['framework_spikes']} ({100 * layer['count_difference']:.3g} %), "
              f"{layer['places_differing']} (step, neuron) places differ")
    if "membrane_max_difference" in out.get("reference", {}):
        r = out["reference"]
        print(f"  readout membrane: largest difference {r['membrane_max_difference']:.4g} "
              f"(framework range {r['membrane_range']:.4g})")
    if "rtl_bit_exact" in out:
        print(f"  RTL: {'bit-exact' if out['rtl_bit_exact'] else 'MISMATCH'}")
    if "board_bit_exact" in out:
        what = "spikes and membranes" if out["board_membrane"] else "spikes"
        back = "equal" if out["board_weights_read_back"] else "DIFFERENT"
        print(f"  board {out['board']} (lanes {','.join(map(str, out['board_lanes']))}): "
              f"{'bit-exact' if out['board_bit_exact'] else 'MISMATCH'} ({what} of every "
              f"layer against the golden model; weights loaded over the link and read back "
              f"{back}), spikes per layer {out['board_spikes_per_layer']}")
