"""The feeder's ring FIFO (lifgate.boards.feed.RingFIFO) against a Python deque: random writes
under the credit rule and random reads; every word comes out once, in order, and a reader
that is always ready gets one word per clock once the FIFO is primed."""

import random
from collections import deque

import pytest
from amaranth.sim import Simulator
from lifgate.boards.feed import CurrentFeeder, RingFIFO

from lifgate.config import ConfigError


def run_fifo(depth, clocks, p_write, p_ready, seed, flush_at=()):
    dut = RingFIFO(16, depth=depth)
    rng = random.Random(seed)
    out, log = [], {"sent": [], "full_clocks": 0}

    async def tb(ctx):
        model = deque()
        word = 0
        for t in range(clocks):
            flush = t in flush_at
            ready = rng.random() < p_ready
            valid = ctx.get(dut.o.valid)
            assert valid == bool(model), (t, valid, list(model))
            if valid:
                assert ctx.get(dut.o.payload) == model[0], t
            leaving = valid and ready
            room = depth - len(model) + (1 if leaving else 0)
            write = room > 0 and rng.random() < p_write
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.i.valid, write)
            ctx.set(dut.i.payload, word)
            ctx.set(dut.flush, flush)
            await ctx.tick()
            if leaving:
                out.append(model.popleft())
            if write:
                model.append(word)
                log["sent"].append(word)
                word = (word + 1) & 0xFFFF
            if flush:
                model.clear()
            log["full_clocks"] += leaving

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out, log


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_ring_fifo_matches_deque(depth):
    out, log = run_fifo(depth, 600, 0.7, 0.6, seed=depth)
    assert out == log["sent"][:len(out)]
    assert len(out) > 200


def test_ring_fifo_flush():
    out, _ = run_fifo(3, 400, 0.8, 0.5, seed=7, flush_at={50, 51, 200})
    assert len(out) > 100  # the deque model checks every word and valid bit


def test_ring_fifo_full_rate():
    """Written and read every clock: a word leaves every clock after the first."""
    out, log = run_fifo(3, 100, 1.0, 1.0, seed=1)
    assert out == log["sent"][:len(out)] and len(out) == 99


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_ring_fifo_depth_checked():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="Depth"):
            RingFIFO(8, depth=bad)


def run_feeder(depth, clocks, p_ready, seed, lanes=4, width=5, lanes_per_copy=1):
    """Write random rows, then run the feeder with a random reader: the rows it hands over,
    in order from row 0 and wrapping, and the clocks in which one was taken."""
    dut = CurrentFeeder(lanes=lanes, width=width, depth=depth, lanes_per_copy=lanes_per_copy,
                        kind="inferred")
    rng = random.Random(seed)
    rows = [rng.getrandbits(lanes * width) for _ in range(depth)]
    got, taken_at = [], []

    async def tb(ctx):
        # Writes lane by lane, as WRITE_CURRENTS does.
        for a, row in enumerate(rows):
            for p in range(lanes):
                ctx.set(dut.w_addr, a)
                ctx.set(dut.w_we, 1 << p)
                ctx.set(dut.w_data, row)
                await ctx.tick()
        ctx.set(dut.w_we, 0)
        ctx.set(dut.flush, 1)
        await ctx.tick()
        ctx.set(dut.flush, 0)
        ctx.set(dut.run, 1)
        for t in range(clocks):
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
                taken_at.append(t)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return rows, got, taken_at


@pytest.mark.parametrize("depth, p_ready, lanes_per_copy", [(2, 0.5, 1), (5, 0.7, 2),
                                                            (8, 0.3, 4)])
def test_feeder_rows_in_order(depth, p_ready, lanes_per_copy):
    rows, got, _ = run_feeder(depth, 300, p_ready, seed=depth, lanes_per_copy=lanes_per_copy)
    assert len(got) > 50
    assert got == [rows[k % depth] for k in range(len(got))]


def test_feeder_full_rate():
    """An always-ready reader gets a row every clock once the first arrived."""
    rows, got, taken_at = run_feeder(6, 60, 1.0, seed=3)
    assert got == [rows[k % 6] for k in range(len(got))]
    assert taken_at == list(range(taken_at[0], taken_at[0] + len(got)))
    assert taken_at[0] <= CurrentFeeder.READ_LATENCY + 2


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_feeder_checks_its_parameters():
    with pytest.raises(ConfigError, match="Lanes per copy must divide"):
        CurrentFeeder(lanes=4, width=8, depth=16, lanes_per_copy=3)
    with pytest.raises(ConfigError, match="Depth"):
        CurrentFeeder(lanes=4, width=8, depth=16385)
    with pytest.raises(ConfigError, match="Kind"):
        CurrentFeeder(lanes=4, width=8, depth=16, kind="spram")
