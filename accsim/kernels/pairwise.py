"""Numba tile body of pairwise (tree) summation (:mod:`accsim.accumulators.pairwise`).

Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed. (2002), section 4.2;
order and SR counters: :mod:`accsim.accumulators.pairwise`.
"""

import numpy as np
from numba import njit

from accsim.kernels.accumulate import rne_consts, rne_fix, rne_loop, rne_ok, vstep
from accsim.kernels.bits import JIT
from accsim.kernels.recursive import vmul
from accsim.kernels.vocab import RNE


@njit(**JIT)
def pairwise_tile(A, B, out, aux, i, rows, j0, n, N, acc0, keys2, fmt, fmt2, mode, r, seed,
                  cfg):
    """Tile body of the drivers of :mod:`accsim.kernels.tiles` (tiles of ONE row ``i``):
    the products rounded, the tree, then ``+ round(c)`` (``acc0``); ``cfg = (fast,
    exact, 0, 0)``: ``exact``, every binary64 sum is proved exact."""
    fast = cfg[0] != 0
    exact = cfg[1] != 0
    K = A.shape[1]
    jb = acc0.shape[1]
    rne = fast and mode == RNE and rne_ok(fmt)
    c = rne_consts(fmt)
    sbase = i * N + j0
    keys = keys2[0]
    cr = acc0[0]
    if K == 0:
        for j in range(n):
            out[i, j0 + j] = cr[j]
        return
    P = np.empty((K, jb))
    Q = np.empty((K, jb))
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
    res = np.empty(jb)
    vstep(P[0], res, 1.0, cr, n, fmt, mode, r, seed, sbase, keys, 2 * K + 1, fast, exact)
    for j in range(n):
        out[i, j0 + j] = res[j]
