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
   ``<= tol``; a zero low value is kept (``zero="keep"``) or recomputed as in the
   authors' script (``zero="recompute"``); an overflowed low value is recomputed);
4. apply phi and go on (done by :func:`accsim.graph.runner.run_graph`).

``c(n) u`` is the model's own bound constant for an inner product of ``n`` products plus
a bias: the ratio ``bound / sum|terms|`` of :func:`accsim.accumulators.bounds.error_bound` (for
recursive summation ``gamma_{n+1}(u)``; blocked ``gamma_b(u) + gamma_{n/b}(u)``, ...).
``constant="auto"`` (default) uses the deterministic constant when it is finite and the
probabilistic one (``lambda = 1``) otherwise: fp8 accumulation of 784 terms has
``n u > 1``, so its worst-case constant is infinite and would recompute everything. The
constant kind that ran is reported per layer (:attr:`Decision.info`).

A guard band (``guard=True``) also recomputes the components whose ``|v_hat|`` lies
within the low model's predicted error ``c(n) u_low fl_low(|W||x| + |b|)`` of zero: a
ReLU component whose exact value is small and positive but whose low value came out
negative has estimated ``kappa_phi = 0`` and is otherwise never recomputed (method.md).

The ``absolute`` criterion scores a component by its predicted absolute OUTPUT error
``c(n) u_low fl_low(|W||x| + |b|) |phi'(v_hat)|`` (:func:`accsim.analysis.kappa.phi_prime`;
recompute iff the score is not below ``tau``; non-finite low values score ``inf``). The
relative criteria rank by ``kappa_v``, which is large where ``|v_hat|`` is small, so they
favour components with a large relative but a small absolute error (issue 20).

Budgeted selection (``budget = f`` instead of ``tau``): every criterion's score (the
predicted error, ``kappa_phi / |v_hat|`` for the authors', the absolute score) ranks the
components of each layer and batch, and the ``round(f * size)`` highest are recomputed
(ties by index, NaN scores last), so criteria and controls compare at equal cost without
tuning ``tau``.

Controls (:class:`Control`, at the matched strategy's per-layer and per-batch count, or
at its per-op fraction over the run): ``random`` (uniform over all components),
``random-active`` (uniform over the ACTIVE components, :func:`active_mask`: those whose
recomputation can change the layer output) and ``oracle`` (largest actual error), each
registered once in :data:`CONTROLS` (:func:`register_control`), the one registry every
network kind's controls pick through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field

from accsim.analysis.kappa import FLAT_ACTIVATIONS
from accsim.run.cost import LayerCost, layer_cost
from accsim.run.criteria import (
    check_criterion,
    criterion_names,
    get_criterion,
    predicted_error,
)

__all__ = ["Decision", "Strategy", "Uniform", "Adaptive", "MultiLevel", "bound_constant",
           "CRITERIA", "CONSTANTS", "STRATEGY_KINDS", "check_kind", "StrategyKind",
           "model_key", "cauchy_schwarz_estimate", "Control", "CONTROL_KINDS",
           "ControlKind", "CONTROLS", "register_control", "get_control",
           "record_count", "active_mask", "top_fraction", "random_active_choice",
           "needs_estimate"]

#: The built-in criteria (:mod:`accsim.run.criteria`; ``criterion_names()`` also lists
#: any registered later).
CRITERIA = criterion_names()
CONSTANTS = ("auto", "deterministic", "probabilistic")
#: The strategy kinds a configuration may ask for (single runs and sweeps alike);
#: controls (:data:`CONTROL_KINDS`) are derived from adaptive strategies, never asked for.
STRATEGY_KINDS = ("uniform", "adaptive", "multilevel")


def check_kind(kind) -> str:
    """The ONE check of a strategy kind (run configs, sweep configs, ``evaluate``).

    Raises
    ------
    ValueError
        ``kind`` is not in :data:`STRATEGY_KINDS` (the message lists the valid kinds and
        says how controls are requested).
    """
    if kind not in STRATEGY_KINDS:
        hint = (f"; {kind!r} is a control: ask for it with controls = [{kind!r}] on an "
                "adaptive strategy" if kind in CONTROL_KINDS else "")
        raise ValueError(f"unknown strategy kind {kind!r}; valid: "
                         f"{', '.join(STRATEGY_KINDS)}{hint}")
    return kind

