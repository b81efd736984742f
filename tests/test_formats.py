"""Formats: parameters, exhaustive encode/decode, ml_dtypes interop, bad input.

The oracle is ``tests/reference.py`` (exact ``Fraction`` arithmetic, written
independently of accsim) and ml_dtypes' own decoding of every bit pattern.
"""

import math

import ml_dtypes
import numpy as np
import pytest
import reference as R  # noqa: E402
from helpers import bits_equal

import accsim
from accsim.numbers import codecs
from accsim.numbers import formats as F

SMALL = [n for n in F.available_formats() if F.format(n).bits <= 16]
REF_PRESETS = {c().name: c() for c in R.ALL_FORMATS}


def ref_fmt(fmt):
    """The reference description of an accsim format (built from its parameters)."""
    return R.RefFormat(fmt.name, fmt.p, fmt.emin, fmt.emax, fmt.max, fmt.subnormals,
                       fmt.specials, fmt.saturate)


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("name", F.available_formats())
def test_preset_parameters_match_reference(name):
    """Every preset agrees with the independently written reference description."""
    fmt, ref = accsim.format(name), REF_PRESETS[name]
    assert (fmt.p, fmt.emin, fmt.emax, fmt.max, fmt.subnormals, fmt.specials,
            fmt.saturate) == (ref.p, ref.emin, ref.emax, ref.max, ref.subnormals,
                              ref.specials, ref.saturate)


@pytest.mark.parametrize("name", F.available_formats())
def test_finfo_style_properties(name):
    fmt = accsim.format(name)
    assert fmt.eps == 2.0 ** (1 - fmt.p)
    assert fmt.u == fmt.eps / 2
    assert fmt.smallest_normal == 2.0**fmt.emin
    if fmt.subnormals:
        assert fmt.smallest_subnormal == 2.0 ** (fmt.emin - fmt.p + 1)
    if fmt.bits <= 16 and name in REF_PRESETS:
        # against every code decoded by the independent reference
        vals = [R.ref_decode(c, REF_PRESETS[name]) for c in range(1 << fmt.bits)]
        finite = sorted({abs(v) for v in vals if math.isfinite(v)})
        assert finite[-1] == fmt.max
        if fmt.subnormals:
            assert finite[1] == fmt.smallest_subnormal  # finite[0] is zero
        assert 1.0 in finite and min(v for v in finite if v > 1.0) - 1.0 == fmt.eps


def test_e4m3_variants_are_distinct():
    """anchors.md #6: the three "E4M3" formats differ in max, inf, bias and -0."""
    ieee, fn, fnuz = (accsim.format(n) for n in
                      ("float8_e4m3", "float8_e4m3fn", "float8_e4m3fnuz"))
    assert (ieee.max, fn.max, fnuz.max) == (240.0, 448.0, 240.0)
    assert ieee.has_inf and not fn.has_inf and not fnuz.has_inf
    assert (ieee.bias, fn.bias, fnuz.bias) == (7, 7, 8)
    assert fn.has_negative_zero and not fnuz.has_negative_zero
    assert fnuz.smallest_subnormal == 2.0**-10 and fn.smallest_subnormal == 2.0**-9


@pytest.mark.parametrize("alias,name", list(F.ALIASES.items()))
def test_aliases(alias, name):
    assert accsim.format(alias) is accsim.format(name)
    assert accsim.format(alias.upper()) is accsim.format(name)


def test_custom_formats():
    f = accsim.FloatFormat.from_bits(5, 4)
    assert (f.p, f.emin, f.emax, f.bias) == (5, -14, 15, 15)
    assert f.max == (2 - 2.0**-4) * 2.0**15
    g = accsim.FloatFormat.from_precision(8, 31)
    assert (g.p, g.emin, g.emax) == (8, -30, 31)
    assert g.max == (2 - 2.0**-7) * 2.0**31
    h = accsim.FloatFormat.from_bits(4, 3, subnormals=False)
    assert h.smallest_subnormal == h.smallest_normal == 2.0**-6
    s = accsim.format("binary16").with_(saturate=True)
    assert s.kernel_params()[4] == F.OVF_SAT and not s.has_inf


@pytest.mark.parametrize("bad", ["fp7", "e4m3", "", "bfloat"])
def test_unknown_format_lists_choices(bad):
    with pytest.raises(ValueError, match="valid names: binary64"):
        accsim.format(bad)


