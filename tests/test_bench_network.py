"""``bench/bench_network_fpga.py`` (issue 17): its table and its layer-1 clock count. The
figures themselves are a benchmark's (place and route), never asserted here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from lifgate.golden.synapse import synapse_clocks

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_network_fpga.py"
_spec = importlib.util.spec_from_file_location("lifgate_bench_network_test", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _row(variant, ports, **extra):
    r = {"board": "ulx3s-85f", "variant": variant, "event_ports": ports, "lanes": [32, 10],
         "steps": 32, "goal_mhz": 100.0, "sizes": [64, 32, 10], "cycles_per_inference": 3000,
         "dense_macs_per_inference": 75776, "neuron_updates_per_inference": 1344,
         "synops_per_inference": 2808.3, "golden_accuracy": 0.9733,
         "utilization": {"luts": {"used": 1, "available": 2}}}
    r.update(extra)
    return r


def test_table_has_both_kinds_and_the_anchors():
    fast = _row("spike", 2, fmax_mhz=101.0, inferences_per_s=33666.0, latency_us=29.7,
                neuron_updates_per_s=4.5e7, dense_macs_per_s=2.5e9, synops_per_s=9.4e7,
                layer1_synops_per_s=9.9e8)
    failed = _row("dense", 1, error="ERROR: Unable to place cell\nmore")
    text = bench.markdown([fast, failed])
    lines = text.splitlines()
    assert "spike-driven, 2 events/clock" in lines[2] and "990 M" in lines[2]
    assert "| dense |" in lines[3] and "failed: `ERROR: Unable to place cell`" in lines[3]
    # The baseline before issue 17 and the published anchors are rows of the same table, each
    # with its network named.
    table = lines[:lines.index("")]
    assert all(line.count("|") == lines[0].count("|") for line in table)
    for cite in ("2507.07284", "2602.18140", "2507.10561"):
        (row,) = [line for line in table if cite in line]
        assert "| MNIST" in row
    for board, rate in (("ulx3s-85f", "6,973"), ("icebreaker", "609")):
        (row,) = [line for line in table if line.startswith(f"| {board}, before issue 17 |")]
        assert "| digits 64-32-10 | dense |" in row and f"| {rate} |" in row
    assert "sklearn digits" in text and "97.33 %" in text


def test_rows_say_seed_load_and_date():
    r = _row("spike", 2, fmax_mhz=101.0, inferences_per_s=33666.0, latency_us=29.7,
             neuron_updates_per_s=4.5e7, dense_macs_per_s=2.5e9, synops_per_s=9.4e7,
             seed=3, load_start=4.5, load_end=7.25, build_seconds=812,
             measured="2026-12-06 15:00 UTC")
    line = bench.markdown([r]).splitlines()[2]
    assert line.endswith("| seed 3, load 4.5-7.25, 812 s, 2026-12-06 15:00 UTC |")


class _Layer:
    def __init__(self, neurons, inputs, lanes):
        self.neurons, self.inputs = neurons, inputs
        self.config = type("C", (), {"shape": type("S", (), {"lanes": lanes})()})()


class _Conv:
    def __init__(self, lanes):
        self.network = type("N", (), {"layers": [_Layer(32, 64, 32), _Layer(10, 32, lanes)]})()


class _Result:
    def __init__(self, spikes0):
        self.spikes = [spikes0]


def test_layer1_clocks_are_the_cost_model_over_the_golden_spikes():
    rng = np.random.default_rng(1)
    golden = [_Result(rng.random((4, 32)) < q) for q in (0.0, 0.2, 0.9)]
    for lanes, ports in ((10, 2), (2, 1)):
        want = np.mean([sum(synapse_clocks(32, 10 // lanes, s, ports=ports) for s in r.spikes[0])
                        for r in golden])
        assert bench._layer1_clocks(_Conv(lanes), golden, True, ports) == want
        assert bench._layer1_clocks(_Conv(lanes), golden, False, 1) == 4 * (10 // lanes) * 36


def test_measuring_one_board_keeps_the_others_rows(tmp_path):
    """``bench_network_fpga.py ulx3s-85f --markdown FILE`` replaces the ECP5 rows and keeps
    the UP5K's rows and critical paths already in FILE."""
    ice = _row("spike", 1, board="icebreaker", fmax_mhz=38.0, inferences_per_s=526.0,
               latency_us=1900.7, neuron_updates_per_s=7.07e5, dense_macs_per_s=3.99e7,
               synops_per_s=1.48e6, layer1_synops_per_s=5.21e7,
               critical_paths={"clk": {"delay_ns": 26.3, "logic_levels": 7, "routing_ns": 17.2,
                                       "from": "a", "to": "b"}})
    doc = tmp_path / "r.md"
    doc.write_text("text\n<!-- network:begin -->\nold\n<!-- network:end -->\nmore\n")
    bench.write_markdown(doc, bench.markdown([ice]))
    ecp = _row("spike", 2, fmax_mhz=101.0, inferences_per_s=33666.0, latency_us=29.7,
               neuron_updates_per_s=4.5e7, dense_macs_per_s=2.5e9, synops_per_s=9.4e7,
               layer1_synops_per_s=1.1e9)
    bench.write_markdown(doc, bench.markdown([ecp]), boards=["ulx3s-85f"])
    text = doc.read_text()
    lines = text.splitlines()
    head = lines.index(bench.HEADER)
    assert lines[head + 2].startswith("| ulx3s-85f |") and "1.1 G" in lines[head + 2]
    assert lines[head + 3].startswith("| icebreaker |") and "52.1 M" in lines[head + 3]
    fixed = bench.fixed_rows()
    assert lines[head + 4:head + 4 + len(fixed)] == fixed
    assert lines[head + 4 + len(fixed)] == ""
    assert "* icebreaker (spike), clock `clk`: 26.3 ns" in text
    assert text.startswith("text\n") and text.endswith("<!-- network:end -->\nmore\n")
    assert "old" not in lines
