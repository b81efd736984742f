"""The shipped networks (:mod:`networks`, every layer ``phi(W x + b)``) as layer graphs:
the MLP and CNN runs of :mod:`accsim.run.experiment` go through
:func:`accsim.graph.runner.run_graph` on them (one op per network layer, so op ``i`` is
layer ``i``: its seed and its row of the per-layer results)."""

from __future__ import annotations

from accsim.graph.graph import Graph
from accsim.graph.ops import Conv2d, Dense

__all__ = ["graph_from_network"]


def graph_from_network(net) -> Graph:
    """A :class:`Graph` of a :class:`networks.Network`: one op per layer, a dense layer
    after a convolution reading its output flattened channel-slowest (``Dense(...,
    flatten=True)``; the flatten orders agree)."""
    ops = []
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
        else:
            ops.append(Dense(name, lay.W, lay.b, activation=lay.activation,
                             flatten=i > 0 and net.layers[i - 1].kind == "conv"))
    return Graph(net.name, in_shape, ops)