#: pydantic field type of a strategy kind: a string checked by :func:`check_kind`.
StrategyKind = Annotated[str, AfterValidator(check_kind),
                         Field(json_schema_extra={"enum": list(STRATEGY_KINDS)})]

_CONST_CACHE: dict = {}


def model_key(model) -> str:
    """A hashable string identifying a model's parameters (class and describe())."""
    d = model.describe()
    return type(model).__name__ + "|" + "|".join(f"{k}={d[k]}" for k in sorted(d))




def bound_constant(model, n: int, kind: str = "deterministic") -> float:
    """The rounding-chain constant ``c`` of the model's bound for ``n`` products plus a
    bias: ``bound = c sum|terms| + (absolute underflow terms)``.

    The model's own bound (:func:`accsim.accumulators.bounds.error_bound`) is affine in the data sum
    ``T``: ``g T + (1 + g) E`` with ``E`` the underflow terms, which do not scale with the
    data. Two probes with ``n`` equal terms ``a_j b_j = s`` and bias 0 (a bias exact in
    the accumulator format, as the networks' e4m3 biases are) at ``s`` and ``2 s`` with
    ``s = 2^-(2 + ceil(log2 n))`` (``T`` about 1/4, so the difference does not cancel)
    give ``c = (bound_2 - bound_1) / (T_2 - T_1)``: the relative constant alone,
    whatever the format's subnormal range. (Probing with terms subnormal in the
    accumulator format, as an earlier version did, adds ``E / T`` to ``c``: for e4m3
    blocked-8 at ``n = 784`` it reported 5.33 instead of 1.96.)

    Parameters
    ----------
    model : Accumulator
    n : int
        Number of products.
    kind : {"deterministic", "probabilistic"}
        Worst-case constant, or the Higham-Mary probabilistic one with ``lambda = 1``.

    Returns
    -------
    float
        ``inf`` if the bound is vacuous (e.g. ``n u >= 1``, or an overflow of the
        accumulator format cannot be excluded even for tiny data).
    """
    if kind not in ("deterministic", "probabilistic"):
        raise ValueError(f"unknown bound kind {kind!r}; valid: deterministic, probabilistic")
    key = (model_key(model), int(n), kind)
    if key not in _CONST_CACHE:
        kw = {"lam": 1.0} if kind == "probabilistic" else {}
        A = np.ones((1, int(n)))
        C = np.zeros((1, 1))
        s1 = 2.0 ** -(2 + math.ceil(math.log2(max(int(n), 1))))
        scales = (s1, 2 * s1)
        bnd = []
        with np.errstate(all="ignore"):
            for sc in scales:
                B = np.full((int(n), 1), sc)
                bnd.append(float(np.asarray(model.error_bound(A, B, C, kind=kind,
                                                              **kw))[0, 0]))
        dT = int(n) * (scales[1] - scales[0])
        c = (bnd[1] - bnd[0]) / dT if all(math.isfinite(b) for b in bnd) and n > 0 else \
            (0.0 if n == 0 else math.inf)
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
                                                          estimate=False,
                                                          bias=ctx.has_bias))


def _estimates(ctx, low, v_low, estimate="low"):
    """``kappa_phi(v_hat)`` and the estimate ``S_hat`` of ``|W||x| + |b|``: the pass
    ``fl_low(|W||x| + |b|)`` (``"low"``) or the Cauchy-Schwarz upper bound
    ``||w_i||_2 ||x||_2 + |b_i|`` (``"cs"``, see :func:`cauchy_schwarz_estimate`)."""
    S_hat = ctx.compute_abs(low) if estimate == "low" else cauchy_schwarz_estimate(ctx)
    kphi = ctx.kappa_phi(v_low)
    return kphi, S_hat


