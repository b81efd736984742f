"""LAMP look-ahead selection (accsim.transformer.lamp) against exact enumeration."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from accsim.transformer import lamp


def _amp_fraction(p, S):
    """1 + sum_{j not in S} p_j - 2 min_{j not in S} p_j in exact rational arithmetic."""
    rest = [Fraction(float(p[j])) for j in range(len(p)) if j not in S]
    if not rest:
        return Fraction(0)
    return 1 + sum(rest) - 2 * min(rest)


def test_amplification_matches_exact_enumeration():
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 9):
        p = lamp.softmax_rows(rng.standard_normal(n) * 3)
        A = lamp.amplification(p)
        order = np.argsort(-p, kind="stable")
        for k in range(n + 1):
            exact = _amp_fraction(p, set(order[:k].tolist()))
            assert abs(A[k] - float(exact)) <= 4 * 2.0**-53 * (1 + n)


def test_amplification_is_the_first_order_worst_case():
    """max_i |dp_i / p_i| over all sign patterns of |ds_j| = delta (j not in S) equals
    A(S) delta to first order: the rule's quantity is attained, not just a bound."""
    rng = np.random.default_rng(2)
    s = rng.standard_normal(6) * 2
    p = lamp.softmax_rows(s)
    order = np.argsort(-p, kind="stable")
    A = lamp.amplification(p)
    delta = 1e-7
    for k in range(0, 6):
        out = order[k:]
        worst = 0.0
        for signs in itertools.product((-1.0, 1.0), repeat=out.size):
            ds = np.zeros(6)
            ds[out] = delta * np.array(signs)
            q = lamp.softmax_rows(s + ds)
            worst = max(worst, float(np.max(np.abs(q - p) / p)))
        assert worst / delta == pytest.approx(A[k], rel=1e-5)


def test_selection_rule_and_extremes():
    p = np.array([[0.5, 0.3, 0.15, 0.05]])
    # A_0 = 1 + 1 - 0.1 = 1.9, A_1 = 1 + 0.5 - 0.1 = 1.4, A_2 = 1.2 - 0.1 = 1.1,
    # A_3 = 1.05 - 0.1 = 0.95, A_4 = 0
    assert lamp.amplification(p)[0] == pytest.approx([1.9, 1.4, 1.1, 0.95, 0.0])
    assert lamp.lamp_counts(p, 2.0)[0] == 0
    assert lamp.lamp_counts(p, 1.9)[0] == 0
    assert lamp.lamp_counts(p, 1.5)[0] == 1
    assert lamp.lamp_counts(p, 1.1)[0] == 2
    assert lamp.lamp_counts(p, 1.0)[0] == 3
    np.testing.assert_array_equal(lamp.lamp_select(p, 1.1), [[True, True, False, False]])
    # unsorted row: the largest probabilities are selected
    q = p[:, ::-1]
    np.testing.assert_array_equal(lamp.lamp_select(q, 1.1), [[False, False, True, True]])


def test_ties_take_lower_index_first():
    p = np.array([[0.375, 0.375, 0.25]])  # exact binary fractions
    # A_1 = 1 + 0.625 - 0.5 = 1.125
    np.testing.assert_array_equal(lamp.lamp_select(p, 1.125), [[True, False, False]])
    np.testing.assert_array_equal(lamp.lamp_select(p[:, [2, 1, 0]], 1.125),
                                  [[False, True, False]])


@pytest.mark.parametrize("tau", [0.99, 2.01, float("nan")])
def test_tau_out_of_range(tau):
    with pytest.raises(ValueError, match="tau must be in"):
        lamp.lamp_counts(np.array([[0.5, 0.5]]), tau)


def test_controls_match_counts():
    rng = np.random.default_rng(3)
    counts = np.array([0, 1, 3, 5])
    m = lamp.random_select(counts, 5, rng)
    np.testing.assert_array_equal(m.sum(axis=1), counts)
    err = np.array([[1.0, 5.0, 2.0, np.nan, 0.0]] * 4)
    o = lamp.oracle_select(counts, err)
    np.testing.assert_array_equal(o.sum(axis=1), counts)
    # NaN error first, then 5, then 2
    np.testing.assert_array_equal(o[2], [False, True, True, True, False])
