"""The package's structure: no import cycles, bottom layers import at module level only,
one family registry (a toy family is one registration)."""

import ast
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import same_bits

import accsim
import hwmodels
from accsim.accumulators import bounds
from accsim.accumulators.base import Accumulator
from accsim.accumulators.factory import build_model
from accsim.accumulators.registry import (
    Family,
    family_names,
    get_family,
    register_family,
    unregister_family,
)
from accsim.numbers.formats import FloatFormat

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accsim", "hwmodels")
# Layers below the run / batch / interface code: every accsim import at module level.
BOTTOM = ("accsim.kernels", "accsim.numbers", "accsim.accumulators", "accsim.numbers.exact",
          "accsim.accumulators.bounds", "accsim.analysis.kappa", "accsim.run.tomlkeys", "hwmodels")


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            mods[".".join(parts)] = (f, is_pkg)
    return mods


def _targets(mod: str, is_pkg: bool, node, mods) -> list[str]:
    """The package modules an import statement loads (parent packages included)."""
    names = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = mod.split(".") if is_pkg else mod.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module
        for a in node.names:
            sub = f"{prefix}.{a.name}"
            names.append(sub if sub in mods else prefix)
    out = []
    for n in names:
        while n and n not in mods:
            n = n.rpartition(".")[0]
        while n:  # importing a.b.c runs a/__init__ and a/b/__init__ first
            if n in mods:
                out.append(n)
            n = n.rpartition(".")[0]
    return out


def _graph():
    mods = _modules()
    edges = {m: set() for m in mods}
    nested = []
    for m, (f, is_pkg) in mods.items():
        tree = ast.parse(f.read_text(), str(f))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                t = [x for x in _targets(m, is_pkg, node, mods) if x != m
                     and not m.startswith(x + ".")]  # a module's own parents run first anyway
                edges[m].update(t)
                if t and id(node) not in top:
                    nested.append((m, node.lineno, t[0]))
    return edges, nested


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    edges, _ = _graph()
    assert len(edges) > 40  # the scan sees the package
    assert _cycles(edges) == []


def test_cycle_detector_sees_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_bottom_layers_import_at_module_level():
    _, nested = _graph()
    bad = [(m, line, t) for m, line, t in nested if m.startswith(BOTTOM)]
    assert bad == []


#: The layers of docs/architecture.md, bottom first: a module imports only from its own
#: layer or lower ones (nested imports included).
LAYERS = (
    ("accsim.kernels",),
    ("accsim.numbers", "accsim"),
    ("accsim.accumulators",),
    ("hwmodels",),
    ("accsim.analysis",),
    # the run layer holds the one engine and its network IR (accsim/graph's core: the
    # ops, the graph, the engine, the runner, the tally), so the MLP runs go through it
    ("accsim.run", "accsim.graph"),
    # the front ends of graphs: configs, importers, public API, CLI helpers
    ("accsim.graph.api", "accsim.graph.cli", "accsim.graph.config", "accsim.graph.data",
     "accsim.graph.experiment", "accsim.graph.importers", "accsim.transformer"),
    ("accsim.batch",),
    ("accsim.plots", "accsim.cli", "accsim.warmup"),
)


def _layer(mod: str) -> int:
    best, depth = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and len(n) > depth:
                best, depth = i, len(n)
    assert best is not None, f"{mod} is in no layer of LAYERS"
    return best


def test_no_module_imports_a_higher_layer():
    edges, _ = _graph()
    upward = sorted((m, t) for m, ts in edges.items() for t in ts if _layer(t) > _layer(m))
    assert upward == []


def test_layer_check_sees_an_upward_import():
    assert _layer("accsim.accumulators.base") < _layer("accsim.run.experiment")
    assert _layer("accsim") == _layer("accsim.numbers.formats")
    assert _layer("accsim.batch.config") > _layer("accsim.run.config")


#: Modules outside accsim/kernels that may import numba, and why: thread control only
#: (``numba.set_num_threads``), never a jitted function.
NUMBA_THREAD_CONTROL = ("accsim.transformer.policies", "accsim.batch.runner", "accsim.warmup")


def _numba_importers() -> list[str]:
    out = []
    for m, (f, _) in _modules().items():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(n == "numba" or n.startswith("numba.") for n in names):
                out.append(m)
                break
    return sorted(out)


def test_jitted_code_lives_in_kernels():
    """All numba code is under accsim/kernels; the layers above are plain Python."""
    users = _numba_importers()
    assert "accsim.kernels.accumulate" in users  # the scan sees numba imports
    outside = [m for m in users if not m.startswith("accsim.kernels")
               and m not in NUMBA_THREAD_CONTROL]
    assert outside == []


