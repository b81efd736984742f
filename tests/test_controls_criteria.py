"""Controls (random, random-active, oracle), the absolute criterion and budgeted selection,
on the MLP executor and on the graph path, each against a slow independent
implementation: per-component Python loops over ``math`` floats, a sort by Python
tuples, exact ``fractions`` for the estimate's bound test."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import networks
from accsim.accumulators.factory import build_model
from accsim.graph.engine import TaskContext
from accsim.graph.graph import Graph
from accsim.graph.ops import Dense
from accsim.graph.runner import Assignment, run_graph
from accsim.run.experiment import Plan, make_controls, make_strategy, run_dataset, run_plan
from accsim.run.strategies import (
    CONTROL_KINDS,
    CRITERIA,
    Adaptive,
    Control,
    Uniform,
    active_mask,
    resolve_constant,
    top_fraction,
)

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _models():
    return build_model(dict(FP8)), build_model(dict(FP16))


def _net(seed=0, n=24, m=40, k=6, act="relu"):
    rng = np.random.default_rng(seed)
    to8 = networks.to_e4m3
    W1 = to8(rng.standard_normal((m, n)) * 0.5).astype(np.float64)
    b1 = to8(rng.standard_normal(m) * 0.1).astype(np.float64)
    W2 = to8(rng.standard_normal((k, m)) * 0.5).astype(np.float64)
    b2 = to8(rng.standard_normal(k) * 0.1).astype(np.float64)
    layers = [networks.Layer(kind="dense", W=W1, b=b1, activation=act),
              networks.Layer(kind="dense", W=W2, b=b2, activation="identity")]
    return networks.Network(name="tiny", layers=layers)


def _ctx(act="relu", p=30, seed=1):
    net = _net(act=act)
    x = np.random.default_rng(seed).uniform(-0.2, 1, (p, 24)).astype(np.float32)
    lay = net.layers[0]
    X = np.ascontiguousarray(x.T.astype(np.float64))
    C = np.ascontiguousarray(np.broadcast_to(lay.b[:, None], (lay.W.shape[0], p)))
    return TaskContext(0, lay, X, C, 5)


# ------------------------------------------------------------- slow reference scores
def _slow_phi_prime(z, act):
    if act == "relu":
        return 1.0 if z > 0 else 0.0
    if act == "identity":
        return 1.0
    if act == "tanh":
        return 1.0 - math.tanh(z) ** 2
    if act == "sigmoid":
        s = 1.0 / (1.0 + math.exp(-z))
        return s * (1 - s)
    if act == "gelu":
        return abs(0.5 * (1 + math.erf(z / math.sqrt(2)))
                   + z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi))
    raise AssertionError(act)


def _slow_kappa_phi(z, act):
    if act == "relu":
        return 1.0 if z > 0 else 0.0
    if act == "identity":
        return 1.0
    if act == "tanh":  # 0/0 taken as 0 (accsim.analysis.kappa convention)
        return 0.0 if z == 0 else abs(2 * z / math.sinh(2 * z))
    raise AssertionError(act)


def _slow_scores(criterion, v, S, c, act):
    """Per component, by plain Python floats (higher: recompute first)."""
    out = {}
    for (i, p), z in np.ndenumerate(v):
        z, s = float(z), float(S[i, p])
        if not math.isfinite(z):
            out[i, p] = math.inf
        elif criterion == "absolute":
            out[i, p] = c * s * _slow_phi_prime(z, act)
        elif criterion == "predicted":
            k = _slow_kappa_phi(z, act)
            out[i, p] = 0.0 if k == 0 else (math.inf if z == 0 else c * k * (s / abs(z)))
        else:  # authors, zero = "keep"
            k = _slow_kappa_phi(z, act)
            out[i, p] = math.nan if z == 0 else k / abs(z)
    return out


def _slow_top(scores, frac):
    """The round(frac * size) best by a sort of Python tuples."""
    k = round(frac * len(scores))
    keyed = sorted(scores, key=lambda ip: (math.isnan(scores[ip]),
                                           -scores[ip] if not math.isnan(scores[ip]) else 0,
                                           ip[0] * 10**6 + ip[1]))
    return set(keyed[:k])


def test_top_fraction_against_a_python_sort():
    rng = np.random.default_rng(3)
    for _ in range(20):
        s = rng.choice([0.0, 1.0, 2.5, np.inf, np.nan, 7.0], size=(5, 7))
        frac = float(rng.uniform(0, 1))
        m = top_fraction(s, frac)
        ref = _slow_top({ip: float(z) for ip, z in np.ndenumerate(s)}, frac)
        assert {ip for ip, b in np.ndenumerate(m) if b} == ref


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_budgeted_selection_is_the_top_fraction_of_the_slow_score(criterion, act):
    lo, hi = _models()
    ctx = _ctx(act)
    v = ctx.compute(lo)
    S = ctx.compute_abs(lo)
    c, _ = resolve_constant(lo, ctx.n, "auto")
    a = Adaptive(lo, hi, math.nan, criterion=criterion, budget=0.2, label="b")
    mask, _ = a.select(ctx, v)
    slow = _slow_scores(criterion, v, S, c, act)
    ref = _slow_top(slow, 0.2)
    got = {ip for ip, b in np.ndenumerate(mask) if b}
    assert mask.sum() == round(0.2 * v.size) == len(ref)
    # the derivative / condition-number formulas may differ in the last bit from the
    # slow ones: a disagreement is allowed only between scores tied to 1e-12 at the cut
    cut = min(slow[ip] for ip in ref)
    for ip in got ^ ref:
        assert math.isclose(slow[ip], cut, rel_tol=1e-12), (ip, slow[ip], cut)
    if act == "relu":
        assert got == ref


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_absolute_criterion_threshold_against_slow_loop(act):
    lo, hi = _models()
    ctx = _ctx(act)
    v, S = ctx.compute(lo), ctx.compute_abs(lo)
    c, _ = resolve_constant(lo, ctx.n, "auto")
    sc = _slow_scores("absolute", v, S, c, act)
    tau = float(np.median([x for x in sc.values() if x > 0]))
    mask, _ = Adaptive(lo, hi, tau, criterion="absolute").select(ctx, v)
    # the derivative formulas differ in the last bits: compare away from the threshold
    for ip, b in np.ndenumerate(mask):
        if abs(sc[ip] - tau) > 1e-12 * tau:
            assert b == (sc[ip] >= tau), ip
    assert 0 < mask.sum() < mask.size


def test_active_mask_against_exact_slow_test():
    lo8, lo16 = _models()
    ctx = _ctx("relu")
    for lo in (lo16, lo8):  # c = 0.012 (band used), c = 0.948 (band used, wide)
        v, S = ctx.compute(lo), ctx.compute_abs(lo)
        c, _ = resolve_constant(lo, ctx.n, "auto")
        assert c < 1
        m = active_mask(ctx, lo, v)
        for ip, b in np.ndenumerate(m):
            z = float(v[ip])
            slow = (not math.isfinite(z)) or z > 0 or \
                Fraction(abs(z)) <= Fraction(c) * Fraction(float(S[ip]))
            assert b == slow, ip
        if lo is lo16:
            assert 0 < m.sum() < m.size  # both kinds occur in this layer
    # a vacuous band (c >= 1: e4m3 at n = 128) is dropped: v_hat > 0 only
    net = _net(n=128)
    x = np.random.default_rng(2).uniform(-0.2, 1, (30, 128)).astype(np.float32)
    lay = net.layers[0]
    X = np.ascontiguousarray(x.T.astype(np.float64))
    C = np.ascontiguousarray(np.broadcast_to(lay.b[:, None], (lay.W.shape[0], 30)))
    ctx128 = TaskContext(0, lay, X, C, 5)
    assert resolve_constant(lo8, 128, "auto")[0] >= 1
    v = ctx128.compute(lo8)
    m = active_mask(ctx128, lo8, v)
    assert np.array_equal(m, np.array([[not (math.isfinite(z) and z <= 0) for z in row]
                                       for row in v.tolist()]))
    assert 0 < m.sum() < m.size
    # a flat-nowhere activation: everything is active
    ctx_t = _ctx("tanh")
    assert active_mask(ctx_t, lo8, ctx_t.compute(lo8)).all()


def test_random_active_draws_among_active_then_the_rest():
    hi, lo = _models()  # fp16 low: a narrow band, so some components are inactive
    ctx = _ctx("relu")
    v = ctx.compute(lo)
    act = active_mask(ctx, lo, v)
    na = int(act.sum())
    ra = Control(lo, hi, "random-active", "a", label="ra")
    small = ra.select(ctx, v, na // 2)
    assert small.sum() == na // 2 and not (small & ~act).any()
    big = ra.select(ctx, v, na + 5)
    assert big.sum() == na + 5 and (big | ~act).all()
    # uniform among the active: over seeds each active component is drawn about
    # k / na of the time (binomial 5-sigma band)
    hits = np.zeros(v.shape)
    reps = 300
    for s in range(reps):
        hits += Control(lo, hi, "random-active", "a", seed=s).select(ctx, v, na // 2)
    p = (na // 2) / na
    band = 5 * math.sqrt(reps * p * (1 - p))
    assert np.all(np.abs(hits[act] - reps * p) < band) and hits[~act].sum() == 0


def _plan(strategies, n_img=50):
    net = _net()
    x = np.random.default_rng(1).uniform(0, 1, (n_img, 24)).astype(np.float32)
    y = np.argmax(net.forward(x), axis=1)
    y[::5] = (y[::5] + 1) % 6
    return Plan(net, x, y, strategies, batch=20, seed=3, bootstrap=200)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_budgeted_with_three_controls_on_the_executor(criterion):
    lo, hi = _models()
    a = make_strategy("adaptive", low=lo, high=hi, budget=0.2, criterion=criterion)
    ctrls = make_controls(a, CONTROL_KINDS, seeds=2)
    assert [c.label for c in ctrls] == [
        f"random@{a.label}", f"random@{a.label}#1", f"random-active@{a.label}",
        f"random-active@{a.label}#1", f"oracle@{a.label}"]
    plan = _plan([Uniform(lo, label="u8"), Uniform(hi, label="u16"), a, *ctrls])
    acc, _ = run_plan(plan)
    per_layer = acc[a.label].cost.recomputed
    # 20 % of each layer's components per batch (batches of 20 and 10 images)
    assert per_layer.tolist() == [round(0.2 * 40 * 20) * 2 + round(0.2 * 40 * 10),
                                  round(0.2 * 6 * 20) * 2 + round(0.2 * 6 * 10)]
    for c in ctrls:
        assert np.array_equal(acc[c.label].cost.recomputed, per_layer), c.label
    # random-active pays the estimate on the ReLU layer only; random and oracle never
    ra = acc[f"random-active@{a.label}"].cost
    assert ra.estimate_bits[0] > 0 and ra.estimate_bits[1] == 0
    assert acc[f"random@{a.label}"].cost.estimate_bits.sum() == 0
    ds = run_dataset(plan, acc)
    assert ds["budget"].values[2] == 0.2 and np.isnan(ds["budget"].values[0])
    assert ds["control_seed"].values.tolist() == [-1, -1, -1, 0, 1, 0, 1, 0]
    for k in ("energy_pj", "h100_time_ns", "h100_tile_time_ns"):
        assert np.all(ds[k].values > 0) and ds[k].attrs["units"] in ("pJ", "ns")
        assert ds[k].attrs["long_name"]
    assert "Holm" in ds["cmp_p_wilcoxon_holm"].attrs["long_name"]
    rel = ds["cmp_relation"].values.tolist()
    assert set(rel) == {"oracle", "random", "random-active", "uniform"}
    assert rel.count("random") == 1  # the two seeds pooled into one comparison
    assert ds.attrs["comparison_family_size"] == 3 * len(rel)


def test_budget_and_tau_are_exclusive_and_checked():
    lo, hi = _models()
    ctx = _ctx()
    zero = Adaptive(lo, hi, math.nan, criterion="predicted", budget=0.0)
    assert not zero.uses_estimate and not zero.select(ctx, ctx.compute(lo))[0].any()
    full = Adaptive(lo, hi, math.nan, criterion="absolute", budget=1.0)
    assert full.select(ctx, ctx.compute(lo))[0].all()
    with pytest.raises(ValueError, match="either tau or budget"):
        make_strategy("adaptive", low=lo, high=hi, budget=0.2, tau=1.0)
    with pytest.raises(ValueError, match="budget must be a fraction"):
        Adaptive(lo, hi, math.nan, budget=1.5)
    with pytest.raises(ValueError, match="guard does not apply"):
        Adaptive(lo, hi, math.nan, budget=0.2, guard=True)
    from accsim.run.config import parse_config

    base = {"run": {"network": "mlp-relu"}, "strategies": [
        {"kind": "adaptive", "low": "fp8-e4m3-blocked8", "high": "fp16-recursive-rne"}]}
    with pytest.raises(ValueError, match="exactly one of 'tau' and 'budget'"):
        parse_config(base)
    base["strategies"][0]["budget"] = 2.0
    with pytest.raises(ValueError, match="budget must be a fraction"):
        parse_config(base)
    base["strategies"][0].update(budget=0.2, controls=["random-active", "bogus"])
    with pytest.raises(ValueError, match="controls"):
        parse_config(base)


# ----------------------------------------------------------------------- graph path
def _e4m3(rng, shape):
    return networks.to_e4m3(rng.standard_normal(shape) * 0.5).astype(np.float64)


def test_graph_controls_random_active_and_budget():
    rng = np.random.default_rng(7)
    g = Graph("d", (64,), [Dense("fc", _e4m3(rng, (32, 64)), _e4m3(rng, 32) * 0.1,
                                 activation="relu")])
    x = rng.standard_normal((10, 64))
    lo, hi = _models()
    a = make_strategy("adaptive", low=lo, high=hi, budget=0.2, criterion="absolute")
    _, (ra,) = run_graph(g, Assignment({"dense": a}, "a"), x)
    assert int((ra.level == 1).sum()) == 64
    for kind in CONTROL_KINDS:
        c = Control(lo, hi, kind, fractions={0: 0.2})
        _, (r,) = run_graph(g, Assignment({"dense": c}, kind), x)
        assert int((r.level == 1).sum()) == 64, kind
    # random-active draws only active components: recompute them independently
    ra = Control(lo, hi, "random-active", fractions={0: 0.2})
    _, (r,) = run_graph(g, Assignment({"dense": ra}, "ra"), x)
    _, (u,) = run_graph(g, Assignment({"dense": Uniform(lo)}, "u"), x)
    W, b = g.ops[0].weight, g.ops[0].bias
    X = np.asarray(x, np.float32).astype(np.float64)
    c, _ = resolve_constant(lo, 64, "auto")
    S = lo.matmul(np.abs(W), np.abs(X.T), np.abs(np.broadcast_to(b[:, None], (32, 10))))
    sel = r.level == 1  # (batch, components)
    for (p, i), s in np.ndenumerate(sel):
        if s:
            z = float(u.computed[p, i])
            assert z > 0 or abs(z) <= c * float(S[i, p]) or not math.isfinite(z)
