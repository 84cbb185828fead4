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
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np

from lifgate.app.experiments import ArrayRun, RTLOutcome
from lifgate.app.progress import progress_bar, ticker
from lifgate.boards.framehost import parse_spec
from lifgate.boards.host import Board, open_board
from lifgate.boards.protocol import Features
from lifgate.config import ArrayShape, Config, ConfigError

#: The board the ``model`` and ``sim:*`` backends build for the demo: the demo's 64 neurons on
#: 4 lanes (the default ``ArrayShape``'s lanes, so the on-chip noise matches the RTL demo's),
#: one parameter group as ``lifgate build`` makes by default.
SIM_BOARD_SHAPE = ArrayShape(groups=1)


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
    spikes, v : arrays [steps, Nb] or None
        What the board returned.
    seconds : float
        Wall-clock time of the run on the board.
    """

    demo_neurons: np.ndarray | None = None
    spikes: np.ndarray | None = None
    v: np.ndarray | None = None
    seconds: float = 0.0

    def mismatch(self) -> dict | None:
        """The first difference from the golden run, None when bit-exact."""
        if self.spikes is None or self.v is None:
            return {"run": self.name, "field": "error", "error": "the board returned no outputs"}
        ok, first = self.check_rtl(self.spikes, self.v)
        return None if ok else {"run": self.name, **first}


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


def execute(board: Board, br: BoardRun, *, bar=None) -> None:
    """Run ``br`` on ``board`` (configure, clear, run) and keep its spikes and membranes."""
    t0 = time.perf_counter()
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
    br.seconds = time.perf_counter() - t0


def view(run: ArrayRun, brs: list[BoardRun], label: str) -> RTLOutcome:
    """The board's results of ``brs`` laid out as demo run ``run``'s ``[steps, N]`` arrays;
    bit-exact when every board run equals its own golden run."""
    n = run.config.shape.neurons
    spikes = np.zeros((run.steps, n), dtype=bool)
    v = np.zeros((run.steps, n), dtype=np.int64)
    mismatch = None
    for br in brs:
        j = np.arange(br.demo_neurons.size)
        if br.spikes is not None and br.v is not None:
            spikes[:, br.demo_neurons] = br.spikes[:, j]
            v[:, br.demo_neurons] = br.v[:, j]
        mismatch = mismatch or br.mismatch()
    return RTLOutcome(label, spikes, v, mismatch is None, mismatch,
                      sum(br.updates for br in brs), 0, sum(br.seconds for br in brs))


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
    """The features the ``model`` and ``sim:*`` backends build for the demo (None for a real
    board, which reports its own)."""
    kind, _ = parse_spec(spec)
    return None if kind == "serial" else Features(SIM_BOARD_SHAPE)


def run_on_board(runs, spec: str, *, build_dir, progress: bool = False) -> dict:
    """Run every demo :class:`ArrayRun` on the board ``spec`` and set its ``rtl`` outcome
    (labelled ``board SPEC``). Returns ``{"board", "shape", "runs", "seconds", ...}``."""
    runs = list(runs)
    features = board_features(spec)
    kind, _ = parse_spec(spec)
    kwargs = {"build_dir": str(build_dir)} if kind == "sim" else {}
    t0 = time.perf_counter()
    what = f"opening board {spec}" + (" (building the simulated top)" if kind == "sim" else "")
    board = ticker(lambda: open_board(spec, features=features, timeout=120.0, **kwargs),
                   what, enabled=progress)
    with board:
        shape = board.version().shape
        planned = [(r, plan(r, shape)) for r in runs]  # every run checked before the first
        open_s = time.perf_counter() - t0
        volume = sum(link_bytes(board.features, br) for _, brs in planned for br in brs)
        if kind == "serial" and progress:
            baud = parse_spec(spec)[1][1]
            print(f"lifgate demo: the board runs move {volume / 1e6:.2f} MB over the link: "
                  f"about {_duration(volume * 10 / baud)} at {baud} baud", file=sys.stderr,
                  flush=True)
        bar = progress_bar(total=sum(br.updates for _, brs in planned for br in brs),
                           desc=f"board ({spec})", unit="updates", unit_scale=True,
                           enabled=progress)
        for r, brs in planned:
            for br in brs:
                execute(board, br, bar=bar)
            r.rtl = view(r, brs, f"board {spec}")
        bar.close()
    return {
        "board": spec,
        "shape": {"neurons": shape.neurons, "lanes": shape.lanes, "groups": shape.groups},
        "runs": [{"name": br.name, "demo_run": r.name, "steps": br.steps,
                  "neurons": br.config.shape.neurons, "models_neurons": int(br.demo_neurons.size),
                  "input": "per step" if br.currents.ndim == 2 else "constant",
                  "bit_exact": br.mismatch() is None, "mismatch": br.mismatch(),
                  "seconds": round(br.seconds, 3)}
                 for r, brs in planned for br in brs],
        "link_bytes": volume,
        "build_seconds": open_s,
        "seconds": time.perf_counter() - t0,
    }
