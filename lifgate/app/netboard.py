"""Running a network on a network board: the host side that ``lifgate digits --board`` and
``lifgate import-nir --board`` share.

:func:`check_board_spec` checks a ``--board SPEC`` before any work; :func:`fit_to_board` lays a
network out as a board's ``VERSION`` reply says (its lanes) and refuses, in one line naming
what differs, a network of another shape; :func:`run_on_board` opens the board (a simulated
one is built from the network's own features), loads the network over the link (weights read
back), and runs inputs on it.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifgate.app.netbuild import MAX_PAYLOAD, relane
from lifgate.boards.framehost import NETLIST_ONLY_ARRAY
from lifgate.boards.host import parse_spec
from lifgate.boards.nethost import open_network_board
from lifgate.boards.netproto import NetFeatures
from lifgate.config import ConfigError

__all__ = ["BoardRun", "check_board_spec", "fit_to_board", "run_on_board", "same_run"]


def check_board_spec(board: str) -> tuple[str, object]:
    """``--board SPEC`` (``model``, ``sim:verilator``, ``sim:icarus``, ``serial:PORT[@BAUD]``)
    parsed: ``(kind, arg)``; ConfigError (one line) for a bad spec, a netlist simulation (array
    boards only) or a serial port that is not there."""
    try:
        kind, arg = parse_spec(board)
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"--board: {e}") from None
    if kind == "netlist":
        raise ConfigError(f"--board: {NETLIST_ONLY_ARRAY.format(spec=board)}")
    if kind == "serial" and not os.path.exists(arg[0]):
        raise ConfigError(f"--board: serial port {arg[0]!r} does not exist (is the board "
                          f"plugged in?)")
    if kind == "serial" and not stat.S_ISCHR(os.stat(arg[0]).st_mode):
        raise ConfigError(f"--board: {arg[0]!r} is not a serial port (a character "
                          f"device such as /dev/ttyUSB1)")
    return kind, arg


def _differences(want: NetFeatures, have: NetFeatures) -> list:
    """What differs between the features a network needs (``want``) and a board's (``have``),
    lanes aside, as phrases; empty when the network fits."""
    if want.layers != have.layers:
        return [f"{want.layers} layers, the board {have.layers}"]
    out = []
    for name, a, b in (("inputs", want.inputs, have.inputs),
                       ("w_width", want.w_width, have.w_width),
                       ("x_width", want.x_width, have.x_width)):
        if a != b:
            out.append(f"{name} {a}, the board {b}")
    for n, (a, b) in enumerate(zip(want.shapes, have.shapes, strict=True)):
        if want.recurrent[n] != have.recurrent[n]:
            out.append(f"layer {n} {'is' if want.recurrent[n] else 'is not'} recurrent, the "
                       f"board's {'is' if have.recurrent[n] else 'is not'}")
        if want.skips[n] != have.skips[n]:
            out.append(f"layer {n} skip sources (layer, delay) {list(want.skips[n])}, the board "
                       f"{list(have.skips[n])}")
        for name in ("neurons", "groups", "v_width", "i_width", "ref_width", "decay_frac",
                     "step_width", "spike_max"):
            if getattr(a, name) != getattr(b, name):
                out.append(f"layer {n} {name} {getattr(a, name)}, the board {getattr(b, name)}")
        for name in ("leak_modes", "reset_modes"):
            need = [m.name for m in getattr(a, name) if m not in getattr(b, name)]
            if need:
                out.append(f"layer {n} needs {name} {'+'.join(need)}, the board builds "
                           f"{'+'.join(m.name for m in getattr(b, name))}")
    return out


def fit_to_board(network, features: NetFeatures, *, build: str):
    """``network`` laid out with the lanes of the board whose ``VERSION`` reply is
    ``features`` (same neurons, weights and parameters); ConfigError (one line) naming what
    differs and ``build`` (the command that builds a board for it) when it does not fit."""
    want = NetFeatures.for_network(network, membrane=features.membrane,
                                   max_payload=features.max_payload)
    diff = _differences(want, features)
    if diff:
        raise ConfigError(f"--board: the network does not fit the board ({'; '.join(diff)}): "
                          f"build its board with {build}")
    return relane(network, [s.lanes for s in features.shapes])


@dataclass
class BoardRun:
    """What :func:`run_on_board` did.

    Members
    -------
    network : lifgate.golden.synapse.Network
        The network as loaded (with the board's lanes).
    runs : list of lifgate.boards.nethost.NetRunResult
        One per input, all layers' spikes when ``all_layers``, membranes when ``membrane``.
    membrane : bool
        The board reads membranes back.
    loaded : bool
        Every layer's weights read back over the link equal the network's.
    seconds : dict
        ``open``, ``load`` and ``run`` wall times.
    """

    network: object
    runs: list
    membrane: bool
    loaded: bool
    seconds: dict


def run_on_board(network, spec: str, inputs, *, build_dir, build: str,
                 all_layers: bool = False, optimize: bool = True) -> BoardRun:
    """Open the network board ``spec`` (a simulated board is built from ``network``'s own
    features), fit ``network`` to it (:func:`fit_to_board`), load it over the link, read its
    weights back, and run every ``(x, steps)`` of ``inputs`` from a clear.
    ``NetFeatures.for_network`` refuses what no board carries (multi-spike output) before
    anything is built. ``optimize=False``: a Verilator board compiled with ``-O0`` (quicker to
    build, slower to run: for short runs)."""
    features = NetFeatures.for_network(network, max_payload=MAX_PAYLOAD)
    t0 = time.perf_counter()
    # The fastest UART the gateware takes (4 clocks per bit) keeps a simulated run short.
    with open_network_board(spec, features=features, build_dir=Path(build_dir) / "net-board",
                            divisor=4, link_timeout=400, timeout=120,
                            optimize=optimize) as brd:
        t1 = time.perf_counter()
        net = fit_to_board(network, brd.features, build=build)
        membrane = brd.features.membrane
        brd.load(net)
        loaded = all(np.array_equal(brd.read_weights(n), layer.full_weights)
                     for n, layer in enumerate(net.layers))
        t2 = time.perf_counter()
        runs = [brd.infer(x, steps, membrane=membrane, all_layers=all_layers)
                for x, steps in inputs]
        t3 = time.perf_counter()
    return BoardRun(net, runs, bool(membrane), bool(loaded),
                    {"open": t1 - t0, "load": t2 - t1, "run": t3 - t2})


def same_run(board_run, golden, layers, membrane: bool) -> bool:
    """Whether a board's run equals the golden model's on ``layers``: spikes, and membranes
    when ``membrane``."""
    return all(np.array_equal(board_run.spikes[n], golden.spikes[n])
               and (not membrane or np.array_equal(board_run.v[n], golden.v[n]))
               for n in layers)
