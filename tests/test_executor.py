"""Layer executor: exactness, recomputed bits, cost accounting, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_network as run_batch

import accsim
from accsim.accumulators.factory import build_model
from accsim.run.cost import inner_product_bits, layer_cost
from accsim.run.strategies import Adaptive, MultiLevel, Uniform

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}
FP32 = {"family": "recursive", "acc_format": "binary32", "mode": "rne", "product": "exact"}
BF16 = {"family": "recursive", "acc_format": "bfloat16", "mode": "rne", "product": "exact"}
EXACT = {"family": "kulisch", "out_format": "binary64", "mode": "rne"}


def _e4m3(rng, shape, lo=-3, hi=1):
    """Random e4m3 values with exponents in [lo, hi] (exact in every format)."""
    mant = rng.integers(8, 16, size=shape) / 8.0
    exp = rng.integers(lo, hi + 1, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return sign * np.ldexp(mant, exp)


def _small_net(seed=0):
    """conv(1x6x6 -> 2x3x3, ReLU) -> dense 18 -> 12 (tanh) -> dense 12 -> 4 (identity)."""
    import networks

    rng = np.random.default_rng(seed)
    layers = [
        networks.Layer(kind="conv", W=_e4m3(rng, (2, 9)), b=_e4m3(rng, 2), activation="relu",
                       in_shape=(1, 6, 6), kernel=(3, 3), stride=2, padding=1),
        networks.Layer(kind="dense", W=_e4m3(rng, (12, 18)), b=_e4m3(rng, 12),
                       activation="relu"),
        networks.Layer(kind="dense", W=_e4m3(rng, (4, 12)), b=_e4m3(rng, 4),
                       activation="identity"),
    ]
    return networks.Network(name="small", layers=layers)


def test_exact_accumulator_equals_float64_forward_bits():
    """Kulisch into binary64 = numpy float64 forward when every float64 sum is exact.

    Inputs on a 2^-4 grid and e4m3 weights with exponents >= -3 keep every partial sum
    on a coarse grid and far below 2^53 ulps, so BLAS's float64 result is exact in any
    order; both paths then round activations to binary32 once.
    """
    net = _small_net()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 17, size=(5, 36)) / 16.0
    logits, layers = run_batch(net, Uniform(build_model(EXACT)), x)
    h = x.T.astype(np.float64)
    for layer, rec in zip(net.layers, layers, strict=True):
        X = layer.to_columns(h)
        v = layer.W @ X + layer.b[:, None]
        np.testing.assert_array_equal(layer.from_columns(v).view(np.uint64),
                                      rec.computed.view(np.uint64))
        np.testing.assert_array_equal(rec.computed, rec.exact)
        h = layer.from_columns(layer.phi(v).astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(h.T.view(np.uint64), logits.view(np.uint64))


def test_exact_accumulator_real_network_matches_numpy():
    import networks

    net = networks.load("mlp-relu")
    _, _, x, y = networks.digits_dataset()
    x = x[:16]
    logits, layers = run_batch(net, Uniform(build_model(EXACT)), x)
    ref = net.forward(x, np.float64)
    np.testing.assert_allclose(logits, ref, rtol=1e-6, atol=1e-6)
    assert (np.argmax(logits, 1) == np.argmax(ref, 1)).all()
    for rec in layers:
        np.testing.assert_array_equal(rec.computed, rec.exact)
        assert (rec.level == 0).all()


def _layer_inputs(net, x, layers):
    """Recompute each layer's input columns from the recorded computed values."""
    h = accsim.round(np.ascontiguousarray(np.asarray(x, np.float64).T), "binary32")
    out = []
    for layer, rec in zip(net.layers, layers, strict=True):
        out.append(layer.to_columns(h))
        v_cols = layer.from_columns_adjoint(rec.computed)
        h = layer.from_columns(accsim.round(layer.phi(v_cols), "binary32"))
    return out


@pytest.mark.parametrize("strategy", ["adaptive", "multilevel"])
def test_recomputed_components_carry_model_bits(strategy):
    net = _small_net(3)
    rng = np.random.default_rng(4)
    x = rng.random((6, 36)).astype(np.float32)
    models = [build_model(FP8), build_model(FP16), build_model(FP32)]
    if strategy == "adaptive":
        s = Adaptive(models[0], models[1], tau=1.0, label="a")
    else:
        s = MultiLevel(models, tau=0.05, label="m")
    _, layers = run_batch(net, s, x)
    seen = set()
    for layer, X, rec in zip(net.layers, _layer_inputs(net, x, layers), layers, strict=True):
        C = np.broadcast_to(layer.b[:, None], (layer.W.shape[0], X.shape[1]))
        for k, m in enumerate(s.models):
            full = layer.from_columns(m.matmul(layer.W, X, C))
            sel = rec.level == k
            if sel.any():
                seen.add(k)
            np.testing.assert_array_equal(full[sel].view(np.uint64),
                                          rec.computed[sel].view(np.uint64))
    assert {0, 1} <= seen  # both the low and a recomputed level occurred


