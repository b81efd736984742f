"""Shared numba building blocks of the generic accumulator families.

Two ways to round ``x + y`` (``y`` an exact binary64 product) into a format:

* the exact, general path :func:`add_r` (TwoSum, then one
  :func:`~accsim.kernels.rounding.round_dd`), valid in every mode, for every input;
* branch-free fast paths for the common lane (result in the normal range of the target,
  no overflow, finite), used by :func:`vstep` which updates a whole vector of
  accumulators and re-does the rare lanes with the exact path:

  - RNE with ``p <= 25``: ``s = x + y`` in binary64 is RN to 53 bits and rounding it
    again to ``p`` bits by the integer "add half minus one plus lsb, mask" trick is the
    correctly rounded result because ``53 >= 2p + 2`` (double rounding is innocuous for
    round-to-nearest only; Figueroa 1995);
  - every mode (including stochastic rounding) when the binary64 sum is exact
    (TwoSum error ``t == 0``, the usual case for short formats): the discarded bits are
    then exactly the low ``53 - p`` bits of ``s``.

The random word of stochastic rounding is ``random_u64(seed, stream, ctr)`` in both paths;
the fast path evaluates it as ``mix64(key ^ (ctr * C2 + G))`` with the per-stream key
``key = mix64(mix64(seed + G) ^ stream * C1)`` hoisted out of the loop (identical bits,
see :mod:`accsim.kernels.rng`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels.atoms import add_round, mul_round
from ..kernels.bits import JIT, bits_to_f64, f64_to_bits, two_sum
from ..kernels.rng import _C1, _C2, _G, mix64
from ..kernels.rounding import (
    FLAG_NO_NEG_ZERO,
    RD,
    RNA,
    RNE,
    RO,
    RU,
    SR,
    round_dd,
)

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_SIGN = np.uint64(1 << 63)
_ABS = np.uint64((1 << 63) - 1)


@njit(**JIT)
def stream_key(seed, stream):
    """Per-stream part of :func:`~accsim.kernels.rng.random_u64` (hoistable)."""
    h = mix64(np.uint64(seed) + _G)
    return mix64(h ^ (np.uint64(stream) * _C1))


@njit(**JIT)
def word(key, ctr):
    """``random_u64(seed, stream, ctr)`` given ``key = stream_key(seed, stream)``."""
    return mix64(key ^ (np.uint64(ctr) * _C2 + _G))


@njit(**JIT)
def _rd_zero_fix(res, x, y, mode, flags):
    # IEEE 754-2019 6.3: an exact zero sum of operands of opposite signs is -0 in RD
    # (binary64 hardware, running RNE, gives +0); round_dd keeps the sign of hi.
    if mode == RD and res == 0.0 and not (flags & FLAG_NO_NEG_ZERO):
        if x + y == 0.0:
            if not (x == 0.0 and y == 0.0 and math.copysign(1.0, x) > 0.0
                    and math.copysign(1.0, y) > 0.0):
                return -0.0
    return res


@njit(**JIT)
def add_r(x, y, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr):
    """``round(x + y)`` exactly once (IEEE zero-sign rules, every mode)."""
    res = add_round(x, y, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr)
    return _rd_zero_fix(res, x, y, mode, flags)


@njit(**JIT)
def mul_r(a, b, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr):
    """``round(a * b)`` exactly once."""
    return mul_round(a, b, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr)


@njit(**JIT)
def round1(x, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr):
    """``round(x)`` of one binary64 value."""
    return round_dd(x, 0.0, p, emin, maxv, sub, ovf, flags, mode, r, seed, stream, ctr)


@njit(**JIT)
def fast_rne(s, sh, tiny, maxv):
    """RNE of a binary64 value to ``53 - sh`` bits; returns (result, ok). ``ok`` is False
    when the lane needs the exact path (target subnormal/zero, overflow, inf, NaN)."""
    b = f64_to_bits(s)
    half_m1 = (_ONE << np.uint64(sh - 1)) - _ONE
    mask = ~((_ONE << np.uint64(sh)) - _ONE)
    rb = (b + half_m1 + ((b >> np.uint64(sh)) & _ONE)) & mask
    res = bits_to_f64(rb)
    ok = (abs(s) >= tiny) & (abs(res) <= maxv)
    return res, ok


@njit(**JIT)
def fast_exact(s, sh, tiny, maxv, mode, rr, w):
    """Round a binary64 value that is the EXACT result (TwoSum error 0) to ``53 - sh``
    bits in ``mode``; ``rr`` random bits (64 for exact SR) from the word ``w``.
    Returns (result, ok) as :func:`fast_rne`."""
    b = f64_to_bits(s)
    sh64 = np.uint64(sh)
    low = (_ONE << sh64) - _ONE
    R = b & low
    neg = (b & _SIGN) != _ZERO
    nz = R != _ZERO
    half = _ONE << np.uint64(sh - 1)
    T = b >> sh64
    if mode == RNE:
        up = (R > half) | ((R == half) & ((T & _ONE) == _ONE))
    elif mode == RNA:
        up = R >= half
    elif mode == RU:
        up = nz & (not neg)
    elif mode == RD:
        up = nz & neg
    elif mode == SR:
        Fw = R << np.uint64(64 - sh)
        d = np.uint64(64 - rr)
        up = (w >> d) < (Fw >> d)
    else:  # RZ, RO
        up = False
    rb = (b & ~low) + (np.uint64(up) << sh64)
    if mode == RO:
        rb = rb | (np.uint64(nz) << sh64)
    res = bits_to_f64(rb)
    ok = (abs(s) >= tiny) & (abs(res) <= maxv)
    return res, ok


@njit(**JIT)
def _rne_loop(src, dst, a, brow, n, sh, tb, span):
    """Fast RNE lanes of :func:`vstep` (vectorised); returns nonzero if a lane must be
    redone exactly."""
    s64 = np.uint64(sh)
    half_m1 = (_ONE << np.uint64(sh - 1)) - _ONE
    mask = ~((_ONE << s64) - _ONE)
    bad = _ZERO
    for j in range(n):
        s = src[j] + a * brow[j]
        b = f64_to_bits(s)
        rb = (b + half_m1 + ((b >> s64) & _ONE)) & mask
        dst[j] = bits_to_f64(rb)
        bad |= np.uint64(((rb & _ABS) - tb) > span)
    return bad


@njit(**JIT)
def _sr_loop(src, dst, a, brow, n, sh, tb, span, r, keys, ctr):
    """Fast SR lanes of :func:`vstep`: exact binary64 sums (TwoSum error 0) in the
    normal range; returns nonzero if a lane must be redone exactly."""
    s64 = np.uint64(sh)
    low = (_ONE << s64) - _ONE
    d = np.uint64(64 - (64 if r == 0 else r))
    fsh = np.uint64(64 - sh)
    bad = _ZERO
    for j in range(n):
        s, t = two_sum(src[j], a * brow[j])
        b = f64_to_bits(s)
        w = word(keys[j], ctr)
        up = (w >> d) < (((b & low) << fsh) >> d)
        rb = (b & ~low) + (np.uint64(up) << s64)
        dst[j] = bits_to_f64(rb)
        bad |= np.uint64(((rb & _ABS) - tb) > span) | np.uint64(t != 0.0) \
            | np.uint64(((b & _ABS) - tb) > span)
    return bad


@njit(**JIT)
def vstep(src, dst, a, brow, n, p, emin, maxv, sub, ovf, flags, mode, r, seed, sbase,
          keys, ctr, fast):
    """``dst[j] = round(src[j] + a * brow[j])`` for j < n, each exactly once.

    ``src`` and ``dst`` must be distinct arrays (ping-pong buffers: the rare lanes the
    fast path rejects are recomputed from ``src`` by the exact path). The product
    ``a * brow[j]`` must be exact in binary64. Lane j is SR stream ``sbase + j`` with
    key ``keys[j] = stream_key(seed, sbase + j)``; ``ctr`` is the counter of this
    rounding. ``fast=False`` forces the exact path for every lane.
    """
    sh = 53 - p
    tiny = math.ldexp(1.0, emin)
    tb = f64_to_bits(tiny)
    span = f64_to_bits(maxv) - tb
    bad = _ZERO
    if fast and mode == RNE and p <= 25:
        bad = _rne_loop(src, dst, a, brow, n, sh, tb, span)
    elif fast and mode == SR and p <= 52:
        bad = _sr_loop(src, dst, a, brow, n, sh, tb, span, r, keys, ctr)
    elif fast and p <= 52:
        for j in range(n):
            s, t = two_sum(src[j], a * brow[j])
            res, ok = fast_exact(s, sh, tiny, maxv, mode, 64, _ZERO)
            dst[j] = res
            bad |= np.uint64(not ok) | np.uint64(t != 0.0)
    else:
        bad = _ONE
        for j in range(n):
            dst[j] = math.nan
    if bad != _ZERO:
        # recompute every rejected lane exactly (the check is re-evaluated from src)
        for j in range(n):
            x = src[j]
            y = a * brow[j]
            redo = not fast or p > 52 or (mode == RNE and p > 25)
            if not redo:
                s, t = two_sum(x, y)
                rb = f64_to_bits(dst[j])
                redo = (t != 0.0 and mode != RNE) or ((rb & _ABS) - tb) > span \
                    or not (abs(s) >= tiny)
            if redo:
                dst[j] = add_r(x, y, p, emin, maxv, sub, ovf, flags, mode, r, seed,
                               sbase + j, ctr)


@njit(**JIT)
def fill_keys(keys, seed, sbase, n):
    """``keys[j] = stream_key(seed, sbase + j)`` for j < n."""
    for j in range(n):
        keys[j] = stream_key(seed, sbase + j)
