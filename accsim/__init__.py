"""accsim: a hardware-accurate accumulator simulator for neural network inference.

Public entry points: :func:`format` and :class:`FloatFormat` (number formats),
:func:`round` (exact rounding in every mode), :mod:`accsim.numbers.atoms` (add, multiply
and FMA rounded once), the accumulator families in :mod:`accsim.accumulators`, exact
references in :mod:`accsim.numbers.exact`, bounds in :mod:`accsim.accumulators.bounds`.

The layers, bottom to top (``docs/architecture.md``): ``kernels`` (jitted code),
``numbers``, ``accumulators``, ``analysis``, ``run`` / ``graph`` / ``transformer``,
``batch``, ``cli`` / ``plots``. The short public names of version 0.1 (``accsim.exact``,
``accsim.bounds``, ``accsim.formats``, ...) stay valid, as attributes and as import paths.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from accsim.numbers.formats import FloatFormat, available_formats, format
from accsim.numbers.rounding import round

__version__ = "0.1.0"

__all__ = ["FloatFormat", "format", "round", "available_formats", "__version__"]

#: Public short names (README, docs) -> the module that implements them.
PUBLIC_MODULES = {
    "accumulators": "accsim.accumulators",
    "atoms": "accsim.numbers.atoms",
    "bounds": "accsim.accumulators.bounds",
    "codecs": "accsim.numbers.codecs",
    "datasets": "accsim.run.datasets",
    "exact": "accsim.numbers.exact",
    "executor": "accsim.run.executor",
    "experiment": "accsim.run.experiment",
    "formats": "accsim.numbers.formats",
    "kappa": "accsim.analysis.kappa",
    "rounding": "accsim.numbers.rounding",
    "strategies": "accsim.run.strategies",
    "verify": "accsim.analysis.verify",
}
PUBLIC_FUNCTIONS = {"import_torch": "accsim.graph.importers.torch_export",
                    "simulate": "accsim.graph.api"}
#: Internal modules of version 0.1 that moved; importing the old path names the new one.
MOVED_MODULES = {
    "arrays": "accsim.numbers.arrays", "seeds": "accsim.numbers.seeds",
    "stats": "accsim.analysis.stats", "cost": "accsim.run.cost",
    "run_config": "accsim.run.config", "tomlkeys": "accsim.run.tomlkeys",
    "outputs": "accsim.run.outputs", "opclass": "accsim.transformer.opclass",
    "op_runner": "accsim.transformer.op_runner", "lamp": "accsim.transformer.lamp",
    "minilm_run": "accsim.transformer.minilm_run",
    "embed_metrics": "accsim.transformer.embed_metrics",
    "cli_run": "accsim.cli.run", "cli_verify": "accsim.cli.verify",
    "cli_sweep": "accsim.cli.sweep", "cli_models": "accsim.cli.models",
    "cli_minilm": "accsim.cli.minilm", "plot_run": "accsim.plots.run",
    "plot_sweep": "accsim.plots.sweep", "plot_verify": "accsim.plots.verify",
    "minilm_plot": "accsim.plots.minilm",
}


class _Alias(importlib.abc.Loader):
    """Loads ``accsim.<short name>`` as the module that implements it (one module
    object under two names, so ``accsim.exact is accsim.numbers.exact``)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class _PublicNames(importlib.abc.MetaPathFinder):
    """``import accsim.exact`` and ``from accsim.bounds import ...`` keep working; an
    internal module that moved gets an error naming its new path."""

    def find_spec(self, fullname, path=None, target=None):
        pkg, _, leaf = fullname.partition(".")
        if pkg != "accsim" or "." in leaf:
            return None
        if leaf in PUBLIC_MODULES:
            return importlib.util.spec_from_loader(fullname, _Alias(PUBLIC_MODULES[leaf]))
        if leaf in MOVED_MODULES:
            raise ModuleNotFoundError(
                f"{fullname} moved to {MOVED_MODULES[leaf]} (accsim 0.2 subpackages, "
                f"docs/architecture.md)", name=fullname)
        return None


if not any(isinstance(f, _PublicNames) for f in sys.meta_path):
    sys.meta_path.append(_PublicNames())


def __getattr__(name: str):
    """``accsim.exact.matmul`` and the other public short names without an import."""
    if name in PUBLIC_MODULES:
        return importlib.import_module(PUBLIC_MODULES[name])
    if name in PUBLIC_FUNCTIONS:  # accsim.import_torch, accsim.simulate (docs/graph.md)
        return getattr(importlib.import_module(PUBLIC_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'accsim' has no attribute {name!r}")
