"""TEST DOUBLE of ``accsim.run.experiment.evaluate`` -- for the batch tests only.

Never used by default: tests pass it as ``cell_fn`` (``run_sweep(..., cell_fn=...)`` or
the hidden ``accsim sweep --cell-fn doubles:fake_evaluate``, with ``tests/`` on
``PYTHONPATH``, which ``conftest.py`` sets for subprocesses and dask workers). It is a pure
function of its arguments (a numpy Generator keyed by ``seed`` and the parameters),
returns the same keys as the real executor, raises for ``samples == 13`` (to test error
reporting) and sleeps ``ACCSIM_TEST_CELL_SLEEP`` seconds (to test killing a sweep).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

__all__ = ["UNLUCKY_SAMPLES", "fake_evaluate"]

#: ``samples`` value for which the double raises.
UNLUCKY_SAMPLES = 13


def fake_evaluate(network, strategy, low, high=None, levels=None, tau=None,
                  criterion="predicted", guard=False, samples=None, seed=0):
    """Deterministic stand-in with the signature and result keys of ``evaluate``."""
    delay = float(os.environ.get("ACCSIM_TEST_CELL_SLEEP", "0") or 0)
    if delay:
        time.sleep(delay)
    if samples == UNLUCKY_SAMPLES:
        raise RuntimeError(f"unlucky cell: samples={samples} (test double)")
    key = json.dumps([network, strategy, low, high, levels, tau, criterion, guard, samples],
                     sort_keys=True, default=str)
    word = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, word])
    n = samples or 100
    x = rng.standard_normal(n)
    p = 11
    if isinstance(low, dict):
        fmt = low.get("acc_format")
        p = fmt.get("p", fmt.get("mantissa_bits", 10) + 1) if isinstance(fmt, dict) else 11
    err = float(np.abs(x).mean()) * 2.0 ** -p
    return {
        "accuracy": float(1.0 - err - 0.01 * rng.random()),
        "recomputed_fraction": float(rng.random()) if strategy != "uniform" else 0.0,
        "bit_cost": float(p * 784 * n),
        "max_error_bound_ratio": float(rng.random()),
        "max_rel_error": err,
        "n_samples": int(n),
        "violations": 0,
    }
