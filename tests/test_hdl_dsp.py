"""``lifgate.hdl.dsp``: the registered multiplier and multiply-add, their latency and checks.

The vendor kinds (``ecp5``, ``ice40``) are instances that only Icarus and Verilator run; they
are checked against the golden model inside the array by ``tests/test_sim_regression.py``
(shapes ``ecp5`` and ``ice40``).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator
from lifgate.hdl.dsp import RegisteredMul, RegisteredMulAdd, simulation_models

from lifgate.config import ArrayShape, ConfigError


def _run(dut, stimulus, names):
    """Drive ``stimulus`` (dicts of port values, the enable in 'ce') and collect ``dut``'s
    output ``names`` after each enabled clock."""
    got = []

    async def bench(ctx):
        for values in stimulus:
            for name, value in values.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            if values["ce"]:
                got.append(ctx.get(getattr(dut, names)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_registered_mul_latency_and_values():
    rng = np.random.default_rng(1)
    dut = RegisteredMul(signed(18), unsigned(16))
    stim = [{"a": int(rng.integers(-2**17, 2**17)), "b": int(rng.integers(0, 2**16)),
             "ce": int(rng.random() < 0.7)} for _ in range(200)]
    got = _run(dut, stim, "p")
    enabled = [s for s in stim if s["ce"]]
    # p after enabled clock k: the operands of enabled clock k - 1 (captured there, their
    # product registered at k): two registers, two enabled clocks from operands to p.
    want = [s["a"] * s["b"] for s in enabled]
    assert got[1:] == want[:len(got) - 1]


def test_registered_mul_add_latency_and_values():
    rng = np.random.default_rng(2)
    dut = RegisteredMulAdd(unsigned(10), unsigned(16), signed(27))
    stim = [{"a": int(rng.integers(0, 1021)), "b": int(rng.integers(0, 2**16)),
             "c": int(rng.integers(-2**26, 2**26)), "ce": int(rng.random() < 0.7)}
            for _ in range(200)]
    got = _run(dut, stim, "s")
    enabled = [s for s in stim if s["ce"]]
    # s after enabled clock k: a, b of enabled clock k - 2, c of enabled clock k.
    want = [enabled[k - 2]["a"] * enabled[k - 2]["b"] + enabled[k]["c"]
            for k in range(2, len(enabled))]
    assert got[2:] == want


def test_checks():
    with pytest.raises(ValueError, match="Multiplier kind must be one of"):
        RegisteredMul(8, 8, kind="xilinx")
    with pytest.raises(ValueError, match="Operand a of an ecp5 multiplier must be at most 18"):
        RegisteredMul(signed(19), 8, kind="ecp5")
    with pytest.raises(ValueError, match="Operand b of an ice40 multiply-add must be unsigned"):
        RegisteredMulAdd(8, signed(8), 8, kind="ice40")
    with pytest.raises(ValueError, match="sum of an ice40 multiply-add must be at most 32"):
        RegisteredMulAdd(16, 16, signed(32), kind="ice40")


def test_array_checks_before_elaboration():
    from lifgate.hdl.array import LIFArray

    with pytest.raises(ConfigError, match="'v_width' must be at most 22"):
        LIFArray(ArrayShape(neurons=8, lanes=2, groups=1, v_width=24), multiplier="ice40")
    LIFArray(ArrayShape(neurons=8, lanes=2, groups=1, v_width=24), multiplier="ice40",
             noise=False)
    with pytest.raises(ValueError, match="Multiplier must be one of"):
        LIFArray(ArrayShape(neurons=8, lanes=2, groups=1), multiplier="dsp")


def test_simulation_models_pick_what_is_used():
    assert simulation_models("module top; endmodule") == ""
    both = simulation_models("  MULT18X18D m (\n  SB_MAC16 s (\n")
    assert "module MULT18X18D" in both and "module SB_MAC16" in both
