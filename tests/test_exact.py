"""accsim.numbers.exact against fractions.Fraction and mpmath (bits compared, never allclose)."""

from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest

from accsim.numbers import exact

TWO = Fraction(2)
MAXF = (2 - TWO**-52) * TWO**1023


@pytest.fixture(autouse=True, params=["long", "slices"])
def path(request, monkeypatch):
    """Every check runs twice: on the long accumulator alone, and with every product
    forced through the error-free slices (``SLICE_MIN_MACS = 0``)."""
    monkeypatch.setattr(exact, "SLICE_MIN_MACS", 0 if request.param == "slices" else 1 << 62)
    return request.param


def rn(f: Fraction) -> float:
    """Round a Fraction to nearest even binary64 (Python's int/Fraction float() is RNE;
    overflow beyond the RNE threshold gives inf)."""
    if abs(f) >= MAXF + TWO**970:
        return float("inf") if f > 0 else float("-inf")
    return float(f)


def fr_dot(a, b, c=0.0) -> Fraction:
    return sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b, strict=True)),
               Fraction(float(c)))


def bits(x):
    return np.asarray(x, np.float64).view(np.uint64)


def _wide(rng, n, lo=-1074, hi=1000, div=True):
    e = rng.integers(lo, hi, size=n)
    if div:
        e = e // rng.integers(1, 30, size=n)
    return np.ldexp(rng.standard_normal(n), e)


def test_dot_random_wide_exponents_vs_fraction():
    rng = np.random.default_rng(1)
    for t in range(300):
        n = int(rng.integers(1, 30))
        a = _wide(rng, n)
        b = _wide(rng, n, -1000)
        c = float(np.ldexp(rng.standard_normal(), int(rng.integers(-1074, 1020))))
        if t % 3 == 0:  # exact cancellation of the products leaves c
            a, b = np.concatenate([a, -a]), np.concatenate([b, b])
        got = exact.dot(a, b, c)
        want = rn(fr_dot(a, b, c))
        assert bits(got) == bits(want), (t, got, want)


def test_dot_adversarial_cancellation_and_spread():
    # huge + tiny - huge: the result is the tiny term only
    a = np.array([2.0**600, 2.0**-600, -(2.0**600), 3.0])
    b = np.array([2.0**400, 2.0**-474, 2.0**400, 2.0**-1074])  # products overflow/underflow
    want = rn(fr_dot(a, b))
    assert exact.dot(a, b) == want
    assert want == 2.0**-1074 * 4  # 2^-1074 + 3 * 2^-1074
    # TwoProd-needed cancellation: (1+2^-52)^2 - (1 + 2^-51) = 2^-104
    x = 1 + 2.0**-52
    assert exact.dot([x, -1.0], [x, 1 + 2.0**-51]) == 2.0**-104
    # products below the subnormal range sum to a representable value
    t = np.full(1 << 10, 2.0**-540)
    assert exact.dot(t, t) == 2.0**-1070
    # a product of two subnormals is far below 2^-1074: rounds to 0 or the smallest
    s = 2.0**-1074
    assert exact.dot([s], [s]) == 0.0
    assert exact.dot([s, 2.0**-538], [s, 2.0**-537]) == 2.0**-1074  # tie broken by s*s


def test_dot_ties_and_rounding():
    assert exact.dot([1.0, 1.0], [1.0, 2.0**-53]) == 1.0  # tie to even
    assert exact.dot([1.0, 1.0, 1.0], [1.0, 2.0**-53, 2.0**-300]) == 1 + 2.0**-52
    assert exact.dot([1 + 2.0**-52, 1.0], [1.0, 2.0**-53]) == 1 + 2.0**-51  # tie, odd -> up
    # subnormal tie: 2^-1075 is half of the smallest subnormal -> 0 (even)
    assert exact.dot([2.0**-538], [2.0**-537]) == 0.0
    assert exact.dot([3 * 2.0**-538], [2.0**-537]) == 2.0**-1073  # 1.5 ulp -> 2 ulp


def test_overflow_and_specials():
    big = 2.0**1023
    assert exact.dot([big, big], [1.0, 1.0]) == np.inf
    assert exact.dot([big, big, -big], [1.0, 1.0, 1.0]) == big  # intermediate overflow
    assert exact.dot([2.0**1000], [2.0**1000], -np.inf) == -np.inf
    assert np.isnan(exact.dot([np.inf], [0.0]))
    assert np.isnan(exact.dot([np.inf, 1.0], [1.0, 1.0], -np.inf))
    assert np.isnan(exact.dot([np.nan], [1.0]))
    assert exact.dot([np.inf, -1.0], [-2.0, 3.0]) == -np.inf
    assert exact.dot([], [], 5.0) == 5.0
    assert bits(exact.dot([1.0, -1.0], [1.0, 1.0])) == 0  # exact zero is +0


