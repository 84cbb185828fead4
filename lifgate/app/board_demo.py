"""The seed experiments on a board, through the host link (``lifgate demo --board SPEC``).

The demo's array runs (:mod:`lifgate.app.experiments`) give every neuron model its own
parameter group and carry the constant input as the group's bias. A board built by
``lifgate build`` has one parameter group by default, and the issue's rate curve takes its
currents from the board's input-current memory. So each demo run is re-planned for the board:

* the demo run's neurons are sorted by their parameter set *without* the bias (the neuron
  model); each model becomes one board run with that parameter set in every group;
* demo neuron ``n`` of that model becomes board neuron ``j`` (its rank within the model), and
  its bias moves into the board's input current: ``bias + stream`` (the golden step adds
  ``leaked + bias + i + z``, ``golden/fixed.py``, so the sum is the same number);
* a constant input is written once (``WRITE_CURRENTS``, input on); an input that changes every
  step (the float white noise) is written before each one-step ``RUN``.

Every board run is checked against :func:`lifgate.golden.fixed.simulate` of *its own*
configuration and currents, spike for spike and membrane for membrane: that is the verdict.
The board's numbers are then laid out as the demo run's ``[steps, N]`` arrays (board neuron
``j`` of the model's run -> demo neuron ``n``) so the seed checks and the plots read them as
they read the RTL's. With the on-chip noise the noise sample depends on a neuron's lane and
address; where a board has another lane count than the demo's shape, its noise realisation is
its own (still bit-exact against its own golden run).

Run modes: each board run reads only what its experiment uses (:class:`Needs`,
:func:`demo_needs`), in the cheapest run mode the board was built with (:func:`choose_modes`):

* the rate curve (``lif_const``, ``lif_chip_noise``): the spike counts with the steps of the
  first and last spike (``COUNTS``: 6 bytes a neuron, once per run), rates from the
  inter-spike intervals as the notebook computes them
  (:func:`~lifgate.app.experiments.rate_hz_counts`);
* spike steps (Euler LIF at 47 and 94, the IAF and its sweep, the spikes of a plotted trace,
  the white-noise rates): address events (``EVENTS``: a byte or so per spike, one per step);
* the plotted membrane traces: the probe neurons' membranes (``PROBES``: 2 bytes a probe and a
  step).

Each mode is one pass over the run (``CLEAR`` reruns it: same state, same noise); with an
input that changes every step, the ``PROBES`` pass rewrites only the probe neurons' currents
(the neurons are independent: no other current reaches a probe's membrane). Every number read
is compared with the board run's golden run: counts, first and last steps with the counts of
its bitmap, events with its bitmap, probes with its membranes. A board without ``EVENTS``, or
without enough probe slots for the traces, runs as before: ``STEP`` frames with the whole
bitmap and every membrane (mode ``step``); one without ``COUNTS`` takes the rates from the
events. The link bytes are counted both ways at the transport.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np

from lifgate.app.experiments import (
    NOISE_TRACE_CURRENT,
    TRACE_CURRENT,
    ArrayRun,
    LIFExperiments,
    RTLOutcome,
    SpikeCounts,
    UnitlessExperiment,
)
from lifgate.app.progress import progress_bar, ticker
from lifgate.boards.framehost import Transport, parse_spec
from lifgate.boards.host import Board, open_board
from lifgate.boards.protocol import Features
from lifgate.config import ArrayShape, Config, ConfigError

#: The board the ``model`` and ``sim:*`` backends build for the demo: the demo's 64 neurons on
#: 4 lanes (the default ``ArrayShape``'s lanes, so the on-chip noise matches the RTL demo's),
#: one parameter group as ``lifgate build`` makes by default.
SIM_BOARD_SHAPE = ArrayShape(groups=1)
#: Probe slots of the simulated board (a demo run plots at most two membranes).
SIM_BOARD_PROBES = 2
#: UART clocks per bit of the simulated boards, RTL and gate-level: the fastest the UART
#: takes (the link's simulated time is what a demo on Icarus spends most of). Link times are
#: reported at the baud in the board's ``VERSION``, not at this simulation rate.
SIM_DIVISOR = 4
#: Bit times of one byte on the UART (start, 8 data, stop).
BYTE_BITS = 10


@dataclass(frozen=True)
class Needs:
    """What the demo reads of one demo run.

    Members
    -------
    rates : bool
        Every neuron's spike count with its first and last spike step (a rate curve).
    spikes : bool
        Every spike step (a bitmap).
    membranes : tuple of int
        The demo neurons whose membrane traces are plotted.
    """

    rates: bool = False
    spikes: bool = False
    membranes: tuple = ()


#: What a demo run needs when nobody says: everything (``STEP`` frames).
EVERYTHING = None


def demo_needs(ux: UnitlessExperiment, lif: LIFExperiments) -> dict[str, Needs]:
    """The :class:`Needs` of the demo's four runs, by run name: what the seed checks, the
    summary and the plots read of them."""
    const = lif.neuron_of(TRACE_CURRENT)
    noisy = lif.neuron_of(NOISE_TRACE_CURRENT)
    return {
        ux.run.name: Needs(spikes=True, membranes=(ux.neuron(ux.EULER_GROUP),
                                                   ux.neuron(ux.IAF_GROUP))),
        lif.const.name: Needs(rates=True, spikes=True, membranes=(const,)),
        lif.chip_noise.name: Needs(rates=True, spikes=True, membranes=(noisy,)),
        lif.float_noise.name: Needs(rates=True, spikes=True, membranes=(noisy,)),
    }


@dataclass
class BoardRun(ArrayRun):
    """One run on the board for one neuron model of a demo run (an :class:`ArrayRun` of the
    board's shape, so its golden run is computed on construction).

    Members
    -------
    config : Config
        The board's configuration: the model's parameter set in every group, the demo run's
        noise.
    currents : int array [Nb] (constant) or [steps, Nb] (changing every step)
        Board neuron ``j``'s input: its demo neuron's bias plus the demo run's stream.
    demo_neurons : int array [J]
        Board neuron ``j < J`` computes demo neuron ``demo_neurons[j]``.
    modes : tuple of str
        The run modes it reads, in order: ``counts``, ``events``, ``probes``, or ``step``
        (the whole bitmap and every membrane in ``STEP`` frames).
    probe_neurons : int array [k]
        The board neurons whose membranes the ``probes`` mode reads.
    note : str
        Why the run falls back to fewer modes than it needs ("" when it does not).
    spikes : bool array [steps, Nb] or None
        The board's spikes (``step`` or ``events``).
    v : int array [steps, Nb] or None
        The board's membranes (``step``).
    probe_v : int array [steps, k] or None
        The probe neurons' membranes (``probes``).
    counts : SpikeCounts or None
        The counts of board neurons ``0 .. J - 1`` (``counts``); ``window`` the steps they
        cover.
    seconds : float
        Wall-clock time of the run on the board.
    sent, received : int
        Bytes on the line to and from the board (frames included).
    """

    demo_neurons: np.ndarray | None = None
    modes: tuple = ("step",)
    probe_neurons: np.ndarray | None = None
    note: str = ""
    spikes: np.ndarray | None = None
    v: np.ndarray | None = None
    probe_v: np.ndarray | None = None
    counts: SpikeCounts | None = None
    window: int | None = None
    seconds: float = 0.0
    sent: int = 0
    received: int = 0

    def mismatch(self) -> dict | None:
        """The first difference from the golden run, None when bit-exact."""
        for mode in self.modes:
            first = getattr(self, f"_mismatch_{mode}")()
            if first is not None:
                return {"run": self.name, "mode": mode, **first}
        return None

    def _mismatch_step(self) -> dict | None:
        if self.spikes is None or self.v is None:
            return {"field": "error", "error": "the board returned no outputs"}
        ok, first = self.check_rtl(self.spikes, self.v)
        return None if ok else first

    def _mismatch_events(self) -> dict | None:
        g = self.golden.spikes
        if self.spikes is None or self.spikes.shape != g.shape:
            return {"field": "error", "error": "the board returned no events"}
        return _first_diff(self.spikes, g, "spike", np.arange(g.shape[1]))

    def _mismatch_probes(self) -> dict | None:
        g = self.golden.v[:, self.probe_neurons]
        if self.probe_v is None or self.probe_v.shape != g.shape:
            return {"field": "error", "error": "the board returned no probe membranes"}
        return _first_diff(self.probe_v, g, "v", self.probe_neurons)

    def _mismatch_counts(self) -> dict | None:
        if self.counts is None:
            return {"field": "error", "error": "the board returned no counts"}
        if self.window != self.steps:
            return {"field": "window", "expected": self.steps, "got": self.window}
        want = SpikeCounts.of(self.golden.spikes[:, :self.demo_neurons.size])
        for name in ("counts", "first", "last"):
            got = np.asarray(getattr(self.counts, name))
            if got.shape != want.counts.shape:
                return {"field": name, "error": f"{got.size} values for "
                        f"{want.counts.size} neurons"}
            bad = np.flatnonzero(got != getattr(want, name))
            if bad.size:
                n = int(bad[0])
                return {"field": name, "neuron": n, "expected": int(getattr(want, name)[n]),
                        "got": int(got[n]), "mismatches": int(bad.size)}
        return None


def _first_diff(got: np.ndarray, want: np.ndarray, field: str, neurons) -> dict | None:
    """The first (step, column) where ``got`` differs from ``want``; ``neurons`` names the
    columns."""
    diff = np.asarray(got) != np.asarray(want)
    if not diff.any():
        return None
    t, k = (int(x) for x in np.argwhere(diff)[0])
    return {"field": field, "step": t, "neuron": int(neurons[k]),
            "expected": int(want[t, k]), "got": int(got[t, k]), "mismatches": int(diff.sum())}


def plan(run: ArrayRun, board: ArrayShape) -> list[BoardRun]:
    """The board runs that compute demo run ``run`` on a board of shape ``board``.

    Raises :class:`ConfigError` when the board cannot: too few neurons for a model, a
    parameter set the board's widths or leak modes do not take, or an input (bias plus
    stream) outside the board's signed ``i_width`` range.
    """
    cfg = run.config
    gs = cfg.shape.group_size
    models: dict = {}
    for n in range(cfg.shape.neurons):
        key = dataclasses.replace(cfg.params[n // gs], bias=0)
        models.setdefault(key, []).append(n)
    lo, hi = -(1 << (board.i_width - 1)), (1 << (board.i_width - 1)) - 1
    out = []
    for k, (params, neurons) in enumerate(models.items()):
        if len(neurons) > board.neurons:
            raise ConfigError(
                f"--board: the demo run {run.name!r} needs {len(neurons)} neurons of one model, "
                f"the board has {board.neurons}: build a board with more neurons")
        demo = np.asarray(neurons, dtype=np.int64)
        bias = np.array([cfg.params[n // gs].bias for n in neurons], dtype=np.int64)
        if run.currents is None:
            cur = np.zeros(board.neurons, dtype=np.int64)
            cur[: demo.size] = bias
        else:
            cur = np.zeros((run.steps, board.neurons), dtype=np.int64)
            cur[:, : demo.size] = bias + np.asarray(run.currents, dtype=np.int64)[:, demo]
        if cur.size and (cur.min() < lo or cur.max() > hi):
            raise ConfigError(
                f"--board: the demo run {run.name!r} needs input currents in "
                f"[{int(cur.min())}, {int(cur.max())}], the board's i_width {board.i_width} "
                f"takes [{lo}, {hi}]")
        try:
            config = Config(shape=board, params=(params,) * board.groups, noise=cfg.noise)
        except ConfigError as e:
            raise ConfigError(f"--board: the demo run {run.name!r} does not fit the board: "
                              f"{e}") from None
        out.append(BoardRun(f"{run.name}.{k}", config, run.steps, cur, demo_neurons=demo))
    return out


def choose_modes(br: BoardRun, needs: Needs | None, features: Features) -> None:
    """Set ``br``'s run modes (and probe neurons) for what its demo run ``needs`` on a board
    with ``features``: the cheapest modes that serve it, or ``step`` (the whole bitmap and
    every membrane) when the board lacks ``EVENTS`` or enough probe slots, or nobody said what
    is needed (``needs`` None). ``br.note`` says why a run falls back."""
    if needs is None:
        br.modes, br.probe_neurons, br.note = ("step",), None, ""
        return
    wanted = set(np.asarray(needs.membranes, dtype=np.int64).tolist())
    probes = np.array([j for j, n in enumerate(br.demo_neurons) if int(n) in wanted],
                      dtype=np.int64)
    missing = []
    if (needs.spikes or needs.rates) and not features.events:
        missing.append("EVENTS")
    if probes.size and features.probes < probes.size:
        missing.append(f"{probes.size} probe slots (it has {features.probes})")
    if missing:
        br.modes, br.probe_neurons = ("step",), None
        br.note = f"the board lacks {' and '.join(missing)}: STEP frames"
        return
    modes = []
    per_step = br.currents.ndim == 2
    br.note = ""
    if needs.rates and not per_step:
        if features.counts:
            modes.append("counts")
        else:
            br.note = "the board lacks COUNTS: rates from the events"
    if needs.spikes or (needs.rates and "counts" not in modes):
        modes.append("events")
    if probes.size:
        modes.append("probes")
    br.modes, br.probe_neurons = tuple(modes), probes


def execute(board: Board, br: BoardRun, *, bar=None) -> None:
    """Run ``br`` on ``board`` in its run modes (configure and clear, then one pass per mode)
    and keep what it read; ``bar`` advances by the run's updates once per pass."""
    t0 = time.perf_counter()
    if br.modes == ("step",):
        _execute_step(board, br, bar)
    else:
        for k, mode in enumerate(br.modes):
            if k == 0:
                board.configure(br.config, currents=br.currents if br.currents.ndim == 1
                                else br.currents[0])
            else:
                board.clear()
            _PASSES[mode](board, br)
            if bar is not None:
                bar.update(br.updates // len(br.modes))
    br.seconds = time.perf_counter() - t0


def _each_step(board: Board, br: BoardRun, run, *, only=None) -> list:
    """``run()`` for every step of a run whose input changes every step, after writing that
    step's currents: those of the neurons ``only`` (each step), or else the range from the
    first to the last neuron whose current differs from the step before (the board holds the
    others)."""
    out = []
    for t in range(br.steps):
        if only is not None:
            for j in only:
                board.write_currents(br.currents[t, j:j + 1], start=int(j))
        elif t:
            changed = np.flatnonzero(br.currents[t] != br.currents[t - 1])
            if changed.size:
                lo, hi = int(changed[0]), int(changed[-1])
                board.write_currents(br.currents[t, lo:hi + 1], start=lo)
        out.append(run())
    return out


def _pass_counts(board: Board, br: BoardRun) -> None:
    board.clear_counts()
    board.run(br.steps, spikes=False, counts=True)
    c = board.read_counts(0, br.demo_neurons.size)  # the neurons the demo run uses
    br.counts = SpikeCounts(c.counts, c.first, c.last)
    br.window = c.window


def _pass_events(board: Board, br: BoardRun) -> None:
    if br.currents.ndim == 1:
        br.spikes = board.run(br.steps, events=True).spikes
        return
    res = _each_step(board, br, lambda: board.run(1, events=True).spikes[0])
    br.spikes = np.array(res, dtype=bool).reshape(br.steps, br.config.shape.neurons)


def _pass_probes(board: Board, br: BoardRun) -> None:
    board.set_probes(br.probe_neurons)
    if br.currents.ndim == 1:
        br.probe_v = board.run(br.steps, probes=True).probes
        return
    res = _each_step(board, br, lambda: board.run(1, probes=True).probes[0],
                     only=br.probe_neurons)
    br.probe_v = np.array(res, dtype=np.int64).reshape(br.steps, br.probe_neurons.size)


_PASSES = {"counts": _pass_counts, "events": _pass_events, "probes": _pass_probes}


def _execute_step(board: Board, br: BoardRun, bar) -> None:
    """Today's way: ``STEP`` frames with the whole bitmap and every membrane."""
    if br.currents.ndim == 1:
        board.configure(br.config, currents=br.currents)
        res = board.run(br.steps, spikes=True, membrane=True)
        br.spikes, br.v = res.spikes, res.v
        if bar is not None:
            bar.update(br.updates)
    else:
        board.configure(br.config, currents=br.currents[0])
        sp = np.zeros((br.steps, br.config.shape.neurons), dtype=bool)
        vv = np.zeros((br.steps, br.config.shape.neurons), dtype=np.int64)
        for t in range(br.steps):
            if t:
                board.write_currents(br.currents[t])
            res = board.run(1, spikes=True, membrane=True)
            sp[t], vv[t] = res.spikes[0], res.v[0]
            if bar is not None:
                bar.update(br.config.shape.neurons)
        br.spikes, br.v = sp, vv


def view(run: ArrayRun, brs: list[BoardRun], label: str) -> RTLOutcome:
    """The board's results of ``brs`` laid out as demo run ``run``'s ``[steps, N]`` arrays;
    bit-exact when every board run equals its own golden run. Spikes only where every board
    run read them, counts likewise; membranes of the neurons that were read (``v_neurons``;
    the other columns are 0 and not measured)."""
    n = run.config.shape.neurons
    spikes = np.zeros((run.steps, n), dtype=bool)
    v = np.zeros((run.steps, n), dtype=np.int64)
    counts = SpikeCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)))
    measured = []
    mismatch = None
    for br in brs:
        j = np.arange(br.demo_neurons.size)
        if br.spikes is not None:
            spikes[:, br.demo_neurons] = br.spikes[:, j]
        if br.v is not None:
            v[:, br.demo_neurons] = br.v[:, j]
            measured.append(br.demo_neurons)
        if br.probe_v is not None:
            v[:, br.demo_neurons[br.probe_neurons]] = br.probe_v
            measured.append(br.demo_neurons[br.probe_neurons])
        if br.counts is not None:
            for name in ("counts", "first", "last"):
                getattr(counts, name)[br.demo_neurons] = getattr(br.counts, name)[j]
        mismatch = mismatch or br.mismatch()
    every = all(br.v is not None for br in brs)
    return RTLOutcome(label, spikes if all(br.spikes is not None for br in brs) else None,
                      v if measured else None, mismatch is None, mismatch,
                      sum(br.updates for br in brs), 0, sum(br.seconds for br in brs),
                      v_neurons=None if every else np.unique(np.concatenate(measured or [[]]))
                      .astype(np.int64),
                      counts=counts if all(br.counts is not None for br in brs) else None)


