"""LAMP look-ahead selection (accsim.transformer.lamp) against exact enumeration."""

from __future__ import annotations

import itertools
import math
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


# ---------------------------------------------------------------- the three criteria
# Independent, obvious implementations: one row at a time, Python floats, math.fsum.

def _slow_p(row, ok):
    m = max(x for x, v in zip(row, ok, strict=True) if v)
    e = [math.exp(x - m) if v else 0.0 for x, v in zip(row, ok, strict=True)]
    den = math.fsum(e)
    return [x / den for x in e]


def _slow_v2(row, ok, tau):
    p = _slow_p(row, ok)
    return [bool(v and 2 * pj * (1 - pj) * abs(x) > tau)
            for x, pj, v in zip(row, p, ok, strict=True)]


def _slow_relaxed(row, ok, tau):
    m = max(x for x, v in zip(row, ok, strict=True) if v)
    g = [abs(x) * math.exp(x - m) if v else 0.0 for x, v in zip(row, ok, strict=True)]
    top = max(g)
    return [bool(v and gj > tau * top) for gj, v in zip(g, ok, strict=True)]


def _slow_v1(row, ok, tau):
    p = _slow_p(row, ok)
    idx = sorted((j for j in range(len(row)) if ok[j]), key=lambda j: (-p[j], j))
    for k in range(len(idx) + 1):
        rest = [Fraction(p[j]) for j in idx[k:]]
        A = 1 + sum(rest) - 2 * min(rest) if rest else Fraction(0)
        if A <= Fraction(tau):
            return [j in idx[:k] for j in range(len(row))]
    raise AssertionError("unreachable: A = 0 for the full set")


SLOW = {"lamp-v1": _slow_v1, "lamp": _slow_v2, "lamp-relaxed": _slow_relaxed}
TAUS = {"lamp-v1": (1.2, 1.6, 1.9), "lamp": (0.05, 0.3, 1.0),
        "lamp-relaxed": (0.05, 0.2, 0.5)}


def test_registry_holds_exactly_the_three_criteria():
    assert tuple(lamp.CRITERIA) == ("lamp-v1", "lamp", "lamp-relaxed")
    with pytest.raises(ValueError, match="unknown LAMP criterion 'lamp-v3'; valid: "
                                         "lamp-v1, lamp, lamp-relaxed"):
        lamp.check_criterion("lamp-v3")
    with pytest.raises(ValueError, match="already registered"):
        lamp.register_criterion("lamp", tau_range=(0, 1, True), summary="")(lambda *a: a)


@pytest.mark.parametrize("name, tau, match", [
    ("lamp-v1", 0.99, r"lamp-v1 tau must be in \[1, 2\]"),
    ("lamp", 0.0, r"lamp tau must be in \(0, inf\]"),
    ("lamp", -1.0, "lamp tau"),
    ("lamp-relaxed", -0.1, r"lamp-relaxed tau must be in \[0, inf\]"),
    ("lamp", float("nan"), "lamp tau"),
])
def test_each_criterion_checks_its_tau(name, tau, match):
    with pytest.raises(ValueError, match=match):
        lamp.select(name, np.zeros((1, 3)), tau)


@pytest.mark.parametrize("name", list(SLOW))
@pytest.mark.parametrize("causal", [False, True])
def test_criterion_matches_the_slow_implementation(name, causal):
    rng = np.random.default_rng(11)
    T = 24
    s = rng.standard_normal((3, T, T)) * rng.choice([0.5, 2.0, 6.0], (3, 1, 1))
    valid = np.tril(np.ones((T, T), bool)) if causal else np.ones((T, T), bool)
    valid = np.broadcast_to(valid, s.shape)
    picked = 0
    for tau in TAUS[name]:
        got = lamp.select(name, s, tau, valid)
        want = np.array([[SLOW[name](list(map(float, row)), list(map(bool, ok)), tau)
                          for row, ok in zip(sh, vh, strict=True)]
                         for sh, vh in zip(s, valid, strict=True)])
        np.testing.assert_array_equal(got, want)
        assert not np.any(got & ~valid)
        picked += int(got.sum())
        assert got.sum() < valid.sum()  # the rule selects, it does not take everything
    assert picked > 0


def test_relaxed_rule_is_shift_safe_and_scale_of_the_paper():
    # |s| exp(s) compared on the raw scores: a large common score does not overflow
    s = np.array([[800.0, 799.0, 0.0, -3.0]])
    got = lamp.select("lamp-relaxed", s, 0.3)
    g = np.abs(s[0]) * np.exp(s[0] - 800.0)  # exp(-800) factored out of both sides
    np.testing.assert_array_equal(got[0], g > 0.3 * g.max())
    np.testing.assert_array_equal(got[0], [True, True, False, False])


def test_random_control_draws_only_valid_scores_with_the_rules_counts():
    rng = np.random.default_rng(5)
    T = 16
    valid = np.tril(np.ones((T, T), bool))
    s = rng.standard_normal((T, T)) * 3
    rule = lamp.select("lamp", s, 0.1, valid)
    counts = rule.sum(axis=1)
    assert counts.sum() > 0
    for seed in range(5):
        r = lamp.random_select(counts, valid, np.random.default_rng(seed))
        np.testing.assert_array_equal(r.sum(axis=1), counts)
        assert not np.any(r & ~valid)
    # a row can hold at most its valid keys
    with pytest.raises(ValueError, match="more scores than it has valid keys"):
        lamp.random_select(np.full(T, 2), valid, rng)
    o = lamp.oracle_select(counts, np.abs(rng.standard_normal((T, T))), valid)
    np.testing.assert_array_equal(o.sum(axis=1), counts)
    assert not np.any(o & ~valid)
    # the random control is uniform over the valid keys: row T-1 has T of them
    hits = np.zeros(T)
    for seed in range(400):
        hits += lamp.random_select(np.array([1]), valid[-1:], np.random.default_rng(seed))[0]
    assert hits.min() > 0 and hits.max() < 3 * 400 / T


