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
0x21      start u32, count u32,  ``WRITE_RAMP`` (COUNTS built): the current of neuron
          base i32, step i32     ``start + k`` is ``base + floor(k * step / 2**16)``,
                                 ``k < count``, computed on chip (:func:`ramp_values`)
0x30      steps u32, flags u8    ``RUN``: run ``steps`` timesteps. With flags bit 0 (spikes)
                                 or bit 1 (membrane) one ``STEP`` frame (0xB1) per step comes
                                 first; with bit 3 (``EVENTS``) the ``EVENTS`` frames (0xB2),
                                 with bit 4 (``PROBES``) the ``PROBES`` frames (0xB3); then
                                 the ``RUN`` reply (0xB0): step counter u32.
                                 Bit 2 (COUNTS): the run's spikes go into the spike counts
0x31      (none)                 ``CLEAR_COUNTS`` (COUNTS built): reply 0xB4; every count,
                                 first and last step 0, the window 0
0x32      start u32, count u32,  ``READ_COUNTS`` (COUNTS built): reply ``COUNTS`` (0xB5):
          format u8              window u32, then one record per neuron ``start, start + 1,
                                 ..., start + count - 1`` in ``format`` (format 2: a width
                                 byte, then the counts bit-packed, :func:`pack_counts`)
========  =====================  ============================================================

The replies of ``CLEAR_COUNTS`` and ``READ_COUNTS`` are 0xB4 and 0xB5, not ``cmd | 0x80``:
0xB1 is ``STEP`` and 0xB2/0xB3 are the EVENTS mode's.

A ``STEP`` frame's payload is the step label u32 (steps since the clear, modulo
``2**step_width``), then one record per lane address ``a`` in order: ``spike_bytes`` bytes of
spikes (bit ``p`` of the record = neuron ``a * P + p``), then, with the membrane flag, ``P``
membrane values ``v'`` of ``value_bytes`` bytes each, lane 0 first.

Spike counts (``Features.counts``)
---------------------------------
A run with the COUNTS flag reduces its spikes on chip: per neuron a spike count ``c`` (u16),
the window step of its first spike ``first`` and of its last spike ``last`` (u16 each), so a
host computes a rate from the inter-spike intervals, ``(c - 1) / ((last - first) * dt)``,
without receiving a bitmap. The *window* counts the steps run with the COUNTS flag since the
counts were cleared (``CLEAR_COUNTS`` or reset; ``CLEAR`` leaves the counts alone), so several
runs add up; step ``k`` of such a run is window step ``window + k``.

Nothing wraps, everything saturates: ``c`` stops at 65535, ``first``/``last`` record
``min(window step, 65535)``, the window stops at ``2**32 - 1``. Saturation is reported by the
values themselves: ``c == 65535`` means "65535 or more spikes", ``last == 65535`` means "the
last spike came at window step 65535 or later" (the rate formula then needs a shorter window);
:meth:`lifgate.boards.host.Board.read_counts` returns a ``saturated`` mask of those neurons.

``READ_COUNTS`` formats (``count`` records after the window u32):

