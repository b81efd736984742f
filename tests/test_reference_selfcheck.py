"""Self-checks of tests/reference.py against hand-computed cases and known facts."""

import math
import random
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import reference as R  # noqa: E402

P2 = Fraction(2)


def same(x, y):
    """Bitwise float equality (NaN == NaN, -0.0 != +0.0)."""
    if x != x or y != y:
        return x != x and y != y
    return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)


ML = {
    "binary16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3": ml_dtypes.float8_e4m3,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "float6_e3m2fn": ml_dtypes.float6_e3m2fn,
    "float6_e2m3fn": ml_dtypes.float6_e2m3fn,
    "float4_e2m1fn": ml_dtypes.float4_e2m1fn,
    "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu,
}
SMALL = [f for f in R.ALL_FORMATS if f().name in ML]
NBITS = {"float6_e3m2fn": 6, "float6_e2m3fn": 6, "float4_e2m1fn": 4,
         "binary16": 16, "bfloat16": 16}


# ------------------------------------------------------------------ formats / encoding


@pytest.mark.parametrize("ctor", SMALL, ids=lambda c: c.__name__)
def test_decode_matches_ml_dtypes_and_encode_roundtrips(ctor):
    fmt = ctor()
    nbits = NBITS.get(fmt.name, 8)
    if nbits <= 8:
        codes = list(range(2**nbits))
    else:  # 16 bits: a stride through all codes plus the two lowest and highest binades
        m = fmt.p - 1
        edge = [c for c in range(2**16) if ((c >> m) & (2 ** (15 - m) - 1)) in
                (0, 1, 2 ** (15 - m) - 2, 2 ** (15 - m) - 1)]
        codes = sorted(set(range(0, 2**16, 61)) | set(edge))
    codes = np.array(codes, dtype=np.uint16 if nbits == 16 else np.uint8)
    with np.errstate(invalid="ignore"):  # NaN codes
        expected = codes.view(ML[fmt.name]).astype(np.float64)
    finite_max = 0.0
    for code, e in zip(codes.tolist(), expected.tolist(), strict=True):
        v = R.ref_decode(code, fmt)
        assert same(v, e), (fmt.name, code, v, e)
        if v == v:
            assert R.ref_encode(v, fmt) == code
            if math.isfinite(v):
                finite_max = max(finite_max, v)
                assert R.ref_round(v, fmt, "rne") == v
    assert finite_max == fmt.max


def test_format_facts_match_accsim_presets():
    """The preset facts agree with accsim.numbers.formats (duck typing: ref_round accepts its
    FloatFormat objects too)."""
    formats = pytest.importorskip("accsim.numbers.formats")
    for ctor in R.ALL_FORMATS:
        mine = ctor()
        theirs = formats.format(mine.name)
        for attr in ("p", "emin", "emax", "max", "subnormals", "specials", "saturate"):
            assert getattr(theirs, attr) == getattr(mine, attr), (mine.name, attr)
        for x in (1.0 + 2.0**-9, -3.3e-5, 1e5, 2.0**-140, -0.0):
            for mode in ("rne", "rz", "ru"):
                assert same(R.ref_round(x, theirs, mode), R.ref_round(x, mine, mode))


def test_encode_specials():
    assert R.ref_encode(float("nan"), R.binary16()) == 0x7E00
    assert R.ref_encode(float("nan"), R.float8_e4m3fn()) == 0x7F
    assert R.ref_encode(float("nan"), R.float8_e4m3fnuz()) == 0x80
    assert R.ref_encode(float("nan"), R.float8_e8m0fnu()) == 0xFF
    assert R.ref_encode(-0.0, R.float8_e5m2fnuz()) == 0
    assert R.ref_encode(-0.0, R.binary16()) == 0x8000
    assert R.ref_encode(-float("inf"), R.float8_e5m2()) == 0xFC
    with pytest.raises(ValueError):
        R.ref_encode(1.0 + 2.0**-11, R.binary16())
    with pytest.raises(ValueError):
        R.ref_encode(float("nan"), R.float4_e2m1fn())


def test_floor_log2_exact():
    assert R.floor_log2(Fraction(1)) == 0
    assert R.floor_log2(P2**-1074) == -1074
    assert R.floor_log2(P2**100 - 1) == 99
    assert R.floor_log2(Fraction(3, 4)) == -1
    assert R.floor_log2(Fraction(1, 3)) == -2


# ------------------------------------------------------------------ ref_round vs enumeration
# The oracle below rounds by brute force: it lists the format's non-negative values by
# decoding every code, brackets |x| between two neighbours and picks the nearer one by
# exact Fraction distance (a tie goes to the even code).  It shares nothing with
# ref_round's exponent/quantum arithmetic, and it asserts nothing about numpy or
# ml_dtypes, whose casts changed between releases (docs/formats.md).


