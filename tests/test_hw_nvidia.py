"""NVIDIA fused dot-product models (accsim.accumulators.fused.FusedDot, hwmodels.nvidia)
against the Fraction references of tests/reference.py, bit for bit.

Facts: docs/hwmodels.md "The fused, truncated dot-product-add"; MMA-Sim arXiv:2511.10909;
probes in the style of Fasi, Higham, Mikaitis, Pranesh, PeerJ CS 2021.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import reference as R

import accsim
import hwmodels
from accsim.accumulators.fused import FusedDot
from hwmodels import nvidia

REF_FMT = {"binary16": R.binary16, "bfloat16": R.bfloat16, "tfloat32": R.tfloat32,
           "binary32": R.binary32, "float8_e4m3fn": R.float8_e4m3fn,
           "float8_e5m2": R.float8_e5m2, "float6_e3m2fn": R.float6_e3m2fn,
           "float6_e2m3fn": R.float6_e2m3fn, "float4_e2m1fn": R.float4_e2m1fn}


def bits(x):
    """uint64 bits of float64 values with NaN canonicalised (the reference returns a
    plain NaN) and -0 kept."""
    x = np.asarray(x, np.float64)
    b = x.view(np.uint64).copy()
    b[np.isnan(x)] = 0x7FF8000000000000
    return b


def ref_matrix(model: FusedDot, A, B, C):
    out = np.empty((A.shape[0], B.shape[1]))
    fa, fb, fc = (REF_FMT[f.name]() for f in (model.a_format, model.b_format,
                                               model.c_format))
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            out[i, j] = R.ref_fused_chain(
                list(A[i]), list(B[:, j]), float(C[i, j]), fa, fb, fc, model.F,
                model.e_zero, out_rounding=model.out_rounding, L=model.L, trunc=model.trunc,
                pad=False)
    return out


def sample(rng, fmt, shape, mode):
    """Values of ``fmt`` (float64): cancellation-rich Gaussians, widely spread exponents,
    subnormals and zeros, or a few infinities / NaNs."""
    f = accsim.format(fmt)
    if mode == "gauss":
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(-2, 3, shape)
    elif mode == "spread":
        lo = max(f.emin - f.mantissa_bits, -40)
        x = np.ldexp(rng.uniform(1, 2, shape), rng.integers(lo, min(f.emax, 12), shape))
        x *= rng.choice([-1, 1], shape)
    elif mode == "tiny":
        x = np.ldexp(rng.uniform(0, 2, shape), rng.integers(f.emin - 4, f.emin + 2, shape))
        x *= rng.choice([-1, 1], shape)
    else:
        x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.15] = 0.0
    x = accsim.round(np.clip(x, -f.max / 8, f.max / 8), f)
    if mode == "special":
        r = rng.random(shape)
        if f.has_inf:
            x[r < 0.04] = np.inf
            x[(r > 0.04) & (r < 0.07)] = -np.inf
        if f.has_nan:
            x[r > 0.985] = np.nan
    return x


CONFIGS = [  # (a_format, out_rounding, L, F, e_zero, c_format)
    ("binary16", "rz-fp32", 8, 24, -132, "binary32"),
    ("binary16", "rne-fp16", 16, 25, -21, "binary16"),
    ("binary16", "rz-fp32", 4, 23, -131, "binary16"),  # Volta m8n8k4 .f16 C, .f32 D
    ("bfloat16", "rz-fp32", 16, 25, -133, "binary32"),
    ("tfloat32", "rz-fp32", 4, 24, -132, "binary32"),
    ("float8_e4m3fn", "rz-e8m13", 32, 13, -133, "binary32"),
    ("float8_e5m2", "rne-fp16", 32, 13, -21, "binary16"),
    ("float8_e4m3fn", "rz-fp32", 32, 25, -133, "binary32"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-L{c[2]}-F{c[3]}")
@pytest.mark.parametrize("mode", ["gauss", "spread", "tiny", "special"])
def test_fused_matches_reference(cfg, mode):
    af, rho, L, F, ez, cf = cfg
    model = FusedDot(name="t", a_format=af, b_format=af, c_format=cf, L=L, F=F, e_zero=ez,
                     out_rounding=rho, tf32_truncate=af == "tfloat32")
    rng = np.random.default_rng(abs(hash((cfg, mode))) % 2**32)
    K = 2 * L + L // 2  # a last partial step too
    in_fmt = "binary32" if af == "tfloat32" else af
    A = sample(rng, in_fmt, (3, K), mode)
    B = sample(rng, in_fmt, (K, 3), mode)
    C = sample(rng, cf, (3, 3), "special" if mode == "special" else "gauss")
    D = model.matmul(A, B, C)
    np.testing.assert_array_equal(bits(D), bits(ref_matrix(model, A, B, C)))


def test_floor_truncation_matches_reference():
    model = FusedDot(name="t", a_format="binary16", b_format="binary16", L=8, F=24,
                     e_zero=-132, trunc="floor")
    rng = np.random.default_rng(5)
    A = sample(rng, "binary16", (3, 16), "spread")
    B = sample(rng, "binary16", (16, 3), "spread")
    C = sample(rng, "binary32", (3, 3), "gauss")
    np.testing.assert_array_equal(bits(model.matmul(A, B, C)), bits(ref_matrix(model, A, B, C)))


# ------------------------------------------------------------------ probes (Fasi et al.)
def unit(F=24, L=4, rho="rz-fp32", ez=-132, af="binary16"):
    return FusedDot(name="probe", a_format=af, b_format=af, L=L, F=F, e_zero=ez,
                    out_rounding=rho)


def probe(model, a, b, c=0.0):
    d = model.dot(a, b, c)
    fa = REF_FMT[model.a_format.name]()
    r = R.ref_fused_step(a, fa, b, fa, c, REF_FMT[model.c_format.name](), model.F,
                         model.e_zero, out_rounding=model.out_rounding)
    assert bits(d) == bits(r)
    return d


def test_products_are_exact():
    # (1 + 2^-10)^2 = 1 + 2^-9 + 2^-20 needs 21 bits: kept exactly, fp32 output
    x = 1 + 2.0**-10
    assert probe(unit(), [x, 0, 0, 0], [x, 0, 0, 0]) == x * x


def test_alignment_truncates_without_sticky_bit():
    # 1 + 2^-25 + 2^-25: each small term is below F=24 fractional bits of e_max = 0 and
    # is lost on alignment (a sticky bit or a sequential sum would keep 2^-24)
    assert probe(unit(), [1, 2.0**-13, 2.0**-12, 0], [1, 2.0**-12, 2.0**-13, 0]) == 1.0
    # with F=25 (Hopper) they survive: 1 + 2^-24 rounds toward zero to 1 in fp32 ...
    assert probe(unit(F=25), [1, 2.0**-13, 2.0**-12, 0], [1, 2.0**-12, 2.0**-13, 0]) == 1.0
    # ... but after cancellation of the 1 they are visible
    d = probe(unit(F=25), [1, -1, 2.0**-13, 2.0**-12], [1, 1, 2.0**-12, 2.0**-13])
    assert d == 2.0**-24
    assert probe(unit(F=24), [1, -1, 2.0**-13, 2.0**-12], [1, 1, 2.0**-12, 2.0**-13]) == 0.0


def test_truncation_toward_zero_is_symmetric():
    # 1 + 2^-23 + 2^-24 is kept by the adder; RZ-FP32 drops 2^-24 for both signs (RNE
    # would round the tie to 1 + 2^-22)
    d_pos = probe(unit(), [1, 2.0**-11, 0, 0], [1, 2.0**-12 * 1.5, 0, 0])
    d_neg = probe(unit(), [-1, -(2.0**-11), 0, 0], [1, 2.0**-12 * 1.5, 0, 0])
    assert d_pos == -d_neg == 1 + 2.0**-23
    # and 1.5 * 2^-25 below F=24 fractional bits is lost entirely on alignment
    assert probe(unit(), [1, 2.0**-13, 0, 0], [1, 2.0**-12 * 1.5, 0, 0]) == 1.0


def test_no_normalisation_inside_a_step_and_carry_out():
    # four products of (2 - 2^-10)^2 < 4: the sum carries out of the leading bit; the
    # exact sum is kept (wide adder) and rounded once
    x = 2 - 2.0**-10
    d = probe(unit(), [x] * 4, [x] * 4)
    assert d == float(np.float32(4 * x * x)) or d == math.ldexp(
        math.floor(math.ldexp(4 * x * x, 21)), -21)


def test_where_c_enters():
    # c enters the same alignment: a large c truncates the products
    d = probe(unit(), [2.0**-13, 0, 0, 0], [2.0**-12, 0, 0, 0], c=1.0)
    assert d == 1.0  # 2^-25 is lost against c = 1 (F = 24)
    d = probe(unit(F=25), [1, -1, 2.0**-13, 0], [1, 1, 2.0**-12, 0], c=1.0)
    assert d == 1.0  # c's own bits are exact, 2^-25 is kept but RZ drops it


def test_e_zero_effect():
    # a single tiny bf16 product with zeros around: aligned to e_zero (-133 on Hopper,
    # fp32 output) it survives iff its exponent is >= e_zero - F
    m = unit(F=25, ez=-133, af="bfloat16", L=4)
    keep = probe(m, [2.0**-79, 0, 0, 0], [2.0**-79, 0, 0, 0])  # 2^-158 = 2^(ez - F)
    lost = probe(m, [2.0**-80, 0, 0, 0], [2.0**-79, 0, 0, 0])  # 2^-159
    assert keep == 0.0 or keep == 2.0**-158  # below fp32's range: flushes in RZ
    assert lost == 0.0
    # the effect is visible through cancellation against c... products are kept when
    # e_zero is smaller
    m2 = unit(F=25, ez=-140, af="bfloat16", L=4)
    d1 = probe(m, [2.0**-60, 2.0**-80, 0, 0], [2.0**-60, 2.0**-79, 0, 0])
    d2 = probe(m2, [2.0**-60, 2.0**-80, 0, 0], [2.0**-60, 2.0**-79, 0, 0])
    assert d1 == d2 == 2.0**-120


def test_output_overflow_and_specials():
    m = unit(af="bfloat16")
    big = 2.0**127
    # RZ-FP32 overflow gives +inf (MMA-Sim: the truncated value >= 2^128 converts to inf)
    assert m.dot([big, big, 0, 0], [1.5, 1.5, 0, 0]) == math.inf
    assert math.isnan(m.dot([math.inf, 0, 0, 0], [0.0, 1, 0, 0]))  # 0 * inf
    assert math.isnan(m.dot([math.inf, math.inf, 0, 0], [1.0, -1.0, 0, 0]))  # inf - inf
    assert m.dot([math.inf, 1, 0, 0], [1.0, 1.0, 0, 0], 5.0) == math.inf
    # negative zero results are +0
    d = m.dot([-1.0, 1.0, 0, 0], [1.0, 1.0, 0, 0], -0.0)
    assert d == 0 and math.copysign(1, d) == 1
    d = m.dot([-0.0, 0, 0, 0], [1.0, 1.0, 0, 0], -0.0)
    assert math.copysign(1, d) == 1


def test_tf32_inputs_are_truncated():
    m = FusedDot(name="t", a_format="tfloat32", b_format="tfloat32", L=4, F=24,
                 tf32_truncate=True)
    x = 1 + 2.0**-10 + 2.0**-11 + 2.0**-20  # fp32 value; tf32 keeps 1 + 2^-10
    assert m.dot([x, 0, 0, 0], [1.0, 0, 0, 0]) == 1 + 2.0**-10
    assert m.dot([-x, 0, 0, 0], [1.0, 0, 0, 0]) == -(1 + 2.0**-10)


# ------------------------------------------------------------------ registered models
def _distinct_nvidia_models():
    seen = {}
    for name in hwmodels.available():
        if name.split(":")[0] not in nvidia.ARCH_PARAMS:
            continue
        m = hwmodels.get(name)
        d = m.accumulator.describe()
        key = tuple(sorted((k, v) for k, v in d.items() if k not in ("name", "source")))
        seen.setdefault(key, m)
    return list(seen.values())


MODELS = _distinct_nvidia_models()


def typed(rng, t, shape, mode="spread"):
    from hwmodels._typed import DTYPES

    dt, fname = DTYPES[t]
    if t in ("tf32", "f32"):
        x = sample(rng, "binary32", shape, mode)
        if t == "tf32":  # full fp32 inputs: the model truncates them
            x = x * (1 + 2.0**-20)
        return accsim.round(x, accsim.format("binary32")).astype(np.float32)
    if t == "f64":
        return rng.standard_normal(shape)
    x = sample(rng, fname, shape, mode)
    return accsim.codecs.to_ml_dtypes(x, fname)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_registered_model_matches_reference(model):
    rng = np.random.default_rng(abs(hash(model.name)) % 2**32)
    K = 2 * model.k
    A = typed(rng, model.a_type, (2, K))
    B = typed(rng, model.b_type, (K, 2))
    C = typed(rng, model.c_type, (2, 2), "gauss")
    D = model.matmul(A, B, C)
    assert D.dtype == model.d_dtype and D.shape == (2, 2)
    a64, b64, c64 = (accsim.formats.from_ml_dtypes(X) for X in (A, B, C))
    acc = model.accumulator
    if model.a_type == "f64":
        ref = np.array([[R.ref_fma_chain(list(a64[i]), list(b64[:, j]), c64[i, j])
                         for j in range(2)] for i in range(2)])
    else:
        ref = ref_matrix(acc, a64, b64, c64)
    np.testing.assert_array_equal(bits(D.astype(np.float64)), bits(ref))


def test_every_architecture_registered():
    names = hwmodels.available()
    for arch in nvidia.ARCH_PARAMS:
        assert any(n.startswith(arch + ":") for n in names), arch
    for n in ("ampere:mma.m16n8k16.f32.f16.f16.f32", "ampere:mma.m16n8k16.f16.f16.f16.f16",
              "ampere:mma.m16n8k8.f32.tf32.tf32.f32", "ada:mma.m16n8k32.f32.e4m3.e4m3.f32",
              "volta:mma.m8n8k4.f32.f16.f16.f32", "hopper:wgmma.m64n8k16.f32.bf16.bf16",
              "hopper:wgmma.m64n256k32.f32.e5m2.e4m3", "hopper:wgmma.m64n8k16.f16.f16.f16",
              "blackwell:tcgen05.mma.m128n256k16.kind::f16.f32.bf16.bf16",
              "rtx-blackwell:mma.m16n8k32.kind::f8f6f4.f32.e2m1.e3m2.f32"):
        assert n in names, n


@pytest.mark.parametrize("name,F,L,ez,rho", [
    ("volta:mma.m8n8k4.f32.f16.f16.f32", 23, 4, -131, "rz-fp32"),
    ("turing:mma.m8n8k4.f16.f16.f16.f16", 23, 4, -19, "rne-fp16"),
    ("turing:mma.m16n8k8.f32.f16.f16.f32", 24, 8, -132, "rz-fp32"),
    ("ampere:mma.m16n8k8.f32.tf32.tf32.f32", 24, 4, -132, "rz-fp32"),
    ("ada:mma.m16n8k32.f32.e4m3.e5m2.f32", 13, 16, -132, "rz-e8m13"),
    ("ada:mma.m16n8k32.f16.e4m3.e4m3.f16", 13, 16, -20, "rne-fp16"),
    ("hopper:mma.m16n8k8.f16.f16.f16.f16", 25, 8, -21, "rne-fp16"),
    ("hopper:wgmma.m64n8k32.f32.e4m3.e4m3", 13, 32, -133, "rz-e8m13"),
    ("hopper:wgmma.m64n8k8.f32.tf32.tf32", 25, 8, -133, "rz-fp32"),
    ("rtx-blackwell:mma.m16n8k32.f32.e4m3.e4m3.f32", 25, 32, -133, "rz-fp32"),
])
def test_parameters_follow_mmasim_tables(name, F, L, ez, rho):
    acc = hwmodels.get(name).accumulator
    assert (acc.F, acc.L, acc.e_zero, acc.out_rounding) == (F, L, ez, rho)


# ------------------------------------------------------------------ typed API
def test_typed_api_errors():
    m = hwmodels.get("ampere", "mma.m16n8k16.f32.f16.f16.f32")
    A = np.zeros((4, 32), np.float16)
    B = np.zeros((32, 3), np.float16)
    with pytest.raises(ValueError, match="operand A .*float16"):
        m.matmul(A.astype(np.float32), B)
    with pytest.raises(ValueError, match="operand C"):
        m.matmul(A, B, np.zeros((4, 3), np.float16))
    with pytest.raises(ValueError, match="multiple of the instruction's k=16"):
        m.matmul(A[:, :24], B[:24])
    with pytest.raises(ValueError, match="inner dimensions"):
        m.matmul(A, B[:16])
    with pytest.raises(ValueError, match="valid: .*mma.m16n8k16.f32.bf16.bf16.f32"):
        hwmodels.get("ampere", "mma.m16n8k99.f32.f16.f16.f32")
    with pytest.raises(ValueError, match="unknown architecture"):
        hwmodels.get("pascal", "mma.m16n8k16.f32.f16.f16.f32")
    D = m.matmul(A, B)
    assert D.dtype == np.float32 and D.shape == (4, 3)


def test_typed_canonical_nan_and_dtypes():
    m = hwmodels.get("hopper:wgmma.m64n8k16.f16.f16.f16")
    A = np.ones((2, 16), np.float16)
    A[0, 0] = np.inf
    B = np.ones((16, 2), np.float16)
    B[1, 1] = -np.inf  # row 0, column 1: inf - inf
    D = m.matmul(A, B, np.zeros((2, 2), np.float16))
    assert D.dtype == np.float16
    assert D.view(np.uint16)[0, 0] == 0x7C00 and D.view(np.uint16)[0, 1] == 0x7FFF
    m = hwmodels.get("hopper:wgmma.m64n8k32.f32.e4m3.e4m3")
    A = np.full((2, 32), np.nan).astype(ml_dtypes.float8_e4m3fn)
    D = m.matmul(A, np.ones((32, 2)).astype(ml_dtypes.float8_e4m3fn))
    assert (D.view(np.uint32) == 0x7FFFFFFF).all()


def test_typed_matmul_values_pads_k():
    m = hwmodels.get("ampere:mma.m16n8k16.f32.f16.f16.f32")
    rng = np.random.default_rng(0)
    A = accsim.round(rng.standard_normal((3, 20)), accsim.format("fp16"))
    B = accsim.round(rng.standard_normal((20, 2)), accsim.format("fp16"))
    D = m.matmul_values(A, B)
    Ap = np.concatenate([A, np.zeros((3, 12))], 1).astype(np.float16)
    Bp = np.concatenate([B, np.zeros((12, 2))], 0).astype(np.float16)
    np.testing.assert_array_equal(D, m.matmul(Ap, Bp).astype(np.float64))
    assert m.describe()["arch"] == "ampere" and "MMA-Sim" in m.source


_THREAD_SCRIPT = """
import numpy as np, accsim, hwmodels, sys
rng = np.random.default_rng(1)
out = []
for name in ("hopper:wgmma.m64n8k32.f32.e4m3.e4m3", "ampere:mma.m16n8k16.f32.f16.f16.f32",
             "cdna3:mfma.f32_16x16x32_fp8_fp8", "cdna1:mfma.f32_32x32x8f16",
             "cdna2:mfma.f32_32x32x8f16", "cdna3:mfma.f32_32x32x8_f16"):
    m = hwmodels.get(name)
    fa = m.accumulator.a_format
    A = accsim.codecs.to_ml_dtypes(rng.standard_normal((37, 64)) * 4, fa)
    B = accsim.codecs.to_ml_dtypes(rng.standard_normal((64, 29)), fa)
    out.append(m.matmul(A, B).view(np.uint32))
np.save(sys.argv[1], np.concatenate([o.ravel() for o in out]))
"""


def test_bits_independent_of_thread_count(tmp_path):
    res = []
    for nt in (1, 2):
        f = tmp_path / f"t{nt}.npy"
        env = dict(os.environ, NUMBA_NUM_THREADS=str(nt))
        subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, str(f)], check=True, env=env,
                       cwd=Path(__file__).resolve().parents[1], timeout=300)
        res.append(np.load(f))
    np.testing.assert_array_equal(res[0], res[1])
