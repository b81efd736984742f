"""Budgeted selection through the sweep (``budget`` in a grid, ``evaluate(budget=...)``),
as the run configs' ``budget``: the top fraction of each layer's components by the
criterion's score, with matched controls."""

from __future__ import annotations

import pytest

from accsim.batch import ConfigError, load_config, run_sweep
from accsim.run.experiment import evaluate

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16"}

BASE = """
[sweep]
name = "b"
samples = 10

[models.fp8]
family = "blocked"
block = 8
inner_format = "float8_e4m3"
outer_format = "float8_e4m3"
mode = "rne"

[models.fp16]
family = "recursive"
acc_format = "binary16"

[[grid]]
network = "mlp-relu"
strategy = "adaptive"
low = "fp8"
high = "fp16"
tau = 3.0

[[grid]]
network = "mlp-relu"
strategy = "adaptive"
low = "fp8"
high = "fp16"
criterion = ["predicted", "absolute"]
budget = [0.1, 0.25]
control = ["none", "random-active"]
"""


def load(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return load_config(p)


def test_budget_axis_expands_into_evaluate_arguments(tmp_path):
    sw = load(tmp_path, BASE)
    tau_cells = [c for c in sw.cells if c.kwargs["tau"] is not None]
    budget_cells = [c for c in sw.cells if "budget" in c.kwargs]
    assert len(tau_cells) == 1 and len(budget_cells) == 2 * 2 * 2
    # a tau cell has no budget argument: its id and seed are those of sweeps written
    # before budget existed
    assert "budget" not in tau_cells[0].kwargs
    assert tau_cells[0].coords["budget"] != tau_cells[0].coords["budget"]  # NaN
    got = {(c.kwargs["criterion"], c.kwargs["budget"], c.kwargs.get("control", "none"))
           for c in budget_cells}
    assert got == {(k, b, ctl) for k in ("predicted", "absolute") for b in (0.1, 0.25)
                   for ctl in ("none", "random-active")}
    for c in budget_cells:
        assert c.kwargs["tau"] is None and c.coords["budget"] == c.kwargs["budget"]
    # a control cell reruns its strategy: same seed
    by = {}
    for c in budget_cells:
        by.setdefault((c.kwargs["criterion"], c.kwargs["budget"]), []).append(c)
    assert all(len({c.kwargs["seed"] for c in v}) == 1 for v in by.values())
    # different budgets are different cells with different seeds
    assert len({c.kwargs["seed"] for c in budget_cells}) == 4


@pytest.mark.parametrize("old, new, key, words", [
    ("criterion = [\"predicted\", \"absolute\"]\n",
     "criterion = [\"predicted\", \"absolute\"]\ntau = 1.0\n", "grid[1].budget",
     "either 'tau' or 'budget'"),
    ("budget = [0.1, 0.25]", "budget = [0.1, 1.5]", "grid[1].budget",
     "fraction in [0, 1]"),
    ("budget = [0.1, 0.25]", "budget = []", "grid[1].budget", "empty"),
    ("control = [\"none\", \"random-active\"]\n",
     "control = [\"none\", \"random-active\"]\nguard = true\n", "grid[1].guard",
     "guard does not apply"),
])
def test_bad_budget_fails_with_location(tmp_path, old, new, key, words):
    assert old in BASE
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, BASE.replace(old, new, 1))
    assert ei.value.key == key, str(ei.value)
    assert words in str(ei.value)


def test_budget_on_uniform_is_refused(tmp_path):
    text = BASE + '\n[[grid]]\nnetwork = "mlp-relu"\nlow = "fp8"\nbudget = 0.2\n'
    with pytest.raises(ConfigError, match="'budget' is not used by strategy uniform"):
        load(tmp_path, text)


def test_evaluate_budget_recomputes_the_fraction_in_every_layer():
    kw = dict(low=FP8, high=FP16, samples=10, seed=1)
    a = evaluate("mlp-relu", "adaptive", budget=0.2, criterion="absolute", **kw)
    # 10 images x (784, 128, 10) outputs: round(0.2 x size) = exactly a fifth per layer
    assert a["label"] == "absolute-budget=0.2" and a["strategy_kind"] == "adaptive"
    assert [a[f"recomputed_fraction_layer{k}"] for k in range(3)] == [0.2, 0.2, 0.2]
    assert a["recomputed_fraction"] == 0.2
    # batch-independent here (one budget per layer and batch: with batch 10 >= samples)
    assert evaluate("mlp-relu", "adaptive", budget=0.2, criterion="absolute", batch=10,
                    **kw) == a
    c = evaluate("mlp-relu", "adaptive", budget=0.2, criterion="absolute",
                 control="random-active", **kw)
    assert c["strategy_kind"] == "random-active" and c["matched_to"] == a["label"]
    assert [c[f"recomputed_fraction_layer{k}"] for k in range(3)] == [0.2, 0.2, 0.2]
    # a different budget selects a different count
    b = evaluate("mlp-relu", "adaptive", budget=0.5, **kw)
    assert b["label"] == "predicted-budget=0.5" and b["recomputed_fraction"] == 0.5


@pytest.mark.parametrize("extra, words", [
    (dict(tau=1.0, budget=0.2), "either tau or budget"),
    (dict(budget=1.2), "fraction in [0, 1]"),
    (dict(budget=0.2, guard=True), "guard does not apply"),
])
def test_evaluate_bad_budget(extra, words):
    with pytest.raises(ValueError) as ei:
        evaluate("mlp-relu", "adaptive", low=FP8, high=FP16, samples=4, **extra)
    assert words in str(ei.value)


def test_evaluate_budget_on_uniform_is_refused():
    with pytest.raises(ValueError, match="budget applies to adaptive strategies"):
        evaluate("mlp-relu", "uniform", low=FP8, budget=0.2, samples=4)


def test_budget_sweep_runs(tmp_path):
    sw = load(tmp_path, BASE)
    res = run_sweep(sw, tmp_path / "s.zarr", progress=False)
    assert res.ok, [f["error"] for f in res.failures]
    ds = res.dataset
    b = ds["budget"].values
    rows = b == b
    assert rows.sum() == 8
    assert (ds["recomputed_fraction"].values[rows] == b[rows]).all()
    assert set(ds["label"].values[rows]) >= {"predicted-budget=0.1", "absolute-budget=0.25",
                                             "random-active@absolute-budget=0.25"}
