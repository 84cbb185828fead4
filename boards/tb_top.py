"""cocotb session of the simulated board top: a UART bridge between a socket and the pins.

Started by :class:`lifgate.boards.host.SimTransport` (through
:meth:`lifgate.boards.top.SimTop.run`). Environment:

``LIFGATE_UART_SOCKET``
    Unix socket the host listens on; this session connects to it.
``LIFGATE_UART_DIVISOR``
    UART clocks per bit of the gateware.
``LIFGATE_CLK_NS``
    Clock period in ns.
``LIFGATE_UART_START``
    Clocks after reset before the session connects (default 0): the board's start-up work
    (the link zeroes the input currents and clears the array, about two clocks per neuron and
    lane) is over before the host's first frame, as on a board a host opens long after
    configuration. A frame sent earlier is dropped and answered ``ERR_OVERRUN``.

Bytes from the socket go to ``rx`` through ``cocotbext.uart.UartSource``; bytes the board sends
on ``tx`` (``UartSink``) go back to the socket. Python wakes once every ``POLL`` clocks only,
so the simulator runs freely in between. The session ends when the host closes the socket.
"""

from __future__ import annotations

import logging
import os
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.uart import UartSink, UartSource

#: Clocks between two looks at the socket and the sink.
POLL = 256


async def start_board(dut, clk_ns: int, divisor: int) -> tuple[UartSource, UartSink]:
    """Start ``dut``'s clock (period ``clk_ns``), reset it for 4 clocks, and attach a UART
    source to ``rx`` and a sink to ``tx`` at the board's baud rate (``divisor`` clocks per
    bit). Returns ``(source, sink)``; used by every cocotb session on a board top."""
    baud = 1e9 / (clk_ns * divisor)
    dut.rx.value = 1
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, clk_ns, unit="ns").start())
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    source = UartSource(dut.rx, baud=baud, bits=8)
    sink = UartSink(dut.tx, baud=baud, bits=8)
    for obj in (source, sink):
        obj.log.setLevel(logging.WARNING)
    return source, sink


@cocotb.test()
async def uart_bridge(dut):
    clk_ns = int(os.environ.get("LIFGATE_CLK_NS", "10"))
    source, sink = await start_board(dut, clk_ns, int(os.environ["LIFGATE_UART_DIVISOR"]))
    start = int(os.environ.get("LIFGATE_UART_START", "0"))
    if start:
        await ClockCycles(dut.clk, start)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["LIFGATE_UART_SOCKET"])
    sock.setblocking(False)
    try:
        while True:
            await ClockCycles(dut.clk, POLL)
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                data = None
            if data == b"":
                break  # the host closed the link
            if data:
                source.write_nowait(data)
            if sink.count():
                out = bytes(sink.read_nowait())
                sock.setblocking(True)
                sock.sendall(out)
                sock.setblocking(False)
    finally:
        sock.close()
