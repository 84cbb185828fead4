"""Recurrent layers (``Layer.rec``, docs/networks.md "Recurrent layers"): the golden model's
contract, the gateware against it (Amaranth's simulator; Icarus and Verilator), and the NIR
importer's recurrent loops (snnTorch ``RLeaky``)."""

from pathlib import Path

import nir
import numpy as np
import pytest
from lifgate.boards.netproto import NetFeatures
from lifgate.golden.synapse import Layer, Network, simulate_network, simulate_network_batch
from lifgate.hdl.network import Network as NetworkHW
from lifgate.sim.tb_network import run_network
from test_nir_nodes import chain, lif
from test_synapse_network import expected_records, random_network, run_amaranth

from lifgate.compilers.nir_import import export_nir, import_nir, read_nir
from lifgate.config import ConfigError, signed_range

FIXTURES = Path(__file__).resolve().parent.parent / "examples" / "nir_fixtures"


def recurrent_network(seed, *, recurrent=(False, True), x_width=1, **kw):
    """``random_network`` with random recurrent weights on the layers named."""
    net = random_network(seed, x_width=x_width, **kw)
    rng = np.random.default_rng(seed + 100)
    lo, hi = signed_range(net.w_width)
    layers = [Layer(layer.weights, layer.config,
                    rng.integers(lo, hi + 1, size=(layer.neurons, layer.neurons)) if r else None)
              for layer, r in zip(net.layers, recurrent, strict=True)]
    return Network(tuple(layers), w_width=net.w_width, x_width=net.x_width)


def test_recurrent_current_is_the_contract():
    """Every step's current of a recurrent layer is ``sat(W s_{l-1}(t) + W_rec s_l(t-1))``
    with ``s_l(-1) = 0``, checked on the result's own spikes; the recurrent term matters."""
    net = recurrent_network(4, recurrent=(True, True))
    x = np.random.default_rng(4).integers(0, 2, size=(30, net.inputs))
    res = simulate_network(net, 30, x)
    inp = x
    for n, layer in enumerate(net.layers):
        lo, hi = signed_range(layer.config.shape.i_width)
        prev = np.vstack([np.zeros((1, layer.neurons), int), res.spikes[n][:-1]]).astype(int)
        want = np.clip(inp @ layer.weights.T + prev @ layer.rec.T, lo, hi)
        assert np.array_equal(res.currents[n], want), n
        assert np.any(prev @ layer.rec.T)  # the layer's own spikes came back
        inp = res.spikes[n].astype(int)
    ff = simulate_network(Network(tuple(Layer(la.weights, la.config) for la in net.layers),
                                  w_width=net.w_width), 30, x)
    assert not all(np.array_equal(a, b) for a, b in zip(ff.spikes, res.spikes, strict=True))


def test_zero_recurrent_weights_are_feed_forward_and_runs_continue():
    net = recurrent_network(5)
    zero = Network(tuple(Layer(la.weights, la.config, None if la.rec is None else 0 * la.rec)
                         for la in net.layers), w_width=net.w_width)
    ff = Network(tuple(Layer(la.weights, la.config) for la in net.layers), w_width=net.w_width)
    x = np.random.default_rng(5).integers(0, 2, size=(20, net.inputs))
    a, b = simulate_network(zero, 20, x), simulate_network(ff, 20, x)
    for n in range(2):
        assert np.array_equal(a.spikes[n], b.spikes[n]) and np.array_equal(a.v[n], b.v[n])
    # a run continued with states= and prev= is the whole run; the batch form agrees
    whole = simulate_network(net, 20, x)
    first = simulate_network(net, 8, x[:8])
    rest = simulate_network(net, 12, x[8:], states=first.final, prev=first.last)
    batch = simulate_network_batch(net, 20, x[None])[0]
    for n in range(2):
        assert np.array_equal(np.vstack([first.spikes[n], rest.spikes[n]]), whole.spikes[n])
        assert np.array_equal(np.vstack([first.v[n], rest.v[n]]), whole.v[n])
        assert np.array_equal(batch.spikes[n], whole.spikes[n])


