"""CLI checks found by using accsim as a demanding user would: outputs checked before any
work, config errors with file:line, help texts with examples."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run import datasets

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


# ---------------------------------------------------------------- unwritable outputs
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_check_writable_tries_the_directory():
    # os.access says yes for root on /proc, but nothing can be created there
    with pytest.raises(ValueError, match="not writable"):
        datasets.check_writable("/proc/x.zarr")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_verify_unwritable_out_fails_before_work(monkeypatch):
    import accsim.analysis.verify

    monkeypatch.setattr(accsim.verify, "verify", lambda *a, **k: pytest.fail("work done"))
    r = runner.invoke(app, ["verify", "-m", "fp16-recursive-rne", "--n", "8", "--samples",
                            "1", "-o", "/proc/x.zarr"])
    assert r.exit_code == 2 and "not writable" in r.output
    assert "Traceback" not in r.output


def test_run_checks_output_before_work(tmp_path, monkeypatch):
    import accsim.run.experiment

    monkeypatch.setattr(accsim.run.experiment, "run_plan", lambda *a, **k: pytest.fail("work"))
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
    from accsim.cli.run import check_output

    out = tmp_path / "a" / "b" / "o.zarr"
    assert check_output(out) == out
    assert not (tmp_path / "a").exists()  # created only when results are written


# ------------------------------------------------------------- run config: file:line
def test_run_config_errors_name_file_and_line(tmp_path):
    from accsim.run.config import load_config

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
    from accsim.run.experiment import select_samples

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


def test_tempdir_probe_leaves_nothing(tmp_path):
    datasets.check_writable(tmp_path / "o.zarr")
    assert os.listdir(tmp_path) == []
    assert tempfile.gettempdir()  # the probe uses the target's directory, not /tmp
