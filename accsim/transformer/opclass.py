"""Operation classes: which accumulator model runs each kind of inner product or reduction.

A network built from matrix products and reductions (the transformer of
:mod:`networks.transformer`; a CNN layer graph can use the same interface) names each
accumulation by its *operation class* (``"qkv"``, ``"scores"``, ``"softmax_sum"``, ...)
and asks an :class:`OpModels` mapping for the model of that class. Two primitive ops
run on a model:

* :func:`matmul_op` -- ``A @ B + C``, every output component one inner product;
* :func:`reduce_op` -- the column sums of ``X`` (``ones @ X``), every output one
  reduction (a softmax denominator, a LayerNorm mean, a pooling sum).

Both return the computed values; :func:`op_result` also returns the exact reference of
the same (rounded) operands (:func:`accsim.numbers.exact.matmul`) and the model's componentwise
deterministic bound (:func:`accsim.accumulators.bounds.error_bound` through ``model.error_bound``),
so every op of a network can be checked as a single layer is.

Hardware models (``hwmodels``: typed instructions such as Hopper's FP8
``wgmma.m64n8k32.f32.e4m3.e4m3``) are wrapped in :class:`PerTensorScaled`: each operand
is multiplied by a power of two ``2^s`` chosen per tensor so its largest magnitude lands
just below the input format's largest finite value, rounded (RNE) into the input type,
and the result multiplied by ``2^-(sA + sB)``. This is the per-tensor scaling of FP8
inference (NVIDIA Transformer Engine "delayed/current scaling"; Micikevicius et al.,
"FP8 formats for deep learning", arXiv:2209.05433, Sec. 4); with power-of-two scales
the scaling itself is exact and every error comes from the rounding of the operands and
the accumulation.

The special model name ``"fp64"`` (:class:`Float64`) is the binary64 BLAS reference
(no simulated accumulator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.graph import scaling

__all__ = ["OP_CLASSES", "MATMUL_CLASSES", "REDUCTION_CLASSES", "OpModels", "Float64",
           "PerTensorScaled", "pow2_scale", "matmul_op", "matmul_batch", "reduce_op", "op_result",
           "OpResult", "resolve_model"]

#: inner products (matrix products) of a BERT encoder
MATMUL_CLASSES = ("qkv", "scores", "context", "attn_out", "ffn_in", "ffn_out")
#: reductions of a BERT encoder and of the sentence-embedding head
REDUCTION_CLASSES = ("softmax_sum", "ln_mean", "ln_var", "pool_sum", "l2_sum")
OP_CLASSES = MATMUL_CLASSES + REDUCTION_CLASSES


def f64_matmul(A, B) -> np.ndarray:
    """``A @ B`` in binary64 with the platform BLAS.

    The BLAS summation order is unspecified and may change with the shape, the memory
    layout and the processor (OpenBLAS picks its kernels per CPU), so two calls on
    different shapes need not agree in the last bit. The one place the binary64
    reference multiplies, so that a test can substitute an order-defined product.
    """
    return np.asarray(A, np.float64) @ np.asarray(B, np.float64)


class Float64:
    """The binary64 reference: numpy/BLAS products, no simulated accumulator.

    Its ``error_bound`` is the standard ``gamma_{n+1}(2^-53)`` bound of recursive
    summation (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
    eq. 3.4) which also covers any BLAS summation order.
    """

    unit_roundoff = 2.0**-53
    family = "fp64"

    def matmul(self, A, B, C=None, *, seed: int = 0) -> np.ndarray:
        out = f64_matmul(A, B)
        return out if C is None else out + C

    def error_bound(self, A, B, C=None, kind: str = "deterministic", **kw) -> np.ndarray:
        n = np.asarray(A).shape[1] + 1
        g = n * self.unit_roundoff / (1 - n * self.unit_roundoff)
        S = np.abs(A) @ np.abs(B)
        if C is not None:
            S = S + np.abs(C)
        return g * S

    def cost_bits(self, n: int) -> float:
        return 53.0 * n

    def describe(self) -> dict:
        return {"family": "fp64"}

    @property
    def out_format(self):
        """binary64: the format the hardware columns price its products and sums in
        (:func:`accsim.run.hwcost.model_format`; dense FP64 tensor-core rate)."""
        from accsim.numbers.formats import format as _format

        return _format("binary64")


def pow2_scale(X: np.ndarray, fmax: float) -> float:
    """Per-tensor scale of ``X``: :func:`accsim.graph.scaling.pow2_scale` of ``max|X|``
    (``max|X| 2^s <= fmax < max|X| 2^(s+1)``; 1 if X is 0)."""
    return float(scaling.pow2_scale(np.max(np.abs(X), initial=0.0), fmax))


@dataclass
class PerTensorScaled:
    """A hardware model fed per-tensor power-of-two scaled operands (module docstring).

    Parameters
    ----------
    hw : hwmodels HardwareModel
        A typed instruction model (has ``quantize_operands`` and ``matmul_values``).

    ``matmul(A, B, C, scales=(sA, sB))`` uses given scales; ``sB`` may be a vector with
    one scale per column of ``B`` (a batch of sentences, each its own tensor). By
    default the scales come from ``A`` and ``B`` (:meth:`scales`). The rounded ``A``
    of the last few distinct weight arrays is cached (weights do not change).
    """

    hw: object
    _fmax: tuple = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        from accsim.numbers.formats import from_dtype

        self._fmt = (from_dtype(self.hw.a_dtype), from_dtype(self.hw.b_dtype),
                     from_dtype(self.hw.c_dtype))
        self._fmax = (self._fmt[0].max, self._fmt[1].max)

    @property
    def name(self) -> str:
        return f"{self.hw.name}+scaled"

    def scales(self, A, B) -> tuple[float, float]:
        """``(sA, sB)``: power-of-two scales of the whole of A and of B."""
        return pow2_scale(A, self._fmax[0]), pow2_scale(B, self._fmax[1])

    def column_scales(self, B, segments) -> np.ndarray:
        """One scale per column of B, computed per column range (``segments``)."""
        s = np.ones(B.shape[1])
        for a, b in segments:
            s[a:b] = pow2_scale(B[:, a:b], self._fmax[1])
        return s

    def _round(self, X, fmt):
        from accsim.numbers.rounding import round as _round

        return X if fmt.p == 53 else _round(X, fmt, "rne")

    def _round_a(self, A, sA):
        key = id(A)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is A and hit[1] == sA:
            return hit[2]
        Aq = self._round(np.ascontiguousarray(A * sA), self._fmt[0])
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (A, sA, Aq)
        return Aq

    def quantize(self, A, B, C=None, scales=None):
        """Scaled operands rounded (RNE) into the instruction's types, and the scale
        ``sA sB`` (scalar, or a row vector with one entry per column)."""
        A = np.asarray(A, np.float64)
        B = np.asarray(B, np.float64)
        sA, sB = self.scales(A, B) if scales is None else scales
        sB = np.asarray(sB, np.float64)
        s = sA * (sB[None, :] if sB.ndim == 1 else sB)
        C = np.zeros((A.shape[0], B.shape[1])) if C is None else np.asarray(C, np.float64)
        Aq = self._round_a(A, sA)
        Bq = self._round(np.ascontiguousarray(B * (sB[None, :] if sB.ndim == 1 else sB)),
                         self._fmt[1])
        Cq = self._round(np.ascontiguousarray(np.broadcast_to(C * s, (A.shape[0],
                                                                      B.shape[1]))),
                         self._fmt[2])
        return Aq, Bq, Cq, s

    def matmul(self, A, B, C=None, *, seed: int = 0, scales=None) -> np.ndarray:
        Aq, Bq, Cq, s = self.quantize(A, B, C, scales)
        return self.hw.matmul_values(Aq, Bq, Cq) / s

    def matmul_batch(self, As, Bs) -> list | None:
        """``[self.matmul(A, B) for A, B in zip(As, Bs)]`` (each product its own
        per-tensor scales, no C) with one rounding call per operand kind and one kernel
        call (the instruction's accumulator's ``_matmul_batch``), the same bits; None
        when the instruction's accumulator has no batched kernel."""
        batch = getattr(self.hw.accumulator, "_matmul_batch", None)
        if batch is None or not hasattr(self.hw, "k"):
            return None
        k = int(self.hw.k)
        sA, Aq = self._scaled_flat(As, 0)
        sB, Bq = self._scaled_flat(Bs, 1)
        s = list(zip(sA, sB, strict=True))
        pad = [(-A.shape[1]) % k for A in As]  # K padded with zero terms (matmul_values)
        Aq = [np.pad(a, ((0, 0), (0, p))) if p else a for a, p in zip(Aq, pad, strict=True)]
        Bq = [np.pad(b, ((0, p), (0, 0))) if p else b for b, p in zip(Bq, pad, strict=True)]
        Cq = [np.zeros((a.shape[0], b.shape[1])) for a, b in zip(Aq, Bq, strict=True)]
        D = batch(Aq, Bq, Cq, 0)  # the instruction (hw.matmul_values: seed 0)
        if D is None:
            return None
        return [d / (sA * np.float64(sB)) for d, (sA, sB) in zip(D, s, strict=True)]

    def _scaled_flat(self, Xs, which: int):
        """``(scales, rounded)``: each of ``Xs`` (operand ``which``: 0 A, 1 B) scaled by
        its own per-tensor scale (:func:`pow2_scale` of its maximum, as :meth:`scales`)
        and rounded (RNE) into the operand's format, by one elementwise call each."""
        sizes = np.array([x.size for x in Xs])
        flat = np.concatenate([np.ascontiguousarray(x, np.float64).ravel() for x in Xs])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        amax = np.maximum(np.maximum.reduceat(np.abs(flat), starts), 0.0)
        sc = scaling.pow2_scale(amax, self._fmax[which])
        flat = self._round(flat * np.repeat(sc, sizes), self._fmt[which])
        out = [flat[o:o + x.size].reshape(x.shape)
               for x, o in zip(Xs, starts.tolist(), strict=True)]
        return sc.tolist(), out

    def exact(self, A, B, C=None, scales=None) -> np.ndarray:
        """Exact ``A_q B_q + C_q`` of the rounded operands, descaled."""
        from accsim.numbers import exact

        Aq, Bq, Cq, s = self.quantize(A, B, C, scales)
        return exact.matmul(Aq, Bq, Cq) / s

    def error_bound(self, A, B, C=None, kind: str = "deterministic", **kw) -> np.ndarray:
        """The instruction's bound on the rounded operands, descaled (accumulation only)."""
        Aq, Bq, Cq, s = self.quantize(A, B, C)
        K = Aq.shape[1]
        pad = (-K) % self.hw.k
        if pad:
            Aq = np.concatenate([Aq, np.zeros((Aq.shape[0], pad))], axis=1)
            Bq = np.concatenate([Bq, np.zeros((pad, Bq.shape[1]))], axis=0)
        return np.asarray(self.hw.error_bound(Aq, Bq, Cq, kind=kind, **kw)) / s

    def cost_bits(self, n: int) -> float:
        return self.hw.cost_bits(n)

    @property
    def unit_roundoff(self) -> float:
        return self.hw.unit_roundoff

    @property
    def family(self) -> str:
        return self.hw.family

    @property
    def accumulator(self):
        """The instruction's accumulator: what the hardware columns price its sums in
        (:func:`accsim.run.hwcost.model_format`, as for the unscaled instruction)."""
        return self.hw.accumulator

    def describe(self) -> dict:
        d = dict(self.hw.describe())
        d["scaling"] = "per-tensor-pow2"
        return d


