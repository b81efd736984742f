"""Per-tensor scaling of low-precision matmul inputs.

Deployed fp8 inference multiplies each input tensor by a scale derived from its absolute
maximum so that it fills the fp8 range, runs the matmul on the scaled operands, and
divides the result by the product of the scales (Micikevicius et al., "FP8 Formats for
Deep Learning", arXiv:2209.05433, sec. 4.3; NVIDIA Transformer Engine's per-tensor
"delayed/current scaling"). accsim uses the power-of-two scale

    s = 2^floor(log2(fmax / amax))          (s = 1 for an all-zero tensor)

so ``amax * s <= fmax`` and scaling and unscaling are exact in binary64: the simulated
error is then the error of the rounding into fp8 and of the accumulation alone, and the
exact reference and the bound of the scaled product are those of the unscaled one times
``1 / (s_W s_X)``. Weights get one static scale per op (part of the model); activations
one scale per image ("current scaling" of that image's input tensor), so results do not
depend on how images are batched.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pow2_scale", "column_scales"]


def pow2_scale(amax, fmax: float) -> np.ndarray:
    """The largest power of two ``s`` with ``amax s <= fmax``, elementwise: the scale that
    brings a tensor of absolute maximum ``amax`` into a format of largest finite value
    ``fmax`` without overflow (``fmax < 2 amax s`` unless ``s`` would exceed ``2^1023``,
    where it stops). 1 where ``amax`` is 0 or not finite.

    Computed exactly from the binary exponents (``frexp``), never from ``log2``: with
    ``fmax = m1 2^e1`` and ``amax = m2 2^e2`` (``m1, m2`` in ``[1/2, 1)``),
    ``floor(log2(fmax / amax)) = e1 - e2 - [m1 < m2]``. This is the one scale rule of
    the CNN graphs (per image) and of MiniLM (per tensor).

    Parameters
    ----------
    amax : array_like
        Absolute maxima (>= 0; 0 or non-finite: scale 1).
    fmax : float
        Largest finite value of the target format (e.g. 448 for OCP e4m3).
    """
    amax = np.asarray(amax, np.float64)
    ok = np.isfinite(amax) & (amax > 0)  # overflowed or zero input: leave unscaled
    m1, e1 = np.frexp(np.float64(fmax))
    m2, e2 = np.frexp(np.where(ok, amax, 1.0))
    e = e1.astype(np.int64) - e2.astype(np.int64) - (m1 < m2)
    return np.where(ok, np.ldexp(1.0, np.minimum(e, 1023)), 1.0)


def column_scales(x: np.ndarray, n_cols: int, fmax: float) -> np.ndarray:
    """Per-image scales of an op input ``x`` (batch first), repeated over the image's
    ``n_cols / batch`` matmul columns (im2col columns are ordered image-slowest)."""
    B = x.shape[0]
    amax = np.max(np.abs(x.reshape(B, -1)), axis=1) if x.size else np.zeros(B)
    s = pow2_scale(amax, fmax)
    per = n_cols // B if B else 0
    if per * B != n_cols:  # pragma: no cover - lowering invariant
        raise ValueError(f"{n_cols} columns do not split into {B} images")
    return np.repeat(s, per)

