"""The feeder's FIFO (lifgate.boards.feed.CreditFIFO) against a Python deque: random writes
under the credit rule and random reads; every word comes out once, in order, and a reader
that is always ready gets one word per clock once the FIFO is primed."""

import random
from collections import deque

import pytest
from amaranth.sim import Simulator
from lifgate.boards.feed import CreditFIFO

from lifgate.config import ConfigError


def run_fifo(depth, clocks, p_write, p_ready, seed, flush_at=()):
    dut = CreditFIFO(16, depth=depth)
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
def test_credit_fifo_matches_deque(depth):
    out, log = run_fifo(depth, 600, 0.7, 0.6, seed=depth)
    assert out == log["sent"][:len(out)]
    assert len(out) > 200


def test_credit_fifo_flush():
    out, _ = run_fifo(3, 400, 0.8, 0.5, seed=7, flush_at={50, 51, 200})
    assert len(out) > 100  # the deque model checks every word and valid bit


def test_credit_fifo_full_rate():
    """Written and read every clock: a word leaves every clock after the first."""
    out, log = run_fifo(3, 100, 1.0, 1.0, seed=1)
    assert out == log["sent"][:len(out)] and len(out) == 99


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_credit_fifo_depth_checked():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="Depth"):
            CreditFIFO(8, depth=bad)
