"""``lifgate.hdl.ram``: the pipelined RAM, both kinds against one Python model of its contract.

The ``inferred`` kind runs in Amaranth's simulator; the ``ecp5`` kind (``DP16KD`` instances)
runs in Icarus with :data:`lifgate.hdl.ram.DP16KD_MODEL`, under the same random stimulus, in
every port width the instance uses (18, 9, 4, 2 and 1 bits, several blocks side by side).
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from lifgate.hdl.dsp import simulation_models
from lifgate.hdl.ram import ECP5_MAX_DEPTH, PipelinedRAM, ecp5_blocks


def _stimulus(depth: int, width: int, cycles: int, seed: int):
    """Random clocks: (w_addr, w_data, w_en, r_addr, r_en, r_oce). Addresses come from a pool
    spread over the depth (the first and the last, and pairs that differ in one address bit
    each, so that a lost or misplaced address bit aliases two words), a few hot ones half of
    the time, so that reads meet writes of the same clock and recent ones."""
    rng = random.Random(seed)
    base = rng.randrange(depth)
    pairs = [base ^ (1 << b) for b in range((depth - 1).bit_length()) if base ^ (1 << b) < depth]
    pool = sorted({0, depth - 1, base, *pairs, *rng.sample(range(depth), min(depth, 20))})
    hot = rng.sample(pool, min(len(pool), 4))

    def addr():
        return rng.choice(hot) if rng.random() < 0.5 else rng.choice(pool)

    return [(addr(), rng.getrandbits(width), int(rng.random() < 0.6), addr(),
             int(rng.random() < 0.7), int(rng.random() < 0.7)) for _ in range(cycles)]


def _model(stim):
    """``r_data`` after each clock by the contract (``None`` while it is unspecified)."""
    mem, rd, ro, out = {}, None, None, []
    for w_addr, w_data, w_en, r_addr, r_en, r_oce in stim:
        new_rd = mem.get(r_addr) if r_en else rd  # a same-clock write: the old word
        if r_oce:
            ro = rd
        rd = new_rd
        if w_en:
            mem[w_addr] = w_data
        out.append(ro)
    return out


def _compare(got, want):
    checked = 0
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is not None:
            assert g == w, f"clock {k}: r_data {g!r}, the contract says {w!r}"
            checked += 1
    assert checked > len(want) // 2  # most clocks are compared


def _run_amaranth(ram, stim):
    got = []

    async def bench(ctx):
        for w_addr, w_data, w_en, r_addr, r_en, r_oce in stim:
            ctx.set(ram.w_addr, w_addr)
            ctx.set(ram.w_data, w_data)
            ctx.set(ram.w_en, w_en)
            ctx.set(ram.r_addr, r_addr)
            ctx.set(ram.r_en, r_en)
            ctx.set(ram.r_oce, r_oce)
            await ctx.tick()
            got.append(ctx.get(ram.r_data))

    sim = Simulator(ram)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("depth,width", [(2, 3), (12, 16), (300, 20)])
def test_inferred_kind_keeps_the_contract(depth, width):
    stim = _stimulus(depth, width, 400, seed=depth)
    _compare(_run_amaranth(PipelinedRAM(width, depth), stim), _model(stim))


_TB = """\
`timescale 1ns/1ps
module tb;
    reg clk = 0;
    reg [63:0] stim [0:{n}];
    reg [63:0] s = 0;
    wire [{w}:0] r_data;
    integer f, k;
    ram dut (.clk(clk), .rst(1'b0), .w_data(s[{w}:0]), .w_addr(s[24 +: {aw}]),
             .r_addr(s[40 +: {aw}]), .w_en(s[56]), .r_en(s[57]), .r_oce(s[58]),
             .r_data(r_data));
    initial begin
        $readmemh("stim.hex", stim);
        f = $fopen("out.txt", "w");
        for (k = 0; k <= {n}; k = k + 1) begin
            s = stim[k];
            #5 clk = 1;
            #1 $fdisplay(f, "%h", r_data);
            #4 clk = 0;
        end
        $fclose(f);
        $finish;
    end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
@pytest.mark.parametrize("depth,width", [(12, 16), (1024, 20), (2048, 16), (4096, 5),
                                         (8192, 2), (16384, 1)])
def test_ecp5_kind_keeps_the_contract(tmp_path, depth, width):
    port_width, blocks = ecp5_blocks(width, depth)
    ram = PipelinedRAM(width, depth, kind="ecp5")
    text = verilog.convert(ram, name="ram", emit_src=False)
    assert text.count("DP16KD #(") == blocks
    assert f".DATA_WIDTH_B(32'd{port_width})" in text
    # The word address on AD13 down to AD(low), as the primitive's port modes take it and as
    # Yosys' own DP16KD mapping connects it (checked against synth_ecp5 for 18, 9 and 1 bits).
    low = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}[port_width]
    assert f".ADB{low}(r_addr[0])" in text and f".ADA{low}(w_addr[0])" in text
    stim = _stimulus(depth, width, 600, seed=width)
    aw = len(ram.w_addr)
    (tmp_path / "stim.hex").write_text("".join(
        f"{wd | wa << 24 | ra << 40 | we << 56 | re << 57 | oce << 58:016x}\n"
        for wa, wd, we, ra, re, oce in stim))
    (tmp_path / "ram.v").write_text(text)
    (tmp_path / "prim.v").write_text(simulation_models(text))
    (tmp_path / "tb.v").write_text(_TB.format(n=len(stim) - 1, w=width - 1, aw=aw))
    subprocess.run(["iverilog", "-g2012", "-s", "tb", "-o", "sim.vvp", "tb.v", "ram.v",
                    "prim.v"], cwd=tmp_path, check=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, check=True, capture_output=True)
    lines = (tmp_path / "out.txt").read_text().split()
    got = [None if "x" in ln.lower() else int(ln, 16) for ln in lines]
    _compare(got, _model(stim))


def test_blocks_and_errors():
    assert ecp5_blocks(16, 2048) == (9, 2)
    assert ecp5_blocks(16, 1024) == (18, 1)
    assert ecp5_blocks(8, 2049) == (4, 2)
    assert ecp5_blocks(1, ECP5_MAX_DEPTH) == (1, 1)
    with pytest.raises(ValueError, match="at most 16384"):
        PipelinedRAM(8, ECP5_MAX_DEPTH + 1, kind="ecp5")
    with pytest.raises(ValueError, match="Memory kind must be one of 'inferred', 'ecp5'"):
        PipelinedRAM(8, 16, kind="bram")
    with pytest.raises(TypeError, match="Depth must be an integer of at least 2, not 1"):
        PipelinedRAM(8, 1)
    PipelinedRAM(8, ECP5_MAX_DEPTH + 1)  # the inferred kind takes any depth
