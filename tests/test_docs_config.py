"""docs/configuration.md and examples/lif.toml against lifgate.config.

The key tables of the page must name exactly the keys ``Config.from_dict`` accepts, with the
defaults of the dataclasses and the numeric ranges the checks enforce; the example file and the
page's TOML and JSON blocks must load.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from lifgate.config import ArrayShape, Config, ConfigError, NeuronParams, NoiseParams

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "examples" / "lif.toml"
SECTIONS = {"shape": ArrayShape, "params": NeuronParams, "noise": NoiseParams}


def section_tables() -> dict[str, list[list[str]]]:
    """The key table under each ``## `[section]``` heading, cells without backticks."""
    out, section, lines = {}, None, PAGE.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"## `\[{1,2}(\w+)\]{1,2}`", line)
        if m:
            section = m.group(1)
        elif section and line.startswith("| key |") and lines[i + 1].startswith("|---"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip().replace("`", "") for c in row.strip().strip("|").split("|")])
            out[section] = rows
    return out


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", PAGE.read_text(), re.S | re.M)


def test_every_key_config_accepts_is_documented_with_its_default():
    tables = section_tables()
    assert set(tables) == set(SECTIONS) == set(Config().to_dict())
    defaults = Config(shape=ArrayShape(), params=(NeuronParams(),)).to_dict()
    for section, cls in SECTIONS.items():
        doc = {row[0]: row[1] for row in tables[section]}
        assert set(doc) == {f.name for f in dataclasses.fields(cls)}, section
        want = defaults[section][0] if section == "params" else defaults[section]
        for key, text in doc.items():
            assert tomllib.loads(f"x = {text}")["x"] == want[key], f"{section}.{key}"


def _numeric_range(text: str):
    m = re.fullmatch(r"(-?\d+) to (\d+)(?:\^(\d+))?(?: - (\d+))?", text)
    if not m:
        return None
    lo, base, exp, minus = m.groups()
    hi = int(base) ** int(exp) if exp else int(base)
    return int(lo), hi - int(minus or 0)


@pytest.mark.parametrize("section", ["shape", "noise", "params"])
def test_numeric_ranges_are_the_checked_ones(section):
    """Each plainly numeric range (``4 to 32``, ``0 to 2^16 - 1``): both ends are accepted and
    one beyond each end is refused with a ConfigError naming the key."""
    checked = 0
    shape = ArrayShape(neurons=64, lanes=1, groups=1)
    for key, _default, legal, _meaning in section_tables()[section]:
        ends = _numeric_range(legal)
        if ends is None:
            continue
        lo, hi = ends

        def make(value, key=key):
            if section == "shape":
                return ArrayShape(**{**dataclasses.asdict(shape), key: value})
            if section == "noise":
                return NoiseParams(**{key: value})
            return Config(shape=shape, params=(NeuronParams(**{key: value}),))

        for good in (lo, hi):
            make(good)
        for bad in (lo - 1, hi + 1):
            with pytest.raises(ConfigError, match=key):
                make(bad)
        checked += 1
    assert checked >= {"shape": 5, "noise": 2, "params": 0}[section]


def test_example_file_loads_and_round_trips(tmp_path):
    config = Config.load(EXAMPLE)
    assert config.shape.groups == len(tomllib.loads(EXAMPLE.read_text())["params"])
    # every key of the example is spelled out (an example that shows the whole format)
    raw = tomllib.loads(EXAMPLE.read_text())
    assert set(raw["shape"]) == {f.name for f in dataclasses.fields(ArrayShape)}
    for entry in raw["params"]:
        assert set(entry) == {f.name for f in dataclasses.fields(NeuronParams)}
    assert set(raw["noise"]) == {f.name for f in dataclasses.fields(NoiseParams)}
    out = tmp_path / "again.toml"
    config.save(out)
    assert Config.load(out) == config


def test_page_blocks_load_and_agree():
    (toml_text,) = code_blocks("toml")
    (json_text,) = code_blocks("json")
    a, b = Config.from_toml(toml_text), Config.from_json(json_text)
    assert a == b
    assert a.shape.neurons == 16 and a.params[0].v_th == 100


def test_readme_links_the_format_and_the_example():
    readme = (ROOT / "README.md").read_text()
    assert "docs/configuration.md" in readme
    assert "examples/lif.toml" in readme
