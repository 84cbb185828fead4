"""``lifgate build`` fails early and clearly, and shows its stages (issue 16, Build item 5).

* **Before synthesis.** The block RAMs, SPRAMs and multipliers of a design are counted from
  the RTLIL Amaranth writes (:func:`~lifgate.boards.toolchain.estimate_needs`); a board top
  that needs more than the device has is refused with one line naming the resource, exit
  code 2, before Yosys runs and before the build folder exists. The count follows Yosys'
  memory mapping (block geometries and costs of its libraries) and is checked against real
  synthesis of two board tops; it is a lower bound, so it never refuses a design that fits.
* **nextpnr's failures** (no BELs left, unroutable, timing missed without
  ``--timing-allow-fail``, a crash with no error line) become one line with the cause and the
  path of the log, never a line of Yosys' output.
* **Progress**: one stderr line per stage with the elapsed time; stdout stays the JSON object
  (``--json``), stderr holds only the error with ``--no-progress``.

Stand-in tools (shell scripts for yosys, nextpnr and icepack) keep all of this cheap; one test
runs the real Yosys on a small UP5K top.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from lifgate.boards import toolchain
from lifgate.boards.resources import board_shape
from lifgate.boards.toolchain import (
    BOARDS,
    CAPACITY,
    FitError,
    ToolchainError,
    estimate_needs,
    explain_pnr_failure,
    memory_blocks,
    run_build,
    synth_needs,
)
from lifgate.boards.top import BoardTop
from test_boards_cli import run_cli
from test_boards_fit import _Design, _script  # the fake tools and smallest design

ICE, ECP = BOARDS["icebreaker"], BOARDS["ulx3s-85f"]


#: nextpnr stand-ins: (body of the script, what the one line must say).
_TIM = "top.tim"
PNR_OK = (
    f'echo "$@" > args.txt\necho "Info: Placing.." > {_TIM}\nsleep 1.3\n'
    f'echo "Info: Routing.." >> {_TIM}\nsleep 1.3\n'
    "echo '{\"utilization\": {\"ICESTORM_LC\": {\"used\": 90, \"available\": 5280}}, "
    "\"fmax\": {\"cd_sync_clk\": {\"achieved\": 60.0, \"constraint\": 24.0}}}' "
    "> top.report.json\necho asc > top.asc\n"
)
PNR_NO_BELS = (
    f'printf "Info: Device utilisation:\\nInfo:   ICESTORM_RAM:    41/   30   136%%\\n'
    f"ERROR: Unable to place cell 'top.link.array.v7_1', no BELs remaining to implement cell "
    f"type 'ICESTORM_RAM'\\n\" > {_TIM}\nexit 1\n"
)
PNR_UNROUTABLE = (
    f'printf "Info: Routing..\\nERROR: Failed to route arc 2 of net \'link.n\', from X to Y.\\n"'
    f" > {_TIM}\nexit 1\n"
)
PNR_TIMING = (
    f'echo "$@" > args.txt\nprintf "Info: Routing..\\n'
    f"ERROR: Max frequency for clock 'cd_sync_clk': 21.37 MHz (FAIL at 30.00 MHz)\\n\" "
    f"> {_TIM}\nexit 1\n"
)
PNR_SEGV = "kill -SEGV $$\n"
PNR_TRAP = ('echo "Traceback (most recent call last):" >&2\n'
            'echo "wasmtime._trap.Trap: wasm trap: out of bounds memory access" >&2\nexit 1\n')


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Stand-in yosys (writes ``top.stat.json`` from ``state["cells"]``, prints a warning of
    its own, records being run), nextpnr (``state["pnr"]``) and icepack."""
    folder = tmp_path / "tools"
    folder.mkdir()
    state = {"cells": {"SB_LUT4": 10}, "pnr": PNR_OK, "synth_s": 1.3,
             "yosys_ran": tmp_path / "yosys-ran", "pnr_ran": tmp_path / "nextpnr-ran"}

    def env(family):
        (folder / "cells.json").write_text(json.dumps(
            {"design": {"num_cells_by_type": state["cells"]}}))
        yosys = _script(folder / "yosys", (
            f'touch "{state["yosys_ran"]}"\necho "Warning: a remark of Yosys\'s own"\n'
            f'sleep {state["synth_s"]}\ncp "{folder / "cells.json"}" top.stat.json\n'))
        pnr = _script(folder / "nextpnr", f'touch "{state["pnr_ran"]}"\n' + state["pnr"])
        pack = _script(folder / "icepack", 'echo bitstream > "$2"\n')
        return dict(os.environ, YOSYS=yosys, NEXTPNR_ICE40=pnr, ICEPACK=pack)

    monkeypatch.setattr(toolchain, "yowasp_env", env)
    return state


