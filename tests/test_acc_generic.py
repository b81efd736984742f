"""Generic accumulator families against the Fraction references (tests/reference.py), bit
for bit, in every rounding mode (SR fed the same random words)."""

import hashlib
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest
import reference as R  # noqa: E402
from helpers import (
    MODES,  # noqa: E402
    same_bits,
)

import accsim
import hwmodels
from accsim.accumulators.blocked import BlockedSum
from accsim.accumulators.factory import build_model
from accsim.accumulators.kahan import KahanSum
from accsim.accumulators.kulisch import KulischSum
from accsim.accumulators.pairwise import PairwiseSum
from accsim.accumulators.promotion import PromotedSum, chunk_seed
from accsim.accumulators.recursive import RecursiveSum
from accsim.accumulators.registry import family_names
from accsim.kernels.rng import random_words

REF = {"binary16": R.binary16, "bfloat16": R.bfloat16, "binary32": R.binary32,
       "float8_e4m3": R.float8_e4m3, "float8_e4m3fn": R.float8_e4m3fn,
       "float8_e5m2": R.float8_e5m2, "binary64": R.binary64}
_STREAM2 = 0xA5A5A5A5A5A5A5A5


def u_for(seed, stream, ctr, sr_bits):
    """The reference's u for the kernel's random word random_u64(seed, stream, ctr)."""
    w = int(random_words(seed, stream, [ctr])[0])
    if sr_bits is not None:
        return w >> (64 - sr_bits)
    w2 = int(random_words(seed, stream ^ _STREAM2, [ctr])[0])
    return Fraction(w, 2**64) + Fraction(w2 >> 11, 2**117)


def rand_for(seed, stream, ctrs, sr_bits):
    return lambda idx: u_for(seed, stream, ctrs[idx], sr_bits)


def data(rng, M, K, N, fmt="binary16", spread=12, specials=False):
    """Values of fmt: widely spread exponents, zeros, subnormals, cancellation."""
    def mat(shape):
        x = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, shape))
        x[rng.random(shape) < 0.1] = 0.0
        x[rng.random(shape) < 0.05] *= 2.0**-20  # subnormal range of fp16
        if specials:
            r = rng.random(shape)
            x[r < 0.04] = np.inf
            x[(r > 0.04) & (r < 0.07)] = -np.inf
            x[(r > 0.07) & (r < 0.09)] = np.nan
        return accsim.round(x, fmt)
    A, B, C = mat((M, K)), mat((K, N)), mat((M, N))
    if K >= 2:  # exact cancellation in row 0
        A[0, 1::2] = A[0, 0:-1:2]
        B[1::2, 0] = -B[0:-1:2, 0]
    return A, B, C


# ------------------------------------------------------------------ counter orders
def ctrs_recursive(K, rounded):
    out = [2 * K]
    for k in range(K):
        out += [2 * k + 1, 2 * k] if rounded else [2 * k]
    return out


def ctrs_blocked(K, b):
    out = [2 * K]
    for k0 in range(0, K, b):
        k1 = min(K, k0 + b)
        out += [2 * k for k in range(k0, k1)] + [2 * (k1 - 1) + 1]
    return out


def ctrs_pairwise(K):
    return [2 * K] + list(range(K)) + [K + m for m in range(max(K - 1, 0))] + \
        ([2 * K + 1] if K else [])


def ctrs_kahan(K):
    return [4 * K] + list(range(4 * K))


def check(model, ref_fn, ctr_fn, A, B, C, seed, sr_bits):
    D = model.matmul(A, B, C, seed=seed)
    M, N = D.shape
    K = A.shape[1]
    ref = np.empty_like(D)
    for i in range(M):
        for j in range(N):
            rand = rand_for(seed, i * N + j, ctr_fn(K), sr_bits)
            ref[i, j] = ref_fn(list(A[i]), list(B[:, j]), C[i, j], rand)
    ok = same_bits(D, ref)
    assert ok.all(), (model.describe(), np.argwhere(~ok)[:3], D[~ok][:3], ref[~ok][:3])


