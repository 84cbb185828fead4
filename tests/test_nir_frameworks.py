"""NIR graphs exported by snnTorch, Norse and sinabs (``examples/nir_fixtures``, made by
``make_fixtures.py`` in the frameworks' own environment; no torch here): every committed export
imports with the options its ``fixtures.json`` entry lists, its spike counts are within 1 % of
the framework's own run after the documented shift, and the RTL is bit-exact with the golden
model. snnTorch's default subtract reset matches with ``--reset subtract-after-leak`` (and
differs with lifgate's other reset modes); sinabs' MultiSpike is the documented exception."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from lifgate.app.cli import main  # noqa: E402
from lifgate.compilers.nir_import import import_nir  # noqa: E402
from lifgate.compilers.nir_reference import compare, load_reference  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "examples" / "nir_fixtures"
FIXTURES = json.loads((HERE / "fixtures.json").read_text())
#: By each fixture's ``expect``: counts within 1 %, a documented semantic difference
#: (none left: snnTorch's subtract reset and sinabs' MultiSpike now match), or refused
#: (docs/networks.md).
MATCHING = sorted(n for n, m in FIXTURES.items() if m["expect"] == "matches")
DIFFERENT = sorted(n for n, m in FIXTURES.items() if m["expect"] == "differs")
REFUSED = sorted(n for n, m in FIXTURES.items() if m["expect"] == "refused")
#: Fixtures imported with multi-spike output (``--spike-max`` above 1; docs/numerics.md,
#: "Multi-spike output"): sinabs' MultiSpike.
MULTI = sorted(n for n, m in FIXTURES.items() if "--spike-max" in m["options"]
               and m["options"][m["options"].index("--spike-max") + 1] != "1")


def run_cli(name, *extra, capsys):
    meta = FIXTURES[name]
    code = main(["import-nir", str(HERE / f"{name}.nir"), *meta["options"], "--reference",
                 str(HERE / f"{name}.npz"), "--json", "--no-progress", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_every_framework_has_a_fixture_with_versions():
    frameworks = {FIXTURES[n]["framework"] for n in MATCHING}
    assert frameworks == {"snnTorch", "Norse", "sinabs"}
    assert set(MATCHING + DIFFERENT + REFUSED) == set(FIXTURES)
    for name, meta in FIXTURES.items():
        assert (HERE / f"{name}.nir").is_file() and (HERE / f"{name}.npz").is_file()
        assert meta["versions"]["nir"] and meta["versions"]["torch"]
        assert load_reference(HERE / f"{name}.npz").meta == meta


@pytest.mark.parametrize("name", MATCHING)
def test_fixture_spike_counts_within_one_percent(name, capsys):
    code, out = run_cli(name, capsys=capsys)
    assert code == 0 and out["ok"] is True
    ref = out["reference"]
    assert ref["layers"], "no spiking layer compared"
    for layer in ref["layers"]:
        assert layer["framework_spikes"] > 0
        assert layer["count_difference"] <= 0.01, layer
    if "membrane_max_difference" in ref:
        assert ref["membrane_max_difference"] <= 0.01 * ref["membrane_range"]
    assert not out["warnings"]


def test_reference_comparison_can_fail():
    """The comparison sees a difference: the same graph with one neuron's spikes removed from
    the framework's record is more than 1 % off."""
    name = "sinabs_iaf_subtract"
    meta = FIXTURES[name]
    imp = import_nir(HERE / f"{name}.nir", dt=1.0, fire="ge", reset="subtract", target=0.01)
    ref = load_reference(HERE / f"{name}.npz")
    good = compare(imp, ref)
    assert all(layer["count_difference"] <= 0.01 for layer in good["layers"])
    busiest = int(ref.spikes[0].sum(axis=0).argmax())
    ref.spikes[0][:, busiest] = 0
    bad = compare(imp, ref)
    assert bad["layers"][0]["count_difference"] > 0.01
    assert meta["framework"] == "sinabs"