def resolve_model(spec, named: dict | None = None):
    """A model from a name or spec: ``"fp64"``, a key of ``named``, a registry name
    (hardware models come wrapped in :class:`PerTensorScaled`), or a factory dict."""
    if isinstance(spec, str):
        if spec == "fp64":
            return Float64()
        if named and spec in named:
            return named[spec]
    if not isinstance(spec, (str, dict)):
        return spec
    from hwmodels import resolve

    m = resolve(spec)
    return PerTensorScaled(m) if m.quantizes_operands else m


class OpModels(dict):
    """``operation class name -> accumulator model``.

    Parameters
    ----------
    default : model
        Model of every class not given.
    **per_class : model
        Models of named classes (keys of :data:`OP_CLASSES`, or any name a network uses).

    Raises
    ------
    ValueError
        A class name not in ``allowed`` (default :data:`OP_CLASSES`).
    """

    def __init__(self, default=None, allowed=OP_CLASSES, **per_class):
        bad = sorted(set(per_class) - set(allowed))
        if bad:
            raise ValueError(f"unknown operation class(es) {bad}; valid: {', '.join(allowed)}")
        super().__init__(per_class)
        self.default = Float64() if default is None else default
        self.allowed = tuple(allowed)

    def __missing__(self, key):
        if key not in self.allowed:
            raise KeyError(f"unknown operation class {key!r}; valid: "
                           f"{', '.join(self.allowed)}")
        return self.default


