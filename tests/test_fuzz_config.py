"""Fuzzing the configuration validation (hypothesis, 10,000 configurations per run).

Each example is a raw configuration mapping, as ``lifgate`` reads it from JSON/TOML
(:meth:`Config.from_dict`): a shape from a small catalogue of legal shapes, or one of them with
one field made illegal; one or ``G`` parameter sets whose fields are drawn around and beyond
their legal ranges (and of wrong types); noise settings likewise. An independent oracle, written
from the range tables of ``docs/numerics.md``, says which parameters are illegal. Checked:

* the configuration is accepted iff the oracle finds nothing illegal;
* every rejection is a :class:`ConfigError` (never another exception) whose message names a
  parameter the oracle also finds illegal;
* an accepted parameter set survives ``unpack_params(pack_params(p)) == p``.

Verilog depends only on the shape, so the shape space is kept to :data:`SHAPES` (illegal
mutations never produce a new legal shape): ``test_shape_compiles`` generates each distinct
shape once and compiles it with ``iverilog -g2005``. Both tests assert that every accepted
shape is one of those.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    ResetMode,
    pack_params,
    unpack_params,
)

EXAMPLES = 10_000

#: The legal shapes of the fuzz run (every edge of every width, 1 and several lanes and groups,
#: every single leak mode and all of them). Small N keeps Verilog generation quick.
SHAPES = [
    dict(neurons=4, lanes=1, groups=1, v_width=4, i_width=2, ref_width=1, decay_frac=1,
         leak_modes=["shift"], step_width=8,
         reset_modes=["value", "subtract"]),
    dict(neurons=6, lanes=3, groups=2, v_width=8, i_width=6, ref_width=3, decay_frac=6,
         leak_modes=["shift", "mult", "const"], step_width=8,
         reset_modes=["value", "subtract", "subtract_after_leak"]),
    dict(neurons=8, lanes=2, groups=8, v_width=16, i_width=16, ref_width=8, decay_frac=16,
         leak_modes=["mult"], step_width=16,
         reset_modes=["value", "subtract"]),
    dict(neurons=4, lanes=4, groups=4, v_width=32, i_width=32, ref_width=16, decay_frac=24,
         leak_modes=["const", "shift"], step_width=32,
         reset_modes=["value", "subtract"]),
    dict(neurons=12, lanes=4, groups=3, v_width=5, i_width=3, ref_width=2, decay_frac=4,
         leak_modes=["const"], step_width=9,
         reset_modes=["value", "subtract", "subtract_after_leak"]),
    dict(neurons=2, lanes=2, groups=1, v_width=12, i_width=12, ref_width=4, decay_frac=12,
         leak_modes=["shift", "mult"], step_width=12,
         reset_modes=["value", "subtract"]),
]
SHAPE_FIELDS = list(SHAPES[0])
_INT_RANGES = {"v_width": (4, 32), "i_width": (2, 32), "ref_width": (1, 16),
               "decay_frac": (1, 24), "step_width": (8, 32), "lanes": (1, 64),
               "neurons": (1, 1 << 20)}
_MODE_NAMES = {m.name.lower(): m for m in LeakMode}
_RESET_NAMES = {m.name.lower(): m for m in ResetMode}
PARAM_FIELDS = ("v_th", "v_reset", "v_rest", "v_init", "bias", "leak", "t_ref")

# Oracle (from docs/numerics.md, not from lifgate/config.py) ------------------------------------


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _int_in(x, lo, hi) -> bool:
    return _is_int(x) and lo <= int(x) <= hi


def _enum_value(x, names):
    if isinstance(x, str):
        return names.get(x.lower())
    if _is_int(x) and not isinstance(x, np.integer):
        for m in names.values():
            if int(x) == int(m):
                return m
    return None


def oracle(d: dict) -> set:
    """Names of the illegal parameters of the raw configuration ``d`` (empty: legal)."""
    bad = set()
    sh = d["shape"]
    for name, (lo, hi) in _INT_RANGES.items():
        if not _int_in(sh[name], lo, hi):
            bad.add(name)
    n, p, g = sh["neurons"], sh["lanes"], sh["groups"]
    if not bad & {"neurons", "lanes"} and n % p:
        bad.add("neurons")
    if "neurons" not in bad and not (_int_in(g, 1, n) and n % g == 0):
        bad.add("groups")
    modes = sh["leak_modes"]
    if isinstance(modes, (str, int)):
        modes = [modes]
    modes = ([_enum_value(m, _MODE_NAMES) for m in modes]
             if isinstance(modes, (list, tuple)) else [])
    if not modes or None in modes:
        bad.add("leak_modes")
    resets = sh["reset_modes"]
    if isinstance(resets, (str, int)):
        resets = [resets]
    resets = ([_enum_value(m, _RESET_NAMES) for m in resets]
              if isinstance(resets, (list, tuple)) else [])
    # VALUE and SUBTRACT are always built; SUBTRACT_AFTER_LEAK may be added
    if None in resets or not {ResetMode.VALUE, ResetMode.SUBTRACT} <= set(resets):
        bad.add("reset_modes")
    if bad:
        return bad  # the parameters cannot be judged against an illegal shape
    w, r, f = sh["v_width"], sh["ref_width"], sh["decay_frac"]
    vlo, vhi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    params = d["params"]
    if len(params) not in (1, g):
        bad.add("params")
    for ps in params:
        for name in ("v_th", "v_reset", "v_rest", "v_init", "bias"):
            if not _int_in(ps[name], vlo, vhi):
                bad.add(name)
        mode = _enum_value(ps["leak_mode"], _MODE_NAMES)
        if mode is None or mode not in modes:
            bad.add("leak_mode")
        if _enum_value(ps["reset_mode"], _RESET_NAMES) not in resets:
            bad.add("reset_mode")
        llo, lhi = {LeakMode.SHIFT: (0, w), LeakMode.MULT: (0, (1 << f) - 1)}.get(
            mode, (vlo, vhi))
        if not _int_in(ps["leak"], llo, lhi):
            bad.add("leak")
        if not _int_in(ps["t_ref"], 0, (1 << r) - 1):
            bad.add("t_ref")
    noise = d["noise"]
    if not _int_in(noise["seed"], 0, (1 << 32) - 1):
        bad.add("seed")
    if not _int_in(noise["gain"], 0, (1 << 16) - 1):
        bad.add("gain")
    return bad


def named_parameter(message: str) -> str:
    """The base name of the parameter a ConfigError message names."""
    m = re.search(r"parameter '([^']+)'", message)
    assert m, f"ConfigError names no parameter: {message!r}"
    name = m.group(1)
    name = re.sub(r"^params\[\d+\]\.", "", name)
    name = re.sub(r"^noise\.", "", name)
    name = re.sub(r" \(\w+ mode\)$", "", name)
    return name


# Strategies --------------------------------------------------------------------------------------

_JUNK = [None, "7", 1.0, 2.5, True, False, [], {}, float("nan")]


def _around(rnd: random.Random, lo: int, hi: int):
    """An integer in, at the edges of, just outside or far outside [lo, hi]; or junk."""
    k = rnd.randrange(5)
    if k == 0:
        return rnd.randint(lo, hi)
    if k == 1:
        return rnd.choice([lo, hi, lo - 1, hi + 1, lo + 1, hi - 1])
    if k == 2:
        return rnd.randint(-(1 << 41), 1 << 41)
    if k == 3:
        return np.int64(rnd.randint(lo, hi))
    return rnd.choice(_JUNK)


_ILLEGAL_SHAPE = {
    "v_width": [3, 33, 0, -4, 8.0, "8", None, True],
    "i_width": [1, 33, 0, 16.0, None],
    "ref_width": [0, 17, -1, 2.0, "x"],
    "decay_frac": [0, 25, 1.5, None],
    "step_width": [7, 33, 0, 16.0],
    "lanes": [0, 65, -1, 5, 7, 2.0],  # 5 and 7 divide none of the catalogue's N
    "neurons": [0, (1 << 20) + 1, -8, 8.0, None, "+1"],  # "+1": N + 1, not a multiple of P
    "groups": [0, 5, 7, 13, 25, -1, 1.0, None],
    "leak_modes": [[], ["foo"], ["shift", "foo"], "bogus", [7], None, [True]],
    "reset_modes": [[], ["value"], ["subtract_after_leak"], ["value", "subtract", "x"], "bogus",
                    None, [True], [0, 3]],
}
_MODE_CHOICES = [*LeakMode, "shift", "MULT", "const", 0, 1, 2, 3, "nope"]
_RESET_CHOICES = [*ResetMode, "value", "Subtract", "Subtract_After_Leak", 0, 1, 2, 3, "x"]


def make_raw_config(seed: int, shape_index: int, mutate: str | None, wild: bool) -> dict:
    """A raw configuration mapping from a seed (hypothesis draws only these four choices, which
    keeps an example cheap; a failure prints the mapping)."""
    rnd = random.Random(seed)
    shape = dict(SHAPES[shape_index])
    if mutate is not None:
        value = rnd.choice(_ILLEGAL_SHAPE[mutate])
        if isinstance(value, str) and value == "+1":
            value = shape["neurons"] + 1 if shape["lanes"] > 1 else 0
        shape[mutate] = value
    w = shape["v_width"] if _int_in(shape["v_width"], 4, 32) else 8
    r = shape["ref_width"] if _int_in(shape["ref_width"], 1, 16) else 3
    f = shape["decay_frac"] if _int_in(shape["decay_frac"], 1, 24) else 4
    vlo, vhi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    g = shape["groups"] if _is_int(shape["groups"]) and 1 <= shape["groups"] <= 16 else 1
    count = rnd.choice([1, g, g, g + 1, 2])
    modes = shape["leak_modes"]
    modes = modes if isinstance(modes, list) and modes else ["shift"]
    resets = shape["reset_modes"]
    resets = resets if isinstance(resets, list) and resets else ["value", "subtract"]

    def val(lo, hi):
        return _around(rnd, lo, hi) if wild else rnd.randint(lo, hi)

    params = []
    for _ in range(count):
        mode = rnd.choice(_MODE_CHOICES if wild else modes)
        m = mode if isinstance(mode, LeakMode) else _enum_value(mode, _MODE_NAMES)
        llo, lhi = {LeakMode.SHIFT: (0, w), LeakMode.MULT: (0, (1 << f) - 1)}.get(m, (vlo, vhi))
        params.append({
            "v_th": val(vlo, vhi), "v_reset": val(vlo, vhi), "v_rest": val(vlo, vhi),
            "v_init": val(vlo, vhi), "bias": val(vlo, vhi), "leak_mode": mode,
            "leak": val(llo, lhi), "t_ref": val(0, (1 << r) - 1),
            "reset_mode": rnd.choice(_RESET_CHOICES if wild else resets),
        })
    noise = {"seed": val(0, (1 << 32) - 1), "gain": val(0, 65535)}
    return {"shape": shape, "params": params, "noise": noise}


@st.composite
def raw_configs(draw):
    seed = draw(st.integers(0, (1 << 64) - 1))
    shape_index = draw(st.integers(0, len(SHAPES) - 1))
    # A quarter of the shapes get one illegal field; a third of the parameter sets are wild.
    mutate = draw(st.sampled_from(SHAPE_FIELDS)) if draw(st.integers(0, 3)) == 0 else None
    wild = draw(st.integers(0, 2)) == 0
    return make_raw_config(seed, shape_index, mutate, wild)


_seen_shapes: set = set()


def _shape_key(shape: ArrayShape):
    return (shape.neurons, shape.lanes, shape.groups, shape.v_width, shape.i_width,
            shape.ref_width, shape.decay_frac, tuple(shape.leak_modes), shape.step_width,
            tuple(shape.reset_modes))


_CATALOGUE = {_shape_key(ArrayShape(**{**s, "leak_modes": tuple(s["leak_modes"])}))
              for s in SHAPES}
_stats = {"accepted": 0, "rejected": 0}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw_configs())
def test_config_validation_fuzz(d):
    bad = oracle(d)
    try:
        cfg = Config.from_dict(d)
    except ConfigError as e:
        _stats["rejected"] += 1
        assert bad, f"legal configuration rejected: {e}\n{d}"
        name = named_parameter(str(e))
        assert name in bad, f"error names {name!r}, but the illegal ones are {bad}: {e}"
        return
    _stats["accepted"] += 1
    assert not bad, f"illegal parameter(s) {bad} accepted:\n{d}"
    key = _shape_key(cfg.shape)
    assert key in _CATALOGUE, f"an accepted shape outside the catalogue: {cfg.shape}"
    _seen_shapes.add(key)
    for p in cfg.params[:2]:
        assert unpack_params(cfg.shape, pack_params(cfg.shape, p)) == p


def test_fuzz_counts():
    """Runs after the fuzz test in the same process: both outcomes happened many times."""
    if _stats["accepted"] + _stats["rejected"] < EXAMPLES // 2:
        pytest.skip("the fuzz test did not run in this process (xdist split)")
    print(f"config fuzz: {_stats} distinct accepted shapes: {len(_seen_shapes)}")
    assert _stats["accepted"] > EXAMPLES // 10, _stats
    assert _stats["rejected"] > EXAMPLES // 10, _stats


def test_named_parameter_examples():
    """The message parser of this file, on messages config.py produces."""
    with pytest.raises(ConfigError) as e:
        ArrayShape(v_width=3)
    assert named_parameter(str(e.value)) == "v_width"
    with pytest.raises(ConfigError) as e:
        Config(shape=ArrayShape(neurons=4, lanes=1, groups=2, leak_modes=("mult",)),
               params=(NeuronParams(leak_mode="mult", leak=1 << 20),))
    assert named_parameter(str(e.value)) == "leak"


@pytest.mark.parametrize("index", range(len(SHAPES)))
def test_shape_compiles(index, tmp_path):
    """Every distinct accepted shape generates Verilog that Icarus compiles (-g2005)."""
    from lifgate.hdl.verilog import generate_verilog

    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog is not installed")
    s = SHAPES[index]
    shape = ArrayShape(**{**s, "leak_modes": tuple(s["leak_modes"])})
    src = tmp_path / "lif_array.v"
    src.write_text(generate_verilog(shape))
    proc = subprocess.run([iverilog, "-g2005", "-o", str(tmp_path / "a.vvp"), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"iverilog failed on {shape}:\n{proc.stderr}"
