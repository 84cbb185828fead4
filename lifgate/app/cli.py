"""The ``lifgate`` command line.

Each subcommand lives in its own module under ``lifgate/app/commands/`` and provides
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit code. :func:`main` imports only the module of the command it
runs (the others get a stub parser with their summary, all ``lifgate --help`` shows), so a
command pays only for its own imports (the simulators, matplotlib, the boards) and one broken
command cannot take the others down.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from lifgate.config import ConfigError
from lifgate.version import __version__

# (module, one-line summary); the order is the order of ``lifgate --help``.
COMMANDS = [
    ("demo", "reproduce both seed notebooks on the float model, the fixed-point model and the RTL"),
    ("quantize", "map biological LIF parameters (mV, ms, nS, pA) onto a fixed-point configuration"),
    ("generate", "write the Verilog of a neuron array"),
    ("verify", "run the bit-exact regression of the RTL against the golden model"),
    ("bench", "measure throughput of the golden model and the simulators"),
    ("mutants", "score the regression on Yosys-made mutants of the array (a benchmark)"),
    ("resources", "synthesise for iCE40UP5K and ECP5-85F and report cells, RAMs and Fmax"),
    ("build", "build a bitstream for a board"),
    ("program", "flash a bitstream onto a board"),
    ("board_check", "check a board: VERSION, a short run against the golden model, a verdict"),
    ("digits", "convert a ReLU MLP on the 8x8 digits to an SNN; golden model and RTL accuracy"),
    ("import_nir", "import a NIR graph onto a lifgate network and report its discretisation"),
]


#: Parameter groups when neither ``--groups`` nor a configuration file gives them, in every
#: command (generate, verify, build, resources): one parameter set, held in a register. More
#: groups cost a block RAM per lane in the gateware; ask for them with ``--groups G``.
DEFAULT_GROUPS = 1


class UsageError(Exception):
    """A command-line error to report as ``lifgate: error: ...`` with exit code 2."""


class Parser(argparse.ArgumentParser):
    r"""``argparse`` that takes ``-1e5`` and ``-.5`` as numbers, not as unknown options.

    argparse's own test for a negative number (``^-\d+$|^-\d*\.\d+$``) misses exponents, so
    ``--V_reset -1e5`` ended in "expected one argument". Subparsers inherit the class.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^-inf$|^-nan$")

    def error(self, message):
        """One line on stderr, exit code 2: ``lifgate CMD: error: argument --x: ...``.

        argparse's own ``error`` prints the whole usage first; every other refusal of lifgate
        is one line naming the parameter, and this one says where the usage is.
        """
        message = " ".join(str(message).splitlines())  # a value may hold a newline
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_report_options(parser, *, json_help: str = "print one JSON object on stdout (with "
                       "\"ok\": true/false); progress goes to stderr") -> None:
    """The options every long command shares: ``--json`` and ``--no-progress``."""
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress on stderr (it is a bar on a terminal, one line every "
                        "10 s otherwise)")


#: ``build_parser(only=ALL)``: import every command module.
ALL = object()


def build_parser(only=ALL) -> argparse.ArgumentParser:
    """The parser of ``lifgate`` and its commands.

    ``only``: the command line name of the one command whose module is imported (``None``:
    none); every other command gets a stub parser carrying its summary. Default: all.
    """
    parser = Parser(
        prog="lifgate",
        description="Fixed-point LIF neuron arrays: generate Verilog, verify it bit for bit "
        "against the golden model, build and flash open-toolchain boards.",
    )
    parser.add_argument("--version", action="version", version=f"lifgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS:
        if only is not ALL and only != name.replace("_", "-"):
            sub.add_parser(name.replace("_", "-"), help=summary)
            continue
        try:
            module = importlib.import_module(f"lifgate.app.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"lifgate.app.commands.{name}":
                continue  # not written yet
            raise
        module.register(sub, summary)
    parser.command_parsers = sub.choices
    return parser


def _command_of(argv) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level parser
    has options without values only)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(argv))
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser: "lifgate verify: error: ..."
            command = getattr(parser, "command_parsers", {}).get(getattr(args, "command", None))
            (command or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help, --version, or a one-line usage error (exit 2)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except (ConfigError, UsageError) as e:
        # One line, whatever the message holds (a parser's excerpt, a path with a newline).
        text = " ".join(str(e).splitlines())
        print(f"lifgate {args.command}: error: {text}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # ``lifgate quantize | head -3``: the reader left; that is not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
