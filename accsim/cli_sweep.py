"""``accsim sweep`` and ``accsim plot``: batch sweeps from TOML configs and their picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["plot", "register", "sweep"]


def sweep(
    config: Annotated[Path, typer.Argument(
        help="Sweep configuration (TOML, see docs/configs.md).")],
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a running dask scheduler, tcp://HOST:PORT "
        "(default: run locally).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Local worker processes (1: in-process).")] = 1,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Result store (default: [sweep] out, else "
        "results/NAME.zarr).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute finished cells.")] = False,
    cell_fn: Annotated[str | None, typer.Option(
        "--cell-fn", hidden=True, help="module:function replacing "
        "accsim.experiment.evaluate (testing).")] = None,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Run a sweep: every cell of CONFIG, skipping those already in the store."""
    from rich.console import Console

    from accsim.batch import ConfigError, load_config, run_sweep
    from accsim.batch.summary import failure_table, summary_table

    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    try:
        sw = load_config(config)
    except ConfigError as exc:
        console.print("[red]config error:[/]", end=" ")
        console.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None
    store = out or Path(sw.config.sweep.out or f"results/{sw.name}.zarr")
    where = f"scheduler {scheduler}" if scheduler else (
        f"{workers} local worker processes" if workers > 1 else "in-process")
    console.print(f"sweep [bold]{sw.name}[/]: {len(sw.cells)} cells, {where} -> {store}")
    try:
        res = run_sweep(sw, store, scheduler=scheduler, workers=workers, force=force,
                        cell_fn=cell_fn, progress=progress, console=console)
    except ValueError as exc:  # e.g. the cell function cannot be imported
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(summary_table(res.dataset))
    if res.failures:
        console.print(failure_table(res.failures))
    console.print(f"{res.ran} cell(s) run, {res.skipped} already done, "
                  f"{len(res.failures)} failed; {res.wall:.1f} s; store {store}")
    if res.interrupted:
        raise typer.Exit(130)
    if res.failures:
        raise typer.Exit(1)


def plot(
    store: Annotated[Path, typer.Argument(help="A sweep's result store.")],
    x: Annotated[str, typer.Option("--x", help="Variable on the x axis (a cost).")]
    = "bit_cost",
    y: Annotated[str, typer.Option("--y", help="Variable on the y axis (accuracy or an "
                                   "error).")] = "accuracy",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="PNG file (default: STORE with suffix .png).")] = None,
) -> None:
    """Draw the design space of a sweep: Y against X per model, Pareto front marked."""
    from rich.console import Console

    from accsim.plot_sweep import plot_store

    console = Console(stderr=True)
    try:
        path = plot_store(store, x=x, y=y, out=out)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {path}")


_SWEEP_EPILOG = (
    "Examples:" "\n\n"
    "accsim sweep configs/smoke_sweep.toml --workers 2 --out results/smoke.zarr" "\n\n"
    "accsim sweep configs/paper_sweep.toml --scheduler tcp://10.0.0.5:8786" "\n\n"
    "Finished cells are written at once: an interrupted sweep resumes where it stopped when "
    "rerun (--force recomputes everything). Configuration errors name FILE:LINE and the key "
    "(exit code 2); failed cells give exit code 1. Format: docs/configs.md."
)

_PLOT_EPILOG = (
    "Examples:" "\n\n"
    "accsim plot results/smoke.zarr" "\n\n"
    "accsim plot results/smoke.zarr --y max_rel_error --out smoke_error.png"
)


def register(app: typer.Typer) -> None:
    """Add the ``sweep`` and ``plot`` commands to the accsim app."""
    app.command("sweep", epilog=_SWEEP_EPILOG)(sweep)
    app.command("plot", epilog=_PLOT_EPILOG)(plot)
