"""accsim: a hardware-accurate accumulator simulator for neural network inference.

The public API (``accsim.__all__``):

* number formats and rounding: :class:`FloatFormat`, :func:`format`,
  :func:`available_formats`, :func:`round`, :class:`RoundingMode`;
* models: :func:`get_model` (a registry name or a dict spec, :func:`hwmodels.resolve`),
  :func:`available_models`, :func:`build_model`;
* one simulated matmul with its exact reference and bound: :func:`matmul`, returning a
  :class:`MatmulResult` (``.computed``, ``.exact``, ``.bound``, ``.holds``);
* a network: :func:`import_torch` (a PyTorch module through ``torch.export``) and
  :func:`simulate` (a layer graph on accumulator models, docs/graph.md);
* :func:`error_bound`, :func:`exact_matmul`, :func:`open_dataset`;
* the modules most users reach for, by short name: ``accsim.exact``, ``accsim.bounds``,
  ``accsim.verify``, ``accsim.datasets``, ``accsim.rounding``, ``accsim.formats``,
  ``accsim.atoms``, ``accsim.codecs``, ``accsim.kappa`` (attributes, loaded on first use;
  import them by their full path, e.g. ``import accsim.numbers.exact``).

The layers, bottom to top (``docs/architecture.md``): ``kernels`` (jitted code),
``numbers``, ``accumulators``, ``analysis``, ``run`` / ``graph`` / ``transformer``,
``batch``, ``cli`` / ``plots``.
"""

import importlib

from accsim.kernels.vocab import RoundingMode
from accsim.numbers.formats import FloatFormat, available_formats, format
from accsim.numbers.rounding import round

__version__ = "0.1.0"

#: Public names loaded on first use (PEP 562: ``import accsim`` stays light and the
#: layers above ``numbers`` are not imported by it). Name -> module, or module:attribute.
LAZY = {
    "matmul": "accsim.analysis.verify:matmul",
    "MatmulResult": "accsim.analysis.verify:VerifyResult",
    "import_torch": "accsim.graph.importers.torch_export:import_torch",
    "simulate": "accsim.graph.api:simulate",
    "error_bound": "accsim.accumulators.bounds:error_bound",
    "exact_matmul": "accsim.numbers.exact:matmul",
    "build_model": "accsim.accumulators.factory:build_model",
    "get_model": "hwmodels:resolve",
    "available_models": "hwmodels:available",
    "open_dataset": "accsim.run.datasets:load",
    "atoms": "accsim.numbers.atoms",
    "bounds": "accsim.accumulators.bounds",
    "codecs": "accsim.numbers.codecs",
    "datasets": "accsim.run.datasets",
    "exact": "accsim.numbers.exact",
    "formats": "accsim.numbers.formats",
    "kappa": "accsim.analysis.kappa",
    "rounding": "accsim.numbers.rounding",
    "verify": "accsim.analysis.verify",
}

__all__ = ["__version__", "FloatFormat", "RoundingMode", "available_formats", "format",
           "round", *LAZY]


def __getattr__(name: str):
    if name not in LAZY:
        raise AttributeError(f"module 'accsim' has no attribute {name!r}")
    module, _, attr = LAZY[name].partition(":")
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))
