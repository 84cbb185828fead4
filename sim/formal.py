"""Formal properties of one lane of :class:`~lifgate.hdl.array.LIFArray`, for SymbiYosys.

:class:`LaneProof` wraps a small ``LIFArray`` (one lane, a few neurons, narrow widths, no noise
source) and drives every input with a free value (``AnySeq``): parameter writes, clears, runs of
up to ``max_steps`` steps, input currents, ``i_stream.valid`` and ``o_stream.ready``. Only the
port contract of ``docs/hardware.md`` is assumed: parameter writes happen while idle and carry
legal values (the ranges of ``docs/numerics.md``). Beside the array the harness keeps

* a shadow of every neuron's state ``(v, r)`` and of the loaded parameter set, advanced by a
  combinational single-step reference written here from ``docs/numerics.md`` (not from the
  gateware: the leak is a case over the shift amount, the reset a plain if/else);
* a monitor that sees only the output beats (spike, ``v'``) and counts refractory steps;
* a scoreboard of the streams: the expected ``(step, addr)`` of the next beat, the input beats
  taken but not yet retired, the number of beats of the run.

Properties (each one a separate SymbiYosys job, :data:`PROPERTIES`):

``equiv``
    Every ``o_stream`` beat equals the reference step applied to the neuron's shadow state, the
    loaded parameters and the input beat taken for that update (0 when ``input_en`` is off).
``bounds``
    ``v'`` never wraps: when the exact (unbounded) integrating sum is above ``VMAX`` or below
    ``VMIN``, ``v'`` is exactly ``VMAX`` or ``VMIN``.
``refractory``
    Seen on the outputs only: after a spike with ``t_ref = T`` the neuron does not spike for the
    next ``T`` steps, and its membrane is held (``v_reset`` in VALUE mode; ``v - v_th`` at the
    spike and ``v`` after it in SUBTRACT mode) in the spike step and the first ``T - 1`` of them.
``spike``
    Outside the refractory period the neuron spikes iff its previous ``v'`` (or ``v_init`` after
    a clear) is ``>= v_th``.
``stream``
    Valid/ready: a stalled beat stays valid and unchanged; beats come out in ``(step, addr)``
    order with no gap and no repeat, only during a run, exactly ``steps * D`` of them; each
    input beat is taken by exactly one update (no input is taken with ``input_en`` off, none is
    missing when a beat leaves, none is left over at ``done``).

Engines (:data:`ENGINES`, solvers made callable by :mod:`lifgate.sim.solvers`): ``stream``,
``spike`` and ``refractory`` are proved unboundedly (``mode prove``) with ABC's PDR, which finds
the inductive invariant itself, so the harness needs no invariants on the array's internal
registers. ``equiv`` and ``bounds`` do not close with PDR (not in 8 minutes, nor in 5 with the
invariants below); they are proved unboundedly by k-induction (smtbmc with boolector, ``k = 2``)
on a harness built with ``invariants=True``: it asserts, beside the property, that every
in-flight update's pipeline registers equal the reference's intermediate values for its
shadow state, that the state memories hold the shadow state (up to writes ahead of the
shadow), and how the control registers relate (:meth:`LaneProof._invariants`). They read the
array's signals through its probe interface only: ``LIFArray.probes``
(:class:`~lifgate.hdl.array.ArrayProbes`: control, state memories) and, per lane,
``Lane.probes`` (:class:`~lifgate.hdl.array.LaneProbes`: the stage registers by name);
recording them adds no logic. A register the lane no longer has is a ``KeyError`` at
elaboration, a re-pipelined datapath an induction failure (``UNKNOWN``), never a false
``PASS``.

``python -m lifgate.sim.formal`` runs the :data:`JOBS` table and prints depth, time and result;
``--prop``, ``--mode``, ``--engine``, ``--depth``, ``--modes``, ``--neurons``, ``--invariants``,
``--pipeline`` run other jobs (``--depth 0``: ``k = 2`` for k-induction, :func:`default_depth`
for BMC: pipeline length + largest ``t_ref`` + 2 timesteps; see ``docs/verification.md``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    ClockDomain,
    Const,
    Elaboratable,
    Module,
    Mux,
    Signal,
    signed,
)
from amaranth.hdl._ast import AnySeq  # Amaranth 0.5 has no public name for it
from lifgate.hdl import array as hdl_array
from lifgate.hdl.array import LATENCY
from lifgate.sim.solvers import sby_command, sby_env, tool_dir, warm_up

from lifgate.config import ArrayShape, LeakMode, ResetMode, param_layout

__all__ = ["AFTER_LEAK_ONE_NEURON_SHAPE", "ALL_MODES_ONE_NEURON_SHAPE", "CONST_SHAPE",
           "DEFAULT_SHAPE", "ENGINES", "JOBS",
           "K_INDUCTION", "ONE_NEURON_SHAPE", "PROPERTIES", "SLOW_JOBS", "FormalJob", "LaneProof",
           "default_depth", "job_depth", "reference_step", "run_job"]

PROPERTIES = ("equiv", "bounds", "refractory", "spike", "stream")

#: Default proof shape: one lane, W = 4, IW = 2, R = 2 (t_ref up to 3), F = 2, all leak modes.
DEFAULT_SHAPE = ArrayShape(neurons=2, lanes=1, groups=1, v_width=4, i_width=2, ref_width=2,
                           decay_frac=2, step_width=8)


def _sat(x, width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return Mux(x > hi, hi, Mux(x < lo, lo, x))


def reference_step(m: Module, shape: ArrayShape, v, r, p: dict, i, *, prefix: str):
    """One neuron step of ``docs/numerics.md`` as combinational logic, written from the text.

    ``v`` (signed W), ``r`` (unsigned R), ``i`` (signed) and the fields of ``p`` (``v_th``,
    ``v_reset``, ``v_rest``, ``bias`` signed W; ``leak`` raw; ``t_ref``; ``leak_mode``;
    ``reset_mode``) are Amaranth values. Returns a dict of signals: ``s`` (spike), ``r1``,
    ``h``, ``e`` (the threshold subtracted after the leak), ``leak`` (``leak(h)``), ``exact``
    (the unsaturated result), ``v`` (the new membrane ``v'``).
    """
    W, F = shape.v_width, shape.decay_frac
    EW = W + F + 8  # wide enough for every intermediate value: nothing wraps
    s = Signal(name=f"{prefix}_s")
    r1 = Signal(shape.ref_width, name=f"{prefix}_r1")
    h = Signal(signed(EW), name=f"{prefix}_h")
    leak = Signal(signed(EW), name=f"{prefix}_leak")
    exact = Signal(signed(EW), name=f"{prefix}_exact")
    vn = Signal(signed(W), name=f"{prefix}_v")
    e = Signal(signed(EW), name=f"{prefix}_e")
    value_mode = p["reset_mode"] == ResetMode.VALUE
    after_mode = p["reset_mode"] == ResetMode.SUBTRACT_AFTER_LEAK
    # 1. Refractory, threshold and reset.
    with m.If(r > 0):
        m.d.comb += [s.eq(0), r1.eq(r - 1), h.eq(Mux(value_mode, p["v_reset"], v)), e.eq(0)]
    with m.Elif(v >= p["v_th"]):
        m.d.comb += [s.eq(1), r1.eq(p["t_ref"]),
                     h.eq(Mux(value_mode, p["v_reset"], Mux(after_mode, v, v - p["v_th"]))),
                     e.eq(Mux(after_mode, p["v_th"], 0))]
    with m.Else():
        m.d.comb += [s.eq(0), r1.eq(0), h.eq(v), e.eq(0)]
    # Leak, d = h - v_rest.
    d = Signal(signed(EW), name=f"{prefix}_d")
    m.d.comb += d.eq(h - p["v_rest"])
    with m.Switch(p["leak_mode"]):
        if LeakMode.SHIFT in shape.leak_modes:
            with m.Case(LeakMode.SHIFT):
                with m.Switch(p["leak"]):
                    for k in range(W + 1):
                        with m.Case(k):
                            m.d.comb += leak.eq(h - ((d + ((1 << k) >> 1)) >> k))
        if LeakMode.MULT in shape.leak_modes:
            with m.Case(LeakMode.MULT):
                dd = p["leak"][:F]  # D, 0 .. 2**F - 1 (assumed legal)
                m.d.comb += leak.eq(p["v_rest"] + ((d * dd + (1 << (F - 1))) >> F))
        if LeakMode.CONST in shape.leak_modes:
            with m.Case(LeakMode.CONST):
                m.d.comb += leak.eq(h - p["leak"][:W].as_signed())
    # 2. Hold or integrate.
    with m.If(r1 > 0):
        m.d.comb += exact.eq(h - e)
    with m.Else():
        m.d.comb += exact.eq(leak + p["bias"] + i - e)
    m.d.comb += vn.eq(_sat(exact, W))
    return {"s": s, "r1": r1, "h": h, "e": e, "leak": leak, "exact": exact, "v": vn}


def _legal_params(shape: ArrayShape, f: dict):
    """The ``docs/numerics.md`` ranges of a parameter word's fields, as one condition."""
    W, F = shape.v_width, shape.decay_frac
    conds = []
    for mode in LeakMode:
        if mode not in shape.leak_modes:
            conds.append(f["leak_mode"] != mode)
    conds.append(f["leak_mode"] != 3)
    for code in range(1 << shape.reset_width):  # the 2-bit field's code 3 is not a mode
        if code not in [int(m) for m in shape.reset_modes]:
            conds.append(f["reset_mode"] != code)
    if shape.leak_width > W:
        raise ValueError("the proof shape must have decay_frac <= v_width")
    conds.append((f["leak_mode"] != LeakMode.SHIFT) | (f["leak"] <= W))
    conds.append((f["leak_mode"] != LeakMode.MULT) | (f["leak"] < (1 << F)))
    cond = Const(1)
    for c in conds:
        cond = cond & c
    return cond


class LaneProof(Elaboratable):
    """The formal harness (see the module docstring).

    Parameters
    ----------
    shape : ArrayShape
        One lane (``lanes == 1``), one parameter group, ``decay_frac <= v_width``.
    props : iterable of str
        Which of :data:`PROPERTIES` to assert (the others are left out of the netlist).
    max_steps : int
        Runs are assumed to take at most this many steps.
    array_cls : class or None
        The ``LIFArray`` to check (default: the real one; a mutant's to show a property fails).
    invariants : bool
        Also assert the stage invariants (:meth:`_invariants`): every in-flight update's
        pipeline registers, the state memories and the control registers against the shadow
        state. They make ``equiv`` and ``bounds`` provable by k-induction.
    pipeline : str
        The ``LIFArray`` pipeline profile (``"deep"`` or ``"compact"``).
    """

    def __init__(self, shape: ArrayShape = DEFAULT_SHAPE, *, props=PROPERTIES,
                 max_steps: int = 7, array_cls=None, invariants: bool = False,
                 pipeline: str = "deep"):
        if shape.lanes != 1 or shape.groups != 1:
            raise ValueError(f"LaneProof needs lanes == 1 and groups == 1, not {shape!r}")
        if shape.spike_max != 1:  # its reference and monitor know one spike bit
            raise ValueError(f"LaneProof needs spike_max == 1 (no multi-spike counts), not "
                             f"{shape.spike_max}")
        props = tuple(props)
        for p in props:
            if p not in PROPERTIES:
                raise ValueError(f"property must be one of {PROPERTIES}, not {p!r}")
        self.shape = shape
        self.props = props
        self.max_steps = max_steps
        self.array_cls = array_cls
        self.invariants = invariants
        self.pipeline = pipeline
        self.cd = ClockDomain("sync", reset_less=True)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        dut, probes = self._dut(m, platform)
        h = self._inputs(m, dut)
        self._scoreboard(m, dut, h)
        self._shadow(m, dut, h)
        on = set(self.props)
        for prop in PROPERTIES:
            if prop in on:
                getattr(self, f"_prop_{prop}")(m, dut, h)
        if self.invariants:
            self._invariants(m, probes, h)
        return m

    # The harness, in parts. `h` (a namespace) carries the harness's own signals between them.

    def _dut(self, m, platform):
        """The array under proof, and its probe interface (``None`` without invariants)."""
        LIFArray = self.array_cls or hdl_array.LIFArray  # noqa: N806 (a mutant's, bench/mutants.py)
        dut = LIFArray(self.shape, membrane=True, noise=False, pipeline=self.pipeline)
        if not self.invariants:
            m.submodules.dut = dut
            return dut, None
        # Elaborated here, so that its signals exist now: `elaborate` records them, and the
        # lanes' stage registers, in `dut.probes` (an ArrayProbes).
        dut._MustUse__silence = True  # used: its elaboration is the submodule
        m.submodules.dut = dut.elaborate(platform)
        return dut, dut.probes

    def _inputs(self, m, dut):
        """Every input free (``AnySeq``) within the port contract; the shadow parameter set."""
        shape = self.shape

        def free(port):
            m.d.comb += port.eq(AnySeq(len(port)))

        for port in (dut.param_we, dut.param_group, dut.param_data.as_value(), dut.input_en,
                     dut.clear, dut.start, dut.steps, dut.i_stream.valid,
                     dut.i_stream.payload.as_value(), dut.o_stream.ready):
            free(port)

        # Parameter words: decoded here from param_layout (the packing contract).
        word = dut.param_data.as_value()
        fields, off = {}, 0
        for name, width in param_layout(shape):
            fields[name] = word[off:off + width]
            off += width
        for name in ("v_th", "v_reset", "v_rest", "v_init", "bias"):
            fields[name] = fields[name].as_signed()
        idle = ~dut.busy
        # Writes while idle, legal, and not in the clock of a clear or start (the contract of
        # docs/hardware.md: "parameter writes ... while idle").
        m.d.comb += Assume(~dut.param_we | (idle & ~dut.clear & ~dut.start
                                            & _legal_params(shape, fields)))
        m.d.comb += Assume(~(idle & dut.start) | (dut.steps <= self.max_steps))

        # Shadow parameter set: all zero at power-up, like the array's register.
        sp = {}
        for name, width in param_layout(shape):
            signed_field = name in ("v_th", "v_reset", "v_rest", "v_init", "bias")
            sp[name] = Signal(signed(width) if signed_field else width, name=f"sp_{name}")
            with m.If(dut.param_we):
                m.d.sync += sp[name].eq(fields[name])

        accept_clear = idle & dut.clear
        accept_start = idle & dut.start & ~dut.clear
        # A run uses a legal parameter set: the power-up one (all zero) has leak_mode 0 = SHIFT,
        # which a build without SHIFT does not have (docs/numerics.md: "one the shape
        # supports"). Found by `equiv` at depth 24 on one neuron: with only CONST built, the
        # never-written set ran as CONST c = 0 while the reference read it as SHIFT k = 0.
        m.d.comb += Assume(~accept_start | _legal_params(shape, sp))
        return types.SimpleNamespace(sp=sp, accept_clear=accept_clear, accept_start=accept_start)

    def _scoreboard(self, m, dut, h):
        """The run scoreboard and the FIFO of input currents taken, not yet retired."""
        shape, D = self.shape, self.shape.depth
        h.running = Signal()
        h.run_ie = Signal()
        h.run_steps = Signal(range(self.max_steps + 1))
        h.beats = Signal(range(self.max_steps * D + 2))
        h.exp_addr = Signal(range(D))
        h.exp_step = Signal(shape.step_width)
        o = dut.o_stream
        i = dut.i_stream
        h.o_take = o.valid & o.ready
        h.i_take = i.valid & i.ready
        h.a = o.payload.addr
        h.out_s = o.payload.spikes[0]
        h.out_v = o.payload.v[0]

        # Input FIFO: input beats taken, not yet retired by an output beat.
        K = h.K = 4
        q = h.q = [Signal(signed(shape.i_width), name=f"q{k}") for k in range(K)]
        qn = h.qn = Signal(range(K + 1))
        pop = h.pop = h.o_take & h.run_ie
        h.cur = Signal(signed(shape.i_width))
        m.d.comb += h.cur.eq(Mux(h.run_ie, q[0], 0))
        # Shift register: pop shifts down, push writes at the (new) end.
        for k in range(K):
            src = q[k + 1] if k + 1 < K else q[k]
            with m.If(pop):
                m.d.sync += q[k].eq(src)
            with m.If(h.i_take & (qn - pop == k)):
                m.d.sync += q[k].eq(i.payload[0])
        m.d.sync += qn.eq(qn + h.i_take - pop)

    def _shadow(self, m, dut, h):
        """The shadow neuron state (advanced by the reference step) and the output monitor."""
        shape = self.shape
        W, R, D = shape.v_width, shape.ref_width, shape.depth
        sp, a = h.sp, h.a
        sv = h.sv = [Signal(signed(W), name=f"sv{n}") for n in range(D)]  # memories start at 0
        sr = h.sr = [Signal(R, name=f"sr{n}") for n in range(D)]
        ov = [Signal(signed(W), name=f"ov{n}") for n in range(D)]
        rc = [Signal(R, name=f"rc{n}") for n in range(D)]

        def sel(sigs, shp):
            x = Signal(shp, name=f"sel_{sigs[0].name}")
            for n in range(D):
                with m.If(a == n):
                    m.d.comb += x.eq(sigs[n])
            return x

        v_a, r_a = sel(sv, signed(W)), sel(sr, R)
        h.ov_a, h.rc_a = sel(ov, signed(W)), sel(rc, R)
        ref = h.ref = reference_step(m, shape, v_a, r_a, sp, h.cur, prefix="ref")

        with m.If(h.accept_clear):
            for n in range(D):
                m.d.sync += [sv[n].eq(sp["v_init"]), sr[n].eq(0),
                             ov[n].eq(sp["v_init"]), rc[n].eq(0)]
            m.d.sync += [h.exp_step.eq(0), h.exp_addr.eq(0)]
        with m.If(dut.done & h.running):
            m.d.sync += h.running.eq(0)
        with m.If(h.accept_start):  # may come in the clock of the previous run's done
            m.d.sync += [h.running.eq(1), h.run_ie.eq(dut.input_en),
                         h.run_steps.eq(dut.steps), h.beats.eq(0), h.exp_addr.eq(0)]
        with m.If(h.o_take):
            for n in range(D):
                with m.If(a == n):
                    m.d.sync += [sv[n].eq(ref["v"]), sr[n].eq(ref["r1"]), ov[n].eq(h.out_v),
                                 rc[n].eq(Mux(h.out_s, sp["t_ref"],
                                              Mux(h.rc_a > 0, h.rc_a - 1, 0)))]
            m.d.sync += h.beats.eq(h.beats + 1)
            with m.If(h.exp_addr == D - 1):
                m.d.sync += [h.exp_addr.eq(0), h.exp_step.eq(h.exp_step + 1)]
            with m.Else():
                m.d.sync += h.exp_addr.eq(h.exp_addr + 1)

    # Properties (PROPERTIES: one method each) ------------------------------------------------

    def _prop_equiv(self, m, dut, h):
        with m.If(h.o_take):
            m.d.comb += Assert(h.out_v == h.ref["v"], "equiv: v' differs from the reference")
            m.d.comb += Assert(h.out_s == h.ref["s"], "equiv: spike differs from the reference")

    def _prop_bounds(self, m, dut, h):
        vmin, vmax = self.shape.v_range
        out_v = h.out_v
        with m.If(h.o_take):
            m.d.comb += Assert((out_v >= vmin) & (out_v <= vmax), "bounds: range")
            with m.If(h.ref["exact"] > vmax):
                m.d.comb += Assert(out_v == vmax, "bounds: no wrap above VMAX")
            with m.If(h.ref["exact"] < vmin):
                m.d.comb += Assert(out_v == vmin, "bounds: no wrap below VMIN")

    def _prop_refractory(self, m, dut, h):
        sp, out_s, rc_a = h.sp, h.out_s, h.rc_a
        value_mode = sp["reset_mode"] == ResetMode.VALUE
        with m.If(h.o_take):
            with m.If(rc_a > 0):
                m.d.comb += Assert(~out_s, "refractory: spike while refractory")
            held_spike = out_s & (sp["t_ref"] > 0)
            with m.If(held_spike | (rc_a > 1)):
                held = Mux(value_mode, sp["v_reset"],
                           Mux(out_s, _sat(h.ov_a - sp["v_th"], self.shape.v_width), h.ov_a))
                m.d.comb += Assert(h.out_v == held, "refractory: membrane not held")

    def _prop_spike(self, m, dut, h):
        with m.If(h.o_take & (h.rc_a == 0)):
            m.d.comb += Assert(h.out_s == (h.ov_a >= h.sp["v_th"]),
                               "spike: spike iff v >= v_th outside the refractory period")

    def _prop_stream(self, m, dut, h):
        o, i, D = dut.o_stream, dut.i_stream, self.shape.depth
        stall = Signal()
        held_payload = Signal(len(o.payload.as_value()))
        m.d.sync += [stall.eq(o.valid & ~o.ready), held_payload.eq(o.payload.as_value())]
        with m.If(stall):
            m.d.comb += Assert(o.valid, "stream: a stalled beat was dropped")
            m.d.comb += Assert(o.payload.as_value() == held_payload,
                               "stream: a stalled beat changed")
        with m.If(o.valid):
            m.d.comb += Assert(h.running, "stream: beat outside a run")
            m.d.comb += Assert((h.a == h.exp_addr) & (o.payload.step == h.exp_step),
                               "stream: beat out of order (lost or duplicated)")
        with m.If(i.ready):
            m.d.comb += Assert(h.running & h.run_ie, "stream: input taken with input_en off")
        with m.If(h.i_take & ~h.pop):
            m.d.comb += Assert(h.qn < h.K, "stream: more inputs taken than updates in flight")
        with m.If(h.pop):
            m.d.comb += Assert(h.qn > 0, "stream: a beat left without its input")
        with m.If(dut.done & h.running):
            m.d.comb += Assert(h.beats == h.run_steps * D, "stream: wrong number of beats")
            m.d.comb += Assert(h.qn == 0, "stream: input beats left over")

    # Invariants (invariants=True) ------------------------------------------------------------

    def _invariants(self, m, pr, h):
        """Assert the inductive strengthening of ``equiv`` and ``bounds``.

        ``pr`` is the array's probe interface (``LIFArray.probes``, an
        :class:`~lifgate.hdl.array.ArrayProbes`; lane 0's stage registers are
        ``pr.lanes[0]``, a :class:`~lifgate.hdl.array.LaneProbes`). Asserted, so proved too:

        * control (:meth:`_inv_control`): the FSM is in a named state; updates are in flight
          only while running, in a contiguous block of stages with addresses ``< D``
          decreasing by 1 per stage (so each address at most once), the youngest one
          ``addr - 1`` while issuing; ``drained``, ``wants_input``, ``input_en``, the clear
          pipeline and the parameter register agree with the harness; the input FIFO holds
          one current per update past the input stage;
        * data (:meth:`_inv_data`): the registers of every in-flight update at address ``a``
          equal the reference's intermediate values (``reference_step``) for the shadow state
          ``sv[a], sr[a]``, the loaded parameters and, past the input stage, the current in
          the FIFO;
        * memories (:meth:`_inv_memories`): ``v`` and ``r`` of every address equal the shadow
          state, except where a clear has not written it yet, or an update has written its
          result ahead of the shadow (``r`` from the write-back stage on, ``v`` in the last
          stage).
        """
        fsm = pr.fsm
        fsm_state = fsm._data["signal"]
        st = {name: fsm_state == code for name, code in fsm.encoding.items()}
        self._inv_control(m, pr, h, st)
        refs = self._inv_data(m, pr, h)
        self._inv_memories(m, pr, h, st, refs)

    @staticmethod
    def _check(m, cond, what, src_loc_at=0):
        # Located at the caller's line, so that a failure in a trace points at its check.
        m.d.comb += Assert(cond, f"invariant: {what}", src_loc_at=1 + src_loc_at)

    def _inv_control(self, m, pr, h, st):
        """The control invariants (see :meth:`_invariants`)."""
        D, L, IN = self.shape.depth, pr.latency, pr.input_stage
        vld, paddr, addr = pr.vld, pr.paddr, pr.addr
        running = st["ISSUE"] | st["DRAIN"]
        clearing = st["CLEAR"] | st["CLEAR_TAIL"]

        def check(cond, what):
            self._check(m, cond, what, src_loc_at=1)

        check(_any_of(st.values()), "FSM state")
        for name in ("IDLE", "LAUNCH", "CLEAR", "CLEAR_TAIL"):
            with m.If(st[name]):
                check(~_any_of(vld[1:]), f"nothing in flight in {name}")
        with m.If(~clearing):
            check(~pr.clr_vld1 & ~pr.clr_vld2, "no clear write outside a clear")
        with m.If(st["LAUNCH"]):
            check(addr == 0, "LAUNCH: addr")
        with m.If(st["CLEAR"] | st["ISSUE"]):
            check(addr < D, "addr in range")
        with m.If(st["DRAIN"]):
            check(addr == D, "DRAIN: all issued")
        with m.If(st["ISSUE"] & (addr == 0)):
            check(~_any_of(vld[1:]), "a step starts drained")
        with m.If(st["ISSUE"] & (addr != 0)):
            check(vld[1] & (paddr[1] == addr - 1), "the youngest update is addr - 1")
        for k in range(1, L + 1):
            with m.If(vld[k]):
                check(paddr[k] < D, f"stage {k}: address in range")
            if k < L:
                with m.If(vld[k] & vld[k + 1]):
                    check((paddr[k] != 0) & (paddr[k + 1] == paddr[k] - 1),
                          f"stages {k}, {k + 1}: consecutive addresses")
            if k + 2 <= L:
                with m.If(vld[k] & ~vld[k + 1]):
                    check(~_any_of(vld[k + 2:]), f"stage {k}: no bubble after the block")
        with m.If(pr.drained):
            check(~_any_of(vld[1:]), "drained")
        check(pr.wants_input == (vld[IN] & pr.input_en), "wants_input")
        check(pr.input_en == h.run_ie, "input_en")
        past_in = vld[IN + 1:]
        n_past = sum(past_in[1:], start=past_in[0].as_unsigned()) if past_in else Const(0)
        check(h.qn == Mux(h.run_ie, n_past, 0),
              "one FIFO current per update past the input stage")
        preg = pr.preg.as_value()
        check(preg == Cat(*(h.sp[name] for name, _ in param_layout(self.shape))),
              "parameter register")
        with m.If(st["LAUNCH"] | running):
            check(_legal_params(self.shape, h.sp), "legal parameters while running")

    def _stage_refs(self, m, pr, h):
        """Per clock ``k`` after issue: the shadow state of the update there and its
        reference step (with its current from the FIFO past the input stage)."""
        shape = self.shape
        W, R, L, IN = shape.v_width, shape.ref_width, pr.latency, pr.input_stage
        vld, paddr = pr.vld, pr.paddr

        def stage_ref(k):
            a = paddr[k]
            v = _pick(m, h.sv, a, signed(W), f"inv_v{k}")
            r = _pick(m, h.sr, a, R, f"inv_r{k}")
            if k > IN:
                # The FIFO's head is the oldest update past the input stage.
                idx = sum((vld[j].as_unsigned() for j in range(k + 1, L + 1)), start=Const(0))
                cur = Mux(h.run_ie, _pick(m, h.q, idx, signed(shape.i_width), f"inv_cur{k}"), 0)
            else:
                cur = Const(0)
            return v, r, reference_step(m, shape, v, r, h.sp, cur, prefix=f"inv{k}")

        return {k: stage_ref(k) for k in range(1, L + 1)}

    def _inv_data(self, m, pr, h):
        """The stage register invariants (see :meth:`_invariants`); returns the references."""
        shape, sp = self.shape, h.sp
        W, R = shape.v_width, shape.ref_width
        vld, phys, lane = pr.vld, pr.phys, pr.lanes[0]
        modes = set(shape.leak_modes)
        refs = self._stage_refs(m, pr, h)
        is_const = (sp["leak_mode"] == LeakMode.CONST) if len(modes) > 1 else \
            Const(modes == {LeakMode.CONST})
        c = sp["leak"][:W].as_signed()

        def expect(j, name, value):
            """Register ``name`` of logical stage ``j`` (physical ``phys(j)``) is ``value``."""
            reg = getattr(lane, name, None)
            if reg is None:
                raise KeyError(f"the lane has no stage register {name!r} (array.py changed?)")
            k = phys(j)
            with m.If(vld[k]):
                self._check(m, reg == value, f"stage {k}: {name}", src_loc_at=1)

        v_rd, r_rd = pr.v_read[0].data, pr.r_read[0].data
        with m.If(vld[phys(1)]):
            v, r, _ = refs[phys(1)]
            self._check(m, (v_rd == v) & (r_rd == r), f"stage {phys(1)}: state read")
        for j, names in ((2, ("v2", "r2")), (3, ("v3", "sub3", "ge3", "refr3", "rdec3",
                                                 "rmore3"))):
            v, r, ref = refs[phys(j)]
            vt = sp["v_th"]
            values = {"v2": v, "r2": r, "v3": v, "sub3": v - vt, "ge3": v >= vt,
                      "refr3": r != 0, "rdec3": (r - 1)[:R], "rmore3": r > 1}
            for name in names:
                expect(j, name, values[name])
        after = sp["reset_mode"] == ResetMode.SUBTRACT_AFTER_LEAK
        built = lane.e4 is not None  # SUBTRACT_AFTER_LEAK's registers (ref["e"] is 0 without)
        for j in (4, 5, 6, 7, 8, 9):
            vj, _, ref = refs[phys(j)]
            hold = ref["r1"] != 0
            expect(j, f"s{j}", ref["s"])
            late = ref["h"] - ref["e"]  # the leak's additive term from stage 5 on
            if j <= 6:
                expect(j, f"hold{j}", hold)
                expect(j, f"h{j}", ref["h"] if j == 4 else late)
            if j in (4, 5) and built:
                expect(j, f"e{j}", ref["s"] & after)  # a spike in SUBTRACT_AFTER_LEAK mode
            if j == 4:
                expect(j, "r4", ref["r1"])
                if built:
                    expect(j, "sub4", vj - sp["v_th"])
            if j == 5:
                x = Mux(is_const, c, ref["h"] - sp["v_rest"]) if modes - {LeakMode.CONST} else c
                expect(j, "x5", x)
                if LeakMode.SHIFT in modes:
                    expect(j, "k5", Mux(is_const, 0, sp["leak"][:len(lane.k5)]))
                if LeakMode.MULT in modes:
                    expect(j, "mult5", (sp["leak_mode"] == LeakMode.MULT) & ~hold)
            if j == 6:
                if LeakMode.MULT in modes:
                    expect(j, "mult6", (sp["leak_mode"] == LeakMode.MULT) & ~hold)
                    if built:
                        expect(j, "vr6", sp["v_rest"] - ref["e"])
                expect(j, "lk", Mux(hold, late, ref["leak"] - ref["e"]))  # from t6 / m6
            if j == 7:
                expect(j, "lk7", Mux(hold, late, ref["leak"] - ref["e"]))
                # i + bias
                expect(j, "izb7", Mux(hold, 0, ref["exact"] - ref["leak"] + ref["e"]))
            if j == 8:
                expect(j, "tot8", ref["exact"])
            if j == 9:
                expect(j, "v9", ref["v"])
        return refs

    def _inv_memories(self, m, pr, h, st, refs):
        """The state memory invariants (see :meth:`_invariants`)."""
        W, R, D = self.shape.v_width, self.shape.ref_width, self.shape.depth
        L, vld, paddr, addr, phys = pr.latency, pr.vld, pr.paddr, pr.addr, pr.phys
        sv, sr, sp = h.sv, h.sr, h.sp
        clearing = st["CLEAR"] | st["CLEAR_TAIL"]
        # Whole memories (the compact pipeline splits one by width only when 4096 // D < W,
        # never at these depths), read through extra asynchronous ports, one per address.
        deep_clear = pr.clr_vld is pr.clr_vld2
        k_r = phys(4)  # the stage that writes r' back (every clock it is there)
        for n in range(D):
            vn = Signal(signed(W), name=f"inv_mem_v{n}")
            rn = Signal(R, name=f"inv_mem_r{n}")
            port_v = pr.v_mem[0].read_port(domain="comb")
            port_r = pr.r_mem[0].read_port(domain="comb")
            m.d.comb += [port_v.addr.eq(n), port_r.addr.eq(n), vn.eq(port_v.data),
                         rn.eq(port_r.data)]
            pending = (st["CLEAR"] & (addr <= n)) | (pr.clr_vld1 & (pr.clr_addr1 == n))
            if deep_clear:
                pending = pending | (pr.clr_vld2 & (pr.clr_addr2 == n))
            at = {k: vld[k] & (paddr[k] == n) for k in range(1, L + 1)}
            with m.If(clearing):
                self._check(m, (sv[n] == sp["v_init"]) & (sr[n] == 0), f"shadow {n} cleared")
            with m.If(~pending):
                self._check(m, (vn == sv[n]) | (at[L] & (vn == refs[L][2]["v"])),
                            f"v[{n}]: memory = shadow (or the result in the last stage)")
                r_ok = (rn == sr[n]) & ~_any_of(at[k] for k in range(k_r + 1, L + 1))
                r_ok = r_ok | (at[k_r] & (rn == refs[k_r][2]["r1"]))
                for k in range(k_r + 1, L + 1):
                    r_ok = r_ok | (at[k] & (rn == refs[k][2]["r1"]))
                self._check(m, r_ok, f"r[{n}]: memory = shadow (or r' written back ahead of it)")


def _pick(m, sigs, idx, shp, name):
    """``sigs[idx]`` as a signal (a case over ``idx``)."""
    x = Signal(shp, name=name)
    for n, s in enumerate(sigs):
        with m.If(idx == n):
            m.d.comb += x.eq(s)
    return x


def _any_of(conds):
    out = Const(0)
    for c in conds:
        out = out | c
    return out


# SymbiYosys ------------------------------------------------------------------------------------


#: SymbiYosys engine of each ``FormalJob.engine``: ``pdr`` is ABC's IC3/PDR (unbounded: it
#: finds an inductive invariant itself, so no hand-written invariants on the pipeline's
#: internal registers are needed), ``boolector``/``z3`` are smtbmc's SMT solvers (BMC, or
#: k-induction with ``mode prove``, which needs ``LaneProof(invariants=True)`` to close).
ENGINES = {"pdr": "abc pdr", "boolector": "smtbmc boolector", "z3": "smtbmc z3"}


@dataclass(frozen=True)
class FormalJob:
    """One SymbiYosys job: a property, a mode and an engine.

    ``mode`` is ``bmc`` (``depth`` clocks from power-up; 0 means :func:`default_depth`) or
    ``prove`` (unbounded; with ``engine="pdr"`` the depth is ignored, with an smtbmc engine it
    is the ``k`` of k-induction, 0 meaning :data:`K_INDUCTION`, and the base case is checked to
    the same depth). ``invariants`` and ``pipeline`` are passed to :class:`LaneProof`.
    """

    prop: str
    mode: str
    depth: int
    shape: ArrayShape = DEFAULT_SHAPE
    max_steps: int = 7
    engine: str = "boolector"
    invariants: bool = False
    pipeline: str = "deep"

    @property
    def name(self) -> str:
        modes = "".join(m.name[0].lower() for m in self.shape.leak_modes)
        d = "" if self.mode == "prove" and self.engine == "pdr" else str(job_depth(self))
        inv = "_inv" if self.invariants else ""
        pipe = "" if self.pipeline == "deep" else f"_{self.pipeline}"
        after = "_after" if ResetMode.SUBTRACT_AFTER_LEAK in self.shape.reset_modes else ""
        return (f"{self.prop}_{self.mode}{d}_{self.engine}_n{self.shape.neurons}_{modes}"
                f"{after}{inv}{pipe}")


def _cycles_per_step(shape: ArrayShape) -> int:

    return shape.depth + LATENCY + 2


def default_depth(shape: ArrayShape = DEFAULT_SHAPE) -> int:
    """BMC depth in clocks: a clear, then ``L + t_ref_max + 2`` timesteps of one run.

    A step takes ``D + L + 2`` clocks (the pipeline drains between steps), so this covers a
    spike, the whole longest refractory period, and the next possible spike, plus ``L`` steps.
    """
    steps = LATENCY + shape.t_ref_max + 2
    return (shape.depth + 4) + 2 + steps * _cycles_per_step(shape)


#: The default shape with only the CONST leak (the cheapest datapath).
CONST_SHAPE = ArrayShape(**{**DEFAULT_SHAPE.__dict__, "leak_modes": (LeakMode.CONST,)})
#: ``CONST_SHAPE`` with one neuron: a timestep takes 12 clocks instead of 13.
ONE_NEURON_SHAPE = ArrayShape(**{**CONST_SHAPE.__dict__, "neurons": 1})

#: k of the k-induction jobs (``mode prove`` with an smtbmc engine) when ``depth`` is 0. With the
#: stage invariants 1 already closes; 2 is faster (the solver sees one more transition).
K_INDUCTION = 2

#: ``DEFAULT_SHAPE`` (every leak mode) with one neuron: the SHIFT and MULT datapaths.
ALL_MODES_ONE_NEURON_SHAPE = ArrayShape(**{**DEFAULT_SHAPE.__dict__, "neurons": 1})

#: ``ONE_NEURON_SHAPE`` (CONST) with SUBTRACT_AFTER_LEAK built: the 2-bit reset field and the
#: mode's registers (``e4``, ``sub4``, ``e5``; its invariants catch a lane that treats the mode
#: as SUBTRACT even where the CONST leak makes the two equal). With every leak mode the proof
#: did not finish in 900 s (SHIFT alone: 118 s, 4x the default build's; docs/verification.md).
AFTER_LEAK_ONE_NEURON_SHAPE = ArrayShape(**{**ONE_NEURON_SHAPE.__dict__,
                                            "reset_modes": tuple(ResetMode)})

#: The jobs of ``pytest -m formal`` (times in docs/verification.md). All unbounded: ``pdr``
#: finds its own invariant; the ``invariants=True`` jobs are k-induction (``k = 2``) over the
#: harness's stage, memory and control invariants, so the "pipeline length + t_ref + 2
#: timesteps" BMC bound is moot. Two neurons (CONST) cover the addressing (two updates in
#: flight, memory write-back ahead of the shadow), one neuron with every leak mode the SHIFT
#: and MULT datapaths (half the time of two neurons), ``compact`` the other pipeline profile
#: (one neuron: its control is that of ``deep``, its datapath registers move by a stage; two
#: neurons pass too, in 10x the time: docs/verification.md).
JOBS = [
    FormalJob("stream", "prove", 0, CONST_SHAPE, engine="pdr"),
    FormalJob("spike", "prove", 0, CONST_SHAPE, engine="pdr"),
    FormalJob("refractory", "prove", 0, CONST_SHAPE, engine="pdr"),
    FormalJob("equiv", "prove", K_INDUCTION, CONST_SHAPE, invariants=True),
    FormalJob("bounds", "prove", K_INDUCTION, CONST_SHAPE, invariants=True),
    FormalJob("equiv", "prove", K_INDUCTION, ONE_NEURON_SHAPE, invariants=True),
    FormalJob("bounds", "prove", K_INDUCTION, ONE_NEURON_SHAPE, invariants=True),
    FormalJob("equiv", "prove", K_INDUCTION, ALL_MODES_ONE_NEURON_SHAPE, invariants=True),
    FormalJob("equiv", "prove", K_INDUCTION, ONE_NEURON_SHAPE, invariants=True,
              pipeline="compact"),
]


#: Jobs too slow for the default suite (``LIFGATE_SLOW=1``): the SUBTRACT_AFTER_LEAK build's
#: ``equiv`` proof, 76 s under load against 7 s for the same CONST shape without the mode.
SLOW_JOBS = [
    FormalJob("equiv", "prove", K_INDUCTION, AFTER_LEAK_ONE_NEURON_SHAPE, invariants=True),
]


def job_depth(job: FormalJob) -> int:
    """``job.depth``, or for 0: :data:`K_INDUCTION` (k-induction), :func:`default_depth` (BMC)."""
    if job.depth:
        return job.depth
    if job.mode == "prove" and job.engine != "pdr":
        return K_INDUCTION
    return default_depth(job.shape)  # pdr: not used by the proof (as before)


def _kill_session(sid: int):
    """SIGKILL every process of session ``sid`` (the sby run and all its engines' groups)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp session ...; comm may contain spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    for pid in pids or [sid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_job(job: FormalJob, workdir, *, timeout: float = 3600,
            array_cls=None) -> tuple[str, float, str]:
    """Write the RTLIL and ``.sby`` file of ``job`` under ``workdir`` and run SymbiYosys.

    Returns ``(status, seconds, log)`` with status ``PASS``, ``FAIL``, ``UNKNOWN``, ``ERROR``
    or ``TIMEOUT``. The solver shims of :mod:`lifgate.sim.solvers` are written to
    ``workdir/bin``.
    """
    if job.engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, not {job.engine!r}")
    if job.engine == "pdr" and job.mode != "prove":
        raise ValueError(f"engine 'pdr' needs mode 'prove', not {job.mode!r}")
    depth = job_depth(job)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bindir = tool_dir(workdir / "bin")
    top = LaneProof(job.shape, props=(job.prop,), max_steps=job.max_steps, array_cls=array_cls,
                    invariants=job.invariants, pipeline=job.pipeline)
    il = workdir / f"{job.name}.il"
    il.write_text(rtlil.convert(top, name="top", ports=[top.cd.clk]))
    sby = workdir / f"{job.name}.sby"
    # `flatten`: the AIGER model (PDR) is flat; the SMT-2 model used to replay a PDR
    # counterexample must be flat as well, or the witness names of the harness's free inputs
    # do not match. `aigsmt boolector`: the replay solver (sby defaults to yices).
    sby.write_text(
        "[options]\n"
        f"mode {job.mode}\n"
        f"depth {depth}\n"
        "multiclock off\n"
        "aigsmt boolector\n"
        f"\n[engines]\n{ENGINES[job.engine]}\n"
        f"\n[script]\nread_rtlil {il.name}\nprep -top top\nflatten\nmemory_map\nopt -fast\n"
        f"\n[files]\n{il.name}\n"
    )
    out = workdir / job.name
    if out.exists():
        shutil.rmtree(out)
    # Compile the YoWASP tools once, one process at a time, before the clock starts.
    warm_up()
    t0 = time.perf_counter()
    # Own session: on a timeout the solvers sby started are ended with it (sby puts each engine
    # in a process group of its own, so ending sby's group alone leaves them running).
    proc = subprocess.Popen(sby_command(bindir, sby.name), cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=sby_env(bindir),
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        log, _ = proc.communicate()
        return "TIMEOUT", time.perf_counter() - t0, log or ""
    seconds = time.perf_counter() - t0
    status = (workdir / job.name / "status").read_text().split()[0] \
        if (workdir / job.name / "status").exists() else "ERROR"
    return status, seconds, log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lifgate.sim.formal",
                                 description="Run the LIFArray lane proofs with SymbiYosys.")
    ap.add_argument("--prop", action="append", choices=PROPERTIES)
    ap.add_argument("--mode", choices=("bmc", "prove"), default="bmc")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="boolector")
    ap.add_argument("--depth", type=int, default=0, help="clocks (0: default_depth)")
    ap.add_argument("--neurons", type=int, default=DEFAULT_SHAPE.neurons)
    ap.add_argument("--max-steps", type=int, default=7)
    ap.add_argument("--modes", default="shift,mult,const", help="leak modes the array builds")
    ap.add_argument("--invariants", action="store_true",
                    help="assert the stage invariants (k-induction of equiv and bounds)")
    ap.add_argument("--pipeline", choices=("deep", "compact"), default="deep")
    ap.add_argument("--workdir", default="build/formal")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="seconds per job; ends the job's solvers too (an outer `timeout` "
                         "would not: sby runs in its own process group)")
    args = ap.parse_args(argv)
    shape = ArrayShape(**{**DEFAULT_SHAPE.__dict__, "neurons": args.neurons,
                          "leak_modes": tuple(args.modes.split(","))})
    if args.prop is None and args.depth == 0:
        jobs = JOBS  # the table of docs/verification.md
    else:
        jobs = [FormalJob(prop, args.mode, args.depth, shape, args.max_steps, args.engine,
                          args.invariants, args.pipeline)
                for prop in args.prop or PROPERTIES]
    failed = 0
    for job in jobs:
        depth = job_depth(job)
        status, seconds, log = run_job(job, args.workdir, timeout=args.timeout)
        if job.mode == "bmc":
            bound = f"depth {depth}"
        else:
            bound = "unbounded" + ("" if job.engine == "pdr" else f" (k={depth})")
        print(f"{job.name:<40} {bound:>17}  {seconds:7.1f} s  {status}", flush=True)
        if status != "PASS":
            failed += 1
            print(log[-3000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
