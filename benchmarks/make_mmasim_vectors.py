"""Freeze MMA-Sim outputs into test vectors that CI checks without torch / mmasim.

MMA-Sim (Xie, Wang, Yang, Yang, arXiv:2511.10909, 2025; PyPI ``mmasim``) is an
independent simulator of NVIDIA tensor cores and AMD matrix cores validated bitwise on
real GPUs. It needs torch, which CI does not install, so ``tests/test_mmasim_crosscheck.py``
is skipped there. This script runs MMA-Sim once on a representative set of instructions
(:data:`NAMES`: every architecture and every input / output type family, incl. the
block-scaled MX kinds, fp8, xf32 and fp64) and stores, as raw bit patterns, the inputs and
MMA-Sim's outputs in ONE compressed file ``tests/data/mmasim_vectors.npz``, which
``tests/test_mmasim_vectors.py`` replays through ``hwmodels`` and compares bit for bit.

Inputs come from the generators of ``benchmarks/crosscheck_mmasim.py`` (one case per
mode: Gaussian with cancellation, exponents spread over ~24 binades, powers of two (ties
at the truncation points), products just below e_zero, uniform bit patterns, subnormals
and zeros, a few inf/NaN), chained over ``NINST`` instructions along K, plus for the
non-MX instructions the crafted single-instruction probes of F / e_zero / F2
(:func:`crosscheck_mmasim.probe_cases`). MX instructions also get random block scales
(near 1, the whole range, the extremes 2^-127 / 2^127, NaN codes).

Run (MMA-Sim lives in its own venv)::

    PYTHONPATH=/work/main /tmp/vm/bin/python benchmarks/make_mmasim_vectors.py

Layout of the npz: ``names`` (instruction names), ``mmasim_version``; per case ``j``:
``inst`` [j] (index into ``names``), ``mode`` [j], and the arrays ``A{j}``, ``B{j}``,
``C{j}``, ``D{j}`` (MMA-Sim's output) and, for MX, ``SA{j}``, ``SB{j}``, each as the
unsigned-integer view (uint8/16/32/64) of the instruction's operand dtype.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import crosscheck_mmasim as cc  # noqa: E402
import torch  # noqa: E402

import hwmodels  # noqa: E402

OUT = ROOT / "tests/data/mmasim_vectors.npz"
M, N, NINST = 16, 8, 2
MODES = ("gauss", "spread", "pow2", "ezero", "bits", "tiny", "special")

NAMES = [
    # NVIDIA mma: Volta .. Hopper, f16/bf16/tf32/fp8/fp64 inputs, f16 and f32 outputs
    "volta:mma.m8n8k4.f32.f16.f16.f16", "volta:mma.m8n8k4.f16.f16.f16.f16",
    "turing:mma.m8n8k4.f16.f16.f16.f16", "turing:mma.m16n8k8.f32.f16.f16.f32",
    "ampere:mma.m16n8k16.f32.f16.f16.f32", "ampere:mma.m16n8k16.f16.f16.f16.f16",
    "ampere:mma.m16n8k8.f32.bf16.bf16.f32", "ampere:mma.m16n8k4.f32.tf32.tf32.f32",
    "ampere:mma.m8n8k4.f64.f64.f64.f64",
    "ada:mma.m16n8k32.f32.e4m3.e5m2.f32", "ada:mma.m16n8k16.f16.e5m2.e5m2.f16",
    "ada:mma.m16n8k16.f32.e4m3.e4m3.f32",
    "hopper:mma.m16n8k8.f16.f16.f16.f16", "hopper:mma.m16n8k16.f32.bf16.bf16.f32",
    # Hopper wgmma
    "hopper:wgmma.m64n8k32.f32.e4m3.e4m3", "hopper:wgmma.m64n8k32.f16.e5m2.e4m3",
    "hopper:wgmma.m64n8k16.f16.f16.f16", "hopper:wgmma.m64n256k16.f32.bf16.bf16",
    "hopper:wgmma.m64n16k8.f32.tf32.tf32",
    # Blackwell tcgen05
    "blackwell:tcgen05.mma.m128n64k32.kind::f8f6f4.f32.e2m1.e3m2",
    "blackwell:tcgen05.mma.m128n8k16.kind::f16.f32.bf16.bf16",
    "blackwell:tcgen05.mma.m128n8k16.kind::f16.f16.f16.f16",
    "blackwell:tcgen05.mma.m128n16k8.kind::tf32.f32.tf32.tf32",
    "blackwell:tcgen05.mma.m128n16k32.kind::mxf8f6f4.block32.f32.e2m3.e4m3.ue8m0",
    "blackwell:tcgen05.mma.m128n8k64.kind::mxf4nvf4.block32.f32.e2m1.e2m1.ue8m0",
    # RTX Blackwell, incl. block-scaled MX kinds
    "rtx-blackwell:mma.m16n8k32.kind::f8f6f4.f16.e2m3.e4m3.f16",
    "rtx-blackwell:mma.m16n8k32.kind::f8f6f4.f32.e2m1.e5m2.f32",
    "rtx-blackwell:mma.m16n8k32.kind::mxf8f6f4.block32.f32.e4m3.e5m2.f32.ue8m0",
    "rtx-blackwell:mma.m16n8k64.kind::mxf4.block32.f32.e2m1.e2m1.f32.ue8m0",
    "rtx-blackwell:mma.m16n8k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.f32.ue4m3",
    # AMD CDNA1/2/3: f16, bf16 (incl. _1k), f32, xf32, fp8/bf8, fp64
    "cdna1:mfma.f32_32x32x8f16", "cdna1:mfma.f32_32x32x2bf16", "cdna1:mfma.f32_32x32x2f32",
    "cdna2:mfma.f32_32x32x4bf16", "cdna2:mfma.f32_16x16x16bf16_1k",
    "cdna2:mfma.f64_16x16x4f64",
    "cdna3:mfma.f32_32x32x8_f16", "cdna3:mfma.f32_32x32x8_bf16", "cdna3:mfma.f32_16x16x8_xf32",
    "cdna3:mfma.f32_16x16x32_fp8_bf8", "cdna3:mfma.f32_16x16x32_fp8_fp8",
    "cdna3:mfma.f64_16x16x4_f64",
]


def _u(X):
    """Raw bits of a typed array (uint8/16/32/64 view)."""
    X = np.ascontiguousarray(X)
    return X.view(cc.UINT[X.dtype.itemsize]).copy()


def _rng(name, seed):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _special(value, dtype):
    """value (inf / NaN) in dtype: formats without inf (e4m3fn, fnuz) give their NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.array(value).astype(dtype)


