"""Multi-file outputs are published as one unit (issue 23, "one output guard"):
``accsim run``'s dataset and its ``OUT_img`` folder, ``accsim verify``'s dataset and its
PNG (:class:`accsim.run.outputs.Unit`).

Each command's second output replaces the first one; the publication is interrupted at
its seams (after the first part is swapped in, just before the manifest commits it) by
an in-process error, by a real SIGKILL, or by a full disk while staging. The previous
output must then be there byte for byte, with nothing half-written beside it, and
accsim's readers must never return a mixture of the two.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_hostile import cli as _cli
from test_store_safety import run_cfg, tree
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run import datasets, outputs

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _args(kind, tmp_path, version):
    """The command line of ``kind``'s first (``version`` 0) or second output."""
    if kind == "run":
        cfg = run_cfg(tmp_path, fmt=("binary16", "binary32")[version],
                      name=f"r{version}.toml")
        return ["run", str(cfg), "--out", str(tmp_path / "o.zarr"), "--plots"]
    return ["verify", "-m", "fp16-recursive-rne", "-o", str(tmp_path / "o.zarr"), "--n",
            "4", "--kappa", "1", "--samples", str(1 + version), "--plot"]


def _outputs(tmp_path) -> dict:
    """Every file beside and inside the outputs (hidden ones included), configs aside."""
    return {k: v for k, v in tree(tmp_path).items() if not k.endswith(".toml")}


def _second_part(kind, tmp_path) -> Path:
    return tmp_path / ("o_img" if kind == "run" else "o.png")


def _first(kind, tmp_path) -> dict:
    r = _cli(*_args(kind, tmp_path, 0))
    assert r.exit_code == 0, r.output
    assert _second_part(kind, tmp_path).exists()
    assert outputs.read_unit(tmp_path / "o.zarr")["state"] == "complete"
    return _outputs(tmp_path)


KINDS = ["run", "verify"]
SEAMS = ["after-first-part", "before-commit"]


def _fail_at(monkeypatch, seam, exc):
    """Make the publication raise ``exc`` at ``seam``."""
    if seam == "after-first-part":
        real, calls = outputs.Unit._swap_part, []

        def part(self, *a):
            calls.append(a)
            if len(calls) == 2:
                raise exc
            return real(self, *a)

        monkeypatch.setattr(outputs.Unit, "_swap_part", part)
    else:
        real_write = outputs.Unit._write

        def write(main, man):
            if man["state"] == "complete":
                raise exc
            return real_write(main, man)

        monkeypatch.setattr(outputs.Unit, "_write", staticmethod(write))


