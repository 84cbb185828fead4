"""NIR import beyond the plain chain: what the frameworks write (batch dimensions, scalars,
type-check failures), the node types (Scale, Flatten, Conv, pooling, Threshold, LI, I, nested
graphs) against independent float references, the refusals, and quantisation that reports
every parameter's error relative to itself."""

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from lifgate.golden.synapse import simulate_network  # noqa: E402

from lifgate.app.cli import main  # noqa: E402
from lifgate.compilers.nir_import import import_nir  # noqa: E402
from lifgate.config import ConfigError  # noqa: E402


def chain(*pairs, inputs, dt=1e-3, input_shape=None, meta=True):
    """Input -> nodes (name, node) ... -> Output, unchecked (as exporters' graphs are)."""
    nodes = {"in": nir.Input(input_type={"input": np.array(input_shape or [inputs])})}
    edges, prev = [], "in"
    for name, node in pairs:
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    nodes["out"] = nir.Output(output_type={"output": np.array([1])})
    edges.append((prev, "out"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt} if meta else {},
                        type_check=False)


def lif(n, tau=0.02, vth=1.0, vleak=0.0, vreset=0.0):
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.full(n, vleak),
                   v_threshold=np.full(n, vth), v_reset=np.full(n, vreset))


def euler(layers, x, steps, dt):
    """Float NIR reference (forward Euler, spike in the crossing step when v > v_threshold,
    then v = v_reset): ``layers`` = [(W, b, kind, params)], kind LIF/IF/LI/I; returns per layer
    the spikes (or membranes, for LI/I) [steps, N]."""
    vs = [np.zeros(len(b)) for _, b, _, _ in layers]
    out = [[] for _ in layers]
    for _ in range(steps):
        inp = np.asarray(x, dtype=float)
        for k, (w, b, kind, p) in enumerate(layers):
            cur = w @ inp + b
            if kind in ("LIF", "LI"):
                vs[k] = vs[k] + dt / p["tau"] * (p.get("vleak", 0) - vs[k] + cur)
            else:
                vs[k] = vs[k] + dt * cur
            if kind in ("LI", "I"):
                out[k].append(vs[k].copy())
                continue
            s = vs[k] > p["vth"]
            vs[k] = np.where(s, p.get("vreset", 0.0), vs[k])
            out[k].append(s.astype(int))
            inp = s.astype(float)
    return [np.array(o) for o in out]


# --- reading what the frameworks write -----------------------------------------------------

def test_batch_dimension_and_type_check_fallback(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (4, 6))
    plain = chain(("fc", nir.Linear(weight=w)), ("lif", lif(4)), inputs=6)
    batched = chain(("fc", nir.Linear(weight=w)), ("lif", lif(4)), inputs=6,
                    input_shape=[1, 6])
    nir.write(tmp_path / "b.nir", batched)
    with pytest.raises(ValueError, match="Type inference"):
        nir.read(tmp_path / "b.nir")  # what a user meets with nir.read alone
    imp = import_nir(tmp_path / "b.nir")
    assert any("type_check=False" in n for n in imp.notes)
    assert any("batch dimension" in n for n in imp.notes)
    ref = import_nir(plain)
    assert imp.network.layers[0].weights.tolist() == ref.network.layers[0].weights.tolist()
    assert imp.network.layers[0].config == ref.network.layers[0].config
    assert "type_check=False" in imp.report()


def test_scalar_parameters_broadcast():
    w = np.ones((3, 2)) * 0.5
    scalar = nir.LIF(tau=np.array(0.02), r=np.array(1.0), v_leak=np.array(0.0),
                     v_threshold=np.array(1.0), v_reset=np.array(0.0))
    a = import_nir(chain(("fc", nir.Linear(weight=w)), ("lif", scalar), inputs=2))
    b = import_nir(chain(("fc", nir.Linear(weight=w)), ("lif", lif(3)), inputs=2))
    assert a.network.layers[0].config == b.network.layers[0].config


