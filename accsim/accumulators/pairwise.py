"""Pairwise (tree) summation of the rounded products.

Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed. (2002), section 4.2.
Order for output (i, j) (SR stream ``i*N+j``):

1. ``cr = round(c_ij)`` into ``acc_format`` (SR counter ``2K``);
2. ``p_k = round(a_ik b_kj)`` into ``acc_format``, k = 0..K-1 (counter ``k``);
3. tree: pairs (0,1), (2,3), ... of the current level are added and rounded, an odd last
   element is carried up unchanged; repeat until one value is left. The m-th addition
   overall (level by level, left to right, m = 0..K-2) uses counter ``K + m``;
4. ``d = round(tree + cr)`` (counter ``2K + 1``); with K = 0, ``d = cr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, sums_exact
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.recursive import vmul
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.accumulate import rne_consts, rne_fix, rne_loop, rne_ok, vstep
from accsim.kernels.bits import JIT
from accsim.kernels.tiles import JB, n_tiles, start_tile, tile
from accsim.kernels.vocab import RNE

_JB = JB


@njit(parallel=True, **JIT)
def pairwise_kernel(A, B, C, out, p, emin, maxv, sub, ovf, flags, mode, r, seed, fast,
                    exact):
    M, K = A.shape
    N = B.shape[1]
    rne = fast and mode == RNE and rne_ok(p, emin, maxv, flags)
    c = rne_consts(p, emin, maxv, sub, ovf, flags)
    for task in prange(n_tiles(M, N, 1, _JB)):  # tiles of one row
        i, _, j0, n = tile(task, M, N, 1, _JB)
        sbase = i * N + j0
        keys2 = np.zeros((1, _JB), np.uint64)
        cr2 = np.empty((1, _JB))
        start_tile(C, cr2, keys2, i, 1, j0, n, N, p, emin, maxv, sub, ovf, flags, mode, r,
                   seed, 2 * K)
        keys = keys2[0]
        cr = cr2[0]
        if K == 0:
            for j in range(n):
                out[i, j0 + j] = cr[j]
            continue
        P = np.empty((K, _JB))
        Q = np.empty((K, _JB))
        for k in range(K):
            vmul(P[k], A[i, k], B[k, j0:j0 + n], n, p, emin, maxv, sub, ovf, flags, mode,
                 r, seed, sbase, keys, k, fast)
        L = K
        m = 0
        while L > 1:
            h = L // 2
            if rne:  # the common case: the vectorised lanes without per-call set-up
                for t in range(h):
                    if rne_loop(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, c, not exact):
                        rne_fix(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, c, p, emin, maxv,
                                sub, ovf, flags)
                m += h
            for t in range(0 if rne else h):
                vstep(P[2 * t], Q[t], 1.0, P[2 * t + 1], n, p, emin, maxv, sub, ovf, flags,
                      mode, r, seed, sbase, keys, K + m, fast, exact)
                m += 1
            if L % 2 == 1:
                Q[h, :n] = P[L - 1, :n]
            L = h + L % 2
            P, Q = Q, P
        res = np.empty(_JB)
        vstep(P[0], res, 1.0, cr, n, p, emin, maxv, sub, ovf, flags, mode, r, seed, sbase,
              keys, 2 * K + 1, fast, exact)
        for j in range(n):
            out[i, j0 + j] = res[j]


@dataclass(frozen=True)
class PairwiseSum(SingleFormatSum):
    """Pairwise (tree) summation in one format (order and SR counters: module docstring).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Format of the rounded products, of every partial sum and of the output.
    mode : str
        Rounding mode of every rounding.
    sr_bits : int or None
        Random bits per SR decision (None: exact SR).
    """

    family = "pairwise"

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        exact = fast and sums_exact(A, B, C, [self.acc_format], 2 * A.shape[1] + 2,
                                    products=False)
        pairwise_kernel(A, B, C, out, *self.acc_format.kernel_params(), m, r,
                        np.uint64(seed), fast, exact)
        return out


register_family(Family("pairwise", PairwiseSum, bound=bounds.pairwise_bound,
                       reference="ref_pairwise"))
