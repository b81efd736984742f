"""Bound kernels: the fused-unit error bound's float mode (``accsim.accumulators.bounds.
fused_bound``: every step in one pass per row, :func:`fused_steps`, without the ``(M,
L, N)`` temporaries of the numpy version), and the one-pass elementwise tails of the
recursive and blocked bounds (:func:`affine_bound`) and of ``error_bound``
(:func:`finish_bound`).

Per step ``k0 <= k < k1`` and output ``(i, j)``: the largest decoded product exponent
``EA[i, k] + EB[k, j]`` of the nonzero products (``NONE`` if there are none; a zero
factor carries an exponent below ``zsent_half``), the sum of ``|a_ik b_kj|``, the count
of nonzero products, and the sum of ``min(|a_ik b_kj|, g_ij)``. Every sum runs over
``k`` in increasing order, as numpy's reduction over the middle axis of an ``(M, L, N)``
array does, so the results are the same bits. Rows are independent.

Every kernel performs, per component, the same IEEE operations in the same order as the
numpy array formulas it replaces (no contraction into FMAs: numba never uses
``fastmath`` here), so it gives the same bits in one pass over memory instead of a
dozen.
"""

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits

NONE = -(10**6)


@njit(**JIT)
def _next_up(x):
    """The binary64 number after ``x`` toward ``+inf`` (``numpy.nextafter(x, inf)``:
    NaN and ``+inf`` stay, ``-0.0`` and ``+0.0`` step to the smallest subnormal)."""
    if x != x or x == np.inf:
        return x
    if x == 0.0:
        return 5e-324
    b = f64_to_bits(x)
    return bits_to_f64(b + np.uint64(1)) if x > 0.0 else bits_to_f64(b - np.uint64(1))


@njit(**JIT)
def affine_bound(S, C, c_exact, g, eta, infl, tiny, maxv, pmax, out):
    """The float bound ``g T + (1 + g) eta`` of a recursive or blocked sum, in one pass
    (``accsim.accumulators.bounds``: the same operations in the same order as the numpy
    formulas, so the same bits).

    ``T = up(S infl + tiny) + |c|`` with ``S`` the binary64 BLAS ``|A||B|`` (inflated
    into a proven upper bound), ``g = g[r]`` and ``eta = eta[r]`` the per-component
    constants picked by ``r = 0`` where ``c`` is exact in the accumulator format
    (``c_exact``), else ``r = 1``. ``out`` is ``+inf`` where ``T + bound >= maxv`` or
    ``T >= pmax`` (an overflow is possible)."""
    M, N = S.shape
    for i in range(M):
        for j in range(N):
            r = 0 if c_exact[i, j] else 1
            t = _next_up(S[i, j] * infl + tiny) + abs(C[i, j])
            gr = g[r]
            b = gr * t + (1.0 + gr) * eta[r]
            out[i, j] = np.inf if (t + b >= maxv or t >= pmax) else b


@njit(**JIT)
def finish_bound(bound, bad_rows, bad_cols, C, scale, slack, out):
    """``error_bound``'s last step in one pass: ``up(bound scale + slack)``, ``+inf``
    where row ``i`` of A or column ``j`` of B or ``C[i, j]`` is not finite, or the
    result is NaN."""
    M, N = out.shape
    for i in range(M):
        for j in range(N):
            v = _next_up(bound[i, j] * scale + slack)
            if bad_rows[i] or bad_cols[j] or not np.isfinite(C[i, j]) or v != v:
                v = np.inf
            out[i, j] = v


@njit(**JIT)
def _np_max(a, b):
    """``numpy.maximum`` of two floats (a NaN operand gives NaN)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@njit(parallel=True, **JIT)
def fused_steps(A, B, EA, EB, cpow0, Cabs, L, zsent_half, ez, c_separate, floor, odd_even,
                cfloor, inv_f, f2_g, f2, tiny_f2, u_o, eta_o, maxv, E_out, ovf_out):
    """Every step of the fused-unit bound's float mode in one pass per row (``accsim.
    accumulators.bounds.fused_bound``: the per-step data sums and array formulas of its
    exact mode, with the same operations in the same order on floats, so the same bits
    as the numpy version had).

    Per output and step ``k0 = 0, L, 2L, ...``: ``ep`` the largest decoded product
    exponent (raised to ``ez`` unless ``c_separate``, clipped to +-1100), ``g = max(2^ep,
    cpow) inv_f`` with ``cpow`` the addend's power (``cpow0`` at the first step, then
    ``max(T + E, cfloor)``), the truncation loss ``tr`` (``g nz + g`` with ``floor``, else
    ``sum min(|a b|, g) + g``; plus ``2 g`` with ``odd_even`` and ``g f2_g`` with
    ``c_separate``), ``T += sum |a b|``, ``z = T + E + tr`` (plus ``f2 z + tiny_f2`` with
    ``c_separate``) and ``E += tr (+ w) + u_o z + eta_o``; ``ovf_out`` where ``z + E >=
    maxv`` at some step. Rows are independent."""
    M, K = A.shape
    N = B.shape[1]
    for i in prange(M):
        T = Cabs[i].copy()
        E = np.zeros(N)
        cpow = cpow0[i].copy()
        ovf = np.zeros(N, np.bool_)
        ep = np.empty(N, np.int64)
        tk = np.empty(N)
        nz = np.empty(N)
        g = np.empty(N)
        trs = np.zeros(N)
        first = True
        for k0 in range(0, K, L):
            k1 = min(K, k0 + L)
            for j in range(N):
                ep[j] = NONE
                tk[j] = 0.0
                nz[j] = 0.0
            for k in range(k0, k1):
                a = A[i, k]
                ea = EA[i, k]
                for j in range(N):
                    e = ea + EB[k, j]
                    if e < zsent_half:
                        e = NONE
                    if e > ep[j]:
                        ep[j] = e
                    p = abs(a * B[k, j])
                    tk[j] += p
                    if p != 0.0:
                        nz[j] += 1.0
            for j in range(N):
                e = ep[j]
                if not c_separate:
                    e = max(e, ez)
                e = min(max(e, -1100), 1100)
                if not first:
                    cpow[j] = _np_max(T[j] + E[j], cfloor)
                g[j] = _np_max(math.ldexp(1.0, max(e, -1074)), cpow[j]) * inv_f
            if not floor:
                for j in range(N):
                    trs[j] = 0.0
                for k in range(k0, k1):
                    a = A[i, k]
                    for j in range(N):
                        p = abs(a * B[k, j])
                        gj = g[j]
                        trs[j] += p if p < gj else gj
            for j in range(N):
                gj = g[j]
                tr = gj * nz[j] + gj if floor else trs[j] + gj
                if c_separate:
                    if odd_even:
                        tr = tr + 2 * gj
                    tr = tr + gj * f2_g
                t = T[j] + tk[j]
                z = t + E[j] + tr
                if c_separate:
                    w = f2 * z + tiny_f2
                    z = z + w
                    E[j] = E[j] + tr + w + u_o * z + eta_o
                else:
                    E[j] = E[j] + tr + u_o * z + eta_o
                if z + E[j] >= maxv:
                    ovf[j] = True
                T[j] = t
            first = False
        for j in range(N):
            E_out[i, j] = E[j]
            ovf_out[i, j] = ovf[j]
