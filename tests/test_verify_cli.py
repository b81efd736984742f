"""``accsim verify`` command: happy path and every bad-input error."""

from __future__ import annotations

import os

import numpy as np
import pytest
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run import datasets

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["verify", *args])


def test_happy_path_generic_model(tmp_path):
    out = tmp_path / "v.zarr"
    r = _run("--model", "fp16-recursive-rne", "--n", "8,16", "--kappa", "1,1e3",
             "--samples", "2", "--seed", "3", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "accsim verify: fp16-recursive-rne" in r.output
    assert "no bound violations" in r.output
    ds = datasets.load(out)
    assert dict(ds.sizes) == {"n": 2, "kappa": 2, "sample": 2}
    assert ds["holds"].dtype == bool and bool(ds["holds"].all())
    assert ds.attrs["model"] == "fp16-recursive-rne" and ds.attrs["seed"] == 3
    assert (ds["bound"].values >= ds["abs_error"].values).all()
    np.testing.assert_array_equal(ds["kappa_v"].values[:, 0], 1.0)
    assert (tmp_path / "v.png").stat().st_size > 1000
    assert sorted(os.listdir(tmp_path)) == [".v.zarr.accsim.json", "v.png", "v.zarr"]


def test_hardware_model_rounds_n_up_to_k(tmp_path):
    out = tmp_path / "h.nc"
    r = _run("--model", "hopper:wgmma.m64n8k32.f32.e4m3.e4m3", "--n", "16,32",
             "--kappa", "1e3", "--samples", "1", "--out", str(out), "--no-plot")
    assert r.exit_code == 0, r.output
    ds = datasets.load(out)
    assert ds["n"].values.tolist() == [32]
    assert ds.attrs["n_requested"] == "16,32" and ds.attrs["instruction_k"] == 32


@pytest.mark.parametrize("args, msg", [
    (["--model", "nosuch-model"], "unknown model"),
    (["--model", "hopper:nosuch"], "unknown instruction"),
    (["--n", "16,0"], "positive"),
    (["--n", "16,-4"], "positive"),
    (["--n", "16,abc"], "not an integer"),
    (["--kappa", "0.5"], ">= 1"),
    (["--kappa", "inf"], ">= 1"),
    (["--samples", "0"], "samples"),
    (["--kind", "typical"], "kind"),
])
def test_bad_input(tmp_path, args, msg):
    base = {"--model": "fp16-recursive-rne", "--n": "8", "--kappa": "1", "--samples": "1"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    r = _run(*flat, "--out", str(tmp_path / "o.zarr"))
    assert r.exit_code == 2
    assert msg in r.output
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("out, msg", [("missing/o.zarr", "does not exist"),
                                      ("o.csv", ".zarr or .nc")])
def test_bad_output_path(tmp_path, out, msg):
    r = _run("--model", "fp16-recursive-rne", "--n", "8", "--kappa", "1", "--samples", "1",
             "--out", str(tmp_path / out))
    assert r.exit_code == 2 and msg in r.output
    assert os.listdir(tmp_path) == []


def test_unwritable_output_dir(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro)
                        else real_access(p, mode))
    r = _run("--model", "fp16-recursive-rne", "--n", "8", "--out", str(ro / "o.zarr"))
    assert r.exit_code == 2 and "not writable" in r.output
    assert os.listdir(ro) == []
