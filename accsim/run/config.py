"""The ``accsim run`` configuration: a TOML file validated by a pydantic v2 model.

Example (``configs/paper_mlp.toml``)::

    [run]
    network = "mlp-relu"          # networks.available()
    samples = 0                   # 0: whole test split; k: deterministic subset of k
    seed = 0
    batch = 256
    record_samples = 16           # inputs whose per-component records are stored
    output = "results/paper_mlp.zarr"

    [models.fp8]                  # any accsim.accumulators.factory.build_model spec
    family = "blocked"
    block = 8
    inner_format = "float8_e4m3"
    outer_format = "float8_e4m3"
    mode = "rne"

    [[strategies]]
    kind = "uniform"              # uniform | adaptive | multilevel
    model = "fp8"                 # a [models] key or a registered model name

    [[strategies]]
    kind = "adaptive"
    low = "fp8"
    high = "fp16"
    criterion = "predicted"       # predicted | authors
    tau = [0.1, 1.0]              # one strategy per value

Unknown keys, bad values, unknown networks, models or activations raise ``ValueError``
naming the file, line and key (``c.toml:27: strategies[1].tau: ...``) before any work
starts.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
)

from accsim.run import tomlkeys
from accsim.run.criteria import CriterionName
from accsim.run.strategies import CONTROL_KINDS, StrategyKind

__all__ = ["RunConfig", "RunSection", "StrategySpec", "load_config", "parse_config",
           "format_tau"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Strict):
    """``[run]``: what to run on."""

    network: str
    samples: StrictInt = Field(0, ge=0)
    seed: StrictInt = Field(0, ge=0, lt=2**64, description="an integer in [0, 2**64)")
    batch: int = Field(256, ge=1)
    record_samples: int = Field(16, ge=0)
    output: str = "results/run.zarr"
    input_format: str = "binary32"
    activation_format: str = "binary32"
    activations: list[str] | None = None
    inputs: str | None = None
    plots: bool = True
    dataset: Literal["digits", "mnist", "fashion-mnist"] | None = None
    reference: str | None = None
    bootstrap: int = Field(10000, ge=100)
    control_seeds: int = Field(1, ge=1, le=100, description="replicates of each random "
                               "control (random, random-active), control seeds 0..k-1")
    bias: Literal["initial", "after"] = Field(
        "initial", description="the bias as the accumulator's initial value, or added "
        "after the sum in one rounded addition (the authors' script; docs/executor.md)")


class StrategySpec(_Strict):
    """One ``[[strategies]]`` entry (``tau`` may be a list: one strategy per value)."""

    kind: StrategyKind
    model: str | None = None
    low: str | None = None
    high: str | None = None
    levels: list[str] | None = None
    criterion: CriterionName = "predicted"
    tau: float | list[float] | None = None
    budget: float | list[float] | None = Field(
        None, description="budgeted selection: recompute this fraction of each layer's "
        "components, the highest by the criterion's score (instead of tau)")
    guard: bool = False
    constant: Literal["auto", "deterministic", "probabilistic"] = "auto"
    estimate: Literal["low", "cs"] = "low"
    zero: Literal["keep", "recompute"] = "keep"
    output_kappa: str | None = None
    controls: list[Literal[CONTROL_KINDS]] = Field(default_factory=list)
    label: str | None = None

    @field_validator("tau")
    @classmethod
    def _tau(cls, v):
        vals = v if isinstance(v, list) else [v]
        if isinstance(v, list) and not v:
            raise ValueError("tau list is empty")
        for t in vals:
            if t is not None and (math.isnan(t) or t < 0):
                raise ValueError(f"tau must be >= 0 (inf allowed), got {t}")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v):
        vals = v if isinstance(v, list) else [v]
        if isinstance(v, list) and not v:
            raise ValueError("budget list is empty")
        for b in vals:
            if b is not None and not (0 <= b <= 1):
                raise ValueError(f"budget must be a fraction in [0, 1], got {b}")
        return v

    def taus(self) -> list[float]:
        return self.tau if isinstance(self.tau, list) else [self.tau]

    def budgets(self) -> list[float]:
        return self.budget if isinstance(self.budget, list) else [self.budget]

    def check(self) -> None:
        """Field combinations (ValueError with the field name)."""
        if self.kind == "uniform":
            if self.model is None:
                raise ValueError("uniform strategy needs 'model'")
            extra = [k for k in ("low", "high", "levels", "tau", "budget")
                     if getattr(self, k) is not None]
            if self.controls:
                extra.append("controls")
            if extra:
                raise ValueError(f"uniform strategy does not take {', '.join(extra)}")
        elif self.kind == "adaptive":
            for k in ("low", "high"):
                if getattr(self, k) is None:
                    raise ValueError(f"adaptive strategy needs {k!r}")
            if (self.tau is None) == (self.budget is None):
                raise ValueError("adaptive strategy needs exactly one of 'tau' and "
                                 "'budget'")
            if self.budget is not None and self.guard:
                raise ValueError("guard does not apply with 'budget' (the budget fixes "
                                 "the recomputed count)")
        else:
            if self.levels is None or len(self.levels) < 2:
                raise ValueError("multilevel strategy needs 'levels' (at least 2 models)")
            if self.tau is None:
                raise ValueError("multilevel strategy needs 'tau'")
            if self.criterion != "predicted":
                raise ValueError("multilevel strategy supports only criterion='predicted'")
            if self.budget is not None:
                raise ValueError("budget applies to adaptive strategies")
            if self.zero != "keep" or self.output_kappa is not None or self.estimate != "low":
                raise ValueError("zero, output_kappa and estimate apply to adaptive strategies")
        n_points = len(self.budgets()) if self.budget is not None else len(self.taus())
        if self.label is not None and n_points > 1 and "{tau}" not in self.label:
            raise ValueError("'label' applies only to a single tau (or contains '{tau}')")


class RunConfig(_Strict):
    """The whole file: ``[run]``, ``[models.NAME]`` tables and ``[[strategies]]``."""

    run: RunSection
    models: dict[str, dict] = Field(default_factory=dict)
    strategies: list[StrategySpec] = Field(min_length=1)
    _source: str = PrivateAttr("<config>")
    _lines: dict = PrivateAttr(default_factory=dict)

    def where(self, key: str) -> str:
        """``"FILE:LINE: key"`` for a key path such as ``"strategies[2].model"`` (the line
        of the longest prefix of the key found in the file; no line for dict input)."""
        return tomlkeys.where(self._source, self._lines, key)


def format_tau(t: float) -> str:
    """Label form of a tolerance (``1e-02``-free: ``0.01``, ``0.3``, ``inf``)."""
    return "inf" if math.isinf(t) else f"{t:g}"


def validation_messages(exc: ValidationError, where) -> list[str]:
    """One ``FILE:LINE: key: message`` per pydantic error (duplicates dropped, order
    kept); ``where(key)`` places a dotted key in the file."""
    msgs = []
    for e in exc.errors(include_url=False):
        key = _loc(tuple(p for p in e["loc"] if p not in _UNION_TAGS)) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        msgs.append(f"{where(key)}: {msg}")
    return list(dict.fromkeys(msgs))


def _loc(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_config(data: dict, source: str = "<config>", text: str | None = None) -> RunConfig:
    """Validate a parsed TOML document (``text``: the file's text, for line numbers).

    Raises
    ------
    ValueError
        ``"<source>:<line>: <location>: <problem>"`` for the problems found.
    """
    from accsim.run.validation import check_document, format_key

    lines = {}
    if text is not None:
        lines = tomlkeys.key_lines(text)
    bad = check_document(RunConfig, data)
    if bad:
        raise ValueError(f"{tomlkeys.where(source, lines, format_key(bad[0]))}: {bad[1]}")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        probe = RunConfig.model_construct()
        probe._source, probe._lines = source, lines
        msgs = validation_messages(exc, probe.where)
        head = "invalid configuration:\n  " if len(msgs) > 1 else ""
        raise ValueError(head + "\n  ".join(msgs)) from None
    cfg._source, cfg._lines = source, lines
    if cfg.models:
        import hwmodels

        registry = set(hwmodels.available())
        for name in cfg.models:
            if name in registry:
                raise ValueError(f"{cfg.where(f'models.{name}')}: the table name {name!r} is "
                                 "a registered model name; rename the table (it would "
                                 "shadow the registry's model)")
    for i, s in enumerate(cfg.strategies):
        try:
            s.check()
        except ValueError as exc:
            raise ValueError(f"{cfg.where(f'strategies[{i}]')}: {exc}") from None
    return cfg


# pydantic's union branch tags in error locations (not keys of the file)
_UNION_TAGS = ("float", "int", "str", "bool", "list[float]", "list[str]", "dict[str,any]")


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration."""
    from accsim.run.validation import parse_toml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"configuration file {str(path)!r} does not exist")
    try:
        text = path.read_text()
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        import re

        m = re.search(r"line (\d+)", str(exc))
        raise ValueError(f"{path}{':' + m.group(1) if m else ''}: not valid TOML: {exc}") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the configuration: {exc}") from None
    return parse_config(data, str(path), text)
