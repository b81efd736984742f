"""Codes of a format: :func:`decode`, :func:`encode`, :func:`all_values`, and
:func:`to_ml_dtypes` (bit patterns of numpy / ml_dtypes arrays set directly).

Encoding rounds first (:func:`accsim.round`, every mode of ``docs/rounding.md``), so this
module sits above :mod:`.rounding`; :mod:`.formats` only describes formats.
Code layouts: IEEE 754-2019 section 3.4 (binary interchange formats), OCP 8-bit Floating
Point Specification (OFP8) v1.0 and OCP Microscaling Formats (MX) v1.0 (fn, fnuz, e8m0).
"""

from __future__ import annotations

import numpy as np

from accsim.kernels import fastround as fr
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import _PARALLEL_MIN, check_sr_bits, mode_code
from accsim.numbers.rounding import round as _round
from accsim.numbers.seeds import check_seed

__all__ = ["decode", "encode", "all_values", "to_ml_dtypes"]


def _code_dtype(fmt: FloatFormat):
    return np.uint8 if fmt.bits <= 8 else np.uint16 if fmt.bits <= 16 else (
        np.uint32 if fmt.bits <= 32 else np.uint64
    )


def decode(codes, fmt: str | FloatFormat) -> np.ndarray:
    """Decode integer codes of ``fmt`` into float64 values (NaN for NaN codes).

    Parameters
    ----------
    codes : array_like of int
        Bit patterns, the sign in bit ``bits - 1``.
    fmt : str or FloatFormat
    """
    fmt = get_format(fmt)
    c = np.asarray(codes).astype(np.uint64)
    if np.any(c >> np.uint64(fmt.bits)):
        raise ValueError(f"codes exceed {fmt.bits} bits for {fmt.name}")
    m = fmt.mantissa_bits
    frac = (c & np.uint64((1 << m) - 1)).astype(np.float64)
    ef = ((c >> np.uint64(m)) & np.uint64((1 << fmt.exponent_bits) - 1)).astype(np.int64)
    sign = np.ones(c.shape) if not fmt.signed else np.where(
        (c >> np.uint64(fmt.bits - 1)) & np.uint64(1), -1.0, 1.0
    )
    if fmt.specials == "e8m0":
        mag = np.ldexp(1.0, (ef - fmt.bias).astype(np.int32))
    else:
        normal = ef > 0
        e = np.where(normal, ef - fmt.bias, fmt.emin).astype(np.int32)
        sig = np.where(normal, 1.0 + np.ldexp(frac, -m), np.ldexp(frac, -m))
        mag = np.ldexp(sig, e)
    out = sign * mag
    allones_e = ef == (1 << fmt.exponent_bits) - 1
    if fmt.specials == "ieee":
        out = np.where(allones_e & (frac == 0), sign * np.inf, out)
        out = np.where(allones_e & (frac != 0), np.nan, out)
    elif fmt.specials == "fn":
        out = np.where(allones_e & (frac == (1 << m) - 1), np.nan, out)
    elif fmt.specials == "fnuz":
        out = np.where(c == np.uint64(1 << (fmt.bits - 1)), np.nan, out)
    elif fmt.specials == "e8m0":
        out = np.where(c == np.uint64(0xFF), np.nan, out)
    return out


def _nan_code(fmt: FloatFormat) -> int | None:
    m, allones = fmt.mantissa_bits, (1 << fmt.exponent_bits) - 1
    return {"ieee": (allones << m) | (1 << max(m - 1, 0)), "fn": (allones << m) | ((1 << m) - 1),
            "fnuz": 1 << (fmt.bits - 1), "e8m0": 0xFF}.get(fmt.specials)


def _fast_encode(values, fmt: FloatFormat, mode: str, sr_bits=None, seed: int = 0):
    """Codes straight from the bit-pattern kernels (no float64 round trip), or None when
    the fast path does not cover ``fmt`` (then :func:`encode` rounds, then encodes)."""
    kf = fmt.kernel_params()
    p, emin, maxv, sub, flags = kf.p, kf.emin, kf.maxv, kf.sub, kf.flags
    if fmt.bits > 16 or not sub or not fr.supported(p, emin, flags):
        return None
    m = mode_code(mode)
    r = check_sr_bits(mode, sr_bits)
    a = np.asarray(values)
    if a.dtype.kind != "f" or a.dtype.itemsize > 8:
        raise ValueError(f"expected float64 or float32 values, got dtype {a.dtype}")
    x = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    nan_code = _nan_code(fmt)
    if nan_code is None:
        if np.isnan(x).any():
            raise ValueError(f"{fmt.name} has no NaN encoding")
        nan_code = 1 << 63  # never produced
    inf_code = ((1 << fmt.exponent_bits) - 1) << fmt.mantissa_bits if fmt.has_inf else 0
    sshift = fmt.bits - 1
    u64 = np.uint64
    max_code = int(fr.encode_value(fmt.max, p, emin, fmt.bias, u64(sshift), u64(inf_code),
                                   u64(nan_code), flags))
    out = np.empty(x.shape[0], _code_dtype(fmt))
    kernel = fr.fast_encode_array if x.size >= _PARALLEL_MIN else fr.fast_encode_array_serial
    kernel(x.view(np.uint64), out, kf, fr.ecap_of(maxv), fmt.bias, u64(sshift), u64(max_code),
           u64(inf_code), u64(nan_code), m, r, u64(seed))
    return out.reshape(a.shape)


