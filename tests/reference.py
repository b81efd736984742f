"""Slow, obviously-correct reference implementations for accsim.

Everything here is computed with exact rational arithmetic (``fractions.Fraction``) and
rounded explicitly, favouring clarity over speed.  These functions are the oracle that
the fast kernels are compared with, bit for bit.  Sources, cited by key below:

* [MS] Xie, Wang, Yang, Yang, "MMA-Sim: bit-accurate reference model of tensor cores and
  matrix cores", arXiv:2511.10909 (2025), validated bitwise on real GPUs;
* [FH] Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores",
  PeerJ Computer Science 7:e330 (2021);
* [DS] DeepSeek-AI, "DeepSeek-V3 technical report", arXiv:2412.19437 (2024), section 3.3;
* [CHM] Connolly, Higham, Mary, "Stochastic rounding and its probabilistic backward
  error analysis", SISC 43(1) (2021);
* [H] Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM (2002),
  chapter 4 (recursive, pairwise and blocked summation);
* [KU] Kulisch, "Computer Arithmetic and Validity", 2nd ed., de Gruyter (2013);
* ``docs/hwmodels.md``: where the sources leave room, the decision taken.

Value conventions
-----------------
* Public functions take Python floats (the exact values of the inputs) and return a
  Python float holding the exact value of the result format.  NaN results are returned
  as ``float("nan")``; callers that need the canonical NaN bit pattern of a format must
  compare "is NaN" rather than bits.
* Internally an "exact value" is either a ``Fraction`` (finite; a zero Fraction means +0)
  or a ``float`` (used for +-0.0 with its sign, +-inf and NaN, and for finite inputs).

Random numbers for stochastic rounding
--------------------------------------
Every accumulator takes ``rand`` (a callable) and ``sr_bits``.  When ``mode == "sr"``,
``rand(k)`` is called with k = 0, 1, 2, ... once per rounding, in the order in which the
roundings are performed (documented per function); its result is the ``u`` of
:func:`ref_round`.  Roundings that happen to be exact still consume their random value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

MODES = ("rne", "rna", "rz", "ru", "rd", "ro", "sr")
SPECIALS = ("ieee", "fn", "fnuz", "finite", "e8m0")

NAN = float("nan")
INF = float("inf")

# [MS]: a NaN result is the canonical quiet NaN (all exponent and fraction bits set, sign
# clear) -- the bit patterns a caller should expect where a reference returns NaN
CANONICAL_NAN_BITS = {"binary32": 0x7FFFFFFF, "binary16": 0x7FFF}


# --------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefFormat:
    """A floating-point format described only by the attributes the references use.

    p: precision (significand bits including the implicit one); emin: exponent of the
    smallest normal number; emax: largest exponent; max: largest finite value (a float);
    subnormals: whether subnormals exist; specials: one of ``SPECIALS``; saturate: whether
    overflow (and infinity) saturate to +-max.
    """

    name: str
    p: int
    emin: int
    emax: int
    max: float
    subnormals: bool = True
    specials: str = "ieee"
    saturate: bool = False

    def __post_init__(self):
        assert self.specials in SPECIALS, self.specials
        assert self.p >= 1 and self.emin <= self.emax


def _ieee_max(p, emax):
    return float((2 - Fraction(1, 2 ** (p - 1))) * Fraction(2) ** emax)


def binary64():
    return RefFormat("binary64", 53, -1022, 1023, _ieee_max(53, 1023))


def binary32():
    return RefFormat("binary32", 24, -126, 127, _ieee_max(24, 127))


def tfloat32():
    return RefFormat("tfloat32", 11, -126, 127, _ieee_max(11, 127))


def bfloat16():
    return RefFormat("bfloat16", 8, -126, 127, _ieee_max(8, 127))


def binary16():
    return RefFormat("binary16", 11, -14, 15, 65504.0)


def float8_e4m3():
    return RefFormat("float8_e4m3", 4, -6, 7, 240.0)


def float8_e4m3fn():
    return RefFormat("float8_e4m3fn", 4, -6, 8, 448.0, specials="fn")


def float8_e4m3fnuz():
    return RefFormat("float8_e4m3fnuz", 4, -7, 7, 240.0, specials="fnuz")


def float8_e5m2():
    return RefFormat("float8_e5m2", 3, -14, 15, 57344.0)


def float8_e5m2fnuz():
    return RefFormat("float8_e5m2fnuz", 3, -15, 15, 57344.0, specials="fnuz")


def float6_e3m2fn():
    return RefFormat("float6_e3m2fn", 3, -2, 4, 28.0, specials="finite", saturate=True)


def float6_e2m3fn():
    return RefFormat("float6_e2m3fn", 4, 0, 2, 7.5, specials="finite", saturate=True)


def float4_e2m1fn():
    return RefFormat("float4_e2m1fn", 2, 0, 2, 6.0, specials="finite", saturate=True)


def float8_e8m0fnu():
    return RefFormat(
        "float8_e8m0fnu", 1, -127, 127, float(Fraction(2) ** 127), subnormals=False,
        specials="e8m0",
    )


def e8m13():
    """[MS] "RZ-E8M13" (Hopper/Blackwell FP8 accumulation; [DS]: about 14 bits kept):
    13 fraction bits (p=14) with fp32's exponent range,
    including fp32's subnormal range (quantum 2^(-126-13)); values are stored as fp32."""
    return RefFormat("e8m13", 14, -126, 127, _ieee_max(14, 127))


ALL_FORMATS = (
    binary64, binary32, tfloat32, bfloat16, binary16, float8_e4m3, float8_e4m3fn,
    float8_e4m3fnuz, float8_e5m2, float8_e5m2fnuz, float6_e3m2fn, float6_e2m3fn,
    float4_e2m1fn, float8_e8m0fnu,
)


