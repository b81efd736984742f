"""Exact references: ``A @ B + C`` computed exactly, then rounded once.

Every function accepts float arrays of any precision up to binary64 (numpy floats or
ml_dtypes arrays; values are taken exactly). Products are *not* assumed exact in
binary64: each product is split with TwoProd (a true FMA) into two binary64 numbers, or,
when that could under/overflow, computed from the factors' significands with the
exponent carried separately. All terms go into a long fixed-point accumulator (see
:mod:`accsim.kernels.exact_kernels`), so the sum is exact, and the result is rounded
once, to nearest even.

Large products take a faster road to the same bits (Ozaki's error-free splitting:
Ozaki, Ogita, Oishi & Rump, Numer. Algorithms 59, 2012): each row of ``A`` and column of
``B`` is split into integer-valued slices of ``beta`` bits (:func:`split_rows`, with
``K 2^(2 beta) <= 2^53``), every product of two slice matrices is computed exactly by a
binary64 BLAS matmul, and each output's scaled slice products and addend are summed
exactly (Shewchuk's expansions) and rounded once. Rows or columns that would need more
than ``MAX_SLICES`` slices or hold NaN or inf, and outputs whose terms would leave the
binary64 range, run the long accumulator instead.

Special values follow IEEE 754: a NaN operand, ``inf * 0`` or ``inf - inf`` gives NaN;
otherwise an infinite product or addend gives that infinity. A finite exact sum beyond
the binary64 range rounds to +-inf (RNE). An exact zero is returned as +0.0 (the sign of
a zero sum of signed zeros is not tracked).
"""

from __future__ import annotations

import numpy as np

from accsim.kernels import exact_kernels as _k
from accsim.numbers.arrays import check_matmul_shapes

__all__ = ["matmul", "matmul_long", "matmul_dd", "split_rows", "slice_bits",
           "slice_budget", "choose_bits", "row_spans", "dot", "residual",
           "abs_matmul", "products_exact_in_binary64"]


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
SLICE_MIN_MACS = 1 << 15  # below this many MACs the long accumulator alone is faster
MAX_SLICES = 8  # slices per row of A / column of B before a row or column falls back
BLOCK_ELEMS = 1 << 22  # stacked slice products held at once (32 MB), by column blocks
SERIAL_MAX = 1 << 16  # splitting of at most this many numbers, or combining of at most
# this many outputs, runs on the calling thread (a thread start-up would cost more)


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


def slice_budget(K: int) -> int:
    """Bits ``beta_A + beta_B`` two slices may hold together for inner dimension ``K``:
    the largest with ``K 2^(beta_A + beta_B) <= 2^53``. Slices are integers below
    ``2^beta`` in magnitude, so every product of two slices is below ``2^(beta_A +
    beta_B)`` and every partial sum of ``K`` of them, in any order, is an integer below
    ``2^53``: binary64 BLAS computes a slice product exactly (Ozaki, Ogita, Oishi & Rump,
    Numer. Algorithms 59, 2012, §3)."""
    return 53 - max(int(K) - 1, 0).bit_length()


def slice_bits(K: int) -> int:
    """The even split ``beta = slice_budget(K) // 2`` (bits per slice of either side)."""
    return slice_budget(K) // 2


def row_spans(X: np.ndarray):
    """``(top, span)`` per row of ``X``: every ``|x| < 2^top``, and ``span`` bits from
    there down to the row's lowest set bit (0: a zero row, -1: NaN or inf in the row)."""
    top = np.empty(X.shape[0], np.int64)
    span = np.empty(X.shape[0], np.int64)
    (_k.slice_span_ser if X.size <= SERIAL_MAX else _k.slice_span)(X, top, span)
    return top, span


