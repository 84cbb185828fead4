"""Robustness of the host library (issue 14 #7, Build #3): bad arguments never reach the board.

Every public method of :class:`~lifgate.boards.host.Board` and
:class:`~lifgate.boards.nethost.NetworkBoard` is called with generated bad arguments (wrong
types, numpy scalars, floats, out-of-range, negative and huge values, arrays of the wrong shape
or dtype). Each refused call must

* raise :class:`~lifgate.config.ConfigError` whose message is one line naming the parameter,
* send nothing (the transport is wrapped and records every byte written),
* leave the board answering the next valid call correctly: a clear and a short run compared
  with the golden model (:func:`lifgate.golden.fixed.simulate`,
  :func:`lifgate.golden.synapse.simulate_network`), and the status compared with what was set.

Many examples run on the ``model`` backend; a smaller number on the simulated board top
(Verilator, one build reused by the whole module). ``CASES`` counts every refused call checked;
``pytest -s`` prints the count at the end of the module (the README quotes it).

Also here: the replies-out-of-step recovery (:meth:`Board.resync`) and the documented silence
for bytes without a sync byte, on the model and on the simulated board.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.boards.host import (
    Board,
    LinkTimeout,
    ModelTransport,
    SimTransport,
    Transport,
    open_board,
)
from lifgate.boards.nethost import NetModelTransport, NetworkBoard, open_network_board
from lifgate.boards.netproto import NetFeatures
from lifgate.boards.protocol import MAX_BAUD, Cmd, Features, encode_frame
from lifgate.golden.fixed import simulate
from lifgate.golden.synapse import Layer, Network, simulate_network

from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, NoiseParams

# The array board: every leak mode (MULT with decay_frac == v_width: issue 14 #2's shape).
SHAPE = ArrayShape(neurons=16, lanes=4, groups=2)
FEATURES = Features(SHAPE, max_payload=64)
PARAMS = (NeuronParams(v_th=300, v_reset=-20, v_rest=-10, v_init=-10, leak_mode="mult",
                       leak=60000, t_ref=1),
          NeuronParams(v_th=200, v_reset=0, leak=3, bias=2, reset_mode="subtract"))
CONFIG = Config(shape=SHAPE, params=PARAMS, noise=NoiseParams(seed=0xBEEF, gain=300))
CURRENTS = np.arange(16, dtype=np.int64) * 13 - 40
RUN_STEPS = 4

#: Refused calls checked, per backend (printed at the end of the module).
CASES: Counter = Counter()


class RecordingTransport(Transport):
    """A transport that records what the host writes (and can fail on demand)."""

    def __init__(self, inner: Transport):
        self.inner = inner
        self.written = bytearray()
        self.fail_reads_after = None  # raise KeyboardInterrupt after this many reads

    def write(self, data: bytes) -> None:
        self.written += data
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        if self.fail_reads_after is not None:
            if self.fail_reads_after == 0:
                self.fail_reads_after = None
                raise KeyboardInterrupt
            self.fail_reads_after -= 1
        return self.inner.read(timeout)

    def close(self) -> None:
        self.inner.close()


def configured(board: Board) -> Board:
    board.configure(CONFIG, currents=CURRENTS)
    return board


def expected_run():
    return simulate(CONFIG, RUN_STEPS, CURRENTS)


def check_answers(board: Board, ref) -> None:
    """The next valid calls: the status is what was set, and clear + run equal the golden
    model (so no parameter, current, noise setting or enable was changed)."""
    st_ = board.status()
    assert (st_.input_en, st_.seed, st_.gain) == (True, CONFIG.noise.seed, CONFIG.noise.gain)
    board.clear()
    res = board.run(RUN_STEPS, membrane=True)
    assert np.array_equal(res.spikes, ref.spikes) and np.array_equal(res.v, ref.v)
    assert res.labels.tolist() == list(range(RUN_STEPS)) and res.step == RUN_STEPS


def refused(board, rec: RecordingTransport, call, name: str, backend: str) -> None:
    """``call(board)`` raises a one-line ConfigError naming ``name`` and sends nothing."""
    before = len(rec.written)
    with pytest.raises(ConfigError) as info:
        call(board)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg
    assert name in msg, (name, msg)
    assert len(rec.written) == before, "a refused call sent bytes"
    CASES[backend] += 1


# Generated bad values -------------------------------------------------------------------------

HUGE = st.integers(min_value=1 << 32, max_value=1 << 80)
NOT_INT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=100).map(np.float64),
    st.integers(0, 100).map(float),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.just([1]),
    st.just(np.array([1, 2])),
    st.just(1 + 2j),
)


def bad_int(lo: int, hi: int):
    """Not an integer, or an integer (Python or numpy) outside [lo, hi]."""
    below = st.integers(max_value=lo - 1, min_value=lo - (1 << 70))
    above = st.integers(min_value=hi + 1, max_value=hi + (1 << 70))
    np_out = st.sampled_from([lo - 1, hi + 1]).filter(lambda v: -(1 << 63) <= v < (1 << 63)) \
        .map(np.int64)
    return st.one_of(NOT_INT, below, above, np_out)


NOT_BOOL = st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=3), st.none(),
                     st.just(np.int64(1)), st.just([True]))


def bad_int_array(lo: int, hi: int, n: int):
    """Arrays that must be refused: a value out of range, fractions, NaN, wrong dimensions,
    too many values, bools, strings, ragged lists, scalars."""
    out = st.tuples(st.integers(0, n - 1), st.one_of(
        st.integers(hi + 1, hi + (1 << 40)), st.integers(lo - (1 << 40), lo - 1),
    )).map(lambda t: np.where(np.arange(n) == t[0], t[1], 0).astype(np.int64))
    frac = st.floats(0.01, 0.99).map(lambda f: np.full(n, f))
    return st.one_of(
        out,
        frac,
        st.just(np.full(n, np.nan)),
        st.integers(2, 4).map(lambda k: np.zeros((k, n // k + 1), dtype=np.int64)),
        st.just(np.zeros(n + 1, dtype=np.int64)),
        st.just(np.zeros(n, dtype=bool)),
        st.just("1234"),
        st.just([[1, 2], [3]]),
        st.just(np.int64(3)),
        st.just([1 << 80]),
    )


def array_board_calls():
    """(parameter name, call) pairs: one bad argument each, the others valid."""
    G, N = SHAPE.groups, SHAPE.neurons
    ilo, ihi = SHAPE.i_range
    p = PARAMS[0]
    return st.one_of(
        bad_int(0, (1 << 32) - 1).map(lambda v: ("steps", lambda b: b.run(v))),
        NOT_BOOL.map(lambda v: ("spikes", lambda b: b.run(2, spikes=v))),
        NOT_BOOL.map(lambda v: ("membrane", lambda b: b.run(2, membrane=v))),
        bad_int(0, (1 << 32) - 1).map(lambda v: ("seed", lambda b: b.set_noise(v, 1))),
        bad_int(0, (1 << 16) - 1).map(lambda v: ("gain", lambda b: b.set_noise(1, v))),
        NOT_BOOL.map(lambda v: ("enable", lambda b: b.set_input(v))),
        bad_int(0, G - 1).map(lambda v: ("group", lambda b: b.set_params(v, p))),
        st.one_of(NOT_INT, st.just(p.__dict__)).map(
            lambda v: ("params", lambda b: b.set_params(0, v))),
        st.integers(SHAPE.v_range[1] + 1, 1 << 40).map(
            lambda v: ("v_th", lambda b: b.set_params(0, NeuronParams(v_th=v)))),
        st.one_of(bad_int_array(ilo, ihi, N), st.none()).map(
            lambda v: ("currents", lambda b: b.write_currents(v))),
        bad_int(0, N - 4).map(lambda v: ("start", lambda b: b.write_currents([1, 2, 3, 4], v))),
        st.one_of(NOT_INT, st.just(CONFIG.params)).map(
            lambda v: ("config", lambda b: b.configure(v))),
        bad_int_array(ilo, ihi, N).map(
            lambda v: ("currents", lambda b: b.configure(CONFIG, currents=v))),
        st.integers(1, N - 1).map(lambda k: ("currents", lambda b: b.configure(
            CONFIG, currents=np.zeros(k, dtype=np.int64)))),
        bad_int(0, 0x7F).map(lambda v: ("cmd", lambda b: b.request(v))),
        st.one_of(st.text(max_size=4), st.integers(), st.lists(st.integers(0, 255))).map(
            lambda v: ("payload", lambda b: b.request(Cmd.STATUS, v))),
        st.one_of(st.text(max_size=4), st.integers(), st.none()).map(
            lambda v: ("data", lambda b: b.send(v))),
        st.one_of(st.floats(max_value=0), st.text(max_size=2), st.just([1])).map(
            lambda v: ("quiet", lambda b: b.resync(v))),
    )


# Model backend --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_board():
    rec = RecordingTransport(ModelTransport(FEATURES))
    board = configured(Board(rec, timeout=5.0))
    return board, rec, expected_run()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=array_board_calls())
def test_model_board_refuses_bad_arguments(model_board, case):
    board, rec, ref = model_board
    name, call = case
    refused(board, rec, call, name, "model")
    check_answers(board, ref)


def test_issue_cases_model():
    """The cases of issue 14 #7, one by one (each failed on the old code: TypeError after
    sending RUN, then 'unexpected reply 0xb1'; bare OverflowError; bare ValueError)."""
    rec = RecordingTransport(ModelTransport(FEATURES))
    board = configured(Board(rec, timeout=5.0))
    ref = expected_run()
    refused(board, rec, lambda b: b.run(np.float64(3.0)), "steps", "model")
    check_answers(board, ref)
    refused(board, rec, lambda b: b.set_noise(1, 70000), "gain", "model")
    refused(board, rec, lambda b: b.run(-1), "steps", "model")
    check_answers(board, ref)
    with pytest.raises(ConfigError, match=r"'baud' must be an integer in \[1000, 12000000\]"):
        open_board("serial:/dev/ttyUSB0@fast")
    for spec in ("serial:/dev/ttyUSB0@0", "serial:/dev/ttyUSB0@-9600",
                 f"serial:/dev/ttyUSB0@{MAX_BAUD + 1}", "serial:@9600", 7, None):
        with pytest.raises(ConfigError) as info:
            open_board(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="timeout"):
        open_board("model", features=FEATURES, timeout=0)
    with pytest.raises(ConfigError, match="features"):
        open_board("model", features=SHAPE)
    with pytest.raises(ConfigError, match="takes no 'build_dir'"):
        open_board("model", features=FEATURES, build_dir="x")


@pytest.mark.parametrize("kwargs, name", [
    (dict(divisor=3), "divisor"), (dict(divisor=8.0), "divisor"),
    (dict(current_ram="sram"), "current_ram"), (dict(build_dir="/dev/null/x"), "build_dir"),
    (dict(start_timeout=-1), "start_timeout"), (dict(timeout=30.5), "timeout"),
])
def test_sim_board_options_refused_before_any_build(kwargs, name, tmp_path):
    """The simulated boards' options are checked before anything is built or written."""
    kwargs.setdefault("build_dir", tmp_path / "b")
    with pytest.raises(ConfigError, match=name):
        if name == "timeout":  # the link's idle timeout in clocks (open_board's is seconds)
            SimTransport(FEATURES, **kwargs)
        else:
            open_board("sim:verilator", features=FEATURES, **kwargs)
    with pytest.raises(ConfigError, match="'sim'"):
        SimTransport(FEATURES, sim="xsim", build_dir=tmp_path / "b")
    net = {"divisor": "divisor", "build_dir": "build_dir", "timeout": "link_timeout"}.get(name)
    if net:
        with pytest.raises(ConfigError, match=net):
            open_network_board("sim:verilator", features=NET_FEATURES,
                               **{net: kwargs[name]}, **({} if net == "build_dir" else
                                                         {"build_dir": tmp_path / "b"}))
    assert not (tmp_path / "b").exists()


