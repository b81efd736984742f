"""Experiments: run strategies on a network and test split; the ``evaluate`` entry point.

:func:`evaluate` is the one-cell API the batch sweep calls; :func:`prepare` +
:func:`run_plan` + :func:`run_dataset` are what ``accsim run`` does with a configuration
(:mod:`accsim.run.config`). All validation happens in :func:`prepare`, before any work.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from accsim.graph.engine import PROB_FAILURE, ComputeCache, check_bias
from accsim.graph.from_network import graph_from_network
from accsim.graph.runner import Assignment, Tally, exact_graph, run_graph
from accsim.run.config import RunConfig, format_tau
from accsim.run.criteria import check_criterion, get_criterion
from accsim.run.parallel import ordered_map
from accsim.run.strategies import (
    CONTROL_KINDS,
    Adaptive,
    Control,
    MultiLevel,
    Strategy,
    Uniform,
    check_kind,
)

__all__ = ["evaluate", "pack_bits", "unpack_bits", "prepare", "run_plan", "run_dataset", "Plan",
           "RunOptions",
           "resolve_model",
           "select_samples", "SUMMARY_KEYS", "EXTRA_KEYS", "GRAPH_SUMMARY_KEYS",
           "default_reference"]

SUMMARY_KEYS = ("accuracy", "recomputed_fraction", "bit_cost", "max_error_bound_ratio",
                "max_rel_error", "n_samples", "violations", "nonfinite")
#: Further per-strategy summaries of :meth:`accsim.graph.tally.Tally.summary` stored by
#: :func:`run_dataset` (cost parts, label-free metrics, probabilistic-bound check).
EXTRA_KEYS = ("base_bit_cost", "estimate_bit_cost", "recompute_bit_cost", "agreement",
              "logit_rel_error_median", "logit_rel_error_max", "violations_prob",
              "energy_pj", "h100_time_ns", "h100_tile_time_ns")


def resolve_model(spec, models: dict | None = None, where: str = "model"):
    """An accumulator model from a ``[models]`` key, a registry name or a spec dict.

    Raises
    ------
    ValueError
        Naming ``where`` and the bad spec (the factory's message lists valid choices).
    """
    from accsim.accumulators.base import Accumulator

    if isinstance(spec, Accumulator):
        return spec
    models = models or {}
    if isinstance(spec, str) and spec in models:
        spec = models[spec]
    from accsim.run.formatspec import materialize
    from hwmodels import resolve as build_model

    try:
        return build_model(materialize(dict(spec)) if isinstance(spec, dict) else spec)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{where}: cannot build accumulator model {spec!r}: {exc}") from None


def select_samples(n_total: int, samples: int | None, seed: int) -> np.ndarray:
    """Indices of the inputs to run: all (``samples`` None or 0), else a deterministic
    sorted subset of ``samples`` drawn with ``numpy.random.default_rng(seed)``.

    Raises
    ------
    ValueError
        ``samples`` negative or larger than ``n_total`` (the test split).
    """
    if samples is not None and (int(samples) != samples or samples < 0):
        raise ValueError(f"samples must be an integer >= 0, got {samples!r}")
    if samples is not None and samples > n_total:
        raise ValueError(f"samples = {samples} exceeds the test split ({n_total} inputs); "
                         "use samples = 0 for the whole split")
    if not samples or samples == n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=int(samples), replace=False))


def load_network(name: str, activations: list | None = None):
    """``networks.load(name)``, with each layer's activation replaced if given."""
    import networks

    net = networks.load(name)
    if activations is not None:
        if len(activations) != len(net.layers):
            raise ValueError(f"activations: {name} has {len(net.layers)} layers, got "
                             f"{len(activations)} activations")
        for a in activations:
            if a not in networks.ACTIVATIONS:
                raise ValueError(f"activations: unknown activation {a!r}; valid: "
                                 f"{', '.join(networks.ACTIVATIONS)}")
        layers = [dataclasses.replace(lay, activation=a)
                  for lay, a in zip(net.layers, activations, strict=True)]
        net = dataclasses.replace(net, layers=layers)
    return net


def load_inputs(path: str | None, n_in: int, dataset: str = "digits"):
    """Test inputs and labels: the test split of ``dataset`` (:func:`networks.load_dataset`;
    ``"digits"`` needs no download), or an ``.npz`` with ``x``, ``y``."""
    if path is None:
        import networks

        try:
            x, y = networks.load_dataset(dataset, "test")
        except FileNotFoundError as exc:
            raise ValueError(f"inputs: {exc}") from None
    else:
        from accsim.run.inputs import read_npz

        try:
            x, y = read_npz(path, labels_required=True)
        except ValueError as exc:
            raise ValueError(f"inputs: {exc}") from None
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"inputs: expected shape (N, {n_in}), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"inputs: labels have shape {y.shape}, expected ({x.shape[0]},)")
    if x.dtype.kind != "f":
        raise ValueError(f"inputs: x must be a float array, got dtype {x.dtype}")
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        bad_y = y if y.dtype.kind not in "iu" else y[(y < 0) | (y > 9)]
        raise ValueError(f"inputs: labels must be integers 0..9 (the digit classes), got "
                         f"dtype {y.dtype}, e.g. {bad_y.ravel()[:3].tolist()}")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"inputs: non-finite value x[{i}, {j}] = {x[i, j]} "
                         f"({int(bad.sum())} in total)")
    return x, y


