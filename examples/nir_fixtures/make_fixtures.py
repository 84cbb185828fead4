"""Build small networks in snnTorch, Norse and sinabs, export them to NIR with each framework's
own exporter, and record each framework's own run of them for a fixed input.

Runs in the frameworks' environment, NOT lifgate's (torch and the frameworks are no lifgate
dependencies)::

    python3 -m venv /work/fwenv
    /work/fwenv/bin/pip install snntorch norse sinabs nir
    /work/fwenv/bin/pip install nir==1.0.6     # snnTorch 1.0's exporter needs v_reset (>= 1.0.6)
    /work/fwenv/bin/python examples/nir_fixtures/make_fixtures.py OUT_DIR snntorch_leaky_zero ...
    /work/fwenv/bin/pip install nir==1.0.4     # sinabs 3.1.3 pins nir <= 1.0.4
    /work/fwenv/bin/python examples/nir_fixtures/make_fixtures.py OUT_DIR sinabs_iaf_reset ...

(``OUT_DIR`` defaults to this folder; the names default to all fixtures; ``fixtures.json`` in
``OUT_DIR`` is updated, not replaced).

For every network NAME it writes ``NAME.nir`` (the framework's export, untouched) and
``NAME.npz`` (``lifgate.compilers.nir_reference``: the input ``x``, held at every step, the
framework's spikes ``spikes0``, ``spikes1``, ... per layer [T, N], an LI readout's
``membrane``, and ``meta``: framework, versions, model, the ``lifgate import-nir`` options that
match the framework's neuron, and ``expect``: ``matches`` (spike counts within 1 %),
``differs`` (a documented semantic difference) or ``refused``). ``fixtures.json`` lists them
all. Seeds are fixed; the weights are
random (not trained), scaled so that every layer fires at a moderate rate.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import nir
import numpy as np
import torch

T = 100  # steps recorded
# The fixtures must match the framework's spike counts within 1 %, so they ask for every
# parameter within 1 % of its typical magnitude (the default, 5 %, leaves 8-bit weights, with
# which a reset-to-0 IAF on a constant input, a periodic process, drifts by whole steps).
STRICT = ["--warn-error", "1"]
SEED = 7


def versions(*names):
    return {n: version(n) for n in ("torch", "nir", *names)}


def spike_input(n, seed=SEED, p=0.5):
    return (np.random.default_rng(seed).random(n) < p).astype(np.int64)


def linear(n_in, n_out, gain, seed, bias=False):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n_out, n_in, generator=g) * gain)
        if bias:
            lin.bias.copy_(torch.randn(n_out, generator=g) * gain * 0.2)
    return lin


# --- snnTorch -----------------------------------------------------------------------------

def snntorch_leaky(reset_mechanism):
    """16 -> 12 -> 6, Leaky (beta 0.9, threshold 1). snnTorch's exporter writes dt = 1e-4."""
    import snntorch as snn
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(SEED)
    fc1, fc2 = linear(16, 12, 0.45, SEED, bias=True), linear(12, 6, 0.6, SEED + 1)
    # Per-neuron beta and threshold: with scalars the exporter writes LIF nodes of type [],
    # which nir >= 1.0.6 refuses after a [12] Linear.
    lif1 = snn.Leaky(beta=torch.full((12,), 0.9), threshold=torch.ones(12),
                     reset_mechanism=reset_mechanism, init_hidden=True)
    lif2 = snn.Leaky(beta=torch.full((6,), 0.9), threshold=torch.ones(6),
                     reset_mechanism=reset_mechanism, init_hidden=True, output=True)
    net = torch.nn.Sequential(fc1, lif1, fc2, lif2)
    # The documented call, export_to_nir(net, sample), writes the input type with the batch
    # dimension ([1, 16]) and the first node's without ([16]); nir >= 1.0.6 then refuses the
    # graph ("Type inference error"). ignore_dims=[0] drops the batch dimension.
    graph = export_to_nir(net, torch.zeros(1, 16), ignore_dims=[0])
    x = spike_input(16)
    xt = torch.tensor(x, dtype=torch.float32)[None]
    snn_utils.reset(net)
    s1, s2 = [], []
    with torch.no_grad():
        for _ in range(T):
            a = lif1(fc1(xt))
            b, _ = lif2(fc2(a))
            s1.append(a[0].numpy())
            s2.append(b[0].numpy())
    return graph, x, [np.array(s1), np.array(s2)], None, dict(
        framework="snnTorch", versions=versions("snntorch"),
        model=f"Linear(16,12,bias) Leaky(beta 0.9, thr 1, reset {reset_mechanism}) "
              f"Linear(12,6) Leaky",
        options=["--dt", "1e-4"]
        + (["--reset", "subtract-after-leak"] if reset_mechanism == "subtract" else [])
        + STRICT,
        expect="matches")


