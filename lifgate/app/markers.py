"""Generated tables in Markdown files, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.

The benchmarks (``bench/bench_resources.py``, ``bench/bench_network_fpga.py``) write their tables
into ``README.md`` and ``docs/resources.md`` this way, so that a rerun replaces the figures and
leaves the prose around them alone.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_between_markers"]


def write_between_markers(path, text: str, name: str) -> None:
    """Replace what lies between the ``name`` markers in the file ``path`` with ``text``.

    A file without the markers gets them (with ``text``) appended at its end; a missing file is
    created. ``text`` should end with a newline.
    """
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else ""
    if begin not in old or end not in old:
        old += f"\n{begin}\n{end}\n" if old else f"{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")
