"""The LIF neuron array: ``docs/numerics.md`` in gateware, with the ``docs/hardware.md`` ports."""

from __future__ import annotations

import functools
import math
import types

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
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
    "PIPELINES",
    "LeakModeHW",
    "ResetModeHW",
    "addr_width",
    "beat_layout",
    "group_width",
    "input_layout",
    "lif_signature",
    "param_struct",
    "struct_of",
]


class LeakModeHW(enum.Enum, shape=LEAK_MODE_WIDTH):
    """Leak mode field of a parameter set: the codes of :class:`lifgate.config.LeakMode`."""

    SHIFT = int(LeakMode.SHIFT)
    MULT = int(LeakMode.MULT)
    CONST = int(LeakMode.CONST)


class ResetModeHW(enum.Enum, shape=RESET_MODE_WIDTH):
    """Reset mode field of a parameter set: the codes of :class:`lifgate.config.ResetMode`."""

    VALUE = int(ResetMode.VALUE)
    SUBTRACT = int(ResetMode.SUBTRACT)


assert {m.name: m.value for m in LeakModeHW} == {m.name: m.value for m in LeakMode}
assert {m.name: m.value for m in ResetModeHW} == {m.name: m.value for m in ResetMode}

#: Pipeline latency of the default (``deep``) pipeline: clocks from the clock an update is
#: issued (its address presented to the state memory) to the clock its beat is valid on
#: ``o_stream``, when nothing stalls. An instance's ``latency`` is that of its pipeline.
LATENCY = 9
# Stages (clocks after issue) of the datapath.
_S_CMP = 2  # threshold compare (the state read in stage 1 is registered first)
_S_X = 4  # r written back; d = h - v_rest
_S_SHIFT = 5  # barrel shifter / multiplier; the noise product is ready
_S_LEAK = 6  # leak; the update takes its current from i_stream
assert LATENCY == _S_LEAK + 3

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
        return ResetModeHW
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


