"""The run streams EVENTS and PROBES (issue 16, Build 2): protocol model, gateware, host library.

* the ``EVENTS`` code by hand (the distances and skips of the protocol's docstring) and as a
  property (decode(encode(x)) == x), the stream's frames cut as specified;
* the protocol model against the golden model: the events of a run are the spikes of
  :func:`lifgate.golden.fixed.simulate`, the probes its membrane values;
* every bad frame of the new commands and flags: the error the docstring names, and nothing
  changes (the model's snapshot);
* the gateware (:class:`lifgate.boards.link.HostLink` with the stream units) against the model
  byte for byte: in Amaranth's simulator, and as the simulated board top in Verilator and
  Icarus through the host library, where the events run also equals the bitmap run and the
  golden model;
* the host library's checks: nothing is sent for a bad argument.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifgate.boards.host import Board, BoardError, ModelTransport, Transport, open_board
from lifgate.boards.link import HostLink
from lifgate.boards.protocol import (
    BoardModel,
    Cmd,
    ErrorCode,
    Features,
    Frame,
    decode_events,
    encode_events,
    encode_frame,
    parse_version,
    probe_record,
    version_payload,
)
from lifgate.golden.fixed import simulate
from test_boards_link import assert_model_refuses, assert_same_errors, rtl_exchanges

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    NeuronParams,
    NoiseParams,
    pack_params,
)

# 512 neurons: events more than 254 neurons apart need skip bytes; 8 lanes of 64 addresses.
SHAPE = ArrayShape(neurons=512, lanes=8, groups=2, leak_modes=("shift", "const"))
# A 60-byte stream chunk: a run's stream spans several frames and codes straddle them.
FEATURES = Features(SHAPE, max_payload=64, events=True, probes=4)
PARAMS = (NeuronParams(v_th=300, v_reset=-40, v_rest=-10, v_init=-10, leak=4, t_ref=2),
          NeuronParams(v_th=200, v_reset=0, leak_mode="const", leak=1, bias=2,
                       reset_mode="subtract", t_ref=1))


def config(seed=5, gain=0) -> Config:
    return Config(shape=SHAPE, params=PARAMS, noise=NoiseParams(seed=seed, gain=gain))


def currents() -> np.ndarray:
    """Sparse drive: a few neurons fire at different rates, far apart and side by side (so
    distances of 1, of more than 254 and of more than 508 all occur)."""
    cur = np.zeros(SHAPE.neurons, dtype=np.int64)
    for n, i in ((0, 90), (1, 60), (7, 140), (262, 70), (263, 200), (300, 45), (511, 120),
                 (64, 30), (65, 100)):
        cur[n] = i
    return cur


def p32(*values) -> bytes:
    return b"".join(int(v).to_bytes(4, "little") for v in values)


def run_frame(steps: int, flags: int) -> bytes:
    return encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags]))


# The code ---------------------------------------------------------------------------------------


def test_events_code_by_hand():
    """The byte values the protocol's docstring specifies, worked out by hand."""
    N = 1100
    steps = [[], [0], [253], [254], [0, 1], [507], [508], [5, 300, 1099]]
    sp = np.zeros((len(steps), N), dtype=bool)
    for t, ns in enumerate(steps):
        sp[t, ns] = True
    want = bytes([
        0x00,  # an empty step: the marker only
        0x01, 0x00,  # neuron 0: distance 1
        0xFE, 0x00,  # neuron 253: distance 254, one byte
        0xFF, 0x01, 0x00,  # neuron 254: distance 255 = skip 254 + 1
        0x01, 0x01, 0x00,  # neurons 0 and 1
        0xFF, 0xFE, 0x00,  # 507: 254 + 254
        0xFF, 0xFF, 0x01, 0x00,  # 508: 254 + 254 + 1
        0x06, 0xFF, 0x29, 0xFF, 0xFF, 0xFF, 0x25, 0x00,  # 5; 300 = 6 + 254 + 41 - 1;
        # 1099 = 301 + 3 * 254 + 37 - 1
    ])
    assert encode_events(sp) == want
    assert decode_events(want, N) == steps


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 700), st.data())
def test_events_code_round_trip(neurons, data):
    steps = data.draw(st.integers(0, 6))
    sp = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=neurons,
                                              max_size=neurons), min_size=steps,
                                     max_size=steps)), dtype=bool).reshape(steps, neurons)
    code = encode_events(sp)
    assert decode_events(code, neurons) == [list(np.flatnonzero(r)) for r in sp]
    # One marker per step, one byte per event plus the skips.
    assert code.count(0) == steps
    assert len(code) >= steps + int(sp.sum())


