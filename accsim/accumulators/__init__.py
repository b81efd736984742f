"""Accumulator families (numba kernels behind small frozen parameter classes)."""

from .base import Accumulator, as_float64, check_matmul_shapes

__all__ = ["Accumulator", "as_float64", "check_matmul_shapes"]
