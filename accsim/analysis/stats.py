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
* :func:`log10_error`, :func:`wilcoxon_paired` -- the label-free paired comparison: per
  input ``log10`` of the output error against the exact network, Wilcoxon signed-rank
  test of the paired differences (Wilcoxon, Biometrics Bulletin 1, 1945;
  ``scipy.stats.wilcoxon``, zero differences dropped).
* :func:`holm` -- Holm's step-down adjustment (Holm, Scand. J. Statist. 6, 1979): with
  raw p sorted ``p_(1) <= ... <= p_(m)``, ``p~_(i) = max_{j <= i} min(1, (m - j + 1)
  p_(j))``; it controls the family-wise error rate at the nominal level.
* :func:`mdd_wilcoxon`, :func:`mdd_mcnemar` -- minimum detectable differences at a
  power: ``(z_{1-alpha/2} + z_power) sd / sqrt(n 3 / pi)`` for the signed-rank test
  (normal-theory paired test, with the signed-rank test's asymptotic relative
  efficiency 3/pi under normality: Lehmann, *Nonparametrics*, 1975, ch. 4), and the
  difference in paired proportions ``delta`` solving Connor's sample size (Biometrics
  43, 1987) ``n = (z_{1-alpha/2} sqrt(psi) + z_power sqrt(psi - delta^2))^2 / delta^2``
  for a discordant rate ``psi``.
* :func:`comparison_family` -- one results table's family of comparisons: every adaptive
  row against each of its controls and against the uniform rows of equal or lower
  cost, Holm-adjusted over all the table's tests.
"""

from __future__ import annotations

import numpy as np

from accsim.numbers.seeds import derive

__all__ = ["mcnemar", "bootstrap_ci", "paired_summary", "holm", "log10_error",
           "wilcoxon_paired", "mdd_wilcoxon", "mdd_mcnemar", "comparison_family",
           "LOG_FLOOR", "COMPARISON_FIELDS", "family_variables", "COMPARISON_ATTRS"]

#: Output errors below this (an output equal to the exact network's) count as this in
#: ``log10`` (so that two exact outputs differ by 0, not NaN); non-finite errors count
#: as ``1 / LOG_FLOOR``.
LOG_FLOOR = 1e-20


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


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values, in the input order (NaN entries stay NaN and do not count
    in the family size).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for i, idx in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def log10_error(err) -> np.ndarray:
    """``log10`` of per-input output errors, clipped to ``[LOG_FLOOR, 1 / LOG_FLOOR]``
    (NaN and inf count as the ceiling)."""
    e = np.asarray(err, np.float64)
    e = np.where(np.isnan(e), np.inf, e)
    return np.log10(np.clip(e, LOG_FLOOR, 1.0 / LOG_FLOOR))


def wilcoxon_paired(a, b) -> tuple[float, float, int]:
    """Two-sided Wilcoxon signed-rank test of paired samples ``a - b``.

    Returns
    -------
    median : float
        Median of the paired differences ``a - b``.
    p : float
        Two-sided p-value (1.0 when every difference is zero).
    n : int
        Nonzero differences used.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.shape != np.shape(a) or np.shape(a) != np.shape(b):
        raise ValueError(f"paired samples differ in shape: {np.shape(a)} and {np.shape(b)}")
    nz = int(np.count_nonzero(d))
    med = float(np.median(d)) if d.size else float("nan")
    if nz == 0:
        return med, 1.0, 0
    return med, float(wilcoxon(d, zero_method="wilcox").pvalue), nz


def _z(q):
    from scipy.stats import norm

    return float(norm.ppf(q))


