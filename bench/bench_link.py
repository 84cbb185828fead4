"""Observable neuron-updates/s through the host link of the simulated board top (issue 16).

``lifgate bench link [--board icebreaker|ulx3s-85f] [--json] [--quick]``. For each board the
board top's link (:class:`lifgate.boards.link.HostLink` with the real ``LIFArray`` and the
counts unit) is built for Verilator and driven at its pins by a cocotb session
(:mod:`lifgate.boards.tb_link_bench`) with the UART divisor the board has at its goal clock and
its USB-UART's maximum baud (iCEBreaker: 48 MHz, 12 Mbaud, 4 clocks a bit; ULX3S: 100 MHz,
3 Mbaud, 33 clocks a bit). Every reply is compared with the protocol model
(:class:`lifgate.boards.protocol.BoardModel`) byte for byte (``bit_exact``).

How the figures are made
------------------------
* The raw rate is ``lanes x clock``.
* The array's time of a run is the simulated clock cycles from the ``RUN`` frame's last byte to
  the first byte of its reply, at the goal clock. A reduced shape (``--sim-neurons``, the
  board's lanes, fewer lane addresses) is scaled by ``depth / simulated depth``: a step takes
  ``depth`` beats plus a fixed overhead, so the scaling overstates the overhead (pessimistic).
* The link's time is the bytes both ways at the baud (10 bit times a byte, as the UART sends
  them back to back) for the full shape, counted from the frames the workload sends and the
  replies the protocol defines. Not modelled: the host's turnaround per exchange (a USB-UART's
  latency timer, 1 to 16 ms per reply on FTDI parts), which favours few, long frames.
* (a) rate curve: every neuron with its own current (a ramp from 37 to 170, one parameter
  set: 20 to 138 Hz at dt = 0.1 ms), ``CLEAR_COUNTS``, one ``RUN`` of ``--steps`` with
  COUNTS and no bitmap, the counts read back. Three ways: ``a`` writes the currents
  (``WRITE_CURRENTS``) and reads format 0 (6 bytes a neuron), ``a_compact`` the same with
  format 1 (3 bytes), ``a_ramp`` loads them as one ``WRITE_RAMP`` frame and reads format 2
  (the counts bit-packed at the width of the largest; the width is that of the full shape,
  from the golden model of one neuron per distinct current). ``a_ramp``'s time adds the
  board's own clocks for the ramp and for the scan before the packed reply (simulated,
  scaled like the run).
* (b) events: every spike of the rate curve as an address event (the EVENTS run mode),
  measured by ``bench/bench_events.py``'s :func:`events_workload` on the simulated board top at
  the simulated shape (the observable rate does not depend on the neuron count: the events and
  the array's clocks per step both grow with it).
* (c) full bitmap: the same currents, one ``STEP`` frame a step; the simulation runs
  ``--bitmap-steps`` steps (the link is the bottleneck: the array waits for the UART, every
  step costs the same) and is scaled to ``--steps``.
* ``simulated.cycles_per_beat_a`` against ``cycles_per_beat_plain`` (a run of at most 1,000
  steps without outputs): what the counts unit costs the array in stalls.

Not a timed test: a benchmark. Options: ``--board`` (default both), ``--steps`` (5000),
``--bitmap-steps`` (40), ``--sim-neurons`` (default: iCEBreaker the full 4096, ULX3S 8192),
``--quick`` (500 steps, 10 bitmap steps, 1024 simulated neurons), ``--build-dir``, ``--json``,
``--no-progress``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lifgate.boards.protocol import (
    BOARD_MAX_BAUD,
    COUNT_FORMATS,
    COUNT_PACKED,
    RAMP_FRAC,
    RUN_COUNTS,
    RUN_SPIKES,
    BoardModel,
    Cmd,
    Features,
    encode_frame,
    ramp_values,
)
from lifgate.boards.resources import board_shape
from lifgate.boards.toolchain import BOARDS, board
from lifgate.boards.top import TOPLEVEL, build_sim_top
from lifgate.sim.runner import TIMESCALE, get_runner

from lifgate.checks import check_int, writable_dir
from lifgate.config import ArrayShape, ConfigError, NeuronParams, pack_params

#: The workloads of issue 16; ``b`` is the EVENTS mode's slot.
WORKLOADS = {
    "a": "rate curve: own current per neuron, counts read back",
    "a_compact": "rate curve, counts read back in format 1 (3 bytes a neuron)",
    "a_ramp": "rate curve, currents as one WRITE_RAMP, counts read packed (format 2)",
    "b": "every spike of the rate curve as an address event (EVENTS)",
    "c": "full spike bitmap, one STEP frame a step",
}
#: Goals as a share of the raw rate (``b`` at the board's maximum baud).
GOALS = {"a": 0.90, "b": 0.25}
PARAMS = NeuronParams(v_th=8000, v_reset=0, v_rest=0, v_init=0, leak_mode="shift", leak=8,
                      t_ref=20)
TEST_MODULE = "lifgate.boards.tb_link_bench"


def frame_bytes(payload: int) -> int:
    """Bytes on the line of a frame with ``payload`` bytes."""
    return 7 + payload


#: The rate curve's currents: a ramp from ``CUR_LO`` to (about) ``CUR_HI``.
CUR_LO, CUR_HI = 37, 170


def ramp_step(neurons: int) -> int:
    """The ``WRITE_RAMP`` step (16 fraction bits) from ``CUR_LO`` towards ``CUR_HI``."""
    return ((CUR_HI - CUR_LO) << RAMP_FRAC) // max(1, neurons - 1)


def currents_for(neurons: int) -> np.ndarray:
    """The currents of the rate curve: the values :func:`ramp_frame` makes on the board."""
    return ramp_values(CUR_LO, ramp_step(neurons), neurons)


def ramp_frame(neurons: int) -> bytes:
    return encode_frame(Cmd.WRITE_RAMP, (0).to_bytes(4, "little")
                        + neurons.to_bytes(4, "little") + CUR_LO.to_bytes(4, "little")
                        + ramp_step(neurons).to_bytes(4, "little"))


def ramp_config_frames(f: Features) -> list:
    """SET_PARAMS, WRITE_RAMP, SET_INPUT, CLEAR: :func:`config_frames` with the ramp."""
    frames = config_frames(f, [])
    return [frames[0], ramp_frame(f.shape.neurons), *frames[1:]]


def config_frames(f: Features, cur) -> list:
    """SET_PARAMS, WRITE_CURRENTS (as many as the frame buffer needs), SET_INPUT, CLEAR."""
    word = pack_params(f.shape, PARAMS).to_bytes(f.param_bytes, "little")
    frames = [encode_frame(Cmd.SET_PARAMS, (0).to_bytes(4, "little") + word)]
    per = (f.max_payload - 4) // f.current_bytes
    for k in range(0, len(cur), per):
        body = b"".join(int(x).to_bytes(f.current_bytes, "little", signed=True)
                        for x in cur[k:k + per])
        frames.append(encode_frame(Cmd.WRITE_CURRENTS, k.to_bytes(4, "little") + body))
    return frames + [encode_frame(Cmd.SET_INPUT, b"\x01"), encode_frame(Cmd.CLEAR)]


def run_frame(steps: int, flags: int) -> bytes:
    return encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags]))


def read_frame(count: int, fmt: int) -> bytes:
    return encode_frame(Cmd.READ_COUNTS, (0).to_bytes(4, "little")
                        + count.to_bytes(4, "little") + bytes([fmt]))


def config_bytes(f: Features) -> int:
    """Bytes both ways of :func:`config_frames` for ``f``'s shape (each frame acknowledged
    with an empty reply)."""
    n = f.shape.neurons
    per = (f.max_payload - 4) // f.current_bytes
    frames = [4 + f.param_bytes] + [4 + f.current_bytes * min(per, n - k)
                                    for k in range(0, n, per)] + [1, 0]
    return sum(frame_bytes(p) + frame_bytes(0) for p in frames)


def packed_width(f: Features, steps: int) -> int:
    """The width byte of format 2 for the rate curve on the full shape ``f``: the bit length
    of the largest count, from the golden model (through the protocol model) of one neuron
    per distinct current of :func:`currents_for` (neurons with the same current fire alike)."""
    distinct = np.unique(currents_for(f.shape.neurons))
    lanes = f.shape.lanes
    n = -(-distinct.size // lanes) * lanes
    small = Features(ArrayShape(neurons=n, lanes=lanes, groups=1,
                                leak_modes=f.shape.leak_modes), counts=True)
    cur = np.resize(distinct, n)
    frames = config_frames(small, cur) + [encode_frame(Cmd.CLEAR_COUNTS),
                                          run_frame(steps, RUN_COUNTS)]
    model = BoardModel(small)
    model.exchange(frames)
    return int(model.counts[0].max()).bit_length()


def link_bytes(f: Features, steps: int, workload: str, width: int | None = None) -> int:
    """Bytes both ways of a workload on the full shape ``f`` (configuration included);
    ``a_ramp`` needs the packed counts' ``width`` (:func:`packed_width`)."""
    if workload == "a_ramp":
        ack = frame_bytes(0)
        n = sum(frame_bytes(p) + ack for p in (4 + f.param_bytes, 16, 1, 0, 0))
        packed = 4 + 1 + (f.shape.neurons * width + 7) // 8
        return n + frame_bytes(5) + frame_bytes(4) + frame_bytes(9) + frame_bytes(packed)
    n = config_bytes(f) + frame_bytes(5) + frame_bytes(4)  # RUN and its RUN_DONE
    if workload in ("a", "a_compact"):
        fmt = 0 if workload == "a" else 1
        n += 2 * frame_bytes(0)  # CLEAR_COUNTS and its reply
        n += frame_bytes(9) + frame_bytes(4 + COUNT_FORMATS[fmt] * f.shape.neurons)
    else:
        n += steps * frame_bytes(f.step_length(False))
    return n


