"""accsim's recursive fp16 family against APyTypes, an independent simulator.

APyTypes (``APyFloatAccumulatorContext``) sums a matrix product left to right in a
custom floating-point accumulator, rounding each product into the operands' format
first. accsim's ``recursive`` family with ``product="rounded"`` into binary16 and a
binary16 accumulator specifies the same arithmetic, so the two must agree bit for bit.
The test checks accsim's results; where APyTypes is not installed it is skipped.
"""

import numpy as np
import pytest

import accsim
from accsim.accumulators.factory import build_model

apy = pytest.importorskip("apytypes")

FP16 = {"exp_bits": 5, "man_bits": 10}


def _apytypes_matmul(A, B):
    Aa = apy.APyFloatArray.from_float(A, **FP16)
    Ba = apy.APyFloatArray.from_float(B, **FP16)
    with apy.APyFloatAccumulatorContext(**FP16):
        return (Aa @ Ba).to_numpy()


@pytest.mark.parametrize("scale", [1.0, 2.0**-12, 4096.0])  # 4096: 58 % of outputs overflow
def test_fp16_rounded_products_bit_identical_to_apytypes(scale):
    """64 x 256 @ 256 x 64 (4096 outputs); the scales reach subnormal products, and
    partial sums that overflow to inf (and inf - inf = NaN)."""
    rng = np.random.default_rng(int(np.log2(scale)) + 100)
    A = accsim.round(rng.standard_normal((64, 256)) * scale, "fp16")
    B = accsim.round(rng.standard_normal((256, 64)), "fp16")
    model = build_model({"family": "recursive", "acc_format": "fp16",
                         "product": "rounded", "product_format": "fp16"})
    ours = model.matmul(A, B)
    theirs = _apytypes_matmul(A, B)
    same = ours.view(np.uint64) == theirs.view(np.uint64)
    assert same.all(), (np.count_nonzero(~same), ours[~same][:4], theirs[~same][:4])
