"""The network board's replies with a byte sink that is always ready.

Through the UART a byte leaves every ``10 * divisor`` clocks, so the STEP record's two-stage
byte multiplexer (``rec_grp`` / ``rec_byte`` of ``boards/netlink.py``) and ``rec_fresh``, which
holds ``data.valid`` low for the two clocks after ``bidx`` moves, are never stressed: a record
byte one or two clocks stale would still come out right. Here the UART transmitter is replaced
by a sink that takes a byte in every clock (``FrameTx``'s stream before the UART; the commands
still arrive over the UART's ``rx`` pin), and every reply, STEP records and READ_WEIGHTS
included, must equal :class:`~lifgate.boards.netproto.NetworkBoardModel`'s byte for byte.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from lifgate.boards import framelink
from lifgate.boards.netlink import NetworkLink
from lifgate.boards.netproto import NetCmd, NetworkBoardModel
from lifgate.boards.protocol import encode_frame
from test_boards_link import send_uart
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

STEPS = 3
RUN_ALL = 7  # spikes, membranes, every layer


class _AlwaysReadySink(wiring.Component):
    """Stands in for ``UARTTx``: takes a byte in every clock; the bench reads ``stream``."""

    made: list = []

    def __init__(self, *, divisor: int):
        super().__init__({
            "stream": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "idle": Out(1),
        })
        _AlwaysReadySink.made.append(self)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.stream.ready.eq(1), self.idle.eq(1)]
        return m


def _sink_replies(link, frames, want, max_cycles=200_000):
    """Send ``frames`` on ``rx`` one by one; per frame, the bytes the sink took until
    ``want[k]`` bytes have come, plus a quiet tail."""
    replies = []

    async def tb(ctx):
        sink = _AlwaysReadySink.made[-1]
        got = bytearray()

        def take():
            if ctx.get(sink.stream.valid):
                got.append(ctx.get(sink.stream.payload))

        for frame, n in zip(frames, want, strict=True):
            got.clear()
            await send_uart(ctx, link.rx, frame, DIVISOR, take)
            cycles = 0
            while len(got) < n:
                await ctx.tick()
                take()
                cycles += 1
                assert cycles < max_cycles, f"no complete reply: {bytes(got).hex()}"
            for _ in range(200):  # nothing more may come
                await ctx.tick()
                take()
            replies.append(bytes(got))

    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.link = link
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return replies


def test_replies_with_an_always_ready_sink(monkeypatch):
    f = FEATURES
    monkeypatch.setattr(framelink, "UARTTx", _AlwaysReadySink)
    params = [params_frame(f, n, g, pack_params(f.shapes[n], p))
              for n, layer in enumerate(NET.layers) for g, p in enumerate(layer.config.params)]
    read = encode_frame(NetCmd.READ_WEIGHTS, bytes([0]) + (1).to_bytes(4, "little")
                        + (2).to_bytes(4, "little") + (5).to_bytes(2, "little"))
    frames = [*weight_frames(NET, f, (f.max_payload - 9) // f.weight_bytes), *params,
              encode_frame(NetCmd.WRITE_X, (0).to_bytes(4, "little") + bytes(X.tolist())),
              read, encode_frame(NetCmd.CLEAR), run_frame(STEPS, RUN_ALL), run_frame(2, 1),
              run_frame(2, 0), encode_frame(NetCmd.STATUS)]  # no records: the step count
    model = NetworkBoardModel(f)
    want = model.exchange(frames)
    link = NetworkLink(f, divisor=DIVISOR, timeout=LINK_TIMEOUT)
    got = _sink_replies(link, frames, [len(w) for w in want])
    assert any(NetCmd.STEP in w for w in want)  # the runs send records
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (k, g.hex(), w.hex())
