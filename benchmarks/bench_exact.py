"""Speed of the exact reference ``accsim.numbers.exact.matmul`` against numpy, mpmath and fsum.

Speeds are in M MAC/s (multiply-accumulates per second), measured in one run so the
ratios are meaningful on a loaded machine (best of ``--repeat`` runs each, the contenders
of a case timed in turn within each repeat).

Target (issue 19): on 512x1024x512 binary32 N(0, 1) inputs, ``exact.matmul`` (error-free
slices on BLAS) reaches >= 1/10 of numpy's float64 matmul (which rounds). The same rows
time ``exact.matmul_long`` (the long accumulator alone: the reference before the slices)
against the same numpy run, and check that both give the same bits.

Baselines of the exactness rows (same correctly rounded ``A @ B``, checked on the
baseline subset):

* ``mpmath.fdot`` on mpf values with ``mp.prec`` high enough that every product and the
  sum are exact (gmpy2 backend), then rounded to binary64;
* ``math.fsum`` of the TwoProd parts (``hi = a*b`` and Dekker's exact error term
  ``lo``, vectorised in numpy), which is exact for these normal-range inputs.

Run: ``NUMBA_NUM_THREADS=2 python benchmarks/bench_exact.py``.
"""

from __future__ import annotations

import argparse
import math
import time

import mpmath
import numpy as np

from accsim.numbers import exact

_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp)


