"""The bit-accurate fixed-point golden model of ``docs/numerics.md``.

Integer-only numpy, vectorised over neurons and over a batch of configurations of one shape.
The gateware (``lifgate.hdl.array.LIFArray``) must match it bit for bit; every testbench
compares against :func:`simulate`. :func:`step_scalar` is a literal, one-neuron transcription of
the contract in plain Python integers, kept as a reference for the vectorised code.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from lifgate.golden.noise import NoiseModel, jump, lane_seeds

from lifgate.config import Config, ConfigError, LeakMode, NeuronParams, ResetMode

__all__ = ["ENGINES", "RECORDS", "Result", "State", "fresh_state", "simulate", "simulate_batch",
           "step_scalar"]

#: What a run records (``record=``), cheapest last but one: ``full`` every spike and membrane
#: ([T, N] each), ``spikes`` the spikes bit-packed ([T, ceil(N / 8)] bytes), ``counts`` per
#: neuron the spike count and the first and last spike step, ``probes`` the membranes of the
#: neurons listed in ``probes=`` ([T, K]). The final state is always returned.
RECORDS = ("full", "spikes", "counts", "probes")
#: ``numpy``: this module's vectorised reference; ``fused``: the compiled kernel of
#: :mod:`lifgate.golden.fast` (bit-exact, multi-core, much faster).
ENGINES = ("numpy", "fused")


@dataclass
class State:
    """State of an array between steps.

    Members
    -------
    v : int64 array [N]
        Membrane values.
    r : int64 array [N]
        Refractory counters.
    noise : uint32 array [P]
        Noise generator states, one per lane.
    step : int
        Steps completed since the last clear.
    """

    v: np.ndarray
    r: np.ndarray
    noise: np.ndarray
    step: int = 0

    def copy(self) -> State:
        return State(self.v.copy(), self.r.copy(), self.noise.copy(), self.step)


@dataclass
class Result:
    """Outputs of a run of ``T`` steps of ``N`` neurons.

    Members
    -------
    spikes : bool array [T, N], uint8 array [T, N] or None
        ``spikes[t, n]``: neuron ``n`` spiked at step ``t`` (``record="full"``); with
        ``shape.spike_max > 1`` its spike count ``0 .. spike_max`` of the step (uint8).
    v : signed integer array [T, N] or None
        Membrane ``v'`` after step ``t`` (what the gateware's readback returns); int32 when the
        shape's widths allow it, else int64 (``record="full"``).
    final : State
        State after the last step; pass it as ``state=`` to continue the run.
    record : str
        What was recorded, one of :data:`RECORDS`.
    packed : uint8 array [T, ceil(N / 8)] or None
        ``np.packbits(spikes, axis=1)`` (``record="spikes"``; ``np.unpackbits(packed, axis=1,
        count=N)`` gives the spikes back).
    spike_count, first_spike, last_spike : int64 arrays [N] or None
        Spikes per neuron, the steps of its first and last spike, -1 if none
        (``record="counts"``).
    probes : tuple of int or None
        The probed neurons (``record="probes"``).
    probe_v : signed integer array [T, K] or None
        ``v[:, probes]`` (``record="probes"``).
    """

    spikes: np.ndarray | None
    v: np.ndarray | None
    final: State
    record: str = "full"
    packed: np.ndarray | None = None
    spike_count: np.ndarray | None = None
    first_spike: np.ndarray | None = None
    last_spike: np.ndarray | None = None
    probes: tuple | None = None
    probe_v: np.ndarray | None = None

    def spike_raster(self) -> np.ndarray:
        """The spikes as bool [T, N], from a ``full`` or ``spikes`` record."""
        if self.spikes is not None:
            return self.spikes
        if self.packed is not None:
            n = self.final.v.size
            return np.unpackbits(self.packed, axis=1, count=n).astype(bool)
        raise ConfigError(f"a record={self.record!r} run has no spike raster; run it with "
                          "record='full' or 'spikes'")

    def spike_times(self, neuron: int = 0) -> list[int]:
        return np.flatnonzero(self.spike_raster()[:, neuron]).tolist()

    def counts(self) -> np.ndarray:
        if self.spike_count is not None:
            return self.spike_count
        return self.spike_raster().sum(axis=0)


def fresh_state(config: Config) -> State:
    """The state right after a clear: ``v = v_init``, ``r = 0``, noise reseeded, step 0."""
    p = _param_arrays([config])
    return State(
        v=p["v_init"].copy(),
        r=np.zeros(config.shape.neurons, dtype=np.int64),
        noise=lane_seeds(config.noise.seed, config.shape.lanes),
        step=0,
    )


def _param_arrays(configs) -> dict:
    shape = configs[0].shape
    size = shape.group_size
    names = ("v_th", "v_reset", "v_rest", "v_init", "bias", "leak", "t_ref")
    out = {}
    for name in names:
        per_group = np.array(
            [[int(getattr(p, name)) for p in c.params] for c in configs], dtype=np.int64
        )
        out[name] = np.repeat(per_group, size, axis=1).reshape(-1)
    for name in ("leak_mode", "reset_mode"):
        per_group = np.array([[int(getattr(p, name)) for p in c.params] for c in configs])
        out[name] = np.repeat(per_group, size, axis=1).reshape(-1).astype(np.int8)
    return out


def _check_currents(shape, currents, steps, batch):
    """Return currents as int64 [steps, batch*N] (or None for zero input), checked for range."""
    if currents is None:
        return None
    a = np.asarray(currents)
    if a.dtype.kind not in "iub":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ConfigError(
                f"parameter 'currents' must hold integers (fixed-point units), not {a.dtype} values"
            )
    a = a.astype(np.int64, copy=False)
    given = a  # the range is checked on it: a broadcast view would be scanned T times over
    n = shape.neurons
    want = (batch, steps, n) if batch > 1 else (steps, n)
    if batch > 1:
        if a.shape == (batch, n):
            a = np.broadcast_to(a[:, None, :], want)
        elif a.shape == (steps, n) or a.shape == (n,):
            a = np.broadcast_to(a, (batch,) + ((steps, n) if a.ndim == 2 else (n,)))
            if a.ndim == 2:
                a = np.broadcast_to(a[:, None, :], want)
    elif a.shape == (n,):
        a = np.broadcast_to(a, want)
    if a.shape != want:
        raise ConfigError(
            f"parameter 'currents' must have shape {want} or one current per neuron, "
            f"not {a.shape}"
        )
    lo, hi = shape.i_range
    if a.size and (given.min() < lo or given.max() > hi):
        raise ConfigError(
            f"parameter 'currents' must lie in [{lo}, {hi}] (i_width {shape.i_width}), "
            f"not [{given.min()}, {given.max()}]"
        )
    if batch > 1:
        a = np.ascontiguousarray(np.moveaxis(a, 0, 1)).reshape(steps, batch * n)
    return a


def simulate(config: Config, steps: int, currents=None, *, state: State | None = None,
             record: str = "full", probes=None, engine: str = "numpy") -> Result:
    """Run ``steps`` steps of the array described by ``config``.

    Parameters
    ----------
    config : Config
    steps : int
        Number of steps, 0 or more.
    currents : None, int array [steps, N] or [N]
        Input current per step and neuron (the gateware's input stream); ``None`` for none.
        Values must lie in the signed ``i_width`` range.
    state : State, optional
        State to start from; default: the state after a clear (:func:`fresh_state`).
    record : str
        What to keep, one of :data:`RECORDS` (default ``full``: every spike and membrane).
    probes : sequence of int, optional
        Distinct neuron indices whose membranes ``record="probes"`` keeps.
    engine : str
        ``numpy`` (this module, the reference) or ``fused`` (:mod:`lifgate.golden.fast`).
    """
    if not isinstance(config, Config):
        raise ConfigError(f"parameter 'config' must be a Config, not {config!r}")
    states = None if state is None else [state]
    return _run([config], steps, currents, states, record, probes, engine)[0]


def simulate_batch(configs, steps: int, currents=None, *, states=None, record: str = "full",
                   probes=None, engine: str = "numpy") -> list[Result]:
    """Run several configurations of one shape side by side (one vectorised run).

    ``currents`` is None, [B, steps, N], [B, N], [steps, N] or [N]. ``record``, ``probes`` and
    ``engine`` as for :func:`simulate`. Returns one :class:`Result` per configuration.
    """
    configs = list(configs)
    if not configs:
        return []
    for c in configs:
        if not isinstance(c, Config):
            raise ConfigError(f"every entry of 'configs' must be a Config, not {c!r}")
        if c.shape != configs[0].shape:
            raise ConfigError("all configurations in a batch must have the same shape")
    return _run(configs, steps, currents, states, record, probes, engine)


_THREADS = min(2, os.cpu_count() or 1)
_THREAD_MIN = 1 << 15  # neurons below which a second thread costs more than it saves


def _check_record(record, probes, n):
    """``(record, probes)`` checked: probes a tuple of distinct indices, or None."""
    if record not in RECORDS:
        raise ConfigError(f"parameter 'record' must be one of {', '.join(RECORDS)}, "
                          f"not {record!r}")
    if record != "probes":
        if probes is not None:
            raise ConfigError("parameter 'probes' needs record='probes', not "
                              f"record={record!r}")
        return record, None
    try:
        items = list(probes)
    except TypeError:
        items = None
    if not items or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                            and 0 <= k < n for k in items):
        raise ConfigError(f"parameter 'probes' must be a non-empty list of neuron indices in "
                          f"[0, {n - 1}], not {probes!r}"[:200])
    items = tuple(int(k) for k in items)
    if len(set(items)) != len(items):
        raise ConfigError(f"parameter 'probes' must list distinct neurons, not {items!r}"[:200])
    return record, items


class _Recorder:
    """What the numpy engine keeps of each step when ``record`` is not ``full``."""

    def __init__(self, record, steps, batch, n, probes, dtype):
        self.record, self.batch, self.n, self.probes = record, batch, n, probes
        total = batch * n
        if record == "spikes":
            self.packed = np.zeros((steps, batch, (n + 7) // 8), dtype=np.uint8)
        elif record == "counts":
            self.counts = np.zeros(total, dtype=np.int64)
            self.first = np.full(total, -1, dtype=np.int64)
            self.last = np.full(total, -1, dtype=np.int64)
        elif record == "probes":
            self.probe_v = np.zeros((steps, batch, len(probes)), dtype=dtype)

    def take(self, t, s, v):
        """Record step ``t``: spikes ``s`` (bool) and membranes ``v``, both [B * N]."""
        if self.record == "spikes":
            self.packed[t] = np.packbits(s.reshape(self.batch, self.n), axis=1)
        elif self.record == "counts":
            self.counts += s
            s = s.astype(bool, copy=False)  # a multi-spike count: spiked at all
            self.last[s] = t
            self.first[s & (self.first < 0)] = t
        elif self.record == "probes":
            self.probe_v[t] = v.reshape(self.batch, self.n)[:, list(self.probes)]

    def output(self):
        if self.record == "spikes":
            return {"packed": self.packed}
        if self.record == "counts":
            return {"counts": self.counts, "first": self.first, "last": self.last}
        return {"probe_v": self.probe_v}


def _run(configs, steps, currents, states, record="full", probes=None, engine="numpy"):
    shape = configs[0].shape
    batch, n, lanes = len(configs), shape.neurons, shape.lanes
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"parameter 'steps' must be a non-negative integer, not {steps!r}")
    if engine not in ENGINES:
        raise ConfigError(f"parameter 'engine' must be one of {', '.join(ENGINES)}, "
                          f"not {engine!r}")
    record, probes = _check_record(record, probes, n)
    if shape.spike_max > 1 and (engine == "fused" or record == "spikes"):
        what = "engine='fused'" if engine == "fused" else "record='spikes' (one bit a neuron)"
        raise ConfigError(f"parameter 'shape.spike_max' is {shape.spike_max}: {what} does not "
                          f"support multi-spike counts; use engine='numpy' and record='full', "
                          f"'counts' or 'probes'")
    steps = int(steps)
    cur = _check_currents(shape, currents, steps, batch)
    if states is None:
        states = [fresh_state(c) for c in configs]
    p = _param_arrays(configs)
    v = np.concatenate([s.v for s in states]).astype(np.int64)
    r = np.concatenate([s.r for s in states]).astype(np.int64)
    vmin, vmax = shape.v_range
    if v.min(initial=vmin) < vmin or v.max(initial=vmax) > vmax:
        raise ConfigError(f"state 'v' must lie in [{vmin}, {vmax}]")
    gains = np.array([c.noise.gain for c in configs], dtype=np.int64)
    seeds = np.concatenate([s.noise for s in states])
    dtype = _work_dtype(shape, [q for c in configs for q in c.params])
    run = _run_fused if engine == "fused" else _run_numpy
    raw, v, r, noise_state = run(configs, steps, cur, p, v, r, gains, seeds, dtype, record,
                                 probes)
    if noise_state is None:
        # The generators advance on every update whatever the gain (numerics.md, "Noise"):
        # jump them ahead so a later run with noise on continues where the hardware is.
        noise_state = jump(seeds, steps * shape.depth)
    results = []
    for b in range(batch):
        sl = slice(b * n, (b + 1) * n)
        final = State(v=v[sl].astype(dtype, copy=True), r=r[sl].astype(dtype, copy=True),
                      noise=noise_state[b * lanes:(b + 1) * lanes].copy(),
                      step=states[b].step + steps)
        res = Result(None, None, final, record=record)
        if record == "full":
            res.spikes = raw["spikes"].reshape(steps, batch, n)[:, b]
            res.v = raw["v"].reshape(steps, batch, n)[:, b]
        elif record == "spikes":
            res.packed = raw["packed"][:, b]
        elif record == "counts":
            res.spike_count = raw["counts"][sl]
            res.first_spike, res.last_spike = raw["first"][sl], raw["last"][sl]
        else:
            res.probes, res.probe_v = probes, raw["probe_v"][:, b]
        results.append(res)
    return results


def _run_fused(configs, steps, cur, p, v, r, gains, seeds, dtype, record, probes):
    """The run on :mod:`lifgate.golden.fast`; same inputs and outputs as :func:`_run_numpy`."""
    # numba takes seconds to import: only a fused run pays for it, not every process that
    # imports the reference (each cocotb session, each CLI command)
    import lifgate.golden.fast as fast

    shape = configs[0].shape
    cols = ("v_th", "v_reset", "v_rest", "bias", "leak", "t_ref", "leak_mode", "reset_mode")
    gs = shape.group_size
    table = np.stack([p[c][::gs].astype(np.int64) for c in cols], axis=1)
    table = np.ascontiguousarray(table)
    noise = None
    if gains.any():
        noise = (seeds.astype(np.int64), gains, shape.depth, shape.lanes)
    if cur is not None:
        cur = np.ascontiguousarray(cur[:1] if cur.strides[0] == 0 else cur, dtype=np.int64)
    order = np.array(sorted(probes) if probes else [], dtype=np.int64)
    rec = ("full", "spikes", "counts", "probes").index(record)
    raw = fast.run(table, gs, shape.neurons, v, r, noise, steps, cur,
                   (shape.v_range[0], shape.v_range[1], shape.decay_frac), rec, order,
                   np.dtype(dtype))
    if probes:
        raw["probe_v"] = raw["probe_v"][:, :, np.searchsorted(order, probes)]
    noise_state = None if noise is None else noise[0].astype(np.uint32)
    return raw, v, r, noise_state


def _run_numpy(configs, steps, cur, p, v, r, gains, seeds, dtype, record, probes):
    """The reference run: returns ``(recordings, v, r, noise state or None)``."""
    shape = configs[0].shape
    batch, n, lanes = len(configs), shape.neurons, shape.lanes
    noise = None
    if gains.any():
        noise = NoiseModel(seeds, shape.depth)
        gain_n = np.repeat(gains, n)

    total = batch * n
    v = v.astype(dtype)
    r = r.astype(dtype)
    if cur is not None:
        cur = cur.astype(dtype, copy=False)
    full = record == "full"
    rows = steps if full else 1
    # spike_max > 1: the spike count of each step (docs/numerics.md, "Multi-spike output")
    out_s = np.empty((rows, total), dtype=bool if shape.spike_max == 1 else np.uint8)
    out_v = np.empty((rows, total), dtype=dtype)
    recorder = None if full else _Recorder(record, steps, batch, n, probes, dtype)

    def run_slice(lo, hi):
        sl = slice(lo, hi)
        kernel = _Kernel(shape, {k: a[sl] for k, a in p.items()}, dtype, r[sl])
        vv, rr = v[sl], r[sl]
        for t in range(steps):
            extra = None if cur is None else cur[t, sl]
            if noise is not None:
                c = noise.step()  # [depth, batch*lanes]
                c = c.reshape(shape.depth, batch, lanes).transpose(1, 0, 2).reshape(-1)
                z = ((c * gain_n) >> 8).astype(dtype)
                extra = z if extra is None else extra + z
            row = t if full else 0
            vv, rr = kernel.step(vv, rr, extra, out_s[row, sl], out_v[row, sl])
            if recorder is not None:
                recorder.take(t, out_s[0], out_v[0])
                vv = vv.copy()  # out_v[0] is overwritten by the next step
        return vv, rr

    # Neurons are independent, so without noise (which is generated lane-wide per step) two
    # threads each run all steps of half of them; numpy releases the GIL inside its loops.
    threads = _THREADS if noise is None and total >= _THREAD_MIN and full else 1
    if threads > 1:
        bounds = np.linspace(0, total, threads + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(run_slice, bounds[:-1], bounds[1:]))
        v = np.concatenate([a for a, _ in parts])
        r = np.concatenate([b for _, b in parts])
    else:
        v, r = run_slice(0, total)
    raw = {"spikes": out_s, "v": out_v} if full else recorder.output()
    return raw, v, r, (noise.state if noise is not None else None)


def _work_dtype(shape, params_list):
    """int32 when every intermediate of a step provably fits, else int64.

    Bounds: |bias|, |c| < 2^(W-1); |h| < 2^W (SUBTRACT: v - v_th); |d| < 2^(W+1);
    |i| <= 2^(IW-1); |z| <= 510 * 65535 / 256.
    MULT in int32 splits ``D = 256 Dh + Dl`` so no product exceeds 2^(W + 9).
    """
    w, iw, f = shape.v_width, shape.i_width, shape.decay_frac
    ok = w <= 24 and iw <= 24
    if any(p.leak_mode == LeakMode.MULT for p in params_list):
        ok = ok and f >= 8 and w + 1 + max(8, f - 8) <= 30
    return np.int32 if ok else np.int64


class _Kernel:
    """One vectorised step over a slice of neurons.

    Parameters that are the same for every neuron of the slice become scalars, and the mode
    branches that no neuron uses are skipped: same results, fewer memory passes.
    """

    def __init__(self, shape, p, dtype, r0):
        self.dtype = dtype
        self.vmin, self.vmax = shape.v_range
        self.F = shape.decay_frac
        self.spike_max = shape.spike_max

        def s(a):
            a = np.asarray(a)
            return dtype(a.flat[0]) if a.size and (a == a.flat[0]).all() else a.astype(dtype)

        modes = p["leak_mode"]
        self.shift = modes == LeakMode.SHIFT
        self.mult = modes == LeakMode.MULT
        self.const = modes == LeakMode.CONST
        self.uniform = None
        for mode, mask in ((LeakMode.SHIFT, self.shift), (LeakMode.MULT, self.mult),
                           (LeakMode.CONST, self.const)):
            if mask.all():
                self.uniform = mode
        value = p["reset_mode"] == ResetMode.VALUE
        after = p["reset_mode"] == ResetMode.SUBTRACT_AFTER_LEAK
        self.all_value = bool(value.all())
        self.all_subtract = bool((p["reset_mode"] == ResetMode.SUBTRACT).all())
        self.any_after = bool(after.any())
        self.value = value
        self.after = after
        self.v_th = s(p["v_th"])
        self.v_reset = s(p["v_reset"])
        self.v_rest = s(p["v_rest"])
        self.t_ref = s(p["t_ref"])
        self.bias = s(p["bias"])
        k = np.where(self.shift, p["leak"], 0)
        self.k = s(k)
        self.half = s((np.int64(1) << k) >> 1)
        D = np.where(self.mult, p["leak"], 0)
        self.D = s(D)
        self.split = dtype == np.int32
        if self.split:
            self.Dh, self.Dl = s(D >> 8), s(D & 0xFF)
        # CONST leak folds into the bias: leak(h) + bias = h + (bias - c).
        self.bias_const = s(p["bias"] - np.where(self.const, p["leak"], 0))
        self.any_ref = bool((p["t_ref"] > 0).any() or (r0 > 0).any())

    def _mult(self, d):
        F = self.F
        if self.split:
            # floor((256 a + b) / 2^F) == floor((a + floor(b / 256)) / 2^(F-8)), exactly.
            return (d * self.Dh + ((d * self.Dl + (1 << (F - 1))) >> 8)) >> (F - 8)
        return (d * self.D + (1 << (F - 1))) >> F

    def leak_plus_bias(self, h):
        u = self.uniform
        if u == LeakMode.CONST:
            return h + self.bias_const
        d = h - self.v_rest
        if u == LeakMode.SHIFT:
            d += self.half
            d >>= self.k
            x = h - d
            x += self.bias
            return x
        if u == LeakMode.MULT:
            x = self._mult(d)
            x += self.v_rest + self.bias
            return x
        shift_v = h - ((d + self.half) >> self.k)
        mult_v = self.v_rest + self._mult(d)
        out = np.where(self.mult, mult_v, shift_v)
        out = np.where(self.const, h, out)
        return out + self.bias_const

    # Selections are arithmetic blends (``a + mask * (b - a)``) rather than ``np.where``: with
    # unpredictable masks ``np.where`` costs about 30 times an add on this kind of machine.
    def step(self, v, r, extra, spikes_out, v_out):
        """One step: writes the spikes into ``spikes_out`` and ``v'`` into ``v_out``."""
        refr = r > 0 if self.any_ref else None
        multi = self.spike_max > 1
        fire = np.greater_equal(v, self.v_th, out=None if multi else spikes_out)
        if refr is not None:
            fire &= ~refr
            sel = refr | fire
        else:
            sel = fire
        count = fire
        if multi:  # n = min(v // v_th, spike_max) where it fires (v_th >= 1), else 0
            count = np.minimum(v // self.v_th, self.spike_max)
            count *= fire
            spikes_out[...] = count
        # h: value after refractory/threshold handling
        if self.all_value:
            h = self.v_reset - v
            h *= sel
            h += v
        elif self.all_subtract:
            h = v - count * self.v_th
        else:
            h = v - (count * (~self.value & ~self.after)) * self.v_th
            h += (sel & self.value) * (self.v_reset - h)
        x = self.leak_plus_bias(h)
        if extra is not None:
            x += extra
        if self.any_after:
            # SUBTRACT_AFTER_LEAK: v_th leaves in the integrate sum (and from a held value).
            e = (fire & self.after) * self.v_th
            h -= e
            x -= e
        if refr is not None:
            r1 = r - refr
            r1 += fire * self.t_ref
            hold = r1 > 0
            h -= x
            h *= hold
            x += h  # x = h where held
        else:
            r1 = r  # t_ref is 0 everywhere and r is 0: it stays 0
        np.clip(x, self.vmin, self.vmax, out=v_out)
        return v_out, r1


def step_scalar(shape, p: NeuronParams, v: int, r: int, i: int = 0, z: int = 0):
    """One step of one neuron, transcribed literally from ``docs/numerics.md``.

    Returns ``(spike, v', r')``; ``spike`` is the count ``n`` (0 or 1 for ``spike_max = 1``).
    Plain Python integers; slow; the reference the vectorised :func:`simulate` is tested
    against.
    """
    vmin, vmax = shape.v_range
    value = p.reset_mode == ResetMode.VALUE
    after = p.reset_mode == ResetMode.SUBTRACT_AFTER_LEAK
    e = 0  # the threshold subtracted after the leak (SUBTRACT_AFTER_LEAK, at a spike)
    if r > 0:
        s, r1, h = 0, r - 1, (p.v_reset if value else v)
    elif v >= p.v_th:
        # n: the largest count 1 .. spike_max with n * v_th <= v ("Multi-spike output")
        s = 1 if shape.spike_max == 1 else min(v // p.v_th, shape.spike_max)
        r1 = p.t_ref
        if value:
            h = p.v_reset
        elif after:
            h, e = v, s * p.v_th
        else:
            h = v - s * p.v_th
    else:
        s, r1, h = 0, 0, v
    if r1 > 0:
        x = h - e
    else:
        d = h - p.v_rest
        if p.leak_mode == LeakMode.SHIFT:
            k = p.leak
            leaked = h - ((d + ((1 << k) >> 1)) >> k)
        elif p.leak_mode == LeakMode.MULT:
            F = shape.decay_frac
            leaked = p.v_rest + ((d * p.leak + (1 << (F - 1))) >> F)
        else:
            leaked = h - p.leak
        x = leaked + p.bias + i + z - e
    return s, min(max(x, vmin), vmax), r1
