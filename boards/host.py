"""Host library: one API to a lifgate board, over three transports.

:class:`Board` speaks the protocol of :mod:`lifgate.boards.protocol` over a transport:

* :class:`ModelTransport`: the pure-Python :class:`~lifgate.boards.protocol.BoardModel`
  (the golden model behind the protocol);
* :class:`SimTransport`: the board's gateware (:class:`~lifgate.boards.link.HostLink`)
  simulated in Verilator or Icarus, its UART pins driven by ``cocotbext-uart`` in a cocotb
  session (:mod:`lifgate.boards.tb_top`) that relays bytes through a local socket;
* :class:`SerialTransport`: a real serial port (pyserial).

The gate-level backends ``sim:verilator-netlist`` and ``sim:icarus-netlist`` are a
:class:`SimTransport` too: the board top's netlist after Yosys' synthesis, simulated with the
cell models (:mod:`lifgate.boards.netlist`).

Example::

    with Board.open("model", features=Features(shape)) as board:
        board.configure(config, currents=i)
        result = board.run(100, membrane=True)

:func:`open_board` takes the same specification strings as the command line:
``model``, ``sim:verilator``, ``sim:icarus``, ``sim:verilator-netlist[:BOARD]``,
``sim:icarus-netlist[:BOARD]``, ``serial:/dev/ttyUSB1[@baud]``.

The baud rate of ``serial:PORT`` without ``@BAUD``: the host cannot ask the board (``VERSION``
travels at that rate), so it uses the rate ``lifgate build`` recorded beside the bitstream
(:func:`write_link_record`, ``link.json``): the one in the folder ``$LIFGATE_BOARD_BUILD``
names, else the newest ``build/board-*/link.json`` under the current folder (the bitstream
built last), else 115200 (:func:`recorded_baud`).

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

import json
import os
import select
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
from lifgate.boards.link import CURRENT_RAMS
from lifgate.boards.netlist import build_netlist_top
from lifgate.boards.netproto import is_network_version
from lifgate.boards.protocol import (
    COUNT_FORMATS,
    COUNT_MAX,
    COUNT_PACKED,
    COUNT_STEP_MAX,
    RAMP_FRAC,
    RUN_COUNTS,
    RUN_EVENTS,
    RUN_MEMBRANE,
    RUN_PROBES,
    RUN_SPIKES,
    BoardModel,
    Cmd,
    Features,
    FrameError,
    check_baud,
    decode_events,
    encode_frame,
    parse_version,
    ramp_values,
    unpack_counts,
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
from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, pack_params

__all__ = [
    "Board",
    "BoardError",
    "Counts",
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
    "recorded_baud",
    "write_link_record",
]

#: The file ``lifgate build`` writes beside a bitstream: board, baud and features of its top.
LINK_RECORD = "link.json"
#: The rate of ``serial:PORT`` when no build recorded one.
DEFAULT_BAUD = 115200


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
        ``memory``, ``spram`` (the iCEBreaker's input-current memory, with Yosys' model),
        ``ecp5`` (the ULX3S's feeder: ``DP16KD`` blocks with their output registers,
        lifgate's model) or ``feeder`` (the same feeder on inferred memories).
    counts_ram : str
        ``memory`` or ``spram``: the spike counts' memory (a board with COUNTS).
    top : SimTop, optional
        An existing build of a board top with the same pins (e.g. a network board's,
        :func:`lifgate.boards.nettop.build_net_sim_top`); then nothing is built here.
    """

    CLK_NS = 10

    def __init__(self, features: Features, *, sim: str = "verilator", build_dir="build/sim-top",
                 divisor: int = 8, timeout: int = 4000, current_ram: str = "memory",
                 start_timeout: float = 300.0, top=None, counts_ram: str = "memory"):
        if top is None:
            if not isinstance(features, Features):
                raise ConfigError(f"parameter 'features' must be a Features, "
                                  f"not {short_repr(features)}")
            check_choice("parameter 'sim'", sim, ("verilator", "icarus"))
            check_int("parameter 'divisor'", divisor, 4, 1 << 16)
            check_int("parameter 'timeout'", timeout, 2, 1 << 24)
            check_choice("parameter 'current_ram'", current_ram, CURRENT_RAMS)
            check_choice("parameter 'counts_ram'", counts_ram, ("memory", "spram"))
            output_dir("parameter 'build_dir'", build_dir)
        check_number("parameter 'start_timeout'", start_timeout, 0, 86400, unit="s",
                     lo_open=True)
        self.sim = sim if top is None else top.sim
        sim = self.sim
        self.divisor = divisor if top is None else top.divisor
        self.build = top if top is not None else build_sim_top(
            features, sim=sim, build_dir=build_dir, divisor=divisor, timeout=timeout,
            current_ram=current_ram, counts_ram=counts_ram)
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

    def _start_clocks(self) -> int:
        """Clocks the session waits after reset: the array board's link zeroes the currents and
        clears the array first (about ``2 * depth`` clocks; a frame sent meanwhile is dropped
        with ``ERR_OVERRUN``, which the goal shapes' depth of 512 and more reaches)."""
        shape = getattr(self.build.features, "shape", None)
        return 2 * shape.depth + 64 if isinstance(shape, ArrayShape) else 0

    def _simulate(self):
        try:
            self.build.run(extra_env={
                "LIFGATE_UART_SOCKET": self._sock_path,
                "LIFGATE_UART_DIVISOR": str(self.divisor),
                "LIFGATE_CLK_NS": str(self.CLK_NS),
                "LIFGATE_UART_START": str(self._start_clocks()),
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
    """Outputs of a ``run``: ``spikes`` bool [T, N], ``v`` int64 [T, N] or None, step labels.

    With ``events=True`` also ``events``: int64 [E, 2], one row ``(step label, neuron)`` per
    spike in step order (``spikes`` is the same bitmap the bitmap mode gives); with
    ``probes=True`` ``probes``: int64 [T, k], the membrane values of the ``k`` probe neurons
    (``spikes`` is None).
    """

    spikes: np.ndarray | None
    v: np.ndarray | None
    labels: np.ndarray
    step: int
    events: np.ndarray | None = None
    probes: np.ndarray | None = None


@dataclass(eq=False)
class Counts:
    """Spike counts read back from a board with COUNTS (:meth:`Board.read_counts`).

    Members
    -------
    window : int
        Steps counted since the counts were cleared (saturates at ``2**32 - 1``).
    start : int
        The first neuron of the arrays.
    counts : numpy.ndarray
        Spikes per neuron (int64). Saturates at 65535 (255 with ``compact``).
    first, last : numpy.ndarray or None
        Window step of each neuron's first and last spike (0 for a neuron that never fired),
        saturating at 65535; ``None`` with ``compact`` or ``packed``.
    span : numpy.ndarray or None
        ``last - first``: the steps between the first and the last spike; ``None`` with
        ``packed`` (then only :meth:`mean_rates`).
    saturated : numpy.ndarray
        The neurons whose numbers hit a limit (count 65535, or 255 with ``compact``; last step
        65535, or with ``compact`` a window longer than that): their rate from :meth:`rates`
        is not exact.
    """

    window: int
    start: int
    counts: np.ndarray
    first: np.ndarray | None
    last: np.ndarray | None
    span: np.ndarray | None
    saturated: np.ndarray

    def rates(self, dt: float) -> np.ndarray:
        """Firing rate in Hz from the inter-spike intervals, ``(c - 1) / (span * dt)``, with
        ``dt`` the step in seconds; NaN for neurons with fewer than two spikes."""
        dt = check_number("parameter 'dt'", dt, 0, 3600, unit="s", lo_open=True)
        if self.span is None:
            raise ConfigError("these counts were read packed (no first/last step): use "
                              "mean_rates(dt), or read_counts(packed=False) for ISI rates")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (self.counts - 1) / (self.span * dt)
        return np.where(self.counts > 1, r, np.nan)

    def mean_rates(self, dt: float) -> np.ndarray:
        """Firing rate in Hz over the whole window, ``counts / (window * dt)``, with ``dt``
        the step in seconds; NaN if the window is empty."""
        dt = check_number("parameter 'dt'", dt, 0, 3600, unit="s", lo_open=True)
        if not self.window:
            return np.full(self.counts.shape, np.nan)
        return self.counts / (self.window * dt)


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

    def _run_args(self, steps, spikes, membrane, counts=False) -> tuple[int, int]:
        steps = check_uint("parameter 'steps'", steps, 32)
        spikes = check_bool("parameter 'spikes'", spikes)
        membrane = check_bool("parameter 'membrane'", membrane)
        counts = check_bool("parameter 'counts'", counts)
        if membrane and not self.features.membrane:
            raise ConfigError("parameter 'membrane' must be False: this board is built without "
                              "membrane readback")
        if counts:
            self._need_counts("counts")
        return steps, ((RUN_SPIKES if spikes or membrane else 0)
                       | (RUN_MEMBRANE if membrane else 0) | (RUN_COUNTS if counts else 0))

    def run(self, steps: int, *, spikes: bool = True, membrane: bool = False,
            counts: bool = False, events: bool = False, probes: bool = False) -> RunResult:
        """Run ``steps`` timesteps (0 to 2**32 - 1); return the spikes (and membrane values)
        of every step.

        With ``counts`` (a board built with COUNTS) the run's spikes are also counted on the
        board, after those of earlier counted runs (:meth:`read_counts`, :meth:`clear_counts`);
        ``spikes=False`` then sends no bitmap at all. ``events=True`` reads the spikes as
        address events (the ``EVENTS`` run mode: only the neurons that fired, a byte or so
        each); ``probes=True`` reads the membrane values of the probe neurons
        (:meth:`set_probes`) every step. Either goes alone (``spikes`` is then ignored,
        ``membrane`` and ``counts`` must be False) and needs a board built with that mode.
        """
        stream = self._stream_args(events, probes, membrane)
        if stream and check_bool("parameter 'counts'", counts):
            raise ConfigError("parameter 'counts' must be False with events or probes: a "
                              "stream mode goes alone")
        steps, flags = self._run_args(steps, spikes, membrane, counts)
        if stream:
            return self._session(self._run_stream, steps, stream)
        return self._session(self._run, steps, flags, membrane)

    def _stream_args(self, events, probes, membrane) -> int:
        """The RUN flag of a stream mode (0 for none), checked against the board."""
        events = check_bool("parameter 'events'", events)
        probes = check_bool("parameter 'probes'", probes)
        f = self.features
        if events and not f.events:
            raise ConfigError("parameter 'events' must be False: this board is built without "
                              "the EVENTS run mode")
        if probes and not f.probes:
            raise ConfigError("parameter 'probes' must be False: this board is built without "
                              "probes")
        if events and probes:
            raise ConfigError("parameters 'events' and 'probes' must not both be True: one "
                              "run streams one of them")
        if (events or probes) and check_bool("parameter 'membrane'", membrane):
            raise ConfigError("parameter 'membrane' must be False with events or probes")
        return RUN_EVENTS if events else RUN_PROBES if probes else 0

    def set_probes(self, neurons) -> None:
        """The probe neurons whose membranes ``run(..., probes=True)`` reads, in this order:
        a 1-D integer array of at most ``probe_slots`` indices in ``[0, N - 1]`` (empty: none;
        repeats allowed). They go to the board sorted (as the protocol wants them); the runs
        of this host give the values back in the order given here."""
        f = self.features
        if not f.probes:
            raise ConfigError("this board is built without probes (Features.probes = 0)")
        idx = check_int_array("parameter 'neurons'", neurons, 0, f.shape.neurons - 1,
                              max_size=f.probes)
        # The board takes them in increasing order; the results come back in the caller's.
        order = np.argsort(idx, kind="stable")
        self._exchange(Cmd.SET_PROBES, b"".join(int(n).to_bytes(4, "little")
                                                for n in idx[order]))
        self._probe_order = order

    def _run_stream(self, steps: int, flag: int) -> RunResult:
        """A run with the EVENTS or PROBES stream: its frames, then RUN_DONE."""
        f, shape = self.features, self.features.shape
        self.send(encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flag])))
        want = Cmd.EVENTS if flag == RUN_EVENTS else Cmd.PROBES
        frames = []
        while True:
            reply = self.receive()
            if isinstance(reply, FrameError):
                raise LinkTimeout(f"damaged reply from the board ({reply.code.name})")
            if reply.cmd == Cmd.ERR:
                raise BoardError(reply.payload[0], reply.payload[1])
            if reply.cmd == Cmd.RUN_DONE:
                break
            if reply.cmd != want or len(reply.payload) < 5 \
                    or len(reply.payload) > 4 + f.stream_chunk:
                raise LinkTimeout(f"unexpected reply 0x{reply.cmd:02x} "
                                  f"({len(reply.payload)} bytes) during a run")
            frames.append(reply.payload)
        end = int.from_bytes(reply.payload, "little")
        mod = 1 << shape.step_width
        labels = (end - steps + np.arange(steps, dtype=np.int64)) % mod
        data = b"".join(fr[4:] for fr in frames)
        if any(len(fr) != 4 + f.stream_chunk for fr in frames[:-1]):
            raise LinkTimeout("a run's stream frame other than the last is not full")
        if flag == RUN_EVENTS:
            res = self._events_result(data, steps, labels, end)
            record = 0
        else:
            res = self._probes_result(data, steps, labels, end)
            record = res.probes.shape[1] * f.value_bytes
        self._check_labels(frames, labels, record)
        return res

    def _check_labels(self, frames, labels, record: int) -> None:
        """Each stream frame's label is the step of its first byte."""
        offset, done = 0, 0
        for fr in frames:
            label = int.from_bytes(fr[:4], "little")
            if done >= len(labels) or label != labels[done]:
                raise LinkTimeout(f"stream frame labelled {label}, expected step "
                                  f"{labels[min(done, len(labels) - 1)]}")
            body = fr[4:]
            done += (body.count(0) if not record else
                     (offset + len(body)) // record - offset // record)
            offset += len(body)

    def _events_result(self, data: bytes, steps: int, labels, end: int) -> RunResult:
        N = self.features.shape.neurons
        try:
            fired = decode_events(data, N)
        except ValueError as e:
            raise LinkTimeout(f"damaged EVENTS stream: {e}") from None
        if len(fired) != steps:
            raise LinkTimeout(f"EVENTS stream of {len(fired)} steps, expected {steps}")
        sp = np.zeros((steps, N), dtype=bool)
        rows = []
        for t, ns in enumerate(fired):
            sp[t, ns] = True
            rows += [(labels[t], n) for n in ns]
        ev = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return RunResult(sp, None, labels, end, events=ev)

    def _probes_result(self, data: bytes, steps: int, labels, end: int) -> RunResult:
        f = self.features
        vb = f.value_bytes
        k = len(data) // (vb * steps) if steps else 0
        if k > f.probes or len(data) != k * vb * steps:
            raise LinkTimeout(f"PROBES stream of {len(data)} bytes for {steps} steps")
        raw = np.frombuffer(data, dtype=np.uint8).reshape(steps, k, vb).astype(np.int64)
        val = np.zeros((steps, k), dtype=np.int64)
        for b in range(vb):
            val |= raw[:, :, b] << (8 * b)
        val = np.where(val >> (8 * vb - 1) & 1, val - (1 << (8 * vb)), val)
        order = getattr(self, "_probe_order", None)
        if order is not None and order.size == k:  # back to the order set_probes was given
            out = np.empty_like(val)
            out[:, order] = val
            val = out
        return RunResult(None, None, labels, end, probes=val)

    def _run(self, steps: int, flags: int, membrane: bool) -> RunResult:
        f, shape = self.features, self.features.shape
        N, P, D = shape.neurons, shape.lanes, shape.depth
        sp = np.zeros((steps, N), dtype=bool) if flags & RUN_SPIKES else None
        vv = np.zeros((steps, N), dtype=np.int64) if membrane else None
        labels = np.zeros(steps, dtype=np.int64)
        self.send(encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags])))
        if flags & (RUN_SPIKES | RUN_MEMBRANE):
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

    # Spike counts (COUNTS) --------------------------------------------------------------------

    def _need_counts(self, name: str) -> None:
        if not self.features.counts:
            raise ConfigError(f"parameter '{name}': this board is built without COUNTS "
                              f"(its VERSION says so); rebuild it with the counts unit")

    def clear_counts(self) -> None:
        """Zero every spike count, first and last step, and the window."""
        self._need_counts("counts")
        self._session(self._clear_counts)

    def _clear_counts(self) -> None:
        self.send(encode_frame(Cmd.CLEAR_COUNTS))
        self._expect(Cmd.COUNTS_CLEARED)

    def read_counts(self, start: int = 0, count: int | None = None, *,
                    compact: bool = False, packed: bool = False) -> Counts:
        """The spike counts of neurons ``start .. start + count - 1`` (all from ``start`` by
        default) in one ``READ_COUNTS`` reply: counts, first and last steps (6 bytes a neuron),
        or with ``compact`` only ``min(count, 255)`` and the span (3 bytes a neuron), or with
        ``packed`` only the exact counts, bit-packed at the width of the largest (format 2:
        ``ceil(count * w / 8)`` bytes; rates from :meth:`Counts.mean_rates`)."""
        self._need_counts("counts")
        n = self.features.shape.neurons
        start = check_int("parameter 'start'", start, 0, n - 1)
        count = n - start if count is None else check_int("parameter 'count'", count, 0,
                                                           n - start)
        compact = check_bool("parameter 'compact'", compact)
        if check_bool("parameter 'packed'", packed):
            if compact:
                raise ConfigError("parameters 'compact' and 'packed' must not both be True "
                                  "(two formats of READ_COUNTS)")
            return self._session(self._read_counts, start, count, COUNT_PACKED)
        return self._session(self._read_counts, start, count, int(compact))

    def _read_counts(self, start: int, count: int, fmt: int) -> Counts:
        self.send(encode_frame(Cmd.READ_COUNTS, start.to_bytes(4, "little")
                               + count.to_bytes(4, "little") + bytes([fmt])))
        payload = self._expect(Cmd.COUNTS)
        if fmt == COUNT_PACKED:
            try:
                c = unpack_counts(payload[4:], count)
            except ValueError:
                raise LinkTimeout(f"COUNTS frame of {len(payload)} bytes") from None
            return Counts(int.from_bytes(payload[:4], "little"), start, c, None, None, None,
                          c == COUNT_MAX)
        if len(payload) != 4 + COUNT_FORMATS[fmt] * count:
            raise LinkTimeout(f"COUNTS frame of {len(payload)} bytes")
        window = int.from_bytes(payload[:4], "little")
        if fmt == 0:
            rec = np.frombuffer(payload[4:], dtype="<u2").reshape(count, 3).astype(np.int64)
            c, first, last = rec[:, 0], rec[:, 1], rec[:, 2]
            return Counts(window, start, c, first, last, last - first,
                          (c == COUNT_MAX) | (last == COUNT_STEP_MAX))
        rec = np.frombuffer(payload[4:], dtype=np.uint8).reshape(count, 3).astype(np.int64)
        span = rec[:, 1] | rec[:, 2] << 8
        # Without the last steps: a window past 65535 steps may have saturated any span.
        sat = (rec[:, 0] == 255) | ((window > COUNT_STEP_MAX) & (rec[:, 0] > 0))
        return Counts(window, start, rec[:, 0], None, None, span, sat)

    def write_ramp(self, base: int, step: float, *, start: int = 0,
                   count: int | None = None) -> np.ndarray:
        """Input currents of neurons ``start .. start + count - 1`` (all from ``start`` by
        default) as a ramp computed on the board (``WRITE_RAMP``, one frame): neuron
        ``start + k`` gets ``base + floor(k * q / 2**16)`` with ``q = round(step * 2**16)``.
        Every value must lie in the ``i_width`` range. Returns the currents written."""
        self._need_counts("step")
        shape = self.features.shape
        lo, hi = shape.i_range
        n = shape.neurons
        base = check_int("parameter 'base'", base, lo, hi)
        step = check_number("parameter 'step'", step, -(1 << 15), (1 << 15) - 2 ** -RAMP_FRAC)
        q = round(step * (1 << RAMP_FRAC))
        start = check_int("parameter 'start'", start, 0, n - 1)
        count = n - start if count is None else check_int("parameter 'count'", count, 0,
                                                           n - start)
        values = ramp_values(base, q, count)
        if count and not (lo <= values.min() and values.max() <= hi):
            raise ConfigError(f"parameter 'step' must keep the ramp in [{lo}, {hi}] (the "
                              f"i_width range), not {step!r}: it reaches {int(values[-1])}")
        self._exchange(Cmd.WRITE_RAMP, start.to_bytes(4, "little") + count.to_bytes(4, "little")
                       + base.to_bytes(4, "little", signed=True)
                       + q.to_bytes(4, "little", signed=True))
        return values

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


