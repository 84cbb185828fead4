"""``ArrayShape.reset_modes``: SUBTRACT_AFTER_LEAK is a compile-time option of the shape.

* The default shape (VALUE, SUBTRACT) has the 1-bit ``reset_mode`` field and builds none of
  the mode's registers: its Verilog has no ``e4``/``sub4``/``e5``/``vr6`` and no
  ``reset_modes`` header line, and equals the Verilog of a shape that lists the default modes
  explicitly; a shape with the mode has them, a 2-bit field and the header line. (The
  default shape's and the board shapes' Verilog were compared byte for byte with main's when
  the option was made: docs/resources.md.)
* Everything that carries a shape carries the option: configuration files (a file without
  the key has the default), the VERSION replies of array and network boards (bit 7 of the
  modes byte), the Verilog header read back by ``lifgate verify --verilog``
  (``sim/foreign.py``), the NIR importer (the mode its graph asks for), batched network runs.
* The host's and the gateware's parameter-word checks refuse the 2-bit field's code 3 and
  accept every code on the default 1-bit field.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from lifgate.boards.framelink import param_word_ok
from lifgate.boards.netproto import NetFeatures, net_version_payload, parse_net_version
from lifgate.boards.protocol import (
    AFTER_LEAK_BIT,
    Features,
    param_word_valid,
    parse_version,
    version_payload,
)
from lifgate.golden.synapse import Layer, Network, simulate_network, simulate_network_batch
from lifgate.hdl.verilog import generate_verilog
from lifgate.sim import foreign

from lifgate.checks import check_reset_modes
from lifgate.compilers.nir_import import import_nir
from lifgate.config import (
    DEFAULT_RESET_MODES,
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    ResetMode,
    pack_params,
)

SMALL = dict(neurons=4, lanes=2, groups=2, v_width=8, i_width=6, ref_width=2, decay_frac=6,
             step_width=8)
DEFAULT = ArrayShape(**SMALL)
AFTER = ArrayShape(**SMALL, reset_modes=tuple(ResetMode))
AFTER_REGS = ("e4", "sub4", "e5", "vr6")


def _regs(text: str) -> set:
    return {name for name in AFTER_REGS if re.search(rf"\bl\d+_{name}\b", text)}


def test_default_build_has_none_of_the_mode():
    default = generate_verilog(DEFAULT)
    assert default == generate_verilog(ArrayShape(**SMALL, reset_modes=("subtract", "value")))
    after = generate_verilog(AFTER)
    assert _regs(default) == set() and _regs(after) == set(AFTER_REGS)
    assert "reset_modes" not in default
    assert "//   reset_modes = value, subtract, subtract_after_leak" in after
    for shape, width in ((DEFAULT, 1), (AFTER, 2)):
        assert shape.layout.params["reset_mode"].width == width == shape.reset_width
    # one more bit in the parameter word, nothing else moves
    assert AFTER.layout.params.width == DEFAULT.layout.params.width + 1
    assert AFTER.layout.params["reset_mode"].offset == DEFAULT.layout.params["reset_mode"].offset


def test_config_files_carry_the_option():
    cfg = Config(shape=AFTER, params=(NeuronParams(reset_mode="subtract_after_leak", v_th=3),))
    assert cfg.to_dict()["shape"]["reset_modes"] == ["value", "subtract", "subtract_after_leak"]
    assert Config.from_toml(cfg.to_toml()) == cfg == Config.from_json(cfg.to_json())
    plain = Config(shape=DEFAULT, params=(NeuronParams(v_th=3),))
    assert plain.to_dict()["shape"]["reset_modes"] == ["value", "subtract"]
    del (d := plain.to_dict())["shape"]["reset_modes"]  # a file of before: the default
    assert Config.from_dict(d) == plain


def test_refused_where_the_shape_lacks_it():
    p = NeuronParams(reset_mode=ResetMode.SUBTRACT_AFTER_LEAK)
    with pytest.raises(ConfigError, match=r"^parameter 'params\[1\]\.reset_mode' must be one "
                       r"the array supports \(value, subtract\), not 'subtract_after_leak'; "
                       r"add it to the shape's reset_modes to build it$"):
        Config(shape=DEFAULT, params=(NeuronParams(v_th=3), dataclasses.replace(p, v_th=3)))
    with pytest.raises(ConfigError, match="reset_modes"):
        ArrayShape(reset_modes=("value", "subtract_after_leak"))
    with pytest.raises(ConfigError, match="^parameter 'reset_modes' must not include "
                       "subtract_after_leak with spike_max 3"):
        ArrayShape(reset_modes=tuple(ResetMode), spike_max=3)  # the lane subtracts one v_th
    assert check_reset_modes("--reset-modes", "subtract-after-leak,Value, subtract") == tuple(
        ResetMode)
    for bad in ("value", "value,subtract,after", ""):
        with pytest.raises(ConfigError, match="^--reset-modes must be value,subtract or "):
            check_reset_modes("--reset-modes", bad)


def test_version_replies_carry_the_option():
    for shape in (DEFAULT, AFTER):
        f = Features(shape, membrane=True, noise=True)
        payload = version_payload(f)
        assert parse_version(payload) == f
        assert payload[15] >> AFTER_LEAK_BIT == (shape is AFTER)
        if shape is DEFAULT:  # the leak-mode mask alone, as before the option
            assert payload[15] == sum(1 << int(m) for m in shape.leak_modes)
        net = NetFeatures((shape, shape), inputs=3)
        assert parse_net_version(net_version_payload(net)) == net
    with pytest.raises(ConfigError, match="reset modes"):
        NetFeatures((DEFAULT, AFTER), inputs=3)


def _word(shape, code):
    f = shape.layout.params["reset_mode"]
    base = pack_params(shape, NeuronParams(v_th=3, leak=1))
    return base & ~(((1 << f.width) - 1) << f.offset) | code << f.offset


def test_word_checks_refuse_code_3():
    """The host model's check and the gateware's agree: code 3 only on the 2-bit field."""
    cases = [(AFTER, c) for c in range(4)] + [(DEFAULT, c) for c in range(2)]
    for shape, code in cases:
        assert param_word_valid(shape, _word(shape, code)) == (code < 3), (shape, code)
    got = {}
    for shape in (DEFAULT, AFTER):
        m = Module()
        width = shape.layout.params.width
        word = Signal((width + 7) // 8 * 8)
        ok = param_word_ok(m, shape, word, width)
        sim = Simulator(m)

        async def bench(ctx, shape=shape, word=word, ok=ok):
            for code in range(1 << shape.reset_width):
                ctx.set(word, _word(shape, code))
                got[shape, code] = bool(ctx.get(ok))

        sim.add_testbench(bench)
        sim.run()
    assert got == {(s, c): c < 3 for s in (DEFAULT, AFTER) for c in range(1 << s.reset_width)}


def test_foreign_header_round_trip(tmp_path):
    for shape in (DEFAULT, AFTER):
        got, membrane, noise = foreign.header_shape(generate_verilog(shape, noise=False))
        assert got == shape and membrane and not noise


def test_importer_builds_the_mode_its_graph_asks_for():
    nir = pytest.importorskip("nir")
    w = np.array([[0.6, 0.4], [0.2, 0.9]])
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=w, bias=np.zeros(2)),
        nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2),
                v_threshold=np.ones(2)),
    )
    for reset, after in (("value", False), ("subtract", False), ("subtract-after-leak", True)):
        net = import_nir(graph, dt=1e-3, reset=reset).network
        for shape in net.shapes:
            assert (ResetMode.SUBTRACT_AFTER_LEAK in shape.reset_modes) == after, reset
            assert after or shape.reset_modes == DEFAULT_RESET_MODES


def test_batched_network_runs_keep_the_option():
    """simulate_network_batch tiles the layers' arrays into one: the mode survives it."""
    shape = ArrayShape(neurons=2, lanes=1, groups=2, v_width=10, i_width=10, ref_width=1,
                       decay_frac=8, leak_modes=(LeakMode.MULT,), reset_modes=tuple(ResetMode))
    p = NeuronParams(v_th=20, leak_mode="mult", leak=200, reset_mode="subtract_after_leak")
    layer = Layer(np.array([[9, 3], [2, 8]]), Config(shape=shape, params=(p,)))
    net = Network((layer,), w_width=5, x_width=3)
    x = np.array([[7, 1], [2, 6], [5, 5]])
    batch = simulate_network_batch(net, 12, x)
    for b in range(3):
        one = simulate_network(net, 12, x[b])
        assert np.array_equal(batch[b].spikes[0], one.spikes[0])
        assert np.array_equal(batch[b].v[0], one.v[0])
