"""Import NIR graphs (https://neuroir.org, the ``nir`` package) onto a lifgate network.

Supported (``docs/networks.md``, "NIR import", has the node-type table): a chain from the
``Input`` to the ``Output`` in which every neuron node (``LIF``, ``IF``, ``LI``, ``I``,
``Threshold``) is preceded by any number of linear nodes (``Affine``, ``Linear``, ``Scale``,
``Flatten``, ``Conv1d``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``), which are composed into one
dense weight matrix and bias: one lifgate layer (``lifgate.golden.synapse.Layer``) per neuron
node. A ``Delay`` of ``d`` whole steps (after the Input or a neuron node) becomes ``d`` relay
layers. Nested graphs are inlined first. A loop ``N -> Affine/Linear ... -> N`` at a neuron node
becomes the layer's recurrent weights (``Layer.rec``: its spikes of the previous step); branches
that leave one source and meet by summation are folded into one matrix; branches from earlier
neuron nodes into a neuron node are skip connections (``Layer.skip``, delayed to keep NIR's
timing: docs/networks.md, "Skip connections"). Refused, each with its reason: ``CubaLIF``/
``CubaLI`` (no synaptic current state), a skip from the Input, other cycles, ``LI``/``I``
anywhere but the last layer (their output is a membrane, not spikes), linear nodes after the
last neuron node, and any value lifgate cannot hold.

Discretisation (forward Euler with step ``dt``), with a membrane scale ``s`` (integer units per
NIR voltage unit) and per neuron ``g = dt * R / tau`` (LIF, LI), ``g = dt * R`` (IF, I) or
``g = 1`` (Threshold):

* ``W_int = round(s * g * W)``, ``bias = round(s * g * b)``, one weight row per neuron;
* LIF, LI: ``leak_mode = MULT``, ``D = round((1 - dt / tau) * 2^F)``, ``v_rest = round(s *
  v_leak)``; IF, I: ``leak_mode = CONST``, ``leak = 0``; Threshold: ``MULT`` with ``D = 0``
  (the membrane is the current of the step);
* ``v_th = round(s * v_threshold) + 1`` (NIR spikes when ``v > v_threshold``, lifgate when
  ``v >= v_th``; ``fire="ge"`` drops the ``+ 1``), ``v_reset = round(s * v_reset)``,
  ``reset_mode = VALUE`` (``reset="subtract"``: SUBTRACT; ``reset="subtract-after-leak"``:
  SUBTRACT_AFTER_LEAK, snnTorch's default ``Leaky``), ``t_ref = 0``, ``v_init = 0``;
  LI, I: ``v_th = v_reset = VMAX`` (the membrane is never changed by a spike);
* the first layer's inputs are spikes (``x_width = 1``);
* ``spike_max`` (default 1): the largest spike count of a neuron in one step, in every layer
  (``ArrayShape.spike_max``): sinabs' ``MultiSpike`` emits ``floor(v / v_th)`` spikes in a
  step and subtracts them all (``--fire ge --reset subtract --spike-max 15``); the next
  layer receives the counts (docs/numerics.md, "Multi-spike output").

Quantisation: unless given, the weight and membrane widths are the smallest of
:data:`W_WIDTHS` x :data:`V_WIDTHS` whose every parameter's error, relative to the parameter's
own typical magnitude (the median of its non-zero ``|values|``), is at most ``target``.

lifgate checks the threshold on the membrane stored at the start of a step (docs/numerics.md):
a spike shows one step after the integration that crossed the threshold.
:func:`export_nir` writes a lifgate network as such a graph (``s = 1``), so importing it back
with ``scale=1`` gives the same integers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from lifgate.checks import short_repr
from lifgate.config import (
    SPIKE_MAXES,
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    ResetMode,
)
from lifgate.golden.synapse import Layer, Network

__all__ = ["DEFAULT_TARGET", "Import", "RESETS", "V_WIDTHS", "W_WIDTHS", "export_nir", "import_nir",
           "load_nir", "read_nir"]

#: Weight widths tried, in order, when none is given.
W_WIDTHS = (8, 10, 12, 14, 16, 18)
#: Membrane widths tried, in order, when none is given.
V_WIDTHS = (16, 24, 32)
#: Default bound on every parameter's relative quantisation error (a warning above it).
DEFAULT_TARGET = 0.05

_NEURONS = ("LIF", "IF", "LI", "I", "Threshold")
#: The ``reset`` choices and the reset mode of each (docs/networks.md, framework table).
RESETS = {"value": ResetMode.VALUE, "subtract": ResetMode.SUBTRACT,
          "subtract-after-leak": ResetMode.SUBTRACT_AFTER_LEAK}
_LINEAR = ("Affine", "Linear", "Scale", "Flatten", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")
_SUPPORTED = ", ".join(("Input", "Output") + _LINEAR + _NEURONS) + ", Delay, nested graphs"


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
        ``(linear nodes, neuron node)`` names of each layer (the linear nodes joined by ``+``,
        ``-`` for none).
    errors : dict
        Per parameter, ``(abs, rel, zeroed, count)``: the largest absolute quantisation error in
        NIR units (``|q / s - x|`` for voltages, ``|q / (s g) - x|`` for weights and biases,
        ``|tau_eff - tau|`` for tau), that error relative to the parameter's typical magnitude
        (the median of its non-zero ``|values|`` in the node), how many non-zero values became
        0, and how many values there are.
    notes : list of str
        What the reader had to do to read the file (type check off, batch dimensions dropped,
        scalars broadcast, where ``dt`` came from).
    readout : str
        ``"spikes"``, or ``"membrane"`` when the last layer is an LI or I node.
    target : float
        The relative error above which a parameter is flagged.
    reset, fire : str
        The neuron options used (``value``/``subtract``, ``gt``/``ge``).
    shifts : list of int or None
        Per layer, the lifgate step at which the float model's step 0 shows: the number of
        spiking layers up to it (a spiking layer) or before it (an LI/I readout); None for
        the relay layers of a Delay.
    spike_max : int
        The largest spike count per neuron and step of every layer (1: one spike).
    """

    network: Network
    dt: float
    scale: list
    nodes: list
    errors: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    readout: str = "spikes"
    target: float = DEFAULT_TARGET
    reset: str = "value"
    fire: str = "gt"
    shifts: list = field(default_factory=list)
    spike_max: int = 1

    def warnings(self) -> list[str]:
        """One line per parameter whose relative error exceeds :attr:`target`."""
        out = []
        for name, (_ab, rel, zeroed, count) in self.errors.items():
            if rel > self.target:
                out.append(f"{name}: error {100 * rel:.3g} % of its typical magnitude (above "
                           f"{100 * self.target:g} %), {zeroed} of {count} non-zero values "
                           f"rounded to 0: give wider --w-width/--v-width or a larger --scale")
        return out

    def report(self) -> str:
        net = self.network
        sh = net.layers[0].config.shape
        reset = {"value": "value (NIR resets to v_reset)",
                 "subtract": "subtract (v - v_th, before the decay)",
                 "subtract-after-leak": "subtract-after-leak (v_th subtracted after the "
                                        "decay, snnTorch's Leaky)"}[self.reset]
        lines = [
            f"NIR import: {len(net.layers)} layer(s), inputs {net.inputs}, "
            f"neurons {[layer.neurons for layer in net.layers]}, readout {self.readout}",
            f"  dt = {self.dt:g} (forward Euler), membrane scale s per layer = "
            f"{[f'{s:g}' for s in self.scale]} LSB per unit",
            f"  widths: w_width {net.w_width}, v_width {sh.v_width}, i_width {sh.i_width}",
            f"  reset mode: {reset}; refractory period: 0 steps (NIR has none)",
            "  spikes per step: " + ("at most 1" if self.spike_max == 1 else
                                     f"a count, min(floor(v / v_th), {self.spike_max}), all "
                                     f"of them subtracted or reset (multi-spike)"),
            "  threshold: " + ("NIR spikes when v > v_threshold; lifgate v_th = round(s "
                               "v_threshold) + 1" if self.fire == "gt" else
                               "spikes when v >= v_threshold; v_th = round(s v_threshold)"),
            "  timing: lifgate checks the threshold on the stored membrane, so a spike shows one "
            "step after the crossing; layer l sees layer l-1's spikes of the same step",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("  quantisation error per parameter (max absolute in NIR units; relative "
                     "to the parameter's median non-zero |value|; non-zero values lost to 0):")
        for name, (ab, rel, zeroed, count) in self.errors.items():
            flag = "  WARNING" if rel > self.target else ""
            lines.append(f"    {name:<12} {ab:12.4g} {100 * rel:9.3f} % {zeroed:6d} of "
                         f"{count}{flag}")
        return "\n".join(lines)


def read_nir(path) -> tuple:
    """``(graph, notes)``: ``nir.read(path)``, or, when its type check fails (exporters that
    write a batch dimension, snnTorch 1.0 under nir >= 1.0.6), ``nir.read(path,
    type_check=False)`` with a note saying so. Every way a file can be wrong is a one-line
    :class:`ConfigError`; NIR's bare ``assert`` on a node's parameter shapes becomes a message
    naming the node and the shapes of its parameters (:func:`_shape_mismatch`).
    """
    nir = _nir()
    notes = []
    try:
        try:
            return nir.read(path), notes
        except ValueError as e:
            if "type" not in str(e).lower():
                raise
            text = " ".join(str(e).split())[:160]
            notes.append(f"the graph fails NIR's type check ({text}); read with "
                         f"type_check=False")
            return nir.read(path, type_check=False), notes
    except AssertionError as e:
        detail = _shape_mismatch(path) or str(e) or "a node's parameters do not agree"
        raise ConfigError(f"cannot read NIR graph {str(path)!r}: {detail}") from None
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"cannot read NIR graph {str(path)!r}: {text[:200]}") from None


