"""Fuzzing the host-link decoder of the simulated board top (issue 7, item 2, second half).

The board top's Verilog (``HostLink`` with the real ``LIFArray``, top ``board_top``) is built
with the project's runner (:mod:`lifgate.sim.runner`) and driven on its UART pins by the cocotb
module :mod:`lifgate.boards.tb_fuzz`: seeded random, mutated and valid frames, each reply equal
byte for byte to the protocol model's, no hang, the state read back after rejected frames, and
a final run against the golden model. See that module for the frame mix.

Verilator: ``FRAMES`` fuzzed exchanges. Icarus is about 10x slower: a shorter slice of the
same seeded sequence (``ICARUS_FRAMES``). ``LIFGATE_FUZZ_SEED`` and ``LIFGATE_FUZZ_FRAMES``
override the seed and the Verilator count (for longer soak runs).
"""

from __future__ import annotations

import json
import os

import pytest
from cocotb_tools.runner import get_results
from lifgate.boards.protocol import Features
from lifgate.boards.top import TOPLEVEL, build_sim_top
from lifgate.sim.runner import TIMESCALE, SimulatorError, get_runner, shape_dict

from lifgate.config import ArrayShape

# Narrow widths so that every range check has something to reject: 10-bit currents in 2-byte
# fields, a CONST leak field (max(W, F) = 12 bits) wider than the membrane, pad bits in the
# 9-byte parameter word, an 8-bit step label that wraps, a 32-byte frame buffer.
FEATURES = Features(
    ArrayShape(neurons=16, lanes=4, groups=4, v_width=10, i_width=10, ref_width=3,
               decay_frac=12, step_width=8, leak_modes=("shift", "const")),
    membrane=True, noise=True, max_payload=32)
DIVISOR = 4  # UART clocks per bit (25 Mbaud at the 100 MHz simulated clock)
TIMEOUT = 160  # link timeout in clocks: four byte times
SEED = int(os.environ.get("LIFGATE_FUZZ_SEED", "20261122"))
FRAMES = int(os.environ.get("LIFGATE_FUZZ_FRAMES", "600"))
ICARUS_FRAMES = 60
TEST_MODULE = "lifgate.boards.tb_fuzz"
# The array structures the boards build (boards/toolchain.py): the iCEBreaker's (SB_MAC16
# noise) on Verilator, the ULX3S's (MULT18X18D, DP16KD, a pipeline enable per lane) on Icarus.
# Behaviour must not depend on them. The ULX3S's input-current feeder (boards/feed.py) too.
CURRENT_RAM = {"verilator": "memory", "icarus": "ecp5"}
ARRAY_OPTIONS = {
    "verilator": {"pipeline": "compact", "multiplier": "ice40"},
    "icarus": {"pipeline": "deep", "lanes_per_enable": 1, "multiplier": "ecp5",
               "memory": "ecp5"},
}


def run_fuzz(sim: str, build_dir, frames: int, seed: int) -> dict:
    """Build the board top for ``sim``, run the fuzz session; return its JSON report."""
    top = build_sim_top(FEATURES, sim=sim, build_dir=build_dir, divisor=DIVISOR,
                        timeout=TIMEOUT, array_options=ARRAY_OPTIONS[sim],
                        current_ram=CURRENT_RAM[sim])
    run_dir = top.build_dir / "fuzz"
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / "report.json"
    log = run_dir / "sim.log"
    features = {"shape": shape_dict(FEATURES.shape), "membrane": FEATURES.membrane,
                "noise": FEATURES.noise, "max_payload": FEATURES.max_payload}
    report.unlink(missing_ok=True)
    failed = False
    try:
        xml = get_runner(sim).test(
            test_module=TEST_MODULE, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
            build_dir=top.build_dir, test_dir=run_dir, timescale=TIMESCALE, log_file=log,
            extra_env={
                "LIFGATE_FUZZ_FEATURES": json.dumps(features),
                "LIFGATE_FUZZ_FRAMES": str(frames),
                "LIFGATE_FUZZ_SEED": str(seed),
                "LIFGATE_UART_DIVISOR": str(DIVISOR),
                "LIFGATE_LINK_TIMEOUT": str(TIMEOUT),
                "LIFGATE_CLK_NS": "10",
                "LIFGATE_FUZZ_REPORT": str(report),
            })
        failed = get_results(xml)[1] > 0
    except SystemExit:  # the runner exits when a cocotb test failed
        failed = True
    result = json.loads(report.read_text()) if report.exists() else {}
    assert not result.get("mismatch"), f"{sim}, seed {seed}: {result['mismatch']}"
    if failed:
        raise SimulatorError(f"{sim} fuzz session failed (seed {seed}); log: {log}")
    return result


@pytest.mark.parametrize("sim", [pytest.param("verilator", marks=pytest.mark.verilator),
                                 pytest.param("icarus", marks=pytest.mark.icarus)])
def test_fuzz_board_top(sim, tmp_path):
    frames = FRAMES if sim == "verilator" else ICARUS_FRAMES
    report = run_fuzz(sim, tmp_path, frames, SEED)
    print(f"{sim} board fuzz: {json.dumps(report)}")
    assert report["frames"] == frames
    # The mix reached every kind of outcome (so the test can fail where it should).
    if frames >= 500:
        for reply in ("ERR_CRC", "ERR_TIMEOUT", "ERR_UNKNOWN", "ERR_LENGTH", "ERR_RANGE",
                      "ERR_OVERRUN", "STEP", "RUN_DONE", "SET_PARAMS_OK", "WRITE_CURRENTS_OK"):
            assert report["replies"].get(reply, 0) > 0, (reply, report["replies"])
    assert 0 < report["golden_spikes"] < report["golden_size"]
