"""Bit-exact model of the synaptic stage and of layered networks (``docs/networks.md``).

Pure integer numpy, no Amaranth. The gateware (``lifgate.hdl.synapse.Synapse`` and
``lifgate.hdl.network.Network``) must match it bit for bit.

Contract, in short (``docs/networks.md`` has it in full):

* a synaptic stage computes, for every output neuron ``j`` and step ``t``,
  ``I[t, j] = sat_IW(sum_i W[j, i] * x[t, i])`` with the exact integer sum (no intermediate
  narrowing, so the order of accumulation does not matter) saturated once to the array's
  signed ``i_width`` range;
* ``x`` of the first layer is an unsigned ``x_width``-bit integer per input (1 bit: spikes),
  ``x`` of every later layer is the spike vector of the layer before it, **of the same step**
  (no delay): at step ``t`` layer ``l`` runs after layer ``l - 1`` has finished step ``t``;
  with multi-spike output (``ArrayShape.spike_max > 1``) that vector holds each neuron's spike
  count ``n`` of the step, so the next layer receives ``W . n``;
* each layer is a LIF array (``lifgate.golden.fixed``) driven by those currents, without noise;
* a layer may have recurrent weights ``W_rec`` [N_l, N_l]: its own spikes (counts) of the
  **previous** step come back, ``I_l(t) = sat(W_l . s_{l-1}(t) + W_rec . s_l(t - 1))`` with
  ``s_l(-1) = 0`` after a clear; one synapse of fan-in ``n_{l-1} + N_l`` over the concatenated
  input ``[s_{l-1}(t), s_l(t - 1)]`` with weights ``[W_l | W_rec]`` (:attr:`Layer.full_weights`),
  so the sum is exact and saturated once;
* a layer may also read the spikes (counts) of EARLIER layers ``k < l - 1`` (skip
  connections, :attr:`Layer.skip`), each ``d_k >= 0`` steps late (0: the same step):
  ``I_l(t) = sat(W_l . s_{l-1}(t) + sum_k W_{l,k} . s_k(t - d_k) + W_rec . s_l(t - 1))`` with
  ``s(t) = 0`` for ``t < 0`` after a clear; one synapse over ``[s_{l-1}(t), s_k1(t - d_k1),
  ..., s_l(t - 1)]`` (sources in increasing ``k``, the recurrent block last) with the weight
  blocks side by side; the sum of all sources is saturated once, as NIR sums a node's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lifgate.golden import fixed

from lifgate.checks import short_repr
from lifgate.config import ArrayShape, Config, ConfigError, acc_width, signed_range

__all__ = [
    "SKIP_DELAY_MAX",
    "Layer",
    "Network",
    "NetworkResult",
    "acc_width",
    "layer0_clocks",
    "replay_clocks",
    "simulate_network",
    "simulate_network_batch",
    "synapse_clocks",
    "synaptic_current",
]


#: Largest delay of a skip connection, in steps (a register of the source's spikes per step).
SKIP_DELAY_MAX = 64


def _check_matrix(name: str, weights, w_width: int) -> np.ndarray:
    a = np.asarray(weights)
    if a.ndim != 2:
        raise ConfigError(
            f"parameter {name!r} must be a 2-D matrix [outputs, inputs], not {a.shape}"
        )
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ConfigError(f"parameter {name!r} must hold integers, not {a.dtype} values")
    a = a.astype(np.int64)
    lo, hi = signed_range(w_width)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ConfigError(
            f"parameter {name!r} must lie in [{lo}, {hi}] (w_width {w_width}), "
            f"not [{a.min()}, {a.max()}]"
        )
    return a


def synaptic_current(weights, x, i_width: int) -> np.ndarray:
    """``sat_IW(W . x)`` for one step (``x`` [inputs]) or many (``x`` [steps, inputs]).

    The sum is exact (int64; callers keep ``acc_width`` within 63 bits), then clamped to
    ``[-2^(IW-1), 2^(IW-1) - 1]``. Returns int64 [outputs] or [steps, outputs].
    """
    w = np.asarray(weights, dtype=np.int64)
    xx = np.asarray(x, dtype=np.int64)
    lo, hi = signed_range(i_width)
    return np.clip(xx @ w.T, lo, hi)


def synapse_clocks(inputs: int, depth: int = 1, spikes=None, *, ports: int = 1) -> int:
    """Clocks one synaptic stage takes for one step without backpressure (``docs/networks.md``,
    "Cost"): ``depth * (inputs + 4)`` dense (every input read),
    ``depth * (ceil(max(k, 1) / ports) + 3)`` spike-driven, ``k`` the number of inputs at 1
    (``spikes``: that count, or the spike vector), ``ports`` events per clock. The cost model
    of ``lifgate.hdl.synapse.Synapse``, checked clock for clock."""
    if spikes is None:
        return depth * (inputs + 4)
    k = int(np.count_nonzero(spikes)) if np.ndim(spikes) else int(spikes)
    return depth * (-(-max(k, 1) // ports) + 3)


def replay_clocks(depth: int) -> int:
    """Clocks one step of layer-0 current reuse takes without backpressure
    (``docs/networks.md``, "Layer-0 current reuse"): ``depth + 1``, the kept beats one per
    clock after one clock of memory read. The cost model of
    ``lifgate.hdl.current_cache.CurrentCache``, checked clock for clock."""
    return int(depth) + 1


def layer0_clocks(inputs: int, depth: int, steps: int, spikes=None, *, ports: int = 1,
                  reuse: bool = True) -> list[int]:
    """Clocks of layer 0's synaptic stage at each step of one run (one ``start``) without
    backpressure: :func:`synapse_clocks` at the run's first step and, with ``reuse``,
    :func:`replay_clocks` at the later ones (the inputs are stable during a run, so the first
    step's currents are sent again); without ``reuse``, :func:`synapse_clocks` at every
    step. ``spikes`` as for :func:`synapse_clocks` (None: dense)."""
    first = synapse_clocks(inputs, depth, spikes, ports=ports)
    later = replay_clocks(depth) if reuse else first
    return [first] + [later] * (int(steps) - 1) if steps else []


@dataclass(frozen=True)
class Layer:
    """One layer: a synaptic stage (``weights``) feeding a LIF array (``config``).

    Members
    -------
    weights : int array [neurons, inputs]
        Signed ``w_width``-bit weights; row ``j`` feeds array neuron ``j``. Rows past the
        meaningful neurons (padding up to a multiple of the lanes) may be zero.
    config : Config
        The array: shape and per-group parameters. Noise must be off (gain 0).
    rec : int array [neurons, neurons] or None
        Recurrent weights: ``rec[j, k]`` feeds neuron ``k``'s spike (count) of the previous
        step into neuron ``j``. None: a feed-forward layer.
    skip : tuple of (int, int array [neurons, N_k], int)
        Skip connections: ``(k, W_k, d)`` triples (a pair ``(k, W_k)`` means ``d = 0``), ``k``
        an earlier layer than the one before this one (``0 <= k < l - 1``), in increasing
        ``k``; ``W_k[j, i]`` feeds layer ``k``'s spike (count) ``i`` of ``d`` steps before
        (0 to :data:`SKIP_DELAY_MAX`; 0: the same step) into neuron ``j``. Empty: none.
    """

    weights: np.ndarray
    config: Config
    rec: np.ndarray | None = None
    skip: tuple = ()

    @property
    def full_weights(self) -> np.ndarray:
        """The synapse's matrix: ``[weights | W_k1 | W_k2 ... | rec]`` (the skip blocks in
        increasing source layer, the recurrent block last), ``weights`` for a plain layer: its
        inputs are the layer's inputs, the skip sources' spikes of the same step, then its own
        spikes of the previous step."""
        if self.rec is None and not self.skip:
            return self.weights
        blocks = [self.weights] + [sk[1] for sk in self.skip]
        return np.hstack(blocks + ([] if self.rec is None else [self.rec]))

    @property
    def sources(self) -> tuple:
        """The skip sources' ``(layer, delay)``, in the order of :attr:`full_weights`."""
        return tuple((sk[0], sk[2]) for sk in self.skip)

    @property
    def inputs(self) -> int:
        return int(np.shape(self.weights)[1])

    @property
    def neurons(self) -> int:
        return self.config.shape.neurons


