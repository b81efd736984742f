"""Tables of a LAMP run (configs/lamp_paper.toml): the uniform m sweep, and each rule
against the uniform cell of the same m and against its matched random control (paired
over the sequences, recomputed from the per-input KLs of the store with
:func:`accsim.transformer.minilm_run.comparisons`).

Usage: python scripts/lamp_summary.py results/lamp_paper   (reads .json and .nc)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from accsim.transformer.minilm_run import comparisons


def _ci(x):
    return f"{x['mean']:+.2f} [{x['lo']:+.2f}, {x['hi']:+.2f}], p = {x['p']:.1e}"


def main(stem: str) -> None:
    stem = Path(stem)
    d = json.loads(stem.with_suffix(".json").read_text())
    ds = xr.open_dataset(stem.with_suffix(".nc"))
    rows = d["rows"]
    per_att, per_out = {}, {}
    for i, r in enumerate(rows):
        key = (r["label"], r["seed"])
        per_att[key] = ds["att_kl"].values[i][:r["inputs"]]
        per_out[key] = ds["out_kl"].values[i][:r["inputs"]]
        assert np.all(np.isfinite(per_att[key]))
    print(f"{d['sentences']} of {d.get('inputs_total', d['sentences'])} sequences done, "
          f"{d['tokens'] / d['sentences']:.0f} tokens each\n")
    print("| cell | m | inputs | attention KL (mean) | output KL (mean) | top-1 flips | "
          "s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if r["attention"] == "uniform":
            m = r["m_bits"] if r["m_bits"] >= 0 else "binary32"
            print(f"| {r['label']} | {m} | {r['inputs']} | {r['kl_mean']:.3g} | "
                  f"{r['out_kl_mean']:.3g} | {r['flip_rate']:.3f} | {r['seconds']:.0f} |")
    print("\n| rule | m | tau | inputs | recomputed | att KL | uniform / rule, att (mean) | "
          "out KL | uniform / rule, out (mean) | random's recomputed | random's out KL |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    comps = comparisons(rows, per_att, per_out)
    for c in comps:
        for k in c["controls"]:
            print(f"| {c['rule']} | {c['m_bits']} | {c['tau']:g} | {c['inputs']} | "
                  f"{c['recomputed']:.3%} | {c['att_kl']:.3g} | "
                  f"{c.get('att_kl_ratio', float('nan')):.2f} | {c['out_kl']:.3g} | "
                  f"{c.get('out_kl_ratio', float('nan')):.2f} | {k['recomputed']:.3%} | "
                  f"{k['out_kl']:.3g} |")
    print("\nPaired over the sequences, mean log10(KL_rule / KL_other) [95% bootstrap CI], "
          "Wilcoxon p (negative: the rule more accurate):\n")
    print("| rule | vs uniform, attention KL | vs uniform, output KL | "
          "vs random, attention KL | vs random, output KL |")
    print("| --- | --- | --- | --- | --- |")
    for c in comps:
        u = c.get("vs_uniform")
        for k in c["controls"]:
            print(f"| {c['rule']} (m={c['m_bits']}, tau={c['tau']:g}) | "
                  f"{_ci(u['att_log10_ratio']) if u else '-'} | "
                  f"{_ci(u['out_log10_ratio']) if u else '-'} | "
                  f"{_ci(k['att_log10_ratio'])} | {_ci(k['out_log10_ratio'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
