"""Where does the claim hold? The design-space verdict of a sweep store with controls.

Usage::

    python scripts/design_space_verdict.py results/design_space_mnist.zarr [--metric accuracy]
    python scripts/design_space_verdict.py --runs results/design_space_full/mnist-relu-s*.zarr

``--runs``: run datasets of ``configs/design_space_full.toml`` (one per network, 2,000
images, issue 20): one row per adaptive point and network, from the dataset's comparison
family (the ``cmp_*`` variables, :func:`accsim.analysis.stats.comparison_family`: paired
Wilcoxon on per-image log10 output error, exact McNemar on agreement and accuracy, Holm
over every test of the network's table, MDD at power 0.8 and level alpha / m): the median
paired difference against ``random-active`` with its raw and Holm p, the agreement
discordance against it, the Holm p against ``random`` and ``oracle``, the best uniform
row of equal or lower bit cost (lowest median error) with the paired difference and its
Holm p, and the cost models under which the point is on the Pareto front of (cost,
median log10 output error) among the implementable rows (``verdict_tables.pareto``).

Sweep stores (the default mode):

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


def run_rows(ds, alpha: float = 0.01) -> tuple[list[dict], dict]:
    """The design-space verdict rows of one run dataset (``--runs``; module docstring),
    and the table's header facts (network, n, m, MDD range)."""
    import numpy as np
    from verdict_tables import COSTS, fronts

    from accsim.analysis.stats import log10_error

    labels = [str(x) for x in ds["strategy"].values]
    kinds = [str(x) for x in ds["strategy_kind"].values]
    med = np.median(log10_error(ds["logit_rel_error"].values), axis=1)
    c = {k.removeprefix("cmp_"): ds[k].values for k in ds.data_vars if k.startswith("cmp_")}
    front = fronts(ds)
    rows = []
    for i, lab in enumerate(labels):
        if kinds[i] not in ("adaptive", "multilevel"):
            continue
        mine = [j for j in range(len(c["row"])) if str(c["row"][j]) == lab]
        rel = {str(c["relation"][j]): j for j in mine if str(c["relation"][j]) != "uniform"}
        unis = [j for j in mine if str(c["relation"][j]) == "uniform"]
        best = min(unis, key=lambda j: med[labels.index(str(c["other"][j]))]) \
            if unis else None
        rows.append({"row": lab, "recomputed": float(ds["recomputed_fraction"].values[i]),
                     "median": float(med[i]), "cmp": c, "rel": rel, "best_uniform": best,
                     "front": [k for k in COSTS if front[k][i]]})
    mdd = np.asarray(c["mdd_log10"], float)
    mdd = mdd[mdd > 0] if (mdd > 0).any() else np.array([np.nan])  # 0: identical rows
    head = {"network": ds.attrs.get("network", "?"), "n": int(ds.attrs.get("n_samples", 0)),
            "m": int(ds.attrs.get("comparison_family_size", 0)),
            "mdd": (float(np.nanmin(mdd)), float(np.nanmax(mdd))),
            "mdd_agree": (float(np.nanmin(c["mdd_agreement"])),
                          float(np.nanmax(c["mdd_agreement"]))),
            "seconds": float(ds.attrs.get("run_seconds", np.nan))}
    return rows, head


