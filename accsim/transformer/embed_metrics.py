"""Label-free metrics of a simulated transformer run against its binary64 forward pass.

* cosine similarity of each sentence embedding with its reference, and the relative
  error ``||e - e_ref|| / ||e_ref||``;
* Spearman rank correlation of the pairwise-similarity matrices (upper triangle);
* nearest-neighbour retrieval agreement: the fraction of sentences whose most similar
  other sentence is the same as in the reference;
* per-layer relative error ``||H_l - H_l,ref||_F / ||H_l,ref||_F`` of the hidden states
  (layer 0: embeddings);
* KL divergence ``KL(p_ref || p)`` of each attention row (natural log).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["cosine_each", "embedding_rel_error", "pairwise_spearman", "nn_agreement",
           "layer_rel_errors", "attention_kl", "paired_log_ratio"]


def cosine_each(E: np.ndarray, E_ref: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``E`` with the same row of ``E_ref``."""
    num = np.sum(E * E_ref, axis=1)
    den = np.linalg.norm(E, axis=1) * np.linalg.norm(E_ref, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def embedding_rel_error(E: np.ndarray, E_ref: np.ndarray) -> np.ndarray:
    """``||e - e_ref|| / ||e_ref||`` per sentence."""
    return np.linalg.norm(E - E_ref, axis=1) / np.linalg.norm(E_ref, axis=1)


def _upper(S):
    iu = np.triu_indices(S.shape[0], 1)
    return S[iu]


def pairwise_spearman(E: np.ndarray, E_ref: np.ndarray) -> float:
    """Spearman correlation of the off-diagonal pairwise similarities."""
    if E.shape[0] < 3:
        raise ValueError("the pairwise Spearman needs at least 3 sentences")
    a, b = _upper(E @ E.T), _upper(E_ref @ E_ref.T)
    if not np.all(np.isfinite(a)):
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def nn_agreement(E: np.ndarray, E_ref: np.ndarray) -> float:
    """Fraction of sentences whose nearest other sentence agrees with the reference."""
    if E.shape[0] < 2:
        raise ValueError("nearest-neighbour agreement needs at least 2 sentences")

    def nn(X):
        S = X @ X.T
        np.fill_diagonal(S, -np.inf)
        S = np.where(np.isnan(S), -np.inf, S)
        return np.argmax(S, axis=1)

    return float(np.mean(nn(E) == nn(E_ref)))


def layer_rel_errors(hidden, hidden_ref) -> np.ndarray:
    """Per layer ``||H - H_ref||_F / ||H_ref||_F`` (lists of (tokens, 384) arrays)."""
    return np.array([np.linalg.norm(h - r) / np.linalg.norm(r)
                     for h, r in zip(hidden, hidden_ref, strict=True)])


def attention_kl(probs, probs_ref) -> list[np.ndarray]:
    """Per layer, the KL divergence of every attention row (all sentences and heads).

    ``KL(p_ref || p) = sum_j p_ref,j log(p_ref,j / p_j)``; a row where ``p`` is 0 but
    ``p_ref`` is not gives ``inf``.
    """
    out = []
    for lay, lay_ref in zip(probs, probs_ref, strict=True):
        rows = []
        for P, R in zip(lay, lay_ref, strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(R > 0, R * (np.log(R) - np.log(P)), 0.0)
            rows.append(t.sum(axis=-1).ravel())
        out.append(np.concatenate(rows))
    return out


def paired_log_ratio(err_a: np.ndarray, err_b: np.ndarray, *, n_boot: int = 2000,
                     seed: int = 0, floor: float = 1e-300) -> dict:
    """Paired comparison of per-sentence errors: mean of ``log10(err_a / err_b)`` with
    a bootstrap 95% interval over sentences and the Wilcoxon signed-rank p-value.

    Negative means ``a`` is more accurate. Errors are floored at ``floor`` (an exact
    result has error 0).
    """
    a = np.log10(np.maximum(np.asarray(err_a, np.float64), floor))
    b = np.log10(np.maximum(np.asarray(err_b, np.float64), floor))
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, (n_boot, d.size))
    boots = d[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "p": p}
