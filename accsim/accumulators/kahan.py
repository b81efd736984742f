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

Infinities (IEEE 754-2019, 7.2): once ``t`` is infinite (an infinite term, or the sum
overflowed), ``comp = round(t - s) - y`` is ``inf - inf`` = NaN, and the next term's
``y = round(p - comp)`` carries the NaN into the sum. So ``fp16-kahan`` returns NaN
where the uncompensated families return inf whenever a term FOLLOWS the infinity:
``[inf, 1]`` or ``[60000, 60000, 1]`` (binary16 overflow) give NaN, while ``[inf]`` and
``[1, inf]`` give inf. This is the IEEE result of the compensation step, not an error.

RNE fast path (formats with ``p <= 25``): every operation is one RNE rounding of an
exact pair, computed as binary64 sum then one rounding by
:func:`~accsim.kernels.accumulate.rne_lane` (correct as ``53 >= 2p + 2``, guarded against the
inexact-midpoint case), vectorised across 256 output columns; lanes it rejects redo the
whole step with the exact path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, sums_exact
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.accumulate import rne_ok
from accsim.kernels.tiles import kahan_kernel, kahan_rne_kernel
from accsim.kernels.vocab import RoundingMode
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.rounding import check_seed


@dataclass(frozen=True, repr=False)
class KahanSum(SingleFormatSum):
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

    family = "kahan"

    def _run(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        comp = np.empty_like(out)
        kp = self.acc_format.kernel_params()
        if fast and m == RoundingMode.RNE and rne_ok(kp):
            exact = sums_exact(A, B, C, [self.acc_format], 10**9, products=False)
            kahan_rne_kernel(A, B, C, out, comp, kp, exact)
        else:
            kahan_kernel(A, B, C, out, comp, kp, m, r, np.uint64(seed))
        return out, comp

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        return self._run(A, B, C, seed, fast=fast)[0]

    def matmul_with_compensation(self, A, B, C=None, *, seed: int = 0):
        """``(D, comp)``: the result and the final compensation term of every output
        (one per output component)."""
        A, B, C = check_matmul_shapes(A, B, C)
        self.check_inputs(A, B, C)
        return self._run(A, B, C, check_seed(seed))

    def cost_bits(self, n: int) -> float:
        return float(2 * self.acc_format.p * n)


register_family(Family("kahan", KahanSum, bound=bounds.kahan_bound,
                       reference="ref_kahan"))
