"""``lifgate build``: a bitstream of the board top (host link and neuron array) for a board.

Synthesis, place-and-route and packing run through the pip-installed YoWASP tools only. The
design runs on the board's PLL at ``--freq`` (default: the clock the default top meets, see
``docs/resources.md``) with that frequency as nextpnr's constraint. Prints the utilisation and
Fmax; when nextpnr's Fmax is below the clock the bitstream is still written but the command
stops with exit code 1 and says so (a design that misses timing must not be flashed).
``--json`` prints ``ok`` (bitstream written and timing met), ``board``, ``bitstream``,
``fmax_mhz``, ``clock_mhz``, ``timing_met``, ``utilization``, ``critical_paths``, ``baud``.

``--baud`` is the UART rate the top is built for, up to the board's USB-UART maximum
(iCEBreaker FT2232H 12 Mbaud, ULX3S FT231X 3 Mbaud) and a quarter of the clock; the board
reports it in ``VERSION``, and ``lifgate.boards.host.write_link_record`` writes it to
``link.json`` beside the bitstream, where the host library finds it for ``serial:PORT``
without ``@BAUD``.

Every argument and ``--build-dir`` are checked before synthesis starts (one line, exit code 2,
nothing created). A design that cannot fit is refused with one line naming the resource and
exit code 2 (``needs 41 of 30 EBR``): before synthesis when its block RAMs, SPRAMs or
multipliers are too many, after synthesis (before place and route) when its cells are. A
failure of nextpnr (no BELs left, unroutable, a crash; a missed clock with
``--no-timing-allow-fail``) is one line with its cause and the path of the log, exit code 1.
Progress on stderr: one line per stage (elaborate, synthesis, place, route, pack) with the
elapsed time and how long the stage before took, then ``done in N s`` (or ``failed in STAGE
after N s``); ``--no-progress`` silences it. stdout holds only the table, or with ``--json``
only the JSON object.

``--network digits|GRAPH.nir`` builds the network board instead (``NetworkBoardTop``: the
host link of ``lifgate.boards.netlink`` and a layered network) with that network's shape; its
weights load over the link at run time (``lifgate digits --board serial:PORT``), so one
bitstream serves any network of that shape. See :mod:`lifgate.app.netbuild`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lifgate.app.cli import DEFAULT_GROUPS, add_report_options
from lifgate.app.commands.resources import _modes, format_table
from lifgate.app.netbuild import (
    NETWORK_LANES,
    NETWORK_MEMBRANE,
    NETWORK_MHZ,
    NETWORK_SEEDS,
    add_graph_options,
    build_network,
    check_seeds,
    graph_options,
    run_toolchain,
)
from lifgate.boards.host import write_link_record
from lifgate.boards.protocol import BOARD_MAX_BAUD, check_baud
from lifgate.boards.resources import board_shape
from lifgate.boards.toolchain import board
from lifgate.boards.top import BoardTop
from lifgate.checks import check_int, check_number, writable_dir
from lifgate.config import ConfigError


def register(subparsers, summary):
    p = subparsers.add_parser("build", help=summary, description=summary + ".")
    p.add_argument("--board", required=True, metavar="BOARD", help="icebreaker or ulx3s-85f")
    p.add_argument("--network", default=None, metavar="digits|GRAPH.nir",
                   help="build the network board instead of the array board, with the shape "
                   "of the digits network of 'lifgate digits' or of an imported NIR graph "
                   "(its weights and parameters load over the link at run time: one bitstream "
                   "serves any network of that shape); default clock "
                   + ", ".join(f"{k} {v:g} MHz" for k, v in NETWORK_MHZ.items()))
    p.add_argument("--dt", type=float, default=None,
                   help="with --network GRAPH.nir: the time step in the graph's time unit, > 0 "
                   "(default: the graph's metadata dt), as in lifgate import-nir")
    p.add_argument("--layer-lanes", default=None, metavar="P0,P1",
                   help="with --network: lanes per layer, powers of two dividing each layer's "
                   "neurons (default for digits: " + ", ".join(
                       f"{k} {','.join(map(str, v))}" for k, v in NETWORK_LANES.items())
                   + "; for a graph: the largest power of two up to 2 (iCEBreaker) or 8 "
                   "(ULX3S) that divides each layer)")
    add_graph_options(p)
    p.add_argument("--neurons", type=int, default=None, metavar="N",
                   help="neurons (default: iCEBreaker 4096, ULX3S 65536)")
    p.add_argument("--lanes", type=int, default=None, metavar="P",
                   help="lanes, a power of two (default: iCEBreaker 4, ULX3S 32)")
    p.add_argument("--groups", type=int, default=None, metavar="G",
                   help=f"parameter groups, dividing N (default {DEFAULT_GROUPS}, as in every "
                   "lifgate command)")
    p.add_argument("--leak-modes", default=None, metavar="MODES",
                   help="comma-separated leak modes (default: iCE40 shift,const; ECP5 all)")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock in MHz (default: iCEBreaker 36, ULX3S 65: what meets timing, "
                   "docs/resources.md)")
    p.add_argument("--baud", type=int, default=115200,
                   help="UART baud rate, up to the board's USB-UART maximum (iCEBreaker 12000000, "
                   "ULX3S 3000000) and a quarter of the clock (default 115200); recorded in "
                   "link.json beside the bitstream for the host")
    p.add_argument("--counts", action="store_true",
                   help="build the spike counts unit (RUN's COUNTS mode, READ_COUNTS with "
                   "the packed format, WRITE_RAMP: a rate curve's currents in one frame)")
    p.add_argument("--events", action="store_true",
                   help="build the address-event readback (RUN's EVENTS mode: only the neurons "
                   "that fired, about a byte each)")
    p.add_argument("--probes", type=int, default=0, metavar="K",
                   help="build K probe slots (RUN's PROBES mode: the membranes of K chosen "
                   "neurons every step), 0 to 255 (default 0: none)")
    p.add_argument("--no-membrane", action="store_true", help="leave out membrane readback "
                   "(also of a network board)")
    p.add_argument("--membrane", action="store_true", help="with --network: build membrane "
                   "readback where the board's default leaves it out (iCEBreaker: it does not "
                   "fit the UP5K with the digits network; default: " + ", ".join(
                       f"{k} {'on' if v else 'off'}" for k, v in NETWORK_MEMBRANE.items()) + ")")
    p.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed, 0 to 2**31 - 1 (default 1)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="place and route with up to N seeds, SEED, SEED + 1, ..., keeping the "
                   "first build that meets timing, 1 to 16 (default 1; a network board: "
                   + ", ".join(f"{k} {v}" for k, v in NETWORK_SEEDS.items()) + ")"),
    p.add_argument("--no-timing-allow-fail", action="store_true",
                   help="let nextpnr stop at a missed clock (one error line, exit 1, no "
                   "bitstream) instead of finishing the build and reporting the miss")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help="build folder (default build/board-BOARD)")
    add_report_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.network is not None:
        return build_network(args)
    if args.layer_lanes is not None:
        raise ConfigError("--layer-lanes needs --network (an array board takes --lanes)")
    graph_options(args)
    if args.membrane:
        raise ConfigError("--membrane needs --network (an array board builds membrane readback "
                          "unless --no-membrane)")
    b = board(args.board)
    lanes = b.build_lanes if args.lanes is None else args.lanes
    groups = DEFAULT_GROUPS if args.groups is None else args.groups
    shape = board_shape(b, neurons=args.neurons, lanes=lanes, groups=groups,
                        leak_modes=_modes(args.leak_modes))
    if shape.lanes & (shape.lanes - 1):
        raise ConfigError(f"parameter 'lanes' must be a power of two, not {shape.lanes}")
    freq = b.build_mhz if args.freq is None else args.freq
    check_number("--freq", freq, 1, 400, unit="MHz")
    # The UART divisor's, the link timeout's and the board's USB-UART's range, up front.
    check_baud(args.baud, freq * 1e6, max_baud=BOARD_MAX_BAUD[b.name])
    check_seeds(args)
    check_int("--probes", args.probes, 0, 255)
    if args.probes and args.no_membrane:
        raise ConfigError("--probes needs membrane readback: leave out --no-membrane")
    # The string, not Path(...): Path("") is "." and an empty path must be refused.
    out = Path(writable_dir("--build-dir", args.build_dir if args.build_dir is not None
                            else f"build/board-{b.name}"))
    top = BoardTop(board=b, shape=shape, frequency=freq * 1e6,
                   membrane=not args.no_membrane, baud=args.baud, counts=args.counts,
                   events=args.events, probes=args.probes)
    show = not args.no_progress
    if show:
        print(f"building {b.name}: {shape.neurons} neurons, {shape.lanes} lanes, "
              f"{top.clock.frequency / 1e6:g} MHz, in {out} ...", file=sys.stderr, flush=True)
    desc = {"neurons": shape.neurons, "lanes": shape.lanes, "groups": shape.groups,
            "design": "top", "baud": args.baud}
    return run_toolchain(args, b, top, out, desc,
                         lambda folder: write_link_record(folder, b.name, top.features),
                         table=lambda d: format_table([d]), seeds=args.seeds or 1)
