"""Bound kernels: the per-step data sums of the fused-unit error bound (``accsim.
accumulators.bounds.fused_bound``, float mode), without the ``(M, L, N)`` temporaries of
the numpy version, and the one-pass elementwise tails of the recursive and blocked
bounds (:func:`affine_bound`) and of ``error_bound`` (:func:`finish_bound`).

For one step ``k0 <= k < k1`` and every output ``(i, j)``: the largest decoded product
exponent ``EA[i, k] + EB[k, j]`` of the nonzero products (``NONE`` if there are none;
a zero factor carries an exponent below ``zsent_half``), the sum of ``|a_ik b_kj|``,
the count of nonzero products, and the sum of ``min(|a_ik b_kj|, g_ij)``. Every sum runs
over ``k`` in increasing order, as numpy's reduction over the middle axis of an
``(M, L, N)`` array does, so the results are the same bits. Rows are independent.

The elementwise tails perform, per component, the same IEEE operations in the same
order as the numpy array formulas they replace (no contraction into FMAs: numba never
uses ``fastmath`` here), so they give the same bits in one pass over memory instead of
a dozen.
"""

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits

NONE = -(10**6)


@njit(parallel=True, **JIT)
def step_sums(A, B, EA, EB, k0, k1, zsent_half, ep, tsum, nz):
    """``ep``, ``tsum`` (sum of ``|a b|``) and ``nz`` (nonzero products) of one step."""
    N = B.shape[1]
    for i in prange(A.shape[0]):
        for j in range(N):
            ep[i, j] = NONE
            tsum[i, j] = 0.0
            nz[i, j] = 0.0
        for k in range(k0, k1):
            a = A[i, k]
            ea = EA[i, k]
            for j in range(N):
                e = ea + EB[k, j]
                if e < zsent_half:
                    e = NONE
                if e > ep[i, j]:
                    ep[i, j] = e
                p = abs(a * B[k, j])
                tsum[i, j] += p
                if p != 0.0:
                    nz[i, j] += 1.0


@njit(parallel=True, **JIT)
def step_trunc(A, B, k0, k1, g, out):
    """``out = sum_k min(|a_ik b_kj|, g_ij)`` over one step."""
    N = B.shape[1]
    for i in prange(A.shape[0]):
        for j in range(N):
            out[i, j] = 0.0
        for k in range(k0, k1):
            a = A[i, k]
            for j in range(N):
                p = abs(a * B[k, j])
                gij = g[i, j]
                out[i, j] += p if p < gij else gij


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
