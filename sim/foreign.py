"""Verilog from elsewhere under the regression: read its shape and ports, check the contract.

``lifgate verify --verilog FILE`` runs the directed and random cases on any Verilog that
implements the port contract of ``docs/hardware.md``: an edited copy of ``lifgate generate``'s
output, another implementation of the same ports, or a netlist Yosys synthesised. This module
reads such a file without elaborating it:

* :func:`header_shape`: the compile-time shape from the header comment ``lifgate generate``
  writes (``//   neurons     = 64`` ...), with ``membrane`` and ``noise``;
* :func:`module_ports`: the ports of one module, ANSI (``module m (input wire [3:0] a, ...)``)
  or Verilog-1995 style (``module m(a, ...); input [3:0] a;``, what Yosys writes), with literal
  ranges;
* :func:`contract_ports`: the ports the contract asks of a shape (from
  :func:`lifgate.hdl.array.lif_signature`, the gateware's own signature);
* :func:`check_ports`: the first difference, as one line naming the port
  (:class:`~lifgate.config.ConfigError`);
* :func:`vendor_cells`: the FPGA primitives the file instantiates without defining them.

Members
-------
ICE40_CELLS, ECP5_CELLS : tuple of str
    Name patterns (regular expressions) of the primitives of each family.
"""

from __future__ import annotations

import re

from amaranth.hdl import Shape
from lifgate.hdl.array import lif_signature

from lifgate.config import ArrayShape, ConfigError, LeakMode

__all__ = ["ECP5_CELLS", "ICE40_CELLS", "check_ports", "contract_ports", "header_shape",
           "module_names", "module_ports", "strip_comments", "vendor_cells"]

ICE40_CELLS = (r"SB_\w+", r"ICESTORM_\w+")
ECP5_CELLS = (r"TRELLIS_\w+", r"LUT4", r"CCU2C", r"PFUMX", r"L6MUX21", r"DP16KD",
              r"MULT18X18D", r"ALU54B")

_HEADER_INTS = ("neurons", "lanes", "groups", "v_width", "i_width", "ref_width", "decay_frac",
                "step_width")


def strip_comments(text: str) -> str:
    """``text`` without ``//`` and ``/* */`` comments and ``(* *)`` attributes (strings kept
    as they are; Verilog strings hold no comment markers in the files this reads)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def header_shape(text: str) -> tuple[ArrayShape, bool, bool] | None:
    """``(shape, membrane, noise)`` from ``lifgate generate``'s header comment, or ``None``
    when the text has no such header. A header with a bad value raises ``ConfigError``."""
    fields = {}
    for m in re.finditer(r"^//\s{2,}(\w+)\s+=\s+(.+?)\s*$", text[:20000], flags=re.M):
        fields.setdefault(m.group(1), m.group(2))
    if not all(k in fields for k in (*_HEADER_INTS, "leak_modes", "membrane")):
        return None
    try:
        values = {k: int(fields[k]) for k in _HEADER_INTS}
        modes = tuple(LeakMode[m.strip().upper()] for m in fields["leak_modes"].split(","))
    except (ValueError, KeyError) as e:
        raise ConfigError(f"the header of the Verilog file has a bad shape field: {e}") from None
    # no reset_modes line: the default (VALUE, SUBTRACT); ArrayShape checks the names
    resets = [m.strip() for m in fields.get("reset_modes", "value, subtract").split(",")]
    shape = ArrayShape(**values, leak_modes=modes, reset_modes=resets)
    return shape, fields["membrane"] == "yes", fields.get("noise", "yes") == "yes"


def module_names(text: str) -> list[str]:
    """Names of the modules ``text`` defines, in order."""
    return re.findall(r"\bmodule\s+\\?([\w$]+)", strip_comments(text))


def _balanced(text: str, start: int) -> int:
    """Index just after the parenthesis that closes the one at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ConfigError("the Verilog file has an unbalanced parenthesis in a module header")


_DECL = re.compile(r"^\s*(input|output|inout)\b\s*(?:(?:wire|reg|logic|signed|unsigned)\s+)*"
                   r"(\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\])?\s*(.*)$", flags=re.S)


