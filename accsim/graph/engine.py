"""The one engine: run one task ``v = W X + C`` under a strategy.

Every network front end (the shipped MLPs and CNNs, imported ``.pth`` / ``.h5`` / torch
graphs) lowers its inner products and reductions to :class:`~accsim.graph.ops.MatmulTask`
``v = W X + C`` (``X`` of shape ``(n, P)``, so component ``v[i, p]`` is one inner product
of length ``n`` plus ``C[i, p]``); :func:`run_task` runs one of them under a
:class:`~accsim.run.strategies.Strategy` and returns a :class:`TaskResult`:

``computed``   the strategy's ``v_hat`` (each component carries the bits of the model of
               its level);
``exact``      :func:`accsim.numbers.exact.matmul` of the SAME task input (so the error
               is the error of this task's accumulation alone);
``bound``      the deterministic componentwise bound of the model that produced the
               component (:func:`accsim.accumulators.bounds.error_bound`);
``level``      index of the model in the strategy's level list;
``cost``       the strategy's :class:`~accsim.run.cost.LayerCost`;

and, with ``extras=True`` (the MLP runs):

``abs_sum``    ``|W||X| + |C|`` (binary64 product of non-negative terms in a fixed
               order, relative error below ``(n + 1) 2^-53``);
``kappa_v``    ``abs_sum / |v|`` with ``v`` exact;
``kappa_phi``  the activation's condition number at the exact ``v``;
``bound_prob`` the probabilistic bound (Higham-Mary, failure probability
               :data:`PROB_FAILURE` per component; NaN for hardware models);
``propagated`` first-order multi-layer estimate of the relative error of the task's
               OUTPUT ``y = phi(v)`` (method.md, "Several layers"):
               ``kappa_phi (|W| diag(|x|) eps_in / |v| + kappa_v g) + u_act`` with
               ``g = bound / abs_sum`` the model's relative constant and ``eps_in`` the
               estimate of the task's input (0 for the network input). Same formula as
               :func:`accsim.analysis.kappa.propagate_layer_error`, evaluated with one
               binary64 BLAS product instead of its three exact products (the estimate is
               first order anyway; the exact passes would double the run time).

With ``bias="after"`` (``[run] bias``) the accumulator computes ``W x`` with a zero
initial value and the bias is added afterwards, as in El Arar et al.'s released script
(mptorch ``QLinearMP``: the product is computed in the layer's format, then the bias is
added): ``v = fl(fl(W x) + fl(b))``, one addition of two values of the model's output
format (the bias first rounded to it, a no-op for the e4m3 biases of the networks),
rounded once to that format in the model's rounding mode with its overflow rule
(:func:`add_bias_after`). The recorded bound is then the model's bound for ``W x`` plus
that addition's rounding (:meth:`TaskContext.bound`).

A strategy sees the task through a :class:`TaskContext`; results of expensive passes are
cached per (task, input digest, pass, model, seed), so strategies that see the same task
input (all of them on the first op) share one computation.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from accsim.accumulators.base import run_model
from accsim.kernels.absmatmul import abs_matmul
from accsim.run.strategies import Decision, Strategy, model_key

__all__ = ["TaskContext", "TaskResult", "ComputeCache", "run_task",
           "task_seed", "ExactPass", "PROB_FAILURE", "BIAS_MODES", "add_bias_after",
           "check_bias"]

#: Where the bias enters an inner product: the accumulator's initial value, or one
#: rounded addition after the sum (see the module docstring).
BIAS_MODES = ("initial", "after")

#: Failure probability (per component) of the probabilistic bound the run checks.
PROB_FAILURE = 1e-6


def check_bias(bias: str) -> None:
    """Raise ``ValueError`` naming the valid modes unless ``bias`` is one of
    :data:`BIAS_MODES`."""
    if bias not in BIAS_MODES:
        raise ValueError(f"unknown bias mode {bias!r}; valid: {', '.join(BIAS_MODES)}")


def task_seed(seed: int, index: int, offset: int) -> int:
    """Seed of the stochastic-rounding models of op ``index`` on the batch whose first
    input is ``offset``: ``seed`` folded with both (splitmix constants, mod 2^64)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + offset) % 2**64


