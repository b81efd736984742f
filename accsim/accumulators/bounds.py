"""Componentwise forward error bounds ``|D - (A @ B + C)| <= bound`` for every family.

Every bound is a rigorous inequality between real numbers (see ``docs/bounds.md`` for the
derivations). Two evaluations share one code path:

* **float** (default): float64 arithmetic on non-negative quantities (``+``, ``*``,
  ``max``, ``min``), the data sums ``T = sum |a b| + |c|`` as a proven upper bound from
  one BLAS product (see ``_abs_sums``), constants ``prod (1 + u_i)^n_i - 1`` from
  ``log1p``/``expm1``. The
  result is then inflated by a proven relative margin (``(1 + 2^-52)^depth - 1`` for the
  longest chain of roundings, at least 2^-40) plus an absolute 2^-1050 (covers
  underflow inside the evaluation), so it is never below the real bound;
* **exact** (``exact=True``): the same formulas on ``fractions.Fraction`` numbers (numpy
  object arrays), giving the real bound itself; :mod:`accsim.analysis.verify` uses it to re-check
  the components whose error lies within the float margin of the bound.

Standard model (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002,
§2.2, with underflow): a rounding into format ``f`` in mode ``m`` of a real ``z`` that does
not overflow gives ``fl(z) = z (1 + delta) + eta``, ``|delta| <= u_m``, ``|eta| <= eta_m``
where ``u_m = 2^-p`` for nearest modes (rne, rna) and ``2^(1-p)`` for directed, odd and
stochastic rounding (any number of random bits: the result is one of the two
neighbours), and ``eta_m`` is half (nearest) or one (others) spacing of the subnormal
grid (of ``2^emin`` without subnormals). An algorithm whose every term ``x_i`` passes
through at most ``r_i`` roundings computes ``sum x_i prod(1 + delta) + sum eta prod(1 +
delta)``, hence ``|error| <= (prod(1 + u)^{r} - 1) T + (1 + that) * sum eta``.

Overflow: where an intermediate value could reach a format's largest finite number the
bound is ``inf`` (the model may overflow or saturate); non-finite data give ``inf`` too.

Probabilistic bounds (``kind="probabilistic"``): Higham & Mary, SIAM J. Sci. Comput. 41
(2019) Thm 2.4/3.1: with mean-independent zero-mean rounding errors, ``prod(1+delta_k) -
1`` over ``n`` roundings is at most ``gamma~_n(lam) = exp(lam sqrt(n) u + n u^2/(1-u)) - 1``
for all terms at once with probability at least ``1 - 2 n exp(-lam^2 (1-u)^2 / 2)``
(union bound over the ``n`` chains). Connolly, Higham & Mary, SIAM J. Sci. Comput. 43
(2021): exact stochastic rounding (``sr_bits=None``) satisfies the assumption
unconditionally (with ``u = 2^(1-p)``); round to nearest needs it as a model assumption.
Directed rounding, SR with few random bits (biased) and the truncating fused units keep
their deterministic constants. Underflow terms stay deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np

from accsim.accumulators.fused_spec import OUT_ROUNDINGS, ZSENT, decode_exponents, truncate_tf32
from accsim.accumulators.registry import family_names, get_family
from accsim.kernels import boundsteps as _bsteps
from accsim.kernels.absmatmul import abs_matmul as _abs_matmul
from accsim.kernels.vocab import RoundingMode
from accsim.numbers import exact as _exact
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import round as _round

__all__ = ["error_bound", "abs_product", "gamma", "rounding_constants", "lam_from_failure_prob",
           "failure_prob_from_lam", "MARGIN_MIN", "ABS_SLACK"]

KINDS = ("deterministic", "probabilistic")
MARGIN_MIN = 2.0**-40
ABS_SLACK = 2.0**-1050
_U64 = 2.0**-53


# ---------------------------------------------------------------------------- arithmetic
class _Ar:
    """Float or exact (Fraction) evaluation of the bound formulas."""

    def __init__(self, exact: bool, product=None):
        self.exact = exact
        self.depth = 1  # longest chain of float64 roundings (float mode bookkeeping)
        # (A, B, |A| @ |B|) given by the caller: the product of these very arrays
        self.product = product

    def abs_matmul(self, A, B) -> np.ndarray:
        """The binary64 ``|A| @ |B|`` in a fixed order (float mode,
        :func:`accsim.kernels.absmatmul.abs_matmul`): the caller's product when ``A``
        and ``B`` are the operands it was computed from, else computed here."""
        p = self.product
        if p is not None and A is p[0] and B is p[1]:
            return p[2]
        return _abs_matmul(A, B)

    def arr(self, X) -> np.ndarray:
        X = np.asarray(X, np.float64)
        if not self.exact:
            return X
        out = np.empty(X.shape, object)
        flat = X.reshape(-1)
        o = out.reshape(-1)
        for i, v in enumerate(flat):
            o[i] = Fraction(float(v)) if math.isfinite(v) else Fraction(0)
        return out

    def c(self, x) -> float | Fraction:
        """A constant given exactly (float or Fraction); float mode rounds it UP."""
        if self.exact:
            return Fraction(x)
        f = float(x)
        if Fraction(f) < Fraction(x):
            f = math.nextafter(f, math.inf)
        return f

    def pow2(self, e):
        """2^e for an int or int array (float mode: exact in the binary64 range)."""
        if self.exact:
            if np.ndim(e) == 0:
                return Fraction(2) ** int(e)
            e = np.asarray(e)
            out = np.empty(e.shape, object)
            for idx, v in np.ndenumerate(e):
                out[idx] = Fraction(2) ** int(v)
            return out
        e = np.asarray(e)
        r = np.ldexp(1.0, np.clip(e, -1074, 1100).astype(np.int32))
        return float(r) if r.ndim == 0 else r

    def zeros(self, shape):
        if self.exact:
            out = np.empty(shape, object)
            out[...] = Fraction(0)
            return out
        return np.zeros(shape)

    def chain(self, pairs, n_extra=None):
        """Upper bound of ``prod_i (1 + u_i)^(n_i) - 1`` for ``pairs = [(n_i, u_i)]``
        (``n_i`` int or int array, ``u_i`` exact powers of two)."""
        if self.exact:
            shape = np.broadcast_shapes(*[np.shape(n) for n, _ in pairs])
            if shape == ():
                r = Fraction(1)
                for n, u in pairs:
                    r *= (1 + Fraction(u)) ** int(n)
                return r - 1
            out = np.empty(shape, object)
            ns = [np.broadcast_to(np.asarray(n), shape) for n, _ in pairs]
            cache: dict = {}
            for idx in np.ndindex(shape):
                key = tuple(int(n[idx]) for n in ns)
                if key not in cache:
                    r = Fraction(1)
                    for k, (_, u) in zip(key, pairs, strict=True):
                        r *= (1 + Fraction(u)) ** k
                    cache[key] = r - 1
                out[idx] = cache[key]
            return out
        z = 0.0
        for n, u in pairs:
            z = z + np.asarray(n, np.float64) * math.log1p(float(u))
        with np.errstate(over="ignore"):
            g = np.expm1(z)
        # libm log1p/expm1 are accurate to a few ulps; inflate by 2^-40 relative
        g = np.nextafter(g * (1 + 2.0**-40), np.inf)
        return float(g) if np.ndim(g) == 0 else g

    def maximum(self, a, b):
        return np.maximum(a, b)

    def minimum(self, a, b):
        return np.minimum(a, b)


def gamma(n, u, *, exact: bool = False):
    """``(1 + u)^n - 1`` (<= Higham's ``gamma_n = n u / (1 - n u)`` when ``n u < 1``),
    rounded upward in float mode, exact as a Fraction with ``exact=True``."""
    return _Ar(exact).chain([(n, u)])


def gamma_prob(n, u, lam, ar: _Ar):
    """Higham-Mary ``gamma~_n(lam) = exp(lam sqrt(n) u + n u^2 / (1 - u)) - 1`` (upper
    bound in float mode; in exact mode a rational upper bound via interval mpmath)."""
    if ar.exact:
        n = np.asarray(n)
        out = np.empty(n.shape, object)
        with mpmath.workprec(200):
            for idx in np.ndindex(n.shape):
                nn = int(n[idx])
                x = mpmath.iv.mpf(lam) * mpmath.iv.sqrt(nn) * u + nn * mpmath.iv.mpf(u) ** 2 \
                    / (1 - mpmath.iv.mpf(u))
                g = mpmath.iv.exp(x) - 1
                # man * 2^exp exactly (mpf.as_integer_ratio needs mpmath >= 1.4, and
                # torch's sympy pins mpmath < 1.4)
                man, ex = mpmath.mpf(g.b).man_exp
                out[idx] = Fraction(int(man)) * Fraction(2) ** int(ex)
        return out[()] if out.ndim == 0 else out
    n = np.asarray(n, np.float64)
    u = float(u)
    x = lam * np.sqrt(n) * u + n * u * u / (1 - u)
    g = np.nextafter(np.expm1(x) * (1 + 2.0**-40), np.inf)
    return float(g) if g.ndim == 0 else g


def lam_from_failure_prob(failure_prob: float, n: int, u: float = 0.0) -> float:
    """Smallest ``lam`` with ``2 n exp(-lam^2 (1-u)^2 / 2) <= failure_prob``."""
    if not 0 < failure_prob < 1:
        raise ValueError(f"failure_prob must be in (0, 1), got {failure_prob!r}")
    return math.sqrt(2 * math.log(2 * max(n, 1) / failure_prob)) / (1 - u) * (1 + 1e-12)


def failure_prob_from_lam(lam: float, n: int, u: float = 0.0) -> float:
    """Failure probability ``min(1, 2 n exp(-lam^2 (1-u)^2 / 2))`` of the bound."""
    return min(1.0, 2 * max(n, 1) * math.exp(-(lam**2) * (1 - u) ** 2 / 2))


def rounding_constants(fmt: FloatFormat, mode: str) -> tuple[Fraction, Fraction]:
    """``(u_m, eta_m)`` of the standard model for rounding into ``fmt`` in ``mode``, as
    exact Fractions (``eta`` may be below the binary64 range, e.g. 2^-1075)."""
    fmt = get_format(fmt)
    gap = Fraction(2) ** ((fmt.emin - fmt.p + 1) if fmt.subnormals else fmt.emin)
    u = Fraction(1, 2**fmt.p)
    if RoundingMode.parse(mode).is_nearest:
        return u, gap / 2
    return 2 * u, gap


@dataclass
class _Prob:
    kind: str
    lam: float | None
    failure_prob: float | None
    K: int = 0


def _prob_ok(mode: str, sr_bits) -> bool:
    """Whether the probabilistic model applies to rounding errors of this mode."""
    m = RoundingMode.parse(mode)
    return m.is_nearest or (m.is_stochastic and sr_bits is None)


def _rel(ar: _Ar, prob: _Prob, pairs, modes_ok: bool):
    """Relative chain constant: deterministic, or probabilistic when allowed."""
    if prob.kind == "probabilistic" and modes_ok:
        n_tot = sum(np.asarray(n) for n, _ in pairs)
        u_max = max(float(u) for _, u in pairs)
        lam = prob.lam
        if lam is None:  # union bound over the K + 1 terms' chains
            lam = lam_from_failure_prob(prob.failure_prob, prob.K + 1, u_max)
        return gamma_prob(n_tot, u_max, lam, ar)
    return ar.chain(pairs)


# ---------------------------------------------------------------------------- data sums
def _inflation(K: int):
    """``(infl, tiny)`` with ``up(S infl + tiny)`` a proven upper bound of ``sum_k |a_ik
    b_kj|`` for ``S`` the binary64 BLAS ``|A| @ |B|`` of inner dimension ``K`` (see
    :func:`_abs_sums`), or None where that road is not taken (``K = 0``, or ``K`` so
    large that ``(K + 1) 2^-53 >= 1/4``)."""
    nu = (K + 1) * _U64
    if K == 0 or nu >= 0.25:
        return None
    gamma = np.nextafter(nu / (1.0 - nu), np.inf) * (1 + 4 * _U64)
    return float(1.0 + 2.0 * gamma), (2 * K + 1) * math.ldexp(1.0, -1022)


def _abs_sums(ar: _Ar, A, B, C):
    """(Tx, |C|): ``sum_k |a_ik b_kj|`` and ``|c_ij|``.

    Float mode returns a proven UPPER bound of the exact sums from one binary64 product
    (:func:`accsim.kernels.absmatmul.abs_matmul`, fixed order, so the bits do not depend
    on a thread count): every term is non-negative, so any evaluation order, with or
    without FMA, satisfies
    ``|S - T| <= gamma_{K+1}(2^-53) T`` (Higham 2002, §3.1, products rounded too), hence
    ``T <= S / (1 - gamma)``, evaluated here as ``S (1 + 2 gamma)`` (valid for
    ``gamma <= 1/2``) rounded up, plus ``(2K + 1) 2^-1022`` for underflow (covers a
    BLAS that flushes subnormals). Exact mode returns the Fractions.
    """
    if ar.exact:
        Ae, Be = ar.arr(np.abs(A)), ar.arr(np.abs(B))
        return Ae @ Be if A.shape[1] else ar.zeros(C.shape), ar.arr(np.abs(C))
    K = A.shape[1]
    if K == 0:
        return np.zeros(C.shape), np.abs(C)
    inf_tiny = _inflation(K)
    if inf_tiny is None:  # far beyond any practical K: fall back to the exact reference
        return _exact.matmul(np.abs(A), np.abs(B)), np.abs(C)
    infl, tiny = inf_tiny
    with np.errstate(over="ignore", invalid="ignore"):
        S = ar.abs_matmul(A, B)
        Tx = S * infl + tiny
    return np.nextafter(Tx, np.inf), np.abs(C)


#: Float mode's per-component constants of recursive and blocked sums depend on the
#: component only through ``c_round`` (0: ``c`` exact in the accumulator format, 1: not):
#: they are evaluated once on these two values and picked per component.
_CR = np.array([0, 1], np.int64)

#: Overflow mask of a bound that already holds ``inf`` where an overflow is possible.
_OVF_DONE = np.zeros((), bool)


def _affine(ar: _Ar, A, B, C, c_exact, g, eta_tot, maxv, pmax):
    """``(bound, ovf)`` of ``g T + (1 + g) eta_tot`` with ``T = sum |a b| + |c|``, where
    ``g`` and ``eta_tot`` are the constants on :data:`_CR` (float mode) or per component
    (exact mode); ovf where ``T + bound >= maxv`` or ``T >= pmax``.

    Float mode computes ``|A| @ |B|`` on BLAS and the rest in one pass
    (:func:`accsim.kernels.boundsteps.affine_bound`: the same operations as the array
    formulas below, so the same bits)."""
    inf_tiny = None if ar.exact else _inflation(A.shape[1])
    if inf_tiny is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            S = ar.abs_matmul(A, B)
        out = np.empty(S.shape)
        _bsteps.affine_bound(S, np.ascontiguousarray(C, np.float64),
                             np.ascontiguousarray(c_exact, np.bool_),
                             np.ascontiguousarray(g, np.float64),
                             np.ascontiguousarray(eta_tot, np.float64),
                             inf_tiny[0], inf_tiny[1], float(maxv), float(pmax), out)
        return out, _OVF_DONE
    if not ar.exact:  # K = 0 or huge: per-component constants, array formulas
        r = (~np.asarray(c_exact, bool)).astype(np.int64)
        g, eta_tot = np.asarray(g)[r], np.asarray(eta_tot)[r]
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    bound = g * T + (1 + g) * eta_tot
    ovf = _overflow_mask(T + bound, maxv) | _overflow_mask(T, pmax)
    return bound, ovf


def _col_abs_products(ar: _Ar, A, B, k0, k1):
    """|a_ik b_kj| for k in [k0, k1): array (M, k1-k0, N)."""
    P = np.abs(A[:, k0:k1, None] * B[None, k0:k1, :]) if not ar.exact else None
    if ar.exact:
        Ae, Be = ar.arr(np.abs(A[:, k0:k1])), ar.arr(np.abs(B[k0:k1]))
        P = Ae[:, :, None] * Be[None, :, :]
    return P


def _overflow_mask(T_plus_E, maxv):
    """Components where a magnitude bound reaches ``maxv`` (float comparison; in exact
    mode Fractions compare exactly)."""
    return np.asarray(T_plus_E >= maxv, dtype=bool) if np.ndim(T_plus_E) else \
        np.asarray(bool(T_plus_E >= maxv))


def _is_c_exact(C, fmt: FloatFormat | None) -> np.ndarray:
    """True where c is a value of fmt (its initial rounding is exact)."""
    if fmt is None:
        return np.ones(C.shape, bool)
    fin = np.isfinite(C)
    if fin.all():
        return _round(C, fmt, "rne") == C
    R = _round(np.where(fin, C, 0.0), fmt, "rne")
    return ~fin | (R == C)


# ---------------------------------------------------------------------------- families
def recursive_bound(model, ar, A, B, C, prob):
    """Recursive summation (Higham 2002, §4.2 / Lemma 3.1 with underflow)."""
    K = A.shape[1]
    u, eta = rounding_constants(model.acc_format, model.mode)
    c_exact = _is_c_exact(C, model.acc_format)
    c_round = (~c_exact).astype(np.int64) if ar.exact else _CR
    n_acc = K + c_round  # roundings into the accumulator a term can pass through
    pairs = [(n_acc, u)]
    n_eta = K + c_round
    eta_tot = ar.c(eta) * ar.arr(n_eta)
    ok = _prob_ok(model.mode, model.sr_bits)
    if model.product == "rounded":
        up, etap = rounding_constants(model.product_format, model.mode)
        g = _rel(ar, prob, [(n_acc, u), (1, up)], ok)
        # c does not pass through the product rounding: bounding it as if it did is safe
        eta_tot = eta_tot + ar.c(etap) * K
        pmax = model.product_format.max
    else:
        g = _rel(ar, prob, pairs, ok)
        pmax = math.inf
    ar.depth = max(ar.depth, 12)
    return _affine(ar, A, B, C, c_exact, g, eta_tot, model.acc_format.max, pmax)


def blocked_bound(model, ar, A, B, C, prob):
    """Blocked summation: blocks of ``block`` terms summed in ``inner_format``, block sums
    accumulated in ``outer_format`` (Higham 2002 §4.2; Blanchard et al. SISC 2020)."""
    K = A.shape[1]
    b = int(model.block)
    nb = -(-K // b) if K else 0
    ui, etai = rounding_constants(model.inner_format, model.mode)
    uo, etao = rounding_constants(model.outer_format, model.mode)
    c_exact = _is_c_exact(C, model.outer_format)
    c_round = (~c_exact).astype(np.int64) if ar.exact else _CR
    # acc = round(c); per block t = round(t + x) (<= b inner roundings of a term), then
    # acc = round(acc + t): a term passes <= nb outer roundings, c <= c_round + nb
    pairs = [(b, ui), (nb + c_round, uo)]
    n_eta_i = K
    n_eta_o = nb + c_round
    g = _rel(ar, prob, pairs, _prob_ok(model.mode, model.sr_bits))
    eta_tot = ar.c(etai) * n_eta_i + ar.c(etao) * ar.arr(n_eta_o)
    ar.depth = max(ar.depth, 12)
    return _affine(ar, A, B, C, c_exact, g, eta_tot,
                   min(model.inner_format.max, model.outer_format.max), math.inf)


def pairwise_bound(model, ar, A, B, C, prob):
    """Pairwise (tree) summation (Higham 2002 §4.2, eq. (4.6)): ``cr = round(c)``,
    ``p_k = round(a_k b_k)``, a tree of ``ceil(log2 K)`` levels of rounded additions, then
    ``round(tree + cr)``: every term passes through at most ``ceil(log2 K) + 2``
    roundings; ``2K + 1`` roundings in all (absolute underflow terms)."""
    K = A.shape[1]
    u, eta = rounding_constants(model.acc_format, model.mode)
    levels = math.ceil(math.log2(K)) if K > 1 else 0
    c_round = (~_is_c_exact(C, model.acc_format)).astype(np.int64)
    pairs = [(levels + 2, u)]
    n_eta = 2 * K + c_round
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    g = _rel(ar, prob, pairs, _prob_ok(model.mode, model.sr_bits))
    bound = g * T + (1 + g) * ar.c(eta) * ar.arr(n_eta)
    ovf = _overflow_mask(T + bound, model.acc_format.max)
    return bound, ovf


def kulisch_bound(model, ar, A, B, C, prob):
    """Exact accumulation, one rounding of the exact sum into ``out_format``."""
    mode = getattr(model, "mode", "rne")
    u, eta = rounding_constants(model.out_format, mode)
    if ar.exact:
        S = np.abs(ar.arr(A) @ ar.arr(B) + ar.arr(C)) if A.shape[1] else np.abs(ar.arr(C))
    else:
        S = np.abs(_exact.matmul(A, B, C))
    bound = ar.c(u) * S + ar.c(eta)
    ovf = _overflow_mask(S, model.out_format.max)
    return bound, ovf


def kahan_bound(model, ar, A, B, C, prob):
    """Compensated (Kahan) summation ``y = fl(x - c); t = fl(s + y); c = fl(fl(t - s) -
    y); s = t``, starting from ``s = fl(c_in)``, ``c = 0``. Rigorous recurrence under the
    standard model with underflow (any mode), see docs/bounds.md: per step
    ``v' = v + x + e1 - e3 - e4`` for ``v = s - c``; the result ``s = v + c``.
    Gives ``(3 u + O(n u^2)) T``: Higham's 2u (2002, §4.3, (4.8)) relies on exact
    Fast2Sum steps, which directed rounding does not provide."""
    K = A.shape[1]
    u, eta = rounding_constants(model.acc_format, model.mode)
    u = ar.c(u)
    eta = ar.c(eta)
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    c_round = ~_is_c_exact(C, model.acc_format)
    E = ar.arr(c_round.astype(np.float64)) * (u * Cabs + eta)  # |v - S|
    Cc = ar.zeros(C.shape)  # bound on |c|
    for k0 in range(0, K, 256):
        P = _col_abs_products(ar, A, B, k0, min(K, k0 + 256))
        for kk in range(P.shape[1]):
            x = P[:, kk, :]
            e1 = u * (x + Cc) + eta
            y = x + Cc + e1
            sy = T + E + e1
            e2 = u * sy + eta
            e3 = u * (y + e2) + eta
            e4 = u * (e2 + e3) + eta
            E = E + e1 + e3 + e4
            Cc = e2 + e3 + e4
    ar.depth = max(ar.depth, 30 * K + 10)
    bound = E + Cc
    ovf = _overflow_mask(T + bound, model.acc_format.max)
    return bound, ovf


def promotion_bound(model, ar, A, B, C, prob):
    """Fine-grained promotion (DeepSeek-V3): chunks of ``chunk`` terms by the inner
    accumulator (from 0), each chunk result added into ``outer_format`` with
    ``outer_mode``. Bound: inner bounds per chunk plus a recursive outer bound."""
    K = A.shape[1]
    ch = int(model.chunk)
    uo, etao = rounding_constants(model.outer_format, model.outer_mode)
    M, N = C.shape
    E_in = ar.zeros((M, N))
    nchunks = 0
    for k0 in range(0, K, ch):
        k1 = min(K, k0 + ch)
        sub = _family_bound(model.inner, ar, A[:, k0:k1], B[k0:k1],
                            np.zeros((M, N)), prob)
        E_in = E_in + sub
        nchunks += 1
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    c_round = (~_is_c_exact(C, model.outer_format)).astype(np.int64)
    n_out = nchunks + c_round
    g = _rel(ar, prob, [(n_out, uo)], _prob_ok(model.outer_mode, None))
    ar.depth = max(ar.depth, 20 + 4 * nchunks)
    bound = E_in + g * (T + E_in) + (1 + g) * ar.c(etao) * ar.arr(n_out)
    ovf = _overflow_mask(T + bound, model.outer_format.max)
    return bound, ovf


def exact_step_bound(model, ar, A, B, C, prob):
    """AMD CDNA1: exact step sums, one RNE rounding to fp32 per step of L products."""
    K = A.shape[1]
    L = int(model.L)
    nsteps = -(-K // L) if K else 1
    u, eta = rounding_constants(model.out_format, "rne")
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    g = _rel(ar, prob, [(nsteps, u)], True)
    bound = g * T + (1 + g) * ar.c(eta) * nsteps
    ovf = _overflow_mask(T + bound, model.out_format.max)
    return bound, ovf


def ftz_pairwise_bound(model, ar, A, B, C, prob):
    """AMD CDNA2: flushed inputs (their products are lost: counted exactly), fp32 RNE
    products and pairwise sums, the pair-sum added to c, every result flushed to zero if
    subnormal (an absolute error < 2^-126 per operation)."""
    K = A.shape[1]
    P = int(model.P)
    f32 = get_format("binary32")
    u = f32.u
    flush = f32.smallest_normal
    ta = model.a_format.smallest_normal
    tb = model.b_format.smallest_normal
    mA = np.abs(A) < ta
    mB = np.abs(B) < tb
    A_lost = np.where(mA, A, 0.0)
    Tx, Cabs = _abs_sums(ar, A, B, C)
    T = Tx + Cabs
    # products lost to input flushing: |a b| where a or b is flushed
    lost, _ = _abs_sums(ar, A_lost, B, C)
    lost_b, _ = _abs_sums(ar, np.where(mA, 0.0, A), np.where(mB, B, 0.0), C)
    lost = lost + lost_b
    ngroups = -(-K // P) if K else 0
    depth = 1 + int(math.log2(P)) + ngroups
    g = _rel(ar, prob, [(depth, u)], True)
    n_ops = K + ngroups * (P - 1) + ngroups + (-(-K // int(model.L)) if K else 0)
    bound = lost + g * T + (1 + g) * ar.c(flush) * n_ops
    ovf = _overflow_mask(T + bound, f32.max)
    return bound, ovf


def _step_emax_products(A, B, EA, EB, k0, k1):
    """max over k in [k0, k1) of the decoded product exponent EA[i,k] + EB[k,j] of the
    nonzero products (very negative if there are none)."""
    E = EA[:, k0:k1, None].astype(np.int64) + EB[None, k0:k1, :].astype(np.int64)
    E = np.where(E < ZSENT // 2, -(10**6), E)
    return E.max(axis=1)


def fused_bound(model, ar, A, B, C, prob):
    """Chained fused truncated dot-product steps (NVIDIA; AMD CDNA3 with c_separate).

    Per step j with grid ``g_j = 2^(e_max - F)``: every term aligned to ``e_max`` loses
    less than ``min(|t|, g_j)`` (truncation toward zero) or ``g_j`` (floor); ``2^e_max``
    is at most the largest decoded product exponent of the step, or for the addend
    ``max(|c_hat|, 2^emin_c, 2^e_zero)`` with ``|c_hat| <= T_{j-1} + E_{j-1}``. The exact
    truncated sum is then rounded once (``u_o |z| + eta_o``). CDNA3 adds the group floors
    (2 terms of ``g``), the F2+1-bit floor of the product sum, c's floor and the F2-bit
    floor after normalisation (``2^-F2 |z| + 2^(-126-F2)``)."""
    K = A.shape[1]
    L = int(model.L)
    F = int(model.F)
    _, p_out, emin_out, maxv, rz = OUT_ROUNDINGS[model.out_rounding]
    u_o = math.ldexp(1.0, 1 - p_out) if rz else math.ldexp(1.0, -p_out)
    gap = math.ldexp(1.0, emin_out - p_out + 1)
    eta_o = gap if rz else gap / 2
    u_o, eta_o = ar.c(u_o), ar.c(eta_o)
    M, N = C.shape
    extra = ar.zeros((M, N))
    if model.tf32_truncate:
        At, Bt = truncate_tf32(A), truncate_tf32(B)
        # |ab - a'b'| <= ((1 + 2^-10)^2 - 1) |ab|  (RZ to 11 significant bits)
        Tx0, _ = _abs_sums(ar, A, B, C)
        extra = ar.c(Fraction(2049, 1 << 20)) * Tx0 if ar.exact else \
            Tx0 * (2049.0 / (1 << 20))
        A, B = At, Bt
    if not ar.exact:  # C order once, so the per-step kernels copy nothing
        A, B = np.ascontiguousarray(A, np.float64), np.ascontiguousarray(B, np.float64)
    EA = np.ascontiguousarray(decode_exponents(A, model.a_format.emin), np.int64)
    EB = np.ascontiguousarray(decode_exponents(B, model.b_format.emin), np.int64)
    floor = model.trunc == "floor" or model.c_separate
    cem0 = model.c_format.emin
    cem = model.out_format.emin
    ez = model.e_zero if not model.c_separate else cem
    Cabs = ar.arr(np.abs(C))
    # first step: c's exponent exactly from the data
    ec0 = decode_exponents(C, cem0).astype(np.int64)
    ec0 = np.where(ec0 == ZSENT, ez, ec0)
    Tprev = Cabs
    E = ar.zeros((M, N))
    cpow = ar.pow2(ec0)
    if not ar.exact:  # every step in one kernel pass (the same bits as the loop below)
        E = np.empty((M, N))
        ovf = np.empty((M, N), bool)
        F2 = int(model.F2) if model.c_separate else 0
        _bsteps.fused_steps(
            A, B, EA, EB, np.ascontiguousarray(np.broadcast_to(cpow, (M, N)), np.float64),
            np.ascontiguousarray(Cabs, np.float64), L, ZSENT // 2, ez,
            bool(model.c_separate), bool(floor), bool(model.odd_even),
            float(ar.pow2(max(cem, ez))), ar.c(Fraction(1, 1 << F)),
            ar.c(Fraction(1 << F, 1 << (F2 + 1))), ar.c(Fraction(1, 1 << F2)),
            ar.c(Fraction(1, 1 << (126 + F2))), u_o, eta_o, float(maxv), E, ovf)
        ar.depth = max(ar.depth, 20 * (-(-K // L)) + 10)
        return E + extra, ovf
    first = True
    nsteps = 0
    ovf = np.zeros((M, N), bool)
    for k0 in range(0, K, L):
        k1 = min(K, k0 + L)
        nsteps += 1
        ep = _step_emax_products(A, B, EA, EB, k0, k1)  # exact mode only from here
        if not model.c_separate:
            ep = np.maximum(ep, ez)  # zero products carry e_zero
        ep = np.clip(ep, -1100, 1100)
        if not first:
            cb = Tprev + E
            cpow = ar.maximum(cb, ar.pow2(np.full((M, N), max(cem, ez))))
        g = ar.maximum(ar.pow2(ep), cpow) * ar.c(Fraction(1, 1 << F))
        Pabs = _col_abs_products(ar, A, B, k0, k1)
        Tstep = Pabs.sum(axis=1)
        if floor:
            nz = ar.arr((Pabs != 0).sum(axis=1).astype(np.float64))
            tr = g * nz + g  # products, then c
        else:
            tr = ar.minimum(Pabs, g[:, None, :]).sum(axis=1) + g
        if model.c_separate:
            if model.odd_even:
                tr = tr + 2 * g
            F2 = int(model.F2)
            tr = tr + g * ar.c(Fraction(1 << F, 1 << (F2 + 1)))
        T = Tprev + Tstep
        z = T + E + tr  # bound on |z| (the truncated exact sum)
        if model.c_separate:
            F2 = int(model.F2)
            f2 = ar.c(Fraction(1, 1 << F2))
            w_err = f2 * z + ar.c(Fraction(1, 1 << (126 + F2)))
            z = z + w_err
            E = E + tr + w_err + u_o * z + eta_o
        else:
            E = E + tr + u_o * z + eta_o
        ovf = ovf | _overflow_mask(z + E, maxv)
        Tprev = T
        first = False
    ar.depth = max(ar.depth, 20 * nsteps + 10)
    return E + extra, ovf


def _unwrap(model):
    """The arithmetic of any model (the model protocol's ``accumulator``)."""
    return getattr(model, "accumulator", model)


def _family_bound(model, ar, A, B, C, prob):
    model = _unwrap(model)
    fam = getattr(model, "family", None)
    if fam not in family_names():
        raise ValueError(
            f"no error bound for model family {fam!r} (model {getattr(model, 'name', model)!r})"
            f"; families with bounds: {', '.join(family_names())}"
        )
    bound, ovf = get_family(fam).bound(model, ar, A, B, C, prob)
    if ovf is _OVF_DONE:
        return bound
    if ar.exact:
        out = np.empty(np.shape(bound), object)
        out[...] = bound
        out[np.asarray(ovf, bool)] = math.inf
        return out
    return np.where(ovf, np.inf, bound)


def _finite_operands(A, B, C):
    """``(A, B, C)`` checked (:func:`check_matmul_shapes`), the bound's operands ``(A0,
    B0, C0)`` (non-finite entries zeroed) and the rows, columns holding them."""
    A, B, C = check_matmul_shapes(A, B, C)
    fin_a, fin_b, fin_c = np.isfinite(A), np.isfinite(B), np.isfinite(C)
    bad_rows, bad_cols = ~fin_a.all(axis=1), ~fin_b.all(axis=0)
    A0 = np.where(fin_a, A, 0.0) if bad_rows.any() else A
    B0 = np.where(fin_b, B, 0.0) if bad_cols.any() else B
    C0 = C if fin_c.all() else np.where(fin_c, C, 0.0)
    return (A, B, C), (A0, B0, C0), bad_rows, bad_cols, fin_c


def abs_product(A, B) -> np.ndarray:
    """The binary64 ``|A| @ |B|`` (fixed order; non-finite entries as 0) exactly as
    :func:`error_bound` computes it: a caller bounding several models on the same
    ``A``, ``B`` computes it once and passes it to each as ``abs_product`` (the bounds
    are the same bits)."""
    _, (A0, B0, _), _, _, _ = _finite_operands(A, B, None)
    with np.errstate(over="ignore", invalid="ignore"):
        return _abs_matmul(A0, B0)


def error_bound(model, A, B, C=None, kind: str = "deterministic", lam: float | None = None,
                failure_prob: float | None = None, *, exact: bool = False,
                abs_product: np.ndarray | None = None) -> np.ndarray:
    """Componentwise bound on ``|model.matmul(A, B, C) - (A @ B + C)|``.

    Parameters
    ----------
    model : Accumulator or hwmodels HardwareModel
        Dispatches on ``model.family`` (hardware models use their ``.accumulator``).
    A, B, C : array_like
        The operands (any float arrays; values taken exactly).
    kind : {"deterministic", "probabilistic"}
        Deterministic worst case, or the Higham-Mary probabilistic bound (holding with
        probability at least ``1 - failure_prob`` per component; see module docstring).
    lam : float, optional
        The probabilistic ``lambda``; default from ``failure_prob``.
    failure_prob : float, optional
        Per-component failure probability of the probabilistic bound (default 1e-6).
    exact : bool
        Return the real bound as an object array of ``fractions.Fraction`` (``inf`` as
        float); slow, for re-checking few components.
    abs_product : numpy.ndarray, optional
        :func:`abs_product` of these ``A`` and ``B`` (the caller vouches for it), reused
        instead of computing it again; ignored in exact mode.

    Returns
    -------
    numpy.ndarray of float64 (M, N)
        Upper bounds, never below the real bound (see module docstring); ``inf`` where an
        overflow is possible or the data are not finite.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown bound kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "deterministic" and (lam is not None or failure_prob is not None):
        raise ValueError("lam / failure_prob apply only to kind='probabilistic'")
    if lam is not None and failure_prob is not None:
        raise ValueError("give lam or failure_prob, not both")
    if lam is not None and not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    if kind == "probabilistic" and lam is None:
        failure_prob = 1e-6 if failure_prob is None else float(failure_prob)
        if not 0 < failure_prob < 1:
            raise ValueError(f"failure_prob must be in (0, 1), got {failure_prob!r}")
    (A, B, C), (A0, B0, C0), bad_rows, bad_cols, fin_c = _finite_operands(A, B, C)
    product = None
    if abs_product is not None and not exact:
        S = np.asarray(abs_product)
        if S.shape != C.shape or S.dtype != np.float64:
            raise ValueError(f"abs_product: expected float64 of shape {C.shape}, got "
                             f"{S.dtype} {S.shape}")
        product = (A0, B0, S)
    ar = _Ar(exact, product)
    prob = _Prob(kind, lam, failure_prob, A.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        bound = _family_bound(model, ar, A0, B0, C0, prob)
    if exact:
        bound[bad_rows[:, None] | bad_cols[None, :] | ~fin_c] = math.inf
        return bound
    margin = max(MARGIN_MIN, 2.0 * ar.depth * _U64)
    out = np.empty(C.shape)
    # up(bound (1 + margin) + ABS_SLACK); inf where the data are not finite or on NaN
    _bsteps.finish_bound(np.ascontiguousarray(np.broadcast_to(bound, C.shape), np.float64),
                         bad_rows, bad_cols, C, 1 + margin, ABS_SLACK, out)
    return out


def float_margin(model, K: int) -> float:
    """Relative margin by which the float bound may exceed the real bound (used by
    :mod:`accsim.analysis.verify` to decide which components need the exact re-check)."""
    return 4 * max(MARGIN_MIN, 2.0 * (30 * K + 100) * _U64) + 2.0**-38
