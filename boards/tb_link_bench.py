"""cocotb session of the simulated board top that replays a script of exchanges and times them.

Started by ``bench/bench_link.py`` (``lifgate bench link``) on a build of
:func:`lifgate.boards.top.build_sim_top`. Each exchange's bytes go to ``rx`` through
``cocotbext.uart`` at the board's divisor; the session waits until the expected number of reply
bytes came back on ``tx`` and records, in clock cycles of the simulation, when the request's
last byte had been sent, when the first reply byte arrived and when the last did. Environment:

``LIFGATE_BENCH_SCRIPT``
    JSON file: a list of ``{"send": hex, "expect": bytes}``.
``LIFGATE_BENCH_OUT``
    JSON file written at the end: a list of ``{"sent", "first", "done"}`` (cycles since the
    reset) and ``"reply"`` (hex).
``LIFGATE_UART_DIVISOR``, ``LIFGATE_CLK_NS``
    As for :mod:`lifgate.boards.tb_top`.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time
from lifgate.boards.tb_top import start_board

#: Clocks between two looks at the sink (the resolution of the figures).
POLL = 32
#: Clocks without a reply byte after which an exchange is given up.
PATIENCE = 50_000_000


@cocotb.test()
async def replay(dut):
    clk_ns = int(os.environ.get("LIFGATE_CLK_NS", "10"))
    source, sink = await start_board(dut, clk_ns, int(os.environ["LIFGATE_UART_DIVISOR"]))
    with open(os.environ["LIFGATE_BENCH_SCRIPT"]) as fh:
        script = json.load(fh)

    def now() -> int:
        return int(get_sim_time("ns")) // clk_ns

    await ClockCycles(dut.clk, 20_000)  # the link's start-up (clearing its memories)
    out = []
    for ex in script:
        await source.write(bytes.fromhex(ex["send"]))
        await source.wait()
        sent = now()
        got = bytearray()
        first = None
        while len(got) < ex["expect"]:
            await ClockCycles(dut.clk, POLL)
            if sink.count():
                got += bytes(sink.read_nowait())
                if first is None:
                    first = now()
            assert now() - sent < PATIENCE, f"no complete reply: {bytes(got).hex()}"
        out.append({"sent": sent, "first": first, "done": now(), "reply": bytes(got).hex()})
    with open(os.environ["LIFGATE_BENCH_OUT"], "w") as fh:
        json.dump(out, fh)