======  ======  ==================================================================
format  bytes   record
======  ======  ==================================================================
0       6       ``c`` u16, ``first`` u16, ``last`` u16
1       3       ``min(c, 255)`` u8, ``last - first`` u16 (a rate's numbers only)
2       w / 8   ``c`` in ``w`` bits, ``w`` = the bit length of the largest ``c`` of the
                block (0 to 16), sent once as a width byte before the records; the
                records bit-packed LSB first, the last byte padded with zeros
======  ======  ==================================================================

Format 2 is exact (``c`` as in format 0, never cut to a byte as in format 1) and as small as
the block's counts allow: the notebook's rate curve (at most 70 spikes in 5,000 steps) packs
4,096 counts in 7 bits, 3,584 bytes against format 1's 12,288. It carries no first/last step:
the rate is ``c / (window * dt)``; formats 0 and 1 stay for the inter-spike rate. The board
scans the block once for its largest count before the frame starts (``count`` clocks) and
then packs the counts as the UART takes the bytes.

Loading currents by a ramp (``WRITE_RAMP``)
-----------------------------------------
Why a ramp and not a shorter value code: a rate curve (issue 16's workload (a), the notebook's
f-I curve) gives every neuron its own current, spread evenly over a range; ``WRITE_CURRENTS``
spends ``current_bytes`` a neuron on it (8,192 bytes, 6.8 ms at 12 Mbaud for 4,096 neurons,
more than the whole link budget of the 90 % goal), a delta or 8-bit code at least half of
that, while an affine ramp is one 23-byte frame whatever the neuron count. The step has 16
fraction bits so that a few hundred distinct currents spread over thousands of neurons (37 to
170 over 4,096: a step of 0.0325) come out within one unit of ``numpy.linspace`` rounded
down; an integer ``step`` is ``step << 16``. Any other pattern is a sum of ramps over
sub-ranges (one frame each), or ``WRITE_CURRENTS``. The check is exact: every value
``base + floor(k * step / 2**16)`` must lie in the signed ``i_width`` range (nothing wraps;
the board walks the ramp once to check it, then again to write it, ``count`` clocks each).

Link budget, rate curve of issue 16 (4,096 neurons, 5,000 steps, UP5K 8 lanes x 48 MHz:
53.3 ms of array time; 12 Mbaud, 10 bit times a byte): configuring it (parameters, the 8,192
bytes of 16-bit currents in 17 frames, input on, clear; every frame acknowledged) is 8,559
bytes on the line, 7.1 ms; the counts come back in one frame of 24,587 bytes in format 0
(20.5 ms) or 12,299 bytes in format 1 (10.2 ms). The same run as a bitmap is 5,000 ``STEP``
frames of 523 bytes: 2.6 MB, 2.2 s. So the counts make the run array-bound (about 70 % of the
raw rate in format 1), and the 90 % goal of issue 16 needs the link below 5.9 ms: less than
the currents alone. With ``WRITE_RAMP`` (one frame of 23 bytes instead of 17 frames of
``WRITE_CURRENTS``) and format 2 (3,596 bytes for 7-bit counts) the whole exchange is 3,740
bytes, 3.1 ms (figures in ``docs/boards.md``, ``lifgate bench link``). The counts unit
spends 3 clocks on a spike (4 on a neuron's first) while the array delivers one beat of ``P``
neurons a clock; at the notebook's rates (at most 1.4 % of the neurons fire in a step: 0.11
spikes per 8-lane beat) it keeps up through an 8-entry FIFO, and when a burst fills the FIFO
the array waits (backpressure): no spike is ever dropped.
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
bits 0 to 4, or a flag for something the board was not built with (membrane readback,
COUNTS, EVENTS, PROBES), ``EVENTS`` or ``PROBES`` with any other flag (COUNTS included);
``READ_COUNTS`` with ``start + count > N`` or a format above 2; ``WRITE_RAMP`` with
``start + count > N`` or a value of the ramp outside the signed ``i_width`` range; a probe
neuron ``>= N`` or smaller than the one before it (``SET_PROBES``; a payload that is not a
multiple of 4 bytes or names more than ``probe_slots`` neurons is ``ERR_LENGTH``). A board
built without COUNTS (PROBES) answers their commands with ``ERR_UNKNOWN``.

After reset the board is cleared with all parameter words 0, noise seed 1, gain 0, input off,
all input currents 0, no probe neurons set and (COUNTS built) the counts cleared.
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
    ResetMode,
    unpack_params,
)

__all__ = [
    "AFTER_LEAK_BIT",
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
    "modes_byte",
    "modes_of_byte",
    "MAX_BAUD",
    "BOARD_MAX_BAUD",
    "COUNT_FORMATS",
    "COUNT_MAX",
    "COUNT_PACKED",
    "RAMP_FRAC",
    "RUN_COUNTS",
    "VERSION_BYTES",
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
    "pack_counts",
    "param_word_valid",
    "ramp_values",
    "unpack_counts",
    "parse_version",
    "version_payload",
]