def test_dt_from_metadata_or_option():
    g = chain(("fc", nir.Linear(weight=np.ones((2, 2)))), ("lif", lif(2)), inputs=2,
              meta=False)
    with pytest.raises(ConfigError, match="give the time step with --dt"):
        import_nir(g)
    assert import_nir(g, dt=1e-3).dt == 1e-3
    g2 = chain(("fc", nir.Linear(weight=np.ones((2, 2)))), ("lif", lif(2)), inputs=2)
    assert any("metadata" in n for n in import_nir(g2).notes)


@pytest.mark.parametrize("bad,match", [
    ("bias", "node 'fc': parameter 'bias' has 3 values, expected 4"),
    ("tau", "node 'lif': parameter 'tau' has 2 values, expected 4"),
    ("weight", "node 'fc': weight has 5 inputs, the node before gives 6 values"),
])
def test_mismatched_shapes_are_one_line_errors(bad, match):
    w = np.ones((4, 6))
    fc = nir.Affine(weight=w, bias=np.zeros(3 if bad == "bias" else 4))
    if bad == "weight":
        fc = nir.Linear(weight=np.ones((4, 5)))
    neuron = lif(4)
    if bad == "tau":
        neuron.tau = np.full(2, 0.02)
    with pytest.raises(ConfigError, match=match):
        import_nir(chain(("fc", fc), ("lif", neuron), inputs=6))


# --- node types ------------------------------------------------------------------------------

def test_scale_folds_into_the_weights():
    rng = np.random.default_rng(1)
    w, s = rng.normal(0, 1, (3, 4)), rng.uniform(0.5, 2, 4)
    a = import_nir(chain(("sc", nir.Scale(scale=s)), ("fc", nir.Linear(weight=w)),
                         ("lif", lif(3)), inputs=4), scale=64, w_width=12)
    b = import_nir(chain(("fc", nir.Linear(weight=w * s)), ("lif", lif(3)), inputs=4),
                   scale=64, w_width=12)
    assert a.network.layers[0].weights.tolist() == b.network.layers[0].weights.tolist()
    assert a.nodes[0] == ("sc+fc", "lif")


