"""Tests of the networks package (shipped weights, data split, conv-as-matmul)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import accsim
import networks
from networks.activations import ACTIVATIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return networks.digits_dataset(return_origins=True)


def test_available_and_unknown_name():
    names = networks.available()
    assert names == ["mlp-relu", "mlp-tanh", "mlp-sigmoid", "mlp-gelu", "cnn-relu"]
    with pytest.raises(ValueError, match="mlp-relu"):
        networks.load("no-such-net")


def test_split_deterministic_and_disjoint(data):
    xtr, ytr, xte, yte, otr, ote = data
    assert xtr.dtype == np.float32 and xte.dtype == np.float32
    assert xtr.shape[1] == xte.shape[1] == 784
    assert len(xtr) == len(ytr) == len(otr) and len(xte) == len(yte) == len(ote)
    assert 2000 <= len(xte) <= 4000
    assert xtr.min() >= 0 and xtr.max() <= 1 and xte.min() >= 0 and xte.max() <= 1
    assert not set(otr.tolist()) & set(ote.tolist())
    assert len(set(otr.tolist()) | set(ote.tolist())) == 1797
    from sklearn.datasets import load_digits
    target = load_digits().target
    assert np.array_equal(ytr, target[otr]) and np.array_equal(yte, target[ote])
    # rebuilding from scratch gives identical arrays
    from networks import data as data_mod
    train_idx, test_idx = data_mod.split_originals(target)
    assert np.array_equal(np.unique(ote), test_idx) and np.array_equal(np.unique(otr), train_idx)
    i = int(test_idx[3])
    img = data_mod.upsample(load_digits().images[i] / 16.0)
    variants = data_mod.augment(img, i).reshape(-1, 784).astype(np.float32)
    assert np.array_equal(variants, xte[ote == i])


@pytest.mark.parametrize("name", networks.available())
def test_weights_are_e4m3(name):
    net = networks.load(name)
    for layer in net.layers:
        for a in (layer.W, layer.b):
            assert a.dtype == np.float64
            a32 = a.astype(np.float32)
            assert np.array_equal(a32.astype(np.float64), a)
            assert np.array_equal(accsim.round(a, "float8_e4m3"), a)
            assert np.all(np.abs(a) <= 240)


def _direct_conv(x, kernel, bias, stride, padding):
    """Naive loop convolution: x (C,H,W), kernel (M,C,kh,kw) -> (M,Ho,Wo)."""
    c, h, w = x.shape
    m, _, kh, kw = kernel.shape
    xp = np.zeros((c, h + 2 * padding, w + 2 * padding))
    xp[:, padding:padding + h, padding:padding + w] = x
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    out = np.zeros((m, ho, wo))
    for o in range(m):
        for i in range(ho):
            for j in range(wo):
                s = bias[o]
                for ci in range(c):
                    for a in range(kh):
                        for bb in range(kw):
                            s += kernel[o, ci, a, bb] * xp[ci, i * stride + a, j * stride + bb]
                out[o, i, j] = s
    return out


def test_conv_as_matmul_matches_direct_loop(data):
    net = networks.load("cnn-relu")
    x = np.asarray(data[2][:2], dtype=np.float64)  # two test images
    h = x.T
    for layer in net.layers:
        if layer.kind != "conv":
            break
        z = layer.W @ layer.to_columns(h) + layer.b[:, None]
        got = layer.from_columns(z)  # (n_out, batch)
        m = layer.W.shape[0]
        kern = layer.W.reshape((m, layer.in_shape[0]) + tuple(layer.kernel))
        for bi in range(h.shape[1]):
            ref = _direct_conv(h[:, bi].reshape(layer.in_shape), kern, layer.b,
                               layer.stride, layer.padding)
            assert np.allclose(got[:, bi], ref.ravel(), rtol=1e-12, atol=1e-12)
        # single column input works too and each output is one inner product
        one = layer.to_columns(h[:, 0])
        assert one.shape == (layer.W.shape[1], int(np.prod(layer.out_shape[1:])))
        h = layer.from_columns(layer.phi(z))
    # the network forward equals the layer-by-layer loop
    hh = x.T
    for layer in net.layers:
        hh = layer.from_columns(layer.phi(layer.W @ layer.to_columns(hh) + layer.b[:, None]))
    assert np.array_equal(hh.T, net.forward(x))


def test_im2col_adjoint():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = networks.im2col(x, (3, 3), 2, 1)
    g = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * g)
    rhs = np.sum(x * networks.col2im(g, x.shape, (3, 3), 2, 1))
    assert np.isclose(lhs, rhs)


def _doc_accuracies():
    text = (ROOT / "docs" / "networks.md").read_text()
    out = {}
    for name in networks.available():
        m = re.search(rf"^\|\s*{re.escape(name)}\s*\|\s*[\d,]+\s*\|\s*([\d.]+)\s*%", text, re.M)
        assert m, f"no accuracy row for {name} in docs/networks.md"
        out[name] = float(m.group(1)) / 100
    return out


def test_shipped_accuracy_matches_docs(data):
    _, _, xte, yte, _, _ = data
    docs = _doc_accuracies()
    man = networks.manifest()["networks"]
    for name in networks.available():
        net = networks.load(name)
        acc = net.accuracy(xte, yte)
        assert abs(acc - docs[name]) <= 6e-5, (name, acc, docs[name])
        assert acc == pytest.approx(man[name]["test_accuracy_e4m3_float64"], abs=1e-12)
        assert net.n_params == man[name]["n_params"]
        assert acc > 0.9
        logits = net.forward(xte[:5])
        assert logits.shape == (5, 10) and logits.dtype == np.float64


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dphi_matches_finite_difference(name):
    z = np.linspace(-6, 6, 241) + 0.0123  # avoid the ReLU kink at 0
    h = 1e-6
    fd = (networks.phi(name, z + h) - networks.phi(name, z - h)) / (2 * h)
    assert np.allclose(networks.dphi(name, z), fd, rtol=1e-6, atol=1e-8)
    layer = networks.Layer(kind="dense", W=np.zeros((1, 1)), b=np.zeros(1), activation=name)
    assert np.array_equal(layer.dphi(z), networks.dphi(name, z))
    assert np.array_equal(layer.phi(z), networks.phi(name, z))
    k = layer.kappa(z)
    assert np.all(np.isfinite(k)) and np.all(k >= 0)


def test_kappa_phi_closed_forms_agree_with_the_literal_quotient():
    """accsim.analysis.kappa.kappa_phi (the closed forms of El Arar et al., used by the
    executor and by networks.kappa) against the literal quotient |z phi'(z) / phi(z)| of
    the independently written phi and dphi, where that quotient is accurate (z != 0,
    |z| <= 5, nothing underflows); in saturation (e.g. tanh, |z| > 8: 1 - tanh^2
    cancels) only the closed forms are accurate."""
    from accsim.analysis.kappa import kappa_phi
    from networks.activations import dphi, phi

    z = np.concatenate([np.linspace(-30, 30, 2001), [1e-300, -1e-300, 700.0]])
    for act in ("identity", "relu", "tanh", "sigmoid", "gelu", "silu"):
        b = np.asarray(kappa_phi(z, act), np.float64)
        assert np.array_equal(np.asarray(networks.kappa(act, z)), b)
        p, zd = np.abs(phi(act, z)), np.abs(z * dphi(act, z))
        ok = (z != 0) & (np.abs(z) <= 5) & (p > 1e-250) & (zd > 1e-250)
        assert ok.sum() > 100
        literal = zd[ok] / p[ok]
        np.testing.assert_allclose(literal, b[ok], rtol=1e-6, atol=0, err_msg=act)