def write_link_record(folder, board: str, features: Features) -> Path:
    """Write :data:`LINK_RECORD` in ``folder`` (beside a bitstream): the board's name, the
    baud rate and the features its top is built with. Returns the file's path."""
    path = Path(folder) / LINK_RECORD
    path.write_text(json.dumps({"board": board, "baud": features.baud,
                                "counts": features.counts, "neurons": features.shape.neurons,
                                "lanes": features.shape.lanes}, indent=2) + "\n")
    return path


def recorded_baud(cwd=None) -> tuple[int, str | None]:
    """The baud rate for ``serial:PORT`` without ``@BAUD`` and where it comes from: the
    :data:`LINK_RECORD` of the folder ``$LIFGATE_BOARD_BUILD``, else the newest
    ``build/board-*/link.json`` under ``cwd`` (default: the current folder), else
    ``(115200, None)``. A record that cannot be read is a one-line ConfigError naming it."""
    env = os.environ.get("LIFGATE_BOARD_BUILD")
    if env:
        candidates = [Path(env) / LINK_RECORD]
    else:
        found = Path(cwd or ".").glob(f"build/board-*/{LINK_RECORD}")
        candidates = sorted(found, key=lambda p: p.stat().st_mtime)[-1:]
    for path in candidates:
        try:
            baud = json.loads(path.read_text())["baud"]
            return check_baud(baud, name="baud"), str(path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"cannot read the baud rate from {str(path)!r} ({e}); name the "
                              f"rate as serial:PORT@BAUD") from None
    return DEFAULT_BAUD, None


