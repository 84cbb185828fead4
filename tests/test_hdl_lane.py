"""The lane of ``hdl/array.py`` (:class:`lifgate.hdl.array.Lane`) alone, against the golden step.

The ``Lane`` component in Amaranth's simulator, without the array around it: every output
(``s``, ``v'``, ``r'``) equals :func:`lifgate.golden.fixed.step_scalar` for random states,
parameters and currents (edge values a third of the time), in every leak and reset mode (shapes
with and without SUBTRACT_AFTER_LEAK), for
both pipeline profiles, with one parameter group and with several. The shifted leak's algebra
(the ``lk =`` line) is checked on its own in ``tests/test_hdl_leak_algebra.py``. Also: the
probe interface (``Lane.probes``, ``LIFArray.probes``) names the registers the formal proofs
read.
"""

from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from lifgate.golden.fixed import step_scalar
from lifgate.hdl.array import PIPELINES, Lane, LaneProbes, LIFArray

from lifgate.config import ArrayShape, LeakMode, NeuronParams, ResetMode, pack_params

# The Lane component alone ----------------------------------------------------------------------

SHAPES = [
    ArrayShape(neurons=4, lanes=1, groups=1, v_width=6, i_width=4, ref_width=2, decay_frac=4,
               step_width=8),
    ArrayShape(neurons=4, lanes=1, groups=2, v_width=8, i_width=6, ref_width=3, decay_frac=6,
               step_width=8, reset_modes=tuple(ResetMode)),
    ArrayShape(neurons=4, lanes=1, groups=1, v_width=16, i_width=16, ref_width=4,
               decay_frac=12, step_width=8, leak_modes=(LeakMode.SHIFT, LeakMode.CONST)),
    ArrayShape(neurons=4, lanes=1, groups=1, v_width=12, i_width=8, ref_width=2,
               decay_frac=10, step_width=8, leak_modes=(LeakMode.MULT,),
               reset_modes=tuple(ResetMode)),
]


def _random_case(shape, rng):
    W, F = shape.v_width, shape.decay_frac
    vmin, vmax = shape.v_range
    edge = [vmin, vmin + 1, -1, 0, 1, vmax - 1, vmax]

    def val():
        return rng.choice(edge) if rng.random() < 0.3 else rng.randint(vmin, vmax)

    mode = rng.choice(shape.leak_modes)
    leak = {LeakMode.SHIFT: rng.randint(0, W), LeakMode.MULT: rng.randint(0, (1 << F) - 1),
            LeakMode.CONST: val()}[mode]
    p = NeuronParams(v_th=val(), v_reset=val(), v_rest=val(), v_init=val(), bias=val(),
                     leak_mode=mode, leak=leak, reset_mode=rng.choice(shape.reset_modes),
                     t_ref=rng.randint(0, shape.t_ref_max))
    ilo, ihi = -(1 << (shape.i_width - 1)), (1 << (shape.i_width - 1)) - 1
    r = rng.choice([0, 0, 1, 2, shape.t_ref_max, rng.randint(0, shape.t_ref_max)])
    return p, val(), r, rng.randint(ilo, ihi)


def _run_lane(shape, pipeline, cases):
    """Each case's inputs held for ``latency + 1`` clocks, then the outputs (the lane holds
    no state, so a constant input fills every stage with the same update)."""
    lane = Lane(shape, noise=False, pipeline=pipeline)
    latency = 1 + sum(PIPELINES[pipeline])
    got = []

    async def bench(ctx):
        ctx.set(lane.ce, 1)
        for p, v, r, i in cases:
            ctx.set(lane.params.as_value(), pack_params(shape, p))
            ctx.set(lane.v, v)
            ctx.set(lane.r, r)
            ctx.set(lane.i, i)
            await ctx.tick().repeat(latency + 1)
            got.append((ctx.get(lane.spike), ctx.get(lane.v_next), ctx.get(lane.r_next)))

    sim = Simulator(lane)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"W{s.v_width}_G{s.groups}_"
                         + "".join(m.name[0] for m in s.leak_modes)
                         + "_A" * (ResetMode.SUBTRACT_AFTER_LEAK in s.reset_modes))
