"""The ECP5 board top's input-current feeder: registered addresses, a credit count, a ring FIFO.

The feeder of the board top (:class:`lifgate.boards.link.HostLink`'s run path) reads a row of
input currents per lane address and hands it to the array's ``i_stream``. With a
combinational address (the memory's address a multiplexer of the feeder's counter, the
address it holds while stalled and the write address) the route from the run flag through
that multiplexer to the 64 block RAMs spread over the ECP5-85F was the board top's critical
path (12.7 ns of routing, ``docs/resources.md``).

:class:`CurrentFeeder` takes every piece of logic off the memory's pins: each group of lanes
has its own block RAMs (``DP16KD`` with their output registers, read latency 2), its own
address counter (a register on the RAMs' address pins) and its own ring FIFO of rows. A
central credit count (rows held plus reads in flight, at most the FIFO's depth,
``read_latency + 2``) decides whether to read; every group advances in lockstep, so the
groups' FIFOs hold the same rows and group 0's ``valid`` stands for all. The copies feed
themselves back (each counter increments its own value), so synthesis does not merge them.
With the depth above the feeder delivers one row per clock.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from lifgate.hdl.ram import ECP5_MAX_DEPTH, KINDS, PipelinedRAM

from lifgate.config import ConfigError, ConfigTypeError

__all__ = ["CurrentFeeder", "RingFIFO"]


def _check_count(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"at least {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be {bound}, not {value!r}")


class RingFIFO(wiring.Component):
    """A FIFO of ``depth`` register entries read through a multiplexer; ``o.valid`` is a
    register, and every entry's write enable comes from registers.

    The writer does not wait for ``ready``: it must know there is room (it counts credits,
    see the module docstring). Entry ``k`` is written when ``i.valid`` and the write pointer
    (one-hot, a register) is at ``k``; ``o.payload`` is the entry at the read pointer (a
    register). Nothing wide depends on ``o.ready`` but the pointers.

    Parameters
    ----------
    shape : Shape
        Shape of an entry.
    depth : int
        Entries, at least 1.

    Members
    -------
    i : ``In(stream.Signature(shape, always_ready=True))``
        A word to store (``valid``); never while the FIFO is full and its head not leaving.
    o : ``Out(stream.Signature(shape))``
        The head.
    flush : ``In(1)``
        Drop every entry (wins over a simultaneous write).
    """

    def __init__(self, shape, *, depth: int):
        _check_count("Depth", depth, 1)
        self._shape, self._depth = shape, depth
        super().__init__({
            "i": In(stream.Signature(shape, always_ready=True)),
            "o": Out(stream.Signature(shape)),
            "flush": In(1),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        K = self._depth
        ent = Array(Signal(self._shape, name=f"e{k}", reset_less=True) for k in range(K))
        wsel = Signal(K, init=1, name="wsel")  # one-hot write pointer
        rptr = Signal(range(max(2, K)), name="rptr")
        count = Signal(range(K + 1), name="count")
        nonempty = Signal(name="nonempty")
        pop = Signal()
        push = self.i.valid
        m.d.comb += [
            pop.eq(nonempty & self.o.ready),
            self.o.valid.eq(nonempty),
            self.o.payload.eq(ent[rptr] if K > 1 else ent[0]),
        ]
        for k in range(K):
            with m.If(push & wsel[k]):
                m.d.sync += ent[k].eq(self.i.payload)
        nxt = Signal.like(count)
        m.d.comb += nxt.eq(count + push - pop)
        m.d.sync += [count.eq(nxt), nonempty.eq(nxt != 0)]
        with m.If(push):
            m.d.sync += wsel.eq(Cat(wsel[-1], wsel[:-1]) if K > 1 else 1)
        if K > 1:
            with m.If(pop):
                m.d.sync += rptr.eq(Mux(rptr == K - 1, 0, rptr + 1))
        with m.If(self.flush):
            m.d.sync += [count.eq(0), nonempty.eq(0), wsel.eq(1), rptr.eq(0)]
        return m


class CurrentFeeder(wiring.Component):
    """The input currents of a board top in ``DP16KD`` blocks, fed to the array one row per
    clock through registered addresses (see the module docstring).

    Parameters
    ----------
    lanes, width, depth : int
        Rows of ``lanes`` currents of ``width`` bits; ``depth`` rows (at most
        :data:`~lifgate.hdl.ram.ECP5_MAX_DEPTH`).
    lanes_per_copy : int
        Lanes per group (each group its own address counter and FIFO), dividing ``lanes``.
    kind : str
        The RAMs' kind (:class:`~lifgate.hdl.ram.PipelinedRAM`): ``ecp5`` on the board,
        ``inferred`` for a model with the same latency.

    Members
    -------
    w_addr : ``In(range(depth))``
    w_we : ``In(lanes)``
    w_data : ``In(lanes * width)``
        Write ``w_data``'s lanes selected by ``w_we`` at row ``w_addr`` (only while not
        running).
    run : ``In(1)``
        Read rows 0, 1, ... ``depth - 1``, 0, ... while high.
    flush : ``In(1)``
        A run begins: back to row 0, drop what is held and in flight.
    o : ``Out(stream.Signature(lanes * width))``
        The rows, in order.
    """

    #: Clocks from a read's address to its data (read register, then output register).
    READ_LATENCY = 2

    def __init__(self, *, lanes: int, width: int, depth: int, lanes_per_copy: int = 1,
                 kind: str = "ecp5"):
        _check_count("Lanes", lanes, 1)
        _check_count("Width", width, 1)
        _check_count("Depth", depth, 1, ECP5_MAX_DEPTH)
        _check_count("Lanes per copy", lanes_per_copy, 1, lanes)
        if lanes % lanes_per_copy:
            raise ConfigError(f"Lanes per copy must divide the lanes ({lanes}), "
                              f"not {lanes_per_copy!r}")
        if kind not in KINDS:
            raise ConfigError(f"Kind must be one of {', '.join(map(repr, KINDS))}, "
                              f"not {kind!r}")
        self.lanes, self.width, self.depth = lanes, width, depth
        self.lanes_per_copy, self.kind = lanes_per_copy, kind
        super().__init__({
            "w_addr": In(range(max(2, depth))),
            "w_we": In(lanes),
            "w_data": In(lanes * width),
            "run": In(1),
            "flush": In(1),
            "o": Out(stream.Signature(lanes * width)),
        })

    @property
    def fifo_depth(self) -> int:
        return self.READ_LATENCY + 2

    def elaborate(self, platform):
        m = Module()
        P, IW, D, G = self.lanes, self.width, self.depth, self.lanes_per_copy
        Lr, K = self.READ_LATENCY, self.fifo_depth
        # Credits: rows in the FIFOs plus reads in flight.
        credits = Signal(range(K + 1), name="credits")
        issue = Signal(name="issue")
        inflight = Signal(Lr, name="inflight")  # bit k: the read of k + 1 clocks ago
        taken = Signal()
        m.d.comb += [
            issue.eq(self.run & (credits != K)),
            taken.eq(self.o.valid & self.o.ready),
        ]
        m.d.sync += [credits.eq(credits + issue - taken),
                     inflight.eq(Cat(issue, inflight[:-1]))]
        with m.If(self.flush):
            m.d.sync += [credits.eq(0), inflight.eq(0)]
        rows = []
        for g in range(P // G):
            addr = Signal(range(max(2, D)), name=f"addr{g}")
            at_end = Signal(init=D == 1, name=f"at_end{g}")  # addr == D - 1
            with m.If(self.flush):
                m.d.sync += [addr.eq(0), at_end.eq(D == 1)]
            with m.Elif(issue):
                if D > 1:
                    m.d.sync += [addr.eq(Mux(at_end, 0, addr + 1)),
                                 at_end.eq(~at_end & (addr == D - 2))]
            fifo = RingFIFO(G * IW, depth=K)
            m.submodules[f"fifo{g}"] = fifo
            group = []
            for p in range(g * G, (g + 1) * G):
                ram = PipelinedRAM(IW, max(2, D), kind=self.kind)
                m.submodules[f"lane{p}"] = ram
                m.d.comb += [
                    ram.w_addr.eq(self.w_addr), ram.w_data.eq(self.w_data[p * IW:(p + 1) * IW]),
                    ram.w_en.eq(self.w_we[p]),
                    ram.r_addr.eq(addr), ram.r_en.eq(1), ram.r_oce.eq(1),
                ]
                group.append(ram.r_data)
            m.d.comb += [
                fifo.i.valid.eq(inflight[-1]),
                fifo.i.payload.eq(Cat(*group)),
                fifo.o.ready.eq(self.o.ready),
                fifo.flush.eq(self.flush),
            ]
            rows.append(fifo.o.payload)
            if g == 0:
                m.d.comb += self.o.valid.eq(fifo.o.valid)
        m.d.comb += self.o.payload.eq(Cat(*rows))
        return m

