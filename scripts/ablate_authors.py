"""Which of the authors' choices change the outcome? Undo each one in turn.

Usage::

    python scripts/ablate_authors.py [CONFIG] [--samples N] [--out results/ablate.json]

Starting from the ``authors`` configuration (default ``configs/paper_mlp_authors.toml``:
normalised inputs, ``zero = "recompute"``, ReLU kappa on the output layer, blocked-8
high precision, saturating e4m3, bias added after the sum), each variant undoes ONE
choice and runs the uniform e4m3 / fp16 strategies and the authors' criterion at every
tol of the configuration (no controls: they do not enter the comparison). Every
strategy of a variant is compared with the same strategy of the full configuration on
the same test images: accuracy difference with a bootstrap 95 % CI and McNemar's exact
test on the discordant images (:func:`accsim.analysis.stats.paired_summary`), and the
change of the recomputed fraction. Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (name, what it undoes, function (run, models, strategy) -> (run, models, strategy)).
PLAIN_E4M3 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
              "outer_format": "float8_e4m3", "mode": "rne"}
RECURSIVE_FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne",
                  "product": "exact"}


def variants():
    """The ablations: name -> (description, edit of (run, models, strategy) dicts)."""
    def unnorm(r, m, s):
        return {**r, "network": r["network"].replace("-norm", "")}, m, s

    def keep_zero(r, m, s):
        return r, m, {**s, "zero": "keep"}

    def own_kappa(r, m, s):
        s = dict(s)
        s.pop("output_kappa", None)
        return r, m, s

    def recursive_high(r, m, s):
        return r, {**m, s["high"]: RECURSIVE_FP16}, s

    def no_saturation(r, m, s):
        return r, {**m, s["low"]: PLAIN_E4M3}, s

    def bias_initial(r, m, s):
        return {**r, "bias": "initial"}, m, s

    return {
        "full": ("all of the authors' choices", lambda r, m, s: (r, m, s)),
        "inputs-[0,1]": ("inputs in [0, 1], network trained so (mlp-relu-mnist-s0)",
                         unnorm),
        "zero=keep": ("a zero low value is kept", keep_zero),
        "own-output-kappa": ("identity kappa on the output layer", own_kappa),
        "recursive-high": ("high precision = recursive fp16, not blocked-8", recursive_high),
        "e4m3-overflow-inf": ("e4m3 overflows to inf (no saturation)", no_saturation),
        "bias-initial": ("bias = accumulator's initial value", bias_initial),
    }


def build(cfg_dict: dict, edit):
    """A validated RunConfig of one variant (uniform low/high + the authors' strategy)."""
    from accsim.run.config import parse_config

    auth = [s for s in cfg_dict["strategies"] if s.get("criterion") == "authors"][0]
    auth = {k: v for k, v in auth.items() if k != "controls"}
    run = {**cfg_dict["run"], "plots": False, "record_samples": 0}
    run, models, auth = edit(run, dict(cfg_dict["models"]), auth)
    strategies = [{"kind": "uniform", "model": auth["low"], "label": "uniform-low"},
                  {"kind": "uniform", "model": auth["high"], "label": "uniform-high"},
                  {**auth, "label": "authors-tol={tau}"}]
    run = {**run, "reference": "uniform-high"}
    return parse_config({"run": run, "models": models, "strategies": strategies})


def main(argv=None) -> int:
    import tomllib

    import numpy as np

    from accsim.analysis.stats import paired_summary
    from accsim.run.experiment import prepare, run_plan

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=str(ROOT / "configs/paper_mlp_authors.toml"))
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--out", default="results/ablate_authors.json")
    a = p.parse_args(argv)
    cfg = tomllib.loads(Path(a.config).read_text())
    cfg["run"]["samples"] = a.samples
    runs = {}
    for name, (_desc, edit) in variants().items():
        plan = prepare(build(cfg, edit))
        acc, secs = run_plan(plan)
        runs[name] = {lab: (acc[lab].per_image()["correct"], acc[lab].summary())
                      for lab in acc}
        print(f"{name}: {secs:.1f} s", file=sys.stderr)
    rows = []
    for name, (desc, _) in variants().items():
        for lab, (corr, summ) in runs[name].items():
            base_corr, base_summ = runs["full"][lab]
            ps = paired_summary(corr, base_corr, n_boot=10000, seed=0)
            rows.append({"variant": name, "undoes": desc, "strategy": lab,
                         "accuracy": summ["accuracy"],
                         "recomputed_fraction": summ["recomputed_fraction"],
                         "bit_cost": summ["bit_cost"], "agreement": summ["agreement"],
                         "delta_vs_full": ps["delta"], "delta_lo": ps["delta_lo"],
                         "delta_hi": ps["delta_hi"], "b": ps["b"], "c": ps["c"],
                         "p_mcnemar": ps["p_mcnemar"],
                         "d_recomputed": summ["recomputed_fraction"]
                         - base_summ["recomputed_fraction"],
                         "nonfinite": summ["nonfinite"],
                         "logit_rel_error_median": summ["logit_rel_error_median"],
                         "n": int(np.size(corr))})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print("| variant | strategy | accuracy | Δ vs full [95% CI] | b/c | McNemar p | "
          "recomputed (Δ) | agree exact | non-finite |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["variant"] == "full":
            d = "—"
        else:
            d = f"{r['delta_vs_full']:+.4f} [{r['delta_lo']:+.4f}, {r['delta_hi']:+.4f}]"
        print(f"| {r['variant']} | {r['strategy']} | {r['accuracy']:.4f} | {d} | "
              f"{r['b']}/{r['c']} | {r['p_mcnemar']:.3g} | "
              f"{r['recomputed_fraction']:.3f} ({r['d_recomputed']:+.3f}) | "
              f"{r['agreement']:.4f} | {r['nonfinite']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
