"""No numba dispatcher in accsim or hwmodels may use fastmath (even "contract" fuses
a*b + c into an FMA and changes bits)."""

import importlib
import pkgutil

from numba.core.registry import CPUDispatcher

import accsim
import hwmodels


def _modules():
    for pkg in (accsim, hwmodels):
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            yield info.name


def test_no_dispatcher_uses_fastmath():
    seen = 0
    for name in _modules():
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher):
                seen += 1
                fm = obj.targetoptions.get("fastmath", False)
                assert not fm, f"{name}.{attr} uses fastmath={fm!r}"
    assert seen > 10  # the scan found the kernels
