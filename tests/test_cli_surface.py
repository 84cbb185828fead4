"""The commands' common surface (issue 14): documented commands that work, --json with ``ok``,
--no-progress, progress without carriage returns in logs, one default of parameter groups,
outputs written without replacing links or devices, ``generate --config`` saying what it used.

Each test here failed on the code before issue 14 (see the report of the change).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lifgate.app.cli import DEFAULT_GROUPS, build_parser, main

LONG_COMMANDS = {
    "verify": [],
    "bench": [],
    "mutants": [],
    "resources": [],
    "build": ["--board", "icebreaker"],
    "digits": [],
    "import-nir": ["g.nir"],
}


@pytest.mark.parametrize("command", sorted(LONG_COMMANDS))
def test_every_long_command_takes_json_and_no_progress(command):
    args = build_parser().parse_args([command, *LONG_COMMANDS[command], "--json",
                                      "--no-progress"])
    assert args.json is True and args.no_progress is True


def test_generate_ice40_multiplier_instantiates_sb_mac16_and_lints(tmp_path, capsys):
    """README: ``lifgate generate ... --multiplier ice40`` (was: invalid choice)."""
    from lifgate.hdl.dsp import simulation_models
    from lifgate.hdl.verilog import lint

    out = tmp_path / "up5k.v"
    assert main(["generate", "--neurons", "16", "--lanes", "2", "--pipeline", "compact",
                 "--multiplier", "ice40", "-o", str(out)]) == 0
    text = out.read_text()
    assert "//   multiplier  = ice40" in text
    # The noise multiply-add of each of the 2 lanes (the MULT leak stays a fabric '*', which
    # Yosys maps onto an SB_MAC16 by itself).
    assert text.count("SB_MAC16 #(") == 2
    models = tmp_path / "primitives.v"
    models.write_text(simulation_models(text))
    lint(out, extra_args=[str(models)])


def test_generate_default_groups_is_the_common_default(tmp_path, capsys):
    out = tmp_path / "a.v"
    assert main(["generate", "-o", str(out)]) == 0
    assert f"//   groups      = {DEFAULT_GROUPS}\n" in out.read_text()
    assert DEFAULT_GROUPS == 1
    for command in ("verify", "build", "resources", "generate"):
        sub = build_parser().command_parsers[command]
        helps = [a.help for a in sub._actions if "--groups" in a.option_strings]
        assert helps and "default 1" in helps[0], command


def test_generate_config_says_what_it_used(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[shape]\nneurons = 16\nlanes = 2\ngroups = 2\n\n"
                   "[[params]]\nv_th = 100\n\n[noise]\ngain = 3\n")
    out = tmp_path / "a.v"
    assert main(["generate", "--config", str(cfg), "--width", "12", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "used [shape]" in err
    assert "not used: [params] and [noise]" in err and "not part of the Verilog" in err
    assert "v_width=12" in err
    text = out.read_text()
    assert "//   neurons     = 16\n" in text and "//   v_width     = 12\n" in text


def test_generate_writes_through_a_symlink(tmp_path, capsys):
    """``-o LINK`` changes the link's target and keeps the link (was: link replaced)."""
    target = tmp_path / "real.v"
    target.write_text("old\n")
    link = tmp_path / "link.v"
    link.symlink_to(target)
    assert main(["generate", "--neurons", "8", "--lanes", "2", "-o", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "module lif_array(" in target.read_text()


def test_generate_writes_into_a_fifo(tmp_path, capsys):
    """A FIFO is written into, not replaced by a regular file (a reader gets the Verilog)."""
    import threading

    fifo = tmp_path / "pipe.v"
    os.mkfifo(fifo)
    got = []
    # A daemon: if the FIFO is never opened for writing, the reader must not keep pytest alive.
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        assert main(["generate", "--neurons", "8", "--lanes", "2", "-o", str(fifo)]) == 0
    finally:
        reader.join(timeout=30)
    assert fifo.is_fifo() and got and b"module lif_array(" in got[0]


def test_verify_progress_json_and_no_progress(capsys):
    """Plain progress lines when stderr is not a terminal (no carriage returns), ``ok`` and
    ``updates_per_s`` in --json, silence with --no-progress, one default of groups."""
    base = ["verify", "--sim", "amaranth", "--neurons", "4", "--lanes", "2", "--steps", "4",
            "--configs", "1", "--no-directed", "--seed", "3"]
    assert main([*base, "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["ok"] is True and out["updates_per_s"] > 0 and "updates_per_second" not in out
    assert out["shape"]["groups"] == DEFAULT_GROUPS and "--groups 1" in out["repro"]
    assert "\r" not in cap.err and "verify amaranth: 1/1 config" in cap.err
    assert main([*base, "--json", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def _graph_file(path):
    import nir  # a dev dependency: missing, these tests fail rather than skip

    rng = np.random.default_rng(0)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([6])}),
        "fc1": nir.Affine(weight=rng.normal(0, 1, (4, 6)), bias=rng.normal(0, 0.1, 4)),
        "lif1": nir.LIF(tau=np.full(4, 0.02), r=np.ones(4), v_leak=np.full(4, 0.1),
                        v_threshold=np.ones(4), v_reset=np.full(4, -0.2)),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("in", "fc1"), ("fc1", "lif1"), ("lif1", "out")], metadata={"dt": 1e-3})
    nir.write(path, graph)
    return path


def test_import_nir_rtl_without_steps_runs_32_steps(tmp_path, capsys, monkeypatch):
    """README: ``lifgate import-nir GRAPH.nir --rtl`` (was: "'--rtl' needs '--steps T'").

    The RTL run is replaced by the golden model here (the real one is
    ``test_nir.py::test_exported_graph_runs_bit_exact_on_rtl``); this checks the command."""
    from lifgate.golden.synapse import simulate_network
    from lifgate.sim import tb_network

    calls = []

    def fake_rtl(net, samples, *, build_dir, **kw):
        calls.append([steps for _, steps in samples])
        return [simulate_network(net, steps, x) for x, steps in samples]

    monkeypatch.setattr(tb_network, "run_network", fake_rtl)
    g = _graph_file(tmp_path / "g.nir")
    assert main(["import-nir", str(g), "--rtl", "--json", "--no-progress",
                 "--build-dir", str(tmp_path / "b")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert calls == [[32]] and out["steps"] == 32
    assert out["ok"] is True and out["rtl_bit_exact"] is True


def test_import_nir_names_the_node_with_mismatched_shapes(tmp_path, capsys):
    import h5py

    g = _graph_file(tmp_path / "g.nir")
    with h5py.File(g, "r+") as f:
        del f["node/nodes/lif1/v_threshold"]
        f["node/nodes/lif1/v_threshold"] = np.ones(5)
    assert main(["import-nir", str(g)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "node 'lif1'" in err and "v_threshold (5,)" in err and "tau (4,)" in err


class _Rep:
    def __init__(self, met):
        self.met = met

    timing_met = property(lambda self: self.met)
    fmax_mhz = property(lambda self: 40.0 if self.met else 20.0)
    clock_mhz = 30.0
    bitstream = "top.bin"

    def to_dict(self):
        return {"board": "icebreaker", "bitstream": "top.bin", "fmax_mhz": self.fmax_mhz,
                "clock_mhz": 30.0, "timing_met": self.met, "critical_paths": {},
                "utilization": {"logic_cells": {"used": 1, "available": 5280}}}


@pytest.mark.parametrize("met", [True, False])
def test_build_json_has_ok_and_stages_reach_the_callback(tmp_path, capsys, monkeypatch, met):
    from lifgate.boards import toolchain

    seen = {}

    def fake_build(board, top, out, *, seed, pack, on_stage=None, timing_allow_fail=True):
        seen["on_stage"] = on_stage
        for stage in ("synthesis", "place", "route", "pack"):
            on_stage(stage)
        return _Rep(met)

    monkeypatch.setattr(toolchain, "run_build", fake_build)
    code = main(["build", "--board", "icebreaker", "--neurons", "64", "--json",
                 "--build-dir", str(tmp_path / "b")])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["ok"] is met and code == (0 if met else 1)
    for stage in ("synthesis", "place", "route", "pack"):
        assert re.search(rf"^build icebreaker: {stage} at \d+ s", cap.err, re.M), cap.err
    assert "\r" not in cap.err


def test_build_toolchain_failure_is_json_with_ok_false(tmp_path, capsys, monkeypatch):
    from lifgate.boards import toolchain

    def failing(*a, **k):
        raise toolchain.ToolchainError("nextpnr failed (exit 1)")

    monkeypatch.setattr(toolchain, "run_build", failing)
    code = main(["build", "--board", "icebreaker", "--neurons", "64", "--json",
                 "--no-progress", "--build-dir", str(tmp_path / "b")])
    cap = capsys.readouterr()
    assert code == 1 and json.loads(cap.out) == {"ok": False, "board": "icebreaker",
                                                 "error": "nextpnr failed (exit 1)"}


def test_build_stage_watch_reads_the_tools_files(tmp_path):
    from lifgate.boards.toolchain import _StageWatch

    w = _StageWatch(tmp_path, "top", print)
    assert w._stage() == "synthesis"
    (tmp_path / "top.tim").write_text("Info: Placed 10 cells\n")
    assert w._stage() == "place"
    (tmp_path / "top.tim").write_text("Info: Placed 10 cells\nInfo: Routing..\n")
    assert w._stage() == "route"
    (tmp_path / "top.asc").write_text("")
    assert w._stage() == "pack"


def test_resources_json_is_one_object_with_ok(tmp_path, capsys, monkeypatch):
    from lifgate.boards import resources

    monkeypatch.setattr(resources, "measure", lambda *a, **k: _Rep(True))
    assert main(["resources", "--board", "icebreaker", "--neurons", "64", "--lanes", "4",
                 "--json", "--no-progress", "--build-dir", str(tmp_path / "b")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and [r["board"] for r in out["boards"]] == ["icebreaker"]


def test_digits_refuses_a_bad_board_before_training(capsys, monkeypatch):
    """Was: ``digits --board foo`` failed after about 67 s of training."""
    from lifgate.compilers import convert

    def no_training(*a, **k):
        raise AssertionError("trained before checking --board")

    monkeypatch.setattr(convert, "train_ann", no_training)
    assert main(["digits", "--board", "foo"]) == 2
    assert main(["digits", "--seed", "-1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("lifgate digits: error: --board:")
    assert err[1] == "lifgate digits: error: --seed must be an integer in [0, 4294967295], not -1"


def test_verify_refuses_unwritable_waves_before_building(tmp_path, capsys, monkeypatch):
    """Was: ``verify --waves`` on an unwritable path failed after a 40-55 s build."""
    from lifgate.sim import runner

    def no_build(*a, **k):
        raise AssertionError("built before checking --waves")

    monkeypatch.setattr(runner, "build", no_build)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.chdir(tmp_path)
    for waves in (str(blocker / "w"), "/proc/lifgate-waves"):
        assert main(["verify", "--sim", "verilator", "--waves", waves]) == 2
        assert "--waves" in capsys.readouterr().err
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["file"]  # no build/


@pytest.mark.parametrize("argv", [["verify", "--neurons", "0"], ["verify", "--neurons", "-4"]])
def test_verify_bad_neurons_is_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--neurons must be an integer in [1, 1048576]" in err


def test_generate_to_stdout_on_a_pipe(tmp_path):
    """``-o /dev/stdout | ...``: the Verilog goes down the pipe, the summary to stderr (a pipe
    has no real path: the output check and the write follow the link as open() does).

    A private link to ``/proc/self/fd/1`` stands in for ``/dev/stdout``: code that replaced the
    link (as ``generate`` did before issue 14) then damages only the test's folder."""
    import subprocess
    import sys

    link = tmp_path / "stdout.v"
    link.symlink_to("/proc/self/fd/1")
    r = subprocess.run([sys.executable, "-m", "lifgate.app.cli", "generate", "--neurons", "8",
                        "--lanes", "2", "--groups", "2", "-o", str(link)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "module lif_array(" in r.stdout and r.stdout.rstrip().endswith("endmodule")
    assert r.stderr.startswith(f"wrote {link}: lif_array, 8 neurons")
    assert link.is_symlink() and [p.name for p in tmp_path.iterdir()] == ["stdout.v"]


@pytest.mark.parametrize("argv,absent", [
    (["--help"], ["lifgate.app.commands.demo", "matplotlib", "cocotb", "amaranth"]),
    (["quantize", "--help"], ["lifgate.sim", "lifgate.hdl", "matplotlib", "cocotb"]),
    (["generate", "--help"], ["lifgate.sim", "lifgate.boards", "matplotlib", "cocotb"]),
])
def test_a_command_imports_only_what_it_needs(argv, absent):
    """main imports only the module of the command it runs (the others are stubs with their
    summary), and matplotlib only when a figure is drawn: imports sit at the top of every
    module (issue 15), so this is what keeps 'lifgate --help' quick."""
    code = ("import sys; from lifgate.app.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {absent!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


class _FmaxRep(_Rep):
    def __init__(self, fmax):
        super().__init__(fmax >= 30.0)
        self.fmax = fmax

    fmax_mhz = property(lambda self: self.fmax)


@pytest.mark.parametrize("fmax, seeds, want_seeds, code", [
    ({5: 20.0, 6: 31.0}, ["--seeds", "3"], [5, 6], 0),  # the first seed that meets is kept
    ({5: 20.0, 6: 21.0, 7: 22.0}, ["--seeds", "3"], [5, 6, 7], 1),  # none meets: exit 1
    ({5: 20.0}, [], [5], 1),  # the array build's default: one seed
])
def test_build_seeds_tries_seeds_until_timing_is_met(tmp_path, capsys, monkeypatch, fmax,
                                                     seeds, want_seeds, code):
    """``--seeds N``: place and route with SEED, SEED + 1, ... until a build meets timing;
    the JSON names the seed kept and every seed tried, stderr says why it tried again."""
    from lifgate.boards import toolchain

    calls = []

    def fake_build(board, top, out, *, seed, pack, on_stage=None, timing_allow_fail=True):
        calls.append(seed)
        return _FmaxRep(fmax[seed])

    monkeypatch.setattr(toolchain, "run_build", fake_build)
    got = main(["build", "--board", "icebreaker", "--neurons", "64", "--json", "--seed", "5",
                *seeds, "--build-dir", str(tmp_path / "b")])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert calls == want_seeds and got == code and out["ok"] is (code == 0)
    assert out["seed"] == want_seeds[-1]
    assert out["seeds_tried"] == [{"seed": s, "fmax_mhz": fmax[s], "timing_met": fmax[s] >= 30}
                                  for s in want_seeds]
    for s in want_seeds[:-1]:
        assert f"timing not met at seed {s} (Fmax {fmax[s]:.2f} MHz < 30 MHz): again with " \
               f"seed {s + 1}" in cap.err, cap.err
    if code:
        assert "more --seeds" in cap.err


def test_network_build_default_seeds(tmp_path, capsys, monkeypatch):
    """A network build on the ULX3S tries up to NETWORK_SEEDS seeds by default (one on the
    iCEBreaker); --seeds overrides; a bad --seeds is one line, exit 2, before any work."""
    from lifgate.boards import toolchain

    from lifgate.app.netbuild import NETWORK_SEEDS

    calls = []

    def fake_build(board, top, out, *, seed, pack, on_stage=None, timing_allow_fail=True,
                   nextpnr_extra=""):
        calls.append((board.name, seed))
        return _Rep(False)

    monkeypatch.setattr(toolchain, "run_build", fake_build)
    for name, extra, n in (("ulx3s-85f", [], NETWORK_SEEDS["ulx3s-85f"]),
                           ("icebreaker", [], NETWORK_SEEDS["icebreaker"]),
                           ("ulx3s-85f", ["--seeds", "2"], 2)):
        calls.clear()
        code = main(["build", "--network", "digits", "--board", name, "--json",
                     "--no-progress", *extra, "--build-dir", str(tmp_path / name)])
        capsys.readouterr()
        assert code == 1 and calls == [(name, 1 + k) for k in range(n)]
    assert NETWORK_SEEDS["ulx3s-85f"] > 1
    for bad in (["--seeds", "0"], ["--seeds", "17"], ["--seed", str(2**31 - 1), "--seeds", "2"]):
        code = main(["build", "--network", "digits", "--board", "ulx3s-85f", *bad,
                     "--build-dir", str(tmp_path / "never")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "--seed" in err[0], err
        assert not (tmp_path / "never").exists()
