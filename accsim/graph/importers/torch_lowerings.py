"""The lowering table of the PyTorch front end: one function per ATen op.

:data:`LOWERINGS` maps an ATen op (its overload packet, ``"aten.conv2d"``) to a
function ``lower(b, node, name, a)`` that appends ops of :mod:`accsim.graph.ops` /
:mod:`accsim.graph.tensor_ops` to the builder ``b`` and returns the node's value (a
:class:`_T`: op name and per-image shape). ``a`` holds the op's arguments by schema
name, graph tensors as :class:`_T`, constants as torch tensors or numbers. Every inner
product and every reduction becomes a linear op of an op class
(:data:`accsim.graph.ops.LINEAR_CLASSES`):

* ``conv`` (``aten.conv1d`` / ``conv2d`` / ``convolution``), ``dense`` (``linear``,
  ``addmm``, ``matmul`` by a constant), ``matmul`` (``matmul`` / ``bmm`` of two
  activations, the scores and the context of ``scaled_dot_product_attention``);
* ``softmax`` (the denominators), ``norm`` (the sums of LayerNorm and RMSNorm
  statistics), ``avgpool`` (average and adaptive average pooling), ``sum`` (``sum`` and
  ``mean``).

The walk over an exported program is :mod:`accsim.graph.importers.torch_export`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accsim.graph.ops import AvgPool2d, BatchNorm, Conv2d, Dense, MaxPool2d
from accsim.graph.tensor_ops import (
    Cat,
    Elementwise,
    Embedding,
    Expand,
    Index,
    MatMul,
    Permute,
    ReduceSum,
    Reshape,
    fold,
)

__all__ = ["LOWERINGS"]


@dataclass
class _T:
    """A tensor of the graph being built: the name of the op producing it and its
    per-image (PyTorch, batch 1) shape."""

    name: str
    shape: tuple


class _Builder:
    """Collects the ops of one export; ``add`` names them after the FX node."""

    def __init__(self):
        self.ops = []
        self.shapes = {}
        self.by_name = {}

    def add(self, op, shape=None) -> _T:
        self.ops.append(op)
        self.by_name[op.name] = op
        if shape is not None:
            self.shapes[op.name] = tuple(int(d) for d in shape)
        return _T(op.name, None if shape is None else tuple(int(d) for d in shape))


def _np(c) -> np.ndarray:
    """A constant (torch tensor, number, bool) as a float64 array."""
    import torch

    if isinstance(c, torch.Tensor):
        return c.detach().to(torch.float64).cpu().numpy()
    return np.asarray(c, np.float64)


def _shape(node) -> tuple:
    """The traced shape of the node's (first) result."""
    v = node.meta["val"]
    v = v[0] if isinstance(v, tuple | list) else v
    return tuple(int(d) for d in v.shape)


def _is_const(v) -> bool:
    return not isinstance(v, _T)


def _tensor(a, what: str) -> _T:
    if not isinstance(a, _T):
        raise ValueError(f"{what} must be a tensor computed from the input")
    return a


# ------------------------------------------------------------------ lowerings
# Each lowering gets (builder b, node, name, args) with args bound by the op schema's
# argument names (graph tensors as _T, everything else as constants) and returns the
# value of the node (a _T).

def _linear(b, node, name, a):
    x, w, bias = a["input"], a["weight"], a["bias"]
    if _is_const(w):
        return b.add(Dense(name, _np(w), None if bias is None else _np(bias),
                           inputs=[x.name], last_axis=True), _shape(node))
    wt = b.add(Permute(name + ".wT", _swap_last(len(w.shape)), inputs=[w.name]))
    if bias is None:
        return b.add(MatMul(name, [x.name, wt.name]), _shape(node))
    v = b.add(MatMul(name + ".mm", [x.name, wt.name]))
    return _binary(b, name, "add", v, bias, _shape(node))


def _swap_last(nd):
    p = list(range(nd))
    p[-1], p[-2] = p[-2], p[-1]
    return p


