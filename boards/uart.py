"""8N1 UART receiver and transmitter with stream interfaces."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: float) -> int:
    """Clocks per bit for ``baud`` at ``clk_hz``; the baud error must stay within 2 %."""
    if not baud > 0:
        raise ValueError(f"Baud rate must be positive, not {baud!r}")
    div = round(clk_hz / baud)
    if div < 4:
        raise ValueError(f"Baud rate {baud:g} is too high for a {clk_hz / 1e6:g} MHz clock")
    if abs(clk_hz / div - baud) / baud > 0.02:
        raise ValueError(
            f"Baud rate {baud:g} is off by more than 2 % at {clk_hz / 1e6:g} MHz "
            f"(closest: {clk_hz / div:.0f})"
        )
    return div


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
        raise TypeError(f"Divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 receiver.

    The line is synchronised with two flip-flops; a start bit is a low level seen half a bit
    after the falling edge, each data bit is sampled in the middle of its bit time, least
    significant first. A byte whose stop bit is low is dropped and ``frame_error`` pulses.

    Parameters
    ----------
    divisor : int
        Clocks per bit, 4 or more.

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high), asynchronous.
    stream : ``Out(stream.Signature(8, always_ready=True))``
        One beat (a one-clock ``valid`` pulse) per received byte; the receiver cannot wait.
    frame_error : ``Out(1)``
        One-clock pulse when a byte was dropped for a bad stop bit.
    """

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "stream": Out(stream.Signature(8, always_ready=True)),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.stream.valid.eq(0), self.frame_error.eq(0)]
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(self.divisor - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.stream.payload.eq(shreg), self.stream.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clocks per bit, 4 or more.

    Members
    -------
    stream : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : ``Out(1)``
        The serial line, idle high.
    idle : ``Out(1)``
        Nothing is being sent.
    """

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "stream": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        left = Signal(range(11))
        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.stream.ready.eq(left == 0),
            self.idle.eq(left == 0),
        ]
        with m.If(left == 0):
            with m.If(self.stream.valid):
                m.d.sync += [
                    shreg.eq(Cat(0, self.stream.payload, 1)),
                    left.eq(10),
                    timer.eq(self.divisor - 1),
                ]
        with m.Elif(timer == 0):
            m.d.sync += [
                shreg.eq(Cat(shreg[1:], 1)),
                left.eq(left - 1),
                timer.eq(self.divisor - 1),
            ]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
