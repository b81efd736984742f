"""Layer graph: conv lowering against a direct Fraction convolution, bits of the runner
against the models, scaled fp8 inputs, controls, determinism. (The shipped networks
keep the bits of the engines before issue 18: tests/test_engine_baseline.py.)"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from accsim.accumulators.factory import build_model
from accsim.graph import (
    Add,
    Assignment,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    MaxPool2d,
    run_graph,
)
from accsim.graph.scaling import pow2_scale
from accsim.run.strategies import Adaptive, Control, Uniform

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}
FP32 = {"family": "recursive", "acc_format": "binary32", "mode": "rne", "product": "exact"}


def _e4m3(rng, shape, lo=-3, hi=1):
    mant = rng.integers(8, 16, size=shape) / 8.0
    return rng.choice([-1.0, 1.0], size=shape) * np.ldexp(mant, rng.integers(lo, hi + 1,
                                                                               size=shape))


def _direct_conv(x, w, b, stride, pad, groups):
    """Cross-correlation by its definition, in Fractions, rounded once to binary64."""
    B, C, H, W = x.shape
    O, cg, kh, kw = w.shape
    og = O // groups
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    out = np.empty((B, O, Ho, Wo))
    for n in range(B):
        for o in range(O):
            g = o // og
            for i in range(Ho):
                for j in range(Wo):
                    s = Fraction(b[o])
                    for c in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                r, q = i * stride + u - pad, j * stride + v - pad
                                if 0 <= r < H and 0 <= q < W:
                                    s += Fraction(w[o, c, u, v]) * Fraction(
                                        x[n, g * cg + c, r, q])
                    out[n, o, i, j] = float(s)
    return out


def test_conv_lowering_matches_direct_convolution_bits():
    """stride 2, padding 1, groups 2: the exact reference of every output pixel x
    channel (one inner product of C_in/groups*kh*kw) equals the directly defined
    convolution, and the fp32 model's bits equal its matmul on that patch column."""
    rng = np.random.default_rng(0)
    x = _e4m3(rng, (2, 4, 5, 5))
    w, b = _e4m3(rng, (4, 2, 3, 3)), _e4m3(rng, 4)
    g = Graph("c", (4, 5, 5), [Conv2d("conv", w, b, stride=2, padding=1, groups=2)])
    m = build_model(FP32)
    outs, (res,) = run_graph(g, Assignment({"conv": Uniform(m)}, "fp32"), x)
    ref = _direct_conv(x, w, b, 2, 1, 2)
    np.testing.assert_array_equal(res.exact.view(np.uint64), ref.reshape(2, -1).view(np.uint64))
    # each component on its own: model.matmul of one row of W and one patch column
    for (n, o, i, j) in [(0, 0, 0, 0), (1, 3, 2, 1), (0, 2, 1, 2)]:
        gi = o // 2
        patch = np.zeros((2, 3, 3))
        xp = np.pad(x[n, gi * 2:(gi + 1) * 2], ((0, 0), (1, 1), (1, 1)))
        patch[:] = xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        v = m.matmul(w[o].reshape(1, -1), patch.reshape(-1, 1), np.array([[b[o]]]))
        k = (o * 3 + i) * 3 + j
        assert res.computed[n, k].view(np.uint64) == v[0, 0].view(np.uint64)


