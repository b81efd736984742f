"""Strategy decisions on hand-made layers (a fake context: no accumulator kernels)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from accsim.run.strategies import Adaptive, MultiLevel, Uniform, bound_constant


@dataclass(frozen=True)
class FakeModel:
    """A model whose results are given: ``value`` for matmul, ``absval`` for |W||x|."""

    name: str
    p: int
    value: np.ndarray
    absval: np.ndarray
    const: float
    pconst: float = 0.0

    def describe(self):
        return {"family": "fake", "name": self.name, "c": self.const, "pc": self.pconst}

    def cost_bits(self, n):
        return float(self.p * n)

    def error_bound(self, A, B, C, kind="deterministic", lam=None):
        c = self.const if kind == "deterministic" else self.pconst
        return c * (np.abs(A) @ np.abs(B) + np.abs(C))


class FakeCtx:
    n = 4
    activation = "relu"
    has_bias = True

    def __init__(self, activation="relu"):
        self.activation = activation
        self.calls = []

    def compute(self, m):
        self.calls.append(("full", m.name))
        return m.value

    def compute_abs(self, m):
        self.calls.append(("abs", m.name))
        return m.absval

    def compute_selected(self, m, mask):
        self.calls.append(("sel", m.name, int(mask.sum())))
        return np.where(mask, m.value, np.nan)

    def kappa_phi(self, z):
        import networks

        return networks.kappa(self.activation, z)


V_LOW = np.array([[1.0, -0.5, 0.01, 2.0], [-3.0, 0.2, 10.0, -0.001]])
ABS = np.array([[1.0, 4.0, 1.0, 2.0], [3.0, 0.3, 10.0, 1.0]])  # kappa_v_hat = ABS/|v|


def _models(c_low=0.1):
    lo = FakeModel("lo", 4, V_LOW, ABS, c_low)
    hi = FakeModel("hi", 11, V_LOW + 100.0, ABS, 0.001)
    top = FakeModel("top", 24, V_LOW + 200.0, ABS, 1e-6)
    return lo, hi, top


def test_predicted_criterion_selects_by_condition_product():
    lo, hi, _ = _models()
    c = bound_constant(lo, 4)
    assert c == pytest.approx(0.1)
    # ReLU: kappa_phi = 1 where v > 0, 0 where v < 0; prediction c * ABS/|v|
    pred = np.where(V_LOW > 0, c * ABS / np.abs(V_LOW), 0.0)
    for tau in (0.05, 0.1, 1.0, 5.0, 20.0):
        ctx = FakeCtx()
        d = Adaptive(lo, hi, tau).layer(ctx)
        want = ~(pred < tau)
        np.testing.assert_array_equal(d.level == 1, want)
        np.testing.assert_array_equal(d.v_hat, np.where(want, V_LOW + 100.0, V_LOW))
        assert d.info["criterion"] == "predicted"
        assert ("abs", "lo") in ctx.calls  # the estimate ran on the low model
        assert d.cost.estimate_bits == V_LOW.size * lo.cost_bits(5)


def test_authors_criterion():
    lo, hi, _ = _models()
    for tol in (1.0, 0.5, 0.3, 0.1):
        d = Adaptive(lo, hi, tol, criterion="authors").layer(FakeCtx())
        want = (V_LOW > 0) & (1.0 / np.abs(V_LOW) > tol)
        np.testing.assert_array_equal(d.level == 1, want)
        assert d.info["criterion"] == "authors"


def test_guard_band_catches_relu_sign_flip():
    lo, hi, _ = _models(c_low=0.5)
    # component (1, 3): v_hat = -0.001, |v_hat| < 0.5 * 1.0: inside the guard band
    plain = Adaptive(lo, hi, tau=np.float64(1e9)).layer(FakeCtx())
    assert plain.level[1, 3] == 0
    guarded = Adaptive(lo, hi, tau=1e9, guard=True).layer(FakeCtx())
    want = ~(np.abs(V_LOW) > 0.5 * ABS)
    np.testing.assert_array_equal(guarded.level == 1, want)
    assert guarded.level[1, 3] == 1


def test_multilevel_picks_cheapest_level_meeting_tau():
    lo, hi, top = _models()
    tau = 0.05
    d = MultiLevel([lo, hi, top], tau).layer(FakeCtx("identity"))
    kv = ABS / np.abs(V_LOW)
    want = np.where(0.1 * kv < tau, 0, np.where(0.001 * kv < tau, 1, 2))
    np.testing.assert_array_equal(d.level, want)
    np.testing.assert_array_equal(d.v_hat, V_LOW + 100.0 * want)
    counts = [(want == k).sum() for k in range(3)]
    assert d.cost.per_level == counts
    assert d.cost.recompute_bits == counts[1] * 11 * 5 + counts[2] * 24 * 5


def test_auto_constant_falls_back_to_probabilistic_when_infinite():
    lo = FakeModel("lo-inf", 4, V_LOW, ABS, math.inf, pconst=0.3)
    hi = FakeModel("hi", 11, V_LOW + 1, ABS, 0.001)
    d = Adaptive(lo, hi, tau=1.0).layer(FakeCtx())
    assert d.info["constant_kind"] == "probabilistic"
    assert d.info["constant"] == pytest.approx(0.3)
    d = Adaptive(lo, hi, tau=1.0, constant="deterministic").layer(FakeCtx())
    assert d.level[V_LOW > 0].all()  # infinite constant: every positive recomputed


def test_uniform_and_validation():
    lo, _, _ = _models()
    d = Uniform(lo).layer(FakeCtx())
    assert (d.level == 0).all() and d.cost.estimate_bits == 0
    with pytest.raises(ValueError, match="criterion"):
        Adaptive(lo, lo, 1.0, criterion="nope")
    with pytest.raises(ValueError, match="tau"):
        Adaptive(lo, lo, -1.0)
    with pytest.raises(ValueError, match="tau"):
        Adaptive(lo, lo, float("nan"))
    with pytest.raises(ValueError, match="levels"):
        MultiLevel([lo], 1.0)