def test_decode_events_rejects_damage():
    with pytest.raises(ValueError, match="neuron 10 of 10"):
        decode_events(bytes([0x0B, 0x00]), 10)
    with pytest.raises(ValueError, match="middle of a step"):
        decode_events(bytes([0x01, 0x00, 0x02]), 10)
    with pytest.raises(ValueError, match="middle of a step"):
        decode_events(bytes([0xFF]), 1000)


def test_probe_record():
    assert probe_record([-1, 2, -32768], 2) == bytes([0xFF, 0xFF, 0x02, 0x00, 0x00, 0x80])
    assert probe_record([-3], 3) == bytes([0xFD, 0xFF, 0xFF])


# VERSION and Features ---------------------------------------------------------------------------


@pytest.mark.parametrize("features", [
    Features(SHAPE),
    FEATURES,
    Features(SHAPE, baud=12_000_000, counts=True, events=False, probes=255, max_payload=100),
    Features(SHAPE, membrane=False, noise=False, baud=3_000_000, events=True),
])
def test_version_round_trip(features):
    payload = version_payload(features)
    assert len(payload) == 26 and payload[0] == 2
    assert int.from_bytes(payload[20:24], "little") == features.baud
    assert payload[24] == (features.counts | features.events << 1 | (features.probes > 0) << 2)
    assert payload[25] == features.probes
    assert parse_version(payload) == features


@pytest.mark.parametrize("kwargs, match", [
    ({"probes": 256}, "'probes' must be an integer in \\[0, 255\\]"),
    ({"probes": -1}, "'probes' must be an integer in \\[0, 255\\]"),
    ({"probes": True}, "'probes' must be an integer"),
    ({"probes": 2, "membrane": False}, "'probes' must be 0 on a board built without membrane"),
    ({"events": 1}, "'events' must be a bool"),
    ({"baud": 10}, "'baud' must be an integer in \\[1000, 12000000\\]"),
])
def test_features_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Features(SHAPE, **kwargs)


# The protocol model against the golden model ----------------------------------------------------


def model_exchange(model: BoardModel, data: bytes) -> list:
    (out,) = model.exchange([data])
    frames, k = [], 0
    while k < len(out):
        n = int.from_bytes(out[k + 2:k + 5], "little")
        frames.append(Frame(out[k + 1], out[k + 5:k + 5 + n]))
        k += 7 + n
    return frames


def configured_model(features=FEATURES) -> BoardModel:
    """A model board loaded with :func:`config` and :func:`currents` (through the host)."""
    transport = ModelTransport(features)
    Board(transport).configure(config(), currents=currents())
    return transport.model


def test_model_events_are_the_golden_spikes():
    model = configured_model()
    steps = 40
    frames = model_exchange(model, run_frame(steps, 0x08))
    ref = simulate(config(), steps, currents())
    assert frames[-1] == Frame(Cmd.RUN_DONE, p32(steps))
    body = frames[:-1]
    assert all(f.cmd == Cmd.EVENTS for f in body)
    # Every frame but the last is full; the stream is the code of the golden spikes.
    chunk = FEATURES.max_payload - 4
    assert [len(f.payload) for f in body[:-1]] == [4 + chunk] * (len(body) - 1)
    stream = b"".join(f.payload[4:] for f in body)
    assert stream == encode_events(ref.spikes)
    assert 0 < len(stream) - chunk * (len(body) - 1) <= chunk
    # A frame's label is the step of its first byte.
    for k, f in enumerate(body):
        assert int.from_bytes(f.payload[:4], "little") == stream[:k * chunk].count(0)
    # The run exercises what the code has: events far apart and side by side, quiet steps.
    assert 0xFF in stream and ref.spikes.any(axis=1).sum() < steps
    assert any(np.any(np.diff(np.flatnonzero(r)) == 1) for r in ref.spikes)


