"""Real English sentences shipped by a registry package: the Lee news corpus in gensim.

The PyPI package ``gensim`` 4.4.0 (LGPL-2.1) ships, as test data,
``gensim/test/test_data/lee_background.cor``: 300 news stories of the Australian
Broadcasting Corporation, one per line, collected by M. D. Lee, B. Pincombe and
M. Welsh, "An empirical evaluation of models of text document similarity", Proc. 27th
Annual Conference of the Cognitive Science Society (2005). accsim reads the file only
(gensim is installed with ``--no-deps`` and never imported).

:func:`lee_sentences` returns the lead sentence of each story (290 distinct sentences: the
corpus repeats 10 stories); :func:`lee_pairs` pairs each story's first and second sentences (a
same-story pair) for the similarity task, and :func:`lee_unrelated_pairs` pairs lead
sentences of different stories.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

__all__ = ["LEE_PACKAGE", "corpus_path", "lee_documents", "split_sentences",
           "lee_sentences", "lee_pairs", "lee_unrelated_pairs", "CorpusMissing",
           "lee_all_sentences", "read_sentences", "long_sequences"]

LEE_PACKAGE = "gensim"
LEE_VERSION = "4.4.0"
LEE_FILE = ("test", "test_data", "lee_background.cor")


class CorpusMissing(FileNotFoundError):
    """The package that ships the sentences is not installed."""


def corpus_path() -> Path:
    """Path of ``lee_background.cor`` inside the installed gensim (without importing it).

    Raises
    ------
    CorpusMissing
        gensim is not installed (``make test`` (or ``make minilm``) installs it).
    """
    spec = importlib.util.find_spec(LEE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing(
            f"the sentence corpus ships in PyPI {LEE_PACKAGE}=={LEE_VERSION}, which is not "
            "installed; run `make test` (or `make minilm`) (pip install --no-deps "
            f"{LEE_PACKAGE}=={LEE_VERSION})")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*LEE_FILE)
    if not path.is_file():
        raise CorpusMissing(f"{path} not found in the installed {LEE_PACKAGE}")
    return path


def lee_documents() -> list[str]:
    """The 300 stories of the Lee background corpus (one string each)."""
    text = corpus_path().read_bytes().decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


# a sentence ends at . ! or ? followed by space(s) and an upper-case letter or a quote;
# not after common abbreviations (Mr. Dr. St. ...) or single initials ("J. Howard")
_ABBREV = ("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Gen", "Col", "Lt", "Sgt", "Prof",
           "Rev", "No", "Co", "Inc", "Ltd", "U.S", "U.N")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z])")


def split_sentences(text: str) -> list[str]:
    """Split a story into sentences (rule based; enough for news prose)."""
    parts = _SPLIT.split(text.strip())
    out: list[str] = []
    for p in parts:
        prev = out[-1] if out else ""
        last = prev.rstrip(".!?").split(" ")[-1] if prev else ""
        if out and prev.endswith(".") and (last in _ABBREV or len(last) == 1):
            out[-1] = prev + " " + p
        else:
            out.append(p)
    return [s.strip() for s in out if s.strip()]


def lee_sentences(n: int | None = None) -> list[str]:
    """Lead sentence of each story, in corpus order, duplicates dropped (the corpus
    repeats 10 stories: 290 distinct sentences).

    Parameters
    ----------
    n : int, optional
        Number of sentences (the first ``n``); None: all 290.
    """
    sents = list(dict.fromkeys(split_sentences(d)[0] for d in lee_documents()))
    if n is not None:
        if n < 1 or n > len(sents):
            raise ValueError(f"n must be in 1..{len(sents)}, got {n}")
        sents = sents[:n]
    return sents


def lee_pairs(n: int | None = None) -> list[tuple[str, str]]:
    """(first, second) sentence of each story that has two: same-story pairs."""
    pairs = []
    for d in lee_documents():
        s = split_sentences(d)
        if len(s) >= 2:
            pairs.append((s[0], s[1]))
    return pairs if n is None else pairs[:n]


def lee_unrelated_pairs(n: int | None = None) -> list[tuple[str, str]]:
    """(lead sentence i, lead sentence i + 145): different stories."""
    s = lee_sentences()
    half = len(s) // 2
    pairs = [(s[i], s[i + half]) for i in range(half)]
    return pairs if n is None else pairs[:n]


def lee_all_sentences() -> list[str]:
    """Every sentence of every distinct story, in corpus order (2,556 sentences)."""
    return [s for d in dict.fromkeys(lee_documents()) for s in split_sentences(d)]


def read_sentences(path) -> list[str]:
    """Sentences of a UTF-8 text file, one per line (blank lines skipped).

    Raises
    ------
    ValueError
        No such file, or no non-blank line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such text file")
    sents = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not sents:
        raise ValueError(f"{path}: no sentence (one sentence per line expected)")
    return sents


def long_sequences(sentences, n: int, min_tokens: int, max_tokens: int,
                   count_tokens) -> list[str]:
    """The first ``n`` inputs made of consecutive sentences, each of ``min_tokens`` to
    ``max_tokens`` tokens.

    Sentences are joined by a space, in order, until the tokenizer's count of the
    joined text (``count_tokens(text)``, special tokens included) reaches
    ``min_tokens``; a sequence that would then exceed ``max_tokens`` (one very long
    sentence) is dropped and the next starts after it.

    Raises
    ------
    ValueError
        Bad bounds, or the sentences give fewer than ``n`` such sequences (the message
        says how many).
    """
    if not (1 <= min_tokens <= max_tokens):
        raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {min_tokens}, "
                         f"{max_tokens}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out, cur = [], []
    for s in sentences:
        cur.append(s)
        k = count_tokens(" ".join(cur))
        if k < min_tokens:
            continue
        if k <= max_tokens:
            out.append(" ".join(cur))
            if len(out) == n:
                return out
        cur = []
    raise ValueError(f"the text gives only {len(out)} sequences of {min_tokens}.."
                     f"{max_tokens} tokens; {n} asked for")
