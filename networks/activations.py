"""Activation functions and their derivatives.

Every activation is available as a pair ``phi(z)`` / ``dphi(z)`` operating
elementwise on numpy arrays.  The result has the floating dtype of ``z``
(integer input is promoted to float64).  The functions are "exact" in the sense
that they use the closed forms below evaluated with numpy/scipy in the working
precision (no polynomial or table approximations):

=========== ================================= ==========================================
name        phi(z)                            phi'(z)
=========== ================================= ==========================================
identity    z                                 1
relu        max(z, 0)                         1 if z > 0 else 0
tanh        tanh(z)                           1 - tanh(z)**2
sigmoid     1 / (1 + exp(-z))                 s (1 - s), s = sigmoid(z)
gelu        z Phi(z), Phi(z) = (1 + erf(z/√2))/2   Phi(z) + z exp(-z²/2)/√(2π)
silu        z sigmoid(z)                      s + z s (1 - s)
=========== ================================= ==========================================
"""

from __future__ import annotations

import numpy as np
from scipy import special

from accsim.analysis.kappa import ACTIVATIONS, kappa_phi

__all__ = ["ACTIVATIONS", "phi", "dphi", "kappa"]

_SQRT1_2 = np.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _as_float(z):
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    return z


def _check(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def phi(name, z):
    """Evaluate the activation ``name`` elementwise.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.
    z : array_like
        Pre-activations.

    Returns
    -------
    numpy.ndarray
        ``phi(z)`` in the floating dtype of ``z``.
    """
    _check(name)
    z = _as_float(z)
    dt = z.dtype.type
    if name == "identity":
        return z.copy()
    if name == "relu":
        return np.maximum(z, dt(0))
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return special.expit(z)
    if name == "gelu":
        return z * (dt(0.5) * (dt(1) + special.erf(z * dt(_SQRT1_2))))
    return z * special.expit(z)  # silu


def dphi(name, z):
    """Evaluate the derivative of the activation ``name`` elementwise.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.
    z : array_like
        Pre-activations.

    Returns
    -------
    numpy.ndarray
        ``phi'(z)`` in the floating dtype of ``z`` (for ``relu`` the
        derivative at 0 is taken as 0).
    """
    _check(name)
    z = _as_float(z)
    dt = z.dtype.type
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "tanh":
        t = np.tanh(z)
        return dt(1) - t * t
    if name == "sigmoid":
        s = special.expit(z)
        return s * (dt(1) - s)
    if name == "gelu":
        cdf = dt(0.5) * (dt(1) + special.erf(z * dt(_SQRT1_2)))
        return cdf + z * np.exp(dt(-0.5) * z * z) * dt(_INV_SQRT_2PI)
    s = special.expit(z)  # silu
    return s + z * s * (dt(1) - s)


def kappa(name, z):
    """Condition number ``|z phi'(z) / phi(z)|`` of the activation: the closed forms of
    :func:`accsim.analysis.kappa.kappa_phi` (El Arar et al., 2025, section 3), accurate in
    saturation too, in float64. One implementation: this is that function with the
    arguments in this module's order (the literal quotient of :func:`phi` and
    :func:`dphi` is the independent check in ``tests/test_networks.py``)."""
    _check(name)
    return kappa_phi(z, name)
