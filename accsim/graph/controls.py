"""Controls for the adaptive strategy at matched cost.

:class:`RandomControl` recomputes a uniformly random subset of each op's components and
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
from accsim.run.strategies import Decision, Strategy

__all__ = ["RandomControl", "OracleControl"]


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

    def layer(self, ctx):
        v_low = ctx.compute(self.low)
        mask = self._mask(ctx, v_low)
        v = v_low.copy()
        if mask.any():
            v[mask] = ctx.compute_selected(self.high, mask)[mask]
        level = mask.astype(np.int8)
        return Decision(v, level, self.models,
                        layer_cost(self.models, level, ctx.n, estimate=False),
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
