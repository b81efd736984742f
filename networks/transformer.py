"""A BERT encoder (all-MiniLM-L6-v2) whose every accumulation runs through a runner.

The forward pass follows the BERT reference implementation (Devlin et al., "BERT",
NAACL 2019; the Hugging Face ``BertModel`` the published weights were trained with)
and the sentence-transformers head (mean pooling over the tokens, L2 normalisation):

1. embeddings: (word + token type (type 0)) + position, in this order, LayerNorm;
2. per layer: Q, K, V projections; per head ``s = Q_h K_h^T / sqrt(32)``; softmax over
   the sentence's own tokens; context ``P V_h``; output projection; residual;
   LayerNorm; FFN ``W_2 GELU(W_1 x + b_1) + b_2`` (exact erf GELU); residual;
   LayerNorm;
3. mean of the last hidden states over the tokens; division by the L2 norm.

Every inner product and every reduction goes through the runner, by operation class
(:mod:`accsim.transformer.opclass`): ``linear(cls, W, X, b, activation)`` for the projections
(``qkv``, ``attn_out``, ``ffn_in``, ``ffn_out``), ``attention_probs`` for the
composition ``softmax(QK^T)`` (``scores`` then the ``softmax_sum`` reduction: the
look-ahead strategy of :mod:`accsim.transformer.lamp` acts here), ``matmul("context", P, V)`` and
``reduce(cls, X)`` for the softmax denominator, LayerNorm mean and variance, pooling
sum and squared norm. Elementwise operations (exp, division, sqrt, GELU, residual
additions, scaling) are evaluated in binary64 and their result passed through
``runner.act`` (rounding to the activation format; identity for the binary64
reference).

Sentences run without padding: each sentence's attention sees only its own tokens,
which is exactly the masked softmax of a padded batch (a masked key has weight
``exp(-inf) = 0``). Projections run on the tokens of all sentences of a batch at once
(columns), with the per-sentence token ranges passed along (``segments``) so that
per-tensor scaling and random choices are per sentence and results do not depend on
how sentences are batched.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

__all__ = ["encode", "gelu", "Trace"]


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (BERT's ``"gelu"``)."""
    return 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))


class Trace:
    """What the forward pass records: hidden states per layer and attention rows.

    ``hidden[l]`` is the ``(tokens, 384)`` output of layer ``l`` (0: embeddings),
    ``probs[l][s]`` the ``(heads, T, T)`` attention probabilities of sentence ``s``.
    """

    def __init__(self):
        self.hidden: list[np.ndarray] = []
        self.probs: list[list[np.ndarray]] = []


def _layernorm(runner, x, g, b, eps, layer, name):
    """LayerNorm of each row of x (tokens, H); mean and variance as reductions."""
    H = x.shape[1]
    mean = runner.act(runner.reduce("ln_mean", x.T, layer=layer, token_columns=True) / H)
    d = runner.act(x - mean[:, None])
    var = runner.act(runner.reduce("ln_var", runner.act(d * d).T, layer=layer,
                                   token_columns=True) / H)
    inv = 1.0 / np.sqrt(var + eps)
    return runner.act(runner.act(d * inv[:, None]) * g + b)


def _softmax(runner, s, layer):
    """Softmax of each row of s (rows, keys): ``e / sum e`` with the sum a reduction."""
    e = runner.act(np.exp(s - np.max(s, axis=-1, keepdims=True)))
    den = runner.reduce("softmax_sum", e.T, layer=layer)
    return runner.act(e / den[:, None])


