"""Regression cases for the RTL: directed edge cases and seeded random run-time configurations.

A :class:`SimCase` is everything one simulation session needs to run one configuration and to
compute what it must produce: the :class:`~lifgate.config.Config` (its shape must be the one
the model was built for), a list of :class:`Segment` runs (continued, after a clear, or aborted
by a reset), the input current stimulus (generated from a seed, so a case is a small JSON
object) and the backpressure settings of the harness. The pytest tests, ``lifgate verify`` and
``bench/bench_sim.py`` all draw their cases from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
)

__all__ = [
    "INPUT_KINDS",
    "Segment",
    "SimCase",
    "directed_cases",
    "random_cases",
    "random_config",
    "random_params",
]

#: Input stimulus kinds: ``uniform`` (uniform in +-2**(bits-1)), ``negative`` (uniform in
#: -2**(bits-1)..-1), ``extreme`` (the ends of the i_width range, 0 and +-1), ``sparse``
#: (mostly 0, sometimes a large pulse).
INPUT_KINDS = ("uniform", "negative", "extreme", "sparse")


@dataclass(frozen=True)
class Segment:
    """One ``start`` of the array within a case.

    Members
    -------
    steps : int
        Steps this run takes (it is split into several ``start``s if the harness' stimulus
        memory is too small); 0 is one ``start`` with ``steps = 0``, which runs none
        (``done`` still pulses; ``docs/hardware.md``).
    clear : bool
        Clear the array before this run (state back to ``v_init``, step 0, noise reseeded).
        The first segment of a case always starts after a clear.
    abort_after : int or None
        If set, this run is aborted by a synchronous reset ``abort_after`` clock cycles after its
        ``start``, its beats are discarded, and the array is cleared; the next segment starts
        from the cleared state. A run that cannot have ended by then (``steps * D >
        abort_after``) must not have pulsed ``done``.
    reset : bool
        A synchronous reset while idle before this run (before its clear, if any), and no
        clear: the membranes, refractory counters, parameters and noise generators carry over,
        the step label restarts at 0 (``docs/hardware.md``, "Reset, power-up and X").
    """

    steps: int
    clear: bool = False
    abort_after: int | None = None
    reset: bool = False

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"segment 'steps' must be an integer >= 0, not {self.steps!r}")
        if not isinstance(self.reset, bool):
            raise ConfigError(f"segment 'reset' must be True or False, not {self.reset!r}")


@dataclass(frozen=True)
class SimCase:
    """One regression case.

    Members
    -------
    name : str
    config : Config
    segments : tuple of Segment
    input : dict or None
        ``None``: ``input_en`` is 0 (zero current). Else ``{"kind": one of INPUT_KINDS,
        "bits": int, "seed": int}``; see :meth:`currents`.
    ready_thresh : int
        0..255: o_stream.ready is low in a cycle with probability ``ready_thresh / 256``.
    gap_thresh : int
        0..255: probability ``gap_thresh / 256`` of a gap before each i_stream beat.
    lfsr_seed : int
        Seed of the harness LFSR that draws the backpressure.
    stimulus : str or None
        Path of a ``.npy`` file of integer input currents [steps, N] for the whole case (the
        rows of every segment in order), instead of generated ``input``; ``None``: not used.
        For runs with a given stimulus (``lifgate demo``).
    outputs : str or None
        Path of a ``.npz`` file the testbench writes with the RTL's ``spikes`` (bool) and ``v``
        (int64), [steps, N], of the compared segments in order; ``None``: not written.
    """

    name: str
    config: Config
    segments: tuple = (Segment(32),)
    input: dict | None = None
    ready_thresh: int = 0
    gap_thresh: int = 0
    lfsr_seed: int = 1
    stimulus: str | None = None
    outputs: str | None = None
    # Filled in by random_cases: the generator seed and index that reproduce this case.
    origin: dict = field(default_factory=dict, compare=False)
    hw_config: Config | None = None

    def __post_init__(self):
        segs = tuple(self.segments)
        if not segs or not all(isinstance(s, Segment) for s in segs):
            raise ConfigError(f"case {self.name!r}: 'segments' must be a list of Segment")
        object.__setattr__(self, "segments", segs)
        for name in ("ready_thresh", "gap_thresh"):
            v = getattr(self, name)
            if not 0 <= v <= 255:
                raise ConfigError(f"case {self.name!r}: {name!r} must be in [0, 255], not {v!r}")
        if self.stimulus is not None and self.input is not None:
            raise ConfigError(f"case {self.name!r}: give 'input' or 'stimulus', not both")
        if self.input is not None:
            kind = self.input.get("kind")
            if kind not in INPUT_KINDS:
                raise ConfigError(
                    f"case {self.name!r}: input kind must be one of {INPUT_KINDS}, not {kind!r}"
                )
            bits = self.input.get("bits", self.config.shape.i_width)
            if not 1 <= bits <= self.config.shape.i_width:
                raise ConfigError(
                    f"case {self.name!r}: input bits must be in [1, {self.config.shape.i_width}]"
                    f", not {bits!r}"
                )

    @property
    def steps(self) -> int:
        """Steps whose outputs are compared (aborted segments not counted)."""
        return sum(s.steps for s in self.segments if s.abort_after is None)

    @property
    def updates(self) -> int:
        """Neuron updates compared."""
        return self.steps * self.config.shape.neurons

    def currents(self, segment: int) -> np.ndarray | None:
        """Input currents of segment ``segment``: int64 [steps, N], or None (input off)."""
        if self.stimulus is not None:
            first = sum(s.steps for s in self.segments[:segment])
            steps = self.segments[segment].steps
            rows = np.load(self.stimulus, mmap_mode="r")[first : first + steps]
            want = (steps, self.config.shape.neurons)
            if rows.shape != want:
                raise ConfigError(
                    f"case {self.name!r}: stimulus rows of segment {segment} have shape "
                    f"{rows.shape}, not {want}"
                )
            return np.asarray(rows, dtype=np.int64)
        if self.input is None:
            return None
        shape = self.config.shape
        steps = self.segments[segment].steps
        rng = np.random.default_rng([int(self.input.get("seed", 0)), segment])
        lo, hi = shape.i_range
        bits = int(self.input.get("bits", shape.i_width))
        a_lo, a_hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        size = (steps, shape.neurons)
        kind = self.input["kind"]
        if kind == "uniform":
            return rng.integers(a_lo, a_hi, size=size, endpoint=True)
        if kind == "negative":
            return rng.integers(a_lo, min(-1, a_hi), size=size, endpoint=True)
        if kind == "extreme":
            choices = np.array(sorted({lo, hi, 0, max(lo, -1), min(hi, 1), lo + 1, hi - 1}))
            return choices[rng.integers(0, len(choices), size=size)]
        # sparse
        pulses = rng.integers(a_lo, a_hi, size=size, endpoint=True)
        return np.where(rng.random(size) < 0.1, pulses, 0)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "config": self.config.to_dict(),
            "segments": [dataclasses.asdict(s) for s in self.segments],
            "input": self.input,
            "ready_thresh": self.ready_thresh,
            "gap_thresh": self.gap_thresh,
            "lfsr_seed": self.lfsr_seed,
            **({"stimulus": self.stimulus} if self.stimulus is not None else {}),
            **({"outputs": self.outputs} if self.outputs is not None else {}),
            "origin": self.origin,
            "hw_config": None if self.hw_config is None else self.hw_config.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SimCase:
        return cls(
            name=d["name"],
            config=Config.from_dict(d["config"]),
            segments=tuple(Segment(**s) for s in d["segments"]),
            input=d.get("input"),
            ready_thresh=d.get("ready_thresh", 0),
            gap_thresh=d.get("gap_thresh", 0),
            lfsr_seed=d.get("lfsr_seed", 1),
            stimulus=d.get("stimulus"),
            outputs=d.get("outputs"),
            origin=d.get("origin", {}),
            hw_config=None if d.get("hw_config") is None else Config.from_dict(d["hw_config"]),
        )


# Random generation ------------------------------------------------------------------------------


def _pick(rng, lo: int, hi: int, edges=()) -> int:
    """Uniform in [lo, hi], or (one time in four) one of the edge values in range."""
    cands = [e for e in (lo, hi, lo + 1, hi - 1, 0, *edges) if lo <= e <= hi]
    if cands and rng.random() < 0.25:
        return int(cands[rng.integers(len(cands))])
    return int(rng.integers(lo, hi, endpoint=True))


def _clip(x: int, lo: int, hi: int) -> int:
    return int(min(max(x, lo), hi))


def random_params(rng: np.random.Generator, shape: ArrayShape) -> NeuronParams:
    """One random, legal parameter set for ``shape``.

    Two styles: "scaled" (about 3 in 4) picks values on a random scale below the full range, so
    neurons integrate, leak and spike over a run; "wild" picks every field anywhere in its range,
    biased to the range ends, so saturation and out-of-range ``v - v_th`` happen.
    """
    lo, hi = shape.v_range
    w = shape.v_width
    mode = LeakMode(shape.leak_modes[rng.integers(len(shape.leak_modes))])
    reset_mode = shape.reset_modes[int(rng.integers(len(shape.reset_modes)))]
    if rng.random() < 0.75:
        scale = 1 << int(rng.integers(2, w))  # up to 2^(W-1)
        v_rest = _clip(int(rng.integers(-scale // 4, scale // 4, endpoint=True)), lo, hi)
        v_th = _clip(v_rest + int(rng.integers(0, scale, endpoint=True)), lo, hi)
        v_reset = _clip(v_rest + int(rng.integers(-scale // 2, scale // 4, endpoint=True)), lo, hi)
        v_init = _clip(int(rng.integers(min(v_reset, v_th), max(v_reset, v_th), endpoint=True)),
                       lo, hi)
        bias = _clip(int(rng.integers(-scale // 8, scale // 4, endpoint=True)), lo, hi)
        const = _clip(int(rng.integers(-scale // 16, scale // 8, endpoint=True)), lo, hi)
    else:
        v_rest, v_th, v_reset, v_init, bias, const = (_pick(rng, lo, hi) for _ in range(6))
    if shape.spike_max > 1:
        # multi-spike output needs v_th >= 1 (docs/numerics.md); small ones give big counts
        v_th = max(1, v_th if rng.random() < 0.5 else v_th >> int(rng.integers(1, w)))
    llo, lhi = shape.leak_range(mode)
    if mode == LeakMode.SHIFT:
        leak = _pick(rng, llo, lhi, edges=(1, w - 1))
    elif mode == LeakMode.MULT:
        f = shape.decay_frac
        tau = int(rng.integers(1, 64))
        typical = _clip(round((1 - 1 / tau) * (1 << f)), llo, lhi)
        leak = typical if rng.random() < 0.5 else _pick(rng, llo, lhi, edges=(1 << (f - 1),))
    else:
        leak = const if rng.random() < 0.75 else _pick(rng, llo, lhi, edges=(-1, 1))
    tmax = shape.t_ref_max
    r = rng.random()
    if r < 0.3:
        t_ref = 0
    elif r < 0.8:
        t_ref = int(rng.integers(1, min(tmax, 4), endpoint=True))
    else:
        t_ref = _pick(rng, 0, tmax, edges=(1, 2))
    return NeuronParams(
        v_th=v_th,
        v_reset=v_reset,
        v_rest=v_rest,
        v_init=v_init,
        bias=bias,
        leak_mode=mode,
        leak=leak,
        reset_mode=reset_mode,
        t_ref=t_ref,
    )


def random_config(rng: np.random.Generator, shape: ArrayShape) -> Config:
    """A random run-time configuration of ``shape``: parameters per group and noise."""
    g = shape.groups
    if g > 1 and rng.random() < 0.3:
        params = (random_params(rng, shape),)
    else:
        params = tuple(random_params(rng, shape) for _ in range(g))
    noise = NoiseParams(seed=int(rng.integers(0, 1 << 32)), gain=0)
    if rng.random() < 0.35:
        gain = int(rng.choice([1, 255, 256, 65535, int(rng.integers(1, 1 << 16))]))
        noise = NoiseParams(seed=noise.seed, gain=gain)
    return Config(shape=shape, params=params, noise=noise)


def random_cases(shape: ArrayShape, seed: int, count: int, *, steps: int = 48,
                 prefix: str = "random") -> list[SimCase]:
    """``count`` random cases of ``shape`` from ``seed`` (case ``k`` depends on seed and k only).

    Each case has a random configuration (:func:`random_config`), 1 to 3 segments of about
    ``steps`` steps in all (continued runs and clears between them), random input stimulus
    (or none) and, for about half the cases, random backpressure on both streams.
    """
    out = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        config = random_config(rng, shape)
        nseg = int(rng.integers(1, 4))
        segs = []
        for j in range(nseg):
            n = max(1, int(rng.integers(max(1, steps // (2 * nseg)), 2 * steps // nseg + 1)))
            segs.append(Segment(n, clear=bool(j > 0 and rng.random() < 0.4)))
        inp = None
        if rng.random() < 0.75:
            inp = {
                "kind": INPUT_KINDS[int(rng.integers(len(INPUT_KINDS)))],
                "bits": int(rng.integers(1, shape.i_width, endpoint=True)),
                "seed": int(rng.integers(1 << 31)),
            }
        ready = gap = 0
        if rng.random() < 0.5:
            ready = int(rng.choice([32, 128, 224]))
            gap = int(rng.choice([0, 64, 192])) if inp is not None else 0
        out.append(
            SimCase(
                name=f"{prefix}{k}",
                config=config,
                segments=tuple(segs),
                input=inp,
                ready_thresh=ready,
                gap_thresh=gap,
                lfsr_seed=int(rng.integers(1, 1 << 32)),
                origin={"seed": seed, "index": k},
            )
        )
    return out


# Directed cases -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Directed:
    """What the groups of directed cases share: the shape, the run lengths, the list."""

    shape: ArrayShape
    steps: int
    long_steps: int
    cases: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        s = self.shape
        self.lo, self.hi = s.v_range
        self.modes = s.leak_modes
        self.m0 = self.modes[0]
        self.iaf = LeakMode.CONST if LeakMode.CONST in self.modes else self.m0
        self.full = {"kind": "uniform", "bits": s.i_width, "seed": 11}

    def leak0(self, mode):
        """A leak value that does (almost) nothing."""
        w, f = self.shape.v_width, self.shape.decay_frac
        return {LeakMode.SHIFT: w, LeakMode.MULT: (1 << f) - 1, LeakMode.CONST: 0}[mode]

    def mild(self, mode):
        """An ordinary leak: tau of about 8 steps."""
        w, f = self.shape.v_width, self.shape.decay_frac
        return {LeakMode.SHIFT: min(3, w), LeakMode.MULT: round((1 - 1 / 8) * ((1 << f) - 1)),
                LeakMode.CONST: 1}[mode]

    def per_group(self, make):
        return tuple(make(g) for g in range(self.shape.groups))

    def add(self, name, params, *, segments=None, inp=None, noise=None, ready=0, gap=0, lfsr=7):
        if isinstance(params, NeuronParams):
            params = (params,)
        tmax = self.shape.t_ref_max
        params = [dataclasses.replace(p, t_ref=min(p.t_ref, tmax)) for p in params]
        cfg = Config(shape=self.shape, params=tuple(params), noise=noise or NoiseParams())
        self.cases.append(
            SimCase(
                name=name,
                config=cfg,
                segments=tuple(segments or (Segment(self.steps),)),
                input=inp,
                ready_thresh=ready,
                gap_thresh=gap,
                lfsr_seed=lfsr,
            )
        )


def directed_cases(shape: ArrayShape, *, steps: int = 24, long_steps: int = 300) -> list[SimCase]:
    """Hand-picked edge cases for ``shape`` (leak modes the shape lacks are skipped).

    Runs take ``steps`` steps, except the refractory cases, which run ``t_ref + 4`` steps
    (capped at ``long_steps``) so that the end of the longest refractory period is seen.

    Saturation at both ends, threshold equality, negative currents, refractory boundaries
    (``t_ref`` 0, 1, 2 and the maximum), both reset modes, every leak mode with its extreme
    leak values, clear and reset in the middle of a sequence of runs, backpressure, noise on
    (including the seeds that make a lane's generator state 0).
    """
    d = _Directed(shape, steps, long_steps)
    _saturation_cases(d)
    _threshold_and_refractory_cases(d)
    _leak_cases(d)
    _sequence_cases(d)
    _noise_cases(d)
    _stall_cases(d)
    return d.cases


def _saturation_cases(d: _Directed) -> None:
    lo, hi, m0 = d.lo, d.hi, d.m0
    # Saturation at the top: a large bias drives every membrane to VMAX; v_th = VMAX spikes
    # on the saturated value only; with SUBTRACT the held value is VMAX - VMAX = 0.
    for rm in d.shape.reset_modes:
        d.add(
            f"sat_high_{rm.name.lower()}",
            NeuronParams(v_th=hi, v_reset=hi - 1, v_init=hi - 2, bias=hi, leak_mode=m0,
                         leak=d.leak0(m0), reset_mode=rm, t_ref=1),
            inp={"kind": "extreme", "seed": 12},
        )
    # Saturation at the bottom: large negative bias and currents; SUBTRACT with a negative
    # threshold makes h = v - v_th exceed VMAX (held value saturates).
    d.add(
        "sat_low",
        NeuronParams(v_th=hi, v_reset=lo, v_init=lo, bias=lo, leak_mode=m0, leak=d.leak0(m0)),
        inp={"kind": "negative", "bits": d.shape.i_width, "seed": 13},
    )
    d.add(
        "sat_subtract_negative_threshold",
        NeuronParams(v_th=lo, v_reset=0, v_init=hi, bias=hi, leak_mode=m0, leak=d.leak0(m0),
                     reset_mode=ResetMode.SUBTRACT, t_ref=2),
        inp={"kind": "extreme", "seed": 14},
    )
    # SUBTRACT_AFTER_LEAK saturates once, at the end: leak(v) + bias lies above VMAX and
    # - v_th brings the sum back into range (clipping before the subtraction would give about
    # 0, the exact sum about VMAX); with a negative threshold the sum goes far above VMAX and
    # t_ref 2 holds v - v_th, saturated.
    after = ResetMode.SUBTRACT_AFTER_LEAK in d.shape.reset_modes
    for name, v_th, t_ref in (("sat_after_leak_once", hi, 0),
                              ("sat_after_leak_negative_threshold", lo, 2))[:2 * after]:
        d.add(
            name,
            NeuronParams(v_th=v_th, v_reset=0, v_init=hi, bias=hi, leak_mode=m0,
                         leak=d.leak0(m0), reset_mode=ResetMode.SUBTRACT_AFTER_LEAK, t_ref=t_ref),
            inp={"kind": "extreme", "seed": 14},
        )


def _threshold_and_refractory_cases(d: _Directed) -> None:
    hi, iaf, modes, w = d.hi, d.iaf, d.modes, d.shape.v_width
    tmax = d.shape.t_ref_max
    # Threshold equality: an IAF neuron (no leak) counting up by bias 1 hits v_th exactly.
    for rm in d.shape.reset_modes:
        d.add(
            f"threshold_equal_{rm.name.lower()}",
            d.per_group(lambda g, rm=rm: NeuronParams(
                v_th=min(hi, 3 + g % 5), v_reset=0, v_init=g % 3, bias=1, leak_mode=iaf,
                leak=d.leak0(iaf), reset_mode=rm, t_ref=g % 2)),
        )
    # Negative currents into a leaky neuron resting above zero.
    d.add(
        "negative_currents",
        d.per_group(lambda g: NeuronParams(
            v_th=hi // 4, v_rest=hi // 8, v_reset=0, v_init=hi // 8, bias=hi // 16,
            leak_mode=modes[g % len(modes)], leak=d.mild(modes[g % len(modes)]))),
        inp={"kind": "negative", "bits": max(1, min(d.shape.i_width, w - 2)), "seed": 15},
    )
    # Refractory boundaries: t_ref 0, 1, 2 and the maximum, both reset modes, strong drive so
    # the neurons spike as soon as they may.
    for t_ref in sorted({0, 1, min(2, tmax), tmax}):
        for rm in d.shape.reset_modes:
            d.add(
                f"refractory_{t_ref}_{rm.name.lower()}",
                NeuronParams(v_th=hi // 8, v_reset=-(hi // 16), v_init=hi // 8, bias=hi // 4,
                             leak_mode=iaf, leak=d.leak0(iaf), reset_mode=rm, t_ref=t_ref),
                segments=(Segment(max(d.steps, min(t_ref + 4, d.long_steps))),),
            )


def _leak_cases(d: _Directed) -> None:
    lo, hi, shape = d.lo, d.hi, d.shape
    # Every leak mode with extreme and ordinary leak values, v_rest != 0 and != v_reset.
    for mode in d.modes:
        llo, lhi = shape.leak_range(mode)
        values = sorted({llo, lhi, (llo + lhi) // 2, min(lhi, max(llo, 1)), max(llo, lhi - 1)})
        if mode == LeakMode.CONST:
            values = sorted({llo, lhi, -1, 0, 1, 3})
        for leak in values:
            for rm in d.shape.reset_modes:
                d.add(
                    f"leak_{mode.name.lower()}_{leak}_{rm.name.lower()}",
                    d.per_group(lambda g, mode=mode, leak=leak, rm=rm: NeuronParams(
                        v_th=hi // 2 - g, v_rest=lo // 4 + g, v_reset=lo // 8, v_init=hi // 3 - g,
                        bias=hi // 32 + g, leak_mode=mode, leak=leak, reset_mode=rm,
                        t_ref=g % 3)),
                    inp={"kind": "uniform", "bits": max(1, min(shape.i_width, shape.v_width - 3)),
                         "seed": 16 + leak % 1000},
                )


def _base_params(d: _Directed) -> NeuronParams:
    return NeuronParams(v_th=d.hi // 8, v_rest=3, v_reset=-5, v_init=7, bias=d.hi // 64 + 1,
                        leak_mode=d.m0, leak=d.mild(d.m0), t_ref=min(2, d.shape.t_ref_max))


def _sequence_cases(d: _Directed) -> None:
    shape, steps, full = d.shape, d.steps, d.full
    # Clear between runs and runs that continue a previous one (state, step label and noise
    # carry over); a run aborted by a synchronous reset, then a clear.
    base = _base_params(d)
    noisy = NoiseParams(seed=0xC0FFEE, gain=300)
    d.add(
        "clear_mid_sequence",
        base,
        segments=(Segment(steps // 2 + 1), Segment(steps // 3 + 1), Segment(steps // 2, clear=True),
                  Segment(5)),
        inp=full,
        noise=noisy,
    )
    d.add(
        "reset_mid_run",
        base,
        segments=(Segment(steps // 2), Segment(steps, abort_after=3 * shape.depth + 5),
                  Segment(steps)),
        inp=full,
        noise=noisy,
    )
    # Backpressure on the output stream, gaps on the input stream, both heavy.
    for ready, gap in ((128, 0), (0, 160), (224, 224)):
        d.add(
            f"backpressure_r{ready}_g{gap}",
            d.per_group(lambda g: random_params(np.random.default_rng([99, g]), shape)),
            segments=(Segment(steps), Segment(steps // 2)),
            inp=full,
            noise=NoiseParams(seed=5, gain=128),
            ready=ready,
            gap=gap,
            lfsr=0xACE1 + ready + gap,
        )
    # The step label wraps modulo 2**step_width in the middle of a continued run (only for
    # shapes where that takes few updates).
    # A start with steps = 0 between two runs: it runs none, the state and the step label carry
    # over (issue 20: Yosys mutants that turn it into a run of 2**32 steps survived).
    d.add("zero_steps_between_runs", base,
          segments=(Segment(steps // 4 + 1), Segment(0), Segment(steps // 4 + 1)))
    # A reset while idle, without a clear: the state memories, parameters and noise carry
    # over, the step label restarts at 0 (issue 20: a mutant that wrote v_init during a reset
    # survived, because every earlier reset was followed by a clear).
    d.add("reset_idle_no_clear", base,
          segments=(Segment(steps // 3 + 1), Segment(steps // 3 + 1, reset=True),
                    Segment(3, reset=True)),
          inp=full, noise=noisy)
    # Runs far too long to finish, aborted by a reset after a few steps' worth of clocks: none
    # may pulse done (issue 20: a mutant that dropped bit 29 of the steps counter survived).
    # 2**k + 4 steps for every bit k = 20 .. 31 of the run counter (the long run of 2**19 + 3
    # steps makes bits 0 to 19 fall): a counter that loses bit k, when loaded or when
    # `remaining - 1` is (mutant 131 of the fifth session's run: bit 24 of `rem_dec` tied to 0),
    # ends the run after 4 steps, 4 (D + L + 2) + 2 clocks, before the abort for L <= 13.
    # Without input, so that no stimulus of 2**k steps is made.
    abort = 4 * (shape.depth + 16)
    d.add("abort_long_runs", base,
          segments=(Segment(2), *(Segment((1 << k) + 4, abort_after=abort)
                                  for k in range(20, 32)), Segment(2)))
    wrap = 1 << shape.step_width
    if wrap * shape.neurons <= 1 << 16:
        d.add("step_label_wrap", base, segments=(Segment(wrap - 3), Segment(7)), inp=full)


def _noise_cases(d: _Directed) -> None:
    hi, modes, resets = d.hi, d.modes, d.shape.reset_modes
    # Noise on: small and maximum gain; the seeds that make lane 0's and lane 1's generator
    # state 0 before the "or 1" rule.
    golden = 0x9E3779B9
    for seed, gain in ((1, 1), (0x12345678, 256), (golden, 65535), ((2 * golden) % (1 << 32), 977)):
        d.add(
            f"noise_seed{seed:x}_gain{gain}",
            d.per_group(lambda g: NeuronParams(
                v_th=hi // 4, v_rest=0, v_reset=-(hi // 8), v_init=0, bias=0,
                leak_mode=modes[g % len(modes)], leak=d.mild(modes[g % len(modes)]),
                reset_mode=resets[g % len(resets)], t_ref=g % 3)),
            noise=NoiseParams(seed=seed, gain=gain),
            inp=None if gain == 65535 else {"kind": "sparse", "seed": 17},
        )
    # Noise that stays visible in v (z about a quarter of the range: the centred byte sum has
    # a standard deviation near 148, z = c * gain / 256), under backpressure and input gaps,
    # so that the pipeline stalls while the noise multiplier holds its operands (issue 20:
    # Yosys mutants of the multiply-add's hold paths survived every other case, where the
    # noise was either too small to see or saturated v).
    gain = _clip(round(256 * (hi // 4) / 148), 1, (1 << 16) - 1)
    for ready, gap, seed in ((160, 96, 0x5EED), (96, 200, 0xBADC0DE)):
        d.add(
            f"noise_visible_stalls_r{ready}_g{gap}",
            d.per_group(lambda g: NeuronParams(
                v_th=hi, v_rest=0, v_reset=0, v_init=0, bias=0,
                leak_mode=modes[g % len(modes)], leak=d.mild(modes[g % len(modes)]),
                reset_mode=ResetMode(g % 2), t_ref=0)),
            noise=NoiseParams(seed=seed, gain=gain),
            inp={"kind": "sparse", "seed": 23},
            ready=ready,
            gap=gap,
            lfsr=seed & 0xFFFF,
        )


def _stall_cases(d: _Directed) -> None:
    """Stalls that hit the pipeline's hold paths (issue 20: Yosys mutants that corrupt a
    pipeline register only while ``ce`` is low survived every other case)."""
    hi, shape, modes = d.hi, d.shape, d.modes
    # With D < L (small shapes), the pipeline drains between steps, so a stall holds an update
    # in the early stages only when the input stream has a long gap at the first beat of a step:
    # gaps of 244/256 per clock. v_rest = -12 sets bits 2 and 4 (a bit flipped in a held
    # v_rest changes the leak); SHIFT or MULT in alternate groups, so that the held v_rest is
    # used; ready low as well in the first case, so that stalls also hit the later stages.
    # Long gaps are slow (about 20 clocks a beat): only for D <= 4 (the shape of lifgate
    # mutants), else 128. With D > 4 every pipeline stage holds an update during most stalls
    # (and the backpressure_* cases stall too): a quarter of the steps, to keep them cheap.
    lm = [m for m in (LeakMode.SHIFT, LeakMode.MULT) if m in modes] or [d.m0]
    small = shape.depth <= 4
    n = 2 * d.steps if small else max(2, d.steps // 4)
    for ready, gap in ((160, 96), (0, 244 if small else 128)):
        d.add(
            f"stalls_v_rest_r{ready}_g{gap}",
            d.per_group(lambda g: NeuronParams(
                v_th=hi, v_rest=_clip(-12, d.lo, hi), v_reset=0,
                v_init=_clip(40 * g - 32, d.lo, hi), bias=0,
                leak_mode=lm[g % len(lm)], leak=d.mild(lm[g % len(lm)]), t_ref=0)),
            segments=(Segment(n),),
            inp=d.full,
            ready=ready,
            gap=gap,
            lfsr=ready * 7 + gap,
        )
    # A noise gain with bit 12 set (4096: z = 16 c) under long input gaps: the noise
    # multiplier's gain operand is held while the pipeline stalls. z is large, so a difference
    # shows only in the updates where c is small.
    d.add(
        "noise_gain4096_input_gaps",
        d.per_group(lambda g: NeuronParams(
            v_th=hi, v_rest=0, v_reset=0, v_init=0, bias=0, leak_mode=lm[g % len(lm)],
            leak=d.mild(lm[g % len(lm)]), t_ref=0)),
        segments=(Segment(n),),
        inp={"kind": "uniform", "bits": 1, "seed": 3},
        noise=NoiseParams(seed=77, gain=4096),
        gap=248 if small else 128,
        lfsr=4096,
    )
