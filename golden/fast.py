"""The fused golden kernel: ``docs/numerics.md`` in one compiled pass per step, multi-core.

:func:`lifgate.golden.fixed.simulate` is the readable numpy reference; it makes a dozen passes
over ``[N]`` temporaries per step and returns the full ``[T, N]`` record. This module computes
the same step with numba (``@njit(parallel=True)``): each thread owns blocks of 64 neurons of
one configuration and runs them through all steps (or a chunk of steps when the noise is on),
keeping no temporaries, and records only what was asked for (``lifgate.golden.record``).
It is bit-exact with the reference (``tests/test_golden_fast.py``, and 10,000 fuzzed
configurations in ``bench/bench_golden_exact.py``). Use it through
``simulate(..., engine="fused")``; the regression keeps the numpy model as its reference.

Arithmetic is in int64: every intermediate of a step fits (``|d * D| < 2^(W + 1 + F) <= 2^57``).
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

__all__ = ["BLOCK", "REC_COUNTS", "REC_FULL", "REC_PROBES", "REC_SPIKES", "UPDATE", "noise_chunk",
           "run"]

BLOCK = 512  # neurons per work item: a multiple of 8 (a packed spike byte has one writer)

_PACK = np.uint64(0x8040201008040201)

REC_FULL, REC_SPIKES, REC_COUNTS, REC_PROBES = 0, 1, 2, 3

# columns of the per-group parameter table
P_VTH, P_VRESET, P_VREST, P_BIAS, P_LEAK, P_TREF, P_LMODE, P_RMODE, P_NCOL = range(9)

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


@nb.njit(inline="always", nogil=True, error_model="numpy")
def _segment(v, r, row, lmode, t, cur, z, vmin, vmax, frac, rec,
             out_s, out_v, sbuf, counts, first, last):  # pragma: no cover (compiled)
    """One step of the neurons of one group segment; every array is a view of the segment.

    Branch-free selects over 0-based views so that LLVM vectorises the loop; ``lmode`` and
    ``rec`` are constants at each call site.
    """
    v_th, v_reset, v_rest = row[P_VTH], row[P_VRESET], row[P_VREST]
    bias, leak, t_ref = row[P_BIAS], row[P_LEAK], row[P_TREF]
    value = row[P_RMODE] == 0  # ResetMode.VALUE
    sub = row[P_RMODE] == 1  # SUBTRACT: v_th leaves before the leak
    after = row[P_RMODE] == 2  # SUBTRACT_AFTER_LEAK: v_th leaves in the integrate sum
    half = (np.int64(1) << leak) >> 1 if lmode == 0 else np.int64(0)
    round_m = np.int64(1) << (frac - 1)
    use_cur = cur.shape[0] > 0
    use_z = z.shape[0] > 0
    for j in range(v.shape[0]):
        vj = v[j]
        rj = r[j]
        refr = rj > 0
        fire = (vj >= v_th) & (not refr)
        reset = value & (refr | fire)
        h = v_reset if reset else vj
        h = h - v_th if (fire & sub) else h
        e = v_th if (fire & after) else np.int64(0)
        r1 = rj - 1 if refr else (t_ref if fire else np.int64(0))
        d = h - v_rest
        if lmode == 0:
            x = h - ((d + half) >> leak)
        elif lmode == 1:
            x = v_rest + ((d * leak + round_m) >> frac)
        else:
            x = h - leak
        x += bias
        if use_cur:
            x += cur[j]
        if use_z:
            x += z[j]
        x -= e
        x = h - e if r1 > 0 else x
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
def _block(item, rec, v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac,
           out_s, out_v, packed, counts, first, last, probes, pstart,
           probe_v):  # pragma: no cover (compiled)
    """All steps of one work item: BLOCK neurons of one configuration."""
    per = (n + BLOCK - 1) // BLOCK
    b = item // per
    blk = item - b * per
    lo = blk * BLOCK
    hi = min(lo + BLOCK, n)
    cur_rows = cur.shape[0]
    sbuf = np.zeros(BLOCK, np.uint8)
    for tt in range(t_count):
        t = t0 + tt
        crow = t if cur_rows > 1 else 0
        i = lo
        while i < hi:
            g = i // gsize
            e = min(hi, (g + 1) * gsize)
            row = params[b * (n // gsize) + g]
            lmode = row[P_LMODE]
            a0, a1 = b * n + i, b * n + e
            vv, rr = v[a0:a1], r[a0:a1]
            cc = cur[crow, a0:a1]  # empty when there is no input (cur is [1, 0])
            zz = z[tt, a0:a1] if z.shape[1] > 0 else z[0, 0:0]
            os = out_s[t, a0:a1] if rec == 0 else out_s[0, 0:0]
            ov = out_v[t, a0:a1] if rec == 0 else out_v[0, 0:0]
            sb = sbuf[i - lo:e - lo]
            if rec == 2:
                cn, fi, la = counts[a0:a1], first[a0:a1], last[a0:a1]
            else:
                cn, fi, la = counts[0:0], first[0:0], last[0:0]
            if lmode == 0:
                _segment(vv, rr, row, 0, t, cc, zz, vmin, vmax, frac, rec, os, ov, sb, cn, fi,
                         la)
            elif lmode == 1:
                _segment(vv, rr, row, 1, t, cc, zz, vmin, vmax, frac, rec, os, ov, sb, cn, fi,
                         la)
            else:
                _segment(vv, rr, row, 2, t, cc, zz, vmin, vmax, frac, rec, os, ov, sb, cn, fi,
                         la)
            i = e
        if rec == 1:
            # eight 0/1 bytes (little-endian word) -> one byte, first neuron in bit 7: the
            # multiply moves byte q's bit to bit 63 - q, np.packbits' order
            words = sbuf.view(np.uint64)
            base = lo >> 3
            for k in range((hi - lo + 7) >> 3):
                packed[t, b, base + k] = np.uint8((words[k] * _PACK) >> np.uint64(56))
        elif rec == 3:
            for k in range(pstart[blk], pstart[blk + 1]):
                probe_v[t, b, k] = v[b * n + probes[k]]


# One compiled kernel per recording, so that the recording is a constant inside the loop.
# Arguments: see :func:`run`; ``out_*`` and the other recordings' arrays are dummies.

@nb.njit(**_JIT)
def update_full(v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac, out_s, out_v,
                packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 0, v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_spikes(v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 1, v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_counts(v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 2, v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


@nb.njit(**_JIT)
def update_probes(v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac, out_s, out_v,
                  packed, counts, first, last, probes, pstart, probe_v):  # pragma: no cover
    for item in nb.prange(v.shape[0] // n * ((n + BLOCK - 1) // BLOCK)):
        _block(item, 3, v, r, params, gsize, n, cur, t0, t_count, z, vmin, vmax, frac,
               out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)


UPDATE = (update_full, update_spikes, update_counts, update_probes)


def run(params, gsize, n, v, r, noise, steps, cur, limits, rec, probes, v_dtype):
    """Drive the compiled passes for ``steps`` steps; return the recordings.

    Parameters
    ----------
    params : int64 array [B * G, P_NCOL]
    gsize, n : int
        Neurons per group and per configuration.
    v, r : int64 arrays [B * N]
        State, updated in place.
    noise : None or (state int64 [B * lanes], gains int64 [B], depth, lanes)
        The generators (updated in place) when any gain is non-zero.
    cur : None or int64 array [1 or steps, B * N]
    limits : (vmin, vmax, decay_frac)
    rec : int
        One of _PACK = np.uint64(0x8040201008040201)