def _bare_mode_compares(tree) -> list[int]:
    """Lines comparing a name containing ``mode`` with an int literal."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = any(isinstance(x, ast.Name) and "mode" in x.id.lower() for x in sides)
            lit = any(isinstance(x, ast.Constant) and type(x.value) is int for x in sides)
            if named and lit:
                bad.append(node.lineno)
    return bad


def test_kernels_compare_modes_by_name():
    """Kernels compare modes against the vocabulary (RNE .. SR), never bare integers."""
    assert _bare_mode_compares(ast.parse("if mode == 6:\n    pass\n")) == [1]
    bad = {m: lines for m, (f, _) in _modules().items() if m.startswith("accsim.kernels")
           and (lines := _bare_mode_compares(ast.parse(f.read_text())))}
    assert bad == {}


# ------------------------------------------------------------------- one registration
@dataclass(frozen=True)
class ToySum(Accumulator):
    """Toy family: the exact sum rounded once toward zero into ``out_format``."""

    out_format: FloatFormat = field(default_factory=lambda: accsim.format("binary16"))
    mode: str = "rz"

    family = "toy-exact-rz"

    def __post_init__(self):
        object.__setattr__(self, "out_format", accsim.format(self.out_format))

    def _matmul(self, A, B, C, seed):
        return accsim.round(accsim.exact.matmul(A, B, C), self.out_format, self.mode)


@pytest.fixture
def toy_family():
    fam = register_family(Family("toy-exact-rz", ToySum, bound=bounds.kulisch_bound,
                                 reference="ref_kulisch"))
    yield fam
    unregister_family("toy-exact-rz")


def test_toy_family_is_one_registration(toy_family, ref):
    assert "toy-exact-rz" in family_names()
    m = build_model({"family": "toy-exact-rz", "out_format": "fp16"})
    assert isinstance(m, ToySum) and m.out_format.name == "binary16"
    assert hwmodels.resolve({"family": "toy-exact-rz"}).family == "toy-exact-rz"
    rng = np.random.default_rng(3)
    A = accsim.round(rng.standard_normal((3, 9)), "bf16")
    B = accsim.round(rng.standard_normal((9, 2)), "bf16")
    C = accsim.round(rng.standard_normal((3, 2)), "bf16")
    D = m.matmul(A, B, C)
    reference = getattr(ref, toy_family.reference)
    want = [[reference(list(A[i]), list(B[:, j]), float(C[i, j]), ref.binary16(), "rz")
             for j in range(2)] for i in range(3)]
    assert same_bits(D, np.array(want, dtype=np.float64)).all()
    # the bound comes from the same registration
    E = m.error_bound(A, B, C)
    for i in range(3):
        for j in range(2):
            exact = sum(Fraction(A[i, k]) * Fraction(B[k, j]) for k in range(9)) \
                + Fraction(C[i, j])
            assert abs(Fraction(D[i, j]) - exact) <= Fraction(E[i, j])
            assert math.isfinite(E[i, j])


def test_registry_rejects_bad_registrations():
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family("recursive", ToySum, bound=bounds.kulisch_bound,
                               reference="ref_kulisch"))
    with pytest.raises(ValueError, match="ToySum.family is 'toy-exact-rz', not 'other'"):
        register_family(Family("other", ToySum, bound=bounds.kulisch_bound, reference="x"))
    with pytest.raises(ValueError, match="unknown family 'nope'; valid: .*recursive"):
        get_family("nope")


def test_every_family_has_a_bound_and_a_fraction_reference(ref):
    import accsim.accumulators.builtin  # noqa: F401 - the built-in families

    names = family_names()
    assert {"recursive", "blocked", "pairwise", "promotion", "kahan", "kulisch", "fused",
            "exact-step", "ftz-pairwise"} <= set(names)
    for name in names:
        fam = get_family(name)
        assert fam.cls.family == name
        assert callable(fam.bound)
        assert callable(getattr(ref, fam.reference)), (name, fam.reference)


# ------------------------------------------------------------------- public names
def test_public_names_are_listed_and_resolve():
    """Every name of ``accsim.__all__`` resolves, ``dir(accsim)`` shows it, and the short
    module names are the modules that implement them."""
    import importlib

    assert {"matmul", "MatmulResult", "exact", "verify", "datasets"} <= set(accsim.__all__)
    for name in accsim.__all__:
        assert getattr(accsim, name) is not None, name
        assert name in dir(accsim), name
    for name, target in accsim.LAZY.items():
        module, _, attr = target.partition(":")
        want = importlib.import_module(module)
        assert getattr(accsim, name) is (getattr(want, attr) if attr else want), name
    assert accsim.exact is importlib.import_module("accsim.numbers.exact")
    with pytest.raises(AttributeError, match="no attribute 'cli_run'"):
        accsim.cli_run  # noqa: B018


def test_no_import_hook_is_installed():
    """The short names are attributes only: ``import accsim`` adds no finder."""
    import sys

    assert not [f for f in sys.meta_path if type(f).__module__.startswith("accsim")]
    with pytest.raises(ModuleNotFoundError):
        import accsim.exact  # noqa: F401


def test_every_top_level_module_is_in_a_layer():
    flat = sorted(p.stem for p in (ROOT / "accsim").glob("*.py"))
    assert flat == ["__init__", "warmup"]
    for name in accsim.LAZY:
        assert name not in flat
