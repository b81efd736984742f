"""Layer executor: run a network layer by layer with simulated accumulators.

Every layer computes ``v = W x + b`` as ``model.matmul(W, X, C)`` with ``X`` the layer's
``(n, P)`` input columns (``layer.to_columns``; im2col patches for convolutions) and
``C = b[:, None]`` broadcast, so component ``v[i, p]`` is one inner product of length
``n`` plus the bias. A :class:`~accsim.run.strategies.Strategy` decides which accumulator
model computes each component. The activation ``phi`` is evaluated in binary64 and its
output rounded once to the activation format (binary32 by default, as in El Arar et al.,
arXiv:2503.15568: "inputs and activations fp32") with :func:`accsim.round`.

For every component the executor records (in the layer's output layout
``(n_out, batch)``):

``computed``   the strategy's ``v_hat``;
``exact``      :func:`accsim.numbers.exact.matmul` of the SAME layer input (so the error is the
               error of this layer's accumulation alone);
``bound``      the deterministic componentwise bound of the model that produced the
               component (:func:`accsim.accumulators.bounds.error_bound`);
``kappa_v``    ``(|W||x| + |b|) / |v|`` with ``v`` exact (numerator: binary64 BLAS
               product of non-negative terms, relative error below ``(n + 1) 2^-53``);
``kappa_phi``  the activation's condition number at the exact ``v``;
``level``      index of the model in the strategy's level list;
``propagated`` first-order multi-layer estimate of the relative error of the layer's
               OUTPUT ``y`` (method.md, "Several layers"):
               ``kappa_phi (|W| diag(|x|) eps_in / |v| + kappa_v g) + u_act`` with
               ``g = bound / (|W||x| + |b|)`` the model's relative constant and
               ``eps_in`` the previous layer's estimate (0 for the network input).
               Same formula as :func:`accsim.analysis.kappa.propagate_layer_error`, evaluated
               with one binary64 BLAS product instead of its three exact products
               (the estimate is first order anyway; the exact passes would double the
               run time).

With ``bias="after"`` (``[run] bias``) the accumulator computes ``W x`` with a zero
initial value and the bias is added afterwards, as in El Arar et al.'s released script
(mptorch ``QLinearMP``: the product is computed in the layer's format, then the bias is
added): ``v = fl(fl(W x) + fl(b))``, one addition of two values of the model's output
format (the bias first rounded to it, a no-op for the e4m3 biases of the networks),
rounded once to that format in the model's rounding mode with its overflow rule
(:func:`add_bias_after`). The recorded bound is then the model's bound for ``W x`` plus
that addition's rounding (:meth:`LayerContext.bound`).

Results of expensive passes are cached per (layer, input digest, model), so strategies
that see the same layer input (all of them on the first layer) share one computation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from accsim.accumulators.base import run_model as _run_model
from accsim.run.cost import CostTally
from accsim.run.strategies import Strategy, model_key

__all__ = ["LayerContext", "LayerResult", "ComputeCache", "run_batch", "RunAccumulator",
           "kappa_phi", "exact_logits", "PROB_FAILURE", "BIAS_MODES", "add_bias_after"]

#: Where the bias enters an inner product: the accumulator's initial value, or one
#: rounded addition after the sum (see the module docstring).
BIAS_MODES = ("initial", "after")


def kappa_phi(activation: str, z: np.ndarray) -> np.ndarray:
    """Condition number of the activation, :func:`accsim.analysis.kappa.kappa_phi` (0/0 is 0)."""
    from accsim.analysis.kappa import kappa_phi as _kappa_phi

    return np.asarray(_kappa_phi(z, activation), np.float64)


def run_model(model, A, B, C, seed: int) -> np.ndarray:
    """``model`` on float64 operands (:func:`accsim.accumulators.base.run_model`: hardware
    models round the operands into their input types first; the recorded error then
    includes that operand rounding, see docs/executor.md)."""
    return _run_model(model, A, B, C, seed=seed)


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


#: Failure probability (per component) of the probabilistic bound the run checks.
PROB_FAILURE = 1e-6


class ComputeCache(dict):
    """Results keyed by (layer index, input digest, pass, model key, seed)."""


@dataclass
class LayerContext:
    """What a strategy sees of one layer on one batch (with cached passes)."""

    index: int
    layer: object
    X: np.ndarray
    C: np.ndarray
    seed: int
    cache: ComputeCache = field(default_factory=ComputeCache)
    _digest: str | None = None
    last: bool = False
    bias: str = "initial"

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
                self.seed, "" if what in ("exact", "S") else self.bias)

    def _cached(self, key, fn):
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    def _run(self, model, W, X, C, seed) -> np.ndarray:
        """``model`` on ``W X + C``, the bias as initial value or added after the sum."""
        if self.bias == "after":
            return add_bias_after(model, run_model(model, W, X, np.zeros_like(C), seed), C)
        return run_model(model, W, X, C, seed)

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
        """``|W||X| + |b|`` in binary64 (BLAS; non-negative terms)."""
        return self._cached(self._key("S"), self._abs_sum)

    def _abs_sum(self) -> np.ndarray:
        # non-finite activations (an overflowed layer) give inf/NaN here; they are
        # counted and reported as non-finite results, so numpy's warning is noise
        with np.errstate(invalid="ignore", over="ignore"):
            return np.abs(self.layer.W) @ np.abs(self.X) + np.abs(self.C)

    def bound(self, model) -> np.ndarray:
        """Deterministic componentwise bound of ``model`` on this layer. With
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
            B = np.asarray(model.error_bound(self.layer.W, self.X, C, kind="deterministic"),
                           np.float64)
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
        component, lambda from it for this layer's ``n``; NaN for hardware models)."""
        return self._cached(self._key("bound_prob", model), lambda: self._bound_prob(model))

    def _bound_prob(self, model) -> np.ndarray:
        if model.quantizes_operands:
            return np.full((self.layer.W.shape[0], self.X.shape[1]), np.nan)
        after = self.bias == "after"
        C = np.zeros_like(self.C) if after else self.C
        B = np.asarray(model.error_bound(self.layer.W, self.X, C, kind="probabilistic",
                                         failure_prob=PROB_FAILURE), np.float64)
        return self._bound_after(model, B) if after else B

    def kappa_phi(self, z: np.ndarray) -> np.ndarray:
        return kappa_phi(self.activation, z)


