"""Bit-for-bit cross-check of the NVIDIA / AMD models against MMA-Sim (arXiv:2511.10909),
an independent simulator validated on real GPUs. Skipped unless ``mmasim`` (and torch) is
importable; run the full sweep with ``benchmarks/crosscheck_mmasim.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mmasim")

_spec = importlib.util.spec_from_file_location(
    "crosscheck_mmasim", Path(__file__).resolve().parents[1] / "benchmarks/crosscheck_mmasim.py")
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)

NAMES = [
    "volta:mma.m8n8k4.f32.f16.f16.f16", "turing:mma.m8n8k4.f16.f16.f16.f16",
    "turing:mma.m16n8k8.f32.f16.f16.f32", "ampere:mma.m16n8k16.f32.f16.f16.f32",
    "ampere:mma.m16n8k16.f16.f16.f16.f16", "ampere:mma.m16n8k8.f32.bf16.bf16.f32",
    "ampere:mma.m16n8k4.f32.tf32.tf32.f32", "ampere:mma.m8n8k4.f64.f64.f64.f64",
    "ada:mma.m16n8k32.f32.e4m3.e5m2.f32", "ada:mma.m16n8k16.f16.e5m2.e5m2.f16",
    "hopper:mma.m16n8k8.f16.f16.f16.f16", "hopper:wgmma.m64n8k32.f32.e4m3.e4m3",
    "hopper:wgmma.m64n256k16.f32.bf16.bf16", "hopper:wgmma.m64n16k8.f32.tf32.tf32",
    "blackwell:tcgen05.mma.m128n64k32.kind::f8f6f4.f32.e2m1.e3m2",
    "rtx-blackwell:mma.m16n8k32.kind::f8f6f4.f16.e2m3.e4m3.f16",
    # block-scaled MX (random ue8m0 / ue4m3 scales incl. 2^-127, 2^127, NaN, zeros)
    "rtx-blackwell:mma.m16n8k32.kind::mxf8f6f4.block32.f32.e4m3.e5m2.f32.ue8m0",
    "rtx-blackwell:mma.m16n8k32.kind::mxf8f6f4.block32.f32.e3m2.e2m1.f32.ue8m0",
    "rtx-blackwell:mma.m16n8k64.kind::mxf4.block32.f32.e2m1.e2m1.f32.ue8m0",
    "rtx-blackwell:mma.m16n8k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.f32.ue4m3",
    "blackwell:tcgen05.mma.m128n16k32.kind::mxf8f6f4.block32.f32.e2m3.e4m3.ue8m0",
    "blackwell:tcgen05.mma.m128n8k64.kind::mxf4nvf4.block32.f32.e2m1.e2m1.ue8m0",
    "cdna1:mfma.f32_32x32x8f16", "cdna1:mfma.f32_32x32x2bf16",
    "cdna2:mfma.f32_32x32x4bf16", "cdna2:mfma.f32_16x16x16bf16_1k",
    "cdna3:mfma.f32_32x32x8_f16", "cdna3:mfma.f32_16x16x8_xf32",
    "cdna3:mfma.f32_16x16x32_fp8_bf8", "cdna3:mfma.f64_16x16x4_f64",
]


@pytest.mark.parametrize("name", NAMES)
def test_bitwise_equal_to_mmasim(name):
    cases, mismatches, example = cc.check_model(name, reps=8)
    assert cases > 0
    assert mismatches == 0, example
