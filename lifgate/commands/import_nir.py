"""``lifgate import-nir GRAPH.nir``: map a NIR graph onto a lifgate network and report how.

Prints the discretisation report (dt, reset mode, refractory period, threshold and timing
conventions, quantisation error per parameter) and the integer network. With ``--steps T`` it
also runs T steps of a seeded random input spike vector (held constant) on the golden model, and
with ``--rtl`` on the RTL as well, checking every spike and membrane (exit code 1 on a
mismatch).
"""

from __future__ import annotations

import json

import numpy as np

from lifgate.config import ConfigError


def register(subparsers, summary):
    p = subparsers.add_parser("import-nir", help=summary, description=summary + ".")
    p.add_argument("graph", metavar="GRAPH.nir", help="NIR graph file (nir.write)")
    p.add_argument("--dt", type=float, default=None,
                   help="time step in the graph's time unit (default: the graph's metadata dt)")
    p.add_argument("--scale", type=float, default=None,
                   help="membrane LSBs per NIR voltage unit, all layers (default: per layer, "
                   "the largest power of two that fits)")
    p.add_argument("--w-width", type=int, default=8, help="weight width (default 8)")
    p.add_argument("--v-width", type=int, default=16, help="membrane width (default 16)")
    p.add_argument("--i-width", type=int, default=16, help="input current width (default 16)")
    p.add_argument("--steps", type=int, default=0, metavar="T",
                   help="run T steps of a random input spike vector (p = 0.5, seed 0, held "
                   "constant) on the golden model")
    p.add_argument("--rtl", action="store_true", help="also run them on the RTL (Verilator)")
    p.add_argument("--build-dir", default="build/nir", help="RTL build folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from lifgate.golden.synapse import simulate_network
    from lifgate.nir_import import import_nir

    for name in ("w_width", "v_width", "i_width"):
        v = getattr(args, name)
        lo, hi = (2, 18) if name == "w_width" else (4 if name == "v_width" else 2, 32)
        if not lo <= v <= hi:
            raise ConfigError(f"parameter '--{name.replace('_', '-')}' must be in [{lo}, {hi}], "
                              f"not {v}")
    if args.steps < 0:
        raise ConfigError(f"parameter '--steps' must be >= 0, not {args.steps}")
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
    if args.rtl and not args.steps:
        raise ConfigError("parameter '--rtl' needs '--steps T' (T > 0)")
    if args.steps:
        # A seeded random spike vector (p = 0.5), held for the whole run.
        x = (np.random.default_rng(0).random(net.inputs) < 0.5).astype(np.int64)
        res = simulate_network(net, args.steps, x)
        out["golden_spikes_per_layer"] = [int(s.sum()) for s in res.spikes]
        if args.rtl:
            from lifgate.sim.tb_network import run_network

            rtl = run_network(net, [(x, args.steps)], build_dir=args.build_dir)[0]
            exact = all(np.array_equal(a, b) for a, b in zip(rtl.spikes, res.spikes, strict=True))
            exact = exact and all(np.array_equal(a, b) for a, b in zip(rtl.v, res.v, strict=True))
            out["rtl_bit_exact"] = exact
            code = 0 if exact else 1
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
        if args.steps:
            print(f"  golden run, {args.steps} steps of random spikes: spikes per layer "
                  f"{out['golden_spikes_per_layer']}")
            if args.rtl:
                print(f"  RTL: {'bit-exact' if out['rtl_bit_exact'] else 'MISMATCH'}")
    return code
