"""cocotb fuzz session of the simulated board top: random and mutated frames on the UART pins.

Started by ``tests/test_fuzz_board.py`` on a build of :func:`lifgate.boards.top.build_sim_top`
(top module ``board_top``: a :class:`~lifgate.boards.link.HostLink` with the real ``LIFArray``).
``cocotbext-uart`` drives ``rx`` and listens on ``tx``. Every exchange (one burst of bytes, then
an idle line) goes to the gateware and to the protocol model
(:class:`lifgate.boards.protocol.BoardModel`) and the replies must be equal byte for byte:

* frames are drawn from a :class:`random.Random` seeded with ``LIFGATE_FUZZ_SEED`` (printed in
  the log): valid commands, values out of range, unknown commands, wrong payload lengths,
  payloads longer than the frame buffer, flipped bits, a damaged length field, truncated
  frames, junk before a frame, random byte strings, two frames back to back and a frame
  followed by junk (overruns);
* no hang: the expected reply must be complete within a cycle budget, and nothing more may come
  during a quiet period longer than the link's timeout;
* a rejected frame changes nothing: the model's own state is unchanged (checked after every
  ``ERR`` reply), and the gateware's state is read back through the link and compared with the
  model: a ``STATUS`` after every rejected exchange, a one-step ``RUN`` with spikes and (when
  built) membrane readback (every neuron's ``v'``) after every ``PROBE_EVERY``-th one;
* at the end: a two-step ``RUN`` with the same readback from the fuzzed state, and a short run
  of a known configuration, both compared with :func:`lifgate.golden.fixed.simulate` directly.

Environment: ``LIFGATE_FUZZ_FEATURES`` (JSON: ``shape`` as ``lifgate.sim.runner.shape_dict``,
``membrane``, ``noise``, ``max_payload``), ``LIFGATE_FUZZ_FRAMES``, ``LIFGATE_FUZZ_SEED``,
``LIFGATE_UART_DIVISOR``, ``LIFGATE_LINK_TIMEOUT`` (clocks), ``LIFGATE_CLK_NS``,
``LIFGATE_FUZZ_REPORT`` (a JSON summary is written there: counts, the first mismatch).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles
from lifgate.boards.protocol import (
    MAX_LEN,
    RUN_MEMBRANE,
    RUN_SPIKES,
    SYNC,
    BoardModel,
    Cmd,
    ErrorCode,
    Features,
    Frame,
    FrameDecoder,
    crc16,
    encode_frame,
)
from lifgate.boards.tb_top import start_board
from lifgate.golden.fixed import simulate

from lifgate.config import (
    ArrayShape,
    Config,
    LeakMode,
    NeuronParams,
    NoiseParams,
    pack_params,
)

#: A RUN probe (one step, spikes and membrane readback) after every this many rejected exchanges.
PROBE_EVERY = 8
#: Share of exchanges sent with idle gaps between their bytes.
SLOW = 0.1
#: Longest run a fuzzed frame may ask for (a damaged frame with a good CRC could ask for 2**32).
MAX_FUZZ_STEPS = 300


def features_from_json(text: str) -> Features:
    d = json.loads(text)
    return Features(ArrayShape(**d["shape"]), membrane=d["membrane"], noise=d["noise"],
                    max_payload=d["max_payload"])


# Frame generator --------------------------------------------------------------------------------


class FrameGen:
    """Exchanges (byte strings sent in one burst) of every kind, from a seeded RNG."""

    KINDS = {  # kind: weight
        "valid": 30, "range": 12, "unknown": 4, "length": 6, "oversize": 4, "flip": 10,
        "length_field": 5, "truncate": 8, "junk_prefix": 6, "junk": 3, "random": 4,
        "overrun": 5, "trailing_junk": 3,
    }

    def __init__(self, features: Features, rng: random.Random):
        self.f = features
        self.s = features.shape
        self.rng = rng
        self._kinds = list(self.KINDS)
        self._weights = [self.KINDS[k] for k in self._kinds]

    # Field values ---------------------------------------------------------------------------

    def u32(self, v):
        return int(v).to_bytes(4, "little")

    def current_bytes(self, values):
        nb = self.f.current_bytes
        return b"".join((int(v) & ((1 << 8 * nb) - 1)).to_bytes(nb, "little") for v in values)

    def neuron_params(self) -> NeuronParams:
        r, s = self.rng, self.s
        lo, hi = s.v_range
        mode = r.choice(list(s.leak_modes))
        llo, lhi = s.leak_range(mode)
        leak = r.randint(llo, lhi)
        if mode == LeakMode.CONST and r.random() < 0.8:
            leak = r.randint(0, 3)  # a small constant leak (a large one silences the array)
        if r.random() < 0.8:  # sensible: neurons that spike now and then
            return NeuronParams(
                v_th=r.randint(hi // 8, hi), v_reset=r.randint(lo // 4, hi // 8),
                v_rest=r.randint(lo // 8, hi // 8), v_init=r.randint(lo // 4, hi // 4),
                bias=r.randint(-8, 24), leak_mode=mode, leak=leak,
                reset_mode=r.choice(["value", "subtract"]), t_ref=r.randint(0, s.t_ref_max))
        return NeuronParams(
            v_th=r.randint(lo, hi), v_reset=r.randint(lo, hi), v_rest=r.randint(lo, hi),
            v_init=r.randint(lo, hi), bias=r.randint(lo, hi), leak_mode=mode, leak=leak,
            reset_mode=r.choice(["value", "subtract"]), t_ref=r.randint(0, s.t_ref_max))

    def param_word(self, params) -> bytes:
        return pack_params(self.s, params).to_bytes(self.f.param_bytes, "little")

    def bad_param_word(self) -> int:
        """A parameter word the gateware must reject: pad bits, a mode not built, a bad leak."""
        r, s = self.rng, self.s
        fields = s.layout.params
        o = fields.width  # the word's width: pad bits lie above it
        word = pack_params(s, self.neuron_params())

        def put(w, name, value):
            f = fields[name]
            mask = ((1 << f.width) - 1) << f.offset
            return (w & ~mask) | ((value << f.offset) & mask)

        choices = []
        if 8 * self.f.param_bytes > o:
            choices.append("pad")
        missing = [m for m in LeakMode if m not in s.leak_modes] + [3]
        choices.append("mode")
        if LeakMode.SHIFT in s.leak_modes:
            choices.append("shift")
        if LeakMode.CONST in s.leak_modes and s.leak_width > s.v_width:
            choices.append("const")
        if LeakMode.MULT in s.leak_modes and s.leak_width > s.decay_frac:
            choices.append("mult")
        what = r.choice(choices)
        lw = s.leak_width
        if what == "pad":
            return word | (r.randrange(1, 1 << (8 * self.f.param_bytes - o)) << o)
        if what == "mode":
            return put(word, "leak_mode", int(r.choice(missing)))
        if what == "shift":
            word = put(word, "leak_mode", int(LeakMode.SHIFT))
            return put(word, "leak", r.randint(s.v_width + 1, (1 << lw) - 1))
        if what == "mult":
            word = put(word, "leak_mode", int(LeakMode.MULT))
            return put(word, "leak", r.randint(1 << s.decay_frac, (1 << lw) - 1))
        lo, hi = s.v_range
        leak = r.choice([r.randint(hi + 1, (1 << (lw - 1)) - 1),
                         r.randint(-(1 << (lw - 1)), lo - 1)])
        word = put(word, "leak_mode", int(LeakMode.CONST))
        return put(word, "leak", leak & ((1 << lw) - 1))

    # Frames ---------------------------------------------------------------------------------

    def valid_frame(self) -> bytes:
        r, f, s = self.rng, self.f, self.s
        lo, hi = s.i_range
        cmd = r.choices(
            [Cmd.VERSION, Cmd.STATUS, Cmd.SET_PARAMS, Cmd.SET_NOISE, Cmd.SET_INPUT, Cmd.CLEAR,
             Cmd.WRITE_CURRENTS, Cmd.RUN],
            [1, 2, 4, 2, 2, 2, 4, 5])[0]
        if cmd in (Cmd.VERSION, Cmd.STATUS, Cmd.CLEAR):
            return encode_frame(cmd)
        if cmd == Cmd.SET_PARAMS:
            return encode_frame(cmd, self.u32(r.randrange(s.groups))
                                + self.param_word(self.neuron_params()))
        if cmd == Cmd.SET_NOISE:
            gain = r.choice([0, 0, r.randint(1, 300), r.getrandbits(16)])
            return encode_frame(cmd, self.u32(r.getrandbits(32)) + gain.to_bytes(2, "little"))
        if cmd == Cmd.SET_INPUT:
            return encode_frame(cmd, bytes([r.randint(0, 1)]))
        if cmd == Cmd.WRITE_CURRENTS:
            per = (f.max_payload - 4) // f.current_bytes
            count = r.randint(0, min(per, s.neurons))
            start = r.choice([r.randint(0, s.neurons - count), s.neurons - count])
            values = [r.choice([r.randint(lo, hi), r.randint(-20, 40), lo, hi])
                      for _ in range(count)]
            return encode_frame(cmd, self.u32(start) + self.current_bytes(values))
        steps = r.choice([0, 1, 1, 2, 3, 5]) if r.random() < 0.9 else r.randint(6, MAX_FUZZ_STEPS)
        flags = r.randint(0, 3) if f.membrane else r.randint(0, 1)
        if steps > 6:
            flags = 0  # long runs without STEP frames (the step label wraps now and then)
        return encode_frame(cmd, self.u32(steps) + bytes([flags]))

    def range_frame(self) -> bytes:
        r, f, s = self.rng, self.f, self.s
        lo, hi = s.i_range
        what = r.choice(["group", "word", "input", "cur_end", "cur_start", "cur_value", "flags"])
        if what == "group":
            return encode_frame(Cmd.SET_PARAMS, self.u32(r.choice(
                [s.groups, s.groups + 1, r.randint(s.groups, (1 << 32) - 1)]))
                + self.param_word(self.neuron_params()))
        if what == "word":
            return encode_frame(Cmd.SET_PARAMS, self.u32(r.randrange(s.groups))
                                + self.bad_param_word().to_bytes(f.param_bytes, "little"))
        if what == "input":
            return encode_frame(Cmd.SET_INPUT, bytes([r.choice([2, 3, 0x80, r.randint(2, 255)])]))
        per = (f.max_payload - 4) // f.current_bytes
        if what == "cur_end":  # start + count > N
            count = r.randint(1, min(per, s.neurons))
            start = s.neurons - count + 1  # one past the end: the boundary, half the time
            if r.random() < 0.5:
                start = r.randint(start, s.neurons + 3)
            return encode_frame(Cmd.WRITE_CURRENTS, self.u32(start) + self.current_bytes(
                [r.randint(lo, hi) for _ in range(count)]))
        if what == "cur_start":  # a huge start (wrap-around of start + count must not help)
            count = r.randint(0, min(per, 4))
            start = r.choice([1 << 22, (1 << 22) - 1, (1 << 32) - 1, (1 << 32) - max(1, count),
                              r.randint(s.neurons + 1, (1 << 32) - 1)])
            return encode_frame(Cmd.WRITE_CURRENTS, self.u32(start) + self.current_bytes(
                [r.randint(lo, hi) for _ in range(count)]))
        if what == "cur_value":  # a current outside the signed i_width range
            nb = f.current_bytes
            count = r.randint(1, min(per, s.neurons))
            start = r.randint(0, s.neurons - count)
            values = [r.randint(lo, hi) for _ in range(count)]
            raw = bytearray(self.current_bytes(values))
            top = 1 << (8 * nb - 1)
            if hi + 1 < top:  # values the field holds but i_width does not
                k = r.randrange(count)
                bad = r.choice([r.randint(hi + 1, top - 1), r.randint(-top, lo - 1)])
                raw[k * nb:(k + 1) * nb] = (bad & (2 * top - 1)).to_bytes(nb, "little")
            return encode_frame(Cmd.WRITE_CURRENTS, self.u32(start) + bytes(raw))
        bad = [x for x in range(256) if x & ~3 or (x & RUN_MEMBRANE and not f.membrane)]
        return encode_frame(Cmd.RUN, self.u32(r.randint(0, 3)) + bytes([r.choice(bad)]))

    def unknown_frame(self) -> bytes:
        known = {int(c) for c in (Cmd.VERSION, Cmd.STATUS, Cmd.SET_PARAMS, Cmd.SET_NOISE,
                                  Cmd.SET_INPUT, Cmd.CLEAR, Cmd.WRITE_CURRENTS, Cmd.RUN)}
        cmd = self.rng.choice([c for c in range(256) if c not in known])
        return encode_frame(cmd, self.rng.randbytes(self.rng.randint(0, 8)))

    def length_frame(self) -> bytes:
        """A known command with a payload of the wrong length."""
        r, f = self.rng, self.f
        want = {Cmd.VERSION: 0, Cmd.STATUS: 0, Cmd.CLEAR: 0, Cmd.SET_PARAMS: 4 + f.param_bytes,
                Cmd.SET_NOISE: 6, Cmd.SET_INPUT: 1, Cmd.RUN: 5}
        if f.current_bytes > 1 and r.random() < 0.2:  # start, then part of a current
            n = 4 + f.current_bytes * r.randint(0, 3) + r.randint(1, f.current_bytes - 1)
            return encode_frame(Cmd.WRITE_CURRENTS, r.randbytes(n))
        if r.random() < 0.1:  # WRITE_CURRENTS without a whole start field
            return encode_frame(Cmd.WRITE_CURRENTS, r.randbytes(r.randint(0, 3)))
        cmd = r.choice(list(want))
        n = r.choice([k for k in range(f.max_payload + 1) if k != want[cmd]][:12]
                     + [r.randint(0, f.max_payload)])
        if n == want[cmd]:
            n += 1
        return encode_frame(cmd, r.randbytes(n))

    def next(self) -> tuple[str, bytes]:
        r = self.rng
        kind = r.choices(self._kinds, self._weights)[0]
        base = self.valid_frame() if r.random() < 0.7 else r.choice(
            [self.range_frame, self.unknown_frame, self.length_frame])()
        if kind == "valid":
            return kind, base
        if kind == "range":
            return kind, self.range_frame()
        if kind == "unknown":
            return kind, self.unknown_frame()
        if kind == "length":
            return kind, self.length_frame()
        if kind == "oversize":
            cmd = r.choice([Cmd.WRITE_CURRENTS, Cmd.SET_PARAMS, Cmd.RUN, r.randrange(256)])
            return kind, encode_frame(cmd, r.randbytes(self.f.max_payload + r.randint(1, 10)))
        if kind == "flip":  # one to three flipped bits after SYNC (cmd, length, payload, CRC)
            fr = bytearray(base)
            for _ in range(r.choice([1, 1, 1, 2, 3])):
                fr[r.randrange(1, len(fr))] ^= 1 << r.randrange(8)
            return kind, bytes(fr)
        if kind == "length_field":  # the length field says something else than the payload
            fr = bytearray(base)
            n = int.from_bytes(fr[2:5], "little")
            new = r.choice([n + 1, n + 2, max(0, n - 1), max(0, n - 2), 0,
                            r.randint(0, self.f.max_payload + 4), r.randint(0, MAX_LEN)])
            if new == n:
                new = n + 1
            fr[2:5] = new.to_bytes(3, "little")
            if r.random() < 0.5:  # with a CRC that matches the damaged header
                fr[-2:] = crc16(fr[1:-2]).to_bytes(2, "big")
            return kind, bytes(fr)
        if kind == "truncate":
            return kind, base[:r.randrange(1, len(base))]
        junk = bytes(b for b in r.randbytes(r.randint(1, 12)) if b != SYNC) or b"\x00"
        if kind == "junk_prefix":
            return kind, junk + base
        if kind == "junk":
            return kind, junk
        if kind == "random":
            return kind, r.randbytes(r.randint(1, 40))
        if kind == "overrun":
            return kind, base + self.valid_frame()
        return kind, base + junk  # trailing_junk

    def exchange(self) -> tuple[str, bytes]:
        """The next exchange; one that would start a very long run is drawn again."""
        while True:
            kind, data = self.next()
            dec = FrameDecoder(self.f.max_payload)
            frames = [x for x in dec.decode(list(data)) if isinstance(x, Frame)]
            if not any(x.cmd == Cmd.RUN and len(x.payload) == 5
                       and int.from_bytes(x.payload[:4], "little") > MAX_FUZZ_STEPS
                       for x in frames):
                return kind, data


# Reply parsing ----------------------------------------------------------------------------------


def parse(data: bytes) -> list:
    """Whole reply frames of ``data`` (the board's output must be exactly that)."""
    dec = FrameDecoder(MAX_LEN)
    out = dec.decode(list(data))
    assert not dec.in_frame and all(isinstance(x, Frame) for x in out), data.hex()
    return out


def reply_name(frame: Frame) -> str:
    """``ERR_<code>``, ``STEP``, ``RUN_DONE`` or ``<command>_OK``."""
    if frame.cmd == Cmd.ERR:
        return f"ERR_{ErrorCode(frame.payload[0]).name}"
    if frame.cmd in (Cmd.STEP, Cmd.RUN_DONE):
        return Cmd(frame.cmd).name
    return f"{Cmd(frame.cmd & 0x7F).name}_OK"


def run_result(features: Features, frames: list, steps: int, membrane: bool):
    """Spikes [T, N] and membranes [T, N] (or None) of the STEP frames of a RUN."""
    s = features.shape
    N, P, D = s.neurons, s.lanes, s.depth
    rb, vb, sb = features.record_bytes(membrane), features.value_bytes, features.spike_bytes
    steps_ = [x for x in frames if x.cmd == Cmd.STEP]
    assert len(steps_) == steps and frames[-1].cmd == Cmd.RUN_DONE, frames
    sp = np.zeros((steps, N), dtype=bool)
    vv = np.zeros((steps, N), dtype=np.int64) if membrane else None
    for t, fr in enumerate(steps_):
        recs = np.frombuffer(fr.payload[4:], dtype=np.uint8).reshape(D, rb)
        bits = np.unpackbits(recs[:, :sb], axis=1, bitorder="little")
        sp[t] = bits[:, :P].reshape(N).astype(bool)
        if membrane:
            raw = recs[:, sb:].reshape(D, P, vb).astype(np.int64)
            val = np.zeros((D, P), dtype=np.int64)
            for k in range(vb):
                val |= raw[:, :, k] << (8 * k)
            vv[t] = np.where(val >> (8 * vb - 1) & 1, val - (1 << (8 * vb)), val).reshape(N)
    return sp, vv


# The session ------------------------------------------------------------------------------------


class Mismatch(AssertionError):
    pass


class Link:
    """The board top's UART pins and the protocol model side by side."""

    def __init__(self, dut, features, *, divisor, timeout, report):
        self.dut = dut
        self.f = features
        self.model = BoardModel(features)
        self.divisor = divisor
        self.timeout = timeout
        self.byte_clocks = 10 * divisor
        self.report = report
        self.cycles = 0

    async def start(self, clk_ns):
        dut = self.dut
        self.source, self.sink = await start_board(dut, clk_ns, self.divisor)
        # The link zeroes the input currents and clears the array after reset.
        await ClockCycles(dut.clk, 4 * self.f.shape.depth + 200)

    async def exchange(self, data: bytes, label: str, gaps=None) -> bytes:
        """Send ``data`` as one burst; return the reply, which must equal the model's.

        ``gaps``: idle clocks after each byte (each shorter than the timeout, so still one
        burst for the protocol); ``None``: back to back.
        """
        model = self.model
        before = model.snapshot()
        (want,) = model.exchange([data])
        frames = parse(want)
        if any(x.cmd == Cmd.ERR for x in frames) and not any(
                x.cmd != Cmd.ERR for x in frames):
            # The model's own contract: rejected frames change nothing.
            assert model.snapshot() == before, f"model changed on a rejected frame: {label}"
        run_steps = sum(int.from_bytes(x.payload[:4], "little") for x in
                        FrameDecoder(self.f.max_payload).decode(list(data))
                        if isinstance(x, Frame) and x.cmd == Cmd.RUN and len(x.payload) == 5)
        # Cycle budget: the bytes both ways at the line rate, twice over, the timeout, and a
        # generous bound on the array's own time for the run (no STEP frames to throttle it).
        budget = (2 * self.byte_clocks * (len(data) + len(want)) + 4 * self.timeout
                  + run_steps * (8 * self.f.shape.depth + 64) + 2000)
        got = bytearray()
        waited = 0
        if gaps is None:
            self.source.write_nowait(data)
        else:
            for byte, gap in zip(data, gaps, strict=True):
                self.source.write_nowait(bytes([byte]))
                await self.source.wait()
                if gap:
                    await ClockCycles(self.dut.clk, gap)
                    waited += gap
            budget += waited
        poll = 2 * self.byte_clocks
        while len(got) < len(want):
            await ClockCycles(self.dut.clk, poll)
            waited += poll
            got += self.sink.read_nowait()
            if bytes(got) != want[:len(got)]:
                self._fail(label, data, want, got, "reply differs from the model")
            if waited > budget:
                self._fail(label, data, want, got, f"no complete reply after {waited} clocks")
        # Quiet period: longer than the timeout plus an ERR frame; nothing more may come.
        quiet = self.timeout + 12 * self.byte_clocks
        await ClockCycles(self.dut.clk, quiet)
        got += self.sink.read_nowait()
        self.cycles += waited + quiet
        if bytes(got) != want or not self.sink.idle():
            self._fail(label, data, want, got, "reply differs from the model")
        return bytes(got)

    def _fail(self, label, data, want, got, why):
        info = {"exchange": label, "sent": data.hex(), "expected": want.hex(),
                "got": bytes(got).hex(), "why": why}
        self.report["mismatch"] = info
        raise Mismatch(json.dumps(info))

    async def status(self, label):
        return await self.exchange(encode_frame(Cmd.STATUS), label)

    async def run_probe(self, steps, label):
        """A RUN with spikes and (if built) membrane readback of every neuron; its result is
        also checked against the golden model directly. Returns (spikes, v or None)."""
        m = self.model
        cfg = m.config()
        cur = np.array(m.currents, dtype=np.int64) if m.input_en else None
        ref = simulate(cfg, steps, cur, state=m.state)
        membrane = self.f.membrane
        flags = RUN_SPIKES | (RUN_MEMBRANE if membrane else 0)
        out = await self.exchange(
            encode_frame(Cmd.RUN, steps.to_bytes(4, "little") + bytes([flags])), label)
        sp, vv = run_result(self.f, parse(out), steps, membrane)
        assert np.array_equal(sp, ref.spikes), label
        assert not membrane or np.array_equal(vv, ref.v), label
        return sp, vv


@cocotb.test()
async def fuzz_host_link(dut):
    env = os.environ
    features = features_from_json(env["LIFGATE_FUZZ_FEATURES"])
    nframes = int(env.get("LIFGATE_FUZZ_FRAMES", "500"))
    seed = int(env.get("LIFGATE_FUZZ_SEED", "1"))
    report_path = env.get("LIFGATE_FUZZ_REPORT")
    report = {"seed": seed, "frames": 0, "probes": 0, "kinds": {}, "replies": {},
              "mismatch": None}
    log = logging.getLogger("cocotb.fuzz")
    log.setLevel(logging.INFO)
    log.info("host-link fuzz: seed %d, %d frames, %s", seed, nframes, features)
    link = Link(dut, features, divisor=int(env["LIFGATE_UART_DIVISOR"]),
                timeout=int(env["LIFGATE_LINK_TIMEOUT"]), report=report)
    gen = FrameGen(features, random.Random(seed))
    kinds, replies = Counter(), Counter()
    t0 = time.monotonic()

    def tally(out: bytes):
        for x in parse(out):
            replies[reply_name(x)] += 1

    try:
        await link.start(int(env.get("LIFGATE_CLK_NS", "10")))
        # Known state first, and the very first exchange is a valid VERSION.
        await link.exchange(encode_frame(Cmd.VERSION), "version")
        rejected = 0
        for k in range(nframes):
            kind, data = gen.exchange()
            gaps = None
            if gen.rng.random() < SLOW:  # a slow sender: idle gaps shorter than the timeout
                longest = link.timeout - link.byte_clocks - 24
                gaps = [gen.rng.choice([0, gen.rng.randint(0, longest), longest])
                        for _ in data]
                kinds["slow"] += 1
            label = f"frame {k} ({kind}{', slow' if gaps else ''}, seed {seed})"
            out = await link.exchange(data, label, gaps)
            kinds[kind] += 1
            report["frames"] += 1
            tally(out)
            if any(x.cmd == Cmd.ERR for x in parse(out)):
                rejected += 1
                # The state after a rejected frame: read back and compared with the model.
                await link.status(f"status after {label}")
                report["probes"] += 1
                if rejected % PROBE_EVERY == 0:
                    await link.run_probe(1, f"run probe after {label}")
                    report["probes"] += 1
        report["rejected"] = rejected
        # End: the whole state read back from the fuzzed state (two steps, every membrane) ...
        await link.status("final status")
        await link.run_probe(2, "final readback")
        # ... and the array still works: a known experiment against the golden model.
        s = features.shape
        lo, hi = s.v_range
        params = tuple(
            NeuronParams(v_th=hi // 3 + 7 * g, v_reset=lo // 8, v_init=g, bias=2 + g,
                         leak_mode=s.leak_modes[g % len(s.leak_modes)],
                         leak=2 if s.leak_modes[g % len(s.leak_modes)] != LeakMode.MULT
                         else (1 << s.decay_frac) - 8, t_ref=g % (s.t_ref_max + 1))
            for g in range(s.groups))
        # Without a noise source the board runs with gain 0 whatever SET_NOISE says.
        cfg = Config(shape=s, params=params,
                     noise=NoiseParams(seed=0xC0FFEE, gain=64 if features.noise else 0))
        ilo, ihi = s.i_range
        currents = np.clip(np.arange(s.neurons) * 5 - 10, ilo, ihi)
        for g, p in enumerate(params):
            await link.exchange(encode_frame(Cmd.SET_PARAMS, g.to_bytes(4, "little")
                                             + gen.param_word(p)), "final params")
        await link.exchange(encode_frame(Cmd.SET_NOISE, (0xC0FFEE).to_bytes(4, "little")
                                         + (64).to_bytes(2, "little")), "final noise")
        per = (features.max_payload - 4) // features.current_bytes
        for a in range(0, s.neurons, per):
            await link.exchange(encode_frame(Cmd.WRITE_CURRENTS, a.to_bytes(4, "little")
                                             + gen.current_bytes(currents[a:a + per])),
                                "final currents")
        await link.exchange(encode_frame(Cmd.SET_INPUT, b"\x01"), "final input")
        await link.exchange(encode_frame(Cmd.CLEAR), "final clear")
        steps = 12
        ref = simulate(cfg, steps, currents)
        sp, vv = await link.run_probe(steps, "final golden run")
        assert np.array_equal(sp, ref.spikes), "final golden run"
        assert not features.membrane or np.array_equal(vv, ref.v), "final golden run"
        report["golden_spikes"] = int(ref.spikes.sum())
        report["golden_size"] = int(ref.spikes.size)
    finally:
        report["kinds"] = dict(kinds)
        report["replies"] = dict(replies)
        report["sim_clocks"] = link.cycles
        report["wall_s"] = round(time.monotonic() - t0, 2)
        log.info("host-link fuzz: %s", json.dumps(report))
        if report_path:
            with open(report_path, "w") as fh:
                json.dump(report, fh, indent=1)
