"""Operation-class models and per-tensor scaled hardware models (accsim.transformer.opclass)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hwmodels
from accsim.numbers import exact
from accsim.transformer.opclass import (
    Float64,
    OpModels,
    PerTensorScaled,
    matmul_op,
    op_result,
    pow2_scale,
    reduce_op,
    resolve_model,
)

HOPPER = "hopper:wgmma.m64n8k32.f32.e4m3.e4m3"


def _f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def test_pow2_scale_brackets_the_format_max():
    rng = np.random.default_rng(0)
    for _ in range(200):
        X = _f32(rng, 5, 3, scale=10.0 ** rng.uniform(-30, 30))
        s = pow2_scale(X, 448.0)
        amax = np.max(np.abs(X))
        assert math.frexp(s)[0] == 0.5  # a power of two
        assert amax * s <= 448.0 < 2 * amax * s
    # exact boundary: amax == fmax gives scale 1
    assert pow2_scale(np.array([448.0]), 448.0) == 1.0
    assert pow2_scale(np.zeros(3), 448.0) == 1.0


def test_scaled_hopper_equals_manual_scaling_bits():
    rng = np.random.default_rng(1)
    A, B, C = _f32(rng, 8, 64, scale=1e-3), _f32(rng, 64, 5, scale=30.0), _f32(rng, 8, 5)
    m = resolve_model(HOPPER)
    assert isinstance(m, PerTensorScaled)
    D = matmul_op(m, A, B, C)
    sA, sB = pow2_scale(A, 448.0), pow2_scale(B, 448.0)
    hw = hwmodels.get(HOPPER)
    Aq, Bq, Cq = hw.quantize_operands(A * sA, B * sB, C * sA * sB)
    ref = hw.matmul_values(Aq, Bq, Cq) / (sA * sB)
    np.testing.assert_array_equal(D.view(np.uint64), ref.view(np.uint64))


def test_column_scales_equal_separate_calls():
    """A batch of sentences with one scale per sentence gives each sentence's bits."""
    rng = np.random.default_rng(2)
    m = resolve_model(HOPPER)
    W = _f32(rng, 6, 32)
    X1, X2 = _f32(rng, 32, 3, scale=1e-2), _f32(rng, 32, 4, scale=1e2)
    X = np.concatenate([X1, X2], axis=1)
    sB = m.column_scales(X, [(0, 3), (3, 7)])
    both = m.matmul(W, X, scales=(pow2_scale(W, 448.0), sB))
    np.testing.assert_array_equal(both[:, :3], m.matmul(W, X1))
    np.testing.assert_array_equal(both[:, 3:], m.matmul(W, X2))


@pytest.mark.parametrize("spec", [HOPPER, "ampere:mma.m16n8k16.f32.f16.f16.f32",
                                  {"family": "recursive", "acc_format": "binary16",
                                   "mode": "rne", "product": "exact"}, "fp64"])
def test_op_result_bound_holds(spec):
    rng = np.random.default_rng(3)
    m = resolve_model(spec)
    A, B, C = _f32(rng, 7, 48), _f32(rng, 48, 6), _f32(rng, 7, 6)
    r = op_result(m, A, B, C)
    assert r.holds.all()
    if not isinstance(m, (PerTensorScaled, Float64)):
        np.testing.assert_array_equal(r.exact, exact.matmul(A, B, C))


def test_reduce_op_is_ones_product():
    rng = np.random.default_rng(4)
    m = resolve_model({"family": "recursive", "acc_format": "binary16", "mode": "rne",
                       "product": "exact"})
    X = _f32(rng, 40, 5)
    got = reduce_op(m, X)
    want = m.matmul(np.ones((1, 40)), X, np.zeros((1, 5)))[0]
    np.testing.assert_array_equal(got, want)
    # fp16 accumulation of 40 terms differs from the binary64 sum
    assert np.any(got != X.sum(axis=0))


def test_opmodels_classes():
    f = Float64()
    ops = OpModels(f, scores="x")
    assert ops["scores"] == "x" and ops["qkv"] is f
    with pytest.raises(ValueError, match="unknown operation class"):
        OpModels(f, attention="x")
    with pytest.raises(KeyError, match="unknown operation class"):
        ops["convolution"]
