"""NVIDIA tensor-core models: every mma / wgmma / tcgen05.mma shape and type combination.

Facts (``docs/hwmodels.md``, "The fused, truncated dot-product-add"):
one instruction is a chain of fused truncated dot-product-add steps of L terms (L = the
architecture's step width in bytes divided by the input size, at most the instruction's
k), F fractional bits kept after alignment, e_zero for zero terms, and one rounding rho
(RZ-FP32, RNE-FP16, RZ-E8M13 for fp8 on Ada/Hopper). fp64 mma is a chain of correctly
rounded fp64 FMAs. Parameters and instruction lists as MMA-Sim (Xie, Wang, Yang, Yang,
arXiv:2511.10909, 2025), which validated them bit for bit on real GPUs; Volta/Turing/Ampere
behaviour first probed by Fasi, Higham, Mikaitis, Pranesh (PeerJ CS 2021) and Blanchard,
Higham, Lopez, Mary, Pranesh (SISC 2020).

Names: ``ARCH:mma.<shape>.<d>.<a>.<b>.<c>`` (e.g. ``ampere:mma.m16n8k16.f32.f16.f16.f32``),
``hopper:wgmma.m64n<N>k<k>.<d>.<a>.<b>`` (N = 8..256 step 8),
``blackwell:tcgen05.mma.m<M>n<N>k<k>.kind::<kind>.<d>.<a>.<b>`` (M in 64, 128;
N in 8, 16, 32, 64, 128, 256),
``rtx-blackwell:mma.m16n8k32.kind::f8f6f4.<d>.<a>.<b>.<c>``.

Block-scaled (OCP MX) instructions, named with MMA-Sim's qualifier strings (PTX
``mma.sync.aligned.<shape>.row.col.kind::<kind>.block_scale.scale_vec::<n>X...``; the
``block<B>`` qualifier gives the K elements per scale, ``<s>`` the scale type):
``rtx-blackwell:mma.m16n8k32.kind::mxf8f6f4.block32.f32.<a>.<b>.f32.ue8m0`` (a, b in
e4m3 e5m2 e3m2 e2m3 e2m1),
``rtx-blackwell:mma.m16n8k64.kind::mxf4.block32.f32.e2m1.e2m1.f32.ue8m0``,
``rtx-blackwell:mma.m16n8k64.kind::mxf4nvf4.block{32,16}.f32.e2m1.e2m1.f32.ue8m0`` and
``...block16...ue4m3``; Blackwell datacenter
``blackwell:tcgen05.mma.m128n<N>k32.kind::mxf8f6f4.block32.f32.<a>.<b>.ue8m0`` and the
k64 ``mxf4`` / ``mxf4nvf4`` kinds likewise (N in 8, 16, 32, 64, 128, 256). Their
``matmul`` takes ``scale_a`` (M, K/B) and ``scale_b`` (K/B, N) (see
:meth:`hwmodels._typed.HardwareModel.matmul`). Arithmetic (docs/hwmodels.md "Block-scaled MX
formats"; MMA-Sim ``MMA_ST_FDPA`` / ``MMA_GST_FDPA``): k=32: the fused step with both
scales multiplied into every product, F=25, L=32, RZ-FP32, e_zero=-133; k=64 (fp4):
groups of G=16 products summed exactly, each group one term with the scale exponent as
its exponent, F=35, L=64, RZ-FP32, e_zero=-139 (docs/hwmodels.md gives no e_zero for k=64:
MMA-Sim's value).
"""

from __future__ import annotations

from accsim.accumulators.fused import FusedDot
from accsim.accumulators.recursive import RecursiveSum
from accsim.numbers.formats import format as get_format

from . import register
from ._typed import DTYPES, HardwareModel

SOURCE = ("docs/hwmodels.md (NVIDIA fused truncated dot-product-add table); MMA-Sim, Xie, Wang, "
          "Yang, Yang, arXiv:2511.10909 (2025); Fasi, Higham, Mikaitis, Pranesh, PeerJ CS "
          "2021")
