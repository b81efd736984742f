"""Numba kernel of Kulisch-style exact accumulation (:mod:`accsim.accumulators.kulisch`).

Kulisch, "Computer Arithmetic and Validity", 2nd ed., 2013: a fixed-point accumulator
of ``NLIMB`` signed 64-bit limbs holding 32-bit digits (weight of digit l =
2^(32 l - 1074)); layout, extraction and special values:
:mod:`accsim.accumulators.kulisch`.
"""

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, f64_to_bits, two_sum
from accsim.kernels.rounding import overflow_result, round_dd
from accsim.kernels.vocab import RD, away_mode

NLIMB = 72
_M32 = np.int64(0xFFFFFFFF)


@njit(**JIT)
def _deposit(L, x):
    """Add the finite binary64 value x exactly into the limbs L."""
    b = f64_to_bits(x)
    ef = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    mant = np.int64(b & np.uint64((1 << 52) - 1))
    if ef == 0:
        off = np.int64(0)  # subnormal: lsb weight 2^-1074
    else:
        mant |= np.int64(1) << 52
        off = ef - 1
    if mant == 0:
        return
    neg = (b >> np.uint64(63)) != np.uint64(0)
    limb = off >> 5
    sh = off & 31
    lo = mant & _M32
    hi = mant >> 32
    t0 = lo << sh
    t1 = hi << sh
    if neg:
        L[limb] -= t0 & _M32
        L[limb + 1] -= (t0 >> 32) + (t1 & _M32)
        L[limb + 2] -= t1 >> 32
    else:
        L[limb] += t0 & _M32
        L[limb + 1] += (t0 >> 32) + (t1 & _M32)
        L[limb + 2] += t1 >> 32


@njit(**JIT)
def _finish(L, fmt, mode, r, seed, stream):
    """Round the exact value held in L once; (0, False) if it is zero."""
    carry = np.int64(0)
    for l in range(NLIMB):
        v = L[l] + carry
        L[l] = v & _M32
        carry = v >> 32  # arithmetic: floor division
    neg = carry < 0
    if neg:  # two's complement magnitude: ~L + 1 over the digits
        c = np.int64(1)
        for l in range(NLIMB):
            v = (L[l] ^ _M32) + c
            L[l] = v & _M32
            c = v >> 32
    top = -1
    for l in range(NLIMB - 1, -1, -1):
        if L[l] != 0:
            top = l
            break
    if top < 0:
        return 0.0, False
    nb = 32 * top + 32 - _clz32(L[top])  # bit length of the magnitude
    # take bits [nb-106, nb) as Y = Yh * 2^53 + Yl, jam the sticky into Yl's lsb
    shift = nb - 106
    Yh = _bits(L, shift + 53, 53)
    Yl = _bits(L, shift, 53)
    if shift > 0 and _any_below(L, shift):
        Yl |= np.int64(1)
    e = shift - 1074
    hi0 = math.ldexp(float(Yh), e + 53)
    lo0 = math.ldexp(float(Yl), e)
    if math.isinf(hi0):
        return overflow_result(neg, away_mode(mode, neg), fmt.maxv, fmt.ovf), True
    hi, lo = two_sum(hi0, lo0)
    if neg:
        hi, lo = -hi, -lo
    return round_dd(hi, lo, fmt, mode, r, seed, stream, 0), True


@njit(**JIT)
def _clz32(v):
    n = 0
    x = v
    while x < (np.int64(1) << 31):
        x <<= 1
        n += 1
    return n


@njit(**JIT)
def _bits(L, pos, width):
    """Bits [pos, pos+width) of the magnitude in L (pos may be negative: zero fill)."""
    res = np.int64(0)
    for q in range(width):
        b = pos + q
        if b >= 0:
            l = b >> 5
            if l < NLIMB and (L[l] >> (b & 31)) & 1:
                res |= np.int64(1) << q
    return res


@njit(**JIT)
def _any_below(L, pos):
    l = pos >> 5
    for m in range(l):
        if L[m] != 0:
            return True
    return (L[l] & ((np.int64(1) << (pos & 31)) - 1)) != 0


@njit(parallel=True, **JIT)
def kulisch_kernel(A, Bt, C, out, fmt, mode, r, seed):
    """Exact dot products ``A[i] . Bt[j] + C[i, j]`` rounded once (Bt = B transposed)."""
    M, K = A.shape
    N = Bt.shape[0]
    for task in prange(M * N):
        i = task // N
        j = task - i * N
        L = np.zeros(NLIMB, np.int64)
        nan = False
        pinf = False
        ninf = False
        allzero = True
        allneg = True
        for k in range(K + 1):
            x = A[i, k] * Bt[j, k] if k < K else C[i, j]
            if x != x:
                nan = True
            elif math.isinf(x):
                if x > 0:
                    pinf = True
                else:
                    ninf = True
            elif x == 0.0:
                if math.copysign(1.0, x) > 0:
                    allneg = False
            else:
                allzero = False
                _deposit(L, x)
        if nan or (pinf and ninf):
            res = math.nan
        elif pinf or ninf:
            res = round_dd(math.inf if pinf else -math.inf, 0.0, fmt, mode, r, seed, task, 0)
        else:
            res, nonzero = _finish(L, fmt, mode, r, seed, task)
            if not nonzero:
                z = -0.0 if ((allzero and allneg) or (not allzero and mode == RD)) else 0.0
                res = round_dd(z, 0.0, fmt, mode, r, seed, task, 0)
        out[i, j] = res
