"""Fuzzing the host-link frame decoder and board model of ``boards/protocol.py`` (hypothesis).

Each example sends a sequence of frames to a fresh :class:`BoardModel`, one at a time and each
followed by an idle line (the protocol's rule: wait for the reply). A frame is a well-formed
command frame (every command, random and edge-case payloads, RUNs kept short), then possibly
mutated: a flipped bit, truncated, a wrong length field, junk before it, a random byte string,
an oversized payload. Checked for every frame:

* the model never raises, and returns (bounded work: RUN frames carry at most 16 steps);
* its output parses, with an independent decoder written here, into whole frames with good CRCs;
* a frame with one flipped bit after its ``SYNC`` and length bytes gets exactly one ``ERR_CRC``;
  a truncated frame exactly one ``ERR_TIMEOUT``; an intact frame longer than the frame buffer
  exactly one ``ERR_LENGTH``; junk with no ``SYNC`` nothing at all;
* whenever the reply is an ``ERR`` frame, the board state did not change;
* an intact frame is answered with ``cmd | 0x80`` (``RUN``: ``STEP`` frames, then ``RUN_DONE``)
  or one ``ERR``.

At least 10,000 frames per run (``FRAMES``). Against the simulated board top (600 frames on
Verilator, 60 on Icarus): ``tests/test_fuzz_board.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.boards.protocol import (
    SYNC,
    BoardModel,
    Cmd,
    ErrorCode,
    Features,
    crc16,
    encode_frame,
)

from lifgate.config import ArrayShape, NeuronParams, pack_params

FEATURES = Features(ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=6,
                               ref_width=3, decay_frac=6, step_width=8),
                    membrane=True, noise=True, max_payload=64)
EXAMPLES = 1_000
FRAMES = 10_000
_count = {"frames": 0}


def parse_replies(data: bytes) -> list[tuple[int, bytes]]:
    """Split a reply byte string into (cmd, payload); assert it is whole frames, good CRCs."""
    out, k = [], 0
    while k < len(data):
        assert data[k] == SYNC, f"reply byte {k} is {data[k]:#x}, not SYNC"
        assert k + 6 <= len(data), "truncated reply header"
        cmd = data[k + 1]
        n = int.from_bytes(data[k + 2:k + 5], "little")
        end = k + 5 + n + 2
        assert end <= len(data), "truncated reply"
        assert crc16(data[k + 1:end]) == 0, "bad reply CRC"
        out.append((cmd, bytes(data[k + 5:k + 5 + n])))
        k = end
    return out


def _payloads(f: Features):
    s = f.shape
    pw = f.param_bytes
    word = st.one_of(
        st.builds(lambda p: pack_params(s, p), st.builds(
            NeuronParams, v_th=st.integers(-128, 127), leak_mode=st.just("const"),
            leak=st.integers(-128, 127), t_ref=st.integers(0, 7))),
        st.integers(0, (1 << (8 * pw)) - 1),
    )
    u32 = st.one_of(st.integers(0, 3), st.integers(0, (1 << 32) - 1))
    return {
        Cmd.VERSION: st.just(b""),
        Cmd.STATUS: st.just(b""),
        Cmd.SET_PARAMS: st.builds(lambda g, w: g.to_bytes(4, "little") + w.to_bytes(pw, "little"),
                                  u32, word),
        Cmd.SET_NOISE: st.binary(min_size=6, max_size=6),
        Cmd.SET_INPUT: st.sampled_from([b"\x00", b"\x01", b"\x02", b"\xff"]),
        Cmd.CLEAR: st.just(b""),
        Cmd.WRITE_CURRENTS: st.builds(
            lambda a, vals: a.to_bytes(4, "little") + bytes(v & 0xFF for v in vals),
            st.integers(0, 9), st.lists(st.integers(-40, 40), max_size=9)),
        Cmd.RUN: st.builds(lambda n, fl: n.to_bytes(4, "little") + bytes([fl]),
                           st.integers(0, 16), st.sampled_from([0, 1, 2, 3, 4, 0x80])),
    }


_PAYLOADS = _payloads(FEATURES)


@st.composite
def frames(draw):
    """(bytes, kind): kind says which outcome the frame must have."""
    cmd = draw(st.sampled_from([*_PAYLOADS, 0x00, 0x7F, 0x31, 0xFF]))
    payload = draw(_PAYLOADS[cmd]) if cmd in _PAYLOADS else draw(st.binary(max_size=8))
    if draw(st.integers(0, 9)) == 0:  # wrong length for the command
        payload = payload + draw(st.binary(min_size=1, max_size=3))
    frame = encode_frame(cmd, payload)
    kind = draw(st.sampled_from(["intact"] * 4 + ["flip", "truncate", "junk", "random",
                                                  "oversize", "prefix"]))
    if kind == "flip":
        # A bit after SYNC and the length field: cmd, payload or CRC.
        pos = draw(st.sampled_from([1] + list(range(5, len(frame)))))
        bit = draw(st.integers(0, 7))
        frame = frame[:pos] + bytes([frame[pos] ^ (1 << bit)]) + frame[pos + 1:]
    elif kind == "truncate":
        frame = frame[:draw(st.integers(1, len(frame) - 1))]
    elif kind == "junk":
        frame = bytes(b for b in draw(st.binary(min_size=1, max_size=20)) if b != SYNC)
    elif kind == "random":
        frame = draw(st.binary(min_size=1, max_size=40))
    elif kind == "oversize":
        frame = encode_frame(cmd, draw(st.binary(min_size=FEATURES.max_payload + 1,
                                                 max_size=FEATURES.max_payload + 8)))
    elif kind == "prefix":
        junk = bytes(b for b in draw(st.binary(max_size=6)) if b != SYNC)
        frame = junk + frame
        kind = "intact"
    return frame, kind, cmd


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(frames(), min_size=10, max_size=14))
def test_protocol_fuzz(seq):
    board = BoardModel(FEATURES)
    for frame, kind, cmd in seq:
        _count["frames"] += 1
        _count[kind] = _count.get(kind, 0) + 1
        before = board.snapshot()
        (out,) = board.exchange([frame])
        replies = parse_replies(out)
        errs = [p for c, p in replies if c == Cmd.ERR]
        if errs:
            assert len(replies) == 1, f"an ERR among other replies: {replies}"
            assert board.snapshot() == before, f"a rejected frame changed the board: {errs}"
            code = ErrorCode(errs[0][0])
        if kind == "flip":
            assert replies == [(Cmd.ERR, bytes([ErrorCode.CRC, frame[1]]))], replies
        elif kind == "truncate":
            assert len(replies) == 1 and errs and code == ErrorCode.TIMEOUT, replies
        elif kind == "junk":
            assert replies == [], replies
        elif kind == "oversize":
            assert replies == [(Cmd.ERR, bytes([ErrorCode.LENGTH, cmd]))], replies
        elif kind == "intact":
            assert replies, "no reply to a frame"
            if not errs:
                codes = [c for c, _ in replies]
                if cmd == Cmd.RUN:
                    assert codes[-1] == Cmd.RUN_DONE and set(codes[:-1]) <= {Cmd.STEP}, codes
                else:
                    assert codes == [cmd | 0x80], codes
            else:
                assert code in (ErrorCode.UNKNOWN, ErrorCode.LENGTH, ErrorCode.RANGE), code


def test_protocol_frame_count():
    """Runs after the fuzz test in the same process: at least FRAMES frames were sent."""
    if _count["frames"] == 0:
        pytest.skip("the fuzz test did not run in this process (xdist split)")
    print(f"protocol fuzz: {_count}")
    assert _count["frames"] >= FRAMES, _count
