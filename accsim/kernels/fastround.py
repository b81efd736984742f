"""Branch-light fast path: round a float64 array once into a narrower format.

The generic :func:`~accsim.kernels.rounding.round_dd` rounds an unevaluated pair
``hi + lo`` and is full of branches. A single binary64 value needs much less: with
``x = M * 2^(Ee - 1075)`` read from the bit pattern (``M`` the 53-bit integer
significand, ``Ee = max(E, 1)`` the biased exponent field), the target quantum
``2^q`` (``q = max(e, emin) - p + 1``, or ``emin`` below the normal range of a format
without subnormals) is ``d = q - (Ee - 1075)`` bits above the last bit of ``M``, so

* the integer significand at the target quantum is ``T = M >> d`` and the discarded
  fraction of a quantum is ``f = (M mod 2^d) / 2^d`` -- exactly, with no remainder, when
  ``d <= 63``;
* RNE is ``(M + 2^(d-1) - 1 + ((M >> d) & 1)) >> d`` (the classic bias trick), RNA
  ``(M + 2^(d-1)) >> d``, the directed modes add ``2^d - 1`` or nothing, round-to-odd
  ORs the sticky bit into ``T``, and stochastic rounding with ``r`` bits rounds away iff
  ``U < floor(f 2^r)`` with ``U`` the top ``r`` bits of ``random_u64(seed, 0, i)``
  (exact SR: the whole 64-bit word against ``floor(f 2^64)``), the same decision and the
  same random word as ``round_dd``;
* the result ``(T << d) * 2^(Ee - 1075)`` is formed with two exact multiplications by
  powers of two, the sign bit ORed back (so negative values rounding to zero give -0),
  and a result above ``max`` is an overflow resolved as in ``round_dd``.

Rare inputs (inf, NaN, and for SR values more than 63 bits below the target quantum,
where ``f`` has more than 64 significant bits) go through ``round_dd``; formats the
path does not cover (``p >= 53``, ``emin < -1022``, e8m0) use ``round_dd`` for every
element (see :func:`supported`). ``tests/test_rounding.py`` checks identical bits
with ``round_dd`` on millions of random and adversarial values, every mode.
"""

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits
from accsim.kernels.rng import random_u64
from accsim.kernels.rounding import round_dd
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
    RZ,
    SR,
)

_SIGN = np.uint64(1 << 63)
_ABS = np.uint64((1 << 63) - 1)
_FRAC = np.uint64((1 << 52) - 1)
_HIDDEN = np.uint64(1 << 52)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_TWO_M52 = 2.0**-52


def supported(p: int, emin: int, flags: int) -> bool:
    """Whether the fast path handles the format (else the caller uses ``round_dd``)."""
    return p <= 52 and emin >= -1022 and not (flags & FLAG_E8M0)


@njit(inline="always", **JIT)
def _decide(b, i, p, emin, sub, mode, r, seed):
    """Split the float64 with bit pattern ``b`` (element ``i``) at the target quantum and
    round it: return ``(T, q, e, E, neg, away, far)`` with ``|result| = T 2^q`` in an
    unbounded exponent range, ``e`` the input's exponent, ``E`` its exponent field,
    ``away`` whether an overflow goes to the overflow value (else to +-max), ``far``
    whether the fraction has more than 64 bits (then SR must use ``round_dd``)."""
    a = b & _ABS
    E = np.int64(a >> np.uint64(52))
    normal = E != 0
    Ee = E if normal else np.int64(1)
    M = (a & _FRAC) | (_HIDDEN if normal else _ZERO)
    e = E - 1023 if normal else np.int64(-1023)
    # exponent of the quantum's binade: max(e, emin), or emin for formats without
    # subnormals (whose quantum below 2^emin is 2^emin itself)
    qe = e if e >= emin else np.int64(emin)
    q = qe - (p - 1) if (e >= emin or sub) else qe
    d = q - (Ee - 1075)  # >= 1 because p <= 52
    far = d > 63  # f has > 64 bits; for non-SR modes only "f > 0" matters then
    M = (_ONE if M != _ZERO else _ZERO) if far else M
    d = np.int64(63) if far else d
    ud = np.uint64(d)
    mask = (_ONE << ud) - _ONE
    half = _ONE << np.uint64(d - 1)
    neg = b != a
    away = False
    if mode == RNE:
        T = (M + (half - _ONE) + ((M >> ud) & _ONE)) >> ud
        away = True
    elif mode == RZ:
        T = M >> ud
    elif mode == RNA:
        T = (M + half) >> ud
        away = True
    elif mode == RU:
        T = (M + (_ZERO if neg else mask)) >> ud
        away = not neg
    elif mode == RD:
        T = (M + (mask if neg else _ZERO)) >> ud
        away = neg
    elif mode == RO:
        T = (M >> ud) | (_ONE if (M & mask) != _ZERO else _ZERO)
    else:  # SR: the same word and decision as round_dd
        Fw = (M & mask) << np.uint64(64 - d)
        w = random_u64(seed, 0, i)
        sr = np.uint64(64 - r) if r > 0 else _ZERO
        away = (w >> sr) < (Fw >> sr)
        T = (M >> ud) + (_ONE if away else _ZERO)
    return T, q, e, E, neg, away, far


