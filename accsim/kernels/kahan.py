"""Numba tile bodies of Kahan compensated summation (:mod:`accsim.accumulators.kahan`).

Kahan (1965), "Further remarks on reducing truncation errors"; Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., Alg. 4.2. Order and SR counters:
:mod:`accsim.accumulators.kahan`. Two tile bodies of
the drivers of :mod:`accsim.kernels.tiles` (each output summed by one task in its fixed
order): the RNE fast path
(vectorised lanes of :func:`~accsim.kernels.accumulate.rne_lane`, rejected lanes redo
the whole step exactly) and the general path (every mode, every format, ``add_r``).
"""

import numpy as np
from numba import njit

from accsim.kernels.accumulate import add_r, rne_consts, rne_lane
from accsim.kernels.bits import JIT
from accsim.kernels.vocab import RNE

_Z = np.uint64(0)


@njit(inline="always", **JIT)
def _kahan_lanes(sa, ca, sb, cb, a, brow, n, cst, guard):
    bad = False
    for j in range(n):
        s = sa[j]
        cm = ca[j]
        y, b1 = rne_lane(a * brow[j], -cm, cst, guard)
        t, b2 = rne_lane(s, y, cst, guard)
        d, b3 = rne_lane(t, -s, cst, guard)
        cn, b4 = rne_lane(d, -y, cst, guard)
        sb[j] = t
        cb[j] = cn
        bad |= b1 | b2 | b3 | b4
    return bad


@njit(**JIT)
def _kahan_rows(s0, c0, s1, c1, A, i0, rows, k, brow, n, cst, guard, fmt):
    """One Kahan step ``k`` (RNE) of ``rows`` x ``n`` outputs: state (s0, c0) -> (s1, c1)
    by the vectorised lanes; rejected lanes redo the step with ``add_r``."""
    for ii in range(rows):
        a = A[i0 + ii, k]
        sa, ca, sb, cb = s0[ii], c0[ii], s1[ii], c1[ii]
        if guard:
            bad = _kahan_lanes(sa, ca, sb, cb, a, brow, n, cst, True)
        else:
            bad = _kahan_lanes(sa, ca, sb, cb, a, brow, n, cst, False)
        if bad:
            for j in range(n):
                s = sa[j]
                cm = ca[j]
                prod = a * brow[j]
                y = add_r(prod, -cm, fmt, RNE, 0, _Z, 0, 0)
                t = add_r(s, y, fmt, RNE, 0, _Z, 0, 0)
                d = add_r(t, -s, fmt, RNE, 0, _Z, 0, 0)
                sb[j] = t
                cb[j] = add_r(d, -y, fmt, RNE, 0, _Z, 0, 0)


@njit(**JIT)
def kahan_rne_tile(A, B, out, comp_out, i0, rows, j0, n, N, acc0, keys, fmt, fmt2, mode, r,
                   seed, cfg):
    """Tile body of the drivers of :mod:`accsim.kernels.tiles`: Kahan summation in RNE,
    vectorised across columns (formats with ``rne_ok(fmt)``); ``cfg = (exact, 0, 0, 0)``:
    every binary64 sum is proved exact (no double-rounding guard)."""
    exact = cfg[0] != 0
    K = A.shape[1]
    rb, jb = acc0.shape
    cst = rne_consts(fmt)
    S = np.empty((2, rb, jb))
    S[0, :rows, :n] = acc0[:rows, :n]
    Cp = np.zeros((2, rb, jb))
    for k in range(K):
        cur = k & 1
        _kahan_rows(S[cur], Cp[cur], S[1 - cur], Cp[1 - cur], A, i0, rows, k,
                    B[k, j0:j0 + n], n, cst, not exact, fmt)
    for ii in range(rows):
        for j in range(n):
            out[i0 + ii, j0 + j] = S[K & 1, ii, j]
            comp_out[i0 + ii, j0 + j] = Cp[K & 1, ii, j]


@njit(**JIT)
def kahan_tile(A, B, out, comp_out, i0, rows, j0, n, N, acc0, keys, fmt, fmt2, mode, r,
               seed, cfg):
    """Tile body of the drivers of :mod:`accsim.kernels.tiles`: Kahan summation in any mode
    (``add_r`` for every operation); ``comp_out`` receives the final compensation."""
    K = A.shape[1]
    S = acc0
    Cp = np.zeros(acc0.shape)
    for k in range(K):
        brow = B[k, j0:j0 + n]
        for ii in range(rows):
            a = A[i0 + ii, k]
            st = (i0 + ii) * N + j0
            s_ = S[ii]
            c_ = Cp[ii]
            for j in range(n):
                s = s_[j]
                y = add_r(a * brow[j], -c_[j], fmt, mode, r, seed, st + j, 4 * k)
                t = add_r(s, y, fmt, mode, r, seed, st + j, 4 * k + 1)
                d = add_r(t, -s, fmt, mode, r, seed, st + j, 4 * k + 2)
                c_[j] = add_r(d, -y, fmt, mode, r, seed, st + j, 4 * k + 3)
                s_[j] = t
    for ii in range(rows):
        for j in range(n):
            out[i0 + ii, j0 + j] = S[ii, j]
            comp_out[i0 + ii, j0 + j] = Cp[ii, j]