def matmul_op(model, A, B, C=None, *, seed: int = 0, scales=None) -> np.ndarray:
    """``A @ B + C`` on ``model`` (float64 values in and out)."""
    A = np.ascontiguousarray(A, np.float64)
    B = np.ascontiguousarray(B, np.float64)
    if C is not None:
        C = np.ascontiguousarray(np.broadcast_to(C, (A.shape[0], B.shape[1])), np.float64)
    if isinstance(model, PerTensorScaled):
        return model.matmul(A, B, C, seed=seed, scales=scales)
    if isinstance(model, Float64):
        return model.matmul(A, B, C)
    if C is None:
        C = np.zeros((A.shape[0], B.shape[1]))
    return np.asarray(model.matmul(A, B, C, seed=seed), np.float64)


def matmul_batch(model, As, Bs, *, seed: int = 0, small=None) -> list:
    """``[matmul_op(model, A, B, seed=seed) for A, B in zip(As, Bs)]``, the same bits, in
    one kernel call where the model has a batched kernel (recursive summation, the
    NVIDIA fused dot-product units, those behind per-tensor scaling:
    :mod:`accsim.accumulators._batch`), else one call per product (``small(A, B)``: a
    context manager wrapped around each of those calls, e.g. one numba thread)."""
    from contextlib import nullcontext

    As = [np.ascontiguousarray(a, np.float64) for a in As]
    Bs = [np.ascontiguousarray(b, np.float64) for b in Bs]
    out = None
    if not As:
        return []
    if isinstance(model, PerTensorScaled):
        out = model.matmul_batch(As, Bs)
    elif not isinstance(model, Float64) and hasattr(model, "_matmul_batch") \
            and hasattr(model, "check_inputs"):
        from accsim.numbers.arrays import check_matmul_shapes
        from accsim.numbers.rounding import check_seed

        Cs = []
        for A, B in zip(As, Bs, strict=True):
            C = np.zeros((A.shape[0], B.shape[1]))
            check_matmul_shapes(A, B, C)
            model.check_inputs(A, B, C)
            Cs.append(C)
        out = model._matmul_batch(As, Bs, Cs, check_seed(seed))
    if out is None:  # fresh operands, as a product's own task has (BLAS: same layout)
        out = []
        for A, B in zip(As, Bs, strict=True):
            with small(A, B) if small is not None else nullcontext():
                out.append(matmul_op(model, np.array(A), np.array(B), None, seed=seed))
    return out


