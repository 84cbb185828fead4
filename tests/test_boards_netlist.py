"""The gate-level backend: the board top's netlist after Yosys, behind the host link.

``sim:icarus-netlist`` synthesises the host link a board build puts on the FPGA (``synth_ice40``
or ``synth_ecp5`` with the build's options, ``write_verilog``), simulates the netlist with Yosys'
cell models and the project's (``DP16KD``, ``MULT18X18D``) and drives it through the same cocotb
UART session as ``sim:icarus``. Every reply is compared byte for byte with the protocol model,
every result with the golden model.

In the default suite: a reduced UP5K top and a reduced ECP5 top on Icarus (the synthesised
netlist is cached per test node in pytest's cache folder). Opt-in (``LIFGATE_SLOW=1``): the goal
shapes of both boards on Verilator (``docs/verification.md``, gate-level section).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from lifgate.boards.framehost import parse_spec
from lifgate.boards.host import (
    Board,
    BoardError,
    ModelTransport,
    SimTransport,
    Transport,
    open_board,
)
from lifgate.boards.nethost import open_network_board
from lifgate.boards.netlist import board_link, build_netlist_top, cell_models
from lifgate.boards.protocol import Cmd, Features, encode_frame
from lifgate.boards.toolchain import BOARDS, SYNTH_OPTS
from lifgate.boards.top import BoardTop
from lifgate.golden.fixed import simulate

from lifgate.app.commands import digits
from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, NoiseParams


class Recorder(Transport):
    """Records every byte the board sends back."""

    def __init__(self, inner: Transport):
        self.inner = inner
        self.replies = bytearray()

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        self.replies += data
        return data

    def close(self) -> None:
        self.inner.close()


def reduced_shape(board_name: str, neurons: int, lanes: int) -> ArrayShape:
    """A small shape with the board's leak modes (and so its primitives)."""
    b = BOARDS[board_name]
    return ArrayShape(neurons=neurons, lanes=lanes, groups=2, leak_modes=b.leak_modes)


def configs(shape: ArrayShape):
    """The rate slice (one current per neuron, two groups, no noise) and a noise run."""
    n = shape.neurons
    rate = Config(shape=shape, params=(
        NeuronParams(v_th=400, v_reset=-50, v_rest=-20, v_init=-20, leak=4, t_ref=2),
        NeuronParams(v_th=300, v_reset=0, v_init=10, bias=3, leak_mode="const", leak=1,
                     reset_mode="subtract", t_ref=1)), noise=NoiseParams(seed=7, gain=0))
    currents = (np.arange(n) * 997 % 401) - 60
    noise = Config(shape=shape, params=(
        NeuronParams(v_th=60, v_reset=0, leak=3, bias=5),
        NeuronParams(v_th=50, v_reset=-30, v_rest=-10, leak=2, t_ref=3)),
        noise=NoiseParams(seed=0x1234_5678, gain=3000))
    return rate, currents, noise


def session(board: Board, shape: ArrayShape, steps: tuple, membrane: bool = True):
    """VERSION (at opening), SET_PARAMS, SET_NOISE, WRITE_CURRENTS, SET_INPUT, CLEAR, a RUN
    with spikes (and membranes), STATUS, then the same for a noise run, and a refused
    frame."""
    rate, currents, noise = configs(shape)
    board.configure(rate, currents=currents)
    r1 = board.run(steps[0], membrane=membrane)
    status = board.status()
    board.configure(noise)
    r2 = board.run(steps[1], membrane=membrane)
    bad = bytearray(encode_frame(Cmd.SET_NOISE, bytes(6)))
    bad[-1] ^= 0x40  # a bad CRC: an ERR reply, nothing changes
    board.send(bytes(bad))
    board.receive()
    return r1, r2, status


