"""Build a :class:`Graph` from a declared architecture and a dict of named tensors.

The architecture is a list of layer specs (TOML tables in a config, or dicts); tensors
are looked up by the PyTorch state-dict convention ``<weights>.weight``,
``<weights>.bias`` (and ``.running_mean`` / ``.running_var`` for BatchNorm), where
``weights`` defaults to the layer's ``name``. Layer types and their keys:

=============  ==========================================================================
type           keys (defaults)
=============  ==========================================================================
conv2d         out_channels, kernel, stride (1), padding (0), groups (1), bias (true),
               activation ("identity")
dense          out_features, bias (true), activation ("identity")
batchnorm      eps (1e-5)
maxpool2d      kernel, stride (= kernel), padding (0)
avgpool2d      kernel, stride (= kernel), padding (0)
flatten        -
add            inputs = [a, b]
activation     activation
=============  ==========================================================================

Every layer may set ``inputs`` (names of earlier layers, ``"input"`` for the graph
input; default: the previous layer). Every declared tensor must be in the dict with
the declared shape, and every tensor of the dict must be used: otherwise a
``ValueError`` names the layer and the tensor.
"""

from __future__ import annotations

import numpy as np

from accsim.graph.graph import Graph
from accsim.graph.ops import (
    Activation,
    Add,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
)

__all__ = ["build_graph", "LAYER_KEYS"]

LAYER_KEYS = {
    "conv2d": {"out_channels", "kernel", "stride", "padding", "groups", "bias", "activation"},
    "dense": {"out_features", "bias", "activation"},
    "batchnorm": {"eps"},
    "maxpool2d": {"kernel", "stride", "padding"},
    "avgpool2d": {"kernel", "stride", "padding"},
    "flatten": set(),
    "add": set(),
    "activation": {"activation"},
}
_COMMON = {"type", "name", "inputs", "weights"}


def build_graph(name: str, input_shape, layers: list, tensors: dict,
                source: str = "state dict") -> Graph:
    """Graph from layer specs and named float tensors (see module docstring).

    Parameters
    ----------
    name : str
    input_shape : sequence of int
        Per-image input shape (channel-first).
    layers : list of dict
    tensors : dict
        Name -> array (a PyTorch state dict converted to numpy, or an ``.npz``).
    source : str
        Named in errors (e.g. the file).

    Raises
    ------
    ValueError
        Unknown layer type or key, a missing / mis-shaped / unused tensor, or shapes
        that do not chain, naming the layer and the tensor.
    """
    tensors = {k: np.asarray(v) for k, v in tensors.items()}
    used = set()
    shapes = {"input": tuple(int(s) for s in input_shape)}
    prev = "input"
    ops = []

    def get(lname, key, shape):
        if key not in tensors:
            raise ValueError(f"{source}: layer {lname!r}: tensor {key!r} is missing")
        a = tensors[key]
        if a.shape != tuple(shape):
            raise ValueError(f"{source}: layer {lname!r}: tensor {key!r} has shape "
                             f"{a.shape}, the declared architecture needs {tuple(shape)}")
        if a.dtype.kind != "f":
            raise ValueError(f"{source}: layer {lname!r}: tensor {key!r} has dtype "
                             f"{a.dtype}, expected a float type")
        used.add(key)
        return a.astype(np.float64)

    from accsim.run.validation import check_layers, format_key

    bad = check_layers(list(layers))
    if bad:
        raise ValueError(f"{source}: layers{format_key(bad[0])}: {bad[1]}")
    for i, spec in enumerate(layers):
        spec = dict(spec)
        t = spec.get("type")
        lname = str(spec.get("name", f"{t}{i}"))
        if t not in LAYER_KEYS:
            raise ValueError(f"{source}: layer {lname!r}: unknown type {t!r}; valid: "
                             f"{', '.join(LAYER_KEYS)}")
        extra = set(spec) - LAYER_KEYS[t] - _COMMON
        if extra:
            raise ValueError(f"{source}: layer {lname!r}: unknown keys {sorted(extra)} for "
                             f"type {t!r}")
        inputs = spec.get("inputs")
        ins = inputs if inputs is not None else [prev]
        for n in ins:
            if n not in shapes:
                raise ValueError(f"{source}: layer {lname!r}: input {n!r} is not an "
                                 "earlier layer")
        s = shapes[ins[0]]
        w = spec.get("weights", lname)
        act = spec.get("activation", "identity")
        if t == "conv2d":
            k = spec["kernel"]
            kh, kw = (k, k) if isinstance(k, int) else k
            g = int(spec.get("groups", 1))
            if len(s) != 3:
                raise ValueError(f"{source}: layer {lname!r}: input has shape {s}, "
                                 "expected (C, H, W)")
            O = int(spec["out_channels"])
            op = Conv2d(lname, get(lname, f"{w}.weight", (O, s[0] // g, kh, kw)),
                        get(lname, f"{w}.bias", (O,)) if spec.get("bias", True) else None,
                        stride=spec.get("stride", 1), padding=spec.get("padding", 0),
                        groups=g, activation=act, inputs=inputs)
        elif t == "dense":
            m = int(spec["out_features"])
            op = Dense(lname, get(lname, f"{w}.weight", (m, int(np.prod(s)))),
                       get(lname, f"{w}.bias", (m,)) if spec.get("bias", True) else None,
                       activation=act, inputs=inputs)
        elif t == "batchnorm":
            c = s[0]
            op = BatchNorm(lname, get(lname, f"{w}.weight", (c,)), get(lname, f"{w}.bias", (c,)),
                           get(lname, f"{w}.running_mean", (c,)),
                           get(lname, f"{w}.running_var", (c,)), eps=spec.get("eps", 1e-5),
                           inputs=inputs)
            if f"{w}.num_batches_tracked" in tensors:
                used.add(f"{w}.num_batches_tracked")
        elif t == "maxpool2d":
            op = MaxPool2d(lname, spec["kernel"], spec.get("stride"), spec.get("padding", 0),
                           inputs=inputs)
        elif t == "avgpool2d":
            op = AvgPool2d(lname, spec["kernel"], spec.get("stride"), spec.get("padding", 0),
                           inputs=inputs)
        elif t == "flatten":
            op = Flatten(lname, inputs=inputs)
        elif t == "add":
            op = Add(lname, inputs=inputs)
        else:
            op = Activation(lname, act, inputs=inputs)
        try:
            shapes[lname] = op.infer([shapes[n] for n in ins])
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        op.inputs = list(ins)
        ops.append(op)
        prev = lname
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(f"{source}: tensors {unused} are not used by the declared "
                         "architecture (wrong architecture or wrong file?)")
    try:
        return Graph(name, input_shape, ops)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
