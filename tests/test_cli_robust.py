"""Robustness of the command line: every subcommand against generated bad arguments.

For each case (an option of a subcommand and a bad value drawn by hypothesis: out-of-range and
non-numeric numbers, negative exponents, NaN and infinities, missing / unreadable / unwritable
paths, directories, device files, symbolic links, binary and non-UTF-8 files) ``lifgate`` must

* exit with code 2 (argparse and ``ConfigError`` alike),
* print exactly one line on stderr, ``lifgate CMD: error: ...``, naming the parameter, and no
  traceback,
* create or change no file: the sandbox folder (the cwd, so default ``build/`` folders land in
  it) is snapshotted before and after, and ``/dev/null`` and ``/dev/full`` must still be
  character devices,
* refuse before any work: the entry points of every build (the simulators' model build, the
  FPGA toolchain, the ANN training, the network RTL run, a board session, Verilog generation)
  are replaced by tripwires that fail the test if reached, and each call has a generous time
  limit (a refusal takes well under a second; a build takes 40 s or more).

"Unwritable" paths are ones root cannot write either (CI runs as root, where ``os.access``
says yes to everything): under a regular file, in ``/proc``, in ``/sys``. Most cases call
``lifgate.app.cli.main`` in-process (fast); ``test_entry_point_subprocess`` runs the installed
``lifgate`` for a few. ``quantize`` and ``demo`` have their own suites (``test_quantize.py``,
``test_demo.py``); ``build --baud`` and the host library belong to the boards tests.

At the end the module prints how many cases ran (the README's verification table quotes it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifgate.hdl import verilog
from test_nir import two_layer_graph  # the graph the NIR tests use

from lifgate.app import cli
from lifgate.app.cli import main

#: Seconds one refused call may take (imports of Amaranth or cocotb on the first call included);
#: any build takes far longer, and the tripwires catch one that starts anyway.
CALL_LIMIT = 30.0
EXAMPLES = int(os.environ.get("LIFGATE_ROBUST_EXAMPLES", "100"))
COUNT = {"cases": 0, "subprocess": 0}
ROOT = Path(__file__).resolve().parents[1]


# The sandbox -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder of good and bad inputs; the cwd of every case."""
    d = tmp_path_factory.mktemp("robust")
    (d / "afile.txt").write_text("a regular file\n")
    (d / "adir").mkdir()
    (d / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (d / "binary.json").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(200)))
    (d / "latin1.toml").write_bytes("[shape]\n# caf\xe9\nneurons = 8\n".encode("latin-1"))
    (d / "bad.toml").write_text("[shape\nneurons = = 8\n")
    (d / "bad.json").write_text('{"shape": {"neurons": 8,}')
    (d / "wrongkind.toml").write_text("params = 3\n")
    (d / "badvalue.toml").write_text("[shape]\nneurons = 10\nlanes = 4\n")
    (d / "config.yaml").write_text("shape: {neurons: 8}\n")
    (d / "broken_link").symlink_to(d / "nowhere" / "x")
    (d / "link_to_dir").symlink_to(d / "adir")
    import nir  # a dev dependency: missing, the suite fails rather than skips

    nir.write(d / "good.nir", two_layer_graph())
    nir.write(d / "bad.nir", two_layer_graph())
    _mismatch_tau(d / "bad.nir")
    (d / "binary.nir").write_bytes(bytes(range(256)))
    cwd = os.getcwd()
    os.chdir(d)
    try:
        yield d
    finally:
        os.chdir(cwd)


def _mismatch_tau(path):
    """Give node lif1 three tau values for its four neurons (nir.write would refuse it)."""
    import h5py

    with h5py.File(path, "r+") as f:
        del f["node/nodes/lif1/tau"]
        f["node/nodes/lif1/tau"] = np.full(3, 0.02)