def check_gate_level(board_name: str, shape: ArrayShape, build_dir, *, sim="icarus",
                     steps=(3, 3), max_payload=64, membrane=True, optimize=True):
    """The session on the netlist and on the protocol model: the same bytes, and both runs
    equal to the golden model."""
    features = Features(shape, max_payload=max_payload)
    t0 = time.monotonic()
    top = build_netlist_top(features, board_name=board_name, sim=sim, build_dir=build_dir,
                            divisor=4, timeout=600, optimize=optimize)
    built = time.monotonic() - t0
    rec = Recorder(SimTransport(features, top=top))
    board = Board(rec, timeout=600)
    try:
        t0 = time.monotonic()
        r1, r2, status = session(board, shape, steps, membrane)
        ran = time.monotonic() - t0
    finally:
        board.close()
    model_rec = Recorder(ModelTransport(features))
    session(Board(model_rec), shape, steps, membrane)
    assert bytes(rec.replies) == bytes(model_rec.replies)
    rate, currents, noise = configs(shape)
    ref1 = simulate(rate, steps[0], currents)
    ref2 = simulate(noise, steps[1])
    assert np.array_equal(r1.spikes, ref1.spikes) and np.array_equal(r2.spikes, ref2.spikes)
    if membrane:
        assert np.array_equal(r1.v, ref1.v) and np.array_equal(r2.v, ref2.v)
    assert status.step == steps[0]
    # The runs exercise something: spikes and silence, noise that moves the membranes.
    assert 0 < ref1.spikes.sum() < ref1.spikes.size
    assert 0 < ref2.spikes.sum() and len(np.unique(ref2.v[-1])) > shape.groups
    return top, built, ran