def make_strategy(kind: str, *, low=None, high=None, levels=None, tau=None,
                  criterion: str = "predicted", guard: bool = False,
                  constant: str = "auto", label: str | None = None, estimate: str = "low",
                  zero: str = "keep", output_kappa: str | None = None,
                  budget: float | None = None) -> Strategy:
    """A :class:`Strategy` from already-built models, with the standard label
    (``budget``: budgeted adaptive selection, label ``CRITERION-budget=F``)."""
    check_kind(kind)
    if budget is not None and kind != "adaptive":
        raise ValueError(f"budget applies to adaptive strategies, not {kind!r}")
    if kind == "uniform":
        return Uniform(low, label=label or f"uniform-{low.name}")
    if budget is not None:
        if tau is not None:
            raise ValueError("give either tau or budget, not both")
        if high is None:
            raise ValueError("adaptive strategy needs a high model")
        cs = "+cs" if estimate == "cs" and get_criterion(criterion).estimate else ""
        return Adaptive(low, high, math.nan, criterion=criterion, guard=guard,
                        constant=constant, estimate=estimate, zero=zero,
                        output_kappa=output_kappa, budget=float(budget),
                        label=label or f"{criterion}-budget={float(budget):g}{cs}")
    if tau is None:
        raise ValueError(f"strategy {kind!r} needs tau")
    tau = float(tau)
    g = "+guard" if guard else ""
    if kind == "adaptive":
        if high is None:
            raise ValueError("adaptive strategy needs a high model")
        lab = get_criterion(criterion).label + format_tau(tau)
        if estimate == "cs" and (get_criterion(criterion).estimate or guard):
            g += "+cs"
        return Adaptive(low, high, tau, criterion=criterion, guard=guard, constant=constant,
                        estimate=estimate, zero=zero, output_kappa=output_kappa,
                        label=label or lab + g)
    if kind == "multilevel":
        if not levels or len(levels) < 2:
            raise ValueError("multilevel strategy needs levels (at least 2 models)")
        if criterion != "predicted":
            raise ValueError("multilevel strategy supports only criterion='predicted'")
        return MultiLevel(list(levels), tau, guard=guard, constant=constant,
                          label=label or f"multilevel-tau={format_tau(tau)}{g}")
    raise AssertionError(kind)  # pragma: no cover - check_kind covers every kind


def control_labels(kind: str, matched: str, seeds: int) -> list[str]:
    """Labels of the controls of kind ``kind`` matched to ``matched``: ``KIND@MATCHED``,
    then ``KIND@MATCHED#s`` for the further seeds of a random kind (the oracle is
    deterministic: one row)."""
    n = 1 if kind == "oracle" else int(seeds)
    return [f"{kind}@{matched}" + (f"#{k}" if k else "") for k in range(n)]


def make_controls(st, kinds, seeds: int = 1) -> list:
    """The controls of adaptive strategy ``st`` (:class:`Control`), ``seeds`` replicates
    of each random kind (control seed 0 gives the same bits as before replicates
    existed)."""
    out = []
    for c in kinds:
        for k, lab in enumerate(control_labels(c, st.label, seeds)):
            out.append(Control(st.models[0], st.models[-1], c, st.label, label=lab, seed=k))
    return out


@dataclass(kw_only=True)
class RunOptions:
    """What every network run's plan holds besides its network, inputs and rows (the
    keyword fields of :class:`Plan` and :class:`accsim.graph.experiment.GraphPlan`):
    the seed of every random stream, the inputs whose components are recorded, the
    input and activation formats, the named models and the configuration it came from."""

    seed: int = 0
    record_samples: int = 0
    input_format: str = "binary32"
    activation_format: str = "binary32"
    models: dict = field(default_factory=dict)
    config: object = None


@dataclass
class Plan(RunOptions):
    """Everything :func:`run_plan` needs, validated."""

    network: object
    x: np.ndarray
    y: np.ndarray
    strategies: list
    batch: int = 256
    dataset: str = "digits"
    reference: str | None = None
    bootstrap: int = 10000
    bias: str = "initial"


