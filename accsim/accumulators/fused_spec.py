"""The fused dot-product units' specification, read by the family and by its bound.

What the hardware does, as data and small pure functions (no kernels, no model class):
the output roundings of the fused unit (``OUT_ROUNDINGS``), the alignment truncations
(``TRUNCS``), exponent decoding and tf32 input truncation. Sources: MMA-Sim (Xie, Wang,
Yang, Yang, arXiv:2511.10909, 2025), Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior
of NVIDIA tensor cores", PeerJ CS 2021, and ``docs/hwmodels.md``.
"""

from __future__ import annotations

import numpy as np

from accsim.kernels import fused as fk
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format

__all__ = ["OUT_ROUNDINGS", "TRUNCS", "ZSENT", "decode_exponents", "truncate_tf32"]

ZSENT = fk.ZSENT

#: The 14-bit-significand output of the fp32 tensor-core paths with e8m13 rounding
#: (docs/hwmodels.md): binary32's exponent range, 13 fraction bits.
E8M13 = FloatFormat.from_bits(8, 13)

# out_rounding -> (storage format name, rounding format, round toward zero)
_OUT_SPEC = {
    "rz-fp32": ("binary32", get_format("binary32"), True),
    "rne-fp32": ("binary32", get_format("binary32"), False),
    "rne-fp16": ("binary16", get_format("binary16"), False),
    "rz-e8m13": ("binary32", E8M13, True),
}
#: out_rounding -> (storage format name, p, emin, max, round toward zero), each derived
#: from the format presets (``accsim.numbers.formats``).
OUT_ROUNDINGS = {k: (store, f.p, f.emin, float(f.max), rz)
                 for k, (store, f, rz) in _OUT_SPEC.items()}
TRUNCS = ("rz", "floor")


def decode_exponents(X: np.ndarray, emin: int) -> np.ndarray:
    """Exponents of the values of X decoded in a format with minimum exponent ``emin``
    (docs/hwmodels.md, notation): ``max(floor(log2|x|), emin)``; zeros get
    :data:`~accsim.kernels.fused.ZSENT`, inf/NaN get 0."""
    ax = np.abs(X)
    fin = np.isfinite(ax) & (ax > 0)
    e = np.frexp(np.where(fin, ax, 1.0))[1].astype(np.int64) - 1
    e = np.maximum(e, emin)
    e = np.where(fin, e, 0)
    e = np.where(ax == 0, fk.ZSENT, e)
    return np.ascontiguousarray(e, dtype=np.int32)


def truncate_tf32(X: np.ndarray) -> np.ndarray:
    """fp32 values truncated toward zero to 10 fraction bits (docs/hwmodels.md: "tf32 inputs:
    an fp32 value is truncated (toward zero) to 10 fraction bits before use")."""
    bits = np.ascontiguousarray(X, dtype=np.float32).view(np.uint32)
    nan = np.isnan(X)
    out = (bits & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    return np.where(nan, np.nan, out)