# Before synthesis: the estimate -----------------------------------------------------------------


def test_up5k_top_with_8_lanes_is_refused_before_synthesis(capsys, tmp_path, tools):
    """The issue's case (``--lanes 8``, ``no BELs remaining ... ICESTORM_RAM`` after minutes
    of place and route): now one line before Yosys runs; the folder is not even created."""
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "icebreaker", "--lanes", "8",
                                "--build-dir", str(out), "--json")
    assert code == 2 and stdout == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("lifgate build: error: the design does not fit the iCE40UP5K-SG48")
    assert "needs 41 of 30 EBR" in last and "synthesis not started" in last
    assert not tools["yosys_ran"].exists() and not out.exists()


def _estimate(board, lanes, neurons=None, groups=1):
    shape = board_shape(board, neurons=neurons, lanes=lanes, groups=groups)
    top = BoardTop(board=board, shape=shape, frequency=board.build_mhz * 1e6)
    return estimate_needs(board.family, board.platform().prepare(top, name="top").files["top.il"])


def _lane_memories(board, shape):
    """The board top's block RAMs from its structure (not from the RTLIL): per lane the state
    (membrane and refractory counter, in ``4096 // depth``-bit slices on the UP5K), the input
    currents (SPRAM when ``lanes * i_width <= 64`` on the UP5K, else block RAM) and the frame
    buffer (512 x 8)."""
    D, P = shape.depth, shape.lanes
    slice_w = max(1, min(16, 4096 // D))
    state = P * (-(-shape.v_width // slice_w) + -(-shape.ref_width // slice_w))
    spram = P * shape.i_width <= 64
    cur = 0 if spram else memory_blocks("ice40", P * shape.i_width, D, [(True, "a")], ["a"])
    return {"ebr": state + cur + 1, "spram": P * shape.i_width // 16 if spram else 0,
            "dsp": P}


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_estimate_of_the_up5k_top_follows_its_structure(lanes):
    shape = board_shape(ICE, lanes=lanes, groups=1)
    assert _estimate(ICE, lanes) == _lane_memories(ICE, shape)


def test_the_defaults_are_not_refused():
    """``lifgate build`` without options must pass the estimate on both boards."""
    for b in (ICE, ECP):
        needs = _estimate(b, b.build_lanes)
        cap = CAPACITY[b.device]
        assert all(n <= cap[col] for col, n in needs.items()), (b.name, needs)


@pytest.mark.parametrize("family, width, depth, reads, writes, blocks", [
    # iCE40 EBR: 256 x 16, 512 x 8, 1024 x 4, 2048 x 2 (cost 64 a block; logic 1 a bit).
    ("ice40", 8, 512, [(True, "r")], ["w"], 1),
    ("ice40", 8, 256, [(True, "r")], ["w"], 1),
    ("ice40", 24, 512, [(True, "r")], ["w"], 3),
    ("ice40", 16, 1024, [(True, "r")], ["w"], 4),
    ("ice40", 16, 4096, [(True, "r")], ["w"], 16),
    ("ice40", 128, 512, [(True, "a")], ["a"], 16),        # one address, SPRAM costs more
    ("ice40", 16, 16384, [(True, "a")], ["a"], 0),        # one address: one SPRAM is cheaper
    ("ice40", 8, 512, [(True, "r1"), (True, "r2")], ["w"], 2),  # a copy per read address
    ("ice40", 8, 512, [(False, "r")], ["w"], 0),          # asynchronous read: logic
    ("ice40", 8, 512, [(True, "r")], ["w1", "w2"], 0),    # two write ports: logic
    ("ice40", 4, 16, [(True, "r")], ["w"], 0),            # 64 bits: logic is cheaper
    ("ice40", 8, 512, [], ["w"], 0),                      # never read: removed
    # ECP5 DP16KD: 1024 x 18 ... 16384 x 1, 512 x 36 for one read and one write port.
    ("ecp5", 512, 2048, [(True, "r")], ["w"], 57),
    ("ecp5", 36, 512, [(True, "r")], ["w"], 1),
    ("ecp5", 18, 1024, [(True, "r1"), (True, "r2")], ["w"], 2),
    ("ecp5", 16, 64, [(True, "r")], ["w"], 0),            # LUT RAM is cheaper
    ("ecp5", 8, 512, [(True, "r")], ["w"], 1),            # 128 < 4 * 32 * 2 for LUT RAM
])
def test_memory_blocks(family, width, depth, reads, writes, blocks):
    assert memory_blocks(family, width, depth, reads, writes) == blocks


@pytest.mark.parametrize("family, width, depth, runs, blocks", [
    # 32 lanes of 16 bits, one enable each: two 9-bit bytes a lane in a DP16KD.
    ("ecp5", 512, 2048, [16] * 32, 64),
    ("ecp5", 512, 2048, [512], 57),
    ("ecp5", 36, 512, [18, 18], 1),
    ("ecp5", 36, 512, [12, 12, 12], 2),          # 2 bytes each: 6 bytes, 54 bits
    # iCE40: 8-bit and narrower geometries have one enable a word; 16 bits have bit enables.
    ("ice40", 128, 512, [16] * 8, 16),
    ("ice40", 16, 256, [4] * 4, 1),
    ("ice40", 16, 512, [4] * 4, 2),               # 512 x 8 cannot: two 256 x 16 deep
])
def test_memory_blocks_with_write_enables(family, width, depth, runs, blocks):
    assert memory_blocks(family, width, depth, [(True, "r")], ["w"], [runs]) == blocks


@pytest.mark.slow
@pytest.mark.parametrize("board", [
    ICE,
    pytest.param(ECP, marks=pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"),
                                               reason="set LIFGATE_SLOW=1 to run")),
], ids=["icebreaker", "ulx3s-85f"])
def test_estimate_equals_real_synthesis(tmp_path, monkeypatch, board):
    """Yosys on a 1024 x 4 board top with 4 parameter groups (``synth_ice40 -dsp -spram``
    about 20 s; ``synth_ecp5`` about 35 s, opt-in): the estimate is exactly what synthesis
    spends on block RAM, SPRAM and multipliers. (The goal shapes agree too: UP5K top with 4
    and 8 lanes 25 and 41 EBR, ULX3S top 161 DP16KD and 64 MULT18X18D, docs/boards.md.)"""
    shape = board_shape(board, neurons=1024, lanes=4, groups=4)
    top = BoardTop(board=board, shape=shape, frequency=24e6)
    real = toolchain.yowasp_env

    def no_pnr(family):
        return dict(real(family), NEXTPNR_ICE40="false", NEXTPNR_ECP5="false")

    monkeypatch.setattr(toolchain, "yowasp_env", no_pnr)
    with pytest.raises(ToolchainError):
        run_build(board, top, tmp_path, fit_check=False)
    stats = json.loads((tmp_path / "top.stat.json").read_text())
    synth = synth_needs(board.family, stats["design"]["num_cells_by_type"])
    estimate = estimate_needs(board.family, (tmp_path / "top.il").read_text())
    assert estimate == {col: synth[col] for col in estimate}
    assert sum(estimate.values()) > 0


# nextpnr's failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, needles", [
    (PNR_NO_BELS, ["place failed: no EBR left (41 needed, 30 on the device)",
                   "the design does not fit"]),
    (PNR_UNROUTABLE, ["route failed", "could not be routed", "Failed to route arc 2"]),
    (PNR_SEGV, ["nextpnr crashed (exit 139, signal 11)"]),
    (PNR_TRAP, ["nextpnr crashed (exit 1)", "wasm trap: out of bounds memory access"]),
])
def test_nextpnr_failure_is_one_clear_line(tmp_path, tools, body, needles):
    tools["pnr"], tools["synth_s"] = body, 0
    with pytest.raises(ToolchainError) as info:
        run_build(ICE, _Design(), tmp_path / "b")
    msg = str(info.value)
    assert "\n" not in msg and not isinstance(info.value, FitError)
    for needle in needles:
        assert needle in msg, msg
    assert "Yosys's own" not in msg  # never a line of the synthesis output
    log = tmp_path / "b" / ("top.tim" if "printf" in body else "top.out")
    assert msg.endswith(f"log: {log}"), msg


def test_timing_failure_without_allow_fail(tmp_path, tools):
    tools["pnr"], tools["synth_s"] = PNR_TIMING, 0
    with pytest.raises(ToolchainError) as info:
        run_build(ICE, _Design(), tmp_path / "b", timing_allow_fail=False)
    msg = str(info.value)
    assert "--timing-allow-fail" not in (tmp_path / "b" / "args.txt").read_text()
    assert ("timing not met: clock 'cd_sync_clk' reaches 21.37 MHz of the 30.00 MHz asked"
            in msg), msg
    assert msg.endswith(f"log: {tmp_path / 'b' / 'top.tim'}")


def test_cli_no_timing_allow_fail(capsys, tmp_path, tools):
    """``lifgate build --no-timing-allow-fail``: nextpnr runs without the flag and its miss is
    one line, exit 1, no bitstream."""
    tools["pnr"], tools["synth_s"] = PNR_TIMING, 0
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                                "--lanes", "4", "--freq", "24", "--build-dir", str(out),
                                "--no-timing-allow-fail", "--no-progress")
    assert code == 1 and stdout == ""
    assert "--timing-allow-fail" not in (out / "args.txt").read_text()
    assert err.count("\n") == 1 and "timing not met: clock 'cd_sync_clk' reaches 21.37" in err
    assert not (out / "top.bin").exists()


