"""Hostile input (issue 23): nothing the user owns is touched, every bad input gets a
clear error before any work, and no traceback reaches the user.

The classes of the issue, each parametrised over the commands it concerns: foreign
outputs (directories without accsim's marker, user files next to or inside an
output), lock files and unit manifests that are symbolic links or malformed, readers
while a store is rewritten (A171), multi-file outputs published as one unit,
full disks, the one validation layer (TOML depth, strict types, empty lists, the seed
rule, bounded parameters, path length, layer keys, labels), importers (bfloat16 /
float16 tensors load; sparse, quantised, meta tensors, truncated archives and broken
Keras configs are refused naming the tensor or key). Test ids carry the probe case
(``../shared/probe/cases.tsv``) they reproduce, where there is one.

Sweeps use the test double ``tests/doubles.py:fake_evaluate``; run, verify and the graph
runs execute for real on tiny inputs; ``accsim minilm`` is refused before work, except
for the tests marked as needing the MiniLM weights.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_graph_config import TOML as GRAPH_TOML
from test_store_safety import SWEEP, tree
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run import outputs
from accsim.run.outputs import OutputLock

DOUBLE = "doubles:fake_evaluate"
runner = CliRunner()

RUN = """
[run]
network = "mlp-relu"
samples = 4
batch = 4
record_samples = 2
bootstrap = 100
plots = false
output = "unused.zarr"

[models.h16]
family = "recursive"
acc_format = "binary16"

[models.h32]
family = "recursive"
acc_format = "binary32"

[[strategies]]
kind = "uniform"
model = "h16"
"""

MINILM = """
[run]
sentences = 3
batch = 3
layers = 1
seeds = [0]
output = "{out}"
plots = {plots}

[models.fp16acc]
family = "recursive"
acc_format = "binary16"

