"""Fine-grained promotion: a low-precision unit for N_C terms, then promotion to fp32.

DeepSeek-V3 technical report (arXiv:2412.19437, 2024), section 3.3.2: partial sums are
promoted to fp32 CUDA cores every N_C = 128 elements of K ("fine-grained promotion").

Order for output (i, j): ``acc = round(c_ij)`` into ``outer_format``; for each chunk
``[k0, k0 + chunk)`` (the last may be shorter; chunk number q = k0 / chunk) the partial sum
``P = inner.matmul(A[:, chunk], B[chunk, :], C=0, seed=s_q)`` is formed by the inner model
starting from zero, then ``acc = round(acc + P)`` (one rounding, ``outer_mode``). The
inner model's SR generator is keyed per chunk: ``s_q = random_u64(seed, q, 2^64 - 1)``
(so chunks never reuse random words).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.accumulators import bounds
from accsim.accumulators._checks import check_mode, fmt_or_none
from accsim.accumulators.base import Accumulator
from accsim.accumulators.registry import Family, register_family
from accsim.kernels.promotion import add_matrix, round_matrix
from accsim.kernels.rng import random_words
from accsim.kernels.vocab import RoundingMode
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format

#: Deterministic modes only: the outer additions have no SR stream of their own.
OUTER_MODES = tuple(m.label for m in RoundingMode if not m.is_stochastic)


def chunk_seed(seed: int, q: int) -> int:
    """The inner model's seed for chunk ``q``."""
    return int(random_words(seed, q, [2**64 - 1])[0])


@dataclass(frozen=True, repr=False)
class PromotedSum(Accumulator):
    """Chunks of ``chunk`` terms summed by ``inner`` (from 0), promoted into an
    ``outer_format`` accumulator with one rounding each (see module docstring).

    Parameters
    ----------
    inner : Accumulator
        The low-precision unit (e.g. a RecursiveSum in an fp8-range format, or a fused
        tensor-core model).
    chunk : int
        N_C, terms per promotion (DeepSeek-V3: 128).
    outer_format : FloatFormat or str
        Format of the promoted accumulator and of the output (default binary32).
    outer_mode : str
        Rounding of the promotion additions (deterministic modes).
    """

    inner: Accumulator | None = None
    chunk: int = 128
    outer_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    outer_mode: str = "rne"

    family = "promotion"

    def __post_init__(self) -> None:
        if not isinstance(self.inner, Accumulator):
            raise ValueError(f"inner must be an Accumulator model, got {self.inner!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int | np.integer) \
                or self.chunk < 1:
            raise ValueError(f"chunk must be an int >= 1, got {self.chunk!r}")
        object.__setattr__(self, "chunk", int(self.chunk))
        outer = get_format(self.outer_format)
        object.__setattr__(self, "outer_format", outer)
        object.__setattr__(self, "out_format", outer)
        for f in ("a_format", "b_format", "c_format"):
            v = fmt_or_none(getattr(self, f))
            if v is None and f != "c_format":
                v = getattr(self.inner, f)
            object.__setattr__(self, f, v)
        if not isinstance(self.outer_mode, str) or self.outer_mode.lower() not in OUTER_MODES:
            raise ValueError(
                f"unknown outer_mode {self.outer_mode!r}; valid: {', '.join(OUTER_MODES)}"
            )
        object.__setattr__(self, "outer_mode", self.outer_mode.lower())

    def check_inputs(self, A, B, C) -> None:
        super().check_inputs(A, B, C)
        Z = np.zeros((A.shape[0], B.shape[1]))
        self.inner.check_inputs(A, B, Z)

    def _matmul(self, A, B, C, seed):
        m, _ = check_mode(self.outer_mode, None, "outer_mode")
        params = self.outer_format.kernel_params()
        acc = np.empty_like(C)
        round_matrix(C, acc, params, m)
        K = A.shape[1]
        zero = np.zeros_like(C)
        for q, k0 in enumerate(range(0, K, self.chunk)):
            Ak = np.ascontiguousarray(A[:, k0:k0 + self.chunk])
            Bk = np.ascontiguousarray(B[k0:k0 + self.chunk])
            P = self.inner._matmul(Ak, Bk, zero, chunk_seed(seed, q))
            add_matrix(acc, P, params, m)
        return acc

    def params(self) -> dict:
        d = super().params()
        d.pop("inner", None)
        for key, v in self.inner.describe().items():
            d[f"inner_{key}"] = v
        return d

    def cost_bits(self, n: int) -> float:
        return self.inner.cost_bits(n) + float(self.outer_format.p * -(-n // self.chunk))


register_family(Family("promotion", PromotedSum, bound=bounds.promotion_bound,
                       reference="ref_promoted"))
