"""The one family registry: a family's class, its error bound and its exact reference.

Every accumulator family registers itself, once, at the bottom of its own module::

    register_family(Family("recursive", RecursiveSum, bound=bounds.recursive_bound,
                           reference="recursive_sum"))

and everything else reads this table: :func:`accsim.accumulators.factory.build_model`
(``{"family": ...}`` specs), :func:`accsim.accumulators.bounds.error_bound` (dispatch on
``model.family``), and the test suite (every family is checked against its
``fractions.Fraction`` reference, named by ``reference`` in ``tests/reference.py``).
The built-in families are imported by :mod:`accsim.accumulators.builtin`; a third party
(or a test) registers a family with one :func:`register_family` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Family", "register_family", "get_family", "family_names", "unregister_family"]


@dataclass(frozen=True)
class Family:
    """One accumulator family.

    Attributes
    ----------
    name : str
        The ``family`` key of model specs and of ``model.family``.
    cls : type
        The frozen dataclass implementing it (an ``Accumulator`` subclass).
    bound : callable
        ``bound(model, ar, A, B, C, prob) -> (bound, overflow_mask)``, the family's
        componentwise error bound in the arithmetic ``ar`` of :mod:`accsim.accumulators.bounds`.
    reference : str
        Name of the slow ``fractions.Fraction`` reference of the family in
        ``tests/reference.py`` (``reference(model, A, B, C, seed) -> list of rows``).
    """

    name: str
    cls: type
    bound: Callable
    reference: str


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family, *, overwrite: bool = False) -> Family:
    """Add ``family`` to the registry (``ValueError`` if the name is taken and not
    ``overwrite``, or if ``family.cls.family`` is not ``family.name``)."""
    if not isinstance(family, Family):
        raise ValueError(f"register_family takes a Family, got {family!r}")
    if family.name in _FAMILIES and not overwrite and _FAMILIES[family.name] != family:
        raise ValueError(f"accumulator family {family.name!r} is already registered")
    if getattr(family.cls, "family", None) != family.name:
        raise ValueError(f"{family.cls.__name__}.family is "
                         f"{getattr(family.cls, 'family', None)!r}, not {family.name!r}")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family (for tests that register a temporary one)."""
    _FAMILIES.pop(name, None)


def get_family(name: str) -> Family:
    """The registered family ``name`` (``ValueError`` listing the valid names)."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown family {name!r}; valid: {', '.join(_FAMILIES)}") from None


def family_names() -> tuple[str, ...]:
    """Names of the registered families, in registration order."""
    return tuple(_FAMILIES)