def _addmm(b, node, name, a):
    """``beta self + alpha (mat1 @ mat2)`` (the core-ATen form of a linear layer)."""
    if a["beta"] != 1 or a["alpha"] != 1:
        raise ValueError("addmm with beta or alpha != 1 is not supported")
    x, w, bias = _tensor(a["mat1"], "mat1"), a["mat2"], a["self"]
    if _is_const(w) and _is_const(bias) and _np(bias).size == int(w.shape[1]):
        return b.add(Dense(name, _np(w).T, _np(bias).reshape(-1), inputs=[x.name],
                           last_axis=True), _shape(node))
    v = _matmul(b, node, name + ".mm", {"self": x, "other": w})
    return _binary(b, name, "add", v, bias, _shape(node))


def _matmul(b, node, name, a):
    x = a.get("self", a.get("input"))
    y = a.get("other", a.get("mat2"))
    sx = x.shape if isinstance(x, _T) else tuple(x.shape)
    sy = y.shape if isinstance(y, _T) else tuple(y.shape)
    if len(sx) < 2 or len(sy) < 2:
        raise ValueError("matrix-vector products (1-D operands) are not supported; "
                         "unsqueeze the vector")
    if isinstance(x, _T) and _is_const(y) and len(sy) == 2:
        return b.add(Dense(name, _np(y).T, None, inputs=[x.name], last_axis=True),
                     _shape(node))
    inputs = [v.name for v in (x, y) if isinstance(v, _T)]
    return b.add(MatMul(name, inputs, a_const=None if isinstance(x, _T) else _np(x),
                        b_const=None if isinstance(y, _T) else _np(y)), _shape(node))


