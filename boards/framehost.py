"""The host's end of a link, shared by the array board's and the network board's hosts:
transports, frame exchange, error replies, resynchronisation, board specifications.

:class:`LinkHost` is the frame core of the hosts; :class:`lifgate.boards.host.Board` (array)
and :class:`lifgate.boards.nethost.NetworkBoard` (network) are its subclasses, each with the
methods of its own board's commands only. A new command is a method there that checks its
arguments, then calls :meth:`LinkHost.request` (or :meth:`LinkHost._session` for a command
with several replies). Its protocol model is :mod:`lifgate.boards.frameproto`.
"""

from __future__ import annotations

import contextlib
import time

import serial
from lifgate.boards.frameproto import MAX_LEN, ErrorCode, FrameDecoder, FrameError, encode_frame
from lifgate.boards.protocol import Cmd, check_baud

from lifgate.checks import check_int, check_number, short_repr
from lifgate.config import ConfigError

__all__ = ["NETLIST_BOARDS", "NETLIST_ONLY_ARRAY", "NETLIST_SUFFIX", "BoardError", "LinkHost",
           "LinkTimeout", "SerialTransport", "Transport", "open_on", "parse_spec"]

#: The command codes every board answers the same way (resync needs them).
VERSION = 0x01
ERR = 0xFF


class BoardError(RuntimeError):
    """The board answered with an error reply.

    Members
    -------
    code : ErrorCode
    cmd : int
        Command byte of the rejected frame (0 if none).
    """

    def __init__(self, code, cmd: int):
        self.code = ErrorCode(code)
        self.cmd = cmd
        try:
            name = Cmd(cmd).name
        except ValueError:
            name = f"0x{cmd:02x}"
        super().__init__(f"board rejected {name}: {self.code.name}")


class LinkTimeout(TimeoutError):
    """No (complete) reply arrived in time."""


# Transports ------------------------------------------------------------------------------------


class Transport:
    """A byte pipe to a board."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> bytes:
        """At least one byte, or ``b""`` after ``timeout`` seconds without any."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SerialTransport(Transport):
    """A serial port through pyserial (8N1)."""

    def __init__(self, port: str, baud: int = 115200):
        baud = check_baud(baud, name="baud")
        try:
            self.port = serial.Serial(port, baudrate=baud, timeout=0.05)
        except (OSError, serial.SerialException) as e:
            raise ConfigError(f"cannot open serial port {port!r}: {e}") from None

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            waiting = self.port.in_waiting
            data = self.port.read(max(1, waiting))
            if data or time.monotonic() > deadline:
                return data

    def close(self) -> None:
        self.port.close()


# Host core --------------------------------------------------------------------------------------


class LinkHost:
    """The host's end of a link behind a :class:`Transport`: frames out, replies in, and the
    resynchronisation; :class:`lifgate.boards.host.Board` and
    :class:`lifgate.boards.nethost.NetworkBoard` add their board's commands on top.

    An error reply raises :class:`BoardError`, silence for ``timeout`` seconds raises
    :class:`LinkTimeout`. A call that ends before all its replies arrived leaves the link out
    of step; the next call resynchronises first (:meth:`resync`). The constructor asks the
    board for its features (:meth:`version`, the subclass's).
    """

    #: Seconds without a byte after which :meth:`resync` takes the line as drained.
    QUIET_S = 0.2

    def __init__(self, transport: Transport, *, timeout: float = 30.0):
        self.timeout = check_number("parameter 'timeout'", timeout, 0, 86400, unit="s",
                                    lo_open=True)
        self.transport = transport
        self._decoder = FrameDecoder(MAX_LEN)
        self._frames: list = []
        self._out_of_step = False
        self.features = self.version()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.transport.close()

    # Frames -----------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes (a frame, or anything else for tests)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ConfigError(f"parameter 'data' must be bytes, not {short_repr(data)}")
        self.transport.write(bytes(data))

    def receive(self):
        """The next reply: a :class:`Frame` or a :class:`FrameError`."""
        deadline = time.monotonic() + self.timeout
        while not self._frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"no reply from the board within {self.timeout} s")
            data = self.transport.read(min(left, 1.0))
            for byte in data:
                res = self._decoder.feed(byte)
                if res is not None:
                    self._frames.append(res)
        return self._frames.pop(0)

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one command and return its reply's payload (raises on an error reply)."""
        cmd = check_int("parameter 'cmd'", cmd, 0, 0x7F)
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > MAX_LEN:
            raise ConfigError(f"parameter 'payload' must be bytes of length at most {MAX_LEN}, "
                              f"not {short_repr(payload)}")
        return self._exchange(cmd, bytes(payload))

    def _exchange(self, cmd: int, payload: bytes) -> bytes:
        """One command frame and its reply, resynchronising first if needed."""
        self._sync()
        with self._in_step():
            self.send(encode_frame(cmd, payload))
            return self._expect(cmd | 0x80)

    def _sync(self) -> None:
        if self._out_of_step:
            self.resync()

    @contextlib.contextmanager
    def _in_step(self):
        """Context of one exchange: any exception but an error reply leaves it out of step."""
        try:
            yield
        except BoardError:  # a complete reply: still in step
            raise
        except BaseException:
            self._out_of_step = True
            raise

    @property
    def out_of_step(self) -> bool:
        """A call ended before reading all its replies; the next call resynchronises."""
        return self._out_of_step

    def resync(self, quiet: float | None = None) -> None:
        """Bring the replies back in step: drop every reply received or still arriving (until
        the line has been quiet for ``quiet`` seconds, :attr:`QUIET_S` by default), then send
        ``VERSION`` and discard everything before its reply. Raises :class:`LinkTimeout` if the
        board does not answer within ``timeout``."""
        quiet = self.QUIET_S if quiet is None else check_number(
            "parameter 'quiet'", quiet, 0, 3600, unit="s", lo_open=True)
        self._frames.clear()
        self._decoder = FrameDecoder(MAX_LEN)
        deadline = time.monotonic() + self.timeout
        while self.transport.read(quiet):
            if time.monotonic() > deadline:
                raise LinkTimeout(f"the board did not stop sending within {self.timeout} s")
        self._decoder = FrameDecoder(MAX_LEN)
        self.send(encode_frame(VERSION))
        while True:
            reply = self.receive()  # LinkTimeout after `timeout` s of silence
            if not isinstance(reply, FrameError):  # (a damaged run of bytes is skipped)
                if reply.cmd == VERSION | 0x80:
                    break
                if reply.cmd == ERR and reply.payload[:1] == bytes([ErrorCode.OVERRUN]):
                    # The board was still busy and dropped our VERSION: ask again.
                    self.send(encode_frame(VERSION))
                # Anything else is a late STEP / RUN_DONE / reply of the lost exchange.
            if time.monotonic() > deadline:
                raise LinkTimeout(f"the board did not answer VERSION within {self.timeout} s")
        self._out_of_step = False

    def _expect(self, cmd: int) -> bytes:
        reply = self.receive()
        if isinstance(reply, FrameError):
            raise LinkTimeout(f"damaged reply from the board ({reply.code.name})")
        if reply.cmd == ERR:
            raise BoardError(reply.payload[0], reply.payload[1])
        if reply.cmd != cmd:
            raise LinkTimeout(f"unexpected reply 0x{reply.cmd:02x}, expected 0x{cmd:02x}")
        return reply.payload

    def _session(self, call, *args):
        """``call(*args)``: one exchange of several frames (a run), resynchronised first and
        left out of step if it ends early."""
        self._sync()
        with self._in_step():
            return call(*args)

    def version(self):
        """The board's features (its ``VERSION`` reply)."""
        raise NotImplementedError


