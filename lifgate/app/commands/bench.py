"""``lifgate bench``: run the benchmarks of the source tree's ``bench/`` folder.

Each benchmark is a module ``bench/bench_<name>.py`` with ``main(argv) -> int`` that parses
its own options (all of them take ``--json`` and ``--quick``). ``lifgate bench golden`` runs
``bench_golden`` (the golden model, and Brian2 when available), ``lifgate bench sim`` runs
``bench_sim`` if it exists, ``lifgate bench resources`` the FPGA builds of the array and board
tops, ``lifgate bench network_fpga`` those of the digits network (synaptic operations per
second beside neuron updates per second), ``lifgate bench all`` every one found. Options after
the name go to the benchmark: ``lifgate bench golden --neurons 10000 --profile``,
``lifgate bench network_fpga --markdown docs/resources.md``.

``--json`` prints one object, ``{"ok": ..., "benchmarks": {NAME: its JSON, ...}}`` (``ok``:
every benchmark exited with 0). ``--no-progress`` is accepted like on every long command; the
benchmarks print no progress bars.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import lifgate
from lifgate.app.cli import UsageError, add_report_options


def bench_dir() -> Path:
    """The ``bench/`` folder next to the ``lifgate`` package (an editable or source install)."""
    return Path(lifgate.__file__).resolve().parent.parent / "bench"


def available() -> dict[str, Path]:
    """Benchmark name -> file, for every ``bench/bench_<name>.py``."""
    d = bench_dir()
    if not d.is_dir():
        return {}
    return {f.stem[len("bench_"):]: f for f in sorted(d.glob("bench_*.py"))}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"lifgate_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise UsageError(f"benchmark {str(path)!r} has no main(argv) function")
    return module


def register(subparsers, summary):
    p = subparsers.add_parser(
        "bench",
        help=summary,
        description=summary + ". Options after NAME go to the benchmark (try NAME --help).",
    )
    p.add_argument("name", nargs="?", default="golden",
                   help="golden (default), sim, all, or any bench/bench_<name>.py")
    p.add_argument("--list", action="store_true", help="list the benchmarks found and exit")
    add_report_options(p, json_help="ask the benchmarks for JSON and print one object "
                       "{\"ok\": ..., \"benchmarks\": {NAME: ...}}")
    p.add_argument("--quick", action="store_true", help="ask the benchmark for a short run")
    p.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    found = available()
    if args.list:
        if not found:
            print(f"no benchmarks found in {bench_dir()}")
        width = max(map(len, found), default=0) + 2
        for name, path in found.items():
            print(f"{name:<{width}}{path}")
        return 0
    if not found:
        raise UsageError(
            f"no benchmarks found: they live in the source tree's bench/ folder "
            f"({bench_dir()} does not exist or holds no bench_*.py); run from a source checkout"
        )
    names = list(found) if args.name == "all" else [args.name]
    for name in names:
        if name not in found:
            legal = ", ".join([*found, "all"])
            raise UsageError(f"benchmark {name!r} not found; legal: {legal}")
    extra = list(args.options)
    if args.json:
        extra.append("--json")
    if args.quick:
        extra.append("--quick")
    rc = 0
    results = {}
    for name in names:
        if len(names) > 1 and not args.json:
            print(f"== bench {name} ==", flush=True)
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured) if args.json else contextlib.nullcontext():
            try:
                code = _load(name, found[name]).main(extra)
            except SystemExit as e:  # argparse inside the benchmark
                code = e.code if isinstance(e.code, int) else 2
        if args.json:
            text = captured.getvalue()
            try:
                results[name] = json.loads(text)
            except ValueError:
                results[name] = {"output": text}
        rc = rc or int(code or 0)
    if args.json:
        print(json.dumps({"ok": rc == 0, "benchmarks": results}, indent=2))
    return rc
