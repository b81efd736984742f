"""Build accumulator models from a registry name or a plain dict spec.

>>> build_model("fp16-fma-chain")                                        # doctest: +SKIP
>>> build_model({"family": "recursive", "acc_format": "fp16", "mode": "sr",
...              "sr_bits": 8, "product": "exact"})                      # doctest: +SKIP
>>> build_model({"family": "promotion", "chunk": 128,
...              "inner": {"family": "recursive", "acc_format": "fp16"}})  # doctest: +SKIP

Formats are given by name (any :func:`accsim.format` name or alias); a nested ``"inner"``
dict (promotion) is built recursively. Families are imported lazily from ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from dataclasses import fields

from ..formats import FloatFormat
from ..formats import format as get_format
from .base import Accumulator

FAMILIES: dict[str, str] = {
    "recursive": "accsim.accumulators.recursive:RecursiveSum",
    "blocked": "accsim.accumulators.blocked:BlockedSum",
    "pairwise": "accsim.accumulators.pairwise:PairwiseSum",
    "promotion": "accsim.accumulators.promotion:PromotedSum",
    "kahan": "accsim.accumulators.kahan:KahanSum",
    "kulisch": "accsim.accumulators.kulisch:KulischSum",
    "fused": "accsim.accumulators.fused:FusedDot",
    "exact-step": "accsim.accumulators.fused:ExactStep",
    "ftz-pairwise": "accsim.accumulators.fused:FtzPairwiseStep",
}


def family_class(family: str) -> type:
    """The class implementing ``family`` (ValueError listing the valid families)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    mod, _, cls = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(mod), cls)


def _is_format_field(f) -> bool:
    return "FloatFormat" in str(f.type) or f.name.endswith("_format")


def build_model(spec) -> Accumulator:
    """An accumulator model from a registry name, a dict spec, or a model (returned as is).

    Raises
    ------
    ValueError
        Unknown registry name, family, field or format (the message lists valid ones).
    """
    if isinstance(spec, Accumulator):
        return spec
    if isinstance(spec, str):
        import hwmodels

        return hwmodels.get(spec)
    if not isinstance(spec, dict):
        raise ValueError(
            f"model spec must be a registry name, a dict or an Accumulator, got {spec!r}"
        )
    spec = dict(spec)
    family = spec.pop("family", None)
    if family is None:
        raise ValueError(f"model spec needs a 'family'; valid: {', '.join(FAMILIES)}")
    cls = family_class(family)
    valid = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(spec) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} for family {family!r}; valid: {', '.join(valid)}"
        )
    kw = {}
    for key, v in spec.items():
        f = valid[key]
        if key == "inner" and not isinstance(v, Accumulator):
            v = build_model(v)
        elif _is_format_field(f) and isinstance(v, str) and v.lower() not in ("none",):
            v = get_format(v)
        elif _is_format_field(f) and isinstance(v, str):
            v = None
        kw[key] = v
    if "name" not in kw:
        kw["name"] = _auto_name(family, kw)
    return cls(**kw)


def _auto_name(family: str, kw: dict) -> str:
    parts = [family]
    for k, v in kw.items():
        if isinstance(v, FloatFormat):
            v = v.name
        elif isinstance(v, Accumulator):
            v = v.name
        parts.append(f"{k}={v}")
    return ",".join(parts)
