"""``lifgate resources``, ``build`` and ``program``: argument checks, error paths, report parsing.

One real build (``test_smoke_build``: a 16-neuron iCEBreaker bitstream, about a minute); the
resource figures are a benchmark (``bench/bench_resources.py``), never asserted here.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from lifgate.boards.toolchain import BOARDS, parse_report, parse_utilization_log, summarize_path

from lifgate.app.cli import main


def run_cli(capsys, *argv):
    """``lifgate *argv`` in-process: ``(exit code, stdout, stderr)``; never a traceback. (The
    CLI tests of other files import it from here.)"""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("argv, needle", [
    (["build", "--board", "de0-nano"], "parameter 'board' must be one of icebreaker"),
    (["build", "--board", "icebreaker", "--lanes", "3", "--neurons", "12"],
     "power of two"),
    (["build", "--board", "icebreaker", "--neurons", "100", "--lanes", "8"],
     "multiple of lanes"),
    (["build", "--board", "icebreaker", "--freq", "0"], "--freq"),
    (["build", "--board", "ulx3s-85f", "--leak-modes", "shift,exp"], "leak_modes"),
    (["resources", "--board", "nope"], "parameter 'board'"),
    (["resources", "--board", "all", "--neurons", "0"], "parameter 'neurons'"),
    (["resources", "--design", "top", "--lanes", "6", "--neurons", "24"], "power of two"),
    (["resources", "--design", "top", "--no-noise"], "--design array only"),
])
def test_bad_arguments_fail_before_any_build(capsys, tmp_path, argv, needle):
    code, _, err = run_cli(capsys, *argv, *(["--build-dir", str(tmp_path)]))
    assert code == 2
    assert needle in err
    assert not any(tmp_path.iterdir())  # nothing was generated


def _fake_tool(path, code, record=None):
    text = "#!/bin/sh\n"
    if record:
        text += f'echo "$@" > "{record}"\n'
    if code:
        text += 'echo "unable to open device: no board found" >&2\n'
    text += f"exit {code}\n"
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_program_without_bitstream(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "program", "--board", "icebreaker")
    assert code == 1
    assert "bitstream 'build/board-icebreaker/top.bin' not found" in err


@pytest.mark.parametrize("board", list(BOARDS))
def test_program_without_programmer(capsys, tmp_path, monkeypatch, board):
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\x00" * 16)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    code, _, err = run_cli(capsys, "program", "--board", board, "--bitstream", str(bit))
    assert code == 1
    assert "no programmer found" in err


def test_program_without_board(capsys, tmp_path, monkeypatch):
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\x00" * 16)
    tool = _fake_tool(tmp_path / "openFPGALoader", 1)
    monkeypatch.setenv("OPENFPGALOADER", str(tool))
    code, _, err = run_cli(capsys, "program", "--board", "ulx3s-85f", "--bitstream", str(bit))
    assert code == 1
    assert "exited with 1" in err and "no board found" in err


def test_program_runs_the_programmer(capsys, tmp_path, monkeypatch):
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\x00" * 16)
    record = tmp_path / "args"
    tool = _fake_tool(tmp_path / "iceprog", 0, record)
    monkeypatch.setenv("ICEPROG", str(tool))
    code, out, _ = run_cli(capsys, "program", "--board", "icebreaker", "--bitstream", str(bit))
    assert code == 0
    assert record.read_text().split() == [str(bit)]
    code, out, _ = run_cli(capsys, "program", "--board", "ulx3s-85f", "--bitstream", str(bit),
                           "--flash", "--dry-run")
    assert code in (0, 1)  # 1 when openFPGALoader is not installed
    if code == 0:
        assert out.split()[1:] == ["-b", "ulx3s", "-f", str(bit)]


def _report(achieved, constraint):
    """A nextpnr --report in its own format (values chosen here, not copied from a run)."""
    step = {"cell": "a_LC", "port": "O", "loc": [1, 1]}
    path = [
        {"type": "clk-to-q", "delay": 1.0, "from": step, "to": step},
        {"type": "routing", "delay": 2.0, "from": step, "to": step, "net": "array.v_q",
         "sources": ["/work/main/hdl/array.py:10"]},
        {"type": "logic", "delay": 0.5, "from": step, "to": {"cell": "b_LC", "port": "O"}},
        {"type": "routing", "delay": 1.5, "from": step, "to": step, "net": "n2",
         "sources": ["/share/ice40/cells_map.v:6"]},
        {"type": "setup", "delay": 0.25, "from": step, "to": {"cell": "c_FF", "port": "D"}},
    ]
    return {
        "utilization": {"ICESTORM_LC": {"used": 100, "available": 5280},
                        "ICESTORM_RAM": {"used": 3, "available": 30}},
        "fmax": {"clk": {"achieved": achieved, "constraint": constraint}},
        "critical_paths": [
            {"from": "posedge clk", "to": "posedge clk", "path": path},
            {"from": "<async>", "to": "posedge clk", "path": path[:1]},
        ],
    }


def test_parse_report():
    rep = parse_report("ice40", _report(40.0, 48.0), "")
    rep.board = "icebreaker"
    assert rep.utilization["logic_cells"] == {"used": 100, "available": 5280}
    assert rep.utilization["ebr"]["used"] == 3
    assert rep.fmax_mhz == 40.0 and rep.clock_mhz == 48.0 and not rep.timing_met
    cp = rep.critical_paths["clk"]
    assert cp["delay_ns"] == 5.25 and cp["logic_levels"] == 1
    assert cp["from"] == "a_LC.O" and cp["to"] == "c_FF.D"
    assert cp["nets"] == ["array.v_q (hdl/array.py:10)", "n2"]
    assert list(rep.critical_paths) == ["clk"]  # the I/O path is not a clock's
    d = rep.to_dict()
    for key in ("board", "bitstream", "fmax_mhz", "clock_mhz", "utilization"):
        assert key in d
    json.dumps(d)
    assert parse_report("ice40", _report(50.0, 48.0), "").timing_met
    # Fmax from the log when the JSON has none.
    log = "Info: Max frequency for clock 'clk': 33.50 MHz (FAIL at 48.00 MHz)\n"
    assert parse_report("ice40", {}, log).fmax == {"clk": {"achieved": 33.5,
                                                           "constraint": 48.0}}
    assert summarize_path(_report(1, 1)["critical_paths"][0])["routing_ns"] == 3.5


def test_parse_utilization_log():
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    6000/   5280   113%\n"
           "Info: \t        ICESTORM_RAM:      24/     30    80%\n"
           "ERROR: Failed to expand region\n")
    assert parse_utilization_log("ice40", log) == {
        "logic_cells": {"used": 6000, "available": 5280},
        "ebr": {"used": 24, "available": 30},
    }


def test_pll_settings():
    from lifgate.boards.pll import ecp5_pll_params, ice40_pll_params

    for f_in, f_out in [(12e6, 48e6), (12e6, 30e6), (12e6, 100e6)]:
        p = ice40_pll_params(f_in, f_out)
        q = p.params
        f = f_in * (q["DIVF"] + 1) / ((q["DIVR"] + 1) * 2 ** q["DIVQ"])
        assert f == p.f_out and abs(f - f_out) / f_out < 0.01
        assert 533e6 <= f_in / (q["DIVR"] + 1) * (q["DIVF"] + 1) <= 1066e6
    for f_in, f_out in [(25e6, 100e6), (25e6, 62.5e6)]:
        p = ecp5_pll_params(f_in, f_out)
        q = p.params
        f = f_in / q["CLKI_DIV"] * q["CLKFB_DIV"]
        assert f == p.f_out == f_out
        assert 400e6 <= f * q["CLKOP_DIV"] <= 800e6
    with pytest.raises(ValueError, match="16 to 275"):
        ice40_pll_params(12e6, 5e6)


def test_board_memory_kind_follows_the_depth():
    """The ULX3S builds its state memories as DP16KD blocks where they hold the depth (at most
    16384 neurons per lane) and leaves deeper lanes to synthesis; the iCEBreaker never uses
    them. Either way the array accepts the kind it is given."""
    from lifgate.boards.resources import board_shape
    from lifgate.hdl.array import LIFArray

    ulx3s, ice = BOARDS["ulx3s-85f"], BOARDS["icebreaker"]
    goal = board_shape(ulx3s)
    assert ulx3s.array_memory(goal) == "ecp5"
    deep = board_shape(ulx3s, neurons=32 * 32768)
    assert ulx3s.array_memory(deep) == "inferred"
    assert ice.array_memory(board_shape(ice)) == "inferred"
    for b, shape in [(ulx3s, goal), (ulx3s, deep), (ice, board_shape(ice))]:
        LIFArray(shape, pipeline=b.pipeline, multiplier=b.multiplier,
                 memory=b.array_memory(shape))


def test_smoke_build(capsys, tmp_path):
    """A real bitstream through yosys, nextpnr and icepack (YoWASP): about a minute. One lane:
    2,634 of the UP5K's 5,280 cells, 45 s; with 4 lanes the top fills 95 % of them and routing
    alone took 109 s of 162 (session 11)."""
    code, out, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                             "--lanes", "1", "--freq", "24", "--build-dir", str(tmp_path),
                             "--json")
    d = json.loads(out)
    assert os.path.getsize(d["bitstream"]) > 0
    assert code == (0 if d["timing_met"] else 1) and d["ok"] is d["timing_met"]
    # Stage lines (polled once a second, so a short stage may be missed): in order, from
    # synthesis on, and no carriage returns in a non-terminal stderr.
    order = ["synthesis", "place", "route", "pack"]
    seen = [ln.split(": ", 1)[1].split(" at ")[0] for ln in err.splitlines()
            if ln.startswith("build icebreaker: ")
            and ln.split(": ", 1)[1].split(" at ")[0] in order]
    assert seen[0] == "synthesis" and seen == sorted(seen, key=order.index), err
    assert "\r" not in err


def test_resource_table_goes_into_every_file(tmp_path):
    """bench_resources: rows -> Markdown (noise column, updates/s, misses flagged) -> files."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_resources.py"
    spec = importlib.util.spec_from_file_location("bench_resources", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    util = {"logic_cells": {"used": 4000, "available": 5280}, "ebr": {"used": 24, "available": 30}}
    cp = {"clk": {"delay_ns": 21.0, "logic_levels": 3, "logic_ns": 9.0, "routing_ns": 12.0,
                  "from": "a", "to": "b", "nets": ["n"]}}
    rows = [
        {"board": "icebreaker", "design": "array", "neurons": 4096, "lanes": 8, "noise": False,
         "goal_mhz": 48.0, "fmax_mhz": 50.0, "utilization": util, "critical_paths": cp},
        {"board": "icebreaker", "design": "array", "neurons": 4096, "lanes": 4, "noise": True,
         "goal_mhz": 48.0, "fmax_mhz": 40.0, "utilization": util, "critical_paths": cp},
        {"board": "icebreaker", "design": "array", "neurons": 4096, "lanes": 8, "noise": True,
         "goal_mhz": 48.0, "utilization": util, "error": "nextpnr failed\nERROR: no fit"},
    ]
    table = bench.markdown(rows)
    lines = table.splitlines()
    assert "| 4096 x 8 | no |" in lines[2] and "50.0 (met)" in lines[2]
    assert "3.84e+08" in lines[2]  # 8 lanes at the 48 MHz clock built
    assert "40.0 (**missed**)" in lines[3] and "1.60e+08" in lines[3]  # at its Fmax
    assert "does not fit: `ERROR: no fit`" in lines[4]
    assert "* icebreaker array 4096 x 4, clock `clk`: 21.0 ns" in table
    files = [tmp_path / "a.md", tmp_path / "README.md"]
    files[1].write_text("intro\n<!-- resources:begin -->\nold\n<!-- resources:end -->\nrest\n")
    for f in files:
        bench.write_markdown(f, table)
    for f in files:
        text = f.read_text()
        assert table in text and "old" not in text
    assert files[1].read_text().startswith("intro\n") and files[1].read_text().endswith("rest\n")
