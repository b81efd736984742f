"""``accsim minilm``: all-MiniLM-L6-v2 on simulated accumulators (accsim.transformer.minilm_run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["minilm", "register"]


def minilm(
    config: Annotated[Path, typer.Argument(help="MiniLM configuration (TOML, "
                                           "see docs/transformer.md).")],
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Output path stem (default: [run] output).")] = None,
) -> None:
    """Run the configured strategies on MiniLM and print the results table."""
    from rich.table import Table

    from accsim.cli.console import error, info, print_table
    from accsim.plots.minilm import plot_results
    from accsim.transformer.minilm_run import load_config, run

    try:
        cfg = load_config(config)
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None

    def progress(done, total, label, seed):
        info(f"  {done}/{total} sentences  {label} (seed {seed})", markup=False)

    res = run(cfg, progress=progress, out=out)
    t = Table(title=f"MiniLM, {res['sentences']} sentences, {res['tokens']} tokens")
    cols = ["label", "seed", "emb_err_median", "cos_min", "spearman", "nn_agree",
            "kl_mean", "lin_recomputed", "scores_recomputed", "gbits_per_sentence",
            "seconds"]
    for c in cols:
        t.add_column(c)
    for r in res["rows"]:
        t.add_row(*[f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    print_table(t)
    if cfg.run.plots and res["paths"]:
        png = plot_results(res, Path(res["paths"]["json"]).with_suffix(".png"))
        res["paths"]["png"] = str(png)
    for k, v in res["paths"].items():
        info(f"{k}: {v}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("minilm")(minilm)