@pytest.mark.parametrize("reset", ["subtract", "value"])
def test_snntorch_subtract_reset_needs_subtract_after_leak(reset, capsys):
    """snnTorch's default Leaky subtracts the threshold after the decay: imported with the
    reset that subtracts before it (or NIR's reset to v_reset) the counts differ by more than
    1 % (exit code 1); the fixture matches only with ``--reset subtract-after-leak``."""
    name = "snntorch_leaky_subtract"
    assert FIXTURES[name]["expect"] == "matches"
    assert "subtract-after-leak" in FIXTURES[name]["options"]
    code, out = run_cli(name, "--reset", reset, capsys=capsys)
    assert code == 1 and out["ok"] is False
    assert max(layer["count_difference"] for layer in out["reference"]["layers"]) > 0.01


def test_documented_differences_show(capsys):
    """A documented semantic difference: the counts differ by more than 1 %, exit code 1.
    (None left since SUBTRACT_AFTER_LEAK and multi-spike output: a loop, not a parametrised
    test, so that an empty list is no skip.)"""
    for name in DIFFERENT:
        code, out = run_cli(name, capsys=capsys)
        assert code == 1 and out["ok"] is False, name
        assert max(layer["count_difference"] for layer in out["reference"]["layers"]) > 0.01


@pytest.mark.parametrize("name", MULTI)
def test_multispike_needs_its_spike_max(name, capsys):
    """sinabs' MultiSpike emits several spikes in a step: the fixture matches (above) with
    its ``--spike-max``; with ``--spike-max 1`` (one spike a step) the counts differ by more
    than 1 %, exit code 1, and the warning names the count the reference needs."""
    ref = load_reference(HERE / f"{name}.npz")
    peak = max(int(a.max()) for a in ref.spikes)
    assert peak > 1  # the framework did emit several spikes in a step
    code, out = run_cli(name, "--spike-max", "1", capsys=capsys)
    assert code == 1 and out["ok"] is False and out["spike_max"] == 1
    assert max(layer["count_difference"] for layer in out["reference"]["layers"]) > 0.01
    assert any(f"up to {peak} spikes" in w and "--spike-max 15" in w for w in out["warnings"])
    code, out = run_cli(name, capsys=capsys)
    assert code == 0 and out["spike_max"] == 15 and out["layers"][1]["config"]["shape"][
        "spike_max"] == 15


@pytest.mark.verilator
@pytest.mark.parametrize("name", MATCHING + DIFFERENT)
def test_fixture_rtl_bit_exact(name, capsys, tmp_path_factory):
    """``lifgate import-nir F --rtl`` on every committed export: the RTL equals the golden
    model, spike for spike and membrane for membrane (builds are shared between fixtures of
    the same shape and widths)."""
    build = tmp_path_factory.getbasetemp() / "nir-fixtures-build"
    # 40 steps: the counts of so short a window are not the 1 % claim (that is checked on all
    # 100 steps above), so --tolerance 100 leaves the exit code to the RTL comparison.
    code, out = run_cli(name, "--rtl", "--steps", "40", "--tolerance", "100", "--build-dir",
                        str(build), capsys=capsys)
    assert out["rtl_bit_exact"] is True and code == 0
    assert sum(out["golden_spikes_per_layer"]) > 0
    assert np.all(np.asarray(out["golden_spikes_per_layer"]) >= 0)


@pytest.mark.parametrize("bad,match", [
    ("nofile", "does not exist"),
    ("garbage", "cannot read"),
    ("nospikes", "neither 'spikes0' nor 'membrane'"),
    ("size", "its input 'x' has 3 values, the network 16 inputs"),
    ("steps", "--steps must be at most 100 with this --reference"),
])
def test_bad_reference_is_one_line_exit_2(bad, match, tmp_path, capsys):
    name = "norse_lifbox"
    ref = tmp_path / "r.npz"
    extra = []
    if bad == "garbage":
        ref.write_bytes(b"not a zip")
    elif bad == "nospikes":
        np.savez(ref, x=np.zeros(16, dtype=int))
    elif bad == "size":
        np.savez(ref, x=np.zeros(3, dtype=int), spikes0=np.zeros((10, 12)))
    elif bad == "steps":
        ref = HERE / f"{name}.npz"
        extra = ["--steps", "101"]
    code = main(["import-nir", str(HERE / f"{name}.nir"), *FIXTURES[name]["options"],
                 "--reference", str(ref), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(match, err), err
