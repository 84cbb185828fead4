"""Bit-exact regression of the generated Verilog on Icarus and Verilator (cocotb harness).

Each test builds one compile-time shape on one simulator (``lifgate.hdl.verilog`` output inside
``sim/harness.v``) and runs, in one cocotb session, the directed edge cases of
:func:`lifgate.sim.cases.directed_cases`, seeded random run-time configurations and one case
that must fail (the hardware gets different parameters than the golden model), comparing every
spike and membrane value with :func:`lifgate.golden.fixed.simulate`.

The random configurations come from ``LIFGATE_SIM_SEED`` (a fresh seed per run if unset); the
seed and the command that reproduces a test are printed and put into every failure message.
"""

from __future__ import annotations

import dataclasses
import os
import secrets

import pytest
from lifgate.sim import regress, runner
from lifgate.sim.cases import Segment, SimCase, directed_cases, random_cases

from lifgate.config import ArrayShape, Config, LeakMode, NeuronParams, ResetMode

SEED = int(os.environ.get("LIFGATE_SIM_SEED") or secrets.randbelow(1 << 31))

SHAPES = {
    # The defaults: 4 lanes x 16 addresses, a parameter set per neuron, every leak mode.
    "default": (ArrayShape(), True),
    # Small widths (saturation everywhere), 3 lanes (not a power of two), groups that do not
    # line up with lanes, 8-bit step label (wraps within a run); SUBTRACT_AFTER_LEAK built
    # (the 2-bit reset field; its directed cases and random draws).
    "narrow": (
        ArrayShape(neurons=18, lanes=3, groups=3, v_width=6, i_width=4, ref_width=2,
                   decay_frac=3, step_width=8, reset_modes=tuple(ResetMode)),
        True,
    ),
    # 32-bit membrane and input, 24 fraction bits (57-bit products), one parameter set.
    "wide": (
        ArrayShape(neurons=16, lanes=2, groups=1, v_width=32, i_width=32, ref_width=16,
                   decay_frac=24, step_width=32),
        True,
    ),
    # One lane, shift leak only, no membrane readback (spikes compared only).
    "onelane-nomem": (
        ArrayShape(neurons=8, lanes=1, groups=2, v_width=8, i_width=8, ref_width=4,
                   decay_frac=8, leak_modes=(LeakMode.SHIFT,)),
        False,
    ),
    # The structure the iCE40 build uses (the compact pipeline, latency 8, the membrane
    # memory cut into 30- and 2-bit slices at D = 136), with a copy of the pipeline enable per
    # lane as the ECP5 build uses.
    "compact": (
        ArrayShape(neurons=272, lanes=2, groups=4, v_width=32, i_width=16, ref_width=3,
                   decay_frac=12),
        True,
    ),
    # The structure of the ECP5 build: MULT18X18D multipliers with their own registers (leak
    # and noise), simulated with lifgate's model of the primitive; all leak modes, 16-bit
    # membrane (the widest the 18-bit operand takes).
    "ecp5": (
        ArrayShape(neurons=48, lanes=4, groups=3, v_width=16, i_width=12, ref_width=4,
                   decay_frac=16),
        True,
    ),
    # The ECP5 structure with one shared pipeline enable, as the ULX3S board top builds it:
    # the DP16KD read register then loads only for issued updates.
    "ecp5-shared": (
        ArrayShape(neurons=48, lanes=4, groups=3, v_width=16, i_width=12, ref_width=4,
                   decay_frac=16),
        True,
    ),
    # The structure of the iCE40 build: the compact pipeline, and each lane's noise
    # multiply-add (bias included) in one SB_MAC16, simulated with Yosys' model of it.
    "ice40": (
        ArrayShape(neurons=40, lanes=2, groups=2, v_width=16, i_width=16, ref_width=3,
                   decay_frac=10),
        True,
    ),
}

#: LIFArray's structural options per shape (default: none, the deep pipeline).
OPTIONS = {
    "compact": {"pipeline": "compact", "lanes_per_enable": 1},
    "ecp5": {"multiplier": "ecp5", "memory": "ecp5", "lanes_per_enable": 2},
    "ecp5-shared": {"multiplier": "ecp5", "memory": "ecp5"},
    "ice40": {"multiplier": "ice40", "pipeline": "compact"},
}