def mdd_wilcoxon(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """Shift of the paired differences that the two-sided signed-rank test at level
    ``alpha`` detects with probability ``power`` (normal differences of standard
    deviation ``sd``; module docstring)."""
    if n <= 0:
        return float("inf")
    return (_z(1 - alpha / 2) + _z(power)) * float(sd) / np.sqrt(n * 3 / np.pi)


def mdd_mcnemar(psi: float, n: int, alpha: float, power: float = 0.8) -> float:
    """Difference of paired proportions McNemar's test at level ``alpha`` detects with
    probability ``power`` among ``n`` pairs with discordant rate ``psi`` (Connor 1987;
    ``psi = 0`` is replaced by ``1 / n``: at least one discordant pair)."""
    from scipy.optimize import brentq

    if n <= 0:
        return float("inf")
    psi = max(float(psi), 1.0 / n)
    za, zb = _z(1 - alpha / 2), _z(power)

    def need(delta):
        return (za * np.sqrt(psi) + zb * np.sqrt(max(psi - delta**2, 0.0)))**2 / delta**2 - n

    hi = np.sqrt(psi)
    if need(hi) > 0:  # even the largest possible difference needs more pairs
        return float("inf")
    return float(brentq(need, 1e-12, hi))


#: Per comparison: what :func:`comparison_family` returns for each.
COMPARISON_FIELDS = ("row", "other", "relation", "n", "median_log10_diff",
                     "p_wilcoxon", "p_wilcoxon_holm", "agree_b", "agree_c",
                     "p_mcnemar_agree", "p_mcnemar_agree_holm", "correct_b", "correct_c",
                     "p_mcnemar_acc", "p_mcnemar_acc_holm", "mdd_log10", "mdd_agreement")


def comparison_family(rows, *, alpha: float = 0.01, power: float = 0.8) -> list[dict]:
    """The paired comparisons of one results table, Holm-adjusted together.

    Parameters
    ----------
    rows : list of dict
        One per table row: ``label``, ``kind`` (uniform, adaptive, multilevel, or a
        control kind), ``matched_to`` (the adaptive label a control copies, else ""),
        ``cost`` (a scalar cost: uniform rows of cost ``<=`` an adaptive row's are its
        comparators), ``error`` (per input output error against the exact network),
        ``agree`` and ``correct`` (per input booleans; ``correct`` may be None).
        Replicates of a random control share ``kind`` and ``matched_to``: the Wilcoxon
        test uses their per-input mean ``log10`` error, McNemar the first replicate.
    alpha : float
        Level of the verdicts; the minimum detectable differences are at ``alpha / m``
        (Holm's strictest step, ``m`` the family's number of tests) and ``power``.

    Returns
    -------
    list of dict
        One per comparison with the keys :data:`COMPARISON_FIELDS` (differences are
        row minus comparator: a negative ``median_log10_diff`` means the adaptive row's
        error is smaller; ``agree_b``: inputs where only the row agrees with the binary64
        network, ``agree_c``: only the comparator).
    """
    out = []
    for r in rows:
        if r["kind"] not in ("adaptive", "multilevel"):
            continue
        groups: dict = {}
        for o in rows:
            if o.get("matched_to") == r["label"]:
                groups.setdefault(o["kind"], []).append(o)
        comps = list(groups.items())
        for o in rows:
            if o["kind"] == "uniform" and o["cost"] <= r["cost"]:
                comps.append(("uniform", [o]))
        la = log10_error(r["error"])
        for rel, reps in comps:
            lb = np.mean([log10_error(o["error"]) for o in reps], axis=0)
            med, p, _ = wilcoxon_paired(la, lb)
            first = reps[0]
            ab, ac, pa = mcnemar(r["agree"], first["agree"])
            if r.get("correct") is not None and first.get("correct") is not None:
                cb, cc, pc = mcnemar(r["correct"], first["correct"])
            else:
                cb = cc = -1
                pc = float("nan")
            out.append({"row": r["label"], "other": first["label"], "relation": rel,
                        "n": int(la.size), "median_log10_diff": med, "p_wilcoxon": p,
                        "agree_b": ab, "agree_c": ac, "p_mcnemar_agree": pa,
                        "correct_b": cb, "correct_c": cc, "p_mcnemar_acc": pc,
                        "_sd": float(np.std(la - lb, ddof=1)) if la.size > 1 else np.nan,
                        "_psi": (ab + ac) / max(la.size, 1)})
    keys = ("p_wilcoxon", "p_mcnemar_agree", "p_mcnemar_acc")
    flat = np.array([c[k] for c in out for k in keys], np.float64)
    adj = holm(flat).reshape(len(out), len(keys)) if out else np.zeros((0, 3))
    m = int(np.count_nonzero(~np.isnan(flat)))
    level = alpha / max(m, 1)
    for c, a in zip(out, adj, strict=True):
        for k, v in zip(keys, a, strict=True):
            c[k + "_holm"] = float(v)
        c["mdd_log10"] = mdd_wilcoxon(c.pop("_sd"), c["n"], level, power)
        c["mdd_agreement"] = mdd_mcnemar(c.pop("_psi"), c["n"], level, power)
    return out


#: CF ``long_name`` / ``units`` of the comparison variables (``cmp_<field>``).
COMPARISON_ATTRS = {
    "row": ("adaptive row compared", "1"),
    "other": ("comparator row (a control, or a uniform row of equal or lower bit cost)",
              "1"),
    "relation": ("comparator kind: random, random-active, oracle or uniform", "1"),
    "n": ("paired inputs", "1"),
    "median_log10_diff": ("median over inputs of log10 output error (row) minus log10 "
                          "output error (comparator), errors against binary64", "1"),
    "p_wilcoxon": ("Wilcoxon signed-rank two-sided p-value, raw", "1"),
    "p_wilcoxon_holm": ("Wilcoxon p-value, Holm-adjusted over the table's family", "1"),
    "agree_b": ("inputs where only the row agrees with the binary64 top-1", "1"),
    "agree_c": ("inputs where only the comparator agrees with the binary64 top-1", "1"),
    "p_mcnemar_agree": ("exact McNemar p-value on top-1 agreement, raw", "1"),
    "p_mcnemar_agree_holm": ("McNemar p-value on agreement, Holm-adjusted", "1"),
    "correct_b": ("inputs correct under the row only (-1: no labels)", "1"),
    "correct_c": ("inputs correct under the comparator only (-1: no labels)", "1"),
    "p_mcnemar_acc": ("exact McNemar p-value on accuracy, raw", "1"),
    "p_mcnemar_acc_holm": ("McNemar p-value on accuracy, Holm-adjusted", "1"),
    "mdd_log10": ("minimum detectable shift of the paired log10 errors, power 0.8 at "
                  "level alpha / m", "1"),
    "mdd_agreement": ("minimum detectable difference in agreement rate, power 0.8 at "
                      "level alpha / m", "1"),
}


def family_variables(comps: list[dict], alpha: float = 0.01) -> tuple[dict, dict]:
    """``(data_vars, attrs)`` of an :class:`xarray.Dataset` holding a comparison family
    over the dimension ``comparison`` (variables ``cmp_<field>``)."""
    data = {}
    for k in COMPARISON_FIELDS:
        vals = [c[k] for c in comps]
        dtype = str if k in ("row", "other", "relation") else \
            (np.int64 if k in ("n", "agree_b", "agree_c", "correct_b", "correct_c")
             else np.float64)
        ln, un = COMPARISON_ATTRS[k]
        data[f"cmp_{k}"] = ("comparison", np.array(vals, dtype=dtype),
                            {"long_name": ln, "units": un})
    m = sum(int(not np.isnan(c[k])) for c in comps
            for k in ("p_wilcoxon", "p_mcnemar_agree", "p_mcnemar_acc"))
    attrs = {"comparison_alpha": float(alpha), "comparison_family_size": int(m),
             "comparison_method": "Wilcoxon signed-rank on per-input log10 output error "
             "vs binary64; exact McNemar on top-1 agreement and accuracy; Holm over all "
             "tests of the table; MDD at power 0.8 and level alpha/m"}
    return data, attrs
