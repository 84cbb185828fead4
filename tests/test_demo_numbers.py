"""Issue 14 for ``lifgate demo``: every path and number is refused before any work starts.

"Before any work" is proven, not timed: the experiments and the simulator build are replaced by
functions that fail the test if they are called, so a refusal that came after them (the old
behaviour: after the 40-55 s Verilator build) cannot pass.
"""

from __future__ import annotations

import os

import pytest

import lifgate.app.demo
from lifgate.app.cli import main


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """cwd = tmp_path; any experiment or build fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(lifgate.app.demo, "lif_experiments", boom)
    monkeypatch.setattr(lifgate.app.demo, "unitless_experiment", boom)
    from lifgate.sim import runner

    monkeypatch.setattr(runner, "build", boom)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(capsys, root, argv, name):
    before = _tree(root)
    code = main(["demo", *argv])
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert code == 2, cap.err
    assert len(lines) == 1 and lines[0].startswith(f"lifgate demo: error: {name}"), cap.err
    assert cap.out == ""
    assert _tree(root) == before  # nothing created: no build/, no plots folder
    assert not (root / "build").exists() and not (root / "lifgate-demo").exists()


def test_out_is_an_existing_file(no_work, capsys):
    (no_work / "afile").write_text("keep")
    _refused(capsys, no_work, ["--out", "afile"], "--out")
    assert (no_work / "afile").read_text() == "keep"


def test_out_is_a_device(no_work, capsys):
    _refused(capsys, no_work, ["--out", os.devnull], "--out")


def test_out_below_a_file(no_work, capsys):
    (no_work / "afile").write_text("keep")
    _refused(capsys, no_work, ["--out", "afile/plots"], "--out")


def test_out_holds_a_folder_where_a_plot_goes(no_work, capsys):
    (no_work / "o" / "lif_rate.png").mkdir(parents=True)
    _refused(capsys, no_work, ["--out", "o"], "--out")


def test_out_is_a_dangling_link(no_work, capsys):
    (no_work / "o").symlink_to(no_work / "missing")
    _refused(capsys, no_work, ["--out", "o"], "--out")


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_build_dir_is_a_file(no_work, capsys, sim):
    (no_work / "b").write_text("keep")
    _refused(capsys, no_work, ["--sim", sim, "--build-dir", "b"], "--build-dir")


def test_build_dir_below_a_file(no_work, capsys):
    (no_work / "b").write_text("keep")
    _refused(capsys, no_work, ["--build-dir", "b/demo"], "--build-dir")


@pytest.mark.parametrize("value", ["0", "-1e5", "1e5", "nan", "inf", "2000.5"])
def test_duration_out_of_range(no_work, capsys, value):
    _refused(capsys, no_work, ["--duration", value],
             "--duration must be a finite number in [1, 2000] ms")


def test_default_outputs_checked_too(no_work, capsys):
    (no_work / "lifgate-demo").write_text("keep")
    before = _tree(no_work)
    assert main(["demo"]) == 2
    assert "--out: 'lifgate-demo' exists and is not a directory" in capsys.readouterr().err
    assert _tree(no_work) == before


def test_library_checks_paths_before_work(no_work):
    (no_work / "afile").write_text("keep")
    from lifgate.config import ConfigError

    with pytest.raises(ConfigError, match="out"):
        lifgate.app.demo.run_demo(no_work / "afile", sim="amaranth")
    with pytest.raises(ConfigError, match="build_dir"):
        lifgate.app.demo.run_demo(no_work / "o", sim="verilator", build_dir=no_work / "afile")
    with pytest.raises(ConfigError, match="duration"):
        lifgate.app.demo.run_demo(no_work / "o", sim="amaranth", duration=0.5)
