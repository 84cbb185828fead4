"""The one configuration object shared by the HDL, the golden model and the testbenches.

A :class:`Config` holds everything that decides what the neuron array computes:

* :class:`ArrayShape`: compile-time parameters (number of neurons, lanes, widths, which leak
  modes the gateware supports). Changing one of these means generating new Verilog.
* a tuple of :class:`NeuronParams`, one per parameter group: run-time parameters (threshold,
  reset, leak, refractory period, bias, initial value). The gateware loads them through its
  register interface, so changing them needs no new synthesis.
* :class:`NoiseParams`: run-time settings of the on-chip noise source.

Every value is checked at construction; a bad one raises :class:`ConfigError` naming the
parameter and its legal range. All integers are in the fixed-point units of ``docs/numerics.md``.
This module is pure Python: no numpy, no Amaranth.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import numbers
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from lifgate.layout import ArrayLayout, array_layout

__all__ = [
    "ArrayShape",
    "Config",
    "ConfigError",
    "ConfigTypeError",
    "DEFAULT_RESET_MODES",
    "LeakMode",
    "NeuronParams",
    "NoiseParams",
    "ResetMode",
    "SPIKE_MAXES",
    "acc_width",
    "ArrayLayout",
    "param_layout",
    "pack_params",
    "unpack_params",
    "shape_of",
]


class ConfigError(ValueError):
    """A configuration value is out of its legal range or of the wrong type.

    The one error type of lifgate for a user's mistake: catch ``ConfigError``.
    """


class ConfigTypeError(ConfigError, TypeError):
    """A :class:`ConfigError` that is also a ``TypeError``: what a gateware constructor raises
    for a bad argument, where Amaranth's convention (and lifgate before issue 15) is
    ``TypeError``; so both ``except ConfigError`` and ``except TypeError`` catch it."""


def shape_of(config) -> ArrayShape:
    """The :class:`ArrayShape` of ``config`` (a :class:`Config` or an ``ArrayShape`` itself).

    Everything that builds from a shape (the gateware, the Verilog export, the event decoder)
    takes either; anything else raises :class:`ConfigTypeError`.
    """
    if isinstance(config, Config):
        return config.shape
    if isinstance(config, ArrayShape):
        return config
    text = repr(config)
    text = text if len(text) <= 40 else text[:37] + "..."
    raise ConfigTypeError(f"parameter 'config' must be a Config or an ArrayShape, not {text}")



class LeakMode(enum.IntEnum):
    """How the membrane decays each step (``docs/numerics.md``, "Leak").

    The integer values are the encoding used by the gateware's parameter registers.
    """

    #: ``v += -round((v - v_rest) / 2**leak)``: tau = 2**leak steps, no multiplier.
    SHIFT = 0
    #: ``v = v_rest + round((v - v_rest) * leak / 2**decay_frac)``: any tau, one multiplier.
    MULT = 1
    #: ``v -= leak``: constant leak (``leak = 0``: none); the integrate-and-fire (IAF) neuron.
    CONST = 2


class ResetMode(enum.IntEnum):
    """What a spike does to the membrane (``docs/numerics.md``, "Threshold and reset")."""

    #: ``v = v_reset``.
    VALUE = 0
    #: ``v = v - v_th`` before the leak: ``v' = leak(v - v_th) + ...``.
    SUBTRACT = 1
    #: ``v_th`` subtracted after the leak, in the integrate sum: ``v' = leak(v) + ... - v_th``
    #: (snnTorch's default ``Leaky``: ``mem' = beta mem + x - s theta``). Only on a shape
    #: that builds it (``ArrayShape.reset_modes``).
    SUBTRACT_AFTER_LEAK = 2

#: The reset modes a shape builds unless told otherwise: the parameter word's ``reset_mode``
#: field is then 1 bit, and the gateware that of the arrays before SUBTRACT_AFTER_LEAK.
DEFAULT_RESET_MODES = (ResetMode.VALUE, ResetMode.SUBTRACT)


#: The legal ``ArrayShape.spike_max``: ``2^k - 1`` for a count of ``k`` = 1 to 4 bits.
SPIKE_MAXES = (1, 3, 7, 15)


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # numpy integers are accepted, everything else (floats included) is not: a float
        # silently truncated to an integer is exactly the bug this check exists to stop.
        try:
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise ConfigError(
                f"parameter {name!r} must be an integer in [{lo}, {hi}], not {value!r}"
            ) from None
    if not lo <= value <= hi:
        raise ConfigError(f"parameter {name!r} must be an integer in [{lo}, {hi}], not {value!r}")
    return value


def _check_modes(name: str, modes, enum_cls) -> tuple:
    """A non-empty set of ``enum_cls`` members (names, codes or members), as a sorted tuple."""
    legal = ", ".join(m.name.lower() for m in enum_cls)
    if isinstance(modes, (str, int, enum_cls)):
        modes = (modes,)
    try:
        modes = tuple(sorted({_check_enum(name, m, enum_cls) for m in modes}))
    except TypeError:
        raise ConfigError(f"parameter {name!r} must be a list of {legal}, not {modes!r}") from None
    if not modes:
        raise ConfigError(f"parameter {name!r} must name at least one of {legal}")
    return modes


def _check_enum(name: str, value, enum_cls):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        try:
            return enum_cls[value.upper()]
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum_cls(value)
        except ValueError:
            pass
    legal = ", ".join(m.name.lower() for m in enum_cls)
    raise ConfigError(f"parameter {name!r} must be one of {legal}, not {value!r}")


def signed_range(width: int) -> tuple[int, int]:
    """The range of a two's complement integer of ``width`` bits."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


