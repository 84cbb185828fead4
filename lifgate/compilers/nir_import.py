"""Import NIR graphs (https://neuroir.org, the ``nir`` package) onto a lifgate network.

Supported: a chain ``Input -> (Affine | Linear) -> (LIF | IF) -> ... -> Output``; each weight
node followed by a neuron node becomes one layer (``lifgate.golden.synapse.Layer``). CubaLIF
is refused (lifgate neurons have no synaptic current state); so is any other node, any branch,
and any parameter lifgate cannot hold; the message names the node.

Discretisation (forward Euler with step ``dt``, ``docs/networks.md``, "NIR import"), with a
membrane scale ``s`` (integer units per NIR voltage unit) and per neuron ``g = dt * R / tau``
(LIF) or ``g = dt * R`` (IF):

* ``W_int = round(s * g * W)``, ``bias = round(s * g * b)`` (Affine), one weight row per neuron;
* LIF: ``leak_mode = MULT``, ``D = round((1 - dt / tau) * 2^F)``, ``v_rest = round(s * v_leak)``;
  IF: ``leak_mode = CONST``, ``leak = 0``;
* ``v_th = round(s * v_threshold) + 1`` (NIR spikes when ``v > v_threshold``, lifgate when
  ``v >= v_th``), ``v_reset = round(s * v_reset)``, ``reset_mode = VALUE``, ``t_ref = 0``,
  ``v_init = 0``;
* the first layer's inputs are spikes (``x_width = 1``) unless told otherwise.

lifgate checks the threshold on the membrane stored at the start of a step (docs/numerics.md):
a spike shows one step after the integration that crossed the threshold.
:func:`export_nir` writes a lifgate network as such a graph (``s = 1``), so importing it back
with ``scale=1`` gives the same integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lifgate.config import ArrayShape, Config, ConfigError, LeakMode, NeuronParams, ResetMode
from lifgate.golden.synapse import Layer, Network

__all__ = ["Import", "export_nir", "import_nir", "load_nir"]


def _nir():
    try:
        import nir  # optional (the networks extra): only NIR import needs it
    except ImportError:
        raise ConfigError("NIR import needs the nir package: pip install 'lifgate[networks]'") \
            from None
    return nir


@dataclass
class Import:
    """The result of :func:`import_nir`.

    Members
    -------
    network : Network
    dt : float
    scale : list of float
        Per layer, integer membrane units per NIR voltage unit.
    nodes : list of (str, str)
        ``(weight node, neuron node)`` names of each layer.
    errors : dict
        Per parameter, the largest absolute quantisation error in NIR units (``|q / s - x|``
        for voltages, ``|q / (s g) - x|`` for weights and biases, ``|tau_eff - tau|`` for tau)
        and the largest relative error.
    """

    network: Network
    dt: float
    scale: float
    nodes: list
    errors: dict = field(default_factory=dict)

    def report(self) -> str:
        lines = [
            f"NIR import: {len(self.network.layers)} layer(s), inputs {self.network.inputs}, "
            f"neurons {[layer.neurons for layer in self.network.layers]}",
            f"  dt = {self.dt:g} (forward Euler), membrane scale s per layer = "
            f"{[f'{s:g}' for s in self.scale]} LSB per unit",
            "  reset mode: value (NIR resets to v_reset); refractory period: 0 steps (NIR has "
            "none)",
            "  threshold: NIR spikes when v > v_threshold; lifgate v_th = round(s v_threshold) + 1",
            "  timing: lifgate checks the threshold on the stored membrane, so a spike shows one "
            "step after the crossing; layer l sees layer l-1's spikes of the same step",
            "  quantisation error per parameter (max absolute in NIR units; relative to the "
            "node's largest |value|):",
        ]
        for name, (ab, rel) in self.errors.items():
            lines.append(f"    {name:<12} {ab:12.4g} {100 * rel:9.3f} %")
        return "\n".join(lines)


def load_nir(path):
    """``nir.read(path)``; every way a file can be wrong is one-line :class:`ConfigError`.

    NIR checks a node's parameter shapes with a bare ``assert`` while reading; that becomes a
    message naming the node and the shapes of its parameters (:func:`_shape_mismatch`).
    """
    nir = _nir()
    try:
        return nir.read(path)
    except AssertionError as e:
        detail = _shape_mismatch(path) or str(e) or "a node's parameters do not agree"
        raise ConfigError(f"cannot read NIR graph {str(path)!r}: {detail}") from None
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"cannot read NIR graph {str(path)!r}: {text[:200]}") from None


def _shape_mismatch(path) -> str | None:
    """The first node of a NIR file whose parameters differ in shape, as a sentence."""
    try:
        import h5py  # optional: comes with nir (the networks extra), only for this message

        with h5py.File(path, "r") as f:
            nodes = f["node"]["nodes"]
            for name in nodes:
                node = nodes[name]
                if not isinstance(node, h5py.Group) or "weight" in node:
                    continue  # Affine, Linear, Conv: weight and bias differ in shape
                shapes = {k: node[k].shape for k in node
                          if isinstance(node[k], h5py.Dataset) and k not in ("type", "shape")}
                if len({sh for sh in shapes.values() if sh != ()}) > 1:
                    listed = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items()))
                    return (f"node {name!r}: parameters must all have the same shape, not "
                            f"{listed}")
    except Exception:  # noqa: BLE001 - only a better message is at stake; the caller has one
        return None
    return None


def _arr(node_name, pname, value, n=None):
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if n is not None:
        if a.size == 1:
            a = np.full(n, float(a[0]))
        if a.size != n:
            raise ConfigError(f"node {node_name!r}: parameter {pname!r} has {a.size} values, "
                              f"expected {n}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"node {node_name!r}: parameter {pname!r} must be finite")
    return a


def _chain(graph):
    """Node names from the Input to the Output, refusing anything but a simple chain."""
    nir = _nir()
    nodes = graph.nodes
    succ, pred = {}, {}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise ConfigError(f"edge ({a!r}, {b!r}) names an unknown node {end!r}")
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ConfigError(f"node {name!r}: nested graphs are not supported")
        if len(succ.get(name, [])) > 1:
            raise ConfigError(f"node {name!r} has {len(succ[name])} successors: only chains "
                              f"Input -> ... -> Output are supported")
        if len(pred.get(name, [])) > 1:
            raise ConfigError(f"node {name!r} has {len(pred[name])} inputs: only chains are "
                              f"supported")
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise ConfigError(f"the graph must have exactly one Input node, not {len(inputs)}")
    order = [inputs[0]]
    while succ.get(order[-1]):
        nxt = succ[order[-1]][0]
        if nxt in order:
            raise ConfigError(f"node {nxt!r} closes a cycle: recurrent graphs are not supported")
        order.append(nxt)
    if not isinstance(nodes[order[-1]], nir.Output):
        raise ConfigError(f"the chain from {inputs[0]!r} must end in an Output node, not "
                          f"{order[-1]!r} ({type(nodes[order[-1]]).__name__})")
    unused = set(nodes) - set(order)
    if unused:
        raise ConfigError(f"node(s) {sorted(unused)} are not on the Input -> Output chain")
    return order


def _lanes(n):
    return next(p for p in (8, 4, 2, 1) if n % p == 0)


def import_nir(graph, *, dt: float | None = None, scale: float | None = None,
               v_width: int = 16, i_width: int = 16, w_width: int = 8, decay_frac: int = 16,
               x_width: int = 1) -> Import:
    """Map ``graph`` (a ``nir.NIRGraph`` or a path) onto a :class:`Network`.

    ``dt`` defaults to the graph's ``metadata["dt"]``; without either, ConfigError. ``scale``
    (membrane LSBs per NIR voltage unit; one number, or one per layer) defaults, per layer, to
    the largest power of two that keeps every voltage and bias within half the membrane range
    and every weight within ``w_width`` bits.
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        graph = load_nir(graph)
    if dt is None:
        dt = (graph.metadata or {}).get("dt")
        if dt is None:
            raise ConfigError("the graph has no metadata 'dt': give the time step with --dt")
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"parameter 'dt' must be a positive number, not {dt!r}")
    pairs = _layer_pairs(nir, graph)
    raw = _float_layers(nir, graph, pairs, dt)
    scales = _scales(raw, scale, v_width=v_width, w_width=w_width)
    errs = {}
    layers = [_quantize_layer(x, s, dt, errs, v_width=v_width, i_width=i_width,
                              w_width=w_width, decay_frac=decay_frac)
              for x, s in zip(raw, scales, strict=True)]
    net = Network(tuple(layers), w_width=w_width, x_width=x_width)
    return Import(net, dt, scales, pairs, errs)


