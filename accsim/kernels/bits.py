"""Bit casts and a true fused multiply-add for numba kernels.

``fma`` lowers to ``llvm.fma.f64``, which is correctly rounded (a hardware FMA where the
CPU has one, libm's ``fma`` otherwise); numba has no other way to express a fused
operation without ``fastmath``.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

JIT = {"error_model": "numpy", "cache": True, "nogil": True}


@intrinsic
def f64_to_bits(typingctx, x):
    """Reinterpret a float64 as its uint64 bit pattern."""
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def bits_to_f64(typingctx, x):
    """Reinterpret a uint64 bit pattern as a float64."""
    sig = types.float64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):
    """Correctly rounded a*b + c in binary64 (one rounding, RNE)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@njit(**JIT)
def two_sum(a, b):
    """Knuth's TwoSum: s + t == a + b exactly, s = fl(a + b) (no overflow assumed)."""
    s = a + b
    bp = s - a
    ap = s - bp
    t = (a - ap) + (b - bp)
    return s, t


@njit(**JIT)
def two_prod(a, b):
    """p + e == a * b exactly with p = fl(a * b), via a true FMA (no under/overflow)."""
    p = a * b
    e = fma(a, b, -p)
    return p, e
