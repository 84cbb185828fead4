"""Layer-0 current reuse: one step's synaptic currents kept and replayed (``docs/networks.md``).

A layer whose inputs are stable during a run (layer 0 of a :class:`~lifgate.hdl.network.Network`:
its ``x`` port must not change while the network is busy) gets the same currents
``sat(W . x)`` at every step of the run. :class:`CurrentCache` sits between that layer's
:class:`~lifgate.hdl.synapse.Synapse` and its :class:`~lifgate.hdl.array.LIFArray`: it passes
the synapse's beats through and keeps them, and on request sends the kept beats again, one per
clock, without the synapse. The network decides when the kept beats are still valid.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lifgate.config import ConfigTypeError

#: Words of one ``SB_SPRAM256KA``.
SPRAM_WORDS = 16384

__all__ = ["CurrentCache"]


class CurrentCache(wiring.Component):
    """Keeps the ``depth`` beats of one synaptic step and replays them.

    Pass-through (not replaying): ``o_stream`` is ``i_stream``, and every beat taken is written
    to the cache at the next address (the address restarts at 0 on ``record``). Replay: a
    ``replay`` strobe sends the ``depth`` kept beats in address order on ``o_stream``, one per
    clock from the second clock after the strobe (without backpressure the last one is taken
    ``depth + 1`` clocks after the strobe, and ``replaying`` is high for ``depth + 1`` clocks:
    :meth:`replay_clocks`); ``i_stream`` is not read then.

    The beats live in a :class:`~amaranth.lib.memory.Memory` (block RAM) for ``depth >= 4``,
    else in registers (one lane per neuron on the ECP5: a single wide beat, which as a block
    RAM would take one RAM per 36 bits); with ``ram="spram"`` in iCE40 UltraPlus
    ``SB_SPRAM256KA`` blocks (16K x 16 each, single-port: the cache never reads and writes in
    the same clock), which saves a block RAM on the UP5K, whose SPRAMs the network leaves free.

    Parameters
    ----------
    layout : ArrayLayout
        The beat (the synapse's ``i_stream`` payload).
    depth : int
        Beats per step (the synapse's ``D``), 1 to 65536 (16384 with ``ram="spram"``).
    ram : str
        ``"memory"`` (block RAM or registers, as above) or ``"spram"`` (at most 64-bit beats:
        four SPRAMs).
    valid_copies : int
        Structure only: ports ``i_valid_c`` (``In(valid_copies)``, copies of
        ``i_stream.valid``: the synapse's ``valid_c``) and ``o_valid_c`` (``Out``, copies of
        ``o_stream.valid`` for an array's ``i_valid_c``), each copy picked by its own copies of
        the replay registers; default 0, no ports.

    Members
    -------
    i_stream : ``In(stream.Signature(layout))``
        From the synapse.
    o_stream : ``Out(stream.Signature(layout))``
        To the array.
    record : ``In(1)``
        Strobe with the synapse's ``start``: the next beats are kept from address 0.
    replay : ``In(1)``
        Strobe (not while a step is passing through): send the kept beats.
    replaying : ``Out(1)``
        High from the clock after ``replay`` until the last kept beat has been taken.
    """

    #: Clocks of a replay beyond ``depth``, without backpressure: one clock of block RAM (or
    #: register) read before the first beat is valid.
    latency = 1

    def __init__(self, *, layout, depth: int, ram: str = "memory", valid_copies: int = 0):
        width = data.Layout.cast(layout).size
        hi = SPRAM_WORDS if ram == "spram" else 1 << 16
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= hi:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise ConfigTypeError(f"Depth must be an integer in [1, {hi}], not {depth!r}")
        if ram not in ("memory", "spram") or (ram == "spram" and width > 64):
            self._MustUse__silence = True
            raise ConfigTypeError(f"Ram must be 'memory' or 'spram' (beats of at most 64 bits), "
                                  f"not {ram!r}")
        if isinstance(valid_copies, bool) or not isinstance(valid_copies, int) or not (
                0 <= valid_copies <= 64):
            self._MustUse__silence = True
            raise ConfigTypeError(f"Valid copies must be an integer in [0, 64], not "
                                  f"{valid_copies!r}")
        self.depth = depth
        self.ram = ram
        self.valid_copies = valid_copies
        self.layout = layout
        super().__init__({
            "i_stream": In(stream.Signature(layout)),
            "o_stream": Out(stream.Signature(layout)),
            "record": In(1),
            "replay": In(1),
            "replaying": Out(1),
            **({"i_valid_c": In(valid_copies), "o_valid_c": Out(valid_copies)}
               if valid_copies else {}),
        })

    def replay_clocks(self) -> int:
        """Clocks ``replaying`` is high in one replay without backpressure (the clock after
        the strobe to the clock the last beat is taken): the gateware's side of
        :func:`lifgate.golden.synapse.replay_clocks`."""
        return self.depth + self.latency

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        width = data.Layout.cast(self.layout).size
        wa = Signal(range(max(2, D)))  # write address (pass-through)
        ra = Signal(range(max(2, D + 1)))  # next address to read (replay)
        left = Signal(range(D + 1))  # beats still to read
        rvalid = Signal()
        replaying = Signal()
        m.d.comb += self.replaying.eq(replaying)
        take_in = Signal()
        m.d.comb += take_in.eq(~replaying & self.i_stream.valid & self.o_stream.ready)
        adv = Signal()  # the output register may load: empty, or its beat is taken
        m.d.comb += adv.eq(replaying & (~rvalid | self.o_stream.ready))
        if self.ram == "spram":
            rdata = self._spram(m, wa, ra, take_in, adv, replaying, width)
        elif D >= 4:
            mem = Memory(shape=width, depth=D, init=[])
            m.submodules.mem = mem
            wr = mem.write_port()
            rd = mem.read_port()
            m.d.comb += [wr.addr.eq(wa), wr.data.eq(self.i_stream.payload.as_value()),
                         wr.en.eq(take_in), rd.addr.eq(ra), rd.en.eq(adv)]
            rdata = rd.data
        else:
            regs = [Signal(width, name=f"beat{a}") for a in range(D)]
            rdata = Signal(width)
            for a, r in enumerate(regs):
                with m.If(take_in & (wa == a)):
                    m.d.sync += r.eq(self.i_stream.payload.as_value())
                with m.If(adv & (ra == a)):
                    m.d.sync += rdata.eq(r)
        with m.If(take_in):
            m.d.sync += wa.eq(Mux(wa == D - 1, 0, wa + 1))
        with m.If(self.record):
            m.d.sync += wa.eq(0)
        with m.If(self.replay):
            m.d.sync += [replaying.eq(1), rvalid.eq(0), ra.eq(0), left.eq(D)]
        with m.Elif(adv):
            m.d.sync += rvalid.eq(left != 0)
            with m.If(left != 0):
                m.d.sync += [ra.eq(ra + 1), left.eq(left - 1)]
            with m.Else():
                m.d.sync += replaying.eq(0)
        # ``o_stream.valid`` picks with its own copy of ``replaying`` (advanced as that is, from
        # its own value, so Yosys keeps both): ``replaying`` also picks the wide payload, and
        # its net from there to the array's clock-enable copies (the array's ``i_stream.valid``)
        # was the ULX3S network board's critical path at 100 MHz (10.8 of 11.6 ns routing).
        rep_v = Signal(name="replaying_v")
        with m.If(self.replay):
            m.d.sync += rep_v.eq(1)
        with m.Elif(rep_v & (~rvalid | self.o_stream.ready) & (left == 0)):
            m.d.sync += rep_v.eq(0)
        m.d.comb += [
            self.o_stream.valid.eq(Mux(rep_v, rvalid, self.i_stream.valid)),
            self.o_stream.payload.eq(Mux(replaying, rdata, self.i_stream.payload.as_value())),
            self.i_stream.ready.eq(~replaying & self.o_stream.ready),
        ]
        # Copies of o_stream.valid (``valid_copies``): each from its own copies of
        # ``replaying_v`` and ``rvalid``, advanced as those are from their own values (so that
        # synthesis keeps them apart), and its own copy of the synapse's valid.
        for k in range(self.valid_copies):
            rep_k, rvalid_k = Signal(name=f"replaying_v{k}"), Signal(name=f"rvalid{k}")
            adv_k = rep_k & (~rvalid_k | self.o_stream.ready)
            with m.If(self.replay):
                m.d.sync += [rep_k.eq(1), rvalid_k.eq(0)]
            with m.Elif(adv_k):
                m.d.sync += rvalid_k.eq(left != 0)
                with m.If(left == 0):
                    m.d.sync += rep_k.eq(0)
            m.d.comb += self.o_valid_c[k].eq(Mux(rep_k, rvalid_k, self.i_valid_c[k]))
        return m

    def _spram(self, m, wa, ra, take_in, adv, replaying, width):
        """The beats in ``ceil(width / 16)`` ``SB_SPRAM256KA``: written while passing through
        (``take_in``), read while replaying (``adv``); returns the read data (one clock)."""
        addr = Signal(14, name="spram_addr")
        m.d.comb += addr.eq(Mux(replaying, ra, wa))
        wdata = Cat(self.i_stream.payload.as_value(), Const(0, 64))
        outs = []
        for k in range(-(-width // 16)):
            dout = Signal(16, name=f"spram{k}_out")
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=addr, i_DATAIN=wdata[16 * k:16 * (k + 1)], i_MASKWREN=Const(0b1111, 4),
                i_WREN=take_in, i_CHIPSELECT=take_in | adv, i_CLOCK=ClockSignal(),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=dout,
            )
            outs.append(dout)
        rdata = Signal(width, name="spram_rdata")
        m.d.comb += rdata.eq(Cat(*outs)[:width])
        return rdata
