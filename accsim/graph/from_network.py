"""The shipped networks (:mod:`networks`, every layer ``phi(W x + b)``) as layer graphs,
so the existing MLP / CNN path runs through :func:`accsim.graph.run_graph` too (with
the same bits as :func:`accsim.run.executor.run_batch`, tested)."""

from __future__ import annotations

from accsim.graph.graph import Graph
from accsim.graph.ops import Conv2d, Dense, Flatten

__all__ = ["graph_from_network"]


def graph_from_network(net) -> Graph:
    """A :class:`Graph` of a :class:`networks.Network` (a Flatten before each dense layer
    that follows a convolution; the flatten orders agree: channel slowest)."""
    ops, prev_conv = [], False
    first = net.layers[0]
    in_shape = tuple(first.in_shape) if first.kind == "conv" else (first.W.shape[1],)
    for i, lay in enumerate(net.layers):
        name = f"layer{i}"
        if lay.kind == "conv":
            c = lay.in_shape[0]
            kh, kw = lay.kernel
            ops.append(Conv2d(name, lay.W.reshape(lay.W.shape[0], c, kh, kw), lay.b,
                              stride=lay.stride, padding=lay.padding,
                              activation=lay.activation))
            prev_conv = True
        else:
            if prev_conv:
                ops.append(Flatten(f"flatten{i}"))
                prev_conv = False
            ops.append(Dense(name, lay.W, lay.b, activation=lay.activation))
    return Graph(net.name, in_shape, ops)
