"""Fused dot-product units: NVIDIA tensor cores and AMD matrix cores.

Three families (see ``docs/hwmodels.md``; parameters validated bit for
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

from accsim.accumulators import bounds
from accsim.accumulators._batch import pack, unpack
from accsim.accumulators.base import Accumulator, _representable
from accsim.accumulators.fused_spec import OUT_ROUNDINGS, TRUNCS, decode_exponents, truncate_tf32
from accsim.accumulators.registry import Family, register_family
from accsim.kernels import fused as fk
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import check_seed

_SOURCE = ("docs/hwmodels.md; MMA-Sim (Xie, Wang, Yang, Yang, arXiv:2511.10909, 2025); "
           "Fasi, Higham, Mikaitis, Pranesh, PeerJ CS 2021")

def _fmt(f, default="binary32") -> FloatFormat:
    return get_format(default if f is None else f)


@dataclass(frozen=True, repr=False)
class FusedDot(Accumulator):
    """Fused, truncated dot-product-add unit (docs/hwmodels.md "The fused, truncated
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
        :func:`~accsim.kernels.fused.cdna3_matmul`); requires ``F2``,
        out_rounding "rne-fp32"; zero products take no part and e_zero is unused.
    F2 : int or None
        CDNA3: fraction bits of the second truncation (floor) of the sum.
    odd_even : bool
        CDNA3 fp8: even- and odd-indexed products summed in two groups first.
    group : int
        Products summed exactly in groups of G before the step (``kind::mxf4``, G=16;
        docs/hwmodels.md "first sums groups of G=16 products exactly, then runs the step").
        As MMA-Sim (``gst_fdpa``), the group sum is one term whose *exponent is the sum of
        the two block-scale exponents alone* (0 without scales): it is a fixed-point
        significand, its own size does not enter the alignment; it gets ``e_zero`` only
        when all G products are zero (or the scale is zero). Needs ``L % G == 0``,
        products and group sums exact in binary64, and ``block % G == 0``.
    block : int
        Block-scaled (OCP MX) units: one scale of ``scale_format`` per ``block``
        consecutive K elements of A's rows and of B's columns (0: no scales). Pass them
        to :meth:`matmul` as ``scale_a`` (M, K//block) and ``scale_b`` (K//block, N).
        Without grouping, the scales multiply every product exactly and their exponents
        add to its exponent (docs/hwmodels.md "the two block scales multiplied into every
        product"; MMA-Sim ``st_fdpa``); a NaN scale gives a NaN result.
    scale_format : str or FloatFormat or None
        Format of the scales (default ``float8_e8m0fnu``; ``float8_e4m3fn`` for the
        ue4m3 scales of ``mxf4nvf4``, decoded with e4m3's minimum exponent -6 and the
        sign ignored).

    Notes
    -----
    Special values (docs/hwmodels.md step 5): NaN if any input is NaN, 0 * inf, or inf - inf;
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
    block: int = 0
    scale_format: FloatFormat | str | None = None

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
        if not (isinstance(self.group, int) and self.group >= 1):
            raise ValueError(f"group must be a positive integer, got {self.group!r}")
        if not (isinstance(self.block, int) and self.block >= 0):
            raise ValueError(f"block must be a non-negative integer, got {self.block!r}")
        if self.group > 1:
            if self.L % self.group:
                raise ValueError(f"L={self.L} must be a multiple of group={self.group}")
            if self.block % self.group:
                raise ValueError(f"block={self.block} must be a multiple of "
                                 f"group={self.group} (0 is not allowed with group > 1; "
                                 f"use block=group for unscaled groups)")
            if self.c_separate or self.trunc != "rz":
                raise ValueError("group > 1 is an NVIDIA (trunc='rz') option")
        if self.block:
            sf = get_format("float8_e8m0fnu" if self.scale_format is None
                            else self.scale_format)
            object.__setattr__(self, "scale_format", sf)
            if sf.name not in ("float8_e8m0fnu", "float8_e4m3fn"):
                raise ValueError(f"scale_format {sf.name!r} not supported; valid: "
                                 "float8_e8m0fnu, float8_e4m3fn")
            if self.c_separate:
                raise ValueError("block scales are an NVIDIA option (c_separate=False)")
        elif self.scale_format is not None:
            raise ValueError("scale_format needs block > 0")
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
        if self.group > 1:
            fa, fb = self.a_format, self.b_format
            # group sums: fixed point from 2^(lsb_a + lsb_b) up to G max_a max_b, times a
            # scale significand (< 4, p_s bits); the step's integer terms stay < 2^53
            lsb = (fa.emin - fa.p + 1) + (fb.emin - fb.p + 1)
            top = math.log2(self.group * fa.max * fb.max)
            ps = self.scale_format.p if self.block else 1
            if top - lsb + 2 * ps > 52 or top + 2 + self.F + math.log2(
                    self.L // self.group + 1) > 52:
                raise ValueError("group sums of these formats are not exact in binary64 "
                                 f"with F={self.F} (grouping is meant for fp4/fp6 inputs)")

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

    def matmul(self, A, B, C=None, *, seed: int = 0, scale_a=None, scale_b=None):
        """``D = A @ B + C`` (see :class:`~accsim.accumulators.base.Accumulator`).

        Block-scaled units (``block > 0``) take ``scale_a`` of shape (M, K//block) and
        ``scale_b`` of shape (K//block, N), float64 values of ``scale_format`` (None:
        all scales 1); K must be a multiple of ``block``.
        """
        if not self.block:
            if scale_a is not None or scale_b is not None:
                raise ValueError(f"model {self.name!r} has no block scales (block=0)")
            return super().matmul(A, B, C, seed=seed)
        A, B, C = check_matmul_shapes(A, B, C)
        self.check_inputs(A, B, C)
        SA, SB = self.check_scales(A.shape[0], A.shape[1], B.shape[1], scale_a, scale_b)
        return self._matmul(A, B, C, check_seed(seed), SA, SB)

    def check_scales(self, M, K, N, scale_a, scale_b):
        """Validated float64 scale arrays (or (None, None) for an unscaled unit)."""
        if not self.block:
            if scale_a is not None or scale_b is not None:
                raise ValueError(f"model {self.name!r} has no block scales (block=0)")
            return None, None
        if K % self.block:
            raise ValueError(f"K={K} must be a multiple of the scale block {self.block}")
        nb = K // self.block
        out = []
        for nm, S, shape in (("scale_a", scale_a, (M, nb)), ("scale_b", scale_b, (nb, N))):
            if S is None:
                S = np.ones(shape)
            S = np.array(S, dtype=np.float64)
            if S.shape != shape:
                raise ValueError(f"{nm} has shape {S.shape}, expected {shape} (one scale "
                                 f"per {self.block} elements of K)")
            S = np.abs(S)  # ue8m0 / ue4m3 scales are unsigned
            ok = _representable(S, self.scale_format) | np.isnan(S)
            if not ok.all():
                idx = tuple(int(i) for i in np.argwhere(~ok)[0])
                raise ValueError(f"{nm}{list(idx)} = {S[idx]!r} is not a "
                                 f"{self.scale_format.name} value")
            out.append(np.ascontiguousarray(S))
        return out[0], out[1]

    def _matmul(self, A, B, C, seed, SA=None, SB=None):
        if self.tf32_truncate:
            A, B = truncate_tf32(A), truncate_tf32(B)
        _, p, emin, maxv, rz = OUT_ROUNDINGS[self.out_rounding]
        if self.group > 1:
            K = A.shape[1]
            if K % self.group:
                raise ValueError(f"K={K} must be a multiple of group={self.group}")
            bs = self.block
            if SA is None:
                SA = np.ones((A.shape[0], K // bs))
                SB = np.ones((K // bs, B.shape[1]))
            semin = self.scale_format.emin if self.block else 0
            return fk.nv_grouped_matmul(A, B, C, SA, SB, decode_exponents(SA, semin),
                                        decode_exponents(SB, semin), bs, self.group,
                                        self.L, self.F, self.e_zero, self.c_format.emin,
                                        self.out_format.emin, p, emin, maxv, rz)
        EA = decode_exponents(A, self.a_format.emin)
        EB = decode_exponents(B, self.b_format.emin)
        if SA is not None:
            # the scales multiply every product exactly; their exponents add to the
            # product exponent (MMA-Sim st_fdpa: e_a + e_b + e_alpha + e_beta)
            semin = self.scale_format.emin
            SAx = np.repeat(SA, self.block, axis=1)
            SBx = np.repeat(SB, self.block, axis=0)
            A = np.ascontiguousarray(A * SAx)
            B = np.ascontiguousarray(B * SBx)
            EA = np.ascontiguousarray(EA + np.repeat(decode_exponents(SA, semin),
                                                     self.block, axis=1), np.int32)
            EB = np.ascontiguousarray(EB + np.repeat(decode_exponents(SB, semin),
                                                     self.block, axis=0), np.int32)
        if self.c_separate:
            return fk.cdna3_matmul(A, B, C, EA, EB, self.L, self.F, self.F2,
                                   self.odd_even, self.out_format.emin)
        return fk.nv_fused_matmul(A, B, C, EA, EB, self.L, self.F, self.trunc == "floor",
                                  self.e_zero, self.c_format.emin, self.out_format.emin,
                                  p, emin, maxv, rz)

    def _matmul_batch(self, As, Bs, Cs, seed=0):
        """:meth:`_matmul` of many products (operands checked, K a multiple of the
        instruction's) in one kernel call (:func:`accsim.kernels.fused.nv_fused_matmul_batch`),
        each the bits of its own call; None for the units without a batched kernel
        (block scales, groups, tf32 truncation, the CDNA3 step)."""
        if self.tf32_truncate or self.group > 1 or self.block or self.c_separate:
            return None
        _, p, emin, maxv, rz = OUT_ROUNDINGS[self.out_rounding]
        A, B, C, dims, offs, tiles, size = pack(As, Bs, Cs, fk.RB, fk.NT)
        D = np.empty(size)
        fk.nv_fused_matmul_batch(A, B, C, decode_exponents(A, self.a_format.emin),
                                 decode_exponents(B, self.b_format.emin), D, dims, offs,
                                 tiles, self.L, self.F, self.trunc == "floor", self.e_zero,
                                 self.c_format.emin, self.out_format.emin, p, emin, maxv,
                                 rz)
        return unpack(D, dims, offs)

    def cost_bits(self, n: int) -> float:
        """Width of the aligned fixed-point adder (F fractional bits, 2 integer bits and
        log2(L+1) carry bits) per term."""
        return float((self.F + 2 + math.ceil(math.log2(self.L + 1))) * n)

    @property
    def unit_roundoff(self) -> float:
        p = OUT_ROUNDINGS[self.out_rounding][1]
        return math.ldexp(1.0, 1 - p) if OUT_ROUNDINGS[self.out_rounding][4] else \
            math.ldexp(1.0, -p)


@dataclass(frozen=True, repr=False)
class ExactStep(Accumulator):
    """AMD CDNA1 (MI100) step (docs/hwmodels.md "AMD matrix cores"): "exact sum of the L
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


@dataclass(frozen=True, repr=False)
class FtzPairwiseStep(Accumulator):
    """AMD CDNA2 (MI200) unit (docs/hwmodels.md "AMD matrix cores"; MMA-Sim ``MMA_FTZ_MUL_ADD``):
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


register_family(Family("fused", FusedDot, bound=bounds.fused_bound,
                       reference="ref_fused_chain"))
register_family(Family("exact-step", ExactStep, bound=bounds.exact_step_bound,
                       reference="ref_cdna1_step"))
register_family(Family("ftz-pairwise", FtzPairwiseStep, bound=bounds.ftz_pairwise_bound,
                       reference="ref_cdna2_step"))
