"""Vectorised public atoms: :func:`add`, :func:`mul`, :func:`fma`, each rounded once.

Operands are float64/float32 arrays (broadcast together) holding values of any format;
the result is rounded once into ``fmt`` in ``mode``. Stochastic rounding keys element
``i`` (flat index of the broadcast result) as ``(seed, 0, i)``.
"""

from __future__ import annotations

import numpy as np

from accsim.kernels.atoms import add_array, fma_array, mul_array
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import check_sr_bits, mode_code
from accsim.numbers.seeds import check_seed

__all__ = ["add", "mul", "fma"]


def _prepare(arrays, fmt, mode, sr_bits):
    fmt = get_format(fmt)
    m = mode_code(mode)
    r = check_sr_bits(mode, sr_bits)
    arrs = []
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind != "f":
            raise ValueError(f"atoms expect float64/float32 operands, got dtype {a.dtype}")
        arrs.append(a.astype(np.float64))
    arrs = np.broadcast_arrays(*arrs)
    shape = arrs[0].shape
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrs]
    return fmt, m, r, shape, flat


def _run(kernel, arrays, fmt, mode, sr_bits, seed):
    fmt, m, r, shape, flat = _prepare(arrays, fmt, mode, sr_bits)
    out = np.empty(flat[0].shape[0])
    kernel(*flat, out, fmt.kernel_params(), m, r, np.uint64(check_seed(seed)))
    out = out.reshape(shape)
    return float(out) if out.ndim == 0 else out


def add(a, b, fmt: str | FloatFormat, mode: str = "rne", *, sr_bits=None, seed: int = 0):
    """``round(a + b)`` into ``fmt``, one rounding of the exact sum."""
    return _run(add_array, (a, b), fmt, mode, sr_bits, seed)


def mul(a, b, fmt: str | FloatFormat, mode: str = "rne", *, sr_bits=None, seed: int = 0):
    """``round(a * b)`` into ``fmt``, one rounding of the exact product."""
    return _run(mul_array, (a, b), fmt, mode, sr_bits, seed)


def fma(a, b, c, fmt: str | FloatFormat, mode: str = "rne", *, sr_bits=None, seed: int = 0):
    """``round(a * b + c)`` into ``fmt``, one rounding of the exact result.

    Raises ``ValueError`` when ``a * b`` would not be exact in binary64 (operands wider
    than binary32) unless the target is binary64 with RNE.
    """
    fmt_ = get_format(fmt)
    if not (fmt_.p == 53 and mode.lower() == "rne"):
        for x in (a, b):
            xa = np.asarray(x, dtype=np.float64)
            if np.any(np.isfinite(xa) & (xa.astype(np.float32).astype(np.float64) != xa)):
                raise ValueError(
                    "fma with directed or stochastic rounding needs operands a, b of at "
                    "most binary32 precision (exact products in binary64)"
                )
    return _run(fma_array, (a, b, c), fmt_, mode, sr_bits, seed)
