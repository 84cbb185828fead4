"""The regression kills every injected fault of ``bench/mutants.py`` (a quick subset of cases).

The full bench (``python bench/mutants.py``) runs every directed and random case; here each
mutant runs only the few cases that kill it in the full run (bounded by the first failure), and
the unmutated design must pass those same cases, so a kill is never a broken harness.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
from lifgate.hdl.array import LIFArray
from lifgate.hdl.verilog import TOP, convert_verilog, generate_verilog
from lifgate.sim import longrun, mutate

from lifgate.app.cli import main
from lifgate.config import ArrayShape

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
    results file instead of simulating again and reports the same. Without the long run (a
    Verilator build; ``test_long_run_kills_mutant_160`` runs it the way ``lifgate mutants``
    does)."""
    args = ["mutants", "--count", "4", "--seed", "3", "--configs", "1", "--steps", "4",
            "--sim", "icarus", "--jobs", "1", "--depth", "2", "--json", "--no-progress",
            "--goal", "0", "--long-steps", "0",
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


#: A design whose register bit r[2] reaches no output (y reads r[0] and r[1]; r[2] feeds
#: nothing), in the module name the equivalence check expects.
_TINY = """
module lif_array(input clk, input en, input [2:0] a, output y);
  reg [2:0] r = 3'd0;
  always @(posedge clk) if (en) r <= a ^ {r[1:0], 1'b0};
  assign y = r[0] ^ r[1];
endmodule
"""


def test_equivalence_proof_ignores_bits_no_output_reads(tmp_path):
    """The induction proof of ``lifgate mutants`` pairs only the bits that reach an output: a
    mutant of r[2]'s hold path is proved equivalent (the proof over every signal did not
    prove it: r[2] differs), the same mutant of r[1]'s is not, and its outputs differ."""
    (tmp_path / "t.v").write_text(_TINY)
    mutate._yosys("read_verilog t.v; prep -top lif_array -flatten; write_rtlil design.il; "
                  "tee -q -o cells.txt select -list lif_array/t:$mux", tmp_path, "t.log")
    mux = (tmp_path / "cells.txt").read_text().split()[0].split("/", 1)[1]
    muts = [f"mutate -mode inv -module lif_array -cell {mux} -port A -portbit {b}"
            for b in (2, 1)]
    mset = mutate.MutantSet(shape=mutate.DEFAULT_SHAPE, seed=0, count=2, mutations=muts,
                            locations=["?", "?"], verilog="", work=tmp_path, key="tiny")
    shown, note = mutate.equivalent(mset, 1, depth=4)
    assert shown and "(bounded)" not in note, note
    shown, note = mutate.equivalent(mset, 2, depth=4)
    assert not shown and "outputs differ" in note, note


#: Issue 20's mutant 160 (seed 1, 240 mutants, on the RTL of that session), written again on
#: today's netlist: bit 26 of the `remaining - 1` input of the mux that loads `remaining` on a
#: decrement, XORed with its bit 19 (Yosys `mutate -mode cnot1`). The cell is looked up by what
#: it reads (its number changes with the RTL).
_MUT160 = "mutate -mode cnot1 -module lif_array -cell {cell} -port B -portbit 26 -ctrlbit 19"


def _remaining_mux(shape, work: Path) -> str:
    """The mux cell that loads ``remaining`` from ``rem_dec``, in the netlist of
    :func:`lifgate.sim.mutate.prepare` (the same RTL and passes: the same cell names)."""
    work.mkdir()
    rtl = convert_verilog(LIFArray(shape), name=TOP, src=True, internal_attrs=True)
    (work / "rtl.v").write_text(rtl)
    mutate._yosys(f"read_verilog rtl.v; prep -top {TOP} -flatten; memory_map; opt_clean; "
                  f"tee -q -o cells.txt select -list {TOP}/w:rem_dec %co1 {TOP}/t:$mux %i",
                  work, "cells.log")
    cells = (work / "cells.txt").read_text().split()
    assert len(cells) == 1, cells
    return cells[0].split("/", 1)[1]


def _long(tmp_path, shape, verilog, latency, name, plusargs=()):
    model = longrun.build(longrun.default_case(shape), build_dir=tmp_path / name,
                          latency=latency, verilog=verilog)
    got = longrun.run(model, plusargs=plusargs)
    return model, got, longrun.check(model, got)


def _check_can_fail(model, got):
    """The comparison fails on a report with one thing changed."""
    want = longrun.expected(model.case)
    last = got["last"]
    flip = f"{int(last[-1], 16) ^ 1:0{len(last[-1])}x}"  # bit 0: a spike or a membrane bit
    for change in ({"clocks": got["clocks"] + 1}, {"ended": False}, {"beats": got["beats"] - 1},
                   {"spikes": got["spikes"] + 1}, {"last": [*last[:-1], flip]}):
        assert longrun.check(model, {**got, **change}, want) is not None, change


@pytest.mark.verilator
@pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"), reason="set LIFGATE_SLOW=1 to run")
def test_long_run_default_shape(tmp_path):
    """A run of 2**19 + 3 steps of the default shape's generated Verilog, natively clocked: the
    clocks from start to done are the contract's T (D + L + 2) + 2, the beats T * D, the spikes
    of all beats and the last step's beats the golden model's. Opt-in: 14.2 M clocks and a
    Verilator build of the default shape (40 s quiet, over 200 s on a loaded 2-core machine);
    the default suite runs the same driver and checks on the mutants' shape
    (``test_long_run_kills_mutant_160``), whose run counter is the same logic."""
    shape = ArrayShape()
    verilog = generate_verilog(shape)
    latency = int(re.search(r"pipeline latency L = (\d+) clocks", verilog).group(1))
    model, got, bad = _long(tmp_path, shape, verilog, latency, "default")
    assert bad is None, bad
    _check_can_fail(model, got)


@pytest.mark.verilator
def test_long_run_kills_mutant_160(tmp_path):
    """The mutants' shape, as ``lifgate mutants`` runs it (its Yosys netlist, one build, the
    mutant chosen by ``+mutant=K``): the original passes the long run (clocks, beats, spikes and
    last step against the contract and the golden model; the comparison shown to fail on a
    report with one thing changed), issue 20's mutant 160 (which every cocotb case passes:
    their runs are short) does not end on time."""
    shape = mutate.DEFAULT_SHAPE
    mut = _MUT160.format(cell=_remaining_mux(shape, tmp_path / "cells"))
    mset = mutate.prepare(shape, tmp_path / "design", seed=0, count=1, mutations=[mut])
    model, got, bad = _long(tmp_path, shape, mset.verilog, mset.latency, "m", ("+mutant=0",))
    assert bad is None, bad
    _check_can_fail(model, got)
    got = longrun.run(model, plusargs=("+mutant=1",))
    bad = longrun.check(model, got)
    assert bad is not None and "no done" in bad, (bad, got)


@pytest.mark.verilator
@pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"), reason="set LIFGATE_SLOW=1 to run")
@pytest.mark.parametrize("mutant", mutants.LONG_RUN_MUTANTS, ids=lambda m: m.name)
def test_long_run_kills_hand_made_mutant(tmp_path, mutant):
    """The Amaranth twins of the long-run faults (``bench/mutants.py``) pass the quick cases and
    fail the long run. Opt-in: two Verilator builds (the original's is in the default suite)."""
    shape = mutate.DEFAULT_SHAPE
    assert mutants.run_mutant(mutant, _quick_cases(), shape=mutants.SHAPE)["status"] == "SURVIVED"
    cls = mutants.build_mutant(mutant)
    dut = cls(shape)
    _, got, bad = _long(tmp_path, shape, convert_verilog(dut, name=TOP), dut.latency, "hand")
    assert bad is not None, got
    _, _, bad = _long(tmp_path, shape, generate_verilog(shape), LIFArray(shape).latency, "orig")
    assert bad is None, bad