def two_prod_dekker(a, b):
    """Dekker's TwoProduct (no FMA): hi + lo == a * b exactly for normal-range inputs."""
    p = a * b
    ca = _SPLIT * a
    ah = ca - (ca - a)
    al = a - ah
    cb = _SPLIT * b
    bh = cb - (cb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def fsum_matmul(A, B):
    M, K = A.shape
    N = B.shape[1]
    out = np.empty((M, N))
    for j in range(N):
        p, e = two_prod_dekker(A, B[:, j][None, :])
        for i in range(M):
            out[i, j] = math.fsum(np.concatenate([p[i], e[i]]).tolist())
    return out


def mpmath_matmul(A, B):
    M, K = A.shape
    N = B.shape[1]
    out = np.empty((M, N))
    with mpmath.workprec(2300):  # products of these inputs need < 110 bits; sums < 2300
        Am = [[mpmath.mpf(float(x)) for x in row] for row in A]
        Bm = [[mpmath.mpf(float(B[k, j])) for k in range(K)] for j in range(N)]
        for i in range(M):
            for j in range(N):
                s = mpmath.fdot(Am[i], Bm[j])
                out[i, j] = float(s)  # mpf -> float rounds to nearest even
    return out


def best(fn, repeat):
    t = math.inf
    res = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        t = min(t, time.perf_counter() - t0)
    return t, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=512)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    M, N, K = args.m, args.n, args.k
    macs = M * N * K
    A64 = rng.standard_normal((M, K))
    B64 = rng.standard_normal((K, N))
    A32 = A64.astype(np.float32).astype(np.float64)
    B32 = B64.astype(np.float32).astype(np.float64)
    exact.matmul(A32[:64], B32[:, :64])  # compile / load caches
    exact.matmul_long(A64[:2, :8], B64[:8, :2])
    exact.matmul_long(A32[:2, :8], B32[:8, :2])

    speed = []  # (label, slices, long, numpy, same bits)
    for label, A, B in (("binary32 N(0,1)", A32, B32), ("binary64 N(0,1)", A64, B64)):
        t = {"slices": math.inf, "long": math.inf, "numpy": math.inf}
        res = {}
        fns = {"numpy": lambda A=A, B=B: A @ B, "slices": lambda A=A, B=B: exact.matmul(A, B),
               "long": lambda A=A, B=B: exact.matmul_long(A, B)}
        for _ in range(args.repeat):
            for name, fn in fns.items():
                dt, res[name] = best(fn, 1)
                t[name] = min(t[name], dt)
        same = np.array_equal(res["slices"].view(np.uint64), res["long"].view(np.uint64))
        speed.append((label, *(macs / t[x] / 1e6 for x in ("slices", "long", "numpy")), same))

    # exactness rows: cancellation-heavy rows (half the terms cancel the other half up to
    # tiny residues), against fsum and mpmath on a subset
    A64[: M // 4, K // 2:] = -A64[: M // 4, : K - K // 2] * (1 + 2.0**-30)
    A32 = A64.astype(np.float32).astype(np.float64)
    sub_m, sub_n = 16, 8  # baseline subset (baselines are orders of magnitude slower)
    rows = []
    for label, A, B in (("binary32 inputs, cancellation rows", A32, B32),
                        ("binary64 inputs, cancellation rows", A64, B64)):
        t, D = best(lambda A=A, B=B: exact.matmul(A, B), args.repeat)
        sm = sub_m * sub_n * K
        tf, Df = best(lambda A=A, B=B: fsum_matmul(A[:sub_m], B[:, :sub_n]), 1)
        tm, Dm = best(lambda A=A, B=B: mpmath_matmul(A[:sub_m // 4], B[:, :sub_n]), 1)
        ok = (np.array_equal(D[:sub_m, :sub_n].view(np.uint64), Df.view(np.uint64))
              and np.array_equal(D[:sub_m // 4, :sub_n].view(np.uint64), Dm.view(np.uint64)))
        r = macs / t / 1e6
        rf = sm / tf / 1e6
        rm = sm / 4 / tm / 1e6
        rows.append((label, r, rf, rm, ok))
    import numba

    print(f"exact matmul ({M}x{K}) @ ({K}x{N}), {numba.get_num_threads()} threads, "
          f"best of {args.repeat}")
    print(f"{'inputs':20s} {'slices':>10s} {'long acc':>10s} {'numpy f64':>10s} "
          f"{'slices/np':>10s} {'long/np':>8s}  same bits")
    for label, rs, rl, rn, same in speed:
        print(f"{label:20s} {rs:10.1f} {rl:10.1f} {rn:10.1f} {rs / rn:10.3f} {rl / rn:8.4f}  "
              f"{same}")
    print(f"{'inputs':36s} {'accsim':>10s} {'math.fsum':>10s} {'mpmath':>10s} "
          f"{'x fsum':>8s} {'x mpmath':>9s}  agree")
    for label, r, rf, rm, ok in rows:
        print(f"{label:36s} {r:10.1f} {rf:10.3f} {rm:10.3f} {r / rf:8.0f} {r / rm:9.0f}  {ok}")
    print("(M MAC/s; baselines on a subset of the same matrices, same results bit for bit)")
    write_rows(speed, rows, (M, K, N))


def write_rows(speed, rows, shape) -> None:
    """Write ``benchmarks/results/exact.json`` in the shared row format (README.md)."""
    import json
    from pathlib import Path

    out = []
    dims = "x".join(map(str, shape))
    for label, rs, rl, rn, same in speed:
        for name, v in (("exact.matmul (error-free slices)", rs),
                        ("exact.matmul_long (long accumulator alone, before)", rl)):
            out.append({"benchmark": "exact", "case": f"{name}, {dims} {label}", "value": v,
                        "unit": "M MAC/s", "baseline": "numpy float64 matmul (rounds)",
                        "baseline_value": rn, "ratio": v / rn,
                        "note": ("target >= 0.1; " if "slices" in name and "32" in label
                                 else "") + ("slices and long accumulator agree bit for bit"
                                             if same else "RESULTS DIFFER")})
    for label, r, rf, rm, ok in rows:
        for base, bv in (("math.fsum of TwoProd parts", rf), ("mpmath.fdot", rm)):
            out.append({"benchmark": "exact", "case": f"exact.matmul, {label}", "value": r,
                        "unit": "M MAC/s", "baseline": base, "baseline_value": bv,
                        "ratio": r / bv,
                        "note": "results agree bit for bit" if ok else "RESULTS DIFFER"})
    path = Path(__file__).parent / "results" / "exact.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
