"""Runners for :func:`networks.transformer.encode`: the binary64 reference and the
simulated run (op-class models, a linear-layer strategy, an attention strategy).

Linear-layer policies (``LinearPolicy.kind``) on the classes ``qkv``, ``attn_out``,
``ffn_in``, ``ffn_out`` (or a subset):

``uniform``   every component on the class's model;
``adaptive``  El Arar, Filip, Mary, Riccietti (arXiv:2503.15568): low pass on the
              class's model, recompute the components flagged by
              :class:`accsim.run.strategies.Adaptive` (``kappa_phi`` of the layer's
              activation: GELU for ``ffn_in``, identity elsewhere) on ``high``;
``random``    as many components per sentence and layer as ``adaptive`` flags, chosen
              uniformly at random (matched control);
``random-active`` as many, uniformly among the active components
              (:func:`accsim.run.strategies.active_mask`); the projections' activations
              (identity, GELU) are flat nowhere, so every component is active and the
              choice has the distribution of ``random`` (another random stream);
``oracle``    as many, those with the largest actual error against the binary64 product
              of the same inputs (matched control; needs the reference, not realisable).

Attention policies (``AttentionPolicy.kind``) on the composition softmax(QK^T):

``uniform``   scores on the ``scores`` model;
a criterion   a name registered in :data:`accsim.transformer.lamp.CRITERIA`
              (``lamp-v1``, ``lamp``, ``lamp-relaxed``): the criterion selects scores
              from the low-precision scores; the selected scores are recomputed on
              ``high`` and the whole row's softmax is evaluated again;
``random``    as many scores per row as the criterion ``rule`` selects, uniformly among
              the row's valid scores; ``oracle``: as many, those with the largest
              actual error.

``score_format`` (optional) rounds every low-precision score (after the ``1/sqrt(d)``
scaling and the activation rounding) to that format (RNE), as the LAMP paper's
low-precision model rounds the scores to ``m`` significand bits. The high scores are not
rounded to it. Recomputed fractions count valid scores only (MiniLM runs every sentence
unpadded, so every score of its attention is valid).

Cost (:class:`OpTally`, per operation class): output components, recomputed ones,
multiply-accumulates and bits (``model.cost_bits(n)`` per inner product of ``n`` terms,
bias included for the projections: the cost model of :mod:`accsim.run.cost`; the adaptive
strategy's estimation pass ``fl_low(|W||x| + |b|)`` is charged, the controls do not
need it and are not charged for it). The hardware columns of :mod:`accsim.run.hwcost`
(energy, H100 time, H100 time per touched 64x8 tile) are tallied for the projections
(:meth:`OpTally.hardware`), with the operation counts of
:func:`accsim.run.cost.hardware_counts`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numba
import numpy as np

from accsim.analysis.kappa import kappa_phi as _kappa_phi
from accsim.run.cost import hardware_counts
from accsim.run.strategies import (
    Adaptive,
    active_mask,
    needs_estimate,
    random_active_choice,
)
from accsim.transformer import lamp as _lamp
from accsim.transformer.opclass import Float64, OpModels, PerTensorScaled, matmul_op, pow2_scale

__all__ = ["LINEAR_CLASSES", "LinearPolicy", "AttentionPolicy", "OpTally",
           "ReferenceRunner", "SimRunner", "act_round"]

LINEAR_CLASSES = ("qkv", "attn_out", "ffn_in", "ffn_out")
_SMALL = 16384  # output components below which a product runs single-threaded
LINEAR_KINDS = ("uniform", "adaptive", "random", "random-active", "oracle")
#: attention policies: uniform, every registered LAMP criterion, the matched controls
ATTENTION_CONTROLS = ("random", "oracle")
ATTENTION_KINDS = ("uniform", *_lamp.CRITERIA, *ATTENTION_CONTROLS)


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
    classes: tuple = LINEAR_CLASSES

    def __post_init__(self):
        if self.kind not in LINEAR_KINDS:
            raise ValueError(f"unknown linear policy {self.kind!r}; valid: "
                             f"{', '.join(LINEAR_KINDS)}")
        if self.kind != "uniform" and self.high is None:
            raise ValueError(f"linear policy {self.kind!r} needs a 'high' model")
        bad = sorted(set(self.classes) - set(LINEAR_CLASSES))
        if bad:
            raise ValueError(f"linear policy classes {bad} are not projections; valid: "
                             f"{', '.join(LINEAR_CLASSES)}")


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

    def add_hw(self, models, level, n, estimate):
        """Add the hardware operation counts of one projection
        (:func:`accsim.run.cost.hardware_counts`)."""
        for k, v in hardware_counts(models, level, n, estimate).items():
            self.hw[k] = self.hw.get(k, 0) + v

    def hardware(self, n_inputs: int) -> dict:
        """The projections' hardware columns per input
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


