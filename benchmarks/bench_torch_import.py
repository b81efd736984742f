"""Cost of the PyTorch front end: the imported graph against the hand-declared one.

Run: ``python benchmarks/bench_torch_import.py [--quick]`` (needs ``sh
scripts/install_pretrained.sh`` and torch). Writes ``benchmarks/results/torch_import.json``.

The same network, ccexam's MNIST CNN, two ways: declared (``configs/mnist_cnn.toml``) and
imported from its ``nn.Module`` by ``torch.export`` (``configs/mnist_cnn_torch.toml``);
the same images, the same model, ``run_graph`` with and without the exact reference,
timed alternately in the same run. ``ratio`` = declared time / imported time (1: the
front end costs nothing at run time; the two give the same bits, tests/test_torch_import.py).
The one-off import (``torch.export`` and lowering) is reported on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from accsim.graph import Assignment, run_graph  # noqa: E402
from accsim.graph.config import load_graph_config  # noqa: E402
from accsim.graph.experiment import load_graph, load_inputs  # noqa: E402
from accsim.run.strategies import Uniform  # noqa: E402
from hwmodels import resolve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "fp16-recursive": {"family": "recursive", "acc_format": "binary16", "product": "exact"},
    "fp8-e4m3-blocked8": {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
                          "outer_format": "float8_e4m3", "mode": "rne"},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    hand_cfg = load_graph_config(ROOT / "configs/mnist_cnn.toml")
    hand = load_graph(hand_cfg.network)
    t = time.perf_counter()
    cfg = load_graph_config(ROOT / "configs/mnist_cnn_torch.toml")
    imported = load_graph(cfg.network, ROOT / "configs")
    t_import = time.perf_counter() - t
    x, _ = load_inputs(hand_cfg.inputs, hand)
    macs = hand.macs() * len(x)
    rows = [{"benchmark": "torch_import", "case": "import ccexam MNISTNet (torch.export + "
             "lowering + check)", "value": t_import, "unit": "s", "baseline": "-",
             "baseline_value": None, "ratio": None, "note": "one run, includes torch's "
             "first export in the process"}]
    for label, spec in MODELS.items():
        a = Assignment({"default": Uniform(resolve(spec))}, label)
        for ref in (False, True):
            run_graph(hand, a, x, reference=ref)  # compile, warm caches
            best = {"hand": float("inf"), "imported": float("inf")}
            for _ in range(reps):  # alternated, so both see the same machine load
                for name, g in (("hand", hand), ("imported", imported)):
                    t = time.perf_counter()
                    run_graph(g, a, x, reference=ref)
                    best[name] = min(best[name], time.perf_counter() - t)
            case = f"mnist-cnn {label}: " + ("graph+reference" if ref else "graph")
            rows.append({"benchmark": "torch_import", "case": case,
                         "value": macs / best["imported"] / 1e6, "unit": "M MAC/s",
                         "baseline": "hand-declared graph, same run",
                         "baseline_value": macs / best["hand"] / 1e6,
                         "ratio": best["hand"] / best["imported"],
                         "note": f"{len(x)} images x {hand.macs()} MACs; best of {reps}"})
            r = rows[-1]
            print(f"{case:45s} imported {r['value']:8.2f} M MAC/s  declared "
                  f"{r['baseline_value']:8.2f}  ratio {r['ratio']:.2f}", flush=True)
    out = Path(__file__).resolve().parent / "results" / "torch_import.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"import {t_import:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()
