"""Set-up time of a fresh ``make run``, phase by phase, as a new user sees it.

Clones a commit of this repository into a temporary directory and times, there:

1. ``install``: the Makefile's set-up target (venv, pip from the lock), with pip's cache
   disabled so every wheel is fetched as on a fresh machine;
2. ``warm-up``: ``python -m accsim.warmup [--kernels-only] configs/paper_mlp.toml`` as the
   Makefile's ``run`` target calls it (kernel compilation;
   absent before the set-up rework, where the install step compiled instead);
3. ``run``: ``accsim run configs/paper_mlp.toml --no-plots`` into the temporary directory.

``--ref`` picks the commit (default ``HEAD``), so the same script measures before and after
a change on the same machine in the same session; ``--label`` names it in the rows. Rows
go to ``benchmarks/results/setup.json`` (appended per label, see ``benchmarks/README.md``).
Each phase is timed as wall-clock seconds; the load average is recorded with it, since a
busy machine stretches every phase.

Usage: ``python benchmarks/bench_setup.py [--ref REF] [--label NAME]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "setup.json"


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - t


def measure(ref: str, label: str) -> list[dict]:
    env = dict(os.environ, PIP_NO_CACHE_DIR="1")
    tmp = Path(tempfile.mkdtemp(prefix="accsim-setup-"))
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(tmp / "repo")], check=True)
        repo = tmp / "repo"
        subprocess.run(["git", "checkout", "--quiet", ref], cwd=repo, check=True)
        phases = {"install": timed(["make", ".venv/.installed"], repo, env)}
        bin_ = repo / ".venv" / "bin"
        make = (repo / "Makefile").read_text()
        if "accsim.warmup --kernels-only configs" in make:
            phases["warm-up"] = timed([str(bin_ / "python"), "-m", "accsim.warmup",
                                       "--kernels-only", "configs/paper_mlp.toml"], repo, env)
        elif "accsim.warmup configs" in make:
            phases["warm-up"] = timed([str(bin_ / "python"), "-m", "accsim.warmup",
                                       "configs/paper_mlp.toml"], repo, env)
        phases["run"] = timed([str(bin_ / "accsim"), "run", "configs/paper_mlp.toml",
                               "--out", str(tmp / "out.zarr"), "--no-plots"], repo, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(phases.values())
    load = os.getloadavg()[0]
    rows = [{"benchmark": "setup", "case": f"{label}: {name}", "value": secs, "unit": "s",
             "baseline": None, "baseline_value": None, "ratio": secs / total,
             "note": f"share of the total; load average {load:.1f}"}
            for name, secs in phases.items()]
    rows.append({"benchmark": "setup", "case": f"{label}: total (fresh make run)",
                 "value": total, "unit": "s", "baseline": None, "baseline_value": None,
                 "ratio": 1.0, "note": f"commit {ref}; load average {load:.1f}"})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--label", default="after")
    args = ap.parse_args(argv)
    rows = measure(args.ref, args.label)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    keep = [r for r in old if not r["case"].startswith(f"{args.label}: ")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(keep + rows, indent=1))
    for r in rows:
        print(f"{r['case']:<40} {r['value']:8.1f} s  {r['note']}")


if __name__ == "__main__":
    main()
