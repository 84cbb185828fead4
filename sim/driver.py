"""Driving :class:`~lifgate.hdl.array.LIFArray` in Amaranth's simulator.

The sequence here is the one every harness of the array follows (the cocotb testbenches and
the board's host link mirror it):

1. :func:`load_params`: one ``param_we`` strobe per group with the
   :func:`~lifgate.config.pack_params` word.
2. :func:`clear`: set ``noise_seed``/``noise_gain``, strobe ``clear``, wait for ``done``.
3. :func:`run`: set ``steps`` and ``input_en``, strobe ``start``; feed ``i_stream`` one beat per
   address per step (lane ``p`` of the beat of address ``a`` is neuron ``a*P + p``), take the
   ``o_stream`` beats, wait for ``done``.
4. :func:`collect`: check the beats are exactly ``steps x D`` in order (no loss, no
   duplication) and turn them into ``spikes[t, n]`` and ``v[t, n]`` arrays, the layout of
   :func:`lifgate.golden.fixed.simulate`.

:func:`simulate_rtl` runs a whole script (clear, run, run, clear, run ...) and returns one
:class:`RunResult` per run. Random ``o_stream.ready`` and ``i_stream.valid`` gaps come from a
seeded numpy generator.

A network (:class:`~lifgate.hdl.network.Network`) is loaded by :func:`load_network` (its weights,
then its parameter sets, one write a clock); the tests drive its runs themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import DomainReset, Simulator
from lifgate.golden import fixed
from lifgate.hdl.array import LIFArray
from lifgate.hdl.network import param_writes, weight_writes

from lifgate.config import ArrayShape, Config, ConfigError, NoiseParams, pack_params

__all__ = [
    "Beat",
    "RunResult",
    "clear",
    "collect",
    "decode_beat",
    "encode_inputs",
    "golden_script",
    "hold_reset",
    "load_network",
    "load_params",
    "run",
    "simulate_rtl",
]


@dataclass(frozen=True)
class Beat:
    """One decoded ``o_stream`` beat."""

    step: int
    addr: int
    spikes: int | tuple  # bit p: lane p; multi-spike output: lane p's count
    v: tuple | None  # lane p's v', or None without membrane readback


@dataclass
class RunResult:
    """Outputs of one run (``start`` to ``done``).

    Members
    -------
    spikes : bool array [steps, N]
    v : int64 array [steps, N] or None
        The membrane after each step (None without membrane readback).
    beats : list of Beat
        The beats as they left ``o_stream``.
    cycles : int
        Clocks from the ``start`` strobe to ``done``.
    """

    spikes: np.ndarray
    v: np.ndarray | None
    beats: list
    cycles: int


def decode_beat(shape: ArrayShape, word: int, *, membrane: bool = True) -> Beat:
    """Decode the integer value of an ``o_stream`` payload (``shape.layout.beat(membrane)``)."""
    fields = shape.layout.beat(membrane).unpack(word)
    return Beat(fields["step"], fields["addr"], fields["spikes"], fields.get("v"))


def encode_inputs(shape: ArrayShape, currents) -> np.ndarray:
    """``i_stream`` payloads for currents [steps, N]: an object array [steps, D] of ints."""
    cur = np.asarray(currents, dtype=np.int64)
    steps = cur.shape[0]
    P, D, iw = shape.lanes, shape.depth, shape.i_width
    lo, hi = shape.i_range
    if cur.shape != (steps, shape.neurons):
        raise ConfigError(f"currents must have shape (steps, {shape.neurons}), not {cur.shape}")
    if cur.size and (cur.min() < lo or cur.max() > hi):
        raise ConfigError(f"currents must lie in [{lo}, {hi}] (i_width {iw})")
    lanes = (cur.reshape(steps, D, P) & ((1 << iw) - 1)).astype(object)
    out = np.zeros((steps, D), dtype=object)
    for p in range(P):
        out += lanes[:, :, p] << (p * iw)
    return out


async def load_params(ctx, dut: LIFArray, config: Config):
    """Write every parameter set of ``config`` (one clock each)."""
    shape = dut.shape
    for g, p in enumerate(config.params):
        ctx.set(dut.param_we, 1)
        ctx.set(dut.param_group, g)
        ctx.set(dut.param_data.as_value(), pack_params(shape, p))
        await ctx.tick()
    ctx.set(dut.param_we, 0)


async def load_network(ctx, dut, network):
    """Write every weight and parameter set of ``network`` (a
    :class:`lifgate.golden.synapse.Network`) into ``dut`` (a :class:`lifgate.hdl.network.Network`
    built for it), one clock each: the writes of :func:`~lifgate.hdl.network.weight_writes`,
    then of :func:`~lifgate.hdl.network.param_writes`. Leaves the write strobes low."""
    for layer, addr, lane, value in weight_writes(network):
        ctx.set(dut.w_layer, layer)
        ctx.set(dut.w_addr, addr)
        ctx.set(dut.w_lane, lane)
        ctx.set(dut.w_data, value)
        ctx.set(dut.w_we, 1)
        await ctx.tick()
    ctx.set(dut.w_we, 0)
    await write_network_params(ctx, dut, param_writes(network))


async def write_network_params(ctx, dut, writes):
    """Write ``(layer, group, word)`` parameter sets into a
    :class:`lifgate.hdl.network.Network`, one clock each; leaves ``param_we`` low."""
    for layer, group, word in writes:
        ctx.set(dut.param_layer, layer)
        ctx.set(dut.param_group, group)
        ctx.set(dut.param_data.as_value(), word)
        ctx.set(dut.param_we, 1)
        await ctx.tick()
    ctx.set(dut.param_we, 0)


async def network_clear(ctx, dut):
    """Strobe a :class:`lifgate.hdl.network.Network`'s ``clear`` and wait for ``done``."""
    ctx.set(dut.clear, 1)
    await ctx.tick()
    ctx.set(dut.clear, 0)
    while not ctx.get(dut.done):
        await ctx.tick()


