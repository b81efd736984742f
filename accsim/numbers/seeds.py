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

import numpy as np

__all__ = ["SEED_LIMIT", "check_seed"]

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