def check_formats(run, where) -> None:
    """The ``input_format`` and ``activation_format`` of a ``[run]`` section name
    formats (:func:`accsim.numbers.formats.format`).

    Raises
    ------
    ValueError
        Naming the key as ``where("run.KEY")`` says (the config file and line).
    """
    from accsim.numbers.formats import format as get_format

    for key in ("input_format", "activation_format"):
        try:
            get_format(getattr(run, key))
        except ValueError as exc:
            raise ValueError(f"{where(f'run.{key}')}: {exc}") from None


def prepare(cfg: RunConfig) -> Plan:
    """Validate a configuration fully (network, models, data) and build the plan."""
    r = cfg.run

    def where(key):
        return cfg.where(key) if hasattr(cfg, "where") else key
    check_formats(r, where)
    try:
        net = load_network(r.network, r.activations)
    except ValueError as exc:
        key = "run.activations" if str(exc).startswith("activations:") else "run.network"
        raise ValueError(f"{where(key)}: {str(exc).removeprefix('activations: ')}") from None
    built = {}
    import networks

    dataset = r.dataset or networks.registry.dataset_of(r.network)
    if r.inputs is None and dataset != networks.registry.dataset_of(r.network):
        raise ValueError(f"{where('run.dataset')}: network {r.network!r} was trained on "
                         f"{networks.registry.dataset_of(r.network)!r}, not {dataset!r}")

    def model(name, loc):
        if name not in built:
            m = resolve_model(name, cfg.models, where(loc))
            if name in cfg.models:
                m = dataclasses.replace(m, name=name) if hasattr(m, "name") else m
            built[name] = m
        return built[name]

    for name in cfg.models:
        model(name, f"models.{name}")
    strategies = []
    for i, s in enumerate(cfg.strategies):
        at = f"strategies[{i}]"
        if s.kind == "uniform":
            strategies.append(make_strategy("uniform", low=model(s.model, at + ".model"),
                                            label=s.label))
            continue
        low = high = levels = None
        if s.kind == "adaptive":
            low, high = model(s.low, at + ".low"), model(s.high, at + ".high")
        else:
            levels = [model(m, f"{at}.levels[{k}]") for k, m in enumerate(s.levels)]
        points = [("budget", b) for b in s.budgets()] if s.budget is not None else \
            [("tau", t) for t in s.taus()]
        for what, t in points:
            st = make_strategy(s.kind, low=low, high=high, levels=levels,
                               tau=t if what == "tau" else None,
                               budget=t if what == "budget" else None,
                               criterion=s.criterion, guard=s.guard, constant=s.constant,
                               label=(s.label.replace("{tau}", format_tau(t))
                                      if s.label else s.label),
                               estimate=s.estimate, zero=s.zero,
                               output_kappa=s.output_kappa)
            strategies.append(st)
            strategies.extend(make_controls(st, s.controls, r.control_seeds))
    labels = [s.label for s in strategies]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ValueError(f"{where('strategies')}: duplicate labels {dup}; set 'label' to "
                         "tell them apart")
    ref = r.reference
    if ref is not None and ref not in labels:
        raise ValueError(f"{where('run.reference')}: no strategy labelled {ref!r}; labels: "
                         f"{', '.join(labels)}")
    try:
        x, y = load_inputs(r.inputs, net.input_size, dataset)
        x = networks.registry.normalize(r.network, x)
        idx = select_samples(len(x), r.samples, r.seed)
    except ValueError as exc:
        key = "run.samples" if str(exc).startswith("samples") else "run.inputs"
        raise ValueError(f"{where(key)}: {str(exc).removeprefix('inputs: ')}") from None
    return Plan(net, np.asarray(x[idx]), np.asarray(y[idx]), strategies, batch=r.batch,
                seed=r.seed, record_samples=r.record_samples, input_format=r.input_format,
                activation_format=r.activation_format, models=built, config=cfg,
                dataset=dataset, reference=ref, bootstrap=r.bootstrap, bias=r.bias)