@dataclass(frozen=True)
class ArrayShape:
    """Compile-time shape of the neuron array.

    Members
    -------
    neurons : int
        Number of neurons N, 1 to 2**20; a multiple of ``lanes`` and of ``groups``.
    lanes : int
        Number of parallel update lanes P, 1 to 64. Neuron ``n`` lives in lane ``n % P`` at
        address ``n // P``.
    groups : int
        Number of parameter sets G, 1 to N, dividing N. Neuron ``n`` uses set ``n // (N // G)``.
        ``groups == neurons`` gives every neuron its own parameters.
    v_width : int
        Membrane width W in bits, 4 to 32 (two's complement). Also the width of ``v_th``,
        ``v_reset``, ``v_rest``, ``v_init``, ``bias`` and a constant leak.
    i_width : int
        Width of the per-step input current in bits, 2 to 32 (two's complement).
    ref_width : int
        Width of the refractory counter in bits, 1 to 16; ``t_ref`` is at most 2**ref_width - 1.
    decay_frac : int
        Fraction bits F of the multiplicative decay factor, 1 to 24.
    leak_modes : tuple of LeakMode
        Leak modes the gateware implements (at least one). Leaving one out saves its logic.
    reset_modes : tuple of ResetMode
        Reset modes the gateware implements: VALUE and SUBTRACT (always built; the default),
        and SUBTRACT_AFTER_LEAK if listed, which builds its logic and widens the parameter
        word's ``reset_mode`` field from 1 to 2 bits. A parameter set may use only these.
    step_width : int
        Width of the timestep label on output events, 8 to 32. The label counts modulo
        2**step_width; it names a step, it takes no part in the arithmetic.
    spike_max : int
        The largest spike count a neuron emits in one step: 1 (default, one spike bit per
        neuron and step), or 3, 7 or 15 (multi-spike output, a count of ``count_width`` =
        2, 3 or 4 bits; ``docs/numerics.md``, "Multi-spike output"). With ``spike_max > 1``
        every ``v_th`` must be at least 1.
    layout : ArrayLayout
        (Derived, not a field.) The parameter word, the beats and the port widths this shape
        gives (:class:`lifgate.layout.ArrayLayout`), computed once per shape: everything that
        packs, decodes or declares a port of the array reads them here.
    """

    neurons: int = 64
    lanes: int = 4
    groups: int = 64
    v_width: int = 16
    i_width: int = 16
    ref_width: int = 8
    decay_frac: int = 16
    leak_modes: tuple = (LeakMode.SHIFT, LeakMode.MULT, LeakMode.CONST)
    reset_modes: tuple = DEFAULT_RESET_MODES
    step_width: int = 16
    spike_max: int = 1

    def __post_init__(self):
        sm = self.spike_max
        if isinstance(sm, bool) or not isinstance(sm, numbers.Integral) or sm not in SPIKE_MAXES:
            raise ConfigError(f"parameter 'spike_max' must be one of "
                              f"{', '.join(map(str, SPIKE_MAXES))}, not {sm!r}")
        object.__setattr__(self, "spike_max", int(sm))
        _check_int("v_width", self.v_width, 4, 32)
        _check_int("i_width", self.i_width, 2, 32)
        _check_int("ref_width", self.ref_width, 1, 16)
        _check_int("decay_frac", self.decay_frac, 1, 24)
        _check_int("step_width", self.step_width, 8, 32)
        _check_int("lanes", self.lanes, 1, 64)
        _check_int("neurons", self.neurons, 1, 1 << 20)
        if self.neurons % self.lanes:
            raise ConfigError(
                f"parameter 'neurons' must be a multiple of lanes ({self.lanes}), "
                f"not {self.neurons!r}"
            )
        _check_int("groups", self.groups, 1, self.neurons)
        if self.neurons % self.groups:
            raise ConfigError(
                f"parameter 'groups' must divide neurons ({self.neurons}), not {self.groups!r}"
            )
        modes = self.leak_modes
        if isinstance(modes, (str, int, LeakMode)):
            modes = (modes,)
        try:
            modes = tuple(sorted({_check_enum("leak_modes", m, LeakMode) for m in modes}))
        except TypeError:
            raise ConfigError(
                f"parameter 'leak_modes' must be a list of shift, mult, const, not {modes!r}"
            ) from None
        if not modes:
            raise ConfigError("parameter 'leak_modes' must name at least one of shift, mult, const")
        object.__setattr__(self, "leak_modes", modes)
        resets = _check_modes("reset_modes", self.reset_modes, ResetMode)
        if not set(DEFAULT_RESET_MODES) <= set(resets):
            raise ConfigError(
                "parameter 'reset_modes' must include value and subtract (always built) and may "
                f"add subtract_after_leak, not {[m.name.lower() for m in resets]!r}"
            )
        if self.spike_max > 1 and ResetMode.SUBTRACT_AFTER_LEAK in resets:
            raise ConfigError(
                "parameter 'reset_modes' must not include subtract_after_leak with spike_max "
                f"{self.spike_max} (multi-spike output is built with value and subtract only)"
            )
        object.__setattr__(self, "reset_modes", resets)

    # Derived quantities -----------------------------------------------------------------------

    @property
    def layout(self) -> ArrayLayout:
        """The words and port widths of this shape (:class:`lifgate.layout.ArrayLayout`).

        Computed once per distinct shape (:func:`lifgate.layout.array_layout` is cached).
        """
        return array_layout(
            neurons=self.neurons, lanes=self.lanes, groups=self.groups, v_width=self.v_width,
            i_width=self.i_width, ref_width=self.ref_width, decay_frac=self.decay_frac,
            step_width=self.step_width, reset_width=self.reset_width,
            count_width=self.count_width,
        )

    @property
    def reset_width(self) -> int:
        """Width of the ``reset_mode`` field: 1 bit, 2 with SUBTRACT_AFTER_LEAK built."""
        return max(1, max(self.reset_modes).bit_length())

    @property
    def count_width(self) -> int:
        """Bits of a neuron's spike count per step: 1 for ``spike_max = 1``, else 2 to 4."""
        return int(self.spike_max).bit_length()

    @property
    def depth(self) -> int:
        """Neurons per lane, ``neurons // lanes``."""
        return self.neurons // self.lanes

    @property
    def group_size(self) -> int:
        """Neurons per parameter group, ``neurons // groups``."""
        return self.neurons // self.groups

    @property
    def v_range(self) -> tuple[int, int]:
        """Legal membrane values, the saturation bounds."""
        return signed_range(self.v_width)

    @property
    def i_range(self) -> tuple[int, int]:
        """Legal input current values."""
        return signed_range(self.i_width)

    @property
    def t_ref_max(self) -> int:
        return (1 << self.ref_width) - 1

    @property
    def leak_width(self) -> int:
        """Width of the raw ``leak`` parameter field: ``max(v_width, decay_frac)``."""
        return self.layout.params["leak"].width

    def leak_range(self, mode: LeakMode) -> tuple[int, int]:
        """Legal values of ``leak`` in ``mode``."""
        if mode == LeakMode.SHIFT:
            return 0, self.v_width
        if mode == LeakMode.MULT:
            return 0, (1 << self.decay_frac) - 1
        return self.v_range