# --------------------------------------------------------------------------------------
# Small exact helpers
# --------------------------------------------------------------------------------------


def _val(x):
    """Normalise an input: ints and Fractions stay exact, everything else (floats, numpy
    scalars) becomes a Python float."""
    if isinstance(x, (int, Fraction)):
        return x
    return float(x)


def _is_nan(x):
    return isinstance(x, float) and x != x


def _is_inf(x):
    return isinstance(x, float) and math.isinf(x)


def _signbit(x):
    """True for negative values including -0.0 (Fractions carry no zero sign)."""
    if isinstance(x, float):
        return math.copysign(1.0, x) < 0
    return x < 0


def _neg(x):
    return -x  # float negation flips the sign of zero; Fraction negation is exact


def _frac(x):
    """Exact Fraction value of a finite int / float / Fraction."""
    if isinstance(x, float):
        assert math.isfinite(x), x
    return Fraction(x)


def _pow2(e):
    return Fraction(2) ** e


def floor_log2(a):
    """Exact floor(log2(a)) for a positive rational a (no float log2 is involved)."""
    a = Fraction(a)
    assert a > 0
    e = a.numerator.bit_length() - a.denominator.bit_length()
    # a lies in (2^(e-1), 2^(e+1)): one comparison decides
    if _pow2(e) > a:
        e -= 1
    assert _pow2(e) <= a < _pow2(e + 1)
    return e


def _name(fmt):
    return getattr(fmt, "name", repr(fmt))


def _signed_zero(negative):
    return -0.0 if negative else 0.0


# --------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------


def _overflow_value(negative, fmt):
    """What an overflowing round-to-nearest result (or an infinity) becomes."""
    if fmt.specials == "finite" or fmt.saturate:
        return -fmt.max if negative else fmt.max
    if fmt.specials == "ieee":
        return -INF if negative else INF
    return NAN  # fn, fnuz, e8m0: no infinity


def _decompose(v, fmt):
    """For a nonzero Fraction v return (negative, t, f, q) with |v| = (t + f) * 2^q,
    t an integer, 0 <= f < 1, and 2^q the quantum of fmt at |v| in an exponent range
    unbounded above.  (Spec: quantum 2^(max(e, emin)-p+1), e = floor(log2|v|); without
    subnormals, values below 2^emin use quantum 2^emin, i.e. round onto {0, 2^emin}.)"""
    negative = v < 0
    a = abs(v)
    e = floor_log2(a)
    if fmt.subnormals:
        q = max(e, fmt.emin) - fmt.p + 1
    else:
        q = fmt.emin if e < fmt.emin else e - fmt.p + 1
    m = a / _pow2(q)
    t = math.floor(m)
    return negative, t, m - t, q


def _sr_away(f, u, sr_bits):
    """Stochastic rounding decision: round away iff u < f (exact) or u < floor(f 2^r)."""
    if u is None:
        raise ValueError("mode 'sr' needs a random value u")
    if sr_bits is None:
        u = Fraction(u)
        if not 0 <= u < 1:
            raise ValueError("exact SR needs u in [0, 1)")
        return u < f
    if not (isinstance(u, int) and 0 <= u < 2**sr_bits):
        raise ValueError(f"SR with {sr_bits} bits needs an integer u in [0, 2^{sr_bits})")
    return u < math.floor(f * 2**sr_bits)


def ref_sr_probability(x, fmt, sr_bits=None):
    """Exact probability (a Fraction) that "sr" rounds x away from zero in fmt:
    f (the discarded fraction of a quantum) for exact SR, floor(f * 2^r) / 2^r with r
    random bits ([CHM] section 2: round up with probability equal to the discarded fraction
    of an ulp; with r random bits the probability is truncated to r bits, which biases it
    for small r)."""
    v = _frac(x)
    if v == 0:
        return Fraction(0)
    _, _, f, _ = _decompose(v, fmt)
    if sr_bits is None:
        return f
    return Fraction(math.floor(f * 2**sr_bits), 2**sr_bits)


def ref_round(x, fmt, mode="rne", u=None, sr_bits=None):
    """Round x (Fraction, int or float; floats are taken exactly) once to fmt.

    Rounding happens in an exponent range unbounded above, then overflow is applied:
    round-to-nearest modes, "ru" on positives, "rd" on negatives and "sr" when it rounded
    away give the format's overflow value (inf for "ieee", NaN for "fn"/"fnuz"/"e8m0",
    +-max for "finite" or saturating formats); "rz", "ro", the directed modes rounding
    toward zero and "sr" when it truncated give +-max.
    "ro" (round to odd): when inexact, the neighbour whose integer significand at the
    quantum is odd.  "sr": away from zero iff u < f (sr_bits None, u in [0, 1)) or
    u < floor(f 2^r) (u an integer in [0, 2^r)), f the discarded fraction of a quantum.
    Signed zeros: exact zeros keep their sign (floats only; a Fraction zero is +0), a
    nonzero value rounding to zero keeps the sign of the value; "fnuz" has only +0.
    e8m0: negative values, zero and NaN give NaN; a result of 0 becomes 2^emin.
    """
    if mode not in MODES:
        raise ValueError(f"unknown rounding mode {mode!r}")
    x = _val(x)
    if _is_nan(x):
        return NAN
    negative = _signbit(x)
    if fmt.specials == "e8m0" and (negative or x == 0):
        return NAN
    if _is_inf(x):
        return _overflow_value(negative, fmt)
    v = _frac(x)
    if v == 0:
        return 0.0 if fmt.specials == "fnuz" else _signed_zero(negative)

    negative, t, f, q = _decompose(v, fmt)
    if f == 0:
        away = False
    elif mode == "rne":
        away = f > Fraction(1, 2) or (f == Fraction(1, 2) and t % 2 == 1)
    elif mode == "rna":
        away = f >= Fraction(1, 2)
    elif mode == "rz":
        away = False
    elif mode == "ru":
        away = not negative
    elif mode == "rd":
        away = negative
    elif mode == "ro":
        away = t % 2 == 0
    else:  # "sr"
        away = _sr_away(f, u, sr_bits)

    mag = (t + (1 if away else 0)) * _pow2(q)

    if mag > Fraction(fmt.max):
        if mode in ("rne", "rna"):
            overflow_to_special = True
        elif mode == "ru":
            overflow_to_special = not negative
        elif mode == "rd":
            overflow_to_special = negative
        elif mode == "sr":
            overflow_to_special = away
        else:  # rz, ro
            overflow_to_special = False
        if overflow_to_special:
            return _overflow_value(negative, fmt)
        return -fmt.max if negative else fmt.max

    if mag == 0:
        if fmt.specials == "e8m0":
            return float(_pow2(fmt.emin))
        if fmt.specials == "fnuz":
            return 0.0
        return _signed_zero(negative)
    r = float(mag)  # exact: every format here is a subset of binary64
    assert Fraction(r) == mag
    return -r if negative else r


