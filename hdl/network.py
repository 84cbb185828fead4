"""Layered spiking networks: synaptic stages chained with LIF arrays (``docs/networks.md``).

The model is :func:`lifgate.golden.synapse.simulate_network`; this gateware matches it bit for
bit (spikes and membranes of every layer at every step).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lifgate.hdl.array import LIFArray, group_width, param_struct
from lifgate.hdl.current_cache import CurrentCache
from lifgate.hdl.dsp import KINDS as MULTIPLIERS
from lifgate.hdl.synapse import Synapse

from lifgate.config import ArrayShape, ConfigError, pack_params

__all__ = ["Network", "param_writes", "record_layout", "weight_writes"]


def _check_shapes(shapes):
    shapes = tuple(shapes)
    if not shapes:
        raise ConfigError("parameter 'shapes' must name at least one layer")
    for n, s in enumerate(shapes):
        if not isinstance(s, ArrayShape):
            raise ConfigError(f"parameter 'shapes[{n}]' must be an ArrayShape, not {s!r}")
        if s.layout.params != shapes[0].layout.params:
            raise ConfigError(
                f"parameter 'shapes[{n}]' must have the v_width, decay_frac, ref_width and reset "
                f"modes of layer 0 (one parameter word for all layers)"
            )
        if s.step_width != shapes[0].step_width:
            raise ConfigError(f"parameter 'shapes[{n}].step_width' must equal layer 0's")
        if s.spike_max != shapes[0].spike_max:
            raise ConfigError(f"parameter 'shapes[{n}].spike_max' must equal layer 0's "
                              f"({shapes[0].spike_max}): one record format for all layers")
    return shapes


def _check_recurrent(recurrent, shapes, *, x_width, reuse, x_memory) -> tuple:
    n = len(shapes)
    rec = (False,) * n if recurrent is None else tuple(recurrent)
    if len(rec) != n or not all(isinstance(r, bool) for r in rec):
        raise ConfigError(f"parameter 'recurrent' must be {n} bools (one per layer), not "
                          f"{recurrent!r}")
    if rec[0]:
        cw = shapes[0].count_width
        if x_width != cw or reuse or x_memory:
            raise ConfigError(f"a recurrent layer 0 needs x_width == its count width ({cw}), "
                              f"reuse=False and x_memory=False, not x_width={x_width!r}, "
                              f"reuse={reuse!r}, x_memory={x_memory!r}")
    return rec


def _check_skips(skips, shapes) -> tuple:
    n = len(shapes)
    sk = ((),) * n if skips is None else tuple(tuple(s) for s in skips)
    if len(sk) != n:
        raise ConfigError(f"parameter 'skips' must name {n} layers' sources, not {skips!r}")
    for layer, srcs in enumerate(sk):
        ok = all(isinstance(p, tuple) and len(p) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in p) for p in srcs)
        ks = [p[0] for p in srcs] if ok else []
        if not ok or ks != sorted(set(ks)) or any(not 0 <= k < layer - 1 for k in ks) or \
                any(not 0 <= d <= 64 for _, d in srcs):
            raise ConfigError(f"parameter 'skips[{layer}]' must be (layer, delay) pairs, "
                              f"layers increasing in [0, {layer - 2}] (earlier than the layer "
                              f"before), delays in [0, 64], not {srcs!r}")
    return sk


def record_layout(shapes, *, membrane: bool = True) -> data.StructLayout:
    """Payload of ``Network.s_stream``: one record per layer per step.

    ``layer``, ``step`` (``step_width``), ``spikes`` (``max N`` bits, bit ``j`` = neuron ``j``;
    bits past the layer's neurons are 0; with multi-spike output ``max N`` unsigned
    ``count_width``-bit counts) and, with ``membrane``, ``v`` (``max N`` signed
    ``v_width``-bit values, the new membrane ``v'``; 0 past the layer's neurons).
    """
    shapes = _check_shapes(shapes)
    nmax = max(s.neurons for s in shapes)
    cw = shapes[0].count_width
    fields = {
        "layer": unsigned(max(1, ceil_log2(len(shapes)))),
        "step": unsigned(shapes[0].step_width),
        "spikes": unsigned(nmax) if cw == 1 else data.ArrayLayout(unsigned(cw), nmax),
    }
    if membrane:
        fields["v"] = data.ArrayLayout(signed(shapes[0].v_width), nmax)
    return data.StructLayout(fields)


class Network(wiring.Component):
    """Layers ``0 .. L-1``, each a :class:`~lifgate.hdl.synapse.Synapse` feeding a
    :class:`~lifgate.hdl.array.LIFArray` (built without noise).

    Timing contract (no delay): a run of ``steps`` steps does, for each step ``t``, layer 0,
    then layer 1, ..., then layer ``L-1``. Layer 0's synapse reads the ``x`` port; layer ``l``'s
    reads the spikes layer ``l - 1`` produced **at the same step** ``t``. Each layer runs its
    array for one step (``start`` with ``steps = 1``, ``input_en = 1``), collects the spikes
    (and membranes) of its ``o_stream`` and then sends one record on ``s_stream``.

    Parameters
    ----------
    shapes : sequence of ArrayShape
        The arrays, layer 0 first. They must share ``v_width``, ``decay_frac``, ``ref_width``
        and ``step_width`` (one parameter word format).
    inputs : int
        Fan-in of layer 0.
    w_width : int
        Signed weight width of every synapse.
    x_width : int
        Unsigned width of layer 0's inputs (1: spikes).
    membrane : bool
        Send membranes in the records.
    events : bool
        Spike-driven synapses (``Synapse(events=True)``) for every layer with 1-bit inputs
        (layer ``l > 0``, and layer 0 if ``x_width == 1``); False: every synapse dense. With
        multi-spike output (``spike_max > 1``, the same in every layer) layer ``l > 0``'s
        inputs are the counts of layer ``l - 1`` (``count_width`` bits each), read densely.
    event_ports : int
        Events per clock of the spike-driven synapses (1 or 2; ``Synapse(event_ports=)``).
    reuse : bool
        Layer-0 current reuse (:class:`~lifgate.hdl.current_cache.CurrentCache`): layer 0's
        synapse works only on the first step of a run; its ``D_0`` beats are kept and sent
        again on the run's later steps (``x`` is stable during a run, so ``sat(W_0 . x)`` is
        the same at every step). The kept currents are dropped by every ``start`` and
        ``clear`` and by a layer-0 weight write (or an ``x_we``), so a run of one step with a
        new ``x`` is exact. False: layer 0's synapse works at every step.
    cache_ram : str
        Where layer 0's current cache keeps its beats: ``"memory"`` (block RAM, or registers
        for ``D_0 < 4``) or ``"spram"`` (iCE40 UltraPlus ``SB_SPRAM256KA``: the UP5K board,
        one block RAM fewer; simulated with Yosys' model of the primitive).
    x_memory : bool
        Keep layer 0's inputs in a block RAM written through ``x_we``/``x_addr``/``x_data``
        (while idle) instead of the ``x`` port (which costs a register per input bit where it
        is driven: 320 on the digits board). Only with a dense layer 0 (``x_width > 1`` or
        ``events=False``), which reads its inputs one at a time.
    array_options : dict or None
        Keyword arguments of every :class:`~lifgate.hdl.array.LIFArray` (``lanes_per_enable``,
        ``pipeline``, ...; a board's profile: ``NetworkBoardTop``), default none.
    multiplier : str
        ``Synapse(multiplier=)`` of every synapse: ``"ecp5"`` puts the dense multi-bit
        products (layer 0 of the digits network) into ``MULT18X18D`` blocks with their own
        registers (the ULX3S board); default ``"fabric"``. Structure only.
    recurrent : sequence of bool or None
        Per layer: recurrent weights (``lifgate.golden.synapse.Layer.rec``). Such a layer's
        synapse has fan-in ``n_{l-1} + N_l`` and reads ``Cat(s_{l-1}(t), prev_l)``, ``prev_l``
        a register that holds the layer's spikes (counts) of the previous step: latched when
        the layer's record is sent, cleared by ``clear``. A recurrent layer 0 needs
        ``x_width == count_width``, ``reuse=False`` and no ``x_memory``. Default: none.
    skips : sequence of sequences of (int, int), or None
        Per layer ``l``: ``(k, d)``, the earlier layers ``k < l - 1`` (increasing) whose spikes
        (counts) of ``d`` steps before (0 to 64) it also reads (skip connections,
        ``lifgate.golden.synapse.Layer.skip``). Its synapse reads ``Cat(s_{l-1}(t), s_k1(t -
        d1), ..., prev_l)``. ``d = 0``: layer ``k``'s spike register, which holds ``s_k(t)``
        from layer ``k``'s record of step ``t`` until layer ``k`` runs again at step ``t + 1``,
        after layer ``l`` (no extra register). ``d > 0``: ``d`` registers that shift in layer
        ``k``'s spikes when layer ``l``'s record is sent (as ``prev_l``), cleared by
        ``clear``. Default: none.

    Latency per step (no backpressure on ``s_stream``): layer by layer, the synapse's
    :meth:`~lifgate.hdl.synapse.Synapse.step_clocks` (``D_l (n_l + 4)`` dense,
    ``D_l (ceil(max(k_l, 1) / E) + 3)`` spike-driven for ``k_l`` spikes of layer ``l - 1``),
    overlapped with the array's own pipeline (which takes about 8 clocks to take its first
    beat: the floor of a quick layer), plus about 10 clocks per layer (launch, the array's
    last update, the record). With ``reuse``, layer 0 on the second and later steps of a run
    costs the replay's ``D_0 + 1`` clocks (:meth:`CurrentCache.replay_clocks`) instead of its
    synapse's, overlapped with the array likewise (which takes one beat per clock).

    Members
    -------
    w_we, w_layer, w_addr, w_lane, w_data : ``In``
        Weight write (while idle) into layer ``w_layer``'s synapse (see ``Synapse``: row
        ``a * inputs + i``, lane ``p`` holds ``W[a * lanes + p, i]``).
    r_layer, r_addr, r_lane : ``In``, r_data : ``Out(signed(w_width))``
        Weight read-back (while idle): ``r_data`` is the weight at ``r_layer``, row ``r_addr``,
        lane ``r_lane`` (as for the writes) presented four clocks earlier.
    param_we, param_layer, param_group, param_data : ``In``
        Parameter set write (while idle) into layer ``param_layer``'s array; registered once
        here, so it reaches the array's parameter memory a clock later.
    x : ``In(data.ArrayLayout(unsigned(x_width), inputs))``
        Layer 0's inputs, read every step: keep stable during a run (or run one step at a time).
    x_we, x_addr, x_data : ``In``
        With ``x_memory`` instead of ``x``: write ``x[x_addr] = x_data`` (while idle). The
        memory is not cleared by a reset (0 after power-up and in simulation).
    clear : ``In(1)``
        Strobe (when idle): clear every array; the step counter restarts at 0.
    start : ``In(1)``
        Strobe (when idle): run ``steps`` steps, continuing from the current state.
    steps : ``In(32)``
    busy, done : ``Out(1)``
        ``done`` pulses one clock when a clear or a run has finished.
    s_stream : ``Out(stream.Signature(record_layout(shapes, membrane=membrane)))``
        One record per layer per step, in the order the layers run.
    cache : CurrentCache or None
        Layer 0's current cache (``reuse``), between its synapse and its array.
    """

    def __init__(self, shapes, *, inputs: int, w_width: int = 8, x_width: int = 1,
                 membrane: bool = True, events: bool = True, event_ports: int = 1,
                 reuse: bool = True, x_memory: bool = False, cache_ram: str = "memory",
                 array_options: dict | None = None, recurrent=None, skips=None,
                 multiplier: str = "fabric"):
        try:
            if not isinstance(reuse, bool):
                raise ConfigError(f"parameter 'reuse' must be a bool, not {reuse!r}")
            if multiplier not in MULTIPLIERS:
                raise ConfigError(f"parameter 'multiplier' must be one of "
                                  f"{', '.join(map(repr, MULTIPLIERS))}, not {multiplier!r}")
            if cache_ram not in ("memory", "spram"):
                raise ConfigError(f"parameter 'cache_ram' must be 'memory' or 'spram', not "
                                  f"{cache_ram!r}")
            if not isinstance(x_memory, bool) or (x_memory and events and x_width == 1):
                raise ConfigError(f"parameter 'x_memory' must be a bool, True only with a dense "
                                  f"layer 0 (x_width > 1 or events=False), not {x_memory!r}")
            shapes = _check_shapes(shapes)
            recurrent = _check_recurrent(recurrent, shapes, x_width=x_width, reuse=reuse,
                                         x_memory=x_memory)
            skips = _check_skips(skips, shapes)
        except ConfigError:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        self.shapes = shapes
        self.array_options = dict(array_options or {})
        self.membrane = membrane
        self.events = bool(events)
        self.reuse = reuse
        self.x_memory = x_memory
        self.inputs = inputs
        self.w_width, self.x_width = w_width, x_width
        self.recurrent = recurrent
        self.skips = skips
        self.fan_in = [inputs] + [s.neurons for s in shapes[:-1]]
        self.fan_in = [f + (s.neurons if r else 0) + sum(shapes[k].neurons for k, _ in sk)
                       for f, s, r, sk in zip(self.fan_in, shapes, recurrent, skips, strict=True)]
        # a later layer's inputs: the spikes (1 bit) or the spike counts of the layer before
        xw = [x_width] + [s.count_width for s in shapes[:-1]]
        # With copies of the arrays' enable (``lanes_per_enable`` below a layer's lanes), every
        # copy gets its own copy of the valid bit of its currents (``valid_copies`` of the
        # synapse, the cache and the array: structure only). One register of it reaching every
        # copy was the ULX3S network board's critical path at 100 MHz (1 logic level, 8.9 to
        # 10.5 ns of routing, issue 17).
        lpe = self.array_options.get("lanes_per_enable")
        self.enable_groups = [-(-s.lanes // lpe) if lpe is not None and lpe < s.lanes else 0
                              for s in shapes]
        self.synapses = [
            Synapse(inputs=self.fan_in[n], outputs=s.neurons, lanes=s.lanes, w_width=w_width,
                    x_width=xw[n], i_width=s.i_width, events=self.events and xw[n] == 1,
                    event_ports=event_ports, x_memory=x_memory and n == 0,
                    multiplier=multiplier, valid_copies=self.enable_groups[n])
            for n, s in enumerate(shapes)
        ]
        #: Layer 0's :class:`CurrentCache` (None without ``reuse``).
        self.cache = (CurrentCache(layout=self.synapses[0].i_stream.payload.shape(),
                                   depth=self.synapses[0].depth, ram=cache_ram,
                                   valid_copies=self.enable_groups[0])
                      if reuse else None)
        L = len(shapes)
        super().__init__({
            "w_we": In(1),
            "w_layer": In(max(1, ceil_log2(L))),
            "w_addr": In(max(len(s.w_addr) for s in self.synapses)),
            "w_lane": In(max(len(s.w_lane) for s in self.synapses)),
            "w_data": In(signed(w_width)),
            "r_layer": In(max(1, ceil_log2(L))),
            "r_addr": In(max(len(s.w_addr) for s in self.synapses)),
            "r_lane": In(max(len(s.w_lane) for s in self.synapses)),
            "r_data": Out(signed(w_width)),
            "param_we": In(1),
            "param_layer": In(max(1, ceil_log2(L))),
            "param_group": In(max(group_width(s) for s in shapes)),
            "param_data": In(param_struct(shapes[0])),
            **({"x_we": In(1), "x_addr": In(range(max(2, inputs))),
                "x_data": In(unsigned(x_width))}
               if x_memory else {"x": In(data.ArrayLayout(unsigned(x_width), inputs))}),
            "clear": In(1),
            "start": In(1),
            "steps": In(32),
            "busy": Out(1),
            "done": Out(1),
            "s_stream": Out(stream.Signature(record_layout(shapes, membrane=membrane))),
        })

    @classmethod
    def for_network(cls, network, *, membrane: bool = True, events: bool = True,
                    event_ports: int = 1, reuse: bool = True,
                    x_memory: bool = False, cache_ram: str = "memory",
                    array_options: dict | None = None, multiplier: str = "fabric") -> Network:
        """The gateware of a :class:`lifgate.golden.synapse.Network` (its compile-time part).
        A recurrent layer 0 turns ``reuse`` off (its currents change from step to step)."""
        recurrent = tuple(layer.rec is not None for layer in network.layers)
        return cls([layer.config.shape for layer in network.layers], inputs=network.inputs,
                   w_width=network.w_width, x_width=network.x_width, membrane=membrane,
                   events=events, event_ports=event_ports, reuse=False if recurrent[0] else reuse,
                   x_memory=x_memory, cache_ram=cache_ram, array_options=array_options,
                   recurrent=recurrent, multiplier=multiplier,
                   skips=tuple(layer.sources for layer in network.layers))

    def elaborate(self, platform):
        m = Module()
        L = len(self.shapes)
        W = self.shapes[0].v_width
        arrays = []
        spikes, vregs = [], []
        pw_we, pw_group, pw_data = self._param_writes(m, L)
        for n, (shape, syn) in enumerate(zip(self.shapes, self.synapses, strict=True)):
            arr = LIFArray(shape, membrane=self.membrane, noise=False,
                           valid_copies=self.enable_groups[n] > 0, **self.array_options)
            arrays.append(arr)
            m.submodules[f"syn{n}"] = syn
            m.submodules[f"array{n}"] = arr
            if n == 0 and self.reuse:
                m.submodules.cache0 = self.cache
                wiring.connect(m, syn.i_stream, self.cache.i_stream)
                wiring.connect(m, self.cache.o_stream, arr.i_stream)
                if self.enable_groups[n]:
                    m.d.comb += [self.cache.i_valid_c.eq(syn.valid_c),
                                 arr.i_valid_c.eq(self.cache.o_valid_c)]
            else:
                wiring.connect(m, syn.i_stream, arr.i_stream)
                if self.enable_groups[n]:
                    m.d.comb += arr.i_valid_c.eq(syn.valid_c)
            m.d.comb += [
                syn.w_we.eq(self.w_we & (self.w_layer == n)),
                syn.w_addr.eq(self.w_addr),
                syn.w_lane.eq(self.w_lane),
                syn.w_data.eq(self.w_data),
                arr.param_we.eq(pw_we[n]),
                arr.param_group.eq(pw_group),
                arr.param_data.eq(pw_data),
                arr.input_en.eq(1),
                arr.steps.eq(1),
                arr.o_stream.ready.eq(1),
            ]
            if len(syn.w_lane) < len(self.w_lane):
                # A lane past this synapse's lanes must not alias a real one.
                with m.If(self.w_lane[len(syn.w_lane):].any()):
                    m.d.comb += syn.w_we.eq(0)
            # The beats of a step arrive in address order: shift them in from the top, so after
            # D beats address a's lane p sits at bit a * P + p.
            # With multi-spike output every lane brings a count of CW bits (neuron j at j CW).
            P, N, CW = shape.lanes, shape.neurons, shape.count_width
            s = Signal(N * CW, name=f"spikes{n}")
            beat = arr.o_stream.payload
            bs = Value.cast(beat.spikes)
            with m.If(arr.o_stream.valid):
                m.d.sync += s.eq(Cat(s[P * CW:], bs) if N > P else bs)
            spikes.append(s)
            if self.membrane:
                v = Signal(data.ArrayLayout(signed(W), N), name=f"v{n}")
                flat = v.as_value()
                with m.If(arr.o_stream.valid):
                    bv = beat.v.as_value()
                    m.d.sync += flat.eq(Cat(flat[P * W:], bv) if N > P else bv)
                vregs.append(v)

        self._read_back(m)

        prev, delayed = self._latches(spikes)
        self._inputs(m, spikes, prev, delayed)

        step = Signal(self.shapes[0].step_width)
        remaining = Signal(32)
        valid = Signal()
        m.d.comb += self.s_stream.valid.eq(valid)
        done = Signal()
        m.d.sync += done.eq(0)
        m.d.comb += self.done.eq(done)
        # The strobes to the arrays and synapses come from registers, set on the way into the
        # state that sends them: decoding them from the FSM state fed the state decode straight
        # into the arrays' control logic (the UP5K build's critical path).
        launch = Signal(L)  # launch[n]: high in state LAUNCH{n}
        clear = Signal()  # high in state CLEAR
        m.d.sync += [launch.eq(0), clear.eq(0)]
        m.d.comb += [arr.clear.eq(clear) for arr in arrays]
        for n in range(L):
            m.d.comb += [arrays[n].start.eq(launch[n]), self.synapses[n].start.eq(launch[n])]
        kept = self._layer0_reuse(m, launch[0])
        # The record register (hundreds of flip-flops with membranes) loads on ``send``, a
        # register that is high in the SEND states (set on the way in, with ``cur``, the layer
        # sent), and ``valid`` is set by ``send`` and dropped by ``ready`` (``valid`` is high in
        # the WAIT states only): the FSM's state decode fed the record's clock enable and
        # ``valid``'s (the ULX3S network board's critical path at 85 and 100 MHz, 5.8 ns of
        # routing from a LUT to the record's far flip-flops).
        send, cur = self._load_record(m, valid, step, spikes, vregs)

        with m.FSM(name="net"):
            with m.State("IDLE"):
                with m.If(self.clear | self.start):
                    m.d.sync += kept.eq(0)
                with m.If(self.clear):
                    m.d.sync += [clear.eq(1), step.eq(0)]
                    m.d.sync += [p.eq(0) for p in prev if p is not None]
                    m.d.sync += [r.eq(0) for regs in delayed for ds in regs for r in ds]
                    m.next = "CLEAR"
                with m.Elif(self.start):
                    m.d.sync += remaining.eq(self.steps)
                    m.next = "CHECK"
            with m.State("CLEAR"):
                m.d.comb += self.busy.eq(1)
                m.next = "CLEAR_ARRAYS"
            with m.State("CLEAR_ARRAYS"):
                # The arrays are busy from the clock after their strobe.
                m.d.comb += self.busy.eq(1)
                m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~Cat(arr.busy for arr in arrays).any()):
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                with m.If(remaining == 0):
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += launch[0].eq(1)
                    m.next = "LAUNCH0"
            for n in range(L):
                with m.State(f"LAUNCH{n}"):
                    m.d.comb += self.busy.eq(1)
                    m.next = f"RUN{n}"
                with m.State(f"RUN{n}"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(arrays[n].done):
                        m.d.sync += [send.eq(1), cur.eq(n)]
                        m.next = f"SEND{n}"
                with m.State(f"SEND{n}"):
                    # The last beat was captured before `done`: the record is complete.
                    m.d.comb += self.busy.eq(1)
                    if n == 0 and self.reuse:
                        m.d.sync += kept.eq(1)
                    if prev[n] is not None:
                        m.d.sync += prev[n].eq(spikes[n])
                    m.d.sync += self._shift_delayed(n, spikes, delayed)
                    m.next = f"WAIT{n}"
                with m.State(f"WAIT{n}"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(self.s_stream.ready):
                        if n + 1 < L:
                            m.d.sync += launch[n + 1].eq(1)
                            m.next = f"LAUNCH{n + 1}"
                        else:
                            m.d.sync += [step.eq(step + 1), remaining.eq(remaining - 1)]
                            m.next = "CHECK"
        return m

    def _param_writes(self, m, L):
        """The parameter write, registered once: ``(we, group, data)``, ``we[n]`` the strobe
        of layer ``n``'s array. The strobe's decode of ``param_layer`` went straight to the
        write enables of every lane's parameter memory (LUT RAM on the ECP5), the ECP5
        network harness's critical path (9.3 to 11.3 ns of routing, issue 17); from registers
        it is one net each (the check that the group exists in layer ``n`` included)."""
        we = Signal(L, name="pw_we")
        group = Signal.like(self.param_group, name="pw_group", reset_less=True)
        data = Signal(param_struct(self.shapes[0]), name="pw_data", reset_less=True)
        for n in range(L):
            # A group past this array's groups must not alias a real one: decided here too.
            width = group_width(self.shapes[n])
            ok = ~self.param_group[width:].any() if width < len(self.param_group) else 1
            m.d.sync += we[n].eq(self.param_we & (self.param_layer == n) & ok)
        m.d.sync += [group.eq(self.param_group), data.eq(self.param_data)]
        return we, group, data

    def _load_record(self, m, valid, step, spikes, vregs):
        """Returns ``(send, cur)``, registers the FSM sets: the record register loads layer
        ``cur``'s record where ``send`` is high (in the SEND states; ``cur`` only picks the
        data: the last layer's is the default case, so the clock enable is ``send`` alone),
        and ``valid`` rises with it and drops with ``ready``."""
        rec, L = self.s_stream.payload, len(self.shapes)
        nmax = max(s.neurons for s in self.shapes)
        send = Signal()
        cur = Signal(range(max(2, L)))
        m.d.sync += send.eq(0)
        with m.If(send):
            m.d.sync += valid.eq(1)
        with m.Elif(self.s_stream.ready):
            m.d.sync += valid.eq(0)
        with m.If(send):
            m.d.sync += rec.step.eq(step)
            with m.Switch(cur):
                for n in range(L):
                    with m.Case(n) if n + 1 < L else m.Default():
                        m.d.sync += [rec.layer.eq(n), rec.spikes.eq(spikes[n])]
                        if self.membrane:
                            m.d.sync += [rec.v[j].eq(vregs[n][j] if j < self.shapes[n].neurons
                                                     else 0) for j in range(nmax)]
        return send, cur

    def _latches(self, spikes):
        """``(prev, delayed)``: ``prev[n]``, a recurrent layer's spikes (counts) of the previous
        step (or None); ``delayed[n]``, per skip of layer ``n``, the registers that hold its
        source's spikes of 1 .. ``d`` steps before (none for ``d = 0``)."""
        L = len(self.shapes)
        prev = [Signal(len(spikes[n]), name=f"prev{n}") if self.recurrent[n] else None
                for n in range(L)]
        delayed = [[[Signal(len(spikes[k]), name=f"skip{n}_{k}_{j + 1}") for j in range(d)]
                    for k, d in self.skips[n]] for n in range(L)]
        return prev, delayed

    def _shift_delayed(self, n, spikes, delayed) -> list:
        """The statements that shift layer ``n``'s skip sources into their delay registers (when
        its record is sent: after the step, so the next step reads ``s_k(t + 1 - d)``)."""
        return [r.eq(spikes[k] if j == 0 else ds[j - 1])
                for (k, _), ds in zip(self.skips[n], delayed[n], strict=True)
                for j, r in enumerate(ds)]

    def _inputs(self, m, spikes, prev, delayed):
        """Layer 0 reads ``x`` (or the x memory); layer ``l > 0`` the spikes (or counts) that
        layer ``l - 1`` produced at the same step, then those of its skip sources (same step);
        a recurrent layer then its own of the step before (``prev``)."""
        if self.x_memory:
            xmem = Memory(shape=unsigned(self.x_width), depth=max(2, self.inputs), init=[])
            m.submodules.x_memory = xmem
            xw, xr = xmem.write_port(), xmem.read_port()
            m.d.comb += [xw.addr.eq(self.x_addr), xw.data.eq(self.x_data), xw.en.eq(self.x_we),
                         xr.addr.eq(self.synapses[0].x_addr),
                         self.synapses[0].x_data.eq(xr.data)]
        elif prev[0] is not None:
            m.d.comb += self.synapses[0].x.eq(Cat(self.x.as_value(), prev[0]))
        else:
            m.d.comb += self.synapses[0].x.eq(self.x)
        for n in range(1, len(self.shapes)):
            srcs = [spikes[n - 1]] + [ds[-1] if ds else spikes[k]
                                      for (k, _), ds in zip(self.skips[n], delayed[n],
                                                            strict=True)]
            if prev[n] is not None:
                srcs.append(prev[n])
            m.d.comb += self.synapses[n].x.eq(Cat(*srcs) if len(srcs) > 1 else srcs[0])

    def _read_back(self, m):
        """Weight read-back: the address goes to every synapse; the layer and lane that pick
        the answer follow it through the synapses' two clocks, a register of every synapse's
        read data (the block RAM's output then ends in flip-flops, not in the layer and lane
        multiplexer: the ULX3S network board's critical path at 100 MHz), then one register."""
        r_layer = [self.r_layer] + [Signal.like(self.r_layer) for _ in range(3)]
        r_lane = [self.r_lane] + [Signal.like(self.r_lane) for _ in range(3)]
        m.d.sync += [r_layer[k + 1].eq(r_layer[k]) for k in range(3)]
        m.d.sync += [r_lane[k + 1].eq(r_lane[k]) for k in range(3)]
        for n, syn in enumerate(self.synapses):
            m.d.comb += syn.r_addr.eq(self.r_addr)
            r_q = Signal.like(syn.r_data, name=f"r_q{n}")
            m.d.sync += r_q.eq(syn.r_data)
            with m.If(r_layer[3] == n):
                if syn.lanes == 1:
                    m.d.sync += self.r_data.eq(r_q[0])
                else:
                    m.d.sync += self.r_data.eq(Array(r_q)[r_lane[3][:len(syn.w_lane)]])

    def _layer0_reuse(self, m, launch0):
        """Layer-0 current reuse: returns ``kept`` (a register, so the launch strobes stay
        two-input ANDs), high while the cache holds this run's layer-0 currents. The FSM sets
        it when layer 0's first step of a run has been sent and drops it at a start or a
        clear; a layer-0 weight write or an x write drops it too (both are legal only while
        idle, before the next start: belt and braces)."""
        kept = Signal()
        if self.reuse:
            m.d.comb += [
                self.synapses[0].start.eq(launch0 & ~kept),
                self.cache.record.eq(launch0 & ~kept),
                self.cache.replay.eq(launch0 & kept),
            ]
            with m.If(self.w_we & (self.w_layer == 0)):
                m.d.sync += kept.eq(0)
            if self.x_memory:
                with m.If(self.x_we):
                    m.d.sync += kept.eq(0)
        return kept


def weight_writes(network):
    """``(layer, addr, lane, value)`` of the writes that load the weights of ``network`` (a
    :class:`lifgate.golden.synapse.Network`) into :class:`Network`; every weight is written
    (the weight memories are not cleared by a reset)."""
    out = []
    for n, layer in enumerate(network.layers):
        P = layer.config.shape.lanes
        w = layer.full_weights
        inputs = w.shape[1]
        for j in range(w.shape[0]):
            for i in range(inputs):
                out.append((n, (j // P) * inputs + i, j % P, int(w[j, i])))
    return out


def param_writes(network):
    """``(layer, group, word)`` of every parameter set of ``network``, packed by
    :func:`lifgate.config.pack_params`."""
    return [
        (n, g, pack_params(layer.config.shape, p))
        for n, layer in enumerate(network.layers)
        for g, p in enumerate(layer.config.params)
    ]