def test_explain_keeps_unknown_errors():
    line = "ERROR: something nextpnr has never said before"
    assert explain_pnr_failure(1, f"Info: x\n{line}\n", "") == line


def test_cli_nextpnr_failure(capsys, tmp_path, tools):
    """The command: progress says where it failed, then one error line, exit 1; ``--json``
    gives ``ok: false`` and the same message."""
    tools["pnr"] = PNR_NO_BELS
    code, out, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                             "--lanes", "4", "--freq", "24", "--build-dir", str(tmp_path / "b"),
                             "--json")
    assert code == 1
    d = json.loads(out)
    assert d["ok"] is False and "place failed: no EBR left" in d["error"]
    lines = err.strip().splitlines()
    assert lines[-1] == f"lifgate build: error: {d['error']}"
    assert re.fullmatch(r"build icebreaker: failed in \w+ after \d+ s", lines[-2]), lines


# Progress ---------------------------------------------------------------------------------------


def test_cli_progress_names_each_stage_with_its_time(capsys, tmp_path, tools):
    code, out, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                             "--lanes", "4", "--freq", "24", "--build-dir", str(tmp_path / "b"),
                             "--json")
    assert code == 0, err
    d = json.loads(out)  # stdout is the JSON object alone
    assert d["ok"] is True and Path(d["bitstream"]).read_text() == "bitstream\n"
    assert "--timing-allow-fail" in (tmp_path / "b" / "args.txt").read_text()  # the default
    stages = re.findall(r"^build icebreaker: (\w+) at (\d+) s", err, re.M)
    names = [s for s, _ in stages]
    assert names[:4] == ["elaborate", "synthesis", "place", "route"], err
    times = [int(t) for _, t in stages]
    assert times == sorted(times) and times[-1] >= 2  # the stand-ins sleep 3.9 s in all
    assert re.search(r"^build icebreaker: place at \d+ s \(synthesis took \d+ s\)$", err, re.M)
    assert re.search(r"^build icebreaker: done in \d+ s$", err, re.M)
    assert "\r" not in err


