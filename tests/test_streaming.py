"""Memory of a network run is bounded by one batch and one strategy (issue 19, item 3):
each strategy's per-component results are reduced to the tally's statistics as soon as
it has run on a batch (:meth:`accsim.graph.tally.Tally.reduce`, merged in batch order),
and the batch's cache drops passes beyond its byte budget. Neither changes a bit: the
same datasets with a zero budget, and with another batch size where the results are
promised not to depend on the batching."""

from __future__ import annotations

import weakref

import numpy as np
from helpers import tiny_cnn
from test_parallel import _dense_plan, _same_bits

from accsim.accumulators.factory import build_model
from accsim.graph import Assignment, engine, runner
from accsim.graph.experiment import GraphPlan, run_graph_plan
from accsim.graph.tally import Tally
from accsim.run.experiment import run_dataset, run_plan
from accsim.run.strategies import Adaptive, Uniform

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}
FP32 = {"family": "recursive", "acc_format": "binary32", "mode": "rne", "product": "exact"}


def _graph_plan(batch, controls=True, n=23):
    rng = np.random.default_rng(4)
    g = tiny_cnn(rng)
    lo, hi, f32 = (build_model(dict(m)) for m in (FP8, FP16, FP32))
    assignments = [Assignment({"default": Uniform(hi)}, "fp16"),
                   Assignment({"default": Uniform(lo)}, "fp8-scaled", "float8_e4m3fn"),
                   Assignment({"conv": Adaptive(lo, hi, 0.5), "dense": Uniform(f32)}, "a",
                              None, {"conv"})]
    x = rng.standard_normal((n, 2, 6, 6))
    y = rng.integers(0, 4, n)
    ctrl = {"a": (lo, hi, None, {"dense": Uniform(f32)})} if controls else {}
    return GraphPlan(g, x, y, assignments, controls=ctrl, batch=batch, seed=5,
                     record_samples=6)


def test_cache_budget_changes_no_bit(monkeypatch):
    """Dropping every droppable pass (budget 0) recomputes them: same datasets, for a
    graph run with controls and for a network run with the extras."""
    p1 = _graph_plan(4)
    acc1, _ = run_graph_plan(p1, workers=1)
    plan = _dense_plan()
    net1, _ = run_plan(plan, workers=1)
    sizes = []
    remember = engine.ComputeCache.remember

    def spy(self, key, value):
        out = remember(self, key, value)
        sizes.append(self.droppable_bytes)
        return out

    monkeypatch.setattr(engine, "CACHE_BYTES", 0)
    monkeypatch.setattr(engine.ComputeCache, "remember", spy)
    p0 = _graph_plan(4)
    acc0, _ = run_graph_plan(p0, workers=1)
    net0, _ = run_plan(plan, workers=1)
    assert sizes and max(sizes) == 0  # nothing droppable was kept
    _same_bits(run_dataset(p1, acc1), run_dataset(p0, acc0))
    _same_bits(run_dataset(plan, net1), run_dataset(plan, net0))


def test_batch_size_changes_no_bit_where_promised():
    """Deterministic models, per-image input scales and a per-component threshold: the
    results do not depend on the batching (docs/graph.md), except the sums over
    batches of floating-point numbers (means), which are left out."""
    pa, pb = _graph_plan(4, controls=False), _graph_plan(7, controls=False)
    da = run_dataset(pa, run_graph_plan(pa, workers=1)[0])
    db = run_dataset(pb, run_graph_plan(pb, workers=1)[0])
    sums = {"net_rel_error_mean_layer"}
    compared = [k for k in da.data_vars if k not in sums]
    assert {"computed", "exact", "bound", "level", "input_scale", "logit_rel_error",
            "max_error_bound_ratio_layer", "violations_layer",
            "recomputed_fraction_layer"} <= set(compared)
    _same_bits(da[compared], db[compared])
    np.testing.assert_allclose(da["net_rel_error_mean_layer"], db["net_rel_error_mean_layer"],
                               rtol=1e-12)


def test_batch_state_released_before_the_next_strategy(monkeypatch):
    """No strategy's per-op results outlive its reduction, and no batch's cache or
    results outlive the batch: at every merge (one worker) nothing of the run's
    per-component state is alive, and while a strategy runs only its own op results
    are (so memory does not grow with the strategies, the batches or the inputs)."""
    live_results: weakref.WeakSet = weakref.WeakSet()
    caches: list = []  # weak references (a cache is a dict: not hashable)
    most = [0]
    init_r, init_c = runner.OpResult.__init__, engine.ComputeCache.__init__

    def track_result(self, *a, **kw):
        init_r(self, *a, **kw)
        most[0] = max(most[0], len(live_results))
        live_results.add(self)

    def track_cache(self, *a, **kw):
        init_c(self, *a, **kw)
        caches.append(weakref.ref(self))

    at_merge = []
    merge = Tally.merge

    def checked_merge(self, st):  # no gc.collect: reference counts alone free them
        at_merge.append((len(live_results), sum(r() is not None for r in caches)))
        merge(self, st)

    monkeypatch.setattr(runner.OpResult, "__init__", track_result)
    monkeypatch.setattr(engine.ComputeCache, "__init__", track_cache)
    monkeypatch.setattr(Tally, "merge", checked_merge)
    plan = _graph_plan(4, n=40)
    run_graph_plan(plan, workers=1)
    n_rows, n_batches = len(plan.assignments), 10
    assert len(at_merge) == n_rows * n_batches
    assert set(at_merge) == {(0, 0)}
    # while a strategy runs: the op results of its own earlier ops only (2 linear ops)
    assert most[0] <= len(plan.graph.linear_ops) - 1
    dense = _dense_plan()
    at_merge.clear()
    run_plan(dense, workers=1)
    assert at_merge and set(at_merge) == {(0, 0)}