def module_ports(text: str, top: str) -> list[tuple[str, int, str]]:
    """``(direction, width, name)`` of every port of module ``top`` in ``text``, in order.

    Raises ``ConfigError`` (one line) when ``top`` is not defined or a port's range is not
    two integer literals.
    """
    src = strip_comments(text)
    m = re.search(rf"\bmodule\s+\\?{re.escape(top)}\s*(?=[#(;])", src)
    if m is None:
        found = ", ".join(module_names(text)) or "none"
        raise ConfigError(f"--verilog/--top: module {top!r} is not defined in the Verilog "
                          f"file (modules: {found})")
    i = m.end()
    if src[i] == "#":
        i = _balanced(src, src.index("(", i))
        i = len(src) - len(src[i:].lstrip())
    if src[i] != "(":
        return []
    end = _balanced(src, i)
    header = src[i + 1 : end - 1]
    body = src[end : src.find("endmodule", end)]
    ports, decls = [], {}
    if re.search(r"\b(input|output|inout)\b", header):  # ANSI
        direction, width = None, 1
        for item in header.split(","):
            d = _DECL.match(item)
            if d and d.group(1):
                direction = d.group(1)
                width = _width(d, top)
                name = d.group(5)
            else:
                name = item
            name = name.strip().lstrip("\\").split()[0] if name.strip() else ""
            ports.append((direction, width, name))
        return ports
    names = [n.strip().lstrip("\\") for n in header.split(",") if n.strip()]
    for stmt in body.split(";"):
        d = _DECL.match(stmt)
        if d:
            for name in d.group(5).split(","):
                decls[name.strip().lstrip("\\")] = (d.group(1), _width(d, top))
    for name in names:
        if name not in decls:
            raise ConfigError(f"port {name!r} of module {top!r} has no input/output "
                              f"declaration in the Verilog file")
        ports.append((*decls[name], name))
    return ports


def _width(d, top: str) -> int:
    if d.group(2) is None:
        if "[" in d.group(5).split(",")[0]:
            raise ConfigError(f"a port range of module {top!r} is not two integer literals: "
                              f"{' '.join(d.group(0).split())[:60]!r}; write it as [msb:0]")
        return 1
    return abs(int(d.group(3)) - int(d.group(4))) + 1


def contract_ports(shape: ArrayShape, *, membrane: bool = True,
                   noise: bool = True) -> list[tuple[str, int, str]]:
    """``(direction, width, name)`` of the ports ``docs/hardware.md`` asks of ``shape``."""
    out = [("input", 1, "clk"), ("input", 1, "rst")]
    for path, member in lif_signature(shape, membrane=membrane,
                                      noise=noise).members.flatten():
        if member.is_port:
            direction = "input" if member.flow.name == "In" else "output"
            width = Shape.cast(member.shape).width
            out.append((direction, width, "__".join(map(str, path))))
    return out


def check_ports(found, expected, *, top: str) -> None:
    """Raise ``ConfigError`` naming the first port of ``found`` that differs from
    ``expected`` (missing, extra, other direction or width); both are lists of
    ``(direction, width, name)``, order free."""
    have = {name: (d, w) for d, w, name in found}
    want = {name: (d, w) for d, w, name in expected}
    for name, (d, w) in want.items():
        if name not in have:
            raise ConfigError(f"port {name!r} ({d} [{w - 1}:0]) of the contract "
                              f"(docs/hardware.md) is missing from module {top!r}")
        hd, hw = have[name]
        if (hd, hw) != (d, w):
            raise ConfigError(f"port {name!r} of module {top!r} is {hd} [{hw - 1}:0]; the "
                              f"contract (docs/hardware.md) for this shape asks {d} [{w - 1}:0]")
    for name in have:
        if name not in want:
            raise ConfigError(f"port {name!r} of module {top!r} is not in the contract "
                              f"(docs/hardware.md) for this shape")


def vendor_cells(text: str) -> tuple[str | None, set]:
    """``(family, cells)``: the FPGA primitives ``text`` instantiates and does not define,
    and their family (``"ice40"``, ``"ecp5"`` or ``None``). Both families in one file raise
    ``ConfigError``."""
    src = strip_comments(text)
    defined = set(module_names(text))
    found = {}
    for family, patterns in (("ice40", ICE40_CELLS), ("ecp5", ECP5_CELLS)):
        for pat in patterns:
            for m in re.finditer(rf"^\s*({pat})\s*(?:#\s*\(|\\?[A-Za-z_$])", src, flags=re.M):
                if m.group(1) not in defined:
                    found.setdefault(family, set()).add(m.group(1))
    if len(found) > 1:
        raise ConfigError("the Verilog file instantiates both iCE40 and ECP5 primitives "
                          f"({', '.join(sorted(found['ice40'] | found['ecp5']))})")
    if not found:
        return None, set()
    family = next(iter(found))
    return family, found[family]
