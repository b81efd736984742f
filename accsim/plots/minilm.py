"""Error against cost of the MiniLM strategies (``accsim minilm``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_results", "plot_json"]


def plot_json(json_path, png_path=None) -> Path:
    """Redraw the picture of a finished run from its ``.json``."""
    import json

    d = json.loads(Path(json_path).read_text())
    res = {"rows": d["rows"], "sentences": d["sentences"], "tokens": d["tokens"]}
    return plot_results(res, png_path or Path(json_path).with_suffix(".png"))


def plot_results(res: dict, path) -> Path:
    """Two panels: median embedding error against the bit cost per sentence, and mean
    attention-row KL divergence against the fraction of scores recomputed. One marker
    series per strategy (mean over seeds for the random controls)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    for name in names:
        rr = [r for r in rows if r["strategy"] == name]
        keys = list(dict.fromkeys(r["label"] for r in rr))
        pts = []
        for k in keys:
            g = [r for r in rr if r["label"] == k]
            pts.append([np.mean([r[c] for r in g]) for c in
                        ("gbits_per_sentence", "emb_err_median", "scores_recomputed",
                         "kl_mean")])
        pts = np.array(pts)
        ctrl = any(r["linear"] in ("random", "oracle") or r["attention"] in
                   ("random", "oracle") for r in rr)
        style = dict(ls="--" if ctrl else "-", marker="x" if ctrl else "o", label=name)
        order = np.argsort(pts[:, 0])
        axes[0].plot(pts[order, 0], pts[order, 1], **style)
        order = np.argsort(pts[:, 2])
        # KL of a near-exact run can come out as -1e-10 (rounding): shown at 1e-12
        axes[1].plot(pts[order, 2], np.maximum(pts[order, 3], 1e-12), **style)
    axes[0].set(xlabel="simulated accumulator cost (Gbit per sentence)",
                ylabel="median ||e - e_fp64|| / ||e_fp64||", yscale="log",
                title="sentence embedding error vs cost")
    axes[1].set(xlabel="fraction of QK^T scores recomputed",
                ylabel="mean KL(p_fp64 || p) per attention row", yscale="log",
                title="attention rows vs scores recomputed")
    axes[1].set_xscale("symlog", linthresh=1e-2)
    axes[1].set_xlim(left=0)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"all-MiniLM-L6-v2, {res['sentences']} sentences ({res['tokens']} tokens)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
