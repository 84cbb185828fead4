"""Network board tops: :class:`~lifgate.boards.netlink.NetworkLink` on a board, and in simulation.

:class:`NetworkBoardTop` is :class:`lifgate.boards.top.BoardTop` (PLL, USB-UART pins, status on
the LEDs) carrying a layered network instead of a single array. :func:`build_net_sim_top`
writes the Verilog of a :class:`NetworkLink` alone (top module ``board_top`` with the pins of
the array board: ``clk``, ``rst``, ``rx``, ``tx``, ``status``), so the array board's cocotb
UART bridge (:mod:`lifgate.boards.tb_top`) and :class:`lifgate.boards.top.SimTop` run it
unchanged.
"""

from __future__ import annotations

from lifgate.boards.netlink import NetworkLink
from lifgate.boards.netproto import NetFeatures
from lifgate.boards.toolchain import Board
from lifgate.boards.top import (
    TOPLEVEL,
    BoardTop,
    SimTop,
    board_clock,
    build_verilog_top,
)
from lifgate.boards.top import _spram_model as spram_model
from lifgate.hdl.verilog import convert_verilog

from lifgate.config import ConfigError

__all__ = ["NetworkBoardTop", "build_net_sim_top", "net_verilog", "network_array_options"]


class NetworkBoardTop(BoardTop):
    """The host link and a layered network on a board.

    Parameters
    ----------
    board : Board
    features : NetFeatures
        The network's layers and widths, membrane readback, frame buffer size.
    frequency : float
        Clock in Hz (the PLL's output; nextpnr's constraint).
    baud : int
        UART baud rate, 115200 by default.
    timeout_s : float
        Line silence that ends a partial frame.
    """

    def __init__(self, *, board: Board, features: NetFeatures, frequency: float,
                 baud: int = 115200, timeout_s: float = 0.02):
        if not isinstance(features, NetFeatures):
            raise ConfigError(f"parameter 'features' must be a NetFeatures, not {features!r}")
        self.board = board
        self.clock, divisor = board_clock(board, frequency, baud, timeout_s=timeout_s)
        freq = self.clock.frequency
        self.features = features
        # The UP5K's EBRs are the scarce resource, its SPRAMs are free: layer 0's current cache
        # goes there when its beats fit an SPRAM word set (64 bits: lanes x i_width; a wider
        # layer 0 keeps the cache in block RAM, and the fit check says whether that fits).
        s0 = features.shapes[0]
        spram = board.family == "ice40" and s0.lanes * s0.i_width <= 64
        # The board's pipeline profile and, on the ECP5, a copy of each array's
        # pipeline enable per lane (structure only: the behaviour is the same): the enable's
        # fan-out was the critical path of the ECP5 network (82 MHz, bench/bench_network_fpga.py).
        # The board's multiplier kind for layer 0's dense products (MULT18X18D blocks with
        # their own registers on the ECP5).
        self.link = NetworkLink(features, divisor=divisor, timeout=max(2, int(freq * timeout_s)),
                                cache_ram="spram" if spram else "memory",
                                array_options=network_array_options(board),
                                multiplier=board.multiplier)


def network_array_options(board: Board) -> dict:
    """The :class:`~lifgate.hdl.array.LIFArray` options of a network's arrays on ``board``:
    its pipeline profile and its ``lanes_per_enable`` (structure only)."""
    return {"pipeline": board.pipeline, "lanes_per_enable": board.lanes_per_enable}


def net_verilog(features: NetFeatures, *, divisor: int, timeout: int,
                cache_ram: str = "memory") -> str:
    """The Verilog of a :class:`NetworkLink` as the simulation top ``board_top`` (with Yosys'
    model of ``SB_SPRAM256KA`` appended for ``cache_ram="spram"``)."""
    link = NetworkLink(features, divisor=divisor, timeout=timeout, cache_ram=cache_ram)
    text = convert_verilog(link, name=TOPLEVEL, internal_attrs=True)
    if "SB_SPRAM256KA" in text:
        text += "\n" + spram_model()
    return text


def build_net_sim_top(features: NetFeatures, *, sim: str, build_dir, divisor: int = 8,
                      timeout: int = 4000, optimize: bool = True,
                      cache_ram: str = "memory") -> SimTop:
    """Write ``board_top.v`` (a :class:`NetworkLink`) and build it for ``sim`` (``verilator``
    or ``icarus``, ``-g2005``); the result runs cocotb sessions like the array board's.
    ``optimize=False`` compiles Verilator's C++ with ``-O0`` (quicker to build, slower to
    run: for short sessions). ``cache_ram="spram"``: as the UP5K board is built."""
    if not isinstance(features, NetFeatures):
        raise ConfigError(f"parameter 'features' must be a NetFeatures, not {features!r}")
    text = net_verilog(features, divisor=divisor, timeout=timeout, cache_ram=cache_ram)
    return build_verilog_top(text, features, sim=sim, build_dir=build_dir, divisor=divisor,
                             timeout=timeout, extra_args=() if optimize else ("-CFLAGS", "-O0"))