@dataclass(frozen=True)
class Network:
    """Layers chained input -> hidden -> ... -> output.

    Members
    -------
    layers : tuple of Layer
        At least one. Layer ``l > 0`` has ``layers[l-1].neurons`` inputs.
    w_width : int
        Weight width, 2 to 18 bits signed.
    x_width : int
        Width of the first layer's unsigned inputs, 1 to 16 bits (1: spikes).
    """

    layers: tuple
    w_width: int = 8
    x_width: int = 1

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ConfigError("parameter 'layers' must hold at least one layer")
        if not (isinstance(self.w_width, int) and 2 <= self.w_width <= 18):
            raise ConfigError(f"parameter 'w_width' must be an integer in [2, 18], not "
                              f"{self.w_width!r}")
        if not (isinstance(self.x_width, int) and 1 <= self.x_width <= 16):
            raise ConfigError(f"parameter 'x_width' must be an integer in [1, 16], not "
                              f"{self.x_width!r}")
        fixed_layers = []
        for n, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"parameter 'layers[{n}]' must be a Layer, not {layer!r}")
            if not isinstance(layer.config, Config):
                raise ConfigError(f"parameter 'layers[{n}].config' must be a Config")
            w = _check_matrix(f"layers[{n}].weights", layer.weights, self.w_width)
            if w.shape[0] != layer.neurons:
                raise ConfigError(
                    f"parameter 'layers[{n}].weights' must have {layer.neurons} rows (the "
                    f"array's neurons), not {w.shape[0]}"
                )
            if n and w.shape[1] != layers[n - 1].neurons:
                raise ConfigError(
                    f"parameter 'layers[{n}].weights' must have {layers[n - 1].neurons} columns "
                    f"(the neurons of layer {n - 1}), not {w.shape[1]}"
                )
            rec = None
            if layer.rec is not None:
                rec = _check_matrix(f"layers[{n}].rec", layer.rec, self.w_width)
                if rec.shape != (layer.neurons, layer.neurons):
                    raise ConfigError(
                        f"parameter 'layers[{n}].rec' must have shape ({layer.neurons}, "
                        f"{layer.neurons}) (the array's neurons), not {rec.shape}")
                if n == 0 and self.x_width != layer.config.shape.count_width:
                    raise ConfigError(
                        f"parameter 'layers[0].rec' needs x_width == the layer's spike count "
                        f"width ({layer.config.shape.count_width}), not {self.x_width}: one "
                        f"synapse reads the inputs and the layer's own spikes")
            skip = _check_skip(n, layer.skip, layers, self.w_width)
            if layer.config.noise.gain:
                raise ConfigError(f"parameter 'layers[{n}].config.noise.gain' must be 0 in a "
                                  f"network, not {layer.config.noise.gain}")
            xw = self.x_width if n == 0 else layers[n - 1].config.shape.count_width
            fan_in = w.shape[1] + (0 if rec is None else layer.neurons) + \
                sum(sk[1].shape[1] for sk in skip)
            if acc_width(fan_in, self.w_width, xw) > 62:
                raise ConfigError(f"layer {n} has too many inputs for a 62-bit accumulator")
            fixed_layers.append(Layer(w, layer.config, rec, skip))
        object.__setattr__(self, "layers", tuple(fixed_layers))

    @property
    def inputs(self) -> int:
        return self.layers[0].inputs

    @property
    def shapes(self) -> list[ArrayShape]:
        return [layer.config.shape for layer in self.layers]

    @property
    def recurrent(self) -> tuple:
        """Per layer: True if it has recurrent weights."""
        return tuple(layer.rec is not None for layer in self.layers)

    @property
    def skips(self) -> tuple:
        """Per layer: the ``(layer, delay)`` its skip connections read (:attr:`Layer.sources`)."""
        return tuple(layer.sources for layer in self.layers)

    @property
    def history(self) -> tuple:
        """Per layer: how many past steps of its spikes a skip connection reads (the largest
        delay of the skips from it; 0: none)."""
        h = [0] * len(self.layers)
        for layer in self.layers:
            for k, d in layer.sources:
                h[k] = max(h[k], d)
        return tuple(h)


