"""accsim: a hardware-accurate accumulator simulator for neural network inference.

Public entry points: :func:`format` and :class:`FloatFormat` (number formats),
:func:`round` (exact rounding in every mode), :mod:`accsim.atoms` (add, multiply and
FMA rounded once), the accumulator families in :mod:`accsim.accumulators`, exact
references in :mod:`accsim.exact`, bounds in :mod:`accsim.bounds`.
"""

from .formats import FloatFormat, available_formats, format
from .rounding import round

__version__ = "0.1.0"

__all__ = ["FloatFormat", "format", "round", "available_formats", "__version__"]

_SUBMODULES = ("accumulators", "atoms", "bounds", "codecs", "datasets", "exact", "executor",
               "experiment", "formats", "kappa", "rounding", "strategies", "verify")


def __getattr__(name: str):
    """Import submodules on first use (``accsim.exact.matmul`` without an import)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'accsim' has no attribute {name!r}")
