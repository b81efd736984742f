"""The one seed rule of accsim: a seed is an integer in ``[0, 2**64)``.

The counter-based generator of stochastic rounding (``accsim.kernels.rng``) is keyed
by a 64-bit word, so exactly the integers ``0 .. 2**64 - 1`` name distinct streams.
Everything else is refused instead of being mapped silently onto another stream: a
float such as ``1.5`` (truncation), a negative integer or one ``>= 2**64`` (wrap-around
modulo ``2**64``: ``-1`` would be ``2**64 - 1``), a bool, a string. Every public entry
point that takes a seed (``accsim.round``, ``atoms``, ``formats.to_ml_dtypes``, the
accumulators' ``matmul``, run and sweep configs, the ``--seed`` options) goes through
:func:`check_seed`.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["SEED_LIMIT", "check_seed", "derive"]

#: Seeds are integers ``0 <= seed < SEED_LIMIT``.
SEED_LIMIT = 2**64


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as a Python int, or ``ValueError`` naming ``name``.

    Parameters
    ----------
    seed : int or numpy integer
        Must satisfy ``0 <= seed < 2**64``.
    name : str
        How the error names the value (``"seed"``, ``"--seed"``, ``"run.seed"``).

    Returns
    -------
    int
    """
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer):
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {seed!r} "
                         f"({type(seed).__name__})")
    s = int(seed)
    if not 0 <= s < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {s}")
    return s


def derive(seed: int, index: int) -> int:
    """The seed of member ``index`` (>= 0) of a family of streams keyed by ``seed``;
    always in ``[0, 2**64)``, so any valid seed works (``verify --seed 2**64-1``).

    ``seed + index`` while that is below ``2**64``: the rule used before, kept so that
    every result computed with such seeds stays bit-identical. Beyond, where the sum
    would leave the seed range, the seed is a hash-combine of the two instead:
    the first 8 bytes of SHA-256 of their 16-byte big-endian encodings.
    """
    seed = check_seed(seed)
    index = int(index)
    if index < 0:
        raise ValueError(f"a derived stream index must be >= 0, got {index}")
    if seed + index < SEED_LIMIT:
        return seed + index
    h = hashlib.sha256(seed.to_bytes(8, "big") + index.to_bytes(8, "big")).digest()
    return int.from_bytes(h[:8], "big")
