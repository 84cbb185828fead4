"""Host library: one API to a lifgate board, over three transports.

:class:`Board` speaks the protocol of :mod:`lifgate.boards.protocol` over a transport:

* :class:`ModelTransport`: the pure-Python :class:`~lifgate.boards.protocol.BoardModel`
  (the golden model behind the protocol);
* :class:`SimTransport`: the board's gateware (:class:`~lifgate.boards.link.HostLink`)
  simulated in Verilator or Icarus, its UART pins driven by ``cocotbext-uart`` in a cocotb
  session (:mod:`lifgate.boards.tb_top`) that relays bytes through a local socket;
* :class:`SerialTransport`: a real serial port (pyserial).

Example::

    with Board.open("model", features=Features(shape)) as board:
        board.configure(config, currents=i)
        result = board.run(100, membrane=True)

:func:`open_board` takes the same specification strings as the command line:
``model``, ``sim:verilator``, ``sim:icarus``, ``serial:/dev/ttyUSB1[@baud]``.

Arguments are checked before anything is sent
------------------------------------------------
Every public call checks all its arguments with :mod:`lifgate.checks` first: a wrong type (a
float or a numpy float where an integer belongs, a string, ``None``), a value out of range or
an array of the wrong shape raises :class:`~lifgate.config.ConfigError` with one line naming
the parameter and its legal range, and **nothing is sent**: the board is exactly as before and
answers the next call normally. numpy integers and numpy bools are accepted.

Replies out of step
-------------------
Each call expects a fixed sequence of replies. If a call ends before it has read all of them
(a :class:`LinkTimeout`, a damaged reply, an unexpected reply, ``KeyboardInterrupt`` during a
long ``run``), the host marks the link *out of step*, and the next call first runs
:meth:`Board.resync`: it drops every reply already received or still arriving (until the line
has been quiet for ``quiet`` seconds), then sends ``VERSION`` and discards everything up to its
reply (the board may still be finishing a run, or report the bytes it dropped meanwhile with
``ERR_OVERRUN``). A :class:`BoardError` (an error reply) is a complete answer and leaves the
link in step.
"""

from __future__ import annotations

import os
import select
import socket
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
from lifgate.boards.framehost import (
    BoardError,
    LinkHost,
    LinkTimeout,
    SerialTransport,
    Transport,
    open_on,
    parse_spec,
)
from lifgate.boards.netproto import is_network_version
from lifgate.boards.protocol import (
    RUN_MEMBRANE,
    RUN_SPIKES,
    BoardModel,
    Cmd,
    Features,
    encode_frame,
    parse_version,
)
from lifgate.boards.top import build_sim_top

from lifgate.checks import (
    check_bool,
    check_choice,
    check_int,
    check_int_array,
    check_number,
    check_uint,
    output_dir,
    short_repr,
)
from lifgate.config import Config, ConfigError, NeuronParams, pack_params

__all__ = [
    "Board",
    "BoardError",
    "LinkTimeout",
    "ModelTransport",
    "RunResult",
    "SerialTransport",
    "SimTransport",
    "Status",
    "Transport",
    "open_board",
    "open_on",
    "parse_spec",
]


# Transports -------------------------------------------------------------------------------------


class ModelTransport(Transport):
    """The pure-Python board model: replies appear when the host waits for them."""

    def __init__(self, features: Features):
        self.model = BoardModel(features)

    def write(self, data: bytes) -> None:
        self.model.receive(data)

    def read(self, timeout: float) -> bytes:
        # The host waits: the line goes idle (a partial frame times out, an overrun is reported
        # after the replies before it).
        self.model.idle()
        return self.model.read()