def cauchy_schwarz_estimate(ctx) -> np.ndarray:
    """``||w_i||_2 ||x_p||_2 + |b_i|`` for every component: an upper bound of
    ``sum_j |w_ij x_jp| + |b_i|`` (Cauchy-Schwarz), so a criterion using it is at least as
    conservative as one using the exact sum. Evaluated in binary64 and inflated by
    ``2^-40`` relative (covers the roundings of the norms and the product)."""
    W = ctx.layer.W
    rn = np.sqrt(np.einsum("ij,ij->i", W, W))
    xn = np.sqrt(np.einsum("jp,jp->p", ctx.X, ctx.X))
    return (np.outer(rn, xn) + np.abs(ctx.C)) * (1 + 2.0**-40)


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
    estimate : {"low", "cs"}
        How ``|W||x| + |b|`` is estimated when the criterion or the guard needs it (the
        low-accumulator pass, or the Cauchy-Schwarz bound; see :mod:`accsim.run.cost`). The
        authors' criterion without guard needs no estimate and is billed none.
    zero : {"keep", "recompute"}
        Authors' criterion at ``v_hat == 0`` (``kappa_phi(0)/0``): ``"recompute"`` as in
        the authors' script (El Arar et al.'s mptorch ``script_mp.py``: a zero low value
        is flagged), ``"keep"`` leaves it in low precision.
    output_kappa : str or None
        Activation whose ``kappa_phi`` the criterion uses on the last layer (``None``: the
        layer's own, identity for the logits; ``"relu"`` as in the authors' script).
    """

    low: object
    high: object
    tau: float
    criterion: str = "predicted"
    guard: bool = False
    constant: str = "auto"
    estimate: str = "low"
    zero: str = "keep"
    output_kappa: str | None = None
    label: str = ""
    budget: float | None = None
    kind = "adaptive"

    def __post_init__(self):
        check_criterion(self.criterion)
        if self.budget is not None:
            if not (0 <= self.budget <= 1):
                raise ValueError(f"budget must be a fraction in [0, 1], got {self.budget!r}")
            if not math.isnan(self.tau):
                raise ValueError("give either tau or budget, not both (tau = nan with a "
                                 "budget)")
            if self.guard:
                raise ValueError("guard does not apply to a budgeted selection (the budget "
                                 "fixes the recomputed count)")
        elif not (self.tau >= 0):
            raise ValueError(f"tau must be >= 0 (inf allowed), got {self.tau!r}")
        if self.constant not in CONSTANTS:
            raise ValueError(f"unknown constant {self.constant!r}; valid: "
                             f"{', '.join(CONSTANTS)}")
        if self.estimate not in ("low", "cs"):
            raise ValueError(f"unknown estimate {self.estimate!r}; valid: low, cs")
        if self.zero not in ("keep", "recompute"):
            raise ValueError(f"unknown zero rule {self.zero!r}; valid: keep, recompute")

    @property
    def models(self):
        return [self.low, self.high]

    @property
    def uses_estimate(self) -> bool:
        """Whether the strategy needs ``|W||x| + |b|`` (and pays for estimating it)."""
        needs = get_criterion(self.criterion).estimate
        if self.budget is not None:
            return needs and self.budget > 0
        return (needs or self.guard) and self.tau < np.inf

    def describe(self) -> dict:
        d = super().describe()
        d.update(tau=float(self.tau), guard=int(self.guard), constant=self.constant,
                 estimate=self.estimate if self.uses_estimate else "none", zero=self.zero,
                 output_kappa=self.output_kappa or "")
        if self.budget is not None:
            d["budget"] = float(self.budget)
        return d

    def score(self, ctx, v_low, c, S_hat):
        """The criterion's score of every component (higher: recompute first;
        :mod:`accsim.run.criteria`)."""
        return get_criterion(self.criterion).score(self, ctx, v_low, c, S_hat)

    def select(self, ctx, v_low):
        """Boolean mask of the components to recompute, and facts for the record."""
        c, kind = resolve_constant(self.low, ctx.n, self.constant)
        S_hat = None
        if self.uses_estimate:
            S_hat = (ctx.compute_abs(self.low) if self.estimate == "low"
                     else cauchy_schwarz_estimate(ctx))
        info = {"criterion": self.criterion, "constant_kind": kind, "constant": c}
        if self.budget is not None:
            if self.budget == 0:  # nothing to rank (and no estimate paid for)
                return np.zeros(v_low.shape, bool), info
            return top_fraction(self.score(ctx, v_low, c, S_hat), self.budget), info
        if self.tau == np.inf:
            mask = np.zeros(v_low.shape, bool)
        else:
            mask = get_criterion(self.criterion).flag(self, ctx, v_low, c, S_hat)
        if self.guard and self.tau < np.inf:
            mask |= _guard(c, S_hat, v_low)
        return mask, info

    def layer(self, ctx) -> Decision:
        v_low = ctx.compute(self.low)
        mask, info = self.select(ctx, v_low)
        v = v_low.copy()
        if mask.any():
            v_high = ctx.compute_selected(self.high, mask)
            v[mask] = v_high[mask]
        level = mask.astype(np.int8)
        record_count(ctx, self.label, mask)
        est = self.estimate if self.uses_estimate else "none"
        cost = layer_cost(self.models, level, ctx.n, estimate=est, bias=ctx.has_bias)
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
                ok = predicted_error(c, kphi, S_hat, v_low) < self.tau
            if self.guard and self.tau < np.inf:
                ok &= ~_guard(c, S_hat, v_low)
            take = undecided & ok
            level[take] = k
            undecided &= ~take
        record_count(ctx, self.label, level > 0)
        v = v_low.copy()
        for k in range(1, L):
            mask = level == k
            if mask.any():
                v[mask] = ctx.compute_selected(self.levels[k], mask)[mask]
        cost = layer_cost(self.models, level, ctx.n, estimate=True, bias=ctx.has_bias)
        info = {"criterion": "predicted", "constant_kind": ",".join(k for _, k in consts),
                "constant": consts[0][0]}
        return Decision(v, level, self.models, cost, info)


def top_fraction(score: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``round(fraction * size)`` components with the highest ``score``
    (``inf`` first, NaN last, ties by flat index)."""
    flat = np.asarray(score, np.float64).ravel()
    k = int(min(flat.size, max(0, round(float(fraction) * flat.size))))
    out = np.zeros(flat.size, bool)
    if k:
        key = np.where(np.isnan(flat), -np.inf, -flat)
        # NaN after every finite score and after -inf scores: sort NaN positions last
        order = np.lexsort((np.arange(flat.size), key, np.isnan(flat)))
        out[order[:k]] = True
    return out.reshape(np.shape(score))


