"""Where does the claim hold? The design-space verdict of a sweep store with controls.

Usage::

    python scripts/design_space_verdict.py results/design_space_mnist.zarr [--metric accuracy]

For every adaptive configuration (architecture, low -> high, criterion, estimate, tau),
training seeds POOLED (the per-image results of the seeds' networks concatenated, each
network paired with itself on the same test images), two paired comparisons:

* against its random control (same recomputed count per layer and batch, no estimate
  paid, so it is also cheaper);
* against the best uniform accumulator whose bit cost is at most the adaptive point's
  bit cost (of the five uniform accumulators of the sweep; "the uniform accumulator of
  equal cost": the best one it can afford).

Each comparison: difference of the metric (``accuracy``, or ``agree`` = top-1 agreement
with the exact network) with a paired bootstrap 95 % CI and McNemar's exact test on the
discordant images (:func:`accsim.analysis.stats.paired_summary`). "better" / "worse"
need p < 0.05 AND a CI excluding 0; otherwise "no difference" (within noise). The
adaptive strategy beats both only if both comparisons say "better". Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def verdict(row: dict) -> str:
    """"better" / "worse" / "no difference" from a paired_summary row."""
    if row["p_mcnemar"] < 0.05 and row["delta_lo"] > 0:
        return "better"
    if row["p_mcnemar"] < 0.05 and row["delta_hi"] < 0:
        return "worse"
    return "no difference"


def main(argv=None) -> int:
    import numpy as np

    from accsim.analysis.stats import paired_summary
    from accsim.batch.store import open_results
    from accsim.plots.pareto import arch_of
    from accsim.run.experiment import unpack_bits

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--metric", choices=("accuracy", "agree"), default="accuracy")
    a = p.parse_args(argv)
    ds = open_results(a.store)
    ds = ds.isel(cell=np.flatnonzero(ds["status"].values == "ok"))
    v = {k: ds[k].values for k in list(ds.coords) + list(ds.data_vars)
         if ds[k].dims == ("cell",)}
    bits_var = "correct_bits" if a.metric == "accuracy" else "agree_bits"

    def bits(i):
        return unpack_bits(str(v[bits_var][i]), int(v["n_samples"][i]))

    n = ds.sizes["cell"]
    kind = v["strategy_kind"]
    budget = v.get("budget", np.full(n, np.nan))  # stores written before budget existed

    def point(i):
        """The cell's selection: its tau, or its budget (budgeted cells have no tau)."""
        b = float(budget[i])
        return f"budget={b:g}" if b == b else f"{float(v['tau'][i]):g}"

    uniform = [i for i in range(n) if kind[i] == "uniform"]
    rows = []
    configs: dict = {}
    for i in range(n):
        if kind[i] != "adaptive":
            continue
        key = (arch_of(v["network"][i]), str(v["model"][i]), str(v["high_model"][i]),
               str(v["criterion"][i]), str(v["estimate"][i]), point(i))
        configs.setdefault(key, []).append(i)
    for key, idx in configs.items():
        arch, low, high, crit, est, tau = key
        ad, rnd, uni, ref_names = [], [], [], []
        costs, ucosts, fracs = [], [], []
        for i in idx:
            net = v["network"][i]
            same = [j for j in range(n) if v["network"][j] == net
                    and kind[j] == "random" and str(v["model"][j]) == low
                    and str(v["high_model"][j]) == high and str(v["criterion"][j]) == crit
                    and str(v["estimate"][j]) == est and point(j) == tau]
            cand = [j for j in uniform if v["network"][j] == net
                    and v["bit_cost"][j] <= v["bit_cost"][i]]
            if not same or not cand:
                continue
            best = max(cand, key=lambda j: (bits(j).mean(), -v["bit_cost"][j]))
            ad.append(bits(i))
            rnd.append(bits(same[0]))
            uni.append(bits(best))
            ref_names.append(str(v["model"][best]))
            costs.append(float(v["bit_cost"][i]))
            ucosts.append(float(v["bit_cost"][best]))
            fracs.append(float(v["recomputed_fraction"][i]))
        if not ad:
            continue
        A, R, U = (np.concatenate(x) for x in (ad, rnd, uni))
        vr = paired_summary(A, R, n_boot=5000, seed=0)
        vu = paired_summary(A, U, n_boot=5000, seed=1)
        rows.append({"arch": arch, "pair": f"{low} -> {high}", "criterion": crit,
                     "estimate": est, "tau": tau, "seeds": len(ad), "images": A.size,
                     "recomputed": float(np.mean(fracs)), "metric": float(A.mean()),
                     "vs_random": vr, "uniform": "/".join(sorted(set(ref_names))),
                     "uniform_metric": float(U.mean()),
                     "cost_ratio": float(np.mean(costs) / np.mean(ucosts)),
                     "vs_uniform": vu})
    m = a.metric
    print(f"| network | low -> high | criterion (estimate) | tau | seeds x images | "
          f"recomputed | {m} | vs random: Δ [95% CI], p | best uniform <= cost | "
          f"vs it: Δ [95% CI], p | beats both? |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vr, vu = r["vs_random"], r["vs_uniform"]
        both = verdict(vr) == "better" and verdict(vu) == "better"
        worse = "worse" in (verdict(vr), verdict(vu))
        print(f"| {r['arch']} | {r['pair']} | {r['criterion']} ({r['estimate']}) | "
              f"{r['tau']} | {r['seeds']} x {r['images'] // r['seeds']} | "
              f"{r['recomputed']:.3f} | {r['metric']:.4f} | "
              f"{vr['delta']:+.4f} [{vr['delta_lo']:+.4f}, {vr['delta_hi']:+.4f}], "
              f"p={vr['p_mcnemar']:.2g}: {verdict(vr)} | {r['uniform']} "
              f"({r['uniform_metric']:.4f}, cost x{1 / r['cost_ratio']:.2f}) | "
              f"{vu['delta']:+.4f} [{vu['delta_lo']:+.4f}, {vu['delta_hi']:+.4f}], "
              f"p={vu['p_mcnemar']:.2g}: {verdict(vu)} | "
              f"{'YES' if both else ('no (worse)' if worse else 'no')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
