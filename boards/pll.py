"""Clock generation for the board tops: iCE40 ``SB_PLL40_PAD`` and ECP5 ``EHXPLLL``.

:func:`ice40_pll_params` and :func:`ecp5_pll_params` solve for divider settings the way
``icepll`` and ``ecppll`` do (exhaustive search within the datasheet ranges, closest output
frequency first); :class:`BoardClock` instantiates the PLL, declares the ``sync`` domain on its
output, adds a clock constraint at the achieved frequency (so nextpnr places and routes for it)
and holds ``sync`` in reset until the PLL has locked. The parent defines ``sync``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["BoardClock", "PLLParams", "ecp5_pll_params", "ice40_pll_params"]


@dataclass(frozen=True)
class PLLParams:
    """A PLL setting and the output frequency it gives (Hz)."""

    family: str
    f_in: float
    f_out: float
    params: dict

    @property
    def mhz(self) -> float:
        return self.f_out / 1e6


def ice40_pll_params(f_in: float, f_out: float) -> PLLParams:
    """Dividers of an iCE40 PLL in SIMPLE feedback mode (the ranges of ``icepll``).

    ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)`` with the phase-detector input
    10 to 133 MHz and the VCO 533 to 1066 MHz; the output must lie in 16 to 275 MHz.
    """
    if not 16e6 <= f_out <= 275e6:
        raise ValueError(f"iCE40 PLL output must be in 16 to 275 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = f_vco / (1 << divq)
                err = abs(out - f_out)
                if best is None or err < best[0] - 1e-3:
                    best = (err, divr, divf, divq, f_pfd, out)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting gives {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    _, divr, divf, divq, f_pfd, out = best
    for limit, rng in ((17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)):
        if f_pfd < limit:
            filter_range = rng
            break
    else:
        filter_range = 6
    return PLLParams("ice40", f_in, out, dict(
        DIVR=divr, DIVF=divf, DIVQ=divq, FILTER_RANGE=filter_range))


def ecp5_pll_params(f_in: float, f_out: float) -> PLLParams:
    """Dividers of an ECP5 ``EHXPLLL`` with CLKOP feedback (the ranges of ``ecppll``).

    ``f_out = f_in / CLKI_DIV * CLKFB_DIV`` and the VCO ``f_out * CLKOP_DIV`` in 400 to 800 MHz,
    the phase-detector input 3.125 to 400 MHz.
    """
    if not 3.125e6 <= f_out <= 400e6:
        raise ValueError(f"ECP5 PLL output must be in 3.125 to 400 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            out = f_pfd * clkfb
            if not 3.125e6 <= out <= 400e6:
                continue
            # The VCO divider that puts the VCO nearest the middle of its range.
            clkop = min(128, max(1, round(600e6 / out)))
            if 400e6 <= out * clkop <= 800e6:
                err = abs(out - f_out)
                if best is None or err < best[0] - 1e-3:
                    best = (err, clki, clkfb, clkop, out)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting gives {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    _, clki, clkfb, clkop, out = best
    return PLLParams("ecp5", f_in, out, dict(CLKI_DIV=clki, CLKFB_DIV=clkfb, CLKOP_DIV=clkop))


class BoardClock(Elaboratable):
    """Drives the ``sync`` domain at ``frequency`` Hz from the platform's default clock and PLL.

    With ``define_domain=False`` the parent defines the domain (``m.domains.sync =
    ClockDomain()``) and this module drives its clock and reset, which is what Amaranth 0.6
    requires; the default (True) defines ``sync`` here, which Amaranth 0.5 accepts with a
    deprecation warning when the domain is used by a sibling.

    With ``frequency`` equal to the input clock no PLL is built: the input drives ``sync``.
    The domain's reset is held until the PLL reports lock (synchronised with
    :class:`~amaranth.lib.cdc.ResetSynchronizer`).

    Parameters
    ----------
    frequency : float
        Requested ``sync`` frequency in Hz; :attr:`params` gives the one achieved.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    f_in : float
        Frequency of the platform's default clock in Hz.
    define_domain : bool
        Define the ``sync`` domain in this module.
    """

    def __init__(self, *, frequency: float, family: str, f_in: float,
                 define_domain: bool = True):
        if family not in ("ice40", "ecp5"):
            raise ValueError(f"Family must be 'ice40' or 'ecp5', not {family!r}")
        self.family = family
        self.f_in = f_in
        self.define_domain = define_domain
        if abs(frequency - f_in) < 1:
            self.params = None
            self.frequency = f_in
        else:
            solve = ice40_pll_params if family == "ice40" else ecp5_pll_params
            self.params = solve(f_in, frequency)
            self.frequency = self.params.f_out

    def elaborate(self, platform):
        m = Module()
        if self.define_domain:
            m.domains.sync = ClockDomain("sync")
        clk_name = platform.default_clk
        if self.params is None:
            m.submodules.clk_buf = clk = io.Buffer("i", platform.request(clk_name, 0, dir="-"))
            m.d.comb += ClockSignal("sync").eq(clk.i)
            m.submodules.rst = ResetSynchronizer(Signal(), domain="sync")
            platform.add_clock_constraint(clk.i, self.frequency)
            return m

        locked = Signal()
        clk_out = Signal()
        p = self.params.params
        if self.family == "ice40":
            # SB_PLL40_PAD: the PLL's own input pad, so the clock pin is requested raw.
            pad = platform.request(clk_name, 0, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
                p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=pad.io,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out,
                o_LOCK=locked,
            )
        else:
            m.submodules.clk_buf = clk = io.Buffer("i", platform.request(clk_name, 0, dir="-"))
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{self.frequency / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKOP_ENABLE="ENABLED", p_FEEDBK_PATH="CLKOP",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"],
                p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1,
                p_CLKOP_FPHASE=0,
                i_CLKI=clk.i, i_CLKFB=clk_out, o_CLKOP=clk_out, o_LOCK=locked,
                i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
                i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            )
        m.d.comb += ClockSignal("sync").eq(clk_out)
        m.submodules.rst = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(clk_out, self.frequency)
        return m
