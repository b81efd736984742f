"""The Python surface a new user meets: ``accsim.matmul`` and its result object, the
short reprs of models and formats. The exact reference is checked against Fractions."""

from fractions import Fraction

import numpy as np
import pytest
from helpers import bits_equal

import accsim
import hwmodels


def _operands(rng, m, k, n):
    A = accsim.round(rng.standard_normal((m, k)), "binary16", "rne")
    B = accsim.round(rng.standard_normal((k, n)), "binary16", "rne")
    return A, B


def test_matmul_returns_computed_exact_bound_and_verdict():
    rng = np.random.default_rng(3)
    A, B = _operands(rng, 5, 40, 3)
    model = hwmodels.get("fp16-recursive-rne")
    r = accsim.matmul("fp16-recursive-rne", A, B)
    assert bits_equal(r.computed, model.matmul(A, B))
    # exact: A B rounded once to binary64 (Fraction sums, float() rounds to nearest)
    want = [[float(sum(Fraction(float(a)) * Fraction(float(b)) for a, b in
                       zip(A[i], B[:, j], strict=True))) for j in range(3)] for i in range(5)]
    assert bits_equal(r.exact, want)
    assert bits_equal(r.bound, model.error_bound(A, B))
    assert r.holds.shape == (5, 3) and r.holds.all()
    assert np.all(np.abs(r.computed - r.exact) <= r.bound)
    ratio = np.max(r.abs_error / r.bound)
    assert repr(r) == (f"VerifyResult(RecursiveSum(binary16, rne, exact products), 5x3, "
                       f"max error/bound {ratio:.3g}, 0 violation(s) of the deterministic "
                       "bound)")


def test_matmul_reports_a_violation_of_a_wrong_result():
    """``holds`` can fail: a result perturbed far beyond the bound is flagged."""
    rng = np.random.default_rng(4)
    A, B = _operands(rng, 2, 16, 2)
    model = accsim.get_model("fp16-recursive-rne")
    good = accsim.matmul(model, A, B)
    bad = accsim.verify.verify(model, A, B, computed=good.computed + 10 * good.bound + 1)
    assert not bad.holds.any() and "4 violation(s)" in repr(bad)


@pytest.mark.parametrize("name, want", [
    ("fp16-recursive-rne", "RecursiveSum(binary16, rne, exact products)"),
    ("bf16-sr-accumulator", "RecursiveSum(bfloat16, sr, 16 random bits, exact products)"),
    ("fp32-fma-chain", "RecursiveSum(binary32, rne, fused products)"),
    ("fp16-kahan", "KahanSum(binary16, rne)"),
])
def test_model_repr_is_short(name, want):
    assert repr(hwmodels.get(name)) == want


def test_every_model_repr_is_short():
    for name in hwmodels.available():
        m = hwmodels.get(name)
        acc = getattr(m, "accumulator", m)
        assert len(repr(acc)) < 120, (name, repr(acc))
        assert "source=" not in repr(acc)


def test_format_repr_is_short_and_names_non_defaults():
    assert repr(accsim.format("binary16")) == "FloatFormat('binary16', e5m10)"
    r = repr(accsim.format("float8_e4m3fnuz"))
    assert r.startswith("FloatFormat('float8_e4m3fnuz', e4m3, bias=8") and "fnuz" in r
