"""accsim.round against the exact Fraction reference, every mode and format, bit for bit.

Inputs are random and adversarial float64 values: midpoints and midpoints +- 1 ulp of
binary64, values just below powers of two, near overflow, the subnormal range of the
target and far below it, signed zeros, infinities and NaN. Stochastic rounding is
compared with the reference fed the same random word (``random_u64(seed, 0, i)``).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from helpers import same_bits as bits_equal
from hypothesis import given, settings
from hypothesis import strategies as st

import accsim
from accsim.kernels.rng import random_words
from accsim.kernels.rounding import _STREAM2
from accsim.numbers import codecs
from accsim.numbers import formats as F

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered")

import reference as R  # noqa: E402

MODES = list(accsim.rounding.MODES)
PRESETS = [accsim.format(n) for n in F.available_formats()]
CUSTOM = [
    accsim.FloatFormat.from_bits(5, 4),
    accsim.FloatFormat.from_precision(8, 31),
    accsim.FloatFormat.from_bits(4, 3, subnormals=False, name="e4m3_nosub"),
    accsim.FloatFormat.from_bits(8, 7, subnormals=False, name="bf16_nosub"),
    accsim.format("binary16").with_(saturate=True, name="binary16_sat"),
]
ALL = PRESETS + CUSTOM


def ref_fmt(fmt):
    return R.RefFormat(fmt.name, fmt.p, fmt.emin, fmt.emax, fmt.max, fmt.subnormals,
                       fmt.specials, fmt.saturate)


def assert_bits(got, want, x):
    ok = bits_equal(got, want)
    if not ok.all():
        i = np.flatnonzero(~ok)[:5]
        raise AssertionError(f"mismatch at x={x[i].tolist()}: got {got[i].tolist()}, "
                             f"want {want[i].tolist()}")


def adversarial(fmt, n_random=200, seed=0):
    """Hard float64 inputs for rounding into fmt (both signs)."""
    rng = np.random.default_rng(seed)
    emin, emax, p = fmt.emin, fmt.emax, fmt.p
    lo_e = max(emin - p - 3, -1074)
    # representable values spread over the range, their neighbours and the midpoints
    e = rng.integers(max(emin - p + 1, -1074), emax + 1, 60)
    sig = rng.integers(0, 1 << min(p - 1, 50), 60).astype(np.float64)
    v = np.ldexp(1.0 + sig / 2.0 ** min(p - 1, 50), e)
    v = np.concatenate([v, [fmt.max, fmt.smallest_normal, fmt.smallest_subnormal, 1.0]])
    v = np.asarray(accsim.round(v, fmt, "rz"))
    v = v[np.isfinite(v) & (v > 0)]
    nxt = np.asarray(accsim.round(np.nextafter(v, np.inf), fmt, "ru"))
    nxt = np.where(np.isfinite(nxt), nxt, 2 * fmt.max)
    mid = v + (nxt - v) / 2  # exact (no overflow: nxt <= 2 max)
    quarter = v + (nxt - v) / 4
    pieces = [v, mid, quarter, v + 3 * (nxt - v) / 4]
    for m in (mid, v):
        pieces += [np.nextafter(m, 0), np.nextafter(m, np.inf)]
    # just below / above powers of two and at them
    pw = np.ldexp(1.0, np.arange(lo_e, min(emax + 2, 1024)))
    pieces += [pw, np.nextafter(pw, 0), np.nextafter(pw, np.inf)]
    # near overflow
    mx = fmt.max
    ulp_max = math.ldexp(1.0, emax - p + 1)
    pieces.append(np.array([mx, np.nextafter(mx, np.inf), mx + ulp_max / 2,
                            np.nextafter(mx + ulp_max / 2, 0),
                            np.nextafter(mx + ulp_max / 2, np.inf), mx + ulp_max, 2 * mx,
                            1e300, np.finfo(np.float64).max]))
    # subnormal range of the target and far below it
    s = fmt.smallest_subnormal
    pieces.append(s * np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 3.0, 0.5 + 2**-40]))
    pieces.append(np.nextafter(s * np.array([0.5, 1.5, 0.25]), 0))
    pieces.append(np.array([1e-300, 5e-324, 2.2250738585072014e-308, 1e-310]))
    # random bit patterns: near the format's range and anywhere
    ee = rng.integers(max(lo_e + 1023, 1), min(emax + 1025, 2047), n_random)
    bits = (ee.astype(np.uint64) << np.uint64(52)) | rng.integers(
        0, 1 << 52, n_random, dtype=np.uint64)
    pieces.append(bits.view(np.float64))
    pieces.append(rng.integers(0, 2**63, n_random // 4, dtype=np.uint64).view(np.float64))
    x = np.concatenate([np.ravel(a) for a in pieces])
    x = x[np.isfinite(x)]
    x = np.concatenate([x, -x, [0.0, -0.0, np.inf, -np.inf, np.nan]])
    return x


def ref_u(mode, sr_bits, seed, n):
    """The random input the reference needs for element i (the accsim word)."""
    if mode != "sr":
        return [None] * n
    w = random_words(seed, 0, np.arange(n))
    if sr_bits is not None:
        return [int(a) >> (64 - sr_bits) for a in w]
    w2 = random_words(seed, int(_STREAM2), np.arange(n))
    return [Fraction(int(a), 2**64) + Fraction(int(b) >> 11, 2**117)
            for a, b in zip(w, w2, strict=True)]


def check_against_reference(x, fmt, mode, sr_bits=None, seed=7):
    got = accsim.round(x, fmt, mode, sr_bits=sr_bits, seed=seed)
    rf = ref_fmt(fmt)
    us = ref_u(mode, sr_bits, seed, x.size)
    want = np.array([R.ref_round(float(a), rf, mode, u, sr_bits)
                     for a, u in zip(x, us, strict=True)])
    assert_bits(got, want, x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", ALL, ids=str)
def test_round_matches_reference(fmt, mode):
    x = adversarial(fmt, n_random=150, seed=hash((fmt.name, mode)) & 0xFFFF)
    if fmt.specials == "e8m0":
        x = x[::2]  # ~5000 values with 8 p=1 modes are slow in Fraction: thin them
    check_against_reference(x, fmt, mode, sr_bits=8 if mode == "sr" else None)


@pytest.mark.parametrize("sr_bits", [1, 2, 4, 16, 53, 64, None])
@pytest.mark.parametrize("name", ["bfloat16", "binary16", "float8_e4m3fn", "float4_e2m1fn",
                                  "float8_e5m2fnuz"])
def test_sr_matches_reference(name, sr_bits):
    fmt = accsim.format(name)
    check_against_reference(adversarial(fmt, 100, 5)[::2], fmt, "sr", sr_bits, seed=11)


def test_float32_input_is_exact():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000).astype(np.float32)
    for mode in ("rne", "ru", "sr"):
        kw = {"sr_bits": 4} if mode == "sr" else {}
        assert bits_equal(accsim.round(x, "bfloat16", mode, **kw),
                          accsim.round(x.astype(np.float64), "bfloat16", mode, **kw)).all()


def test_scalar_and_shape():
    assert accsim.round(1.0 + 2.0**-9, "bf16") == 1.0
    assert isinstance(accsim.round(0.1, "fp16"), float)
    assert math.copysign(1, accsim.round(-1e-30, "fp16")) == -1
    assert accsim.round(-1e-30, "float8_e4m3fnuz") == 0.0
    assert math.copysign(1, accsim.round(-1e-30, "float8_e4m3fnuz")) == 1
    y = accsim.round(np.ones((3, 4, 5)), "fp16")
    assert y.shape == (3, 4, 5) and y.dtype == np.float64
    z = accsim.round(np.ones((5, 6))[:, ::2], "fp16")  # non-contiguous
    assert z.shape == (5, 3)


# ------------------------------------------------------------------ known pitfalls
def test_directed_rounding_is_not_computed_in_float64_first():
    """anchors.md #1: a value just below a bfloat16 number must round down in RD/RZ."""
    x = np.nextafter(1.0 + 2.0**-7, 0)
    assert accsim.round(x, "bf16", "rd") == 1.0
    assert accsim.round(x, "bf16", "rz") == 1.0
    assert accsim.round(x, "bf16", "ru") == 1.0 + 2.0**-7


