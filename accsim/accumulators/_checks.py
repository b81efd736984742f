"""Validation shared by the generic families: formats, modes and exact products.

Exact products. The generic families form ``a * b`` in binary64 and rely on it being
exact. With declared input formats this is checked once, at construction:
``p_a + p_b <= 53`` and the smallest product quantum ``2^(emin_a - p_a + 1 + emin_b -
p_b + 1) >= 2^-1074`` and ``max_a * max_b < 2^1024`` (true for every format up to
binary32/tf32). Without declared formats (``a_format``/``b_format`` None) the rule is
checked on the data by :func:`check_exact_products`: the largest number of significant
bits of a finite nonzero entry of A plus that of B must be <= 53, the sum of their
lowest set-bit exponents >= -1074, and ``max|A| * max|B|`` finite. This is O(MK + KN),
conservative (a pair that is never multiplied can reject), and passes every matrix of
binary32 (or narrower) values.
"""

from __future__ import annotations

import math

import numpy as np

from ..formats import FloatFormat
from ..formats import format as get_format
from ..rounding import check_sr_bits, mode_code

MODES = ("rne", "rna", "rz", "ru", "rd", "ro", "sr")


def fmt_or_none(f) -> FloatFormat | None:
    return None if f is None else get_format(f)


def fmt_required(f, what: str) -> FloatFormat:
    if f is None:
        raise ValueError(f"{what} is required (a format name or FloatFormat)")
    return get_format(f)


def check_mode(mode: str, sr_bits, what: str = "mode") -> tuple[int, int]:
    """Kernel (mode, r) codes; ValueError listing valid modes / sr_bits rule."""
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise ValueError(f"unknown rounding {what} {mode!r}; valid: {', '.join(MODES)}")
    return mode_code(mode), check_sr_bits(mode, sr_bits)


def check_format_products(a: FloatFormat | None, b: FloatFormat | None, model: str) -> None:
    """ValueError unless every product of an ``a`` value and a ``b`` value is exact in
    binary64 (no-op when either format is None: checked on data instead)."""
    if a is None or b is None:
        return
    if a.p + b.p > 53:
        raise ValueError(
            f"{model}: products of {a.name} (p={a.p}) and {b.name} (p={b.p}) are not exact "
            f"in binary64 (needs p_a + p_b <= 53)"
        )
    lo = (a.emin - a.p + 1) + (b.emin - b.p + 1)
    if lo < -1074 or math.log2(a.max) + math.log2(b.max) >= 1024:
        raise ValueError(
            f"{model}: products of {a.name} and {b.name} leave the binary64 exponent range"
        )


def _sig_stats(X: np.ndarray) -> tuple[int, int, float]:
    """(max significant bits, min lowest-set-bit exponent, max |x|) over finite nonzero
    entries of X ((0, large, 0) when there are none)."""
    x = X[np.isfinite(X) & (X != 0)]
    if x.size == 0:
        return 0, 10**6, 0.0
    m, e = np.frexp(np.abs(x))  # |x| = m 2^e, m in [0.5, 1)
    mi = np.ldexp(m, 53).astype(np.int64)  # exact 53-bit integer significand
    low = mi & -mi
    tz = np.log2(low.astype(np.float64)).astype(np.int64)  # exact: low is a power of 2
    sig = 53 - tz
    lsb = e.astype(np.int64) - 53 + tz
    return int(sig.max()), int(lsb.min()), float(np.abs(x).max())


def check_exact_products(A: np.ndarray, B: np.ndarray, model: str) -> None:
    """Data-dependent exact-product rule (see module docstring); ValueError if broken."""
    sa, la, ma = _sig_stats(A)
    sb, lb, mb = _sig_stats(B)
    if sa == 0 or sb == 0:
        return
    if sa + sb > 53:
        raise ValueError(
            f"{model}: products A*B may be inexact in binary64: A has values with {sa} and "
            f"B with {sb} significant bits (the sum must be <= 53); round the inputs "
            "(accsim.round) or declare a_format/b_format"
        )
    if la + lb < -1074:
        raise ValueError(f"{model}: products A*B may underflow binary64 (tiny inputs)")
    if not math.isfinite(ma * mb):
        raise ValueError(f"{model}: products A*B may overflow binary64 (huge inputs)")
