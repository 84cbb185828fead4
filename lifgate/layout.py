"""The bit layout of the neuron array, derived once from its shape: words, fields, port widths.

Every user of a packed word or a port width (the gateware's ``data.StructLayout``\\ s, the
Verilog header, the cocotb runner and beat codec, the Amaranth driver, the host link's byte
counts, :func:`lifgate.config.pack_params`) reads it from one :class:`ArrayLayout`, the
``layout`` of an :class:`~lifgate.config.ArrayShape`; nobody derives a width or an offset
from the shape again. ``tests/test_layout.py`` checks that what Amaranth builds from it (field
offsets, port widths, the header of the generated Verilog) agrees with it.

Pure Python, the bottom of the contract floor: it imports nothing of lifgate (the shape's
fields come in as integers), so :mod:`lifgate.config` can build on it. Not to be confused with
Amaranth's ``data.ArrayLayout`` (an array of equal elements).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = [
    "LEAK_MODE_WIDTH",
    "RESET_MODE_WIDTH",
    "SIGNED_PARAMS",
    "ArrayLayout",
    "Field",
    "Word",
    "array_layout",
]

#: Width of the ``leak_mode`` field of a parameter word (the codes of ``LeakMode``).
LEAK_MODE_WIDTH = 2
#: Width of the ``reset_mode`` field of a parameter word whose shape builds VALUE and SUBTRACT
#: only (codes 0 and 1 of ``ResetMode``, the default). A shape that also builds
#: SUBTRACT_AFTER_LEAK (code 2) has a 2-bit field (``ArrayShape.reset_modes``).
RESET_MODE_WIDTH = 1
#: The parameter fields that are signed ``v_width``-bit values.
SIGNED_PARAMS = ("v_th", "v_reset", "v_rest", "v_init", "bias")


def _bits(n: int) -> int:
    """``ceil(log2(n))`` for ``n >= 1``, at least 1: the width of an index ``0 .. n-1``."""
    return max(1, (n - 1).bit_length())


def _bytes(width: int) -> int:
    return (width + 7) // 8


@dataclass(frozen=True)
class Field:
    """One field of a packed :class:`Word`.

    Members
    -------
    name : str
    offset : int
        Its least significant bit in the word.
    width : int
        Its width in bits (all elements together for an array field).
    signed : bool
        Two's complement (each element, for an array field).
    elements : int or None
        ``None`` for a plain field; for an array field (one value per lane), the number of
        elements: element ``p`` sits at ``offset + p * element_width``.
    """

    name: str
    offset: int
    width: int
    signed: bool = False
    elements: int | None = None

    @property
    def msb(self) -> int:
        """Its most significant bit in the word."""
        return self.offset + self.width - 1

    @property
    def element_width(self) -> int:
        """Width of one element (the whole width for a plain field)."""
        return self.width // (self.elements or 1)

    def _value(self, bits: int, width: int) -> int:
        if self.signed and bits >> (width - 1):
            return bits - (1 << width)
        return bits

    def get(self, word: int):
        """The field's value in ``word``: an int (signed if ``signed``), or for an array field
        a tuple of its elements."""
        if self.elements is None:
            return self._value((word >> self.offset) & ((1 << self.width) - 1), self.width)
        w = self.element_width
        return tuple(self._value((word >> (self.offset + p * w)) & ((1 << w) - 1), w)
                     for p in range(self.elements))

    def put(self, value) -> int:
        """``value`` (an int, or a sequence of elements for an array field) masked to the
        field's bits and shifted to its place (two's complement for negative values)."""
        if self.elements is None:
            return (int(value) & ((1 << self.width) - 1)) << self.offset
        w = self.element_width
        return sum((int(x) & ((1 << w) - 1)) << (self.offset + p * w)
                   for p, x in enumerate(value))


@dataclass(frozen=True)
class Word:
    """A packed word: its :class:`Field`\\ s, least significant first, without gaps.

    Members
    -------
    fields : tuple of Field
        In order of offset; ``fields[0].offset == 0`` and each starts where the previous ends.
    width : int
        Total width in bits.
    bytes : int
        ``width`` rounded up to whole bytes.

    ``word["name"]`` is a field, ``"name" in word`` asks for one, iterating gives the fields.
    """

    fields: tuple

    @classmethod
    def of(cls, *specs) -> Word:
        """Lay out ``(name, width, signed, elements)`` specs least significant first."""
        fields, offset = [], 0
        for name, width, signed, elements in specs:
            fields.append(Field(name, offset, width, signed, elements))
            offset += width
        return cls(tuple(fields))

    @property
    def width(self) -> int:
        return sum(f.width for f in self.fields)

    @property
    def bytes(self) -> int:
        return _bytes(self.width)

    @property
    def names(self) -> tuple:
        return tuple(f.name for f in self.fields)

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name) -> bool:
        return any(f.name == name for f in self.fields)

    def __iter__(self):
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def pairs(self) -> list:
        """``[(name, width), ...]``, least significant first."""
        return [(f.name, f.width) for f in self.fields]

    def pack(self, values) -> int:
        """The word holding ``values[name]`` in every field (masked, two's complement)."""
        word = 0
        for f in self.fields:
            word |= f.put(values[f.name])
        return word

    def unpack(self, word: int) -> dict:
        """``{name: value}`` of every field of ``word`` (inverse of :meth:`pack`)."""
        return {f.name: f.get(word) for f in self.fields}


@dataclass(frozen=True)
class ArrayLayout:
    """Everything about bits that the neuron array's shape decides: words and port widths.

    Made by :func:`array_layout` (once per shape; ``ArrayShape.layout`` is the usual way in).
    ``W`` is ``v_width``, ``IW`` ``i_width``, ``P`` ``lanes``, ``D`` ``depth``
    (``docs/hardware.md``).

    Members
    -------
    lanes, depth : int
        ``P`` and ``D = N / P``.
    addr_width : int
        ``AW``, a lane address (the ``addr`` field of a beat): ``max(1, ceil(log2(D)))``.
    group_width : int
        ``GW``, the ``param_group`` port: ``max(1, ceil(log2(G)))``.
    neuron_width : int
        A neuron index ``0 .. N-1`` (a spike event): ``max(1, ceil(log2(N)))``.
    value_width, current_width, step_width : int
        ``W``, ``IW`` and the step label's width.
    params : Word
        One parameter set (the ``param_data`` port, :func:`lifgate.config.pack_params`):
        ``v_th``, ``v_reset``, ``v_rest``, ``v_init``, ``bias`` (signed, ``W`` bits), ``leak``
        (``max(W, decay_frac)`` bits, raw: its meaning depends on ``leak_mode``), ``t_ref``
        (``ref_width``), ``leak_mode`` (:data:`LEAK_MODE_WIDTH`), ``reset_mode``
        (``reset_width``: :data:`RESET_MODE_WIDTH`, 2 when the shape builds
        SUBTRACT_AFTER_LEAK), least significant first.
    inputs : Word
        The ``i_stream`` payload: one array field ``i`` of ``P`` signed ``IW``-bit currents.
    beat_membrane, beat_spikes : Word
        The ``o_stream`` payload with and without the membrane readback: ``step``, ``addr``,
        ``spikes`` (``P`` bits, bit ``p`` = lane ``p``; with multi-spike output an array field
        of ``P`` unsigned ``count_width``-bit counts) and, with membrane, the array field
        ``v`` (``P`` signed ``W``-bit values). :meth:`beat` picks one.
    count_width : int
        ``CW``, bits of one lane's spike count (``ArrayShape.count_width``; 1: a spike bit).
    param_bytes, current_bytes, value_bytes, spike_bytes : int
        The parameter word, a current, a membrane value and the ``P`` spike bits, each rounded
        up to whole bytes (what the host link sends).

    The contract: the gateware's ``param_struct``/``beat_layout``/``input_layout``, its ports,
    the Verilog header and every codec use exactly these fields, offsets and widths.
    """

    lanes: int
    depth: int
    addr_width: int
    group_width: int
    neuron_width: int
    value_width: int
    current_width: int
    step_width: int
    params: Word
    inputs: Word
    beat_membrane: Word
    beat_spikes: Word
    count_width: int = 1

    def beat(self, membrane: bool = True) -> Word:
        """The ``o_stream`` payload, with or without the membrane readback."""
        return self.beat_membrane if membrane else self.beat_spikes

    @property
    def param_width(self) -> int:
        """Width of a parameter word (the ``param_data`` port)."""
        return self.params.width

    @property
    def param_bytes(self) -> int:
        return self.params.bytes

    @property
    def current_bytes(self) -> int:
        return _bytes(self.current_width)

    @property
    def value_bytes(self) -> int:
        return _bytes(self.value_width)

    @property
    def spike_bytes(self) -> int:
        return _bytes(self.lanes * self.count_width)


@functools.lru_cache(maxsize=1024)
def array_layout(*, neurons: int, lanes: int, groups: int, v_width: int, i_width: int,
                 ref_width: int, decay_frac: int, step_width: int,
                 reset_width: int = RESET_MODE_WIDTH, count_width: int = 1) -> ArrayLayout:
    """The :class:`ArrayLayout` of a shape with these fields (computed once, then cached).

    Takes the checked fields of an :class:`~lifgate.config.ArrayShape`; use
    ``ArrayShape.layout``, which passes them.
    """
    w = v_width
    params = Word.of(
        *((name, w, True, None) for name in SIGNED_PARAMS),
        ("leak", max(v_width, decay_frac), False, None),
        ("t_ref", ref_width, False, None),
        ("leak_mode", LEAK_MODE_WIDTH, False, None),
        ("reset_mode", reset_width, False, None),
    )
    depth = neurons // lanes
    head = (
        ("step", step_width, False, None),
        ("addr", _bits(depth), False, None),
        # one bit a lane, or (multi-spike output) an array field of CW-bit counts
        ("spikes", lanes * count_width, False, None if count_width == 1 else lanes),
    )
    return ArrayLayout(
        lanes=lanes,
        depth=depth,
        addr_width=_bits(depth),
        group_width=_bits(groups),
        neuron_width=_bits(neurons),
        value_width=v_width,
        current_width=i_width,
        step_width=step_width,
        params=params,
        inputs=Word.of(("i", lanes * i_width, True, lanes)),
        beat_membrane=Word.of(*head, ("v", lanes * w, True, lanes)),
        beat_spikes=Word.of(*head),
        count_width=count_width,
    )
