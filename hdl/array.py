"""The LIF neuron array: ``docs/numerics.md`` in gateware, with the ``docs/hardware.md`` ports."""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for
from lifgate.hdl.dsp import KINDS as MULTIPLIERS
from lifgate.hdl.dsp import RegisteredMul
from lifgate.hdl.noise import Z_WIDTH, LaneNoise
from lifgate.hdl.ram import ECP5_MAX_DEPTH, PipelinedRAM
from lifgate.hdl.ram import KINDS as MEMORIES

from lifgate.config import (
    DEFAULT_RESET_MODES,
    ArrayShape,
    ConfigError,
    ConfigTypeError,
    LeakMode,
    ResetMode,
    shape_of,
)
from lifgate.layout import LEAK_MODE_WIDTH, RESET_MODE_WIDTH, Field, Word

__all__ = [
    "LATENCY",
    "LIFArray",
    "ArrayProbes",
    "Lane",
    "LaneProbes",
    "PIPELINES",
    "LeakModeHW",
    "ResetModeHW",
    "ResetModeWideHW",
    "addr_width",
    "beat_layout",
    "group_width",
    "input_layout",
    "lane_signature",
    "lif_signature",
    "param_struct",
    "reset_mode_hw",
    "struct_of",
]


class LeakModeHW(enum.Enum, shape=LEAK_MODE_WIDTH):
    """Leak mode field of a parameter set: the codes of :class:`lifgate.config.LeakMode`."""

    SHIFT = int(LeakMode.SHIFT)
    MULT = int(LeakMode.MULT)
    CONST = int(LeakMode.CONST)


class ResetModeHW(enum.Enum, shape=RESET_MODE_WIDTH):
    """Reset mode field of a parameter set of a shape that builds VALUE and SUBTRACT only (the
    default, 1 bit): those codes of :class:`lifgate.config.ResetMode`."""

    VALUE = int(ResetMode.VALUE)
    SUBTRACT = int(ResetMode.SUBTRACT)


class ResetModeWideHW(enum.Enum, shape=2):
    """Reset mode field of a parameter set of a shape that builds SUBTRACT_AFTER_LEAK (2 bits):
    the codes of :class:`lifgate.config.ResetMode`."""

    VALUE = int(ResetMode.VALUE)
    SUBTRACT = int(ResetMode.SUBTRACT)
    SUBTRACT_AFTER_LEAK = int(ResetMode.SUBTRACT_AFTER_LEAK)


assert {m.name: m.value for m in LeakModeHW} == {m.name: m.value for m in LeakMode}
assert {m.name: m.value for m in ResetModeWideHW} == {m.name: m.value for m in ResetMode}
assert {m.name: m.value for m in ResetModeHW} == {m.name: m.value for m in DEFAULT_RESET_MODES}


def reset_mode_hw(shape: ArrayShape) -> type:
    """The enum of ``shape``'s ``reset_mode`` field: :class:`ResetModeHW` (1 bit) or, when the
    shape builds SUBTRACT_AFTER_LEAK, :class:`ResetModeWideHW` (2 bits)."""
    return ResetModeHW if shape.reset_width == RESET_MODE_WIDTH else ResetModeWideHW

#: Pipeline latency of the default (``deep``) pipeline: clocks from the clock an update is
#: issued (its address presented to the state memory) to the clock its beat is valid on
#: ``o_stream``, when nothing stalls. An instance's ``latency`` is that of its pipeline.
LATENCY = 9
# The stages of the datapath: _S_READ .. _S_OUT, below with the Lane.

#: The pipeline profiles: for each, which of the register boundaries between logical stages
#: ``k`` and ``k + 1`` (``k = 1 .. 8``) are real registers. ``deep`` registers all of them
#: (latency 9, the fastest clock); ``compact`` merges stage 2 into 1: the compares work on
#: the block RAM's own output register. Latency 8 and ``W + R`` fewer flip-flops per lane,
#: which matters on an iCE40, where a register that carries no logic costs a whole logic
#: cell. (Merging more stages saves more cells but, measured on a full UP5K, costs more clock
#: than it gives: see docs/resources.md.)
PIPELINES = {
    "deep": (True,) * 8,
    "compact": (False, True, True, True, True, True, True, True),
}


def addr_width(shape: ArrayShape) -> int:
    """Width ``AW`` of a lane address: ``shape.layout.addr_width``."""
    return shape.layout.addr_width


def group_width(shape: ArrayShape) -> int:
    """Width ``GW`` of ``param_group``: ``shape.layout.group_width``."""
    return shape.layout.group_width


# The data.StructLayouts below are built from the shape's lifgate.layout.ArrayLayout, once per
# distinct word (cached), and checked against it: Amaranth's offsets are the layout's.


def _field_shape(f: Field):
    """The Amaranth shape of one field of a :class:`~lifgate.layout.Word`."""
    if f.name == "leak_mode":
        return LeakModeHW
    if f.name == "reset_mode":
        return ResetModeHW if f.width == RESET_MODE_WIDTH else ResetModeWideHW
    element = signed(f.element_width) if f.signed else unsigned(f.element_width)
    return element if f.elements is None else data.ArrayLayout(element, f.elements)


@functools.lru_cache(maxsize=256)
def struct_of(word: Word) -> data.StructLayout:
    """The ``data.StructLayout`` of ``word``: its fields, least significant first, signed
    where the word says, ``leak_mode``/``reset_mode`` as :class:`LeakModeHW`/:class:`ResetModeHW`
    and array fields as ``data.ArrayLayout``; each field's offset and width checked against
    the word's."""
    layout = data.StructLayout({f.name: _field_shape(f) for f in word})
    for f in word:
        got = layout[f.name]
        width = Shape.cast(got.shape).width
        if (got.offset, width) != (f.offset, f.width):
            raise RuntimeError(
                f"field {f.name!r} lies at bits {got.offset}+{width} in the StructLayout but at "
                f"{f.offset}+{f.width} in the word's layout: lifgate.layout and hdl.array differ"
            )
    return layout


def param_struct(shape: ArrayShape) -> data.StructLayout:
    """The ``data.StructLayout`` of one parameter set: ``struct_of(shape.layout.params)``.

    Fields, widths and order (least significant first) are those of the shape's
    :class:`~lifgate.layout.ArrayLayout` (``params``), the word
    :func:`lifgate.config.pack_params` packs, so it reads back field by field. ``v_th``,
    ``v_reset``, ``v_rest``, ``v_init`` and ``bias`` are signed; ``leak`` is the raw field (its
    meaning depends on ``leak_mode``); ``leak_mode`` and ``reset_mode`` are :class:`LeakModeHW`
    and :class:`ResetModeHW`.
    """
    return struct_of(shape_of(shape).layout.params)


def beat_layout(shape: ArrayShape, *, membrane: bool = True) -> data.StructLayout:
    """Payload of ``o_stream``: one beat per lane address per step, ``shape.layout.beat()``.

    Fields, least significant first: ``step`` (``step_width``), ``addr`` (``AW``), ``spikes``
    (``P`` bits, bit ``p`` = lane ``p``, i.e. neuron ``addr * P + p``) and, with ``membrane``,
    ``v`` (``P`` signed ``W``-bit values, lane ``p`` in bits ``p*W..``: the new membrane ``v'``).
    """
    return struct_of(shape_of(shape).layout.beat(membrane))


def input_layout(shape: ArrayShape) -> data.ArrayLayout:
    """Payload of ``i_stream``: ``P`` signed ``i_width``-bit currents, lane ``p`` at ``p*IW``."""
    return _field_shape(shape_of(shape).layout.inputs["i"])


def lif_signature(config, *, membrane: bool = True, noise: bool = True) -> wiring.Signature:
    """The signature of ``LIFArray(config, membrane=membrane, noise=noise)``."""
    shape = shape_of(config)
    if not isinstance(membrane, bool):
        raise ConfigTypeError(f"Membrane must be a bool, not {membrane!r}")
    if not isinstance(noise, bool):
        raise ConfigTypeError(f"Noise must be a bool, not {noise!r}")
    members = {
        "param_we": In(1),
        "param_group": In(shape.layout.group_width),
        "param_data": In(param_struct(shape)),
    }
    if noise:
        members["noise_seed"] = In(32)
        members["noise_gain"] = In(16)
    members.update({
        "input_en": In(1),
        "clear": In(1),
        "start": In(1),
        "steps": In(32),
        "busy": Out(1),
        "done": Out(1),
        "step": Out(shape.step_width),
        "i_stream": In(stream.Signature(input_layout(shape))),
        "o_stream": Out(stream.Signature(beat_layout(shape, membrane=membrane))),
    })
    return wiring.Signature(members)


def _saturate(x, width: int):
    """``min(max(x, VMIN), VMAX)`` for a signed ``width``-bit result, with reduction gates only."""
    if len(x) <= width:
        return x
    top = x[width - 1:]  # all equal to the sign bit iff x fits
    neg = x[-1]
    over = ~neg & top.any()
    under = neg & ~top.all()
    vmax = (1 << (width - 1)) - 1
    vmin = -(1 << (width - 1))
    return Mux(over, Const(vmax, signed(width)),
               Mux(under, Const(vmin, signed(width)), x[:width].as_signed()))


#: The logical stages of the datapath, named after the steps of ``docs/numerics.md`` (the
#: number is the clock after issue in the ``deep`` profile; :class:`Lane` has the table).
_S_READ = 1  # the state as read, registered
_S_CMP = 2  # threshold compare and refractory decrement (numerics step 1, its tests)
_S_SEL = 3  # refractory, threshold, reset: s, h, r1 (numerics step 1, its choice)
_S_X = 4  # r' written back; the leak's operand d = h - v_rest (or c)
_S_SHIFT = 5  # barrel shifter / multiplier; the noise product is ready
_S_LEAK = 6  # leak(h) (h when held); the update takes its current from i_stream
_S_SUM = 7  # leak(h) + bias + i + z (numerics step 2, integrate)
_S_SAT = 8  # sat() (numerics step 2)
_S_OUT = 9  # v' written back; the beat (numerics step 3)
assert LATENCY == _S_OUT


