"""The hand-written MiniLM runners of :func:`networks.transformer.encode`: the binary64
reference and the simulated run (op-class models, a linear-layer policy, an attention
policy).

``accsim minilm`` runs MiniLM as a layer graph (:mod:`accsim.transformer.minilm_graph`,
strategies :mod:`accsim.transformer.policies`) through :func:`accsim.graph.run_graph`.
These runners, with the hand-written forward pass of :mod:`networks.transformer`, stay
as the independent test reference of that graph (``tests/test_minilm_graph.py``: same
bits). The policies (:class:`LinearPolicy`, :class:`AttentionPolicy`) and their kinds
are those of :mod:`accsim.transformer.policies`; so is the cost (:class:`OpTally`: per
operation class, output components, recomputed ones, multiply-accumulates and bits,
``model.cost_bits(n)`` per inner product of ``n`` terms, bias included for the
projections; the adaptive strategy's estimation pass is charged, the controls' is not).
Recomputed fractions count valid scores only (MiniLM runs every sentence unpadded, so
every score of its attention is valid).
"""

from __future__ import annotations

import numpy as np

from accsim.run.strategies import Adaptive, active_mask, needs_estimate
from accsim.transformer import lamp as _lamp
from accsim.transformer.opclass import Float64, OpModels, PerTensorScaled, pow2_scale
from accsim.transformer.policies import (
    ATTENTION_CONTROLS,
    ATTENTION_KINDS,
    LINEAR_KINDS,
    PROJECTION_CLASSES,
    AttentionPolicy,
    LinearPolicy,
    OpTally,
    RunState,
    _Ctx,
    _one_thread,
    act_round,
)

__all__ = ["PROJECTION_CLASSES", "LINEAR_KINDS", "ATTENTION_KINDS", "ATTENTION_CONTROLS",
           "LinearPolicy", "AttentionPolicy", "OpTally", "ReferenceRunner", "SimRunner",
           "act_round"]


class ReferenceRunner:
    """The binary64 forward pass: BLAS products and numpy sums, no rounding."""

    model = Float64()

    def begin(self, segments, sentence_ids):
        self.segments = segments

    def act(self, x):
        return x

    def linear(self, cls, W, X, b, activation, *, layer=0):
        return self.model.matmul(W, X, b[:, None])

    def attention_probs(self, Q, K, scale, softmax, *, layer=0, sentence=0, head=0):
        return softmax(self, self.model.matmul(Q, K.T) * scale, layer)

    def matmul(self, cls, A, B, *, layer=0, sentence=0):
        return self.model.matmul(A, B)

    def reduce(self, cls, X, *, layer=0, token_columns=False):
        return np.asarray(X).sum(axis=0)


