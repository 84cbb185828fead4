"""Skip connections (``Layer.skip``, docs/networks.md "Skip connections"): a layer reads the
spikes of earlier layers of the same step beside those of the layer before it, one synapse over
the concatenated sources, one saturation of the sum. The golden model against a plain numpy
reference, the gateware against the golden model (Amaranth's simulator; Icarus and Verilator),
and the NIR importer's branches from different sources."""

import nir
import numpy as np
import pytest
from lifgate.boards.nethost import open_network_board
from lifgate.boards.netproto import NetCmd, NetFeatures, net_version_payload, parse_net_version
from lifgate.boards.protocol import encode_frame
from lifgate.golden import fixed
from lifgate.golden.synapse import Layer, Network, simulate_network, simulate_network_batch
from lifgate.hdl.network import Network as NetworkHW
from test_boards_network import DIVISOR, LINK_TIMEOUT, Session
from test_nir_nodes import lif
from test_recurrent import expected_records_rec as expected_records_skip
from test_recurrent import rtl_runs_equal_golden
from test_synapse_network import random_network, run_amaranth

from lifgate.app import netboard
from lifgate.compilers.nir_import import export_nir, import_nir
from lifgate.config import ConfigError, pack_params, signed_range


def skip_network(seed, *, recurrent=(), sizes=(6, 4, 2, 2), lanes=(2, 1, 2), skips=None):
    """Layers of ``sizes[1:]`` neurons (``sizes[0]`` inputs) with ``random_network``'s neuron
    parameters, mostly excitatory random weights (so every layer spikes) and random skip
    weights: ``skips`` {layer: ((source, delay), ...)}, default layer 2 reads layer 0 of the
    same step; ``recurrent``: the layers that also carry recurrent weights."""
    skips = {2: ((0, 0),)} if skips is None else skips
    rng = np.random.default_rng(seed + 200)
    raw = [random_network(seed + n, inputs=sizes[n], hidden=sizes[n + 1], out=1,
                          lanes=(lanes[n], 1)).layers[0] for n in range(len(sizes) - 1)]
    lo, hi = signed_range(6)
    layers = []
    for n, la in enumerate(raw):
        skip = tuple((k, rng.integers(lo // 4, hi + 1, size=(la.neurons, raw[k].neurons)), d)
                     for k, d in skips.get(n, ()))
        rec = (rng.integers(lo, hi + 1, size=(la.neurons, la.neurons))
               if n in recurrent else None)
        w = rng.integers(lo // 4, hi + 1, size=la.weights.shape)
        layers.append(Layer(w, la.config, rec, skip))
    return Network(tuple(layers), w_width=6, x_width=1)


def reference(net, steps, x):
    """Step by step, layer by layer, each current summed from its sources by hand (a skip
    ``(k, W, d)`` reads layer ``k``'s spikes of ``d`` steps before, 0 before the first step)
    and saturated once, each array stepped by ``fixed.simulate``: spikes and membranes."""
    L = len(net.layers)
    states = [None] * L
    sp = [[] for _ in range(L)]
    vs = [[] for _ in range(L)]
    for t in range(steps):
        for n, la in enumerate(net.layers):
            src = np.asarray(x[t] if np.ndim(x) == 2 else x, int) if n == 0 else sp[n - 1][t]
            total = la.weights @ src
            for k, w, d in la.skip:
                total = total + (w @ sp[k][t - d] if t >= d else 0)
            if la.rec is not None and t:
                total = total + la.rec @ sp[n][t - 1]
            lo, hi = signed_range(la.config.shape.i_width)
            res = fixed.simulate(la.config, 1, np.clip(total, lo, hi)[None], state=states[n])
            states[n] = res.final
            sp[n].append(res.spikes[0].astype(int))
            vs[n].append(res.v[0].astype(int))
    return [np.array(s) for s in sp], [np.array(v) for v in vs]


NETS = {  # name: skip_network options
    "skip": dict(sizes=(6, 8, 4, 4), lanes=(2, 2, 2)),
    "skip+rec, delay 1": dict(sizes=(6, 8, 4, 4), lanes=(2, 2, 2), recurrent=(2,),
                              skips={2: ((0, 1),)}),
    "two sources, delays 2 and 0": dict(sizes=(6, 8, 4, 4, 2), lanes=(2, 2, 2, 1),
                                        skips={3: ((0, 2), (1, 0))}),
    "all": dict(sizes=(6, 8, 4, 4, 4), lanes=(2, 2, 2, 2), recurrent=(3,),
                skips={2: ((0, 0),), 3: ((0, 2), (1, 0))}),
}


@pytest.mark.parametrize("name", NETS)
def test_skip_network_matches_numpy_reference(name):
    """The golden model equals the step-by-step reference; the skip weights matter; a run
    continued with ``states=``, ``prev=`` and ``past=`` is the whole run."""
    net = skip_network(11, **NETS[name])
    x = np.random.default_rng(11).integers(0, 2, size=(40, net.inputs))
    res = simulate_network(net, 40, x)
    sp, vs = reference(net, 40, x)
    L = len(net.layers)
    for n in range(L):
        assert np.array_equal(res.spikes[n].astype(int), sp[n]), n
        assert np.array_equal(res.v[n], vs[n]), n
        assert res.spikes[n].sum(), n
    plain = Network(tuple(Layer(la.weights, la.config, la.rec) for la in net.layers),
                    w_width=net.w_width)
    assert not np.array_equal(simulate_network(plain, 40, x).v[-1], res.v[-1])
    first = simulate_network(net, 15, x[:15])
    rest = simulate_network(net, 25, x[15:], states=first.final, prev=first.last,
                            past=first.past)
    assert np.array_equal(np.vstack([first.v[-1], rest.v[-1]]), res.v[-1])
    assert np.array_equal(simulate_network_batch(net, 40, x[None])[0].v[-1], res.v[-1])


def test_skip_sum_is_saturated_once():
    """Two sources that saturate apart but cancel together: the current is their exact sum."""
    net = skip_network(3)
    la = net.layers[2]
    big = np.full_like(la.weights, signed_range(net.w_width)[1])
    skip = ((0, np.full_like(la.skip[0][1], signed_range(net.w_width)[0])),)
    net2 = Network((net.layers[0], net.layers[1], Layer(big, la.config, None, skip)),
                   w_width=net.w_width)
    x = np.random.default_rng(3).integers(0, 2, size=(30, net.inputs))
    res = simulate_network(net2, 30, x)
    want = np.clip(res.spikes[1].astype(int) @ big.T + res.spikes[0].astype(int) @ skip[0][1].T,
                   *signed_range(la.config.shape.i_width))
    assert np.array_equal(res.currents[2], want)


def test_skip_weights_in_full_weights_and_synops():
    net = skip_network(5, **NETS["skip+rec, delay 1"])
    la = net.layers[2]
    assert np.array_equal(la.full_weights, np.hstack([la.weights, la.skip[0][1], la.rec]))
    assert net.skips == ((), (), ((0, 1),)) and net.history == (1, 0, 0)
    x = np.random.default_rng(5).integers(0, 2, size=(20, net.inputs))
    res = simulate_network(net, 20, x)
    prev = np.vstack([np.zeros((1, la.neurons)), res.spikes[2][:-1]])
    want = (res.spikes[0].sum() * net.layers[1].neurons
            + (res.spikes[1].sum() + res.spikes[0][:-1].sum() + prev.sum()) * la.neurons)
    assert res.spike_ops == want
    assert np.array_equal(res.past[0], res.spikes[0][-1:]) and res.past[1].shape == (0, 4)


@pytest.mark.parametrize("skip,match", [
    (((1, np.zeros((2, 4), int)),), r"'layers\[2\].skip' source must be a layer in \[0, 0\]"),
    (((0, np.zeros((2, 3), int)),), r"'layers\[2\].skip\[0\]' must have shape \(2, 4\)"),
    (((0, np.full((2, 4), 99)),), r"'layers\[2\].skip\[0\]' must lie in \[-32, 31\]"),
    (((0, np.zeros((2, 4), int), 65),), r"'layers\[2\].skip' delay must be an integer in "
                                        r"\[0, 64\], not 65"),
    ([np.zeros(3)], r"must hold \(layer, weights, delay\) triples"),
])
def test_bad_skip_refused(skip, match):
    net = skip_network(1)
    la = net.layers[2]
    with pytest.raises(ConfigError, match=match):
        Network((net.layers[0], net.layers[1], Layer(la.weights, la.config, None, skip)),
                w_width=net.w_width)


def test_hardware_refuses_bad_skips():
    net = skip_network(1)
    with pytest.raises(ConfigError, match=r"'skips\[1\]' must be \(layer, delay\) pairs, "
                                          r"layers increasing in \[0, -1\]"):
        NetworkHW(net.shapes, inputs=net.inputs, skips=((), ((0, 0),), ()))


@pytest.mark.parametrize("events", [True, False], ids=["spike-driven", "dense"])
@pytest.mark.parametrize("name", NETS)
def test_skip_network_matches_golden_amaranth(name, events):
    """The gateware (a skip layer's synapse reads ``Cat(s_{l-1}, s_k or its delay registers,
    prev)``) on Amaranth's simulator, record for record against the golden model over two runs
    (the second continues: the delay registers persist)."""
    net = skip_network(7, **NETS[name])
    rng = np.random.default_rng(7)
    runs = [(rng.integers(0, 2, size=net.inputs), 6), (rng.integers(0, 2, size=net.inputs), 4)]
    want = expected_records_skip(net, runs)
    plain = Network(tuple(Layer(la.weights, la.config, la.rec) for la in net.layers),
                    w_width=net.w_width)
    assert expected_records_skip(plain, runs) != want  # the skip weights change the records
    assert run_amaranth(net, runs, events=events) == want


@pytest.mark.icarus
@pytest.mark.verilator
def test_skip_network_rtl_on_icarus_and_verilator(tmp_path):
    """The generated Verilog of a network with every kind of source (layer 2 reads layer 0 of
    the same step; layer 3 reads layer 0 two steps late, layer 1 of the same step and its own
    spikes of the step before), spike for spike and membrane for membrane against the golden
    model on both simulators: random inputs, no input spike, every input spiking; each sample
    starts from a clear (which must empty the delay and prev registers)."""
    net = skip_network(13, **NETS["all"])
    rng = np.random.default_rng(13)
    samples = [(rng.integers(0, 2, size=net.inputs), 10), (np.zeros(net.inputs, int), 6),
               (np.ones(net.inputs, int), 10)]
    for got in rtl_runs_equal_golden(net, samples, tmp_path):
        assert all(int(r.spikes[-1].sum()) > 0 for r in got[::2])


# --- NIR: branches from different sources --------------------------------------------------

def skip_graph(rng, *, direct=False):
    """in -> fc0 -> lif0 -> fc1 -> lif1 -> fc2 -> lif2 -> fc3 -> lif3 -> out, plus the skips
    lif0 -> s20 -> lif2, lif0 -> s30a -> s30b -> lif3 and lif1 -> s31 -> lif3 (``direct``:
    lif1 -> lif3, an identity). Returns the graph and its float layers for :func:`euler_dag`."""
    sizes = [6, 8, 6, 6, 6]
    nodes = {"in": nir.Input(input_type={"input": np.array([6])}),
             "out": nir.Output(output_type={"output": np.array([6])})}
    edges, layers, prev = [], [], "in"
    for n in range(4):
        w = rng.normal(1.0 if n == 0 else 3.0, 1.0 if n == 0 else 2.0, (sizes[n + 1], sizes[n]))
        b = np.full(sizes[n + 1], 0.05)
        nodes[f"fc{n}"], nodes[f"lif{n}"] = nir.Affine(weight=w, bias=b), lif(sizes[n + 1])
        edges += [(prev, f"fc{n}"), (f"fc{n}", f"lif{n}")]
        layers.append(dict(w=w, b=b, skip=[]))
        prev = f"lif{n}"
    edges.append((prev, "out"))
    s20 = rng.normal(1.0, 2.0, (6, 8))
    s30a, s30b = rng.normal(0.5, 1.0, (5, 8)), rng.normal(0.5, 1.0, (6, 5))
    nodes.update(s20=nir.Linear(weight=s20), s30a=nir.Linear(weight=s30a),
                 s30b=nir.Affine(weight=s30b, bias=np.full(6, 0.02)))
    edges += [("lif0", "s20"), ("s20", "lif2"), ("lif0", "s30a"), ("s30a", "s30b"),
              ("s30b", "lif3")]
    layers[2]["skip"].append((0, s20))
    layers[3]["skip"].append((0, s30b @ s30a))
    layers[3]["b"] = layers[3]["b"] + 0.02
    if direct:
        edges.append(("lif1", "lif3"))
        layers[3]["skip"].append((1, np.eye(6)))
    else:
        s31 = rng.normal(1.0, 2.0, (6, 6))
        nodes["s31"] = nir.Linear(weight=s31)
        edges += [("lif1", "s31"), ("s31", "lif3")]
        layers[3]["skip"].append((1, s31))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3},
                        type_check=False), layers


def euler_dag(layers, x, steps, dt=1e-3, tau=0.02, vth=1.0):
    """Float NIR reference of LIF layers (forward Euler, NIR's timing: a spike in the step
    whose integration crossed ``v > v_threshold``, then ``v = 0``): every node sums its inputs
    of the same step, the layer before and the skip sources."""
    vs = [np.zeros(len(la["b"])) for la in layers]
    out = [[] for _ in layers]
    for _ in range(steps):
        now = []
        for n, la in enumerate(layers):
            inp = np.asarray(x, float) if n == 0 else now[n - 1]
            cur = la["w"] @ inp + la["b"] + sum(w @ now[k] for k, w in la["skip"])
            vs[n] = vs[n] + dt / tau * (-vs[n] + cur)
            s = vs[n] > vth
            vs[n] = np.where(s, 0.0, vs[n])
            now.append(s.astype(float))
            out[n].append(s)
    return [np.array(o) for o in out]


@pytest.mark.parametrize("direct", [False, True], ids=["linear", "direct-edge"])
def test_nir_skip_graph_matches_float_reference(direct):
    """A hand-built NIR graph with skips (one source through two nodes, two sources into one
    node, optionally a direct edge) imports as skip connections delayed to NIR's timing
    (lif2 reads lif0 one step late, lif3 lif0 two and lif1 one), and runs spike for spike with
    the float NIR reference, layer ``l`` shifted by ``l + 1`` steps."""
    rng = np.random.default_rng(21)
    g, layers = skip_graph(rng, direct=direct)
    imp = import_nir(g, target=0.01)
    net = imp.network
    assert [la.sources for la in net.layers] == [(), (), ((0, 1),), ((0, 2), (1, 1))]
    assert sum("skip connection" in note for note in imp.notes) == 3
    x = rng.integers(0, 2, 6)
    steps = 80
    ref = euler_dag(layers, x, steps)
    res = simulate_network(net, steps + 4, x)
    for n in range(4):
        got = res.spikes[n][n + 1:n + 1 + steps]
        assert ref[n].sum() > 5, n
        # within quantisation: the same spikes but for a few places near the threshold
        assert np.count_nonzero(got != ref[n]) <= 0.01 * got.size, n
    # the skips matter: without them the last layer's spikes differ
    plain = Network(tuple(Layer(la.weights, la.config) for la in net.layers),
                    w_width=net.w_width)
    assert not np.array_equal(simulate_network(plain, steps + 4, x).spikes[3], res.spikes[3])


def test_nir_skip_graph_exports_and_imports_back():
    """export_nir writes each skip as a branch lif_k -> Linear -> lif_l; importing it back at
    scale 1 gives the same integers, skip blocks and delays included."""
    imp = import_nir(skip_graph(np.random.default_rng(4))[0], target=0.01)
    net = imp.network
    back = import_nir(export_nir(net), scale=1, w_width=net.w_width,
                      v_width=net.layers[0].config.shape.v_width)
    for a, b in zip(net.layers, back.network.layers, strict=True):
        assert np.array_equal(a.full_weights, b.full_weights) and a.sources == b.sources
        assert a.config == b.config
    same_step = Network(net.layers[:2] + (Layer(net.layers[2].weights, net.layers[2].config,
                                                 None, ((0, net.layers[2].skip[0][1], 0),)),),
                        w_width=net.w_width)
    with pytest.raises(ConfigError, match=r"NIR export needs the skip from layer 0 1 step\(s\) "
                                          r"late"):
        export_nir(same_step)


def test_nir_skip_from_the_input_refused():
    rng = np.random.default_rng(3)
    g, _ = skip_graph(rng)
    g.nodes["sx"] = nir.Linear(weight=rng.normal(0, 1, (6, 6)))
    g.edges.extend([("in", "sx"), ("sx", "lif2")])
    with pytest.raises(ConfigError, match="'lif2' reads the Input 'in' beside 'lif1': the "
                                          "network input feeds the first layer only"):
        import_nir(g)


# --- on the board link ---------------------------------------------------------------------

BOARD_NET = "skip+rec, delay 1"


def test_board_features_and_version_carry_the_sources():
    """NetFeatures of a skip + recurrent network: the sources, the weight rows of
    ``full_weights``, a VERSION reply that grows by the sources and parses back; a
    feed-forward network's reply is unchanged."""
    net = skip_network(13, **NETS[BOARD_NET])
    f = NetFeatures.for_network(net)
    assert f.recurrent == (False, False, True) and f.skips == ((), (), ((0, 1),))
    assert f.fan_in == [la.full_weights.shape[1] for la in net.layers]
    ff = NetFeatures(f.shapes, f.inputs, w_width=f.w_width)
    assert ff.feed_forward and not f.feed_forward
    assert len(net_version_payload(f)) == len(net_version_payload(ff)) + 2 * 3 + 2
    assert parse_net_version(net_version_payload(f)) == f
    assert parse_net_version(net_version_payload(ff)) == ff
    with pytest.raises(ConfigError, match=r"'skips\[2\]' must be \(layer, delay\) pairs"):
        NetFeatures(f.shapes, f.inputs, skips=((), (), ((1, 0),)))


def test_board_model_runs_skip_and_recurrent_networks_like_golden():
    """Loaded through the host API on the protocol model: runs continued across RUN commands
    (the latches persist) and after a CLEAR (they are zeroed) equal the golden model; the
    weights read back are ``full_weights``."""
    for name in NETS:
        net = skip_network(13, **NETS[name])
        f = NetFeatures.for_network(net, max_payload=40)
        board = open_network_board("model", features=f)
        board.load(net)
        for n, layer in enumerate(net.layers):
            assert np.array_equal(board.read_weights(n), layer.full_weights)
        x = np.random.default_rng(13).integers(0, 2, size=net.inputs)
        board.write_x(x)
        a = board.run(7, membrane=True, all_layers=True)
        b = board.run(5, membrane=True, all_layers=True)
        ref = simulate_network(net, 12, x)
        for n in range(len(net.layers)):
            assert np.array_equal(np.vstack([a.spikes[n], b.spikes[n]]), ref.spikes[n]), name
            assert np.array_equal(np.vstack([a.v[n], b.v[n]]), ref.v[n]), name
        board.clear()
        c = board.run(6, membrane=True, all_layers=True)
        assert np.array_equal(c.v[-1], simulate_network(net, 6, x).v[-1]), name


def board_session(board, net):
    """Load ``net`` frame by frame (every weight row of ``full_weights``), read it back, set
    parameters and inputs, run continued and after a clear: every reply compared with the
    protocol model's, byte for byte. Returns the session."""
    f = board.features
    ex = Session(board, f)
    assert ex(encode_frame(NetCmd.VERSION))[0].payload == net_version_payload(f)
    wb = f.weight_bytes
    per = (f.max_payload - 9) // wb
    for n, layer in enumerate(net.layers):
        flat, fan = layer.full_weights.reshape(-1), f.fan_in[n]
        for k in range(0, flat.size, per):
            ex(encode_frame(NetCmd.WRITE_WEIGHTS, bytes([n]) + (k // fan).to_bytes(4, "little")
                            + (k % fan).to_bytes(4, "little")
                            + b"".join((int(v) & ((1 << 8 * wb) - 1)).to_bytes(wb, "little")
                                       for v in flat[k:k + per])), "load")
        for k in range(0, flat.size, 9):
            cnt = min(9, flat.size - k)
            (rep,) = ex(encode_frame(NetCmd.READ_WEIGHTS, bytes([n])
                                     + (k // fan).to_bytes(4, "little")
                                     + (k % fan).to_bytes(4, "little")
                                     + cnt.to_bytes(2, "little")), "read back")
            got = [int.from_bytes(rep.payload[q:q + wb], "little", signed=True)
                   for q in range(0, wb * cnt, wb)]
            assert got == flat[k:k + cnt].tolist()
        for g, p in enumerate(layer.config.params):
            ex(encode_frame(NetCmd.SET_PARAMS, bytes([n]) + g.to_bytes(4, "little")
                            + pack_params(f.shapes[n], p).to_bytes(f.param_bytes, "little")))
    rng = np.random.default_rng(5)
    for x, runs in ((rng.integers(0, 2, size=net.inputs), ((6, 7), (4, 7))),
                    (np.ones(net.inputs, int), ((3, 5),)), (None, ((5, 7),))):
        if x is None:
            ex(encode_frame(NetCmd.CLEAR))
        else:
            ex(encode_frame(NetCmd.WRITE_X, bytes(4) + bytes(x.tolist())))
        for steps, flags in runs:
            got = ex(encode_frame(NetCmd.RUN, steps.to_bytes(4, "little") + bytes([flags])))
            assert got[-1].cmd == NetCmd.RUN_DONE
    return ex


def test_board_session_on_the_model():
    """The session's expectations hold on the model itself, and its runs spike."""
    net = skip_network(13, **NETS[BOARD_NET])
    board = open_network_board("model", features=NetFeatures.for_network(net, max_payload=40))
    ex = board_session(board, net)
    assert ex.replies > 60


@pytest.mark.icarus
@pytest.mark.verilator
def test_board_sim_skip_and_recurrent_network(tmp_path):
    """The simulated network board (``NetworkLink`` with the skip + recurrent network) replies
    like the protocol model, byte for byte, on Icarus and on Verilator."""
    net = skip_network(13, **NETS[BOARD_NET])
    f = NetFeatures.for_network(net, max_payload=40)
    for sim in ("icarus", "verilator"):
        board = open_network_board(f"sim:{sim}", features=f, build_dir=tmp_path,
                                   divisor=DIVISOR, link_timeout=LINK_TIMEOUT, timeout=120,
                                   optimize=False)
        try:
            assert board.features == f
            board_session(board, net)
        finally:
            board.close()


def test_board_without_the_sources_refuses_the_network():
    """``lifgate import-nir --board`` fits a graph to the board's VERSION: a feed-forward board
    refuses a skip + recurrent network (and the other way round) in one line naming the
    layers' sources; the board built for it takes it."""
    net = skip_network(13, **NETS[BOARD_NET])
    f = NetFeatures.for_network(net)
    ff = NetFeatures(f.shapes, f.inputs, w_width=f.w_width, x_width=f.x_width)
    with pytest.raises(ConfigError, match=r"layer 2 is recurrent, the board's is not; layer 2 "
                                          r"skip sources \(layer, delay\) \[\(0, 1\)\], the "
                                          r"board \[\]\): build its board with X$"):
        netboard.fit_to_board(net, ff, build="X")
    plain = Network(tuple(Layer(la.weights, la.config) for la in net.layers), w_width=6,
                    x_width=1)
    with pytest.raises(ConfigError, match="layer 2 is not recurrent, the board's is"):
        netboard.fit_to_board(plain, f, build="X")
    fitted = netboard.fit_to_board(net, f, build="X")
    assert all(np.array_equal(a.full_weights, b.full_weights)
               for a, b in zip(fitted.layers, net.layers, strict=True))
