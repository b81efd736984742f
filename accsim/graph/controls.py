"""Controls for the adaptive strategy at matched cost.

:class:`RandomControl` recomputes a uniformly random subset of each op's components,
:class:`RandomActiveControl` a uniformly random subset of its ACTIVE components (those
whose recomputation can change the op's output,
:func:`accsim.run.strategies.active_mask`; it pays the estimation pass on ReLU ops, as
it needs ``fl_low(|W||x| + |b|)``, unless its band is vacuous), and
:class:`OracleControl` the components with the largest actual error of the low pass
(known only with the exact reference: an unattainable best case). Both recompute, per
op, the same fraction of components as the adaptive run they control (measured over the
whole run), so the comparison is at matched recomputation cost; neither runs the
estimation pass (their bit cost is lower than the adaptive run's by that pass, reported
in ``bit_cost``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.run.cost import layer_cost
from accsim.run.strategies import (
    Decision,
    Strategy,
    active_mask,
    needs_estimate,
    random_active_choice,
)

__all__ = ["RandomControl", "RandomActiveControl", "OracleControl", "CONTROL_CLASSES"]


def _count(fraction: float, size: int) -> int:
    return int(min(size, max(0, round(fraction * size))))


@dataclass
class _Control(Strategy):
    low: object
    high: object
    fractions: dict = field(default_factory=dict)  # op index -> fraction
    label: str = ""
    seed: int = 0

    @property
    def models(self):
        return [self.low, self.high]

    def describe(self):
        d = super().describe()
        d.update(seed=self.seed)
        return d

    def _mask(self, ctx, v_low):  # pragma: no cover - abstract
        raise NotImplementedError

    def _estimates(self, ctx) -> bool:
        return False

    def layer(self, ctx):
        v_low = ctx.compute(self.low)
        mask = self._mask(ctx, v_low)
        v = v_low.copy()
        if mask.any():
            v[mask] = ctx.compute_selected(self.high, mask)[mask]
        level = mask.astype(np.int8)
        return Decision(v, level, self.models,
                        layer_cost(self.models, level, ctx.n,
                                   estimate=self._estimates(ctx)),
                        {"criterion": self.criterion})


@dataclass
class RandomControl(_Control):
    """Recompute ``round(f * size)`` components drawn without replacement, seeded by
    ``seed`` and the op/batch (``ctx.seed``)."""

    kind = "random"
    criterion = "random"

    def _mask(self, ctx, v_low):
        k = _count(self.fractions.get(ctx.index[0], 0.0), v_low.size)
        rng = np.random.default_rng([self.seed, ctx.seed % 2**63, *ctx.index[1]])
        mask = np.zeros(v_low.size, bool)
        mask[rng.choice(v_low.size, size=k, replace=False)] = True
        return mask.reshape(v_low.shape)


@dataclass
class RandomActiveControl(_Control):
    """Recompute ``round(f * size)`` components drawn without replacement among the
    active ones (all of them, plus a uniform choice of the rest, if there are fewer),
    seeded by ``seed`` and the op/batch."""

    kind = "random-active"
    criterion = "random-active"

    def _estimates(self, ctx) -> bool:
        return needs_estimate(ctx, self.low)

    def _mask(self, ctx, v_low):
        k = _count(self.fractions.get(ctx.index[0], 0.0), v_low.size)
        rng = np.random.default_rng([self.seed, ctx.seed % 2**63, *ctx.index[1], 0x41435456])
        mask = np.zeros(v_low.size, bool)
        mask[random_active_choice(rng, active_mask(ctx, self.low, v_low).ravel(), k)] = True
        return mask.reshape(v_low.shape)


@dataclass
class OracleControl(_Control):
    """Recompute the ``round(f * size)`` components with the largest error of the
    layer OUTPUT, ``|phi(v_low) - phi(v_exact)|`` (ties broken by index): the
    pre-activation error of a component that ReLU clips on both sides does not matter."""

    kind = "oracle"
    criterion = "oracle"

    def _mask(self, ctx, v_low):
        k = _count(self.fractions.get(ctx.index[0], 0.0), v_low.size)
        from accsim.graph.ops import apply_activation

        with np.errstate(invalid="ignore", over="ignore"):
            act = ctx.layer.activation
            err = np.abs(apply_activation(act, v_low) - apply_activation(act, ctx.exact()))
            err = err.ravel()
        err = np.where(np.isnan(err), np.inf, err)
        mask = np.zeros(v_low.size, bool)
        if k:
            mask[np.argsort(-err, kind="stable")[:k]] = True
        return mask.reshape(v_low.shape)


#: Control kind -> class (the graph path's registration of
#: :data:`accsim.run.strategies.CONTROL_KINDS`).
CONTROL_CLASSES = {"random": RandomControl, "random-active": RandomActiveControl,
                   "oracle": OracleControl}
