"""The issue-11 experiment machinery: fair cost billing, the rounding-chain constant,
controls at matched fractions, paired statistics, label-free metrics, authors' options.

Small hand-made networks (16 -> 12 -> 4) so the kernels run in well under a second.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from helpers import run_network as run_batch

import networks
from accsim.accumulators.factory import build_model
from accsim.analysis.stats import bootstrap_ci, mcnemar, paired_summary
from accsim.graph.engine import ComputeCache, TaskContext
from accsim.numbers import exact
from accsim.run.experiment import Plan, run_dataset, run_plan
from accsim.run.strategies import (
    Adaptive,
    Control,
    Uniform,
    bound_constant,
    cauchy_schwarz_estimate,
)

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _models():
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    return lo, hi


def _net(seed=0, n=16, m=12, k=4):
    rng = np.random.default_rng(seed)
    to8 = networks.to_e4m3
    W1 = to8(rng.standard_normal((m, n)) * 0.5).astype(np.float64)
    b1 = to8(rng.standard_normal(m) * 0.1).astype(np.float64)
    W2 = to8(rng.standard_normal((k, m)) * 0.5).astype(np.float64)
    b2 = to8(rng.standard_normal(k) * 0.1).astype(np.float64)
    layers = [networks.Layer(kind="dense", W=W1, b=b1, activation="relu"),
              networks.Layer(kind="dense", W=W2, b=b2, activation="identity")]
    return networks.Network(name="tiny", layers=layers)


def _x(seed=1, p=40, n=16):
    return np.random.default_rng(seed).uniform(0, 1, (p, n)).astype(np.float32)


# ----------------------------------------------------------------- cost billing (defect 1)
def test_authors_criterion_pays_no_estimation_pass():
    lo, hi = _models()
    net, x = _net(), _x()
    cache = ComputeCache()
    s = Adaptive(lo, hi, 0.3, criterion="authors", label="a")
    _, layers = run_batch(net, s, x, cache=cache)
    assert all(r.cost.estimate_bits == 0.0 for r in layers)
    assert any(k[2] == "v" for k in cache if isinstance(k, tuple) and len(k) == 6)
    assert not any(k[2] == "abs" for k in cache if isinstance(k, tuple) and len(k) == 6)
    # the predicted criterion uses |W||x| and pays one low inner product per component
    p = Adaptive(lo, hi, 3.0, criterion="predicted", label="p")
    _, layers = run_batch(net, p, x)
    for r, lay in zip(layers, net.layers, strict=True):
        comps = r.computed.size
        assert r.cost.estimate_bits == comps * lo.cost_bits(lay.W.shape[1] + 1)
    # the authors' criterion with the guard needs the estimate again
    g = Adaptive(lo, hi, 0.3, criterion="authors", guard=True, label="g")
    _, layers = run_batch(net, g, x)
    assert layers[0].cost.estimate_bits > 0


def test_cauchy_schwarz_estimate_is_an_upper_bound_and_billed_O_n():
    lo, hi = _models()
    net, x = _net(), _x()
    lay = net.layers[0]
    X = np.ascontiguousarray(x.T.astype(np.float64))
    C = np.ascontiguousarray(np.broadcast_to(lay.b[:, None], (lay.W.shape[0], X.shape[1])))
    ctx = TaskContext(0, lay, X, C, 0)
    S_cs = cauchy_schwarz_estimate(ctx)
    S = exact.matmul(np.abs(lay.W), np.abs(X), np.abs(C))
    assert np.all(S_cs >= S)
    # exact check on a few components with Fractions: ||w|| ||x|| >= sum |w x|
    for i, p in ((0, 0), (3, 7), (11, 39)):
        w = [Fraction(float(v)) for v in lay.W[i]]
        xx = [Fraction(float(v)) for v in X[:, p]]
        lhs = sum(abs(a * b) for a, b in zip(w, xx, strict=True)) + abs(Fraction(lay.b[i]))
        assert Fraction(float(S_cs[i, p])) >= lhs
    s = Adaptive(lo, hi, 3.0, estimate="cs", label="cs")
    _, layers = run_batch(net, s, x)
    n, P = 16, x.shape[0]
    comps = layers[0].computed.size
    assert layers[0].cost.estimate_bits == P * hi.cost_bits(n) + comps * hi.cost_bits(2)
    assert layers[0].cost.estimate_bits < comps * lo.cost_bits(n + 1)


# ------------------------------------------------------------ constant c(n) u (defect 2)
def _gamma_prob(N, u, lam=1):
    with mpmath.workdps(40):
        return float(mpmath.exp(lam * mpmath.sqrt(N) * u + N * u * u / (1 - u)) - 1)


@pytest.mark.parametrize("n", [128, 784])
def test_bound_constant_is_the_rounding_chain(n):
    lo, hi = _models()
    nb = -(-n // 8)
    # blocked e4m3: every term sees <= 8 inner and nb outer roundings of u = 2^-4
    want = _gamma_prob(8 + nb, 2.0**-4)
    got = bound_constant(lo, n, "probabilistic")
    assert want <= got <= want * (1 + 1e-9)
    # recursive binary16, deterministic: (1 + 2^-11)^n - 1 (bias exact in binary16)
    want16 = float((1 + Fraction(1, 2**11)) ** n - 1)
    got16 = bound_constant(hi, n, "deterministic")
    assert want16 <= got16 <= want16 * (1 + 1e-9)


def test_bound_constant_no_longer_includes_the_underflow_term():
    lo, _ = _models()
    # the subnormal probe of the earlier version gave 5.33 at n = 784 and 2.22 at n = 128
    assert bound_constant(lo, 784, "probabilistic") < 2.0
    assert bound_constant(lo, 128, "probabilistic") < 0.51


# -------------------------------------------------------------------- authors' options
def test_zero_rule_and_output_kappa():
    lo, hi = _models()

    class Ctx:
        n, index, last, activation, cache = 4, 0, False, "relu", None

        def kappa_phi(self, z):
            return networks.kappa("relu", z)

    v = np.array([[0.0, 2.0, -1.0, np.inf]])
    keep = Adaptive(lo, hi, 1.0, criterion="authors", zero="keep", label="k")
    rec = Adaptive(lo, hi, 1.0, criterion="authors", zero="recompute", label="r")
    mk, _ = keep.select(Ctx(), v)
    mr, _ = rec.select(Ctx(), v)
    assert mk.tolist() == [[False, False, False, True]]
    assert mr.tolist() == [[True, False, False, True]]
    ctx = Ctx()
    ctx.last, ctx.activation = True, "identity"
    ctx.kappa_phi = lambda z: networks.kappa("identity", z)
    v2 = np.array([[-0.5, 0.5]])
    ident = Adaptive(lo, hi, 1.0, criterion="authors", label="i")
    relu = Adaptive(lo, hi, 1.0, criterion="authors", output_kappa="relu", label="o")
    # identity kappa: 1/|v| = 2 > 1 for both; ReLU kappa is 0 on the negative one
    assert ident.select(ctx, v2)[0].tolist() == [[True, True]]
    assert relu.select(ctx, v2)[0].tolist() == [[False, True]]


# ------------------------------------------------------------------------------ controls
def _plan(strategies, n_img=60):
    net = _net()
    x = _x(p=n_img)
    y = np.argmax(net.forward(x), axis=1)
    y[::7] = (y[::7] + 1) % 4  # some wrong labels so accuracies differ from 1
    return Plan(net, x, y, strategies, batch=25, seed=3, bootstrap=500)


def test_controls_match_the_recomputed_count_per_layer():
    lo, hi = _models()
    a = Adaptive(lo, hi, 0.5, criterion="authors", label="a")
    r = Control(lo, hi, "random", "a", label="random@a")
    o = Control(lo, hi, "oracle", "a", label="oracle@a")
    plan = _plan([Uniform(hi, label="uniform-fp16"), a, r, o])
    acc, _ = run_plan(plan)
    for lab in ("random@a", "oracle@a"):
        assert np.array_equal(acc[lab].cost.recomputed, acc["a"].cost.recomputed)
        assert acc[lab].cost.estimate_bits.sum() == 0
    assert acc["a"].cost.recomputed.sum() > 0
    ds = run_dataset(plan, acc)
    assert ds["strategy_kind"].values.tolist() == ["uniform", "adaptive", "random", "oracle"]
    assert ds["matched_to"].values.tolist() == ["", "", "a", "a"]
    # the same seed gives the same random choice
    acc2, _ = run_plan(plan)
    assert np.array_equal(acc2["random@a"].per_image()["pred"],
                          acc["random@a"].per_image()["pred"])


def test_oracle_takes_the_largest_errors():
    lo, hi = _models()
    net, x = _net(), _x()
    lay = net.layers[0]
    X = np.ascontiguousarray(x.T.astype(np.float64))
    C = np.ascontiguousarray(np.broadcast_to(lay.b[:, None], (lay.W.shape[0], X.shape[1])))
    ctx = TaskContext(0, lay, X, C, 5)
    v = ctx.compute(lo)
    o = Control(lo, hi, "oracle", "a", label="o")
    mask = o.select(ctx, v, 30)
    err = np.abs(v - ctx.exact())
    assert mask.sum() == 30 and err[mask].min() >= err[~mask].max()
    rnd = Control(lo, hi, "random", "a", label="r").select(ctx, v, 30)
    assert rnd.sum() == 30
    with pytest.raises(ValueError, match="unknown control"):
        Control(lo, hi, "best", "a")


def test_control_without_its_strategy_is_an_error():
    lo, hi = _models()
    plan = _plan([Control(lo, hi, "random", "missing", label="r")], n_img=5)
    with pytest.raises(RuntimeError, match="has not run"):
        run_plan(plan)


# ------------------------------------------------------------------ statistics, metrics
def test_mcnemar_against_the_binomial_sum():
    a = np.array([1] * 30 + [0] * 5 + [1] * 12 + [0] * 3, bool)
    b = np.array([1] * 30 + [0] * 5 + [0] * 12 + [1] * 3, bool)
    bb, cc, p = mcnemar(a, b)
    assert (bb, cc) == (12, 3)
    n = 15
    tail = sum(Fraction(math.comb(n, k), 2**n) for k in range(0, 4))
    assert p == pytest.approx(float(2 * tail), rel=1e-12)
    assert mcnemar(a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        mcnemar(a, b[:-1])


def test_bootstrap_matches_the_image_level_bootstrap():
    rng = np.random.default_rng(0)
    v = rng.random(400) < 0.9
    m, lo, hi = bootstrap_ci(v, n_boot=20000, seed=1)
    idx = rng.integers(0, v.size, (20000, v.size))
    brute = v[idx].mean(axis=1)
    blo, bhi = np.quantile(brute, [0.025, 0.975])
    assert m == v.mean() and lo <= m <= hi
    assert abs(lo - blo) <= 0.005 and abs(hi - bhi) <= 0.005
    assert bootstrap_ci(v, seed=4) == bootstrap_ci(v, seed=4)
    assert bootstrap_ci(np.ones(50)) == (1.0, 1.0, 1.0)
    s = paired_summary(v, v)
    assert s["delta"] == 0 and s["delta_lo"] == 0 and s["p_mcnemar"] == 1.0


def test_dataset_has_label_free_metrics_paired_stats_and_bound_facts():
    lo, hi = _models()
    a = Adaptive(lo, hi, 3.0, label="adaptive")
    plan = _plan([Uniform(lo, label="uniform-fp8"), Uniform(hi, label="uniform-fp16"), a])
    acc, _ = run_plan(plan)
    ds = run_dataset(plan, acc)
    assert ds.attrs["reference"] == "uniform-fp16"
    ref = list(ds["strategy"].values).index("uniform-fp16")
    assert ds["delta"].values[ref] == 0 and ds["p_mcnemar"].values[ref] == 1.0
    assert ds["correct"].shape == (3, 60) and ds["agree"].dtype == bool
    # the agreement and logit error are those of the exact network's logits
    from accsim.graph.from_network import graph_from_network
    from accsim.graph.runner import exact_graph

    g = graph_from_network(plan.network)
    ex = exact_graph(g, plan.x)[g.ops[-1].name]
    assert np.array_equal(ds["agree"].values[0],
                          acc["uniform-fp8"].per_image()["pred"] == np.argmax(ex, axis=1))
    assert np.all(ds["logit_rel_error"].values >= 0)
    for k in ("base_bit_cost", "estimate_bit_cost", "recompute_bit_cost"):
        assert k in ds
    tot = ds["base_bit_cost"] + ds["estimate_bit_cost"] + ds["recompute_bit_cost"]
    assert np.allclose(tot.values, ds["bit_cost"].values, rtol=1e-12)
    vac = ds["vacuous_bound_fraction_layer"].values
    assert vac.shape == (3, 2) and np.all((vac >= 0) & (vac <= 1))
    assert "violations_prob_layer" in ds and np.all(ds["prob_lambda"].values > 5)
