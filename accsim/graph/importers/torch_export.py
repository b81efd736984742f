"""PyTorch front end: a :class:`torch.nn.Module` to a layer graph through ``torch.export``.

:func:`import_torch` exports the module on ONE image of the example inputs
(``torch.export.export``, the ATen graph before decompositions: ``aten.linear``,
``aten.conv2d``, ``aten.layer_norm``, ``aten.scaled_dot_product_attention`` stay whole;
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` arrive as linear, view and
SDPA nodes) and lowers every node through ONE table, :data:`LOWERINGS` (ATen op ->
lowering function). Each lowering appends ops of :mod:`accsim.graph.ops` /
:mod:`accsim.graph.tensor_ops`; tensors keep PyTorch's per-image layout with the images
stacked in front (:mod:`accsim.graph.tensor_ops`). Every inner product and every
reduction becomes a linear op of an op class (:data:`accsim.graph.ops.LINEAR_CLASSES`)
that the runner runs on that class's accumulator model:

* ``conv`` (``aten.conv1d`` / ``conv2d``), ``dense`` (``linear``, ``matmul`` by a
  constant), ``matmul`` (``matmul`` / ``bmm`` of two activations, the scores and the
  context of ``scaled_dot_product_attention``);
* ``softmax`` (the denominators), ``norm`` (the sums of LayerNorm and RMSNorm
  statistics), ``avgpool`` (average and adaptive average pooling), ``sum`` (``sum`` and
  ``mean``).

Nodes whose inputs are all constants (parameters, buffers, creation ops such as
``aten.zeros`` or ``aten.tril`` of an attention mask) are evaluated once by torch at
import: they prepare weights, they are not inference arithmetic. Any other ATen op is
refused before any work, naming the module path and the op
(``model.encoder.lstm: aten.lstm is not supported``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accsim.graph.graph import Graph
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

__all__ = ["import_torch", "import_exported", "check_lowering", "load_torch_file",
           "LOWERINGS", "supported_ops"]


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

    def add(self, op, shape=None) -> _T:
        self.ops.append(op)
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
    s = b.add(ReduceSum(name + ".sum", [ax], "softmax", inputs=[e.name]))
    return b.add(Elementwise(name, "div", [e.name, s.name]), out)


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
    x = _tensor(a["input"], "the LayerNorm input")
    axes, n = _norm_axes(x, a["normalized_shape"])
    s = b.add(ReduceSum(name + ".sum", axes, "norm", inputs=[x.name]))
    d = b.add(Elementwise(name + ".center", "center", [x.name, s.name], n=n))
    q = b.add(Elementwise(name + ".square", "square", [d.name]))
    v = b.add(ReduceSum(name + ".sumsq", axes, "norm", inputs=[q.name]))
    kw = {k: _np(a[t]) for k, t in (("gamma", "weight"), ("beta", "bias"))
          if a.get(t) is not None}
    return b.add(Elementwise(name, "layer_norm", [d.name, v.name], n=n,
                             eps=float(a["eps"]), **kw), _shape(node))


def _rms_norm(b, node, name, a):
    import torch

    x = _tensor(a["input"], "the RMSNorm input")
    axes, n = _norm_axes(x, a["normalized_shape"])
    eps = a["eps"]
    if eps is None:  # torch's default: the machine epsilon of the input's dtype
        eps = torch.finfo(node.args[0].meta["val"].dtype).eps
    q = b.add(Elementwise(name + ".square", "square", [x.name]))
    v = b.add(ReduceSum(name + ".sumsq", axes, "norm", inputs=[q.name]))
    kw = {} if a["weight"] is None else {"gamma": _np(a["weight"])}
    return b.add(Elementwise(name, "rms_norm", [x.name, v.name], n=n, eps=float(eps),
                             **kw), _shape(node))


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
            f = "gelu_tanh" if appr == "tanh" else "gelu"
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
        s = b.add(ReduceSum(name + ".sum", axes, "sum", inputs=[x.name]))
        if mean:
            s = b.add(Elementwise(name + ".mean", "div", [s.name, float(n)]))
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


def supported_ops() -> list:
    """The ATen ops :func:`import_torch` lowers (besides constant folding)."""
    return sorted(LOWERINGS)


# ------------------------------------------------------------------ the walk

def _op_name(target) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    return str(packet) if packet is not None else getattr(target, "__name__", str(target))


def _where(node, root: str) -> str:
    """``root.path.to.module`` of the innermost module that called the node."""
    stack = node.meta.get("nn_module_stack") or {}
    path = ""
    for v in stack.values():
        path = v[0] if isinstance(v, tuple) else str(v)
    return root + ("." + path if path else "")


def _bind(node, env) -> dict:
    """The node's arguments by schema name, defaults filled, values from ``env``."""
    def val(x):
        if hasattr(x, "op") and hasattr(x, "meta"):  # an fx Node
            return env[x]
        if isinstance(x, list | tuple):
            return type(x)(val(e) for e in x)
        return x

    out = {}
    args = list(node.args)
    for i, arg in enumerate(node.target._schema.arguments):
        if i < len(args) and not arg.kwarg_only:
            out[arg.name] = val(args[i])
        elif arg.name in node.kwargs:
            out[arg.name] = val(node.kwargs[arg.name])
        else:
            out[arg.name] = arg.default_value
    return out


