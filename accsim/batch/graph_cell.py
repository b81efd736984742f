"""One sweep cell on a layer graph (an imported PyTorch, Keras or state-dict network).

A sweep names such a network in a ``[networks.NAME]`` table (:mod:`accsim.batch.netspec`);
each of its cells carries the table as a *spec* (a dict: the keys of a ``[network]``
table with absolute paths, ``inputs`` the keys of an ``[inputs]`` table, and the run
settings ``batch``, ``input_format``, ``activation_format``) and calls
:func:`evaluate_graph`, the graph counterpart of :func:`accsim.run.experiment.evaluate`.
A cell runs exactly what ``accsim run`` runs on the equivalent graph config (the graph
and inputs of :func:`accsim.graph.experiment.load_graph` /
:func:`~accsim.graph.experiment.load_inputs`, one strategy on every linear op class,
:func:`~accsim.graph.experiment.run_graph_plan`), so its results are the same bits.
"""

from __future__ import annotations

import json

import numpy as np

from accsim.graph.config import InputsSection, NetworkSection
from accsim.graph.experiment import GraphPlan, load_graph, load_inputs, run_graph_plan
from accsim.graph.runner import Assignment
from accsim.run.experiment import make_strategy, pack_bits, resolve_model, select_samples

__all__ = ["evaluate_graph", "spec_graph", "spec_inputs"]

#: Graphs and inputs loaded in this process, by the canonical JSON of their spec: the
#: cells of one network load (and torch-export) it once per process.
_LOADED: dict = {}

#: Keys of a spec that only identify it (never passed to the loaders).
_ID_KEYS = ("sha256",)


def _key(spec: dict, part: str) -> str:
    return part + json.dumps(spec, sort_keys=True, separators=(",", ":"))


def spec_graph(spec: dict):
    """The :class:`~accsim.graph.graph.Graph` of a network spec (loaded once per
    process). Raises ``ValueError`` (a bad file: the importer's message)."""
    k = _key({n: v for n, v in spec.items() if n != "inputs"}, "graph")
    if k not in _LOADED:
        net = NetworkSection(name=spec.get("name", "network"), format=spec["format"],
                             file=spec["file"], input_shape=spec.get("input_shape"),
                             layers=spec.get("layers"))
        _LOADED[k] = load_graph(net)
    return _LOADED[k]


def spec_inputs(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a network spec's inputs, checked against its graph (loaded once per
    process; ``y`` is -1 for unlabelled inputs). Raises ``ValueError``."""
    k = _key(spec, "inputs")
    if k not in _LOADED:
        inp = {n: v for n, v in spec["inputs"].items() if n not in _ID_KEYS}
        x, y = load_inputs(InputsSection(**inp), spec_graph(spec))
        _LOADED[k] = (np.asarray(x), np.asarray(y))
    return _LOADED[k]


def evaluate_graph(network: str, graph: dict, strategy: str, low, high=None,
                   levels: list | None = None, tau: float | None = None,
                   criterion: str = "predicted", guard: bool = False,
                   samples: int | None = None, seed: int = 0, *, control: str | None = None,
                   estimate: str = "low", budget: float | None = None) -> dict:
    """Run one strategy on every linear op class of a layer graph: one sweep cell.

    The arguments of :func:`accsim.run.experiment.evaluate` plus ``graph``, the network
    spec (module docstring); ``network`` is the sweep's name of it. The inputs are
    ``select_samples(N, samples, seed)`` and ``seed`` keys every random stream, exactly
    as ``accsim run`` on the graph config with ``run.seed = seed``, ``run.samples =
    samples``, ``run.batch = graph["batch"]`` and this one strategy (``controls =
    true`` for a control cell, whose row is returned): the same bits.

    Returns
    -------
    dict
        The summary of :meth:`~accsim.graph.runner.GraphAccumulator.summary`,
        ``recomputed_fraction_layer{k}`` per linear op, ``label``, ``strategy_kind``,
        ``matched_to``, ``criterion`` and the per-input results ``agree_bits`` and (for
        labelled inputs) ``correct_bits`` (:func:`accsim.run.experiment.pack_bits`).
    """
    from accsim.run.strategies import CONTROL_KINDS, CRITERIA, check_kind

    check_kind(strategy)
    control = None if control in (None, "none") else control
    if control is not None and (strategy != "adaptive" or control not in CONTROL_KINDS):
        raise ValueError(f"control {control!r} applies to adaptive strategies; valid: "
                         f"none, {', '.join(CONTROL_KINDS)}")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    g = spec_graph(graph)
    x, y = spec_inputs(graph)
    lo = resolve_model(low, where="low") if (low is not None and levels is None) else None
    hi = resolve_model(high, where="high") if high is not None else None
    lv = [resolve_model(m, where=f"levels[{k}]") for k, m in enumerate(levels)] \
        if levels is not None else None
    if strategy in ("uniform", "adaptive") and lo is None:
        raise ValueError(f"{strategy} strategy needs low (the model)")
    st = make_strategy(strategy, low=lo, high=hi, levels=lv, tau=tau, criterion=criterion,
                       guard=guard, estimate=estimate, budget=budget)
    present = {op.op_class for op in g.linear_ops}
    row = Assignment({c: st for c in present}, st.label, None, present)
    idx = select_samples(len(x), samples, seed)
    plan = GraphPlan(g, x[idx], y[idx], [row],
                     {st.label: (st.low, st.high, None, {})} if control else {},
                     batch=int(graph.get("batch", 20)), seed=seed,
                     input_format=graph.get("input_format", "binary32"),
                     activation_format=graph.get("activation_format", "binary32"))
    acc, _ = run_graph_plan(plan, workers=1)  # a sweep runs its cells in parallel
    label = f"{control}@{st.label}" if control else st.label
    res = acc[label]
    out = res.summary()
    for k, f in enumerate(res.cost.layer_fractions()):
        out[f"recomputed_fraction_layer{k}"] = float(f)
    out.update(label=label, strategy_kind=control or st.kind,
               matched_to=st.label if control else "", criterion=st.criterion)
    per = res.per_image()
    out["agree_bits"] = pack_bits(per["agree"])
    if per["correct"] is not None:
        out["correct_bits"] = pack_bits(per["correct"])
    return out
