"""Markdown tables for docs/results.md from the runs of ``scripts/run_paper.py``.

Usage::

    python scripts/summarize_paper.py results/paper/mnist-s*.zarr

Per strategy, over the seeds (networks trained with different seeds, same test images):
mean accuracy; per seed the paired difference to the reference run with its 95 %
bootstrap CI; McNemar on the pooled discordant counts (sum of b and c over seeds: every
(seed, image) pair counted as one paired observation); recomputed fraction and the cost
columns (bits per image; mean over seeds); top-1 agreement with the exact network; median
logit relative error; bound violations (deterministic / probabilistic).
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def _open(path):
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, consolidated=False).load()


def table(paths) -> str:
    from accsim.analysis.stats import mcnemar

    dss = [_open(p) for p in paths]
    labels = [str(s) for s in dss[0]["strategy"].values]
    head = ("| strategy | kind | accuracy (mean) | Δ vs ref per seed [95% CI] | b/c pooled | "
            "McNemar p | agree exact | logit rel. err (median) | recomputed | bits/img | "
            "base | estimate | recompute | viol. det/prob |")
    out = [head, "|" + "---|" * 14]
    for i, lab in enumerate(labels):
        def col(k, i=i):
            return np.array([float(d[k].values[i]) for d in dss])
        kind = str(dss[0]["strategy_kind"].values[i])
        if kind == "adaptive":
            kind = str(dss[0]["criterion"].values[i])
        deltas = "; ".join(f"{d['delta'].values[i]:+.4f} [{d['delta_lo'].values[i]:+.4f}, "
                           f"{d['delta_hi'].values[i]:+.4f}]" for d in dss)
        b = int(sum(int(d["mcnemar_b"].values[i]) for d in dss))
        c = int(sum(int(d["mcnemar_c"].values[i]) for d in dss))
        p = mcnemar(np.r_[np.ones(b, bool), np.zeros(c, bool)],
                    np.r_[np.zeros(b, bool), np.ones(c, bool)])[2]
        vd = int(sum(int(d["violations"].values[i]) for d in dss))
        vp = int(sum(int(d["violations_prob"].values[i]) for d in dss))
        out.append(
            f"| {lab} | {kind} | {col('accuracy').mean():.4f} | {deltas} | {b}/{c} | "
            f"{p:.3g} | {col('agreement').mean():.4f} | "
            f"{col('logit_rel_error_median').mean():.2e} | "
            f"{col('recomputed_fraction').mean():.3f} | {col('bit_cost').mean():.3g} | "
            f"{col('base_bit_cost').mean():.3g} | {col('estimate_bit_cost').mean():.3g} | "
            f"{col('recompute_bit_cost').mean():.3g} | {vd}/{vp} |")
    d0 = dss[0]
    lines = ["", "Per layer (seed 0): fraction of components whose deterministic bound is "
             "infinite or not below |W||x| + |b| (vacuous), the recomputed fraction, and "
             f"the probabilistic bound's lambda (failure probability "
             f"{d0.attrs.get('prob_failure')} per component):", "",
             "| strategy | vacuous bound per layer | recomputed per layer |", "|---|---|---|"]
    for i, lab in enumerate(labels):
        vac = " ".join(f"{v:.3f}" for v in d0["vacuous_bound_fraction_layer"].values[i])
        rec = " ".join(f"{v:.3f}" for v in d0["recomputed_fraction_layer"].values[i])
        lines.append(f"| {lab} | {vac} | {rec} |")
    lam = ", ".join(f"{v:.2f}" for v in d0["prob_lambda"].values)
    lines.append("")
    lines.append(f"lambda per layer: {lam}. Rounding-chain constants c(n) u of the low "
                 "model (probabilistic, lambda = 1) per layer: " + ", ".join(
                     f"{v:.3f}" for v in d0["probabilistic_constant_layer"].values[0]) +
                 "; deterministic: " + ", ".join(
                     f"{v:.3g}" for v in d0["deterministic_constant_layer"].values[0]) + ".")
    secs = [d.attrs.get("run_seconds", float("nan")) for d in dss]
    lines.append("")
    lines.append(f"{len(dss)} runs ({', '.join(d.attrs['network'] for d in dss)}), "
                 f"{d0.attrs['n_samples']} test images each, reference "
                 f"{d0.attrs.get('reference')}; run times "
                 f"{', '.join(f'{s:.0f}' for s in secs)} s (loaded shared machine).")
    return "\n".join(out + lines)


if __name__ == "__main__":
    print(table(sys.argv[1:]))