async def network_run(ctx, dut, x, steps, record):
    """Start a run of ``steps`` steps on inputs ``x`` (``start`` from the next clock),
    ``s_stream`` always ready; returns ``[record(ctx, payload), ...]`` of every record until
    ``done``."""
    ctx.set(dut.x, [int(v) for v in x])
    ctx.set(dut.steps, steps)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    ctx.set(dut.s_stream.ready, 1)
    recs = []
    while not ctx.get(dut.done):
        if ctx.get(dut.s_stream.valid):
            recs.append(record(ctx, dut.s_stream.payload))
        await ctx.tick()
    return recs


async def _wait_done(ctx, dut, limit: int, what: str) -> int:
    cycles = 0
    while not ctx.get(dut.done):
        await ctx.tick()
        cycles += 1
        if cycles > limit:
            raise RuntimeError(f"{what}: no done after {limit} clocks")
    return cycles


async def clear(ctx, dut: LIFArray, config: Config | None = None):
    """Set the noise seed and gain from ``config`` (if given), strobe ``clear``, wait for done."""
    if config is not None and dut.noise:
        ctx.set(dut.noise_seed, config.noise.seed)
        ctx.set(dut.noise_gain, config.noise.gain)
    elif config is not None and config.noise.gain:
        raise ConfigError("the array was built without noise, but noise.gain is not 0")
    ctx.set(dut.clear, 1)
    await ctx.tick()
    ctx.set(dut.clear, 0)
    await _wait_done(ctx, dut, 4 * dut.shape.depth + 16, "clear")
    await ctx.tick()


