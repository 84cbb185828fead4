"""The fused golden kernel: ``docs/numerics.md`` in one compiled pass per step, multi-core.

:func:`lifgate.golden.fixed.simulate` is the readable numpy reference; it makes a dozen passes
over ``[N]`` temporaries per step and returns the full ``[T, N]`` record. This module computes
the same step with numba (``@njit(parallel=True)``): each thread owns blocks of ``BLOCK``
neurons of one configuration and runs them through all steps (or a chunk of steps when the
noise is on) with the block's state copied into local arrays (it stays in the L1 cache), its
group segments and parameters found once per block, keeping no temporaries, and records only
what was asked for (``lifgate.golden.record``; spikes are packed inside the kernel).
It is bit-exact with the reference (``tests/test_golden_fast.py``, and 10,000 fuzzed
configurations in ``bench/bench_golden_exact.py``). Use it through
``simulate(..., engine="fused")``; the regression keeps the numpy model as its reference.

Arithmetic is in the work dtype that ``fixed._work_dtype`` picks for the numpy reference:
int32 when every intermediate of a step provably fits (``v_width``, ``i_width`` <= 24 and, with
a MULT leak, ``decay_frac >= 8`` and ``v_width + 1 + max(8, decay_frac - 8) <= 30``; the
product ``d * D`` is computed as ``d * Dh`` and ``d * Dl`` with ``D = 256 Dh + Dl``, and
``floor((256 a + b) / 2^F) = floor((a + floor(b / 256)) / 2^(F - 8))``), else int64, where
every intermediate fits (``|d * D| < 2^(W + 1 + F) <= 2^57``; the same two-part product with
``min(8, F)`` low bits, :func:`tables`). The int32 path
runs twice as many AVX-512 lanes. The operations are LLVM integer instructions in that dtype
(``_add`` ... ``_sra``): numba would widen int32 arithmetic to int64.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["BLOCK", "REC_COUNTS", "REC_FULL", "REC_PROBES", "REC_SPIKES", "UPDATE", "noise_chunk",
           "run"]

BLOCK = 512  # neurons per work item: a multiple of 8 (a packed spike byte has one writer)

_PACK = np.uint64(0x8040201008040201)

REC_FULL, REC_SPIKES, REC_COUNTS, REC_PROBES = 0, 1, 2, 3

# columns of the per-group parameter table: the configuration's, then the constants derived
# from them (SHIFT: the rounding half; MULT: the factor's high and low byte parts)
P_VTH, P_VRESET, P_VREST, P_BIAS, P_LEAK, P_TREF, P_LMODE, P_RMODE = range(8)
P_HALF, P_DH, P_DL, P_NCOL = range(8, 12)
# the run's constants, in the work dtype (``lim``)
# (L_EIGHT: the low part's bits, min(8, decay_frac); L_FSH: decay_frac minus those)
L_VMIN, L_VMAX, L_FRAC, L_ZERO, L_ONE, L_EIGHT, L_ROUND, L_FSH, L_NCOL = range(9)

# One run at a time: the kernels already use every core, and numba's fallback threading layer
# (workqueue, when neither OpenMP nor TBB is found) aborts on concurrent parallel launches.
_LOCK = threading.Lock()

_JIT = {"parallel": True, "cache": True, "nogil": True, "error_model": "numpy"}


@nb.njit(**_JIT)
def noise_chunk(state, gains, depth, lanes, n, t_count, z):  # pragma: no cover (compiled)
    """Advance every lane's xorshift32 ``t_count * depth`` times, writing ``z`` [t_count, B*N].

    ``state`` (int64 holding uint32 values, [B * lanes]) is updated in place; ``gains`` [B].
    Lane ``p`` of configuration ``b`` updates neuron ``a * lanes + p`` at its ``a``-th advance.
    """
    nlanes = state.shape[0]
    for q in nb.prange(nlanes):
        b = q // lanes
        p = q - b * lanes
        x = state[q]
        g = gains[b]
        base = b * n + p
        for tt in range(t_count):
            for a in range(depth):
                x = (x ^ (x << 13)) & 0xFFFFFFFF
                x = x ^ (x >> 17)
                x = (x ^ (x << 5)) & 0xFFFFFFFF
                c = (x & 255) + ((x >> 8) & 255) + ((x >> 16) & 255) + (x >> 24) - 510
                z[tt, base + a * lanes] = (c * g) >> 8
        state[q] = x


def _int_op(name):
    """An integer ``name`` (LLVM ``add``, ``sub``, ``mul``, ``ashr``) of two values of one type,
    in that type: numba widens int32 arithmetic to int64, and so would the vectorised loop."""

    @intrinsic
    def op(typingctx, a, b):
        if not (isinstance(a, types.Integer) and a == b):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])

        return a(a, b), codegen

    return op


_add, _sub, _mul, _sra = (_int_op(x) for x in ("add", "sub", "mul", "ashr"))


@nb.njit(inline="always", nogil=True, error_model="numpy")
def _segment(v, r, row, lmode, t, cur, z, lim, rec,
             out_s, out_v, sbuf, counts, first, last):  # pragma: no cover (compiled)
    """One step of the neurons of one group segment; every array is a view of the segment.

    All arithmetic is in the state's dtype (int32 when ``fixed._work_dtype`` proves every
    intermediate fits, else int64), branch-free selects over 0-based views, so that LLVM
    vectorises the loop (16 lanes of AVX-512 in int32); ``lmode`` and ``rec`` are constants
    at each call site. The MULT product is computed in two parts (see :func:`tables`).
    """
    v_th, v_reset, v_rest = row[P_VTH], row[P_VRESET], row[P_VREST]
    bias, leak, t_ref = row[P_BIAS], row[P_LEAK], row[P_TREF]
    half, dh, dl = row[P_HALF], row[P_DH], row[P_DL]
    value = row[P_RMODE] == 0  # ResetMode.VALUE
    sub = row[P_RMODE] == 1  # SUBTRACT: v_th leaves before the leak
    after = row[P_RMODE] == 2  # SUBTRACT_AFTER_LEAK: v_th leaves in the integrate sum
    vmin, vmax = lim[L_VMIN], lim[L_VMAX]
    zero, one, eight = lim[L_ZERO], lim[L_ONE], lim[L_EIGHT]
    round_m, fsh = lim[L_ROUND], lim[L_FSH]
    use_cur = cur.shape[0] > 0
    use_z = z.shape[0] > 0
    for j in range(v.shape[0]):
        vj = v[j]
        rj = r[j]
        refr = rj > zero
        fire = (vj >= v_th) & (not refr)
        reset = value & (refr | fire)
        h = v_reset if reset else vj
        h = _sub(h, v_th) if (fire & sub) else h
        e = v_th if (fire & after) else zero
        r1 = _sub(rj, one) if refr else (t_ref if fire else zero)
        d = _sub(h, v_rest)
        if lmode == 0:
            x = _sub(h, _sra(_add(d, half), leak))
        elif lmode == 1:
            lo8 = _sra(_add(_mul(d, dl), round_m), eight)
            x = _add(v_rest, _sra(_add(_mul(d, dh), lo8), fsh))
        else:
            x = _sub(h, leak)
        x = _add(x, bias)
        if use_cur:
            x = _add(x, cur[j])
        if use_z:
            x = _add(x, z[j])
        x = _sub(x, e)
        x = _sub(h, e) if r1 > zero else x
        x = min(max(x, vmin), vmax)
        v[j] = x
        r[j] = r1
        if rec == 0:
            out_s[j] = fire
            out_v[j] = x
        elif rec == 1:
            sbuf[j] = fire
        elif rec == 2:
            counts[j] += fire
            last[j] = t if fire else last[j]
            first[j] = t if (fire & (first[j] < 0)) else first[j]


@nb.njit(inline="always", nogil=True, error_model="numpy")
def _step(lmode, t, lo, sv, sr, row, cc, zz, lim, rec, out_s, out_v, sbuf, counts,
          first, last):  # pragma: no cover (compiled)
    """One step of one segment (``lo`` its global index, ``sv``/``sr`` its local state)."""
    m = sv.shape[0]
    os = out_s[t, lo:lo + m] if rec == 0 else out_s[0, 0:0]
    ov = out_v[t, lo:lo + m] if rec == 0 else out_v[0, 0:0]
    if rec == 2:
        cn, fi, la = counts[lo:lo + m], first[lo:lo + m], last[lo:lo + m]
    else:
        cn, fi, la = counts[0:0], first[0:0], last[0:0]
    _segment(sv, sr, row, lmode, t, cc, zz, lim, rec, os, ov, sbuf, cn, fi, la)


@nb.njit(inline="always", nogil=True, error_model="numpy")
def _block(item, rec, v, r, params, gsize, n, cur, t0, t_count, z, lim,
           out_s, out_v, packed, counts, first, last, probes, pstart,
           probe_v):  # pragma: no cover (compiled)
    """All steps of one work item: BLOCK neurons of one configuration.

    The block's state is copied into local arrays once (it stays in the L1 cache for all
    steps: the neurons are independent), its group segments and their parameter rows are
    found once, and the state is written back at the end.
    """
    per = (n + BLOCK - 1) // BLOCK
    b = item // per
    blk = item - b * per
    lo = blk * BLOCK
    hi = min(lo + BLOCK, n)
    g0, g1 = lo // gsize, (hi - 1) // gsize
    bounds = np.empty(g1 - g0 + 2, np.int64)
    for g in range(g0, g1 + 1):
        bounds[g - g0] = max(lo, g * gsize) - lo
    bounds[g1 - g0 + 1] = hi - lo
    a0 = b * n + lo
    vb = v[a0:a0 + hi - lo].copy()
    rb = r[a0:a0 + hi - lo].copy()
    cur_rows = cur.shape[0]
    sbuf = np.zeros(BLOCK, np.uint8)
    for tt in range(t_count):
        t = t0 + tt
        crow = t if cur_rows > 1 else 0
        for s in range(g1 - g0 + 1):
            i, e = bounds[s], bounds[s + 1]
            row = params[b * (n // gsize) + g0 + s]
            lmode = row[P_LMODE]
            cc = cur[crow, a0 + i:a0 + e]  # empty when there is no input (cur is [1, 0])
            zz = z[tt, a0 + i:a0 + e] if z.shape[1] > 0 else z[0, 0:0]
            sv, sr, sb = vb[i:e], rb[i:e], sbuf[i:e]
            if lmode == 0:
                _step(0, t, a0 + i, sv, sr, row, cc, zz, lim, rec, out_s, out_v, sb, counts,
                      first, last)
            elif lmode == 1:
                _step(1, t, a0 + i, sv, sr, row, cc, zz, lim, rec, out_s, out_v, sb, counts,
                      first, last)
            else:
                _step(2, t, a0 + i, sv, sr, row, cc, zz, lim, rec, out_s, out_v, sb, counts,
                      first, last)
        if rec == 1:
            # eight 0/1 bytes (little-endian word) -> one byte, first neuron in bit 7: the
            # multiply moves byte q's bit to bit 63 - q, np.packbits' order
            words = sbuf.view(np.uint64)
            base = lo >> 3
            for k in range((hi - lo + 7) >> 3):
                packed[t, b, base + k] = np.uint8((words[k] * _PACK) >> np.uint64(56))
        elif rec == 3:
            for k in range(pstart[blk], pstart[blk + 1]):
                probe_v[t, b, k] = vb[probes[k] - lo]
    v[a0:a0 + hi - lo] = vb
    r[a0:a0 + hi - lo] = rb


# One compiled kernel per recording, so that the recording is a constant inside the loop.
# Arguments: see :func:`run`; ``out_*`` and the other recordings' arrays are dummies. Each
# compiles once per work dtype (int32, int64).

@nb.njit(**_JIT)
def update_full(v, r, params, gsize, n, cur, t0, t_count, z, lim, out_s, out_v,
                packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 0, v, r, params, gsize, n, cur, t0, t_count, z, lim,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_spikes(v, r, params, gsize, n, cur, t0, t_count, z, lim, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 1, v, r, params, gsize, n, cur, t0, t_count, z, lim,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_counts(v, r, params, gsize, n, cur, t0, t_count, z, lim, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 2, v, r, params, gsize, n, cur, t0, t_count, z, lim,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_probes(v, r, params, gsize, n, cur, t0, t_count, z, lim, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 3, v, r, params, gsize, n, cur, t0, t_count, z, lim,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


UPDATE = (update_full, update_spikes, update_counts, update_probes)


def tables(params, limits, dtype):
    """The parameter table with its derived columns, and the run's constants, in ``dtype``.

    The MULT product ``d * D`` is computed in two parts, ``D = 2^s Dh + Dl`` with
    ``s = min(8, decay_frac)``: ``floor((2^s a + b) / 2^F) = floor((a + floor(b / 2^s)) /
    2^(F - s))`` for any ``s <= F``. With int32 (``fixed._work_dtype`` then guarantees
    ``decay_frac >= 8``, so ``s = 8``) no partial exceeds ``2^(W + 1 + max(8, F - 8)) <= 2^30``;
    with int64 every partial fits anyway. One formula for both keeps one compiled loop per
    leak mode.

    Parameters
    ----------
    params : int64 array [B * G, 8]
        The configuration's columns (``P_VTH`` ... ``P_RMODE``).
    limits : (vmin, vmax, decay_frac)
    dtype : np.int32 or np.int64
        The work dtype; int32 only when ``fixed._work_dtype`` proved that every intermediate
        of a step fits.

    Members
    -------
    (returned tuple) table : dtype [B * G, P_NCOL]; lim : dtype [L_NCOL]
    """
    vmin, vmax, frac = limits
    p = np.asarray(params, np.int64)
    leak, lmode = p[:, P_LEAK], p[:, P_LMODE]
    shift = np.where(lmode == 0, leak, 0)
    half = (np.int64(1) << shift) >> 1
    lo_bits = min(8, frac)
    table = np.concatenate(
        [p, np.stack([half, leak >> lo_bits, leak & ((1 << lo_bits) - 1)], axis=1)], axis=1)
    lim = np.array([vmin, vmax, frac, 0, 1, lo_bits, 1 << (frac - 1), frac - lo_bits], np.int64)
    return np.ascontiguousarray(table.astype(dtype)), lim.astype(dtype)


def run(params, gsize, n, v, r, noise, steps, cur, limits, rec, probes, v_dtype):
    """Drive the compiled passes for ``steps`` steps; return the recordings.

    Parameters
    ----------
    params : int64 array [B * G, 8]
        Columns ``P_VTH`` to ``P_RMODE``, one row per group.
    gsize, n : int
        Neurons per group and per configuration.
    v, r : int64 arrays [B * N]
        State, updated in place.
    noise : None or (state int64 [B * lanes], gains int64 [B], depth, lanes)
        The generators (updated in place) when any gain is non-zero.
    cur : None or int64 array [1 or steps, B * N]
    limits : (vmin, vmax, decay_frac)
    rec : int
        One of REC_FULL, REC_SPIKES, REC_COUNTS, REC_PROBES.
    probes : int64 array [K]
        Sorted distinct local neuron indices (REC_PROBES).
    v_dtype : numpy dtype
        Of the recorded membranes, and the work dtype of the arithmetic: int32 when
        ``fixed._work_dtype`` proved that every intermediate fits, else int64.

    Members
    -------
    (returned dict) spikes, v : [T, B * N] (full); packed : uint8 [T, B, ceil(N / 8)];
    counts, first, last : int64 [B * N]; probe_v : [T, B, K].
    """
    total = v.shape[0]
    batch = total // n
    dt = np.dtype(v_dtype)
    table, lim = tables(params, limits, dt)
    vw, rw = v.astype(dt), r.astype(dt)
    # dummies for what is not recorded
    e1, e3 = np.zeros(1, np.int64), np.zeros((1, 1, 1), dt)
    out_s = np.zeros((steps, total), np.bool_) if rec == REC_FULL else np.zeros((1, 1), np.bool_)
    out_v = np.zeros((steps if rec == REC_FULL else 1, total if rec == REC_FULL else 1), dt)
    packed = np.zeros((steps if rec == REC_SPIKES else 1, batch, (n + 7) // 8), np.uint8)
    if rec == REC_COUNTS:
        counts, first, last = np.zeros(total, np.int64), np.full(total, -1), np.full(total, -1)
    else:
        counts = first = last = e1
    probe_v = np.zeros((steps, batch, probes.size), dt) if rec == REC_PROBES else e3
    edges = np.arange(0, (n + BLOCK - 1) // BLOCK + 1) * BLOCK
    pstart = np.searchsorted(probes, edges).astype(np.int64)
    cur2 = np.zeros((1, 0), dt) if cur is None else np.ascontiguousarray(cur, dt)
    if noise is None:
        chunk, z = max(steps, 1), np.zeros((1, 0), dt)
    else:
        state, gains, depth, lanes = noise
        chunk = max(1, min(steps, (1 << 21) // max(total, 1)))
        z = np.empty((chunk, total), dt)
    with _LOCK:
        for t0 in range(0, steps, chunk):
            count = min(chunk, steps - t0)
            if noise is not None:
                noise_chunk(state, gains, depth, lanes, n, count, z)
            UPDATE[rec](vw, rw, table, gsize, n, cur2, t0, count, z, lim,
                        out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)
    v[:] = vw
    r[:] = rw
    out = {}
    if rec == REC_FULL:
        out["spikes"], out["v"] = out_s, out_v
    elif rec == REC_SPIKES:
        out["packed"] = packed
    elif rec == REC_COUNTS:
        out["counts"], out["first"], out["last"] = counts, first, last
    else:
        out["probe_v"] = probe_v
    return out