def test_model_probes_are_the_golden_membranes():
    model = configured_model()
    probes = [0, 263, 263, 511]
    assert model_exchange(model, encode_frame(Cmd.SET_PROBES, p32(*probes))) == [
        Frame(Cmd.SET_PROBES | 0x80, b"")]
    model_exchange(model, run_frame(3, 0x00))
    frames = model_exchange(model, run_frame(20, 0x10))
    ref = simulate(config(), 23, currents())
    assert all(f.cmd == Cmd.PROBES for f in frames[:-1])
    stream = b"".join(f.payload[4:] for f in frames[:-1])
    want = b"".join(probe_record(row, 2) for row in ref.v[3:, probes])
    assert stream == want
    rec = len(probes) * 2
    chunk = FEATURES.max_payload - 4
    for k, f in enumerate(frames[:-1]):
        assert int.from_bytes(f.payload[:4], "little") == 3 + (k * chunk) // rec
    # No probe set: no PROBES frame, the run still runs.
    model_exchange(model, encode_frame(Cmd.SET_PROBES, b""))
    assert model_exchange(model, run_frame(2, 0x10)) == [Frame(Cmd.RUN_DONE, p32(25))]


def bad_stream_frames(features: Features) -> list:
    """(name, frame, error) of every bad frame of the run streams' commands and flags."""
    N, S = features.shape.neurons, features.probes
    return [
        ("probe neuron N", encode_frame(Cmd.SET_PROBES, p32(1, N)), ErrorCode.RANGE),
        ("probe neuron 2**32 - 1", encode_frame(Cmd.SET_PROBES, p32(0xFFFF_FFFF)),
         ErrorCode.RANGE),
        ("probes out of order", encode_frame(Cmd.SET_PROBES, p32(7, 7, 6)), ErrorCode.RANGE),
        ("probes out of order, 2**32 - 1 first", encode_frame(
            Cmd.SET_PROBES, p32(0xFFFF_FFFF, 1)), ErrorCode.RANGE),
        ("probes not a multiple of 4 bytes", encode_frame(Cmd.SET_PROBES, bytes(6)),
         ErrorCode.LENGTH),
        ("more probes than slots", encode_frame(Cmd.SET_PROBES, p32(*range(S + 1))),
         ErrorCode.LENGTH),
        ("events with spikes", run_frame(2, 0x09), ErrorCode.RANGE),
        ("events with membrane", run_frame(2, 0x0A), ErrorCode.RANGE),
        ("events with probes", run_frame(2, 0x18), ErrorCode.RANGE),
        ("probes with spikes", run_frame(2, 0x11), ErrorCode.RANGE),
        ("probes with membrane", run_frame(2, 0x12), ErrorCode.RANGE),
        ("flag bit 5", run_frame(2, 0x20), ErrorCode.RANGE),
        ("flag bit 7 with events", run_frame(2, 0x88), ErrorCode.RANGE),
    ]


def test_model_bad_frames_change_nothing():
    model = configured_model()
    model_exchange(model, encode_frame(Cmd.SET_PROBES, p32(3, 4)))
    model_exchange(model, run_frame(5, 0x00))
    assert_model_refuses(model, bad_stream_frames(FEATURES))