def test_cli_no_progress_leaves_stderr_to_errors(capsys, tmp_path, tools):
    tools["synth_s"] = 0
    code, out, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                             "--lanes", "4", "--freq", "24", "--build-dir", str(tmp_path / "b"),
                             "--no-progress")
    assert code == 0 and err == ""
    assert "bitstream:" in out
    tools["pnr"] = PNR_UNROUTABLE
    code, out, err = run_cli(capsys, "build", "--board", "icebreaker", "--neurons", "16",
                             "--lanes", "4", "--freq", "24", "--build-dir", str(tmp_path / "b"),
                             "--no-progress")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("lifgate build: error: nextpnr failed")


RTLIL = r"""
attribute \top 1
module \top
  cell \top.sub \a
  end
  cell \top.sub \b
  end
  cell \SB_MAC16 \mac
    parameter \A_SIGNED 0
  end
end
module \top.sub
  memory width 20 size 512 \mem
  process $1
    switch \x
      case 1'1
        assign \y 1'1
    end
  end
  cell $memwr_v2 $2
    parameter \MEMID "\\mem"
    parameter \ABITS 9
    connect \ADDR \wa [8:0]
    connect \EN { \en [1] \en [1:0] \en [0] 14'00000000000000 \en [2] \en [2] }
  end
  cell $memrd_v2 $3
    parameter \MEMID "\\mem"
    parameter \CLK_ENABLE 1
    connect \ADDR \ra [8:0]
  end
end
"""


def test_parse_rtlil_reads_ports_enables_and_instances():
    """Modules count once per instance (``\\top.sub`` twice), a process's ``switch ... end``
    does not end its module, and the write enable's runs are read LSB first."""
    modules, top = toolchain.parse_rtlil(RTLIL)
    assert top == "\\top"
    sub = modules["\\top.sub"]
    assert sub.memories == {"\\mem": (20, 512)}
    assert sub.reads == {"\\mem": [(True, "\\ra [8:0]")]}
    assert sub.enables == {"\\mem": [[2, 14, 2, 2]]}  # en[2] x2, constant x14, en[0], en[1]
    # 20 bits whose enables come in 2-bit runs: 512 x 8 and 1024 x 4 (one enable a word)
    # cannot hold them; 256 x 16 (bit enables) takes 2 x 2 blocks, 2048 x 2 ten. Twice.
    assert estimate_needs("ice40", RTLIL) == {"ebr": 2 * 4, "spram": 0, "dsp": 1}
