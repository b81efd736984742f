"""Conventions every ``accsim`` command follows (accsim/cli/console.py): --version, -h,
--quiet / --verbose everywhere, tables on stdout and messages on stderr, NO_COLOR without
any escape sequence, tables that fit 80 columns, model specs as JSON or a TOML file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner

import accsim
from accsim.cli import app
from accsim.cli.console import fit_columns
from accsim.run import datasets

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "verify", "sweep", "plot", "models", "minilm", "examples", "fetch")
ESC = "\x1b["
runner = CliRunner()


def _invoke(*args, env=None):
    return runner.invoke(app, list(args), env=env)


def test_progress_bars_only_on_a_terminal_and_without_no_progress():
    from accsim.cli import console

    class Term:
        is_terminal = True

    class Pipe:
        is_terminal = False

    console.reset()
    assert console.progress_enabled(Term()) and not console.progress_enabled(Pipe())
    console.reset(console.QUIET)
    assert not console.progress_enabled(Term())
    assert _invoke("models", "hopper", "--verbose", "--no-progress").exit_code == 0
    assert console.level() == console.VERBOSE and not console.progress_enabled(Term())
    assert _invoke("models", "hopper").exit_code == 0  # the next command starts afresh
    assert console.level() == console.NORMAL and console.progress_enabled(Term())


def test_version():
    r = _invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"accsim {accsim.__version__}"


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_h_is_help_and_every_command_has_quiet_and_verbose(cmd):
    args = [cmd] if cmd else []
    short, long = _invoke(*args, "-h"), _invoke(*args, "--help")
    assert short.exit_code == 0 and short.stdout == long.stdout
    for opt in ("--quiet", "--verbose", "-q", "-v", "--no-progress"):
        assert opt in short.stdout, (cmd, opt)


def _verify_args(tmp_path, *extra, model="fp16-recursive-rne"):
    return ("verify", "-m", model, "--n", "16", "--kappa", "1", "--samples", "2",
            "--no-plot", "-o", str(tmp_path / "v.zarr"), *extra)


def test_table_on_stdout_messages_on_stderr_quiet_and_verbose(tmp_path):
    r = _invoke(*_verify_args(tmp_path))
    assert r.exit_code == 0, r.output
    assert "max rel error" in r.stdout and "no bound violations" not in r.stdout
    assert "no bound violations" in r.stderr and "max rel error" not in r.stderr
    q = _invoke(*_verify_args(tmp_path, "--quiet"))
    assert q.exit_code == 0 and q.stderr == "" and "max rel error" in q.stdout
    q2 = _invoke("-q", *_verify_args(tmp_path))  # also before the command
    assert q2.exit_code == 0 and q2.stderr == ""
    v = _invoke(*_verify_args(tmp_path, "--verbose"))
    assert "model: RecursiveSum(binary16, rne, exact products)" in v.stderr
    assert "model:" not in r.stderr  # only with --verbose


def test_sweep_and_plot_tables_on_stdout(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[sweep]\nname = "t"\nsamples = 4\n\n[[grid]]\nnetwork = "mlp-relu"\n'
                   'low = "fp16-recursive-rne"\n')
    r = _invoke("sweep", str(cfg), "--out", str(tmp_path / "s.zarr"), "--cell-fn",
                "doubles:fake_evaluate")
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.stdout and "cell(s) run" in r.stderr
    assert "cell(s) run" not in r.stdout
    assert "━" not in r.stderr and "%" not in r.stderr  # no progress bar off a terminal
    bad = _invoke("plot", str(tmp_path / "s.zarr"), "--y", "bogus")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    assert "bogus" in bad.stderr and "[red]" not in bad.stderr and "[/" not in bad.stderr


def test_verify_takes_json_and_toml_model_specs(tmp_path):
    spec = '{"family": "recursive", "acc_format": "binary16", "mode": "rz"}'
    r = _invoke(*_verify_args(tmp_path, model=spec))
    assert r.exit_code == 0, r.output
    ds = datasets.load(tmp_path / "v.zarr")
    model = json.loads(ds.attrs["model_descriptions"])[ds.attrs["model"]]
    assert model["family"] == "recursive" and model["mode"] == "rz"
    f = tmp_path / "m.toml"
    f.write_text('[models.mine]\nfamily = "recursive"\nacc_format = {p = 8, emax = 15}\n'
                 'mode = "rne"\n')
    r = _invoke(*_verify_args(tmp_path, "--force", model=str(f)))
    assert r.exit_code == 0, r.output
    ds = datasets.load(tmp_path / "v.zarr")
    model = json.loads(ds.attrs["model_descriptions"])[ds.attrs["model"]]
    assert model["acc_format"].startswith("p8")
    for bad, msg in (('{"family": ', "--model: not valid JSON"),
                     ('{"acc_format": "binary16"}', "'family' key"),
                     ('{"family": "nosuch"}', "nosuch"),
                     (str(tmp_path / "missing.toml"), "cannot read")):
        r = _invoke(*_verify_args(tmp_path, model=bad))
        assert r.exit_code == 2 and msg in r.stderr, (bad, r.output)


def test_tables_fit_80_columns_without_truncation():
    r = _invoke("models", env={"COLUMNS": "80"})
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in r.stdout
    wide = Table(title="wide")
    for c in ("strategy", *(f"column number {i}" for i in range(12))):
        wide.add_column(c)
    wide.add_row("uniform-fp16", *(f"{i}.123456" for i in range(12)))
    parts = fit_columns(wide, 80)
    assert len(parts) > 1 and all(p.columns[0].header == "strategy" for p in parts)
    assert sum(len(p.columns) - 1 for p in parts) == 12
    from rich.console import Console

    con = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    for p in parts:
        con.print(p)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for i in range(12):
        assert f"{i}.123456" in text and f"column number {i}" in text


def _tty_run(args, env):
    """Run ``accsim ARGS`` as if on a colour terminal (FORCE_COLOR), return its output."""
    e = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    e.update(env, FORCE_COLOR="1", COLUMNS="100", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "accsim.cli", *args], capture_output=True,
                       text=True, env=e, timeout=120)
    return p.stdout + p.stderr


def test_no_color_removes_every_escape_sequence():
    for args in (["models"], ["--help"], ["models", "nosuch"]):
        assert ESC in _tty_run(args, {}), args  # the control: escapes without NO_COLOR
        out = _tty_run(args, {"NO_COLOR": "1"})
        assert ESC not in out, (args, re.findall(r"\x1b\[[0-9;]*m", out)[:3])
