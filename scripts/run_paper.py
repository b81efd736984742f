"""Run a paper configuration for several networks (training seeds) and data sets.

Usage::

    python scripts/run_paper.py CONFIG --network mlp-relu-mnist-s1 --dataset mnist \\
        [--samples 2000] --out results/paper/mnist-s1.zarr

The configuration's ``[run]`` section is overridden by the options; everything else
(models, strategies, controls, reference) is the configuration's. Writes the dataset
(``accsim.run.experiment.run_dataset``) and prints the summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from rich.console import Console

    from accsim.cli.run import _publish_run, summary_table
    from accsim.run.config import load_config
    from accsim.run.experiment import prepare, run_dataset, run_plan

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--network", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={
        "network": a.network, "dataset": a.dataset, "samples": a.samples,
        "output": a.out, "plots": False})})
    plan = prepare(cfg)
    acc, secs = run_plan(plan)
    ds = run_dataset(plan, acc, secs)
    ds.attrs.update(accsim_kind="run")
    _publish_run(ds, Path(a.out), plots=False)
    Console(width=200).print(summary_table(ds))
    print(f"run time {secs:.1f} s -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
