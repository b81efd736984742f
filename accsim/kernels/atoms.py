"""Arithmetic atoms rounded once: add, multiply and fused multiply-add.

Each atom forms the exact result as an unevaluated pair ``hi + lo`` with error-free
transformations (TwoSum; TwoProd through a true FMA) and rounds it once with
:func:`~accsim.kernels.rounding.round_dd`; nothing is computed in binary64 and rounded
a second time. Exactness conditions (checked by the Python callers):

* ``add_round``: always exact (TwoSum is exact barring binary64 overflow, which is
  handled as an overflow of the target format).
* ``mul_round``: exact; products below 2^-969 (where the TwoProd error term could
  underflow) are rescaled to the format's smallest quantum first (``_mul_round_tiny``).
* ``fma_round``: exact when the product is exact in binary64 (``p_a + p_b <= 53``, i.e.
  all inputs up to binary32/tf32), or for binary64 targets in RNE (hardware FMA).
"""

import math

from numba import njit

from accsim.kernels.bits import JIT, fma, two_prod, two_sum
from accsim.kernels.rounding import overflow_result, round_dd
from accsim.kernels.vocab import RNE, KernelFormat, away_mode, exact_zero_sign


@njit(**JIT)
def _finite_overflow(s, fmt, mode):
    neg = s < 0.0
    return overflow_result(neg, away_mode(mode, neg), fmt.maxv, fmt.ovf)


@njit(**JIT)
def _exact_zero_sign(x, y, mode):
    """Sign of an exact zero sum x + y (IEEE 754 §6.3): -0 if both addends are -0, or
    in RD unless both are +0; +0 otherwise."""
    if x == 0.0 and y == 0.0 and math.copysign(1.0, x) == math.copysign(1.0, y):
        return x
    return exact_zero_sign(mode)


@njit(**JIT)
def add_round(a, b, fmt, mode, r, seed, stream, ctr):
    """``round(a + b)`` into the format, exactly once."""
    s, t = two_sum(a, b)
    if math.isinf(s) and not (math.isinf(a) or math.isinf(b)):
        return _finite_overflow(s, fmt, mode)
    if not math.isfinite(s):
        t = 0.0
    elif s == 0.0:
        s = _exact_zero_sign(a, b, mode)
    return round_dd(s, t, fmt, mode, r, seed, stream, ctr)


_TINY_PRODUCT = 2.0**-969  # below this the TwoProd error term may underflow


@njit(**JIT)
def _mul_round_tiny(a, b, fmt, mode, r, seed, stream, ctr):
    """``round(a * b)`` for finite nonzero ``a, b`` whose product is below 2^-969.

    Works at the scale of the format's smallest quantum ``2^q``: ``y = a b 2^-q`` is
    formed exactly by TwoProd of the rescaled operands (``a`` brought to [0.5, 1), the
    whole factor ``2^-q`` put on ``b``; ``|y| < 2^107`` cannot overflow), rounded once
    into the format with ``emin`` shifted by ``-q`` (same significands, quanta scaled by
    ``2^-q``), and scaled back exactly. If even ``y`` underflows (``|a b|`` below about
    ``2^(q-1022)``, far under half a quantum) a tiny nonzero stand-in of the right sign
    gives the same decision in every mode (SR: probability below 2^-1022 instead of
    the exact one).
    """
    p, emin, maxv, sub, ovf, flags = fmt
    q = emin - (p - 1) if sub else emin
    ea = math.frexp(a)[1]
    a_s = math.ldexp(a, -ea)
    b_s = math.ldexp(b, ea - q)
    s, t = two_prod(a_s, b_s)
    if abs(s) < _TINY_PRODUCT:
        s = math.copysign(5e-324, a) * math.copysign(1.0, b)
        t = 0.0
    scaled = KernelFormat(p, emin - q, math.ldexp(maxv, -q), sub, ovf, flags)
    res = round_dd(s, t, scaled, mode, r, seed, stream, ctr)
    return math.ldexp(res, q)


@njit(**JIT)
def mul_round(a, b, fmt, mode, r, seed, stream, ctr):
    """``round(a * b)`` into the format, exactly once (tiny products included)."""
    s, t = two_prod(a, b)
    if math.isinf(s) and not (math.isinf(a) or math.isinf(b)):
        return _finite_overflow(s, fmt, mode)
    if abs(s) < _TINY_PRODUCT and a != 0.0 and b != 0.0 and math.isfinite(a) \
            and math.isfinite(b):
        return _mul_round_tiny(a, b, fmt, mode, r, seed, stream, ctr)
    if not math.isfinite(s) or s == 0.0:
        t = 0.0
    return round_dd(s, t, fmt, mode, r, seed, stream, ctr)


@njit(**JIT)
def fma_round(a, b, c, fmt, mode, r, seed, stream, ctr):
    """``round(a * b + c)`` into the format, exactly once.

    The product ``a * b`` must be exact in binary64 (see module docstring); for a
    binary64 target in RNE the hardware FMA is used directly.
    """
    if fmt.p == 53 and mode == RNE:
        return round_dd(fma(a, b, c), 0.0, fmt, mode, r, seed, stream, ctr)
    prod = a * b
    s, t = two_sum(prod, c)
    if math.isinf(s) and not (math.isinf(prod) or math.isinf(c)):
        return _finite_overflow(s, fmt, mode)
    if not math.isfinite(s):
        t = 0.0
    elif s == 0.0:
        s = _exact_zero_sign(prod, c, mode)
    return round_dd(s, t, fmt, mode, r, seed, stream, ctr)


@njit(**JIT)
def add_array(a, b, out, fmt, mode, r, seed):
    """``out[i] = round(a[i] + b[i])`` (SR key ``(seed, 0, i)``)."""
    for i in range(out.shape[0]):
        out[i] = add_round(a[i], b[i], fmt, mode, r, seed, 0, i)


@njit(**JIT)
def mul_array(a, b, out, fmt, mode, r, seed):
    """``out[i] = round(a[i] * b[i])`` (SR key ``(seed, 0, i)``)."""
    for i in range(out.shape[0]):
        out[i] = mul_round(a[i], b[i], fmt, mode, r, seed, 0, i)


@njit(**JIT)
def fma_array(a, b, c, out, fmt, mode, r, seed):
    """``out[i] = round(a[i] * b[i] + c[i])`` (SR key ``(seed, 0, i)``)."""
    for i in range(out.shape[0]):
        out[i] = fma_round(a[i], b[i], c[i], fmt, mode, r, seed, 0, i)
