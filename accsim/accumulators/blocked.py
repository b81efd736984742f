"""Blocked summation: blocks of ``b`` terms summed in one format, block sums in another.

Blanchard, Higham, Mary, "A class of fast and accurate summation algorithms", SIAM J.
Sci. Comput. 42 (2020): blocks of b terms summed in one precision, block sums accumulated
in another (El Arar, Filip, Mary, Riccietti, arXiv:2503.15568, 2025, sum blocks of 8).

Order for output (i, j) (SR stream ``i*N + j``):

1. ``acc = round(c_ij)`` into ``outer_format`` (SR counter ``2K``);
2. for each block ``[k0, k1)`` of ``block`` consecutive terms (the last may be shorter):
   ``t = +0``; for k in the block ``t = round(t + a_ik b_kj)`` into ``inner_format``
   (counter ``2k``; the first term is thus just rounded); then
   ``acc = round(acc + t)`` into ``outer_format`` (counter ``2(k1-1) + 1``).

Products are exact (binary64). Error bound: gamma_b(u) + gamma_{n/b}(u) (Blanchard, Higham,
Mary 2020).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, sums_exact
from accsim.accumulators._exact_products import ExactProductAccumulator
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.tiles import blocked_kernel
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format


@dataclass(frozen=True, repr=False)
class BlockedSum(ExactProductAccumulator):
    """Blocked summation (see the module docstring for order and SR counters).

    Parameters
    ----------
    block : int
        Block size b (>= 1).
    inner_format, outer_format : FloatFormat or str
        Formats of the block sums and of the accumulator (= output format).
    mode : str
        Rounding mode of every rounding.
    sr_bits : int or None
        Random bits per SR decision (None: exact SR).
    """

    block: int = 8
    inner_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    outer_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    mode: str = "rne"
    sr_bits: int | None = None

    family = "blocked"

    def __post_init__(self) -> None:
        if isinstance(self.block, bool) or not isinstance(self.block, int | np.integer) \
                or self.block < 1:
            raise ValueError(f"block must be an int >= 1, got {self.block!r}")
        object.__setattr__(self, "block", int(self.block))
        inner, outer = get_format(self.inner_format), get_format(self.outer_format)
        object.__setattr__(self, "inner_format", inner)
        object.__setattr__(self, "outer_format", outer)
        self._setup(outer)

    def _matmul(self, A, B, C, seed, *, fast: bool = True):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        K = A.shape[1]
        fi, fo = self.inner_format, self.outer_format
        iexact = fast and sums_exact(A, B, None, [fi], min(K, self.block))
        oexact = iexact and sums_exact(A, B, C, [fi, fo], 2 * K + 1, products=False)
        blocked_kernel(A, B, C, out, self.block, fi.kernel_params(), fo.kernel_params(),
                       m, r, np.uint64(seed), fast, iexact, oexact)
        return out

    def cost_bits(self, n: int) -> float:
        return float(self.inner_format.p * n + self.outer_format.p * -(-n // self.block))


register_family(Family("blocked", BlockedSum, bound=bounds.blocked_bound,
                       reference="ref_blocked"))
