"""Paired statistics for comparing strategies on the same test images.

* :func:`mcnemar` -- exact McNemar test (McNemar, Psychometrika 12, 1947; exact binomial
  form, e.g. Fagerland, Lydersen, Laake, BMC Med. Res. Methodol. 13:91, 2013): under the
  null hypothesis of equal accuracy, each of the ``b + c`` discordant images (right under
  one strategy, wrong under the other) is equally likely to go either way, so
  ``min(b, c) ~ Binomial(b + c, 1/2)``; two-sided p-value ``min(1, 2 P(X <= min(b, c)))``.
* :func:`bootstrap_ci` -- percentile bootstrap (Efron & Tibshirani, *An Introduction to
  the Bootstrap*, 1993, ch. 13) of the mean of a per-image quantity taking few distinct
  values (accuracy: 0/1; paired difference: -1/0/1). Resampling ``N`` images with
  replacement only changes how many of each value are drawn, so the resampled counts are
  drawn directly from ``Multinomial(N, observed frequencies)``: the same distribution as
  the image-level bootstrap, at O(B) cost. Seeded: the same seed gives the same interval.
"""

from __future__ import annotations

import numpy as np

from accsim.numbers.seeds import derive

__all__ = ["mcnemar", "bootstrap_ci", "paired_summary"]


def mcnemar(correct_a, correct_b) -> tuple[int, int, float]:
    """Exact two-sided McNemar test of two paired 0/1 outcome vectors.

    Parameters
    ----------
    correct_a, correct_b : array_like of bool, same shape
        Per image: whether strategy A (B) classified it correctly.

    Returns
    -------
    b, c : int
        Images right under A only, and under B only.
    p : float
        Two-sided exact p-value (1.0 when there is no discordant image).
    """
    from scipy.stats import binom

    a = np.asarray(correct_a, bool)
    bb = np.asarray(correct_b, bool)
    if a.shape != bb.shape:
        raise ValueError(f"paired outcomes differ in shape: {a.shape} and {bb.shape}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n = b + c
    if n == 0:
        return b, c, 1.0
    p = min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))
    return b, c, p


def bootstrap_ci(values, *, level: float = 0.95, n_boot: int = 10000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap confidence interval.

    Parameters
    ----------
    values : array_like
        Per-image values (a few distinct values: 0/1 or -1/0/1).
    level : float
        Confidence level.
    n_boot : int
        Bootstrap replicates.
    seed : int

    Returns
    -------
    mean, lo, hi : float
    """
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    vals, counts = np.unique(v, return_counts=True)
    if vals.size > 64:
        raise ValueError("bootstrap_ci expects few distinct values (0/1 or -1/0/1)")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(v.size, counts / v.size, size=n_boot)
    means = draws @ vals / v.size
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(v.mean()), float(lo), float(hi)


def paired_summary(correct, reference, *, level: float = 0.95, n_boot: int = 10000,
                   seed: int = 0) -> dict:
    """Accuracy with CI, accuracy difference against ``reference`` with CI, McNemar.

    Returns
    -------
    dict
        ``accuracy``, ``accuracy_lo``, ``accuracy_hi``, ``delta`` (accuracy minus the
        reference's), ``delta_lo``, ``delta_hi``, ``b`` (right here, wrong in the
        reference), ``c`` (the reverse), ``p_mcnemar``, ``flip_rate`` ((b + c) / N).
    """
    a = np.asarray(correct, bool)
    r = np.asarray(reference, bool)
    acc, alo, ahi = bootstrap_ci(a, level=level, n_boot=n_boot, seed=seed)
    d, dlo, dhi = bootstrap_ci(a.astype(np.int8) - r.astype(np.int8), level=level,
                               n_boot=n_boot, seed=derive(seed, 1))
    b, c, p = mcnemar(a, r)
    return {"accuracy": acc, "accuracy_lo": alo, "accuracy_hi": ahi, "delta": d,
            "delta_lo": dlo, "delta_hi": dhi, "b": b, "c": c, "p_mcnemar": p,
            "flip_rate": (b + c) / a.size}
