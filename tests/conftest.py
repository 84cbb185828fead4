"""Suite-wide rules: a test that needs a tool the project installs never skips for its absence.

``./run setup`` installs every tool the tests use (the YoWASP formal and FPGA tools and the
``dev`` extra's modules into ``.venv``, Icarus from apt), and the tools are looked up in the
project's environment whatever the caller's ``PATH`` (:mod:`lifgate.sim.tools`). So a skip
because one of them is missing means a broken environment, and a skip is easy to miss in a
green run: all 18 formal jobs once "passed" CI that way (issue 14). The hooks below turn such a
skip (:func:`lifgate.sim.tools.is_missing_tool_reason`) into a failure.

They do it **always**, not only under ``CI``: a local run is the same suite in the same
environment, and a developer whose proofs silently skip would merge work that CI then rejects
(or, before this rule, never checked). The one way to leave the slow formal jobs out of a local
run is explicit, ``LIFGATE_FORMAL=0``; under ``CI`` (set and not ``0``/``false``/``no``, as
GitHub Actions and ``.ci/run`` set it) that opt-out is refused with a usage error before any
test runs, so CI cannot be told to skip the proofs.

The session also shares its simulator builds (:mod:`lifgate.sim.buildcache`): the controller
sets ``LIFGATE_BUILD_CACHE`` to a fresh folder before the ``-n`` workers start (they inherit it)
and removes the folder at the end, so a model built by one test, keyed by the text of its
sources, is restored for the next test that builds the same one, and no build outlives the
session (a run is as cold as a fresh clone's). A caller who sets the variable keeps their own.

The long tests are collected first, and under ``-n`` (``./run test``: ``-n 2``) the workers take
one test at a time (``--maxschedchunk 1`` unless given): the last minutes are not one slow test
on one core while the other idles. :data:`LONG_FIRST` lists them, from the CI runs' ``--durations``;
the order changes nothing else (every test still runs, each on its own fixtures).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from lifgate.sim import buildcache
from lifgate.sim.buildcache import ENV as BUILD_CACHE_ENV
from lifgate.sim.tools import is_missing_tool_reason

#: Node-id prefixes of the tests that take 20 s or more on a quiet 2-core machine (CI's
#: ``--durations``), longest first: collected first, so that ``-n`` workers start on them. A test
#: not listed keeps its place after them; a prefix that matches nothing costs nothing.
LONG_FIRST = (
    "tests/test_boards_cli.py::test_smoke_build",
    "tests/test_boards_netlist.py::test_ecp5_netlist_matches_model",
    "tests/test_formal.py::test_formal[stream_prove_pdr_n2_c]",
    "tests/test_fuzz_board.py::test_fuzz_board_top",
    "tests/test_docs_commands.py::test_documented_block_runs[README.md:",
    "tests/test_bench_link.py::test_bench_link_reduced_run",
    "tests/test_boards_netlist.py::test_up5k_netlist_matches_model",
    "tests/test_formal.py::test_formal[equiv_prove2",
    "tests/test_formal.py::test_formal[bounds_prove2",
    "tests/test_boards_notebook.py::test_notebook_config_on_sim_board",
    "tests/test_demo_board.py::test_demo_board_on_the_simulated_top",
    "tests/test_golden_fast.py::test_fused_equals_numpy",
    "tests/test_nir_frameworks.py::test_fixture_rtl_bit_exact",
    "tests/test_formal.py::test_formal[refractory_prove",
    "tests/test_demo.py::test_cli_json_plots_and_rtl",
    "tests/test_boards_robust.py::test_sim_board",
    "tests/test_boards_network.py::test_sim_network_board",
    "tests/test_boards_host.py::test_sim_board",
    "tests/test_sim_regression.py::test_regression",
    "tests/test_formal.py::test_formal",
    "tests/test_docs_commands.py::test_documented_block_runs",
)

_HINT = ("a tool the project installs is missing, so this test would have been skipped; "
         "run `./run setup` (or pip install -e '.[dev]') to repair the environment "
         "(tests/conftest.py turns such skips into failures)")


def ci_enabled(environ=os.environ) -> bool:
    """Whether ``CI`` is set to something other than empty, ``0``, ``false`` or ``no``."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    if ci_enabled() and os.environ.get("LIFGATE_FORMAL") == "0":
        raise pytest.UsageError(
            "LIFGATE_FORMAL=0 (leave the formal proofs out) is refused under CI="
            f"{os.environ['CI']!r}: CI runs the proofs every time; unset LIFGATE_FORMAL"
        )
    if getattr(config.option, "maxschedchunk", "absent") is None:  # xdist's, not given
        config.option.maxschedchunk = 1
    if not hasattr(config, "workerinput") and not os.environ.get(BUILD_CACHE_ENV):
        folder = tempfile.mkdtemp(prefix="lifgate-build-cache-")
        os.environ[BUILD_CACHE_ENV] = folder
        config.add_cleanup(lambda: _remove_cache(folder))


def _rank(nodeid: str) -> int:
    return next((k for k, prefix in enumerate(LONG_FIRST) if nodeid.startswith(prefix)),
                len(LONG_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter, config):
    """One line: how many simulator builds were compiled and how many restored."""
    root = buildcache.cache_root()
    if hasattr(config, "workerinput") or root is None:
        return
    for sim, s in sorted(buildcache.summary(root).items()):
        terminalreporter.write_line(
            f"{sim} builds: {s['compiled']} compiled ({s['seconds']} s wall, "
            f"{s['cpu_seconds']} s CPU), {s['restored']} restored from the session's cache")


def _remove_cache(folder: str) -> None:
    if os.environ.get(BUILD_CACHE_ENV) == folder:
        del os.environ[BUILD_CACHE_ENV]
    shutil.rmtree(folder, ignore_errors=True)


def _skip_reason(report) -> str | None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_missing_tool(report) -> None:
    reason = _skip_reason(report)
    if reason is not None and is_missing_tool_reason(reason):
        report.outcome = "failed"
        report.longrepr = f"{reason}\n{_HINT}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_if_missing_tool(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # A module-level pytest.importorskip of a dev-extra module skips a whole file.
    report = yield
    _fail_if_missing_tool(report)
    return report
