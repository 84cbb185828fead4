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

"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from lifgate.sim import buildcache
from lifgate.sim.buildcache import ENV as BUILD_CACHE_ENV
from lifgate.sim.tools import is_missing_tool_reason

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
    if not hasattr(config, "workerinput") and not os.environ.get(BUILD_CACHE_ENV):
        folder = tempfile.mkdtemp(prefix="lifgate-build-cache-")
        os.environ[BUILD_CACHE_ENV] = folder
        config.add_cleanup(lambda: _remove_cache(folder))


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