@pytest.mark.parametrize("seam", SEAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_failure_between_the_parts_keeps_the_previous_output(tmp_path, monkeypatch,
                                                                kind, seam):
    before = _first(kind, tmp_path)
    old = datasets.load(tmp_path / "o.zarr")
    _fail_at(monkeypatch, seam, OSError(errno.EIO, "Input/output error"))
    r = _cli(*_args(kind, tmp_path, 1), "--force")
    assert r.exit_code == 1 and "cannot write the results" in r.output, r.output
    assert "unchanged" in r.output
    assert _outputs(tmp_path) == before  # byte for byte, nothing left beside it
    assert datasets.load(tmp_path / "o.zarr").identical(old)
    monkeypatch.undo()
    r = _cli(*_args(kind, tmp_path, 1), "--force")
    assert r.exit_code == 0, r.output
    new = datasets.load(tmp_path / "o.zarr")
    assert new.attrs["config_sha256"] != old.attrs["config_sha256"]
    assert outputs.read_unit(tmp_path / "o.zarr")["id"] == new.attrs["publish_id"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupt_between_the_parts_keeps_the_previous_output(tmp_path, monkeypatch,
                                                                  kind):
    before = _first(kind, tmp_path)
    _fail_at(monkeypatch, "after-first-part", KeyboardInterrupt())
    r = runner.invoke(app, _args(kind, tmp_path, 1) + ["--force"])
    assert r.exit_code != 0
    assert _outputs(tmp_path) == before


_KILLER = """
import os, signal, sys
from accsim.run import outputs

seam, calls = sys.argv[1], []
real_part, real_write = outputs.Unit._swap_part, outputs.Unit._write

def part(self, *a):
    calls.append(a)
    if seam == "after-first-part" and len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_part(self, *a)

def write(main, man):
    if seam == "before-commit" and man["state"] == "complete":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(main, man)

outputs.Unit._swap_part, outputs.Unit._write = part, staticmethod(write)
from accsim.cli import app
app(sys.argv[2:])
"""


@pytest.mark.parametrize("seam", SEAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_between_the_parts_is_refused_by_readers_and_repaired(tmp_path, kind,
                                                                      seam):
    before = _first(kind, tmp_path)
    old = datasets.load(tmp_path / "o.zarr")
    proc = subprocess.run([sys.executable, "-c", _KILLER, seam,
                           *_args(kind, tmp_path, 1), "--force"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # the new dataset is in place, the unit is not committed: accsim's readers refuse it
    with pytest.raises(ValueError, match="incomplete"):
        datasets.load(tmp_path / "o.zarr")
    import accsim

    with pytest.raises(ValueError, match="incomplete"):
        accsim.open_dataset(tmp_path / "o.zarr")
    # the next command on the output puts the previous unit back first, so the second
    # configuration still needs --force (it is not this output's own)
    r = _cli(*_args(kind, tmp_path, 1))
    assert r.exit_code == 2 and "--force" in r.output, r.output
    assert _outputs(tmp_path) == before
    assert datasets.load(tmp_path / "o.zarr").identical(old)
    assert _cli(*_args(kind, tmp_path, 1), "--force").exit_code == 0


@pytest.mark.parametrize("stage", ["dataset", "plot"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_full_disk_while_staging_keeps_the_previous_output(tmp_path, monkeypatch, kind,
                                                             stage):
    before = _first(kind, tmp_path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    if stage == "dataset":
        monkeypatch.setattr(datasets, "_write", full)
    elif kind == "run":
        import accsim.plots.run

        monkeypatch.setattr(accsim.plots.run, "save_plots", full)
    else:
        import accsim.plots.verify

        monkeypatch.setattr(accsim.plots.verify, "save_plot", full)
    r = _cli(*_args(kind, tmp_path, 1), "--force")
    assert r.exit_code == 1 and "No space left on device" in r.output, r.output
    assert _outputs(tmp_path) == before


@pytest.mark.parametrize("kind", KINDS)
def test_an_unwritable_output_is_a_clear_error(tmp_path, kind):
    args = _args(kind, tmp_path, 0)
    args[args.index(str(tmp_path / "o.zarr"))] = "/proc/accsim-test/o.zarr"
    r = _cli(*args)
    assert r.exit_code in (1, 2) and "/proc" in r.output, r.output
    assert not Path("/proc/accsim-test").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_later_output_without_plots_takes_its_old_plots_along(tmp_path, kind):
    _first(kind, tmp_path)
    part = _second_part(kind, tmp_path)
    no_plots = [a for a in _args(kind, tmp_path, 0) if a not in ("--plots", "--plot")]
    no_plots.append("--no-plots" if kind == "run" else "--no-plot")
    assert _cli(*no_plots).exit_code == 0
    assert not part.exists()  # the plots of the replaced dataset are not left beside it
    assert set(outputs.read_unit(tmp_path / "o.zarr")["parts"]) == {"o.zarr"}
    # a user's changes make the plots foreign: a later output leaves them alone
    _cli(*_args(kind, tmp_path, 0))
    if kind == "run":
        (part / "notes.txt").write_text("mine")
    else:
        part.write_bytes(part.read_bytes() + b"edited")
    mine = tree(tmp_path)
    assert _cli(*no_plots).exit_code == 0
    assert {k: v for k, v in tree(tmp_path).items() if k.startswith(part.name)} == \
        {k: v for k, v in mine.items() if k.startswith(part.name)}


def test_a_dataset_replaced_behind_accsims_back_is_refused(tmp_path):
    _first("verify", tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = _cli("verify", "-m", "fp16-recursive-rne", "-o", other / "o.zarr", "--n", "4",
             "--kappa", "1", "--samples", "2", "--no-plot")
    assert r.exit_code == 0, r.output
    import shutil

    shutil.rmtree(tmp_path / "o.zarr")
    shutil.copytree(other / "o.zarr", tmp_path / "o.zarr")
    with pytest.raises(ValueError, match="does not match its manifest"):
        datasets.load(tmp_path / "o.zarr")


@pytest.mark.parametrize("kind", KINDS)
def test_accsims_reader_never_mixes_a_unit_rewritten_while_it_reads(tmp_path, monkeypatch,
                                                                    kind):
    import xarray as xr

    import accsim

    _first(kind, tmp_path)
    old = datasets.load(tmp_path / "o.zarr")
    real, fired = xr.open_zarr, []

    def open_then_rewrite(*a, **k):
        ds = real(*a, **k)
        if not fired:  # once: the second output is published between open and load
            fired.append(1)
            assert _cli(*_args(kind, tmp_path, 1), "--force").exit_code == 0
        return ds

    monkeypatch.setattr(xr, "open_zarr", open_then_rewrite)
    got = accsim.open_dataset(tmp_path / "o.zarr")
    monkeypatch.undo()
    new = datasets.load(tmp_path / "o.zarr")
    assert fired and new.attrs["config_sha256"] != old.attrs["config_sha256"]
    assert got.identical(new)
