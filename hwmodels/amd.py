"""AMD matrix-core models: CDNA1 (MI100), CDNA2 (MI200), CDNA3 (MI300) mfma instructions.

Facts (``docs/hwmodels.md``, "AMD matrix cores"), with the algorithms
and instruction lists of MMA-Sim (Xie, Wang, Yang, Yang, arXiv:2511.10909, 2025), which
validated them bit for bit on real GPUs:

* CDNA1 fp16 (L=4) / bf16 (L=2): exact sum of the L products and c, one RNE to fp32
  (:class:`~accsim.accumulators.fused.ExactStep`).
* CDNA2 fp16 / bf16: flush-to-zero fp32 products, pairwise fp32 sums of P=4 products (P=2
  for bf16 instructions without ``_1k``) added to c
  (:class:`~accsim.accumulators.fused.FtzPairwiseStep`).
* CDNA3 fp16 / bf16 (L=8) / xf32 (L=4): products truncated to F=24 bits, c aligned
  separately, second truncation to F2=31 bits, RNE to fp32; fp8 / bf8 (L=16, OCP-style
  fnuz formats) sums even- and odd-indexed products separately first
  (:class:`~accsim.accumulators.fused.FusedDot` with ``c_separate=True``).
* fp32 / fp64 instructions: chains of correctly rounded FMAs
  (:class:`~accsim.accumulators.recursive.RecursiveSum` with ``product="fused"``).

Names: ``cdnaN:mfma.<suffix>`` with the ISA suffix, e.g. ``cdna3:mfma.f32_32x32x8_f16``,
``cdna2:mfma.f32_32x32x8bf16_1k``, ``cdna3:mfma.f32_16x16x32_fp8_bf8``.
"""

from __future__ import annotations

from accsim.accumulators.fused import ExactStep, FtzPairwiseStep, FusedDot
from accsim.accumulators.recursive import RecursiveSum
from accsim.numbers.formats import format as get_format

from . import register
from ._typed import DTYPES, HardwareModel

SOURCE = ("docs/hwmodels.md (AMD matrix cores table); MMA-Sim, Xie, Wang, Yang, Yang, "
          "arXiv:2511.10909 (2025)")
SOURCE_FMA = ("docs/hwmodels.md: AMD fp32/fp64 instructions are chains of correctly rounded "
              "FMAs; MMA-Sim arXiv:2511.10909 (2025)")

CDNA1 = ["f32_32x32x2f32", "f32_32x32x1f32", "f32_16x16x4f32", "f32_16x16x1f32",
         "f32_4x4x1f32", "f32_32x32x8f16", "f32_32x32x4f16", "f32_16x16x16f16",
         "f32_16x16x4f16", "f32_4x4x4f16", "f32_32x32x4bf16", "f32_32x32x2bf16",
         "f32_16x16x8bf16", "f32_16x16x2bf16", "f32_4x4x2bf16"]
CDNA2 = ["f64_16x16x4f64", "f64_4x4x4f64", "f32_32x32x8bf16_1k", "f32_32x32x4bf16_1k",
         "f32_16x16x16bf16_1k", "f32_16x16x4bf16_1k", "f32_4x4x4bf16_1k"] + CDNA1
CDNA3 = (["f64_16x16x4_f64", "f64_4x4x4_4b_f64", "f32_32x32x1_2b_f32",
          "f32_16x16x1_4b_f32", "f32_4x4x1_16b_f32", "f32_32x32x2_f32", "f32_16x16x4_f32",
          "f32_16x16x8_xf32", "f32_32x32x4_xf32", "f32_32x32x4_2b_f16",
          "f32_16x16x4_4b_f16", "f32_4x4x4_16b_f16", "f32_32x32x8_f16",
          "f32_16x16x16_f16", "f32_32x32x4_2b_bf16", "f32_16x16x4_4b_bf16",
          "f32_4x4x4_16b_bf16", "f32_32x32x8_bf16", "f32_16x16x16_bf16"]
         + [f"f32_{s}_{a}_{b}" for s in ("16x16x32", "32x32x16") for a in ("bf8", "fp8")
            for b in ("bf8", "fp8")])
