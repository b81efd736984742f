"""Tables of a LAMP run (configs/lamp_paper.toml): the uniform m sweep and each rule
against the uniform cell of the same m and its matched random control.

Usage: python scripts/lamp_summary.py results/lamp_paper.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    d = json.load(open(path))
    print(f"{d['sentences']} sequences, {d['tokens']} tokens "
          f"({d['tokens'] / d['sentences']:.1f} per sequence)\n")
    print("| cell | m | attention KL (mean) | output KL (mean) | top-1 flips | s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in d["rows"]:
        if r["attention"] == "uniform":
            m = r["m_bits"] if r["m_bits"] >= 0 else "binary32"
            print(f"| {r['label']} | {m} | {r['kl_mean']:.3g} | {r['out_kl_mean']:.3g} | "
                  f"{r['flip_rate']:.3f} | {r['seconds']:.0f} |")
    print("\n| rule | m | tau | recomputed | att KL | uniform/rule (att) | out KL | "
          "uniform/rule (out) | vs random: att log10 ratio [95% CI], p | "
          "out log10 ratio [95% CI], p | random recomputed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for c in d["comparisons"]:
        for k in c["controls"] or [None]:
            a = o = "-"
            rr = "-"
            if k:
                x, y = k["att_log10_ratio"], k["out_log10_ratio"]
                a = f"{x['mean']:+.2f} [{x['lo']:+.2f}, {x['hi']:+.2f}], {x['p']:.1e}"
                o = f"{y['mean']:+.2f} [{y['lo']:+.2f}, {y['hi']:+.2f}], {y['p']:.1e}"
                rr = f"{k['recomputed']:.3%}"
            print(f"| {c['rule']} | {c['m_bits']} | {c['tau']:g} | {c['recomputed']:.3%} | "
                  f"{c['att_kl']:.3g} | {c.get('att_kl_ratio', float('nan')):.2f} | "
                  f"{c['out_kl']:.3g} | {c.get('out_kl_ratio', float('nan')):.2f} | {a} | {o} "
                  f"| {rr} |")


if __name__ == "__main__":
    main(sys.argv[1])