def _not_cuba(nir, name, node) -> None:
    if isinstance(node, nir.CubaLIF):
        raise ConfigError(
            f"node {name!r} (CubaLIF) is not representable: lifgate neurons have no "
            f"synaptic current state (tau_syn); use LIF or IF")


def _layer_pairs(nir, graph) -> list[tuple[str, str]]:
    """``(weight node, neuron node)`` of every layer of the chain ``graph``."""
    body = _chain(graph)[1:-1]
    pairs = []
    k = 0
    while k < len(body):
        name = body[k]
        node = graph.nodes[name]
        _not_cuba(nir, name, node)
        if not isinstance(node, (nir.Affine, nir.Linear)):
            raise ConfigError(
                f"node {name!r} ({type(node).__name__}) is not supported here: expected Affine "
                f"or Linear (supported: Input, Output, Affine, Linear, LIF, IF)")
        if k + 1 >= len(body):
            raise ConfigError(f"node {name!r} must be followed by a LIF or IF node")
        nname = body[k + 1]
        nnode = graph.nodes[nname]
        _not_cuba(nir, nname, nnode)
        if not isinstance(nnode, (nir.LIF, nir.IF)):
            raise ConfigError(
                f"node {nname!r} ({type(nnode).__name__}) is not supported after {name!r}: "
                f"expected LIF or IF (supported: Input, Output, Affine, Linear, LIF, IF)")
        pairs.append((name, nname))
        k += 2
    if not pairs:
        raise ConfigError("the graph has no (Affine | Linear) -> (LIF | IF) layer")
    return pairs