class LIFArray(wiring.Component):
    """An array of ``N`` fixed-point LIF neurons, time-multiplexed over ``P`` lanes.

    Computes ``docs/numerics.md`` bit for bit. Neuron ``n`` lives in lane ``n % P`` at address
    ``n // P``; each lane keeps its neurons' membrane ``v`` and refractory counter ``r`` in two
    :class:`~amaranth.lib.memory.Memory` instances of depth ``D = N // P`` (block RAM / SPRAM),
    and its own copy of the ``G`` parameter sets: a memory of depth ``G`` when ``G > 1`` (indexed
    by the neuron's group), one register set shared by all lanes when ``G == 1``.

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
    """

    def __init__(self, config, *, membrane: bool = True, noise: bool = True,
                 lanes_per_enable: int | None = None, pipeline: str = "deep",
                 multiplier: str = "fabric", memory: str = "inferred"):
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
        self._shape = shape
        self._membrane = membrane
        self._noise = noise
        self._lanes_per_enable = shape.lanes if lanes_per_enable is None else lanes_per_enable
        self._pipeline = pipeline
        self._multiplier = multiplier
        self._memory = memory
        # Formal hook (lifgate.hdl.formal only): a dict that `elaborate` fills with its local
        # signals (stage registers, control, FSM). None (always, elsewhere): nothing is added.
        self._probes = None
        self._bounds = PIPELINES[pipeline]
        self.latency = 1 + sum(self._bounds)
        super().__init__(lif_signature(shape, membrane=membrane, noise=noise))

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

    def _phys(self, k: int) -> int:
        """The clock (after issue) in which logical stage ``k`` of the table works."""
        return 0 if k == 0 else 1 + sum(self._bounds[:k - 1])

    # ------------------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        shape = self._shape
        P, D, G = shape.lanes, shape.depth, shape.groups
        W, R, F = shape.v_width, shape.ref_width, shape.decay_frac
        AW = addr_width(shape)
        modes = set(shape.leak_modes)
        L = self.latency
        phys = self._phys
        IN = phys(_S_LEAK)
        bounds = self._bounds

        # Control ------------------------------------------------------------------------------

        vld = [None] + [Signal(name=f"vld{k}") for k in range(1, L + 1)]
        paddr = [None] + [Signal(AW, name=f"addr{k}", reset_less=True) for k in range(1, L + 1)]
        input_en = Signal()  # sampled by start
        out_block = Signal()  # a beat waits on o_stream and is not taken
        in_block = Signal()  # the update at the input stage waits for its current
        ce = Signal()  # pipeline enable
        wants_input = Signal()  # vld[IN] & input_en, as its own register (one LUT for ce)
        m.d.comb += [
            out_block.eq(vld[L] & ~self.o_stream.ready),
            in_block.eq(wants_input & ~self.i_stream.valid),
            ce.eq(~out_block & ~in_block),
            self.i_stream.ready.eq(wants_input & ~out_block),
        ]

        addr = Signal(range(D + 1))  # next address to issue (or to clear)
        last = Signal()
        m.d.comb += last.eq(addr == D - 1)
        step = Signal(shape.step_width)
        remaining = Signal(32)
        last_step = Signal()  # remaining == 1
        # remaining - 1 and remaining == 2, registered: remaining changes at most once a step
        # and a step lasts more than one clock, so these are current whenever they are used.
        rem_dec = Signal(32)
        rem_two = Signal()
        m.d.sync += [rem_dec.eq(remaining - 1), rem_two.eq(remaining == 2)]
        no_steps = Signal()  # steps == 0 at start
        done = Signal()
        issuing = Signal()  # in the ISSUE state
        issue = Signal()  # an update is issued this clock
        clearing = Signal()  # a clear address is issued this clock
        reseed = Signal()
        restart = Signal()  # reset the address and group counters
        # A clear reads the parameter set of the address's group (as an update does: it is there
        # two clocks later) and writes v_init and r = 0 then.
        clr_vld1, clr_vld2 = Signal(), Signal()
        clr_addr1, clr_addr2 = Signal(AW, reset_less=True), Signal(AW, reset_less=True)
        clr_vld, clr_addr = ((clr_vld1, clr_addr1) if phys(_S_CMP) == 1 else
                             (clr_vld2, clr_addr2))

        m.d.comb += [
            issue.eq(issuing & ce),
            self.done.eq(done),
            self.step.eq(step),
        ]
        m.d.sync += [
            done.eq(0),
            clr_vld1.eq(clearing), clr_addr1.eq(addr),
            clr_vld2.eq(clr_vld1), clr_addr2.eq(clr_addr1),
        ]

        vld_in_prev = vld[IN - 1] if IN > 1 else issue
        # Copies of ce for groups of lanes (see `lanes_per_enable`). Each copy has its own
        # copies of vld[L] and of wants_input, advanced exactly as those are (all copies of ce
        # are equal in every clock), so each copy's net only reaches its own lanes.
        lpe = self._lanes_per_enable
        lane_ce = [ce] * P
        lane_issue = [issue] * P
        # Read enables of the state memories. With one enable for all lanes, they read for an
        # issued update only. With copies, each group reads whenever its pipeline moves: a
        # read for a bubble is harmless (its stage-1 data is never used, vld[1] is 0), and
        # the enable then needs no copy of the control FSM's state, whose net from the middle
        # of the die to every lane's block RAM was the ECP5-85F's critical path (9 ns of
        # routing at 96.9 MHz).
        lane_read = [issue] * P

        def ce_copy(tag):
            # A copy of ce from its own copies of vld[L] and wants_input.
            vl_c = Signal(name=f"vld{L}_{tag}")
            wi_c = Signal(name=f"wants_input_{tag}")
            ce_c = Signal(name=f"ce_{tag}")
            m.d.comb += ce_c.eq(~(vl_c & ~self.o_stream.ready)
                                & ~(wi_c & ~self.i_stream.valid))
            with m.If(ce_c):
                m.d.sync += [vl_c.eq(vld[L - 1]), wi_c.eq(vld_in_prev & input_en)]
            with m.Elif(self.o_stream.ready):
                m.d.sync += vl_c.eq(0)
            return ce_c

        if lpe < P:
            for c in range((P + lpe - 1) // lpe):
                ce_c = ce_copy(f"c{c}")
                for p in range(c * lpe, min(P, (c + 1) * lpe)):
                    lane_ce[p] = ce_c
                    lane_issue[p] = issuing & ce_c
                    lane_read[p] = ce_c

        with m.If(ce):
            m.d.sync += [vld[1].eq(issue), paddr[1].eq(addr)]
            m.d.sync += wants_input.eq(vld_in_prev & input_en)
            for k in range(2, L + 1):
                m.d.sync += [vld[k].eq(vld[k - 1]), paddr[k].eq(paddr[k - 1])]
        with m.Elif(self.o_stream.ready):
            # Stalled for an input current: the beat on o_stream leaves anyway.
            m.d.sync += vld[L].eq(0)
        # No update in flight, as seen one clock ago (in DRAIN nothing enters the pipeline, so
        # this is exact there; registered to keep the OR out of the control logic's path).
        drained = Signal()
        m.d.sync += drained.eq(~Cat(vld[1:]).any() & ~issue)

        with m.FSM(name="ctrl") as fsm:
            with m.State("IDLE"):
                with m.If(self.clear):
                    m.d.comb += [reseed.eq(1), restart.eq(1)]
                    m.d.sync += step.eq(0)
                    m.next = "CLEAR"
                with m.Elif(self.start):
                    m.d.comb += restart.eq(1)
                    m.d.sync += [
                        remaining.eq(self.steps),
                        no_steps.eq(self.steps == 0),
                        last_step.eq(self.steps == 1),
                        input_en.eq(self.input_en),
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
                m.d.comb += [self.busy.eq(1), clearing.eq(1)]
                with m.If(last):
                    m.next = "CLEAR_TAIL"
            with m.State("CLEAR_TAIL"):
                m.d.comb += self.busy.eq(1)
                with m.If(~clr_vld1):  # the last write happens this clock
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
            with m.State("ISSUE"):
                m.d.comb += [self.busy.eq(1), issuing.eq(1)]
                with m.If(issue & last):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(drained):
                    m.d.sync += [
                        step.eq(step + 1),
                        remaining.eq(rem_dec),
                        last_step.eq(rem_two),
                    ]
                    with m.If(last_step):
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += restart.eq(1)
                        m.next = "ISSUE"

        advance = Signal()
        m.d.comb += advance.eq(issue | clearing)
        with m.If(restart):
            m.d.sync += addr.eq(0)
        with m.Elif(advance):
            m.d.sync += addr.eq(addr + 1)

        # Parameters ---------------------------------------------------------------------------

        layout = param_struct(shape)
        groups = self._group_counters(m, restart, advance)
        if G == 1:
            preg = Signal(layout, reset_less=True)
            with m.If(self.param_we):
                m.d.sync += preg.eq(self.param_data)
        else:
            pwe = Signal()
            if G == 1 << group_width(shape):
                m.d.comb += pwe.eq(self.param_we)
            else:
                m.d.comb += pwe.eq(self.param_we & (self.param_group < G))
        if self._noise:
            # 510 * gain; gain is static while updates are in flight.
            off510 = Signal(25, reset_less=True)
            m.d.sync += off510.eq((self.noise_gain << 9) - (self.noise_gain << 1))
            bias_k_shape = (Signal(signed(W)).shift_left(8) - off510).shape()
            if G == 1:
                # 256 * bias - 510 * gain, static as well.
                bias_k = Signal(bias_k_shape, reset_less=True)
                m.d.sync += bias_k.eq(preg.bias.shift_left(8) - off510)

        # Lanes --------------------------------------------------------------------------------

        out_spikes = []
        out_v = []
        central_ce = ce
        for p in range(P):
            ce = lane_ce[p]

            def reg(shape_, name, _p=p):
                return Signal(shape_, name=f"l{_p}_{name}", reset_less=True)

            def stage(k, *pairs, ce=ce):
                # The values computed in logical stage k, into stage k + 1: registers, or
                # wires when the profile merges the two stages.
                if bounds[k - 1]:
                    with m.If(ce):
                        m.d.sync += [dst.eq(src) for dst, src in pairs]
                else:
                    m.d.comb += [dst.eq(src) for dst, src in pairs]

            # Parameter set of the update in stage k (k >= 2): par(k, name).
            if G == 1:
                def par(k, name, _preg=preg):
                    return _preg[name]
            else:
                pmem = Memory(shape=layout, depth=G, init=[])
                m.submodules[f"params{p}"] = pmem
                pw = pmem.write_port()
                pr = pmem.read_port()
                # The group is read one clock before the update (or clear) reaches stage 2
                # (S_CMP): its set is there next to the state.
                if phys(_S_CMP) == 1:
                    grp_rd = groups[p]
                else:
                    grp_rd = reg(len(groups[p]), "grp1")
                    m.d.sync += grp_rd.eq(Mux(ce, groups[p], grp_rd))
                m.d.comb += [
                    pw.addr.eq(self.param_group),
                    pw.data.eq(self.param_data),
                    pw.en.eq(pwe),
                    pr.addr.eq(grp_rd),
                    pr.en.eq(ce),
                ]
                par = self._param_pipe(m, ce, pr.data, p, first=_S_CMP)

            v_rd, v_wr = self._state_memory(m, f"v{p}", signed(W), ce)
            r_rd, r_wr = self._state_memory(m, f"r{p}", unsigned(R), ce)
            m.d.comb += [
                v_rd.addr.eq(addr), v_rd.en.eq(lane_read[p]),
                r_rd.addr.eq(addr), r_rd.en.eq(lane_read[p]),
            ]

            if self._noise:
                # bias + z = bias + ((product - 510 gain) >> 8)
                #          = (product + 256 bias - 510 gain) >> 8 = sum >> 8,
                # with the addend 256 bias - 510 gain (static for G = 1, else per update).
                gen = LaneNoise(lane=p, multiplier=self._multiplier,
                                addend_width=bias_k_shape.width)
                m.submodules[f"noise{p}"] = gen
                # Advanced `latency` clocks before the update reaches S_LEAK, where its sum is
                # used (the sum is registered where the stage-5 registers are).
                assert bounds[_S_SHIFT - 1]
                adv = phys(_S_LEAK) - gen.latency
                assert adv >= 0
                if lpe < P:
                    # With copies of the enable, the noise source gets one of its own, and its
                    # own copies of the valid bits up to stage `adv`: on the ECP5-85F the
                    # lane's enable net, through the advance gate, into the noise state was
                    # the critical path at most seeds (8.6 to 9.3 ns of routing), the noise
                    # source's registers sitting next to its multiplier, away from the lane.
                    ce_n = ce_copy(f"n{p}")
                    vn = [None] + [Signal(name=f"vld{k}_n{p}") for k in range(1, adv + 1)]
                    if adv:
                        with m.If(ce_n):
                            m.d.sync += vn[1].eq(issuing)
                            m.d.sync += [vn[k].eq(vn[k - 1]) for k in range(2, adv + 1)]
                    advance = ce_n & (vn[adv] if adv else issuing)
                else:
                    ce_n = ce
                    advance = ce & vld[adv] if adv else lane_issue[p]
                m.d.comb += [
                    gen.seed.eq(self.noise_seed),
                    gen.reseed.eq(reseed),
                    gen.advance.eq(advance),
                    gen.ce.eq(ce_n),
                    gen.gain.eq(self.noise_gain),
                ]

            # Stage 1: the state as read, registered (block RAM outputs are slow). With
            # memory 'ecp5' the register is the blocks' own output register.
            v2, r2 = reg(signed(W), "v2"), reg(R, "r2")
            if self._memory == "ecp5":
                m.d.comb += [v2.eq(v_rd.data), r2.eq(r_rd.data)]
            else:
                stage(1, (v2, v_rd.data), (r2, r_rd.data))

            # Stage 2 (S_CMP): compares and decrements.
            v_th = par(2, "v_th")
            v3, sub3, ge3 = reg(signed(W), "v3"), reg(signed(W + 1), "sub3"), reg(1, "ge3")
            refr3, rdec3, rmore3 = reg(1, "refr3"), reg(R, "rdec3"), reg(1, "rmore3")
            stage(
                2, (v3, v2), (sub3, v2 - v_th), (ge3, v2 >= v_th),
                (refr3, r2.any()), (rdec3, r2 - 1), (rmore3, r2[1:].any()),
            )

            # Stage 3 (S_SEL): refractory, threshold, reset.
            t_ref = par(3, "t_ref")
            value_mode = par(3, "reset_mode") == ResetModeHW.VALUE
            fire = Signal(name=f"l{p}_fire")
            sel = Signal(name=f"l{p}_sel")  # h is not v
            m.d.comb += [
                fire.eq(~refr3 & ge3),
                sel.eq(Mux(value_mode, refr3 | fire, fire)),
            ]
            h = Mux(sel, Mux(value_mode, par(3, "v_reset"), sub3), v3)
            r_next = Mux(refr3, rdec3, Mux(fire, t_ref, 0))
            hold = Mux(refr3, rmore3, fire & t_ref.any())
            s4, hold4, h4 = reg(1, "s4"), reg(1, "hold4"), reg(signed(W + 1), "h4")
            r4 = reg(R, "r4")
            stage(3, (s4, fire), (hold4, hold), (h4, h), (r4, r_next))

            # Stage 4 (S_X): write r back. x = h - v_rest (SHIFT, MULT) or c (CONST).
            # SHIFT and CONST share one datapath: leak(h) = h - floor((t + 1) / 2) with
            # t = (2 x) >> k, where CONST uses x = c and k = 0 (so t = 2 c, leak = h - c).
            m.d.comb += [
                r_wr.addr.eq(Mux(clr_vld, clr_addr, paddr[phys(_S_X)])),
                r_wr.data.eq(Mux(clr_vld, 0, r4)),
                r_wr.en.eq(clr_vld | vld[phys(_S_X)]),
            ]
            mode = par(4, "leak_mode")
            is_const = self._is_mode(mode, LeakMode.CONST)
            s5, hold5, h5 = reg(1, "s5"), reg(1, "hold5"), reg(signed(W + 1), "h5")
            x5 = reg(signed(W + 2), "x5")
            c = par(4, "leak")[:W].as_signed()
            if modes & {LeakMode.SHIFT, LeakMode.MULT}:
                x = Mux(is_const, c, h4 - par(4, "v_rest"))
            else:
                x = c
            pairs = [(s5, s4), (hold5, hold4), (h5, h4), (x5, x)]
            if LeakMode.SHIFT in modes:
                # The shift amount: k for SHIFT, 0 for CONST.
                kw = bits_for(W)
                k5 = reg(kw, "k5")
                pairs.append((k5, Mux(is_const, 0, par(4, "leak")[:kw])))
            if LeakMode.MULT in modes:
                mult5 = reg(1, "mult5")
                pairs.append((mult5, self._is_mode(mode, LeakMode.MULT) & ~hold4))
                if self._multiplier == "ecp5":
                    # x * D in a MULT18X18D whose operand registers are this stage-4 boundary
                    # and whose product register is the stage-5 one.
                    assert bounds[_S_X - 1] and bounds[_S_SHIFT - 1]
                    leak_mul = RegisteredMul(signed(W + 2), unsigned(F), kind="ecp5")
                    m.submodules[f"leak_mul{p}"] = leak_mul
                    m.d.comb += [
                        leak_mul.a.eq(x),
                        leak_mul.b.eq(par(4, "leak")[:F]),
                        leak_mul.ce.eq(ce),
                    ]
            if self._noise and G > 1:
                bias_k5 = reg(bias_k_shape, "bias_k5")
                pairs.append((bias_k5, par(4, "bias").shift_left(8) - off510))
            stage(4, *pairs)

            # Stage 5 (S_SHIFT): t = (2 x) >> k (0 when held: the leak is then h itself);
            # MULT: x * D; bias + z.
            s6, hold6, h6 = reg(1, "s6"), reg(1, "hold6"), reg(signed(W + 1), "h6")
            pairs = [(s6, s5), (hold6, hold5), (h6, h5)]
            if modes & {LeakMode.SHIFT, LeakMode.CONST}:
                t6 = reg(signed(W + 3), "t6")
                t = (x5 << 1) >> k5 if LeakMode.SHIFT in modes else x5 << 1
                pairs.append((t6, Mux(hold5, 0, t)))
            if LeakMode.MULT in modes:
                mult6 = reg(1, "mult6")
                pairs.append((mult6, mult5))
                if self._multiplier == "ecp5":
                    m6 = leak_mul.p
                else:
                    prod = x5 * par(5, "leak")[:F]
                    m6 = reg(prod.shape(), "m6")
                    pairs.append((m6, prod))
            if self._noise:
                # bias + z: the noise source's sum register is the stage-5 boundary.
                m.d.comb += gen.addend.eq(bias_k if G == 1 else bias_k5)
                bz6 = Signal(signed(max(W, Z_WIDTH) + 1), name=f"l{p}_bz6")
                m.d.comb += bz6.eq(gen.sum >> 8)
            else:
                bz6 = par(6, "bias")
            stage(5, *pairs)

            # Stage 6 (S_LEAK, the input stage): the leak (h when held); i + bias + z (0 when
            # held), i from i_stream. SHIFT and MULT leak values lie between h and v_rest,
            # CONST's is h - c, so W + 2 bits hold the leak exactly.
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
                rnd = Cat(Const(1 << (F - 1), F), par(6, "v_rest")).as_signed()
                lk_mult = (m6 + rnd) >> F
                if lk is None:
                    lk = Mux(hold6, h6, lk_mult)
                else:
                    lk = Mux(mult6, lk_mult, lk)
            cur = Mux(input_en, self.i_stream.payload[p], 0)
            izb = cur + bz6
            s7, lk7, izb7 = reg(1, "s7"), reg(signed(W + 2), "lk7"), reg(izb.shape(), "izb7")
            stage(6, (s7, s6), (lk7, lk), (izb7, Mux(hold6, 0, izb)))

            # Stage 7: sum.
            total = lk7 + izb7
            s8, tot8 = reg(1, "s8"), reg(total.shape(), "tot8")
            stage(7, (s8, s7), (tot8, total))

            # Stage 8: saturate.
            s9, v9 = reg(1, "s9"), reg(signed(W), "v9")
            assert bounds[7], "v' is a register: it is written back and it is the beat"
            stage(8, (s9, s8), (v9, _saturate(tot8, W)))

            # Stage 9: write v' back; the beat is on o_stream.
            m.d.comb += [
                v_wr.addr.eq(Mux(clr_vld, clr_addr, paddr[L])),
                v_wr.data.eq(Mux(clr_vld, par(_S_CMP, "v_init"), v9)),
                v_wr.en.eq(clr_vld | vld[L]),
            ]
            out_spikes.append(s9)
            out_v.append(v9)

        ce = central_ce
        # The payload is forced to 0 while o_stream.valid is low: bubbles carry block RAM read
        # data that was never written (X in a 4-state simulator), and lifgate promises that no
        # output is X or Z after reset. It costs one AND gate per payload bit.
        m.d.comb += [
            self.o_stream.valid.eq(vld[L]),
            self.o_stream.payload.step.eq(step),
            self.o_stream.payload.addr.eq(paddr[L]),
            self.o_stream.payload.spikes.eq(Mux(vld[L], Cat(out_spikes), 0)),
        ]
        if self._membrane:
            for p in range(P):
                m.d.comb += self.o_stream.payload.v[p].eq(Mux(vld[L], out_v[p], 0))
        if self._probes is not None:  # formal hook (see __init__): reads names, adds no logic
            self._probes.update(locals())
        return m

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
        """A state memory of depth ``D``: ``(read port, write port)``.

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
                    types.SimpleNamespace(addr=ram.w_addr, en=ram.w_en, data=ram.w_data))
        width = Shape.cast(shape_).width
        step = max(1, min(width, 4096 // D)) if self._pipeline == "compact" else width
        if step >= width:
            mem = Memory(shape=shape_, depth=D, init=[])
            m.submodules[name] = mem
            return mem.read_port(), mem.write_port()
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
        return rd, wr

    def _is_mode(self, mode, which: LeakMode):
        """``mode == which``, simplified when the shape builds fewer modes."""
        built = self._shape.leak_modes
        if which not in built:
            return Const(0)
        if len(built) == 1:
            return Const(1)
        return mode == LeakModeHW(which.value)

    def _param_pipe(self, m, ce, rd_data, p, *, first):
        """``par(k, name)``: field ``name`` of the parameter set of the update in stage ``k``.

        The memory's read data belongs to the update in stage ``first``; later stages get
        registered copies that move with ``ce`` (built only for the fields a stage uses).
        """
        cache = {}

        def par(k, name):
            if k == first:
                return rd_data[name]
            key = (k, name)
            if not self._bounds[k - 2]:
                return par(k - 1, name)  # stages k - 1 and k are one clock
            if key not in cache:
                prev = par(k - 1, name)
                r = Signal(data.Layout.cast(param_struct(self._shape))[name].shape,
                           name=f"l{p}_{name}{k}", reset_less=True)
                with m.If(ce):
                    m.d.sync += r.eq(prev)
                cache[key] = r
            return cache[key]

        return par
