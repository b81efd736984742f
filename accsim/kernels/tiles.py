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

from numba import njit

from accsim.kernels.accumulate import fill_keys, round1
from accsim.kernels.bits import JIT
from accsim.kernels.vocab import SR

#: Rows and columns of a tile (rows reuse one B row; columns are the vector lanes).
RB = 8
JB = 256


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
