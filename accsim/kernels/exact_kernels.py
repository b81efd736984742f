"""Exact dot products: a long fixed-point ("Kulisch") accumulator with deferred carries.

The accumulator is an array of ``NLIMB`` signed 64-bit limbs; limb ``i`` has weight
``2^(32 i + BASE)``, so the limbs cover bit positions ``2^-2336 .. 2^2207``, which holds
every product of two binary64 numbers (``2^-2148 <= |a b| < 2^2048``), every TwoProd error
term (its nonzero bits are ``>= 2^-2252``, the last bit of its 53-bit significand field
``>= 2^-2304``) and sums of up to ``2^31`` of them. This is Neal's
"small superaccumulator" (R. M. Neal, "Fast exact summation using small and large
superaccumulators", arXiv:1505.05571, 2015): a term ``M 2^E`` (``M < 2^53``) is added as
two pieces, ``(M << s) mod 2^32`` into limb ``k`` and ``M >> (32 - s)`` (< 2^52) into limb
``k + 1`` (``E - BASE = 32 k + s``), with the sign applied to both; carries are deferred,
and normalised every ``CARRY_EVERY`` terms (each piece is below 2^52, so 2^10 additions
cannot overflow a limb).

Products are split exactly with TwoProd (true FMA) when ``2^-960 <= |a b| < 2^1000``
(the error term is then a normal binary64 number); otherwise each factor is normalised
to ``[1, 2) * 2^e`` and TwoProd runs on the significands, with the exponent carried
separately. Inputs whose products are exact in binary64 (every format up to binary32)
take a fast path with one term per product.

Infinities and NaNs follow IEEE 754: any NaN, ``inf * 0`` or ``+inf + -inf`` gives NaN,
otherwise an infinite term gives that infinity. An exact zero result is ``+0.0``.
"""

import math

import numpy as np
from numba import njit, prange

from accsim.kernels.bits import JIT, bits_to_f64, f64_to_bits, fma

BASE = -2336  # bit position of limb 0's least significant bit (multiple of 32)
NLIMB = 142  # 32 * 142 = 4544 bits: positions -2336 .. 2207
CARRY_EVERY = 1000
_OFF = -1075 - BASE  # lsb position above BASE of a binary64 with biased exponent ef: ef + _OFF
_MASK32 = np.int64(0xFFFFFFFF)
_FRAC = np.uint64((1 << 52) - 1)
_HIDDEN = np.uint64(1 << 52)
_M32 = np.uint64(0xFFFFFFFF)
_LO_SAFE = 2.0**-960
_HI_SAFE = 2.0**1000


@njit(**JIT)
def sig_exp(b):
    """``(m, ef)`` of the bit pattern ``b`` of a finite binary64: the integer significand
    (hidden bit included) and the biased exponent (1 for subnormals), so that the value
    is ``+-m 2^(ef - 1075)``."""
    ef = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    m = b & _FRAC
    if ef != 0:
        m = m | _HIDDEN
    else:
        ef = 1
    return m, ef


@njit(**JIT)
def acc_add(acc, x, escale):
    """Add the finite binary64 value ``x * 2^escale`` exactly to ``acc``."""
    b = f64_to_bits(x)
    m, ef = sig_exp(b)
    pos = ef + escale + _OFF  # bit position of m's last bit above BASE
    k = pos >> 5
    s = np.uint64(pos & 31)
    lo = np.int64((m << s) & _M32)
    hi = np.int64(m >> (np.uint64(32) - s))
    sg = -np.int64(b >> np.uint64(63))  # 0 or -1
    acc[k] += (lo ^ sg) - sg
    acc[k + 1] += (hi ^ sg) - sg


@njit(**JIT)
def acc_normalise(acc):
    """Propagate carries: limbs 0..NLIMB-2 in [0, 2^32), the top limb signed."""
    carry = np.int64(0)
    n = acc.shape[0]
    for i in range(n - 1):
        v = acc[i] + carry
        carry = v >> 32
        acc[i] = v & _MASK32
    acc[n - 1] += carry


