"""``lifgate generate``: write the Verilog of a neuron array (top module ``lif_array``).

The shape comes from ``--config`` (its ``shape`` section; parameters and noise are run-time
settings and do not enter the Verilog), or the defaults of ``ArrayShape``, with the options
below overriding single fields. The same shape and options always give a byte-identical file.
A bad value is reported as ``lifgate generate: error: ...`` (exit 2) and no file is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lifgate.config import ArrayShape, Config

_OVERRIDES = [
    # (option, ArrayShape field, metavar, help)
    ("--neurons", "neurons", "N", "number of neurons N, 1 to 2**20, a multiple of lanes"),
    ("--lanes", "lanes", "P", "number of update lanes P, 1 to 64, dividing N"),
    ("--groups", "groups", "G", "number of parameter groups G, dividing N"),
    ("--width", "v_width", "W", "membrane width W in bits, 4 to 32"),
    ("--i-width", "i_width", "IW", "input current width in bits, 2 to 32"),
    ("--ref-width", "ref_width", "R", "refractory counter width in bits, 1 to 16"),
    ("--decay-frac", "decay_frac", "F", "fraction bits of the MULT decay factor, 1 to 24"),
    ("--step-width", "step_width", "S", "width of the step label of output beats, 8 to 32"),
]


def register(subparsers, summary):
    p = subparsers.add_parser(
        "generate",
        help=summary,
        description=summary + ". Options override single fields of the configuration's shape.",
    )
    p.add_argument("--config", metavar="FILE", default=None,
                   help="configuration file (.json or .toml); default: ArrayShape defaults")
    for option, _field, metavar, text in _OVERRIDES:
        p.add_argument(option, type=int, default=None, metavar=metavar, help=text)
    p.add_argument("--leak-modes", default=None, metavar="MODES",
                   help="comma-separated leak modes to build: shift, mult, const")
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
    p.add_argument("--multiplier", choices=("fabric", "ecp5"), default="fabric",
                   help="how the MULT leak and noise multipliers are built: fabric (plain "
                        "Verilog '*', any FPGA; default) or ecp5 (MULT18X18D primitives with "
                        "their own registers, faster on the ECP5; simulate with the model "
                        "from lifgate.hdl.dsp); same behaviour")
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
    shape = Config.load(args.config).shape if args.config else ArrayShape()
    changes = {}
    for option, field, _metavar, _text in _OVERRIDES:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[field] = value
    if args.leak_modes is not None:
        modes = [m.strip() for m in args.leak_modes.split(",") if m.strip()]
        changes["leak_modes"] = tuple(modes)
    return dataclasses.replace(shape, **changes) if changes else shape


def run(args) -> int:
    from lifgate.cli import UsageError

    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"output directory {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise UsageError(f"output {str(out)!r} is a directory")
    shape = shape_from_args(args)  # raises ConfigError before anything is written
    lpe = args.lanes_per_enable
    if lpe is not None and not 1 <= lpe <= shape.lanes:
        raise UsageError(f"--lanes-per-enable must be between 1 and the lanes ({shape.lanes}), "
                         f"not {lpe}")

    from lifgate.hdl.verilog import write_verilog

    write_verilog(shape, out, membrane=not args.no_membrane, noise=not args.no_noise,
                  pipeline=args.pipeline, lanes_per_enable=lpe, multiplier=args.multiplier,
                  memory=args.memory)
    modes = ",".join(m.name.lower() for m in shape.leak_modes)
    print(
        f"wrote {out}: lif_array, {shape.neurons} neurons = {shape.lanes} lanes x "
        f"{shape.depth}, {shape.groups} groups, W={shape.v_width}, leak modes {modes}"
    )
    return 0
