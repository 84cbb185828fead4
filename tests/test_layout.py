"""The one layout of a shape (``lifgate.layout.ArrayLayout``) agrees with everything built on it.

``ArrayShape.layout`` is derived once; the gateware's ``data.StructLayout``\\ s, a built
``LIFArray``'s ports, the header of the generated Verilog, ``pack_params``, the beat codecs and
the host link's byte counts all read it. These tests compare each of them, as Amaranth and the
Verilog see it, with the layout and with the rules of ``docs/hardware.md`` written out here
independently, for a spread of shapes, so a future divergence fails.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.utils import bits_for, ceil_log2
from hypothesis import given, settings
from hypothesis import strategies as st
from lifgate.boards.protocol import Features
from lifgate.hdl.array import (
    LIFArray,
    beat_layout,
    input_layout,
    lif_signature,
    param_struct,
    struct_of,
)
from lifgate.hdl.events import event_layout
from lifgate.hdl.verilog import generate_verilog, port_list
from lifgate.sim.beats import decode_beats
from lifgate.sim.driver import decode_beat
from lifgate.sim.runner import payload_layout

from lifgate.config import ArrayShape, LeakMode, NeuronParams, ResetMode, pack_params
from lifgate.layout import Field, Word

SHAPES = [
    ArrayShape(),
    ArrayShape(neurons=64, lanes=4, groups=4),
    ArrayShape(neurons=4096, lanes=8, groups=1),
    ArrayShape(neurons=65536, lanes=32, groups=1),
    ArrayShape(neurons=18, lanes=3, groups=3, v_width=6, i_width=4, ref_width=2, decay_frac=3,
               step_width=8),
    ArrayShape(neurons=16, lanes=2, groups=1, v_width=32, i_width=32, ref_width=16,
               decay_frac=24, step_width=32),
    ArrayShape(neurons=8, lanes=1, groups=2, v_width=4, i_width=2, ref_width=1, decay_frac=1,
               leak_modes=(LeakMode.SHIFT,)),
    ArrayShape(neurons=1, lanes=1, groups=1),
    ArrayShape(neurons=48, lanes=48, groups=48, v_width=12, decay_frac=20),
]
IDS = [f"n{s.neurons}p{s.lanes}g{s.groups}w{s.v_width}" for s in SHAPES]


@st.composite
def shapes(draw):
    lanes = draw(st.integers(1, 64))
    depth = draw(st.integers(1, 1 << 10))
    neurons = lanes * depth
    divisors = [g for g in range(1, min(neurons, 64) + 1) if neurons % g == 0]
    return ArrayShape(
        neurons=neurons, lanes=lanes, groups=draw(st.sampled_from(divisors + [neurons])),
        v_width=draw(st.integers(4, 32)), i_width=draw(st.integers(2, 32)),
        ref_width=draw(st.integers(1, 16)), decay_frac=draw(st.integers(1, 24)),
        step_width=draw(st.integers(8, 32)),
        reset_modes=draw(st.sampled_from([("value", "subtract"), tuple(ResetMode)])),
    )


def _docs_words(shape):
    """The words of ``docs/hardware.md``, derived here from the shape by hand:
    ``{word: [(name, offset, width), ...]}``."""
    w, p = shape.v_width, shape.lanes
    aw = max(1, ceil_log2(shape.neurons // p))
    words = {
        "params": [("v_th", w), ("v_reset", w), ("v_rest", w), ("v_init", w), ("bias", w),
                   ("leak", max(w, shape.decay_frac)), ("t_ref", shape.ref_width),
                   ("leak_mode", 2),
                   ("reset_mode", 2 if ResetMode.SUBTRACT_AFTER_LEAK in shape.reset_modes else 1)],
        "beat_spikes": [("step", shape.step_width), ("addr", aw), ("spikes", p)],
    }
    words["beat_membrane"] = words["beat_spikes"] + [("v", p * w)]
    words["inputs"] = [("i", p * shape.i_width)]
    out = {}
    for name, fields in words.items():
        offset, placed = 0, []
        for field, width in fields:
            placed.append((field, offset, width))
            offset += width
        out[name] = placed
    return out


def _struct_fields(layout) -> list:
    return [(name, f.offset, Shape.cast(f.shape).width) for name, f in layout]


def _word_fields(word: Word) -> list:
    return [(f.name, f.offset, f.width) for f in word]


def _check_layout(shape):
    layout = shape.layout
    docs = _docs_words(shape)
    for name in ("params", "beat_spikes", "beat_membrane", "inputs"):
        assert _word_fields(getattr(layout, name)) == docs[name], name
    assert layout.addr_width == max(1, ceil_log2(shape.depth))
    assert layout.group_width == max(1, ceil_log2(shape.groups))
    assert layout.neuron_width == max(1, bits_for(shape.neurons - 1))
    # What Amaranth builds from it.
    assert _struct_fields(param_struct(shape)) == docs["params"]
    assert _struct_fields(beat_layout(shape)) == docs["beat_membrane"]
    assert _struct_fields(beat_layout(shape, membrane=False)) == docs["beat_spikes"]
    assert Shape.cast(input_layout(shape)).width == layout.inputs.width
    assert input_layout(shape).length == shape.lanes
    assert Shape.cast(input_layout(shape).elem_shape) == Shape(shape.i_width, signed=True)
    assert Shape.cast(beat_layout(shape)["v"].shape.elem_shape) == Shape(shape.v_width, True)
    assert Shape.cast(event_layout(shape)["neuron"].shape).width == layout.neuron_width
    # The host link's byte counts.
    f = Features(shape, max_payload=65535)
    assert f.param_bytes == -(-param_struct(shape).size // 8) == layout.param_bytes
    assert (f.current_bytes, f.value_bytes, f.spike_bytes) == (
        -(-shape.i_width // 8), -(-shape.v_width // 8), -(-shape.lanes // 8))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_layout_agrees_with_docs_and_structs(shape):
    _check_layout(shape)


@settings(max_examples=60, deadline=None)
@given(shapes())
def test_layout_agrees_with_docs_and_structs_any_shape(shape):
    _check_layout(shape)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("membrane", [True, False])
@pytest.mark.parametrize("noise", [True, False])
def test_ports_of_a_built_array_have_the_layouts_widths(shape, membrane, noise):
    layout = shape.layout
    dut = LIFArray(shape, membrane=membrane, noise=noise)
    dut._MustUse__silence = True  # built for its ports only, never elaborated
    widths = {"__".join(map(str, path)): Shape.cast(m.shape).width
              for path, m in dut.signature.members.flatten() if m.is_port}
    assert widths["param_data"] == layout.param_width
    assert widths["param_group"] == layout.group_width
    assert widths["step"] == layout.step_width
    assert widths["i_stream__payload"] == layout.inputs.width
    assert widths["o_stream__payload"] == layout.beat(membrane).width
    assert _struct_fields(dut.signature.members["o_stream"].signature.members["payload"].shape) \
        == _word_fields(layout.beat(membrane))


def _header_words(text: str) -> dict:
    """The field lists of the Verilog header: ``{"params"|"beat": [(name, offset, width)]}``."""
    header = text.split("\n\n", 1)[0].splitlines()
    words, current = {}, None
    for line in header:
        if line.startswith("// param_data fields"):
            current = words.setdefault("params", [])
        elif line.startswith("// o_stream__payload fields"):
            current = words.setdefault("beat", [])
        elif line.startswith("// i_stream__payload") or line.startswith("//   v: lane"):
            current = None
        elif current is not None:
            for name, msb, lsb in re.findall(r"(\w+) \[(\d+):(\d+)\]", line):
                current.append((name, int(lsb), int(msb) - int(lsb) + 1))
    return words


HEADER_SHAPES = [SHAPES[1], SHAPES[4], SHAPES[6]]


@pytest.mark.parametrize("shape", HEADER_SHAPES, ids=[IDS[SHAPES.index(s)] for s in HEADER_SHAPES])
@pytest.mark.parametrize("membrane", [True, False])
def test_verilog_header_and_ports_follow_the_layout(shape, membrane):
    layout = shape.layout
    text = generate_verilog(shape, membrane=membrane)
    words = _header_words(text)
    assert words["params"] == _word_fields(layout.params)
    assert words["beat"] == _word_fields(layout.beat(membrane))
    assert f"AW = {layout.addr_width}, GW = {layout.group_width}," in text
    # The widths the Verilog itself declares (not the header) are the layout's.
    ports = {name: width for _, width, name in port_list(text.split("\n\n", 1)[1],
                                                          lif_signature(shape, membrane=membrane))}
    assert ports["param_data"] == layout.param_width
    assert ports["param_group"] == layout.group_width
    assert ports["i_stream__payload"] == layout.inputs.width
    assert ports["o_stream__payload"] == layout.beat(membrane).width
    if membrane:
        v = layout.beat_membrane["v"]
        assert (f"//   v: lane p's signed v' in bits [{v.offset}+{v.element_width}*p+"
                f"{v.element_width - 1}:{v.offset}+{v.element_width}*p].") in text


def _params(shape, draw_int):
    mode = LeakMode(draw_int(0, len(shape.leak_modes) - 1, pick=shape.leak_modes))
    lo, hi = shape.v_range
    llo, lhi = shape.leak_range(mode)
    return NeuronParams(
        v_th=draw_int(lo, hi), v_reset=draw_int(lo, hi), v_rest=draw_int(lo, hi),
        v_init=draw_int(lo, hi), bias=draw_int(lo, hi), leak=draw_int(llo, lhi),
        t_ref=draw_int(0, shape.t_ref_max), leak_mode=mode,
        reset_mode=ResetMode(draw_int(0, 1)),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_pack_params_puts_each_field_where_the_struct_reads_it(shape):
    rng = np.random.default_rng(shape.neurons + shape.v_width)

    def draw_int(lo, hi, pick=None):
        value = int(rng.integers(lo, hi, endpoint=True))
        return pick[value] if pick is not None else value

    for _ in range(20):
        p = _params(shape, draw_int)
        word = pack_params(shape, p)
        assert 0 <= word < 1 << shape.layout.param_width
        c = param_struct(shape).from_bits(word)  # Amaranth's reading of the word
        for name in shape.layout.params.names:
            got = c[name]
            got = int(got.value if hasattr(got, "value") else got)
            want = int(getattr(p, name))
            if name == "leak":  # the raw field: a CONST leak is the signed value's bits
                want &= (1 << shape.leak_width) - 1
            assert got == want, name


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("membrane", [True, False])
def test_beat_codecs_read_what_the_struct_holds(shape, membrane):
    """The driver's and the cocotb codec's decoding of random payloads agree with Amaranth's
    reading of the same bits through ``beat_layout``."""
    rng = np.random.default_rng(7 + shape.lanes)
    word_layout = shape.layout.beat(membrane)
    struct = beat_layout(shape, membrane=membrane)
    payloads = [int.from_bytes(rng.bytes(-(-word_layout.width // 8)), "little")
                & ((1 << word_layout.width) - 1) for _ in range(16)]
    text = "".join(format(x, f"0{-(-word_layout.width // 4)}x") + "\n" for x in payloads)
    by_word = decode_beats(text.encode(), word_layout)
    by_json = decode_beats(text.encode(), *payload_layout(shape, membrane), shape.lanes,
                           shape.v_width)
    for i, x in enumerate(payloads):
        c = struct.from_bits(x)
        beat = decode_beat(shape, x, membrane=membrane)
        assert (beat.step, beat.addr, beat.spikes) == (c["step"], c["addr"], c["spikes"])
        for beats in (by_word, by_json):
            assert (beats.step[i], beats.addr[i]) == (c["step"], c["addr"])
            assert [int(b) for b in beats.spikes[i]] == [
                (c["spikes"] >> p) & 1 for p in range(shape.lanes)]
        if membrane:
            v = [c["v"][p] for p in range(shape.lanes)]
            assert list(beat.v) == v
            assert by_word.v[i].tolist() == by_json.v[i].tolist() == v
        else:
            assert beat.v is None and by_word.v is None and by_json.v is None


def test_layout_is_computed_once_per_shape():
    a, b = ArrayShape(neurons=96, lanes=6, groups=2), ArrayShape(neurons=96, lanes=6, groups=2)
    assert a is not b and a.layout is b.layout
    assert param_struct(a) is param_struct(b)
    assert beat_layout(a, membrane=False) is beat_layout(b, membrane=False)
    # The leak modes build no other word: one parameter layout for all of them.
    c = ArrayShape(neurons=96, lanes=6, groups=2, leak_modes=(LeakMode.CONST,))
    assert c.layout is a.layout


def test_a_word_amaranth_would_lay_out_differently_is_refused():
    """The StructLayout builder checks Amaranth's offsets against the word's: a word with a gap
    (or any other difference) does not silently turn into other bits."""
    gap = Word((Field("a", 0, 4), Field("b", 5, 3)))
    with pytest.raises(RuntimeError, match="'b' lies at bits 4"):
        struct_of(gap)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.booleans(), st.sampled_from([None, 1, 3])),
                min_size=1, max_size=6), st.data())
def test_word_pack_unpack_round_trip(specs, data):
    word = Word.of(*((f"f{k}", width * (n or 1), sign, n)
                     for k, (width, sign, n) in enumerate(specs)))
    values = {}
    for f in word:
        ew = f.element_width
        lo, hi = (-(1 << (ew - 1)), (1 << (ew - 1)) - 1) if f.signed else (0, (1 << ew) - 1)
        if f.elements is None:
            values[f.name] = data.draw(st.integers(lo, hi))
        else:
            values[f.name] = tuple(data.draw(st.lists(st.integers(lo, hi), min_size=f.elements,
                                                      max_size=f.elements)))
    packed = word.pack(values)
    assert 0 <= packed < 1 << word.width
    assert word.unpack(packed) == values
    assert word.bytes == -(-word.width // 8)
