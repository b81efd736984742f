"""The control kinds are registered once (``CONTROLS`` in :mod:`accsim.run.strategies`)
and every network kind picks its controls' components through that registration: the
shipped networks (an MLP, :func:`accsim.run.experiment.run_plan`), the layer graphs (a
CNN, :func:`accsim.graph.experiment.run_graph_plan`) and MiniLM's projections
(:class:`accsim.transformer.minilm_graph.GraphEncoder`)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import networks
from accsim.accumulators.factory import build_model
from accsim.graph import Assignment, Conv2d, Dense, Flatten, Graph, MaxPool2d
from accsim.graph.experiment import GraphPlan, run_graph_plan
from accsim.run import strategies
from accsim.run.experiment import Plan, make_controls, run_plan
from accsim.run.strategies import (
    CONTROL_KINDS,
    CONTROLS,
    Adaptive,
    ControlKind,
    Uniform,
    register_control,
)

ROOT = Path(__file__).resolve().parents[1]
FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def test_each_control_kind_is_registered_exactly_once():
    assert CONTROL_KINDS == tuple(CONTROLS) == ("random", "random-active", "oracle")
    assert all(isinstance(k, ControlKind) and CONTROLS[n] is k and k.name == n
               for n, k in CONTROLS.items())
    with pytest.raises(ValueError, match="'random' is already registered"):
        register_control(ControlKind("random", CONTROLS["random"].pick))
    # one registration call per kind in the whole package, all in one module
    calls = []
    for path in sorted((ROOT / "accsim").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == \
                    "register_control":
                kind = node.args[0]
                calls.append((path.relative_to(ROOT).as_posix(), kind.args[0].value))
    assert sorted(calls) == sorted(("accsim/run/strategies.py", k) for k in CONTROL_KINDS)


@pytest.fixture
def picks(monkeypatch):
    """Count, per kind, the components each registered pick chose (the registry's
    entries wrapped; the bits are those of the registered functions)."""
    chosen = dict.fromkeys(CONTROL_KINDS, 0)

    def wrap(kind):
        def pick(rng, k, size, active, err):
            out = kind.pick(rng, k, size, active, err)
            assert len(out) == k == len(np.unique(out)) and np.all(out < size)
            chosen[kind.name] += k
            return out
        return dataclasses.replace(kind, pick=pick)

    for name, kind in list(CONTROLS.items()):
        monkeypatch.setitem(strategies.CONTROLS, name, wrap(kind))
    return chosen


def test_mlp_controls_pick_through_the_registry(picks):
    rng = np.random.default_rng(0)
    to8 = networks.to_e4m3
    layers = [networks.Layer(kind="dense", W=to8(rng.standard_normal((40, 24)) * 0.5),
                             b=to8(rng.standard_normal(40) * 0.1), activation="relu"),
              networks.Layer(kind="dense", W=to8(rng.standard_normal((6, 40)) * 0.5),
                             b=to8(rng.standard_normal(6) * 0.1), activation="identity")]
    net = networks.Network(name="tiny", layers=layers)
    x = rng.uniform(0, 1, (30, 24)).astype(np.float32)
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    a = Adaptive(lo, hi, 0.05, label="a")
    plan = Plan(net, x, np.zeros(30, np.int64), [a, *make_controls(a, CONTROL_KINDS)],
                batch=10, seed=3, bootstrap=50)
    acc, _ = run_plan(plan, workers=1)
    n = acc["a"].cost.recomputed.sum()
    assert n > 0
    # each control recomputed exactly the adaptive row's count, all picked by the registry
    assert picks == dict.fromkeys(CONTROL_KINDS, n)
    for k in CONTROL_KINDS:
        assert acc[f"{k}@a"].cost.recomputed.sum() == n


def test_cnn_controls_pick_through_the_registry(picks):
    rng = np.random.default_rng(4)
    w = [networks.to_e4m3(rng.standard_normal(s)).astype(np.float64)
         for s in ((3, 2, 3, 3), (3,), (4, 27), (4,))]
    conv = Conv2d("c1", w[0], w[1], padding=1, activation="relu")
    g = Graph("c", (2, 6, 6), [conv, MaxPool2d("p", 2), Flatten("f"), Dense("d", *w[2:])])
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    rows = [Assignment({"conv": Adaptive(lo, hi, 0.5), "dense": Uniform(lo)}, "a", None,
                       {"conv"})]
    plan = GraphPlan(g, rng.standard_normal((8, 2, 6, 6)), rng.integers(0, 4, 8), rows,
                     controls={"a": (lo, hi, None, {"dense": Uniform(lo)})}, batch=4,
                     seed=5)
    acc, _ = run_graph_plan(plan, workers=1)
    assert acc["a"].cost.recomputed.sum() > 0
    for k in CONTROL_KINDS:
        # round(f * size) per batch, f the adaptive row's fraction: all by the registry
        assert acc[f"{k}@a"].cost.recomputed.sum() == picks[k] > 0, k
        assert plan.assignments[-len(CONTROL_KINDS) + CONTROL_KINDS.index(k)].main \
            .matched_to == "a"


def test_minilm_controls_pick_through_the_registry(picks):
    minilm = pytest.importorskip("networks.minilm")
    try:
        minilm.model_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    from accsim.transformer.minilm_graph import GraphEncoder
    from accsim.transformer.opclass import OpModels
    from accsim.transformer.policies import PROJECTION_CLASSES, LinearPolicy

    w = minilm.load_weights(layers=1)
    ids = minilm.load_tokenizer().encode(["Controls are registered once.",
                                          "Every path uses them."])
    bf16 = build_model({"family": "recursive", "acc_format": "bfloat16", "mode": "rne",
                        "product": "exact"})
    fp32 = build_model({"family": "recursive", "acc_format": "binary32", "mode": "rne",
                        "product": "exact"})
    ops = OpModels(fp32, **dict.fromkeys(PROJECTION_CLASSES, bf16))
    for kind in CONTROL_KINDS:
        enc = GraphEncoder(w, ops, LinearPolicy(kind=kind, high=fp32, tau=100.0))
        enc.encode(ids)
        n = sum(enc.tally.recomputed.get(c, 0) for c in PROJECTION_CLASSES)
        assert n == picks[kind] > 0, kind