def snapshot(root: Path) -> dict:
    """Every entry under ``root`` (symbolic links not followed) with its kind and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            if stat.S_ISREG(st_.st_mode):
                out[str(p.relative_to(root))] = ("file", st_.st_size, st_.st_mtime_ns,
                                                 hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISLNK(st_.st_mode):
                out[str(p.relative_to(root))] = ("link", os.readlink(p))
            else:
                out[str(p.relative_to(root))] = ("dir" if stat.S_ISDIR(st_.st_mode) else "other",)
    for dev in ("/dev/null", "/dev/full"):
        out[dev] = ("chardev", stat.S_ISCHR(os.lstat(dev).st_mode))
    return out


# Tripwires: any of these reached means the refusal came too late --------------------------------

class BuildStarted(BaseException):
    """Raised by a tripwire; a BaseException so that no ``except Exception`` can hide it."""


def _tripwire(what):
    def fire(*args, **kwargs):
        raise BuildStarted(f"{what} was reached before the bad argument was refused")
    return fire


TRIPWIRES = [
    ("lifgate.sim.runner", "build", "a simulator build"),
    ("lifgate.sim.regress", "regress", "the regression"),
    ("lifgate.boards.toolchain", "run_build", "the FPGA toolchain"),
    ("lifgate.boards.resources", "measure", "the FPGA toolchain"),
    ("lifgate.boards.resources", "run_build", "the FPGA toolchain"),
    ("lifgate.compilers.convert", "train_ann", "the ANN training"),
    ("lifgate.sim.tb_network", "run_network", "the network RTL run"),
    ("lifgate.boards.nethost", "open_network_board", "a board session"),
    ("lifgate.golden.synapse", "simulate_network", "the network's golden run"),
]


def _import_every_command():
    """Import every command module before any tripwire is set.

    ``lifgate.app.cli`` imports a command only when it runs it; a module imported for the first
    time while a tripwire is in place would bind the tripwire by ``from ... import`` and keep
    it after ``undo()``, breaking every later test in the same process.
    """
    for name, _summary in cli.COMMANDS:
        importlib.import_module(f"lifgate.app.commands.{name}")


@pytest.fixture(scope="module")
def tripwires():
    _import_every_command()
    mp = pytest.MonkeyPatch()
    for module, name, what in TRIPWIRES:
        mp.setattr(importlib.import_module(module), name, _tripwire(what))
    yield mp
    mp.undo()


class _CountReport:
    """A plugin registered while the module runs: its case count in pytest's final summary."""

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(
            f"test_cli_robust: {COUNT['cases']} bad-argument cases in-process, "
            f"{COUNT['subprocess']} through the lifgate entry point")


@pytest.fixture(scope="module", autouse=True)
def report_count(request):
    plugin = _CountReport()
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "lifgate-robust-count")
    yield


def refuse(sandbox, argv, needles, *, generation=True):
    """Run ``lifgate ARGV`` in-process and check everything the module docstring promises."""
    _import_every_command()
    mp = pytest.MonkeyPatch()
    if generation:
        mp.setattr(verilog, "generate_verilog", _tripwire("Verilog generation"))
    before = snapshot(sandbox)
    err, out = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    except BuildStarted as e:
        raise AssertionError(f"lifgate {' '.join(map(repr, argv))}: {e}") from None
    finally:
        mp.undo()
    elapsed = time.monotonic() - t0
    COUNT["cases"] += 1
    text = err.getvalue()
    lines = text.splitlines()
    where = f"lifgate {' '.join(map(repr, argv))}: stderr {text!r}"
    assert "Traceback" not in text, where
    assert code == 2, f"exit code {code}; {where}"
    assert len(lines) == 1, where
    assert lines[0].startswith(f"lifgate {argv[0]}: error: "), where
    assert any(n in lines[0] for n in needles), f"none of {needles} named; {where}"
    assert elapsed < CALL_LIMIT, f"{elapsed:.1f} s; {where}"
    after = snapshot(sandbox)
    assert after == before, f"files changed: {set(after.items()) ^ set(before.items())}; {where}"