def _conv(b, node, name, a, nd):
    x, w, bias = _tensor(a["input"], "the convolution input"), a["weight"], a["bias"]
    if not _is_const(w):
        raise ValueError("the convolution weight must be a parameter (a constant)")
    W = _np(w)
    k = W.shape[2:]
    stride, dil = _tuple(a["stride"], nd), _tuple(a["dilation"], nd)
    pad = a["padding"]
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0,) * nd
        else:  # "same" (stride 1): total padding d (k - 1) on each axis
            tot = [d * (kk - 1) for d, kk in zip(dil, k, strict=True)]
            if any(t % 2 for t in tot):
                raise ValueError("padding='same' with an even kernel span pads "
                                 "asymmetrically; pad explicitly")
            pad = tuple(t // 2 for t in tot)
    pad = _tuple(pad, nd)
    B = None if bias is None else _np(bias)
    out = _shape(node)
    if nd == 2:
        conv = Conv2d(name, W, B, stride=stride, padding=pad, dilation=dil,
                      groups=int(a["groups"]))
        return b.add(fold(conv, 3, inputs=[x.name]), out)
    # conv1d: (..., C, L) -> (..., C, 1, L) -> conv2d with a (1, k) kernel -> (..., O, L')
    lead, (c, L) = x.shape[:-2], x.shape[-2:]
    x4 = b.add(Reshape(name + ".as2d", lead + (c, 1, L), inputs=[x.name]))
    conv = Conv2d(name + ".conv", W[:, :, None, :], B, stride=(1, stride[0]),
                  padding=(0, pad[0]), dilation=(1, dil[0]), groups=int(a["groups"]))
    y = b.add(fold(conv, 3, inputs=[x4.name]))
    return b.add(Reshape(name, out, inputs=[y.name]), out)


def _tuple(v, n):
    if isinstance(v, int | float):
        return (int(v),) * n
    t = tuple(int(e) for e in v)
    return t * n if len(t) == 1 else t


def _convolution(b, node, name, a):
    """``aten.convolution`` (the core-ATen form of conv1d / conv2d)."""
    if a["transposed"]:
        raise ValueError("transposed convolutions are not supported")
    nd = len(a["weight"].shape) - 2
    if nd not in (1, 2):
        raise ValueError(f"{nd}-D convolutions are not supported (1-D and 2-D are)")
    return _conv(b, node, name, a, nd)


def _batch_norm(b, node, name, a):
    x = _tensor(a["input"], "the BatchNorm input")
    if a.get("training"):
        raise ValueError("training-mode BatchNorm (batch statistics): call "
                         "module.eval() before importing")
    if a["running_mean"] is None or a["running_var"] is None:
        raise ValueError("BatchNorm without running statistics is not supported")
    c = x.shape[1]
    g = np.ones(c) if a["weight"] is None else _np(a["weight"])
    be = np.zeros(c) if a["bias"] is None else _np(a["bias"])
    bn = BatchNorm(name, g, be, _np(a["running_mean"]), _np(a["running_var"]),
                   eps=float(a["eps"]))
    return b.add(fold(bn, len(x.shape) - 1, inputs=[x.name]), _shape(node))


def _softmax_ops(b, name, x, axis, out):
    """``e = exp(x - max)``, the sum of ``e`` on a model of op class ``softmax``,
    ``e / sum`` (three ops, each rounded once to the activation format)."""
    ax = axis % len(x.shape)
    e = b.add(Elementwise(name + ".exp", "softmax_exp", [x.name], axis=ax + 1))
    s = _sum(b, name + ".sum", [ax], "softmax", e)
    return b.add(Elementwise(name, "div", [e.name, s.name]), out)


def _sum(b, name, axes, op_class, x):
    """A reduction read only by the elementwise op that completes it (a division by
    ``n`` or by the sum): its computed value is not rounded to the activation format
    (the accumulator's output feeds that op, which is rounded once), as
    :mod:`accsim.transformer.minilm_graph` does."""
    s = ReduceSum(name, axes, op_class, inputs=[x.name])
    s.round_output = False
    return b.add(s)


def _softmax(b, node, name, a):
    x = _tensor(a["self"], "the softmax input")
    return _softmax_ops(b, name, x, int(a["dim"]), _shape(node))


def _norm_axes(x, normalized_shape):
    k = len(normalized_shape)
    if tuple(x.shape[-k:]) != tuple(int(d) for d in normalized_shape):
        raise ValueError(f"normalized_shape {list(normalized_shape)} does not match the "
                         f"input's trailing axes {x.shape}")
    nd = len(x.shape)
    return list(range(nd - k, nd)), int(np.prod(normalized_shape))


def _layer_norm(b, node, name, a):
    """``mean = s / n``; ``d = x - mean``; ``var = q / n`` with ``q`` the sum of
    ``d^2``; ``d * (1 / sqrt(var + eps))`` (torch's CPU kernel multiplies by
    ``rstd = 1 / sqrt(var + eps)``); ``* gamma + beta``. Each elementwise step is rounded
    once; the two sums (op class ``norm``) are not (:func:`_sum`). The op order of
    :mod:`accsim.transformer.minilm_graph`."""
    x = _tensor(a["input"], "the LayerNorm input")
    axes, n = _norm_axes(x, a["normalized_shape"])
    s = _sum(b, name + ".sum", axes, "norm", x)
    mean = b.add(Elementwise(name + ".mean", "div", [s.name, float(n)]))
    d = b.add(Elementwise(name + ".center", "sub", [x.name, mean.name]))
    q = b.add(Elementwise(name + ".square", "square", [d.name]))
    v = _sum(b, name + ".sumsq", axes, "norm", q)
    var = b.add(Elementwise(name + ".var", "div", [v.name, float(n)]))
    return _normalize(b, node, name, _T(var.name, None), d, a, eps=float(a["eps"]),
                   beta=a.get("bias"))


def _normalize(b, node, name, var, x, a, eps, beta=None):
    """``x * (1 / sqrt(var + eps))``, then ``* gamma (+ beta)`` (each rounded once)."""
    gamma = a.get("weight")
    if gamma is None and beta is None:
        return b.add(Elementwise(name, "mul_rsqrt", [x.name, var.name], eps=eps),
                     _shape(node))
    y = b.add(Elementwise(name + ".norm", "mul_rsqrt", [x.name, var.name], eps=eps))
    if gamma is not None and beta is not None:
        return b.add(Elementwise(name, "affine", [y.name], gamma=_np(gamma),
                                 beta=_np(beta)), _shape(node))
    if gamma is not None:
        return b.add(Elementwise(name, "mul", [y.name, _np(gamma)]), _shape(node))
    return b.add(Elementwise(name, "add", [y.name, _np(beta)]), _shape(node))


def _rms_norm(b, node, name, a):
    """``ms = q / n`` with ``q`` the sum of ``x^2``; ``x * (1 / sqrt(ms + eps))``;
    ``* gamma`` (as :func:`_layer_norm`, without centring)."""
    import torch

    x = _tensor(a["input"], "the RMSNorm input")
    axes, n = _norm_axes(x, a["normalized_shape"])
    eps = a["eps"]
    if eps is None:  # torch's default: the machine epsilon of the input's dtype
        eps = torch.finfo(node.args[0].meta["val"].dtype).eps
    q = b.add(Elementwise(name + ".square", "square", [x.name]))
    v = _sum(b, name + ".sumsq", axes, "norm", q)
    ms = b.add(Elementwise(name + ".ms", "div", [v.name, float(n)]))
    return _normalize(b, node, name, _T(ms.name, None), x, a, eps=float(eps))


def _max_pool(b, node, name, a):
    x = _tensor(a["self"], "the pooling input")
    k = _tuple(a["kernel_size"], 2)
    stride = _tuple(a["stride"], 2) if a["stride"] else k
    ph, pw = _tuple(a["padding"], 2)
    if _tuple(a["dilation"], 2) != (1, 1) or a["ceil_mode"] or ph != pw:
        raise ValueError("max pooling with dilation, ceil_mode or unequal paddings is "
                         "not supported")
    return b.add(fold(MaxPool2d(name, k, stride, ph), 3, inputs=[x.name]), _shape(node))


def _avg_pool(b, node, name, a):
    x = _tensor(a["self"], "the pooling input")
    k = _tuple(a["kernel_size"], 2)
    stride = _tuple(a["stride"], 2) if a["stride"] else k
    pad = _tuple(a["padding"], 2)
    if a["ceil_mode"] or a["divisor_override"] is not None or \
            (not a["count_include_pad"] and any(pad)):
        raise ValueError("average pooling with ceil_mode, divisor_override or "
                         "count_include_pad=False and padding is not supported")
    return b.add(fold(AvgPool2d(name, k, stride, pad), 3, inputs=[x.name]), _shape(node))


def _adaptive_avg_pool(b, node, name, a):
    x = _tensor(a["self"], "the pooling input")
    h, w = x.shape[-2:]
    oh, ow = _tuple(a["output_size"], 2)
    if h % oh or w % ow:
        raise ValueError(f"adaptive average pooling from {h}x{w} to {oh}x{ow}: only "
                         "output sizes that divide the input are supported")
    k = (h // oh, w // ow)
    return b.add(fold(AvgPool2d(name, k, k), 3, inputs=[x.name]), _shape(node))


def _embedding(b, node, name, a):
    if not _is_const(a["weight"]):
        raise ValueError("the embedding table must be a parameter")
    ids = _tensor(a["indices"], "the embedding indices")
    return b.add(Embedding(name, _np(a["weight"]), inputs=[ids.name]), _shape(node))


def _operand(v):
    return v.name if isinstance(v, _T) else _np(v)


def _binary(b, name, fn, x, y, out):
    return b.add(Elementwise(name, fn, [_operand(x), _operand(y)]), out)


def _arith(fn):
    def lower(b, node, name, a):
        x, y = a["self"], a["other"]
        alpha = a.get("alpha", 1)
        if alpha != 1:
            y = b.add(Elementwise(name + ".alpha", "mul", [_operand(y), _np(alpha)]))
        if a.get("rounding_mode") is not None:
            raise ValueError("division with a rounding mode is not supported")
        return _binary(b, name, fn, x, y, _shape(node))
    return lower


def _unary(fn):
    def lower(b, node, name, a):
        x = _tensor(a["self"], "the input")
        f = fn
        if fn == "gelu":
            appr = a.get("approximate", "none")
            if appr not in ("none", "tanh"):
                raise ValueError(f"gelu(approximate={appr!r}) is not supported")
            f = "gelu_tanh" if appr == "tanh" else "gelu_bert"
        return b.add(Elementwise(name, f, [x.name]), _shape(node))
    return lower


def _pow(b, node, name, a):
    x = _tensor(a["self"], "the base")
    if a["exponent"] != 2:
        raise ValueError(f"pow with exponent {a['exponent']!r} is not supported (2 is)")
    return b.add(Elementwise(name, "square", [x.name]), _shape(node))


def _reshape(b, node, name, a):
    x = _tensor(a.get("self", a.get("input")), "the input")
    return b.add(Reshape(name, _shape(node), inputs=[x.name]), _shape(node))


def _identity(b, node, name, a):
    if a.get("train"):
        raise ValueError("dropout in training mode: call module.eval() before importing")
    x = a.get("self", a.get("input"))
    return _tensor(x, "the input")


def _to_dtype(b, node, name, a):
    import torch

    dt = node.meta["val"].dtype
    if dt not in (torch.float32, torch.float64):
        raise ValueError(f"a cast to {dt} is not supported (graphs hold binary64 values "
                         "rounded to the activation format)")
    return _tensor(a["self"], "the input")


def _permute(b, node, name, a):
    x = _tensor(a["self"], "the input")
    nd = len(x.shape)
    if "dims" in a:
        perm = [int(d) % nd for d in a["dims"]]
    else:  # transpose / t
        perm = list(range(nd))
        if nd >= 2:
            d0, d1 = (int(a["dim0"]) % nd, int(a["dim1"]) % nd) if "dim0" in a \
                else (0, 1)
            perm[d0], perm[d1] = perm[d1], perm[d0]
    return b.add(Permute(name, perm, inputs=[x.name]), _shape(node))


def _slice(b, node, name, a):
    x = _tensor(a["self"], "the input")
    nd = len(x.shape)
    dim = int(a["dim"]) % nd
    idx = [slice(None)] * nd
    if "index" in a:  # select
        idx[dim] = int(a["index"])
    elif "length" in a:  # narrow
        s = int(a["start"])
        idx[dim] = slice(s, s + int(a["length"]))
    else:
        idx[dim] = slice(a["start"], a["end"], a["step"])
    return b.add(Index(name, tuple(idx), inputs=[x.name]), _shape(node))


def _cat(b, node, name, a):
    ts = [_tensor(t, "every concatenated tensor") for t in a["tensors"]]
    return b.add(Cat(name, int(a["dim"]), inputs=[t.name for t in ts]), _shape(node))


def _expand(b, node, name, a):
    x = _tensor(a["self"], "the input")
    return b.add(Expand(name, _shape(node), inputs=[x.name]), _shape(node))


def _reduce(mean):
    def lower(b, node, name, a):
        x = _tensor(a["self"], "the input")
        dims = a.get("dim")
        axes = list(range(len(x.shape))) if not dims else [int(d) for d in dims]
        n = int(np.prod([x.shape[d] for d in axes]))
        if mean:
            s = _sum(b, name + ".sum", axes, "sum", x)
            s = b.add(Elementwise(name + ".mean", "div", [s.name, float(n)]))
        else:
            s = b.add(ReduceSum(name + ".sum", axes, "sum", inputs=[x.name]))
        return b.add(Reshape(name, _shape(node), inputs=[s.name]), _shape(node))
    return lower


def _sdpa(b, node, name, a):
    q, k, v = (_tensor(a[t], f"the attention {t}") for t in ("query", "key", "value"))
    if a["dropout_p"]:
        raise ValueError("attention dropout_p > 0 is not supported (inference)")
    if a.get("enable_gqa"):
        raise ValueError("grouped-query attention (enable_gqa=True) is not supported")
    E, L, S = q.shape[-1], q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(E) if a["scale"] is None else float(a["scale"])
    kt = b.add(Permute(name + ".kT", _swap_last(len(k.shape)), inputs=[k.name]))
    sc = b.add(MatMul(name + ".scores", [q.name, kt.name]))
    sc = b.add(Elementwise(name + ".scale", "mul", [sc.name, scale]))
    mask = a["attn_mask"]
    if a["is_causal"]:
        if mask is not None:
            raise ValueError("attn_mask and is_causal=True together")
        mask = np.tril(np.ones((L, S), bool))
    if mask is not None:
        m = mask.name if isinstance(mask, _T) else _np(mask)
        if _mask_is_bool(node, mask):
            sc = b.add(Elementwise(name + ".mask", "keep_where", [sc.name, m],
                                   value=-np.inf))
        else:
            sc = b.add(Elementwise(name + ".mask", "add", [sc.name, m]))
    shape = tuple(int(d) for d in q.shape[:-1]) + (S,)
    p = _softmax_ops(b, name + ".softmax", _T(sc.name, shape), -1, None)
    return b.add(MatMul(name, [p.name, v.name]), _shape(node))


def _mask_is_bool(node, mask):
    import torch

    if isinstance(mask, np.ndarray):
        return mask.dtype == np.bool_
    if isinstance(mask, torch.Tensor):
        return mask.dtype == torch.bool
    names = [arg.name for arg in node.target._schema.arguments]
    i = names.index("attn_mask")
    src = node.args[i] if i < len(node.args) else node.kwargs["attn_mask"]
    return src.meta["val"].dtype == torch.bool


#: The one table: ATen op (overload packet) -> lowering. The ops of ``torch.export``'s
#: graph before decompositions (torch >= 2.6), and their core-ATen forms (what
#: ``run_decompositions()`` gives and older torch exports: ``convolution``, ``addmm``,
#: ``native_layer_norm``, ``_native_batch_norm_legit_no_training``,
#: ``max_pool2d_with_indices``, the CPU flash attention op; an op with several results
#: yields its output first and nothing else).
LOWERINGS = {
    "aten.linear": _linear, "aten.addmm": _addmm,
    "aten.matmul": _matmul, "aten.mm": _matmul, "aten.bmm": _matmul,
    "aten.conv1d": lambda b, n, name, a: _conv(b, n, name, a, 1),
    "aten.conv2d": lambda b, n, name, a: _conv(b, n, name, a, 2),
    "aten.convolution": _convolution,
    "aten.scaled_dot_product_attention": _sdpa,
    "aten._scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "aten.softmax": _softmax, "aten._softmax": _softmax,
    "aten.layer_norm": _layer_norm, "aten.native_layer_norm": _layer_norm,
    "aten.rms_norm": _rms_norm,
    "aten.batch_norm": _batch_norm,
    "aten._native_batch_norm_legit_no_training": _batch_norm,
    "aten.max_pool2d": _max_pool, "aten.max_pool2d_with_indices": _max_pool,
    "aten.avg_pool2d": _avg_pool,
    "aten.adaptive_avg_pool2d": _adaptive_avg_pool,
    "aten.embedding": _embedding,
    "aten.add": _arith("add"), "aten.sub": _arith("sub"), "aten.mul": _arith("mul"),
    "aten.div": _arith("div"),
    "aten.relu": _unary("relu"), "aten.relu_": _unary("relu"),
    "aten.gelu": _unary("gelu"), "aten.silu": _unary("silu"), "aten.silu_": _unary("silu"),
    "aten.sigmoid": _unary("sigmoid"), "aten.tanh": _unary("tanh"),
    "aten.neg": _unary("neg"), "aten.rsqrt": _unary("rsqrt"), "aten.pow": _pow,
    "aten.view": _reshape, "aten.reshape": _reshape, "aten._unsafe_view": _reshape,
    "aten.flatten": _reshape, "aten.unflatten": _reshape, "aten.squeeze": _reshape,
    "aten.unsqueeze": _reshape,
    "aten.permute": _permute, "aten.transpose": _permute, "aten.t": _permute,
    "aten.slice": _slice, "aten.select": _slice, "aten.narrow": _slice,
    "aten.cat": _cat, "aten.expand": _expand,
    "aten.sum": _reduce(False), "aten.mean": _reduce(True),
    "aten.contiguous": _identity, "aten.clone": _identity, "aten.dropout": _identity,
    "aten.alias": _identity, "aten.detach": _identity,
    "aten.to": _to_dtype, "aten._to_copy": _to_dtype, "aten.type_as": _to_dtype,
}


