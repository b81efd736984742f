"""Operations on tensors of any rank, for graphs imported from PyTorch.

A graph imported by :func:`accsim.graph.importers.torch_export.import_torch` keeps every
tensor in PyTorch's own layout as traced for ONE image (the batch dimension of size 1
stays wherever the model put it), with the images of a run stacked in front:
``(B,) + torch_shape``. The ops below work on that layout:

* data movement, exact (no arithmetic): :class:`Reshape` (view, reshape, flatten,
  squeeze, unsqueeze), :class:`Permute` (permute, transpose), :class:`Index` (slicing,
  select), :class:`Cat`, :class:`Expand`, :class:`Embedding` (a row gather);
* :class:`Elementwise`: one function of :data:`ELEMENTWISE` (residual add and mul,
  activations, the elementwise steps of softmax and of the norms) in binary64, rounded
  once to the activation format by the runner;
* linear ops (every output component one task component ``v = W X + C`` on an
  accumulator of the op's class): :class:`MatMul` (both operands activations, e.g.
  attention scores and context: the task's ``W`` is an activation), :class:`ReduceSum`
  (a sum over some axes: a softmax denominator, a norm statistic, a mean);
* :func:`fold` runs an existing channel-first op (:class:`~accsim.graph.ops.Conv2d`,
  :class:`~accsim.graph.ops.MaxPool2d`, :class:`~accsim.graph.ops.BatchNorm`, ...) on
  the trailing axes, with the leading axes folded into the batch.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import special

from accsim.graph.ops import LinearOp, MatmulTask, Op, apply_activation

__all__ = ["fold", "Folded", "FoldedLinear", "Reshape", "Permute", "Index", "Cat", "Expand",
           "Embedding", "Elementwise", "MatMul", "ReduceSum", "ELEMENTWISE"]


def _broadcast_shape(name, shapes):
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"layer {name!r}: operand shapes {[tuple(s) for s in shapes]} do "
                         "not broadcast") from None


class _Fold:
    """An op of :mod:`accsim.graph.ops` applied to the last ``ndim`` axes of its input:
    per image ``(N..., *inner)`` runs as ``(B * prod(N), *inner)`` through ``op`` (so a
    convolution's columns stay image-slowest) and is unfolded after."""

    def __init__(self, op: Op, ndim: int, inputs=None):
        Op.__init__(self, op.name, inputs)
        self.op, self.ndim = op, int(ndim)

    @property
    def op_class(self):
        return self.op.op_class

    def describe(self):
        d = self.op.describe()
        d["name"] = self.name
        return d

    def infer(self, in_shapes):
        (s,) = in_shapes
        if len(s) < self.ndim:
            raise ValueError(f"layer {self.name!r}: input tensor has shape {tuple(s)}, "
                             f"expected at least {self.ndim} axes")
        self._lead = tuple(s[:len(s) - self.ndim])
        self._n = int(np.prod(self._lead, dtype=np.int64))
        inner = self.op.infer([tuple(s[len(s) - self.ndim:])])
        self.shape = self._lead + tuple(inner)
        return self.shape

    def _fold(self, x):
        return x.reshape((x.shape[0] * self._n,) + x.shape[1 + len(self._lead):])

    def _unfold(self, y, batch):
        return y.reshape((batch,) + self.shape)

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return self._unfold(self.op.forward([self._fold(x)], dtype), x.shape[0])


class Folded(_Fold, Op):
    """:class:`_Fold` of an elementwise or data-movement op (BatchNorm, max pooling)."""


class FoldedLinear(_Fold, LinearOp):
    """:class:`_Fold` of a linear op (convolution, average pooling): its tasks are the
    inner op's on the folded input."""

    @property
    def activation(self):
        return self.op.activation

    @property
    def criterion_activation(self):
        return self.op.criterion_activation

    @property
    def weight(self):
        return self.op.weight

    @property
    def inner_length(self):
        return self.op.inner_length

    def lower(self, x):
        return self.op.lower(self._fold(x))

    def assemble(self, outs, batch):
        return self._unfold(self.op.assemble(outs, batch * self._n), batch)


def fold(op: Op, ndim: int, inputs=None):
    """``op`` on the last ``ndim`` axes (:class:`Folded` or :class:`FoldedLinear`)."""
    return (FoldedLinear if op.linear else Folded)(op, ndim, inputs)


class Reshape(Op):
    """Per-image reshape to ``shape`` (C order, as ``torch.reshape``)."""

    op_class = "reshape"

    def __init__(self, name, shape, inputs=None):
        super().__init__(name, inputs)
        self.target = tuple(int(d) for d in shape)

    def infer(self, in_shapes):
        (s,) = in_shapes
        if int(np.prod(s, dtype=np.int64)) != int(np.prod(self.target, dtype=np.int64)):
            raise ValueError(f"layer {self.name!r}: cannot reshape {tuple(s)} to "
                             f"{self.target}")
        self.shape = self.target
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return x.reshape((x.shape[0],) + self.shape)


class Permute(Op):
    """Per-image axis permutation (``torch.permute``; a transpose swaps two axes)."""

    op_class = "permute"

    def __init__(self, name, perm, inputs=None):
        super().__init__(name, inputs)
        self.perm = tuple(int(p) for p in perm)

    def infer(self, in_shapes):
        (s,) = in_shapes
        if sorted(self.perm) != list(range(len(s))):
            raise ValueError(f"layer {self.name!r}: {self.perm} is not a permutation of "
                             f"the {len(s)} axes of {tuple(s)}")
        self.shape = tuple(s[p] for p in self.perm)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return np.ascontiguousarray(x.transpose((0,) + tuple(p + 1 for p in self.perm)))


class Index(Op):
    """Per-image basic indexing: ``index`` is a tuple of slices and ints over the
    image's axes (``x[:, 1:5]``, ``x.select(0, 2)``, ``x.narrow(...)``)."""

    op_class = "index"

    def __init__(self, name, index, inputs=None):
        super().__init__(name, inputs)
        self.index = tuple(index)

    def infer(self, in_shapes):
        (s,) = in_shapes
        self.shape = tuple(np.empty(s, dtype=np.bool_)[self.index].shape)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return np.ascontiguousarray(x[(slice(None),) + self.index])


class Cat(Op):
    """Concatenation of its inputs along a per-image ``axis``."""

    op_class = "cat"

    def __init__(self, name, axis, inputs=None):
        super().__init__(name, inputs)
        self.axis = int(axis)

    def infer(self, in_shapes):
        ref = list(in_shapes[0])
        a = self.axis % len(ref)
        for s in in_shapes[1:]:
            if len(s) != len(ref) or any(s[i] != ref[i] for i in range(len(ref)) if i != a):
                raise ValueError(f"layer {self.name!r}: cannot concatenate shapes "
                                 f"{[tuple(t) for t in in_shapes]} along axis {self.axis}")
        ref[a] = int(sum(s[a] for s in in_shapes))
        self.axis = a
        self.shape = tuple(ref)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        return np.concatenate([np.asarray(x, dtype) for x in xs], axis=self.axis + 1)


class Expand(Op):
    """Per-image broadcast to ``shape`` (``torch.expand``)."""

    op_class = "expand"

    def __init__(self, name, shape, inputs=None):
        super().__init__(name, inputs)
        self.target = tuple(int(d) for d in shape)

    def infer(self, in_shapes):
        (s,) = in_shapes
        if _broadcast_shape(self.name, [s, self.target]) != self.target:
            raise ValueError(f"layer {self.name!r}: cannot expand {tuple(s)} to "
                             f"{self.target}")
        self.shape = self.target
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        x = x.reshape(x.shape[:1] + (1,) * (len(self.shape) + 1 - x.ndim) + x.shape[1:])
        return np.ascontiguousarray(np.broadcast_to(x, (x.shape[0],) + self.shape))


class Embedding(Op):
    """Row gather ``weight[ids]`` (``torch.nn.Embedding``; exact). ``ids`` must be
    integers in ``[0, rows)``."""

    op_class = "embedding"

    def __init__(self, name, weight, inputs=None):
        super().__init__(name, inputs)
        self.weight = np.asarray(weight, np.float64)
        if self.weight.ndim != 2:
            raise ValueError(f"layer {name!r}: tensor weight has shape "
                             f"{self.weight.shape}, expected (rows, dim)")

    def infer(self, in_shapes):
        (s,) = in_shapes
        self.shape = tuple(s) + (self.weight.shape[1],)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        ids = np.asarray(xs[0])
        k = ids.astype(np.int64)
        if np.any(k != ids) or np.any(k < 0) or np.any(k >= self.weight.shape[0]):
            raise ValueError(f"layer {self.name!r}: indices must be integers in [0, "
                             f"{self.weight.shape[0]})")
        return self.weight.astype(dtype, copy=False)[k]


def _gelu_tanh(x):
    """``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``gelu(approximate='tanh')``)."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def _softmax_exp(x, axis):
    """``exp(x - max(x))`` along ``axis`` (the numerator of a max-shifted softmax)."""
    return np.exp(x - np.max(x, axis=axis, keepdims=True))


def _mul_rsqrt(d, v, eps):
    """``d * (1 / sqrt(v + eps))``: a LayerNorm's deviations over its standard deviation
    (BERT's order of operations, :mod:`networks.transformer`)."""
    return d * (1.0 / np.sqrt(v + eps))


def _affine(x, gamma, beta):
    """``x * gamma + beta`` (a norm's elementwise affine map, rounded once)."""
    return x * gamma + beta


def _gelu_bert(x):
    """Exact GELU as BERT writes it, ``0.5 x (1 + erf(x / sqrt 2))`` (a different order of
    operations from ``gelu``, so different bits in binary64)."""
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


def _l2_normalize(x, q):
    """``x / max(sqrt(q), 1e-12)`` (``q`` the sum of squares; sentence-transformers'
    ``Normalize``)."""
    return x / np.maximum(np.sqrt(q), 1e-12)


def _keep_where(x, mask, value):
    """``x`` where ``mask`` is true (non-zero), else ``value`` (a boolean attention mask:
    true = attend)."""
    return np.where(mask != 0, x, value)


#: Elementwise functions (binary64): name -> (function, number of tensor operands).
#: Parameters after the operands (axis, n, eps, ...) are keyword arguments.
ELEMENTWISE = {
    "add": (np.add, 2), "sub": (np.subtract, 2), "mul": (np.multiply, 2),
    "div": (np.divide, 2), "neg": (np.negative, 1),
    "relu": (lambda x: apply_activation("relu", x), 1),
    "gelu": (lambda x: apply_activation("gelu", x), 1),
    "gelu_tanh": (_gelu_tanh, 1),
    "silu": (lambda x: apply_activation("silu", x), 1),
    "sigmoid": (special.expit, 1),
    "tanh": (np.tanh, 1),
    "square": (np.square, 1),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), 1),
    "softmax_exp": (_softmax_exp, 1),
    "keep_where": (_keep_where, 2),
    "mul_rsqrt": (_mul_rsqrt, 2),
    "affine": (_affine, 1),
    "gelu_bert": (_gelu_bert, 1),
    "l2_normalize": (_l2_normalize, 2),
}