@njit(inline="always", **JIT)
def _round_one(b, i, p, emin, ecap, sub, maxv, ovf_val, flags, mode, r, seed, scale):
    """Round the float64 with bit pattern ``b`` (element ``i``) without branches; return
    ``(value, rare)``: when ``rare`` the value is meaningless and the caller must use
    ``round_dd`` (inf/NaN inputs; for SR also fractions longer than 64 bits).
    ``ovf_val`` is what a rounding away from zero past ``maxv`` gives (inf, NaN, max)."""
    T, q, e, E, neg, away, far = _decide(b, i, p, emin, sub, mode, r, seed)
    # |y| = T 2^q = (T 2^(1-p)) 2^(q+p-1) (both products exact). Above ecap the value
    # overflows whatever the rounding; the exponent is capped there only to keep the
    # power of two finite.
    big = e > ecap
    pw = bits_to_f64(np.uint64((ecap if big else q + p - 1) + 1023) << np.uint64(52))
    y = (float(np.int64(T)) * scale) * pw
    ov = big or y > maxv
    y = (ovf_val if away else maxv) if ov else y
    keep_sign = neg and not (y == 0.0 and (flags & FLAG_NO_NEG_ZERO) != 0) and y == y
    yb = f64_to_bits(y) | (_SIGN if keep_sign else _ZERO)
    rare = (E == 2047) or (far and mode == SR)
    return bits_to_f64(yb), rare


@njit(inline="always", **JIT)
def _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, mode, r, seed, scale):
    # index from 0 over slices: a provably non-negative index spares numba's negative-
    # index wraparound, which otherwise blocks vectorisation (10x slower)
    bs = bits[lo:hi]
    os = out[lo:hi]
    nrare = 0
    for k in range(hi - lo):
        y, rare = _round_one(bs[k], lo + k, p, emin, ecap, sub, maxv, ovf_val, flags, mode,
                             r, seed, scale)
        os[k] = math.nan if rare else y
        nrare += 1 if rare else 0
    return nrare


@njit(inline="always", **JIT)
def _rne_lane(b, d0, Enorm, maxbits):
    """RNE on the float64 bit pattern itself (the classic bias trick), valid when the input
    is in the target's normal range and the result does not overflow: return
    ``(rounded magnitude pattern, valid)``; the carry into the exponent field is exact."""
    a = b & _ABS
    ud = np.uint64(d0)
    rr = ((a + ((_ONE << np.uint64(d0 - 1)) - _ONE) + ((a >> ud) & _ONE)) >> ud) << ud
    valid = (a >= Enorm) and (rr <= maxbits)
    return rr, valid


@njit(inline="always", **JIT)
def _rne_values(bits, out, lo, hi, d0, Enorm, maxbits):
    bs = bits[lo:hi]
    os = out[lo:hi]
    nbad = 0
    for k in range(hi - lo):
        b = bs[k]
        rr, valid = _rne_lane(b, d0, Enorm, maxbits)
        os[k] = bits_to_f64(rr | (b & _SIGN)) if valid else math.nan
        nbad += 0 if valid else 1
    return nbad


