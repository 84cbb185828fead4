"""A simple dual-port RAM whose read data passes two registers: the read and the output register.

The state memories of :class:`~lifgate.hdl.array.LIFArray` are read and then registered
(stage 1 of its pipeline). Yosys maps the read onto an ECP5 ``DP16KD`` but leaves the register
after it in the fabric, and a ``DP16KD`` read without its output register is slow: nextpnr
reports 6.1 ns from clock to read data, and with the route to the fabric register that was the
ECP5-85F array's critical path in session 3 (99.4 MHz). :class:`PipelinedRAM` states both
registers as part of the memory and, with ``kind="ecp5"``, instantiates ``DP16KD`` blocks with
the output register switched on (``REGMODE_B = "OUTREG"``), so that the stage-1 register is
inside the block.

``kind="inferred"`` builds the same thing from an :class:`amaranth.lib.memory.Memory` and a
fabric register (any FPGA, Amaranth's simulator). Both kinds have the same ports, latency and
contents; the ECP5 kind is simulated in Icarus and Verilator with :data:`DP16KD_MODEL` (see
:func:`lifgate.hdl.dsp.simulation_models`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lifgate.config import ConfigError, ConfigTypeError

__all__ = ["DP16KD_MODEL", "ECP5_MAX_DEPTH", "KINDS", "PipelinedRAM", "ecp5_blocks"]

#: The memory kinds: ``inferred`` (an Amaranth ``Memory`` and a fabric register) and ``ecp5``
#: (``DP16KD`` blocks with their output register).
KINDS = ("inferred", "ecp5")

#: The deepest memory of ``kind="ecp5"``: one ``DP16KD`` holds 16384 words of 1 bit. Deeper
#: memories would need several blocks by depth and a multiplexer after the output registers.
ECP5_MAX_DEPTH = 16384

# The DP16KD port modes: data width -> words (widest first).
_ECP5_WORDS = {18: 1024, 9: 2048, 4: 4096, 2: 8192, 1: 16384}


def ecp5_blocks(width: int, depth: int) -> tuple[int, int]:
    """``(data width of each DP16KD port, number of blocks)`` for a ``width`` x ``depth`` memory.

    The widest port configuration (18, 9, 4, 2 or 1 bits) whose depth (1024, 2048, 4096, 8192,
    16384 words) holds ``depth``, and as many blocks side by side as ``width`` needs.
    """
    for port_width, words in _ECP5_WORDS.items():
        if depth <= words:
            return port_width, -(-width // port_width)
    raise ConfigError(f"Depth of an ecp5 memory must be at most {ECP5_MAX_DEPTH}, not {depth!r}")


class PipelinedRAM(wiring.Component):
    """One write port, one read port; read data after a read register and an output register.

    Latency: the word at ``r_addr`` is read at a clock with ``r_en`` high into the read
    register; at a clock with ``r_oce`` high the output register takes the read register;
    ``r_data`` is the output register. A read and a write of the same address in one clock
    read the old word. Contents and registers have no reset and no initial value (unspecified
    until written): the user's own valid bits must say when ``r_data`` is meaningful.

    Parameters
    ----------
    shape : Shape
        Shape of a word.
    depth : int
        Number of words, at least 2; with ``kind="ecp5"`` at most :data:`ECP5_MAX_DEPTH`.
    kind : str
        ``"inferred"`` or ``"ecp5"`` (see :data:`KINDS`).

    Members
    -------
    w_addr : ``In(range(depth))``
    w_data : ``In(shape)``
    w_en : ``In(1)``
        Write ``w_data`` at ``w_addr`` at every clock with ``w_en`` high.
    r_addr : ``In(range(depth))``
    r_en : ``In(1)``
        Read ``r_addr`` into the read register at every clock with ``r_en`` high.
    r_oce : ``In(1)``
        Load the output register from the read register at every clock with ``r_oce`` high.
    r_data : ``Out(shape)``
        The output register.
    """

    def __init__(self, shape, depth: int, *, kind: str = "inferred"):
        shape = Shape.cast(shape)
        if kind not in KINDS:
            raise ConfigError(f"Memory kind must be one of {', '.join(map(repr, KINDS))}, "
                             f"not {kind!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ConfigTypeError(f"Depth must be an integer of at least 2, not {depth!r}")
        if kind == "ecp5" and depth > ECP5_MAX_DEPTH:
            raise ConfigError(f"Depth of an ecp5 memory must be at most {ECP5_MAX_DEPTH}, "
                             f"not {depth!r}")
        self._shape, self._depth, self._kind = shape, depth, kind
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1), "r_oce": In(1),
            "r_data": Out(shape),
        })

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        if self._kind == "inferred":
            mem = m.submodules.mem = Memory(shape=self._shape, depth=self._depth, init=[])
            wp, rp = mem.write_port(), mem.read_port()
            out = Signal(self._shape, reset_less=True)
            m.d.comb += [
                wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                rp.addr.eq(self.r_addr), rp.en.eq(self.r_en),
                self.r_data.eq(out),
            ]
            with m.If(self.r_oce):
                m.d.sync += out.eq(rp.data)
            return m

        width = self._shape.width
        port_width, blocks = ecp5_blocks(width, self._depth)
        # Address pins: the word address is on AD13 down to AD(low); the pins below it are
        # tied to 0 (at 18 bits, AD1 and AD0 of the write port are its byte enables: set).
        low = (ECP5_MAX_DEPTH // _ECP5_WORDS[port_width]).bit_length() - 1
        wdata, rdata = Signal(width), Signal(width)
        m.d.comb += [wdata.eq(self.w_data), self.r_data.eq(rdata)]
        pieces = []
        for b in range(blocks):
            lo = b * port_width
            n = min(port_width, width - lo)
            di, do = Signal(port_width, name=f"di{b}"), Signal(18, name=f"do{b}")
            m.d.comb += di.eq(wdata[lo:lo + n])
            pieces.append(do[:n])
            ports = {}
            for k in range(14):
                if k < low:
                    a = Const(1) if port_width == 18 and k < 2 else Const(0)
                    ports[f"i_ADA{k}"] = a
                    ports[f"i_ADB{k}"] = Const(0)
                else:
                    ports[f"i_ADA{k}"] = self.w_addr[k - low] if k - low < len(self.w_addr) \
                        else Const(0)
                    ports[f"i_ADB{k}"] = self.r_addr[k - low] if k - low < len(self.r_addr) \
                        else Const(0)
            for k in range(18):
                ports[f"i_DIA{k}"] = di[k] if k < port_width else Const(0)
                ports[f"i_DIB{k}"] = Const(0)
                ports[f"o_DOB{k}"] = do[k]
                ports[f"o_DOA{k}"] = Signal(name=f"doa{b}_{k}")
            m.submodules[f"bram{b}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=port_width, p_DATA_WIDTH_B=port_width,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal("sync"), i_CEA=self.w_en, i_OCEA=Const(0),
                i_WEA=self.w_en, i_RSTA=Const(0),
                i_CSA0=Const(0), i_CSA1=Const(0), i_CSA2=Const(0),
                i_CLKB=ClockSignal("sync"), i_CEB=self.r_en, i_OCEB=self.r_oce,
                i_WEB=Const(0), i_RSTB=Const(0),
                i_CSB0=Const(0), i_CSB1=Const(0), i_CSB2=Const(0),
                **ports,
            )
        m.d.comb += rdata.eq(Cat(*pieces))
        return m


#: The ``DP16KD`` primitive's ports and common parameters: the start of both behavioural
#: models, this module's and the gate-level one of :mod:`lifgate.boards.netlist`.
DP16KD_PORTS = """\
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6,
    input DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1,
    input ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
    output DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6,
    input DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1,
    input ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
    output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter GSR = "ENABLED";