def test_bad_format_arguments():
    with pytest.raises(ValueError, match="must be a name"):
        accsim.format(16)
    with pytest.raises(ValueError, match="special-value style"):
        accsim.FloatFormat("x", 4, 3, 7, "weird")
    with pytest.raises(ValueError, match="exponent_bits"):
        accsim.FloatFormat.from_bits(12, 3)
    with pytest.raises(ValueError, match="p >= 1"):
        accsim.FloatFormat.from_precision(0, 5)
    with pytest.raises(ValueError, match="no accsim format for dtype"):
        F.from_dtype(np.int32)
    with pytest.raises(ValueError, match="<= 16 bits"):
        codecs.all_values("binary32")
    with pytest.raises(ValueError, match="exceed"):
        codecs.decode([256], "float8_e4m3fn")


# ------------------------------------------------------------------ exhaustive codes
@pytest.mark.parametrize("name", SMALL)
def test_every_code_decodes_like_reference_and_ml_dtypes(name):
    fmt = accsim.format(name)
    codes = np.arange(1 << fmt.bits)
    vals = codecs.all_values(fmt)
    ref = np.array([R.ref_decode(int(c), REF_PRESETS[name]) for c in codes])
    assert bits_equal(vals, ref)
    dt = fmt.ml_dtype
    ml = codes.astype(np.uint8 if dt.itemsize == 1 else np.uint16).view(dt)
    assert bits_equal(F.from_ml_dtypes(ml), vals)


CUSTOM = [
    accsim.FloatFormat.from_bits(5, 4),
    accsim.FloatFormat.from_bits(3, 1),
    accsim.FloatFormat.from_bits(6, 9),
    accsim.FloatFormat("e4m3sat", 4, 3, 7, saturate=True),
]


