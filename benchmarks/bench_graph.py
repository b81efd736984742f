"""End-to-end simulated MAC/s of the layer graph on the two imported CNNs.

Run: ``python benchmarks/bench_graph.py [--quick]`` (needs ``sh
scripts/install_pretrained.sh``; the MNIST network also needs torch). Writes
``benchmarks/results/graph.json``.

For each network and accumulator model, timed in the same run on the same images:

* ``kernel``: the raw matmul kernels alone, ``accsim.accumulators.base.run_model`` on every lowered
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

Then the network run itself (issue 19's target), ``benchmarks/configs/cnn_run.toml``:
``accsim run``'s :func:`accsim.graph.experiment.run_graph_plan` on real MNIST test images
with the exact reference and the bounds, rows uniform fp8 (e4m3 blocked-8) and fp16 and
the adaptive fp8 -> fp16 row with its random, random-active and oracle controls. It runs
four times in the same process: with one batch worker while every model call
(``Accumulator.matmul_values``: the raw kernels, with all numba threads) is timed, which
gives the kernel time of exactly the run's tasks; with the default workers (both cores),
as ``accsim run`` does; the 1-worker timed run again, so that the multi-worker run's
kernel baseline is the mean of the kernel times measured right before and right after
it (its concurrent model calls cannot be timed one at a time); and on one thread in CPU
time (``time.thread_time``: the share of the kernels in the work, independent of the
machine's load). ``ratio`` = kernel time / run time (target >= 0.5); the runs'
per-strategy results must agree bit for bit.

What "raw kernel" means here: the model calls the run makes, on exactly its tasks
(shapes, operands, seeds), each ``Accumulator.matmul_values``, i.e. the model as a user
calls it (its operand checks, about 8 % of it in a profile, and the jitted kernel);
everything else (lowering, the exact reference, the bounds, the strategies' selection,
activations, rounding, the tally) is the run's overhead. In the CPU-time run every model
call is repeated alone right after it, warm, and that repeat is the kernel time (the
repeat's time is not counted in the run's), so a kernel slowed by the run around it
(cold caches) does not flatter the ratio. ``--rounds N`` alternates the before and
after runs N times; each row is then the round of the median ratio and its note lists
every round, with the time and the load average (1 min) at its start and end.

With ``--before REF`` (default :data:`BEFORE`, the commit before the
network-run speed work, when the repository has it) the network run is first measured
on a clone of ``REF`` (its own numba cache, compiled first), in the same session, and
its rows are labelled ``before (REF)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# the tree whose accsim is measured: this checkout, or --tree (a clone, for --before)
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else None
sys.path.insert(0, _TREE or str(Path(__file__).resolve().parents[1]))

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


def _run_plan(cfg, workers):
    """``run_graph_plan`` on a fresh plan; returns (seconds, summaries, plan)."""
    from accsim.graph.experiment import prepare_graph, run_graph_plan

    plan = prepare_graph(cfg)
    t = time.perf_counter()
    acc, _ = run_graph_plan(plan, workers=workers)
    secs = time.perf_counter() - t
    return secs, {lab: a.summary() for lab, a in acc.items()}, plan


def _blas_threads(n):
    """BLAS limited to ``n`` threads (threadpoolctl, in the lock), else unchanged."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the CPU row then misses BLAS threads
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def bench_run(n_images):
    """The network run of ``benchmarks/configs/cnn_run.toml`` against its own kernels."""
    import numba

    from accsim.accumulators.base import Accumulator
    from accsim.run.parallel import default_workers

    cfg = load_graph_config(ROOT / "benchmarks" / "configs" / "cnn_run.toml")
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"samples": n_images})})
    small = cfg.model_copy(update={"run": cfg.run.model_copy(update={"samples": 8,
                                                                     "batch": 8})})
    _run_plan(small, 1)  # compile
    orig = Accumulator.matmul_values

    def instrumented(clock, threads, again=False):
        spent = [0.0, 0, 0.0]

        def timed(self, *a, **kw):
            t = clock()
            try:
                return orig(self, *a, **kw)
            finally:
                spent[0] += clock() - t
                spent[1] += 1
                if again:  # the same call once more, alone and warm (not part of the run)
                    t = clock()
                    orig(self, *a, **kw)
                    spent[2] += clock() - t

        Accumulator.matmul_values = timed
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            # one thread: BLAS too, so that the calling thread's CPU time is all the work
            with _blas_threads(threads):
                c0 = clock()
                _, summ, plan = _run_plan(cfg, 1)
                total = clock() - c0 - spent[2]
        finally:
            Accumulator.matmul_values = orig
            numba.set_num_threads(before)
        return spent[0], spent[1], total, summ, plan, spent[2]

    when0, load0 = time.strftime("%H:%M", time.gmtime()), os.getloadavg()[0]
    tk, calls, t1, s1, plan, _ = instrumented(time.perf_counter, numba.get_num_threads())
    workers = default_workers()
    tw, sw, _ = _run_plan(cfg, workers)
    # the kernels once more right after the multi-worker run: its baseline is the mean of
    # the kernel times measured just before and just after it (same definition as the
    # 1-worker baseline: the run's model calls one at a time, all numba threads)
    tk2, _, t1b, s1b, _, _ = instrumented(time.perf_counter, numba.get_num_threads())
    tk_w = (tk + tk2) / 2
    tk_in, _, t1_cpu, s_cpu, _, tk_cpu = instrumented(time.thread_time, 1, again=True)
    for other in (sw, s_cpu, s1b):
        if set(s1) != set(other) or any(repr(s1[k]) != repr(other[k]) for k in s1):
            raise SystemExit("bench_run: runs with other worker or thread counts differ")
    when = f"{when0}-{time.strftime('%H:%M', time.gmtime())} UTC, load " \
        f"{load0:.1f}-{os.getloadavg()[0]:.1f}"
    rows_n = len(s1)
    macs = plan.graph.macs() * len(plan.x) * rows_n
    name = f"{plan.graph.name} network run, reference + bounds, {rows_n} rows"
    what = f"{len(plan.x)} MNIST test images x {rows_n} rows x {plan.graph.macs()} MACs"
    out = []
    for case, t, k, base in (
            (f"{workers} batch workers (accsim run)", tw, tk_w,
             "raw kernels: the run's own model calls, one at a time, timed in the 1-worker "
             f"runs just before ({tk:.1f} s) and after ({tk2:.1f} s) it (mean)"),
            ("1 batch worker", t1, tk, "raw kernels: the run's own model calls, same run"),
            ("CPU time, one thread", t1_cpu, tk_cpu,
             "raw kernels: each of the run's model calls repeated alone right after it "
             f"(warm), CPU time, same run; in the run they took {tk_in:.1f} s")):
        out.append({"benchmark": "graph", "case": f"{name}: {case}",
                    "value": macs / t / 1e6,
                    "unit": "M MAC/CPU-s" if "CPU" in case else "M MAC/s",
                    "baseline": base, "baseline_value": macs / k / 1e6, "ratio": k / t,
                    "note": f"{what}; {calls} model calls ({k:.1f} s); run {t:.1f} s; "
                            f"target ratio >= 0.5; same results with 1 and {workers} "
                            f"workers; {when}"})
        print(f"{out[-1]['case']:80s} {out[-1]['value']:8.2f}  kernel "
              f"{out[-1]['baseline_value']:8.2f}  ratio {out[-1]['ratio']:.2f}", flush=True)
    return out


