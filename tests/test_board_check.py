"""``lifgate board-check SPEC`` (issue 16, Build item 6): the first-flash check.

* On ``model`` and ``sim:icarus`` every check passes, and the runs it compares exercise the
  array (spikes in some neurons, not all; with and without noise).
* The comparison can fail: a board whose spikes or membranes differ from the golden model gets
  a ``FAIL`` naming the step and the neuron, exit code 1.
* A serial port that cannot be opened is one line with what to do, exit code 2; a port that
  opens but never answers (a pseudo-terminal with nobody behind it: the wrong port, the wrong
  baud, no bitstream) is a failure verdict with those three hints, exit code 1.
"""

from __future__ import annotations

import json
import os
import select
import threading

import pytest
from lifgate.boards.host import open_board
from lifgate.boards.protocol import Features
from lifgate.golden.fixed import simulate
from test_boards_cli import run_cli

from lifgate.app.commands import board_check
from lifgate.app.commands.board_check import (
    DEFAULT_SHAPE,
    HINT_BAUD,
    HINT_BITSTREAM,
    HINT_PORT,
    check_currents,
    check_params,
    noise_config,
)
from lifgate.config import ArrayShape, Config, NoiseParams

NAMES = ["version", "currents", "noise", "errors"]


def test_model_passes(capsys):
    code, out, err = run_cli(capsys, "board-check", "model", "--json")
    assert code == 0, out
    d = json.loads(out)
    assert d["ok"] is True and [c["name"] for c in d["checks"]] == NAMES
    assert all(c["ok"] for c in d["checks"]) and d["hints"] == []
    assert d["features"]["neurons"] == DEFAULT_SHAPE["neurons"]
    assert "board-check: currents" in err  # progress on stderr, stdout the JSON alone


def test_the_runs_exercise_the_array():
    """Against the golden model directly: the current ramp makes some neurons fire and not
    others, every parameter group differs, and the noise run fires too (default shape)."""
    shape = ArrayShape(**DEFAULT_SHAPE)
    params = check_params(shape)
    assert len(set(params)) == min(4, shape.groups)
    assert {p.leak_mode for p in params} == set(shape.leak_modes)
    ref = simulate(Config(shape=shape, params=params, noise=NoiseParams(seed=7)), 24,
                   check_currents(shape))
    fired = ref.spikes.any(axis=0)
    assert 0 < fired.sum() < shape.neurons
    noise = simulate(noise_config(shape, params), 24)
    assert noise.spikes.sum() > 0
    for g in range(shape.groups):  # every group's parameters are valid for the shape
        params[g].check(shape)


def test_human_report_fits_one_screen(capsys):
    code, out, _ = run_cli(capsys, "board-check", "model", "--no-progress", "--steps", "8")
    lines = out.splitlines()
    assert code == 0 and len(lines) <= 24
    assert lines[0] == "board-check model"
    assert [ln.split()[1] for ln in lines[1:5]] == NAMES and all(
        ln.split()[0] == "ok" for ln in lines[1:5])
    assert lines[5].startswith("verdict: the board works")
    assert "LEDs" in lines[-1]


