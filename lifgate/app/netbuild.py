"""``lifgate build --network digits|GRAPH.nir``: the network board (``NetworkBoardTop``) of a
converted or imported network, for a board.

The bitstream carries the network's *shape* (layers, neurons, lanes, widths, parameter word
format), not its weights or parameters: those load over the link at run time
(:meth:`lifgate.boards.nethost.NetworkBoard.load`), so one bitstream serves every network of
that shape. ``digits`` is the network of ``lifgate digits`` (scikit-learn's 8x8 digits, a
64-32-10 ReLU MLP trained with seed 0, 8-bit weights, converted by
:func:`lifgate.compilers.convert.convert`); ``GRAPH.nir`` is imported as ``lifgate import-nir``
does (:func:`lifgate.compilers.nir_import.import_nir`, default widths).

Lanes per layer (``--layer-lanes P0,P1,...``, powers of two dividing each layer's neurons) have
per-board defaults (:data:`NETWORK_LANES`); lanes only lay the same network out differently
(every neuron's weights and parameters are the same), so ``lifgate digits --board
serial:PORT`` converts with the lanes the board reports in its ``VERSION`` reply.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from lifgate.app.progress import ticker
from lifgate.boards import toolchain
from lifgate.boards.nethost import write_net_link_record
from lifgate.boards.netproto import NetFeatures
from lifgate.boards.nettop import NetworkBoardTop
from lifgate.boards.protocol import BOARD_MAX_BAUD, check_baud
from lifgate.boards.toolchain import FitError, ToolchainError, board
from lifgate.checks import check_choice, check_int, check_number, input_file, writable_dir
from lifgate.compilers.convert import convert, load_dataset, train_ann
from lifgate.compilers.nir_import import DEFAULT_TARGET, RESETS, import_nir
from lifgate.config import SPIKE_MAXES, Config, ConfigError
from lifgate.golden.synapse import Layer, Network

__all__ = ["GRAPH_OPTIONS", "NETWORK_LANES", "NETWORK_MEMBRANE", "NETWORK_MHZ", "NETWORK_ROUTER",
           "NETWORK_SEEDS", "add_graph_options", "build_network", "check_seeds",
           "digits_network", "graph_options",
           "network_features", "network_for", "relane", "run_toolchain"]

#: Default lanes per layer of ``--network digits`` per board: the UP5K one lane per layer
#: (each lane has its own parameter memory: with 2 lanes in layer 1 the network board needs 32
#: of the UP5K's 30 EBRs, counted before synthesis); the ECP5 the lanes of ``lifgate digits``
#: (8, 2), so that ``lifgate digits --board sim:verilator`` simulates exactly that board's
#: network.
NETWORK_LANES = {"icebreaker": (1, 1), "ulx3s-85f": (8, 2)}

#: Largest lanes per layer of an imported graph per board (the largest power of two up to
#: this that divides the layer's neurons).
NIR_MAX_LANES = {"icebreaker": 2, "ulx3s-85f": 8}

#: Default clock of the network board in MHz. ECP5: 100, met at seeds 2 and 4 of 1 to 4 (Fmax
#: 100.89 / 100.81 MHz; 88.21 / 87.40 at seeds 1 and 3), session 11, after layer 0's products
#: in MULT18X18D blocks with their own registers, carry-save spike-driven accumulators and a
#: copy of the currents' valid bit per copy of the arrays' enable; a default build tries up to
#: four seeds (``NETWORK_SEEDS``). Session 10: 90 (met at seeds 1 and 2, 96.33 / 99.56 MHz;
#: 100 met at one seed of four); session 9: 85. UP5K: 30, met (Fmax 32.49 MHz, session 10's
#: gateware, 4,402 LC; 34.48 in session 8): ``docs/resources.md``.
NETWORK_MHZ = {"icebreaker": 30.0, "ulx3s-85f": 100.0}

#: Seeds a network build places and routes with by default (``--seeds``: the seed, the seed + 1,
#: ..., until a build meets timing). The ULX3S network board at 100 MHz (session 11) meets
#: timing at seeds 2 and 4 of 1 to 4 (100.89 / 100.81 MHz) and misses at 1 and 3 (88.21 /
#: 87.40: the enable of layer 0's array lanes, one logic level and 9.9 to 10.7 ns of routing,
#: placement), so a default build tries up to four.
NETWORK_SEEDS = {"icebreaker": 1, "ulx3s-85f": 4}

#: nextpnr's router per board (None: nextpnr's default): router1 had 26,000 arcs left after
#: 25 minutes on the ECP5 network board under load; router2 routed the ECP5 network in
#: minutes (session 8, ``bench/bench_network_fpga.py``).
NETWORK_ROUTER = {"icebreaker": None, "ulx3s-85f": "router2"}

#: Membrane readback of the network board by default per board. The UP5K network board does
#: not fit with it (the digits network, 1 and 1 lanes: 6,119 of 5,280 logic cells at
#: placement, session 8; 4,442 without it, timing met at 32 MHz): it reads back spikes only,
#: and ``lifgate digits --board serial:PORT`` then compares spikes (classes) with the golden
#: model. ``--membrane`` asks for it anyway; ``--no-membrane`` leaves it out everywhere.
NETWORK_MEMBRANE = {"icebreaker": False, "ulx3s-85f": True}

#: The frame buffer of the network board: what ``lifgate digits --board`` uses.
MAX_PAYLOAD = 256


#: ``lifgate import-nir``'s options that ``lifgate build --network GRAPH.nir`` takes too (option,
#: ``import_nir`` keyword): the ones that choose the network's shape (widths, reset modes,
#: spike counts), and ``--fire`` and ``--scale`` (parameters only, loaded at run time; taken so
#: that the import-nir options of a graph can be given to the build unchanged). ``--dt`` is
#: the build's own option.
GRAPH_OPTIONS = (("--reset", "reset"), ("--fire", "fire"), ("--scale", "scale"),
                 ("--w-width", "w_width"), ("--v-width", "v_width"), ("--i-width", "i_width"),
                 ("--warn-error", "target"), ("--spike-max", "spike_max"))


def add_graph_options(p) -> None:
    """``GRAPH_OPTIONS`` on the parser ``p`` of ``lifgate build`` (all default None: not
    given)."""
    p.add_argument("--reset", default=None, choices=tuple(RESETS),
                   help="with --network GRAPH.nir, as in lifgate import-nir: value (default), "
                   "subtract or subtract-after-leak (snnTorch's default Leaky: the board's "
                   "arrays build SUBTRACT_AFTER_LEAK)")
    p.add_argument("--fire", default=None, choices=("gt", "ge"),
                   help="with --network GRAPH.nir, as in lifgate import-nir (a parameter: "
                   "loaded at run time)")
    p.add_argument("--scale", type=float, default=None,
                   help="with --network GRAPH.nir, as in lifgate import-nir")
    p.add_argument("--w-width", type=int, default=None,
                   help="with --network GRAPH.nir: weight width, 2 to 18, as in lifgate "
                   "import-nir")
    p.add_argument("--v-width", type=int, default=None,
                   help="with --network GRAPH.nir: membrane width, 4 to 32, as in lifgate "
                   "import-nir")
    p.add_argument("--i-width", type=int, default=None,
                   help="with --network GRAPH.nir: input current width, 2 to 32, as in lifgate "
                   "import-nir")
    p.add_argument("--warn-error", type=float, default=None, metavar="PCT",
                   help="with --network GRAPH.nir: the quantisation error the default widths "
                   f"meet, 0 to 100 (default {100 * DEFAULT_TARGET:g}), as in lifgate "
                   "import-nir")
    p.add_argument("--spike-max", type=int, default=None, metavar="K",
                   help="with --network GRAPH.nir: 1 only (a network board's link carries one "
                   "spike bit a neuron; multi-spike output runs in simulation)")


def graph_options(args) -> dict:
    """The ``import_nir`` keywords of ``GRAPH_OPTIONS`` given in ``args``, checked (one line
    naming the option); ConfigError when one is given without ``--network GRAPH.nir``."""
    given = {opt: getattr(args, key if key != "target" else "warn_error")
             for opt, key in GRAPH_OPTIONS}
    given = {opt: v for opt, v in given.items() if v is not None}
    if given and getattr(args, "network", None) in (None, "digits"):
        opt = next(iter(given))
        raise ConfigError(f"{opt} is an import option of a NIR graph: it needs --network "
                          f"GRAPH.nir")
    for opt, lo, hi in (("--w-width", 2, 18), ("--v-width", 4, 32), ("--i-width", 2, 32)):
        if opt in given:
            check_int(opt, given[opt], lo, hi)
    if "--scale" in given:
        check_number("--scale", given["--scale"], 0, None, lo_open=True)
    if "--warn-error" in given:
        check_number("--warn-error", given["--warn-error"], 0, 100)
    if "--spike-max" in given:
        check_choice("--spike-max", given["--spike-max"], SPIKE_MAXES)
        if given["--spike-max"] != 1:
            raise ConfigError(f"--spike-max must be 1 on a network board, not "
                              f"{given['--spike-max']}: its host link carries one spike bit a "
                              f"neuron and step (multi-spike output runs in simulation: "
                              f"lifgate import-nir --rtl)")
    out = {key: given[opt] for opt, key in GRAPH_OPTIONS if opt in given}
    if "target" in out:
        out["target"] = out["target"] / 100
    return out


@functools.lru_cache(maxsize=4)
def _trained(hidden: int, seed: int):
    data = load_dataset(seed)
    return data, train_ann(data, hidden=hidden, seed=seed)


def digits_network(lanes, *, hidden: int = 32, w_width: int = 8, seed: int = 0) -> Network:
    """The converted network of ``lifgate digits`` (same data split, training and conversion)
    with ``lanes`` per layer (the training is kept for the next call in this process)."""
    data, mlp = _trained(hidden, seed)
    return convert(mlp, data.x_train, w_width=w_width, lanes=tuple(lanes)).network


def relane(network: Network, lanes) -> Network:
    """``network`` with ``lanes[l]`` lanes in layer ``l`` (same weights and parameters: lanes
    only change where a neuron is computed). ConfigError if a layer's neurons are not a
    multiple of its lanes."""
    lanes = tuple(lanes)
    if len(lanes) != len(network.layers):
        raise ConfigError(f"lanes must name the network's {len(network.layers)} layers, not "
                          f"{len(lanes)}")
    layers = []
    for n, (layer, p) in enumerate(zip(network.layers, lanes, strict=True)):
        s = layer.config.shape
        if s.neurons % p:
            raise ConfigError(f"lanes: layer {n} has {s.neurons} neurons, not a multiple of "
                              f"{p} lanes")
        shape = dataclasses.replace(s, lanes=p)
        layers.append(Layer(layer.weights, Config(shape=shape, params=layer.config.params,
                                                  noise=layer.config.noise), layer.rec,
                            layer.skip))
    return Network(tuple(layers), w_width=network.w_width, x_width=network.x_width)


def _nir_lanes(network: Network, cap: int) -> tuple:
    return tuple(next(p for p in (64, 32, 16, 8, 4, 2, 1) if p <= cap and s.neurons % p == 0)
                 for s in network.shapes)


def check_lanes(text: str | None, layers: int | None = None):
    """``--layer-lanes`` as a tuple of powers of two from 1 to 64 (None if not given)."""
    if text is None:
        return None
    try:
        lanes = tuple(int(x, 10) for x in str(text).split(","))
    except ValueError:
        raise ConfigError(f"--layer-lanes must be comma-separated integers such as 8,2, not "
                          f"{text!r}") from None
    for p in lanes:
        if not 1 <= p <= 64 or p & (p - 1):
            raise ConfigError(f"--layer-lanes must be powers of two from 1 to 64, not {text!r}")
    if layers is not None and len(lanes) != layers:
        raise ConfigError(f"--layer-lanes must name {layers} layers, not {len(lanes)} "
                          f"({text!r})")
    return lanes


def network_for(source: str, board_name: str, lanes=None, *,
                dt: float | None = None, **options) -> tuple[str, Network]:
    """``(name, network)`` of ``--network SOURCE`` for ``board_name``: ``digits`` or a NIR
    graph's path (already checked, imported with time step ``dt``: default the graph's, and
    ``options``: :func:`graph_options`), laid out with ``lanes`` (default: the board's)."""
    if source == "digits":
        lanes = lanes or NETWORK_LANES[board_name]
        if len(lanes) != 2:
            raise ConfigError(f"--layer-lanes must name 2 layers for digits, not {len(lanes)}")
        return "digits", digits_network(lanes)
    imp = import_nir(source, dt=dt, **options)
    net = imp.network
    if lanes is not None and len(lanes) != len(net.layers):
        raise ConfigError(f"--layer-lanes must name {len(net.layers)} layers (the graph's), "
                          f"not {len(lanes)}")
    return Path(source).name, relane(net, lanes or _nir_lanes(net, NIR_MAX_LANES[board_name]))


def network_features(network: Network, *, membrane: bool = True) -> NetFeatures:
    """What the network board of ``network`` is built with (``lifgate digits --board``'s
    features for the same network); ConfigError when the board cannot carry it."""
    try:
        return NetFeatures.for_network(network, membrane=membrane, max_payload=MAX_PAYLOAD)
    except ConfigError as e:
        raise ConfigError(f"--network: the network board cannot run this network: {e}") from None


def check_args(args):
    """Every argument of ``lifgate build --network`` before any work: ``(board, freq, out,
    lanes)``; ConfigError (one line, exit 2) otherwise."""
    b = board(args.board)
    given = [opt for opt, value in (("--neurons", args.neurons), ("--lanes", args.lanes),
                                    ("--groups", args.groups), ("--leak-modes", args.leak_modes),
                                    ("--counts", args.counts), ("--events", args.events),
                                    ("--probes", args.probes)) if value]
    if given:
        raise ConfigError(f"{given[0]} is an array board option; a network board takes its "
                          f"shape from --network (use --layer-lanes for its lanes)")
    if args.network != "digits":
        if not str(args.network).endswith(".nir"):
            raise ConfigError(f"--network must be digits or a NIR graph file (GRAPH.nir), not "
                              f"{args.network!r}")
        input_file("--network", args.network)
    if args.membrane and args.no_membrane:
        raise ConfigError("--membrane and --no-membrane contradict each other: give one")
    lanes = check_lanes(args.layer_lanes, 2 if args.network == "digits" else None)
    graph_options(args)
    if args.dt is not None:
        if args.network == "digits":
            raise ConfigError("--dt is for a NIR graph (--network GRAPH.nir), not digits")
        check_number("--dt", args.dt, 0, None, lo_open=True)
    freq = NETWORK_MHZ[b.name] if args.freq is None else args.freq
    check_number("--freq", freq, 1, 400, unit="MHz")
    check_baud(args.baud, freq * 1e6, max_baud=BOARD_MAX_BAUD[b.name])
    check_seeds(args, NETWORK_SEEDS[b.name])
    out = Path(writable_dir("--build-dir", args.build_dir if args.build_dir is not None
                            else f"build/board-{b.name}-net"))
    return b, freq, out, lanes


def build_network(args) -> int:
    """``lifgate build --network``: see the module docstring and ``lifgate build --help``."""
    b, freq, out, lanes = check_args(args)
    show = not args.no_progress
    options = graph_options(args)
    name, net = ticker(lambda: network_for(args.network, b.name, lanes, dt=args.dt, **options),
                       f"build {b.name}: network {args.network}", enabled=show)
    membrane = args.membrane or (NETWORK_MEMBRANE[b.name] and not args.no_membrane)
    features = network_features(net, membrane=membrane)
    top = NetworkBoardTop(board=b, features=features, frequency=freq * 1e6, baud=args.baud)
    desc = {"network": name, "layers": [[s.neurons, s.lanes] for s in features.shapes],
            "inputs": features.inputs, "membrane": features.membrane, "design": "network",
            "baud": args.baud, "w_width": features.w_width,
            "reset_modes": [m.name.lower() for m in features.shapes[0].reset_modes]}
    if show:
        sizes = "-".join(map(str, [features.inputs] + [s.neurons for s in features.shapes]))
        print(f"building {b.name}: network {name} ({sizes}, lanes "
              f"{','.join(str(s.lanes) for s in features.shapes)}), "
              f"{top.clock.frequency / 1e6:g} MHz, in {out} ...", file=sys.stderr, flush=True)
    router = NETWORK_ROUTER[b.name]
    desc["router"] = router or "default"
    return run_toolchain(args, b, top, out, desc,
                         lambda folder: write_net_link_record(folder, b.name, features,
                                                              args.baud),
                         nextpnr_extra=f"--router {router}" if router else "",
                         seeds=args.seeds or NETWORK_SEEDS[b.name])


def check_seeds(args, default: int = 1) -> None:
    """``--seed`` and ``--seeds`` (``default`` when not given): every seed tried must be a
    nextpnr seed."""
    check_int("--seed", args.seed, 0, (1 << 31) - 1)
    n = default if args.seeds is None else args.seeds
    check_int("--seeds", n, 1, 16)
    if args.seed + n - 1 > (1 << 31) - 1:
        raise ConfigError(f"--seed + --seeds - 1 must be at most 2**31 - 1, not "
                          f"{args.seed + n - 1}")


def _network_line(d: dict) -> str:
    fmax = f"{d['fmax_mhz']:.2f}" if d.get("fmax_mhz") else "-"
    return (f"{d['board']} network {d['network']}: Fmax {fmax} MHz at a {d['clock_mhz']:g} MHz "
            "clock, utilisation " + ", ".join(
                f"{k} {u['used']}/{u['available']}" for k, u in d["utilization"].items()))


def run_toolchain(args, b, top, out, desc: dict, record, nextpnr_extra: str = "",
                  table=_network_line, seeds: int = 1) -> int:
    """Synthesis, place and route, pack of ``top`` with progress (the array build's and the
    network build's common end); ``record(folder)`` writes the link record beside the
    bitstream; ``table(d)`` (or with ``--json`` the JSON ``d``: the build report, ``ok``,
    ``seed``, ``seeds_tried`` and ``desc``) on stdout. ``nextpnr_extra``: more nextpnr
    options. ``seeds``: builds with ``args.seed``, ``args.seed + 1``, ... until one meets
    timing, at most ``seeds`` (each in ``out``, replacing the one before)."""
    show = not args.no_progress
    t0 = time.monotonic()
    stages = []

    def on_stage(stage):  # one line per stage; tqdm.write keeps a terminal's bar intact
        now = time.monotonic() - t0
        took = f" ({stages[-1][0]} took {now - stages[-1][1]:.0f} s)" if stages else ""
        stages.append((stage, now))
        tqdm.write(f"build {b.name}: {stage} at {now:.0f} s{took}", file=sys.stderr)

    extra = {"nextpnr_extra": nextpnr_extra} if nextpnr_extra else {}
    tried, rep = [], None
    try:
        for k in range(seeds):
            seed = args.seed + k
            if k:
                # (stderr, not a JSON field: the table and JSON say the seed kept)
                print(f"build {b.name}: timing not met at seed {seed - 1} (Fmax "
                      f"{rep.fmax_mhz or 0:.2f} MHz < {rep.clock_mhz:g} MHz): again with seed "
                      f"{seed} ({k + 1} of {seeds})", file=sys.stderr, flush=True)
                stages.clear()
            rep = ticker(lambda seed=seed: toolchain.run_build(
                b, top, out, seed=seed, pack=True, on_stage=on_stage if show else None,
                timing_allow_fail=not args.no_timing_allow_fail, **extra),
                f"build {b.name}", enabled=show)
            tried.append({"seed": seed, "fmax_mhz": rep.fmax_mhz,
                          "timing_met": bool(rep.timing_met)})
            if rep.timing_met:
                break
    except FitError:
        raise  # a ConfigError: one line, exit 2 (before synthesis, or before place and route)
    except ToolchainError as e:
        where = f" in {stages[-1][0]}" if stages else ""
        if show:
            print(f"build {b.name}: failed{where} after {time.monotonic() - t0:.0f} s",
                  file=sys.stderr)
        print(f"lifgate build: error: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "board": b.name, "error": str(e)}, indent=2))
        return 1
    if show:
        print(f"build {b.name}: done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if rep.bitstream:
        record(Path(rep.bitstream).parent)
    d = rep.to_dict()
    d.update({"ok": bool(rep.timing_met), "goal_mhz": rep.clock_mhz, "seed": tried[-1]["seed"],
              "seeds_tried": tried})
    d.update(desc)
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(table(d))
        print(f"bitstream: {rep.bitstream}")
    if not rep.timing_met:
        where = (f"at seed {tried[0]['seed']}" if len(tried) == 1 else
                 f"at seeds {tried[0]['seed']} to {tried[-1]['seed']} (best Fmax "
                 f"{max(t['fmax_mhz'] or 0 for t in tried):.2f} MHz)")
        print(f"lifgate build: error: timing not met {where}: Fmax {rep.fmax_mhz or 0:.2f} MHz "
              f"< clock {rep.clock_mhz:.2f} MHz; do not flash {rep.bitstream} (try fewer "
              f"lanes, --freq, another --seed or more --seeds)", file=sys.stderr)
        return 1
    return 0
