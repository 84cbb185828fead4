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
0x14      neuron u32 (0 to       ``SET_PROBES``: the probe neurons in increasing order (repeats
          ``probe_slots`` times) allowed), the order of their values in a ``PROBES`` stream
                                 (only on a board built with probes; none: no probe)
0x20      start u32, values      ``WRITE_CURRENTS``: the input currents of neurons
                                 ``start, start + 1, ...``, ``current_bytes`` bytes each
0x30      steps u32, flags u8    ``RUN``: run ``steps`` timesteps. With flags bit 0 (spikes)
                                 or bit 1 (membrane) one ``STEP`` frame (0xB1) per step comes
                                 first; with bit 3 (``EVENTS``) the ``EVENTS`` frames (0xB2),
                                 with bit 4 (``PROBES``) the ``PROBES`` frames (0xB3); then
                                 the ``RUN`` reply (0xB0): step counter u32
========  =====================  ============================================================

A ``STEP`` frame's payload is the step label u32 (steps since the clear, modulo
``2**step_width``), then one record per lane address ``a`` in order: ``spike_bytes`` bytes of
spikes (bit ``p`` of the record = neuron ``a * P + p``), then, with the membrane flag, ``P``
membrane values ``v'`` of ``value_bytes`` bytes each, lane 0 first.

Run streams (``EVENTS``, ``PROBES``)
------------------------------------
With RUN flag bit 3 or 4 the run's results are one byte stream, cut into frames of at most
``max_payload - 4`` stream bytes (the same bound as the host's frames): every frame but the
last of a run carries exactly ``max_payload - 4`` bytes, the last one the rest (a run of 0
steps sends none). A frame's payload is ``label u32`` (the step label, modulo
``2**step_width``, of the step its first stream byte belongs to) followed by its stream bytes;
the host concatenates the frames of a run and decodes the stream as a whole (a code may
straddle two frames). The board buffers the stream in a FIFO of ``max_payload`` bytes rounded
up to a power of two and stalls the array while it is full, so no event is ever lost and the
bytes on the line do not depend on the line's speed.

``EVENTS`` stream (0xB2 frames; :func:`encode_events`): for every step the neurons that
fired, in increasing order, then the end-of-step marker ``0x00``. A neuron ``n`` is coded by
its distance ``d = n - prev`` from the previous event of the same step (``prev = -1`` at the
start of a step), ``1 <= d <= N``: while ``d > 254`` a byte ``0xFF`` (skip 254 neurons), then
``d`` as one byte ``1..254``. So an event costs 1 byte unless it is more than 254 neurons
past the previous one, and an empty step 1 byte.

Why this code (the arithmetic of issue 16's workload (b): 4,096 neurons firing at 20 to 140
Hz with dt = 0.1 ms, i.e. 0.2 % to 1.4 % of them per step, ~33 spikes per step at 80 Hz):
the UP5K array makes 3.84e8 neuron-updates/s, 25 % of that is 23,400 steps/s or ~7.7e5
events/s; 12 Mbaud carries 1.2e6 bytes/s, so an event may cost at most ~1.5 bytes including
the step markers and the framing. A bitmap costs 512 bytes per step (~15 bytes per event),
(step u32, neuron u16) records 6 bytes per event, LEB128 varints of the distance ~1.4 (at a
mean distance of ~124 a third of them take 2 bytes); this code ~1.1 (a skip byte only for
distances above 254, ~13 % at that rate), plus 1 byte per step and 11 bytes per 508-byte
frame (2 %). Measured on the notebook's rate curve (``events_workload`` in
``bench/bench_events.py``, 5,000 steps): 1.21 bytes per event, 39 bytes per step, ~30,000
steps/s at 12 Mbaud, 31 to 33 % of the raw rate.

``PROBES`` stream (0xB3 frames): for every step one record of the probe neurons' membrane
values ``v'`` (as in a ``STEP`` frame's membrane field: ``value_bytes`` bytes each, two's
complement), in the order ``SET_PROBES`` gave them; no record at all while no probe is set.
With 8 probes of 16 bits that is 16 bytes per step, ~32 steps per 512-byte frame: ~73,000
steps/s at 12 Mbaud, near the 94,000 steps/s of a 4,096 x 8 array at 48 MHz.

