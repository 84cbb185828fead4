"""``lifgate.checks``: the one validation layer, and ``write_output``'s promise not to clobber.

Each case here was a bug once (issue 14): ``generate -o /dev/full`` turned the device node into
a regular file with exit 0, ``-o link`` replaced the symbolic link instead of writing through
it, and a numpy array ended up whole in an error message.
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifgate.app.progress import progress_bar
from lifgate.checks import (
    check_choice,
    check_int,
    check_number,
    input_file,
    output_dir,
    output_file,
    short_repr,
    write_output,
)
from lifgate.config import ConfigError


def test_check_int_accepts_numpy_and_refuses_floats_and_bools():
    assert check_int("n", np.int64(5), 0, 9) == 5
    assert type(check_int("n", np.int64(5), 0, 9)) is int
    for bad in (5.0, np.float64(3.0), True, "5", None):
        with pytest.raises(ConfigError, match=r"^n must be an integer in \[0, 9\]"):
            check_int("n", bad, 0, 9)


@given(st.integers(), st.integers(-100, 100), st.integers(-100, 100))
def test_check_int_range(value, lo, hi):
    if lo <= value <= hi:
        assert check_int("x", value, lo, hi) == value
    else:
        with pytest.raises(ConfigError) as e:
            check_int("x", value, lo, hi)
        assert "\n" not in str(e.value) and str(e.value).startswith("x must be")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_number_refuses_non_finite_and_out_of_range(value):
    if math.isfinite(value) and 0 < value <= 10:
        assert check_number("tau_m", value, 0, 10, unit="ms", lo_open=True) == value
    else:
        with pytest.raises(ConfigError, match=r"^tau_m must be a finite number in \(0, 10\] ms"):
            check_number("tau_m", value, 0, 10, unit="ms", lo_open=True)


def test_messages_never_hold_a_whole_array():
    a = np.linspace(0, 1, 10_000)
    with pytest.raises(ConfigError) as e:
        check_number("I", a, 0, 1)
    assert len(str(e.value)) < 120 and "\n" not in str(e.value)
    assert "shape (10000,)" in short_repr(a)
    assert short_repr(np.array([2.5])) == "2.5"
    assert check_choice("board", "icebreaker", ["icebreaker", "ulx3s-85f"]) == "icebreaker"
    with pytest.raises(ConfigError, match="board must be one of icebreaker, ulx3s-85f, not 'x'"):
        check_choice("board", "x", ["icebreaker", "ulx3s-85f"])


def test_input_file(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text("x")
    assert input_file("--config", f) == f
    with pytest.raises(ConfigError, match="--config: .* does not exist"):
        input_file("--config", tmp_path / "missing")
    with pytest.raises(ConfigError, match="--config: .* is a directory"):
        input_file("--config", tmp_path)


def test_output_file_and_dir_checks_create_nothing(tmp_path):
    before = sorted(tmp_path.rglob("*"))
    assert output_file("-o", tmp_path / "new.v") == tmp_path / "new.v"
    with pytest.raises(ConfigError, match="-o: folder .* does not exist"):
        output_file("-o", tmp_path / "no" / "such" / "x.v")
    output_file("-o", tmp_path / "no" / "such" / "x.v", create_parents=True)
    with pytest.raises(ConfigError, match="-o: .* is a directory"):
        output_file("-o", tmp_path)
    output_dir("--out", tmp_path / "a" / "b")
    (tmp_path / "file").write_text("keep")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="--out: .* exists and is not a directory"):
        output_dir("--out", tmp_path / "file")
    # A path below a regular file cannot be created, even by root.
    with pytest.raises(ConfigError, match="--out: .* is not a directory"):
        output_dir("--out", tmp_path / "file" / "sub")
    with pytest.raises(ConfigError, match="-o: .*"):
        output_file("-o", tmp_path / "file" / "x.v", create_parents=True)
    assert sorted(tmp_path.rglob("*")) == before
    assert (tmp_path / "file").read_text() == "keep"


def test_write_output_replaces_a_regular_file_and_keeps_its_mode(tmp_path):
    f = tmp_path / "out.v"
    f.write_text("old")
    os.chmod(f, 0o640)
    write_output("-o", f, "new")
    assert f.read_text() == "new"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.v"]  # no temporary file left
    write_output("-o", tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_write_output_writes_through_a_symlink(tmp_path):
    target = tmp_path / "real.v"
    target.write_text("old")
    link = tmp_path / "link.v"
    link.symlink_to(target)
    write_output("-o", link, "new")
    assert link.is_symlink(), "the link was replaced by a regular file"
    assert target.read_text() == "new"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="this system has no /dev/full")
def test_write_output_into_a_device_never_replaces_it():
    with pytest.raises(ConfigError, match="-o: cannot write '/dev/full': No space left"):
        write_output("-o", "/dev/full", "x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    write_output("-o", "/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_write_output_into_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_output("-o", fifo, "through the pipe")
        assert os.read(r, 100) == b"through the pipe"
    finally:
        os.close(r)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_write_output_refuses_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        write_output("-o", tmp_path, "x")


def test_line_progress_prints_no_carriage_returns_and_no_repeats():
    out = io.StringIO()  # not a terminal
    with progress_bar(total=3, desc="verify", unit="config", file=out, interval=0) as bar:
        for _ in range(3):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.rsplit(",", 1)[0] for line in lines] == [
        "verify: 1/3 config (33 %)", "verify: 2/3 config (67 %)", "verify: 3/3 config (100 %)"]
    silent = io.StringIO()
    with progress_bar(total=3, file=silent, enabled=False) as bar:
        bar.update(3)
    assert silent.getvalue() == ""
