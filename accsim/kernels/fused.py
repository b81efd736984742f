"""Numba kernels of the fused dot-product units (NVIDIA tensor cores, AMD CDNA3 matrix cores).

Every kernel computes ``D = A @ B + C`` for float64 arrays holding values of the unit's
input formats, chaining steps of ``L`` products along K (``c <- step(a[k:k+L], b[k:k+L],
c)``). The layout follows docs/hwmodels.md "The fused, truncated dot-product-add":

* Operands are decoded once (Python side) into an exponent array: ``E = max(floor(log2
  |x|), emin_of_format)`` for nonzero finite values, ``ZSENT`` for zeros (inf/NaN: 0, their
  value decides the result anyway). Product exponents are ``EA[i, k] + EB[k, j]`` (not
  renormalised, docs/hwmodels.md step 1); a zero product (sum below ``ZSENT // 2``) takes
  ``e_zero``.
* The aligned, truncated term ``trunc(s_i 2^(e_i - e_max + F))`` is computed as
  ``trunc((a*b) * 2^(F - e_max))`` in binary64: ``a*b`` is exact (at most 22 significant
  bits) and the scaling is by a power of two, so the product before truncation is exact;
  the integer terms are below 2^(F+8) <= 2^53 and their sum is exact as well.
* One rounding of the exact step sum ``S 2^(e_max - F)`` to the output format (RZ or RNE,
  output subnormals, overflow gives infinity as in MMA-Sim, ``-0`` becomes ``+0``).

Loops: ``prange`` over output rows; inside, vector loops over the N columns (the
per-column ``e_max`` is computed once per step across the row of B), no branches in the
inner loops, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits

ZSENT = -(1 << 20)  # exponent code of a zero operand
_ZLIM = -(1 << 19)  # product exponents below this are zero products
_EXPMASK = np.uint64(0x7FF)

PJIT = dict(JIT, parallel=True)


@njit(**JIT)
def pow2(n):
    """2^n as a float64 for integer n (0 below 2^-1022, 2^1023 above it)."""
    if n < -1022:
        return 0.0
    if n > 1023:
        n = 1023
    return bits_to_f64(np.uint64(n + 1023) << np.uint64(52))


@njit(**JIT)
def pow2v(n):
    """2^n for n in [-1022, 1023] without range checks (vector-friendly)."""
    return bits_to_f64(np.uint64(n + 1023) << np.uint64(52))


@njit(**JIT)
def exp_of(x):
    """floor(log2|x|) of a nonzero normal float64 (1024 for inf/NaN)."""
    return np.int64((f64_to_bits(x) >> np.uint64(52)) & _EXPMASK) - 1023


@njit(**JIT)
def round_out(v, p, emin, maxv, mode_rz, keep_sign=False):
    """Round the exact float64 ``v`` once to precision ``p`` with minimum exponent ``emin``
    (subnormals kept), toward zero (``mode_rz``) or to nearest even; overflow (a result
    above ``maxv``) gives an infinity; a zero result is +0 (docs/hwmodels.md step 5), or, with
    ``keep_sign``, -0 when a negative ``v`` underflows (AMD CDNA3, as MMA-Sim)."""
    if v == 0.0:
        return 0.0
    if not math.isfinite(v):
        return v
    e = exp_of(v)
    if e < emin:
        e = emin
    q = e - (p - 1)
    t = v * pow2(-q)
    if mode_rz:
        r = np.trunc(t)
    else:
        r = np.rint(t)
    res = r * pow2(q)
    if abs(res) > maxv:
        res = math.copysign(math.inf, res)
    if keep_sign:
        return res
    return res + 0.0


@njit(**JIT)
def round_out_fast(v, p, emin, maxv, mode_rz):
    """:func:`round_out` without branches (vectorisable): exact for every float64 ``v``
    with |v| >= 2^-1000 or v == 0, inf and NaN (the cases the NVIDIA kernel produces)."""
    e = max(exp_of(v), emin)
    q = e - (p - 1)
    t = v * pow2v(-q)
    r = np.trunc(t) if mode_rz else np.rint(t)
    res = r * pow2v(q)
    res = math.copysign(math.inf, res) if abs(res) > maxv else res
    return res + 0.0


@njit(**JIT)
def floor_bits(v, F2, emin):
    """Floor ``v`` (exact float64) to F2 fraction bits after normalisation, the exponent
    clamped below at ``emin`` (AMD CDNA3 second truncation)."""
    if v == 0.0 or not math.isfinite(v):
        return v
    e = exp_of(v)
    if e < emin:
        e = emin
    return np.floor(v * pow2(F2 - e)) * pow2(e - F2)


# --------------------------------------------------------------------- NVIDIA step
RB = 4  # rows per tile (B rows are reused RB times from L1)
NT = 256  # columns per tile


@njit(**JIT)
def _nv_tile(A, B, C, EA, EB, D, t, M, K, N, L, F, floor_mode, e_zero, c_emin0, c_emin,
             p_out, emin_out, maxv_out, rz_out):
    """Tile ``t`` (RB rows x NT columns, row-major over tiles) of the M x N output ``D``
    of :func:`nv_fused_matmul`: the same operations for every tile of every call."""
    ntl = (N + NT - 1) // NT
    i0 = (t // ntl) * RB
    j0 = (t % ntl) * NT
    nr = min(RB, M - i0)
    nj = min(NT, N - j0)
    acc = np.empty((RB, NT))
    emax = np.empty((RB, NT), np.int64)
    scale = np.empty((RB, NT))
    S = np.empty((RB, NT))
    for r in range(nr):
        for j in range(nj):
            acc[r, j] = C[i0 + r, j0 + j]
    cem = c_emin0
    for k0 in range(0, K, L):
        k1 = min(k0 + L, K)
        for r in range(nr):
            ar = acc[r]
            er = emax[r]
            for j in range(nj):
                c = ar[j]
                ec = max(exp_of(c), cem)
                er[j] = e_zero if c == 0.0 else ec
        for k in range(k0, k1):
            ebk = EB[k, j0:j0 + nj]
            for r in range(nr):
                ea = np.int64(EA[i0 + r, k])
                em = emax[r]
                for j in range(nj):
                    e = ea + ebk[j]
                    e = e_zero if e < _ZLIM else e
                    em[j] = max(em[j], e)
        for r in range(nr):
            er = emax[r]
            sr = scale[r]
            for j in range(nj):
                m = min(max(er[j], -1000), 1000)
                er[j] = m
                sr[j] = pow2v(F - m)
        if floor_mode:
            for r in range(nr):
                Sr = S[r]
                ar = acc[r]
                sr = scale[r]
                for j in range(nj):
                    Sr[j] = np.floor(ar[j] * sr[j])
            for k in range(k0, k1):
                bk = B[k, j0:j0 + nj]
                for r in range(nr):
                    a = A[i0 + r, k]
                    Sr = S[r]
                    sr = scale[r]
                    for j in range(nj):
                        Sr[j] += np.floor((a * bk[j]) * sr[j])
        else:
            for r in range(nr):
                Sr = S[r]
                ar = acc[r]
                sr = scale[r]
                for j in range(nj):
                    Sr[j] = np.trunc(ar[j] * sr[j])
            for k in range(k0, k1):
                bk = B[k, j0:j0 + nj]
                for r in range(nr):
                    a = A[i0 + r, k]
                    Sr = S[r]
                    sr = scale[r]
                    for j in range(nj):
                        Sr[j] += np.trunc((a * bk[j]) * sr[j])
        for r in range(nr):
            Sr = S[r]
            er = emax[r]
            ar = acc[r]
            if rz_out:
                for j in range(nj):
                    v = Sr[j] * pow2v(er[j] - F)
                    ar[j] = round_out_fast(v, p_out, emin_out, maxv_out, True)
            else:
                for j in range(nj):
                    v = Sr[j] * pow2v(er[j] - F)
                    ar[j] = round_out_fast(v, p_out, emin_out, maxv_out, False)
        cem = c_emin
    for r in range(nr):
        for j in range(nj):
            D[i0 + r, j0 + j] = acc[r, j]


@njit(**PJIT)
def nv_fused_matmul(A, B, C, EA, EB, L, F, floor_mode, e_zero, c_emin0, c_emin,
                    p_out, emin_out, maxv_out, rz_out):
    """Chained fused truncated dot-product-add steps (docs/hwmodels.md steps 1-5).

    ``c_emin0``: minimum exponent of C's format (first step); ``c_emin``: of the output's
    storage format (later steps read the previous output back). Work is split into
    independent tiles of RB rows x NT columns (``prange`` over tiles, :func:`_nv_tile`).
    """
    M, K = A.shape
    N = B.shape[1]
    D = np.empty((M, N))
    nrb = (M + RB - 1) // RB
    ntl = (N + NT - 1) // NT
    for t in prange(nrb * ntl):
        _nv_tile(A, B, C, EA, EB, D, t, M, K, N, L, F, floor_mode, e_zero, c_emin0,
                 c_emin, p_out, emin_out, maxv_out, rz_out)
    return D


@njit(**PJIT)
def nv_fused_matmul_batch(A, B, C, EA, EB, D, dims, offs, tiles, L, F, floor_mode, e_zero,
                          c_emin0, c_emin, p_out, emin_out, maxv_out, rz_out):
    """:func:`nv_fused_matmul` of many independent products in one call: product ``g``
    is ``(M, K, N) = dims[g]``, its operands and output stored row-major in the flat
    arrays from ``offs[g] = (A, B, C, D offsets)``; ``tiles[g]`` its first tile in the
    flat tile numbering (``tiles[-1]`` the total). ``prange`` over every tile of every
    product; each tile computes exactly what it computes in a call of its own."""
    G = dims.shape[0]
    for u in prange(tiles[G]):
        g = np.searchsorted(tiles, u, side="right") - 1
        M, K, N = dims[g, 0], dims[g, 1], dims[g, 2]
        a, b, c, d = offs[g, 0], offs[g, 1], offs[g, 2], offs[g, 3]
        _nv_tile(A[a:a + M * K].reshape((M, K)), B[b:b + K * N].reshape((K, N)),
                 C[c:c + M * N].reshape((M, N)), EA[a:a + M * K].reshape((M, K)),
                 EB[b:b + K * N].reshape((K, N)), D[d:d + M * N].reshape((M, N)),
                 u - tiles[g], M, K, N, L, F, floor_mode, e_zero, c_emin0, c_emin, p_out,
                 emin_out, maxv_out, rz_out)


# --------------------------------------------------------------------- AMD CDNA3 step
@njit(**JIT)
def _ovf_inf(p):
    # MMA-Sim tr_fdpa: a product whose normalised exponent reaches 128 becomes +-inf
    if abs(p) >= 3.402823669209385e38:  # 2^128
        return p * math.inf
    return p


@njit(**PJIT)
def cdna3_matmul(A, B, C, EA, EB, L, F, F2, odd_even, c_emin):
    """Chained AMD CDNA3 steps (docs/hwmodels.md "AMD matrix cores", CDNA3 rows; algorithm as
    validated by MMA-Sim arXiv:2511.10909, ``tr_fdpa`` / ``gtr_fdpa``):

    1. products (one group, or even/odd-indexed groups when ``odd_even``) aligned to the
       group's largest product exponent, truncated toward zero to F fraction bits, summed;
       zero products take no part; with two groups each sum is floored to F bits relative
       to the larger group exponent e_dot and the two are added;
    2. e_max = max(e_dot, e_c) (e_c of fp32 c, zero c counts as exponent -126);
    3. the product sum floored to F2+1 fraction bits relative to e_max; c floored to F bits
       relative to e_max (dropped when e_c < e_max - F - 1 in the two-group unit);
    4. the sum normalised (fp32 subnormal range) and floored to F2 fraction bits, then
       rounded to nearest even to fp32 (overflow: inf).
    """
    M, K = A.shape
    N = B.shape[1]
    D = np.empty((M, N))
    G = 2 if odd_even else 1
    for i in prange(M):
        acc = np.empty(N)
        eg = np.empty((G, N), np.int64)
        Ig = np.empty((G, N))
        for j in range(N):
            acc[j] = C[i, j]
        for k0 in range(0, K, L):
            k1 = min(k0 + L, K)
            for g in range(G):
                for j in range(N):
                    eg[g, j] = _ZLIM
                for k in range(k0 + g, k1, G):
                    ea = EA[i, k]
                    for j in range(N):
                        e = ea + EB[k, j]
                        eg[g, j] = max(eg[g, j], e)
                for j in range(N):
                    Ig[g, j] = 0.0
                for k in range(k0 + g, k1, G):
                    a = A[i, k]
                    for j in range(N):
                        sc = pow2(F - eg[g, j])
                        Ig[g, j] += np.trunc(_ovf_inf(a * B[k, j]) * sc)
            for j in range(N):
                if G == 2:
                    e_dot = max(eg[0, j], eg[1, j])
                    Idot = (np.floor(Ig[0, j] * pow2(eg[0, j] - e_dot))
                            + np.floor(Ig[1, j] * pow2(eg[1, j] - e_dot)))
                else:
                    e_dot = eg[0, j]
                    Idot = Ig[0, j]
                c = acc[j]
                if c == 0.0:
                    e_c = c_emin
                elif math.isfinite(c):
                    e_c = max(exp_of(c), c_emin)
                else:
                    # MMA-Sim decodes inf/NaN with frexp's exponent 0, i.e. e_c = -1; in
                    # the two-group (fp8) unit such a c is then dropped like a tiny one
                    # when e_max > F (docs/hwmodels.md says infinities propagate: unverified)
                    e_c = -1
                e_max = max(e_dot, e_c)
                Jdot = np.floor(Idot * pow2(e_dot - e_max + F2 + 1 - F))
                Jc = np.floor(c * pow2(F - e_max))
                if G == 2 and e_c < e_max - F - 1:
                    Jc = 0.0
                T = Jdot + Jc * pow2(F2 + 1 - F)
                v = T * pow2(e_max - F2 - 1)
                v = floor_bits(v, F2, c_emin)
                acc[j] = round_out(v, 24, -126, 3.4028234663852886e38, False, True)
        for j in range(N):
            D[i, j] = acc[j]
    return D


# --------------------------------------------------------------------- AMD CDNA1 step
@njit(**JIT)
def _exact_round_f32(terms, n):
    """RNE to fp32 of the exact sum of ``terms[:n]`` (finite float64), +0 for a zero sum.

    Shewchuk's msum keeps the exact sum as nonoverlapping partials; the top is summed to
    hi = RN53(sum) with Python's fsum half-way correction, and the sign of the exact
    remainder picks the side for the single fp32 rounding (no 53-bit number lies strictly
    between hi and the exact sum, so neither does any fp32 tie point)."""
    parts = np.empty(n + 1)
    np_ = 0
    for t in range(n):
        x = terms[t]
        k = 0
        for m in range(np_):
            y = parts[m]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                parts[k] = lo
                k += 1
            x = hi
        parts[k] = x
        np_ = k + 1
    hi = 0.0
    lo = 0.0
    m = np_
    if m > 0:
        m -= 1
        hi = parts[m]
        while m > 0:
            x = hi
            m -= 1
            y = parts[m]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if m > 0 and ((lo < 0.0 and parts[m - 1] < 0.0) or (lo > 0.0 and parts[m - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
                lo = -lo
    if hi == 0.0:
        return 0.0
    e = exp_of(hi)
    if e < -126:
        e = -126
    q = e - 23
    t = hi * pow2(-q)
    ft = np.floor(t)
    fr = t - ft
    if fr > 0.5 or (fr == 0.5 and (lo > 0.0 or (lo == 0.0 and ft % 2.0 != 0.0))):
        ft += 1.0
    res = ft * pow2(q)
    if abs(res) > 3.4028234663852886e38:
        return math.copysign(math.inf, res)
    if res == 0.0:  # a nonzero sum that underflows keeps its sign
        return math.copysign(0.0, hi)
    return res


@njit(**PJIT)
def exact_step_matmul(A, B, C, L):
    """AMD CDNA1 (docs/hwmodels.md): exact sum of L products and c, one RNE to fp32, chained."""
    M, K = A.shape
    N = B.shape[1]
    D = np.empty((M, N))
    for i in prange(M):
        terms = np.empty(L + 1)
        for j in range(N):
            c = C[i, j]
            for k0 in range(0, K, L):
                k1 = min(k0 + L, K)
                n = 0
                special = not math.isfinite(c)
                spec = c
                for k in range(k0, k1):
                    p = A[i, k] * B[k, j]
                    terms[n] = p
                    n += 1
                    special = special or not math.isfinite(p)
                    spec = spec + p
                terms[n] = c
                n += 1
                if special:
                    c = spec
                else:
                    c = _exact_round_f32(terms, n)
            D[i, j] = c
    return D


# --------------------------------------------------------------------- AMD CDNA2 step
@njit(**JIT)
def _ftz(x, keep_sign):
    if abs(x) < np.float32(1.1754943508222875e-38):
        return x * np.float32(0.0) if keep_sign else np.float32(0.0)
    return x


@njit(**PJIT)
def ftz_pairwise_matmul(A, B, C, P, kinst, a_emin, b_emin):
    """AMD CDNA2 (docs/hwmodels.md; MMA-Sim ``MMA_FTZ_MUL_ADD``): inputs with |x| < 2^emin
    flushed to +0; products in fp32 (RNE) flushed keeping the sign; groups of P products
    summed pairwise in fp32 ((p0+p1)+(p2+p3)), every sum flushed keeping the sign; the group
    sum added to c (flushed). C is flushed to +0 at the start of every instruction
    (every ``kinst`` terms)."""
    M, K = A.shape
    N = B.shape[1]
    D = np.empty((M, N))
    ta = np.float32(2.0 ** a_emin)
    tb = np.float32(2.0 ** b_emin)
    z = np.float32(0.0)
    for i in prange(M):
        pr = np.empty(P, np.float32)
        for j in range(N):
            c = np.float32(C[i, j])
            for k0 in range(0, K, P):
                if k0 % kinst == 0:
                    c = _ftz(c, False)
                for t in range(P):
                    a = np.float32(A[i, k0 + t])
                    b = np.float32(B[k0 + t, j])
                    if abs(a) < ta:
                        a = z
                    if abs(b) < tb:
                        b = z
                    pr[t] = _ftz(a * b, True)
                s = _ftz(pr[0] + pr[1], True)
                if P == 4:
                    s2 = _ftz(pr[2] + pr[3], True)
                    s = _ftz(s + s2, True)
                c = _ftz(c + s, True)
            D[i, j] = c
    return D


# --------------------------------------------------------------------- NVIDIA grouped MX step
@njit(**PJIT)
def nv_grouped_matmul(A, B, C, SA, SB, ESA, ESB, bs, G, L, F, e_zero, c_emin0, c_emin,
                      p_out, emin_out, maxv_out, rz_out):
    """Chained grouped, block-scaled fused steps (NVIDIA ``kind::mxf4`` / ``mxf4nvf4``;
    docs/hwmodels.md "first sums groups of G=16 products exactly, then runs the step"; term
    definition as MMA-Sim ``gst_fdpa``, validated on RTX Blackwell):

    * group g of G consecutive k: ``P_g = sum a_k b_k`` exact (float64: the inputs are
      checked to keep it exact), scale ``s_g = SA[i, k//bs] * SB[k//bs, j]``;
    * its term is the fixed-point significand ``P_g * (s_g / 2^e_g)`` with exponent
      ``e_g = ESA + ESB`` (the block-scale exponents only, the size of ``P_g`` does not
      enter the alignment); ``e_g = e_zero`` when all G products are zero (a sum that
      cancels to zero keeps e_g) or the scale is zero;
    * c: exponent of the fp32 value, ``e_zero`` when c == 0;
    * alignment to the largest exponent with truncation toward zero to F fraction bits,
      exact integer sum, one rounding (RZ-FP32: overflow gives inf, ``-0`` -> ``+0``).

    ``SA`` (M, K//bs), ``SB`` (K//bs, N): scale values; ``ESA``/``ESB`` their exponents
    (``< _ZLIM`` for a zero scale). A NaN scale gives a NaN term.
    """
    M, K = A.shape
    N = B.shape[1]
    D = np.empty((M, N))
    ng = L // G
    for i in prange(M):
        T = np.empty(ng)
        E = np.empty(ng, np.int64)
        for j in range(N):
            c = C[i, j]
            cem = c_emin0
            for k0 in range(0, K, L):
                k1 = min(k0 + L, K)
                n = 0
                em = e_zero if c == 0.0 else max(exp_of(c), cem)
                if not math.isfinite(c):
                    em = 0
                for g0 in range(k0, k1, G):
                    P = 0.0
                    allzero = True
                    for k in range(g0, g0 + G):
                        pr = A[i, k] * B[k, j]
                        allzero = allzero and pr == 0.0
                        P += pr
                    blk = g0 // bs
                    s = SA[i, blk] * SB[blk, j]
                    e = np.int64(ESA[i, blk]) + np.int64(ESB[blk, j])
                    if allzero or e < _ZLIM:
                        e = e_zero
                    # value P * s, exponent e (P * s / 2^e is the significand)
                    T[n] = P * s
                    E[n] = e
                    em = max(em, e)
                    n += 1
                S = np.trunc(c * pow2(F - em))
                for t in range(n):
                    S += np.trunc(T[t] * pow2(F - E[t]) * pow2(E[t] - em))
                v = S * pow2(em - F)
                c = round_out(v, p_out, emin_out, maxv_out, rz_out)
                cem = c_emin
            D[i, j] = c
    return D
