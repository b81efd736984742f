"""Condition numbers of the inner products and activations of a layer (method.md).

For ``y = phi(v)``, ``v = W x + b`` (seed paper: El Arar, Filip, Mary, Riccietti,
arXiv:2503.15568, 2025):

* ``kappa_v[i] = (sum_j |W[i,j] x[j]| + |b[i]|) / |sum_j W[i,j] x[j] + b[i]|``;
* ``kappa_phi(z) = |z phi'(z) / phi(z)|``: identity 1; ReLU 1 for z > 0 and 0 for z <= 0;
  tanh ``2z / sinh(2z)``; sigmoid ``|z| / (1 + e^z)``; GELU ``|1 + z pdf(z) / cdf(z)|``;
  SiLU ``|1 + z (1 - sigmoid(z))|``.

``0/0`` is taken as 0 (a nonzero numerator over 0 gives inf). Sums are exact (the exact
reference, rounded once), so ``kappa_v`` is accurate to a few ulps even for huge values.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from accsim.numbers import exact

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid", "gelu", "silu")

__all__ = ["ACTIVATIONS", "kappa_v", "kappa_phi", "kappa_dot", "propagate_layer_error",
           "phi_prime", "FLAT_ACTIVATIONS"]

#: Activations constant (flat) on a half-line: a component whose exact and computed
#: values both lie there gives the same output whatever its accumulation error.
FLAT_ACTIVATIONS = ("relu",)


def _div(num, den):
    """num / den with 0/0 -> 0 and x/0 -> inf (x > 0)."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r = np.where((num == 0) & (den == 0), 0.0, r)
    return r


def _as_matrix_x(x):
    x = np.asarray(x, np.float64)
    return (x[:, None], True) if x.ndim == 1 else (x, False)


def kappa_v(W, x, b=None) -> np.ndarray:
    """Condition numbers of the components of ``W x + b``.

    Parameters
    ----------
    W : array_like (m, n)
    x : array_like (n,) or (n, batch)
    b : array_like (m,) or None

    Returns
    -------
    numpy.ndarray of shape (m,) or (m, batch)
    """
    W = np.asarray(W, np.float64)
    X, vec = _as_matrix_x(x)
    if W.ndim != 2 or W.shape[1] != X.shape[0]:
        raise ValueError(f"W must be (m, n) with n = len(x); got W {W.shape}, x {X.shape}")
    bb = np.zeros((W.shape[0], 1)) if b is None else np.asarray(b, np.float64).reshape(-1, 1)
    if bb.shape[0] != W.shape[0]:
        raise ValueError(f"b must have {W.shape[0]} entries, got {bb.shape[0]}")
    Bc = np.broadcast_to(bb, (W.shape[0], X.shape[1]))
    num = exact.matmul(np.abs(W), np.abs(X), np.abs(Bc))
    den = np.abs(exact.matmul(W, X, Bc))
    k = _div(num, den)
    return k[:, 0] if vec else k


def kappa_dot(a, b, c=0.0) -> float:
    """Condition number ``(sum |a_i b_i| + |c|) / |sum a_i b_i + c|`` of one dot product."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = exact.dot(np.abs(a), np.abs(b), abs(float(c)))
    den = abs(exact.dot(a, b, float(c)))
    return float(_div(num, den))


def kappa_phi(z, activation: str) -> np.ndarray:
    """``|z phi'(z) / phi(z)|`` for an activation name (see module docstring)."""
    z = np.asarray(z, np.float64)
    act = str(activation).lower()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if act == "identity":
            return np.ones_like(z)
        if act == "relu":
            return np.where(z > 0, 1.0, 0.0)
        if act == "tanh":
            return np.abs(_div(2 * z, np.sinh(2 * z)))
        if act == "sigmoid":
            return np.abs(z) / (1 + np.exp(z))
        if act == "gelu":
            # pdf/cdf = exp(log pdf - log cdf), stable for z << 0 (cdf underflows)
            ratio = np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - special.log_ndtr(z))
            return np.abs(1 + z * ratio)
        if act == "silu":
            return np.abs(1 + z * special.expit(-z))
    raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")


def phi_prime(z, activation: str) -> np.ndarray:
    """``|phi'(z)|`` for an activation name: relu ``1[z > 0]``, identity 1, tanh
    ``1 - tanh^2 z``, sigmoid ``s (1 - s)``, gelu ``Phi(z) + z phi(z)``, silu
    ``s (1 + z (1 - s))`` with ``s`` the logistic function (the derivatives of the
    definitions in the module docstring). The predicted absolute output error of a
    component is ``|phi'(v_hat)|`` times its predicted pre-activation error."""
    z = np.asarray(z, np.float64)
    act = str(activation).lower()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if act == "identity":
            return np.ones_like(z)
        if act == "relu":
            return np.where(z > 0, 1.0, 0.0)
        if act == "tanh":
            return 1.0 - np.tanh(z) ** 2
        if act == "sigmoid":
            s = special.expit(z)
            return s * (1.0 - s)
        if act == "gelu":
            return np.abs(special.ndtr(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi))
        if act == "silu":
            s = special.expit(z)
            return np.abs(s * (1.0 + z * (1.0 - s)))
    raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")


def propagate_layer_error(eps_prev, W, x, v, activation: str, gamma, *, b=None,
                          u_phi: float = 0.0) -> np.ndarray:
    """First-order relative error of a layer's output (method.md, "Several layers").

    ``eps[i] = kappa_phi(v[i]) * ((|W| diag(|x|) eps_prev)[i] / |v[i]| + kappa_v[i] *
    gamma[i]) + u_phi``.

    Parameters
    ----------
    eps_prev : array_like (n,) or (n, batch)
        Relative errors of the layer input ``x`` (0 for exact inputs).
    W, x : arrays
        Weights (m, n) and input.
    v : array_like (m,) or (m, batch)
        Exact pre-activations ``W x + b``.
    activation : str
        One of :data:`ACTIVATIONS`.
    gamma : float or array_like (m,) / (m, batch)
        The accumulator's constant (e.g. ``gamma_{n+1}(u)``), per component if it varies.
    b : array_like (m,), optional
        Bias, for ``kappa_v`` (None: no bias).
    u_phi : float
        Relative error of evaluating phi itself.
    """
    W = np.asarray(W, np.float64)
    X, vec = _as_matrix_x(x)
    E, _ = _as_matrix_x(eps_prev)
    V = np.asarray(v, np.float64).reshape(W.shape[0], -1)
    inherited = exact.matmul(np.abs(W), np.abs(X) * E)
    kv = kappa_v(W, X, b)
    kphi = kappa_phi(V, activation)
    g = np.asarray(gamma, np.float64)
    if g.ndim == 1:
        g = g[:, None]
    with np.errstate(invalid="ignore"):
        term = _div(inherited, np.abs(V)) + kv * g
        eps = np.where(kphi == 0, 0.0, kphi * term) + u_phi
    return eps[:, 0] if vec else eps