def _random_doubles(rng, n, lo, hi):
    out = []
    for _ in range(n):
        x = math.ldexp(rng.random() + 1.0, rng.randint(lo, hi))
        out.append(-x if rng.random() < 0.5 else x)
    return out


def _positive_table(fmt, nbits):
    """[(value, code)] of every finite non-negative value of fmt, sorted by value."""
    sign = 0 if fmt.specials == "e8m0" else 1 << (nbits - 1)
    table = {}
    for code in range(2**nbits):
        if code & sign:
            continue
        v = R.ref_decode(code, fmt)
        if v == v and math.isfinite(v):
            table.setdefault(v, code)
    return sorted(table.items())


def _nearest_even(x, table, unsigned_zero=False, tie_up=False):
    """RNE of the float x (|x| <= largest table value) by bracketing in `table`;
    a zero result keeps the sign of x unless the format's zero is unsigned (fnuz).
    Below the smallest value (e8m0 has no zero) the smallest value is the result.
    tie_up: e8m0 (p = 1): at the quantum of 2^k, 2^k is 1 (odd) and 2^(k+1) is 2 (even),
    so every tie rounds up."""
    import bisect

    values = [v for v, _ in table]
    ax = abs(x)
    i = bisect.bisect_left(values, ax)
    if values[i] == ax or i == 0:
        v = values[i]
    else:
        (lo, clo), (hi, _chi) = table[i - 1], table[i]
        dlo, dhi = Fraction(ax) - Fraction(lo), Fraction(hi) - Fraction(ax)
        lo_even = clo % 2 == 0 and not tie_up
        v = lo if dlo < dhi or (dlo == dhi and lo_even) else hi
    if v == 0 and unsigned_zero:
        return 0.0
    return -v if math.copysign(1, x) < 0 else v


def _float32_nearest_even(x):
    """RNE of x to binary32 by bracketing between float32 neighbours of a candidate
    (the candidate only seeds the search; nearness is decided by exact Fractions)."""
    c = np.float32(x)
    cands = {float(np.nextafter(c, np.float32(d))) for d in (-np.inf, np.inf)} | {float(c)}
    cands |= {float(np.nextafter(np.float32(v), np.float32(d)))
              for v in list(cands) for d in (-np.inf, np.inf)}
    lo = max(v for v in cands if v <= x)
    hi = min(v for v in cands if v >= x)
    if lo == hi:
        return lo
    dlo, dhi = Fraction(x) - Fraction(lo), Fraction(hi) - Fraction(x)
    lo_even = int(np.float32(lo).view(np.uint32)) % 2 == 0 if lo != 0 else True
    return lo if dlo < dhi or (dlo == dhi and lo_even) else hi


def test_ref_round_rne_matches_enumeration_16bit_and_binary32():
    rng = random.Random(1)
    for fmt in (R.binary16(), R.bfloat16()):
        table = _positive_table(fmt, 16)
        xs = _random_doubles(rng, 1500, fmt.emin - fmt.p - 2, fmt.emax)
        xs += [(a + b) / 2 for (a, _), (b, _) in zip(table[::97], table[1::97],
                                                     strict=False)]  # ties
        xs += [65504.0, 2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-26]
        for x in xs:
            if abs(x) <= fmt.max:
                assert same(R.ref_round(x, fmt), _nearest_even(x, table)), (fmt.name, x)
    f32 = R.binary32()
    xs = _random_doubles(rng, 3000, -155, 127) + [2.0**-150, 3 * 2.0**-151,
                                                  1 + 2.0**-24, 1 + 3 * 2.0**-24]
    for x in xs:
        assert same(R.ref_round(x, f32), _float32_nearest_even(x)), x


@pytest.mark.parametrize("ctor", [c for c in SMALL if c().name not in NBITS or
                                  NBITS[c().name] < 16], ids=lambda c: c.__name__)
def test_ref_round_rne_matches_enumeration_small_formats(ctor):
    fmt = ctor()
    rng = random.Random(fmt.name)
    nbits = NBITS.get(fmt.name, 8)
    table = _positive_table(fmt, nbits)
    xs = _random_doubles(rng, 400, fmt.emin - fmt.p - 2, fmt.emax + 2)
    # every midpoint between consecutive values (ties) and points near them
    for (lo, _), (hi, _) in zip(table, table[1:], strict=False):
        mid = (lo + hi) / 2
        xs += [mid, math.nextafter(mid, math.inf), math.nextafter(mid, -math.inf)]
    if fmt.specials == "e8m0":
        xs = [abs(x) for x in xs if x != 0]
    for x in xs:
        if abs(x) <= fmt.max:
            want = _nearest_even(x, table, fmt.specials == "fnuz", fmt.specials == "e8m0")
            assert same(R.ref_round(x, fmt, "rne"), want), (fmt.name, x)


# ------------------------------------------------------------------ hand-computed rounding


