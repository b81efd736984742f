"""Kahan compensated summation, every operation rounded into one format.

Kahan (1965), "Further remarks on reducing truncation errors"; Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., Alg. 4.2. ONE compensation term per output.
Order for output (i, j) (SR stream ``i*N + j``):

``s = round(c_ij)`` (SR counter ``4K``), ``comp = 0``; for k = 0..K-1 with the exact
product ``p = a_ik b_kj``::

    y    = round(p - comp)        # counter 4k
    t    = round(s + y)           # counter 4k + 1
    comp = round(round(t - s) - y)  # counters 4k + 2, 4k + 3
    s    = t
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..formats import FloatFormat
from ..formats import format as get_format
from ..kernels.bits import JIT
from ._checks import check_exact_products, check_format_products, check_mode, fmt_or_none
from ._kernels_common import add_r, round1
from .base import Accumulator


@njit(parallel=True, **JIT)
def kahan_kernel(A, B, C, out, comp_out, p, emin, maxv, sub, ovf, flags, mode, r, seed):
    """Kahan summation of every output; ``comp_out`` receives the final compensation."""
    M, K = A.shape
    N = B.shape[1]
    for task in prange(M * N):
        i = task // N
        j = task - i * N
        st = task
        s = round1(C[i, j], p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * K)
        comp = 0.0
        for k in range(K):
            prod = A[i, k] * B[k, j]
            y = add_r(prod, -comp, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k)
            t = add_r(s, y, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k + 1)
            d = add_r(t, -s, p, emin, maxv, sub, ovf, flags, mode, r, seed, st, 4 * k + 2)
            comp = add_r(d, -y, p, emin, maxv, sub, ovf, flags, mode, r, seed, st,
                         4 * k + 3)
            s = t
        out[i, j] = s
        comp_out[i, j] = comp


@dataclass(frozen=True)
class KahanSum(Accumulator):
    """Kahan compensated summation (order and SR counters: module docstring).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Format of the sum, of the compensation term and of every intermediate.
    mode : str
        Rounding mode of every rounding.
    sr_bits : int or None
        Random bits per SR decision (None: exact SR).
    """

    acc_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    mode: str = "rne"
    sr_bits: int | None = None

    family = "kahan"

    def __post_init__(self) -> None:
        acc = get_format(self.acc_format)
        object.__setattr__(self, "acc_format", acc)
        object.__setattr__(self, "out_format", acc)
        for f in ("a_format", "b_format", "c_format"):
            object.__setattr__(self, f, fmt_or_none(getattr(self, f)))
        check_mode(self.mode, self.sr_bits)
        object.__setattr__(self, "mode", self.mode.lower())
        check_format_products(self.a_format, self.b_format, f"{self.family} {self.name}")

    def check_inputs(self, A, B, C) -> None:
        super().check_inputs(A, B, C)
        if self.a_format is None or self.b_format is None:
            check_exact_products(A, B, f"{self.family} model {self.name!r}")

    def _run(self, A, B, C, seed):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        comp = np.empty_like(out)
        kahan_kernel(A, B, C, out, comp, *self.acc_format.kernel_params(), m, r,
                     np.uint64(seed))
        return out, comp

    def _matmul(self, A, B, C, seed):
        return self._run(A, B, C, seed)[0]

    def matmul_with_compensation(self, A, B, C=None, *, seed: int = 0):
        """``(D, comp)``: the result and the final compensation term of every output
        (one per output component)."""
        from .base import check_matmul_shapes

        A, B, C = check_matmul_shapes(A, B, C)
        self.check_inputs(A, B, C)
        return self._run(A, B, C, int(seed) & (2**64 - 1))

    def cost_bits(self, n: int) -> float:
        return float(2 * self.acc_format.p * n)
