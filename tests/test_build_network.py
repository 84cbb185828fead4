"""``lifgate build --network digits|GRAPH.nir`` (issue 17, Build item 3).

* Bad arguments: one line, exit code 2, nothing created, before the network is converted.
* A network too large for the board is refused by the fit check before synthesis.
* The network board top (``NetworkBoardTop``) of the digits network is generated for both
  boards and goes through the build (real elaboration, RTLIL and fit estimate; stand-in
  Yosys, nextpnr and packer, as in ``tests/test_build_fail.py``): ``--json`` fields and
  ``link.json``.
* ``lifgate digits --board sim:verilator`` runs the network board that the build makes (the
  same ``NetFeatures``, so the same ``NetworkLink``) bit-exact with the golden model.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from lifgate.boards import toolchain
from lifgate.boards.host import recorded_baud
from lifgate.boards.netproto import NetFeatures
from test_boards_cli import run_cli

from lifgate.app import netboard, netbuild
from lifgate.compilers.nir_import import import_nir
from lifgate.config import ConfigError

pytest.importorskip("sklearn")


@pytest.mark.parametrize("argv, says", [
    (["--network", "mnist"], "--network must be digits or a NIR graph file"),
    (["--network", "missing.nir"], "--network: 'missing.nir' does not exist"),
    (["--network", "digits", "--lanes", "4"], "--lanes is an array board option"),
    (["--network", "digits", "--probes", "2"], "--probes is an array board option"),
    (["--network", "digits", "--layer-lanes", "3,2"], "--layer-lanes must be powers of two"),
    (["--network", "digits", "--layer-lanes", "8"], "--layer-lanes must name 2 layers"),
    (["--network", "digits", "--layer-lanes", "8,x"], "--layer-lanes must be comma-separated"),
    (["--network", "digits", "--freq", "0"], "--freq must be"),
    (["--network", "digits", "--seed", "-1"], "--seed must be"),
    (["--network", "digits", "--baud", "5000000"], "baud"),
    (["--layer-lanes", "8,2"], "--layer-lanes needs --network"),
    (["--network", "digits", "--dt", "1e-3"], "--dt is for a NIR graph"),
    (["--network", "digits", "--membrane", "--no-membrane"], "contradict"),
    (["--membrane"], "--membrane needs --network"),
])
def test_argument_errors(capsys, tmp_path, argv, says):
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "ulx3s-85f", *argv,
                                "--build-dir", str(out), "--json")
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifgate build: error: "), err
    assert says in lines[0]
    assert not out.exists()


def test_build_dir_checked(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_cli(capsys, "build", "--board", "icebreaker", "--network", "digits",
                           "--build-dir", str(f / "sub"))
    assert code == 2 and "--build-dir" in err


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Stand-in yosys (``top.stat.json`` with a few cells), nextpnr (a report at 60 MHz against
    the constraint) and packers, for both families."""
    folder = tmp_path / "tools"
    folder.mkdir()

    def script(name, body):
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        return str(path)

    cells = json.dumps({"design": {"num_cells_by_type": {"SB_LUT4": 10, "LUT4": 10}}})
    yosys = script("yosys", f"echo '{cells}' > top.stat.json\n")
    report = json.dumps({"utilization": {"ICESTORM_LC": {"used": 90, "available": 5280},
                                         "TRELLIS_COMB": {"used": 90, "available": 83640}},
                         "fmax": {"cd_sync_clk": {"achieved": 160.0, "constraint": 100.0}}})
    pnr = script("nextpnr", f'echo "$@" > pnr-args.txt\necho \'{report}\' > top.report.json\n'
                 'echo "Info: Routing.." > top.tim\n')
    pack = script("pack", 'for a; do case "$a" in *.bit|*.bin) echo bits > "$a";; esac; done\n')

    def env(family):
        return dict(os.environ, YOSYS=yosys, NEXTPNR_ICE40=pnr, ICEPACK=pack,
                    NEXTPNR_ECP5=pnr, ECPPACK=pack)

    monkeypatch.setattr(toolchain, "yowasp_env", env)