SOURCE_FP8 = SOURCE + "; DeepSeek-V3 technical report (2024), FP8 accumulation"
SOURCE_FP64 = ("docs/hwmodels.md: fp64 mma is a chain of correctly rounded fp64 FMAs; MMA-Sim "
               "arXiv:2511.10909 (2025)")

# arch -> (F, step width in bytes, e_zero for fp16 output, e_zero for fp32 output)
ARCH_PARAMS = {
    "volta": (23, 8, -19, -131),
    "turing": (24, 16, -20, -132),
    "ampere": (24, 16, -20, -132),
    "ada": (24, 16, -20, -132),
    "hopper": (25, 32, -21, -133),
    "blackwell": (25, 32, -21, -133),
    "rtx-blackwell": (25, 32, -21, -133),
}
ITEMSIZE = {"f64": 8, "f32": 4, "tf32": 4, "f16": 2, "bf16": 2, "e4m3": 1, "e5m2": 1,
            "e3m2": 1, "e2m3": 1, "e2m1": 1}
FP8 = ("e4m3", "e5m2")
F8F6F4 = ("e5m2", "e4m3", "e3m2", "e2m3", "e2m1")

# ------------------------------------------------------------------ instruction lists
_SM70 = ["m8n8k4.f32.f16.f16.f32", "m8n8k4.f32.f16.f16.f16", "m8n8k4.f16.f16.f16.f16"]
_SM75 = ["m16n8k8.f32.f16.f16.f32", "m16n8k8.f16.f16.f16.f16"]
_SM80 = ["m8n8k4.f64.f64.f64.f64", "m16n8k8.f32.tf32.tf32.f32", "m16n8k4.f32.tf32.tf32.f32",
         "m16n8k16.f32.f16.f16.f32", "m16n8k16.f16.f16.f16.f16",
         "m16n8k16.f32.bf16.bf16.f32", "m16n8k8.f32.bf16.bf16.f32"]
_SM89 = [f"m16n8k{k}.{d}.{a}.{b}.{d}" for k in (32, 16) for d in ("f32", "f16")
         for a in ("e5m2", "e4m3") for b in ("e5m2", "e4m3")]
_SM90 = ["m16n8k16.f64.f64.f64.f64", "m16n8k8.f64.f64.f64.f64", "m16n8k4.f64.f64.f64.f64"]
_SM120 = [f"m16n8k32.kind::f8f6f4.{d}.{a}.{b}.{d}" for d in ("f32", "f16")
          for a in F8F6F4 for b in F8F6F4]

# block-scaled (MX) instructions, MMA-Sim nv_ptx/isa_mma.py / isa_tcgen05mma.py
_SM120_MX = ([f"m16n8k32.kind::mxf8f6f4.block32.f32.{a}.{b}.f32.ue8m0" for a in F8F6F4
              for b in F8F6F4]
             + ["m16n8k64.kind::mxf4.block32.f32.e2m1.e2m1.f32.ue8m0",
                "m16n8k64.kind::mxf4nvf4.block32.f32.e2m1.e2m1.f32.ue8m0",
                "m16n8k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.f32.ue8m0",
                "m16n8k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.f32.ue4m3"])
TCGEN05_MX_N = (8, 16, 32, 64, 128, 256)
TCGEN05_MX_TYPES = ([f"k32.kind::mxf8f6f4.block32.f32.{a}.{b}.ue8m0" for a in F8F6F4
                     for b in F8F6F4]
                    + ["k64.kind::mxf4.block32.f32.e2m1.e2m1.ue8m0",
                       "k64.kind::mxf4nvf4.block32.f32.e2m1.e2m1.ue8m0",
                       "k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.ue8m0",
                       "k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.ue4m3"])
# (F, L, e_zero, G) of the block-scaled steps by instruction k (MMA-Sim nv_ptx/sim.py)
MX_PARAMS = {32: (25, 32, -133, 1), 64: (35, 64, -139, 16)}

