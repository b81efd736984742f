"""The tiled, parallel scaffold shared by the recursive, blocked, Kahan and pairwise
kernels.

Every one of them runs ``prange`` over tasks, each task one tile of ``rb`` output rows by
``jb`` output columns (B rows are reused across the tile's rows, the columns are the
vector lanes); each output is summed by exactly one task, in its fixed order, so results
do not depend on the number of threads. A tile starts the same way in every family:
the stochastic-rounding stream keys of its outputs (output ``(i, j)`` is stream
``i * N + j``, see ``accsim.kernels.rng``) and ``round(C)`` into the accumulator format
at the family's counter for C.
"""

import numpy as np
from numba import njit, prange

from accsim.kernels.accumulate import fill_keys, round1
from accsim.kernels.bits import JIT
from accsim.kernels.blocked import blocked_tile
from accsim.kernels.kahan import kahan_rne_tile, kahan_tile
from accsim.kernels.recursive import recursive_tile
from accsim.kernels.vocab import RNE, SR

#: Rows and columns of a tile (rows reuse one B row; columns are the vector lanes).
RB = 8
JB = 256
_Z = np.uint64(0)


@njit(inline="always", **JIT)
def n_tiles(M, N, rb, jb):
    """Number of ``rb`` x ``jb`` tiles covering an ``M`` x ``N`` output."""
    return ((M + rb - 1) // rb) * ((N + jb - 1) // jb)


@njit(inline="always", **JIT)
def tile(task, M, N, rb, jb):
    """``(i0, rows, j0, n)``: the first row, row count, first column and column count of
    tile ``task`` (row-major over tiles)."""
    ncb = (N + jb - 1) // jb
    ib = task // ncb
    i0 = ib * rb
    j0 = (task - ib * ncb) * jb
    return i0, min(M, i0 + rb) - i0, j0, min(N, j0 + jb) - j0


@njit(**JIT)
def start_tile(C, acc, keys, i0, rows, j0, n, N, fmt, mode, r, seed, ctr):
    """Start a tile: ``keys[ii, j]`` = the SR stream key of output ``(i0 + ii, j0 + j)``
    (stochastic rounding only) and ``acc[ii, j] = round(C[i0 + ii, j0 + j])`` into the
    format at SR counter ``ctr``."""
    for ii in range(rows):
        sbase = (i0 + ii) * N + j0
        if mode == SR:
            fill_keys(keys[ii], seed, sbase, n)
        for j in range(n):
            acc[ii, j] = round1(C[i0 + ii, j0 + j], fmt, mode, r, seed, sbase + j, ctr)


@njit(inline="always", **JIT)
def begin_tile(C, task, M, N, rb, cfmt, mode, r, seed, cctr):
    """Tile ``task`` of the ``rb`` x ``JB`` tiling of an M x N output, started:
    ``(i0, rows, j0, n, acc, keys)`` with ``acc[ii, j] = round(C[i0 + ii, j0 + j])`` into
    ``cfmt`` at SR counter ``cctr`` and ``keys[ii, j]`` the SR stream key of that output
    (:func:`start_tile`)."""
    i0, rows, j0, n = tile(task, M, N, rb, JB)
    acc = np.empty((rb, JB))
    keys = np.zeros((rb, JB), np.uint64)
    start_tile(C, acc, keys, i0, rows, j0, n, N, cfmt, mode, r, seed, cctr)
    return i0, rows, j0, n, acc, keys


# The drivers of recursive, blocked and Kahan (pairwise keeps its own loop over one-row
# tiles, see docs/accumulators.md): ``prange`` over the tiles, each tile started by
# :func:`begin_tile`, then summed by the family's tile body (``body(A, B, out, aux, i0,
# rows, j0, n, N, acc, keys, fmt, fmt2, mode, r, seed, cfg)``, in the family's kernel
# module). One short driver per family rather than one driver taking the body as a
# first-class function: numba 0.68 does not cache a function taking a dispatcher
# argument on disk, so such a driver is recompiled in every process (measured: 23.6 s
# before the first fp16 recursive product, against 0.08 s; docs/performance.md), and
# dispatching on a ``literally`` family code costs about 0.16 s per call.


@njit(parallel=True, **JIT)
def recursive_kernel(A, B, C, out, fmt, mode, r, seed, kind, pfmt, fast, exact):
    """Recursive summation of every output into ``out`` (``kind``: ``EXACT``,
    ``ROUNDED`` with products rounded into ``pfmt``, or ``FMA64``; see
    :mod:`accsim.kernels.recursive`); ``exact``: every binary64 sum is proved exact."""
    M, K = A.shape
    N = B.shape[1]
    aux = np.empty((1, 1))
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n, acc, keys = begin_tile(C, task, M, N, RB, fmt, mode, r, seed, 2 * K)
        recursive_tile(A, B, out, aux, i0, rows, j0, n, N, acc, keys, fmt, pfmt, mode, r,
                       seed, (kind, fast, exact, False))


@njit(parallel=True, **JIT)
def recursive_kernel_batch(A, B, C, out, dims, offs, tiles, exact, fmt, mode, r, seed, kind,
                           pfmt, fast):
    """:func:`recursive_kernel` of many independent products in one call (the flat
    layout of :func:`accsim.accumulators._batch.pack`; ``exact[g]`` per product):
    ``prange`` over every tile of every product, each started and summed as in a call of
    its own (its stream keys ``i * N + j`` of its own output)."""
    G = dims.shape[0]
    aux = np.empty((1, 1))
    for u in prange(tiles[G]):
        g = np.searchsorted(tiles, u, side="right") - 1
        M, K, N = dims[g, 0], dims[g, 1], dims[g, 2]
        a, b, c, d = offs[g, 0], offs[g, 1], offs[g, 2], offs[g, 3]
        Ag = A[a:a + M * K].reshape((M, K))
        Og = out[d:d + M * N].reshape((M, N))
        i0, rows, j0, n, acc, keys = begin_tile(C[c:c + M * N].reshape((M, N)), u - tiles[g],
                                                M, N, RB, fmt, mode, r, seed, 2 * K)
        recursive_tile(Ag, B[b:b + K * N].reshape((K, N)), Og, aux, i0, rows, j0, n, N, acc,
                       keys, fmt, pfmt, mode, r, seed, (kind, fast, exact[g], False))


@njit(parallel=True, **JIT)
def blocked_kernel(A, B, C, out, block, ifmt, ofmt, mode, r, seed, fast, iexact, oexact):
    """Blocked summation of every output (:mod:`accsim.kernels.blocked`)."""
    M, K = A.shape
    N = B.shape[1]
    aux = np.empty((1, 1))
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n, acc, keys = begin_tile(C, task, M, N, RB, ofmt, mode, r, seed,
                                                2 * K)
        blocked_tile(A, B, out, aux, i0, rows, j0, n, N, acc, keys, ifmt, ofmt, mode, r, seed,
                     (block, fast, iexact, oexact))


@njit(parallel=True, **JIT)
def kahan_rne_kernel(A, B, C, out, comp_out, fmt, exact):
    """Kahan summation in RNE by the vectorised lanes (:mod:`accsim.kernels.kahan`)."""
    M = A.shape[0]
    N = B.shape[1]
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n, acc, keys = begin_tile(C, task, M, N, RB, fmt, RNE, 0, _Z, 0)
        kahan_rne_tile(A, B, out, comp_out, i0, rows, j0, n, N, acc, keys, fmt, fmt, RNE, 0,
                       _Z, (exact, False, False, False))


@njit(parallel=True, **JIT)
def kahan_kernel(A, B, C, out, comp_out, fmt, mode, r, seed):
    """Kahan summation in any mode (:mod:`accsim.kernels.kahan`); ``comp_out`` receives
    the final compensation."""
    M, K = A.shape
    N = B.shape[1]
    for task in prange(n_tiles(M, N, RB, JB)):
        i0, rows, j0, n, acc, keys = begin_tile(C, task, M, N, RB, fmt, mode, r, seed, 4 * K)
        kahan_tile(A, B, out, comp_out, i0, rows, j0, n, N, acc, keys, fmt, fmt, mode, r, seed,
                   (False, False, False, False))
