"""cocotb testbench of the generated ``lif_array`` inside ``sim/harness.v`` (top ``lif_harness``).

Not a pytest module: :func:`lifgate.sim.runner.run` starts it in a simulator with two
environment variables, ``LIFGATE_SIM_JOB`` (a JSON file: the build's shape and payload layout
and the list of :class:`~lifgate.sim.cases.SimCase`) and ``LIFGATE_SIM_RESULTS`` (a JSON-lines
file this module appends one result per case to, as it goes).

Per case the :class:`TB` loads the parameters through ``param_we/param_group/param_data``,
clears, and for each segment writes the stimulus file, starts the run and awaits ``done``
through the harness' done latch: cocotb is woken a handful of times per run, never per clock.
The beat file the harness wrote is then decoded and compared, every spike and membrane value,
with :func:`lifgate.golden.fixed.simulate`. A mismatch is recorded (first one per case), not
raised, so one session reports on every case; the caller decides.
"""

from __future__ import annotations

import cProfile
import json
import logging
import os
import time
import traceback
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from lifgate.golden.fixed import fresh_state, simulate
from lifgate.sim.beats import check_run as _check_run
from lifgate.sim.beats import decode_beats, encode_stimulus
from lifgate.sim.cases import SimCase

from lifgate.config import pack_params

CLOCK_NS = 10
STIM_FILE = "stim.hex"
BEATS_FILE = "beats.txt"
# Generous bound on the pipeline latency plus the step-to-step drain, in cycles per step.
LATENCY_BOUND = 64
# Clocks from the DUT's done (high in clock c) to the harness' latch rising, as this testbench
# measures it from the falling edge before the start strobe's rising edge.
DONE_LATCH = 0


