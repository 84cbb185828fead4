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

from dataclasses import dataclass

import numpy as np
from lifgate.boards.host import (
    Board,
    LinkTimeout,
    ModelTransport,
    SerialTransport,
    SimTransport,
    open_on,
    parse_spec,
)
from lifgate.boards.netproto import (
    RUN_ALL_LAYERS,
    RUN_MEMBRANE,
    RUN_SPIKES,
    NetCmd,
    NetFeatures,
    NetworkBoardModel,
    parse_net_version,
)
from lifgate.boards.protocol import encode_frame

from lifgate.config import ConfigError, NeuronParams, pack_params, signed_range

__all__ = ["NetModelTransport", "NetRunResult", "NetworkBoard", "open_network_board"]


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


class NetworkBoard(Board):
    """A network board behind a :class:`~lifgate.boards.host.Transport`.

    Every method sends one or more frames and waits for their replies; an error reply raises
    :class:`~lifgate.boards.host.BoardError`, silence raises
    :class:`~lifgate.boards.host.LinkTimeout`. ``features`` is what the board's ``VERSION``
    reply says (a :class:`NetFeatures`). The array board's commands (``set_noise``,
    ``write_currents``, ...) are answered with ``ERR_UNKNOWN``.
    """

    def version(self) -> NetFeatures:
        return parse_net_version(self.request(NetCmd.VERSION))

    def status(self) -> int:
        """The step counter (steps since the clear, modulo ``2**step_width``)."""
        return int.from_bytes(self.request(NetCmd.STATUS), "little")

    def clear(self) -> None:
        self.request(NetCmd.CLEAR)

    def set_params(self, layer: int, group: int, params: NeuronParams) -> None:
        f = self.features
        if not 0 <= layer < f.layers:
            raise ConfigError(f"parameter 'layer' must be in [0, {f.layers - 1}], not {layer}")
        word = pack_params(f.shapes[layer], params)
        self.request(NetCmd.SET_PARAMS, bytes([layer]) + group.to_bytes(4, "little")
                     + word.to_bytes(f.param_bytes, "little"))

    def write_x(self, x, start: int = 0) -> None:
        """Network inputs ``x[start], x[start + 1], ...`` (as many frames as needed)."""
        f = self.features
        values = np.asarray(x, dtype=np.int64).reshape(-1)
        if values.size and (values.min() < 0 or values.max() >> f.x_width):
            raise ConfigError(f"parameter 'x' must lie in [0, {(1 << f.x_width) - 1}]")
        if start < 0 or start + values.size > f.inputs:
            raise ConfigError(f"parameter 'start' must keep x within [0, {f.inputs}]")
        per = (f.max_payload - 4) // f.x_bytes
        for k in range(0, max(1, values.size), per):
            chunk = values[k:k + per]
            body = b"".join(int(v).to_bytes(f.x_bytes, "little") for v in chunk)
            self.request(NetCmd.WRITE_X, (start + k).to_bytes(4, "little") + body)

    def _check_layer(self, layer: int):
        f = self.features
        if not 0 <= layer < f.layers:
            raise ConfigError(f"parameter 'layer' must be in [0, {f.layers - 1}], not {layer}")
        return f.shapes[layer].neurons, f.fan_in[layer]

    def write_weights(self, layer: int, weights) -> None:
        """All weights of ``layer``: a matrix [N_l, n_l] (row ``j`` feeds neuron ``j``)."""
        f = self.features
        N, n = self._check_layer(layer)
        w = np.asarray(weights, dtype=np.int64)
        if w.shape != (N, n):
            raise ConfigError(f"parameter 'weights' must have shape ({N}, {n}), not {w.shape}")
        lo, hi = signed_range(f.w_width)
        if w.size and (w.min() < lo or w.max() > hi):
            raise ConfigError(f"parameter 'weights' must lie in [{lo}, {hi}]")
        flat = w.reshape(-1)
        wb = f.weight_bytes
        mask = (1 << (8 * wb)) - 1
        per = (f.max_payload - 9) // wb
        for k in range(0, flat.size, per):
            chunk = flat[k:k + per]
            body = b"".join((int(v) & mask).to_bytes(wb, "little") for v in chunk)
            self.request(NetCmd.WRITE_WEIGHTS, bytes([layer]) + (k // n).to_bytes(4, "little")
                         + (k % n).to_bytes(4, "little") + body)

    def read_weights(self, layer: int) -> np.ndarray:
        """All weights of ``layer`` as stored on the board: int64 [N_l, n_l]."""
        f = self.features
        N, n = self._check_layer(layer)
        wb = f.weight_bytes
        out = np.zeros(N * n, dtype=np.int64)
        per = 4096
        for k in range(0, N * n, per):
            count = min(per, N * n - k)
            pl = self.request(NetCmd.READ_WEIGHTS, bytes([layer]) + (k // n).to_bytes(4, "little")
                              + (k % n).to_bytes(4, "little") + count.to_bytes(2, "little"))
            if len(pl) != count * wb:
                raise LinkTimeout(f"READ_WEIGHTS reply of {len(pl)} bytes, expected "
                                  f"{count * wb}")
            out[k:k + count] = [int.from_bytes(pl[q:q + wb], "little", signed=True)
                                for q in range(0, len(pl), wb)]
        return out.reshape(N, n)

    def load(self, network) -> None:
        """Load a :class:`lifgate.golden.synapse.Network`: every layer's weights and parameter
        sets, then clear. Its shapes and widths must be the board's."""
        f = self.features
        want = NetFeatures.for_network(network, membrane=f.membrane, max_payload=f.max_payload)
        if want != f:
            raise ConfigError(f"the network ({want}) does not fit the board ({f})")
        for n, layer in enumerate(network.layers):
            self.write_weights(n, layer.weights)
            for g, p in enumerate(layer.config.params):
                self.set_params(n, g, p)
        self.clear()

    def run(self, steps: int, *, membrane: bool = False, all_layers: bool = False,
            spikes: bool = True) -> NetRunResult:
        """Run ``steps`` steps on the current inputs; return the output layer's (or every
        layer's) spikes, and membranes with ``membrane``."""
        f = self.features
        flags = ((RUN_SPIKES if spikes or membrane else 0) | (RUN_MEMBRANE if membrane else 0)
                 | (RUN_ALL_LAYERS if all_layers else 0))
        self.send(encode_frame(NetCmd.RUN, int(steps).to_bytes(4, "little") + bytes([flags])))
        layers = list(range(f.layers)) if all_layers else [f.layers - 1]
        sp = [None] * f.layers
        vv = [None] * f.layers
        labels = np.zeros(steps, dtype=np.int64)
        if flags & (RUN_SPIKES | RUN_MEMBRANE):
            for n in layers:
                sp[n] = np.zeros((steps, f.shapes[n].neurons), dtype=bool)
                if membrane:
                    vv[n] = np.zeros((steps, f.shapes[n].neurons), dtype=np.int64)
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
        self.write_x(x)
        self.clear()
        return self.run(steps, membrane=membrane, all_layers=all_layers)


def open_network_board(spec: str = "model", *, features: NetFeatures | None = None,
                       timeout: float = 30.0, build_dir="build/net-top", divisor: int = 8,
                       link_timeout: int = 4000, optimize: bool = True) -> NetworkBoard:
    """A :class:`NetworkBoard` for ``spec``: ``model``, ``sim:verilator``, ``sim:icarus`` or
    ``serial:PORT[@BAUD]``. ``features`` is needed for the model and the simulations (a real
    board reports its own); ``divisor`` (UART clocks per bit) and ``link_timeout`` (clocks)
    are the simulated gateware's; ``optimize=False`` builds Verilator's model with ``-O0``
    (for short sessions)."""
    kind, arg = parse_spec(spec)
    if kind == "serial":
        return NetworkBoard(SerialTransport(*arg), timeout=timeout)
    if not isinstance(features, NetFeatures):
        raise ConfigError(f"board {spec!r} needs 'features' (a NetFeatures), not {features!r}")
    if kind == "model":
        return NetworkBoard(NetModelTransport(features), timeout=timeout)
    from lifgate.boards.nettop import build_net_sim_top

    top = build_net_sim_top(features, sim=arg, build_dir=build_dir, divisor=divisor,
                            timeout=link_timeout, optimize=optimize)
    return open_on(NetworkBoard, SimTransport(features, top=top), timeout)
