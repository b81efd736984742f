"""Shape and dtype helpers every layer uses: exact float64 views of operands.

Kept at the bottom of the package (they need only :mod:`accsim.numbers.formats` to recognise
ml_dtypes arrays), so rounding, exact references, bounds and models all import them
without importing each other.
"""

from __future__ import annotations

import numpy as np

from accsim.numbers.formats import from_dtype

__all__ = ["as_float64", "check_matmul_shapes"]


def as_float64(X, name: str = "array") -> np.ndarray:
    """Exact float64 values of a numpy float or ml_dtypes array (``ValueError`` for
    integer, complex, object or unknown dtypes)."""
    X = np.asarray(X)
    if X.dtype.kind == "f" and X.dtype.itemsize <= 8:
        return np.ascontiguousarray(X, dtype=np.float64)
    try:
        from_dtype(X.dtype)
    except ValueError:
        raise ValueError(
            f"{name} must be a floating array (numpy float or ml_dtypes), got dtype {X.dtype}"
        ) from None
    return np.ascontiguousarray(X.astype(np.float32), dtype=np.float64)


def check_matmul_shapes(A, B, C):
    """Validate and convert operands of ``A @ B + C``; returns float64 contiguous arrays.

    Raises
    ------
    ValueError
        Naming the operand whose dtype or shape is wrong.
    """
    out = []
    for name, X in (("A", A), ("B", B)):
        X = as_float64(X, name)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
        out.append(X)
    A, B = out
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {A.shape}, B is {B.shape}")
    M, N = A.shape[0], B.shape[1]
    if C is None:
        C = np.zeros((M, N))
    else:
        C = as_float64(C, "C")
        if C.shape != (M, N):
            try:
                C = np.broadcast_to(C, (M, N))
            except ValueError:
                raise ValueError(f"C has shape {C.shape}, expected {(M, N)}") from None
        C = np.ascontiguousarray(C, dtype=np.float64)
    return _readonly(A), _readonly(B), _readonly(C)


def _readonly(X: np.ndarray) -> np.ndarray:
    """A read-only view of X (no copy). numba types read-only and writable arrays
    differently, so passing every operand read-only gives each kernel one signature,
    whether the caller's arrays are frozen network weights or fresh arrays: one
    compilation instead of one per combination."""
    X = X.view()
    X.flags.writeable = False
    return X
