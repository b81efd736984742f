"""Run a layer graph with simulated accumulators, op class by op class.

An :class:`Assignment` maps each op class that runs on an accumulator
(:data:`~accsim.graph.ops.LINEAR_CLASSES`: ``conv``, ``dense``, ``avgpool``, ...) to a
:class:`~accsim.run.strategies.Strategy` (``Uniform``, ``Adaptive``, ``MultiLevel`` or a
control). This is the op interface shared with every network front end: *an op class
name -> the strategy (accumulator model(s)) its inner products run on*; every
:class:`~accsim.graph.ops.MatmulTask` of an op runs through the one engine,
:func:`accsim.graph.engine.run_task`, so it gets that model's bits, the exact reference
:func:`accsim.numbers.exact.matmul` of the same task input and the model's componentwise
bound (and, with ``extras``, the condition numbers, the probabilistic bound and the
propagated estimate of the MLP runs).

With ``scale`` set (a format name, e.g. ``"float8_e4m3fn"``), every linear op's weights
and input are scaled per tensor by powers of two into that format's range before the
accumulator runs and the results are scaled back (:mod:`accsim.graph.scaling`); the
scales are recorded.

Elementwise ops run in binary64 and round once to ``act_format``; the network input is
rounded to ``input_format`` first; a linear op's fused activation is applied to the
computed pre-activations and rounded once to ``act_format``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from accsim.graph.engine import (
    ComputeCache,
    ExactPass,
    check_bias,
    run_task,
    task_seed,
)
from accsim.graph.ops import LINEAR_CLASSES, Flatten, MatmulTask, apply_activation
from accsim.graph.scaling import column_scales, pow2_scale
from accsim.graph.tally import GraphAccumulator, Tally

__all__ = ["Assignment", "OpResult", "run_graph", "run_linear", "exact_graph",
           "GraphAccumulator", "Tally"]


@dataclass
class Assignment:
    """Which strategy each op class runs on.

    Parameters
    ----------
    strategies : dict
        Op class -> :class:`~accsim.run.strategies.Strategy`; every linear op class present
        in the graph must have one (``"default"`` covers the missing ones).
    label : str
    scale : str, optional
        Per-tensor power-of-two scaling of the linear ops' inputs into this format.
    scaled_classes : set, optional
        The op classes whose inputs are scaled (default: all).
    """

    strategies: dict
    label: str
    scale: str | None = None
    scaled_classes: set | None = None

    def scale_for(self, op_class: str):
        if self.scaled_classes is not None and op_class not in self.scaled_classes:
            return None
        return self.scale

    def __post_init__(self):
        bad = set(self.strategies) - set(LINEAR_CLASSES) - {"default"}
        if bad:
            raise ValueError(f"{self.label}: unknown op classes {sorted(bad)}; valid: "
                             f"{', '.join(LINEAR_CLASSES)}, default")

    def strategy(self, op_class: str):
        s = self.strategies.get(op_class, self.strategies.get("default"))
        if s is None:
            raise ValueError(f"{self.label}: no strategy for op class {op_class!r} (give "
                             "one or a 'default')")
        return s

    @property
    def main(self):
        """The strategy of the conv layers (else the default): the row's headline."""
        return self.strategies.get("conv", self.strategies.get("default",
                                   next(iter(self.strategies.values()))))


#: Per-component arrays of an :class:`OpResult` (the extras may be None).
FIELDS = ("computed", "exact", "bound", "level")
EXTRAS = ("abs_sum", "kappa_v", "kappa_phi", "bound_prob", "propagated")