def test_lane_matches_golden_step(shape, pipeline):
    rng = random.Random(f"{shape}{pipeline}")
    cases = [_random_case(shape, rng) for _ in range(150)]
    got = _run_lane(shape, pipeline, cases)
    for (p, v, r, i), out in zip(cases, got, strict=True):
        want = step_scalar(shape, p, v, r, i)
        assert out == tuple(want), f"{p} v={v} r={r} i={i}: lane {out}, golden {want}"


def test_probes_name_the_registers():
    """The probe interface is the lane's registers, made before elaboration; leak modes the
    shape does not build have none; the array lists its lanes' probes."""
    const_only = ArrayShape(neurons=2, lanes=1, groups=1, v_width=4, i_width=2, ref_width=2,
                            decay_frac=2, step_width=8, leak_modes=(LeakMode.CONST,))
    lane = Lane(const_only, noise=False)
    Fragment.get(lane, None)
    assert isinstance(lane.probes, LaneProbes)
    assert lane.probes.v9.shape().width == 4 and lane.probes.k5 is None
    assert lane.probes.mult5 is None and lane.probes.mult6 is None
    # SUBTRACT_AFTER_LEAK's registers only where the shape builds it (SHAPES[1], [3])
    assert lane.probes.e4 is lane.probes.sub4 is lane.probes.e5 is lane.probes.vr6 is None
    for shape in SHAPES[1], SHAPES[3]:
        probes = Lane(shape, noise=False).probes
        assert probes.e4 is not None and probes.sub4 is not None and probes.e5 is not None
        assert probes.vr6 is not None  # MULT built
    array = LIFArray(SHAPES[0], noise=False)
    assert array.probes is None
    Fragment.get(array, None)
    assert len(array.probes.lanes) == 1 and array.probes.lanes[0].k5 is not None


def test_array_builds_its_lanes_into_its_own_module():
    """The array's lanes are no Verilog modules of their own (``Lane.build``): synthesis sees
    the array's netlist as before the lane was split out; the registers keep their ``l<p>_``
    names (the names in the resource reports' critical paths)."""
    shape = ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=6, ref_width=3,
                       decay_frac=6, step_width=8)
    text = rtlil.convert(LIFArray(shape, noise=True), name="top")
    modules = [line.split()[1] for line in text.splitlines() if line.startswith("module ")]
    assert not [name for name in modules if "lane" in name], modules
    for p in range(2):
        for reg in ("v2", "sub3", "h4", "x5", "k5", "t6", "lk7", "tot8", "v9", "fire"):
            assert f"\\l{p}_{reg} " in text or f"\\l{p}_{reg}\n" in text, (p, reg)


def _top_wires(text):
    """The wire names of RTLIL module ``\\top``, without Amaranth's ``$n`` suffixes."""
    body = text.split("module \\top\n", 1)[1].split("\nend\n", 1)[0]
    return {line.split()[-1].lstrip("\\").split("$")[0] for line in body.splitlines()
            if line.lstrip().startswith("wire ")}


@pytest.mark.parametrize("noise,groups", [(False, 1), (True, 1), (True, 2)])
def test_array_lanes_add_no_wires(noise, groups):
    """Built into the array, a lane works on the array's own values: none of its ports (nor a
    wire for the leak ``lk``) is a wire of the array, so the generated Verilog is the one the
    array had before the lane was split out (``lifgate generate`` byte-identical; a wire more
    renumbers every anonymous one and moves placement)."""
    shape = ArrayShape(neurons=8, lanes=2, groups=groups, v_width=8, i_width=6, ref_width=3,
                       decay_frac=6, step_width=8)
    wires = _top_wires(rtlil.convert(LIFArray(shape, noise=noise), name="top"))
    # (Not ``addend``: the noise sources' port of that name has its wire in the array.)
    lane_ports = {"v", "r", "i", "params", "bz", "r_next", "spike", "v_next"}
    assert not wires & (lane_ports | {"l0_lk", "l1_lk"}), sorted(wires & lane_ports)
    assert {"l0_v9", "l1_v9", "ce", "preg" if groups == 1 else "pwe"} <= wires
