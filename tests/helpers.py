"""Helpers shared by the tests (importable because ``tests/conftest.py`` puts this
directory on ``sys.path``): bit-level equality and the mode list of the reference."""

import numpy as np
from reference import MODES  # noqa: F401 - the reference's own list, independent of accsim

__all__ = ["MODES", "same_bits", "bits_equal", "run_network", "LayerRun", "tiny_cnn"]


def same_bits(a, b) -> np.ndarray:
    """Elementwise: the float64 values of ``a`` and ``b`` have the same bits (sign of
    zero included); every NaN equals every NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (np.isnan(a) & np.isnan(b)) | (a.view(np.uint64) == b.view(np.uint64))


def bits_equal(a, b) -> bool:
    """Whether every element of ``a`` and ``b`` has the same bits (see :func:`same_bits`)."""
    return bool(np.all(same_bits(a, b)))


class LayerRun:
    """One network layer's results of :func:`run_network` in the layer layout
    ``(n_out, batch)`` of ``networks.Layer.from_columns`` (the op's ``(batch, n_out)``
    arrays transposed, ``holds`` included), with its single task's cost."""

    def __init__(self, r):
        for k in ("computed", "exact", "bound", "level", "kappa_v", "kappa_phi",
                  "propagated", "abs_sum", "bound_prob"):
            v = getattr(r, k)
            setattr(self, k, None if v is None else v.T)
        self.holds = r.holds.T
        (self.cost,) = r.cost
        self.info = r.info


def run_network(net, strategy, x, **kw):
    """A shipped network on one batch through the one engine (its graph through
    ``run_graph`` with the extras): ``(logits, [LayerRun per layer])``."""
    from accsim.graph.from_network import graph_from_network
    from accsim.graph.runner import Assignment, run_graph

    g = graph_from_network(net)
    outs, res = run_graph(g, Assignment({"default": strategy}, "test"), x, extras=True,
                          **kw)
    return outs[g.ops[-1].name], [LayerRun(r) for r in res]


def tiny_cnn(rng):
    """A small conv -> maxpool -> flatten -> dense graph on (2, 6, 6) inputs with e4m3
    weights drawn from ``rng`` (the worker-count and streaming tests' network)."""
    import networks
    from accsim.graph import Conv2d, Dense, Flatten, Graph, MaxPool2d

    def e4m3(shape):
        return networks.to_e4m3(rng.standard_normal(shape)).astype(np.float64)

    return Graph("c", (2, 6, 6), [Conv2d("c1", e4m3((3, 2, 3, 3)), e4m3(3), padding=1,
                                         activation="relu"),
                                  MaxPool2d("p", 2), Flatten("f"),
                                  Dense("d", e4m3((4, 27)), e4m3(4))])

