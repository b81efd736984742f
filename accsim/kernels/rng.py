"""Counter-based random bits.

Every random word is a pure function of ``(seed, stream, counter)``: the SplitMix64
finaliser (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014) applied to a combination of the three keys. Results therefore depend on
neither the number of threads nor on how work is chunked.

Stream conventions used in accsim: ``round`` uses stream 0 with the flat element index
as counter; accumulator kernels use ``stream = output index`` and ``counter = 2*step
(+1 for a second rounding in the same step)``; see each kernel's docstring.
"""

import numpy as np
from numba import njit

from accsim.kernels.bits import JIT

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_C1 = np.uint64(0xD1B54A32D192ED03)
_C2 = np.uint64(0xABC98388FB8FAC03)


@njit(**JIT)
def mix64(z):
    """SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**JIT)
def random_u64(seed, stream, counter):
    """The uniform 64-bit word for key ``(seed, stream, counter)`` (all ints)."""
    h = mix64(np.uint64(seed) + _G)
    h = mix64(h ^ (np.uint64(stream) * _C1))
    return mix64(h ^ (np.uint64(counter) * _C2 + _G))


def random_words(seed: int, stream: int, counters) -> np.ndarray:
    """Vectorised helper (for tests): the words for several counters."""
    c = np.asarray(counters, dtype=np.uint64)
    return _random_words(np.uint64(seed), np.uint64(stream), c)


@njit(**JIT)
def _random_words(seed, stream, counters):
    out = np.empty(counters.shape[0], np.uint64)
    for i in range(counters.shape[0]):
        out[i] = random_u64(seed, stream, counters[i])
    return out
