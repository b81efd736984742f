"""The accumulator model interface shared by every family and hardware model.

An accumulator model computes ``D = A @ B + C`` exactly as some hardware (or a design
under study) would: every output component ``D[i, j]`` is the sum of the terms
``A[i, k] * B[k, j]`` (k = 0..K-1) and ``C[i, j]`` in a fixed, documented order and
with documented roundings. Models are small parameter objects; the arithmetic lives in
numba kernels that see only arrays and plain numbers.

Contract (every family implements it):

``matmul(A, B, C=None, *, seed=0) -> ndarray``
    ``A`` (M, K), ``B`` (K, N), ``C`` (M, N) or None (zeros), all float64 arrays whose
    values are representable in the model's input formats (``a_format``, ``b_format``,
    ``c_format``; :meth:`check_inputs` verifies). Returns float64 (M, N) holding values
    of ``out_format``. ``seed`` keys the stochastic-rounding generator: the random word
    for output ``(i, j)`` at rounding number ``t`` is ``random_u64(seed, i * N + j, t)``,
    so results depend on neither threads nor chunking.
``error_bound(A, B, C=None, kind="deterministic", **kw) -> ndarray``
    Componentwise bound on ``|D - exact|`` (see :mod:`accsim.accumulators.bounds`).
``cost_bits(n)``
    Hardware cost of one inner product of length ``n``: accumulator significand bits
    times number of terms (see the executor's cost model).
``describe() -> dict``
    Flat dict of str/int/float parameters (fits netCDF attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from accsim.accumulators import bounds
from accsim.numbers.arrays import as_float64, check_matmul_shapes
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.rounding import check_seed
from accsim.numbers.rounding import round as _round

__all__ = ["Model", "Accumulator", "run_model", "as_format", "as_float64",
           "check_matmul_shapes", "summarize"]


def as_format(f: str | FloatFormat | None) -> FloatFormat | None:
    """Resolve a format name (None passes through: 'exact', any binary64 value)."""
    return None if f is None else get_format(f)


def _representable(X: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    finite = np.isfinite(X)
    R = _round(np.where(finite, X, 0.0), fmt, "rne")
    return ~finite | (R == X)


class Model:
    """The one model protocol: what the executor, ``verify``, bounds and the datasets
    use of any model, a plain :class:`Accumulator` or a typed hardware model
    (``hwmodels._typed.HardwareModel``).

    ``name``, ``family``, ``source``
        Identity and citation.
    ``accumulator``
        The arithmetic (an :class:`Accumulator`; itself for a plain accumulator).
    ``matmul_values(A64, B64, C64=None, *, seed=0, quantize=False)``
        float64 values in and out. ``quantize=True`` first rounds the operands into the
        storage types the model declares (:meth:`quantize_operands`).
    ``quantize_operands(A64, B64, C64=None)`` and ``quantizes_operands``
        The operand rounding (RNE into the instruction's input types) and whether the
        model has one (typed hardware models); for plain accumulators it is the
        identity on float64 operands (``check_inputs`` rejects values outside declared
        formats instead).
    ``error_bound``, ``cost_bits``, ``unit_roundoff``, ``describe``
        See :class:`Accumulator`.
    """

    quantizes_operands = False

    @property
    def accumulator(self):
        return self

    def quantize_operands(self, A64, B64, C64=None):
        return check_matmul_shapes(A64, B64, C64)

    def matmul_values(self, A64, B64, C64=None, *, seed: int = 0, quantize: bool = False):
        if quantize:
            A64, B64, C64 = self.quantize_operands(A64, B64, C64)
        return self.matmul(A64, B64, C64, seed=seed)

    def matmul(self, A, B, C=None, *, seed: int = 0):  # pragma: no cover - abstract
        raise NotImplementedError


def run_model(model: Model, A, B, C=None, *, seed: int = 0, quantize: bool = True):
    """``model`` on float64 operands, float64 out: the one way the executor and
    :mod:`accsim.analysis.verify` run a model. Hardware models first round the operands into
    their instruction's input types (RNE, ``quantize=True``), as a kernel converting
    fp32 activations before issuing the instruction would (docs/executor.md); K is
    padded with zero terms to the instruction's k. ``seed`` keys stochastic rounding."""
    return np.asarray(model.matmul_values(A, B, C, seed=seed, quantize=quantize), np.float64)


@dataclass(frozen=True, repr=False)
class Accumulator(Model):
    """Base class: a named accumulator model with input/output formats.

    Attributes
    ----------
    name : str
        Registry name or a description.
    a_format, b_format, c_format : FloatFormat or None
        Formats of the operands (None: any binary64 value; products must then be exact
        in binary64 for the family's exactness claims, see each family).
    out_format : FloatFormat
        Format of D.
    source : str
        Citation of the fact(s) the model implements.
    """

    name: str = "accumulator"
    a_format: FloatFormat | None = None
    b_format: FloatFormat | None = None
    c_format: FloatFormat | None = None
    out_format: FloatFormat = field(default_factory=lambda: get_format("binary32"))
    source: str = ""

    family = "abstract"

    # ---------------------------------------------------------------- interface
    def matmul(self, A, B, C=None, *, seed: int = 0) -> np.ndarray:
        A, B, C = check_matmul_shapes(A, B, C)
        self.check_inputs(A, B, C)
        return self._matmul(A, B, C, check_seed(seed))

    def _matmul(self, A, B, C, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def dot(self, a, b, c: float = 0.0, *, seed: int = 0) -> float:
        """One inner product ``sum a_i b_i + c`` (convenience for tests)."""
        a = np.asarray(a, np.float64)[None, :]
        b = np.asarray(b, np.float64)[:, None]
        return float(self.matmul(a, b, np.array([[c]], np.float64), seed=seed)[0, 0])

    def error_bound(self, A, B, C=None, kind: str = "deterministic", **kw) -> np.ndarray:
        return bounds.error_bound(self, A, B, C, kind=kind, **kw)

    def cost_bits(self, n: int) -> float:
        """Accumulator significand bits times number of terms."""
        return float(self.out_format.p * n)

    @property
    def unit_roundoff(self) -> float:
        return self.out_format.u

    def check_inputs(self, A, B, C) -> None:
        """``ValueError`` if an operand holds values outside its declared format."""
        for name, X, fmt in (("A", A, self.a_format), ("B", B, self.b_format),
                             ("C", C, self.c_format)):
            if fmt is None or fmt.p == 53:
                continue
            ok = _representable(X, fmt)
            if not ok.all():
                idx = tuple(int(i) for i in np.argwhere(~ok)[0])
                raise ValueError(
                    f"{name}{list(idx)} = {X[idx]!r} is not a {fmt.name} value "
                    f"(model {self.name!r} expects {name} in {fmt.name}); round it first "
                    "with accsim.round"
                )

    def params(self) -> dict:
        """The model's parameters as a flat dict (formats by name)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, FloatFormat):
                v = v.name
            elif v is None:
                v = "none"
            elif isinstance(v, bool):
                v = int(v)
            elif isinstance(v, tuple | list):
                v = ",".join(str(x) for x in v)
            out[f.name] = v
        return out

    def describe(self) -> dict:
        d = {"family": self.family}
        d.update(self.params())
        return d

    def summary(self) -> str:
        """The parameters a designer looks at first, e.g. ``binary16, rne, exact
        products`` (formats by name; defaults and empty fields left out)."""
        return summarize(self.describe())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary()})"


#: Parameters shown by :func:`summarize`, in this order (``describe()`` keys).
SUMMARY_KEYS = ("acc_format", "inner_format", "outer_format", "block", "chunk", "L", "F",
                "mode", "sr_bits", "trunc", "out_rounding")


def summarize(d: dict) -> str:
    """A short description of a model from its ``describe()`` dict: the accumulator
    format, rounding mode, random bits, block sizes and how products enter
    (``exact products`` or ``products in FORMAT``); e.g. ``binary16, rne, exact products``.
    """
    parts = []
    for k in SUMMARY_KEYS:
        v = d.get(k)
        if v in (None, "none", "") or (k in ("block", "chunk") and v == 0):
            continue
        if k in ("acc_format", "mode"):
            parts.append(str(v))
        elif k == "sr_bits":
            parts.append(f"{v} random bits")
        else:
            parts.append(f"{k}={v}")
    if not d.get("acc_format") and d.get("out_format") not in (None, "none"):
        parts.insert(0, f"out {d['out_format']}")
    prod = d.get("product")
    if prod == "rounded":
        parts.append(f"products in {d.get('product_format')}")
    elif prod in ("exact", "fused"):
        parts.append(f"{prod} products")
    return ", ".join(parts)