def encode(values, fmt: str | FloatFormat, mode: str = "rne") -> np.ndarray:
    """Round float values into ``fmt`` (see :func:`accsim.round`) and return their codes.

    NaN is encoded as the format's canonical NaN (quiet, sign clear); formats without
    NaN ("finite") raise ``ValueError`` on NaN input.
    """

    fmt = get_format(fmt)
    fast = _fast_encode(values, fmt, mode)
    if fast is not None:
        return fast.reshape(np.shape(values))
    return _encode_slow(values, fmt, mode)


def _encode_slow(values, fmt: FloatFormat, mode: str = "rne") -> np.ndarray:
    """Reference path of :func:`encode`: round to float64 values, then build the codes."""
    x = _round(np.asarray(values, dtype=np.float64), fmt, mode)
    x = np.atleast_1d(x)
    nan = np.isnan(x)
    if nan.any() and not fmt.has_nan:
        raise ValueError(f"{fmt.name} has no NaN encoding")
    m = fmt.mantissa_bits
    neg = np.signbit(x) & fmt.signed
    a = np.abs(np.where(nan, 1.0, x))
    inf = np.isinf(a)
    a_fin = np.where(inf, 1.0, a)
    mant, ex = np.frexp(a_fin)  # a = mant * 2^ex, mant in [0.5, 1)
    e = ex.astype(np.int64) - 1
    if fmt.specials == "e8m0":
        ef = e + fmt.bias
        frac = np.zeros_like(ef)
    else:
        normal = (e >= fmt.emin) & (a_fin > 0)
        ef = np.where(normal, e + fmt.bias, 0)
        scaled = np.where(
            normal,
            np.ldexp(a_fin, (m - e).astype(np.int32)) - (1 << m),
            np.ldexp(a_fin, m - fmt.emin),
        )
        frac = scaled.astype(np.int64)
        frac = np.where(a_fin == 0, 0, frac)
        ef = np.where(a_fin == 0, 0, ef)
    code = (ef.astype(np.uint64) << np.uint64(m)) | frac.astype(np.uint64)
    if fmt.signed:
        code = code | (neg.astype(np.uint64) << np.uint64(fmt.bits - 1))
    allones = (1 << fmt.exponent_bits) - 1
    if fmt.specials == "ieee":
        code = np.where(inf, (np.uint64(allones) << np.uint64(m)) | (
            neg.astype(np.uint64) << np.uint64(fmt.bits - 1)), code)
        nan_code = (allones << m) | (1 << max(m - 1, 0))
    elif fmt.specials == "fn":
        nan_code = (allones << m) | ((1 << m) - 1)
    elif fmt.specials == "fnuz":
        nan_code = 1 << (fmt.bits - 1)
    elif fmt.specials == "e8m0":
        nan_code = 0xFF
    else:
        nan_code = 0
    code = np.where(nan, np.uint64(nan_code), code)
    return code.astype(_code_dtype(fmt)).reshape(np.shape(values))


def all_values(fmt: str | FloatFormat) -> np.ndarray:
    """Every code of a format of at most 16 bits, decoded (index = code)."""
    fmt = get_format(fmt)
    if fmt.bits > 16:
        raise ValueError(f"{fmt.name} has {fmt.bits} bits; enumeration is for <= 16 bits")
    return decode(np.arange(1 << fmt.bits), fmt)


def to_ml_dtypes(values, fmt: str | FloatFormat, mode: str = "rne", *, sr_bits=None,
                 seed: int = 0) -> np.ndarray:
    """Round ``values`` into ``fmt`` with accsim's exact rounding and return an array of
    the format's numpy/ml_dtypes dtype (bit patterns set directly, never through casts).

    ``sr_bits`` and ``seed`` are as in :func:`accsim.round` (same random words, so
    ``from_ml_dtypes(to_ml_dtypes(x, f, "sr", seed=s)) == round(x, f, "sr", seed=s)``)."""
    seed = check_seed(seed)
    fmt = get_format(fmt)
    dt = fmt.ml_dtype
    if dt is None:
        raise ValueError(f"{fmt.name} has no ml_dtypes dtype")
    if fmt.bits > 16:
        return _round(np.asarray(values, np.float64), fmt, mode, sr_bits=sr_bits,
                      seed=seed).astype(dt)
    codes = _fast_encode(values, fmt, mode, sr_bits, seed)
    if codes is None:
        if sr_bits is not None or seed != 0:
            v = _round(np.asarray(values, np.float64), fmt, mode, sr_bits=sr_bits, seed=seed)
            codes = _encode_slow(v, fmt)
        else:
            codes = _encode_slow(values, fmt, mode)
    return codes.astype(np.uint8 if dt.itemsize == 1 else np.uint16, copy=False).view(dt)
