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

import hashlib
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


def _component_array(name):
    def get(self):
        v = self._arrays.get(name)
        if v is None and name in self._pending:
            v = self._assemble(name, self._pending.pop(name))
            self._arrays[name] = v
        return v

    def put(self, value):
        self._pending.pop(name, None)
        self._tasks = {}  # stats() then reads the arrays as set
        self._arrays[name] = value

    return property(get, put, doc=f"``{name}`` per component, ``(B, components)``.")


class OpResult:
    """Per-component results of one linear op on one batch, each ``(B, components)``
    (the op's tasks' :class:`~accsim.graph.engine.TaskResult` in the op's output layout).

    :func:`run_linear` builds it from the tasks' results (:meth:`from_tasks`); an array
    is put into the op's layout (a copy) the first time it is read, so a tally that
    only needs :meth:`stats` (maxima and counts, which do not depend on the layout)
    never pays for that copy.
    """

    def __init__(self, computed, exact, bound, level, cost, info, w_scale=1.0,
                 x_scale=None, abs_sum=None, kappa_v=None, kappa_phi=None,
                 bound_prob=None, propagated=None):
        self._arrays = {"computed": computed, "exact": exact, "bound": bound,
                        "level": level, "abs_sum": abs_sum, "kappa_v": kappa_v,
                        "kappa_phi": kappa_phi, "bound_prob": bound_prob,
                        "propagated": propagated}
        self._pending: dict = {}
        self._tasks: dict = {}
        self._op = None
        self._batch = 0
        self.cost = cost
        self.info = info
        self.w_scale = w_scale
        self.x_scale = x_scale

    @classmethod
    def from_tasks(cls, op, batch: int, parts: dict, computed: np.ndarray, cost, info,
                   w_scale=1.0, x_scale=None):
        """The result of ``op`` on a batch of ``batch`` inputs from the per-task arrays
        ``parts`` (key -> one array per task, as :meth:`LinearOp.assemble` takes them);
        ``computed`` already assembled ``(B, components)``."""
        res = cls(computed, None, None, None, cost, info, w_scale, x_scale)
        res._op, res._batch = op, batch
        res._tasks = parts
        res._pending = {k: v for k, v in parts.items() if k != "computed"}
        return res

    def _assemble(self, name, parts):
        v = self._op.assemble(parts, self._batch).reshape(self._batch, -1)
        return v.astype(np.int8, copy=False) if name == "level" else v

    computed = _component_array("computed")
    exact = _component_array("exact")
    bound = _component_array("bound")
    level = _component_array("level")
    abs_sum = _component_array("abs_sum")
    kappa_v = _component_array("kappa_v")
    kappa_phi = _component_array("kappa_phi")
    bound_prob = _component_array("bound_prob")
    propagated = _component_array("propagated")

    def __repr__(self):
        return f"OpResult({self._batch or ''} inputs, w_scale={self.w_scale})"

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

    def stats(self) -> dict:
        """Maxima and counts over the components, in one pass per task
        (:func:`accsim.kernels.tallystats.component_stats`): ``max_ratio`` (of
        :attr:`ratio`, at least 0), ``max_rel`` (of :attr:`rel_error`, at least 0, NaN
        if one is), ``violations`` (``not holds``), ``nonfinite`` (computed values),
        ``components``, and where the extras exist ``vacuous`` (``not bound <
        abs_sum``) and ``violations_prob`` (``abs_error > bound_prob``)."""
        from accsim.kernels.tallystats import component_stats

        keys = ("computed", "exact", "bound", "abs_sum", "bound_prob")
        if self._tasks:
            cols = {k: self._tasks.get(k) for k in keys}
        else:
            cols = {k: None if getattr(self, k) is None else [getattr(self, k)]
                    for k in keys}
        none = np.zeros(0)
        out = {"max_ratio": 0.0, "max_rel": 0.0, "violations": 0, "nonfinite": 0,
               "components": 0, "vacuous": 0, "violations_prob": 0}
        f, i = np.zeros(2), np.zeros(4, np.int64)

        def flat(a):
            return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)

        for t in range(len(cols["computed"])):
            c = flat(cols["computed"][t])
            component_stats(c, flat(cols["exact"][t]), flat(cols["bound"][t]),
                            none if cols["abs_sum"] is None else flat(cols["abs_sum"][t]),
                            none if cols["bound_prob"] is None else
                            flat(cols["bound_prob"][t]), f, i)
            out["max_ratio"] = max(out["max_ratio"], float(f[0]))
            out["max_rel"] = float(np.maximum(out["max_rel"], f[1]))
            out["violations"] += int(i[0])
            out["nonfinite"] += int(i[1])
            out["vacuous"] += int(i[2])
            out["violations_prob"] += int(i[3])
            out["components"] += c.size
        return out


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
    digest = _digest(x)
    for ti, t in enumerate(op.lower(x)):
        sw, sx = 1.0, None
        if scale is not None:
            fmax = _fmax(scale)
            sw = float(pow2_scale(np.max(np.abs(op.weight)), fmax))
            sx = column_scales(x, t.X.shape[1], fmax)
            t = MatmulTask(t.W * sw, t.X * sx[None, :], t.C * (sw * sx)[None, :],
                           t.activation, t.key, t.criterion_activation, t.bias)
            w_scale, x_scale = sw, sx[:: max(t.X.shape[1] // B, 1)]
        r = run_task(t, strategy, index=(op_index, t.key, sw),
                     seed=task_seed(seed, op_index, offset), cache=cache, bias=bias,
                     last=last, reference=reference, extras=extras,
                     eps_in=None if eps_tasks is None else eps_tasks[ti].X, u_act=u_act,
                     digest=digest)
        unscale = 1.0 if sx is None else 1.0 / (sw * sx)[None, :]
        for k in keys:
            v = getattr(r, k)
            if k in ("computed", "exact", "bound") and sx is not None:
                v = v * unscale
            elif v is None:
                v = np.full(r.computed.shape, np.nan)
            parts[k].append(v)
        costs.append(r.cost)
        info = r.info
        del r, t
    v = op.assemble(parts["computed"], B)
    res = OpResult.from_tasks(op, B, parts, v.reshape(B, -1), costs, info, w_scale, x_scale)
    return v, res


def _digest(x) -> str:
    """blake2b digest of an op's input (its arrays' bytes, shapes and dtypes): with the
    task index it names the task input in the cache (smaller than the lowered ``X``)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (x if isinstance(x, list) else [x]):
        a = np.ascontiguousarray(a)
        h.update(a.view(np.uint8).data if a.size else b"")
        h.update(f"{a.shape}{a.dtype.str}".encode())
    return h.hexdigest()


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
    if isinstance(cache, ComputeCache):
        for i, op in enumerate(graph.ops):  # every strategy sees the graph input
            if op.linear and set(op.inputs) == {"input"}:
                cache.pin(i)
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
    (top-1 agreement, logit error, the ops' ``net_rel`` error) of every network run,
    shipped networks and layer graphs; shares ``cache`` with the strategies' passes.
    Every value is a function of ``x`` alone (never of BLAS's summation order or thread
    count)."""
    vals, _ = run_graph(graph, Assignment({"default": ExactPass()}, "exact"), x, seed=seed,
                        act_format=act_format, input_format=input_format, cache=cache,
                        offset=offset, reference=False)
    return vals
