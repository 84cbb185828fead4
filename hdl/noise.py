"""The per-lane xorshift32 noise source (``docs/numerics.md``, "Noise").

Its bit-exact twin is :mod:`lifgate.golden.noise`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from lifgate.hdl.dsp import RegisteredMulAdd

from lifgate.config import ConfigTypeError

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
    of the lane they serve. To keep the multiplier a 10 x 16 unsigned one (one iCE40
    ``SB_MAC16`` or ECP5 ``MULT18X18D``), ``c * gain`` is computed as
    ``(b0 + b1 + b2 + b3) * gain - 510 * gain``, and the ``- 510 * gain`` is left to the user,
    who adds it together with anything else it needs through ``addend``:
    ``sum = (b0 + b1 + b2 + b3) * gain + addend``. With ``addend = -510 * gain``,
    ``z = sum >> 8``; ``LIFArray`` passes ``256 * bias - 510 * gain`` and gets
    ``bias + z = sum >> 8``. On the iCE40 the whole multiply-add is one ``SB_MAC16``.

    Parameters
    ----------
    lane : int
        Lane index, 0 to 63; selects the seed offset.
    multiplier : str
        Kind of the multiply-add (:class:`~lifgate.hdl.dsp.RegisteredMulAdd`): ``"fabric"``,
        ``"ecp5"`` or ``"ice40"``. The numbers are the same.
    addend_width : int
        Width of the signed ``addend``, 26 (enough for ``-510 * gain``) to 64; with
        ``multiplier="ice40"`` at most 31 (the ``SB_MAC16`` adds 32 bits).

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
        Pipeline enable: the byte sum, gain, product and sum registers load only when it is
        high.
    gain : ``In(16)``
        Noise amplitude, 0 to 65535; keep it stable while updates are in flight (it is
        registered under ``ce`` before use).
    addend : ``In(signed(addend_width))``
        Added to the product at the enabled clock that loads ``sum`` (the last of the
        :attr:`latency` enabled clocks after ``advance``).
    sum : ``Out(signed(addend_width + 1))``
        ``(b0 + b1 + b2 + b3) * gain + addend`` of the update whose ``advance`` was
        :attr:`latency` enabled clocks ago.
    state : ``Out(32)``
        The generator state ``x`` (for tests and debugging).
    """

    #: Enabled clocks from ``advance`` to the corresponding ``sum``.
    latency = 4

    def __init__(self, *, lane: int, multiplier: str = "fabric", addend_width: int = 26):
        if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < 64:
            raise ConfigTypeError(f"Lane must be an integer in [0, 63], not {lane!r}")
        if (isinstance(addend_width, bool) or not isinstance(addend_width, int)
                or not 26 <= addend_width <= 64):
            raise ConfigTypeError(f"Addend width must be an integer in [26, 64], not "
                                  f"{addend_width!r}")
        self._lane = lane
        # Checked here, before any elaboration.
        self._mac = RegisteredMulAdd(unsigned(10), unsigned(16), signed(addend_width),
                                     kind=multiplier)
        super().__init__({
            "seed": In(32),
            "reseed": In(1),
            "advance": In(1),
            "ce": In(1),
            "gain": In(16),
            "addend": In(signed(addend_width)),
            "sum": Out(signed(addend_width + 1)),
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

        # The byte sum of the advanced state, 0..1020. With the ECP5 multiplier it is
        # registered at `advance` itself (computed from the state being advanced to), so that
        # the MULT18X18D's operand register is fed by a register and not by an adder: on the
        # ECP5-85F the route from the state through the adders to a MULT18X18D was a critical
        # path (98.1 MHz). Its value matters only at the enabled clock after an `advance`,
        # which is when the multiplier captures it. Elsewhere the sum is taken from the state
        # register: on the iCE40 the xorshift step and the adders in one clock cost 20 ns
        # (UP5K 8 lanes: 35.8 MHz, against 44.4 with the sum after the state register).
        csum = Signal(10, reset_less=True)
        if self._mac.kind == "ecp5":
            nxt = xorshift32(x)
            with m.If(self.advance):
                m.d.sync += csum.eq((nxt[0:8] + nxt[8:16]) + (nxt[16:24] + nxt[24:32]))
        else:
            m.d.comb += csum.eq((x[0:8] + x[8:16]) + (x[16:24] + x[24:32]))

        # Stage 1 (x holds the advanced state): the byte sum and the gain, both registered as
        # the multiplier's operands. The gain is registered next to the multiplier: it is
        # static during a run, and on a large FPGA the route from one gain register to every
        # lane's multiplier is long. With a separate `ce` per lane the copies stay separate
        # registers (see LIFArray's `lanes_per_enable`).
        # Stage 2: csum * gain, 0..1020 * 65535 < 2**26. Stage 3: + addend.
        mac = m.submodules.mac = self._mac
        m.d.comb += [
            mac.a.eq(csum),
            mac.b.eq(self.gain),
            mac.c.eq(self.addend),
            mac.ce.eq(self.ce),
            self.sum.eq(mac.s),
        ]
        return m
