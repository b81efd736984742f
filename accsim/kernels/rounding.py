"""Exact rounding of a binary64 value, or of an unevaluated sum ``hi + lo``, to any format.

The core routine :func:`round_dd` never computes "in float64 and rounds again": it
splits the exact value ``|hi + lo| = (T + f) * 2^q`` into the integer significand ``T``
at the target quantum ``2^q`` and the discarded fraction ``f in [0, 1)``, known as its
first 64 bits ``Fw = floor(f * 2^64)`` plus a remainder ``rest = f * 2^64 - Fw`` (exact
sign, approximate value). Every mode decides from ``(T, Fw, rest)``:

* ``rne`` / ``rna``: compare ``f`` with 1/2 (``Fw`` against ``2^63``, ties broken by
  ``rest`` and the parity of ``T``);
* ``rz``, ``ru``, ``rd``: inexact iff ``Fw > 0 or rest > 0``;
* ``ro`` (round to odd): truncate, then set the last bit of ``T`` if inexact;
* ``sr`` with ``r`` random bits: round away from zero iff ``U < floor(f * 2^r)`` with ``U``
  an ``r``-bit uniform integer (Connolly, Higham, Mary, SISC 2021; gfloat's ``srbits``);
  with ``r = 0`` ("exact"), iff a 64-bit uniform ``W < Fw``, or ``W == Fw`` and a further
  53-bit uniform is below ``rest`` (probability exact up to 2^-117).

Requirements on the input pair: ``hi = RN(hi + lo)`` in binary64 (as produced by
TwoSum/TwoProd), ``lo = 0`` when ``hi`` is 0, inf or NaN.
"""

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, f64_to_bits
from accsim.kernels.rng import random_u64
from accsim.kernels.vocab import (
    FLAG_E8M0,
    FLAG_NO_NEG_ZERO,
    OVF_INF,
    OVF_NAN,
    RD,
    RNA,
    RNE,
    RO,
    RU,
    SR,
    away_mode,
)

_FRAC = np.uint64((1 << 52) - 1)
_HIDDEN = np.uint64(1 << 52)
_HALF = np.uint64(1 << 63)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_STREAM2 = np.uint64(0xA5A5A5A5A5A5A5A5)


@njit(**JIT)
def overflow_result(neg, away, maxv, ovf):
    """Value of an overflow: the format's overflow value if rounding went away from
    zero (inf, NaN, or +-max for saturating formats), else +-max."""
    if away:
        if ovf == OVF_INF:
            r = math.inf
        elif ovf == OVF_NAN:
            return math.nan
        else:
            r = maxv
    else:
        r = maxv
    return -r if neg else r