@njit(**JIT)
def acc_round(acc):
    """Round the (normalised or not) exact value in ``acc`` to binary64, RNE.

    ``acc`` is normalised in place (and negated in place if the value is negative, so
    call it last or on a copy).
    """
    acc_normalise(acc)
    n = acc.shape[0]
    neg = acc[n - 1] < 0
    if neg:
        for i in range(n):
            acc[i] = -acc[i]
        acc_normalise(acc)
    t = n - 1
    while t >= 0 and acc[t] == 0:
        t -= 1
    if t < 0:
        return 0.0
    top = np.uint64(acc[t])
    nb = np.int64(0)
    while (top >> np.uint64(nb)) != np.uint64(0):
        nb += 1
    # 64 bits starting at the leading one, plus a sticky bit for the rest
    l1 = np.uint64(acc[t - 1]) if t >= 1 else np.uint64(0)
    l2 = np.uint64(acc[t - 2]) if t >= 2 else np.uint64(0)
    w = top << np.uint64(64 - nb)
    w = w | (l1 << np.uint64(32 - nb))
    if nb < 32:
        w = w | (l2 >> np.uint64(nb))
    sticky = (l2 & ((np.uint64(1) << np.uint64(nb)) - np.uint64(1))) != np.uint64(0)
    for i in range(t - 3, -1, -1):
        if acc[i] != 0:
            sticky = True
            break
    etop = 32 * t + BASE + nb - 1  # exponent of the leading bit
    q = etop - 52
    if q < -1074:
        q = -1074
    k = etop - q + 1  # significand bits kept (<= 53)
    if k >= 1:
        T = w >> np.uint64(64 - k)
        R = w & ((np.uint64(1) << np.uint64(64 - k)) - np.uint64(1))
        half = np.uint64(1) << np.uint64(63 - k)
        if R > half or (R == half and (sticky or (T & np.uint64(1)) == np.uint64(1))):
            T += np.uint64(1)
    elif k == 0:
        T = np.uint64(0)
        if w > np.uint64(1 << 63) or (w == np.uint64(1 << 63) and sticky):
            T = np.uint64(1)
    else:
        T = np.uint64(0)
    res = math.ldexp(float(T), q)
    return -res if neg else res


@njit(**JIT)
def _split_exp(x):
    """x = m * 2^e with m in [1, 2) (x finite, nonzero)."""
    fm, fe = math.frexp(x)
    return fm * 2.0, fe - 1


@njit(**JIT)
def add_product(acc, a, b, state):
    """Add the exact product ``a * b`` to ``acc`` (at most two terms). ``state``
    (int64[3]) collects NaN, +inf and -inf flags."""
    p = a * b
    ap = abs(p)
    if ap >= _LO_SAFE and ap < _HI_SAFE:
        e = fma(a, b, -p)
        acc_add(acc, p, 0)
        acc_add(acc, e, 0)
        return
    if a != a or b != b:
        state[0] = 1
        return
    if math.isinf(a) or math.isinf(b):
        if a == 0.0 or b == 0.0:
            state[0] = 1
        elif p > 0:
            state[1] = 1
        else:
            state[2] = 1
        return
    if a == 0.0 or b == 0.0:
        return
    ma, ea = _split_exp(a)
    mb, eb = _split_exp(b)
    p = ma * mb
    e = fma(ma, mb, -p)
    acc_add(acc, p, ea + eb)
    acc_add(acc, e, ea + eb)


@njit(**JIT)
def add_value(acc, c, state):
    """Add a binary64 value (inf/NaN go to the flags)."""
    if c != c:
        state[0] = 1
    elif math.isinf(c):
        if c > 0:
            state[1] = 1
        else:
            state[2] = 1
    else:
        acc_add(acc, c, 0)


@njit(**JIT)
def finish(acc, state):
    """Rounded result of acc and the special flags."""
    if state[0] != 0 or (state[1] != 0 and state[2] != 0):
        return math.nan
    if state[1] != 0:
        return math.inf
    if state[2] != 0:
        return -math.inf
    return acc_round(acc)


