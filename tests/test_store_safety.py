"""Results are the user's data (issue 14): outputs are never replaced unless they are
accsim's own, stores are published atomically, one writer at a time, damage is reported,
records are validated, leftovers of killed runs are cleaned, zarr stores carry
consolidated metadata.

Sweeps use the test double ``tests/doubles.py:fake_evaluate`` (a pure function of
its arguments); ``accsim run`` / ``verify`` run for real on tiny inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from accsim.batch import load_config, open_results, run_sweep
from accsim.cli import app
from accsim.run.outputs import OutputLock, inspect

ROOT = Path(__file__).resolve().parents[1]
DOUBLE = "doubles:fake_evaluate"
runner = CliRunner()

SWEEP = """
[sweep]
name = "{name}"
seed = 3
samples = 8

[models.rec]
family = "recursive"
acc_format = {{p = "4..7", emax = 15}}

[[grid]]
network = "mlp-relu"
low = "rec"
seed = [0, 1]
"""  # 8 cells

RUN = """
[run]
network = "mlp-relu"
samples = 4
batch = 4
record_samples = 2
plots = false
output = "unused.zarr"

[models.h16]
family = "recursive"
acc_format = "{fmt}"

[[strategies]]
kind = "uniform"
model = "h16"
"""


def sweep_cfg(tmp_path, name="s1"):
    p = tmp_path / f"{name}.toml"
    p.write_text(SWEEP.format(name=name))
    return p


def run_cfg(tmp_path, fmt="binary16", name="r.toml"):
    p = tmp_path / name
    p.write_text(RUN.format(fmt=fmt))
    return p


def sweep_store(tmp_path, name="s1", store=None):
    cfg = sweep_cfg(tmp_path, name)
    store = store or tmp_path / "S.zarr"
    res = run_sweep(load_config(cfg), store, cell_fn=DOUBLE, progress=False)
    assert res.ok
    return cfg, store


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def tree(path: Path) -> dict:
    """Relative path -> bytes of every file under ``path``."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


# --------------------------------------------------------------- never delete data
def test_run_refuses_a_sweep_store_even_with_force(tmp_path):
    _, store = sweep_store(tmp_path)
    before = tree(store)
    for extra in ([], ["--force"]):
        r = cli("run", run_cfg(tmp_path), "--out", store, "--no-plots", *extra)
        assert r.exit_code == 2, r.output
        assert "sweep output" in r.output and "never replaces" in r.output
    assert tree(store) == before  # cells/ records and dataset intact


def test_run_refuses_a_plain_file_named_like_a_store(tmp_path):
    f = tmp_path / "p.zarr"
    f.write_text("my notes\n")
    for extra in ([], ["--force"]):
        r = cli("run", run_cfg(tmp_path), "--out", f, "--no-plots", *extra)
        assert r.exit_code == 2 and "not an accsim run output" in r.output, r.output
    assert f.read_text() == "my notes\n"


def test_verify_refuses_a_directory_with_foreign_files_even_with_force(tmp_path):
    d = tmp_path / "d.zarr"
    d.mkdir()
    (d / "important.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        r = cli("verify", "-m", "fp16-recursive-rne", "-o", d, "--n", "4", "--kappa", "1",
                "--samples", "1", "--no-plot", *extra)
        assert r.exit_code == 2 and "important.txt" in r.output, r.output
    assert (d / "important.txt").read_text() == "keep me"


def test_sweep_refuses_a_run_dataset_even_with_force(tmp_path):
    out = tmp_path / "run.zarr"
    r = cli("run", run_cfg(tmp_path), "--out", out, "--no-plots")
    assert r.exit_code == 0, r.output
    before = tree(out)
    for extra in ([], ["--force"]):
        r = cli("sweep", sweep_cfg(tmp_path), "--out", out, "--cell-fn", DOUBLE,
                "--no-progress", *extra)
        assert r.exit_code == 2 and "run output" in r.output, r.output
    assert tree(out) == before


def test_run_replaces_its_own_result_and_needs_force_for_another_config(tmp_path):
    out = tmp_path / "r.zarr"
    assert cli("run", run_cfg(tmp_path), "--out", out, "--no-plots").exit_code == 0
    first = xr.open_zarr(out).attrs["config_sha256"]
    # same configuration: a rerun replaces it
    assert cli("run", run_cfg(tmp_path), "--out", out, "--no-plots").exit_code == 0
    other = run_cfg(tmp_path, fmt="binary32", name="r32.toml")
    r = cli("run", other, "--out", out, "--no-plots")
    assert r.exit_code == 2 and "--force" in r.output, r.output
    assert xr.open_zarr(out).attrs["config_sha256"] == first
    r = cli("run", other, "--out", out, "--no-plots", "--force")
    assert r.exit_code == 0, r.output
    assert xr.open_zarr(out).attrs["config_sha256"] != first


