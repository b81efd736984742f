"""Plain-numpy training (backprop + Adam) with optional e4m3 quantization-aware training.

Quantization-aware training (QAT): float32 master weights are kept; the
forward and backward passes use ``to_e4m3(W)`` and ``to_e4m3(b)`` and the
gradient with respect to the rounded values is applied to the master weights
unchanged (straight-through estimator).  The returned parameters are the
rounded master weights, i.e. exactly the weights the last training step used.
"""

from __future__ import annotations

import numpy as np

from .model import Layer
from .quant import E4M3_MAX, to_e4m3
from .registry import layer_specs

__all__ = ["init_params", "train"]


def _templates(name):
    out = []
    for spec in layer_specs(name):
        spec = dict(spec)
        m, n = spec.pop("shape")
        out.append(Layer(W=np.zeros((m, n)), b=np.zeros(m), **spec))
    return out


def init_params(name, rng):
    """Random float32 initial parameters.

    Parameters
    ----------
    name : str
        Network name.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of (W, b)
        He-normal weights (std ``sqrt(2/n)``) for ReLU/GELU/SiLU layers, Glorot
        normal (std ``sqrt(2/(m+n))``) otherwise, biases zero.
    """
    params = []
    for spec in layer_specs(name):
        m, n = spec["shape"]
        if spec["activation"] in ("relu", "gelu", "silu"):
            std = np.sqrt(2.0 / n)
        else:
            std = np.sqrt(2.0 / (m + n))
        w = (rng.standard_normal((m, n)) * std).astype(np.float32)
        params.append((w, np.zeros(m, dtype=np.float32)))
    return params


def _loss_grad(templates, params, xb, yb):
    """Cross-entropy loss and gradients for one batch (columns = images)."""
    cache = []
    h = xb
    for layer, (w, b) in zip(templates, params, strict=True):
        x_cols = layer.to_columns(h)
        z = w @ x_cols + b[:, None]
        cache.append((x_cols, z))
        h = layer.from_columns(layer.phi(z))
    logits = h - h.max(axis=0, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=0, keepdims=True)
    batch = xb.shape[1]
    cols = np.arange(batch)
    loss = -np.mean(np.log(p[yb, cols] + 1e-30))
    g = p
    g[yb, cols] -= 1.0
    g /= batch
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        layer, (w, _) = templates[i], params[i]
        x_cols, z = cache[i]
        gz = layer.from_columns_adjoint(g) * layer.dphi(z)
        grads[i] = (gz @ x_cols.T, gz.sum(axis=1))
        if i:
            g = layer.to_columns_adjoint(w.T @ gz, batch)
    return float(loss), grads


def train(name, x, y, *, quantize=True, epochs=20, batch_size=128, lr=1e-3,
          weight_decay=0.0, seed=0, log=None):
    """Train network ``name`` with Adam and a cosine learning-rate schedule.

    Parameters
    ----------
    name : str
        Network name (architecture from :func:`networks.registry.layer_specs`).
    x : numpy.ndarray
        float32 training images, shape (N, 784).
    y : numpy.ndarray
        Integer labels, shape (N,).
    quantize : bool
        Quantization-aware training to e4m3 (STE) if true, plain float32 otherwise.
    epochs, batch_size : int
        Number of passes and mini-batch size (last partial batch dropped).
    lr : float
        Peak Adam step size; decays as ``0.5 lr (1 + cos(pi t / T))``.
    weight_decay : float
        Decoupled (AdamW-style) weight decay on weight matrices.
    seed : int
        Seed of initialization and shuffling.
    log : callable, optional
        Called as ``log(epoch, mean_loss)`` after every epoch.

    Returns
    -------
    list of (W, b)
        float32 parameters; exact e4m3 values if ``quantize``.
    """
    rng = np.random.default_rng(seed)
    templates = _templates(name)
    master = init_params(name, rng)
    m1 = [(np.zeros_like(w), np.zeros_like(b)) for w, b in master]
    m2 = [(np.zeros_like(w), np.zeros_like(b)) for w, b in master]
    beta1, beta2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    n = x.shape[0]
    steps_per_epoch = n // batch_size
    total = epochs * steps_per_epoch
    t = 0
    qfun = to_e4m3 if quantize else (lambda a: a)
    for epoch in range(epochs):
        perm = rng.permutation(n)
        losses = []
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            xb = np.ascontiguousarray(x[idx].T)
            params = [(qfun(w), qfun(b)) for w, b in master]
            loss, grads = _loss_grad(templates, params, xb, y[idx])
            losses.append(loss)
            t += 1
            step = np.float32(lr * 0.5 * (1.0 + np.cos(np.pi * (t - 1) / total)))
            c1 = np.float32(1.0 - 0.9 ** t)
            c2 = np.float32(1.0 - 0.999 ** t)
            for i, g_pair in enumerate(grads):
                new = []
                for j, g in enumerate(g_pair):
                    g = g.astype(np.float32)
                    mom, vel = m1[i][j], m2[i][j]
                    mom *= beta1
                    mom += (1 - beta1) * g
                    vel *= beta2
                    vel += (1 - beta2) * g * g
                    p = master[i][j]
                    if j == 0 and weight_decay:
                        p -= step * np.float32(weight_decay) * p
                    p -= step * (mom / c1) / (np.sqrt(vel / c2) + eps)
                    np.clip(p, -E4M3_MAX, E4M3_MAX, out=p)
                    new.append(p)
        if log is not None:
            log(epoch, float(np.mean(losses)))
    return [(qfun(w).copy(), qfun(b).copy()) for w, b in master]
