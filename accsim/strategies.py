"""Precision strategies: which accumulator computes each inner product of a layer.

Implements the adaptive algorithm of El Arar, Filip, Mary, Riccietti, "Mixed precision
accumulation for neural network inference guided by componentwise forward error
analysis", arXiv:2503.15568 (2025), per layer and per input:

1. compute every component ``v_hat`` on the low accumulator;
2. estimate ``kappa_phi(v_hat)`` and ``kappa_v_hat = fl_low(|W||x| + |b|) / |v_hat|`` (the
   ``|W||x|`` product runs on the LOW accumulator and is charged in the cost);
3. recompute on the high accumulator the components whose predicted error
   ``c(n) u_low kappa_phi kappa_v_hat`` is not below ``tau`` ("predicted" criterion; a
   component keeps its low value iff its prediction is ``< tau``, so ``tau = 0``
   recomputes everything, and ``tau = inf`` nothing; a non-finite (overflowed) low value
   predicts ``inf``), or, as in the authors' released script, whose
   ``kappa_phi(v_hat) / |v_hat|`` exceeds ``tol`` ("authors" criterion: kept iff
   ``<= tol``; ``0/0`` is kept, as NaN compares false in their script);
4. apply phi and go on (done by :mod:`accsim.executor`).

``c(n) u`` is the model's own bound constant for an inner product of ``n`` products plus
a bias: the ratio ``bound / sum|terms|`` of :func:`accsim.bounds.error_bound` (for
recursive summation ``gamma_{n+1}(u)``; blocked ``gamma_b(u) + gamma_{n/b}(u)``, ...).
``constant="auto"`` (default) uses the deterministic constant when it is finite and the
probabilistic one (``lambda = 1``) otherwise: fp8 accumulation of 784 terms has
``n u > 1``, so its worst-case constant is infinite and would recompute everything. The
constant kind that ran is reported per layer (:attr:`Decision.info`).

A guard band (``guard=True``) also recomputes the components whose ``|v_hat|`` lies
within the low model's predicted error ``c(n) u_low fl_low(|W||x| + |b|)`` of zero: a
ReLU component whose exact value is small and positive but whose low value came out
negative has estimated ``kappa_phi = 0`` and is otherwise never recomputed (method.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cost import LayerCost, layer_cost

__all__ = ["Decision", "Strategy", "Uniform", "Adaptive", "MultiLevel", "bound_constant",
           "CRITERIA", "CONSTANTS", "model_key"]

CRITERIA = ("predicted", "authors")
CONSTANTS = ("auto", "deterministic", "probabilistic")

_CONST_CACHE: dict = {}


def model_key(model) -> str:
    """A hashable string identifying a model's parameters (class and describe())."""
    d = model.describe()
    return type(model).__name__ + "|" + "|".join(f"{k}={d[k]}" for k in sorted(d))


def bound_constant(model, n: int, kind: str = "deterministic") -> float:
    """The constant ``c`` with ``bound = c * sum|terms|`` for ``n`` products plus a bias.

    Obtained from the model's own bound (:func:`accsim.bounds.error_bound`) on a probe
    whose ``n + 1`` terms are equal (``a_j = 2^-4``, ``b_j = 2^-6``, ``c = 2^-10``: exact
    in every format accsim ships, no overflow, no underflow for ``n <= 2^10``), so it is
    the relative worst case (deterministic) or the ``lambda = 1`` probabilistic constant.

    Parameters
    ----------
    model : Accumulator
    n : int
        Number of products.
    kind : {"deterministic", "probabilistic"}

    Returns
    -------
    float
        ``inf`` if the bound is vacuous (e.g. ``n u >= 1``).
    """
    if kind not in ("deterministic", "probabilistic"):
        raise ValueError(f"unknown bound kind {kind!r}; valid: deterministic, probabilistic")
    key = (model_key(model), int(n), kind)
    if key not in _CONST_CACHE:
        A = np.full((1, n), 2.0**-4)
        B = np.full((n, 1), 2.0**-6)
        C = np.full((1, 1), 2.0**-10)
        total = n * 2.0**-10 + 2.0**-10
        kw = {"lam": 1.0} if kind == "probabilistic" else {}
        with np.errstate(all="ignore"):
            bnd = float(np.asarray(model.error_bound(A, B, C, kind=kind, **kw))[0, 0])
        c = bnd / total
        if not math.isfinite(c) or c < 0:
            c = math.inf
        _CONST_CACHE[key] = c
    return _CONST_CACHE[key]


