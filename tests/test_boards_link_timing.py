"""The structure the UP5K board top's clock rests on (docs/resources.md, "Board tops"): the
link's state machines one-hot, and the frame encoder's holding register under a UART that takes
a byte every clock. Behaviour is checked byte for byte elsewhere (test_boards_link.py,
test_boards_host.py); these tests keep the structure from sliding back."""

from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator
from lifgate.boards.link import FrameTx, HostLink
from lifgate.boards.protocol import Features, encode_frame

from lifgate.config import ArrayShape


def test_link_state_machines_are_one_hot():
    """Yosys keeps an FSM whose state register has an initial value binary unless the state
    carries ``fsm_encoding``; the executor's, the decoder's and the encoder's must carry it."""
    shape = ArrayShape(neurons=8, lanes=4, groups=1, leak_modes=("shift", "const"))
    link = HostLink(Features(shape, max_payload=24), divisor=4, timeout=300)
    text = rtlil.convert(link, ports=[link.rx, link.tx, link.status])
    marked = set(re.findall(r'attribute \\fsm_encoding "one-hot"\s*\n\s*wire width \d+ '
                            r'(?:init \S+ )?\\(\S+)', text))
    for state in ("exec_state", "rx_state", "tx_state"):
        assert any(name.endswith(state) for name in marked), (state, sorted(marked))


@pytest.mark.parametrize("length", [0, 1, 7])
def test_frame_tx_with_a_sink_that_is_always_ready(length):
    """``tx.ready`` and ``data.valid`` high in every clock: no byte lost or doubled by the
    holding register, the CRC over the right bytes."""
    dut = FrameTx()
    payload = bytes((29 * k + 11) & 0xFF for k in range(length))
    got = []

    async def tb(ctx):
        ctx.set(dut.cmd, 0x81)
        ctx.set(dut.length, length)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.tx.ready, 1)
        k = 0
        for _ in range(100):
            ctx.set(dut.data.valid, k < length)
            ctx.set(dut.data.payload, payload[k] if k < length else 0)
            if ctx.get(dut.data.valid) and ctx.get(dut.data.ready):
                k += 1
            if ctx.get(dut.tx.valid):
                got.append(ctx.get(dut.tx.payload))
            await ctx.tick()
            if ctx.get(dut.idle):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert bytes(got) == encode_frame(0x81, payload)
