"""The part of an installed accsim that needs no install to check: the example configs
are package data that ``accsim examples`` lists and copies, they parse and name networks
that ship with the package, ``accsim fetch`` puts data into the user data directory, and
the wheel's file list holds them (scripts/check_wheel.py tries a real wheel in a venv)."""

from __future__ import annotations

import importlib.resources
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accsim.cli import app
from accsim.cli.examples import example_names, examples_dir

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_examples_are_the_configs_and_package_data():
    names = example_names()
    assert names == sorted(p.stem for p in (ROOT / "configs").glob("*.toml"))
    assert "paper_mlp" in names
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["accsim.examples"] == ["*.toml"]
    assert (importlib.resources.files("accsim") / "examples" / "paper_mlp.toml").is_file()


def test_examples_lists_and_copies(tmp_path):
    r = runner.invoke(app, ["examples"], env={"COLUMNS": "80"})
    assert r.exit_code == 0
    for name in example_names():
        assert name in r.stdout
    r = runner.invoke(app, ["examples", "paper_mlp", "--to", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    copied = tmp_path / "runs" / "paper_mlp.toml"
    assert copied.read_bytes() == (examples_dir() / "paper_mlp.toml").read_bytes()
    assert f"accsim run {copied}" in r.stderr
    again = runner.invoke(app, ["examples", "paper_mlp", "--to", str(tmp_path / "runs")])
    assert again.exit_code == 2 and "--force" in again.stderr
    bad = runner.invoke(app, ["examples", "nosuch"])
    assert bad.exit_code == 2 and "paper_mlp" in bad.stderr


@pytest.mark.parametrize("name", ["paper_mlp", "tanh_mlp", "mlp_wide_mnist"])
def test_example_networks_ship_with_the_package(name):
    """The networks an example names are package data (networks/weights)."""
    import networks
    from accsim.run.config import load_config

    cfg = load_config(examples_dir() / f"{name}.toml")
    assert cfg.run.network in networks.available("all")
    weights = importlib.resources.files("networks") / "weights" / f"{cfg.run.network}.npz"
    assert weights.is_file()


def test_data_dir_env_checkout_and_user(monkeypatch, tmp_path):
    from networks import fetch

    monkeypatch.setenv("ACCSIM_DATA_DIR", str(tmp_path / "d"))
    assert fetch.data_dir() == tmp_path / "d"
    monkeypatch.delenv("ACCSIM_DATA_DIR")
    assert fetch.data_dir() == ROOT / ".data"  # a checkout: pyproject.toml beside networks/
    monkeypatch.setattr(fetch, "__file__", str(tmp_path / "site" / "networks" / "fetch.py"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert fetch.data_dir() == tmp_path / "xdg" / "accsim"  # installed: the user data dir


def test_fetch_rejects_unknown_data_sets():
    r = runner.invoke(app, ["fetch", "cifar"])
    assert r.exit_code == 2 and "valid: mnist, fashion" in r.stderr
