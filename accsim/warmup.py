"""Compile (and cache on disk) the numba kernels the shipped configs use.

numba compiles each kernel on first call and caches it in ``__pycache__``; a cold start
of the paper experiment spends about 75 s of its first run compiling. ``make`` runs
this module once after installing (``python -m accsim.warmup``), so that set-up pays
for compilation and the main job's own run time is what it measures. It runs every
strategy of the given configs (default: the shipped run configs) on 96 inputs (enough
to reach the parallel and large-array code paths)
and writes nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def warm(paths) -> float:
    """Run each run config on 96 inputs (no output); returns the seconds spent."""
    from .experiment import prepare, run_plan
    from .run_config import load_config

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


def _prepare_on_digits(cfg):
    """``prepare(cfg)`` with the digits test images as inputs (the set-up compiles the
    kernels before ``make data`` fetches the real images; the kernels do not depend on
    the pixel values)."""
    import tempfile

    import numpy as np

    import networks

    from .experiment import prepare

    _, _, x, y = networks.digits_dataset()
    tmp = tempfile.mkdtemp(prefix="accsim-warmup-")
    path = str(Path(tmp) / "digits.npz")
    np.savez(path, x=np.asarray(x[:96]), y=np.asarray(y[:96]))
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(
        update={"inputs": path, "dataset": None})})
    return prepare(cfg)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        paths = [Path(a) for a in argv]
    else:
        root = Path(__file__).resolve().parents[1] / "configs"
        paths = [root / n for n in ("paper_mlp.toml", "tanh_mlp.toml", "cnn.toml")
                 if (root / n).exists()]
    seconds = warm(paths)
    print(f"accsim warm-up: compiled kernels for {len(paths)} config(s) in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
