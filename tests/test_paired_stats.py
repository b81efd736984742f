"""Label-free paired statistics: Holm against a hand-computed example, the minimum
detectable differences against simulations of the tests they describe, the comparison
family's pairing rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from accsim.analysis.stats import (
    comparison_family,
    holm,
    log10_error,
    mcnemar,
    mdd_mcnemar,
    mdd_wilcoxon,
    wilcoxon_paired,
)


def test_holm_hand_computed():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04,
    # raised to the running max 0.06); NaN is not a test and keeps m = 4
    p = [0.01, 0.04, 0.03, np.nan, 0.005]
    np.testing.assert_array_equal(holm(p), [0.03, 0.06, 0.06, np.nan, 0.02])
    # capped at 1, ties keep their order
    assert holm([0.5, 0.5, 0.9]).tolist() == [1.0, 1.0, 1.0]
    assert holm([]).size == 0


def test_holm_controls_the_familywise_error_by_simulation():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 10))  # every null true
    fwer = np.mean([(holm(row) < 0.05).any() for row in p])
    assert fwer <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)


def test_mdd_wilcoxon_has_the_stated_power_by_simulation():
    rng = np.random.default_rng(1)
    n, sd, alpha = 120, 0.7, 0.01
    shift = mdd_wilcoxon(sd, n, alpha)
    reps = 1500
    d = rng.normal(shift, sd, (reps, n))
    power = np.mean(wilcoxon(d, axis=1).pvalue < alpha)
    assert abs(power - 0.8) < 0.05, power
    # the formula: (z_0.995 + z_0.8) sd / sqrt(3 n / pi)
    assert shift == pytest.approx((2.5758293 + 0.8416212) * sd / np.sqrt(3 * n / np.pi),
                                  rel=1e-6)


def test_mdd_mcnemar_has_the_stated_power_by_simulation():
    rng = np.random.default_rng(2)
    n, psi, alpha = 400, 0.15, 0.01
    delta = mdd_mcnemar(psi, n, alpha)
    assert 0 < delta < psi
    # discordant pairs: b with prob (psi + delta)/2, c with (psi - delta)/2
    pb, pc = (psi + delta) / 2, (psi - delta) / 2
    reps, rej = 1500, 0
    for _ in range(reps):
        u = rng.uniform(size=n)
        a = u < pb
        b = (u >= pb) & (u < pb + pc)
        rej += mcnemar(a, b)[2] < alpha
    # the exact test is conservative against Connor's normal approximation
    assert 0.68 < rej / reps < 0.86, rej / reps
    # no room: a single pair cannot reach power 0.8 at 1 %
    assert mdd_mcnemar(0.5, 2, alpha) == np.inf


def test_log10_error_floor_and_wilcoxon_zero_differences():
    assert log10_error([0.0, 1e-3, np.inf, np.nan]).tolist() == [-20.0, -3.0, 20.0, 20.0]
    med, p, nz = wilcoxon_paired([1.0, 2.0], [1.0, 2.0])
    assert (med, p, nz) == (0.0, 1.0, 0)
    a = np.arange(30.0)
    med, p, nz = wilcoxon_paired(a - 1, a)
    assert med == -1 and nz == 30 and p < 1e-5


def test_comparison_family_pairs_controls_and_cheaper_uniforms():
    rng = np.random.default_rng(3)
    n = 200
    base = rng.uniform(1e-4, 1e-2, n)
    agree = np.ones(n, bool)

    def row(label, kind, cost, scale, matched=""):
        return {"label": label, "kind": kind, "matched_to": matched, "cost": cost,
                "error": base * scale * rng.uniform(0.9, 1.1, n), "agree": agree,
                "correct": agree}
    rows = [row("u8", "uniform", 1.0, 10), row("u16", "uniform", 3.0, 0.1),
            row("a", "adaptive", 2.0, 1), row("random@a", "random", 1.0, 8, "a"),
            row("random@a#1", "random", 1.0, 8, "a"),
            row("random-active@a", "random-active", 1.5, 5, "a"),
            row("oracle@a", "oracle", 1.0, 0.5, "a")]
    fam = comparison_family(rows)
    rel = [(c["relation"], c["other"]) for c in fam]
    assert rel == [("random", "random@a"), ("random-active", "random-active@a"),
                   ("oracle", "oracle@a"), ("uniform", "u8")]  # u16 costs more
    byrel = {c["relation"]: c for c in fam}
    assert byrel["random"]["median_log10_diff"] < -0.8  # a is about 8x better
    assert byrel["oracle"]["median_log10_diff"] > 0.2
    # Holm over 4 comparisons x 3 tests; McNemar p = 1 with no discordant input
    raw = np.array([[c[k] for k in ("p_wilcoxon", "p_mcnemar_agree", "p_mcnemar_acc")]
                    for c in fam])
    adj = np.array([[c[k + "_holm"] for k in ("p_wilcoxon", "p_mcnemar_agree",
                                              "p_mcnemar_acc")] for c in fam])
    np.testing.assert_array_equal(adj.ravel(), holm(raw.ravel()))
    assert np.all(adj >= raw) and byrel["random"]["p_wilcoxon_holm"] < 1e-10
    # the random row pools its two seeds: its Wilcoxon uses their mean log10 error
    pooled = (log10_error(rows[3]["error"]) + log10_error(rows[4]["error"])) / 2
    _, p, _ = wilcoxon_paired(log10_error(rows[2]["error"]), pooled)
    assert byrel["random"]["p_wilcoxon"] == p
    # MDD at level 0.01 / 12 (12 tests)
    d = log10_error(rows[2]["error"]) - pooled
    assert byrel["random"]["mdd_log10"] == pytest.approx(
        mdd_wilcoxon(np.std(d, ddof=1), n, 0.01 / 12))