def run_plan(plan: Plan, progress=None, *, keep: dict | None = None,
             workers: int | None = None, client=None) -> tuple[dict, float]:
    """Run every strategy on every batch; returns ``({label: Tally}, seconds)``.

    The network runs as its graph (:func:`accsim.graph.from_network.graph_from_network`)
    through :func:`accsim.graph.runner.run_graph` with the engine's extras (condition
    numbers, probabilistic bound, propagated estimate); the reference of the label-free
    metrics is the exact network (:func:`accsim.graph.runner.exact_graph`). Batches are
    the outer loop so that all strategies share the batch's cached passes
    (the first layer's input is the same for every strategy). ``progress(k)`` is called
    after each (batch, strategy) with the number of inputs just processed.

    ``keep``: a dict carried between calls on the SAME network, inputs, seed and bias
    mode (the caller checks that): the first layer's passes and the exact network's
    logits of every batch are kept in it and reused (they depend only on those), so a
    sweep's cells on one network do not recompute them. Results are the same bits.

    ``workers``: batches run at once (:func:`accsim.run.parallel.ordered_map`; default
    ``$ACCSIM_WORKERS`` or the CPU count); results do not depend on it. ``client``: a
    dask.distributed client whose cluster runs the batches instead (``accsim run
    --scheduler``); same bits.
    """
    check_bias(plan.bias)
    t0 = time.perf_counter()
    graph = graph_from_network(plan.network)
    names = [op.name for op in graph.linear_ops]
    acc = {s.label: Tally(names, plan.record_samples) for s in plan.strategies}
    assign = [Assignment({"default": s}, s.label) for s in plan.strategies]
    N = len(plan.x)
    fmt = {"act_format": plan.activation_format, "input_format": plan.input_format}

    def batch(item):
        start, kept = item
        xb = plan.x[start:start + plan.batch]
        cache = ComputeCache()
        if kept is not None:
            cache.update(kept[0])
            ref = kept[1]
        else:
            ref = exact_graph(graph, xb, cache=cache, offset=start, seed=plan.seed, **fmt)
        yb, ref_f, stats = plan.y[start:start + plan.batch], _feature_major(ref), []
        for s, a in zip(plan.strategies, assign, strict=True):  # reduced row by row
            o, res = run_graph(graph, a, xb, seed=plan.seed, cache=cache, offset=start,
                               bias=plan.bias, extras=True, **fmt)
            stats.append(acc[s.label].reduce(_feature_major(o), res, ref_f, yb, start))
            del o, res
        first = cache.of_op(0) if keep is not None else None
        return start, len(xb), ref, stats, first

    items = [(start, None if keep is None else keep.get(start))
             for start in range(0, N, plan.batch)]
    # batches run in parallel threads (accsim.run.parallel) and are added in batch order
    for start, n, ref, stats, first in ordered_map(batch, items, workers,
                                                     client=client):
        for s, st in zip(plan.strategies, stats, strict=True):
            acc[s.label].merge(st)
            if progress is not None:
                progress(n)
        if keep is not None:
            keep[start] = (first, ref)
    return acc, time.perf_counter() - t0


def _feature_major(vals: dict) -> dict:
    """``vals`` with the logits (the last entry) stored feature-major, as the network
    runs before the one engine kept them (``(features, batch)``, transposed): numpy then
    sums each input's squared logit errors in index order rather than pairwise, so
    ``logit_rel_error`` keeps its bits (issue 18). Same values, other memory order."""
    last = list(vals)[-1]
    return {**vals, last: np.asfortranarray(vals[last])}


