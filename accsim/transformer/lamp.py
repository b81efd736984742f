"""LAMP look-ahead selection criteria for the composition softmax(QK^T).

Budzinskiy, Gloser, Yilmaz, Tham, Lin, Fang, Wu, Petersen, "LAMP: Look-Ahead
Mixed-Precision Inference of Large Language Models", arXiv:2601.21623 (2026): for a
composition ``f(g(x))`` whose outer function couples the components (softmax after the
scores ``s = QK^T / sqrt(d)``), compute every component of ``g`` in low precision,
evaluate the sensitivity of ``f`` at the low-precision result ("look ahead"), recompute
in high precision the few components of ``g`` that ``f`` amplifies, then evaluate ``f``
(the whole softmax row) on the corrected scores.

Three selection criteria, each registered once here (:data:`CRITERIA`, the one
vocabulary of the transformer's attention policies; :func:`check_criterion` is its one
check). Every criterion reads one row of low-precision scores ``s`` (already scaled by
``1/sqrt(d)``), the row's validity mask (``False`` for a causally masked or padded key;
such a score is never selected, never counted) and ``tau``; ``p`` is the softmax of the
valid scores of the row:

``lamp-v1``
    The first commit of the authors' code (sbudzinskiy/LAMP-LLM, ``lamp-inference/``):
    with ``p`` sorted decreasingly, recompute the smallest top-k set ``S`` with
    ``A(S) = 1 + sum_{j not in S} p_j - 2 min_{j not in S} p_j <= tau``,
    ``tau in [1, 2]``. ``A(empty) = 2 - 2 min_j p_j <= 2``, so ``tau = 2`` recomputes
    nothing; ``A(S) = 0`` when ``S`` holds every valid key. ``A(S)`` is the first-order
    amplification of absolute score errors into relative probability errors: with
    ``|ds_j| <= delta`` outside ``S``, ``dp_i / p_i = ds_i - sum_j p_j ds_j``, whose
    largest magnitude is ``A(S) delta`` (attained for the smallest ``p_i`` outside
    ``S``). Ties in ``p`` are broken by position (the lower index first).
``lamp``
    The componentwise rule of the authors' later ``gpt2_lamp.py``: recompute ``s_j``
    where ``2 p_j (1 - p_j) |s_j| > tau``, ``tau > 0`` (``p_j (1 - p_j)`` is the
    diagonal of the softmax Jacobian, ``|s_j|`` turns an error relative to ``s_j``
    into an absolute one).
``lamp-relaxed``
    The relaxed rule of the same file: recompute ``s_j`` where
    ``|s_j| exp(s_j) > tau max_valid(|s| exp(s))``, ``tau >= 0``. Evaluated as
    ``|s_j| exp(s_j - M)`` against ``tau max(|s| exp(s - M))`` with ``M`` the row's
    largest valid score: both sides are multiplied by ``exp(-M) > 0``, the same
    comparison without overflow.

Controls at matched cost: :func:`random_select` recomputes as many scores per row as
the rule, chosen uniformly among the row's valid scores; :func:`oracle_select`
recomputes the valid scores with the largest actual error ``|s_low - s_ref|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["CRITERIA", "Criterion", "register_criterion", "check_criterion", "criterion",
           "amplification", "lamp_counts", "lamp_select", "select", "random_select",
           "oracle_select", "softmax_rows", "masked_softmax"]


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """Row-wise softmax in binary64 (max subtracted first)."""
    s = np.asarray(s, np.float64)
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _valid(s, valid):
    return np.ones(np.shape(s), bool) if valid is None else np.asarray(valid, bool)


def masked_softmax(s: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Softmax of the valid entries of each row (invalid entries: probability 0)."""
    s = np.asarray(s, np.float64)
    v = _valid(s, valid)
    t = np.where(v, s, -np.inf)
    m = np.max(t, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(v, np.exp(t - m), 0.0)
    den = e.sum(axis=-1, keepdims=True)
    return e / np.where(den > 0, den, 1.0)


# ------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class Criterion:
    """A registered selection criterion: ``select(s, tau, valid) -> mask``."""

    name: str
    select: Callable
    tau_range: tuple  # (low, high, low_inclusive)
    summary: str

    def check_tau(self, tau) -> float:
        """``tau`` as a float; ValueError naming the criterion and its range."""
        lo, hi, lo_incl = self.tau_range
        t = float(tau)
        ok = (t >= lo if lo_incl else t > lo) and t <= hi and not math.isnan(t)
        if not ok:
            lb = "[" if lo_incl else "("
            raise ValueError(f"{self.name} tau must be in {lb}{lo:g}, {hi:g}], got {tau!r}")
        return t


#: name -> :class:`Criterion`: the one vocabulary of the LAMP selection rules.
CRITERIA: dict[str, Criterion] = {}


def register_criterion(name: str, *, tau_range: tuple, summary: str):
    """Decorator registering ``select(s, tau, valid)`` under ``name`` (once)."""

    def deco(fn):
        if name in CRITERIA:
            raise ValueError(f"criterion {name!r} is already registered")
        CRITERIA[name] = Criterion(name, fn, tau_range, summary)
        return fn

    return deco


def check_criterion(name) -> str:
    """The ONE check of a criterion name (ValueError listing the registered ones)."""
    if name not in CRITERIA:
        raise ValueError(f"unknown LAMP criterion {name!r}; valid: {', '.join(CRITERIA)}")
    return name


def criterion(name) -> Criterion:
    """The registered :class:`Criterion` called ``name``."""
    return CRITERIA[check_criterion(name)]


def select(name: str, s: np.ndarray, tau: float, valid: np.ndarray | None = None
           ) -> np.ndarray:
    """Mask of the scores criterion ``name`` recomputes (tau checked first)."""
    c = criterion(name)
    t = c.check_tau(tau)
    return np.asarray(c.select(np.asarray(s, np.float64), t, valid), bool)


# ------------------------------------------------------------------ lamp-v1
def _sorted_desc(p, valid):
    key = np.where(valid, -p, np.inf)  # invalid keys sort last
    order = np.argsort(key, axis=-1, kind="stable")
    return order, np.take_along_axis(np.where(valid, p, 0.0), order, axis=-1)


def amplification(p: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``A_k`` for ``k = 0 .. n`` (``S`` = the ``k`` largest valid ``p``), per row.

    Parameters
    ----------
    p : numpy.ndarray (..., n)
        Probabilities of each row.
    valid : numpy.ndarray of bool (..., n), optional
        Valid keys (default: all). With ``nv`` valid keys in a row, ``A_k = 0`` for
        ``k >= nv``.

    Returns
    -------
    numpy.ndarray (..., n + 1)
        ``A_k = 1 + sum_{j >= k} q_j - 2 q_{nv-1}`` for ``k < nv`` (``q`` = the valid
        ``p`` sorted decreasingly, so the tail's minimum is ``q_{nv-1}``), else 0.
    """
    p = np.asarray(p, np.float64)
    v = _valid(p, valid)
    _, q = _sorted_desc(p, v)
    nv = v.sum(axis=-1)
    tail = np.cumsum(q[..., ::-1], axis=-1)[..., ::-1]  # tail[k] = sum_{j>=k} q_j
    qmin = np.take_along_axis(q, np.maximum(nv - 1, 0)[..., None], axis=-1)
    A = 1.0 + tail - 2.0 * qmin
    A = np.concatenate([A, np.zeros(p.shape[:-1] + (1,))], axis=-1)
    return np.where(np.arange(p.shape[-1] + 1) < nv[..., None], A, 0.0)


def _counts_from_amplification(A, tau):
    return np.argmax(A <= tau, axis=-1)  # A_nv = 0 <= tau: some k always qualifies


def lamp_counts(p: np.ndarray, tau: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Smallest ``k`` per row with ``A_k <= tau`` (size of the ``lamp-v1`` set)."""
    tau = CRITERIA["lamp-v1"].check_tau(tau)
    return _counts_from_amplification(amplification(p, valid), tau)


def _mask_from_order(order, k):
    n = order.shape[-1]
    rank_ok = np.arange(n) < np.asarray(k)[..., None]
    mask = np.zeros(order.shape, bool)
    np.put_along_axis(mask, order, rank_ok, axis=-1)
    return mask


def lamp_select(p: np.ndarray, tau: float, valid: np.ndarray | None = None) -> np.ndarray:
    """``lamp-v1`` mask from the look-ahead probabilities ``p`` (the ``k`` largest)."""
    p = np.asarray(p, np.float64)
    v = _valid(p, valid)
    k = lamp_counts(p, tau, v)
    order, _ = _sorted_desc(p, v)
    return _mask_from_order(order, k)


@register_criterion("lamp-v1", tau_range=(1.0, 2.0, True),
                    summary="smallest top-k set S with A(S) <= tau (first commit)")
def _v1(s, tau, valid):
    v = _valid(s, valid)
    return lamp_select(masked_softmax(s, v), tau, v)


@register_criterion("lamp", tau_range=(0.0, math.inf, False),
                    summary="2 p_j (1 - p_j) |s_j| > tau (gpt2_lamp.py)")
def _v2(s, tau, valid):
    v = _valid(s, valid)
    p = masked_softmax(s, v)
    return v & (2.0 * p * (1.0 - p) * np.abs(s) > tau)


@register_criterion("lamp-relaxed", tau_range=(0.0, math.inf, True),
                    summary="|s_j| exp(s_j) > tau max_row |s| exp(s) (gpt2_lamp.py)")
def _relaxed(s, tau, valid):
    v = _valid(s, valid)
    t = np.where(v, s, -np.inf)
    M = np.max(t, axis=-1, keepdims=True)
    M = np.where(np.isfinite(M), M, 0.0)
    g = np.where(v, np.abs(s) * np.exp(np.where(v, s, M) - M), 0.0)
    gmax = np.max(g, axis=-1, keepdims=True)
    return v & (g > tau * gmax)


# ------------------------------------------------------------------ controls
def random_select(counts: np.ndarray, n_or_valid, rng: np.random.Generator) -> np.ndarray:
    """``counts[r]`` positions of each row, uniformly among its valid ones.

    ``n_or_valid``: the row length (every key valid) or the validity mask.
    """
    counts = np.asarray(counts)
    if np.ndim(n_or_valid) == 0:
        valid = np.ones(counts.shape + (int(n_or_valid),), bool)
    else:
        valid = np.asarray(n_or_valid, bool)
    if np.any(counts > valid.sum(axis=-1)):
        raise ValueError("a row asks for more scores than it has valid keys")
    keys = np.where(valid, rng.random(valid.shape), np.inf)
    order = np.argsort(keys, axis=-1, kind="stable")
    return _mask_from_order(order, counts)


def oracle_select(counts: np.ndarray, err: np.ndarray, valid: np.ndarray | None = None
                  ) -> np.ndarray:
    """``counts[r]`` valid positions of each row with the largest ``err`` (NaN first)."""
    err = np.where(np.isnan(err), np.inf, np.asarray(err, np.float64))
    err = np.where(_valid(err, valid), err, -np.inf)
    order = np.argsort(-err, axis=-1, kind="stable")
    return _mask_from_order(order, np.asarray(counts))
