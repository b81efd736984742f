"""Absolute figures of whole network runs on this machine (issue 19's "to report" list).

Each case is ``accsim run`` (or ``accsim minilm``) on a shipped configuration in a fresh
process, as a user runs it (default batch workers, output written), timed from outside:
wall time, the child's CPU time (user + system, ``os.wait4``) and its peak resident set
size (``ru_maxrss``). The simulated MAC rate is the run's own
``simulated_macs_per_second`` (dataset attribute, run time only) where it records one.

Cases (``--only NAME,...``):

* ``mnist-cnn``: ``configs/mnist_cnn.toml`` (9 uniform rows and the adaptive fp8 -> fp16
  row with its controls) on the 2,000 real MNIST test images of the registry set-up
  (``[inputs]`` replaced by those of ``benchmarks/configs/cnn_run.toml``, batch 50);
* ``cifar-cnn``: ``configs/cifar_cnn.toml`` on its 20 CIFAR-10 images, as shipped;
* ``minilm``: ``benchmarks/configs/minilm_290.toml``: MiniLM on all 290 lead sentences of
  the Lee corpus, one uniform Hopper FP8 tensor-core row.

These are absolute figures, so they move with the machine's load: every row's note gives
the load average (1 min) at its start and end. ``ratio`` is the CPU time over the wall
time (about the number of cores kept busy). Usage: ``python benchmarks/bench_networks.py
[--only mnist-cnn] [--images N]``; rows go to ``benchmarks/results/networks.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "networks.json"
CLI = "import sys; from accsim.cli import app; sys.argv[0] = 'accsim'; app()"


def _section(text: str, name: str) -> str:
    """The ``[name]`` table of a TOML text, header included, up to the next table."""
    m = re.search(rf"(?ms)^\[{re.escape(name)}\]\n.*?(?=^\[)", text)
    if m is None:
        raise SystemExit(f"no [{name}] table")
    return m.group(0)


def mnist_full(tmp: Path, images: int) -> Path:
    """``configs/mnist_cnn.toml`` on the registry MNIST test images (``images``, 0: all)."""
    text = (ROOT / "configs" / "mnist_cnn.toml").read_text()
    registry = _section((ROOT / "benchmarks" / "configs" / "cnn_run.toml").read_text(),
                        "inputs")
    text = text.replace(_section(text, "inputs"), registry)
    text = re.sub(r"(?m)^samples\s*=.*$", f"samples = {images}", text, count=1)
    text = re.sub(r"(?m)^batch\s*=.*$", "batch = 50", text, count=1)
    path = tmp / "mnist_cnn_registry.toml"
    path.write_text(text)
    return path


def child(argv: list[str]) -> dict:
    """Run ``accsim ARGV`` in a fresh process; wall s, CPU s, peak RSS (MB), loads."""
    load0, when0 = os.getloadavg()[0], time.strftime("%H:%M", time.gmtime())
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", CLI, *argv], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")  # drained while it runs
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.stderr.close()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"accsim {' '.join(argv)} failed:\n{err}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024,
            "when": f"{when0}-{time.strftime('%H:%M', time.gmtime())} UTC, load "
                    f"{load0:.1f}-{os.getloadavg()[0]:.1f}"}


def _rate(out: Path) -> tuple[float | None, float | None, int | None]:
    """(run seconds, simulated MAC/s, inputs) recorded in a run's dataset, if any."""
    import xarray as xr

    if not out.exists():
        return None, None, None
    with xr.open_zarr(out) as ds:
        a = ds.attrs
        return a.get("run_seconds"), a.get("simulated_macs_per_second"), a.get("n_samples")


def case_rows(name: str, tmp: Path, images: int) -> dict:
    if name == "minilm":
        stem = tmp / "minilm"
        r = child(["minilm", "benchmarks/configs/minilm_290.toml", "--out", str(stem)])
        what = ("MiniLM, 290 Lee-corpus sentences x 1 row (uniform Hopper FP8 TC), "
                "accsim minilm")
        r["run_s"], r["macs"], r["n"] = None, None, 290
        return {"what": what, **r}
    if name == "mnist-cnn":
        cfg, label = mnist_full(tmp, images), "configs/mnist_cnn.toml on the registry " \
            "MNIST test images"
    elif name == "cifar-cnn":
        cfg, label = ROOT / "configs" / "cifar_cnn.toml", "configs/cifar_cnn.toml"
    else:
        raise SystemExit(f"unknown case {name!r}; valid: mnist-cnn, cifar-cnn, minilm")
    out = tmp / f"{name}.zarr"
    r = child(["run", str(cfg), "--out", str(out), "--quiet", "--force"])
    r["run_s"], r["macs"], r["n"] = _rate(out)
    return {"what": f"{label}, accsim run", **r}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="mnist-cnn,cifar-cnn,minilm")
    ap.add_argument("--images", type=int, default=0,
                    help="registry MNIST images of the mnist-cnn case (0: all 2,000)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="accsim-networks-") as tmp:
        for name in args.only.split(","):
            r = case_rows(name, Path(tmp), args.images)
            extra = "" if r["macs"] is None else \
                f"; run {r['run_s']:.1f} s at {r['macs'] / 1e6:.0f} M simulated MAC/s"
            n = "" if r["n"] is None else f"{r['n']} inputs; "
            for case, value, unit in (("wall time", r["wall"], "s"),
                                      ("peak RSS", r["rss"], "MB")):
                rows.append({"benchmark": "networks", "case": f"{r['what']}: {case}",
                             "value": value, "unit": unit, "baseline": "CPU time (user + "
                             "system) of the same process" if case == "wall time" else None,
                             "baseline_value": r["cpu"] if case == "wall time" else None,
                             "ratio": r["cpu"] / r["wall"] if case == "wall time" else None,
                             "note": f"{n}CPU {r['cpu']:.0f} s{extra}; {r['when']}"})
            print(f"{name}: wall {r['wall']:.0f} s, CPU {r['cpu']:.0f} s, peak RSS "
                  f"{r['rss']:.0f} MB ({r['when']}){extra}", flush=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
