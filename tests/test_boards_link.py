"""The link gateware against the pure-Python protocol model, in Amaranth's simulator."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.boards.link import FrameRx, FrameTx
from lifgate.boards.protocol import (
    IDLE,
    SYNC,
    Cmd,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    crc16,
    encode_frame,
)
from lifgate.boards.uart import UARTRx, UARTTx
from lifgate.sim.driver import hold_reset

MAX = 8
TIMEOUT = 12


def rtl_decode(events, *, max_payload=MAX, timeout=TIMEOUT, gaps=None):
    """Feed ``events`` (bytes or IDLE) to FrameRx; return its outputs as protocol objects."""
    dut = FrameRx(max_payload=max_payload, timeout=timeout)
    out = []
    buf = [0] * max_payload
    rng = random.Random(len(events))

    async def tb(ctx):
        def collect():
            if ctx.get(dut.event):
                code, cmd = ctx.get(dut.code), ctx.get(dut.cmd)
                if ctx.get(dut.error):
                    out.append(FrameError(ErrorCode(code), cmd))
                else:
                    out.append(Frame(cmd, bytes(buf[:ctx.get(dut.length)])))

        for ev in events:
            if ev is IDLE:
                for _ in range(timeout + 2):
                    await ctx.tick()
                    collect()
                continue
            ctx.set(dut.byte.valid, 1)
            ctx.set(dut.byte.payload, ev)
            if ctx.get(dut.buf_we):
                buf[ctx.get(dut.buf_addr)] = ev
            await ctx.tick()
            collect()
            ctx.set(dut.byte.valid, 0)
            for _ in range(rng.randrange(2, 5) if gaps is None else gaps):
                await ctx.tick()
                collect()
        for _ in range(4):
            await ctx.tick()
            collect()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


def ref_decode(events, *, max_payload=MAX):
    return FrameDecoder(max_payload).decode(events)


# A frame, possibly damaged: (kind, cmd, payload)
_frames = st.tuples(
    st.sampled_from(["good", "good", "crc", "truncate", "garbage", "long"]),
    st.integers(0, 255),
    st.binary(min_size=0, max_size=MAX + 3),
    st.integers(0, 1000),
)


def _events(spec):
    events = []
    for kind, cmd, payload, r in spec:
        frame = list(encode_frame(cmd, payload))
        if kind == "crc":
            k = 1 + r % (len(frame) - 1)
            frame[k] ^= 1 << (r % 8)
        elif kind == "truncate":
            frame = frame[:1 + r % (len(frame) - 1)] + [IDLE]
        elif kind == "garbage":
            frame = [x for x in payload if x != SYNC] + frame
        elif kind == "long":
            payload = bytes(MAX + 1 + r % 4)
            frame = list(encode_frame(cmd, payload))
        events += frame
    return events


def test_decoder_examples():
    cases = [
        list(encode_frame(0x30, b"\x05\x00\x00\x00\x01")),
        list(encode_frame(0x01)),
        list(encode_frame(0x10, bytes(MAX))),
        list(encode_frame(0x10, bytes(MAX + 1))),
        list(encode_frame(0x42, b"ab"))[:-1] + [IDLE],
        [SYNC, IDLE],
        [0x00, 0x13, SYNC, 0x77, IDLE],
        list(encode_frame(0x02))[:-1] + [0x00],
    ]
    for events in cases:
        assert rtl_decode(events) == ref_decode(events), events
    # The reference itself: a good frame decodes, damage is reported as such.
    assert ref_decode(cases[0]) == [Frame(0x30, b"\x05\x00\x00\x00\x01")]
    assert ref_decode(cases[3]) == [FrameError(ErrorCode.LENGTH, 0x10)]
    assert ref_decode(cases[4]) == [FrameError(ErrorCode.TIMEOUT, 0x42)]
    assert ref_decode(cases[5]) == [FrameError(ErrorCode.TIMEOUT, 0)]
    assert ref_decode(cases[7]) == [FrameError(ErrorCode.CRC, 0x02)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_frames, min_size=1, max_size=4))
def test_decoder_matches_reference(spec):
    events = _events(spec)
    assert rtl_decode(events) == ref_decode(events)


def test_decoder_back_to_back():
    events = []
    for k in range(5):
        events += list(encode_frame(k + 1, bytes(range(k))))
    assert rtl_decode(events, gaps=2) == ref_decode(events)


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    # The residue over a frame including its CRC is zero.
    frame = encode_frame(0x20, b"\x00\x01\x02")
    assert crc16(frame[1:]) == 0


def frame_tx_bytes(cmd, payload, *, tx_ready, data_valid, cycles=200):
    """Send one frame of ``payload`` through :class:`FrameTx`; return the bytes it put out.

    ``tx_ready(cycle)`` and ``data_valid(cycle)`` say whether the UART takes a byte and whether
    a payload byte is offered in that clock (while bytes are left); ``cycles`` bounds the frame
    (a frame that needs longer comes out short and fails the caller's comparison)."""
    dut = FrameTx()
    length = len(payload)
    got = []

    async def tb(ctx):
        ctx.set(dut.cmd, cmd)
        ctx.set(dut.length, length)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        k = 0
        for cycle in range(cycles):
            ctx.set(dut.tx.ready, tx_ready(cycle))
            ctx.set(dut.data.valid, k < length and data_valid(cycle))
            ctx.set(dut.data.payload, payload[k] if k < length else 0)
            if ctx.get(dut.data.valid) and ctx.get(dut.data.ready):
                k += 1
            if ctx.get(dut.tx.valid) and ctx.get(dut.tx.ready):
                got.append(ctx.get(dut.tx.payload))
            await ctx.tick()
            if ctx.get(dut.idle):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return bytes(got)


@pytest.mark.parametrize("length", [0, 1, 5])
def test_frame_tx_matches_encoder(length):
    payload = bytes((17 * k + 3) & 0xFF for k in range(length))
    got = frame_tx_bytes(0x93, payload, tx_ready=lambda cycle: cycle % 3 != 1,
                         data_valid=lambda cycle: cycle % 2 == 0)
    assert got == encode_frame(0x93, payload)


def test_uart_loopback():
    from amaranth.hdl import Module

    m = Module()
    m.submodules.tx = tx = UARTTx(divisor=5)
    m.submodules.rx = rx = UARTRx(divisor=5)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    got = []

    async def tb(ctx):
        k = 0
        for _ in range(len(data) * 60 + 40):
            ctx.set(tx.stream.valid, k < len(data))
            ctx.set(tx.stream.payload, data[k] if k < len(data) else 0)
            if ctx.get(tx.stream.valid) and ctx.get(tx.stream.ready):
                k += 1
            await ctx.tick()
            if ctx.get(rx.stream.valid):
                got.append(ctx.get(rx.stream.payload))
            assert not ctx.get(rx.frame_error)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == data


# The whole link (UART pins, executor, array) against BoardModel -------------------------------


def _uart_wave(data, divisor):
    wave = []
    for b in data:
        wave += [0] * divisor
        for k in range(8):
            wave += [(b >> k) & 1] * divisor
        wave += [1] * divisor
    return wave


async def send_uart(ctx, rx, data, divisor, each_clock):
    """Drive ``data`` on the UART line ``rx`` (8N1, ``divisor`` clocks a bit), calling
    ``each_clock()`` after every clock, then leave the line idle (high)."""
    for level in _uart_wave(data, divisor):
        ctx.set(rx, level)
        await ctx.tick()
        each_clock()
    ctx.set(rx, 1)


def rtl_exchanges(link, exchanges, expected_lengths, *, divisor, max_cycles=200_000,
                  resets=()):
    """Send each byte string on ``rx``; collect what comes back on ``tx`` until the expected
    number of bytes has arrived (plus a quiet tail). Returns the replies per exchange.
    ``resets``: the indices of the exchanges before which the link's reset is held for 4
    clocks; the exchange then waits until the link's start-up work is over (it ends with a
    clear: ``status`` bit 0, busy, rises and falls), as a host that opens a board long after
    its reset."""
    replies = []

    async def tb(ctx):
        state = {"bit": -1, "timer": 0, "byte": 0}
        got = bytearray()

        def rx_step():
            line = ctx.get(link.tx)
            s = state
            if s["bit"] < 0:
                if not line:
                    s["bit"], s["timer"], s["byte"] = 0, divisor + divisor // 2, 0
                return
            s["timer"] -= 1
            if s["timer"] == 0:
                if s["bit"] < 8:
                    s["byte"] |= line << s["bit"]
                    s["bit"] += 1
                    s["timer"] = divisor
                else:
                    assert line == 1, "stop bit"
                    got.append(s["byte"])
                    s["bit"] = -1

        for k, (data, want) in enumerate(zip(exchanges, expected_lengths, strict=True)):
            if k in resets:
                await hold_reset(ctx, domain)
                await ctx.tick()
                for level in (0, 1):  # start-up ends with a clear: busy rises, then falls
                    cycles = 0
                    while (ctx.get(link.status) & 1) == level:
                        await ctx.tick()
                        cycles += 1
                        assert cycles < max_cycles, f"status bit 0 stays {level} after a reset"
            got.clear()
            await send_uart(ctx, link.rx, data, divisor, rx_step)
            cycles = 0
            while len(got) < want or state["bit"] >= 0:
                await ctx.tick()
                rx_step()
                cycles += 1
                assert cycles < max_cycles, f"no complete reply: {bytes(got).hex()}"
            for _ in range(link.timeout + 30 * divisor):  # nothing more may come
                await ctx.tick()
                rx_step()
            replies.append(bytes(got))

    top = Module()  # the domain made explicit, so that the bench can drive its reset
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.link = link
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return replies


def assert_same_errors(board, model, frames):
    """Send each bad frame of ``frames`` (``(name, bytes, ErrorCode)``, every one starting
    with SYNC and its command byte) to ``board`` and to ``model`` (host-library boards, the
    model one on the ``model`` backend): the same reply from both, and that reply is the error
    the frame names, for the frame's command."""
    for name, data, code in frames:
        board.send(data)
        model.send(data)
        got, want = board.receive(), model.receive()
        assert got == want, (name, got, want)
        assert got == Frame(Cmd.ERR, bytes([code, data[1]])), (name, got)


def assert_model_refuses(model, frames):
    """Send each bad frame of ``frames`` (as for :func:`assert_same_errors`) to the protocol
    model ``model`` (a ``BoardModel``): exactly the error reply the frame names, for its
    command, and the model's state (``snapshot()``) unchanged by every one."""
    snap = model.snapshot()
    for name, data, code in frames:
        assert model.exchange([data]) == [encode_frame(Cmd.ERR, bytes([code, data[1]]))], name
        assert model.snapshot() == snap, name


@pytest.mark.parametrize("variant", ["membrane", "spikes-only", "feeder"])
def test_link_matches_model(variant):
    """Replies byte for byte the protocol model's; ``feeder``: the membrane variant with the
    ULX3S's input-current feeder (boards/feed.py, on inferred memories)."""
    from lifgate.boards.link import HostLink
    from lifgate.boards.protocol import BoardModel, Cmd, Features

    from lifgate.config import ArrayShape, NeuronParams, pack_params

    if variant in ("membrane", "feeder"):
        shape = ArrayShape(neurons=8, lanes=4, groups=2, leak_modes=("shift", "const"))
    else:  # one spike byte per record, 12-bit currents (sign-extension checks), no readback
        shape = ArrayShape(neurons=16, lanes=8, groups=2, v_width=12, i_width=12,
                           leak_modes=("shift", "const"))
    feats = Features(shape, max_payload=24, membrane=variant != "spikes-only")
    model = BoardModel(feats)
    divisor = 4
    link = HostLink(feats, divisor=divisor, timeout=300,
                    current_ram="feeder" if variant == "feeder" else "memory")

    def params(g, p):
        word = pack_params(shape, p).to_bytes(feats.param_bytes, "little")
        return encode_frame(Cmd.SET_PARAMS, g.to_bytes(4, "little") + word)

    cur = b"".join(x.to_bytes(2, "little", signed=True) for x in (30, -5, 200, 7, 0, 99))
    if variant == "spikes-only":  # 4000 does not fit 12 bits: a range error
        cur += (4000).to_bytes(2, "little")
    exchanges = [
        encode_frame(Cmd.VERSION),
        params(0, NeuronParams(v_th=150, bias=20, leak=3)),
        params(1, NeuronParams(v_th=90, v_init=-20, bias=-4, leak_mode="const", leak=2,
                               reset_mode="subtract", t_ref=2)),
        encode_frame(Cmd.SET_NOISE, (0xDEADBEEF).to_bytes(4, "little") + b"\x84\x03"),
        encode_frame(Cmd.WRITE_CURRENTS, (1).to_bytes(4, "little") + cur),
        encode_frame(Cmd.SET_INPUT, b"\x01"),
        encode_frame(Cmd.CLEAR),
        encode_frame(Cmd.RUN, (3).to_bytes(4, "little") + b"\x03"),
        encode_frame(Cmd.RUN, (2).to_bytes(4, "little") + b"\x01"),
        encode_frame(Cmd.RUN, (4).to_bytes(4, "little") + b"\x00"),
        encode_frame(Cmd.STATUS),
        # Rejected frames: each leaves the state alone.
        encode_frame(Cmd.WRITE_CURRENTS, (7).to_bytes(4, "little") + cur[:4]),  # 7 + 2 > 8
        encode_frame(Cmd.WRITE_CURRENTS, (0).to_bytes(4, "little") + cur[:3]),  # odd length
        encode_frame(Cmd.WRITE_CURRENTS, ((1 << 22) - 1).to_bytes(4, "little") + cur[:4]),
        encode_frame(Cmd.WRITE_CURRENTS, (0xFFFF_FFFF).to_bytes(4, "little") + cur[:2]),
        params(2, NeuronParams()),  # no group 2
        params(0, NeuronParams(leak_mode="shift", leak=12))[:-2] + b"\x00\x00",  # bad CRC
        encode_frame(Cmd.SET_INPUT, b"\x02"),
        encode_frame(0x55),
        encode_frame(Cmd.RUN, (1).to_bytes(4, "little") + b"\x04"),
        encode_frame(Cmd.SET_NOISE, bytes(30)),  # longer than the buffer
        encode_frame(Cmd.CLEAR)[:4],  # truncated
        encode_frame(Cmd.STATUS) + encode_frame(Cmd.CLEAR),  # overrun
        encode_frame(Cmd.RUN, (2).to_bytes(4, "little") + b"\x03"),
    ]
    expected = model.exchange(exchanges)
    got = rtl_exchanges(link, exchanges, [len(e) for e in expected], divisor=divisor)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (k, exchanges[k].hex(), g.hex(), e.hex())