class Elementwise(Op):
    """``fn(*operands, **params)`` of :data:`ELEMENTWISE` in binary64, per element with
    numpy broadcasting. Operands are graph tensors (``inputs``) or constants:
    ``operands`` lists, per operand, either the name of a graph tensor or an array /
    scalar (a constant has no image axis; it broadcasts against the image's shape).
    Array-valued ``params`` (``gamma``, ``beta``) broadcast the same way."""

    op_class = "elementwise"

    def __init__(self, name, fn: str, operands: list, **params):
        if fn not in ELEMENTWISE:
            raise ValueError(f"layer {name!r}: unknown elementwise function {fn!r}")
        f, arity = ELEMENTWISE[fn]
        if len(operands) != arity:
            raise ValueError(f"layer {name!r}: {fn} takes {arity} operands, got "
                             f"{len(operands)}")
        names = [o for o in operands if isinstance(o, str)]
        super().__init__(name, names or None)
        self.fn, self._f = fn, f
        self.operands = [o if isinstance(o, str) else np.asarray(o, np.float64)
                         for o in operands]
        self.params = {k: (np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v)
                       for k, v in params.items()}

    def describe(self):
        d = super().describe()
        d["function"] = self.fn
        return d

    def _shapes(self, in_shapes):
        it = iter(in_shapes)
        return [next(it) if isinstance(o, str) else o.shape for o in self.operands]

    def infer(self, in_shapes):
        shapes = self._shapes(in_shapes)
        shapes += [v.shape for v in self.params.values() if isinstance(v, np.ndarray)]
        self.shape = _broadcast_shape(self.name, shapes)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        nd = len(self.shape)
        B = np.asarray(xs[0]).shape[0]
        it = iter(xs)
        args = []
        for o in self.operands:  # align every operand to (B or 1,) + rank nd, right-aligned
            a = np.asarray(next(it), dtype) if isinstance(o, str) else o.astype(dtype)[None]
            args.append(a.reshape(a.shape[:1] + (1,) * (nd + 1 - a.ndim) + a.shape[1:]))
        y = self._f(*args, **self.params)
        return np.ascontiguousarray(np.broadcast_to(y, (B,) + self.shape))


