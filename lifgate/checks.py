"""One validation layer for everything a user hands lifgate: numbers, choices and paths.

Every command of the CLI and the host library check their inputs through these functions, so a
mistake gets the same answer wherever it is made: a :class:`~lifgate.config.ConfigError` whose
message is one line naming the parameter and its legal range (never a numpy array, never a
traceback), raised **before** any build starts and before anything is written. The CLI turns it
into ``lifgate CMD: error: ...`` and exit code 2.

Paths are checked up front with :func:`input_file`, :func:`output_file` and :func:`output_dir`,
and files are written with :func:`write_output`, which never replaces what is not a regular
file: it writes *through* a symbolic link to its target, *into* a device or FIFO
(``-o /dev/stdout`` works, ``-o /dev/full`` is an error), and replaces a regular file atomically
(a temporary file beside it, then ``os.replace``), so an interrupted write leaves the old file.

This module sits on the contract floor: it imports only :mod:`lifgate.config` and the standard
library.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
import tempfile
import tomllib
from pathlib import Path

from lifgate.config import Config, ConfigError, ResetMode

__all__ = [
    "ConfigError",
    "check_bool",
    "check_choice",
    "check_int",
    "check_int_array",
    "check_uint",
    "check_number",
    "check_reset_modes",
    "input_file",
    "output_dir",
    "output_file",
    "short_repr",
    "write_output",
]


def short_repr(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: an array never floods an error message."""
    try:
        import numpy as np  # optional here: the contract floor does not need numpy

        if isinstance(value, np.ndarray):
            if value.size == 1:
                value = value.reshape(()).item()
            else:
                lo, hi = (float(value.min()), float(value.max())) if value.size else (0, 0)
                return f"an array of shape {value.shape} (values {lo:g} to {hi:g})"
    except ImportError:  # pragma: no cover - numpy is a dependency of lifgate
        pass
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (either bound may be ``None``: open).

    numpy integers are accepted; ``bool``, floats (even integral ones: a silently truncated
    float is the bug this exists to stop) and strings are not.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    else:
        raise ConfigError(f"{name} must be an integer{_range(lo, hi)}, not {short_repr(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{name} must be an integer{_range(lo, hi)}, not {value}")
    return value


def check_number(name: str, value, lo: float | None = None, hi: float | None = None, *,
                 unit: str = "", lo_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[lo, hi]`` (``lo_open``: ``(lo, hi]``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number{_range(lo, hi, unit, lo_open)}, "
                          f"not {short_repr(value)}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and value > hi
    if bad:
        raise ConfigError(f"{name} must be a finite number{_range(lo, hi, unit, lo_open)}, "
                          f"not {value:g}")
    return value


def check_choice(name: str, value, legal) -> str:
    """``value`` if it is one of ``legal`` (strings), else an error listing them."""
    legal = list(legal)
    if value not in legal:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, legal))}, "
                          f"not {short_repr(value)}")
    return value


def check_reset_modes(name: str, text) -> tuple:
    """The reset modes a comma-separated option names (``-`` or ``_`` in a name): ``value``
    and ``subtract`` (always built) and optionally ``subtract_after_leak``; else one line
    naming the legal lists."""
    legal = {m.name.lower(): m for m in ResetMode}
    names = [m.strip().replace("-", "_").lower() for m in str(text).split(",") if m.strip()]
    if not names or any(n not in legal for n in names) or not {"value", "subtract"} <= set(names):
        raise ConfigError(f"{name} must be value,subtract or value,subtract,subtract_after_leak "
                          f"(value and subtract are always built), not {short_repr(text)}")
    return tuple(sorted({legal[n] for n in names}))


def _num(x) -> str:
    # Integers in full (a seed's bound 4294967295, not 4.29497e+09); floats short.
    return str(x) if isinstance(x, numbers.Integral) else f"{x:g}"


def _range(lo, hi, unit: str = "", lo_open: bool = False) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]{u}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_num(lo)}{u}"
    if hi is not None:
        return f" <= {_num(hi)}{u}"
    return ""