@pytest.mark.parametrize("fmt", [accsim.format(n) for n in SMALL] + CUSTOM, ids=str)
def test_every_code_roundtrips(fmt):
    """decode(encode(x)) == x for every non-NaN code (zero sign included); encode(decode(c))
    == c for every non-NaN code; every value is a fixed point of rounding in every mode."""
    codes = np.arange(1 << fmt.bits)
    vals = codecs.decode(codes, fmt)
    nan = np.isnan(vals)
    keep = ~nan & ~(np.isinf(vals) & fmt.saturate)  # saturating formats map inf to max
    fin = vals[keep]
    back = codecs.encode(fin, fmt)
    assert np.array_equal(back.astype(np.int64), codes[keep])
    assert bits_equal(codecs.decode(back, fmt), fin)
    for mode in accsim.rounding.MODES:
        kw = {"seed": 3} if mode == "sr" else {}
        assert bits_equal(accsim.round(fin, fmt, mode, **kw), fin), mode
    if nan.any():
        nc = codecs.encode(np.array([np.nan]), fmt)
        assert np.isnan(codecs.decode(nc, fmt)).all()
        assert int(nc[0]) == R.ref_encode(math.nan, ref_fmt(fmt))
    if fmt.saturate:
        assert bits_equal(accsim.round(np.array([np.inf, -np.inf]), fmt),
                          np.array([fmt.max, -fmt.max]))
    if fmt.has_inf:
        assert bits_equal(accsim.round(vals[np.isinf(vals)], fmt), vals[np.isinf(vals)])
    ref = ref_fmt(fmt)
    for c in codes[:: max(1, len(codes) // 512)]:
        assert bits_equal(vals[c], R.ref_decode(int(c), ref))


def test_encode_rounds_and_handles_specials():
    assert int(codecs.encode(1.0 + 2.0**-4, "float8_e4m3fn")) == 0x38  # tie to even -> 1.0
    assert int(codecs.encode(1.0 + 2.0**-4, "float8_e4m3fn", "ru")) == 0x39
    assert int(codecs.encode(-0.0, "float8_e4m3fn")) == 0x80
    assert int(codecs.encode(-0.0, "float8_e4m3fnuz")) == 0x00
    assert int(codecs.encode(np.inf, "float8_e4m3")) == 0x78
    assert int(codecs.encode(-np.inf, "float8_e4m3")) == 0xF8
    assert int(codecs.encode(1e9, "float8_e4m3fn")) == 0x7F  # overflow -> NaN in "fn"
    assert int(codecs.encode(1e9, "float4_e2m1fn")) == 0x7  # saturates
    with pytest.raises(ValueError, match="no NaN"):
        codecs.encode(np.nan, "float4_e2m1fn")
    assert codecs.encode(np.zeros((2, 3)), "binary16").shape == (2, 3)


# ------------------------------------------------------------------ ml_dtypes interop
@pytest.mark.parametrize("name", [n for n in F.available_formats()
                                  if F.format(n).ml_dtype is not None])
def test_to_ml_dtypes_is_exact_rounding(name):
    fmt = accsim.format(name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(2000) * np.exp2(rng.integers(-20, 20, 2000))
    if fmt.specials == "e8m0":
        x = np.abs(x)
    y = codecs.to_ml_dtypes(x, fmt)
    assert y.dtype == fmt.ml_dtype
    assert bits_equal(F.from_ml_dtypes(y), accsim.round(x, fmt))
    z = codecs.to_ml_dtypes(x, fmt, "rd")
    assert bits_equal(F.from_ml_dtypes(z), accsim.round(x, fmt, "rd"))


def test_to_ml_dtypes_rounds_once():
    """to_ml_dtypes rounds float64 once, as the Fraction reference does: 1 + 2^-8 + 2^-30
    lies just above the bfloat16 midpoint 1 + 2^-8 and must round up (a path through
    float32 would land on the midpoint and tie to 1.0). Checked on values packed around
    every kind of bfloat16 midpoint, in every deterministic mode."""
    rng = np.random.default_rng(9)
    base = np.array([1 + 2.0**-8 + 2.0**-30])
    # a bfloat16 value plus half its ulp, nudged by a few float64 ulps either side
    v = codecs.all_values(accsim.format("bf16"))
    v = v[np.isfinite(v) & (v != 0)]
    v = rng.choice(v, 300)
    half = np.abs(v) * 2.0**-8
    nudges = rng.integers(-3, 4, v.size).astype(np.float64) * np.abs(v) * 2.0**-40
    x = np.concatenate([base, v + np.sign(v) * half + nudges])
    x = x[np.isfinite(x)]
    bf = R.bfloat16()
    for mode in ("rne", "rz", "ru", "rd"):
        got = F.from_ml_dtypes(codecs.to_ml_dtypes(x, "bfloat16", mode))
        want = np.array([R.ref_round(float(t), bf, mode) for t in x])
        assert bits_equal(got, want), mode
    assert float(F.from_ml_dtypes(codecs.to_ml_dtypes(base, "bfloat16"))[0]) == 1 + 2.0**-7


def test_ml_dtypes_interop_errors():
    with pytest.raises(ValueError, match="no ml_dtypes dtype"):
        codecs.to_ml_dtypes([1.0], "tfloat32")
    with pytest.raises(ValueError, match="floating"):
        F.from_ml_dtypes(np.arange(3))
    assert F.from_dtype(ml_dtypes.bfloat16) is accsim.format("bf16")


@pytest.mark.parametrize("fmt", [accsim.format(n) for n in SMALL
                                 if accsim.format(n).specials != "e8m0"] + CUSTOM[:3], ids=str)
def test_fast_codes_identical_to_round_then_encode(fmt):
    """The code-writing kernels (encode / to_ml_dtypes fast path) give the same codes as
    rounding to float64 and encoding, on random + special values, every mode."""
    rng = np.random.default_rng(4)
    n = 100_000
    ee = rng.integers(max(fmt.emin - fmt.p - 70, -1074) + 1023, min(fmt.emax + 1030, 2047), n)
    bits = (ee.astype(np.uint64) << np.uint64(52)) | rng.integers(0, 1 << 52, n,
                                                                   dtype=np.uint64)
    bits |= rng.integers(0, 2, n).astype(np.uint64) << np.uint64(63)
    x = np.concatenate([bits.view(np.float64), codecs.all_values(fmt), [0.0, -0.0, np.inf, -np.inf],
                        [np.nan] if fmt.has_nan else []])
    for mode in accsim.rounding.MODES:
        for r in ([None, 4] if mode == "sr" else [None]):
            fast = codecs._fast_encode(x, fmt, mode, r, seed=5)
            v = accsim.round(x, fmt, mode, sr_bits=r, seed=5)
            slow = codecs._encode_slow(v, fmt)
            assert np.array_equal(fast, slow), (mode, r, x[fast != slow][:4])
            if fmt.ml_dtype is not None:
                y = codecs.to_ml_dtypes(x, fmt, mode, sr_bits=r, seed=5)
                assert np.array_equal(y.view(fast.dtype), fast)
