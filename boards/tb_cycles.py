"""cocotb session that counts the clock cycles of one command on the simulated board top.

Used by the link benchmarks (``bench/bench_events.py``): the set-up frames go in one after the
other (each waits until the board has answered), then the measured frame; the session counts
the clocks from the first bit of that frame until the line falls silent after the board's
last reply (the run's ``RUN_DONE``). The replies are not decoded (the tests compare them with
the protocol model byte for byte; a UART sink here would wake Python every bit): the board
is active while its status pins say the array is busy or a byte is being received or sent
(:class:`lifgate.boards.framelink.LinkComponent`), sampled every ``POLL`` clocks, so the
count is exact to ``POLL`` clocks.

Environment: ``LIFGATE_CYCLES_SETUP`` (a file of set-up frames, each prefixed by its length
as u32 little-endian), ``LIFGATE_CYCLES_FRAME`` (a file with the measured frame),
``LIFGATE_CYCLES_OUT`` (JSON written there: ``cycles``, ``poll``), ``LIFGATE_UART_DIVISOR``,
``LIFGATE_CLK_NS``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.uart import UartSource

#: Clocks between two looks at the status pins.
POLL = 64
#: Polls without activity after which the board is taken as done (longer than any pause of a
#: run: the first stream frame waits until its FIFO holds a frame's bytes, with the array busy).
QUIET = 64


def _frames(path: str) -> list[bytes]:
    data, out, k = Path(path).read_bytes(), [], 0
    while k < len(data):
        n = int.from_bytes(data[k:k + 4], "little")
        out.append(data[k + 4:k + 4 + n])
        k += 4 + n
    return out


async def _until_quiet(dut) -> int:
    """Poll until the board is quiet for ``QUIET`` polls; return the polls until its last
    activity (counted from the call)."""
    polls = last = quiet = 0
    while quiet < QUIET:
        await ClockCycles(dut.clk, POLL)
        polls += 1
        status = int(dut.status.value)
        if status & 0b101:  # array busy, or a byte on the line
            last, quiet = polls, 0
        else:
            quiet += 1
    return last


@cocotb.test()
async def count_cycles(dut):
    clk_ns = int(os.environ.get("LIFGATE_CLK_NS", "10"))
    divisor = int(os.environ["LIFGATE_UART_DIVISOR"])
    dut.rx.value = 1
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, clk_ns, unit="ns").start())
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    source = UartSource(dut.rx, baud=1e9 / (clk_ns * divisor), bits=8)
    source.log.setLevel(logging.WARNING)
    await ClockCycles(dut.clk, 100)
    await _until_quiet(dut)
    for frame in _frames(os.environ["LIFGATE_CYCLES_SETUP"]):
        await source.write(frame)
        await source.wait()
        await _until_quiet(dut)
    frame = Path(os.environ["LIFGATE_CYCLES_FRAME"]).read_bytes()
    await source.write(frame)
    last = await _until_quiet(dut)
    Path(os.environ["LIFGATE_CYCLES_OUT"]).write_text(json.dumps(
        {"cycles": last * POLL, "poll": POLL}))