def test_round_modes_hand_cases():
    f16 = R.binary16()
    one, ulp = 1.0, 2.0**-10
    tie_even = one + ulp / 2  # between 1 (even) and 1+ulp (odd)
    tie_odd = one + 1.5 * ulp  # between 1+ulp (odd) and 1+2ulp (even)
    assert R.ref_round(tie_even, f16, "rne") == 1.0
    assert R.ref_round(tie_odd, f16, "rne") == 1 + 2 * ulp
    assert R.ref_round(tie_even, f16, "rna") == 1 + ulp
    assert R.ref_round(-tie_even, f16, "rna") == -(1 + ulp)
    x = 1 + ulp / 4
    assert R.ref_round(x, f16, "rz") == 1.0
    assert R.ref_round(x, f16, "ru") == 1 + ulp
    assert R.ref_round(x, f16, "rd") == 1.0
    assert R.ref_round(-x, f16, "ru") == -1.0
    assert R.ref_round(-x, f16, "rd") == -(1 + ulp)
    assert R.ref_round(x, f16, "ro") == 1 + ulp  # 1 has even significand
    assert R.ref_round(1 + ulp + ulp / 4, f16, "ro") == 1 + ulp  # already odd
    assert R.ref_round(1 + ulp, f16, "ro") == 1 + ulp  # exact stays
    # 1/3 = 0.0101...b: the 11-bit significand 1.0101010101b (x 2^-2), remainder 1/3 ulp
    assert R.ref_round(Fraction(1, 3), f16, "rne") == 1365 * 2.0**-12
    # exact Fraction input, not via a float
    assert R.ref_round(1 + P2**-11 + P2**-80, f16, "rne") == 1 + ulp


def test_round_subnormals_and_zeros():
    f16 = R.binary16()
    tiny = 2.0**-24
    assert R.ref_round(tiny / 2, f16, "rne") == 0.0  # tie to even (0)
    assert R.ref_round(1.5 * tiny, f16, "rne") == 2 * tiny  # tie to even (2)
    assert R.ref_round(Fraction(tiny / 2) + Fraction(1, 2**80), f16, "rne") == tiny
    assert same(R.ref_round(-tiny / 4, f16, "rne"), -0.0)
    assert same(R.ref_round(-tiny / 4, f16, "rz"), -0.0)
    assert R.ref_round(tiny / 4, f16, "ru") == tiny
    assert same(R.ref_round(-0.0, f16), -0.0)
    assert same(R.ref_round(Fraction(0), f16), 0.0)
    assert same(R.ref_round(-tiny / 4, R.float8_e4m3fnuz()), 0.0)
    assert same(R.ref_round(-0.0, R.float8_e5m2fnuz()), 0.0)
    # subnormal quantum of e4m3fn: 2^-9
    assert R.ref_round(3 * 2.0**-10, R.float8_e4m3fn(), "rne") == 2 * 2.0**-9


def test_round_overflow_styles():
    nan = float("nan")
    fn = R.float8_e4m3fn()
    assert R.ref_round(464.0, fn, "rne") == 448.0  # tie at 464 -> even (448)
    assert same(R.ref_round(465.0, fn, "rne"), nan)
    assert R.ref_round(470.0, fn, "rz") == 448.0
    assert R.ref_round(500.0, fn, "rz") == 448.0  # truncates to 480 > max -> max
    assert same(R.ref_round(500.0, fn, "ru"), nan)
    assert R.ref_round(500.0, fn, "rd") == 448.0
    assert R.ref_round(-500.0, fn, "ru") == -448.0
    assert same(R.ref_round(-500.0, fn, "rd"), nan)
    assert R.ref_round(1e9, fn, "ro") == 448.0
    assert same(R.ref_round(float("inf"), fn), nan)
    e5 = R.float8_e5m2()
    assert R.ref_round(61439.0, e5, "rne") == 57344.0
    assert R.ref_round(61440.0, e5, "rne") == math.inf  # tie -> 65536 (even) -> inf
    assert R.ref_round(-1e6, e5, "rz") == -57344.0
    assert R.ref_round(-1e6, e5, "rna") == -math.inf
    assert R.ref_round(-math.inf, e5) == -math.inf
    fp6 = R.float6_e3m2fn()
    assert R.ref_round(100.0, fp6, "rne") == 28.0
    assert R.ref_round(-math.inf, fp6) == -28.0
    assert R.ref_round(65520.0, R.binary16(), "rne") == math.inf
    assert R.ref_round(65520.0, R.binary16(), "rz") == 65504.0
    # sr: 470 = (14 + 11/16) * 32; 500 = (15 + 5/8) * 32 truncates to 480 > max
    assert same(R.ref_round(470.0, fn, "sr", u=0.0), nan)
    assert R.ref_round(470.0, fn, "sr", u=0.9) == 448.0
    assert same(R.ref_round(500.0, fn, "sr", u=0.0), nan)
    assert R.ref_round(500.0, fn, "sr", u=0.9) == 448.0
    assert R.ref_round(-500.0, fn, "sr", u=0.9) == -448.0


