"""Layer-graph runs from a configuration (:mod:`accsim.graph.config`): validate, run
every assignment on every batch, add the random/oracle controls of the adaptive rows,
and store an :class:`xarray.Dataset`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accsim.graph.controls import CONTROL_CLASSES
from accsim.graph.engine import ComputeCache
from accsim.graph.ops import LINEAR_CLASSES
from accsim.graph.runner import Assignment, Tally, run_graph
from accsim.run.experiment import make_strategy, resolve_model, select_samples
from accsim.run.parallel import ordered_map

__all__ = ["GraphPlan", "prepare_graph", "load_graph", "run_graph_plan", "graph_dataset",
           "SUMMARY_KEYS"]

SUMMARY_KEYS = ("accuracy", "agreement", "logit_rel_error_median", "logit_rel_error_max",
                "recomputed_fraction", "bit_cost", "max_error_bound_ratio", "max_rel_error",
                "violations", "nonfinite", "n_samples", "energy_pj", "h100_time_ns",
                "h100_tile_time_ns")


@dataclass
class GraphPlan:
    graph: object
    x: np.ndarray
    y: np.ndarray
    assignments: list
    controls: dict = field(default_factory=dict)  # adaptive label -> (low, high, scale)
    batch: int = 20
    seed: int = 0
    record_samples: int = 0
    input_format: str = "binary32"
    activation_format: str = "binary32"
    models: dict = field(default_factory=dict)
    config: object = None
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
    for key in ("input_format", "activation_format"):
        try:
            get_format(getattr(r, key))
        except ValueError as exc:
            raise ValueError(f"{cfg.where(f'run.{key}')}: {exc}") from None
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


def _run(plan, assignments, acc, progress, outputs=None, workers=None):
    """Every assignment on every batch; batches run in parallel threads
    (:func:`accsim.run.parallel.ordered_map`) and are added in batch order, so the
    results do not depend on ``workers``."""
    from accsim import round as _round

    names = [op.name for op in plan.graph.linear_ops]
    for a in assignments:
        acc[a.label] = Tally(names, plan.record_samples)

    def batch(start):
        xb = plan.x[start:start + plan.batch]
        yb = plan.y[start:start + plan.batch]
        ref = plan.graph.forward(_round(plan.graph.check_input(xb), plan.input_format),
                                 return_all=True)
        cache = ComputeCache()
        stats, lasts = [], []
        for a in assignments:  # each row reduced at once: its arrays freed before the next
            o, res = run_graph(plan.graph, a, xb, seed=plan.seed, cache=cache, offset=start,
                               act_format=plan.activation_format,
                               input_format=plan.input_format, reference=plan.reference)
            stats.append(acc[a.label].reduce(o, res, ref, yb, start))
            lasts.append(o[plan.graph.ops[-1].name] if outputs is not None else None)
            del o, res
        return stats, lasts

    for stats, lasts in ordered_map(batch, range(0, len(plan.x), plan.batch), workers):
        for a, st, last in zip(assignments, stats, lasts, strict=True):
            acc[a.label].merge(st)
            if outputs is not None:
                outputs.setdefault(a.label, []).append(last)
            if progress is not None:
                progress(st["B"])


def run_graph_plan(plan: GraphPlan, progress=None, outputs: dict | None = None,
                   workers: int | None = None                   ) -> tuple[dict, float]:
    """Run all assignments, then the controls of the adaptive rows at the per-op
    recomputed fractions those rows reached. Returns ``({label: Tally},
    seconds)`` (controls labelled ``random@LABEL``, ``random-active@LABEL``,
    ``oracle@LABEL``; further seeds of the random kinds ``random@LABEL#k``); with
    ``outputs`` (a dict), the network outputs of each row are appended to
    ``outputs[label]``, one array per batch. ``workers``: batches run at once (default
    ``$ACCSIM_WORKERS`` or the CPU count; the results do not depend on it)."""
    from accsim.numbers.seeds import derive
    from accsim.run.experiment import control_labels

    t0 = time.perf_counter()
    acc: dict = {}
    _run(plan, plan.assignments, acc, progress, outputs, workers)
    ctrl, unique, alias = [], [], {}
    lin = [i for i, op in enumerate(plan.graph.ops) if op.linear]
    for lab, (low, high, scale, fixed) in plan.controls.items():
        fracs = acc[lab].cost.layer_fractions()
        fr = dict(zip(lin, fracs, strict=True))
        for kind, cls in CONTROL_CLASSES.items():
            for k, clab in enumerate(control_labels(kind, lab, plan.control_seeds)):
                c = cls(low, high, fr, label=clab, seed=derive(plan.seed, k))
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
        _run(plan, unique, acc, progress, outputs, workers)
    for a in ctrl:
        if a.label not in acc:
            acc[a.label] = acc[alias[a.label]]
            if outputs is not None:
                outputs[a.label] = outputs[alias[a.label]]
    plan.assignments = plan.assignments + ctrl
    return acc, time.perf_counter() - t0


def graph_dataset(plan: GraphPlan, acc: dict, seconds: float | None = None):
    """Summary over ``strategy``, per-op over ``(strategy, layer)``, and the records of
    the first ``record_samples`` images over ``(strategy, component)``."""
    import xarray as xr

    labels = [a.label for a in plan.assignments]
    ops = plan.graph.linear_ops
    sums = {lab: acc[lab].summary() for lab in labels}
    data = {k: ("strategy", np.array([sums[lab][k] for lab in labels])) for k in SUMMARY_KEYS}
    per = {
        "recomputed_fraction_layer": lambda a: a.cost.layer_fractions(),
        "bit_cost_layer": lambda a: a.cost.bits / max(a.n_samples, 1),
        "max_error_bound_ratio_layer": lambda a: a.max_ratio,
        "violations_layer": lambda a: a.violations,
        "max_rel_error_layer": lambda a: a.max_rel,
        "net_rel_error_max_layer": lambda a: a.net_rel_max,
        "net_rel_error_mean_layer": lambda a: a.net_rel_sum / max(a.n_samples, 1),
        "weight_scale_layer": lambda a: a.w_scale,
    }
    for k, f in per.items():
        data[k] = (("strategy", "layer"), np.array([f(acc[lab]) for lab in labels]))
    data["strategy_kind"] = ("strategy", np.array([a.main.kind for a in plan.assignments]))
    data["criterion"] = ("strategy", np.array([a.main.criterion for a in plan.assignments]))
    data["tau"] = ("strategy", np.array([float(getattr(a.main, "tau", math.nan))
                                         for a in plan.assignments]))
    data["scale_format"] = ("strategy", np.array([a.scale or "" for a in plan.assignments]))
    data["budget"] = ("strategy", np.array([
        math.nan if getattr(a.main, "budget", None) is None else float(a.main.budget)
        for a in plan.assignments]))
    matched = {lab: "" for lab in labels}
    for lab in labels:
        if "@" in lab and lab.split("@", 1)[0] in CONTROL_CLASSES:
            matched[lab] = lab.split("@", 1)[1].split("#", 1)[0]
    data["matched_to"] = ("strategy", np.array([matched[lab] for lab in labels]))
    per_img = {lab: acc[lab].per_image() for lab in labels}
    if labels and per_img[labels[0]]["logit_rel_error"].size:
        data["logit_rel_error"] = (("strategy", "image"), np.stack(
            [per_img[lab]["logit_rel_error"] for lab in labels]))
        data["agree"] = (("strategy", "image"), np.stack(
            [per_img[lab]["agree"] for lab in labels]))
    data["models"] = ("strategy", np.array([
        ";".join(f"{c}:{','.join(m.name for m in s.models)}"
                 for c, s in sorted(a.strategies.items())) for a in plan.assignments]))
    coords = {"strategy": labels, "layer": [op.name for op in ops],
              "layer_class": ("layer", [op.op_class for op in ops]),
              "layer_K": ("layer", [op.inner_length for op in ops]),
              "layer_macs": ("layer", [op.macs() for op in ops])}
    recs = {lab: acc[lab].record for lab in labels}
    if plan.record_samples and labels and recs[labels[0]][0]:
        lay, feat, samp = [], [], []
        first = recs[labels[0]]
        for li, parts in enumerate(first):
            r = np.concatenate([p["computed"] for p in parts], axis=0)  # (S, comp)
            ns, nf = r.shape
            lay.append(np.full(ns * nf, li))
            samp.append(np.repeat(np.arange(ns), nf))
            feat.append(np.tile(np.arange(nf), ns))
        coords["component_layer"] = ("component", np.concatenate(lay))
        coords["component_feature"] = ("component", np.concatenate(feat))
        coords["component_sample"] = ("component", np.concatenate(samp))
        for k in ("computed", "exact", "bound", "level"):
            data[k] = (("strategy", "component"), np.stack([
                np.concatenate([np.concatenate([p[k] for p in parts], axis=0).ravel()
                                for parts in recs[lab]]) for lab in labels]))
        data["input_scale"] = (("strategy", "layer", "sample"), np.stack([
            np.stack([np.concatenate([p["x_scale"] for p in parts]) for parts in recs[lab]])
            for lab in labels]))
    cmp_attrs = {}
    if "logit_rel_error" in data:
        from accsim.analysis.stats import comparison_family, family_variables

        rows = [{"label": lab, "kind": a.main.kind, "matched_to": matched[lab],
                 "cost": sums[lab]["bit_cost"], "error": per_img[lab]["logit_rel_error"],
                 "agree": per_img[lab]["agree"], "correct": per_img[lab]["correct"]}
                for lab, a in zip(labels, plan.assignments, strict=True)]
        cmp_vars, cmp_attrs = family_variables(comparison_family(rows))
        data.update(cmp_vars)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(cmp_attrs)
    from accsim.run.hwcost import HW_COLUMNS

    for k, (ln, un) in HW_COLUMNS.items():
        ds[k].attrs.update(long_name=ln, units=un)
    ds.attrs.update({
        "network": plan.graph.name, "n_samples": int(len(plan.x)), "seed": int(plan.seed),
        "input_format": plan.input_format, "activation_format": plan.activation_format,
        "macs_per_image": int(plan.graph.macs()),
        "paper": "El Arar, Filip, Mary, Riccietti, arXiv:2503.15568 (2025)",
        "bound_kind": "deterministic",
        "scaling": "per-tensor power-of-two: weights per op, activations per image",
    })
    if seconds is not None:
        ds.attrs["run_seconds"] = float(seconds)
        total = plan.graph.macs() * len(plan.x) * len(labels)
        ds.attrs["simulated_macs_per_second"] = float(total / seconds) if seconds else 0.0
    from accsim.run.attributes import annotate, models_attr

    ds.attrs["model_descriptions"] = models_attr(plan.models)
    return annotate(ds)
