"""Bulk encoding of harness stimulus and decoding/checking of o_stream beats (numpy only).

The harness (``sim/harness.v``) reads the input stream from a ``$readmemh`` file and writes every
o_stream beat as one ``%h`` line (the full packed payload, MSB first, zero padded). Both are
handled here in vectorised numpy, so a simulation session spends its time simulating; and the
first mismatch against the golden model is found and reported as ``(configuration, step,
neuron, expected, got)``.
"""

from __future__ import annotations

import numpy as np

from lifgate.layout import Field, Word

__all__ = [
    "BeatFormatError",
    "Beats",
    "check_run",
    "compare_outputs",
    "decode_beats",
    "encode_stimulus",
]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
    _NIBBLE[ord(chr(_c).upper())] = _i


class BeatFormatError(ValueError):
    """The beat file is malformed or holds X/Z digits."""


# Wide words are handled as arrays of little-endian uint64 limbs [B, nwords]: limb k holds bits
# 64k .. 64k+63. Every step below is a handful of numpy passes per limb or per field.

_U64 = np.uint64


def _nwords(nbits: int) -> int:
    return max(1, -(-nbits // 64))


def _put_field(words: np.ndarray, value: np.ndarray, offset: int, width: int) -> None:
    """OR the low ``width`` (<= 64) bits of ``value`` (uint64 [B]) into ``words`` at ``offset``."""
    if width < 64:
        value = value & _U64((1 << width) - 1)
    i, s = divmod(offset, 64)
    words[:, i] |= value << _U64(s)
    if s and s + width > 64:
        words[:, i + 1] |= value >> _U64(64 - s)


def _get_field(words: np.ndarray, offset: int, width: int) -> np.ndarray:
    """Bits ``offset .. offset+width-1`` (width <= 64) of each row, as uint64 [B]."""
    i, s = divmod(offset, 64)
    x = words[:, i] >> _U64(s)
    if s and s + width > 64:
        x = x | (words[:, i + 1] << _U64(64 - s))
    if width < 64:
        x = x & _U64((1 << width) - 1)
    return x


def _words_to_hex_lines(words: np.ndarray, nbits: int) -> bytes:
    """[B, nwords] limbs -> B lines of ``ceil(nbits / 4)`` MSB-first hex digits."""
    b = words.shape[0]
    nch = max(1, -(-nbits // 4))
    nbytes = -(-nch // 2)
    be = words.astype("<u8").view(np.uint8).reshape(b, -1)[:, nbytes - 1 :: -1]
    digits = np.frombuffer(np.ascontiguousarray(be).tobytes().hex().encode(), dtype=np.uint8)
    digits = digits.reshape(b, 2 * nbytes)[:, 2 * nbytes - nch :]
    out = np.empty((b, nch + 1), dtype=np.uint8)
    out[:, :nch] = digits
    out[:, nch] = ord("\n")
    return out.tobytes()


def _hex_lines_to_words(lines: np.ndarray, nbits: int) -> np.ndarray:
    """[B, nch + 1] lines of MSB-first hex digits and a newline -> [B, nwords] limbs.

    Raises ``ValueError`` if a digit is not hexadecimal.
    """
    b, nch = lines.shape[0], lines.shape[1] - 1
    nbytes = -(-nch // 2)
    if nch % 2:  # one leading 0 per line, so each line is whole bytes
        padded = np.empty((b, nch + 2), dtype=np.uint8)
        padded[:, 0] = ord("0")
        padded[:, 1:] = lines
        lines = padded
    data = np.frombuffer(bytes.fromhex(lines.tobytes().decode("latin-1")), dtype=np.uint8)
    nw = _nwords(nbits)
    le = np.zeros((b, nw * 8), dtype=np.uint8)
    le[:, :nbytes] = data.reshape(b, nbytes)[:, ::-1]
    return le.view("<u8").astype(np.uint64, copy=False)


def encode_stimulus(currents: np.ndarray, lanes: int, i_width: int) -> bytes:
    """``$readmemh`` text of the i_stream beats for ``currents`` [steps, N].

    Beat ``t * D + a`` carries neurons ``a*P .. a*P+P-1`` of step ``t``, lane ``p`` in bits
    ``p*IW ..`` (two's complement), ``docs/hardware.md``.
    """
    cur = np.asarray(currents, dtype=np.int64)
    steps, n = cur.shape
    beats = cur.reshape(steps * (n // lanes), lanes).view(np.uint64)
    nbits = lanes * i_width
    words = np.zeros((beats.shape[0], _nwords(nbits)), dtype=np.uint64)
    for p in range(lanes):
        _put_field(words, beats[:, p], p * i_width, i_width)
    return _words_to_hex_lines(words, nbits)


class Beats:
    """Decoded o_stream beats.

    Members
    -------
    step, addr : int64 arrays [B]
    spikes : bool array [B, P], or uint8 [B, P] counts (multi-spike output)
    v : int64 array [B, P] or None (no membrane readback)
    """

    def __init__(self, step, addr, spikes, v):
        self.step, self.addr, self.spikes, self.v = step, addr, spikes, v

    def __len__(self):
        return len(self.step)


def _beat_word(layout, lanes: int | None) -> Word:
    """``layout`` as a :class:`~lifgate.layout.Word`: itself, or made from the JSON form
    ``{name: (offset, width)}`` (``v`` an array field of ``lanes`` signed elements)."""
    if isinstance(layout, Word):
        return layout
    if lanes is None:
        raise ValueError("decode_beats needs 'lanes' with a {field: (offset, width)} layout")
    return Word(tuple(
        Field(name, off, w, signed=name == "v", elements=lanes if name == "v" else None)
        for name, (off, w) in sorted(layout.items(), key=lambda item: item[1][0])
    ))


def decode_beats(text: bytes, layout, width: int | None = None, lanes: int | None = None,
                 v_width: int | None = None) -> Beats:
    """Decode the harness' beat file.

    ``layout`` is the beat's :class:`~lifgate.layout.Word` (``shape.layout.beat(membrane)``),
    or its JSON form :func:`lifgate.sim.runner.payload_layout` gives: a dict mapping ``step``,
    ``addr``, ``spikes`` and optionally ``v`` to ``(offset, width)``, with ``lanes`` (the
    elements of ``v``). ``width`` is the payload's width (default: the word's); ``v_width``, if
    given, must be the width of an element of ``v``. Raises :class:`BeatFormatError` on a
    malformed line or an X/Z digit (naming the beat).
    """
    word = _beat_word(layout, lanes)
    width = word.width if width is None else width
    if "v" in word and v_width is not None and word["v"].element_width != v_width:
        raise ValueError(f"v_width {v_width} differs from the layout's {word['v'].element_width}")
    nch = max(1, -(-width // 4))
    raw = np.frombuffer(text, dtype=np.uint8)
    if raw.size % (nch + 1):
        raise BeatFormatError(
            f"beat file of {raw.size} bytes is not a whole number of {nch}-digit lines"
        )
    lines = raw.reshape(-1, nch + 1)
    if lines.size and not (lines[:, nch] == ord("\n")).all():
        bad = int(np.flatnonzero(lines[:, nch] != ord("\n"))[0])
        raise BeatFormatError(f"beat {bad}: line is not {nch} hex digits")
    try:
        words = _hex_lines_to_words(lines, width)
    except ValueError:
        nib = _NIBBLE[lines[:, :nch]]
        bad = int(np.flatnonzero((nib == 255).any(axis=1))[0])
        raise BeatFormatError(
            f"beat {bad}: payload {lines[bad, :nch].tobytes().decode(errors='replace')!r} "
            "has X/Z or non-hex digits"
        ) from None
    step = _get_field(words, word["step"].offset, word["step"].width).astype(np.int64)
    addr = _get_field(words, word["addr"].offset, word["addr"].width).astype(np.int64)
    sf = word["spikes"]
    n_lanes = sf.elements or lanes or (word["v"].elements if "v" in word else sf.width)
    cw = sf.width // n_lanes  # > 1: multi-spike output, a count per lane
    spikes = np.empty((len(words), n_lanes), dtype=bool if cw == 1 else np.uint8)
    for p in range(n_lanes):
        spikes[:, p] = _get_field(words, sf.offset + p * cw, cw)
    v = None
    if "v" in word:
        vf = word["v"]
        ew = vf.element_width
        v = np.empty((len(words), vf.elements), dtype=np.int64)
        for p in range(vf.elements):
            u = _get_field(words, vf.offset + p * ew, ew).astype(np.int64)
            v[:, p] = u - ((u >> (ew - 1)) << ew)
    return Beats(step, addr, spikes, v)


def check_run(beats: Beats, expected, *, lanes: int, step0: int, step_width: int,
              case: str = "", base_step: int = 0) -> dict | None:
    """Compare the beats of one run with the golden :class:`~lifgate.golden.fixed.Result`.

    ``step0`` is the step label the run starts at (steps completed since the last clear);
    ``base_step`` is the run's first step within the case (for the report). Returns ``None``
    when every beat matches, else the first mismatch as a dict with ``case``, ``step`` (within
    the case), ``neuron``, ``field``, ``expected``, ``got`` (and ``mismatches``, the number of
    differing values).
    """
    steps, n = expected.spikes.shape
    depth = n // lanes
    want = steps * depth
    t = np.arange(want) // depth
    a = np.arange(want) % depth
    m = min(want, len(beats))
    label = (step0 + t[:m]) % (1 << step_width)
    bad = np.flatnonzero((beats.step[:m] != label) | (beats.addr[:m] != a[:m]))
    if bad.size:
        i = int(bad[0])
        return {
            "case": case,
            "step": base_step + int(t[i]),
            "neuron": int(a[i]) * lanes,
            "field": "beat order (step label, address)",
            "expected": [int(label[i]), int(a[i])],
            "got": [int(beats.step[i]), int(beats.addr[i])],
            "beat": i,
            "mismatches": int(bad.size),
        }
    if len(beats) != want:
        i = m
        return {
            "case": case,
            "step": base_step + (int(t[i]) if i < want else steps),
            "neuron": (int(a[i]) * lanes) if i < want else 0,
            "field": "beat count",
            "expected": want,
            "got": len(beats),
            "beat": i,
            "mismatches": abs(want - len(beats)),
        }
    v_got = None if beats.v is None else beats.v.reshape(steps, n)
    return compare_outputs(beats.spikes.reshape(steps, n), v_got, expected, case=case,
                           base_step=base_step)


def compare_outputs(spikes, v, expected, *, case: str = "", base_step: int = 0) -> dict | None:
    """Compare ``spikes`` [T, N] and ``v`` [T, N] (or None) with a golden ``Result``.

    Returns ``None`` when all match, else the first mismatch in (step, neuron) order, as in
    :func:`check_run`.
    """
    spikes_e, v_e = expected.spikes, expected.v
    if spikes.shape != spikes_e.shape:
        return {
            "case": case,
            "step": base_step,
            "neuron": 0,
            "field": "shape",
            "expected": list(spikes_e.shape),
            "got": list(spikes.shape),
            "mismatches": 1,
        }
    n = spikes_e.shape[1]
    diff = spikes != spikes_e
    fields = [("spike", spikes.astype(np.int64), spikes_e.astype(np.int64), diff)]
    if v is not None:
        dv = v != v_e
        fields.append(("v", v, v_e, dv))
        diff = diff | dv
    if not diff.any():
        return None
    idx = int(np.flatnonzero(diff.reshape(-1))[0])
    ts, nn = divmod(idx, n)
    names = [name for name, _, _, d in fields if d[ts, nn]]
    return {
        "case": case,
        "step": base_step + ts,
        "neuron": nn,
        "field": "+".join(names),
        "expected": {name: int(e[ts, nn]) for name, _, e, _ in fields},
        "got": {name: int(g[ts, nn]) for name, g, _, _ in fields},
        "mismatches": int(diff.sum()),
    }
