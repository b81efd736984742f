"""The tutorials (docs/tutorials/*.py, py-percent) run as written: each is executed in a
fresh process, in a temporary directory, as the docs build does (docs/hooks.py); their
own assertions check the results (the simulated matmul within its bound and its exact
reference equal to a Fraction sum; the sweep without failed cells). The docs build
renders the same files with their figures; here the figures are drawn but not shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
#: What each tutorial needs beyond the base install.
NEEDS_MNIST = {"sweep_dask"}


def test_tutorials_are_listed_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert len(TUTORIALS) >= 2
    for t in TUTORIALS:
        assert f"tutorials/{t.stem}.md" in nav, t.name


@pytest.mark.parametrize("path", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    if path.stem in NEEDS_MNIST:
        from networks.data import DataUnavailable, load_mnist

        try:
            load_mnist("test")
        except (DataUnavailable, FileNotFoundError) as exc:
            pytest.skip(f"MNIST is not fetched (accsim fetch mnist): {exc}")
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # run_path under another name than __main__: dask's worker processes (spawned)
    # re-import the main module, which must not be the tutorial
    code = ("import runpy, sys; import matplotlib.pyplot as plt; "
            "runpy.run_path(sys.argv[1], run_name='tutorial'); "
            "print('figures:', len(plt.get_fignums()))")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    figures = int(r.stdout.rsplit("figures:", 1)[1])
    assert figures >= 1, "a tutorial shows at least one figure"


def test_api_reference_pages_name_importable_modules():
    """Every ``::: name`` of docs/api/*.md is an importable module or attribute (the
    strict docs build would fail on it later; this says which, in the suite)."""
    import importlib
    import re

    names = [m for p in sorted((ROOT / "docs" / "api").glob("*.md"))
             for m in re.findall(r"^::: ([\w.]+)", p.read_text(), flags=re.M)]
    assert len(names) > 20
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            module, _, attr = name.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), name
