"""The rate curve's compact link commands: ``WRITE_RAMP`` and ``READ_COUNTS`` format 2.

The protocol model against independent references (exact fractions, a bit string), bad frames
(state unchanged), the gateware against the model byte for byte (Amaranth's simulator), the
host library on the model and on the board top in Icarus and Verilator."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from lifgate.boards.host import open_board
from lifgate.boards.link import HostLink
from lifgate.boards.protocol import (
    RUN_COUNTS,
    BoardModel,
    Cmd,
    ErrorCode,
    Features,
    encode_frame,
    pack_counts,
    unpack_counts,
)
from lifgate.golden.fixed import simulate
from test_boards_counts import (
    assert_refused_unsent,
    counts_from_spikes,
    rate_config,
    read_frame,
    run_frame,
)
from test_boards_link import assert_model_refuses, assert_same_errors, rtl_exchanges

from lifgate.config import ArrayShape, ConfigError, pack_params

SHAPE = ArrayShape(neurons=16, lanes=4, groups=2, leak_modes=("shift", "const"), i_width=12)
FEATURES = Features(SHAPE, max_payload=64, counts=True)


def ramp_frame(start, count, base, step):
    return encode_frame(Cmd.WRITE_RAMP, start.to_bytes(4, "little") + count.to_bytes(4, "little")
                        + base.to_bytes(4, "little", signed=True)
                        + step.to_bytes(4, "little", signed=True))


def ramp_reference(base, step, count):
    """``base + floor(k * step / 2**16)`` in exact fractions."""
    return [base + floor(Fraction(k * step, 1 << 16)) for k in range(count)]


def packed_reference(counts) -> bytes:
    """Format 2 from a string of bits: the width byte, then each count's bits LSB first."""
    w = max([0, *[int(c) for c in counts]]).bit_length()
    bits = "".join(format(int(c), f"0{w}b")[::-1] if w else "" for c in counts)
    bits += "0" * (-len(bits) % 8)
    return bytes([w]) + bytes(int(bits[k:k + 8][::-1], 2) for k in range(0, len(bits), 8))


def exchange(model, data):
    (out,) = model.exchange([data])
    return out


def ok(cmd):
    return encode_frame(cmd | 0x80)


# The protocol model -----------------------------------------------------------------------------


