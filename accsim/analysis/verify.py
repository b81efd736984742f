"""Rigorous verification of an accumulator model against its error bound.

For every output component: the computed value, the exact value ``S = A @ B + C``
(nearest binary64), the measured error, the bound, and the verdict ``holds`` meaning
``|computed - S| <= bound`` between REAL numbers:

* the error ``e = computed - S`` comes from the exact accumulator, rounded once
  (:func:`accsim.numbers.exact.residual`): ``|fl(e) - e| <= 2^-53 |e| + 2^-1075``;
* the float bound ``fb`` of :func:`accsim.accumulators.bounds.error_bound` is never below the real
  bound ``B`` and exceeds it by at most a known relative margin
  (:func:`accsim.accumulators.bounds.float_margin`) plus ``2 ABS_SLACK``;
* a component is decided in float64 when the two sides are clearly apart; otherwise
  (error within the margin of the bound) both sides are recomputed exactly with
  ``fractions.Fraction`` (the exact error, and the bound formula evaluated exactly) and
  compared exactly. ``rechecked`` marks those components.

A violated deterministic bound is a finding (reported by :func:`violations`), never
loosened. For probabilistic bounds violations are expected with at most the stated
probability.

Also here: :func:`gen_dot`, the ill-conditioned dot-product generator (Ogita, Rump,
Oishi, "Accurate sum and dot product", SIAM J. Sci. Comput. 26 (2005), Algorithm 6.1,
GenDot) with the operands rounded to given formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import hwmodels
from accsim.accumulators import bounds as _bounds
from accsim.accumulators.base import run_model
from accsim.numbers import exact as _exact
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import round as _round

__all__ = ["VerifyResult", "matmul", "verify", "run_model", "gen_dot", "violations"]


@dataclass(repr=False)
class VerifyResult:
    """One simulated matmul with its exact reference and its componentwise bound.

    Attributes
    ----------
    computed, exact : ndarray (M, N)
        The model's result and ``A @ B + C`` rounded once to binary64.
    abs_error, rel_error, bound : ndarray (M, N)
        ``|computed - exact|`` (exact residual, rounded once), relative to ``|exact|``, and
        the bound of ``kind``.
    holds, rechecked : ndarray of bool (M, N)
        ``|computed - A B - C| <= bound`` between real numbers; components decided in
        exact arithmetic.
    kind : str
        ``"deterministic"`` or ``"probabilistic"``.
    model : str
        Short description of the model (its ``repr``).
    """

    computed: np.ndarray
    exact: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    bound: np.ndarray
    holds: np.ndarray
    rechecked: np.ndarray
    kind: str
    model: str = ""

    def __repr__(self) -> str:
        r = self.ratio[np.isfinite(self.bound)]
        worst = f"{np.max(r):.3g}" if r.size else "-"
        shape = "x".join(str(d) for d in self.computed.shape)
        return (f"VerifyResult({self.model or '?'}, {shape}, max error/bound {worst}, "
                f"{self.n_violations} violation(s) of the {self.kind} bound)")

    @property
    def ratio(self) -> np.ndarray:
        """abs_error / bound (0 where both are 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.abs_error / self.bound
        return np.where((self.abs_error == 0), 0.0, r)

    @property
    def n_violations(self) -> int:
        return int((~self.holds).sum())


def _frac_exact(A, B, C, i, j) -> Fraction:
    s = Fraction(float(C[i, j]))
    for a, b in zip(A[i], B[:, j], strict=True):
        s += Fraction(float(a)) * Fraction(float(b))
    return s


def verify(model, A, B, C=None, *, computed=None, seed: int = 0,
           kind: str = "deterministic", recheck: bool = True, **bound_kw) -> VerifyResult:
    """Run ``model`` (unless ``computed`` is given) and verify its bound componentwise.

    Parameters
    ----------
    model : Accumulator or HardwareModel
    A, B, C : array_like
        Operands (values of the model's input formats).
    computed : array_like, optional
        Results to check instead of running the model (e.g. from a broken model).
    seed : int
        Stochastic rounding seed.
    kind : {"deterministic", "probabilistic"}
    recheck : bool
        Decide borderline components exactly (default); without it they are decided in
        float64 against the float bound (never claiming a violation of the float bound
        that the real bound might not have).
    **bound_kw
        ``lam`` / ``failure_prob`` for the probabilistic bound.

    Returns
    -------
    VerifyResult
    """
    A, B, C = check_matmul_shapes(A, B, C)
    if computed is None:
        computed = run_model(model, A, B, C, seed=seed)
    D = np.asarray(computed, np.float64)
    S = _exact.matmul(A, B, C)
    bound = _bounds.error_bound(model, A, B, C, kind=kind, **bound_kw)
    fin = np.isfinite(D) & np.isfinite(S)
    Dz = np.where(fin, D, 0.0)
    err = np.abs(_exact.residual(Dz, A, B, np.where(np.isfinite(C), C, 0.0)))
    # rows/cols with non-finite data: the residual is meaningless there
    same_special = (~fin) & ((D == S) | (np.isnan(D) & np.isnan(S)))
    err = np.where(fin, err, np.where(same_special, 0.0, np.inf))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err == 0, 0.0, err / np.abs(S))
    margin = _bounds.float_margin(model, A.shape[1])
    tiny = 2.0**-1074
    err_hi = err * (1 + 2.0**-52) + tiny
    err_lo = np.maximum(err * (1 - 2.0**-52) - tiny, 0.0)
    sure_hold = err_hi <= bound / (1 + margin) - 2 * _bounds.ABS_SLACK
    sure_fail = err_lo > bound
    undecided = ~(sure_hold | sure_fail) & fin
    holds = sure_hold.copy()
    holds |= ~fin & same_special
    rechecked = np.zeros(D.shape, bool)
    if recheck:
        for i, j in zip(*np.nonzero(undecided), strict=True):
            e_exact = abs(Fraction(float(D[i, j])) - _frac_exact(A, B, C, i, j))
            b_exact = _bounds.error_bound(model, A[i:i + 1], B[:, j:j + 1],
                                          C[i:i + 1, j:j + 1], kind=kind, exact=True,
                                          **bound_kw)[0, 0]
            holds[i, j] = bool(e_exact <= b_exact)
            rechecked[i, j] = True
    else:
        holds |= undecided & (err_lo <= bound)
    return VerifyResult(D, S, err, rel, bound, holds, rechecked, kind, model=_label(model))


