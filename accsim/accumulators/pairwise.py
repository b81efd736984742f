"""Pairwise (tree) summation of the rounded products.

Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed. (2002), section 4.2.
Order for output (i, j) (SR stream ``i*N+j``):

1. ``cr = round(c_ij)`` into ``acc_format`` (SR counter ``2K``);
2. ``p_k = round(a_ik b_kj)`` into ``acc_format``, k = 0..K-1 (counter ``k``);
3. tree: pairs (0,1), (2,3), ... of the current level are added and rounded, an odd last
   element is carried up unchanged; repeat until one value is left. The m-th addition
   overall (level by level, left to right, m = 0..K-2) uses counter ``K + m``;
4. ``d = round(tree + cr)`` (counter ``2K + 1``); with K = 0, ``d = cr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, sums_exact
from accsim.accumulators._exact_products import SingleFormatSum
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.pairwise import pairwise_kernel


@dataclass(frozen=True, repr=False)
class PairwiseSum(SingleFormatSum):
    """Pairwise (tree) summation in one format (order and SR counters: module docstring).

    Parameters
    ----------
    acc_format : FloatFormat or str
        Format of the rounded products, of every partial sum and of the output.
    mode : str
        Rounding mode of every rounding.
    sr_bits : int or None
        Random bits per SR decision (None: exact SR).
    """

    family = "pairwise"

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        exact = fast and sums_exact(A, B, C, [self.acc_format], 2 * A.shape[1] + 2,
                                    products=False)
        pairwise_kernel(A, B, C, out, self.acc_format.kernel_params(), m, r,
                        np.uint64(seed), fast, exact)
        return out


register_family(Family("pairwise", PairwiseSum, bound=bounds.pairwise_bound,
                       reference="ref_pairwise"))