@pytest.mark.parametrize("start, count, base, step", [
    (0, 16, 37, 133 * 65536 // 15),  # a rate curve: 37 to 170
    (3, 9, 2047, -300_000),  # falling, down to the bottom of the range
    (5, 1, -2048, 0x7FFF_FFFF),  # one value: the step does not matter
    (7, 0, 5000, 1),  # nothing: even a base out of range is never a value
    (0, 16, -7, 65536 * 3),  # an integer step
])
def test_model_ramp_sets_the_currents(start, count, base, step):
    model = BoardModel(FEATURES)
    model.currents = list(range(100, 116))
    assert exchange(model, ramp_frame(start, count, base, step)) == ok(Cmd.WRITE_RAMP)
    want = list(range(100, 116))
    want[start:start + count] = ramp_reference(base, step, count)
    assert model.currents == want


def ramp_bad_frames(features):
    n = features.shape.neurons
    lo, hi = features.shape.i_range
    return [
        ("ramp past the end", ramp_frame(n - 3, 4, 0, 0), ErrorCode.RANGE),
        ("ramp start past the end", ramp_frame(n + 1, 0, 0, 0), ErrorCode.RANGE),
        ("ramp count 2**32 - 1", ramp_frame(1, 0xFFFF_FFFF, 0, 0), ErrorCode.RANGE),
        ("ramp base above", ramp_frame(0, 1, hi + 1, 0), ErrorCode.RANGE),
        ("ramp base below", ramp_frame(2, 3, lo - 1, 65536), ErrorCode.RANGE),
        ("ramp base i32 max", ramp_frame(0, 2, 0x7FFF_FFFF, -(1 << 31)), ErrorCode.RANGE),
        ("ramp leaves at the end", ramp_frame(0, n, hi - n + 2, 65536), ErrorCode.RANGE),
        ("ramp leaves below", ramp_frame(4, 9, lo + 7, -65536), ErrorCode.RANGE),
        ("ramp huge step", ramp_frame(0, 2, 0, 0x7FFF_FFFF), ErrorCode.RANGE),
        ("ramp short", encode_frame(Cmd.WRITE_RAMP, bytes(15)), ErrorCode.LENGTH),
        ("ramp long", encode_frame(Cmd.WRITE_RAMP, bytes(17)), ErrorCode.LENGTH),
        ("format 3", read_frame(0, 1, 3), ErrorCode.RANGE),
        ("packed past the end", read_frame(n - 3, 4, 2), ErrorCode.RANGE),
    ]


def configured_model(features=FEATURES):
    model = BoardModel(features)
    cfg, cur = rate_config(features.shape)
    model.params = list(cfg.params)
    model.currents = [int(x) for x in cur]
    model.input_en = True
    model._clear()
    return model, cfg, cur


def test_model_bad_compact_frames_change_nothing():
    model, _, _ = configured_model()
    exchange(model, run_frame(30, RUN_COUNTS))
    assert_model_refuses(model, ramp_bad_frames(FEATURES))
    # Without COUNTS the ramp is not built.
    plain = BoardModel(Features(SHAPE))
    assert exchange(plain, ramp_frame(0, 1, 0, 0)) == encode_frame(
        Cmd.ERR, bytes([ErrorCode.UNKNOWN, Cmd.WRITE_RAMP]))


def test_model_packed_counts_equal_golden():
    model, cfg, cur = configured_model()
    steps = 60
    exchange(model, run_frame(steps, RUN_COUNTS))
    c, _, _ = counts_from_spikes(simulate(cfg, steps, cur).spikes)
    assert c.max() > 1
    for start, count in [(0, 16), (3, 5), (9, 1), (4, 0)]:
        out = exchange(model, read_frame(start, count, 2))
        payload = out[5:-2]
        assert out[:2] == bytes([0xA5, Cmd.COUNTS])
        assert payload[:4] == steps.to_bytes(4, "little")
        assert payload[4:] == packed_reference(c[start:start + count])
        assert unpack_counts(payload[4:], count).tolist() == c[start:start + count].tolist()


@pytest.mark.parametrize("counts", [[], [0, 0, 0], [1], [65535, 0, 3],
                                    [5, 7, 2, 1, 6, 3, 4, 5, 1]])
def test_pack_counts_reference(counts):
    assert pack_counts(counts) == packed_reference(counts)
    assert unpack_counts(pack_counts(counts), len(counts)).tolist() == counts


# The gateware against the model (Amaranth's simulator) ------------------------------------------


@pytest.mark.parametrize("lanes", [4, 1])
def test_link_compact_match_model(lanes):
    shape = ArrayShape(neurons=8, lanes=lanes, groups=2, leak_modes=("shift", "const"),
                       i_width=12)
    feats = Features(shape, max_payload=24, counts=True, baud=1_000_000)
    model = BoardModel(feats)
    cfg, cur = rate_config(shape)
    exchanges = [read_frame(0, 8, 2)]  # all counts 0: width 0
    for g, p in enumerate(cfg.params):
        word = pack_params(shape, p).to_bytes(feats.param_bytes, "little")
        exchanges.append(encode_frame(Cmd.SET_PARAMS, g.to_bytes(4, "little") + word))
    exchanges += [
        ramp_frame(0, 8, 100, 40 * 65536 + 12345),
        ramp_frame(2, 3, -30, -100_000),
        ramp_frame(3, 0, 5000, 1),  # empty: the base is no value, not out of range
        ramp_frame(1, 7, 2047, -(1 << 31)),  # the largest fall: -32768 a neuron
        encode_frame(Cmd.SET_INPUT, b"\x01"),
        encode_frame(Cmd.CLEAR),
        run_frame(20, RUN_COUNTS),
        read_frame(0, 8, 2),
        read_frame(3, 4, 2),
        read_frame(0, 8, 0),
        *[d for _, d, _ in ramp_bad_frames(feats)],
        run_frame(20, RUN_COUNTS),
        read_frame(1, 7, 2),
        read_frame(5, 0, 2),
        encode_frame(Cmd.STATUS),
    ]
    expected = model.exchange(exchanges)
    got = rtl_exchanges(HostLink(feats, divisor=4, timeout=300), exchanges,
                        [len(e) for e in expected], divisor=4)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (k, exchanges[k].hex(), g.hex(), e.hex())
    assert max(model.counts[0]) > 1  # the packed reads carried counts of several bits


# The host library -------------------------------------------------------------------------------


def host_experiment(board, steps):
    """A rate curve loaded as a ramp, the counts read packed."""
    cfg, _ = rate_config(SHAPE)
    board.configure(cfg)
    cur = board.write_ramp(-20, 9.25)
    board.set_input(True)
    board.clear_counts()
    board.run(steps, counts=True, spikes=False)
    return cfg, cur, board.read_counts(packed=True), board.read_counts(start=2, count=9,
                                                                       packed=True)


def check_host_experiment(cfg, cur, full, part, steps):
    assert cur.tolist() == ramp_reference(-20, round(9.25 * 65536), 16)
    c, _, _ = counts_from_spikes(simulate(cfg, steps, cur).spikes)
    assert c.max() > 1 and full.window == steps
    assert full.counts.tolist() == c.tolist() and full.first is None and full.span is None
    assert part.counts.tolist() == c[2:11].tolist()
    assert np.allclose(full.mean_rates(1e-4), c / (steps * 1e-4))
    with pytest.raises(ConfigError, match="mean_rates"):
        full.rates(1e-4)


def test_host_model_compact():
    with open_board("model", features=FEATURES) as board:
        check_host_experiment(*host_experiment(board, 40), steps=40)


def test_host_compact_refuse():
    """Bad arguments: one line naming the parameter, and nothing is sent."""
    board = open_board("model", features=FEATURES)
    assert_refused_unsent(board, [
        (lambda: board.write_ramp(2048, 0), "base"),
        (lambda: board.write_ramp(0, 200.0), "step"),  # reaches 3000 > 2047
        (lambda: board.write_ramp(0, -1.0, start=1, count=16), "count"),
        (lambda: board.write_ramp(0, 1e9), "step"),
        (lambda: board.write_ramp(0, float("nan")), "step"),
        (lambda: board.write_ramp(0.5, 1), "base"),
        (lambda: board.read_counts(packed=1), "packed"),
        (lambda: board.read_counts(packed=True, compact=True), "packed"),
    ])
    plain = open_board("model", features=Features(SHAPE))
    with pytest.raises(ConfigError, match="without COUNTS"):
        plain.write_ramp(0, 1)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_board_compact(sim, tmp_path):
    """The board top in a simulator: the ramp's currents and the packed counts equal the
    model's, every bad compact frame gets the model's reply and changes nothing."""
    board = open_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path, timeout=2000)
    model = open_board("model", features=FEATURES)
    try:
        steps = 40 if sim == "verilator" else 16
        check_host_experiment(*host_experiment(board, steps), steps=steps)
        host_experiment(model, steps)
        assert_same_errors(board, model, ramp_bad_frames(FEATURES))
        r1 = board.run(6, counts=True, membrane=True)
        r2 = model.run(6, counts=True, membrane=True)
        assert np.array_equal(r1.v, r2.v)  # the currents are the model's after the bad frames
        assert board.read_counts(packed=True).counts.tolist() == \
            model.read_counts(packed=True).counts.tolist()
        assert board.read_counts().counts.tolist() == model.read_counts().counts.tolist()
    finally:
        board.close()


def test_icarus_board_compact_spram(tmp_path):
    """The counts in SB_SPRAM256KA (Yosys' model), as on the iCEBreaker: the packed read's
    scan and packer see the same read latency; equal to the model."""
    board = open_board("sim:icarus", features=FEATURES, build_dir=tmp_path, timeout=2000,
                       counts_ram="spram")
    try:
        check_host_experiment(*host_experiment(board, 16), steps=16)
    finally:
        board.close()
