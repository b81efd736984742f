"""Label-free metrics of a simulated transformer run against its binary64 forward pass.

* cosine similarity of each sentence embedding with its reference, and the relative
  error ``||e - e_ref|| / ||e_ref||``;
* Spearman rank correlation of the pairwise-similarity matrices (upper triangle);
* nearest-neighbour retrieval agreement: the fraction of sentences whose most similar
  other sentence is the same as in the reference;
* per-layer relative error ``||H_l - H_l,ref||_F / ||H_l,ref||_F`` of the hidden states
  (layer 0: embeddings);
* KL divergence ``KL(p_ref || p)`` of each attention row (natural log), and its mean
  per input;
* an output distribution per input (the LAMP paper measures the KL of a language
  model's next-token distribution; a sentence encoder has none, so: the softmax over
  the other inputs of the similarity ``e_i . e_j / temperature``, a retrieval
  distribution), its KL against the reference and its top-1 flips.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["cosine_each", "embedding_rel_error", "pairwise_spearman", "nn_agreement",
           "layer_rel_errors", "attention_kl", "paired_log_ratio", "attention_kl_per_input",
           "output_distribution", "output_kl", "output_flips"]


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


#: a probability that underflowed to 0 counts as the smallest binary32 subnormal
P_FLOOR = 2.0**-149


def _kl_terms(R, P):
    """Termwise ``R log(R / P) - R + P`` (>= 0; 0 log 0 = 0), see :func:`attention_kl`.

    ``P`` is floored at :data:`P_FLOOR`: in a long row a binary32 ``exp`` underflows
    to 0 where the binary64 reference keeps a positive ``R`` below ``1e-38``; the term
    is then ``R log(R / 2^-149)``, below ``1e-36``, instead of ``inf``."""
    P = np.maximum(P, np.where(R > 0, P_FLOOR, 0.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(R > 0, R * (np.log(R) - np.log(P)) - R + P, P)


def attention_kl(probs, probs_ref) -> list[np.ndarray]:
    """Per layer, the KL divergence of every attention row (all sentences and heads).

    ``KL(p_ref || p) = sum_j p_ref,j log(p_ref,j / p_j)``, evaluated termwise as
    ``p_ref,j log(p_ref,j / p_j) - p_ref,j + p_j`` (each term >= 0; the same sum when
    both rows sum to 1, and never negative when a row rounded to binary32 sums to
    ``1 +- 2^-24``); a ``p`` that underflowed to 0 where ``p_ref`` is positive counts
    as ``2^-149`` (:data:`P_FLOOR`).
    """
    out = []
    for lay, lay_ref in zip(probs, probs_ref, strict=True):
        rows = []
        for P, R in zip(lay, lay_ref, strict=True):
            t = _kl_terms(R, P)
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


def attention_kl_per_input(probs, probs_ref) -> np.ndarray:
    """Per input (sentence or sequence), the mean ``KL(p_ref || p)`` of its attention
    rows over every layer and head (the traces of one batch: ``probs[layer][input]``
    of shape (heads, T, T))."""
    n = len(probs[0])
    tot, cnt = np.zeros(n), np.zeros(n)
    for lay, lay_ref in zip(probs, probs_ref, strict=True):
        for i, (P, R) in enumerate(zip(lay, lay_ref, strict=True)):
            t = _kl_terms(R, P)
            tot[i] += t.sum()
            cnt[i] += R.shape[0] * R.shape[1]
    return tot / cnt


def output_distribution(E: np.ndarray, temperature: float) -> np.ndarray:
    """Per input ``i``, the softmax over the other inputs ``j != i`` of the embedding
    similarity ``e_i . e_j / temperature`` (a retrieval distribution; the diagonal
    is 0)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    S = (E @ E.T) / temperature
    np.fill_diagonal(S, -np.inf)
    S = S - np.max(S, axis=1, keepdims=True)
    e = np.exp(S)
    return e / e.sum(axis=1, keepdims=True)


def output_kl(E: np.ndarray, E_ref: np.ndarray, temperature: float) -> np.ndarray:
    """``KL(q_ref,i || q_i)`` per input of the :func:`output_distribution` rows."""
    Q, R = output_distribution(E, temperature), output_distribution(E_ref, temperature)
    return _kl_terms(R, Q).sum(axis=1)


def output_flips(E: np.ndarray, E_ref: np.ndarray) -> np.ndarray:
    """Per input, whether the top-1 of its output distribution (the most similar other
    input) differs from the reference's (the flip of a top-1 prediction)."""
    def top(X):
        S = X @ X.T
        np.fill_diagonal(S, -np.inf)
        return np.argmax(np.where(np.isnan(S), -np.inf, S), axis=1)

    return top(E) != top(E_ref)
