"""Compile (and cache on disk) the numba kernels a run config needs, on all cores.

numba compiles each kernel on first call, on one core, and caches it in ``__pycache__``.
The main job's kernels take about 70 CPU-seconds to compile (docs/performance.md, "Set-up
time"), most of it in four independent kernels: the accumulator families the config uses,
the fast rounding path and the exact reference. ``make run`` calls this module before the
run (``python -m accsim.warmup configs/paper_mlp.toml``); it compiles those kernels in
parallel worker processes, one job per kernel, then runs the config itself on 96 inputs to
compile what is left (small helpers), and writes nothing. With a warm cache it only loads.

Each job calls a kernel through the public API on small inputs, so it compiles the same
signature the run uses (operands are normalised to read-only C-contiguous float64 by
``check_matmul_shapes`` before any kernel sees them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SHIPPED = ("paper_mlp.toml", "tanh_mlp.toml", "cnn.toml")


def warm(paths) -> float:
    """Run each run config on 96 inputs (no output); returns the seconds spent."""
    from accsim.run.config import load_config
    from accsim.run.experiment import prepare, run_plan

    t0 = time.perf_counter()
    for path in paths:
        cfg = load_config(path)
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(
            update={"samples": 96, "record_samples": 2, "batch": 96, "plots": False})})
        try:
            plan = prepare(cfg)
        except ValueError as exc:
            if "networks.fetch" not in str(exc) and "apt-get" not in str(exc):
                raise
            plan = _prepare_on_digits(cfg)  # real data not fetched yet: kernels are the same
        run_plan(plan)
    return time.perf_counter() - t0


def kernel_jobs(paths) -> list[tuple]:
    """One job per distinct kernel the configs' models use, plus rounding and exact."""
    from accsim.run.config import load_config
    from accsim.run.experiment import resolve_model

    jobs, seen = [], set()
    for path in paths:
        cfg = load_config(path)
        for name, spec in cfg.models.items():
            model = resolve_model(name, cfg.models, f"models.{name}")
            key = type(model).__name__
            if key not in seen:
                seen.add(key)
                jobs.append(("model", spec))
    return jobs + [("round", None), ("exact", None)]


def run_job(job: tuple) -> float:
    """Compile one kernel (in a worker process); returns the seconds spent."""
    from accsim.accumulators.factory import build_model
    from accsim.numbers import exact
    from accsim.numbers.rounding import round as round_

    t0 = time.perf_counter()
    kind, spec = job
    rng = np.random.default_rng(0)
    A = round_(rng.standard_normal((16, 40)), "float8_e4m3")
    B = round_(rng.standard_normal((40, 8)), "float8_e4m3")
    if kind == "model":
        build_model(dict(spec)).matmul(A, B, np.zeros((16, 8)))
    elif kind == "round":
        for n in (8, 1 << 17):  # the serial and the parallel paths
            round_(rng.standard_normal(n), "binary16")
    else:  # the long accumulator (small products) and the error-free slices (large)
        exact.matmul(A, B, np.zeros((16, 8)))
        A2, B2 = np.repeat(A, 8, axis=0), np.repeat(B, 8, axis=1)  # 128 x 40 x 64 MACs
        exact.matmul(A2, B2, np.zeros((A2.shape[0], B2.shape[1])))
    return time.perf_counter() - t0


def warm_parallel(paths, workers: int = 2, kernels_only: bool = False) -> float:
    """Compile the configs' kernels in ``workers`` processes, then (unless
    ``kernels_only``) run each config on 96 inputs for the rest; returns the wall-clock
    seconds spent."""
    t0 = time.perf_counter()
    jobs = kernel_jobs(paths)
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork of numba's thread pools
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            list(pool.map(run_job, jobs))
    else:
        for job in jobs:
            run_job(job)
    if not kernels_only:
        warm(paths)
    return time.perf_counter() - t0


def _prepare_on_digits(cfg):
    """``prepare(cfg)`` with the digits test images as inputs: the kernels do not depend
    on the pixel values, so the warm-up works before the real data is fetched."""
    import tempfile

    import networks
    from accsim.run.experiment import prepare

    _, _, x, y = networks.digits_dataset()
    with tempfile.TemporaryDirectory(prefix="accsim-warmup-") as tmp:
        path = str(Path(tmp) / "digits.npz")
        np.savez(path, x=np.asarray(x[:96]), y=np.asarray(y[:96]))
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(
            update={"inputs": path, "dataset": None})})
        return prepare(cfg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m accsim.warmup", description=__doc__.split(
        "\n")[0])
    ap.add_argument("configs", nargs="*", type=Path,
                    help="run configs (default: the shipped ones)")
    ap.add_argument("--jobs", type=int, default=2, help="compiling processes (default 2)")
    ap.add_argument("--kernels-only", action="store_true",
                    help="only the big kernels, in parallel; the run compiles the small rest "
                         "(what `make run` does: the 96-input pass would cost more than it saves)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    paths = args.configs
    if not paths:
        root = Path(__file__).resolve().parents[1] / "configs"
        paths = [root / n for n in SHIPPED if (root / n).exists()]
    seconds = warm_parallel(paths, max(1, args.jobs), args.kernels_only)
    print(f"accsim warm-up: kernels for {len(paths)} config(s) ready in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