def input_file(name: str, path) -> Path:
    """A readable regular file (or a readable device/FIFO such as ``/dev/stdin``)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{name}: {str(p)!r} does not exist")
    if p.is_dir():
        raise ConfigError(f"{name}: {str(p)!r} is a directory, not a file")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{name}: {str(p)!r} is not readable")
    return p


def _writable_parent(name: str, p: Path) -> None:
    parent = p.parent
    # The nearest existing ancestor decides: output_dir creates missing folders.
    anc = parent
    while not anc.exists():
        if anc.is_symlink():
            raise ConfigError(f"{name}: {str(anc)!r} is a broken symbolic link")
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{name}: {str(anc)!r} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}: cannot write in {str(anc)!r} (permission denied)")


def output_file(name: str, path, *, create_parents: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a file; nothing is created.

    An existing directory is refused; an existing regular file must be writable (it will be
    replaced); a device or FIFO must be writable (it will be written into); a symbolic link is
    followed. Without ``create_parents`` the parent folder must exist.
    """
    p = Path(path)
    if str(path) == "":
        raise ConfigError(f"{name}: the path is empty")
    target = p.resolve() if p.is_symlink() else p
    if p.is_symlink() and not target.exists() and not target.parent.is_dir():
        raise ConfigError(f"{name}: {str(p)!r} is a symbolic link to a missing folder")
    if target.exists():
        if target.is_dir():
            raise ConfigError(f"{name}: {str(p)!r} is a directory, not a file")
        if not os.access(target, os.W_OK):
            raise ConfigError(f"{name}: {str(p)!r} is not writable (permission denied)")
        return p
    if not create_parents and not target.parent.is_dir():
        raise ConfigError(f"{name}: folder {str(target.parent)!r} does not exist")
    _writable_parent(name, target)
    return p


def output_dir(name: str, path) -> Path:
    """Check, before any work, that ``path`` is or can become a writable folder.

    Nothing is created here: the command creates it when it writes its first file, so a refused
    command leaves no empty folder behind.
    """
    p = Path(path)
    if str(path) == "":
        raise ConfigError(f"{name}: the path is empty")
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"{name}: {str(p)!r} exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{name}: cannot write in {str(p)!r} (permission denied)")
        return p
    if p.is_symlink():
        raise ConfigError(f"{name}: {str(p)!r} is a broken symbolic link")
    _writable_parent(name, p)
    return p