def test_round_e8m0():
    e8 = R.float8_e8m0fnu()
    nan = float("nan")
    assert R.ref_round(1.5, e8, "rne") == 2.0
    assert R.ref_round(1.5, e8, "rz") == 1.0
    assert R.ref_round(1.4, e8, "rne") == 1.0
    assert R.ref_round(2.0**-130, e8, "rne") == 2.0**-127  # 0 becomes 2^emin
    assert R.ref_round(2.0**-128 * 1.5, e8, "rne") == 2.0**-127
    for bad in (0.0, -1.0, -0.0, nan, -math.inf):
        assert same(R.ref_round(bad, e8), nan)
    assert same(R.ref_round(2.0**128, e8, "rne"), nan)
    assert R.ref_round(2.0**128, e8, "rz") == 2.0**127


def test_directed_modes_bracket_and_round_to_odd_fact():
    """ru / rd bracket x and every other mode picks one of the two; rounding to odd at
    p+2 bits followed by RNE at p bits equals a single RNE (a known fact)."""
    rng = random.Random(7)
    f16 = R.binary16()
    wide = R.RefFormat("p13", 13, -14, 15, float(2**15 * (2 - Fraction(1, 2**12))))
    for x in _random_doubles(rng, 500, -27, 14):
        lo, hi = R.ref_round(x, f16, "rd"), R.ref_round(x, f16, "ru")
        assert lo <= x <= hi
        for mode in ("rne", "rna", "rz", "ro"):
            assert R.ref_round(x, f16, mode) in (lo, hi)
        assert R.ref_round(R.ref_round(x, wide, "ro"), f16, "rne") == R.ref_round(x, f16)


def test_stochastic_rounding():
    f16 = R.binary16()
    x = 1 + 2.0**-12  # discarded fraction f = 1/4
    up = 1 + 2.0**-10
    assert R.ref_sr_probability(x, f16) == Fraction(1, 4)
    assert R.ref_round(x, f16, "sr", u=0.2) == up
    assert R.ref_round(x, f16, "sr", u=0.25) == 1.0
    assert R.ref_round(-x, f16, "sr", u=0.2) == -up
    assert R.ref_sr_probability(x, f16, sr_bits=2) == Fraction(1, 4)
    assert R.ref_round(x, f16, "sr", u=0, sr_bits=2) == up
    assert R.ref_round(x, f16, "sr", u=1, sr_bits=2) == 1.0
    assert R.ref_sr_probability(x, f16, sr_bits=1) == 0  # r = 1 can never round up
    assert R.ref_round(x, f16, "sr", u=0, sr_bits=1) == 1.0
    y = 1 + 3 * 2.0**-12  # f = 3/4: r=1 gives F=1
    assert R.ref_sr_probability(y, f16, sr_bits=1) == Fraction(1, 2)
    # exact values never move
    assert R.ref_round(1.0, f16, "sr", u=0.0) == 1.0
    # empirical frequency over all 2^8 values of u equals the probability
    z = 1 + Fraction(37, 2**18)
    ups = sum(R.ref_round(z, f16, "sr", u=u, sr_bits=8) != 1.0 for u in range(256))
    assert Fraction(ups, 256) == R.ref_sr_probability(z, f16, sr_bits=8)
    with pytest.raises(ValueError):
        R.ref_round(x, f16, "sr")


# ------------------------------------------------------------------ atoms


def test_atoms_single_rounding_and_zero_signs():
    f16 = R.binary16()
    # fma rounds once: (1+2^-10)(1-2^-10) - 1 = -2^-20 exactly
    a, b = 1 + 2.0**-10, 1 - 2.0**-10
    assert R.ref_fma(a, b, -1.0, f16) == -(2.0**-20)
    assert R.ref_add(R.ref_mul(a, b, f16), -1.0, f16) == 0.0
    assert same(R.ref_add(1.0, -1.0, f16), 0.0)
    assert same(R.ref_add(1.0, -1.0, f16, "rd"), -0.0)
    assert same(R.ref_add(-0.0, -0.0, f16), -0.0)
    assert same(R.ref_add(0.0, -0.0, f16), 0.0)
    assert same(R.ref_add(0.0, -0.0, f16, "rd"), -0.0)
    assert same(R.ref_mul(-0.0, 3.0, f16), -0.0)
    assert same(R.ref_fma(-0.0, 3.0, -0.0, f16), -0.0)
    assert same(R.ref_fma(-0.0, 3.0, 0.0, f16), 0.0)
    assert same(R.ref_mul(0.0, math.inf, f16), float("nan"))
    assert same(R.ref_add(math.inf, -math.inf, f16), float("nan"))
    assert R.ref_fma(1e200, 1e200, -math.inf, R.binary64()) == -math.inf
    assert R.ref_add(65504.0, 15.99, f16) == 65504.0
    assert R.ref_add(65504.0, 16.0, f16) == math.inf  # tie: 65536 has the even significand
    # float32 add/mul of float32 values: numpy is correctly rounded
    rng = random.Random(5)
    f32 = R.binary32()
    for _ in range(300):
        x, y = (float(np.float32(v)) for v in _random_doubles(rng, 2, -20, 20))
        assert R.ref_add(x, y, f32) == float(np.float32(x) + np.float32(y))
        assert R.ref_mul(x, y, f32) == float(np.float32(x) * np.float32(y))
        assert R.ref_add(x, y, R.binary64()) == x + y