def active_mask(ctx, low, v_low, constant: str = "auto") -> np.ndarray:
    """Components whose recomputation can change the layer OUTPUT (``random-active``).

    For an activation flat on ``z <= 0`` (:data:`~accsim.analysis.kappa.FLAT_ACTIVATIONS`:
    ReLU): ``v_hat > 0``, or ``|v_hat|`` within the low model's predicted error
    ``c(n) u_low fl_low(|W||x| + |b|)`` of zero (its exact value may be positive), or
    ``v_hat`` not finite. A component outside this set has ``v_hat`` and (by the bound)
    its exact value both in the flat part: the output is 0 whichever accumulator runs.

    The band is dropped where it is vacuous, ``c(n) u_low >= 1``: since
    ``|v_hat| <= fl(|W||x| + |b|)`` up to rounding it would then hold every component and
    the control would be ``random`` again. This is the case of the e4m3 accumulator of
    the networks here at n = 128, 288, 784, 3136 (c = 3.3, 13.4, 1.96, 17.5); the control
    then draws among ``v_hat > 0`` (and non-finite values), the set issue 20 measured.

    Other activations (identity, tanh, sigmoid, GELU, SiLU) are flat nowhere (their
    derivative vanishes at most at isolated points), so every component is active and
    ``random-active`` is a uniform choice, as ``random``.
    """
    if str(ctx.activation).lower() not in FLAT_ACTIVATIONS:
        return np.ones(v_low.shape, bool)
    c, _ = resolve_constant(low, ctx.n, constant)
    with np.errstate(invalid="ignore"):
        act = (v_low > 0) | ~np.isfinite(v_low)
        if c < 1:
            act |= _guard(c, ctx.compute_abs(low), v_low)
    return act


