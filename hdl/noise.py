"""The per-lane xorshift32 noise source (``docs/numerics.md``, "Noise").

Its bit-exact twin is :mod:`lifgate.golden.noise`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["GOLDEN", "LaneNoise", "lane_seed", "xorshift32"]

#: The odd constant that spreads the lanes' seeds: ``floor(2**32 / phi)``.
GOLDEN = 0x9E3779B9

#: Width of the noise value ``z``: ``|z| <= 510 * 65535 / 256 < 2**17``.
Z_WIDTH = 18


def lane_seed(seed: int, lane: int) -> int:
    """The generator state of lane ``lane`` right after a clear with ``seed`` (Python integers)."""
    x = (seed ^ (GOLDEN * (lane + 1))) & 0xFFFF_FFFF
    return x or 1


def xorshift32(x):
    """One xorshift32 (13, 17, 5) step of a 32-bit Amaranth value (or of a Python integer)."""
    mask = 0xFFFF_FFFF
    if isinstance(x, int):
        x ^= (x << 13) & mask
        x ^= x >> 17
        x ^= (x << 5) & mask
        return x
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    x = (x ^ (x << 5))[:32]
    return x


class LaneNoise(wiring.Component):
    """The noise generator of one lane, with its own small pipeline.

    On ``reseed`` the 32-bit state becomes ``x = seed ^ (0x9E3779B9 * (lane + 1) mod 2**32)``
    (1 if that is 0). Every ``advance`` (one per neuron update of the lane) first advances the
    state, ``x ^= x << 13; x ^= x >> 17; x ^= x << 5``; the update's noise value is
    ``z = (c * gain) >> 8`` with ``c = b0 + b1 + b2 + b3 - 510`` over the bytes of the advanced
    state.

    The value is computed in pipeline stages that move with ``ce``, like the pipeline registers
    of the lane they serve: ``z`` belongs to the update whose ``advance`` was :attr:`latency`
    enabled clocks earlier. To keep the multiplier a 10 x 16 unsigned one (one iCE40
    ``SB_MAC16`` or ECP5 ``MULT18X18D``), ``c * gain`` is computed as
    ``(b0 + b1 + b2 + b3) * gain - 510 * gain``; the product ``(b0 + b1 + b2 + b3) * gain`` is
    also an output, :attr:`product_latency` enabled clocks after ``advance``, so that a user
    can fold the ``- 510 * gain`` into an addition of its own (``LIFArray`` does:
    ``bias + z = (product + 256 * bias - 510 * gain) >> 8``).

    Parameters
    ----------
    lane : int
        Lane index, 0 to 63; selects the seed offset.

    Members
    -------
    seed : ``In(32)``
        Seed, sampled on ``reseed``.
    reseed : ``In(1)``
        Strobe: sample ``seed``; the seeded state is loaded the clock after (do not
        ``advance`` in that clock; it would be lost).
    advance : ``In(1)``
        Strobe: one neuron update of the lane starts; advance the state. Only assert it
        together with ``ce``.
    ce : ``In(1)``
        Pipeline enable: the ``c``, product and ``z`` registers load only when it is high.
    gain : ``In(16)``
        Noise amplitude, 0 to 65535; keep it stable while updates are in flight (it is
        registered under ``ce`` before use).
    product : ``Out(26)``
        ``(b0 + b1 + b2 + b3) * gain`` of the update whose ``advance`` was ``product_latency``
        enabled clocks ago.
    z : ``Out(signed(18))``
        Noise value of the update whose ``advance`` was ``latency`` enabled clocks ago.
    state : ``Out(32)``
        The generator state ``x`` (for tests and debugging).
    """

    #: Enabled clocks from ``advance`` to the corresponding ``z``.
    latency = 4
    #: Enabled clocks from ``advance`` to the corresponding ``product``.
    product_latency = 3

    def __init__(self, *, lane: int):
        if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < 64:
            raise TypeError(f"Lane must be an integer in [0, 63], not {lane!r}")
        self._lane = lane
        super().__init__({
            "seed": In(32),
            "reseed": In(1),
            "advance": In(1),
            "ce": In(1),
            "gain": In(16),
            "product": Out(26),
            "z": Out(signed(Z_WIDTH)),
            "state": Out(32),
        })

    @property
    def lane(self) -> int:
        return self._lane

    def elaborate(self, platform):
        m = Module()

        # State: not cleared by the domain reset (a clear reseeds it); never 0 after a reseed.
        # The seed is captured by `reseed` and loaded the clock after, so that the zero test
        # starts from a register (the same register in every lane: synthesis merges them).
        x = Signal(32, init=lane_seed(0, self._lane), reset_less=True)
        offset = (GOLDEN * (self._lane + 1)) & 0xFFFF_FFFF
        seed = Signal(32, reset_less=True)
        load = Signal()
        seeded = Signal(32)
        m.d.comb += seeded.eq(seed ^ offset)
        m.d.sync += load.eq(self.reseed)
        with m.If(self.reseed):
            m.d.sync += seed.eq(self.seed)
        with m.If(load):
            m.d.sync += x.eq(Cat(seeded[0] | (seeded == 0), seeded[1:]))
        with m.Elif(self.advance):
            m.d.sync += x.eq(xorshift32(x))
        m.d.comb += self.state.eq(x)

        # Stage 1 (x holds the advanced state): sum of the four bytes, 0..1020.
        csum = Signal(10, reset_less=True)
        # Stage 2: csum * gain, 0..1020 * 65535 < 2**26.
        prod = Signal(26, reset_less=True)
        # 510 * gain, updated every clock (gain is static while updates are in flight).
        offset510 = Signal(25, reset_less=True)
        m.d.sync += offset510.eq((self.gain << 9) - (self.gain << 1))
        # Stage 3: z = floor((csum * gain - 510 * gain) / 256).
        z = Signal(signed(Z_WIDTH), reset_less=True)
        # The gain, registered next to the multiplier: it is static during a run, and on a
        # large FPGA the route from one gain register to every lane's multiplier is long. With
        # a separate `ce` per lane the copies stay separate registers (see LIFArray's
        # `lanes_per_enable`); with one `ce` synthesis merges them into one.
        gain = Signal(16, reset_less=True)
        with m.If(self.ce):
            m.d.sync += [
                gain.eq(self.gain),
                csum.eq((x[0:8] + x[8:16]) + (x[16:24] + x[24:32])),
                prod.eq(csum * gain),
                z.eq((prod - offset510) >> 8),
            ]
        m.d.comb += [self.product.eq(prod), self.z.eq(z)]
        return m