def load_nir(path):
    """The graph of :func:`read_nir` (without its notes)."""
    return read_nir(path)[0]


def _shape_mismatch(path) -> str | None:
    """The first node of a NIR file whose parameters differ in shape, as a sentence."""
    try:
        import h5py  # optional: comes with nir (the networks extra), only for this message

        with h5py.File(path, "r") as f:
            return _mismatch_in(h5py, f["node"]["nodes"], "")
    except Exception:  # noqa: BLE001 - only a better message is at stake; the caller has one
        return None


def _mismatch_in(h5py, nodes, prefix: str) -> str | None:
    for name in nodes:
        node = nodes[name]
        if not isinstance(node, h5py.Group):
            continue
        if "nodes" in node:  # a nested graph
            found = _mismatch_in(h5py, node["nodes"], f"{prefix}{name}.")
            if found:
                return found
            continue
        if "weight" in node or "kernel_size" in node:
            continue  # Affine, Linear, Conv, pooling: parameters differ in shape
        shapes = {k: node[k].shape for k in node
                  if isinstance(node[k], h5py.Dataset) and k not in ("type", "shape")
                  and not k.endswith("_type")}
        if len({sh for sh in shapes.values() if sh != ()}) > 1:
            listed = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items()))
            return (f"node {prefix + name!r}: parameters must all have the same shape, not "
                    f"{listed}")
    return None


def _floats(node_name, pname, value) -> np.ndarray:
    """``value`` as a float64 array; anything that is not numbers is a ConfigError."""
    if value is None:
        raise ConfigError(f"node {node_name!r}: parameter {pname!r} is missing")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"node {node_name!r}: parameter {pname!r} must hold numbers, not "
                          f"{short_repr(value)}") from None
    return a


def _arr(node_name, pname, value, n=None):
    a = _floats(node_name, pname, value).reshape(-1)
    if n is not None:
        if a.size == 1:
            a = np.full(n, float(a[0]))
        if a.size != n:
            raise ConfigError(f"node {node_name!r}: parameter {pname!r} has {a.size} values, "
                              f"expected {n} (one per neuron, or one for all)")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"node {node_name!r}: parameter {pname!r} must be finite")
    return a


def _inline(nir, graph, prefix: str = ""):
    """``(nodes, edges, passthrough)`` of ``graph`` with every nested graph inlined: inner
    names become ``outer.inner``; the inner Input and Output nodes stay as pass-through links
    (named in ``passthrough``)."""
    nodes, edges, through = {}, [], set()
    ends = {}  # subgraph name -> (its Input names, its Output names), full names
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_through = _inline(nir, node, full + ".")
            nodes.update(sub_nodes)
            edges += sub_edges
            through |= sub_through
            ins = [full + "." + k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [full + "." + k for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            through |= set(ins) | set(outs)
            ends[name] = (ins, outs)
        else:
            nodes[full] = node

    def resolve(end, side):
        if end in ends:
            return ends[end][0 if side == "in" else 1]
        return [prefix + end]

    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes and prefix + end not in nodes:
                raise ConfigError(f"edge ({a!r}, {b!r}) names an unknown node {end!r}")
        edges += [(u, v) for u in resolve(a, "out") for v in resolve(b, "in")]
    return nodes, edges, through


def _no_cycle(nodes, succ) -> None:
    """Refuse a graph with a cycle (a recurrent edge), naming the edge that closes it."""
    state = {}
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(succ.get(root, [])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise ConfigError(f"edge ({node!r}, {nxt!r}) closes a cycle: recurrent edges "
                                  f"are not supported (lifgate layers have no feedback weights)")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, []))))


