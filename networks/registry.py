"""Registry of the shipped networks: architectures, weight files, loading."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .model import Layer, Network
from .quant import e4m3_codes, from_e4m3_codes

__all__ = ["ARCHITECTURES", "available", "dataset_of", "normalization_of", "normalize",
           "load", "build", "layer_specs", "save_weights", "weights_path", "manifest"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: name -> architecture description (see :func:`layer_specs`).
ARCHITECTURES = {
    "mlp-relu": {"family": "mlp", "activation": "relu"},
    "mlp-tanh": {"family": "mlp", "activation": "tanh"},
    "mlp-sigmoid": {"family": "mlp", "activation": "sigmoid"},
    "mlp-gelu": {"family": "mlp", "activation": "gelu"},
    "cnn-relu": {"family": "cnn", "activation": "relu"},
}

#: MNIST mean and standard deviation of the authors' script (mptorch,
#: ``examples/mp_mlp_paper/script_mp.py``: ``Normalize((0.1307,), (0.3081,))``).
MNIST_NORMALIZATION = (0.1307, 0.3081)
#: Training seeds of the real-data networks (El Arar et al.'s MLP, three seeds each).
REAL_SEEDS = (0, 1, 2)


#: Hidden-layer sizes of the MLP families: the paper's 784-784-128-10 and the wide
#: 784-2048-2048-10 (inner products of length n = 2048 in layers 2 and 3).
MLP_HIDDEN = {"mlp": (784, 128), "mlp-wide": (2048, 2048)}


def _real_networks():
    """The real-data networks, k in :data:`REAL_SEEDS`.

    * ``mlp-relu-{mnist,fashion}-s{k}``: the paper's MLP, inputs in [0, 1];
    * ``mlp-relu-mnist-norm-s{k}``: inputs normalised as in the authors' script;
    * ``mlp-{tanh,sigmoid,gelu}-mnist-s{k}``: the paper's MLP with another hidden activation;
    * ``mlp-relu-wide-mnist-s{k}``: the wide MLP 784-2048-2048-10 (ReLU).
    """
    out = {}
    for ds in ("mnist", "fashion"):
        for norm in ((False, True) if ds == "mnist" else (False,)):
            for k in REAL_SEEDS:
                name = f"mlp-relu-{ds}{'-norm' if norm else ''}-s{k}"
                out[name] = {"family": "mlp", "activation": "relu",
                             "dataset": "fashion-mnist" if ds == "fashion" else "mnist",
                             "normalize": MNIST_NORMALIZATION if norm else None, "seed": k}
    for act in ("tanh", "sigmoid", "gelu"):
        for k in REAL_SEEDS:
            out[f"mlp-{act}-mnist-s{k}"] = {"family": "mlp", "activation": act,
                                            "dataset": "mnist", "normalize": None, "seed": k}
    for k in REAL_SEEDS:
        out[f"mlp-relu-wide-mnist-s{k}"] = {"family": "mlp-wide", "activation": "relu",
                                            "dataset": "mnist", "normalize": None, "seed": k}
    return out


ARCHITECTURES.update(_real_networks())


def dataset_of(name):
    """Data set a network was trained on (:data:`networks.data.DATASETS`)."""
    _check_name(name)
    return ARCHITECTURES[name].get("dataset", "digits")


def normalization_of(name):
    """``(mean, std)`` applied to the inputs before the first layer, or ``None``."""
    _check_name(name)
    return ARCHITECTURES[name].get("normalize")


def available(dataset="digits"):
    """Names of the shipped networks trained on ``dataset``.

    Parameters
    ----------
    dataset : str
        ``"digits"`` (default: the networks of the sklearn-digits fallback), ``"mnist"``,
        ``"fashion-mnist"``, or ``"all"``.

    Returns
    -------
    list of str
    """
    return [k for k, v in ARCHITECTURES.items()
            if dataset == "all" or v.get("dataset", "digits") == dataset]


def _check_name(name):
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown network {name!r}; valid names: "
                         f"{', '.join(available('all'))}")


def layer_specs(name):
    """Geometry of each layer of network ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    list of dict
        Keyword arguments of :class:`~networks.model.Layer` without ``W`` and
        ``b``, plus ``shape`` = ``(m, n)`` of ``W``.

    Notes
    -----
    MLP: 784 -> 784 -> 128 -> 10, hidden activation as named, identity output;
    wide MLP (family ``"mlp-wide"``): 784 -> 2048 -> 2048 -> 10.
    CNN: input (1, 28, 28); conv 3x3, 8 channels, stride 2, padding 1
    -> (8, 14, 14); conv 3x3, 16 channels, stride 2, padding 1 -> (16, 7, 7);
    flatten (784) -> dense 10.
    """
    _check_name(name)
    arch = ARCHITECTURES[name]
    act = arch["activation"]
    if arch["family"] in MLP_HIDDEN:
        sizes = [784, *MLP_HIDDEN[arch["family"]], 10]
        acts = [act, act, "identity"]
        return [{"kind": "dense", "activation": a, "shape": (sizes[i + 1], sizes[i])}
                for i, a in enumerate(acts)]
    conv = {"kind": "conv", "activation": act, "kernel": (3, 3), "stride": 2, "padding": 1}
    return [
        dict(conv, in_shape=(1, 28, 28), shape=(8, 1 * 9)),
        dict(conv, in_shape=(8, 14, 14), shape=(16, 8 * 9)),
        {"kind": "dense", "activation": "identity", "shape": (10, 16 * 7 * 7)},
    ]


def build(name, params):
    """Assemble a :class:`~networks.model.Network` from weight arrays.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    params : list of (W, b)
        Weight matrix and bias vector of every layer.

    Returns
    -------
    Network
        Layers hold float64 copies of the arrays (read-only).
    """
    layers = []
    specs = layer_specs(name)
    if len(params) != len(specs):
        raise ValueError(f"{name}: expected {len(specs)} layers, got {len(params)}")
    for spec, (w, b) in zip(specs, params, strict=True):
        spec = dict(spec)
        shape = spec.pop("shape")
        w = np.array(w, dtype=np.float64)
        b = np.array(b, dtype=np.float64)
        if w.shape != shape:
            raise ValueError(f"{name}: expected W of shape {shape}, got {w.shape}")
        w.setflags(write=False)
        b.setflags(write=False)
        layers.append(Layer(W=w, b=b, **spec))
    return Network(name=name, layers=layers)


def normalize(name, x):
    """Inputs as network ``name`` sees them: ``(x - mean) / std`` in float32 (as torch's
    ``Normalize`` on float32 tensors) if the network was trained that way, else ``x``."""
    norm = normalization_of(name)
    if norm is None:
        return x
    m, s = (np.float32(v) for v in norm)
    return ((np.asarray(x, np.float32) - m) / s).astype(np.float32)


def weights_path(name):
    """Path of the shipped weight file of network ``name``."""
    _check_name(name)
    return WEIGHTS_DIR / f"{name}.npz"


def save_weights(path, params):
    """Write e4m3 weights as a byte-reproducible ``.npz`` of uint8 codes.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file.
    params : list of (W, b)
        Arrays holding exact e4m3 values.

    Notes
    -----
    Members ``W0, b0, W1, b1, ...`` are written with a fixed timestamp so the
    file's bytes depend only on the values (``numpy.savez`` stamps the time).
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i, (w, b) in enumerate(params):
            for key, arr in ((f"W{i}", w), (f"b{i}", b)):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(e4m3_codes(arr)),
                                          allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue(), compresslevel=9)


def load(name):
    """Load a shipped network (never retrains).

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    Network

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names).
    """
    path = weights_path(name)
    if not path.exists():
        raise ValueError(f"network {name!r} has no weight file {path} (train it with "
                         f"`python scripts/train_networks.py {name}`)")
    with np.load(path, allow_pickle=False) as f:
        n = len(layer_specs(name))
        params = [(from_e4m3_codes(f[f"W{i}"]), from_e4m3_codes(f[f"b{i}"])) for i in range(n)]
    return build(name, params)


def manifest():
    """Recorded training results (``networks/weights/manifest.json``).

    Returns
    -------
    dict
        Per network: measured float64 test accuracy of the shipped e4m3 net,
        test accuracy of the unquantized float32 reference net, parameter
        count, training hyper-parameters and the SHA-256 of the weight file.
    """
    return json.loads((WEIGHTS_DIR / "manifest.json").read_text())