def test_too_large_refused_by_fit_check(capsys, tmp_path, tools):
    """32 lanes in layer 0 on the UP5K: every lane has its own parameter memory; refused with
    one line naming the EBRs before synthesis, the folder not even created."""
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "icebreaker", "--network", "digits",
                                "--layer-lanes", "32,2", "--build-dir", str(out), "--json",
                                "--no-progress")
    assert code == 2 and stdout == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("lifgate build: error: the design does not fit the iCE40UP5K")
    assert "EBR" in last and "synthesis not started" in last
    assert not out.exists()


@pytest.mark.parametrize("board, primitive", [("icebreaker", "SB_PLL40"),
                                              ("ulx3s-85f", "EHXPLLL")])
def test_network_top_for_both_boards(capsys, tmp_path, monkeypatch, tools, board, primitive):
    """The digits network board for each board: its RTLIL (the board's PLL, the link, both
    layers), the JSON of the build and ``link.json`` with the baud, which ``serial:PORT``
    without ``@BAUD`` then uses."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIFGATE_BOARD_BUILD", raising=False)
    code, stdout, err = run_cli(capsys, "build", "--board", board, "--network", "digits",
                                "--baud", "1000000", "--json", "--no-progress")
    assert code == 0, err
    d = json.loads(stdout)
    lanes = netbuild.NETWORK_LANES[board]
    assert d["ok"] and d["timing_met"] and d["fmax_mhz"] == 160.0
    assert d["network"] == "digits" and d["design"] == "network" and d["baud"] == 1000000
    assert d["layers"] == [[32, lanes[0]], [10, lanes[1]]] and d["inputs"] == 64
    # membrane readback by the board's default (off on the UP5K: it does not fit with it)
    assert d["membrane"] is netbuild.NETWORK_MEMBRANE[board]
    assert d["membrane"] is (board != "icebreaker")
    assert d["utilization"] and d["bitstream"].endswith(("top.bin", "top.bit"))
    folder = tmp_path / "build" / f"board-{board}-net"
    assert json.loads((folder / "link.json").read_text())["baud"] == 1000000
    assert recorded_baud(tmp_path)[0] == 1000000
    rtlil = (folder / "top.il").read_text()
    assert primitive in rtlil
    for part in ("link", "net", "syn0", "syn1", "array0", "array1"):
        assert f"\\{part}" in rtlil or f".{part}" in rtlil, part
    args = (folder / "pnr-args.txt").read_text()
    assert "--seed 1" in args
    router = netbuild.NETWORK_ROUTER[board]
    assert (f"--router {router}" in args) if router else ("--router" not in args)


def test_relane_keeps_the_network():
    net = netbuild.digits_network((8, 2))
    again = netbuild.relane(net, (1, 2))
    assert [s.lanes for s in again.shapes] == [1, 2]
    for a, b in zip(net.layers, again.layers, strict=True):
        assert np.array_equal(a.weights, b.weights)
        assert a.config.params == b.config.params
    with pytest.raises(ConfigError, match="not a multiple of 4 lanes"):
        netbuild.relane(net, (8, 4))
    with pytest.raises(ConfigError, match="2 layers"):
        netbuild.relane(net, (8,))


@pytest.mark.verilator
def test_digits_sim_board_is_the_built_board(capsys, tmp_path):
    """``lifgate digits --board sim:verilator --layer-lanes 8,2`` simulates the network board
    that ``lifgate build --network digits --board ulx3s-85f`` makes: the same features (so the
    same ``NetworkLink`` gateware; only the UART divisor differs), bit-exact with the golden
    model on the first held-out digits."""
    _, net = netbuild.network_for("digits", "ulx3s-85f")
    built = netbuild.network_features(net)  # what build_network gives NetworkBoardTop
    code, stdout, err = run_cli(capsys, "digits", "--samples", "0", "--steps", "12",
                                "--board", "sim:verilator", "--layer-lanes", "8,2",
                                "--limit", "3", "--build-dir", str(tmp_path), "--json",
                                "--no-progress")
    assert code == 0, err
    rep = json.loads(stdout)
    assert rep["board_bit_exact"] and rep["board_weights_read_back"]
    assert rep["board_lanes"] == [s.lanes for s in built.shapes] == [8, 2]
    assert rep["board_membrane"] == built.membrane


def test_nir_graph_without_dt_needs_dt(capsys, tmp_path):
    """A graph without ``dt`` in its metadata: one line naming ``--dt`` (which ``build``
    takes), exit 2, nothing created; with ``--dt`` it imports and lays the layers out with
    powers of two dividing their neurons, at most 8 on the ULX3S."""
    pytest.importorskip("nir")
    graph = "examples/nir_fixtures/norse_lifbox.nir"
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "ulx3s-85f", "--network", graph,
                                "--build-dir", str(out), "--no-progress")
    assert code == 2 and "--dt" in err.strip().splitlines()[-1] and not out.exists()
    code, _, err = run_cli(capsys, "build", "--board", "ulx3s-85f", "--network", graph,
                           "--dt", "0", "--build-dir", str(out))
    assert code == 2 and "--dt must be" in err and not out.exists()
    _, net = netbuild.network_for(graph, "ulx3s-85f", dt=1e-6)  # as its fixtures.json
    f = netbuild.network_features(net)
    for s in f.shapes:
        assert s.neurons % s.lanes == 0 and s.lanes <= 8 and s.lanes & (s.lanes - 1) == 0


def test_nir_board_build_command_builds_the_graph_shape(capsys, tmp_path, tools):
    """The build command that ``lifgate import-nir F --board`` names for a board of another
    shape builds that graph's shape: snnTorch's subtract fixture with its import options gives
    a network board whose arrays build SUBTRACT_AFTER_LEAK and whose features are those of
    the network ``import-nir`` runs (lanes aside: a board's own lanes are used)."""
    pytest.importorskip("nir")

    graph = "examples/nir_fixtures/snntorch_leaky_subtract.nir"
    opts = ["--dt", "1e-4", "--reset", "subtract-after-leak", "--warn-error", "1"]
    net = import_nir(graph, dt=1e-4, reset="subtract-after-leak", target=0.01).network
    other = NetFeatures.for_network(import_nir(graph, dt=1e-4, target=0.01).network)
    with pytest.raises(ConfigError, match="reset_modes SUBTRACT_AFTER_LEAK") as e:
        netboard.fit_to_board(net, other, build=f"lifgate build --network {graph} --board "
                              "icebreaker|ulx3s-85f " + " ".join(opts))
    words = str(e.value).split("build its board with ")[1].split()
    assert words[:2] == ["lifgate", "build"]
    words[words.index("icebreaker|ulx3s-85f")] = "ulx3s-85f"
    code, stdout, err = run_cli(capsys, *words[1:], "--build-dir", str(tmp_path / "b"),
                                "--json", "--no-progress")
    assert code == 0, err
    d = json.loads(stdout)
    want = NetFeatures.for_network(net)
    assert d["reset_modes"] == ["value", "subtract", "subtract_after_leak"]
    assert [n for n, _ in d["layers"]] == [s.neurons for s in want.shapes]
    assert d["w_width"] == want.w_width and d["inputs"] == want.inputs
    _, built = netbuild.network_for(graph, "ulx3s-85f", dt=1e-4, reset="subtract-after-leak",
                                    target=0.01)
    assert netboard.fit_to_board(net, netbuild.network_features(built), build="-").shapes \
        == built.shapes


@pytest.mark.parametrize("argv, says", [
    (["--reset", "subtract"], "--reset is an import option of a NIR graph"),
    (["--network", "digits", "--w-width", "12"], "--w-width is an import option"),
    (["--network", "G", "--w-width", "1"], "--w-width must be"),
    (["--network", "G", "--warn-error", "101"], "--warn-error must be"),
    (["--network", "G", "--spike-max", "15"], "--spike-max must be 1 on a network board"),
    (["--network", "G", "--spike-max", "2"], "--spike-max must be one of"),
])
def test_graph_option_errors(capsys, tmp_path, argv, says):
    argv = [a if a != "G" else "examples/nir_fixtures/norse_lifbox.nir" for a in argv]
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "build", "--board", "icebreaker", *argv, "--dt", "1e-6",
                                "--build-dir", str(out))
    lines = err.strip().splitlines()
    assert code == 2 and stdout == "" and len(lines) == 1 and says in lines[0], err
    assert not out.exists()
