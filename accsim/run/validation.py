"""The one validation layer of the TOML configurations (run, graph, sweep, minilm).

Every config kind is read with :func:`parse_toml` and walked by :func:`check_document`
against its pydantic model *before* pydantic's lax coercion and before any work; the
first broken rule is reported as ``(key path, rule)`` and each loader prefixes its
``FILE:LINE: key``. The rules, one place for all kinds:

* **TOML depth.** A document nested deeper than :data:`MAX_DEPTH` (tables, arrays,
  inline tables) is refused; ``tomllib`` itself recurses once per level, so a 3,000-deep
  array would otherwise end in a ``RecursionError``.
* **Strict types.** A boolean is not a number (pydantic's lax mode reads ``true`` as
  1), and a string or a number is not a boolean (lax mode reads ``"yes"`` as true).
* **Non-empty lists.** An empty list is refused, except for the keys in
  :data:`EMPTY_OK` (an empty sweep axis would silently give 0 cells).
* **The seed rule.** Every ``seed`` / ``seeds`` value is an integer in ``[0, 2**64)``
  (:func:`accsim.numbers.seeds.check_seed`).
* **Bounded parameters.** :data:`BOUNDS` (e.g. ``bootstrap``), and keys, names and
  labels at most :data:`MAX_NAME` characters (a 100,000-character name stalls rich's
  highlighter when it is printed).
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from enum import Enum

from pydantic import BaseModel

from accsim.numbers.seeds import SEED_LIMIT

__all__ = ["BOUNDS", "EMPTY_OK", "MAX_DEPTH", "MAX_NAME", "check_document", "format_key",
           "parse_toml"]

#: Deepest nesting of tables, arrays and inline tables accepted in a config.
MAX_DEPTH = 32

#: Keys whose value may be an empty list (an explicit "none").
EMPTY_OK = frozenset({"controls", "seed_keys", "grid", "cells", "ops"})

#: ``key: (low, high)``: inclusive bounds of numeric parameters, wherever they appear.
BOUNDS = {"bootstrap": (100, 100_000)}

#: Longest name or label (characters).
MAX_NAME = 256
_NAME_KEYS = frozenset({"name", "label", "description"})
_SEED_KEYS = frozenset({"seed", "seeds"})


def parse_toml(text: str) -> dict:
    """``tomllib.loads`` with the depth limit :data:`MAX_DEPTH`.

    Raises
    ------
    tomllib.TOMLDecodeError
        Not valid TOML, or nested too deeply (the message names the key path).
    """
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(
            f"nested too deeply (more than {MAX_DEPTH} levels of arrays or tables)") \
            from None
    bad = _too_deep(data)
    if bad is not None:
        path, rule = bad
        shown = tuple(p if not isinstance(p, str) or len(p) <= 40 else p[:40] + "..."
                      for p in path[:8])
        raise tomllib.TOMLDecodeError(
            f"{format_key(shown)}{'...' if len(path) > 8 else ''}: {rule}")
    return data


def _too_deep(data) -> tuple | None:
    """``(key path, rule)`` of the first value nested deeper than :data:`MAX_DEPTH`
    or the first key longer than :data:`MAX_NAME` (an iterative walk)."""
    stack = [((), data)]
    while stack:
        path, v = stack.pop()
        if len(path) > MAX_DEPTH:
            return path, f"nested more than {MAX_DEPTH} levels deep (arrays and tables)"
        if isinstance(v, dict):
            for k in v:
                if len(k) > MAX_NAME:
                    return path + (k,), (f"a key of {len(k)} characters; the limit is "
                                         f"{MAX_NAME}")
            stack += [(path + (k,), x) for k, x in v.items()]
        elif isinstance(v, list):
            stack += [(path + (i,), x) for i, x in enumerate(v)]
    return None


def format_key(path) -> str:
    """``("strategies", 2, "model")`` -> ``"strategies[2].model"``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# --------------------------------------------------------------------- the type walk
def _strip(ann):
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


def _members(ann) -> list:
    ann = _strip(ann)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(ann):
            out += _members(a)
        return out
    return [ann]


def _is_model(a) -> bool:
    return isinstance(a, type) and issubclass(a, BaseModel)


