"""``lifgate board-check SPEC``: does this board work? One screen that says so, in a minute.

``SPEC`` is a host backend: ``model`` (the golden model behind the protocol), ``sim:verilator``
or ``sim:icarus`` (the board top's gateware in a simulator, its UART driven by cocotb) or
``serial:PORT[@BAUD]`` (a flashed board; ``BAUD`` is the ``--baud`` of its ``lifgate build``,
115200 by default). The checks, in order:

1. ``version``: the board answers ``VERSION`` and reports an array board's shape and features;
2. ``currents``: a few parameter groups (every leak mode the board builds, both reset modes, a
   refractory period) and one input current per neuron (a ramp across the array); a short run
   whose spikes (every step) and membranes (the first two steps) must equal the golden model's
   (:func:`lifgate.golden.fixed.simulate`) bit for bit, and ``STATUS`` before and after;
3. ``noise`` (when the board builds its noise source): a run driven by the on-chip noise alone,
   compared the same way;
4. ``errors``: a deliberately damaged frame must be answered with ``ERR CRC`` (the red LED
   lights), and the state must be unchanged after it.

The verdict names what works, what does not and what to try next (wrong port, wrong baud, no
bitstream, permissions). Exit code 0 when every check passes, 1 when one fails or the board
does not answer, 2 for a bad argument or a serial port that cannot be opened (one line with
what to do). ``--json`` prints ``ok``, ``spec``, ``features``, ``checks`` (name, ok, detail),
``verdict``, ``hints`` and ``seconds``; progress goes to stderr (``--no-progress``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from lifgate.app.cli import add_report_options
from lifgate.boards.framehost import (
    BoardError,
    LinkTimeout,
    SerialTransport,
    open_on,
    parse_spec,
)
from lifgate.boards.frameproto import ErrorCode, Frame
from lifgate.boards.host import Board, open_board
from lifgate.boards.protocol import Cmd, Features, encode_frame
from lifgate.checks import check_int, check_number, output_dir
from lifgate.config import (
    ArrayShape,
    Config,
    ConfigError,
    LeakMode,
    NeuronParams,
    NoiseParams,
    ResetMode,
)
from lifgate.golden.fixed import simulate

#: The simulated board's shape when ``SPEC`` is ``model`` or ``sim:...`` (a real board reports
#: its own): small enough for Icarus to run the check in well under a minute.
DEFAULT_SHAPE = {"neurons": 64, "lanes": 4, "groups": 4}
#: Steps of each run whose membranes are read back too (a membrane readback of every neuron is
#: the longest frame: 0.8 s a step for the iCEBreaker's 4,096 neurons at 115,200 baud, 12 s
#: for the ULX3S's 65,536).
MEMBRANE_STEPS = 2

HINT_PORT = ("wrong port? The iCEBreaker's UART is the second port of its FT2232H (usually "
             "/dev/ttyUSB1; the first is the flash programmer), the ULX3S's is its FT231X "
             "(usually /dev/ttyUSB0); `ls -l /dev/serial/by-id/` tells them apart")
HINT_BAUD = ("wrong baud? serial:PORT@BAUD must be the --baud the bitstream was built with "
             "(default 115200); a wrong rate turns frames into garbage (the red LED lights)")
HINT_BITSTREAM = ("no bitstream? Flash it: `lifgate program --board icebreaker` (kept in the "
                  "SPI flash), `lifgate program --board ulx3s-85f` (SRAM, lost at power-off; "
                  "--flash keeps it)")
HINT_REBUILD = ("the board computes differently from the golden model: rebuild and flash the "
                "bitstream of this lifgate version (`lifgate build`), and never flash one whose "
                "build said 'timing not met'")


def register(subparsers, summary):
    p = subparsers.add_parser(
        "board-check", help=summary,
        description=summary + ": VERSION, a short run with per-neuron currents and a noise run "
        "compared with the golden model bit for bit, the error path; then a verdict with what "
        "to try next. Exit code 0: the board works; 1: a check failed or no reply; 2: a bad "
        "argument or a serial port that cannot be opened.")
    p.add_argument("spec", metavar="SPEC",
                   help="model, sim:verilator, sim:icarus or serial:PORT[@BAUD] (e.g. "
                   "serial:/dev/ttyUSB1@115200; BAUD is the bitstream's --baud)")
    for name, default in DEFAULT_SHAPE.items():
        p.add_argument(f"--{name}", type=int, default=None, metavar=name[0].upper(),
                       help=f"{name} of the simulated board (model and sim: only; default "
                       f"{default}); a real board reports its own")
    p.add_argument("--steps", type=int, default=24, metavar="T",
                   help=f"steps of each run, 4 to 10000 (default 24); the "
                   f"membranes of the first {MEMBRANE_STEPS} are compared too")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for a reply, up to 3600 (default 5; at least twice "
                   "the time of the longest STEP frame at the port's baud)")
    p.add_argument("--build-dir", default="build/board-check", metavar="DIR",
                   help="folder of the simulator build (sim: only; default build/board-check)")
    add_report_options(p)
    p.set_defaults(func=run)


# The experiment ---------------------------------------------------------------------------------


def check_params(shape: ArrayShape) -> tuple:
    """Up to four parameter groups for ``shape``: every leak mode it builds, both reset modes,
    a refractory period, a bias, scaled to its membrane width."""
    u = 1 << max(0, shape.v_width - 6)  # 1024 for 16-bit membranes
    leak = {LeakMode.SHIFT: min(4, shape.v_width),
            LeakMode.MULT: (1 << shape.decay_frac) * 15 // 16,
            LeakMode.CONST: max(1, u // 64)}
    modes = list(shape.leak_modes)
    sets = []
    for g in range(min(4, shape.groups)):
        mode = modes[g % len(modes)]
        sets.append(NeuronParams(
            v_th=2 * u - g * u // 4, v_reset=-(u // 4) * (g % 2), v_rest=-(u // 16) * (g % 3),
            v_init=(u // 8) * g, bias=(u // 64) * (g % 2), leak_mode=mode, leak=leak[mode],
            reset_mode=ResetMode.SUBTRACT if g % 2 else ResetMode.VALUE,
            t_ref=min(shape.t_ref_max, 2 * (g % 3))))
    return tuple(sets[g % len(sets)] for g in range(shape.groups))


def check_currents(shape: ArrayShape) -> np.ndarray:
    """One current per neuron: a ramp from below zero to past every group's rheobase."""
    u = 1 << max(0, shape.v_width - 6)
    lo, hi = shape.i_range
    ramp = np.linspace(-u // 4, u // 2, shape.neurons).round().astype(np.int64)
    return np.clip(ramp, lo, hi)


def noise_config(shape: ArrayShape, params: tuple) -> Config:
    """No input; the on-chip noise drives (a standard deviation of about half the lowest
    threshold each step, ``docs/numerics.md``: ``147.8 * gain / 256``)."""
    u = 1 << max(0, shape.v_width - 6)
    gain = min(65535, max(1, round(u * 256 / 147.8)))
    return Config(shape=shape, params=params, noise=NoiseParams(seed=0x1234_5678, gain=gain))


@dataclass
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str
    hints: list = field(default_factory=list)


def _first_difference(spikes, v, ref, steps_v) -> str | None:
    """Where the board's run first differs from the golden model's, or None."""
    for t in range(ref.spikes.shape[0]):
        bad = np.flatnonzero(spikes[t] != ref.spikes[t])
        if t < steps_v and v is not None:
            bad = np.union1d(bad, np.flatnonzero(v[t] != ref.v[t]))
        if bad.size:
            n = int(bad[0])
            got = f"spike {int(spikes[t, n])}" + (f", v {int(v[t, n])}" if t < steps_v
                                                   and v is not None else "")
            want = f"spike {int(ref.spikes[t, n])}" + (f", v {int(ref.v[t, n])}" if t < steps_v
                                                       and v is not None else "")
            return (f"step {t}, neuron {n}: board {got}, golden model {want} "
                    f"({bad.size} neurons differ at that step)")
    return None


def compare_run(board: Board, config: Config, steps: int, currents=None) -> tuple[bool, str]:
    """Configure, run ``steps`` steps (membranes for the first :data:`MEMBRANE_STEPS`) and
    compare with :func:`simulate`; ``(ok, detail)``."""
    f = board.features
    board.configure(config, currents=currents)
    before = board.status()
    mem = MEMBRANE_STEPS if f.membrane else 0
    first = board.run(mem, membrane=True) if mem else None
    rest = board.run(steps - mem)
    after = board.status()
    spikes = rest.spikes if first is None else np.concatenate([first.spikes, rest.spikes])
    labels = rest.labels if first is None else np.concatenate([first.labels, rest.labels])
    ref = simulate(config, steps, currents)
    problems = []
    want_status = (currents is not None, 0, config.noise.seed, config.noise.gain)
    if (before.input_en, before.step, before.seed, before.gain) != want_status:
        problems.append(f"STATUS after configure is {before}, expected input "
                        f"{'on' if currents is not None else 'off'}, step 0, seed "
                        f"{config.noise.seed}, gain {config.noise.gain}")
    period = 1 << f.shape.step_width  # the step counter and the labels count modulo this
    if after.step != steps % period:
        problems.append(f"STATUS after the run says step {after.step}, expected "
                        f"{steps % period}")
    if not np.array_equal(labels, np.arange(steps) % period):
        problems.append("the STEP frames' labels do not count 0, 1, 2, ...")
    diff = _first_difference(spikes, None if first is None else first.v, ref, mem)
    if diff:
        problems.append(f"differs from the golden model at {diff}")
    if problems:
        return False, "; ".join(problems)
    n_spk = int(ref.spikes.sum())
    quiet = " (no spikes expected: run more --steps)" if n_spk == 0 else ""
    return True, (f"{steps} steps x {f.shape.neurons} neurons: {n_spk} spikes"
                  + (f" and {mem * f.shape.neurons} membranes" if mem else "")
                  + f" equal to the golden model{quiet}")


def check_errors(board: Board) -> tuple[bool, str]:
    """A damaged frame: ``ERR CRC`` back, state unchanged."""
    before = board.status()
    frame = bytearray(encode_frame(Cmd.SET_NOISE, (before.seed ^ 1).to_bytes(4, "little")
                                   + (before.gain ^ 1).to_bytes(2, "little")))
    frame[-1] ^= 0x40
    board.send(bytes(frame))
    reply = board.receive()
    if not (isinstance(reply, Frame) and reply.cmd == 0xFF and reply.payload[:1]
            == bytes([ErrorCode.CRC])):
        board.resync()
        return False, f"a frame with a bad CRC got {reply!r}, expected ERR CRC"
    after = board.status()
    if after != before:
        return False, f"a rejected frame changed the state: {before} -> {after}"
    return True, "a frame with a bad CRC was answered with ERR CRC and changed nothing"


def run_checks(board: Board, steps: int, say) -> list[Check]:
    """The checks after ``version`` (see the module's docstring)."""
    f = board.features
    shape = f.shape
    params = check_params(shape)
    checks = []
    runs = [("currents", Config(shape=shape, params=params, noise=NoiseParams(seed=7, gain=0)),
             check_currents(shape),
             f"{min(4, shape.groups)} parameter group{'s' if shape.groups > 1 else ''}, "
             f"one current per neuron")]
    if f.noise:
        runs.append(("noise", noise_config(shape, params), None, "on-chip noise alone"))
    for name, config, currents, what in runs:
        say(f"{name}: {what}, {steps} steps")
        try:
            ok, detail = compare_run(board, config, steps, currents)
        except (LinkTimeout, BoardError) as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        checks.append(Check(name, ok, f"{what}: {detail}", [] if ok else [HINT_REBUILD]))
    say("errors: a damaged frame")
    try:
        ok, detail = check_errors(board)
    except (LinkTimeout, BoardError) as e:
        ok, detail = False, f"{type(e).__name__}: {e}"
    checks.append(Check("errors", ok, detail))
    return checks


# The command ------------------------------------------------------------------------------------


def _describe(f: Features) -> str:
    s = f.shape
    modes = ",".join(m.name.lower() for m in s.leak_modes)
    extras = [x for x, on in (("membrane", f.membrane), ("noise", f.noise)) if on]
    baud = getattr(f, "baud", None)  # reported by VERSION where the protocol carries it
    return (f"{s.neurons} neurons x {s.lanes} lanes, {s.groups} groups, {s.v_width}-bit "
            f"membrane, leak {modes}" + (f", {', '.join(extras)}" if extras else "")
            + f", frames up to {f.max_payload} bytes" + (f", {baud} baud" if baud else ""))


def _open(args, kind, port, say) -> Board:
    """The board of ``args.spec``; ConfigError (exit 2) for a port that cannot be opened."""
    if kind == "serial":
        try:
            transport = SerialTransport(*port)
        except ConfigError as e:
            text = str(e)
            if "cannot open serial port" not in text:
                raise
            if "ermission denied" in text:
                hint = ("add yourself to the group that owns the port (Debian: sudo usermod "
                        "-aG dialout $USER, then log in again; see docs/boards.md)")
            else:
                hint = ("is the board plugged in? List the ports with `ls -l "
                        "/dev/serial/by-id/` (or python -m serial.tools.list_ports)")
            raise ConfigError(f"{text}; {hint}") from None
        say(f"asking {port[0]} at {port[1]} baud for VERSION")
        board = open_on(Board, transport, args.timeout)  # (closes the port if that fails)
        # A STEP frame with every membrane must have time to arrive (10 bits a byte).
        board.timeout = max(board.timeout, 2 * board.features.step_length(True) * 10 / port[1])
        return board
    shape = ArrayShape(**{k: getattr(args, k) if getattr(args, k) is not None else v
                          for k, v in DEFAULT_SHAPE.items()})
    if shape.lanes & (shape.lanes - 1):
        raise ConfigError(f"parameter 'lanes' must be a power of two for a board top, "
                          f"not {shape.lanes}")
    features = Features(shape)
    if kind == "model":
        return open_board("model", features=features, timeout=args.timeout)
    say(f"building and starting the {args.spec[4:]} simulation in {args.build_dir} (about a "
        f"minute the first time)")
    return open_board(args.spec, features=features, timeout=max(args.timeout, 60.0),
                      build_dir=args.build_dir)


def _verdict(checks: list[Check], kind: str) -> tuple[str, list]:
    failed = [c.name for c in checks if not c.ok]
    if not failed:
        return ("the board works: it answers, and its spikes and membranes are bit-exact "
                "against the golden model"), []
    hints = []
    for c in checks:
        if not c.ok:
            hints += [h for h in c.hints if h not in hints]
    if "version" in failed and kind == "serial":
        garbled = "damaged reply" in checks[0].detail or "unexpected reply" in checks[0].detail
        first = [HINT_BAUD, HINT_PORT] if garbled else [HINT_PORT, HINT_BAUD]
        hints = first + [HINT_BITSTREAM] + hints
    return f"FAILED: {', '.join(failed)}", hints


def format_report(spec: str, checks: list[Check], verdict: str, hints: list) -> str:
    lines = [f"board-check {spec}"]
    for c in checks:
        lines.append(f"  {'ok  ' if c.ok else 'FAIL'}  {c.name:<9} {c.detail}")
    lines.append(f"verdict: {verdict}")
    lines += [f"  try: {h}" for h in hints]
    lines.append("LEDs (docs/boards.md): iCEBreaker red = the last frame was rejected, green = "
                 "the array is running; ULX3S LED 0-3 = rejected, running, line activity, "
                 "input on")
    return "\n".join(lines)


def run(args) -> int:
    kind, port = parse_spec(args.spec)  # ConfigError for a malformed SPEC
    if kind == "serial":
        given = [f"--{k}" for k in DEFAULT_SHAPE if getattr(args, k) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only for model and sim: boards; a board on "
                              f"a serial port reports its own shape")
    steps = check_int("--steps", args.steps, 4, 10000)
    check_number("--timeout", args.timeout, 0, 3600, unit="s", lo_open=True)
    if kind == "sim":
        output_dir("--build-dir", args.build_dir)
    show = not args.no_progress

    def say(text):
        if show:
            print(f"board-check: {text}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    features, checks = None, []
    try:
        board = _open(args, kind, port, say)
    except (LinkTimeout, BoardError) as e:
        what = "no answer to VERSION" if "no reply" in str(e) else "no valid answer to VERSION"
        checks.append(Check("version", False, f"{what}: {e}"))
        board = None
    except ConfigError as e:
        if "network board" not in str(e):
            raise
        checks.append(Check("version", False, f"{e} (board-check checks the array board)"))
        board = None
    if board is not None:
        with board:
            features = board.features
            checks.append(Check("version", True, "VERSION answered: " + _describe(features)))
            checks += run_checks(board, steps, say)
    verdict, hints = _verdict(checks, kind)
    ok = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({
            "ok": ok, "spec": args.spec,
            "features": None if features is None else {
                "neurons": features.shape.neurons, "lanes": features.shape.lanes,
                "groups": features.shape.groups, "membrane": features.membrane,
                "noise": features.noise, "max_payload": features.max_payload},
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            "verdict": verdict, "hints": hints, "seconds": round(time.monotonic() - t0, 1),
        }, indent=2))
    else:
        print(format_report(args.spec, checks, verdict, hints))
    return 0 if ok else 1
