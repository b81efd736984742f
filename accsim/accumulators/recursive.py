"""Recursive (sequential) summation: one rounding into the accumulator format per term.

Recursive (sequential) summation (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., 2002, section 4.2), each addition rounded to the accumulator
format, with products exact, rounded, or fused (an FMA chain: one rounding per term).
Also the fp32/fp64 chains of correctly rounded FMAs, one per term, of NVIDIA fp64 mma
and AMD fp32/fp64 mfma (``product="fused"``; docs/hwmodels.md, MMA-Sim).

Order for output (i, j) (stream ``i*N + j`` of the SR generator):

1. ``s = round(c_ij)`` into ``acc_format`` (SR counter ``2K``);
2. for k = 0..K-1:

   * ``"exact"``:   ``s = round(s + a_ik b_kj)`` (counter ``2k``), product exact;
   * ``"rounded"``: ``p = round(a_ik b_kj)`` into ``product_format`` (counter ``2k+1``),
     then ``s = round(s + p)`` (counter ``2k``), same mode;
   * ``"fused"``:   ``s = round(a_ik b_kj + s)`` (counter ``2k``), one rounding.

With binary64-exact products "fused" and "exact" coincide bit for bit; "fused" with an
inexact product is supported only for a binary64 accumulator in RNE (hardware FMA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from accsim.accumulators import bounds
from accsim.accumulators._checks import (
    check_format_products,
    check_mode,
    fmt_or_none,
    fmt_required,
    sums_exact,
)
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.registry import Family, register_family
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
from accsim.kernels.tiles import JB, RB, n_tiles, start_tile, tile
from accsim.kernels.vocab import RNE, SR
from accsim.numbers.formats import FloatFormat

PRODUCTS = ("exact", "rounded", "fused")
_RB, _JB = RB, JB  # output rows (B rows reused across them) and columns per task


@njit(**JIT)
def vmul(out, a, brow, n, p, emin, maxv, sub, ovf, flags, mode, r, seed, sbase, keys,
         ctr, fast):
    """``out[j] = round(a * brow[j])`` for j < n (product exact in binary64)."""
    if fast and mode == RNE and rne_ok(p, emin, maxv, flags):
        c = rne_consts(p, emin, maxv, sub, ovf, flags)
        # a*b + (-0.0) is a*b exactly: one RNE rounding by the vectorised lanes
        if rne_mul_loop(out, a, brow, n, c):
            for j in range(n):
                r_, bad = rne_lane(a * brow[j], -0.0, c, False)
                out[j] = mul_r(a, brow[j], p, emin, maxv, sub, ovf, flags, mode, r, seed,
                               sbase + j, ctr) if bad else r_
        return
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
            res = mul_r(a, brow[j], p, emin, maxv, sub, ovf, flags, mode, r, seed,
                        sbase + j, ctr)
        out[j] = res


@njit(parallel=True, **JIT)
def recursive_kernel(A, B, C, out, p, emin, maxv, sub, ovf, flags, mode, r, seed, kind,
                     pp, pemin, pmaxv, psub, povf, pflags, fast, exact):
    """Recursive summation of every output (see module docstring); ``kind`` 0 exact or
    fused with exact products, 1 rounded products, 2 binary64 RNE FMA chain (any
    products). Tasks = blocks of rows x columns, run in parallel; each output is summed
    in order k = 0..K-1 by one task. ``exact``: every binary64 sum is proved exact
    (``_checks.sums_exact``; lets the fast paths skip their guards)."""
    M, K = A.shape
    N = B.shape[1]
    for task in prange(n_tiles(M, N, _RB, _JB)):
        i0, rows, j0, n = tile(task, M, N, _RB, _JB)
        acc = np.empty((2, _RB, _JB))  # ping-pong: step k reads acc[k & 1]
        keys = np.zeros((_RB, _JB), np.uint64)
        prod = np.empty(_JB)
        start_tile(C, acc[0], keys, i0, rows, j0, n, N, p, emin, maxv, sub, ovf, flags,
                   mode, r, seed, 2 * K)
        rne = fast and kind == 0 and mode == RNE and rne_ok(p, emin, maxv, flags)
        c = rne_consts(p, emin, maxv, sub, ovf, flags)
        for k in range(K):
            brow = B[k, j0:j0 + n]
            src = acc[k & 1]
            dst = acc[(k + 1) & 1]
            if rne:  # the common case: one call per step for all rows
                rne_rows(src, dst, A, i0, rows, k, brow, n, c, not exact, p, emin, maxv,
                         sub, ovf, flags)
                continue
            for ii in range(rows):
                i = i0 + ii
                sbase = i * N + j0
                a = A[i, k]
                if kind == 0:
                    vstep(src[ii], dst[ii], a, brow, n, p, emin, maxv, sub, ovf, flags,
                          mode, r, seed, sbase, keys[ii], 2 * k, fast, exact)
                elif kind == 1:
                    vmul(prod, a, brow, n, pp, pemin, pmaxv, psub, povf, pflags, mode,
                         r, seed, sbase, keys[ii], 2 * k + 1, fast)
                    vstep(src[ii], dst[ii], 1.0, prod, n, p, emin, maxv, sub, ovf, flags,
                          mode, r, seed, sbase, keys[ii], 2 * k, fast, False)
                else:
                    s_ = src[ii]
                    d_ = dst[ii]
                    for j in range(n):
                        d_[j] = fma(a, brow[j], s_[j])
        fin = acc[K & 1]
        for ii in range(rows):
            for j in range(n):
                out[i0 + ii, j0 + j] = fin[ii, j]


@dataclass(frozen=True)
class RecursiveSum(SingleFormatSum):
    """Recursive summation ``s = round(s + a_k b_k)``, k = 0..K-1, starting from
    ``round(c)`` (see the module docstring for the exact order and SR counters).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Accumulator (and output) format.
    mode : str
        Rounding mode of every rounding ("rne", "rna", "rz", "ru", "rd", "ro", "sr").
    sr_bits : int or None
        Random bits per SR decision (None: exact SR probabilities).
    product : {"exact", "rounded", "fused"}
        How each product enters: exact, rounded into ``product_format`` first, or fused
        with the addition (one rounding).
    product_format : FloatFormat or str or None
        Format of the rounded products (``product="rounded"`` only).
    """

    product: str = "exact"
    product_format: FloatFormat | None = None

    family = "recursive"

    def __post_init__(self) -> None:
        acc = fmt_required(self.acc_format, "acc_format")
        object.__setattr__(self, "acc_format", acc)
        self._setup(acc, check_products=False)
        if self.product not in PRODUCTS:
            raise ValueError(f"unknown product {self.product!r}; valid: {', '.join(PRODUCTS)}")
        pf = fmt_or_none(self.product_format)
        if self.product == "rounded" and pf is None:
            raise ValueError("product='rounded' needs product_format")
        if self.product != "rounded" and pf is not None:
            raise ValueError("product_format applies only to product='rounded'")
        object.__setattr__(self, "product_format", pf)
        if not self._fma64:
            check_format_products(self.a_format, self.b_format, f"{self.family} {self.name}")

    @property
    def _fma64(self) -> bool:
        """binary64 RNE FMA chain: the hardware FMA is exact for any binary64 inputs."""
        return self.product == "fused" and self.acc_format.p == 53 and self.mode == "rne" \
            and self.acc_format.name == "binary64"

    def _products_exact_by_construction(self) -> bool:
        return self._fma64

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        kind = {"exact": 0, "fused": 0, "rounded": 1}[self.product]
        if self._fma64:
            kind = 2
        pf = self.product_format or self.acc_format
        exact = kind == 0 and fast and sums_exact(A, B, C, [self.acc_format], A.shape[1])
        recursive_kernel(A, B, C, out, *self.acc_format.kernel_params(), m, r,
                         np.uint64(seed), kind, *pf.kernel_params(), fast, exact)
        return out

    def cost_bits(self, n: int) -> float:
        return float(self.acc_format.p * n)


register_family(Family("recursive", RecursiveSum, bound=bounds.recursive_bound,
                       reference="ref_recursive"))
