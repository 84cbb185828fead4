"""The floors of the code base hold: ``lint-imports`` with the contracts in ``pyproject.toml``.

The editable install maps ``lifgate.hdl`` to ``hdl/`` (and so on), which grimp, import-linter's
graph builder, cannot follow: it walks the folder of ``lifgate`` only. So the test copies the
package into the layout it installs as (``pyproject.toml``'s ``package-dir``) and runs
``lint-imports`` there, with ``python -S`` so that the editable finder cannot shadow the copy.
A second run adds one upward import and must fail: the check can fail.
"""

from __future__ import annotations

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
    assert "Contracts: 4 kept, 0 broken." in r.stdout
    # The copy, not the source tree, was analysed: all floors were found.
    assert "module lifgate.boards does not exist" not in r.stdout


def test_an_upward_import_breaks_the_floors(mirror, tmp_path):
    bad = _mirror(tmp_path / "bad")
    (bad / "lifgate" / "golden" / "upward.py").write_text("import lifgate.hdl.array\n")
    r = _lint(bad)
    assert r.returncode != 0
    assert "lifgate.golden is not allowed to import lifgate.hdl" in r.stdout
    assert "lifgate.golden.upward -> lifgate.hdl.array" in r.stdout
