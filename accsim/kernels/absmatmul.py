"""``|A| @ |B|`` in a fixed order: the same bits for any thread count.

The componentwise bounds and the condition estimates need ``sum_k |a_ik| |b_kj|`` only
up to a proven relative error (every term is non-negative: any evaluation order is
within ``gamma_K`` of the exact sum, Higham 2002, §3.1), so a BLAS product would do, but
BLAS blocks the sum differently with its thread count (and fuses with FMA), and its last
bits then move with the machine's threads. Here every output is the recursive sum over
``k = 0, 1, ..., K-1`` of the rounded products ``|a_ik| |b_kj|``, each product and each
addition rounded to nearest (no FMA: numba without ``fastmath`` does not contract), so
the result depends on the operands alone. Outputs are independent: ``prange`` runs over
tiles of ``TILE`` columns (or over rows when there is one tile); the inner loop runs
along a row of a tile of ``B`` (contiguous, cached over all rows) for every ``k`` in
order, so it vectorises across ``j`` without reordering any output's sum.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT

__all__ = ["abs_matmul"]

#: Multiply-adds below which the product runs on the calling thread (no thread start-up).
SERIAL_MAX_MACS = 1 << 18
#: Columns of ``B`` per tile: a K x TILE block of ``B`` stays in cache over all rows.
TILE = 256


@njit(**JIT)
def _tile(A, B, out, i0, i1, j0, j1):
    """Rows ``i0 .. i1`` and columns ``j0 .. j1`` of ``out`` (k ascending per output)."""
    for i in range(i0, i1):
        o = out[i, j0:j1]
        for j in range(j1 - j0):
            o[j] = 0.0
        for k in range(A.shape[1]):
            a = abs(A[i, k])
            b = B[k, j0:j1]
            for j in range(j1 - j0):
                o[j] += a * abs(b[j])


@njit(**JIT)
def _abs_matmul_serial(A, B, out):
    N = B.shape[1]
    for j0 in range(0, N, TILE):
        _tile(A, B, out, 0, A.shape[0], j0, min(N, j0 + TILE))


@njit(parallel=True, **JIT)
def _abs_matmul_parallel(A, B, out):
    M, N = A.shape[0], B.shape[1]
    nt = (N + TILE - 1) // TILE
    if nt >= 2:  # independent column tiles
        for t in prange(nt):
            j0 = t * TILE
            _tile(A, B, out, 0, M, j0, min(N, j0 + TILE))
    else:  # one tile: independent rows
        for i in prange(M):
            _tile(A, B, out, i, i + 1, 0, N)


def abs_matmul(A, B) -> np.ndarray:
    """``|A| @ |B|`` of float64 ``A`` (M, K) and ``B`` (K, N), each output the recursive
    sum in ``k`` order of the rounded products (module docstring): the same bits on any
    machine and for any thread count. Non-finite operands propagate as in IEEE
    arithmetic (``inf * 0`` is NaN)."""
    A = np.ascontiguousarray(A, np.float64)
    B = np.ascontiguousarray(B, np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"abs_matmul: shapes {A.shape} and {B.shape} do not chain")
    out = np.empty((A.shape[0], B.shape[1]))
    if A.shape[0] * A.shape[1] * B.shape[1] <= SERIAL_MAX_MACS:
        _abs_matmul_serial(A, B, out)
    else:
        _abs_matmul_parallel(A, B, out)
    return out
