"""Pareto plots of a design-space sweep with controls: accuracy (and logit error) against
each cost column, uniform, adaptive, random and oracle points distinguished.

One PNG per (result, cost column); one panel per (architecture, low -> high) pair. In a
panel: the uniform points of the pair's two accumulators (squares), the adaptive points
(circles; colour = criterion and estimate), their random controls (triangles up) and
oracle controls (triangles down) at the same recomputed count per layer (El Arar et
al., arXiv:2503.15568, compare adaptive against uniform accumulation; the controls show
whether the criterion beats a blind choice and how much a perfect one could gain).

Training seeds of one architecture (``mlp-relu-mnist-s0``, ``-s1``, ...) are pooled:
the accuracy point is the accuracy over all their images and its error bar the
bootstrap 95 % CI of that pooled accuracy (images resampled within each seed,
:func:`accsim.analysis.stats.bootstrap_ci` per seed combined by stratified resampling);
the logit error point is the mean over seeds of the per-seed median, bars min-max over
seeds; costs are the mean over seeds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["COST_COLUMNS", "RESULTS", "arch_of", "pareto_points", "plot_pareto"]

COST_COLUMNS = ("recomputed_fraction", "bit_cost", "base_bit_cost", "estimate_bit_cost",
                "recompute_bit_cost")
RESULTS = ("accuracy", "logit_rel_error_median")
MARKERS = {"uniform": "s", "adaptive": "o", "random": "^", "oracle": "v",
           "multilevel": "P"}


def arch_of(network: str) -> str:
    """The architecture of a network name: the training seed suffix ``-sK`` dropped."""
    return re.sub(r"-s\d+$", "", str(network))


def _pooled_ci(bits_by_seed: list, n_boot: int = 2000, seed: int = 0):
    """Pooled accuracy and its stratified bootstrap 95 % CI (resampling within seeds)."""
    rng = np.random.default_rng(seed)
    tot = sum(b.size for b in bits_by_seed)
    acc = sum(int(b.sum()) for b in bits_by_seed) / tot
    boots = np.zeros(n_boot)
    for b in bits_by_seed:
        k = rng.integers(0, b.size, size=(n_boot, b.size))
        boots += b[k].sum(axis=1)
    boots /= tot
    return acc, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def pareto_points(ds) -> list[dict]:
    """One point per configuration (seeds pooled): its pair, kind, variant, costs and
    results with CIs. ``ds``: the finished cells of a sweep store."""
    from accsim.run.experiment import unpack_bits

    n = ds.sizes["cell"]
    val = {k: ds[k].values for k in list(ds.coords) + list(ds.data_vars)
           if ds[k].dims == ("cell",)}
    groups: dict = {}
    for i in range(n):
        kind = str(val["strategy_kind"][i])
        key = (arch_of(val["network"][i]), str(val["model"][i]),
               str(val.get("high_model", [""] * n)[i]), kind,
               str(val["criterion"][i]) if kind != "uniform" else "",
               str(val.get("estimate", [""] * n)[i]) if kind != "uniform" else "",
               float(val["tau"][i]) if kind != "uniform" else None)  # NaN != NaN
        groups.setdefault(key, []).append(i)
    pts = []
    for key, idx in groups.items():
        arch, low, high, kind, crit, est, tau = key
        p = {"arch": arch, "low": low, "high": high, "kind": kind, "criterion": crit,
             "estimate": est, "tau": float("nan") if tau is None else tau, "n_seeds": len(idx),
             "networks": [str(val["network"][i]) for i in idx], "cells": idx}
        for c in COST_COLUMNS:
            p[c] = float(np.mean(val[c][idx].astype(float)))
        if "correct_bits" in val:
            bits = [unpack_bits(str(val["correct_bits"][i]), int(val["n_samples"][i]))
                    for i in idx]
            p["accuracy"], p["accuracy_lo"], p["accuracy_hi"] = _pooled_ci(bits)
            p["n_images"] = int(sum(b.size for b in bits))
        else:
            a = val["accuracy"][idx].astype(float)
            p["accuracy"], p["accuracy_lo"], p["accuracy_hi"] = a.mean(), a.min(), a.max()
        le = val["logit_rel_error_median"][idx].astype(float)
        p["logit_rel_error_median"] = float(le.mean())
        p["logit_rel_error_median_lo"], p["logit_rel_error_median_hi"] = le.min(), le.max()
        pts.append(p)
    return pts


def _panels(pts: list) -> list[tuple]:
    """(arch, low, high) of every adaptive pair, in order of appearance."""
    return list(dict.fromkeys((p["arch"], p["low"], p["high"]) for p in pts
                              if p["kind"] != "uniform"))


def plot_pareto(store, out_dir=None, *, results=RESULTS, costs=COST_COLUMNS) -> list[Path]:
    """Write the Pareto PNGs of a sweep store with controls; returns their paths.

    Raises
    ------
    ValueError
        Not a sweep store, no finished cell, or no ``strategy_kind`` (a sweep without
        the control axis: use ``accsim plot STORE`` instead).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from accsim.batch.store import open_results

    store = Path(store)
    if not (store / "zarr.json").exists():
        raise ValueError(f"{store} is not a sweep store (run `accsim sweep` first)")
    ds = open_results(store)
    if "strategy_kind" not in ds.coords:
        raise ValueError(f"{store} has no strategy_kind (a sweep without controls); "
                         "plot it with `accsim plot STORE --x ... --y ...`")
    need = ("status", "network", "model", "criterion", "tau", *COST_COLUMNS,
            "logit_rel_error_median")
    missing = [k for k in need if k not in ds]
    if "correct_bits" not in ds and "accuracy" not in ds:
        missing.append("accuracy")
    if missing:
        raise ValueError(f"{store} lacks {', '.join(missing)} (not a design-space sweep "
                         "with the control axis, strategy_kind and costs); plot it with "
                         "`accsim plot STORE --x ... --y ...`")
    ok = ds["status"].values == "ok"
    if not ok.any():
        raise ValueError(f"{store} has no finished cell to plot")
    ds = ds.isel(cell=np.flatnonzero(ok))
    pts = pareto_points(ds)
    panels = _panels(pts)
    if not panels:
        raise ValueError(f"{store} has no adaptive cell: nothing to compare")
    out_dir = Path(out_dir) if out_dir else store.parent / (store.stem + "_pareto")
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = list(dict.fromkeys((p["criterion"], p["estimate"]) for p in pts
                                  if p["kind"] != "uniform"))
    cmap = colormaps["tab10"]
    color = {v: cmap(i % 10) for i, v in enumerate(variants)}
    written = []
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    for y in results:
        for x in costs:
            fig = Figure(figsize=(max(9.0, 4.6 * ncol), 3.6 * nrow + 1.2),
                         layout="constrained")
            FigureCanvasAgg(fig)
            for k, (arch, low, high) in enumerate(panels):
                ax = fig.add_subplot(nrow, ncol, k + 1)
                here = [p for p in pts if p["arch"] == arch and (
                    (p["kind"] == "uniform" and p["low"] in (low, high))
                    or (p["kind"] != "uniform" and (p["low"], p["high"]) == (low, high)))]
                for p in here:
                    c = "k" if p["kind"] == "uniform" else color[(p["criterion"],
                                                                  p["estimate"])]
                    face = c if p["kind"] in ("uniform", "adaptive") else "none"
                    lo, hi = p[f"{y}_lo"], p[f"{y}_hi"]
                    ax.errorbar([p[x]], [p[y]], yerr=[[p[y] - lo], [hi - p[y]]],
                                fmt=MARKERS.get(p["kind"], "x"), color=c, mfc=face,
                                ms=6, capsize=2, elinewidth=0.8, alpha=0.9)
                    if p["kind"] == "uniform":
                        ax.annotate(p["low"], (p[x], p[y]), textcoords="offset points",
                                    xytext=(4, -9), fontsize=7)
                    elif p["kind"] == "adaptive":
                        ax.annotate(f"{p['tau']:g}", (p[x], p[y]),
                                    textcoords="offset points", xytext=(4, 3), fontsize=6,
                                    color=c)
                ax.set_title(f"{arch}: {low} -> {high}", fontsize=9)
                ax.set_xlabel(x.replace("_", " "), fontsize=8)
                ax.set_ylabel(y.replace("_", " "), fontsize=8)
                if y != "accuracy":
                    vals = [p[y] for p in here if p[y] > 0]
                    if vals and max(vals) / min(vals) > 20:
                        ax.set_yscale("log")
                ax.tick_params(labelsize=7)
                ax.grid(True, alpha=0.3)
            handles = [Line2D([], [], marker=MARKERS[k], ls="", color="0.3",
                              mfc="0.3" if k in ("uniform", "adaptive") else "none",
                              label=lab)
                       for k, lab in (("uniform", "uniform (low / high)"),
                                      ("adaptive", "adaptive (label: tau)"),
                                      ("random", "random control"),
                                      ("oracle", "oracle control"))]
            handles += [Line2D([], [], marker="o", ls="", color=color[v],
                               label=f"criterion {v[0]}, estimate {v[1]}")
                        for v in variants]
            fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7)
            bars = ("bars: bootstrap 95% CI of the seeds' pooled images" if y == "accuracy"
                    else "bars: min-max over seeds")
            fig.suptitle(f"{ds.attrs.get('sweep_name', store.name)}: {y} vs {x} "
                         f"({bars})", fontsize=10)
            path = out_dir / f"{y}_vs_{x}.png"
            fig.savefig(path, dpi=110, format="png")
            written.append(path)
    return written