def _is_mode(shape: ArrayShape, mode, which: LeakMode):
    """``mode == which``, simplified when the shape builds fewer modes."""
    built = shape.leak_modes
    if which not in built:
        return Const(0)
    if len(built) == 1:
        return Const(1)
    return mode == LeakModeHW(which.value)


def _addend_shape(v_width: int) -> Shape:
    """Shape of the noise addend ``256 * bias - 510 * gain`` (``bias`` W bits, the product 25)."""
    return (Signal(signed(v_width)).shift_left(8) - Signal(25)).shape()


def lane_signature(shape: ArrayShape, *, noise: bool = True) -> wiring.Signature:
    """The signature of ``Lane(shape, noise=noise)`` (see :class:`Lane`, Members)."""
    shape = shape_of(shape)
    if not isinstance(noise, bool):
        raise ConfigTypeError(f"Noise must be a bool, not {noise!r}")
    W, R = shape.v_width, shape.ref_width
    members = {
        "ce": In(1),
        "v": In(signed(W)),
        "r": In(unsigned(R)),
        "params": In(param_struct(shape)),
        "i": In(signed(shape.i_width)),
    }
    if noise:
        members["bz"] = In(signed(max(W, Z_WIDTH) + 1))
        if shape.groups > 1:
            members["off510"] = In(unsigned(25))
            members["addend"] = Out(_addend_shape(W))
    members.update({
        "r_next": Out(unsigned(R)),
        "spike": Out(shape.count_width),
        "v_next": Out(signed(W)),
    })
    return wiring.Signature(members)


@dataclass(frozen=True)
class LaneProbes:
    """The stage registers of one :class:`Lane`, by name: the formal proofs' view of it.

    :mod:`lifgate.sim.formal` asserts that each register of an update in flight equals the
    reference step's intermediate value (``LaneProof._invariants``); these fields are the names
    it uses, nothing else of the lane is read. A field is the register that *enters* the stage
    of its number (``sub3`` is computed in stage 2 and read in stage 3), except ``lk``: the
    leak as computed in stage 6 (combinational, from ``t6`` or ``m6``). With the ``compact``
    pipeline ``v2`` and ``r2`` are the memories' read data (no register), and the other fields
    move by one clock (:meth:`LIFArray.phys`). Fields of leak modes the shape does not build
    are ``None``. The lane makes the registers at construction, so they can be named before it
    is elaborated; ``lk`` is the expression itself, set when the lane is built (a named wire for
    it would be one more wire in the generated Verilog).
    """

    v2: Value  #: v as read (stage 1 -> 2)
    r2: Value  #: r as read
    v3: Value  #: v
    sub3: Value  #: v - v_th
    ge3: Value  #: v >= v_th
    refr3: Value  #: r != 0
    rdec3: Value  #: r - 1
    rmore3: Value  #: r > 1
    s4: Value  #: the spike s (and s5 .. s9 after it)
    hold4: Value  #: r1 > 0: the update is held (and hold5, hold6)
    h4: Value  #: h, the leak's operand
    r4: Value  #: r1, written back as r'
    e4: Value | None  #: e != 0: a spike in SUBTRACT_AFTER_LEAK mode (and e5); built only
    sub4: Value | None  #: v - v_th; SUBTRACT_AFTER_LEAK built only
    s5: Value
    hold5: Value
    h5: Value  #: h - e, the leak's additive term and the held value (and h6)
    x5: Value  #: d = h - v_rest (SHIFT, MULT) or c (CONST)
    e5: Value | None
    k5: Value | None  #: the shift k (0 for CONST); SHIFT built only
    mult5: Value | None  #: MULT and not held; MULT built only
    s6: Value
    hold6: Value
    h6: Value
    vr6: Value | None  #: v_rest - e, MULT's additive term; MULT and SUBTRACT_AFTER_LEAK only
    mult6: Value | None
    lk: Value | None  #: leak(h) - e, h - e when held (stage 6's expression; set by ``build``)
    s7: Value
    lk7: Value  #: leak(h) - e, h - e when held
    izb7: Value  #: i + bias + z, 0 when held
    s8: Value
    tot8: Value  #: leak(h) + bias + i + z - e (exact), h - e when held
    s9: Value
    v9: Value  #: v' = sat(tot8)
    #: multi-spike output only (``spike_max > 1``): the count ``min(v // v_th, spike_max)``
    #: of stage 2's restoring quotient (``sub3`` is then ``v - q3 v_th``); else ``None``
    q3: Value | None = None


