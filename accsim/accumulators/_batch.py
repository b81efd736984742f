"""Packing of many independent products ``A_g @ B_g + C_g`` for the batched kernels
(:func:`accsim.kernels.fused.nv_fused_matmul_batch`,
:func:`accsim.kernels.tiles.recursive_kernel_batch`): every operand stored row-major in
one flat array, with per product its shape, offsets and first tile. A batched kernel
runs every tile of every product in one ``prange``; each product's tiles compute what
they compute in a call of its own (same tiling, same stochastic-rounding stream keys
``i * N + j`` of its own output), so the results are those of one call per product."""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "unpack"]


def pack(As, Bs, Cs, rb: int, nb: int):
    """``(A, B, C, dims, offs, tiles, out_size)``: the flat operands, ``dims[g] = (M, K,
    N)``, ``offs[g]`` the offsets of A_g, B_g, C_g and of the output, ``tiles[g]`` the
    first of product g's ``rb`` x ``nb`` tiles (``tiles[-1]``: all tiles)."""
    G = len(As)
    dims = np.empty((G, 3), np.int64)
    for g, (a, b) in enumerate(zip(As, Bs, strict=True)):
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"product {g}: cannot multiply shapes {a.shape} and {b.shape}")
        dims[g] = a.shape[0], a.shape[1], b.shape[1]
    M, K, N = dims[:, 0], dims[:, 1], dims[:, 2]
    offs = np.zeros((G, 4), np.int64)
    for col, size in enumerate((M * K, K * N, M * N, M * N)):
        offs[1:, col] = np.cumsum(size)[:-1]
    n_tiles = ((M + rb - 1) // rb) * ((N + nb - 1) // nb)
    tiles = np.concatenate([[0], np.cumsum(n_tiles)]).astype(np.int64)

    def flat(xs):
        return np.concatenate([np.ascontiguousarray(x, np.float64).ravel() for x in xs]) \
            if G else np.zeros(0)

    return flat(As), flat(Bs), flat(Cs), dims, offs, tiles, int((M * N).sum())


def unpack(D: np.ndarray, dims: np.ndarray, offs: np.ndarray) -> list:
    """The outputs of the products (views of the flat output ``D``)."""
    return [D[d:d + m * n].reshape(m, n)
            for (m, _, n), d in zip(dims.tolist(), offs[:, 3].tolist(), strict=True)]