MMA_LISTS = {
    "volta": _SM70,
    "turing": _SM75 + _SM70,
    "ampere": _SM80 + _SM75,
    "ada": _SM89 + _SM80 + _SM75,
    "hopper": _SM90 + _SM80 + _SM75,
    "blackwell": _SM80 + _SM75,
    "rtx-blackwell": _SM120 + _SM120_MX + _SM89 + _SM80 + _SM75,
}
WGMMA_N = tuple(range(8, 257, 8))
WGMMA_TYPES = (["k8.f32.tf32.tf32", "k16.f32.f16.f16", "k16.f16.f16.f16",
                "k16.f32.bf16.bf16"]
               + [f"k32.{d}.{a}.{b}" for d in ("f32", "f16") for a in ("e5m2", "e4m3")
                  for b in ("e5m2", "e4m3")])
TCGEN05_MN = tuple((m, n) for m in (64, 128) for n in (8, 16, 32, 64, 128, 256))
TCGEN05_TYPES = (["k8.kind::tf32.f32.tf32.tf32", "k16.kind::f16.f32.f16.f16",
                  "k16.kind::f16.f32.bf16.bf16", "k16.kind::f16.f16.f16.f16"]
                 + [f"k32.kind::f8f6f4.{d}.{a}.{b}" for d in ("f32", "f16")
                    for a in F8F6F4 for b in F8F6F4])


def _mnk(shape: str) -> tuple[int, int, int]:
    m, nk = shape[1:].split("n")
    n, k = nk.split("k")
    return int(m), int(n), int(k)


def step_params(arch: str, family: str, shape: str, a_type: str, d_type: str) -> dict:
    """F, L, e_zero and rho of one instruction (docs/hwmodels.md table; MMA-Sim nv_ptx/sim.py).

    family: "mma", "wgmma" or "tcgen05".
    """
    F, width, ez16, ez32 = ARCH_PARAMS[arch]
    m, n, k = _mnk(shape)
    L_max = width // ITEMSIZE[a_type]
    fp16_out = d_type == "f16"
    rho = "rne-fp16" if fp16_out else "rz-fp32"
    e_zero = ez16 if fp16_out else ez32
    if arch == "turing" and family == "mma" and shape == "m8n8k4":
        # docs/hwmodels.md: "24 (23 and L=4 for the Volta-shaped m8n8k4)": Volta settings
        F, L_max = 23, 4
        e_zero = -19 if fp16_out else -131
    if a_type in FP8 and ((arch == "ada" and family == "mma")
                          or (arch == "hopper" and family == "wgmma")):
        # docs/hwmodels.md: "Ada Lovelace 24; fp8 inputs: 13", "Hopper 25; fp8 inputs: 13";
        # fp32 output rounds RZ-E8M13
        F = 13
        rho = "rne-fp16" if fp16_out else "rz-e8m13"
    return dict(F=F, L=min(k, L_max), e_zero=e_zero, out_rounding=rho, m=m, n=n, k=k)


