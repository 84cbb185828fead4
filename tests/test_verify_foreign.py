"""``lifgate verify --verilog FILE`` and ``--netlist BOARD``: the regression on Verilog from
elsewhere (issue 20).

The generated file passes on both simulators; an edited copy with one operator changed fails
and names its first mismatch; the iCEBreaker netlist of a small array passes; a file whose
ports differ from ``docs/hardware.md`` is refused with exit 2 and one line naming the port,
before anything is built.
"""

from __future__ import annotations

import json
import re

import pytest
from lifgate.hdl.verilog import generate_verilog
from lifgate.sim import foreign, runner
from lifgate.sim.cases import directed_cases

from lifgate.app.cli import main
from lifgate.config import ArrayShape

SHAPE = ArrayShape(neurons=8, lanes=2, groups=2)
RUN = ["--steps", "4", "--configs", "2", "--seed", "5", "--json", "--no-progress"]
#: The threshold compare of lane 0, as Yosys writes it for SHAPE.
GE = re.compile(r"(assign \\\$\d+ += \$signed\(l0_v2\) )>=( \$signed\([\w$]+\[\d+:\d+\]\);)")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("rtl") / "lif_array.v"
    path.write_text(generate_verilog(SHAPE))
    return path


def _verify(args, capsys):
    rc = main(["verify", *args])
    cap = capsys.readouterr()
    return rc, cap


@pytest.mark.parametrize("sim", [pytest.param("icarus", marks=pytest.mark.icarus),
                                 pytest.param("verilator", marks=pytest.mark.verilator)])
def test_generated_file_passes(sim, generated, tmp_path, capsys):
    rc, cap = _verify(["--sim", sim, "--verilog", str(generated), *RUN,
                       "--build-dir", str(tmp_path)], capsys)
    out = json.loads(cap.out)
    assert rc == 0 and out["ok"], out["first_mismatch"]
    assert out["shape"]["neurons"] == 8 and out["shape"]["groups"] == 2
    assert out["design"] == str(generated) and out["updates"] > 0
    assert "--verilog" in out["repro"] and "--neurons" not in out["repro"]


@pytest.mark.icarus
def test_edited_copy_fails_and_names_the_first_mismatch(generated, tmp_path, capsys):
    text, n = GE.subn(r"\1>\2", generated.read_text())
    assert n == 1, "the threshold compare of lane 0 moved; update GE"
    edited = tmp_path / "edited.v"
    edited.write_text(text)
    rc, cap = _verify(["--sim", "icarus", "--verilog", str(edited), *RUN,
                       "--build-dir", str(tmp_path / "b")], capsys)
    out = json.loads(cap.out)
    assert rc == 1 and not out["ok"] and out["mismatches"] > 0
    m = out["first_mismatch"]
    assert {"case", "step", "neuron", "expected", "got"} <= set(m)
    assert m["expected"] != m["got"]
    rc, cap = _verify(["--sim", "icarus", "--verilog", str(edited), "--steps", "4",
                       "--configs", "0", "--seed", "5", "--no-progress",
                       "--build-dir", str(tmp_path / "b")], capsys)
    assert rc == 1
    assert f"first mismatch in configuration {m['case']!r}, step {m['step']}, " \
           f"neuron {m['neuron']}" in cap.out


def _edit(text: str, register: str, pattern: str, repl: str) -> str:
    """``text`` with ``pattern`` (``{v}``: the variable ``register`` is loaded from) replaced
    once by ``repl``."""
    var = re.search(rf"{register} <= \\\$(\d+) ;", text).group(1)
    edited, n = re.subn(pattern.replace("{v}", var), repl, text)
    assert n == 1, f"the logic of {register} moved; update the pattern"
    return edited