def _p(p) -> str:
    """A p-value for the tables ("< 1e-300" where it underflows binary64)."""
    if p != p:
        return "n/a"
    return "< 1e-300" if p == 0 else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def print_runs(paths, alpha: float) -> None:
    """Markdown tables of :func:`run_rows` for each run dataset."""
    from accsim.run.datasets import load

    for path in paths:
        rows, h = run_rows(load(path), alpha)
        print(f"**{h['network']}**: n = {h['n']} images, m = {h['m']} tests (Holm), "
              f"MDD {h['mdd'][0]:.3f}-{h['mdd'][1]:.3f} decades, "
              f"{h['mdd_agree'][0]:.4f}-{h['mdd_agree'][1]:.4f} in agreement rate; "
              f"run {h['seconds']:.0f} s ({path})")
        print()
        print("| adaptive point | recomputed | median log10 err | vs random-active: diff "
              "(raw p; Holm p) | MDD | agree +/- vs r.-a. (Holm p) | vs random (Holm p) | "
              "vs oracle (Holm p) | best uniform <= bits: diff (Holm p) | Pareto front |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            c, rel = r["cmp"], r["rel"]

            def diff(j, raw=False, c=c):
                if j is None:
                    return "n/a"
                d, ph = c["median_log10_diff"][j], c["p_wilcoxon_holm"][j]
                mark = "**" if ph < alpha else ""
                rp = f"{_p(c['p_wilcoxon'][j])}; " if raw else ""
                return f"{mark}{d:+.3f}{mark} ({rp}{_p(ph)})"

            ra = rel.get("random-active")
            agree = "n/a" if ra is None else (f"{c['agree_b'][ra]}/{c['agree_c'][ra]} "
                                              f"({_p(c['p_mcnemar_agree_holm'][ra])})")
            mdd = "n/a" if ra is None else f"{c['mdd_log10'][ra]:.3f}"
            bu = r["best_uniform"]
            uni = "none" if bu is None else \
                f"{str(c['other'][bu]).removeprefix('uniform-')}: {diff(bu)}"
            print(f"| {r['row']} | {r['recomputed']:.3f} | {r['median']:.2f} | "
                  f"{diff(ra, raw=True)} | {mdd} | {agree} | {diff(rel.get('random'))} | "
                  f"{diff(rel.get('oracle'))} | {uni} | {', '.join(r['front']) or 'none'} |")
        print()


def print_runs_compact(paths, alpha: float) -> None:
    """One row per adaptive point, one column group per run dataset (e.g. the training
    seeds of a data set): the median paired difference against ``random-active`` (Holm
    p), against the best affordable uniform row (Holm p), and the Pareto front; then per
    dataset the counts of points that beat each at Holm p < alpha and that are on the
    front under each cost model."""
    from verdict_tables import COSTS

    from accsim.run.datasets import load

    tabs = [(run_rows(load(p), alpha)) for p in paths]
    names = [h["network"] for _, h in tabs]
    print("| adaptive point | " + " | ".join(
        f"{n}: vs random-active (Holm p) | vs best uniform <= bits (Holm p) | front"
        for n in names) + " |")
    print("|" + " --- |" * (1 + 3 * len(tabs)))
    points = [r["row"] for r in tabs[0][0]]
    for pt in points:
        cells = []
        for rows, _ in tabs:
            r = next((x for x in rows if x["row"] == pt), None)
            if r is None:
                cells += ["n/a"] * 3
                continue
            c = r["cmp"]
            out = []
            for j in (r["rel"].get("random-active"), r["best_uniform"]):
                if j is None:
                    out.append("n/a")
                    continue
                d, ph = c["median_log10_diff"][j], c["p_wilcoxon_holm"][j]
                mark = "**" if ph < alpha else ""
                name = "" if j == r["rel"].get("random-active") else \
                    str(c["other"][j]).removeprefix("uniform-") + " "
                out.append(f"{name}{mark}{d:+.3f}{mark} ({_p(ph)})")
            cells += out + [", ".join(r["front"]) or "none"]
        print(f"| {pt} | " + " | ".join(cells) + " |")
    print()
    for rows, h in tabs:
        beat_ra = sum(1 for r in rows if (j := r["rel"].get("random-active")) is not None
                      and r["cmp"]["median_log10_diff"][j] < 0
                      and r["cmp"]["p_wilcoxon_holm"][j] < alpha)
        lose_ra = sum(1 for r in rows if (j := r["rel"].get("random-active")) is not None
                      and r["cmp"]["median_log10_diff"][j] > 0
                      and r["cmp"]["p_wilcoxon_holm"][j] < alpha)
        agree_ra = sum(1 for r in rows if (j := r["rel"].get("random-active")) is not None
                       and r["cmp"]["agree_b"][j] > r["cmp"]["agree_c"][j]
                       and r["cmp"]["p_mcnemar_agree_holm"][j] < alpha)
        beat_u = sum(1 for r in rows if (j := r["best_uniform"]) is not None
                     and r["cmp"]["median_log10_diff"][j] < 0
                     and r["cmp"]["p_wilcoxon_holm"][j] < alpha)
        front = {k: sum(1 for r in rows if k in r["front"]) for k in COSTS}
        print(f"* {h['network']} (n = {h['n']}, m = {h['m']}, MDD {h['mdd'][0]:.3f}-"
              f"{h['mdd'][1]:.3f}): of {len(rows)} points, {beat_ra} beat random-active "
              f"on output error, {lose_ra} lose to it, {agree_ra} beat it on agreement; "
              f"{beat_u} beat the best affordable uniform row; on the Pareto front: " +
              ", ".join(f"{k} {v}" for k, v in front.items()) +
              f" (Holm p < {alpha}); run {h['seconds']:.0f} s")


def main(argv=None) -> int:
    import numpy as np

    from accsim.analysis.stats import paired_summary
    from accsim.batch.store import open_results
    from accsim.plots.pareto import arch_of
    from accsim.run.experiment import unpack_bits

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", nargs="+", help="a sweep store, or run datasets with --runs")
    p.add_argument("--metric", choices=("accuracy", "agree"), default="accuracy")
    p.add_argument("--runs", action="store_true",
                   help="the stores are run datasets of configs/design_space_full.toml")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--compact", action="store_true",
                   help="with --runs: one table over all datasets, then counts")
    a = p.parse_args(argv)
    if a.runs:
        (print_runs_compact if a.compact else print_runs)(a.store, a.alpha)
        return 0
    if len(a.store) != 1:
        p.error("one sweep store (several datasets only with --runs)")
    a.store = a.store[0]
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
