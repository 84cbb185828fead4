"""Throughput of the golden fixed-point model, ``lifgate.golden.fixed.simulate``.

Runs the notebook's LIF (``lifgate.compilers.quantize.quantize()``: 16-bit, MULT leak, 2 ms
refractory) for ``--neurons`` neurons (default 100,000) and ``--steps`` steps (default 1,000),
the neurons driven by constant currents spread over 0 to 500 pA (so some are silent, some fire
at up to 140 Hz), and reports neuron-updates per second against the goal of 3e8/s on 2 cores.

``--record spikes|counts|full`` (repeatable, default all three) picks what the model keeps
(``lifgate.golden.fixed.RECORDS``): the spikes bit-packed, spike counts with first and last
spike step, or every spike and membrane. ``--engine fused`` (default) is the compiled kernel
``lifgate.golden.fast``, ``--engine numpy`` the numpy reference.

If Brian2 is available, the same network (same equations, Euler, dt 0.1 ms, threshold, reset,
refractory period) runs in Brian2 in the same invocation, interleaved with the golden runs
(golden, Brian2, golden, Brian2, ... for each recording), with the matching monitors: a
``SpikeMonitor`` for ``spikes``, a ``SpikeMonitor(record=False)`` for ``counts``, and a
``SpikeMonitor`` plus a ``StateMonitor`` of ``v`` on every neuron for ``full``. The ratio
golden / Brian2 per recording is printed with the issue's goals (spikes >= 2, full >= 3).
Brian2 needs ``numpy<2.3``, so it usually lives in its own environment: pass that interpreter
with ``--brian-python /path/to/python`` (it is also looked for in ``$LIFGATE_BRIAN_PYTHON``, and
the current interpreter is used when it can import brian2). It stays running between its runs
(one process, fed one run per line), so its compile cache is warm after the first.

``--profile`` times each numpy pass of one step (single thread, the same arrays) to show where
the time goes. ``--json`` prints one JSON object.

Run: ``python bench/bench_golden.py`` or ``lifgate bench golden``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from lifgate.golden.fixed import fresh_state, simulate

from lifgate.compilers.quantize import quantize
from lifgate.config import ArrayShape, Config, NoiseParams

GOAL = 3e8  # neuron-updates/s on 2 cores
RECORDS = ("spikes", "counts", "full")
# issue 19: golden / Brian2 (cython target), interleaved in one run
RATIO_GOALS = {"spikes": 2.0, "full": 3.0}

# Runs in a separate interpreter (Brian2 needs numpy < 2.3), one run per line of stdin, one
# JSON line per run on stdout. Same LIF as the golden model's configuration: the notebook's
# parameters, forward Euler, dt 0.1 ms. Fixed object names keep the generated code, and so
# Brian2's compile cache, the same from run to run.
_BRIAN_SCRIPT = r"""
import json, sys, time
import numpy as np
from brian2 import (NeuronGroup, SpikeMonitor, StateMonitor, Network, defaultclock, prefs, ms,
                    mV, nS, pA, __version__ as brian_version)
target = sys.argv[1]
prefs.codegen.target = target
defaultclock.dt = 0.1 * ms
tau_m, g_L, E_L, V_th, V_reset = 10 * ms, 10 * nS, -75 * mV, -55 * mV, -75 * mV
eqs = '''dv/dt = (-(v - E_L) + I / g_L) / tau_m : volt (unless refractory)
I : amp'''
for line in sys.stdin:
    cfg = json.loads(line)
    G = NeuronGroup(cfg["neurons"], eqs, threshold="v >= V_th", reset="v = V_reset",
                    refractory=2 * ms, method="euler", name="lif")
    G.v = E_L
    G.I = np.linspace(0.0, 500.0, cfg["neurons"]) * pA
    mon = SpikeMonitor(G, record=cfg["record"] != "counts", name="spikes")
    mons = [mon]
    if cfg["record"] == "full":
        mons.append(StateMonitor(G, "v", record=True, name="state"))
    net = Network(G, *mons)
    t0 = time.perf_counter()
    net.run(10 * defaultclock.dt)  # code generation and compilation
    t1, c1 = time.perf_counter(), time.process_time()
    net.run(cfg["steps"] * defaultclock.dt)
    t2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({"version": brian_version, "target": target, "setup_s": t1 - t0,
                      "run_s": t2 - t1, "cpu_s": c2 - c1, "spikes": int(mon.num_spikes)}),
          flush=True)
    del net, mons, mon, G
