"""The one engine gives the bits of the engines it replaced (issue 18).

Before issue 18 the MLP runs went through ``accsim/run/executor.py`` and the layer-graph
configs through the graph runner. ``tests/data/engine_baseline.json`` holds, per shipped
configuration (run on a few inputs), a SHA-256 of every variable and coordinate of the
dataset ``accsim run`` wrote with that code (commit e79f940, before the engines were
merged). The test runs the same configurations on the current code and compares every
hash: one differing bit in one variable fails it, naming the variable.

Regenerate (only when a change of results is intended, and say so in the commit):
``PYTHONPATH=CHECKOUT python tests/test_engine_baseline.py --write`` from a checkout.

Several variables come from binary64 BLAS products (the bounds' ``|W||x|``, ``kappa_v``,
the propagated estimate): their last bits depend on the BLAS kernels of the machine. The
baseline records the BLAS library, version and kernel architecture, and the numpy
version, it was made with; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "data" / "engine_baseline.json"
#: configuration -> (samples, batch): small runs of the shipped files, two batches
#: where the configuration's input set allows (per-batch seeds and offsets)
RUNS = {"paper_mlp": (24, 12), "paper_mlp_authors": (24, 12), "cnn": (24, 12),
        "mnist_cnn": (4, 2)}
#: attributes that are not results: timings, the package version, the store's one-off
#: publish id
TIMING = ("run_seconds", "simulated_macs_per_second", "accsim_version", "publish_id")


def fingerprint() -> dict:
    """What the bits of binary64 BLAS products depend on besides accsim: numpy's
    version and its BLAS (library, version, kernel architecture; other BLAS copies
    loaded by torch or scipy do not compute numpy's products)."""
    from threadpoolctl import threadpool_info

    blas = [{k: d.get(k) for k in ("internal_api", "version", "architecture")}
            for d in threadpool_info()
            if d.get("user_api") == "blas" and "numpy" in str(d.get("filepath"))]
    return {"numpy": np.__version__, "blas": blas}


def variable_hash(values) -> str:
    """SHA-256 of a variable's dtype, shape and bytes (strings by their text)."""
    a = np.asarray(values)
    h = hashlib.sha256(f"{a.dtype.kind}{a.dtype.itemsize}|{a.shape}|".encode())
    if a.dtype.kind in "OUS":
        h.update("\x1f".join(str(v) for v in a.ravel()).encode())
    else:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def small_config(name: str, tmp: Path) -> Path:
    """``configs/NAME.toml`` with ``samples`` and ``batch`` of :data:`RUNS`."""
    samples, batch = RUNS[name]
    text = (ROOT / "configs" / f"{name}.toml").read_text()
    text, n1 = re.subn(r"(?m)^samples = .*$", f"samples = {samples}", text)
    text, n2 = re.subn(r"(?m)^batch = .*$", f"batch = {batch}", text)
    assert n1 == n2 == 1, f"configs/{name}.toml: expected one samples and one batch line"
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def dataset_hashes(name: str, tmp: Path) -> dict:
    """``accsim run`` on the small configuration: ``{variable: hash}`` and the non-timing
    attributes."""
    import xarray as xr

    from accsim.cli.run import run_command

    out = tmp / f"{name}.zarr"
    run_command(small_config(name, tmp), out, plots=False, quiet=True)
    ds = xr.open_zarr(out).load()
    return {"variables": {k: variable_hash(ds[k].values) for k in sorted(ds.variables)},
            "attrs": {k: str(v) for k, v in sorted(ds.attrs.items()) if k not in TIMING}}


def _available(name: str) -> bool:
    if name != "mnist_cnn":
        return True
    try:
        import torch  # noqa: F401 - the .pth reader

        from accsim.graph.config import resolve_file

        resolve_file("pkg:ccexam/weights/mnist.pth")
    except (ImportError, ValueError):
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_datasets_keep_the_bits_of_the_engines_before_issue_18(name, tmp_path,
                                                                 monkeypatch):
    base = json.loads(BASELINE.read_text())
    if base["fingerprint"] != fingerprint():
        pytest.skip(f"baseline made with {base['fingerprint']}, this machine has "
                    f"{fingerprint()} (BLAS bits differ between kernels)")
    if not _available(name):
        pytest.skip("ccexam / torch not installed (scripts/install_pretrained.sh)")
    monkeypatch.chdir(tmp_path)
    got = dataset_hashes(name, tmp_path)
    want = base["runs"][name]
    assert got["attrs"]["config_sha256"] == want["attrs"]["config_sha256"], (
        f"configs/{name}.toml changed since the baseline was made: a result change is "
        "expected; regenerate the baseline (module docstring) if it is intended")
    differ = sorted(k for k in want["variables"]
                    if got["variables"].get(k) != want["variables"][k])
    assert not differ, f"{name}: variables whose bits changed: {differ}"
    assert sorted(got["variables"]) == sorted(want["variables"])
    # the attributes that describe the run (models, formats, seeds) are unchanged too
    changed = sorted(k for k in want["attrs"] if got["attrs"].get(k) != want["attrs"][k])
    assert not changed, f"{name}: attributes changed: {changed}"


def _write(names) -> None:  # pragma: no cover - run by hand at the baseline commit
    import tempfile

    runs = {}
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            runs[name] = dataset_hashes(name, Path(d))
        print(name, len(runs[name]["variables"]), "variables", file=sys.stderr)
    BASELINE.write_text(json.dumps({"fingerprint": fingerprint(), "runs": runs},
                                   indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: PYTHONPATH=CHECKOUT python tests/test_engine_baseline.py --write")
    _write(sorted(RUNS))