def test_cost_accounting_hand_built_layer():
    lo, hi = build_model(FP8), build_model(FP16)
    level = np.array([[0, 1, 0], [1, 1, 0]])
    c = layer_cost([lo, hi], level, 10, estimate=True)
    b0, b1 = lo.cost_bits(11), hi.cost_bits(11)
    assert (c.components, c.recomputed, c.per_level) == (6, 3, [3, 3])
    assert c.base_bits == 6 * b0 and c.estimate_bits == 6 * b0
    assert c.recompute_bits == 3 * b1
    assert c.bit_cost == 12 * b0 + 3 * b1
    assert inner_product_bits(hi, 10) == hi.cost_bits(11)
    u = layer_cost([lo], np.zeros((2, 3), int), 10, estimate=False)
    assert u.bit_cost == 6 * b0 and u.recomputed == 0
    with pytest.raises(ValueError):
        layer_cost([lo], level, 10, estimate=False)
    # no bias: n terms, in the bits and in the hardware counts
    assert inner_product_bits(hi, 10, bias=False) == hi.cost_bits(10)
    nb = layer_cost([lo, hi], level, 10, estimate=True, bias=False)
    assert nb.bit_cost == 12 * lo.cost_bits(10) + 3 * hi.cost_bits(10)
    assert {k[2] for k in nb.hw if k[0] in ("ip", "reread")} == {10}


def test_engine_bills_a_bias_term_only_to_tasks_with_a_bias():
    """A dense layer built with a bias bills ``n + 1`` terms per component, the same
    layer without one (and a sum over an axis) ``n``."""
    from accsim.graph import Dense, Graph, run_graph
    from accsim.graph.runner import Assignment
    from accsim.graph.tensor_ops import ReduceSum
    from accsim.run.strategies import Uniform

    rng = np.random.default_rng(3)
    W = accsim.round(rng.standard_normal((4, 6)), "float8_e4m3")
    x = rng.uniform(0, 1, (3, 6))
    hi = build_model(FP16)
    a = Assignment({"default": Uniform(hi)}, "u")
    for bias, terms in ((np.zeros(4), 7), (None, 6)):
        g = Graph("d", (6,), [Dense("d", W, bias), ReduceSum("s", (0,))])
        _, (rd, rs) = run_graph(g, a, x)
        assert rd.cost[0].bit_cost == 12 * hi.cost_bits(terms)
        assert rs.cost[0].bit_cost == 3 * hi.cost_bits(4)


def test_cost_through_executor():
    net = _small_net(5)
    x = np.random.default_rng(6).random((3, 36))
    lo, hi = build_model(FP8), build_model(FP16)
    _, layers = run_batch(net, Adaptive(lo, hi, tau=1.0), x)
    for layer, rec in zip(net.layers, layers, strict=True):
        n = layer.W.shape[1]
        k = int((rec.level == 1).sum())
        assert rec.cost.components == rec.level.size
        assert rec.cost.recomputed == k
        assert rec.cost.bit_cost == pytest.approx(
            2 * rec.level.size * lo.cost_bits(n + 1) + k * hi.cost_bits(n + 1))


@pytest.mark.parametrize("criterion", ["predicted", "authors"])
def test_tau_inf_recomputes_nothing_and_tau_zero_everything(criterion):
    net = _small_net(7)
    x = np.random.default_rng(8).random((4, 36))
    lo, hi = build_model(FP8), build_model(FP16)
    _, none = run_batch(net, Adaptive(lo, hi, tau=np.inf, criterion=criterion), x)
    assert all(r.cost.recomputed == 0 for r in none)
    if criterion == "predicted":
        _, every = run_batch(net, Adaptive(lo, hi, tau=0.0), x)
        assert all(r.cost.recomputed == r.cost.components for r in every)
        _, ml = run_batch(net, MultiLevel([lo, hi, build_model(FP32)], tau=0.0), x)
        assert all((r.level == 2).all() for r in ml)


@pytest.mark.parametrize("spec", [FP8, FP16, BF16, FP32])
def test_errors_under_bounds_small_network(spec):
    import networks

    net = networks.load("mlp-relu")
    _, _, x, _ = networks.digits_dataset()
    _, layers = run_batch(net, Uniform(build_model(spec)), x[:8])
    for rec in layers:
        assert rec.holds.all()
        assert (rec.bound >= 0).all()
        assert np.isfinite(rec.exact).all()


def test_adaptive_errors_under_bounds_and_levels():
    import networks

    net = networks.load("mlp-relu")
    _, _, x, _ = networks.digits_dataset()
    lo, hi = build_model(FP8), build_model(FP16)
    _, layers = run_batch(net, Adaptive(lo, hi, tau=3.0, guard=True), x[:8])
    for rec in layers:
        assert rec.holds.all()
        # recomputed components carry the high model's (finite) bound
        assert np.isfinite(rec.bound[rec.level == 1]).all()