# Bad values ----------------------------------------------------------------------------------

_NON_NUMERIC = st.one_of(
    st.sampled_from(["", "x", "ten", "1,000", "0x10", "1_0_", "--", "½", "1e", "e5", "1.2.3"]),
    st.text(min_size=1, max_size=12).filter(lambda s: not _parses(s, float)),
)
_FLOAT_TEXT = st.sampled_from(["1.5", "1e3", "-1e5", "-1E-3", "nan", "inf", "-inf", "2.0"])


def _parses(text, kind) -> bool:
    try:
        kind(text)
        return True
    except (ValueError, OverflowError):
        return False


def bad_int(lo, hi=None):
    """Text that is not an integer in ``[lo, hi]``: out of range, a float, not a number."""
    out = [st.integers(max_value=lo - 1, min_value=lo - 10**30).map(str)]
    if hi is not None:
        out.append(st.integers(min_value=hi + 1, max_value=hi + 10**30).map(str))
    out += [_FLOAT_TEXT, _NON_NUMERIC]
    return st.one_of(*out)


def bad_float(lo, hi=None, *, lo_open=False):
    """Text that is not a finite number in ``[lo, hi]`` (``lo_open``: ``(lo, hi]``): out of
    range, NaN, infinities, not a number."""
    out = [st.floats(max_value=lo, exclude_max=not lo_open, allow_nan=False,
                     allow_infinity=False).map(repr),
           st.sampled_from(["nan", "inf", "-inf", "-1e5", "-1E-3"]), _NON_NUMERIC]
    if lo_open:
        out.append(st.just(f"{lo}"))
    if hi is not None:
        out.append(st.floats(min_value=hi * 1.001 + 1e-9, allow_nan=False,
                             allow_infinity=False).map(repr))
    return st.one_of(*out)


def bad_choice(legal):
    return st.text(max_size=12).filter(lambda s: s not in legal)


def bad_modes():
    def bad(text):
        tokens = [t.strip() for t in text.split(",") if t.strip()]
        return not tokens or any(t.upper() not in ("SHIFT", "MULT", "CONST") for t in tokens)
    return st.one_of(st.sampled_from(["", ",", "exp", "shift,exp", "SHIFT,,linear"]),
                     st.text(max_size=16).filter(bad))


#: Folders nobody, not even root, can write: they exist as files, or live where no file can be
#: created.
BAD_DIRS = ["afile.txt", "afile.txt/sub", "/proc/lifgate-robust", "/sys/lifgate-robust/x",
            "/dev/null", "/dev/full/x", "broken_link", "", "binary.nir/build", "nul\x00dir"]
#: Files nobody can write: directories, under a regular file, in /proc or /sys, a missing folder.
BAD_OUT_FILES = ["adir", "link_to_dir", "afile.txt/out.v", "/proc/lifgate-robust.v",
                 "/sys/lifgate-robust.v", "missing_dir/out.v", "", "/dev/full/x.v", "nul\x00.v"]
#: Configuration files that are not one.
BAD_CONFIGS = ["missing.toml", "adir", "binary.toml", "binary.json", "latin1.toml", "bad.toml",
               "bad.json", "wrongkind.toml", "badvalue.toml", "config.yaml", "broken_link",
               "/dev/null", "afile.txt", "link_to_dir", "nul\x00.toml"]
BAD_GRAPHS = ["missing.nir", "adir", "binary.nir", "bad.nir", "broken_link", "/dev/null",
              "afile.txt", "binary.toml"]


@dataclasses.dataclass(frozen=True)
class Opt:
    """A bad value for ``option`` of a command: ``values`` draws it, ``needles`` name it."""

    option: str
    values: st.SearchStrategy
    needles: tuple = ()
    base: tuple = ()  # other arguments the case needs

    def names(self):
        bare = self.option.lstrip("-")
        return (self.option, bare, bare.replace("-", "_"), *self.needles)


def paths(values):
    return st.sampled_from(values)


