"""Compare an imported NIR network with the framework's own run of it (``docs/networks.md``,
"Fixtures from the frameworks").

A reference file (``.npz``, written by ``examples/nir_fixtures/make_fixtures.py`` in the
frameworks' own environment) holds the input the framework ran and what it produced:

* ``x``: int [inputs], the input spike vector, the same at every step;
* ``spikes0``, ``spikes1``, ...: the framework's spikes (counts per step) of every spiking
  layer, [T, neurons];
* ``membrane`` (optional): the framework's membrane of an LI/I readout layer, [T, neurons];
* ``meta``: a JSON string (framework, versions, model, the ``lifgate import-nir`` options).

Timing: a framework fires in the step whose integration crossed the threshold; lifgate one step
later (``docs/numerics.md``), and every layer sees the spikes of the layer before it of the
same step. So lifgate's spiking layer ``l`` (counting from 0) shows framework step ``t`` at
step ``t + l + 1``, and an LI/I readout after ``L`` spiking layers shows it at ``t + L``; the
relay layers of a Delay (``Import.shifts``: None) are not counted and not compared.
:func:`compare` runs ``T + max shift`` steps and compares those windows.
"""

from __future__ import annotations

import json

import numpy as np

from lifgate.config import ConfigError
from lifgate.golden.synapse import simulate_network

__all__ = ["Reference", "compare", "load_reference", "windows"]


class Reference:
    """A framework's recorded run (see the module docstring).

    Members
    -------
    x : int array [inputs]
    spikes : list of arrays [T, N_l]
    membrane : float array [T, N] or None
    meta : dict
    """

    def __init__(self, x, spikes, membrane=None, meta=None):
        self.x = np.asarray(x, dtype=np.int64).reshape(-1)
        self.spikes = [np.asarray(s) for s in spikes]
        self.membrane = None if membrane is None else np.asarray(membrane, dtype=np.float64)
        self.meta = dict(meta or {})

    @property
    def steps(self) -> int:
        if self.spikes:
            return int(self.spikes[0].shape[0])
        return int(self.membrane.shape[0])


def load_reference(path) -> Reference:
    """Read a reference ``.npz``; anything malformed is a one-line :class:`ConfigError`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            x = f["x"]
            spikes = []
            while f"spikes{len(spikes)}" in keys:
                spikes.append(f[f"spikes{len(spikes)}"])
            membrane = f["membrane"] if "membrane" in keys else None
            meta = json.loads(str(f["meta"])) if "meta" in keys else {}
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        text = " ".join(str(e).split())[:160] or type(e).__name__
        raise ConfigError(f"--reference: cannot read {str(path)!r} ({text}); it needs 'x' and "
                          f"'spikes0', ... (docs/networks.md)") from None
    if not spikes and membrane is None:
        raise ConfigError(f"--reference: {str(path)!r} has neither 'spikes0' nor 'membrane'")
    steps = {int(np.shape(a)[0]) for a in spikes + ([membrane] if membrane is not None else [])}
    if len(steps) != 1 or any(np.ndim(a) != 2 for a in spikes):
        raise ConfigError(f"--reference: {str(path)!r}: every record must be [steps, neurons] "
                          f"with the same steps")
    return Reference(x, spikes, membrane, meta)


def windows(imp) -> list:
    """The step at which lifgate shows framework step 0, per layer of an import (module
    docstring); None for the relay layers of a Delay, which the framework does not have."""
    if imp.shifts:
        return list(imp.shifts)
    L = len(imp.network.layers)
    return [n if (imp.readout == "membrane" and n == L - 1) else n + 1 for n in range(L)]


def compare(imp, ref: Reference, steps: int | None = None) -> dict:
    """Run ``imp.network`` on the reference input for ``steps`` (default: the reference's)
    plus the layers' shift, and compare with the framework, layer by layer.

    Returns a dict with ``steps``, ``x``, ``run_steps`` and, per layer, the framework's and
    lifgate's spike counts over the shifted window, their relative difference and the number
    of (step, neuron) places where they differ; for a membrane readout the largest difference
    in NIR voltage units.
    """
    net = imp.network
    if ref.x.size != net.inputs:
        raise ConfigError(f"--reference: its input 'x' has {ref.x.size} values, the network "
                          f"{net.inputs} inputs")
    steps = ref.steps if steps is None else steps
    if steps > ref.steps:
        raise ConfigError(f"--steps must be at most {ref.steps} with this --reference, not "
                          f"{steps}")
    L = len(net.layers)
    shift = windows(imp)
    readout = L - 1 if imp.readout == "membrane" else None
    spiking = [n for n in range(L) if shift[n] is not None and n != readout]
    if len(ref.spikes) < len(spiking):
        raise ConfigError(f"--reference: it has {len(ref.spikes)} spike record(s), the network "
                          f"{len(spiking)} spiking layer(s)")
    run_steps = steps + max(s for s in shift if s is not None)
    res = simulate_network(net, run_steps, ref.x)
    layers = []
    for k, n in enumerate(spiking):
        fw = np.asarray(ref.spikes[k][:steps], dtype=np.int64)
        if fw.shape[1] != net.layers[n].neurons:
            raise ConfigError(f"--reference: spikes{k} has {fw.shape[1]} neurons, layer {n} "
                              f"{net.layers[n].neurons}")
        ours = res.spikes[n][shift[n]:shift[n] + steps].astype(np.int64)
        a, b = int(fw.sum()), int(ours.sum())
        layers.append({"layer": n, "framework_spikes": a, "lifgate_spikes": b,
                       "count_difference": abs(b - a) / max(a, 1),
                       "places_differing": int(np.count_nonzero(fw != ours)),
                       "shift": shift[n]})
    out = {"steps": steps, "run_steps": run_steps, "layers": layers, "result": res}
    if imp.readout == "membrane" and ref.membrane is not None:
        k = L - 1
        ours = res.v[k][shift[k]:shift[k] + steps] / imp.scale[k]
        fw = ref.membrane[:steps]
        out["membrane_max_difference"] = float(np.abs(ours - fw).max(initial=0))
        out["membrane_range"] = float(np.abs(fw).max(initial=0))
    return out