def ref_is_representable(x, fmt):
    """True iff the float x is a value of fmt (NaN / inf counted as representable when the
    format has them)."""
    if _is_nan(x):
        return fmt.specials != "finite"
    if _is_inf(x):
        return fmt.specials == "ieee"
    y = ref_round(x, fmt, "rz")
    return y == x and (y != 0 or fmt.specials != "fnuz" or not _signbit(x))


# --------------------------------------------------------------------------------------
# Encoding (formats of at most 16 bits)
# --------------------------------------------------------------------------------------


def _layout(fmt):
    """(sign bits, exponent bits, fraction bits, bias) of the standard layout of fmt."""
    mbits = fmt.p - 1
    if fmt.specials == "e8m0":
        bias = -fmt.emin
        return 0, (fmt.emax + bias + 1).bit_length(), mbits, bias
    if not fmt.subnormals:
        raise ValueError("encode/decode: only e8m0 is supported among formats without "
                         "subnormals")
    bias = 1 - fmt.emin
    top = fmt.emax + bias + (1 if fmt.specials == "ieee" else 0)  # largest exponent field
    ebits = top.bit_length()
    assert top == 2**ebits - 1, (_name(fmt), top)
    return 1, ebits, mbits, bias


def ref_decode(code, fmt):
    """Value (float) of the bit pattern `code` in fmt: sign bit on top, then the exponent
    field, then the fraction.  ieee: exponent all ones is inf (fraction 0) or NaN; fn: NaN
    is exponent and fraction all ones; fnuz: NaN is the sign bit alone (0x80); e8m0: no
    sign, no fraction, 0xFF is NaN."""
    sbits, ebits, mbits, bias = _layout(fmt)
    nbits = sbits + ebits + mbits
    if nbits > 16:
        raise ValueError("ref_decode handles formats of at most 16 bits")
    if not 0 <= code < 2**nbits:
        raise ValueError(f"code {code} out of range for {nbits} bits")
    emask, mmask = 2**ebits - 1, 2**mbits - 1
    negative = bool(sbits) and (code >> (ebits + mbits)) & 1 == 1
    E = (code >> mbits) & emask
    M = code & mmask
    if fmt.specials == "e8m0":
        return NAN if E == emask else float(_pow2(E - bias))
    if fmt.specials == "fnuz" and negative and E == 0 and M == 0:
        return NAN
    if fmt.specials == "ieee" and E == emask:
        return NAN if M else (-INF if negative else INF)
    if fmt.specials == "fn" and E == emask and M == mmask:
        return NAN
    if E == 0:
        mag = M * _pow2(fmt.emin - mbits)
    else:
        mag = (2**mbits + M) * _pow2(E - bias - mbits)
    assert mag <= Fraction(fmt.max), (_name(fmt), code)
    value = float(mag)
    return -value if negative else value


def ref_encode(value, fmt):
    """Bit pattern of the float `value`, which must be a value of fmt.  NaN encodes to
    the canonical NaN: ieee: sign clear, exponent all ones, top fraction bit set; fn:
    everything but the sign set; fnuz: 0b1000...; e8m0: 0xFF.  -0.0 encodes to +0 in
    fnuz (which has no -0).  The code is computed field by field and then checked by
    decoding it again."""
    sbits, ebits, mbits, bias = _layout(fmt)
    value = float(value)
    if _is_nan(value):
        if fmt.specials == "ieee":
            return ((2**ebits - 1) << mbits) | (1 << (mbits - 1) if mbits else 0)
        if fmt.specials == "fn":
            return 2 ** (ebits + mbits) - 1
        if fmt.specials == "fnuz":
            return 1 << (ebits + mbits)
        if fmt.specials == "e8m0":
            return 2**ebits - 1
        raise ValueError(f"{_name(fmt)} has no NaN")
    if fmt.specials == "fnuz" and value == 0:
        value = 0.0
    negative = _signbit(value)
    if negative and not sbits:
        raise ValueError(f"{value!r} is not a value of {_name(fmt)}")
    if _is_inf(value):
        E, M = 2**ebits - 1, 0
    elif value == 0:
        E, M = 0, 0
    else:
        mag = abs(Fraction(value))
        e = floor_log2(mag)
        if e < fmt.emin:  # subnormal: value = M 2^(emin - mbits)
            E, M = 0, mag / _pow2(fmt.emin - mbits)
        else:  # normal: value = (2^mbits + M) 2^(e - mbits)
            E, M = e + bias, mag / _pow2(e - mbits) - 2**mbits
        if M.denominator != 1 or not 0 <= E < 2**ebits:
            raise ValueError(f"{value!r} is not a value of {_name(fmt)}")
        M = int(M)
    code = (int(negative) << (ebits + mbits)) | (E << mbits) | M
    back = ref_decode(code, fmt)
    if not (back == value and _signbit(back) == negative):
        raise ValueError(f"{value!r} is not a value of {_name(fmt)}")
    return code