class TB:
    """Drives one ``lif_harness`` instance.

    Members
    -------
    dut : cocotb handle of ``lif_harness``
    shape : ArrayShape
    layout : dict
        ``{field: (offset, width)}`` of the o_stream payload.
    """

    def __init__(self, dut, build: dict, cases: list[SimCase]):
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.log.setLevel(logging.INFO)
        self.build = build
        self.shape = cases[0].config.shape if cases else None
        self.layout = {k: tuple(v) for k, v in build["layout"].items()}
        self.width = build["payload_width"]
        self.stim_depth = build["stim_depth"]
        self.latency = build.get("latency")  # L, for the timing check of runs (None: unknown)
        for name in (
            "rst", "param_we", "param_group", "param_data", "noise_seed", "noise_gain",
            "input_en", "clear", "start", "steps", "h_load", "h_nbeats", "h_lfsr_seed",
            "h_ready_thresh", "h_gap_thresh", "h_open", "h_close", "h_done_clr", "h_check",
        ):
            getattr(dut, name).value = 0
        # The GPI clock runs in C, so the clock itself never wakes Python.
        self.py_seconds = 0.0  # time spent in Python work (stimulus, golden model, checks)
        self.clock = Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi")
        self.clock.start(start_high=False)

    # Low-level -----------------------------------------------------------------------------------

    async def falling(self, n: int = 1):
        for _ in range(n):
            await FallingEdge(self.dut.clk)

    async def strobe(self, **signals):
        """Drive ``signals`` for exactly one rising edge (set and cleared on falling edges)."""
        await FallingEdge(self.dut.clk)
        for name, value in signals.items():
            getattr(self.dut, name).value = value
        await FallingEdge(self.dut.clk)
        for name in signals:
            getattr(self.dut, name).value = 0

    async def reset(self, cycles: int = 4):
        await FallingEdge(self.dut.clk)
        self.dut.h_check.value = 0
        self.dut.rst.value = 1
        await self.falling(cycles)
        self.dut.rst.value = 0
        self.dut.h_check.value = 1  # from here on no output may be X or Z

    async def wait_done(self, cycles: int) -> float | None:
        """Await the harness' done latch (set by the DUT's ``done`` pulse); bounded in time.
        Returns the simulation time (ns) at which the latch rose, None if it was already set."""
        t = None
        if str(self.dut.h_done_seen.value) != "1":
            await with_timeout(RisingEdge(self.dut.h_done_seen), cycles * CLOCK_NS, "ns")
            t = get_sim_time("ns")
        await FallingEdge(self.dut.clk)
        return t

    def read(self, name: str) -> int:
        return getattr(self.dut, name).value.to_unsigned()

    # Array operations ------------------------------------------------------------------------

    async def load_params(self, config):
        """Write every group's packed parameters, one group per clock."""
        shape = config.shape
        for g, p in enumerate(config.params):
            await FallingEdge(self.dut.clk)
            self.dut.param_we.value = 1
            self.dut.param_group.value = g
            self.dut.param_data.value = pack_params(shape, p)
        await FallingEdge(self.dut.clk)
        self.dut.param_we.value = 0

    async def clear(self) -> str | None:
        """Clear, await done. ``docs/hardware.md``: ``done`` comes D + 3 clocks after the
        ``clear`` strobe, in the first idle clock. Returns what went wrong (a sentence), or None.
        """
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.clear.value = 1
        dut.h_done_clr.value = 1
        t_clear = get_sim_time("ns")
        await FallingEdge(dut.clk)
        dut.clear.value = 0
        dut.h_done_clr.value = 0
        t_done = await self.wait_done(4 * self.shape.depth + 1000)
        if t_done is None:
            return None
        want = self.shape.depth + 3 + DONE_LATCH
        got = int((t_done - t_clear) // CLOCK_NS)  # t_clear is half a clock earlier
        if got != want:
            return (f"a clear took {got - DONE_LATCH} clocks from the strobe to done, not "
                    f"D + 3 = {want - DONE_LATCH} (D = {self.shape.depth})")
        return None

    async def run_chunk(self, steps: int, currents, case: SimCase, *, open_file: bool,
                        abort_after: int | None = None) -> str | None:
        """Load the stimulus of ``steps`` steps, start, await done (or abort with a reset).

        While the run goes on, a ``start`` with other ``steps`` and ``input_en``, then a
        ``clear``, are given: the array must ignore both (``docs/hardware.md``, "Handshakes":
        a strobe while busy is ignored). An aborted run that cannot have ended yet must not have
        pulsed ``done``. Returns what went wrong (a sentence), or None.
        """
        dut, shape = self.dut, self.shape
        nbeats = 0
        if currents is not None:
            t0 = time.perf_counter()
            Path(STIM_FILE).write_bytes(encode_stimulus(currents, shape.lanes, shape.i_width))
            nbeats = currents.shape[0] * shape.depth
            self.py_seconds += time.perf_counter() - t0
        await FallingEdge(dut.clk)
        dut.h_nbeats.value = nbeats
        dut.h_lfsr_seed.value = case.lfsr_seed
        dut.h_ready_thresh.value = case.ready_thresh
        dut.h_gap_thresh.value = case.gap_thresh
        dut.input_en.value = int(currents is not None)
        dut.steps.value = steps
        dut.h_load.value = 1
        dut.h_open.value = int(open_file)
        await FallingEdge(dut.clk)
        dut.h_load.value = 0
        dut.h_open.value = 0
        dut.start.value = 1
        dut.h_done_clr.value = 1
        t_start = get_sim_time("ns")
        await FallingEdge(dut.clk)
        dut.start.value = 0
        dut.h_done_clr.value = 0
        if abort_after is not None:
            await ClockCycles(dut.clk, abort_after, rising=False)
            ended = str(dut.h_done_seen.value) == "1"
            await self.reset()
            if ended and steps * shape.depth > abort_after:
                return (f"done within {abort_after} clocks of the start of a run of {steps} "
                        f"steps, which takes at least {steps * shape.depth} clocks")
            return None
        if steps > 0:  # busy from the clock after the start: these strobes must be ignored
            await FallingEdge(dut.clk)
            dut.steps.value = (steps + 1) & 0xFFFF_FFFF
            dut.input_en.value = int(currents is None)
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            dut.clear.value = 1
            await FallingEdge(dut.clk)
            dut.clear.value = 0
            dut.steps.value = steps
            dut.input_en.value = int(currents is not None)
        slow = 256 / (256 - case.ready_thresh) * 256 / (256 - case.gap_thresh)
        bound = int(4 * slow * steps * (shape.depth + LATENCY_BOUND)) + 2000
        t_done = await self.wait_done(bound)
        stalls = case.ready_thresh > 0 or (case.gap_thresh > 0 and currents is not None)
        if self.latency is not None and not stalls and t_done is not None:
            # docs/hardware.md, "Timing": without backpressure a run of T steps takes
            # T * (D + L + 2) + 2 clocks from the start strobe to done (done is latched one
            # clock after it is high: DONE_LATCH).
            want = steps * (shape.depth + self.latency + 2) + 2 + DONE_LATCH
            got = int((t_done - t_start) // CLOCK_NS)  # t_start is half a clock earlier
            if got != want:
                return (f"a run of {steps} steps without backpressure took {got - DONE_LATCH} "
                        f"clocks from start to done, not T * (D + L + 2) + 2 = "
                        f"{want - DONE_LATCH} (D = {shape.depth}, L = {self.latency})")
        return None

    async def finish_beats(self, expected: int):
        """Wait (bounded) until ``expected`` beats were written, close the file, return it."""
        for _ in range(64):
            if self.read("h_nout") >= expected:
                break
            await ClockCycles(self.dut.clk, 16, rising=False)
        await self.strobe(h_close=1)
        return Path(BEATS_FILE).read_bytes()

    # One case --------------------------------------------------------------------------------

    async def run_case(self, case: SimCase) -> dict:
        shape, config = self.shape, case.config
        dut = self.dut
        t0 = time.perf_counter()
        py0 = self.py_seconds
        c0 = get_sim_time("ns") / CLOCK_NS
        x0 = self.read("h_xcount")
        result = {"name": case.name, "updates": 0, "mismatch": None, "origin": case.origin}
        await FallingEdge(dut.clk)
        dut.noise_seed.value = config.noise.seed
        dut.noise_gain.value = config.noise.gain
        await self.load_params(case.hw_config or config)
        bad_clear = await self.clear()  # a clear's done off the contract: the case fails
        if bad_clear is not None:
            bad_clear = f"the first clear: {bad_clear}"
        state = fresh_state(config)
        step_in_case = 0
        kept = []  # (spikes, v) of each compared segment, for case.outputs
        chunk_max = max(1, self.stim_depth // shape.depth)
        for si, seg in enumerate(case.segments):
            if bad_clear is not None:
                break
            if seg.reset:  # while idle, no clear: v, r and noise carry over, the label restarts
                await self.reset()
                state = state.copy()
                state.step = 0
            if seg.clear and si > 0:
                bad_clear = await self.clear()
                state = fresh_state(config)
                if bad_clear is not None:
                    bad_clear = f"segment {si}: {bad_clear}"
                    break
            tp = time.perf_counter()
            currents = case.currents(si)
            self.py_seconds += time.perf_counter() - tp
            if seg.abort_after is not None:
                part = None if currents is None else currents[: min(seg.steps, chunk_max)]
                err = await self.run_chunk(seg.steps, part, case, open_file=False,
                                           abort_after=seg.abort_after)
                await self.strobe(h_close=1)
                bad = await self.clear()
                err = err or bad
                state = fresh_state(config)
                if err is not None:
                    result["mismatch"] = {"case": case.name, "field": "error",
                                          "error": f"segment {si}: {err}"}
                    break
                continue
            tp = time.perf_counter()
            expected = simulate(config, seg.steps, currents, state=state)
            self.py_seconds += time.perf_counter() - tp
            step0 = state.step
            done_steps = 0
            if seg.steps == 0:  # one start with steps = 0: no beats, done still pulses
                await self.run_chunk(0, None, case, open_file=True)
            late = None
            while done_steps < seg.steps:
                n = min(chunk_max, seg.steps - done_steps) if currents is not None else seg.steps
                part = None if currents is None else currents[done_steps : done_steps + n]
                late = late or await self.run_chunk(n, part, case, open_file=done_steps == 0)
                done_steps += n
            text = await self.finish_beats(seg.steps * shape.depth)
            tp = time.perf_counter()
            beats = decode_beats(text, self.layout, self.width, shape.lanes, shape.v_width)
            mismatch = _check_run(beats, expected, lanes=shape.lanes, step0=step0,
                                  step_width=shape.step_width, case=case.name,
                                  base_step=step_in_case)
            self.py_seconds += time.perf_counter() - tp
            if case.outputs is not None and len(beats) == seg.steps * shape.depth:
                kept.append((beats.spikes.reshape(seg.steps, shape.neurons),
                             None if beats.v is None else beats.v.reshape(seg.steps, -1)))
            result["updates"] += seg.steps * shape.neurons
            if mismatch is None and late is not None:
                mismatch = {"case": case.name, "field": "error", "error": f"segment {si}: {late}"}
            if mismatch is not None:
                result["mismatch"] = mismatch
                break
            state = expected.final
            step_in_case += seg.steps
        if bad_clear is not None:
            result["mismatch"] = {"case": case.name, "field": "error", "error": bad_clear}
        if case.outputs is not None and kept:
            np.savez(case.outputs, spikes=np.concatenate([k[0] for k in kept]),
                     **({} if kept[0][1] is None else {"v": np.concatenate([k[1] for k in kept])}))
        result["xz"] = self.read("h_xcount") - x0
        result["cycles"] = int(get_sim_time("ns") / CLOCK_NS - c0)
        result["seconds"] = time.perf_counter() - t0
        result["py_seconds"] = self.py_seconds - py0
        return result


@cocotb.test()
async def run_cases(dut):
    """Run every case of the job file; append one JSON result line per case."""
    job = json.loads(Path(os.environ["LIFGATE_SIM_JOB"]).read_text())
    results = Path(os.environ["LIFGATE_SIM_RESULTS"])
    cases = [SimCase.from_dict(c) for c in job["cases"]]
    tb = TB(dut, job["build"], cases)
    profile = None
    if os.environ.get("LIFGATE_SIM_PROFILE"):  # cProfile of the Python side, for bench_sim
        profile = cProfile.Profile()
        profile.enable()
    await tb.reset()
    with results.open("a") as out:
        for case in cases:
            try:
                res = await tb.run_case(case)
            except Exception as e:  # a hang or a malformed beat file: record, reset, go on
                tb.log.error("case %s: %s", case.name, traceback.format_exc())
                res = {
                    "name": case.name,
                    "updates": 0,
                    "mismatch": {"case": case.name, "field": "error",
                                 "error": f"{type(e).__name__}: {e}"},
                    "origin": case.origin,
                    "xz": 0,
                    "cycles": 0,
                    "seconds": 0.0,
                }
                await tb.strobe(h_close=1)
                await tb.reset()
            out.write(json.dumps(res) + "\n")
            out.flush()
            if os.environ.get("LIFGATE_SIM_STOP") and (res["mismatch"] is not None
                                                       or res.get("xz")):
                break  # runner.run(stop_at_first=True): one failure is the answer
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["LIFGATE_SIM_PROFILE"])
