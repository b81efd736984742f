"""The design space through ``accsim sweep``: adaptive cells with their random / oracle
controls (strategy_kind, matched_to), every cost column, paired per-image results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accsim.batch import load_config, run_sweep
from accsim.run.experiment import evaluate, pack_bits, unpack_bits

ROOT = Path(__file__).resolve().parents[1]
COSTS = ("recomputed_fraction", "bit_cost", "base_bit_cost", "estimate_bit_cost",
         "recompute_bit_cost", "energy_pj", "h100_time_ns", "h100_tile_time_ns")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    sw = load_config(ROOT / "configs/design_space_smoke.toml")
    store = tmp_path_factory.mktemp("ds") / "s.zarr"
    res = run_sweep(sw, store, progress=False)
    return sw, store, res


def test_full_design_space_config_expands():
    sw = load_config(ROOT / "configs/design_space_mnist.toml")
    kinds = {c.coords["strategy_kind"] for c in sw.cells}
    assert kinds == {"uniform", "adaptive", "random", "oracle"}
    # a control cell has its adaptive cell's seed and parameters (it reruns it)
    by = {}
    for c in sw.cells:
        k = tuple(c.coords[x] for x in ("network", "low", "high", "tau", "criterion",
                                         "estimate"))
        by.setdefault(k, {})[c.coords["strategy_kind"]] = c
    pairs = [d for d in by.values() if "random" in d]
    assert pairs and all(d["random"].kwargs["seed"] == d["adaptive"].kwargs["seed"]
                         for d in pairs)
    # every cell of one network sees the same images (seed_keys)
    seeds = {(c.coords["network"], c.kwargs["seed"]) for c in sw.cells}
    assert len(seeds) == len({c.coords["network"] for c in sw.cells})


def test_sweep_stores_controls_and_every_cost_column(smoke):
    sw, store, res = smoke
    assert not res.failures
    ds = res.dataset
    for k in COSTS + ("agreement", "logit_rel_error_median", "correct_bits", "matched_to"):
        assert k in ds, k
    kind = ds["strategy_kind"].values
    assert set(kind) == {"uniform", "adaptive", "random", "oracle"}
    for i in np.flatnonzero((kind == "random") | (kind == "oracle")):
        same = ((ds["tau"].values == ds["tau"].values[i]) & (kind == "adaptive")
                & (ds["estimate"].values == ds["estimate"].values[i]))
        (j,) = np.flatnonzero(same)
        assert ds["matched_to"].values[i] == ds["label"].values[j]
        # matched fraction in every layer; the control pays no estimation pass
        for li in range(3):
            v = f"recomputed_fraction_layer{li}"
            assert ds[v].values[i] == ds[v].values[j]
        assert ds["estimate_bit_cost"].values[i] == 0.0
        assert ds["estimate_bit_cost"].values[j] > 0.0
        assert ds["bit_cost"].values[i] == pytest.approx(
            ds["bit_cost"].values[j] - ds["estimate_bit_cost"].values[j], rel=1e-12)
    # parts add up to the total for every cell
    tot = ds["base_bit_cost"] + ds["estimate_bit_cost"] + ds["recompute_bit_cost"]
    np.testing.assert_allclose(tot.values, ds["bit_cost"].values, rtol=1e-12)
    # the Cauchy-Schwarz estimate is billed less than the low pass
    cs = np.flatnonzero(ds["estimate"].values == "cs")
    low = np.flatnonzero((ds["estimate"].values == "low") & (kind == "adaptive")
                         & (ds["tau"].values == ds["tau"].values[cs[0]]))
    assert ds["estimate_bit_cost"].values[cs[0]] < ds["estimate_bit_cost"].values[low[0]]
    # per-image results decode to the accuracy
    n = int(ds["n_samples"].values[0])
    for i in range(ds.sizes["cell"]):
        c = unpack_bits(str(ds["correct_bits"].values[i]), n)
        assert c.mean() == ds["accuracy"].values[i]


def test_sweep_resumes(smoke):
    sw, store, _ = smoke
    again = run_sweep(sw, store, progress=False)
    assert again.ran == 0 and again.skipped == len(sw.cells)


def test_control_cell_equals_run_config_control():
    """A control cell gives the same bits as the control of an `accsim run` plan."""
    e4 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
          "outer_format": "float8_e4m3", "mode": "rne"}
    f16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne",
           "product": "exact"}
    from accsim.run.config import parse_config
    from accsim.run.experiment import prepare, run_plan

    cfg = parse_config({"run": {"network": "mlp-relu", "samples": 30, "seed": 5,
                                "batch": 256, "record_samples": 0},
                        "models": {"lo": e4, "hi": f16},
                        "strategies": [{"kind": "adaptive", "low": "lo", "high": "hi",
                                        "tau": 3.0, "controls": ["random", "oracle"]}]})
    plan = prepare(cfg)
    acc, _ = run_plan(plan)
    for c in ("random", "oracle"):
        cell = evaluate("mlp-relu", "adaptive", e4, f16, tau=3.0, samples=30, seed=5,
                        control=c)
        ref = acc[f"{c}@adaptive-tau=3"]
        assert cell["correct_bits"] == pack_bits(ref.per_image()["correct"])
        assert cell["bit_cost"] == ref.summary()["bit_cost"]
        assert cell["strategy_kind"] == c and cell["matched_to"] == "adaptive-tau=3"


@pytest.mark.parametrize("kw, msg", [
    ({"strategy": "uniform", "control": "random"}, "applies to adaptive"),
    ({"strategy": "adaptive", "control": "best"}, "unknown control 'best'"),
])
def test_control_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        evaluate("mlp-relu", low="fp16-recursive-rne", high="fp16-recursive-rne", tau=1.0,
                 samples=5, **kw)


def test_control_on_uniform_grid_is_a_config_error(tmp_path):
    from accsim.batch import ConfigError

    p = tmp_path / "c.toml"
    p.write_text('[sweep]\nname = "x"\n[[grid]]\nnetwork = "mlp-relu"\nstrategy = '
                 '"uniform"\nlow = "fp16"\ncontrol = "random"\n')
    with pytest.raises(ConfigError, match="'control' is not used by strategy uniform"):
        load_config(p)


def test_pareto_plots_from_the_store(smoke, tmp_path):
    from typer.testing import CliRunner

    from accsim.cli import app
    from accsim.plots.pareto import COST_COLUMNS, pareto_points

    _, store, res = smoke
    out = tmp_path / "pp"
    r = CliRunner().invoke(app, ["plot", str(store), "--pareto", "--out", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 2 * len(COST_COLUMNS)
    assert "accuracy_vs_estimate_bit_cost.png" in names
    assert (out / "accuracy_vs_bit_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pts = pareto_points(res.dataset.isel(cell=np.flatnonzero(
        res.dataset["status"].values == "ok")))
    kinds = {p["kind"] for p in pts}
    assert kinds == {"uniform", "adaptive", "random", "oracle"}
    for p in pts:  # CI brackets the pooled accuracy
        assert p["accuracy_lo"] <= p["accuracy"] <= p["accuracy_hi"]


def test_pareto_plot_refuses_a_store_without_controls(tmp_path):
    from accsim.plots.pareto import plot_pareto

    with pytest.raises(ValueError, match="not a sweep store"):
        plot_pareto(tmp_path / "nothing.zarr")


def test_pareto_points_pool_the_seeds_of_an_architecture():
    import xarray as xr

    from accsim.plots.pareto import pareto_points
    from accsim.run.experiment import pack_bits

    n = 6
    kinds = ["uniform"] * 2 + ["adaptive"] * 2
    ds = xr.Dataset(
        {"accuracy": ("cell", np.array([0.5, 1.0, 0.5, 0.5])),
         "n_samples": ("cell", np.full(4, n)),
         "correct_bits": ("cell", np.array([pack_bits([1, 1, 1, 0, 0, 0])] + [
             pack_bits([1] * n)] + [pack_bits([1, 0, 1, 0, 1, 0])] * 2, dtype=object)),
         "logit_rel_error_median": ("cell", np.array([0.1, 0.3, 0.2, 0.2])),
         **{c: ("cell", np.array([1.0, 3.0, 2.0, 2.0])) for c in (
             "recomputed_fraction", "bit_cost", "base_bit_cost", "estimate_bit_cost",
             "recompute_bit_cost")}},
        coords={"network": ("cell", ["m-s0", "m-s1", "m-s0", "m-s1"]),
                "model": ("cell", ["lo"] * 4), "high_model": ("cell", ["", "", "hi", "hi"]),
                "strategy_kind": ("cell", kinds),
                "criterion": ("cell", ["predicted"] * 4),
                "estimate": ("cell", ["", "", "low", "low"]),
                "tau": ("cell", [np.nan, np.nan, 3.0, 3.0])})
    pts = pareto_points(ds)
    assert len(pts) == 2  # one uniform point and one adaptive point for arch "m"
    u = [p for p in pts if p["kind"] == "uniform"][0]
    assert u["arch"] == "m" and u["n_seeds"] == 2 and u["n_images"] == 12
    assert u["accuracy"] == 9 / 12 and u["bit_cost"] == 2.0
    assert (u["logit_rel_error_median_lo"], u["logit_rel_error_median_hi"]) == (0.1, 0.3)