def _scalar_kinds(members) -> set:
    """What scalars the annotation members accept: 'bool', 'number', 'str', 'any'."""
    kinds = set()
    for a in members:
        origin = typing.get_origin(a)
        if a is typing.Any or a is object:
            kinds.add("any")
        elif a is bool:
            kinds.add("bool")
        elif a in (int, float):
            kinds.add("number")
        elif a is str or (isinstance(a, type) and issubclass(a, Enum)):
            kinds.add("str")
        elif origin is typing.Literal:
            for v in typing.get_args(a):
                kinds.add("bool" if isinstance(v, bool) else
                          "number" if isinstance(v, int | float) else "str")
        elif isinstance(a, type) and issubclass(a, bool):
            kinds.add("bool")
        elif isinstance(a, type) and issubclass(a, int | float):
            kinds.add("number")
        elif isinstance(a, type) and issubclass(a, str):
            kinds.add("str")
        elif origin is None and not _is_model(a) and a is not type(None):
            kinds.add("any")  # an unknown type: do not judge
    return kinds


def _walk(ann, value, path: tuple):
    """The first ``(path, rule)`` broken by ``value`` against ``ann``, or None."""
    members = _members(ann)
    if any(a is typing.Any or a is object for a in members):
        return None
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if isinstance(value, bool):
        kinds = _scalar_kinds(members)
        if "bool" not in kinds and "any" not in kinds and "number" in kinds:
            return path, f"must be a number, not a boolean (got {value!r})"
        return None
    if isinstance(value, int | float):
        kinds = _scalar_kinds(members)
        if kinds == {"bool"}:
            return path, f"must be true or false, not a number (got {value!r})"
        if key in _SEED_KEYS and isinstance(value, int) and not 0 <= value < SEED_LIMIT:
            return path, f"a seed must be an integer in [0, 2**64), got {value}"
        if key in BOUNDS and isinstance(value, int | float) and not (
                isinstance(value, float) and math.isnan(value)):
            lo, hi = BOUNDS[key]
            if not lo <= value <= hi:
                return path, f"must be in [{lo}, {hi}], got {value!r}"
        return None
    if isinstance(value, str):
        kinds = _scalar_kinds(members)
        if kinds == {"bool"}:
            return path, f"must be true or false, not a string (got {value!r})"
        if kinds == {"number"}:
            return path, f"must be a number, not a string (got {value!r})"
        if key in _NAME_KEYS and len(value) > MAX_NAME:
            return path, f"is {len(value)} characters long; the limit is {MAX_NAME}"
        return None
    if isinstance(value, list):
        seqs = [a for a in members if typing.get_origin(a) in (list, tuple, set,
                                                                frozenset)]
        if not value:
            if key not in EMPTY_OK and seqs:
                return path, "must not be an empty list"
            return None
        if len(seqs) != 1:
            return None
        args = typing.get_args(seqs[0])
        if not args:
            return None
        if typing.get_origin(seqs[0]) is tuple and not (len(args) == 2
                                                         and args[1] is Ellipsis):
            items = list(zip(args, value, strict=False))
        else:
            items = [(args[0], v) for v in value]
        for i, (a, v) in enumerate(items):
            bad = _walk(a, v, path + (i,))
            if bad:
                return bad
        return None
    if isinstance(value, dict):
        models = [a for a in members if _is_model(a)]
        maps = [a for a in members if typing.get_origin(a) is dict]
        if len(models) == 1 and not maps:
            return check_document(models[0], value, path)
        if len(maps) == 1 and not models:
            args = typing.get_args(maps[0])
            if len(args) == 2:
                for k, v in value.items():
                    bad = _walk(args[1], v, path + (k,))
                    if bad:
                        return bad
        return None
    return None


def check_document(model: type[BaseModel], data, path: tuple = ()):
    """The first broken rule of the module docstring in ``data`` (a parsed TOML table)
    against the pydantic ``model``: ``(key path, rule)``, or None when all hold.
    Keys the model does not know are left to pydantic (``extra="forbid"``)."""
    if not isinstance(data, dict):
        return None
    fields = {}
    for name, f in model.model_fields.items():
        fields[f.alias or name] = f
        fields.setdefault(name, f)
    for k, v in data.items():
        f = fields.get(k)
        if f is None:
            continue
        bad = _walk(f.annotation, v, path + (k,))
        if bad:
            return bad
    return None


# --------------------------------------------------------------------- layer graphs
def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pair(v, low: int) -> bool:
    """An int >= low, or a list of two such ints (height, width)."""
    if _int(v):
        return v >= low
    return isinstance(v, list) and len(v) == 2 and all(_int(x) and x >= low for x in v)