def add_bias_after(model, s: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``fl(s + fl(b))``: the bias added after the sum ``s`` (values of the model's output
    format), both rounded to ``model.out_format`` in the model's rounding mode.

    The binary64 sum of two values of a format of precision ``p <= 25`` is rounded once
    more to that format: for round to nearest that double rounding is innocuous because
    ``53 >= 2 p + 2`` (Figueroa, "When is double rounding innocuous?", SIGNUM 1995), and
    for the directed modes always; binary64 output needs no second rounding.

    Raises
    ------
    ValueError
        Stochastic rounding, or an output precision in 26..52 (not supported).
    """
    from accsim import round as _round

    fmt = model.out_format
    mode = str(model.describe().get("mode", "rne"))
    if mode in ("none", ""):
        mode = "rne"
    if mode == "sr" or mode not in ("rne", "rna", "rz", "ru", "rd"):
        raise ValueError(f"bias = 'after' needs a deterministic rounding mode (rne, rna, "
                         f"rz, ru, rd); model {model.name!r} rounds with {mode!r}")
    if 25 < fmt.p < 53:
        raise ValueError(f"bias = 'after' supports output formats of precision <= 25 or "
                         f"binary64; model {model.name!r} outputs {fmt.name} (p = {fmt.p})")
    bq = _round(np.ascontiguousarray(C, dtype=np.float64), fmt, mode)
    with np.errstate(invalid="ignore", over="ignore"):
        tot = np.asarray(s, np.float64) + bq
    if fmt.p == 53:
        return tot
    return _round(np.ascontiguousarray(tot), fmt, mode)


def _stochastic(model) -> bool:
    return any(str(v).lower() == "sr" for v in model.describe().values())


#: Bytes of cached passes of a batch kept beyond the pinned ops (see :class:`ComputeCache`).
CACHE_BYTES = 256 << 20


class ComputeCache(dict):
    """Results keyed by (task index, input digest, pass, model key, seed, bias).

    The passes of one batch (:meth:`TaskContext._cached`, a pure function of the key)
    are kept for the strategies run after on the same batch. Those of the pinned ops
    (:meth:`pin`: the ops reading the graph input, which every strategy shares) stay;
    the others are dropped oldest first once they hold more than ``max_bytes``, so a
    batch's memory does not grow with the number of strategies. Dropping an entry only
    costs its recomputation: every cached pass is a function of its key, so the results
    are the same bits for any ``max_bytes``. Entries stored directly (``cache[key] =``:
    the strategies' per-batch counts) are state, never dropped.
    """

    def __init__(self, *args, max_bytes: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.max_bytes = CACHE_BYTES if max_bytes is None else int(max_bytes)
        self.pinned: set = set()
        self._order: deque = deque()
        self._bytes = 0

    def pin(self, op_index: int) -> None:
        """Keep the passes of op ``op_index`` for the whole batch."""
        self.pinned.add(op_index)

    def remember(self, key, value):
        """Store the pass ``value`` of ``key`` (droppable unless its op is pinned)."""
        self[key] = value
        index = key[0]
        if isinstance(index, tuple) and index and index[0] in self.pinned:
            return value
        self._order.append((key, int(getattr(value, "nbytes", 0))))
        self._bytes += self._order[-1][1]
        while self._bytes > self.max_bytes and self._order:
            old, nb = self._order.popleft()
            self._bytes -= nb
            self.pop(old, None)
        return value

    @property
    def droppable_bytes(self) -> int:
        """Bytes held by the passes :meth:`remember` may still drop."""
        return self._bytes

    def of_op(self, op_index: int) -> dict:
        """The entries of the tasks of op ``op_index`` (a task index is
        ``(op_index, task key, weight scale)``)."""
        return {k: v for k, v in self.items()
                if isinstance(k[0], tuple) and k[0][0] == op_index}


@dataclass
class _Weights:
    """What a strategy reads of the op a task belongs to (``ctx.layer``)."""

    W: np.ndarray
    activation: str


@dataclass
class TaskContext:
    """What a strategy sees of one task on one batch (with cached passes).

    ``layer`` has the task's ``W`` and ``activation``; ``last`` marks the network's last
    accumulating op (the adaptive strategies' ``output_kappa``); ``has_bias`` whether
    ``C`` is a bias, a term the cost bills (:attr:`MatmulTask.bias
    <accsim.graph.ops.MatmulTask>`)."""

    index: object
    layer: object
    X: np.ndarray
    C: np.ndarray
    seed: int
    cache: ComputeCache = field(default_factory=ComputeCache)
    _digest: str | None = None
    last: bool = False
    bias: str = "initial"
    has_bias: bool = True

    @property
    def n(self) -> int:
        return int(self.layer.W.shape[1])

    @property
    def activation(self) -> str:
        return self.layer.activation

    @property
    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(np.ascontiguousarray(self.X).view(np.uint8).data)
            h.update(str(self.X.shape).encode())
            self._digest = h.hexdigest()
        return self._digest

    def _key(self, what: str, model=None):
        return (self.index, self.digest, what, "" if model is None else model_key(model),
                self.seed, "" if what in ("exact", "S", "WX") else self.bias)

    def _cached(self, key, fn):
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if isinstance(self.cache, ComputeCache):
            return self.cache.remember(key, fn())
        self.cache[key] = value = fn()
        return value

    def _run(self, model, W, X, C, seed) -> np.ndarray:
        """``model`` on ``W X + C``, the bias as initial value or added after the sum."""
        if self.bias == "after":
            return add_bias_after(model, run_model(model, W, X, np.zeros_like(C),
                                                   seed=seed), C)
        return run_model(model, W, X, C, seed=seed)

    def compute(self, model) -> np.ndarray:
        """``model.matmul(W, X, C)`` for every component."""
        return self._cached(self._key("v", model),
                            lambda: self._run(model, self.layer.W, self.X, self.C, self.seed))

    def compute_abs(self, model) -> np.ndarray:
        """``fl_model(|W||X| + |b|)`` (the estimation pass of the adaptive strategies)."""
        seed = self.seed ^ 0x5BD1E995
        return self._cached(
            self._key("abs", model),
            lambda: self._run(model, np.abs(self.layer.W), np.abs(self.X), np.abs(self.C),
                              seed))

    def compute_selected(self, model, mask: np.ndarray) -> np.ndarray:
        """``model`` on the components where ``mask`` (other entries unspecified).

        Each component's value depends only on its row of ``W`` and column of ``X`` (the
        accumulator contract), so computing only the columns holding a selected
        component gives the same bits as a full pass. Stochastic-rounding models draw
        their random words from the output index, so they always run the full pass.
        """
        key = self._key("v", model)
        if key in self.cache:
            return self.cache[key]
        cols = np.flatnonzero(mask.any(axis=0))
        if _stochastic(model) or cols.size > 0.75 * self.X.shape[1]:
            return self.compute(model)
        out = np.full(mask.shape, np.nan)
        if cols.size:
            out[:, cols] = self._run(model, self.layer.W, self.X[:, cols],
                                     self.C[:, cols], self.seed)
        return out

    def exact(self) -> np.ndarray:
        from accsim.numbers import exact

        return self._cached(self._key("exact"),
                            lambda: exact.matmul(self.layer.W, self.X, self.C))

    def abs_sum(self) -> np.ndarray:
        """``|W||X| + |b|`` in binary64 (non-negative terms; the product in a fixed
        order, :func:`accsim.kernels.absmatmul.abs_matmul`)."""
        return self._cached(self._key("S"), self._abs_sum)

    def _abs_sum(self) -> np.ndarray:
        # non-finite activations (an overflowed layer) give inf/NaN here; they are
        # counted and reported as non-finite results, so numpy's warning is noise
        with np.errstate(invalid="ignore", over="ignore"):
            return abs_matmul(self.layer.W, self.X) + np.abs(self.C)

    def abs_product(self) -> np.ndarray:
        """``|W| @ |X|`` of the bounds (:func:`accsim.accumulators.bounds.abs_product`),
        computed once per task for every model bounded on it."""
        from accsim.accumulators.bounds import abs_product

        return self._cached(self._key("WX"), lambda: abs_product(self.layer.W, self.X))

    def _bound_kw(self, model) -> dict:
        """``abs_product`` for a model bounded by :func:`accsim.accumulators.bounds.
        error_bound` on the task's own ``W`` and ``X`` (not a wrapper with its own)."""
        from accsim.accumulators.base import Accumulator

        if getattr(type(model), "error_bound", None) is Accumulator.error_bound:
            return {"abs_product": self.abs_product()}
        return {}

    def bound(self, model) -> np.ndarray:
        """Deterministic componentwise bound of ``model`` on this task. With
        ``bias="after"``: the bound ``B0`` of ``W x`` (zero initial value) plus the
        addition ``fl(s + fl(b))``: ``|fl(s + fl(b)) - (S + b)| <= B0 + |fl(b) - b|
        + u (|W x + b| + B0 + |fl(b) - b|)`` (``u`` of the output format; infinite where
        that addition overflows or saturates)."""
        return self._cached(self._key("bound", model), lambda: self._bound(model))

    def _bound_after(self, model, B0: np.ndarray) -> np.ndarray:
        from accsim import round as _round

        fmt = model.out_format
        bq = _round(np.ascontiguousarray(self.C), fmt, "rne")
        db = np.abs(bq - self.C)
        ex = self.exact()
        u = 0.0 if fmt.p == 53 else fmt.u
        with np.errstate(invalid="ignore", over="ignore"):
            b = B0 + db + u * (np.abs(ex) + B0 + db)
            b = np.where(np.abs(ex) + b >= fmt.max, np.inf, b)
        return b

    def _bound(self, model) -> np.ndarray:
        after = self.bias == "after"
        C = np.zeros_like(self.C) if after else self.C
        if not model.quantizes_operands:
            B = np.asarray(model.error_bound(self.layer.W, self.X, C, kind="deterministic",
                                             **self._bound_kw(model)), np.float64)
            return self._bound_after(model, B) if after else B
        if after:
            raise ValueError(f"bias = 'after' is not modelled for hardware model "
                             f"{model.name!r} (it rounds its operands itself)")
        # hardware model: the accumulator's bound on the rounded operands, plus the
        # measured effect of rounding the operands (|exact(q) - exact|, widened by
        # 4 ulps of binary64 to cover the two roundings to nearest of the references)
        from accsim.numbers import exact

        Wq, Xq, Cq = model.quantize_operands(self.layer.W, self.X, self.C)
        acc = np.asarray(model.error_bound(Wq, Xq, Cq, kind="deterministic"), np.float64)
        ex, exq = self.exact(), exact.matmul(Wq, Xq, Cq)
        quant = np.abs(exq - ex) + 4 * np.finfo(np.float64).eps * (np.abs(ex) + np.abs(exq))
        return acc + quant

    def bound_prob(self, model) -> np.ndarray:
        """Probabilistic bound (Higham-Mary, failure probability :data:`PROB_FAILURE` per
        component, lambda from it for this task's ``n``; NaN for hardware models)."""
        return self._cached(self._key("bound_prob", model), lambda: self._bound_prob(model))

    def _bound_prob(self, model) -> np.ndarray:
        if model.quantizes_operands:
            return np.full((self.layer.W.shape[0], self.X.shape[1]), np.nan)
        after = self.bias == "after"
        C = np.zeros_like(self.C) if after else self.C
        B = np.asarray(model.error_bound(self.layer.W, self.X, C, kind="probabilistic",
                                         failure_prob=PROB_FAILURE,
                                         **self._bound_kw(model)), np.float64)
        return self._bound_after(model, B) if after else B

    def phi(self, z: np.ndarray) -> np.ndarray:
        """The task's activation of ``z`` in binary64
        (:func:`accsim.graph.ops.apply_activation`)."""
        from accsim.graph.ops import apply_activation

        return apply_activation(self.activation, z)

    def kappa_phi(self, z: np.ndarray) -> np.ndarray:
        """Condition number of the activation, :func:`accsim.analysis.kappa.kappa_phi`
        (0/0 is 0)."""
        from accsim.analysis.kappa import kappa_phi

        return np.asarray(kappa_phi(z, self.activation), np.float64)


@dataclass
class TaskResult:
    """Per-component results of one task (arrays shaped like ``v``, ``(m, P)``); the
    extras are None unless :func:`run_task` was asked for them."""

    computed: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    level: np.ndarray
    cost: object
    info: dict
    abs_sum: np.ndarray | None = None
    kappa_v: np.ndarray | None = None
    kappa_phi: np.ndarray | None = None
    bound_prob: np.ndarray | None = None
    propagated: np.ndarray | None = None


class ExactPass(Strategy):
    """The exact task (:meth:`TaskContext.exact`, correctly rounded to binary64) as a
    strategy: the exact network, the reference of the label-free metrics (top-1
    agreement, logit error). Shares the cache with the strategies' passes."""

    label = "exact"
    kind = "exact"
    criterion = "none"

    @property
    def models(self):
        return []

    def layer(self, ctx) -> Decision:
        v = ctx.exact()
        return Decision(v, np.zeros(v.shape, np.int8), [], None)


def _per_level(dec, fn) -> np.ndarray:
    """``fn(model)[k]`` on the components the strategy took from level ``k`` (one
    model: every component is level 0, so ``fn`` of it, uncopied)."""
    if len(dec.models) == 1:
        return fn(dec.models[0])
    out = np.empty_like(dec.v_hat)
    for k, m in enumerate(dec.models):
        sel = dec.level == k
        if sel.any():
            np.copyto(out, fn(m), where=sel)
    return out


def run_task(task, strategy, *, index, seed: int, cache: ComputeCache | None = None,
             bias: str = "initial", last: bool = False, reference: bool = True,
             extras: bool = False, eps_in: np.ndarray | None = None,
             u_act: float = 0.0, digest: str | None = None) -> TaskResult:
    """Run one task ``v = W X + C`` under ``strategy``.

    Parameters
    ----------
    task : accsim.graph.ops.MatmulTask
        ``W`` (m, n), ``X`` (n, P), ``C`` (m, P) and the activation applied to ``v``.
    strategy : accsim.run.strategies.Strategy
    index : hashable
        The task within the network (cache key and the controls' per-op fractions).
    seed : int
        Seed of stochastic-rounding models (:func:`task_seed`).
    cache : ComputeCache, optional
        Shared between strategies run on the same batch.
    bias : {"initial", "after"}
        ``C`` as the accumulator's initial value, or added after the sum.
    last : bool
        The network's last accumulating op.
    reference : bool
        Compute the exact reference and the bound (False: NaN; for timing alone).
    extras : bool
        Also ``abs_sum``, ``kappa_v``, ``kappa_phi``, ``bound_prob`` and, with
        ``eps_in`` (the input's estimate lowered like ``X``), ``propagated``.
    u_act : float
        Unit roundoff of the activation format (the last term of ``propagated``).
    digest : str, optional
        The cache's name of the task input: any string that, with ``index``, determines
        ``X`` and ``C`` (the runner gives the digest of the op's input, smaller than
        ``X``); default the blake2b digest of ``X``.
    """
    cache = ComputeCache() if cache is None else cache
    act = task.criterion_activation or task.activation
    ctx = TaskContext(index, _Weights(task.W, act), np.ascontiguousarray(task.X),
                      np.ascontiguousarray(task.C), seed, cache, _digest=digest, last=last,
                      bias=bias, has_bias=task.bias)
    dec = strategy.layer(ctx)
    if not reference:
        nan = np.full(dec.v_hat.shape, np.nan)
        return TaskResult(dec.v_hat, nan, nan, dec.level, dec.cost, dec.info)
    v = ctx.exact()
    res = TaskResult(dec.v_hat, v, _per_level(dec, ctx.bound), dec.level, dec.cost,
                     dec.info)
    if not extras:
        return res
    S = ctx.abs_sum()
    res.abs_sum = S
    res.bound_prob = _per_level(dec, ctx.bound_prob)
    with np.errstate(divide="ignore", invalid="ignore"):
        res.kappa_v = S / np.abs(v)
    res.kappa_phi = ctx.kappa_phi(v)
    if eps_in is not None:
        kp, kv = res.kappa_phi, res.kappa_v
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            carried = abs_matmul(ctx.layer.W, np.abs(ctx.X) * eps_in)
            g = np.where(S > 0, res.bound / S, 0.0)
            prop = kp * (carried / np.abs(v) + kv * g)
            res.propagated = np.where(kp == 0, 0.0, prop) + u_act
    return res
