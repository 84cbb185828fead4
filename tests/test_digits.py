"""ANN-to-SNN conversion on the 8x8 digits (lifgate/compilers/convert.py, lifgate digits).

The RTL run of the converted network (Verilator, about a minute to build) is marked slow and
skipped unless LIFGATE_SLOW=1:  LIFGATE_SLOW=1 python -m pytest tests/test_digits.py -m slow
"""

import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")

from lifgate.golden.synapse import simulate_network  # noqa: E402

from lifgate.app.cli import main  # noqa: E402
from lifgate.compilers.convert import convert, load_dataset, train_ann  # noqa: E402
from lifgate.config import LeakMode, ResetMode  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    data = load_dataset(0)
    return data, train_ann(data, hidden=32, seed=0)


def test_snn_within_1p5_points_of_ann(trained):
    data, mlp = trained
    ann = (mlp.predict(data.x_test / 16) == data.y_test).mean()
    conv = convert(mlp, data.x_train)
    res = conv.run(data.x_test, 32)
    snn = (conv.predict(res) == data.y_test).mean()
    assert ann > 0.9
    assert snn >= ann - 0.015
    for layer in conv.network.layers:
        for p in layer.config.params:
            assert p.leak_mode == LeakMode.CONST and p.leak == 0
            assert p.reset_mode == ResetMode.SUBTRACT and p.t_ref == 0
        assert np.abs(layer.weights).max() <= 127


def test_batched_golden_equals_single_runs(trained):
    data, mlp = trained
    conv = convert(mlp, data.x_train)
    batch = conv.run(data.x_test[:5], 12)
    for x, b in zip(data.x_test[:5], batch, strict=True):
        one = simulate_network(conv.network, 12, x)
        for u, v in zip(one.spikes + one.v, b.spikes + b.v, strict=True):
            assert np.array_equal(u, v)
        assert (one.input_ops, one.spike_ops) == (b.input_ops, b.spike_ops)
        assert one.spike_ops == sum(
            int(one.spikes[n].sum()) * conv.network.layers[n + 1].neurons for n in range(1))


def test_cli_golden_only(capsys):
    assert main(["digits", "--samples", "0", "--steps", "16", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["steps"] == 16 and rep["rtl_samples"] == 0 and rep["ok"] is True
    assert rep["snn_accuracy"] >= rep["ann_accuracy"] - 0.015
    assert rep["spikes_per_inference"] > 0 and rep["synops_per_inference"] > 0
    assert main(["digits", "--steps", "0"]) == 2


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.skipif(not os.environ.get("LIFGATE_SLOW"), reason="set LIFGATE_SLOW=1 to run")
def test_rtl_equals_golden_spike_for_spike(tmp_path, capsys):
    assert main(["digits", "--samples", "20", "--json", "--build-dir",
                 str(tmp_path / "build")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["rtl_bit_exact"] and rep["rtl_mismatching_samples"] == 0
    assert rep["rtl_accuracy"] == rep["snn_accuracy_on_rtl_samples"]
