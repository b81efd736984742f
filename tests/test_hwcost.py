"""Hardware cost columns: the cited energy points, tile counting against a slow loop, a
layer's three columns against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accsim.accumulators.factory import build_model
from accsim.numbers.formats import format as get_format
from accsim.run import hwcost as hw
from accsim.run.cost import layer_cost

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def test_energy_scaling_reproduces_horowitz_points():
    f16, f32 = get_format("binary16"), get_format("binary32")
    assert hw.add_energy(f16) == pytest.approx(0.4, abs=1e-12)
    assert hw.add_energy(f32) == pytest.approx(0.9, abs=1e-12)
    assert hw.mul_energy(f16) == pytest.approx(1.1, abs=1e-12)
    assert hw.mul_energy(f32) == pytest.approx(3.7, abs=1e-12)
    e4m3, bf16 = get_format("float8_e4m3"), get_format("bfloat16")
    assert hw.add_energy(e4m3) < hw.add_energy(f16) == hw.add_energy(bf16)
    assert hw.mul_energy(e4m3) < min(hw.mul_energy(bf16), hw.mul_energy(f16))


def test_rate_classes_follow_the_h100_ratios():
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    bf = build_model({"family": "recursive", "acc_format": "bfloat16", "mode": "rne",
                      "product": "exact"})
    assert (hw.rate_class(lo), hw.rate_class(hi), hw.rate_class(bf)) == ("fp8", "fp16",
                                                                         "fp16")
    assert hw.pass_seconds(hi, 1e9) == pytest.approx(2 * hw.pass_seconds(lo, 1e9), rel=1e-4)


def test_tensor_core_instructions_run_at_the_rate_of_their_input_type():
    """H100 whitepaper: the dense rate is set by the input type, whatever the
    accumulator: e4m3 inputs with fp32 output at the FP8 rate (was TF32, priced by the
    fp32 accumulator), fp16 inputs with fp32 accumulation at the FP16 rate; a per-tensor
    scaled instruction as the unscaled one; software models by their working format."""
    from accsim.transformer.opclass import PerTensorScaled
    from hwmodels import resolve

    cases = {"hopper:wgmma.m64n8k32.f32.e4m3.e4m3": "fp8",
             "ampere:mma.m16n8k16.f32.f16.f16.f32": "fp16",
             "hopper:wgmma.m64n256k16.f32.bf16.bf16": "fp16",
             "ampere:mma.m16n8k8.f32.tf32.tf32.f32": "tf32",
             "ampere:mma.m8n8k4.f64.f64.f64.f64": "fp64"}
    for name, rc in cases.items():
        m = resolve(name)
        assert hw.rate_class(m) == rc, name
        assert hw.rate_class(PerTensorScaled(m)) == rc, name
    hop = resolve("hopper:wgmma.m64n8k32.f32.e4m3.e4m3")
    assert hw.pass_seconds(hop, 1e9) == hw.pass_seconds(build_model(dict(FP8)), 1e9)
    fp32 = build_model({"family": "recursive", "acc_format": "binary32", "mode": "rne",
                        "product": "exact"})
    assert hw.operand_formats(fp32) is None and hw.rate_class(fp32) == "tf32"


def test_tiles_touched_against_slow_loop():
    rng = np.random.default_rng(0)
    for shape in [(128, 16), (100, 13), (64, 8), (7, 3)]:
        m = rng.uniform(size=shape) < 0.02
        tiles = outs = 0
        for r0 in range(0, shape[0], 64):
            for c0 in range(0, shape[1], 8):
                blk = m[r0:r0 + 64, c0:c0 + 8]
                if blk.any():
                    tiles += 1
                    outs += blk.size
        assert hw.tiles_touched(m) == (tiles, outs)


def test_layer_hardware_columns_by_hand():
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    n = 100
    level = np.zeros((128, 16), np.int8)
    level[0, 0] = level[70, 9] = level[71, 9] = 1  # 3 recomputed, 2 tiles of 64x8
    c = layer_cost([lo, hi], level, n, estimate="low")
    e8, e16 = get_format("float8_e4m3"), get_format("binary16")
    ip8 = (n + 1) * (hw.mul_energy(e8) + hw.add_energy(e8)) + math.ceil((n + 1) / 8) \
        * hw.add_energy(e8)
    ip16 = (n + 1) * (hw.mul_energy(e16) + hw.add_energy(e16))
    reread = n * (8 + 32) * 10 / 64
    assert c.energy_pj == pytest.approx(2 * 2048 * ip8 + 3 * (ip16 + reread), rel=1e-12)
    t8, t16 = 1 / (1978.9e12 / 2), 1 / (989.4e12 / 2)
    assert c.h100_s == pytest.approx(2 * 2048 * n * t8 + 3 * n * t16, rel=1e-12)
    assert c.h100_tile_s == pytest.approx(2 * 2048 * n * t8 + 2 * 512 * n * t16, rel=1e-12)
    # a uniform pass: no estimate, no recomputation
    u = layer_cost([hi], np.zeros((128, 16), np.int8), n, estimate=False)
    assert u.energy_pj == pytest.approx(2048 * ip16) and u.h100_s == u.h100_tile_s