def _check_supported(ep, root: str, const_inputs: set):
    """Every op is lowered or folded; else refuse, naming module path and op."""
    const = set(const_inputs)
    bad = []
    for node in ep.graph.nodes:
        if node.op == "get_attr":
            const.add(node)
        if node.op != "call_function":
            continue
        ins = node.all_input_nodes
        if all(i in const for i in ins):
            const.add(node)
            continue
        name = _op_name(node.target)
        if name != "getitem" and name not in LOWERINGS:
            bad.append(f"{_where(node, root)}: {name} is not supported")
    if bad:
        raise ValueError("\n".join(dict.fromkeys(bad)) + "\n(supported ops: "
                         "docs/graph.md, 'PyTorch models')")
    return const


def _fold(node, env):
    """Evaluate a node whose inputs are all constants with torch."""
    def val(x):
        if hasattr(x, "op") and hasattr(x, "meta"):
            return env[x]
        if isinstance(x, list | tuple):
            return type(x)(val(e) for e in x)
        return x

    args = val(tuple(node.args))
    kwargs = {k: val(v) for k, v in node.kwargs.items()}
    return node.target(*args, **kwargs)


def _fuse_activations(ops: list) -> list:
    """A dense layer or convolution whose only reader is an activation of the
    executor's list (relu, gelu, silu, sigmoid, tanh) carries it as its fused
    activation, as the hand-declared graphs do: the activation is applied to the computed
    pre-activations before the one rounding, and the adaptive criterion sees its
    condition number. (``relu(round(v)) == round(relu(v))``; for the others the fused
    form skips one rounding.)"""
    from accsim.graph.ops import ACTIVATIONS
    from accsim.graph.tensor_ops import FoldedLinear

    by_name = {op.name: op for op in ops}
    readers = {}
    for op in ops:
        for i in op.inputs or []:
            readers.setdefault(i, []).append(op)
    rename, drop = {}, set()
    for op in ops:
        if not (isinstance(op, Elementwise) and op.fn in ACTIVATIONS and op.fn != "softmax"
                and len(op.inputs) == 1):
            continue
        src = by_name[op.inputs[0]]
        inner = src.op if isinstance(src, FoldedLinear) else src
        if not (type(inner) in (Dense, Conv2d) and inner.activation == "identity"
                and len(readers[src.name]) == 1):
            continue
        inner._activation = op.fn
        rename[op.name] = src.name
        drop.add(op.name)
    out = [op for op in ops if op.name not in drop]
    for op in out:
        if op.inputs:
            op.inputs = [rename.get(i, i) for i in op.inputs]
    return out


def check_lowering(graph: Graph, ep, x1) -> float:
    """The lowered graph's binary64 forward against the exported program's own forward
    on the image ``x1`` (a guard against a wrong lowering of a model no test has seen).

    Returns the normwise relative difference; raises ``ValueError`` above ``1e4`` units
    of roundoff of the program's dtype (a wrong axis or operand gives O(1)).
    """
    import torch

    with torch.no_grad():
        out = ep.module()(x1)
    if isinstance(out, tuple | list):
        out = out[0]
    ref = out.detach().to(torch.float64).numpy().reshape(1, -1)
    got = graph.forward(x1.detach().to(torch.float64).numpy().reshape(
        (1,) + graph.input_shape)).reshape(1, -1)
    eps = float(torch.finfo(out.dtype).eps) if out.dtype.is_floating_point else 2.0**-52
    den = float(np.linalg.norm(ref))
    err = float(np.linalg.norm(got - ref)) / (den if den > 0 else 1.0)
    if not err <= 1e4 * eps:
        raise ValueError(f"{graph.name}: the lowered graph differs from torch's forward by "
                         f"{err:.3g} (relative) on the example input: a lowering error, "
                         "please report it with the model")
    return err


