"""Reader of the idx file format of MNIST and Fashion-MNIST (plain or gzip-compressed).

Format (LeCun, Cortes, Burges, "The MNIST database of handwritten digits"; the same files
for Fashion-MNIST, Xiao, Rasul, Vollgraf, arXiv:1708.07747): a big-endian header of two
zero bytes, a type code (``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` int16,
``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``d``, then
``d`` big-endian uint32 sizes, then the data in C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "write_idx", "IDX_TYPES"]

#: idx type code -> numpy dtype (big-endian)
IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read an idx or idx.gz file.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (gzip detected from its first bytes, not its name).

    Returns
    -------
    numpy.ndarray
        The array in native byte order, shape from the header.

    Raises
    ------
    ValueError
        If the file is not a complete idx file (bad magic, unknown type code, truncated
        or trailing data); the message names the file.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: cannot read idx file: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (the first two bytes must be zero)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise ValueError(f"{path}: unknown idx type code 0x{code:02X}")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise ValueError(f"{path}: truncated idx header")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    dt = IDX_TYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(data) - head != need:
        raise ValueError(f"{path}: idx header promises {need} data bytes for shape {shape}, "
                         f"the file holds {len(data) - head}")
    arr = np.frombuffer(data, dt, offset=head).reshape(shape)
    return arr.astype(dt.newbyteorder("="))


def write_idx(path, arr: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``arr`` as an idx file (gzip if ``compress`` or the name ends in ``.gz``)."""
    path = Path(path)
    arr = np.asarray(arr)
    codes = {v.newbyteorder("="): k for k, v in IDX_TYPES.items()}
    dt = arr.dtype.newbyteorder("=")
    if dt not in codes:
        raise ValueError(f"dtype {arr.dtype} has no idx type code")
    code = codes[dt]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    body = np.ascontiguousarray(arr, IDX_TYPES[code]).tobytes()
    gz = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(head + body)
