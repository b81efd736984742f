"""Inputs from a user's ``.npz`` file: arrays ``x`` (one input per row) and ``y`` (labels).

The one reader of ``.npz`` inputs of ``accsim run`` (network and layer-graph configs) and
``accsim sweep`` (``[networks.NAME] inputs``). Everything is checked before any work,
each problem named with the file and the rule:

* the file exists and is a complete ``.npz`` (a zip archive: a truncated or corrupt file
  is refused, as are pickled object arrays, which are never unpickled);
* it holds an array ``x``: a numeric (integer or floating-point) array of at least one
  input and at least one dimension, every value finite;
* ``y``, if present, holds one integer label per input (``y.shape == (len(x),)``);
  whether each label is a class of the network is checked against the network
  (:func:`accsim.run.validation.check_inputs`). Without ``y`` the inputs are unlabelled
  (``labels_required=False``) and only label-free metrics are measured.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_npz"]


def read_npz(path, *, labels_required: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` of an ``.npz``: ``x`` as float64, ``y`` as int64 or None (no ``y``).

    Parameters
    ----------
    path : path-like
        The ``.npz`` file (``numpy.savez``).
    labels_required : bool
        Refuse a file without ``y``.

    Raises
    ------
    ValueError
        Naming the file and the broken rule (see the module docstring).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"inputs file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("it holds a single array, not named arrays (write it "
                                 "with numpy.savez(path, x=..., y=...))")
            names = list(f.files)
            if "x" not in names:
                raise ValueError(f"no array 'x' (the inputs, one per row); arrays in the "
                                 f"file: {names or 'none'}")
            x = np.asarray(f["x"])
            y = np.asarray(f["y"]) if "y" in names else None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{p}: not a complete .npz archive (truncated or corrupt?): "
                         f"{exc}") from None
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{p}: x must be a numeric (integer or float) array, got dtype "
                         f"{x.dtype}")
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"{p}: x holds 0 inputs (shape {x.shape}); one input per row")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{p}: non-finite value x{list(i)} = {x[i]} ({int(bad.sum())} "
                         "in total); inputs must be finite")
    if y is None:
        if labels_required:
            raise ValueError(f"{p}: no array 'y': this network needs one integer label "
                             "per input next to 'x'")
        return x, None
    if y.dtype.kind not in "iu":
        raise ValueError(f"{p}: y must hold integer labels, got dtype {y.dtype}")
    if y.shape != (len(x),):
        raise ValueError(f"{p}: y has shape {y.shape}; expected ({len(x)},): one label "
                         "per input of x")
    return x, y.astype(np.int64)

