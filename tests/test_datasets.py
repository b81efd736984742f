"""accsim.run.datasets: schema, flat attributes, atomic zarr / netCDF round trips."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from accsim.accumulators.recursive import RecursiveSum
from accsim.run import datasets


def _ds():
    rng = np.random.default_rng(0)
    shape = (2, 3, 4)
    dims = ("n", "kappa", "sample")
    err = rng.random(shape)
    err[0, 0, 0] = np.inf
    holds = rng.random(shape) > 0.3
    return datasets.make_dataset(
        {"abs_error": (dims, err), "bound": (dims, err * 2), "holds": (dims, holds),
         "kappa_v": (dims, rng.random(shape) * 1e6)},
        {"n": [16, 64], "kappa": [1.0, 1e3, 1e6], "sample": np.arange(4)},
        model=RecursiveSum(acc_format="fp16", mode="sr", sr_bits=4), seed=7,
        attrs={"note": "test", "flag": True, "nested": {"a": 1, "b": None},
               "sizes": [1, 2]})


def test_attrs_are_flat_and_describe_the_model():
    ds = _ds()
    a = ds.attrs
    model = json.loads(a["model_descriptions"])[a["model"]]
    assert model["family"] == "recursive" and model["mode"] == "sr"
    assert model["sr_bits"] == 4 and a["seed"] == 7 and a["flag"] == 1
    assert a["nested_b"] == "none" and a["sizes"] == "1,2"
    assert a["accsim_version"] and a["schema_version"] == datasets.SCHEMA_VERSION
    for v in a.values():
        assert isinstance(v, str | int | float) and not isinstance(v, bool)


@pytest.mark.parametrize("name", ["out.zarr", "out.nc"])
def test_round_trip(tmp_path, name):
    ds = _ds()
    p = datasets.save(ds, tmp_path / name)
    back = datasets.load(p)
    xr.testing.assert_identical(back, ds)
    assert back["holds"].dtype == bool
    # overwrite in place; no temporaries left behind
    datasets.save(ds, tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == [name]


def test_explicit_engine_and_errors(tmp_path):
    ds = _ds()
    p = datasets.save(ds, tmp_path / "x.data", engine="netcdf")
    xr.testing.assert_identical(datasets.load(p, engine="netcdf"), ds)
    with pytest.raises(ValueError, match="engine"):
        datasets.save(ds, tmp_path / "y.zarr", engine="parquet")
    with pytest.raises(ValueError, match="does not exist"):
        datasets.save(ds, tmp_path / "missing" / "y.zarr")
    with pytest.raises(ValueError, match="no dataset"):
        datasets.load(tmp_path / "nothing.zarr")
    bad = ds.copy()
    bad["holds"] = bad["holds"].astype(float)
    with pytest.raises(ValueError, match="holds"):
        datasets.validate(bad)
    with pytest.raises(ValueError, match="dimension"):
        datasets.validate(ds.rename({"n": "length"}), strict=True)


@pytest.mark.parametrize("name", ["fail.zarr", "fail.nc"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, name):
    ds = _ds()
    target = tmp_path / name
    datasets.save(ds, target)
    before = datasets.load(target)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", boom)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        datasets.save(ds.assign_attrs(note="new"), target)
    with pytest.raises(RuntimeError):
        datasets.save(ds, tmp_path / ("new_" + name))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == [name]  # old data kept, no temporaries
    xr.testing.assert_identical(datasets.load(target), before)