"""

#: A behavioural model of the ``DP16KD`` subset that :class:`PipelinedRAM` instantiates (port A
#: writes, port B reads through its output register, the same data width on both ports, no
#: reset, no chip select), for Icarus and Verilator. Yosys ships only a blackbox of this
#: primitive. The model stops the simulation at time 0 on any other setting. A read of the
#: address written in the same clock returns the old word.
DP16KD_MODEL = """\
// lifgate: behavioural model of the ECP5 DP16KD, only the configuration that
// lifgate.hdl.ram.PipelinedRAM instantiates (see its docstring). Not for synthesis.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
""" + DP16KD_PORTS + """\
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */

    // Word address: the top pins (AD13 down to AD(LOW)), as in the primitive's port modes.
    localparam integer W = DATA_WIDTH_A;
    localparam integer LOW = (W == 18) ? 4 : (W == 9) ? 3 : (W == 4) ? 2 : (W == 2) ? 1 : 0;
    localparam integer WORDS = 16384 >> LOW;

    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [13:0] wa = ada >> LOW;
    wire [13:0] ra = adb >> LOW;

    reg [17:0] mem [0:WORDS - 1];
    reg [17:0] rd = 18'd0;
    reg [17:0] ro = 18'd0;

    initial begin
        if (DATA_WIDTH_A != DATA_WIDTH_B || REGMODE_B != "OUTREG" || REGMODE_A != "NOREG"
                || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18)) begin
            $display("lifgate DP16KD model: equal widths, A writes, B reads with OUTREG only");
            $finish;
        end
    end

    always @(posedge CLKA) begin
        if (CEA && WEA)
            mem[wa[13 - LOW:0]] <= dia;
    end

    always @(posedge CLKB) begin
        if (CEB)
            rd <= mem[ra[13 - LOW:0]];
        if (OCEB)
            ro <= rd;
    end

    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = 18'd0;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = ro;
endmodule
"""
