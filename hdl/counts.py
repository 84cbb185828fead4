"""Per-neuron spike counts over a window of steps, fed by the array's output beats.

:class:`SpikeCounter` is the gateware of the COUNTS run mode of the array board's host link
(its model: :meth:`lifgate.boards.protocol.BoardModel._count`). For every neuron it keeps a
spike count ``c``, and the window steps of its first and last spike, in one narrow memory;
everything saturates at ``0xFFFF`` (the window itself at ``2**32 - 1``), nothing wraps.

Memory
------
One memory of 16-bit words, one access per clock (read or write, one shared address), so
that synthesis can put it in a single-port RAM such as the iCE40 UltraPlus SPRAM
(``spram=True``: ``SB_SPRAM256KA`` instances; Yosys does not infer them from the memory,
which it maps to 48 EBR for 4,096 neurons). Three planes of ``S = 2**ceil(log2 N)`` words:
``c`` of neuron ``n`` at ``n``, ``first`` at ``S + n``, ``last`` at ``2 S + n`` (the address is
``n`` with the plane above it, no adder). 4,096 neurons: 12,288 words, one of the UP5K's four
SPRAMs (16K x 16 each).

Throughput
----------
Beats with a spike (and the last beat of every step, which advances the window) go into a
FIFO of ``fifo_depth`` entries. A picker takes an entry apart into spike tokens (neuron,
window step), one a clock, while a sequencer spends 3 clocks of the memory on each (read
``c``; write ``c + 1``; write ``last``), 4 on a neuron's first spike (also ``first``); a token
waits in a register meanwhile, so the memory is never idle while spikes are queued. At the
notebook's rates (at most 1.4 % of the neurons fire in a step) an 8-lane beat holds 0.11 spikes
on average: about 0.35 clocks of work per clock of the array; bursts (neighbouring neurons
firing in the same step) wait in the FIFO. When the FIFO is full, ``i.ready`` is low and the
array stalls: no spike is ever dropped.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from lifgate.config import ConfigError, ConfigTypeError

__all__ = ["COUNT_WIDTH", "SpikeCounter", "count_beat_layout"]

#: Width of a count and of a first/last window step (they saturate at ``2**16 - 1``).
COUNT_WIDTH = 16
#: Words of one ``SB_SPRAM256KA``.
SPRAM_WORDS = 16384


def count_beat_layout(depth: int, lanes: int) -> data.StructLayout:
    """An input beat: lane address ``addr``, ``spikes`` (bit ``p`` = neuron ``addr * P + p``),
    ``last`` (the step's last beat)."""
    return data.StructLayout({"addr": range(max(2, depth)), "spikes": lanes, "last": 1})


class SpikeCounter(wiring.Component):
    """Spike counts, first and last window steps of ``depth * lanes`` neurons.

    Parameters
    ----------
    depth : int
        Lane addresses (beats per step), 1 to 2**20.
    lanes : int
        Spikes per beat, a power of two (1 to 64).
    fifo_depth : int
        Entries of the input FIFO, 2 to 16.
    spram : bool
        The memory in iCE40 UltraPlus ``SB_SPRAM256KA`` blocks (at most four: 16,384
        neurons); simulators need Yosys' model of the primitive.

    Members
    -------
    i : ``In(stream.Signature(count_beat_layout(depth, lanes)))``
        Beats; ``ready`` is a register (room in the FIFO, not clearing).
    clear : ``In(1)``
        Strobe: zero every count, first and last step and the window (takes ``3 * S``
        clocks; also done after reset).
    idle : ``Out(1)``
        Nothing queued, nothing being counted or cleared: the memory may be read.
    window : ``Out(32)``
        Steps counted since the clear (saturating).
    rd_neuron, rd_plane : ``In``
        Read address while ``idle``: the neuron and the plane (0 count, 1 first, 2 last).
    rd_data : ``Out(16)``
        The word read, one clock after its address.
    """

    def __init__(self, *, depth: int, lanes: int, fifo_depth: int = 8, spram: bool = False):
        for name, value, lo, hi in (("depth", depth, 1, 1 << 20), ("lanes", lanes, 1, 64),
                                    ("fifo_depth", fifo_depth, 2, 16)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigTypeError(f"parameter '{name}' must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(f"parameter '{name}' must be in [{lo}, {hi}], not {value!r}")
        if lanes & (lanes - 1):
            raise ConfigError(f"parameter 'lanes' must be a power of two, not {lanes!r}")
        if not isinstance(spram, bool):
            raise ConfigTypeError(f"parameter 'spram' must be a bool, not {spram!r}")
        self.depth, self.lanes, self.fifo_depth, self.spram = depth, lanes, fifo_depth, spram
        self.neuron_bits = max(1, ceil_log2(depth * lanes))
        if spram and self.memory_words > 4 * SPRAM_WORDS:
            raise ConfigError(f"the counts of {depth * lanes} neurons need "
                              f"{self.memory_words} words: more than four SPRAMs hold; build "
                              f"them in block RAM (spram=False)")
        super().__init__({
            "i": In(stream.Signature(count_beat_layout(depth, lanes))),
            "clear": In(1),
            "idle": Out(1),
            "window": Out(32),
            "rd_neuron": In(self.neuron_bits),
            "rd_plane": In(2),
            "rd_data": Out(COUNT_WIDTH),
        })

    @property
    def memory_words(self) -> int:
        """Words of the count memory: three planes of ``2**neuron_bits``."""
        return 3 << self.neuron_bits

    def elaborate(self, platform):
        m = Module()
        P, Q, NB = self.lanes, self.fifo_depth, self.neuron_bits
        LB = ceil_log2(P)
        top = (1 << COUNT_WIDTH) - 1

        # The memory: one shared address, a write or a read per clock.
        addr = Signal(range(self.memory_words), name="cnt_addr")
        wp, rp = self._memory(m, addr)
        m.d.comb += self.rd_data.eq(rp.data)

        # Clearing (after reset and on the strobe).
        clearing = Signal(init=1)
        clr_addr = Signal(range(self.memory_words + 1))
        with m.If(self.clear):
            m.d.sync += [clearing.eq(1), clr_addr.eq(0)]
        with m.Elif(clearing):
            m.d.sync += clr_addr.eq(clr_addr + 1)
            with m.If(clr_addr == self.memory_words - 1):
                m.d.sync += clearing.eq(0)

        # The FIFO of beats with work: registers, a registered ready.
        beat = self.i.payload
        entries = Array(Signal(count_beat_layout(self.depth, P), name=f"fifo{k}")
                        for k in range(Q))
        wptr, rptr = Signal(range(Q)), Signal(range(Q))
        level = Signal(range(Q + 1))
        room = Signal()
        m.d.comb += self.i.ready.eq(room & ~clearing)
        take = self.i.valid & self.i.ready
        push = take & (beat.spikes.any() | beat.last)
        pop = Signal()
        with m.If(push):
            m.d.sync += [entries[wptr].eq(beat), wptr.eq(Mux(wptr == Q - 1, 0, wptr + 1))]
        with m.If(pop):
            m.d.sync += rptr.eq(Mux(rptr == Q - 1, 0, rptr + 1))
        level_next = Signal.like(level)
        m.d.comb += level_next.eq(level + push - pop)
        m.d.sync += [level.eq(level_next), room.eq(level_next < Q)]
        with m.If(self.clear):
            m.d.sync += [level.eq(0), room.eq(1), wptr.eq(0), rptr.eq(0)]

        # The picker: the entry being taken apart into spikes, one token a clock.
        cur_v = Signal()
        cur_addr = Signal(range(max(2, self.depth)))
        cur_mask = Signal(P)
        cur_last = Signal()
        window = Signal(32)
        w16 = Signal(COUNT_WIDTH)
        m.d.comb += [self.window.eq(window),
                     w16.eq(Mux(window[COUNT_WIDTH:].any(), top, window[:COUNT_WIDTH]))]
        lowest = Signal(range(max(2, P)))  # the lowest spike of the mask
        for p in reversed(range(P)):
            with m.If(cur_mask[p]):
                m.d.comb += lowest.eq(p)
        # The token: a spike's neuron and window step, waiting for the sequencer.
        tok_v = Signal()
        tok_n = Signal(NB)
        tok_w = Signal(COUNT_WIDTH)
        take = Signal()  # the sequencer takes the token (and reads its count) now
        pick = Signal()
        m.d.comb += pick.eq(cur_v & cur_mask.any() & (~tok_v | take))
        rest = Signal(P)
        m.d.comb += rest.eq(Mux(pick, cur_mask & ~(Const(1, P) << lowest)[:P], cur_mask))
        with m.If(take):
            m.d.sync += tok_v.eq(0)
        with m.If(pick):
            m.d.sync += [tok_v.eq(1), tok_w.eq(w16),
                         tok_n.eq(Cat(lowest, cur_addr)[:NB] if LB else cur_addr[:NB])]
        m.d.sync += cur_mask.eq(rest)
        done_entry = cur_v & (rest == 0)
        with m.If(done_entry & cur_last & ~window.all()):
            m.d.sync += window.eq(window + 1)
        with m.If((~cur_v | done_entry) & ~clearing):
            with m.If(level != 0):
                e = entries[rptr]
                m.d.comb += pop.eq(1)
                m.d.sync += [cur_v.eq(1), cur_addr.eq(e.addr), cur_mask.eq(e.spikes),
                             cur_last.eq(e.last)]
            with m.Else():
                m.d.sync += cur_v.eq(0)

        # The sequencer: read c (when it takes a token); write c + 1; write last; write first
        # (a neuron's first spike).
        phase = Signal(range(5))
        s_n = Signal(NB)
        s_w = Signal(COUNT_WIDTH)
        s_first = Signal()

        def plane(k, n):
            return Cat(n, Const(k, 2))

        with m.Switch(phase):
            with m.Case(0):
                m.d.comb += take.eq(tok_v & ~clearing)
                with m.If(take):
                    m.d.comb += addr.eq(plane(0, tok_n))
                    m.d.sync += [s_n.eq(tok_n), s_w.eq(tok_w), phase.eq(2)]
            with m.Case(2):
                c = rp.data
                m.d.comb += [addr.eq(plane(0, s_n)), wp.en.eq(1),
                             wp.data.eq(Mux(c == top, top, c + 1))]
                m.d.sync += [s_first.eq(c == 0), phase.eq(3)]
            with m.Case(3):
                m.d.comb += [addr.eq(plane(2, s_n)), wp.en.eq(1), wp.data.eq(s_w)]
                m.d.sync += phase.eq(Mux(s_first, 4, 0))
            with m.Case(4):
                m.d.comb += [addr.eq(plane(1, s_n)), wp.en.eq(1), wp.data.eq(s_w)]
                m.d.sync += phase.eq(0)
        with m.If(self.clear):
            m.d.sync += [cur_v.eq(0), tok_v.eq(0), window.eq(0), phase.eq(0)]
        with m.If(clearing & ~self.clear):
            m.d.comb += [addr.eq(clr_addr), wp.en.eq(1), wp.data.eq(0)]
        busy = Signal()
        m.d.comb += busy.eq(clearing | cur_v | tok_v | (phase != 0) | (level != 0))
        with m.If(~busy):
            m.d.comb += addr.eq(Cat(self.rd_neuron, self.rd_plane))
        m.d.comb += self.idle.eq(~busy)
        return m

    def _memory(self, m: Module, addr: Signal):
        """The count memory at ``addr``: (write port, read port) with ``en``/``data`` and
        ``data`` members (an Amaranth memory's ports, or the SPRAMs behind the same)."""
        if not self.spram:
            m.submodules.mem = mem = Memory(shape=COUNT_WIDTH, depth=self.memory_words,
                                            init=[])
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(addr), rp.addr.eq(addr)]
            return wp, rp

        class _Port:
            pass

        wp, rp = _Port(), _Port()
        wp.en, wp.data, rp.data = Signal(name="cnt_we"), Signal(COUNT_WIDTH, name="cnt_wd"), \
            Signal(COUNT_WIDTH, name="cnt_rd")
        banks = (self.memory_words + SPRAM_WORDS - 1) // SPRAM_WORDS
        bank = Signal(range(max(2, banks)), name="cnt_bank")
        bank_r = Signal.like(bank)
        m.d.comb += bank.eq(addr[14:] if banks > 1 else 0)
        m.d.sync += bank_r.eq(bank)
        outs = []
        for k in range(banks):
            dout = Signal(COUNT_WIDTH, name=f"cnt_spram{k}_out")
            m.submodules[f"cnt_spram{k}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=Cat(addr, Const(0, 14))[:14], i_DATAIN=wp.data,
                i_MASKWREN=Const(0b1111, 4), i_WREN=wp.en & (bank == k),
                i_CHIPSELECT=1, i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=dout,
            )
            outs.append(dout)
        m.d.comb += rp.data.eq(Array(outs)[bank_r])
        return wp, rp
