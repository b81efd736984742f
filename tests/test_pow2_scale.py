"""The one power-of-two scale rule (accsim.graph.scaling.pow2_scale), used per image by
the CNN graphs and per tensor by MiniLM, against exact rationals."""

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accsim.graph.scaling import pow2_scale
from accsim.transformer.opclass import pow2_scale as tensor_scale

FMAX = (448.0, 57344.0, 65504.0, 240.0, 6.0, float(np.finfo(np.float32).max))


def ref_scale(amax: float, fmax: float) -> float:
    """Largest 2^s (s <= 1023) with amax 2^s <= fmax, by exact rationals; 1 for 0/inf/nan."""
    if not (np.isfinite(amax) and amax > 0):
        return 1.0
    a, f = Fraction(amax), Fraction(fmax)
    s = 1023
    while a * Fraction(2) ** s > f:
        s -= 1
    return float(Fraction(2) ** s) if s >= 0 else float(Fraction(1, 2 ** -s))


EDGES = [0.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308, 1e-310, 1e-300,
         0.5, 1.0, 448.0, 448.0 * (1 + 2**-52), 449.0, 447.9999999999999, 896.0, 224.0,
         1e300, np.finfo(np.float64).max, 3.0, 2**-1074 * 3]


def test_edges_against_fractions():
    for fmax in FMAX:
        got = pow2_scale(np.array(EDGES), fmax)
        want = [ref_scale(a, fmax) for a in EDGES]
        assert got.view(np.uint64).tolist() == np.array(want).view(np.uint64).tolist(), fmax


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
       st.sampled_from(FMAX))
def test_random_against_fractions(amax, fmax):
    assert float(pow2_scale(amax, fmax)) == ref_scale(amax, fmax)


def test_tensor_scale_is_the_same_rule():
    rng = np.random.default_rng(7)
    for _ in range(50):
        X = rng.standard_normal((4, 5)) * 2.0 ** rng.integers(-60, 60)
        assert tensor_scale(X, 448.0) == float(pow2_scale(np.max(np.abs(X)), 448.0))
    assert tensor_scale(np.zeros((2, 2)), 448.0) == 1.0
