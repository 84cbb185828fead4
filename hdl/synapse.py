"""The synaptic stage: input spikes (or small unsigned values) to per-neuron input currents.

Computes ``docs/networks.md`` ("Synaptic stage") bit for bit: ``I[j] = sat_IW(sum_i W[j, i] x[i])``;
the model is :func:`lifgate.golden.synapse.synaptic_current`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.hdl.dsp import KINDS as MULTIPLIERS
from lifgate.hdl.dsp import RegisteredMul

from lifgate.config import ConfigTypeError, acc_width

__all__ = ["Synapse", "saturate"]


def saturate(x, width: int):
    """``min(max(x, -2^(width-1)), 2^(width-1) - 1)`` of a signed value, as a ``signed(width)``."""
    if len(x) <= width:
        return x.as_signed() if len(x) == width else x
    top = x[width - 1:]  # all equal to the sign bit iff x fits
    neg = x[-1]
    over = ~neg & top.any()
    under = neg & ~top.all()
    return Mux(over, Const((1 << (width - 1)) - 1, signed(width)),
               Mux(under, Const(-(1 << (width - 1)), signed(width)), x[:width].as_signed()))


def _csa_add(m: Module, acc_s: Signal, acc_c: Signal, w) -> list:
    """The statements of ``acc_s + acc_c <- acc_s + acc_c + w`` (modulo ``2^len(acc_s)``) in
    carry-save form: bit ``j`` of the new sum is the XOR of the three bits ``j``, bit ``j + 1``
    of the new carry their majority (a LUT each, no carry chain). ``w`` (signed) is
    sign-extended."""
    n = len(acc_s)
    wx = Signal(n, name=f"{acc_s.name}_w")
    m.d.comb += wx.eq(w)
    s, c = acc_s, acc_c
    maj = (s & c) | (s & wx) | (c & wx)
    return [acc_s.eq(s ^ c ^ wx), acc_c.eq(Cat(Const(0, 1), maj[:n - 1]))]


def _two_lowest(bits):
    """``(any, two, first, second)``: whether ``bits`` has at least one / two bits set, and the
    indices of its lowest and second-lowest set bits (meaningful only where they exist), by a
    balanced tree: ``ceil(log2(len(bits)))`` levels, each a 2:1 (``first``) or 3:1
    (``second``) choice on the low half's ``any`` and ``two``."""
    n = len(bits)
    if n == 1:
        return bits[0], Const(0, 1), Const(0, 1), Const(0, 1)
    k = 1 << (ceil_log2(n) - 1)  # the low half: a power of two, so its indices fit k bits
    lo_any, lo_two, lo_1, lo_2 = _two_lowest(bits[:k])
    hi_any, hi_two, hi_1, hi_2 = _two_lowest(bits[k:])
    width = ceil_log2(k)
    if not width:
        return (lo_any | hi_any, lo_any & hi_any, Cat(~lo_any), Const(1, 1))
    lo_1, lo_2, hi_1, hi_2 = (v[:width] for v in (lo_1, lo_2, hi_1, hi_2))
    first = Cat(Mux(lo_any, lo_1, hi_1), ~lo_any)
    second = Cat(Mux(lo_two, lo_2, Mux(lo_any, hi_1, hi_2)), ~lo_two)
    return lo_any | hi_any, lo_two | hi_two | (lo_any & hi_any), first, second


def _below(bits):
    """Per position ``j``: ``(any, two)`` of ``bits[:j]`` (at least one / two of the bits below
    ``j`` set), by a parallel prefix (Sklansky: ``ceil(log2(n))`` levels, each combine
    ``any = a | a'``, ``two = t | t' | (a & a')``), not one OR tree per position: those,
    and a second prefix on the first one's result for the second port, gave the mask's loop 7
    logic levels (the ECP5 harness's critical path at 92-94 MHz, the UP5K's at 33-42 MHz)."""
    def scan(lo, hi):  # inclusive prefixes of bits[lo:hi]
        if hi - lo == 1:
            return [(bits[lo], Const(0, 1))]
        mid = lo + (1 << (ceil_log2(hi - lo) - 1))
        left, right = scan(lo, mid), scan(mid, hi)
        a, t = left[-1]
        return left + [(a | a2, t | t2 | (a & a2)) for a2, t2 in right]
    inc = scan(0, len(bits))
    return [(Const(0, 1), Const(0, 1))] + inc[:-1]


