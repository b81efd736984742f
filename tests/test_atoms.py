"""accsim.numbers.atoms add/mul/fma: one rounding of the exact result, against Fraction."""


import numpy as np
import pytest
import reference as R  # noqa: E402
from helpers import same_bits

import accsim
import accsim.numbers.atoms as A
from accsim.kernels.rng import random_words

MODES = list(accsim.rounding.MODES)
TARGETS = ["bfloat16", "binary16", "float8_e4m3fn", "float8_e5m2fnuz", "binary32",
           "float4_e2m1fn"]


def ref_fmt(fmt):
    return R.RefFormat(fmt.name, fmt.p, fmt.emin, fmt.emax, fmt.max, fmt.subnormals,
                       fmt.specials, fmt.saturate)


def operands(n, seed):
    """binary16-valued operands over a wide range (products exact in binary64), plus
    zeros of both signs, infinities and values that cancel."""
    rng = np.random.default_rng(seed)
    a = accsim.round(rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n)), "binary16")
    b = accsim.round(rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n)), "binary16")
    c = accsim.round(rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n)), "binary32")
    a[:8] = [0.0, -0.0, 1.0, 1.0, np.inf, 3.0, -2.0, 1.0]
    b[:8] = [-0.0, -0.0, -1.0, 2.0**-8 + 2.0**-20, 1.0, -3.0, 2.0, 0.0]
    c[:8] = [0.0, -0.0, 1.0, -(2.0**-30), -np.inf, 9.0, 4.0, -0.0]
    return a, b, c


def sr_u(sr_bits, n, seed):
    w = random_words(seed, 0, np.arange(n))
    return [int(x) >> (64 - sr_bits) for x in w]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", TARGETS)
def test_atoms_match_reference(name, mode):
    fmt = accsim.format(name)
    rf = ref_fmt(fmt)
    n = 300
    a, b, c = operands(n, hash((name, mode)) & 0xFFFF)
    kw, us = {}, [None] * n
    if mode == "sr":
        kw = {"sr_bits": 16, "seed": 5}
        us = sr_u(16, n, 5)
    r = kw.get("sr_bits")
    checks = [
        (A.add(a, c, fmt, mode, **kw), [R.ref_add(x, z, rf, mode, u, r)
                                         for x, z, u in zip(a, c, us, strict=True)]),
        (A.mul(a, b, fmt, mode, **kw), [R.ref_mul(x, y, rf, mode, u, r)
                                         for x, y, u in zip(a, b, us, strict=True)]),
        (A.fma(a, b, c, fmt, mode, **kw), [R.ref_fma(x, y, z, rf, mode, u, r)
                                            for x, y, z, u in zip(a, b, c, us, strict=True)]),
    ]
    for k, (got, want) in enumerate(checks):
        ok = same_bits(got, np.array(want))
        bad = np.flatnonzero(~ok)
        assert bad.size == 0, (["add", "mul", "fma"][k], bad[:5], np.asarray(got)[bad[:5]],
                               np.array(want)[bad[:5]])


def test_single_rounding_where_double_rounding_differs():
    """1 * 2^-8 + (1 + 2^-30): the exact fma is just above the bfloat16 midpoint
    1 + 2^-8; rounding a*b + c to binary32 first would land on the midpoint and a
    second RNE would give 1.0."""
    a, b, c = 1.0, 2.0**-8, 1.0 + 2.0**-30
    exact = R.ref_fma(a, b, c, R.bfloat16())
    assert exact == 1 + 2.0**-7
    assert A.fma(a, b, c, "bfloat16") == exact
    x = np.float32(np.float64(a) * b + c)
    assert accsim.round(float(x), "bfloat16") == 1.0  # what double rounding gives
    # directed: a value just below 1 + 2^-7 must stay below in RD even though binary64
    # add would round it up to 1 + 2^-7 exactly
    s = A.add(1.0 + 2.0**-7, -(2.0**-80), "bfloat16", "rd")
    assert s == 1.0
    assert A.add(1.0 + 2.0**-7, -(2.0**-80), "bfloat16", "ru") == 1.0 + 2.0**-7


def test_broadcast_shapes_and_scalars():
    assert A.add(1.0, 2.0, "fp16") == 3.0
    y = A.mul(np.ones((3, 1)), np.arange(4.0), "bf16")
    assert y.shape == (3, 4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="valid modes"):
        A.add(1.0, 1.0, "fp16", "up")
    with pytest.raises(ValueError, match="valid names"):
        A.mul(1.0, 1.0, "fp13")
    with pytest.raises(ValueError, match="float64/float32"):
        A.add(np.arange(3), np.ones(3), "fp16")
    with pytest.raises(ValueError, match="only to mode='sr'"):
        A.fma(1.0, 1.0, 1.0, "fp16", "rz", sr_bits=3)
    with pytest.raises(ValueError, match="at most binary32 precision"):
        A.fma(0.1, 0.1, 0.0, "fp16", "rz")


def test_exact_zero_sum_sign():
    """IEEE 754-2019 6.3: x + (-x) is +0 except in roundTowardNegative (-0); +0 + +0 = +0
    and -0 + -0 = -0 in every mode (this was a bug in RD, fixed in accsim/atoms.py)."""
    for mode in MODES:
        kw = {"seed": 1} if mode == "sr" else {}
        want_neg = mode == "rd"
        assert np.signbit(A.add(1.0, -1.0, "fp16", mode, **kw)) == want_neg
        assert np.signbit(A.add(0.0, -0.0, "fp16", mode, **kw)) == want_neg
        assert not np.signbit(A.add(0.0, 0.0, "fp16", mode, **kw))
        assert np.signbit(A.add(-0.0, -0.0, "fp16", mode, **kw))
        assert np.signbit(A.fma(2.0, 3.0, -6.0, "fp16", mode, **kw)) == want_neg
        assert np.signbit(A.fma(-0.0, 3.0, -0.0, "fp16", mode, **kw))
    assert not np.signbit(A.add(1.0, -1.0, "float8_e4m3fnuz", "rd"))  # no -0 there


@pytest.mark.parametrize("fmt", ["binary64", "binary32", "binary16", "bfloat16", "float8_e4m3"])
@pytest.mark.parametrize("mode", ["rne", "rna", "rz", "ru", "rd", "ro"])
def test_mul_of_tiny_products_is_exact(fmt, mode):
    """Products below 2^-969 (where TwoProd's error term underflows in binary64) are still
    rounded once from the exact value: e.g. 2^-600 * 2^-600 rounds up to the smallest
    fp16 subnormal in RU, and subnormal binary64 products round in the right direction."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(60) * np.exp2(rng.integers(-1074, -400, 60).astype(float))
    b = rng.standard_normal(60) * np.exp2(rng.integers(-700, -100, 60).astype(float))
    a[:2] = [2.0**-600, 3 * 2.0**-540]
    b[:2] = [2.0**-600, 3 * 2.0**-500 * (1 + 2.0**-52)]
    got = A.mul(a, b, fmt, mode)
    ref_fmt = getattr(R, fmt)()
    want = np.array([R.ref_mul(float(x), float(y), ref_fmt, mode)
                     for x, y in zip(a, b, strict=True)])
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