@njit(**JIT)
def _chunk(bits, out, lo, hi, fmt, ecap, mode, r, seed, scale):
    p, emin, maxv, sub, ovf, flags = fmt
    ovf_val = math.inf if ovf == OVF_INF else (math.nan if ovf == OVF_NAN else maxv)
    # one loop per mode with the mode a compile-time constant (about 2x faster than a
    # mode test inside the loop: the loop body vectorises). RNE: a fast lane on the bit
    # pattern; the rest (subnormal results, overflow, inf/NaN) goes through round_dd.
    if mode == RNE:
        nrare = _rne_values(bits, out, lo, hi, 53 - p,
                            np.uint64(emin + 1023) << np.uint64(52), f64_to_bits(maxv))
    elif mode == RZ:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, RZ,
                      r, seed, scale)
    elif mode == RNA:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, RNA,
                      r, seed, scale)
    elif mode == RU:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, RU,
                      r, seed, scale)
    elif mode == RD:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, RD,
                      r, seed, scale)
    elif mode == RO:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, RO,
                      r, seed, scale)
    else:
        nrare = _loop(bits, out, lo, hi, p, emin, ecap, sub, maxv, ovf_val, flags, SR,
                      r, seed, scale)
    if nrare > 0:
        for i in range(lo, hi):
            if out[i] != out[i]:
                out[i] = round_dd(bits_to_f64(bits[i]), 0.0, fmt, mode, r, seed, 0, i)


_CHUNK = 4096


@njit(parallel=True, **JIT)
def fast_round_array(bits, out, fmt, ecap, mode, r, seed):
    """``out[i] = round(bits[i].view(float64))`` for a flat uint64 array, in parallel.

    Element ``i`` draws its SR word from ``random_u64(seed, 0, i)`` (as ``round_dd`` in
    :func:`accsim.round`), so the result does not depend on the number of threads.
    ``ecap = min(emax + 1, 1023)``: inputs with a larger exponent overflow for sure and
    go to ``round_dd``.
    """
    n = bits.shape[0]
    scale = 2.0 ** (1 - fmt.p)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        # int64 bounds, as in the serial twin: one compiled _chunk serves both
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, np.int64(n))
        _chunk(bits, out, lo, hi, fmt, ecap, mode, r, seed, scale)


@njit(**JIT)
def fast_round_array_serial(bits, out, fmt, ecap, mode, r, seed):
    """Serial twin of :func:`fast_round_array` (small arrays: no thread start-up)."""
    _chunk(bits, out, np.int64(0), np.int64(bits.shape[0]), fmt, ecap, mode, r, seed,
           2.0 ** (1 - fmt.p))


def ecap_of(maxv: float) -> int:
    """``min(emax + 1, 1023)`` from the format's largest finite value."""
    return min(math.frexp(maxv)[1], 1023)


# ---------------------------------------------------------------------- codes output
@njit(inline="always", **JIT)
def _code_one(b, i, p, emin, ecap, sub, bias, sshift, max_code, ovf_code, nan_code, flags,
              mode, r, seed):
    """Like :func:`_round_one` but return the format's code: for a result ``T 2^q``
    with binade exponent ``qe = q + p - 1 >= emin`` the code is
    ``((qe + bias - 1) << (p - 1)) + T`` (normal and subnormal alike, a carry into the
    next binade included), and codes of positive values increase with the value, so
    ``code > max_code`` is an overflow."""
    T, q, e, E, neg, away, far = _decide(b, i, p, emin, sub, mode, r, seed)
    big = e > ecap
    qe = np.int64(ecap) if big else q + p - 1
    code = (np.uint64(qe + bias - 1) << np.uint64(p - 1)) + T
    ov = big or code > max_code
    code = (ovf_code if away else max_code) if ov else code
    keep_sign = neg and code != nan_code and not (code == _ZERO and
                                                  (flags & FLAG_NO_NEG_ZERO) != 0)
    code = code | ((_ONE << sshift) if keep_sign else _ZERO)
    rare = (E == 2047) or (far and mode == SR)
    return code, rare


@njit(**JIT)
def encode_value(v, p, emin, bias, sshift, inf_code, nan_code, flags):
    """Code of ``v``, a float64 value of the format (NaN -> ``nan_code``)."""
    if v != v:
        return nan_code
    b = f64_to_bits(v)
    neg = (b & _SIGN) != _ZERO and not (v == 0.0 and (flags & FLAG_NO_NEG_ZERO) != 0)
    s = (_ONE << sshift) if neg else _ZERO
    a = abs(v)
    if math.isinf(a):
        return inf_code | s
    if a == 0.0:
        return s
    e = np.int64((b & _ABS) >> np.uint64(52)) - 1023
    m = p - 1
    if e >= emin:
        frac = (b & _FRAC) >> np.uint64(52 - m)
        return ((np.uint64(e + bias) << np.uint64(m)) | frac) | s
    return np.uint64(math.ldexp(a, m - emin)) | s