def test_overflow_rules():
    """anchors.md #5: carry into the exponent, RZ of a huge value, saturation."""
    assert accsim.round(np.nextafter(65520.0, 0), "fp16") == 65504.0
    assert accsim.round(65520.0, "fp16") == np.inf  # tie at max + ulp/2 rounds to even
    assert accsim.round(1e10, "fp16", "rz") == 65504.0
    assert accsim.round(-1e10, "fp16", "ru") == -65504.0
    assert accsim.round(-1e10, "fp16", "rd") == -np.inf
    assert accsim.round(464.0, "float8_e4m3fn") == 448.0  # tie 448|480: even is 448
    assert math.isnan(accsim.round(np.nextafter(464.0, 500), "float8_e4m3fn"))
    assert accsim.round(463.9, "float8_e4m3fn") == 448.0
    assert accsim.round(1e10, "float8_e4m3fn", "rz") == 448.0
    assert accsim.round(np.inf, "float4_e2m1fn") == 6.0
    assert accsim.round(-np.inf, "float4_e2m1fn", "rz") == -6.0


def test_no_subnormal_format():
    fmt = CUSTOM[2]  # e4m3 without subnormals: below 2^-6 round onto {0, 2^-6}
    t = 2.0**-6
    assert accsim.round(t * 0.5, fmt) == 0.0  # tie -> even (0)
    assert accsim.round(np.nextafter(t * 0.5, 1), fmt) == t
    assert accsim.round(t * 0.01, fmt, "ru") == t
    assert accsim.round(t * 0.99, fmt, "rz") == 0.0


