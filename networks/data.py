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

__all__ = ["digits_dataset", "upsample", "augment", "split_originals"]

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
