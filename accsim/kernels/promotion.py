"""Numba kernels of fine-grained promotion (:mod:`accsim.accumulators.promotion`):
elementwise rounding of a matrix and the promotion additions ``acc = round(acc + P)``
(DeepSeek-V3 technical report, arXiv:2412.19437, section 3.3.2)."""

import numpy as np
from numba import njit, prange

from accsim.kernels.accumulate import add_r, round1
from accsim.kernels.bits import JIT

_Z = np.uint64(0)


@njit(parallel=True, **JIT)
def round_matrix(X, out, fmt, mode):
    """``out = round(X)`` elementwise into ``fmt`` (deterministic modes)."""
    M, N = X.shape
    for i in prange(M):
        for j in range(N):
            out[i, j] = round1(X[i, j], fmt, mode, 0, _Z, 0, 0)


@njit(parallel=True, **JIT)
def add_matrix(acc, P, fmt, mode):
    """``acc = round(acc + P)`` elementwise, exactly once (deterministic modes)."""
    M, N = acc.shape
    for i in prange(M):
        for j in range(N):
            acc[i, j] = add_r(acc[i, j], P[i, j], fmt, mode, 0, _Z, 0, 0)
