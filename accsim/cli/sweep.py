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
    force: Annotated[bool, typer.Option(
        "--force", help="Recompute every cell into a fresh store swapped in at the end; "
        "also replaces the store of another sweep (never other files).")] = False,
    max_cells: Annotated[int, typer.Option(
        "--max-cells", min=1, help="Refuse sweeps of more cells (counted before "
        "expanding).")] = 100_000,
    connect_timeout: Annotated[float, typer.Option(
        "--connect-timeout", min=0.1, help="Seconds to wait for --scheduler.")] = 10.0,
    cell_fn: Annotated[str | None, typer.Option(
        "--cell-fn", hidden=True, help="module:function replacing "
        "accsim.run.experiment.evaluate (testing).")] = None,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show the progress bar (on a terminal "
        "only).")] = True,
) -> None:
    """Run a sweep: every cell of CONFIG, skipping those already in the store."""
    from accsim.batch import ConfigError, load_config, run_sweep
    from accsim.batch.summary import failure_table, summary_table
    from accsim.cli.console import detail, err_console, error, print_table, progress_enabled
    from accsim.run.outputs import OutputBusy

    console = err_console()  # messages and progress; the tables go to stdout

    def fail(msg: str, code: int):
        error(msg)
        raise typer.Exit(code)

    try:
        sw = load_config(config, max_cells=max_cells)
    except ConfigError as exc:
        error(str(exc), label="config error")
        raise typer.Exit(2) from None
    store = out or Path(sw.config.sweep.out or f"results/{sw.name}.zarr")
    option = "--out" if out else ("[sweep] out" if sw.config.sweep.out else "the default "
                                  "output")
    try:
        check_store_path(store)
    except ValueError as exc:
        fail(f"{option}: {exc}", 2)
    if scheduler and workers != 1:
        console.print(f"[yellow]note:[/] --workers {workers} is ignored with --scheduler "
                      "(the cluster's workers run the cells)")
    where = f"scheduler {scheduler}" if scheduler else (
        f"{workers} local worker processes" if workers > 1 else "in-process")
    console.print(f"sweep [bold]{sw.name}[/]: {len(sw.cells)} cells, {where} -> {store}")
    for cell in sw.cells:
        detail(f"  cell {cell.id}: {cell.coords}")
    try:
        res = run_sweep(sw, store, scheduler=scheduler, workers=workers, force=force,
                        cell_fn=cell_fn, progress=progress and progress_enabled(console),
                        console=console,
                        connect_timeout=connect_timeout)
    except OutputBusy as exc:
        fail(str(exc), 3)
    except ValueError as exc:  # e.g. the store may not be replaced
        fail(str(exc), 2)
    except OSError as exc:  # e.g. the disk filled up while writing
        fail(f"cannot write the store {str(store)!r}: {exc}; the previous store (if "
             "any) is unchanged", 1)
    for d in res.damage:
        console.print(f"[yellow]repaired:[/] {d}", highlight=False)
    print_table(summary_table(res.dataset))
    if res.failures:
        print_table(failure_table(res.failures))
    console.print(f"{res.ran} cell(s) run, {res.skipped} already done, "
                  f"{len(res.failures)} failed; {res.wall:.1f} s; store {store}")
    if res.interrupted:
        raise typer.Exit(130)
    if res.failures:
        raise typer.Exit(1)


def check_store_path(store: Path) -> Path:
    """``ValueError`` unless ``store`` can be a sweep store: a path ending in ``.zarr``
    or without extension (a sweep store is a zarr directory; ``x.nc`` would mislead)
    whose nearest existing ancestor is a writable
    directory. What may be at ``store`` itself is checked by
    :func:`accsim.run.outputs.check_replace`."""
    from accsim.run.datasets import check_writable
    from accsim.run.outputs import check_path_length

    check_path_length(store, "store path")
    if store.suffix.lower() not in (".zarr", ""):
        raise ValueError(f"a sweep store is a zarr directory: the path must end in .zarr "
                         f"(or have no extension), got {str(store)!r}")
    parent = store.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{str(parent)!r} is not a directory")
    check_writable(parent / store.name)
    return store


def plot(
    store: Annotated[Path, typer.Argument(help="A sweep's result store.")],
    x: Annotated[str, typer.Option("--x", help="Variable on the x axis (a cost).")]
    = "bit_cost",
    y: Annotated[str, typer.Option("--y", help="Variable on the y axis (accuracy or an "
                                   "error).")] = "accuracy",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="PNG file (default: STORE with suffix .png); with --pareto "
        "a directory (default: STORE_pareto next to the store).")] = None,
    pareto: Annotated[bool, typer.Option(
        "--pareto", help="Design space with controls: accuracy and logit error against "
        "every cost column, one panel per low -> high pair, marker per strategy_kind "
        "(uniform, adaptive, random, oracle), bootstrap CIs.")] = False,
) -> None:
    """Draw the design space of a sweep: Y against X per model, Pareto front marked."""
    from accsim.cli.console import error, info
    from accsim.plots.pareto import plot_pareto
    from accsim.plots.sweep import plot_store
    from accsim.run.outputs import (
        OutputBusy,
        OutputLock,
        check_target,
        clean_leftovers,
        publish_dir,
        publish_png,
    )

    if pareto:
        dest = Path(out) if out else store.parent / (store.stem + "_pareto")
        kind = "pareto-plots"
    else:
        dest = Path(out) if out else store.with_suffix(".png")
        kind = "plot"

    def fail(msg: str, code: int):
        error(msg)
        raise typer.Exit(code)

    def reading(draw):  # a store that is not there is bad input, not a write error
        def wrapped(path):
            try:
                return draw(path)
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from None
        return wrapped

    try:
        if not pareto and dest.suffix.lower() != ".png":
            # matplotlib would append ".png" to a name without one: write what we report
            raise ValueError(f"--out must end in .png, got {str(dest)!r}")
        with OutputLock(dest, "--out"):
            check_target(dest, kind, option="--out")
            clean_leftovers(dest)
            if pareto:
                paths = publish_dir(dest, kind, reading(lambda d: plot_pareto(store, d)))
            else:
                paths = [publish_png(dest, kind, reading(
                    lambda p: plot_store(store, x=x, y=y, out=p)))]
    except OutputBusy as exc:
        fail(str(exc), 3)
    except ValueError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write {str(dest)!r}: {exc}", 1)
    for path in paths:
        info(f"wrote {path}", markup=False)


_SWEEP_EPILOG = (
    "Examples:" "\n\n"
    "accsim sweep configs/smoke_sweep.toml --workers 2 --out results/smoke.zarr" "\n\n"
    "accsim sweep configs/paper_sweep.toml --scheduler tcp://10.0.0.5:8786" "\n\n"
    "Finished cells are written at once: an interrupted sweep resumes where it stopped when "
    "rerun (--force recomputes everything into a fresh store swapped in at the end). "
    "Configuration errors name FILE:LINE and the key (exit code 2); failed cells give exit "
    "code 1; exit code 3: another process is writing the store. Format: docs/configs.md."
)

_PLOT_EPILOG = (
    "Examples:" "\n\n"
    "accsim plot results/smoke.zarr" "\n\n"
    "accsim plot results/smoke.zarr --y max_rel_error --out smoke_error.png" "\n\n"
    "accsim plot results/design_space_mnist.zarr --pareto"
)


def register(app: typer.Typer) -> None:
    """Add the ``sweep`` and ``plot`` commands to the accsim app."""
    app.command("sweep", epilog=_SWEEP_EPILOG)(sweep)
    app.command("plot", epilog=_PLOT_EPILOG)(plot)
