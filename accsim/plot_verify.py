"""Log-log plot of measured error and error bound against n (``accsim verify``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["save_plot"]


def save_plot(ds, path: str | os.PathLike) -> Path:
    """Relative error (median over samples, solid; max, dotted) and relative bound
    (median, dashed) against n, one colour per requested kappa; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = ds["n"].values
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.abs(ds["exact"].values)
        rel_b = np.where(denom > 0, ds["bound"].values / denom, np.inf)
    for t, kap in enumerate(ds["kappa"].values):
        err = np.nanmedian(ds["rel_error"].values[:, t, :], axis=-1)
        emax = np.nanmax(ds["rel_error"].values[:, t, :], axis=-1)
        bnd = np.nanmedian(rel_b[:, t, :], axis=-1)
        line, = ax.loglog(n, np.where(err > 0, err, np.nan), "o-",
                          label=f"error (median), kappa={kap:g}")
        ax.loglog(n, np.where(emax > 0, emax, np.nan), ":", color=line.get_color())
        ax.loglog(n, np.where(np.isfinite(bnd), bnd, np.nan), "--", color=line.get_color(),
                  label=f"bound (median), kappa={kap:g}")
    ax.set_xlabel("n (terms per inner product)")
    ax.set_ylabel("relative error / bound")
    ax.set_title(str(ds.attrs.get("model", "")), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
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