def snntorch_rleaky():
    """16 -> 8 RLeaky (all-to-all recurrent weights, subtract reset): exported as a nested
    graph with a recurrent loop ``lif -> w_rec -> lif``, which lifgate imports as a recurrent
    layer (``Layer.rec``)."""
    import snntorch as snn
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(SEED)
    fc = linear(16, 8, 0.5, SEED + 8)
    rlif = snn.RLeaky(beta=torch.full((8,), 0.9), threshold=torch.ones(8), linear_features=8,
                      init_hidden=True, output=True)
    net = torch.nn.Sequential(fc, rlif)
    graph = export_to_nir(net, torch.zeros(1, 16), ignore_dims=[0])
    x = spike_input(16)
    xt = torch.tensor(x, dtype=torch.float32)[None]
    snn_utils.reset(net)
    s1 = []
    with torch.no_grad():
        for _ in range(T):
            a, _ = rlif(fc(xt))
            s1.append(a[0].numpy())
    return graph, x, [np.array(s1)], None, dict(
        framework="snnTorch", versions=versions("snntorch"),
        model="Linear(16,8) RLeaky(beta 0.9, thr 1, all-to-all)",
        options=["--dt", "1e-4", "--reset", "subtract-after-leak"] + STRICT,
        expect="matches")


# --- Norse --------------------------------------------------------------------------------

def norse_lifbox(readout):
    """16 -> 12 -> 6: LIFBoxCell (tau_mem 10 ms), then LIFBoxCell or an LIBoxCell readout;
    dt = 1 ms (Norse's exporter default)."""
    from norse.torch import (
        LIBoxCell,
        LIBoxParameters,
        LIFBoxCell,
        LIFBoxParameters,
        SequentialState,
    )
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(SEED)
    fc1, fc2 = linear(16, 12, 4.0, SEED + 2, bias=True), linear(12, 6, 5.0, SEED + 3)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(1.0))
    lif1 = LIFBoxCell(p)
    last = LIBoxCell(LIBoxParameters(tau_mem_inv=torch.tensor(100.0))) if readout \
        else LIFBoxCell(p)
    net = SequentialState(fc1, lif1, fc2, last)
    graph = to_nir(net, torch.zeros(1, 16), dt=1e-3)
    x = spike_input(16)
    xt = torch.tensor(x, dtype=torch.float32)[None]
    st1 = st2 = None
    s1, s2 = [], []
    with torch.no_grad():
        for _ in range(T):
            a, st1 = lif1(fc1(xt), st1)
            b, st2 = last(fc2(a), st2)
            s1.append(a[0].numpy())
            s2.append(b[0].numpy())
    spikes = [np.array(s1)] if readout else [np.array(s1), np.array(s2)]
    return graph, x, spikes, np.array(s2) if readout else None, dict(
        framework="Norse", versions=versions("norse"),
        model="Linear(16,12,bias) LIFBoxCell(tau_mem 10 ms, v_th 1) Linear(12,6) "
              + ("LIBoxCell(tau_mem 10 ms)" if readout else "LIFBoxCell"),
        # Norse 1.1.0 writes tau = dt / tau_mem_inv = dt * tau_mem (1e-5 for 10 ms at dt 1 ms):
        # read with dt' = dt^2 every ratio dt'/tau' equals the true dt/tau_mem.
        options=["--dt", "1e-6"] + STRICT, expect="matches")


# --- sinabs -------------------------------------------------------------------------------

