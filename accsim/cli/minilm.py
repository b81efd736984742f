"""``accsim minilm``: all-MiniLM-L6-v2 on simulated accumulators (accsim.transformer.minilm_run).

The output rules of the other commands apply (:mod:`accsim.run.outputs`): the
configuration and the output stem are checked before any work; ``STEM.nc``,
``STEM.json`` and ``STEM.png`` are replaced only when an earlier ``accsim minilm``
wrote them (the manifest ``.STEM.accsim.json`` lists them with their SHA-256); the stem
is locked for the run (exit code 3 when busy); the three files are staged in memory,
copied beside their destinations and published as one set, manifest last
(:func:`accsim.run.outputs.publish_fileset`); a full disk or an unwritable directory
is an error (exit code 1) that leaves the previous output as it was. With ``[run]
checkpoint = true`` the results written after each batch are published as they come
(at the next batch's first progress report, and on Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["check_minilm_config", "check_minilm_run", "is_minilm_config", "minilm",
           "minilm_command", "register"]

_SUFFIXES = (".nc", ".json", ".png")


def is_minilm_config(path) -> bool:
    """True if the TOML file is a MiniLM configuration (``accsim minilm``; ``accsim run``
    hands it over): no ``[network]`` table, no ``[run] network``, and strategies named
    by ``name`` without the ``kind`` of the other run configurations."""
    from accsim.run.validation import parse_toml

    try:
        data = parse_toml(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    run, strategies = data.get("run"), data.get("strategies")
    return ("network" not in data and isinstance(run, dict) and "network" not in run
            and isinstance(strategies, list) and bool(strategies)
            and all(isinstance(s, dict) and "kind" not in s and "name" in s
                    for s in strategies))


def check_minilm_config(path: Path) -> None:
    """``ValueError`` naming ``FILE:LINE: key`` and the rule for what the MiniLM loader
    would accept silently or crash on: the rules of :mod:`accsim.run.validation`
    (types, empty lists, seeds in [0, 2**64), depth), an unknown ``act_format``,
    strategies of the same name."""
    from accsim.run.tomlkeys import key_lines, where
    from accsim.run.validation import check_document, format_key, parse_toml
    from accsim.transformer.minilm_run import MiniLMConfig

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the configuration: {exc}") from None
    try:
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    lines = key_lines(text)

    def fail(key, rule):
        raise ValueError(f"{where(str(path), lines, format_key(key))}: {rule}")

    bad = check_document(MiniLMConfig, data)
    if bad:
        fail(*bad)
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    fmt = run.get("act_format")
    if isinstance(fmt, str) and fmt not in ("binary32", "binary64"):
        from accsim.numbers.formats import format as get_format

        try:
            get_format(fmt)
        except (ValueError, KeyError) as exc:
            fail(("run", "act_format"), f"unknown format {fmt!r} ({exc})")
    text_file = run.get("text_file")
    if isinstance(text_file, str):
        _check_text_file(text_file, run, fail)
    strategies = data.get("strategies")
    if isinstance(strategies, list):
        seen = {}
        for i, s in enumerate(strategies):
            name = s.get("name") if isinstance(s, dict) else None
            if not isinstance(name, str):
                continue  # pydantic names the problem
            if name in seen:
                fail(("strategies", i, "name"), f"duplicate strategy name {name!r} "
                     f"(also strategies[{seen[name]}]): give strategies distinct names")
            seen[name] = i


def _check_text_file(text_file: str, run: dict, fail) -> None:
    """``[run] text_file``: a UTF-8 text file, one sentence per line (blank lines are
    skipped, :func:`networks.sentences.read_sentences`), holding at least ``sentences``
    sentences when each line is one input (``min_tokens = 0``). Read before any work."""
    from networks.sentences import read_sentences

    if not Path(text_file).is_file():
        fail(("run", "text_file"), f"{text_file!r}: no such text file (a path relative "
             "to the working directory, or absolute)")
    try:
        sents = read_sentences(text_file)
    except UnicodeDecodeError as exc:
        fail(("run", "text_file"), f"{text_file!r} is not a UTF-8 text file ({exc.reason} "
             f"at byte {exc.start}); one sentence per line expected")
    except OSError as exc:
        fail(("run", "text_file"), f"cannot read {text_file!r}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(("run", "text_file"), f"{exc}; blank lines are skipped")
    n = run.get("sentences", 64)
    if run.get("min_tokens", 0) == 0 and isinstance(n, int) and len(sents) < n:
        fail(("run", "sentences"), f"{n} sentences asked for, but text_file {text_file!r} "
             f"holds {len(sents)} (one per non-blank line): set sentences <= {len(sents)}")


def _check_stem(stem: Path, option: str) -> Path:
    """``ValueError`` unless ``STEM.*`` can be written: a name, a parent that is (or will
    be created as) a writable directory, paths within the system's limits."""
    from accsim.run.datasets import check_writable
    from accsim.run.outputs import check_path_length

    if not stem.name or stem.name in (".", ".."):
        raise ValueError(f"{option} {str(stem)!r}: not a file name stem")
    check_path_length(stem.with_name(stem.name + ".json"), option)
    parent = stem.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{option} {str(stem)!r}: {str(parent)!r} is not a directory")
    try:
        check_writable(parent / stem.name)
    except ValueError as exc:
        raise ValueError(f"{option} {str(stem)!r}: {exc}") from None
    for suf in _SUFFIXES:
        p = stem.with_name(stem.name + suf)
        if p.is_dir() and not p.is_symlink():
            raise ValueError(f"{option} {str(stem)!r}: {str(p)!r} is a directory; accsim "
                             "never replaces it: choose another stem or remove it yourself")
    return stem