OUT = ("-o", "x.v")  # generate's required output, for the cases about its other options

COMMANDS = {
    "generate": [
        Opt("--neurons", bad_int(1, 1 << 20), base=OUT),
        Opt("--lanes", bad_int(1, 64), base=OUT),
        Opt("--groups", bad_int(1, 64), base=OUT),
        Opt("--width", bad_int(4, 32), ("v_width",), base=OUT),
        Opt("--i-width", bad_int(2, 32), base=OUT),
        Opt("--ref-width", bad_int(1, 16), base=OUT),
        Opt("--decay-frac", bad_int(1, 24), base=OUT),
        Opt("--step-width", bad_int(8, 32), base=OUT),
        Opt("--lanes-per-enable", bad_int(1, 4), base=OUT),
        Opt("--leak-modes", bad_modes(), base=OUT),
        Opt("--pipeline", bad_choice(("deep", "compact")), base=OUT),
        Opt("--multiplier", bad_choice(("fabric", "ecp5", "ice40")), base=OUT),
        Opt("--memory", bad_choice(("inferred", "ecp5")), base=OUT),
        Opt("--config", paths(BAD_CONFIGS), base=OUT),
        Opt("-o", paths(BAD_OUT_FILES), ("-o/--output", "--output")),
    ],
    "verify": [
        Opt("--configs", bad_int(0, 100000)),
        Opt("--neurons", bad_int(1, 1 << 20)),
        Opt("--lanes", bad_int(1, 64)),
        Opt("--groups", bad_int(1, 64)),
        Opt("--steps", bad_int(1, 1 << 20)),
        Opt("--seed", bad_int(0, (1 << 63) - 1)),
        Opt("--sim", bad_choice(("icarus", "verilator", "amaranth"))),
        Opt("--waves", paths(BAD_DIRS)),
        Opt("--build-dir", paths(BAD_DIRS)),
        Opt("--verilog", paths(BAD_GRAPHS)),
        Opt("--config", paths(BAD_CONFIGS)),
        Opt("--workers", bad_int(1, 256)),
        Opt("--scheduler", st.sampled_from(["localhost", "tcp://host", "http://h:1", "x y"])),
    ],
    "mutants": [
        Opt("--count", bad_int(1, 4000)),
        Opt("--seed", bad_int(0, (1 << 31) - 1)),
        Opt("--configs", bad_int(0, 10000)),
        Opt("--steps", bad_int(1, 4096)),
        Opt("--jobs", bad_int(1, 64)),
        Opt("--depth", bad_int(1, 64)),
        Opt("--long-steps", bad_int(0, (1 << 32) - 1)),
        Opt("--goal", bad_float(0, 1)),
        Opt("--sim", bad_choice(("icarus", "verilator"))),
        Opt("--build-dir", paths(BAD_DIRS)),
        Opt("--results", paths(BAD_OUT_FILES)),
    ],
    "build": [
        Opt("--board", bad_choice(("icebreaker", "ulx3s-85f")), ("'board'",)),
        Opt("--neurons", bad_int(1, 1 << 20), base=("--board", "icebreaker")),
        Opt("--lanes", bad_int(1, 64), base=("--board", "ulx3s-85f")),
        Opt("--groups", bad_int(1, 4096), base=("--board", "icebreaker")),
        Opt("--freq", bad_float(1, 400), base=("--board", "icebreaker")),
        Opt("--seed", bad_int(0, (1 << 31) - 1), base=("--board", "ulx3s-85f")),
        Opt("--leak-modes", bad_modes(), base=("--board", "icebreaker")),
        Opt("--build-dir", paths(BAD_DIRS), base=("--board", "icebreaker", "--neurons", "64")),
    ],
    "resources": [
        Opt("--board", bad_choice(("icebreaker", "ulx3s-85f", "all")), ("'board'",)),
        Opt("--neurons", bad_int(1, 1 << 20)),
        Opt("--lanes", bad_int(1, 64), base=("--neurons", "64")),
        Opt("--groups", bad_int(1, 64), base=("--neurons", "64")),
        Opt("--freq", bad_float(1, 400)),
        Opt("--seed", bad_int(0, (1 << 31) - 1)),
        Opt("--design", bad_choice(("array", "top"))),
        Opt("--leak-modes", bad_modes()),
        Opt("--build-dir", paths(BAD_DIRS)),
        Opt("--seeds", st.sampled_from(["1,x", "1,1", "-1", "2147483648", "1.5", ""])),
        Opt("--shapes", st.sampled_from(["64", "64x", "x4", "64x4,", "0x4", "64x0"])),
        Opt("--workers", bad_int(1, 256)),
        Opt("--scheduler", st.sampled_from(["localhost", "tcp://host", "http://h:1", "x y"])),
    ],
    "digits": [
        Opt("--steps", bad_int(1, 100000)),
        Opt("--samples", bad_int(0, 450)),
        Opt("--hidden", bad_int(1, 4096)),
        Opt("--w-width", bad_int(2, 18)),
        Opt("--seed", bad_int(0, (1 << 32) - 1)),
        Opt("--limit", bad_int(1, 450), base=("--board", "model")),
        Opt("--sim", bad_choice(("verilator", "icarus"))),
        Opt("--board", st.one_of(
            st.sampled_from(["foo", "sim:", "sim:ghdl", "serial:", "serial:/dev/lifgate-none",
                             "serial:COM3", "serial:/dev/ttyUSB0@fast", "model:"]),
            st.text(max_size=12).filter(lambda s: s != "model" and not s.startswith(
                ("sim:verilator", "sim:icarus", "serial:/dev/"))))),
        Opt("--build-dir", paths(BAD_DIRS)),
    ],
    "import-nir": [
        Opt("GRAPH", paths(BAD_GRAPHS), ("GRAPH.nir", "NIR graph")),
        Opt("--w-width", bad_int(2, 18), base=("good.nir",)),
        Opt("--v-width", bad_int(4, 32), base=("good.nir",)),
        Opt("--i-width", bad_int(2, 32), base=("good.nir",)),
        Opt("--steps", bad_int(0, 1_000_000), base=("good.nir",)),
        Opt("--dt", bad_float(0, lo_open=True), base=("good.nir",)),
        Opt("--scale", bad_float(0, lo_open=True), base=("good.nir",)),
        Opt("--build-dir", paths(BAD_DIRS), base=("good.nir", "--rtl")),
    ],
    "bench": [
        Opt("NAME", st.text(min_size=1, max_size=12).filter(
            lambda s: not s.startswith("-") and s not in ("golden", "sim", "all", "resources",
                                                           "network_fpga")),
            ("benchmark",)),
    ],
    "program": [
        Opt("--board", bad_choice(("icebreaker", "ulx3s-85f")), ("'board'",)),
    ],
}


