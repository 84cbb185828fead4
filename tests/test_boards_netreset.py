"""The network board's reset zeroes its inputs (``INIT_X`` of ``boards/netlink.py``).

With multi-bit inputs the inputs live in the network's x memory (``Network(x_memory=True)``),
which a reset does not clear by itself: the link's start-up state ``INIT_X`` writes them 0, as
the protocol model's ``reset()`` sets ``x = 0``. Here the gateware (``NetworkLink`` on
Amaranth's simulator, driven on its UART pins) gets weights, parameters and inputs ``x``, runs,
is reset, gets its parameters again (a reset restores the defaults; the weights stay) and runs
from the clear: every reply is the protocol model's byte for byte (the model reset at the same
point), and the run after the reset equals the golden model with ``x = 0``, not with the
inputs written before it (which give other records).
"""

from __future__ import annotations

import numpy as np
from lifgate.boards.netlink import NetworkLink
from lifgate.boards.netproto import NetCmd, NetworkBoardModel
from lifgate.boards.protocol import MAX_LEN, FrameDecoder, encode_frame
from lifgate.golden.synapse import simulate_network
from test_boards_link import rtl_exchanges
from test_boards_network import (
    DIVISOR,
    FEATURES,
    LINK_TIMEOUT,
    NET,
    X,
    params_frame,
    run_frame,
    weight_frames,
)

from lifgate.config import pack_params

STEPS = 4
RUN_ALL = 7  # spikes, membranes, every layer


def _records(replies: bytes) -> tuple[list, list]:
    """Per layer: the spikes ``[t, n]`` and membranes ``[t, n]`` of a run's STEP frames."""
    f = FEATURES
    spikes = [[] for _ in f.shapes]
    v = [[] for _ in f.shapes]
    vb = f.value_bytes
    for frame in FrameDecoder(MAX_LEN).decode(replies):
        if frame.cmd != NetCmd.STEP:
            continue
        pl, n = frame.payload, frame.payload[0]
        N, sb = f.shapes[n].neurons, f.spike_bytes(n)
        bits = np.unpackbits(np.frombuffer(pl[5:5 + sb], dtype=np.uint8), bitorder="little")
        spikes[n].append(bits[:N].astype(bool).tolist())
        v[n].append([int.from_bytes(pl[5 + sb + q:5 + sb + q + vb], "little", signed=True)
                     for q in range(0, N * vb, vb)])
    return spikes, v


def _golden(x) -> tuple[list, list]:
    res = simulate_network(NET, STEPS, x)
    return [s.tolist() for s in res.spikes], [v.tolist() for v in res.v]


def test_reset_zeroes_the_x_memory():
    f = FEATURES
    assert f.x_width > 1  # the inputs live in the x memory
    params = [params_frame(f, n, g, pack_params(f.shapes[n], p))
              for n, layer in enumerate(NET.layers) for g, p in enumerate(layer.config.params)]
    before = [*weight_frames(NET, f, (f.max_payload - 9) // f.weight_bytes), *params,
              encode_frame(NetCmd.WRITE_X, (0).to_bytes(4, "little") + bytes(X.tolist())),
              encode_frame(NetCmd.CLEAR), run_frame(STEPS, RUN_ALL)]
    after = [*params, encode_frame(NetCmd.CLEAR), run_frame(STEPS, RUN_ALL)]
    model = NetworkBoardModel(f)
    want = model.exchange(before)
    model.reset()
    want += model.exchange(after)
    link = NetworkLink(f, divisor=DIVISOR, timeout=LINK_TIMEOUT)
    got = rtl_exchanges(link, before + after, [len(w) for w in want], divisor=DIVISOR,
                        resets={len(before)})
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (k, g.hex(), w.hex())
    zeros = np.zeros(f.inputs, dtype=np.int64)
    assert _golden(X) != _golden(zeros)  # the inputs matter to the run
    assert _records(got[len(before) - 1]) == _golden(X)
    assert _records(got[-1]) == _golden(zeros)
