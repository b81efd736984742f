"""Running sweeps: local and dask execution, resume after SIGKILL, failures, plots.

Most tests inject the clearly-marked test double ``tests/doubles.py:fake_evaluate``
(a pure function of its arguments) as the cell function; ``test_real_sweep_*`` runs the
shipped default, ``accsim.run.experiment.evaluate``, on a tiny sweep. One LocalCluster (2
worker processes, loopback only) is shared by the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from doubles import UNLUCKY_SAMPLES

from accsim.batch import RESULT_KEYS, load_config, open_results, run_sweep

ROOT = Path(__file__).resolve().parents[1]
DOUBLE = "doubles:fake_evaluate"
HW = "ampere:mma.m16n8k16.f32.f16.f16.f32"
HW2 = "ampere:mma.m16n8k8.f32.tf32.tf32.f32"

CONFIG = f"""
[sweep]
name = "run"
seed = 5
samples = 8

[models.rec]
family = "recursive"
acc_format = {{p = "4..6", emax = 15}}
mode = ["rne", "sr"]
sr_bits = 6

[[grid]]
network = ["mlp-relu", "cnn-relu"]
low = ["rec", "{HW}"]
seed = [0, 1]

[[grid]]
network = "mlp-relu"
strategy = "adaptive"
low = "rec"
high = "{HW2}"
tau = [0.5, 5.0]
"""


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                     dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})
    client = Client(c)
    yield c, client
    client.close()
    c.close()


def sweep_file(tmp_path, text=CONFIG, name="sweep.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def result_bits(ds):
    return {k: ds[k].values.astype(np.float64).view(np.uint64).copy() for k in RESULT_KEYS}


def assert_same(a, b):
    assert list(a["cell_id"].values) == list(b["cell_id"].values)
    assert list(a["status"].values) == list(b["status"].values)
    ra, rb = result_bits(a), result_bits(b)
    for k in RESULT_KEYS:
        np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)


def test_in_process_and_cluster_bit_identical(tmp_path, cluster):
    sw = load_config(sweep_file(tmp_path))
    one = run_sweep(sw, tmp_path / "one", cell_fn=DOUBLE, progress=False)
    two = run_sweep(sw, tmp_path / "two", cell_fn=DOUBLE, progress=False, client=cluster[1])
    assert one.ok and two.ok and one.ran == two.ran == len(sw.cells) == 40
    workers = {two_rec["worker"] for two_rec in
               (__import__("json").loads(p.read_text()) for p in
                (tmp_path / "two" / "cells").glob("*.json"))}
    assert len(workers) == 2  # both worker processes ran cells
    assert_same(one.dataset, two.dataset)
    assert_same(open_results(tmp_path / "one"), one.dataset)
    # the parameters are coordinates; the model spec is a string coordinate
    ds = one.dataset
    assert ds.sizes["cell"] == 40 and ds.attrs["complete"] == 1
    assert set(ds["strategy"].values) == {"uniform", "adaptive"}
    assert '"family":"recursive"' in ds["low"].values[0]
    assert np.nanmin(ds["low_acc_format_p"].values) == 4


def test_scheduler_address(tmp_path, cluster):
    """--scheduler tcp://... on a LocalCluster started by the test (loopback)."""
    from typer.testing import CliRunner

    from accsim.cli import app

    addr = cluster[0].scheduler_address
    assert addr.startswith("tcp://127.0.0.1:")
    cfg = sweep_file(tmp_path)
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--scheduler", addr, "--out",
                                   str(tmp_path / "s"), "--cell-fn", DOUBLE, "--no-progress"])
    assert res.exit_code == 0, res.output
    ref = run_sweep(load_config(cfg), tmp_path / "ref", cell_fn=DOUBLE, progress=False)
    assert_same(open_results(tmp_path / "s"), ref.dataset)
    # rerun: nothing left to do; --force recomputes everything
    again = run_sweep(load_config(cfg), tmp_path / "s", cell_fn=DOUBLE, progress=False,
                      scheduler=addr)
    assert again.ran == 0 and again.skipped == 40
    forced = run_sweep(load_config(cfg), tmp_path / "s", cell_fn=DOUBLE, progress=False,
                       scheduler=addr, force=True)
    assert forced.ran == 40
    assert_same(forced.dataset, ref.dataset)


def test_failing_cell_is_reported_and_others_complete(tmp_path):
    from typer.testing import CliRunner

    from accsim.cli import app

    text = CONFIG.replace("tau = [0.5, 5.0]", f"tau = [0.5, 5.0]\nsamples = [8, "
                                              f"{UNLUCKY_SAMPLES}]")
    cfg = sweep_file(tmp_path, text)
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "s"),
                                   "--cell-fn", DOUBLE, "--no-progress"])
    assert res.exit_code == 1
    ds = open_results(tmp_path / "s")
    bad = ds["status"].values == "error"
    assert bad.sum() == 12 and (ds["status"].values[~bad] == "ok").all()
    assert (ds["samples"].values[bad] == UNLUCKY_SAMPLES).all()
    assert all("unlucky cell" in e for e in ds["error"].values[bad])
    assert np.isnan(ds["accuracy"].values[bad]).all()
    assert np.isfinite(ds["accuracy"].values[~bad]).all()
    # the report names the failed cells' parameters and the error
    out = " ".join(res.output.split())
    assert "12 failed cell(s)" in out and "unlucky cell" in out
    assert f"samples={UNLUCKY_SAMPLES}" in out and "strategy=adaptive" in out