def _staging_dir() -> str:
    """A directory in memory when there is one (/dev/shm): the results are built there,
    then copied beside the destination with plain file I/O (a full disk is then an
    OSError, never a crash inside the HDF5 library). Staging directories of processes
    that no longer exist (killed runs) are removed first."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    for old in Path(base).glob("accsim-minilm-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and old.is_dir() \
                and not old.is_symlink() and old.stat().st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"accsim-minilm-{os.getpid()}-", dir=base)


def check_minilm_run(config: Path, out: str | None = None):
    """Check the configuration and the output stem before any work (nothing is written):
    ``(cfg, stem, option)``, or ``ValueError`` naming the problem (``accsim run
    --scheduler`` calls it before contacting the scheduler)."""
    from accsim.run.outputs import check_fileset
    from accsim.transformer.minilm_run import load_config

    check_minilm_config(config)
    cfg = load_config(config)
    option = "--out" if out else "run.output"
    stem = _check_stem(Path(out or cfg.run.output), option)
    check_fileset(stem, "minilm", _SUFFIXES, option=option)
    return cfg, stem, option


def minilm_command(config: Path, out: str | None = None, console=None,
                   client=None) -> dict:
    """Validate, run, publish; returns the results dict of
    :func:`accsim.transformer.minilm_run.run` with the final ``paths``. The table goes to
    stdout, messages to ``console`` (default: stderr, :mod:`accsim.cli.console`).
    ``client``: a dask.distributed client whose cluster runs the sentence batches
    (``accsim run --scheduler``; same bits as a local run)."""
    from rich.table import Table

    from accsim.cli.console import err_console, print_table
    from accsim.run.outputs import (
        OutputLock,
        check_fileset,
        clean_fileset_leftovers,
        publish_fileset,
    )
    from accsim.transformer.minilm_run import run

    console = console or err_console()
    cfg, stem, option = check_minilm_run(config, out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if client is not None:
        console.print(f"accsim minilm {config}: batches on {client.scheduler.address}",
                      highlight=False)

    published = {"at": None}

    def publish_checkpoint():
        """With ``[run] checkpoint``: publish the results written so far (the staged
        pair, when it changed), so a stopped run leaves the inputs done."""
        js = staged.with_name(staged.name + ".json")
        try:
            st = js.stat()
        except FileNotFoundError:
            return
        if published["at"] != (st.st_mtime_ns, st.st_size):
            publish_fileset(stem, "minilm", {
                ".nc": staged.with_name(staged.name + ".nc"), ".json": js})
            published["at"] = (st.st_mtime_ns, st.st_size)

    def progress(done, total, label, seed):
        console.print(f"  {done}/{total} sentences  {label} (seed {seed})", highlight=False)
        if getattr(cfg.run, "checkpoint", False):
            publish_checkpoint()

    with OutputLock(stem, option):
        check_fileset(stem, "minilm", _SUFFIXES, option=option)
        clean_fileset_leftovers(stem)
        stage = _staging_dir()
        try:
            staged = Path(stage) / stem.name
            try:
                res = run(cfg, progress=progress, out=str(staged), client=client)
            except KeyboardInterrupt:
                if getattr(cfg.run, "checkpoint", False):
                    publish_checkpoint()
                raise
            files = {".nc": staged.with_name(staged.name + ".nc"),
                     ".json": staged.with_name(staged.name + ".json")}
            if cfg.run.plots:
                from accsim.plots.minilm import plot_results

                files[".png"] = plot_results(res, staged.with_name(staged.name + ".png"))
            final = publish_fileset(stem, "minilm", files)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    res["paths"] = {suf.lstrip("."): str(p) for suf, p in final.items()}
    t = Table(title=f"MiniLM, {res['sentences']} sentences, {res['tokens']} tokens")
    cols = ["label", "seed", "emb_err_median", "cos_min", "spearman", "nn_agree",
            "kl_mean", "lin_recomputed", "scores_recomputed", "gbits_per_sentence",
            "seconds"]
    for c in cols:
        t.add_column(c)
    for r in res["rows"]:
        t.add_row(*[f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    print_table(t)
    for k, v in res["paths"].items():
        console.print(f"{k}: {v}", highlight=False)
    return res


def minilm(
    config: Annotated[Path, typer.Argument(help="MiniLM configuration (TOML, "
                                           "see docs/transformer.md).")],
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Output path stem (default: [run] output).")] = None,
) -> None:
    """Run the configured strategies on MiniLM and print the results table."""
    from accsim.cli.console import error
    from accsim.run.outputs import OutputBusy

    try:
        minilm_command(config, out)
    except OutputBusy as exc:
        error(str(exc))
        raise typer.Exit(3) from None
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:  # e.g. the disk filled up while publishing
        error(f"cannot write the results: {exc}; the previous output (if any) is "
              "unchanged")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("minilm")(minilm)
