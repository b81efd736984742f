"""Public API input validation: ml_dtypes inputs to round, integer seeds only."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import accsim
import hwmodels


def test_round_accepts_ml_dtypes_and_float16_exactly():
    x = np.array([1.5, -0.375, 3.0e-3], np.float32)
    want = accsim.round(x.astype(np.float64), "float8_e4m3", "rz")
    for dt in (ml_dtypes.bfloat16, np.float16):
        xs = x.astype(dt)
        got = accsim.round(xs, "float8_e4m3", "rz")
        ref = accsim.round(xs.astype(np.float64), "float8_e4m3", "rz")
        assert got.view(np.uint64).tolist() == ref.view(np.uint64).tolist()
    assert accsim.round(x, "float8_e4m3", "rz").view(np.uint64).tolist() == \
        want.view(np.uint64).tolist()


@pytest.mark.parametrize("seed", [1.5, "1", None, True])
def test_non_integer_seed_rejected(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=seed)
    m = hwmodels.get("bf16-sr-accumulator")
    with pytest.raises(ValueError, match="seed must be an integer"):
        m.matmul(np.ones((2, 3)), np.ones((3, 2)), seed=seed)


def test_integer_seeds_still_accepted():
    a = accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=np.uint64(2**64 - 1))
    b = accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=2**64 - 1)
    assert a.view(np.uint64).tolist() == b.view(np.uint64).tolist()
    with pytest.raises(ValueError, match="seed"):  # no wrap-around (issue 14)
        accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=-1)


def test_kahan_compensation_seed_checked():
    m = hwmodels.get("fp16-kahan")
    with pytest.raises(ValueError, match="seed must be an integer"):
        m.matmul_with_compensation(np.ones((2, 3)), np.ones((3, 2)), seed=0.5)
    d, comp = m.matmul_with_compensation(np.ones((2, 3)), np.ones((3, 2)), seed=np.int64(1))
    assert d.tolist() == [[3.0, 3.0], [3.0, 3.0]]