def test_killed_sweep_resumes_without_loss_or_duplicates(tmp_path):
    cfg = sweep_file(tmp_path)
    store = tmp_path / "s"
    env = dict(os.environ, ACCSIM_TEST_CELL_SLEEP="0.15")
    cmd = [sys.executable, "-m", "accsim.cli", "sweep", str(cfg), "--out", str(store),
           "--cell-fn", DOUBLE, "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    cells = store / "cells"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cells.is_dir() and len(list(cells.glob("*.json"))) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in cells.glob("*.json")}
    assert 5 <= len(done_before) < 40
    sw = load_config(cfg)
    res = run_sweep(sw, store, cell_fn=DOUBLE, progress=False)
    assert res.ok and res.skipped == len(done_before) and res.ran == 40 - len(done_before)
    files = sorted(p.name for p in cells.iterdir())
    assert files == sorted(f"{c.id}.json" for c in sw.cells)  # none missing, no temp left
    for name, mtime in done_before.items():  # finished cells were not recomputed
        assert (cells / name).stat().st_mtime_ns == mtime
    ds = open_results(store)
    assert ds.attrs["complete"] == 1 and len(set(ds["cell_id"].values)) == 40
    assert_same(ds, run_sweep(sw, tmp_path / "ref", cell_fn=DOUBLE, progress=False).dataset)


def test_plot_and_pareto(tmp_path):
    from accsim.plots.sweep import pareto_front, plot_store

    x = np.array([1.0, 2.0, 3.0, 4.0, 2.0])
    y = np.array([0.5, 0.7, 0.6, 0.9, 0.4])
    assert pareto_front(x, y, maximize_y=True).tolist() == [0, 1, 3]
    assert pareto_front(x, y, maximize_y=False).tolist() == [0, 4]
    sw = load_config(sweep_file(tmp_path))
    run_sweep(sw, tmp_path / "s", cell_fn=DOUBLE, progress=False)
    out = plot_store(tmp_path / "s", out=tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="numeric ones"):
        plot_store(tmp_path / "s", x="nope")


def _real_available():
    try:
        import accsim.accumulators.factory  # noqa: F401
        import accsim.run.experiment  # noqa: F401
    except ImportError:
        return False
    return True


REAL = """
[sweep]
name = "real"
seed = 1
samples = 4
seed_keys = ["network", "samples", "seed"]

[models.fp16]
family = "recursive"
acc_format = "binary16"
mode = ["rne", "sr"]
sr_bits = 8

[models.fp32]
family = "recursive"
acc_format = "binary32"

[[grid]]
network = "mlp-relu"
low = ["fp16", "fp32"]

[[grid]]
network = "mlp-relu"
strategy = "adaptive"
low = "fp16"
high = "fp32"
tau = 1.0
"""


@pytest.mark.skipif(not _real_available(), reason="accsim.run.experiment / factory missing")
def test_real_sweep_in_process(tmp_path):
    """The shipped default cell function (accsim.run.experiment.evaluate) on a tiny sweep."""
    sw = load_config(sweep_file(tmp_path, REAL))
    one = run_sweep(sw, tmp_path / "one", progress=False)
    assert one.ok, [f["error"] for f in one.failures]
    ds = one.dataset
    assert ds.sizes["cell"] == 5 and (ds["n_samples"].values == 4).all()
    assert ((ds["accuracy"].values >= 0) & (ds["accuracy"].values <= 1)).all()
    assert (ds["recomputed_fraction"].values[ds["strategy"].values == "uniform"] == 0).all()


@pytest.mark.slow
@pytest.mark.skipif(not _real_available(), reason="accsim.run.experiment / factory missing")
def test_real_sweep_local_equals_cluster(tmp_path, cluster):
    """The shipped default cell function: in-process and 2 workers agree bit for bit
    (slow: each worker process loads the digits data once)."""
    sw = load_config(sweep_file(tmp_path, REAL))
    one = run_sweep(sw, tmp_path / "one", progress=False)
    assert one.ok, [f["error"] for f in one.failures]
    two = run_sweep(sw, tmp_path / "two", progress=False, client=cluster[1])
    assert two.ok
    assert_same(one.dataset, two.dataset)
    ds = one.dataset
    assert (ds["n_samples"].values == 4).all()
    assert ((ds["accuracy"].values >= 0) & (ds["accuracy"].values <= 1)).all()
