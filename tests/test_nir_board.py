"""Imported NIR graphs on a network board (issues 17/18): ``lifgate import-nir F --board SPEC``.

The committed framework exports (``examples/nir_fixtures``) are loaded over the simulated
network board's host link and run on its gateware; every layer's spikes and membranes must
equal the golden model's. snnTorch's default subtract reset (SUBTRACT_AFTER_LEAK) reaches the
board through the network's shapes (the ``VERSION`` reply's modes byte). What no board carries
(multi-spike output) and a board of another shape are refused in one line
(exit 2), the latter naming what differs and the ``lifgate build`` command that fits.
"""

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nir")

from lifgate.boards.nethost import open_network_board  # noqa: E402
from lifgate.boards.netproto import (  # noqa: E402
    NetFeatures,
    net_version_payload,
    parse_net_version,
)

from lifgate.app import netboard  # noqa: E402
from lifgate.app.cli import main  # noqa: E402
from lifgate.compilers.nir_import import import_nir  # noqa: E402
from lifgate.config import ConfigError, ResetMode  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "examples" / "nir_fixtures"
FIXTURES = json.loads((HERE / "fixtures.json").read_text())
#: Fixtures that no network board carries, and why (docs/networks.md, "On a board").
OFF_BOARD = {"sinabs_iaf_multispike": "spike_max"}
ON_BOARD = sorted(n for n, m in FIXTURES.items()
                  if m["expect"] == "matches" and n not in OFF_BOARD)
SUBTRACT = "snntorch_leaky_subtract"
#: Run on the Verilator board in the default suite: snnTorch's subtract fixture (the one with
#: its own reset mode in the gateware); the others (their boards are the default-mode 16-12-6
#: and two more builds, about a minute each on a loaded 2-core machine) with LIFGATE_SLOW, to
#: keep the suite under 15 minutes. Feed-forward, recurrent and skip networks on the simulated
#: board are compared byte for byte in tests/test_boards_network.py and tests/test_skip.py.
QUICK = (SUBTRACT,)
SLOW = pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"), reason="set LIFGATE_SLOW=1 to run")


def run_cli(name, *extra, capsys):
    code = main(["import-nir", str(HERE / f"{name}.nir"), *FIXTURES[name]["options"],
                 "--reference", str(HERE / f"{name}.npz"), "--tolerance", "100", "--json",
                 "--no-progress", *extra])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code != 2 else None), out.err


def imported(name):
    """The fixture's network, imported with its options (as the CLI does)."""
    opts = FIXTURES[name]["options"]
    kw = dict(zip(opts[::2], opts[1::2], strict=True))
    return import_nir(HERE / f"{name}.nir", dt=float(kw["--dt"]),
                      reset=kw.get("--reset", "value"), fire=kw.get("--fire", "gt"),
                      target=float(kw["--warn-error"]) / 100,
                      w_width=int(kw["--w-width"]) if "--w-width" in kw else None).network


def assert_board_exact(out, steps):
    assert out["board_bit_exact"] is True and out["ok"] is True
    assert out["board_weights_read_back"] is True and out["board_membrane"] is True
    assert out["board_spikes_per_layer"] == out["golden_spikes_per_layer"]
    assert sum(out["golden_spikes_per_layer"]) > 0  # an LI readout layer has no spikes
    assert out["steps"] == steps


def test_snntorch_subtract_needs_subtract_after_leak_on_the_board():
    """The subtract fixture's board builds SUBTRACT_AFTER_LEAK, and its VERSION reply says so
    (the host parses it back); the other fixtures' boards do not build it."""
    f = NetFeatures.for_network(imported(SUBTRACT))
    assert all(ResetMode.SUBTRACT_AFTER_LEAK in s.reset_modes for s in f.shapes)
    assert parse_net_version(net_version_payload(f)) == f
    g = NetFeatures.for_network(imported("norse_lifbox"))
    assert all(ResetMode.SUBTRACT_AFTER_LEAK not in s.reset_modes for s in g.shapes)


@pytest.mark.icarus
def test_subtract_fixture_on_icarus_board(capsys, tmp_path):
    """snnTorch's subtract reset on the simulated network board (Icarus), bit-exact in every
    layer (8 steps: Icarus moves a UART byte in about 10 ms)."""
    code, out, _ = run_cli(SUBTRACT, "--steps", "8", "--board", "sim:icarus", "--build-dir",
                           str(tmp_path), capsys=capsys)
    assert code == 0
    assert_board_exact(out, 8)
    assert out["board_lanes"] == [layer["config"]["shape"]["lanes"] for layer in out["layers"]]


@pytest.mark.verilator
@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=SLOW)
                                  for n in ON_BOARD])
def test_fixture_on_verilator_board(name, capsys, tmp_path_factory):
    """Every framework export a board carries, on the simulated network board (Verilator):
    every layer's spikes and membranes equal the golden model's (the builds are shared by
    fixtures of the same shape through the session build cache)."""
    build = tmp_path_factory.getbasetemp() / "nir-board-build"
    code, out, _ = run_cli(name, "--steps", "40", "--board", "sim:verilator", "--build-dir",
                           str(build), capsys=capsys)
    assert code == 0
    assert_board_exact(out, 40)