# ------------------------------------------------------- the paper's low-precision model
@pytest.mark.parametrize("m", [2, 5, 10, 22])
def test_m_bit_recursive_model_against_fractions(m):
    """The scores model of configs/lamp_paper.toml (recursive, acc_format e8m<m>, exact
    products) is the recursive sum of binary32 operands with the significand rounded to
    m fraction bits after every addition: checked bit for bit against exact rationals."""
    from accsim.transformer.minilm_run import m_bits_model
    from tests.reference import RefFormat, _ieee_max, ref_recursive, ref_round

    model = m_bits_model(m)
    assert model.acc_format.mantissa_bits == m and model.acc_format.exponent_bits == 8
    rng = np.random.default_rng(m)
    A = rng.standard_normal((5, 32)).astype(np.float32).astype(np.float64)
    B = (rng.standard_normal((32, 4)) * 3).astype(np.float32).astype(np.float64)
    got = model.matmul(A, B, np.zeros((5, 4)))
    fmt = RefFormat(f"e8m{m}", m + 1, -126, 127, _ieee_max(m + 1, 127))
    want = np.array([[ref_recursive(list(A[i]), list(B[:, j]), 0.0, fmt)
                      for j in range(4)] for i in range(5)])
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    # the scores are rounded to m bits too (round to nearest even)
    from accsim.numbers.rounding import round as acc_round

    x = (rng.standard_normal(50) * 10).astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(acc_round(x, f"e8m{m}", "rne"),
                                  [ref_round(float(v), fmt) for v in x])
    # fewer bits, larger error than binary32 accumulation (not a no-op)
    if m < 22:
        assert np.any(got != (A @ B).astype(np.float32))


def test_custom_format_names():
    from accsim import format as get_format

    f = get_format("e8m5")
    assert (f.exponent_bits, f.mantissa_bits, f.bias, f.p) == (8, 5, 127, 6)
    with pytest.raises(ValueError, match="ambiguous; name one of float8_e4m3"):
        get_format("e4m3")
    with pytest.raises(ValueError, match="mantissa_bits must be an integer in 0..52"):
        get_format("e8m60")


# ------------------------------------------------------- the runner: valid scores only
def _softmax(runner, s, layer):
    return lamp.softmax_rows(s)


def _masked(valid):
    def sm(runner, s, layer):
        return lamp.masked_softmax(s, valid)
    return sm


@pytest.mark.parametrize("kind", ["lamp", "lamp-relaxed", "lamp-v1"])
def test_runner_recomputes_the_selected_scores_and_counts_valid_ones(kind):
    from accsim.numbers.rounding import round as acc_round
    from accsim.transformer.minilm_run import m_bits_model
    from accsim.transformer.op_runner import AttentionPolicy, SimRunner
    from accsim.transformer.opclass import Float64, OpModels

    tau = {"lamp": 0.1, "lamp-relaxed": 0.3, "lamp-v1": 1.8}[kind]
    rng = np.random.default_rng(2)
    T, d = 20, 32
    Q = rng.standard_normal((T, d)).astype(np.float32).astype(np.float64)
    K = rng.standard_normal((T, d)).astype(np.float32).astype(np.float64)
    valid = np.tril(np.ones((T, T), bool))
    low = m_bits_model(4)
    ops = OpModels(Float64(), scores=low)
    scale = 1 / math.sqrt(d)
    # what the runner must do, written out
    s_low = acc_round((low.matmul(Q, K.T, np.zeros((T, T))) * scale).astype(np.float32)
                      .astype(np.float64), "e8m4", "rne")
    s_high = ((Q @ K.T) * scale).astype(np.float32).astype(np.float64)
    mask = lamp.select(kind, s_low, tau, valid)
    assert 0 < mask.sum() < valid.sum()
    want = lamp.masked_softmax(np.where(mask, s_high, s_low), valid)
    r = SimRunner(ops, attention=AttentionPolicy(kind, Float64(), tau=tau,
                                                 score_format="e8m4"))
    r.begin([(0, T)], [0])
    got = r.attention_probs(Q, K, scale, _masked(valid), valid=valid)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    assert r.tally.components["scores"] == valid.sum()
    assert r.tally.recomputed["scores"] == mask.sum()
    # the random control: same count per row, valid scores only
    rc = SimRunner(ops, attention=AttentionPolicy("random", Float64(), tau=tau, rule=kind,
                                                  score_format="e8m4"), seed=3)
    rc.begin([(0, T)], [0])
    rc.attention_probs(Q, K, scale, _masked(valid), valid=valid)
    assert rc.tally.recomputed["scores"] == mask.sum()
    assert rc.tally.components["scores"] == valid.sum()


def test_attention_policy_rejects_bad_combinations():
    from accsim.transformer.op_runner import AttentionPolicy
    from accsim.transformer.opclass import Float64

    with pytest.raises(ValueError, match="needs the 'rule' it matches"):
        AttentionPolicy("random", Float64(), tau=0.1)
    with pytest.raises(ValueError, match="unknown LAMP criterion"):
        AttentionPolicy("random", Float64(), tau=0.1, rule="nope")
    with pytest.raises(ValueError, match="needs 'tau'"):
        AttentionPolicy("lamp", Float64())
    with pytest.raises(ValueError, match=r"lamp-v1 tau must be in \[1, 2\]"):
        AttentionPolicy("random", Float64(), tau=0.3, rule="lamp-v1")
    with pytest.raises(ValueError, match="unknown attention policy"):
        AttentionPolicy("lamp-v3", Float64(), tau=0.3)
