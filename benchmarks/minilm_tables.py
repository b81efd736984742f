"""Markdown tables and paired comparisons from ``accsim minilm`` results (for
docs/results.md). Usage: ``python benchmarks/minilm_tables.py results/minilm.nc ...``."""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

from accsim.transformer.embed_metrics import paired_log_ratio

COLS = [("emb_err_median", "median emb. rel. err", "{:.2e}"),
        ("emb_err_max", "max emb. rel. err", "{:.2e}"),
        ("cos_min", "min cosine", "{:.6f}"),
        ("spearman", "Spearman", "{:.4f}"),
        ("nn_agree", "NN agree", "{:.2f}"),
        ("kl_mean", "mean KL/row", "{:.2e}"),
        ("kl_max", "max KL/row", "{:.2e}"),
        ("last_layer_err", "layer-6 rel. err", "{:.2e}"),
        ("lin_recomputed", "linear recomputed", "{:.3f}"),
        ("scores_recomputed", "scores recomputed", "{:.3f}"),
        ("gbits_per_sentence", "Gbit/sentence", "{:.2f}"),
        ("seconds", "run s", "{:.0f}")]


def table(ds) -> str:
    labels = [str(x) for x in ds["label"].values]
    seeds = ds["seed"].values
    head = "| strategy | seeds | " + " | ".join(c[1] for c in COLS) + " |"
    lines = [head, "|" + " --- |" * (len(COLS) + 2)]
    for lab in dict.fromkeys(labels):
        idx = [i for i, x in enumerate(labels) if x == lab]
        vals = []
        for key, _, fmt in COLS:
            v = ds[key].values[idx].astype(float)
            s = fmt.format(v.mean())
            if len(idx) > 1 and key not in ("seconds",):
                s += f" ({fmt.format(v.min())}..{fmt.format(v.max())})"
            vals.append(s)
        lines.append(f"| {lab} | {len(idx)} ({','.join(str(seeds[i]) for i in idx)}) | "
                     + " | ".join(vals) + " |")
    return "\n".join(lines)


def paired(ds, a: str, b: str, seed_b=None) -> str:
    """Per-sentence embedding error of cell ``a`` vs cell ``b`` (paired over sentences)."""
    labels = [str(x) for x in ds["label"].values]
    ia = labels.index(a)
    ib = [i for i, x in enumerate(labels) if x == b]
    out = []
    for i in ib:
        r = paired_log_ratio(ds["emb_err"].values[ia], ds["emb_err"].values[i])
        out.append(f"{a} vs {b} (seed {int(ds['seed'].values[i])}): mean log10 ratio "
                   f"{r['mean']:+.3f} [95% CI {r['lo']:+.3f}, {r['hi']:+.3f}], "
                   f"Wilcoxon p = {r['p']:.2g}")
    return "\n".join(out)


def main():
    for path in sys.argv[1:]:
        ds = xr.open_dataset(path)
        print(f"## {path}: {ds.attrs['sentences']} sentences, {ds.attrs['tokens']} tokens\n")
        print(table(ds))
        print()
        le = ds["layer_rel_error"].values
        for i, lab in enumerate(ds["label"].values):
            print(f"- {lab} (seed {int(ds['seed'].values[i])}): per-layer rel. error "
                  + ", ".join(f"{x:.1e}" for x in le[i]))
        print()
        labels = list(dict.fromkeys(str(x) for x in ds["label"].values))
        for lab in labels:
            for kind in ("random", "oracle"):
                if kind in lab.lower():
                    continue
                ctrl = [x for x in labels if kind in x.lower() and x.split()[-1] ==
                        lab.split()[-1] and x != lab]
                for c in ctrl:
                    if lab.split()[0] in ("LAMP", "adaptive"):
                        print(paired(ds, lab, c))
        print()
        _ = np


if __name__ == "__main__":
    main()
