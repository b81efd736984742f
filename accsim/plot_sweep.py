"""The design-space picture of a sweep: a result (accuracy or an error) against a cost,
one series per accumulator model, the Pareto front marked (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["pareto_front", "plot_store"]

MAXIMIZED = ("accuracy",)


def pareto_front(x: np.ndarray, y: np.ndarray, maximize_y: bool) -> np.ndarray:
    """Indices of the Pareto-optimal points (x minimised; y maximised or minimised),
    sorted by x.

    A point is on the front when no other point has x <= its x and a better-or-equal y
    with one of the two strictly better.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    yy = -y if maximize_y else y
    order = np.lexsort((yy, x))  # by x, then best y first
    front, best = [], np.inf
    for i in order:
        if np.isfinite(x[i]) and np.isfinite(yy[i]) and yy[i] < best:
            front.append(i)
            best = yy[i]
    return np.array(front, dtype=int)


def _series_labels(ds) -> np.ndarray:
    parts = ["model"]
    for k in ("network", "strategy"):
        if k in ds.coords and len({str(v) for v in ds[k].values}) > 1:
            parts.insert(0, k)
    cols = [np.array([str(v) for v in ds[k].values], dtype=object) for k in parts]
    return np.array([" | ".join(v) for v in zip(*cols, strict=True)], dtype=object)


def plot_store(store, x: str = "bit_cost", y: str = "accuracy", out=None) -> Path:
    """Write the PNG of a sweep store's design space; returns its path.

    Raises
    ------
    ValueError
        Unknown variable (the message lists the numeric ones) or no finished cell.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from accsim.batch.store import open_results

    store = Path(store)
    if not (store / "zarr.json").exists():
        raise FileNotFoundError(f"{store} is not a sweep store (run `accsim sweep` first)")
    ds = open_results(store)
    numeric = [k for k in list(ds.data_vars) + list(ds.coords)
               if ds[k].dims == ("cell",) and ds[k].dtype.kind in "fiu" and k != "cell"]
    for name in (x, y):
        if name not in numeric:
            raise ValueError(f"unknown variable {name!r}; numeric ones: {', '.join(numeric)}")
    ok = ds["status"].values == "ok"
    if not ok.any():
        raise ValueError(f"{store} has no finished cell to plot")
    X = ds[x].values.astype(float)[ok]
    Y = ds[y].values.astype(float)[ok]
    labels = _series_labels(ds)[ok]
    maximize = y in MAXIMIZED
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    uniq = list(dict.fromkeys(labels))
    markers = "osD^v<>pPX*h"
    cmap = fig.colormaps["tab20"] if hasattr(fig, "colormaps") else None
    for i, lab in enumerate(uniq):
        m = labels == lab
        color = cmap(i % 20) if cmap else None
        ax.scatter(X[m], Y[m], s=28, marker=markers[i % len(markers)], color=color,
                   label=lab if len(uniq) <= 24 else None, alpha=0.85)
    f = pareto_front(X, Y, maximize)
    if len(f):
        ax.step(X[f], Y[f], where="post", color="k", lw=1.2, label="Pareto front")
        ax.scatter(X[f], Y[f], s=90, facecolors="none", edgecolors="k", linewidths=1.5)
    pos = X[np.isfinite(X) & (X > 0)]
    if len(pos) and pos.max() / pos.min() > 50:
        ax.set_xscale("log")
    posy = Y[np.isfinite(Y) & (Y > 0)]
    if not maximize and len(posy) and posy.max() / posy.min() > 50:
        ax.set_yscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " ") + (" (higher is better)" if maximize
                                         else " (lower is better)"))
    ax.set_title(f"{ds.attrs.get('sweep_name', store.name)}: {y} vs {x} "
                 f"({int(ok.sum())} cells)")
    ax.grid(True, alpha=0.3)
    if len(uniq) <= 24:
        ax.legend(fontsize=7, loc="best", ncols=1 if len(uniq) < 12 else 2)
    out = Path(out) if out else store.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out
