"""NIR import (lifgate/compilers/nir_import.py): round trips, the discretisation contract,
refusals, RTL."""

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from lifgate.golden.synapse import simulate_network  # noqa: E402

from lifgate.app.cli import main  # noqa: E402
from lifgate.compilers.nir_import import export_nir, import_nir  # noqa: E402
from lifgate.config import ConfigError, LeakMode, ResetMode  # noqa: E402


def two_layer_graph(seed=0, dt=1e-3):
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([6])}),
        "fc1": nir.Affine(weight=rng.normal(0, 1, (4, 6)), bias=rng.normal(0, 0.1, 4)),
        "lif1": nir.LIF(tau=np.full(4, 0.02), r=np.ones(4), v_leak=np.full(4, 0.1),
                        v_threshold=np.ones(4), v_reset=np.full(4, -0.2)),
        "fc2": nir.Linear(weight=rng.normal(0, 1, (2, 4))),
        "if2": nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "if2"), ("if2", "out")],
        metadata={"dt": dt})


def same_network(a, b):
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.weights.tolist() == lb.weights.tolist()
        assert la.config == lb.config
    assert (a.w_width, a.x_width) == (b.w_width, b.x_width)


def test_import_maps_parameters():
    imp = import_nir(two_layer_graph())
    l0, l1 = imp.network.layers
    p0, p1 = l0.config.params[0], l1.config.params[0]
    s0, s1 = imp.scale
    assert p0.leak_mode == LeakMode.MULT and p1.leak_mode == LeakMode.CONST and p1.leak == 0
    assert p0.reset_mode == ResetMode.VALUE and p0.t_ref == 0 and p0.v_init == 0
    assert p0.v_th == round(s0 * 1.0) + 1 and p0.v_reset == round(s0 * -0.2)
    assert p0.v_rest == round(s0 * 0.1)
    assert p0.leak == round((1 - 1e-3 / 0.02) * 2**16)
    assert p1.v_th == round(s1 * 0.5) + 1
    g = two_layer_graph().nodes["fc1"].weight
    assert l0.weights.tolist() == np.round(s0 * (1e-3 / 0.02) * g).astype(int).tolist()
    assert set(imp.errors) >= {"weight", "bias", "v_threshold", "v_reset", "v_leak", "tau"}
    assert "dt = 0.001" in imp.report()


def test_round_trip_through_a_file(tmp_path):
    imp = import_nir(two_layer_graph())
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(imp.network, dt=1e-3))
    back = import_nir(path, scale=1)
    same_network(imp.network, back.network)
    x = np.random.default_rng(1).integers(0, 2, size=(40, 6))
    a = simulate_network(imp.network, 40, x)
    b = simulate_network(back.network, 40, x)
    for u, v in zip(a.spikes + a.v, b.spikes + b.v, strict=True):
        assert np.array_equal(u, v)


def test_if_matches_euler_reference_shifted_one_step():
    # IF, dt = 1, r = 1: v += W x each step; NIR fires when v > 1 (then v = 0). Values are
    # exact at scale 64, so lifgate's spikes are NIR's delayed by exactly one step.
    g = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([1])}),
        "w": nir.Linear(weight=np.array([[0.375]])),
        "if": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
        "out": nir.Output(output_type={"output": np.array([1])}),
    }, edges=[("in", "w"), ("w", "if"), ("if", "out")])
    imp = import_nir(g, dt=1.0, scale=64)
    res = simulate_network(imp.network, 20, np.ones(1, dtype=int))
    v, ref = 0.0, []
    for _ in range(20):
        v += 0.375
        ref.append(v > 1.0)
        if v > 1.0:
            v = 0.0
    assert res.spikes[0][1:, 0].tolist() == ref[:-1]
    assert not res.spikes[0][0, 0]


@pytest.mark.parametrize("bad,match", [
    ("cuba", "node 'lif1' \\(CubaLIF\\) is not representable"),
    ("delay", "node 'dl' \\(Delay\\): the delay must be the same whole number of steps"),
    ("branch", r"node 'fc2' has 2 inputs from different sources \['in', 'lif1'\]"),
    ("nodt", "no metadata 'dt'"),
    ("tau", "node 'lif1': parameter 'tau' must be >= dt"),
])
def test_refusals_name_the_node(bad, match):
    g = two_layer_graph()
    nodes, edges, meta = dict(g.nodes), list(g.edges), dict(g.metadata)
    if bad == "cuba":
        nodes["lif1"] = nir.CubaLIF(tau_syn=np.full(4, 0.005), tau_mem=np.full(4, 0.02),
                                    r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4))
    elif bad == "delay":
        nodes["dl"] = nir.Delay(delay=np.ones(6))
        edges = [("in", "dl"), ("dl", "fc1")] + edges[1:]
    elif bad == "branch":
        edges.append(("in", "fc2"))
    elif bad == "nodt":
        meta = {}
    elif bad == "tau":
        nodes["lif1"] = nir.LIF(tau=np.full(4, 1e-4), r=np.ones(4), v_leak=np.zeros(4),
                                v_threshold=np.ones(4))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    with pytest.raises(ConfigError, match=match):
        import_nir(graph)


def test_cli_report_and_errors(tmp_path, capsys):
    path = tmp_path / "g.nir"
    nir.write(path, two_layer_graph())
    assert main(["import-nir", str(path), "--steps", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dt"] == 1e-3 and out["reset_mode"] == "value" and out["t_ref"] == 0
    assert "weight" in out["quantisation_error"]
    assert len(out["golden_spikes_per_layer"]) == 2
    g = two_layer_graph()
    nodes = dict(g.nodes)
    nodes["lif1"] = nir.CubaLIF(tau_syn=np.full(4, 0.005), tau_mem=np.full(4, 0.02),
                                r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4))
    nir.write(tmp_path / "c.nir", nir.NIRGraph(nodes=nodes, edges=g.edges, metadata=g.metadata))
    assert main(["import-nir", str(tmp_path / "c.nir")]) == 2
    assert "lif1" in capsys.readouterr().err


@pytest.mark.verilator
def test_exported_graph_runs_bit_exact_on_rtl(tmp_path):
    from lifgate.sim.tb_network import run_network

    imp = import_nir(two_layer_graph(seed=3))
    path = tmp_path / "net.nir"
    nir.write(path, export_nir(imp.network, dt=1e-3))
    net = import_nir(path, scale=1).network
    rng = np.random.default_rng(5)
    samples = [(rng.integers(0, 2, size=6), 40) for _ in range(3)]
    runs = run_network(net, samples, build_dir=tmp_path / "build", optimize=False)
    total = 0
    for (x, steps), r in zip(samples, runs, strict=True):
        g = simulate_network(net, steps, x)
        total += sum(int(s.sum()) for s in g.spikes)
        for layer in range(2):
            assert np.array_equal(r.spikes[layer], g.spikes[layer])
            assert np.array_equal(r.v[layer], g.v[layer])
    assert total > 0