# (simulator, shape, random configurations): 30 random configurations on Icarus, 62 on
# Verilator (whose runs cost little next to its builds).
PLAN = [
    ("icarus", "default", 8),
    ("icarus", "narrow", 8),
    ("icarus", "onelane-nomem", 6),
    ("icarus", "compact", 2),
    ("icarus", "ecp5", 2),
    ("icarus", "ecp5-shared", 2),
    ("icarus", "ice40", 2),
    ("verilator", "default", 20),
    ("verilator", "compact", 8),
    ("verilator", "ecp5", 8),
    ("verilator", "ice40", 8),
    ("verilator", "wide", 12),
    ("verilator", "narrow", 6),
]


def _repro(node: str) -> str:
    return f"LIFGATE_SIM_SEED={SEED} python -m pytest '{node}'"


def _negative_case(shape: ArrayShape) -> tuple[SimCase, dict]:
    """A case whose hardware gets a threshold of 0 in the last group; the golden model VMAX.

    No leak, bias 1, v_init 0: at step 0 the hardware's last group spikes (0 >= 0), the golden
    model's does not; both integrate to v' = 1 (VALUE reset to 0, no refractory period). The
    first neuron of the last group at step 0 must be reported, spike expected 0, got 1.
    """
    mode = LeakMode.CONST if LeakMode.CONST in shape.leak_modes else shape.leak_modes[0]
    leak = {LeakMode.CONST: 0, LeakMode.SHIFT: shape.v_width,
            LeakMode.MULT: (1 << shape.decay_frac) - 1}[mode]
    hi = shape.v_range[1]
    p = NeuronParams(v_th=hi, v_init=0, v_rest=0, v_reset=0, bias=1, leak_mode=mode,
                     leak=leak, t_ref=0)
    golden = Config(shape=shape, params=(p,))
    hw = list(golden.params)
    hw[-1] = dataclasses.replace(p, v_th=0)
    case = SimCase(name="negative_threshold", config=golden, segments=(Segment(3),),
                   hw_config=Config(shape=shape, params=tuple(hw)))
    return case, {"step": 0, "neuron": (shape.groups - 1) * shape.group_size}


@pytest.mark.parametrize(
    ("sim", "shape_name", "configs"),
    [pytest.param(*p, marks=getattr(pytest.mark, p[0]), id=f"{p[0]}-{p[1]}") for p in PLAN],
)
def test_regression(sim, shape_name, configs, tmp_path, request):
    shape, membrane = SHAPES[shape_name]
    repro = _repro(request.node.nodeid)
    print(f"seed {SEED}; reproduce with: {repro}")
    try:
        runner.check_simulator(sim)
    except runner.SimulatorError as e:
        pytest.fail(str(e))
    cases = directed_cases(shape, steps=16, long_steps=40)
    cases += random_cases(shape, SEED, configs, steps=32)
    negative, want = _negative_case(shape)
    cases.append(negative)
    report = regress.regress(sim, shape, cases, build_dir=tmp_path, membrane=membrane,
                             optimize=False, options=OPTIONS.get(shape_name))
    by_name = {r["name"]: r for r in report.results}
    neg = by_name.pop(negative.name)
    report.results = list(by_name.values())
    assert not report.failures, f"{report.describe_failure(cases)}\nseed {SEED}; {repro}"
    # The testbench must be able to fail: the planted difference is found, where it is.
    m = neg["mismatch"]
    assert m is not None, "a parameter difference between hardware and golden model went unseen"
    assert (m["step"], m["neuron"], m["field"]) == (want["step"], want["neuron"], "spike"), m
    assert (m["expected"]["spike"], m["got"]["spike"]) == (0, 1), m
    n_random = sum(1 for r in report.results if r["name"].startswith("random"))
    assert n_random == configs
    assert report.updates > 0
    print(f"{sim} {shape_name}: {len(report.results)} cases, {report.updates} updates, "
          f"build {report.build_seconds:.1f} s, run {report.run_seconds:.1f} s")