CASES = [(0, 1, 1, 1), (1, 3, 0, 2), (2, 2, 1, 3), (3, 4, 7, 4), (4, 2, 40, 3)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("acc", ["binary16", "bfloat16", "float8_e4m3"])
def test_recursive_exact_products(mode, acc):
    rng = np.random.default_rng(hash((mode, acc)) % 2**32)
    for sr_bits in ([None, 8] if mode == "sr" else [None]):
        for idx, (seed, M, K, N) in enumerate(CASES):
            A, B, C = data(rng, M, K, N, specials=idx == 3)
            for product in ("exact", "fused"):
                m = RecursiveSum(acc_format=acc, mode=mode, sr_bits=sr_bits, product=product)
                check(m, lambda a, b, c, rand, pr=product, sb=sr_bits: R.ref_recursive(
                    a, b, c, REF[acc](), mode, fused=pr == "fused", rand=rand, sr_bits=sb),
                    lambda K: ctrs_recursive(K, False), A, B, C, seed,
                    sr_bits)


@pytest.mark.parametrize("mode", MODES)
def test_recursive_rounded_products(mode):
    rng = np.random.default_rng(7)
    sr_bits = 12 if mode == "sr" else None
    for idx, (seed, M, K, N) in enumerate(CASES):
        A, B, C = data(rng, M, K, N, specials=idx == 3)
        m = RecursiveSum(acc_format="binary32", mode=mode, sr_bits=sr_bits, product="rounded",
                         product_format="bfloat16")
        check(m, lambda a, b, c, rand: R.ref_recursive(
            a, b, c, R.binary32(), mode, product_fmt=R.bfloat16(), rand=rand,
            sr_bits=sr_bits), lambda K: ctrs_recursive(K, True), A, B, C, seed, sr_bits)


@pytest.mark.parametrize("mode", MODES)
def test_blocked(mode):
    rng = np.random.default_rng(11)
    for block, inner, outer in ((8, "float8_e4m3", "float8_e4m3"), (3, "bfloat16", "binary16")):
        for idx, (seed, M, K, N) in enumerate(CASES):
            A, B, C = data(rng, M, K, N, fmt="float8_e4m3", spread=4, specials=idx == 3)
            m = BlockedSum(block=block, inner_format=inner, outer_format=outer, mode=mode)
            check(m, lambda a, b, c, rand, bl=block, fi=inner, fo=outer: R.ref_blocked(
                a, b, c, bl, REF[fi](), REF[fo](), mode, rand=rand),
                lambda K, bl=block: ctrs_blocked(K, bl), A, B, C, seed, None)


@pytest.mark.parametrize("mode", MODES)
def test_pairwise(mode):
    rng = np.random.default_rng(13)
    sr_bits = 5 if mode == "sr" else None
    for idx, (seed, M, K, N) in enumerate(CASES):
        A, B, C = data(rng, M, K, N, specials=idx == 3)
        m = PairwiseSum(acc_format="bfloat16", mode=mode, sr_bits=sr_bits)
        check(m, lambda a, b, c, rand: R.ref_pairwise(a, b, c, R.bfloat16(), mode, rand=rand,
                                                      sr_bits=sr_bits),
              ctrs_pairwise, A, B, C, seed, sr_bits)


@pytest.mark.parametrize("mode", MODES)
def test_kahan(mode):
    rng = np.random.default_rng(17)
    for idx, (seed, M, K, N) in enumerate(CASES):
        A, B, C = data(rng, M, K, N, specials=idx == 3)
        m = KahanSum(acc_format="binary16", mode=mode)
        check(m, lambda a, b, c, rand: R.ref_kahan(a, b, c, R.binary16(), mode, rand=rand),
              ctrs_kahan, A, B, C, seed, None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("out", ["binary16", "binary32", "binary64"])
def test_kulisch(mode, out):
    rng = np.random.default_rng(19)
    sr_bits = 16 if mode == "sr" else None
    for idx, (seed, M, K, N) in enumerate(CASES):
        A, B, C = data(rng, M, K, N, fmt="binary32", spread=120, specials=idx == 3)
        m = KulischSum(out_format=out, mode=mode, sr_bits=sr_bits)
        check(m, lambda a, b, c, rand: R.ref_kulisch(a, b, c, REF[out](), mode, u=rand(0),
                                                     sr_bits=sr_bits),
              lambda K: [0], A, B, C, seed, sr_bits)


def test_kulisch_huge_range_and_cancellation():
    big = float.fromhex("0x1.fffffep+127")
    tiny = 2.0**-149
    A = np.array([[big, tiny, -big, tiny, 1.0]])
    B = np.array([[big], [tiny], [big], [1.0], [tiny]])
    D = KulischSum(out_format="binary64").matmul(A, B)
    assert D[0, 0] == 2.0**-298 + 2 * 2.0**-149


@pytest.mark.parametrize("mode", ["rne", "rz", "sr"])
def test_promotion(mode):
    rng = np.random.default_rng(23)
    inner = RecursiveSum(acc_format="binary16", mode=mode)
    m = PromotedSum(inner=inner, chunk=4)
    for idx, (seed, M, K, N) in enumerate(CASES):
        A, B, C = data(rng, M, K, N, specials=idx == 3)
        D = m.matmul(A, B, C, seed=seed)
        for i in range(M):
            for j in range(N):
                chunks = iter(range(10**6))

                def low(a, b, c, i=i, j=j, chunks=chunks, seed=seed, N=N):
                    q = next(chunks)
                    s = chunk_seed(seed, q)
                    rand = rand_for(s, i * N + j,
                                    ctrs_recursive(len(a), False), None)
                    return R.ref_recursive(a, b, c, R.binary16(), mode, rand=rand)

                ref = R.ref_promoted(list(A[i]), list(B[:, j]), C[i, j], 4, low)
                assert same_bits(D[i, j], ref), (i, j, D[i, j], ref)


def test_fast_and_exact_paths_agree():
    rng = np.random.default_rng(29)
    A, B, C = data(rng, 9, 300, 37, spread=6)
    models = [RecursiveSum(acc_format=f, mode=mo, sr_bits=sb) for f in ("binary16", "bfloat16",
              "float8_e5m2", "binary32") for mo, sb in (("rne", None), ("sr", None),
                                                        ("sr", 7), ("rz", None), ("ru", None))]
    models += [RecursiveSum(acc_format="binary16", mode="rne", product="rounded",
                            product_format="float8_e5m2"),
               BlockedSum(block=8, inner_format="bfloat16", outer_format="binary32", mode="sr"),
               BlockedSum(block=8, inner_format="float8_e4m3", outer_format="float8_e4m3"),
               PairwiseSum(acc_format="binary16", mode="rd"),
               PairwiseSum(acc_format="binary16"), KahanSum(acc_format="bfloat16")]
    for m in models:
        fast = m._matmul(A, B, C, 5, fast=True)
        slow = m._matmul(A, B, C, 5, fast=False)
        assert same_bits(fast, slow).all(), m.describe()


RNE_FORMATS = ["float8_e4m3", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
               "float8_e5m2fnuz", "float6_e3m2fn", "float4_e2m1fn", "binary16", "bfloat16",
               "binary32"]


def _rne_models(fmt):
    return [RecursiveSum(acc_format=fmt, mode="rne"),
            BlockedSum(block=3, inner_format=fmt, outer_format=fmt, mode="rne"),
            BlockedSum(block=8, inner_format="float8_e4m3", outer_format=fmt, mode="rne"),
            PairwiseSum(acc_format=fmt, mode="rne"), KahanSum(acc_format=fmt, mode="rne")]


@pytest.mark.parametrize("fmt", RNE_FORMATS)
def test_rne_fast_path_fallbacks(fmt):
    """The vectorised RNE lanes (magic-constant rounding, subnormal/overflow/zero-sign
    handling, rare lanes redone exactly) agree bit for bit with the exact path and the
    Fraction reference, with subnormal targets, overflow (inf, NaN, saturation), NaN
    and inf inputs, and -0."""
    rng = np.random.default_rng(abs(hash(fmt)) % 2**32)
    f = accsim.format(fmt)
    small = f.p <= 4
    for idx, (M, K, N) in enumerate([(5, 60, 70), (4, 33, 9), (3, 17, 300)]):
        A, B, C = data(rng, M, K, N, fmt="float8_e4m3" if small else "binary16",
                       spread=4 if small else 9, specials=idx == 1)
        if idx == 2:  # big sums overflow the format, tiny ones are subnormal in it
            A *= accsim.round(np.array(min(f.max / 64, 128.0) if small else 2.0**6),
                              "float8_e4m3")
            A[1] *= 2.0**-12
            C[2] = -0.0
        A = accsim.round(A, "float8_e4m3" if small else "binary16")
        for m in _rne_models(fmt):
            fast = m._matmul(A, B, C, 3)
            slow = m._matmul(A, B, C, 3, fast=False)
            assert same_bits(fast, slow).all(), (m.describe(), idx)
        # the Fraction reference on a few outputs
        rf = getattr(R, fmt)()
        for i, j in [(0, 0), (M - 1, N - 1), (1, 2)]:
            ref = R.ref_recursive(list(A[i]), list(B[:, j]), C[i, j], rf, "rne")
            got = RecursiveSum(acc_format=fmt).matmul(A, B, C)[i, j]
            assert same_bits(got, ref), (fmt, idx, i, j, got, ref)
            ref = R.ref_blocked(list(A[i]), list(B[:, j]), C[i, j], 3, rf, rf, "rne")
            got = BlockedSum(block=3, inner_format=fmt, outer_format=fmt).matmul(A, B, C)
            assert same_bits(got[i, j], ref), (fmt, idx, i, j, got[i, j], ref)


def test_rne_double_rounding_guard():
    """RN_p(RN_53(v)) != RN_p(v) when the binary64 sum is inexact and lands on a p-bit
    midpoint: 2^-100 + (1 + 2^-8) into bf16 is 1 + 2^-7 (a plain 'round the binary64
    sum' gives 1). The guard (TwoSum error != 0 on a midpoint) sends it to round_dd."""
    from accsim.accumulators._checks import sums_exact

    bf = accsim.format("bfloat16")
    A = np.array([[1.0 + 2.0**-8]])
    B = np.array([[1.0]])
    C = np.array([[2.0**-100]])
    assert not sums_exact(A, B, C, [bf], 4)
    assert RecursiveSum(acc_format=bf).matmul(A, B, C)[0, 0] == 1.0 + 2.0**-7
    # blocked: the inner sum 2^-100 + (1 + 2^-8) (C enters the outer sum only)
    A2 = np.array([[2.0**-100, 1.0 + 2.0**-8]])
    B2 = np.array([[1.0], [1.0]])
    m = BlockedSum(block=2, inner_format=bf, outer_format="binary32")
    assert m.matmul(A2, B2)[0, 0] == 1.0 + 2.0**-7
    # pairwise and Kahan round the product first (tie to even: 1), then add 2^-100
    for m in (PairwiseSum(acc_format=bf), KahanSum(acc_format=bf)):
        assert m.matmul(A, B, C)[0, 0] == 1.0
    # random wide-range data: the guard is on and the results match the reference
    rng = np.random.default_rng(5)
    A = accsim.round(rng.standard_normal((3, 30)) * np.exp2(rng.integers(-60, 60, (3, 30))),
                     "bfloat16")
    B = accsim.round(rng.standard_normal((30, 4)) * np.exp2(rng.integers(-60, 60, (30, 4))),
                     "bfloat16")
    C = np.zeros((3, 4))
    m = RecursiveSum(acc_format="bfloat16")
    check(m, lambda a, b, c, rand: R.ref_recursive(a, b, c, R.bfloat16(), "rne"),
          lambda K: ctrs_recursive(K, False), A, B, C, 0, None)


def test_sums_exact_rule():
    from accsim.accumulators._checks import sums_exact

    rng = np.random.default_rng(3)
    A = accsim.round(rng.standard_normal((4, 64)) * 8, "float8_e4m3")
    B = accsim.round(rng.standard_normal((64, 5)), "float8_e4m3")
    f16, f32 = accsim.format("binary16"), accsim.format("binary32")
    assert sums_exact(A, B, None, [f16], 65)  # |x| <= 65504, multiples of 2^-18
    assert sums_exact(A, B, None, [f32], 65)  # bounded growth: |x| << 2^35
    assert not sums_exact(A, B, np.full((4, 5), 2.0**40), [f32], 65)
    Z = np.zeros((4, 64))
    assert sums_exact(Z, B, None, [f32], 65)
    # a product with bits far below 2^-53 times the largest sum: not provably exact
    A2 = A.copy()
    A2[0, 0] = 2.0**-60
    assert not sums_exact(A2, B, None, [f16], 65)


def test_kahan_one_compensation_per_output():
    rng = np.random.default_rng(31)
    A, B, C = data(rng, 3, 40, 4, spread=3)
    m = KahanSum(acc_format="binary16")
    D, comp = m.matmul_with_compensation(A, B, C)
    assert comp.shape == D.shape == (3, 4)
    for i in range(3):
        for j in range(4):  # replay the reference's Kahan loop and compare comp too
            s, c = R.ref_round(C[i, j], R.binary16()), 0.0
            for a, b in zip(A[i], B[:, j], strict=True):
                y = R.ref_sub(R._exact_mul(a, b), c, R.binary16())
                t = R.ref_add(s, y, R.binary16())
                c = R.ref_sub(R.ref_sub(t, s, R.binary16()), y, R.binary16())
                s = t
            assert same_bits(D[i, j], s) and same_bits(comp[i, j], c)


def test_sr_unbiased():
    # 1024 independent exact-SR accumulations of 64 copies of x into bf16
    x = 1.0 + 2.0**-9 + 2.0**-11  # not a bf16 sum increment: every rounding is inexact
    A = np.full((32, 64), x)
    B = np.ones((64, 32))
    D = RecursiveSum(acc_format="bfloat16", mode="sr").matmul(A, B, seed=3)
    exact = 64 * x
    err = D - exact
    assert abs(err.mean()) < 5 * err.std() / math.sqrt(err.size) + 1e-12
    Drn = RecursiveSum(acc_format="bfloat16", mode="rne").matmul(A, B)
    assert abs(Drn[0, 0] - exact) > 10 * abs(err.mean())  # RN is biased here


def test_threads_bit_identical():
    script = textwrap.dedent("""
        import hashlib, numpy as np, accsim
        from hwmodels import resolve
        rng = np.random.default_rng(0)
        A = accsim.round(rng.standard_normal((37, 70)) * 4, "bfloat16")
        B = accsim.round(rng.standard_normal((70, 300)), "bfloat16")
        h = hashlib.sha256()
        for spec in ["fp16-recursive-rne", "bf16-sr-accumulator", "fp8-promotion-128",
                     "fp16-pairwise", "fp16-kahan", "kulisch-fp32", "fp8-e4m3-blocked8",
                     {"family": "blocked", "block": 8, "inner_format": "bf16",
                      "outer_format": "fp32", "mode": "sr"}]:
            h.update(resolve(spec).matmul(A, B, seed=9).tobytes())
        print(h.hexdigest())
    """)
    outs = []
    for t in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=t)
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    assert outs[0] == outs[1]
    assert hashlib.sha256(b"").hexdigest() not in outs


def test_factory_and_validation():
    m = build_model({"family": "recursive", "acc_format": "fp16", "mode": "sr", "sr_bits": 8,
                     "product": "exact"})
    assert isinstance(m, RecursiveSum) and m.acc_format.name == "binary16" and m.sr_bits == 8
    p = build_model({"family": "promotion", "chunk": 16,
                     "inner": {"family": "recursive", "acc_format": "bf16"}})
    assert isinstance(p.inner, RecursiveSum) and p.out_format.name == "binary32"
    assert hwmodels.resolve("fp16-fma-chain").family == "recursive"
    assert set(family_names()) >= {"recursive", "blocked", "pairwise", "promotion", "kahan",
                                   "kulisch", "fused"}
    with pytest.raises(ValueError, match="hwmodels.resolve"):
        build_model("fp16-fma-chain")
    with pytest.raises(ValueError, match="unknown family .nope.; valid: .*recursive"):
        build_model({"family": "nope"})
    with pytest.raises(ValueError, match="valid: name"):
        build_model({"family": "kahan", "acc": "fp16"})
    with pytest.raises(ValueError, match="valid modes|valid:"):
        RecursiveSum(acc_format="fp16", mode="up")
    with pytest.raises(ValueError, match="p_a \\+ p_b"):
        RecursiveSum(a_format="binary32", b_format="binary64")
    with pytest.raises(ValueError, match="significant bits"):
        RecursiveSum().matmul(np.array([[0.1]]), np.array([[0.3]]))
    # the binary64 FMA chain accepts any binary64 inputs (hardware FMA)
    d = hwmodels.resolve("fp64-fma-chain").matmul(np.array([[0.1, 0.2]]), np.array([[0.3], [0.7]]))
    assert d[0, 0] == R.ref_fma(0.2, 0.7, 0.1 * 0.3, R.binary64())
