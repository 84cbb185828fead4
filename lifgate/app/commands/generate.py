"""``lifgate generate``: write the Verilog of a neuron array (top module ``lif_array``).

The shape comes from ``--config`` (its ``[shape]`` section), or the defaults of ``ArrayShape``
with one parameter group (the default of every command, see below), with the options below
overriding single fields. A configuration's ``[params]`` and ``[noise]`` sections are run-time
settings, loaded through the register ports, and do not enter the Verilog: the command says so
on stderr rather than ignoring them silently. The same shape and options always give a
byte-identical file. A bad value is reported as ``lifgate generate: error: ...`` (exit 2)
before anything is generated, and no file is written or replaced; the file is written with
:func:`lifgate.checks.write_output` (through a symbolic link, into a device, atomically over a
regular file).
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys

from lifgate.app.cli import DEFAULT_GROUPS
from lifgate.checks import (
    check_int,
    check_reset_modes,
    read_config_file,
    writable_file,
    write_output,
)
from lifgate.config import ArrayShape, ConfigError
from lifgate.hdl.verilog import generate_verilog

MULTIPLIERS = ("fabric", "ecp5", "ice40")

_OVERRIDES = [
    # (option, ArrayShape field, metavar, help)
    ("--neurons", "neurons", "N", "number of neurons N, 1 to 2**20, a multiple of lanes"),
    ("--lanes", "lanes", "P", "number of update lanes P, 1 to 64, dividing N"),
    ("--groups", "groups", "G", "number of parameter groups G, dividing N (default 1, as in "
     "every lifgate command; a configuration file's shape.groups when --config is given)"),
    ("--width", "v_width", "W", "membrane width W in bits, 4 to 32"),
    ("--i-width", "i_width", "IW", "input current width in bits, 2 to 32"),
    ("--ref-width", "ref_width", "R", "refractory counter width in bits, 1 to 16"),
    ("--decay-frac", "decay_frac", "F", "fraction bits of the MULT decay factor, 1 to 24"),
    ("--step-width", "step_width", "S", "width of the step label of output beats, 8 to 32"),
    ("--spike-max", "spike_max", "K", "largest spike count of a neuron in one step: 1 "
     "(default, a spike bit), 3, 7 or 15 (multi-spike output: a count of 2 to 4 bits per "
     "lane in the beat; docs/numerics.md)"),
]


def register(subparsers, summary):
    p = subparsers.add_parser(
        "generate",
        help=summary,
        description=summary + ". Options override single fields of the configuration's shape.",
    )
    p.add_argument("--config", metavar="FILE", default=None,
                   help="configuration file (.toml or .json); its [shape] section is used, its "
                   "[params] and [noise] (run-time settings) do not enter the Verilog; "
                   "default: ArrayShape defaults with 1 parameter group")
    for option, _field, metavar, text in _OVERRIDES:
        p.add_argument(option, type=int, default=None, metavar=metavar, help=text)
    p.add_argument("--leak-modes", default=None, metavar="MODES",
                   help="comma-separated leak modes to build: shift, mult, const")
    p.add_argument("--reset-modes", default=None, metavar="MODES",
                   help="comma-separated reset modes to build: value,subtract (always built; "
                   "the default) and subtract_after_leak (snnTorch's subtract reset; a 2-bit "
                   "reset_mode field and its logic)")
    p.add_argument("--no-membrane", action="store_true",
                   help="leave out the membrane readback (the v field of o_stream)")
    p.add_argument("--no-noise", action="store_true",
                   help="leave out the noise source (no noise_seed/noise_gain ports)")
    p.add_argument("--pipeline", choices=("deep", "compact"), default="deep",
                   help="pipeline profile: deep (latency 9, fastest clock; default) or "
                        "compact (latency 8, fewer registers, for iCE40-class FPGAs); "
                        "same behaviour")
    p.add_argument("--lanes-per-enable", type=int, default=None, metavar="K",
                   help="a copy of the pipeline enable for every K lanes (1 to P; default: "
                        "one for all), for large FPGAs where its fan-out limits the clock")
    p.add_argument("--multiplier", choices=MULTIPLIERS, default="fabric",
                   help="how the MULT leak and noise multipliers are built: fabric (plain "
                        "Verilog '*', any FPGA; default), ecp5 (MULT18X18D primitives with "
                        "their own registers, faster on the ECP5) or ice40 (the noise "
                        "multiply-add in one SB_MAC16 per lane, with its own registers and "
                        "adder, for the iCE40UP5K; needs --width <= 22 with noise); "
                        "simulate the primitives with the models from lifgate.hdl.dsp; same "
                        "behaviour")
    p.add_argument("--memory", choices=("inferred", "ecp5"), default="inferred",
                   help="how the v and r memories are built: inferred (Verilog memories "
                        "that synthesis maps; default) or ecp5 (DP16KD primitives whose "
                        "output register is the first pipeline register, faster on the ECP5; "
                        "needs --pipeline deep and at most 16384 neurons per lane); same "
                        "behaviour")
    p.add_argument("-o", "--output", required=True, metavar="OUT.v", help="Verilog file to write")
    p.set_defaults(func=run)


def shape_from_args(args) -> ArrayShape:
    """The :class:`ArrayShape` selected by ``--config`` and the override options."""
    return _shape_and_notes(args)[0]


def _shape_and_notes(args) -> tuple[ArrayShape, list[str]]:
    notes = []
    if args.config:
        raw, config = read_config_file("--config", args.config)
        shape = config.shape
        used = "[shape]" if "shape" in raw else "no [shape] section (ArrayShape defaults)"
        notes.append(f"--config {args.config}: used {used}")
        ignored = [f"[{k}]" for k in ("params", "noise") if k in raw]
        if ignored:
            notes.append(f"--config {args.config}: not used: {' and '.join(ignored)}, run-time "
                         f"settings loaded through the register ports, not part of the Verilog")
    else:
        shape = dataclasses.replace(ArrayShape(), groups=DEFAULT_GROUPS)
    changes = {}
    for option, field, _metavar, _text in _OVERRIDES:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[field] = value
    if args.leak_modes is not None:
        modes = [m.strip() for m in args.leak_modes.split(",") if m.strip()]
        changes["leak_modes"] = tuple(modes)
    if args.reset_modes is not None:
        changes["reset_modes"] = tuple(m.name.lower() for m in
                                       check_reset_modes("--reset-modes", args.reset_modes))
    if changes:
        notes.append("options override " + ", ".join(f"{k}={v}" if not isinstance(v, tuple)
                                                      else f"{k}={','.join(v)}"
                                                      for k, v in changes.items()))
    return (dataclasses.replace(shape, **changes) if changes else shape), notes


def run(args) -> int:
    # Every argument and the output path are checked before anything is generated.
    writable_file("-o/--output", args.output)
    shape, notes = _shape_and_notes(args)  # raises ConfigError before anything is written
    lpe = args.lanes_per_enable
    if lpe is not None:
        check_int("--lanes-per-enable", lpe, 1, shape.lanes)

    try:
        text = generate_verilog(shape, membrane=not args.no_membrane, noise=not args.no_noise,
                                pipeline=args.pipeline, lanes_per_enable=lpe,
                                multiplier=args.multiplier, memory=args.memory)
    except ConfigError:
        raise
    except ValueError as e:  # an operand too wide for a vendor primitive, say
        raise ConfigError(f"--multiplier {args.multiplier} / --memory {args.memory}: "
                          f"{e}") from None
    if args.config:  # say what the file gave and what it did not
        for note in notes:
            print(f"lifgate generate: {note}", file=sys.stderr)
    write_output("-o/--output", args.output, text)
    modes = ",".join(m.name.lower() for m in shape.leak_modes)
    if shape.reset_width > 1:
        modes += ", reset modes " + ",".join(m.name.lower() for m in shape.reset_modes)
    # With -o /dev/stdout (or the file stdout goes to) the summary must not end up in the
    # Verilog: it goes to stderr then.
    summary = sys.stderr if _same_file(args.output, sys.stdout) else sys.stdout
    print(
        f"wrote {args.output}: lif_array, {shape.neurons} neurons = {shape.lanes} lanes x "
        f"{shape.depth}, {shape.groups} group{'s' if shape.groups != 1 else ''}, "
        f"W={shape.v_width}, leak modes {modes}, multiplier {args.multiplier}, "
        f"memory {args.memory}",
        file=summary,
    )
    return 0


def _same_file(path, stream) -> bool:
    try:
        a, b = os.stat(path), os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
