"""``lifgate generate`` / ``generate_verilog``: determinism, header, lint, errors, docs."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lifgate.hdl.array import addr_width, group_width, lif_signature
from lifgate.hdl.dsp import simulation_models
from lifgate.hdl.verilog import WAIVERS, LintError, generate_verilog, lint, port_list

from lifgate.app.cli import main
from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, param_layout

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(neurons=12, lanes=3, groups=4, v_width=10, i_width=8, ref_width=3, decay_frac=8)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "lifgate.app.cli", "generate", *args],
        cwd=cwd, capture_output=True, text=True,
    )


def test_generate_is_byte_identical(tmp_path):
    """Twice in separate processes, from different directories, and once in-process."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    args = ["--neurons", "12", "--lanes", "3", "--groups", "4", "--width", "10"]
    for d in ("a", "b"):
        r = _cli(*args, "-o", "out.v", cwd=tmp_path / d)
        assert r.returncode == 0, r.stderr
    first = (tmp_path / "a" / "out.v").read_bytes()
    assert first == (tmp_path / "b" / "out.v").read_bytes()
    shape = ArrayShape(neurons=12, lanes=3, groups=4, v_width=10)
    assert generate_verilog(shape).encode() == first
    text = first.decode()
    # Nothing that depends on where or when it was made.
    for bad in (str(ROOT), str(tmp_path), os.path.expanduser("~"), "src = "):
        assert bad not in text
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b|\b\d\d:\d\d:\d\d\b", text)


@pytest.mark.parametrize("membrane,noise", [(True, True), (False, False)])
def test_header_lists_shape_and_ports(membrane, noise):
    shape = ArrayShape(**SMALL)
    text = generate_verilog(shape, membrane=membrane, noise=noise)
    header = text.split("*/", 1)[0]
    assert "module lif_array(" in text
    for name, value in [("neurons", 12), ("lanes", 3), ("groups", 4), ("v_width", 10),
                        ("i_width", 8), ("ref_width", 3), ("decay_frac", 8),
                        ("step_width", 16), ("leak_modes", "shift, mult, const"),
                        ("membrane", "yes" if membrane else "no"),
                        ("noise", "yes" if noise else "no")]:
        assert re.search(rf"^//\s+{name}\s+= {re.escape(str(value))}$", header, re.M), name
    # Every port of the module is in the header with its direction and width, and vice versa.
    listed = re.findall(r"^//\s+(input|output)\s+(?:\[(\d+):0\])?\s+(\w+)$", header, re.M)
    listed = [(d, int(w) + 1 if w else 1, n) for d, w, n in listed]
    assert listed == port_list(text, lif_signature(shape, membrane=membrane, noise=noise))
    widths = {n: w for _, w, n in listed}
    assert widths["param_group"] == group_width(shape)
    assert widths["param_data"] == sum(w for _, w in param_layout(shape))
    assert widths["i_stream__payload"] == 3 * 8
    assert widths["o_stream__payload"] == 16 + addr_width(shape) + 3 + (3 * 10 if membrane else 0)
    assert ("noise_seed" in widths) == noise


