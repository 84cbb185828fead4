"""``lifgate program``: flash a bitstream of ``lifgate build`` onto a board.

iCEBreaker: ``iceprog BITSTREAM.bin`` (SPI flash), or ``openFPGALoader -b icebreaker`` when
iceprog is missing. ULX3S: ``openFPGALoader -b ulx3s`` (SRAM by default; ``--flash`` writes the
SPI flash). The tools come from the system (Debian: ``fpga-icestorm``, ``openfpgaloader``);
``ICEPROG`` / ``OPENFPGALOADER`` override their paths. A missing bitstream, a missing
programmer or a programmer that fails (no board attached) is reported in one line with exit
code 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lifgate.boards.toolchain import board


def register(subparsers, summary):
    p = subparsers.add_parser("program", help=summary, description=summary + ".")
    p.add_argument("--board", required=True, metavar="BOARD", help="icebreaker or ulx3s-85f")
    p.add_argument("--bitstream", default=None, metavar="FILE",
                   help="bitstream (default: build/board-BOARD/top.bin or top.bit)")
    p.add_argument("--flash", action="store_true",
                   help="ULX3S: write the SPI flash instead of the FPGA's SRAM")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    p.set_defaults(func=run)


def _find(env_var: str, name: str) -> str | None:
    tool = os.environ.get(env_var, name)
    return shutil.which(tool)


def command(board_name: str, bitstream: str, *, flash: bool = False) -> list[str]:
    """The programmer command for ``board_name``; :class:`FileNotFoundError` if none is found."""
    if board_name == "icebreaker":
        iceprog = _find("ICEPROG", "iceprog")
        if iceprog:
            return [iceprog, bitstream]
        ofl = _find("OPENFPGALOADER", "openFPGALoader")
        if ofl:
            return [ofl, "-b", "icebreaker", bitstream]
        raise FileNotFoundError(
            "no programmer found: neither iceprog nor openFPGALoader is on PATH "
            "(Debian: apt install fpga-icestorm, or openfpgaloader)"
        )
    ofl = _find("OPENFPGALOADER", "openFPGALoader")
    if not ofl:
        raise FileNotFoundError(
            "no programmer found: openFPGALoader is not on PATH "
            "(Debian: apt install openfpgaloader)"
        )
    return [ofl, "-b", "ulx3s", "-f" if flash else "-m", bitstream]


def run(args) -> int:

    b = board(args.board)
    path = Path(args.bitstream or f"build/board-{b.name}/top.{b.bitstream_ext}")
    if not path.is_file():
        print(f"lifgate program: error: bitstream {str(path)!r} not found; build it with "
              f"`lifgate build --board {b.name}`", file=sys.stderr)
        return 1
    try:
        cmd = command(b.name, str(path), flash=args.flash)
    except FileNotFoundError as e:
        print(f"lifgate program: error: {e}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"lifgate program: error: {cmd[0]} failed: {e}", file=sys.stderr)
        return 1
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        detail = "; ".join(tail) if tail else "no output"
        print(f"lifgate program: error: {Path(cmd[0]).name} exited with {proc.returncode} "
              f"(is the {b.name} connected?): {detail}", file=sys.stderr)
        return 1
    print(f"programmed {b.name} with {path}")
    return 0
