"""``lifgate.config``: validation, derived values, serialisation and the register encoding."""

import json

import numpy as np
import pytest

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
    pack_params,
    param_layout,
    unpack_params,
)


def test_defaults_are_valid():
    cfg = Config()
    assert len(cfg.params) == cfg.shape.groups == 64
    assert cfg.shape.v_width == 16 and cfg.shape.decay_frac == 16
    assert cfg.noise == NoiseParams(seed=1, gain=0)


def test_derived_values():
    s = ArrayShape(neurons=48, lanes=4, groups=6, v_width=12, i_width=10, ref_width=5,
                   decay_frac=14)
    assert s.depth == 12 and s.group_size == 8
    assert s.v_range == (-2048, 2047) and s.i_range == (-512, 511)
    assert s.t_ref_max == 31 and s.leak_width == 14
    assert s.leak_range(LeakMode.SHIFT) == (0, 12)
    assert s.leak_range(LeakMode.MULT) == (0, (1 << 14) - 1)
    assert s.leak_range(LeakMode.CONST) == (-2048, 2047)
    cfg = Config(shape=s, params=tuple(NeuronParams(v_th=g + 1) for g in range(6)))
    assert [cfg.group_of(n) for n in (0, 7, 8, 47)] == [0, 0, 1, 5]
    assert cfg.neuron_params(47).v_th == 6


def test_leak_modes_normalised():
    assert ArrayShape(leak_modes="mult").leak_modes == (LeakMode.MULT,)
    s = ArrayShape(leak_modes=["const", LeakMode.SHIFT, 1, "SHIFT"])
    assert s.leak_modes == (LeakMode.SHIFT, LeakMode.MULT, LeakMode.CONST)
    with pytest.raises(ConfigError, match="leak_modes.*shift, mult, const"):
        ArrayShape(leak_modes=["bogus"])


def test_enums_from_names_and_numbers():
    p = NeuronParams(leak_mode="Mult", reset_mode=1, leak=5)
    assert p.leak_mode == LeakMode.MULT and p.reset_mode == ResetMode.SUBTRACT
    with pytest.raises(ConfigError, match="'leak_mode' must be one of shift, mult, const"):
        NeuronParams(leak_mode="exp")
    with pytest.raises(ConfigError,
                       match="'reset_mode' must be one of value, subtract, subtract_after_leak"):
        NeuronParams(reset_mode=7)


@pytest.mark.parametrize("value", [1.5, 2.0, "3", None, True])
def test_non_integers_rejected(value):
    with pytest.raises(ConfigError, match="'v_th' must be an integer"):
        NeuronParams(v_th=value)


def test_numpy_integers_accepted():
    p = NeuronParams(v_th=np.int64(100), bias=np.int32(-3))
    assert Config(params=(p,)).params[0].v_th == 100
    assert type(Config(shape=ArrayShape(v_width=np.int64(12))).shape.v_width) in (int, np.int64)


@pytest.mark.parametrize("field,bad", [
    ("v_th", 1 << 15), ("v_reset", -(1 << 15) - 1), ("v_rest", 40000), ("v_init", -40000),
    ("bias", 1 << 15), ("t_ref", 256), ("t_ref", -1),
])
def test_param_ranges_name_the_field(field, bad):
    with pytest.raises(ConfigError, match=rf"{field}' must be an integer in \["):
        Config(params=(NeuronParams(**{field: bad}),))


def test_leak_range_per_mode():
    with pytest.raises(ConfigError, match=r"leak \(shift mode\).*\[0, 16\]"):
        Config(params=(NeuronParams(leak_mode="shift", leak=17),))
    with pytest.raises(ConfigError, match=r"leak \(mult mode\).*\[0, 65535\]"):
        Config(params=(NeuronParams(leak_mode="mult", leak=65536),))
    Config(params=(NeuronParams(leak_mode="const", leak=-5),))  # signed: fine
    with pytest.raises(ConfigError, match="leak_mode.*supports"):
        Config(shape=ArrayShape(leak_modes=("shift",)),
               params=(NeuronParams(leak_mode="mult", leak=1),))


def test_params_per_group():
    shape = ArrayShape(neurons=8, lanes=2, groups=4)
    assert len(Config(shape=shape, params=NeuronParams()).params) == 4
    with pytest.raises(ConfigError, match="1 or groups"):
        Config(shape=shape, params=(NeuronParams(), NeuronParams()))
    bad = [NeuronParams()] * 3 + [NeuronParams(v_th=1 << 20)]
    with pytest.raises(ConfigError, match=r"params\[3\]\.v_th"):
        Config(shape=shape, params=bad)
    with pytest.raises(ConfigError, match=r"'params\[0\]' must be a NeuronParams"):
        Config(shape=ArrayShape(groups=1), params=({"v_th": 1},))


