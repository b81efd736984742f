"""``accsim.transformer.opclass.matmul_batch``: many products of different shapes in one
batched kernel call give, bit for bit, the products computed one call each (the MiniLM
attention products: tests/test_minilm_graph.py)."""

from __future__ import annotations

import numpy as np
import pytest

from accsim.transformer.opclass import matmul_batch, matmul_op, resolve_model

SHAPES = [(29, 32, 29), (3, 32, 3), (70, 32, 300), (29, 29, 32), (5, 13, 32), (1, 1, 1)]


def _operands(seed=0, special=False):
    rng = np.random.default_rng(seed)
    As = [rng.standard_normal((m, k)) * 2.0 ** rng.integers(-8, 8) for m, k, _ in SHAPES]
    Bs = [rng.standard_normal((k, n)) for _, k, n in SHAPES]
    if special:  # a zero product, an infinite and a NaN operand
        As[1][:] = 0.0
        As[3][2, 5] = np.inf
        Bs[4][0, 1] = np.nan
    # binary32 values: every recursive model below takes them as they are
    return ([a.astype(np.float32).astype(np.float64) for a in As],
            [b.astype(np.float32).astype(np.float64) for b in Bs])


MODELS = {
    "fp16 rne": {"family": "recursive", "acc_format": "binary16", "mode": "rne",
                 "product": "exact"},
    "bf16 sr": {"family": "recursive", "acc_format": "bfloat16", "mode": "sr",
                "product": "exact"},
    "fp16 rounded products rz": {"family": "recursive", "acc_format": "binary16",
                                 "mode": "rz", "product": "rounded",
                                 "product_format": "binary16"},
    "fp8 TC": "hopper:wgmma.m64n8k32.f32.e4m3.e4m3",
    "fp16 TC": "hopper:wgmma.m64n8k16.f32.f16.f16",
    "blocked (no batched kernel)": {"family": "blocked", "block": 8,
                                    "inner_format": "binary16",
                                    "outer_format": "binary32", "mode": "rne"},
    "fp64": "fp64",
}


@pytest.mark.parametrize("special", [False, True])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_batch_equals_one_call_each(name, special):
    model = resolve_model(MODELS[name])
    As, Bs = _operands(3, special)
    one = [matmul_op(model, a, b, None, seed=11) for a, b in zip(As, Bs, strict=True)]
    got = matmul_batch(model, As, Bs, seed=11)
    assert len(got) == len(one)
    for g, (x, y) in enumerate(zip(one, got, strict=True)):
        assert x.shape == y.shape and x.tobytes() == y.tobytes(), (name, g)


def test_stochastic_rounding_keys_are_per_product():
    """Each product keeps its own stream keys: another seed changes the batch's bits,
    and a product's bits do not depend on the other products of the batch."""
    model = resolve_model(MODELS["bf16 sr"])
    As, Bs = _operands(5)
    a = matmul_batch(model, As, Bs, seed=1)
    b = matmul_batch(model, As[2:], Bs[2:], seed=1)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a[2:], b, strict=True))
    c = matmul_batch(model, As, Bs, seed=2)
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a, c, strict=True))


def test_bad_shapes_and_empty():
    model = resolve_model(MODELS["fp16 rne"])
    assert matmul_batch(model, [], []) == []
    with pytest.raises(ValueError):
        matmul_batch(model, [np.ones((2, 3))], [np.ones((4, 2))])