def test_matmul_vs_fraction_and_fast_path():
    rng = np.random.default_rng(7)
    A = _wide(rng, 5 * 9, -140, 120).reshape(5, 9)
    B = _wide(rng, 9 * 4, -140, 120).reshape(9, 4)
    C = _wide(rng, 5 * 4, -300, 100).reshape(5, 4)
    D = exact.matmul(A, B, C)
    for i in range(5):
        for j in range(4):
            assert bits(D[i, j]) == bits(rn(fr_dot(A[i], B[:, j], C[i, j])))
    # binary32 inputs take the fast path; compare with the general kernel and Fraction
    A32 = A.astype(np.float32).astype(np.float64)
    B32 = B.astype(np.float32).astype(np.float64)
    assert exact.products_exact_in_binary64(A32, B32)
    D32 = exact.matmul(A32, B32, C)
    hi, _ = exact.matmul_dd(A32, B32, C)
    np.testing.assert_array_equal(bits(D32), bits(hi))
    for i in range(5):
        for j in range(4):
            assert bits(D32[i, j]) == bits(rn(fr_dot(A32[i], B32[:, j], C[i, j])))


def test_matmul_ml_dtypes_inputs_and_long_k():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 3000)).astype(ml_dtypes.float8_e4m3fn)
    B = rng.standard_normal((3000, 2)).astype(ml_dtypes.bfloat16)
    D = exact.matmul(A, B)
    A64 = A.astype(np.float32).astype(np.float64)
    B64 = B.astype(np.float32).astype(np.float64)
    for i in range(3):
        for j in range(2):
            assert D[i, j] == rn(fr_dot(A64[i], B64[:, j]))


def test_against_mpmath_fdot():
    rng = np.random.default_rng(11)
    mpmath.mp.prec = 5000  # wide enough for every binary64 product sum here exactly
    try:
        for _ in range(40):
            n = int(rng.integers(2, 60))
            a = _wide(rng, n, -1000, 1000)
            b = _wide(rng, n, -1000, 1000)
            a[n // 2:] = -a[: n - n // 2]
            b[n // 2:] = b[: n - n // 2] * (1 + 2.0**-40)
            want = mpmath.fdot([mpmath.mpf(x) for x in a], [mpmath.mpf(y) for y in b])
            wantf = float(mpmath.mpf(want, rounding="n")) if want != 0 else 0.0
            assert exact.dot(a, b) == wantf
    finally:
        mpmath.mp.prec = 53


def test_matmul_dd_pair():
    rng = np.random.default_rng(5)
    A = _wide(rng, 6 * 7, -200, 200).reshape(6, 7)
    B = _wide(rng, 7 * 3, -200, 200).reshape(7, 3)
    hi, lo, ex = exact.matmul_dd(A, B, return_exact=True)
    for i in range(6):
        for j in range(3):
            S = fr_dot(A[i], B[:, j])
            assert hi[i, j] == rn(S)
            assert lo[i, j] == rn(S - Fraction(hi[i, j]))
            assert bool(ex[i, j]) == (Fraction(hi[i, j]) + Fraction(lo[i, j]) == S)
    # a case that is exact: a single binary64 product
    hi, lo, ex = exact.matmul_dd([[1 + 2.0**-52]], [[1 - 2.0**-53]], return_exact=True)
    assert ex[0, 0] and Fraction(hi[0, 0]) + Fraction(lo[0, 0]) == Fraction(1 + 2.0**-52) * \
        Fraction(1 - 2.0**-53)
    # and one that is not: 1 + 2^-200 + 2^-400 needs three doubles
    hi, lo, ex = exact.matmul_dd([[1.0, 1.0, 1.0]], [[1.0], [2.0**-200], [2.0**-400]],
                                 return_exact=True)
    assert not ex[0, 0] and hi[0, 0] == 1.0 and lo[0, 0] == 2.0**-200


def test_bad_input():
    with pytest.raises(ValueError, match="inner dimensions"):
        exact.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        exact.dot(np.ones(3), np.ones(4))


def test_long_general_path_carries_and_signs():
    # 3000 huge products (each beyond binary64) cancelled by 3000 negatives, a residue of 1,
    # in an order that forces many deferred carries and borrows
    x = 2.0**1000 * (1 + 2.0**-52)
    a = np.array([x] * 3000 + [-x] * 3000 + [1.0])
    b = np.array([2.0**1000 * (1 - 2.0**-53)] * 6000 + [1.0])
    assert exact.dot(a, b) == 1.0
    rng = np.random.default_rng(9)
    a = _wide(rng, 2500, -300, 300)
    b = _wide(rng, 2500, -300, 300)
    assert not exact.products_exact_in_binary64(a[None, :], b[:, None])
    assert bits(exact.dot(a, b, 1e-300)) == bits(rn(fr_dot(a, b, 1e-300)))