def test_membrane_flag_on_a_board_without_readback():
    rec = RecordingTransport(ModelTransport(Features(SHAPE, membrane=False)))
    board = Board(rec)
    refused(board, rec, lambda b: b.run(2, membrane=True), "membrane", "model")
    assert board.run(2).step == 2


def test_configure_checks_everything_before_sending():
    """A configuration whose currents are bad sends none of its parameters."""
    rec = RecordingTransport(ModelTransport(FEATURES))
    board = Board(rec)
    bad = CURRENTS.copy()
    bad[-1] = SHAPE.i_range[1] + 1
    refused(board, rec, lambda b: b.configure(CONFIG, currents=bad), "currents", "model")
    assert board.transport.inner.model.config().params[0] != PARAMS[0]


# Replies out of step ----------------------------------------------------------------------------


def resync_cases(board: Board, rec: RecordingTransport, ref) -> None:
    """Three ways to get out of step; each time the next call resynchronises and answers
    correctly."""
    # 1. A stray frame sent around the API: its reply is queued before the next one.
    board.send(encode_frame(Cmd.VERSION))
    with pytest.raises(LinkTimeout, match="unexpected reply"):
        board.status()
    assert board.out_of_step
    check_answers(board, ref)
    assert not board.out_of_step
    # 2. A run interrupted while its STEP frames arrive (KeyboardInterrupt).
    rec.fail_reads_after = 0
    with pytest.raises(KeyboardInterrupt):
        board.run(30, membrane=True)
    assert board.out_of_step
    check_answers(board, ref)
    # 3. A run whose STEP frames are not read at all.
    board.send(encode_frame(Cmd.RUN, (5).to_bytes(4, "little") + b"\x01"))
    board._out_of_step = True  # as after any interrupted call
    check_answers(board, ref)