def _check_skip(n: int, skip, layers, w_width: int) -> tuple:
    """Layer ``n``'s skip connections, checked: ``((k, int matrix, delay), ...)``."""
    if not isinstance(skip, (tuple, list)):
        raise ConfigError(f"parameter 'layers[{n}].skip' must be a tuple of (layer, weights, "
                          f"delay) triples, not {short_repr(skip)}")
    out, last = [], -1
    for pair in skip:
        if not (isinstance(pair, (tuple, list)) and len(pair) in (2, 3)):
            raise ConfigError(f"parameter 'layers[{n}].skip' must hold (layer, weights, delay) "
                              f"triples, not {short_repr(pair)}")
        k, sw = pair[:2]
        d = pair[2] if len(pair) == 3 else 0
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or \
                not 0 <= d <= SKIP_DELAY_MAX:
            raise ConfigError(f"parameter 'layers[{n}].skip' delay must be an integer in [0, "
                              f"{SKIP_DELAY_MAX}], not {short_repr(d)}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not last < k < n - 1:
            raise ConfigError(f"parameter 'layers[{n}].skip' source must be a layer in "
                              f"[{last + 1}, {n - 2}] (an earlier layer than {n - 1}, in "
                              f"increasing order), not {short_repr(k)}")
        k = int(k)
        sw = _check_matrix(f"layers[{n}].skip[{k}]", sw, w_width)
        if sw.shape != (layers[n].neurons, layers[k].neurons):
            raise ConfigError(f"parameter 'layers[{n}].skip[{k}]' must have shape "
                              f"({layers[n].neurons}, {layers[k].neurons}) (this layer's "
                              f"neurons, layer {k}'s), not {sw.shape}")
        out.append((k, sw, int(d)))
        last = k
    return tuple(out)


@dataclass
class NetworkResult:
    """Outputs of :func:`simulate_network`.

    Members
    -------
    spikes : list of arrays [T, N_l]
        Spikes of every layer at every step: bool, or the uint8 spike count of a layer with
        ``spike_max > 1``.
    v : list of int arrays [T, N_l]
        Membrane ``v'`` of every layer after every step.
    currents : list of int64 arrays [T, N_l]
        Saturated synaptic currents each layer received.
    final : list of fixed.State
        State of every layer after the run (pass as ``states=`` to continue).
    last : list of arrays [N_l]
        Every layer's spikes (counts) of the run's last step (``prev=`` to continue a
        recurrent network; those of ``prev`` for a run of 0 steps).
    past : list of arrays [H_l, N_l]
        Every layer's spikes (counts) of the run's last ``H_l`` steps, oldest first
        (``Network.history``: what delayed skip connections read; ``past=`` to continue).
    """

    spikes: list
    v: list
    currents: list
    final: list

    def counts(self, layer: int = -1) -> np.ndarray:
        return self.spikes[layer].sum(axis=0)

    def synops(self) -> int:
        """Synaptic operations of the run: for every layer, its non-zero inputs times its
        fan-out (the layer's neurons), summed over steps. Layer 0's inputs may be multi-bit
        (then these are multiply-accumulates); later layers' are spikes (accumulates)."""
        return self.input_ops + self.spike_ops

    #: Layer 0's share of :meth:`synops`: non-zero inputs times fan-out.
    input_ops: int = 0
    #: The other layers' share: spikes of layer ``l - 1`` times the neurons of layer ``l``,
    #: plus a recurrent layer's own spikes of the step before times its neurons.
    spike_ops: int = 0
    last: list = None
    past: list = None


def _check_x(network: Network, x, steps: int) -> np.ndarray:
    a = np.asarray(x)
    n = network.inputs
    if a.dtype.kind not in "iub":
        raise ConfigError(f"parameter 'x' must hold integers, not {a.dtype} values")
    a = a.astype(np.int64)
    if a.shape == (n,):
        a = np.broadcast_to(a, (steps, n))
    if a.shape != (steps, n):
        raise ConfigError(f"parameter 'x' must have shape ({steps}, {n}) or ({n},), not {a.shape}")
    hi = (1 << network.x_width) - 1
    if a.size and (a.min() < 0 or a.max() > hi):
        raise ConfigError(
            f"parameter 'x' must lie in [0, {hi}] (x_width {network.x_width}), "
            f"not [{a.min()}, {a.max()}]"
        )
    return a


def simulate_network(network: Network, steps: int, x, *, states=None,
                     prev=None, past=None) -> NetworkResult:
    """Run ``network`` for ``steps`` steps on the first-layer inputs ``x`` ([steps, inputs] or
    [inputs], constant).

    Step by step: layer 0 takes ``sat(W0 . x[t])``, layer ``l`` takes ``sat(Wl . s_{l-1}[t])``
    where ``s_{l-1}[t]`` are the spikes layer ``l - 1`` emitted at the same step ``t``; a
    recurrent layer adds ``W_rec . s_l[t - 1]`` inside the saturation.
    ``states`` (one ``fixed.State`` per layer) continues a run; default: after a clear.
    ``prev`` (one spike vector per layer, ``NetworkResult.last``) continues a recurrent
    network, ``past`` (``NetworkResult.past``) one with delayed skip connections; default:
    zero (after a clear). A skip connection ``(k, W, d)`` adds ``W . s_k[t - d]``.
    Feed-forward layers are computed over all steps at once, which is the same as step by
    step; a recurrent layer step by step.
    """
    if not isinstance(network, Network):
        raise ConfigError(f"parameter 'network' must be a Network, not {network!r}")
    _check_steps(steps)
    xs = _check_x(network, x, steps)
    layers = network.layers
    if states is None:
        states = [None] * len(layers)
    if prev is None:
        prev = [np.zeros(layer.neurons, dtype=np.int64) for layer in layers]
    hist = network.history
    if past is None:
        past = [np.zeros((h, layer.neurons), dtype=np.int64)
                for h, layer in zip(hist, layers, strict=True)]
    # every layer's spikes with the past steps a delayed skip reads before them
    full = []
    spikes, vs, cur, finals, last = [], [], [], [], []
    input_ops = int((xs != 0).sum()) * layers[0].neurons
    synops = 0
    inp = xs
    for n, layer in enumerate(layers):
        if layer.rec is None and not layer.skip:
            i = synaptic_current(layer.weights, inp, layer.config.shape.i_width)
            res = fixed.simulate(layer.config, steps, i, state=states[n])
            sp, vv, final = res.spikes, res.v, res.final
        else:
            ff = np.asarray(inp, dtype=np.int64) @ layer.weights.T  # exact: saturated below
            for k, sw, d in layer.skip:  # earlier layers' spikes, d steps before
                h = len(full[k]) - steps
                src = full[k][h - d:h - d + steps]
                ff = ff + src @ sw.T
                synops += int(src.sum()) * layer.neurons
            if layer.rec is None:
                lo, hi = signed_range(layer.config.shape.i_width)
                i = np.clip(ff, lo, hi)
                res = fixed.simulate(layer.config, steps, i, state=states[n])
                sp, vv, final = res.spikes, res.v, res.final
            else:
                i, sp, vv, final = _recurrent(layer, steps, ff, states[n], prev[n])
                synops += int(np.concatenate([[prev[n]], sp[:-1]]).astype(np.int64).sum()) \
                    * layer.neurons
        spikes.append(sp)
        old = np.asarray(past[n], dtype=np.int64)
        if old.shape != (hist[n], layer.neurons):
            raise ConfigError(f"parameter 'past[{n}]' must have shape ({hist[n]}, "
                              f"{layer.neurons}) (NetworkResult.past), not {old.shape}")
        full.append(np.concatenate([old, sp.astype(np.int64)]))
        vs.append(vv.astype(np.int64))
        cur.append(i)
        finals.append(final)
        last.append(np.asarray(sp[-1] if steps else prev[n]).astype(np.int64))
        inp = sp.astype(np.int64)
        if n + 1 < len(layers):
            synops += int(inp.sum()) * layers[n + 1].neurons
    return NetworkResult(spikes, vs, cur, finals, input_ops, synops, last,
                         [f[len(f) - h:] for f, h in zip(full, hist, strict=True)])


def _recurrent(layer: Layer, steps: int, ff, state, prev):
    """A recurrent layer step by step, ``ff`` [steps, N] the exact (unsaturated) sum of its
    other sources: ``(currents, spikes, v, final state)``."""
    lo, hi = signed_range(layer.config.shape.i_width)
    p = np.asarray(prev, dtype=np.int64)
    cur, sps, vs = [], [], []
    for t in range(steps):
        i = np.clip(ff[t] + layer.rec @ p, lo, hi)
        res = fixed.simulate(layer.config, 1, i[None], state=state)
        state = res.final
        p = res.spikes[0].astype(np.int64)
        cur.append(i)
        sps.append(res.spikes[0])
        vs.append(res.v[0])
    N = layer.neurons
    if not steps:
        res = fixed.simulate(layer.config, 0, None, state=state)
        return (np.zeros((0, N), dtype=np.int64), res.spikes, res.v, res.final)
    return np.stack(cur), np.stack(sps), np.stack(vs), state


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"parameter 'steps' must be a non-negative integer, not {steps!r}")


