"""A network board over the host link (issue 8): weights loadable at run time.

The protocol model (:class:`lifgate.boards.netproto.NetworkBoardModel`) against the golden
model (:func:`lifgate.golden.synapse.simulate_network`), and the gateware
(:class:`lifgate.boards.netlink.NetworkLink` with the real ``Network``, simulated top
``board_top`` driven on its UART pins by cocotbext-uart) against the protocol model, byte for
byte, for a scripted session: load the weights, read them back, set the parameters and inputs,
run with every flag combination, bad frames rejected with the state unchanged, an overrun; and
at the end a run compared with ``simulate_network`` directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifgate.boards.host import Board, BoardError
from lifgate.boards.nethost import NetModelTransport, NetworkBoard, open_network_board
from lifgate.boards.netproto import (
    NetCmd,
    NetFeatures,
    NetworkBoardModel,
    default_param_word,
    net_version_payload,
    parse_net_version,
)
from lifgate.boards.protocol import (
    MAX_LEN,
    VERSION_BYTES,
    Cmd,
    ErrorCode,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lifgate.golden.synapse import Layer, Network, simulate_network

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    pack_params,
    param_layout,
)

DIVISOR = 4  # UART clocks per bit in the simulations
LINK_TIMEOUT = 160  # clocks: four byte times
_COMMON = dict(v_width=12, ref_width=3, decay_frac=8, step_width=8)


def small_net(seed: int = 1, *, w_width: int = 10) -> Network:
    """An 8-6-4 network: 2-bit inputs, 10-bit weights (two bytes each on the link), a
    2-lane layer with two leak modes and a 1-lane CONST layer with a group per neuron."""
    rng = np.random.default_rng(seed)
    s0 = ArrayShape(neurons=6, lanes=2, groups=2, i_width=10, leak_modes=("shift", "const"),
                    **_COMMON)
    s1 = ArrayShape(neurons=4, lanes=1, groups=4, i_width=12, leak_modes=("const",), **_COMMON)
    p0 = (NeuronParams(v_th=60 + seed, v_reset=0, leak=3, t_ref=1),
          NeuronParams(v_th=40, v_reset=-5, leak_mode="const", leak=1, reset_mode="subtract"))
    p1 = tuple(NeuronParams(v_th=20 + 5 * g, v_init=g, leak_mode="const", leak=-1 + g % 2,
                            reset_mode="subtract") for g in range(4))
    hi = (1 << (w_width - 1)) - 1
    w0 = rng.integers(-hi // 16, hi // 4, size=(6, 8))
    w1 = rng.integers(-hi // 8, hi // 2, size=(4, 6))
    w0[0, :2] = [hi, -hi - 1]  # the extremes of the weight range travel too
    return Network((Layer(w0, Config(shape=s0, params=p0)), Layer(w1, Config(shape=s1, params=p1))),
                   w_width=w_width, x_width=2)


NET = small_net()
FEATURES = NetFeatures.for_network(NET, max_payload=48)
X = np.array([0, 1, 2, 3, 3, 2, 1, 0])


def _u(v: int, n: int) -> bytes:
    return int(v).to_bytes(n, "little")


def _w(values, wb: int = 2) -> bytes:
    return b"".join((int(v) & ((1 << (8 * wb)) - 1)).to_bytes(wb, "little") for v in values)


def weight_frames(net: Network, f: NetFeatures, per: int) -> list:
    """WRITE_WEIGHTS frames loading every weight, ``per`` weights a frame, row-major runs that
    start anywhere in a row."""
    out = []
    for n, layer in enumerate(net.layers):
        flat = layer.weights.reshape(-1)
        fan = f.fan_in[n]
        for k in range(0, flat.size, per):
            out.append(encode_frame(NetCmd.WRITE_WEIGHTS, bytes([n]) + _u(k // fan, 4)
                                    + _u(k % fan, 4) + _w(flat[k:k + per], f.weight_bytes)))
    return out


def read_frame(layer: int, neuron: int, inp: int, count: int) -> bytes:
    return encode_frame(NetCmd.READ_WEIGHTS, bytes([layer]) + _u(neuron, 4) + _u(inp, 4)
                        + _u(count, 2))


def params_frame(f: NetFeatures, layer: int, group: int, word: int) -> bytes:
    return encode_frame(NetCmd.SET_PARAMS, bytes([layer]) + _u(group, 4)
                        + _u(word, f.param_bytes))


def run_frame(steps: int, flags: int) -> bytes:
    return encode_frame(NetCmd.RUN, _u(steps, 4) + bytes([flags]))


def bad_frames(f: NetFeatures) -> list:
    """(name, bytes, error code) of every kind of bad input for the features of ``NET``."""
    s0 = f.shapes[0]
    good = params_frame(f, 0, 0, pack_params(s0, NeuronParams()))
    crc = bytearray(good)
    crc[-1] ^= 0x10
    offs, o = {}, 0
    for name, width in param_layout(s0):
        offs[name] = o
        o += width
    mult = default_param_word(s0) & ~(3 << offs["leak_mode"]) | (int(LeakMode.MULT)
                                                                 << offs["leak_mode"])
    shift_far = (int(LeakMode.SHIFT) << offs["leak_mode"]) | ((s0.v_width + 1) << offs["leak"])
    pad = 1 << (8 * f.param_bytes - 1)
    wr = lambda layer, j, i, vals: encode_frame(  # noqa: E731
        NetCmd.WRITE_WEIGHTS, bytes([layer]) + _u(j, 4) + _u(i, 4) + _w(vals))
    lo, hi = -(1 << (f.w_width - 1)), (1 << (f.w_width - 1)) - 1
    R, L, U = ErrorCode.RANGE, ErrorCode.LENGTH, ErrorCode.UNKNOWN
    return [
        ("bad crc", bytes(crc), ErrorCode.CRC),
        ("truncated", good[:8], ErrorCode.TIMEOUT),
        ("array SET_PARAMS", encode_frame(0x10, bytes(4 + f.param_bytes)), U),
        ("array WRITE_CURRENTS", encode_frame(0x20, bytes(6)), U),
        ("unknown", encode_frame(0x42), U),
        ("frame too long", encode_frame(NetCmd.WRITE_X, bytes(f.max_payload + 2)), L),
        ("status with payload", encode_frame(NetCmd.STATUS, b"\x00"), L),
        ("params short", encode_frame(NetCmd.SET_PARAMS, bytes(4 + f.param_bytes)), L),
        ("weights header short", encode_frame(NetCmd.WRITE_WEIGHTS, bytes(8)), L),
        ("half a weight", encode_frame(NetCmd.WRITE_WEIGHTS, bytes(9) + b"\x01\x00\x01"), L),
        ("read short", encode_frame(NetCmd.READ_WEIGHTS, bytes(10)), L),
        ("run short", encode_frame(NetCmd.RUN, bytes(4)), L),
        ("params layer", params_frame(f, 2, 0, 0), R),
        ("params group", params_frame(f, 0, 2, default_param_word(s0)), R),
        ("params group layer 1", params_frame(f, 1, 4, default_param_word(f.shapes[1])), R),
        ("leak mode not built", params_frame(f, 0, 1, mult), R),
        ("shift leak > W", params_frame(f, 0, 1, shift_far), R),
        ("shift in a const layer", params_frame(f, 1, 0, 0), R),
        ("pad bit", params_frame(f, 0, 0, default_param_word(s0) | pad), R),
        ("x value", encode_frame(NetCmd.WRITE_X, _u(0, 4) + bytes([1, 4])), R),
        ("x past the end", encode_frame(NetCmd.WRITE_X, _u(6, 4) + bytes([1, 1, 1])), R),
        ("x start 9", encode_frame(NetCmd.WRITE_X, _u(9, 4)), R),
        ("x start huge", encode_frame(NetCmd.WRITE_X, _u(1 << 22, 4) + b"\x01"), R),
        ("weight too big", wr(0, 1, 1, [3, hi + 1]), R),
        ("weight too small", wr(0, 1, 1, [lo - 1, 3]), R),
        ("weight 0x8000", encode_frame(NetCmd.WRITE_WEIGHTS, bytes(9) + b"\x00\x80"), R),
        ("weights layer", wr(2, 0, 0, [1]), R),
        ("weights neuron", wr(0, 6, 0, [1]), R),
        ("weights neuron huge", wr(1, (1 << 32) - 1, 0, [1]), R),
        ("weights input", wr(0, 0, 8, [1]), R),
        ("weights input, none", wr(1, 0, 6, []), R),
        ("weights past the end", wr(1, 3, 5, [1, 1]), R),
        ("read past the end", read_frame(0, 5, 7, 2), R),
        ("read layer", read_frame(3, 0, 0, 1), R),
        ("read neuron, none", read_frame(1, 4, 0, 0), R),
        ("read input", read_frame(1, 0, 6, 1), R),
        ("run flags", run_frame(2, 8), R),
    ]


class Session:
    """Exchanges with a board, each compared with the protocol model's replies."""

    def __init__(self, board: NetworkBoard, features: NetFeatures):
        self.board = board
        self.model = NetworkBoardModel(features)
        self.replies = 0

    def model_replies(self, data: bytes) -> list:
        (out,) = self.model.exchange([data])
        return FrameDecoder(MAX_LEN).decode(out)

    def __call__(self, data: bytes, name: str = "") -> list:
        want = self.model_replies(data)
        self.board.send(data)
        got = [self.board.receive() for _ in want]
        assert got == want, name
        self.replies += len(got)
        return got


