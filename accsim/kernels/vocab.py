"""The numeric vocabulary every layer shares: rounding modes and the kernel format record.

Defined once, here, at the bottom of the package; kernels compare against the plain-int
aliases (``RNE`` .. ``SR``, numba freezes them as constants) and Python code uses
:class:`RoundingMode` (an ``IntEnum``, so a member *is* the kernel code).

Rounding modes are those of IEEE 754-2019 section 4.3 (roundTiesToEven, roundTiesToAway,
roundTowardZero, roundTowardPositive, roundTowardNegative), plus round to odd (Boldo and
Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using rounding
to odd", IEEE TC 2008) and stochastic rounding (Connolly, Higham, Mary, SISC 2021); see
``docs/rounding.md``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from numba import njit

from accsim.kernels.bits import JIT

# What a round-to-nearest overflow produces (``KernelFormat.ovf``).
OVF_INF, OVF_NAN, OVF_SAT = 0, 1, 2
# ``KernelFormat.flags`` bits: no negative zero (fnuz, e8m0); E8M0 scale (no zero).
FLAG_NO_NEG_ZERO = 1
FLAG_E8M0 = 2


class RoundingMode(IntEnum):
    """A rounding mode; the member's value is the code kernels receive.

    ``RoundingMode.parse`` is the one place a mode name is read (``ValueError`` listing
    the valid names for anything else).
    """

    RNE = 0
    RNA = 1
    RZ = 2
    RU = 3
    RD = 4
    RO = 5
    SR = 6

    @classmethod
    def parse(cls, mode, what: str = "mode") -> RoundingMode:
        """The mode named ``mode`` (case-insensitive) or ``mode`` itself if a member."""
        if isinstance(mode, cls):
            return mode
        if isinstance(mode, str) and mode.upper() in cls.__members__:
            return cls[mode.upper()]
        raise ValueError(f"unknown rounding {what} {mode!r}; valid modes: {', '.join(NAMES)}")

    @property
    def label(self) -> str:
        """The lower-case name used in configs, datasets and the public API."""
        return self.name.lower()

    @property
    def is_nearest(self) -> bool:
        """Round to nearest (ties to even or away): |error| <= u |x|, not 2u."""
        return self in (RoundingMode.RNE, RoundingMode.RNA)

    @property
    def is_directed(self) -> bool:
        """Toward zero, +inf, -inf, or to odd (a truncation with a sticky last bit)."""
        return self in (RoundingMode.RZ, RoundingMode.RU, RoundingMode.RD, RoundingMode.RO)

    @property
    def is_stochastic(self) -> bool:
        return self is RoundingMode.SR

    def away_on_overflow(self, negative: bool) -> bool:
        """Whether an overflowing magnitude rounds away from zero (to the format's
        overflow value) rather than to +-max: IEEE 754-2019 section 7.4. Stochastic
        rounding decides per draw (the kernels use the draw)."""
        return bool(away_mode(int(self), negative))


#: Every mode by its public (lower-case) name.
NAMES = tuple(m.label for m in RoundingMode)
MODES = {m.label: m for m in RoundingMode}

# Plain-int aliases for jitted code (numba freezes module globals as constants).
RNE, RNA, RZ, RU, RD, RO, SR = (int(m) for m in RoundingMode)


class KernelFormat(NamedTuple):
    """A number format as kernels see it (``FloatFormat.kernel_params()``).

    Attributes
    ----------
    p : int
        Significand bits, hidden bit included.
    emin : int
        Exponent of the smallest normal number.
    maxv : float
        Largest finite value.
    sub : int
        1 if the format has subnormals.
    ovf : int
        What a round-to-nearest overflow gives: ``OVF_INF``, ``OVF_NAN`` or ``OVF_SAT``.
    flags : int
        ``FLAG_NO_NEG_ZERO`` | ``FLAG_E8M0``.
    """

    p: int
    emin: int
    maxv: float
    sub: int
    ovf: int
    flags: int


@njit(**JIT)
def away_mode(mode, neg):
    """Whether a nearest or directed ``mode`` rounds an overflowing magnitude (sign
    ``neg``) away from zero: IEEE 754-2019 section 7.4 (RZ and, as a truncation, RO
    never do; RU only for positive, RD only for negative values)."""
    if mode == RZ or mode == RO:
        return False
    if mode == RU:
        return not neg
    if mode == RD:
        return neg
    return True


@njit(**JIT)
def exact_zero_sign(mode):
    """The sign of an exact zero sum of operands of opposite signs, IEEE 754-2019
    section 6.3: +0 in every mode but roundTowardNegative, where it is -0."""
    return -0.0 if mode == RD else 0.0