def test_verify_needs_force_for_other_parameters(tmp_path):
    out = tmp_path / "v.nc"
    args = ["verify", "-m", "fp16-recursive-rne", "-o", out, "--kappa", "1", "--samples",
            "1", "--no-plot"]
    assert cli(*args, "--n", "4").exit_code == 0
    assert cli(*args, "--n", "4").exit_code == 0  # the same parameters: replaced
    r = cli(*args, "--n", "8")
    assert r.exit_code == 2 and "--force" in r.output
    assert cli(*args, "--n", "8", "--force").exit_code == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert list(ds["n"].values) == [8]


def test_sweep_of_another_name_needs_force(tmp_path):
    _, store = sweep_store(tmp_path, "s1")
    r = cli("sweep", sweep_cfg(tmp_path, "s2"), "--out", store, "--cell-fn", DOUBLE,
            "--no-progress")
    assert r.exit_code == 2 and "--force" in r.output, r.output
    assert open_results(store).attrs["sweep_name"] == "s1"
    r = cli("sweep", sweep_cfg(tmp_path, "s2"), "--out", store, "--cell-fn", DOUBLE,
            "--no-progress", "--force")
    assert r.exit_code == 0, r.output
    assert open_results(store).attrs["sweep_name"] == "s2"


# --------------------------------------------------------------- atomic publish
def test_reader_never_sees_a_partial_sweep_dataset(tmp_path):
    cfg, store = sweep_store(tmp_path)
    sw = load_config(cfg)
    errors, reads, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                ds = open_results(store)
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(repr(exc))
                continue
            reads.append((ds.attrs["n_ok"], int((ds["status"].values == "ok").sum()),
                          len(ds.data_vars)))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for k in range(6):  # reruns: rebuilds with nothing to compute, and forced ones
            run_sweep(sw, store, cell_fn=DOUBLE, progress=False, force=bool(k % 2))
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert reads and all(n == 8 and ok == 8 and nv >= 10 for n, ok, nv in reads)


def test_sigkill_during_rebuild_or_force_leaves_a_complete_store(tmp_path):
    cfg, store = sweep_store(tmp_path)
    records = sorted(p.name for p in (store / "cells").glob("*.json"))
    env = dict(os.environ, ACCSIM_TEST_CELL_SLEEP="0.2")
    for delay in (0.5, 1.5, 2.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "accsim.cli", "sweep", str(cfg), "--out", str(store),
             "--cell-fn", DOUBLE, "--no-progress", "--force"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ds = open_results(store)
        assert ds.attrs["complete"] == 1 and ds.attrs["n_ok"] == 8
        assert {"accuracy", "bit_cost"} <= set(ds.data_vars) and "cell_id" in ds.coords
        assert sorted(p.name for p in (store / "cells").glob("*.json")) == records
    # the next run cleans what the killed ones left beside the store
    res = run_sweep(load_config(cfg), store, cell_fn=DOUBLE, progress=False)
    assert res.ok and res.ran == 0
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".S.zarr.")]
    assert left == []


def test_interrupted_force_keeps_the_old_store(tmp_path, monkeypatch):
    cfg, store = sweep_store(tmp_path)
    before = tree(store)
    import accsim.batch.runner as rn

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rn, "_run_local", interrupted)
    res = run_sweep(load_config(cfg), store, cell_fn=DOUBLE, progress=False, force=True)
    assert res.interrupted
    assert tree(store) == before


def test_concurrent_writer_is_told_the_store_is_busy(tmp_path):
    cfg, store = sweep_store(tmp_path)
    with OutputLock(store):
        r = cli("sweep", cfg, "--out", store, "--cell-fn", DOUBLE, "--no-progress")
        assert r.exit_code == 3 and "busy" in r.output, r.output
        r = cli("run", run_cfg(tmp_path), "--out", store, "--no-plots")
        assert r.exit_code == 3 and "busy" in r.output
    r = cli("sweep", cfg, "--out", store, "--cell-fn", DOUBLE, "--no-progress")
    assert r.exit_code == 0 and "0 cell(s) run" in r.output