def _loops(nir, nodes, edges) -> tuple[list, dict]:
    """Take the recurrent loops out of the graph: a neuron node ``N`` with a path ``N -> A_1
    -> ... -> A_k -> N`` through Affine/Linear nodes (each with that one input and one
    successor) becomes ``N``'s recurrent weights. Returns the remaining edges and
    ``{N: [A_1, ..., A_k]}``; the loop's nodes are removed from ``nodes``."""
    succ, pred = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    loops = {}
    for name, node in list(nodes.items()):
        if type(node).__name__ not in _NEURONS:
            continue
        for first in succ.get(name, []):
            path, cur = [], first
            while (cur in nodes and type(nodes[cur]).__name__ in ("Affine", "Linear")
                   and pred.get(cur) == [path[-1] if path else name]
                   and len(succ.get(cur, [])) == 1 and cur not in path):
                path.append(cur)
                cur = succ[cur][0]
            if path and cur == name:
                if name in loops:
                    raise ConfigError(f"node {name!r} has two recurrent loops: give it one")
                loops[name] = path
    drop = {n for p in loops.values() for n in p}
    for n in drop:
        del nodes[n]
    return [(a, b) for a, b in edges if a not in drop and b not in drop], loops


def _branch_back(nodes, succ, pred, name, first):
    """``(source, path)``: from ``first`` (an input of ``name``) back through Affine/Linear
    nodes that have one input and feed only the next node of the path."""
    path, cur = [], first
    while (cur in nodes and type(nodes[cur]).__name__ in ("Affine", "Linear")
           and len(pred.get(cur, [])) == 1 and succ.get(cur) == [path[0] if path else name]):
        path.insert(0, cur)
        cur = pred[cur][0]
    return cur, path


def _branches(nir, nodes, edges, notes) -> list:
    """Fold branches that leave one source and meet by summation at a node (each through
    Affine/Linear nodes, or a direct edge: the identity) into one Affine node named
    ``<node>.sum`` (the sum of the branches' composed matrices and biases). Returns the new
    edges; ``nodes`` is updated. Branches from different sources are refused."""
    succ, pred = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for name in list(nodes):
        ins = pred.get(name, [])
        if len(ins) < 2:
            continue
        branches = [_branch_back(nodes, succ, pred, name, p) for p in ins]
        sources = sorted({src for src, _ in branches})
        if len(sources) != 1:
            raise ConfigError(f"node {name!r} has {len(ins)} inputs from different sources "
                              f"{sources}: only branches from one source that meet by "
                              f"summation (through Affine/Linear nodes) are supported")
        src = sources[0]
        if len(succ.get(src, [])) != len(ins) or len(set(ins)) != len(ins):
            raise ConfigError(f"node {src!r} feeds {succ.get(src)} and node {name!r} sums "
                              f"{ins}: branches must leave the source and meet at one node")
        total, bias, direct = _compose(nir, nodes, name, src, branches, notes)
        if total is None:
            raise ConfigError(f"node {name!r}: its {len(ins)} inputs are all direct edges "
                              f"from {src!r}; give the branches weights")
        rows, cols = total.shape
        if direct and rows != cols:
            raise ConfigError(f"node {name!r}: a direct edge from {src!r} sums "
                              f"{cols} values into {rows}")
        if direct:
            total = total + direct * np.eye(rows)
        merged = f"{name}.sum"
        drop = {k for _, path in branches for k in path}
        for k in drop:
            del nodes[k]
        nodes[merged] = nir.Affine(weight=total, bias=bias)
        edges = [(a, b) for a, b in edges if a not in drop and b not in drop
                 and (a, b) != (src, name)] + [(src, merged), (merged, name)]
        notes.append(f"node {name!r}: {len(ins)} branches from {src!r} summed into one "
                     f"matrix ({merged})")
        succ, pred = {}, {}
        for a, b in edges:
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
    return edges


def _adjacency(edges) -> tuple[dict, dict]:
    succ, pred = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    return succ, pred


def _topo(nodes, edges) -> dict | None:
    """``{node: rank}`` in a topological order of the graph (None if it has a cycle)."""
    succ, pred = _adjacency(edges)
    deg = {n: len(pred.get(n, [])) for n in nodes}
    ready = [n for n in nodes if not deg[n]]
    rank = {}
    while ready:
        n = ready.pop(0)
        rank[n] = len(rank)
        for m in succ.get(n, []):
            if m in deg:
                deg[m] -= 1
                if not deg[m]:
                    ready.append(m)
    return rank if len(rank) == len(nodes) else None


def _compose(nir, nodes, name, src, branches, notes) -> tuple:
    """``(M, b, direct)``: the sum of the composed matrices and biases of ``branches`` (each
    ``(src, path)`` through Affine/Linear nodes) from ``src`` into ``name`` (None, None if
    every branch is a direct edge) and the number of direct edges (identities)."""
    total = bias = None
    direct = 0
    for _, path in branches:
        if not path:
            direct += 1
            continue
        m = b = None
        for k in path:
            size = int(np.shape(nodes[k].weight)[1])
            mk, bk, _ = _linear(nir, k, nodes[k], (size,), notes)
            m, b = (mk, bk) if m is None else (mk @ m, mk @ b + bk)
        if total is not None and m.shape != total.shape:
            raise ConfigError(f"node {name!r}: its branches from {src!r} map {m.shape[1]} "
                              f"values to different sizes ({list(m.shape)} and "
                              f"{list(total.shape)})")
        total, bias = (m, b) if total is None else (total + m, bias + b)
    return total, bias, direct


