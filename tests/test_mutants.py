"""The regression kills every injected fault of ``bench/mutants.py`` (a quick subset of cases).

The full bench (``python bench/mutants.py``) runs every directed and random case; here each
mutant runs only the few cases that kill it in the full run (bounded by the first failure), and
the unmutated design must pass those same cases, so a kill is never a broken harness.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lifgate.app.cli import main

_BENCH = Path(__file__).resolve().parents[1] / "bench" / "mutants.py"
_spec = importlib.util.spec_from_file_location("lifgate_bench_mutants", _BENCH)
mutants = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mutants  # dataclasses look their module up
_spec.loader.exec_module(mutants)

#: Cases (by name, from lifgate.sim.cases.directed_cases) of the quick run.
QUICK = ("sat_high_value", "negative_currents", "clear_mid_sequence",
         "leak_mult_63_subtract_after_leak")


def _quick_cases():
    by_name = {c.name: c for c in mutants.cases(mutants.SHAPE, random=0)}
    return [by_name[n] for n in QUICK]


def test_original_passes_quick_cases():
    r = mutants.run_mutant(None, _quick_cases())
    assert r["status"] == "PASS", r


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_mutant_killed(mutant):
    r = mutants.run_mutant(mutant, _quick_cases())
    assert r["status"] != "STALE", f"the patch no longer applies to the gateware: {r['detail']}"
    assert r["status"] == "KILLED", f"{mutant.fault} survived the regression: {r}"


@pytest.mark.icarus
def test_lifgate_mutants_smoke_is_seeded_and_resumable(tmp_path, capsys):
    """``lifgate mutants`` on a handful of Yosys mutants (Icarus, short cases): the original
    passes, every mutant gets a status, a survivor a source location; a second run reads the
    results file instead of simulating again and reports the same."""
    args = ["mutants", "--count", "4", "--seed", "3", "--configs", "1", "--steps", "4",
            "--sim", "icarus", "--jobs", "1", "--depth", "2", "--json", "--no-progress",
            "--goal", "0",
            "--build-dir", str(tmp_path / "b"), "--results", str(tmp_path / "r.jsonl")]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["mutants"] == 4 and first["ok"] is True
    assert first["killed"] + first["survived"] + first["equivalent"] == 4
    assert first["killed"] >= 1, first
    assert all(s["location"] and s["mutation"].startswith("mutate ") for s in
               first["survivors"])
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 5  # the original and the 4 mutants
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert (tmp_path / "r.jsonl").read_text().splitlines() == lines
    assert {k: again[k] for k in ("killed", "survived", "equivalent", "survivors")} == {
        k: first[k] for k in ("killed", "survived", "equivalent", "survivors")}