REC_FULL, REC_SPIKES, REC_COUNTS, REC_PROBES.
    probes : int64 array [K]
        Sorted distinct local neuron indices (REC_PROBES).
    v_dtype : numpy dtype of the recorded membranes.

    Members
    -------
    (returned dict) spikes, v : [T, B * N] (full); packed : uint8 [T, B, ceil(N / 8)];
    counts, first, last : int64 [B * N]; probe_v : [T, B, K].
    """
    total = v.shape[0]
    batch = total // n
    vmin, vmax, frac = limits
    # dummies for what is not recorded: int32, so that the spikes and counts kernels compile
    # once whatever the membrane dtype
    e1, e3 = np.zeros(1, np.int64), np.zeros((1, 1, 1), np.int32)
    out_s = np.zeros((steps, total), np.bool_) if rec == REC_FULL else np.zeros((1, 1), np.bool_)
    out_v = np.zeros((steps, total), v_dtype) if rec == REC_FULL else np.zeros((1, 1), np.int32)
    packed = np.zeros((steps if rec == REC_SPIKES else 1, batch, (n + 7) // 8), np.uint8)
    if rec == REC_COUNTS:
        counts, first, last = np.zeros(total, np.int64), np.full(total, -1), np.full(total, -1)
    else:
        counts = first = last = e1
    probe_v = np.zeros((steps, batch, probes.size), v_dtype) if rec == REC_PROBES else e3
    edges = np.arange(0, (n + BLOCK - 1) // BLOCK + 1) * BLOCK
    pstart = np.searchsorted(probes, edges).astype(np.int64)
    cur2 = np.zeros((1, 0), np.int64) if cur is None else cur
    if noise is None:
        chunk, z = max(steps, 1), np.zeros((1, 0), np.int32)
    else:
        state, gains, depth, lanes = noise
        chunk = max(1, min(steps, (1 << 21) // max(total, 1)))
        z = np.empty((chunk, total), np.int32)
    with _LOCK:
        for t0 in range(0, steps, chunk):
            count = min(chunk, steps - t0)
            if noise is not None:
                noise_chunk(state, gains, depth, lanes, n, count, z)
            UPDATE[rec](v, r, params, gsize, n, cur2, t0, count, z, vmin, vmax, frac,
                        out_s, out_v, packed, counts, first, last, probes, pstart, probe_v)
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
