"""Per-step data sums of the fused-unit error bound (``accsim.accumulators.bounds.
fused_bound``, float mode), without the ``(M, L, N)`` temporaries of the numpy version.

For one step ``k0 <= k < k1`` and every output ``(i, j)``: the largest decoded product
exponent ``EA[i, k] + EB[k, j]`` of the nonzero products (``NONE`` if there are none;
a zero factor carries an exponent below ``zsent_half``), the sum of ``|a_ik b_kj|``,
the count of nonzero products, and the sum of ``min(|a_ik b_kj|, g_ij)``. Every sum runs
over ``k`` in increasing order, as numpy's reduction over the middle axis of an
``(M, L, N)`` array does, so the results are the same bits. Rows are independent.
"""

from numba import njit, prange

from accsim.kernels.bits import JIT

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
