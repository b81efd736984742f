"""Significand statistics of a matrix, for the exact-product and exact-sum proofs of
:mod:`accsim.accumulators._checks` (one pass over the binary64 bit patterns)."""

import numpy as np
from numba import njit

from accsim.kernels.bits import JIT, f64_to_bits

NONE = 10**6  # "no finite nonzero entry" lowest-bit exponent


@njit(**JIT)
def stats2d(X):
    """(max significant bits, min lowest-set-bit exponent, max |x|) over the finite
    nonzero entries of a 2-D float64 array, in one pass."""
    sig = 0
    low = NONE
    mx = 0.0
    frac = np.uint64((1 << 52) - 1)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            v = abs(X[i, j])
            if v != 0.0 and v <= 1.7976931348623157e308:
                mx = max(mx, v)
                b = f64_to_bits(v)
                E = np.int64(b >> np.uint64(52))
                M = (b & frac) | (np.uint64(1 << 52) if E != 0 else np.uint64(0))
                lb = M & (~M + np.uint64(1))  # lowest set bit, a power of 2 <= 2^52
                tz = np.int64(f64_to_bits(float(lb)) >> np.uint64(52)) - 1023
                top = np.int64(f64_to_bits(float(M)) >> np.uint64(52)) - 1023
                sig = max(sig, top - tz + 1)
                low = min(low, max(E, 1) - 1075 + tz)
    return sig, low, mx
