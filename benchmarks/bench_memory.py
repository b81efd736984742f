"""Peak memory (RSS) of a network run against the number of inputs (issue 19, item 3).

Runs ``accsim run CONFIG`` (a graph config: the batches stream through
``run_graph_plan``) in a fresh process per input count, on a copy of the config whose
``[run] samples`` is that count, and reads the child's peak resident set size from
``os.wait4`` (``ru_maxrss``, as ``/usr/bin/time -v`` reports it). The same on a checkout
of ``--before`` (default: none), alternated, so that before and after are measured in
the same session. ``ratio`` = peak RSS / peak RSS at the smallest input count of the same
tree (about 1: memory does not grow with the inputs).

Default: ``benchmarks/configs/cnn_run.toml`` (6 rows) at 100, 400 and 1000 MNIST test
images with the default batch workers. Usage: ``python benchmarks/bench_memory.py
[--config PATH] [--images 100,400,1000] [--before DIR]``; rows go to
``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "memory.json"
RUN = "import sys; from accsim.cli import app; sys.argv[0] = 'accsim'; app()"


def peak_rss(tree: Path, config: Path, n: int, tmp: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``accsim run`` on ``n`` inputs, in ``tree``."""
    text = config.read_text()
    cfg = tmp / f"run_{n}.toml"
    cfg.write_text(re.sub(r"(?m)^samples\s*=.*$", f"samples = {n}", text, count=1))
    out = tmp / f"out_{n}.zarr"
    env = dict(os.environ, PYTHONPATH=str(tree))
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", RUN, "run", str(cfg), "--out", str(out),
                          "--quiet", "--force"], cwd=tree, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"accsim run failed in {tree}:\n{err}")
    return usage.ru_maxrss / 1024, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="benchmarks/configs/cnn_run.toml")
    ap.add_argument("--images", default="100,400,1000")
    ap.add_argument("--before", default=None, help="a checkout of the commit before")
    args = ap.parse_args()
    config = (ROOT / args.config).resolve()
    counts = [int(v) for v in args.images.split(",")]
    trees = [("after", ROOT)]
    if args.before:
        before = Path(args.before).resolve()
        ref = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=before,
                             check=True, capture_output=True, text=True).stdout.strip()
        trees.insert(0, (f"before ({ref})", before))
    res = {}
    with tempfile.TemporaryDirectory(prefix="accsim-mem-") as tmp:
        for n in counts:
            for label, tree in trees:
                load = os.getloadavg()[0]
                mb, secs = peak_rss(tree, config, n, Path(tmp))
                res[label, n] = (mb, secs, load, time.strftime("%H:%M", time.gmtime()))
                print(f"{label:20s} {n:6d} inputs: peak RSS {mb:8.0f} MB  ({secs:.0f} s, "
                      f"load {load:.1f})", flush=True)
    rows = []
    for label, _ in trees:
        base = res[label, counts[0]][0]
        for n in counts:
            mb, secs, load, when = res[label, n]
            rows.append({"benchmark": "memory",
                         "case": f"{label}: {config.name}, {n} inputs, peak RSS",
                         "value": mb, "unit": "MB", "ratio": mb / base,
                         "baseline": f"the same tree at {counts[0]} inputs",
                         "baseline_value": base,
                         "note": f"accsim run, default batch workers; {secs:.0f} s; ended "
                                 f"{when} UTC, load {load:.1f} at start"})
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
