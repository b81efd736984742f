"""Figures of an ``accsim run`` dataset (matplotlib, Agg backend).

* ``accuracy_vs_cost.png``: test accuracy against bit cost per image; uniform
  accumulators as points, each adaptive family (criterion, guard) as a curve over its
  tolerance sweep (El Arar et al., arXiv:2503.15568, cost-accuracy trade-off).
* ``error_vs_condition.png``: per recorded component, the relative error of the layer
  output ``|phi(v_hat) - phi(v)| / |phi(v)|`` against ``kappa_phi(v) kappa_v``, one panel
  per uniform accumulator, with the first-order bound line ``g x`` where ``g`` is the
  largest ratio ``bound / (|W||x| + |b|)`` of that run (``gamma_{n+1}(u)`` for recursive
  summation; no line when the deterministic bound is infinite).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["save_plots", "plot_accuracy_cost", "plot_error_condition"]


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_cost(ds, path: Path) -> Path:
    """Accuracy against bit cost (log x)."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kind = ds["strategy_kind"].values
    labels = [str(s) for s in ds["strategy"].values]
    acc = ds["accuracy"].values
    cost = ds["bit_cost"].values
    uni = np.flatnonzero(kind == "uniform")
    for n, i in enumerate(uni):
        ax.scatter(cost[i], acc[i], s=60, marker="s", zorder=3, color="0.2",
                   label="uniform accumulator" if n == 0 else None)
        ax.annotate(labels[i], (cost[i], acc[i]), textcoords="offset points",
                    xytext=(5, -12), fontsize=8)
    fam = {}
    for i in np.flatnonzero(kind != "uniform"):
        key = (str(kind[i]), str(ds["criterion"].values[i]), int(ds["guard"].values[i]))
        fam.setdefault(key, []).append(i)
    for (k, crit, g), idx in fam.items():
        idx = sorted(idx, key=lambda j: cost[j])
        name = {"predicted": "adaptive (predicted error > tau)",
                "authors": "authors (kappa_phi/|v| > tol)"}.get(crit, crit)
        if k == "multilevel":
            name = "multi-level (predicted)"
        name += " + guard" if g else ""
        if k in ("random", "oracle"):  # matched controls: points, no tau
            ax.scatter(cost[idx], acc[idx], marker="x" if k == "random" else "^", s=40,
                       zorder=3, label=f"{k} control (matched fraction)")
            continue
        line, = ax.plot(cost[idx], acc[idx], marker="o", label=name)
        for n, (pos, taus) in enumerate(tau_labels(cost[idx], acc[idx],
                                                   ds["tau"].values[idx])):
            ax.annotate(taus, pos, textcoords="offset points", fontsize=7,
                        color=line.get_color(), xytext=(3, 4 if n % 2 == 0 else -11))
    if "accuracy_lo" in ds:  # 95 % bootstrap intervals
        ax.errorbar(cost, acc, yerr=[acc - ds["accuracy_lo"].values,
                                     ds["accuracy_hi"].values - acc],
                    fmt="none", ecolor="0.6", elinewidth=0.8, zorder=1)
    ax.set_xscale("log")
    ax.set_xlabel("bit cost per image (accumulator significand bits x terms)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{ds.attrs.get('network', '')}: accuracy against cost "
                 f"({ds.attrs.get('n_samples', '')} inputs)")
    ax.grid(True, which="both", alpha=0.3)
    if fam:
        ax.legend(fontsize=8, loc="lower right", title="labels: tau / tol",
                  title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tau_labels(cost, acc, taus, rel: float = 0.02) -> list:
    """Merge the tolerance labels of points that would overlap (same accuracy, costs
    within ``rel`` relative) into one ``"a, b, c"`` label at their first point; returns
    ``[((cost, acc), text), ...]`` in order of cost."""
    out: list = []
    for c, a, t in zip(cost, acc, taus, strict=True):
        if out and out[-1][2] == a and abs(c - out[-1][1]) <= rel * max(abs(c), 1e-300):
            out[-1][3].append(t)
            continue
        out.append([(c, a), c, a, [t]])
    return [(pos, ", ".join(f"{t:g}" for t in sorted(ts))) for pos, _, _, ts in out]


def _output_rel_error(ds, i, activations):
    import networks

    comp = ds["computed"].values[i]
    ex = ds["exact"].values[i]
    layer = ds["component_layer"].values
    out = np.empty_like(ex)
    with np.errstate(all="ignore"):
        for li, act in enumerate(activations):
            sel = layer == li
            yh = networks.phi(act, comp[sel])
            y = networks.phi(act, ex[sel])
            err = np.abs(yh - y)
            out[sel] = np.where(err == 0, 0.0, err / np.abs(y))
    return out


def plot_error_condition(ds, path: Path, activations) -> Path | None:
    """Scatter of output relative error against ``kappa_phi kappa_v`` per uniform run."""
    if "computed" not in ds:
        return None
    plt = _mpl()
    idx = [i for i in np.flatnonzero(ds["strategy_kind"].values == "uniform")]
    if not idx:
        return None
    fig, axes = plt.subplots(1, len(idx), figsize=(4.2 * len(idx), 4), squeeze=False)
    kp = ds["kappa_phi"].values
    kv = ds["kappa_v"].values
    for ax, i in zip(axes[0], idx, strict=True):
        x = kp[i] * kv[i]
        err = _output_rel_error(ds, i, activations)
        with np.errstate(all="ignore"):
            S = kv[i] * np.abs(ds["exact"].values[i])
            g = ds["bound"].values[i] / S
        ok = np.isfinite(x) & (x > 0) & np.isfinite(err)
        floor = 1e-12
        ax.scatter(x[ok], np.maximum(err[ok], floor), s=3, alpha=0.4,
                   c=ds["component_layer"].values[ok], cmap="viridis")
        gmax = np.nanmax(np.where(np.isfinite(g), g, np.nan)) if np.isfinite(g).any() \
            else np.inf
        xs = np.logspace(np.log10(max(x[ok].min(), 1e-3)), np.log10(x[ok].max()), 50) \
            if ok.any() else np.array([1.0, 10.0])
        if np.isfinite(gmax) and not np.isinf(g).any():
            ax.plot(xs, gmax * xs, "r-", label=f"deterministic bound {gmax:.2e} x")
        else:
            ax.text(0.03, 0.80, "deterministic bound infinite (n u >= 1)",
                    transform=ax.transAxes, fontsize=7, va="top", color="r")
        if "probabilistic_constant_layer" in ds:
            pc = float(np.max(ds["probabilistic_constant_layer"].values[i]))
            if np.isfinite(pc):
                ax.plot(xs, pc * xs, "k--", label=f"probabilistic (lambda=1) {pc:.2e} x")
        flips = int(np.sum(np.isinf(err)))
        if flips:
            ax.text(0.97, 0.03, f"{flips} component(s) with y = 0 but y_hat != 0 not shown",
                    transform=ax.transAxes, fontsize=7, ha="right")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(str(ds["strategy"].values[i]), fontsize=9)
        ax.set_xlabel("kappa_phi(v) kappa_v")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("|y_hat - y| / |y| (0 shown at 1e-12)")
    fig.suptitle(f"{ds.attrs.get('network', '')}: per-component error (colour = layer)",
                 fontsize=10)
    from matplotlib.lines import Line2D

    layers = np.unique(ds["component_layer"].values)
    cmap = plt.get_cmap("viridis")
    lo, hi = (layers.min(), layers.max()) if layers.size else (0, 0)
    handles = [Line2D([], [], ls="", marker="o", ms=5,
                      color=cmap((k - lo) / (hi - lo) if hi > lo else 0.0),
                      label=f"layer {int(k)}") for k in layers]
    fig.legend(handles=handles, loc="lower center", ncol=max(len(handles), 1), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_plots(ds, outdir: Path, activations=None) -> list:
    """Write both figures into ``outdir``; returns the paths written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if activations is None:
        activations = str(ds.attrs.get("activations", "")).split(",")
    paths = [plot_accuracy_cost(ds, outdir / "accuracy_vs_cost.png")]
    p = plot_error_condition(ds, outdir / "error_vs_condition.png", activations)
    if p is not None:
        paths.append(p)
    return paths
