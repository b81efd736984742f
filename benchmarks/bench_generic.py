"""Throughput of the generic accumulator families (MAC/s) on a 512x512x1024 product.

Run: ``python benchmarks/bench_generic.py [--quick]``. Prints a table and writes
``benchmarks/results/generic.json``. The yardstick, numpy float32 matmul (BLAS), is
timed in the same run, and so is the peer simulator APyTypes (if installed): its fp16
inner products with products rounded to binary16 (``APyFloatAccumulatorContext(exp_bits=5,
man_bits=10)``) against accsim's ``recursive`` family doing the same arithmetic, which
``tests/test_apytypes_crosscheck.py`` shows bit-identical; the run also counts
mismatches on the benchmark shape. Slow families (Kahan, Kulisch) are timed on fewer
rows (column "M") and reported per MAC.

Two rates per model: wall clock (``mac_per_s``) and per CPU-second of the process
(``mac_per_cpu_s``, from ``time.process_time``: all threads' CPU time). On a shared,
loaded machine the wall-clock figures drop with the share of the cores we get; the
CPU-second figure does not (it is the rate per busy core), so it is the comparable one
between runs; on an idle machine wall ~= CPU rate x threads.

The "mlp" section times the seed paper's MLP layer shapes (W (m, n) @ X (n, batch),
784->784->128->10, batch columns) with the accumulators of the main job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numba  # noqa: E402
import numpy as np  # noqa: E402

import accsim  # noqa: E402
from hwmodels import resolve as build_model  # noqa: E402

APY_ROWS = 64  # APyTypes runs at tens of M MAC/s: time it (and accsim's twin) on fewer rows
APY_TWIN = {"family": "recursive", "acc_format": "fp16", "product": "rounded",
            "product_format": "fp16"}

CASES = [
    ("fp16-recursive-rne", "fp16-recursive-rne", None),
    ("fp32-recursive", "fp32-recursive", None),
    ("fp16-fma-chain", "fp16-fma-chain", None),
    ("fp16 SR r=8", {"family": "recursive", "acc_format": "fp16", "mode": "sr",
                     "sr_bits": 8}, None),
    ("bf16-sr-accumulator (r=16)", "bf16-sr-accumulator", None),
    ("bf16-sr-exact", "bf16-sr-exact", None),
    ("fp16 RZ recursive", {"family": "recursive", "acc_format": "fp16", "mode": "rz"}, None),
    ("fp8-e4m3-blocked8", "fp8-e4m3-blocked8", None),
    ("fp8-promotion-128", "fp8-promotion-128", None),
    ("fp16-pairwise", "fp16-pairwise", None),
    ("fp16-kahan", "fp16-kahan", 32),
    ("kulisch-fp32", "kulisch-fp32", 64),
]


def best_time(fn, reps):
    """(best wall-clock time, best process CPU time) over ``reps`` runs."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best, best_cpu


MLP = [(784, 784), (128, 784), (10, 128)]  # W shapes (m, n) of the seed paper's MLP
MLP_MODELS = ["fp8-e4m3-blocked8", "fp16-recursive-rne", "fp32-recursive"]


def mlp_rows(batch: int, reps: int) -> list[dict]:
    """Time the MLP's three layer products per accumulator (fp8 e4m3 data)."""
    rng = np.random.default_rng(1)
    out = []
    for spec in MLP_MODELS:
        model = build_model(spec)
        macs = wall = cpu = 0.0
        for m, n in MLP:
            W = accsim.round(rng.standard_normal((m, n)) / 8, "float8_e4m3")
            X = accsim.round(rng.standard_normal((n, batch)), "float8_e4m3")
            model.matmul(W, X)  # compile / warm up
            t, c = best_time(lambda mo=model, w=W, x=X: mo.matmul(w, x), reps)
            macs += m * n * batch
            wall += t
            cpu += c
        out.append({"model": spec, "batch": batch, "mac_per_s": macs / wall,
                    "mac_per_cpu_s": macs / cpu,
                    "seconds_per_3000_images": wall * 3000 / batch})
    return out


