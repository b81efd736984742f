"""``accsim run CONFIG [--out PATH]``: the main job (see :mod:`accsim.run.config`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from accsim.run.datasets import check_output, resolve_output

__all__ = ["register", "run_command", "summary_table", "check_output"]


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def _ci(ds, i, k):
    lo, hi = ds[k + "_lo"].values[i], ds[k + "_hi"].values[i]
    return f"[{lo:.4f}, {hi:.4f}]" if k == "accuracy" else f"[{lo:+.4f}, {hi:+.4f}]"


def summary_table(ds):
    """A rich table of the per-strategy summary of a run dataset: accuracy with its 95 %
    bootstrap CI, the paired difference to the reference run (CI, McNemar discordant
    counts b/c and p-value), agreement with the exact network, recomputed fraction and
    every cost column (bits per image), bound violations."""
    from rich.table import Table

    ref = ds.attrs.get("reference", "")
    t = Table(title=f"{ds.attrs.get('network', '')} on {ds.attrs.get('dataset', '')}: "
                    f"{ds.attrs.get('n_samples', '')} test images; paired against "
                    f"{ref or '-'}")
    paired = "delta" in ds
    t.add_column("strategy", no_wrap=True)
    t.add_column("kind")
    t.add_column("accuracy", justify="right")
    if paired:
        t.add_column("95% CI", justify="right", no_wrap=True)
        t.add_column("Δ vs ref [95% CI]", justify="right", no_wrap=True)
        t.add_column("b/c", justify="right")
        t.add_column("McNemar p", justify="right")
    if "agreement" in ds:
        t.add_column("agree exact", justify="right")
    for c in ("recomputed", "bits/img", "base", "estimate", "recompute"):
        t.add_column(c, justify="right")
    t.add_column("viol. det/prob", justify="right")
    t.add_column("recomputed per layer", justify="right", no_wrap=True)
    for i, lab in enumerate(ds["strategy"].values):
        kind = str(ds["strategy_kind"].values[i])
        if kind == "adaptive":
            kind = str(ds["criterion"].values[i])
        row = [str(lab), kind, f"{ds['accuracy'].values[i]:.4f}"]
        if paired:
            d = ds["delta"].values[i]
            row += [_ci(ds, i, "accuracy"), f"{d:+.4f} {_ci(ds, i, 'delta')}",
                    f"{ds['mcnemar_b'].values[i]}/{ds['mcnemar_c'].values[i]}",
                    f"{ds['p_mcnemar'].values[i]:.3g}"]
        if "agreement" in ds:
            row.append(f"{ds['agreement'].values[i]:.4f}")
        row.append(f"{ds['recomputed_fraction'].values[i]:.3f}")
        for k in ("bit_cost", "base_bit_cost", "estimate_bit_cost", "recompute_bit_cost"):
            row.append(f"{ds[k].values[i]:.3g}" if k in ds else "-")
        vp = ds["violations_prob"].values[i] if "violations_prob" in ds else "-"
        row.append(f"{ds['violations'].values[i]}/{vp}")
        row.append(" ".join(f"{f:.3f}" for f in ds["recomputed_fraction_layer"].values[i]))
        t.add_row(*row)
    return t


def run_command(config: Path, out: Path | None = None, plots: bool | None = None,
                quiet: bool = False, force: bool = False, scheduler: str | None = None,
                connect_timeout: float = 10.0):
    """Validate, run, write, print; returns the dataset and the output path.

    The output is checked before any work (:func:`accsim.run.outputs.check_replace`): only
    an earlier run of the same configuration is replaced without ``force``; it is
    locked for the whole run and published atomically. The table goes to stdout, messages
    and the progress bar (on a terminal only) to stderr (:mod:`accsim.cli.console`);
    ``quiet`` silences the messages. ``scheduler``: address of a running dask scheduler
    (``tcp://HOST:PORT``) whose workers run the input batches (same bits as a local run);
    it is reached before any work, else ``ValueError`` after ``connect_timeout`` s."""
    from accsim.cli import console as cons
    from accsim.graph.config import is_graph_config
    from accsim.run.config import load_config

    err = cons.err_console(quiet=quiet or cons.level() == cons.QUIET)
    from accsim.cli.minilm import is_minilm_config

    if is_minilm_config(config):  # MiniLM (docs/transformer.md): what accsim minilm does
        return _minilm(config, out, err, scheduler, connect_timeout)
    # configuration and output are checked before the scheduler is contacted
    graph = is_graph_config(config)  # a layer graph of an imported network (docs/graph.md)
    if graph:
        from accsim.graph.config import load_graph_config

        gcfg = load_graph_config(config)
        resolve_output(out, gcfg)
    else:
        cfg = load_config(config)
        out_given = out is not None
        out = resolve_output(out, cfg)
    client = _connect(scheduler, connect_timeout)
    try:
        if graph:
            from accsim.graph.cli import graph_run_command

            if client is not None:  # every worker compiles (or loads) the kernels once
                from accsim.batch.runner import warm_models

                client.run(warm_models, list(gcfg.models.values()))

            return graph_run_command(config, out, quiet=quiet, force=force, console=err,
                                     show_table=cons.print_table,
                                     progress=cons.progress_enabled(err), client=client)
        return _run_output(cfg, config, out, out_given, plots, err, quiet, force, client)
    finally:
        if client is not None:
            client.close()


def _connect(scheduler: str | None, connect_timeout: float):
    """The dask client of ``scheduler`` with its workers prepared (None: a local run);
    reached before any work: a clear ``ValueError``, nothing written."""
    if scheduler is None:
        return None
    from accsim.batch.runner import connect, prepare_workers

    client = connect(scheduler, connect_timeout)
    try:
        prepare_workers(client)
    except BaseException:
        client.close()
        raise
    return client


def _minilm(config, out, console, scheduler, connect_timeout):
    """``accsim run`` on a MiniLM configuration: ``accsim minilm CONFIG`` (``--out`` the
    output stem), its sentence batches on the cluster of ``scheduler`` if given, the
    configuration and the output checked before the scheduler is contacted."""
    from accsim.cli.minilm import check_minilm_run, minilm_command

    stem = None if out is None else str(Path(out).with_suffix("")
                                        if Path(out).suffix == ".nc" else out)
    cfg, _, _ = check_minilm_run(config, stem)
    client = _connect(scheduler, connect_timeout)
    try:
        if client is not None:  # every worker compiles (or loads) the kernels once
            from accsim.batch.runner import warm_models

            client.run(warm_models, [s["name"] if set(s) == {"name"} else s
                                     for s in cfg.models.values()])
        return minilm_command(config, stem, console=console, client=client), stem
    finally:
        if client is not None:
            client.close()


def _run_output(cfg, config, out, out_given, plots, console, quiet, force, client):
    from accsim.run.outputs import (
        OutputLock,
        check_replace,
        check_target,
        clean_leftovers,
        config_digest,
    )

    digest = config_digest(cfg.model_dump(exclude={"run": {"output", "plots"}}))
    option = "--out" if out_given else "run.output"
    with OutputLock(out, option):
        clean_leftovers(out)  # first: puts back a unit killed while being published
        clean_leftovers(_img_dir(out))
        check_replace(out, "run", digest, force=force, option=option)
        if plots if plots is not None else cfg.run.plots:
            check_target(_img_dir(out), "run-plots", option="plots")
        return _run_locked(cfg, config, out, plots, console, digest, quiet, client)


def _img_dir(out: Path) -> Path:
    """The image folder of a run output ``OUT``: ``OUT_STEM_img`` beside it."""
    return out.parent / (out.stem + "_img")


def _run_locked(cfg, config, out, plots, console, digest, quiet, client=None):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from accsim.cli.console import detail, print_table, progress_enabled
    from accsim.run.experiment import prepare, run_dataset, run_plan

    if client is not None:  # every worker compiles (or loads) the kernels once, at once
        from accsim.batch.runner import warm_models

        client.run(warm_models, list(cfg.models.values()))
    plan = prepare(cfg)
    total = len(plan.x) * len(plan.strategies)
    console.print(f"[bold]accsim run[/bold] {config}: network {plan.network.name}, "
                  f"{len(plan.x)} inputs, {len(plan.strategies)} strategies"
                  + (f", batches on {client.scheduler.address}" if client else ""))
    for name, spec in cfg.models.items():
        detail(f"  [models.{name}] {spec}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  disable=quiet or not progress_enabled(console)) as prog:
        task = prog.add_task("inputs x strategies", total=total)
        acc, secs = run_plan(plan, progress=lambda k: prog.advance(task, k),
                             client=client)
    ds = run_dataset(plan, acc, secs)
    ds.attrs.update(accsim_kind="run", config_sha256=digest)
    images = _publish_run(ds, out, plots if plots is not None else cfg.run.plots)
    print_table(summary_table(ds))
    nonfinite = int(ds["nonfinite"].sum()) if "nonfinite" in ds else 0
    if nonfinite:
        console.print(f"[red]{nonfinite} non-finite output component(s)[/red] (overflow or "
                      "NaN): their errors are reported as inf or nan, never as 0")
    for p in images:
        console.print(f"plot: {p}")
    console.print(f"run time {secs:.1f} s; results written to {out}")
    return ds, out


def _publish_run(ds, out: Path, plots: bool) -> list[Path]:
    """Publish the dataset ``out`` and (with ``plots``) its image folder as one unit
    (:class:`accsim.run.outputs.Unit`): both are written beside their destinations
    first, then swapped in behind the unit's manifest. Returns the images' paths."""
    from accsim.run.datasets import save
    from accsim.run.outputs import Unit, write_marker

    img = _img_dir(out)
    written = []
    with Unit(out, "run") as unit:
        save(ds, out, unit=unit)
        if plots:
            from accsim.plots.run import save_plots

            staged = unit.stage(img)
            staged.mkdir()
            written = save_plots(ds, staged)
            write_marker(staged, "run-plots")
        unit.publish()
    return [img / Path(w).name for w in written]


_EPILOG = (
    "Examples:" "\n\n"
    "accsim run configs/paper_mlp.toml" "\n\n"
    "accsim run configs/tanh_mlp.toml --out results/tanh.nc --no-plots" "\n\n"
    "accsim run configs/paper_mlp.toml --scheduler tcp://10.0.0.5:8786" "\n\n"
    "accsim run configs/minilm.toml --scheduler tcp://10.0.0.5:8786" "\n\n"
    "The whole configuration and the output path are checked before any work (errors name "
    "FILE:LINE and the key; exit code 2). An earlier run of the same configuration at the "
    "output is replaced atomically; anything else needs --force (accsim run datasets "
    "only; other files are never replaced). Exit code 3: another process is writing "
    "the output. Plots go to OUT_STEM_img/ next to it. Format: docs/executor.md."
)


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to the accsim typer app."""

    @app.command("run", epilog=_EPILOG)
    def run(
        config: Annotated[Path, typer.Argument(help="TOML run configuration (see configs/).")],
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Output dataset (.zarr or .nc); default run.output.")] = None,
        plots: Annotated[bool | None, typer.Option(
            "--plots/--no-plots", help="Save PNG plots (default run.plots).")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Replace an accsim run dataset of another configuration at "
            "the output (never other files).")] = False,
        scheduler: Annotated[str | None, typer.Option(
            "--scheduler", help="Address of a running dask scheduler, tcp://HOST:PORT: its "
            "workers run the input batches (MiniLM configs: the sentence batches), same "
            "bits as a local run. Unreachable: exit 2 before any work.")] = None,
        connect_timeout: Annotated[float, typer.Option(
            "--connect-timeout", min=0.1, help="Seconds to wait for --scheduler.")] = 10.0,
    ) -> None:
        """Run uniform and adaptive accumulation strategies on a network (paper's job)."""
        from accsim.cli.console import error
        from accsim.run.outputs import OutputBusy

        try:
            run_command(config, out, plots, force=force, scheduler=scheduler,
                        connect_timeout=connect_timeout)
        except OutputBusy as exc:
            error(str(exc))
            raise typer.Exit(code=3) from None
        except ValueError as exc:
            error(str(exc))
            raise typer.Exit(code=2) from None
        except OSError as exc:  # e.g. the disk filled up while writing
            error(f"cannot write the results: {exc}; the previous output (if any) is "
                  "unchanged")
            raise typer.Exit(code=1) from None