def evaluate(network: str, strategy: str, low, high=None, levels: list | None = None,
             tau: float | None = None, criterion: str = "predicted", guard: bool = False,
             samples: int | None = None, seed: int = 0, *, constant: str = "auto",
             batch: int = 256, control: str | None = None, estimate: str = "low",
             budget: float | None = None) -> dict:
    """Run one strategy on the network's test split (the data set it was trained on:
    digits, MNIST or Fashion-MNIST); the batch sweep's one-cell API.

    Parameters
    ----------
    network : str
        A name of :func:`networks.available`.
    strategy : {"uniform", "adaptive", "multilevel"}
    low : str or dict
        Model spec (registry name or :func:`accsim.accumulators.factory.build_model`
        dict): the uniform model, or the low accumulator.
    high : str or dict, optional
        The high accumulator (adaptive).
    levels : list of (str or dict), optional
        Multi-level models ordered by cost (``low`` is ignored if given).
    tau : float, optional
        Tolerance (predicted error, or the authors' ``tol``).
    criterion : {"predicted", "authors", "absolute"}
    guard : bool
        Guard band around zero.
    samples : int, optional
        Number of test images (None: whole split; else a deterministic subset).
    seed : int
        Subset selection and stochastic-rounding seed.
    constant : {"auto", "deterministic", "probabilistic"}
        Bound constant of the predicted criterion (see :mod:`accsim.run.strategies`).
    batch : int
        Inputs per executor batch (does not change results of deterministic models).
    control : {None, "none", "random", "oracle"}
        Return the CONTROL of the adaptive strategy instead of the strategy: the
        adaptive strategy runs first on every batch and the control recomputes the same
        number of components per layer and batch (:class:`~accsim.run.strategies.Control`).
    estimate : {"low", "cs"}
        Estimate of ``|W||x| + |b|`` of the adaptive strategy (:mod:`accsim.run.cost`).
    budget : float, optional
        Budgeted selection of an adaptive strategy instead of ``tau`` (as the run
        configs' ``budget``): recompute the top fraction ``budget`` of each layer's
        components by the criterion's score (:mod:`accsim.run.strategies`).

    Returns
    -------
    dict
        :data:`SUMMARY_KEYS` and :data:`EXTRA_KEYS` (every cost column, label-free
        metrics), per-layer fractions ``recomputed_fraction_layer{k}``, the ``label``,
        ``strategy_kind`` (uniform, adaptive, multilevel, random, oracle), ``matched_to``
        (the adaptive label a control copies, else ""), ``criterion`` and the per-image
        results as hex strings ``correct_bits`` / ``agree_bits`` (``numpy.packbits`` of
        the boolean vectors; :func:`unpack_bits`) for paired statistics between cells.
    """
    check_kind(strategy)
    control = None if control in (None, "none") else control
    if control is not None:
        if strategy != "adaptive":
            raise ValueError(f"control {control!r} applies to adaptive strategies, not "
                             f"{strategy!r}")
        if control not in CONTROL_KINDS:
            raise ValueError(f"unknown control {control!r}; valid: none, "
                             f"{', '.join(CONTROL_KINDS)}")
    check_criterion(criterion)
    if budget is not None and strategy != "adaptive":
        raise ValueError(f"budget applies to adaptive strategies, not {strategy!r}")
    net = load_network(network)
    lo = resolve_model(low, where="low") if (low is not None and levels is None) else None
    hi = resolve_model(high, where="high") if high is not None else None
    lv = [resolve_model(m, where=f"levels[{k}]") for k, m in enumerate(levels)] \
        if levels is not None else None
    if strategy == "uniform" and lo is None:
        raise ValueError("uniform strategy needs low (the model)")
    if strategy == "adaptive" and lo is None:
        raise ValueError("adaptive strategy needs low")
    s = make_strategy(strategy, low=lo, high=hi, levels=lv, tau=tau, criterion=criterion,
                      guard=guard, constant=constant, estimate=estimate, budget=budget)
    run = [s]
    if control is not None:
        run.append(Control(s.models[0], s.models[-1], control, s.label,
                           label=f"{control}@{s.label}"))
    import networks

    x, y = load_inputs(None, net.input_size, networks.registry.dataset_of(network))
    x = networks.registry.normalize(network, x)
    idx = select_samples(len(x), samples, seed)
    plan = Plan(net, np.asarray(x[idx]), np.asarray(y[idx]), run, batch=batch, seed=seed)
    key = (network, samples, seed, batch)
    if _KEEP.get("key") != key:  # one network's first-layer passes at a time (memory)
        _KEEP.clear()
        _KEEP.update(key=key, batches={})
    # one batch at a time: a sweep already runs its cells in parallel (accsim.batch)
    acc, _ = run_plan(plan, keep=_KEEP["batches"], workers=1)
    last = run[-1]
    a = acc[last.label]
    out = a.summary()
    for k, f in enumerate(a.cost.layer_fractions()):
        out[f"recomputed_fraction_layer{k}"] = float(f)
    out["label"] = last.label
    out["strategy_kind"] = last.kind
    out["matched_to"] = getattr(last, "matched_to", "")
    out["criterion"] = last.criterion
    per = a.per_image()
    out["correct_bits"] = pack_bits(per["correct"])
    if "agree" in per:
        out["agree_bits"] = pack_bits(per["agree"])
    return out


#: First-layer passes and exact logits of the last (network, samples, seed, batch) that
#: :func:`evaluate` ran: consecutive sweep cells on one network share them.
_KEEP: dict = {}


def pack_bits(v) -> str:
    """A boolean vector as a hex string (``numpy.packbits``, big bit order; the length
    is stored separately as ``n_samples``)."""
    return np.packbits(np.asarray(v, bool)).tobytes().hex()


def unpack_bits(text: str, n: int) -> np.ndarray:
    """The boolean vector of length ``n`` that :func:`pack_bits` wrote as ``text``."""
    raw = np.frombuffer(bytes.fromhex(text), np.uint8)
    if raw.size * 8 < n:
        raise ValueError(f"{raw.size * 8} bits stored, {n} expected")
    return np.unpackbits(raw)[:n].astype(bool)


def _normalization(name):
    import networks

    try:
        return networks.registry.normalization_of(name)
    except ValueError:
        return None


def _budget(s) -> float:
    b = getattr(s, "budget", None)
    return math.nan if b is None else float(b)