@dataclass
class OpResult:
    """Per-component results of one linear op on one batch, each ``(B, components)``
    (the op's tasks' :class:`~accsim.graph.engine.TaskResult` in the op's output layout).
    """

    computed: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    level: np.ndarray
    cost: list
    info: dict
    w_scale: float = 1.0
    x_scale: np.ndarray | None = None
    abs_sum: np.ndarray | None = None
    kappa_v: np.ndarray | None = None
    kappa_phi: np.ndarray | None = None
    bound_prob: np.ndarray | None = None
    propagated: np.ndarray | None = None

    @cached_property
    def abs_error(self):
        """``|computed - exact|`` (computed once: the tally reads it three times)."""
        with np.errstate(invalid="ignore"):
            return np.abs(self.computed - self.exact)

    @property
    def rel_error(self):
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / np.abs(self.exact)
        return np.where(err == 0, 0.0, r)

    @property
    def holds(self):
        return self.abs_error <= self.bound

    @property
    def ratio(self):
        """``abs_error / bound`` (0 where both are 0, inf where only the bound is or
        the computed value is NaN)."""
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / self.bound
        r = np.where(err == 0, 0.0, r)
        return np.where(np.isnan(r), np.inf, r)


def _fmax(scale: str) -> float:
    from accsim.numbers.formats import format as get_format

    return float(get_format(scale).max)


