"""``lifgate bench link``: its byte arithmetic against the frames it sends and the model's
replies, its refusals, and one reduced run on the simulated board top (replies bit-exact).
The figures themselves are a benchmark's, never asserted here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from lifgate.boards.protocol import BoardModel, Cmd, Features, encode_frame

from lifgate.app.cli import main as cli_main
from lifgate.config import ArrayShape

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_link.py"
_spec = importlib.util.spec_from_file_location("lifgate_bench_link_test", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _wire_bytes(f: Features, frames: list) -> int:
    """What goes over the line: each frame and the model's replies to it."""
    replies = BoardModel(f).exchange(frames)
    return sum(len(d) + len(r) for d, r in zip(frames, replies, strict=True))


@pytest.mark.parametrize("neurons, lanes, max_payload", [(64, 8, 512), (200, 4, 64),
                                                         (96, 32, 40)])
def test_link_bytes_are_the_frames_and_replies(neurons, lanes, max_payload):
    shape = ArrayShape(neurons=neurons, lanes=lanes, groups=1, leak_modes=("shift", "const"))
    f = Features(shape, counts=True, max_payload=max_payload)
    steps = 7
    cur = bench.currents_for(neurons)
    config = bench.config_frames(f, cur)
    assert bench.config_bytes(f) == _wire_bytes(f, config)
    a = config + [encode_frame(Cmd.CLEAR_COUNTS), bench.run_frame(steps, 4),
                  bench.read_frame(neurons, 0)]
    assert bench.link_bytes(f, steps, "a") == _wire_bytes(f, a)
    a1 = a[:-1] + [bench.read_frame(neurons, 1)]
    assert bench.link_bytes(f, steps, "a_compact") == _wire_bytes(f, a1)
    c = config + [bench.run_frame(steps, 1)]
    assert bench.link_bytes(f, steps, "c") == _wire_bytes(f, c)
    ramp = bench.ramp_config_frames(f) + a[-3:-1] + [bench.read_frame(neurons, 2)]
    model = BoardModel(f)
    *_, packed = model.exchange(ramp)
    assert model.currents == bench.currents_for(neurons).tolist()
    width = packed[9]  # SYNC, CMD, LEN (3), window (4), then the width byte
    assert width == bench.packed_width(f, steps) == int(model.counts[0].max()).bit_length()
    assert bench.link_bytes(f, steps, "a_ramp", width) == _wire_bytes(f, ramp)


@pytest.mark.parametrize("argv, match", [
    (["--steps", "0"], "--steps"),
    (["--bitmap-steps", "-1"], "--bitmap-steps"),
    (["--board", "icebreaker", "--sim-neurons", "100"], "--sim-neurons"),
    (["--board", "icebreaker", "--sim-neurons", "8192"], "--sim-neurons"),
])
def test_bench_link_refuses(capsys, argv, match):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_bench_link_reduced_run(capsys, tmp_path):
    """A reduced run on the simulated board top through ``lifgate bench link``: every reply
    equals the model's, every workload is there ((b) measured on the simulated top with the
    EVENTS mode), ratios are rates over the raw rate, and the counts unit costs the array no
    more than it may."""
    code = cli_main(["bench", "--json", "link", "--board", "icebreaker", "--steps", "60",
                     "--bitmap-steps", "2", "--sim-neurons", "64", "--build-dir",
                     str(tmp_path), "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"]
    (res,) = out["benchmarks"]["link"]["results"]
    assert res["simulated"]["bit_exact"] and res["raw_updates_per_s"] == 8 * 48e6
    assert set(res["workloads"]) == {"a", "a_compact", "a_ramp", "b", "c"}
    assert res["workloads"]["b"]["cycles_source"] == "verilator"
    assert res["simulated"]["ramp_cycles"] > 0 and res["simulated"]["packed_scan_cycles"] > 0
    for key in ("a", "a_compact", "a_ramp", "b", "c"):
        w = res["workloads"][key]
        assert w["ratio"] == pytest.approx(w["updates_per_s"] / res["raw_updates_per_s"])
        assert 0 < w["ratio"] < 1
    assert res["simulated"]["cycles_per_beat_plain"] >= 1
    assert res["simulated"]["cycles_per_beat_a"] >= res["simulated"]["cycles_per_beat_plain"]
