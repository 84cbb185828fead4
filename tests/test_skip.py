"""Skip connections (``Layer.skip``, docs/networks.md "Skip connections"): a layer reads the
spikes of earlier layers of the same step beside those of the layer before it, one synapse over
the concatenated sources, one saturation of the sum. The golden model against a plain numpy
reference, the gateware against the golden model (Amaranth's simulator; Icarus and Verilator),
and the NIR importer's branches from different sources."""

import numpy as np
import pytest
from lifgate.golden import fixed
from lifgate.golden.synapse import Layer, Network, simulate_network, simulate_network_batch
from lifgate.hdl.network import Network as NetworkHW
from lifgate.sim.tb_network import run_network
from test_recurrent import expected_records_rec
from test_synapse_network import random_network, run_amaranth

from lifgate.config import ConfigError, signed_range


def skip_network(seed, *, recurrent=False, sizes=(6, 4, 2, 2), lanes=(2, 1, 2), skips=None):
    """Three layers (``sizes``: inputs, then each layer's neurons) from ``random_network``'s
    neuron parameters, with random skip weights: layer 2 reads layer 0 (``skips``: per layer,
    its sources); ``recurrent``: layer 2 also carries recurrent weights."""
    skips = ((), (), (0,)) if skips is None else skips
    a = random_network(seed, inputs=sizes[0], hidden=sizes[1], out=sizes[2],
                       lanes=lanes[:2])
    b = random_network(seed + 1, inputs=sizes[2], hidden=sizes[3], out=2, lanes=lanes[2:] + (1,))
    rng = np.random.default_rng(seed + 200)
    lo, hi = signed_range(a.w_width)
    raw = [a.layers[0], a.layers[1], b.layers[0]]
    layers = []
    for n, la in enumerate(raw):
        skip = tuple((k, rng.integers(lo // 4, hi + 1, size=(la.neurons, raw[k].neurons)))
                     for k in skips[n])
        # mostly excitatory weights, so every layer spikes
        la = Layer(rng.integers(lo // 4, hi + 1, size=la.weights.shape), la.config)
        rec = (rng.integers(lo, hi + 1, size=(la.neurons, la.neurons))
               if recurrent and n == 2 else None)
        layers.append(Layer(la.weights, la.config, rec, skip))
    return Network(tuple(layers), w_width=a.w_width, x_width=1)


def reference(net, steps, x):
    """Step by step, layer by layer, each current summed from its sources by hand and
    saturated once, each array stepped by ``fixed.simulate``: spikes and membranes."""
    L = len(net.layers)
    states = [None] * L
    prev = [np.zeros(la.neurons, int) for la in net.layers]
    sp = [[] for _ in range(L)]
    vs = [[] for _ in range(L)]
    for t in range(steps):
        now = []
        for n, la in enumerate(net.layers):
            src = np.asarray(x[t] if np.ndim(x) == 2 else x, int) if n == 0 else now[n - 1]
            total = la.weights @ src
            for k, w in la.skip:
                total = total + w @ now[k]
            if la.rec is not None:
                total = total + la.rec @ prev[n]
            lo, hi = signed_range(la.config.shape.i_width)
            res = fixed.simulate(la.config, 1, np.clip(total, lo, hi)[None], state=states[n])
            states[n] = res.final
            s = res.spikes[0].astype(int)
            now.append(s)
            sp[n].append(s)
            vs[n].append(res.v[0].astype(int))
        prev = now
    return [np.array(s) for s in sp], [np.array(v) for v in vs]


@pytest.mark.parametrize("recurrent", [False, True], ids=["skip", "skip+rec"])
def test_skip_network_matches_numpy_reference(recurrent):
    """The golden model equals the step-by-step reference; the skip weights matter."""
    net = skip_network(11, recurrent=recurrent, sizes=(6, 8, 4, 4), lanes=(2, 2, 2))
    x = np.random.default_rng(11).integers(0, 2, size=(40, net.inputs))
    res = simulate_network(net, 40, x)
    sp, vs = reference(net, 40, x)
    for n in range(3):
        assert np.array_equal(res.spikes[n].astype(int), sp[n]), n
        assert np.array_equal(res.v[n], vs[n]), n
    assert res.spikes[0].sum() and res.spikes[2].sum()
    plain = Network(tuple(Layer(la.weights, la.config, la.rec) for la in net.layers),
                    w_width=net.w_width)
    assert not np.array_equal(simulate_network(plain, 40, x).v[2], res.v[2])
    # continued runs and the batch form agree
    first = simulate_network(net, 15, x[:15])
    rest = simulate_network(net, 25, x[15:], states=first.final, prev=first.last)
    assert np.array_equal(np.vstack([first.v[2], rest.v[2]]), res.v[2])
    assert np.array_equal(simulate_network_batch(net, 40, x[None])[0].v[2], res.v[2])


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
    net = skip_network(5, recurrent=True)
    la = net.layers[2]
    assert np.array_equal(la.full_weights, np.hstack([la.weights, la.skip[0][1], la.rec]))
    assert net.skips == ((), (), (0,))
    x = np.random.default_rng(5).integers(0, 2, size=(20, net.inputs))
    res = simulate_network(net, 20, x)
    prev = np.vstack([np.zeros((1, la.neurons)), res.spikes[2][:-1]])
    want = (res.spikes[0].sum() * net.layers[1].neurons
            + (res.spikes[1].sum() + res.spikes[0].sum() + prev.sum()) * la.neurons)
    assert res.spike_ops == want


@pytest.mark.parametrize("skip,match", [
    (((1, np.zeros((2, 4), int)),), r"'layers\[2\].skip' source must be a layer in \[0, 0\]"),
    (((0, np.zeros((2, 3), int)),), r"'layers\[2\].skip\[0\]' must have shape \(2, 4\)"),
    (((0, np.full((2, 4), 99)),), r"'layers\[2\].skip\[0\]' must lie in \[-32, 31\]"),
    ([np.zeros(3)], r"must hold \(layer, weights\) pairs"),
])
def test_bad_skip_refused(skip, match):
    net = skip_network(1)
    la = net.layers[2]
    with pytest.raises(ConfigError, match=match):
        Network((net.layers[0], net.layers[1], Layer(la.weights, la.config, None, skip)),
                w_width=net.w_width)


def test_hardware_refuses_bad_skips():
    net = skip_network(1)
    with pytest.raises(ConfigError, match=r"'skips\[1\]' must be increasing layers in \[0, -1\]"):
        NetworkHW(net.shapes, inputs=net.inputs, skips=((), (0,), ()))


@pytest.mark.parametrize("events", [True, False], ids=["spike-driven", "dense"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["skip", "skip+rec"])
def test_skip_network_matches_golden_amaranth(recurrent, events):
    """The gateware (layer 2's synapse reads ``Cat(s_1, s_0[, prev_2])``) on Amaranth's
    simulator, record for record against the golden model over two runs."""
    net = skip_network(7, recurrent=recurrent)
    rng = np.random.default_rng(7)
    runs = [(rng.integers(0, 2, size=net.inputs), 6), (rng.integers(0, 2, size=net.inputs), 4)]
    want = expected_records_rec(net, runs)
    plain = Network(tuple(Layer(la.weights, la.config, la.rec) for la in net.layers),
                    w_width=net.w_width)
    assert expected_records_rec(plain, runs) != want  # the skip weights change the records
    assert run_amaranth(net, runs, events=events) == want


@pytest.mark.icarus
@pytest.mark.verilator
def test_skip_network_rtl_on_icarus_and_verilator(tmp_path):
    """The generated Verilog of a skip network and of a skip + recurrent one (layer 3 reads
    layers 0 and 1), spike for spike and membrane for membrane against the golden model on
    both simulators: random inputs, no input spike, every input spiking; each sample starts
    from a clear."""
    nets = [skip_network(13), skip_network(17, recurrent=True, skips=((), (), (0,)))]
    for net in nets:
        rng = np.random.default_rng(13)
        samples = [(rng.integers(0, 2, size=net.inputs), 10), (np.zeros(net.inputs, int), 6),
                   (np.ones(net.inputs, int), 10)]
        for sim in ("icarus", "verilator"):
            got = run_network(net, samples, build_dir=tmp_path, sim=sim, optimize=False)
            for (x, steps), r in zip(samples, got, strict=True):
                want = simulate_network(net, steps, x)
                for n in range(len(net.layers)):
                    assert np.array_equal(r.spikes[n], want.spikes[n]), (sim, n)
                    assert np.array_equal(r.v[n], want.v[n]), (sim, n)
            assert sum(int(r.spikes[0].sum()) for r in got) > 0