@dataclass(frozen=True)
class NeuronParams:
    """Run-time parameters of one parameter group, in fixed-point units.

    Members
    -------
    v_th : int
        Threshold: a neuron that is not refractory spikes when ``v >= v_th``.
    v_reset : int
        Membrane value after a spike in ``ResetMode.VALUE``, and during its refractory period.
    v_rest : int
        Resting potential E_L: the value the SHIFT and MULT leaks decay towards.
    v_init : int
        Membrane value after a clear (the start of a run).
    bias : int
        Added to the membrane every step the neuron is not refractory.
    leak_mode : LeakMode
    leak : int
        SHIFT: the shift k, 0 to W (tau = 2**k steps). MULT: the decay factor
        ``round((1 - dt/tau) * 2**F)``, 0 to 2**F - 1. CONST: the amount subtracted each step,
        a signed W-bit value (0: no leak).
    reset_mode : ResetMode
    t_ref : int
        Refractory period in steps, 0 to 2**ref_width - 1: after a spike at step s the neuron
        cannot spike and its membrane is held during steps s+1 to s+t_ref.
    """

    v_th: int = 1 << 10
    v_reset: int = 0
    v_rest: int = 0
    v_init: int = 0
    bias: int = 0
    leak_mode: LeakMode = LeakMode.SHIFT
    leak: int = 4
    reset_mode: ResetMode = ResetMode.VALUE
    t_ref: int = 0

    def __post_init__(self):
        object.__setattr__(self, "leak_mode", _check_enum("leak_mode", self.leak_mode, LeakMode))
        object.__setattr__(
            self, "reset_mode", _check_enum("reset_mode", self.reset_mode, ResetMode)
        )
        for name in ("v_th", "v_reset", "v_rest", "v_init", "bias", "leak", "t_ref"):
            _check_int(name, getattr(self, name), -(1 << 40), 1 << 40)

    def check(self, shape: ArrayShape, where: str = "") -> NeuronParams:
        """Check every field against ``shape``; raise :class:`ConfigError` naming the field."""
        lo, hi = shape.v_range
        for name in ("v_th", "v_reset", "v_rest", "v_init", "bias"):
            _check_int(where + name, getattr(self, name), lo, hi)
        if self.leak_mode not in shape.leak_modes:
            legal = ", ".join(m.name.lower() for m in shape.leak_modes)
            raise ConfigError(
                f"parameter {where + 'leak_mode'!r} must be one the array supports "
                f"({legal}), not {self.leak_mode.name.lower()!r}"
            )
        if self.reset_mode not in shape.reset_modes:
            legal = ", ".join(m.name.lower() for m in shape.reset_modes)
            raise ConfigError(
                f"parameter {where + 'reset_mode'!r} must be one the array supports "
                f"({legal}), not {self.reset_mode.name.lower()!r}; add it to the shape's "
                "reset_modes to build it"
            )
        llo, lhi = shape.leak_range(self.leak_mode)
        _check_int(f"{where}leak ({self.leak_mode.name.lower()} mode)", self.leak, llo, lhi)
        _check_int(where + "t_ref", self.t_ref, 0, shape.t_ref_max)
        if shape.spike_max > 1:
            # n = min(v // v_th, spike_max) needs v_th >= 1 (docs/numerics.md, "Multi-spike")
            _check_int(f"{where}v_th (spike_max {shape.spike_max})", self.v_th, 1, hi)
        return self


