"""Op classes by module path: ``import_torch(..., op_classes={...})``.

The PyTorch front end gives every inner product and reduction a generic op class
(``dense``, ``matmul``, ``softmax``, ``norm``, ... :mod:`accsim.graph.importers.torch_lowerings`).
A network whose strategies distinguish more classes (MiniLM's ``qkv``, ``scores``,
``context``, ``ln_mean``, ...: :data:`accsim.transformer.opclass.OP_CLASSES`) names
them by where they sit in the module tree. A selector is

``PATH``, ``PATH:GENERIC`` or ``PATH:GENERIC[K]``

* ``PATH``: a module path below the root (``encoder.layer.0.attention.self.query``),
  matched whole; ``*`` stands for any characters but a dot (within one segment),
  ``**`` for any characters (across segments), ``**.`` also for none
  (``**.LayerNorm`` matches ``LayerNorm`` and ``encoder.layer.0.output.LayerNorm``);
* ``GENERIC``: only the linear ops of that generic class inside the module (e.g. the
  ``softmax`` denominators of an attention module, not its ``matmul`` products);
* ``K``: only the ``K``-th (from 0) linear op of that generic class inside that module,
  in graph order (a LayerNorm has two ``norm`` sums: ``[0]`` the mean's, ``[1]`` the
  variance's; eager attention has two ``matmul`` products: ``[0]`` the scores,
  ``[1]`` the context).

Every linear op matched by a selector takes its class; the others keep the generic one.
Refused before the export (``ValueError`` naming the selector): a malformed selector, a
generic class or a target class that is not a linear op class
(:data:`accsim.graph.ops.LINEAR_CLASSES`); after lowering and before any simulation: a
selector that matches no linear op, an op matched by two selectors giving different
classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from accsim.graph.ops import LINEAR_CLASSES
from accsim.graph.tensor_ops import FoldedLinear

__all__ = ["Selector", "parse_op_classes", "assign_op_classes"]

_SELECTOR = re.compile(r"^(?P<path>[^:\[\]]+)(?::(?P<generic>[a-z_]+)(?:\[(?P<k>\d+)\])?)?$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_*]+$")


@dataclass(frozen=True)
class Selector:
    """One parsed key of ``op_classes`` (module docstring)."""

    text: str
    path: re.Pattern
    generic: str | None
    k: int | None
    op_class: str

    def matches(self, path: str, generic: str, k: int) -> bool:
        return (self.path.fullmatch(path) is not None
                and (self.generic is None or self.generic == generic)
                and (self.k is None or self.k == k))


def _path_regex(text: str, path: str) -> re.Pattern:
    if not all(_SEGMENT.match(p) for p in path.split(".")):
        raise ValueError(f"op_classes: selector {text!r}: module path {path!r} must be "
                         "dot-separated names, '*' (one segment) or '**' (any)")
    rx = re.escape(path).replace(r"\*\*\.", "\1").replace(r"\*\*", "\0")
    rx = rx.replace(r"\*", "[^.]*").replace("\1", r"(?:.*\.)?")
    return re.compile(rx.replace("\0", ".*"))


def parse_op_classes(op_classes) -> list[Selector]:
    """Check ``op_classes`` (a mapping selector -> op class) before any work.

    Raises
    ------
    ValueError
        A malformed selector, or a generic or target class that is not in
        :data:`accsim.graph.ops.LINEAR_CLASSES` (naming it and the valid ones).
    """
    if op_classes is None:
        return []
    if not hasattr(op_classes, "items"):
        raise ValueError(f"op_classes: a mapping selector -> op class expected, got "
                         f"{type(op_classes).__name__}")
    valid = ", ".join(LINEAR_CLASSES)
    out = []
    for key, cls in op_classes.items():
        m = _SELECTOR.match(key) if isinstance(key, str) else None
        if m is None:
            raise ValueError(f"op_classes: selector {key!r} is not PATH, PATH:CLASS or "
                             "PATH:CLASS[K] (docs/graph.md, 'Op classes by module path')")
        generic = m["generic"]
        if generic is not None and generic not in LINEAR_CLASSES:
            raise ValueError(f"op_classes: selector {key!r}: {generic!r} is not an op "
                             f"class; valid: {valid}")
        if cls not in LINEAR_CLASSES:
            raise ValueError(f"op_classes[{key!r}]: unknown op class {cls!r}; valid: "
                             f"{valid}")
        out.append(Selector(key, _path_regex(key, m["path"]), generic,
                            None if m["k"] is None else int(m["k"]), cls))
    return out


def assign_op_classes(linear_ops, paths: dict, selectors: list[Selector],
                      root: str) -> None:
    """Give every linear op matched by a selector its class (in place).

    ``paths`` maps an op's name to its module path below the root ("" for the root).
    """
    if not selectors:
        return
    seen, where = {}, {}
    hit = {s.text: False for s in selectors}
    bad = []
    for op in linear_ops:
        path = paths.get(op.name, "")
        generic = op.op_class
        where[f"{path}:{generic}"] = None
        k = seen.get((path, generic), 0)
        seen[(path, generic)] = k + 1
        got = [s for s in selectors if s.matches(path, generic, k)]
        for s in got:
            hit[s.text] = True
        classes = sorted({s.op_class for s in got})
        if len(classes) > 1:
            bad.append(f"{root}.{path} ({generic} [{k}], op {op.name!r}): selectors "
                       f"{[s.text for s in got]} give different classes {classes}")
        elif classes:
            inner = op.op if isinstance(op, FoldedLinear) else op  # its inner op's class
            inner.op_class = classes[0]
    missed = [t for t, h in hit.items() if not h]
    if missed:
        where = list(where)
        bad += [f"op_classes: selector {t!r} matches no inner product or reduction of the "
                "model" for t in missed]
        bad.append(f"(module paths with their generic classes: {', '.join(where[:12])}"
                   + (", ..." if len(where) > 12 else "") + ")")
    if bad:
        raise ValueError("\n".join(bad))