def reduce_op(model, X, *, seed: int = 0) -> np.ndarray:
    """Column sums of ``X`` (n, P) on ``model``: ``ones(1, n) @ X``, shape (P,)."""
    X = np.asarray(X, np.float64)
    if isinstance(model, Float64):
        return X.sum(axis=0)
    return matmul_op(model, np.ones((1, X.shape[0])), X, seed=seed)[0]


@dataclass
class OpResult:
    """One op on one model: computed value, exact reference, deterministic bound."""

    value: np.ndarray
    exact: np.ndarray
    bound: np.ndarray

    @property
    def holds(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.abs(self.value - self.exact) <= self.bound


def op_result(model, A, B, C=None, *, seed: int = 0) -> OpResult:
    """:func:`matmul_op` with its exact reference and bound.

    For a :class:`PerTensorScaled` model the reference is the exact product of the
    rounded scaled operands (the accumulation error alone; the operand rounding is a
    separate, measured effect).
    """
    from accsim.numbers import exact

    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    Cf = np.zeros((A.shape[0], B.shape[1])) if C is None else np.ascontiguousarray(
        np.broadcast_to(C, (A.shape[0], B.shape[1])), np.float64)
    v = matmul_op(model, A, B, Cf, seed=seed)
    if isinstance(model, PerTensorScaled):
        ex = model.exact(A, B, Cf)
    else:
        ex = exact.matmul(A, B, Cf)
    bnd = np.asarray(model.error_bound(A, B, Cf, kind="deterministic"), np.float64)
    return OpResult(v, ex, bnd)