def test_noise_ranges():
    with pytest.raises(ConfigError, match="noise.seed"):
        NoiseParams(seed=1 << 32)
    with pytest.raises(ConfigError, match="noise.gain"):
        NoiseParams(gain=-1)
    with pytest.raises(ConfigError, match="'noise' must be a NoiseParams"):
        Config(noise={"gain": 1})
    with pytest.raises(ConfigError, match="'shape' must be an ArrayShape"):
        Config(shape="small")


def test_replace_revalidates():
    cfg = Config()
    assert cfg.replace(noise=NoiseParams(gain=5)).noise.gain == 5
    with pytest.raises(ConfigError, match="v_th"):
        cfg.replace(shape=ArrayShape(v_width=8))  # default v_th 1024 no longer fits


def test_dict_form():
    shape = ArrayShape(neurons=8, lanes=2, groups=2)
    same = Config(shape=shape, params=NeuronParams(v_th=7))
    d = same.to_dict()
    assert len(d["params"]) == 1 and d["params"][0]["leak_mode"] == "shift"
    assert d["shape"]["leak_modes"] == ["shift", "mult", "const"]
    diff = Config(shape=shape, params=(NeuronParams(v_th=7), NeuronParams(v_th=8)))
    assert len(diff.to_dict()["params"]) == 2
    assert Config.from_dict(d) == same and Config.from_dict(diff.to_dict()) == diff
    # a single params table is accepted too (TOML's natural form)
    assert Config.from_dict({**d, "params": d["params"][0]}) == same
    assert json.loads(same.to_json()) == d


@pytest.mark.parametrize("data,match", [
    ({"shape": {}, "extra": {}}, "unknown configuration section"),
    ({"shape": {"width": 3}}, r"unknown parameter\(s\) \['width'\] in 'shape'"),
    ({"params": [{"v_th": 1, "tau": 2}]}, r"in 'params\[0\]'"),
    ({"noise": 3}, "section 'noise' must be a mapping"),
    ([1, 2], "must be a mapping"),
])
def test_from_dict_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_dict(data)


def test_text_errors():
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json("{")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml("[shape\n")


def test_files(tmp_path):
    cfg = Config(shape=ArrayShape(neurons=16, lanes=4, groups=2),
                 params=(NeuronParams(v_th=5, leak_mode="mult", leak=60000),
                         NeuronParams(v_th=-5, leak_mode="const", leak=-3,
                                      reset_mode="subtract")),
                 noise=NoiseParams(seed=0xDEADBEEF, gain=300))
    for name in ("a.json", "a.toml", "a.TOML"):
        cfg.save(tmp_path / name)
        assert Config.load(tmp_path / name) == cfg
    assert (tmp_path / "a.toml").read_text().startswith("[shape]")
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        Config.load(tmp_path / "missing.json")


def test_param_layout():
    s = ArrayShape(v_width=10, ref_width=3, decay_frac=12)
    layout = param_layout(s)
    assert [n for n, _ in layout] == ["v_th", "v_reset", "v_rest", "v_init", "bias", "leak",
                                      "t_ref", "leak_mode", "reset_mode"]
    assert dict(layout)["leak"] == 12 and dict(layout)["t_ref"] == 3
    assert sum(w for _, w in layout) == 5 * 10 + 12 + 3 + 2 + 1  # reset_mode: 1 bit
    after = ArrayShape(v_width=10, ref_width=3, decay_frac=12, reset_modes=list(ResetMode))
    assert param_layout(after) == layout[:-1] + [("reset_mode", 2)]


def test_pack_known_word():
    s = ArrayShape(v_width=8, ref_width=4, decay_frac=8, neurons=4, lanes=1, groups=1)
    p = NeuronParams(v_th=-1, v_reset=2, v_rest=-128, v_init=127, bias=1, leak_mode="const",
                     leak=-2, reset_mode="subtract", t_ref=9)
    word = pack_params(s, p)
    expect = (0xFF | 2 << 8 | 0x80 << 16 | 0x7F << 24 | 1 << 32 | 0xFE << 40 | 9 << 48
              | 2 << 52 | 1 << 54)
    assert word == expect
    assert unpack_params(s, word) == p
