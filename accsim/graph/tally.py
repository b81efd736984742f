"""The one tally: summary statistics of one strategy (assignment) over batches.

Per linear op: cost, max error/bound ratio, bound violations, max componentwise relative
error (of that op's accumulation alone; NaN, an invalid output, propagates and is never
reported as 0), non-finite outputs, and the normwise relative error of the op's output
against the reference network (``net_rel``: what the errors of all earlier ops add up
to); with the engine's extras also vacuous bounds (``bound >= |W||x| + |b|``) and
violations of the probabilistic bound. Network level: accuracy (where labels exist),
top-1 agreement with the reference network, and the normwise relative error of the
logits. The per-component records of the first ``record_samples`` inputs are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accsim.run.cost import CostTally

__all__ = ["Tally", "GraphAccumulator", "normwise"]

#: Per-component arrays recorded for the first ``record_samples`` inputs (the engine's
#: extras only where the results carry them).
RECORDED = ("computed", "exact", "bound", "level", "kappa_v", "kappa_phi", "propagated")


def normwise(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-input ``||a - ref||_2 / ||ref||_2`` (0 where equal, inf where not finite)."""
    B = a.shape[0]
    a, ref = a.reshape(B, -1), ref.reshape(B, -1)
    with np.errstate(all="ignore"):
        num = np.sqrt(np.sum((a - ref) ** 2, axis=1))
        den = np.sqrt(np.sum(ref ** 2, axis=1))
        r = np.where(num == 0, 0.0, num / den)
    return np.where(np.isfinite(r), r, np.inf)