def _inject_specials(A, B, C):
    """Make sure the "special" case reaches every inf / NaN path, whatever the input
    formats (the random codes of crosscheck_mmasim rarely hit the two e4m3 NaN codes and
    never produce inf / NaN for fp64): inf * 0, inf - inf, NaN inputs, inf / NaN in C."""
    inf, ninf = _special(np.inf, A.dtype), _special(-np.inf, A.dtype)
    A[0, 0] = inf
    B[0, 0] = 0  # inf * 0 in D[0, 0]
    A[1, 0], A[1, 1] = inf, ninf  # inf - inf where B[0, j], B[1, j] share a sign
    A[2, 2] = _special(np.nan, A.dtype)
    B[3, 1] = _special(np.inf, B.dtype)
    C[4, 0] = _special(np.inf, C.dtype)
    C[4, 1] = _special(-np.inf, C.dtype)
    C[5, 2] = _special(np.nan, C.dtype)


def _plain_cases(model, op, rng):
    """(mode, A, B, C, D_bits) for a non-MX instruction, MMA-Sim chained along K."""
    k = model.k
    acc = model.accumulator
    ctx = dict(e_zero=getattr(acc, "e_zero", -132), F=getattr(acc, "F", 24))
    out = []
    for mode in MODES:
        K = k * NINST
        A = cc._codes(rng, model.a_type, (M, K), mode, ctx)
        B = cc._codes(rng, model.b_type, (K, N), mode, ctx)
        C = np.asarray(cc._c_values(rng, model.c_type, (M, N), mode, ctx))
        C = C.astype(model.c_dtype)
        if mode == "special":
            _inject_specials(A, B, C)
        tc = cc._to_torch(C, model.c_type)
        for s in range(NINST):
            tc = op(cc._to_torch(A[:, s * k:(s + 1) * k], model.a_type),
                    cc._to_torch(B[s * k:(s + 1) * k], model.b_type), tc)
        out.append((mode, A, B, C, cc._from_torch(tc), None, None))
    probes = cc.probe_cases(model, rng)
    if probes:
        from accsim.numbers.codecs import to_ml_dtypes

        conv = []
        for X, t in ((np.array([c[0] for c in probes]), model.a_type),
                     (np.array([c[1] for c in probes]).T, model.b_type),
                     (np.diag([c[2] for c in probes]), model.c_type)):
            dt, fname = cc.DTYPES[t]
            conv.append(X.astype(dt) if dt.itemsize >= 4 else to_ml_dtypes(X, fname))
        A, B, C = conv
        R = cc._from_torch(op(cc._to_torch(A, model.a_type), cc._to_torch(B, model.b_type),
                              cc._to_torch(C, model.c_type)))
        out.append(("probe", A, B, C, R, None, None))
    return out