@njit(**JIT)
def round_dd(hi, lo, fmt, mode, r, seed, stream, ctr):
    """Round the exact value ``hi + lo`` once to the format ``fmt`` (a
    :class:`~accsim.kernels.vocab.KernelFormat`) in ``mode``; return the result as float64.

    ``r`` is the number of random bits for ``mode == SR`` (0: exact probabilities);
    random words come from ``random_u64(seed, stream, ctr)``.
    """
    p, emin, maxv, sub, ovf, flags = fmt
    if hi != hi or lo != lo:
        return math.nan
    if flags & FLAG_E8M0:
        if hi <= 0.0 or math.isnan(hi):
            return math.nan
    if math.isinf(hi):
        if ovf == OVF_INF:
            return hi
        if ovf == OVF_NAN:
            return math.nan
        return -maxv if hi < 0 else maxv
    if hi == 0.0:
        if flags & FLAG_NO_NEG_ZERO:
            return 0.0
        return hi
    neg = hi < 0.0
    ah = -hi if neg else hi
    al = -lo if neg else lo  # > 0: further from zero than hi
    b = f64_to_bits(ah)
    ef = np.int64(b >> np.uint64(52))
    if ef == 0:
        M = b
        E = np.int64(-1074)
        e = np.int64(math.frexp(ah)[1] - 1)
    else:
        M = (b & _FRAC) | _HIDDEN
        E = ef - 1075
        e = ef - 1023
    ev = e
    if al < 0.0 and (M & (M - _ONE)) == _ZERO:
        ev = e - 1
    if ev < emin:
        q = emin - (p - 1) if sub else np.int64(emin)
    else:
        q = ev - (p - 1)
    sh = q - E

    # exact split |hi + lo| = (T + (Fw + rest) / 2^64) * 2^q
    rest = 0.0
    if sh <= 0:
        T = M << np.uint64(-sh)
        Fw = _ZERO
        if al != 0.0:
            z = math.ldexp(al, 64 - q)
            if al > 0.0:
                if z == 0.0:
                    rest = 5e-324
                else:
                    fz = np.floor(z)
                    Fw = np.uint64(fz)
                    rest = z - fz
            else:
                nz = -z
                if nz == 0.0:
                    c = 1.0
                    rest = 1.0 - 2.0**-53
                else:
                    c = np.ceil(nz)
                    rest = c - nz
                T = T - _ONE
                Fw = _ZERO - np.uint64(c)
    elif sh < 64:
        T = M >> np.uint64(sh)
        R = M & ((_ONE << np.uint64(sh)) - _ONE)
        Fw = R << np.uint64(64 - sh)
        if al != 0.0:
            z = math.ldexp(al, 64 - q)
            if al > 0.0:
                if z == 0.0:
                    rest = 5e-324
                else:
                    fz = np.floor(z)
                    Fw = Fw + np.uint64(fz)
                    rest = z - fz
            else:
                nz = -z
                if nz == 0.0:
                    c = 1.0
                    rest = 1.0 - 2.0**-53
                else:
                    c = np.ceil(nz)
                    rest = c - nz
                if R == _ZERO:
                    T = T - _ONE
                Fw = Fw - np.uint64(c)
    else:
        T = _ZERO
        zh = math.ldexp(ah, 64 - q)
        fh = np.floor(zh)
        rh = zh - fh
        Fw = np.uint64(fh)
        rest = rh
        if al != 0.0:
            zl = math.ldexp(al, 64 - q)
            if al > 0.0:
                if rh > 0.0:
                    rest = rh + zl
                else:
                    rest = zl if zl > 0.0 else 5e-324
            else:
                if rh > 0.0:
                    rest = rh + zl
                    if rest <= 0.0:
                        rest = 5e-324
                else:
                    Fw = Fw - _ONE
                    rest = 1.0 + zl
                    if rest >= 1.0:
                        rest = 1.0 - 2.0**-53

    inexact = Fw != _ZERO or rest > 0.0
    up = False
    if mode == RNE:
        up = Fw > _HALF or (Fw == _HALF and (rest > 0.0 or (T & _ONE) == _ONE))
    elif mode == RNA:
        up = Fw >= _HALF
    elif mode == RU:
        up = inexact and not neg
    elif mode == RD:
        up = inexact and neg
    elif mode == RO:
        if inexact:
            T = T | _ONE
    elif mode == SR:
        if inexact:
            w = random_u64(seed, stream, ctr)
            if r == 0:
                if w < Fw:
                    up = True
                elif w == Fw and rest > 0.0:
                    w2 = random_u64(seed, stream ^ _STREAM2, ctr)
                    up = math.ldexp(float(w2 >> np.uint64(11)), -53) < rest
            else:
                sr = np.uint64(64 - r)
                up = (w >> sr) < (Fw >> sr)
    if up:
        T = T + _ONE
    res = math.ldexp(float(T), q)
    if flags & FLAG_E8M0:
        if res == 0.0:
            res = math.ldexp(1.0, emin)
    if res > maxv:
        if mode == SR:
            away = up
        else:
            away = away_mode(mode, neg)
        return overflow_result(neg, away, maxv, ovf)
    if neg:
        if res == 0.0 and (flags & FLAG_NO_NEG_ZERO):
            return 0.0
        return -res
    return res


@njit(parallel=True, **JIT)
def round_array(x, out, fmt, mode, r, seed):
    """``out[i] = round(x[i])`` (SR key ``(seed, 0, i)``), elements in parallel."""
    n = x.shape[0]
    for i in prange(n):
        out[i] = round_dd(x[i], 0.0, fmt, mode, r, seed, 0, i)


@njit(**JIT)
def round_array_serial(x, out, fmt, mode, r, seed):
    """:func:`round_array` on one thread (small arrays: no thread start-up)."""
    for i in range(x.shape[0]):
        out[i] = round_dd(x[i], 0.0, fmt, mode, r, seed, 0, i)
