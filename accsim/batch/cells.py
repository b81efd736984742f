"""Expansion of a validated sweep config into cells (one ``evaluate`` call each).

Order and identity
------------------
Cells are listed grid by grid (then the explicit ``[[cells]]``), each grid as the
cartesian product of its axes in the order network, strategy, low, high, levels, tau,
criterion, guard, control, estimate, budget, samples, seed (last varies fastest). A
cell's identity is the hash of its ``evaluate`` arguments (``cell_id``), so duplicates
are dropped and a re-run recognises finished cells whatever the config's order.

Seeds
-----
Each cell's ``seed`` argument is derived from the master seed ``[sweep] seed`` and the
cell's parameters named by ``[sweep] seed_keys`` (default: all of them, the replicate
``seed`` included) by SHA-256: it does not depend on the cell's position, the number of
workers, or which cells ran before, so results are reproducible bit for bit.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accsim.batch.config import (
    CELL_PARAMS,
    MAX_CELLS,
    Block,
    CellEntry,
    ConfigError,
    FormatTable,
    Locator,
    ModelTemplate,
    SweepConfig,
    parse_config,
    parse_range,
)
from accsim.run.formatspec import FORMAT_KEYS, materialize  # noqa: F401 - re-exported

__all__ = ["Cell", "ModelVariant", "Sweep", "canonical", "derive_seed", "expand",
           "load_config", "spec_key"]

#: Parameters each strategy uses (others are dropped from its cells).
USES = {
    "uniform": {"low"},
    "adaptive": {"low", "high", "tau", "criterion", "guard", "control", "estimate",
                 "budget"},
    "multilevel": {"levels", "tau", "criterion", "guard"},
}


def canonical(obj: Any) -> str:
    """Compact, key-sorted JSON: the canonical text of parameters and specs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def spec_key(spec: str | dict | None) -> str:
    """The string coordinate of a model spec: a registry name, or canonical JSON."""
    if spec is None:
        return ""
    return spec if isinstance(spec, str) else canonical(spec)


def materialize_kwargs(kwargs: dict) -> dict:
    """Cell arguments with custom formats materialised (see :func:`materialize`)."""
    return {k: (materialize(v) if k in ("low", "high", "levels") else v)
            for k, v in kwargs.items()}


