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