def write_output(name: str, path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` without replacing anything that is not a regular file.

    A symbolic link is written through (its target changes, the link stays); a device or FIFO
    is opened and written into; a regular file (or a new one) is written to a temporary file in
    the same folder and moved over it, so a failure leaves the previous content. An ``OSError``
    becomes a :class:`ConfigError` naming ``name`` (for example ``-o /dev/full``: no space left
    on device).
    """
    p = Path(path)
    target = Path(os.path.realpath(p))
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        # os.stat(p) follows links the way open() does: /dev/stdout -> /proc/self/fd/1 ->
        # a pipe has no real path, but is there to be written into.
        try:
            st = os.stat(p)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"{name}: {str(p)!r} is a directory, not a file")
            with open(p, mode) as f:
                f.write(data)
                f.flush()
            return p
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, mode) as f:
                f.write(data)
            if st is not None:
                os.chmod(tmp, stat.S_IMODE(st.st_mode))
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ConfigError(f"{name}: cannot write {str(p)!r}: {e.strerror or e}") from None
    except ConfigError:  # a ValueError too: keep its own message
        raise
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"{name}: {str(p)!r} is not a valid path") from None
    return p


def _no_nul(name: str, path) -> None:
    if "\x00" in str(path):
        raise ConfigError(f"{name}: {str(path)!r} is not a valid path (it holds a NUL byte)")


def read_config_file(name: str, path) -> tuple[dict, object]:
    """Read and check a ``.toml`` or ``.json`` configuration file named by option ``name``.

    Returns ``(raw, config)``: the parsed mapping (so a caller can say which sections it used)
    and the :class:`~lifgate.config.Config` built from it. Every way a file can be wrong (missing,
    a directory, unreadable, not UTF-8 text, another suffix, invalid TOML/JSON, a bad value)
    raises one-line :class:`ConfigError` naming ``name`` and the file.
    """

    _no_nul(name, path)
    p = input_file(name, path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"{name}: {str(p)!r} must be a .toml or .json file "
                          f"(the suffix says which)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{name}: cannot read {str(p)!r}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: {str(p)!r} is not a UTF-8 text file (byte {e.start}); "
                          f"give a .toml or .json configuration") from None
    try:
        raw = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if suffix == ".toml" else "JSON"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{name}: {str(p)!r} is not valid {kind}: {first}") from None
    try:
        config = Config.from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{name}: {str(p)!r}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        # A section of the wrong kind (``params = 3``) fails inside the dataclasses.
        raise ConfigError(f"{name}: {str(p)!r}: not a lifgate configuration "
                          f"({short_repr(str(e), 80)}); sections: shape, params, noise") from None
    return raw, config


def _probe_dir(name: str, folder: Path, shown: Path) -> None:
    """Create and remove a temporary file in ``folder``: the one test that root cannot pass
    by privilege (``os.access`` says root may write anywhere, but not in /proc, /sys or on a
    read-only mount)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lifgate-probe-", dir=folder)
    except OSError as e:
        raise ConfigError(f"{name}: cannot write in {str(shown)!r}: "
                          f"{e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def _nearest_existing(p: Path) -> Path:
    anc = p
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    return anc


def writable_dir(name: str, path) -> Path:
    """:func:`output_dir`, then prove it by writing: a temporary file is created and removed in
    ``path`` (or, when it does not exist yet, in its nearest existing ancestor). Nothing stays
    behind; use it for every folder a command will write, before any work starts.
    """
    _no_nul(name, path)
    p = output_dir(name, path)
    _probe_dir(name, _nearest_existing(p.absolute()), p)
    return p


def writable_file(name: str, path, *, create_parents: bool = False) -> Path:
    """:func:`output_file`, then prove it by writing, as :func:`writable_dir` does.

    A regular file (new or existing) is written by :func:`write_output` through a temporary
    file beside it, so its folder must take a new file; a device or FIFO is opened for
    appending (nothing is written) to show it can be opened for writing.
    """
    _no_nul(name, path)
    try:
        st = os.stat(path) if str(path) else None  # follows links as open() will
    except (OSError, ValueError):
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        # A device, FIFO or socket (/dev/stdout on a pipe has no real path): written into.
        if stat.S_ISFIFO(st.st_mode):
            return Path(path)  # opening a FIFO waits for (or, non-blocking, fails without) a reader
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError as e:
            raise ConfigError(f"{name}: cannot write {str(path)!r}: {e.strerror or e}") from None
        os.close(fd)
        return Path(path)
    p = output_file(name, path, create_parents=create_parents)
    target = Path(os.path.realpath(p))
    _probe_dir(name, _nearest_existing(target.parent), p)
    return p


def check_bool(name: str, value) -> bool:
    """``value`` as a ``bool``: ``True``, ``False`` or a numpy bool; integers (even 0 and 1),
    strings and ``None`` are not (a flag given a count is a mistake worth telling)."""
    if isinstance(value, bool):
        return value
    try:
        import numpy as np  # optional here: the contract floor does not need numpy

        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:  # pragma: no cover - numpy is a dependency of lifgate
        pass
    raise ConfigError(f"{name} must be True or False, not {short_repr(value)}")


def check_int_array(name: str, values, lo: int | None = None, hi: int | None = None, *,
                    max_size: int | None = None, ndim: int = 1):
    """``values`` (a sequence or array of integers) as an int64 numpy array of ``ndim``
    dimensions with every value in ``[lo, hi]`` and at most ``max_size`` values.

    Float arrays are accepted only if every value is an integer (``np.zeros(n)``): nothing is
    truncated. Fractions, NaN, bools, strings and ragged sequences are refused; the message
    names the parameter and the legal range and never prints the array.
    """
    import numpy as np  # optional here: the contract floor does not need numpy

    what = f"a {ndim}-D array of integers{_range(lo, hi)}"
    if isinstance(values, (str, bytes)) or values is None:
        raise ConfigError(f"{name} must be {what}, not {short_repr(values)}")
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(f"{name} must be {what}, not {short_repr(values)}") from None
    if arr.dtype.kind == "O" and arr.ndim == ndim and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in arr.flat):
        # Python ints beyond int64: compare exactly, as Python integers.
        big = [int(v) for v in arr.flat]
        for v in big:
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ConfigError(f"{name} must lie{_range(lo, hi)}, not a value of {v}")
        arr = np.array(big, dtype=np.int64).reshape(arr.shape)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) \
            and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2.0 ** 53):
        arr = arr.astype(np.int64)  # integral floats (np.zeros(n)) convert exactly
    elif arr.dtype.kind == "f" and not arr.size:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ConfigError(f"{name} must be {what}, not {short_repr(values)} "
                          f"(dtype {arr.dtype})")
    if arr.ndim != ndim:
        raise ConfigError(f"{name} must be {what}, not an array of shape {arr.shape}")
    if max_size is not None and arr.size > max_size:
        raise ConfigError(f"{name} must have at most {max_size} values, not {arr.size}")
    if arr.size:
        amin, amax = int(arr.min()), int(arr.max())
        if lo is not None and amin < lo:
            raise ConfigError(f"{name} must lie{_range(lo, hi)}, not a value of {amin}")
        if hi is not None and amax > hi:
            raise ConfigError(f"{name} must lie{_range(lo, hi)}, not a value of {amax}")
    return arr.astype(np.int64)


def check_uint(name: str, value, bits: int) -> int:
    """``value`` as an ``int`` in ``[0, 2**bits - 1]`` (a field of ``bits`` bits); the message
    writes the bound as ``2**bits - 1``, not as a rounded float. Rules as :func:`check_int`."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if 0 <= int(value) < (1 << bits):
            return int(value)
        shown = str(int(value))
    else:
        shown = short_repr(value)
    raise ConfigError(f"{name} must be an integer in [0, 2**{bits} - 1], not {shown}")
