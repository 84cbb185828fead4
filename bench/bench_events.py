"""Workload (b) of issue 16: every spike as an address event, at the notebook's rates.

:func:`events_workload` runs 4,096 neurons (8 lanes), each with its own constant input current
taken from the seed notebook's rate curve (:func:`lifgate.golden.float_ref.analytic_rate` with
the notebook's parameters, dt = 0.1 ms) so that their rates spread evenly over 20 to 140 Hz,
for 5,000 steps with the ``EVENTS`` run mode, and returns

* the bytes on the line, exact, from the protocol model
  (:class:`lifgate.boards.protocol.BoardModel`,
  whose replies the gateware equals byte for byte, ``tests/test_boards_events.py``): the
  ``RUN`` frame in, the ``EVENTS`` frames and ``RUN_DONE`` out, and what the same run costs
  in the bitmap mode;
* the clock cycles of the run: with ``sim="verilator"`` counted on the simulated board top
  (:mod:`lifgate.boards.tb_cycles`: the gateware, its UART at ``clock_hz / baud`` clocks per bit,
  from the ``RUN`` frame's first bit to the end of ``RUN_DONE``); without, the bound
  ``max(array cycles, line cycles)`` (``cycles_source`` says which);
* the observable neuron-updates/s at ``clock_hz`` and the ratio to the raw rate
  ``lanes * clock_hz`` (issue 16's goal: >= 25 % at the board's maximum baud, the UP5K's
  FT2232H: 12 Mbaud at 48 MHz, 4 clocks per bit).

Not a timed test: ``python bench/bench_events.py [--sim verilator] [--json]`` or
``lifgate bench events``. The merger's ``lifgate bench link`` calls :func:`events_workload`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lifgate.boards.host import Board, ModelTransport
from lifgate.boards.protocol import (
    RUN_EVENTS,
    BoardModel,
    Cmd,
    Features,
    check_baud,
    encode_frame,
)
from lifgate.boards.top import build_sim_top
from lifgate.golden import float_ref
from lifgate.sim.runner import TIMESCALE, get_runner

from lifgate.checks import check_choice, check_int, check_number
from lifgate.compilers.quantize import quantize
from lifgate.config import ArrayShape, Config, ConfigError, NoiseParams

#: Issue 16's goal for workload (b): observable updates/s over the array's raw rate.
GOAL = 0.25


def rate_curve_currents(neurons: int, lo_hz: float = 20.0, hi_hz: float = 140.0) -> np.ndarray:
    """Currents [pA], one per neuron, whose rates on the notebook's rate curve
    (``float_ref.analytic_rate`` with ``default_pars()``) spread evenly from ``lo_hz`` to
    ``hi_hz`` in neuron order."""
    pars = float_ref.default_pars()
    grid = np.linspace(200.0, 1000.0, 80001)
    rates = float_ref.analytic_rate(pars, grid)
    firing = rates > 0
    return np.interp(np.linspace(lo_hz, hi_hz, neurons), rates[firing], grid[firing])


def workload_config(neurons: int = 4096, lanes: int = 8, lo_hz: float = 20.0,
                    hi_hz: float = 140.0) -> tuple[Config, np.ndarray]:
    """The notebook's LIF quantized for ``neurons x lanes`` (one parameter group) and the
    integer input currents of :func:`rate_curve_currents`."""
    shape = ArrayShape(neurons=neurons, lanes=lanes, groups=1)
    q = quantize(shape=shape)
    cfg = Config(shape=shape, params=(q.params,), noise=NoiseParams(seed=1, gain=0))
    return cfg, q.current_to_int(rate_curve_currents(neurons, lo_hz, hi_hz))


class _Recorder(ModelTransport):
    """A model board that keeps every frame the host writes."""

    def __init__(self, features):
        super().__init__(features)
        self.frames = []

    def write(self, data: bytes) -> None:
        self.frames.append(bytes(data))
        super().write(data)


def _sim_cycles(features: Features, setup: list[bytes], frame: bytes, *, sim: str,
                divisor: int, build_dir) -> int:
    """Clock cycles of ``frame`` on the simulated board top after the ``setup`` frames."""
    build_dir = Path(build_dir)
    top = build_sim_top(features, sim=sim, build_dir=build_dir, divisor=divisor,
                        timeout=10_000)
    run_dir = build_dir / "cycles"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "setup.bin").write_bytes(b"".join(len(f).to_bytes(4, "little") + f
                                                 for f in setup))
    (run_dir / "frame.bin").write_bytes(frame)
    out = run_dir / "cycles.json"
    out.unlink(missing_ok=True)
    get_runner(sim).test(
        test_module="lifgate.boards.tb_cycles", hdl_toplevel="board_top",
        hdl_toplevel_lang="verilog", build_dir=top.build_dir, test_dir=run_dir,
        timescale=TIMESCALE, log_file=run_dir / "sim.log",
        extra_env={"LIFGATE_CYCLES_SETUP": str(run_dir / "setup.bin"),
                   "LIFGATE_CYCLES_FRAME": str(run_dir / "frame.bin"),
                   "LIFGATE_CYCLES_OUT": str(out), "LIFGATE_UART_DIVISOR": str(divisor),
                   "LIFGATE_CLK_NS": "10"})
    if not out.exists():
        raise RuntimeError(f"the {sim} session wrote no cycle count; log: {run_dir / 'sim.log'}")
    return json.loads(out.read_text())["cycles"]


def events_workload(*, neurons: int = 4096, lanes: int = 8, steps: int = 5000,
                    baud: int = 12_000_000, clock_hz: float = 48e6, lo_hz: float = 20.0,
                    hi_hz: float = 140.0, max_payload: int = 512, sim: str | None = None,
                    build_dir=None) -> dict:
    """Workload (b): every spike of a rate-curve run as an address event (see the module).

    Returns a dict: ``steps``, ``neurons``, ``lanes``, ``events`` (spikes), ``mean_rate_hz``,
    ``events_per_step``, ``bytes_in`` (the ``RUN`` frame), ``bytes_out`` (``EVENTS`` frames
    and ``RUN_DONE``), ``bytes_per_event`` (all bytes out per spike), ``bitmap_bytes_out``
    (the same run's ``STEP`` frames), ``setup_bytes`` (parameters, currents, clear: before
    the run, not counted), ``array_cycles`` (``steps * depth``), ``line_cycles`` (the bytes
    out at ``baud``), ``cycles`` and ``cycles_source`` (``"verilator"``/``"icarus"`` or
    ``"bound"``), ``seconds``, ``updates_per_s``, ``raw_updates_per_s``, ``ratio``, ``goal``,
    ``baud``, ``clock_hz``.
    """
    steps = check_int("parameter 'steps'", steps, 1, (1 << 32) - 1)
    clock_hz = check_number("parameter 'clock_hz'", clock_hz, 1e6, 1e9, unit="Hz")
    check_baud(baud, clock_hz)
    check_number("parameter 'lo_hz'", lo_hz, 1.0, 1000.0, unit="Hz")
    check_number("parameter 'hi_hz'", hi_hz, lo_hz, 1000.0, unit="Hz")
    if sim is not None:
        check_choice("parameter 'sim'", sim, ("verilator", "icarus"))
    cfg, cur = workload_config(neurons, lanes, lo_hz, hi_hz)  # ArrayShape checks the sizes
    features = Features(cfg.shape, max_payload=max_payload, events=True, baud=baud)
    divisor = round(clock_hz / baud)
    rec = _Recorder(features)
    host = Board(rec)
    host.configure(cfg, currents=cur)
    setup = rec.frames[1:]  # after the VERSION of the host's constructor
    frame = encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([RUN_EVENTS]))
    model = BoardModel(features)
    model.exchange(setup)
    (out,) = model.exchange([frame])
    spikes = _count_events(out, features)
    line_cycles = len(out) * 10 * divisor
    array_cycles = steps * cfg.shape.depth
    if sim is None:
        cycles, source = max(array_cycles, line_cycles) + len(frame) * 10 * divisor, "bound"
    else:
        with tempfile.TemporaryDirectory(prefix="lifgate-events-") as tmp:
            cycles = _sim_cycles(features, setup, frame, sim=sim, divisor=divisor,
                                 build_dir=build_dir or tmp)
        source = sim
    seconds = cycles / clock_hz
    raw = lanes * clock_hz
    upd = steps * neurons / seconds
    return {
        "steps": steps, "neurons": neurons, "lanes": lanes, "events": spikes,
        "mean_rate_hz": spikes / (neurons * steps * 1e-4),
        "events_per_step": spikes / steps,
        "bytes_in": len(frame), "bytes_out": len(out),
        "bytes_per_event": len(out) / max(1, spikes),
        "bitmap_bytes_out": steps * (7 + features.step_length(False)) + 11,
        "setup_bytes": sum(map(len, setup)),
        "array_cycles": array_cycles, "line_cycles": line_cycles,
        "cycles": cycles, "cycles_source": source, "seconds": seconds,
        "updates_per_s": upd, "raw_updates_per_s": raw, "ratio": upd / raw, "goal": GOAL,
        "baud": baud, "clock_hz": clock_hz,
    }


def _count_events(out: bytes, features: Features) -> int:
    """Spikes in the ``EVENTS`` frames of ``out`` (the stream's bytes that are not step
    markers or skips)."""
    k, n = 0, 0
    while k < len(out):
        length = int.from_bytes(out[k + 2:k + 5], "little")
        if out[k + 1] == Cmd.EVENTS:
            body = out[k + 9:k + 5 + length]
            n += sum(1 for b in body if b not in (0, 0xFF))
        k += 7 + length
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--neurons", type=int, default=4096)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--baud", type=int, default=12_000_000)
    ap.add_argument("--clock", type=float, default=48e6, help="board clock [Hz]")
    ap.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                    help="count the cycles on the simulated board top (else the bound)")
    ap.add_argument("--quick", action="store_true", help="500 steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        res = events_workload(neurons=args.neurons, lanes=args.lanes,
                              steps=500 if args.quick else args.steps, baud=args.baud,
                              clock_hz=args.clock, sim=args.sim)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res["wall_s"] = time.perf_counter() - t0
    res["ok"] = res["ratio"] >= GOAL
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>18}: {v:.4g}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