def _digest(a) -> int:
    """A 63-bit digest of an array's bytes (part of a task key: ints only, since the
    random control seeds its generator with the key)."""
    h = hashlib.blake2b(np.ascontiguousarray(a).view(np.uint8).data, digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


class MatMul(LinearOp):
    """``a @ b`` over the last two axes, batch axes broadcast (``torch.matmul``,
    ``bmm``, the scores ``Q K^T`` and the context ``P V`` of attention), op class
    ``matmul``.

    Each matrix product of one image and one batch index is a task ``v = W X`` with
    ``W = a[...]`` of shape ``(M, K)`` and ``X = b[...]`` of shape ``(K, N)``: both are
    activations (the runner caches passes by ``W``'s digest too). An operand may be a
    constant (``a_const`` / ``b_const``), shared by all images.
    """

    op_class = "matmul"

    def __init__(self, name, inputs, a_const=None, b_const=None):
        super().__init__(name, inputs)
        self.a_const = None if a_const is None else np.asarray(a_const, np.float64)
        self.b_const = None if b_const is None else np.asarray(b_const, np.float64)
        n = (self.a_const is None) + (self.b_const is None)
        if n != len(self.inputs or []):
            raise ValueError(f"layer {name!r}: MatMul needs {n} tensor inputs, got "
                             f"{self.inputs}")

    def _operands(self, xs):
        """``(a, b)`` as ``(B or 1,) + batch axes + matrix``: the batch axes of the lower
        rank operand padded with 1 after the image axis (torch broadcasting)."""
        it = iter(xs)
        a = next(it) if self.a_const is None else self.a_const[None]
        b = next(it) if self.b_const is None else self.b_const[None]
        nd = len(self._batch) + 3
        return tuple(v.reshape(v.shape[:1] + (1,) * (nd - v.ndim) + v.shape[1:])
                     for v in (a, b))

    def infer(self, in_shapes):
        it = iter(in_shapes)
        sa = tuple(next(it)) if self.a_const is None else self.a_const.shape
        sb = tuple(next(it)) if self.b_const is None else self.b_const.shape
        if len(sa) < 2 or len(sb) < 2 or sa[-1] != sb[-2]:
            raise ValueError(f"layer {self.name!r}: cannot multiply shapes {sa} and {sb}")
        self._batch = _broadcast_shape(self.name, [sa[:-2], sb[:-2]])
        self._K = int(sa[-1])
        self.shape = self._batch + (sa[-2], sb[-1])
        return self.shape

    @property
    def inner_length(self):
        return self._K

    @property
    def weight(self):
        raise ValueError(f"layer {self.name!r}: per-tensor scaling does not apply to a "
                         "matmul of two activations (assign op class 'matmul' a model)")

    def lower(self, xs):
        a, b = self._operands(xs)
        B = max(a.shape[0], b.shape[0])
        a = np.broadcast_to(a, (B,) + self._batch + a.shape[-2:])
        b = np.broadcast_to(b, (B,) + self._batch + b.shape[-2:])
        tasks = []
        for idx in np.ndindex((B,) + self._batch):
            W, X = np.ascontiguousarray(a[idx]), np.ascontiguousarray(b[idx])
            tasks.append(MatmulTask(W, X, np.zeros((W.shape[0], X.shape[1])), "identity",
                                    idx + (_digest(W),), bias=False))
        return tasks

    def assemble(self, outs, batch):
        return np.stack(outs).reshape((batch,) + self.shape)

    def forward(self, xs, dtype=np.float64):
        a, b = (np.asarray(v, dtype) for v in self._operands(xs))
        B = max(a.shape[0], b.shape[0])
        return np.ascontiguousarray(np.broadcast_to(np.matmul(a, b), (B,) + self.shape))


class ReduceSum(LinearOp):
    """The sum over per-image ``axes`` (kept with size 1), every output one reduction on
    an accumulator of ``op_class`` (``softmax``, ``norm``, ``sum``): a task ``v = W X``
    with ``W = ones((1, n))`` and one column of ``X`` per output (image-slowest)."""

    def __init__(self, name, axes, op_class="sum", inputs=None):
        super().__init__(name, inputs)
        self.axes = tuple(int(a) for a in axes)
        self.op_class = op_class

    def infer(self, in_shapes):
        (s,) = in_shapes
        nd = len(s)
        self.axes = tuple(sorted({a % nd for a in self.axes}))
        self._in = tuple(s)
        self._n = int(np.prod([s[a] for a in self.axes], dtype=np.int64))
        self.weight = np.ones((1, self._n))
        self.shape = tuple(1 if i in self.axes else d for i, d in enumerate(s))
        return self.shape

    @property
    def inner_length(self):
        return self._n

    def lower(self, x):
        keep = [i + 1 for i in range(len(self._in)) if i not in self.axes]
        red = [a + 1 for a in self.axes]
        X = np.ascontiguousarray(x.transpose(red + [0] + keep).reshape(self._n, -1))
        return [MatmulTask(self.weight, X, np.zeros((1, X.shape[1])), "identity", (0,),
                           bias=False)]

    def assemble(self, outs, batch):
        return outs[0].reshape((batch,) + self.shape)

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return np.sum(x, axis=tuple(a + 1 for a in self.axes), keepdims=True)