def test_scaled_fp8_inputs_equal_tensor_core_on_scaled_operands():
    """Per-tensor pow2 scaling: D = tc(q(W s_w), q(X s_x), C s_w s_x) / (s_w s_x), bits."""
    import hwmodels

    tc = hwmodels.get("hopper", "wgmma.m64n8k32.f32.e4m3.e4m3")
    rng = np.random.default_rng(3)
    W = rng.standard_normal((8, 40)) * 1e-3
    b = rng.standard_normal(8) * 1e-3
    x = rng.standard_normal((3, 40)) * np.array([[1e-4], [1.0], [50.0]])
    x = x.astype(np.float32).astype(np.float64)
    g = Graph("d", (40,), [Dense("fc", W, b)])
    _, (res,) = run_graph(g, Assignment({"dense": Uniform(tc)}, "s", "float8_e4m3fn"), x)
    sw = pow2_scale(np.abs(W).max(), 448.0)
    assert 224 < np.abs(W).max() * sw <= 448
    assert res.w_scale == sw
    for n in range(3):
        sx = pow2_scale(np.abs(x[n]).max(), 448.0)
        assert res.x_scale[n] == sx
        A = (W * sw).astype(np.float32).astype(ml_dtypes.float8_e4m3fn)
        Bm = (x[n][:, None] * sx).astype(np.float32).astype(ml_dtypes.float8_e4m3fn)
        Bm = np.concatenate([Bm, np.zeros((24, 1), Bm.dtype)])  # K padded to 64
        A = np.concatenate([A, np.zeros((8, 24), A.dtype)], axis=1)
        C = (b[:, None] * sw * sx).astype(np.float32)
        D = tc.matmul(A, Bm, C).astype(np.float64) / (sw * sx)
        np.testing.assert_array_equal(res.computed[n].view(np.uint64), D[:, 0].view(np.uint64))
    assert np.all(res.abs_error <= res.bound)


def test_scaling_keeps_tiny_activations_alive():
    """Unscaled, inputs of 1e-4 flush in e4m3 (min subnormal 2^-9); scaled, they do not."""
    import hwmodels

    tc = hwmodels.get("hopper", "wgmma.m64n8k32.f32.e4m3.e4m3")
    x = np.full((1, 32), 1e-4)
    g = Graph("d", (32,), [Dense("fc", np.ones((1, 32)), np.zeros(1))])
    _, (r0,) = run_graph(g, Assignment({"dense": Uniform(tc)}, "u"), x)
    _, (r1,) = run_graph(g, Assignment({"dense": Uniform(tc)}, "s", "float8_e4m3fn"), x)
    assert r0.computed[0, 0] == 0.0
    assert r1.rel_error[0, 0] < 2**-3


def test_batch_size_does_not_change_results():
    rng = np.random.default_rng(4)
    g = Graph("c", (2, 6, 6), [Conv2d("c1", _e4m3(rng, (3, 2, 3, 3)), _e4m3(rng, 3),
                                      padding=1, activation="relu"),
                               MaxPool2d("p", 2), Flatten("f"),
                               Dense("d", _e4m3(rng, (4, 27)), _e4m3(rng, 4))])
    import hwmodels

    a = Assignment({"conv": Uniform(hwmodels.get("hopper", "wgmma.m64n8k32.f32.e4m3.e4m3")),
                    "dense": Adaptive(build_model(FP8), build_model(FP16), 0.5)}, "x",
                   "float8_e4m3fn", {"conv"})
    x = rng.standard_normal((4, 2, 6, 6)) * np.array([1e-3, 1, 10, 100])[:, None, None, None]
    full, _ = run_graph(g, a, x)
    halves = [run_graph(g, a, x[i:i + 2], offset=i)[0]["d"] for i in (0, 2)]
    np.testing.assert_array_equal(np.concatenate(halves).view(np.uint64),
                                  full["d"].view(np.uint64))