def _conv_pool_reference(x, k, bias, pool, avg):
    """Independent numpy: Conv2d (stride 1, padding 1) then 2x2 pooling, channels first."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, k.shape[2:], axis=(1, 2))
    conv = np.einsum("chwij,ocij->ohw", win, k) + bias[:, None, None]
    c, h, w = conv.shape
    blocks = conv[:, :h // pool * pool, :w // pool * pool].reshape(c, h // pool, pool,
                                                                    w // pool, pool)
    red = blocks.sum(axis=(2, 4))
    return red / (pool * pool) if avg else red


@pytest.mark.parametrize("avg", [False, True])
def test_conv2d_and_pooling_unroll_to_the_same_map(avg):
    rng = np.random.default_rng(2)
    k, bias = rng.normal(0, 0.3, (2, 1, 3, 3)), rng.normal(0, 0.1, 2)
    conv = nir.Conv2d(input_shape=np.array([5, 5]), weight=k, stride=1, padding=1,
                      dilation=1, groups=1, bias=bias)
    pool = (nir.AvgPool2d if avg else nir.SumPool2d)(kernel_size=np.array([2, 2]),
                                                     stride=np.array([2, 2]),
                                                     padding=np.array([0, 0]))
    g = chain(("conv", conv), ("pool", pool), ("flat", nir.Flatten(
        input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1)),
        ("if", nir.IF(r=np.ones(8), v_threshold=np.ones(8), v_reset=np.zeros(8))),
        inputs=25, input_shape=[1, 1, 5, 5], dt=1.0)
    imp = import_nir(g, w_width=16, v_width=24)
    layer = imp.network.layers[0]
    s = imp.scale[0]
    x = rng.integers(0, 2, (1, 5, 5))
    want = _conv_pool_reference(x.astype(float), k, bias, 2, avg).reshape(-1)
    bias_q = np.array([p.bias for p in layer.config.params])
    got = (layer.weights @ x.reshape(-1) + bias_q) / s
    assert np.abs(got - want).max() < 16 / s  # within quantisation: a few LSB
    assert imp.nodes[0] == ("conv+pool+flat", "if")


def test_conv1d_unrolls():
    rng = np.random.default_rng(3)
    k = rng.normal(0, 0.5, (3, 2, 3))
    conv = nir.Conv1d(input_shape=6, weight=k, stride=2, padding=0, dilation=1,
                      groups=1, bias=np.zeros(3))
    g = chain(("conv", conv), ("if", nir.IF(r=np.ones(6), v_threshold=np.ones(6),
                                            v_reset=np.zeros(6))),
              inputs=12, input_shape=[2, 6], dt=1.0)
    imp = import_nir(g, w_width=16, v_width=24)
    x = rng.integers(0, 2, (2, 6)).astype(float)
    want = np.array([[sum(k[o, c, j] * x[c, 2 * p + j] for c in range(2) for j in range(3))
                      for p in range(2)] for o in range(3)]).reshape(-1)
    got = imp.network.layers[0].weights @ x.reshape(-1) / imp.scale[0]
    assert np.abs(got - want).max() < 8 / imp.scale[0]


def test_threshold_node_is_a_stateless_compare():
    rng = np.random.default_rng(4)
    w = rng.normal(0, 1, (5, 8))
    g = chain(("fc", nir.Linear(weight=w)), ("th", nir.Threshold(threshold=np.full(5, 0.3))),
              inputs=8, dt=1.0)
    imp = import_nir(g, scale=64, w_width=12)
    xs = rng.integers(0, 2, (30, 8))
    res = simulate_network(imp.network, 30, xs)
    wq = imp.network.layers[0].weights
    # lifgate: the spike of step t + 1 is the compare of step t's current (one-step shift)
    want = (xs @ wq.T) >= imp.network.layers[0].config.params[0].v_th
    assert np.array_equal(res.spikes[0][1:], want[:-1])
    assert res.spikes[0].any() and not res.spikes[0].all()


@pytest.mark.parametrize("kind", ["LI", "I"])
def test_membrane_readout_matches_float_euler(kind):
    rng = np.random.default_rng(5)
    w1, w2 = rng.normal(0, 1.5, (6, 8)), rng.normal(0, 1, (3, 6))
    dt = 1e-3
    last = nir.LI(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3)) if kind == "LI" \
        else nir.I(r=np.full(3, 20.0))
    g = chain(("fc1", nir.Linear(weight=w1)), ("lif", lif(6, tau=0.005)),
              ("fc2", nir.Linear(weight=w2)), ("ro", last), inputs=8, dt=dt)
    imp = import_nir(g, target=0.01)
    assert imp.readout == "membrane"
    x = rng.integers(0, 2, 8)
    steps = 60
    ref = euler([(w1, np.zeros(6), "LIF", {"tau": 0.005, "vth": 1.0}),
                 (w2 * (20.0 if kind == "I" else 1.0), np.zeros(3), kind, {"tau": 0.02})],
                x, steps, dt)
    res = simulate_network(imp.network, steps + 1, x)
    # spiking layer: one step later; the readout sees them in the same step
    assert np.array_equal(res.spikes[0][1:], ref[0].astype(bool))
    v = res.v[1][1:] / imp.scale[1]
    assert np.abs(v - ref[1]).max() <= 0.02 * np.abs(ref[1]).max()
    assert not res.spikes[1].any()


def test_delay_is_exact_as_relay_layers():
    """Input -> Linear -> IF -> Delay (3 steps) -> Linear -> IF against the float model with
    the delay: the second layer's spikes equal the float ones, shifted by the documented
    two steps (two spiking layers; the three relay layers are not counted)."""
    rng = np.random.default_rng(10)
    w1, w2 = rng.normal(0.3, 0.5, (5, 6)), rng.normal(0.5, 0.5, (4, 5))
    w1, w2 = np.round(w1 * 16) / 16, np.round(w2 * 16) / 16  # exact at scale 16
    ifn = lambda n: nir.IF(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n))  # noqa: E731
    g = chain(("fc1", nir.Linear(weight=w1)), ("if1", ifn(5)),
              ("dl", nir.Delay(delay=np.full(5, 3.0))), ("fc2", nir.Linear(weight=w2)),
              ("if2", ifn(4)), inputs=6, dt=1.0)
    imp = import_nir(g, scale=16)
    assert len(imp.network.layers) == 5 and imp.shifts == [1, None, None, None, 2]
    x = rng.integers(0, 2, 6)
    steps = 40
    v1, v2, s1, s2 = np.zeros(5), np.zeros(4), [], []
    for t in range(steps):
        v1 = v1 + w1 @ x
        a = v1 > 1
        v1[a] = 0
        s1.append(a)
        d = s1[t - 3] if t >= 3 else np.zeros(5, bool)
        v2 = v2 + w2 @ d
        b = v2 > 1
        v2[b] = 0
        s2.append(b)
    res = simulate_network(imp.network, steps + 2, x)
    assert np.array_equal(res.spikes[0][1:steps + 1], np.array(s1))
    assert np.array_equal(res.spikes[4][2:steps + 2], np.array(s2))
    assert np.array(s2).any()


def test_nested_graph_is_inlined():
    rng = np.random.default_rng(6)
    w = rng.normal(0, 1, (4, 6))
    inner = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([6])}),
        "fc": nir.Linear(weight=w), "lif": lif(4),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    outer = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([6])}), "sub": inner,
        "out": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("in", "sub"), ("sub", "out")], metadata={"dt": 1e-3}, type_check=False)
    flat = chain(("fc", nir.Linear(weight=w)), ("lif", lif(4)), inputs=6)
    a, b = import_nir(outer), import_nir(flat)
    assert a.network.layers[0].weights.tolist() == b.network.layers[0].weights.tolist()
    assert a.nodes == [("sub.fc", "sub.lif")]


@pytest.mark.parametrize("bad,match", [
    ("cubalif", r"'n' \(CubaLIF\) is not representable: lifgate neurons have no synaptic"),
    ("cubali", r"'n' \(CubaLI\) is not representable"),
    ("delay", r"'n' \(Delay\) must follow a neuron node or the Input"),
    ("recurrent", "closes a cycle: recurrent edges are not supported|2 inputs"),
    ("li_first", r"\(LI\) must be the last layer"),
    ("tail", "come after the last neuron node"),
])
def test_refusals_say_why(bad, match):
    w = np.ones((3, 3))
    n = {"cubalif": nir.CubaLIF(tau_syn=np.full(3, 0.005), tau_mem=np.full(3, 0.02),
                                r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
         "cubali": nir.CubaLI(tau_syn=np.full(3, 0.005), tau_mem=np.full(3, 0.02),
                              r=np.ones(3), v_leak=np.zeros(3)),
         "delay": nir.Delay(delay=np.ones(3))}.get(bad, lif(3))
    pairs = [("fc", nir.Linear(weight=w)), ("n", n)]
    if bad == "li_first":
        pairs = [("fc", nir.Linear(weight=w)),
                 ("n", nir.LI(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3))),
                 ("fc2", nir.Linear(weight=w)), ("n2", lif(3))]
    if bad == "tail":
        pairs.append(("fc2", nir.Linear(weight=w)))
    g = chain(*pairs, inputs=3)
    if bad == "recurrent":
        g = nir.NIRGraph(nodes=g.nodes, edges=list(g.edges) + [("n", "fc")],
                         metadata=g.metadata, type_check=False)
    with pytest.raises(ConfigError, match=match):
        import_nir(g)


# --- quantisation you can trust --------------------------------------------------------------

def outlier_graph():
    """16 x 16 weights within +-0.5 and one of 60 (the issue's case)."""
    rng = np.random.default_rng(7)
    w = rng.uniform(-0.5, 0.5, (16, 16))
    w[3, 5] = 60.0
    return chain(("fc", nir.Linear(weight=w)), ("lif", lif(16, tau=0.01)), inputs=16), w


def test_outlier_weight_is_reported_against_the_typical_weight():
    g, w = outlier_graph()
    imp = import_nir(g, w_width=8)
    _, rel, zeroed, count = imp.errors["weight"]
    # At 8 bits the outlier takes the range: most small weights round to 0.
    assert zeroed > count // 4 and rel > 0.5
    assert imp.warnings() and "weight" in imp.warnings()[0]
    assert "WARNING" in imp.report()


def test_outlier_weight_gets_wider_weights_by_default():
    g, w = outlier_graph()
    imp = import_nir(g)
    _, rel, zeroed, count = imp.errors["weight"]
    assert rel <= 0.05 and zeroed <= count // 50 and imp.network.w_width > 8
    assert not imp.warnings()
    # and the spikes follow the float model (one-step shift), unlike at 8 bits
    x = np.random.default_rng(8).integers(0, 2, 16)
    ref = euler([(w, np.zeros(16), "LIF", {"tau": 0.01, "vth": 1.0})], x, 80, 1e-3)[0]
    counts = [int(simulate_network(i.network, 81, x).spikes[0][1:].sum())
              for i in (imp, import_nir(g, w_width=8))]
    assert abs(counts[0] - ref.sum()) <= 0.01 * ref.sum()
    assert abs(counts[1] - ref.sum()) > abs(counts[0] - ref.sum())


def test_huge_weights_no_longer_lose_the_threshold():
    w = np.full((2, 2), 1000.0)
    g = chain(("fc", nir.Linear(weight=w)), ("lif", lif(2)), inputs=2, dt=1.0)
    # IF-like gain at dt 1 / tau 0.02 would be unstable: use IF
    g.nodes["lif"] = nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2))
    narrow = import_nir(g, w_width=8)
    assert narrow.errors["v_threshold"][1] >= 0.5 and narrow.warnings()
    auto = import_nir(g)
    assert auto.errors["v_threshold"][1] <= 0.05 and not auto.warnings()