PROTOCOL_VERSION = 2
#: Length of an array board's ``VERSION`` payload (:func:`version_payload`).
VERSION_BYTES = 26


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
    WRITE_RAMP = 0x21
    RUN = 0x30
    CLEAR_COUNTS = 0x31
    READ_COUNTS = 0x32
    # Replies
    RUN_DONE = 0xB0
    STEP = 0xB1
    EVENTS = 0xB2
    PROBES = 0xB3
    COUNTS_CLEARED = 0xB4
    COUNTS = 0xB5
    ERR = 0xFF


#: The commands a board executes.
COMMANDS = (Cmd.VERSION, Cmd.STATUS, Cmd.SET_PARAMS, Cmd.SET_NOISE, Cmd.SET_INPUT, Cmd.CLEAR,
            Cmd.WRITE_CURRENTS, Cmd.RUN)


RUN_SPIKES = 1
RUN_MEMBRANE = 2
RUN_COUNTS = 4
RUN_EVENTS = 8
RUN_PROBES = 16

#: The COUNTS unit's saturation values: a count, a first/last window step, the window.
COUNT_MAX = 0xFFFF
COUNT_STEP_MAX = 0xFFFF
WINDOW_MAX = 0xFFFF_FFFF
#: ``READ_COUNTS`` record bytes per format (0: count, first, last; 1: count u8, span).
COUNT_FORMATS = {0: 6, 1: 3}
#: ``READ_COUNTS`` format 2: a width byte, then the counts bit-packed at that width.
COUNT_PACKED = 2
#: Fraction bits of ``WRITE_RAMP``'s step (the step is in units of ``2**-RAMP_FRAC``).
RAMP_FRAC = 16


def ramp_values(base: int, step: int, count: int) -> np.ndarray:
    """The currents ``WRITE_RAMP`` computes: ``base + floor(k * step / 2**RAMP_FRAC)`` for
    ``k = 0 .. count - 1`` (int64; ``step`` in units of ``2**-RAMP_FRAC``)."""
    k = np.arange(count, dtype=np.int64)
    return int(base) + ((k * int(step)) >> RAMP_FRAC)


