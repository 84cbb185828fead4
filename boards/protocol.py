"""The framed UART protocol between a host and a lifgate board: the pure-Python model.

This module is the reference: the gateware (:mod:`lifgate.boards.link`) must behave exactly like
:class:`FrameDecoder` and :class:`BoardModel`, byte for byte, and the host library
(:mod:`lifgate.boards.host`) speaks it. Pure Python plus the numpy golden model; no Amaranth.

Frames
------
Both directions use the same frame::

    SYNC  CMD  LEN0 LEN1 LEN2  PAYLOAD (LEN bytes)  CRC_HI CRC_LO

``SYNC`` is ``0xA5``; ``LEN`` is the payload length, 24-bit little-endian. The CRC is
CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR; the
check value of ``b"123456789"`` is 0x29B1) over ``CMD``, ``LEN`` and ``PAYLOAD``, sent most
significant byte first, so the CRC over everything after ``SYNC`` including the CRC is 0.
Multi-byte fields in payloads are little-endian; signed values are two's complement.

Receiving (:class:`FrameDecoder`): bytes before a ``SYNC`` are dropped silently (no reply, no
error: a host that sends no frame waits in vain, see ``docs/boards.md``). A frame ends
after its CRC; it is rejected with ``ERR_CRC`` if the CRC does not match, with ``ERR_LENGTH`` if
``LEN`` exceeds the board's frame buffer (``max_payload``). If the line goes idle in the middle
of a frame for longer than the board's timeout, the partial frame is dropped with
``ERR_TIMEOUT``.

Commands (host to board) and replies (board to host)
----------------------------------------------------
A board handles one frame at a time: it answers every frame it receives, and a frame must not
be sent before the reply to the previous one has arrived. Every byte that arrives while the
board is still executing a command or sending its reply is dropped; once the line has been idle
for the timeout (and the reply is out) the board sends ``ERR_OVERRUN``.

========  =====================  ============================================================
cmd       payload                reply (cmd | 0x80 unless stated)
========  =====================  ============================================================
0x01      (none)                 ``VERSION``: :func:`version_payload` (shape and features)
0x02      (none)                 ``STATUS``: flags u8 (bit 0 input enable), step u32,
                                 noise seed u32, noise gain u16
0x10      group u32, word        ``SET_PARAMS``: parameter set of ``group``; ``word`` is
                                 :func:`lifgate.config.pack_params` in ``param_bytes`` bytes
0x11      seed u32, gain u16     ``SET_NOISE``: seed (used by the next clear) and gain
0x12      enable u8 (0 or 1)     ``SET_INPUT``: 1: runs read the input-current memory
0x13      (none)                 ``CLEAR``: v = v_init, r = 0, step = 0, reseed the noise
0x20      start u32, values      ``WRITE_CURRENTS``: the input currents of neurons
                                 ``start, start + 1, ...``, ``current_bytes`` bytes each
0x30      steps u32, flags u8    ``RUN``: run ``steps`` timesteps. With flags bit 0 (spikes)
                                 or bit 1 (membrane) one ``STEP`` frame (0xB1) per step comes
                                 first; then the ``RUN`` reply (0xB0): step counter u32
========  =====================  ============================================================

A ``STEP`` frame's payload is the step label u32 (steps since the clear, modulo
``2**step_width``), then one record per lane address ``a`` in order: ``spike_bytes`` bytes of
spikes (bit ``p`` of the record = neuron ``a * P + p``), then, with the membrane flag, ``P``
membrane values ``v'`` of ``value_bytes`` bytes each, lane 0 first.

Errors: ``ERR`` (0xFF) with payload ``code u8, cmd u8`` (the command of the rejected frame; 0
if no command byte arrived). A rejected frame changes nothing on the board. Checks run in this
order: CRC, frame length (``ERR_LENGTH`` if longer than ``max_payload``), command known
(``ERR_UNKNOWN``), payload length for the command (``ERR_LENGTH``), values (``ERR_RANGE``):
a group ``>= G``; a parameter word with bits above its width, a leak mode the array does not
build, or a leak value outside the range of its mode; an input enable other than 0 or 1;
``start + count > N``; a current outside the signed ``i_width`` range; RUN flags other than
bits 0 and 1, or the membrane flag on a board built without membrane readback.

After reset the board is cleared with all parameter words 0, noise seed 1, gain 0, input off
and all input currents 0.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass

import numpy as np
from lifgate.boards.frameproto import (
    IDLE,
    MAX_LEN,
    SYNC,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    LinkModel,
    crc16,
    encode_frame,
)
from lifgate.golden.fixed import fresh_state, simulate

from lifgate.checks import short_repr
from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NoiseParams,
    unpack_params,
)

__all__ = [
    "MAX_LEN",
    "PROTOCOL_VERSION",
    "SYNC",
    "BoardModel",
    "Cmd",
    "ErrorCode",
    "Features",
    "FrameDecoder",
    "Frame",
    "FrameError",
    "IDLE",
    "LINK_TIMEOUT_S",
    "MAX_BAUD",
    "MIN_DIVISOR",
    "baud_range",
    "check_baud",
    "crc16",
    "encode_frame",
    "param_word_valid",
    "parse_version",
    "version_payload",
]

PROTOCOL_VERSION = 1


class Cmd(enum.IntEnum):
    """Command codes (host to board) and the reply codes that are not ``cmd | 0x80``."""

    VERSION = 0x01
    STATUS = 0x02
    SET_PARAMS = 0x10
    SET_NOISE = 0x11
    SET_INPUT = 0x12
    CLEAR = 0x13
    WRITE_CURRENTS = 0x20
    RUN = 0x30
    # Replies
    RUN_DONE = 0xB0
    STEP = 0xB1
    ERR = 0xFF


#: The commands a board executes.
COMMANDS = (Cmd.VERSION, Cmd.STATUS, Cmd.SET_PARAMS, Cmd.SET_NOISE, Cmd.SET_INPUT, Cmd.CLEAR,
            Cmd.WRITE_CURRENTS, Cmd.RUN)


RUN_SPIKES = 1
RUN_MEMBRANE = 2


# Board description ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What a board top is built with, beyond its :class:`~lifgate.config.ArrayShape`.

    Members
    -------
    shape : ArrayShape
    membrane : bool
        Membrane readback built (RUN's membrane flag is legal).
    noise : bool
        Noise source built.
    max_payload : int
        Frame buffer size in bytes: the longest payload the board accepts, 16 to 65535.
    """

    shape: ArrayShape
    membrane: bool = True
    noise: bool = True
    max_payload: int = 512

    def __post_init__(self):
        if not isinstance(self.shape, ArrayShape):
            raise ConfigError(f"parameter 'shape' must be an ArrayShape, not {self.shape!r}")
        if not 16 <= self.max_payload <= 65535:
            raise ConfigError(
                f"parameter 'max_payload' must be an integer in [16, 65535], "
                f"not {self.max_payload!r}"
            )
        if self.max_payload < 4 + self.param_bytes:
            raise ConfigError(
                f"parameter 'max_payload' must be at least {4 + self.param_bytes} "
                f"(a SET_PARAMS frame), not {self.max_payload!r}"
            )

    # The parameter word's width and the byte counts of the frames' values: from the shape's
    # one layout (lifgate.layout.ArrayLayout).

    @property
    def param_width(self) -> int:
        return self.shape.layout.param_width

    @property
    def param_bytes(self) -> int:
        return self.shape.layout.param_bytes

    @property
    def current_bytes(self) -> int:
        return self.shape.layout.current_bytes

    @property
    def value_bytes(self) -> int:
        return self.shape.layout.value_bytes

    @property
    def spike_bytes(self) -> int:
        return self.shape.layout.spike_bytes

    def record_bytes(self, membrane: bool) -> int:
        """Bytes of one lane address in a ``STEP`` frame."""
        return self.spike_bytes + (self.shape.lanes * self.value_bytes if membrane else 0)

    def step_length(self, membrane: bool) -> int:
        """Payload length of a ``STEP`` frame."""
        return 4 + self.shape.depth * self.record_bytes(membrane)