def _label(model) -> str:
    name = getattr(model, "name", "")
    if ":" in str(name):  # a hardware model: its registry name says it all
        return str(name)
    return repr(model)


def matmul(model, A, B, C=None, *, seed: int = 0, kind: str = "deterministic",
             **bound_kw) -> VerifyResult:
    """Run ``model`` on ``A @ B + C`` and return the result with its exact reference, its
    componentwise error bound and the verdict, in one object.

    The same as :func:`verify` (the verdict ``holds`` is decided between real numbers);
    ``result.computed`` is the model's output, ``result.exact`` the exact result rounded
    once, ``result.bound`` the bound of ``kind`` and ``result.holds`` whether
    ``|computed - A B - C| <= bound`` for each component.

    ``model`` is a model, a registry name (``"fp16-recursive-rne"``,
    ``"hopper:wgmma.m64n8k32.f32.e4m3.e4m3"``) or a dict spec
    (:func:`hwmodels.resolve`).

    Examples
    --------
    >>> r = accsim.matmul(hwmodels.get("fp16-recursive-rne"), A, B)   # doctest: +SKIP
    >>> r
    VerifyResult(RecursiveSum(binary16, rne, exact products), 64x8, max error/bound 0.0312, ...)
    """
    return verify(hwmodels.resolve(model), A, B, C, seed=seed, kind=kind, **bound_kw)


def violations(res: VerifyResult, limit: int = 20) -> list[dict]:
    """The violated components as dicts (i, j, computed, exact, abs_error, bound)."""
    out = []
    for i, j in list(zip(*np.nonzero(~res.holds), strict=True))[:limit]:
        out.append(dict(i=int(i), j=int(j), computed=float(res.computed[i, j]),
                        exact=float(res.exact[i, j]), abs_error=float(res.abs_error[i, j]),
                        bound=float(res.bound[i, j])))
    return out


