"""Binary floating-point formats: parameters, presets, codes and ml_dtypes interop.

A format is a small frozen dataclass (in the spirit of gfloat's ``FormatInfo``) with
``numpy.finfo``-style properties. Kernels never see the dataclass: they receive the
tuple returned by :meth:`FloatFormat.kernel_params`.

Special-value styles (see ``docs/formats.md``):

``"ieee"``
    IEEE 754 style: the all-ones exponent field encodes +-inf and NaNs.
``"fn"``
    OCP "finite": no infinities; the single NaN pattern is exponent and fraction all
    ones (so the top binade loses one code, e.g. float8_e4m3fn max = 448).
``"fnuz"``
    "finite, no negative zero" (Graphcore/AMD): no infinities, NaN is the code 0x80
    (sign bit alone), there is no -0.
``"finite"``
    No infinities and no NaN at all (OCP MX fp6/fp4); conversions saturate.
``"e8m0"``
    OCP MX scale format: unsigned powers of two 2^-127..2^127, NaN is 0xFF, no zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import cached_property

import ml_dtypes
import numpy as np

# kernel codes (defined once in accsim.kernels.vocab), re-exported for callers
from accsim.kernels.vocab import (  # noqa: F401
    FLAG_E8M0,
    FLAG_NO_NEG_ZERO,
    OVF_INF,
    OVF_NAN,
    OVF_SAT,
    KernelFormat,
)

SPECIAL_STYLES = ("ieee", "fn", "fnuz", "finite", "e8m0")



@dataclass(frozen=True, repr=False)
class FloatFormat:
    """A binary floating-point format.

    Parameters
    ----------
    name : str
        Canonical name (the ml_dtypes name where ml_dtypes has the format).
    exponent_bits : int
        Width of the exponent field.
    mantissa_bits : int
        Width of the stored fraction field (precision ``p = mantissa_bits + 1``).
    bias : int
        Exponent bias.
    specials : str
        Special-value style, one of ``"ieee"``, ``"fn"``, ``"fnuz"``, ``"finite"``,
        ``"e8m0"`` (see the module docstring).
    subnormals : bool
        Whether the format has subnormal numbers. Without them values below the
        smallest normal round onto {0, smallest_normal}.
    saturate : bool
        Overflow gives the largest finite value in every rounding mode (and inf inputs
        give +-max).
    emax_cap : int or None
        Largest exponent actually used, for formats built from (precision, emax) whose
        emax is not 2^(exponent_bits-1) - 1.
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    specials: str = "ieee"
    subnormals: bool = True
    saturate: bool = False
    emax_cap: int | None = None

    def __post_init__(self) -> None:
        for key in ("exponent_bits", "mantissa_bits", "bias", "emax_cap"):
            v = getattr(self, key)
            if (v is not None or key != "emax_cap") and (
                    isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer)):
                raise ValueError(f"{key} must be an integer, got {v!r} "
                                 f"({type(v).__name__})")
        for key in ("subnormals", "saturate"):
            if not isinstance(getattr(self, key), bool | np.bool_):
                raise ValueError(f"{key} must be a bool, got {getattr(self, key)!r}")
        if self.specials not in SPECIAL_STYLES:
            raise ValueError(
                f"unknown special-value style {self.specials!r}; valid: {SPECIAL_STYLES}"
            )
        if not (1 <= self.exponent_bits <= 11):
            raise ValueError(f"exponent_bits must be in 1..11, got {self.exponent_bits}")
        if not (0 <= self.mantissa_bits <= 52):
            raise ValueError(f"mantissa_bits must be in 0..52, got {self.mantissa_bits}")
        if self.emin < -1022 or self.emax > 1023:
            raise ValueError(f"format {self.name!r} exceeds the binary64 exponent range")

    def __repr__(self) -> str:
        """``FloatFormat('binary16', e5m10)``; non-default fields follow by name."""
        extra = "".join(f", {f}={getattr(self, f)!r}" for f, d in
                        (("specials", "ieee"), ("subnormals", True), ("saturate", False),
                         ("emax_cap", None)) if getattr(self, f) != d)
        bias = "" if self.bias == 2 ** (self.exponent_bits - 1) - 1 else f", bias={self.bias}"
        return (f"FloatFormat({self.name!r}, e{self.exponent_bits}m{self.mantissa_bits}"
                f"{bias}{extra})")

    # ------------------------------------------------------------------ parameters
    @property
    def p(self) -> int:
        """Precision in bits, implicit bit included."""
        return self.mantissa_bits + 1

    precision = p

    @property
    def bits(self) -> int:
        """Storage width in bits."""
        sign = 0 if self.specials == "e8m0" else 1
        return sign + self.exponent_bits + self.mantissa_bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        if self.specials == "e8m0":
            return -self.bias
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = (1 << self.exponent_bits) - 1 - self.bias
        if self.specials == "ieee":
            top -= 1
        elif self.specials == "e8m0":
            top -= 1
        elif self.specials == "fn" and self.mantissa_bits == 0:
            top -= 1
        if self.emax_cap is not None:
            top = min(top, self.emax_cap)
        return top

    @cached_property
    def max(self) -> float:
        """Largest finite value."""
        frac_max = (1 << self.mantissa_bits) - 1
        if self.specials == "fn" and self.mantissa_bits > 0 and self.emax_cap is None:
            frac_max -= 1  # the all-ones code of the top binade is NaN
        return math.ldexp(1.0 + frac_max / (1 << self.mantissa_bits), self.emax)

    @property
    def smallest_normal(self) -> float:
        """Smallest positive normal value, 2^emin."""
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value (the smallest normal if there are no subnormals)."""
        if not self.subnormals:
            return self.smallest_normal
        return math.ldexp(1.0, self.emin - self.mantissa_bits)

    tiny = smallest_normal

    @property
    def eps(self) -> float:
        """Machine epsilon 2^(1-p), the gap between 1 and the next value."""
        return math.ldexp(1.0, -self.mantissa_bits)

    @property
    def u(self) -> float:
        """Unit roundoff 2^-p of round to nearest (directed rounding: 2u)."""
        return math.ldexp(1.0, -self.p)

    unit_roundoff = u

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee" and not self.saturate

    @property
    def has_nan(self) -> bool:
        return self.specials != "finite"

    @property
    def has_negative_zero(self) -> bool:
        return self.specials not in ("fnuz", "e8m0")

    @property
    def signed(self) -> bool:
        return self.specials != "e8m0"

    @property
    def ml_dtype(self) -> np.dtype | None:
        """The ml_dtypes / numpy dtype storing this format, or None."""
        return _DTYPES.get(self.name)

    def kernel_params(self) -> KernelFormat:
        """The format as plain numbers for numba kernels.

        Returns
        -------
        KernelFormat
            ``(p, emin, maxv, sub, ovf, flags)``: ``ovf`` says what a round-to-nearest
            overflow produces (``OVF_INF``, ``OVF_NAN``, ``OVF_SAT``).
        """
        if self.saturate or self.specials == "finite":
            ovf = OVF_SAT
        elif self.specials == "ieee":
            ovf = OVF_INF
        else:
            ovf = OVF_NAN
        flags = 0
        if self.specials == "fnuz":
            flags |= FLAG_NO_NEG_ZERO
        if self.specials == "e8m0":
            flags |= FLAG_E8M0 | FLAG_NO_NEG_ZERO
        return KernelFormat(int(self.p), int(self.emin), float(self.max), int(self.subnormals), ovf,
                            flags)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_bits(
        cls, exponent_bits: int, mantissa_bits: int, *, name: str | None = None, **kw
    ) -> FloatFormat:
        """IEEE-style format with bias 2^(exponent_bits-1) - 1."""
        for k, v, lo, hi in (("exponent_bits", exponent_bits, 1, 11),
                             ("mantissa_bits", mantissa_bits, 0, 52)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= v <= hi:
                raise ValueError(f"{k} must be an integer in {lo}..{hi}, got {v!r}")
        bias = (1 << (exponent_bits - 1)) - 1
        name = name or f"e{exponent_bits}m{mantissa_bits}"
        return cls(name, exponent_bits, mantissa_bits, bias, **kw)

    @classmethod
    def from_precision(cls, p: int, emax: int, *, name: str | None = None, **kw) -> FloatFormat:
        """IEEE-style format of precision ``p`` with exponents ``1-emax .. emax``."""
        if p < 1 or emax < 1:
            raise ValueError(f"need p >= 1 and emax >= 1, got p={p}, emax={emax}")
        ebits = max(2, (2 * emax + 1).bit_length())
        return cls(
            name or f"p{p}emax{emax}", ebits, p - 1, emax, emax_cap=emax, **kw
        )

    def with_(self, **changes) -> FloatFormat:
        """A copy with some fields changed (e.g. ``saturate=True``)."""
        return replace(self, **changes)

    def __str__(self) -> str:
        return self.name


def _f(name, e, m, bias, specials="ieee", **kw) -> FloatFormat:
    return FloatFormat(name, e, m, bias, specials, **kw)


PRESETS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        _f("binary64", 11, 52, 1023),
        _f("binary32", 8, 23, 127),
        _f("tfloat32", 8, 10, 127),
        _f("bfloat16", 8, 7, 127),
        _f("binary16", 5, 10, 15),
        _f("float8_e4m3", 4, 3, 7),
        _f("float8_e4m3fn", 4, 3, 7, "fn"),
        _f("float8_e4m3fnuz", 4, 3, 8, "fnuz"),
        _f("float8_e5m2", 5, 2, 15),
        _f("float8_e5m2fnuz", 5, 2, 16, "fnuz"),
        _f("float6_e3m2fn", 3, 2, 3, "finite", saturate=True),
        _f("float6_e2m3fn", 2, 3, 1, "finite", saturate=True),
        _f("float4_e2m1fn", 2, 1, 1, "finite", saturate=True),
        _f("float8_e8m0fnu", 8, 0, 127, "e8m0", subnormals=False),
    )
}

ALIASES: dict[str, str] = {
    "fp64": "binary64",
    "float64": "binary64",
    "fp32": "binary32",
    "float32": "binary32",
    "tf32": "tfloat32",
    "bf16": "bfloat16",
    "fp16": "binary16",
    "float16": "binary16",
    "half": "binary16",
}

_DTYPES: dict[str, np.dtype] = {
    "binary64": np.dtype(np.float64),
    "binary32": np.dtype(np.float32),
    "binary16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3": np.dtype(ml_dtypes.float8_e4m3),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float6_e3m2fn": np.dtype(ml_dtypes.float6_e3m2fn),
    "float6_e2m3fn": np.dtype(ml_dtypes.float6_e2m3fn),
    "float4_e2m1fn": np.dtype(ml_dtypes.float4_e2m1fn),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
}


def available_formats() -> list[str]:
    """Names of the preset formats (aliases excluded)."""
    return list(PRESETS)


def format(name: str | FloatFormat) -> FloatFormat:  # noqa: A001 - public API name
    """Look up a format by name or alias, or pass a FloatFormat through.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    """
    if isinstance(name, FloatFormat):
        return name
    if not isinstance(name, str):
        raise ValueError(f"format must be a name or FloatFormat, got {type(name).__name__}")
    key = name.strip()
    key = ALIASES.get(key.lower(), key)
    if key in PRESETS:
        return PRESETS[key]
    custom = _CUSTOM.fullmatch(key.lower())
    if custom:  # "eEmM": IEEE-style, E exponent bits, M stored fraction bits
        near = [k for k in PRESETS if f"_{key.lower()}" in k]
        if near:  # e4m3 could be any of the fp8 variants: make the caller name one
            raise ValueError(f"format {name!r} is ambiguous; name one of {', '.join(near)} "
                             f"(valid names: {', '.join(PRESETS)})")
        return FloatFormat.from_bits(int(custom[1]), int(custom[2]))
    raise ValueError(
        f"unknown format {name!r}; valid names: {', '.join(PRESETS)}; "
        f"aliases: {', '.join(ALIASES)}; or 'eEmM' (IEEE style, E exponent and M "
        "fraction bits, e.g. e8m5)"
    )


#: a custom IEEE-style format by its field widths, e.g. ``e8m5`` (precision 6, the
#: binary32 exponent range): the m-bit significand accumulators of the LAMP paper
_CUSTOM = re.compile(r"e(\d{1,2})m(\d{1,2})")


def from_dtype(dtype) -> FloatFormat:
    """The format stored by a numpy / ml_dtypes dtype."""
    dt = np.dtype(dtype)
    for name, d in _DTYPES.items():
        if d == dt:
            return PRESETS[name]
    known = ", ".join(str(d) for d in _DTYPES.values())
    raise ValueError(f"no accsim format for dtype {dt}; known: {known}")


def from_ml_dtypes(array) -> np.ndarray:
    """Exact float64 values of a numpy/ml_dtypes floating array (every such format is a
    subset of float32 or float64, so the conversion is exact)."""
    a = np.asarray(array)
    if a.dtype == np.float64:
        return a.copy()
    if a.dtype.kind not in "fV" and a.dtype not in _DTYPES.values():
        raise ValueError(f"expected a floating array, got dtype {a.dtype}")
    with np.errstate(invalid="ignore"):  # NaN codes of narrow dtypes warn spuriously
        return a.astype(np.float32).astype(np.float64)


_MOVED = ("decode", "encode", "all_values", "to_ml_dtypes")


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"accsim.numbers.formats.{name} moved to "
                             f"accsim.numbers.codecs.{name} (the codecs round, so they live "
                             "above accsim.numbers.rounding)")
    raise AttributeError(f"module 'accsim.numbers.formats' has no attribute {name!r}")