def scripted_session(board: NetworkBoard, net: Network = NET, steps=(5, 3, 4, 2)):
    """The scripted session; returns the session's model (for further checks)."""
    f = board.features
    ex = Session(board, f)
    assert ex(encode_frame(NetCmd.VERSION))[0].payload == net_version_payload(f)
    ex(encode_frame(NetCmd.STATUS))
    # Load every weight, read them back in other runs (and an empty run).
    for frame in weight_frames(net, f, (f.max_payload - 9) // f.weight_bytes):
        assert ex(frame, "load") == [Frame(NetCmd.WRITE_WEIGHTS | 0x80, b"")]
    for n, layer in enumerate(net.layers):
        fan, flat = f.fan_in[n], layer.weights.reshape(-1)
        for k in range(0, flat.size, 7):
            cnt = min(7, flat.size - k)
            (rep,) = ex(read_frame(n, k // fan, k % fan, cnt), "read back")
            got = [int.from_bytes(rep.payload[q:q + 2], "little", signed=True)
                   for q in range(0, 2 * cnt, 2)]
            assert got == flat[k:k + cnt].tolist()
    assert ex(read_frame(1, 3, 5, 0))[0].payload == b""
    for n, layer in enumerate(net.layers):
        for g, p in enumerate(layer.config.params):
            ex(params_frame(f, n, g, pack_params(f.shapes[n], p)), "params")
    ex(encode_frame(NetCmd.WRITE_X, _u(0, 4) + bytes(X[:5].tolist())), "x")
    ex(encode_frame(NetCmd.WRITE_X, _u(5, 4) + bytes(X[5:].tolist())), "x")
    ex(encode_frame(NetCmd.WRITE_X, _u(8, 4)), "x at the end, none")
    ex(encode_frame(NetCmd.CLEAR))
    for t, flags in zip(steps, (1, 3, 7, 0), strict=True):
        got = ex(run_frame(t, flags), f"run {flags}")
        assert got[-1].cmd == NetCmd.RUN_DONE
    ex(run_frame(0, 3), "run 0")
    ex(encode_frame(NetCmd.STATUS))
    # Bad frames: the model's error, and nothing changes (on the model: its snapshot; on the
    # board: the state read back below, and the final run).
    snap = ex.model.snapshot()
    for name, data, code in bad_frames(f):
        got = ex(data, name)
        assert got == [Frame(NetCmd.ERR, bytes([code, got[0].payload[1]]))], name
        assert ex.model.snapshot() == snap, name
    # An overrun: a frame sent while a run sends its results is dropped and reported.
    got = ex(run_frame(3, 1) + encode_frame(NetCmd.WRITE_X, _u(0, 4) + b"\x03"), "overrun")
    assert [r.cmd for r in got] == [NetCmd.STEP] * 3 + [NetCmd.RUN_DONE, NetCmd.ERR]
    assert got[-1].payload == bytes([ErrorCode.OVERRUN, 0])
    assert ex(encode_frame(NetCmd.STATUS))[0].payload == _u(sum(steps) + 3, 4)
    # The state after all that, through the host API: the weights, and a run from a clear
    # equal to the golden model directly.
    for n, layer in enumerate(net.layers):
        assert np.array_equal(board.read_weights(n), layer.weights)
    res = board.infer(X, 9, membrane=True, all_layers=True)
    ref = simulate_network(net, 9, X)
    for n in range(len(net.layers)):
        assert np.array_equal(res.spikes[n], ref.spikes[n]), n
        assert np.array_equal(res.v[n], ref.v[n]), n
    assert res.labels.tolist() == list(range(9)) and res.step == 9
    # The run does something, but not everything.
    for s in ref.spikes:
        assert 0 < s.sum() < s.size
    return ex


# Protocol model -------------------------------------------------------------------------------


def test_version_round_trip():
    assert parse_net_version(net_version_payload(FEATURES)) == FEATURES
    assert len(net_version_payload(FEATURES)) != VERSION_BYTES  # never an array board's
    with pytest.raises(ConfigError, match="network board"):
        Board(NetModelTransport(FEATURES))  # the array board's host refuses it clearly


def test_features_checks():
    s = FEATURES.shapes
    with pytest.raises(ConfigError, match="power of two"):
        NetFeatures((ArrayShape(neurons=6, lanes=3, groups=1),), 4)
    with pytest.raises(ConfigError, match="parameter word format"):
        NetFeatures((s[0], ArrayShape(neurons=4, lanes=1, groups=1)), 8)
    with pytest.raises(ConfigError, match="'w_width'"):
        NetFeatures(s, 8, w_width=19)
    with pytest.raises(ConfigError, match="'max_payload'"):
        NetFeatures(s, 8, max_payload=15)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_model_backend_matches_golden(seed):
    """Networks loaded through the host API on the model: runs equal simulate_network, also
    when continued, and the weights read back."""
    net = small_net(seed, w_width=7 + seed)
    f = NetFeatures.for_network(net, max_payload=32 + 8 * seed)
    board = open_network_board("model", features=f)
    board.load(net)
    for n, layer in enumerate(net.layers):
        assert np.array_equal(board.read_weights(n), layer.weights)
    x = np.random.default_rng(seed).integers(0, 4, size=8)
    board.write_x(x)
    a = board.run(7, membrane=True, all_layers=True)
    b = board.run(5, membrane=True)
    ref = simulate_network(net, 12, x)
    for n in range(2):
        assert np.array_equal(a.spikes[n], ref.spikes[n][:7])
        assert np.array_equal(a.v[n], ref.v[n][:7])
    assert b.spikes[0] is None and np.array_equal(b.spikes[1], ref.spikes[1][7:])
    assert np.array_equal(b.v[1], ref.v[1][7:])
    assert b.labels.tolist() == list(range(7, 12)) and board.status() == 12
    assert 0 < ref.spikes[1].sum() < ref.spikes[1].size


def test_model_scripted_session():
    """The session's expectations hold on the model itself (so they are the protocol's)."""
    scripted_session(open_network_board("model", features=FEATURES))


def test_model_reset_state():
    m = NetworkBoardModel(FEATURES)
    for layer, s in enumerate(FEATURES.shapes):
        for p in m.params[layer]:
            assert pack_params(s, p) == default_param_word(s)
    assert m.x == [0] * 8 and all(not w.any() for w in m.weights)


def test_host_api_errors():
    board = open_network_board("model", features=FEATURES)
    with pytest.raises(ConfigError, match="'weights' must have shape"):
        board.write_weights(0, np.zeros((4, 8)))
    with pytest.raises(ConfigError, match="'weights' must lie"):
        board.write_weights(1, np.full((4, 6), 512))
    with pytest.raises(ConfigError, match="'layer'"):
        board.read_weights(2)
    with pytest.raises(ConfigError, match="'x' must lie"):
        board.write_x(np.full(8, 4))
    with pytest.raises(ConfigError, match="does not fit"):
        board.load(small_net(1, w_width=8))
    with pytest.raises(BoardError, match="UNKNOWN"):
        board.request(Cmd.SET_NOISE, (1).to_bytes(4, "little") + (2).to_bytes(2, "little"))
    with pytest.raises(ConfigError, match="NetFeatures"):
        open_network_board("sim:verilator", features=None)


# Simulated network board ----------------------------------------------------------------------


@pytest.mark.parametrize("sim", [pytest.param("verilator", marks=pytest.mark.verilator),
                                 pytest.param("icarus", marks=pytest.mark.icarus)])
def test_sim_network_board(sim, tmp_path):
    """The gateware replies like the model, byte for byte, for the scripted session, and its
    final run equals the golden model. (One test per simulator: one build each.)"""
    board = open_network_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path,
                               divisor=DIVISOR, link_timeout=LINK_TIMEOUT, timeout=120,
                               optimize=False)
    try:
        assert board.features == FEATURES
        ex = scripted_session(board)
        assert ex.replies > 80
    finally:
        board.close()


def test_cli_digits_over_model_board(capsys):
    """``lifgate digits --board model``: the converted network loaded over the link (model
    backend), all 450 held-out digits, the same accuracy and outputs as the golden model."""
    pytest.importorskip("sklearn")
    import json

    from lifgate.app.cli import main

    assert main(["digits", "--samples", "0", "--steps", "16", "--board", "model", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["board_samples"] == rep["test"] == 450
    assert rep["board_weights_read_back"] and rep["board_bit_exact"]
    assert rep["board_accuracy"] == rep["snn_accuracy_on_board_samples"] == rep["snn_accuracy"]
    assert rep["board_accuracy"] > 0.9
    assert main(["digits", "--samples", "0", "--board", "model", "--limit", "0"]) == 2


def variant_net() -> Network:
    """8-4-4-2 with 9-bit inputs (two bytes each on the link), 8-bit weights (one byte),
    lanes 4, 2, 1."""
    rng = np.random.default_rng(7)
    shapes = [ArrayShape(neurons=n, lanes=p, groups=1, i_width=14, leak_modes=("const",),
                         **_COMMON) for n, p in ((4, 4), (4, 2), (2, 1))]
    fan = (8, 4, 4)
    params = NeuronParams(v_th=50, leak_mode="const", leak=0, reset_mode="subtract")
    layers = [Layer(rng.integers(-20, 60, size=(s.neurons, k)) // (40 if n == 0 else 1),
                    Config(shape=s, params=params))
              for n, (s, k) in enumerate(zip(shapes, fan, strict=True))]
    return Network(tuple(layers), w_width=8, x_width=9)


@pytest.mark.parametrize("sim", [pytest.param("verilator", marks=pytest.mark.verilator),
                                 pytest.param("icarus", marks=pytest.mark.icarus)])
def test_sim_network_board_variant(sim, tmp_path):
    """Other widths on Icarus and Verilator: two-byte inputs, one-byte weights, three layers,
    no membrane readback (the membrane flag is rejected); layer 0's current cache in four
    SPRAMs (56-bit beats, Yosys' model of SB_SPRAM256KA) as on the UP5K board; replies
    byte-equal to the model."""
    net = variant_net()
    f = NetFeatures.for_network(net, membrane=False, max_payload=24)
    board = open_network_board(f"sim:{sim}", features=f, build_dir=tmp_path, divisor=DIVISOR,
                               link_timeout=LINK_TIMEOUT, timeout=120, cache_ram="spram",
                               optimize=False)
    try:
        ex = Session(board, f)
        for frame in weight_frames(net, f, 5):
            ex(frame, "load")
        for n, layer in enumerate(net.layers):
            ex(read_frame(n, 0, 1, f.shapes[n].neurons * f.fan_in[n] - 1), "read back")
            ex(params_frame(f, n, 0, pack_params(f.shapes[n], layer.config.params[0])))
        x = np.array([0, 300, 511, 17, 256, 1, 0, 400])
        ex(encode_frame(NetCmd.WRITE_X, _u(0, 4) + b"".join(_u(v, 2) for v in x[:6])), "x")
        ex(encode_frame(NetCmd.WRITE_X, _u(6, 4) + b"".join(_u(v, 2) for v in x[6:])), "x")
        for name, data, code in [
            ("x value", encode_frame(NetCmd.WRITE_X, _u(2, 4) + _u(512, 2)), ErrorCode.RANGE),
            ("half an x", encode_frame(NetCmd.WRITE_X, _u(2, 4) + b"\x01"), ErrorCode.LENGTH),
            ("membrane flag", run_frame(2, 2), ErrorCode.RANGE),
            ("weights layer 3", encode_frame(NetCmd.WRITE_WEIGHTS, b"\x03" + bytes(9)),
             ErrorCode.RANGE),
        ]:
            assert ex(data, name) == [Frame(NetCmd.ERR, bytes([code, data[1]]))], name
        ex(encode_frame(NetCmd.CLEAR))
        got = ex(run_frame(6, 5), "run, spikes of all layers")
        assert len(got) == 6 * 3 + 1
        assert "SB_SPRAM256KA" in (tmp_path / "board_top.v").read_text()
        ref = simulate_network(net, 6, x)
        for n in range(3):
            assert 0 < ref.spikes[n].sum() < ref.spikes[n].size
            bits = [np.unpackbits(np.frombuffer(r.payload[5:], np.uint8), bitorder="little")
                    [:f.shapes[n].neurons] for r in got[n:-1:3]]
            assert np.array_equal(np.array(bits, dtype=bool), ref.spikes[n]), n
    finally:
        board.close()
