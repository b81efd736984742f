"""Hardware accumulator models: a registry of named models.

Built-in families live in one module each (``hwmodels.generic``, ``hwmodels.nvidia``,
``hwmodels.amd``) and register themselves on import; third parties register through the
entry point group ``accsim.hwmodels`` (an entry point names a callable taking the
``register`` function, or a module that registers on import). Entry points that fail to
load produce a warning, never an error (as xarray's backend plugins do).

Names: NVIDIA and AMD models are ``"ARCH:INSTRUCTION"`` (e.g.
``"hopper:wgmma.m64n8k32.f32.e4m3.e4m3"``, ``"cdna3:mfma.f32_32x32x8f16"``); generic models
have plain names (e.g. ``"fp16-fma-chain"``).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points

from accsim.accumulators.base import Model
from accsim.accumulators.factory import build_model

ARCHS = ("volta", "turing", "ampere", "ada", "hopper", "blackwell", "rtx-blackwell",
         "cdna1", "cdna2", "cdna3")
BUILTIN_MODULES = ("hwmodels.generic", "hwmodels.nvidia", "hwmodels.amd")
ENTRY_POINT_GROUP = "accsim.hwmodels"

_MAX_LISTED = 40  # longer lists of instructions: close matches only

_REGISTRY: dict[str, Callable] = {}
_CACHE: dict[str, object] = {}
_loaded = False


def register(name: str, factory: Callable, *, overwrite: bool = False) -> None:
    """Register a model factory (a zero-argument callable returning the model)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory
    _CACHE.pop(name, None)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a family not yet present
            if exc.name != mod:
                raise
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj(register)
        except Exception as exc:  # noqa: BLE001 - plugin failures must not break accsim
            warnings.warn(
                f"accsim.hwmodels entry point {ep.name!r} failed to load: {exc!r}",
                RuntimeWarning,
                stacklevel=2,
            )


def available(arch: str | None = None) -> list[str]:
    """Every registered model name (optionally only those of one architecture)."""
    _load()
    names = sorted(_REGISTRY)
    if arch is not None:
        names = [n for n in names if n.startswith(arch + ":")]
    return names


def get(arch: str, instruction: str | None = None):
    """The model for ``arch`` and ``instruction`` (or a full name in ``arch``).

    Examples
    --------
    >>> hwmodels.get("hopper", "wgmma.m64n8k32.f32.e4m3.e4m3")  # doctest: +SKIP
    >>> hwmodels.get("fp16-fma-chain")  # doctest: +SKIP

    Raises
    ------
    ValueError
        Unknown architecture, or unknown instruction (the message lists the valid
        instructions of that architecture).
    """
    _load()
    if not isinstance(arch, str) or not (instruction is None or isinstance(instruction, str)):
        raise ValueError(f"model names are strings (\"ARCH:INSTRUCTION\" or a generic "
                         f"name), got {arch!r}" + (f", {instruction!r}" if instruction
                                                   is not None else ""))
    if instruction is None:
        name = arch
        if ":" in name:
            arch, instruction = name.split(":", 1)
    else:
        name = f"{arch}:{instruction}"
    if name in _REGISTRY:
        if name not in _CACHE:
            _CACHE[name] = _REGISTRY[name]()
        return _CACHE[name]
    if instruction is None:
        generic = [n for n in _REGISTRY if ":" not in n]
        raise ValueError(
            f"unknown model {name!r}; generic models: {', '.join(sorted(generic))}; "
            f"hardware models are named ARCH:INSTRUCTION with ARCH in {', '.join(ARCHS)}"
        )
    known_archs = sorted({n.split(":", 1)[0] for n in _REGISTRY if ":" in n})
    if arch not in known_archs:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(known_archs)}")
    valid = [n.split(":", 1)[1] for n in available(arch)]
    if len(valid) <= _MAX_LISTED:
        raise ValueError(
            f"unknown instruction {instruction!r} for {arch}; valid: {', '.join(valid)}"
        )
    import difflib

    close = difflib.get_close_matches(instruction, valid, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    kinds = sorted({v.split(".", 1)[0] for v in valid})
    raise ValueError(
        f"unknown instruction {instruction!r} for {arch}; {hint}{arch} has {len(valid)} "
        f"instructions ({', '.join(k + '.*' for k in kinds)}), e.g. {', '.join(valid[:3])}; "
        f"list them with hwmodels.available({arch!r})"
    )


def resolve(spec):
    """The one model resolver, for single runs and sweeps alike.

    A name (``"ARCH:INSTRUCTION"`` or a generic name) is looked up with :func:`get`; a
    dict spec (``{"family": ...}``) is built by
    :func:`accsim.accumulators.factory.build_model`; a model is returned as is.

    Raises
    ------
    ValueError
        Unknown name, family, field or format (the message lists the valid ones).
    """
    if isinstance(spec, str):
        return get(spec)
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, dict):
        return build_model(spec)
    raise ValueError(f"model spec must be a registry name, a dict or a model, got {spec!r}")


__all__ = ["ARCHS", "available", "get", "register", "resolve"]
