"""End-to-end simulated MAC/s of the layer graph on the two imported CNNs.

Run: ``python benchmarks/bench_graph.py [--quick]`` (needs ``sh
scripts/install_pretrained.sh``; the MNIST network also needs torch). Writes
``benchmarks/results/graph.json``.

For each network and accumulator model, timed in the same run on the same images:

* ``kernel``: the raw matmul kernels alone, ``accumulators.base.run_model`` on every lowered
  matmul task of the network (inputs taken from the binary64 reference run);
* ``graph``: :func:`accsim.graph.run_graph` without the reference
  (``reference=False``): lowering (im2col), kernels, activations, rounding, the
  elementwise ops and the scaling;
* ``graph+reference``: the full run of ``accsim run``: plus the exact reference
  (``accsim.numbers.exact.matmul``) and the componentwise bound of every component;
* ``graph+reference, long accumulator``: the same with the exact reference forced onto
  the long accumulator alone (``exact.SLICE_MIN_MACS`` raised), as before the
  error-free slices: the before/after of the reference in one run.

``ratio`` = graph rate / kernel rate (the target is > 0.5, i.e. the graph costs less
than 2x the raw kernels). MAC counts are the networks' multiply-adds per image times
the images (the hardware models' zero padding of K is not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402

from accsim import round as _round  # noqa: E402
from accsim.accumulators.base import run_model  # noqa: E402
from accsim.graph import Assignment, run_graph  # noqa: E402
from accsim.graph.config import load_graph_config  # noqa: E402
from accsim.graph.experiment import load_graph, load_inputs  # noqa: E402
from accsim.numbers import exact  # noqa: E402
from accsim.run.strategies import Uniform  # noqa: E402
from hwmodels import resolve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "fp32-recursive": {"family": "recursive", "acc_format": "binary32", "product": "exact"},
    "fp8-e4m3-blocked8": {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
                          "outer_format": "float8_e4m3", "mode": "rne"},
    "hopper e4m3 (scaled)": "hopper:wgmma.m64n8k32.f32.e4m3.e4m3",
}


def _best(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench(cfg_path, n_images, reps):
    cfg = load_graph_config(ROOT / cfg_path)
    g = load_graph(cfg.network)
    x, _ = load_inputs(cfg.inputs, g)
    x = _round(x[:n_images], "binary32")
    ref = g.forward(x, return_all=True)
    macs = g.macs() * len(x)
    rows = []
    for label, spec in MODELS.items():
        m = resolve(spec)
        scale = "float8_e4m3fn" if "scaled" in label else None
        tasks = []
        for op in g.linear_ops:
            xin = ref[op.inputs[0]]
            for t in op.lower(_round(xin, "binary32")):
                W, X, C = t.W, t.X, t.C
                if scale:
                    W, X, C = W / np.abs(W).max() * 256, X / max(np.abs(X).max(), 1e-30) * 256, C
                tasks.append((W, X, C))

        def kernel(m=m, tasks=tasks):
            for W, X, C in tasks:
                run_model(m, W, X, C, seed=0)

        a = Assignment({"default": Uniform(m)}, label, scale)
        kernel()  # compile
        run_graph(g, a, x, reference=False)
        tk = _best(kernel, reps)
        tg = _best(lambda a=a: run_graph(g, a, x, reference=False), reps)
        tr = _best(lambda a=a: run_graph(g, a, x), 1)
        slices_min = exact.SLICE_MIN_MACS
        exact.SLICE_MIN_MACS = 1 << 62  # every product on the long accumulator
        try:
            tl = _best(lambda a=a: run_graph(g, a, x), 1)
        finally:
            exact.SLICE_MIN_MACS = slices_min
        for case, t in (("graph", tg), ("graph+reference", tr),
                        ("graph+reference, long accumulator (before)", tl)):
            rows.append({"benchmark": "graph", "case": f"{g.name} {label}: {case}",
                         "value": macs / t / 1e6, "unit": "M MAC/s",
                         "baseline": "raw matmul kernels, same tasks",
                         "baseline_value": macs / tk / 1e6, "ratio": tk / t,
                         "note": f"{len(x)} images x {g.macs()} MACs; best of {reps}"
                                 if case == "graph" else f"{len(x)} images; 1 run"})
            print(f"{rows[-1]['case']:60s} {rows[-1]['value']:8.2f} M MAC/s  "
                  f"kernel {rows[-1]['baseline_value']:8.2f}  ratio {rows[-1]['ratio']:.2f}",
                  flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    rows = bench("configs/mnist_cnn.toml", 20, reps)
    rows += bench("configs/cifar_cnn.toml", 1 if args.quick else 2, reps)
    out = Path(__file__).resolve().parent / "results" / "graph.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
