"""Layer-graph runs from a configuration (:mod:`accsim.graph.config`): validate, run
every assignment on every batch, add the random/oracle controls of the adaptive rows;
the dataset is :func:`accsim.run.experiment.run_dataset`, as for every run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accsim.graph.engine import ComputeCache
from accsim.graph.ops import LINEAR_CLASSES
from accsim.graph.runner import Assignment, Tally, exact_graph, run_graph
from accsim.run.experiment import (
    RunOptions,
    check_formats,
    make_strategy,
    resolve_model,
    select_samples,
)
from accsim.run.parallel import ordered_map
from accsim.run.strategies import CONTROLS, Control

__all__ = ["GraphPlan", "prepare_graph", "load_graph", "run_graph_plan"]


@dataclass
class GraphPlan(RunOptions):
    """Everything :func:`run_graph_plan` needs, validated."""

    graph: object
    x: np.ndarray
    y: np.ndarray
    assignments: list
    controls: dict = field(default_factory=dict)  # adaptive label -> (low, high, scale)
    batch: int = 20
    control_seeds: int = 1
    reference: bool = True


def load_graph(net, base: Path | None = None):
    """The :class:`Graph` of a ``[network]`` section."""
    from accsim.graph.config import resolve_file
    from accsim.graph.importers import build_graph, load_keras_h5, load_state_dict

    if net.format == "torch":
        return _torch_graph(net, base)
    path = resolve_file(net.file, base)
    if net.format == "h5":
        if net.layers is not None:
            raise ValueError("network.layers: an .h5 file carries its architecture; "
                             "remove 'layers'")
        try:
            return load_keras_h5(path, net.name)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            # a model_config whose values have the wrong types (the required keys are
            # checked by the importer): still bad input, never a traceback
            raise ValueError(f"{path}: malformed Keras model_config "
                             f"({type(exc).__name__}: {exc})") from None
    if net.layers is None or net.input_shape is None:
        raise ValueError(f"network: format {net.format!r} needs 'input_shape' and "
                         "'layers' (the declared architecture)")
    return build_graph(net.name, net.input_shape, net.layers, load_state_dict(path),
                       source=str(path))


def _torch_graph(net, base):
    """``format = "torch"``: the architecture comes from the module (torch.export)."""
    from accsim.graph.importers.state_dict import torch_available

    if net.layers is not None:
        raise ValueError("network.layers: a torch model carries its architecture; remove "
                         "'layers'")
    if not torch_available():
        raise ValueError("format = 'torch' needs PyTorch: pip install 'accsim[torch]'")
    from accsim.graph.importers.torch_export import load_torch_file

    graph = load_torch_file(net.file, base, net.name)
    if net.input_shape is not None and tuple(net.input_shape) != graph.input_shape:
        raise ValueError(f"network.input_shape: {list(net.input_shape)}, but the model was "
                         f"traced on inputs of shape {list(graph.input_shape)}")
    return graph


def load_inputs(inp, graph, base: Path | None = None):
    from accsim.graph.data import foolbox_images, load_npz_inputs, preprocess, registry_images

    if inp.source in ("foolbox", "registry"):
        if inp.dataset is None:
            raise ValueError(f"inputs.dataset: required for source = {inp.source!r}")
        x, y = (foolbox_images if inp.source == "foolbox" else registry_images)(inp.dataset)
    else:
        if inp.file is None:
            raise ValueError("inputs.file: required for source = 'npz'")
        from accsim.graph.config import resolve_file

        x, y = load_npz_inputs(resolve_file(inp.file, base))
    x = preprocess(x, inp.scale, inp.mean, inp.std)
    from accsim.run.validation import check_inputs

    out = graph.output_shape
    unlabelled = y is None  # an .npz without y: label-free metrics only
    if unlabelled:
        y = np.zeros(len(x), np.int64)
    problem = check_inputs(x, y, int(np.prod(out)) if len(out) == 1 else None)
    if problem:
        raise ValueError(problem)
    return graph.check_input(x), (np.full(len(x), -1, np.int64) if unlabelled else y)


def prepare_graph(cfg) -> GraphPlan:
    """Validate everything (network, inputs, models, strategies) before any work."""
    from accsim.numbers.formats import format as get_format

    r = cfg.run
    base = Path(cfg._source).parent if cfg._source != "<config>" else None
    check_formats(r, cfg.where)
    try:
        graph = load_graph(cfg.network, base)
    except ValueError as exc:
        raise ValueError(f"{cfg.where('network.file')}: {exc}") from None
    try:
        x, y = load_inputs(cfg.inputs, graph, base)
        idx = select_samples(len(x), r.samples, r.seed)
    except ValueError as exc:
        raise ValueError(f"{cfg.where('inputs')}: {exc}") from None
    built = {}

    def model(name, loc):
        if name not in built:
            m = resolve_model(name, cfg.models, cfg.where(loc))
            if name in cfg.models and dataclasses.is_dataclass(m):
                m = dataclasses.replace(m, name=name)
            built[name] = m
        return built[name]

    for name in cfg.models:
        model(name, f"models.{name}")
    present = {op.op_class for op in graph.linear_ops}
    assignments, controls = [], {}
    for i, s in enumerate(cfg.strategies):
        at = f"strategies[{i}]"
        bad = set(s.assign) - set(LINEAR_CLASSES)
        if bad:
            raise ValueError(f"{cfg.where(at + '.assign')}: unknown op classes "
                             f"{sorted(bad)}; valid: {', '.join(LINEAR_CLASSES)}")
        if s.scale is not None:
            try:
                get_format(s.scale)
            except ValueError as exc:
                raise ValueError(f"{cfg.where(at + '.scale')}: {exc}") from None
            if "matmul" in present and "matmul" not in s.assign:
                raise ValueError(f"{cfg.where(at + '.scale')}: per-tensor scaling does not "
                                 "apply to op class 'matmul' (two activations); assign it "
                                 "a model: assign = { matmul = ... }")
        fixed = {c: make_strategy("uniform", low=model(m, f"{at}.assign.{c}"))
                 for c, m in s.assign.items()}
        if s.controls and s.kind != "adaptive":
            raise ValueError(f"{cfg.where(at + '.controls')}: controls apply to adaptive "
                             "strategies")
        mains = []
        if s.kind == "uniform":
            mains.append(make_strategy("uniform", low=model(s.model, at + ".model")))
        else:
            low = high = levels = None
            if s.kind == "adaptive":
                low, high = model(s.low, at + ".low"), model(s.high, at + ".high")
            else:
                levels = [model(m, f"{at}.levels[{k}]") for k, m in enumerate(s.levels)]
            if s.budget is not None:
                for b in s.budgets():
                    mains.append(make_strategy(s.kind, low=low, high=high, budget=b,
                                               criterion=s.criterion, constant=s.constant))
            for t in (s.taus() if s.budget is None else []):
                mains.append(make_strategy(s.kind, low=low, high=high, levels=levels, tau=t,
                                           criterion=s.criterion, guard=s.guard,
                                           constant=s.constant))
        for st in mains:
            lab = s.label or st.label
            if s.label is None and s.assign:
                lab += "|" + ",".join(f"{c}={m}" for c, m in sorted(s.assign.items()))
            if s.label is None and s.scale:
                lab += f"|scaled-{s.scale}"
            strat = dict(fixed)
            for c in present - set(fixed):
                strat[c] = st
            assignments.append(Assignment(strat, lab, s.scale, present - set(fixed)))
            if s.controls:
                controls[lab] = (st.low, st.high, s.scale, dict(fixed))
    labels = [a.label for a in assignments]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ValueError(f"{cfg.where('strategies')}: duplicate labels {dup}; set 'label'")
    return GraphPlan(graph, np.asarray(x[idx]), np.asarray(y[idx]), assignments, controls,
                     batch=r.batch, seed=r.seed, record_samples=r.record_samples,
                     input_format=r.input_format, activation_format=r.activation_format,
                     models=built, config=cfg, control_seeds=r.control_seeds)


def _run(plan, assignments, acc, progress, outputs=None, workers=None, client=None):
    """Every assignment on every batch; batches run in parallel threads
    (:func:`accsim.run.parallel.ordered_map`), or on the dask cluster of ``client``, and
    are added in batch order, so the results do not depend on ``workers`` or the
    cluster."""
    names = [op.name for op in plan.graph.linear_ops]
    for a in assignments:
        acc[a.label] = Tally(names, plan.record_samples)

    def batch(start):
        xb = plan.x[start:start + plan.batch]
        yb = plan.y[start:start + plan.batch]
        cache = ComputeCache()
        # the reference of the label-free metrics: the exact network, as for the MLP
        # runs (its first ops' exact products are the rows' references, shared)
        ref = exact_graph(plan.graph, xb, seed=plan.seed, cache=cache, offset=start,
                          act_format=plan.activation_format,
                          input_format=plan.input_format)
        stats, lasts = [], []
        for a in assignments:  # each row reduced at once: its arrays freed before the next
            o, res = run_graph(plan.graph, a, xb, seed=plan.seed, cache=cache, offset=start,
                               act_format=plan.activation_format,
                               input_format=plan.input_format, reference=plan.reference)
            stats.append(acc[a.label].reduce(o, res, ref, yb, start))
            lasts.append(o[plan.graph.ops[-1].name] if outputs is not None else None)
            del o, res
        return stats, lasts

    for stats, lasts in ordered_map(batch, range(0, len(plan.x), plan.batch), workers,
                                    client=client):
        for a, st, last in zip(assignments, stats, lasts, strict=True):
            acc[a.label].merge(st)
            if outputs is not None:
                outputs.setdefault(a.label, []).append(last)
            if progress is not None:
                progress(st["B"])


def run_graph_plan(plan: GraphPlan, progress=None, outputs: dict | None = None,
                   workers: int | None = None, client=None) -> tuple[dict, float]:
    """Run all assignments, then the controls of the adaptive rows at the per-op
    recomputed fractions those rows reached. Returns ``({label: Tally},
    seconds)`` (controls labelled ``random@LABEL``, ``random-active@LABEL``,
    ``oracle@LABEL``; further seeds of the random kinds ``random@LABEL#k``); with
    ``outputs`` (a dict), the network outputs of each row are appended to
    ``outputs[label]``, one array per batch. ``workers``: batches run at once (default
    ``$ACCSIM_WORKERS`` or the CPU count; the results do not depend on it). ``client``:
    a dask.distributed client whose cluster runs the batches instead (``accsim run
    --scheduler``); same bits."""
    from accsim.numbers.seeds import derive
    from accsim.run.experiment import control_labels

    t0 = time.perf_counter()
    acc: dict = {}
    _run(plan, plan.assignments, acc, progress, outputs, workers, client)
    ctrl, unique, alias = [], [], {}
    lin = [i for i, op in enumerate(plan.graph.ops) if op.linear]
    for lab, (low, high, scale, fixed) in plan.controls.items():
        fracs = acc[lab].cost.layer_fractions()
        fr = dict(zip(lin, fracs, strict=True))
        for kind in CONTROLS:
            for k, clab in enumerate(control_labels(kind, lab, plan.control_seeds)):
                c = Control(low, high, kind, lab, label=clab, seed=derive(plan.seed, k),
                            fractions=fr)
                strat = dict(fixed)
                for op in plan.graph.linear_ops:
                    strat.setdefault(op.op_class, c)
                ctrl.append(Assignment(strat, c.label, scale, set(strat) - set(fixed)))
                # a control is a function of these alone: rows matched to adaptive rows
                # with the same per-op fractions (e.g. equal budgets) share one run
                key = (kind, derive(plan.seed, k), fracs.tobytes(), id(low), id(high), scale,
                       tuple(sorted((cl, id(s)) for cl, s in fixed.items())))
                if key in alias:
                    alias[clab] = alias[key]
                else:
                    alias[key] = clab
                    unique.append(ctrl[-1])
    if unique:
        _run(plan, unique, acc, progress, outputs, workers, client)
    for a in ctrl:
        if a.label not in acc:
            acc[a.label] = acc[alias[a.label]]
            if outputs is not None:
                outputs[a.label] = outputs[alias[a.label]]
    plan.assignments = plan.assignments + ctrl
    return acc, time.perf_counter() - t0
