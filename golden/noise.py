"""Bit-exact model of the per-lane xorshift32 noise source (``docs/numerics.md``, "Noise").

The gateware twin is ``lifgate.hdl.noise``. Each lane advances its generator once per neuron
update, addresses in order; :class:`NoiseModel` produces a whole step at once by jumping ahead
with precomputed GF(2) tables instead of looping over addresses in Python.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["GOLDEN", "NoiseModel", "advance", "centered", "jump", "lane_seeds"]

GOLDEN = 0x9E3779B9
_M32 = np.uint64(0xFFFFFFFF)


def advance(x: np.ndarray) -> np.ndarray:
    """One xorshift32 step (13, 17, 5) of every element of the uint32 array ``x``."""
    x = x.astype(np.uint32, copy=True)
    x ^= x << np.uint32(13)
    x ^= x >> np.uint32(17)
    x ^= x << np.uint32(5)
    return x


def centered(x: np.ndarray) -> np.ndarray:
    """``b0 + b1 + b2 + b3 - 510`` of each uint32 in ``x``, as int64 in -510..510."""
    x = x.astype(np.int64)
    return (x & 0xFF) + ((x >> 8) & 0xFF) + ((x >> 16) & 0xFF) + ((x >> 24) & 0xFF) - 510


def lane_seeds(seed: int, lanes: int) -> np.ndarray:
    """Generator states of lanes ``0..lanes-1`` right after a clear with ``seed``."""
    p = np.arange(1, lanes + 1, dtype=np.uint64)
    s = (np.uint64(seed) ^ ((np.uint64(GOLDEN) * p) & _M32)).astype(np.uint32)
    s[s == 0] = 1
    return s


def _apply(cols: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the GF(2) matrix with columns ``cols`` (32 uint32) to every state in ``x``."""
    x = np.asarray(x, dtype=np.uint32)
    out = np.zeros_like(x)
    for i in range(32):
        out ^= cols[i] * ((x >> np.uint32(i)) & np.uint32(1))
    return out


def jump(x: np.ndarray, n: int) -> np.ndarray:
    """The states ``n`` xorshift steps after ``x``, in O(log n) (xorshift is linear over GF(2))."""
    result = np.asarray(x, dtype=np.uint32).copy()
    power = advance(np.uint32(1) << np.arange(32, dtype=np.uint32))  # columns of M
    while n:
        if n & 1:
            result = _apply(power, result)
        n >>= 1
        if n:
            power = _apply(power, power)
    return result


@functools.lru_cache(maxsize=16)
def _jump_tables(depth: int) -> np.ndarray:
    """``T[j, k, b]``: the state after ``j + 1`` steps from the state ``b << 8k``.

    xorshift is linear over GF(2), so the state after ``j + 1`` steps from ``s`` is the XOR of
    ``T[j, k, byte_k(s)]`` over the four bytes ``k`` of ``s``.
    """
    shifts = (8 * np.arange(4, dtype=np.uint32))[:, None]
    basis = np.arange(256, dtype=np.uint32)[None, :] << shifts
    tables = np.empty((depth, 4, 256), dtype=np.uint32)
    x = basis
    for j in range(depth):
        x = advance(x)
        tables[j] = x
    return tables


class NoiseModel:
    """The noise generators of ``lanes`` lanes with ``depth`` addresses each.

    Parameters
    ----------
    seeds : array of uint32
        Initial states, one per lane (``lane_seeds(seed, lanes)``; concatenate several for a
        batch of arrays).
    depth : int
        Addresses per lane, i.e. updates per lane per step.

    Members
    -------
    state : array of uint32
        Current generator states, one per lane.
    """

    _BLOCK = 4096  # addresses per table block: 4096 x 4 x 256 x 4 bytes = 16 MiB of tables

    def __init__(self, seeds: np.ndarray, depth: int):
        self.state = np.asarray(seeds, dtype=np.uint32).copy()
        self.depth = int(depth)

    def step(self) -> np.ndarray:
        """Advance every lane ``depth`` times; return the centred values ``c``, [depth, lanes]."""
        depth, s = self.depth, self.state
        if depth <= 8:
            out = np.empty((depth, s.size), dtype=np.uint32)
            x = s
            for j in range(depth):
                x = advance(x)
                out[j] = x
        else:
            # Jump ahead block by block: positions 1..B of a block come from the state at its
            # start through the tables; the block's last state starts the next block.
            block = min(depth, self._BLOCK)
            t = _jump_tables(block)
            out = np.empty((depth, s.size), dtype=np.uint32)
            x = s
            for lo in range(0, depth, block):
                hi = min(lo + block, depth)
                x64 = x.astype(np.intp)
                o = out[lo:hi]
                tt = t[: hi - lo]
                np.take(tt[:, 0], x64 & 0xFF, axis=1, out=o)
                o ^= tt[:, 1, (x64 >> 8) & 0xFF]
                o ^= tt[:, 2, (x64 >> 16) & 0xFF]
                o ^= tt[:, 3, (x64 >> 24) & 0xFF]
                x = o[-1]
        self.state = out[-1].copy()
        return centered(out)