Errors: ``ERR`` (0xFF) with payload ``code u8, cmd u8`` (the command of the rejected frame; 0
if no command byte arrived). A rejected frame changes nothing on the board. Checks run in this
order: CRC, frame length (``ERR_LENGTH`` if longer than ``max_payload``), command known
(``ERR_UNKNOWN``), payload length for the command (``ERR_LENGTH``), values (``ERR_RANGE``):
a group ``>= G``; a parameter word with bits above its width, a leak mode the array does not
build, or a leak value outside the range of its mode; an input enable other than 0 or 1;
``start + count > N``; a current outside the signed ``i_width`` range; RUN flags other than
bits 0, 1, 3 and 4, the membrane flag on a board built without membrane readback, the
``EVENTS`` flag on a board built without events, the ``PROBES`` flag on a board built without
probes, ``EVENTS`` or ``PROBES`` with any other flag; a probe neuron ``>= N`` or smaller than the
one before it (``SET_PROBES``; a payload that is not a multiple of 4 bytes or names more than
``probe_slots`` neurons is ``ERR_LENGTH``).

After reset the board is cleared with all parameter words 0, noise seed 1, gain 0, input off
and all input currents 0, and no probe neurons set.
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
    param_layout,
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
    "RUN_EVENTS",
    "RUN_MEMBRANE",
    "RUN_PROBES",
    "RUN_SPIKES",
    "StreamChunker",
    "baud_range",
    "check_baud",
    "crc16",
    "decode_events",
    "encode_events",
    "encode_frame",
    "probe_record",
    "param_word_valid",
    "parse_version",
    "version_payload",
]

PROTOCOL_VERSION = 2


class Cmd(enum.IntEnum):
    """Command codes (host to board) and the reply codes that are not ``cmd | 0x80``."""

    VERSION = 0x01
    STATUS = 0x02
    SET_PARAMS = 0x10
    SET_NOISE = 0x11
    SET_INPUT = 0x12
    CLEAR = 0x13
    SET_PROBES = 0x14
    WRITE_CURRENTS = 0x20
    RUN = 0x30
    # Replies
    RUN_DONE = 0xB0
    STEP = 0xB1
    EVENTS = 0xB2
    PROBES = 0xB3
    ERR = 0xFF


#: The commands a board executes.
COMMANDS = (Cmd.VERSION, Cmd.STATUS, Cmd.SET_PARAMS, Cmd.SET_NOISE, Cmd.SET_INPUT, Cmd.CLEAR,
            Cmd.WRITE_CURRENTS, Cmd.RUN)


RUN_SPIKES = 1
RUN_MEMBRANE = 2
RUN_EVENTS = 8
RUN_PROBES = 16


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
    baud : int
        The UART rate the board top is built for (reported by ``VERSION``).
    counts : bool
        COUNTS run mode built (RUN flag bit 2).
    events : bool
        EVENTS run mode built (RUN flag bit 3).
    probes : int
        Probe slots built (PROBES run mode, RUN flag bit 4; 0: not built), 0 to 255; needs
        membrane readback.
    """

    shape: ArrayShape
    membrane: bool = True
    noise: bool = True
    max_payload: int = 512
    baud: int = 115200
    counts: bool = False
    events: bool = False
    probes: int = 0

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
        check_baud(self.baud)
        for name in ("membrane", "noise", "counts", "events"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"parameter '{name}' must be a bool, "
                                  f"not {short_repr(getattr(self, name))}")
        if (isinstance(self.probes, bool) or not isinstance(self.probes, int)
                or not 0 <= self.probes <= 255):
            raise ConfigError(f"parameter 'probes' must be an integer in [0, 255], "
                              f"not {short_repr(self.probes)}")
        if self.probes and not self.membrane:
            raise ConfigError("parameter 'probes' must be 0 on a board built without membrane "
                              "readback (membrane=False)")

    @property
    def param_width(self) -> int:
        return sum(w for _, w in param_layout(self.shape))

    @property
    def param_bytes(self) -> int:
        return (self.param_width + 7) // 8

    @property
    def current_bytes(self) -> int:
        return (self.shape.i_width + 7) // 8

    @property
    def value_bytes(self) -> int:
        return (self.shape.v_width + 7) // 8

    @property
    def spike_bytes(self) -> int:
        return (self.shape.lanes + 7) // 8

    def record_bytes(self, membrane: bool) -> int:
        """Bytes of one lane address in a ``STEP`` frame."""
        return self.spike_bytes + (self.shape.lanes * self.value_bytes if membrane else 0)

    def step_length(self, membrane: bool) -> int:
        """Payload length of a ``STEP`` frame."""
        return 4 + self.shape.depth * self.record_bytes(membrane)

    @property
    def stream_chunk(self) -> int:
        """Stream bytes in every ``EVENTS`` / ``PROBES`` frame of a run but its last."""
        return self.max_payload - 4

    @property
    def stream_fifo(self) -> int:
        """Bytes of the board's stream FIFO: ``max_payload`` rounded up to a power of two."""
        return 1 << (self.max_payload - 1).bit_length()