_SMALL = Features(ArrayShape(neurons=300, lanes=4, groups=1), max_payload=20, events=True,
                  probes=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("probes"), st.lists(st.integers(0, 310), max_size=3),
              st.integers(0, 3)),
    st.tuples(st.just("run"), st.integers(0, 4),
              st.one_of(st.sampled_from([0, 1, 3, 8, 16]), st.integers(0, 255))),
), min_size=1, max_size=8))
def test_model_stream_commands_fuzz(ops):
    """Random SET_PROBES and RUN frames on a model board: a rejected frame changes nothing; an
    accepted run's stream frames are full but the last, labelled, and decode to its steps."""
    model = BoardModel(_SMALL)
    Board(_ModelTransportOf(model)).configure(
        Config(shape=_SMALL.shape, params=(NeuronParams(v_th=40, bias=9, leak=2),),
               noise=NoiseParams(seed=9, gain=3000)))
    for kind, a, b in ops:
        if kind == "probes":
            data = encode_frame(Cmd.SET_PROBES, p32(*a) + bytes(b))
        else:
            data = run_frame(a, b)
        snap = model.snapshot()
        frames = model_exchange(model, data)
        if frames[-1].cmd == Cmd.ERR:
            assert len(frames) == 1 and model.snapshot() == snap
            continue
        if kind == "run" and b in (0x08, 0x10):
            body = [f.payload for f in frames[:-1]]
            assert all(len(x) == 20 for x in body[:-1]) and all(len(x) > 4 for x in body)
            stream = b"".join(x[4:] for x in body)
            if b == 0x08:
                assert len(decode_events(stream, 300)) == a
            else:
                assert len(stream) == a * 2 * len(model.probes)


class _ModelTransportOf(ModelTransport):
    """The transport of an existing model board."""

    def __init__(self, model: BoardModel):
        self.model = model


@pytest.mark.parametrize("features, data, code", [
    (Features(SHAPE, probes=4), run_frame(1, 0x08), ErrorCode.RANGE),
    (Features(SHAPE, events=True), run_frame(1, 0x10), ErrorCode.RANGE),
    (Features(SHAPE, events=True), encode_frame(Cmd.SET_PROBES, p32(1)), ErrorCode.UNKNOWN),
])
def test_model_modes_not_built(features, data, code):
    model = BoardModel(features)
    snap = model.snapshot()
    assert model_exchange(model, data) == [Frame(Cmd.ERR, bytes([code, data[1]]))]
    assert model.snapshot() == snap


# The host library -------------------------------------------------------------------------------


class Recording(Transport):
    def __init__(self, inner):
        self.inner, self.sent = inner, bytearray()

    def write(self, data):
        self.sent += data
        self.inner.write(data)

    def read(self, timeout):
        return self.inner.read(timeout)


@pytest.mark.parametrize("call, match", [
    (lambda b: b.run(3, events=True, probes=True), "'events' and 'probes' must not both"),
    (lambda b: b.run(3, events=True, membrane=True), "'membrane' must be False"),
    (lambda b: b.run(3, events=1), "'events' must be"),
    (lambda b: b.run(3, probes="yes"), "'probes' must be"),
    (lambda b: b.set_probes([0, 512]), "'neurons' must lie in \\[0, 511\\]"),
    (lambda b: b.set_probes([1, 2, 3, 4, 5]), "'neurons'"),
    (lambda b: b.set_probes([1.5]), "'neurons'"),
    (lambda b: b.set_probes(3), "'neurons'"),
])
def test_host_refuses_before_sending(call, match):
    rec = Recording(ModelTransport(FEATURES))
    board = Board(rec)
    sent = len(rec.sent)
    with pytest.raises(ConfigError, match=match):
        call(board)
    assert len(rec.sent) == sent


def test_host_modes_not_built():
    board = open_board("model", features=Features(SHAPE))
    with pytest.raises(ConfigError, match="without the EVENTS run mode"):
        board.run(2, events=True)
    with pytest.raises(ConfigError, match="without probes"):
        board.run(2, probes=True)
    with pytest.raises(ConfigError, match="without probes"):
        board.set_probes([1])


