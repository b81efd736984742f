"""Sentence corpus (networks.sentences): Lee news corpus shipped by PyPI gensim."""

from __future__ import annotations

import pytest

from networks import sentences as S


def test_split_sentences_rules():
    t = "Mr. Howard said it. The U.S. Senate met on Tuesday! Was it J. Smith? Yes."
    assert S.split_sentences(t) == ["Mr. Howard said it.", "The U.S. Senate met on Tuesday!",
                                    "Was it J. Smith?", "Yes."]


def test_lee_corpus():
    try:
        S.corpus_path()
    except S.CorpusMissing as exc:
        pytest.skip(str(exc))
    sents = S.lee_sentences()
    assert len(sents) == 290 and len(set(sents)) == 290
    assert all(len(s.split()) >= 3 for s in sents)
    assert sents[1].startswith("Indian security forces have shot dead eight")
    assert S.lee_sentences(5) == sents[:5]
    with pytest.raises(ValueError, match="n must be in 1..290"):
        S.lee_sentences(291)
    pairs = S.lee_pairs()
    assert len(pairs) >= 256 and all(a != b for a, b in pairs)
    assert len(S.lee_unrelated_pairs()) == 145


def _words(text):
    return len(text.split()) + 2  # a stand-in tokenizer: words plus [CLS] and [SEP]


def test_long_sequences_concatenate_in_order_within_bounds():
    sents = [f"w{i} " * (i % 5 + 1) for i in range(40)]
    sents = [s.strip() for s in sents]
    seqs = S.long_sequences(sents, 5, 8, 12, _words)
    assert len(seqs) == 5
    assert all(8 <= _words(q) <= 12 for q in seqs)
    # consecutive sentences, in order, each used once
    joined = " ".join(seqs).split()
    assert joined == " ".join(sents).split()[:len(joined)]
    # a sequence is cut as soon as it reaches min_tokens
    for q in seqs:
        parts = [s for s in sents if s in q]
        assert _words(" ".join(parts[:-1])) < 8 or len(parts) == 1


def test_long_sequences_drop_an_overlong_one_and_report_shortage():
    sents = ["a b c", "x " * 30, "d e f", "g h i", "j k l"]
    seqs = S.long_sequences([s.strip() for s in sents], 1, 8, 12, _words)
    assert seqs == ["d e f g h i"]
    with pytest.raises(ValueError, match="gives only 1 sequences of 8..12 tokens; 3 asked"):
        S.long_sequences([s.strip() for s in sents], 3, 8, 12, _words)
    with pytest.raises(ValueError, match="min_tokens <= max_tokens"):
        S.long_sequences(sents, 1, 13, 12, _words)


def test_read_sentences(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("First one.\n\n  Second one.  \n", encoding="utf-8")
    assert S.read_sentences(p) == ["First one.", "Second one."]
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="no sentence"):
        S.read_sentences(tmp_path / "e.txt")
    with pytest.raises(ValueError, match="no such text file"):
        S.read_sentences(tmp_path / "missing.txt")


def test_lee_long_sequences_reach_256_tokens():
    try:
        S.corpus_path()
        from networks.minilm import load_tokenizer

        tok = load_tokenizer(512)
    except (S.CorpusMissing, FileNotFoundError, ImportError) as exc:
        pytest.skip(str(exc))
    allsents = S.lee_all_sentences()
    assert len(allsents) > 2000
    seqs = S.long_sequences(allsents, 120, 256, 512, tok.count)
    lens = [len(i) for i in tok.encode(seqs)]
    assert len(seqs) == 120 and min(lens) >= 256 and max(lens) <= 512
