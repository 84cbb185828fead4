"""The input-current feeder's FIFO: a short FIFO of registers whose head is a register.

The board top's feeder (:class:`lifgate.boards.link.HostLink`'s run path) reads the
input-current memory through a *registered* address, so that no logic sits between the run's
control and the memory's address pins (on the ECP5-85F the route from the run flag through the
address multiplexer to 64 block RAMs spread over the die was the board top's critical path).
The decision to read is then made a clock before the address reaches the memory, and the data
comes back ``read_latency`` clocks after that: the feeder counts the reads in flight and the
entries held (credits) and issues a read only when the FIFO will have room for it. With
``depth = read_latency + 2`` the feeder delivers one current row per clock.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from lifgate.config import ConfigTypeError

__all__ = ["CreditFIFO"]


class CreditFIFO(wiring.Component):
    """A FIFO of ``depth`` register entries; ``o.valid`` and ``o.payload`` are registers.

    The writer does not wait for ``ready``: it must know there is room (it counts credits,
    see the module docstring). Entries move towards the head as the head leaves; an incoming
    word lands in the first free entry after that move. Each payload bit costs one flip-flop
    per entry and, with the flip-flop's enable, one LUT (none in the last entry).

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
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigTypeError(f"Depth must be an integer of at least 1, not {depth!r}")
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
        ent = [Signal(self._shape, name=f"e{k}", reset_less=True) for k in range(K)]
        vld = [Signal(name=f"v{k}") for k in range(K)]
        pop = Signal()
        m.d.comb += [
            pop.eq(vld[0] & self.o.ready),
            self.o.valid.eq(vld[0]),
            self.o.payload.eq(ent[0]),
        ]
        for k in range(K):
            nxt_v = vld[k + 1] if k + 1 < K else 0
            stay_v = Signal(name=f"stay{k}")  # entry k is valid after the move
            m.d.comb += stay_v.eq((pop & nxt_v) | (~pop & vld[k]))
            if k == 0:
                before = 1
            else:
                before = (pop & vld[k]) | (~pop & vld[k - 1])  # entry k - 1 after the move
            load = Signal(name=f"load{k}")
            m.d.comb += load.eq(self.i.valid & ~stay_v & before)
            with m.If(load):
                m.d.sync += ent[k].eq(self.i.payload)
            if k + 1 < K:
                with m.Elif(pop):
                    m.d.sync += ent[k].eq(ent[k + 1])
            m.d.sync += vld[k].eq(stay_v | load)
        with m.If(self.flush):
            m.d.sync += [v.eq(0) for v in vld]
        return m
