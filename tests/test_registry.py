"""The hwmodels registry: built-ins, third-party entry points, load failures as warnings."""

import pytest

import hwmodels
from accsim.accumulators.recursive import RecursiveSum


class _EP:
    def __init__(self, name, obj=None, exc=None):
        self.name, self._obj, self._exc = name, obj, exc

    def load(self):
        if self._exc is not None:
            raise self._exc
        return self._obj


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that reloads built-ins and the (fake) entry points."""
    hwmodels.available()  # load the real registry first: monkeypatch restores it after
    monkeypatch.setattr(hwmodels, "_REGISTRY", {})
    monkeypatch.setattr(hwmodels, "_CACHE", {})
    monkeypatch.setattr(hwmodels, "_loaded", False)
    import importlib

    for mod in hwmodels.BUILTIN_MODULES:  # re-run the modules' registrations
        importlib.reload(importlib.import_module(mod))
    monkeypatch.setattr(hwmodels, "_loaded", False)
    return monkeypatch


def test_entry_point_registers_and_broken_one_warns(fresh_registry):
    def plugin(register):
        register("acme-fp12-chain", lambda: RecursiveSum(
            name="acme-fp12-chain", acc_format="binary16", product="fused"))

    eps = [_EP("acme", plugin), _EP("broken", exc=ImportError("no module named acme_gpu"))]
    fresh_registry.setattr(hwmodels, "entry_points", lambda group: eps)
    with pytest.warns(RuntimeWarning, match="broken.*no module named acme_gpu"):
        names = hwmodels.available()
    assert "acme-fp12-chain" in names
    assert "hopper:wgmma.m64n8k32.f32.e4m3.e4m3" in names  # built-ins still there
    assert hwmodels.get("acme-fp12-chain").dot([1.0, 2.0], [3.0, 4.0]) == 11.0


def test_duplicate_registration_is_refused():
    name = hwmodels.available()[0]
    with pytest.raises(ValueError, match="already registered"):
        hwmodels.register(name, lambda: None)


def test_unknown_names_list_valid_choices():
    with pytest.raises(ValueError, match="unknown architecture 'pentium'"):
        hwmodels.get("pentium", "mma.m16n8k16.f32.f16.f16.f32")
    with pytest.raises(ValueError, match="generic models: .*fp16-fma-chain"):
        hwmodels.get("no-such-model")