def script_for(f: Features, steps: int, bitmap_steps: int) -> tuple[list, dict]:
    """The exchanges of the simulated session and the index of each workload's RUN."""
    cur = currents_for(f.shape.neurons)
    frames = config_frames(f, cur)
    # The ramp writes the same currents again: its clocks are measured.
    marks = {"ramp": len(frames)}
    frames += [ramp_frame(f.shape.neurons), encode_frame(Cmd.CLEAR_COUNTS)]
    marks["run_a"] = len(frames)
    frames += [run_frame(steps, RUN_COUNTS), read_frame(f.shape.neurons, 0),
               read_frame(f.shape.neurons, 1)]
    marks["read_packed"] = len(frames)
    frames += [read_frame(f.shape.neurons, COUNT_PACKED), encode_frame(Cmd.CLEAR)]
    marks["run_c"] = len(frames)
    frames += [run_frame(bitmap_steps, RUN_SPIKES)]
    marks["run_plain"] = len(frames)  # the array alone: no bitmap, no counts
    frames += [run_frame(plain_steps(steps), 0)]
    return frames, marks


def plain_steps(steps: int) -> int:
    """Steps of the run without outputs that measures the array's own clocks per beat."""
    return min(steps, 1000)


def simulate_session(f: Features, frames: list, *, divisor: int, timeout: int,
                     build_dir: Path, pipeline: str) -> list:
    """Build the top for Verilator and replay ``frames`` (the model gives the expected
    reply lengths); returns the session's records."""
    model = BoardModel(f)
    expected = model.exchange(frames)
    top = build_sim_top(f, sim="verilator", build_dir=build_dir, divisor=divisor,
                        timeout=timeout, array_options={"pipeline": pipeline})
    script = build_dir / "bench_script.json"
    out = build_dir / "bench_out.json"
    script.write_text(json.dumps([{"send": d.hex(), "expect": len(e)}
                                  for d, e in zip(frames, expected, strict=True)]))
    out.unlink(missing_ok=True)
    runner = get_runner("verilator")
    test_dir = build_dir / "bench-run"
    test_dir.mkdir(parents=True, exist_ok=True)
    runner.test(test_module=TEST_MODULE, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=top.build_dir, test_dir=test_dir, timescale=TIMESCALE,
                log_file=test_dir / "sim.log",
                extra_env={"LIFGATE_BENCH_SCRIPT": str(script), "LIFGATE_BENCH_OUT": str(out),
                           "LIFGATE_UART_DIVISOR": str(divisor), "LIFGATE_CLK_NS": "10"})
    if not out.exists():
        raise RuntimeError(f"the bench session wrote no results; log: {test_dir / 'sim.log'}")
    records = json.loads(out.read_text())
    for rec, want in zip(records, expected, strict=True):
        rec["exact"] = bytes.fromhex(rec["reply"]) == want
    return records