def default_reference(strategies) -> str | None:
    """Label of the uniform run the paired statistics compare against: the uniform
    strategy on an adaptive strategy's high model, else the last uniform one."""
    uni = [s for s in strategies if s.kind == "uniform"]
    highs = {id(s.models[-1]) for s in strategies if s.kind in ("adaptive", "multilevel")}
    for s in uni:
        if id(s.model) in highs:
            return s.label
    names = {s.models[-1].name for s in strategies if s.kind in ("adaptive", "multilevel")}
    for s in uni:
        if getattr(s.model, "name", None) in names:
            return s.label
    return uni[-1].label if uni else None


#: The per-strategy summaries of a layer-graph run (a ``[network] file`` config,
#: :func:`accsim.simulate`): :data:`SUMMARY_KEYS` and :data:`EXTRA_KEYS` without the
#: cost parts and the probabilistic-bound check (docs/datasets.md).
GRAPH_SUMMARY_KEYS = ("accuracy", "agreement", "logit_rel_error_median",
                      "logit_rel_error_max", "recomputed_fraction", "bit_cost",
                      "max_error_bound_ratio", "max_rel_error", "violations", "nonfinite",
                      "n_samples", "energy_pj", "h100_time_ns", "h100_tile_time_ns")
#: Per-op variables of every run: ``name -> Tally -> (n_ops,) array``.
LAYER_VARIABLES = {
    "recomputed_fraction_layer": lambda a: a.cost.layer_fractions(),
    "bit_cost_layer": lambda a: a.cost.bits / max(a.n_samples, 1),
    "max_error_bound_ratio_layer": lambda a: a.max_ratio,
    "violations_layer": lambda a: a.violations,
    "max_rel_error_layer": lambda a: a.max_rel,
}
#: Per-op variables of a layer-graph run only (docs/datasets.md).
GRAPH_LAYER_VARIABLES = {
    "net_rel_error_max_layer": lambda a: a.net_rel_max,
    "net_rel_error_mean_layer": lambda a: a.net_rel_sum / max(a.n_samples, 1),
    "weight_scale_layer": lambda a: a.w_scale,
}
#: Per-op variables of a shipped network's run only (the engine's extras).
NETWORK_LAYER_VARIABLES = {
    "base_bit_cost_layer": lambda a: a.cost.base_bits / max(a.n_samples, 1),
    "estimate_bit_cost_layer": lambda a: a.cost.estimate_bits / max(a.n_samples, 1),
    "recompute_bit_cost_layer": lambda a: a.cost.recompute_bits / max(a.n_samples, 1),
    "vacuous_bound_fraction_layer": lambda a: a.vacuous / np.maximum(a.components, 1),
    "violations_prob_layer": lambda a: a.violations_prob,
}


def _rows(plan) -> tuple[list, list, bool]:
    """``(labels, strategies, network)`` of a plan's rows: a :class:`Plan` (a shipped
    network, run with the engine's extras: ``network`` True) lists its strategies, a
    :class:`accsim.graph.experiment.GraphPlan` its assignments (the row's strategy is
    the assignment's main one)."""
    if hasattr(plan, "assignments"):
        return [a.label for a in plan.assignments], [a.main for a in plan.assignments], False
    return [s.label for s in plan.strategies], list(plan.strategies), True


