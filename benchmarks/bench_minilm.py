"""Whole MiniLM forward pass on the Hopper FP8 tensor-core model, against the raw kernel.

Measures, in the same run:

* the raw matmul rate of ``hopper:wgmma.m64n8k32.f32.e4m3.e4m3`` on the shape of the
  FFN input projection (1536 x 384 weights times the tokens of the batch), operands
  already rounded (``matmul_values``);
* the whole forward pass (every inner product on the per-tensor scaled FP8 tensor
  core, reductions on binary32 recursive accumulation): simulated MAC/s (every
  multiply-accumulate of the network, attention included, over the wall time) and
  sentences per second at 32 tokens;
* the binary64 reference forward pass (BLAS) for scale;
* the same simulated forward pass through the hand-written runner
  (:class:`accsim.transformer.op_runner.SimRunner`, the test reference of the graph
  path that ``accsim minilm`` runs): the graph path's time relative to it.

Requires ``make test`` (or ``make minilm``). Run: ``python benchmarks/bench_minilm.py
[--sentences 8]``; writes ``benchmarks/results/minilm.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOPPER = "hopper:wgmma.m64n8k32.f32.e4m3.e4m3"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()

    from accsim.transformer.minilm_graph import GraphEncoder
    from accsim.transformer.op_runner import SimRunner
    from accsim.transformer.opclass import MATMUL_CLASSES, OpModels, resolve_model
    from networks.minilm import load_weights
    from networks.transformer import encode

    w = load_weights()
    rng = np.random.default_rng(0)
    T = args.tokens
    # sentences of exactly T tokens: [CLS] + random word pieces + [SEP]
    ids = [np.concatenate([[101], rng.integers(1996, 29612, T - 2), [102]])
           for _ in range(args.sentences)]
    hop = resolve_model(HOPPER)
    ops = OpModels(resolve_model({"family": "recursive", "acc_format": "binary32",
                                  "mode": "rne", "product": "exact"}),
                   **{c: hop for c in MATMUL_CLASSES})
    GraphEncoder(w, ops).encode(ids[:1])  # compile
    encode(w, ids[:1], SimRunner(ops))

    # raw kernel on the FFN-in shape, operands pre-rounded
    W = w.layer(0, "intermediate.dense.weight")
    X = rng.standard_normal((384, T * args.sentences))
    Aq, Bq, Cq, _ = hop.quantize(W, X, np.zeros((W.shape[0], X.shape[1])))
    hop.hw.matmul_values(Aq, Bq, Cq)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0 or reps < 2:
        hop.hw.matmul_values(Aq, Bq, Cq)
        reps += 1
    raw = W.shape[0] * W.shape[1] * X.shape[1] * reps / (time.perf_counter() - t0) / 1e6

    g = GraphEncoder(w, ops)
    t0 = time.perf_counter()
    g.encode(ids)
    dt = time.perf_counter() - t0
    fwd = g.tally.total_macs() / dt / 1e6
    t0 = time.perf_counter()
    GraphEncoder(w, reference=True).encode(ids)
    dt_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    encode(w, ids, SimRunner(ops))
    dt_hand = time.perf_counter() - t0

    rows = [
        {"benchmark": "minilm", "case": f"forward pass, Hopper FP8 TC, {T} tokens",
         "value": fwd, "unit": "M MAC/s", "baseline": "raw Hopper FP8 kernel (FFN-in shape)",
         "baseline_value": raw, "ratio": fwd / raw,
         "note": f"{args.sentences} sentences, {g.tally.total_macs() / 1e6:.0f} M MAC "
                 "(every product of the network incl. attention); target ratio >= 0.5"},
        {"benchmark": "minilm", "case": f"sentences per second, Hopper FP8 TC, {T} tokens",
         "value": args.sentences / dt, "unit": "sentences/s",
         "baseline": "binary64 BLAS reference forward", "baseline_value":
             args.sentences / dt_ref, "ratio": dt_ref / dt, "note": "same sentences"},
        {"benchmark": "minilm", "case": f"graph path vs hand-written runner, {T} tokens",
         "value": args.sentences / dt, "unit": "sentences/s",
         "baseline": "op_runner.SimRunner (hand-written forward pass, same models)",
         "baseline_value": args.sentences / dt_hand, "ratio": dt_hand / dt,
         "note": "same sentences, same bits; target ratio >= 0.8"},
    ]
    out = ROOT / "benchmarks" / "results" / "minilm.json"
    out.write_text(json.dumps(rows, indent=1))
    for row in rows:
        print(f"{row['case']}: {row['value']:.4g} {row['unit']} (baseline "
              f"{row['baseline_value']:.4g}, ratio {row['ratio']:.3g})")


if __name__ == "__main__":
    main()
