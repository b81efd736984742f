"""Kahan compensated summation, every operation rounded into one format.

Kahan (1965), "Further remarks on reducing truncation errors"; Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., Alg. 4.2. ONE compensation term per output.
Order for output (i, j) (SR stream ``i*N + j``):

``s = round(c_ij)`` (SR counter ``4K``), ``comp = 0``; for k = 0..K-1 with the exact
product ``p = a_ik b_kj``::

    y    = round(p - comp)        # counter 4k
    t    = round(s + y)           # counter 4k + 1
    comp = round(round(t - s) - y)  # counters 4k + 2, 4k + 3
    s    = t

Infinities (IEEE 754-2019, 7.2): once ``t`` is infinite (an infinite term, or the sum
overflowed), ``comp = round(t - s) - y`` is ``inf - inf`` = NaN, and the next term's
``y = round(p - comp)`` carries the NaN into the sum. So ``fp16-kahan`` returns NaN
where the uncompensated families return inf whenever a term FOLLOWS the infinity:
``[inf, 1]`` or ``[60000, 60000, 1]`` (binary16 overflow) give NaN, while ``[inf]`` and
``[1, inf]`` give inf. This is the IEEE result of the compensation step, not an error.

RNE fast path (formats with ``p <= 25``): every operation is one RNE rounding of an
exact pair, computed as binary64 sum then one rounding by
:func:`~accsim.kernels.accumulate.rne_lane` (correct as ``53 >= 2p + 2``, guarded against the
inexact-midpoint case), vectorised across 256 output columns; lanes it rejects redo the
whole step with the exact path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, sums_exact
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.accumulate import add_r, rne_consts, rne_lane, rne_ok, round1
from accsim.kernels.bits import JIT
from accsim.kernels.tiles import JB, RB, n_tiles, start_tile, tile
from accsim.kernels.vocab import RNE
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.rounding import check_seed

_RB, _JB = RB, JB
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
def _kahan_rows(s0, c0, s1, c1, A, i0, rows, k, brow, n, cst, guard, p, emin, maxv, sub,
                ovf, flags):
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
                y = add_r(prod, -cm, p, emin, maxv, sub, ovf, flags, RNE, 0, _Z, 0, 0)
                t = add_r(s, y, p, emin, maxv, sub, ovf, flags, RNE, 0, _Z, 0, 0)
                d = add_r(t, -s, p, emin, maxv, sub, ovf, flags, RNE, 0, _Z, 0, 0)
                sb[j] = t
                cb[j] = add_r(d, -y, p, emin, maxv, sub, ovf, flags, RNE, 0, _Z, 0, 0)


@njit(parallel=True, **JIT)
def kahan_rne_kernel(A, B, C, out, comp_out, p, emin, maxv, sub, ovf, flags, exact):
    """Kahan summation in RNE, vectorised across columns (tasks: 8 rows x 256 columns);
    ``exact``: every binary64 sum is proved exact (no double-rounding guard)."""
    M, K = A.shape
    N = B.shape[1]
    cst = rne_consts(p, emin, maxv, sub, ovf, flags)
    for task in prange(n_tiles(M, N, _RB, _JB)):
        i0, rows, j0, n = tile(task, M, N, _RB, _JB)
        S = np.empty((2, _RB, _JB))
        Cp = np.zeros((2, _RB, _JB))
        no_keys = np.zeros((_RB, 1), np.uint64)  # RNE: no SR stream keys are needed
        start_tile(C, S[0], no_keys, i0, rows, j0, n, N, p, emin, maxv, sub, ovf, flags, RNE,
                   0, _Z, 0)
        for k in range(K):
            cur = k & 1
            _kahan_rows(S[cur], Cp[cur], S[1 - cur], Cp[1 - cur], A, i0, rows, k,
                        B[k, j0:j0 + n], n, cst, not exact, p, emin, maxv, sub, ovf, flags)
        for ii in range(rows):
            for j in range(n):
                out[i0 + ii, j0 + j] = S[K & 1, ii, j]
                comp_out[i0 + ii, j0 + j] = Cp[K & 1, ii, j]


@njit(parallel=True, **JIT)
def kahan_kernel(A, B, C, out, comp_out, p, emin, maxv, sub, ovf, flags, mode, r, seed):
    """Kahan summation of every output; ``comp_out`` receives the final compensation."""
    M, K = A.shape
    N = B.shape[1]
    for task in prange(M * N):
        i = task // N
        j = task - i * N
        st = task
        s = round1(C[i, j], p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * K)
        comp = 0.0
        for k in range(K):
            prod = A[i, k] * B[k, j]
            y = add_r(prod, -comp, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k)
            t = add_r(s, y, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k + 1)
            d = add_r(t, -s, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k + 2)
            comp = add_r(d, -y, p, emin, maxv, sub, ovf, flags, mode, r, seed, st,
                         4 * k + 3)
            s = t
        out[i, j] = s
        comp_out[i, j] = comp


@dataclass(frozen=True)
class KahanSum(SingleFormatSum):
    """Kahan compensated summation (order and SR counters: module docstring).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Format of the sum, of the compensation term and of every intermediate.
    mode : str
        Rounding mode of every rounding.
    sr_bits : int or None
        Random bits per SR decision (None: exact SR).
    """

    family = "kahan"

    def _run(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        comp = np.empty_like(out)
        kp = self.acc_format.kernel_params()
        if fast and self.mode == "rne" and rne_ok(kp.p, kp.emin, kp.maxv, kp.flags):
            exact = sums_exact(A, B, C, [self.acc_format], 10**9, products=False)
            kahan_rne_kernel(A, B, C, out, comp, *kp, exact)
        else:
            kahan_kernel(A, B, C, out, comp, *kp, m, r, np.uint64(seed))
        return out, comp

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        return self._run(A, B, C, seed, fast=fast)[0]

    def matmul_with_compensation(self, A, B, C=None, *, seed: int = 0):
        """``(D, comp)``: the result and the final compensation term of every output
        (one per output component)."""
        A, B, C = check_matmul_shapes(A, B, C)
        self.check_inputs(A, B, C)
        return self._run(A, B, C, check_seed(seed))

    def cost_bits(self, n: int) -> float:
        return float(2 * self.acc_format.p * n)


register_family(Family("kahan", KahanSum, bound=bounds.kahan_bound,
                       reference="ref_kahan"))
