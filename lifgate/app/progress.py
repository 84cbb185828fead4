"""Progress on stderr for every long command, the same way everywhere.

On a terminal it is a tqdm bar. When stderr is not a terminal (a log file, CI, a pipe) a bar
would fill the log with carriage-return lines, so it degrades to one plain line every
``interval`` seconds (and one at the end): ``verify icarus: 12/20 config (60 %), 34 s``.
``enabled=False`` (the commands' ``--no-progress``, and ``--json``) makes it silent.

Use it as tqdm is used::

    with progress_bar(total=len(cases), desc="verify", unit="config", enabled=show) as bar:
        for case in cases:
            ...
            bar.update(1)

:func:`ticker` shows a description and the elapsed time while one long call runs (a build).
"""

from __future__ import annotations

import sys
import threading
import time

from tqdm import tqdm

__all__ = ["LineProgress", "progress_bar", "ticker"]


class LineProgress:
    """The non-terminal stand-in for a tqdm bar: occasional plain lines on ``file``."""

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it",
                 file=None, interval: float = 10.0, **_ignored):
        self.iterable = iterable
        self.total = total if total is not None else (
            len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit = desc, unit.strip() or "it"
        self.file = file or sys.stderr
        self.interval = interval
        self.n = 0
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False
        self._printed = None  # the last line printed, so close() does not repeat it

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        if self.total:
            done = f"{self.n:g}/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f} %)"
        elif self.n:
            done = f"{self.n:g} {self.unit}"
        else:
            done = ""
        post = f", {self.postfix}" if self.postfix else ""
        head = f"{done}{post}, " if done else (f"{self.postfix}, " if self.postfix else "")
        return f"{self.desc}: {head}{elapsed:.0f} s"

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k} {v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def _print(self) -> None:
        line = self._line()
        # The elapsed time alone changing is no news.
        key = line.rsplit(",", 1)[0]
        if key != self._printed:
            self._printed = key
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print()


class _Silent(LineProgress):
    def update(self, n: float = 1) -> None:
        self.n += n

    def close(self) -> None:
        self._closed = True


def progress_bar(iterable=None, *, enabled: bool = True, file=None, interval: float = 10.0,
                 **kwargs):
    """A progress bar on ``file`` (stderr): tqdm on a terminal, plain lines elsewhere."""
    file = file or sys.stderr
    if not enabled:
        return _Silent(iterable, file=file, **kwargs)
    isatty = getattr(file, "isatty", None)
    if isatty is not None and isatty():
        kwargs.setdefault("leave", False)
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, file=file, **kwargs)
    return LineProgress(iterable, file=file, interval=interval, **kwargs)


def ticker(work, desc: str, *, enabled: bool = True, file=None, interval: float = 10.0):
    """Run ``work()`` and return its result; meanwhile show ``desc`` and the elapsed time."""
    if not enabled:
        return work()
    bar = progress_bar(total=None, desc=desc, enabled=True, file=file, interval=interval,
                       bar_format="{desc}: {elapsed}", unit="s")
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0 if isinstance(bar, tqdm) else interval):
            if isinstance(bar, tqdm):
                bar.refresh()
            else:
                print(bar._line(), file=bar.file, flush=True)  # a ticker's news is the time

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        return work()
    finally:
        stop.set()
        thread.join()
        bar.close()
