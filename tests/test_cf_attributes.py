"""CF-style metadata: every data variable and coordinate of every kind of store that
accsim writes (run, graph run, sweep, verify, MiniLM) carries ``long_name``, and
``units`` where the table in :mod:`accsim.run.attributes` gives one; model descriptions
are one JSON attribute, never mangled attribute names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run.attributes import ATTRIBUTES, UNITS, lookup, missing_long_names

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _open(path: Path) -> xr.Dataset:
    if path.suffix == ".nc":
        return xr.open_dataset(path, engine="h5netcdf")
    return xr.open_zarr(path, consolidated=True)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One store of each kind, written by the commands a user runs (tiny sizes)."""
    tmp = tmp_path_factory.mktemp("cf")
    from test_graph_config import TOML as GRAPH_TOML
    from test_run_cli import TINY

    out = {}
    cfg = tmp / "run.toml"
    cfg.write_text(TINY.format(out=tmp / "run.zarr").replace("plots = true", "plots = false"))
    r = CliRunner().invoke(app, ["run", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    out["run"] = tmp / "run.zarr"

    import numpy as np

    g = tmp / "graph"
    g.mkdir()
    rng = np.random.default_rng(0)
    f32 = np.float32
    np.savez(g / "sd.npz", **{"c.weight": rng.standard_normal((2, 1, 3, 3)).astype(f32),
                              "c.bias": rng.standard_normal(2).astype(f32),
                              "fc.weight": rng.standard_normal((3, 18)).astype(f32),
                              "fc.bias": rng.standard_normal(3).astype(f32)})
    np.savez(g / "inputs.npz", x=rng.standard_normal((5, 1, 6, 6)), y=rng.integers(0, 3, 5))
    (g / "tiny.toml").write_text(GRAPH_TOML)
    r = CliRunner().invoke(app, ["run", str(g / "tiny.toml"), "-q", "-o", str(g / "g.nc")])
    assert r.exit_code == 0, r.output
    out["graph run"] = g / "g.nc"

    r = CliRunner().invoke(app, ["verify", "-m", "fp16-recursive-rne", "--n", "16",
                                 "--kappa", "1", "--samples", "2", "--no-plot", "-q",
                                 "-o", str(tmp / "v.nc")])
    assert r.exit_code == 0, r.output
    out["verify"] = tmp / "v.nc"

    s = tmp / "sweep.toml"
    s.write_text((ROOT / "configs" / "design_space_smoke.toml").read_text()
                 .replace("samples = 40", "samples = 8").replace("tau = [3.0, 30.0]",
                                                                 "tau = [3.0]"))
    r = CliRunner().invoke(app, ["sweep", str(s), "-q", "-o", str(tmp / "sweep.zarr")])
    assert r.exit_code == 0, r.output
    out["sweep"] = tmp / "sweep.zarr"
    return out


@pytest.mark.parametrize("kind", ["run", "graph run", "verify", "sweep"])
def test_every_variable_has_long_name_and_units(stores, kind):
    ds = _open(stores[kind])
    assert missing_long_names(ds) == [], (
        f"{kind} store: variables without long_name (add them to ATTRIBUTES in "
        f"accsim/run/attributes.py): {missing_long_names(ds)}")
    unlisted = [n for n in [*ds.data_vars, *ds.coords] if lookup(str(n)) is None]
    assert unlisted == [], (f"{kind} store: variables not in ATTRIBUTES "
                            f"(accsim/run/attributes.py): {unlisted}")
    for name in [*ds.data_vars, *ds.coords]:
        want = lookup(name)
        assert ds[name].attrs["long_name"] == want[0], name
        if want[1] is not None:
            assert ds[name].attrs["units"] == want[1], name
        else:
            assert "units" not in ds[name].attrs, name


@pytest.mark.parametrize("kind", ["run", "graph run", "verify"])
def test_model_descriptions_are_one_json_attribute(stores, kind):
    ds = _open(stores[kind])
    assert not [k for k in ds.attrs if k.startswith("model_") and k != "model_descriptions"]
    models = json.loads(ds.attrs["model_descriptions"])
    assert models and all("family" in d for d in models.values())
    if kind == "run":
        assert models["fp16"]["acc_format"] == "binary16"


def test_minilm_store(tmp_path):
    from test_minilm_config import _model_or_skip, _write

    _model_or_skip()

    from accsim.transformer.minilm_run import load_config, run

    p = _write(tmp_path, '[[strategies]]\nname = "u"\ndefault = "fp16acc"\n')
    res = run(load_config(p))
    ds = _open(Path(res["paths"]["nc"]))
    assert missing_long_names(ds) == [], missing_long_names(ds)


def test_the_check_names_a_variable_without_long_name():
    ds = xr.Dataset({"accuracy": ("strategy", [0.5]), "my_new_metric": ("strategy", [1.0])},
                    coords={"strategy": ["a"]})
    from accsim.run.attributes import annotate

    annotate(ds)
    assert missing_long_names(ds) == ["my_new_metric"]
    assert ds["accuracy"].attrs == {"long_name": "top-1 accuracy", "units": "1"}


def test_table_units_are_cf_units():
    assert {u for _, u in ATTRIBUTES.values()} <= set(UNITS) | {None}