def link_bytes(features: Features, br: BoardRun) -> int:
    """Bytes on the line, both directions, frames included, of :func:`execute` of ``br``:
    the configuration (``Board.configure``: every group's parameters, noise, currents, input,
    clear), then one ``RUN`` with a ``STEP`` frame (spikes and membranes) per step, or for an
    input that changes every step, a ``WRITE_CURRENTS`` and a one-step ``RUN`` per step."""
    frame = 7  # SYNC, CMD, LEN (3), CRC (2)
    f = features
    n = br.config.shape.neurons
    writes = -(-n // ((f.max_payload - 4) // f.current_bytes))
    currents = writes * (2 * frame + 4) + n * f.current_bytes  # frames, replies, values
    config = (br.config.shape.groups * (2 * frame + 4 + f.param_bytes)  # SET_PARAMS
              + (2 * frame + 6) + (2 * frame + 1) + 2 * frame + currents)  # NOISE, INPUT, CLEAR

    def run(steps):  # RUN, its STEP frames, RUN_DONE
        return (frame + 5) + steps * (frame + f.step_length(True)) + (frame + 4)

    if br.currents.ndim == 1:
        return config + run(br.steps)
    return config + br.steps * run(1) + (br.steps - 1) * currents


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def board_features(spec: str) -> Features | None:
    """The features the ``model`` and ``sim:*`` backends build for the demo: the run modes it
    reads (COUNTS, EVENTS, :data:`SIM_BOARD_PROBES` probe slots). None for a real board,
    which reports its own."""
    kind, _ = parse_spec(spec)
    return None if kind == "serial" else Features(SIM_BOARD_SHAPE, counts=True, events=True,
                                                  probes=SIM_BOARD_PROBES)


class CountingTransport(Transport):
    """A transport that counts the bytes it carries each way (``sent``, ``received``)."""

    def __init__(self, inner: Transport):
        self.inner, self.sent, self.received = inner, 0, 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        self.received += len(data)
        return data

    def close(self) -> None:
        self.inner.close()


def link_seconds(nbytes: int, baud: int) -> float:
    """Time ``nbytes`` take on a UART at ``baud`` (10 bit times a byte), both ways summed."""
    return nbytes * BYTE_BITS / baud


def _run_json(r: ArrayRun, br: BoardRun, features: Features) -> dict:
    mismatch = br.mismatch()
    return {"name": br.name, "demo_run": r.name, "steps": br.steps,
            "neurons": br.config.shape.neurons, "models_neurons": int(br.demo_neurons.size),
            "input": "per step" if br.currents.ndim == 2 else "constant",
            "modes": list(br.modes), **({"fallback": br.note} if br.note else {}),
            "probe_neurons": ([] if br.probe_neurons is None
                              else br.demo_neurons[br.probe_neurons].tolist()),
            "bit_exact": mismatch is None, "mismatch": mismatch,
            "link_bytes": {"to_board": br.sent, "from_board": br.received,
                           "total": br.sent + br.received},
            "link_seconds": round(link_seconds(br.sent + br.received, features.baud), 6),
            "step_frames_bytes": link_bytes(features, br),
            "seconds": round(br.seconds, 3)}


def _experiments_json(runs: list[dict]) -> list[dict]:
    """The board runs' figures summed per demo run (experiment)."""
    out = {}
    for r in runs:
        e = out.setdefault(r["demo_run"], {
            "name": r["demo_run"], "modes": [], "bit_exact": True,
            "link_bytes": {"to_board": 0, "from_board": 0, "total": 0}, "link_seconds": 0.0,
            "step_frames_bytes": 0, "board_runs": 0})
        e["modes"] += [m for m in r["modes"] if m not in e["modes"]]
        e["bit_exact"] &= r["bit_exact"]
        for k in e["link_bytes"]:
            e["link_bytes"][k] += r["link_bytes"][k]
        e["link_seconds"] = round(e["link_seconds"] + r["link_seconds"], 6)
        e["step_frames_bytes"] += r["step_frames_bytes"]
        e["board_runs"] += 1
        if "fallback" in r:
            e["fallback"] = r["fallback"]
    return list(out.values())


def run_on_board(runs, spec: str, *, build_dir, progress: bool = False, needs=None,
                 features: Features | None = None) -> dict:
    """Run every demo :class:`ArrayRun` on the board ``spec`` and set its ``rtl`` outcome
    (labelled ``board SPEC``). ``needs`` (run name -> :class:`Needs`, e.g. :func:`demo_needs`)
    says what each run is read for, so it uses the cheapest run modes the board has; a run
    without needs reads everything (``STEP`` frames). ``features`` overrides the simulated
    board's (:func:`board_features`). Returns ``{"board", "shape", "baud", "runs",
    "experiments", "link_bytes", "link_seconds", "seconds", ...}``."""
    runs = list(runs)
    needs = needs or {}
    features = features or board_features(spec)
    kind, _ = parse_spec(spec)
    kwargs = ({"build_dir": str(build_dir), "divisor": SIM_DIVISOR}
              if kind in ("sim", "netlist") else {})
    t0 = time.perf_counter()
    what = f"opening board {spec}" + {"sim": " (building the simulated top)",
                                      "netlist": " (synthesising and building its netlist)"
                                      }.get(kind, "")
    board = ticker(lambda: open_board(spec, features=features, timeout=120.0, **kwargs),
                   what, enabled=progress)
    with board:
        built = board.version()
        shape = built.shape
        planned = [(r, plan(r, shape)) for r in runs]  # every run checked before the first
        for r, brs in planned:
            for br in brs:
                choose_modes(br, needs.get(r.name, EVERYTHING), built)
        open_s = time.perf_counter() - t0
        if kind == "serial" and progress:
            volume = sum(link_bytes(built, br) for _, brs in planned for br in brs
                         if br.modes == ("step",))
            if volume:
                print(f"lifgate demo: the runs in STEP frames move {volume / 1e6:.2f} MB over "
                      f"the link: about {_duration(link_seconds(volume, built.baud))} at "
                      f"{built.baud} baud", file=sys.stderr, flush=True)
        bar = progress_bar(total=sum(br.updates for _, brs in planned for br in brs),
                           desc=f"board ({spec})", unit="updates", unit_scale=True,
                           enabled=progress)
        board.transport = counter = CountingTransport(board.transport)
        for r, brs in planned:
            for br in brs:
                sent, received = counter.sent, counter.received
                execute(board, br, bar=bar)
                br.sent, br.received = counter.sent - sent, counter.received - received
            r.rtl = view(r, brs, f"board {spec}")
        bar.close()
    board_runs = [_run_json(r, br, built) for r, brs in planned for br in brs]
    total = sum(x["link_bytes"]["total"] for x in board_runs)
    return {
        "board": spec,
        "shape": {"neurons": shape.neurons, "lanes": shape.lanes, "groups": shape.groups},
        "baud": built.baud,
        "run_modes": {"counts": built.counts, "events": built.events, "probes": built.probes},
        "runs": board_runs,
        "experiments": _experiments_json(board_runs),
        "link_bytes": total,
        "link_seconds": round(link_seconds(total, built.baud), 6),
        "step_frames_bytes": sum(x["step_frames_bytes"] for x in board_runs),
        "build_seconds": open_s,
        "seconds": time.perf_counter() - t0,
    }