def cache_dir(request, name: str):
    """One build folder per test node, kept between runs (the netlist is synthesised once) in
    pytest's cache folder; a temporary one when the cache is switched off."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return request.getfixturevalue("tmp_path")
    return cache.mkdir(f"netlist-{name}")


# Specs and construction -------------------------------------------------------------------------


def test_netlist_specs():
    assert parse_spec("sim:icarus-netlist") == ("netlist", ("icarus", "icebreaker"))
    assert parse_spec("sim:verilator-netlist:ulx3s-85f") == ("netlist",
                                                             ("verilator", "ulx3s-85f"))
    assert parse_spec("sim:icarus") == ("sim", "icarus")
    for bad, match in (("sim:xsim-netlist", "simulator"), ("sim:icarus-netlist:de10", "board"),
                       ("sim:icarus:icebreaker", "gate-level"), ("sim:", "simulator")):
        with pytest.raises(ConfigError, match=match):
            parse_spec(bad)
    features = Features(reduced_shape("icebreaker", 64, 4))
    with pytest.raises(ConfigError, match="current_ram"):
        open_board("sim:icarus-netlist", features=features, current_ram="spram")
    with pytest.raises(ConfigError, match="features"):
        open_board("sim:icarus-netlist")
    with pytest.raises(ConfigError, match="board"):
        build_netlist_top(features, board_name="de10")
    with pytest.raises(ConfigError, match="array board's top only"):
        open_network_board("sim:icarus-netlist")
    with pytest.raises(ConfigError, match="--board: .*array board's top only"):
        digits.check_args(steps=10, samples=0, hidden=8, w_width=8, seed=0,
                          board="sim:verilator-netlist", limit=None, build_dir="build")


@pytest.mark.parametrize("name", list(BOARDS))
def test_board_link_is_the_board_tops(name):
    """The synthesised link is the one ``lifgate build`` puts on the board: the same current
    memory and array options as ``BoardTop`` (for the reduced and the goal shape)."""
    b = BOARDS[name]
    for shape in (reduced_shape(name, 64, 4), ArrayShape(neurons=b.neurons, lanes=b.lanes,
                                                         groups=b.groups,
                                                         leak_modes=b.leak_modes)):
        top = BoardTop(board=b, shape=shape, frequency=b.build_mhz * 1e6)
        link = board_link(b, top.features, divisor=8, timeout=100)
        assert link.current_ram == top.link.current_ram
        assert link.array_options == top.link.array_options


def test_cell_models():
    """Yosys' models, the project's where Yosys has a blackbox only; no include left."""
    ice = cell_models("ice40", "")
    assert "module SB_MAC16" in ice and "module SB_SPRAM256KA" in ice and "`include" not in ice
    ecp = cell_models("ecp5", "  DP16KD #(\n  MULT18X18D #(\n")
    assert "lifgate: behavioural model of the ECP5 DP16KD for gate-level netlists" in ecp
    assert "lifgate: behavioural model of the ECP5 MULT18X18D" in ecp
    assert "(* blackbox *)\nmodule DP16KD" not in ecp and "module TRELLIS_FF" in ecp
    assert "`include" not in ecp
    assert "MULT18X18D" not in cell_models("ecp5", "")
    assert "-dsp" not in SYNTH_OPTS["ice40"]


@pytest.mark.icarus
def test_deep_board_answers_its_first_frame(tmp_path, monkeypatch):
    """At reset the link zeroes the currents and clears the array (about 2 clocks per word of
    a lane): a session that sends VERSION at once on a deep shape (the goal shapes: 512 and
    2,048 words) got ERR_OVERRUN. The session now waits for that start-up, as a host that opens
    a board long after configuration does (RTL, Icarus, 256 words)."""
    features = Features(ArrayShape(neurons=256, lanes=1, groups=1, leak_modes=("shift",)),
                        max_payload=32)
    board = open_board("sim:icarus", features=features, build_dir=tmp_path, divisor=4,
                       timeout=600)
    try:
        assert board.features == features and board.status().step == 0
    finally:
        board.close()
    monkeypatch.setattr(SimTransport, "_start_clocks", lambda self: 0)
    with pytest.raises(BoardError, match="OVERRUN"):
        open_board("sim:icarus", features=features, build_dir=tmp_path, divisor=4,
                   timeout=600)


# Gate level -------------------------------------------------------------------------------------


@pytest.mark.icarus
def test_up5k_netlist_matches_model(request):
    """A reduced UP5K top (32 neurons x 2 lanes; SB_MAC16 noise multiply-adds, the state in
    SB_RAM40_4K, the currents in SB_SPRAM256KA) at gate level, byte for byte."""
    shape = reduced_shape("icebreaker", 32, 2)
    top, _, _ = check_gate_level("icebreaker", shape, cache_dir(request, "up5k"))
    assert top.cells["SB_MAC16"] == 2 and top.cells["SB_SPRAM256KA"] >= 1
    assert top.cells["SB_RAM40_4K"] >= 4


@pytest.mark.icarus
def test_ecp5_netlist_matches_model(request):
    """A reduced ECP5 top (32 neurons x 2 lanes; MULT18X18D leak and noise multipliers, the
    state in DP16KD with the output register, the currents in DP16KD behind the feeder of
    boards/feed.py) at gate level, byte for byte."""
    shape = reduced_shape("ulx3s-85f", 32, 2)
    top, _, _ = check_gate_level("ulx3s-85f", shape, cache_dir(request, "ecp5"))
    assert top.cells["MULT18X18D"] >= 2 and top.cells["DP16KD"] >= 2


# Goal shapes (opt-in) ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"), reason="set LIFGATE_SLOW=1 to run")
@pytest.mark.parametrize("name", list(BOARDS))
def test_goal_shape_netlist_matches_model(name, request):
    """The goal shape of each board at gate level on Verilator; prints the figures of
    docs/verification.md (synthesis, simulator build, session)."""
    b = BOARDS[name]
    shape = ArrayShape(neurons=b.neurons, lanes=b.lanes, groups=2, leak_modes=b.leak_modes)
    # Membranes of 65,536 neurons are 128 KB a step (5 million clocks of UART at 4 clocks a
    # bit): the ECP5 shape reads spikes only.
    top, built, ran = check_gate_level(name, shape, cache_dir(request, f"goal-{name}"),
                                       sim="verilator", steps=(2, 2), max_payload=512,
                                       membrane=b.family == "ice40", optimize=False)
    print(f"\n{name}: cells {top.cells}; synthesis {top.synth_s:.0f} s, "
          f"build {top.build_s:.0f} s (total {built:.0f} s), session {ran:.0f} s")
