"""The host-link protocol of a network board: the pure-Python model.

A network board carries a :class:`lifgate.hdl.network.Network` (synaptic stages feeding LIF
arrays, ``docs/networks.md``) instead of a single ``LIFArray``. It speaks the framing of
:mod:`lifgate.boards.protocol` unchanged (``SYNC``, 24-bit length, CRC-16/CCITT-FALSE, the
decoder's ``ERR_CRC``/``ERR_LENGTH``/``ERR_TIMEOUT`` rules, one frame at a time, ``ERR_OVERRUN``
for bytes sent while the board is busy) and reuses its decoder, CRC, encoder and error codes;
only the commands differ. This module is the reference: the gateware
(:class:`lifgate.boards.netlink.NetworkLink`) must reply exactly like
:class:`NetworkBoardModel`, byte for byte. Pure Python plus the numpy golden model
(:func:`lifgate.golden.synapse.simulate_network`); no Amaranth.

Layers ``l = 0 .. L-1``; layer ``l`` has ``N_l`` neurons on ``P_l`` lanes, ``G_l`` parameter
groups and ``n_l`` inputs (``n_0 = inputs``, ``n_l = N_{l-1}``). Weights are signed
``w_width``-bit values ``W_l[j, i]`` (neuron ``j``, input ``i``) in ``WB = ceil(w_width / 8)``
bytes; network inputs ``x[i]`` are unsigned ``x_width``-bit values in ``XB`` bytes.

========  =========================  ========================================================
cmd       payload                    reply (cmd | 0x80 unless stated)
========  =========================  ========================================================
0x01      (none)                     ``VERSION``: :func:`net_version_payload` (it is a
                                     network board, layer shapes and widths)
0x02      (none)                     ``STATUS``: step u32 (steps since the clear, modulo
                                     ``2**step_width``)
0x13      (none)                     ``CLEAR``: every layer ``v = v_init``, ``r = 0``;
                                     step 0
0x14      layer u8, group u32, word  ``SET_PARAMS``: parameter set ``group`` of ``layer``;
                                     ``word`` is :func:`lifgate.config.pack_params` in
                                     ``param_bytes`` bytes (all layers share one format)
0x22      start u32, values          ``WRITE_X``: inputs ``x[start], x[start + 1], ...``,
                                     ``XB`` bytes each, unsigned
0x24      layer u8, neuron u32,      ``WRITE_WEIGHTS``: a run of weights of ``layer``,
          input u32, values          ``WB`` bytes each, from ``W[neuron, input]`` on in
                                     row-major order (``input`` first, then the next
                                     neuron from input 0)
0x25      layer u8, neuron u32,      ``READ_WEIGHTS``: the reply carries ``count`` weights,
          input u32, count u16       ``WB`` bytes each, in the order ``WRITE_WEIGHTS`` writes
0x32      steps u32, flags u8        ``RUN``: run ``steps`` steps from the current state on
                                     the current ``x``. With flags bit 0 (spikes) or bit 1
                                     (membranes), ``STEP`` frames (0xB3) come first: per step
                                     one for the output layer, or with bit 2 (all layers) one
                                     per layer in layer order; then the ``RUN`` reply (0xB2):
                                     step u32
========  =========================  ========================================================

A ``STEP`` frame's payload: layer u8, step label u32 (steps since the clear before this step,
modulo ``2**step_width``), the layer's spikes in ``ceil(N_l / 8)`` bytes (bit ``j % 8`` of
byte ``j // 8`` = neuron ``j``), then, with the membrane flag, the ``N_l`` membranes ``v'``
in ``value_bytes`` bytes each (two's complement, sign-extended), neuron 0 first.

Errors: ``ERR`` (0xFF) with payload ``code u8, cmd u8``, as in :mod:`lifgate.boards.protocol`,
and a rejected frame changes nothing. Checks in this order: CRC, frame length, command known
(the array board's other commands are ``ERR_UNKNOWN`` here), payload length for the command
(``WRITE_X``: 4 plus a multiple of ``XB``; ``WRITE_WEIGHTS``: 9 plus a multiple of ``WB``),
values (``ERR_RANGE``): a layer ``>= L``; a group ``>= G_l``; a parameter word the layer's
array rejects (:func:`lifgate.boards.protocol.param_word_valid`); ``start + count >
inputs`` or an input value ``>= 2**x_width``; a weight outside the signed ``w_width`` range;
``neuron >= N_l`` or ``input >= n_l`` (also for a run of zero weights), or a run past the
layer's last weight (``neuron * n_l + input + count > N_l * n_l``); RUN flags above bit 2.

After a reset every parameter set of layer ``l`` is :func:`default_param_word` (all fields 0,
the layer's first built leak mode), every input is 0 and the network is cleared; the weights
are 0 after power-up, and a reset does not clear them (block RAM).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from lifgate.boards.frameproto import Command, ErrorCode, LinkModel
from lifgate.boards.protocol import (
    PROTOCOL_VERSION,
    VERSION_BYTES,
    modes_byte,
    modes_of_byte,
    param_word_valid,
)
from lifgate.golden.fixed import fresh_state
from lifgate.golden.synapse import Layer, Network, simulate_network

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    NoiseParams,
    signed_range,
    unpack_params,
)

__all__ = [
    "NET_KIND",
    "NetCmd",
    "NetFeatures",
    "NetworkBoardModel",
    "RUN_ALL_LAYERS",
    "RUN_MEMBRANE",
    "RUN_SPIKES",
    "is_network_version",
    "net_version_payload",
    "default_param_word",
    "parse_net_version",
]

#: Second byte of a network board's ``VERSION`` reply (an array board's reply is 26 bytes
#: (20 before protocol version 2), a network board's ``16 + 11 L``, never 20 or 26).
NET_KIND = 0x4E  # "N"

RUN_SPIKES = 1
RUN_MEMBRANE = 2
RUN_ALL_LAYERS = 4


class NetCmd(enum.IntEnum):
    """Command codes of a network board, and the reply codes that are not ``cmd | 0x80``."""

    VERSION = 0x01
    STATUS = 0x02
    CLEAR = 0x13
    SET_PARAMS = 0x14
    WRITE_X = 0x22
    WRITE_WEIGHTS = 0x24
    READ_WEIGHTS = 0x25
    RUN = 0x32
    # Replies
    RUN_DONE = 0xB2
    STEP = 0xB3
    ERR = 0xFF


NET_COMMANDS = (NetCmd.VERSION, NetCmd.STATUS, NetCmd.CLEAR, NetCmd.SET_PARAMS, NetCmd.WRITE_X,
                NetCmd.WRITE_WEIGHTS, NetCmd.READ_WEIGHTS, NetCmd.RUN)


def _bytes_for(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class NetFeatures:
    """What a network board is built with.

    Members
    -------
    shapes : tuple of ArrayShape
        The layers' arrays, layer 0 first (as :class:`lifgate.hdl.network.Network` takes them:
        one parameter word format, one ``step_width``). Lanes must be powers of two.
    inputs : int
        Fan-in of layer 0 (the network inputs ``x``), 1 to 65536.
    w_width : int
        Signed weight width, 2 to 18.
    x_width : int
        Unsigned width of the network inputs, 1 to 16.
    membrane : bool
        Membrane readback built (RUN's membrane flag is legal).
    max_payload : int
        Frame buffer size in bytes, 16 to 65535.
    recurrent : tuple of bool
        Per layer: recurrent weights (``lifgate.golden.synapse.Layer.rec``); empty: none.
    skips : tuple of tuples of (int, int)
        Per layer: its skip connections' ``(source layer, delay)``
        (``lifgate.golden.synapse.Layer.sources``); empty: none.
    """

    shapes: tuple
    inputs: int
    w_width: int = 8
    x_width: int = 1
    membrane: bool = True
    max_payload: int = 256
    recurrent: tuple = ()
    skips: tuple = ()

    def __post_init__(self):
        shapes = tuple(self.shapes)
        object.__setattr__(self, "shapes", shapes)
        if not shapes or len(shapes) > 255:
            raise ConfigError(f"parameter 'shapes' must hold 1 to 255 layers, not {len(shapes)}")
        for n, s in enumerate(shapes):
            if not isinstance(s, ArrayShape):
                raise ConfigError(f"parameter 'shapes[{n}]' must be an ArrayShape, not {s!r}")
            if s.layout.params != shapes[0].layout.params or s.step_width != shapes[0].step_width:
                raise ConfigError(
                    f"parameter 'shapes[{n}]' must have the v_width, decay_frac, ref_width, "
                    f"reset modes and step_width of layer 0 (one parameter word format)"
                )
            if s.lanes & (s.lanes - 1):
                raise ConfigError(f"parameter 'shapes[{n}].lanes' must be a power of two for a "
                                  f"board top, not {s.lanes!r}")
            if s.spike_max > 1:
                raise ConfigError(f"parameter 'shapes[{n}].spike_max' must be 1 on a board "
                                  f"(the host link carries one spike bit a neuron), not "
                                  f"{s.spike_max}; multi-spike output runs in simulation")
        for name, value, lo, hi in (("inputs", self.inputs, 1, 1 << 16),
                                    ("w_width", self.w_width, 2, 18),
                                    ("x_width", self.x_width, 1, 16),
                                    ("max_payload", self.max_payload, 16, 65535)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"parameter {name!r} must be an integer in [{lo}, {hi}], "
                                  f"not {value!r}")
        self._check_sources()
        if self.max_payload < 5 + self.param_bytes:
            raise ConfigError(f"parameter 'max_payload' must be at least {5 + self.param_bytes} "
                              f"(a SET_PARAMS frame), not {self.max_payload!r}")

    def _check_sources(self):
        """Normalise ``recurrent`` and ``skips`` to one entry per layer, and check them."""
        L = len(self.shapes)
        rec = tuple(self.recurrent) or (False,) * L
        if len(rec) != L or not all(isinstance(r, bool) for r in rec):
            raise ConfigError(f"parameter 'recurrent' must be {L} bools, not {self.recurrent!r}")
        skips = tuple(tuple(tuple(p) for p in sk) for sk in self.skips) or ((),) * L
        if len(skips) != L:
            raise ConfigError(f"parameter 'skips' must name {L} layers' sources, not "
                              f"{self.skips!r}")
        for n, sk in enumerate(skips):
            ks = [p[0] for p in sk]
            if any(len(p) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in p) for p in sk) or \
                    ks != sorted(set(ks)) or any(not 0 <= k < n - 1 for k in ks) or \
                    any(not 0 <= d <= 64 for _, d in sk):
                raise ConfigError(f"parameter 'skips[{n}]' must be (layer, delay) pairs, "
                                  f"layers increasing in [0, {n - 2}], delays in [0, 64], not "
                                  f"{sk!r}")
        if rec[0] and self.x_width != 1:
            raise ConfigError(f"parameter 'recurrent[0]' needs x_width 1 on a board (one "
                              f"synapse reads x and the layer's spikes), not {self.x_width}")
        object.__setattr__(self, "recurrent", rec)
        object.__setattr__(self, "skips", skips)

    @classmethod
    def for_network(cls, network, *, membrane: bool = True, max_payload: int = 256):
        """The features of a board that carries ``network`` (a
        :class:`lifgate.golden.synapse.Network`), recurrent layers and skip connections
        included (docs/networks.md, "Recurrent layers", "Skip connections")."""
        return cls(tuple(network.shapes), network.inputs, w_width=network.w_width,
                   x_width=network.x_width, membrane=membrane, max_payload=max_payload,
                   recurrent=tuple(network.recurrent), skips=tuple(network.skips))

    @property
    def feed_forward(self) -> bool:
        """True without recurrent layers and skip connections."""
        return not any(self.recurrent) and not any(self.skips)

    @property
    def layers(self) -> int:
        return len(self.shapes)

    @property
    def fan_in(self) -> list:
        """Every layer's synapse fan-in: ``n_l`` (``n_0 = inputs``, ``n_l = N_{l-1}``), plus
        ``N_k`` of each skip source and ``N_l`` if recurrent (the weight rows of
        ``Layer.full_weights``, which the weight commands address)."""
        base = [self.inputs] + [s.neurons for s in self.shapes[:-1]]
        return [b + sum(self.shapes[k].neurons for k, _ in sk) + (s.neurons if r else 0)
                for b, s, r, sk in zip(base, self.shapes, self.recurrent, self.skips,
                                       strict=True)]

    @property
    def param_width(self) -> int:
        return self.shapes[0].layout.params.width

    @property
    def param_bytes(self) -> int:
        return _bytes_for(self.param_width)

    @property
    def weight_bytes(self) -> int:
        return _bytes_for(self.w_width)

    @property
    def x_bytes(self) -> int:
        return _bytes_for(self.x_width)

    @property
    def value_bytes(self) -> int:
        return _bytes_for(self.shapes[0].v_width)

    def spike_bytes(self, layer: int) -> int:
        return _bytes_for(self.shapes[layer].neurons)

    def step_length(self, layer: int, membrane: bool) -> int:
        """Payload length of a ``STEP`` frame of ``layer``."""
        n = self.shapes[layer].neurons
        return 5 + self.spike_bytes(layer) + (n * self.value_bytes if membrane else 0)


def _latch_bytes(latches):
    return None if latches is None else tuple(np.asarray(a).tobytes() for a in latches)


def default_param_word(shape: ArrayShape) -> int:
    """The parameter word of every group after a reset: every field 0 but ``leak_mode``, the
    first of the shape's leak modes (a word of all zeros may name a mode it does not build)."""
    return int(shape.leak_modes[0]) << shape.layout.params["leak_mode"].offset


def net_version_payload(f: NetFeatures) -> bytes:
    """Payload of a network board's ``VERSION`` reply (``16 + 11 L`` bytes).

    protocol version u8, :data:`NET_KIND` u8, layers ``L`` u8, inputs u32, w_width u8,
    x_width u8, features u8 (bit 0 membrane readback), max_payload u16, v_width u8,
    ref_width u8, decay_frac u8, step_width u8 (``param_bytes`` follows from those), then per
    layer: neurons u32, lanes u8, groups u32, i_width u8, modes u8
    (:func:`lifgate.boards.protocol.modes_byte`: bit ``m`` = LeakMode ``m``, bit 7 =
    SUBTRACT_AFTER_LEAK built). A network with recurrent layers or skip connections
    (``not f.feed_forward``) appends, per layer: recurrent u8 (0 or 1), skips ``S`` u8, then
    ``S`` pairs of source layer u8, delay u8 (a feed-forward board's reply is unchanged).
    """
    s0 = f.shapes[0]
    out = (bytes([PROTOCOL_VERSION, NET_KIND, f.layers]) + f.inputs.to_bytes(4, "little")
           + bytes([f.w_width, f.x_width, int(f.membrane)])
           + f.max_payload.to_bytes(2, "little")
           + bytes([s0.v_width, s0.ref_width, s0.decay_frac, s0.step_width]))
    for s in f.shapes:
        modes = modes_byte(s)
        out += (s.neurons.to_bytes(4, "little") + bytes([s.lanes]) + s.groups.to_bytes(4, "little")
                + bytes([s.i_width, modes]))
    if not f.feed_forward:
        for r, sk in zip(f.recurrent, f.skips, strict=True):
            out += bytes([int(r), len(sk)]) + b"".join(bytes([k, d]) for k, d in sk)
    return out


def is_network_version(payload: bytes) -> bool:
    """Whether a ``VERSION`` reply comes from a network board."""
    return len(payload) >= 2 and payload[1] == NET_KIND and len(payload) != VERSION_BYTES


def parse_net_version(payload: bytes) -> NetFeatures:
    """The :class:`NetFeatures` a network board's ``VERSION`` reply describes."""
    if not is_network_version(payload) or payload[0] != PROTOCOL_VERSION:
        raise ConfigError(
            f"not a network board of protocol version {PROTOCOL_VERSION} (VERSION reply "
            f"{payload[:2].hex() or 'empty'}..., {len(payload)} bytes)"
        )
    L = payload[2]
    rec, skips, at = (), (), 16 + 11 * L
    if len(payload) > at:  # the sources of a recurrent or skip network
        rec, skips = [], []
        for _ in range(L):
            if at + 2 > len(payload) or at + 2 + 2 * payload[at + 1] > len(payload):
                break
            S = payload[at + 1]
            rec.append(bool(payload[at]))
            skips.append(tuple((payload[at + 2 + 2 * q], payload[at + 3 + 2 * q])
                               for q in range(S)))
            at += 2 + 2 * S
        rec, skips = tuple(rec), tuple(skips)
    if len(payload) != at or len(rec) not in (0, L):
        raise ConfigError(f"network VERSION reply of {len(payload)} bytes for {L} layers")
    u = int.from_bytes
    v_width, ref_width, decay_frac, step_width = payload[12:16]
    shapes = []
    for k in range(L):
        r = payload[16 + 11 * k:27 + 11 * k]
        leak_modes, reset_modes = modes_of_byte(r[10])
        shapes.append(ArrayShape(
            neurons=u(r[0:4], "little"), lanes=r[4], groups=u(r[5:9], "little"),
            v_width=v_width, i_width=r[9], ref_width=ref_width, decay_frac=decay_frac,
            step_width=step_width, leak_modes=leak_modes, reset_modes=reset_modes,
        ))
    return NetFeatures(tuple(shapes), u(payload[3:7], "little"), w_width=payload[7],
                       x_width=payload[8], membrane=bool(payload[9] & 1),
                       max_payload=u(payload[10:12], "little"), recurrent=rec, skips=skips)


class NetworkBoardModel(LinkModel):
    """A network board in pure Python: the golden model behind the network protocol.

    The byte interface (:meth:`receive`, :meth:`idle`, :meth:`read`) and the frame handling
    are :class:`lifgate.boards.frameproto.LinkModel`'s; the commands are the network's. Runs
    use :func:`lifgate.golden.synapse.simulate_network`.

    Parameters
    ----------
    features : NetFeatures
    """

    ERR = NetCmd.ERR

    def __init__(self, features: NetFeatures):
        if not isinstance(features, NetFeatures):
            raise ConfigError(f"parameter 'features' must be a NetFeatures, not {features!r}")
        # LinkModel.__init__ reads features.max_payload and calls reset().
        self.weights = [np.zeros((s.neurons, n), dtype=np.int64)
                        for s, n in zip(features.shapes, features.fan_in, strict=True)]
        super().__init__(features)

    # Board state ------------------------------------------------------------------------------

    def reset(self):
        """A reset: default parameter words, inputs 0, cleared; the weights are kept (see the
        module docstring; they are 0 after power-up)."""
        f = self.features
        self.params = [[unpack_params(s, default_param_word(s))] * s.groups for s in f.shapes]
        self.x = [0] * f.inputs
        self._reset_link()
        self._clear()

    def configs(self) -> list:
        """The :class:`~lifgate.config.Config` of every layer now."""
        return [Config(shape=s, params=tuple(p), noise=NoiseParams(seed=1, gain=0))
                for s, p in zip(self.features.shapes, self.params, strict=True)]

    def network(self):
        """The :class:`lifgate.golden.synapse.Network` the board runs now: each layer's
        weight rows split into its blocks (``Layer.full_weights``)."""
        f = self.features
        layers = []
        for n, (w, c) in enumerate(zip(self.weights, self.configs(), strict=True)):
            at = ([f.inputs] + [s.neurons for s in f.shapes])[n]
            main, skip = w[:, :at].copy(), []
            for k, d in f.skips[n]:
                skip.append((k, w[:, at:at + f.shapes[k].neurons].copy(), d))
                at += f.shapes[k].neurons
            rec = w[:, at:].copy() if f.recurrent[n] else None
            layers.append(Layer(main, c, rec, tuple(skip)))
        return Network(tuple(layers), w_width=f.w_width, x_width=f.x_width)

    def _clear(self):
        self.states = [fresh_state(c) for c in self.configs()]
        self.steps_done = 0
        self.prev = self.past = None  # the latches of recurrent layers and delayed skips: 0

    def snapshot(self) -> tuple:
        """Everything a frame could change."""
        return (tuple(tuple(p) for p in self.params), tuple(self.x),
                tuple(w.tobytes() for w in self.weights),
                tuple((s.v.tobytes(), s.r.tobytes()) for s in self.states), self.steps_done,
                _latch_bytes(self.prev), _latch_bytes(self.past))

    @property
    def step(self) -> int:
        return self.steps_done % (1 << self.features.shapes[0].step_width)

    # Commands ---------------------------------------------------------------------------------

    def commands(self) -> list:
        f = self.features
        return [
            Command(NetCmd.VERSION, lambda n: n == 0,
                    lambda pl: self._ok(NetCmd.VERSION, net_version_payload(f))),
            Command(NetCmd.STATUS, lambda n: n == 0,
                    lambda pl: self._ok(NetCmd.STATUS, self.step.to_bytes(4, "little"))),
            Command(NetCmd.CLEAR, lambda n: n == 0, self._clear_cmd),
            Command(NetCmd.SET_PARAMS, lambda n: n == 5 + f.param_bytes, self._set_params),
            Command(NetCmd.WRITE_X, lambda n: n >= 4 and (n - 4) % f.x_bytes == 0,
                    self._write_x),
            Command(NetCmd.WRITE_WEIGHTS, lambda n: n >= 9 and (n - 9) % f.weight_bytes == 0,
                    self._write_weights),
            Command(NetCmd.READ_WEIGHTS, lambda n: n == 11, self._read_weights),
            Command(NetCmd.RUN, lambda n: n == 5, self._run_cmd),
        ]

    def _clear_cmd(self, pl: bytes) -> None:
        self._clear()
        self._ok(NetCmd.CLEAR)

    def _set_params(self, pl: bytes) -> None:
        f = self.features
        layer, group, word = pl[0], int.from_bytes(pl[1:5], "little"), int.from_bytes(
            pl[5:], "little")
        if layer >= f.layers:
            return self._error(ErrorCode.RANGE, NetCmd.SET_PARAMS)
        shape = f.shapes[layer]
        if group >= shape.groups or not param_word_valid(shape, word):
            return self._error(ErrorCode.RANGE, NetCmd.SET_PARAMS)
        self.params[layer][group] = unpack_params(shape, word)
        return self._ok(NetCmd.SET_PARAMS)

    def _write_x(self, pl: bytes) -> None:
        f = self.features
        start, xb = int.from_bytes(pl[:4], "little"), f.x_bytes
        values = [int.from_bytes(pl[k:k + xb], "little") for k in range(4, len(pl), xb)]
        if start + len(values) > f.inputs or any(v >> f.x_width for v in values):
            return self._error(ErrorCode.RANGE, NetCmd.WRITE_X)
        self.x[start:start + len(values)] = values
        return self._ok(NetCmd.WRITE_X)

    def _weight_run(self, pl: bytes, count: int):
        """The flat weights of a weight run's header (``layer u8, neuron u32, input u32``) and
        ``count``, and its first index; None if out of range."""
        f = self.features
        layer, neuron, inp = pl[0], int.from_bytes(pl[1:5], "little"), int.from_bytes(
            pl[5:9], "little")
        if layer >= f.layers:
            return None
        N, fan = f.shapes[layer].neurons, f.fan_in[layer]
        if neuron >= N or inp >= fan or neuron * fan + inp + count > N * fan:
            return None
        return self.weights[layer].reshape(-1), neuron * fan + inp  # a view: row-major W[j, i]

    def _write_weights(self, pl: bytes) -> None:
        wb = self.features.weight_bytes
        values = [int.from_bytes(pl[k:k + wb], "little", signed=True)
                  for k in range(9, len(pl), wb)]
        run = self._weight_run(pl, len(values))
        lo, hi = signed_range(self.features.w_width)
        if run is None or any(not lo <= v <= hi for v in values):
            return self._error(ErrorCode.RANGE, NetCmd.WRITE_WEIGHTS)
        flat, first = run
        flat[first:first + len(values)] = values
        return self._ok(NetCmd.WRITE_WEIGHTS)

    def _read_weights(self, pl: bytes) -> None:
        wb = self.features.weight_bytes
        count = int.from_bytes(pl[9:11], "little")
        run = self._weight_run(pl, count)
        if run is None:
            return self._error(ErrorCode.RANGE, NetCmd.READ_WEIGHTS)
        flat, first = run
        mask = (1 << (8 * wb)) - 1
        return self._ok(NetCmd.READ_WEIGHTS, b"".join(
            (int(w) & mask).to_bytes(wb, "little") for w in flat[first:first + count]))

    def _run_cmd(self, pl: bytes) -> None:
        steps, flags = int.from_bytes(pl[:4], "little"), pl[4]
        if flags & ~(RUN_SPIKES | RUN_MEMBRANE | RUN_ALL_LAYERS) or (
                flags & RUN_MEMBRANE and not self.features.membrane):
            return self._error(ErrorCode.RANGE, NetCmd.RUN)
        self._run(steps, flags)
        return self._reply(NetCmd.RUN_DONE, self.step.to_bytes(4, "little"))

    def _run(self, steps: int, flags: int):
        f = self.features
        net = self.network()
        x = np.array(self.x, dtype=np.int64)
        chunk = max(1, min(steps, (1 << 20) // max(1, sum(s.neurons for s in f.shapes))))
        done = 0
        layers = range(f.layers) if flags & RUN_ALL_LAYERS else [f.layers - 1]
        while done < steps:
            k = min(chunk, steps - done)
            res = simulate_network(net, k, x, states=self.states, prev=self.prev,
                                   past=self.past)
            if flags & (RUN_SPIKES | RUN_MEMBRANE):
                for t in range(k):
                    for layer in layers:
                        self._reply(NetCmd.STEP, self._step_payload(
                            layer, self.steps_done + t, res.spikes[layer][t],
                            res.v[layer][t] if flags & RUN_MEMBRANE else None))
            self.states = res.final
            self.prev, self.past = res.last, res.past
            self.steps_done += k
            done += k

    def _step_payload(self, layer: int, step: int, spikes, v) -> bytes:
        f = self.features
        label = step % (1 << f.shapes[0].step_width)
        out = bytes([layer]) + label.to_bytes(4, "little")
        out += np.packbits(np.asarray(spikes, dtype=np.uint8), bitorder="little").tobytes()
        if v is not None:
            vb = f.value_bytes
            mask = (1 << (8 * vb)) - 1
            out += b"".join((int(x) & mask).to_bytes(vb, "little") for x in v)
        return out
