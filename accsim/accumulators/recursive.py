"""Recursive (sequential) summation: one rounding into the accumulator format per term.

Recursive (sequential) summation (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., 2002, section 4.2), each addition rounded to the accumulator
format, with products exact, rounded, or fused (an FMA chain: one rounding per term).
Also the fp32/fp64 chains of correctly rounded FMAs, one per term, of NVIDIA fp64 mma
and AMD fp32/fp64 mfma (``product="fused"``; docs/hwmodels.md, MMA-Sim).

Order for output (i, j) (stream ``i*N + j`` of the SR generator):

1. ``s = round(c_ij)`` into ``acc_format`` (SR counter ``2K``);
2. for k = 0..K-1:

   * ``"exact"``:   ``s = round(s + a_ik b_kj)`` (counter ``2k``), product exact;
   * ``"rounded"``: ``p = round(a_ik b_kj)`` into ``product_format`` (counter ``2k+1``),
     then ``s = round(s + p)`` (counter ``2k``), same mode;
   * ``"fused"``:   ``s = round(a_ik b_kj + s)`` (counter ``2k``), one rounding.

With binary64-exact products "fused" and "exact" coincide bit for bit; "fused" with an
inexact product is supported only for a binary64 accumulator in RNE (hardware FMA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._batch import pack, unpack
from accsim.accumulators._checks import (
    check_format_products,
    check_mode,
    fmt_or_none,
    fmt_required,
    sums_exact,
)
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.recursive import EXACT, FMA64, ROUNDED
from accsim.kernels.tiles import JB, RB, recursive_kernel, recursive_kernel_batch
from accsim.numbers.formats import FloatFormat

PRODUCTS = ("exact", "rounded", "fused")


@dataclass(frozen=True, repr=False)
class RecursiveSum(SingleFormatSum):
    """Recursive summation ``s = round(s + a_k b_k)``, k = 0..K-1, starting from
    ``round(c)`` (see the module docstring for the exact order and SR counters).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Accumulator (and output) format.
    mode : str
        Rounding mode of every rounding ("rne", "rna", "rz", "ru", "rd", "ro", "sr").
    sr_bits : int or None
        Random bits per SR decision (None: exact SR probabilities).
    product : {"exact", "rounded", "fused"}
        How each product enters: exact, rounded into ``product_format`` first, or fused
        with the addition (one rounding).
    product_format : FloatFormat or str or None
        Format of the rounded products (``product="rounded"`` only).
    """

    product: str = "exact"
    product_format: FloatFormat | None = None

    family = "recursive"

    def __post_init__(self) -> None:
        acc = fmt_required(self.acc_format, "acc_format")
        object.__setattr__(self, "acc_format", acc)
        self._setup(acc, check_products=False)
        if self.product not in PRODUCTS:
            raise ValueError(f"unknown product {self.product!r}; valid: {', '.join(PRODUCTS)}")
        pf = fmt_or_none(self.product_format)
        if self.product == "rounded" and pf is None:
            raise ValueError("product='rounded' needs product_format")
        if self.product != "rounded" and pf is not None:
            raise ValueError("product_format applies only to product='rounded'")
        object.__setattr__(self, "product_format", pf)
        if not self._fma64:
            check_format_products(self.a_format, self.b_format, f"{self.family} {self.name}")

    @property
    def _fma64(self) -> bool:
        """binary64 RNE FMA chain: the hardware FMA is exact for any binary64 inputs."""
        return self.product == "fused" and self.acc_format.p == 53 and self.mode == "rne" \
            and self.acc_format.name == "binary64"

    def _products_exact_by_construction(self) -> bool:
        return self._fma64

    def _kernel_kind(self) -> int:
        """The kernel's product kind: EXACT, ROUNDED or FMA64 (the binary64 FMA chain)."""
        if self._fma64:
            return FMA64
        return {"exact": EXACT, "fused": EXACT, "rounded": ROUNDED}[self.product]

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        kind = self._kernel_kind()
        pf = self.product_format or self.acc_format
        exact = kind == EXACT and fast and sums_exact(A, B, C, [self.acc_format], A.shape[1])
        recursive_kernel(A, B, C, out, self.acc_format.kernel_params(), m, r,
                         np.uint64(seed), kind, pf.kernel_params(), fast, exact)
        return out

    def _matmul_batch(self, As, Bs, Cs, seed):
        """:meth:`_matmul` of many products (operands checked) in one kernel call
        (:func:`accsim.kernels.tiles.recursive_kernel_batch`), each the bits of its own
        call (its own stream keys)."""
        m, r = check_mode(self.mode, self.sr_bits)
        kind = self._kernel_kind()
        pf = self.product_format or self.acc_format
        exact = np.array([kind == EXACT and sums_exact(A, B, C, [self.acc_format],
                                                       A.shape[1])
                          for A, B, C in zip(As, Bs, Cs, strict=True)], np.bool_)
        A, B, C, dims, offs, tiles, size = pack(As, Bs, Cs, RB, JB)
        out = np.empty(size)
        recursive_kernel_batch(A, B, C, out, dims, offs, tiles, exact,
                               self.acc_format.kernel_params(), m, r, np.uint64(seed), kind,
                               pf.kernel_params(), True)
        return unpack(out, dims, offs)

    def cost_bits(self, n: int) -> float:
        return float(self.acc_format.p * n)


register_family(Family("recursive", RecursiveSum, bound=bounds.recursive_bound,
                       reference="ref_recursive"))
