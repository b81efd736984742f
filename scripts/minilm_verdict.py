"""Issue 20's verdict table for a MiniLM run (``accsim minilm`` .nc output), markdown on
stdout.

Usage::

    python scripts/minilm_verdict.py RUN.nc [--alpha 0.01]

The rows of the run become one comparison family
(:func:`accsim.analysis.stats.comparison_family`, Holm over all its tests):

* an **adaptive row** is a cell with a LAMP criterion on the attention scores
  (:data:`accsim.transformer.lamp.CRITERIA`) or ``linear = "adaptive"``;
* its **controls** are the cells with the same scores model (``m_bits``), inputs and tau
  whose attention (for LAMP) or linear policy is ``random``, ``random-active`` or
  ``oracle`` (the LAMP controls of the same ``rule``); random seeds are replicates
  (Wilcoxon on their per-input mean log10 error, McNemar on the first seed);
* its **uniform comparators** are the cells with uniform attention and linear policies
  whose bit cost (Gbit per sentence) is at most the adaptive row's.

Per input, the output error is the sentence embedding's relative error against the
binary64 forward pass (``emb_err``), and agreement is the top-1 of its output
distribution (the most similar other sentence) agreeing with the binary64 network's
(``out_agree``). There are no labels: no accuracy test.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONTROL_KINDS = ("random", "random-active", "oracle")
#: hardware cost columns of the projections (accsim.run.hwcost), per sentence
HW = ("energy_pj", "h100_time_ns", "h100_tile_time_ns")


def family_rows(ds) -> list[dict]:
    """The rows of :func:`accsim.analysis.stats.comparison_family` for a MiniLM run
    dataset (one per cell and seed; inputs not run by every cell are dropped)."""
    from accsim.transformer.lamp import CRITERIA

    n_cells = ds.sizes["strategy" if "strategy" in ds.dims else "cell"]  # older stores: cell
    col = {k: ds[k].values for k in ("label", "seed", "linear", "attention", "rule",
                                     "m_bits", "lin_tau", "att_tau",
                                     "gbits_per_sentence", "lin_recomputed",
                                     "scores_recomputed")}
    for k in HW:
        col[k] = ds[k].values if k in ds else np.full(n_cells, np.nan)
    err, agree = ds["emb_err"].values, ds["out_agree"].values
    ok = ~np.isnan(err).any(axis=0) & ~np.isnan(agree).any(axis=0)
    cells = []
    for i in range(n_cells):
        lin, att = str(col["linear"][i]), str(col["attention"][i])
        if att in CRITERIA or lin == "adaptive":
            kind = "adaptive"
        elif att in CONTROL_KINDS or lin in CONTROL_KINDS:
            kind = att if att in CONTROL_KINDS else lin
        elif att == "uniform" and lin == "uniform":
            kind = "uniform"
        else:
            kind = "other"
        cells.append({"i": i, "kind": kind, "lin": lin, "att": att,
                      "rule": str(col["rule"][i]), "m": int(col["m_bits"][i]),
                      "lt": float(col["lin_tau"][i]), "at": float(col["att_tau"][i]),
                      "label": str(col["label"][i]), "seed": int(col["seed"][i])})
    first_seed = {}
    for c in cells:
        first_seed.setdefault(c["label"], c["seed"])

    def tau_eq(a, b):
        return (math.isnan(a) and math.isnan(b)) or a == b

    def matched(c):
        if c["kind"] not in CONTROL_KINDS:
            return ""
        for a in cells:
            if a["kind"] != "adaptive" or a["m"] != c["m"]:
                continue
            if c["att"] in CONTROL_KINDS and a["att"] in CRITERIA:
                if (a["rule"] == c["rule"] and tau_eq(a["at"], c["at"])
                        and a["lin"] == c["lin"] and tau_eq(a["lt"], c["lt"])):
                    return a["label"]
            elif c["lin"] in CONTROL_KINDS and a["lin"] == "adaptive":
                if tau_eq(a["lt"], c["lt"]) and a["att"] == c["att"] and \
                        tau_eq(a["at"], c["at"]):
                    return a["label"]
        return ""

    rows = []
    for c in cells:
        if c["kind"] == "other":
            continue
        i = c["i"]
        label = c["label"] if c["seed"] == first_seed[c["label"]] else \
            f"{c['label']}#{c['seed']}"
        rows.append({"label": label, "kind": c["kind"], "matched_to": matched(c),
                     "cost": float(col["gbits_per_sentence"][i]),
                     "error": err[i, ok], "agree": agree[i, ok].astype(bool),
                     "correct": None, "seed": c["seed"],
                     "recomputed": (float(col["lin_recomputed"][i]),
                                    float(col["scores_recomputed"][i])),
                     "hw": tuple(float(col[k][i]) for k in HW)})
    return rows


def _fmt_p(p):
    return "n/a" if np.isnan(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def table(ds, alpha: float) -> str:
    from accsim.analysis.stats import comparison_family, log10_error

    rows = family_rows(ds)
    comps = comparison_family(rows, alpha=alpha)
    m = sum(int(not np.isnan(c[k])) for c in comps
            for k in ("p_wilcoxon", "p_mcnemar_agree", "p_mcnemar_acc"))
    n = rows[0]["error"].size if rows else 0
    out = [f"MiniLM: n = {n} sentences, family of m = {m} tests (Holm), alpha = {alpha}",
           "",
           "| row | vs | median diff log10 err | p raw | p Holm | agree only row / only "
           "other | p raw (agree) | p Holm (agree) | MDD log10 | MDD agree |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in comps:
        other = c["other"] if c["relation"] == "uniform" else c["relation"]
        out.append(f"| {c['row']} | {other} | {c['median_log10_diff']:+.3f} | "
                   f"{_fmt_p(c['p_wilcoxon'])} | {_fmt_p(c['p_wilcoxon_holm'])} | "
                   f"{c['agree_b']} / {c['agree_c']} | {_fmt_p(c['p_mcnemar_agree'])} | "
                   f"{_fmt_p(c['p_mcnemar_agree_holm'])} | {c['mdd_log10']:.3f} | "
                   f"{c['mdd_agreement']:.4f} |")
    out += ["", "| row | kind | seed | median log10 emb. err | agreement | "
            "linear / scores recomputed | Gbit/sentence | projections and scores: energy uJ "
            "/ H100 us / H100 tiles us per sentence |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['label']} | {r['kind']} | {r['seed']} | "
                   f"{np.median(log10_error(r['error'])):.3f} | "
                   f"{np.mean(r['agree']):.4f} | {r['recomputed'][0]:.3f} / "
                   f"{r['recomputed'][1]:.3f} | {r['cost']:.3f} | "
                   f"{r['hw'][0] / 1e6:.3g} / {r['hw'][1] / 1e3:.3g} / "
                   f"{r['hw'][2] / 1e3:.3g} |")
    return "\n".join(out)


def main(argv=None) -> int:
    import xarray as xr

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--alpha", type=float, default=0.01)
    a = p.parse_args(argv)
    with xr.open_dataset(a.dataset, engine="h5netcdf") as ds:
        print(table(ds.load(), a.alpha))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
