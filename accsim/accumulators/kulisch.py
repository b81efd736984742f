"""Kulisch-style exact accumulation: the exact sum of all products and c, rounded once.

Kulisch-style exact (long fixed-point) accumulators, the ideal a designer compares to
(Kulisch, "Computer Arithmetic and Validity", 2nd ed., 2013). Each output keeps a
fixed-point accumulator of 72 signed 64-bit limbs holding 32-bit digits, weight of digit
l = 2^(32 l - 1074), which covers every binary64 value (2^-1074 .. 2^1024) plus 2^31 terms
of carry headroom: exact for any inputs whose products are exact in binary64. At the
end the carries are propagated, the top 106 bits are extracted with a sticky bit jammed
into the last one (enough for every deterministic mode to p <= 53 bits, and for SR with
``p + sr_bits <= 105``), and the value is rounded once with ``round_dd`` (SR counter 0 of
stream ``i*N + j``). Specials follow IEEE 754: NaN if any NaN product/c or +inf and -inf
both occur, else the infinity; an exact zero is -0 when every term is -0, otherwise +0
(-0 in "rd").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode
from accsim.accumulators._exact_products import ExactProductAccumulator
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.kulisch import NLIMB, kulisch_kernel
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format


@dataclass(frozen=True, repr=False)
class KulischSum(ExactProductAccumulator):
    """Exact accumulation rounded once into ``out_format`` (see module docstring).

    Parameters
    ----------
    out_format : FloatFormat or str
        Format of the result.
    mode : str
        Rounding mode of the single final rounding.
    sr_bits : int or None
        Random bits for ``mode="sr"`` (None: exact SR; exact up to the 106-bit
        extraction, see the module docstring).
    """

    out_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    mode: str = "rne"
    sr_bits: int | None = None

    family = "kulisch"

    def __post_init__(self) -> None:
        self._setup(get_format(self.out_format))

    def check_inputs(self, A, B, C) -> None:
        super().check_inputs(A, B, C)
        if A.shape[1] >= 2**31:
            raise ValueError("kulisch: K must be < 2^31 (carry headroom)")

    def _matmul(self, A, B, C, seed):
        m, r = check_mode(self.mode, self.sr_bits)
        out = np.empty((A.shape[0], B.shape[1]))
        Bt = np.ascontiguousarray(B.T)
        kulisch_kernel(A, Bt, C, out, self.out_format.kernel_params(), m, r,
                       np.uint64(seed))
        return out

    def cost_bits(self, n: int) -> float:
        return float(NLIMB * 32 * n)


register_family(Family("kulisch", KulischSum, bound=bounds.kulisch_bound,
                       reference="ref_kulisch"))
