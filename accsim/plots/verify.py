"""Log-log plot of measured error and error bound against n (``accsim verify``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["save_plot", "curves"]


def curves(ds) -> dict:
    """Per requested kappa, the plotted series against n: relative error (median and max
    over samples) and relative bound (median; ``inf`` where the exact value is 0 or the
    bound is infinite). Zeros are kept (a log axis cannot show them: :func:`save_plot`
    draws them as markers on a floor line)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.abs(ds["exact"].values)
        rel_b = np.where(denom > 0, ds["bound"].values / denom, np.inf)
    out = {}
    for t, kap in enumerate(ds["kappa"].values):
        rel = ds["rel_error"].values[:, t, :]
        out[float(kap)] = {"median": np.nanmedian(rel, axis=-1),
                           "max": np.nanmax(rel, axis=-1),
                           "bound": np.nanmedian(rel_b[:, t, :], axis=-1)}
    return out


def save_plot(ds, path: str | os.PathLike) -> Path:
    """Relative error (median over samples, solid; max, dotted) and relative bound
    (median, dashed) against n, one colour per requested kappa; errors that are exactly
    0 are drawn as triangles on a floor line below the smallest positive value (a log
    axis has no 0). Two legends: colour = kappa, line style = quantity. Written
    atomically (temporary file renamed into place)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    path = Path(path)
    n = np.asarray(ds["n"].values)
    cs = curves(ds)
    pos = [v[(v > 0) & np.isfinite(v)] for c in cs.values() for v in c.values()]
    pos = np.concatenate(pos) if pos else np.empty(0)
    floor = float(pos.min()) / 10 if pos.size else 1e-16
    any_zero = any((c[q] == 0).any() for c in cs.values() for q in ("median", "max"))

    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    kappa_handles = []
    for i, (kap, c) in enumerate(cs.items()):
        col = colours[i % len(colours)]
        med, mx, bnd = c["median"], c["max"], c["bound"]
        ax.plot(n, np.where(med > 0, med, np.nan), "o-", color=col)
        ax.plot(n, np.where(mx > 0, mx, np.nan), ":", color=col)
        ax.plot(n, np.where(np.isfinite(bnd) & (bnd > 0), bnd, np.nan), "--", color=col)
        for q, mk in (("median", "v"), ("max", "1")):
            z = c[q] == 0
            if z.any():
                ax.plot(n[z], np.full(int(z.sum()), floor), mk, color=col, ms=8,
                        clip_on=False)
        kappa_handles.append(Line2D([], [], color=col, lw=2, label=f"kappa = {kap:g}"))
    if any_zero:
        ax.axhline(floor, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(n)
    ax.set_xticklabels([str(int(v)) for v in n])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if n.size == 1:
        ax.set_xlim(n[0] / 2, n[0] * 2)
    ax.set_xlabel("n (terms per inner product)")
    ax.set_ylabel("relative error |D - exact| / |exact|")
    ax.set_title(f"{ds.attrs.get('model', '')} ({ds.attrs.get('kind', 'deterministic')} "
                 "bound)", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    style = [Line2D([], [], color="k", marker="o", ls="-", label="error, median"),
             Line2D([], [], color="k", ls=":", label="error, max"),
             Line2D([], [], color="k", ls="--", label="bound, median")]
    if any_zero:
        style += [Line2D([], [], color="k", marker="v", ls="", label="median error = 0"),
                  Line2D([], [], color="k", marker="1", ls="", ms=8,
                         label="max error = 0")]
    leg = ax.legend(handles=kappa_handles, title="requested condition number", fontsize=7,
                    title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.add_artist(leg)
    ax.legend(handles=style, title="quantity", fontsize=7, title_fontsize=7,
              loc="lower left", bbox_to_anchor=(1.02, 0.0))
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