async def run(ctx, dut: LIFArray, steps: int, currents=None, *, rng=None,
              ready: float = 1.0, valid: float = 1.0) -> tuple[list, int]:
    """Run ``steps`` steps; return the ``o_stream`` payloads (ints) and the clocks taken.

    ``currents`` is None (``input_en = 0``) or an int array [steps, N]. ``ready`` is the
    probability that ``o_stream.ready`` is high in a clock, ``valid`` the probability that a
    waiting input beat is offered in a clock (once offered, it stays until taken).
    """
    shape = dut.shape
    inputs = None if currents is None else encode_inputs(shape, currents)
    if inputs is not None and inputs.shape[0] != steps:
        raise ConfigError(f"currents must have {steps} rows, not {inputs.shape[0]}")
    feed = [] if inputs is None else list(inputs.reshape(-1))
    rng = rng if rng is not None else np.random.default_rng(0)
    limit = (steps + 1) * (shape.depth + 2 * dut.latency + 8) * 8 + 1000
    if ready < 1 or valid < 1:
        limit = int(limit / max(0.05, min(ready, valid)))
    chunk = 4096
    rdy_draw = rng.random(chunk) < ready
    val_draw = rng.random(chunk) < valid

    o_valid, o_ready = dut.o_stream.valid, dut.o_stream.ready
    o_payload = dut.o_stream.payload.as_value()
    i_valid, i_ready = dut.i_stream.valid, dut.i_stream.ready
    i_payload = dut.i_stream.payload.as_value()

    ctx.set(dut.steps, steps)
    ctx.set(dut.input_en, int(inputs is not None))
    ctx.set(dut.start, 1)
    ctx.set(o_ready, int(rdy_draw[0]))
    await ctx.tick()
    ctx.set(dut.start, 0)
    beats = []
    fed = 0
    offered = False
    cycles = 1
    while True:
        j = cycles % chunk
        if j == 0:
            rdy_draw = rng.random(chunk) < ready
            val_draw = rng.random(chunk) < valid
        if not offered and fed < len(feed) and val_draw[j]:
            ctx.set(i_payload, int(feed[fed]))
            ctx.set(i_valid, 1)
            offered = True
        r = int(rdy_draw[j])
        ctx.set(o_ready, r)
        if r and ctx.get(o_valid):
            beats.append(ctx.get(o_payload))
        took = offered and ctx.get(i_ready)
        finished = ctx.get(dut.done)
        await ctx.tick()
        if took:
            fed += 1
            offered = False
            ctx.set(i_valid, 0)
        if finished:
            break
        cycles += 1
        if cycles > limit:
            raise RuntimeError(f"run of {steps} steps: no done after {limit} clocks")
    ctx.set(o_ready, 0)
    if fed != len(feed):
        raise AssertionError(f"the array took {fed} input beats, expected {len(feed)}")
    return beats, cycles


