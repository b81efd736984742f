"""Helpers shared by the tests (importable because ``tests/conftest.py`` puts this
directory on ``sys.path``): bit-level equality and the mode list of the reference."""

import numpy as np
from reference import MODES  # noqa: F401 - the reference's own list, independent of accsim

__all__ = ["MODES", "same_bits", "bits_equal"]


def same_bits(a, b) -> np.ndarray:
    """Elementwise: the float64 values of ``a`` and ``b`` have the same bits (sign of
    zero included); every NaN equals every NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (np.isnan(a) & np.isnan(b)) | (a.view(np.uint64) == b.view(np.uint64))


def bits_equal(a, b) -> bool:
    """Whether every element of ``a`` and ``b`` has the same bits (see :func:`same_bits`)."""
    return bool(np.all(same_bits(a, b)))