def test_fp64_fma_chain():
    # a double-rounding sensitive chain: exact 1 + 2^-53 + 2^-106 rounds up only fused
    a = [1.0, 1 + 2.0**-52]
    b = [1.0, 2.0**-53 - 2.0**-106]
    fused = R.ref_fma_chain(a, b, 0.0)
    exact = 1 + (1 + P2**-52) * (P2**-53 - P2**-106)  # 1 + 2^-53 + 2^-106 - 2^-158
    assert Fraction(fused) == Fraction(R.ref_round(exact, R.binary64()))
    assert fused == 1 + 2.0**-52
    unfused = R.ref_recursive(a, b, 0.0, R.binary64(), product_fmt=R.binary64())
    assert unfused == 1.0  # product rounds to 2^-53 exactly, then a tie -> even


# ------------------------------------------------------------------ accumulators


def test_recursive_variants():
    f16 = R.binary16()
    a = [1.0] + [2.0**-6] * 4
    b = [1.0] + [2.0**-6] * 4  # four products of 2^-12 (quarter ulp of 1)
    assert R.ref_recursive(a, b, 0.0, f16) == 1.0
    assert R.ref_kulisch(a, b, 0.0, f16) == 1 + 2.0**-10
    assert R.ref_recursive(a, b, 0.0, f16, fused=True) == 1.0
    assert R.ref_recursive(a, b, 0.0, f16, "ru") == 1 + 4 * 2.0**-10
    # products rounded to e5m2 first (3 * 3 = 9 -> 8)
    assert R.ref_recursive([3.0], [3.0], 0.0, f16, product_fmt=R.float8_e5m2()) == 8.0
    assert R.ref_recursive([3.0], [3.0], 0.0, f16, product_fmt="exact") == 9.0
    # c is rounded first
    assert R.ref_recursive([], [], 1 + 2.0**-12, f16) == 1.0
    # SR with u = 0 always rounds away: same as "ru" for positive data
    calls = []

    def rand0(k):
        calls.append(k)
        return 0

    assert R.ref_recursive(a, b, 0.0, f16, "sr", rand=rand0) == 1 + 4 * 2.0**-10
    assert calls == list(range(6))  # c, then one per term
    calls.clear()
    R.ref_recursive(a, b, 0.0, f16, "sr", product_fmt=f16, rand=rand0, sr_bits=4)
    assert calls == list(range(11))
    assert R.ref_recursive(a, b, 0.0, f16, "sr", rand=lambda k: 0.999) == 1.0


def test_blocked_and_promoted():
    f16, f32 = R.binary16(), R.binary32()
    a = [1.0] + [2.0**-6] * 8
    b = [1.0] + [2.0**-6] * 8
    # recursive fp16 stays at 1; blocks of 4: [1,q,q,q] -> 1, [q,q,q,q] -> 2^-10, [q] -> q
    # outer fp32: 1 + 2^-10 + 2^-12
    got = R.ref_blocked(a, b, 0.0, 4, f16, f32)
    assert got == 1 + 2.0**-10 + 2.0**-12
    assert R.ref_blocked(a, b, 0.0, 4, f16, f16) == 1 + 2.0**-10
    assert R.ref_blocked(a, b, 0.5, 100, f16, f32) == 1.5

    def low(ab, bb, c):
        return R.ref_recursive(ab, bb, c, f16)

    assert R.ref_promoted(a, b, 0.0, 4, low) == got
    assert R.ref_promoted(a, b, 2.0**-20, 4, low) == got + 2.0**-20


def test_pairwise_tree_order_on_five_terms():
    f16 = R.binary16()
    h = 2.0**-11  # half an ulp of 1
    a = [1.0, h, h, h, h]
    b = [1.0] * 5
    # level 1: (1+h) -> 1 (tie, even), (h+h) = 2h, h carried
    # level 2: (1 + 2h) = 1+2^-10, h carried;  level 3: 1+2^-10+h -> tie -> 1+2^-9
    assert R.ref_pairwise(a, b, 0.0, f16) == 1 + 2.0**-9
    assert R.ref_recursive(a, b, 0.0, f16) == 1.0
    # c added last: tree gives 2h + 2h... here c = -1 cancels exactly
    assert R.ref_pairwise(a, b, -1.0, f16) == 2.0**-9
    # products are rounded into fmt before the tree
    assert R.ref_pairwise([3.0], [3.0], 0.0, R.float8_e5m2()) == 8.0
    assert R.ref_pairwise([], [], 3.0, f16) == 3.0
    # last level of a 3-term tree: (p0+p1)+p2
    assert R.ref_pairwise([h, h, 1.0], [1.0] * 3, 0.0, f16) == 1 + 2.0**-10


