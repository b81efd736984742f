"""accsim.analysis (bounds, verify, kappa): every registered model's bound holds on
adversarial inputs; broken models are caught; float bounds never fall below the exact
(Fraction) bound."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from helpers import MODES  # noqa: E402

import accsim
import hwmodels
from accsim.accumulators import bounds
from accsim.accumulators.blocked import BlockedSum
from accsim.accumulators.kahan import KahanSum
from accsim.accumulators.kulisch import KulischSum
from accsim.accumulators.pairwise import PairwiseSum
from accsim.accumulators.promotion import PromotedSum
from accsim.accumulators.recursive import RecursiveSum
from accsim.analysis import kappa, verify
from accsim.numbers import exact


def _fmt_or(f, default="binary32"):
    return accsim.format(default) if f is None else f


def _rnd(x, f):
    f = _fmt_or(f)
    x = np.clip(np.asarray(x, np.float64), -f.max, f.max)
    return x if f.p == 53 else accsim.round(x, f)


def _adversarial_inputs(model, K, rng):
    """Several (A, B, C) cases in the model's formats: ill-conditioned GenDot pairs,
    wide exponent spreads, exact cancellation against c, subnormal-range values."""
    acc = getattr(model, "accumulator", model)
    fa, fb = _fmt_or(acc.a_format), _fmt_or(acc.b_format)
    fc = _fmt_or(acc.c_format, acc.out_format.name)
    M = N = 3
    cases = []
    # GenDot: row i of A with column i of B has condition ~1e5 (others are mixed)
    A = np.zeros((M, K))
    B = np.zeros((K, N))
    for s in range(M):
        x, y, _ = verify.gen_dot(K, 1e5, rng, fa, fb)
        A[s], B[:, s] = x, y
    cases.append((A, B, np.zeros((M, N))))
    # wide exponents over each format's range (incl. subnormals and near max)
    def wide(shape, f):
        e = rng.integers(f.emin - f.p, f.emax + 1, size=shape)
        return _rnd(rng.standard_normal(shape) * np.exp2(e), f)
    cases.append((wide((M, K), fa), wide((K, N), fb), wide((M, N), fc)))
    # cancellation against c: c = -RN_c(sum)
    A = _rnd(rng.standard_normal((M, K)), fa)
    B = _rnd(rng.standard_normal((K, N)), fb)
    C = _rnd(-exact.matmul(A, B), fc)
    cases.append((A, B, C))
    # tiny values: products deep in the accumulator's subnormal range
    A = _rnd(rng.standard_normal((M, K)) * fa.smallest_normal * 4, fa)
    B = _rnd(rng.standard_normal((K, N)) * fb.smallest_normal * 4, fb)
    cases.append((A, B, np.zeros((M, N))))
    return cases


def _unique_models():
    seen = {}
    for name in hwmodels.available():
        m = hwmodels.get(name)
        acc = getattr(m, "accumulator", m)
        d = dict(acc.describe())
        d.pop("name", None)
        d.pop("source", None)
        seen.setdefault(tuple(sorted(d.items())), name)
    return sorted(seen.values())


def _stack(cases, rng, fc):
    """One (A, B, C) holding every case as a diagonal block (the off-diagonal blocks are
    further mixed dot products), so each model needs one verify call."""
    A = np.vstack([a for a, _, _ in cases])
    B = np.hstack([b for _, b, _ in cases])
    C = _rnd(rng.standard_normal((A.shape[0], B.shape[1])), fc)
    r = c0 = 0
    for a, b, c in cases:
        C[r:r + a.shape[0], c0:c0 + b.shape[1]] = c
        r += a.shape[0]
        c0 += b.shape[1]
    return A, B, C


def test_every_registered_model_bound_holds_on_adversarial_inputs():
    names = _unique_models()
    assert names, "no models registered"
    rng = np.random.default_rng(2024)
    failures = []
    for name in names:
        model = hwmodels.get(name)
        acc = getattr(model, "accumulator", model)
        k = int(getattr(model, "k", 8) or 8)
        K = 2 * k if k > 1 else 12
        A, B, C = _stack(_adversarial_inputs(model, K, rng), rng,
                         _fmt_or(acc.c_format, acc.out_format.name))
        res = verify.verify(model, A, B, C)
        if not res.holds.all():
            failures.append((name, verify.violations(res, 3)))
    assert not failures, failures


def _generic_models():
    out = []
    for mode in MODES:
        out.append(RecursiveSum(acc_format="fp16", mode=mode, a_format="fp16",
                                b_format="fp16"))
        out.append(KahanSum(acc_format="bf16", mode=mode))
        out.append(PairwiseSum(acc_format="float8_e4m3", mode=mode))
        out.append(KulischSum(out_format="fp16", mode=mode))
        out.append(BlockedSum(block=4, inner_format="float8_e5m2", outer_format="fp16",
                              mode=mode))
    out.append(RecursiveSum(acc_format="fp32", mode="rz", product="rounded",
                            product_format="bf16"))
    out.append(RecursiveSum(acc_format="fp16", mode="sr", sr_bits=3))
    out.append(PromotedSum(inner=RecursiveSum(acc_format="float8_e4m3", mode="rne"),
                           chunk=5, outer_format="fp32", outer_mode="rne"))
    return out


@pytest.mark.parametrize("model", _generic_models(), ids=lambda m: f"{m.family}")
def test_generic_family_bounds_hold(model):
    rng = np.random.default_rng(7)
    fmts = ("bf16", "fp16")
    for K in (1, 9, 40):
        for kap in (1.0, 1e4):
            A = np.zeros((2, K))
            B = np.zeros((K, 2))
            for s in range(2):
                A[s], B[:, s], _ = verify.gen_dot(K, kap, rng, *fmts)
            # subnormal-range addends for the narrow accumulators
            C = accsim.round(rng.standard_normal((2, 2)) * 2.0**-16, "fp16")
            for seed in (0, 1):
                res = verify.verify(model, A, B, C, seed=seed)
                assert res.holds.all(), verify.violations(res)


def test_float_bound_is_never_below_exact_bound():
    rng = np.random.default_rng(3)
    models = [RecursiveSum(acc_format="fp16", mode="rz"), KahanSum(acc_format="bf16"),
              PairwiseSum(acc_format="fp16", mode="sr"),
              hwmodels.get("hopper:wgmma.m64n8k32.f32.e4m3.e4m3"),
              hwmodels.get("cdna3:mfma.f32_16x16x32_fp8_fp8"),
              hwmodels.get("cdna2:mfma.f32_16x16x4f16")]
    for m in models:
        acc = getattr(m, "accumulator", m)
        K = 2 * int(getattr(m, "k", 8))
        A = _rnd(rng.standard_normal((2, K)) * 3, acc.a_format or accsim.format("fp16"))
        B = _rnd(rng.standard_normal((K, 2)), acc.b_format or accsim.format("fp16"))
        C = _rnd(rng.standard_normal((2, 2)), acc.c_format or accsim.format("fp16"))
        fb = bounds.error_bound(m, A, B, C)
        eb = bounds.error_bound(m, A, B, C, exact=True)
        margin = bounds.float_margin(m, K)
        for i in range(2):
            for j in range(2):
                assert isinstance(eb[i, j], Fraction)
                assert Fraction(float(fb[i, j])) >= eb[i, j]
                assert fb[i, j] <= float(eb[i, j]) * (1 + margin) + 4 * bounds.ABS_SLACK


@dataclass(frozen=True)
class _Fp16ClaimsFp32(RecursiveSum):
    """Broken: claims a binary32 accumulator but accumulates in binary16."""

    def _matmul(self, A, B, C, seed, **kw):
        return RecursiveSum(acc_format="fp16", mode=self.mode)._matmul(A, B, C, seed)


@dataclass(frozen=True)
class _TruncatingKulisch(KulischSum):
    """Broken: claims one RNE rounding of the exact sum but truncates (RZ)."""

    def _matmul(self, A, B, C, seed):
        return KulischSum(out_format=self.out_format, mode="rz")._matmul(A, B, C, seed)


def test_broken_models_are_caught():
    rng = np.random.default_rng(5)
    A = accsim.round(rng.random((4, 64)) + 0.5, "fp16")
    B = accsim.round(rng.random((64, 4)) + 0.5, "fp16")
    res = verify.verify(_Fp16ClaimsFp32(acc_format="fp32"), A, B)
    assert res.n_violations > 0
    # the truncating Kulisch unit errs by up to one ulp against a half-ulp bound
    A = accsim.round(rng.standard_normal((20, 16)), "bf16")
    B = accsim.round(rng.standard_normal((16, 20)), "bf16")
    res = verify.verify(_TruncatingKulisch(out_format="bf16", mode="rne"), A, B)
    assert res.n_violations > 0
    v = verify.violations(res, 1)[0]
    assert v["abs_error"] > v["bound"]
    # the honest ones hold
    assert verify.verify(KulischSum(out_format="bf16", mode="rne"), A, B).holds.all()


def test_verdict_at_the_margin_uses_exact_recheck():
    m = KulischSum(out_format="fp16", mode="rne")
    A = np.array([[1.0, 2.0**-11 + 2.0**-20]])
    B = np.array([[1.0], [1.0]])
    # a claimed result one half-ulp away: error = 2^-11 + 2^-20 > u |S|? bound = u|S| + eta
    S = 1 + 2.0**-11 + 2.0**-20
    bound_real = Fraction(1, 2**11) * Fraction(S) + Fraction(1, 2**25)
    claimed = 1.0 + 2.0**-10  # error (2^-11 - 2^-20) < bound: holds, decided exactly
    res = verify.verify(m, A, B, computed=np.array([[claimed]]))
    assert Fraction(claimed) - Fraction(S) <= bound_real
    assert res.holds.all()
    # computed exactly at S + bound (not representable in fp16, but as a claim)
    c = float(Fraction(S) + bound_real)
    res = verify.verify(m, A, B, computed=np.array([[c]]))
    assert res.rechecked.all()
    # the verdict is the exact comparison with the exact (Fraction) bound
    exact_bound = bounds.error_bound(m, A, B, exact=True)[0, 0]
    assert bool(res.holds[0, 0]) == (abs(Fraction(c) - Fraction(S)) <= exact_bound)
    # the float64 neighbours of S + bound straddle it: each verdict is exact
    c0 = float(Fraction(S) + exact_bound)
    verdicts = []
    for c2 in (np.nextafter(c0, -np.inf), c0, np.nextafter(c0, np.inf)):
        res2 = verify.verify(m, A, B, computed=np.array([[c2]]))
        want = abs(Fraction(float(c2)) - Fraction(S)) <= exact_bound
        assert bool(res2.holds[0, 0]) == want
        verdicts.append(want)
    assert verdicts[0] and not verdicts[2]  # the probe really straddles the bound


def test_probabilistic_and_parameters():
    rng = np.random.default_rng(1)
    m = RecursiveSum(acc_format="fp16", mode="sr")
    A = accsim.round(rng.random((2, 2000)), "fp16")
    B = accsim.round(rng.random((2000, 2)), "fp16")
    det = bounds.error_bound(m, A, B)
    prob = bounds.error_bound(m, A, B, kind="probabilistic", failure_prob=1e-6)
    assert (prob < det).all()
    pe = bounds.error_bound(m, A[:1, :50], B[:50, :1], kind="probabilistic", lam=3.0,
                            exact=True)[0, 0]
    pf = bounds.error_bound(m, A[:1, :50], B[:50, :1], kind="probabilistic", lam=3.0)[0, 0]
    assert Fraction(float(pf)) >= pe and pf <= float(pe) * (1 + 2.0**-30)
    res = verify.verify(m, A, B, kind="probabilistic", lam=10.0)
    assert res.holds.all()
    # directed rounding keeps the deterministic constant
    m2 = RecursiveSum(acc_format="fp16", mode="rz")
    np.testing.assert_array_equal(bounds.error_bound(m2, A, B, kind="probabilistic"),
                                  bounds.error_bound(m2, A, B))
    assert bounds.failure_prob_from_lam(
        bounds.lam_from_failure_prob(1e-3, 100), 100) <= 1e-3
    with pytest.raises(ValueError, match="kind"):
        bounds.error_bound(m, A, B, kind="typical")
    with pytest.raises(ValueError, match="not both"):
        bounds.error_bound(m, A, B, kind="probabilistic", lam=1.0, failure_prob=0.1)
    with pytest.raises(ValueError, match="only to kind"):
        bounds.error_bound(m, A, B, lam=1.0)

    class Odd:
        family = "mystery"
        name = "odd"

    with pytest.raises(ValueError, match="families with bounds"):
        bounds.error_bound(Odd(), A, B)


def test_overflow_and_nonfinite_give_inf():
    m = RecursiveSum(acc_format="fp16")
    A = np.array([[60000.0, 60000.0], [1.0, np.inf]])
    B = np.array([[1.0], [1.0]])
    b = bounds.error_bound(m, A, B)
    assert math.isinf(b[0, 0]) and math.isinf(b[1, 0])


def test_gamma_exact_and_float():
    g = bounds.gamma(10, 2.0**-11)
    e = bounds.gamma(10, 2.0**-11, exact=True)
    assert e == (1 + Fraction(1, 2048)) ** 10 - 1
    assert Fraction(g) >= e and g <= float(e) * (1 + 2**-38)
    assert e <= Fraction(10, 2048) / (1 - Fraction(10, 2048))  # <= Higham's gamma_n


# ------------------------------------------------------------------------------- kappa
def test_kappa_phi_formulas():
    z = np.array([-3.0, -0.5, 0.0, 0.25, 2.0])
    eps = 1e-6
    import scipy.special as sp

    fns = {"tanh": np.tanh, "sigmoid": sp.expit,
           "gelu": lambda t: t * sp.ndtr(t), "silu": lambda t: t * sp.expit(t)}
    for act, f in fns.items():
        k = kappa.kappa_phi(z, act)
        for zi, ki in zip(z, k, strict=True):
            if zi == 0.0:
                continue
            d = (f(zi + eps) - f(zi - eps)) / (2 * eps)
            assert ki == pytest.approx(abs(zi * d / f(zi)), rel=1e-5), (act, zi)
    np.testing.assert_array_equal(kappa.kappa_phi(z, "relu"), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(kappa.kappa_phi(z, "identity"), np.ones(5))
    assert kappa.kappa_phi(np.array([0.0]), "tanh")[0] == 0.0  # 0/0 -> 0
    assert np.isfinite(kappa.kappa_phi(np.array([-60.0, 800.0]), "gelu")).all()
    with pytest.raises(ValueError, match="valid"):
        kappa.kappa_phi(z, "softplus")


def test_kappa_v_and_propagation():
    W = np.array([[1.0, -1.0], [2.0, 3.0], [0.0, 0.0]])
    x = np.array([1.0, 1.0 + 2.0**-40])
    b = np.array([0.0, -4.0, 0.0])
    kv = kappa.kappa_v(W, x, b)
    assert kv[0] == pytest.approx((2 + 2.0**-40) / 2.0**-40)
    assert kv[1] == pytest.approx((5 + 3 * 2.0**-40 + 4) / (1 + 3 * 2.0**-40))
    assert kv[2] == 0.0  # 0/0
    v = W @ x + b
    eps = kappa.propagate_layer_error(np.array([1e-3, 0.0]), W, x, v, "relu", 1e-4, b=b)
    want1 = 1.0 * ((2 * 1 * 1e-3) / abs(v[1]) + kv[1] * 1e-4)
    assert eps[1] == pytest.approx(want1)
    assert eps[0] == 0.0  # relu at a negative value
    assert kappa.kappa_dot([1.0, -1.0], [1.0, 1.0]) == math.inf


def test_blas_abs_sums_are_a_proven_upper_bound_vs_fraction():
    """``sum_k |a_ik b_kj|`` from one BLAS product, inflated by ``gamma_{K+1}`` and an
    absolute underflow term (``bounds._abs_sums``): never below the exact sum, and above
    it by at most the stated factor ``1 + 2 gamma`` (plus the absolute term), on
    products that underflow, subnormals, wide exponents and long K."""
    rng = np.random.default_rng(21)
    ar = bounds._Ar(False)
    tiny = (2 * 1 + 1) * 2.0**-1022
    for t, K in enumerate((1, 7, 64, 1500)):
        A = np.ldexp(rng.standard_normal((3, K)), rng.integers(-540, 40, (3, K)))
        B = np.ldexp(rng.standard_normal((K, 4)), rng.integers(-540, 40, (K, 4)))
        A[0, : K // 2 + 1] = 2.0**-1074 * rng.integers(1, 9, K // 2 + 1)  # subnormals
        if t % 2:
            A = A.astype(np.float32).astype(np.float64)
        C = rng.standard_normal((3, 4))
        Tx, Cabs = bounds._abs_sums(ar, A, B, C)
        nu = (K + 1) * 2.0**-53
        gamma = Fraction(nu) / (1 - Fraction(nu))
        for i in range(3):
            for j in range(4):
                T = sum(abs(Fraction(float(a)) * Fraction(float(b)))
                        for a, b in zip(A[i], B[:, j], strict=True))
                got = Fraction(float(Tx[i, j]))
                assert got >= T, (K, i, j)
                slack = (2 * K + 1) * Fraction(2) ** -1022
                assert got <= T * (1 + 2 * gamma) * (1 + gamma) * (1 + Fraction(2) ** -50) \
                    + slack * (1 + Fraction(2) ** -50) + Fraction(tiny), (K, i, j)
                assert Cabs[i, j] == abs(C[i, j])


def test_abs_product_given_once_gives_the_same_bits():
    """``error_bound(..., abs_product=abs_product(A, B))``: the same bits as the bound
    computing ``|A| @ |B|`` itself, for every family, both kinds, with non-finite
    operands; a product of the wrong shape is refused."""
    rng = np.random.default_rng(11)
    A = accsim.round(rng.standard_normal((5, 40)), "binary16")
    B = accsim.round(rng.standard_normal((40, 7)), "binary16")
    A[2, 3], B[4, 5] = np.inf, np.nan
    C = accsim.round(rng.standard_normal((5, 7)), "binary16")
    S = bounds.abs_product(A, B)
    models = [hwmodels.resolve(n) for n in ("fp16-recursive-rne", "bf16-sr-accumulator",
                                            "fp8-e4m3-blocked8", "fp16-pairwise",
                                            "fp16-kahan", "fp8-promotion-128",
                                            "kulisch-fp32", "fp16-fma-chain")]
    for m in models:
        for kind in bounds.KINDS:
            own = bounds.error_bound(m, A, B, C, kind=kind)
            given = bounds.error_bound(m, A, B, C, kind=kind, abs_product=S)
            assert own.tobytes() == given.tobytes(), (m.name, kind)
    with pytest.raises(ValueError, match="abs_product"):
        bounds.error_bound(models[0], A, B, C, abs_product=S[:, :3])


def test_engine_computes_abs_product_once_per_task(monkeypatch):
    """Two models bounded on one task (an adaptive strategy's levels, deterministic and
    probabilistic bounds): ``|W| @ |X|`` is computed once and the bounds are the bits
    of each model's own ``error_bound``."""
    from accsim.graph.engine import run_task
    from accsim.graph.ops import MatmulTask
    from accsim.run.strategies import Adaptive

    rng = np.random.default_rng(12)
    W = accsim.round(rng.standard_normal((6, 64)), "float8_e4m3")
    X = accsim.round(rng.standard_normal((64, 9)), "binary32")
    C = np.zeros((6, 9))
    lo, hi = hwmodels.resolve("fp8-e4m3-blocked8"), hwmodels.resolve("fp16-recursive-rne")
    calls, own = [], bounds.abs_product
    monkeypatch.setattr(bounds, "abs_product", lambda A, B: calls.append(1) or own(A, B))
    computed = []
    orig = bounds._Ar.abs_matmul

    def spy(self, A, B):
        if A.shape == W.shape and B.shape == X.shape:  # not the criterion's constants
            computed.append(self.product is None or A is not self.product[0])
        return orig(self, A, B)

    monkeypatch.setattr(bounds._Ar, "abs_matmul", spy)
    r = run_task(MatmulTask(W, X, C, "identity", (0,)), Adaptive(lo, hi, 10.0),
                 index=(0, (0,), 1.0), seed=1, extras=True)
    assert set(np.unique(r.level)) == {0, 1}  # both models bounded
    assert calls == [1] and len(computed) == 4 and not any(computed)
    monkeypatch.setattr(bounds._Ar, "abs_matmul", orig)
    for k, m in enumerate((lo, hi)):
        sel = r.level == k
        assert r.bound[sel].tobytes() == m.error_bound(W, X, C)[sel].tobytes()
        assert r.bound_prob[sel].tobytes() == m.error_bound(
            W, X, C, kind="probabilistic", failure_prob=1e-6)[sel].tobytes()