[[strategies]]
name = "u"
default = "fp16acc"
"""

def graph_text(fmt="npz", file="sd.npz") -> str:
    """The tiny layer-graph config of ``tests/test_graph_config.py`` on ``file`` (with
    an explicit ``[run] seed``)."""
    return (GRAPH_TOML.replace('format = "npz"', f'format = "{fmt}"')
            .replace('file = "sd.npz"', f'file = "{file}"')
            .replace("[run]\n", "[run]\nseed = 0\n"))


def cli(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"uncaught {type(r.exception).__name__}: {r.exception}")
    return r


def _run_cfg(tmp_path, extra="", body=RUN):
    p = tmp_path / "r.toml"
    p.write_text(body + extra)
    return p


def _sweep_cfg(tmp_path, name="s1", text=None):
    p = tmp_path / f"{name}.toml"
    p.write_text(text if text is not None else SWEEP.format(name=name))
    return p


def _minilm_cfg(tmp_path, out="res", plots="false", extra=""):
    p = tmp_path / "m.toml"
    p.write_text(MINILM.format(out=tmp_path / out, plots=plots) + extra)
    return p


def _graph(tmp_path, text=None, fmt="npz", file="sd.npz", x=None, y="default"):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "sd.npz", **{
        "c.weight": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
        "c.bias": rng.standard_normal(2).astype(np.float32),
        "fc.weight": rng.standard_normal((3, 18)).astype(np.float32),
        "fc.bias": rng.standard_normal(3).astype(np.float32)})
    x = rng.standard_normal((5, 1, 6, 6)) if x is None else x
    arrays = {"x": x}
    if y is not None:
        arrays["y"] = rng.integers(0, 3, len(x)) if isinstance(y, str) else y
    np.savez(tmp_path / "inputs.npz", **arrays)
    p = tmp_path / "g.toml"
    p.write_text(text if text is not None else graph_text(fmt, file))
    return p


def _command(kind, tmp_path, out, *extra):
    """Invoke one of the writing commands on ``out`` (tiny inputs)."""
    if kind == "run":
        return cli("run", _run_cfg(tmp_path), "--out", out, "--no-plots", *extra)
    if kind == "verify":
        return cli("verify", "-m", "fp16-recursive-rne", "-o", out, "--n", "4", "--kappa",
                   "1", "--samples", "1", "--no-plot", *extra)
    if kind == "sweep":
        return cli("sweep", _sweep_cfg(tmp_path), "--out", out, "--cell-fn", DOUBLE,
                   "--no-progress", *extra)
    if kind == "graph":
        return cli("run", _graph(tmp_path), "--out", out, *extra)
    raise AssertionError(kind)


def _minilm_available() -> bool:
    try:
        from networks.minilm import model_dir
        from networks.sentences import corpus_path

        model_dir()
        corpus_path()
    except (ImportError, FileNotFoundError):
        return False
    return True


needs_minilm = pytest.mark.skipif(not _minilm_available(),
                                  reason="MiniLM weights or corpus not installed")


# ======================================================= 1. foreign outputs, never touched
def _zarr_v2_user_store(p: Path):  # A039-A041: a user's zarr v2 store, no root .zattrs
    (p / "data").mkdir(parents=True)
    (p / ".zgroup").write_text('{"zarr_format": 2}')
    (p / "data" / ".zarray").write_text('{"zarr_format": 2, "shape": [3]}')
    (p / "data" / "0").write_bytes(b"user bytes")


def _cells_only(p: Path):  # A042
    (p / "cells").mkdir(parents=True)
    (p / "cells" / "important.json").write_text('{"mine": 1}')


def _bad_meta(p: Path):  # A043
    p.mkdir()
    (p / "zarr.json").write_text("{not json")


def _record_named_dir(p: Path):  # looks like accsim's own record, still no marker
    (p / "cells").mkdir(parents=True)
    (p / "cells" / "0123456789abcdef.json").write_text('{"cell_id": "0123456789abcdef"}')


FOREIGN = {"zarr-v2": _zarr_v2_user_store, "cells-only": _cells_only,
           "bad-zarr-json": _bad_meta, "record-lookalike": _record_named_dir}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("what", list(FOREIGN))
@pytest.mark.parametrize("kind", ["run", "verify", "sweep"])
def test_foreign_directory_is_never_replaced_A039_A040_A041_A042_A043(tmp_path, kind, what,
                                                                      force):
    out = tmp_path / "user.zarr"
    FOREIGN[what](out)
    before = tree(out)
    r = _command(kind, tmp_path, out, *(["--force"] if force else []))
    assert r.exit_code == 2, r.output
    assert "accsim never replaces it" in r.output and outputs.MARKER in r.output
    assert tree(out) == before


@pytest.mark.parametrize("kind", ["run", "verify", "sweep"])
def test_own_output_carries_the_marker_and_is_replaced(tmp_path, kind):
    out = tmp_path / "o.zarr"
    assert _command(kind, tmp_path, out).exit_code == 0
    assert outputs.read_marker(out) == kind
    assert outputs.inspect(out).state == "accsim"
    import warnings

    import xarray as xr

    with warnings.catch_warnings():  # zarr sees the marker as an empty group (a sweep
        warnings.simplefilter("error")  # store's cells/ is another matter: consolidated)
        xr.open_zarr(out, consolidated=kind == "sweep").load()
    assert _command(kind, tmp_path, out, "--force").exit_code == 0


def test_sweep_force_refuses_a_user_file_inside_its_store_A044(tmp_path):
    cfg = _sweep_cfg(tmp_path)
    store = tmp_path / "S.zarr"
    assert _command("sweep", tmp_path, store).exit_code == 0
    note = store / "cells" / "my_notes.json"
    note.write_text('{"notes": "mine"}')
    for extra in ([], ["--force"]):
        r = cli("sweep", cfg, "--out", store, "--cell-fn", DOUBLE, "--no-progress", *extra)
        assert r.exit_code == 2 and "cells/my_notes.json" in r.output, r.output
        assert note.read_text() == '{"notes": "mine"}'


def test_verify_plot_never_replaces_a_user_png_A033(tmp_path):
    out = tmp_path / "v.zarr"
    png = tmp_path / "v.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nuser picture")
    args = ["verify", "-m", "fp16-recursive-rne", "-o", out, "--n", "4", "--kappa", "1",
            "--samples", "1"]
    r = cli(*args)
    assert r.exit_code == 2 and "v.png" in r.output, r.output
    assert png.read_bytes() == b"\x89PNG\r\n\x1a\nuser picture" and not out.exists()
    png.unlink()
    assert cli(*args).exit_code == 0 and outputs.png_kind(png) == "verify"
    assert cli(*args, "--force").exit_code == 0  # its own earlier plot is replaced


def test_run_plots_never_replace_a_user_image_folder_A035(tmp_path):
    out = tmp_path / "res.zarr"
    img = tmp_path / "res_img"
    img.mkdir()
    (img / "accuracy_vs_cost.png").write_bytes(b"mine")
    (img / "error_vs_condition.png").write_bytes(b"mine too")
    before = tree(img)
    r = cli("run", _run_cfg(tmp_path), "--out", out, "--plots")
    assert r.exit_code == 2 and "res_img" in r.output, r.output
    assert tree(img) == before and not out.exists()
    shutil.rmtree(img)
    assert cli("run", _run_cfg(tmp_path), "--out", out, "--plots").exit_code == 0
    assert outputs.read_marker(img) == "run-plots"
    names = sorted(p.name for p in img.iterdir())
    assert outputs.MARKER in names and any(n.endswith(".png") for n in names)
    assert cli("run", _run_cfg(tmp_path), "--out", out, "--plots").exit_code == 0


def _sweep_store(tmp_path, name="s1", text=None):
    store = tmp_path / f"{name}.zarr"
    r = cli("sweep", _sweep_cfg(tmp_path, name, text), "--out", store, "--cell-fn", DOUBLE,
            "--no-progress")
    assert r.exit_code == 0, r.output
    return store


def test_plot_never_replaces_a_user_png_A036(tmp_path):
    store = _sweep_store(tmp_path)
    png = store.with_suffix(".png")
    png.write_bytes(b"user picture")
    r = cli("plot", store)
    assert r.exit_code == 2 and "not an accsim plot" in r.output, r.output
    assert png.read_bytes() == b"user picture"
    png.unlink()
    assert cli("plot", store).exit_code == 0 and outputs.png_kind(png) == "plot"
    assert cli("plot", store).exit_code == 0  # its own earlier picture is replaced


def test_plot_pareto_on_a_store_without_the_control_axis_B404(tmp_path):
    store = _sweep_store(tmp_path)
    r = cli("plot", store, "--pareto", "-o", tmp_path / "p404")
    assert r.exit_code == 2 and "strategy_kind" in r.output.replace("\n", " "), r.output
    assert not (tmp_path / "p404").exists()


@pytest.mark.parametrize("what", ["files", "dir-nc", "symlink"])
def test_minilm_never_replaces_user_files_A037_A038(tmp_path, what):
    stem = tmp_path / "mini" / "results"
    stem.parent.mkdir()
    if what == "files":
        for suf in (".nc", ".json"):
            stem.with_name("results" + suf).write_text("user data " + suf)
    elif what == "dir-nc":
        stem.with_name("results.nc").mkdir()
        (stem.with_name("results.nc") / "keep.txt").write_text("mine")
    else:
        (tmp_path / "victim").write_text("victim")
        stem.with_name("results.json").symlink_to(tmp_path / "victim")
    before = {p.name: (p.read_bytes() if p.is_file() else None)
              for p in stem.parent.rglob("*")}
    r = cli("minilm", _minilm_cfg(tmp_path), "-o", stem)
    assert r.exit_code == 2, r.output
    assert "never replaces" in r.output or "is a directory" in r.output
    assert {p.name: (p.read_bytes() if p.is_file() else None)
            for p in stem.parent.rglob("*")} == before
    assert (tmp_path / "victim").read_text() == "victim" if what == "symlink" else True


# ============================================================ 2. lock files: no symlinks
@pytest.mark.parametrize("kind", ["run", "verify", "sweep", "plot", "minilm"])
def test_a_lock_file_symlink_is_never_followed_A045(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    if kind == "plot":
        store = _sweep_store(tmp_path)
        target = store.with_suffix(".png")
        (tmp_path / f".{target.name}.lock").symlink_to(victim)
        r = cli("plot", store)
    elif kind == "minilm":
        (tmp_path / ".m.lock").symlink_to(victim)
        r = cli("minilm", _minilm_cfg(tmp_path), "-o", tmp_path / "m")
    else:
        out = tmp_path / "o.zarr"
        (tmp_path / ".o.zarr.lock").symlink_to(victim)
        r = _command(kind, tmp_path, out)
    assert r.exit_code == 2 and "symbolic link" in r.output, r.output
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("what", ["symlink", "directory"])
@pytest.mark.parametrize("kind", ["run", "verify", "sweep"])
def test_a_planted_unit_manifest_is_never_followed(tmp_path, kind, what):
    # the manifest of a run/verify unit (.OUT.accsim.json): a symbolic link or a
    # directory planted there is refused before any work, its target untouched
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    m = tmp_path / ".o.zarr.accsim.json"
    if what == "symlink":
        m.symlink_to(victim)
    else:
        m.mkdir()
        (m / "mine.txt").write_text("mine")
    r = _command(kind, tmp_path, tmp_path / "o.zarr")
    assert r.exit_code == 2 and "not a regular file" in r.output, r.output
    assert victim.read_text() == "precious" and not (tmp_path / "o.zarr").exists()
    assert m.is_symlink() if what == "symlink" else (m / "mine.txt").read_text() == "mine"


MANIFESTS = {
    "garbage": lambda man: "{not json",
    "a-list": lambda man: "[1]",
    "previous-not-a-table": lambda man: json.dumps({**man, "state": "publishing",
                                                    "previous": [1, 2]}),
    "previous-escaping": lambda man: json.dumps({**man, "state": "publishing", "previous": {
        "o.zarr": 5, "../victim.txt": {"sha": None, "aside": None},
        "victim.txt": {"sha": "0" * 64, "aside": "../victim.txt",
                       "staged": "../../victim.txt"}}}),
}


@pytest.mark.parametrize("how", list(MANIFESTS))
@pytest.mark.parametrize("kind", ["run", "verify"])
def test_a_malformed_unit_manifest_is_no_traceback_and_moves_nothing(tmp_path, kind, how):
    # the next command reads the manifest to put back a unit killed mid-publish: one it
    # did not write (or that names paths outside the output's directory) moves nothing
    out = tmp_path / "o.zarr"
    assert _command(kind, tmp_path, out).exit_code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    m = tmp_path / ".o.zarr.accsim.json"
    m.write_text(MANIFESTS[how](json.loads(m.read_text())))
    r = _command(kind, tmp_path, out)
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious"
    from accsim.run.datasets import load

    assert load(out).attrs["publish_id"] == json.loads(m.read_text())["id"]


def test_lock_file_is_created_exclusively_and_reused_after_a_kill(tmp_path):
    out = tmp_path / "x.zarr"
    stale = tmp_path / ".x.zarr.lock"
    stale.write_text("12345\n")  # left by a killed run: a regular file, unlocked
    with OutputLock(out):
        assert stale.read_text() == f"{os.getpid()}\n"
        with pytest.raises(outputs.OutputBusy):
            OutputLock(out).__enter__()
    assert not stale.exists()
    fifo = tmp_path / ".y.zarr.lock"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        OutputLock(tmp_path / "y.zarr").__enter__()


def test_minilm_second_writer_is_told_the_stem_is_busy_A170(tmp_path):
    stem = tmp_path / "mconc"
    with OutputLock(stem, "--out"):
        r = cli("minilm", _minilm_cfg(tmp_path), "-o", stem)
    assert r.exit_code == 3 and "busy" in r.output, r.output
    assert list(tmp_path.glob("mconc*")) == []


# ================================================ 3. multi-file outputs: one unit
def _stage(tmp_path, tag):
    d = tmp_path / f"stage-{tag}"
    d.mkdir()
    files = {}
    for suf in (".nc", ".json"):
        files[suf] = d / f"r{suf}"
        files[suf].write_text(f"{tag} {suf}")
    return files


def test_fileset_killed_between_renames_is_detected_and_repaired_A155(tmp_path,
                                                                     monkeypatch):
    stem = tmp_path / "res"
    outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "old"))
    assert set(outputs.read_fileset(stem, "minilm")) == {"res.nc", "res.json"}
    real = os.replace
    calls = []

    def killed(src, dst):  # the process dies right after the new .nc is renamed in
        calls.append(dst)
        if str(dst).endswith("res.json"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "new"))
    monkeypatch.setattr(outputs.os, "replace", real)
    assert stem.with_suffix(".nc").read_text() == "new .nc"  # mixed on disk ...
    assert stem.with_suffix(".json").read_text() == "old .json"
    with pytest.raises(ValueError, match="incomplete"):  # ... and readers are told
        outputs.read_fileset(stem, "minilm")
    outputs.check_fileset(stem, "minilm", (".nc", ".json"), option="--out")  # still ours
    outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "again"))
    got = outputs.read_fileset(stem, "minilm")
    assert got["res.json"].read_text() == "again .json"
    stem.with_suffix(".json").write_text("edited by hand")
    with pytest.raises(ValueError, match="does not match"):
        outputs.read_fileset(stem, "minilm")
    with pytest.raises(ValueError, match="never replaces"):
        outputs.check_fileset(stem, "minilm", (".nc", ".json"), option="--out")


def test_fileset_on_a_full_disk_keeps_the_old_set_A188_A189(tmp_path, monkeypatch):
    stem = tmp_path / "m"
    outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "old"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.shutil, "copyfileobj", full)
    with pytest.raises(OSError):
        outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "new"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@needs_minilm
def test_minilm_end_to_end_rules_A037_A188(tmp_path):
    cfg = _minilm_cfg(tmp_path, out="out/res", plots="true")
    r = cli("minilm", cfg)
    assert r.exit_code == 0, r.output
    stem = tmp_path / "out" / "res"
    got = outputs.read_fileset(stem, "minilm")
    assert set(got) == {"res.nc", "res.json", "res.png"}
    assert cli("minilm", cfg).exit_code == 0  # its own output: replaced
    # a full disk (a 1 MiB tmpfs; root only): exit 1, a clear error, old output intact
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        return
    try:
        (mnt / "filler").write_bytes(b"\0" * 60_000)
        r = cli("minilm", cfg, "-o", mnt / "m")
        assert r.exit_code == 1 and "cannot write" in r.output, r.output
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_sweep_rerun_detects_a_deleted_chunk_A224(tmp_path):
    store = _sweep_store(tmp_path)
    ref = json.loads((store / "zarr.json").read_text())["attributes"]
    chunks = [p for p in (store / "accuracy").rglob("*") if p.is_file()
              and p.name != "zarr.json"]
    for c in chunks:
        c.unlink()
    r = cli("sweep", _sweep_cfg(tmp_path), "--out", store, "--cell-fn", DOUBLE,
            "--no-progress")
    assert r.exit_code == 0 and "disagrees with the cell records" in r.output, r.output
    from accsim.batch import open_results

    ds = open_results(store)
    assert np.isfinite(ds["accuracy"].values).all() and ds.attrs["complete"] == 1
    assert ds.attrs["n_ok"] == ref["n_ok"]


# ================================================ 4. unwritable and overlong paths
@pytest.mark.parametrize("kind", ["run", "verify", "sweep", "graph"])
@pytest.mark.parametrize("where", ["parent-is-file", "too-long", "name-too-long"])
def test_unusable_output_paths_are_clear_errors_E012(tmp_path, kind, where):
    if where == "parent-is-file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "o.zarr"
    elif where == "too-long":
        out = tmp_path.joinpath(*["d" * 200] * 25) / "o.zarr"
    else:
        out = tmp_path / ("o" * 300 + ".zarr")
    r = _command(kind, tmp_path, out)
    assert r.exit_code == 2, r.output
    assert "error" in r.output.lower()


@pytest.mark.parametrize("stem, case", [
    ("PARENT_FILE/m", "B334"), ("/proc/accsim-test/m", "B331"), ("m" * 300, "E012"),
    ("/proc/m", "proc")], ids=["B334", "B331", "E012", "proc"])
def test_minilm_unusable_output_B331_B334_E012(tmp_path, stem, case):
    (tmp_path / "PARENT_FILE").write_text("x")
    if stem.startswith("/"):
        cfg = _minilm_cfg(tmp_path)
        cfg.write_text(cfg.read_text().replace(f'output = "{tmp_path}/res"',
                                               f'output = "{stem}"'))
        r = cli("minilm", cfg)
    else:
        r = cli("minilm", _minilm_cfg(tmp_path), "-o", tmp_path / stem)
    assert r.exit_code == 2, r.output


# ======================================================= 5. the validation layer
DEEP_ARRAY = "x = " + "[" * 3000 + "]" * 3000 + "\n"
DEEP_TABLE = "[" + ".".join(["a"] * 200) + "]\nb = 1\n"


def _deep_configs(tmp_path, deep):
    return {
        "run": ("run", _run_cfg(tmp_path, body=deep + RUN), "--no-plots"),
        "sweep": ("sweep", _sweep_cfg(tmp_path, text=deep + SWEEP.format(name="s")),
                  "--cell-fn", DOUBLE, "--no-progress"),
        "minilm": ("minilm", _minilm_cfg(tmp_path, extra=""),),
        "graph": ("run", _graph(tmp_path, text=deep + graph_text())),
    }


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_TABLE], ids=["array", "table"])
@pytest.mark.parametrize("kind, case", [("run", "E015"), ("sweep", "E016"),
                                        ("minilm", "E017"), ("graph", "E018")])
def test_deeply_nested_toml_is_a_clear_error_E015_E018(tmp_path, kind, case, deep):
    args = _deep_configs(tmp_path, deep)[kind]
    if kind == "minilm":
        args[1].write_text(deep + args[1].read_text())
    r = cli(*args[:2], "--out", tmp_path / "o.zarr" if kind != "minilm" else tmp_path / "o",
            *args[2:])
    assert r.exit_code == 2, r.output
    assert "nested" in r.output and "levels" in r.output, r.output


RUN_BAD = [
    ("B027", "[[strategies]]\nkind = 'adaptive'\nlow = 'h16'\nhigh = 'h32'\ntau = true\n",
     r"strategies\[1\]\.tau: must be a number, not a boolean"),
    ("guard-str", "[[strategies]]\nkind = 'adaptive'\nlow = 'h16'\nhigh = 'h32'\n"
     "tau = 1.0\nguard = 'yes'\n", r"strategies\[1\]\.guard: must be true or false"),
    ("tau-str", "[[strategies]]\nkind = 'adaptive'\nlow = 'h16'\nhigh = 'h32'\n"
     "tau = '1.0'\n", r"strategies\[1\]\.tau: must be a number, not a string"),
    ("levels-empty", "[[strategies]]\nkind = 'multilevel'\nlevels = []\ntau = 1.0\n",
     r"strategies\[1\]\.levels: must not be an empty list"),
    ("E004", "", r"run\.bootstrap: must be in \[100, 100000\]"),
]


@pytest.mark.parametrize("case, extra, match", RUN_BAD, ids=[c[0] for c in RUN_BAD])
def test_run_config_rules_B027_E004(tmp_path, case, extra, match):
    body = RUN.replace("bootstrap = 100", "bootstrap = 1000000000") if case == "E004" \
        else RUN
    out = tmp_path / "o.zarr"
    r = cli("run", _run_cfg(tmp_path, "\n" + extra, body=body), "--out", out, "--no-plots")
    assert r.exit_code == 2, r.output
    import re

    assert re.search(r"r\.toml:\d+: " + match, r.output), r.output
    assert not out.exists()


SWEEP_BAD = [
    ("B113", ("low = \"rec\"", "low = \"rec\"\nstrategy = \"adaptive\"\nhigh = \"rec\"\n"
                                "tau = true"), "tau: must be a number, not a boolean"),
    ("guard-str", ("low = \"rec\"", "low = \"rec\"\nguard = \"yes\""),
     "guard: must be true or false"),
    ("B137", ("low = \"rec\"", "low = \"rec\"\nstrategy = []"), "strategy: must not be "
     "an empty list"),
    ("B138", ("low = \"rec\"", "low = []"), "low: must not be an empty list"),
    ("B139", ("network = \"mlp-relu\"", "network = []"), "network: must not be an empty"),
    ("seed-2**64", ("seed = [0, 1]", f"seed = [0, {2**64}]"), "in [0, 2**64)"),
    ("master-seed-bool", ("seed = 3", "seed = true"), "must be a number, not a boolean"),
    ("E007", ("name = \"s\"", "name = \"" + "n" * 100_000 + "\""), "the limit is 256"),
    ("template-empty", ('emax = 15}', 'emax = 15}\nmode = []'),
     "mode: must not be an empty list"),
    ("long-key", ("[models.rec]", "[models." + "m" * 100_000 + "]"),
     "a key of 100000 characters"),
    ("B131", ("low = \"rec\"", "strategy = \"multilevel\"\ntau = 1.0\n"
              "levels = [[\"*\", \"*\", \"*\", \"*\"]]"), "expand to"),
]


@pytest.mark.parametrize("case, edit, match", SWEEP_BAD, ids=[c[0] for c in SWEEP_BAD])
def test_sweep_config_rules_B113_B131_B137_B138_B139_E007(tmp_path, case, edit, match):
    text = SWEEP.format(name="s").replace(*edit)
    store = tmp_path / "o.zarr"
    r = cli("sweep", _sweep_cfg(tmp_path, "s", text), "--out", store, "--cell-fn",
            DOUBLE, "--no-progress")
    # messages are soft-wrapped to the terminal at a space; where depends on the path
    assert r.exit_code == 2 and match in " ".join(r.output.split()), r.output
    assert "s.toml:" in r.output
    assert not store.exists()


@pytest.mark.parametrize("seed, case", [(2**63, "B174"), (2**64 - 1, "B171")])
@pytest.mark.parametrize("where", ["grid", "cells"])
def test_sweep_seeds_up_to_2_64_are_published_B171_B174_B175(tmp_path, seed, case, where):
    if where == "grid":
        text = SWEEP.format(name="s").replace("seed = [0, 1]", f"seed = [{seed}, 0]")
    else:
        text = SWEEP.format(name="s").split("[[grid]]")[0] + (
            f"[[cells]]\nnetwork = \"mlp-relu\"\nlow = \"rec\"\nseed = {seed}\n")
    store = _sweep_store(tmp_path, "s", text)
    from accsim.batch import open_results

    ds = open_results(store)
    assert ds.attrs["complete"] == 1
    assert seed in [int(v) for v in ds["seed"].values]


GRAPH_BAD = [
    ("B205", ("kernel = 3\npadding = 1", "padding = 1"), r"layers\[0\]\.kernel: required"),
    ("B206", ("out_channels = 2\n", ""), r"layers\[0\]\.out_channels: required"),
    ("B207", ("out_features = 3\n", ""), r"layers\[3\]\.out_features: required"),
    ("B208", ("kernel = 3\n", "kernel = 3\ngroups = 0\n"), r"layers\[0\]\.groups: must be "
     "an integer >= 1"),
    ("B209", ("kernel = 3\n", "kernel = 3\nstride = 0\n"), r"layers\[0\]\.stride: must be"),
    ("B215", ("name = \"f\"\n", "name = \"f\"\ninputs = 5\n"), r"layers\[2\]\.inputs: must "
     "be a non-empty list"),
    ("B241", ('type = "avgpool2d"\nname = "pool"\nkernel = 2',
              'type = "maxpool2d"\nname = "pool"\nkernel = 0'),
     r"layers\[1\]\.kernel: must be"),
    ("B246", ("out_features = 3\n", "out_features = 3\nbias = \"yes\"\n"),
     r"layers\[3\]\.bias: must be true or false"),
    ("padding-neg", ("padding = 1", "padding = -1"), r"layers\[0\]\.padding: must be"),
    ("kernel-str", ("kernel = 3\n", "kernel = \"x\"\n"), r"layers\[0\]\.kernel: must be"),
    ("kernel-3d", ("kernel = 3\n", "kernel = [3, 3, 3]\n"), r"layers\[0\]\.kernel: must"),
    ("shape-neg", ("input_shape = [1, 6, 6]", "input_shape = [1, -6, 6]"),
     r"network\.input_shape\[1\]: must be an integer >= 1"),
    ("std-empty", ("file = \"inputs.npz\"", "file = \"inputs.npz\"\nstd = []"),
     r"inputs\.std: must not be an empty list"),
    ("B224", ("seed = 0", f"seed = {2**64}"), r"run\.seed: a seed must be an integer in"),
    ("B225", ("seed = 0", f"seed = {2**64 + 5}"), r"run\.seed: a seed must be an integer"),
    ("B227", ("seed = 0", "seed = true"), r"run\.seed: must be a number, not a boolean"),
]


@pytest.mark.parametrize("case, edit, match", GRAPH_BAD, ids=[c[0] for c in GRAPH_BAD])
def test_graph_config_rules_name_file_line_key(tmp_path, case, edit, match):
    text = graph_text()
    assert edit[0] in text
    p = _graph(tmp_path, text.replace(edit[0], edit[1], 1))
    out = tmp_path / "o.zarr"
    r = cli("run", p, "--out", out)
    assert r.exit_code == 2, r.output
    import re

    assert re.search(r"g\.toml:\d+: (network\.)?" + match, r.output), r.output
    assert not out.exists()


def test_graph_seed_rule_B250(tmp_path):
    """Seeds >= 2**64 are refused instead of wrapping onto seed mod 2**64 (B250)."""
    from accsim.graph.config import load_graph_config

    text = graph_text()
    p = _graph(tmp_path, text.replace("seed = 0", f"seed = {2**64 - 1}"))
    assert load_graph_config(p).run.seed == 2**64 - 1
    p.write_text(text.replace("seed = 0", f"seed = {2**64 + 5}"))
    with pytest.raises(ValueError, match=r"2\*\*64"):
        load_graph_config(p)


@pytest.mark.parametrize("case, x, y, match", [
    ("C075", np.zeros((0, 1, 6, 6)), np.zeros(0, np.int64), "0 inputs"),
    ("C076", None, np.array([0, 1, 42, 2, 0]), "label 42 of input 2"),
    ("C077", None, np.array([0, -1, 1, 2, 0]), "label -1 of input 1"),
    ("no-labels", None, None, "no labels"),
], ids=["C075", "C076", "C077", "no-labels"])
def test_inputs_need_labels_within_the_classes_C075_C077(tmp_path, case, x, y, match):
    p = _graph(tmp_path, x=x, y=y)
    r = cli("run", p, "--out", tmp_path / "o.zarr")
    assert r.exit_code == 2 and match in r.output, r.output


MINILM_BAD = [
    ("B305", ("seeds = [0]", "seeds = []"), r"run\.seeds: must not be an empty list"),
    ("B306", ("seeds = [0]", "seeds = [-1]"), r"run\.seeds\[0\]: a seed must be"),
    ("B307", ("seeds = [0]", f"seeds = [{2**64}]"), r"run\.seeds\[0\]: a seed must be"),
    ("seed-bool", ("seeds = [0]", "seeds = [true]"), r"run\.seeds\[0\]: must be a number"),
    ("plots-str", ("plots = false", "plots = \"no\""), r"run\.plots: must be true or false"),
    ("B311", ("seeds = [0]", "seeds = [0]\nact_format = \"bogus\""),
     r"run\.act_format: unknown format 'bogus'"),
    ("B324", ("", "\n[[strategies]]\nname = \"u\"\ndefault = \"fp16acc\"\n"),
     r"strategies\[1\]\.name: duplicate strategy name 'u'"),
]


@pytest.mark.parametrize("case, edit, match", MINILM_BAD, ids=[c[0] for c in MINILM_BAD])
def test_minilm_config_rules_B305_B324(tmp_path, case, edit, match):
    p = _minilm_cfg(tmp_path)
    text = p.read_text()
    p.write_text(text + edit[1] if not edit[0] else text.replace(*edit, 1))
    r = cli("minilm", p, "-o", tmp_path / "o")
    assert r.exit_code == 2, r.output
    import re

    assert re.search(r"m\.toml:\d+: " + match, r.output), r.output
    assert list(tmp_path.glob("o*")) == []


# ============================================================== 6. the seed rule
@pytest.mark.parametrize("model, case", [("fp16-recursive-rne", "A193"),
                                         ("bf16-sr-accumulator", "A194")])
def test_verify_accepts_the_largest_seed_A193_A194(tmp_path, model, case):
    out = tmp_path / "v.nc"
    r = cli("verify", "-m", model, "-o", out, "--n", "16", "--kappa", "1", "--samples",
            "2", "--seed", str(2**64 - 1), "--no-plot")
    assert r.exit_code == 0, r.output
    r = cli("verify", "-m", model, "-o", tmp_path / "w.nc", "--seed", str(2**64),
            "--no-plot")
    assert r.exit_code == 2 and "2**64" in r.output


def test_derived_seeds_never_overflow_and_keep_small_seeds_streams():
    from accsim.numbers.seeds import SEED_LIMIT, derive

    for s in (0, 5, 2**63, 2**64 - 2):  # no overflow: the streams of before
        assert derive(s, 0) == s and derive(s, 1) == s + 1
    top = [derive(2**64 - 1, i) for i in range(100)]
    assert top[0] == 2**64 - 1 and all(0 <= t < SEED_LIMIT for t in top)
    assert len(set(top)) == 100
    with pytest.raises(ValueError):
        derive(2**64, 0)


@pytest.mark.parametrize("bad", [True, 10.0, "10", None, np.bool_(True)])
@pytest.mark.parametrize("field", ["exponent_bits", "mantissa_bits", "bias"])
def test_float_format_refuses_non_integer_widths_D049(field, bad):
    from accsim.numbers.formats import FloatFormat

    kw = {"exponent_bits": 5, "mantissa_bits": 10, "bias": 15}
    kw[field] = bad
    with pytest.raises(ValueError, match=field):
        FloatFormat("x", **kw)
    with pytest.raises(ValueError, match="subnormals"):
        FloatFormat("x", 5, 10, 15, subnormals="yes")
    assert FloatFormat("x", np.int64(5), 10, 15).p == 11


# ================================================================ 7. importers
def _pth(tmp_path, name, tensors):
    torch = pytest.importorskip("torch")
    p = tmp_path / name
    torch.save(tensors, p)
    return p


def _tiny_tensors(torch, dtype):
    rng = np.random.default_rng(0)
    return {"c.weight": torch.tensor(rng.standard_normal((2, 1, 3, 3))).to(dtype),
            "c.bias": torch.tensor(rng.standard_normal(2)).to(dtype),
            "fc.weight": torch.tensor(rng.standard_normal((3, 18))).to(dtype),
            "fc.bias": torch.tensor(rng.standard_normal(3)).to(dtype)}


@pytest.mark.parametrize("dtype, case", [("bfloat16", "C027"), ("float16", "half")])
def test_half_precision_checkpoints_load_exactly_C027(tmp_path, dtype, case):
    torch = pytest.importorskip("torch")
    from accsim.graph.importers import load_state_dict

    sd = _tiny_tensors(torch, getattr(torch, dtype))
    p = _pth(tmp_path, "half.pth", sd)
    got = load_state_dict(p)
    for k, v in sd.items():
        assert got[k].dtype == np.float32
        # exact: float64 of each stored half value equals float64 of the loaded value
        np.testing.assert_array_equal(got[k].astype(np.float64),
                                      v.to(torch.float64).numpy())
    g = _graph(tmp_path, graph_text("pth", "half.pth"))
    r = cli("run", g, "--out", tmp_path / "o.zarr")
    assert r.exit_code == 0, r.output


def _sparse(torch):
    sd = _tiny_tensors(torch, torch.float32)
    sd["fc.weight"] = sd["fc.weight"].to_sparse()
    return sd


def _quant(torch):
    sd = _tiny_tensors(torch, torch.float32)
    sd["fc.weight"] = torch.quantize_per_tensor(sd["fc.weight"], 0.1, 0, torch.qint8)
    return sd


def _meta(torch):
    sd = _tiny_tensors(torch, torch.float32)
    sd["fc.weight"] = torch.empty((3, 18), device="meta")
    return sd


@pytest.mark.parametrize("make, case, why", [(_sparse, "C024", "sparse"),
                                             (_quant, "C025", "quantised"),
                                             (_meta, "C026", "meta device")],
                         ids=["C024", "C025", "C026"])
def test_unusual_tensors_are_refused_naming_the_tensor_C024_C026(tmp_path, make, case, why):
    torch = pytest.importorskip("torch")
    try:
        _pth(tmp_path, "w.pth", make(torch))
    except (RuntimeError, NotImplementedError) as exc:  # this torch cannot save it
        pytest.skip(f"torch cannot save the tensor: {exc}")
    g = _graph(tmp_path, graph_text("pth", "w.pth"))
    _pth(tmp_path, "w.pth", make(torch))
    r = cli("run", g, "--out", tmp_path / "o.zarr")
    assert r.exit_code == 2, r.output
    if "cannot load the state dict" not in r.output:  # torch itself may refuse it
        assert "'fc.weight'" in r.output and why in r.output, r.output


def test_truncated_npz_is_a_clear_error_C042(tmp_path):
    g = _graph(tmp_path)
    data = (tmp_path / "sd.npz").read_bytes()
    (tmp_path / "sd.npz").write_bytes(data[: len(data) // 2])
    r = cli("run", g, "--out", tmp_path / "o.zarr")
    assert r.exit_code == 2 and "sd.npz" in r.output, r.output


def _keras(tmp_path, edit):
    import h5py

    layers = [{"class_name": "Conv2D", "config": {
        "name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "same", "batch_input_shape": [None, 6, 6, 1]}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 3}}]
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    raw = edit(cfg)
    p = tmp_path / "k.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = raw[1] if isinstance(raw, tuple) else json.dumps(cfg)
        f.create_group("model_weights")
    return p


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["config"].pop("layers"), "model_config.config.layers is missing"),
    (lambda c: c["config"]["layers"][1].pop("class_name"), r"layers\[1\]: class_name"),
    (lambda c: c["config"]["layers"][0]["config"].pop("kernel_size"),
     r"layers\[0\] \(Conv2D 'c'\): required key 'kernel_size'"),
    (lambda c: c["config"]["layers"][2]["config"].pop("units"), "required key 'units'"),
    (lambda c: ("raw", "{not json"), "'model_config' is not valid JSON"),
], ids=["C053", "C054", "C055", "dense-units", "non-json"])
def test_broken_keras_model_config_C053_C055(tmp_path, edit, match):
    from accsim.graph.importers import load_keras_h5

    with pytest.raises(ValueError, match=match):
        load_keras_h5(_keras(tmp_path, edit))


def test_a_store_written_before_the_marker_is_recognised_by_its_kind(tmp_path):
    """Legacy stores (explicit ``accsim_kind``, nothing foreign) stay resumable; the
    marker is added when they are next written. Without ``accsim_kind`` they are
    foreign (never guessed from what is absent)."""
    store = _sweep_store(tmp_path)
    shutil.rmtree(store / outputs.MARKER)
    assert outputs.inspect(store).state == "accsim"
    r = cli("sweep", _sweep_cfg(tmp_path), "--out", store, "--cell-fn", DOUBLE,
            "--no-progress")
    assert r.exit_code == 0 and outputs.read_marker(store) == "sweep", r.output
    shutil.rmtree(store / outputs.MARKER)
    meta = json.loads((store / "zarr.json").read_text())
    del meta["attributes"]["accsim_kind"]
    (store / "zarr.json").write_text(json.dumps(meta))
    assert outputs.inspect(store).state == "foreign"


def test_fileset_leftovers_are_its_own_only(tmp_path):
    stem = tmp_path / "res"
    outputs.publish_fileset(stem, "minilm", _stage(tmp_path, "a"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [
        ".res.accsim.json"]
    (tmp_path / ".res.accsim-set.k1ll3d.tmp").mkdir()
    (tmp_path / ".res.accsim.json.999.tmp").write_text("{")
    (tmp_path / ".res.zarr.l1v3.tmp").mkdir()  # another output's live temporary
    removed = outputs.clean_fileset_leftovers(stem)
    assert sorted(p.name for p in removed) == [".res.accsim-set.k1ll3d.tmp",
                                                ".res.accsim.json.999.tmp"]
    assert (tmp_path / ".res.zarr.l1v3.tmp").is_dir()


def test_keras_values_of_the_wrong_type_are_bad_input(tmp_path):
    def edit(c):
        c["config"]["layers"][0]["config"]["groups"] = [1]  # int([1]): TypeError

    _keras(tmp_path, edit)
    text = graph_text("h5", "k.h5")
    text = text[:text.index("[[network.layers]]")] + text[text.index("[inputs]"):]
    p = _graph(tmp_path, text.replace("input_shape = [1, 6, 6]\n", ""))
    r = cli("run", p, "--out", tmp_path / "o.zarr")
    assert r.exit_code == 2 and "k.h5: malformed Keras model_config" in r.output, r.output


@needs_minilm
def test_minilm_checkpoints_are_published_as_sets(tmp_path):
    """``[run] checkpoint``: a run stopped in its second batch leaves the first batch's
    results, published as a complete set."""
    from accsim.cli.minilm import minilm_command

    cfg = _minilm_cfg(tmp_path, out="ck")
    cfg.write_text(cfg.read_text().replace("sentences = 3\nbatch = 3",
                                           "sentences = 6\nbatch = 3\ncheckpoint = true"))

    class Stop:
        def print(self, msg, **_):
            if str(msg).lstrip().startswith("6/6"):
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        minilm_command(cfg, console=Stop())
    got = outputs.read_fileset(tmp_path / "ck", "minilm")
    assert json.loads(got["ck.json"].read_text())["sentences"] == 3


# ====================================== 1b. readers while `sweep --force` rewrites a store
# A plain ``xr.open_zarr(STORE)`` reads the consolidated metadata (attributes included)
# when it opens the store and every chunk later, each by its path (zarr's LocalStore
# resolves nothing when it opens): a rewrite in between gives it old attributes and new
# data. No layout of the directory can prevent that for every reader (a chunk's path is
# fixed by the variable's name, so some later version must write it again). accsim's
# readers (``open_results``, ``accsim.open_dataset``) compare the published dataset's
# ``publish_id`` before and after the read and read again on a change: they must never
# return a mixture. The two versions differ in attributes and in every data value.
def _version(ds, refs) -> str:
    """'A' or 'B' when ``ds`` is entirely version A or B of ``refs``, else 'mixed'."""
    by_attrs = [k for k, r in refs.items() if ds.attrs["sweep_name"] == r.attrs["sweep_name"]
                and ds.attrs["master_seed"] == r.attrs["master_seed"]]
    by_data = [k for k, r in refs.items() if all(
        np.array_equal(ds[v].values, r[v].values) for v in ("accuracy", "max_rel_error",
                                                            "cell_seed"))]
    return by_attrs[0] if by_attrs == by_data and len(by_attrs) == 1 else "mixed"


@pytest.fixture
def two_versions(tmp_path):
    from accsim.batch import load_config, open_results, run_sweep

    sweeps, refs = {}, {}
    for k, (name, seed) in {"A": ("s1", 3), "B": ("s2", 4)}.items():
        sweeps[k] = load_config(_sweep_cfg(tmp_path, name, SWEEP.format(name=name)
                                           .replace("seed = 3", f"seed = {seed}")))
        ref = tmp_path / f"ref{k}.zarr"
        assert run_sweep(sweeps[k], ref, cell_fn=DOUBLE, progress=False).ok
        refs[k] = open_results(ref)
    assert not np.array_equal(refs["A"]["accuracy"].values, refs["B"]["accuracy"].values)
    store = tmp_path / "S.zarr"
    assert run_sweep(sweeps["A"], store, cell_fn=DOUBLE, progress=False).ok

    def rewrite(k):
        assert run_sweep(sweeps[k], store, cell_fn=DOUBLE, progress=False, force=True).ok

    return store, refs, rewrite


def _readers():
    import accsim
    from accsim.batch import open_results

    return {"open_results": open_results, "open_dataset": accsim.open_dataset}


def test_a_rewrite_between_open_and_load_is_never_returned_mixed_A171(two_versions,
                                                                      monkeypatch):
    import xarray as xr

    store, refs, rewrite = two_versions
    # the hazard, made deterministic: a plain reader opened before a rewrite mixes
    lazy = xr.open_zarr(store)
    rewrite("B")
    assert _version(lazy.load(), refs) == "mixed"
    real = xr.open_zarr
    for name, read in _readers().items():
        for old, new in (("B", "A"), ("A", "B")):
            fired = []

            def open_then_rewrite(*a, _new=new, _fired=fired, **k):
                ds = real(*a, **k)
                if not _fired:  # once: the rewrite lands between open and load
                    _fired.append(1)
                    rewrite(_new)
                return ds

            monkeypatch.setattr(xr, "open_zarr", open_then_rewrite)
            got = read(store)
            monkeypatch.setattr(xr, "open_zarr", real)
            assert fired, name
            assert _version(got, refs) == new, (name, old, new)


@pytest.mark.slow
def test_readers_under_concurrent_force_rewrites_A171(two_versions, monkeypatch):
    import asyncio
    import threading

    import xarray as xr
    from zarr.storage import LocalStore

    store, refs, rewrite = two_versions
    real_get = LocalStore.get

    async def slow_get(self, *a, **k):  # every chunk read takes a while: reads overlap
        await asyncio.sleep(0.002)     # the rewrites often (the plain reader shows it)
        return await real_get(self, *a, **k)

    monkeypatch.setattr(LocalStore, "get", slow_get)

    def plain(p):
        with xr.open_zarr(p) as ds:
            return ds.load()

    readers = {**_readers(), "plain": plain}
    seen = {name: {"A": 0, "B": 0, "mixed": 0, "error": 0} for name in readers}
    stop = threading.Event()

    def loop(name):
        while not stop.is_set():
            try:
                v = _version(readers[name](store), refs)
            except Exception:  # noqa: BLE001 - counted
                v = "error"
            seen[name][v] += 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in readers]
    for t in threads:
        t.start()
    try:
        for k in range(12):
            rewrite("BA"[k % 2])
    finally:
        stop.set()
        for t in threads:
            t.join()
    for name in _readers():
        s = seen[name]
        assert s["mixed"] == 0 and s["error"] == 0 and s["A"] and s["B"], (name, seen)
    print(f"\nA171 stress, reads per reader: {seen}")
    # the stress did reach the window: the plain reader got mixed or failed reads
    assert seen["plain"]["mixed"] + seen["plain"]["error"] > 0, seen