# ------------------------------------------------------------------ ml_dtypes from float32
ML_NAMES = ["bfloat16", "binary16", "float8_e4m3", "float8_e4m3fn", "float8_e4m3fnuz",
            "float8_e5m2", "float8_e5m2fnuz", "float6_e3m2fn", "float6_e2m3fn",
            "float4_e2m1fn"]


def float32_inputs(fmt, n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    # plus float32 values concentrated in the format's range
    e = rng.integers(max(fmt.emin - fmt.p - 2, -149) + 127, min(fmt.emax + 2, 128) + 127,
                     n).astype(np.uint32)
    near = (e << np.uint32(23)) | rng.integers(0, 1 << 23, n).astype(np.uint32)
    near |= rng.integers(0, 2, n).astype(np.uint32) << np.uint32(31)
    x = np.concatenate([bits, near]).view(np.float32)
    x32 = np.concatenate([x, adversarial(fmt, 50).astype(np.float32)])
    return x32[~np.isnan(x32)]


@pytest.mark.parametrize("name", ML_NAMES)
def test_rne_from_float32_matches_reference(name):
    """From float32 inputs (random bit patterns and values concentrated in the format's
    range), accsim.round and the ml_dtypes storage path to_ml_dtypes both agree bit for
    bit with the Fraction reference (a subsample: the reference is slow)."""
    fmt = accsim.format(name)
    x32 = float32_inputs(fmt)
    x32 = x32[np.random.default_rng(3).permutation(x32.size)[:1500]]
    want = np.array([R.ref_round(float(t), fmt) for t in x32])
    assert_bits(accsim.round(x32, fmt), want, x32)
    stored = F.from_ml_dtypes(codecs.to_ml_dtypes(x32.astype(np.float64), fmt))
    assert_bits(stored, want, x32)


# ------------------------------------------------------------------ property tests
f64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
PROP_FMTS = [accsim.format(n) for n in ("bfloat16", "binary16", "float8_e4m3fn",
                                        "float8_e5m2", "float4_e2m1fn", "tfloat32")]


@settings(max_examples=150, deadline=None)
@given(a=f64, b=f64, k=st.integers(0, len(PROP_FMTS) - 1),
       mode=st.sampled_from(["rne", "rna", "rz", "ru", "rd", "ro"]))
def test_monotone(a, b, k, mode):
    fmt = PROP_FMTS[k]
    lo, hi = min(a, b), max(a, b)
    r = accsim.round(np.array([lo, hi]), fmt, mode)
    if not np.isnan(r).any():
        assert r[0] <= r[1]


@settings(max_examples=200, deadline=None)
@given(x=f64, k=st.integers(0, len(PROP_FMTS) - 1))
def test_directed_bracket_and_nearest(x, k):
    fmt = PROP_FMTS[k]
    xs = np.array([x])
    d, u, z = (accsim.round(xs, fmt, m)[0] for m in ("rd", "ru", "rz"))
    if abs(x) <= fmt.max:
        assert d <= x <= u
        assert abs(z) <= abs(x)
        n = accsim.round(xs, fmt, "rne")[0]
        if math.isfinite(n):
            assert n in (d, u)
            half_gap = Fraction(u) / 2 - Fraction(d) / 2
            assert abs(Fraction(n) - Fraction(x)) <= half_gap
        for m in MODES:  # idempotence
            y = accsim.round(np.array([d]), fmt, m, seed=1)[0]
            assert y == d


def test_double_rounding_example_documented():
    """docs/formats.md example: 1 + 2^-8 + 2^-30 rounds once, up, to bfloat16 (Fraction
    reference), where a path through float32 lands on the midpoint and ties to 1.0."""
    x = 1 + 2.0**-8 + 2.0**-30
    assert R.ref_round(x, R.bfloat16()) == 1 + 2.0**-7
    assert accsim.round(x, "bfloat16") == 1 + 2.0**-7
    assert accsim.round(float(np.float32(x)), "bfloat16") == 1.0  # the midpoint ties


# ------------------------------------------------------------------ bad input
def test_bad_mode_and_sr_bits():
    x = np.ones(3)
    with pytest.raises(ValueError, match="valid modes: rne"):
        accsim.round(x, "fp16", "nearest")
    with pytest.raises(ValueError, match="only to mode='sr'"):
        accsim.round(x, "fp16", "rne", sr_bits=8)
    for bad in (0, 65, -1, 2.5, True):
        with pytest.raises(ValueError, match="sr_bits"):
            accsim.round(x, "fp16", "sr", sr_bits=bad)
    with pytest.raises(ValueError, match="valid names"):
        accsim.round(x, "fp12")


@pytest.mark.parametrize("bad", [np.arange(3), np.ones(2, complex), np.array(["a"]),
                                 np.ones(2, np.longdouble)])
def test_non_float64_inputs_rejected(bad):
    with pytest.raises(ValueError, match="float64 or float32"):
        accsim.round(bad, "fp16")


# ------------------------------------------------------------------ fast path == round_dd
FAST_FMTS = [accsim.format(n) for n in ("bfloat16", "binary16", "float8_e4m3fn",
                                        "float8_e4m3fnuz", "float8_e5m2", "float4_e2m1fn",
                                        "tfloat32", "binary32")] + CUSTOM


@pytest.mark.parametrize("fmt", FAST_FMTS, ids=str)
def test_fast_path_identical_to_round_dd(fmt):
    """The bit-pattern kernels (accsim/kernels/fastround.py) give the same bits as the
    generic round_dd on ~1.5 M random + adversarial values per format, every mode."""
    from accsim.numbers.rounding import _round_flat

    rng = np.random.default_rng(len(fmt.name))
    n = 150_000
    ee = rng.integers(max(fmt.emin - fmt.p - 70, -1074) + 1023, min(fmt.emax + 1030, 2047), n)
    bits = (ee.astype(np.uint64) << np.uint64(52)) | rng.integers(0, 1 << 52, n,
                                                                   dtype=np.uint64)
    bits |= rng.integers(0, 2, n).astype(np.uint64) << np.uint64(63)
    x = np.concatenate([bits.view(np.float64), adversarial(fmt, 50),
                        rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)])
    for mode in MODES:
        for r in ([0, 3, 8, 64] if mode == "sr" else [0]):
            m = accsim.rounding.mode_code(mode)
            a = np.empty_like(x)
            b = np.empty_like(x)
            _round_flat(x, a, fmt, m, r, 99)
            _round_flat(x, b, fmt, m, r, 99, fast=False)
            assert np.array_equal(a.view(np.uint64), b.view(np.uint64)), (mode, r)