@dataclass
class Tally:
    """Statistics of one strategy over batches (one entry per linear op of
    ``op_names``); :meth:`add` takes the outputs and results of
    :func:`accsim.graph.runner.run_graph` and the reference network's outputs."""

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
    components: np.ndarray = None
    vacuous: np.ndarray = None
    violations_prob: np.ndarray = None
    net_rel_max: np.ndarray = None
    net_rel_sum: np.ndarray = None
    w_scale: np.ndarray = None
    info: list = None
    record: list = None
    logit_rel: list = field(default_factory=list)
    agree_img: list = field(default_factory=list)
    correct_img: list = field(default_factory=list)
    pred_img: list = field(default_factory=list)

    def __post_init__(self):
        L = len(self.op_names)
        self.cost = CostTally(L)
        for k in ("max_ratio", "max_rel", "net_rel_max", "net_rel_sum"):
            setattr(self, k, np.zeros(L))
        for k in ("violations", "nonfinite", "components", "vacuous", "violations_prob"):
            setattr(self, k, np.zeros(L, np.int64))
        self.w_scale = np.ones(L)
        self.info = [dict() for _ in range(L)]
        self.record = [[] for _ in range(L)]

    def add(self, outputs: dict, results: list, reference: dict, labels=None) -> None:
        """Add one batch: ``outputs``/``results`` of :func:`run_graph`, ``reference`` the
        reference network's outputs on the same input (same keys), ``labels`` (entries
        < 0: unlabelled) or None. The same as ``merge(reduce(...))``."""
        self.merge(self.reduce(outputs, results, reference, labels))

    def reduce(self, outputs: dict, results: list, reference: dict, labels=None,
               start: int | None = None) -> dict:
        """The statistics of one batch, without changing the tally: what :meth:`merge`
        adds. ``start`` is the index of the batch's first input (default: the inputs
        added so far), which decides the records of the first ``record_samples`` inputs.

        A worker reduces its batch as soon as each strategy has run on it, so the
        batch's per-component arrays are freed before the next strategy runs; the
        statistics (a few numbers per op, and the records) are merged in batch order.
        """
        start = self.n_samples if start is None else int(start)
        last = list(outputs)[-1]
        B = outputs[last].shape[0]
        logits, ref = outputs[last].reshape(B, -1), reference[last].reshape(B, -1)
        with np.errstate(invalid="ignore"):
            pred = np.argmax(logits, axis=1)
        st = {"B": B, "agree": pred == np.argmax(ref, axis=1), "pred": pred.astype(np.int16),
              "correct": None, "labelled": 0, "logit_rel": normwise(logits, ref), "ops": []}
        if labels is not None:
            lab = np.asarray(labels)
            ok = lab >= 0
            st["correct"] = (pred == lab) & ok
            st["labelled"] = int(ok.sum())
        take = max(0, min(self.record_samples - start, B))
        for name, r in zip(self.op_names, results, strict=True):
            nr = normwise(outputs[name], reference[name])
            o = {"cost": list(r.cost), "stats": r.stats(),
                 "net_rel_max": float(np.max(nr, initial=0)), "net_rel_sum": float(np.sum(nr)),
                 "w_scale": r.w_scale, "info": r.info, "has_abs_sum": r.abs_sum is not None,
                 "has_bound_prob": r.bound_prob is not None, "record": None}
            if take:
                # copies: a view would keep the whole batch's arrays alive
                rec = {k: getattr(r, k)[:take].copy() for k in RECORDED
                       if getattr(r, k) is not None}
                rec["x_scale"] = (np.ones(take) if r.x_scale is None
                                  else np.asarray(r.x_scale[:take], np.float64))
                o["record"] = rec
            st["ops"].append(o)
        return st

    def merge(self, st: dict) -> None:
        """Add the statistics :meth:`reduce` took of the next batch (batches in order)."""
        self.agree += int(np.sum(st["agree"]))
        self.agree_img.append(st["agree"])
        self.pred_img.append(st["pred"])
        if st["correct"] is not None:
            self.correct += int(np.sum(st["correct"]))
            self.labelled += st["labelled"]
            self.correct_img.append(st["correct"])
        self.logit_rel.append(st["logit_rel"])
        self.n_samples += st["B"]
        for li, o in enumerate(st["ops"]):
            for c in o["cost"]:
                self.cost.add(li, c)
            s = o["stats"]
            self.max_ratio[li] = max(self.max_ratio[li], s["max_ratio"])
            self.violations[li] += s["violations"]
            self.max_rel[li] = np.maximum(self.max_rel[li], s["max_rel"])
            self.nonfinite[li] += s["nonfinite"]
            self.components[li] += s["components"]
            if o["has_abs_sum"]:
                # the bound says nothing beyond |v_hat - v| <= |W||x| + |b| (or is inf)
                self.vacuous[li] += s["vacuous"]
            if o["has_bound_prob"]:
                self.violations_prob[li] += s["violations_prob"]
            self.net_rel_max[li] = max(self.net_rel_max[li], o["net_rel_max"])
            self.net_rel_sum[li] += o["net_rel_sum"]
            self.w_scale[li] = o["w_scale"]
            self.info[li] = o["info"]
            if o["record"] is not None:
                self.record[li].append(o["record"])

    def summary(self) -> dict:
        """Scalar summary (the keys :func:`accsim.run.experiment.evaluate` returns and the
        dataset's per-strategy variables)."""
        n = max(self.n_samples, 1)
        lr = np.concatenate(self.logit_rel) if self.logit_rel else np.zeros(0)
        return {
            "accuracy": self.correct / self.labelled if self.labelled else float("nan"),
            "agreement": self.agree / n if self.agree_img else float("nan"),
            "logit_rel_error_median": float(np.median(lr)) if lr.size else float("nan"),
            "logit_rel_error_max": float(np.max(lr)) if lr.size else float("nan"),
            "recomputed_fraction": self.cost.fraction(),
            "bit_cost": float(self.cost.bits.sum() / n),
            "base_bit_cost": float(self.cost.base_bits.sum() / n),
            "estimate_bit_cost": float(self.cost.estimate_bits.sum() / n),
            "recompute_bit_cost": float(self.cost.recompute_bits.sum() / n),
            "max_error_bound_ratio": float(np.max(self.max_ratio)),
            "max_rel_error": float(np.max(self.max_rel)),
            "violations": int(self.violations.sum()),
            "violations_prob": int(self.violations_prob.sum()),
            "nonfinite": int(self.nonfinite.sum()),
            "n_samples": int(self.n_samples),
            **self.cost.hardware(self.n_samples),
        }

    def per_image(self) -> dict:
        """Per-input ``logit_rel_error`` (``||logits - ref||_2 / ||ref||_2``), ``agree``
        (top-1 with the reference network), ``pred`` and ``correct`` (None without
        labels)."""
        cat = np.concatenate
        return {"logit_rel_error": cat(self.logit_rel) if self.logit_rel else np.zeros(0),
                "agree": cat(self.agree_img) if self.agree_img else np.zeros(0, bool),
                "pred": cat(self.pred_img) if self.pred_img else np.zeros(0, np.int16),
                "correct": cat(self.correct_img) if self.correct_img else None}

    def records(self) -> list:
        """Per op, a dict of arrays ``(record_samples, components)`` (batches
        concatenated; empty for no record)."""
        return [{k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
                if parts else {} for parts in self.record]


#: The name the graph front ends used before the tally was shared.
GraphAccumulator = Tally