def test_kahan_beats_recursive():
    f16 = R.binary16()
    q = 2.0**-12
    a = [1.0] + [q] * 8
    b = [1.0] * 9
    exact = 1 + 8 * q
    assert R.ref_recursive(a, b, 0.0, f16) == 1.0
    assert R.ref_kahan(a, b, 0.0, f16) == exact
    assert R.ref_kulisch(a, b, 0.0, f16) == exact


def test_kulisch_specials_and_zero_sign():
    f32 = R.binary32()
    assert same(R.ref_kulisch([-0.0], [1.0], -0.0, f32), -0.0)
    assert same(R.ref_kulisch([1.0, -1.0], [1.0, 1.0], -0.0, f32), 0.0)
    assert same(R.ref_kulisch([math.inf], [0.0], 1.0, f32), float("nan"))
    assert same(R.ref_kulisch([math.inf], [-1.0], math.inf, f32), float("nan"))
    assert R.ref_kulisch([math.inf], [2.0], 1.0, f32) == math.inf


# ------------------------------------------------------------------ NVIDIA fused step


def _step(a, b, c, F=24, e_zero=-132, out="rz-fp32", fmt=None, c_fmt=None, **kw):
    fmt = fmt or R.binary32()
    return R.ref_fused_step(a, fmt, b, fmt, c, c_fmt or R.binary32(), F, e_zero, None, out,
                            **kw)


def test_fused_step_alignment_truncation():
    # 2^-30 is shifted out at F=24 relative to e_max = 0: 1 + 2^-30 - 1 = 0 (exact 2^-30)
    assert same(_step([1.0, 2.0**-30], [1.0, 1.0], -1.0), 0.0)
    assert R.ref_kulisch([1.0, 2.0**-30], [1.0, 1.0], -1.0, R.binary32()) == 2.0**-30
    # F = 24 keeps 2^-24, F = 23 does not
    assert _step([1.0, 2.0**-24], [1.0, 1.0], -1.0) == 2.0**-24
    assert _step([1.0, 2.0**-24], [1.0, 1.0], -1.0, F=23) == 0.0
    # truncation toward zero of a negative term vs floor
    assert _step([1.0, -(2.0**-30)], [1.0, 1.0], 0.0) == 1.0
    assert _step([1.0, -(2.0**-30)], [1.0, 1.0], 0.0, trunc="floor") == 1 - 2.0**-24
    # products keep the unnormalised significand: 1.5*1.5 = 2.25 with exponent 0, so a
    # term 2^-24 survives at F=24 (relative to 2^0, not 2^1)
    assert _step([1.5, 2.0**-24, -1.5], [1.5, 1.0, 1.5], 0.0) == 2.0**-24
    # ... whereas c = -2.25 is decoded as 1.125 * 2^1 and pushes e_max to 1
    assert _step([1.5, 2.0**-24], [1.5, 1.0], -2.25) == 0.0
    # output rounding: RZ fp32
    assert _step([1.0, 2.0**-23 + 2.0**-24], [1.0, 1.0], 0.0) == 1 + 2.0**-23
    assert _step([1.0, 2.0**-23 + 2.0**-24], [1.0, 1.0], 0.0, out="rne-fp32") == 1 + 2.0**-22


def test_fused_step_signs_specials_overflow():
    assert same(_step([1.0], [-1.0], 1.0), 0.0)
    assert same(_step([-0.0], [1.0], -0.0), 0.0)
    # exact -2^-160, RZ to fp32 gives -0, returned as +0
    assert same(_step([-(2.0**-160)], [1.0], 0.0, fmt=R.binary64(), e_zero=-999), 0.0)
    assert same(_step([math.inf, 1.0], [1.0, 1.0], 1.0), math.inf)
    assert same(_step([math.inf, 1.0], [1.0, 1.0], -math.inf), float("nan"))
    assert same(_step([math.inf], [0.0], 1.0), float("nan"))
    assert same(_step([float("nan")], [1.0], 1.0), float("nan"))
    big = R.binary32().max
    assert _step([big, big], [1.0, 1.0], 0.0) == big  # RZ overflow -> max
    assert _step([big, big], [1.0, 1.0], 0.0, out="rne-fp32") == math.inf
    f16 = R.binary16()
    assert R.ref_fused_step([65504.0, 65504.0], f16, [1.0, 1.0], f16, 0.0, f16, 24, -20,
                            None, "rne-fp16") == math.inf


