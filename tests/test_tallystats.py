"""``accsim.kernels.tallystats.component_stats`` against the numpy expressions it
replaced (its module docstring), on arrays with zeros, ties, NaN and infinities in every
the maxima bit for bit, the counts exactly."""

import numpy as np
import pytest

from accsim.kernels.tallystats import component_stats

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 1e-300, 5e-324, 1e300, np.inf, -np.inf, np.nan])


def _numpy(c, e, b, s, p):
    """The slow reference: whole-array numpy, as the tally computed before the kernel."""
    with np.errstate(all="ignore"):
        err = np.abs(c - e)
        ratio = np.where(err == 0, 0.0, err / b)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        rel = np.where(err == 0, 0.0, err / np.abs(e))
        out_f = [max(0.0, float(np.max(ratio))) if ratio.size else 0.0,
                 float(np.max(np.concatenate([[0.0], rel])))]
        out_i = [int(np.sum(~(err <= b))), int(np.sum(~np.isfinite(c))),
                 int(np.sum(~(b < s))) if s.size else 0,
                 int(np.sum(err > p)) if p.size else 0]
    return out_f, out_i


def _draw(rng, n, special_rate):
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-5, 5, n)
    pick = rng.random(n) < special_rate
    x[pick] = rng.choice(SPECIAL, int(pick.sum()))
    return x


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("extras", [False, True])
def test_component_stats_is_the_numpy_reference(seed, extras):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 200))
    rate = (0.0, 0.02, 0.3)[seed % 3]
    e = _draw(rng, n, rate)
    with np.errstate(invalid="ignore"):  # inf - inf: a NaN computed value
        c = e + np.where(rng.random(n) < 0.3, 0.0, _draw(rng, n, rate) * 1e-3)
    if seed % 4 == 0:
        c = e.copy()  # every error 0: ratio and rel are 0, whatever the bound
    b = np.abs(_draw(rng, n, rate)) * 1e-2
    s = np.abs(_draw(rng, n, rate)) if extras else np.zeros(0)
    p = np.abs(_draw(rng, n, rate)) * 1e-3 if extras else np.zeros(0)
    f, i = np.zeros(2), np.zeros(4, np.int64)
    component_stats(c, e, b, s, p, f, i)
    want_f, want_i = _numpy(c, e, b, s, p)
    np.testing.assert_array_equal(f.view(np.uint64), np.array(want_f).view(np.uint64))
    assert list(i) == want_i
