"""ANN-to-SNN conversion: a ReLU MLP on scikit-learn's 8x8 digits onto a lifgate network.

Steps (``docs/networks.md``, "ANN-to-SNN conversion"):

1. :func:`train_ann`: a 64-H-10 ReLU MLP (``sklearn.neural_network.MLPClassifier``, fixed seed)
   on ``load_digits`` (bundled with scikit-learn, no download), pixels scaled to [0, 1],
   a stratified 75/25 split with a fixed seed.
2. :func:`convert`: data-based weight/threshold normalisation (Rueckauer et al. 2017): with
   ``lambda_l`` the ``percentile`` of layer ``l``'s ReLU activations on the training set,
   ``W_l <- W_l * lambda_(l-1) / lambda_l`` and ``b_l <- b_l / lambda_l`` (``lambda_0 = 1``);
   then a per-layer fixed-point scale ``theta_l`` (the threshold in membrane LSBs) chosen so the
   largest weight uses the full signed ``w_width`` range; weights and biases rounded to nearest.
   Neurons are IAF (``LeakMode.CONST``, leak 0), reset by subtraction, no refractory period,
   ``v_init = theta / 2``. The input is the pixel value 0..16 itself, a constant current every
   step (``x_width = 5``).
3. The SNN's class is ``argmax(count * v_th + v_final)`` over the output layer: the total input
   the output neuron integrated (reset by subtraction loses nothing), ties to the lowest index.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from lifgate.config import ArrayShape, Config, ConfigError, LeakMode, NeuronParams, ResetMode
from lifgate.golden.synapse import Layer, Network, simulate_network_batch

__all__ = ["Conversion", "Dataset", "classify", "convert", "load_dataset", "train_ann"]

#: Pixel values of ``load_digits`` are 0..16: five bits.
X_WIDTH = 5
X_MAX = 16


@dataclass
class Dataset:
    """The digits split: integer pixels (0..16) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_dataset(seed: int = 0, test_size: float = 0.25) -> Dataset:
    try:
        # optional (the networks extra) and slow to import: only the digits need scikit-learn
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ConfigError(
            "the digits demo needs scikit-learn: pip install 'lifgate[networks]'"
        ) from None
    d = load_digits()
    x = d.data.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=test_size, random_state=seed, stratify=d.target
    )
    return Dataset(xtr, ytr, xte, yte)


def train_ann(data: Dataset, *, hidden: int = 32, seed: int = 0):
    """A ReLU MLP ``64-hidden-10`` trained on ``data.x_train / 16``; returns the classifier."""
    # optional (the networks extra) and slow to import: only training needs scikit-learn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,), activation="relu", solver="adam", alpha=1e-3,
        max_iter=600, random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(data.x_train / X_MAX, data.y_train)
    return mlp