def test_cli_warns_and_max_error_refuses(tmp_path, capsys):
    g, _ = outlier_graph()
    path = tmp_path / "o.nir"
    nir.write(path, g)
    assert main(["import-nir", str(path), "--w-width", "8", "--json"]) == 0
    cap = capsys.readouterr()
    assert "warning: weight" in cap.err
    out = json.loads(cap.out)
    assert out["warnings"] and out["quantisation_error"]["weight"]["zeroed"] > 0
    assert main(["import-nir", str(path), "--w-width", "8", "--max-error", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-error 5 %" in err and "'weight'" in err
    assert main(["import-nir", str(path), "--max-error", "5"]) == 0
    assert main(["import-nir", str(path), "--max-error", "500"]) == 2
    assert "--max-error must be" in capsys.readouterr().err


# --- malformed graphs: one line, never a traceback -------------------------------------------

def _base_graph():
    rng = np.random.default_rng(9)
    conv = nir.Conv2d(input_shape=np.array([5, 5]), weight=rng.normal(0, 0.3, (2, 1, 3, 3)),
                      stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(2))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    return chain(("conv", conv), ("pool", pool),
                 ("flat", nir.Flatten(input_type={"input": np.array([2, 2, 2])})),
                 ("sc", nir.Scale(scale=np.ones(8))),
                 ("fc", nir.Affine(weight=rng.normal(0, 1, (4, 8)), bias=np.zeros(4))),
                 ("lif", lif(4)), inputs=25, input_shape=[1, 1, 5, 5])


_PARAMS = {"conv": ("weight", "bias", "stride", "padding", "dilation", "groups"),
           "pool": ("kernel_size", "stride", "padding"),
           "sc": ("scale",), "fc": ("weight", "bias"),
           "lif": ("tau", "r", "v_leak", "v_threshold", "v_reset")}


@pytest.mark.parametrize("seed", range(200))
def test_malformed_parameters_are_config_errors(seed):
    """One parameter of a valid graph replaced by a wrong shape, NaN, 0 or a negative value
    (as a hand-edited or foreign file may hold): the import succeeds or raises ConfigError."""
    rng = np.random.default_rng(seed)
    g = _base_graph()
    node = list(_PARAMS)[seed % len(_PARAMS)]
    pname = _PARAMS[node][int(rng.integers(len(_PARAMS[node])))]
    choices = [np.array(np.nan), np.zeros(int(rng.integers(0, 6))), np.full(3, -2.0),
               np.ones((2, 2, 2)), np.array(0.0), rng.normal(0, 1, int(rng.integers(1, 9))),
               np.array("x"), np.array([1.5, 2.5]), np.array(1e300)]
    setattr(g.nodes[node], pname, choices[int(rng.integers(len(choices)))])
    try:
        import_nir(g)
    except ConfigError as e:
        assert "\n" not in str(e) and len(str(e)) < 400


@pytest.mark.verilator
def test_every_node_type_runs_bit_exact_on_rtl(tmp_path):
    """One network through Conv2d, IF, SumPool2d, Flatten, Scale, Affine, Threshold, Delay,
    Linear, LIF, Linear and an LI readout: the RTL equals the golden model, spike for spike
    and membrane for membrane."""
    from lifgate.sim.tb_network import run_network

    rng = np.random.default_rng(11)
    conv = nir.Conv2d(input_shape=np.array([5, 5]), weight=rng.normal(0.2, 0.3, (2, 1, 3, 3)),
                      stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(2))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    g = chain(("conv", conv), ("if", nir.IF(r=np.ones(50), v_threshold=np.ones(50),
                                            v_reset=np.zeros(50))),
              ("pool", pool), ("flat", nir.Flatten(input_type={"input": np.array([2, 2, 2])})),
              ("sc", nir.Scale(scale=np.full(8, 0.5))),
              ("fc", nir.Affine(weight=rng.normal(0.5, 0.5, (6, 8)), bias=np.full(6, 0.1))),
              ("th", nir.Threshold(threshold=np.full(6, 0.4))),
              ("dl", nir.Delay(delay=np.full(6, 2.0))),
              ("fc2", nir.Linear(weight=rng.normal(0.3, 1, (4, 6)))), ("lif", lif(4, tau=5.0)),
              ("fc3", nir.Linear(weight=rng.normal(0, 1, (3, 4)))),
              ("li", nir.LI(tau=np.full(3, 4.0), r=np.ones(3), v_leak=np.zeros(3))),
              inputs=25, input_shape=[1, 1, 5, 5], dt=1.0)
    imp = import_nir(g)
    kinds = [pair[1] for pair in imp.nodes]
    assert kinds == ["if", "th", "dl[0]", "dl[1]", "lif", "li"] and imp.readout == "membrane"
    net = imp.network
    x = rng.integers(0, 2, 25)
    steps = 30
    rtl = run_network(net, [(x, steps)], build_dir=tmp_path / "build", optimize=False)[0]
    gold = simulate_network(net, steps, x)
    for k in range(len(net.layers)):
        assert np.array_equal(rtl.spikes[k], gold.spikes[k]), k
        assert np.array_equal(rtl.v[k], gold.v[k]), k
    assert all(gold.spikes[k].any() for k in range(5))