def _tiled(config: Config, batch: int) -> Config:
    """``batch`` copies of ``config``'s array side by side, as one array (noise is off, so the
    lanes do not matter)."""
    s = config.shape
    shape = ArrayShape(
        neurons=s.neurons * batch, lanes=1, groups=s.groups * batch, v_width=s.v_width,
        i_width=s.i_width, ref_width=s.ref_width, decay_frac=s.decay_frac,
        leak_modes=s.leak_modes, step_width=s.step_width, reset_modes=s.reset_modes,
        spike_max=s.spike_max,
    )
    return Config(shape=shape, params=tuple(config.params) * batch, noise=config.noise)


def simulate_network_batch(network: Network, steps: int, x) -> list[NetworkResult]:
    """:func:`simulate_network` for a batch of inputs ``x`` [B, inputs] (constant over the
    steps) or [B, steps, inputs], from a clear; the same results, one vectorised run."""
    if not isinstance(network, Network):
        raise ConfigError(f"parameter 'network' must be a Network, not {network!r}")
    _check_steps(steps)
    a = np.asarray(x)
    if a.ndim == 2:
        a = np.broadcast_to(a[:, None, :], (a.shape[0], steps, a.shape[1]))
    if a.ndim != 3:
        raise ConfigError(f"parameter 'x' must have shape [B, inputs] or [B, steps, inputs], "
                          f"not {a.shape}")
    batch = a.shape[0]
    xs = np.stack([_check_x(network, a[b], steps) for b in range(batch)])  # [B, T, n]
    if any(network.recurrent) or any(network.skips):
        return [simulate_network(network, steps, xs[b]) for b in range(batch)]
    outs = [NetworkResult([], [], [], []) for _ in range(batch)]
    input_ops = (xs != 0).sum(axis=(1, 2)) * network.layers[0].neurons
    synops = np.zeros(batch, dtype=np.int64)
    inp = xs
    for n, layer in enumerate(network.layers):
        N = layer.neurons
        i = synaptic_current(layer.weights, inp, layer.config.shape.i_width)  # [B, T, N]
        big = _tiled(layer.config, batch)
        res = fixed.simulate(big, steps, np.moveaxis(i, 0, 1).reshape(steps, batch * N))
        sp = res.spikes.reshape(steps, batch, N)
        vv = res.v.reshape(steps, batch, N).astype(np.int64)
        for b, o in enumerate(outs):
            o.spikes.append(sp[:, b])
            o.v.append(vv[:, b])
            o.currents.append(i[b])
        inp = np.moveaxis(sp, 1, 0).astype(np.int64)  # [B, T, N]
        if n + 1 < len(network.layers):
            synops += inp.sum(axis=(1, 2)) * network.layers[n + 1].neurons
    for b, o in enumerate(outs):
        o.input_ops, o.spike_ops = int(input_ops[b]), int(synops[b])
        o.last = [np.asarray(sp[-1] if steps else np.zeros(len(sp[0]) if len(sp) else 0))
                  .astype(np.int64) for sp in o.spikes]
    return outs