def test_resync_model():
    rec = RecordingTransport(ModelTransport(FEATURES))
    board = configured(Board(rec, timeout=5.0))
    resync_cases(board, rec, expected_run())


def test_bytes_without_sync_get_no_reply_model():
    """docs/boards.md: bytes before a SYNC byte are dropped silently, no reply."""
    rec = RecordingTransport(ModelTransport(FEATURES))
    board = configured(Board(rec, timeout=5.0))
    board.send(bytes(range(0x00, 0xA5)) + bytes(range(0xA6, 0x100)))
    assert board.transport.read(0.05) == b""
    check_answers(board, expected_run())


# Network board (model) --------------------------------------------------------------------------

_NS = dict(v_width=12, ref_width=3, decay_frac=12, step_width=8)  # MULT with F == W again


def small_net() -> Network:
    rng = np.random.default_rng(3)
    s0 = ArrayShape(neurons=6, lanes=2, groups=2, i_width=10, **_NS)
    s1 = ArrayShape(neurons=4, lanes=1, groups=1, i_width=12, leak_modes=("const",), **_NS)
    p0 = (NeuronParams(v_th=60, v_reset=0, leak_mode="mult", leak=3500, t_ref=1),
          NeuronParams(v_th=40, v_reset=-5, leak_mode="const", leak=1, reset_mode="subtract"))
    p1 = (NeuronParams(v_th=30, leak_mode="const", leak=0, reset_mode="subtract"),)
    w0 = rng.integers(-20, 120, size=(6, 8))
    w1 = rng.integers(-40, 200, size=(4, 6))
    return Network((Layer(w0, Config(shape=s0, params=p0)),
                    Layer(w1, Config(shape=s1, params=p1))), w_width=10, x_width=2)


