"""Numba tile body of recursive summation (:mod:`accsim.accumulators.recursive`).

Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, section 4.2;
order and SR counters: :mod:`accsim.accumulators.recursive`. ``kind`` 0: exact products
(or fused with exact products), 1: products rounded into ``pfmt`` first, 2: the binary64
RNE FMA chain (NVIDIA fp64 mma, AMD fp32/fp64 mfma; docs/hwmodels.md).
"""

import numpy as np
from numba import njit

from accsim.kernels.accumulate import (
    fast_exact,
    mul_r,
    rne_consts,
    rne_lane,
    rne_mul_loop,
    rne_ok,
    rne_rows,
    vstep,
    word,
)
from accsim.kernels.bits import JIT, fma
from accsim.kernels.vocab import RNE, SR

#: ``kind`` codes of :func:`recursive_kernel`.
EXACT, ROUNDED, FMA64 = 0, 1, 2


@njit(**JIT)
def vmul(out, a, brow, n, fmt, mode, r, seed, sbase, keys, ctr, fast):
    """``out[j] = round(a * brow[j])`` for j < n (product exact in binary64)."""
    if fast and mode == RNE and rne_ok(fmt):
        c = rne_consts(fmt)
        # a*b + (-0.0) is a*b exactly: one RNE rounding by the vectorised lanes
        if rne_mul_loop(out, a, brow, n, c):
            for j in range(n):
                r_, bad = rne_lane(a * brow[j], -0.0, c, False)
                out[j] = mul_r(a, brow[j], fmt, mode, r, seed, sbase + j, ctr) if bad else r_
        return
    p, emin, maxv = fmt.p, fmt.emin, fmt.maxv
    sh = 53 - p
    tiny = np.ldexp(1.0, emin)
    rr = 64 if r == 0 else r
    for j in range(n):
        y = a * brow[j]
        ok = False
        if fast and p <= 52:
            w = word(keys[j], ctr) if mode == SR else np.uint64(0)
            res, ok = fast_exact(y, sh, tiny, maxv, mode, rr, w)
        if not ok:
            res = mul_r(a, brow[j], fmt, mode, r, seed, sbase + j, ctr)
        out[j] = res


@njit(**JIT)
def recursive_tile(A, B, out, aux, i0, rows, j0, n, N, acc0, keys, fmt, pfmt, mode, r, seed,
                   cfg):
    """Tile body of the drivers of :mod:`accsim.kernels.tiles`: the recursive sums of the
    tile's outputs, k = 0..K-1 (``cfg = (kind, fast, exact, 0)``)."""
    kind, fast_, exact_, _ = cfg
    fast = fast_ != 0
    exact = exact_ != 0
    K = A.shape[1]
    rb, jb = acc0.shape
    acc = np.empty((2, rb, jb))  # ping-pong: step k reads acc[k & 1]
    acc[0, :rows, :n] = acc0[:rows, :n]
    prod = np.empty(jb)
    rne = fast and kind == EXACT and mode == RNE and rne_ok(fmt)
    c = rne_consts(fmt)
    for k in range(K):
        brow = B[k, j0:j0 + n]
        src = acc[k & 1]
        dst = acc[(k + 1) & 1]
        if rne:  # the common case: one call per step for all rows
            rne_rows(src, dst, A, i0, rows, k, brow, n, c, not exact, fmt)
            continue
        for ii in range(rows):
            i = i0 + ii
            sbase = i * N + j0
            a = A[i, k]
            if kind == EXACT:
                vstep(src[ii], dst[ii], a, brow, n, fmt, mode, r, seed, sbase, keys[ii],
                      2 * k, fast, exact)
            elif kind == ROUNDED:
                vmul(prod, a, brow, n, pfmt, mode, r, seed, sbase, keys[ii], 2 * k + 1, fast)
                vstep(src[ii], dst[ii], 1.0, prod, n, fmt, mode, r, seed, sbase, keys[ii],
                      2 * k, fast, False)
            else:
                s_ = src[ii]
                d_ = dst[ii]
                for j in range(n):
                    d_[j] = fma(a, brow[j], s_[j])
    fin = acc[K & 1]
    for ii in range(rows):
        for j in range(n):
            out[i0 + ii, j0 + j] = fin[ii, j]