def test_ports_match_docs():
    """docs/hardware.md lists exactly the ports the generated Verilog has."""
    doc = (ROOT / "docs" / "hardware.md").read_text()
    table = doc.split("## Ports", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \| (in|out) \|", table, re.M)
    shape = ArrayShape(**SMALL)
    text = generate_verilog(shape)
    direction = {"input": "in", "output": "out"}
    generated = [(n, direction[d]) for d, _, n in port_list(text, lif_signature(shape))]
    assert documented == generated


@pytest.mark.parametrize("shape_kw,membrane,noise", [
    (SMALL, True, True),
    (dict(neurons=4, lanes=4, groups=1, v_width=6, i_width=3, ref_width=1, decay_frac=2,
          leak_modes=("const",), step_width=8), False, False),
    (dict(neurons=8, lanes=2, groups=8, leak_modes=("mult", "shift")), True, False),
])
def test_lint_passes_with_waivers(tmp_path, shape_kw, membrane, noise):
    path = tmp_path / "lif_array.v"
    path.write_text(generate_verilog(ArrayShape(**shape_kw), membrane=membrane, noise=noise))
    lint(path)


def test_lint_passes_compact_and_replicated_enable(tmp_path):
    """The structural variants (state memories sliced at D = 512) lint clean too."""
    shape = ArrayShape(neurons=1024, lanes=2, groups=2, v_width=16, i_width=8)
    path = tmp_path / "lif_array.v"
    path.write_text(generate_verilog(shape, pipeline="compact", lanes_per_enable=1))
    lint(path)


def test_lint_passes_ecp5_multiplier(tmp_path):
    """The ECP5 variant (MULT18X18D instances) lints clean with lifgate's model of the
    primitive, which is what Icarus and Verilator simulate it with."""
    shape = ArrayShape(neurons=16, lanes=2, groups=2, v_width=16, i_width=8)
    text = generate_verilog(shape, multiplier="ecp5")
    assert text.count("MULT18X18D ") == 4  # leak and noise multipliers of 2 lanes
    path = tmp_path / "lif_array.v"
    path.write_text(text)
    models = tmp_path / "primitives.v"
    models.write_text(simulation_models(text))
    lint(path, extra_args=[str(models)])


def test_lint_passes_ecp5_memory(tmp_path):
    """The ECP5 memory variant (DP16KD instances with their output register) lints clean with
    lifgate's model of the primitive."""
    shape = ArrayShape(neurons=16, lanes=2, groups=2, v_width=16, i_width=8)
    text = generate_verilog(shape, multiplier="ecp5", memory="ecp5", lanes_per_enable=1)
    assert text.count("DP16KD #(") == 4  # v and r memories of 2 lanes, one block each
    assert '.REGMODE_B("OUTREG")' in text
    path = tmp_path / "lif_array.v"
    path.write_text(text)
    models = tmp_path / "primitives.v"
    models.write_text(simulation_models(text))
    lint(path, extra_args=[str(models)])


def test_ecp5_memory_limits():
    """DP16KD blocks hold at most 16384 words, and their output register is the deep
    pipeline's stage-1 register: errors name the parameter before anything is built."""
    shape = ArrayShape(neurons=2 * 16385, lanes=2, groups=1, v_width=16, i_width=8)
    with pytest.raises(ConfigError, match="'neurons' / 'lanes' must be at most 16384, not 16385"):
        generate_verilog(shape, memory="ecp5")
    generate_verilog(dataclasses.replace(shape, neurons=2 * 16384), memory="ecp5", noise=False)
    small = dataclasses.replace(shape, neurons=16)
    with pytest.raises(ConfigError, match="parameter 'pipeline' must be 'deep'"):
        generate_verilog(small, memory="ecp5", pipeline="compact")
    with pytest.raises(ValueError, match="Memory must be one of 'inferred', 'ecp5', not 'bram'"):
        generate_verilog(small, memory="bram")


def test_ecp5_multiplier_rejects_wide_membrane():
    """The 18-bit operand of a MULT18X18D takes x = h - v_rest only up to v_width 16."""
    shape = ArrayShape(neurons=16, lanes=2, groups=1, v_width=20, i_width=8)
    with pytest.raises(ConfigError, match="'v_width' must be at most 16"):
        generate_verilog(shape, multiplier="ecp5")
    # Without the MULT leak there is only the noise multiplier, which always fits.
    generate_verilog(dataclasses.replace(shape, leak_modes=("shift",)), multiplier="ecp5")


def test_generate_options_in_header(tmp_path, capsys):
    out = tmp_path / "out.v"
    assert main(["generate", "--neurons", "8", "--lanes", "2", "--groups", "2",
                 "--pipeline", "compact", "--lanes-per-enable", "1", "--multiplier", "ecp5",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert "//   pipeline    = compact" in text and "pipeline latency L = 8 clocks" in text
    assert "//   lanes_per_enable = 1" in text
    assert "//   multiplier  = ecp5" in text and "MULT18X18D " in text
    assert "//   memory      = inferred" in text and "DP16KD" not in text
    assert main(["generate", "--neurons", "8", "--lanes", "2", "--groups", "1",
                 "--memory", "ecp5", "-o", str(out)]) == 0
    text = out.read_text()
    assert "//   memory      = ecp5" in text and text.count("DP16KD #(") == 4


def test_lint_reports_without_waivers(tmp_path):
    """The lint check can fail: without the waivers Verilator complains about this output."""
    path = tmp_path / "lif_array.v"
    path.write_text(generate_verilog(ArrayShape(**SMALL)))
    with pytest.raises(LintError, match="%Warning"):
        lint(path, waivers=None)


def test_every_waiver_says_why():
    lines = WAIVERS.read_text().splitlines()
    assert lines[0] == "`verilator_config"
    rules = [i for i, line in enumerate(lines) if line.startswith("lint_off")]
    assert rules
    for i in rules:
        assert lines[i - 1].startswith("//") and len(lines[i - 1]) > 20, lines[i]
        assert "-rule" in lines[i], "no blanket waivers: every entry names its rule"


@pytest.mark.parametrize("args,needle", [
    (["--neurons", "15", "--lanes", "4"], "'neurons'"),
    (["--width", "3"], "'v_width'"),
    (["--groups", "5", "--neurons", "16"], "'groups'"),
    (["--lanes", "65"], "'lanes'"),
    (["--leak-modes", "shift,bogus"], "'leak_modes'"),
    (["--config", "missing.json"], "missing.json"),
    (["--lanes", "4", "--lanes-per-enable", "5"], "--lanes-per-enable"),
])
def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "out.v"
    assert main(["generate", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifgate generate: error:") and needle in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_config_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"shape": {"neurons": 10, "lanes": 4}}')
    out = tmp_path / "out.v"
    assert main(["generate", "--config", str(bad), "-o", str(out)]) == 2
    assert "'neurons'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_config_file_and_overrides(tmp_path, capsys, suffix):
    shape = ArrayShape(neurons=16, lanes=4, groups=2, v_width=12, leak_modes=("shift",))
    cfg = Config(shape=shape, params=NeuronParams(v_th=100, leak=2))
    path = tmp_path / f"cfg{suffix}"
    cfg.save(path)
    out = tmp_path / "out.v"
    assert main(["generate", "--config", str(path), "--lanes", "8", "--no-membrane",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert text == generate_verilog(dataclasses.replace(shape, lanes=8), membrane=False)
    assert re.search(r"^//\s+lanes\s+= 8$", text, re.M)
    assert "wrote" in capsys.readouterr().out


def test_generate_verilog_refuses_a_non_configuration_with_config_error():
    """One error type for user mistakes (issue 15, Build 7): was TypeError."""
    with pytest.raises(ConfigError, match="parameter 'config' must be a Config or an ArrayShape"):
        generate_verilog({"neurons": 64})
