"""One sweep cell on all-MiniLM-L6-v2 (``[networks.NAME] format = "minilm"``).

The sweep's strategy vocabulary maps onto a one-strategy MiniLM configuration
(:mod:`accsim.transformer.minilm_run`, docs/transformer.md):

* ``uniform``, ``low = M``: every MiniLM operation class runs on ``M``
  (``default = M``), as a graph cell runs every linear op class on it;
* ``adaptive``, ``low``, ``high``, ``tau``, ``criterion``, ``guard``: every class on
  ``low``, the projections (``qkv``, ``attn_out``, ``ffn_in``, ``ffn_out``) adaptive
  to ``high`` (``linear = { kind = "adaptive", ... }``);
* ``multilevel``, controls and ``estimate = "cs"`` are refused (MiniLM has no such
  policy).

The inputs are the first ``samples`` (default: all ``sentences``) lead sentences of the
Lee corpus or lines of ``text_file``; ``seed`` is the run's seed. The cell returns the
MiniLM row (:func:`accsim.transformer.minilm_run.run`, timings dropped) with the sweep's
result keys: ``recomputed_fraction`` = ``lin_recomputed``, ``bit_cost`` = bits per
sentence, ``max_rel_error`` = ``emb_err_max``, ``n_samples`` = sentences; ``accuracy``,
``max_error_bound_ratio`` and ``violations`` are NaN (no labels, no per-component
bound in a MiniLM row).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

__all__ = ["evaluate_minilm", "minilm_inputs"]

#: Row columns that are timings (not results: they differ run to run).
_TIMINGS = ("seconds", "mac_per_s")
#: Default number of inputs (``[run] sentences`` of a MiniLM config).
DEFAULT_SENTENCES = 64


def minilm_inputs(spec: dict) -> int:
    """The number of inputs of a MiniLM spec, checked (``ValueError``): ``sentences`` at
    most the Lee corpus's 290 lead sentences or the text file's sentences."""
    from networks.sentences import read_sentences

    n = spec.get("sentences", DEFAULT_SENTENCES)
    if "text_file" not in spec:
        if n > 290:
            raise ValueError(f"sentences = {n}: the Lee corpus has 290 lead sentences")
        return n
    try:
        have = len(read_sentences(spec["text_file"]))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{spec['text_file']!r} is not a UTF-8 text file ({exc.reason} "
                         f"at byte {exc.start}); one sentence per line expected") from None
    if have < n:
        raise ValueError(f"{n} sentences asked for (sentences), but {spec['text_file']!r} "
                         f"holds {have} (one per non-blank line)")
    return n


def _model(spec) -> dict:
    """A ``[models]`` entry of a MiniLM config from a sweep model spec."""
    return {"name": spec} if isinstance(spec, str) else dict(spec)


def evaluate_minilm(network: str, minilm: dict, strategy: str, low, high=None,
                    levels: list | None = None, tau: float | None = None,
                    criterion: str = "predicted", guard: bool = False,
                    samples: int | None = None, seed: int = 0, *,
                    control: str | None = None, estimate: str = "low",
                    budget: float | None = None) -> dict:
    """Run one sweep cell on MiniLM (module docstring); ``minilm`` is the network's spec
    (``sentences``, ``text_file``, ``encoder_layers``, ``batch``,
    ``activation_format``)."""
    from accsim.transformer.minilm_run import (
        MiniLMConfig,
        PolicySpec,
        RunSection,
        StrategySpec,
        run,
    )

    if strategy not in ("uniform", "adaptive"):
        raise ValueError(f"MiniLM cells run uniform or adaptive strategies, not {strategy!r}")
    if control not in (None, "none") or estimate != "low" or budget is not None:
        raise ValueError("MiniLM cells have no controls, no budget and no 'cs' estimate")
    models = {"low": _model(low)}
    linear = None
    if strategy == "adaptive":
        models["high"] = _model(high)
        linear = PolicySpec(kind="adaptive", high="high", tau=tau, criterion=criterion,
                            guard=guard)
    n = samples or minilm.get("sentences", DEFAULT_SENTENCES)
    with tempfile.TemporaryDirectory(prefix="accsim-minilm-cell-") as tmp:
        rs = RunSection(sentences=n, batch=minilm.get("batch", 20), seeds=[seed],
                        layers=minilm.get("encoder_layers", 6),
                        act_format=minilm.get("activation_format", "binary32"),
                        text_file=minilm.get("text_file"),
                        output=str(Path(tmp) / "cell"), plots=False)
        cfg = MiniLMConfig(run=rs, models=models,
                           strategies=[StrategySpec(name=network, default="low",
                                                    linear=linear)])
        (row,) = run(cfg)["rows"]
    out = {k: v for k, v in row.items() if k not in _TIMINGS and k != "seed"
           and isinstance(v, int | float)}
    out.update(accuracy=math.nan, recomputed_fraction=row["lin_recomputed"],
               bit_cost=row["gbits_per_sentence"] * 1e9, max_rel_error=row["emb_err_max"],
               max_error_bound_ratio=math.nan, violations=math.nan,
               n_samples=int(row["inputs"]), label=row["label"], strategy_kind=strategy,
               matched_to="", criterion=criterion)
    return out