def apytypes_rows(A, B, reps: int) -> list[dict]:
    """APyTypes fp16 matmul and accsim's bit-identical twin, timed in this run."""
    try:
        import apytypes as apy
    except ImportError:
        return []
    A16 = accsim.round(np.ascontiguousarray(A[:APY_ROWS]), "fp16")
    B16 = accsim.round(B, "fp16")
    macs = A16.shape[0] * A16.shape[1] * B16.shape[1]
    Aa = apy.APyFloatArray.from_float(A16, exp_bits=5, man_bits=10)
    Ba = apy.APyFloatArray.from_float(B16, exp_bits=5, man_bits=10)

    def run_apy():
        with apy.APyFloatAccumulatorContext(exp_bits=5, man_bits=10):
            return Aa @ Ba

    theirs = run_apy().to_numpy()
    t_apy, c_apy = best_time(run_apy, reps)
    twin = build_model(APY_TWIN)
    ours = twin.matmul(A16, B16)
    t, c = best_time(lambda: twin.matmul(A16, B16), reps)
    mismatches = int(np.count_nonzero(ours.view(np.uint64) != theirs.view(np.uint64)))
    note = f"{mismatches} of {ours.size} outputs differ from APyTypes {apy.__version__}"
    return [
        {"model": f"APyTypes {apy.__version__} fp16 (peer)", "M": A16.shape[0],
         "mac_per_s": macs / t_apy, "mac_per_cpu_s": macs / c_apy, "note": note},
        {"model": "fp16 rounded products (APyTypes twin)", "M": A16.shape[0],
         "mac_per_s": macs / t, "mac_per_cpu_s": macs / c, "note": note},
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="128x128x256, 1 repetition")
    args = ap.parse_args()
    M = N = 128 if args.quick else 512
    K = 256 if args.quick else 1024
    reps = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    A = accsim.round(rng.standard_normal((M, K)), "float8_e4m3")
    B = accsim.round(rng.standard_normal((K, N)), "float8_e4m3")
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    t_np, c_np = best_time(lambda: A32 @ B32, 5)
    rows = [{"model": "numpy float32 matmul (yardstick)", "M": M,
             "mac_per_s": M * N * K / t_np, "mac_per_cpu_s": M * N * K / c_np,
             "vs_numpy": 1.0, "vs_apytypes": None}]
    apy_rows = apytypes_rows(A, B, reps)
    apy_rate = apy_rows[0]["mac_per_s"] if apy_rows else None
    for r in apy_rows:
        r["vs_numpy"] = r["mac_per_s"] / rows[0]["mac_per_s"]
        r["vs_apytypes"] = r["mac_per_s"] / apy_rate
    rows += apy_rows
    for label, spec, m_rows in CASES:
        model = build_model(spec)
        Mi = min(M, m_rows) if m_rows else M
        Ai = np.ascontiguousarray(A[:Mi])
        model.matmul(Ai[:2, :8].copy(), B[:8, :8].copy())  # compile
        model.matmul(Ai, B)  # warm-up at full size (parallel pool, caches)
        t, c = best_time(lambda m=model, a=Ai: m.matmul(a, B, seed=1), reps)
        macs = Mi * N * K / t
        rows.append({"model": label, "M": Mi, "mac_per_s": macs,
                     "mac_per_cpu_s": Mi * N * K / c,
                     "vs_numpy": macs / rows[0]["mac_per_s"],
                     "vs_apytypes": macs / apy_rate if apy_rate else None})
    print(f"{'model':38s} {'M':>4s} {'M MAC/s':>10s} {'/CPU-s':>8s} {'vs numpy':>9s} "
          f"{'vs APyTypes':>11s}")
    for r in rows:
        apy = "" if r["vs_apytypes"] is None else f"{r['vs_apytypes']:.1f}x"
        print(f"{r['model']:38s} {r['M']:4d} {r['mac_per_s'] / 1e6:10.1f} "
              f"{r['mac_per_cpu_s'] / 1e6:8.1f} {r['vs_numpy']:9.4f} {apy:>11s}"
              + (f"  {r['note']}" if "note" in r else ""))
    mlp = mlp_rows(256 if args.quick else 1000, reps)
    print("MLP 784-784-128-10 layer products (W @ X):")
    for r in mlp:
        print(f"  {r['model']:24s} batch {r['batch']:5d} {r['mac_per_s'] / 1e6:8.1f} M MAC/s "
              f"{r['mac_per_cpu_s'] / 1e6:8.1f} /CPU-s  {r['seconds_per_3000_images']:.2f} s "
              "per 3000 images")
    out = {
        "shape": [M, N, K], "threads": numba.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "rows": rows, "mlp": mlp,
    }
    path = Path(__file__).parent / "results" / "generic.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
