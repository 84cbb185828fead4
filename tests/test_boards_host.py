"""The host library on its three backends: golden model, simulated board top, (serial: no board).

The simulated board top is the gateware (``HostLink`` with the real ``LIFArray``) in Verilator
and Icarus, its UART pins driven by cocotbext-uart. Every experiment is compared with the
golden model (``lifgate.golden.fixed.simulate``) and every reply with the protocol model.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifgate.boards.host import Board, BoardError, ModelTransport, open_board
from lifgate.boards.protocol import (
    Cmd,
    ErrorCode,
    Features,
    Frame,
    encode_frame,
)
from lifgate.golden.fixed import simulate
from test_boards_link import assert_model_refuses, assert_same_errors

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    NeuronParams,
    NoiseParams,
    pack_params,
    param_layout,
)

SHAPE = ArrayShape(neurons=16, lanes=4, groups=2, leak_modes=("shift", "const"))
FEATURES = Features(SHAPE, max_payload=64)


def rate_config():
    """A slice of a firing-rate curve: one current per neuron, two parameter groups."""
    params = (
        NeuronParams(v_th=400, v_reset=-50, v_rest=-20, v_init=-20, leak=4, t_ref=2),
        NeuronParams(v_th=300, v_reset=0, v_init=10, bias=3, leak_mode="const", leak=1,
                     reset_mode="subtract", t_ref=1),
    )
    currents = np.arange(16) * 9 - 20
    return Config(shape=SHAPE, params=params, noise=NoiseParams(seed=7, gain=0)), currents


def noise_config():
    """A white-noise run: no input, the on-chip noise drives the membranes."""
    params = (NeuronParams(v_th=120, v_reset=0, leak=3, bias=5),
              NeuronParams(v_th=90, v_reset=-30, v_rest=-10, leak=2, t_ref=3))
    return Config(shape=SHAPE, params=params, noise=NoiseParams(seed=0x1234_5678, gain=2000))


def experiment(board: Board, steps_rate=40, steps_noise=30):
    """The same experiment on any backend: returns the results of both runs."""
    cfg, cur = rate_config()
    board.configure(cfg, currents=cur)
    rate = board.run(steps_rate, membrane=True)
    cfg2 = noise_config()
    board.configure(cfg2)
    noise = board.run(steps_noise)
    return rate, noise


def check_against_golden(rate, noise, steps_rate=40, steps_noise=30):
    cfg, cur = rate_config()
    ref = simulate(cfg, steps_rate, cur)
    assert np.array_equal(rate.spikes, ref.spikes)
    assert np.array_equal(rate.v, ref.v)
    assert rate.labels.tolist() == list(range(steps_rate))
    assert rate.step == steps_rate
    ref2 = simulate(noise_config(), steps_noise)
    assert np.array_equal(noise.spikes, ref2.spikes)
    # The experiment must exercise something.
    assert 0 < ref.spikes.sum() < ref.spikes.size
    assert 0 < ref2.spikes.sum() < ref2.spikes.size


def bad_frames(features: Features):
    """(name, bytes, expected error) for every kind of bad input."""
    shape = features.shape
    word = pack_params(shape, NeuronParams()).to_bytes(features.param_bytes, "little")
    good_params = encode_frame(Cmd.SET_PARAMS, (0).to_bytes(4, "little") + word)
    bad_crc = bytearray(good_params)
    bad_crc[-1] ^= 0x40
    # A parameter word with a leak mode the array does not build (MULT).
    off = sum(w for n, w in param_layout(shape) if n not in ("leak_mode", "reset_mode"))
    w_mult = pack_params(shape, NeuronParams()) & ~(3 << off) | (1 << off)
    cur = b"".join(x.to_bytes(2, "little", signed=True) for x in (1, 2, 3))
    return [
        ("bad crc", bytes(bad_crc), ErrorCode.CRC),
        ("truncated", good_params[:9], ErrorCode.TIMEOUT),
        ("unknown command", encode_frame(0x42, b"\x00"), ErrorCode.UNKNOWN),
        ("group out of range", encode_frame(Cmd.SET_PARAMS, (2).to_bytes(4, "little") + word),
         ErrorCode.RANGE),
        ("leak mode not built", encode_frame(
            Cmd.SET_PARAMS, (0).to_bytes(4, "little")
            + w_mult.to_bytes(features.param_bytes, "little")), ErrorCode.RANGE),
        ("input enable 2", encode_frame(Cmd.SET_INPUT, b"\x02"), ErrorCode.RANGE),
        ("currents past the end", encode_frame(
            Cmd.WRITE_CURRENTS, (14).to_bytes(4, "little") + cur), ErrorCode.RANGE),
        ("run flags", encode_frame(Cmd.RUN, (3).to_bytes(4, "little") + b"\x08"),
         ErrorCode.RANGE),
        ("wrong length", encode_frame(Cmd.SET_NOISE, b"\x01\x02\x03"), ErrorCode.LENGTH),
        ("frame too long", encode_frame(Cmd.WRITE_CURRENTS, bytes(features.max_payload + 2)),
         ErrorCode.LENGTH),
    ]


def replies_of(board: Board, data: bytes, count: int) -> list:
    board.send(data)
    return [board.receive() for _ in range(count)]


def run_bad_inputs(board: Board, model: Board):
    """Every bad input: the same error reply as the model, and nothing changes."""
    cfg, cur = rate_config()
    for b in (board, model):
        b.configure(cfg, currents=cur)
        b.run(5)
    before = board.status()
    snap = model.transport.model.snapshot()
    assert_same_errors(board, model, bad_frames(board.features))
    # Overrun: a frame sent while a run streams its results is dropped and reported.
    run = encode_frame(Cmd.RUN, (3).to_bytes(4, "little") + b"\x01")
    noise = encode_frame(Cmd.SET_NOISE, (99).to_bytes(4, "little") + b"\x10\x00")
    got = replies_of(board, run + noise, 5)
    want = replies_of(model, run + noise, 5)
    assert got == want
    assert got[-1] == Frame(Cmd.ERR, bytes([ErrorCode.OVERRUN, 0]))
    # Nothing the bad frames carried took effect: same status, same model state.
    after = board.status()
    assert (after.seed, after.gain, after.input_en) == (before.seed, before.gain,
                                                         before.input_en)
    assert after.step == before.step + 3
    snap2 = model.transport.model.snapshot()
    assert snap2[:5] == snap[:5]
    # ... and the array state is the golden one: a further run equals the model's.
    r1, r2 = board.run(6, membrane=True), model.run(6, membrane=True)
    assert np.array_equal(r1.spikes, r2.spikes) and np.array_equal(r1.v, r2.v)


# Golden-model backend ---------------------------------------------------------------------------


def test_model_backend_matches_golden():
    with open_board("model", features=FEATURES) as board:
        rate, noise = experiment(board)
    check_against_golden(rate, noise)


def test_model_backend_bad_inputs():
    board = open_board("model", features=FEATURES)
    model = open_board("model", features=FEATURES)
    run_bad_inputs(board, model)


def test_model_rejects_without_state_change():
    assert_model_refuses(ModelTransport(FEATURES).model, bad_frames(FEATURES))


def test_host_api_errors():
    board = open_board("model", features=FEATURES)
    with pytest.raises(ConfigError, match="currents"):
        board.write_currents(np.full(16, 1 << 15))
    with pytest.raises(ConfigError, match="start"):
        board.write_currents(np.zeros(4), start=14)
    with pytest.raises(BoardError, match="RANGE"):
        board.request(Cmd.SET_INPUT, b"\x05")
    with pytest.raises(ConfigError, match="shape"):
        board.configure(Config())
    with pytest.raises(ConfigError, match="board must be"):
        open_board("usb:0")
    with pytest.raises(ConfigError, match="cannot open serial port"):
        open_board("serial:/dev/lifgate-no-such-port")


# Simulated board top ----------------------------------------------------------------------------


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_board(sim, tmp_path):
    """The board top in a simulator: the experiment equals the golden model, then every bad
    input gives the model's error reply and changes nothing. (One test per simulator, so one
    build each, also under xdist.)"""
    board = open_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path, timeout=2000)
    try:
        assert board.features == FEATURES
        # Icarus runs about 10x slower than Verilator: a shorter slice of the same experiment.
        steps = (40, 30) if sim == "verilator" else (10, 8)
        rate, noise = experiment(board, *steps)
        check_against_golden(rate, noise, *steps)
        run_bad_inputs(board, open_board("model", features=FEATURES))
    finally:
        board.close()


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_board_feeder(sim, tmp_path):
    """The ULX3S's input-current feeder (boards/feed.py: DP16KD blocks with their output
    registers behind per-lane address registers, lifgate's DP16KD model): the experiment equals
    the golden model, and every bad input gives the model's error reply and changes nothing."""
    board = open_board(f"sim:{sim}", features=FEATURES, build_dir=tmp_path, timeout=2000,
                       current_ram="ecp5")
    try:
        steps = (40, 30) if sim == "verilator" else (10, 8)
        rate, noise = experiment(board, *steps)
        check_against_golden(rate, noise, *steps)
        run_bad_inputs(board, open_board("model", features=FEATURES))
    finally:
        board.close()


def test_icarus_board_spram(tmp_path):
    """The iCEBreaker's input currents in SB_SPRAM256KA (Yosys' model): the rate slice."""
    board = open_board("sim:icarus", features=FEATURES, build_dir=tmp_path, timeout=2000,
                       current_ram="spram")
    try:
        cfg, cur = rate_config()
        board.configure(cfg, currents=cur)
        res = board.run(8, membrane=True)
    finally:
        board.close()
    ref = simulate(cfg, 8, cur)
    assert np.array_equal(res.spikes, ref.spikes) and np.array_equal(res.v, ref.v)