def resolve_constant(model, n: int, constant: str) -> tuple[float, str]:
    """``(c, kind)`` for ``constant`` in :data:`CONSTANTS` (``auto``: see module doc)."""
    if constant not in CONSTANTS:
        raise ValueError(f"unknown constant {constant!r}; valid: {', '.join(CONSTANTS)}")
    if constant == "auto":
        c = bound_constant(model, n, "deterministic")
        if math.isfinite(c):
            return c, "deterministic"
        return bound_constant(model, n, "probabilistic"), "probabilistic"
    return bound_constant(model, n, constant), constant


@dataclass
class Decision:
    """What a strategy did on one layer.

    Attributes
    ----------
    v_hat : numpy.ndarray (m, P)
        Computed pre-activations (each carries the bits of the model of its level).
    level : numpy.ndarray of int8 (m, P)
        Index into :attr:`models` of the model that produced each component.
    models : list of Accumulator
        The levels.
    cost : LayerCost
    info : dict
        Strategy-specific facts (criterion, constant kind and value).
    """

    v_hat: np.ndarray
    level: np.ndarray
    models: list
    cost: LayerCost
    info: dict = field(default_factory=dict)


class Strategy:
    """Base class; subclasses implement :meth:`layer`."""

    kind = "abstract"
    criterion = "none"
    label = ""

    @property
    def models(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def layer(self, ctx) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "criterion": self.criterion, "label": self.label}


@dataclass
class Uniform(Strategy):
    """Every component on one model."""

    model: object
    label: str = ""
    kind = "uniform"

    @property
    def models(self):
        return [self.model]

    def layer(self, ctx) -> Decision:
        v = ctx.compute(self.model)
        level = np.zeros(v.shape, np.int8)
        return Decision(v, level, self.models, layer_cost(self.models, level, ctx.n,
                                                          estimate=False))


def _estimates(ctx, low, v_low):
    """``kappa_phi(v_hat)`` and ``S_hat = fl_low(|W||x| + |b|)`` (estimation pass)."""
    S_hat = ctx.compute_abs(low)
    kphi = ctx.kappa_phi(v_low)
    return kphi, S_hat


