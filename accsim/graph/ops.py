"""Operations of a layer graph.

Tensors between operations are float64 arrays with the batch first: ``(B, C, H, W)``
for feature maps (channel-first, as PyTorch; the Keras importer transposes its
channel-last weights), ``(B, n)`` for vectors. :attr:`Op.shape` is the per-image shape.

Two kinds of operation:

* **Linear ops** (:class:`Conv2d`, :class:`Dense`, :class:`AvgPool2d`): every output
  component is one inner product, computed on an accumulator model. They implement the
  small interface the runner needs (:meth:`LinearOp.lower` and
  :meth:`LinearOp.assemble`): ``lower`` turns the op's input into a list of
  :class:`MatmulTask` ``v = W X + C`` (for a convolution: one task per group, ``X`` the
  im2col patch matrix, so each output pixel x channel is one inner product of length
  ``C_in/groups * kh * kw``); the runner chooses the accumulator of each task from the op
  class (:attr:`LinearOp.op_class`), runs it with the existing matmul kernels (through
  :func:`accsim.graph.engine.run_task`, so the strategies, the exact reference and the
  componentwise bounds are those of every network run), applies the fused activation
  and rounds to the activation format; ``assemble`` puts the task outputs back into the
  op's output layout.
* **Elementwise / data-movement ops** (:class:`BatchNorm`, :class:`MaxPool2d`,
  :class:`Flatten`, :class:`Add`, :class:`Activation`): evaluated in binary64 and rounded
  once to the activation format (max pooling and flatten are exact; BatchNorm is applied
  elementwise, ``gamma (x - mean) / sqrt(var + eps) + beta`` in binary64 then one
  rounding: it is NOT folded into the convolution, because in the imported networks it
  follows the activation, ``conv -> ReLU -> BN``, where folding is not possible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from networks.activations import ACTIVATIONS as _PHI_ACTIVATIONS
from networks.activations import phi as _phi
from networks.model import conv_output_size, im2col

__all__ = ["Op", "LinearOp", "MatmulTask", "Conv2d", "Dense", "AvgPool2d", "MaxPool2d",
           "BatchNorm", "Flatten", "Add", "Activation", "ACTIVATIONS", "apply_activation",
           "LINEAR_CLASSES"]

#: Activations an op can carry: the executor's (with condition numbers, usable by the
#: adaptive strategy) plus softmax (only as a standalone :class:`Activation`).
ACTIVATIONS = tuple(_PHI_ACTIVATIONS) + ("softmax",)

#: Op classes whose components run on an accumulator (keys of an assignment): inner
#: products of convolutions, dense layers (weights x activations) and matmuls (activations
#: x activations, e.g. attention), and the reductions of average pooling, softmax
#: denominators, norm statistics (LayerNorm / RMSNorm) and other sums / means.
#: The MiniLM graph (:mod:`accsim.transformer.minilm_graph`) names its own classes: the
#: projections, the attention scores and context, and the reductions of softmax
#: denominators, LayerNorm statistics, pooling and the L2 norm.
LINEAR_CLASSES = ("conv", "dense", "avgpool", "matmul", "softmax", "norm", "sum",
                  "qkv", "scores", "context", "attn_out", "ffn_in", "ffn_out",
                  "softmax_sum", "ln_mean", "ln_var", "pool_sum", "l2_sum")


def apply_activation(name: str, z: np.ndarray) -> np.ndarray:
    """``phi(z)`` in binary64 (softmax over the last axis, max-shifted)."""
    if name == "softmax":
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    return _phi(name, z)


@dataclass
class MatmulTask:
    """One matmul ``v = W @ X + C`` of a linear op (all float64).

    ``key`` identifies the task within the graph (op index, group) for caching;
    ``activation`` is applied to ``v`` by the runner (the adaptive criterion uses its
    condition number). ``criterion_activation``, when set, is the activation that the
    op's sole reader applies to the rounded output (an imported ``Linear -> GELU``):
    the criteria and controls see it (``kappa_phi``, ``phi'``, the active set), the
    values do not (the runner applies only ``activation``). ``bias``: whether ``C`` is a
    bias, one more term of every inner product (the cost bills it); False for a product
    or reduction without one (``C`` zero: attention scores, sums, a layer built
    without a bias).
    """

    W: np.ndarray
    X: np.ndarray
    C: np.ndarray
    activation: str
    key: tuple
    criterion_activation: str | None = None
    bias: bool = True


class Op:
    """Base class. ``name`` names the op in errors and records; ``inputs`` are the names
    of the ops it reads (the previous op by default; ``"input"`` is the graph input)."""

    op_class = "op"
    linear = False

    def __init__(self, name: str, inputs: list | None = None):
        self.name = str(name)
        self.inputs = list(inputs) if inputs is not None else None
        self.shape: tuple | None = None  # per-image output shape, set by infer()

    def infer(self, in_shapes: list) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, xs: list, dtype=np.float64) -> np.ndarray:  # pragma: no cover
        """Reference evaluation in ``dtype`` (numpy / BLAS)."""
        raise NotImplementedError

    def _need(self, shape, ndim: int, what: str):
        if len(shape) != ndim:
            raise ValueError(f"layer {self.name!r}: input tensor has shape {tuple(shape)}, "
                             f"expected {what}")

    def describe(self) -> dict:
        return {"name": self.name, "op": type(self).__name__, "class": self.op_class}


class LinearOp(Op):
    """An op whose outputs are inner products (see the module docstring)."""

    linear = True

    def lower(self, x: np.ndarray) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def assemble(self, outs: list, batch: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @property
    def activation(self) -> str:
        return getattr(self, "_activation", "identity")

    @property
    def criterion_activation(self) -> str | None:
        """The activation applied by the op's sole reader, not fused (set by the torch
        importer); ``None`` when the fused :attr:`activation` is the one that follows."""
        return getattr(self, "_reader_activation", None)

    def macs(self) -> int:
        """Multiply-adds per image."""
        return int(np.prod(self.shape)) * self.inner_length

    @property
    def inner_length(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        outs = []
        for t in self.lower(x):
            W, X, C = (np.asarray(a, dtype) for a in (t.W, t.X, t.C))
            outs.append(apply_activation(t.activation, W @ X + C))
        return self.assemble(outs, x.shape[0])


def _check_activation(name, activation, allow_softmax=False):
    ok = ACTIVATIONS if allow_softmax else _PHI_ACTIVATIONS
    if activation not in ok:
        raise ValueError(f"layer {name!r}: unsupported activation {activation!r}; valid: "
                         f"{', '.join(ok)}")


def _finite(name, what, a):
    a = np.asarray(a, np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"layer {name!r}: tensor {what} has non-finite values")
    return a


class Conv2d(LinearOp):
    """2-D convolution (cross-correlation, as PyTorch and Keras), channel-first.

    Parameters
    ----------
    name : str
    weight : numpy.ndarray, shape (O, C_in / groups, kh, kw)
    bias : numpy.ndarray, shape (O,), optional
    stride, padding : int or (int, int)
        ``padding`` is symmetric zero padding (Keras ``"same"`` with odd kernels and
        stride 1 is ``(k - 1) // 2``; ``"valid"`` is 0).
    dilation : int or (int, int)
        Spacing of the kernel taps (PyTorch ``dilation``).
    groups : int
    activation : str
        Fused activation (one of :data:`networks.activations.ACTIVATIONS`).
    """

    op_class = "conv"

    def __init__(self, name, weight, bias=None, stride=1, padding=0, groups=1,
                 activation="identity", inputs=None, dilation=1):
        super().__init__(name, inputs)
        self.weight = _finite(name, "weight", weight)
        if self.weight.ndim != 4:
            raise ValueError(f"layer {name!r}: tensor weight has shape {self.weight.shape}, "
                             "expected (out_channels, in_channels/groups, kh, kw)")
        O = self.weight.shape[0]
        self.has_bias = bias is not None
        self.bias = np.zeros(O) if bias is None else _finite(name, "bias", bias)
        if self.bias.shape != (O,):
            raise ValueError(f"layer {name!r}: tensor bias has shape {self.bias.shape}, "
                             f"expected ({O},)")
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = int(groups)
        if self.groups < 1 or O % self.groups:
            raise ValueError(f"layer {name!r}: groups={groups} does not divide the "
                             f"{O} output channels")
        if min(self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"layer {name!r}: strides and dilations must be >= 1, "
                             "paddings >= 0")
        _check_activation(name, activation)
        self._activation = activation

    @property
    def inner_length(self):
        return int(np.prod(self.weight.shape[1:]))

    def infer(self, in_shapes):
        (s,) = in_shapes
        self._need(s, 3, "(C, H, W)")
        c, h, w = s
        cg = self.weight.shape[1]
        if c != cg * self.groups:
            raise ValueError(f"layer {self.name!r}: tensor weight expects "
                             f"{cg * self.groups} input channels ({cg} x groups="
                             f"{self.groups}), the input has {c}")
        kh, kw = self.weight.shape[2:]
        (dh, dw), (sh, sw), (ph, pw) = self.dilation, self.stride, self.padding
        ho = conv_output_size(h, dh * (kh - 1) + 1, sh, ph)
        wo = conv_output_size(w, dw * (kw - 1) + 1, sw, pw)
        if ho < 1 or wo < 1:
            raise ValueError(f"layer {self.name!r}: kernel {kh}x{kw} larger than the "
                             f"padded input {h}x{w}")
        self._in = (c, h, w)
        self.shape = (self.weight.shape[0], ho, wo)
        return self.shape

    def lower(self, x):
        O, cg, kh, kw = self.weight.shape
        og = O // self.groups
        tasks = []
        for g in range(self.groups):
            xg = x[:, g * cg:(g + 1) * cg]
            X = self._patches(xg)
            W = self.weight[g * og:(g + 1) * og].reshape(og, cg * kh * kw)
            C = np.broadcast_to(self.bias[g * og:(g + 1) * og, None], (og, X.shape[1]))
            tasks.append(MatmulTask(np.ascontiguousarray(W), np.ascontiguousarray(X),
                                    np.ascontiguousarray(C), self.activation, (g,),
                                    self.criterion_activation, self.has_bias))
        return tasks

    def _patches(self, x):
        """The patch matrix (rows ``(c, ki, kj)``, columns ``(image, i, j)``):
        :func:`networks.model.im2col` for equal strides and paddings along H and W and no
        dilation, else the same loop with per-axis strides, paddings and dilations."""
        kh, kw = self.weight.shape[2:]
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        if sh == sw and ph == pw and dh == dw == 1:
            return im2col(x, (kh, kw), sh, ph)
        b, c = x.shape[:2]
        _, ho, wo = self.shape
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        cols = np.empty((c, kh, kw, b, ho, wo), dtype=x.dtype)
        for ki in range(kh):
            for kj in range(kw):
                win = xp[:, :, ki * dh:ki * dh + sh * ho:sh, kj * dw:kj * dw + sw * wo:sw]
                cols[:, ki, kj] = win.transpose(1, 0, 2, 3)
        return cols.reshape(c * kh * kw, b * ho * wo)

    def assemble(self, outs, batch):
        _, ho, wo = self.shape
        # (O, B*ho*wo), columns (b, i, j); one group: no copy before the transposing one
        v = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)
        return np.ascontiguousarray(v.reshape(-1, batch, ho, wo).transpose(1, 0, 2, 3))


class AvgPool2d(Conv2d):
    """Average pooling: a reduction on an accumulator (op class ``"avgpool"``).

    Lowered as a depthwise convolution whose weights are ``1 / (kh kw)`` (exact in
    binary64 for power-of-two windows; otherwise the binary64 rounding of it) and no
    padding contribution (zero padding is counted, as PyTorch's default
    ``count_include_pad=True``).
    """

    op_class = "avgpool"

    def __init__(self, name, kernel, stride=None, padding=0, channels=None, inputs=None):
        self.kernel = _pair(kernel)
        self._stride = _pair(stride if stride is not None else kernel)
        self._padding = padding
        self.channels = channels
        Op.__init__(self, name, inputs)
        self._activation = "identity"

    def infer(self, in_shapes):
        (s,) = in_shapes
        self._need(s, 3, "(C, H, W)")
        c = s[0]
        kh, kw = self.kernel
        Conv2d.__init__(self, self.name, np.full((c, 1, kh, kw), 1.0 / (kh * kw)), None,
                        self._stride, self._padding, groups=c, inputs=self.inputs)
        return Conv2d.infer(self, in_shapes)

    def lower(self, x):
        # one task per channel (groups = C): C small matmuls of K = kh*kw
        return Conv2d.lower(self, x)


class Dense(LinearOp):
    """Fully connected layer ``v = W x + b``, ``W`` of shape (out, in) (PyTorch layout).

    With ``last_axis=True`` the input may have any per-image shape ``(..., in)`` and the
    layer maps its last axis (``torch.nn.functional.linear``): every vector along it is
    one column of the task, image-slowest. With ``flatten=True`` the input may have any
    per-image shape of ``in`` elements, read in C order (a :class:`Flatten` fused into
    the layer, as the shipped CNNs' first dense layer reads its conv input)."""

    op_class = "dense"

    def __init__(self, name, weight, bias=None, activation="identity", inputs=None,
                 last_axis=False, flatten=False):
        super().__init__(name, inputs)
        self.last_axis = bool(last_axis)
        self.flatten = bool(flatten)
        self.weight = _finite(name, "weight", weight)
        if self.weight.ndim != 2:
            raise ValueError(f"layer {name!r}: tensor weight has shape {self.weight.shape}, "
                             "expected (out_features, in_features)")
        m = self.weight.shape[0]
        self.has_bias = bias is not None
        self.bias = np.zeros(m) if bias is None else _finite(name, "bias", bias)
        if self.bias.shape != (m,):
            raise ValueError(f"layer {name!r}: tensor bias has shape {self.bias.shape}, "
                             f"expected ({m},)")
        _check_activation(name, activation)
        self._activation = activation

    @property
    def inner_length(self):
        return int(self.weight.shape[1])

    def infer(self, in_shapes):
        (s,) = in_shapes
        if self.flatten:
            s = (int(np.prod(s)),)
        if not (self.last_axis and len(s) >= 1):
            self._need(s, 1, "(features,) (add a Flatten before this layer)")
        if s[-1] != self.weight.shape[1]:
            raise ValueError(f"layer {self.name!r}: tensor weight has {self.weight.shape[1]} "
                             f"input features, the input has {s[-1]}")
        self.shape = tuple(s[:-1]) + (self.weight.shape[0],)
        return self.shape

    def lower(self, x):
        X = np.ascontiguousarray(x.reshape(-1, self.weight.shape[1]).T)
        C = np.broadcast_to(self.bias[:, None], (self.weight.shape[0], X.shape[1]))
        return [MatmulTask(self.weight, X, np.ascontiguousarray(C), self.activation, (0,),
                           self.criterion_activation, self.has_bias)]

    def assemble(self, outs, batch):
        return np.ascontiguousarray(outs[0].T).reshape((batch,) + self.shape)


class MaxPool2d(Op):
    """Max pooling (exact: no arithmetic). Padding uses ``-inf``."""

    op_class = "maxpool"

    def __init__(self, name, kernel, stride=None, padding=0, inputs=None):
        super().__init__(name, inputs)
        self.kernel = _pair(kernel)
        self.stride = _pair(stride if stride is not None else kernel)
        self.padding = int(padding)

    def infer(self, in_shapes):
        (s,) = in_shapes
        self._need(s, 3, "(C, H, W)")
        c, h, w = s
        ho = conv_output_size(h, self.kernel[0], self.stride[0], self.padding)
        wo = conv_output_size(w, self.kernel[1], self.stride[1], self.padding)
        if ho < 1 or wo < 1:
            raise ValueError(f"layer {self.name!r}: pool window larger than the input")
        self.shape = (c, ho, wo)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        _, ho, wo = self.shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        out = None
        for i in range(kh):
            for j in range(kw):
                win = x[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw]
                out = win.copy() if out is None else np.maximum(out, win)
        return out


class BatchNorm(Op):
    """Inference BatchNorm over the channel axis (axis 1), applied elementwise:
    ``gamma (x - mean) / sqrt(var + eps) + beta`` in binary64 (see module docstring)."""

    op_class = "batchnorm"

    def __init__(self, name, gamma, beta, mean, var, eps=1e-5, inputs=None):
        super().__init__(name, inputs)
        self.gamma, self.beta, self.mean, self.var = (
            _finite(name, k, v) for k, v in
            (("gamma", gamma), ("beta", beta), ("moving_mean", mean),
             ("moving_variance", var)))
        n = self.gamma.shape
        for k in ("beta", "mean", "var"):
            if getattr(self, k).shape != n or len(n) != 1:
                raise ValueError(f"layer {name!r}: tensor {k} has shape "
                                 f"{getattr(self, k).shape}, expected {n} (one per channel)")
        if np.any(self.var + eps <= 0):
            raise ValueError(f"layer {name!r}: tensor moving_variance + eps must be > 0")
        self.eps = float(eps)

    def infer(self, in_shapes):
        (s,) = in_shapes
        if len(s) < 1 or s[0] != self.gamma.shape[0]:
            raise ValueError(f"layer {self.name!r}: tensor gamma has {self.gamma.shape[0]} "
                             f"channels, the input has shape {tuple(s)}")
        self.shape = tuple(s)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        sh = (1, -1) + (1,) * (x.ndim - 2)
        scale = (self.gamma / np.sqrt(self.var + self.eps)).astype(dtype).reshape(sh)
        return (x - self.mean.astype(dtype).reshape(sh)) * scale + \
            self.beta.astype(dtype).reshape(sh)


class Flatten(Op):
    """``(C, H, W) -> (C*H*W,)`` in C order (channel slowest, as ``torch.flatten``)."""

    op_class = "flatten"

    def infer(self, in_shapes):
        (s,) = in_shapes
        self.shape = (int(np.prod(s)),)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        x = np.asarray(xs[0], dtype)
        return x.reshape(x.shape[0], -1)


class Add(Op):
    """Residual add of two tensors of the same shape (one rounding to the activation
    format; a two-term sum, not an accumulator reduction)."""

    op_class = "add"

    def infer(self, in_shapes):
        if len(in_shapes) != 2:
            raise ValueError(f"layer {self.name!r}: Add takes 2 inputs, got {len(in_shapes)}")
        a, b = in_shapes
        if tuple(a) != tuple(b):
            raise ValueError(f"layer {self.name!r}: input tensors have shapes {tuple(a)} "
                             f"and {tuple(b)}")
        self.shape = tuple(a)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        return np.asarray(xs[0], dtype) + np.asarray(xs[1], dtype)


class Activation(Op):
    """A standalone activation (relu/tanh/sigmoid/gelu/silu/softmax; softmax over the
    feature axis of a vector)."""

    op_class = "activation"

    def __init__(self, name, activation, inputs=None):
        super().__init__(name, inputs)
        _check_activation(name, activation, allow_softmax=True)
        self.activation = activation

    def infer(self, in_shapes):
        (s,) = in_shapes
        if self.activation == "softmax" and len(s) != 1:
            raise ValueError(f"layer {self.name!r}: softmax needs a vector input, got "
                             f"shape {tuple(s)}")
        self.shape = tuple(s)
        return self.shape

    def forward(self, xs, dtype=np.float64):
        return apply_activation(self.activation, np.asarray(xs[0], dtype))


def _pair(v):
    if isinstance(v, int | np.integer):
        return (int(v), int(v))
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"expected an int or a pair, got {v!r}")
    return t

