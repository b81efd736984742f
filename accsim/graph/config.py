"""TOML configuration of a layer-graph run (``accsim run`` on a file with ``[network]``).

::

    [network]
    name = "mnist-cnn"
    format = "pth"                   # pth | npz (architecture below) | h5 (from the file)
                                     # | torch: file = "model.py:build" (returns module,
                                     #   example inputs) or "model.pt2" (torch.export.save)
    file = "pkg:ccexam/weights/mnist.pth"   # pkg:PACKAGE/PATH = a file of an installed
                                            # package (scripts/install_pretrained.sh)
    input_shape = [1, 28, 28]        # channel-first; h5: read from the file
    [[network.layers]]               # pth/npz only (see accsim.graph.importers.spec)
    type = "conv2d"
    name = "features.0"
    out_channels = 32
    kernel = 3
    padding = 1
    activation = "relu"

    [inputs]
    source = "foolbox"               # foolbox (images shipped by foolbox 3.3.4) | npz |
                                     # registry (networks.fetch: mnist, fashion-mnist)
    dataset = "mnist"                # foolbox: mnist | cifar10 | fashionMNIST
    scale = 0.00392156862745098      # x = (pixels * scale - mean) / std, per channel
    mean = [0.1307]
    std = [0.3081]

    [run]                            # as accsim.run.config, without network/activations
    [models.fp8] ...                 # as accsim.run.config

    [[strategies]]                   # as accsim.run.config, plus:
    kind = "adaptive"
    low = "fp8"
    high = "fp16"
    tau = [1.0, 10.0]
    assign = { dense = "fp16" }      # op classes (conv, dense, avgpool) that run on a
                                     # uniform model instead of this strategy
    scale = "float8_e4m3fn"          # per-tensor power-of-two input scaling into a format
    controls = true                  # adaptive: also random and oracle at matched cost
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from accsim.run import tomlkeys
from accsim.run.config import StrategySpec, validation_messages

__all__ = ["GraphRunConfig", "load_graph_config", "is_graph_config", "resolve_file"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSection(_Strict):
    name: str
    format: Literal["pth", "npz", "h5", "torch"]
    file: str
    input_shape: list[int] | None = None
    layers: list[dict] | None = None


class InputsSection(_Strict):
    source: Literal["foolbox", "npz", "registry"]
    dataset: str | None = None
    file: str | None = None
    scale: float = 1.0
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])


class GraphRunSection(_Strict):
    samples: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)
    batch: int = Field(20, ge=1)
    record_samples: int = Field(2, ge=0)
    output: str = "results/graph.zarr"
    input_format: str = "binary32"
    activation_format: str = "binary32"
    plots: bool = False
    control_seeds: int = Field(1, ge=1, le=100, description="replicates of each random "
                               "control (random, random-active); seeds seed..seed+k-1")


class GraphStrategySpec(StrategySpec):
    assign: dict[str, str] = Field(default_factory=dict)
    scale: str | None = None
    controls: bool = False


class GraphRunConfig(_Strict):
    network: NetworkSection
    inputs: InputsSection
    run: GraphRunSection = Field(default_factory=GraphRunSection)
    models: dict[str, dict] = Field(default_factory=dict)
    strategies: list[GraphStrategySpec] = Field(min_length=1)
    _source: str = PrivateAttr("<config>")
    _lines: dict = PrivateAttr(default_factory=dict)

    def where(self, key: str) -> str:
        return tomlkeys.where(self._source, self._lines, key)


def is_graph_config(path) -> bool:
    """True if the TOML file has a ``[network]`` table (a layer-graph run)."""
    from accsim.run.validation import parse_toml

    try:
        return "network" in parse_toml(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def resolve_file(spec: str, base: Path | None = None) -> Path:
    """``pkg:PACKAGE/REL`` -> the file inside the installed package (found with
    :func:`importlib.util.find_spec`, without importing it); otherwise a path (relative
    to ``base``). Raises ``ValueError`` if the package or the file is missing."""
    if spec.startswith("pkg:"):
        import importlib.util

        pkg, _, rel = spec[4:].partition("/")
        try:
            s = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            s = None
        if s is None or not s.submodule_search_locations:
            raise ValueError(f"package {pkg!r} is not installed (run "
                             "sh scripts/install_pretrained.sh)")
        p = Path(list(s.submodule_search_locations)[0]) / rel
    else:
        p = Path(spec)
        if not p.is_absolute() and base is not None and not p.exists():
            p = base / p
    if not p.is_file():
        raise ValueError(f"file {str(p)!r} does not exist")
    return p


def load_graph_config(path) -> GraphRunConfig:
    """Read and validate; errors name ``FILE:LINE: key``."""
    from accsim.run.tomlkeys import key_lines

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"configuration file {str(path)!r} does not exist")
    from accsim.run.tomlkeys import where
    from accsim.run.validation import (
        check_document,
        check_layers,
        check_shape,
        format_key,
        parse_toml,
    )

    try:
        text = path.read_text()
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the configuration: {exc}") from None
    lines = key_lines(text)
    bad = check_document(GraphRunConfig, data)
    net = data.get("network") if isinstance(data.get("network"), dict) else {}
    bad = bad or check_shape(net.get("input_shape"), ("network", "input_shape")) \
        or check_layers(net.get("layers"), ("network", "layers"))
    if bad:
        raise ValueError(f"{where(str(path), lines, format_key(bad[0]))}: {bad[1]}")
    try:
        cfg = GraphRunConfig.model_validate(data)
    except ValidationError as exc:
        probe = GraphRunConfig.model_construct()
        probe._source, probe._lines = str(path), lines
        raise ValueError("\n  ".join(validation_messages(exc, probe.where))) from None
    cfg._source, cfg._lines = str(path), lines
    for i, s in enumerate(cfg.strategies):
        try:
            s.check()
        except ValueError as exc:
            raise ValueError(f"{cfg.where(f'strategies[{i}]')}: {exc}") from None
    return cfg