def import_exported(ep, name: str = "torch", root: str = "model") -> Graph:
    """Lower an :class:`torch.export.ExportedProgram` traced on ONE image (batch 1) to a
    :class:`Graph` whose input is ``(B,) + shape[1:]`` of the traced input.

    Raises
    ------
    ValueError
        An op that is neither lowered nor constant (naming ``root.module.path`` and
        ``aten.op``), a second tensor input, a tuple output, or arguments a lowering
        does not support (naming the path and the op) - all before any simulation.
    """
    from torch.export.graph_signature import InputKind

    sig = ep.graph_signature
    state, consts = ep.state_dict, ep.constants
    env, const_inputs, user = {}, set(), []
    kinds = {s.arg.name: s for s in sig.input_specs}
    for node in ep.graph.nodes:
        if node.op != "placeholder":
            continue
        spec = kinds[node.name]
        if spec.kind == InputKind.USER_INPUT:
            user.append(node)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            env[node] = state[spec.target] if spec.target in state else consts[spec.target]
            const_inputs.add(node)
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            env[node] = consts[spec.target]
            const_inputs.add(node)
        else:  # pragma: no cover - custom objects, tokens
            raise ValueError(f"{root}: input {node.name!r} of kind {spec.kind.name} is "
                             "not supported")
    tensors = [n for n in user if hasattr(n.meta.get("val"), "shape")]
    if len(tensors) != 1 or len(user) != 1:
        raise ValueError(f"{root}: the model takes {len(user)} inputs; accsim graphs take "
                         "one tensor (wrap the module so forward(x) takes one)")
    const = _check_supported(ep, root, const_inputs)
    (inp,) = tensors
    in_shape = _shape(inp)
    if not in_shape or in_shape[0] != 1:
        raise ValueError(f"{root}: the program was traced on input shape {in_shape}; "
                         "trace it on one image (batch 1)")
    b = _Builder()
    env[inp] = b.add(Reshape(inp.name + ".image", in_shape, inputs=["input"]), in_shape)
    out_node = None
    for node in ep.graph.nodes:
        if node.op == "get_attr":
            env[node] = getattr(ep.graph_module, node.target)
        elif node.op == "call_function":
            if node in const:
                env[node] = _fold(node, env)
            elif node.target is operator.getitem:
                env[node] = env[node.args[0]][node.args[1]]
            else:
                op = _op_name(node.target)
                try:
                    v = LOWERINGS[op](b, node, node.name, _bind(node, env))
                except ValueError as exc:
                    raise ValueError(f"{_where(node, root)}: {op}: {exc}") from None
                n_out = len(node.target._schema.returns)
                env[node] = (v,) + (None,) * (n_out - 1) if n_out > 1 else v
        elif node.op == "output":
            out_node = node
    outs = out_node.args[0]
    if isinstance(outs, list | tuple):
        if len(outs) != 1:
            raise ValueError(f"{root}: the model returns {len(outs)} values; accsim graphs "
                             "have one output (wrap the module to return one tensor)")
        outs = outs[0]
    y = env[outs]
    if not isinstance(y, _T):
        raise ValueError(f"{root}: the output does not depend on the input")
    out_shape = _shape(outs)
    per_image = out_shape[1:] if out_shape and out_shape[0] == 1 else out_shape
    b.add(Reshape("output", per_image, inputs=[y.name]), per_image)
    graph = Graph(name, in_shape[1:], _fuse_activations(b.ops))
    for op in graph.ops:
        want = b.shapes.get(op.name)
        if want is not None and tuple(op.shape) != want:  # pragma: no cover - invariant
            raise ValueError(f"{root}: op {op.name!r} has shape {op.shape}, torch "
                             f"traced {want}")
    return graph


def import_torch(module, example_inputs=None, *, name: str | None = None) -> Graph:
    """A :class:`~accsim.graph.Graph` of a PyTorch module, through ``torch.export``.

    Parameters
    ----------
    module : torch.nn.Module, or str / Path
        A module: put in eval mode, traced on the first image of ``example_inputs``. A
        path: a ``.pt2`` exported program or ``FILE.py:FUNCTION`` (see
        :func:`load_torch_file`; a whole pickled module is refused with a hint).
    example_inputs : torch.Tensor or tuple of one torch.Tensor
        Batch first (not used with a path).
    name : str, optional
        The graph's name (default: the module's class name).

    Returns
    -------
    Graph
        Input ``(B,) + example.shape[1:]``; output ``(B,) + torch_output.shape[1:]``.

    Raises
    ------
    ValueError
        Unsupported ops (``model.encoder.lstm: aten.lstm is not supported``) and
        arguments, before any simulation.
    """
    import torch

    if isinstance(module, str | Path):
        return load_torch_file(str(module), None, name or Path(str(module)).stem)
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"import_torch needs a torch.nn.Module or a file, got "
                         f"{type(module).__name__}")
    args = example_inputs if isinstance(example_inputs, tuple | list) else (example_inputs,)
    if len(args) != 1 or not isinstance(args[0], torch.Tensor):
        raise ValueError("example_inputs: one tensor (batch first) expected; accsim graphs "
                         "take one input")
    x1 = args[0][:1]
    module = module.eval()
    with torch.no_grad():
        ep = torch.export.export(module, (x1,))
    graph = import_exported(ep, name or type(module).__name__)
    check_lowering(graph, ep, x1)
    return graph


