"""AMD matrix-core models (hwmodels.amd; ExactStep, FtzPairwiseStep, FusedDot with
c_separate) against Fraction references, bit for bit.

Facts: docs/hwmodels.md "AMD matrix cores"; algorithms as MMA-Sim (arXiv:2511.10909), which
validated them on MI100/MI250/MI300. ``tests/reference.py`` provides ref_cdna1_step and
ref_cdna2_step; its ref_cdna3_step reads docs/hwmodels.md's prose differently from MMA-Sim
(products floored rather than truncated toward zero; one F2 truncation relative to
e_max instead of MMA-Sim's F2+1 pre-truncation and normalised F2 truncation), so the CDNA3
oracle below transcribes MMA-Sim's ``tr_fdpa`` / ``gtr_fdpa`` in exact Fraction arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import reference as R

import accsim
import hwmodels
from accsim.accumulators.fused import ExactStep, FtzPairwiseStep, FusedDot, truncate_tf32
from hwmodels import amd

REF_FMT = {"binary16": R.binary16, "bfloat16": R.bfloat16, "tfloat32": R.tfloat32,
           "binary32": R.binary32, "float8_e4m3fnuz": R.float8_e4m3fnuz,
           "float8_e5m2fnuz": R.float8_e5m2fnuz, "binary64": R.binary64}
TWO = Fraction(2)


def bits(x, zeros_equal=False):
    x = np.asarray(x, np.float64)
    if zeros_equal:
        x = np.where(x == 0, 0.0, x)
    b = x.view(np.uint64).copy()
    b[np.isnan(x)] = 0x7FF8000000000000
    return b


# ------------------------------------------------------------------ CDNA3 oracle
def ref_cdna3(a, b, c, fa, fb, F=24, F2=31, groups=1):
    """One CDNA3 step (MMA-Sim tr_fdpa / gtr_fdpa) in exact arithmetic."""
    f32 = R.binary32()
    prods = []
    for x, y in zip(a, b, strict=True):
        p = R._exact_mul(x, y)
        if isinstance(p, Fraction) and abs(p) >= TWO**128:
            p = math.copysign(math.inf, p)  # product overflow (MMA-Sim tr_fdpa)
        prods.append(p)
    terms = prods + [c]
    if groups == 2 and not math.isfinite(c) and all(
            not (isinstance(t, float) and not math.isfinite(t)) for t in prods):
        # MMA-Sim gtr_fdpa: an inf/NaN c decodes with exponent -1 and is dropped like a
        # tiny c when e_max > F (docs/hwmodels.md says infinities propagate; unverified)
        e_dot = max((R._decode_se(x, fa)[1] + R._decode_se(y, fb)[1]
                     for x, y in zip(a, b, strict=True) if x != 0 and y != 0), default=-1000)
        if -1 < e_dot - F - 1:
            c = 0.0
        else:
            return R._exact_sum([c], "rne")
        terms = prods + [c]
    if any(isinstance(t, float) and not math.isfinite(t) for t in terms):
        return R._exact_sum([t for t in terms if isinstance(t, float)
                             and not math.isfinite(t)], "rne")
    sums = []
    for g in range(groups):
        tg = [(R._decode_se(x, fa)[0] * R._decode_se(y, fb)[0],
               R._decode_se(x, fa)[1] + R._decode_se(y, fb)[1])
              for x, y in list(zip(a, b, strict=True))[g::groups] if x != 0 and y != 0]
        if tg:
            eg = max(e for _, e in tg)
            sums.append((sum(math.trunc(s * TWO**(e - eg + F)) for s, e in tg), eg))
    e_c = -126 if c == 0 else R._decode_se(c, f32)[1]
    if sums:
        e_dot = max(e for _, e in sums)
        I_dot = sum(math.floor(I * TWO**(e - e_dot)) for I, e in sums)
    else:
        e_dot, I_dot = e_c, 0
    e_max = max(e_dot, e_c)
    J_dot = math.floor(I_dot * TWO**(e_dot - F) / TWO**(e_max - F2 - 1))
    J_c = math.floor(Fraction(c) / TWO**(e_max - F))
    if groups == 2 and e_c < e_max - F - 1:
        J_c = 0
    V = J_dot * TWO**(e_max - F2 - 1) + J_c * TWO**(e_max - F)
    if V == 0:
        return 0.0
    e_v = max(R.floor_log2(abs(V)), -126)
    V2 = math.floor(V / TWO**(e_v - F2)) * TWO**(e_v - F2)
    return R.ref_round(V2, f32, "rne")  # a negative underflow gives -0 (as MMA-Sim)


def ref_cdna1(a, b, c, fa, fb):
    """ref_cdna1_step, except that an exactly zero sum is +0 (MMA-Sim; the reference
    follows IEEE 754 and gives -0 when every term is -0)."""
    r = R.ref_cdna1_step(a, b, c, fa, fb)
    if r == 0 and math.isfinite(c) and all(math.isfinite(x * y) for x, y in zip(a, b, strict=True)):
        if sum(Fraction(x) * Fraction(y) for x, y in zip(a, b, strict=True)) + Fraction(c) == 0:
            return 0.0
    return r


def ref_chain(step, a, b, c, L):
    for k in range(0, len(a), L):
        c = step(a[k:k + L], b[k:k + L], c)
    return c


def sample(rng, fmt, shape, mode):
    f = accsim.format(fmt)
    if mode == "gauss":
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(-2, 3, shape)
    elif mode == "spread":
        lo = max(f.emin - f.mantissa_bits, -60)
        x = np.ldexp(rng.uniform(1, 2, shape), rng.integers(lo, min(f.emax, 20), shape))
        x *= rng.choice([-1, 1], shape)
    elif mode == "pow2":  # exact ties at the truncation and rounding points
        x = np.ldexp(rng.choice([1.0, 1.5], shape), rng.integers(-30, 4, shape))
        x *= rng.choice([-1, 1], shape)
    elif mode == "tiny":
        x = np.ldexp(rng.uniform(0, 2, shape), rng.integers(f.emin - 3, f.emin + 2, shape))
        x *= rng.choice([-1, 1], shape)
    else:
        x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.15] = 0.0
    x = accsim.round(np.clip(x, -f.max / 4, f.max / 4), f)
    if mode == "special":
        r = rng.random(shape)
        if f.has_inf:
            x[r < 0.03] = np.inf
            x[(r > 0.03) & (r < 0.05)] = -np.inf
        x[r > 0.985] = np.nan
    return x


MODES = ["gauss", "spread", "pow2", "tiny", "special"]


# ------------------------------------------------------------------ families
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt,L,F2,odd_even,xf32", [
    ("binary16", 8, 31, False, False), ("bfloat16", 8, 31, False, False),
    ("tfloat32", 4, 31, False, True), ("float8_e4m3fnuz", 16, 31, True, False),
    ("float8_e5m2fnuz", 16, 31, True, False), ("binary16", 8, 28, False, False)])
def test_cdna3_matches_oracle(mode, fmt, L, F2, odd_even, xf32):
    m = FusedDot(name="t", a_format=fmt, b_format=fmt, L=L, F=24, out_rounding="rne-fp32",
                 c_separate=True, F2=F2, odd_even=odd_even, tf32_truncate=xf32)
    rng = np.random.default_rng(abs(hash((fmt, mode, F2))) % 2**32)
    K = 2 * L
    in_fmt = "binary32" if xf32 else fmt
    A = sample(rng, in_fmt, (3, K), mode)
    B = sample(rng, in_fmt, (K, 3), mode)
    C = sample(rng, "binary32", (3, 3), "special" if mode == "special" else mode)
    D = m.matmul(A, B, C)
    At, Bt = (truncate_tf32(A), truncate_tf32(B)) if xf32 else (A, B)
    fa = REF_FMT[m.a_format.name]()
    ref = np.array([[ref_chain(lambda a, b, c: ref_cdna3(a, b, c, fa, fa, 24, F2,
                                                         2 if odd_even else 1),
                               list(At[i]), list(Bt[:, j]), float(C[i, j]), L)
                     for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(bits(D), bits(ref))


def test_cdna3_floor_is_asymmetric():
    m = FusedDot(name="t", a_format="binary16", b_format="binary16", L=8, F=24,
                 out_rounding="rne-fp32", c_separate=True, F2=31)
    # 1 + 2^-24 + 2^-40: the tail is lost (F2 = 31) and the tie goes to even (1) ...
    a = [2.0**-12, 2.0**-20, 0, 0, 0, 0, 0, 0]
    b = [2.0**-12, 2.0**-20, 0, 0, 0, 0, 0, 0]
    assert m.dot(a, b, 1.0) == 1.0
    # ... but for the negative sum the floor moves away from zero past the tie
    na = [-x for x in a]
    assert m.dot(na, b, -1.0) == -(1 + 2.0**-23)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt,L", [("binary16", 4), ("bfloat16", 2)])
def test_cdna1_matches_reference(mode, fmt, L):
    m = ExactStep(name="t", a_format=fmt, b_format=fmt, L=L)
    rng = np.random.default_rng(abs(hash((fmt, mode))) % 2**32)
    K = 3 * L
    A = sample(rng, fmt, (3, K), mode)
    B = sample(rng, fmt, (K, 3), mode)
    C = sample(rng, "binary32", (3, 3), mode)
    D = m.matmul(A, B, C)
    f = REF_FMT[fmt]()
    ref = np.array([[ref_chain(lambda a, b, c: ref_cdna1(a, b, c, f, f),
                               list(A[i]), list(B[:, j]), float(C[i, j]), L)
                     for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(bits(D), bits(ref))


def test_cdna1_exact_tie_breaking():
    m = ExactStep(name="t", a_format="binary16", b_format="binary16", L=4)
    # 1 + 2^-24 is an fp32 tie: a tiny c decides, however far below it lies
    for c, want in ((2.0**-140, 1 + 2.0**-23), (-(2.0**-140), 1.0), (0.0, 1.0)):
        assert m.dot([1.0, 2.0**-12, 0, 0], [1.0, 2.0**-12, 0, 0], c) == want
    # cancellation leaves only c
    assert m.dot([2.0**15, -(2.0**15), 0, 0], [2.0, 2.0, 0, 0], 2.0**-149) == 2.0**-149
    # a negative sum below half the smallest subnormal rounds to -0; an exact zero is +0
    mb = ExactStep(name="t", a_format="bfloat16", b_format="bfloat16", L=2)
    d = mb.dot([-(2.0**-80), 0], [2.0**-80, 0])
    assert d == 0 and math.copysign(1, d) == -1
    d = mb.dot([-1.0, 1.0], [1.0, 1.0], -0.0)
    assert d == 0 and math.copysign(1, d) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt,P", [("binary16", 4), ("bfloat16", 4), ("bfloat16", 2)])
def test_cdna2_matches_reference(mode, fmt, P):
    m = FtzPairwiseStep(name="t", a_format=fmt, b_format=fmt, P=P, L=4 * P)
    rng = np.random.default_rng(abs(hash((fmt, mode, P))) % 2**32)
    K = 8 * P
    A = sample(rng, fmt, (3, K), mode)
    B = sample(rng, fmt, (K, 3), mode)
    C = sample(rng, "binary32", (3, 3), mode)
    D = m.matmul(A, B, C)
    f = REF_FMT[fmt]()
    ref = np.array([[R.ref_cdna2_step(list(A[i]), list(B[:, j]), float(C[i, j]), f, f, P=P)
                     for j in range(3)] for i in range(3)])
    # zero signs: MMA-Sim flushes inputs and c to +0, the reference keeps their sign
    np.testing.assert_array_equal(bits(D, True), bits(ref, True))


def test_cdna2_flushes_subnormals():
    m = FtzPairwiseStep(name="t", a_format="binary16", b_format="binary16", P=4, L=4)
    sub = 2.0**-20  # fp16 subnormal input: flushed
    assert m.dot([sub, 1, 0, 0], [1.0, 1, 0, 0]) == 1.0
    # product 2^-130 is an fp32 subnormal: flushed
    mb = FtzPairwiseStep(name="t", a_format="bfloat16", b_format="bfloat16", P=4, L=4)
    assert mb.dot([2.0**-65, 0, 0, 0], [2.0**-65, 0, 0, 0]) == 0.0
    assert mb.dot([2.0**-63, 0, 0, 0], [2.0**-63, 0, 0, 0]) == 2.0**-126


# ------------------------------------------------------------------ registered models
def _typed(rng, t, shape, mode="spread"):
    from hwmodels._typed import DTYPES

    dt, fname = DTYPES[t]
    if t in ("xf32", "f32"):
        return sample(rng, "binary32", shape, mode).astype(np.float32)
    if t == "f64":
        return rng.standard_normal(shape)
    return accsim.codecs.to_ml_dtypes(sample(rng, fname, shape, mode), fname)


@pytest.mark.parametrize("name", [f"{a}:mfma.{s}" for a, s in amd.instructions()])
def test_registered_model_matches_reference(name):
    model = hwmodels.get(name)
    acc = model.accumulator
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    K = 2 * model.k
    A = _typed(rng, model.a_type, (2, K))
    B = _typed(rng, model.b_type, (K, 2))
    C = _typed(rng, model.c_type, (2, 2), "gauss")
    D = model.matmul(A, B, C)
    assert D.dtype == model.d_dtype
    a64, b64, c64 = (accsim.formats.from_ml_dtypes(X) for X in (A, B, C))
    fa = REF_FMT[acc.a_format.name]()
    fb = REF_FMT[acc.b_format.name]()
    zeq = False
    if acc.family == "recursive":
        fo = REF_FMT[acc.out_format.name]()
        step, L = (lambda a, b, c: R.ref_fma_chain(a, b, c, fo)), K
    elif acc.family == "exact-step":
        step, L = (lambda a, b, c: ref_cdna1(a, b, c, fa, fb)), acc.L
    elif acc.family == "ftz-pairwise":
        step, L, zeq = (lambda a, b, c: R.ref_cdna2_step(a, b, c, fa, fb, P=acc.P)), K, True
    else:
        if acc.tf32_truncate:
            a64, b64 = truncate_tf32(a64), truncate_tf32(b64)
        def step(a, b, c):
            return ref_cdna3(a, b, c, fa, fb, acc.F, acc.F2, 2 if acc.odd_even else 1)

        L = acc.L
    ref = np.array([[ref_chain(step, list(a64[i]), list(b64[:, j]), float(c64[i, j]), L)
                     for j in range(2)] for i in range(2)])
    np.testing.assert_array_equal(bits(D.astype(np.float64), zeq), bits(ref, zeq))


@pytest.mark.parametrize("name,family,params", [
    ("cdna1:mfma.f32_32x32x8f16", "exact-step", dict(L=4)),
    ("cdna1:mfma.f32_32x32x4bf16", "exact-step", dict(L=2)),
    ("cdna2:mfma.f32_32x32x4bf16", "ftz-pairwise", dict(P=2)),
    ("cdna2:mfma.f32_32x32x8bf16_1k", "ftz-pairwise", dict(P=4)),
    ("cdna2:mfma.f32_32x32x8f16", "ftz-pairwise", dict(P=4)),
    ("cdna3:mfma.f32_32x32x8_bf16", "fused", dict(L=8, F=24, F2=31, odd_even=False)),
    ("cdna3:mfma.f32_32x32x4_2b_f16", "fused", dict(L=4)),
    ("cdna3:mfma.f32_16x16x8_xf32", "fused", dict(L=4, tf32_truncate=True)),
    ("cdna3:mfma.f32_16x16x32_fp8_bf8", "fused", dict(L=16, odd_even=True)),
    ("cdna3:mfma.f64_16x16x4_f64", "recursive", dict(product="fused")),
    ("cdna1:mfma.f32_32x32x2f32", "recursive", dict(product="fused")),
])
def test_parameters_follow_mmasim_tables(name, family, params):
    acc = hwmodels.get(name).accumulator
    assert acc.family == family
    for k, v in params.items():
        assert getattr(acc, k) == v, k


def test_amd_errors():
    with pytest.raises(ValueError, match="valid: .*mfma.f32_32x32x8_f16"):
        hwmodels.get("cdna3", "mfma.f32_32x32x8f16")  # CDNA1 spelling
    m = hwmodels.get("cdna3:mfma.f32_16x16x32_fp8_fp8")
    with pytest.raises(ValueError, match="float8_e4m3fnuz"):
        m.matmul(np.zeros((2, 32), np.float16), np.zeros((32, 2), np.float16))
    with pytest.raises(ValueError, match="P must be 2 or 4"):
        FtzPairwiseStep(name="t", a_format="fp16", b_format="fp16", P=3, L=6)
    with pytest.raises(ValueError, match="c_separate needs"):
        FusedDot(name="t", a_format="fp16", b_format="fp16", c_separate=True,
                 out_rounding="rne-fp32")