@njit(inline="always", **JIT)
def _code_loop(bits, out, lo, hi, p, emin, ecap, sub, bias, sshift, max_code, ovf_code,
               nan_code, flags, mode, r, seed):
    bs = bits[lo:hi]  # slices indexed from 0: see _loop
    os = out[lo:hi]
    nrare = 0
    for k in range(hi - lo):
        c, rare = _code_one(bs[k], lo + k, p, emin, ecap, sub, bias, sshift, max_code,
                            ovf_code, nan_code, flags, mode, r, seed)
        os[k] = c
        nrare += 1 if rare else 0
    return nrare


@njit(inline="always", **JIT)
def _rne_codes(bits, out, lo, hi, p, bias, sshift, emin, maxv):
    bs = bits[lo:hi]
    os = out[lo:hi]
    d0 = 53 - p
    Enorm = np.uint64(emin + 1023) << np.uint64(52)
    maxbits = f64_to_bits(maxv)
    off = np.uint64(1023 - bias) << np.uint64(p - 1)
    nbad = 0
    for k in range(hi - lo):
        b = bs[k]
        rr, valid = _rne_lane(b, d0, Enorm, maxbits)
        c = ((rr >> np.uint64(d0)) - off) | ((b >> np.uint64(63)) << sshift)
        os[k] = c
        nbad += 0 if valid else 1
    return nbad


@njit(**JIT)
def _code_chunk(bits, out, lo, hi, fmt, ecap, bias, sshift, max_code, inf_code, nan_code,
                mode, r, seed):
    p, emin, maxv, sub, ovf, flags = fmt
    ovf_code = inf_code if ovf == OVF_INF else (nan_code if ovf == OVF_NAN else max_code)
    if mode == RNE:
        nrare = _rne_codes(bits, out, lo, hi, p, bias, sshift, emin, maxv)
        if nrare > 0:
            Enorm = np.uint64(emin + 1023) << np.uint64(52)
            maxbits = f64_to_bits(maxv)
            for i in range(lo, hi):
                rr, valid = _rne_lane(bits[i], 53 - p, Enorm, maxbits)
                if not valid:
                    c, rare = _code_one(bits[i], i, p, emin, ecap, sub, bias, sshift,
                                        max_code, ovf_code, nan_code, flags, RNE, r, seed)
                    out[i] = c
                    if rare:
                        v = round_dd(bits_to_f64(bits[i]), 0.0, fmt, mode, r, seed, 0, i)
                        out[i] = encode_value(v, p, emin, bias, sshift, inf_code, nan_code,
                                              flags)
            nrare = 0
    elif mode == RZ:
        nrare = _code_loop(bits, out, lo, hi, p, emin, ecap, sub, bias, sshift, max_code, ovf_code,
                           nan_code, flags, RZ, r, seed)
    elif mode == SR:
        nrare = _code_loop(bits, out, lo, hi, p, emin, ecap, sub, bias, sshift, max_code, ovf_code,
                           nan_code, flags, SR, r, seed)
    else:
        nrare = _code_loop(bits, out, lo, hi, p, emin, ecap, sub, bias, sshift, max_code, ovf_code,
                           nan_code, flags, mode, r, seed)
    if nrare > 0:
        for i in range(lo, hi):
            c, rare = _code_one(bits[i], i, p, emin, ecap, sub, bias, sshift, max_code,
                                ovf_code, nan_code, flags, mode, r, seed)
            if rare:
                v = round_dd(bits_to_f64(bits[i]), 0.0, fmt, mode, r, seed, 0, i)
                out[i] = encode_value(v, p, emin, bias, sshift, inf_code, nan_code, flags)


@njit(parallel=True, **JIT)
def fast_encode_array(bits, out, fmt, ecap, bias, sshift, max_code, inf_code, nan_code,
                      mode, r, seed):
    """Round the float64 bit patterns ``bits`` and store the format's codes in ``out``
    (uint8/uint16), in parallel chunks; same random words as :func:`fast_round_array`."""
    n = bits.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        _code_chunk(bits, out, lo, min(lo + _CHUNK, n), fmt, ecap, bias, sshift, max_code,
                    inf_code, nan_code, mode, r, seed)


@njit(**JIT)
def fast_encode_array_serial(bits, out, fmt, ecap, bias, sshift, max_code, inf_code,
                             nan_code, mode, r, seed):
    """Serial twin of :func:`fast_encode_array`."""
    _code_chunk(bits, out, 0, bits.shape[0], fmt, ecap, bias, sshift, max_code, inf_code,
                nan_code, mode, r, seed)
