"""The frame core of the host-link protocol, pure Python: framing, CRC, decoder, and the byte
interface and command dispatch every board model shares.

:mod:`lifgate.boards.protocol` (the array board) and :mod:`lifgate.boards.netproto` (the
network board) are thin executors on top: each is a :class:`LinkModel` with a table of
:class:`Command` rows. The frame format, the order of the checks and the error replies are
described in :mod:`lifgate.boards.protocol`; the gateware twin of this module is
:mod:`lifgate.boards.framelink`.

Adding a command
----------------
1. A code in the board's command enum (``Cmd`` / ``NetCmd``) and in its ``COMMANDS``.
2. One row in the model's :meth:`LinkModel.commands` table: ``Command(code, length_ok,
   handler)``; the handler gets the payload (its length already checked), replies with
   :meth:`LinkModel._ok` or rejects with :meth:`LinkModel._error` before changing anything.
3. The gateware: a row in the link's decode table, a dispatch entry and the executor states
   (:mod:`lifgate.boards.framelink`); the host method (:class:`lifgate.boards.framehost.LinkHost`
   subclass) and a byte-for-byte test against this model.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["IDLE", "MAX_LEN", "SYNC", "Command", "ErrorCode", "Frame", "FrameDecoder",
           "FrameError", "LinkModel", "crc16", "encode_frame"]

SYNC = 0xA5

#: Largest payload length the 24-bit length field can carry.
MAX_LEN = (1 << 24) - 1
#: Marker for :meth:`FrameDecoder.decode`: the line is idle for longer than the timeout.
IDLE = None



class ErrorCode(enum.IntEnum):
    """Error codes of an ``ERR`` reply."""

    CRC = 1  #: the CRC does not match
    TIMEOUT = 2  #: the line went idle in the middle of a frame (truncated frame)
    UNKNOWN = 3  #: unknown command
    LENGTH = 4  #: payload too long for the frame buffer, or of the wrong length for the command
    RANGE = 5  #: a value is out of its legal range
    OVERRUN = 6  #: bytes arrived while the board was busy with the previous frame


# CRC --------------------------------------------------------------------------------------------


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no XOR out)."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def encode_frame(cmd: int, payload=b"") -> bytes:
    """The bytes of a frame carrying ``payload`` with command ``cmd``."""
    payload = bytes(payload)
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"Command must be a byte, not {cmd!r}")
    if len(payload) > MAX_LEN:
        raise ValueError(f"Payload must be at most {MAX_LEN} bytes, not {len(payload)}")
    body = bytes([cmd]) + len(payload).to_bytes(3, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


@dataclass(frozen=True)
class Frame:
    """A frame that passed its CRC and length checks."""

    cmd: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    """A frame the decoder rejected: ``code`` and the frame's command byte (0 if none)."""

    code: ErrorCode
    cmd: int = 0


class FrameDecoder:
    """Reference frame decoder: bytes (and idle gaps) in, :class:`Frame`/:class:`FrameError` out.

    Parameters
    ----------
    max_payload : int
        Size of the board's frame buffer: longer frames are received (for the CRC) but
        rejected with ``ERR_LENGTH``.
    """

    def __init__(self, max_payload: int):
        self.max_payload = max_payload
        self.reset()

    def reset(self):
        self._state = "hunt"
        self._cmd = 0
        self._len = 0
        self._hdr = 0
        self._payload = bytearray()
        self._crc = 0xFFFF
        self._count = 0

    @property
    def in_frame(self) -> bool:
        """A frame has started (its ``SYNC`` arrived) and not yet ended."""
        return self._state != "hunt"

    def feed(self, byte: int):
        """One received byte; returns a :class:`Frame`, a :class:`FrameError` or ``None``."""
        if self._state == "hunt":
            if byte == SYNC:
                self._state, self._hdr, self._crc, self._cmd = "hdr", 0, 0xFFFF, 0
            return None
        self._crc = crc16([byte], self._crc)
        if self._state == "hdr":
            if self._hdr == 0:
                self._cmd = byte
                self._len = 0
            else:
                self._len |= byte << (8 * (self._hdr - 1))
            self._hdr += 1
            if self._hdr == 4:
                self._payload = bytearray()
                self._count = 0
                self._state = "payload" if self._len else "crc"
            return None
        if self._state == "payload":
            if self._count < self.max_payload:
                self._payload.append(byte)
            self._count += 1
            if self._count == self._len:
                self._state, self._count = "crc", 0
            return None
        # CRC bytes
        self._count += 1
        if self._count < 2:
            return None
        cmd, crc, length = self._cmd, self._crc, self._len
        self._state = "hunt"
        if crc != 0:
            return FrameError(ErrorCode.CRC, cmd)
        if length > self.max_payload:
            return FrameError(ErrorCode.LENGTH, cmd)
        return Frame(cmd, bytes(self._payload))

    def idle(self):
        """The line was idle for longer than the timeout: a partial frame is dropped."""
        if self._state == "hunt":
            return None
        cmd = self._cmd if self._hdr > 0 else 0
        self._state = "hunt"
        return FrameError(ErrorCode.TIMEOUT, cmd)

    def decode(self, events) -> list:
        """Feed ``events`` (byte values, or :data:`IDLE`); return the outputs in order."""
        out = []
        for ev in events:
            res = self.idle() if ev is IDLE else self.feed(ev)
            if res is not None:
                out.append(res)
        return out




