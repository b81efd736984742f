"""Run a layer graph with simulated accumulators, op class by op class.

An :class:`Assignment` maps each op class that runs on an accumulator
(:data:`~accsim.graph.ops.LINEAR_CLASSES`: ``conv``, ``dense``, ``avgpool``, ...) to a
:class:`~accsim.run.strategies.Strategy` (``Uniform``, ``Adaptive``, ``MultiLevel`` or a
control). This is the op interface shared with other graph front ends: *an op class
name -> the strategy (accumulator model(s)) its inner products run on*; every
:class:`~accsim.graph.ops.MatmulTask` of an op runs through
:class:`accsim.run.executor.LayerContext`, so it gets that model's bits, the exact reference
:func:`accsim.numbers.exact.matmul` of the same task input and the model's componentwise bound,
exactly as a dense layer of :func:`accsim.run.executor.run_batch`.

With ``scale`` set (a format name, e.g. ``"float8_e4m3fn"``), every linear op's weights
and input are scaled per tensor by powers of two into that format's range before the
accumulator runs and the results are scaled back (:mod:`accsim.graph.scaling`); the
scales are recorded.

Elementwise ops run in binary64 and round once to ``act_format``; the network input is
rounded to ``input_format`` first; a linear op's fused activation is applied to the
computed pre-activations and rounded once to ``act_format``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.graph.ops import LINEAR_CLASSES, apply_activation
from accsim.graph.scaling import column_scales, pow2_scale
from accsim.run.cost import CostTally
from accsim.run.executor import ComputeCache, LayerContext

__all__ = ["Assignment", "OpResult", "run_graph", "GraphAccumulator"]


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


@dataclass
class _View:
    """What :class:`LayerContext` reads of a layer."""

    W: np.ndarray
    activation: str


@dataclass
class OpResult:
    """Per-component results of one linear op on one batch, each ``(B, components)``."""

    computed: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    level: np.ndarray
    cost: list
    info: dict
    w_scale: float = 1.0
    x_scale: np.ndarray | None = None

    @property
    def abs_error(self):
        with np.errstate(invalid="ignore"):
            return np.abs(self.computed - self.exact)

    @property
    def rel_error(self):
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / np.abs(self.exact)
        return np.where(err == 0, 0.0, r)

    @property
    def ratio(self):
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / self.bound
        r = np.where(err == 0, 0.0, r)
        return np.where(np.isnan(r), np.inf, r)


def _seed(seed, op_index, offset):
    return (int(seed) * 0x9E3779B97F4A7C15 + op_index * 0xBF58476D1CE4E5B9 + offset) % 2**64


def _fmax(scale: str) -> float:
    from accsim.numbers.formats import format as get_format

    return float(get_format(scale).max)


def run_linear(op, op_index, x, strategy, *, seed, offset, cache, scale=None,
               reference=True):
    """Run one linear op; returns ``(pre_activation_computed, OpResult)`` (pre-activations
    in the op's output layout, batch first). ``x`` is the op's input, or the list of its
    inputs for an op with several (a matmul of two activations)."""
    B = (x[0] if isinstance(x, list) else x).shape[0]
    parts = {k: [] for k in ("computed", "exact", "bound", "level")}
    costs, info = [], {}
    w_scale, x_scale = 1.0, None
    for t in op.lower(x):
        W, X, C = t.W, t.X, t.C
        sw, sx = 1.0, None
        if scale is not None:
            fmax = _fmax(scale)
            sw = float(pow2_scale(np.max(np.abs(op.weight)), fmax))
            sx = column_scales(x, X.shape[1], fmax)
            W, X, C = W * sw, X * sx[None, :], C * (sw * sx)[None, :]
            w_scale, x_scale = sw, sx[:: max(X.shape[1] // B, 1)]
        ctx = LayerContext((op_index, t.key, sw), _View(W, t.activation),
                           np.ascontiguousarray(X), np.ascontiguousarray(C),
                           _seed(seed, op_index, offset), cache)
        dec = strategy.layer(ctx)
        if reference:
            v = ctx.exact()
            bound = np.empty_like(v)
            for k, m in enumerate(dec.models):
                sel = dec.level == k
                if sel.any():
                    bound[sel] = ctx.bound(m)[sel]
        else:
            v = bound = np.full(dec.v_hat.shape, np.nan)
        unscale = 1.0 if sx is None else 1.0 / (sw * sx)[None, :]
        parts["computed"].append(dec.v_hat * unscale)
        parts["exact"].append(v * unscale)
        parts["bound"].append(bound * unscale)
        parts["level"].append(dec.level.astype(np.float64))
        costs.append(dec.cost)
        info = dec.info
    out = {k: op.assemble(p, B).reshape(B, -1) for k, p in parts.items()}
    res = OpResult(out["computed"], out["exact"], out["bound"], out["level"].astype(np.int8),
                   costs, info, w_scale, x_scale)
    return op.assemble(parts["computed"], B), res


def run_graph(graph, assignment: Assignment, x, *, seed: int = 0,
              act_format: str = "binary32", input_format: str = "binary32",
              cache: ComputeCache | None = None, offset: int = 0, reference: bool = True):
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

    Returns
    -------
    outputs : dict
        Op name -> output (batch first); ``"input"`` the rounded input.
    results : list of OpResult
        One per linear op, in graph order.
    """
    from accsim import round as _round

    cache = ComputeCache() if cache is None else cache
    x = graph.check_input(x)
    vals = {"input": _round(x, input_format)}
    results = []
    for i, op in enumerate(graph.ops):
        xs = [vals[n] for n in op.inputs]
        if op.linear:
            v, res = run_linear(op, i, xs[0] if len(xs) == 1 else xs,
                                assignment.strategy(op.op_class), seed=seed,
                                offset=offset, cache=cache, scale=assignment.scale_for(op.op_class),
                                reference=reference)
            with np.errstate(all="ignore"):
                y = apply_activation(op.activation, v)
            results.append(res)
        else:
            with np.errstate(all="ignore"):
                y = op.forward(xs)
        # an op holding integers (token ids: round_output False) is not rounded
        vals[op.name] = _round(np.ascontiguousarray(y), act_format) \
            if getattr(op, "round_output", True) else y
    return vals, results


@dataclass
class GraphAccumulator:
    """Summary statistics of one assignment over batches.

    Per linear op: cost, max error/bound ratio, bound violations, max componentwise
    relative error (of that op's accumulation alone), non-finite outputs, and the
    normwise relative error of the op's output against the binary64 network
    (``net_rel``: what the errors of all earlier ops add up to). Network level:
    accuracy (where labels exist), top-1 agreement with the binary64 network, and the
    normwise relative error of the logits.
    """

    op_names: list
    record_samples: int = 0
    correct: int = 0
    agree: int = 0
    n_samples: int = 0
    labelled: int = 0
    cost: CostTally = None
    max_ratio: np.ndarray = None
    violations: np.ndarray = None
    max_rel: np.ndarray = None
    nonfinite: np.ndarray = None
    net_rel_max: np.ndarray = None
    net_rel_sum: np.ndarray = None
    logit_rel: list = field(default_factory=list)
    agree_img: list = field(default_factory=list)
    correct_img: list = field(default_factory=list)
    w_scale: np.ndarray = None
    info: list = None
    record: list = None

    def __post_init__(self):
        L = len(self.op_names)
        self.cost = CostTally(L)
        self.max_ratio = np.zeros(L)
        self.violations = np.zeros(L, np.int64)
        self.max_rel = np.zeros(L)
        self.nonfinite = np.zeros(L, np.int64)
        self.net_rel_max = np.zeros(L)
        self.net_rel_sum = np.zeros(L)
        self.w_scale = np.ones(L)
        self.info = [dict() for _ in range(L)]
        self.record = [[] for _ in range(L)]

    def add(self, outputs, results, reference, labels=None):
        """``outputs``/``results`` of :func:`run_graph`; ``reference`` the binary64
        network's outputs (``Graph.forward(..., return_all=True)``) on the same input."""
        last = list(outputs)[-1]
        B = outputs[last].shape[0]
        logits, ref = outputs[last].reshape(B, -1), reference[last].reshape(B, -1)
        with np.errstate(invalid="ignore"):
            pred = np.argmax(logits, axis=1)
        self.agree += int(np.sum(pred == np.argmax(ref, axis=1)))
        self.agree_img.append(pred == np.argmax(ref, axis=1))
        if labels is not None:
            lab = np.asarray(labels)
            ok = lab >= 0
            self.correct += int(np.sum((pred == lab) & ok))
            self.labelled += int(ok.sum())
            self.correct_img.append((pred == lab) & ok)
        self.logit_rel.append(_normwise(logits, ref))
        take = max(0, min(self.record_samples - self.n_samples, B))
        self.n_samples += B
        for li, (name, r) in enumerate(zip(self.op_names, results, strict=True)):
            for c in r.cost:
                self.cost.add(li, c)
            self.max_ratio[li] = max(self.max_ratio[li], float(np.max(r.ratio, initial=0)))
            self.violations[li] += int(np.sum(~(r.abs_error <= r.bound)))
            self.max_rel[li] = max(self.max_rel[li], float(np.nanmax(r.rel_error,
                                                                     initial=0.0)))
            self.nonfinite[li] += int(np.sum(~np.isfinite(r.computed)))
            nr = _normwise(outputs[name], reference[name])
            self.net_rel_max[li] = max(self.net_rel_max[li], float(np.max(nr, initial=0)))
            self.net_rel_sum[li] += float(np.sum(nr))
            self.w_scale[li] = r.w_scale
            self.info[li] = r.info
            if take:
                rec = {k: getattr(r, k)[:take] for k in ("computed", "exact", "bound",
                                                         "level")}
                rec["x_scale"] = (np.ones(take) if r.x_scale is None
                                  else np.asarray(r.x_scale[:take], np.float64))
                self.record[li].append(rec)

    def summary(self) -> dict:
        n = max(self.n_samples, 1)
        lr = np.concatenate(self.logit_rel) if self.logit_rel else np.zeros(0)
        return {
            "accuracy": self.correct / self.labelled if self.labelled else float("nan"),
            "agreement": self.agree / n,
            "logit_rel_error_median": float(np.median(lr)) if lr.size else float("nan"),
            "logit_rel_error_max": float(np.max(lr)) if lr.size else float("nan"),
            "recomputed_fraction": self.cost.fraction(),
            "bit_cost": float(self.cost.bits.sum() / n),
            "max_error_bound_ratio": float(np.max(self.max_ratio)),
            "max_rel_error": float(np.max(self.max_rel)),
            "violations": int(self.violations.sum()),
            "nonfinite": int(self.nonfinite.sum()),
            "n_samples": int(self.n_samples),
            **self.cost.hardware(self.n_samples),
        }

    def per_image(self) -> dict:
        """Per-input ``logit_rel_error``, ``agree`` (top-1 with the binary64 network) and
        ``correct`` (None without labels)."""
        cat = np.concatenate
        return {"logit_rel_error": cat(self.logit_rel) if self.logit_rel else np.zeros(0),
                "agree": cat(self.agree_img) if self.agree_img else np.zeros(0, bool),
                "correct": cat(self.correct_img) if self.correct_img else None}


def _normwise(a, ref):
    """Per-image ``||a - ref||_2 / ||ref||_2`` (inf where ``a`` is not finite)."""
    B = a.shape[0]
    a, ref = a.reshape(B, -1), ref.reshape(B, -1)
    with np.errstate(all="ignore"):
        num = np.sqrt(np.sum((a - ref) ** 2, axis=1))
        den = np.sqrt(np.sum(ref ** 2, axis=1))
        r = np.where(num == 0, 0.0, num / den)
    return np.where(np.isfinite(r), r, np.inf)