@dataclass(frozen=True)
class NoiseParams:
    """Run-time settings of the on-chip noise source (``docs/numerics.md``, "Noise").

    Members
    -------
    seed : int
        32-bit seed, 0 to 2**32 - 1. A clear reseeds every lane's generator from it.
    gain : int
        Noise amplitude, 0 to 2**16 - 1; 0 turns the noise off. The noise added to the input
        each step has a standard deviation of about ``147.8 * gain / 256``.
    """

    seed: int = 1
    gain: int = 0

    def __post_init__(self):
        _check_int("noise.seed", self.seed, 0, (1 << 32) - 1)
        _check_int("noise.gain", self.gain, 0, (1 << 16) - 1)


@dataclass(frozen=True)
class Config:
    """A complete configuration: shape, per-group parameters and noise.

    Members
    -------
    shape : ArrayShape
    params : tuple of NeuronParams
        One entry per group (``shape.groups`` entries), or a single entry used by every group.
    noise : NoiseParams
    """

    shape: ArrayShape = field(default_factory=ArrayShape)
    params: tuple = (NeuronParams(),)
    noise: NoiseParams = field(default_factory=NoiseParams)

    def __post_init__(self):
        if not isinstance(self.shape, ArrayShape):
            raise ConfigError(f"parameter 'shape' must be an ArrayShape, not {self.shape!r}")
        if not isinstance(self.noise, NoiseParams):
            raise ConfigError(f"parameter 'noise' must be a NoiseParams, not {self.noise!r}")
        params = self.params
        if isinstance(params, NeuronParams):
            params = (params,)
        params = tuple(params)
        if len(params) == 1 and self.shape.groups > 1:
            params = params * self.shape.groups
        if len(params) != self.shape.groups:
            raise ConfigError(
                f"parameter 'params' must have 1 or groups ({self.shape.groups}) entries, "
                f"not {len(params)}"
            )
        for g, p in enumerate(params):
            if not isinstance(p, NeuronParams):
                raise ConfigError(f"parameter 'params[{g}]' must be a NeuronParams, not {p!r}")
            p.check(self.shape, where=f"params[{g}]." if self.shape.groups > 1 else "")
        object.__setattr__(self, "params", params)

    def group_of(self, neuron: int) -> int:
        return neuron // self.shape.group_size

    def neuron_params(self, neuron: int) -> NeuronParams:
        return self.params[self.group_of(neuron)]

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    # Serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        shape = dataclasses.asdict(self.shape)
        shape["leak_modes"] = [m.name.lower() for m in self.shape.leak_modes]
        shape["reset_modes"] = [m.name.lower() for m in self.shape.reset_modes]
        params = []
        for p in self.params:
            d = dataclasses.asdict(p)
            d["leak_mode"] = p.leak_mode.name.lower()
            d["reset_mode"] = p.reset_mode.name.lower()
            params.append(d)
        if all(p == params[0] for p in params):
            params = params[:1]
        return {"shape": shape, "params": params, "noise": dataclasses.asdict(self.noise)}

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a mapping, not {type(data).__name__}")
        unknown = set(data) - {"shape", "params", "noise"}
        if unknown:
            raise ConfigError(
                f"unknown configuration section(s) {sorted(unknown)}; legal: shape, params, noise"
            )
        shape = _build(ArrayShape, data.get("shape", {}), "shape")
        raw = data.get("params", [{}])
        if isinstance(raw, dict):
            raw = [raw]
        params = tuple(_build(NeuronParams, p, f"params[{i}]") for i, p in enumerate(raw))
        noise = _build(NoiseParams, data.get("noise", {}), "noise")
        return cls(shape=shape, params=params, noise=noise)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"configuration is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> Config:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration is not valid TOML: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path) -> Config:
        """Read a ``.json`` or ``.toml`` file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(
                f"cannot read configuration file {str(path)!r}: {e.strerror}"
            ) from None
        if path.suffix.lower() == ".toml":
            return cls.from_toml(text)
        return cls.from_json(text)

    def save(self, path) -> None:
        path = Path(path)
        toml = path.suffix.lower() == ".toml"
        path.write_text(self.to_toml() if toml else self.to_json(indent=2) + "\n")


def _build(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError(f"section {where!r} must be a mapping, not {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {sorted(unknown)} in {where!r}; "
            f"legal: {', '.join(sorted(names))}"
        )
    return cls(**data)


# Register encoding ------------------------------------------------------------------------------


def param_layout(shape: ArrayShape) -> list[tuple[str, int]]:
    """Fields of one packed parameter word, least significant first, with their widths.

    ``shape.layout.params.pairs()`` (:class:`lifgate.layout.ArrayLayout`): the gateware's
    ``data.Struct`` for a parameter set, the Verilog header and :func:`pack_params` all read
    the same word, so the host side and the gateware agree by construction.
    """
    return shape.layout.params.pairs()


def pack_params(shape: ArrayShape, p: NeuronParams) -> int:
    """Encode ``p`` as the unsigned integer the gateware's parameter register takes."""
    p.check(shape)
    word = shape.layout.params
    return word.pack({name: int(getattr(p, name)) for name in word.names})


def unpack_params(shape: ArrayShape, word: int) -> NeuronParams:
    """Decode a packed parameter word (inverse of :func:`pack_params`)."""
    fields = shape.layout.params.unpack(word)
    mode = LeakMode(fields["leak_mode"])
    if mode == LeakMode.CONST:
        w = shape.v_width
        value = fields["leak"] & ((1 << w) - 1)
        fields["leak"] = value - (1 << w) if value >> (w - 1) else value
    return NeuronParams(**fields)


def acc_width(inputs: int, w_width: int, x_width: int) -> int:
    """Width of an accumulator that holds any ``sum_i W[j, i] * x[i]`` exactly.

    ``|W x| <= 2^(w_width-1) * (2^x_width - 1)`` per term, ``inputs`` terms:
    ``w_width + x_width + ceil(log2(inputs))`` bits, signed. A shape rule shared by the golden
    network model (:mod:`lifgate.golden.synapse`) and its gateware (:mod:`lifgate.hdl.synapse`).
    """
    return w_width + x_width + max(0, (inputs - 1).bit_length())