def version_payload(features: Features) -> bytes:
    """Payload of the ``VERSION`` reply (20 bytes).

    protocol version u8, neurons u32, lanes u8, groups u32, v_width u8, i_width u8,
    ref_width u8, decay_frac u8, step_width u8, leak modes u8 (bit ``m`` = LeakMode ``m``),
    features u8 (bit 0 membrane readback, bit 1 noise), max_payload u16, param_bytes u8.
    """
    s = features.shape
    modes = sum(1 << int(m) for m in s.leak_modes)
    feats = int(features.membrane) | (int(features.noise) << 1)
    return (bytes([PROTOCOL_VERSION]) + s.neurons.to_bytes(4, "little") + bytes([s.lanes])
            + s.groups.to_bytes(4, "little")
            + bytes([s.v_width, s.i_width, s.ref_width, s.decay_frac, s.step_width, modes, feats])
            + features.max_payload.to_bytes(2, "little") + bytes([features.param_bytes]))


def parse_version(payload: bytes) -> Features:
    """The :class:`Features` a ``VERSION`` reply describes (inverse of :func:`version_payload`)."""
    if len(payload) != 20 or payload[0] != PROTOCOL_VERSION:
        raise ConfigError(
            f"the board speaks protocol version {payload[:1].hex() or '?'}, this host "
            f"{PROTOCOL_VERSION} (VERSION reply of {len(payload)} bytes)"
        )
    u = int.from_bytes
    modes = tuple(m for m in LeakMode if payload[15] >> int(m) & 1)
    shape = ArrayShape(
        neurons=u(payload[1:5], "little"), lanes=payload[5], groups=u(payload[6:10], "little"),
        v_width=payload[10], i_width=payload[11], ref_width=payload[12],
        decay_frac=payload[13], step_width=payload[14], leak_modes=modes,
    )
    return Features(shape, membrane=bool(payload[16] & 1), noise=bool(payload[16] & 2),
                    max_payload=u(payload[17:19], "little"))


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