def experiment(board: Board, steps: int = 30) -> dict:
    """The same experiment on any backend: an events run, the same run as a bitmap, a probes
    run, from the same state each (cleared between them)."""
    board.configure(config(), currents=currents())
    out = {"events": board.run(steps, events=True)}
    board.clear()
    out["bitmap"] = board.run(steps)
    board.clear()
    board.set_probes([263, 0, 511, 263])
    board.run(2)
    out["probes"] = board.run(steps - 2, probes=True)
    return out


def check_experiment(out: dict, steps: int = 30) -> None:
    ref = simulate(config(), steps, currents())
    ev, bm, pr = out["events"], out["bitmap"], out["probes"]
    assert np.array_equal(ev.spikes, ref.spikes)
    assert np.array_equal(ev.spikes, bm.spikes)
    t, n = np.nonzero(ref.spikes)
    assert ev.events.tolist() == np.stack([t, n], axis=1).tolist()
    assert ev.labels.tolist() == list(range(steps)) and ev.step == steps
    assert bm.v is None and np.array_equal(bm.spikes, ref.spikes)
    assert np.array_equal(pr.probes, ref.v[2:, [263, 0, 511, 263]])
    assert pr.labels.tolist() == list(range(2, steps)) and pr.spikes is None
    assert ref.spikes.sum() > 10


def test_model_backend_experiment():
    with open_board("model", features=FEATURES) as board:
        check_experiment(experiment(board))


def run_bad_frames(board: Board, model: Board) -> None:
    """Every bad frame of the new commands: the model's error reply, nothing changes (the
    probes and the array state: a probes run and an events run afterwards equal the model's).
    ``board`` has run :func:`experiment` (so it holds the configuration already)."""
    model.configure(config(), currents=currents())
    for b in (board, model):
        b.clear()
        b.set_probes([5, 300])
        b.run(4)
    assert_same_errors(board, model, bad_stream_frames(board.features))
    for b in (board, model):
        b.status()
    r1, r2 = board.run(6, probes=True), model.run(6, probes=True)
    assert r1.probes.shape == (6, 2) and np.array_equal(r1.probes, r2.probes)
    e1, e2 = board.run(8, events=True), model.run(8, events=True)
    assert np.array_equal(e1.events, e2.events) and e1.step == e2.step == 18
    with pytest.raises(BoardError, match="RANGE"):
        board.request(Cmd.SET_PROBES, p32(SHAPE.neurons))


def test_model_backend_bad_frames():
    board = open_board("model", features=FEATURES)
    board.configure(config(), currents=currents())
    run_bad_frames(board, open_board("model", features=FEATURES))


# Gateware ---------------------------------------------------------------------------------------


