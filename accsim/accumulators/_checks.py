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

Exact sums. :func:`sums_exact` proves from the same statistics that every binary64 sum
an accumulator kernel forms (accumulator value + term) is exact, which lets the fast
rounding paths skip their TwoSum guards (:mod:`accsim.kernels.accumulate`). Argument: every
product is a multiple of ``2^L`` (``L`` = sum of the lowest set-bit exponents of A and
B), every rounding of a multiple of ``2^L`` is either exact or a multiple of a quantum
``> 2^L``, so every accumulator value is a multiple of ``2^L`` (``L`` lowered to cover C);
a sum of two multiples of ``2^L`` below ``2^(53 + L)`` in magnitude is exact in binary64.
"""

from __future__ import annotations

import math

import numpy as np

from accsim.kernels.stats import NONE as _NONE
from accsim.kernels.stats import stats2d
from accsim.kernels.vocab import RoundingMode
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import check_sr_bits


def fmt_or_none(f) -> FloatFormat | None:
    return None if f is None else get_format(f)


def fmt_required(f, what: str) -> FloatFormat:
    if f is None:
        raise ValueError(f"{what} is required (a format name or FloatFormat)")
    return get_format(f)


def check_mode(mode: str, sr_bits, what: str = "mode") -> tuple[int, int]:
    """Kernel (mode, r) codes; ValueError listing valid modes / sr_bits rule."""
    return int(RoundingMode.parse(mode, what)), check_sr_bits(mode, sr_bits)


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
    """(max significant bits, min lowest-set-bit exponent, max |x|) over finite
    nonzero entries of X ((0, large, 0) when there are none)."""
    X = np.asarray(X, np.float64)
    if X.ndim != 2:
        X = X.reshape(1, -1) if X.size else np.zeros((1, 0))
    sig, low, mx = stats2d(X)
    return int(sig), int(low), float(mx)


def _growth(p: int, n: int) -> float:
    """Bound on the magnitude growth of ``n`` roundings to ``p`` bits (any mode)."""
    return math.exp(min(n * math.log1p(2.0 ** (1 - p)), 700.0))


def sums_exact(A: np.ndarray, B: np.ndarray, C: np.ndarray | None,
               fmts: list[FloatFormat], n_round: int, products: bool = True) -> bool:
    """Whether every sum ``x + y`` a kernel forms is exact in binary64, where ``y`` is a
    product ``a_ik b_kj`` (or a value derived from such products by rounding into
    ``fmts``) and ``x`` an accumulator value in one of ``fmts`` derived from products
    and ``c`` by at most ``n_round`` roundings (see the module docstring).

    ``products=True``: every ``y`` is a single exact product (``|y| <= max|A| max|B|``);
    else ``y`` is a product or bounded like an accumulator value. Every finite value of
    a format is at most its ``max``, so a huge ``n_round`` gives a bound valid for any
    order of operations. Conservative: False when unsure.
    """
    _, la, ma = _sig_stats(A)
    _, lb, mb = _sig_stats(B)
    lc, mc = _NONE, 0.0
    if C is not None:
        _, lc, mc = _sig_stats(C)
    if la >= _NONE or lb >= _NONE:  # no nonzero product: only c and zeros
        L, P = lc, 0.0
    else:
        L, P = min(la + lb, lc), ma * mb
    if L >= _NONE:
        return True  # everything is zero
    if L < -1074 or not math.isfinite(P):
        return False
    K = A.shape[1]
    p = min(f.p for f in fmts)
    q = max(math.ldexp(1.0, f.emin - f.p + 1) for f in fmts)
    bound = (mc + K * P + (n_round + 1) * q) * _growth(p, n_round + 1)
    X = min(bound, max(f.max for f in fmts))
    Y = P if products else max(P, X)
    lim = math.ldexp(1.0, 53 + L) if L < 900 else math.inf
    return X + Y < lim


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