def encode(weights, ids_list, runner, *, trace: Trace | None = None,
           sentence_ids=None) -> np.ndarray:
    """Sentence embeddings of token-id sequences.

    Parameters
    ----------
    weights : networks.minilm.MiniLMWeights
    ids_list : list of numpy.ndarray of int
        Token ids of each sentence (from :meth:`MiniLMTokenizer.encode`).
    runner : object
        Runs the accumulations (see module docstring); ``runner.act`` rounds.
    trace : Trace, optional
        Filled with the hidden states and attention probabilities.
    sentence_ids : sequence of int, optional
        Global index of each sentence (keys the runner's random streams); default
        ``0 .. len(ids_list) - 1``.

    Returns
    -------
    numpy.ndarray (sentences, 384)
        L2-normalised embeddings.
    """
    cfg = weights.config
    H, nh = cfg["hidden"], cfg["heads"]
    dh = H // nh
    if not ids_list:
        raise ValueError("no sentences to encode")
    lens = [len(ids) for ids in ids_list]
    if min(lens) < 1:
        raise ValueError("a token sequence is empty")
    if max(lens) > cfg["positions"]:
        raise ValueError(f"a token sequence has {max(lens)} tokens; the position table "
                         f"has {cfg['positions']}")
    ids = np.concatenate(ids_list)
    if ids.min() < 0 or ids.max() >= cfg["vocab"]:
        raise ValueError(f"token ids must be in 0..{cfg['vocab'] - 1}")
    bounds = np.concatenate([[0], np.cumsum(lens)])
    segments = [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(lens))]
    sids = list(range(len(lens))) if sentence_ids is None else [int(s) for s in sentence_ids]
    runner.begin(segments, sids)

    pos = np.concatenate([np.arange(n) for n in lens])
    # BertEmbeddings' order: (word + token type) + position
    x = runner.act(runner.act(weights["embeddings.word_embeddings.weight"][ids]
                              + weights["embeddings.token_type_embeddings.weight"][0])
                   + weights["embeddings.position_embeddings.weight"][pos])
    x = _layernorm(runner, x, weights["embeddings.LayerNorm.weight"],
                   weights["embeddings.LayerNorm.bias"], cfg["ln_eps"], 0, "emb")
    if trace is not None:
        trace.hidden.append(x)
    scale = 1.0 / math.sqrt(dh)
    for li in range(cfg["layers"]):
        L = functools.partial(weights.layer, li)
        lay = li + 1
        xT = x.T
        q = runner.act(runner.linear("qkv", L("attention.self.query.weight"), xT,
                          L("attention.self.query.bias"), "identity", layer=lay)).T
        k = runner.act(runner.linear("qkv", L("attention.self.key.weight"), xT,
                          L("attention.self.key.bias"), "identity", layer=lay)).T
        v = runner.act(runner.linear("qkv", L("attention.self.value.weight"), xT,
                          L("attention.self.value.bias"), "identity", layer=lay)).T
        ctx = np.empty_like(x)
        layer_probs = []
        for si, (a, b) in enumerate(segments):
            probs = np.empty((nh, b - a, b - a))
            for h in range(nh):
                cols = slice(h * dh, (h + 1) * dh)
                P = runner.attention_probs(q[a:b, cols], k[a:b, cols], scale, _softmax,
                                           layer=lay, sentence=si, head=h)
                probs[h] = P
                ctx[a:b, cols] = runner.act(runner.matmul("context", P, v[a:b, cols],
                                                          layer=lay, sentence=si))
            layer_probs.append(probs)
        attn = runner.act(runner.linear("attn_out", L("attention.output.dense.weight"), ctx.T,
                             L("attention.output.dense.bias"), "identity", layer=lay)).T
        x = _layernorm(runner, runner.act(attn + x), L("attention.output.LayerNorm.weight"),
                       L("attention.output.LayerNorm.bias"), cfg["ln_eps"], lay, "attn")
        hpre = runner.act(runner.linear("ffn_in", L("intermediate.dense.weight"), x.T,
                             L("intermediate.dense.bias"), "gelu", layer=lay)).T
        hmid = runner.act(gelu(hpre))
        out = runner.act(runner.linear("ffn_out", L("output.dense.weight"), hmid.T,
                            L("output.dense.bias"), "identity", layer=lay)).T
        x = _layernorm(runner, runner.act(out + x), L("output.LayerNorm.weight"),
                       L("output.LayerNorm.bias"), cfg["ln_eps"], lay, "ffn")
        if trace is not None:
            trace.hidden.append(x)
            trace.probs.append(layer_probs)
    emb = np.empty((len(lens), H))
    for si, (a, b) in enumerate(segments):
        pooled = runner.act(runner.reduce("pool_sum", x[a:b], layer=cfg["layers"] + 1)
                            / (b - a))
        sq = runner.act(pooled * pooled)
        norm = math.sqrt(float(runner.reduce("l2_sum", sq[:, None],
                                             layer=cfg["layers"] + 1)[0]))
        emb[si] = runner.act(pooled / max(norm, 1e-12))
    return emb
