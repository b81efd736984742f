"""The strategies of the MiniLM graph's op classes: models, linear-layer policies, LAMP.

:func:`assignment` turns an :class:`~accsim.transformer.opclass.OpModels` mapping, a
:class:`LinearPolicy` and an :class:`AttentionPolicy` into an
:class:`accsim.graph.Assignment` over the MiniLM op classes; :func:`accsim.graph.run_graph`
runs the graph of :mod:`accsim.transformer.minilm_graph` on it. Every strategy
implements the graph engine's :class:`~accsim.run.strategies.Strategy` interface
(``layer(ctx) -> Decision``), reading the task from the engine's context and what it
needs of the op (layer, sentence, call) from the graph's :class:`OpMeta`.

Linear-layer policies (``LinearPolicy.kind``) on the classes ``qkv``, ``attn_out``,
``ffn_in``, ``ffn_out`` (or a subset):

``uniform``   every component on the class's model;
``adaptive``  El Arar, Filip, Mary, Riccietti (arXiv:2503.15568): low pass on the
              class's model, recompute the components flagged by
              :class:`accsim.run.strategies.Adaptive` (``kappa_phi`` of the layer's
              activation: GELU for ``ffn_in``, identity elsewhere) on ``high``;
``random``    as many components per sentence and layer as ``adaptive`` flags, chosen
              uniformly at random (matched control; every control kind picks through
              its one registration, :data:`accsim.run.strategies.CONTROLS`);
``random-active`` as many, uniformly among the active components
              (:func:`accsim.run.strategies.active_mask`); the projections' activations
              (identity, GELU) are flat nowhere, so every component is active and the
              choice has the distribution of ``random`` (another random stream);
``oracle``    as many, those with the largest actual error against the binary64 product
              of the same inputs (matched control; needs the reference, not realisable).

Attention policies (``AttentionPolicy.kind``) on the composition softmax(QK^T): the
``scores`` class's strategy computes ``act(Q_h K_h^T / sqrt(d))`` and

``uniform``   keeps the ``scores`` model's values;
a criterion   a name registered in :data:`accsim.transformer.lamp.CRITERIA`
              (``lamp-v1``, ``lamp``, ``lamp-relaxed``): the criterion selects scores
              from the low-precision scores; the selected scores are recomputed on
              ``high``, and the graph's softmax then runs on the corrected row;
``random``    as many scores per row as the criterion ``rule`` selects, uniformly among
              the row's valid scores; ``oracle``: as many, those with the largest
              actual error.

``score_format`` (optional) rounds every low-precision score (after the ``1/sqrt(d)``
scaling and the activation rounding) to that format (RNE), as the LAMP paper's
low-precision model rounds the scores to ``m`` significand bits. The high scores are not
rounded to it.

Every product runs with the run's ``seed`` (stochastic-rounding models); the random
controls draw from generators keyed by the seed, the sentence's global index, the layer
and the head or projection, so results do not depend on batching. Hardware models
(:class:`~accsim.transformer.opclass.PerTensorScaled`) scale a projection's weights per
tensor and its input per sentence; a reduction over tokens per sentence, one head's
softmax rows per head. The binary64 model (:class:`~accsim.transformer.opclass.Float64`)
multiplies with BLAS and sums with numpy along the reduced axis (pairwise summation for
the softmax denominators, the LayerNorm statistics and the squared norm, whose reduced
axis is the tensor's innermost; a sequential sum over the tokens for the pooling).

Cost (:class:`accsim.run.cost.LayerCost` per task; :func:`tally` per class): output
components, recomputed ones, multiply-accumulates and bits (``model.cost_bits(n)`` per
inner product of ``n`` terms, bias included for the projections; the adaptive
strategy's estimation pass ``fl_low(|W||x| + |b|)`` is charged, the controls do not
need it and are not charged for it). The hardware columns of :mod:`accsim.run.hwcost`
(energy, H100 time, H100 time per touched 64x8 tile) are tallied for the projections
and the attention scores ``Q_h K_h^T`` (``d`` terms per score, no bias; LAMP's
recomputed scores as a gathered GEMM on the high model, its tiles per touched 64x8 tile
of the ``T x T`` score matrix, and an operand re-read per recomputed score)
(:meth:`OpTally.hardware`), with the operation counts of
:func:`accsim.run.cost.hardware_counts`. The other products (``A V``, LayerNorm sums)
are not priced.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numba
import numpy as np

from accsim.analysis.kappa import kappa_phi as _kappa_phi
from accsim.run.cost import LayerCost, hardware_counts
from accsim.run.strategies import (
    CONTROL_KINDS,
    Adaptive,
    Decision,
    Strategy,
    active_mask,
    get_control,
    needs_estimate,
)
from accsim.transformer import lamp as _lamp
from accsim.transformer.opclass import (
    OP_CLASSES,
    REDUCTION_CLASSES,
    Float64,
    OpModels,
    PerTensorScaled,
    matmul_batch,
    matmul_op,
    pow2_scale,
)

__all__ = ["PROJECTION_CLASSES", "LINEAR_KINDS", "ATTENTION_KINDS", "ATTENTION_CONTROLS",
           "LinearPolicy", "AttentionPolicy", "OpTally", "RunState", "act_round",
           "assignment", "reference_assignment", "tally", "op_costs"]

#: the projections (weights x activations), in the order that keys their random controls
PROJECTION_CLASSES = ("qkv", "attn_out", "ffn_in", "ffn_out")
_SMALL = 16384  # output components below which a product runs single-threaded
#: linear policies: uniform, adaptive and the registered controls
LINEAR_KINDS = ("uniform", "adaptive", *CONTROL_KINDS)
#: attention policies: uniform, every registered LAMP criterion, the matched controls
ATTENTION_CONTROLS = ("random", "oracle")
ATTENTION_KINDS = ("uniform", *_lamp.CRITERIA, *ATTENTION_CONTROLS)
#: reductions whose binary64 sum is numpy's pairwise sum along the innermost axis
_PAIRWISE = ("softmax_sum", "ln_mean", "ln_var", "l2_sum")


@contextmanager
def _one_thread():
    """Run the numba kernels called inside on one thread (small per-head work)."""
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def act_round(x: np.ndarray, fmt: str) -> np.ndarray:
    """Round to the activation format: ``binary32`` by numpy's float64 -> float32
    conversion (IEEE 754 conversion, one rounding to nearest even), ``binary64``
    identity, any other format through :func:`accsim.round` (RNE)."""
    if fmt == "binary64":
        return x
    if fmt == "binary32":
        with np.errstate(over="ignore"):
            return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)
    from accsim.numbers.rounding import round as _round

    return _round(np.asarray(x, np.float64), fmt, "rne")


@dataclass
class LinearPolicy:
    """How the projections are computed (module docstring)."""

    kind: str = "uniform"
    high: object = None
    tau: float = np.inf
    criterion: str = "predicted"
    guard: bool = False
    classes: tuple = PROJECTION_CLASSES

    def __post_init__(self):
        if self.kind not in LINEAR_KINDS:
            raise ValueError(f"unknown linear policy {self.kind!r}; valid: "
                             f"{', '.join(LINEAR_KINDS)}")
        if self.kind != "uniform" and self.high is None:
            raise ValueError(f"linear policy {self.kind!r} needs a 'high' model")
        bad = sorted(set(self.classes) - set(PROJECTION_CLASSES))
        if bad:
            raise ValueError(f"linear policy classes {bad} are not projections; valid: "
                             f"{', '.join(PROJECTION_CLASSES)}")


@dataclass
class AttentionPolicy:
    """How the scores of softmax(QK^T) are computed (module docstring)."""

    kind: str = "uniform"
    high: object = None
    tau: float | None = None
    rule: str | None = None
    score_format: object = None

    def __post_init__(self):
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention policy {self.kind!r}; valid: "
                             f"{', '.join(ATTENTION_KINDS)}")
        if self.kind in ATTENTION_CONTROLS:
            if self.rule is None:
                raise ValueError(f"attention control {self.kind!r} needs the 'rule' it "
                                 f"matches; valid: {', '.join(_lamp.CRITERIA)}")
            _lamp.check_criterion(self.rule)
        elif self.rule is not None and self.rule != self.kind:
            raise ValueError(f"'rule' is for the controls {ATTENTION_CONTROLS}, not for "
                             f"{self.kind!r}")
        if self.kind != "uniform":
            if self.high is None:
                raise ValueError(f"attention policy {self.kind!r} needs a 'high' model")
            if self.tau is None:
                raise ValueError(f"attention policy {self.kind!r} needs 'tau'")
            _lamp.criterion(self.criterion).check_tau(self.tau)
        if self.score_format is not None:
            from accsim.numbers.formats import format as _format

            self.score_format = _format(self.score_format)

    @property
    def criterion(self) -> str | None:
        """The registered criterion this policy applies or matches (None: uniform)."""
        return self.rule if self.kind in ATTENTION_CONTROLS else (
            None if self.kind == "uniform" else self.kind)


@dataclass
class OpTally:
    """Per operation class: components, recomputed, multiply-accumulates, bits."""

    components: dict = field(default_factory=dict)
    recomputed: dict = field(default_factory=dict)
    macs: dict = field(default_factory=dict)
    bits: dict = field(default_factory=dict)
    hw: dict = field(default_factory=dict)

    def add(self, cls, components, recomputed, macs, bits):
        for d, v in ((self.components, components), (self.recomputed, recomputed),
                     (self.macs, macs), (self.bits, bits)):
            d[cls] = d.get(cls, 0) + v

    def add_hw(self, models, level, n, estimate, *, bias=True):
        """Add the hardware operation counts of one projection (or, ``bias=False``, one
        head's scores) (:func:`accsim.run.cost.hardware_counts`)."""
        self.add_counts(hardware_counts(models, level, n, estimate, bias=bias))

    def add_counts(self, counts: dict):
        for k, v in counts.items():
            self.hw[k] = self.hw.get(k, 0) + v

    def merge(self, other: OpTally) -> None:
        """Add ``other``'s sums (another batch's tally). Every sum is of integers or
        integer-valued floats (counts and ``count x bits``), so merging per-batch
        tallies in batch order gives the bits of one tally run over all batches."""
        for mine, theirs in ((self.components, other.components),
                             (self.recomputed, other.recomputed), (self.macs, other.macs),
                             (self.bits, other.bits), (self.hw, other.hw)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def hardware(self, n_inputs: int) -> dict:
        """The hardware columns of the projections and the scores, per input
        (:data:`accsim.run.hwcost.HW_COLUMNS`)."""
        from accsim.run.cost import _hw_values

        e, s, t = _hw_values(self.hw)
        n = max(int(n_inputs), 1)
        return {"energy_pj": e / n, "h100_time_ns": s * 1e9 / n,
                "h100_tile_time_ns": t * 1e9 / n}

    def fraction(self, classes) -> float:
        c = sum(self.components.get(k, 0) for k in classes)
        return sum(self.recomputed.get(k, 0) for k in classes) / c if c else 0.0

    def total_bits(self) -> float:
        return float(sum(self.bits.values()))

    def total_macs(self) -> int:
        return int(sum(self.macs.values()))


def op_costs(op, result) -> list:
    """``[(cost, n), ...]``: the :class:`~accsim.run.cost.LayerCost` of every task of a
    linear op's result with its inner-product length; a
    :class:`~accsim.transformer.head_products.HeadProducts` op has one task with a cost
    per product, each with its own length."""
    if getattr(op, "problems", None):
        (costs,) = result.cost
        return list(zip(costs, [p.K for p in op.problems], strict=True))
    return [(c, op.inner_length) for c in result.cost]


def tally(graph, results, into: OpTally | None = None) -> OpTally:
    """Per-class cost of one :func:`~accsim.graph.run_graph` call (its ``results``, one per
    linear op of ``graph``), added to ``into``."""
    out = OpTally() if into is None else into
    for op, r in zip(graph.linear_ops, results, strict=True):
        for c, n in op_costs(op, r):
            out.add(op.op_class, c.components, c.recomputed, c.components * n,
                    c.base_bits + c.estimate_bits + c.recompute_bits)
            out.add_counts(c.hw)  # the scores' hardware counts (one per head)
        if "hw" in r.info:  # the projections' hardware counts (one task each)
            out.add_counts(r.info["hw"])
    return out


@dataclass
class RunState:
    """What the strategies of one run share: the seed and activation format, and the
    current batch's :class:`~accsim.transformer.minilm_graph.MiniLMGraph` op facts,
    token ranges and global sentence indices (set by :meth:`begin`).

    ``counts``: the per-sentence counts the adaptive linear policies recorded, shared by
    the encoders of one run (``{(match, sentence, layer, call): k}``), ``match`` the key
    of this encoder's adaptive cell (:func:`accsim.transformer.minilm_run.match_key`):
    an adaptive policy records its counts there, a control recomputes exactly those
    (the matched adaptive encoder runs first on every batch). Without a store
    (``counts=None``) a control recomputes as many components as the criterion flags on
    its own forward pass."""

    seed: int = 0
    act_format: str = "binary32"
    meta: dict = field(default_factory=dict)
    segments: list = field(default_factory=list)
    sids: list = field(default_factory=list)
    counts: dict | None = None
    match: object = None

    def begin(self, mg, sentence_ids):
        self.meta, self.segments = mg.meta, mg.segments
        self.sids = [int(s) for s in sentence_ids]

    def act(self, x):
        return act_round(x, self.act_format)

    def rng(self, *key):
        return np.random.default_rng([self.seed, *[int(k) for k in key]])

    def mm(self, model, A, B, C, scales):
        """``A B + C`` on ``model`` with the run's seed. Small products (one head of one
        sentence) run on one thread: waking the kernel's thread pool costs more than the
        product (measured 21 ms -> 1.5 ms for a 29 x 32 x 29 product on a loaded 2-core
        machine); results are identical."""
        if A.shape[0] * B.shape[1] < _SMALL:
            with _one_thread():
                return matmul_op(model, A, B, C, seed=self.seed, scales=scales)
        return matmul_op(model, A, B, C, seed=self.seed, scales=scales)

    def mm_batch(self, model, As, Bs) -> list:
        """``[A @ B for A, B in zip(As, Bs)]`` on ``model`` with the run's seed, one
        batched kernel call where the model has one
        (:func:`~accsim.transformer.opclass.matmul_batch`), else one call each (small
        ones on one thread, as :meth:`mm`); the bits of one :meth:`mm` call each."""
        def small(A, B):
            return _one_thread() if A.shape[0] * B.shape[1] < _SMALL else nullcontext()

        return matmul_batch(model, As, Bs, seed=self.seed, small=small)

    def segment_counts(self, mask) -> list:
        """Per sentence, the number of components ``mask`` flags."""
        return [int(mask[:, a:b].sum()) for a, b in self.segments]

    def record_counts(self, mask, layer, call) -> None:
        """Record the adaptive policy's per-sentence counts (no store: nothing)."""
        if self.counts is not None:
            for sid, k in zip(self.sids, self.segment_counts(mask), strict=True):
                self.counts[(self.match, sid, layer, call)] = k

    def recorded_counts(self, layer, call) -> list:
        """The matched adaptive policy's per-sentence counts of this projection.

        Raises
        ------
        RuntimeError
            The adaptive encoder has not run on these sentences before the control.
        """
        try:
            return [self.counts[(self.match, sid, layer, call)] for sid in self.sids]
        except KeyError:
            raise RuntimeError(f"control of layer {layer}, call {call}: the matched "
                               "adaptive cell has not run on these sentences before "
                               "it") from None

    def matched_mask(self, kind, counts, v_low, ref, layer, call, active=None):
        """A projection's matched control: per sentence ``counts[s]`` components,
        picked by the registered control ``kind``
        (:data:`accsim.run.strategies.CONTROLS`: ``"random"`` uniformly,
        ``"random-active"`` uniformly among the ``active`` ones, ``"oracle"`` those with
        the largest ``|v_low - ref|``), its generator keyed by the seed, the sentence's
        global index, ``layer``, ``call`` and the kind's stream tag."""
        ctl = get_control(kind)
        m = v_low.shape[0]
        new = np.zeros(v_low.shape, bool)
        for (a, b), sid, k in zip(self.segments, self.sids, counts, strict=True):
            if k == 0:
                continue
            act = None if active is None else active[:, a:b].ravel()
            err = None if ref is None else np.abs(v_low[:, a:b] - ref[:, a:b]).ravel()
            pick = ctl.pick(self.rng(sid, layer, call, ctl.tag), k, m * (b - a), act, err)
            sub = np.zeros(m * (b - a), bool)
            sub[pick] = True
            new[:, a:b] = sub.reshape(m, b - a)
        return new

    def scales(self, model, W, X, cols=None):
        """Per-tensor scales of a projection: one for W, one per sentence for the
        columns of X (the tokens of the batch)."""
        if not isinstance(model, PerTensorScaled):
            return None
        sB = model.column_scales(X, self.segments)
        return (pow2_scale(W, model._fmax[0]), sB if cols is None else sB[cols])


class _ModelStrategy(Strategy):
    """Every component of an op class on one model (the ``uniform`` strategy)."""

    kind = "uniform"

    def __init__(self, op_class: str, model, state: RunState):
        self.op_class, self.model, self.state = op_class, model, state

    @property
    def models(self):
        return [self.model]

    def _cost(self, m, P, n, k=0, high=None, est=0.0, hw=None):
        low = self.model
        base = m * P * low.cost_bits(n)
        rec = k * high.cost_bits(n) if k else 0.0
        return LayerCost(m * P, k, [m * P - k, k] if high is not None else [m * P], base,
                         est, rec, hw=hw or {})

    def _reduce(self, ctx, meta):
        X = ctx.X
        n, P = X.shape
        model, st = self.model, self.state
        if isinstance(model, Float64):
            v = (np.ascontiguousarray(X.T).sum(axis=1) if self.op_class in _PAIRWISE
                 else X.sum(axis=0))
            return v[None, :]
        scales = None
        if isinstance(model, PerTensorScaled):
            if meta.token_columns:
                sB = model.column_scales(X, st.segments)
            elif meta.block:
                sB = model.column_scales(X, [(a, a + meta.block)
                                             for a in range(0, P, meta.block)])
            else:
                sB = np.full(P, pow2_scale(X, model._fmax[1]))
            scales = (1.0, sB)
        return st.mm(model, np.ones((1, n)), X, None, scales)

    def _products(self, ctx, meta) -> Decision:
        """A :class:`~accsim.transformer.head_products.HeadProducts` task: every product
        on the model in one batched call, a cost per product."""
        ops = [p.operands(ctx.layer.W, ctx.X) for p in meta.problems]
        vs = self.state.mm_batch(self.model, [a for a, _ in ops], [b for _, b in ops])
        v = np.concatenate([x.ravel() for x in vs])
        return Decision(v, np.zeros(v.shape, np.int8), self.models,
                        [self._cost(p.M, p.N, p.K) for p in meta.problems])

    def layer(self, ctx) -> Decision:
        meta = self.state.meta[ctx.index[0]]
        if meta.problems:
            return self._products(ctx, meta)
        W, X = ctx.layer.W, ctx.X
        m, n, P = W.shape[0], W.shape[1], X.shape[1]
        if self.op_class in REDUCTION_CLASSES:
            v = self._reduce(ctx, meta)
        elif self.op_class in PROJECTION_CLASSES:
            v = self.state.mm(self.model, W, X, ctx.C, self.state.scales(self.model, W, X))
            level = np.zeros(v.shape, np.int8)
            return Decision(v, level, self.models, self._cost(m, P, n + 1),  # bias a term
                            {"hw": hardware_counts([self.model], level, n, "none")})
        else:
            v = self.state.mm(self.model, W, X, None, None)
        return Decision(v, np.zeros(v.shape, np.int8), self.models, self._cost(m, P, n))


class _Ctx:
    """What :class:`accsim.run.strategies.Adaptive` needs of a projection (duck-typed
    :class:`accsim.graph.engine.TaskContext`, with the MiniLM scaling and seed)."""

    def __init__(self, state, W, X, C, activation, scales):
        self.st, self.W, self.X, self.C, self.activation = state, W, X, C, activation
        self.scales = scales
        self._v = {}

    @property
    def n(self):
        return int(self.W.shape[1])

    def compute(self, model):
        key = id(model)
        if key not in self._v:
            self._v[key] = self.st.mm(model, self.W, self.X, self.C, self.scales)
        return self._v[key]

    def compute_abs(self, model):
        return self.st.mm(model, np.abs(self.W), np.abs(self.X), np.abs(self.C),
                          self.scales)

    def compute_selected(self, model, mask):
        cols = np.flatnonzero(mask.any(axis=0))
        out = np.full(mask.shape, np.nan)
        if cols.size:
            sc = self.st.scales(model, self.W, self.X, cols)
            out[:, cols] = self.st.mm(model, self.W, self.X[:, cols], self.C[:, cols], sc)
        return out

    def kappa_phi(self, z):
        return np.asarray(_kappa_phi(z, self.activation), np.float64)


class _LinearStrategy(_ModelStrategy):
    """A projection class under an adaptive policy or its matched control."""

    def __init__(self, op_class, model, state, policy: LinearPolicy):
        super().__init__(op_class, model, state)
        self.policy = policy
        self.kind = policy.kind

    @property
    def models(self):
        return [self.model, self.policy.high]

    def layer(self, ctx) -> Decision:
        meta = self.state.meta[ctx.index[0]]
        st, low, pol = self.state, self.model, self.policy
        W, X, C = ctx.layer.W, ctx.X, ctx.C
        m, n, P = W.shape[0], W.shape[1], X.shape[1]
        act = "gelu" if self.op_class == "ffn_in" else "identity"
        c = _Ctx(st, W, X, C, act, st.scales(low, W, X))
        v_low = c.compute(low)
        control = pol.kind in CONTROL_KINDS
        if control and st.counts is not None:  # the matched adaptive cell's counts
            counts = st.recorded_counts(meta.layer, meta.call)
        else:
            mask, _ = Adaptive(low, pol.high, pol.tau, criterion=pol.criterion,
                               guard=pol.guard).select(c, v_low)
            if not control:
                st.record_counts(mask, meta.layer, meta.call)
            counts = st.segment_counts(mask)
        needs = get_control(pol.kind).needs if control else None
        if control:
            active = active_mask(c, low, v_low) if needs == "active" else None
            mask = st.matched_mask(pol.kind, counts, v_low, W @ X + C if needs == "error"
                                   else None, meta.layer, meta.call, active)
        v = v_low.copy()
        k = int(mask.sum())
        if k:
            v[mask] = c.compute_selected(pol.high, mask)[mask]
        est = m * P * low.cost_bits(n + 1) if pol.kind == "adaptive" else 0.0
        level = mask.astype(np.int8)
        hw_est = "low" if pol.kind == "adaptive" or (
            needs == "active" and needs_estimate(c, low)) else "none"
        return Decision(v, level, self.models, self._cost(m, P, n + 1, k, pol.high, est),
                        {"hw": hardware_counts([low, pol.high], level, n, hw_est)})


class _ScoresStrategy(_ModelStrategy):
    """The scores ``act(Q_h K_h^T / sqrt(d))`` of one head of one sentence under an
    attention policy (module docstring)."""

    def __init__(self, model, state, policy: AttentionPolicy, scale: float):
        super().__init__("scores", model, state)
        self.policy, self.scale = policy, float(scale)
        self.kind = policy.kind

    @property
    def models(self):
        return [self.model] if self.policy.high is None else [self.model, self.policy.high]

    def _round_scores(self, s_low):
        fmt = self.policy.score_format
        if fmt is None:
            return s_low
        from accsim.numbers.rounding import round as _round

        with _one_thread():  # one head's scores: no thread-pool wake-up
            return _round(s_low, fmt, "rne")

    def _select(self, s_low, Q, KT, sentence, layer, head):
        """The scores the policy recomputes on ``high`` (one head of one sentence)."""
        st, pol = self.state, self.policy
        mask = _lamp.select(pol.criterion, s_low, pol.tau, None)
        if pol.kind == "random":
            rng = st.rng(st.sids[sentence], layer, head, 7)
            mask = _lamp.random_select(mask.sum(axis=-1), KT.shape[1], rng)
        elif pol.kind == "oracle":
            ref = (np.array(Q) @ np.array(KT)) * self.scale
            mask = _lamp.oracle_select(mask.sum(axis=-1), np.abs(s_low - ref), None)
        return mask

    def _decide(self, s_low, mask, s_high, d, uniform_hw=None):
        """``(scores, level, cost)`` of one head from its low scores, the recomputed
        mask (None: uniform) and its high scores (None: nothing recomputed);
        ``uniform_hw``: a cache of the uniform hardware counts by shape (they depend on
        the shape alone)."""
        low, pol = self.model, self.policy
        T, N = s_low.shape
        if mask is None:
            # the hardware counts ride on the task's cost (one per head and sentence)
            level = np.zeros(s_low.shape, np.int8)
            cache = {} if uniform_hw is None else uniform_hw
            if (T, N, d) not in cache:
                cache[(T, N, d)] = hardware_counts([low], level, d, "none", bias=False)
            return s_low, level, self._cost(T, N, d, hw=dict(cache[(T, N, d)]))
        k = int(mask.sum())
        s = s_low if s_high is None else np.where(mask, s_high, s_low)
        level = mask.astype(np.int8)
        hw = hardware_counts([low, pol.high], level, d, "none", bias=False)
        return s, level, self._cost(T, N, d, k, pol.high, hw=hw)

    def _products(self, ctx, meta) -> Decision:
        """Every head of every sentence (a HeadProducts task): the low scores in one
        batched call, the selected heads' high scores in another; per head the bits of
        :meth:`layer` on that head's own task."""
        st, pol = self.state, self.policy
        probs = meta.problems
        ops = [p.operands(ctx.layer.W, ctx.X) for p in probs]
        lows = st.mm_batch(self.model, [a for a, _ in ops], [b for _, b in ops])
        flat = self._round_scores(st.act(np.concatenate([v.ravel() for v in lows])
                                         * self.scale))
        s_low, o = [], 0
        for p in probs:
            s_low.append(flat[o:o + p.M * p.N].reshape(p.M, p.N))
            o += p.M * p.N
        masks = [None] * len(probs) if pol.kind == "uniform" else [
            self._select(s, a, b, p.sentence, meta.layer, p.head)
            for s, (a, b), p in zip(s_low, ops, probs, strict=True)]
        todo = [g for g, m in enumerate(masks) if m is not None and m.any()]
        high = dict(zip(todo, st.mm_batch(pol.high, [ops[g][0] for g in todo],
                                          [ops[g][1] for g in todo]), strict=True)) \
            if todo else {}
        hw: dict = {}
        out = [self._decide(s_low[g], masks[g],
                            st.act(high[g] * self.scale) if g in high else None, p.K, hw)
               for g, p in enumerate(probs)]
        return Decision(np.concatenate([v.ravel() for v, _, _ in out]),
                        np.concatenate([lv.ravel() for _, lv, _ in out]), self.models,
                        [c for _, _, c in out])

    def layer(self, ctx) -> Decision:
        meta = self.state.meta[ctx.index[0]]
        if meta.problems:
            return self._products(ctx, meta)
        head = int(ctx.index[1][1])  # task key: (image, head, digest)
        st, pol = self.state, self.policy
        Q, KT = ctx.layer.W, ctx.X
        d = Q.shape[1]
        s_low = self._round_scores(st.act(st.mm(self.model, Q, KT, None, None)
                                          * self.scale))
        if pol.kind == "uniform":
            s, level, cost = self._decide(s_low, None, None, d)
            return Decision(s, level, self.models, cost)
        mask = self._select(s_low, Q, KT, meta.sentence, meta.layer, head)
        s_high = st.act(st.mm(pol.high, Q, KT, None, None) * self.scale) \
            if mask.any() else None
        s, level, cost = self._decide(s_low, mask, s_high, d)
        return Decision(s, level, self.models, cost)


def assignment(ops: OpModels, linear: LinearPolicy | None = None,
               attention: AttentionPolicy | None = None, *, state: RunState,
               scale: float, label: str = "minilm"):
    """The :class:`accsim.graph.Assignment` of every MiniLM op class (module docstring)."""
    from accsim.graph.runner import Assignment

    linear = linear or LinearPolicy()
    attention = attention or AttentionPolicy()
    strategies = {}
    for cls in OP_CLASSES:
        if cls == "scores":
            strategies[cls] = _ScoresStrategy(ops[cls], state, attention, scale)
        elif linear.kind != "uniform" and cls in linear.classes:
            strategies[cls] = _LinearStrategy(cls, ops[cls], state, linear)
        else:
            strategies[cls] = _ModelStrategy(cls, ops[cls], state)
    return Assignment(strategies, label)


#: memory order (C: row-major, F: column-major) of the operands ``(A, B)`` of each
#: product in the hand-written binary64 forward pass (:mod:`networks.transformer` with
#: :class:`accsim.transformer.op_runner.ReferenceRunner`, whose transposes are views):
#: BLAS may sum in an order that depends on it (OpenBLAS's small-matrix kernels do)
_REFERENCE_ORDER = {"qkv": "CF", "attn_out": "CF", "ffn_in": "CF", "ffn_out": "CC",
                    "scores": "FC", "context": "CF"}


class _ReferenceStrategy(_ModelStrategy):
    """The binary64 forward pass of an op class: BLAS on the operands laid out as the
    hand-written pass lays them out (:data:`_REFERENCE_ORDER`), so the reference has its
    bits; reductions as the binary64 model's (:meth:`_ModelStrategy._reduce`)."""

    def __init__(self, op_class, state, scale):
        super().__init__(op_class, Float64(), state)
        self.scale = float(scale)

    def _products(self, ctx, meta) -> Decision:
        """Every product of a HeadProducts task as its own BLAS call, operands copied
        into fresh arrays of the hand-written pass's layouts."""
        oa, ob = _REFERENCE_ORDER[self.op_class]
        vs, costs = [], []
        for p in meta.problems:
            A, B = p.operands(ctx.layer.W, ctx.X)
            v = self.model.matmul(np.array(A, order=oa), np.array(B, order=ob))
            vs.append((v * self.scale if self.op_class == "scores" else v).ravel())
            costs.append(self._cost(p.M, p.N, p.K))
        v = np.concatenate(vs)
        return Decision(v, np.zeros(v.shape, np.int8), self.models, costs)

    def layer(self, ctx) -> Decision:
        if self.op_class in REDUCTION_CLASSES:
            return super().layer(ctx)
        meta = self.state.meta.get(ctx.index[0])
        if meta is not None and meta.problems:
            return self._products(ctx, meta)
        W, X = ctx.layer.W, ctx.X
        m, n, P = W.shape[0], W.shape[1], X.shape[1]
        oa, ob = _REFERENCE_ORDER[self.op_class]
        v = self.model.matmul(np.asarray(W, order=oa), np.asarray(X, order=ob))
        if self.op_class in PROJECTION_CLASSES:
            v = v + ctx.C
            n += 1
        elif self.op_class == "scores":
            v = v * self.scale
        return Decision(v, np.zeros(v.shape, np.int8), self.models, self._cost(m, P, n))


def reference_assignment(state: RunState, scale: float):
    """The binary64 forward pass (with ``act_format = "binary64"``): every class on the
    binary64 model, with the bits of the hand-written reference
    (:class:`_ReferenceStrategy`)."""
    from accsim.graph.runner import Assignment

    return Assignment({c: _ReferenceStrategy(c, state, scale) for c in OP_CLASSES},
                      "binary64")