class ReferenceRunner:
    """The binary64 forward pass: BLAS products and numpy sums, no rounding."""

    model = Float64()

    def begin(self, segments, sentence_ids):
        self.segments = segments

    def act(self, x):
        return x

    def linear(self, cls, W, X, b, activation, *, layer=0):
        return self.model.matmul(W, X, b[:, None])

    def attention_probs(self, Q, K, scale, softmax, *, layer=0, sentence=0, head=0):
        return softmax(self, self.model.matmul(Q, K.T) * scale, layer)

    def matmul(self, cls, A, B, *, layer=0, sentence=0):
        return self.model.matmul(A, B)

    def reduce(self, cls, X, *, layer=0, token_columns=False):
        return np.asarray(X).sum(axis=0)


class _Ctx:
    """What :class:`accsim.run.strategies.Adaptive` needs of a layer (duck-typed
    :class:`accsim.run.executor.LayerContext`)."""

    def __init__(self, runner, W, X, b, activation, scales):
        self.r, self.W, self.X, self.b, self.activation = runner, W, X, b, activation
        self.scales = scales
        self.C = np.broadcast_to(b[:, None], (W.shape[0], X.shape[1]))
        self._v = {}

    @property
    def n(self):
        return int(self.W.shape[1])

    def compute(self, model):
        key = id(model)
        if key not in self._v:
            self._v[key] = self.r._mm(model, self.W, self.X, self.C, self.scales)
        return self._v[key]

    def compute_abs(self, model):
        return self.r._mm(model, np.abs(self.W), np.abs(self.X), np.abs(self.C),
                          self.scales)

    def compute_selected(self, model, mask):
        cols = np.flatnonzero(mask.any(axis=0))
        out = np.full(mask.shape, np.nan)
        if cols.size:
            sc = self.r._scales(model, self.W, self.X, cols)
            out[:, cols] = self.r._mm(model, self.W, self.X[:, cols], self.C[:, cols], sc)
        return out

    def kappa_phi(self, z):
        return np.asarray(_kappa_phi(z, self.activation), np.float64)


