"""Build the wheel and try it as a new user would, outside the checkout.

    python scripts/check_wheel.py [--workdir /tmp/accsim-wheel-check] [--keep]

Steps (each printed with its time; the first failure stops with exit code 1):

1. ``pip wheel . --no-deps`` into WORKDIR/dist;
2. a fresh venv WORKDIR/venv; the wheel installed with its dependencies at the versions of
   ``requirements.lock`` (``pip install -c requirements.lock``);
3. from WORKDIR/home (cwd outside the checkout, ``PYTHONPATH`` and ``ACCSIM_DATA_DIR``
   unset, ``XDG_DATA_HOME`` = WORKDIR/xdg): ``accsim --version``, ``accsim examples``,
   ``accsim examples paper_mlp --to runs``, ``accsim fetch mnist`` (the data must land
   in WORKDIR/xdg/accsim), ``accsim run runs/paper_mlp.toml``, which must write its
   dataset.

Not part of the test suite (it installs packages and takes minutes); the suite checks
the cheap part (tests/test_examples.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(title: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    dt = time.perf_counter() - t0
    tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-12:])
    print(f"  [{title}: exit {r.returncode}, {dt:.1f} s]\n{tail}\n", flush=True)
    if r.returncode != 0:
        raise SystemExit(1)
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/accsim-wheel-check"))
    p.add_argument("--example", default="paper_mlp")
    a = p.parse_args(argv)
    w = a.workdir.resolve()
    if ROOT in (w, *w.parents):
        p.error("--workdir must be outside the checkout")
    shutil.rmtree(w, ignore_errors=True)
    (w / "home").mkdir(parents=True)
    step("wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                   "-q", "-w", str(w / "dist"), str(ROOT)])
    wheel = next((w / "dist").glob("accsim-*.whl"))
    step("venv", [sys.executable, "-m", "venv", str(w / "venv")])
    py = w / "venv" / "bin" / "python"
    step("install", [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "-c", str(ROOT / "requirements.lock"), str(wheel)])
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ACCSIM_DATA_DIR", "VIRTUAL_ENV")}
    env.update(XDG_DATA_HOME=str(w / "xdg"), PATH=f"{w / 'venv' / 'bin'}:{env['PATH']}")
    accsim = str(w / "venv" / "bin" / "accsim")
    kw = {"cwd": w / "home", "env": env}
    r = step("where", [str(py), "-c", "import accsim, networks; print(accsim.__file__); "
                       "print(networks.__file__)"], **kw)
    assert str(ROOT) not in r.stdout, "imported from the checkout"
    step("version", [accsim, "--version"], **kw)
    r = step("examples", [accsim, "examples"], **kw)
    assert a.example in r.stdout
    step("copy", [accsim, "examples", a.example, "--to", "runs"], **kw)
    step("fetch", [accsim, "fetch", "mnist"], **kw)
    assert (w / "xdg" / "accsim" / "mnist.npz").is_file(), "MNIST not in the user data dir"
    step("run", [accsim, "run", f"runs/{a.example}.toml"], **kw)
    out = list((w / "home" / "results").glob("*.zarr"))
    assert out, "the run wrote no dataset"
    print(f"OK: wheel {wheel.name} installed outside the checkout ran {a.example}; "
          f"dataset {out[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