class SimTransport(Transport):
    """The board top simulated with cocotb (Verilator or Icarus); bytes travel over a socket.

    The gateware is :class:`~lifgate.boards.link.HostLink` with a UART of ``divisor`` clocks per
    bit, clocked at 100 MHz of simulated time. ``cocotbext-uart`` drives its ``rx`` pin and
    listens on ``tx`` (:mod:`lifgate.boards.tb_top`); the session relays bytes between those
    and a Unix socket this object connects to. Closing the transport ends the simulation.

    Parameters
    ----------
    features : Features
    sim : str
        ``verilator`` or ``icarus``.
    build_dir : path
        Where the Verilog, the simulator build and the logs go.
    divisor : int
        UART clocks per bit.
    timeout : int
        The link's idle timeout in clocks (truncated frames, overruns).
    current_ram : str
        ``memory`` or ``spram`` (the iCEBreaker's input-current memory, with Yosys' model).
    top : SimTop, optional
        An existing build of a board top with the same pins (e.g. a network board's,
        :func:`lifgate.boards.nettop.build_net_sim_top`); then nothing is built here.
    """

    CLK_NS = 10

    def __init__(self, features: Features, *, sim: str = "verilator", build_dir="build/sim-top",
                 divisor: int = 8, timeout: int = 4000, current_ram: str = "memory",
                 start_timeout: float = 300.0, top=None):
        if top is None:
            if not isinstance(features, Features):
                raise ConfigError(f"parameter 'features' must be a Features, "
                                  f"not {short_repr(features)}")
            check_choice("parameter 'sim'", sim, ("verilator", "icarus"))
            check_int("parameter 'divisor'", divisor, 4, 1 << 16)
            check_int("parameter 'timeout'", timeout, 2, 1 << 24)
            check_choice("parameter 'current_ram'", current_ram, ("memory", "spram"))
            output_dir("parameter 'build_dir'", build_dir)
        check_number("parameter 'start_timeout'", start_timeout, 0, 86400, unit="s",
                     lo_open=True)
        self.sim = sim if top is None else top.sim
        sim = self.sim
        self.divisor = divisor if top is None else top.divisor
        self.build = top if top is not None else build_sim_top(
            features, sim=sim, build_dir=build_dir, divisor=divisor, timeout=timeout,
            current_ram=current_ram)
        self._error = None
        sock_dir = tempfile.mkdtemp(prefix="lifgate-uart-")
        self._sock_path = os.path.join(sock_dir, "uart.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self._sock_path)
        server.listen(1)
        server.settimeout(1.0)
        self._thread = threading.Thread(target=self._simulate, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        self.sock = None
        try:
            while self.sock is None:
                try:
                    self.sock, _ = server.accept()
                except TimeoutError:
                    if not self._thread.is_alive() or time.monotonic() > deadline:
                        raise self._error or LinkTimeout(
                            f"the {sim} simulation did not connect; log: {self.build.log}"
                        ) from None
        finally:
            server.close()
            os.unlink(self._sock_path)
            os.rmdir(sock_dir)

    def _simulate(self):
        try:
            self.build.run(extra_env={
                "LIFGATE_UART_SOCKET": self._sock_path,
                "LIFGATE_UART_DIVISOR": str(self.divisor),
                "LIFGATE_CLK_NS": str(self.CLK_NS),
            })
        except BaseException as e:  # reported by close() / the waiting side
            self._error = e

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            if not self._thread.is_alive():
                raise self._error or LinkTimeout(f"the {self.sim} simulation ended")
            return b""
        data = self.sock.recv(1 << 16)
        if not data:
            raise self._error or LinkTimeout(f"the {self.sim} simulation closed the link")
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._thread.join(timeout=120)
        if self._error is not None:
            raise self._error


# Host API ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """The ``STATUS`` reply."""

    input_en: bool
    step: int
    seed: int
    gain: int


@dataclass
class RunResult:
    """Outputs of a ``run``: ``spikes`` bool [T, N], ``v`` int64 [T, N] or None, step labels."""

    spikes: np.ndarray | None
    v: np.ndarray | None
    labels: np.ndarray
    step: int


class Board(LinkHost):
    """A lifgate board behind a :class:`Transport`.

    Every method checks its arguments (a :class:`~lifgate.config.ConfigError` before anything
    is sent), sends one or more frames and waits for their replies; an error reply raises
    :class:`BoardError`, silence for ``timeout`` seconds raises :class:`LinkTimeout`. A call
    that ends before all its replies arrived leaves the link out of step; the next call
    resynchronises first (:meth:`resync`). The frame exchange is
    :class:`~lifgate.boards.framehost.LinkHost`'s.
    """

    @classmethod
    def open(cls, spec: str = "model", *, features: Features | None = None, **kwargs) -> Board:
        return open_board(spec, features=features, **kwargs)

    # Commands ---------------------------------------------------------------------------------

    def version(self) -> Features:
        payload = self.request(Cmd.VERSION)
        if is_network_version(payload):
            raise ConfigError("this is a network board: open it with "
                              "lifgate.boards.nethost.open_network_board")
        return parse_version(payload)

    def status(self) -> Status:
        p = self.request(Cmd.STATUS)
        u = int.from_bytes
        return Status(bool(p[0] & 1), u(p[1:5], "little"), u(p[5:9], "little"),
                      u(p[9:11], "little"))

    def _param_word(self, group, params) -> tuple[int, int]:
        shape = self.features.shape
        group = check_int("parameter 'group'", group, 0, shape.groups - 1)
        if not isinstance(params, NeuronParams):
            raise ConfigError(f"parameter 'params' must be a NeuronParams, "
                              f"not {short_repr(params)}")
        return group, pack_params(shape, params)  # ConfigError naming the field

    def set_params(self, group: int, params: NeuronParams) -> None:
        """The parameter set of ``group`` (0 to ``groups - 1``)."""
        group, word = self._param_word(group, params)
        self._exchange(Cmd.SET_PARAMS, group.to_bytes(4, "little")
                       + word.to_bytes(self.features.param_bytes, "little"))

    @staticmethod
    def _noise(seed, gain) -> tuple[int, int]:
        return check_uint("parameter 'seed'", seed, 32), check_uint("parameter 'gain'", gain, 16)

    def set_noise(self, seed: int, gain: int) -> None:
        """Noise ``seed`` (0 to 2**32 - 1, used by the next clear) and ``gain`` (0 to 65535)."""
        seed, gain = self._noise(seed, gain)
        self._exchange(Cmd.SET_NOISE, seed.to_bytes(4, "little") + gain.to_bytes(2, "little"))

    def set_input(self, enable: bool) -> None:
        """Runs read the input-current memory (``True``) or not (``False``)."""
        enable = check_bool("parameter 'enable'", enable)
        self._exchange(Cmd.SET_INPUT, bytes([int(enable)]))

    def clear(self) -> None:
        """v = v_init, refractory counters 0, step 0, noise reseeded."""
        self._exchange(Cmd.CLEAR, b"")

    def _currents(self, currents, start) -> tuple[np.ndarray, int]:
        shape = self.features.shape
        lo, hi = shape.i_range
        values = check_int_array("parameter 'currents'", currents, lo, hi, max_size=shape.neurons)
        start = check_int("parameter 'start'", start, 0, shape.neurons - values.size)
        return values, start

    def write_currents(self, currents, start: int = 0) -> None:
        """Input currents of neurons ``start, start + 1, ...`` (as many frames as needed):
        a 1-D integer array of at most ``neurons - start`` values in the ``i_width`` range."""
        f = self.features
        values, start = self._currents(currents, start)
        per = (f.max_payload - 4) // f.current_bytes
        mask = (1 << (8 * f.current_bytes)) - 1
        for k in range(0, max(1, values.size), per):
            chunk = values[k:k + per]
            body = b"".join((int(x) & mask).to_bytes(f.current_bytes, "little") for x in chunk)
            self._exchange(Cmd.WRITE_CURRENTS, (start + k).to_bytes(4, "little") + body)

    def _run_args(self, steps, spikes, membrane) -> tuple[int, int]:
        steps = check_uint("parameter 'steps'", steps, 32)
        spikes = check_bool("parameter 'spikes'", spikes)
        membrane = check_bool("parameter 'membrane'", membrane)
        if membrane and not self.features.membrane:
            raise ConfigError("parameter 'membrane' must be False: this board is built without "
                              "membrane readback")
        return steps, (RUN_SPIKES if spikes or membrane else 0) | (RUN_MEMBRANE if membrane else 0)

    def run(self, steps: int, *, spikes: bool = True, membrane: bool = False) -> RunResult:
        """Run ``steps`` timesteps (0 to 2**32 - 1); return the spikes (and membrane values)
        of every step."""
        steps, flags = self._run_args(steps, spikes, membrane)
        return self._session(self._run, steps, flags, membrane)

    def _run(self, steps: int, flags: int, membrane: bool) -> RunResult:
        f, shape = self.features, self.features.shape
        N, P, D = shape.neurons, shape.lanes, shape.depth
        sp = np.zeros((steps, N), dtype=bool) if flags else None
        vv = np.zeros((steps, N), dtype=np.int64) if membrane else None
        labels = np.zeros(steps, dtype=np.int64)
        self.send(encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags])))
        if flags:
            rb = f.record_bytes(membrane)
            for t in range(steps):
                payload = self._expect(Cmd.STEP)
                if len(payload) != f.step_length(membrane):
                    raise LinkTimeout(f"STEP frame of {len(payload)} bytes")
                labels[t] = int.from_bytes(payload[:4], "little")
                recs = np.frombuffer(payload[4:], dtype=np.uint8).reshape(D, rb)
                bits = np.unpackbits(recs[:, :f.spike_bytes], axis=1, bitorder="little")
                sp[t] = bits[:, :P].reshape(N).astype(bool)
                if membrane:
                    vb = f.value_bytes
                    raw = recs[:, f.spike_bytes:].reshape(D, P, vb).astype(np.int64)
                    val = np.zeros((D, P), dtype=np.int64)
                    for k in range(vb):
                        val |= raw[:, :, k] << (8 * k)
                    val = np.where(val >> (8 * vb - 1) & 1, val - (1 << (8 * vb)), val)
                    vv[t] = val.reshape(N)
        done = self._expect(Cmd.RUN_DONE)
        return RunResult(sp, vv, labels, int.from_bytes(done, "little"))

    def configure(self, config: Config, *, currents=None) -> None:
        """Load ``config`` (every group's parameters, noise) and clear; with ``currents`` (one
        per neuron), write them and enable the input, else disable it. Everything is checked
        before the first frame goes out."""
        if not isinstance(config, Config):
            raise ConfigError(f"parameter 'config' must be a Config, not {short_repr(config)}")
        if config.shape != self.features.shape:
            raise ConfigError(
                f"the configuration's shape {config.shape} is not the board's "
                f"{self.features.shape}"
            )
        for g, p in enumerate(config.params):
            self._param_word(g, p)
        self._noise(config.noise.seed, config.noise.gain)
        if currents is not None:
            values, _ = self._currents(currents, 0)
            if values.size != self.features.shape.neurons:
                raise ConfigError(f"parameter 'currents' must have one value per neuron "
                                  f"({self.features.shape.neurons}), not {values.size}")
        for g, p in enumerate(config.params):
            self.set_params(g, p)
        self.set_noise(config.noise.seed, config.noise.gain)
        if currents is not None:
            self.write_currents(currents)
        self.set_input(currents is not None)
        self.clear()


def open_board(spec: str = "model", *, features: Features | None = None, timeout: float = 30.0,
               **kwargs) -> Board:
    """A :class:`Board` for ``spec``: ``model``, ``sim:verilator``, ``sim:icarus`` or
    ``serial:PORT[@BAUD]``. ``features`` (the array shape etc.) is needed for the model and
    the simulations; a real board reports its own."""
    kind, arg = parse_spec(spec)
    timeout = check_number("parameter 'timeout'", timeout, 0, 86400, unit="s", lo_open=True)
    if features is not None and not isinstance(features, Features):
        raise ConfigError(f"parameter 'features' must be a Features, not {short_repr(features)}")
    if kwargs and kind != "sim":
        raise ConfigError(f"board {spec!r} takes no {', '.join(map(repr, kwargs))} "
                          f"(only the simulated boards are built)")
    if kind == "serial":
        return Board(SerialTransport(*arg), timeout=timeout)
    if features is None:
        raise ConfigError(f"board {spec!r} needs 'features' (the shape it is built with)")
    if kind == "model":
        return Board(ModelTransport(features), timeout=timeout)
    return open_on(Board, SimTransport(features, sim=arg, **kwargs), timeout)