#: The gate-level backends: ``sim:SIM-netlist[:BOARD]`` (see :mod:`lifgate.boards.netlist`).
NETLIST_SUFFIX = "-netlist"
#: Boards of a gate-level spec; the first is the default.
NETLIST_BOARDS = ("icebreaker", "ulx3s-85f")

#: What a network board answers a gate-level spec (only the array board's top is synthesised).
NETLIST_ONLY_ARRAY = ("board {spec!r}: the gate-level backends simulate the array board's top "
                      "only; use sim:verilator or sim:icarus for a network board")

_SPECS = ("'model', 'sim:verilator', 'sim:icarus', 'sim:verilator-netlist[:BOARD]', "
          "'sim:icarus-netlist[:BOARD]' or 'serial:PORT[@BAUD]'")


def parse_spec(spec: str) -> tuple[str, object]:
    """Split a board ``spec``: ``("model", None)``, ``("sim", "verilator" | "icarus")``,
    ``("netlist", (sim, board))`` for the gate-level backends ``sim:verilator-netlist`` and
    ``sim:icarus-netlist`` (board ``icebreaker`` unless ``:ulx3s-85f`` follows) or
    ``("serial", (port, baud))``; :class:`~lifgate.config.ConfigError` for anything else.
    Shared by :func:`open_board` and the network board's ``open_network_board``."""
    if not isinstance(spec, str):
        raise ConfigError(f"board must be a string such as 'model' or 'serial:PORT[@BAUD]', "
                          f"not {short_repr(spec)}")
    if spec == "model":
        return "model", None
    if spec.startswith("sim:"):
        sim, _, board = spec[4:].partition(":")
        if sim.endswith(NETLIST_SUFFIX):
            sim = sim[:-len(NETLIST_SUFFIX)]
            if sim not in ("verilator", "icarus"):
                raise ConfigError(f"simulator must be verilator or icarus, not {sim!r}")
            board = board or NETLIST_BOARDS[0]
            if board not in NETLIST_BOARDS:
                raise ConfigError(f"board of a gate-level spec must be one of "
                                  f"{', '.join(NETLIST_BOARDS)}, not {board!r}")
            return "netlist", (sim, board)
        if sim not in ("verilator", "icarus"):
            raise ConfigError(f"simulator must be verilator or icarus, not {sim!r}")
        if board:
            raise ConfigError(f"board {spec!r}: only a gate-level spec "
                              f"(sim:{sim}{NETLIST_SUFFIX}:BOARD) names a board")
        return "sim", sim
    if spec.startswith("serial:"):
        port, _, baud = spec[7:].partition("@")
        if not port:
            raise ConfigError(f"board {spec!r} names no serial port: use serial:PORT[@BAUD]")
        if not baud:
            return "serial", (port, 115200)
        try:
            rate = int(baud, 10)
        except ValueError:
            rate = baud
        return "serial", (port, check_baud(rate, name="baud"))
    raise ConfigError(f"board must be {_SPECS}, not {spec!r}")


def open_on(cls, transport: Transport, timeout: float):
    """``cls(transport, timeout=timeout)`` (a :class:`Board` or a board class like it); the
    transport is closed if that fails (its first exchange, for instance)."""
    try:
        return cls(transport, timeout=timeout)
    except BaseException:
        transport.close()
        raise
