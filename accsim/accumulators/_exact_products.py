"""Shared set-up of the families that form every product exactly in binary64.

Recursive, blocked, pairwise, Kahan and Kulisch summation all take operands whose
products ``a_i * b_i`` are exact in binary64 (``p_a + p_b <= 53``), then round sums in
their own formats. This base class resolves the operand formats, validates the rounding
mode and checks the exact-product condition, once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accsim.accumulators._checks import (
    check_exact_products,
    check_format_products,
    check_mode,
    fmt_or_none,
)
from accsim.accumulators.base import Accumulator
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format


@dataclass(frozen=True, repr=False)
class ExactProductAccumulator(Accumulator):
    """Base class of the exact-product families (fields ``mode`` and ``sr_bits`` are
    declared by each subclass)."""

    def _setup(self, out_format, *, check_products: bool = True) -> None:
        """Resolve formats and validate the mode; call from ``__post_init__``."""
        object.__setattr__(self, "out_format", out_format)
        for f in ("a_format", "b_format", "c_format"):
            object.__setattr__(self, f, fmt_or_none(getattr(self, f)))
        check_mode(self.mode, self.sr_bits)
        object.__setattr__(self, "mode", self.mode.lower())
        if check_products:
            check_format_products(self.a_format, self.b_format, f"{self.family} {self.name}")

    def _products_exact_by_construction(self) -> bool:
        """Whether no runtime check of the products is needed (see RecursiveSum)."""
        return False

    def check_inputs(self, A, B, C) -> None:
        super().check_inputs(A, B, C)
        if not self._products_exact_by_construction() and (
            self.a_format is None or self.b_format is None
        ):
            check_exact_products(A, B, f"{self.family} model {self.name!r}")


@dataclass(frozen=True, repr=False)
class SingleFormatSum(ExactProductAccumulator):
    """An exact-product family that rounds everything into one ``acc_format`` (the
    output format) in one ``mode``: the fields and set-up shared by recursive, pairwise
    and Kahan summation."""

    acc_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    mode: str = "rne"
    sr_bits: int | None = None

    def __post_init__(self) -> None:
        acc = get_format(self.acc_format)
        object.__setattr__(self, "acc_format", acc)
        self._setup(acc)
