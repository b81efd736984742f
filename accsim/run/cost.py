"""Cost accounting of a strategy: recomputed inner products and a bit-cost model.

The hardware cost model (documented in ``docs/executor.md``)
-----------------------------------------------------------
One inner product of length ``n`` plus a bias (``n + 1`` terms) run on accumulator model
``M`` costs ``M.cost_bits(n + 1)`` (``M.cost_bits(n)`` for a task without a bias:
attention scores, sums; :attr:`accsim.graph.ops.MatmulTask.bias`): the accumulator's
significand bits times the number of terms (see
:meth:`accsim.accumulators.Accumulator.cost_bits`; a family may refine it, e.g. a
blocked sum charges its inner and outer precisions). A strategy's cost for one layer is
the sum over its output components of

* the pass every component gets (the low accumulator, or the uniform model),
* the estimation of ``|W||x| + |b|``, only when the strategy's criterion or guard uses it
  (the authors' criterion ``kappa_phi(v_hat)/|v_hat| > tol`` does not):

  - ``estimate="low"``: the pass ``fl_low(|W||x| + |b|)`` (one more inner product on the
    low accumulator for every component: El Arar et al., arXiv:2503.15568, Sec.
    "adaptive algorithm", step 2);
  - ``estimate="cs"``: the Cauchy-Schwarz bound ``||w_i||_2 ||x||_2 + |b_i|`` (row norms
    of the fixed weights precomputed once): one inner product ``x.x`` of ``n`` terms per
    input column, plus a 2-term multiply-add per component, both charged on the HIGH
    accumulator (``||x||^2`` overflows e4m3 for MNIST-sized inputs); O(n) per input
    instead of O(m n);
* the recomputation of the selected components on the model of their level.

The recomputed fraction counts output components (inner products) whose final value came
from a model other than the base (low) one, over all layers, as in the paper's tables.

Next to the bits, every :class:`LayerCost` carries the hardware columns of
:mod:`accsim.run.hwcost` (energy in pJ, H100 tensor-core time and the same time with a
recomputation billed per touched 64x8 output tile), tallied by :class:`CostTally`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.run import hwcost as hw

__all__ = ["LayerCost", "CostTally", "inner_product_bits", "layer_cost", "ESTIMATES",
           "register_hw_model"]


def inner_product_bits(model, n: int, bias: bool = True) -> float:
    """Bit cost of one inner product of ``n`` products plus a bias on ``model``.

    Parameters
    ----------
    model : Accumulator
        Any accumulator model (``cost_bits`` is part of the model contract).
    n : int
        Number of products (the layer's fan-in).
    bias : bool
        Whether there is a bias (False: a product or reduction without one, e.g.
        attention scores).

    Returns
    -------
    float
        ``model.cost_bits(n + 1)`` (the bias is one more term), ``model.cost_bits(n)``
        without a bias.
    """
    return float(model.cost_bits(int(n) + (1 if bias else 0)))


@dataclass
class LayerCost:
    """Cost of one layer on a batch.

    Attributes
    ----------
    components : int
        Output components (inner products) of the layer over the batch.
    recomputed : int
        Components whose final value comes from a level above the base one.
    per_level : list of int
        Number of components whose final value comes from each level.
    base_bits, estimate_bits, recompute_bits : float
        Bit cost of the base pass, of the estimation pass and of the recomputations.
    """

    components: int
    recomputed: int
    per_level: list
    base_bits: float
    estimate_bits: float
    recompute_bits: float
    hw: dict = field(default_factory=dict)

    @property
    def energy_pj(self) -> float:
        """Energy of the layer, pJ (:mod:`accsim.run.hwcost`)."""
        return _hw_values(self.hw)[0]

    @property
    def h100_s(self) -> float:
        """H100 tensor-core time of the layer, s."""
        return _hw_values(self.hw)[1]

    @property
    def h100_tile_s(self) -> float:
        """H100 time with recomputations billed per touched output tile, s."""
        return _hw_values(self.hw)[2]

    @property
    def bit_cost(self) -> float:
        """Total bit cost (base + estimate + recomputations)."""
        return self.base_bits + self.estimate_bits + self.recompute_bits


ESTIMATES = ("none", "low", "cs")


def layer_cost(models, level: np.ndarray, n: int, *, estimate, bias: bool = True) -> LayerCost:
    """Cost of a layer whose component ``k`` took its final value from ``models[level[k]]``.

    Every component pays one pass on ``models[0]`` (the base/low model); the estimate of
    ``|W||x| + |b|`` is charged as in the module docstring; each component with
    ``level > 0`` pays one inner product on ``models[level]``.

    Parameters
    ----------
    models : sequence of Accumulator
        The levels, ``models[0]`` the base.
    level : numpy.ndarray of int
        Level index of every component of the layer (any shape).
    n : int
        Fan-in of the layer.
    estimate : {"none", "low", "cs"} or bool
        Which estimate of ``|W||x| + |b|`` the strategy computed (``True`` is "low",
        ``False`` "none").
    bias : bool
        Whether the inner products add a bias (one more term each); False for a product
        or reduction without one (attention scores, sums).

    Returns
    -------
    LayerCost
    """
    level = np.asarray(level)
    counts = np.bincount(level.ravel().astype(np.int64), minlength=len(models))
    if counts.size > len(models):
        raise ValueError(f"level index {level.max()} out of range for {len(models)} models")
    if estimate is True or estimate is False:
        estimate = "low" if estimate else "none"
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown estimate {estimate!r}; valid: {', '.join(ESTIMATES)}")
    bits = [inner_product_bits(m, n, bias) for m in models]
    total = int(level.size)
    base = total * bits[0]
    if estimate == "low":
        est = total * bits[0]
    elif estimate == "cs":
        cols = level.shape[-1] if level.ndim else 1
        hi = models[-1]
        est = cols * float(hi.cost_bits(int(n))) + total * float(hi.cost_bits(2))
    else:
        est = 0.0
    rec = float(sum(int(c) * b for c, b in zip(counts[1:], bits[1:], strict=True)))
    return LayerCost(components=total, recomputed=int(total - counts[0]),
                     per_level=[int(c) for c in counts], base_bits=float(base),
                     estimate_bits=float(est), recompute_bits=rec,
                     hw=hardware_counts(models, level, n, estimate, bias=bias))


#: Models seen by :func:`hardware_counts`, by class name and ``describe()``.
_HW_MODELS: dict = {}


def register_hw_model(model) -> str:
    """The key of ``model`` in the counts of :func:`hardware_counts` (class name and
    ``describe()``), registered so that :func:`_hw_values` can price it. A process that
    merges counts made elsewhere (a dask worker) registers the run's models first."""
    key = type(model).__name__ + repr(sorted(model.describe().items()))
    _HW_MODELS.setdefault(key, model)
    return key


def hardware_counts(models, level: np.ndarray, n: int, estimate: str, *,
                    bias: bool = True) -> dict:
    """Integer operation counts of a layer for the hardware columns
    (:mod:`accsim.run.hwcost`), keyed ``(what, model key, terms)``: ``"ip"`` inner
    products of ``terms`` terms (energy), ``"mac"`` multiply-adds of a gathered GEMM
    (time), ``"tile"`` multiply-adds with recomputations per touched output tile (tile
    time), ``"reread"`` recomputed components re-reading ``terms`` operand pairs. The base
    pass runs on ``models[0]``, the estimate as in :func:`layer_cost`, a component with
    ``level = k > 0`` is recomputed on ``models[k]``. An inner product sums ``n`` products
    plus the bias (``bias=False``: ``n`` terms, e.g. attention scores ``q . k``). Counts
    are integers, so tallies over batches do not depend on the batch size."""
    level = np.asarray(level)
    total = int(level.size)
    lvl2 = level.reshape(level.shape[0], -1) if level.ndim else level.reshape(1, 1)
    out: dict = {}

    def add(what, model, terms, count):
        if count:
            key = register_hw_model(model)
            k = (what, key, int(terms))
            out[k] = out.get(k, 0) + int(count)

    def gemm(model, macs, tiled_macs=None):
        add("mac", model, 1, macs)
        add("tile", model, 1, macs if tiled_macs is None else tiled_macs)

    low = models[0]
    passes = 2 if estimate == "low" else 1
    terms = n + 1 if bias else n
    add("ip", low, terms, passes * total)
    gemm(low, passes * total * n)
    if estimate == "cs":
        hi = models[-1]
        add("ip", hi, n, lvl2.shape[-1])
        add("ip", hi, 2, total)
        gemm(hi, lvl2.shape[-1] * n + total * 2)
    for k in range(1, len(models)):
        sel = lvl2 == k
        cnt = int(sel.sum())
        if not cnt:
            continue
        add("ip", models[k], terms, cnt)
        add("reread", models[k], n, cnt)
        gemm(models[k], cnt * n, hw.tiles_touched(sel)[1] * n)
    return out


def _hw_values(counts: dict) -> tuple[float, float, float]:
    """``(energy_pj, h100_seconds, h100_tile_seconds)`` of integer counts
    (:func:`hardware_counts`), summed in sorted key order."""
    energy = secs = tile = 0.0
    reread_pj = sum(hw.OPERAND_BITS) * hw.SRAM_PJ_PER_BIT
    for (what, key, terms), c in sorted(counts.items()):
        m = _HW_MODELS[key]
        if what == "ip":
            energy += c * hw.inner_product_energy(m, terms)
        elif what == "reread":
            energy += c * terms * reread_pj
        elif what == "mac":
            secs += hw.pass_seconds(m, c)
        else:
            tile += hw.pass_seconds(m, c)
    return energy, secs, tile


@dataclass
class CostTally:
    """Running sums of :class:`LayerCost` per layer over batches."""

    n_layers: int
    components: np.ndarray = field(init=False)
    recomputed: np.ndarray = field(init=False)
    bits: np.ndarray = field(init=False)
    base_bits: np.ndarray = field(init=False)
    estimate_bits: np.ndarray = field(init=False)
    recompute_bits: np.ndarray = field(init=False)
    hw: list = field(init=False)

    def __post_init__(self):
        self.components = np.zeros(self.n_layers, np.int64)
        self.recomputed = np.zeros(self.n_layers, np.int64)
        self.hw = [{} for _ in range(self.n_layers)]
        for k in ("bits", "base_bits", "estimate_bits", "recompute_bits"):
            setattr(self, k, np.zeros(self.n_layers, np.float64))

    def add(self, layer: int, c: LayerCost) -> None:
        self.components[layer] += c.components
        self.recomputed[layer] += c.recomputed
        self.bits[layer] += c.bit_cost
        self.base_bits[layer] += c.base_bits
        self.estimate_bits[layer] += c.estimate_bits
        self.recompute_bits[layer] += c.recompute_bits
        tally = self.hw[layer]
        for k, v in c.hw.items():
            tally[k] = tally.get(k, 0) + v

    def hardware(self, n_samples: int) -> dict:
        """The hardware columns per input (:data:`accsim.run.hwcost.HW_COLUMNS`)."""
        n = max(int(n_samples), 1)
        vals = np.array([_hw_values(h) for h in self.hw]).reshape(-1, 3).sum(axis=0)
        return {"energy_pj": float(vals[0] / n), "h100_time_ns": float(vals[1] * 1e9 / n),
                "h100_tile_time_ns": float(vals[2] * 1e9 / n)}

    def layer_fractions(self) -> np.ndarray:
        """Recomputed fraction of each layer."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.components > 0, self.recomputed / self.components, 0.0)

    def fraction(self) -> float:
        """Recomputed fraction of all inner products over all layers."""
        tot = int(self.components.sum())
        return float(self.recomputed.sum() / tot) if tot else 0.0