def run_linear(op, op_index, x, strategy, *, seed, offset, cache, scale=None,
               reference=True, bias="initial", last=False, extras=False, eps=None,
               u_act=0.0):
    """Run one linear op; returns ``(pre_activation_computed, OpResult)`` (pre-activations
    in the op's output layout, batch first). ``x`` is the op's input, or the list of its
    inputs for an op with several (a matmul of two activations). ``extras``: the MLP
    extras of :func:`accsim.graph.engine.run_task`, with ``eps`` the first-order relative
    error estimate of ``x`` (same shape; its propagation needs a single input)."""
    B = (x[0] if isinstance(x, list) else x).shape[0]
    keys = FIELDS + (EXTRAS if extras and reference else ())
    if eps is not None and not extras:
        raise ValueError("eps is the input estimate of the extras: give extras=True")
    if extras and scale is not None:
        raise ValueError(f"op {op.name!r}: the extras (condition numbers, propagated "
                         "estimate) are not defined for per-tensor scaled inputs")
    parts = {k: [] for k in keys}
    costs, info = [], {}
    w_scale, x_scale = 1.0, None
    eps_tasks = op.lower(eps) if eps is not None else None
    for ti, t in enumerate(op.lower(x)):
        sw, sx = 1.0, None
        if scale is not None:
            fmax = _fmax(scale)
            sw = float(pow2_scale(np.max(np.abs(op.weight)), fmax))
            sx = column_scales(x, t.X.shape[1], fmax)
            t = MatmulTask(t.W * sw, t.X * sx[None, :], t.C * (sw * sx)[None, :],
                               t.activation, t.key)
            w_scale, x_scale = sw, sx[:: max(t.X.shape[1] // B, 1)]
        r = run_task(t, strategy, index=(op_index, t.key, sw),
                     seed=task_seed(seed, op_index, offset), cache=cache, bias=bias,
                     last=last, reference=reference, extras=extras,
                     eps_in=None if eps_tasks is None else eps_tasks[ti].X, u_act=u_act)
        unscale = 1.0 if sx is None else 1.0 / (sw * sx)[None, :]
        for k in keys:
            v = getattr(r, k)
            if k == "level":
                v = v.astype(np.float64)
            elif k in ("computed", "exact", "bound"):
                v = v * unscale
            elif v is None:
                v = np.full(r.computed.shape, np.nan)
            parts[k].append(v)
        costs.append(r.cost)
        info = r.info
    out = {k: op.assemble(p, B).reshape(B, -1) for k, p in parts.items()}
    out["level"] = out["level"].astype(np.int8)
    res = OpResult(cost=costs, info=info, w_scale=w_scale, x_scale=x_scale, **out)
    return op.assemble(parts["computed"], B), res


def run_graph(graph, assignment: Assignment, x, *, seed: int = 0,
              act_format: str = "binary32", input_format: str = "binary32",
              cache: ComputeCache | None = None, offset: int = 0, reference: bool = True,
              bias: str = "initial", extras: bool = False):
    """Run one batch through ``graph``.

    Parameters
    ----------
    graph : accsim.graph.Graph
    assignment : Assignment
    x : numpy.ndarray
        ``(B,) + graph.input_shape`` (or flat); rounded to ``input_format`` first.
    seed, offset : int
        Seed of stochastic-rounding models, folded with the op index and the index of
        the batch's first image.
    act_format, input_format : str
    cache : ComputeCache, optional
        Shared between assignments run on the same batch.
    reference : bool
        Compute the exact reference and the bound of every component (False: only the
        strategy's values, for timing the simulation alone; exact and bound are NaN).
    bias : {"initial", "after"}
        The bias as the accumulator's initial value, or one rounded addition after the
        sum (:mod:`accsim.graph.engine`).
    extras : bool
        Also record per component ``abs_sum``, ``kappa_v``, ``kappa_phi``,
        ``bound_prob`` and the first-order estimate ``propagated`` of each linear op's
        output error (carried through :class:`~accsim.graph.ops.Flatten`; NaN after any
        other op that is not linear).

    Returns
    -------
    outputs : dict
        Op name -> output (batch first); ``"input"`` the rounded input.
    results : list of OpResult
        One per linear op, in graph order.
    """
    from accsim import round as _round
    from accsim.numbers.formats import format as get_format

    check_bias(bias)
    cache = ComputeCache() if cache is None else cache
    x = graph.check_input(x)
    vals = {"input": _round(x, input_format)}
    eps = {"input": np.zeros_like(vals["input"])} if extras and reference else None
    u_act = get_format(act_format).u if eps is not None else 0.0
    last = max((i for i, op in enumerate(graph.ops) if op.linear), default=-1)
    results = []
    for i, op in enumerate(graph.ops):
        xs = [vals[n] for n in op.inputs]
        if op.linear:
            e = None
            if eps is not None:
                e = eps[op.inputs[0]] if len(op.inputs) == 1 else \
                    np.full(xs[0].shape, np.nan)
            v, res = run_linear(op, i, xs[0] if len(xs) == 1 else xs,
                                assignment.strategy(op.op_class), seed=seed,
                                offset=offset, cache=cache,
                                scale=assignment.scale_for(op.op_class),
                                reference=reference, bias=bias, last=i == last,
                                extras=eps is not None, eps=e, u_act=u_act)
            with np.errstate(all="ignore"):
                y = apply_activation(op.activation, v)
            results.append(res)
            if eps is not None:
                eps[op.name] = res.propagated.reshape(v.shape)
        else:
            with np.errstate(all="ignore"):
                y = op.forward(xs)
            if eps is not None:
                eps[op.name] = op.forward([eps[op.inputs[0]]]) \
                    if isinstance(op, Flatten) else np.full(np.shape(y), np.nan)
        # an op holding integers (token ids: round_output False) is not rounded
        vals[op.name] = _round(np.ascontiguousarray(y), act_format) \
            if getattr(op, "round_output", True) else y
    return vals, results


def exact_graph(graph, x, *, seed: int = 0, act_format: str = "binary32",
                input_format: str = "binary32", cache: ComputeCache | None = None,
                offset: int = 0) -> dict:
    """Outputs of the exact network: every linear op's ``W x + b`` exact
    (:func:`accsim.numbers.exact.matmul`, correctly rounded to binary64), activations
    and roundings as in :func:`run_graph`. The reference of the label-free metrics
    (top-1 agreement, logit error) of the MLP runs; shares ``cache`` with the
    strategies' passes."""
    vals, _ = run_graph(graph, Assignment({"default": ExactPass()}, "exact"), x, seed=seed,
                        act_format=act_format, input_format=input_format, cache=cache,
                        offset=offset, reference=False)
    return vals