# --------------------------------------------------------------------------------------
# Exact atoms
# --------------------------------------------------------------------------------------


def _exact_mul(a, b):
    """Exact product as an exact value (float for zero / specials, else Fraction)."""
    a, b = _val(a), _val(b)
    if _is_nan(a) or _is_nan(b):
        return NAN
    negative = _signbit(a) != _signbit(b)
    if _is_inf(a) or _is_inf(b):
        if a == 0 or b == 0:
            return NAN  # 0 * inf
        return -INF if negative else INF
    if a == 0 or b == 0:
        return _signed_zero(negative)
    return _frac(a) * _frac(b)


def _exact_sum(values, mode):
    """Exact sum of exact values with IEEE 754 special and zero-sign rules:
    NaN if any NaN or if +inf and -inf both occur; an infinity if one occurs; an exact
    zero sum is -0 when all terms are zeros of sign -, +0 when all are +0, and otherwise
    +0 in every mode except "rd" (-0) (IEEE 754-2019 6.3)."""
    values = [_val(v) for v in values]
    if any(_is_nan(v) for v in values):
        return NAN
    infs = {_signbit(v) for v in values if _is_inf(v)}
    if len(infs) == 2:
        return NAN
    if infs:
        return -INF if infs.pop() else INF
    total = sum((_frac(v) for v in values), Fraction(0))
    if total != 0:
        return total
    if values and all(v == 0 for v in values):
        signs = {_signbit(v) for v in values}
        if len(signs) == 1:
            return _signed_zero(signs.pop())
    return _signed_zero(mode == "rd")


def ref_add(a, b, fmt, mode="rne", u=None, sr_bits=None):
    """a + b computed exactly, rounded once to fmt (IEEE zero-sign rules)."""
    return ref_round(_exact_sum([a, b], mode), fmt, mode, u, sr_bits)


def ref_sub(a, b, fmt, mode="rne", u=None, sr_bits=None):
    """a - b computed exactly, rounded once to fmt."""
    return ref_add(a, _neg(b), fmt, mode, u, sr_bits)


def ref_mul(a, b, fmt, mode="rne", u=None, sr_bits=None):
    """a * b computed exactly, rounded once to fmt."""
    return ref_round(_exact_mul(a, b), fmt, mode, u, sr_bits)


def ref_fma(a, b, c, fmt, mode="rne", u=None, sr_bits=None):
    """a * b + c computed exactly, rounded once to fmt."""
    return ref_round(_exact_sum([_exact_mul(a, b), c], mode), fmt, mode, u, sr_bits)


class _Rounder:
    """Applies one rounding mode; in "sr" mode draws u = rand(k), k = 0, 1, 2, ...,
    once per rounding in program order."""

    def __init__(self, mode, rand=None, sr_bits=None):
        if mode not in MODES:
            raise ValueError(f"unknown rounding mode {mode!r}")
        if mode == "sr" and rand is None:
            raise ValueError("mode 'sr' needs rand")
        self.mode, self.rand, self.sr_bits, self.k = mode, rand, sr_bits, 0

    def _u(self):
        if self.mode != "sr":
            return None
        u = self.rand(self.k)
        self.k += 1
        return u

    def round(self, x, fmt):
        return ref_round(x, fmt, self.mode, self._u(), self.sr_bits)

    def add(self, a, b, fmt):
        return ref_round(_exact_sum([a, b], self.mode), fmt, self.mode, self._u(),
                         self.sr_bits)

    def mul(self, a, b, fmt):
        return ref_round(_exact_mul(a, b), fmt, self.mode, self._u(), self.sr_bits)

    def fma(self, a, b, c, fmt):
        return ref_round(_exact_sum([_exact_mul(a, b), c], self.mode), fmt, self.mode,
                         self._u(), self.sr_bits)


def _check_lengths(a, b):
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError("a and b must have the same length")
    return a, b


# --------------------------------------------------------------------------------------
# Generic accumulators ([H] chapter 4, [KU], [DS])
# --------------------------------------------------------------------------------------


def ref_recursive(a, b, c, acc_fmt, mode="rne", product_fmt=None, fused=False, rand=None,
                  sr_bits=None):
    """Recursive (sequential) summation [H] section 4.1, each addition rounded to the
    accumulator format, with products exact, rounded, or fused (an FMA chain: one rounding
    per term).

    s = round(c); then for i = 0..n-1 in order:
      fused: s = round(a_i b_i + s) (one rounding);
      else:  p = a_i b_i exact (product_fmt None or "exact") or round(a_i b_i) to
             product_fmt in the same mode; s = round(s + p).
    SR random order: k=0 rounds c; then per term the product rounding (if any) and then
    the accumulation rounding.
    """
    a, b = _check_lengths(a, b)
    R = _Rounder(mode, rand, sr_bits)
    s = R.round(c, acc_fmt)
    for ai, bi in zip(a, b, strict=True):
        if fused:
            s = R.fma(ai, bi, s, acc_fmt)
            continue
        if product_fmt is None or product_fmt == "exact":
            p = _exact_mul(ai, bi)
        else:
            p = R.mul(ai, bi, product_fmt)
        s = R.add(s, p, acc_fmt)
    return s


def ref_fma_chain(a, b, c, fmt=None, mode="rne"):
    """fp64 mma on every NVIDIA architecture and AMD fp32/fp64 mfma [MS]: a chain of
    correctly rounded FMAs, one per term.  Default fmt binary64."""
    return ref_recursive(a, b, c, fmt or binary64(), mode, fused=True)


