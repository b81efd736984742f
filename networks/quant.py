"""Rounding to IEEE-style ``float8_e4m3`` (bias 7, max finite 240, has inf)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = ["E4M3", "E4M3_MAX", "to_e4m3", "e4m3_codes", "from_e4m3_codes", "is_e4m3"]

E4M3 = ml_dtypes.float8_e4m3
E4M3_MAX = 240.0


def to_e4m3(x):
    """Round to the nearest ``float8_e4m3`` value (ties to even).

    Parameters
    ----------
    x : array_like
        Values; they are first converted to float32 (exact for float32 input),
        then rounded once to e4m3 by ml_dtypes.

    Returns
    -------
    numpy.ndarray
        float32 array holding exact e4m3 values (overflow gives +-inf).
    """
    return np.asarray(x, dtype=np.float32).astype(E4M3).astype(np.float32)


def e4m3_codes(x):
    """Encode values that are exactly representable in e4m3 as uint8 codes.

    Parameters
    ----------
    x : array_like
        Values exactly representable in e4m3.

    Returns
    -------
    numpy.ndarray
        uint8 bit patterns.

    Raises
    ------
    ValueError
        If some value is not an e4m3 number.
    """
    x32 = np.asarray(x, dtype=np.float32)
    codes = x32.astype(E4M3)
    if not np.array_equal(codes.astype(np.float32), x32):
        raise ValueError("values are not exactly representable in float8_e4m3")
    return codes.view(np.uint8)


def from_e4m3_codes(codes):
    """Decode uint8 e4m3 bit patterns to float64.

    Parameters
    ----------
    codes : numpy.ndarray
        uint8 bit patterns.

    Returns
    -------
    numpy.ndarray
        float64 values (exact).
    """
    return np.asarray(codes, dtype=np.uint8).view(E4M3).astype(np.float32).astype(np.float64)


def is_e4m3(x):
    """Return whether every entry of ``x`` is a finite e4m3 number.

    Parameters
    ----------
    x : array_like
        Values (any float dtype).

    Returns
    -------
    bool
    """
    x = np.asarray(x, dtype=np.float64)
    x32 = x.astype(np.float32)
    return bool(
        np.all(np.isfinite(x))
        and np.array_equal(x32.astype(np.float64), x)
        and np.array_equal(to_e4m3(x32), x32)
        and np.all(np.abs(x) <= E4M3_MAX)
    )