def derive_seed(master: int, params: dict) -> int:
    """63-bit seed from the master seed and the (JSON-able) parameters."""
    h = hashlib.sha256(canonical({"master": master, "params": params}).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


@dataclass(frozen=True)
class ModelVariant:
    """One concrete accumulator model of the sweep."""

    label: str
    spec: str | dict

    @property
    def key(self) -> str:
        return spec_key(self.spec)


@dataclass(frozen=True)
class Cell:
    """One sweep cell.

    Attributes
    ----------
    index : int
        Position in the expanded sweep (the ``cell`` coordinate of the dataset).
    id : str
        Content hash of ``kwargs`` (16 hex digits).
    kwargs : dict
        Keyword arguments of ``accsim.run.experiment.evaluate`` (seed already derived).
    coords : dict
        Coordinate values of the cell in the result dataset.
    """

    index: int
    id: str
    kwargs: dict
    coords: dict


@dataclass
class Sweep:
    """A loaded sweep: the config, its cells and its models."""

    config: SweepConfig
    cells: list[Cell]
    text: str = ""
    file: str | None = None
    models: dict[str, str | dict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.sweep.name


# ------------------------------------------------------------------------------ models
def _format_variants(ft: FormatTable) -> list[dict]:
    fixed = {k: v for k, v in ft.model_dump(exclude_none=True).items()}
    axes = {k: _int_axis(v) for k, v in fixed.items()
            if k in ("exponent_bits", "mantissa_bits", "p", "emax")}
    out = []
    for combo in itertools.product(*axes.values()):
        d = {**fixed, **dict(zip(axes, combo, strict=True))}
        out.append(d)
    return out


def _int_axis(v) -> list[int]:
    if isinstance(v, list):
        return list(v)
    if isinstance(v, str):
        return parse_range(v) or []
    return [v]


def _short(v) -> str:
    if isinstance(v, dict):
        if "p" in v:
            s = f"p{v['p']}emax{v['emax']}"
        else:
            s = f"e{v['exponent_bits']}m{v['mantissa_bits']}"
        extra = [f"{k}={v[k]}" for k in ("specials", "subnormals", "saturate") if k in v]
        return s + ("(" + ",".join(extra) + ")" if extra else "")
    return str(v)


def _param_axis(v) -> list:
    if isinstance(v, FormatTable):
        return _format_variants(v)
    if isinstance(v, list):
        out = []
        for x in v:
            out.extend(_param_axis(x))
        return out
    if isinstance(v, str) and parse_range(v) is not None:
        return parse_range(v)
    return [v]


def template_variants(name: str | None, t: ModelTemplate) -> list[ModelVariant]:
    """The model variants a template stands for (cartesian product of its lists)."""
    params = dict(t.model_extra or {})
    axes = {k: _param_axis(v) for k, v in params.items()}
    empty = [k for k, ax in axes.items() if not ax]
    if empty:  # the template would stand for no model at all
        raise ValueError(f"{empty[0]}: must not be an empty list (the template would "
                         "stand for no model)")
    count = 1
    for ax in axes.values():
        count *= len(ax)
    if count > MAX_CELLS:
        raise ValueError(f"the model template stands for {count} variants; the limit is "
                         f"{MAX_CELLS}")
    varying = [k for k, ax in axes.items() if len(ax) > 1]
    base = name or t.label
    if base is None:
        fixed = ",".join(f"{k}={_short(ax[0])}" for k, ax in axes.items() if len(ax) == 1)
        base = f"{t.family}({fixed})"
    elif t.label:
        base = t.label
    out, seen = [], set()
    for combo in itertools.product(*axes.values()):
        spec = {"family": t.family, **dict(zip(axes, combo, strict=True))}
        for k, v in spec.items():  # "@other": the same value as parameter 'other'
            if isinstance(v, str) and v.startswith("@") and v[1:] in spec:
                spec[k] = spec[v[1:]]
        if "mode" in spec and str(spec["mode"]).lower() != "sr":
            spec.pop("sr_bits", None)
        k = canonical(spec)
        if k in seen:
            continue
        seen.add(k)
        label = base
        if varying:
            label += "[" + ",".join(f"{p}={_short(spec[p])}" for p in varying
                                    if p in spec) + "]"
        out.append(ModelVariant(label, spec))
    return out


def unknown_model_message(name: str, templates: list[str], registry: list[str]) -> str:
    """Say a model name is unknown, with close matches (the registry is long)."""
    close = difflib.get_close_matches(name, registry + templates, n=5, cutoff=0.6)
    generic = [n for n in registry if ":" not in n]
    archs = sorted({n.split(":", 1)[0] for n in registry if ":" in n})
    msg = f"unknown model {name!r}"
    if close:
        msg += f"; did you mean {', '.join(close)}?"
    msg += (f" [models] tables: {', '.join(templates) or 'none'}; generic models: "
            f"{', '.join(generic) or 'none'}; {len(registry) - len(generic)} hardware models "
            f"named ARCH:INSTRUCTION with ARCH in {', '.join(archs)} (globs like "
            f"'hopper:*' select several; `python -c \"import hwmodels; "
            f"print(hwmodels.available())\"` lists them)")
    return msg


class _Resolver:
    """Resolves model references and checks names against the registries."""

    def __init__(self, cfg: SweepConfig, loc: Locator, check: bool):
        self.cfg, self.loc, self.check = cfg, loc, check
        self.templates = {}
        for n, t in cfg.models.items():
            try:
                self.templates[n] = template_variants(n, t)
            except ValueError as exc:
                raise loc.error(("models", n), str(exc)) from None
        self.registry: list[str] | None = None
        self.build = None
        if check:
            try:
                import hwmodels

                self.registry = hwmodels.available()
            except ImportError:  # pragma: no cover - hwmodels ships with accsim
                self.registry = None
            try:
                from hwmodels import resolve as build_model

                self.build = build_model
            except ImportError:
                self.build = None
        self.checked: dict[str, str | None] = {}

    def verify(self, v: ModelVariant, path: tuple) -> None:
        if not self.check:
            return
        k = v.key
        if k not in self.checked:
            problem = None
            if isinstance(v.spec, str) and self.registry and v.spec not in self.registry:
                problem = unknown_model_message(v.spec, list(self.templates), self.registry)
            elif self.build is not None:
                try:
                    self.build(materialize(v.spec))
                except Exception as exc:  # noqa: BLE001 - any build failure is a config error
                    problem = f"model {v.label!r} cannot be built: {exc}"
            elif isinstance(v.spec, str) and self.registry and v.spec not in self.registry:
                problem = unknown_model_message(v.spec, list(self.templates), self.registry)
            self.checked[k] = problem
        if self.checked[k]:
            raise self.loc.error(path, self.checked[k])

    def resolve(self, ref, path: tuple) -> list[ModelVariant]:
        if isinstance(ref, ModelTemplate):
            try:
                out = template_variants(None, ref)
            except ValueError as exc:
                raise self.loc.error(path, str(exc)) from None
            for v in out:
                self.verify(v, path)
            return out
        if ref in self.templates:
            src = ("models", ref)
            for v in self.templates[ref]:
                self.verify(v, src)
            return self.templates[ref]
        if any(ch in ref for ch in "*?["):
            names = self.registry
            if names is None and self.check is False:
                raise self.loc.error(path, f"glob {ref!r} needs the model registry")
            matches = [n for n in (names or []) if fnmatch.fnmatchcase(n, ref)]
            if not matches:
                raise self.loc.error(path, f"no registered model matches {ref!r}")
            out = [ModelVariant(n, n) for n in matches]
            for v in out:
                self.verify(v, path)
            return out
        v = ModelVariant(ref, ref)
        self.verify(v, path)
        return [v]

    def resolve_axis(self, value, path: tuple) -> list[ModelVariant]:
        if value is None:
            return []
        if not isinstance(value, list):
            return self.resolve(value, path)
        out, seen = [], set()
        for i, ref in enumerate(value):
            for v in self.resolve(ref, path + (i,)):
                if v.key not in seen:
                    seen.add(v.key)
                    out.append(v)
        return out


# ------------------------------------------------------------------------------- cells
def _as_list(v) -> list:
    if v is None:
        return [None]
    if isinstance(v, list):
        return v
    if isinstance(v, str) and parse_range(v) is not None:
        return parse_range(v)
    return [v]


def _networks(value, path, loc, check) -> list[str]:
    names = _as_list(value)
    valid = None
    if check:
        try:
            import networks

            valid = networks.available("all")  # digits, MNIST and Fashion-MNIST nets
            digits = networks.available()
        except ImportError:  # pragma: no cover
            valid = None
    out = []
    for i, n in enumerate(names):
        if n == "all":
            if valid is None:
                raise loc.error(path, "'all' needs the networks package")
            out.extend(digits)  # 'all': the no-download digits networks
            continue
        if valid is not None and n not in valid:
            p = path + (i,) if isinstance(value, list) else path
            raise loc.error(p, f"unknown network {n!r}; valid: {', '.join(valid)}, or 'all'")
        out.append(n)
    return list(dict.fromkeys(out))


def _test_split_size() -> int | None:
    try:
        import networks
    except ImportError:  # pragma: no cover
        return None
    return int(networks.digits_dataset()[2].shape[0])


def _check_samples(block, path: tuple, cfg: SweepConfig, loc) -> None:
    """``samples`` larger than the test split is an error (0 means the whole split)."""
    if block.samples is not None:
        values, p = _as_list(block.samples), path + ("samples",)
    else:
        values, p = [cfg.sweep.samples], ("sweep", "samples")
    big = [(i, v) for i, v in enumerate(values) if isinstance(v, int) and v > 2872]
    if not big:  # 2872: the digits test split; avoid loading the data otherwise
        return
    n = _test_split_size()
    for i, v in big:
        if n is not None and v > n:
            q = p + (i,) if isinstance(block.samples, list) else p
            raise loc.error(q, f"samples = {v} exceeds the test split ({n} images); use "
                               "0 for the whole split")


def _block_axes(block: Block | CellEntry, path: tuple, res: _Resolver, cfg: SweepConfig,
                check: bool) -> list[dict]:
    loc = res.loc
    strategies = _as_list(block.strategy)
    used = set().union(*(USES[s] for s in strategies))
    for name in ("high", "levels", "tau", "criterion", "guard", "control", "estimate",
                 "budget"):
        if getattr(block, name) is not None and name not in used:
            raise loc.error(path + (name,),
                            f"{name!r} is not used by strategy {', '.join(strategies)} "
                            f"(uniform uses low; adaptive low, high, tau or budget, "
                            f"criterion, guard, control, estimate; multilevel levels, tau, "
                            f"criterion, guard)")
    if "low" in used and "levels" not in used and block.low is None:
        raise loc.error(path + ("low",), "required key is missing (the low-precision model)")
    if "high" in used and block.high is None:
        raise loc.error(path + ("high",), "strategy 'adaptive' needs 'high'")
    if "levels" in used and block.levels is None:
        raise loc.error(path + ("levels",), "strategy 'multilevel' needs 'levels'")
    if block.budget is not None:
        if block.tau is not None:
            raise loc.error(path + ("budget",), "give either 'tau' or 'budget', not both "
                            "(a budget fixes the recomputed fraction)")
        if block.guard is not None and any(_as_list(block.guard)):
            raise loc.error(path + ("guard",), "guard does not apply with 'budget' (the "
                            "budget fixes the recomputed fraction)")
        if "multilevel" in strategies:
            raise loc.error(path + ("budget",), "'budget' applies to adaptive strategies; "
                            "put the multilevel strategy in another grid")
    elif "tau" in used and block.tau is None:
        needs = "'tau' or 'budget'" if strategies == ["adaptive"] else "'tau'"
        raise loc.error(path + ("tau",), f"strategy {'/'.join(strategies)} needs {needs}")
    crit = _as_list(block.criterion) if block.criterion is not None else [cfg.sweep.criterion]
    if "multilevel" in strategies and any(c != "predicted" for c in crit):
        raise loc.error(path + ("criterion",),
                        "strategy 'multilevel' supports only criterion = 'predicted'")

    nets = _networks(block.network, path + ("network",), loc, check)
    if check:
        _check_samples(block, path, cfg, loc)
    lows = res.resolve_axis(block.low, path + ("low",))
    highs = res.resolve_axis(block.high, path + ("high",))
    levels_axis = [None]
    if block.levels is not None:
        level_lists = block.levels if isinstance(block, Block) else [block.levels]
        levels_axis = []
        for i, lv in enumerate(level_lists):
            p = path + ("levels", i) if isinstance(block, Block) else path + ("levels",)
            if len(lv) < 2:
                raise loc.error(p, "a multilevel strategy needs at least 2 levels")
            choices = [res.resolve(ref, p + (j,)) for j, ref in enumerate(lv)]
            n_levels = math.prod(len(c) for c in choices)
            limit = getattr(res, "max_cells", None) or MAX_CELLS
            if n_levels > limit:  # counted before the product is built
                raise loc.error(p, f"the globs of these levels expand to {n_levels} "
                                f"combinations; the limit is {limit} cells (accsim sweep "
                                "--max-cells)")
            levels_axis.extend(itertools.product(*choices))
    s = cfg.sweep
    return [{
        "network": nets, "strategy": strategies, "low": lows or [None],
        "high": highs or [None], "levels": levels_axis, "tau": _as_list(block.tau),
        "criterion": _as_list(block.criterion) if block.criterion is not None
        else [s.criterion],
        "guard": _as_list(block.guard) if block.guard is not None else [s.guard],
        "control": _as_list(block.control) if block.control is not None else ["none"],
        "estimate": _as_list(block.estimate) if block.estimate is not None else ["low"],
        "budget": _as_list(block.budget),
        "samples": _as_list(block.samples) if block.samples is not None else [s.samples],
        "seed": _as_list(block.seed),
    }]


def _flatten_spec(prefix: str, spec) -> dict:
    out = {}
    if isinstance(spec, dict):
        for k, v in spec.items():
            if isinstance(v, dict):
                out.update(_flatten_spec(f"{prefix}_{k}", v))
            else:
                out[f"{prefix}_{k}"] = v
    return out


def _make_cell(combo: dict, cfg: SweepConfig) -> tuple[dict, dict]:
    strat = combo["strategy"]
    use = USES[strat]
    s = cfg.sweep
    low = combo["low"] if "low" in use else None
    levels = combo["levels"] if "levels" in use else None
    kw = {
        "network": combo["network"],
        "strategy": strat,
        "low": low.spec if low else None,
        "high": combo["high"].spec if "high" in use and combo["high"] else None,
        "levels": [v.spec for v in levels] if levels else None,
        "tau": combo["tau"] if "tau" in use else None,
        "criterion": combo["criterion"] if "criterion" in use else s.criterion,
        "guard": bool(combo["guard"]) if "guard" in use else s.guard,
        "samples": combo["samples"],
    }
    # non-default adaptive options only (the cell ids and seeds of sweeps written before
    # these options existed stay the same)
    est = combo["estimate"] if "estimate" in use else "low"
    if est != "low":
        kw["estimate"] = est
    budget = combo["budget"] if "budget" in use else None
    if budget is not None:
        kw["budget"] = float(budget)
    keys = s.seed_keys if s.seed_keys is not None else CELL_PARAMS
    seed_params = {k: (combo["seed"] if k == "seed" else kw[k]) for k in keys
                   if k == "seed" or k in kw}
    kw["seed"] = derive_seed(s.seed, seed_params)  # a control cell: its strategy's seed
    control = combo["control"] if "control" in use else "none"
    if control != "none":
        kw["control"] = control
    high = combo["high"] if kw["high"] is not None else None
    coords = {
        "network": kw["network"],
        "strategy": strat,
        "model": " > ".join(v.label for v in levels) if levels else low.label,  # type: ignore
        "low": spec_key(kw["low"]),
        "high_model": high.label if high else "",
        "high": spec_key(kw["high"]),
        "levels": canonical([spec_key(x) for x in kw["levels"]]) if levels else "",
        "tau": kw["tau"],
        "criterion": kw["criterion"],
        "guard": kw["guard"],
        "samples": kw["samples"],
        "seed": combo["seed"],
        "cell_seed": kw["seed"],
        "control": control,
        "estimate": est if "estimate" in use else "",
        "budget": math.nan if budget is None else float(budget),
        "strategy_kind": control if control != "none" else strat,
    }
    coords.update(_flatten_spec("low", kw["low"]))
    return kw, coords


def expand(cfg: SweepConfig, loc: Locator, *, text: str = "",
           check_registries: bool = True, max_cells: int | None = None):
    """Expand a validated config into a :class:`Sweep` (raises ConfigError).

    Every ``[models]`` table is checked (also one no cell uses), a table named like a
    registered model is refused (it would shadow it), and with ``max_cells`` the
    number of cells is counted from the axes' lengths before any is built."""
    res = _Resolver(cfg, loc, check_registries)
    res.max_cells = max_cells
    if check_registries:
        for name, variants in res.templates.items():
            if res.registry and name in res.registry:
                raise loc.error(("models", name), f"the table name {name!r} is a "
                                "registered model name; rename the table (it would "
                                "shadow the registry's model)")
            for v in variants:
                res.verify(v, ("models", name))
    blocks = [(b, ("grid", i)) for i, b in enumerate(cfg.grid)]
    blocks += [(c, ("cells", i)) for i, c in enumerate(cfg.cells)]
    if max_cells is not None:
        total = 0
        for block, path in blocks:
            for axes in _block_axes(block, path, res, cfg, check_registries):
                n = 1
                for ax in axes.values():
                    n *= len(ax)
                total += n
                if total > max_cells:
                    raise loc.error(path, f"the sweep has more than {max_cells} cells "
                                    f"(this grid alone: {n}); split it or raise the "
                                    "limit (accsim sweep --max-cells)")
    cells: list[Cell] = []
    seen: set[str] = set()
    models: dict[str, str | dict] = {}
    for block, path in blocks:
        for axes in _block_axes(block, path, res, cfg, check_registries):
            for values in itertools.product(*axes.values()):
                combo = dict(zip(axes, values, strict=True))
                kw, coords = _make_cell(combo, cfg)
                cid = hashlib.sha256(canonical(kw).encode()).hexdigest()[:16]
                if cid in seen:
                    continue
                seen.add(cid)
                for spec in [kw["low"], kw["high"], *(kw["levels"] or [])]:
                    if spec is not None:
                        models[spec_key(spec)] = spec
                cells.append(Cell(len(cells), cid, kw, coords))
    return Sweep(cfg, cells, text=text, file=loc.file, models=models)


def load_config(path: str | Path, *, check_registries: bool = True,
                max_cells: int | None = MAX_CELLS):
    """Load, validate and expand a sweep file.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    check_registries : bool
        Check network names, model names and custom model parameters against
        ``networks.available()``, ``hwmodels.available()`` and the family registry
        (where those exist).
    max_cells : int or None
        Refuse a sweep of more cells (counted before expanding; None: no limit).

    Returns
    -------
    accsim.batch.cells.Sweep
        The validated config and its expanded cells.

    Raises
    ------
    ConfigError
        With file, line and key path of the first problem found.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a text (UTF-8) file: {exc.reason} at byte {exc.start}",
                          file=str(path)) from None
    cfg, loc = parse_config(text, str(path))
    return expand(cfg, loc, text=text, check_registries=check_registries,
                  max_cells=max_cells)