def test_fused_step_e_zero_and_subnormal_inputs():
    f16 = R.binary16()
    # p0 = 2^-25 (a tie for fp16 output), p1 = 2^-48 (s = 2^-20 at e = -28: both inputs
    # are subnormal, decoded with e = -14).  With c = 0 at e_zero = -20, p1 is truncated
    # away and RNE sees an exact tie -> 0; with a tiny e_zero it survives -> 2^-24.
    a = [2.0**-12, 2.0**-24]
    b = [2.0**-13, 2.0**-24]

    def st(e_zero):
        return R.ref_fused_step(a, f16, b, f16, 0.0, f16, 24, e_zero, None, "rne-fp16")

    assert st(-20) == 0.0
    assert st(-60) == 2.0**-24
    assert R.ref_kulisch(a, b, 0.0, f16) == 2.0**-24


def test_fused_step_e8m13_and_tf32_inputs():
    # RZ to 13 fraction bits
    x = 1 + 2.0**-13 + 2.0**-14
    f32 = R.binary32()
    assert R.ref_fused_step([x], f32, [1.0], f32, 0.0, f32, 25, -133, None,
                            "rz-e8m13") == 1 + 2.0**-13
    # e8m13 keeps fp32's subnormal range with quantum 2^-139
    assert R.ref_fused_step([3 * 2.0**-140], f32, [1.0], f32, 0.0, f32, 25, -160, None,
                            "rz-e8m13") == 2.0**-139
    # tf32: fp32 inputs truncated to 10 fraction bits before use
    tf = R.tfloat32()
    y = 1 + 2.0**-10 + 2.0**-11 + 2.0**-20
    assert R.ref_fused_step([y], tf, [1.0], tf, 0.0, f32, 24, -132, None,
                            "rz-fp32") == 1 + 2.0**-10
    assert R.ref_fused_step([-y], tf, [1.0], tf, 0.0, f32, 24, -132, None,
                            "rz-fp32") == -(1 + 2.0**-10)
    with pytest.raises(ValueError):  # fp16 inputs must be fp16 values
        R.ref_fused_step([y], R.binary16(), [1.0], R.binary16(), 0.0, f32, 24, -132)


def test_fused_step_block_scales():
    e4 = R.float8_e4m3fn()
    f32 = R.binary32()
    got = R.ref_fused_step([1.5, 448.0], e4, [2.0, -448.0], e4, 0.0, f32, 25, -133, None,
                           "rz-fp32", scale_a=2.0**-3, scale_b=2.0**10)
    assert got == float(Fraction(3 - 448 * 448) * P2**7)
    # with c = 1 the exact sum -25689727 needs 25 bits: RZ drops the last one
    got = R.ref_fused_step([1.5, 448.0], e4, [2.0, -448.0], e4, 1.0, f32, 25, -133, None,
                           "rz-fp32", scale_a=2.0**-3, scale_b=2.0**10)
    assert got == -25689726.0


def test_fused_chain():
    f16 = R.binary16()
    h = 2.0**-11
    a = [1.0] + [h] * 7
    b = [1.0] * 8
    # L = 4, RNE fp16 per step: step 1 = 1 + 3h -> 1+2^-9 (tie to even);
    # step 2 = 1+2^-9 + 4h = 1 + 2^-8
    got = R.ref_fused_chain(a, b, 0.0, f16, f16, f16, 24, -20, None, "rne-fp16", L=4)
    assert got == 1 + 2.0**-8
    # a short last block is padded with zero products
    assert R.ref_fused_chain(a[:6], b[:6], 0.0, f16, f16, f16, 24, -20, None, "rne-fp16",
                             L=4) == 1 + 2.0**-9 + 2.0**-10
    f32 = R.binary32()
    a2 = [1.0, -1.0, 2.0**-30, 2.0**-30]
    one_step = R.ref_fused_chain(a2, [1.0] * 4, 0.0, f32, f32, f32, 24, -132, L=4)
    two_steps = R.ref_fused_chain(a2, [1.0] * 4, 0.0, f32, f32, f32, 24, -132, L=2)
    assert one_step == 0.0 and two_steps == 2.0**-29


# ------------------------------------------------------------------ AMD


