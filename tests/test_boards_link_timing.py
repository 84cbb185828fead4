"""The structure the UP5K board top's clock rests on (docs/resources.md, "Board tops"): the
link's state machines one-hot, and the frame encoder's holding register under a UART that takes
a byte every clock. Behaviour is checked byte for byte elsewhere (test_boards_link.py,
test_boards_host.py); these tests keep the structure from sliding back."""

from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil
from lifgate.boards.link import HostLink
from lifgate.boards.protocol import Features, encode_frame
from test_boards_link import frame_tx_bytes

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
    payload = bytes((29 * k + 11) & 0xFF for k in range(length))
    got = frame_tx_bytes(0x81, payload, tx_ready=lambda cycle: True,
                         data_valid=lambda cycle: True, cycles=100)
    assert got == encode_frame(0x81, payload)