"""


def _golden_setup(neurons: int, noise: bool):
    q = quantize()
    # the most lanes (up to 64, a power of two) that divide N: the noise is generated per lane
    # and address, so the lane count sets its cost (the noise-free results do not depend on it)
    lanes = next(p for p in (64, 32, 16, 8, 4, 2, 1) if neurons % p == 0)
    shape = ArrayShape(neurons=neurons, lanes=lanes, groups=1)
    noise_p = NoiseParams(seed=1, gain=q.noise_gain(2.5)) if noise else NoiseParams()
    cfg = Config(shape=shape, params=(q.params,), noise=noise_p)
    currents = q.current_to_int(np.linspace(0.0, 500.0, neurons))
    return cfg, currents


def _spike_total(res) -> int:
    if res.spikes is not None:
        return int(res.spikes.sum())
    if res.packed is not None:
        return int(np.unpackbits(res.packed).sum())
    return int(res.counts().sum())


def golden_once(cfg, currents, steps, record, engine):
    """One timed run: ``(wall seconds, CPU seconds, spikes)``."""
    c0, t0 = time.process_time(), time.perf_counter()
    res = simulate(cfg, steps, currents, record=record, engine=engine)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dt, cpu, _spike_total(res)


def _golden_row(cfg, record, engine, noise, runs, steps) -> dict:
    neurons = cfg.shape.neurons
    times, cpus = [x[0] for x in runs], [x[1] for x in runs]
    best = min(times)
    rate = neurons * steps / best
    return {
        "model": "golden" + (" + noise" if noise else ""),
        "engine": engine,
        "record": record,
        "neurons": neurons,
        "lanes": cfg.shape.lanes,
        "steps": steps,
        "seconds": best,
        "first_seconds": times[0],
        "cpu_seconds": min(cpus),
        "updates_per_s": rate,
        "updates_per_cpu_s": neurons * steps / min(cpus),
        "goal_ratio": rate / GOAL,
        "spikes": runs[-1][2],
    }


def bench_golden(neurons: int, steps: int, repeat: int, noise: bool = False,
                 record: str = "full", engine: str = "fused") -> dict:
    cfg, currents = _golden_setup(neurons, noise)
    simulate(cfg, 5, currents, record=record, engine=engine)  # warm up (compile, tables)
    runs = [golden_once(cfg, currents, steps, record, engine) for _ in range(repeat)]
    return _golden_row(cfg, record, engine, noise, runs, steps)


def _find_brian_python(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    env = os.environ.get("LIFGATE_BRIAN_PYTHON")
    if env:
        return env
    try:
        import brian2  # noqa: F401  (optional, its own environment: a probe, is it here?)

        return sys.executable
    except Exception:
        return None


class BrianRunner:
    """A Brian2 interpreter kept running; :meth:`run` times one run in it.

    Members
    -------
    error : str or None
        Why Brian2 cannot run (then :meth:`run` returns an error row).
    """

    def __init__(self, python: str, target: str):
        self.target, self.proc, self.error = target, None, None
        if shutil.which(python) is None and not os.path.exists(python):
            self.error = f"interpreter {python!r} not found"
            return
        self.proc = subprocess.Popen([python, "-c", _BRIAN_SCRIPT, target], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def run(self, neurons: int, steps: int, record: str) -> dict:
        line = ""
        if self.error is None:
            try:
                self.proc.stdin.write(json.dumps({"neurons": neurons, "steps": steps,
                                                  "record": record}) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except OSError as e:
                self.error = f"{type(e).__name__}: {e}"
            if not line:
                self.close()
                last = (self.proc.stderr.read().strip().splitlines() or ["?"])[-1]
                self.error = self.error or f"exit {self.proc.returncode}: {last}"
        if self.error is not None:
            return {"model": "brian2", "record": record, "error": self.error}
        r = json.loads(line)
        return {
            "model": f"brian2 {r['version']} ({r['target']})",
            "record": record,
            "neurons": neurons,
            "steps": steps,
            "seconds": r["run_s"],
            "cpu_seconds": r["cpu_s"],
            "updates_per_cpu_s": neurons * steps / r["cpu_s"],
            "setup_s": r["setup_s"],
            "updates_per_s": neurons * steps / r["run_s"],
            "goal_ratio": neurons * steps / r["run_s"] / GOAL,
            "spikes": r["spikes"],
        }

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_brian(python: str, neurons: int, steps: int, target: str,
                record: str = "spikes") -> dict:
    """One Brian2 run in its own interpreter (see :class:`BrianRunner`)."""
    runner = BrianRunner(python, target)
    try:
        return runner.run(neurons, steps, record)
    finally:
        runner.close()


def interleaved(neurons, steps, repeat, records, engine, brian) -> list[dict]:
    """Golden and Brian2 (``brian``: a :class:`BrianRunner` or None) taking turns, per
    recording: the best of ``repeat`` runs of each, so both see the same machine load."""
    cfg, currents = _golden_setup(neurons, False)
    rows = []
    for record in records:
        simulate(cfg, 5, currents, record=record, engine=engine)  # warm up (compile)
        g, b = [], []
        for _ in range(repeat):
            g.append(golden_once(cfg, currents, steps, record, engine))
            if brian is not None:
                b.append(brian.run(neurons, steps, record))
        rows.append(_golden_row(cfg, record, engine, False, g, steps))
        if brian is not None:
            ok = [x for x in b if "error" not in x]
            rows.append(min(ok, key=lambda x: x["seconds"]) if ok else b[-1])
    return rows


def ratios(rows) -> dict:
    """golden / Brian2 updates_per_s per recording, with the goal and whether it is met."""
    out = {}
    for g in rows:
        if g["model"] != "golden" or "error" in g:
            continue
        for b in rows:
            if (b["model"].startswith("brian2") and "error" not in b
                    and b["record"] == g["record"]):
                ratio = g["updates_per_s"] / b["updates_per_s"]
                goal = RATIO_GOALS.get(g["record"])
                out[g["record"]] = {"ratio": ratio, "goal": goal,
                                    "met": None if goal is None else ratio >= goal,
                                    "cpu_ratio": b["cpu_seconds"] / g["cpu_seconds"]}
    return out


def profile_step(neurons: int, steps: int) -> dict:
    """Time each numpy pass of one MULT/VALUE step, single thread, int32 (what fixed.py does).

    A replica of ``fixed._Kernel.step`` for the uniform MULT leak / VALUE reset case, with a
    timer around each pass; it checks its result against ``simulate`` so the replica cannot
    silently drift from the model it profiles.
    """
    cfg, currents = _golden_setup(neurons, False)
    p = cfg.params[0]
    F = cfg.shape.decay_frac
    vmin, vmax = cfg.shape.v_range
    i32 = np.int32
    v = fresh_state(cfg).v.astype(i32)
    r = np.zeros(neurons, dtype=i32)
    cur = np.asarray(currents, dtype=i32)
    Dh, Dl = i32(p.leak >> 8), i32(p.leak & 0xFF)
    v_th, v_reset, v_rest, t_ref = i32(p.v_th), i32(p.v_reset), i32(p.v_rest), i32(p.t_ref)
    out_s = np.empty((steps, neurons), dtype=bool)
    out_v = np.empty((steps, neurons), dtype=i32)
    names = ["refr = r > 0", "fire = v >= v_th (into out_s)", "fire &= ~refr",
             "h = where(refr|fire, v_reset, v)", "d = h - v_rest", "mult: 2 products",
             "mult: round, shift, add", "x += v_rest + bias; x += i",
             "r1 = where(refr, r-1, where(fire, t_ref, 0))", "hold = r1 > 0; any",
             "x = where(hold, h, x)", "clip", "out_v[t] = x"]
    acc = np.zeros(len(names))
    clock = time.perf_counter
    mark = [0.0]

    def lap(k):
        now = clock()
        acc[k] += now - mark[0]
        mark[0] = now

    for t in range(steps):
        mark[0] = clock()
        refr = r > 0
        lap(0)
        fire = np.greater_equal(v, v_th, out=out_s[t])
        lap(1)
        fire &= ~refr
        lap(2)
        h = np.where(refr | fire, v_reset, v)
        lap(3)
        d = h - v_rest
        lap(4)
        a = d * Dh
        b = d * Dl
        lap(5)
        b += i32(1 << (F - 1))
        b >>= 8
        a += b
        a >>= F - 8
        lap(6)
        a += v_rest + i32(p.bias)
        a += cur
        x = a
        lap(7)
        r1 = np.where(refr, r - 1, np.where(fire, t_ref, i32(0))).astype(i32, copy=False)
        lap(8)
        hold = r1 > 0
        any_hold = hold.any()
        lap(9)
        if any_hold:
            x = np.where(hold, h, x)
        lap(10)
        np.clip(x, vmin, vmax, out=x)
        lap(11)
        out_v[t] = x
        lap(12)
        v, r = x, r1
    ref = simulate(cfg, steps, currents)
    if not (np.array_equal(ref.spikes, out_s) and np.array_equal(ref.v, out_v)):
        raise AssertionError("profile replica disagrees with lifgate.golden.fixed.simulate")
    per = acc / (neurons * steps) * 1e9
    return {
        "neurons": neurons,
        "steps": steps,
        "ns_per_update": float(per.sum()),
        "passes": [{"pass": n, "ns_per_update": float(x)} for n, x in zip(names, per, strict=True)],
    }


def _table(rows, prof, ratio) -> str:
    lines = [f"{'model':<28}{'record':>7}{'neurons':>9}{'steps':>7}{'seconds':>9}"
             f"{'updates/s':>12}{'vs goal':>9}{'spikes':>10}"]
    for r in rows:
        name = r["model"] + (f" [{r['engine']}]" if "engine" in r else "")
        if "error" in r:
            lines.append(f"{name:<28}{r.get('record', ''):>7}  not run: {r['error']}")
            continue
        lines.append(
            f"{name:<28}{r['record']:>7}{r['neurons']:>9}{r['steps']:>7}{r['seconds']:>9.3f}"
            f"{r['updates_per_s']:>12.3g}{r['goal_ratio']:>9.3f}{r['spikes']:>10}"
        )
    lines.append(f"goal: {GOAL:.3g} neuron-updates/s on 2 cores")
    for r in rows:
        tag = f"{r['model']} ({r.get('record')})"
        if r.get("first_seconds") is not None and r["first_seconds"] > 1.2 * r["seconds"]:
            lines.append(f"{tag}: first run {r['first_seconds']:.3f} s "
                         "(first touch of the output arrays)")
        if "cpu_seconds" in r:
            lines.append(
                f"{tag}: {r['cpu_seconds']:.3f} CPU-s, {r['updates_per_cpu_s']:.3g} "
                f"updates per CPU-second ({1e9 / r['updates_per_cpu_s']:.2f} ns of CPU per "
                "update; wall-clock rates suffer when other jobs share the cores)"
            )
    b = [r for r in rows if r["model"].startswith("brian2") and "error" not in r]
    for record, x in ratio.items():
        goal = "" if x["goal"] is None else \
            f" (goal >= {x['goal']:g}: {'met' if x['met'] else 'NOT met'})"
        lines.append(f"golden / brian2 throughput, record {record}: {x['ratio']:.3g}{goal}; "
                     f"per CPU-second {x['cpu_ratio']:.3g}")
    if b:
        lines.append(f"brian2 setup and compile {b[0]['setup_s']:.1f} s, not counted")
    if prof:
        lines.append("")
        lines.append(
            f"profile of one step, one thread, {prof['neurons']} neurons x {prof['steps']} steps:"
            f" {prof['ns_per_update']:.2f} ns per neuron-update"
        )
        for x in prof["passes"]:
            lines.append(f"  {x['pass']:<48}{x['ns_per_update']:>7.2f} ns")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_golden", description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of each model and recording (default 2), interleaved; the best "
                    "is reported, the first one too: it pays for the first touch of the "
                    "output arrays")
    ap.add_argument("--record", action="append", choices=RECORDS, default=None,
                    help="what the model keeps: spikes (bit-packed), counts (per neuron, with "
                    "first/last spike step), full (every spike and membrane); repeat the "
                    "option for several (default: all three)")
    ap.add_argument("--engine", choices=("fused", "numpy"), default="fused",
                    help="fused: the compiled kernel lifgate.golden.fast (default); numpy: the "
                    "numpy reference lifgate.golden.fixed")
    ap.add_argument("--noise", action="store_true", help="also time a run with the noise on")
    ap.add_argument("--brian-python", default=None, metavar="PYTHON",
                    help="interpreter with brian2 installed (default: $LIFGATE_BRIAN_PYTHON, "
                    "or this one if it can import brian2)")
    ap.add_argument("--brian-target", choices=("cython", "numpy"), default="cython")
    ap.add_argument("--no-brian", action="store_true", help="skip Brian2 even if available")
    ap.add_argument("--profile", action="store_true", help="time each pass of one step")
    ap.add_argument("--quick", action="store_true", help="10,000 neurons x 200 steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.neurons, args.steps = 10_000, 200
    if args.neurons < 1 or args.steps < 1 or args.repeat < 1:
        ap.error("--neurons, --steps and --repeat must be positive")
    records = list(dict.fromkeys(args.record or RECORDS))

    brian, rows_brian_missing = None, []
    if not args.no_brian:
        py = _find_brian_python(args.brian_python)
        if py is None:
            rows_brian_missing.append({"model": "brian2",
                                       "error": "not installed (see --brian-python)"})
        else:
            brian = BrianRunner(py, args.brian_target)
    try:
        rows = interleaved(args.neurons, args.steps, args.repeat, records, args.engine, brian)
    finally:
        if brian is not None:
            brian.close()
    rows += rows_brian_missing
    if args.noise:
        rows.append(bench_golden(args.neurons, args.steps, args.repeat, noise=True,
                                 record=records[0], engine=args.engine))
    prof = profile_step(min(args.neurons, 50_000), min(args.steps, 200)) if args.profile else None
    ratio = ratios(rows)
    result = {"benchmark": "golden", "goal_updates_per_s": GOAL, "cpus": os.cpu_count(),
              "results": rows, "ratios": ratio}
    if prof:
        result["profile"] = prof
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(rows, prof, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