def ref_blocked(a, b, c, block, inner_fmt, outer_fmt, mode="rne", rand=None, sr_bits=None):
    """Blocked summation [H] section 4.2 (and Blanchard, Higham, Mary, "A class of fast
    and accurate summation algorithms", SISC 42 (2020)): blocks of b terms summed in one
    precision, block sums accumulated in another.

    Each block of `block` consecutive terms (the last one may be shorter) is summed
    recursively in inner_fmt starting from +0 with exact products (t = round(t + p));
    the block sum is then added (rounded to outer_fmt) to an accumulator that starts at
    round(c) in outer_fmt.  SR random order: k=0 rounds c; then per block its inner
    additions in order followed by the outer addition.
    """
    a, b = _check_lengths(a, b)
    if block < 1:
        raise ValueError("block must be >= 1")
    R = _Rounder(mode, rand, sr_bits)
    acc = R.round(c, outer_fmt)
    for start in range(0, len(a), block):
        t = 0.0
        for ai, bi in zip(a[start:start + block], b[start:start + block], strict=True):
            t = R.add(t, _exact_mul(ai, bi), inner_fmt)
        acc = R.add(acc, t, outer_fmt)
    return acc


def _tree_sum(values, fmt, R, flush=None):
    """Pairwise tree: pairs (0,1), (2,3), ... each sum rounded; an odd last element is
    carried up unchanged; repeat until one value is left."""
    level = list(values)
    assert level
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            s = R.add(level[i], level[i + 1], fmt)
            nxt.append(flush(s) if flush else s)
        if len(level) % 2 == 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def ref_pairwise(a, b, c, fmt, mode="rne", rand=None, sr_bits=None):
    """Pairwise (tree) summation [H] section 4.1.

    Products are exact and then rounded into fmt; the tree adds pairs (0,1), (2,3), ...
    (each sum rounded), carrying an odd last element up unchanged, level after level;
    finally round(c) is added: d = round(tree + round(c)).  With no terms d = round(c).
    SR random order: k=0 rounds c; then the n product roundings; then the tree additions
    level by level, left to right; then the final addition.
    """
    a, b = _check_lengths(a, b)
    R = _Rounder(mode, rand, sr_bits)
    cr = R.round(c, fmt)
    if not a:
        return cr
    products = [R.mul(ai, bi, fmt) for ai, bi in zip(a, b, strict=True)]
    tree = _tree_sum(products, fmt, R)
    return R.add(tree, cr, fmt)


def ref_kahan(a, b, c, fmt, mode="rne", rand=None, sr_bits=None):
    """Kahan compensated summation, every operation rounded to fmt, products exact:
    s = round(c), comp = 0; for each exact product p:
      y = round(p - comp); t = round(s + y); comp = round(round(t - s) - y); s = t.
    SR random order: k=0 rounds c, then per term y, t, (t - s), comp.
    """
    a, b = _check_lengths(a, b)
    R = _Rounder(mode, rand, sr_bits)
    s = R.round(c, fmt)
    comp = 0.0
    for ai, bi in zip(a, b, strict=True):
        p = _exact_mul(ai, bi)
        y = R.add(p, _neg(comp), fmt)
        t = R.add(s, y, fmt)
        comp = R.add(R.add(t, _neg(s), fmt), _neg(y), fmt)
        s = t
    return s


def ref_kulisch(a, b, c, fmt, mode="rne", u=None, sr_bits=None):
    """Kulisch-style exact (long fixed-point) accumulator [KU]: the exact sum
    of all products and c, rounded once (IEEE special / zero-sign rules, see
    _exact_sum)."""
    a, b = _check_lengths(a, b)
    terms = [_exact_mul(ai, bi) for ai, bi in zip(a, b, strict=True)] + [c]
    return ref_round(_exact_sum(terms, mode), fmt, mode, u, sr_bits)


def ref_promoted(a, b, c, chunk, low_step, high_fmt=None, mode="rne"):
    """Fine-grained promotion [DS] section 3.3: a low-precision unit sums N_C = 128
    elements of K, then the partial sum is promoted into fp32 on CUDA cores.

    For each chunk of `chunk` consecutive terms (the last may be shorter),
    partial = low_step(a_chunk, b_chunk, 0.0) (any reference with that call shape, e.g. a
    functools.partial of ref_fused_chain); then acc = round(acc + partial) in high_fmt
    (default binary32) with `mode` (default RNE); acc starts at round(c).
    """
    a, b = _check_lengths(a, b)
    high_fmt = high_fmt or binary32()
    acc = ref_round(c, high_fmt, mode)
    for start in range(0, len(a), chunk):
        partial = low_step(a[start:start + chunk], b[start:start + chunk], 0.0)
        acc = ref_add(acc, partial, high_fmt, mode)
    return acc


# --------------------------------------------------------------------------------------
# NVIDIA fused, truncated dot-product-add
# --------------------------------------------------------------------------------------

_NAMED_OUT = {
    "rz-fp32": (binary32, "rz", binary32),
    "rne-fp32": (binary32, "rne", binary32),
    "rne-fp16": (binary16, "rne", binary16),
    "rz-e8m13": (e8m13, "rz", binary32),
}


def _out_spec(out_fmt, out_rounding):
    """(rounding format, mode, storage format) of an output rounding."""
    if out_rounding in _NAMED_OUT:
        f, m, store = _NAMED_OUT[out_rounding]
        return f(), m, store()
    if out_fmt is None:
        raise ValueError(f"unknown out_rounding {out_rounding!r} and no out_fmt")
    return out_fmt, out_rounding, out_fmt


def _is_tf32(fmt):
    return fmt.p == 11 and fmt.emin == -126 and fmt.emax == 127


