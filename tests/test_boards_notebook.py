"""The notebook's configuration (``quantize()``: the MULT leak) on the simulated board top.

Issue 14 #2: every shape with the MULT leak and ``decay_frac >= v_width`` (the default shape)
stopped the Verilator build with ``%Warning-CMPCONST`` on the parameter check of the host
link (``leak <= 2**F - 1`` on an F-bit field, always true). ``tests/test_boards_host.py`` uses
SHIFT and CONST only, so nothing built that shape before. Here the notebook's own configuration
runs on Verilator and Icarus and is compared bit for bit with the golden model.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifgate.boards.host import open_board
from lifgate.boards.protocol import Features
from lifgate.golden.fixed import simulate

from lifgate.compilers.quantize import quantize
from lifgate.config import LeakMode


def notebook_experiment():
    """The notebook's quantized neuron, one constant current per neuron: from none to 12 times
    the rheobase, so some neurons stay silent and the strongest fire within a few steps."""
    q = quantize()
    config = q.config
    assert config.params[0].leak_mode == LeakMode.MULT
    assert config.shape.leak_width == config.shape.decay_frac  # the shape that failed
    n = config.shape.neurons
    currents = q.current_to_int(np.linspace(0.0, 12.0 * q.rheobase(), n))
    return config, np.asarray(currents, dtype=np.int64)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_notebook_config_on_sim_board(sim, tmp_path):
    """The notebook's configuration builds (no CMPCONST) and matches the golden model."""
    config, currents = notebook_experiment()
    features = Features(config.shape)
    # Icarus runs about 20x slower than Verilator: fewer steps, spikes only.
    steps, membrane = (60, True) if sim == "verilator" else (24, False)
    ref = simulate(config, steps, currents)
    assert 0 < ref.spikes.sum() < ref.spikes.size  # the run exercises something
    board = open_board(f"sim:{sim}", features=features, build_dir=tmp_path, timeout=2000)
    try:
        assert board.features == features
        board.configure(config, currents=currents)
        res = board.run(steps, membrane=membrane)
    finally:
        board.close()
    assert np.array_equal(res.spikes, ref.spikes)
    if membrane:
        assert np.array_equal(res.v, ref.v)
    assert res.labels.tolist() == list(range(steps))
