"""Resource and speed figures of the neuron array on the boards (``lifgate resources``).

Two designs can be measured:

* ``array``: :class:`ArrayHarness`, the :class:`~lifgate.hdl.array.LIFArray` alone with the
  least I/O that keeps every part of it alive: its control inputs come from a shift register fed
  by one pin, its input currents from a 32-bit xorshift generator, and its output beats
  (spikes, address, step) are folded by a registered XOR tree into one pin. The harness adds
  about ``len(inputs)`` flip-flops and a few dozen LUTs; everything else is the array.
* ``top``: the board top of ``lifgate build`` (:class:`lifgate.boards.top.BoardTop`): UART,
  frame decoder, command executor, input-current memory and the array.

Both run on the board's PLL at the board's goal frequency, with that frequency as nextpnr's
constraint.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal, Value
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer
from lifgate.boards.pll import BoardClock
from lifgate.boards.toolchain import Board, BuildReport, run_build
from lifgate.boards.top import BoardTop
from lifgate.hdl.array import LIFArray

from lifgate.config import ArrayShape

__all__ = ["ArrayHarness", "board_shape", "measure"]


def board_shape(board: Board, *, neurons: int | None = None, lanes: int | None = None,
                groups: int | None = None, leak_modes=None) -> ArrayShape:
    """The array shape built for ``board``: its goal size unless the arguments say else.

    Widths are the defaults of :class:`~lifgate.config.ArrayShape` (16-bit membrane and
    current, 8-bit refractory counter, 16 fraction bits); the leak modes are the board's.
    """
    n = board.neurons if neurons is None else neurons
    p = board.lanes if lanes is None else lanes
    g = board.groups if groups is None else groups
    modes = board.leak_modes if leak_modes is None else leak_modes
    return ArrayShape(neurons=n, lanes=p, groups=g, leak_modes=tuple(modes))


def _xor_tree(m, bits, fan_in: int = 4):
    """Fold ``bits`` into one bit with a tree of registered ``fan_in``-input XORs."""
    level = 0
    while len(bits) > 1:
        nxt = []
        for k in range(0, len(bits), fan_in):
            r = Signal(name=f"xor{level}_{k // fan_in}")
            m.d.sync += r.eq(Cat(*bits[k:k + fan_in]).xor())
            nxt.append(r)
        bits = nxt
        level += 1
    return bits[0]


class ArrayHarness(Elaboratable):
    """:class:`~lifgate.hdl.array.LIFArray` with a minimal I/O wrapper, for synthesis only.

    Parameters
    ----------
    board : Board
    shape : ArrayShape
    frequency : float
        Clock of the ``sync`` domain in Hz (a PLL from the board clock).
    membrane : bool
        Build the array's membrane readback (the harness folds it into the XOR tree too).
    noise : bool
        Build the array's noise source.
    """

    def __init__(self, *, board: Board, shape: ArrayShape, frequency: float,
                 membrane: bool = False, noise: bool = True):
        self.board = board
        self.shape = shape
        self.clock = BoardClock(frequency=frequency, family=board.family,
                                f_in=board.platform().default_clk_frequency,
                                define_domain=False)
        self.membrane = membrane
        self.noise = noise

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = self.clock
        lpe = self.board.lanes_per_enable
        m.submodules.array = array = LIFArray(
            self.shape, membrane=self.membrane, noise=self.noise, pipeline=self.board.pipeline,
            lanes_per_enable=None if lpe is None else min(lpe, self.shape.lanes),
            multiplier=self.board.multiplier, memory=self.board.array_memory(self.shape))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.pin_in = pin_in = io.Buffer("i", uart.rx)
        m.submodules.pin_out = pin_out = io.Buffer("o", uart.tx)
        m.submodules.pin_led = pin_led = io.Buffer("o", platform.request("led", 0, dir="-"))

        sin = Signal()
        m.submodules.sync_in = FFSynchronizer(pin_in.i, sin)

        # Control inputs: one long shift register fed by the pin.
        controls = [Value.cast(array.param_data), array.param_group]
        if array.noise:
            controls += [array.noise_seed, array.noise_gain]
        controls.append(array.steps)
        width = sum(len(c) for c in controls) + 6
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(sin, chain[:-1]))
        offset = 0
        for c in controls:
            n = len(c)
            m.d.comb += c.eq(chain[offset:offset + n])
            offset += n
        strobes = chain[offset:]
        m.d.comb += [
            array.param_we.eq(strobes[0]),
            array.clear.eq(strobes[1]),
            array.start.eq(strobes[2]),
            array.input_en.eq(strobes[3]),
            array.i_stream.valid.eq(strobes[4]),
            array.o_stream.ready.eq(strobes[5]),
        ]

        # Input currents: a xorshift32 stepped per accepted beat, spread over the lanes.
        x = Signal(32, init=1)
        with m.If(array.i_stream.valid & array.i_stream.ready):
            t = (x ^ (x << 13))[:32]
            t = t ^ (t >> 17)
            m.d.sync += x.eq((t ^ (t << 5))[:32])
        iw = self.shape.i_width
        payload = Value.cast(array.i_stream.payload)
        bits = []
        for k in range(len(payload)):
            bits.append(x[(k * 7 + k // iw) % 32])
        m.d.comb += payload.eq(Cat(*bits))

        # Outputs: everything the array produces, folded into one pin.
        beat = Signal(len(Value.cast(array.o_stream.payload)))
        valid = Signal()
        m.d.sync += [beat.eq(Value.cast(array.o_stream.payload)), valid.eq(array.o_stream.valid)]
        folded = _xor_tree(m, [beat[k] for k in range(len(beat))] + [valid])
        m.d.comb += [
            pin_out.o.eq(folded),
            pin_led.o.eq(array.busy ^ array.done ^ array.step.xor()),
        ]
        return m


def measure(board: Board, shape: ArrayShape, build_dir, *, design: str = "array",
            frequency_mhz: float | None = None, seed: int = 1, pack: bool = False,
            membrane: bool | None = None, noise: bool = True, **top_kwargs) -> BuildReport:
    """Build ``design`` (``array`` or ``top``) for ``board`` and return nextpnr's figures.

    ``noise`` (the array's noise source) applies to the ``array`` design; the board top always
    has it.
    """
    freq = (board.goal_mhz if frequency_mhz is None else frequency_mhz) * 1e6
    if design == "array":
        top = ArrayHarness(board=board, shape=shape, frequency=freq,
                           membrane=bool(membrane), noise=noise)
    elif design == "top":
        top = BoardTop(board=board, shape=shape, frequency=freq,
                       membrane=True if membrane is None else membrane, **top_kwargs)
    else:
        raise ValueError(f"Design must be 'array' or 'top', not {design!r}")
    return run_build(board, top, build_dir, seed=seed, pack=pack)