def _prepare_inputs(values, fmt, input_rounding):
    """Inputs as used by a unit.  input_rounding "check": each value must already be a
    value of fmt; "rz": truncate toward zero into fmt ([MS]: tf32 inputs, an fp32
    value is truncated toward zero to 10 fraction bits before use); "auto": "rz" for
    tf32-shaped formats (p=11 with fp32's range), else "check"."""
    if input_rounding == "auto":
        input_rounding = "rz" if _is_tf32(fmt) else "check"
    out = []
    for x in values:
        x = float(x)
        if input_rounding == "rz":
            x = ref_round(x, fmt, "rz") if math.isfinite(x) else x
        elif input_rounding == "check":
            if x != 0 and not ref_is_representable(x, fmt):
                raise ValueError(f"{x!r} is not a value of {_name(fmt)}")
        else:
            raise ValueError(f"unknown input_rounding {input_rounding!r}")
        out.append(x)
    return out


def _decode_se(x, fmt):
    """(s, e) of a nonzero finite x decoded in fmt ([MS] notation): 1 <= |s| < 2
    and x = s 2^e, except that e is clamped to fmt.emin (subnormals: |s| < 1)."""
    v = _frac(x)
    assert v != 0
    e = max(floor_log2(abs(v)), fmt.emin)
    return v / _pow2(e), e


def _special_dot(a, b, c, extra=()):
    """NaN / infinity outcome of sum a_i b_i + c (+ extra values), or None if all is
    finite: NaN if any NaN, 0 * inf, or inf - inf; else the infinity."""
    terms = [_exact_mul(ai, bi) for ai, bi in zip(a, b, strict=True)] + [c] + list(extra)
    if any(_is_nan(t) or _is_inf(t) for t in terms):
        return _exact_sum([t for t in terms if _is_nan(t) or _is_inf(t)], "rne")
    return None


def _trunc_int(x, how):
    if how == "rz":
        return math.trunc(x)
    if how == "floor":
        return math.floor(x)
    raise ValueError(f"unknown truncation {how!r}")


def ref_fused_step(a_vals, a_fmt, b_vals, b_fmt, c, c_fmt, F, e_zero, out_fmt=None,
                   out_rounding="rz-fp32", trunc="rz", input_rounding="auto", scale_a=1.0,
                   scale_b=1.0, group=1, scale_fmt=None, rz_overflow="max"):
    """One NVIDIA fused truncated dot-product-add step ([MS] and [FH]: exact products,
    alignment to the largest exponent, truncation, exact sum, one rounding; steps 1-5).

    1. "Every product p_i = a_i * b_i is formed exactly and kept as significand s_a*s_b
       ... (NOT renormalised) with exponent e_a+e_b. Each input is decoded with its own
       format's minimum exponent ... The addend c is decoded the same way in its format.
       A term that is exactly zero is given the fixed exponent e_zero".
    2. "e_max = the largest exponent among the L+1 terms."
    3. "s_i' = trunc(s_i * 2^(e_i - e_max + F)) * 2^-F" (trunc="rz"; trunc="floor"
       rounds toward minus infinity instead).
    4. "The aligned terms are summed exactly".
    5. "normalised, with the output format's subnormal range, and rounded once":
       out_rounding "rz-fp32", "rne-fp16", "rz-e8m13" (result stored as fp32),
       "rne-fp32" (out_fmt is then ignored and may be None), or a mode name with out_fmt.
       "A negative zero result is returned as +0; a NaN result is the canonical quiet
       NaN ...; infinities propagate, and inf - inf gives NaN."  Overflow of the
       rounding: RZ gives the largest finite value, RNE gives inf (ref_round).
    Block-scaled MX: "the two block scales multiplied into every product": scale_a and
    scale_b (positive powers of two, e.g. e8m0 values) add their exponents to every
    product's exponent; a NaN scale gives NaN.  They may be one value for the step or a
    sequence with one value per product.  With ``scale_fmt`` (e.g. e4m3 for NVFP4's
    ue4m3 scales) a scale is decoded like an input, s 2^e with e clamped at the format's
    emin: the product's significand is multiplied by both scale significands and its
    exponent gets both e; a zero scale makes the term zero (exponent e_zero).
    Grouped (``group`` = G > 1, mxf4 k=64: "first sums groups of G=16 products
    exactly, then runs the step"): as MMA-Sim ``gst_fdpa``, the exact group sum P
    (times both scale significands) is one term whose exponent is the sum of the two
    scale exponents alone (the magnitude of P does not enter the alignment); it gets
    e_zero only when all G products are zero (a sum that cancels keeps the scale
    exponent) or a scale is zero.  Scales must be equal within a group.
    ``rz_overflow``: "max" (ref_round: RZ overflow gives the largest finite value) or
    "inf" (MMA-Sim: the truncated value, >= 2^(emax+1), converts to an infinity).
    Inputs: see _prepare_inputs (tf32 formats truncate fp32 inputs by default).
    """
    a_vals, b_vals = _check_lengths(a_vals, b_vals)
    rfmt, rmode, _ = _out_spec(out_fmt, out_rounding)
    a_vals = _prepare_inputs(a_vals, a_fmt, input_rounding)
    b_vals = _prepare_inputs(b_vals, b_fmt, input_rounding)
    (c,) = _prepare_inputs([c], c_fmt, "check")
    n = len(a_vals)
    sc_a = _per_product(scale_a, n, "scale_a")
    sc_b = _per_product(scale_b, n, "scale_b")
    if any(_is_nan(x) for x in sc_a + sc_b):
        return NAN
    special = _special_dot(a_vals, b_vals, c)
    if special is not None:
        return special
    if rz_overflow not in ("max", "inf"):
        raise ValueError(f"rz_overflow must be 'max' or 'inf', got {rz_overflow!r}")
    dec_a = [_decode_scale(x, scale_fmt) for x in sc_a]
    dec_b = [_decode_scale(x, scale_fmt) for x in sc_b]

    terms = []  # (significand, exponent)
    if group == 1:
        for ai, bi, (ssa, esa), (ssb, esb) in zip(a_vals, b_vals, dec_a, dec_b,
                                                  strict=True):
            if ai == 0 or bi == 0 or ssa == 0 or ssb == 0:
                terms.append((Fraction(0), e_zero))
            else:
                sa, ea = _decode_se(ai, a_fmt)
                sb, eb = _decode_se(bi, b_fmt)
                terms.append((sa * sb * ssa * ssb, ea + eb + esa + esb))
    else:
        if n % group:
            raise ValueError(f"{n} products are not a multiple of group={group}")
        for g in range(0, n, group):
            idx = range(g, g + group)
            if len({sc_a[i] for i in idx}) > 1 or len({sc_b[i] for i in idx}) > 1:
                raise ValueError("scales must be equal within a group")
            (ssa, esa), (ssb, esb) = dec_a[g], dec_b[g]
            if all(a_vals[i] == 0 or b_vals[i] == 0 for i in idx) or ssa == 0 or ssb == 0:
                terms.append((Fraction(0), e_zero))
            else:
                P = sum(_frac(a_vals[i]) * _frac(b_vals[i]) for i in idx)
                terms.append((P * ssa * ssb, esa + esb))
    if c == 0:
        terms.append((Fraction(0), e_zero))
    else:
        terms.append(_decode_se(c, c_fmt))

    e_max = max(e for _, e in terms)
    total = sum(_trunc_int(s * _pow2(e - e_max + F), trunc) for s, e in terms)
    exact_sum = total * _pow2(e_max - F)
    if rz_overflow == "inf" and rmode == "rz" and abs(exact_sum) >= _pow2(rfmt.emax + 1):
        return INF if exact_sum > 0 else -INF
    d = ref_round(exact_sum, rfmt, rmode)
    if d == 0:
        d = 0.0  # "A negative zero result is returned as +0"
    return d


