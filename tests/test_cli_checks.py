"""Regression tests for problems found by using accsim as a demanding user would (CLI
errors, output checks before any work, plots, API input validation)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

import accsim
import hwmodels
from accsim import datasets
from accsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

RUN_TOML = """\
[run]
network = "mlp-relu"
samples = {samples}
batch = 8
record_samples = 2
output = "{out}"
plots = false

[models.fp16]
family = "recursive"
acc_format = "binary16"

[[strategies]]
kind = "uniform"
model = "fp16"
"""


def _run_cfg(tmp_path, out, samples=4):
    p = tmp_path / "c.toml"
    p.write_text(RUN_TOML.format(out=out, samples=samples))
    return p


# ------------------------------------------------------------------ hwmodels.get messages
def test_unknown_instruction_message_is_short_with_close_matches():
    with pytest.raises(ValueError) as exc:
        hwmodels.get("hopper:wgmma.m64n8k32.f32.e4m3.e4m4")
    msg = str(exc.value)
    assert len(hwmodels.available("hopper")) > 100
    assert len(msg) < 1200, msg  # was every one of ~400 instructions
    assert "did you mean wgmma.m64n8k32.f32.e4m3.e4m3" in msg
    assert "hwmodels.available('hopper')" in msg


@pytest.mark.parametrize("bad", [None, 3, ("hopper",)])
def test_get_non_string_is_value_error(bad):
    with pytest.raises(ValueError, match="model names are strings"):
        hwmodels.get(bad)


# ---------------------------------------------------------------- unwritable outputs
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_check_writable_tries_the_directory():
    # os.access says yes for root on /proc, but nothing can be created there
    with pytest.raises(ValueError, match="not writable"):
        datasets.check_writable("/proc/x.zarr")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_verify_unwritable_out_fails_before_work(monkeypatch):
    import accsim.verify

    monkeypatch.setattr(accsim.verify, "verify", lambda *a, **k: pytest.fail("work done"))
    r = runner.invoke(app, ["verify", "-m", "fp16-recursive-rne", "--n", "8", "--samples",
                            "1", "-o", "/proc/x.zarr"])
    assert r.exit_code == 2 and "not writable" in r.output
    assert "Traceback" not in r.output


def test_run_checks_output_before_work(tmp_path, monkeypatch):
    import accsim.experiment

    monkeypatch.setattr(accsim.experiment, "run_plan", lambda *a, **k: pytest.fail("work"))
    for out, msg in ((tmp_path / "o.csv", ".zarr or .nc"),
                     (tmp_path / "f.txt" / "o.zarr", "not a directory")):
        (tmp_path / "f.txt").write_text("x")
        cfg = _run_cfg(tmp_path, out)
        r = runner.invoke(app, ["run", str(cfg)])
        assert r.exit_code == 2, r.output
        assert msg in r.output and f"{cfg}:6: run.output" in r.output
    r = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and "--out: output must end in .zarr or .nc" in r.output
    assert sorted(os.listdir(tmp_path)) == ["c.toml", "f.txt"]


def test_run_creates_missing_output_directories(tmp_path):
    from accsim.cli_run import check_output

    out = tmp_path / "a" / "b" / "o.zarr"
    assert check_output(out) == out
    assert not (tmp_path / "a").exists()  # created only when results are written


# ------------------------------------------------------------- run config: file:line
def test_run_config_errors_name_file_and_line(tmp_path):
    from accsim.run_config import load_config

    p = tmp_path / "c.toml"
    p.write_text(RUN_TOML.format(out="o.zarr", samples=4).replace(
        "batch = 8", "batch = 8\nsampels = 3"))
    with pytest.raises(ValueError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}:5: run.sampels: unknown key (not allowed here)"
    p.write_text(RUN_TOML.format(out="o.zarr", samples=4).replace('"binary16"', '"fp17"'))
    r = runner.invoke(app, ["run", str(p)])
    assert r.exit_code == 2 and f"{p}:9: models.fp16:" in r.output
    assert "unknown format 'fp17'" in r.output


def test_samples_larger_than_test_split(tmp_path):
    from accsim.experiment import select_samples

    with pytest.raises(ValueError, match="exceeds the test split"):
        select_samples(100, 101, 0)
    assert select_samples(100, 100, 0).tolist() == list(range(100))
    cfg = _run_cfg(tmp_path, tmp_path / "o.zarr", samples=100000)
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 2 and f"{cfg}:3: run.samples: samples = 100000 exceeds" in r.output
    assert os.listdir(tmp_path) == ["c.toml"]


def test_sweep_samples_larger_than_split_is_config_error(tmp_path):
    from accsim.batch import ConfigError, load_config

    text = (ROOT / "configs" / "smoke_sweep.toml").read_text()
    p = tmp_path / "s.toml"
    broken = re.sub(r"^samples = \d+$", "samples = 5000", text, count=1, flags=re.M)
    assert broken != text
    p.write_text(broken)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.key == "sweep.samples" and exc.value.line is not None
    r = runner.invoke(app, ["sweep", str(p), "--out", str(tmp_path / "s.zarr")])
    assert r.exit_code == 2
    assert "config error:" in r.output and "[red]" not in r.output
    assert not (tmp_path / "s.zarr").exists()


# ------------------------------------------------------------------------- help texts
@pytest.mark.parametrize("cmd", ["run", "verify", "sweep", "plot"])
def test_help_has_examples(cmd):
    r = runner.invoke(app, [cmd, "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output and f"accsim {cmd} " in r.output


# ------------------------------------------------------------------------------ plots
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
    from accsim.plot_verify import curves, save_plot

    rel = np.zeros((2, 2, 2))
    rel[1, 1] = [1e-5, 3e-5]
    c = curves(_verify_ds(rel))
    assert c[1.0]["median"].tolist() == [0.0, 0.0]
    assert c[1000.0]["max"].tolist() == [0.0, 3e-5]
    p = save_plot(_verify_ds(rel), tmp_path / "v.png")
    assert p.stat().st_size > 1000 and os.listdir(tmp_path) == ["v.png"]


def test_tau_labels_merge_overlapping_points():
    from accsim.plot_run import tau_labels

    got = tau_labels(np.array([1.0e6, 1.001e6, 2e6]), np.array([0.9, 0.9, 0.9]),
                     np.array([3.0, 0.3, 30.0]))
    assert [t for _, t in got] == ["0.3, 3", "30"]


def test_sweep_plot_averages_replicates_and_rejects_other_stores(tmp_path):
    import xarray as xr

    from accsim.plot_sweep import plot_store, replicate_groups

    ds = xr.Dataset({"accuracy": ("cell", [0.5, 0.7, 0.9])},
                    coords={"cell": [0, 1, 2], "model": ("cell", ["a", "a", "b"]),
                            "seed": ("cell", [0, 1, 0]), "cell_seed": ("cell", [5, 6, 7])})
    assert [g.tolist() for g in replicate_groups(ds)] == [[0, 1], [2]]
    v = tmp_path / "v.zarr"
    datasets.save(_verify_ds(np.zeros((2, 2, 2))), v)
    with pytest.raises(ValueError, match="not a sweep store"):
        plot_store(v)


# --------------------------------------------------------------------- API validation
def test_round_accepts_ml_dtypes_and_float16_exactly():
    x = np.array([1.5, -0.375, 3.0e-3], np.float32)
    want = accsim.round(x.astype(np.float64), "float8_e4m3", "rz")
    for dt in (ml_dtypes.bfloat16, np.float16):
        xs = x.astype(dt)
        got = accsim.round(xs, "float8_e4m3", "rz")
        ref = accsim.round(xs.astype(np.float64), "float8_e4m3", "rz")
        assert got.view(np.uint64).tolist() == ref.view(np.uint64).tolist()
    assert accsim.round(x, "float8_e4m3", "rz").view(np.uint64).tolist() == \
        want.view(np.uint64).tolist()


@pytest.mark.parametrize("seed", [1.5, "1", None, True])
def test_non_integer_seed_rejected(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=seed)
    m = hwmodels.get("bf16-sr-accumulator")
    with pytest.raises(ValueError, match="seed must be an integer"):
        m.matmul(np.ones((2, 3)), np.ones((3, 2)), seed=seed)


def test_integer_seeds_still_accepted():
    a = accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=np.uint64(2**64 - 1))
    b = accsim.round(np.array([0.1]), "bf16", "sr", sr_bits=8, seed=-1)
    assert a.view(np.uint64).tolist() == b.view(np.uint64).tolist()  # wraps modulo 2^64


def test_tempdir_probe_leaves_nothing(tmp_path):
    datasets.check_writable(tmp_path / "o.zarr")
    assert os.listdir(tmp_path) == []
    assert tempfile.gettempdir()  # the probe uses the target's directory, not /tmp


def test_kahan_compensation_seed_checked():
    m = hwmodels.get("fp16-kahan")
    with pytest.raises(ValueError, match="seed must be an integer"):
        m.matmul_with_compensation(np.ones((2, 3)), np.ones((3, 2)), seed=0.5)
    d, comp = m.matmul_with_compensation(np.ones((2, 3)), np.ones((3, 2)), seed=np.int64(1))
    assert d.tolist() == [[3.0, 3.0], [3.0, 3.0]]