def bench_board(name: str, *, steps: int, bitmap_steps: int, sim_neurons: int | None,
                build_dir: Path, log) -> dict:
    b = board(name)
    full = board_shape(b)
    clk = b.goal_mhz * 1e6
    baud = BOARD_MAX_BAUD[name]
    divisor = round(clk / baud)
    n_sim = full.neurons if sim_neurons is None else sim_neurons
    shape = ArrayShape(neurons=n_sim, lanes=full.lanes, groups=1, leak_modes=full.leak_modes)
    f = Features(shape, counts=True, baud=baud)
    f_full = Features(full, counts=True, baud=baud)
    frames, marks = script_for(f, steps, bitmap_steps)
    log(f"{name}: simulating {shape.neurons} neurons x {shape.lanes} lanes, {steps} steps, "
        f"divisor {divisor} ...")
    t0 = time.perf_counter()
    recs = simulate_session(f, frames, divisor=divisor, timeout=int(clk * 0.02),
                            build_dir=build_dir / name, pipeline=b.pipeline)
    wall = time.perf_counter() - t0
    log(f"{name}: simulated in {wall:.0f} s, replies bit-exact: "
        f"{all(r['exact'] for r in recs)}")
    scale = full.depth / shape.depth
    raw = full.lanes * clk
    run_a = recs[marks["run_a"]]
    run_c = recs[marks["run_c"]]
    cyc_a = run_a["first"] - run_a["sent"]
    cyc_c = run_c["done"] - run_c["sent"]
    run_p = recs[marks["run_plain"]]
    cyc_p = run_p["first"] - run_p["sent"]
    t_arr_a = cyc_a * scale / clk
    t_c = cyc_c * scale / clk * steps / bitmap_steps + config_bytes(f_full) * 10 / baud
    updates = full.neurons * steps
    out = {"board": name, "neurons": full.neurons, "lanes": full.lanes, "clock_mhz": b.goal_mhz,
           "baud": baud, "divisor": divisor, "steps": steps, "raw_updates_per_s": raw,
           "simulated": {"neurons": shape.neurons, "depth_scale": scale,
                         "bitmap_steps": bitmap_steps, "wall_seconds": round(wall, 1),
                         "bit_exact": all(r["exact"] for r in recs),
                         "run_a_cycles": cyc_a, "run_c_cycles": cyc_c,
                         "cycles_per_beat_a": cyc_a / (steps * shape.depth),
                         "cycles_per_beat_plain": cyc_p / (plain_steps(steps) * shape.depth)},
           "workloads": {}}
    # The board's own clocks before the first reply byte of the ramp and of the packed read
    # (walking the ramp twice, scanning the counts), scaled like the run.
    cyc_ramp = recs[marks["ramp"]]["first"] - recs[marks["ramp"]]["sent"]
    cyc_scan = recs[marks["read_packed"]]["first"] - recs[marks["read_packed"]]["sent"]
    width = packed_width(f_full, steps)
    out["simulated"].update({"ramp_cycles": cyc_ramp, "packed_scan_cycles": cyc_scan,
                             "packed_width": width})
    for key in ("a", "a_compact", "a_ramp"):
        nbytes = link_bytes(f_full, steps, key, width)
        t_link = nbytes * 10 / baud
        t_arr = t_arr_a + ((cyc_ramp + cyc_scan) * scale / clk if key == "a_ramp" else 0)
        obs = updates / (t_arr + t_link)
        out["workloads"][key] = {
            "what": WORKLOADS[key], "array_s": t_arr, "link_s": t_link,
            "link_bytes": nbytes, "updates_per_s": obs,
            "ratio": obs / raw, "goal": GOALS["a"], "goal_met": obs / raw >= GOALS["a"]}
    log(f"{name}: workload (b), events, {shape.neurons} neurons x {steps} steps ...")
    ev = _bench_events().events_workload(
        neurons=shape.neurons, lanes=shape.lanes, steps=steps, baud=baud, clock_hz=clk,
        sim="verilator", build_dir=build_dir / f"{name}-events")
    out["workloads"]["b"] = {"what": WORKLOADS["b"], "updates_per_s": ev["updates_per_s"],
                             "ratio": ev["ratio"], "goal": GOALS["b"],
                             "goal_met": ev["ratio"] >= GOALS["b"],
                             "bytes_per_event": ev["bytes_per_event"],
                             "events_per_step": ev["events_per_step"],
                             "cycles": ev["cycles"], "cycles_source": ev["cycles_source"]}
    obs_c = updates / t_c
    out["workloads"]["c"] = {"what": WORKLOADS["c"], "total_s": t_c,
                             "link_bytes": link_bytes(f_full, steps, "c"),
                             "updates_per_s": obs_c, "ratio": obs_c / raw}
    ref = BoardModel(f)  # the rate curve's firing, from the model
    ref_rates = _model_rates(ref, frames[:marks["run_a"] + 1], steps)
    out["rates_hz"] = {"min": float(ref_rates.min()), "max": float(ref_rates.max()),
                       "mean": float(ref_rates.mean())}
    return out