def param_word_valid(shape: ArrayShape, word: int) -> bool:
    """Whether the gateware accepts ``word`` as a parameter set (``ERR_RANGE`` otherwise).

    No bits above the word's width; a leak mode the array builds; ``leak`` within the range of
    its mode (SHIFT: ``0..W`` unsigned; MULT: ``0..2**F - 1`` unsigned; CONST: the field read as
    a signed ``max(W, F)``-bit value lies in the membrane range). Every other field is legal in
    any bit pattern.
    """
    fields = shape.layout.params
    if word < 0 or word >> fields.width:
        return False

    def field_(name):
        f = fields[name]
        return (word >> f.offset) & ((1 << f.width) - 1)

    mode = field_("leak_mode")
    if mode not in [int(m) for m in shape.leak_modes]:
        return False
    leak = field_("leak")
    if mode == LeakMode.SHIFT:
        return leak <= shape.v_width
    if mode == LeakMode.MULT:
        return leak <= (1 << shape.decay_frac) - 1
    lo, hi = shape.v_range
    return lo <= _signed(leak, shape.leak_width) <= hi


# Board model ------------------------------------------------------------------------------------


class BoardModel(LinkModel):
    """A board in pure Python: the golden model behind the protocol.

    Bytes go in through :meth:`receive`; :meth:`idle` says the host has stopped sending and
    waits (the line is idle for longer than the timeout); replies come out of :meth:`read`
    (the byte interface is :class:`~lifgate.boards.frameproto.LinkModel`'s). Runs use
    :func:`lifgate.golden.fixed.simulate`, so this is the reference the gateware's replies
    must equal byte for byte.

    Parameters
    ----------
    features : Features
    """

    ERR = Cmd.ERR

    # Board state ------------------------------------------------------------------------------

    def reset(self):
        """The state after a reset: all parameter words 0, seed 1, gain 0, input off, cleared."""
        shape = self.features.shape
        zero = unpack_params(shape, 0)
        self.params = [zero] * shape.groups
        self.seed, self.gain, self.input_en = 1, 0, False
        self.currents = [0] * shape.neurons
        self._reset_link()
        self._clear()

    def config(self) -> Config:
        """The configuration the array runs with now."""
        gain = self.gain if self.features.noise else 0
        return Config(shape=self.features.shape, params=tuple(self.params),
                      noise=NoiseParams(seed=self.seed, gain=gain))

    def _clear(self):
        self.state = fresh_state(self.config())

    def snapshot(self) -> tuple:
        """Everything a frame could change (for "a rejected frame changes nothing" tests)."""
        st = self.state
        return (tuple(self.params), self.seed, self.gain, self.input_en, tuple(self.currents),
                st.v.tobytes(), st.r.tobytes(), st.noise.tobytes(), st.step)

    @property
    def step(self) -> int:
        return self.state.step % (1 << self.features.shape.step_width)

    # Commands ---------------------------------------------------------------------------------

    def commands(self) -> list:
        f = self.features
        return [
            Command(Cmd.VERSION, lambda n: n == 0,
                    lambda pl: self._ok(Cmd.VERSION, version_payload(f))),
            Command(Cmd.STATUS, lambda n: n == 0, self._status),
            Command(Cmd.SET_PARAMS, lambda n: n == 4 + f.param_bytes, self._set_params),
            Command(Cmd.SET_NOISE, lambda n: n == 6, self._set_noise),
            Command(Cmd.SET_INPUT, lambda n: n == 1, self._set_input),
            Command(Cmd.CLEAR, lambda n: n == 0, self._clear_cmd),
            Command(Cmd.WRITE_CURRENTS, lambda n: n >= 4 and (n - 4) % f.current_bytes == 0,
                    self._write_currents),
            Command(Cmd.RUN, lambda n: n == 5, self._run_cmd),
        ]

    def _status(self, pl: bytes) -> None:
        self._ok(Cmd.STATUS, bytes([int(self.input_en)]) + self.step.to_bytes(4, "little")
                 + self.seed.to_bytes(4, "little") + self.gain.to_bytes(2, "little"))

    def _set_params(self, pl: bytes) -> None:
        shape = self.features.shape
        group, word = int.from_bytes(pl[:4], "little"), int.from_bytes(pl[4:], "little")
        if group >= shape.groups or not param_word_valid(shape, word):
            return self._error(ErrorCode.RANGE, Cmd.SET_PARAMS)
        self.params[group] = unpack_params(shape, word)
        return self._ok(Cmd.SET_PARAMS)

    def _set_noise(self, pl: bytes) -> None:
        self.seed, self.gain = int.from_bytes(pl[:4], "little"), int.from_bytes(pl[4:6], "little")
        self._ok(Cmd.SET_NOISE)

    def _set_input(self, pl: bytes) -> None:
        if pl[0] > 1:
            return self._error(ErrorCode.RANGE, Cmd.SET_INPUT)
        self.input_en = bool(pl[0])
        return self._ok(Cmd.SET_INPUT)

    def _clear_cmd(self, pl: bytes) -> None:
        self._clear()
        self._ok(Cmd.CLEAR)

    def _write_currents(self, pl: bytes) -> None:
        f, shape = self.features, self.features.shape
        start, nb = int.from_bytes(pl[:4], "little"), f.current_bytes
        count = (len(pl) - 4) // nb
        lo, hi = shape.i_range
        values = [int.from_bytes(pl[4 + k * nb:4 + (k + 1) * nb], "little", signed=True)
                  for k in range(count)]
        if start + count > shape.neurons or any(not lo <= x <= hi for x in values):
            return self._error(ErrorCode.RANGE, Cmd.WRITE_CURRENTS)
        self.currents[start:start + count] = values
        return self._ok(Cmd.WRITE_CURRENTS)

    def _run_cmd(self, pl: bytes) -> None:
        steps, flags = int.from_bytes(pl[:4], "little"), pl[4]
        if flags & ~(RUN_SPIKES | RUN_MEMBRANE) or (flags & RUN_MEMBRANE
                                                    and not self.features.membrane):
            return self._error(ErrorCode.RANGE, Cmd.RUN)
        self._run(steps, flags)
        return self._reply(Cmd.RUN_DONE, self.step.to_bytes(4, "little"))

    def _run(self, steps: int, flags: int):
        shape = self.features.shape
        currents = np.array(self.currents, dtype=np.int64) if self.input_en else None
        # Long runs go in chunks so a million-step run does not hold a [T, N] array.
        chunk = max(1, min(steps, (1 << 22) // max(1, shape.neurons)))
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            res = simulate(self.config(), n, currents, state=self.state)
            if flags:
                for t in range(n):
                    self._reply(Cmd.STEP, self._step_payload(
                        self.step + t, res.spikes[t], res.v[t] if flags & RUN_MEMBRANE else None))
            self.state = res.final
            done += n

    def _step_payload(self, step: int, spikes, v) -> bytes:
        f, shape = self.features, self.features.shape
        P, D = shape.lanes, shape.depth
        label = step % (1 << shape.step_width)
        bits = np.zeros((D, 8 * f.spike_bytes), dtype=np.uint8)
        bits[:, :P] = np.asarray(spikes).reshape(D, P)
        parts = [np.packbits(bits, axis=1, bitorder="little")]
        if v is not None:
            vb = f.value_bytes
            raw = (np.asarray(v, dtype=np.int64).reshape(D, P) & 0xFFFF_FFFF).astype("<u4")
            parts.append(raw.view(np.uint8).reshape(D, P, 4)[:, :, :vb].reshape(D, P * vb))
        body = np.concatenate(parts, axis=1).tobytes()
        return label.to_bytes(4, "little") + body


# Line rate --------------------------------------------------------------------------------------

#: Line silence (seconds) after which a board top drops a partial frame (``BoardTop``).
LINK_TIMEOUT_S = 0.02
#: Fewest clocks per bit the UART takes (:func:`lifgate.boards.uart.divisor_for`).
MIN_DIVISOR = 4
#: Fastest USB-UART on the supported boards: the iCEBreaker's FT2232H (12 Mbaud; the ULX3S's
#: FT231X does 3 Mbaud).
MAX_BAUD = 12_000_000


def baud_range(clk_hz: float | None = None, timeout_s: float = LINK_TIMEOUT_S) -> tuple[int, int]:
    """Legal baud rates ``(lo, hi)``.

    ``lo``: a byte (10 bit times) must take at most half the link's idle timeout, or a frame
    sent without gaps is dropped as timed out between two of its bytes. ``hi``: at least
    :data:`MIN_DIVISOR` clocks per bit at ``clk_hz`` (the board's clock), and at most
    :data:`MAX_BAUD` (the host's USB-UART); without ``clk_hz`` (the host side, which does not
    know the board's clock) only the latter.
    """
    lo = math.ceil(2 * 10 / timeout_s)
    hi = MAX_BAUD if clk_hz is None else min(MAX_BAUD, int(clk_hz // MIN_DIVISOR))
    return lo, hi


def check_baud(baud, clk_hz: float | None = None, *, name: str = "baud",
               timeout_s: float = LINK_TIMEOUT_S) -> int:
    """``baud`` as an ``int`` in :func:`baud_range`, else a one-line
    :class:`~lifgate.config.ConfigError` naming ``name`` and the range."""
    lo, hi = baud_range(clk_hz, timeout_s)
    at = "" if clk_hz is None else f" (at a {clk_hz / 1e6:g} MHz clock)"
    if isinstance(baud, bool) or not isinstance(baud, numbers.Integral):
        raise ConfigError(f"parameter '{name}' must be an integer in [{lo}, {hi}]{at}, "
                          f"not {short_repr(baud)}")
    if not lo <= baud <= hi:
        raise ConfigError(f"parameter '{name}' must be an integer in [{lo}, {hi}]{at}, "
                          f"not {int(baud)}")
    return int(baud)