def test_cdna1_cdna2():
    f16, bf16 = R.binary16(), R.bfloat16()
    q = 2.0**-12
    a = [1.0, q, q, q]
    b = [1.0, q, q, q]  # products 1, 2^-24, 2^-24, 2^-24
    # CDNA1: exact 1 + 3*2^-24 -> RNE fp32: tie between 1+2^-23 (odd) and 1+2^-22
    assert R.ref_cdna1_step(a, b, 0.0, f16, f16) == 1 + 2.0**-22
    # CDNA2: ((1 + 2^-24) -> 1) + ((2^-24 + 2^-24) = 2^-23) = 1 + 2^-23
    assert R.ref_cdna2_step(a, b, 0.0, f16, f16) == 1 + 2.0**-23
    # P = 2, c = 1: groups added to c in order: (1 + (1+2^-24 -> 1)) = 2, then
    # 2 + (2^-24 + 2^-24) = 2 + 2^-23: a tie at 2 -> 2
    assert R.ref_cdna2_step(a, b, 1.0, f16, f16, P=2) == 2.0
    # subnormal fp16 input flushed
    assert R.ref_cdna2_step([2.0**-20], [1024.0], 0.5, f16, f16) == 0.5
    assert R.ref_cdna1_step([2.0**-20], [1024.0], 0.5, f16, f16) == 0.5 + 2.0**-10
    # product subnormal in fp32 flushed (bf16 inputs)
    assert R.ref_cdna2_step([2.0**-70], [2.0**-70], 0.0, bf16, bf16) == 0.0
    assert R.ref_cdna1_step([2.0**-70], [2.0**-70], 0.0, bf16, bf16) == 2.0**-140
    # subnormal c flushed, sum result flushed
    assert R.ref_cdna2_step([0.0], [0.0], 2.0**-130, f16, f16) == 0.0
    assert same(R.ref_cdna2_step([1.0], [-1.0], 1.0, f16, f16), 0.0)


def test_cdna3():
    f16, bf16, f32 = R.binary16(), R.bfloat16(), R.binary32()
    # floor: asymmetric for negative values
    assert R.ref_cdna3_step([1.0, 2.0**-14], [1.0, 2.0**-14], 0.0, f16, f16) == 1.0
    got = R.ref_cdna3_step([1.0, -(2.0**-14)], [1.0, 2.0**-14], 0.0, f16, f16)
    assert got == 1 - 2.0**-24
    got = R.ref_cdna3_step([1.0, -(2.0**-14)], [1.0, 2.0**-14], 0.0, f16, f16,
                           product_trunc="rz")
    assert got == 1.0
    # c aligned separately, relative to max(e_p, e_c) with F = 24 (floor)
    assert R.ref_cdna3_step([1.0], [1.0], 2.0**-30, f16, f16) == 1.0
    assert R.ref_cdna3_step([1.0], [1.0], -(2.0**-30), f16, f16) == 1 - 2.0**-24
    assert R.ref_cdna3_step([1.0], [1.0], -(2.0**-30), f16, f16, c_align="own") == 1.0
    # c does not take part in the products' alignment: tiny products, big c
    got = R.ref_cdna3_step([2.0**-10, 2.0**-14], [1.0, 2.0**-20], 1.0, f16, f16)
    # products 2^-10 and 2^-34 (aligned within the products: kept at F=24 relative to
    # 2^-10); sum 2^-10 + 2^-34 then floored to 31 bits relative to e_m = 0: 2^-34 lost
    assert got == 1 + 2.0**-10
    # products 2^-7 and 2^-31 (24 bits apart: kept); c = -2^-7 cancels
    got = R.ref_cdna3_step([2.0**-7, 2.0**-14], [1.0, 2.0**-17], -(2.0**-7), bf16, bf16)
    assert got == 2.0**-31
    # exact cancellation gives +0; inf / nan
    assert same(R.ref_cdna3_step([1.0], [-1.0], 1.0, f16, f16), 0.0)
    assert same(R.ref_cdna3_step([math.inf], [-1.0], math.inf, f16, f16), float("nan"))
    # xf32: fp32 inputs truncated to 10 fraction bits
    tf = R.tfloat32()
    y = 1 + 2.0**-10 + 2.0**-12
    assert R.ref_cdna3_step([y], [1.0], 0.0, tf, tf) == 1 + 2.0**-10
    assert R.ref_cdna3_step([y], [1.0], 0.0, f32, f32) == y


def test_cdna3_fp8_groups():
    bf8 = R.float8_e5m2fnuz()
    a = [1.0, 2.0**-17]
    b = [1.0, 2.0**-17]  # products 1 (even group) and 2^-34 (odd group)
    # one group: 2^-34 floors to 0 at F=24 relative to 2^0; two groups keep it exactly
    assert R.ref_cdna3_step(a, b, -1.0, bf8, bf8) == 0.0
    assert R.ref_cdna3_fp8_step(a, b, -1.0, bf8, bf8) == 0.0  # F2 = 31 floor drops it
    assert R.ref_cdna3_fp8_step(a, b, -1.0, bf8, bf8, F2=40) == 2.0**-34
    assert R.ref_cdna3_fp8_step(a, b, -1.0, bf8, bf8, F2=40, combine="floor") == 0.0
    # same parity products are aligned together
    a4 = [1.0, 1.0, 2.0**-17, 0.0]
    b4 = [1.0, 2.0**-17, 2.0**-17, 0.0]  # even: 1, 2^-34; odd: 2^-17
    assert R.ref_cdna3_fp8_step(a4, b4, -1.0, bf8, bf8) == 2.0**-17
