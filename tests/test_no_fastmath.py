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
            if not info.name.endswith(".__main__"):  # running it would start the CLI
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


def test_project_jit_options_do_not_contract_multiply_add():
    """``a*b + c`` compiled with accsim's JIT options rounds twice (no FMA contraction),
    while the explicit ``fma`` intrinsic rounds once: the inputs are chosen so the two
    differ, so this test fails if contraction ever creeps in."""
    import numpy as np
    from numba import njit

    from accsim.kernels.bits import JIT, fma

    @njit(**{k: v for k, v in JIT.items() if k != "cache"})
    def mul_add(a, b, c):
        return a * b + c

    @njit(**{k: v for k, v in JIT.items() if k != "cache"})
    def fused(a, b, c):
        return fma(a, b, c)

    a = 1.0 + 2.0**-30
    b = 1.0 - 2.0**-30
    c = -1.0
    two_roundings = np.float64(a) * np.float64(b) + np.float64(c)  # numpy: never fused
    assert mul_add(a, b, c) == two_roundings == 0.0
    assert fused(a, b, c) == -(2.0**-60)  # the exact a*b - 1