def _argv(command, opt, value):
    if opt.option in ("GRAPH", "NAME"):  # positional; none of the drawn values starts with "-"
        return [command, *opt.base, value]
    return [command, *opt.base, opt.option, value]


def _cases(command):
    return st.sampled_from(COMMANDS[command]).flatmap(
        lambda opt: opt.values.map(lambda v: (opt, v)))


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_refuses_bad_values(command, sandbox, tripwires):
    """Every option of every subcommand, hypothesis-drawn bad values: see the module doc."""

    @SETTINGS
    @given(case=_cases(command))
    def check(case):
        opt, value = case
        refuse(sandbox, _argv(command, opt, value), opt.names())

    check()


@pytest.mark.parametrize("command,opt", [(c, o) for c in sorted(COMMANDS) for o in COMMANDS[c]],
                         ids=lambda x: getattr(x, "option", x))
def test_every_option_is_covered_once_at_least(command, opt, sandbox, tripwires):
    """The first value of each option's strategy, so no option depends on hypothesis' draw."""
    value = _first(opt.values)
    refuse(sandbox, _argv(command, opt, value), opt.names())


def _first(strategy):
    """A deterministic example of ``strategy`` (hypothesis' ``example()`` is random)."""
    found = []

    @settings(max_examples=1, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def grab(v):
        found.append(v)

    grab()
    return found[0]


@pytest.mark.parametrize("path", BAD_DIRS + BAD_OUT_FILES + BAD_CONFIGS + BAD_GRAPHS)
def test_every_bad_path_is_refused_somewhere(path, sandbox, tripwires):
    """Each bad path in the place it is bad for: output folders, output files, inputs."""
    if path in BAD_DIRS:
        refuse(sandbox, ["verify", "--waves", path], ("--waves",))
        refuse(sandbox, ["digits", "--build-dir", path], ("--build-dir",))
    if path in BAD_OUT_FILES:
        refuse(sandbox, ["generate", "--neurons", "8", "-o", path], ("-o/--output",))
    if path in BAD_CONFIGS:
        refuse(sandbox, ["generate", "--config", path, "-o", "x.v"], ("--config",))
    if path in BAD_GRAPHS:
        refuse(sandbox, ["import-nir", path], ("GRAPH.nir", "NIR graph"))


def test_write_errors_leave_devices_alone(sandbox, tripwires):
    """``-o /dev/full``: the write fails (one line, exit 2) and the device stays a device.

    Before issue 14 ``generate`` wrote a temporary file and ``os.replace``-d it over the
    output: ``/dev/full`` became a regular file and the command exited 0. Root builds a private
    copy of the device, so a regression cannot damage the machine's ``/dev/full``.
    """
    dev = Path("/dev/full")
    if os.geteuid() == 0:
        dev = sandbox / "full"
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    try:
        refuse(sandbox, ["generate", "--neurons", "8", "--lanes", "2", "-o", str(dev)],
               ("-o/--output",), generation=False)
        assert stat.S_ISCHR(os.lstat(dev).st_mode)
    finally:
        if dev.parent == sandbox:
            dev.unlink()


def test_usage_errors_are_one_line(sandbox, tripwires):
    """argparse's errors too: no usage block, one line naming the argument."""
    for argv, needle in [(["verify", "--nope"], "unrecognized arguments"),
                         (["generate"], "-o/--output"),
                         (["build"], "--board"),
                         (["import-nir"], "GRAPH.nir"),
                         (["verify", "--neurons"], "--neurons")]:
        refuse(sandbox, argv, (needle,))


def test_entry_point_subprocess(sandbox):
    """The installed ``lifgate`` script, for the cases issue 14 found as tracebacks."""
    exe = shutil.which("lifgate", path=str(Path(sys.executable).parent)) or "lifgate"
    cases = [
        (["verify", "--neurons", "0"], "--neurons"),
        (["verify", "--neurons", "-4"], "--neurons"),
        (["digits", "--seed", "-1"], "--seed"),
        (["generate", "--config", "binary.toml", "-o", "x.v"], "--config"),
        (["import-nir", "bad.nir"], "node 'lif1'"),
        (["verify", "--waves", "afile.txt/w"], "--waves"),
        (["build", "--board", "icebreaker", "--freq", "-1e5"], "--freq"),
        (["digits", "--board", "foo"], "--board"),
    ]
    for argv, needle in cases:
        before = snapshot(sandbox)
        t0 = time.monotonic()
        r = subprocess.run([exe, *argv], cwd=sandbox, capture_output=True, text=True,
                           timeout=120)
        COUNT["subprocess"] += 1
        where = f"lifgate {' '.join(argv)}: {r.stderr!r}"
        assert r.returncode == 2, where
        assert "Traceback" not in r.stderr, where
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"lifgate {argv[0]}: error: "), where
        assert needle in lines[0], where
        assert time.monotonic() - t0 < 60, where
        assert snapshot(sandbox) == before, where
