"""The gateware's multi-spike output (``ArrayShape.spike_max > 1``, docs/numerics.md,
"Multi-spike output") against the golden model, count for count and membrane for membrane, on
Amaranth's simulator, Icarus and Verilator: random cases (about half with small thresholds, so
counts up to the cap), a directed case that stays at the cap until the membrane saturates, in
both reset modes and with a refractory period, and a planted threshold difference that the
testbench must report as a count mismatch. ``spike_max = 1`` is today's array: its Verilog is
unchanged (the shapes are equal, and the lane builds the one-bit path).
"""

import os

import numpy as np
import pytest
from amaranth.hdl import Shape, unsigned
from lifgate.golden.fixed import simulate
from lifgate.hdl.array import lane_signature
from lifgate.hdl.verilog import generate_verilog
from lifgate.sim import regress, runner
from lifgate.sim.cases import Segment, SimCase, random_cases

from lifgate.config import ArrayShape, Config, LeakMode, NeuronParams, ResetMode

SEED = int(os.environ.get("LIFGATE_SIM_SEED", "5"))
#: Small and cheap: 2 lanes of 4 neurons, 10-bit membrane, counts of 3 bits.
SHAPE = ArrayShape(neurons=8, lanes=2, groups=4, v_width=10, i_width=9, ref_width=2,
                   decay_frac=6, spike_max=7)


def _capped_case() -> SimCase:
    """Bias 60 against thresholds of 5 and 7: every step past the first emits the cap (7),
    the membrane climbs to VMAX and saturates; SUBTRACT, VALUE, a refractory period, and a
    threshold of 1 (the largest quotient)."""
    base = dict(v_rest=0, v_init=0, leak_mode=LeakMode.CONST, leak=0, v_reset=-3, bias=60)
    params = (NeuronParams(v_th=5, reset_mode=ResetMode.SUBTRACT, t_ref=0, **base),
              NeuronParams(v_th=7, reset_mode=ResetMode.VALUE, t_ref=0, **base),
              NeuronParams(v_th=5, reset_mode=ResetMode.SUBTRACT, t_ref=2, **base),
              NeuronParams(v_th=1, reset_mode=ResetMode.SUBTRACT, t_ref=1, **base))
    return SimCase(name="capped", config=Config(shape=SHAPE, params=params),
                   segments=(Segment(14),), input={"kind": "uniform", "bits": 4, "seed": 3})


def _planted_case() -> tuple[SimCase, dict]:
    """The hardware's last group gets v_th 3 where the golden model has 9: at step 1 (v = 20
    after one step of bias 20) it emits 6 spikes where the golden model expects 2."""
    p = NeuronParams(v_th=9, v_init=0, v_rest=0, v_reset=0, bias=20, leak_mode=LeakMode.CONST,
                     leak=0, reset_mode=ResetMode.SUBTRACT, t_ref=0)
    golden = Config(shape=SHAPE, params=(p,))
    hw = list(golden.params)
    hw[-1] = NeuronParams(**{**p.__dict__, "v_th": 3})
    case = SimCase(name="planted", config=golden, segments=(Segment(3),),
                   hw_config=Config(shape=SHAPE, params=tuple(hw)))
    return case, {"step": 1, "neuron": 6, "expected": 2, "got": 6}


def _cases():
    cases = random_cases(SHAPE, SEED, 6, steps=20) + [_capped_case()]
    planted, want = _planted_case()
    return cases + [planted], want


def test_cases_reach_the_cap():
    """The cases test counts, not only spikes: the golden run emits every count 0 .. 7."""
    cases, _ = _cases()
    seen = set()
    for case in cases:
        res = simulate(case.config, case.steps, np.concatenate(
            [case.currents(k) if case.input else np.zeros((s.steps, SHAPE.neurons), int)
             for k, s in enumerate(case.segments)]) if case.input else None)
        seen |= set(np.unique(res.spikes).tolist())
    assert seen == set(range(8))


def test_one_spike_verilog_has_no_count():
    """``spike_max = 1`` builds the one-bit lane: no quotient register, one spike bit a lane
    in the beat (the Verilog of today's shapes is byte-identical: see the report of the
    change that added multi-spike output, which diffed 12 variants)."""
    one = ArrayShape(neurons=8, lanes=2, groups=4, v_width=10, i_width=9, ref_width=2,
                     decay_frac=6)
    text = generate_verilog(one)
    assert "q3" not in text and "spike_max" not in text
    assert one.layout.beat(True)["spikes"].width == 2
    multi = generate_verilog(SHAPE)
    assert "l0_q3" in multi and "//   spike_max   = 7" in multi
    assert SHAPE.layout.beat(True)["spikes"].width == 2 * 3
    assert Shape.cast(lane_signature(SHAPE).members["spike"].shape) == unsigned(3)


@pytest.mark.parametrize("sim", [
    "amaranth",
    pytest.param("icarus", marks=pytest.mark.icarus),
    pytest.param("verilator", marks=pytest.mark.verilator),
])
def test_multispike_bit_exact(sim, tmp_path):
    if sim != "amaranth":
        try:
            runner.check_simulator(sim)
        except runner.SimulatorError as e:
            pytest.fail(str(e))
    cases, want = _cases()
    if sim == "amaranth":  # its driver loads case.config only (no hw_config): no planting
        cases = [c for c in cases if c.hw_config is None]
    report = regress.regress(sim, SHAPE, cases, build_dir=tmp_path, optimize=False)
    by_name = {r["name"]: r for r in report.results}
    planted = by_name.pop("planted", None)
    report.results = list(by_name.values())
    assert not report.failures, f"{report.describe_failure(cases)}\nseed {SEED}"
    assert len(report.results) == 7
    if planted is None:
        return
    m = planted["mismatch"]
    assert m is not None, "a count difference between hardware and golden model went unseen"
    assert (m["step"], m["neuron"], m["field"]) == (want["step"], want["neuron"], "spike"), m
    assert (m["expected"]["spike"], m["got"]["spike"]) == (want["expected"], want["got"]), m