def pack_counts(counts) -> bytes:
    """``READ_COUNTS`` format 2's records: the width byte ``w`` (the bit length of the largest
    count, 0 to 16), then every count in ``w`` bits, least significant bit first, neuron after
    neuron, the last byte padded with zero bits (``ceil(count * w / 8)`` bytes)."""
    values = [int(c) for c in counts]
    w = max(values, default=0).bit_length()
    acc = 0
    for k, c in enumerate(values):
        acc |= c << (k * w)
    return bytes([w]) + acc.to_bytes((len(values) * w + 7) // 8, "little")


def unpack_counts(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`pack_counts` for ``count`` neurons (a ``ValueError`` if ``data`` has
    the wrong length or a width above 16)."""
    if not data or data[0] > 16 or len(data) != 1 + (count * data[0] + 7) // 8:
        raise ValueError(f"packed counts of {len(data)} bytes for {count} neurons")
    w = data[0]
    acc = int.from_bytes(data[1:], "little")
    mask = (1 << w) - 1
    return np.array([(acc >> (k * w)) & mask for k in range(count)], dtype=np.int64)


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
        The UART rate the board top is built for (reported by ``VERSION``), in
        :func:`baud_range`.
    counts : bool
        The spike counts unit built (RUN flag bit 2: COUNTS, ``CLEAR_COUNTS``, ``READ_COUNTS``
        with its packed format 2, and ``WRITE_RAMP``: the rate curve's compact commands).
    events : bool
        Address-event readback built (RUN flag bit 3: EVENTS).
    probes : int
        Probe slots built (RUN flag bit 4: PROBES, ``SET_PROBES``; 0: not built), 0 to 255;
        needs membrane readback.
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
        if self.shape.spike_max > 1:
            raise ConfigError(f"parameter 'shape.spike_max' must be 1 on a board (the host link "
                              f"carries one spike bit a neuron), not {self.shape.spike_max}; "
                              f"multi-spike output runs in simulation (docs/numerics.md)")
        for name in ("membrane", "noise", "counts", "events"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"parameter '{name}' must be a bool, "
                                  f"not {short_repr(getattr(self, name))}")
        check_baud(self.baud)
        if (isinstance(self.probes, bool) or not isinstance(self.probes, numbers.Integral)
                or not 0 <= self.probes <= 255):
            raise ConfigError(f"parameter 'probes' must be an integer in [0, 255], "
                              f"not {short_repr(self.probes)}")
        if isinstance(self.max_payload, bool) or not isinstance(self.max_payload,
                                                                 numbers.Integral):
            raise ConfigError(f"parameter 'max_payload' must be an integer in [16, 65535], "
                              f"not {short_repr(self.max_payload)}")
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

    @property
    def run_modes(self) -> int:
        """``VERSION``'s run modes byte: bit 0 COUNTS, bit 1 EVENTS, bit 2 PROBES built."""
        return int(self.counts) | int(self.events) << 1 | int(self.probes > 0) << 2

    @property
    def run_flags_built(self) -> int:
        """The RUN flags this board takes: spikes, and one bit for each mode built."""
        return (RUN_SPIKES | RUN_MEMBRANE * self.membrane | RUN_COUNTS * self.counts
                | RUN_EVENTS * self.events | RUN_PROBES * (self.probes > 0))

    def run_flags_ok(self, flags: int) -> bool:
        """Whether RUN takes ``flags``: only bits 0 to 4, each for something built, and a
        stream mode (EVENTS, PROBES) alone."""
        if flags & ~self.run_flags_built:
            return False
        return all(not (flags & mode and flags & ~mode) for mode in (RUN_EVENTS, RUN_PROBES))

    @property
    def stream_chunk(self) -> int:
        """Stream bytes in every ``EVENTS`` / ``PROBES`` frame of a run but its last."""
        return self.max_payload - 4

    @property
    def stream_fifo(self) -> int:
        """Bytes of the board's stream FIFO: ``max_payload`` rounded up to a power of two."""
        return 1 << (self.max_payload - 1).bit_length()


def version_payload(features: Features) -> bytes:
    """Payload of the ``VERSION`` reply (:data:`VERSION_BYTES`, 26 bytes).

    protocol version u8, neurons u32, lanes u8, groups u32, v_width u8, i_width u8,
    ref_width u8, decay_frac u8, step_width u8, modes u8 (:func:`modes_byte`: bit ``m`` =
    LeakMode ``m``, bit 7 = SUBTRACT_AFTER_LEAK built),
    features u8 (bit 0 membrane readback, bit 1 noise), max_payload u16, param_bytes u8,
    baud u32 (the UART rate the top was built for), run modes u8 (bit 0 COUNTS, bit 1
    EVENTS, bit 2 PROBES built), probe slots u8 (0 if PROBES is not built).
    """
    s = features.shape
    modes = modes_byte(s)
    feats = int(features.membrane) | (int(features.noise) << 1)
    return (bytes([PROTOCOL_VERSION]) + s.neurons.to_bytes(4, "little") + bytes([s.lanes])
            + s.groups.to_bytes(4, "little")
            + bytes([s.v_width, s.i_width, s.ref_width, s.decay_frac, s.step_width, modes, feats])
            + features.max_payload.to_bytes(2, "little") + bytes([features.param_bytes])
            + features.baud.to_bytes(4, "little")
            + bytes([features.run_modes, features.probes]))


def parse_version(payload: bytes) -> Features:
    """The :class:`Features` a ``VERSION`` reply describes (inverse of :func:`version_payload`)."""
    if len(payload) != VERSION_BYTES or payload[0] != PROTOCOL_VERSION:
        raise ConfigError(
            f"the board speaks protocol version {payload[:1].hex() or '?'}, this host "
            f"{PROTOCOL_VERSION} (VERSION reply of {len(payload)} bytes)"
        )
    u = int.from_bytes
    modes, resets = modes_of_byte(payload[15])
    shape = ArrayShape(
        neurons=u(payload[1:5], "little"), lanes=payload[5], groups=u(payload[6:10], "little"),
        v_width=payload[10], i_width=payload[11], ref_width=payload[12],
        decay_frac=payload[13], step_width=payload[14], leak_modes=modes, reset_modes=resets,
    )
    modes_run = payload[24]
    return Features(shape, membrane=bool(payload[16] & 1), noise=bool(payload[16] & 2),
                    max_payload=u(payload[17:19], "little"), baud=u(payload[20:24], "little"),
                    counts=bool(modes_run & 1), events=bool(modes_run & 2),
                    probes=payload[25] if modes_run & 4 else 0)


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


#: Bit of the VERSION reply's modes byte that says the array builds SUBTRACT_AFTER_LEAK (its
#: parameter word's ``reset_mode`` field is then 2 bits); 0 for the default reset modes, so
#: their byte is the leak-mode mask alone, as before the mode existed.
AFTER_LEAK_BIT = 7


def modes_byte(shape: ArrayShape) -> int:
    """The modes byte of a VERSION reply: bit ``m`` = LeakMode ``m`` built, bit
    :data:`AFTER_LEAK_BIT` = SUBTRACT_AFTER_LEAK built."""
    after = ResetMode.SUBTRACT_AFTER_LEAK in shape.reset_modes
    return sum(1 << int(m) for m in shape.leak_modes) | (after << AFTER_LEAK_BIT)


def modes_of_byte(byte: int) -> tuple[tuple, tuple]:
    """``(leak_modes, reset_modes)`` of a modes byte (inverse of :func:`modes_byte`)."""
    leak = tuple(m for m in LeakMode if byte >> int(m) & 1)
    after = (ResetMode.SUBTRACT_AFTER_LEAK,) if byte >> AFTER_LEAK_BIT & 1 else ()
    return leak, (ResetMode.VALUE, ResetMode.SUBTRACT, *after)


def param_word_valid(shape: ArrayShape, word: int) -> bool:
    """Whether the gateware accepts ``word`` as a parameter set (``ERR_RANGE`` otherwise).

    No bits above the word's width; a leak mode and a reset mode the array builds (the 2-bit
    reset field of a shape with SUBTRACT_AFTER_LEAK has the illegal code 3); ``leak`` within
    the range of
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
    if field_("reset_mode") not in [int(m) for m in shape.reset_modes]:
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
        self._clear_counts()

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
                self.counts.tobytes(), self.window, tuple(self.probes))

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
            *self._counts_commands(),
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
        return self.features.run_flags_ok(flags)

    # Spike counts (COUNTS) --------------------------------------------------------------------

    def _counts_commands(self) -> list:
        if not self.features.counts:
            return []
        return [
            Command(Cmd.CLEAR_COUNTS, lambda n: n == 0, self._clear_counts_cmd),
            Command(Cmd.READ_COUNTS, lambda n: n == 9, self._read_counts),
            Command(Cmd.WRITE_RAMP, lambda n: n == 16, self._write_ramp),
        ]

    def _clear_counts(self):
        """Counts, first and last steps 0 (rows of ``counts``), the window 0."""
        self.counts = np.zeros((3, self.features.shape.neurons), dtype=np.uint16)
        self.window = 0

    def _clear_counts_cmd(self, pl: bytes) -> None:
        self._clear_counts()
        self._reply(Cmd.COUNTS_CLEARED)

    def _count(self, spikes) -> None:
        """Add the spikes ``[T, N]`` of the next ``T`` window steps to the counts."""
        c, first, last = self.counts.astype(np.int64)
        for t, row in enumerate(np.asarray(spikes, dtype=bool)):
            idx = np.flatnonzero(row)
            if not idx.size:
                continue
            w = min(self.window + t, COUNT_STEP_MAX)
            first[idx] = np.where(c[idx] == 0, w, first[idx])
            last[idx] = w
            c[idx] = np.minimum(c[idx] + 1, COUNT_MAX)
        self.counts = np.stack([c, first, last]).astype(np.uint16)
        self.window = min(self.window + len(spikes), WINDOW_MAX)

    def count_records(self, start: int, count: int, fmt: int) -> bytes:
        """The records of ``READ_COUNTS`` (after the window) for neurons ``start..``."""
        c, first, last = (self.counts[:, start:start + count].astype(np.int64))
        if fmt == COUNT_PACKED:
            return pack_counts(c)
        if fmt == 0:
            rec = np.stack([c, first, last], axis=1).astype("<u2").view(np.uint8)
        else:
            span = (last - first).astype("<u2").view(np.uint8).reshape(count, 2)
            rec = np.concatenate([np.minimum(c, 255).astype(np.uint8)[:, None], span], axis=1)
        return rec.tobytes()

    def _read_counts(self, pl: bytes) -> None:
        start, count = int.from_bytes(pl[:4], "little"), int.from_bytes(pl[4:8], "little")
        fmt = pl[8]
        if start + count > self.features.shape.neurons or fmt > COUNT_PACKED:
            return self._error(ErrorCode.RANGE, Cmd.READ_COUNTS)
        return self._reply(Cmd.COUNTS, self.window.to_bytes(4, "little")
                           + self.count_records(start, count, fmt))

    def _write_ramp(self, pl: bytes) -> None:
        shape = self.features.shape
        start, count = int.from_bytes(pl[:4], "little"), int.from_bytes(pl[4:8], "little")
        base = int.from_bytes(pl[8:12], "little", signed=True)
        step = int.from_bytes(pl[12:16], "little", signed=True)
        if start + count > shape.neurons:
            return self._error(ErrorCode.RANGE, Cmd.WRITE_RAMP)
        values = ramp_values(base, step, count)
        lo, hi = shape.i_range
        if count and (values.min() < lo or values.max() > hi):
            return self._error(ErrorCode.RANGE, Cmd.WRITE_RAMP)
        self.currents[start:start + count] = [int(x) for x in values]
        return self._ok(Cmd.WRITE_RAMP)

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
        if not self.features.run_flags_ok(flags):
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
            if flags & RUN_COUNTS:
                self._count(res.spikes)
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
#: Each board's USB-UART maximum (datasheets): the iCEBreaker's FT2232H, the ULX3S's FT231X.
BOARD_MAX_BAUD = {"icebreaker": 12_000_000, "ulx3s-85f": 3_000_000}


def baud_range(clk_hz: float | None = None, timeout_s: float = LINK_TIMEOUT_S, *,
               max_baud: int = MAX_BAUD) -> tuple[int, int]:
    """Legal baud rates ``(lo, hi)``.

    ``lo``: a byte (10 bit times) must take at most half the link's idle timeout, or a frame
    sent without gaps is dropped as timed out between two of its bytes. ``hi``: at least
    :data:`MIN_DIVISOR` clocks per bit at ``clk_hz`` (the board's clock), and at most
    ``max_baud`` (the USB-UART's maximum: :data:`MAX_BAUD`, the fastest of the supported
    boards, or one board's from :data:`BOARD_MAX_BAUD`); without ``clk_hz`` (the host side,
    which does not know the board's clock) only the latter.
    """
    lo = math.ceil(2 * 10 / timeout_s)
    hi = max_baud if clk_hz is None else min(max_baud, int(clk_hz // MIN_DIVISOR))
    return lo, hi


def check_baud(baud, clk_hz: float | None = None, *, name: str = "baud",
               timeout_s: float = LINK_TIMEOUT_S, max_baud: int = MAX_BAUD) -> int:
    """``baud`` as an ``int`` in :func:`baud_range`, else a one-line
    :class:`~lifgate.config.ConfigError` naming ``name`` and the range."""
    lo, hi = baud_range(clk_hz, timeout_s, max_baud=max_baud)
    at = "" if clk_hz is None else f" (at a {clk_hz / 1e6:g} MHz clock)"
    if max_baud != MAX_BAUD and hi == max_baud:
        at += " (the board's USB-UART maximum)"
    if isinstance(baud, bool) or not isinstance(baud, numbers.Integral):
        raise ConfigError(f"parameter '{name}' must be an integer in [{lo}, {hi}]{at}, "
                          f"not {short_repr(baud)}")
    if not lo <= baud <= hi:
        raise ConfigError(f"parameter '{name}' must be an integer in [{lo}, {hi}]{at}, "
                          f"not {int(baud)}")
    return int(baud)
