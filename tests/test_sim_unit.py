"""Simulator-free parts of the RTL regression: stimulus/beat codecs, the checker, the cases."""

from __future__ import annotations

import numpy as np
import pytest
from lifgate.golden.fixed import simulate
from lifgate.sim.beats import BeatFormatError, check_run, decode_beats, encode_stimulus
from lifgate.sim.cases import INPUT_KINDS, SimCase, directed_cases, random_cases
from lifgate.sim.runner import payload_layout

from lifgate.config import ArrayShape, Config, LeakMode, ResetMode

SHAPES = [
    ArrayShape(),
    ArrayShape(neurons=18, lanes=3, groups=3, v_width=6, i_width=4, ref_width=2, decay_frac=3,
               step_width=8),
    ArrayShape(neurons=16, lanes=2, groups=1, v_width=32, i_width=32, ref_width=16,
               decay_frac=24, step_width=32),
    ArrayShape(neurons=8, lanes=1, groups=2, v_width=4, i_width=2, ref_width=1, decay_frac=1,
               leak_modes=(LeakMode.SHIFT,)),
    # every reset mode built (SUBTRACT_AFTER_LEAK is a compile-time option, not in the default)
    ArrayShape(neurons=8, lanes=2, groups=2, reset_modes=tuple(ResetMode)),
]


