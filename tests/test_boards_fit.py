"""``lifgate build``: the baud rate and the fit check refuse before any work (issue 14 #4, #6, #8).

* ``--baud 0`` was a ZeroDivisionError, ``--baud -9600`` said "too high": both are one line
  with the legal range (from the clock's UART divisor limit and the link's timeout), exit 2,
  before anything is built or written. The host library's baud goes through the same check.
* A design that cannot fit (the UP5K top with 8 lanes) started place and route and ended with
  nextpnr's "1 warning, 1 error". Now the synthesis statistics are compared with the device's
  capacity and the build stops before nextpnr with one line naming the resource. The check is
  unit-tested with synthetic statistics, and :func:`run_build` with stand-in tools (a fake
  ``yosys`` that writes the statistics, a fake ``nextpnr`` that records being run).
* A nextpnr failure is one line with the tool's first ``ERROR:`` line and the log's path.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io
from lifgate.boards import toolchain
from lifgate.boards.protocol import MAX_BAUD, baud_range, check_baud
from lifgate.boards.toolchain import (
    BOARDS,
    CAPACITY,
    FitError,
    ToolchainError,
    check_fit,
    run_build,
    synth_needs,
)
from lifgate.boards.top import board_clock
from test_boards_cli import run_cli

from lifgate.config import ConfigError

ICE, ECP = BOARDS["icebreaker"], BOARDS["ulx3s-85f"]


# Baud -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("baud", ["0", "-9600", "9000001", "99999999", "999"])
def test_build_baud_refused_before_any_build(capsys, tmp_path, baud):
    """36 MHz (the iCEBreaker's default clock): 4 clocks per bit at most 9 Mbaud; a byte
    must take at most half the 20 ms link timeout: at least 1000 baud."""
    out = tmp_path / "build"
    code, _, err = run_cli(capsys, "build", "--board", "icebreaker", "--baud", baud,
                           "--build-dir", str(out))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "parameter 'baud' must be an integer in [1000, 9000000]" in lines[0], lines[0]
    assert "too high" not in lines[0]
    assert not out.exists()


def test_baud_range_follows_the_clock():
    assert baud_range() == (1000, MAX_BAUD)
    assert baud_range(30e6) == (1000, 7_500_000)
    assert baud_range(100e6) == (1000, MAX_BAUD)
    assert baud_range(30e6, timeout_s=0.002) == (10_000, 7_500_000)
    for bad in (0, -9600, 999, 7_500_001, 9600.0, "9600", None, True):
        with pytest.raises(ConfigError, match=r"'baud' must be an integer in \[1000, 7500000\]"):
            check_baud(bad, 30e6)
    assert check_baud(1000, 30e6) == 1000 and check_baud(7_500_000, 30e6) == 7_500_000


def test_board_clock_checks_baud():
    """``BoardTop`` / ``NetworkBoardTop`` take the baud through ``board_clock``."""
    for bad in (0, -9600):
        with pytest.raises(ConfigError, match=r"'baud' must be an integer in \[1000, "):
            board_clock(ICE, 30e6, bad)
    _, divisor = board_clock(ICE, 30e6, 115200)
    assert divisor >= 4


# Fit check (synthetic statistics) ---------------------------------------------------------------


def test_fit_check_names_the_resource():
    cells = {"SB_LUT4": 4000, "SB_DFFE": 3000, "SB_CARRY": 900, "SB_RAM40_4K": 31,
             "SB_MAC16": 8, "SB_SPRAM256KA": 0}
    with pytest.raises(FitError) as info:
        check_fit(ICE, cells, where="top.stat.json")
    msg = str(info.value)
    assert "needs 31 of 30 EBR" in msg and "\n" not in msg and "top.stat.json" in msg
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ToolchainError)
    assert info.value.utilization["ebr"] == {"used": 31, "available": 30}
    # Exactly at capacity fits.
    util = check_fit(ICE, dict(cells, SB_RAM40_4K=30))
    assert util["ebr"] == {"used": 30, "available": 30}
    assert util["logic_cells"] == {"used": 4000, "available": 5280}


@pytest.mark.parametrize("cells, needle", [
    ({"SB_LUT4": 5281}, "needs at least 5281 of 5280 LC"),
    ({"SB_LUT4": 10, "SB_DFFER": 3000, "SB_DFF": 2300}, "needs at least 5300 of 5280 LC"),
    ({"SB_CARRY": 5290}, "needs at least 5290 of 5280 LC"),
    ({"SB_SPRAM256KA": 5}, "needs 5 of 4 SPRAM"),
    ({"SB_MAC16": 9}, "needs 9 of 8 DSP"),
])
def test_fit_check_ice40(cells, needle):
    with pytest.raises(FitError, match=needle):
        check_fit(ICE, cells)


@pytest.mark.parametrize("cells, needle", [
    ({"LUT4": 83000, "CCU2C": 400}, "needs at least 83800 of 83640 LUT4"),
    ({"DP16KD": 209}, "needs 209 of 208 DP16KD"),
    ({"MULT18X18D": 157}, "needs 157 of 156 MULT18X18D"),
])
def test_fit_check_ecp5(cells, needle):
    with pytest.raises(FitError, match=needle):
        check_fit(ECP, cells)


def test_fit_check_lists_every_short_resource_and_capacity_table():
    with pytest.raises(FitError, match="needs 209 of 208 DP16KD, needs 157 of 156 MULT18X18D"):
        check_fit(ECP, {"DP16KD": 209, "MULT18X18D": 157, "LUT4": 10})
    assert set(CAPACITY) == {b.device for b in BOARDS.values()}
    assert set(CAPACITY[ICE.device]) == set(synth_needs("ice40", {}))
    assert set(CAPACITY[ECP.device]) == set(synth_needs("ecp5", {}))


# run_build with stand-in tools ------------------------------------------------------------------


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


class _Design(Elaboratable):
    """The smallest design with its own sync domain (as the board tops have)."""

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        led = platform.request("led", 0, dir="-")
        m.submodules.led = buf = io.Buffer("o", led)
        x = Signal()
        m.d.sync += x.eq(~x)
        m.d.comb += buf.o.eq(x)
        return m


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """A fake yosys writing ``top.stat.json`` with ``cells`` (and failing on demand), a fake
    nextpnr that records being run and can fail with an ERROR line in its log."""
    tools = tmp_path / "tools"
    tools.mkdir()
    state = {"cells": {"SB_LUT4": 10}, "yosys_fail": False, "pnr_fail": False}
    ran = tmp_path / "nextpnr-ran"

    def env(family):
        (tools / "cells.json").write_text(json.dumps(
            {"design": {"num_cells_by_type": state["cells"]}}))
        yosys = _script(tools / "yosys", (
            'echo "ERROR: Module \\`foo\\` referenced is not part of the design." > top.rpt\n'
            "exit 1\n") if state["yosys_fail"] else f'cp "{tools / "cells.json"}" top.stat.json\n')
        pnr = _script(tools / "nextpnr", f'touch "{ran}"\n' + (
            'printf "Info: ICESTORM_RAM: 31/ 30 103%%\\n'
            'ERROR: Unable to place cell x, no BELs remaining\\n" > top.tim\nexit 1\n'
            if state["pnr_fail"] else "exit 1\n"))
        return dict(__import__("os").environ, YOSYS=yosys, NEXTPNR_ICE40=pnr,
                    ICEPACK=_script(tools / "icepack", "exit 0\n"))

    monkeypatch.setattr(toolchain, "yowasp_env", env)
    return state, ran


def test_run_build_stops_before_place_and_route(tmp_path, fake_tools):
    state, ran = fake_tools
    state["cells"] = {"SB_LUT4": 100, "SB_RAM40_4K": 31}
    with pytest.raises(FitError, match="needs 31 of 30 EBR") as info:
        run_build(ICE, _Design(), tmp_path / "b")
    assert "top.stat.json" in str(info.value)
    assert not ran.exists()  # nextpnr never started


def test_run_build_nextpnr_failure_is_one_line(tmp_path, fake_tools):
    state, ran = fake_tools
    state["pnr_fail"] = True
    with pytest.raises(ToolchainError) as info:
        run_build(ICE, _Design(), tmp_path / "b")
    msg = str(info.value)
    assert ran.exists() and not isinstance(info.value, FitError)
    assert "\n" not in msg
    assert "ERROR: Unable to place cell x, no BELs remaining" in msg
    assert msg.endswith(f"log: {tmp_path / 'b' / 'top.tim'}")
    assert info.value.utilization["ebr"] == {"used": 31, "available": 30}


def test_run_build_yosys_failure_is_one_line(tmp_path, fake_tools):
    state, ran = fake_tools
    state["yosys_fail"] = True
    with pytest.raises(ToolchainError) as info:
        run_build(ICE, _Design(), tmp_path / "b")
    msg = str(info.value)
    assert "\n" not in msg and "yosys failed" in msg and "ERROR: Module" in msg
    assert msg.endswith("top.rpt") and not ran.exists()


def test_cli_build_that_cannot_fit(capsys, tmp_path, fake_tools):
    """``lifgate build`` with a design that synthesis finds too big: one line, exit 2, no
    nextpnr. (With ``--lanes 8`` the top is refused before synthesis: tests/test_build_fail.py.)
    """
    state, ran = fake_tools
    state["cells"] = {"SB_LUT4": 3000, "SB_RAM40_4K": 31, "SB_SPRAM256KA": 0}
    code, _, err = run_cli(capsys, "build", "--board", "icebreaker", "--lanes", "4",
                           "--build-dir", str(tmp_path / "b"))
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("lifgate build: error: the design does not fit the iCE40UP5K")
    assert "needs 31 of 30 EBR" in lines[-1] and not ran.exists()


@pytest.mark.slow
def test_real_synthesis_of_the_up5k_top_with_8_lanes_does_not_fit(capsys, tmp_path):
    """The issue's case with the real Yosys (synthesis only, no place and route)."""
    code, _, err = run_cli(capsys, "build", "--board", "icebreaker", "--lanes", "8",
                           "--build-dir", str(tmp_path / "b"))
    assert code == 2
    assert "does not fit the iCE40UP5K-SG48" in err and not (tmp_path / "b" / "top.tim").exists()