def _mx_cases(model, op, rng):
    """(mode, A, B, C, D_bits, SA, SB) for a block-scaled instruction."""
    k, bs = model.k, model.block
    kind = next(q for q in model.instruction.split(".") if q.startswith("kind::"))
    acc = model.accumulator
    ctx = dict(e_zero=acc.e_zero, F=acc.F)
    out = []
    for rep in range(len(cc.SCALE_MODES)):
        mode = MODES[rep % len(MODES)]
        smode = cc.SCALE_MODES[rep]
        K = k * NINST
        A = cc._codes(rng, model.a_type, (M, K), mode, ctx)
        B = cc._codes(rng, model.b_type, (K, N), mode, ctx)
        C = np.asarray(cc._c_values(rng, "f32", (M, N), "special" if rep == 3 else mode, ctx),
                       np.float32)
        if smode == "extreme":
            C[rng.random((M, N)) < 0.3] = np.float32(3e38)
        if rep % 3 == 2:
            A[:, :bs] = 0  # a zero block
        SA = cc._scales(rng, model.s_type, (M, K // bs), smode)
        SB = cc._scales(rng, model.s_type, (K // bs, N), smode)
        tc = torch.from_numpy(C.copy())
        nb = k // bs
        for s in range(NINST):
            tc = op(cc._mx_operand_to_torch(A[:, s * k:(s + 1) * k], model.a_type, kind),
                    cc._mx_operand_to_torch(B[s * k:(s + 1) * k], model.b_type, kind), tc,
                    cc._scale_to_torch(SA[:, s * nb:(s + 1) * nb], model.s_type),
                    cc._scale_to_torch(SB[s * nb:(s + 1) * nb], model.s_type))
        out.append((f"{mode}/{smode}", A, B, C, cc._from_torch(tc), SA, SB))
    return out


def build(names=NAMES, seed=0):
    """The npz payload (dict of arrays) and the number of stored outputs."""
    arrays, inst, modes = {}, [], []
    for i, name in enumerate(names):
        model = hwmodels.get(name)
        op = cc.mmasim_op(model)
        rng = _rng(name, seed)
        cases = (_mx_cases if model.s_type else _plain_cases)(model, op, rng)
        for mode, A, B, C, D, SA, SB in cases:
            j = len(inst)
            if D.dtype.itemsize != model.d_dtype.itemsize or D.shape != C.shape:
                raise RuntimeError(f"{name}: MMA-Sim output {D.dtype}{D.shape} does not "
                                   f"match d_type {model.d_dtype}")
            arrays[f"A{j}"], arrays[f"B{j}"] = _u(A), _u(B)
            arrays[f"C{j}"], arrays[f"D{j}"] = _u(C), np.ascontiguousarray(D).copy()
            if SA is not None:
                arrays[f"SA{j}"], arrays[f"SB{j}"] = _u(SA), _u(SB)
            inst.append(i)
            modes.append(mode)
    arrays["names"] = np.array(names)
    arrays["inst"] = np.array(inst, np.int32)
    arrays["mode"] = np.array(modes)
    arrays["mmasim_version"] = np.array(cc._version())
    outputs = sum(arrays[f"D{j}"].size for j in range(len(inst)))
    return arrays, outputs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    arrays, outputs = build(seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"{len(NAMES)} instructions, {len(arrays['inst'])} cases, {outputs} outputs, "
          f"{out.stat().st_size} bytes -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
