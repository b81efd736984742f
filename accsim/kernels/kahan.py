"""Numba kernels of Kahan compensated summation (:mod:`accsim.accumulators.kahan`).

Kahan (1965), "Further remarks on reducing truncation errors"; Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., Alg. 4.2. Order and SR counters:
:mod:`accsim.accumulators.kahan`. Two tiled kernels (tiles of ``RB`` rows x ``JB``
columns, each output summed by one task in its fixed order): the RNE fast path
(vectorised lanes of :func:`~accsim.kernels.accumulate.rne_lane`, rejected lanes redo
the whole step exactly) and the general path (every mode, every format, ``add_r``).
"""

import numpy as np
from numba import njit, prange

from accsim.kernels.accumulate import add_r, rne_consts, rne_lane
from accsim.kernels.bits import JIT
from accsim.kernels.tiles import JB, RB, n_tiles, start_tile, tile
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


@njit(parallel=True, **JIT)
def kahan_rne_kernel(A, B, C, out, comp_out, fmt, exact):
    """Kahan summation in RNE, vectorised across columns (formats with
    ``rne_ok(fmt)``); ``exact``: every binary64 sum is proved exact (no
    double-rounding guard)."""
    M, K = A.shape
    N = B.shape[1]
    cst = rne_consts(fmt)
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n = tile(task, M, N, RB, JB)
        S = np.empty((2, RB, JB))
        Cp = np.zeros((2, RB, JB))
        no_keys = np.zeros((RB, 1), np.uint64)  # RNE: no SR stream keys are needed
        start_tile(C, S[0], no_keys, i0, rows, j0, n, N, fmt, RNE, 0, _Z, 0)
        for k in range(K):
            cur = k & 1
            _kahan_rows(S[cur], Cp[cur], S[1 - cur], Cp[1 - cur], A, i0, rows, k,
                        B[k, j0:j0 + n], n, cst, not exact, fmt)
        for ii in range(rows):
            for j in range(n):
                out[i0 + ii, j0 + j] = S[K & 1, ii, j]
                comp_out[i0 + ii, j0 + j] = Cp[K & 1, ii, j]


@njit(parallel=True, **JIT)
def kahan_kernel(A, B, C, out, comp_out, fmt, mode, r, seed):
    """Kahan summation of every output in any mode (``add_r`` for every operation);
    ``comp_out`` receives the final compensation."""
    M, K = A.shape
    N = B.shape[1]
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n = tile(task, M, N, RB, JB)
        S = np.empty((RB, JB))
        Cp = np.zeros((RB, JB))
        keys = np.zeros((RB, JB), np.uint64)  # unused: add_r draws its own SR words
        start_tile(C, S, keys, i0, rows, j0, n, N, fmt, mode, r, seed, 4 * K)
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