@dataclass
class LayerResult:
    """Per-component results of one layer (arrays shaped ``(n_out, batch)``)."""

    computed: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    kappa_v: np.ndarray
    kappa_phi: np.ndarray
    level: np.ndarray
    propagated: np.ndarray
    cost: object
    info: dict
    abs_sum: np.ndarray | None = None
    bound_prob: np.ndarray | None = None

    @property
    def abs_error(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.abs(self.computed - self.exact)

    @property
    def rel_error(self) -> np.ndarray:
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / np.abs(self.exact)
        return np.where(err == 0, 0.0, r)

    @property
    def holds(self) -> np.ndarray:
        return self.abs_error <= self.bound

    @property
    def ratio(self) -> np.ndarray:
        """``abs_error / bound`` (0 where both are 0, inf where only the bound is)."""
        err = self.abs_error
        with np.errstate(divide="ignore", invalid="ignore"):
            r = err / self.bound
        return np.where(err == 0, 0.0, r)


def _layer_seed(seed: int, layer: int, offset: int) -> int:
    return (int(seed) * 0x9E3779B97F4A7C15 + layer * 0xBF58476D1CE4E5B9 + offset) % 2**64


def run_batch(net, strategy: Strategy, x: np.ndarray, *, seed: int = 0,
              act_format: str = "binary32", input_format: str = "binary32",
              cache: ComputeCache | None = None, offset: int = 0,
              propagate: bool = True, bias: str = "initial") -> tuple[np.ndarray, list]:
    """Run one batch through ``net`` with ``strategy``.

    Parameters
    ----------
    net : networks.Network
    strategy : Strategy
    x : numpy.ndarray, shape (batch, n_in)
        Inputs; rounded to ``input_format`` first.
    seed : int
        Seed of stochastic-rounding models (folded with the layer index and ``offset``).
    act_format, input_format : str
        Formats of the activations (phi's output) and of the inputs.
    cache : ComputeCache, optional
        Shared between strategies run on the same batch.
    offset : int
        Index of the batch's first sample (keys the random streams per batch).
    propagate : bool
        Compute the first-order multi-layer estimate.
    bias : {"initial", "after"}
        The bias as the accumulator's initial value, or added after the sum (module
        docstring).

    Returns
    -------
    logits : numpy.ndarray, shape (batch, n_classes)
    layers : list of LayerResult
    """
    from accsim import round as _round
    from accsim.numbers.formats import format as get_format

    if bias not in BIAS_MODES:
        raise ValueError(f"unknown bias mode {bias!r}; valid: {', '.join(BIAS_MODES)}")
    cache = ComputeCache() if cache is None else cache
    u_act = get_format(act_format).u
    x = np.asarray(x, np.float64)
    h = _round(np.ascontiguousarray(x.T), input_format)
    eps = np.zeros_like(h)
    results = []
    for li, layer in enumerate(net.layers):
        X = np.ascontiguousarray(layer.to_columns(h), dtype=np.float64)
        C = np.ascontiguousarray(np.broadcast_to(layer.b[:, None], (layer.W.shape[0],
                                                                    X.shape[1])))
        ctx = LayerContext(li, layer, X, C, _layer_seed(seed, li, offset), cache,
                           last=li == len(net.layers) - 1, bias=bias)
        dec = strategy.layer(ctx)
        v = ctx.exact()
        S = ctx.abs_sum()
        bound = np.empty_like(v)
        bprob = np.empty_like(v)
        for k, m in enumerate(dec.models):
            sel = dec.level == k
            if sel.any():
                bound[sel] = ctx.bound(m)[sel]
                bprob[sel] = ctx.bound_prob(m)[sel]
        with np.errstate(divide="ignore", invalid="ignore"):
            kv = S / np.abs(v)
        kp = ctx.kappa_phi(v)
        prop = np.full_like(v, np.nan)
        if propagate:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                carried = np.abs(layer.W) @ (np.abs(X) * layer.to_columns(eps))
                g = np.where(S > 0, bound / S, 0.0)
                prop = kp * (carried / np.abs(v) + kv * g)
                prop = np.where(kp == 0, 0.0, prop) + u_act
            eps = layer.from_columns(prop)
        f = layer.from_columns
        results.append(LayerResult(
            computed=f(dec.v_hat), exact=f(v), bound=f(bound), kappa_v=f(kv),
            kappa_phi=f(kp), level=f(dec.level), propagated=f(prop), cost=dec.cost,
            info=dec.info, abs_sum=f(S), bound_prob=f(bprob)))
        with np.errstate(all="ignore"):
            y = layer.phi(dec.v_hat)
        h = f(_round(np.ascontiguousarray(y), act_format))
    return h.T, results


def exact_logits(net, x: np.ndarray, *, act_format: str = "binary32",
                 input_format: str = "binary32", cache: ComputeCache | None = None,
                 offset: int = 0, seed: int = 0) -> np.ndarray:
    """Logits of the exact network: every layer's ``W x + b`` exact
    (:func:`accsim.numbers.exact.matmul`, correctly rounded to binary64), ``phi`` and the
    activation rounding as in :func:`run_batch`. The reference of the label-free metrics
    (top-1 agreement, logit error). Shares ``cache`` with the strategies' passes."""
    from accsim import round as _round

    cache = ComputeCache() if cache is None else cache
    h = _round(np.ascontiguousarray(np.asarray(x, np.float64).T), input_format)
    for li, layer in enumerate(net.layers):
        X = np.ascontiguousarray(layer.to_columns(h), dtype=np.float64)
        C = np.ascontiguousarray(np.broadcast_to(layer.b[:, None], (layer.W.shape[0],
                                                                    X.shape[1])))
        ctx = LayerContext(li, layer, X, C, _layer_seed(seed, li, offset), cache)
        with np.errstate(all="ignore"):
            y = layer.phi(ctx.exact())
        h = layer.from_columns(_round(np.ascontiguousarray(y), act_format))
    return h.T


@dataclass
class RunAccumulator:
    """Summary statistics of one strategy accumulated over batches.

    ``record`` collects the per-component arrays of the first ``record_samples`` inputs.
    """

    n_layers: int
    record_samples: int = 0
    correct: int = 0
    n_samples: int = 0
    cost: CostTally = None
    max_ratio: np.ndarray = None
    violations: np.ndarray = None
    max_rel: np.ndarray = None
    nonfinite: np.ndarray = None
    info: list = None
    record: list = None
    vacuous: np.ndarray = None
    components: np.ndarray = None
    violations_prob: np.ndarray = None
    correct_img: list = None
    pred_img: list = None
    agree_img: list = None
    logit_err_img: list = None

    def __post_init__(self):
        L = self.n_layers
        self.cost = CostTally(L)
        self.max_ratio = np.zeros(L)
        self.violations = np.zeros(L, np.int64)
        self.max_rel = np.zeros(L)
        self.nonfinite = np.zeros(L, np.int64)
        self.info = [dict() for _ in range(L)]
        self.record = [[] for _ in range(L)]
        self.vacuous = np.zeros(L, np.int64)
        self.components = np.zeros(L, np.int64)
        self.violations_prob = np.zeros(L, np.int64)
        self.correct_img, self.pred_img, self.agree_img, self.logit_err_img = [], [], [], []

    def add(self, logits: np.ndarray, labels: np.ndarray, layers: list,
            ref_logits: np.ndarray | None = None) -> None:
        """Add one batch (``ref_logits``: the exact network's, for the label-free
        metrics)."""
        with np.errstate(invalid="ignore"):
            pred = np.argmax(logits, axis=1)
        ok = pred == np.asarray(labels)
        self.correct += int(np.sum(ok))
        self.correct_img.append(ok)
        self.pred_img.append(pred.astype(np.int16))
        if ref_logits is not None:
            self.agree_img.append(pred == np.argmax(ref_logits, axis=1))
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                num = np.linalg.norm(logits - ref_logits, axis=1)
                den = np.linalg.norm(ref_logits, axis=1)
                err = np.where(num == 0, 0.0, num / den)
            self.logit_err_img.append(np.where(np.isnan(err), np.inf, err))
        before = self.n_samples
        self.n_samples += logits.shape[0]
        take = max(0, min(self.record_samples - before, logits.shape[0]))
        for li, r in enumerate(layers):
            self.cost.add(li, r.cost)
            ratio = np.where(np.isnan(r.ratio), np.inf, r.ratio)  # NaN computed: unbounded
            self.max_ratio[li] = max(self.max_ratio[li], float(np.max(ratio, initial=0.0)))
            self.violations[li] += int(np.sum(~r.holds))
            rel = r.rel_error
            # NaN (an overflowed or invalid output) propagates: never reported as 0 error
            self.max_rel[li] = np.maximum(self.max_rel[li], np.max(rel, initial=0.0))
            self.nonfinite[li] += int(np.sum(~np.isfinite(r.computed)))
            self.components[li] += r.computed.size
            if r.abs_sum is not None:
                # the bound says nothing beyond |v_hat - v| <= |W||x| + |b| (or is inf)
                self.vacuous[li] += int(np.sum(~(r.bound < r.abs_sum)))
            if r.bound_prob is not None:
                with np.errstate(invalid="ignore"):
                    self.violations_prob[li] += int(np.sum(r.abs_error > r.bound_prob))
            self.info[li] = r.info
            if take:
                self.record[li].append({
                    "computed": r.computed[:, :take], "exact": r.exact[:, :take],
                    "bound": r.bound[:, :take], "kappa_v": r.kappa_v[:, :take],
                    "kappa_phi": r.kappa_phi[:, :take], "level": r.level[:, :take],
                    "propagated": r.propagated[:, :take]})

    def summary(self) -> dict:
        """Scalar summary (the keys :func:`accsim.run.experiment.evaluate` returns)."""
        n = max(self.n_samples, 1)
        mr = float(np.max(self.max_ratio))
        return {
            "accuracy": self.correct / n,
            "recomputed_fraction": self.cost.fraction(),
            "bit_cost": float(self.cost.bits.sum() / n),
            "max_error_bound_ratio": mr,
            "max_rel_error": float(np.max(self.max_rel)),
            "n_samples": int(self.n_samples),
            "violations": int(self.violations.sum()),
            "nonfinite": int(self.nonfinite.sum()),
            "base_bit_cost": float(self.cost.base_bits.sum() / n),
            "estimate_bit_cost": float(self.cost.estimate_bits.sum() / n),
            "recompute_bit_cost": float(self.cost.recompute_bits.sum() / n),
            "agreement": (float(np.mean(np.concatenate(self.agree_img)))
                          if self.agree_img else float("nan")),
            "logit_rel_error_median": (float(np.median(np.concatenate(self.logit_err_img)))
                                       if self.logit_err_img else float("nan")),
            "logit_rel_error_max": (float(np.max(np.concatenate(self.logit_err_img)))
                                    if self.logit_err_img else float("nan")),
            "violations_prob": int(self.violations_prob.sum()),
            **self.cost.hardware(self.n_samples),
        }

    def per_image(self) -> dict:
        """Per-image arrays: ``correct``, ``pred``, ``agree`` (with the exact network),
        ``logit_rel_error`` (``||logits - exact||_2 / ||exact||_2``)."""
        cat = np.concatenate
        out = {"correct": cat(self.correct_img) if self.correct_img else np.zeros(0, bool),
               "pred": cat(self.pred_img) if self.pred_img else np.zeros(0, np.int16)}
        if self.agree_img:
            out["agree"] = cat(self.agree_img)
            out["logit_rel_error"] = cat(self.logit_err_img)
        return out

    def records(self) -> list:
        """Per layer, dict of arrays ``(n_out, record_samples)`` (concatenated)."""
        out = []
        for parts in self.record:
            if not parts:
                out.append({})
                continue
            out.append({k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]})
        return out
