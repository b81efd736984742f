"""Rich tables summarising a sweep's dataset and its failed cells."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["failure_table", "summary_table"]

GROUP = ("network", "strategy", "strategy_kind", "model", "high_model", "tau", "budget",
         "criterion", "guard", "estimate", "samples")
SHOWN = (("accuracy", "accuracy", "{:.4f}"), ("recomputed_fraction", "recomputed", "{:.3f}"),
         ("bit_cost", "bit cost", "{:.4g}"), ("max_rel_error", "max rel err", "{:.3g}"),
         ("max_error_bound_ratio", "err/bound", "{:.3g}"), ("violations", "violations",
                                                          "{:.0f}"),
         ("nonfinite", "non-finite", "{:.0f}"))


def _fmt(v, f="{}"):
    if isinstance(v, float) and math.isnan(v):
        return "-"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def summary_table(ds, max_rows: int = 60):
    """One row per parameter combination (replicate seeds averaged, ``n`` of them)."""
    from rich.table import Table

    keys = [k for k in GROUP if k in ds.coords]
    varying = [k for k in keys if len({str(v) for v in ds[k].values}) > 1
               or k in ("network", "strategy", "model")]
    groups: dict[tuple, list[int]] = {}
    for i in range(ds.sizes["cell"]):
        key = tuple(_fmt(ds[k].values[i].item() if hasattr(ds[k].values[i], "item")
                         else ds[k].values[i]) for k in varying)  # NaN-safe keys
        groups.setdefault(key, []).append(i)
    t = Table(title=f"sweep {ds.attrs.get('sweep_name', '')}: {ds.attrs.get('n_ok', '?')} ok, "
                    f"{ds.attrs.get('n_failed', '?')} failed, "
                    f"{ds.attrs.get('n_missing', '?')} missing of {ds.sizes['cell']} cells")
    for k in varying:
        t.add_column(k)
    t.add_column("n", justify="right")
    shown = [c for c in SHOWN if c[0] in ds or c[0] != "nonfinite"]
    for _, label, _f in shown:
        t.add_column(label, justify="right")
    status = ds["status"].values
    for n_row, (key, idx) in enumerate(groups.items()):
        if n_row >= max_rows:
            t.add_row(*(["..."] * (len(varying) + 1 + len(shown))))
            break
        ok = [i for i in idx if status[i] == "ok"]
        vals = []
        for var, _, f in shown:
            if var in ds and ok:
                v = float(np.mean(ds[var].values[ok]))
                # a NaN result of finished cells is shown as nan ("-" means no result)
                vals.append("nan" if math.isnan(v) else _fmt(v, f))
            else:
                vals.append("-")
        n = f"{len(ok)}" + (f" ([red]{len(idx) - len(ok)} failed[/])"
                            if len(ok) < len(idx) else "")
        t.add_row(*key, n, *vals)
    return t


def failure_table(failures: list[dict], max_rows: int = 20):
    """The failed cells: their parameters and error messages."""
    from rich.table import Table

    t = Table(title=f"[red]{len(failures)} failed cell(s)[/]", show_lines=True)
    for c in ("cell", "parameters", "error"):
        t.add_column(c, overflow="fold")
    for n, rec in enumerate(failures):
        if n >= max_rows:
            t.add_row("...", f"{len(failures) - max_rows} more", "")
            break
        co = rec.get("coords", {})
        params = ", ".join(f"{k}={co[k]}" for k in ("network", "strategy", "model",
                                                     "high_model", "tau", "criterion",
                                                     "samples", "seed")
                           if co.get(k) not in (None, ""))
        t.add_row(f"{rec.get('index')}\n{rec.get('cell_id')}", params, rec.get("error", ""))
    return t