class SimRunner(RunState):
    """Simulated forward pass: op-class models plus linear and attention policies.

    Parameters
    ----------
    ops : OpModels
        ``operation class -> model`` (the base / low model of every class).
    linear : LinearPolicy
    attention : AttentionPolicy
    seed : int
        Seeds the random controls (and stochastic-rounding models), folded with the
        sentence's global index, the layer and the head, so results do not depend on
        batching.
    act_format : str
        Format of every activation (default binary32).
    """

    def __init__(self, ops: OpModels, linear: LinearPolicy | None = None,
                 attention: AttentionPolicy | None = None, *, seed: int = 0,
                 act_format: str = "binary32"):
        super().__init__(int(seed), act_format)
        self.ops = ops
        self.lin = linear or LinearPolicy()
        self.att = attention or AttentionPolicy()
        self.tally = OpTally()

    def begin(self, segments, sentence_ids):
        self.segments = segments
        self.sids = sentence_ids
        self._calls = {}

    # -------------------------------------------------------------- projections
    def linear(self, cls, W, X, b, activation, *, layer=0):
        low = self.ops[cls]
        m, n = W.shape[0], W.shape[1]
        P = X.shape[1]
        scales = self.scales(low, W, X)
        pol = self.lin
        if pol.kind == "uniform" or cls not in pol.classes:
            v = self.mm(low, W, X, np.broadcast_to(b[:, None], (m, P)), scales)
            self.tally.add(cls, m * P, 0, m * n * P, m * P * low.cost_bits(n + 1))
            self.tally.add_hw([low], np.zeros((m, P), np.int8), n, "none")
            return v
        call = self._calls.get((layer, cls), 0)  # q, k, v: calls 0, 1, 2 of "qkv"
        self._calls[(layer, cls)] = call + 1
        call = 16 * call + PROJECTION_CLASSES.index(cls)
        ctx = _Ctx(self, W, X, np.broadcast_to(b[:, None], (m, X.shape[1])), activation,
                   scales)
        v_low = ctx.compute(low)
        strat = Adaptive(low, pol.high, pol.tau, criterion=pol.criterion, guard=pol.guard)
        mask, _ = strat.select(ctx, v_low)
        if pol.kind in ("random", "random-active", "oracle"):
            active = active_mask(ctx, low, v_low) if pol.kind == "random-active" else None
            mask = self.matched_mask(pol.kind, self.segment_counts(mask), v_low,
                                     W @ X + b[:, None]
                                     if pol.kind == "oracle" else None, layer, call, active)
        v = v_low.copy()
        k = int(mask.sum())
        if k:
            v[mask] = ctx.compute_selected(pol.high, mask)[mask]
        est = m * P * low.cost_bits(n + 1) if pol.kind == "adaptive" else 0.0
        bits = m * P * low.cost_bits(n + 1) + est + k * pol.high.cost_bits(n + 1)
        self.tally.add(cls, m * P, k, m * n * P, bits)
        self.tally.add_hw([low, pol.high], mask.astype(np.int8), n,
                          "low" if pol.kind == "adaptive" or (
                              pol.kind == "random-active" and needs_estimate(ctx, low))
                          else "none")
        return v

    # -------------------------------------------------------------- attention
    def attention_probs(self, Q, K, scale, softmax, *, layer=0, sentence=0, head=0,
                        valid=None):
        """Probabilities of one head of one sentence; ``valid`` (T, T) marks the keys a
        row may attend to (default: all; the masked softmax is the caller's)."""
        low = self.ops["scores"]
        T, d = Q.shape
        pol = self.att
        s_low = self.act(self.mm(low, Q, K.T, None, None) * scale)
        if pol.score_format is not None:
            from accsim.numbers.rounding import round as _round

            with _one_thread():  # one head's scores: no thread-pool wake-up (see RunState.mm)
                s_low = _round(s_low, pol.score_format, "rne")
        n_valid = T * T if valid is None else int(np.count_nonzero(valid))
        if pol.kind == "uniform":
            self.tally.add("scores", n_valid, 0, n_valid * d, n_valid * low.cost_bits(d))
            self.tally.add_hw([low], np.zeros(s_low.shape, np.int8), d, "none", bias=False)
            return softmax(self, s_low, layer)
        mask = _lamp.select(pol.criterion, s_low, pol.tau, valid)
        if pol.kind == "random":
            rng = self.rng(self.sids[sentence], layer, head, 7)
            mask = _lamp.random_select(mask.sum(axis=-1), T if valid is None else valid,
                                       rng)
        elif pol.kind == "oracle":
            ref = (Q @ K.T) * scale
            mask = _lamp.oracle_select(mask.sum(axis=-1), np.abs(s_low - ref), valid)
        k = int(mask.sum())
        s = s_low
        if k:
            s_high = self.act(self.mm(pol.high, Q, K.T, None, None) * scale)
            s = np.where(mask, s_high, s_low)
        self.tally.add("scores", n_valid, k, n_valid * d,
                       n_valid * low.cost_bits(d) + k * pol.high.cost_bits(d))
        self.tally.add_hw([low, pol.high], mask.astype(np.int8), d, "none", bias=False)
        return softmax(self, s, layer)

    # -------------------------------------------------------------- others
    def matmul(self, cls, A, B, *, layer=0, sentence=0):
        model = self.ops[cls]
        m, n = A.shape
        P = B.shape[1]
        self.tally.add(cls, m * P, 0, m * n * P, m * P * model.cost_bits(n))
        return self.mm(model, A, B, None, None)

    def reduce(self, cls, X, *, layer=0, token_columns=False):
        """Column sums of X; ``token_columns``: the columns are the tokens of the batch
        (LayerNorm statistics), so scaling is per sentence, else X is one tensor."""
        model = self.ops[cls]
        X = np.asarray(X, np.float64)
        n, P = X.shape
        self.tally.add(cls, P, 0, n * P, P * model.cost_bits(n))
        if isinstance(model, Float64):
            return X.sum(axis=0)
        ones = np.ones((1, n))
        scales = None
        if isinstance(model, PerTensorScaled):
            sB = model.column_scales(X, self.segments) if token_columns else \
                np.full(P, pow2_scale(X, model._fmax[1]))
            scales = (1.0, sB)
        return self.mm(model, ones, X, None, scales)[0]


__all__ += ["OpModels"]
