"""Gateware of the rate curve's compact link commands (built with the counts unit).

``WRITE_RAMP`` (the input currents of a block of neurons as a ramp computed on chip) and
``READ_COUNTS`` format 2 (the counts bit-packed at the width of the block's largest) of
:mod:`lifgate.boards.protocol`, whose :class:`~lifgate.boards.protocol.BoardModel` is their
reference; the tests compare the two byte for byte. They live here, beside the array board's
executor (:mod:`lifgate.boards.link`), which calls :class:`CompactCommands` from its counts
hooks: the decode rows, the dispatch entries and the FSM states.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed
from amaranth.utils import ceil_log2
from lifgate.boards.protocol import COUNT_PACKED, RAMP_FRAC, Cmd, ErrorCode

__all__ = ["CompactCommands", "bit_length"]

#: Payload bytes of ``WRITE_RAMP``: start u32, count u32, base i32, step i32.
RAMP_BYTES = 16


def ramp_int_bits(i_width: int) -> int:
    """Integer bits of the ramp's accumulator. The base is checked on its own (in the
    ``i_width`` range unless the ramp is empty), and the walk stops at the first value outside
    the range, so the accumulator holds a value in range plus at most one step (whose integer
    part is below ``2**15`` in size): ``max(i_width, 16) + 2`` bits, sign included."""
    return max(i_width, 16) + 2


def bit_length(value) -> Mux:
    """The bit length of an unsigned ``value`` (0 for 0), as a value."""
    w = Const(0, range(len(value) + 1))
    for b in range(len(value)):
        w = Mux(value[b], b + 1, w)
    return w


class CompactCommands:
    """``WRITE_RAMP`` and ``READ_COUNTS`` format 2 on an array executor with a counts unit.

    Parameters
    ----------
    ex : lifgate.boards.link._ArrayExecutor
        The executor (its module, frame core, loader, current-memory write path, counts unit
        and ``READ_COUNTS`` registers are used).

    Members
    -------
    rp_bad : Signal
        Registered in ``VALIDATE``: ``start + count > N`` of a ``WRITE_RAMP``, or a base
        outside the ``i_width`` range of a ramp that is not empty.
    """

    def __init__(self, ex):
        self.ex = ex
        m, f = ex.m, ex.f
        shape = f.shape
        nb = ex.cnt.neuron_bits
        start, count = ex.loaded(RAMP_BYTES)[:32], ex.loaded(RAMP_BYTES)[32:64]
        total = Signal(33, name="rp_total")
        m.d.comb += total.eq(start + count)
        base = ex.loaded(RAMP_BYTES)[64:96]
        base_top = base[shape.i_width - 1:]
        self.rp_bad = Signal(name="rp_bad")
        ex._validate += [self.rp_bad.eq((total > shape.neurons)
                                        | (count.any() & ~(base_top.all() | ~base_top.any())))]
        # The ramp: base * 2**16 + k * step, in fixed point (RAMP_FRAC fraction bits).
        self.rp_cur = Signal(signed(ramp_int_bits(shape.i_width) + RAMP_FRAC), name="rp_cur")
        self.rp_left = Signal(nb + 1, name="rp_left")
        # READ_COUNTS format 2: the largest count of the block, its width, the packer.
        self.pk_v = Signal(name="pk_v")  # a count read was issued last clock
        self.pk_or = Signal(16, name="pk_or")  # the OR of the counts: the max's bit length
        self.pk_w = Signal(5, name="pk_w")
        self.pk_i = Signal(5, name="pk_i")
        self.pk_bits = Signal(nb + 5, name="pk_bits")
        self.pk_cnt = Signal(16, name="pk_cnt")  # the count being sent, LSB next
        self.pk_cb = Signal(5, name="pk_cb")  # its bits still to send
        self.pk_byte = Signal(8, name="pk_byte")  # bits enter at the top, LSB first out
        self.pk_nb = Signal(4, name="pk_nb")  # bits in pk_byte

    # Hooks ------------------------------------------------------------------------------------

    def decode(self) -> list:
        ex = self.ex
        return [(Cmd.WRITE_RAMP, ex.core.length == RAMP_BYTES, [ex.nload.eq(RAMP_BYTES)])]

    def dispatch(self) -> dict:
        return {Cmd.WRITE_RAMP: self._write_ramp}

    def read_counts(self) -> None:
        """In ``READ_COUNTS``' dispatch (no range error): format 2 goes to its scan."""
        ex, m = self.ex, self.ex.m
        with m.If(ex.rc_fmt == COUNT_PACKED):
            m.d.sync += [self.pk_v.eq(0), self.pk_or.eq(0)]
            m.next = "PK_SCAN"

    def after_window(self) -> None:
        """After the window's bytes: format 2 sends its width byte and the packed counts."""
        ex, m = self.ex, self.ex.m
        with m.If(ex.rc_fmt == COUNT_PACKED):
            m.next = "PK_WIDTH"

    # WRITE_RAMP -------------------------------------------------------------------------------

    def _ramp_init(self):
        base = self.ex.loaded(RAMP_BYTES)[64:96].as_signed()
        count = self.ex.loaded(RAMP_BYTES)[32:64]
        return [self.rp_cur.eq(base << RAMP_FRAC), self.rp_left.eq(count[:len(self.rp_left)])]

    def _write_ramp(self) -> None:
        ex, m = self.ex, self.ex.m
        shape = ex.f.shape
        P, D = shape.lanes, shape.depth
        LB = ceil_log2(P)
        start = ex.loaded(RAMP_BYTES)[:32]
        with m.If(self.rp_bad):
            ex.core.fail(ErrorCode.RANGE)
        with m.Else():
            m.d.sync += [
                *self._ramp_init(),
                ex.pass2.eq(0),
                ex.wr_addr.eq(start[LB:LB + max(1, ceil_log2(D))] if D > 1 else 0),
                ex.wr_lane.eq(start[:LB] if P > 1 else 0),
            ]
            m.next = "RAMP"

    def ramp_states(self) -> None:
        """``RAMP``: walk the ramp twice, one value a clock: check every value (the first one
        outside the ``i_width`` range is ``ERR_RANGE``, nothing written), then write them."""
        ex, m, core = self.ex, self.ex.m, self.ex.core
        shape = ex.f.shape
        IW = shape.i_width
        step = ex.loaded(RAMP_BYTES)[96:128].as_signed()
        value = self.rp_cur[RAMP_FRAC:]
        top = value[IW - 1:]
        inrange = top.all() | ~top.any()
        with m.State("RAMP"):
            m.d.comb += core.busy.eq(1)
            with m.If(self.rp_left == 0):
                with m.If(ex.pass2):
                    m.next = "REPLY"
                with m.Else():
                    m.d.sync += [ex.pass2.eq(1), *self._ramp_init()]
            with m.Elif(~inrange):
                core.fail(ErrorCode.RANGE)
            with m.Else():
                m.d.sync += [self.rp_cur.eq(self.rp_cur + step),
                             self.rp_left.eq(self.rp_left - 1)]
                with m.If(ex.pass2):
                    ex.write_current(value[:IW])

    # READ_COUNTS format 2 ---------------------------------------------------------------------

    def packed_states(self) -> None:
        """``PK_SCAN`` ORs the block's counts (one read a clock: the OR's bit length is the
        largest count's), ``PK_LEN`` the frame's length (``count`` added ``w`` times), then
        ``COUNTS_START`` and the window; ``PK_WIDTH`` sends the width byte, ``PK`` /
        ``PK_FETCH`` the packed counts bit-serially (one bit a clock into a byte register, a
        byte out when it is full; the UART takes a bit every ``divisor + 1`` clocks at the
        least), the last byte padded with zeros."""
        ex, m, core = self.ex, self.ex.m, self.ex.core
        ftx, cnt = core.ftx, ex.cnt
        nb = cnt.neuron_bits
        start, count = ex.loaded(9)[:32], ex.loaded(9)[32:64]
        with m.State("PK_SCAN"):  # rc_k is 0: the counts' plane is read
            m.d.comb += core.busy.eq(1)
            m.d.sync += self.pk_v.eq(0)
            with m.If(self.pk_v):
                m.d.sync += self.pk_or.eq(self.pk_or | cnt.rd_data)
            with m.If(ex.rc_left != 0):
                m.d.sync += [ex.rc_neuron.eq(ex.rc_neuron + 1), ex.rc_left.eq(ex.rc_left - 1),
                             self.pk_v.eq(1)]
            with m.Elif(~self.pk_v):
                m.d.sync += [ex.rc_neuron.eq(start[:nb + 1]), ex.rc_left.eq(count[:nb + 1]),
                             self.pk_w.eq(bit_length(self.pk_or)), self.pk_i.eq(0),
                             self.pk_bits.eq(0)]
                m.next = "PK_LEN"
        with m.State("PK_LEN"):
            m.d.comb += core.busy.eq(1)
            with m.If(self.pk_i != self.pk_w):
                m.d.sync += [self.pk_bits.eq(self.pk_bits + count[:nb + 1]),
                             self.pk_i.eq(self.pk_i + 1)]
            with m.Else():
                m.d.sync += ex.rc_len.eq(5 + ((self.pk_bits + 7) >> 3))
                m.next = "COUNTS_START"
        with m.State("PK_WIDTH"):
            m.d.comb += [core.busy.eq(1), ftx.data.valid.eq(1), ftx.data.payload.eq(self.pk_w)]
            with m.If(ftx.data.ready):
                m.d.sync += [self.pk_cb.eq(0), self.pk_nb.eq(0)]
                m.next = "PK"
        with m.State("PK"):
            m.d.comb += core.busy.eq(1)
            shift = [self.pk_nb.eq(self.pk_nb + 1)]
            with m.If(self.pk_nb == 8):
                m.d.comb += [ftx.data.valid.eq(1), ftx.data.payload.eq(self.pk_byte)]
                with m.If(ftx.data.ready):
                    m.d.sync += self.pk_nb.eq(0)
            with m.Elif(self.pk_cb != 0):
                m.d.sync += [*shift, self.pk_byte.eq(Cat(self.pk_byte[1:], self.pk_cnt[0])),
                             self.pk_cnt.eq(self.pk_cnt >> 1), self.pk_cb.eq(self.pk_cb - 1)]
            with m.Elif(ex.rc_left != 0):
                m.next = "PK_FETCH"  # the count of rc_neuron arrives next clock
            with m.Elif(self.pk_nb != 0):  # pad the last byte
                m.d.sync += [*shift, self.pk_byte.eq(Cat(self.pk_byte[1:], 0))]
            with m.Else():
                m.next = "COUNTS_END"
        with m.State("PK_FETCH"):
            m.d.comb += core.busy.eq(1)
            m.d.sync += [self.pk_cnt.eq(cnt.rd_data), self.pk_cb.eq(self.pk_w),
                         ex.rc_neuron.eq(ex.rc_neuron + 1), ex.rc_left.eq(ex.rc_left - 1)]
            m.next = "PK"