def _float_layers(nir, graph, pairs, dt: float) -> list[dict]:
    """The float description of every layer: weights, bias, gain ``g``, voltages, tau."""
    raw = []
    fan_in = None
    for wname, nname in pairs:
        wnode, nnode = graph.nodes[wname], graph.nodes[nname]
        w = np.asarray(wnode.weight, dtype=np.float64)
        if w.ndim != 2:
            raise ConfigError(f"node {wname!r}: weight must be a matrix [out, in], not {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ConfigError(f"node {wname!r}: parameter 'weight' must be finite")
        n, m = w.shape
        if fan_in is not None and m != fan_in:
            raise ConfigError(f"node {wname!r}: weight has {m} inputs, the layer before has "
                              f"{fan_in} neurons")
        fan_in = n
        b = _arr(wname, "bias", wnode.bias, n) if isinstance(wnode, nir.Affine) else np.zeros(n)
        r = _arr(nname, "r", nnode.r, n)
        vth = _arr(nname, "v_threshold", nnode.v_threshold, n)
        vreset = _arr(nname, "v_reset", nnode.v_reset, n)
        if isinstance(nnode, nir.LIF):
            tau = _arr(nname, "tau", nnode.tau, n)
            if np.any(tau < dt):
                raise ConfigError(f"node {nname!r}: parameter 'tau' must be >= dt ({dt:g}) for "
                                  f"a stable Euler step, not {tau.min():g}")
            vleak = _arr(nname, "v_leak", nnode.v_leak, n)
            g = dt * r / tau
        else:
            tau, vleak = None, np.zeros(n)
            g = dt * r
        raw.append(dict(w=w, b=b, g=g, vth=vth, vreset=vreset, vleak=vleak, tau=tau,
                        wname=wname, nname=nname))
    return raw


def _scales(raw, scale, *, v_width: int, w_width: int) -> list[float]:
    """The membrane scale of every layer: given, or the largest power of two that fits."""
    vmax = (1 << (v_width - 1)) - 1
    wmax = (1 << (w_width - 1)) - 1
    if scale is None or np.isscalar(scale):
        scales = [scale] * len(raw)
    else:
        scales = list(scale)
        if len(scales) != len(raw):
            raise ConfigError(f"parameter 'scale' must be one number or {len(raw)}, not "
                              f"{len(scales)}")
    for n, x in enumerate(raw):
        s = scales[n]
        if s is None:
            # Layers are coupled only through spikes, so each has its own membrane scale.
            vbig = max(np.abs(x[k]).max() for k in ("vth", "vreset", "vleak"))
            wbig = np.abs(x["g"][:, None] * x["w"]).max()
            bbig = np.abs(x["g"] * x["b"]).max()
            limits = [vmax / 2 / vbig if vbig > 0 else np.inf,
                      wmax / wbig if wbig > 0 else np.inf,
                      vmax / 2 / bbig if bbig > 0 else np.inf]
            s = min(limits)
            s = float(2.0 ** np.floor(np.log2(s))) if np.isfinite(s) else 1.0
        s = float(s)
        if not (np.isfinite(s) and s > 0):
            raise ConfigError(f"parameter 'scale' must be a positive number, not {s!r}")
        scales[n] = s
    return scales


def _note_error(errs: dict, name: str, exact, q, unit) -> None:
    """Record the quantisation error of one parameter of a node in ``errs``, absolute and
    relative to the largest magnitude of the parameter in the node (full scale)."""
    ab = float(np.abs(q / unit - exact).max(initial=0))
    big = float(np.abs(exact).max(initial=0))
    rel = ab / big if big > 0 else 0.0
    old = errs.get(name, (0.0, 0.0))
    errs[name] = (max(old[0], ab), max(old[1], rel))


def _fit(name: str, node: str, q, lo: int, hi: int, scale: float):
    if q.size and (q.min() < lo or q.max() > hi):
        raise ConfigError(f"node {node!r}: parameter {name!r} needs [{q.min()}, {q.max()}] "
                          f"at scale {scale:g}, beyond [{lo}, {hi}]; give a smaller --scale "
                          f"or wider widths")
    return q.astype(np.int64)


def _quantize_layer(x: dict, scale: float, dt: float, errs: dict, *, v_width: int,
                    i_width: int, w_width: int, decay_frac: int) -> Layer:
    """One float layer (of :func:`_float_layers`) at ``scale`` as a lifgate :class:`Layer`;
    its quantisation errors go into ``errs``."""
    vmax = (1 << (v_width - 1)) - 1
    wmax = (1 << (w_width - 1)) - 1
    F = decay_frac
    n = len(x["g"])
    unit_w = scale * x["g"][:, None]
    wq = _fit("weight", x["wname"], np.round(unit_w * x["w"]), -wmax - 1, wmax, scale)
    _note_error(errs, "weight", x["w"], wq, unit_w)
    bq = _fit("bias", x["wname"], np.round(scale * x["g"] * x["b"]), -vmax - 1, vmax, scale)
    _note_error(errs, "bias", x["b"], bq, scale * x["g"])
    thq = _fit("v_threshold", x["nname"], np.round(scale * x["vth"]) + 1, -vmax - 1, vmax,
               scale)
    _note_error(errs, "v_threshold", x["vth"], thq - 1, scale)
    rq = _fit("v_reset", x["nname"], np.round(scale * x["vreset"]), -vmax - 1, vmax, scale)
    _note_error(errs, "v_reset", x["vreset"], rq, scale)
    lq = _fit("v_leak", x["nname"], np.round(scale * x["vleak"]), -vmax - 1, vmax, scale)
    if x["tau"] is not None:
        _note_error(errs, "v_leak", x["vleak"], lq, scale)
        D = np.round((1 - dt / x["tau"]) * (1 << F)).astype(np.int64)
        D = np.clip(D, 0, (1 << F) - 1)
        tau_eff = dt * (1 << F) / ((1 << F) - D)
        ab = np.abs(tau_eff - x["tau"])
        old = errs.get("tau", (0.0, 0.0))
        errs["tau"] = (max(old[0], float(ab.max())), max(old[1], float((ab / x["tau"]).max())))
    params = []
    for j in range(n):
        if x["tau"] is not None:
            mode, leak = LeakMode.MULT, int(D[j])
        else:
            mode, leak = LeakMode.CONST, 0
        params.append(NeuronParams(
            v_th=int(thq[j]), v_reset=int(rq[j]), v_rest=int(lq[j]) if x["tau"] is not None
            else 0, v_init=0, bias=int(bq[j]), leak_mode=mode, leak=leak,
            reset_mode=ResetMode.VALUE, t_ref=0))
    shape = ArrayShape(neurons=n, lanes=_lanes(n), groups=n, v_width=v_width,
                       i_width=i_width, ref_width=1, decay_frac=F,
                       leak_modes=(LeakMode.MULT, LeakMode.CONST))
    return Layer(wq, Config(shape=shape, params=tuple(params)))


def export_nir(network: Network, *, dt: float = 1e-3):
    """A ``nir.NIRGraph`` of ``network`` at scale 1 (``import_nir(.., scale=1)`` inverts it).

    Every layer must be exportable: reset VALUE, ``t_ref = 0``, ``v_init = 0``, MULT leak
    (LIF) or CONST leak 0 (IF), and (MULT) ``D < 2^F``. ``metadata["dt"]`` holds ``dt``.
    """
    nir = _nir()
    nodes = {"input": nir.Input(input_type={"input": np.array([network.inputs])})}
    edges = []
    prev = "input"
    for n, layer in enumerate(network.layers):
        shape = layer.config.shape
        F = shape.decay_frac
        ps = [layer.config.neuron_params(j) for j in range(layer.neurons)]
        for j, p in enumerate(ps):
            where = f"layers[{n}] neuron {j}"
            if p.reset_mode != ResetMode.VALUE or p.t_ref or p.v_init:
                raise ConfigError(f"{where}: NIR export needs reset_mode value, t_ref 0 and "
                                  f"v_init 0")
            if p.leak_mode == LeakMode.SHIFT or (p.leak_mode == LeakMode.CONST and p.leak):
                raise ConfigError(f"{where}: NIR export needs a MULT leak or a CONST leak of 0")
        modes = {p.leak_mode for p in ps}
        if len(modes) != 1:
            raise ConfigError(f"layers[{n}]: NIR export needs one leak mode per layer")
        mult = modes == {LeakMode.MULT}
        if mult:
            D = np.array([p.leak for p in ps], dtype=np.float64)
            g = ((1 << F) - D) / (1 << F)  # dt / tau_eff
            tau = dt / g
        else:
            g = np.full(layer.neurons, dt)
        w = layer.weights / g[:, None]
        b = np.array([p.bias for p in ps], dtype=np.float64) / g
        vth = np.array([p.v_th - 1 for p in ps], dtype=np.float64)
        vreset = np.array([p.v_reset for p in ps], dtype=np.float64)
        wn, nn = f"affine{n}", ("lif" if mult else "if") + str(n)
        nodes[wn] = nir.Affine(weight=w, bias=b)
        ones = np.ones(layer.neurons)
        if mult:
            vleak = np.array([p.v_rest for p in ps], dtype=np.float64)
            nodes[nn] = nir.LIF(tau=tau, r=ones, v_leak=vleak, v_threshold=vth, v_reset=vreset)
        else:
            nodes[nn] = nir.IF(r=ones, v_threshold=vth, v_reset=vreset)
        edges += [(prev, wn), (wn, nn)]
        prev = nn
    nodes["output"] = nir.Output(output_type={"output": np.array([network.layers[-1].neurons])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt})
