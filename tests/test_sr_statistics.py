"""Stochastic rounding: probabilities per random-bit count, determinism, thread counts.

Promise tested here (and documented in docs/rounding.md): element ``i`` of
``accsim.round(x, fmt, "sr", seed=s)`` uses the word ``random_u64(s, 0, i)`` with ``i`` the
flat C-order index *in the array passed*, so the result depends only on
``(seed, i, x[i])``: not on the number of threads nor on how the kernel chunks the work.
Rounding a slice renumbers its elements (``x[k:]`` starts again at counter 0).
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import accsim
from accsim.kernels.rng import random_words

N = 200_000


def up_frequency(frac, fmt_name, sr_bits, seed=1234):
    """Round N copies of 1 + frac * ulp(1); return the fraction that went up."""
    fmt = accsim.format(fmt_name)
    x = np.full(N, 1.0 + frac * fmt.eps)
    y = accsim.round(x, fmt, "sr", sr_bits=sr_bits, seed=seed)
    assert set(np.unique(y)) <= {1.0, 1.0 + fmt.eps}
    return float(np.mean(y > 1.0))


@pytest.mark.parametrize("sr_bits", [1, 2, 4, 8, 16, None])
@pytest.mark.parametrize("frac", [0.3, 0.7, 0.03, 0.5 + 2.0**-9, 1 - 2.0**-20])
def test_probability_is_truncated_fraction(frac, sr_bits):
    """P(up) = floor(f 2^r) / 2^r with r random bits, f exactly without (6 sigma)."""
    p = frac if sr_bits is None else math.floor(frac * 2**sr_bits) / 2**sr_bits
    got = up_frequency(frac, "bfloat16", sr_bits)
    sigma = math.sqrt(max(p * (1 - p), 1e-12) / N)
    if p == 0.0:
        assert got == 0.0
    else:
        assert abs(got - p) <= 6 * sigma + 1e-12, (got, p)


def test_small_r_bias_example():
    """With r = 1, f = 0.3 never rounds up (floor(0.6) = 0): the bias of few bits."""
    assert up_frequency(0.3, "binary16", 1) == 0.0
    assert up_frequency(0.3, "binary16", 2) == pytest.approx(0.25, abs=0.006)


def test_sr_unbiased_on_average():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N)
    y = accsim.round(x, "float8_e4m3fn", "sr", seed=5)
    err = (y - x) / np.maximum(np.abs(x), 2.0**-6)
    assert abs(err.mean()) < 6 * err.std() / math.sqrt(N)


def test_deterministic_per_seed_and_depends_on_seed():
    x = np.random.default_rng(1).standard_normal(100_000)
    a = accsim.round(x, "bfloat16", "sr", seed=3)
    b = accsim.round(x, "bfloat16", "sr", seed=3)
    c = accsim.round(x, "bfloat16", "sr", seed=4)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    assert not np.array_equal(a, c)


def test_element_uses_its_flat_index_word():
    """Result i depends only on (seed, i, x[i]): changing other elements or the array's
    shape (same C order) changes nothing; the decision is U < floor(f 2^r)."""
    x = np.random.default_rng(2).standard_normal(70_000)  # parallel path
    a = accsim.round(x, "binary16", "sr", sr_bits=8, seed=9)
    x2 = x.copy()
    x2[::2] = 0.5
    b = accsim.round(x2, "binary16", "sr", sr_bits=8, seed=9)
    assert np.array_equal(a[1::2], b[1::2])
    c = accsim.round(x.reshape(350, 200), "binary16", "sr", sr_bits=8, seed=9)
    assert np.array_equal(c.reshape(-1), a)
    small = accsim.round(x[:1000], "binary16", "sr", sr_bits=8, seed=9)  # serial path
    assert np.array_equal(small, a[:1000])
    # explicit check of the decision rule on a few elements
    fmt = accsim.format("binary16")
    w = random_words(9, 0, np.arange(50))
    for i in range(50):
        lo = accsim.round(x[i], fmt, "rz")
        ulp = accsim.round(x[i], fmt, "ru") - lo if x[i] > 0 else lo - accsim.round(
            x[i], fmt, "rd")
        if ulp == 0:
            continue
        f = abs(x[i] - lo) / ulp  # exact: both are binary64 and the difference is small
        away = (int(w[i]) >> 56) < math.floor(f * 256)
        assert (abs(a[i]) > abs(lo)) == away


_SCRIPT = """
import hashlib, numpy as np, accsim
x = np.random.default_rng(7).standard_normal(300_000)
h = hashlib.sha256()
for name in ("bfloat16", "float8_e4m3fn", "float8_e8m0fnu"):
    xx = np.abs(x) if name == "float8_e8m0fnu" else x
    for r in (8, None):
        h.update(accsim.round(xx, name, "sr", sr_bits=r, seed=11).tobytes())
x32 = x.astype(np.float32).astype(np.float64)
h.update(accsim.atoms.fma(x32, x32, x, "binary16", "sr", seed=3).tobytes())
print(h.hexdigest())
"""


def test_same_bits_with_one_and_two_threads():
    import accsim.numbers.atoms  # noqa: F401

    outs = []
    for t in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=t)
        res = subprocess.run([sys.executable, "-c", "import accsim.numbers.atoms\n" + _SCRIPT],
                             env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout.strip())
    assert outs[0] == outs[1]
