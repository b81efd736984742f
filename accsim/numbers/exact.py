"""Exact references: ``A @ B + C`` computed exactly, then rounded once.

Every function accepts float arrays of any precision up to binary64 (numpy floats or
ml_dtypes arrays; values are taken exactly). Products are *not* assumed exact in
binary64: each product is split with TwoProd (a true FMA) into two binary64 numbers, or,
when that could under/overflow, computed from the factors' significands with the
exponent carried separately. All terms go into a long fixed-point accumulator (see
:mod:`accsim.kernels.exact_kernels`), so the sum is exact, and the result is rounded
once, to nearest even.

Special values follow IEEE 754: a NaN operand, ``inf * 0`` or ``inf - inf`` gives NaN;
otherwise an infinite product or addend gives that infinity. A finite exact sum beyond
the binary64 range rounds to +-inf (RNE). An exact zero is returned as +0.0 (the sign of
a zero sum of signed zeros is not tracked).
"""

from __future__ import annotations

import numpy as np

from accsim.kernels import exact_kernels as _k
from accsim.numbers.arrays import check_matmul_shapes

__all__ = ["matmul", "matmul_dd", "dot", "residual", "abs_matmul", "products_exact_in_binary64"]


def products_exact_in_binary64(A: np.ndarray, B: np.ndarray) -> bool:
    """True if every value of ``A`` and ``B`` is a finite binary32 number; then every
    product ``a * b`` is exact in binary64 (24 + 24 <= 53 significand bits, and
    ``2^-298 <= |a b| < 2^256`` lies in binary64's normal range)."""
    for X in (A, B):
        if X.size == 0:
            continue
        if not np.isfinite(X).all():
            return False
        with np.errstate(over="ignore"):
            if not np.array_equal(X.astype(np.float32).astype(np.float64), X):
                return False
    return True


PARALLEL_MIN_MACS = 1 << 16  # below this many MACs run serially (thread start-up)


def _prepare(A, B, C):
    A, B, C = check_matmul_shapes(A, B, C)
    BT = np.ascontiguousarray(B.T)
    return A, BT, C


def _run(A, BT, C, D, out, kind):
    macs = A.shape[0] * BT.shape[0] * max(A.shape[1], 1)
    if macs >= PARALLEL_MIN_MACS and A.shape[0] > 1:
        _k.matmul_exact_par(A, BT, C, D, out, kind)
    else:
        _k.matmul_exact_ser(A, BT, C, D, out, kind)


def matmul(A, B, C=None) -> np.ndarray:
    """The binary64 number nearest (ties to even) to the exact ``A @ B + C``.

    Parameters
    ----------
    A : array_like, shape (M, K)
    B : array_like, shape (K, N)
    C : array_like, shape (M, N) or broadcastable, optional (zeros)

    Returns
    -------
    numpy.ndarray of float64, shape (M, N)
    """
    A, BT, C = _prepare(A, B, C)
    out = np.empty(C.shape, np.float64)
    _run(A, BT, C, C, out, 1 if products_exact_in_binary64(A, BT) else 0)
    return out


def matmul_dd(A, B, C=None, *, return_exact: bool = False):
    """The exact ``S = A @ B + C`` as an unevaluated pair ``hi + lo``.

    ``hi = RN(S)`` and ``lo = RN(S - hi)`` (both round to nearest even, computed from the
    exact ``S``). The pair is exact, ``hi + lo == S``, if and only if ``S - hi`` is a
    binary64 number; that holds in particular whenever ``S`` itself fits in 106 bits
    (two binary64 significands) with ``S - hi`` not below the subnormal grid, e.g. a
    single fused product plus addend of binary32 inputs. Otherwise the pair is faithful
    to within one further rounding: ``|S - (hi + lo)| <= 2^-53 |S - hi| <= 2^-106 |S|``
    when ``S - hi`` is in the normal range, and ``<= 2^-1075`` in absolute terms below
    it. If ``hi`` overflows to +-inf the pair is ``(+-inf, 0)`` and inexact; for NaN or
    infinite results ``lo = 0``.

    Parameters
    ----------
    A, B, C : array_like
        As :func:`matmul`.
    return_exact : bool
        Also return a bool array, True where ``hi + lo == S`` exactly.

    Returns
    -------
    hi, lo : numpy.ndarray of float64
    exact : numpy.ndarray of bool, only with ``return_exact=True``
    """
    A, BT, C = _prepare(A, B, C)
    hi = np.empty(C.shape, np.float64)
    lo = np.empty(C.shape, np.float64)
    ex = np.empty(C.shape, np.bool_)
    if A.shape[0] * BT.shape[0] * max(A.shape[1], 1) >= PARALLEL_MIN_MACS:
        _k.matmul_dd_par(A, BT, C, hi, lo, ex)
    else:
        _k.matmul_dd_ser(A, BT, C, hi, lo, ex)
    if return_exact:
        return hi, lo, ex
    return hi, lo


def dot(a, b, c: float = 0.0) -> float:
    """The binary64 number nearest to the exact ``sum_i a_i b_i + c``."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {a.shape} and {b.shape}")
    return float(matmul(a[None, :], b[:, None], np.array([[c]], np.float64))[0, 0])


def abs_matmul(A, B, C=None) -> np.ndarray:
    """``RN(|A| @ |B| + |C|)`` (exact sum rounded once): the condition numerator."""
    A, B, C = check_matmul_shapes(A, B, C)
    return matmul(np.abs(A), np.abs(B), np.abs(C))


def residual(D, A, B, C=None) -> np.ndarray:
    """``RN(D - (A @ B + C))`` computed exactly and rounded once (the signed error of a
    computed result ``D``; ``|RN(e) - e| <= 2^-53 |e|`` or ``2^-1075`` when tiny)."""
    A, BT, C = _prepare(A, B, C)
    D = np.ascontiguousarray(np.broadcast_to(np.asarray(D, np.float64), C.shape))
    out = np.empty(C.shape, np.float64)
    _run(A, BT, C, D, out, 2)
    return out