def needs_estimate(ctx, low) -> bool:
    """Whether ``random-active`` needs the estimation pass on this layer (a flat
    activation and a non-vacuous band, :func:`active_mask`)."""
    return str(ctx.activation).lower() in FLAT_ACTIVATIONS and \
        resolve_constant(low, ctx.n, "auto")[0] < 1


def record_count(ctx, label: str, mask: np.ndarray) -> None:
    """Remember how many components ``label`` recomputed on this layer and batch (its
    matched controls, run after it on the same batch, read it)."""
    cache = getattr(ctx, "cache", None)
    if cache is not None:
        cache[("count", label, ctx.index)] = int(np.count_nonzero(mask))



@dataclass(frozen=True)
class ControlKind:
    """One control kind: how it picks ``k`` of a task's components, without a criterion.

    ``pick(rng, k, size, active, err)`` returns ``k`` distinct flat indices of the
    ``size`` components; ``needs`` says which input it reads (``"active"``: the mask of
    :func:`active_mask`, ``"error"``: the actual error of the low pass, ``None``:
    neither); ``tag`` keys its random stream (a kind whose choice is not random never
    draws from it).
    """

    name: str
    pick: object
    needs: str | None = None
    tag: int = 0


#: The one registry of control kinds: kind -> :class:`ControlKind`
#: (:func:`register_control`); every network kind's controls
#: (:class:`Control`, MiniLM's projections in :mod:`accsim.transformer.policies`) pick
#: their components through it.
CONTROLS: dict = {}


def register_control(kind: ControlKind) -> ControlKind:
    """Register a control kind (once per name)."""
    if kind.name in CONTROLS:
        raise ValueError(f"control {kind.name!r} is already registered")
    CONTROLS[kind.name] = kind
    return kind


def get_control(name: str) -> ControlKind:
    """The registered control kind ``name``.

    Raises
    ------
    ValueError
        An unknown name, listing the registered ones.
    """
    try:
        return CONTROLS[name]
    except KeyError:
        raise ValueError(f"unknown control {name!r}; valid: {', '.join(CONTROLS)}") from None


def _pick_random(rng, k, size, active, err):
    """Uniform without replacement (``Generator.choice``)."""
    return rng.choice(size, k, replace=False)


def _pick_random_active(rng, k, size, active, err):
    """Uniform among the active components, completed uniformly from the others
    (:func:`random_active_choice`)."""
    return random_active_choice(rng, active, k)


def _pick_oracle(rng, k, size, active, err):
    """The ``k`` largest actual errors (NaN counts as largest, ties by index)."""
    err = np.where(np.isnan(err), np.inf, err)
    return np.argsort(-err, kind="stable")[:k]


register_control(ControlKind("random", _pick_random, None, 0x52414E44))
register_control(ControlKind("random-active", _pick_random_active, "active", 0x41435456))
register_control(ControlKind("oracle", _pick_oracle, "error"))
#: Controls of an adaptive strategy (``strategy_kind`` of their results).
CONTROL_KINDS = tuple(CONTROLS)


