"""A Hugging Face ``BertModel`` of all-MiniLM-L6-v2 through ``accsim.import_torch`` gives
the bits of the native MiniLM graph (:mod:`accsim.transformer.minilm_graph`, itself
checked against the hand-written forward pass in ``tests/test_minilm_graph.py``) under
the same op-class assignment, and matches torch's float64 forward.

The model is built offline from the shipped files: a ``BertConfig`` from the MiniLM
package's ``config.json`` and the state dict of its ``model.safetensors`` (nothing is
downloaded: ``HF_HUB_OFFLINE=1``); the op classes come from module paths
(:data:`accsim.transformer.minilm_graph.BERT_OP_CLASSES`). Three real sentences of the
same token count (a graph is traced for one sequence length) run as three images of the
imported graph and as one batch of the native graph. Kept fast: the bit comparisons run
the first two of the six layers (config ``num_hidden_layers = 2``, the native graph on
the same two layers), the float64 comparison all six.

Attention: ``eager`` (``torch.matmul(q, k^T) * scaling``, softmax, ``matmul(p, v)``: the
operations of the native graph) is the implementation compared on every assignment;
``sdpa`` (``F.scaled_dot_product_attention``, lowered to the same operations) gives the
same bits on the binary64 FMA chain.

Skipped with the reason when ``transformers`` (the ``transformer`` extra) or the MiniLM
package is missing.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip(
    "transformers", reason="transformers not installed (pip install 'accsim[transformer]')")
from test_minilm import _bits, minilm  # noqa: E402, I001  (skips without the model)

import accsim  # noqa: E402
from accsim.graph.runner import Assignment, run_graph  # noqa: E402
from accsim.run.strategies import Uniform  # noqa: E402
from accsim.transformer.minilm_graph import BERT_OP_CLASSES, GraphEncoder  # noqa: E402
from accsim.transformer.minilm_run import expand, load_config  # noqa: E402
from accsim.transformer.opclass import OP_CLASSES, OpModels  # noqa: E402
from accsim.transformer.policies import PROJECTION_CLASSES, op_costs, tally  # noqa: E402
from accsim.accumulators.factory import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: real sentences of 9 tokens each ([CLS] and [SEP] included)
SENTENCES = ["Stocks fell sharply on Monday morning.", "Rain is expected over the weekend.",
             "She reads a book every night."]
B64 = {"family": "recursive", "acc_format": "binary64", "product": "fused"}
SEED = 3
LAYERS = 2
#: the classes of the sentence-embedding head, which the imported encoder does not have
HEAD = {"pool_sum", "l2_sum"}


class _LastHidden(torch.nn.Module):
    """``BertModel(input_ids).last_hidden_state``: one tensor in, one out."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids):
        return self.bert(input_ids=ids).last_hidden_state


