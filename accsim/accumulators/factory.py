"""Build accumulator models from a plain dict spec (registry names: :func:`hwmodels.resolve`).

>>> build_model({"family": "recursive", "acc_format": "fp16", "mode": "sr",
...              "sr_bits": 8, "product": "exact"})                      # doctest: +SKIP
>>> build_model({"family": "promotion", "chunk": 128,
...              "inner": {"family": "recursive", "acc_format": "fp16"}})  # doctest: +SKIP

Formats are given by name (any :func:`accsim.format` name or alias); a nested ``"inner"``
dict (promotion) is built recursively. Families come from the one registry
(:mod:`accsim.accumulators.registry`; the built-ins are loaded by
:mod:`accsim.accumulators.builtin`). Model *names* (``"fp16-fma-chain"``,
``"hopper:..."``) are resolved by :func:`hwmodels.resolve`, which calls this for dicts.
"""

from __future__ import annotations

from dataclasses import fields

from accsim.accumulators import builtin  # noqa: F401 - registers the built-in families
from accsim.accumulators.base import Accumulator
from accsim.accumulators.registry import family_names, get_family
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format


def family_class(family: str) -> type:
    """The class implementing ``family`` (ValueError listing the valid families)."""
    return get_family(family).cls


def _is_format_field(f) -> bool:
    return "FloatFormat" in str(f.type) or f.name.endswith("_format")


def build_model(spec) -> Accumulator:
    """An accumulator model from a dict spec, or a model (returned as is).

    Raises
    ------
    ValueError
        A name (resolve names with :func:`hwmodels.resolve`), an unknown family, field
        or format (the message lists valid ones).
    """
    if isinstance(spec, Accumulator):
        return spec
    if isinstance(spec, str):
        raise ValueError(f"build_model takes a dict spec, got the name {spec!r}; resolve "
                         "model names with hwmodels.resolve (names and dicts alike)")
    if not isinstance(spec, dict):
        raise ValueError(f"model spec must be a dict or an Accumulator, got {spec!r}")
    spec = dict(spec)
    family = spec.pop("family", None)
    if family is None:
        raise ValueError(f"model spec needs a 'family'; valid: {', '.join(family_names())}")
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