@pytest.mark.parametrize(("lanes", "iw"), [(4, 16), (3, 5), (2, 32), (16, 16), (1, 2), (7, 13)])
def test_encode_stimulus_matches_python_ints(lanes, iw):
    rng = np.random.default_rng(lanes * 100 + iw)
    lo, hi = -(1 << (iw - 1)), (1 << (iw - 1)) - 1
    cur = rng.integers(lo, hi, size=(5, lanes * 3), endpoint=True)
    cur[0, 0], cur[0, -1] = lo, hi
    lines = encode_stimulus(cur, lanes, iw).decode().split("\n")
    assert lines[-1] == ""
    for b, line in enumerate(lines[:-1]):
        t, a = divmod(b, 3)
        want = sum((int(cur[t, a * lanes + p]) & ((1 << iw) - 1)) << (p * iw)
                   for p in range(lanes))
        assert len(line) == -(-lanes * iw // 4)
        assert int(line, 16) == want


def _beat_text(shape, membrane, rows):
    layout, width = payload_layout(shape, membrane)
    lines = []
    for step, addr, spikes, v in rows:
        x = (step << layout["step"][0]) | (addr << layout["addr"][0])
        for p in range(shape.lanes):
            x |= int(spikes[p]) << (layout["spikes"][0] + p)
            if membrane:
                w = shape.v_width
                x |= (int(v[p]) & ((1 << w) - 1)) << (layout["v"][0] + p * w)
        lines.append(format(x, f"0{-(-width // 4)}x"))
    return ("\n".join(lines) + "\n").encode(), layout, width


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
@pytest.mark.parametrize("membrane", [True, False])
def test_decode_beats_matches_python_ints(shape, membrane):
    rng = np.random.default_rng(1)
    lo, hi = shape.v_range
    rows = [(int(rng.integers(1 << shape.step_width)), int(rng.integers(shape.depth)),
             rng.integers(0, 2, shape.lanes), rng.integers(lo, hi, shape.lanes, endpoint=True))
            for _ in range(40)]
    text, layout, width = _beat_text(shape, membrane, rows)
    beats = decode_beats(text, layout, width, shape.lanes, shape.v_width)
    assert beats.step.tolist() == [r[0] for r in rows]
    assert beats.addr.tolist() == [r[1] for r in rows]
    assert (beats.spikes == np.array([r[2] for r in rows], dtype=bool)).all()
    if membrane:
        assert (beats.v == np.array([r[3] for r in rows])).all()
    else:
        assert beats.v is None


def test_decode_beats_reports_x_and_bad_lines():
    shape = ArrayShape()
    rows = [(i, i % 16, [0, 1, 0, 1], [1, -2, 3, -4]) for i in range(5)]
    text, layout, width = _beat_text(shape, True, rows)
    bad = bytearray(text)
    line = len(text) // 5
    bad[3 * line + 5] = ord("x")
    with pytest.raises(BeatFormatError, match="beat 3"):
        decode_beats(bytes(bad), layout, width, shape.lanes, shape.v_width)
    with pytest.raises(BeatFormatError, match="whole number"):
        decode_beats(text[:-1], layout, width, shape.lanes, shape.v_width)


def _golden_and_beats(config, steps, currents=None):
    shape = config.shape
    res = simulate(config, steps, currents)
    rows = []
    for t in range(steps):
        for a in range(shape.depth):
            sl = slice(a * shape.lanes, (a + 1) * shape.lanes)
            rows.append((t, a, res.spikes[t, sl], res.v[t, sl]))
    return res, rows


def test_check_run_finds_the_first_mismatch():
    shape = ArrayShape(neurons=12, lanes=3, groups=1)
    config = Config.from_dict({"shape": {"neurons": 12, "lanes": 3, "groups": 1},
                               "params": [{"v_th": 50, "bias": 7, "leak": 3}]})
    res, rows = _golden_and_beats(config, 6)
    text, layout, width = _beat_text(shape, True, rows)
    beats = decode_beats(text, layout, width, shape.lanes, shape.v_width)
    assert check_run(beats, res, lanes=3, step0=0, step_width=16) is None
    # Corrupt v of neuron 7 (address 2, lane 1) at step 4 and a spike later: report the first.
    beats.v[4 * 4 + 2, 1] += 1
    beats.spikes[5 * 4 + 0, 0] ^= True
    m = check_run(beats, res, lanes=3, step0=0, step_width=16, case="c", base_step=10)
    assert (m["case"], m["step"], m["neuron"], m["field"]) == ("c", 14, 7, "v")
    assert m["expected"]["v"] == res.v[4, 7] and m["got"]["v"] == res.v[4, 7] + 1
    assert m["mismatches"] == 2


def test_check_run_finds_order_and_count_errors():
    shape = ArrayShape(neurons=8, lanes=2, groups=1)
    config = Config(shape=shape)
    res, rows = _golden_and_beats(config, 3)
    swapped = rows[:5] + [rows[6], rows[5]] + rows[7:]
    text, layout, width = _beat_text(shape, True, swapped)
    m = check_run(decode_beats(text, layout, width, 2, 16), res, lanes=2, step0=0,
                  step_width=16)
    assert m["field"].startswith("beat order") and m["beat"] == 5
    text, layout, width = _beat_text(shape, True, rows[:-1])
    m = check_run(decode_beats(text, layout, width, 2, 16), res, lanes=2, step0=0,
                  step_width=16)
    assert m["field"] == "beat count" and (m["expected"], m["got"]) == (12, 11)
    # Step labels continue from step0 modulo 2**step_width.
    wrapped = [((250 + t) % 256, a, s, v) for t, a, s, v in rows]
    text, layout, width = _beat_text(ArrayShape(neurons=8, lanes=2, groups=1, step_width=8),
                                     True, wrapped)
    beats = decode_beats(text, payload_layout(ArrayShape(neurons=8, lanes=2, groups=1,
                                                         step_width=8), True)[0],
                         width, 2, 16)
    assert check_run(beats, res, lanes=2, step0=250, step_width=8) is None


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_random_cases_are_legal_seeded_and_cover_the_modes(shape):
    a = random_cases(shape, 123, 120)
    b = random_cases(shape, 123, 120)
    c = random_cases(shape, 124, 20)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    assert [x.to_dict() for x in a[:20]] != [x.to_dict() for x in c]
    # case k depends only on (seed, k): a shorter list is a prefix
    assert [x.to_dict() for x in random_cases(shape, 123, 5)] == [x.to_dict() for x in a[:5]]
    params = [p for x in a for p in x.config.params]
    assert {p.leak_mode for p in params} == set(shape.leak_modes)
    assert {p.reset_mode for p in params} == set(shape.reset_modes)
    assert {p.t_ref > 0 for p in params} == {True, False}
    assert {x.config.noise.gain > 0 for x in a} == {True, False}
    assert {None if x.input is None else x.input["kind"] for x in a} == {None, *INPUT_KINDS}
    assert any(x.ready_thresh for x in a) and any(x.gap_thresh for x in a)
    assert any(len(x.segments) > 1 for x in a) and any(s.clear for x in a for s in x.segments)
    for x in a:
        assert SimCase.from_dict(x.to_dict()) == x
        for i in range(len(x.segments)):
            cur = x.currents(i)
            if cur is not None:
                lo, hi = shape.i_range
                assert cur.shape == (x.segments[i].steps, shape.neurons)
                assert lo <= cur.min() and cur.max() <= hi


def test_random_cases_have_dynamics():
    """The random configurations spike, saturate and hold: worth simulating."""
    shape = ArrayShape()
    spiking = saturating = holding = 0
    cases = random_cases(shape, 7, 30)
    for x in cases:
        res = simulate(x.config, x.segments[0].steps, x.currents(0))
        spiking += bool(res.spikes.any())
        saturating += bool(np.isin(res.v, shape.v_range).any())
        holding += bool((res.spikes[:-1] & (res.v[1:] == res.v[:-1])).any())
    assert spiking >= len(cases) // 3
    assert saturating >= 3 and holding >= 3


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_directed_cases(shape):
    cases = directed_cases(shape)
    names = [c.name for c in cases]
    assert len(set(names)) == len(names)
    for prefix in ("sat_high", "sat_low", "threshold_equal", "negative_currents", "refractory_0",
                   "refractory_1", "clear_mid_sequence", "reset_mid_run", "backpressure",
                   "noise_seed"):
        assert any(n.startswith(prefix) for n in names), prefix
    for mode in shape.leak_modes:
        assert any(n.startswith(f"leak_{mode.name.lower()}") for n in names)
    assert any(n.startswith(f"refractory_{shape.t_ref_max}_") for n in names)
    assert {p.reset_mode for c in cases for p in c.config.params} == set(shape.reset_modes)
    for c in cases:
        assert SimCase.from_dict(c.to_dict()) == c
