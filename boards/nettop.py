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

__all__ = ["NetworkBoardTop", "build_net_sim_top", "net_verilog"]


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
        # goes there.
        self.link = NetworkLink(features, divisor=divisor, timeout=max(2, int(freq * timeout_s)),
                                cache_ram="spram" if board.family == "ice40" else "memory")


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