def _skips(nir, nodes, edges, notes) -> tuple[list, dict]:
    """Take the skip connections out of the graph: a neuron node whose inputs come from
    several sources (each through Affine/Linear nodes, or a direct edge) keeps the branches
    from the latest source (in a topological order: the layer before it in the chain) and
    reads the others as skip connections. Returns the remaining edges and ``{node: [(source,
    M, b, direct, names), ...]}`` (:func:`_compose`); the skip branches' nodes are removed."""
    rank = _topo(nodes, edges)
    if rank is None:
        return edges, {}  # the chain check names the cycle
    skips = {}
    for name in sorted(nodes, key=rank.get):
        if type(nodes[name]).__name__ not in _NEURONS:
            continue
        succ, pred = _adjacency(edges)
        ins = pred.get(name, [])
        branches = [_branch_back(nodes, succ, pred, name, p) for p in ins]
        sources = {src for src, _ in branches}
        if len(sources) < 2:
            continue
        main = max(sources, key=lambda n: rank.get(n, -1))
        for src in sorted(sources - {main}, key=lambda n: rank.get(n, -1)):
            kind = type(nodes[src]).__name__ if src in nodes else "?"
            if kind == "Input":
                raise ConfigError(f"node {name!r} reads the Input {src!r} beside {main!r}: the "
                                  f"network input feeds the first layer only (a later layer's "
                                  f"synapse reads spike registers, not x)")
            if kind not in _NEURONS:
                raise ConfigError(f"node {name!r} has inputs from different sources "
                                  f"{sorted(sources)}: a skip connection must leave a neuron "
                                  f"node (through Affine/Linear nodes), not {src!r} ({kind})")
            mine = [br for br in branches if br[0] == src]
            drop = {k for _, path in mine for k in path}
            names = "+".join(k for _, path in mine for k in path) or "-"
            skips.setdefault(name, []).append((src, *_compose(nir, nodes, name, src, mine,
                                                              notes), names))
            for k in drop:
                del nodes[k]
            edges = [(a, b) for a, b in edges if a not in drop and b not in drop
                     and (a, b) != (src, name)]
            notes.append(f"node {name!r}: its input from {src!r} ({names}) is a skip "
                         f"connection (docs/networks.md, \"Skip connections\")")
    return edges, skips


def _chain(nir, nodes, edges) -> list[str]:
    """Node names from the Input to the Output, refusing anything but a simple chain."""
    succ, pred = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    _no_cycle(nodes, succ)
    for name in nodes:
        if len(succ.get(name, [])) > 1:
            raise ConfigError(f"node {name!r} has {len(succ[name])} successors: branches are "
                              f"not supported (only chains Input -> ... -> Output)")
        if len(pred.get(name, [])) > 1:
            raise ConfigError(f"node {name!r} has {len(pred[name])} inputs: branches that "
                              f"meet and recurrent edges are not supported (only chains)")
    inputs = [n for n in nodes if isinstance(nodes[n], nir.Input) and "." not in n]
    inputs = inputs or [n for n, v in nodes.items() if isinstance(v, nir.Input) and not pred.get(n)]
    if len(inputs) != 1:
        raise ConfigError(f"the graph must have exactly one Input node, not {len(inputs)}")
    order = [inputs[0]]
    while succ.get(order[-1]):
        nxt = succ[order[-1]][0]
        if nxt in order:
            raise ConfigError(f"edge ({order[-1]!r}, {nxt!r}) closes a cycle: recurrent "
                              f"edges are not supported (lifgate layers have no feedback "
                              f"weights)")
        order.append(nxt)
    if not isinstance(nodes[order[-1]], nir.Output):
        raise ConfigError(f"the chain from {inputs[0]!r} must end in an Output node, not "
                          f"{order[-1]!r} ({type(nodes[order[-1]]).__name__})")
    unused = set(nodes) - set(order)
    if unused:
        raise ConfigError(f"node(s) {sorted(unused)} are not on the Input -> Output chain")
    return order


def _io_shape(name, types, key, notes) -> tuple | None:
    """The shape in an Input's or Output's type (None if it has none)."""
    t = (types or {}).get(key)
    if t is None:
        return None
    shape = tuple(int(v) for v in np.asarray(t).reshape(-1))
    if not shape or min(shape) < 1:
        raise ConfigError(f"node {name!r}: its type must have positive sizes, not {list(shape)}")
    return shape


def _batched(node, shape) -> bool:
    """Whether an input ``shape`` with a leading 1 carries a batch dimension for ``node``:
    one more dimension than a weight matrix or a kernel takes."""
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        return len(shape) == 2
    if kind in ("Conv1d", "Conv2d"):
        return len(shape) == np.ndim(node.weight)
    if kind in ("SumPool2d", "AvgPool2d"):
        return len(shape) == 4
    return len(shape) == 2  # a neuron node: neurons are a vector


def _tup(name, pname, value, nd: int) -> tuple:
    a = _floats(name, pname, value).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, nd)
    if a.size != nd or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)) or \
            np.abs(a).max() > 1 << 20:
        raise ConfigError(f"node {name!r}: parameter {pname!r} must be {nd} integer(s), not "
                          f"{a.tolist()}")
    return tuple(int(v) for v in a)


