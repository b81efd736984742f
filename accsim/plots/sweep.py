"""The design-space picture of a sweep: a result (accuracy or an error) against a cost,
one series per accumulator model, the Pareto front marked (matplotlib, Agg).

Replicates (cells that differ only in the replicate ``seed``) are averaged: one point per
configuration at the mean, bars from the min to the max; the Pareto front is that of the
means."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["pareto_front", "plot_store", "replicate_groups"]

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
    labels = np.array([" | ".join(v) for v in zip(*cols, strict=True)], dtype=object)
    if "high_model" in ds.coords:  # adaptive: low -> high
        hi = np.array([str(v) for v in ds["high_model"].values], dtype=object)
        labels = np.array([f"{lab} -> {h}" if h else lab for lab, h in zip(labels, hi,
                                                                           strict=True)],
                          dtype=object)
    if "criterion" in ds.coords and "strategy" in ds.coords:
        crit = [str(v) for v in ds["criterion"].values]
        strat = [str(v) for v in ds["strategy"].values]
        if len({c for c, st in zip(crit, strat, strict=True) if st != "uniform"}) > 1:
            labels = np.array([f"{lab} ({c})" if st != "uniform" else lab for lab, c, st
                               in zip(labels, crit, strat, strict=True)], dtype=object)
    return labels


#: coordinates that identify a replicate of the same configuration (averaged over)
REPLICATE_KEYS = ("seed", "cell_seed", "cell_id", "cell")


def replicate_groups(ds) -> list[np.ndarray]:
    """Cell indices grouped by every parameter except the replicate seed (the cells of
    one configuration run with different seeds), in order of first appearance."""
    keys = [k for k in ds.coords if ds[k].dims == ("cell",) and k not in REPLICATE_KEYS]
    cols = [[str(v) for v in ds[k].values] for k in keys]
    groups: dict = {}
    for i in range(ds.sizes["cell"]):
        groups.setdefault(tuple(c[i] for c in cols), []).append(i)
    return [np.array(g) for g in groups.values()]


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
    try:
        ds = open_results(store)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{store} is not a sweep store (written by `accsim sweep`): "
                         f"{exc}") from None
    if "cell" not in ds.dims or "status" not in ds:
        raise ValueError(f"{store} is not a sweep store (no 'cell' dimension or 'status')")
    numeric = [k for k in list(ds.data_vars) + list(ds.coords)
               if ds[k].dims == ("cell",) and ds[k].dtype.kind in "fiu" and k != "cell"]
    for name in (x, y):
        if name not in numeric:
            raise ValueError(f"unknown variable {name!r}; numeric ones: {', '.join(numeric)}")
    ok = ds["status"].values == "ok"
    if not ok.any():
        raise ValueError(f"{store} has no finished cell to plot")
    ds = ds.isel(cell=np.flatnonzero(ok))
    groups = replicate_groups(ds)
    Xc = ds[x].values.astype(float)
    Yc = ds[y].values.astype(float)
    X = np.array([np.mean(Xc[g]) for g in groups])
    Y = np.array([np.mean(Yc[g]) for g in groups])
    Ylo = np.array([np.min(Yc[g]) for g in groups])
    Yhi = np.array([np.max(Yc[g]) for g in groups])
    nrep = np.array([len(g) for g in groups])
    labels = _series_labels(ds)[[g[0] for g in groups]]
    taus = ds["tau"].values[[g[0] for g in groups]] if "tau" in ds else np.full(len(X),
                                                                               np.nan)
    maximize = y in MAXIMIZED
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    uniq = list(dict.fromkeys(labels))
    markers = "osD^v<>pPX*h"
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(uniq) <= 10 else "tab20"]
    for i, lab in enumerate(uniq):
        m = labels == lab
        color = cmap(i % cmap.N)
        ax.scatter(X[m], Y[m], s=28, marker=markers[i % len(markers)], color=color,
                   label=lab if len(uniq) <= 24 else None, alpha=0.85, zorder=3)
        r = m & (nrep > 1)
        if r.any():
            ax.errorbar(X[r], Y[r], yerr=[Y[r] - Ylo[r], Yhi[r] - Y[r]], fmt="none",
                        ecolor=color, elinewidth=0.8, capsize=2, alpha=0.7)
        for j in np.flatnonzero(m & np.isfinite(taus.astype(float))):
            ax.annotate(f"tau={taus[j]:g}", (X[j], Y[j]), textcoords="offset points",
                        xytext=(4, 4), fontsize=6, color=color)
    f = pareto_front(X, Y, maximize)
    if len(f):
        ax.step(X[f], Y[f], where="post", color="k", lw=1.2, label="Pareto front")
        ax.scatter(X[f], Y[f], s=90, facecolors="none", edgecolors="k", linewidths=1.5,
                   zorder=4)
        if len(uniq) > 24:  # no legend: name the models on the front instead
            for k, j in enumerate(f):
                ax.annotate(str(labels[j]), (X[j], Y[j]), textcoords="offset points",
                            xytext=(6, 5 + 9 * (k % 3)), fontsize=6.5, color="k")
    pos = X[np.isfinite(X) & (X > 0)]
    if len(pos) and pos.max() / pos.min() > 50:
        ax.set_xscale("log")
    posy = Y[np.isfinite(Y) & (Y > 0)]
    if not maximize and len(posy) and posy.max() / posy.min() > 50:
        ax.set_yscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " ") + (" (higher is better)" if maximize
                                         else " (lower is better)"))
    reps = (f"; mean of {nrep.min()}" + (f"-{nrep.max()}" if nrep.max() > nrep.min()
                                         else "") + " replicates, bars min-max"
            if nrep.max() > 1 else "")
    ax.set_title(f"{ds.attrs.get('sweep_name', store.name)}: {y} vs {x} "
                 f"({int(ok.sum())} cells{reps})", fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(uniq) <= 24:
        ax.legend(fontsize=7, loc="best", ncols=1 if len(uniq) < 12 else 2)
    else:
        ax.text(0.99, 0.01, f"{len(uniq)} models (too many for a legend); models on the "
                "Pareto front are named", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="0.3")
    out = Path(out) if out else store.with_suffix(".png")
    if out.suffix.lower() != ".png":
        # matplotlib would append ".png" to a name without one: write what we report
        raise ValueError(f"--out must end in .png, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, format="png")
    return out