#: Per layer type: ``key: (required, rule, description)``.
_LAYER_RULES = {
    "conv2d": {"out_channels": (True, lambda v: _int(v) and v >= 1, "an integer >= 1"),
               "kernel": (True, lambda v: _pair(v, 1),
                          "an integer >= 1 or a list of two (height, width)"),
               "stride": (False, lambda v: _pair(v, 1),
                          "an integer >= 1 or a list of two (height, width)"),
               "padding": (False, lambda v: _pair(v, 0),
                           "an integer >= 0 or a list of two (height, width)"),
               "groups": (False, lambda v: _int(v) and v >= 1, "an integer >= 1")},
    "dense": {"out_features": (True, lambda v: _int(v) and v >= 1, "an integer >= 1")},
    "batchnorm": {"eps": (False, lambda v: isinstance(v, int | float)
                          and not isinstance(v, bool) and v > 0, "a number > 0")},
    "maxpool2d": {"kernel": (True, lambda v: _pair(v, 1),
                             "an integer >= 1 or a list of two (height, width)"),
                  "stride": (False, lambda v: v is None or _pair(v, 1),
                             "an integer >= 1 or a list of two (height, width)"),
                  "padding": (False, lambda v: _pair(v, 0),
                              "an integer >= 0 or a list of two (height, width)")},
}
_LAYER_RULES["avgpool2d"] = _LAYER_RULES["maxpool2d"]
_COMMON_RULES = {
    "bias": (False, lambda v: isinstance(v, bool), "true or false"),
    "activation": (False, lambda v: isinstance(v, str), "an activation name (a string)"),
    "name": (False, lambda v: isinstance(v, str) and 0 < len(v) <= MAX_NAME,
             f"a string of 1 to {MAX_NAME} characters"),
    "weights": (False, lambda v: isinstance(v, str), "a string (the tensor prefix)"),
    "inputs": (False, lambda v: isinstance(v, list) and len(v) >= 1
               and all(isinstance(x, str) for x in v),
               "a non-empty list of layer names"),
}


def check_layers(layers, path: tuple = ()):
    """The first broken rule of a declared layer list (``[[network.layers]]``): keys
    required per layer type (``conv2d``: ``out_channels``, ``kernel``; ``dense``:
    ``out_features``; pools: ``kernel``), integer sizes >= 1 (padding >= 0), no bool
    for a number, ``bias`` a bool, ``inputs`` a list of names (``add``: two or more).
    Returns ``(key path, rule)`` or None; the layer types themselves and the tensors
    are checked by :func:`accsim.graph.importers.spec.build_graph`."""
    if not isinstance(layers, list):
        return None
    for i, spec in enumerate(layers):
        p = path + (i,)
        if not isinstance(spec, dict):
            return p, "a layer must be a table"
        t = spec.get("type")
        if not isinstance(t, str):
            return p + ("type",), "required key is missing (the layer type)" \
                if t is None else f"must be a layer type name, got {t!r}"
        rules = {**_COMMON_RULES, **_LAYER_RULES.get(t, {})}
        for key, (required, ok, what) in rules.items():
            if key not in spec:
                if required:
                    return p + (key,), f"required key of a {t} layer is missing ({what})"
                continue
            if not ok(spec[key]):
                return p + (key,), f"must be {what}, got {spec[key]!r}"
        if t == "add" and len(spec.get("inputs") or []) < 2:
            return p + ("inputs",), "an add layer needs 'inputs' naming two or more layers"
        if t == "conv2d" and spec["out_channels"] % spec.get("groups", 1):
            return p + ("groups",), (f"must divide out_channels ({spec['out_channels']}), "
                                     f"got {spec.get('groups')}")
    return None


def check_shape(shape, path: tuple = ()):
    """``(path, rule)`` unless ``shape`` is a non-empty list of integers >= 1."""
    if shape is None:
        return None
    if not isinstance(shape, list) or not shape:
        return path, "must be a non-empty list of integers >= 1"
    for i, v in enumerate(shape):
        if not _int(v) or v < 1:
            return path + (i,), f"must be an integer >= 1, got {v!r}"
    return None


# --------------------------------------------------------------------- inputs
def check_inputs(x, y, n_classes: int | None) -> str | None:
    """What is wrong with a set of labelled inputs, or None: at least one input, one
    integer label per input, each label a class of the network's output
    (``0 <= label < n_classes``)."""
    import numpy as np

    n = len(x)
    if n == 0:
        return "the inputs hold no images (0 inputs): nothing to measure"
    y = np.asarray(y)
    if y.shape != (n,):
        return f"{n} inputs but labels of shape {y.shape}"
    if y.dtype.kind not in "iu":
        return f"labels must be integers, got dtype {y.dtype}"
    if n_classes is not None:
        bad = np.flatnonzero((y < 0) | (y >= n_classes))
        if bad.size:
            i = int(bad[0])
            return (f"label {int(y[i])} of input {i} is not a class of the network's "
                    f"{n_classes} outputs (labels are 0..{n_classes - 1}; {bad.size} "
                    "input(s) affected)")
    return None
