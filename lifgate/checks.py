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

import math
import numbers
import os
import stat
import tempfile
from pathlib import Path

from lifgate.config import ConfigError

__all__ = [
    "ConfigError",
    "check_bool",
    "check_choice",
    "check_int",
    "check_int_array",
    "check_uint",
    "check_number",
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


def _range(lo, hi, unit: str = "", lo_open: bool = False) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]{u}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}{u}"
    if hi is not None:
        return f" <= {hi:g}{u}"
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
        st = os.stat(target) if target.exists() else None
        if st is not None and not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"{name}: {str(p)!r} is a directory, not a file")
            with open(target, mode) as f:
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
