"""Block-scaled (OCP MX) NVIDIA instructions: ``FusedDot(block=..., group=...)`` and the
registered ``kind::mxf8f6f4`` / ``mxf4`` / ``mxf4nvf4`` models against the Fraction
reference ``tests/reference.py::ref_fused_step`` (scales, groups), bit for bit.

Facts: docs/hwmodels.md "Block-scaled MX formats" (F=25, L=32, RZ-FP32, e_zero=-133; mxf4 k=64:
groups of G=16 summed exactly, F=35); the grouped term and e_zero=-139 as MMA-Sim
(arXiv:2511.10909, ``gst_fdpa``); OCP MX v1.0 scales (E8M0, one per 32 elements of K).
RZ overflow gives inf as MMA-Sim (reference option ``rz_overflow="inf"``).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import reference as R

import hwmodels
from accsim.accumulators.fused import FusedDot
from hwmodels import nvidia

TYPES = {"e4m3": (ml_dtypes.float8_e4m3fn, R.float8_e4m3fn),
         "e5m2": (ml_dtypes.float8_e5m2, R.float8_e5m2),
         "e3m2": (ml_dtypes.float6_e3m2fn, R.float6_e3m2fn),
         "e2m3": (ml_dtypes.float6_e2m3fn, R.float6_e2m3fn),
         "e2m1": (ml_dtypes.float4_e2m1fn, R.float4_e2m1fn)}
MXF8 = "rtx-blackwell:mma.m16n8k32.kind::mxf8f6f4.block32.f32.{}.{}.f32.ue8m0"
MXF4 = "rtx-blackwell:mma.m16n8k64.kind::mxf4.block32.f32.e2m1.e2m1.f32.ue8m0"
NVF4 = "rtx-blackwell:mma.m16n8k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.f32.ue4m3"
# instruction k -> (F, L, e_zero, G): docs/hwmodels.md (k=32: F=25, L=32, e_zero=-133; k=64:
# G=16, F=35) and MMA-Sim nv_ptx/sim.py (k=64: L=64, e_zero=-139)
SPEC = {32: (25, 32, -133, 1), 64: (35, 64, -139, 16)}


def bits(x):
    """uint64 bits of float64 values, NaN canonicalised."""
    x = np.asarray(x, np.float64)
    b = x.view(np.uint64).copy()
    b[np.isnan(x)] = 0x7FF8000000000000
    return b


def operand(rng, t, shape, mode):
    """Random values of PTX type t (ml_dtypes array): uniform codes (no NaN), many zeros;
    ``special`` adds a few infinities / NaNs where the format has them."""
    dt = np.dtype(TYPES[t][0])
    nbits = {"e4m3": 8, "e5m2": 8, "e3m2": 6, "e2m3": 6, "e2m1": 4}[t]
    codes = rng.integers(0, 1 << nbits, shape).astype(np.uint8)
    X = codes.view(dt).copy()
    v = X.astype(np.float64)
    X[~np.isfinite(v)] = 0
    X[rng.random(shape) < 0.2] = 0
    if mode == "special" and t in ("e4m3", "e5m2"):
        r = rng.random(shape)
        X[r < 0.01] = np.nan
        if t == "e5m2":
            X[(r > 0.01) & (r < 0.02)] = np.inf
            X[(r > 0.02) & (r < 0.03)] = -np.inf
    return X


def scales(rng, s_type, shape, mode):
    """Block scales: near 1, over the whole range, the extremes (2^-127 / 2^127 for
    ue8m0: underflow below e_zero and overflow to inf), or with NaNs (and zeros and
    set sign bits for ue4m3)."""
    if s_type == "ue8m0":
        codes = {"near1": lambda: rng.integers(120, 135, shape),
                 "wide": lambda: rng.integers(0, 255, shape),
                 "extreme": lambda: rng.choice([0, 1, 127, 253, 254], shape),
                 "nan": lambda: np.where(rng.random(shape) < 0.15, 255,
                                         rng.integers(118, 138, shape))}[mode]()
        return codes.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)
    codes = {"near1": lambda: rng.integers(0x30, 0x48, shape),
             "wide": lambda: rng.integers(0, 0x7F, shape),
             "extreme": lambda: rng.choice([0x00, 0x01, 0x08, 0x38, 0x7E], shape),
             "nan": lambda: np.where(rng.random(shape) < 0.15, 0x7F,
                                     rng.integers(0x28, 0x50, shape))}[mode]()
    codes = codes | np.where(rng.random(shape) < 0.3, 0x80, 0)  # sign ignored
    return codes.astype(np.uint8).view(ml_dtypes.float8_e4m3fn)


def ref_mx(model, A, B, C, SA, SB):
    """Reference D of a registered MX model: chain of ref_fused_step over the
    instruction's k, every product with its two block scales."""
    F, L, e_zero, G = SPEC[model.k]
    fa, fb = TYPES[model.a_type][1](), TYPES[model.b_type][1]()
    sfmt = R.float8_e4m3fn() if model.s_type == "ue4m3" else None
    A, B, C = (np.asarray(X, np.float64) for X in (A, B, C))
    SA, SB = np.abs(SA.astype(np.float64)), np.abs(SB.astype(np.float64))
    M, K = A.shape
    N = B.shape[1]
    bs = model.block
    out = np.empty((M, N))
    for i in range(M):
        for j in range(N):
            c, cf = float(C[i, j]), R.binary32()
            for k0 in range(0, K, L):
                ks = range(k0, k0 + L)
                c = R.ref_fused_step([A[i, k] for k in ks], fa, [B[k, j] for k in ks], fb,
                                     c, cf, F, e_zero, out_rounding="rz-fp32",
                                     scale_a=[SA[i, k // bs] for k in ks],
                                     scale_b=[SB[k // bs, j] for k in ks], group=G,
                                     scale_fmt=sfmt, rz_overflow="inf")
            out[i, j] = c
    return out


def run(name, mode, smode, seed, M=3, N=3, ninst=2, zero_block=False):
    model = hwmodels.get(name)
    rng = np.random.default_rng(seed)
    K = model.k * ninst
    A = operand(rng, model.a_type, (M, K), mode)
    B = operand(rng, model.b_type, (K, N), mode)
    if zero_block:
        A[0, :model.block] = 0
        B[model.block:2 * model.block, 1] = 0
    C = (rng.standard_normal((M, N)) * 4).astype(np.float32)
    C[0, 0] = 0
    if smode == "extreme":
        C[1, 1] = np.float32(3e38)
    SA = scales(rng, model.s_type, (M, K // model.block), smode)
    SB = scales(rng, model.s_type, (K // model.block, N), smode)
    D = model.matmul(A, B, C, scale_a=SA, scale_b=SB)
    assert D.dtype == np.float32
    assert (D.view(np.uint32)[np.isnan(D)] == 0x7FFFFFFF).all()  # canonical NaN
    np.testing.assert_array_equal(bits(D.astype(np.float64)), bits(ref_mx(model, A, B, C,
                                                                          SA, SB)))
    return D


MX8_CASES = [("e4m3", "e4m3"), ("e5m2", "e2m1"), ("e3m2", "e2m3"), ("e2m1", "e5m2")]


@pytest.mark.parametrize("ab", MX8_CASES, ids="-".join)
@pytest.mark.parametrize("smode", ["near1", "wide", "extreme", "nan"])
def test_mxf8f6f4_matches_reference(ab, smode):
    mode = "special" if smode == "near1" else "codes"
    run(MXF8.format(*ab), mode, smode, seed=abs(hash((ab, smode))) % 2**32,
        zero_block=smode == "wide")


@pytest.mark.parametrize("name", [MXF4, NVF4,
                                  MXF4.replace("mxf4.", "mxf4nvf4.")])
@pytest.mark.parametrize("smode", ["near1", "wide", "extreme", "nan"])
def test_mxf4_grouped_matches_reference(name, smode):
    run(name, "codes", smode, seed=abs(hash((name, smode))) % 2**32,
        zero_block=smode == "near1")


def test_tcgen05_mx_same_arithmetic_as_mma():
    rng = np.random.default_rng(3)
    for mma, tc in ((MXF8.format("e4m3", "e2m1"),
                     "blackwell:tcgen05.mma.m128n64k32.kind::mxf8f6f4.block32.f32.e4m3.e2m1"
                     ".ue8m0"),
                    (MXF4, "blackwell:tcgen05.mma.m128n8k64.kind::mxf4.block32.f32.e2m1.e2m1"
                     ".ue8m0")):
        m1, m2 = hwmodels.get(mma), hwmodels.get(tc)
        A = operand(rng, m1.a_type, (4, 128), "codes")
        B = operand(rng, m1.b_type, (128, 5), "codes")
        SA = scales(rng, "ue8m0", (4, 4), "wide")
        SB = scales(rng, "ue8m0", (4, 5), "wide")
        C = np.ones((4, 5), np.float32)
        d1 = m1.matmul(A, B, C, scale_a=SA, scale_b=SB)
        d2 = m2.matmul(A, B, C, scale_a=SA, scale_b=SB)
        np.testing.assert_array_equal(d1.view(np.uint32), d2.view(np.uint32))


# ------------------------------------------------------------------ crafted cases
E8 = ml_dtypes.float8_e8m0fnu


def _one(name, a, b, sa, sb, c=0.0):
    m = hwmodels.get(name)
    k = m.k
    A = np.zeros((1, k))
    B = np.zeros((k, 1))
    A[0, :len(a)] = a
    B[:len(b), 0] = b
    A = A.astype(m.a_dtype)
    B = B.astype(m.b_dtype)
    nb = k // m.block
    SA = np.broadcast_to(np.asarray(sa, np.float64), (nb,)).reshape(1, nb).astype(m.s_dtype)
    SB = np.broadcast_to(np.asarray(sb, np.float64), (nb,)).reshape(nb, 1).astype(m.s_dtype)
    return float(m.matmul(A, B, np.array([[c]], np.float32), scale_a=SA, scale_b=SB)[0, 0])


def test_scales_multiply_every_product_exactly():
    name = MXF8.format("e4m3", "e4m3")
    assert _one(name, [1.5, 448.0], [3.0, 2.0], 2.0**-3, 2.0**5) == (4.5 + 896) * 4
    # extremes: 2^127 * 2^127 overflows fp32 -> +inf even under RZ (MMA-Sim)
    assert _one(name, [1.0], [1.0], 2.0**127, 2.0**127) == math.inf
    assert _one(name, [-1.0], [1.0], 2.0**127, 2.0**1) == -math.inf
    # 2^-127 * 2^-127: the product exponent (-254) is far below e_zero=-133 of the
    # zero c, so the aligned product truncates to 0
    assert _one(name, [1.0], [1.0], 2.0**-127, 2.0**-127) == 0.0
    # ... but with the product alone above e_zero it is kept (fp32 subnormal range)
    assert _one(name, [1.0], [1.0], 2.0**-127, 2.0**-3) == 2.0**-130
    assert math.isnan(_one(name, [0.0], [0.0], float("nan"), 1.0))  # NaN scale


def test_grouped_term_exponent_is_the_scale_exponent():
    # a group sum 0.25 (0.5*0.5) next to c = 2^12 with F=35: kept exactly
    assert _one(MXF4, [0.5], [0.5], 1.0, 1.0, 4096.0) == 4096.25
    # P = -576 (16 products -36) has exponent 0 (the scales'), not 9: c = 2^-12 (1 +
    # 2^-23) is aligned to e_max = 0 and keeps its 2^-35 bit, which makes the RZ result
    # one fp32 ulp smaller in magnitude than with a normalised group term (e_max = 9,
    # c truncated to 2^-12)
    c = 2.0**-12 * (1 + 2.0**-23)
    assert _one(MXF4, [6.0] * 16, [-6.0] * 16, 1.0, 1.0, c) == -(576 - 2.0**-12 - 2.0**-14)
    # F=35 below e_max: c = 2^-126 and a group -0.25 at scale exponent -159 is aligned
    # to -1 * 2^-161 and pulls the RZ result below 2^-126; at -161 it truncates to 0
    t = 2.0**-126
    assert _one(MXF4, [0.5], [-0.5], 2.0**-127, 2.0**-32, t) == t - 2.0**-149
    assert _one(MXF4, [0.5], [-0.5], 2.0**-127, 2.0**-34, t) == t
    # F=35 relative to the largest group exponent: groups 0, 1 (block 0, scale 1) cancel
    # (576 - 576), group 2 (block 1, scale 2^-x) holds 0.25: kept iff x <= 33
    a = [6.0] * 32 + [0.5]
    b = [6.0] * 16 + [-6.0] * 16 + [0.5]
    assert _one(MXF4, a, b, [1.0, 2.0**-33], 1.0) == 2.0**-35
    assert _one(MXF4, a, b, [1.0, 2.0**-34], 1.0) == 0.0
    # (e_zero=-139 itself cannot show through an fp32 result: a group it drops is below
    # 2^-149.) A tiny lone group next to a zero c:
    assert _one(MXF4, [0.5], [-0.5], 2.0**-100, 2.0**-10) == -0.25 * 2.0**-110


def test_registered_names_and_parameters():
    names = hwmodels.available()
    rtx = [n for n in names if n.startswith("rtx-blackwell:") and ".block" in n]
    assert len(rtx) == 25 + 4
    tc = [n for n in names if n.startswith("blackwell:tcgen05") and ".block" in n]
    assert len(tc) == (25 + 4) * len(nvidia.TCGEN05_MX_N)
    m = hwmodels.get(MXF8.format("e3m2", "e2m1"))
    acc = m.accumulator
    assert (acc.F, acc.L, acc.e_zero, acc.out_rounding, acc.group, acc.block) == (
        25, 32, -133, "rz-fp32", 1, 32)
    assert (m.k, m.s_type, m.block) == (32, "ue8m0", 32)
    acc = hwmodels.get(MXF4).accumulator
    assert (acc.F, acc.L, acc.e_zero, acc.group, acc.block) == (35, 64, -139, 16, 32)
    m = hwmodels.get(NVF4)
    assert (m.block, m.s_type, m.accumulator.scale_format.name) == (16, "ue4m3",
                                                                    "float8_e4m3fn")


def test_bad_scales_raise():
    m = hwmodels.get(MXF8.format("e4m3", "e4m3"))
    A = np.ones((2, 64), ml_dtypes.float8_e4m3fn)
    B = np.ones((64, 3), ml_dtypes.float8_e4m3fn)
    good_a, good_b = np.ones((2, 2), E8), np.ones((2, 3), E8)
    with pytest.raises(ValueError, match="scale_a has dtype"):
        m.matmul(A, B, scale_a=np.ones((2, 2)), scale_b=good_b)
    with pytest.raises(ValueError, match="scale_b has shape"):
        m.matmul(A, B, scale_a=good_a, scale_b=np.ones((3, 2), E8))
    plain = hwmodels.get("ampere:mma.m16n8k16.f32.f16.f16.f32")
    with pytest.raises(ValueError, match="not a block-scaled"):
        plain.matmul(np.ones((2, 16), np.float16), np.ones((16, 2), np.float16),
                     scale_a=good_a)
    # None: all scales 1
    d = m.matmul(A, B)
    assert (d == 64).all()
    fd = m.accumulator
    with pytest.raises(ValueError, match="not a float8_e8m0fnu"):
        fd.matmul(np.ones((2, 64)), np.ones((64, 3)), scale_a=np.full((2, 2), 3.0))
    with pytest.raises(ValueError, match="multiple of the scale block"):
        fd.matmul(np.ones((2, 48)), np.ones((48, 3)))
    with pytest.raises(ValueError, match="no block scales"):
        FusedDot(name="x", a_format="binary16", b_format="binary16").matmul(
            np.ones((1, 8)), np.ones((8, 1)), scale_a=np.ones((1, 1)))
    with pytest.raises(ValueError, match="multiple of group"):
        FusedDot(name="x", a_format="float4_e2m1fn", b_format="float4_e2m1fn", L=40,
                 F=35, group=16, block=16)
    with pytest.raises(ValueError, match="not exact"):
        FusedDot(name="x", a_format="binary16", b_format="binary16", L=64, F=35,
                 group=16, block=16)
    with pytest.raises(ValueError, match="scale_format"):
        FusedDot(name="x", a_format="float4_e2m1fn", b_format="float4_e2m1fn",
                 block=32, scale_format="binary16")


def test_unscaled_group_unit_and_matmul_values():
    # group without scales: exponent 0 for every group
    g = FusedDot(name="g", a_format="float4_e2m1fn", b_format="float4_e2m1fn", L=64, F=35,
                 e_zero=-139, group=16, block=16)
    rng = np.random.default_rng(9)
    A = operand(rng, "e2m1", (2, 64), "codes").astype(np.float64)
    B = operand(rng, "e2m1", (64, 2), "codes").astype(np.float64)
    D = g.matmul(A, B)
    fa = R.float4_e2m1fn()
    for i in range(2):
        for j in range(2):
            r = R.ref_fused_step(list(A[i]), fa, list(B[:, j]), fa, 0.0, R.binary32(), 35,
                                 -139, group=16)
            assert bits(D[i, j]) == bits(r)
    # matmul_values pads K with zero terms and uses unit scales
    m = hwmodels.get(MXF4)
    v = m.matmul_values(A[:, :40], B[:40])
    np.testing.assert_array_equal(v, A[:, :40] @ B[:40])
