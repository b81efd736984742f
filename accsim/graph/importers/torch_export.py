"""PyTorch front end: a :class:`torch.nn.Module` to a layer graph through ``torch.export``.

:func:`import_torch` exports the module on ONE image of the example inputs
(``torch.export.export``, the ATen graph before decompositions: ``aten.linear``,
``aten.conv2d``, ``aten.layer_norm``, ``aten.scaled_dot_product_attention`` stay whole;
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` arrive as linear, view and
SDPA nodes) and lowers every node through ONE table,
:data:`~accsim.graph.importers.torch_lowerings.LOWERINGS` (ATen op -> lowering, where
the generic op classes of the inner products and reductions are chosen; ``op_classes``
reassigns them by module path, :mod:`accsim.graph.importers.op_classes`). Tensors keep
PyTorch's per-image layout with the images stacked in front
(:mod:`accsim.graph.tensor_ops`).

Nodes whose inputs are all constants (parameters, buffers, creation ops such as
``aten.zeros`` or ``aten.tril`` of an attention mask) are evaluated once by torch at
import: they prepare weights, they are not inference arithmetic. Any other ATen op is
refused before any work, naming the module path and the op
(``model.encoder.lstm: aten.lstm is not supported``). The lowered graph is checked
against torch's own forward on the example image (:func:`check_lowering`).
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np

from accsim.graph.graph import Graph
from accsim.graph.importers.op_classes import assign_op_classes, parse_op_classes
from accsim.graph.importers.torch_lowerings import _T, LOWERINGS, _Builder, _shape
from accsim.graph.ops import Conv2d, Dense
from accsim.graph.tensor_ops import Elementwise, Reshape

__all__ = ["import_torch", "import_exported", "check_lowering", "load_torch_file",
           "supported_ops"]


def supported_ops() -> list:
    """The ATen ops :func:`import_torch` lowers (besides constant folding)."""
    return sorted(LOWERINGS)


# ------------------------------------------------------------------ the walk

def _floating(node) -> bool:
    v = node.meta.get("val")
    v = v[0] if isinstance(v, tuple | list) else v
    return v is None or v.dtype.is_floating_point


def _op_name(target) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    return str(packet) if packet is not None else getattr(target, "__name__", str(target))


def _module_path(node) -> str:
    """``path.to.module`` (below the root; "" for the root) of the innermost module
    that called the node."""
    stack = node.meta.get("nn_module_stack") or {}
    path = ""
    for v in stack.values():
        path = v[0] if isinstance(v, tuple) else str(v)
    return path


def _where(node, root: str) -> str:
    """``root.path.to.module`` of the innermost module that called the node."""
    path = _module_path(node)
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


#: Elementwise functions of the lowering -> the activation name of
#: :data:`accsim.analysis.kappa.ACTIVATIONS` that the criteria see.
_CRITERION_ACTIVATIONS = {"relu": "relu", "gelu_bert": "gelu", "gelu_tanh": "gelu",
                          "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh"}


def _fuse_activations(ops: list) -> list:
    """A dense layer or convolution whose only reader is a ReLU carries it as its fused
    activation, as the hand-declared graphs do (the adaptive criterion sees its
    condition number). Only ReLU: ``relu(round(v)) == round(relu(v))``, so fusing it
    changes no bit; any other activation (GELU, SiLU, sigmoid, tanh) stays an op of its
    own, applied to the rounded linear output as torch applies it to the layer's
    float32 output, and the linear op records it as its ``criterion_activation``: the
    criteria and controls see its condition number and derivative, the values its own
    rounding. (The tanh approximation of GELU is seen as GELU: the criterion's
    ``kappa_phi`` is an estimate of the same order.) A conv1d, lowered as reshape ->
    conv2d -> reshape, is seen through its last reshape: an elementwise activation
    commutes with it."""
    from accsim.graph.tensor_ops import FoldedLinear

    by_name = {op.name: op for op in ops}
    readers = {}
    for op in ops:
        for i in op.inputs or []:
            readers.setdefault(i, []).append(op)
    rename, drop = {}, set()
    for op in ops:
        if not (isinstance(op, Elementwise) and op.fn in _CRITERION_ACTIVATIONS
                and len(op.inputs) == 1):
            continue
        src = by_name[op.inputs[0]]
        if isinstance(src, Reshape) and len(readers[src.name]) == 1 and src.inputs:
            # conv1d is lowered as reshape -> conv2d -> reshape: an elementwise
            # activation commutes with the last reshape, so it is the conv's
            linear = by_name.get(src.inputs[0])  # None: the graph's input
            if linear is not None and linear.linear and len(readers[linear.name]) == 1:
                src = linear
        inner = src.op if isinstance(src, FoldedLinear) else src
        if not (type(inner) in (Dense, Conv2d) and inner.activation == "identity"
                and len(readers[src.name]) == 1):
            continue
        if op.fn != "relu":
            inner._reader_activation = _CRITERION_ACTIVATIONS[op.fn]
            continue
        inner._activation = op.fn
        rename[op.name] = op.inputs[0]  # the linear op, or the reshape that reads it
        drop.add(op.name)
    out = [op for op in ops if op.name not in drop]
    for op in out:
        if op.inputs:
            op.inputs = [rename.get(i, i) for i in op.inputs]
    return out


def _scale_epilogues(ops: list) -> None:
    """A linear op whose only reader multiplies it by a scalar constant (the
    ``1/sqrt(d)`` of attention scores, ``torch.matmul(q, k.T) * scaling``) is not
    rounded to the activation format before that product: the scaling is the epilogue
    of the product (GEMM's ``alpha``), ``round(v * s)`` with one rounding, as
    :mod:`accsim.transformer.minilm_graph` computes the scores (in place)."""
    readers = {}
    for op in ops:
        for i in op.inputs or []:
            readers.setdefault(i, []).append(op)
    for op in ops:
        r = readers.get(op.name, [])
        if not (op.linear and len(r) == 1 and isinstance(r[0], Elementwise)
                and r[0].fn == "mul" and r[0].inputs == [op.name]):
            continue
        const = [o for o in r[0].operands if not isinstance(o, str)]
        if len(const) == 1 and const[0].size == 1:
            op.round_output = False


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


def import_exported(ep, name: str = "torch", root: str = "model",
                    op_classes=None) -> Graph:
    """Lower an :class:`torch.export.ExportedProgram` traced on ONE image (batch 1) to a
    :class:`Graph` whose input is ``(B,) + shape[1:]`` of the traced input.

    ``op_classes``: op classes by module path (:mod:`accsim.graph.importers.op_classes`).

    Raises
    ------
    ValueError
        An op that is neither lowered nor constant (naming ``root.module.path`` and
        ``aten.op``), a second tensor input, a tuple output, or arguments a lowering
        does not support (naming the path and the op) - all before any simulation.
    """
    from torch.export.graph_signature import InputKind

    selectors = parse_op_classes(op_classes)
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
    paths = {}  # op name -> module path of the node it was lowered from
    env[inp] = b.add(Reshape(inp.name + ".image", in_shape, inputs=["input"]), in_shape)
    b.ops[-1].round_output = _floating(inp)
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
                first = len(b.ops)
                try:
                    v = LOWERINGS[op](b, node, node.name, _bind(node, env))
                except ValueError as exc:
                    raise ValueError(f"{_where(node, root)}: {op}: {exc}") from None
                for new in b.ops[first:]:
                    paths[new.name] = _module_path(node)
                n_out = len(node.target._schema.returns)
                env[node] = (v,) + (None,) * (n_out - 1) if n_out > 1 else v
                if isinstance(v, _T) and not _floating(node):  # indices: never rounded
                    b.by_name[v.name].round_output = False
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
    ops = _fuse_activations(b.ops)
    _scale_epilogues(ops)
    graph = Graph(name, in_shape[1:], ops)
    assign_op_classes(graph.linear_ops, paths, selectors, root)
    # integer inputs (token ids) are indices, not values: simulate keeps them in binary64
    graph.integer_input = not _floating(inp)
    for op in graph.ops:
        want = b.shapes.get(op.name)
        if want is not None and tuple(op.shape) != want:  # pragma: no cover - invariant
            raise ValueError(f"{root}: op {op.name!r} has shape {op.shape}, torch "
                             f"traced {want}")
    return graph


def import_torch(module, example_inputs=None, *, name: str | None = None,
                 op_classes=None) -> Graph:
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
    op_classes : mapping, optional
        Selector -> op class, e.g. ``{"encoder.layer.*.attention.self.query": "qkv",
        "**.LayerNorm:norm[0]": "ln_mean"}`` (:mod:`accsim.graph.importers.op_classes`):
        the matched inner products and reductions run on that class's strategy; the
        others keep their generic class (``dense``, ``matmul``, ``softmax``, ``norm``...).

    Returns
    -------
    Graph
        Input ``(B,) + example.shape[1:]``; output ``(B,) + torch_output.shape[1:]``.

    Raises
    ------
    ValueError
        Unsupported ops (``model.encoder.lstm: aten.lstm is not supported``) and
        arguments, bad ``op_classes`` (before the export), before any simulation.
    """
    import torch

    parse_op_classes(op_classes)  # refuse a bad selector or class before any work
    if isinstance(module, str | Path):
        return load_torch_file(str(module), None, name or Path(str(module)).stem,
                               op_classes=op_classes)
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
    graph = import_exported(ep, name or type(module).__name__, op_classes=op_classes)
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


def load_torch_file(spec: str, base: Path | None = None, name: str = "torch",
                    op_classes=None):
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
        return import_torch(res[0], res[1], name=name, op_classes=op_classes)
    path = resolve_file(spec, base)
    names = _zip_names(path)
    if any(n.endswith("serialized_exported_program.json") or "/models/" in n
           for n in names):
        ep = _batch_one(torch.export.load(str(path)), path)
        graph = import_exported(ep, name, op_classes=op_classes)
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