def _predicted(c, kphi, S_hat, v_low):
    """``c kappa_phi kappa_v_hat`` with ``kappa_v_hat = S_hat / |v_hat|``; a component
    with ``kappa_phi = 0`` predicts 0 (its output is exactly phi's flat part)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kv = S_hat / np.abs(v_low)
        pred = c * kphi * kv
    pred = np.where(kphi == 0, 0.0, pred)
    pred = np.where(np.isfinite(v_low), pred, np.inf)  # overflowed low value: recompute
    return np.where(np.isnan(pred), np.inf, pred)


def _guard(c, S_hat, v_low):
    """Components whose ``|v_hat|`` is within the predicted low error of zero."""
    with np.errstate(invalid="ignore", over="ignore"):
        return ~(np.abs(v_low) > c * S_hat)


@dataclass
class Adaptive(Strategy):
    """Low accumulator everywhere, high one where the criterion flags a component.

    Parameters
    ----------
    low, high : Accumulator
    tau : float
        Tolerance on the predicted error (``criterion="predicted"``) or the authors'
        ``tol`` on ``kappa_phi(v_hat) / |v_hat|`` (``criterion="authors"``).
    criterion : {"predicted", "authors"}
    guard : bool
        Also recompute components within the low model's predicted error of zero.
    constant : {"auto", "deterministic", "probabilistic"}
        Which bound constant ``c(n) u_low`` the predicted criterion and the guard use.
    """

    low: object
    high: object
    tau: float
    criterion: str = "predicted"
    guard: bool = False
    constant: str = "auto"
    label: str = ""
    kind = "adaptive"

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {self.criterion!r}; valid: "
                             f"{', '.join(CRITERIA)}")
        if not (self.tau >= 0):
            raise ValueError(f"tau must be >= 0 (inf allowed), got {self.tau!r}")
        if self.constant not in CONSTANTS:
            raise ValueError(f"unknown constant {self.constant!r}; valid: "
                             f"{', '.join(CONSTANTS)}")

    @property
    def models(self):
        return [self.low, self.high]

    def describe(self) -> dict:
        d = super().describe()
        d.update(tau=float(self.tau), guard=int(self.guard), constant=self.constant)
        return d

    def select(self, ctx, v_low):
        """Boolean mask of the components to recompute, and facts for the record."""
        kphi, S_hat = _estimates(ctx, self.low, v_low)
        c, kind = resolve_constant(self.low, ctx.n, self.constant)
        if self.tau == np.inf:
            mask = np.zeros(v_low.shape, bool)
        elif self.criterion == "predicted":
            mask = ~(_predicted(c, kphi, S_hat, v_low) < self.tau)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                score = kphi / np.abs(v_low)
            mask = score > self.tau  # NaN (0/0) compares False, as in the authors' script
        if self.guard and self.tau < np.inf:
            mask |= _guard(c, S_hat, v_low)
        return mask, {"criterion": self.criterion, "constant_kind": kind, "constant": c}

    def layer(self, ctx) -> Decision:
        v_low = ctx.compute(self.low)
        mask, info = self.select(ctx, v_low)
        v = v_low.copy()
        if mask.any():
            v_high = ctx.compute_selected(self.high, mask)
            v[mask] = v_high[mask]
        level = mask.astype(np.int8)
        cost = layer_cost(self.models, level, ctx.n, estimate=True)
        return Decision(v, level, self.models, cost, info)


@dataclass
class MultiLevel(Strategy):
    """Per component, the cheapest of several accumulators whose predicted error meets tau.

    Level 0 computes everything and provides the estimates (as :class:`Adaptive`); a
    component goes to the first level ``k`` (levels ordered by cost) with
    ``c_k(n) u_k kappa_phi kappa_v_hat <= tau``, or to the last level if none qualifies.
    With ``guard=True``, components within level 0's predicted error of zero go to the
    first level whose predicted absolute error ``c_k S_hat`` is below ``|v_hat|``, else to
    the last level. ``constant="auto"`` uses the deterministic constants if they are
    finite for every level, else the probabilistic ones for every level.
    """

    levels: list
    tau: float
    guard: bool = False
    constant: str = "auto"
    label: str = ""
    kind = "multilevel"
    criterion = "predicted"

    def __post_init__(self):
        if len(self.levels) < 2:
            raise ValueError("a multi-level strategy needs at least 2 levels")
        if not (self.tau >= 0):
            raise ValueError(f"tau must be >= 0 (inf allowed), got {self.tau!r}")

    @property
    def models(self):
        return list(self.levels)

    def describe(self) -> dict:
        d = super().describe()
        d.update(tau=float(self.tau), guard=int(self.guard), constant=self.constant,
                 n_levels=len(self.levels))
        return d

    def layer(self, ctx) -> Decision:
        low = self.levels[0]
        v_low = ctx.compute(low)
        kphi, S_hat = _estimates(ctx, low, v_low)
        kind = self.constant
        if kind == "auto":  # one kind for every level, so the predictions compare
            finite = all(math.isfinite(bound_constant(m, ctx.n, "deterministic"))
                         for m in self.levels)
            kind = "deterministic" if finite else "probabilistic"
        consts = [resolve_constant(m, ctx.n, kind) for m in self.levels]
        L = len(self.levels)
        level = np.full(v_low.shape, L - 1, np.int8)
        undecided = np.ones(v_low.shape, bool)
        for k, (c, _) in enumerate(consts):
            if self.tau == np.inf:
                ok = np.ones(v_low.shape, bool)
            else:
                ok = _predicted(c, kphi, S_hat, v_low) < self.tau
            if self.guard and self.tau < np.inf:
                ok &= ~_guard(c, S_hat, v_low)
            take = undecided & ok
            level[take] = k
            undecided &= ~take
        v = v_low.copy()
        for k in range(1, L):
            mask = level == k
            if mask.any():
                v[mask] = ctx.compute_selected(self.levels[k], mask)[mask]
        cost = layer_cost(self.models, level, ctx.n, estimate=True)
        info = {"criterion": "predicted", "constant_kind": ",".join(k for _, k in consts),
                "constant": consts[0][0]}
        return Decision(v, level, self.models, cost, info)
