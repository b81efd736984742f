"""Typed hardware models: an accumulator plus one instruction's shape and data types.

A :class:`HardwareModel` is what ``hwmodels.get("hopper", "wgmma.m64n8k32.f32.e4m3.e4m3")``
returns for NVIDIA and AMD instructions. It takes numpy arrays in the instruction's input
types (``np.float16``; ml_dtypes ``bfloat16``, ``float8_e4m3fn`` -- PTX "e4m3" is OCP
e4m3fn --, ``float8_e5m2``, the AMD fnuz fp8 types; ``np.float32`` for tf32/xf32 and fp32;
``np.float64`` for fp64), chains the instruction along K and returns D in the output
type, converted exactly (the values are already values of the output format) with the
canonical NaN of the hardware where it has one.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from accsim.accumulators.base import Accumulator, Model
from accsim.numbers.arrays import check_matmul_shapes
from accsim.numbers.formats import from_dtype, from_ml_dtypes
from accsim.numbers.rounding import round as _round
from accsim.numbers.seeds import check_seed

# PTX / AMD type names -> (numpy dtype, accsim format name)
DTYPES = {
    "f64": (np.dtype(np.float64), "binary64"),
    "f32": (np.dtype(np.float32), "binary32"),
    "tf32": (np.dtype(np.float32), "tfloat32"),
    "xf32": (np.dtype(np.float32), "tfloat32"),
    "f16": (np.dtype(np.float16), "binary16"),
    "bf16": (np.dtype(ml_dtypes.bfloat16), "bfloat16"),
    "e4m3": (np.dtype(ml_dtypes.float8_e4m3fn), "float8_e4m3fn"),
    "e5m2": (np.dtype(ml_dtypes.float8_e5m2), "float8_e5m2"),
    "e3m2": (np.dtype(ml_dtypes.float6_e3m2fn), "float6_e3m2fn"),
    "e2m3": (np.dtype(ml_dtypes.float6_e2m3fn), "float6_e2m3fn"),
    "e2m1": (np.dtype(ml_dtypes.float4_e2m1fn), "float4_e2m1fn"),
    "fp8": (np.dtype(ml_dtypes.float8_e4m3fnuz), "float8_e4m3fnuz"),
    "bf8": (np.dtype(ml_dtypes.float8_e5m2fnuz), "float8_e5m2fnuz"),
    # block-scale types of the MX instructions (OCP MX v1.0 E8M0; NVFP4's unsigned
    # E4M3, held as float8_e4m3fn with the sign bit ignored)
    "ue8m0": (np.dtype(ml_dtypes.float8_e8m0fnu), "float8_e8m0fnu"),
    "ue4m3": (np.dtype(ml_dtypes.float8_e4m3fn), "float8_e4m3fn"),
}

_CANON_NAN = {np.dtype(np.float32): (np.uint32, 0x7FFFFFFF),
              np.dtype(np.float16): (np.uint16, 0x7FFF)}


class HardwareModel(Model):
    """One matrix instruction of one architecture.

    Parameters
    ----------
    accumulator : Accumulator
        The arithmetic (one inner product ``sum a_k b_k + c`` chained along K).
    arch, instruction : str
        Registry name parts (``name = arch + ":" + instruction``).
    m, n, k : int
        The instruction's shape. ``matmul`` accepts any M and N; K must be a multiple
        of ``k`` (the product is a chain of instructions along K).
    a_type, b_type, c_type, d_type : str
        PTX/AMD type names (keys of :data:`DTYPES`).
    source : str
        Where the facts come from.
    canonical_nan : bool
        NaN results are stored as the canonical NaN (sign clear, exponent and fraction
        all ones: 0x7FFFFFFF / 0x7FFF), as NVIDIA tensor cores and AMD CDNA3 do
        (docs/hwmodels.md step 5; MMA-Sim).
    s_type : str or None
        Block-scaled (MX) instructions: the scale type ("ue8m0" or "ue4m3"); None for
        the others.
    block : int
        MX instructions: K elements per scale (32, or 16 for ``mxf4nvf4.block16``).
    """

    def __init__(self, accumulator: Accumulator, *, arch: str, instruction: str, m: int,
                 n: int, k: int, a_type: str, b_type: str, c_type: str, d_type: str,
                 source: str, canonical_nan: bool = True, notes: str = "",
                 s_type: str | None = None, block: int = 0) -> None:
        self._accumulator = accumulator
        self.arch = arch
        self.instruction = instruction
        self.name = f"{arch}:{instruction}"
        self.m, self.n, self.k = int(m), int(n), int(k)
        self.a_type, self.b_type, self.c_type, self.d_type = a_type, b_type, c_type, d_type
        self.a_dtype = DTYPES[a_type][0]
        self.b_dtype = DTYPES[b_type][0]
        self.c_dtype = DTYPES[c_type][0]
        self.d_dtype = DTYPES[d_type][0]
        self.source = source
        self.canonical_nan = canonical_nan
        self.notes = notes
        self.s_type = s_type
        self.block = int(block)
        self.s_dtype = DTYPES[s_type][0] if s_type else None
        self.__doc__ = (f"{self.name}: {type(accumulator).__name__} "
                        f"({accumulator.family}); source: {source}")

    # ------------------------------------------------------------------ typed API
    def _check(self, X, name, dtype, what):
        X = np.asarray(X)
        if X.dtype != dtype:
            raise ValueError(
                f"{self.name}: operand {name} has dtype {X.dtype}, expected {dtype} "
                f"({what} type {getattr(self, name.lower() + '_type')!r})")
        if X.ndim != 2:
            raise ValueError(f"{self.name}: operand {name} must be 2-D, got shape {X.shape}")
        return X

    def matmul(self, A, B, C=None, *, seed: int = 0, scale_a=None,
               scale_b=None) -> np.ndarray:
        """``D = A @ B + C`` as the hardware computes it (a chain of instructions along K).

        ``seed`` is accepted for interface uniformity with the other accumulator models
        and ignored: matrix instructions round deterministically.

        Block-scaled (MX) instructions (``s_type`` set) take the block scales
        ``scale_a`` of shape (M, K // block) (one per row of A and block of K) and
        ``scale_b`` of shape (K // block, N) (one per column of B and block of K), as
        arrays of dtype ``ml_dtypes.float8_e8m0fnu`` (``ue8m0``: 2^-127 .. 2^127, code
        0xFF is NaN) or ``ml_dtypes.float8_e4m3fn`` (``ue4m3``: the sign bit is ignored,
        as the hardware's unsigned type has none). ``D = sum_k scale_a[i, k // block]
        A[i, k] B[k, j] scale_b[k // block, j] + C`` with the hardware's step. ``None``
        means all scales 1. A NaN scale gives NaN outputs.

        Raises
        ------
        ValueError
            Wrong dtype (names the operand and the expected dtype), shapes that do not
            match, K not a multiple of the instruction's k, or scales given to a non-MX
            instruction / scales of the wrong dtype or shape.
        """
        check_seed(seed)  # ignored, but held to the one seed rule
        A = self._check(A, "A", self.a_dtype, "input")
        B = self._check(B, "B", self.b_dtype, "input")
        M, K = A.shape
        if B.shape[0] != K:
            raise ValueError(f"{self.name}: inner dimensions differ: A is {A.shape}, "
                             f"B is {B.shape}")
        N = B.shape[1]
        if K % self.k:
            raise ValueError(f"{self.name}: K={K} is not a multiple of the instruction's "
                             f"k={self.k}")
        if C is None:
            C64 = np.zeros((M, N))
        else:
            C = self._check(C, "C", self.c_dtype, "accumulator")
            if C.shape != (M, N):
                raise ValueError(f"{self.name}: C has shape {C.shape}, expected {(M, N)}")
            C64 = from_ml_dtypes(C)
        # typed operands hold values of their formats by construction: skip the check
        A64 = np.ascontiguousarray(from_ml_dtypes(A))
        B64 = np.ascontiguousarray(from_ml_dtypes(B))
        C64 = np.ascontiguousarray(C64)
        if self.s_type is None:
            if scale_a is not None or scale_b is not None:
                raise ValueError(f"{self.name}: not a block-scaled instruction; scale_a / "
                                 "scale_b are only accepted by the MX (block_scale) models")
            D64 = self.accumulator._matmul(A64, B64, C64, 0)
        else:
            nb = K // self.block
            SA = self._scales(scale_a, "scale_a", (M, nb))
            SB = self._scales(scale_b, "scale_b", (nb, N))
            D64 = self.accumulator._matmul(A64, B64, C64, 0, SA, SB)
        return self._to_output(D64)

    def _scales(self, S, name, shape):
        if S is None:
            return np.ones(shape)
        S = np.asarray(S)
        if S.dtype != self.s_dtype:
            raise ValueError(f"{self.name}: {name} has dtype {S.dtype}, expected "
                             f"{self.s_dtype} (scale type {self.s_type!r})")
        if S.shape != shape:
            raise ValueError(f"{self.name}: {name} has shape {S.shape}, expected {shape} "
                             f"(one scale per {self.block} elements of K)")
        return np.ascontiguousarray(np.abs(from_ml_dtypes(S)))

    def _to_output(self, D64: np.ndarray) -> np.ndarray:
        dt = self.d_dtype
        if dt == np.float64:
            return D64
        # D64 holds values of the output format: the conversion is exact (one step,
        # never through an intermediate type)
        D = D64.astype(dt)
        if self.canonical_nan and dt in _CANON_NAN:
            nan = np.isnan(D64)
            if nan.any():
                ut, code = _CANON_NAN[dt]
                bits = D.view(ut)
                bits[nan] = code
        return D

    def quantize_operands(self, A64, B64, C64=None):
        """Round float64 operands (RNE, accsim's exact rounding) into the storage formats
        of the instruction's A, B and C types: what a kernel does when it converts
        wider activations before issuing the instruction. Identity on values that are
        already representable."""
        A64, B64, C64 = check_matmul_shapes(A64, B64, C64)
        out = []
        for X, dt in ((A64, self.a_dtype), (B64, self.b_dtype), (C64, self.c_dtype)):
            fmt = from_dtype(dt)
            out.append(X if fmt.p == 53 else _round(X, fmt, "rne"))
        return tuple(out)

    quantizes_operands = True

    @property
    def accumulator(self) -> Accumulator:
        return self._accumulator

    def matmul_values(self, A64, B64, C64=None, *, seed: int = 0,
                      quantize: bool = False) -> np.ndarray:
        """float64 in, float64 out (for the executor). Operand values must be values of
        the input types (or pass ``quantize=True`` to round them there first, see
        :meth:`quantize_operands`); K is padded with zero terms to a multiple of k (what
        a kernel feeding the instruction does). ``seed`` is ignored (deterministic)."""
        if quantize:
            A64, B64, C64 = self.quantize_operands(A64, B64, C64)
        A64, B64, C64 = check_matmul_shapes(A64, B64, C64)
        K = A64.shape[1]
        pad = (-K) % self.k
        if pad:
            A64 = np.concatenate([A64, np.zeros((A64.shape[0], pad))], axis=1)
            B64 = np.concatenate([B64, np.zeros((pad, B64.shape[1]))], axis=0)
        return self.accumulator.matmul(A64, B64, C64)

    def error_bound(self, A, B, C=None, kind: str = "deterministic", **kw) -> np.ndarray:
        """The accumulator's error bound (see :mod:`accsim.accumulators.bounds`)."""
        return self.accumulator.error_bound(A, B, C, kind=kind, **kw)

    def cost_bits(self, n: int) -> float:
        return self.accumulator.cost_bits(n)

    @property
    def unit_roundoff(self) -> float:
        return self.accumulator.unit_roundoff

    @property
    def family(self) -> str:
        return self.accumulator.family

    def describe(self) -> dict:
        d = dict(self.accumulator.describe())
        d.update(name=self.name, arch=self.arch, instruction=self.instruction, m=self.m,
                 n=self.n, k=self.k, a_type=self.a_type, b_type=self.b_type,
                 c_type=self.c_type, d_type=self.d_type, source=self.source)
        if self.s_type:
            d.update(s_type=self.s_type, scale_block=self.block)
        return d

    def __repr__(self) -> str:
        return f"HardwareModel({self.name!r}, {self.accumulator.family})"


__all__ = ["DTYPES", "HardwareModel"]
