"""The shifted leak of ``hdl/array.py`` (stages 5 and 6) equals the golden step.

The lane computes ``t = (2 d) >> k`` then ``lk = h + ~(t >> 1) + ~t[0]`` (one barrel shift,
one adder with carry in); the golden model (``golden/fixed.py``, ``step_scalar``) computes
``h - ((d + half) >> k)`` for SHIFT and ``h - c`` for CONST. The derivation is in the comment
at the ``lk =`` line of ``hdl/array.py``; this checks it at the lane's own register widths (so
a too-narrow register would show): exhaustively for ``W = 4 .. 10``, by hypothesis up to 32.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def _wrap(x, width):
    """``x`` as a signed ``width``-bit register holds it (numpy int64 arrays or ints)."""
    half = 1 << (width - 1)
    return ((x + half) & ((1 << width) - 1)) - half


def _lane_leak(h, x, k, W):
    """The lane's SHIFT/CONST leak at its register widths: ``h6`` is ``W + 1`` bits, ``x5``
    ``W + 2``, ``t6`` ``W + 3``, the leak ``lk7`` ``W + 2``."""
    h6, x5 = _wrap(h, W + 1), _wrap(x, W + 2)
    t6 = _wrap(_wrap(x5 * 2, W + 3) >> k, W + 3)
    # Amaranth: ~(t6 >> 1) is -(t6 >> 1) - 1 (signed); ~t6[0] is the one-bit 1 - t6[0].
    return _wrap(h6 + (-(t6 >> 1) - 1) + (1 - (t6 & 1)), W + 2)


def _golden_shift(h, v_rest, k):
    d = h - v_rest
    return h - ((d + ((1 << k) >> 1)) >> k)


@pytest.mark.parametrize("W", range(4, 11))
def test_shift_leak_equals_golden_exhaustive(W):
    """Every ``h`` the lane can see (``v``, ``v_reset`` or ``v - v_th``: ``W + 1`` bits), every
    ``v_rest`` and every shift ``k = 0 .. W``."""
    vmin, vmax = -(1 << (W - 1)), (1 << (W - 1)) - 1
    h = np.arange(vmin - vmax, vmax - vmin + 1, dtype=np.int64)[:, None]
    v_rest = np.arange(vmin, vmax + 1, dtype=np.int64)[None, :]
    for k in range(W + 1):
        want = _golden_shift(h, v_rest, k)
        got = _lane_leak(h, h - v_rest, k, W)
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"W={W} k={k}: first mismatch at h, v_rest index {bad[0]}"


@pytest.mark.parametrize("W", range(4, 11))
def test_const_leak_and_hold_exhaustive(W):
    """CONST rides the same path with ``x = c`` and ``k = 0``; a held update has ``t = 0``."""
    vmin, vmax = -(1 << (W - 1)), (1 << (W - 1)) - 1
    h = np.arange(vmin - vmax, vmax - vmin + 1, dtype=np.int64)[:, None]
    c = np.arange(vmin, vmax + 1, dtype=np.int64)[None, :]
    assert np.array_equal(_lane_leak(h, c, 0, W), np.broadcast_to(h - c, (h.size, c.size)))
    assert np.array_equal(_lane_leak(h, 0, 0, W)[:, 0], h[:, 0])


@settings(max_examples=3000, deadline=None)
@given(data=st.data(), W=st.integers(4, 32))
def test_shift_leak_equals_golden_wide(data, W):
    vmin, vmax = -(1 << (W - 1)), (1 << (W - 1)) - 1
    h = data.draw(st.integers(vmin - vmax, vmax - vmin), label="h")
    v_rest = data.draw(st.integers(vmin, vmax), label="v_rest")
    k = data.draw(st.integers(0, W), label="k")
    assert _lane_leak(h, h - v_rest, k, W) == _golden_shift(h, v_rest, k)
    c = data.draw(st.integers(vmin, vmax), label="c")
    assert _lane_leak(h, c, 0, W) == h - c
