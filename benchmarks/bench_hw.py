"""Throughput of the NVIDIA / AMD hardware models (M MAC/s), against numpy float32 matmul
timed in the same run, and MMA-Sim if importable.

Target (2 cores, 512 x 512 x 1024): fused dot-product steps (Hopper fp8 wgmma, Ampere
fp16 mma) >= 750 M MAC/s, bit-identical results.

Run: ``/tmp/v/bin/python benchmarks/bench_hw.py [--size M N K] [--repeat R]``; writes
``benchmarks/results/hw.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hwmodels  # noqa: E402

MODELS = (
    "hopper:wgmma.m64n256k32.f32.e4m3.e4m3",
    "ampere:mma.m16n8k16.f32.f16.f16.f32",
    "ampere:mma.m16n8k8.f32.tf32.tf32.f32",
    "hopper:wgmma.m64n256k16.f32.bf16.bf16",
    "hopper:wgmma.m64n256k16.f16.f16.f16",
    "volta:mma.m8n8k4.f32.f16.f16.f32",
    "cdna3:mfma.f32_32x32x8_f16",
    "cdna3:mfma.f32_16x16x32_fp8_fp8",
    "cdna2:mfma.f32_32x32x8f16",
    "cdna1:mfma.f32_32x32x8f16",
    "cdna3:mfma.f32_32x32x2_f32",
    "ampere:mma.m8n8k4.f64.f64.f64.f64",
)


def operands(model, M, N, K, seed=0):
    rng = np.random.default_rng(seed)
    acc = model.accumulator
    out = []
    for shape, t, fmt in (((M, K), model.a_type, acc.a_format),
                          ((K, N), model.b_type, acc.b_format)):
        x = rng.standard_normal(shape)
        if t in ("tf32", "xf32", "f32"):
            out.append(x.astype(np.float32))
        elif t == "f64":
            out.append(x)
        else:
            # any values of the format will do (a plain cast, not accsim's exact rounding)
            out.append(np.clip(x, -fmt.max, fmt.max).astype(np.float32).astype(fmt.ml_dtype))
    return out


def best_of(f, repeat):
    """Best wall-clock and best CPU (process) time of ``repeat`` calls."""
    ts, cs = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return min(ts), min(cs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", nargs=3, type=int, default=(512, 512, 1024))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/hw.json"))
    args = ap.parse_args(argv)
    M, N, K = args.size
    mac = M * N * K
    A32 = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    B32 = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
    t_np, c_np = best_of(lambda: A32 @ B32, args.repeat)
    rows = []
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; numpy float32 matmul: {mac / t_np / 1e6:.0f} M MAC/s")
    for name in MODELS:
        m = hwmodels.get(name)
        A, B = operands(m, M, N, K)
        kk = K - K % m.k
        A, B = A[:, :kk], B[:kk]
        small = m.matmul(A[:4, :m.k], B[:m.k, :4])  # compile
        del small
        slow = m.accumulator.family in ("exact-step", "recursive")
        rep = 1 if slow else args.repeat
        t, c = best_of(lambda: m.matmul(A, B), rep)  # noqa: B023
        r = dict(name=name, family=m.accumulator.family, M=M, N=N, K=kk, seconds=t,
                 cpu_seconds=c, mac_per_s=M * N * kk / t, mac_per_cpu_s=M * N * kk / c,
                 numpy_f32_mac_per_s=mac / t_np,
                 ratio_to_numpy=(M * N * kk / t) / (mac / t_np))
        rows.append(r)
        print(f"{name:45s} {r['family']:13s} {r['mac_per_s'] / 1e6:8.0f} M MAC/s wall, "
              f"{r['mac_per_cpu_s'] / 1e6:6.0f} M MAC per CPU-s "
              f"(numpy f32 / model = {1 / r['ratio_to_numpy']:.0f})", flush=True)
    mmasim = None
    cc = ROOT / "benchmarks/results/mmasim_crosscheck.json"
    if cc.exists():
        mmasim = json.loads(cc.read_text()).get("timings")
    out = dict(size=[M, N, K], load_average=load, numpy_f32_cpu_seconds=c_np,
               threads=os.environ.get("NUMBA_NUM_THREADS", "default"),
               cpu=platform.processor() or platform.machine(), numpy_f32_seconds=t_np,
               models=rows, mmasim_timings=mmasim)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