def collect(shape: ArrayShape, words, steps: int, *, first_step: int = 0,
            membrane: bool = True) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Check and unpack the beats of a run into ``spikes[t, n]`` and ``v[t, n]``.

    Raises ``AssertionError`` unless the beats are exactly steps ``first_step ..`` (modulo
    ``2**step_width``) times addresses ``0 .. D-1``, in that order.
    """
    P, D = shape.lanes, shape.depth
    beats = [decode_beat(shape, w, membrane=membrane) for w in words]
    if len(beats) != steps * D:
        raise AssertionError(f"got {len(beats)} beats, expected {steps} x {D} = {steps * D}")
    multi = shape.spike_max > 1  # the beat's spikes are then a tuple of counts
    spikes = np.zeros((steps, shape.neurons), dtype=np.uint8 if multi else bool)
    v = np.zeros((steps, shape.neurons), dtype=np.int64) if membrane else None
    mod = 1 << shape.step_width
    for i, b in enumerate(beats):
        t, a = divmod(i, D)
        want = ((first_step + t) % mod, a)
        if (b.step, b.addr) != want:
            raise AssertionError(f"beat {i} is (step, addr) {(b.step, b.addr)}, expected {want}")
        for p in range(P):
            spikes[t, a * P + p] = b.spikes[p] if multi else (b.spikes >> p) & 1
            if membrane:
                v[t, a * P + p] = b.v[p]
    return spikes, v, beats


def golden_script(config: Config, script) -> list:
    """What :func:`lifgate.golden.fixed.simulate` says each run of ``script`` gives.

    Same script format as :func:`simulate_rtl`; returns one golden ``Result`` per run.
    A ``("params", other)`` operation must keep the noise settings (the gateware takes them at
    a clear).
    """
    current, state, out = config, None, []
    for op in script:
        kind = op[0]
        if kind == "params":
            if op[1].noise != current.noise:
                raise ValueError("a 'params' operation must keep the noise settings")
            current = op[1]
        elif kind == "clear":
            if len(op) > 1:
                current = current.replace(noise=op[1].noise)
            state = fixed.fresh_state(current)
        elif kind == "gain":
            current = current.replace(noise=NoiseParams(seed=current.noise.seed, gain=op[1]))
        elif kind == "reset":
            if state is not None:
                state = state.copy()
                state.step = 0
        elif kind == "run":
            res = fixed.simulate(current, op[1], op[2] if len(op) > 2 else None, state=state)
            state = res.final
            out.append(res)
        else:
            raise ValueError(f"unknown script operation {op!r}")
    return out


async def hold_reset(ctx, domain: ClockDomain, clocks: int = 4):
    """Hold ``domain``'s synchronous reset for ``clocks`` clocks, then release it (a
    testbench's ``tick`` raises ``DomainReset`` after each clock with the reset high: taken
    here). ``domain`` must be the design's own, made explicit (as :func:`simulate_rtl` does)."""
    ctx.set(domain.rst, 1)
    for _ in range(clocks):
        try:
            await ctx.tick()
        except DomainReset:
            pass
    ctx.set(domain.rst, 0)


def simulate_rtl(config: Config, script, *, membrane: bool = True, noise: bool = True,
                 ready: float = 1.0, valid: float = 1.0, seed: int = 0,
                 vcd: str | None = None, **array_kwargs) -> list[RunResult]:
    """Run ``script`` on a fresh :class:`LIFArray` in Amaranth's simulator.

    ``script`` is a list of operations: ``("params", config)`` loads a configuration's
    parameters (the given ``config`` is loaded first anyway), ``("clear",)`` or
    ``("clear", config)`` clears with that configuration's noise settings, ``("gain", g)`` sets
    the noise gain without a clear, ``("reset",)`` holds the synchronous reset for 4 clocks
    (the state memories, parameters and noise carry over, the step label restarts at 0),
    ``("run", steps)`` or ``("run", steps, currents)`` runs.
    Returns one :class:`RunResult` per run. ``array_kwargs`` go to :class:`LIFArray` (its
    structural options, e.g. ``lanes_per_enable``).
    """
    shape = config.shape
    dut = LIFArray(config, membrane=membrane, noise=noise, **array_kwargs)
    rng = np.random.default_rng(seed)
    results = []

    async def bench(ctx):
        step = 0
        await load_params(ctx, dut, config)
        for op in script:
            kind = op[0]
            if kind == "params":
                await load_params(ctx, dut, op[1])
            elif kind == "clear":
                await clear(ctx, dut, op[1] if len(op) > 1 else config)
                step = 0
            elif kind == "gain":
                ctx.set(dut.noise_gain, op[1])
            elif kind == "reset":
                await hold_reset(ctx, domain)
                step = 0
            elif kind == "run":
                steps = op[1]
                currents = op[2] if len(op) > 2 else None
                words, cycles = await run(ctx, dut, steps, currents, rng=rng,
                                          ready=ready, valid=valid)
                spikes, v, beats = collect(shape, words, steps, first_step=step,
                                           membrane=membrane)
                if ctx.get(dut.step) != (step + steps) % (1 << shape.step_width):
                    raise AssertionError(f"step counter {ctx.get(dut.step)} after the run, "
                                         f"expected {step + steps}")
                step += steps
                results.append(RunResult(spikes, v, beats, cycles))
            else:
                raise ValueError(f"unknown script operation {op!r}")

    top = Module()  # the domain made explicit, so that the script can drive its reset
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