def _bench_events():
    """``bench/bench_events.py`` (a benchmark script beside this one, loaded by path as
    ``lifgate bench`` loads both)."""
    path = Path(__file__).with_name("bench_events.py")
    spec = importlib.util.spec_from_file_location("lifgate_bench_events_for_link", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_rates(model: BoardModel, frames: list, steps: int) -> np.ndarray:
    model.exchange(frames)
    return model.counts[0].astype(np.float64) / (steps * 1e-4)


def format_table(results: list) -> str:
    lines = [f"{'board':<11}{'workload':<11}{'updates/s':>12}{'ratio':>8}  {'goal':>6}  note"]
    for r in results:
        for key, w in r["workloads"].items():
            ups = "-" if w["updates_per_s"] is None else f"{w['updates_per_s']:.3e}"
            ratio = "-" if w["ratio"] is None else f"{w['ratio']:.1%}"
            goal = f"{w['goal']:.0%}" if "goal" in w else ""
            lines.append(f"{r['board']:<11}{key:<11}{ups:>12}{ratio:>8}  {goal:>6}  {w['what']}")
        lines.append(f"{r['board']:<11}{'raw':<11}{r['raw_updates_per_s']:>12.3e}"
                     f"{'':>8}  {'':>6}  {r['lanes']} lanes x {r['clock_mhz']:g} MHz; "
                     f"bit-exact {r['simulated']['bit_exact']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lifgate bench link", description=__doc__.split("\n")[0])
    ap.add_argument("--board", choices=[*BOARDS, "all"], default="all",
                    help="the board whose top, clock and baud are measured (default: all)")
    ap.add_argument("--steps", type=int, default=None, help="steps of a run (default 5000)")
    ap.add_argument("--bitmap-steps", type=int, default=None,
                    help="steps of the simulated bitmap run (default 40)")
    ap.add_argument("--sim-neurons", type=int, default=None,
                    help="neurons simulated (the board's lanes; default: iCEBreaker 4096, "
                    "ULX3S 8192), scaled to the board's")
    ap.add_argument("--build-dir", default=None, help="build folder (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help="500 steps, 1024 simulated neurons")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object: ok (every reply bit-exact), workloads, results")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    try:
        steps = check_int("--steps", args.steps if args.steps is not None
                          else 500 if args.quick else 5000, 1, 1 << 20)
        bitmap_steps = check_int("--bitmap-steps", args.bitmap_steps
                                 if args.bitmap_steps is not None
                                 else 10 if args.quick else 40, 1, 100_000)
        sim_n = 1024 if args.quick and args.sim_neurons is None else args.sim_neurons
        names = list(BOARDS) if args.board == "all" else [args.board]
        for name in names:
            if sim_n is not None:
                full = board_shape(board(name))
                check_int("--sim-neurons", sim_n, full.lanes, full.neurons)
                if sim_n % full.lanes:
                    raise ConfigError(f"parameter '--sim-neurons' must be a multiple of "
                                      f"{full.lanes} ({name}'s lanes), not {sim_n}")
        build = Path(writable_dir("--build-dir", args.build_dir)) if args.build_dir else None
    except ConfigError as e:
        print(f"lifgate bench link: error: {e}", file=sys.stderr)
        return 2

    def log(msg):
        if not args.no_progress:
            print(f"bench link: {msg}", file=sys.stderr, flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="lifgate-bench-link-") as tmp:
        root = build or Path(tmp)
        for name in names:
            default_n = None if name == "icebreaker" else 8192
            results.append(bench_board(name, steps=steps, bitmap_steps=bitmap_steps,
                                       sim_neurons=sim_n if sim_n is not None else default_n,
                                       build_dir=root, log=log))
    ok = all(r["simulated"]["bit_exact"] for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "workloads": WORKLOADS, "results": results}, indent=2))
    else:
        print(format_table(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