# Board model core -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A row of a board model's command table: the payload lengths the command takes and the
    handler that executes it (called with the payload)."""

    code: int
    length_ok: Callable[[int], bool]
    handler: Callable[[bytes], None]


class LinkModel:
    """The byte interface and command dispatch of a board model.

    Bytes go in through :meth:`receive`; :meth:`idle` says the host has stopped sending and
    waits (the line is idle for longer than the timeout); replies come out of :meth:`read`.
    A subclass gives :meth:`commands` (its table) and :meth:`reset`, which must call
    :meth:`_reset_link`.

    Parameters
    ----------
    features
        The board's features; ``features.max_payload`` sizes the frame buffer.
    """

    #: The command of an error reply.
    ERR = 0xFF

    def __init__(self, features):
        self.features = features
        self._out = bytearray()
        self._decoder = FrameDecoder(features.max_payload)
        self._busy = False  # a frame was executed and the host has not waited since
        self._overrun = False
        self._table = {c.code: c for c in self.commands()}
        self.reset()

    def commands(self) -> list:
        """The board's :class:`Command` table."""
        raise NotImplementedError

    def reset(self):
        raise NotImplementedError

    def _reset_link(self):
        self._decoder.reset()
        self._busy = self._overrun = False

    # Byte interface ---------------------------------------------------------------------------

    def receive(self, data) -> None:
        """Bytes from the host, sent back to back."""
        for byte in bytes(data):
            if self._busy:
                self._overrun = True
                self._decoder.reset()
                continue
            res = self._decoder.feed(byte)
            if res is None:
                continue
            if isinstance(res, FrameError):
                self._error(res.code, res.cmd)
            else:
                self.execute(res)
            self._busy = True

    def idle(self) -> None:
        """The host waits: the line goes idle (timeouts and overruns are reported now)."""
        if self._overrun:
            self._error(ErrorCode.OVERRUN, 0)
        else:
            res = self._decoder.idle()
            if res is not None:
                self._error(res.code, res.cmd)
        self._busy = self._overrun = False

    def read(self) -> bytes:
        """All reply bytes produced so far."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def exchange(self, frames) -> list[bytes]:
        """Replay exchanges as a host that waits for each reply does: for every item of
        ``frames`` (the bytes of one frame, or of several sent back to back) :meth:`receive`
        it, go :meth:`idle` and :meth:`read` the reply bytes. Returns one ``bytes`` per item
        (``frames`` may also be a single ``bytes``: then a list of one)."""
        if isinstance(frames, (bytes, bytearray, memoryview)):
            frames = [frames]
        out = []
        for data in frames:
            self.receive(data)
            self.idle()
            out.append(self.read())
        return out

    def _reply(self, cmd: int, payload=b""):
        self._out += encode_frame(cmd, payload)

    def _error(self, code: ErrorCode, cmd: int):
        self._reply(self.ERR, bytes([int(code), cmd & 0xFF]))

    def _ok(self, cmd: int, payload=b""):
        """The normal reply to ``cmd``: command ``cmd | 0x80``."""
        self._reply(cmd | 0x80, payload)

    def execute(self, frame: Frame) -> None:
        """Execute one frame that passed the decoder's checks; append its replies.

        ``ERR_UNKNOWN`` for a command not in the table, ``ERR_LENGTH`` for a payload length it
        does not take; else its handler runs."""
        command = self._table.get(frame.cmd)
        if command is None:
            return self._error(ErrorCode.UNKNOWN, frame.cmd)
        if not command.length_ok(len(frame.payload)):
            return self._error(ErrorCode.LENGTH, frame.cmd)
        return command.handler(frame.payload)
