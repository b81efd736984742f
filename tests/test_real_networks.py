"""Every shipped real-data network (MNIST / Fashion-MNIST): file, hash, e4m3 codes, accuracy.

The weight files and ``manifest.json`` are written by ``scripts/train_networks.py``
(docs/networks.md). The accuracy test runs an independent binary64 forward pass (plain
numpy, activations written out here) on a seeded 200-image sample of the real test split
and skips with the reason when the data are not fetched (``python -m networks.fetch``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import networks
from networks import data as D
from networks import fetch
from networks.registry import layer_specs, weights_path

ROOT = Path(__file__).resolve().parents[1]
REAL = [n for n in networks.available("all") if n not in networks.available("digits")]
#: Test images drawn (without replacement, seeded) for the fast accuracy check.
N_SLICE = 200


def _manifest_entry(name):
    return networks.manifest()["networks"][name]


def test_real_networks_are_registered():
    """The issue's networks: 3 seeds each of relu (MNIST, normalised MNIST, Fashion-MNIST),
    tanh / sigmoid / GELU (MNIST) and the wide ReLU MLP (MNIST)."""
    expected = {f"mlp-{v}-s{k}" for k in (0, 1, 2)
                for v in ("relu-mnist", "relu-mnist-norm", "relu-fashion", "tanh-mnist",
                          "sigmoid-mnist", "gelu-mnist", "relu-wide-mnist")}
    assert set(REAL) == expected
    wide = layer_specs("mlp-relu-wide-mnist-s0")
    assert [s["shape"] for s in wide] == [(2048, 784), (2048, 2048), (10, 2048)]
    assert [s["activation"] for s in layer_specs("mlp-gelu-mnist-s1")] == \
        ["gelu", "gelu", "identity"]


@pytest.mark.parametrize("name", REAL)
def test_weight_file_matches_manifest(name):
    path = weights_path(name)
    assert path.exists(), f"{name}: no weight file (python scripts/train_networks.py {name})"
    entry = _manifest_entry(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["dataset"] == networks.registry.dataset_of(name)
    assert entry["n_params"] == sum(m * n + m for m, n in (s["shape"] for s in
                                                           layer_specs(name)))


def _decode_e4m3(codes):
    """IEEE-style e4m3 (bias 7, 3 fraction bits, exponent 15 = inf/NaN) from the bit
    fields, independently of ml_dtypes / networks.quant."""
    c = codes.astype(np.int64)
    sign = np.where(c >> 7, -1.0, 1.0)
    e = (c >> 3) & 0xF
    f = c & 0x7
    mag = np.where(e == 0, f * 2.0 ** -9, (8 + f) * np.exp2(e - 10.0))
    return sign * mag, e == 15


@pytest.mark.parametrize("name", REAL)
def test_weights_are_finite_e4m3_codes(name):
    net = networks.load(name)
    with np.load(weights_path(name), allow_pickle=False) as f:
        assert sorted(f.files) == sorted(f"{k}{i}" for i in range(len(net.layers))
                                         for k in "Wb")
        for i, layer in enumerate(net.layers):
            for key, loaded in ((f"W{i}", layer.W), (f"b{i}", layer.b)):
                codes = f[key]
                assert codes.dtype == np.uint8 and codes.shape == loaded.shape
                vals, special = _decode_e4m3(codes)
                assert not special.any(), f"{name}.{key}: inf/NaN code"
                assert np.array_equal(vals.view(np.uint64), loaded.view(np.uint64))
                assert np.abs(vals).max() <= 240.0


def _phi(act, z):
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "tanh":
        return np.tanh(z)
    if act == "sigmoid":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))
    if act == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    assert act == "identity"
    return z


def _data_present(dataset):
    if dataset == "fashion-mnist":
        return fetch.fashion_present()
    try:
        D.mnist_source()
        return True
    except D.DataUnavailable:
        return False


@pytest.mark.parametrize("name", REAL)
def test_binary64_forward_on_real_test_sample(name):
    """A seeded sample of 200 test images: the independent forward pass agrees with
    ``Network.forward`` on every prediction, and its accuracy is within 4 binomial
    standard deviations, ``4 sqrt(p (1 - p) / 200)`` (0.055 at p = 0.96, 0.095 at
    p = 0.87), of the manifest's accuracy p on the whole test split."""
    dataset = networks.registry.dataset_of(name)
    if not _data_present(dataset):
        pytest.skip(f"{dataset} not fetched (python -m networks.fetch)")
    x, y = networks.load_dataset(dataset, "test")
    idx = np.sort(np.random.default_rng(20261201).choice(len(y), N_SLICE, replace=False))
    x = networks.registry.normalize(name, x[idx])
    y = y[idx]
    net = networks.load(name)
    h = np.asarray(x, np.float64).T
    for layer, spec in zip(net.layers, layer_specs(name), strict=True):
        h = _phi(spec["activation"], layer.W @ h + layer.b[:, None])
    pred = h.argmax(axis=0)
    assert np.array_equal(pred, net.forward(x).argmax(axis=1))
    acc = float(np.mean(pred == y))
    p = _manifest_entry(name)["test_accuracy_e4m3_float64"]
    assert abs(acc - p) <= 4 * math.sqrt(p * (1 - p) / N_SLICE), (name, acc, p)
    assert p > (0.9 if dataset == "mnist" else 0.8)


def test_manifest_recipes_are_the_training_script_recipes():
    spec = importlib.util.spec_from_file_location("train_networks",
                                                  ROOT / "scripts" / "train_networks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in REAL:
        recipe = _manifest_entry(name)["recipe"]
        want = mod.RECIPES[name]
        assert (recipe["epochs"], recipe["lr"], recipe["seed"]) == \
            (want["epochs"], want["lr"], want["seed"]), name
        assert recipe["batch_size"] == mod.BATCH_SIZE
