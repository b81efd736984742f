"""all-MiniLM-L6-v2 as a layer graph of :mod:`accsim.graph.tensor_ops`, built from its
safetensors (no torch).

:func:`build_graph` lays out one batch of sentences (unpadded, their tokens
concatenated, as :func:`networks.transformer.encode` runs them) as a
:class:`~accsim.graph.Graph` whose input is the batch's token ids ``(tokens,)`` and
whose output is the sentence embeddings ``(sentences, 384)``. Every inner product and
every reduction is a linear op of a MiniLM operation class
(:data:`accsim.transformer.opclass.OP_CLASSES`); :func:`accsim.graph.run_graph` runs it
on the strategies of :mod:`accsim.transformer.policies` (one per class). The ops
and the roundings are those of the BERT forward pass of :mod:`networks.transformer`
(the test reference), op for op:

* embeddings: ``act(act(word[ids] + type[0]) + position[pos])`` (Hugging Face
  ``BertEmbeddings``' order: the token type first);
* LayerNorm: ``mean = act(sum_ln_mean(x) / H)``, ``d = act(x - mean)``,
  ``var = act(sum_ln_var(act(d d)) / H)``, ``act(act(d * (1 / sqrt(var + eps))) gamma + beta)``;
  the sums are not rounded before the division (``round_output = False``);
* per layer: the projections ``q``, ``k``, ``v`` (class ``qkv``) on all tokens of the
  batch; the scores ``Q_h K_h^T`` of every head of every sentence (class ``scores``, one
  :class:`~accsim.transformer.head_products.HeadProducts` op: one batched kernel call;
  its strategy scales by ``1/sqrt(d_h)`` and rounds, and applies the LAMP policies), per
  sentence the softmax ``act(exp(s - max))`` / ``sum_softmax_sum`` (rounded once), the
  contexts ``P V_h`` of every head of every sentence (class ``context``, one op); the
  heads concatenated, ``attn_out``, residual, LayerNorm, FFN ``ffn_in``, exact-erf
  GELU, ``ffn_out``, residual, LayerNorm;
* head: per sentence the mean over its tokens (class ``pool_sum``), the squared norm
  (class ``l2_sum``), ``act(pooled / max(sqrt(q), 1e-12))``.

Each sentence's attention sees only its own tokens (the masked softmax of a padded
batch). :class:`MiniLMGraph` also holds, per linear op, what the strategies need to know
of it (:class:`OpMeta`: layer, sentence, the call code keying the random controls) and
the names of the ops holding the hidden states and the attention probabilities.
:class:`GraphEncoder` runs batches of sentences through it (``accsim minilm``).

The LayerNorm is written as BERT evaluates it, ``d * (1 / sqrt(var + eps))``, and the
GELU as ``0.5 x (1 + erf(x / sqrt 2))`` (elementwise ``mul_rsqrt`` and ``gelu_bert``):
other orders of the same operations give other bits in binary64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from accsim.graph.graph import Graph
from accsim.graph.ops import Dense
from accsim.graph.runner import run_graph
from accsim.graph.tensor_ops import (
    Cat,
    Elementwise,
    Embedding,
    Index,
    Permute,
    ReduceSum,
    Reshape,
)
from accsim.transformer.head_products import HeadProducts
from accsim.transformer.policies import (
    PROJECTION_CLASSES,
    OpTally,
    RunState,
    assignment,
    reference_assignment,
    tally,
)

__all__ = ["OpMeta", "MiniLMGraph", "build_graph", "GraphEncoder", "BERT_OP_CLASSES"]

#: The MiniLM op classes of a Hugging Face ``BertModel`` (eager or SDPA attention) by
#: module path, for ``accsim.import_torch(..., op_classes=BERT_OP_CLASSES)``
#: (:mod:`accsim.graph.importers.op_classes`): the imported encoder then runs each class
#: on the model this graph runs it on, with its bits (``tests/test_bert_import.py``).
BERT_OP_CLASSES = {
    "**.LayerNorm:norm[0]": "ln_mean", "**.LayerNorm:norm[1]": "ln_var",
    "**.attention.self.query": "qkv", "**.attention.self.key": "qkv",
    "**.attention.self.value": "qkv",
    "**.attention.self:matmul[0]": "scores", "**.attention.self:softmax": "softmax_sum",
    "**.attention.self:matmul[1]": "context",
    "**.attention.output.dense": "attn_out", "**.intermediate.dense": "ffn_in",
    "**.layer.*.output.dense": "ffn_out",
}



@dataclass(frozen=True)
class OpMeta:
    """What a MiniLM strategy reads of one linear op.

    ``layer`` 0 (embeddings) .. L (encoder layers), L + 1 (head); ``sentence`` the
    sentence's position in the batch (-1: all tokens of the batch); ``call`` the
    projection's key ``16 c + i`` (``c``: q, k, v = 0, 1, 2; ``i``: index in
    :data:`accsim.transformer.policies.PROJECTION_CLASSES`); ``token_columns``: the task's
    columns are the batch's tokens (per-sentence scaling); ``block``: columns scaled
    together otherwise (one head's softmax rows; 0: all); ``problems``: the products of a
    :class:`~accsim.transformer.head_products.HeadProducts` op (sentence, head, shape),
    computed by one batched kernel call."""

    op_class: str
    layer: int
    sentence: int = -1
    call: int = 0
    token_columns: bool = False
    block: int = 0
    problems: tuple = ()


@dataclass
class MiniLMGraph:
    """A batch's graph with its per-op facts."""

    graph: Graph
    lens: list
    meta: dict = field(default_factory=dict)       # op index -> OpMeta
    hidden: list = field(default_factory=list)     # op names of hidden[0..L]
    probs: list = field(default_factory=list)      # probs[l][s]: op names

    @property
    def segments(self) -> list:
        b = np.concatenate([[0], np.cumsum(self.lens)]).astype(int)
        return [(int(b[i]), int(b[i + 1])) for i in range(len(self.lens))]

    def trace(self, outputs) -> tuple[list, list]:
        """``(hidden, probs)`` of :class:`networks.transformer.Trace` from the outputs
        of :func:`accsim.graph.run_graph` (image 0)."""
        hidden = [outputs[n][0] for n in self.hidden]
        probs = [[outputs[n][0] for n in lay] for lay in self.probs]
        return hidden, probs


class _Builder:
    def __init__(self):
        self.ops, self.meta = [], {}

    def add(self, op, meta=None, *, rounded=True):
        if not rounded:
            op.round_output = False  # run_graph rounds every other op's output
        if meta is not None:
            self.meta[len(self.ops)] = meta
        self.ops.append(op)
        return op.name


def _layernorm(b, x, gamma, beta, eps, H, layer, p):
    s = b.add(ReduceSum(f"{p}.sum", (1,), "ln_mean", inputs=[x]),
              OpMeta("ln_mean", layer, token_columns=True), rounded=False)
    mean = b.add(Elementwise(f"{p}.mean", "div", [s, np.float64(H)]))
    d = b.add(Elementwise(f"{p}.d", "sub", [x, mean]))
    d2 = b.add(Elementwise(f"{p}.d2", "square", [d]))
    q = b.add(ReduceSum(f"{p}.qsum", (1,), "ln_var", inputs=[d2]),
              OpMeta("ln_var", layer, token_columns=True), rounded=False)
    var = b.add(Elementwise(f"{p}.var", "div", [q, np.float64(H)]))
    y = b.add(Elementwise(f"{p}.norm", "mul_rsqrt", [d, var], eps=float(eps)))
    return b.add(Elementwise(f"{p}.out", "affine", [y], gamma=gamma, beta=beta))


def _dense(b, name, W, bias, x, cls, layer, c=0):
    d = Dense(name, W, bias, last_axis=True, inputs=[x])
    d.op_class = cls
    return b.add(d, OpMeta(cls, layer, call=16 * c + PROJECTION_CLASSES.index(cls),
                           token_columns=True))


def build_graph(weights, lens) -> MiniLMGraph:
    """The graph of one batch of sentences of ``lens`` tokens (module docstring).

    Parameters
    ----------
    weights : networks.minilm.MiniLMWeights
    lens : sequence of int
        Tokens of each sentence, in batch order.
    """
    cfg = weights.config
    H, nh, L, eps = cfg["hidden"], cfg["heads"], cfg["layers"], cfg["ln_eps"]
    dh = H // nh
    lens = [int(n) for n in lens]
    if not lens or min(lens) < 1:
        raise ValueError("a batch needs sentences of at least one token")
    if max(lens) > cfg["positions"]:
        raise ValueError(f"a token sequence has {max(lens)} tokens; the position table "
                         f"has {cfg['positions']}")
    mg = MiniLMGraph(None, lens)
    segs = mg.segments
    b = _Builder()
    pos = np.concatenate([np.arange(n) for n in lens])
    w = b.add(Embedding("emb.word", weights["embeddings.word_embeddings.weight"],
                        inputs=["input"]), rounded=False)
    x = b.add(Elementwise("emb.type", "add",
                          [w, weights["embeddings.token_type_embeddings.weight"][0]]))
    x = b.add(Elementwise("emb.pos", "add",
                          [x, weights["embeddings.position_embeddings.weight"][pos]]))
    x = _layernorm(b, x, weights["embeddings.LayerNorm.weight"],
                   weights["embeddings.LayerNorm.bias"], eps, H, 0, "emb.ln")
    mg.hidden.append(x)
    for li in range(L):
        lay = li + 1

        def P(name, li=li):
            return weights.layer(li, name)

        p = f"L{lay}"
        qkv = [_dense(b, f"{p}.{n}", P(f"attention.self.{t}.weight"),
                      P(f"attention.self.{t}.bias"), x, "qkv", lay, c)
               for c, (n, t) in enumerate((("q", "query"), ("k", "key"), ("v", "value")))]
        heads = []  # per sentence: its (q, k^T, v) head stacks
        for si, (a, e) in enumerate(segs):
            T, hs = e - a, []
            for n, perm in zip(qkv, ((1, 0, 2), (1, 2, 0), (1, 0, 2)), strict=True):
                r = b.add(Index(f"{n}.s{si}", (slice(a, e),), inputs=[n]))
                r = b.add(Reshape(f"{n}.s{si}.heads", (T, nh, dh), inputs=[r]))
                hs.append(b.add(Permute(f"{n}.s{si}.perm", perm, inputs=[r])))
            heads.append(hs)
        # the scores of every head of every sentence: one op, one batched kernel call
        sc = b.add(HeadProducts(f"{p}.heads.scores", "scores", [x for qh, kt, _ in heads
                                                          for x in (qh, kt)]),
                   OpMeta("scores", lay), rounded=False)  # the strategy rounds
        ctxs, probs, off = [], [], 0
        for si, (a, e) in enumerate(segs):
            T, s = e - a, f"{p}.s{si}"
            r = b.add(Index(f"{s}.scores", (slice(off, off + nh * T * T),), inputs=[sc]),
                      rounded=False)
            r = b.add(Reshape(f"{s}.scores.heads", (nh, T, T), inputs=[r]), rounded=False)
            off += nh * T * T
            ex = b.add(Elementwise(f"{s}.exp", "softmax_exp", [r], axis=-1))
            den = b.add(ReduceSum(f"{s}.den", (2,), "softmax_sum", inputs=[ex]),
                        OpMeta("softmax_sum", lay, si, block=T), rounded=False)
            probs.append(b.add(Elementwise(f"{s}.probs", "div", [ex, den])))
        cx = b.add(HeadProducts(f"{p}.heads.context", "context",
                                [x for pr, (_, _, vh) in zip(probs, heads, strict=True)
                                 for x in (pr, vh)]), OpMeta("context", lay))
        off = 0
        for si, (a, e) in enumerate(segs):
            T, s = e - a, f"{p}.s{si}"
            r = b.add(Index(f"{s}.context", (slice(off, off + nh * T * dh),), inputs=[cx]))
            r = b.add(Reshape(f"{s}.context.heads", (nh, T, dh), inputs=[r]))
            off += nh * T * dh
            r = b.add(Permute(f"{s}.context.perm", (1, 0, 2), inputs=[r]))
            ctxs.append(b.add(Reshape(f"{s}.context.cat", (T, H), inputs=[r])))
        cat = b.add(Cat(f"{p}.context", 0, inputs=ctxs))
        att = _dense(b, f"{p}.attn_out", P("attention.output.dense.weight"),
                     P("attention.output.dense.bias"), cat, "attn_out", lay)
        r = b.add(Elementwise(f"{p}.attn_res", "add", [att, x]))
        x = _layernorm(b, r, P("attention.output.LayerNorm.weight"),
                       P("attention.output.LayerNorm.bias"), eps, H, lay, f"{p}.attn_ln")
        h = _dense(b, f"{p}.ffn_in", P("intermediate.dense.weight"),
                   P("intermediate.dense.bias"), x, "ffn_in", lay)
        h = b.add(Elementwise(f"{p}.gelu", "gelu_bert", [h]))
        o = _dense(b, f"{p}.ffn_out", P("output.dense.weight"), P("output.dense.bias"), h,
                   "ffn_out", lay)
        r = b.add(Elementwise(f"{p}.ffn_res", "add", [o, x]))
        x = _layernorm(b, r, P("output.LayerNorm.weight"), P("output.LayerNorm.bias"), eps,
                       H, lay, f"{p}.ffn_ln")
        mg.hidden.append(x)
        mg.probs.append(probs)
    embs = []
    for si, (a, e) in enumerate(segs):
        s = f"head.s{si}"
        t = b.add(Index(f"{s}.tokens", (slice(a, e),), inputs=[x]))
        ps = b.add(ReduceSum(f"{s}.pool", (0,), "pool_sum", inputs=[t]),
                   OpMeta("pool_sum", L + 1, si), rounded=False)
        pm = b.add(Elementwise(f"{s}.mean", "div", [ps, np.float64(e - a)]))
        sq = b.add(Elementwise(f"{s}.sq", "square", [pm]))
        q = b.add(ReduceSum(f"{s}.l2", (1,), "l2_sum", inputs=[sq]),
                  OpMeta("l2_sum", L + 1, si), rounded=False)
        embs.append(b.add(Elementwise(f"{s}.emb", "l2_normalize", [pm, q])))
    b.add(Cat("embeddings", 0, inputs=embs))
    mg.graph = Graph("all-MiniLM-L6-v2", (sum(lens),), b.ops)
    for i, m in b.meta.items():  # the batched products' problems, known once inferred
        if isinstance(b.ops[i], HeadProducts):
            b.meta[i] = replace(m, problems=tuple(b.ops[i].problems))
    mg.meta = b.meta
    return mg


def scale(weights) -> float:
    """The scores' scaling ``1/sqrt(d_h)``."""
    cfg = weights.config
    return 1.0 / math.sqrt(cfg["hidden"] // cfg["heads"])


class GraphEncoder:
    """Sentence embeddings of token-id batches through :func:`accsim.graph.run_graph`: the
    MiniLM graph of each batch (:func:`build_graph`) on the strategies of one
    op-class assignment (:func:`accsim.transformer.policies.assignment`), with its cost
    summed over batches (:attr:`tally`). After :meth:`encode`, :attr:`graph` and
    :attr:`results` are the last batch's :class:`MiniLMGraph` and the
    :class:`accsim.graph.OpResult` of each of its linear ops (graph order; computed values
    only: the exact reference and the bound are not computed).

    Parameters
    ----------
    weights : networks.minilm.MiniLMWeights
    ops : accsim.transformer.opclass.OpModels, optional
        ``operation class -> model``; None with ``reference=True``.
    linear, attention : LinearPolicy, AttentionPolicy, optional
        Default uniform.
    seed : int
        Seeds stochastic-rounding models and the random controls (folded with each
        sentence's global index, so results do not depend on batching).
    act_format : str
        Format of every activation.
    reference : bool
        The binary64 forward pass: every class on the binary64 model, no activation
        rounding (``ops``, the policies and ``act_format`` must not be given).
    counts, match : dict, object, optional
        The store of the adaptive linear policies' per-sentence counts shared by the
        encoders of one run and the key of this encoder's adaptive cell
        (:class:`~accsim.transformer.policies.RunState`): an adaptive policy records its
        counts, a control recomputes exactly the matched cell's (which must have encoded
        the same sentences first). Without them a control recomputes as many components
        as the criterion flags on its own forward pass.
    """

    def __init__(self, weights, ops=None, linear=None, attention=None, *, seed: int = 0,
                 act_format: str = "binary32", reference: bool = False,
                 counts: dict | None = None, match=None):
        self.weights = weights
        sc = scale(weights)
        if reference:
            if ops is not None or linear is not None or attention is not None:
                raise ValueError("the binary64 reference takes no models or policies")
            self.state = RunState(int(seed), "binary64")
            self.assignment = reference_assignment(self.state, sc)
        else:
            if ops is None:
                raise ValueError("give the op-class models (ops) or reference=True")
            self.state = RunState(int(seed), act_format, counts=counts, match=match)
            self.assignment = assignment(ops, linear, attention, state=self.state, scale=sc)
        self.tally = OpTally()
        self.graph, self.results = None, []

    def encode(self, ids, *, sentence_ids=None, graph: MiniLMGraph | None = None):
        """``(embeddings, hidden, probs)`` of one batch: ``embeddings (sentences, H)``,
        ``hidden[l]`` the ``(tokens, H)`` output of layer ``l`` (0: embeddings),
        ``probs[l][s]`` the ``(heads, T, T)`` attention of sentence ``s`` in layer
        ``l + 1`` (as :class:`networks.transformer.Trace`).

        Parameters
        ----------
        ids : list of numpy.ndarray of int
            Token ids of each sentence.
        sentence_ids : sequence of int, optional
            Global index of each sentence (keys the random controls); default
            ``0 .. len(ids) - 1``.
        graph : MiniLMGraph, optional
            From :func:`build_graph` on these lengths (shared by the encoders of one
            batch); built when not given.
        """
        if not len(ids):
            raise ValueError("no sentences to encode")
        lens = [len(i) for i in ids]
        mg = build_graph(self.weights, lens) if graph is None else graph
        if lens != mg.lens:
            raise ValueError(f"token sequences of lengths {lens} do not fit the graph "
                             f"built for {mg.lens}")
        sids = range(len(ids)) if sentence_ids is None else sentence_ids
        self.state.begin(mg, sids)
        x = np.concatenate(ids).astype(np.float64)[None]
        outputs, results = run_graph(mg.graph, self.assignment, x, seed=self.state.seed,
                                     act_format=self.state.act_format,
                                     input_format="binary64", reference=False)
        tally(mg.graph, results, self.tally)
        self.graph, self.results = mg, results
        hidden, probs = mg.trace(outputs)
        return outputs["embeddings"][0], hidden, probs