def sinabs_iaf(reset, conv=False, multi=False):
    """IAF with SingleSpike (spikes when v >= threshold); reset to 0 or MembraneSubtract.
    Dense 16 -> 12 -> 6, or conv: 1x6x6 -> Conv2d(1, 2, 3) -> 2x4x4 -> IAF -> SumPool2d(2)
    -> Flatten -> Linear(8, 6) -> IAF. sinabs' IAF has no dt: NIR dt = 1."""
    import sinabs
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike, SingleSpike

    torch.manual_seed(SEED)
    rf = MembraneSubtract() if reset == "subtract" else MembraneReset()
    fn = MultiSpike if multi else SingleSpike  # multi: larger weights, steps need 2+ spikes
    if conv:
        c = torch.nn.Conv2d(1, 2, 3, bias=False)
        with torch.no_grad():
            c.weight.copy_(torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(5))
                           * 0.3)
        layers = [c, sl.IAFSqueeze(batch_size=1, spike_fn=fn, reset_fn=rf),
                  sl.SumPool2d(2),
                  torch.nn.Flatten(), linear(8, 6, 0.5, SEED + 5),
                  sl.IAFSqueeze(batch_size=1, spike_fn=fn, reset_fn=rf)]
        shape = (1, 6, 6)
    else:
        layers = [linear(16, 12, 0.9 if multi else 0.3, SEED + 4),
                  sl.IAFSqueeze(batch_size=1, spike_fn=fn, reset_fn=rf),
                  linear(12, 6, 0.45, SEED + 6),
                  sl.IAFSqueeze(batch_size=1, spike_fn=fn, reset_fn=rf)]
        shape = (16,)
    net = torch.nn.Sequential(*layers)
    n = int(np.prod(shape))
    x = spike_input(n)
    xt = torch.tensor(x, dtype=torch.float32).reshape(1, *shape).repeat(T, *[1] * len(shape))
    with torch.no_grad():
        # IAFSqueeze (batch 1) takes [time, ...]; run layer by layer to record both IAFs.
        h = xt
        spikes = []
        for layer in layers:
            h = layer(h)
            if isinstance(layer, sl.IAFSqueeze):
                spikes.append(h.reshape(T, -1).numpy())
        sinabs.reset_states(net)
        graph = sinabs.to_nir(net, torch.zeros(1, *shape))
    note = None
    if conv:
        # sinabs leaves the Conv2d's input_shape and the types of SumPool2d and Flatten as
        # None, which nir.write cannot store ("One of data, shape or dtype must be
        # specified"): fill them in.
        types = {nir.SumPool2d: ([2, 4, 4], [2, 2, 2]), nir.Flatten: ([2, 2, 2], [8])}
        for node in graph.nodes.values():
            if type(node) in types and node.input_type.get("input") is None:
                i, o = types[type(node)]
                node.input_type = {"input": np.array(i)}
                node.output_type = {"output": np.array(o)}
            if isinstance(node, nir.Conv2d) and node.input_shape is None:
                node.input_shape = np.array([6, 6])
        note = ("Conv2d input_shape and the types of SumPool2d and Flatten filled in (sinabs "
                "writes None, which nir.write cannot store)")
    opts = ["--dt", "1", "--fire", "ge"] + (["--reset", "subtract"] if reset == "subtract"
                                            else []) + STRICT
    if not conv:
        # 12-bit weights as the snnTorch and Norse fixtures pick (10 would do): the same
        # 16-12-6 design, so their RTL tests share one Verilator build.
        opts += ["--w-width", "12"]
    if multi:
        # lifgate's multi-spike output (docs/numerics.md): up to 15 spikes a step; this
        # run needs 9 (layer 1)
        opts += ["--spike-max", "15"]
    return graph, x, spikes, None, dict(
        framework="sinabs", versions=versions("sinabs"),
        model=("Conv2d(1,2,3) IAF SumPool2d(2) Flatten Linear(8,6) IAF" if conv else
               "Linear(16,12) IAF Linear(12,6) IAF")
        + f", {'MultiSpike' if multi else 'SingleSpike'}, reset {reset}",
        options=opts, expect="matches",
        **({"note": note} if note else {}))


FIXTURES = {
    "snntorch_leaky_zero": lambda: snntorch_leaky("zero"),
    "snntorch_leaky_subtract": lambda: snntorch_leaky("subtract"),
    "norse_lifbox": lambda: norse_lifbox(False),
    "norse_li_readout": lambda: norse_lifbox(True),
    "sinabs_iaf_subtract": lambda: sinabs_iaf("subtract"),
    "sinabs_iaf_reset": lambda: sinabs_iaf("zero"),
    "sinabs_conv": lambda: sinabs_iaf("subtract", conv=True),
    "sinabs_iaf_multispike": lambda: sinabs_iaf("subtract", multi=True),
    "snntorch_rleaky": snntorch_rleaky,
}


def main(out: Path, only=()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    listing_file = out / "fixtures.json"
    listing = json.loads(listing_file.read_text()) if listing_file.exists() else {}
    for name, make in FIXTURES.items():
        if only and name not in only:
            continue
        graph, x, spikes, membrane, meta = make()
        nir.write(out / f"{name}.nir", graph)
        arrays = {f"spikes{k}": s.astype(np.int16) for k, s in enumerate(spikes)}
        if membrane is not None:
            arrays["membrane"] = membrane.astype(np.float64)
        meta["steps"] = T
        np.savez_compressed(out / f"{name}.npz", x=x, meta=json.dumps(meta), **arrays)
        listing[name] = meta
        counts = [int(s.sum()) for s in spikes]
        print(f"{name}: {meta['model']}; spikes per layer {counts}")
    listing_file.write_text(json.dumps(dict(sorted(listing.items())), indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent, sys.argv[2:])