def run_dataset(plan, acc: dict, seconds: float | None = None):
    """The run as an :class:`xarray.Dataset`: the one builder of every ``accsim run``,
    :func:`accsim.simulate` and sweep-free network run (docs/datasets.md).

    ``plan`` is a :class:`Plan` (a shipped network) or a
    :class:`accsim.graph.experiment.GraphPlan` (a layer graph, MiniLM or a torch module);
    ``acc`` maps each row's label to its :class:`accsim.graph.tally.Tally`. Summary
    variables over ``strategy``, per-op variables over ``(strategy, layer)``,
    per-input ones over ``(strategy, image)``, and the per-component records of the
    first ``record_samples`` inputs over ``(strategy, component)`` with coordinates
    ``component_layer``, ``component_feature`` and ``component_sample``. A shipped
    network's run adds the engine's extras (condition numbers, the probabilistic bound,
    the bound constants, paired statistics against the reference row); a layer-graph run
    adds the per-op scaling and the network-level error after each op. The variables of
    the two kinds are listed in docs/datasets.md.
    """
    import xarray as xr

    labels, rows, network = _rows(plan)
    sums = {lab: acc[lab].summary() for lab in labels}
    keys = SUMMARY_KEYS + EXTRA_KEYS if network else GRAPH_SUMMARY_KEYS
    data = {k: ("strategy", np.array([sums[lab][k] for lab in labels])) for k in keys}
    per_layer = {**LAYER_VARIABLES,
                 **(NETWORK_LAYER_VARIABLES if network else GRAPH_LAYER_VARIABLES)}
    for k, f in per_layer.items():
        data[k] = (("strategy", "layer"), np.array([f(acc[lab]) for lab in labels]))
    matched = [getattr(s, "matched_to", "") for s in rows]
    data["matched_to"] = ("strategy", np.array(matched))
    data["budget"] = ("strategy", np.array([_budget(s) for s in rows]))
    data["strategy_kind"] = ("strategy", np.array([s.kind for s in rows]))
    data["criterion"] = ("strategy", np.array([s.criterion for s in rows]))
    data["tau"] = ("strategy", np.array([float(getattr(s, "tau", math.nan)) for s in rows]))
    per = {lab: acc[lab].per_image() for lab in labels}
    if network:
        coords = _network_variables(plan, acc, labels, rows, per, data)
    else:
        coords = _graph_variables(plan, acc, labels, per, data)
    cmp_attrs = {}
    if labels and "logit_rel_error" in data:
        from accsim.analysis.stats import comparison_family, family_variables

        fam = [{"label": lab, "kind": s.kind, "matched_to": m,
                "cost": sums[lab]["bit_cost"], "error": per[lab]["logit_rel_error"],
                "agree": per[lab]["agree"], "correct": per[lab]["correct"]}
               for lab, s, m in zip(labels, rows, matched, strict=True)]
        cmp_vars, cmp_attrs = family_variables(comparison_family(fam))
        data.update(cmp_vars)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(cmp_attrs)
    from accsim.run.hwcost import HW_COLUMNS

    for k, (ln, un) in HW_COLUMNS.items():
        ds[k].attrs.update(long_name=ln, units=un)
    name = plan.network.name if network else plan.graph.name
    ds.attrs.update({
        "network": name, "n_samples": int(len(plan.x)), "seed": int(plan.seed),
        "input_format": plan.input_format, "activation_format": plan.activation_format,
        "paper": "El Arar, Filip, Mary, Riccietti, arXiv:2503.15568 (2025)",
        "bound_kind": "deterministic",
    })
    if network:
        ds.attrs.update({
            "prob_failure": PROB_FAILURE,
            "dataset": plan.dataset,
            "reference": str(plan.reference or default_reference(plan.strategies) or ""),
            "normalization": str(_normalization(name)),
            "activations": ",".join(lay.activation for lay in plan.network.layers),
            "bias": plan.bias,
        })
    else:
        ds.attrs.update({
            "macs_per_image": int(plan.graph.macs()),
            "scaling": "per-tensor power-of-two: weights per op, activations per image",
        })
    if seconds is not None:
        ds.attrs["run_seconds"] = float(seconds)
        if not network:
            total = plan.graph.macs() * len(plan.x) * len(labels)
            ds.attrs["simulated_macs_per_second"] = float(total / seconds) if seconds else 0.0
    from accsim.run.attributes import annotate, models_attr

    ds.attrs["model_descriptions"] = models_attr(plan.models)
    return annotate(ds)