@pytest.mark.parametrize("name", sorted(OFF_BOARD))
def test_off_board_fixtures_refused(name, capsys, tmp_path):
    """Recurrent layers and multi-spike output: one line, exit 2, nothing built."""
    build = tmp_path / "b"
    code, _, err = run_cli(name, "--board", "sim:verilator", "--build-dir", str(build),
                           capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "a network board cannot run this network" in err and OFF_BOARD[name] in err
    assert not build.exists()


def _board_of(name, monkeypatch, *, lanes=None, membrane=True):
    """Make ``--board`` open a model board built for fixture ``name`` (a stand-in for a
    serial board that reports its own VERSION), with ``lanes`` per layer."""
    net = imported(name)
    f = NetFeatures.for_network(net, membrane=membrane)
    if lanes is not None:
        f = dataclasses.replace(f, shapes=tuple(
            dataclasses.replace(s, lanes=p) for s, p in zip(f.shapes, lanes, strict=True)))

    def opener(spec, **kw):
        return open_network_board("model", features=f)

    monkeypatch.setattr(netboard, "open_network_board", opener)
    return f


@pytest.mark.parametrize("graph, board, match", [
    (SUBTRACT, "norse_lifbox", r"layer 0 needs reset_modes SUBTRACT_AFTER_LEAK, the board "
     r"builds VALUE\+SUBTRACT; .*build its board with lifgate build --network \S+"
     r"snntorch_leaky_subtract.nir --board icebreaker\|ulx3s-85f --dt 0.0001 --reset "
     r"subtract-after-leak --warn-error 1$"),
    ("sinabs_conv", "norse_lifbox", r"inputs 36, the board 16; w_width 10, the board 12; "
     r"layer 0 neurons 32, the board 12"),
    ("norse_lifbox", "sinabs_iaf_subtract", None),
])
def test_board_of_another_shape(graph, board, match, capsys, monkeypatch):
    """A board whose VERSION names another shape is refused in one line (exit 2) naming what
    differs and the build command; a board of the same shape (another fixture's) runs it."""
    _board_of(board, monkeypatch)
    code, out, err = run_cli(graph, "--steps", "12", "--board", "sim:verilator",
                             capsys=capsys)
    if match is None:
        assert code == 0
        assert_board_exact(out, 12)
        return
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(match, err.strip()), err


def test_board_lanes_come_from_its_version(capsys, monkeypatch):
    """A board with other lanes (its VERSION reply's) gets the same network laid out with
    them, and runs it bit-exact."""
    f = _board_of("norse_lifbox", monkeypatch, lanes=(2, 1))
    code, out, _ = run_cli("norse_lifbox", "--steps", "12", "--board", "sim:verilator",
                           capsys=capsys)
    assert code == 0 and out["board_lanes"] == [2, 1] == [s.lanes for s in f.shapes]
    assert_board_exact(out, 12)


def test_fit_to_board_names_every_difference():
    net = imported(SUBTRACT)
    f = NetFeatures.for_network(imported("sinabs_conv"))
    with pytest.raises(ConfigError, match=r"^--board: the network does not fit the board "
                       r"\(inputs 16, the board 36; w_width 12, the board 10; layer 0 neurons "
                       r"12, the board 32; layer 0 groups 12, the board 32; layer 0 needs "
                       r"reset_modes SUBTRACT_AFTER_LEAK.*: build its board with X$"):
        netboard.fit_to_board(net, f, build="X")
    same = netboard.fit_to_board(net, NetFeatures.for_network(net), build="X")
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(same.layers, net.layers,
                                                                     strict=True))


@pytest.mark.parametrize("argv, match", [
    (["--board", "sim:ghdl"], "--board"),
    (["--board", "serial:/nonexistent/tty"], "does not exist"),
    (["--board", "sim:verilator-netlist"], "--board"),
    (["--board", "model", "--layer-lanes", "3,1"], "powers of two"),
    (["--board", "model", "--layer-lanes", "2"], "must name the network's 2 layers"),
    (["--board", "model", "--layer-lanes", "8,2"], "12 neurons, not a multiple of 8"),
    (["--layer-lanes", "2,2"], "--layer-lanes needs --board sim"),
    (["--board", "model", "--steps", "0"], "--steps must be at least 1"),
])
def test_bad_board_arguments(argv, match, capsys, tmp_path):
    code = main(["import-nir", str(HERE / "norse_lifbox.nir"), "--dt", "1e-6", *argv,
                 "--build-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err
    assert not (tmp_path / "b").exists()


def test_membrane_readout_on_a_spikes_only_board_warns(capsys, monkeypatch):
    """An LI readout on a board without membrane readback (the UP5K's default): the spikes
    are compared (exit 0), and a warning says the readout is not and how to build for it."""
    _board_of("norse_li_readout", monkeypatch, membrane=False)
    code, out, err = run_cli("norse_li_readout", "--steps", "12", "--board", "sim:verilator",
                             capsys=capsys)
    assert code == 0 and out["board_bit_exact"] is True and out["board_membrane"] is False
    assert any("membrane readout" in w and "--membrane" in w for w in out["warnings"])
    assert "warning: the board reads back spikes only" in err