@pytest.mark.parametrize("rec,match", [
    (np.zeros((3, 3), int), r"'layers\[1\].rec' must have shape \(2, 2\)"),
    (np.full((2, 2), 99), r"'layers\[1\].rec' must lie in \[-32, 31\]"),
])
def test_bad_recurrent_weights_refused(rec, match):
    net = random_network(1)
    with pytest.raises(ConfigError, match=match):
        Network((net.layers[0], Layer(net.layers[1].weights, net.layers[1].config, rec)),
                w_width=net.w_width)


def test_recurrent_layer0_needs_count_width_inputs():
    net = random_network(1, x_width=3)
    la = net.layers[0]
    with pytest.raises(ConfigError, match="needs x_width == the layer's spike count width"):
        Network((Layer(la.weights, la.config, np.zeros((4, 4), int)), net.layers[1]),
                w_width=net.w_width, x_width=3)
    with pytest.raises(ConfigError, match="recurrent layer 0 needs"):
        NetworkHW(net.shapes, inputs=net.inputs, x_width=1, recurrent=(True, False))


def runs_with_clear(net, rng):
    return [(rng.integers(0, 2, size=net.inputs), 6), (rng.integers(0, 2, size=net.inputs), 4)]


@pytest.mark.parametrize("events", [True, False], ids=["spike-driven", "dense"])
@pytest.mark.parametrize("recurrent", [(False, True), (True, False)], ids=["layer1", "layer0"])
def test_recurrent_network_matches_golden_amaranth(recurrent, events):
    """The gateware (prev register, fan-in n_{l-1} + N_l) on Amaranth's simulator, record for
    record against the golden model over two runs (the second continues: prev persists)."""
    net = recurrent_network(7, recurrent=recurrent)
    runs = runs_with_clear(net, np.random.default_rng(7))
    got = run_amaranth(net, runs, events=events)
    want = expected_records_rec(net, runs)
    assert sum(bin(r[2]).count("1") for r in want if r[0] == 1) > 0
    # the recurrent weights change the records (a gateware that never fed prev back fails)
    zero = Network(tuple(Layer(la.weights, la.config, None if la.rec is None else 0 * la.rec)
                         for la in net.layers), w_width=net.w_width)
    assert expected_records_rec(zero, runs) != want
    assert got == want


def expected_records_rec(net, runs):
    """``expected_records`` continued across runs: ``prev=`` (the recurrent layers' last
    spikes) and ``past=`` (the delayed skip sources, tests/test_skip.py)."""
    out, states, prev, past, t0 = [], None, None, None, 0
    nmax = max(layer.neurons for layer in net.layers)
    for x, steps in runs:
        res = simulate_network(net, steps, x, states=states, prev=prev, past=past)
        states, prev, past = res.final, res.last, res.past
        for t in range(steps):
            for n in range(len(net.layers)):
                bits = sum(1 << j for j in np.flatnonzero(res.spikes[n][t]))
                v = list(res.v[n][t]) + [0] * (nmax - net.layers[n].neurons)
                out.append((n, t0 + t, bits, [int(a) for a in v]))
        t0 += steps
    return out


def test_expected_records_rec_is_expected_records_without_recurrence():
    net = random_network(2)
    runs = runs_with_clear(net, np.random.default_rng(2))
    assert expected_records_rec(net, runs) == expected_records(net, runs)


@pytest.mark.icarus
@pytest.mark.verilator
def test_recurrent_network_rtl_on_icarus_and_verilator(tmp_path):
    """The generated Verilog of a network with both layers recurrent, spike for spike and
    membrane for membrane against the golden model on both simulators; each sample starts from
    a clear, which must empty the prev registers."""
    net = recurrent_network(7, recurrent=(True, True), lanes=(2, 1))
    rng = np.random.default_rng(7)
    samples = [(rng.integers(0, 2, size=net.inputs), 12) for _ in range(2)]
    for got in rtl_runs_equal_golden(net, samples, tmp_path):
        assert sum(int(r.spikes[1].sum()) for r in got) > 0


def rtl_runs_equal_golden(net, samples, build_dir):
    """Run ``samples`` ((x, steps), each from a clear) on the network's generated Verilog on
    Icarus and on Verilator; assert every layer's spikes and membranes equal the golden
    model's; yield each simulator's results."""
    for sim in ("icarus", "verilator"):
        got = run_network(net, samples, build_dir=build_dir, sim=sim, optimize=False)
        for (x, steps), r in zip(samples, got, strict=True):
            want = simulate_network(net, steps, x)
            for n in range(len(net.layers)):
                assert np.array_equal(r.spikes[n], want.spikes[n]), (sim, n)
                assert np.array_equal(r.v[n], want.v[n]), (sim, n)
        yield got


