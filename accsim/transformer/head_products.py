"""The attention products of every head of every sentence of a batch as one linear op.

:class:`HeadProducts` takes the per-sentence head stacks ``a_s (heads, M_s, K_s)`` and
``b_s (heads, K_s, N_s)`` of a batch (the scores ``Q_h K_h^T`` or the contexts ``P_h
V_h``; sentences have their own lengths, none is padded) and outputs their products
``a_s[h] @ b_s[h]`` flattened and concatenated in sentence-major, head-major order. It
lowers to ONE task whose ``W`` and ``X`` hold the products' operands row-major in flat
arrays (:func:`problems` gives each product's sentence, head, shape and offsets), so a
MiniLM strategy computes all of them with one batched kernel call
(:func:`accsim.transformer.opclass.matmul_batch`), each product with the bits of a call
of its own: same operands, same per-product scaling, same stochastic-rounding stream
keys (the run's seed and the component's position in its own product).
"""

from __future__ import annotations

import numpy as np

from accsim.graph.ops import LinearOp, MatmulTask

__all__ = ["HeadProducts", "Problem"]


class Problem(tuple):
    """``(sentence, head, M, K, N, a_offset, b_offset, out_offset)`` of one product."""

    __slots__ = ()

    sentence = property(lambda self: self[0])
    head = property(lambda self: self[1])
    M = property(lambda self: self[2])
    K = property(lambda self: self[3])
    N = property(lambda self: self[4])

    def operands(self, W, X):
        """``(A, B)`` of this product, views of the task's flat ``W`` and ``X``."""
        m, k, n, a, b = self[2], self[3], self[4], self[5], self[6]
        return W[a:a + m * k].reshape(m, k), X[b:b + k * n].reshape(k, n)


class HeadProducts(LinearOp):
    """``a_s[h] @ b_s[h]`` of every sentence ``s`` and head ``h`` (module docstring).

    Parameters
    ----------
    name : str
    op_class : str
        ``"scores"`` or ``"context"``.
    inputs : list of str
        ``[a_0, b_0, a_1, b_1, ...]``: per sentence the two head stacks.
    """

    def __init__(self, name, op_class, inputs):
        super().__init__(name, inputs)
        if len(self.inputs) % 2 or not self.inputs:
            raise ValueError(f"layer {name!r}: give pairs of head stacks, got "
                             f"{self.inputs}")
        self.op_class = op_class
        self.problems: list = []

    def infer(self, in_shapes):
        probs, a_off, b_off, o_off = [], 0, 0, 0
        for s in range(len(in_shapes) // 2):
            sa, sb = tuple(in_shapes[2 * s]), tuple(in_shapes[2 * s + 1])
            if len(sa) != 3 or len(sb) != 3 or sa[0] != sb[0] or sa[2] != sb[1]:
                raise ValueError(f"layer {self.name!r}: cannot multiply the head stacks "
                                 f"{sa} and {sb} of sentence {s}")
            for h in range(sa[0]):
                m, k, n = sa[1], sa[2], sb[2]
                probs.append(Problem((s, h, m, k, n, a_off, b_off, o_off)))
                a_off, b_off, o_off = a_off + m * k, b_off + k * n, o_off + m * n
        self.problems = probs
        self.shape = (o_off,)
        return self.shape

    @property
    def inner_length(self):
        """The largest K (the cost tally counts each product's own K)."""
        return max(p.K for p in self.problems)

    def macs(self) -> int:
        return int(sum(p.M * p.K * p.N for p in self.problems))

    @property
    def weight(self):
        raise ValueError(f"layer {self.name!r}: per-tensor scaling does not apply to "
                         "products of two activations")

    def lower(self, xs):
        (B,) = {x.shape[0] for x in xs}
        tasks = []
        for i in range(B):
            W = np.concatenate([np.ravel(xs[2 * s][i]) for s in range(len(xs) // 2)])
            X = np.concatenate([np.ravel(xs[2 * s + 1][i]) for s in range(len(xs) // 2)])
            tasks.append(MatmulTask(W, X, np.zeros(self.shape), "identity", (i,)))
        return tasks

    def assemble(self, outs, batch):
        return np.stack(outs).reshape((batch,) + self.shape)

    def forward(self, xs, dtype=np.float64):
        (B,) = {x.shape[0] for x in xs}
        out = np.empty((B,) + self.shape, dtype)
        for i in range(B):
            W = np.concatenate([np.ravel(xs[2 * s][i]) for s in range(len(xs) // 2)])
            X = np.concatenate([np.ravel(xs[2 * s + 1][i]) for s in range(len(xs) // 2)])
            for p in self.problems:
                a, b = p.operands(W.astype(dtype), X.astype(dtype))
                out[i, p[7]:p[7] + p.M * p.N] = (a @ b).ravel()
        return out
