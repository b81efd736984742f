"""``accsim run`` on a layer-graph configuration (a file with ``[network]``)."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["graph_run_command", "graph_table"]


def _f(v) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.3e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6) else f"{v:.4f}"
    return str(v)


def graph_table(ds):
    from rich.table import Table

    t = Table(title=f"{ds.attrs['network']}: {ds.attrs['n_samples']} inputs, "
                    f"{ds.attrs['macs_per_image']} MACs/image")
    cols = {"accuracy": "acc", "agreement": "top-1 agree", "logit_rel_error_median":
            "logit rel (med)", "recomputed_fraction": "recomputed", "bit_cost": "bits/image",
            "max_error_bound_ratio": "max err/bound", "violations": "viol."}
    t.add_column("strategy", overflow="fold")
    for c in cols.values():
        t.add_column(c, justify="right")
    for i, lab in enumerate(ds["strategy"].values):
        t.add_row(str(lab), *[_f(ds[c].values[i].item()) for c in cols])
    return t


def graph_run_command(config: Path, out: Path | None = None, quiet: bool = False,
                      force: bool = False, console=None, show_table=None,
                      progress: bool | None = None, client=None):
    """Validate, run, write, print; returns ``(dataset, path)``.

    The output gets the same guarantees as ``accsim run`` on a network config
    (:mod:`accsim.run.outputs`): checked before any work, locked, published atomically, and
    only an earlier run of the same configuration is replaced without ``force``. Messages
    and progress go to ``console`` (default: stderr), the table to ``show_table(table)``
    (default: printed on stdout); ``progress`` (default: on a terminal) shows the bar.
    ``client``: a dask.distributed client whose cluster runs the input batches
    (``accsim run --scheduler``, which warms its workers first; same bits as a local
    run)."""
    from rich.console import Console

    from accsim.graph.config import load_graph_config
    from accsim.run.datasets import resolve_output

    console = console or Console(stderr=True, quiet=quiet)
    if show_table is None:
        def show_table(t):
            Console(width=max(Console().width, 150)).print(t)
    if progress is None:
        progress = console.is_terminal
    cfg = load_graph_config(config)
    out_given = out is not None
    out = resolve_output(out, cfg)
    from accsim.run.outputs import OutputLock, check_replace, clean_leftovers, config_digest

    digest = config_digest(cfg.model_dump(exclude={"run": {"output", "plots"}}))
    option = "--out" if out_given else "run.output"
    with OutputLock(out, option):
        check_replace(out, "run", digest, force=force, option=option)
        clean_leftovers(out)
        return _graph_run_locked(cfg, config, out, console, digest, quiet, show_table,
                                 progress, client)


def _graph_run_locked(cfg, config, out, console, digest, quiet, show_table, progress,
                      client=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from accsim.graph.experiment import prepare_graph, run_graph_plan
    from accsim.run.datasets import write_dataset
    from accsim.run.experiment import control_labels, run_dataset
    from accsim.run.strategies import CONTROLS

    plan = prepare_graph(cfg)
    n_ctrl = sum(len(control_labels(k, lab, plan.control_seeds))
                 for lab in plan.controls for k in CONTROLS)
    total = len(plan.x) * (len(plan.assignments) + n_ctrl)
    console.print(f"[bold]accsim run[/bold] {config}: network {plan.graph.name} "
                  f"({len(plan.graph.linear_ops)} linear ops, {plan.graph.macs()} MACs/image), "
                  f"{len(plan.x)} inputs, {len(plan.assignments)} strategies + {n_ctrl} "
                  "controls" + (f", batches on {client.scheduler.address}" if client else ""))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=quiet or not progress) as prog:
        task = prog.add_task("inputs x strategies", total=total)
        acc, secs = run_graph_plan(plan, progress=lambda k: prog.advance(task, k),
                                   client=client)
    ds = run_dataset(plan, acc, secs)
    ds.attrs.update(accsim_kind="run", config_sha256=digest)
    write_dataset(ds, out)
    show_table(graph_table(ds))
    console.print(f"run time {secs:.1f} s ({ds.attrs['simulated_macs_per_second'] / 1e6:.2f} "
                  f"M simulated MAC/s); results written to {out}")
    return ds, out