class Lane(wiring.Component):
    """One lane of :class:`LIFArray`: the step of ``docs/numerics.md`` as a pipeline.

    The lane holds no state of its own (the array keeps ``v``, ``r`` and the parameter sets in
    memories): each clock in which ``ce`` is high, every update in flight moves one stage on,
    and a new one enters with the state read for it (``v``, ``r``). The stages are named after
    the steps of ``docs/numerics.md``, section "One step"; the golden model's lines are those
    of :func:`lifgate.golden.fixed.step_scalar` (the literal transcription of that section):

    ======  ==============  =====================================  ==============================
    stage   method          golden ``step_scalar``                 ``docs/numerics.md``
    ======  ==============  =====================================  ==============================
    1       ``_read``       arguments ``v``, ``r``                 "State": v, r of neuron n
    2       ``_compare``    ``r > 0``, ``v >= p.v_th``,            step 1, the tests; "Threshold"
                            ``r - 1``, ``v - p.v_th``
    3       ``_select``     ``s, r1, h = ...`` (three cases),      step 1, the choice; VALUE /
                            ``e``                                  SUBTRACT / ..._AFTER_LEAK
    4       ``_operand``    ``d = h - p.v_rest``                   the leak table, ``d``; CONST's
                                                                   ``c``; step 3, ``r' = r1``
    5       ``_shift``      ``(d + ((1 << k) >> 1)) >> k``,        the leak table; "Rounding";
                            ``d * p.leak``; ``z``                  "Noise" (``z``)
    6       ``_leak``       ``leaked = ...``; ``x = h`` if held    the leak table; step 2, hold
    7       ``_integrate``  ``leaked + p.bias + i + z``            step 2, integrating
    8       ``_saturation`` ``min(max(x, vmin), vmax)``            step 2, ``sat()``;
                                                                   "Saturation"
    9       (output)        ``return s, v', r1``                   step 3, "Outputs"
    ======  ==============  =====================================  ==============================

    The shifted leak (stages 5 and 6). Golden (SHIFT, ``k`` in ``0 .. W``): ``leak(h) = h -
    ((d + half) >> k)`` with ``half = (1 << k) >> 1``; CONST: ``h - c``. The lane computes
    instead ``t = (2 d) >> k`` in stage 5 (one barrel shift; CONST takes ``d = c``, ``k = 0``)
    and ``lk = h + ~(t >> 1) + ~t[0]`` in stage 6 (one adder, ``~t[0]`` its carry in); a held
    update has ``t = 0``, so ``lk = h``. The algebra that makes the two equal, steps (a) to
    (c), is the comment at the ``lk =`` line of :meth:`_leak`;
    ``tests/test_hdl_leak_algebra.py`` checks it at the lane's register widths (exhaustively
    for ``W = 4 .. 10``, by hypothesis up to 32), and ``tests/test_hdl_lane.py`` runs this lane
    alone against ``step_scalar``.

    The MULT leak is the golden expression itself, ``v_rest + ((d D + 2^(F-1)) >> F)``, with
    the rounding constant and ``v_rest`` (``vr6 = v_rest - e``) packed into one addend:
    ``Cat(2^(F-1), v_rest)`` is
    ``v_rest * 2^F + 2^(F-1)``, and ``(d D + v_rest 2^F + 2^(F-1)) >> F`` is the golden value
    because ``v_rest 2^F`` is a multiple of ``2^F``.

    SUBTRACT_AFTER_LEAK (``e = v_th`` at a spike, else 0). The leak acts on ``h = v`` and
    ``v_th`` leaves in the integrate sum, ``leak(h) + bias + i + z - e``. The lane adds no
    adder for it: the leak's additive term is ``h`` (SHIFT, CONST: ``lk = h + ...``) or
    ``v_rest`` (MULT), so ``- e`` goes into that term before the leak's own adder. Stage 4
    sends ``h - e`` on as ``h5`` (``v - v_th`` was computed in stage 2 for SUBTRACT: ``sub4``
    carries it, a multiplexer picks it), while ``x5 = h - v_rest`` still uses ``h4 = v``;
    stage 5 computes MULT's ``v_rest - e`` (``vr6``, a subtraction of two parameters beside
    the multiplier) for the rounding addend. A held spike then holds ``h - e = v - v_th``.
    The sum stays exact: ``leak(h) - e`` lies in ``W + 2`` bits like SUBTRACT's leak.

    Holding. The golden model skips the leak when ``r1 > 0`` (``x = h``); the lane computes
    every stage and forces the held result: ``t = 0`` (so ``lk = h``) and ``izb = 0``. Noise
    is still drawn (``docs/numerics.md``: every update advances the generator).

    Widths: ``h`` needs ``W + 1`` bits (``v - v_th``), ``d`` and the leak ``W + 2``, the sum
    one more than the widest of its terms; nothing wraps before stage 8's saturation.

    The pipeline profile (:data:`PIPELINES`) decides which stage boundaries are registers; with
    ``memory="ecp5"`` the stage-1 register is the block RAM's own output register, outside the
    lane (``v`` and ``r`` then are stage 2's inputs).

    Parameters
    ----------
    shape : ArrayShape
        Widths, the leak modes built and the number of parameter groups.
    noise : bool
        ``z`` comes from the array's noise source (ports ``bz`` and, with groups, ``off510``
        and ``addend``); without it ``z = 0``.
    pipeline, multiplier, memory : str
        As for :class:`LIFArray` (the lane's share of them).
    prefix : str
        Put before the names of the lane's registers (``"l3_"`` in lane 3 of an array, which
        builds its lanes into its own module with :meth:`build`).

    Members
    -------
    ce : ``In(1)``
        Pipeline enable: all stages move on together.
    v, r : ``In(signed(W))``, ``In(unsigned(R))``
        The state of the update entering stage 1 (the state memories' read data).
    params : ``In(param_struct(shape))``
        The parameter set of the update in stage 2 (with one group: the loaded set, constant
        during a run; with groups the lane carries each field on to the stages that use it).
    i : ``In(signed(IW))``
        The input current of the update in stage 6 (0 when the input stream is off).
    bz : ``In(signed(max(W, Z_WIDTH) + 1))``
        ``bias + z`` of the update in stage 6, from the noise source (only with ``noise``).
    off510 : ``In(25)``
        ``510 * gain`` (only with ``noise`` and groups).
    addend : ``Out(...)``
        ``256 * bias - 510 * gain`` of the update in stage 5, for the noise source (only with
        ``noise`` and groups; with one group the array computes it once for all lanes).
    r_next : ``Out(unsigned(R))``
        ``r'`` of the update in stage 4, to write back.
    spike, v_next : ``Out(1)``, ``Out(signed(W))``
        ``s`` and ``v'`` of the update in the last stage (``latency``), to write back and send.

    Attributes
    ----------
    probes : LaneProbes
        The stage registers, by name (for :mod:`lifgate.sim.formal`); made at construction,
        driven by :meth:`build` (which :meth:`elaborate` calls).
    """

    def __init__(self, shape: ArrayShape, *, noise: bool = True, pipeline: str = "deep",
                 multiplier: str = "fabric", memory: str = "inferred", prefix: str = ""):
        shape = shape_of(shape)
        if not isinstance(prefix, str):
            raise ConfigTypeError(f"Prefix must be a str, not {prefix!r}")
        if pipeline not in PIPELINES:
            raise ConfigError(f"Pipeline must be one of {', '.join(map(repr, PIPELINES))}, "
                             f"not {pipeline!r}")
        if multiplier not in MULTIPLIERS:
            raise ConfigError(f"Multiplier must be one of {', '.join(map(repr, MULTIPLIERS))}, "
                             f"not {multiplier!r}")
        if memory not in MEMORIES:
            raise ConfigError(f"Memory must be one of {', '.join(map(repr, MEMORIES))}, "
                             f"not {memory!r}")
        self._shape = shape
        self._after = ResetMode.SUBTRACT_AFTER_LEAK in shape.reset_modes
        self._noise = noise
        self._bounds = PIPELINES[pipeline]
        self._multiplier = multiplier
        self._memory = memory
        self._prefix = prefix
        super().__init__(lane_signature(shape, noise=noise))
        self.probes = self._make_probes()

    def _make_probes(self) -> LaneProbes:
        """The stage registers (and the wire ``lk``), made here so that they can be named
        before the lane is elaborated."""
        shape = self._shape
        W, R, modes = shape.v_width, shape.ref_width, set(shape.leak_modes)
        after = self._after  # SUBTRACT_AFTER_LEAK built: e4, sub4, e5, vr6
        bz = signed(max(W, Z_WIDTH) + 1) if self._noise else signed(W)
        izb = (Signal(signed(shape.i_width)) + Signal(bz)).shape()
        cw = shape.count_width  # the spike s: a bit, or a count (multi-spike output)
        shapes = {
            "v2": signed(W), "r2": unsigned(R), "v3": signed(W), "sub3": signed(W + 1),
            "ge3": 1, "refr3": 1, "rdec3": unsigned(R), "rmore3": 1,
            "s4": cw, "hold4": 1, "h4": signed(W + 1), "r4": unsigned(R),
            "e4": 1 if after else None, "sub4": signed(W + 1) if after else None,
            "s5": cw, "hold5": 1, "h5": signed(W + 1), "x5": signed(W + 2),
            "e5": 1 if after else None,
            "k5": bits_for(W) if LeakMode.SHIFT in modes else None,
            "mult5": 1 if LeakMode.MULT in modes else None,
            "s6": cw, "hold6": 1, "h6": signed(W + 1),
            "vr6": signed(W + 1) if LeakMode.MULT in modes and after else None,
            "mult6": 1 if LeakMode.MULT in modes else None,
            "lk": None,  # an expression, set by build
            "s7": cw, "lk7": signed(W + 2), "izb7": izb,
            "s8": cw, "tot8": (Signal(signed(W + 2)) + Signal(izb)).shape(),
            "s9": cw, "v9": signed(W),
            "q3": cw if cw > 1 else None,
        }
        return LaneProbes(**{
            name: None if shp is None else Signal(shp, name=self._prefix + name, reset_less=True)
            for name, shp in shapes.items()
        })

    def elaborate(self, platform):
        m = Module()
        c = self.build(m)
        m.d.comb += [
            self.r_next.eq(self.probes.r4),
            self.spike.eq(self.probes.s9),
            self.v_next.eq(self.probes.v9),
        ]
        if c.bias_k5 is not None:
            m.d.comb += self.addend.eq(c.bias_k5)
        return m

    def build(self, m, *, ce=None, v=None, r=None, params=None, i=None, bz=None, off510=None,
              after=None, leak_mul_name=None):
        """Add the lane's logic to the module ``m``; returns the build's namespace (``bias_k5``:
        the noise addend register, with noise and groups, else ``None``).

        :meth:`elaborate` builds the lane alone, on its own ports. :class:`LIFArray` builds
        its lanes into its own module and binds the inputs (``ce``, ``v``, ``r``, ``params``,
        ``i``, ``bz``, ``off510``) to its own values instead of the ports; ``after`` maps a stage
        method's name to a function of the namespace called right after that stage (the
        array's write-back and noise statements), so the array's statements come in the
        order the generated Verilog has always had (see :class:`LIFArray`, "Structure"), and
        ``leak_mul_name`` names the MULT multiplier's submodule (``multiplier="ecp5"``;
        default ``prefix + "leak_mul"``). The results are ``probes.r4`` (r'), ``probes.s9`` and
        ``probes.v9``."""
        ce = self.ce if ce is None else ce
        c = types.SimpleNamespace(
            m=m, ce=ce, v=self.v if v is None else v, r=self.r if r is None else r,
            i=self.i if i is None else i,
            bz=(self.bz if bz is None else bz) if self._noise else None,
            off510=(self.off510 if off510 is None else off510)
            if self._noise and self._shape.groups > 1 else None,
            bias_k5=None,
            leak_mul_name=self._prefix + "leak_mul" if leak_mul_name is None else leak_mul_name,
        )
        c.par = self._param_pipe(m, self.params if params is None else params, ce)
        after = after or {}
        for name in ("_read", "_compare", "_select", "_operand", "_shift", "_leak",
                     "_integrate", "_saturation"):
            getattr(self, name)(c)
            if name in after:
                after[name](c)
        return c

    # The stages, in order. Their registers are those of `self.probes`, made in __init__.

    def _reg(self, shape_, name):
        r = getattr(self.probes, name)
        assert r.shape() == Shape.cast(shape_), (name, r.shape(), shape_)
        return r

    def _stage(self, c, k, *pairs):
        """The values computed in logical stage ``k``, into stage ``k + 1``: registers, or
        wires when the profile merges the two stages."""
        if self._bounds[k - 1]:
            with c.m.If(c.ce):
                c.m.d.sync += [dst.eq(src) for dst, src in pairs]
        else:
            c.m.d.comb += [dst.eq(src) for dst, src in pairs]

    def _read(self, c):
        # Stage 1: the state as read, registered (block RAM outputs are slow). With memory
        # 'ecp5' the register is the blocks' own output register, outside the lane.
        W, R = self._shape.v_width, self._shape.ref_width
        v2, r2 = self._reg(signed(W), "v2"), self._reg(R, "r2")
        if self._memory == "ecp5":
            c.m.d.comb += [v2.eq(c.v), r2.eq(c.r)]
        else:
            self._stage(c, _S_READ, (v2, c.v), (r2, c.r))

    def _compare(self, c):
        # Stage 2 (S_CMP), numerics step 1, its tests: compares and decrements.
        W, R, par, stage = self._shape.v_width, self._shape.ref_width, c.par, self._stage
        reg = self._reg
        v2, r2 = self.probes.v2, self.probes.r2
        v_th = par(2, "v_th")
        v3, sub3, ge3 = reg(signed(W), "v3"), reg(signed(W + 1), "sub3"), reg(1, "ge3")
        refr3, rdec3, rmore3 = reg(1, "refr3"), reg(R, "rdec3"), reg(1, "rmore3")
        sub, more = v2 - v_th, []
        cw = self._shape.count_width
        if cw > 1:
            # Multi-spike output (docs/numerics.md): q = min(v // v_th, 2^cw - 1) for v >= 0,
            # v_th >= 1, without a divider: restoring quotient, cw compare-subtract steps
            # against v_th << j (j = cw-1 .. 0), each keeping the difference when it is >= 0;
            # the remainder v - q v_th is h in SUBTRACT mode (0 <= it <= v, so W bits hold
            # it). Below v_th (no spike) nothing is subtracted. tests/test_hdl_multispike.py.
            rem, bits = v2, []
            for j in reversed(range(cw)):
                diff = rem - (v_th << j)
                take = diff >= 0
                bits.append(take)
                rem = Mux(take, diff, rem)
            sub = rem
            more = [(reg(cw, "q3"), Cat(*reversed(bits)))]
        stage(
            c, 2, (v3, v2), (sub3, sub), (ge3, v2 >= v_th),
            (refr3, r2.any()), (rdec3, r2 - 1), (rmore3, r2[1:].any()), *more,
        )

    def _select(self, c):
        # Stage 3 (S_SEL), numerics step 1, its choice: refractory, threshold, reset.
        m, W, R, par = c.m, self._shape.v_width, self._shape.ref_width, c.par
        reg = self._reg
        v3, sub3, ge3 = self.probes.v3, self.probes.sub3, self.probes.ge3
        refr3, rdec3, rmore3 = self.probes.refr3, self.probes.rdec3, self.probes.rmore3
        t_ref = par(3, "t_ref")
        mode = par(3, "reset_mode")
        hw = reset_mode_hw(self._shape)
        value_mode = mode == hw.VALUE
        fire = Signal(name=self._prefix + "fire")
        sel = Signal(name=self._prefix + "sel")  # h is not v
        fire_sub = fire  # a spike that subtracts v_th from h (SUBTRACT)
        if self._after:
            after_mode = mode == hw.SUBTRACT_AFTER_LEAK
            fire_sub = fire & ~after_mode
        m.d.comb += [
            fire.eq(~refr3 & ge3),
            sel.eq(Mux(value_mode, refr3 | fire, fire_sub)),
        ]
        h = Mux(sel, Mux(value_mode, par(3, "v_reset"), sub3), v3)
        r_next = Mux(refr3, rdec3, Mux(fire, t_ref, 0))
        hold = Mux(refr3, rmore3, fire & t_ref.any())
        cw = self._shape.count_width
        s4, hold4, h4 = reg(cw, "s4"), reg(1, "hold4"), reg(signed(W + 1), "h4")
        r4 = reg(R, "r4")
        s = fire if cw == 1 else Mux(fire, self.probes.q3, 0)  # the spike count
        pairs = [(s4, s), (hold4, hold), (h4, h), (r4, r_next)]
        if self._after:
            # SUBTRACT_AFTER_LEAK at a spike: the leak's operand is h = v (h4), its additive
            # term h - v_th, already computed in stage 2 (sub3): carried on as sub4 and chosen
            # in stage 4 for h5 (a multiplexer, no adder). MULT's additive term is v_rest: see
            # _shift. (Not with multi-spike output: the shape refuses the pair.)
            e4, sub4 = reg(1, "e4"), reg(signed(W + 1), "sub4")
            pairs += [(e4, fire & after_mode), (sub4, sub3)]
        self._stage(c, 3, *pairs)

    def _operand(self, c):
        # Stage 4 (S_X): r' leaves for the memory. x = h - v_rest (SHIFT, MULT) or c (CONST).
        # SHIFT and CONST share one datapath: leak(h) = h - floor((t + 1) / 2) with
        # t = (2 x) >> k, where CONST uses x = c and k = 0 (so t = 2 c, leak = h - c).
        m, shape, par = c.m, self._shape, c.par
        W, F, modes = shape.v_width, shape.decay_frac, set(shape.leak_modes)
        reg = self._reg
        s4, hold4, h4 = self.probes.s4, self.probes.hold4, self.probes.h4
        mode = par(4, "leak_mode")
        is_const = _is_mode(shape, mode, LeakMode.CONST)
        s5, hold5, h5 = reg(self._shape.count_width, "s5"), reg(1, "hold5"), \
            reg(signed(W + 1), "h5")
        x5 = reg(signed(W + 2), "x5")
        leak_c = par(4, "leak")[:W].as_signed()
        if modes & {LeakMode.SHIFT, LeakMode.MULT}:
            x = Mux(is_const, leak_c, h4 - par(4, "v_rest"))
        else:
            x = leak_c
        pairs = [(s5, s4), (hold5, hold4), (h5, h4), (x5, x)]
        if self._after:
            # From here on h is the leak's additive term (SHIFT, CONST) and the held value:
            # h - e (e = v_th at a SUBTRACT_AFTER_LEAK spike, else 0).
            e4 = self.probes.e4
            pairs[2] = (h5, Mux(e4, self.probes.sub4, h4))
            pairs.append((reg(1, "e5"), e4))
        c.leak_mul = None
        if LeakMode.SHIFT in modes:
            # The shift amount: k for SHIFT, 0 for CONST.
            kw = bits_for(W)
            k5 = reg(kw, "k5")
            pairs.append((k5, Mux(is_const, 0, par(4, "leak")[:kw])))
        if LeakMode.MULT in modes:
            mult5 = reg(1, "mult5")
            pairs.append((mult5, _is_mode(shape, mode, LeakMode.MULT) & ~hold4))
            if self._multiplier == "ecp5":
                # x * D in a MULT18X18D whose operand registers are this stage-4 boundary
                # and whose product register is the stage-5 one.
                assert self._bounds[_S_X - 1] and self._bounds[_S_SHIFT - 1]
                c.leak_mul = leak_mul = RegisteredMul(signed(W + 2), unsigned(F), kind="ecp5")
                m.submodules[c.leak_mul_name] = leak_mul
                m.d.comb += [
                    leak_mul.a.eq(x),
                    leak_mul.b.eq(par(4, "leak")[:F]),
                    leak_mul.ce.eq(c.ce),
                ]
        if self._noise and shape.groups > 1:
            # The noise source's addend 256 bias - 510 gain (see LIFArray._lane_noise).
            bias_k5 = Signal(_addend_shape(W), name=self._prefix + "bias_k5", reset_less=True)
            pairs.append((bias_k5, par(4, "bias").shift_left(8) - c.off510))
            c.bias_k5 = bias_k5
        self._stage(c, 4, *pairs)

    def _shift(self, c):
        # Stage 5 (S_SHIFT): t = (2 x) >> k (0 when held: the leak is then h itself);
        # MULT: x * D. (bias + z: in the noise source.)
        modes, W, F = set(self._shape.leak_modes), self._shape.v_width, self._shape.decay_frac
        par, regs, reg = c.par, self.probes, self._reg
        cw = self._shape.count_width
        s6, hold6, h6 = reg(cw, "s6"), reg(1, "hold6"), reg(signed(W + 1), "h6")
        pairs = [(s6, regs.s5), (hold6, regs.hold5), (h6, regs.h5)]
        if LeakMode.MULT in modes and self._after:
            # MULT's additive term v_rest - e, beside the multiplier (no adder after it).
            vr6 = reg(signed(W + 1), "vr6")
            vr = par(5, "v_rest")
            pairs.append((vr6, Mux(regs.e5, vr - par(5, "v_th"), vr)))
        x5, hold5 = regs.x5, regs.hold5
        c.t6 = c.m6 = None
        if modes & {LeakMode.SHIFT, LeakMode.CONST}:
            c.t6 = t6 = Signal(signed(W + 3), name=self._prefix + "t6", reset_less=True)
            k5 = regs.k5
            t = (x5 << 1) >> k5 if LeakMode.SHIFT in modes else x5 << 1
            pairs.append((t6, Mux(hold5, 0, t)))
        if LeakMode.MULT in modes:
            mult6 = reg(1, "mult6")
            pairs.append((mult6, regs.mult5))
            if self._multiplier == "ecp5":
                c.m6 = c.leak_mul.p
            else:
                prod = x5 * par(5, "leak")[:F]
                c.m6 = Signal(prod.shape(), name=self._prefix + "m6", reset_less=True)
                pairs.append((c.m6, prod))
        self._stage(c, 5, *pairs)

    def _leak(self, c):
        # Stage 6 (S_LEAK, the input stage): the leak (h when held); i + bias + z (0 when
        # held). SHIFT and MULT leak values lie between h and v_rest, CONST's is h - c, so
        # W + 2 bits hold the leak exactly.
        modes, W, F, par = set(self._shape.leak_modes), self._shape.v_width, \
            self._shape.decay_frac, c.par
        reg = self._reg
        h6, hold6, t6, m6 = self.probes.h6, self.probes.hold6, c.t6, c.m6
        lk = None
        if modes & {LeakMode.SHIFT, LeakMode.CONST}:
            # h - floor((t + 1) / 2) = h - (t >> 1) - t[0], as one adder with carry in.
            # Map to the golden step (golden/fixed.py: h - ((d + half) >> k), half =
            # (1 << k) >> 1), with t = (2 d) >> k from stage 5:
            # (a) (d + half) >> k = (t + 1) >> 1: for k = 0 both are d (t = 2 d); for
            #     k >= 1, floor((2 d + 2^k) / 2^(k+1)) = floor((floor(2 d / 2^k) + 1) / 2).
            #     Doubling d lets k = 0 (where half is not 2^(k-1)) share the datapath.
            # (b) (t + 1) >> 1 = (t >> 1) + t[0].
            # (c) two's complement: -y = ~y + 1 and 1 - t[0] = ~t[0] (one bit), so
            #     h - (t >> 1) - t[0] = h + ~(t >> 1) + ~t[0].
            # CONST: x5 = c, k = 0, so t = 2 c and lk = h - c; held: t = 0, lk = h.
            # tests/test_hdl_leak_algebra.py checks this at these register widths.
            lk = h6 + ~(t6 >> 1) + ~t6[0]
        if LeakMode.MULT in modes:
            vr6 = self.probes.vr6 if self._after else par(6, "v_rest")
            rnd = Cat(Const(1 << (F - 1), F), vr6).as_signed()
            lk_mult = (m6 + rnd) >> F
            if lk is None:
                lk = Mux(hold6, h6, lk_mult)
            else:
                lk = Mux(self.probes.mult6, lk_mult, lk)
        # The leak, for the probes (an expression: naming it would add a wire to the Verilog).
        object.__setattr__(self.probes, "lk", lk)
        bz6 = c.bz if self._noise else par(6, "bias")
        izb = c.i + bz6
        s7, lk7 = reg(self._shape.count_width, "s7"), reg(signed(W + 2), "lk7")
        izb7 = reg(izb.shape(), "izb7")
        self._stage(c, 6, (s7, self.probes.s6), (lk7, lk), (izb7, Mux(hold6, 0, izb)))

    def _integrate(self, c):
        # Stage 7 (S_SUM): leak(h) + bias + i + z.
        reg = self._reg
        total = self.probes.lk7 + self.probes.izb7
        s8, tot8 = reg(self._shape.count_width, "s8"), reg(total.shape(), "tot8")
        self._stage(c, 7, (s8, self.probes.s7), (tot8, total))

    def _saturation(self, c):
        # Stage 8 (S_SAT): v' = sat(...); stage 9 (S_OUT) writes it back and sends it.
        W, stage = self._shape.v_width, functools.partial(self._stage, c)
        s8, tot8 = self.probes.s8, self.probes.tot8
        s9, v9 = self._reg(self._shape.count_width, "s9"), self._reg(signed(W), "v9")
        assert self._bounds[7], "v' is a register: it is written back and it is the beat"
        stage(8, (s9, s8), (v9, _saturate(tot8, W)))

    def _param_pipe(self, m, params, ce):
        """``par(k, name)``: field ``name`` of the parameter set of the update in stage ``k``.

        ``params`` belongs to the update in stage 2 (S_CMP). With one group it is the loaded
        set, the same for every stage; with groups, later stages get registered copies that
        move with ``ce`` (built only for the fields a stage uses, when a stage first asks).
        """
        layout = data.Layout.cast(param_struct(self._shape))
        if self._shape.groups == 1:
            def par(k, name):
                return params[name]
            return par
        cache = {}

        def par(k, name):
            if k == _S_CMP:
                return params[name]
            key = (k, name)
            if not self._bounds[k - 2]:
                return par(k - 1, name)  # stages k - 1 and k are one clock
            if key not in cache:
                prev = par(k - 1, name)
                r = Signal(layout[name].shape, name=f"{self._prefix}{name}{k}", reset_less=True)
                with m.If(ce):
                    m.d.sync += r.eq(prev)
                cache[key] = r
            return cache[key]

        return par


