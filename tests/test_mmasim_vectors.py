"""Bit-for-bit check of the NVIDIA / AMD models against frozen MMA-Sim outputs.

MMA-Sim (Xie, Wang, Yang, Yang, arXiv:2511.10909, 2025) is an independent simulator
validated bitwise on real GPUs; it needs torch, so the live cross-check
(``tests/test_mmasim_crosscheck.py``) is skipped in CI. ``tests/data/mmasim_vectors.npz``
holds inputs and MMA-Sim 2.1.1's outputs as raw bits for a representative set of
instructions (every architecture, every input / output type family, MX block-scaled
kinds, fp8, xf32, fp64; random and crafted cases chained along K), written by
``benchmarks/make_mmasim_vectors.py``. This test replays them through ``hwmodels`` without
torch or mmasim and compares the output bits exactly (NaN: both NaN, and the same bits
where the model promises the canonical NaN).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hwmodels

DATA = Path(__file__).resolve().parent / "data" / "mmasim_vectors.npz"
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _load():
    with np.load(DATA, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


VEC = _load()
NAMES = [str(n) for n in VEC["names"]]


def _typed(bits, dtype):
    dtype = np.dtype(dtype)
    assert bits.dtype == _UINT[dtype.itemsize], (bits.dtype, dtype)
    return bits.view(dtype)


def mismatches(model, j, vec=VEC):
    """Positions where the model's output for stored case j differs from MMA-Sim's."""
    A = _typed(vec[f"A{j}"], model.a_dtype)
    B = _typed(vec[f"B{j}"], model.b_dtype)
    C = _typed(vec[f"C{j}"], model.c_dtype)
    kw = {}
    if model.s_type:
        kw = dict(scale_a=_typed(vec[f"SA{j}"], model.s_dtype),
                  scale_b=_typed(vec[f"SB{j}"], model.s_dtype))
    D = np.ascontiguousarray(model.matmul(A, B, C, **kw))
    R = vec[f"D{j}"]
    ours = D.view(_UINT[D.dtype.itemsize])
    assert ours.dtype == R.dtype and ours.shape == R.shape
    bad = ours != R
    if not model.canonical_nan:  # NaN payloads unspecified: both NaN is enough
        bad &= ~(np.isnan(D.astype(np.float64)) & np.isnan(R.view(D.dtype).astype(np.float64)))
    return bad


def test_vectors_cover_the_families():
    archs = {n.split(":")[0] for n in NAMES}
    assert archs >= {"volta", "turing", "ampere", "ada", "hopper", "blackwell",
                     "rtx-blackwell", "cdna1", "cdna2", "cdna3"}
    assert any("wgmma" in n for n in NAMES) and any("tcgen05" in n for n in NAMES)
    assert any(hwmodels.get(n).s_type for n in NAMES)  # block-scaled MX
    types = {t for n in NAMES
             for t in (hwmodels.get(n).a_type, hwmodels.get(n).b_type, hwmodels.get(n).d_type)}
    assert types >= {"f16", "bf16", "tf32", "xf32", "e4m3", "e5m2", "fp8", "bf8", "e2m1",
                     "f32", "f64"}


@pytest.mark.parametrize("name", NAMES)
def test_bitwise_equal_to_frozen_mmasim(name):
    model = hwmodels.get(name)
    cases = np.flatnonzero(VEC["inst"] == NAMES.index(name))
    assert cases.size > 0
    nan_outputs = 0
    for j in cases:
        bad = mismatches(model, j)
        R = VEC[f"D{j}"]
        nan_outputs += int(np.isnan(R.view(model.d_dtype).astype(np.float64)).sum())
        if bad.any():
            i, k = (int(x) for x in np.argwhere(bad)[0])
            pytest.fail(f"{name} case {j} ({VEC['mode'][j]}): {int(bad.sum())}/{bad.size} "
                        f"outputs differ, first at ({i}, {k})")
    assert nan_outputs > 0  # the special cases reached the NaN path


def test_detects_a_flipped_output_bit():
    """The comparison is not vacuous: one flipped bit in a stored output is caught."""
    j = int(np.flatnonzero(VEC["inst"] == NAMES.index("ampere:mma.m16n8k16.f32.f16.f16.f32"))[0])
    model = hwmodels.get(NAMES[int(VEC["inst"][j])])
    vec = dict(VEC)
    R = vec[f"D{j}"].copy()
    R[0, 0] ^= 1
    vec[f"D{j}"] = R
    bad = mismatches(model, j, vec)
    assert bad.sum() == 1 and bad[0, 0]