def version_payload(features: Features) -> bytes:
    """Payload of the ``VERSION`` reply (26 bytes).

    protocol version u8, neurons u32, lanes u8, groups u32, v_width u8, i_width u8,
    ref_width u8, decay_frac u8, step_width u8, leak modes u8 (bit ``m`` = LeakMode ``m``),
    features u8 (bit 0 membrane readback, bit 1 noise), max_payload u16, param_bytes u8,
    baud u32 (the UART rate the board was built for), run modes u8 (bit 0 COUNTS, bit 1
    EVENTS, bit 2 PROBES built), probe slots u8.
    """
    s = features.shape
    modes = sum(1 << int(m) for m in s.leak_modes)
    feats = int(features.membrane) | (int(features.noise) << 1)
    return (bytes([PROTOCOL_VERSION]) + s.neurons.to_bytes(4, "little") + bytes([s.lanes])
            + s.groups.to_bytes(4, "little")
            + bytes([s.v_width, s.i_width, s.ref_width, s.decay_frac, s.step_width, modes, feats])
            + features.max_payload.to_bytes(2, "little") + bytes([features.param_bytes])
            + features.baud.to_bytes(4, "little")
            + bytes([int(features.counts) | int(features.events) << 1
                     | int(features.probes > 0) << 2, features.probes]))


def parse_version(payload: bytes) -> Features:
    """The :class:`Features` a ``VERSION`` reply describes (inverse of :func:`version_payload`)."""
    if len(payload) != 26 or payload[0] != PROTOCOL_VERSION:
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
                    max_payload=u(payload[17:19], "little"), baud=u(payload[20:24], "little"),
                    counts=bool(payload[24] & 1), events=bool(payload[24] & 2),
                    probes=payload[25] if payload[24] & 4 else 0)


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


def param_word_valid(shape: ArrayShape, word: int) -> bool:
    """Whether the gateware accepts ``word`` as a parameter set (``ERR_RANGE`` otherwise).

    No bits above the word's width; a leak mode the array builds; ``leak`` within the range of
    its mode (SHIFT: ``0..W`` unsigned; MULT: ``0..2**F - 1`` unsigned; CONST: the field read as
    a signed ``max(W, F)``-bit value lies in the membrane range). Every other field is legal in
    any bit pattern.
    """
    offsets, offset = {}, 0
    for name, width in param_layout(shape):
        offsets[name] = (offset, width)
        offset += width
    if word < 0 or word >> offset:
        return False

    def field_(name):
        off, width = offsets[name]
        return (word >> off) & ((1 << width) - 1)

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


# Run streams ------------------------------------------------------------------------------------

#: Largest distance one byte of the ``EVENTS`` code carries; ``0xFF`` skips this many neurons.
EVENT_SKIP = 254


def encode_events(spikes) -> bytes:
    """The ``EVENTS`` stream of ``spikes`` (bool ``[T, N]``): per step the distances of the
    neurons that fired (``0xFF`` skips 254 neurons, ``1..254`` is an event), then ``0x00``."""
    out = bytearray()
    for row in np.asarray(spikes, dtype=bool):
        pos = 0
        for n in np.flatnonzero(row).tolist():
            d = n - pos + 1
            k = (d - 1) // EVENT_SKIP
            if k:
                out += b"\xff" * k
            out.append(d - EVENT_SKIP * k)
            pos = n + 1
        out.append(0)
    return bytes(out)


def decode_events(stream: bytes, neurons: int) -> list[list[int]]:
    """The neurons that fired in each step of an ``EVENTS`` stream (inverse of
    :func:`encode_events`); ``ValueError`` for a stream that is not one (a neuron past
    ``neurons``, or bytes after the last end-of-step marker)."""
    steps, cur, pos = [], [], 0
    for b in bytes(stream):
        if b == 0:
            steps.append(cur)
            cur, pos = [], 0
        elif b == 0xFF:
            pos += EVENT_SKIP
        else:
            n = pos + b - 1
            if n >= neurons:
                raise ValueError(f"EVENTS stream names neuron {n} of {neurons}")
            cur.append(n)
            pos = n + 1
    if cur or pos:
        raise ValueError("EVENTS stream ends in the middle of a step")
    return steps


def probe_record(values, value_bytes: int) -> bytes:
    """One step's record of a ``PROBES`` stream: ``values`` (signed) in ``value_bytes`` bytes
    each, little-endian two's complement."""
    mask = (1 << (8 * value_bytes)) - 1
    return b"".join((int(v) & mask).to_bytes(value_bytes, "little") for v in values)