def _per_product(scale, n, name):
    """A block scale given for the whole step or one per product, as a list of n floats."""
    if isinstance(scale, int | float | Fraction):
        return [float(scale)] * n
    out = [float(x) for x in scale]
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} values for {n} products")
    return out


def _decode_scale(s, scale_fmt):
    """(significand, exponent) of a finite block scale: scale_fmt None: a positive power
    of two (e8m0) -> (1, log2 s); else decoded in scale_fmt (exponent clamped at its
    emin); a zero scale -> (0, None)."""
    if scale_fmt is None:
        if not (s > 0 and math.isfinite(s) and Fraction(s) == _pow2(floor_log2(s))):
            raise ValueError("block scales must be positive powers of two")
        return Fraction(1), floor_log2(s)
    if s < 0 or not math.isfinite(s):
        raise ValueError("block scales must be non-negative and finite (or NaN)")
    if s == 0:
        return Fraction(0), None
    if not ref_is_representable(s, scale_fmt):
        raise ValueError(f"{s!r} is not a value of {_name(scale_fmt)}")
    return _decode_se(s, scale_fmt)


def ref_chain(step, a, b, c, L, pad=True):
    """A matrix product with K larger than L chains steps [MS]:
    c <- step(a[k:k+L], b[k:k+L], c).  step(a_block, b_block, c) -> float.  With
    pad=True a short last block is padded with +0.0 products to L terms (what a caller
    does to feed an L-wide unit; padding only matters through e_zero)."""
    a, b = _check_lengths(a, b)
    for k in range(0, len(a), L):
        ab, bb = a[k:k + L], b[k:k + L]
        if pad and len(ab) < L:
            ab = ab + [0.0] * (L - len(ab))
            bb = bb + [0.0] * (L - len(bb))
        c = step(ab, bb, c)
    return c


def ref_fused_chain(A_row, B_col, c, a_fmt, b_fmt, c_fmt, F, e_zero, out_fmt=None,
                    out_rounding="rz-fp32", L=8, trunc="rz", input_rounding="auto",
                    pad=True):
    """Chain of ref_fused_step along K ([MS]: c <- step(a[k:k+L], b[k:k+L], c)).
    The first step decodes c in c_fmt; later steps decode the previous output in the
    output's storage format (fp32 for "rz-e8m13")."""
    _, _, store = _out_spec(out_fmt, out_rounding)
    state = {"c_fmt": c_fmt}

    def step(ab, bb, cc):
        d = ref_fused_step(ab, a_fmt, bb, b_fmt, cc, state["c_fmt"], F, e_zero, out_fmt,
                           out_rounding, trunc, input_rounding)
        state["c_fmt"] = store
        return d

    return ref_chain(step, A_row, B_col, c, L, pad)


# --------------------------------------------------------------------------------------
# AMD matrix cores ([MS], mmasim/amd/sim.py parameter tables; docs/hwmodels.md)
# --------------------------------------------------------------------------------------


def ref_cdna1_step(a, b, c, a_fmt=None, b_fmt=None, c_fmt=None):
    """CDNA1 (MI100): "exact sum of the L products and c, one round-to-nearest-even to
    fp32".  Inputs are checked against their formats when those are given (default
    c_fmt fp32)."""
    if a_fmt is not None:
        a = _prepare_inputs(a, a_fmt, "check")
    if b_fmt is not None:
        b = _prepare_inputs(b, b_fmt, "check")
    (c,) = _prepare_inputs([c], c_fmt or binary32(), "check")
    return ref_kulisch(a, b, c, binary32(), "rne")


def _flush(x, fmt):
    """Flush a subnormal of fmt to a zero of the same sign."""
    if isinstance(x, float) and math.isfinite(x) and x != 0 and abs(x) < 2.0**fmt.emin:
        return math.copysign(0.0, x)
    return x