def _check(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigTypeError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")


class Synapse(wiring.Component):
    """``I = sat(W . x)`` for ``outputs`` neurons, ``lanes`` of them in parallel.

    The output neuron ``j`` is lane ``p = j % lanes``, address ``a = j // lanes``, exactly as in
    :class:`~lifgate.hdl.array.LIFArray`, so ``i_stream`` connects straight to an array's
    ``i_stream``. Weights live in one :class:`~amaranth.lib.memory.Memory` (block RAM) of
    ``(outputs // lanes) * inputs`` rows of ``lanes`` signed ``w_width``-bit weights: row
    ``a * inputs + i``, lane ``p`` holds ``W[a * lanes + p, i]``.

    Operation: a ``start`` strobe (when idle) computes one beat per address ``a = 0 .. D-1``;
    every lane accumulates its weights exactly (``acc_width`` bits, so the order does not matter
    and nothing wraps); the sum is saturated to ``i_width`` and offered on ``i_stream``. The
    next address starts once the beat has been taken. Two ways to visit the inputs:

    * **dense** (multi-bit inputs, or ``events=False``): every lane reads its weight for input
      ``i = 0 .. inputs-1``, one per clock, and multiplies it by ``x[i]`` (an AND for 1-bit
      inputs). One address takes ``inputs + 4`` clocks without backpressure: ``inputs`` reads,
      then 4 clocks of latency (block RAM read, weight register, product, accumulate).
    * **spike-driven** (1-bit inputs, the default for them): ``x`` is turned into a list of
      events, the indices ``i`` with ``x[i] = 1`` in increasing order (a priority encoder takes
      the lowest set bit of a mask register and clears it, one event per clock); each event
      reads one weight row and adds it to every lane's accumulator. A silent input costs
      nothing: one address takes ``max(k, 1) + 3`` clocks without backpressure for ``k``
      spikes (``k = 0`` issues one read whose product is forced to 0, so the beat is sent),
      then 3 clocks of latency (row address register, block RAM read, accumulate: the
      product of a weight and a spike is the accumulator's clock enable, the weight goes
      straight from the read port's register into its carry-save accumulator, a sum and a carry
      register added once at the output). The sum is the same as the dense one, bit for bit.

    Parameters
    ----------
    inputs, outputs, lanes : int
        Fan-in, number of output neurons (a multiple of ``lanes``), lanes.
    w_width : int
        Signed weight width, 2 to 18.
    x_width : int
        Unsigned input width, 1 (spikes) to 16.
    i_width : int
        Signed output current width (the array's ``i_width``), 2 to 32.
    events : bool or None
        Spike-driven (event list) instead of dense; only for ``x_width == 1``. Default (None):
        spike-driven for 1-bit inputs, dense otherwise.
    event_ports : int
        Events per clock when spike-driven, 1 or 2 (2: a second read port on the weight
        memory, a copy of it in block RAM, and a second accumulator per lane for its rows,
        the two sums added at the output; integer addition is exact, so the order does not
        matter):
        ``ceil(max(k, 1) / 2) + 3`` clocks per address.
    x_memory : bool
        Dense only: read the inputs from a memory outside (``x_addr`` out, ``x_data`` in one
        clock later, a block RAM's synchronous read port) instead of the ``x`` port, so they
        need no register per input bit (the network board's layer 0: 64 x 5 bits).
    valid_copies : int
        Structure only: the port ``valid_c`` (``Out(valid_copies)``) with as many copies of
        ``i_stream.valid`` (each its own register, equal to it in every clock) for an array's
        copies of its enable (:class:`~lifgate.hdl.array.LIFArray`'s ``valid_copies``);
        default 0, no port.
    multiplier : str
        Kind of the dense products' multipliers (:data:`lifgate.hdl.dsp.KINDS`): ``"ecp5"``
        puts each lane's weight register, input register and product register into one
        ``MULT18X18D`` (:class:`~lifgate.hdl.dsp.RegisteredMul`; simulated with
        :func:`lifgate.hdl.dsp.simulation_models`), for multi-bit inputs; anything else, and
        1-bit inputs, build them in the fabric. Structure only: the clocks and the sums are
        the same.

    Members
    -------
    w_we : ``In(1)``
        Weight write strobe (while idle).
    w_addr : ``In(ceil_log2(rows))``
        Row ``a * inputs + i``.
    w_lane : ``In(ceil_log2(lanes))``
        Lane ``p``; writes to a lane ``>= lanes`` are ignored.
    w_data : ``In(signed(w_width))``
    r_addr : ``In(ceil_log2(rows))``
        Weight read-back (while idle): ``r_data`` is row ``r_addr`` as presented two clocks
        earlier (the read uses the computation's own address register and read port).
    r_data : ``Out(data.ArrayLayout(signed(w_width), lanes))``
    x : ``In(data.ArrayLayout(unsigned(x_width), inputs))``
        The inputs; must stay stable from ``start`` until ``busy`` falls.
    x_addr : ``Out(range(inputs))``, x_data : ``In(unsigned(x_width))``
        With ``x_memory`` instead of ``x``: ``x_data`` is the input ``x_addr`` named a clock
        earlier.
    start : ``In(1)``
        Strobe, when idle: compute and send the ``D`` beats.
    busy : ``Out(1)``
        High from the clock after ``start`` until the last beat has been taken.
    i_stream : ``Out(stream.Signature(data.ArrayLayout(signed(i_width), lanes)))``
        One beat per address, in order; lane ``p`` in element ``p``.
    """

    def __init__(self, *, inputs: int, outputs: int, lanes: int, w_width: int = 8,
                 x_width: int = 1, i_width: int = 16, events: bool | None = None,
                 event_ports: int = 1, x_memory: bool = False, multiplier: str = "fabric",
                 valid_copies: int = 0):
        try:
            _check("Inputs", inputs, 1, 1 << 16)
            _check("Lanes", lanes, 1, 64)
            _check("Outputs", outputs, 1, 1 << 20)
            if outputs % lanes:
                raise ConfigTypeError(
                    f"Outputs must be a multiple of lanes ({lanes}), not {outputs!r}")
            _check("Weight width", w_width, 2, 18)
            _check("Input width", x_width, 1, 16)
            _check("Current width", i_width, 2, 32)
            if events is None:
                events = x_width == 1
            if not isinstance(events, bool) or (events and x_width != 1):
                raise ConfigTypeError(
                    f"Events must be a bool (True only for x_width 1), not {events!r}")
            _check("Event ports", event_ports, 1, 2)
            if not isinstance(x_memory, bool) or (x_memory and events):
                raise ConfigTypeError(
                    f"X memory must be a bool (True only when dense), not {x_memory!r}")
            _check("Valid copies", valid_copies, 0, 64)
            if multiplier not in MULTIPLIERS:
                raise ConfigTypeError(f"Multiplier must be one of "
                                      f"{', '.join(map(repr, MULTIPLIERS))}, not {multiplier!r}")
        except TypeError:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        self.inputs, self.outputs, self.lanes = inputs, outputs, lanes
        self.w_width, self.x_width, self.i_width = w_width, x_width, i_width
        self.events = events
        self.x_memory = x_memory
        self.multiplier = multiplier
        self.valid_copies = valid_copies
        # The dense products in MULT18X18Ds with their own registers (multi-bit inputs only:
        # a 1-bit input's product is an AND).
        self._dsp = multiplier == "ecp5" and not events and x_width > 1
        self.event_ports = event_ports if events else 1
        self.depth = outputs // lanes
        self.rows = self.depth * inputs
        super().__init__({
            "w_we": In(1),
            "w_addr": In(max(1, ceil_log2(self.rows))),
            "w_lane": In(max(1, ceil_log2(lanes))),
            "w_data": In(signed(w_width)),
            "r_addr": In(max(1, ceil_log2(self.rows))),
            "r_data": Out(data.ArrayLayout(signed(w_width), lanes)),
            **({"x_addr": Out(range(max(2, inputs))), "x_data": In(unsigned(x_width))}
               if x_memory else {"x": In(data.ArrayLayout(unsigned(x_width), inputs))}),
            "start": In(1),
            "busy": Out(1),
            "i_stream": Out(stream.Signature(data.ArrayLayout(signed(i_width), lanes))),
            **({"valid_c": Out(valid_copies)} if valid_copies else {}),
        })

    #: Clocks per address without backpressure, beyond the reads (``inputs`` of them dense,
    #: ``ceil(max(k, 1) / event_ports)`` spike-driven): the pipeline's latency, dense.
    overhead = 4

    #: The same, spike-driven: no weight register (the spike is the accumulator's clock enable,
    #: the weight goes straight into its carry-save accumulator).
    event_overhead = 3

    def step_clocks(self, spikes: int = 0) -> int:
        """Clocks of one step (all ``D`` addresses) without backpressure, ``spikes`` of the
        inputs at 1 (ignored when dense); the gateware's side of the cost model
        :func:`lifgate.golden.synapse.synapse_clocks` (the gateware does not import the golden
        models; ``tests/test_synapse.py`` checks both against the clocks of a run)."""
        if not self.events:
            return self.depth * (self.inputs + self.overhead)
        reads = -(-max(int(spikes), 1) // self.event_ports)
        return self.depth * (reads + self.event_overhead)

    def elaborate(self, platform):
        m = Module()
        P, n = self.lanes, self.inputs
        A = acc_width(n, self.w_width, self.x_width)

        # ``no_rw_check``: a read of the row being written in the same clock is left undefined
        # (weights are written only while idle, and read back in other clocks), so Yosys adds
        # no read-before-write emulation: its multiplexer after the block RAM's read port was
        # in the ULX3S network board's critical path (the DP16KD's 5.8 ns clock-to-out, then
        # the emulation's LUT, then the accumulator: 98.9 MHz at 100, issue 17).
        wmem = Memory(shape=data.ArrayLayout(signed(self.w_width), P), depth=max(2, self.rows),
                      init=[], attrs={"no_rw_check": 1})
        m.submodules.weights = wmem
        wr = wmem.write_port(granularity=1)  # one lane (array element) per enable bit
        rd = wmem.read_port()
        m.d.comb += [
            wr.addr.eq(self.w_addr),
            wr.data.eq(Cat([self.w_data] * P)),
            wr.en.eq(Mux(self.w_we, 1 << self.w_lane, 0)[:P]),
        ]
        row = Signal(range(max(2, self.rows)))
        m.d.comb += [rd.addr.eq(row), rd.en.eq(1), self.r_data.eq(rd.data)]
        out_valid = Signal()
        # Both visits deliver, for the clock a weight row sits at the block RAM's address
        # (``row``): ``issue`` and ``last`` of the address's reads; then the factor of that
        # row, ``xw``, two clocks later (when the registered weights are there). With two
        # event ports, a second row (``row2``, a second read port) and its factor. Dense, also
        # ``xw_next``: what ``xw`` registers (for a multiplier with its own operand registers).
        if self.events:
            issue, last, factors = self._event_visit(m, row, out_valid)
        else:
            issue, last, xw, xw_next = self._dense_visit(m, row, out_valid)
            factors = [(row, xw)]
        reads = [rd.data]
        for addr, _ in factors[1:]:
            rd2 = wmem.read_port()
            m.d.comb += [rd2.addr.eq(addr), rd2.en.eq(1)]
            reads.append(rd2.data)

        v1, last1 = Signal(), Signal()
        m.d.sync += [v1.eq(issue), last1.eq(last)]
        if self.events:
            # Spike-driven, the weights go from the read port (a register) into the
            # accumulators, the spike their clock enable: no weight register, one clock less
            # per address (issue 17).
            vw, lastw, wregs = v1, last1, reads
        else:
            # Stage 2: the weights are registered (a block RAM's output straight into a
            # multiplier was the critical path: 67 MHz on the ECP5-85F,
            # bench/bench_network_fpga.py).
            vw, lastw = Signal(), Signal()
            m.d.sync += [vw.eq(v1), lastw.eq(last1)]
            wregs = []
            if not self._dsp:
                for e, data_e in enumerate(reads):
                    wreg = Signal.like(rd.data, name="wreg" if e == 0 else f"wreg{e}")
                    m.d.sync += wreg.eq(data_e)
                    wregs.append(wreg)
        # Stage 3 (dense only): products, registered.
        prods = []
        if not self.events:
            v2, last2 = Signal(), Signal()
            m.d.sync += [v2.eq(vw), last2.eq(lastw)]
            ((_, xw),) = factors
            for p in range(P):
                if self._dsp:
                    # Stages 2 and 3 in a MULT18X18D (``RegisteredMul``, latency 2): its
                    # operand registers are the weight register (the block RAM's read port
                    # in) and ``xw`` (``xw_next`` in), its output register the product's. The
                    # fabric registers around an unregistered block were the ULX3S network
                    # board's critical path at 100 MHz (3.9 ns in the block, 6 ns of routing,
                    # issue 17). Same clocks, same numbers.
                    mul = RegisteredMul(signed(self.w_width), unsigned(self.x_width),
                                        kind=self.multiplier)
                    m.submodules[f"mul{p}"] = mul
                    m.d.comb += [mul.a.eq(reads[0][p]), mul.b.eq(xw_next), mul.ce.eq(1)]
                    prods.append(mul.p)
                    continue
                w = wregs[0][p]
                r = Signal(signed(self.w_width + self.x_width), name=f"prod{p}")
                m.d.sync += r.eq(Mux(xw[0], w, 0) if self.x_width == 1 else w * xw)
                prods.append(r)
        else:
            v2, last2 = vw, lastw
        # Stage 4: accumulate (exact); the beat is valid once the last product is in.
        m.d.sync += out_valid.eq(Mux(v2 & last2, 1, out_valid & ~self.i_stream.ready))
        # Copies of out_valid (``valid_copies``), each advanced from its own value as out_valid
        # is, so that synthesis keeps them apart: each can sit next to the array lanes it
        # enables (:class:`~lifgate.hdl.array.LIFArray`'s ``valid_copies``).
        for k in range(self.valid_copies):
            vk = Signal(name=f"out_valid_c{k}")
            m.d.sync += vk.eq(Mux(v2 & last2, 1, vk & ~self.i_stream.ready))
            m.d.comb += self.valid_c[k].eq(vk)
        # The accumulators are cleared the clock after their beat was taken (``clear_acc``, a
        # register: the FFs' synchronous reset), before the next address's first product can
        # arrive (at least 2 clocks later), instead of a choice between 0 and ``acc`` on the
        # first product: that choice's select, fanned out to every bit of every lane, was the
        # ECP5 network's critical path (84 MHz, 7.7 ns of routing; session 8). After a reset
        # they are 0 as well.
        clear_acc = Signal()
        m.d.sync += clear_acc.eq(out_valid & self.i_stream.ready)
        for p in range(P):
            if self.events:
                # Spike-driven: one accumulator per event port, and the port's spike is its
                # clock enable (``acc += w`` iff the row was a real event), so the block RAM's
                # read port (5.8 ns clock-to-out on the ECP5) goes straight into the
                # accumulator: an AND and a sum of the two ports' rows in front of it made this
                # the ULX3S network board's critical path at 100 MHz (90.4 MHz, issue 17). The
                # accumulator is carry-save (``_csa_add``: a sum and a carry register, a LUT
                # per bit, no carry chain after the block RAM: the chain was the next
                # critical path, 99.1 MHz); the two registers of every port are added at the
                # output, modulo 2^A: the exact sum, as it fits in A bits.
                parts = []
                for e, (wreg, (_, xw)) in enumerate(zip(wregs, factors, strict=True)):
                    tag = f"{p}" if e == 0 else f"{p}_{e}"
                    acc_s = Signal(A, name=f"acc{tag}_s")
                    acc_c = Signal(A, name=f"acc{tag}_c")
                    with m.If(clear_acc):
                        m.d.sync += [acc_s.eq(0), acc_c.eq(0)]
                    with m.Elif(v2 & xw[0]):
                        m.d.sync += _csa_add(m, acc_s, acc_c, wreg[p])
                    parts.append(acc_s + acc_c)
                total = (parts[0] if len(parts) == 1 else parts[0] + parts[1])[:A].as_signed()
            else:
                total = Signal(signed(A), name=f"acc{p}")
                with m.If(clear_acc):
                    m.d.sync += total.eq(0)
                with m.Elif(v2):
                    m.d.sync += total.eq(total + prods[p])
            m.d.comb += self.i_stream.payload[p].eq(saturate(total, self.i_width))
        m.d.comb += self.i_stream.valid.eq(out_valid)
        return m

    def _dense_visit(self, m, row, out_valid):
        """Every input of every address, in order: ``row`` counts through the memory."""
        D, n = self.depth, self.inputs
        i = Signal(range(max(2, n)))
        a = Signal(range(max(2, D)))
        issue = Signal()
        last_i = Signal()
        m.d.comb += last_i.eq(i == n - 1)
        with m.FSM(name="syn"):
            with m.State("IDLE"):
                m.d.sync += row.eq(self.r_addr)  # weight read-back while idle
                with m.If(self.start):
                    m.d.sync += [row.eq(0), i.eq(0), a.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), issue.eq(1)]
                m.d.sync += [row.eq(row + 1), i.eq(Mux(last_i, 0, i + 1))]
                with m.If(last_i):
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(out_valid & self.i_stream.ready):
                    with m.If(a == D - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += a.eq(a + 1)
                        m.next = "RUN"

        if self.x_memory:
            # x[i] from the memory outside: addressed by i, registered once more, so it meets
            # its weight as the two registered halves below do.
            xw = Signal(self.x_width)
            m.d.comb += self.x_addr.eq(i)
            m.d.sync += xw.eq(self.x_data)
            return issue, last_i, xw, self.x_data
        # The input x[i] is selected in two registered halves (a group of S = 2^k inputs by the
        # high bits of i, then one of the group by the low bits): one n-to-1 multiplexer in a
        # single stage was the UP5K build's critical path (42 MHz, bench/bench_network_fpga.py).
        k = ceil_log2(n) // 2
        S = 1 << k
        G = -(-n // S)
        xs = [self.x[j] for j in range(n)] + [Const(0, self.x_width)] * (G * S - n)
        groups = [Cat(xs[g * S:(g + 1) * S]) for g in range(G)]
        xg1 = Signal(S * self.x_width)
        m.d.sync += xg1.eq(Array(groups)[i >> k] if G > 1 else groups[0])
        low1 = Signal(range(max(2, S)))
        if k:
            m.d.sync += low1.eq(i[:k])
        xw = Signal(self.x_width)
        elems = [xg1[e * self.x_width:(e + 1) * self.x_width] for e in range(S)]
        xw_next = Array(elems)[low1] if S > 1 else elems[0]
        m.d.sync += xw.eq(xw_next)
        return issue, last_i, xw, xw_next

    def _event_visit(self, m, row, out_valid):
        """The inputs at 1 of every address, in increasing order (``event_ports`` events per
        clock).

        RUN clock ``t``: the lowest set bit of ``mask`` is the event (with two ports, the two
        lowest); ``mask`` loses them and ``row`` (``row2``) gets ``base + index`` (a register,
        so the priority encoder and the adder are not in the block RAM's address path); the
        rows are read at ``t + 1``, when ``mask == 0`` tells whether they were the last."""
        D, n = self.depth, self.inputs
        mask = Signal(n)
        base = Signal(range(max(2, self.rows)))
        a = Signal(range(max(2, D)))
        fresh = Signal()  # the next event is the address's first
        rows = [row] + [Signal.like(row, name=f"row{e + 2}")
                        for e in range(self.event_ports - 1)]
        # The lowest set bits of ``mask`` by trees of 2:1 choices (log2(n) levels, no carry
        # chain: a carry-chain priority encoder, ``mask & -mask``, gave the UP5K 35 MHz); the
        # mask without them keeps bit j iff at least ``event_ports`` lower bits are set (a
        # parallel prefix count, not a decode of the indices: that decode in the mask's loop
        # gave the UP5K 34.7 MHz).
        has1, has2, idx1, idx2 = _two_lowest(mask)
        below = _below(mask)
        picks = []  # per port: (index, this port has an event)
        for e, (has, idx) in enumerate(((has1, idx1), (has2, idx2))[:self.event_ports]):
            index = Signal(range(max(2, n)), name=f"index{e}")
            m.d.comb += index.eq(idx)
            picks.append((index, has))
        left = Signal(n, name="left")
        m.d.comb += left.eq(Cat(*(mask[j] & below[j][self.event_ports - 1] for j in range(n))))
        issue, last = Signal(), Signal()
        reals = [Signal(name=f"real{e}") for e in range(self.event_ports)]
        # ``last`` is decided a clock after the issue, on the mask register (a wide NOR), not on
        # the priority encoder's carry chain: that chain into the state register was the UP5K
        # build's critical path (30.9 MHz, 35 logic levels).
        m.d.comb += last.eq(mask == 0)
        m.d.sync += issue.eq(0)
        pow2 = n & (n - 1) == 0  # base is a multiple of n: base | index needs no adder
        with m.FSM(name="syn"):
            with m.State("IDLE"):
                m.d.sync += row.eq(self.r_addr)  # weight read-back while idle
                with m.If(self.start):
                    m.d.sync += [mask.eq(self.x.as_value()), base.eq(0), a.eq(0), fresh.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                # Issue while events are left (or once, factor 0, for an address without any),
                # then wait for the beat; the next address starts when it has been taken.
                # Unconditional updates (no clock enable decoded from the mask: that was the
                # UP5K's next critical path): once the mask is empty, left = mask = 0, and a
                # row read without ``issue`` is ignored.
                m.d.comb += self.busy.eq(1)
                m.d.sync += [issue.eq(mask.any() | fresh), mask.eq(left),
                             fresh.eq(0)]
                for r, real, (index, has) in zip(rows, reals, picks, strict=True):
                    m.d.sync += [r.eq(base | index if pow2 else base + index), real.eq(has)]
                with m.If(out_valid & self.i_stream.ready):
                    with m.If(a == D - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [a.eq(a + 1), base.eq(base + n), fresh.eq(1),
                                     mask.eq(self.x.as_value())]
        factors = []
        for e, (r, real) in enumerate(zip(rows, reals, strict=True)):
            xw = Signal(name=f"xw{e}")  # with the row's weights, a clock after its address
            m.d.sync += xw.eq(real)
            factors.append((r, xw))
        return issue, last, factors
