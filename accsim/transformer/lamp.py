"""LAMP look-ahead selection for the composition softmax(QK^T).

Budzinskiy, Gloser, Yilmaz, Tham, Lin, Fang, Wu, Petersen, "LAMP: Look-Ahead
Mixed-Precision Inference of Large Language Models", arXiv:2601.21623 (2026): for a
composition ``f(g(x))`` whose outer function couples the components (softmax after the
scores ``s = QK^T / sqrt(d)``), compute every component of ``g`` in low precision,
evaluate the sensitivity of ``f`` at the low-precision result ("look ahead"), recompute
in high precision the few components of ``g`` that ``f`` amplifies, then evaluate ``f``
(the whole softmax row) on the corrected scores.

The rule implemented here (the project's method reference, method.md, "LAMP"; the
paper's section giving the criterion could not be read from this machine: only its
abstract and introduction were reachable, so the rule and its derivation below are what
accsim implements and checks): for one softmax row with probabilities ``p`` (computed
from the low-precision scores) sorted in decreasing order, recompute the scores of the
smallest top-k set ``S`` such that

    ``A(S) = 1 + sum_{j not in S} p_j - 2 min_{j not in S} p_j  <=  tau``,

``tau in [1, 2]``; ``A(empty) = 2 - 2 min_j p_j <= 2``, so ``tau = 2`` recomputes
nothing, and ``A(S) = 0`` when ``S`` is the whole row. ``A(S)`` is the first-order
amplification of absolute score errors into relative probability errors: with
``|ds_j| <= delta`` for ``j`` not in ``S`` and ``ds_j = 0`` in ``S``,
``dp_i / p_i = ds_i - sum_j p_j ds_j``, whose largest magnitude over ``i`` is
``delta (1 + sum_{j not in S} p_j - 2 min_{j not in S} p_j)`` (attained for the
smallest ``p_i`` outside ``S``; for ``i`` in ``S`` it is ``delta sum_{j not in S} p_j``,
smaller). Ties in ``p`` are broken by position (the lower index is taken first).

Controls at matched cost: :func:`random_select` recomputes as many scores per row,
chosen uniformly at random; :func:`oracle_select` recomputes the scores with the largest
actual error ``|s_low - s_ref|``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["amplification", "lamp_counts", "lamp_select", "random_select",
           "oracle_select", "softmax_rows"]


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """Row-wise softmax in binary64 (max subtracted first)."""
    s = np.asarray(s, np.float64)
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sorted_desc(p):
    order = np.argsort(-p, axis=-1, kind="stable")
    return order, np.take_along_axis(p, order, axis=-1)


def amplification(p: np.ndarray) -> np.ndarray:
    """``A_k`` for ``k = 0 .. n`` (``S`` = the ``k`` largest ``p``), per row.

    Parameters
    ----------
    p : numpy.ndarray (..., n)
        Probabilities of each row.

    Returns
    -------
    numpy.ndarray (..., n + 1)
        ``A_k = 1 + sum_{j >= k} q_j - 2 q_{n-1}`` for ``k < n`` (``q`` = ``p`` sorted
        decreasingly, so the tail's minimum is ``q_{n-1}``), and ``A_n = 0``.
    """
    p = np.asarray(p, np.float64)
    _, q = _sorted_desc(p)
    tail = np.cumsum(q[..., ::-1], axis=-1)[..., ::-1]  # tail[k] = sum_{j>=k} q_j
    A = 1.0 + tail - 2.0 * q[..., -1:]
    return np.concatenate([A, np.zeros(p.shape[:-1] + (1,))], axis=-1)


def lamp_counts(p: np.ndarray, tau: float) -> np.ndarray:
    """Smallest ``k`` per row with ``A_k <= tau`` (the size of the recomputed set)."""
    if not (1.0 <= tau <= 2.0):
        raise ValueError(f"LAMP tau must be in [1, 2], got {tau!r}")
    A = amplification(p)
    ok = A <= tau
    return np.argmax(ok, axis=-1)  # A_n = 0 <= tau: some k always qualifies


def _mask_from_order(order, k):
    n = order.shape[-1]
    rank_ok = np.arange(n) < k[..., None]
    mask = np.zeros(order.shape, bool)
    np.put_along_axis(mask, order, rank_ok, axis=-1)
    return mask


def lamp_select(p: np.ndarray, tau: float) -> np.ndarray:
    """Boolean mask of the scores LAMP recomputes (the ``k`` largest ``p`` of each row).

    Parameters
    ----------
    p : numpy.ndarray (..., n)
        Softmax rows evaluated at the low-precision scores (the look-ahead).
    tau : float in [1, 2]
    """
    p = np.asarray(p, np.float64)
    k = lamp_counts(p, tau)
    order, _ = _sorted_desc(p)
    return _mask_from_order(order, k)


def random_select(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``counts[r]`` positions of each row chosen uniformly at random (matched control)."""
    counts = np.asarray(counts)
    keys = rng.random(counts.shape + (n,))
    order = np.argsort(keys, axis=-1, kind="stable")
    return _mask_from_order(order, counts)


def oracle_select(counts: np.ndarray, err: np.ndarray) -> np.ndarray:
    """``counts[r]`` positions of each row with the largest ``err`` (matched oracle)."""
    err = np.where(np.isnan(err), np.inf, np.asarray(err, np.float64))
    order = np.argsort(-err, axis=-1, kind="stable")
    return _mask_from_order(order, np.asarray(counts))
