"""Host library of a network board: load a network's weights and parameters, run it.

:class:`NetworkBoard` speaks :mod:`lifgate.boards.netproto` over the transports of
:mod:`lifgate.boards.host`:

* ``model``: :class:`NetModelTransport`, the pure-Python
  :class:`~lifgate.boards.netproto.NetworkBoardModel` (golden model:
  :func:`lifgate.golden.synapse.simulate_network`);
* ``sim:verilator`` / ``sim:icarus``: the network board's gateware
  (:class:`~lifgate.boards.netlink.NetworkLink`) simulated with cocotb, its UART pins driven
  through a socket exactly as for the array board (:class:`lifgate.boards.host.SimTransport`);
* ``serial:PORT[@BAUD]``: a real board.

Example::

    with open_network_board("sim:verilator", features=NetFeatures.for_network(net)) as board:
        board.load(net)
        result = board.infer(x, steps=32)   # output layer's spikes and membranes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lifgate.boards.framehost import (
    NETLIST_ONLY_ARRAY,
    LinkHost,
    LinkTimeout,
    SerialTransport,
    open_on,
    parse_spec,
)
from lifgate.boards.host import LINK_RECORD, ModelTransport, SimTransport, recorded_baud
from lifgate.boards.netproto import (
    RUN_ALL_LAYERS,
    RUN_MEMBRANE,
    RUN_SPIKES,
    NetCmd,
    NetFeatures,
    NetworkBoardModel,
    parse_net_version,
)
from lifgate.boards.nettop import build_net_sim_top
from lifgate.boards.protocol import encode_frame
from lifgate.golden.synapse import Network

from lifgate.checks import (
    check_bool,
    check_int,
    check_int_array,
    check_number,
    check_uint,
    output_dir,
    short_repr,
)
from lifgate.config import ConfigError, NeuronParams, pack_params, signed_range

__all__ = ["NetModelTransport", "NetRunResult", "NetworkBoard", "open_network_board",
           "write_net_link_record"]


class NetModelTransport(ModelTransport):
    """The pure-Python network board model behind a transport."""

    def __init__(self, features: NetFeatures):
        self.model = NetworkBoardModel(features)


@dataclass
class NetRunResult:
    """Outputs of :meth:`NetworkBoard.run`.

    Members
    -------
    spikes : list
        Per layer a bool array [T, N_l], or None for a layer the run did not return.
    v : list
        Per layer an int64 array [T, N_l] of membranes ``v'``, or None.
    labels : int array [T]
        Step labels of the output layer's frames.
    step : int
        The board's step counter after the run.
    """

    spikes: list
    v: list
    labels: np.ndarray
    step: int


class NetworkBoard(LinkHost):
    """A network board behind a :class:`~lifgate.boards.framehost.Transport`.

    Every method sends one or more frames and waits for their replies; an error reply raises
    :class:`~lifgate.boards.framehost.BoardError`, silence raises
    :class:`~lifgate.boards.framehost.LinkTimeout`. ``features`` is what the board's ``VERSION``
    reply says (a :class:`NetFeatures`). The frame exchange is
    :class:`~lifgate.boards.framehost.LinkHost`'s, as for the array board's
    :class:`~lifgate.boards.host.Board`; the methods here are the network board's commands
    only (the array board's, sent with :meth:`request`, are answered with ``ERR_UNKNOWN``).
    ``write_currents`` and ``configure`` are refused on the host (use :meth:`write_x` and
    :meth:`load`).

    As on :class:`~lifgate.boards.host.Board`, every argument is checked before anything is
    sent (:class:`~lifgate.config.ConfigError` naming the parameter and its legal range), and
    a call that ends before all its replies arrived makes the next call resynchronise.
    """

    def version(self) -> NetFeatures:
        return parse_net_version(self.request(NetCmd.VERSION))

    def status(self) -> int:
        """The step counter (steps since the clear, modulo ``2**step_width``)."""
        return int.from_bytes(self.request(NetCmd.STATUS), "little")

    def clear(self) -> None:
        self.request(NetCmd.CLEAR)

    def write_currents(self, currents, start: int = 0) -> None:
        raise ConfigError("a network board has no input currents: use write_x for its inputs")

    def configure(self, config, *, currents=None) -> None:
        raise ConfigError("a network board is configured with load(network), not configure")

    def _param_word(self, layer, group, params) -> tuple[int, int, int]:
        f = self.features
        layer = self._check_layer(layer)
        group = check_int("parameter 'group'", group, 0, f.shapes[layer].groups - 1)
        if not isinstance(params, NeuronParams):
            raise ConfigError(f"parameter 'params' must be a NeuronParams, "
                              f"not {short_repr(params)}")
        return layer, group, pack_params(f.shapes[layer], params)

    def set_params(self, layer: int, group: int, params: NeuronParams) -> None:
        """The parameter set of ``group`` of ``layer``."""
        f = self.features
        layer, group, word = self._param_word(layer, group, params)
        self._exchange(NetCmd.SET_PARAMS, bytes([layer]) + group.to_bytes(4, "little")
                       + word.to_bytes(f.param_bytes, "little"))

    def _x(self, x, start) -> tuple[np.ndarray, int]:
        f = self.features
        values = check_int_array("parameter 'x'", x, 0, (1 << f.x_width) - 1,
                                 max_size=f.inputs)
        start = check_int("parameter 'start'", start, 0, f.inputs - values.size)
        return values, start

    def write_x(self, x, start: int = 0) -> None:
        """Network inputs ``x[start], x[start + 1], ...`` (as many frames as needed): a 1-D
        integer array of at most ``inputs - start`` values in ``[0, 2**x_width - 1]``."""
        f = self.features
        values, start = self._x(x, start)
        per = (f.max_payload - 4) // f.x_bytes
        for k in range(0, max(1, values.size), per):
            chunk = values[k:k + per]
            body = b"".join(int(v).to_bytes(f.x_bytes, "little") for v in chunk)
            self._exchange(NetCmd.WRITE_X, (start + k).to_bytes(4, "little") + body)

    def _check_layer(self, layer) -> int:
        return check_int("parameter 'layer'", layer, 0, self.features.layers - 1)

    def _weights(self, layer, weights) -> tuple[int, np.ndarray]:
        f = self.features
        layer = self._check_layer(layer)
        N, n = f.shapes[layer].neurons, f.fan_in[layer]
        lo, hi = signed_range(f.w_width)
        w = check_int_array("parameter 'weights'", weights, lo, hi, ndim=2)
        if w.shape != (N, n):
            raise ConfigError(f"parameter 'weights' must have shape ({N}, {n}) for layer "
                              f"{layer}, not {w.shape}")
        return layer, w

    def write_weights(self, layer: int, weights) -> None:
        """All weights of ``layer``: a matrix [N_l, n_l] (row ``j`` feeds neuron ``j``) of
        integers in the signed ``w_width`` range; ``n_l`` is the synapse's fan-in
        (``NetFeatures.fan_in``: a recurrent or skip layer's ``Layer.full_weights``)."""
        f = self.features
        layer, w = self._weights(layer, weights)
        n = f.fan_in[layer]
        flat = w.reshape(-1)
        wb = f.weight_bytes
        mask = (1 << (8 * wb)) - 1
        per = (f.max_payload - 9) // wb
        for k in range(0, flat.size, per):
            chunk = flat[k:k + per]
            body = b"".join((int(v) & mask).to_bytes(wb, "little") for v in chunk)
            self._exchange(NetCmd.WRITE_WEIGHTS, bytes([layer]) + (k // n).to_bytes(4, "little")
                           + (k % n).to_bytes(4, "little") + body)

    def read_weights(self, layer: int) -> np.ndarray:
        """All weights of ``layer`` as stored on the board: int64 [N_l, n_l]."""
        f = self.features
        layer = self._check_layer(layer)
        N, n = f.shapes[layer].neurons, f.fan_in[layer]
        wb = f.weight_bytes
        out = np.zeros(N * n, dtype=np.int64)
        per = 4096
        for k in range(0, N * n, per):
            count = min(per, N * n - k)
            pl = self._exchange(NetCmd.READ_WEIGHTS, bytes([layer])
                                + (k // n).to_bytes(4, "little") + (k % n).to_bytes(4, "little")
                                + count.to_bytes(2, "little"))
            if len(pl) != count * wb:
                raise LinkTimeout(f"READ_WEIGHTS reply of {len(pl)} bytes, expected "
                                  f"{count * wb}")
            out[k:k + count] = [int.from_bytes(pl[q:q + wb], "little", signed=True)
                                for q in range(0, len(pl), wb)]
        return out.reshape(N, n)

    def load(self, network) -> None:
        """Load a :class:`lifgate.golden.synapse.Network`: every layer's weights and parameter
        sets, then clear. Its shapes and widths must be the board's; everything is checked
        before the first frame goes out."""
        f = self.features
        if not isinstance(network, Network):
            raise ConfigError(f"parameter 'network' must be a lifgate.golden.synapse.Network, "
                              f"not {short_repr(network)}")
        want = NetFeatures.for_network(network, membrane=f.membrane, max_payload=f.max_payload)
        if want != f:
            raise ConfigError(f"the network ({want}) does not fit the board ({f})")
        for n, layer in enumerate(network.layers):
            self._weights(n, layer.full_weights)
            for g, p in enumerate(layer.config.params):
                self._param_word(n, g, p)
        for n, layer in enumerate(network.layers):
            self.write_weights(n, layer.full_weights)
            for g, p in enumerate(layer.config.params):
                self.set_params(n, g, p)
        self.clear()

    def run(self, steps: int, *, membrane: bool = False, all_layers: bool = False,
            spikes: bool = True) -> NetRunResult:
        """Run ``steps`` steps on the current inputs; return the output layer's (or every
        layer's) spikes, and membranes with ``membrane``. ``steps``: 0 to 2**32 - 1."""
        steps, flags = self._net_run_args(steps, spikes, membrane, all_layers)
        return self._session(self._net_run, steps, flags, membrane, all_layers)

    def _net_run_args(self, steps, spikes, membrane, all_layers) -> tuple[int, int]:
        steps = check_uint("parameter 'steps'", steps, 32)
        spikes = check_bool("parameter 'spikes'", spikes)
        membrane = check_bool("parameter 'membrane'", membrane)
        all_layers = check_bool("parameter 'all_layers'", all_layers)
        if membrane and not self.features.membrane:
            raise ConfigError("parameter 'membrane' must be False: this board is built without "
                              "membrane readback")
        return steps, ((RUN_SPIKES if spikes or membrane else 0)
                       | (RUN_MEMBRANE if membrane else 0) | (RUN_ALL_LAYERS if all_layers else 0))

    def _net_run(self, steps: int, flags: int, membrane: bool, all_layers: bool) -> NetRunResult:
        f = self.features
        layers = list(range(f.layers)) if all_layers else [f.layers - 1]
        sp = [None] * f.layers
        vv = [None] * f.layers
        labels = np.zeros(steps, dtype=np.int64)
        if flags & (RUN_SPIKES | RUN_MEMBRANE):
            for n in layers:
                sp[n] = np.zeros((steps, f.shapes[n].neurons), dtype=bool)
                if membrane:
                    vv[n] = np.zeros((steps, f.shapes[n].neurons), dtype=np.int64)
        self.send(encode_frame(NetCmd.RUN, steps.to_bytes(4, "little") + bytes([flags])))
        if flags & (RUN_SPIKES | RUN_MEMBRANE):
            vb = f.value_bytes
            for t in range(steps):
                for n in layers:
                    pl = self._expect(NetCmd.STEP)
                    N = f.shapes[n].neurons
                    if len(pl) != f.step_length(n, membrane) or pl[0] != n:
                        raise LinkTimeout(f"unexpected STEP frame (layer {pl[:1].hex()}, "
                                          f"{len(pl)} bytes), expected layer {n}")
                    if n == f.layers - 1:
                        labels[t] = int.from_bytes(pl[1:5], "little")
                    sb = f.spike_bytes(n)
                    bits = np.unpackbits(np.frombuffer(pl[5:5 + sb], dtype=np.uint8),
                                         bitorder="little")
                    sp[n][t] = bits[:N].astype(bool)
                    if membrane:
                        raw = pl[5 + sb:]
                        vv[n][t] = [int.from_bytes(raw[q:q + vb], "little", signed=True)
                                    for q in range(0, N * vb, vb)]
        done = self._expect(NetCmd.RUN_DONE)
        return NetRunResult(sp, vv, labels, int.from_bytes(done, "little"))

    def infer(self, x, steps: int, *, membrane: bool = True,
              all_layers: bool = False) -> NetRunResult:
        """Write the inputs ``x`` (constant over the steps), clear, run ``steps`` steps."""
        self._x(x, 0)
        self._net_run_args(steps, True, membrane, all_layers)
        self.write_x(x)
        self.clear()
        return self.run(steps, membrane=membrane, all_layers=all_layers)


def open_network_board(spec: str = "model", *, features: NetFeatures | None = None,
                       timeout: float = 30.0, build_dir="build/net-top", divisor: int = 8,
                       link_timeout: int = 4000, optimize: bool = True,
                       cache_ram: str = "memory") -> NetworkBoard:
    """A :class:`NetworkBoard` for ``spec``: ``model``, ``sim:verilator``, ``sim:icarus`` or
    ``serial:PORT[@BAUD]`` (without ``@BAUD`` the rate of
    :func:`lifgate.boards.host.recorded_baud`: the ``link.json`` that ``lifgate build`` wrote
    last). ``features`` is needed for the model and the simulations (a real
    board reports its own); ``divisor`` (UART clocks per bit) and ``link_timeout`` (clocks)
    are the simulated gateware's; ``optimize=False`` builds Verilator's model with ``-O0``
    (for short sessions); ``cache_ram="spram"`` simulates layer 0's current cache in
    ``SB_SPRAM256KA`` as the UP5K board has it."""
    kind, arg = parse_spec(spec)
    if kind == "netlist":
        raise ConfigError(NETLIST_ONLY_ARRAY.format(spec=spec))
    timeout = check_number("parameter 'timeout'", timeout, 0, 86400, unit="s", lo_open=True)
    if kind == "serial":
        port, baud = arg
        if "@" not in spec:
            baud, _ = recorded_baud()  # link.json of the last build (lifgate build --network)
        return open_on(NetworkBoard, SerialTransport(port, baud), timeout)
    if not isinstance(features, NetFeatures):
        raise ConfigError(f"board {spec!r} needs 'features' (a NetFeatures), not {features!r}")
    if kind == "model":
        return NetworkBoard(NetModelTransport(features), timeout=timeout)
    check_int("parameter 'divisor'", divisor, 4, 1 << 16)
    check_int("parameter 'link_timeout'", link_timeout, 2, 1 << 24)
    check_bool("parameter 'optimize'", optimize)
    output_dir("parameter 'build_dir'", build_dir)
    top = build_net_sim_top(features, sim=arg, build_dir=build_dir, divisor=divisor,
                            timeout=link_timeout, optimize=optimize, cache_ram=cache_ram)
    return open_on(NetworkBoard, SimTransport(features, top=top), timeout)


def write_net_link_record(folder, board: str, features: NetFeatures, baud: int):
    """Write :data:`lifgate.boards.host.LINK_RECORD` (``link.json``) beside a network board's
    bitstream: the board's name, the baud rate (what ``serial:PORT`` without ``@BAUD`` uses)
    and the network's shape. Returns the file's path."""
    path = Path(folder) / LINK_RECORD
    path.write_text(json.dumps({
        "board": board, "baud": baud, "network": True, "inputs": features.inputs,
        "layers": [{"neurons": s.neurons, "lanes": s.lanes} for s in features.shapes],
        "membrane": features.membrane}, indent=2) + "\n")
    return path
