"""Numba tile body of blocked summation (:mod:`accsim.accumulators.blocked`).

Blanchard, Higham, Mary, "A class of fast and accurate summation algorithms", SIAM J.
Sci. Comput. 42 (2020); order and SR counters: :mod:`accsim.accumulators.blocked`.
"""

import numpy as np
from numba import njit

from accsim.kernels.accumulate import rne_add_rows, rne_consts, rne_ok, rne_rows, vstep
from accsim.kernels.bits import JIT
from accsim.kernels.vocab import RNE


@njit(**JIT)
def blocked_tile(A, B, out, aux, i0, rows, j0, n, N, acc0, keys, ifmt, ofmt, mode, r, seed,
                 cfg):
    """Tile body of the drivers of :mod:`accsim.kernels.tiles`: blocked sums of the tile's
    outputs (block sums in ``ifmt``, the accumulator, started at ``acc0``, in ``ofmt``;
    ``cfg = (block, fast, iexact, oexact)``: ``iexact``/``oexact``, every inner/outer
    binary64 sum is proved exact)."""
    block, fast_, iexact_, oexact_ = cfg
    fast = fast_ != 0
    iexact = iexact_ != 0
    oexact = oexact_ != 0
    K = A.shape[1]
    rb, jb = acc0.shape
    inner = np.zeros((2, rb, jb))
    outer = np.empty((2, rb, jb))
    outer[0, :rows, :n] = acc0[:rows, :n]
    cur = 0  # inner ping-pong index
    oc = 0  # outer ping-pong index
    zero = np.zeros((rb, jb))
    ci = rne_consts(ifmt)
    co = rne_consts(ofmt)
    rne = fast and mode == RNE and rne_ok(ifmt) and rne_ok(ofmt)
    for k in range(K):
        brow = B[k, j0:j0 + n]
        first = (k % block) == 0
        last = (k % block) == block - 1 or k == K - 1
        if rne:  # the common case: one call per step for all rows
            rne_rows(zero if first else inner[cur], inner[1 - cur], A, i0, rows, k, brow, n,
                     ci, not iexact, ifmt)
            if last:
                rne_add_rows(outer[oc], outer[1 - oc], inner[1 - cur], rows, n, co,
                             not oexact, ofmt)
                oc = 1 - oc
            cur = 1 - cur
            continue
        for ii in range(rows):
            i = i0 + ii
            sbase = i * N + j0
            src = inner[cur, ii]
            if first:
                src[:n] = 0.0
            vstep(src, inner[1 - cur, ii], A[i, k], brow, n, ifmt, mode, r, seed, sbase,
                  keys[ii], 2 * k, fast, iexact)
            if last:
                vstep(outer[oc, ii], outer[1 - oc, ii], 1.0, inner[1 - cur, ii], n, ofmt,
                      mode, r, seed, sbase, keys[ii], 2 * k + 1, fast, oexact)
        cur = 1 - cur
        if last:
            oc = 1 - oc
    for ii in range(rows):
        for j in range(n):
            out[i0 + ii, j0 + j] = outer[oc, ii, j]
