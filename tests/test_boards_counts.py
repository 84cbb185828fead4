"""The COUNTS run mode and VERSION v2 (baud, run modes): the protocol model against the golden
model, the gateware against the protocol model byte for byte (Amaranth's simulator, Icarus,
Verilator), bad frames (state unchanged), the host library on every backend."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from lifgate.boards.host import Board, BoardError, open_board, recorded_baud, write_link_record
from lifgate.boards.link import HostLink
from lifgate.boards.protocol import (
    COUNT_MAX,
    RUN_COUNTS,
    VERSION_BYTES,
    BoardModel,
    Cmd,
    ErrorCode,
    Features,
    encode_frame,
    parse_version,
    version_payload,
)
from lifgate.boards.toolchain import BOARDS
from lifgate.boards.top import BoardTop
from lifgate.golden.fixed import simulate
from test_boards_link import assert_model_refuses, assert_same_errors, rtl_exchanges

from lifgate.app.cli import main as cli_main
from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    NeuronParams,
    NoiseParams,
    pack_params,
)

SHAPE = ArrayShape(neurons=16, lanes=4, groups=2, leak_modes=("shift", "const"))
FEATURES = Features(SHAPE, max_payload=64, counts=True)


def rate_config(shape=SHAPE):
    params = (
        NeuronParams(v_th=400, v_reset=-50, v_rest=-20, v_init=-20, leak=4, t_ref=2),
        NeuronParams(v_th=300, v_reset=0, v_init=10, bias=3, leak_mode="const", leak=1,
                     reset_mode="subtract", t_ref=1),
    )
    currents = (np.arange(shape.neurons) * 9 - 20) % 150 - 20
    return Config(shape=shape, params=params, noise=NoiseParams(seed=7, gain=0)), currents


def counts_from_spikes(spikes, window0=0):
    """Independent reference: count, first and last window step of each neuron."""
    spikes = np.asarray(spikes, dtype=bool)
    n = spikes.shape[1]
    c, first, last = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for j in range(n):
        idx = np.flatnonzero(spikes[:, j]) + window0
        if idx.size:
            c[j] = min(idx.size, COUNT_MAX)
            first[j], last[j] = min(idx[0], 0xFFFF), min(idx[-1], 0xFFFF)
    return c, first, last


def exchange(model, data):
    (out,) = model.exchange([data])
    return out


def read_frame(start, count, fmt=0):
    return encode_frame(Cmd.READ_COUNTS, start.to_bytes(4, "little")
                        + count.to_bytes(4, "little") + bytes([fmt]))


def run_frame(steps, flags):
    return encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags]))


# VERSION v2 -------------------------------------------------------------------------------------


def test_version_v2_round_trip():
    for f in (FEATURES, Features(SHAPE, baud=12_000_000), Features(SHAPE, events=True, probes=8),
              Features(SHAPE, membrane=False, noise=False, baud=3_000_000, counts=True)):
        p = version_payload(f)
        assert len(p) == VERSION_BYTES == 26 and p[0] == 2
        assert int.from_bytes(p[20:24], "little") == f.baud
        assert parse_version(p) == f
    with pytest.raises(ConfigError, match="protocol version"):
        parse_version(version_payload(FEATURES)[:20])


@pytest.mark.parametrize("kwargs, match", [
    ({"baud": 999}, "baud"), ({"baud": 12_000_001}, "baud"), ({"baud": 1e6}, "baud"),
    ({"counts": 1}, "counts"), ({"events": "yes"}, "events"), ({"probes": 256}, "probes"),
    ({"probes": -1}, "probes"), ({"probes": True}, "probes"),
])
def test_features_refuse(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Features(SHAPE, **kwargs)


# The protocol model -----------------------------------------------------------------------------


def configured_model(features=FEATURES):
    model = BoardModel(features)
    cfg, cur = rate_config(features.shape)
    model.params = list(cfg.params)
    model.seed, model.gain = cfg.noise.seed, cfg.noise.gain
    model.currents = [int(x) for x in cur]
    model.input_en = True
    model._clear()
    return model, cfg, cur


def parse_counts(payload, count, fmt=0):
    window = int.from_bytes(payload[:4], "little")
    if fmt == 0:
        rec = np.frombuffer(payload[4:], dtype="<u2").reshape(count, 3).astype(np.int64)
        return window, rec[:, 0], rec[:, 1], rec[:, 2]
    rec = np.frombuffer(payload[4:], dtype=np.uint8).reshape(count, 3).astype(np.int64)
    return window, rec[:, 0], rec[:, 1] | rec[:, 2] << 8


def test_model_counts_equal_golden_spikes():
    """Two runs with COUNTS add up (window steps continue); a run without leaves them alone;
    CLEAR does not touch them; both formats."""
    model, cfg, cur = configured_model()
    ref = simulate(cfg, 70, cur)
    assert exchange(model, run_frame(30, RUN_COUNTS)) == encode_frame(
        Cmd.RUN_DONE, (30).to_bytes(4, "little"))
    exchange(model, run_frame(10, 0))  # not counted
    exchange(model, run_frame(30, RUN_COUNTS | 1))
    spikes = np.concatenate([ref.spikes[:30], ref.spikes[40:70]])
    c, first, last = counts_from_spikes(spikes)
    assert 0 < c.sum() and (c > 1).any()
    out = exchange(model, read_frame(0, 16))
    window, c2, f2, l2 = parse_counts(out[5:-2], 16)
    assert out[1] == Cmd.COUNTS and window == 60
    assert c2.tolist() == c.tolist() and f2.tolist() == first.tolist()
    assert l2.tolist() == last.tolist()
    # A slice, format 1: min(c, 255) and last - first.
    out = exchange(model, read_frame(3, 9, 1))
    window, c8, span = parse_counts(out[5:-2], 9, 1)
    assert c8.tolist() == np.minimum(c[3:12], 255).tolist()
    assert span.tolist() == (last - first)[3:12].tolist()
    exchange(model, encode_frame(Cmd.CLEAR))
    assert exchange(model, read_frame(0, 16)) == out_full(model)
    assert exchange(model, encode_frame(Cmd.CLEAR_COUNTS)) == encode_frame(Cmd.COUNTS_CLEARED)
    assert model.window == 0 and not model.counts.any()


def out_full(model):
    return encode_frame(Cmd.COUNTS, model.window.to_bytes(4, "little")
                        + model.count_records(0, 16, 0))


def test_model_counts_saturate():
    """A neuron that fires every step: its count stops at 65535, its last step at 65535, the
    window goes on; the neurons that never fire stay at 0."""
    shape = ArrayShape(neurons=4, lanes=4, groups=1, leak_modes=("shift",))
    f = Features(shape, counts=True)
    model = BoardModel(f)
    model.params = [NeuronParams(v_th=-1000, v_init=0, v_reset=0, leak=1)]
    model._clear()
    exchange(model, run_frame(70_000, RUN_COUNTS))
    out = exchange(model, read_frame(0, 4))
    window, c, first, last = parse_counts(out[5:-2], 4)
    assert window == 70_000
    assert c.tolist() == [COUNT_MAX] * 4 and first.tolist() == [0] * 4
    assert last.tolist() == [0xFFFF] * 4
    out = exchange(model, read_frame(0, 4, 1))
    assert parse_counts(out[5:-2], 4, 1)[1].tolist() == [255] * 4


def count_bad_frames(features):
    n = features.shape.neurons
    return [
        ("read past the end", read_frame(n - 3, 4), ErrorCode.RANGE),
        ("read start past the end", read_frame(n + 1, 0), ErrorCode.RANGE),
        ("read 2**32 - 1", read_frame(1, 0xFFFF_FFFF), ErrorCode.RANGE),
        ("format 3", read_frame(0, 1, 3), ErrorCode.RANGE),
        ("format 255", read_frame(0, 1, 255), ErrorCode.RANGE),
        ("read short", encode_frame(Cmd.READ_COUNTS, bytes(8)), ErrorCode.LENGTH),
        ("read long", encode_frame(Cmd.READ_COUNTS, bytes(10)), ErrorCode.LENGTH),
        ("clear with payload", encode_frame(Cmd.CLEAR_COUNTS, b"\x00"), ErrorCode.LENGTH),
        ("run events (not built)", run_frame(2, 8 | RUN_COUNTS), ErrorCode.RANGE),
        ("run probes (not built)", run_frame(2, 16), ErrorCode.RANGE),
        ("run flag 5", run_frame(2, 32 | RUN_COUNTS), ErrorCode.RANGE),
    ]


def test_model_bad_counts_frames_change_nothing():
    model, _, _ = configured_model()
    exchange(model, run_frame(20, RUN_COUNTS))
    assert_model_refuses(model, count_bad_frames(FEATURES))


def test_model_without_counts():
    """A board built without COUNTS: its commands are unknown, the RUN flag out of range."""
    model = BoardModel(Features(SHAPE))
    for data in (encode_frame(Cmd.CLEAR_COUNTS), read_frame(0, 1)):
        assert exchange(model, data) == encode_frame(Cmd.ERR, bytes([ErrorCode.UNKNOWN,
                                                                     data[1]]))
    assert exchange(model, run_frame(1, RUN_COUNTS)) == encode_frame(
        Cmd.ERR, bytes([ErrorCode.RANGE, Cmd.RUN]))


# The gateware against the model (Amaranth's simulator) ------------------------------------------


def config_frames(features, cfg, cur):
    shape = features.shape
    frames = []
    for g, p in enumerate(cfg.params):
        word = pack_params(shape, p).to_bytes(features.param_bytes, "little")
        frames.append(encode_frame(Cmd.SET_PARAMS, g.to_bytes(4, "little") + word))
    body = b"".join(int(x).to_bytes(2, "little", signed=True) for x in cur)
    per = (features.max_payload - 4) // 2 * 2
    for k in range(0, len(body), per):
        frames.append(encode_frame(Cmd.WRITE_CURRENTS, (k // 2).to_bytes(4, "little")
                                   + body[k:k + per]))
    return frames + [encode_frame(Cmd.SET_INPUT, b"\x01"), encode_frame(Cmd.CLEAR)]


@pytest.mark.parametrize("lanes", [4, 1])
def test_link_counts_match_model(lanes):
    shape = ArrayShape(neurons=8, lanes=lanes, groups=2, leak_modes=("shift", "const"))
    feats = Features(shape, max_payload=24, counts=True, baud=1_000_000)
    model = BoardModel(feats)
    cfg, cur = rate_config(shape)
    exchanges = [encode_frame(Cmd.VERSION), read_frame(0, 8)] + config_frames(feats, cfg, cur)
    exchanges += [
        run_frame(12, RUN_COUNTS),
        read_frame(0, 8),
        run_frame(3, RUN_COUNTS | 1),  # counts and the bitmap together
        run_frame(2, 0),
        read_frame(2, 5, 1),
        *[d for _, d, _ in count_bad_frames(feats)],
        read_frame(0, 8),
        encode_frame(Cmd.CLEAR_COUNTS),
        read_frame(0, 0),
        run_frame(4, RUN_COUNTS | 2),
        read_frame(0, 8),
        encode_frame(Cmd.STATUS),
    ]
    expected = [exchange(model, data) for data in exchanges]
    got = rtl_exchanges(HostLink(feats, divisor=4, timeout=300), exchanges,
                        [len(e) for e in expected], divisor=4)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (k, exchanges[k].hex(), g.hex(), e.hex())
    first_read = expected[exchanges.index(run_frame(12, RUN_COUNTS)) + 1]
    assert parse_counts(first_read[5:-2], 8)[1].any()  # the run counted spikes


# The host library on every backend --------------------------------------------------------------


def host_experiment(board: Board, steps=40):
    """A rate curve from counts: configure, run twice with counts, read them back."""
    cfg, cur = rate_config()
    board.configure(cfg, currents=cur)
    board.clear_counts()
    a = board.run(steps // 2, counts=True, spikes=False)
    b = board.run(steps - steps // 2, counts=True, spikes=True)
    return a, b, board.read_counts(), board.read_counts(start=5, count=7, compact=True)


def check_host_experiment(a, b, full, part, steps=40):
    cfg, cur = rate_config()
    ref = simulate(cfg, steps, cur)
    c, first, last = counts_from_spikes(ref.spikes)
    assert a.spikes is None and np.array_equal(b.spikes, ref.spikes[steps // 2:])
    assert full.window == steps
    assert full.counts.tolist() == c.tolist()
    assert full.first.tolist() == first.tolist() and full.last.tolist() == last.tolist()
    assert not full.saturated.any()
    assert part.counts.tolist() == c[5:12].tolist() and part.first is None
    assert part.span.tolist() == (last - first)[5:12].tolist()
    rates = full.rates(dt=1e-4)
    many = c > 1
    assert np.allclose(rates[many], (c[many] - 1) / ((last - first)[many] * 1e-4))
    assert np.isnan(rates[~many]).all() and many.any() and (~many).any()


def test_host_model_counts():
    with open_board("model", features=FEATURES) as board:
        res = host_experiment(board)
    check_host_experiment(*res)


def assert_refused_unsent(board, calls):
    """Each ``(call, match)`` of ``calls`` raises ConfigError, one line matching ``match``, and
    ``board`` sends nothing for any of them (its transport's writes are watched)."""
    sent = []
    write = board.transport.write
    board.transport.write = lambda data: (sent.append(data), write(data))[1]
    for call, match in calls:
        with pytest.raises(ConfigError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert sent == []


def test_host_counts_refuse():
    """Bad arguments: one line naming the parameter, and nothing is sent."""
    board = open_board("model", features=FEATURES)
    assert_refused_unsent(board, [
        (lambda: board.read_counts(start=16, count=1), "start"),
        (lambda: board.read_counts(start=-1), "start"),
        (lambda: board.read_counts(start=1.0), "start"),
        (lambda: board.read_counts(start=4, count=13), "count"),
        (lambda: board.read_counts(count="3"), "count"),
        (lambda: board.read_counts(compact=1), "compact"),
        (lambda: board.run(3, counts=1), "counts"),
        (lambda: board.run(3, counts=np.float64(1)), "counts"),
        (lambda: board.run(3, counts=None), "counts"),
    ])
    plain = open_board("model", features=Features(SHAPE))
    with pytest.raises(ConfigError, match="without COUNTS"):
        plain.run(3, counts=True)
    with pytest.raises(ConfigError, match="without COUNTS"):
        plain.read_counts()
    with pytest.raises(BoardError, match="UNKNOWN"):
        plain.request(Cmd.CLEAR_COUNTS)
    # Nothing was sent: the board answers normally.
    assert board.read_counts().window == 0


def same_counts(a, b):
    return (a.window == b.window and a.counts.tolist() == b.counts.tolist()
            and a.first.tolist() == b.first.tolist() and a.last.tolist() == b.last.tolist())


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_board_counts(sim, tmp_path):
    """The board top in a simulator: counts equal the golden model, every bad counts frame gets
    the model's reply and changes nothing."""
    board = open_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path, timeout=2000)
    model = open_board("model", features=FEATURES)
    try:
        assert board.features == FEATURES
        steps = 40 if sim == "verilator" else 12
        check_host_experiment(*host_experiment(board, steps), steps=steps)
        host_experiment(model, steps)
        assert_same_errors(board, model, count_bad_frames(FEATURES))
        assert same_counts(board.read_counts(), model.read_counts())
        r1, r2 = board.run(5, counts=True, membrane=True), model.run(5, counts=True,
                                                                     membrane=True)
        assert np.array_equal(r1.v, r2.v)
        assert same_counts(board.read_counts(), model.read_counts())
    finally:
        board.close()


def test_icarus_board_counts_spram(tmp_path):
    """The counts in SB_SPRAM256KA (Yosys' model), as on the iCEBreaker: equal to the model."""
    board = open_board("sim:icarus", features=FEATURES, build_dir=tmp_path, timeout=2000,
                       counts_ram="spram")
    try:
        check_host_experiment(*host_experiment(board, 12), steps=12)
    finally:
        board.close()


# Baud: build-time check, link record, the host's default ----------------------------------------


@pytest.mark.parametrize("board, freq, baud, hi", [
    ("ulx3s-85f", "100", "3000001", 3_000_000),  # the FT231X's maximum, not the clock's
    ("icebreaker", "48", "12000001", 12_000_000),
    ("icebreaker", "30", "12000000", 7_500_000),  # a quarter of the clock
])
def test_build_baud_board_maximum(capsys, tmp_path, board, freq, baud, hi):
    out = tmp_path / "build"
    code = cli_main(["build", "--board", board, "--freq", freq, "--baud", baud, "--counts",
                 "--build-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"parameter 'baud' must be an integer in [1000, {hi}]" in err[0], err[0]
    assert not out.exists()


def test_board_top_features_carry_baud_and_counts():
    shape = ArrayShape(neurons=64, lanes=8, groups=1, leak_modes=("shift", "const"))
    with warnings.catch_warnings():  # the tops are built, never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        top = BoardTop(board=BOARDS["icebreaker"], shape=shape, frequency=48e6,
                       baud=12_000_000, counts=True)
        assert top.features.baud == 12_000_000 and top.features.counts
        assert top.link.counts_ram == "spram"
        assert parse_version(version_payload(top.features)) == top.features
        with pytest.raises(ConfigError, match=r"\[1000, 3000000\]"):
            BoardTop(board=BOARDS["ulx3s-85f"], shape=shape, frequency=100e6,
                     baud=12_000_000)
        del top
        gc.collect()


def test_link_record_gives_the_serial_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFGATE_BOARD_BUILD", raising=False)
    assert recorded_baud(tmp_path) == (115200, None)
    old = tmp_path / "build" / "board-ulx3s-85f"
    new = tmp_path / "build" / "board-icebreaker"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    p_old = write_link_record(old, "ulx3s-85f", Features(SHAPE, baud=3_000_000))
    p_new = write_link_record(new, "icebreaker", Features(SHAPE, baud=12_000_000))
    os.utime(p_old, (1, 1))  # the older build
    assert recorded_baud(tmp_path) == (12_000_000, str(p_new))
    monkeypatch.setenv("LIFGATE_BOARD_BUILD", str(old))
    assert recorded_baud(tmp_path) == (3_000_000, str(p_old))
    p_old.write_text('{"baud": 12}')
    with pytest.raises(ConfigError, match="cannot read the baud rate"):
        recorded_baud(tmp_path)


def test_docs_protocol_table_names_the_counts_commands():
    text = (Path(__file__).resolve().parents[1] / "docs" / "boards.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| 0x")}
    assert f"0x{Cmd.CLEAR_COUNTS:02x} CLEAR_COUNTS".upper().replace("0X", "0x") in rows
    assert f"0x{Cmd.COUNTS_CLEARED:02X}" in rows["0x31 CLEAR_COUNTS"]
    assert f"0x{Cmd.COUNTS:02X} COUNTS" in rows["0x32 READ_COUNTS"]
    assert f"({VERSION_BYTES} bytes)" in rows["0x01 VERSION"]
    assert "bit 2 COUNTS" in rows["0x30 RUN"]