def _network_variables(plan, acc, labels, rows, per, data) -> dict:
    """The variables only a shipped network's run has (into ``data``); its coordinates."""
    L = len(plan.network.layers)
    data["control_seed"] = ("strategy", np.array([int(getattr(s, "seed", 0))
                                                  if s.kind in CONTROL_KINDS else -1
                                                  for s in rows]))
    from accsim.accumulators.bounds import lam_from_failure_prob

    n_in = [lay.W.shape[1] for lay in plan.network.layers]
    coords = {"strategy": labels, "layer": np.arange(L),
              "prob_lambda": ("layer", np.array(
                  [lam_from_failure_prob(PROB_FAILURE, n + 1) for n in n_in]))}
    if labels and per[labels[0]]["correct"].size:
        data["correct"] = (("strategy", "image"), np.stack([per[lab]["correct"]
                                                            for lab in labels]))
        if "agree" in per[labels[0]]:
            data["agree"] = (("strategy", "image"), np.stack([per[lab]["agree"]
                                                              for lab in labels]))
            data["logit_rel_error"] = (("strategy", "image"), np.stack(
                [per[lab]["logit_rel_error"] for lab in labels]))
        ref = plan.reference or default_reference(plan.strategies)
        if ref is not None:
            from accsim.analysis.stats import paired_summary

            pairs = [paired_summary(per[lab]["correct"], per[ref]["correct"],
                                    n_boot=plan.bootstrap, seed=plan.seed)
                     for lab in labels]
            for k in ("accuracy_lo", "accuracy_hi", "delta", "delta_lo", "delta_hi",
                      "p_mcnemar", "flip_rate"):
                data[k] = ("strategy", np.array([r[k] for r in pairs], np.float64))
            data["mcnemar_b"] = ("strategy", np.array([r["b"] for r in pairs], np.int64))
            data["mcnemar_c"] = ("strategy", np.array([r["c"] for r in pairs], np.int64))
    data["guard"] = ("strategy", np.array([int(getattr(s, "guard", 0)) for s in rows]))
    data["models"] = ("strategy", np.array([",".join(m.name for m in s.models)
                                            for s in rows]))
    data["constant_kind_layer"] = (("strategy", "layer"), np.array(
        [[str(acc[lab].info[li].get("constant_kind", "none")) for li in range(L)]
         for lab in labels]))
    from accsim.run.strategies import bound_constant

    for kind in ("probabilistic", "deterministic"):
        data[f"{kind}_constant_layer"] = (("strategy", "layer"), np.array(
            [[bound_constant(s.models[0], n, kind) for n in n_in] for s in rows]))
    rec = {lab: acc[lab].records() for lab in labels}
    if plan.record_samples and labels and rec[labels[0]][0]:
        # component order: per layer, feature-major (all recorded samples of feature 0,
        # then of feature 1, ...)
        lay, feat, samp = [], [], []
        for li, r in enumerate(rec[labels[0]]):
            ns, nf = r["computed"].shape
            lay.append(np.full(nf * ns, li))
            feat.append(np.repeat(np.arange(nf), ns))
            samp.append(np.tile(np.arange(ns), nf))
        _component_coords(coords, lay, feat, samp)
        for k in ("computed", "exact", "bound", "kappa_v", "kappa_phi", "level",
                  "propagated"):
            arr = np.stack([np.concatenate([r[k].T.ravel() for r in rec[lab]])
                            for lab in labels])
            data[k] = (("strategy", "component"), arr)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(data["computed"][1] - data["exact"][1])
            data["abs_error"] = (("strategy", "component"), err)
            rel = np.where(err == 0, 0.0, err / np.abs(data["exact"][1]))
            data["rel_error"] = (("strategy", "component"), rel)
            data["holds"] = (("strategy", "component"), err <= data["bound"][1])
    return coords


def _graph_variables(plan, acc, labels, per, data) -> dict:
    """The variables only a layer-graph run has (into ``data``); its coordinates."""
    assignments, ops = plan.assignments, plan.graph.linear_ops
    data["scale_format"] = ("strategy", np.array([a.scale or "" for a in assignments]))
    if labels and per[labels[0]]["logit_rel_error"].size:
        data["logit_rel_error"] = (("strategy", "image"), np.stack(
            [per[lab]["logit_rel_error"] for lab in labels]))
        data["agree"] = (("strategy", "image"), np.stack(
            [per[lab]["agree"] for lab in labels]))
    data["models"] = ("strategy", np.array([
        ";".join(f"{c}:{','.join(m.name for m in s.models)}"
                 for c, s in sorted(a.strategies.items())) for a in assignments]))
    coords = {"strategy": labels, "layer": [op.name for op in ops],
              "layer_class": ("layer", [op.op_class for op in ops]),
              "layer_K": ("layer", [op.inner_length for op in ops]),
              "layer_macs": ("layer", [op.macs() for op in ops])}
    recs = {lab: acc[lab].record for lab in labels}
    if plan.record_samples and labels and recs[labels[0]][0]:
        # component order: per op, sample-major (the op's components of sample 0, then
        # of sample 1, ...)
        lay, feat, samp = [], [], []
        for li, parts in enumerate(recs[labels[0]]):
            r = np.concatenate([p["computed"] for p in parts], axis=0)  # (S, comp)
            ns, nf = r.shape
            lay.append(np.full(ns * nf, li))
            samp.append(np.repeat(np.arange(ns), nf))
            feat.append(np.tile(np.arange(nf), ns))
        _component_coords(coords, lay, feat, samp)
        for k in ("computed", "exact", "bound", "level"):
            data[k] = (("strategy", "component"), np.stack([
                np.concatenate([np.concatenate([p[k] for p in parts], axis=0).ravel()
                                for parts in recs[lab]]) for lab in labels]))
        data["input_scale"] = (("strategy", "layer", "sample"), np.stack([
            np.stack([np.concatenate([p["x_scale"] for p in parts]) for parts in recs[lab]])
            for lab in labels]))
    return coords


def _component_coords(coords, lay, feat, samp) -> None:
    coords["component_layer"] = ("component", np.concatenate(lay))
    coords["component_feature"] = ("component", np.concatenate(feat))
    coords["component_sample"] = ("component", np.concatenate(samp))
