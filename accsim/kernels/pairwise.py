"""Numba kernel of pairwise (tree) summation (:mod:`accsim.accumulators.pairwise`).

Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed. (2002), section 4.2;
order and SR counters: :mod:`accsim.accumulators.pairwise`.
"""

import numpy as np
from numba import njit, prange

from accsim.kernels.accumulate import rne_consts, rne_fix, rne_loop, rne_ok, vstep
from accsim.kernels.bits import JIT
from accsim.kernels.recursive import vmul
from accsim.kernels.tiles import JB, n_tiles, start_tile, tile
from accsim.kernels.vocab import RNE


@njit(parallel=True, **JIT)
def pairwise_kernel(A, B, C, out, fmt, mode, r, seed, fast, exact):
    """Pairwise summation of every output; tasks are tiles of one row by ``JB`` columns;
    ``exact``: every binary64 sum is proved exact."""
    M, K = A.shape
    N = B.shape[1]
    rne = fast and mode == RNE and rne_ok(fmt)
    c = rne_consts(fmt)
    for task in prange(n_tiles(M, N, 1, JB)):  # tiles of one row
        i, _, j0, n = tile(task, M, N, 1, JB)
        sbase = i * N + j0
        keys2 = np.zeros((1, JB), np.uint64)
        cr2 = np.empty((1, JB))
        start_tile(C, cr2, keys2, i, 1, j0, n, N, fmt, mode, r, seed, 2 * K)
        keys = keys2[0]
        cr = cr2[0]
        if K == 0:
            for j in range(n):
                out[i, j0 + j] = cr[j]
            continue
        P = np.empty((K, JB))
        Q = np.empty((K, JB))
        for k in range(K):
            vmul(P[k], A[i, k], B[k, j0:j0 + n], n, fmt, mode, r, seed, sbase, keys, k, fast)
        L = K
        m = 0
        while L > 1:
            h = L // 2
            if rne:  # the common case: the vectorised lanes without per-call set-up
                for t in range(h):
                    if rne_loop(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, c, not exact):
                        rne_fix(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, c, fmt)
                m += h
            for t in range(0 if rne else h):
                vstep(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, fmt, mode, r, seed, sbase, keys,
                      K + m, fast, exact)
                m += 1
            if L % 2 == 1:
                Q[h, :n] = P[L - 1, :n]
            L = h + L % 2
            P, Q = Q, P
        res = np.empty(JB)
        vstep(P[0], res, 1.0, cr, n, fmt, mode, r, seed, sbase, keys, 2 * K + 1, fast, exact)
        for j in range(n):
            out[i, j0 + j] = res[j]