def _pad(n: int, lanes: int) -> int:
    return -(-n // lanes) * lanes


@dataclass
class Conversion:
    """A converted network and what it was made from.

    Members
    -------
    network : lifgate.golden.synapse.Network
    classes : int
        Meaningful neurons of the output layer (the rest is padding).
    lambdas : list of float
        Normalisation factors (activation percentiles) per layer.
    thetas : list of int
        Threshold (membrane LSBs per unit of normalised activation) per layer.
    weight_error : list of float
        Largest absolute rounding error of a weight, relative to the layer's largest weight.
    """

    network: Network
    classes: int
    lambdas: list
    thetas: list
    weight_error: list

    def run(self, x, steps: int, batch: int = 256):
        """Golden-model results for integer pixels ``x`` [B, 64], in batches."""
        out = []
        for lo in range(0, len(x), batch):
            out += simulate_network_batch(self.network, steps, np.asarray(x[lo:lo + batch]))
        return out

    def predict(self, results) -> np.ndarray:
        return np.array([classify(self.network, r, self.classes) for r in results])


def classify(network: Network, result, classes: int) -> int:
    """``argmax(count * v_th + v_final)`` over the first ``classes`` output neurons."""
    cfg = network.layers[-1].config
    v_th = np.array([cfg.neuron_params(j).v_th for j in range(classes)], dtype=np.int64)
    counts = result.spikes[-1][:, :classes].sum(axis=0)
    v = result.v[-1][-1, :classes] if len(result.v[-1]) else np.zeros(classes, np.int64)
    return int(np.argmax(counts * v_th + v))


def convert(mlp, x_train, *, w_width: int = 8, v_width: int = 16, i_width: int = 16,
            lanes=(8, 2), percentile: float = 99.9, v_init_half: bool = True) -> Conversion:
    """Normalise, quantise and map ``mlp`` (a trained sklearn ReLU MLP) onto a network.

    Parameters
    ----------
    mlp : sklearn.neural_network.MLPClassifier
        ReLU activation, trained on pixels / 16.
    x_train : int array [B, 64]
        Training pixels (0..16), for the activation percentiles.
    w_width, v_width, i_width : int
        Weight, membrane and input-current widths.
    lanes : tuple of int
        Lanes of each layer's array; neurons are padded to a multiple.
    percentile : float
        Activation percentile used as the normalisation factor (99.9 as Rueckauer et al.).
    """
    if getattr(mlp, "activation", None) != "relu":
        raise ConfigError("parameter 'mlp' must be a ReLU MLPClassifier")
    if not 2 <= w_width <= 18:
        raise ConfigError(f"parameter 'w_width' must be in [2, 18], not {w_width!r}")
    ws = [np.asarray(w, dtype=np.float64).T for w in mlp.coefs_]  # [out, in]
    bs = [np.asarray(b, dtype=np.float64) for b in mlp.intercepts_]
    if len(lanes) != len(ws):
        raise ConfigError(f"parameter 'lanes' must have {len(ws)} entries, not {len(lanes)}")
    # Activation percentiles (the output layer's logits, clipped at 0 like a ReLU).
    a = np.asarray(x_train, dtype=np.float64) / X_MAX
    lambdas = []
    for w, b in zip(ws, bs, strict=True):
        a = np.maximum(0.0, a @ w.T + b)
        lam = float(np.percentile(a[a > 0], percentile)) if (a > 0).any() else 1.0
        lambdas.append(lam)
    wmax = (1 << (w_width - 1)) - 1
    vmax = (1 << (v_width - 1)) - 1
    layers, thetas, errs = [], [], []
    prev = 1.0
    for n, (w, b) in enumerate(zip(ws, bs, strict=True)):
        wn = w * prev / lambdas[n]
        bn = b / lambdas[n]
        # x of the first layer is the pixel 0..16 standing for 0..1: one more factor of 16.
        unit = X_MAX if n == 0 else 1
        theta = int(np.floor(wmax * unit / np.abs(wn).max()))
        theta = max(2, min(theta, vmax // 2))
        wq = np.round(wn * theta / unit).astype(np.int64)
        wq = np.clip(wq, -wmax - 1, wmax)
        errs.append(float(np.abs(wq - wn * theta / unit).max() / max(1, np.abs(wq).max())))
        bq = np.clip(np.round(bn * theta), -vmax - 1, vmax).astype(np.int64)
        neurons = _pad(wq.shape[0], lanes[n])
        wpad = np.zeros((neurons, wq.shape[1]), dtype=np.int64)
        wpad[:wq.shape[0]] = wq
        params = []
        for j in range(neurons):
            real = j < wq.shape[0]
            params.append(NeuronParams(
                v_th=theta if real else vmax, v_reset=0, v_rest=0,
                v_init=theta // 2 if (v_init_half and real) else 0,
                bias=int(bq[j]) if real else 0, leak_mode=LeakMode.CONST, leak=0,
                reset_mode=ResetMode.SUBTRACT, t_ref=0,
            ))
        shape = ArrayShape(neurons=neurons, lanes=lanes[n], groups=neurons, v_width=v_width,
                           i_width=i_width, ref_width=1, leak_modes=(LeakMode.CONST,))
        layers.append(Layer(wpad, Config(shape=shape, params=tuple(params))))
        thetas.append(theta)
        prev = lambdas[n]
        if n + 1 < len(ws):
            # The next layer's inputs are this layer's (padded) neurons.
            ws[n + 1] = np.concatenate(
                [ws[n + 1], np.zeros((ws[n + 1].shape[0], neurons - wq.shape[0]))], axis=1)
    net = Network(tuple(layers), w_width=w_width, x_width=X_WIDTH)
    return Conversion(net, int(ws[-1].shape[0]), lambdas, thetas, errs)
