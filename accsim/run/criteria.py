"""Recomputation criteria of the adaptive strategies, one registration each.

A criterion decides, per component, whether the adaptive strategy
(:class:`accsim.run.strategies.Adaptive`) recomputes the low value ``v_hat`` on the high
accumulator. It is a :class:`Criterion`: a name, whether it needs the estimate ``S_hat``
of ``|W||x| + |b|`` (charged in the cost), a ``flag`` (the components recomputed at a
threshold ``tau``), a ``score`` (higher: recompute first; a budgeted selection takes the
top fraction of it), and the label prefix of its threshold rows. Adding a criterion is
one :func:`register_criterion` call (here for a built-in one, anywhere for a third
party); the run and sweep configs, :func:`accsim.run.experiment.make_strategy` and
``evaluate`` then accept its name (:func:`check_criterion`).

Both functions take ``(strategy, ctx, v_low, c, S_hat)``: the :class:`Adaptive` (its
``tau``, ``zero`` rule, ``output_kappa``), the task context
(:class:`accsim.graph.engine.TaskContext`), the low values, the low model's bound constant
``c(n) u_low`` and the estimate (None unless the criterion or the guard asked for it).

Built in (El Arar, Filip, Mary, Riccietti, arXiv:2503.15568 (2025), and issue 20):

``predicted``  the predicted relative error ``c kappa_phi(v_hat) kappa_v_hat``
               (``kappa_v_hat = S_hat / |v_hat|``); kept iff ``< tau``;
``authors``    the authors' released script: ``kappa_phi(v_hat) / |v_hat|``, recomputed
               iff ``> tau``; a zero low value is recomputed with ``zero = "recompute"``;
``absolute``   the predicted absolute output error ``c S_hat |phi'(v_hat)|``; kept iff
               ``< tau``.

A non-finite (overflowed) low value is always recomputed and scores ``inf``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field

__all__ = ["Criterion", "register_criterion", "get_criterion", "criterion_names",
           "check_criterion", "CriterionName", "predicted_error"]


@dataclass(frozen=True)
class Criterion:
    """One recomputation criterion (see the module docstring).

    Attributes
    ----------
    name : str
    estimate : bool
        Whether ``flag`` and ``score`` read ``S_hat`` (the strategy then pays for it).
    flag : callable
        ``(strategy, ctx, v_low, c, S_hat) -> bool array``: recompute at ``strategy.tau``.
    score : callable
        ``(strategy, ctx, v_low, c, S_hat) -> float array``: the ranking of a budgeted
        selection (NaN ranks last).
    label : str
        Label prefix of a threshold row (``prefix + tau``).
    """

    name: str
    estimate: bool
    flag: Callable
    score: Callable
    label: str


_CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> Criterion:
    """Make ``criterion`` known by its name (a name registered twice is an error)."""
    if criterion.name in _CRITERIA:
        raise ValueError(f"criterion {criterion.name!r} is already registered")
    _CRITERIA[criterion.name] = criterion
    return criterion


def criterion_names() -> tuple:
    """Names of the registered criteria, in registration order."""
    return tuple(_CRITERIA)


def check_criterion(name) -> str:
    """The one check of a criterion name (run and sweep configs, ``make_strategy``,
    ``evaluate``, :class:`~accsim.run.strategies.Adaptive`).

    Raises
    ------
    ValueError
        ``name`` is not registered (the message lists the valid names).
    """
    if name not in _CRITERIA:
        raise ValueError(f"unknown criterion {name!r}; valid: {', '.join(_CRITERIA)}")
    return name


def get_criterion(name: str) -> Criterion:
    """The registered :class:`Criterion` called ``name`` (``ValueError`` otherwise)."""
    return _CRITERIA[check_criterion(name)]


#: pydantic field type of a criterion name, checked by :func:`check_criterion` at
#: validation time (so a criterion registered after import is accepted too).
CriterionName = Annotated[str, AfterValidator(check_criterion),
                          Field(json_schema_extra=lambda schema: schema.update(
                              enum=list(_CRITERIA)))]


def _kappa_phi(s, ctx, v_low):
    """``kappa_phi(v_hat)`` of the op's activation, or of ``s.output_kappa`` on the
    network's last op."""
    from accsim.analysis.kappa import kappa_phi

    if getattr(ctx, "last", False) and s.output_kappa is not None:
        return np.asarray(kappa_phi(v_low, s.output_kappa), np.float64)
    return ctx.kappa_phi(v_low)


def _inf_where_not_finite(v_low, sc):
    return np.where(np.isfinite(v_low), sc, np.inf)


def predicted_error(c, kphi, S_hat, v_low):
    """``c kappa_phi kappa_v_hat`` with ``kappa_v_hat = S_hat / |v_hat|``; a component
    with ``kappa_phi = 0`` predicts 0 (its output is exactly phi's flat part); a
    non-finite low value or a NaN prediction predicts ``inf``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kv = S_hat / np.abs(v_low)
        pred = c * kphi * kv
    pred = np.where(kphi == 0, 0.0, pred)
    pred = _inf_where_not_finite(v_low, pred)  # overflowed low value: recompute
    return np.where(np.isnan(pred), np.inf, pred)


def _predicted(s, ctx, v_low, c, S_hat):
    return predicted_error(c, _kappa_phi(s, ctx, v_low), S_hat, v_low)


def _absolute(s, ctx, v_low, c, S_hat):
    """``c S_hat |phi'(v_hat)|`` (``phi`` of ``s.output_kappa`` on the last op)."""
    from accsim.analysis.kappa import phi_prime

    act = s.output_kappa if (getattr(ctx, "last", False) and s.output_kappa is not None) \
        else ctx.activation
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sc = c * S_hat * np.asarray(phi_prime(v_low, act), np.float64)
    return _inf_where_not_finite(v_low, sc)


def _not_below(score):
    """The flag of a "kept iff score < tau" criterion (NaN: recomputed)."""
    def flag(s, ctx, v_low, c, S_hat):
        return ~(score(s, ctx, v_low, c, S_hat) < s.tau)
    return flag


def _authors_ratio(s, ctx, v_low):
    with np.errstate(divide="ignore", invalid="ignore"):
        return _kappa_phi(s, ctx, v_low) / np.abs(v_low)


def _authors_flag(s, ctx, v_low, c, S_hat):
    """``kappa_phi / |v_hat| > tau``, or ``v_hat == 0`` with ``zero = "recompute"``, or
    ``v_hat`` not finite."""
    mask = _authors_ratio(s, ctx, v_low) > s.tau
    if s.zero == "recompute":
        mask |= v_low == 0
    return mask | ~np.isfinite(v_low)


def _authors_score(s, ctx, v_low, c, S_hat):
    """``kappa_phi / |v_hat|``; a zero low value scores ``inf`` (``zero = "recompute"``)
    or NaN (ranked last, ``"keep"``)."""
    sc = _authors_ratio(s, ctx, v_low)
    sc = np.where(v_low == 0, np.inf if s.zero == "recompute" else np.nan, sc)
    return _inf_where_not_finite(v_low, sc)


register_criterion(Criterion("predicted", True, _not_below(_predicted), _predicted,
                             "adaptive-tau="))
register_criterion(Criterion("authors", False, _authors_flag, _authors_score,
                             "authors-tol="))
register_criterion(Criterion("absolute", True, _not_below(_absolute), _absolute,
                             "absolute-tau="))