def ref_cdna2_step(a, b, c, a_fmt, b_fmt, c_fmt=None, P=4):
    """CDNA2 (MI200): "subnormal inputs flushed to zero; products formed in fp32 and
    flushed; then pairwise fp32 additions (round to nearest) of P=4 products (P=2 for the
    older bf16 instructions without the _1k suffix), and the pair-sum added to c, every
    fp32 result flushed to zero if subnormal".

    Reading: a, b flushed in their formats and c (fp32) flushed -- c is an input too;
    p_i = flush(RNE_fp32(a_i b_i)) (formed, i.e. rounded, then flushed); each group of P
    consecutive products is summed as the tree ((p0+p1)+(p2+p3)) (P=4) with every sum
    RNE to fp32 then flushed; acc = flush(RNE(acc + group)), acc starting at c.  When
    len(a) > P the groups are added to acc in order.  Flushing keeps the sign of zero.
    """
    a, b = _check_lengths(a, b)
    f32 = binary32()
    a = [_flush(x, a_fmt) for x in _prepare_inputs(a, a_fmt, "check")]
    b = [_flush(x, b_fmt) for x in _prepare_inputs(b, b_fmt, "check")]
    (c,) = _prepare_inputs([c], c_fmt or f32, "check")
    acc = _flush(c, c_fmt or f32)
    R = _Rounder("rne")

    def fl(x):
        return _flush(x, f32)

    for start in range(0, len(a), P):
        products = [fl(R.mul(ai, bi, f32)) for ai, bi in zip(a[start:start + P],
                                                            b[start:start + P], strict=True)]
        group = _tree_sum(products, f32, R, flush=fl)
        acc = fl(R.add(acc, group, f32))
    return acc


def ref_cdna3_step(a, b, c, a_fmt, b_fmt, c_fmt=None, F=24, F2=31, groups=1,
                   product_trunc="floor", c_align="max", combine="exact", c_drop_gap=None,
                   input_rounding="auto"):
    """CDNA3 (MI300) fp16 / bf16 / xf32: "products aligned and truncated (round toward
    minus infinity, floor) to F=24 bits and summed; c aligned separately with F=24; the
    sum truncated to F2=31 bits, then rounded to nearest even to fp32. Rounding is
    asymmetric for negative values".  fp8/bf8 (groups=2): "as above, but the even- and
    odd-indexed products are summed in two separate groups first, then combined".

    Reading (each ambiguity is a keyword):
    * Products are exact terms (s_a s_b, e_a + e_b) decoded as in the [MS]
      notation (own-format minimum exponents, not renormalised).  Zero products have no
      exponent and contribute 0.  In each group, every product is aligned to the group's
      largest exponent e_g and truncated to F fractional bits with `product_trunc`
      ("floor" as the accumulator descriptions of [MS] word it; "rz" toward zero, what the
      MMA-Sim code does, docs/hwmodels.md), then summed exactly.
    * combine (groups=2): "exact" adds the two group sums exactly (literal); "floor"
      first floors each to F bits relative to e_p = max(e_g).
    * e_p = largest product exponent; e_c = exponent of c; e_m = max(e_p, e_c).
      c_align="max": c is floored to F fractional bits relative to e_m ("separately":
      c does not take part in the products' alignment); "own": relative to e_c (exact
      for fp32 c).  c_drop_gap=g: c counts as 0 when e_c < e_m - g.
    * "the sum" P + c' is floored to F2 fractional bits relative to e_m and then rounded
      RNE to fp32 (an exact zero gives +0).
    * xf32: tf32-shaped a_fmt / b_fmt truncate fp32 inputs to 10 fraction bits.
    """
    a, b = _check_lengths(a, b)
    f32 = binary32()
    c_fmt = c_fmt or f32
    a = _prepare_inputs(a, a_fmt, input_rounding)
    b = _prepare_inputs(b, b_fmt, input_rounding)
    (c,) = _prepare_inputs([c], c_fmt, "check")
    special = _special_dot(a, b, c)
    if special is not None:
        return special
    if groups not in (1, 2):
        raise ValueError("groups must be 1 or 2")

    group_sums = []  # (exact sum, e_g)
    for g in range(groups):
        terms = []
        for i in range(g, len(a), groups):
            if a[i] != 0 and b[i] != 0:
                sa, ea = _decode_se(a[i], a_fmt)
                sb, eb = _decode_se(b[i], b_fmt)
                terms.append((sa * sb, ea + eb))
        if terms:
            e_g = max(e for _, e in terms)
            total = sum(_trunc_int(s * _pow2(e - e_g + F), product_trunc) for s, e in terms)
            group_sums.append((total * _pow2(e_g - F), e_g))

    exps = []
    P = Fraction(0)
    if group_sums:
        e_p = max(e for _, e in group_sums)
        exps.append(e_p)
        for G, _ in group_sums:
            if combine == "exact":
                P += G
            elif combine == "floor":
                P += math.floor(G / _pow2(e_p - F)) * _pow2(e_p - F)
            else:
                raise ValueError(f"unknown combine {combine!r}")
    e_c = None
    if c != 0:
        _, e_c = _decode_se(c, c_fmt)
        exps.append(e_c)
    if not exps:
        return 0.0
    e_m = max(exps)

    cv = Fraction(0)
    if e_c is not None and not (c_drop_gap is not None and e_c < e_m - c_drop_gap):
        if c_align == "max":
            ref = e_m
        elif c_align == "own":
            ref = e_c
        else:
            raise ValueError(f"unknown c_align {c_align!r}")
        cv = math.floor(_frac(c) / _pow2(ref - F)) * _pow2(ref - F)

    S = math.floor((P + cv) / _pow2(e_m - F2)) * _pow2(e_m - F2)
    return ref_round(S, f32, "rne")


def ref_cdna3_fp8_step(a, b, c, a_fmt, b_fmt, c_fmt=None, **kw):
    """CDNA3 fp8/bf8 (L=16): ref_cdna3_step with the even- and odd-indexed products
    summed in two separate groups first (groups=2)."""
    return ref_cdna3_step(a, b, c, a_fmt, b_fmt, c_fmt, groups=2, **kw)