#: The commit before the network-run speed work of issue 19 (bounds and exact kernels).
BEFORE = "e79f940"


def before_tree(ref, tmp):
    """``(tree, short ref)`` of the commit ``ref`` (a clone in ``tmp``) or of a checkout
    directory ``ref`` (its numba cache warm); None if ``ref`` is not in the repo."""
    import subprocess

    if Path(ref).is_dir():
        tree = Path(ref)
        short = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                               check=True, capture_output=True, text=True).stdout.strip()
        return tree, short
    if subprocess.run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=ROOT,
                      capture_output=True).returncode:
        print(f"--before {ref}: not a commit of this repository; skipped")
        return None
    tree = Path(tmp) / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(tree)], check=True)
    subprocess.run(["git", "checkout", "--quiet", ref], cwd=tree, check=True)
    return tree, ref


def before_rows(tree, ref, n_images):
    """:func:`bench_run` on the checkout ``tree`` of ``ref`` (a subprocess running this
    script with ``--tree``); rows labelled ``before (ref)``."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="accsim-before-") as tmp:
        res = Path(tmp) / "rows.json"
        # the clone has no data directory of its own: it reads this checkout's
        env = dict(os.environ)
        env.setdefault("ACCSIM_DATA_DIR", str(ROOT / ".data"))
        subprocess.run([sys.executable, __file__, "--only-run", "--images", str(n_images),
                        "--tree", str(tree), "--rows", str(res)], check=True, env=env)
        rows = json.loads(res.read_text())
    for r in rows:
        r["case"] = f"before ({ref}): {r['case']}"
    return rows


def median_rows(rounds):
    """One row per case from several rounds of the same rows: the round of the median
    ratio (the lower one of an even count), its note listing every round's ratio."""
    if len(rounds) < 2:
        return rounds[0] if rounds else []
    out = []
    for per_case in zip(*rounds, strict=True):
        ratios = sorted(r["ratio"] for r in per_case)
        med = ratios[(len(ratios) - 1) // 2]
        row = dict(next(r for r in per_case if r["ratio"] == med))
        row["note"] += (f"; ratio of {len(ratios)} alternated before/after rounds: median "
                        f"{med:.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} (rounds: "
                        + ", ".join(f"{r['ratio']:.3f}" for r in per_case) + ")")
        out.append(row)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=None,
                    help="MNIST images of the network run (default 200, --quick 50)")
    ap.add_argument("--only-run", action="store_true",
                    help="only the network run (the other rows of graph.json are kept)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="network runs, alternated with the before runs; each row is the "
                         "round of the median ratio, its note lists every round")
    ap.add_argument("--before", default=BEFORE,
                    help=f"commit (or a checkout of it) measured first for the before "
                         f"rows (default {BEFORE}; 'none' skips)")
    ap.add_argument("--tree", help=argparse.SUPPRESS)  # the clone of --before
    ap.add_argument("--rows", help=argparse.SUPPRESS)  # where that run writes its rows
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    n_images = args.images or (50 if args.quick else 200)
    if args.rows:
        Path(args.rows).write_text(json.dumps(bench_run(n_images)))
        return
    import tempfile

    before, after = [], []
    with tempfile.TemporaryDirectory(prefix="accsim-before-") as tmp:
        tree = before_tree(args.before, tmp) if args.before != "none" else None
        for _ in range(max(1, args.rounds)):
            if tree is not None:
                before.append(before_rows(*tree, n_images))
            after.append(bench_run(n_images))
    rows = median_rows(before) + median_rows(after)
    out = Path(__file__).resolve().parent / "results" / "graph.json"
    if args.only_run and out.exists():  # keep the rows of the other cases
        rows += [r for r in json.loads(out.read_text()) if "network run" not in r["case"]]
    else:
        rows += bench("configs/mnist_cnn.toml", 20, reps)
        rows += bench("configs/cifar_cnn.toml", 1 if args.quick else 2, reps)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