@dataclass(frozen=True)
class ArrayProbes:
    """The signals of one :class:`LIFArray` that the formal proofs read, by name.

    :meth:`LIFArray.elaborate` records them in ``LIFArray.probes`` (recording adds no logic);
    :mod:`lifgate.sim.formal`'s stage, memory and control invariants use these fields and
    nothing else of the array. Lists of stage signals are indexed by the clock after issue
    (``vld[k]``, ``paddr[k]`` for ``k = 1 .. latency``; index 0 is ``None``); per-lane lists by
    lane.
    """

    latency: int  #: clocks from issue to the beat
    input_stage: int  #: the clock in which an update takes its current (logical stage 6)
    phys: Callable[[int], int]  #: logical stage of the Lane table -> clock after issue
    vld: list  #: vld[k]: an update is in clock k
    paddr: list  #: paddr[k]: its address
    addr: Value  #: the next address to issue (or to clear)
    fsm: object  #: the control FSM (``fsm.encoding``: state names -> codes)
    clr_vld: Value  #: the clear write strobe (clr_vld1 or clr_vld2, by pipeline)
    clr_vld1: Value  #: a clear address one clock after issue
    clr_vld2: Value  #: ... two clocks after
    clr_addr1: Value
    clr_addr2: Value
    drained: Value  #: nothing in flight, as seen a clock ago
    wants_input: Value  #: vld[input_stage] & input_en
    input_en: Value  #: the run takes currents from i_stream
    preg: Value | None  #: the parameter register (one group), else None
    v_read: list  #: per lane, the v memory's read port (``.data``)
    r_read: list  #: per lane, the r memory's read port
    v_mem: list  #: per lane, the v Memory (None unless one inferred memory)
    r_mem: list  #: per lane, the r Memory
    lanes: list  #: per lane, its :class:`LaneProbes`