def open_board(spec: str = "model", *, features: Features | None = None, timeout: float = 30.0,
               **kwargs) -> Board:
    """A :class:`Board` for ``spec``: ``model``, ``sim:verilator``, ``sim:icarus``,
    ``sim:verilator-netlist[:BOARD]``, ``sim:icarus-netlist[:BOARD]`` or
    ``serial:PORT[@BAUD]`` (without ``@BAUD`` the rate of :func:`recorded_baud`).
    ``features`` (the array shape etc.) is needed for the model and the simulations; a real
    board reports its own. The keyword arguments go to :class:`SimTransport` (``sim:``) or to
    :func:`~lifgate.boards.netlist.build_netlist_top` (the gate-level backends: ``build_dir``,
    ``divisor``, ``optimize``; BOARD ``icebreaker`` by default, or ``ulx3s-85f``) and
    ``start_timeout``."""
    kind, arg = parse_spec(spec)
    timeout = check_number("parameter 'timeout'", timeout, 0, 86400, unit="s", lo_open=True)
    if features is not None and not isinstance(features, Features):
        raise ConfigError(f"parameter 'features' must be a Features, not {short_repr(features)}")
    if kwargs and kind not in ("sim", "netlist"):
        raise ConfigError(f"board {spec!r} takes no {', '.join(map(repr, kwargs))} "
                          f"(only the simulated boards are built)")
    if kind == "serial":
        port, baud = arg
        if "@" not in spec:
            baud, _ = recorded_baud()
        return open_on(Board, SerialTransport(port, baud), timeout)
    if features is None:
        raise ConfigError(f"board {spec!r} needs 'features' (the shape it is built with)")
    if kind == "model":
        return Board(ModelTransport(features), timeout=timeout)
    if kind == "netlist":
        sim, board_name = arg
        extra = set(kwargs) - {"build_dir", "divisor", "optimize", "start_timeout"}
        if extra:
            raise ConfigError(f"board {spec!r} takes no {', '.join(map(repr, sorted(extra)))} "
                              f"(a gate-level top is built as the board build makes it)")
        start = {"start_timeout": kwargs.pop("start_timeout")} if "start_timeout" in kwargs \
            else {}
        kwargs.setdefault("build_dir", "build/netlist-top")
        top = build_netlist_top(features, board_name=board_name, sim=sim, **kwargs)
        return open_on(Board, SimTransport(features, top=top, **start), timeout)
    return open_on(Board, SimTransport(features, sim=arg, **kwargs), timeout)