# --------------------------------------------------------------------------- generator
def _rnd(x, fmt: FloatFormat | None):
    """Round to fmt (RNE), saturating at +-max (no inf/NaN from overflow)."""
    x = np.asarray(x, np.float64)
    if fmt is None or fmt.p == 53:
        return x
    return _round(np.clip(x, -fmt.max, fmt.max), fmt, "rne")


def _exp_range(fmt: FloatFormat | None) -> tuple[int, int]:
    if fmt is None:
        return -1000, 1000
    return fmt.emin, fmt.emax - 1


def _kappa_of(x, y) -> float:
    num = _exact.dot(np.abs(x), np.abs(y))
    den = abs(_exact.dot(x, y))
    return num / den if den > 0 else (math.inf if num > 0 else 0.0)


def gen_dot(n: int, kappa: float, rng: np.random.Generator, fmt_a=None, fmt_b=None):
    """Vectors ``x, y`` of length ``n`` whose dot product has condition number about
    ``kappa`` (Ogita-Rump-Oishi GenDot), every entry a value of ``fmt_a`` / ``fmt_b``.

    ``kappa == 1``: positive entries (condition exactly 1). Otherwise the first half gets
    random exponents spread over ``log2(kappa) / 2``; the second half is chosen so the
    running exact sum cancels (``y_i = (r 2^e - sum_{<i} x y) / x_i``, rounded to
    ``fmt_b``, saturating); then the pairs are shuffled. All exponents are shifted down
    by ``log2(kappa) / 2`` so that the largest products are about 4 (narrow accumulators
    do not overflow) and clipped to the formats' ranges, so narrow formats may not reach
    large ``kappa``: the achieved condition number is returned.

    Returns
    -------
    x, y : numpy.ndarray (float64 values of the formats)
    kappa_achieved : float
    """
    fa = None if fmt_a is None else get_format(fmt_a)
    fb = None if fmt_b is None else get_format(fmt_b)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not kappa >= 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    if kappa == 1:
        x = _rnd(rng.random(n) + 0.5, fa)
        y = _rnd(rng.random(n) + 0.5, fb)
        return x, y, _kappa_of(x, y)
    lo = max(_exp_range(fa)[0], _exp_range(fb)[0])
    hi = min(_exp_range(fa)[1], _exp_range(fb)[1])
    b = math.log2(kappa)
    shift = int(round(b / 2))
    half = max(1, n // 2)
    e = np.round(rng.random(half) * b / 2).astype(int)
    e[0] = int(round(b / 2)) + 1
    if half > 1:
        e[-1] = 0
    e = np.clip(e - shift // 2, lo, hi)
    x = np.zeros(n)
    y = np.zeros(n)
    x[:half] = _rnd((2 * rng.random(half) - 1) * np.exp2(e), fa)
    y[:half] = _rnd((2 * rng.random(half) - 1) * np.exp2(e - (shift - shift // 2)), fb)
    if n > half:
        m = n - half
        ee = np.round(np.linspace(b / 2, 0, m)).astype(int)
        s = sum((Fraction(float(p)) * Fraction(float(q)) for p, q in
                 zip(x[:half], y[:half], strict=True)), Fraction(0))
        xs = _rnd((2 * rng.random(m) - 1) * np.exp2(np.clip(ee - shift // 2, lo, hi)), fa)
        targets = (2 * rng.random(m) - 1) * np.exp2(ee - shift)
        for t, i in enumerate(range(half, n)):
            xi = float(xs[t])
            if xi == 0.0:
                xi = float(_rnd(2.0 ** int(np.clip(ee[t] - shift // 2, lo, hi)), fa))
            x[i] = xi
            # exact running sum; (target - s) / xi rounded to binary64, then to fmt_b
            y[i] = float(_rnd(float((Fraction(float(targets[t])) - s) / Fraction(xi)), fb))
            s += Fraction(xi) * Fraction(float(y[i]))
    perm = rng.permutation(n)
    x, y = x[perm], y[perm]
    return x, y, _kappa_of(x, y)