def test_link_matches_model_amaranth():
    """HostLink with the stream units in Amaranth's simulator, byte for byte against the model:
    the frames of every exchange, good and bad (a 24-byte frame buffer: 20-byte chunks)."""
    shape = ArrayShape(neurons=512, lanes=8, groups=1)
    feats = Features(shape, max_payload=24, events=True, probes=4)
    word = pack_params(shape, NeuronParams(v_th=150, bias=2, leak=3, t_ref=1))

    def cur(start, *values):
        return encode_frame(Cmd.WRITE_CURRENTS, p32(start) + b"".join(
            int(x).to_bytes(2, "little", signed=True) for x in values))

    # Neurons 0, 1, 7, 262, 263, 511 driven: distances of 1, of more than 254 and 508.
    exchanges = [
        b"",  # the board's power-up clear of 64 addresses (a frame now would overrun)
        encode_frame(Cmd.SET_PARAMS, p32(0) + word.to_bytes(feats.param_bytes, "little")),
        cur(0, 90, 60, 0, 0, 0, 0, 0, 140), cur(262, 70, 200), cur(511, 120),
        encode_frame(Cmd.SET_INPUT, b"\x01"),
        encode_frame(Cmd.CLEAR),
        encode_frame(Cmd.VERSION),
        run_frame(6, 0x08),
        encode_frame(Cmd.SET_PROBES, p32(263, 0, 511)),  # out of order
        # Neuron 0 is in a step's first beat, which arrives while the record of the step
        # before (8 bytes) is still going out.
        encode_frame(Cmd.SET_PROBES, p32(0, 263, 263, 511)),
        run_frame(5, 0x10),
        run_frame(1, 0x01),
        run_frame(0, 0x08),
        encode_frame(Cmd.SET_PROBES, p32(512)),
        encode_frame(Cmd.SET_PROBES, bytes(16)),
        encode_frame(Cmd.SET_PROBES, bytes(3)),
        run_frame(1, 0x18),
        run_frame(1, 0x09),
        run_frame(1, 0x30),
        run_frame(12, 0x10),  # 96 bytes: the FIFO (32) fills, records wait for the line
        encode_frame(Cmd.SET_PROBES, b""),
        run_frame(2, 0x10),
        run_frame(12, 0x08),
    ]
    model = BoardModel(feats)
    expected = model.exchange(exchanges)
    # The streams span frames, and the events include skips.
    events = [e for e in expected if bytes([0xA5, Cmd.EVENTS]) in e]
    assert sum(e.count(bytes([0xA5, Cmd.EVENTS])) for e in events) >= 4
    assert any(b"\xff" in e[9:] for e in events)
    link = HostLink(feats, divisor=4, timeout=300)
    got = rtl_exchanges(link, exchanges, [len(e) for e in expected], divisor=4)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (k, exchanges[k].hex(), g.hex(), e.hex())


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_board_streams(sim, tmp_path):
    """The board top with EVENTS and PROBES in a simulator through the host library: the
    experiment equals the golden model and the bitmap mode, every bad frame gives the model's
    reply and changes nothing."""
    board = open_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path, timeout=2000,
                       divisor=4)
    try:
        assert board.features == FEATURES
        steps = 30 if sim == "verilator" else 12
        check_experiment(experiment(board, steps), steps)
        run_bad_frames(board, open_board("model", features=FEATURES))
    finally:
        board.close()


# The workload and the docs ----------------------------------------------------------------------


def _bench_events():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_events.py"
    spec = importlib.util.spec_from_file_location("lifgate_bench_events", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_events_workload_bytes():
    """events_workload's bytes are the code of the golden spikes plus the framing, and its
    currents put the neurons on the rate curve between 20 and 140 Hz."""
    bench = _bench_events()
    steps, neurons = 600, 512
    res = bench.events_workload(neurons=neurons, steps=steps)
    cfg, cur = bench.workload_config(neurons, 8)
    ref = simulate(cfg, steps, cur)
    code = encode_events(ref.spikes)
    frames = -(-len(code) // 508)
    assert res["bytes_out"] == len(code) + 11 * frames + 11  # + RUN_DONE
    assert res["events"] == int(ref.spikes.sum())
    assert res["bytes_in"] == 12 and res["cycles_source"] == "bound"
    assert res["cycles"] == max(steps * 64, res["bytes_out"] * 40) + 12 * 40
    # 60 ms: every neuron fires (the slowest, 20 Hz, once), the fastest about 7 times as often
    # as the slowest (140 / 20 Hz).
    counts = ref.spikes.sum(axis=0)
    assert counts.min() >= 1 and counts[-8:].mean() > 4 * counts[:8].mean()


def test_docs_protocol_table():
    """docs/boards.md's protocol table names every command of a board built with everything,
    and the VERSION reply's length."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "boards.md").read_text()
    feats = Features(SHAPE, counts=True, events=True, probes=2)
    for cmd in BoardModel(feats).commands():
        assert f"| 0x{cmd.code:02X} {Cmd(cmd.code).name} |" in text, Cmd(cmd.code).name
    assert f"({len(version_payload(feats))} bytes) |" in text
    for reply in (Cmd.EVENTS, Cmd.PROBES):
        assert f"0x{reply:02X} {reply.name}" in text