def split_rows(X: np.ndarray, beta: int, max_slices: int = MAX_SLICES, spans=None):
    """Error-free splitting of each row of ``X`` into integer-valued slices.

    Row ``i``, whose magnitudes lie below ``2^e_i``, is ``sum_s x_s 2^(e_i - beta (s +
    1))`` exactly, where the slice ``x_s = trunc(r_s 2^(beta (s + 1) - e_i))`` of the
    remainder ``r_s`` is an integer below ``2^beta`` in magnitude (each step is exact: a
    truncation of a binary64 number to a coarser grid, and its remainder, are binary64
    numbers); ``ceil(span_i / beta)`` slices reach the row's lowest set bit
    (:func:`row_spans`). Rows that need more than ``max_slices`` slices, or hold a NaN
    or an infinity, are not split.

    Returns
    -------
    S : numpy.ndarray, shape (total, K)
        The slices, row ``i``'s in ``S[ptr[i]:ptr[i + 1]]``.
    ptr : numpy.ndarray of int64, shape (n + 1,)
    exps : numpy.ndarray of int64, shape (total,)
        The exponent ``e_i - beta (s + 1)`` of each slice.
    ok : numpy.ndarray of bool, shape (n,)
        Rows represented exactly by their slices.
    """
    top, span = row_spans(X) if spans is None else spans
    count = -(-span // beta)
    ok = (span >= 0) & (count <= max_slices)
    ptr = np.zeros(X.shape[0] + 1, np.int64)
    np.cumsum(np.where(ok, count, 0), out=ptr[1:])
    S = np.empty((ptr[-1], X.shape[1]))
    exps = np.empty(ptr[-1], np.int64)
    (_k.slice_fill_ser if X.size <= SERIAL_MAX else _k.slice_fill)(X, beta, top, ptr, S,
                                                                    exps)
    return S, ptr, exps, ok


def choose_bits(span_a: np.ndarray, span_b: np.ndarray, budget: int) -> tuple[int, int]:
    """``(beta_A, beta_B)`` with ``beta_A + beta_B = budget`` minimising ``(sum_i n_i)
    (sum_j m_j)``, the slices of the rows of A times those of the columns of B (the
    cost of both the BLAS products and the exact sums). E.g. ``K = 9``: rows of 9
    binary32 weights spanning 30 bits and columns of activations spanning 40 need 1 x 3
    slices with 30 + 19 bits, 2 x 2 with 24 + 25."""
    ba = np.arange(1, budget)

    def slices(span, bits):  # sum over rows of ceil(span / bits), for every bits
        cnt = np.bincount(span[span > 0])
        v = np.flatnonzero(cnt)
        return (cnt[v][None, :] * -(-v[None, :] // bits[:, None])).sum(axis=1)

    na, nb = slices(span_a, ba), slices(span_b, budget - ba)
    cost = na.astype(np.float64) * nb
    best = int(np.argmin(np.where(cost == cost.min(), np.abs(2 * ba - budget), np.inf)))
    return int(ba[best]), int(budget - ba[best])


def _sliced(A, BT, C, D, kind):
    """``A @ B + C`` (kind 0), the residual ``D - (A @ B + C)`` (kind 1) or the pair
    ``hi, lo`` of :func:`matmul_dd` (kind 2), by error-free slices.

    Each operand is split into integer slices (:func:`split_rows`, ``A`` by rows, ``B``
    by columns) whose products BLAS computes exactly; each output's exact sum of scaled
    slice products and ``C`` is then rounded once (:func:`accsim.kernels.exact_kernels.
    slice_combine`). Rows or columns that need too many slices or hold NaN or inf, and
    outputs whose terms would leave the binary64 range, run the long accumulator
    (:func:`accsim.kernels.exact_kernels.exact_at`), so every output is the same number
    the long accumulator gives.
    """
    M, K = A.shape
    N = BT.shape[0]
    hi = np.empty((M, N))
    lo = np.zeros((M, N)) if kind == 2 else np.empty((1, 1))
    ex = np.ones((M, N), np.bool_) if kind == 2 else np.empty((1, 1), np.bool_)
    need = np.zeros((M, N), np.bool_)
    ta, sa = row_spans(A)
    tb, sb = row_spans(BT)
    beta_a, beta_b = choose_bits(sa, sb, slice_budget(K))
    SA, rptr, rexp, row_ok = split_rows(A, beta_a, MAX_SLICES, (ta, sa))
    # column blocks whose slice products P hold at most BLOCK_ELEMS numbers (or one column)
    nb = np.cumsum(np.clip(-(-sb // beta_b), 0, MAX_SLICES))
    per = max(1, BLOCK_ELEMS // max(SA.shape[0], 1))
    j0 = 0
    while j0 < N:
        base = nb[j0 - 1] if j0 else 0
        j1 = max(j0 + 1, int(np.searchsorted(nb, base + per, side="right")))
        SB, cptr, cexp, col_ok = split_rows(BT[j0:j1], beta_b, MAX_SLICES,
                                            (tb[j0:j1], sb[j0:j1]))
        P = SA @ SB.T if SA.size and SB.size else np.zeros((SA.shape[0], SB.shape[0]))
        combine = _k.slice_combine_ser if M * (j1 - j0) <= SERIAL_MAX else _k.slice_combine
        combine(P, rptr, rexp, cptr, cexp, C, D, hi, lo, ex, need, j0, kind)
        if not col_ok.all():
            need[:, j0:j1] |= ~col_ok[None, :]
        j0 = j1
    if not row_ok.all():
        need |= ~row_ok[:, None]
    if need.any():
        ii, jj = np.nonzero(need)
        _k.exact_at(A, BT, C, D, ii.astype(np.int64), jj.astype(np.int64), hi, lo, ex, kind)
    return hi, lo, ex


def _use_slices(A, BT) -> bool:
    return A.shape[0] * BT.shape[0] * A.shape[1] >= SLICE_MIN_MACS and \
        slice_budget(A.shape[1]) >= 8


def matmul(A, B, C=None) -> np.ndarray:
    """The binary64 number nearest (ties to even) to the exact ``A @ B + C``.

    Large products run as error-free slice products on BLAS (:func:`split_rows`), the
    rest, and every output the slices cannot represent, on the long accumulator; both
    give the same bits.

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
    if _use_slices(A, BT):
        return _sliced(A, BT, C, C, 0)[0]
    return _matmul_long(A, BT, C)


def matmul_long(A, B, C=None) -> np.ndarray:
    """:func:`matmul` on the long accumulator alone (the reference of the slices)."""
    return _matmul_long(*_prepare(A, B, C))


def _matmul_long(A, BT, C):
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
    if _use_slices(A, BT):
        hi, lo, ex = _sliced(A, BT, C, C, 2)
    else:
        hi, lo, ex = _matmul_dd_long(A, BT, C)
    if return_exact:
        return hi, lo, ex
    return hi, lo


def _matmul_dd_long(A, BT, C):
    hi = np.empty(C.shape, np.float64)
    lo = np.empty(C.shape, np.float64)
    ex = np.empty(C.shape, np.bool_)
    if A.shape[0] * BT.shape[0] * max(A.shape[1], 1) >= PARALLEL_MIN_MACS:
        _k.matmul_dd_par(A, BT, C, hi, lo, ex)
    else:
        _k.matmul_dd_ser(A, BT, C, hi, lo, ex)
    return hi, lo, ex


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
    D = np.ascontiguousarray(np.broadcast_to(np.asarray(D, np.float64), C.shape)).view()
    D.flags.writeable = False
    if _use_slices(A, BT):
        return _sliced(A, BT, C, D, 1)[0]
    out = np.empty(C.shape, np.float64)
    _run(A, BT, C, D, out, 2)
    return out
