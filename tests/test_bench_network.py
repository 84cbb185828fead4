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
    assert all(line.count("|") == lines[0].count("|") for line in lines[:4])
    for cite in ("2507.07284", "2602.18140", "2507.10561"):
        assert cite in text
    assert "MNIST" in text and "sklearn digits" in text and "97.33 %" in text


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
