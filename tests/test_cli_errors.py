"""Bad input is refused before any work with a clear message, never a traceback, a
memory blow-up or a silently different result (issue 14)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import hwmodels
from accsim.batch import ConfigError, load_config

DOUBLE = "doubles:fake_evaluate"
runner = CliRunner()


def cli(*args):
    from accsim.cli import app

    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


SWEEP = """
[sweep]
name = "t"
samples = 4
{models}
[[grid]]
network = "mlp-relu"
{grid}
"""


def sweep_text(grid='low = "fp16-recursive-rne"', models=""):
    return SWEEP.format(grid=grid, models=models)


def config_error(tmp_path, text, *match):
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text))
    for m in match:
        assert m in str(ei.value), str(ei.value)
    return ei.value


# ------------------------------------------------------------ ranges: checked, not expanded
def test_huge_format_range_is_refused_before_expanding(tmp_path):
    config_error(tmp_path, sweep_text(
        models='[models.m]\nfamily = "recursive"\n'
               'acc_format = { p = "3..100000000", emax = 15 }\n', grid='low = "m"'),
        "models.m.acc_format", "p must be in 1..53")


def test_huge_seed_range_is_refused(tmp_path):
    config_error(tmp_path, sweep_text('low = "fp16-recursive-rne"\nseed = "0..100000000"'),
                 "grid[0].seed", "limit")


def test_grid_over_the_cell_limit(tmp_path):
    cfg = write(tmp_path, sweep_text('low = "fp16-recursive-rne"\nseed = "0..999"'))
    assert len(load_config(cfg).cells) == 1000
    with pytest.raises(ConfigError, match="more than 100 cells"):
        load_config(cfg, max_cells=100)
    r = cli("sweep", cfg, "--max-cells", "100", "--out", tmp_path / "s.zarr")
    assert r.exit_code == 2 and "--max-cells" in r.output


def test_template_with_too_many_variants(tmp_path):
    config_error(tmp_path, sweep_text(
        models='[models.m]\nfamily = "blocked"\nacc_format = "binary16"\n'
               'inner_format = "binary16"\nouter_format = "binary16"\n'
               'block = "1..10000"\nchunk = "1..10000"\n', grid='low = "m"'),
        "models.m", "limit")


def test_verify_huge_n_is_refused(tmp_path):
    r = cli("verify", "-m", "fp16-recursive-rne", "-o", tmp_path / "v.zarr",
            "--n", "100000000000")
    assert r.exit_code == 2 and "--n" in r.output and "limit" in r.output
    r = cli("verify", "-m", "fp16-recursive-rne", "-o", tmp_path / "v.zarr",
            "--samples", "10000000")
    assert r.exit_code == 2 and "limit" in r.output
    assert not (tmp_path / "v.zarr").exists()


def test_exponent_bits_zero(tmp_path):
    config_error(tmp_path, sweep_text(
        models='[models.m]\nfamily = "recursive"\n'
               'acc_format = { exponent_bits = 0, mantissa_bits = 3 }\n', grid='low = "m"'),
        "exponent_bits must be in 1..11")
    from accsim.numbers.formats import FloatFormat

    with pytest.raises(ValueError, match="exponent_bits"):
        FloatFormat.from_bits(0, 3)


# ------------------------------------------------------------ tracebacks -> messages
def test_binary_config_given_to_sweep(tmp_path):
    f = tmp_path / "bin.toml"
    f.write_bytes(bytes(range(256)) * 4)
    r = cli("sweep", f)
    assert r.exit_code == 2 and "not a text" in r.output


def test_sweep_out_on_an_existing_file_and_a_non_zarr_path(tmp_path):
    cfg = write(tmp_path, sweep_text())
    f = tmp_path / "f.zarr"
    f.write_text("data")
    r = cli("sweep", cfg, "--out", f, "--cell-fn", DOUBLE, "--no-progress")
    assert r.exit_code == 2 and "not an accsim sweep output" in r.output
    assert f.read_text() == "data"
    r = cli("sweep", cfg, "--out", tmp_path / "x.nc", "--cell-fn", DOUBLE)
    assert r.exit_code == 2 and ".zarr" in r.output
    assert not (tmp_path / "x.nc").exists()


def test_sweep_out_on_a_read_only_filesystem(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a read-only tmpfs")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cfg = write(tmp_path, sweep_text())
        r = cli("sweep", cfg, "--out", ro / "s.zarr", "--cell-fn", DOUBLE)
        assert r.exit_code == 2 and "not writable" in r.output, r.output
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_unreachable_scheduler_and_ignored_workers(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write(tmp_path, sweep_text())
    r = cli("sweep", cfg, "--out", tmp_path / "s.zarr", "--cell-fn", DOUBLE,
            "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1",
            "--workers", "4", "--no-progress")
    assert r.exit_code == 2 and "cannot reach" in r.output, r.output
    assert "--workers 4 is ignored" in r.output


# ------------------------------------------------------------ sweeps as strict as runs
@pytest.mark.parametrize("tau,msg", [("-1.0", "tau must be >= 0"), ("nan", "tau must be"),
                                     ("[]", "tau: must not be an empty list")])
def test_sweep_tau_validated(tmp_path, tau, msg):
    config_error(tmp_path, sweep_text(
        f'strategy = "adaptive"\nlow = "fp16-recursive-rne"\nhigh = "fp32-recursive"\n'
        f'tau = {tau}'), "grid[0].tau", msg)


def test_unused_model_is_still_validated(tmp_path):
    config_error(tmp_path, sweep_text(
        models='[models.bad]\nfamily = "blocked"\nblock = 0\nacc_format = "binary16"\n'),
        "models.bad", "cannot be built")


def test_models_named_like_registry_models_are_refused(tmp_path):
    name = "fp16-kahan"
    assert name in hwmodels.available()
    config_error(tmp_path, sweep_text(
        models=f'[models.{name}]\nfamily = "recursive"\nacc_format = "binary32"\n',
        grid=f'low = "{name}"'), f"models.{name}", "registered model name")
    run = write(tmp_path, f"""
        [run]
        network = "mlp-relu"
        [models.{name}]
        family = "recursive"
        acc_format = "binary32"
        [[strategies]]
        kind = "uniform"
        model = "{name}"
        """, "r.toml")
    r = cli("run", run, "--out", tmp_path / "r.zarr")
    assert r.exit_code == 2 and "registered model name" in r.output


def test_samples_zero_means_the_whole_split(tmp_path):
    sw = load_config(write(tmp_path, sweep_text().replace("samples = 4", "samples = 0")))
    assert {c.kwargs["samples"] for c in sw.cells} == {0}
    sw = load_config(write(tmp_path, sweep_text('low = "fp16-recursive-rne"\nsamples = 0')))
    assert {c.kwargs["samples"] for c in sw.cells} == {0}


def test_shipped_paper_sweep_loads():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load_config(root / "configs" / "paper_sweep.toml").cells


# ------------------------------------------------------------ silently wrong results
RUN = """
[run]
network = "mlp-relu"
samples = 0
batch = 8
record_samples = 0
inputs = "{inputs}"
plots = false
[models.h16]
family = "recursive"
acc_format = "binary16"
[[strategies]]
kind = "uniform"
model = "h16"
"""


def _inputs(tmp_path, x_value=None, label=None):
    import networks

    _, _, x, y = networks.digits_dataset()
    x, y = x[:6].copy(), y[:6].copy()
    if x_value is not None:
        x[:] = x_value
    if label is not None:
        y[0] = label
    p = tmp_path / "in.npz"
    np.savez(p, x=x, y=y)
    return write(tmp_path, RUN.format(inputs=p), "run.toml")


def test_non_finite_results_are_counted_not_shown_as_zero_error(tmp_path):
    cfg = _inputs(tmp_path, x_value=1e30)  # binary16 accumulation overflows
    out = tmp_path / "big.zarr"
    r = cli("run", cfg, "--out", out)
    assert r.exit_code == 0, r.output
    assert "non-finite output component" in r.output
    ds = xr.open_zarr(out)
    assert int(ds["nonfinite"].values[0]) > 0
    assert not ds["max_rel_error"].values[0] <= 0  # inf or NaN, never 0


@pytest.mark.parametrize("label", [10, -1])
def test_labels_outside_the_classes_are_refused(tmp_path, label):
    r = cli("run", _inputs(tmp_path, label=label), "--out", tmp_path / "o.zarr")
    assert r.exit_code == 2 and "labels must be integers 0..9" in r.output
    assert not (tmp_path / "o.zarr").exists()


# ------------------------------------------------------------ small things
def test_models_match_without_architecture():
    r = cli("models", "--match", "zzz*")
    assert r.exit_code == 1 and "no model matches" in r.output
    r = cli("models", "--match", "fp16*")
    assert r.exit_code == 0
    names = {n for n in hwmodels.available() if n.startswith("fp16")}
    assert names and all(n in r.output for n in names)
    assert "bf16-sr-accumulator" not in r.output


def test_plot_out_without_png_suffix(tmp_path):
    from accsim.batch import run_sweep

    cfg = write(tmp_path, sweep_text())
    run_sweep(load_config(cfg), tmp_path / "s.zarr", cell_fn=DOUBLE, progress=False)
    r = cli("plot", tmp_path / "s.zarr", "--out", tmp_path / "noext")
    assert r.exit_code == 2 and ".png" in r.output
    assert not list(tmp_path.glob("noext*"))
    r = cli("plot", tmp_path / "s.zarr", "--out", tmp_path / "p.png")
    assert r.exit_code == 0 and str(tmp_path / "p.png") in r.output.replace("\n", "")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_kahan_inf_behaviour_is_the_documented_one():
    """[inf, 1]: the compensation is inf - inf = NaN (documented in the family's
    docstring and docs/accumulators.md); the recursive family gives inf."""
    from pathlib import Path

    import accsim.accumulators.kahan as kahan

    A, B = np.array([[np.inf, 1.0]]), np.ones((2, 1))
    assert np.isnan(hwmodels.get("fp16-kahan").matmul(A, B)[0, 0])
    assert hwmodels.get("fp16-recursive-rne").matmul(A, B)[0, 0] == np.inf
    assert hwmodels.get("fp16-kahan").matmul(A[:, :1], B[:1])[0, 0] == np.inf
    assert "inf - inf" in kahan.__doc__
    docs = (Path(__file__).resolve().parents[1] / "docs" / "accumulators.md").read_text()
    assert "Kahan and infinities" in docs


def test_sweep_summary_shows_nan_and_nonfinite_counts():
    from rich.console import Console

    from accsim.batch.summary import summary_table

    ds = xr.Dataset(
        {"accuracy": ("cell", [0.5]), "max_rel_error": ("cell", [np.nan]),
         "nonfinite": ("cell", [7]), "status": ("cell", np.array(["ok"], object))},
        coords={"network": ("cell", ["mlp-relu"]), "strategy": ("cell", ["uniform"]),
                "model": ("cell", ["m"])})
    con = Console(width=200, record=True)
    con.print(summary_table(ds))
    text = con.export_text()
    assert "non-finite" in text and " 7 " in text and "nan" in text