class SimRunner:
    """Simulated forward pass: op-class models plus linear and attention policies.

    Parameters
    ----------
    ops : OpModels
        ``operation class -> model`` (the base / low model of every class).
    linear : LinearPolicy
    attention : AttentionPolicy
    seed : int
        Seeds the random controls (and stochastic-rounding models), folded with the
        sentence's global index, the layer and the head, so results do not depend on
        batching.
    act_format : str
        Format of every activation (default binary32).
    """

    def __init__(self, ops: OpModels, linear: LinearPolicy | None = None,
                 attention: AttentionPolicy | None = None, *, seed: int = 0,
                 act_format: str = "binary32"):
        self.ops = ops
        self.lin = linear or LinearPolicy()
        self.att = attention or AttentionPolicy()
        self.seed = int(seed)
        self.act_format = act_format
        self.tally = OpTally()
        self.segments = []
        self.sids = []

    # -------------------------------------------------------------- plumbing
    def begin(self, segments, sentence_ids):
        self.segments = segments
        self.sids = sentence_ids
        self._calls = {}

    def act(self, x):
        return act_round(x, self.act_format)

    def _rng(self, *key):
        return np.random.default_rng([self.seed, *[int(k) for k in key]])

    def _scales(self, model, W, X, cols=None):
        """Per-tensor scales: one for W, one per sentence for the columns of X (the
        columns of a projection's input are the tokens of the batch)."""
        if not isinstance(model, PerTensorScaled):
            return None
        sA = pow2_scale(W, model._fmax[0])
        sB = model.column_scales(X, self.segments)
        return (sA, sB if cols is None else sB[cols])

    def _mm(self, model, A, B, C, scales):
        # small products (one head of one sentence) run on one thread: waking the
        # kernel's thread pool costs more than the product (measured 21 ms -> 1.5 ms for
        # a 29 x 32 x 29 product on a loaded 2-core machine); results are identical
        if A.shape[0] * B.shape[1] < _SMALL:
            with _one_thread():
                return matmul_op(model, A, B, C, seed=self.seed, scales=scales)
        return matmul_op(model, A, B, C, seed=self.seed, scales=scales)

    # -------------------------------------------------------------- projections
    def linear(self, cls, W, X, b, activation, *, layer=0):
        low = self.ops[cls]
        m, n = W.shape[0], W.shape[1]
        P = X.shape[1]
        scales = self._scales(low, W, X)
        pol = self.lin
        if pol.kind == "uniform" or cls not in pol.classes:
            v = self._mm(low, W, X, np.broadcast_to(b[:, None], (m, P)), scales)
            self.tally.add(cls, m * P, 0, m * n * P, m * P * low.cost_bits(n + 1))
            self.tally.add_hw([low], np.zeros((m, P), np.int8), n, "none")
            return v
        call = self._calls.get((layer, cls), 0)  # q, k, v: calls 0, 1, 2 of "qkv"
        self._calls[(layer, cls)] = call + 1
        call = 16 * call + LINEAR_CLASSES.index(cls)
        ctx = _Ctx(self, W, X, b, activation, scales)
        v_low = ctx.compute(low)
        strat = Adaptive(low, pol.high, pol.tau, criterion=pol.criterion, guard=pol.guard)
        mask, _ = strat.select(ctx, v_low)
        if pol.kind in ("random", "random-active", "oracle"):
            ref = W @ X + b[:, None] if pol.kind == "oracle" else None
            active = active_mask(ctx, low, v_low) if pol.kind == "random-active" else None
            new = np.zeros_like(mask)
            for (a, bb), sid in zip(self.segments, self.sids, strict=True):
                k = int(mask[:, a:bb].sum())
                if k == 0:
                    continue
                if pol.kind == "random":
                    pick = self._rng(sid, layer, call).permutation(
                        m * (bb - a))[:k]
                elif pol.kind == "random-active":
                    pick = random_active_choice(self._rng(sid, layer, call, 0x41435456),
                                                active[:, a:bb].ravel(), k)
                else:
                    err = np.abs(v_low[:, a:bb] - ref[:, a:bb]).ravel()
                    err = np.where(np.isnan(err), np.inf, err)
                    pick = np.argsort(-err, kind="stable")[:k]
                sub = np.zeros(m * (bb - a), bool)
                sub[pick] = True
                new[:, a:bb] = sub.reshape(m, bb - a)
            mask = new
        v = v_low.copy()
        k = int(mask.sum())
        if k:
            v[mask] = ctx.compute_selected(pol.high, mask)[mask]
        est = m * P * low.cost_bits(n + 1) if pol.kind == "adaptive" else 0.0
        bits = m * P * low.cost_bits(n + 1) + est + k * pol.high.cost_bits(n + 1)
        self.tally.add(cls, m * P, k, m * n * P, bits)
        self.tally.add_hw([low, pol.high], mask.astype(np.int8), n,
                          "low" if pol.kind == "adaptive" or (
                              pol.kind == "random-active" and needs_estimate(ctx, low))
                          else "none")
        return v

    # -------------------------------------------------------------- attention
    def attention_probs(self, Q, K, scale, softmax, *, layer=0, sentence=0, head=0,
                        valid=None):
        """Probabilities of one head of one sentence; ``valid`` (T, T) marks the keys a
        row may attend to (default: all; the masked softmax is the caller's)."""
        low = self.ops["scores"]
        T, d = Q.shape
        pol = self.att
        s_low = self.act(self._mm(low, Q, K.T, None, None) * scale)
        if pol.score_format is not None:
            from accsim.numbers.rounding import round as _round

            with _one_thread():  # one head's scores: no thread-pool wake-up (see _mm)
                s_low = _round(s_low, pol.score_format, "rne")
        n_valid = T * T if valid is None else int(np.count_nonzero(valid))
        if pol.kind == "uniform":
            self.tally.add("scores", n_valid, 0, n_valid * d, n_valid * low.cost_bits(d))
            return softmax(self, s_low, layer)
        mask = _lamp.select(pol.criterion, s_low, pol.tau, valid)
        if pol.kind == "random":
            rng = self._rng(self.sids[sentence], layer, head, 7)
            mask = _lamp.random_select(mask.sum(axis=-1), T if valid is None else valid,
                                       rng)
        elif pol.kind == "oracle":
            ref = (Q @ K.T) * scale
            mask = _lamp.oracle_select(mask.sum(axis=-1), np.abs(s_low - ref), valid)
        k = int(mask.sum())
        s = s_low
        if k:
            s_high = self.act(self._mm(pol.high, Q, K.T, None, None) * scale)
            s = np.where(mask, s_high, s_low)
        self.tally.add("scores", n_valid, k, n_valid * d,
                       n_valid * low.cost_bits(d) + k * pol.high.cost_bits(d))
        return softmax(self, s, layer)

    # -------------------------------------------------------------- others
    def matmul(self, cls, A, B, *, layer=0, sentence=0):
        model = self.ops[cls]
        m, n = A.shape
        P = B.shape[1]
        self.tally.add(cls, m * P, 0, m * n * P, m * P * model.cost_bits(n))
        return self._mm(model, A, B, None, None)

    def reduce(self, cls, X, *, layer=0, token_columns=False):
        """Column sums of X; ``token_columns``: the columns are the tokens of the batch
        (LayerNorm statistics), so scaling is per sentence, else X is one tensor."""
        model = self.ops[cls]
        X = np.asarray(X, np.float64)
        n, P = X.shape
        self.tally.add(cls, P, 0, n * P, P * model.cost_bits(n))
        if isinstance(model, Float64):
            return X.sum(axis=0)
        ones = np.ones((1, n))
        scales = None
        if isinstance(model, PerTensorScaled):
            sB = model.column_scales(X, self.segments) if token_columns else \
                np.full(P, pow2_scale(X, model._fmax[1]))
            scales = (1.0, sB)
        return self._mm(model, ones, X, None, scales)[0]


__all__ += ["OpModels"]