def _bert(attn: str, layers: int | None = None):
    """The shipped MiniLM as a ``BertModel`` (its first ``layers`` layers), offline."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    d = minilm.model_dir()
    cfg = BertConfig(**json.loads((d / "config.json").read_text()))
    if layers is not None:
        cfg.num_hidden_layers = layers
    cfg._attn_implementation = attn  # eager or sdpa, never a default that may change
    model = BertModel(cfg, add_pooling_layer=False)
    state = load_file(str(d / "model.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("encoder.layer.")
             or int(k.split(".")[2]) < cfg.num_hidden_layers}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == [] and set(unexpected) <= {"pooler.dense.weight",
                                                 "pooler.dense.bias",
                                                 "embeddings.position_ids"}
    return _LastHidden(model).eval()


def _import(ids, attn, layers=None):
    module = _bert(attn, layers)
    x = torch.tensor(np.stack(ids), dtype=torch.long)
    return module, accsim.import_torch(module, x, op_classes=BERT_OP_CLASSES)


@pytest.fixture(scope="module")
def ids():
    out = minilm.load_tokenizer().encode(SENTENCES)
    assert {len(i) for i in out} == {9}
    return out


@pytest.fixture(scope="module")
def weights():
    return minilm.load_weights(layers=LAYERS)


@pytest.fixture(scope="module")
def eager(ids):
    return _import(ids, "eager", LAYERS)[1]


def _cell(config, label):
    (c,) = [c for c in expand(load_config(ROOT / "configs" / f"{config}.toml"))
            if c.label == label]
    return c.ops


#: (name, op-class models): the binary64 FMA chain everywhere; fp16 accumulation on
#: every inner product with fp32 reductions; bf16 / fp32 as in configs/minilm.toml
ASSIGNMENTS = {
    "b64-fma": lambda: OpModels(build_model(B64)),
    "fp16": lambda: _cell("minilm_sweep", "fp16 uniform"),
    "bf16-mixed": lambda: _cell("minilm", "uniform bf16 acc"),
}


def _per_class(graph, results):
    out = {}
    for op, r in zip(graph.linear_ops, results, strict=True):
        out.setdefault(op.op_class, []).append(np.ravel(r.computed))
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_imported_bert_gives_the_native_bits(eager, ids, weights, name):
    _compare(eager, ids, weights, ASSIGNMENTS[name]())


def test_sdpa_attention_gives_the_same_bits(ids, weights):
    _compare(_import(ids, "sdpa", LAYERS)[1], ids, weights, ASSIGNMENTS["b64-fma"]())


def _compare(g, ids, weights, ops):
    name = "imported"
    enc = GraphEncoder(weights, ops, seed=SEED)
    _, hidden, _ = enc.encode(ids)
    x = np.stack(ids).astype(np.float64)
    a = Assignment({c: Uniform(ops[c]) for c in OP_CLASSES}, name)
    vals, results = run_graph(g, a, x, seed=SEED, act_format="binary32",
                              input_format="binary64", reference=False)
    # the last hidden state: (3 sentences x 9 tokens, 384) both
    out = vals["output"].reshape(hidden[-1].shape)
    assert np.array_equal(_bits(out), _bits(hidden[-1]))
    # every op's values, class by class (tokens, heads and sentences in the same order)
    native = _per_class(enc.graph.graph, enc.results)
    mine = _per_class(g, results)
    assert set(native) - set(mine) == HEAD and set(mine) <= set(native)
    for cls in set(mine) - {"scores"}:
        assert np.array_equal(_bits(mine[cls]), _bits(native[cls])), cls
    # the scores: the native class scales by 1/sqrt(32) and rounds; the imported graph
    # scales in the multiplication that reads the (unrounded) product
    readers = {op.inputs[0]: op for op in g.ops if op.inputs}
    scaled = [vals[readers[op.name].name].ravel() for op in g.linear_ops
              if op.op_class == "scores"]
    assert np.array_equal(_bits(np.concatenate(scaled)), _bits(native["scores"]))
    # the tallies of every class: components, recomputed, multiply-accumulates; bits of
    # the projections (the engine's cost charges every task one bias term,
    # accsim.run.cost.inner_product_bits; the MiniLM strategies none to a bias-free
    # product or reduction)
    t = tally(g, results)
    for f in ("components", "recomputed", "macs"):
        ref = {k: v for k, v in getattr(enc.tally, f).items() if k not in HEAD}
        assert getattr(t, f) == ref, f
    assert {k: t.bits[k] for k in PROJECTION_CLASSES} == \
        {k: enc.tally.bits[k] for k in PROJECTION_CLASSES}
    # ... and the other classes' bits are the native ones with that one term more
    plus_one = {}
    for op, r in zip(enc.graph.graph.linear_ops, enc.results, strict=True):
        if op.op_class not in PROJECTION_CLASSES and op.op_class not in HEAD:
            for c, n in op_costs(op, r):  # the native attention: a cost per product
                plus_one[op.op_class] = plus_one.get(op.op_class, 0.0) + \
                    c.components * float(ops[op.op_class].cost_bits(n + 1))
    assert {k: v for k, v in t.bits.items() if k not in PROJECTION_CLASSES} == plus_one


def test_imported_bert_matches_torch_float64(ids):
    """All six layers on binary64 FMA chains with binary64 activations: torch's float64
    forward within 1e-12 (relative to the largest output)."""
    module, g = _import(ids, "eager")
    x = torch.tensor(np.stack(ids), dtype=torch.long)
    with torch.no_grad():
        ref = module.double()(x).numpy()
    module.float()
    r = accsim.simulate(g, x.numpy(), B64, activation_format="binary64", reference=False)
    assert r.outputs.shape == ref.shape
    err = float(np.max(np.abs(r.outputs - ref)) / np.max(np.abs(ref)))
    assert err <= 1e-12, err