class LIFArray(wiring.Component):
    """An array of ``N`` fixed-point LIF neurons, time-multiplexed over ``P`` lanes.

    Computes ``docs/numerics.md`` bit for bit. Neuron ``n`` lives in lane ``n % P`` at address
    ``n // P``; each lane keeps its neurons' membrane ``v`` and refractory counter ``r`` in two
    :class:`~amaranth.lib.memory.Memory` instances of depth ``D = N // P`` (block RAM / SPRAM),
    and its own copy of the ``G`` parameter sets: a memory of depth ``G`` when ``G > 1`` (indexed
    by the neuron's group), one register set shared by all lanes when ``G == 1``.

    Structure. :meth:`elaborate` composes the control (the pipeline's valid bits and enable,
    the clear/run sequencer), the parameter register or memories, and per lane its two state
    memories, its noise source and one :class:`Lane`: the datapath of the table below, whose
    docstring maps each stage to the golden model's line and the rule of ``docs/numerics.md``.
    The lanes are built into the array's own module (:meth:`Lane.build`, their registers named
    ``l<p>_...``), not as Verilog modules of their own, as before the lane was split out, and
    the generated Verilog is byte for byte the one of the tree before the split (checked for
    the default, UP5K and ECP5 shapes of ``lifgate generate``, a 4-group shape, the resource
    table's arrays and the board tops). That is kept on purpose: Amaranth numbers its anonymous
    wires (``$123``) in the order in which statements are added, and the same logic with other
    numbers and names placed measurably slower (UP5K 4096 x 8, no noise: 45.2-46.1 MHz at
    nextpnr seeds 1-3 against 48.1-49.3). So: a lane works on this module's own values
    (``Lane.build``'s bindings, not the lane's ports, which would each add a wire), the
    write-back and noise statements are passed to it to run right after the stage they follow,
    the control's statements come in their old order (:meth:`_enable`, :meth:`_counters`,
    :meth:`_pipeline_control`, :meth:`_sequencer`) and every signal keeps its old name
    (``clr_vld1`` and its kin are still unnamed). ``tests/test_hdl_lane.py`` checks that the
    lanes add no wire; a change that moves a statement shows in ``lifgate generate``'s diff.

    Pipeline. A run of ``steps`` timesteps issues, per step, the addresses ``0 .. D-1`` in
    order, one per clock, to all lanes at once; each update then moves through ``latency``
    (9 with the default ``deep`` pipeline) register stages, so each lane retires one neuron
    update per clock:

    =====  =====================================================================================
    stage  work (in the clock the update spends there)
    =====  =====================================================================================
    0      issue: address to the ``v`` and ``r`` memories (and the group to the parameter
           memory, read a clock later)
    1      ``v``, ``r`` as read are registered (block RAM outputs are slow to route; with
           ``memory="ecp5"`` the register is the block RAM's own output register); the
           ``compact`` pipeline has no such register: its stage 2 works on the read data
    2      ``v >= v_th``, ``v - v_th``, ``r != 0``, ``r - 1``, ``r > 1``
    3      refractory, threshold, reset: spike, ``h``, ``r'``, hold (``r' > 0``)
    4      ``r'`` written back; ``x = h - v_rest`` (SHIFT, MULT) or ``c`` (CONST)
    5      SHIFT/CONST: ``t = (2 x) >> k`` (barrel shifter, ``k = 0`` for CONST), 0 when held;
           MULT: ``x * D`` (multiplier); ``bias + z`` from the noise product
    6      leak ``h - floor((t + 1) / 2)`` (= ``h - c`` for CONST, ``h`` when held) or
           ``v_rest + ((x D + 2^(F-1)) >> F)``; ``i + bias + z`` (0 when held), ``i`` taken
           from ``i_stream`` in this clock
    7      sum
    8      saturation
    9      ``v'`` written back; the beat is valid on ``o_stream``
    =====  =====================================================================================

    Only the leak modes in ``shape.leak_modes`` are built. An update issued in clock ``c`` is
    valid on ``o_stream`` in clock ``c + latency`` if nothing stalls (``latency`` is 9,
    :data:`LATENCY`, for the ``deep`` pipeline and 8 for the ``compact`` one; the stage
    numbers above are those of ``deep``).

    Between timesteps the pipeline drains: the first address of step ``t + 1`` is issued only
    after the last beat of step ``t`` has left ``o_stream``. Every ``v``/``r`` write of a step
    therefore lands before any read of the next one, so no read-after-write forwarding is
    needed, whatever ``D`` and however long a stall. Without backpressure a step takes
    ``D + latency + 2`` clocks, a run of ``T`` steps ``T * (D + latency + 2) + 2`` clocks from
    the ``start`` strobe to ``done``, and a clear ``D + 3`` clocks from the ``clear`` strobe to
    ``done``.

    Backpressure stalls the whole pipeline at once (one clock enable, ``ce``): it stops while
    a beat waits on ``o_stream`` with ``o_stream.ready`` low, and while the update in stage 6
    needs its current (``input_en`` was set at ``start``) and ``i_stream.valid`` is low (the
    beat on ``o_stream`` may still leave then). Nothing is lost or duplicated.
    ``i_stream.ready`` depends combinationally on ``o_stream.ready``, not on
    ``i_stream.valid``; ``o_stream.valid`` is a register.

    Parameters
    ----------
    config : Config or ArrayShape
        Only the shape is used: everything else is loaded at run time through the ports.
    membrane : bool
        Build the membrane readback (the ``v`` field of ``o_stream``).
    noise : bool
        Build the noise source. Without it the ``noise_seed`` and ``noise_gain`` ports do not
        exist and ``z = 0`` (the same as ``gain = 0``); saves one 10 x 16 multiplier per lane.
    lanes_per_enable : int or None
        Structure only, no change in behaviour: the pipeline enable ``ce`` is computed once
        for the control logic and once more for every ``lanes_per_enable`` lanes, each copy
        from its own copies of the two registers it depends on, so that no net has to reach
        every pipeline register of the array (on a large FPGA that fan-out, not logic, limits
        the clock). ``None`` (the default): all lanes share the control logic's enable, the
        smallest design. The copies form separate feedback loops, so synthesis does not merge
        them back. With copies, each lane's noise source gets one more of its own (and its own
        copies of the valid bits up to the stage where it advances).
    valid_copies : bool
        Structure only: with copies of the enable (``lanes_per_enable`` below the lanes), take
        ``i_stream.valid`` once more per copy, from the port ``i_valid_c`` (``In(groups)``,
        group ``g`` the lanes ``g * lanes_per_enable ...``), which the user must keep equal to
        ``i_stream.valid`` (every bit, every clock): its own register copies of the valid
        bit, placed near each group of lanes, so that no one register reaches every copy of
        the enable (the network board's critical path on the ECP5, issue 17). Default False.
    pipeline : str
        Structure only, no change in behaviour: ``"deep"`` (the default) registers every stage
        of the table above, latency 9; ``"compact"`` (:data:`PIPELINES`) leaves out the
        register after the state memories' read data (the compares work on the block RAM's
        own output register), latency 8, for small FPGAs where registers cost cells and the
        clock is slower. The instance's ``latency`` attribute is the latency of the profile
        built.
    multiplier : str
        Structure only, no change in behaviour: how the MULT leak's and the noise source's
        multipliers are built (:mod:`lifgate.hdl.dsp`). ``"fabric"`` (the default): Amaranth
        ``*`` between pipeline registers, any FPGA. ``"ecp5"``: ``MULT18X18D`` instances whose
        own operand and product registers are the pipeline registers around them (needs
        ``v_width <= 16`` with the MULT leak). ``"ice40"``: the noise multiply-add, bias
        included, in one ``SB_MAC16`` per lane (needs ``v_width <= 22`` with noise). The
        vendor primitives are simulated in Icarus and Verilator only, with
        :func:`lifgate.hdl.dsp.simulation_models`.
    memory : str
        Structure only, no change in behaviour: how the ``v`` and ``r`` memories and the
        stage-1 register after them are built (:mod:`lifgate.hdl.ram`). ``"inferred"`` (the
        default): Amaranth memories and a fabric register, any FPGA. ``"ecp5"``: ECP5
        ``DP16KD`` blocks whose own output register is the stage-1 register (needs the
        ``deep`` pipeline and ``D <= 16384``); simulated like the multipliers.

    Members
    -------
    param_we : ``In(1)``
        Write strobe for one parameter set (while idle).
    param_group : ``In(GW)``
        Which set; writes to a group ``>= G`` are ignored.
    param_data : ``In(param_struct(shape))``
        The set, as packed by :func:`lifgate.config.pack_params`.
    noise_seed : ``In(32)``
        Sampled by ``clear`` (only with ``noise``).
    noise_gain : ``In(16)``
        Noise amplitude, used live: keep it stable during a run (only with ``noise``).
    input_en : ``In(1)``
        Sampled by ``start``: 1, every update of the run takes its current from ``i_stream``;
        0, the current is 0 and ``i_stream`` is not read.
    clear : ``In(1)``
        Strobe, when idle: ``v = v_init``, ``r = 0``, ``step = 0``, reseed the noise. Wins
        over a simultaneous ``start``.
    start : ``In(1)``
        Strobe, when idle: run ``steps`` timesteps, continuing from the current state.
    steps : ``In(32)``
        Sampled by ``start``; 0 runs none (``done`` still pulses).
    busy : ``Out(1)``
        High while clearing or running. ``clear`` and ``start`` are ignored while it is high.
    done : ``Out(1)``
        One-clock pulse, in the first idle clock after a clear or a run.
    step : ``Out(step_width)``
        Steps completed since the last clear, modulo ``2**step_width``.
    i_stream : ``In(stream.Signature(input_layout(shape)))``
        Input currents: per step, one beat per address in order, lane ``p`` in element ``p``.
    o_stream : ``Out(stream.Signature(beat_layout(shape, membrane=membrane)))``
        Results: per step, one beat per address in order (``step``, ``addr``, ``spikes``, ``v``).

    Attributes
    ----------
    latency : int
        Clocks from issue to the beat, for the pipeline profile built.
    probes : ArrayProbes or None
        The probe interface of :mod:`lifgate.sim.formal`: recorded by :meth:`elaborate`
        (``None`` before); its ``lanes`` are the lanes' :class:`LaneProbes`. Adds no logic.
    """

    def __init__(self, config, *, membrane: bool = True, noise: bool = True,
                 lanes_per_enable: int | None = None, pipeline: str = "deep",
                 multiplier: str = "fabric", memory: str = "inferred",
                 valid_copies: bool = False):
        shape = shape_of(config)
        if memory not in MEMORIES:
            raise ConfigError(f"Memory must be one of {', '.join(map(repr, MEMORIES))}, "
                             f"not {memory!r}")
        if memory == "ecp5" and pipeline != "deep":
            raise ConfigError(f"memory 'ecp5' is the stage-1 register of the deep pipeline: "
                              f"parameter 'pipeline' must be 'deep' with it, not {pipeline!r}")
        if memory == "ecp5" and shape.depth > ECP5_MAX_DEPTH:
            raise ConfigError(
                f"memory 'ecp5' holds at most {ECP5_MAX_DEPTH} neurons per lane: parameter "
                f"'neurons' / 'lanes' must be at most {ECP5_MAX_DEPTH}, not {shape.depth} "
                f"({shape.neurons} / {shape.lanes}); use more lanes or memory 'inferred'")
        if multiplier not in MULTIPLIERS:
            raise ConfigError(f"Multiplier must be one of {', '.join(map(repr, MULTIPLIERS))}, "
                             f"not {multiplier!r}")
        if multiplier == "ice40" and noise and shape.v_width > 22:
            raise ConfigError(
                f"multiplier 'ice40' adds 32 bits: with the noise source parameter 'v_width' "
                f"must be at most 22, not {shape.v_width}; use multiplier 'fabric' or no noise")
        if multiplier == "ecp5" and LeakMode.MULT in shape.leak_modes and (
                shape.v_width > 16 or shape.decay_frac > 18):
            raise ConfigError(
                f"multiplier 'ecp5' takes 18-bit operands: with leak mode 'mult' parameter "
                f"'v_width' must be at most 16 (not {shape.v_width}) and 'decay_frac' at most 18 "
                f"(not {shape.decay_frac}); use multiplier 'fabric' or leave out leak mode 'mult'")
        if pipeline not in PIPELINES:
            raise ConfigError(f"Pipeline must be one of {', '.join(map(repr, PIPELINES))}, "
                             f"not {pipeline!r}")
        if lanes_per_enable is not None and (
                isinstance(lanes_per_enable, bool) or not isinstance(lanes_per_enable, int)
                or not 1 <= lanes_per_enable <= shape.lanes):
            raise ConfigTypeError(f"Lanes per enable must be None or an integer in "
                            f"[1, {shape.lanes}] (the lanes), not {lanes_per_enable!r}")
        lpe = shape.lanes if lanes_per_enable is None else lanes_per_enable
        if not isinstance(valid_copies, bool) or (valid_copies and lpe == shape.lanes):
            raise ConfigError(f"parameter 'valid_copies' must be a bool, True only with copies of "
                              f"the enable (lanes_per_enable below {shape.lanes}), not "
                              f"{valid_copies!r}")
        self._shape = shape
        self._membrane = membrane
        self._noise = noise
        self._lanes_per_enable = lpe
        #: Groups of lanes with their own enable copy (and ``i_valid_c`` bit); 0 without copies.
        self.enable_groups = -(-shape.lanes // lpe) if lpe < shape.lanes else 0
        self._valid_copies = valid_copies
        self._pipeline = pipeline
        self._multiplier = multiplier
        self._memory = memory
        # The probe interface (an ArrayProbes), recorded by `elaborate`; None before.
        self.probes = None
        self._bounds = PIPELINES[pipeline]
        self.latency = 1 + sum(self._bounds)
        sig = lif_signature(shape, membrane=membrane, noise=noise)
        if valid_copies:
            sig = wiring.Signature({**sig.members, "i_valid_c": In(self.enable_groups)})
        super().__init__(sig)

    @property
    def shape(self) -> ArrayShape:
        return self._shape

    @property
    def membrane(self) -> bool:
        return self._membrane

    @property
    def noise(self) -> bool:
        return self._noise

    @property
    def lanes_per_enable(self) -> int:
        return self._lanes_per_enable

    @property
    def pipeline(self) -> str:
        return self._pipeline

    @property
    def multiplier(self) -> str:
        return self._multiplier

    @property
    def memory(self) -> str:
        return self._memory

    def phys(self, k: int) -> int:
        """The clock (after issue) in which logical stage ``k`` of the table works."""
        return 0 if k == 0 else 1 + sum(self._bounds[:k - 1])

    # ------------------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        c = self._control_signals()
        self._enable(m, c)
        self._counters(m, c)
        self._pipeline_control(m, c)
        self._sequencer(m, c)
        self._parameters(m, c)
        P, W = self._shape.lanes, self._shape.v_width  # noqa: F841 (bench/mutants.py uses W)
        out_spikes = []
        out_v = []
        for p in range(P):
            lane = self._lane(m, c, p)
            s9, v9 = lane.probes.s9, lane.probes.v9
            out_spikes.append(s9)
            out_v.append(v9)
        self._outputs(m, c, out_spikes, out_v)
        self.probes = ArrayProbes(
            latency=self.latency, input_stage=c.IN, phys=self.phys, vld=c.vld, paddr=c.paddr,
            addr=c.addr, fsm=c.fsm, clr_vld=c.clr_vld, clr_vld1=c.clr_vld1,
            clr_vld2=c.clr_vld2, clr_addr1=c.clr_addr1, clr_addr2=c.clr_addr2,
            drained=c.drained, wants_input=c.wants_input, input_en=c.input_en, preg=c.preg,
            v_read=c.v_read, r_read=c.r_read, v_mem=c.v_mem, r_mem=c.r_mem,
            lanes=[lane.probes for lane in c.lanes])
        return m

    def _control_signals(self):
        """The control logic's signals, shared by its parts and the lanes."""
        shape = self._shape
        AW, D, L = addr_width(shape), shape.depth, self.latency
        c = types.SimpleNamespace(IN=self.phys(_S_LEAK))
        c.vld = [None] + [Signal(name=f"vld{k}") for k in range(1, L + 1)]
        c.paddr = [None] + [Signal(AW, name=f"addr{k}", reset_less=True)
                            for k in range(1, L + 1)]
        c.input_en = Signal(name="input_en")  # sampled by start
        c.ce = Signal(name="ce")  # pipeline enable
        c.wants_input = Signal(name="wants_input")  # vld[IN] & input_en, as its own register
        c.addr = Signal(range(D + 1), name="addr")  # next address to issue (or to clear)
        c.issuing = Signal(name="issuing")  # in the ISSUE state
        c.issue = Signal(name="issue")  # an update is issued this clock
        c.clearing = Signal(name="clearing")  # a clear address is issued this clock
        c.reseed = Signal(name="reseed")
        c.restart = Signal(name="restart")  # reset the address and group counters
        c.advance = Signal(name="advance")  # the address moves on
        c.drained = Signal(name="drained")
        # A clear reads the parameter set of the address's group (as an update does: it is there
        # two clocks later) and writes v_init and r = 0 then.
        # (Unnamed, as they always were: their Verilog names are "$signal...".)
        clr_vld1, clr_vld2 = Signal(), Signal()
        clr_addr1, clr_addr2 = Signal(AW, reset_less=True), Signal(AW, reset_less=True)
        c.clr_vld1, c.clr_vld2, c.clr_addr1, c.clr_addr2 = clr_vld1, clr_vld2, clr_addr1, clr_addr2
        c.clr_vld, c.clr_addr = ((c.clr_vld1, c.clr_addr1) if self.phys(_S_CMP) == 1 else
                                 (c.clr_vld2, c.clr_addr2))
        c.lanes, c.v_read, c.r_read, c.v_mem, c.r_mem = [], [], [], [], []
        return c

    def _enable(self, m, c):
        """The pipeline enable ``ce``: low while a beat waits on ``o_stream`` or the input stage
        waits for its current."""
        L, vld, ce, wants_input = self.latency, c.vld, c.ce, c.wants_input
        out_block = Signal()  # a beat waits on o_stream and is not taken
        in_block = Signal()  # the update at the input stage waits for its current
        m.d.comb += [
            out_block.eq(vld[L] & ~self.o_stream.ready),
            in_block.eq(wants_input & ~self.i_stream.valid),
            ce.eq(~out_block & ~in_block),
            self.i_stream.ready.eq(wants_input & ~out_block),
        ]

    def _counters(self, m, c):
        """The sequencer's counters and flags (``last``, ``step``, ``remaining``, ...) and the
        clear's delayed write strobes."""
        D, addr = self._shape.depth, c.addr
        last = Signal()
        m.d.comb += last.eq(addr == D - 1)
        step = Signal(self._shape.step_width)
        remaining = Signal(32)
        last_step = Signal()  # remaining == 1
        # remaining - 1 and remaining == 2, registered: remaining changes at most once a step
        # and a step lasts more than one clock, so these are current whenever they are used.
        rem_dec = Signal(32)
        rem_two = Signal()
        m.d.sync += [rem_dec.eq(remaining - 1), rem_two.eq(remaining == 2)]
        no_steps = Signal()  # steps == 0 at start
        done = Signal()
        m.d.comb += [c.issue.eq(c.issuing & c.ce), self.done.eq(done), self.step.eq(step)]
        m.d.sync += [
            done.eq(0),
            c.clr_vld1.eq(c.clearing), c.clr_addr1.eq(addr),
            c.clr_vld2.eq(c.clr_vld1), c.clr_addr2.eq(c.clr_addr1),
        ]
        c.last, c.step, c.remaining, c.last_step = last, step, remaining, last_step
        c.rem_dec, c.rem_two, c.no_steps, c.done = rem_dec, rem_two, no_steps, done

    def _pipeline_control(self, m, c):
        """The stages' valid bits and addresses, and the copies of ``ce``."""
        P, L, IN = self._shape.lanes, self.latency, c.IN
        vld, paddr, ce, wants_input, input_en = c.vld, c.paddr, c.ce, c.wants_input, c.input_en
        vld_in_prev = vld[IN - 1] if IN > 1 else c.issue

        def ce_copy(tag, group):
            # A copy of ce from its own copies of vld[L] and wants_input (and, with
            # ``valid_copies``, of i_stream.valid: the group's bit of i_valid_c).
            vl_c = Signal(name=f"vld{L}_{tag}")
            wi_c = Signal(name=f"wants_input_{tag}")
            ce_c = Signal(name=f"ce_{tag}")
            valid = self.i_valid_c[group] if self._valid_copies else self.i_stream.valid
            m.d.comb += ce_c.eq(~(vl_c & ~self.o_stream.ready) & ~(wi_c & ~valid))
            with m.If(ce_c):
                m.d.sync += [vl_c.eq(vld[L - 1]), wi_c.eq(vld_in_prev & input_en)]
            with m.Elif(self.o_stream.ready):
                m.d.sync += vl_c.eq(0)
            return ce_c

        c.ce_copy = ce_copy
        # Copies of ce for groups of lanes (see `lanes_per_enable`). Each copy has its own
        # copies of vld[L] and of wants_input, advanced exactly as those are (all copies of ce
        # are equal in every clock), so each copy's net only reaches its own lanes.
        lpe = self._lanes_per_enable
        c.lane_ce = [ce] * P
        c.lane_issue = [c.issue] * P
        # Read enables of the state memories. With one enable for all lanes, they read for an
        # issued update only. With copies, each group reads whenever its pipeline moves: a
        # read for a bubble is harmless (its stage-1 data is never used, vld[1] is 0), and
        # the enable then needs no copy of the control FSM's state, whose net from the middle
        # of the die to every lane's block RAM was the ECP5-85F's critical path (9 ns of
        # routing at 96.9 MHz).
        c.lane_read = [c.issue] * P
        if lpe < P:
            for g in range((P + lpe - 1) // lpe):
                ce_c = ce_copy(f"c{g}", g)
                for p in range(g * lpe, min(P, (g + 1) * lpe)):
                    c.lane_ce[p] = ce_c
                    c.lane_issue[p] = c.issuing & ce_c
                    c.lane_read[p] = ce_c

        with m.If(ce):
            m.d.sync += [vld[1].eq(c.issue), paddr[1].eq(c.addr)]
            m.d.sync += wants_input.eq(vld_in_prev & input_en)
            for k in range(2, L + 1):
                m.d.sync += [vld[k].eq(vld[k - 1]), paddr[k].eq(paddr[k - 1])]
        with m.Elif(self.o_stream.ready):
            # Stalled for an input current: the beat on o_stream leaves anyway.
            m.d.sync += vld[L].eq(0)
        # No update in flight, as seen one clock ago (in DRAIN nothing enters the pipeline, so
        # this is exact there; registered to keep the OR out of the control logic's path).
        m.d.sync += c.drained.eq(~Cat(vld[1:]).any() & ~c.issue)

    def _sequencer(self, m, c):
        """The control FSM (clear, run of ``steps`` timesteps) and the address counter."""
        addr, last, step, remaining = c.addr, c.last, c.step, c.remaining
        last_step, rem_dec, rem_two = c.last_step, c.rem_dec, c.rem_two
        no_steps, done = c.no_steps, c.done
        with m.FSM(name="ctrl") as fsm:
            with m.State("IDLE"):
                with m.If(self.clear):
                    m.d.comb += [c.reseed.eq(1), c.restart.eq(1)]
                    m.d.sync += step.eq(0)
                    m.next = "CLEAR"
                with m.Elif(self.start):
                    m.d.comb += c.restart.eq(1)
                    m.d.sync += [
                        remaining.eq(self.steps),
                        no_steps.eq(self.steps == 0),
                        last_step.eq(self.steps == 1),
                        c.input_en.eq(self.input_en),
                    ]
                    m.next = "LAUNCH"
            with m.State("LAUNCH"):  # one clock, to keep the compares on `steps` registered
                m.d.comb += self.busy.eq(1)
                with m.If(no_steps):
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "ISSUE"
            with m.State("CLEAR"):
                m.d.comb += [self.busy.eq(1), c.clearing.eq(1)]
                with m.If(last):
                    m.next = "CLEAR_TAIL"
            with m.State("CLEAR_TAIL"):
                m.d.comb += self.busy.eq(1)
                with m.If(~c.clr_vld1):  # the last write happens this clock
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
            with m.State("ISSUE"):
                m.d.comb += [self.busy.eq(1), c.issuing.eq(1)]
                with m.If(c.issue & last):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(c.drained):
                    m.d.sync += [
                        step.eq(step + 1),
                        remaining.eq(rem_dec),
                        last_step.eq(rem_two),
                    ]
                    with m.If(last_step):
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += c.restart.eq(1)
                        m.next = "ISSUE"
        c.fsm = fsm
        c.step = step
        m.d.comb += c.advance.eq(c.issue | c.clearing)
        with m.If(c.restart):
            m.d.sync += addr.eq(0)
        with m.Elif(c.advance):
            m.d.sync += addr.eq(addr + 1)

    def _parameters(self, m, c):
        """The parameter register (one group) or write strobe (groups), the noise constants."""
        shape = self._shape
        G, W = shape.groups, shape.v_width
        c.groups = self._group_counters(m, c.restart, c.advance)
        c.preg = c.pwe = c.off510 = c.bias_k = None
        if G == 1:
            c.preg = Signal(param_struct(shape), name="preg", reset_less=True)
            with m.If(self.param_we):
                m.d.sync += c.preg.eq(self.param_data)
        else:
            c.pwe = Signal(name="pwe")
            if G == 1 << group_width(shape):
                m.d.comb += c.pwe.eq(self.param_we)
            else:
                m.d.comb += c.pwe.eq(self.param_we & (self.param_group < G))
        if self._noise:
            # 510 * gain; gain is static while updates are in flight.
            c.off510 = Signal(25, name="off510", reset_less=True)
            m.d.sync += c.off510.eq((self.noise_gain << 9) - (self.noise_gain << 1))
            if G == 1:
                # 256 * bias - 510 * gain, static as well.
                c.bias_k = Signal(_addend_shape(W), name="bias_k", reset_less=True)
                m.d.sync += c.bias_k.eq(c.preg.bias.shift_left(8) - c.off510)

    def _lane(self, m, c, p):
        """Lane ``p``: its state memories, parameter memory (groups), noise source and
        :class:`Lane`, connected to the control signals. Returns the :class:`Lane`.

        The lane is built into ``m`` (:meth:`Lane.build`), not added as a submodule, with its
        inputs bound to this module's values and the write-back and noise statements placed
        after the stages they follow: see the class docstring, "Structure"."""
        shape = self._shape
        W, R = shape.v_width, shape.ref_width
        ce = c.lane_ce[p]
        lane = Lane(shape, noise=self._noise, pipeline=self._pipeline,
                    multiplier=self._multiplier, memory=self._memory, prefix=f"l{p}_")
        lane._MustUse__silence = True  # built into this module, not elaborated on its own
        c.lanes.append(lane)
        params = c.preg if shape.groups == 1 else self._param_memory(m, c, p)
        v_rd, v_wr, v_mem = self._state_memory(m, f"v{p}", signed(W), ce)
        r_rd, r_wr, r_mem = self._state_memory(m, f"r{p}", unsigned(R), ce)
        c.v_read.append(v_rd)
        c.r_read.append(r_rd)
        c.v_mem.append(v_mem)
        c.r_mem.append(r_mem)
        m.d.comb += [
            v_rd.addr.eq(c.addr), v_rd.en.eq(c.lane_read[p]),
            r_rd.addr.eq(c.addr), r_rd.en.eq(c.lane_read[p]),
        ]
        gen = self._lane_noise(m, c, p) if self._noise else None
        bz6 = (Signal(signed(max(W, Z_WIDTH) + 1), name=f"l{p}_bz6") if self._noise
               else None)

        def write_r(lc):
            # Stage 4 (S_X) writes r' back; a clear writes r = 0.
            m.d.comb += [
                r_wr.addr.eq(Mux(c.clr_vld, c.clr_addr, c.paddr[self.phys(_S_X)])),
                r_wr.data.eq(Mux(c.clr_vld, 0, lane.probes.r4)),
                r_wr.en.eq(c.clr_vld | c.vld[self.phys(_S_X)]),
            ]

        def noise_sum(lc):
            # bias + z: the noise source's sum register is the stage-5 boundary.
            m.d.comb += gen.addend.eq(c.bias_k if shape.groups == 1 else lc.bias_k5)
            m.d.comb += bz6.eq(gen.sum >> 8)

        def write_v(lc):
            # Stage 9 (the last) writes v' back; a clear writes v_init.
            m.d.comb += [
                v_wr.addr.eq(Mux(c.clr_vld, c.clr_addr, c.paddr[self.latency])),
                v_wr.data.eq(Mux(c.clr_vld, params["v_init"], lane.probes.v9)),
                v_wr.en.eq(c.clr_vld | c.vld[self.latency]),
            ]

        after = {"_select": write_r, "_saturation": write_v}
        if self._noise:
            after["_shift"] = noise_sum
        lane.build(m, ce=ce, v=v_rd.data, r=r_rd.data, params=params,
                   i=Mux(c.input_en, self.i_stream.payload[p], 0), bz=bz6, off510=c.off510,
                   after=after, leak_mul_name=f"leak_mul{p}")
        return lane

    def _param_memory(self, m, c, p):
        """Lane ``p``'s copy of the ``G`` parameter sets; returns the read data, which belongs
        to the update (or clear) in stage 2 (S_CMP)."""
        ce = c.lane_ce[p]
        pmem = Memory(shape=param_struct(self._shape), depth=self._shape.groups, init=[])
        m.submodules[f"params{p}"] = pmem
        pw = pmem.write_port()
        pr = pmem.read_port()
        # The group is read one clock before the update (or clear) reaches stage 2 (S_CMP):
        # its set is there next to the state.
        if self.phys(_S_CMP) == 1:
            grp_rd = c.groups[p]
        else:
            grp_rd = Signal(len(c.groups[p]), name=f"l{p}_grp1", reset_less=True)
            m.d.sync += grp_rd.eq(Mux(ce, c.groups[p], grp_rd))
        m.d.comb += [
            pw.addr.eq(self.param_group),
            pw.data.eq(self.param_data),
            pw.en.eq(c.pwe),
            pr.addr.eq(grp_rd),
            pr.en.eq(ce),
        ]
        return pr.data

    def _lane_noise(self, m, c, p):
        """Lane ``p``'s noise source (returned), giving the lane ``bias + z`` for its stage 6
        (its ``addend`` and ``sum`` are connected by :meth:`_lane`).

        ``bias + z = bias + ((product - 510 gain) >> 8) = (product + 256 bias - 510 gain) >> 8
        = sum >> 8``, with the addend ``256 bias - 510 gain`` (static for ``G = 1``, else per
        update: the lane's ``addend``).
        """
        shape = self._shape
        lpe, vld = self._lanes_per_enable, c.vld
        gen = LaneNoise(lane=p, multiplier=self._multiplier,
                        addend_width=_addend_shape(shape.v_width).width)
        m.submodules[f"noise{p}"] = gen
        # Advanced `latency` clocks before the update reaches S_LEAK, where its sum is
        # used (the sum is registered where the stage-5 registers are).
        assert self._bounds[_S_SHIFT - 1]
        adv = self.phys(_S_LEAK) - gen.latency
        assert adv >= 0
        if lpe < shape.lanes:
            # With copies of the enable, the noise source gets one of its own, and its
            # own copies of the valid bits up to stage `adv`: on the ECP5-85F the
            # lane's enable net, through the advance gate, into the noise state was
            # the critical path at most seeds (8.6 to 9.3 ns of routing), the noise
            # source's registers sitting next to its multiplier, away from the lane.
            ce_n = c.ce_copy(f"n{p}", p // lpe)
            vn = [None] + [Signal(name=f"vld{k}_n{p}") for k in range(1, adv + 1)]
            if adv:
                with m.If(ce_n):
                    m.d.sync += vn[1].eq(c.issuing)
                    m.d.sync += [vn[k].eq(vn[k - 1]) for k in range(2, adv + 1)]
            advance = ce_n & (vn[adv] if adv else c.issuing)
        else:
            ce_n = c.ce
            advance = c.ce & vld[adv] if adv else c.lane_issue[p]
        m.d.comb += [
            gen.seed.eq(self.noise_seed),
            gen.reseed.eq(c.reseed),
            gen.advance.eq(advance),
            gen.ce.eq(ce_n),
            gen.gain.eq(self.noise_gain),
        ]
        return gen

    def _outputs(self, m, c, out_spikes, out_v):
        """``o_stream``: the last stage's valid bit, address and the lanes' results."""
        L = self.latency
        vld, paddr = c.vld, c.paddr
        # The payload is forced to 0 while o_stream.valid is low: bubbles carry block RAM read
        # data that was never written (X in a 4-state simulator), and lifgate promises that no
        # output is X or Z after reset. It costs one AND gate per payload bit.
        m.d.comb += [
            self.o_stream.valid.eq(vld[L]),
            self.o_stream.payload.step.eq(c.step),
            self.o_stream.payload.addr.eq(paddr[L]),
            self.o_stream.payload.spikes.eq(Mux(vld[L], Cat(out_spikes), 0)),
        ]
        if self._membrane:
            for p in range(self._shape.lanes):
                m.d.comb += self.o_stream.payload.v[p].eq(Mux(vld[L], out_v[p], 0))

    # ------------------------------------------------------------------------------------------

    def _group_counters(self, m, restart, advance):
        """Per lane, the group of the neuron at ``addr``: ``(addr * P + p) // (N // G)``.

        Kept by counters (no divider): going from ``addr`` to ``addr + 1`` adds ``P`` to the
        neuron index. Lanes whose group sequences are identical share one counter.
        """
        shape = self._shape
        P, D, G = shape.lanes, shape.depth, shape.groups
        if G == 1:
            return [None] * P
        gs = shape.group_size
        dg, dr = divmod(P, gs)
        # Lanes p and q share a counter iff (a*P + p) // gs == (a*P + q) // gs for every a. The
        # residues a*P mod gs repeat with period lcm(P, gs) // P <= D, so one period decides.
        period = min(D, math.lcm(P, gs) // P + 1)
        base = np.arange(period, dtype=np.int64) * P
        seqs = {}
        for p in range(P):
            seqs.setdefault(((base + p) // gs).tobytes(), []).append(p)
        out = [None] * P
        for n, lanes in enumerate(seqs.values()):
            g0, r0 = divmod(lanes[0], gs)
            g = Signal(range(G + P + 1), name=f"grp{n}", init=g0)
            rem = Signal(range(2 * gs + 1), name=f"grp{n}_rem", init=r0)
            with m.If(restart):
                m.d.sync += [g.eq(g0), rem.eq(r0)]
            with m.Elif(advance):
                if dr == 0:
                    m.d.sync += g.eq(g + dg)
                else:
                    wrap = rem + dr >= gs
                    m.d.sync += [
                        g.eq(g + dg + wrap),
                        rem.eq(Mux(wrap, rem + dr - gs, rem + dr)),
                    ]
            for p in lanes:
                out[p] = g
        return out

    def _state_memory(self, m, name, shape_, ce):
        """A state memory of depth ``D``: ``(read port, write port, memory)``.

        ``memory`` is the :class:`~amaranth.lib.memory.Memory` when the state is one such
        memory, else ``None`` (ECP5 blocks; a memory split by width).

        With memory ``ecp5`` it is a :class:`~lifgate.hdl.ram.PipelinedRAM` whose output
        register moves with ``ce`` (the read port's ``data`` is then stage 1's register).

        With the ``compact`` pipeline the compares work straight on the memory's read data, so
        the memory is built as slices of ``4096 // D`` bits (at least 1, the width of an iCE40
        block RAM at that depth; 8 bits at ``D = 512``): a memory split by depth would need an
        output multiplexer (and synthesis adds registers to keep it stable) where a memory
        split by width needs none. The other pipelines register the read data first and leave
        the split to synthesis.
        """
        D = max(2, self._shape.depth)
        if self._memory == "ecp5":
            ram = PipelinedRAM(shape_, D, kind="ecp5")
            m.submodules[name] = ram
            m.d.comb += ram.r_oce.eq(ce)
            return (types.SimpleNamespace(addr=ram.r_addr, en=ram.r_en, data=ram.r_data),
                    types.SimpleNamespace(addr=ram.w_addr, en=ram.w_en, data=ram.w_data), None)
        width = Shape.cast(shape_).width
        step = max(1, min(width, 4096 // D)) if self._pipeline == "compact" else width
        if step >= width:
            mem = Memory(shape=shape_, depth=D, init=[])
            m.submodules[name] = mem
            return mem.read_port(), mem.write_port(), mem
        rd = types.SimpleNamespace(addr=Signal(range(D), name=f"{name}_raddr"),
                                   en=Signal(name=f"{name}_ren"),
                                   data=Signal(shape_, name=f"{name}_rdata"))
        wr = types.SimpleNamespace(addr=Signal(range(D), name=f"{name}_waddr"),
                                   en=Signal(name=f"{name}_wen"),
                                   data=Signal(shape_, name=f"{name}_wdata"))
        pieces = []
        for k, lo in enumerate(range(0, width, step)):
            w = min(step, width - lo)
            mem = Memory(shape=unsigned(w), depth=D, init=[])
            m.submodules[f"{name}_{k}"] = mem
            r, wp = mem.read_port(), mem.write_port()
            m.d.comb += [
                r.addr.eq(rd.addr), r.en.eq(rd.en),
                wp.addr.eq(wr.addr), wp.en.eq(wr.en), wp.data.eq(wr.data[lo:lo + w]),
            ]
            pieces.append(r.data)
        m.d.comb += rd.data.eq(Cat(*pieces))
        return rd, wr, None