NET = small_net()
NET_X = np.array([3, 1, 0, 2, 3, 3, 1, 2], dtype=np.int64)
NET_FEATURES = NetFeatures.for_network(NET, max_payload=64)


def net_board_calls():
    f = NET_FEATURES
    lo, hi = -(1 << (f.w_width - 1)), (1 << (f.w_width - 1)) - 1
    p = NET.layers[0].config.params[0]
    w0 = NET.layers[0].weights
    return st.one_of(
        bad_int(0, (1 << 32) - 1).map(lambda v: ("steps", lambda b: b.run(v))),
        NOT_BOOL.map(lambda v: ("all_layers", lambda b: b.run(2, all_layers=v))),
        NOT_BOOL.map(lambda v: ("membrane", lambda b: b.run(2, membrane=v))),
        bad_int(0, f.layers - 1).map(lambda v: ("layer", lambda b: b.set_params(v, 0, p))),
        bad_int(0, 1).map(lambda v: ("group", lambda b: b.set_params(0, v, p))),
        NOT_INT.map(lambda v: ("params", lambda b: b.set_params(0, 0, v))),
        bad_int_array(0, (1 << f.x_width) - 1, f.inputs).map(
            lambda v: ("'x'", lambda b: b.write_x(v))),
        bad_int(0, f.inputs - 2).map(lambda v: ("start", lambda b: b.write_x([1, 1], v))),
        bad_int(0, f.layers - 1).map(lambda v: ("layer", lambda b: b.write_weights(v, w0))),
        bad_int_array(lo, hi, 48).map(lambda v: ("weights", lambda b: b.write_weights(0, v))),
        st.tuples(st.integers(lo - 1000, lo - 1), st.integers(0, 5), st.integers(0, 7)).map(
            lambda t: ("weights", lambda b: b.write_weights(
                0, np.where((np.arange(6)[:, None] == t[1]) & (np.arange(8) == t[2]), t[0], w0)))),
        bad_int(0, f.layers - 1).map(lambda v: ("layer", lambda b: b.read_weights(v))),
        st.one_of(NOT_INT, st.just(NET.layers)).map(lambda v: ("network", lambda b: b.load(v))),
        bad_int_array(0, (1 << f.x_width) - 1, f.inputs).map(
            lambda v: ("'x'", lambda b: b.infer(v, 3))),
        bad_int(0, (1 << 32) - 1).map(lambda v: ("steps", lambda b: b.infer(NET_X, v))),
        st.just(("currents", lambda b: b.write_currents([1]))),
        st.just(("configure", lambda b: b.configure(CONFIG))),
    )