def test_two_sweeps_at_once_never_do_a_cell_twice(tmp_path):
    cfg = sweep_cfg(tmp_path)
    store = tmp_path / "S.zarr"
    env = dict(os.environ, ACCSIM_TEST_CELL_SLEEP="0.1")
    cmd = [sys.executable, "-m", "accsim.cli", "sweep", str(cfg), "--out", str(store),
           "--cell-fn", DOUBLE, "--no-progress"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [(p.wait(), p.stdout.read()) for p in procs]
    codes = sorted(c for c, _ in outs)
    # either they ran one after the other, or the second was told the store is busy
    assert codes in ([0, 0], [0, 3]), outs
    ran = sum(int(o.split(" cell(s) run")[0].split()[-1]) for c, o in outs if c == 0)
    assert ran == 8
    assert open_results(store).attrs["complete"] == 1


def test_full_disk_during_rebuild_is_an_error_and_keeps_the_old_store(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cfg, store = sweep_store(tmp_path, store=mnt / "S.zarr")
        before = tree(store)
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # fill the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        r = cli("sweep", cfg, "--out", store, "--cell-fn", DOUBLE, "--no-progress",
                "--force")
        assert r.exit_code in (1, 2) and "Traceback" not in r.output, r.output
        assert "error" in r.output
        assert tree(store) == before
        r = cli("verify", "-m", "fp16-recursive-rne", "-o", mnt / "x.nc", "--n", "64",
                "--kappa", "1", "--samples", "50", "--no-plot")
        assert r.exit_code in (1, 2) and "Traceback" not in r.output, r.output
        assert not (mnt / "x.nc").exists()
        filler.unlink()
        assert [p.name for p in mnt.iterdir() if p.name.startswith(".")] == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# --------------------------------------------------------------- damage and records
def _rerun(cfg, store):
    r = cli("sweep", cfg, "--out", store, "--cell-fn", DOUBLE, "--no-progress")
    assert r.exit_code == 0, r.output
    return r.output


def test_damage_is_reported_and_repaired(tmp_path):
    cfg, store = sweep_store(tmp_path)
    ref = open_results(store)
    rec = sorted((store / "cells").glob("*.json"))
    # a deleted record
    rec[0].unlink()
    out = _rerun(cfg, store)
    assert "damaged" in out and "missing" in out and "1 cell(s) run" in out
    # a truncated record
    rec[1].write_text(rec[1].read_text()[:20])
    out = _rerun(cfg, store)
    assert "not valid JSON" in out and "1 cell(s) run" in out
    # a truncated chunk of the dataset
    chunk = next(p for p in (store / "accuracy").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:3])
    out = _rerun(cfg, store)
    assert "unreadable" in out and "0 cell(s) run" in out
    # a deleted zarr.json
    (store / "zarr.json").unlink()
    assert inspect(store).state == "damaged"  # not "foreign"
    out = _rerun(cfg, store)
    assert "damaged" in out
    ds = open_results(store)
    np.testing.assert_array_equal(ds["accuracy"].values.view(np.uint64),
                                  ref["accuracy"].values.view(np.uint64))


@pytest.mark.parametrize("edit", [{}, {"accuracy": "high"}])
def test_edited_records_are_rejected_and_rerun(tmp_path, edit):
    cfg, store = sweep_store(tmp_path)
    f = sorted((store / "cells").glob("*.json"))[0]
    rec = json.loads(f.read_text())
    rec["result"] = edit if not edit else {**rec["result"], **edit}
    f.write_text(json.dumps(rec))
    out = _rerun(cfg, store)
    assert "damaged" in out and "1 cell(s) run" in out
    ds = open_results(store)
    assert ds.attrs["n_ok"] == 8 and np.isfinite(ds["accuracy"].values).all()


def test_leftover_temporaries_are_cleaned(tmp_path):
    cfg, store = sweep_store(tmp_path)
    for name in (".S.zarr.abc.tmp", ".S.zarr.def.old"):
        (tmp_path / name / "x").mkdir(parents=True)
        (tmp_path / name / "x" / "big").write_bytes(b"\0" * 1000)
    (tmp_path / ".other.zarr.abc.tmp").mkdir()  # another output's: not ours to remove
    _rerun(cfg, store)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert names == [".other.zarr.abc.tmp"]
    out = tmp_path / "r.zarr"
    (tmp_path / ".r.zarr.xyz.tmp").mkdir()
    assert cli("run", run_cfg(tmp_path), "--out", out, "--no-plots").exit_code == 0
    assert not (tmp_path / ".r.zarr.xyz.tmp").exists()


# --------------------------------------------------------------- consolidated metadata
def test_every_store_opens_without_consolidation_warnings(tmp_path):
    _, sweep = sweep_store(tmp_path)
    run_out = tmp_path / "r.zarr"
    assert cli("run", run_cfg(tmp_path), "--out", run_out, "--no-plots").exit_code == 0
    ver = tmp_path / "v.zarr"
    assert cli("verify", "-m", "fp16-recursive-rne", "-o", ver, "--n", "4", "--kappa", "1",
               "--samples", "1", "--no-plot").exit_code == 0
    for store in (sweep, run_out, ver):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = xr.open_zarr(store)
            ds.load()
        assert ds.attrs["accsim_kind"] in ("sweep", "run", "verify")
