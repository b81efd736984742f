"""The numpy fast path of :func:`accsim.round` (float64 -> binary64 in any mode, float64 ->
binary32 to nearest even) gives the rounding kernels' bits, on random bit patterns and on
the hard cases: ties, the subnormal range and its boundary, the overflow threshold,
zeros, infinities and NaNs of either sign."""

from __future__ import annotations

import numpy as np
import pytest

from accsim.kernels.vocab import MODES
from accsim.numbers import rounding
from accsim.numbers.formats import format as get_format


def _kernel(x, fmt, mode="rne"):
    out = np.empty_like(x)
    rounding._round_flat(x, out, get_format(fmt), rounding.mode_code(mode), 0, 0)
    return out


def _cases():
    rng = np.random.default_rng(7)
    pats = rng.integers(0, 2**64, 200_000, dtype=np.uint64, endpoint=False)
    rand = pats.view(np.float64)
    f32 = np.float32
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan,
                      float(np.finfo(f32).max), float(np.finfo(f32).tiny),
                      float(np.finfo(f32).smallest_subnormal), 2.0**128, -(2.0**128)])
    # exact midpoints between neighbouring binary32 values (ties) and their neighbours,
    # over the normal and subnormal ranges and at the overflow threshold
    a = rng.standard_normal(20_000).astype(f32) * f32(2.0) ** rng.integers(-149, 127, 20_000)
    b = np.nextafter(a, np.inf)
    mid = (a.astype(np.float64) + b.astype(np.float64)) / 2
    ovf = float(np.finfo(f32).max) + 2.0**103  # the halfway point to 2^128
    near = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf),
                           [ovf, np.nextafter(ovf, 0), -ovf]])
    return np.concatenate([rand, edges, near, -near])


@pytest.mark.parametrize("fmt", ["binary32", "binary64"])
def test_cast_gives_the_kernel_bits(fmt):
    x = _cases()
    want = _kernel(x, fmt)
    got = rounding.round(x, fmt)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    assert rounding._ieee_cast(x, get_format(fmt), 0) is not None  # the fast path ran


@pytest.mark.parametrize("mode", [m for m in MODES if m != "sr"])
def test_binary64_is_the_identity_in_every_mode(mode):
    x = _cases()
    assert np.array_equal(rounding.round(x, "binary64", mode).view(np.uint64),
                          _kernel(x, "binary64", mode).view(np.uint64))


def test_other_modes_and_formats_use_the_kernels():
    fmt32 = get_format("binary32")
    assert rounding._ieee_cast(np.ones(3), fmt32, rounding.mode_code("rz")) is None
    assert rounding._ieee_cast(np.ones(3), get_format("binary16"), 0) is None
    x = np.array([1.0 + 2.0**-24])  # a binary32 tie: RNE down, RU up
    assert rounding.round(x, "binary32", "ru")[0] == 1.0 + 2.0**-23
    assert rounding.round(x, "binary32")[0] == 1.0
