"""Hardware cost model of a strategy: energy, tensor-core time, tile-granular time.

Three columns next to the bit cost (:mod:`accsim.run.cost`), per layer and batch:

**Energy** (pJ). Per-operation energies of Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V): floating-point add
0.4 pJ (16 bit) and 0.9 pJ (32 bit), multiply 1.1 pJ (16 bit) and 3.7 pJ (32 bit);
64-bit read of an 8 KB SRAM 10 pJ. Scaled to a format with ``p`` significand bits
(implicit bit included) and ``e`` exponent bits:

* add ``E_add = 0.03125 (p + e) - 0.1`` pJ: linear in the width ``p + e`` (the
  alignment shifter and adder grow linearly), through the two measured points
  (fp16 ``p + e = 16``: 0.4; fp32 ``p + e = 32``: 0.9);
* multiply ``E_mul = b p^2 + a e`` pJ: the significand array multiplier grows with
  ``p^2``, the exponent adder with ``e``; ``b = 0.0050732``, ``a = 0.097222`` solve the
  two measured points (fp16 ``p = 11, e = 5``: 1.1; fp32 ``p = 24, e = 8``: 3.7).

An inner product of ``n`` terms on a model costs ``n`` multiplies and ``n`` adds in the
model's working format (:func:`model_format`; a blocked sum adds ``ceil(n / b)`` outer
additions in its outer format). A recomputed component also re-reads its operands: a
row of ``W`` and a column of ``x`` (``n`` operands each, :data:`OPERAND_BITS`) at
``10 / 64`` pJ per bit (the 8 KB SRAM read). The full passes (base, estimate) stream
``W`` and ``x`` once per layer for every strategy alike (operand reuse in a GEMM), so
their reads are not charged.

**Throughput** (ns on one H100 SXM5): each pass is a GEMM of ``m x n x P`` MACs at the
dense tensor-core rate of its format (NVIDIA H100 Tensor Core GPU Architecture
whitepaper, 2022, H100 SXM5 dense: FP8 1978.9, FP16 / BF16 989.4, TF32 494.7, FP64 66.9
TFLOPS; a MAC is 2 flops). The
format class (:func:`rate_class`) is that of the operands where the model declares their
formats (a tensor-core instruction: the rate is set by the input type), else that of
its working format: width ``p + e <= 8`` FP8, ``<= 16`` FP16, ``<= 32`` TF32, else
FP64. A recomputation is a GEMM over
the recomputed components only (perfect gather).

**Tile granularity** (ns, H100): as throughput, but a recomputation costs every output
of each ``TILE = (64, 8)`` tile (an H100 ``wgmma.m64n8`` output tile: 64 output rows by
8 output columns) holding at least one recomputed component.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["E_ADD", "E_MUL", "SRAM_PJ_PER_BIT", "OPERAND_BITS", "H100_TFLOPS", "TILE",
           "model_format", "operand_formats", "rate_class", "add_energy", "mul_energy",
           "inner_product_energy", "pass_seconds", "tiles_touched", "HW_COLUMNS"]

#: Horowitz (ISSCC 2014) 45 nm energies, pJ: (16-bit, 32-bit) FP add and multiply.
E_ADD = (0.4, 0.9)
E_MUL = (1.1, 3.7)
#: 64-bit read of an 8 KB SRAM: 10 pJ (Horowitz, ISSCC 2014).
SRAM_PJ_PER_BIT = 10.0 / 64.0
#: Bits of one weight and one activation re-read by a recomputation (e4m3 weights,
#: binary32 activations: the networks of docs/networks.md).
OPERAND_BITS = (8, 32)
#: Dense tensor-core throughput of one H100 SXM5, TFLOPS (NVIDIA H100 whitepaper).
H100_TFLOPS = {"fp8": 1978.9, "fp16": 989.4, "tf32": 494.7, "fp64": 66.9}
#: Output tile (rows, columns) a tensor-core recomputation costs in full.
TILE = (64, 8)
#: Dataset columns: name -> (long_name, units).
HW_COLUMNS = {
    "energy_pj": ("energy per input (Horowitz ISSCC 2014 op energies scaled by format, "
                  "plus an operand re-read per recomputed component)", "pJ"),
    "h100_time_ns": ("time per input on one H100 SXM5, every pass a GEMM at the dense "
                     "tensor-core rate of its format", "ns"),
    "h100_tile_time_ns": ("as h100_time_ns, a recomputation costing every 64x8 output "
                          "tile it touches", "ns"),
}

# E_add = ca (p + e) + da; E_mul = b p^2 + a e (see module docstring)
_CA = (E_ADD[1] - E_ADD[0]) / 16.0
_DA = E_ADD[0] - 16 * _CA
_B = (E_MUL[1] - 8 / 5 * E_MUL[0]) / (24**2 - 8 / 5 * 11**2)
_A = (E_MUL[0] - 11**2 * _B) / 5


def _pe(fmt) -> tuple[int, int]:
    return int(fmt.p), int(fmt.exponent_bits)


def add_energy(fmt) -> float:
    """Energy (pJ) of one addition in ``fmt`` (module docstring)."""
    p, e = _pe(fmt)
    return _CA * (p + e) + _DA


def mul_energy(fmt) -> float:
    """Energy (pJ) of one multiplication in ``fmt`` (module docstring)."""
    p, e = _pe(fmt)
    return _B * p * p + _A * e


def model_format(model):
    """The working format of a model's additions (and multiplies): ``acc_format`` of a
    recursive sum, ``inner_format`` of a blocked sum, the accumulator's for a hardware
    model, else the output format; None for a model that declares no format (its
    hardware columns are NaN)."""
    acc = getattr(model, "accumulator", model)
    for attr in ("acc_format", "inner_format", "out_format"):
        f = getattr(acc, attr, None)
        if f is not None and hasattr(f, "p"):
            return f
    return None


def operand_formats(model) -> tuple | None:
    """The declared formats ``(a, b)`` of a model's operands (a tensor-core instruction
    declares its input types), or None when either is undeclared."""
    acc = getattr(model, "accumulator", model)
    a, b = getattr(acc, "a_format", None), getattr(acc, "b_format", None)
    return (a, b) if hasattr(a, "p") and hasattr(b, "p") else None


def rate_class(model) -> str:
    """Tensor-core rate class (a key of :data:`H100_TFLOPS`) of a model: that of its
    operand formats where it declares them (a tensor core's rate is set by its input
    type: Hopper's e4m3 ``wgmma`` with fp32 output runs at the FP8 rate, Ampere's fp16
    ``mma`` with fp32 accumulation at the FP16 rate; NVIDIA H100 whitepaper, 2022), else
    that of its working format (:func:`model_format`); None without a format."""
    ops = operand_formats(model)
    if ops is not None:
        w = max(sum(_pe(f)) for f in ops)
    else:
        fmt = model_format(model)
        if fmt is None:
            return None
        w = sum(_pe(fmt))
    return "fp8" if w <= 8 else "fp16" if w <= 16 else "tf32" if w <= 32 else "fp64"


def inner_product_energy(model, n: int) -> float:
    """Energy (pJ) of one inner product of ``n`` terms on ``model``: ``n`` multiplies and
    ``n`` additions in :func:`model_format`, plus ``ceil(n / block)`` outer additions of a
    blocked sum."""
    fmt = model_format(model)
    if fmt is None:
        return math.nan
    e = n * (mul_energy(fmt) + add_energy(fmt))
    acc = getattr(model, "accumulator", model)
    block, outer = getattr(acc, "block", None), getattr(acc, "outer_format", None)
    if block and outer is not None and hasattr(outer, "p"):
        e += math.ceil(n / int(block)) * add_energy(outer)
    return float(e)


def pass_seconds(model, macs: float) -> float:
    """Seconds of ``macs`` multiply-adds at ``model``'s dense H100 tensor-core rate (NaN
    for a model without a format)."""
    rc = rate_class(model)
    if rc is None:
        return math.nan
    return float(macs) / (H100_TFLOPS[rc] * 1e12 / 2)


def tiles_touched(mask: np.ndarray, tile: tuple[int, int] = TILE) -> tuple[int, int]:
    """``(tiles, outputs)``: the ``tile``-shaped blocks of a 2-D ``(rows, columns)``
    output mask holding a True entry, and how many outputs those blocks cover (edge
    tiles are smaller)."""
    m = np.asarray(mask, bool)
    if m.ndim != 2:
        m = m.reshape(m.shape[0] if m.ndim else 1, -1)
    R, C = m.shape
    tr, tc = tile
    pr, pc = -R % tr, -C % tc
    padded = np.pad(m, ((0, pr), (0, pc)))
    hit = padded.reshape((R + pr) // tr, tr, (C + pc) // tc, tc).any(axis=(1, 3))
    rows = np.minimum(tr, R - np.arange(hit.shape[0]) * tr)
    cols = np.minimum(tc, C - np.arange(hit.shape[1]) * tc)
    return int(hit.sum()), int((hit * np.outer(rows, cols)).sum())