class StreamChunker:
    """Cuts a run's stream into the payloads of its frames (label u32 + stream bytes).

    Parameters
    ----------
    chunk : int
        Stream bytes per frame (the last frame of a run carries the rest).
    label : int
        Step label of the run's first step.
    step_width : int
        Labels count modulo ``2**step_width``.
    record : int
        ``0``: the stream is an ``EVENTS`` stream (a step ends at each ``0x00``); else the
        bytes of one step's record (a ``PROBES`` stream).
    cmd : int
        The frames' command (``EVENTS`` or ``PROBES``).
    """

    def __init__(self, chunk: int, label: int, step_width: int, record: int = 0, cmd: int = 0):
        self.chunk, self.label, self.record, self.cmd = chunk, label, record, cmd
        self.mod = 1 << step_width
        self.buf = bytearray()
        self.offset = 0  # stream bytes already cut into frames

    def _cut(self, n: int) -> bytes:
        data = bytes(self.buf[:n])
        del self.buf[:n]
        payload = (self.label % self.mod).to_bytes(4, "little") + data
        if self.record:
            ends = (self.offset + n) // self.record - self.offset // self.record
        else:
            ends = data.count(0)
        self.label += ends
        self.offset += n
        return payload

    def feed(self, data: bytes) -> list[bytes]:
        """Append stream bytes; the payloads of the frames that are full now."""
        self.buf += data
        out = []
        while len(self.buf) >= self.chunk:
            out.append(self._cut(self.chunk))
        return out

    def flush(self) -> list[bytes]:
        """The end of the run: the payload of the last frame (if any bytes are left)."""
        return [self._cut(len(self.buf))] if self.buf else []


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
        self.probes = []
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
                st.v.tobytes(), st.r.tobytes(), st.noise.tobytes(), st.step,
                tuple(self.probes))

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
        ] + self._stream_commands()

    def _stream_commands(self) -> list:
        """The commands of the run streams (built with the board's probes only)."""
        f = self.features
        if not f.probes:
            return []
        return [Command(Cmd.SET_PROBES, lambda n: n % 4 == 0 and n // 4 <= f.probes,
                        self._set_probes)]

    def _set_probes(self, pl: bytes) -> None:
        idx = [int.from_bytes(pl[k:k + 4], "little") for k in range(0, len(pl), 4)]
        if any(n >= self.features.shape.neurons for n in idx) or idx != sorted(idx):
            return self._error(ErrorCode.RANGE, Cmd.SET_PROBES)
        self.probes = idx
        return self._ok(Cmd.SET_PROBES)

    def run_flags_ok(self, flags: int) -> bool:
        """Whether the board takes the RUN ``flags`` (``ERR_RANGE`` otherwise)."""
        f = self.features
        legal = (RUN_SPIKES | (RUN_MEMBRANE if f.membrane else 0)
                 | (RUN_EVENTS if f.events else 0) | (RUN_PROBES if f.probes else 0))
        if flags & ~legal:
            return False
        for mode in (RUN_EVENTS, RUN_PROBES):  # a stream mode goes alone
            if flags & mode and flags & ~mode:
                return False
        return True

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
        if not self.run_flags_ok(flags):
            return self._error(ErrorCode.RANGE, Cmd.RUN)
        self._run(steps, flags)
        return self._reply(Cmd.RUN_DONE, self.step.to_bytes(4, "little"))

    def _run(self, steps: int, flags: int):
        shape = self.features.shape
        currents = np.array(self.currents, dtype=np.int64) if self.input_en else None
        # Long runs go in chunks so a million-step run does not hold a [T, N] array.
        chunk = max(1, min(steps, (1 << 22) // max(1, shape.neurons)))
        stream = self._stream(flags)
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            res = simulate(self.config(), n, currents, state=self.state)
            if flags & (RUN_SPIKES | RUN_MEMBRANE):
                for t in range(n):
                    self._reply(Cmd.STEP, self._step_payload(
                        self.step + t, res.spikes[t], res.v[t] if flags & RUN_MEMBRANE else None))
            if stream is not None:
                self._stream_frames(stream, flags, res)
            self.state = res.final
            done += n
        if stream is not None:
            for payload in stream.flush():
                self._reply(stream.cmd, payload)

    def _stream(self, flags: int) -> StreamChunker | None:
        """The chunker of a run with the ``EVENTS`` or ``PROBES`` flag, else None."""
        f = self.features
        if flags & RUN_EVENTS:
            return StreamChunker(f.stream_chunk, self.step, f.shape.step_width,
                                 cmd=Cmd.EVENTS)
        if flags & RUN_PROBES:
            return StreamChunker(f.stream_chunk, self.step, f.shape.step_width,
                                 record=len(self.probes) * f.value_bytes, cmd=Cmd.PROBES)
        return None

    def _stream_frames(self, stream: StreamChunker, flags: int, res) -> None:
        """The stream bytes of ``res`` (a chunk of the run) and the frames that are full."""
        if flags & RUN_EVENTS:
            data = encode_events(res.spikes)
        else:
            vb = self.features.value_bytes
            data = b"".join(probe_record(row, vb) for row in res.v[:, self.probes])
        for payload in stream.feed(data):
            self._reply(stream.cmd, payload)

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
