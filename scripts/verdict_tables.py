"""Verdict tables of issue 20 from run / graph datasets (markdown on stdout).

Usage::

    python scripts/verdict_tables.py DATASET [DATASET ...] [--alpha 0.01]

For each dataset (``accsim run`` output with the ``cmp_*`` comparison family):

* every adaptive row against ``random-active``, ``random`` and ``oracle`` (median paired
  difference of log10 output error vs binary64, raw and Holm p, agreement
  discordant pairs and Holm p) and against the cheaper uniform rows;
* the verdict: does the row beat ``random-active`` at Holm p < alpha on output error
  (negative median difference) and on agreement (more inputs agreeing only under the
  row, Holm p < alpha);
* the Pareto front of (cost, median log10 output error) over the implementable rows
  (uniform, adaptive, random, random-active; the oracle is not implementable) under each
  cost model: bits, energy, H100 time, H100 tile time;
* sample size, family size and the minimum detectable differences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COSTS = {"bits": "bit_cost", "energy": "energy_pj", "H100": "h100_time_ns",
         "H100 tiles": "h100_tile_time_ns"}


def _open(path):
    from accsim.run.datasets import load

    return load(path)


def _fmt_p(p):
    return "n/a" if np.isnan(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def pareto(cost, err) -> np.ndarray:
    """Mask of the points not dominated (another point with cost <= and error <=, one
    of them strictly)."""
    cost, err = np.asarray(cost, float), np.asarray(err, float)
    keep = np.ones(cost.size, bool)
    for i in range(cost.size):
        dom = (cost <= cost[i]) & (err <= err[i]) & ((cost < cost[i]) | (err < err[i]))
        keep[i] = not dom.any()
    return keep


IMPLEMENTABLE = ("uniform", "adaptive", "multilevel", "random", "random-active")


def fronts(ds) -> dict:
    """Per cost model (:data:`COSTS`), the mask of the dataset's rows on the Pareto front
    of (cost, median log10 output error) among the implementable rows (the oracle is
    not implementable; rows with a non-finite cost are left out)."""
    from accsim.analysis.stats import log10_error

    kinds = [str(x) for x in ds["strategy_kind"].values]
    med = np.median(log10_error(ds["logit_rel_error"].values), axis=1)
    impl = np.array([k in IMPLEMENTABLE for k in kinds])
    out = {}
    for name, var in COSTS.items():
        cost = ds[var].values
        ok = impl & np.isfinite(cost)
        f = np.zeros(len(kinds), bool)
        f[ok] = pareto(cost[ok], med[ok])
        out[name] = f
    return out


def tables(ds, alpha: float) -> str:
    from accsim.analysis.stats import log10_error

    lines = []
    labels = [str(x) for x in ds["strategy"].values]
    kinds = [str(x) for x in ds["strategy_kind"].values]
    n = int(ds.attrs.get("n_samples", 0))
    m = int(ds.attrs.get("comparison_family_size", 0))
    err = ds["logit_rel_error"].values
    med = np.median(log10_error(err), axis=1)
    lines.append(f"{ds.attrs.get('network', '?')}: n = {n} inputs, family of m = {m} "
                 f"tests (Holm), alpha = {alpha}")
    lines.append("")
    lines.append("| row | vs | median diff log10 err | p raw | p Holm | agree only row / "
                 "only other | p Holm (agree) | MDD log10 | MDD agree |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    c = {k.removeprefix("cmp_"): ds[k].values for k in ds.data_vars if k.startswith("cmp_")}
    verdict = {}
    for i in range(len(c.get("row", []))):
        row, rel = str(c["row"][i]), str(c["relation"][i])
        other = str(c["other"][i]) if rel == "uniform" else rel
        lines.append(
            f"| {row} | {other} | {c['median_log10_diff'][i]:+.3f} | "
            f"{_fmt_p(c['p_wilcoxon'][i])} | {_fmt_p(c['p_wilcoxon_holm'][i])} | "
            f"{c['agree_b'][i]} / {c['agree_c'][i]} | "
            f"{_fmt_p(c['p_mcnemar_agree_holm'][i])} | {c['mdd_log10'][i]:.3f} | "
            f"{c['mdd_agreement'][i]:.4f} |")
        if rel == "random-active":
            better_err = c["median_log10_diff"][i] < 0 and c["p_wilcoxon_holm"][i] < alpha
            worse_err = c["median_log10_diff"][i] > 0 and c["p_wilcoxon_holm"][i] < alpha
            better_ag = (c["agree_b"][i] > c["agree_c"][i]
                         and c["p_mcnemar_agree_holm"][i] < alpha)
            verdict[row] = ("beats" if better_err else "loses to" if worse_err
                            else "ties with", "beats" if better_ag else "does not beat")
    lines.append("")
    lines.append("| adaptive row | output error vs random-active (Holm p < alpha) | "
                 "agreement vs random-active | on Pareto front: " +
                 " | ".join(COSTS) + " |")
    lines.append("| --- | --- | --- | " + " | ".join("---" for _ in COSTS) + " |")
    front = fronts(ds)
    for i, lab in enumerate(labels):
        if kinds[i] not in ("adaptive", "multilevel"):
            continue
        e, a = verdict.get(lab, ("n/a", "n/a"))
        lines.append(f"| {lab} | {e} | {a} | " +
                     " | ".join("yes" if front[k][i] else "no" for k in COSTS) + " |")
    lines.append("")
    lines.append("| row | kind | median log10 err | agreement | accuracy | recomputed | "
                 "bits/input | energy uJ/input | H100 ns/input | H100 tiles ns/input |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, lab in enumerate(labels):
        if "#" in lab:
            continue  # further control seeds: pooled in the comparisons
        lines.append(
            f"| {lab} | {kinds[i]} | {med[i]:.2f} | {float(ds['agreement'].values[i]):.4f} | "
            f"{float(ds['accuracy'].values[i]):.4f} | "
            f"{float(ds['recomputed_fraction'].values[i]):.3f} | "
            f"{float(ds['bit_cost'].values[i]):.3g} | "
            f"{float(ds['energy_pj'].values[i]) / 1e6:.3g} | "
            f"{float(ds['h100_time_ns'].values[i]):.3g} | "
            f"{float(ds['h100_tile_time_ns'].values[i]):.3g} |")
    return "\n".join(lines)


def compact(paths, alpha: float) -> str:
    """One row per adaptive strategy, one column group per dataset: the median paired
    log10 difference against random-active with its Holm p, the agreement discordance
    against it, and the cost models under which the row is on the Pareto front."""

    dss = [(Path(p).stem, _open(p)) for p in paths]
    head = "| adaptive row | " + " | ".join(
        f"{name}: vs random-active (Holm p) | agree +/- | front" for name, _ in dss) + " |"
    lines = [head, "|" + " --- |" * (1 + 3 * len(dss))]
    rows = [str(lab) for lab, k in zip(dss[0][1]["strategy"].values,
                                       dss[0][1]["strategy_kind"].values, strict=True)
            if k in ("adaptive", "multilevel")]
    for row in rows:
        cells = []
        for _, ds in dss:
            c = {k.removeprefix("cmp_"): ds[k].values for k in ds.data_vars
                 if k.startswith("cmp_")}
            i = [j for j in range(len(c["row"]))
                 if str(c["row"][j]) == row and str(c["relation"][j]) == "random-active"]
            labels = [str(x) for x in ds["strategy"].values]
            front = fronts(ds)
            on = [name for name in COSTS if row in labels and front[name][labels.index(row)]]
            if not i:
                cells += ["n/a", "n/a", ", ".join(on) or "none"]
                continue
            j = i[0]
            mark = "**" if c["p_wilcoxon_holm"][j] < alpha else ""
            cells += [f"{mark}{c['median_log10_diff'][j]:+.3f}{mark} "
                      f"({_fmt_p(c['p_wilcoxon_holm'][j])})",
                      f"{c['agree_b'][j]}/{c['agree_c'][j]} "
                      f"({_fmt_p(c['p_mcnemar_agree_holm'][j])})",
                      ", ".join(on) or "none"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="+")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--compact", action="store_true",
                   help="one table over all datasets (e.g. the training seeds)")
    a = p.parse_args(argv)
    if a.compact:
        print(compact(a.datasets, a.alpha))
        return 0
    for path in a.datasets:
        print(f"### {path}\n")
        print(tables(_open(path), a.alpha))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
