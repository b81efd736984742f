"""A layer graph: named ops, each reading the previous op or named earlier ops.

Example (your own network; see docs/graph.md)::

    from accsim.graph import Graph, Conv2d, MaxPool2d, Flatten, Dense
    g = Graph("tiny", input_shape=(1, 8, 8), ops=[
        Conv2d("conv1", w1, b1, padding=1, activation="relu"),   # w1: (4, 1, 3, 3)
        MaxPool2d("pool1", 2),
        Flatten("flat"),
        Dense("fc", w2, b2),                                      # w2: (10, 64)
    ])
    logits = g.forward(x)          # binary64 (numpy/BLAS), x of shape (B, 1, 8, 8)
"""

from __future__ import annotations

import numpy as np

from accsim.graph.ops import LinearOp, Op

__all__ = ["Graph"]


class Graph:
    """A directed acyclic graph of :class:`~accsim.graph.ops.Op`, evaluated in order.

    Parameters
    ----------
    name : str
    input_shape : tuple of int
        Per-image input shape, e.g. ``(1, 28, 28)`` or ``(784,)``.
    ops : list of Op
        In evaluation order; an op with ``inputs=None`` reads the previous op (or the
        graph input); ``inputs`` may name earlier ops or ``"input"``. The last op's
        output is the network output (logits).

    Raises
    ------
    ValueError
        Duplicate or unknown names, or shapes that do not fit (naming the layer and the
        tensor).
    """

    def __init__(self, name: str, input_shape, ops: list):
        self.name = str(name)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.ops = list(ops)
        if not self.ops:
            raise ValueError(f"graph {name!r} has no layers")
        shapes = {"input": self.input_shape}
        prev = "input"
        for op in self.ops:
            if not isinstance(op, Op):
                raise ValueError(f"graph {name!r}: {op!r} is not an Op")
            if op.name in shapes:
                raise ValueError(f"graph {name!r}: duplicate layer name {op.name!r}")
            if op.inputs is None:
                op.inputs = [prev]
            for i in op.inputs:
                if i not in shapes:
                    raise ValueError(f"layer {op.name!r}: input {i!r} is not an earlier "
                                     "layer (or 'input')")
            shapes[op.name] = op.infer([shapes[i] for i in op.inputs])
            prev = op.name
        self.shapes = shapes

    @property
    def linear_ops(self) -> list:
        return [op for op in self.ops if op.linear]

    @property
    def output_shape(self) -> tuple:
        return self.ops[-1].shape

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    def macs(self) -> int:
        """Multiply-adds per image over all linear ops."""
        return int(sum(op.macs() for op in self.linear_ops))

    def check_input(self, x) -> np.ndarray:
        """``x`` as float64 ``(B,) + input_shape`` (flat ``(B, prod)`` is reshaped)."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise ValueError(f"graph {self.name!r}: input must be numeric, got {x.dtype}")
        if x.ndim == 2 and x.shape[1] == self.input_size and len(self.input_shape) > 1:
            x = x.reshape((x.shape[0],) + self.input_shape)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"graph {self.name!r}: input tensor has shape {x.shape}, "
                             f"expected (batch,) + {self.input_shape}")
        x = np.asarray(x, np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"graph {self.name!r}: input tensor has non-finite values")
        return x

    def forward(self, x, dtype=np.float64, *, return_all: bool = False):
        """Evaluation with numpy in ``dtype`` (float64: the network in binary64, each
        product summed in BLAS's order, whose last bits may depend on its thread count;
        float32: what a float32 framework computes, up to summation order). The runs'
        label-free reference is the exact network,
        :func:`accsim.graph.runner.exact_graph`."""
        x = self.check_input(x).astype(dtype)
        vals = {"input": x}
        for op in self.ops:
            vals[op.name] = op.forward([vals[i] for i in op.inputs], dtype)
        return vals if return_all else vals[self.ops[-1].name]

    def summary(self) -> list:
        """One dict per op: name, class, output shape, inner-product length, MACs."""
        out = []
        for op in self.ops:
            d = op.describe()
            d["shape"] = op.shape
            if isinstance(op, LinearOp):
                d.update(K=op.inner_length, macs=op.macs(), activation=op.activation)
            out.append(d)
        return out