def _conv(name, w, bias, shape, stride, padding, dilation, groups):
    """``(M, b, out_shape)``: a convolution over ``shape`` (channels first) as a dense matrix
    over the flattened (row-major) input, and its bias per output element."""
    w = _floats(name, "weight", w)
    nd = w.ndim - 2
    if nd not in (1, 2) or len(shape) != nd + 1:
        raise ConfigError(f"node {name!r}: a {nd}-d kernel {w.shape} cannot take an input of "
                          f"shape {list(shape)} (channels first); give the Input its shape")
    if not np.all(np.isfinite(w)):
        raise ConfigError(f"node {name!r}: parameter 'weight' must be finite")
    groups = _tup(name, "groups", groups, 1)[0]
    ci, co, cpg = shape[0], w.shape[0], w.shape[1]
    if groups < 1 or ci != cpg * groups or co % groups:
        raise ConfigError(f"node {name!r}: kernel {w.shape} with groups {groups} does not fit "
                          f"{ci} input channels")
    k = w.shape[2:]
    st = _tup(name, "stride", stride, nd)
    dl = _tup(name, "dilation", dilation, nd)
    if isinstance(padding, str) and padding in ("valid", "same"):
        pd = (0,) * nd if padding == "valid" else tuple(dl[i] * (k[i] - 1) // 2
                                                        for i in range(nd))
    else:
        pd = _tup(name, "padding", padding, nd)
    if min(st + dl + k) < 1 or min(pd) < 0:
        raise ConfigError(f"node {name!r}: kernel {list(k)}, stride {list(st)} and dilation "
                          f"{list(dl)} must be >= 1 and padding {list(pd)} >= 0")
    insz = tuple(shape[1:])
    out = tuple((insz[i] + 2 * pd[i] - dl[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(nd))
    if min(out) < 1 or co * np.prod(out) * ci * np.prod(insz) > 4e7:
        raise ConfigError(f"node {name!r}: output {[co, *out]} of input {list(shape)} is empty "
                          f"or too large to unroll into weight rows")
    m = np.zeros((co * int(np.prod(out)), ci * int(np.prod(insz))))
    for o in range(co):
        gi = o // (co // groups)
        for opos in itertools.product(*[range(n) for n in out]):
            row = np.ravel_multi_index((o, *opos), (co, *out))
            for c, kk in itertools.product(range(cpg), itertools.product(*[range(n) for n in k])):
                ip = tuple(opos[i] * st[i] - pd[i] + kk[i] * dl[i] for i in range(nd))
                if all(0 <= ip[i] < insz[i] for i in range(nd)):
                    m[row, np.ravel_multi_index((gi * cpg + c, *ip), (ci, *insz))] += w[(o, c, *kk)]
    b = np.zeros(co) if bias is None else _arr(name, "bias", bias, co)
    return m, np.repeat(b, int(np.prod(out))), (co, *out)


def _pool(name, node, shape, average: bool):
    k = _tup(name, "kernel_size", node.kernel_size, 2)
    if len(shape) != 3:
        raise ConfigError(f"node {name!r}: pooling needs an input [channels, height, width], not "
                          f"{list(shape)}; give the Input its shape")
    c = shape[0]
    w = np.full((c, 1, *k), 1.0 / (k[0] * k[1]) if average else 1.0)
    return _conv(name, w, None, shape, node.stride, node.padding, 1, c)


def _refuse(nir, name, node) -> None:
    """The reason a node type cannot be imported, as a ConfigError (if it cannot)."""
    kind = type(node).__name__
    reasons = {
        "CubaLIF": "lifgate neurons have no synaptic current state (tau_syn); use LIF or IF",
        "CubaLI": "lifgate neurons have no synaptic current state (tau_syn); use LI",
    }
    if kind in reasons:
        raise ConfigError(f"node {name!r} ({kind}) is not representable: {reasons[kind]}")
    if kind not in _LINEAR + _NEURONS + ("Input", "Output", "Delay"):
        raise ConfigError(f"node {name!r} ({kind}) is not supported (supported: {_SUPPORTED})")


def _linear(nir, name, node, shape, notes):
    """``(M, b, out_shape)`` of one linear node over the flattened input of ``shape``."""
    size = int(np.prod(shape))
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        w = _floats(name, "weight", node.weight)
        if w.ndim != 2:
            raise ConfigError(f"node {name!r}: weight must be a matrix [out, in], not "
                              f"{list(w.shape)}")
        if not np.all(np.isfinite(w)):
            raise ConfigError(f"node {name!r}: parameter 'weight' must be finite")
        if w.shape[1] != size:
            raise ConfigError(f"node {name!r}: weight has {w.shape[1]} inputs, the node "
                              f"before gives {size} values")
        b = _arr(name, "bias", node.bias, w.shape[0]) if kind == "Affine" else \
            np.zeros(w.shape[0])
        return w, b, (w.shape[0],)
    if kind == "Scale":
        s = _arr(name, "scale", node.scale, size)
        return np.diag(s), np.zeros(size), shape
    if kind == "Flatten":
        return None, None, (size,)
    if kind in ("Conv1d", "Conv2d"):
        nd = 1 if kind == "Conv1d" else 2
        w = _floats(name, "weight", node.weight)
        if w.ndim != nd + 2:
            raise ConfigError(f"node {name!r}: weight must be [out, in / groups, "
                              f"{'k' if nd == 1 else 'kh, kw'}], not {list(w.shape)}")
        groups = _tup(name, "groups", node.groups, 1)[0]
        if len(shape) != nd + 1 and node.input_shape is not None:
            ins = _tup(name, "input_shape", node.input_shape, nd)
            if w.shape[1] * groups * int(np.prod(ins)) == size:
                shape = (w.shape[1] * groups, *ins)
        return _conv(name, w, node.bias, shape, node.stride, node.padding, node.dilation,
                     node.groups)
    return _pool(name, node, shape, average=kind == "AvgPool2d")


def _neuron(nir, name, node, n: int, dt: float) -> dict:
    """The float description of a neuron node of ``n`` neurons."""
    kind = type(node).__name__
    zeros = np.zeros(n)
    x = dict(kind=kind, nname=name, tau=None, vleak=zeros, vreset=zeros, vth=None)
    if kind == "Threshold":
        x.update(g=np.ones(n), vth=_arr(name, "threshold", node.threshold, n))
        return x
    r = _arr(name, "r", node.r, n)
    if kind in ("LIF", "LI"):
        tau = _arr(name, "tau", node.tau, n)
        if np.any(tau < dt):
            raise ConfigError(f"node {name!r}: parameter 'tau' must be >= dt ({dt:g}) for "
                              f"a stable Euler step, not {tau.min():g}")
        x.update(tau=tau, vleak=_arr(name, "v_leak", node.v_leak, n), g=dt * r / tau)
    else:
        x.update(g=dt * r)
    if kind in ("LIF", "IF"):
        x["vth"] = _arr(name, "v_threshold", node.v_threshold, n)
        vr = getattr(node, "v_reset", None)
        x["vreset"] = zeros if vr is None else _arr(name, "v_reset", vr, n)
    return x


def _relays(name, node, n: int, dt: float, pending: list, raw: list) -> list[dict]:
    """A Delay of ``d`` steps as ``d`` relay layers: identity weights, threshold 1, reset to
    0, no leak, so each passes its input spikes on one step later (exact)."""
    if pending:
        raise ConfigError(f"node {name!r} (Delay) must follow a neuron node or the Input (it "
                          f"delays spikes), not the linear node(s) {pending}")
    if raw and raw[-1]["kind"] in ("LI", "I"):
        raise ConfigError(f"node {raw[-1]['nname']!r} ({raw[-1]['kind']}) must be the last "
                          f"layer: its output is a membrane, not spikes")
    steps = _arr(name, "delay", node.delay, n) / dt
    d = np.round(steps)
    if np.any(np.abs(steps - d) > 1e-6 * np.maximum(1, np.abs(steps))) or np.any(d < 0) or \
            len(set(d.tolist())) != 1 or d[0] > 64:
        raise ConfigError(f"node {name!r} (Delay): the delay must be the same whole number of "
                          f"steps (0 to 64 x dt) for every channel, not {short_repr(steps)} "
                          f"steps")
    zeros = np.zeros(n)
    return [dict(kind="Relay", nname=f"{name}[{k}]", wname="-", tau=None, vleak=zeros,
                 vreset=zeros, vth=np.ones(n), g=np.ones(n), w=np.eye(n), b=zeros)
            for k in range(int(d[0]))]


def _float_layers(nir, graph, dt: float, notes: list) -> tuple[list, list]:
    """``(layers, names)``: the float description of every layer (composed weights ``w`` and
    bias ``b``, gain ``g``, voltages, tau) and its ``(linear nodes, neuron node)`` names."""
    nodes, edges, through = _inline(nir, graph)
    loop_nodes = dict(nodes)
    edges, loops = _loops(nir, nodes, edges)
    edges, skips = _skips(nir, nodes, edges, notes)
    edges = _branches(nir, nodes, edges, notes)
    order = _chain(nir, nodes, edges)
    for name in order:
        _refuse(nir, name, nodes[name])
    shape = _io_shape(order[0], nodes[order[0]].input_type, "input", notes)
    body = [nodes[n] for n in order[1:-1] if n not in through]
    if shape is not None and len(shape) > 1 and shape[0] == 1 and body and _batched(body[0],
                                                                                     shape):
        notes.append(f"node {order[0]!r}: dropped the batch dimension of its type "
                     f"{list(shape)}")
        shape = shape[1:]
    raw, names, pending = [], [], []
    index = {}  # neuron node -> its layer
    m = b = None
    for name in order[1:-1]:
        node = nodes[name]
        kind = type(node).__name__
        if name in through:
            continue
        if shape is None:
            if kind not in ("Affine", "Linear"):
                raise ConfigError(f"node {name!r} ({kind}): the Input has no shape; give it "
                                  f"one (input_type)")
            shape = (int(np.shape(node.weight)[1]),)
        if kind == "Delay":
            relays = _relays(name, node, int(np.prod(shape)), dt, pending, raw)
            raw += relays
            names += [("-", f"{name}[{k}]") for k in range(len(relays))]
            continue
        if kind in _LINEAR:
            mk, bk, shape = _linear(nir, name, node, shape, notes)
            if mk is not None:
                m, b = (mk, bk) if m is None else (mk @ m, mk @ b + bk)
            pending.append(name)
            continue
        if raw and raw[-1]["kind"] in ("LI", "I"):
            raise ConfigError(f"node {raw[-1]['nname']!r} ({raw[-1]['kind']}) must be the last "
                              f"layer: its output is a membrane, not spikes")
        n = int(np.prod(shape))
        x = _neuron(nir, name, node, n, dt)
        x.update(w=np.eye(n) if m is None else m, b=np.zeros(n) if b is None else b,
                 wname="+".join(pending) or "-", rec=None)
        if name in loops:
            x["rec"], x["b"] = _rec_matrix(nir, loops[name], loop_nodes, n, x["b"], notes)
            x["wname"] += "|" + "+".join(loops[name])
        raw.append(x)
        index[name] = len(raw) - 1
        if name in skips:
            _skip_blocks(x, skips[name], index, raw, name)
        names.append((x["wname"], name))
        m = b = None
        pending = []  # the neurons keep the shape of what fed them (channels for a pooling)
    if pending:
        raise ConfigError(f"node(s) {pending} come after the last neuron node: a network must "
                          f"end in a neuron layer (LIF, IF, LI, I or Threshold)")
    if not raw:
        raise ConfigError("the graph has no neuron node (LIF, IF, LI, I or Threshold)")
    out = _io_shape(order[-1], nodes[order[-1]].output_type, "output", notes)
    if out is not None and int(np.prod(out)) != len(raw[-1]["g"]):
        notes.append(f"node {order[-1]!r}: its type {list(out)} does not match the "
                     f"{len(raw[-1]['g'])} neurons before it (ignored)")
    return raw, names


def _skip_blocks(x: dict, skips: list, index: dict, raw: list, name: str) -> None:
    """Layer ``x`` (``raw[-1]``, node ``name``) gets its skip connections ``x["skip"]`` =
    ``[(k, M, d)]``: source layer ``k``, matrix, and the delay that keeps NIR's timing. lifgate
    shows a spiking layer's output one step later than NIR (``Import.shifts``), so a layer
    ``k`` read beside the layer before ``l`` runs ``d = shift(l - 1) - shift(k)`` steps ahead
    of the main input: the skip reads ``s_k(t - d)``."""
    here = len(raw) - 1
    real = [sum(r["kind"] != "Relay" for r in raw[:j + 1]) for j in range(here)]
    out = []
    for src, total, bias, direct, names in skips:
        k = index.get(src)
        n, nk = len(x["g"]), None if k is None else len(raw[k]["g"])
        if k is None or k >= here - 1:
            raise ConfigError(f"node {name!r}: its input from {src!r} must come from a neuron "
                              f"node at least two layers before it (a skip connection)")
        mat = np.zeros((n, nk)) if total is None else total
        if mat.shape != (n, nk) or (direct and n != nk):
            raise ConfigError(f"node {name!r}: its input from {src!r} ({names}) maps "
                              f"{nk} values to {mat.shape[0] if direct == 0 else n}, not {n}")
        if direct:
            mat = mat + direct * np.eye(n)
        if bias is not None:
            x["b"] = x["b"] + bias
        out.append((k, mat, real[here - 1] - real[k]))
        x["wname"] += "|" + names
    x["skip"] = sorted(out, key=lambda s: s[0])


def _rec_matrix(nir, path, nodes, n: int, b, notes):
    """``(W_rec, b + b_rec)``: the loop's linear nodes composed (their bias is added every
    step, like the feed-forward bias)."""
    m, bias, shape = None, np.zeros(n), (n,)
    for name in path:
        mk, bk, shape = _linear(nir, name, nodes[name], shape, notes)
        m, bias = (mk, bk) if m is None else (mk @ m, mk @ bias + bk)
    if m.shape != (n, n):
        raise ConfigError(f"recurrent loop {path}: must map the {n} neurons onto themselves, "
                          f"not {m.shape[1]} -> {m.shape[0]}")
    notes.append(f"recurrent loop {'+'.join(path)}: the layer's own spikes of the previous "
                 f"step (docs/networks.md, \"Recurrent layers\")")
    return m, b + bias


def _lanes(n):
    return next(p for p in (8, 4, 2, 1) if n % p == 0)


def import_nir(graph, *, dt: float | None = None, scale: float | None = None,
               v_width: int | None = None, i_width: int | None = None,
               w_width: int | None = None, decay_frac: int = 16, x_width: int = 1,
               reset: str = "value", fire: str = "gt", target: float = DEFAULT_TARGET,
               max_error: float | None = None, spike_max: int = 1) -> Import:
    """Map ``graph`` (a ``nir.NIRGraph`` or a path) onto a :class:`Network`.

    ``dt`` defaults to the graph's ``metadata["dt"]``; without either, ConfigError. ``scale``
    (membrane LSBs per NIR voltage unit; one number, or one per layer) defaults, per layer, to
    the largest power of two that keeps every voltage and bias within half the membrane range
    and every weight within ``w_width`` bits. ``w_width`` and ``v_width`` default to the
    narrowest of :data:`W_WIDTHS` x :data:`V_WIDTHS` whose every parameter's relative error is
    at most ``target`` (or the most accurate if none is); ``i_width`` defaults to ``v_width``.
    ``reset`` (``value``, ``subtract`` or ``subtract-after-leak``: :data:`RESETS`) and
    ``fire`` (``gt``: spike when ``v >
    v_threshold``, NIR's rule; ``ge``: when ``v >= v_threshold``, sinabs') choose the neuron
    semantics, ``spike_max`` (1, 3, 7 or 15) the largest spike count per step (sinabs'
    ``MultiSpike``: ``floor(v / v_th)`` spikes at once). With ``max_error``, a parameter whose
    relative error exceeds it is a ConfigError.
    """
    nir = _nir()
    notes = []
    if not isinstance(graph, nir.NIRGraph):
        graph, notes = read_nir(graph)
    if reset not in RESETS:
        raise ConfigError(f"parameter 'reset' must be one of {', '.join(RESETS)}, "
                          f"not {reset!r}")
    if fire not in ("gt", "ge"):
        raise ConfigError(f"parameter 'fire' must be 'gt' or 'ge', not {fire!r}")
    if isinstance(spike_max, bool) or spike_max not in SPIKE_MAXES:
        raise ConfigError(f"parameter 'spike_max' must be one of "
                          f"{', '.join(map(str, SPIKE_MAXES))}, not {short_repr(spike_max)}")
    if dt is None:
        dt = (graph.metadata or {}).get("dt")
        if dt is None:
            raise ConfigError("the graph has no metadata 'dt': give the time step with --dt")
        dt = float(np.asarray(dt).reshape(-1)[0])
        notes.append(f"dt = {dt:g} from the graph's metadata")
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"parameter 'dt' must be a positive number, not {dt!r}")
    raw, names = _float_layers(nir, graph, dt, notes)
    best, last = None, None
    for vw in (V_WIDTHS if v_width is None else (v_width,)):
        for ww in (W_WIDTHS if w_width is None else (w_width,)):
            opts = dict(v_width=vw, i_width=vw if i_width is None else i_width, w_width=ww,
                        decay_frac=decay_frac, reset=reset, fire=fire, spike_max=spike_max)
            try:
                scales = _scales(raw, scale, v_width=vw, w_width=ww)
                errs = {}
                layers = [_quantize_layer(x, s, dt, errs, **opts)
                          for x, s in zip(raw, scales, strict=True)]
            except ConfigError as e:
                last = e
                continue
            worst = max((v[1] for v in errs.values()), default=0.0)
            if best is None or worst < best[0]:
                best = (worst, layers, scales, errs, ww)
            if worst <= target:
                break
        if best is not None and best[0] <= target:
            break
    if best is None:
        raise last
    worst, layers, scales, errs, ww = best
    net = Network(tuple(layers), w_width=ww, x_width=x_width)
    readout = "membrane" if raw[-1]["kind"] in ("LI", "I") else "spikes"
    shifts, real = [], 0
    for x in raw:
        real += x["kind"] not in ("Relay", "LI", "I")
        shifts.append(None if x["kind"] == "Relay" else real)
    imp = Import(net, dt, scales, names, errs, notes, readout, target, reset, fire, shifts,
                 spike_max)
    if max_error is not None and worst > max_error:
        name, (_, rel, zeroed, count) = max(errs.items(), key=lambda kv: kv[1][1])
        raise ConfigError(f"parameter {name!r} is quantised with {100 * rel:.3g} % error "
                          f"({zeroed} of {count} non-zero values rounded to 0), above "
                          f"--max-error {100 * max_error:g} %: give wider widths or a scale")
    return imp


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
        if x["kind"] == "Relay":
            s = 1.0  # integer spikes in, integer spikes out (_quantize_layer)
        if s is None:
            # Layers are coupled only through spikes, so each has its own membrane scale.
            volts = [x[k] for k in ("vth", "vreset", "vleak") if x[k] is not None]
            vbig = max(float(np.abs(v).max(initial=0)) for v in volts)
            wbig = max(float(np.abs(x["g"][:, None] * w).max(initial=0))
                       for w in (x["w"], x.get("rec"), *[sk[1] for sk in x.get("skip", [])])
                       if w is not None)
            bbig = float(np.abs(x["g"] * x["b"]).max(initial=0))
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
    """Record the quantisation error of one parameter of a node in ``errs``: absolute,
    relative to the median of the parameter's non-zero magnitudes, values lost to 0."""
    exact = np.asarray(exact, dtype=np.float64)
    unit = np.broadcast_to(np.asarray(unit, dtype=np.float64), np.shape(q))
    approx = np.divide(q, unit, out=np.zeros(np.shape(q)), where=unit != 0)  # r = 0: no input
    ab = float(np.abs(approx - exact).max(initial=0))
    nz = np.abs(exact[exact != 0])
    typical = float(np.median(nz)) if nz.size else 0.0
    rel = ab / typical if typical > 0 else 0.0
    zeroed = int(np.count_nonzero((exact != 0) & (np.asarray(q) == 0)))
    old = errs.get(name, (0.0, 0.0, 0, 0))
    errs[name] = (max(old[0], ab), max(old[1], rel), old[2] + zeroed, old[3] + int(nz.size))


def _fit(name: str, node: str, q, lo: int, hi: int, scale: float):
    if q.size and (q.min() < lo or q.max() > hi):
        raise ConfigError(f"node {node!r}: parameter {name!r} needs [{q.min():.0f}, "
                          f"{q.max():.0f}] at scale {scale:g}, beyond [{lo}, {hi}]; give a "
                          f"smaller --scale or wider widths")
    return q.astype(np.int64)


def _quantize_layer(x: dict, scale: float, dt: float, errs: dict, *, v_width: int,
                    i_width: int, w_width: int, decay_frac: int, reset: str,
                    fire: str, spike_max: int = 1) -> Layer:
    """One float layer (of :func:`_float_layers`) at ``scale`` as a lifgate :class:`Layer`;
    its quantisation errors go into ``errs``."""
    vmax = (1 << (v_width - 1)) - 1
    wmax = (1 << (w_width - 1)) - 1
    F = decay_frac
    n = len(x["g"])
    kind = x["kind"]
    # the reset mode the graph asks for is built (SUBTRACT_AFTER_LEAK is a shape option)
    shape = ArrayShape(neurons=n, lanes=_lanes(n), groups=n, v_width=v_width,
                       i_width=i_width, ref_width=1, decay_frac=F,
                       leak_modes=(LeakMode.MULT, LeakMode.CONST),
                       reset_modes=(ResetMode.VALUE, ResetMode.SUBTRACT, RESETS[reset]),
                       spike_max=spike_max)
    if kind == "Relay":  # a spike in at step t, out at t + 1: weight 1, v_th 1, reset to 0
        relay = NeuronParams(v_th=1, v_reset=0, v_rest=0, v_init=0, bias=0,
                             leak_mode=LeakMode.CONST, leak=0, reset_mode=ResetMode.VALUE,
                             t_ref=0)
        return Layer(np.eye(n, dtype=np.int64), Config(shape=shape, params=(relay,) * n))
    unit_w = scale * x["g"][:, None]
    wq = _fit("weight", x["wname"], np.round(unit_w * x["w"]), -wmax - 1, wmax, scale)
    _note_error(errs, "weight", x["w"], wq, unit_w)
    rec = None
    if x.get("rec") is not None:
        rec = _fit("weight", x["wname"], np.round(unit_w * x["rec"]), -wmax - 1, wmax, scale)
        _note_error(errs, "weight", x["rec"], rec, unit_w)
    skip = []
    for k, mat, d in x.get("skip", []):
        q = _fit("weight", x["wname"], np.round(unit_w * mat), -wmax - 1, wmax, scale)
        _note_error(errs, "weight", mat, q, unit_w)
        skip.append((k, q, d))
    bq = _fit("bias", x["wname"], np.round(scale * x["g"] * x["b"]), -vmax - 1, vmax, scale)
    _note_error(errs, "bias", x["b"], bq, scale * x["g"])
    if x["vth"] is None:  # LI, I: a spike never changes the membrane
        thq = rq = np.full(n, vmax, dtype=np.int64)
    else:
        plus = 1 if fire == "gt" else 0
        thq = _fit("v_threshold", x["nname"], np.round(scale * x["vth"]) + plus, -vmax - 1,
                   vmax, scale)
        _note_error(errs, "v_threshold", x["vth"], thq - plus, scale)
        rq = _fit("v_reset", x["nname"], np.round(scale * x["vreset"]), -vmax - 1, vmax, scale)
        _note_error(errs, "v_reset", x["vreset"], rq, scale)
    lq = _fit("v_leak", x["nname"], np.round(scale * x["vleak"]), -vmax - 1, vmax, scale)
    mult = x["tau"] is not None or kind == "Threshold"
    D = np.zeros(n, dtype=np.int64)
    if x["tau"] is not None:
        _note_error(errs, "v_leak", x["vleak"], lq, scale)
        D = np.round((1 - dt / x["tau"]) * (1 << F)).astype(np.int64)
        D = np.clip(D, 0, (1 << F) - 1)
        tau_eff = dt * (1 << F) / ((1 << F) - D)
        _note_error(errs, "tau", x["tau"], tau_eff, 1.0)
    mode = RESETS[reset] if x["vth"] is not None else ResetMode.VALUE
    params = [NeuronParams(
        v_th=int(thq[j]), v_reset=int(rq[j]), v_rest=int(lq[j]) if mult else 0, v_init=0,
        bias=int(bq[j]), leak_mode=LeakMode.MULT if mult else LeakMode.CONST,
        leak=int(D[j]) if mult else 0, reset_mode=mode, t_ref=0) for j in range(n)]
    return Layer(wq, Config(shape=shape, params=tuple(params)), rec, tuple(skip))


def export_nir(network: Network, *, dt: float = 1e-3):
    """A ``nir.NIRGraph`` of ``network`` at scale 1 (``import_nir(.., scale=1)`` inverts it).

    Every layer must be exportable: reset VALUE, ``t_ref = 0``, ``v_init = 0``, MULT leak
    (LIF) or CONST leak 0 (IF), and (MULT) ``D < 2^F``. ``metadata["dt"]`` holds ``dt``.
    """
    nir = _nir()
    nodes = {"input": nir.Input(input_type={"input": np.array([network.inputs])})}
    edges, neurons = [], []
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
        if layer.rec is not None:  # the loop lif -> rec -> lif (import_nir: Layer.rec)
            nodes[f"rec{n}"] = nir.Linear(weight=layer.rec / g[:, None])
            edges += [(nn, f"rec{n}"), (f"rec{n}", nn)]
        for k, sw, d in layer.skip:  # a branch lif_k -> skip -> lif_n (import_nir: Layer.skip)
            if d != n - 1 - k:
                raise ConfigError(f"layers[{n}]: NIR export needs the skip from layer {k} "
                                  f"{n - 1 - k} step(s) late (NIR's timing, docs/networks.md "
                                  f"\"Skip connections\"), not {d}")
            nodes[f"skip{n}_{k}"] = nir.Linear(weight=sw / g[:, None])
            edges += [(neurons[k], f"skip{n}_{k}"), (f"skip{n}_{k}", nn)]
        neurons.append(nn)
        prev = nn
    nodes["output"] = nir.Output(output_type={"output": np.array([network.layers[-1].neurons])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt})