def test_nir_recurrent_loop_becomes_rec():
    """snnTorch's RLeaky export (a loop ``lif -> w_rec -> lif``) imports as one recurrent
    layer whose ``rec`` is the loop's weights at the layer's weight scale."""
    path = FIXTURES / "snntorch_rleaky.nir"
    imp = import_nir(path, dt=1e-4, reset="subtract-after-leak")
    layer = imp.network.layers[0]
    graph, _ = read_nir(path)
    w_rec = np.asarray(graph.nodes["1.w_rec"].weight)
    assert layer.rec is not None and layer.rec.shape == (8, 8)
    lif = graph.nodes["1.lif"]
    g = 1e-4 * np.asarray(lif.r).reshape(-1) / np.asarray(lif.tau).reshape(-1)
    scale = imp.scale[0]
    assert np.array_equal(layer.rec, np.round(scale * g[:, None] * w_rec).astype(int))
    assert any("recurrent loop" in note for note in imp.notes)


def test_boards_take_recurrent_networks():
    """A board carries a recurrent network (tests/test_skip.py runs one on the simulated
    board): its features name the recurrent layers, its weight rows hold ``W | W_rec``."""
    net = recurrent_network(3)
    f = NetFeatures.for_network(net)
    assert f.recurrent == (False, True) and f.fan_in == [6, 4 + 2]


def branch_graph(w1, w2a, w2b, *, other_source=False):
    """in -> fc1 -> lif and in -> fc2a -> fc2b -> lif (summed at lif); ``other_source``: the
    second branch leaves a hidden layer instead (in -> h -> lifh -> fc2a -> fc2b -> lif)."""
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}),
             "fc1": nir.Affine(weight=w1, bias=np.full(3, 0.1)),
             "fc2a": nir.Linear(weight=w2a), "fc2b": nir.Affine(weight=w2b, bias=np.full(3, 0.2)),
             "lif": lif(3), "out": nir.Output(output_type={"output": np.array([3])})}
    edges = [("in", "fc1"), ("fc1", "lif"), ("fc2a", "fc2b"), ("fc2b", "lif"),
             ("lif", "out")]
    if other_source:
        nodes.update(h=nir.Linear(weight=np.eye(4)), lifh=lif(4))
        edges += [("in", "h"), ("h", "lifh"), ("lifh", "fc2a")]
    else:
        edges.append(("in", "fc2a"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def test_branches_from_one_source_fold_into_one_matrix():
    """Two branches that leave the Input and meet at a LIF import as the single Affine with the
    summed matrix (and biases): the same integers."""
    rng = np.random.default_rng(3)
    w1, w2a, w2b = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5, 4)), \
        rng.uniform(-1, 1, (3, 5))
    got = import_nir(branch_graph(w1, w2a, w2b))
    want = import_nir(chain(("fc", nir.Affine(weight=w1 + w2b @ w2a, bias=np.full(3, 0.3))),
                            ("lif", lif(3)), inputs=4))
    a, b = got.network.layers[0], want.network.layers[0]
    assert np.array_equal(a.weights, b.weights) and a.config == b.config
    assert any("2 branches from 'in' summed" in note for note in got.notes)


def test_branches_from_different_sources_refused():
    rng = np.random.default_rng(3)
    g = branch_graph(rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5, 4)),
                     rng.uniform(-1, 1, (3, 5)), other_source=True)
    # the second source is the Input: a skip connection from it is refused (tests/test_skip.py
    # runs skips between layers)
    with pytest.raises(ConfigError, match="'lif' reads the Input 'in' beside 'lifh'"):
        import_nir(g)


def test_recurrent_network_exports_and_imports_back():
    """export_nir writes a recurrent layer's loop (lif -> Linear -> lif); importing it back at
    scale 1 gives the same integers, recurrent weights included."""
    imp = import_nir(FIXTURES / "snntorch_rleaky.nir", dt=1e-4)
    back = import_nir(export_nir(imp.network, dt=1e-4), scale=1, w_width=imp.network.w_width,
                      v_width=imp.network.layers[0].config.shape.v_width)
    a, b = imp.network.layers[0], back.network.layers[0]
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.rec, b.rec)
