"""Formal proofs of one lane of LIFArray (SymbiYosys, smtbmc z3): ``lifgate.hdl.formal``.

They take minutes (see docs/verification.md for depths and times), so they are marked
``formal`` and run only when asked for: ``python -m pytest -m formal tests/test_formal.py``
(or with ``LIFGATE_FORMAL=1``). The harness itself (elaboration to RTLIL with every property)
is checked in the normal suite.
"""

from __future__ import annotations

import os
import shutil

import pytest
from amaranth.back import rtlil
from lifgate.hdl.formal import JOBS, PROPERTIES, LaneProof, run_job


def _formal_requested(config) -> bool:
    return os.environ.get("LIFGATE_FORMAL") == "1" or "formal" in (config.option.markexpr or "")


def test_harness_elaborates():
    """Every property's netlist builds (cheap; catches a gateware port change early)."""
    top = LaneProof(props=PROPERTIES)
    text = rtlil.convert(top, name="top", ports=[top.cd.clk])
    assert "$assert" in text or "assert" in text


@pytest.mark.formal
@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.name)
def test_formal(job, tmp_path, request):
    if not _formal_requested(request.config):
        pytest.skip("formal proofs run with -m formal or LIFGATE_FORMAL=1")
    if shutil.which("yowasp-sby") is None or shutil.which("z3") is None:
        pytest.skip("yowasp-sby or z3 is not installed")
    status, seconds, log = run_job(job, tmp_path)
    assert status == "PASS", f"{job.name}: {status} after {seconds:.0f} s\n{log[-4000:]}"


#: (mutant of bench/mutants.py, property, depth): the property must FAIL on the mutant, which
#: shows the property is not vacuous at that depth.
MUTANT_JOBS = [("ge_to_gt", "spike", 16), ("no_saturation", "bounds", 16),
               ("swapped_reset_mode", "equiv", 14)]


@pytest.mark.formal
@pytest.mark.parametrize("mutant,prop,depth", MUTANT_JOBS, ids=lambda x: str(x))
def test_formal_catches_mutant(mutant, prop, depth, tmp_path, request):
    if not _formal_requested(request.config):
        pytest.skip("formal proofs run with -m formal or LIFGATE_FORMAL=1")
    if shutil.which("yowasp-sby") is None or shutil.which("z3") is None:
        pytest.skip("yowasp-sby or z3 is not installed")
    import importlib.util
    import sys
    from pathlib import Path

    from lifgate.hdl.formal import CONST_SHAPE, FormalJob

    path = Path(__file__).resolve().parents[1] / "bench" / "mutants.py"
    spec = importlib.util.spec_from_file_location("lifgate_bench_mutants", path)
    mb = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mb
    spec.loader.exec_module(mb)
    cls = mb.build_mutant({m.name: m for m in mb.MUTANTS}[mutant])
    status, seconds, log = run_job(FormalJob(prop, "bmc", depth, CONST_SHAPE), tmp_path,
                                   array_cls=cls)
    assert status == "FAIL", f"{prop} did not catch {mutant}: {status}\n{log[-2000:]}"
