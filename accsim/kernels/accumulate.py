"""Shared numba building blocks of the generic accumulator families.

Two ways to round ``x + y`` (``y`` an exact binary64 product) into a format:

* the exact, general path :func:`add_r` (TwoSum, then one
  :func:`~accsim.kernels.rounding.round_dd`), valid in every mode, for every input;
* branch-free fast paths, used by :func:`vstep` which updates a whole vector of
  accumulators and re-does the rare rejected lanes with the exact path:

  - RNE with ``p <= 25`` (:func:`rne_lane`, floating-point operations only, so the loop
    vectorises): ``s = x + y`` in binary64, then ``r = (s + C) - C`` with
    ``C = 1.5 * 2^(53 - p) * max(2^e_s, 2^emin)`` rounds ``s`` to the target quantum in
    the hardware's RNE (the classic "magic constant" trick; subnormal targets, zero and
    the tie parity included), the sign of ``s`` is ORed back (so ``-tiny`` gives ``-0``)
    and an overflow of the unbounded rounding (``|r| > max``) is replaced by the format's
    overflow value (inf, NaN or +-max), exactly as ``round_dd``. ``RN_p(RN_53(v))`` can
    differ from ``RN_p(v)`` only when ``s = RN_53(v)`` is inexact AND a ``p``-bit
    midpoint (the double rounding of Figueroa 1995 is otherwise innocuous as
    ``53 >= 2p + 2``); such lanes (TwoSum error ``!= 0`` and ``|s - r|`` half a quantum)
    are rejected, unless the caller proved every sum exact (``exact=True``, see
    :func:`accsim.accumulators._checks.sums_exact`), when the guard is skipped;
  - every other mode (including stochastic rounding) when the binary64 sum is exact
    (TwoSum error ``t == 0``, the usual case for short formats) and the result is in the
    normal range: the discarded bits are then exactly the low ``53 - p`` bits of ``s``.

The random word of stochastic rounding is ``random_u64(seed, stream, ctr)`` in both paths;
the fast path evaluates it as ``mix64(key ^ (ctr * C2 + G))`` with the per-stream key
``key = mix64(mix64(seed + G) ^ stream * C1)`` hoisted out of the loop (identical bits,
see :mod:`accsim.kernels.rng`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from accsim.kernels.atoms import add_round, mul_round
from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits, two_sum
from accsim.kernels.rng import _C1, _C2, _G, mix64
from accsim.kernels.rounding import round_dd
from accsim.kernels.vocab import (
    FLAG_E8M0,
    FLAG_NO_NEG_ZERO,
    OVF_NAN,
    OVF_SAT,
    RD,
    RNA,
    RNE,
    RO,
    RU,
    SR,
)

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_SIGN = np.uint64(1 << 63)
_ABS = np.uint64((1 << 63) - 1)
_EXP = np.uint64(0x7FF0000000000000)
_NAN_BITS = np.uint64(0x7FF8000000000000)
_LIM = 2.0**900  # |s| above this (or inf/NaN): exact path (keeps C finite)


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
def add_r(x, y, fmt, mode, r, seed, stream, ctr):
    """``round(x + y)`` exactly once (IEEE zero-sign rules, every mode)."""
    res = add_round(x, y, fmt, mode, r, seed, stream, ctr)
    return _rd_zero_fix(res, x, y, mode, fmt.flags)


@njit(**JIT)
def mul_r(a, b, fmt, mode, r, seed, stream, ctr):
    """``round(a * b)`` exactly once."""
    return mul_round(a, b, fmt, mode, r, seed, stream, ctr)


@njit(**JIT)
def round1(x, fmt, mode, r, seed, stream, ctr):
    """``round(x)`` of one binary64 value."""
    return round_dd(x, 0.0, fmt, mode, r, seed, stream, ctr)


@njit(**JIT)
def rne_ok(fmt):
    """Whether :func:`rne_lane` covers the format (else every lane takes the exact path)."""
    p, emin, maxv, _, _, flags = fmt
    return p <= 25 and emin - p >= -1000 and maxv < 2.0**899 and not (flags & FLAG_E8M0)


@njit(**JIT)
def rne_consts(fmt):
    """Loop constants of :func:`rne_lane`: ``(K1, KH, tiny, lowE, maxv, obits, omask,
    nz0)``."""
    p, emin, maxv, sub, ovf, flags = fmt
    tiny = math.ldexp(1.0, emin)
    # below 2^emin the quantum is 2^(emin-p+1) (subnormals) or 2^emin (none): the
    # binade "exponent" used for C is tiny, resp. tiny * 2^(p-1)
    lowE = tiny if sub else math.ldexp(tiny, p - 1)
    if ovf == OVF_NAN:
        obits, omask = _NAN_BITS, _ZERO  # round_dd returns the positive quiet NaN
    elif ovf == OVF_SAT:
        obits, omask = f64_to_bits(maxv), _SIGN
    else:
        obits, omask = f64_to_bits(math.inf), _SIGN
    nz0 = 0.0 if flags & FLAG_NO_NEG_ZERO else -0.0  # x + 0.0 maps -0 to +0
    return (1.5 * math.ldexp(1.0, 53 - p), math.ldexp(1.0, -p), tiny, lowE, maxv, obits,
            omask, nz0)


@njit(inline="always", **JIT)
def rne_lane(x, y, c, guard):
    """``RNE(x + y)`` into the format of the constants ``c`` (:func:`rne_consts`) with
    floating-point operations only; returns ``(result, bad)``. ``bad`` lanes (sum not
    finite or above 2^900; with ``guard``: inexact binary64 sum on a ``p``-bit
    midpoint) must be redone by the exact path. Valid for ``p <= 25``
    (:func:`rne_ok`)."""
    K1, KH, tiny, lowE, maxv, obits, omask, nz0 = c
    s = x + y
    sb = f64_to_bits(s)
    E = bits_to_f64(sb & _EXP)  # 2^e_s
    Eq = E if E >= tiny else lowE
    C = Eq * K1  # ulp(C) = target quantum, C/ulp even
    r = (s + C) - C
    r = bits_to_f64(f64_to_bits(r) | (sb & _SIGN))
    o = bits_to_f64(obits | (sb & omask))
    r = o if abs(r) > maxv else r
    r = r + nz0
    bad = not (abs(s) <= _LIM)
    if guard:
        bp = s - x
        ap = s - bp
        t = (x - ap) + (y - bp)
        bad = bad | ((t != 0.0) & (abs(s - r) == Eq * KH))
    return r, bad


@njit(**JIT)
def rne_loop(src, dst, a, brow, n, c, guard):
    """``dst[j] = RNE(src[j] + a * brow[j])`` by :func:`rne_lane` for j < n (vectorised;
    the guard is a loop invariant, so each variant is its own loop). Returns True if a
    lane must be redone exactly."""
    bad = False
    if guard:
        for j in range(n):
            r, b = rne_lane(src[j], a * brow[j], c, True)
            dst[j] = r
            bad |= b
    else:
        for j in range(n):
            r, b = rne_lane(src[j], a * brow[j], c, False)
            dst[j] = r
            bad |= b
    return bad


@njit(**JIT)
def rne_mul_loop(out, a, brow, n, c):
    """``out[j] = RNE(a * brow[j])`` (exact binary64 product plus -0, one rounding) for
    j < n, vectorised; returns True if a lane (non-finite product) must be redone."""
    bad = False
    for j in range(n):
        r, b = rne_lane(a * brow[j], -0.0, c, False)
        out[j] = r
        bad |= b
    return bad


@njit(**JIT)
def rne_rows(src, dst, A, i0, rows, k, brow, n, c, guard, fmt):
    """One step ``k`` of ``rows`` recursive RNE sums: ``dst[ii, j] = RNE(src[ii, j] +
    A[i0 + ii, k] * brow[j])`` (fast lanes, then the rare rejected lanes exactly). One
    call per step keeps the per-call overhead off the short lane loops."""
    for ii in range(rows):
        a = A[i0 + ii, k]
        s_ = src[ii]
        d_ = dst[ii]
        bad = False
        if guard:
            for j in range(n):
                r, b = rne_lane(s_[j], a * brow[j], c, True)
                d_[j] = r
                bad |= b
        else:
            for j in range(n):
                r, b = rne_lane(s_[j], a * brow[j], c, False)
                d_[j] = r
                bad |= b
        if bad:
            rne_fix(s_, d_, a, brow, n, c, fmt)


@njit(**JIT)
def rne_add_rows(src, dst, T, rows, n, c, guard, fmt):
    """``dst[ii, j] = RNE(src[ii, j] + T[ii, j])`` for ``rows`` rows (fast lanes, then the
    rare rejected lanes exactly)."""
    for ii in range(rows):
        if rne_loop(src[ii], dst[ii], 1.0, T[ii], n, c, guard):
            rne_fix(src[ii], dst[ii], 1.0, T[ii], n, c, fmt)


@njit(**JIT)
def rne_fix(src, dst, a, brow, n, c, fmt):
    """Redo exactly (``add_r``) the lanes :func:`rne_loop` (guarded) rejects."""
    for j in range(n):
        x = src[j]
        y = a * brow[j]
        r, b = rne_lane(x, y, c, True)
        if b:
            dst[j] = add_r(x, y, fmt, RNE, 0, _ZERO, 0, 0)


@njit(**JIT)
def fast_exact(s, sh, tiny, maxv, mode, rr, w):
    """Round a binary64 value that is the EXACT result (TwoSum error 0) to ``53 - sh``
    bits in ``mode``; ``rr`` random bits (64 for exact SR) from the word ``w``.
    Returns ``(result, ok)``: ``ok`` is False when the lane needs the exact path
    (target subnormal/zero, overflow, inf, NaN)."""
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
def _sr_loop(src, dst, a, brow, n, sh, tb, span, r, keys, ctr, exact):
    """Fast SR lanes of :func:`vstep`: exact binary64 sums (TwoSum error 0, not computed
    when ``exact``) in the normal range; returns True if a lane must be redone. (Written
    with selects and bool flags: ``np.uint64(bool)`` conversions stop vectorisation.)"""
    s64 = np.uint64(sh)
    low = (_ONE << s64) - _ONE
    d = np.uint64(64 - (64 if r == 0 else r))
    fsh = np.uint64(64 - sh)
    g = np.uint64(ctr) * _C2 + _G
    bad = False
    if exact:
        for j in range(n):
            s = src[j] + a * brow[j]
            b = f64_to_bits(s)
            w = mix64(keys[j] ^ g)
            up = (w >> d) < (((b & low) << fsh) >> d)
            rb = (b & ~low) + ((_ONE if up else _ZERO) << s64)
            dst[j] = bits_to_f64(rb)
            bad |= (((rb & _ABS) - tb) > span) | (((b & _ABS) - tb) > span)
    else:
        for j in range(n):
            s, t = two_sum(src[j], a * brow[j])
            b = f64_to_bits(s)
            w = mix64(keys[j] ^ g)
            up = (w >> d) < (((b & low) << fsh) >> d)
            rb = (b & ~low) + ((_ONE if up else _ZERO) << s64)
            dst[j] = bits_to_f64(rb)
            bad |= (((rb & _ABS) - tb) > span) | (t != 0.0) | (((b & _ABS) - tb) > span)
    return bad


@njit(**JIT)
def vstep(src, dst, a, brow, n, fmt, mode, r, seed, sbase, keys, ctr, fast, exact):
    """``dst[j] = round(src[j] + a * brow[j])`` for j < n, each exactly once.

    ``src`` and ``dst`` must be distinct arrays (ping-pong buffers: the rare lanes the
    fast path rejects are recomputed from ``src`` by the exact path). The product
    ``a * brow[j]`` must be exact in binary64. Lane j is SR stream ``sbase + j`` with
    key ``keys[j] = stream_key(seed, sbase + j)``; ``ctr`` is the counter of this
    rounding. ``fast=False`` forces the exact path for every lane. ``exact=True``
    asserts that every binary64 sum ``src[j] + a * brow[j]`` is exact (proved by the
    caller with :func:`~accsim.accumulators._checks.sums_exact`): the fast paths then
    skip their TwoSum guards.
    """
    if fast and mode == RNE and rne_ok(fmt):
        c = rne_consts(fmt)
        if rne_loop(src, dst, a, brow, n, c, not exact):
            rne_fix(src, dst, a, brow, n, c, fmt)
        return
    p, emin, maxv = fmt.p, fmt.emin, fmt.maxv
    sh = 53 - p
    tiny = math.ldexp(1.0, emin)
    tb = f64_to_bits(tiny)
    span = f64_to_bits(maxv) - tb
    bad = _ZERO
    if fast and mode == SR and p <= 52:
        bad = _ONE if _sr_loop(src, dst, a, brow, n, sh, tb, span, r, keys, ctr,
                                exact) else _ZERO
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
            redo = not fast or p > 52
            if not redo:
                s, t = two_sum(x, y)
                rb = f64_to_bits(dst[j])
                redo = t != 0.0 or ((rb & _ABS) - tb) > span or not (abs(s) >= tiny)
            if redo:
                dst[j] = add_r(x, y, fmt, mode, r, seed, sbase + j, ctr)


@njit(**JIT)
def fill_keys(keys, seed, sbase, n):
    """``keys[j] = stream_key(seed, sbase + j)`` for j < n."""
    for j in range(n):
        keys[j] = stream_key(seed, sbase + j)
