"""``lifgate import-nir GRAPH.nir``: map a NIR graph onto a lifgate network and report how.

Prints the discretisation report (dt, reset mode, refractory period, threshold and timing
conventions, quantisation error per parameter) and the integer network. With ``--steps T`` it
also runs T steps of a seeded random input spike vector (held constant) on the golden model, and
with ``--rtl`` on the RTL as well, checking every spike and membrane (exit code 1 on a
mismatch). ``--rtl`` alone runs ``RTL_STEPS`` (32) steps.

Every argument and path (the graph, ``--build-dir`` with ``--rtl``) is checked before any work:
one line, exit code 2, nothing created. ``--json`` prints one object with ``ok`` (false when the
RTL differs from the golden model); progress goes to stderr (``--no-progress`` silences it).
"""

from __future__ import annotations

import json

import numpy as np

from lifgate.app.cli import add_report_options
from lifgate.app.progress import ticker
from lifgate.checks import check_int, check_number, input_file, writable_dir
from lifgate.compilers.nir_import import import_nir
from lifgate.config import ConfigError
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
    p.add_argument("--w-width", type=int, default=8, help="weight width, 2 to 18 (default 8)")
    p.add_argument("--v-width", type=int, default=16,
                   help="membrane width, 4 to 32 (default 16)")
    p.add_argument("--i-width", type=int, default=16,
                   help="input current width, 2 to 32 (default 16)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="run T steps (0 to 1000000) of a random input spike vector (p = 0.5, "
                   f"seed 0, held constant) on the golden model (default: none; {RTL_STEPS} "
                   "with --rtl)")
    p.add_argument("--rtl", action="store_true",
                   help=f"also run them on the RTL (Verilator), {RTL_STEPS} steps unless "
                   "--steps says else")
    p.add_argument("--build-dir", default="build/nir", help="RTL build folder (default build/nir)")
    add_report_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    input_file("GRAPH.nir", args.graph)
    check_int("--w-width", args.w_width, 2, 18)
    check_int("--v-width", args.v_width, 4, 32)
    check_int("--i-width", args.i_width, 2, 32)
    if args.dt is not None:
        check_number("--dt", args.dt, 0, None, lo_open=True)
    if args.scale is not None:
        check_number("--scale", args.scale, 0, None, lo_open=True)
    steps = args.steps if args.steps is not None else (RTL_STEPS if args.rtl else 0)
    if args.rtl and steps == 0:
        raise ConfigError(f"--steps must be at least 1 with --rtl (default {RTL_STEPS}), not 0")
    check_int("--steps", steps, 0, 1_000_000)
    if args.rtl:
        writable_dir("--build-dir", args.build_dir)
    show = not args.no_progress
    imp = import_nir(args.graph, dt=args.dt, scale=args.scale, w_width=args.w_width,
                     v_width=args.v_width, i_width=args.i_width)
    net = imp.network
    out = {
        "graph": args.graph,
        "dt": imp.dt,
        "scale": imp.scale,
        "layers": [{"nodes": list(pair), "inputs": layer.inputs, "neurons": layer.neurons,
                    "config": layer.config.to_dict(), "weights": layer.weights.tolist()}
                   for pair, layer in zip(imp.nodes, net.layers, strict=True)],
        "reset_mode": "value", "t_ref": 0,
        "quantisation_error": {k: {"abs": a, "rel": r} for k, (a, r) in imp.errors.items()},
    }
    code = 0
    out["steps"] = steps
    if steps:
        # A seeded random spike vector (p = 0.5), held for the whole run.
        x = (np.random.default_rng(0).random(net.inputs) < 0.5).astype(np.int64)
        res = simulate_network(net, steps, x)
        out["golden_spikes_per_layer"] = [int(s.sum()) for s in res.spikes]
        if args.rtl:
            rtl = ticker(lambda: tb_network.run_network(net, [(x, steps)],
                                                        build_dir=args.build_dir)[0],
                         f"import-nir: RTL (verilator), build and {steps} steps", enabled=show)
            exact = all(np.array_equal(a, b) for a, b in zip(rtl.spikes, res.spikes, strict=True))
            exact = exact and all(np.array_equal(a, b) for a, b in zip(rtl.v, res.v, strict=True))
            out["rtl_bit_exact"] = exact
            code = 0 if exact else 1
    out["ok"] = code == 0
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(imp.report())
        for pair, layer in zip(imp.nodes, net.layers, strict=True):
            p = layer.config.params[0]
            print(f"  layer {pair[0]} -> {pair[1]}: {layer.inputs} -> {layer.neurons}, weights "
                  f"[{layer.weights.min()}, {layer.weights.max()}], {p.leak_mode.name.lower()} "
                  f"leak, neuron 0: v_th {p.v_th}, v_reset {p.v_reset}, v_rest {p.v_rest}, "
                  f"leak {p.leak}, bias {p.bias}")
        if steps:
            print(f"  golden run, {steps} steps of random spikes: spikes per layer "
                  f"{out['golden_spikes_per_layer']}")
            if args.rtl:
                print(f"  RTL: {'bit-exact' if out['rtl_bit_exact'] else 'MISMATCH'}")
    return code