@njit(**JIT)
def finish_dd(acc, state, out2):
    """hi = RN(S), lo = RN(S - hi); out2[0], out2[1] = hi, lo; returns True iff exact."""
    if state[0] != 0 or (state[1] != 0 and state[2] != 0):
        out2[0] = math.nan
        out2[1] = 0.0
        return True
    if state[1] != 0 or state[2] != 0:
        out2[0] = math.inf if state[1] != 0 else -math.inf
        out2[1] = 0.0
        return True
    work = acc.copy()
    hi = acc_round(work)
    out2[0] = hi
    if math.isinf(hi):
        out2[1] = 0.0
        return False
    acc_add(acc, -hi, 0)
    work[:] = acc
    lo = acc_round(work)
    out2[1] = lo
    acc_add(acc, -lo, 0)
    acc_normalise(acc)
    for i in range(acc.shape[0]):
        if acc[i] != 0:
            return False
    return True


@njit(**JIT)
def dot_into(acc, state, a, b, c):
    """acc := exact c + sum_k a[k] b[k] (acc and state are reset first)."""
    acc[:] = 0
    state[:] = 0
    add_value(acc, c, state)
    K = a.shape[0]
    k0 = 0
    while k0 < K:
        k1 = min(K, k0 + CARRY_EVERY // 2)
        for k in range(k0, k1):
            x = a[k]
            y = b[k]
            p = x * y
            ap = abs(p)
            if ap >= _LO_SAFE and ap < _HI_SAFE:
                e = fma(x, y, -p)
                acc_add(acc, p, 0)
                acc_add(acc, e, 0)
            else:
                add_product(acc, x, y, state)
        acc_normalise(acc)
        k0 = k1


@njit(**JIT)
def _row_exact(A, BT, C, out, i, acc, state):
    for j in range(BT.shape[0]):
        dot_into(acc, state, A[i], BT[j], C[i, j])
        out[i, j] = finish(acc, state)


@njit(**JIT)
def _row_exact_fast(A, BT, C, out, i, acc, state):
    K = A.shape[1]
    for j in range(BT.shape[0]):
        acc[:] = 0
        state[:] = 0
        add_value(acc, C[i, j], state)
        k0 = 0
        while k0 < K:
            k1 = min(K, k0 + CARRY_EVERY)
            for k in range(k0, k1):
                acc_add(acc, A[i, k] * BT[j, k], 0)
            acc_normalise(acc)
            k0 = k1
        out[i, j] = finish(acc, state)


@njit(**JIT)
def _row_dd(A, BT, C, hi, lo, exact, i, acc, state):
    out2 = np.zeros(2)
    for j in range(BT.shape[0]):
        dot_into(acc, state, A[i], BT[j], C[i, j])
        exact[i, j] = finish_dd(acc, state, out2)
        hi[i, j] = out2[0]
        lo[i, j] = out2[1]


@njit(**JIT)
def finish_residual(acc, state, d):
    """``RN(d - S)`` for the exact ``S`` in ``acc`` and ``state`` (``acc`` is negated in
    place, the infinity flags swapped)."""
    for t in range(acc.shape[0]):
        acc[t] = -acc[t]
    s1 = state[1]
    state[1] = state[2]
    state[2] = s1
    add_value(acc, d, state)
    return finish(acc, state)


@njit(**JIT)
def _row_residual(A, BT, C, D, out, i, acc, state):
    for j in range(BT.shape[0]):
        dot_into(acc, state, A[i], BT[j], C[i, j])
        out[i, j] = finish_residual(acc, state, D[i, j])


# drivers: kind 0 general, 1 fast (exact products), 2 residual; parallel over rows or
# serial (small problems: thread start-up would dominate). Results do not depend on it.
@njit(parallel=True, **JIT)
def matmul_exact_par(A, BT, C, D, out, kind):
    for i in prange(A.shape[0]):
        acc = np.zeros(NLIMB, np.int64)
        state = np.zeros(3, np.int64)
        if kind == 0:
            _row_exact(A, BT, C, out, i, acc, state)
        elif kind == 1:
            _row_exact_fast(A, BT, C, out, i, acc, state)
        else:
            _row_residual(A, BT, C, D, out, i, acc, state)


@njit(**JIT)
def matmul_exact_ser(A, BT, C, D, out, kind):
    acc = np.zeros(NLIMB, np.int64)
    state = np.zeros(3, np.int64)
    for i in range(A.shape[0]):
        if kind == 0:
            _row_exact(A, BT, C, out, i, acc, state)
        elif kind == 1:
            _row_exact_fast(A, BT, C, out, i, acc, state)
        else:
            _row_residual(A, BT, C, D, out, i, acc, state)


@njit(parallel=True, **JIT)
def matmul_dd_par(A, BT, C, hi, lo, exact):
    for i in prange(A.shape[0]):
        acc = np.zeros(NLIMB, np.int64)
        state = np.zeros(3, np.int64)
        _row_dd(A, BT, C, hi, lo, exact, i, acc, state)


@njit(**JIT)
def matmul_dd_ser(A, BT, C, hi, lo, exact):
    acc = np.zeros(NLIMB, np.int64)
    state = np.zeros(3, np.int64)
    for i in range(A.shape[0]):
        _row_dd(A, BT, C, hi, lo, exact, i, acc, state)


# ------------------------------------------------------------- error-free slice products
# The slice scheme (accsim.numbers.exact) multiplies integer-valued slices with BLAS; the
# kernels below add each output's exact slice products (scaled by powers of two) exactly
# and round once, and run the long accumulator above on the outputs it could not take.
_TOP = 2.0**1016  # slice terms and addends stay below this: no sum of <= 2^6 overflows
_SPECIAL_C = 2.0**1020


@njit(**JIT)
def grow_parts(parts, n, x):
    """Add ``x`` exactly to the expansion ``parts[:n]`` and return its new length.

    Shewchuk's grow-expansion as in CPython's ``math.fsum`` (J. R. Shewchuk, "Adaptive
    precision floating-point arithmetic", Discrete Comput. Geom. 18, 1997, Thm 10): the
    parts stay non-overlapping and increasing in magnitude, and their exact sum grows by
    ``x`` (every step is a Fast2Sum, error-free without overflow, subnormals included).
    """
    i = 0
    for j in range(n):
        y = parts[j]
        if abs(x) < abs(y):
            t = x
            x = y
            y = t
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            parts[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        parts[i] = x
        i += 1
    return i


@njit(**JIT)
def round_parts(parts, n):
    """The binary64 number nearest (ties to even) to the exact sum of the expansion
    ``parts[:n]`` (CPython ``math.fsum``'s final step, with its half-way correction
    across parts); an exact zero gives +0.0."""
    hi = 0.0
    if n > 0:
        n -= 1
        hi = parts[n]
        lo = 0.0
        while n > 0:
            x = hi
            n -= 1
            y = parts[n]
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and parts[n - 1] < 0.0) or (lo > 0.0 and parts[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            if y == x - hi:
                hi = x
    return hi + 0.0


@njit(**JIT)
def _flag_value(c, state):
    """Record a non-finite addend in ``state`` (NaN, +inf, -inf); True if it was one."""
    if c != c:
        state[0] = 1
        return True
    if math.isinf(c):
        if c > 0:
            state[1] = 1
        else:
            state[2] = 1
        return True
    return False


@njit(**JIT)
def _combine_cap(rptr, cptr):
    """Room for the expansion of one output: (most A slices of a row) x (most B slices of
    a column) terms, plus the addends."""
    width = 0
    for i in range(rptr.shape[0] - 1):
        width = max(width, rptr[i + 1] - rptr[i])
    wc = 0
    for jj in range(cptr.shape[0] - 1):
        wc = max(wc, cptr[jj + 1] - cptr[jj])
    return width * wc + 4


@njit(**JIT)
def _combine_row(P, rptr, rexp, cptr, cexp, C, D, hi, lo, exact, need, j0, kind, i, parts,
                 state):
    """Row ``i`` of :func:`slice_combine` (``parts``, ``state``: its scratch)."""
    nb = cptr.shape[0] - 1
    for jj in range(nb):
        j = j0 + jj
        n = 0
        bad = False
        for r in range(rptr[i], rptr[i + 1]):
            for s in range(cptr[jj], cptr[jj + 1]):
                p = P[r, s]
                if p == 0.0:
                    continue
                sc = rexp[r] + cexp[s]
                if sc > 963:
                    bad = True
                    break
                t = _scale(p, sc)
                if sc < -1074 and math.ldexp(t, -sc) != p:
                    bad = True
                    break
                n = grow_parts(parts, n, -t if kind == 1 else t)
            if bad:
                break
        if bad:
            need[i, j] = True
            continue
        state[:] = 0
        c = -C[i, j] if kind == 1 else C[i, j]
        if not _flag_value(c, state):
            if abs(c) >= _SPECIAL_C:
                need[i, j] = True
                continue
            n = grow_parts(parts, n, c)
        if kind == 1:
            d = D[i, j]
            if not _flag_value(d, state):
                if abs(d) >= _SPECIAL_C:
                    need[i, j] = True
                    continue
                n = grow_parts(parts, n, d)
        if state[0] != 0 or (state[1] != 0 and state[2] != 0):
            hi[i, j] = math.nan
        elif state[1] != 0:
            hi[i, j] = math.inf
        elif state[2] != 0:
            hi[i, j] = -math.inf
        else:
            h = round_parts(parts, n)
            hi[i, j] = h
            if kind == 2:
                n = grow_parts(parts, n, -h)
                w = round_parts(parts, n)
                lo[i, j] = w
                n = grow_parts(parts, n, -w)
                exact[i, j] = n == 0
            continue
        if kind == 2:
            lo[i, j] = 0.0
            exact[i, j] = True


@njit(parallel=True, **JIT)
def slice_combine(P, rptr, rexp, cptr, cexp, C, D, hi, lo, exact, need, j0, kind):
    """Round the exact sums of the slice products of the columns ``j0 ..`` of one block.

    ``P[r, s]`` (integer-valued, exact) is the product of stacked A slice ``r`` and
    stacked B slice ``s``; output ``(i, j0 + jj)`` is ``C[i, j] + sum P[r, s] 2^(rexp[r] +
    cexp[s])`` over the A slices ``rptr[i] <= r < rptr[i+1]`` of row ``i`` and the B
    slices ``cptr[jj] <= s < cptr[jj+1]`` of column ``jj``. kind 0: ``hi = RN(S)``; 1:
    ``hi = RN(D - S)``; 2: ``hi = RN(S)``, ``lo = RN(S - hi)``, ``exact = (hi + lo ==
    S)``. Where a term would fall below the subnormal grid or reach 2^1016, or an addend
    reaches 2^1020, ``need`` is set and nothing is written (the caller runs the long
    accumulator there). Rows are independent.
    """
    cap = _combine_cap(rptr, cptr)
    for i in prange(rptr.shape[0] - 1):
        _combine_row(P, rptr, rexp, cptr, cexp, C, D, hi, lo, exact, need, j0, kind, i,
                     np.empty(cap), np.zeros(3, np.int64))


@njit(**JIT)
def slice_combine_ser(P, rptr, rexp, cptr, cexp, C, D, hi, lo, exact, need, j0, kind):
    """:func:`slice_combine` on the calling thread (small blocks: no thread start-up)."""
    parts = np.empty(_combine_cap(rptr, cptr))
    state = np.zeros(3, np.int64)
    for i in range(rptr.shape[0] - 1):
        _combine_row(P, rptr, rexp, cptr, cexp, C, D, hi, lo, exact, need, j0, kind, i,
                     parts, state)


@njit(parallel=True, **JIT)
def exact_at(A, BT, C, D, ii, jj, hi, lo, exact, kind):
    """The long accumulator on the listed outputs ``(ii[t], jj[t])`` only (kind as in
    :func:`slice_combine`); outputs are independent."""
    for t in prange(ii.shape[0]):
        acc = np.zeros(NLIMB, np.int64)
        state = np.zeros(3, np.int64)
        out2 = np.zeros(2)
        i = ii[t]
        j = jj[t]
        dot_into(acc, state, A[i], BT[j], C[i, j])
        if kind == 0:
            hi[i, j] = finish(acc, state)
        elif kind == 1:
            hi[i, j] = finish_residual(acc, state, D[i, j])
        else:
            exact[i, j] = finish_dd(acc, state, out2)
            hi[i, j] = out2[0]
            lo[i, j] = out2[1]


@njit(**JIT)
def _lsb(x):
    """Exponent of the least significant set bit of a finite nonzero binary64 ``x``."""
    m, ef = sig_exp(f64_to_bits(x))
    low = np.int64(m & (~m + np.uint64(1)))  # the lowest set bit, a power of two <= 2^52
    return ef - 1075 + np.int64(f64_to_bits(float(low)) >> np.uint64(52)) - 1023


@njit(**JIT)
def _span_row(X, top, span, i):
    """Row ``i`` of :func:`slice_span`."""
    amax = 0.0
    low = np.int64(1 << 20)
    bad = False
    for k in range(X.shape[1]):
        x = X[i, k]
        if not math.isfinite(x):
            bad = True
            break
        if x != 0.0:
            amax = max(amax, abs(x))
            low = min(low, _lsb(x))
    e = math.frexp(amax)[1]
    top[i] = e
    if bad:
        span[i] = -1
    elif amax == 0.0:
        span[i] = 0
    else:
        span[i] = e - low


@njit(parallel=True, **JIT)
def slice_span(X, top, span):
    """Per row of ``X``: ``top[i]``, the exponent with every ``|x| < 2^top[i]`` (that of
    the largest magnitude), and ``span[i] = top[i] - l``, the bits down to the row's
    lowest set bit ``2^l`` (0 for a zero row, -1 for a row holding NaN or inf)."""
    for i in prange(X.shape[0]):
        _span_row(X, top, span, i)


@njit(**JIT)
def slice_span_ser(X, top, span):
    """:func:`slice_span` on the calling thread (small arrays: no thread start-up)."""
    for i in range(X.shape[0]):
        _span_row(X, top, span, i)


@njit(**JIT)
def _pow2(e):
    """2^e for -1022 <= e <= 1023 (a normal binary64, built from its bits)."""
    return bits_to_f64(np.uint64(e + 1023) << np.uint64(52))


@njit(**JIT)
def _scale(x, e):
    """``x 2^e`` rounded once (``math.ldexp``; a multiplication when ``2^e`` is normal)."""
    if -1022 <= e <= 1023:
        return x * _pow2(e)
    return math.ldexp(x, e)


@njit(**JIT)
def _fill_row(X, beta, top, ptr, S, exps, i):
    """Row ``i`` of :func:`slice_fill`. The remainder ``r_s`` of slice ``s`` is held in
    the row of slice ``s`` itself until that slice replaces it (no scratch array)."""
    n = ptr[i + 1] - ptr[i]
    if n == 0:
        return
    p0 = ptr[i]
    K = X.shape[1]
    for s in range(n):
        sh = beta * (s + 1) - top[i]
        exps[p0 + s] = -sh
        src = X[i] if s == 0 else S[p0 + s]
        row = S[p0 + s]
        nxt = s + 1 < n
        rest = S[p0 + s + 1] if nxt else row
        if -1022 <= sh <= 1023 and -1022 <= -sh <= 1023:
            up = _pow2(sh)
            down = _pow2(-sh)
            for k in range(K):
                r = src[k]
                t = np.trunc(r * up)
                row[k] = t
                if nxt:
                    rest[k] = r - t * down
        else:
            for k in range(K):
                r = src[k]
                t = np.trunc(_scale(r, sh))
                row[k] = t
                if nxt:
                    rest[k] = r - _scale(t, -sh)


@njit(parallel=True, **JIT)
def slice_fill(X, beta, top, ptr, S, exps):
    """Row ``i``'s slices into ``S[ptr[i]:ptr[i+1]]`` (see ``accsim.numbers.exact.
    split_rows``): slice ``s`` is ``trunc(r_s 2^(beta (s + 1) - top))`` of the remainder
    ``r_s`` (exact: a truncation to a coarser grid and its remainder are binary64
    numbers; a scaled value that underflows is below 1 and truncates to 0 either way),
    with exponent ``exps = top - beta (s + 1)``."""
    for i in prange(X.shape[0]):
        _fill_row(X, beta, top, ptr, S, exps, i)


@njit(**JIT)
def slice_fill_ser(X, beta, top, ptr, S, exps):
    """:func:`slice_fill` on the calling thread (small arrays: no thread start-up)."""
    for i in range(X.shape[0]):
        _fill_row(X, beta, top, ptr, S, exps, i)
