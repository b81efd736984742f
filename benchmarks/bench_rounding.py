"""Benchmark: float64 -> bfloat16 / binary16 / float8_e4m3fn rounding.

accsim.round (RNE, SR with 8 random bits, exact SR) against ml_dtypes ``astype`` and
numpy ``astype(float16)`` from the same float64 array, in the same run. Reports values/s
(with all numba threads and with one; the output is float64, 4-8x the bytes the casts
write), ratios, and how many values the ml_dtypes/numpy casts get wrong in this run: every
value where a cast and accsim differ is re-rounded with exact ``Fraction`` arithmetic, and the
count of the cast's wrong results is reported with the library's version (ml_dtypes before
0.7 rounded float64 through float32, i.e. twice; 0.7 rounds once). Writes
``benchmarks/results/rounding.json`` as a list of rows (see ``benchmarks/README.md``).

Usage: ``python benchmarks/bench_rounding.py [--n 10000000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import ml_dtypes
import numba
import numpy as np

import accsim
import accsim.numbers.formats

ROOT = Path(__file__).resolve().parents[1]

RESULTS = Path(__file__).parent / "results" / "rounding.json"
TARGETS = {"bfloat16": ml_dtypes.bfloat16, "binary16": np.float16,
           "float8_e4m3fn": ml_dtypes.float8_e4m3fn}


def best_rate(fn, n, repeat):
    fn()  # warm-up (JIT compile, page faults)
    best = min(_timed(fn) for _ in range(repeat))
    return n / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def count_wrong(x, got, ours, name):
    """(wrong, accsim_wrong): values where `got` (a cast) differs from the exact RNE result.

    Only the values where the cast and accsim disagree are re-rounded exactly, with the
    slow ``fractions.Fraction`` reference of ``tests/reference.py``: whichever differs
    from it is wrong there (values where both agree are either both right or both wrong;
    accsim's agreement with the reference elsewhere is the test suite's job).
    """
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import reference as R  # the independent Fraction implementation

    fmt = accsim.format(name)
    diff = np.flatnonzero(got.view(np.uint64) != ours.view(np.uint64))
    exact = np.array([R.ref_round(float(v), fmt) for v in x[diff]])
    wrong = int(np.count_nonzero(got[diff].view(np.uint64) != exact.view(np.uint64)))
    ours_wrong = int(np.count_nonzero(ours[diff].view(np.uint64) != exact.view(np.uint64)))
    return wrong, ours_wrong


def inputs(n, seed=0):
    """Standard normal values (the typical activation/weight range), float64."""
    return np.random.default_rng(seed).standard_normal(n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n = args.n
    x = inputs(n)
    rows = []
    for name, dt in TARGETS.items():
        ref = accsim.round(x, name)
        base_name = "ml_dtypes astype" if name != "binary16" else "numpy astype(float16)"
        base = best_rate(lambda dt=dt: x.astype(dt), n, args.repeat)
        wrong, ours_wrong = count_wrong(x, x.astype(dt).astype(np.float64), ref, name)
        lib = (f"ml_dtypes {ml_dtypes.__version__}" if name != "binary16"
               else f"numpy {np.__version__}")
        verdict = (f"baseline ({lib}) wrong on {wrong}/{n} values, accsim on {ours_wrong} "
                   "(disagreements re-rounded with Fractions)")
        cases = [("rne", {}), ("sr8", {"sr_bits": 8}), ("sr_exact", {})]
        for (case, kw), threads in itertools.product(cases, (numba.config.NUMBA_NUM_THREADS, 1)):
            mode = "rne" if case == "rne" else "sr"
            numba.set_num_threads(threads)
            rate = best_rate(lambda name=name, mode=mode, kw=kw:
                             accsim.round(x, name, mode, seed=1, **kw), n, args.repeat)
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            rows.append({
                "benchmark": "rounding",
                "case": f"float64->{name} {case} ({threads} thread{'s' * (threads > 1)})",
                "value": rate / 1e6, "unit": "M values/s", "baseline": base_name,
                "baseline_value": base / 1e6, "ratio": rate / base,
                "note": verdict if case == "rne" else "baseline is RNE only",
            })
        # same output type as the casts: codes of the narrow dtype (2 or 1 bytes a value)
        for case, mode, kw in [("rne", "rne", {}), ("sr8", "sr", {"sr_bits": 8})]:
            rate = best_rate(lambda name=name, mode=mode, kw=kw: accsim.codecs.to_ml_dtypes(
                x, name, mode, seed=1, **kw), n, args.repeat)
            rows.append({
                "benchmark": "rounding", "case": f"to_ml_dtypes float64->{name} {case}",
                "value": rate / 1e6, "unit": "M values/s", "baseline": base_name,
                "baseline_value": base / 1e6, "ratio": rate / base,
                "note": "narrow output like the cast; exact" + (
                    "" if case == "rne" else "; baseline is RNE only"),
            })
        if name == "bfloat16":
            y = np.float64(1 + 2.0**-8 + 2.0**-30)
            rows.append({
                "benchmark": "rounding", "case": "double-rounding example 1+2^-8+2^-30",
                "value": float(accsim.round(y, name)), "unit": "result",
                "baseline": f"ml_dtypes {ml_dtypes.__version__} astype",
                "baseline_value": float(np.array([y]).astype(dt).astype(np.float64)[0]),
                "ratio": None, "note": "exact RNE result is 1.0078125; a float64->float32->"
                                       "bf16 path gives 1.0",
            })
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    for r in rows:
        ratio = "" if r["ratio"] is None else f"  x{r['ratio']:.2f}"
        print(f"{r['case']:<40} {r['value']:10.4g} {r['unit']:<11} vs {r['baseline']} "
              f"{r['baseline_value']:.4g}{ratio}  {r['note']}")
    return rows


if __name__ == "__main__":
    main()
