"""Fused dot-product units: NVIDIA tensor cores and AMD matrix cores.

Three families (see ``/work/shared/reference/hardware.md``; parameters validated bit for
bit against real GPUs by MMA-Sim, Xie et al., arXiv:2511.10909, 2025; first probed by
Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS
2021):

:class:`FusedDot` (family ``"fused"``)
    One step is the fused, truncated dot-product-add of L products and the addend c:
    exact products, alignment to the largest exponent with truncation to F fractional
    bits (no sticky bit), exact sum, one rounding to the output. The AMD CDNA3 variant
    (``c_separate=True``) aligns c separately and truncates the sum a second time (F2).
:class:`ExactStep` (family ``"exact-step"``)
    AMD CDNA1: exact sum of L products and c, one round-to-nearest-even to fp32.
:class:`FtzPairwiseStep` (family ``"ftz-pairwise"``)
    AMD CDNA2: flush-to-zero fp32 products and pairwise fp32 additions.

K longer than one step chains steps: ``c <- step(a[k:k+L], b[k:k+L], c)``; a last
partial step (K not a multiple of L) is not padded (as MMA-Sim; padding would only
matter through ``e_zero``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..formats import FloatFormat
from ..formats import format as get_format
from . import _fused_kernels as fk
from .base import Accumulator, _representable

_SOURCE = ("hardware.md; MMA-Sim (Xie, Wang, Yang, Yang, arXiv:2511.10909, 2025); "
           "Fasi, Higham, Mikaitis, Pranesh, PeerJ CS 2021")

# out_rounding -> (storage format, p, emin, max, round toward zero)
OUT_ROUNDINGS = {
    "rz-fp32": ("binary32", 24, -126, float(np.finfo(np.float32).max), True),
    "rne-fp32": ("binary32", 24, -126, float(np.finfo(np.float32).max), False),
    "rne-fp16": ("binary16", 11, -14, 65504.0, False),
    "rz-e8m13": ("binary32", 14, -126, math.ldexp(2.0 - 2.0**-13, 127), True),
}
TRUNCS = ("rz", "floor")


def decode_exponents(X: np.ndarray, emin: int) -> np.ndarray:
    """Exponents of the values of X decoded in a format with minimum exponent ``emin``
    (hardware.md Notation): ``max(floor(log2|x|), emin)``; zeros get
    :data:`~accsim.accumulators._fused_kernels.ZSENT`, inf/NaN get 0."""
    ax = np.abs(X)
    fin = np.isfinite(ax) & (ax > 0)
    e = np.frexp(np.where(fin, ax, 1.0))[1].astype(np.int64) - 1
    e = np.maximum(e, emin)
    e = np.where(fin, e, 0)
    e = np.where(ax == 0, fk.ZSENT, e)
    return np.ascontiguousarray(e, dtype=np.int32)


def truncate_tf32(X: np.ndarray) -> np.ndarray:
    """fp32 values truncated toward zero to 10 fraction bits (hardware.md: "tf32 inputs:
    an fp32 value is truncated (toward zero) to 10 fraction bits before use")."""
    bits = np.ascontiguousarray(X, dtype=np.float32).view(np.uint32)
    nan = np.isnan(X)
    out = (bits & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    return np.where(nan, np.nan, out)


def _fmt(f, default="binary32") -> FloatFormat:
    return get_format(default if f is None else f)


@dataclass(frozen=True)
class FusedDot(Accumulator):
    """Fused, truncated dot-product-add unit (hardware.md "The fused, truncated
    dot-product-add (NVIDIA tensor cores)", steps 1-5, and the CDNA3 rows of "AMD matrix
    cores").

    Parameters
    ----------
    L : int
        Products per step.
    F : int
        Fractional bits kept after alignment to the largest exponent.
    trunc : {"rz", "floor"}
        How aligned terms are truncated: toward zero (NVIDIA) or toward minus infinity.
    e_zero : int
        Exponent given to a zero term (matters only when every term is tiny or zero).
    out_rounding : {"rz-fp32", "rne-fp16", "rz-e8m13", "rne-fp32"}
        The single rounding of the step: "rz-e8m13" is RZ to 13 fraction bits with fp32's
        exponent range, stored as fp32 (Ada/Hopper fp8). ``out_format`` follows from it.
    tf32_truncate : bool
        Inputs are fp32 values truncated toward zero to 10 fraction bits (tf32, AMD xf32).
    c_separate : bool
        AMD CDNA3: c is aligned separately (see
        :func:`~accsim.accumulators._fused_kernels.cdna3_matmul`); requires ``F2``,
        out_rounding "rne-fp32"; zero products take no part and e_zero is unused.
    F2 : int or None
        CDNA3: fraction bits of the second truncation (floor) of the sum.
    odd_even : bool
        CDNA3 fp8: even- and odd-indexed products summed in two groups first.
    group : int
        Products summed exactly in groups of G before the step (mxf4, G=16). Only 1 is
        implemented.

    Notes
    -----
    Special values (hardware.md step 5): NaN if any input is NaN, 0 * inf, or inf - inf;
    an infinity propagates; overflow of the final rounding gives an infinity (as in
    MMA-Sim, also for RZ); ``-0`` results are returned as ``+0``. NaN results are NaN
    here; the typed wrappers in :mod:`hwmodels` store the canonical NaN (0x7FFFFFFF for
    fp32, 0x7FFF for fp16).
    """

    L: int = 8
    F: int = 24
    trunc: str = "rz"
    e_zero: int = -132
    out_rounding: str = "rz-fp32"
    tf32_truncate: bool = False
    c_separate: bool = False
    F2: int | None = None
    odd_even: bool = False
    group: int = 1

    family = "fused"

    def __post_init__(self) -> None:
        if self.out_rounding not in OUT_ROUNDINGS:
            raise ValueError(f"unknown out_rounding {self.out_rounding!r}; valid: "
                             f"{', '.join(OUT_ROUNDINGS)}")
        if self.trunc not in TRUNCS:
            raise ValueError(f"unknown trunc {self.trunc!r}; valid: {', '.join(TRUNCS)}")
        if not (isinstance(self.L, int) and self.L >= 1):
            raise ValueError(f"L must be a positive integer, got {self.L!r}")
        if not (0 <= self.F <= 40):
            raise ValueError(f"F must be in 0..40, got {self.F}")
        if self.group != 1:
            raise ValueError("group != 1 (mxf4 grouped products) is not implemented")
        if self.c_separate:
            if self.F2 is None or not (self.F <= self.F2 <= 45):
                raise ValueError(f"c_separate needs F <= F2 <= 45, got F2={self.F2!r}")
            if self.out_rounding != "rne-fp32":
                raise ValueError("c_separate (AMD CDNA3) rounds with out_rounding='rne-fp32'")
        elif self.F2 is not None or self.odd_even:
            raise ValueError("F2 and odd_even are CDNA3 options and need c_separate=True")
        store = get_format(OUT_ROUNDINGS[self.out_rounding][0])
        object.__setattr__(self, "out_format", store)
        for name in ("a_format", "b_format", "c_format"):
            f = getattr(self, name)
            if isinstance(f, str):
                object.__setattr__(self, name, get_format(f))
        if self.c_format is None:
            object.__setattr__(self, "c_format", store)
        if self.a_format is None or self.b_format is None:
            raise ValueError("FusedDot needs a_format and b_format (inputs are decoded "
                             "with their own format's minimum exponent)")
        if self.a_format.p + self.b_format.p > 53:
            raise ValueError("products must be exact in binary64 (p_a + p_b <= 53)")

    def check_inputs(self, A, B, C) -> None:
        if not self.tf32_truncate:
            return super().check_inputs(A, B, C)
        f32 = get_format("binary32")
        for name, X, fmt in (("A", A, f32), ("B", B, f32), ("C", C, self.c_format)):
            ok = _representable(X, fmt)
            if not ok.all():
                idx = tuple(int(i) for i in np.argwhere(~ok)[0])
                raise ValueError(f"{name}{list(idx)} = {X[idx]!r} is not a {fmt.name} value "
                                 f"(model {self.name!r}; tf32 inputs are fp32 values)")
        return None

    def _matmul(self, A, B, C, seed):
        if self.tf32_truncate:
            A, B = truncate_tf32(A), truncate_tf32(B)
        EA = decode_exponents(A, self.a_format.emin)
        EB = decode_exponents(B, self.b_format.emin)
        _, p, emin, maxv, rz = OUT_ROUNDINGS[self.out_rounding]
        if self.c_separate:
            return fk.cdna3_matmul(A, B, C, EA, EB, self.L, self.F, self.F2,
                                   self.odd_even, self.out_format.emin)
        return fk.nv_fused_matmul(A, B, C, EA, EB, self.L, self.F, self.trunc == "floor",
                                  self.e_zero, self.c_format.emin, self.out_format.emin,
                                  p, emin, maxv, rz)

    def cost_bits(self, n: int) -> float:
        """Width of the aligned fixed-point adder (F fractional bits, 2 integer bits and
        log2(L+1) carry bits) per term."""
        return float((self.F + 2 + math.ceil(math.log2(self.L + 1))) * n)

    @property
    def unit_roundoff(self) -> float:
        p = OUT_ROUNDINGS[self.out_rounding][1]
        return math.ldexp(1.0, 1 - p) if OUT_ROUNDINGS[self.out_rounding][4] else \
            math.ldexp(1.0, -p)


@dataclass(frozen=True)
class ExactStep(Accumulator):
    """AMD CDNA1 (MI100) step (hardware.md "AMD matrix cores"): "exact sum of the L
    products and c, one round-to-nearest-even to fp32", chained along K.

    Parameters
    ----------
    L : int
        Products per step (fp16: 4, bf16: 2).
    mode : {"rne"}
        Rounding of the step (only round to nearest even, as the hardware).

    Notes
    -----
    An exact zero sum gives +0 (as MMA-Sim's model); NaN/inf as IEEE 754.
    """

    L: int = 4
    mode: str = "rne"

    family = "exact-step"

    def __post_init__(self) -> None:
        if self.mode != "rne":
            raise ValueError(f"ExactStep supports mode 'rne' only, got {self.mode!r}")
        if not (isinstance(self.L, int) and self.L >= 1):
            raise ValueError(f"L must be a positive integer, got {self.L!r}")
        for name in ("a_format", "b_format", "c_format"):
            f = getattr(self, name)
            if isinstance(f, str):
                object.__setattr__(self, name, get_format(f))
        object.__setattr__(self, "out_format", get_format("binary32"))
        if self.c_format is None:
            object.__setattr__(self, "c_format", get_format("binary32"))

    def _matmul(self, A, B, C, seed):
        return fk.exact_step_matmul(A, B, C, self.L)

    def cost_bits(self, n: int) -> float:
        return float(24 * n)


@dataclass(frozen=True)
class FtzPairwiseStep(Accumulator):
    """AMD CDNA2 (MI200) unit (hardware.md "AMD matrix cores"; MMA-Sim ``MMA_FTZ_MUL_ADD``):
    subnormal inputs flushed to zero; products formed in fp32 (RNE) and flushed; P products
    summed pairwise in fp32 (RNE) and the pair-sum added to c, every fp32 result flushed
    to zero if subnormal (keeping its sign).

    Parameters
    ----------
    P : {2, 4}
        Products per pairwise group (4; 2 for the older bf16 instructions without _1k).
    L : int
        Terms per instruction (its k): c is flushed to +0 when an instruction starts (as
        the inputs are). K must be a multiple of P.
    """

    P: int = 4
    L: int = 8

    family = "ftz-pairwise"

    def __post_init__(self) -> None:
        if self.P not in (2, 4):
            raise ValueError(f"P must be 2 or 4, got {self.P!r}")
        if self.L % self.P:
            raise ValueError(f"L={self.L} must be a multiple of P={self.P}")
        for name in ("a_format", "b_format", "c_format"):
            f = getattr(self, name)
            if isinstance(f, str):
                object.__setattr__(self, name, get_format(f))
        if self.a_format is None or self.b_format is None:
            raise ValueError("FtzPairwiseStep needs a_format and b_format")
        object.__setattr__(self, "out_format", get_format("binary32"))
        if self.c_format is None:
            object.__setattr__(self, "c_format", get_format("binary32"))

    def _matmul(self, A, B, C, seed):
        K = A.shape[1]
        if K % self.P:
            raise ValueError(f"K={K} must be a multiple of P={self.P} for {self.name!r}")
        return fk.ftz_pairwise_matmul(A, B, C, self.P, self.L, self.a_format.emin,
                                      self.b_format.emin)

    def cost_bits(self, n: int) -> float:
        return float(24 * n)


__all__ = ["ExactStep", "FtzPairwiseStep", "FusedDot", "OUT_ROUNDINGS", "decode_exponents",
           "truncate_tf32"]