# ------------------------------------------------------------------ files

def _zip_names(path: Path) -> list:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _pickled_module_hint(path: Path) -> str:
    return (f"{path}: this is a whole pickled module (torch.save(model)); accsim does not "
            "unpickle code. Save model.state_dict() (format = 'pth' with "
            "[[network.layers]]) or an exported program: torch.export.save("
            "torch.export.export(model, (x[:1],)), 'model.pt2')")


def load_torch_file(spec: str, base: Path | None = None, name: str = "torch"):
    """The :class:`Graph` of ``[network] format = "torch"``.

    ``spec`` is ``FILE.py:FUNCTION`` (a function returning ``(module, example_inputs)``)
    or a ``.pt2`` file (``torch.export.save``; traced on one image or with a dynamic
    batch). A whole pickled module (``torch.save(model)``) is refused with a hint,
    without unpickling it (``torch.load(weights_only=True)`` is tried first).
    """
    import torch

    from accsim.graph.config import resolve_file

    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        file, func = spec.rsplit(":", 1)
        path = resolve_file(file, base)
        import importlib.util

        mod_spec = importlib.util.spec_from_file_location(f"accsim_user_{path.stem}", path)
        mod = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(mod)
        except Exception as exc:  # the user's file: report any failure with its path
            raise ValueError(f"{path}: {type(exc).__name__}: {exc}") from None
        fn = getattr(mod, func, None)
        if not callable(fn):
            raise ValueError(f"{path}: no function {func!r}")
        try:
            res = fn()
        except Exception as exc:  # the user's code: report any failure with its place
            raise ValueError(f"{path}:{func}(): {type(exc).__name__}: {exc}") from None
        if not (isinstance(res, tuple) and len(res) == 2):
            raise ValueError(f"{path}:{func}() must return (module, example_inputs)")
        return import_torch(res[0], res[1], name=name)
    path = resolve_file(spec, base)
    names = _zip_names(path)
    if any(n.endswith("serialized_exported_program.json") or "/models/" in n
           for n in names):
        ep = _batch_one(torch.export.load(str(path)), path)
        graph = import_exported(ep, name)
        (inp,) = [n for n in ep.graph.nodes if n.op == "placeholder"
                  and n.name in {s.arg.name for s in ep.graph_signature.input_specs
                                 if s.kind.name == "USER_INPUT"}]
        v = inp.meta["val"]
        if v.dtype.is_floating_point:  # a seeded image of the traced shape
            gen = torch.Generator().manual_seed(0)
            check_lowering(graph, ep, torch.randn(tuple(v.shape), generator=gen,
                                                  dtype=v.dtype))
        return graph
    if any(n.endswith("data.pkl") for n in names):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any refusal of the safe unpickler
            raise ValueError(_pickled_module_hint(path)) from None
        raise ValueError(f"{path}: a saved {type(obj).__name__} (a state dict?), not a "
                         "model: use format = 'pth' with [[network.layers]], or save an "
                         "exported program (.pt2) or give FILE.py:FUNCTION")
    raise ValueError(f"{path}: not a torch.export .pt2 archive; give a .pt2 file or "
                     "FILE.py:FUNCTION returning (module, example_inputs)")


def _batch_one(ep, path):
    """``ep`` traced on one image: as is if it was, else re-exported at batch 1."""
    import torch

    user = [s for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    if len(user) == 1:
        v = nodes[user[0].arg.name].meta.get("val")
        if v is not None and len(v.shape) and v.shape[0] == 1:
            return ep
        try:
            x1 = torch.zeros((1,) + tuple(int(d) for d in v.shape[1:]), dtype=v.dtype)
            return torch.export.export(ep.module(), (x1,))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: the program was exported on a batch of "
                             f"{int(v.shape[0])} and does not re-trace on one image "
                             f"({type(exc).__name__}); export it on x[:1] or with a "
                             "dynamic batch dimension") from None
    return ep