def make(arch: str, family: str, instruction: str) -> HardwareModel:
    """Build the model of one instruction (``instruction`` without the family prefix)."""
    q = instruction.split(".")
    kind = None
    if len(q) > 2 and q[2].startswith("block"):
        return make_mx(arch, family, instruction)
    if family == "wgmma":
        shape, d_type, a_type, b_type = q
        c_type = d_type
    elif family == "tcgen05":
        shape, kind, d_type, a_type, b_type = q
        c_type = d_type
    elif len(q) == 6:
        shape, kind, d_type, a_type, b_type, c_type = q
    else:
        shape, d_type, a_type, b_type, c_type = q
    prefix = {"mma": "mma.", "wgmma": "wgmma.", "tcgen05": "tcgen05.mma."}[family]
    name = prefix + instruction
    m, n, k = _mnk(shape)
    fmt = {t: get_format(DTYPES[t][1]) for t in {a_type, b_type, c_type, d_type}}
    if a_type == "f64":
        acc = RecursiveSum(name=f"{arch}:{name}", acc_format=get_format("binary64"),
                           mode="rne", product="fused", a_format=fmt["f64"],
                           b_format=fmt["f64"], c_format=fmt["f64"], source=SOURCE_FP64)
        return HardwareModel(acc, arch=arch, instruction=name, m=m, n=n, k=k,
                             a_type=a_type, b_type=b_type, c_type=c_type, d_type=d_type,
                             source=SOURCE_FP64, canonical_nan=False)
    p = step_params(arch, family, shape, a_type, d_type)
    src = SOURCE_FP8 if a_type in FP8 else SOURCE
    acc = FusedDot(name=f"{arch}:{name}", a_format=fmt[a_type], b_format=fmt[b_type],
                   c_format=fmt[c_type], L=p["L"], F=p["F"], trunc="rz",
                   e_zero=p["e_zero"], out_rounding=p["out_rounding"],
                   tf32_truncate=a_type == "tf32", source=src)
    return HardwareModel(acc, arch=arch, instruction=name, m=m, n=n, k=k, a_type=a_type,
                         b_type=b_type, c_type=c_type, d_type=d_type, source=src,
                         canonical_nan=True)


def make_mx(arch: str, family: str, instruction: str) -> HardwareModel:
    """Build a block-scaled (MX) instruction model (docs/hwmodels.md "Block-scaled MX
    formats"; MMA-Sim ``MMABlockScale`` / ``TCGen05MMABlockScale``)."""
    q = instruction.split(".")
    if family == "tcgen05":
        shape, kind, blk, d_type, a_type, b_type, s_type = q
        c_type = d_type
    else:
        shape, kind, blk, d_type, a_type, b_type, c_type, s_type = q
    prefix = {"mma": "mma.", "tcgen05": "tcgen05.mma."}[family]
    name = prefix + instruction
    m, n, k = _mnk(shape)
    block = int(blk.removeprefix("block"))
    F, L, e_zero, G = MX_PARAMS[k]
    fmt = {t: get_format(DTYPES[t][1]) for t in {a_type, b_type, c_type, s_type}}
    src = (SOURCE + "; OCP Microscaling Formats (MX) v1.0 (2023); PTX ISA "
           "mma.block_scale / tcgen05.mma.block_scale")
    acc = FusedDot(name=f"{arch}:{name}", a_format=fmt[a_type], b_format=fmt[b_type],
                   c_format=fmt[c_type], L=L, F=F, trunc="rz", e_zero=e_zero,
                   out_rounding="rz-fp32", group=G, block=block,
                   scale_format=fmt[s_type], source=src)
    return HardwareModel(acc, arch=arch, instruction=name, m=m, n=n, k=k, a_type=a_type,
                         b_type=b_type, c_type=c_type, d_type=d_type, source=src,
                         canonical_nan=True, s_type=s_type, block=block)


def instructions() -> list[tuple[str, str, str]]:
    """Every (arch, family, instruction-without-prefix) registered here."""
    out = []
    for arch, lst in MMA_LISTS.items():
        out += [(arch, "mma", s) for s in lst]
    out += [("hopper", "wgmma", f"m64n{n}{t}") for t in WGMMA_TYPES for n in WGMMA_N]
    out += [("blackwell", "tcgen05", f"m{m}n{n}{t}") for t in TCGEN05_TYPES
            for m, n in TCGEN05_MN]
    out += [("blackwell", "tcgen05", f"m128n{n}{t}") for t in TCGEN05_MX_TYPES
            for n in TCGEN05_MX_N]
    return out


def _register_all() -> None:
    prefix = {"mma": "mma.", "wgmma": "wgmma.", "tcgen05": "tcgen05.mma."}
    for arch, family, ins in instructions():
        register(f"{arch}:{prefix[family]}{ins}",
                 lambda a=arch, f=family, i=ins: make(a, f, i))


_register_all()

__all__ = ["ARCH_PARAMS", "MX_PARAMS", "instructions", "make", "make_mx", "step_params"]