@pytest.mark.icarus
def test_clear_timing_and_long_counter_bits_kill_mutants_202_and_131(generated, tmp_path):
    """Survivors 202 and 131 of ``lifgate mutants`` (seed 1, 240 mutants), written again on
    the generated file, on Icarus (``lifgate mutants`` showed the same kills on Verilator):
    202 pulses a clear's ``done`` one clock early, in its last busy clock (the testbench
    checks the contract's D + 3 clocks from ``clear`` to ``done``); 131 ties bit 24 of
    ``rem_dec`` (``remaining - 1``) to 0, so a run of 2**24 + 4 steps ends after 4
    (``abort_long_runs``: no aborted run may pulse ``done`` before it can have ended). The
    unedited file passes the same case."""
    case = next(c for c in directed_cases(SHAPE, steps=4, long_steps=8)
                if c.name == "abort_long_runs")
    text = generated.read_text()
    designs = {
        "original": text,
        "202": _edit(text, "done", r"if \((\\\$\d+ )\) begin(\s+\\\${v}  = 1'h1;)",
                     r"if (!\1) begin\2"),
        "131": _edit(text, "rem_dec", r"(\\\${v}  = \\\$\d+ \[31:0\]);",
                     r"\1 & 32'hfeffffff;"),
    }
    got = {}
    for name, verilog in designs.items():
        model = runner.build("icarus", SHAPE, build_dir=tmp_path / name, verilog=verilog)
        (res,) = runner.run(model, [case], test_dir=tmp_path / name / "run")
        got[name] = (res["mismatch"] or {}).get("error")
    assert got["original"] is None, got
    assert "a clear took 6 clocks from the strobe to done, not D + 3 = 7" in (got["202"] or ""), got
    assert "done within" in (got["131"] or "") and "16777220 steps" in got["131"], got


@pytest.mark.icarus
def test_netlist_icebreaker_passes(tmp_path, capsys):
    rc, cap = _verify(["--sim", "icarus", "--netlist", "icebreaker", "--neurons", "8",
                       "--lanes", "2", "--steps", "3", "--configs", "1", "--seed", "5",
                       "--json", "--no-progress", "--build-dir", str(tmp_path)], capsys)
    out = json.loads(cap.out)
    assert rc == 0 and out["ok"], out["first_mismatch"]
    assert out["design"].startswith("icebreaker netlist (") and "SB_LUT4" in out["design"]
    assert out["configs"] > 20 and out["directed_configs"] > 20


def _refused(args, capsys, tmp_path) -> str:
    rc, cap = _verify([*args, "--build-dir", str(tmp_path / "never")], capsys)
    assert rc == 2, cap
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert not (tmp_path / "never").exists()
    return lines[0]


def test_port_mismatch_is_refused_naming_the_port(generated, tmp_path, capsys):
    text = generated.read_text()
    renamed = tmp_path / "renamed.v"
    renamed.write_text(text.replace("o_stream__valid", "o_stream__vld"))
    line = _refused(["--verilog", str(renamed)], capsys, tmp_path)
    assert "'o_stream__valid'" in line and "missing" in line
    narrow = tmp_path / "narrow.v"
    narrow.write_text(re.sub(r"input \[31:0\] steps;", "input [15:0] steps;", text))
    line = _refused(["--verilog", str(narrow)], capsys, tmp_path)
    assert "'steps'" in line and "[15:0]" in line and "[31:0]" in line


def test_bad_verilog_arguments_are_refused(generated, tmp_path, capsys):
    bare = tmp_path / "bare.v"
    bare.write_text("module lif_array(input wire clk); endmodule\n")
    assert "--config" in _refused(["--verilog", str(bare)], capsys, tmp_path)
    assert "'other'" in _refused(["--verilog", str(generated), "--top", "other"], capsys,
                                 tmp_path)
    assert "--neurons" in _refused(["--verilog", str(generated), "--neurons", "8"], capsys,
                                   tmp_path)
    assert "--verilog" in _refused(["--verilog", str(tmp_path / "none.v")], capsys, tmp_path)
    assert "--top" in _refused(["--top", "x"], capsys, tmp_path)


def test_ports_of_an_ansi_module_and_of_a_netlist_style_module():
    ansi = ("// c\nmodule m #(parameter A = 1) (input wire clk, input [3:0] a, b,\n"
            "  output reg [7:0] y /* w */, output z);\nendmodule\n")
    assert foreign.module_ports(ansi, "m") == [("input", 1, "clk"), ("input", 4, "a"),
                                               ("input", 4, "b"), ("output", 8, "y"),
                                               ("output", 1, "z")]
    old = "module n(clk, y);\n  input clk;\n  wire clk;\n  output [2:0] y;\nendmodule\n"
    assert foreign.module_ports(old, "n") == [("input", 1, "clk"), ("output", 3, "y")]
    assert foreign.vendor_cells("module n();\n  SB_LUT4 #(.LUT_INIT(1)) l ();\nendmodule") == (
        "ice40", {"SB_LUT4"})
    assert foreign.vendor_cells(old) == (None, set())


def test_contract_ports_are_the_generated_ports(generated):
    text = generated.read_text()
    shape, membrane, noise = foreign.header_shape(text)
    assert shape == SHAPE and membrane and noise
    assert sorted(foreign.module_ports(text, "lif_array")) == sorted(
        foreign.contract_ports(SHAPE, membrane=True, noise=True))