@pytest.mark.parametrize("what", ["spike", "membrane"])
def test_a_board_that_differs_fails(capsys, monkeypatch, what):
    """A stand-in golden model one bit off (as a board with a fault would be): the check
    fails, names the step and the neuron, and says what to try."""
    real = board_check.simulate

    def off_by_one(config, steps, currents=None):
        ref = real(config, steps, currents)
        if what == "spike":
            ref.spikes[5, 10] = ~ref.spikes[5, 10]
        else:
            ref.v[1, 3] += 1
        return ref

    monkeypatch.setattr(board_check, "simulate", off_by_one)
    code, out, _ = run_cli(capsys, "board-check", "model", "--json", "--no-progress")
    d = json.loads(out)
    assert code == 1 and d["ok"] is False
    where = "step 5, neuron 10" if what == "spike" else "step 1, neuron 3"
    failed = [c for c in d["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["currents", "noise"]
    assert all(where in c["detail"] for c in failed), failed
    assert d["verdict"] == "FAILED: currents, noise" and d["hints"]


@pytest.mark.icarus
def test_sim_icarus_passes(capsys, tmp_path):
    """The board top's gateware under Icarus, through the UART, checked like a real board."""
    code, out, err = run_cli(capsys, "board-check", "sim:icarus", "--neurons", "16",
                             "--groups", "2", "--steps", "8", "--build-dir", str(tmp_path),
                             "--json")
    d = json.loads(out)
    assert code == 0 and d["ok"] is True, (out, err)
    assert [c["name"] for c in d["checks"]] == NAMES
    assert "spikes and 32 membranes equal to the golden model" in d["checks"][1]["detail"]


def test_port_that_cannot_be_opened(capsys, tmp_path):
    code, out, err = run_cli(capsys, "board-check", f"serial:{tmp_path / 'ttyUSB9'}", "--json")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifgate board-check: error: cannot open "
                                                   "serial port")
    assert "ls -l /dev/serial/by-id/" in lines[0]


def test_port_that_never_answers(capsys):
    """A pseudo-terminal stands in for the wrong port (or baud, or no bitstream)."""
    master, slave = os.openpty()
    try:
        code, out, _ = run_cli(capsys, "board-check", f"serial:{os.ttyname(slave)}",
                               "--timeout", "0.3", "--json")
    finally:
        os.close(master)
        os.close(slave)
    d = json.loads(out)
    assert code == 1 and d["ok"] is False and d["features"] is None
    assert d["checks"] == [{"name": "version", "ok": False,
                            "detail": "no answer to VERSION: no reply from the board within "
                            "0.3 s"}]
    assert d["hints"][:3] == [HINT_PORT, HINT_BAUD, HINT_BITSTREAM]


@pytest.mark.parametrize("argv, needle", [
    (["serial:/dev/ttyUSB1", "--neurons", "64"], "--neurons: only for model and sim:"),
    (["model", "--steps", "3"], "--steps"),
    (["model", "--lanes", "3", "--neurons", "12", "--groups", "1"], "power of two"),
    (["model", "--timeout", "0"], "--timeout"),
    (["sim:questa"], "simulator must be verilator or icarus"),
    (["usb:1"], "board must be 'model'"),
])
def test_bad_arguments(capsys, argv, needle):
    code, out, err = run_cli(capsys, "board-check", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err, err



def test_port_that_answers_garbage(capsys):
    """Bytes at a wrong baud: something frame-like with a bad CRC comes back. The verdict puts
    the baud first."""
    master, slave = os.openpty()
    stop = threading.Event()

    def babble():
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 4096)
                os.write(master, bytes([0xA5, 0x81, 0x02, 0x00, 0x00, 0x17, 0x2A, 0x00, 0x00]))

    thread = threading.Thread(target=babble, daemon=True)
    thread.start()
    try:
        code, out, _ = run_cli(capsys, "board-check", f"serial:{os.ttyname(slave)}",
                               "--timeout", "1", "--json")
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)
    d = json.loads(out)
    assert code == 1 and d["ok"] is False
    assert d["checks"][0]["detail"].startswith("no valid answer to VERSION: damaged reply")
    assert d["hints"][:3] == [HINT_BAUD, HINT_PORT, HINT_BITSTREAM]


def test_a_board_without_membrane_or_noise():
    """A board built without membrane readback and noise: spikes only, no noise run."""
    shape = ArrayShape(neurons=32, lanes=4, groups=2, leak_modes=("shift", "const"))
    features = Features(shape, membrane=False, noise=False)
    with open_board("model", features=features) as board:
        checks = board_check.run_checks(board, 12, lambda text: None)
    assert [(c.name, c.ok) for c in checks] == [("currents", True), ("errors", True)]
    assert "spikes equal to the golden model" in checks[0].detail
    assert "membranes" not in checks[0].detail


def test_step_counter_that_wraps():
    """An 8-bit step label and counter wrap within a 300-step run: still a pass."""
    shape = ArrayShape(neurons=16, lanes=4, groups=1, step_width=8)
    with open_board("model", features=Features(shape)) as board:
        checks = board_check.run_checks(board, 300, lambda text: None)
    assert all(c.ok for c in checks), checks