@dataclass
class Control(Strategy):
    """A control for an adaptive strategy: as many recomputed components as the strategy
    it is matched to, chosen by a registered :class:`ControlKind` instead of its
    criterion, recomputed on its highest model.

    The count, one of two rules:

    * ``fractions=None`` (the shipped networks): on every task (layer and batch) the
      count the matched strategy recorded there (:func:`record_count`); the matched
      strategy runs before the control on the same batch (:func:`accsim.run.experiment.
      prepare` orders them);
    * ``fractions`` given (layer-graph configs, :func:`accsim.simulate`): ``round(f *
      size)`` with ``f`` the matched strategy's recomputed fraction of the op over the
      whole run (``{op index: f}``).

    The two rules keep the bits they had before they shared this class, so they differ
    in three more ways (docs/datasets.md): the random stream (per task:
    ``[seed of the task, tag] (+ [seed] for a replicate)``; per op: ``[seed, seed of the
    task, *task key] (+ [tag], except for random)``), the error the oracle ranks
    (per task: ``|v_low - v_exact|``; per op: the op OUTPUT's ``|phi(v_low) -
    phi(v_exact)|``) and the ``criterion`` of the row (``"none"``; the kind).

    ``kind="random"``: a seeded uniform choice (results do not depend on the thread or
    worker count; ``seed`` > 0 gives further independent replicates).
    ``kind="random-active"``: the same among the active components (:func:`active_mask`),
    completed uniformly from the others if the count exceeds them; it pays the
    estimation pass on ops with a flat activation (it needs ``fl_low(|W||x| + |b|)``).
    ``kind="oracle"``: the components with the largest actual error (not implementable:
    it shows how much a perfect criterion could gain). Random and oracle pay no
    estimation pass.
    """

    low: object
    high: object
    control: str
    matched_to: str = ""
    label: str = ""
    seed: int = 0
    fractions: dict | None = None

    def __post_init__(self):
        get_control(self.control)

    @property
    def kind(self) -> str:  # noqa: D401 - strategy_kind of the dataset
        return self.control

    @property
    def criterion(self) -> str:  # noqa: D401 - criterion of the dataset
        return "none" if self.fractions is None else self.control

    @property
    def models(self):
        return [self.low, self.high]

    def describe(self) -> dict:
        d = super().describe()
        d.update(matched_to=self.matched_to, control_seed=self.seed)
        return d

    def _rng(self, ctx, kind: ControlKind):
        if self.fractions is None:
            key = [int(ctx.seed) % 2**63, kind.tag] + ([int(self.seed)] if self.seed else [])
        else:
            key = [int(self.seed), int(ctx.seed) % 2**63, *ctx.index[1]] + (
                [kind.tag] if kind.name != "random" else [])
        return np.random.default_rng(key)

    def _error(self, ctx, v_low):
        with np.errstate(invalid="ignore", over="ignore"):
            if self.fractions is None:
                return np.abs(v_low - ctx.exact()).ravel()
            return np.abs(ctx.phi(v_low) - ctx.phi(ctx.exact())).ravel()

    def count(self, ctx, size: int) -> int:
        """How many of this task's ``size`` components the control recomputes."""
        if self.fractions is not None:
            f = self.fractions.get(ctx.index[0], 0.0)
            return int(min(size, max(0, round(f * size))))
        key = ("count", self.matched_to, ctx.index)
        if key not in ctx.cache:
            raise RuntimeError(f"control {self.label!r}: the matched strategy "
                               f"{self.matched_to!r} has not run on this batch before it")
        return min(int(ctx.cache[key]), size)

    def select(self, ctx, v_low, k: int) -> np.ndarray:
        """Mask of the ``k`` components this control recomputes."""
        kind = CONTROLS[self.control]
        flat = np.zeros(v_low.size, bool)
        if k > 0:
            active = active_mask(ctx, self.low, v_low).ravel() \
                if kind.needs == "active" else None
            err = self._error(ctx, v_low) if kind.needs == "error" else None
            flat[kind.pick(self._rng(ctx, kind), k, v_low.size, active, err)] = True
        return flat.reshape(v_low.shape)

    def layer(self, ctx) -> Decision:
        v_low = ctx.compute(self.low)
        mask = self.select(ctx, v_low, self.count(ctx, v_low.size))
        v = v_low.copy()
        if mask.any():
            v[mask] = ctx.compute_selected(self.high, mask)[mask]
        level = mask.astype(np.int8)
        est = "low" if CONTROLS[self.control].needs == "active" and \
            needs_estimate(ctx, self.low) else "none"
        cost = layer_cost(self.models, level, ctx.n, estimate=est, bias=ctx.has_bias)
        return Decision(v, level, self.models, cost, {"criterion": self.control,
                                                      "matched_to": self.matched_to})


def random_active_choice(rng, active: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of ``k`` components: uniform without replacement among the ``active``
    ones, and, if ``k`` exceeds them, all of them plus a uniform choice of the rest."""
    act = np.flatnonzero(active)
    if k <= act.size:
        return act[rng.choice(act.size, k, replace=False)]
    rest = np.flatnonzero(~active)
    return np.concatenate([act, rest[rng.choice(rest.size, k - act.size, replace=False)]])