def net_check_answers(board: NetworkBoard, ref) -> None:
    res = board.infer(NET_X, RUN_STEPS, all_layers=True)
    for n in range(len(NET.layers)):
        assert np.array_equal(res.spikes[n], ref.spikes[n]), n
        assert np.array_equal(res.v[n], ref.v[n]), n
    assert np.array_equal(board.read_weights(1), NET.layers[1].weights)


@pytest.fixture(scope="module")
def net_model_board():
    rec = RecordingTransport(NetModelTransport(NET_FEATURES))
    board = NetworkBoard(rec, timeout=5.0)
    board.load(NET)
    ref = simulate_network(NET, RUN_STEPS, NET_X)
    assert all(0 < s.sum() < s.size for s in ref.spikes)  # the check exercises something
    return board, rec, ref


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=net_board_calls())
def test_network_model_board_refuses_bad_arguments(net_model_board, case):
    board, rec, ref = net_model_board
    name, call = case
    refused(board, rec, call, name, "model")
    net_check_answers(board, ref)


def test_network_resync_model(net_model_board):
    board, rec, ref = net_model_board
    board.send(encode_frame(Cmd.STATUS))
    with pytest.raises(LinkTimeout, match="unexpected reply"):
        board.read_weights(0)
    net_check_answers(board, ref)
    rec.fail_reads_after = 0
    with pytest.raises(KeyboardInterrupt):
        board.run(12, membrane=True, all_layers=True)
    net_check_answers(board, ref)
    with pytest.raises(ConfigError, match="timeout"):
        open_network_board("model", features=NET_FEATURES, timeout=math.inf)


# Simulated board (Verilator, one build) ---------------------------------------------------------


@pytest.fixture(scope="module")
def sim_board(tmp_path_factory):
    build = tmp_path_factory.mktemp("robust-top")
    rec = RecordingTransport(SimTransport(FEATURES, sim="verilator", build_dir=build,
                                          timeout=2000))
    board = configured(Board(rec, timeout=60.0))
    yield board, rec, expected_run()
    board.close()


@pytest.mark.verilator
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=array_board_calls())
def test_sim_board_refuses_bad_arguments(sim_board, case):
    board, rec, ref = sim_board
    name, call = case
    refused(board, rec, call, name, "verilator")
    check_answers(board, ref)


@pytest.mark.verilator
def test_sim_board_issue_cases_resync_and_silence(sim_board):
    """On the gateware: the issue's cases, the three ways out of step, and bytes without a
    sync byte (no reply, the board answers the next frame)."""
    board, rec, ref = sim_board
    refused(board, rec, lambda b: b.run(np.float64(3.0)), "steps", "verilator")
    refused(board, rec, lambda b: b.set_noise(1, 70000), "gain", "verilator")
    refused(board, rec, lambda b: b.run(-1), "steps", "verilator")
    check_answers(board, ref)
    resync_cases(board, rec, ref)
    board.send(bytes(range(0x00, 0xA5)) + bytes(range(0xA6, 0x100)))
    assert board.transport.read(0.5) == b""
    check_answers(board, ref)


def test_zz_report_case_count():
    """Runs last in this module: print how many refused calls were checked (``pytest -s``)."""
    print(f"\nhost-library robustness: {sum(CASES.values())} refused calls checked "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(CASES.items()))})")
