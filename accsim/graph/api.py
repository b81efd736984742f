"""``accsim.simulate``: run a graph on accumulator models, one call.

::

    import accsim
    g = accsim.import_torch(model, x)                  # or any accsim.graph.Graph
    r = accsim.simulate(g, x, "fp16-recursive-rne")    # one model for every op class
    r = accsim.simulate(g, x, {"conv": "fp8-e4m3-blocked8",
                               "default": {"family": "recursive", "acc_format": "binary32"}})
    r = accsim.simulate(g, x, Adaptive(fp8, fp16, tau=1.0), controls=True)
    r.outputs          # numpy, the network output (first strategy row)
    r.dataset          # xarray.Dataset, the schema of `accsim run` on a graph config

The strategy rows run through the same plan, runner and dataset code as
``accsim run`` on a ``[network]`` config (:mod:`accsim.graph.experiment`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from accsim.graph.ops import LINEAR_CLASSES
from accsim.graph.runner import Assignment

__all__ = ["simulate", "Result", "make_assignment"]

#: Dataset variables that need the exact reference (dropped when ``reference=False``).
REFERENCE_VARS = ("max_error_bound_ratio", "max_rel_error", "violations",
                  "max_error_bound_ratio_layer", "violations_layer", "max_rel_error_layer",
                  "exact", "bound")


@dataclass
class Result:
    """What :func:`simulate` returns.

    Attributes
    ----------
    outputs : numpy.ndarray
        The network output of the first strategy row, ``(B,) + graph.output_shape``.
    dataset : xarray.Dataset
        Summary over ``strategy``, per op over ``(strategy, layer)``, records.
    rows : dict
        Strategy label -> output array, for every row (controls included).
    graph : Graph
    """

    outputs: np.ndarray
    dataset: object
    rows: dict
    graph: object

    def __repr__(self) -> str:
        rows = ", ".join(self.rows)
        if len(rows) > 120:
            rows = rows[:117] + "..."
        return (f"Result(outputs {self.outputs.shape}, {len(self.rows)} row(s): {rows}; "
                f"dataset variables {len(self.dataset.data_vars)})")


def _model(spec, where):
    from accsim.run.experiment import resolve_model

    if isinstance(spec, str | dict):
        return resolve_model(spec, None, where)
    if hasattr(spec, "matmul_values") or hasattr(spec, "matmul"):
        return spec
    raise ValueError(f"{where}: {spec!r} is not an accumulator model (a name, a spec "
                     "dict, a model object) or a strategy")


def _strategy(spec, where):
    from accsim.run.experiment import make_strategy
    from accsim.run.strategies import Strategy

    if isinstance(spec, Strategy):
        return spec
    return make_strategy("uniform", low=_model(spec, where))


def _is_class_mapping(spec) -> bool:
    """A mapping op class -> model (any key an op class or "default"), not a model's
    spec dict (``family``, ``acc_format``, ...)."""
    return isinstance(spec, Mapping) and bool(set(spec) & (set(LINEAR_CLASSES) | {"default"}))


def make_assignment(strategy, graph, where: str = "strategy") -> Assignment:
    """An :class:`Assignment` from one model (name, spec dict or object), a strategy
    object, a mapping op class -> model or strategy (with ``"default"``), or an
    Assignment; checked to cover every op class of ``graph``."""
    if isinstance(strategy, Assignment):
        a = strategy
    elif _is_class_mapping(strategy):
        strats = {c: _strategy(s, f"{where}[{c!r}]") for c, s in strategy.items()}
        label = ",".join(f"{c}={s.label}" for c, s in strats.items())
        a = Assignment(strats, label)
    else:
        s = _strategy(strategy, where)
        a = Assignment({"default": s}, s.label)
    present = sorted({op.op_class for op in graph.linear_ops})
    for c in present:
        a.strategy(c)
    if a.scale is not None and "matmul" in present and a.scale_for("matmul"):
        raise ValueError(f"{where}: per-tensor scaling does not apply to op class "
                         "'matmul' (two activations); leave it out of scaled_classes")
    return a


def simulate(graph, inputs, strategy, *, reference: bool = True,
             activation_format: str = "binary32", input_format: str | None = None,
             seed: int = 0, batch: int = 20, labels=None, controls: bool = False,
             record_samples: int = 0) -> Result:
    """Run ``graph`` on ``inputs`` under ``strategy``.

    Parameters
    ----------
    graph : accsim.graph.Graph
        E.g. from :func:`accsim.import_torch`.
    inputs : array_like or torch.Tensor
        ``(B,) + graph.input_shape``.
    strategy
        One accumulator model (registry name such as ``"fp16"``, spec dict such as
        ``{"family": "recursive", "acc_format": "binary64", "product": "fused"}``, or a
        model object); a mapping op class -> model or strategy, with ``"default"`` for
        the classes not named (classes: :data:`~accsim.graph.ops.LINEAR_CLASSES`); a
        strategy object (``Uniform``, ``Adaptive``, ``MultiLevel``); an
        :class:`~accsim.graph.runner.Assignment`; or a list of these (one dataset row
        each).
    reference : bool
        Compute the exact reference and the bound of every component (False: only the
        simulated values; the variables of :data:`REFERENCE_VARS` are left out). The
        exact network of the label-free metrics (agreement, logit error) is computed
        either way, once per batch.
    activation_format, input_format : str
        Every op output is rounded to ``activation_format``; the input to
        ``input_format`` (default: ``activation_format``; binary64 for a graph imported
        with integer inputs, token ids).
    seed : int
        Seeds stochastic-rounding models and the random control.
    batch : int
        Images per batch (results of deterministic models do not depend on it;
        stochastic-rounding streams are keyed by the batch's first image, as in
        ``accsim run``).
    labels : array_like, optional
        Class labels, for ``accuracy``.
    controls : bool
        For every adaptive row, add its random and oracle controls at matched cost.
    record_samples : int
        Images whose per-component records go into the dataset.

    Raises
    ------
    ValueError
        A bad model or strategy, an op class without a model, bad formats or inputs,
        before any work.
    """
    from accsim.graph.experiment import GraphPlan, run_graph_plan
    from accsim.numbers.formats import format as get_format
    from accsim.run.experiment import run_dataset
    from accsim.run.strategies import Adaptive

    if input_format is None:  # integer inputs (token ids) are indices: never rounded
        input_format = "binary64" if getattr(graph, "integer_input", False) \
            else activation_format
    for key, f in (("activation_format", activation_format), ("input_format", input_format)):
        try:
            get_format(f)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if not graph.linear_ops:
        raise ValueError(f"graph {graph.name!r} has no inner product or reduction to run "
                         "on an accumulator")
    if hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    x = graph.check_input(inputs)
    y = np.full(len(x), -1) if labels is None else np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"labels: {len(y)} labels for {len(x)} inputs")
    if int(batch) < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    specs = list(strategy) if isinstance(strategy, list) else [strategy]
    assignments, ctrl, models = [], {}, {}
    for i, spec in enumerate(specs):
        a = make_assignment(spec, graph, "strategy" if len(specs) == 1 else f"strategy[{i}]")
        assignments.append(a)
        for s in a.strategies.values():
            for m in s.models:
                models.setdefault(getattr(m, "name", str(m)), m)
        if controls:
            adapt = {c: s for c, s in a.strategies.items() if isinstance(s, Adaptive)}
            mains = {id(s): s for s in adapt.values()}
            if len(mains) == 1:
                (st,) = mains.values()
                fixed = {c: s for c, s in a.strategies.items() if c not in adapt}
                ctrl[a.label] = (st.low, st.high, a.scale, fixed)
    labels_ = [a.label for a in assignments]
    dup = sorted({lab for lab in labels_ if labels_.count(lab) > 1})
    if dup:
        raise ValueError(f"strategy: duplicate row labels {dup}; pass strategies with "
                         "distinct labels")
    if controls and not ctrl:
        raise ValueError("controls: need an adaptive strategy")
    plan = GraphPlan(graph, x, y, assignments, ctrl, batch=int(batch), seed=int(seed),
                     record_samples=int(record_samples), input_format=input_format,
                     activation_format=activation_format, models=models,
                     reference=bool(reference))
    outs: dict = {}
    acc, secs = run_graph_plan(plan, outputs=outs)
    ds = run_dataset(plan, acc, secs)
    ds.attrs["reference"] = int(bool(reference))
    if not reference:
        ds = ds.drop_vars([v for v in REFERENCE_VARS if v in ds])
    rows = {lab: np.concatenate(v, axis=0) for lab, v in outs.items()}
    return Result(rows[plan.assignments[0].label], ds, rows, graph)