LISTS = {"cdna1": CDNA1, "cdna2": CDNA2, "cdna3": CDNA3}

# CDNA3 step: docs/hwmodels.md "F=24 ... F2=31"
CDNA3_F, CDNA3_F2 = 24, 31


def parse(suffix: str) -> tuple[str, str, str, int, int, int]:
    """(d_type, a_type, b_type, m, n, k) of an mfma suffix (MMA-Sim's isa_mfma rules)."""
    q = suffix.split("_")
    if len(q) == 2:
        d_type, st = q
        if st.endswith("bf16"):
            a_type, shape = "bf16", st[:-4]
        else:
            a_type, shape = st[-3:], st[:-3]
        b_type = a_type
    elif len(q) == 3:
        if q[-1] == "1k":
            d_type, st, _ = q
            a_type = b_type = "bf16"
            shape = st[:-4]
        else:
            d_type, shape, a_type = q
            b_type = a_type
    else:
        if q[-1] in ("fp8", "bf8"):
            d_type, shape, a_type, b_type = q
        else:
            d_type, shape, _, a_type = q
            b_type = a_type
    m, n, k = (int(x) for x in shape.split("x"))
    return d_type, a_type, b_type, m, n, k


def make(arch: str, suffix: str) -> HardwareModel:
    """Build the model of ``mfma.<suffix>`` on ``arch``."""
    d_type, a_type, b_type, m, n, k = parse(suffix)
    name = f"mfma.{suffix}"
    full = f"{arch}:{name}"
    fa, fb = get_format(DTYPES[a_type][1]), get_format(DTYPES[b_type][1])
    fd = get_format(DTYPES[d_type][1])
    canon = False
    src = SOURCE
    if a_type in ("f32", "f64"):
        src = SOURCE_FMA
        acc = RecursiveSum(name=full, acc_format=fd, mode="rne", product="fused",
                           a_format=fa, b_format=fb, c_format=fd, source=src)
    elif a_type in ("fp8", "bf8"):
        acc = FusedDot(name=full, a_format=fa, b_format=fb, c_format=fd, L=min(k, 16),
                       F=CDNA3_F, trunc="rz", e_zero=-126, out_rounding="rne-fp32",
                       c_separate=True, F2=CDNA3_F2, odd_even=True, source=src)
        canon = True
    elif arch == "cdna1":
        acc = ExactStep(name=full, a_format=fa, b_format=fb, c_format=fd,
                        L=min(k, 4 if a_type == "f16" else 2), source=src)
    elif arch == "cdna2":
        P = 2 if (a_type == "bf16" and not suffix.endswith("_1k")) else 4
        acc = FtzPairwiseStep(name=full, a_format=fa, b_format=fb, c_format=fd, P=P, L=k,
                              source=src)
    else:  # cdna3 fp16 / bf16 / xf32
        L_max = 4 if a_type == "xf32" else 8
        acc = FusedDot(name=full, a_format=fa, b_format=fb, c_format=fd, L=min(k, L_max),
                       F=CDNA3_F, trunc="rz", e_zero=-126, out_rounding="rne-fp32",
                       c_separate=True, F2=CDNA3_F2, tf32_truncate=a_type == "xf32",
                       source=src)
        canon = True
    return HardwareModel(acc, arch=arch, instruction=name, m=m, n=n, k=k, a_type=a_type,
                         b_type=b_type, c_type=d_type, d_type=d_type, source=src,
                         canonical_nan=canon)


def instructions() -> list[tuple[str, str]]:
    """Every (arch, suffix) registered here."""
    return [(arch, s) for arch, lst in LISTS.items() for s in lst]


for _arch, _suffix in instructions():
    register(f"{_arch}:mfma.{_suffix}", lambda a=_arch, s=_suffix: make(a, s))

__all__ = ["CDNA3_F", "CDNA3_F2", "LISTS", "instructions", "make", "parse"]
