"""Plots: zero errors kept, overlapping tau labels merged, sweep replicates averaged."""

from __future__ import annotations

import os

import numpy as np
import pytest

from accsim.run import datasets


def _verify_ds(rel):
    rel = np.asarray(rel, float)  # (n, kappa, sample)
    exact = np.ones_like(rel)
    return datasets.make_dataset(
        {"rel_error": (("n", "kappa", "sample"), rel),
         "exact": (("n", "kappa", "sample"), exact),
         "bound": (("n", "kappa", "sample"), np.full_like(rel, 1e-3))},
        {"n": np.array([16, 64]), "kappa": np.array([1.0, 1e3]), "sample": np.arange(2)},
        attrs={"model": "m", "kind": "deterministic"})


def test_verify_plot_keeps_zero_errors(tmp_path):
    from accsim.plots.verify import curves, save_plot

    rel = np.zeros((2, 2, 2))
    rel[1, 1] = [1e-5, 3e-5]
    c = curves(_verify_ds(rel))
    assert c[1.0]["median"].tolist() == [0.0, 0.0]
    assert c[1000.0]["max"].tolist() == [0.0, 3e-5]
    p = save_plot(_verify_ds(rel), tmp_path / "v.png")
    assert p.stat().st_size > 1000 and os.listdir(tmp_path) == ["v.png"]


def test_tau_labels_merge_overlapping_points():
    from accsim.plots.run import tau_labels

    got = tau_labels(np.array([1.0e6, 1.001e6, 2e6]), np.array([0.9, 0.9, 0.9]),
                     np.array([3.0, 0.3, 30.0]))
    assert [t for _, t in got] == ["0.3, 3", "30"]


def test_sweep_plot_averages_replicates_and_rejects_other_stores(tmp_path):
    import xarray as xr

    from accsim.plots.sweep import plot_store, replicate_groups

    ds = xr.Dataset({"accuracy": ("cell", [0.5, 0.7, 0.9])},
                    coords={"cell": [0, 1, 2], "model": ("cell", ["a", "a", "b"]),
                            "seed": ("cell", [0, 1, 0]), "cell_seed": ("cell", [5, 6, 7])})
    assert [g.tolist() for g in replicate_groups(ds)] == [[0, 1], [2]]
    v = tmp_path / "v.zarr"
    datasets.save(_verify_ds(np.zeros((2, 2, 2))), v)
    with pytest.raises(ValueError, match="not a sweep store"):
        plot_store(v)