def test_avgpool_runs_on_the_accumulator():
    """2x2 average pooling: inner products of 4 terms with weight 1/4, summed by the
    model; fp32 recursive = sequential float32 adds of the exact quarters."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32).astype(np.float64)
    g = Graph("p", (3, 4, 4), [AvgPool2d("avg", 2)])
    _, (r,) = run_graph(g, Assignment({"avgpool": Uniform(build_model(FP32))}, "a"), x)
    for n, c, i, j in [(0, 0, 0, 0), (1, 2, 1, 1), (0, 1, 1, 0)]:
        win = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].ravel() * 0.25
        s = np.float32(0.0)
        for t in win:
            s = np.float32(s + np.float32(t))
        k = (c * 2 + i) * 2 + j
        assert r.computed[n, k] == float(s)
        assert r.exact[n, k] == float(sum(Fraction(t) for t in win))


def test_elementwise_ops_and_residual():
    """BN, residual add and max pool in the graph against numpy (binary64)."""
    rng = np.random.default_rng(6)
    w = _e4m3(rng, (2, 2, 1, 1))
    gamma, beta, mean, var = (rng.random(2) + 0.5 for _ in range(4))
    g = Graph("r", (2, 4, 4), [
        Conv2d("c", w, None, activation="relu"),
        BatchNorm("bn", gamma, beta, mean, var, eps=1e-3),
        Add("res", inputs=["bn", "input"]),
        MaxPool2d("mp", 2)])
    x = rng.standard_normal((1, 2, 4, 4))
    y = np.maximum(np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x), 0)
    y = (y - mean[None, :, None, None]) * (gamma / np.sqrt(var + 1e-3))[None, :, None, None] \
        + beta[None, :, None, None] + x
    y = y.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_allclose(g.forward(x), y, rtol=1e-14)


def test_controls_recompute_matched_counts():
    rng = np.random.default_rng(7)
    g = Graph("d", (64,), [Dense("fc", _e4m3(rng, (16, 64)), _e4m3(rng, 16),
                                 activation="relu")])
    x = rng.standard_normal((8, 64))
    lo, hi = build_model(FP8), build_model(FP16)
    for kind in ("random", "oracle"):
        c = Control(lo, hi, kind, label="c", fractions={0: 0.25})
        _, (r,) = run_graph(g, Assignment({"dense": c}, "c"), x)
        assert int((r.level == 1).sum()) == 32
    # oracle: every recomputed component has an output error >= every kept one's
    o = Control(lo, hi, "oracle", fractions={0: 0.25})
    _, (r,) = run_graph(g, Assignment({"dense": o}, "o"), x)
    _, (r0,) = run_graph(g, Assignment({"dense": Uniform(lo)}, "u"), x)
    err = np.abs(np.maximum(r0.computed, 0) - np.maximum(r0.exact, 0))
    assert err[r.level == 1].min() >= err[r.level == 0].max()


def test_bad_graphs_name_the_layer_and_tensor():
    w = np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match="layer 'conv'.*weight expects 3 input channels"):
        Graph("g", (2, 8, 8), [Conv2d("conv", w)])
    with pytest.raises(ValueError, match="layer 'fc'.*weight has 10 input features"):
        Graph("g", (12,), [Dense("fc", np.zeros((2, 10)))])
    with pytest.raises(ValueError, match="layer 'fc'.*tensor bias has shape"):
        Dense("fc", np.zeros((2, 10)), np.zeros(3))
    with pytest.raises(ValueError, match="layer 'c'.*tensor weight has non-finite"):
        Conv2d("c", np.full((1, 1, 1, 1), np.nan))
    with pytest.raises(ValueError, match="duplicate layer name"):
        Graph("g", (4,), [Dense("a", np.zeros((4, 4))), Dense("a", np.zeros((4, 4)))])
    with pytest.raises(ValueError, match="unknown op classes"):
        Assignment({"lstm": Uniform(build_model(FP32))}, "x")


def test_gelu_and_softmax_ops():
    """A dense layer with fused GELU then a softmax op, against their closed forms."""
    from math import erf, exp, sqrt

    from accsim.graph import Activation

    rng = np.random.default_rng(8)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    g = Graph("s", (4,), [Dense("fc", W, b, activation="gelu"), Activation("sm", "softmax")])
    x = rng.standard_normal((2, 4))
    for n in range(2):
        z = [sum(W[i, j] * x[n, j] for j in range(4)) + b[i] for i in range(3)]
        h = [v * (1 + erf(v / sqrt(2))) / 2 for v in z]
        e = [exp(v) for v in h]
        np.testing.assert_allclose(g.forward(x)[n], [v / sum(e) for v in e], rtol=1e-14)
