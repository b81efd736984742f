"""Generic accumulator models a designer explores (plain registry names).

Every factory sets ``source`` to where the design comes from. Inputs are unconstrained
float64 values whose products are exact in binary64 (``a_format``/``b_format`` None;
checked on the data, see :mod:`accsim.accumulators._checks`).

Stochastic rounding: "bf16-sr-accumulator" uses r = 16 random bits per decision (the
bit budget of hardware SR units such as Graphcore's, cheap and nearly unbiased for
bf16); "bf16-sr-exact" uses exact probabilities (64-bit words: exact to 2^-64; Connolly,
Higham, Mary, "Stochastic rounding and its probabilistic backward error analysis", SIAM
J. Sci. Comput. 43 (2021)).
"""

from __future__ import annotations

from accsim.accumulators.blocked import BlockedSum
from accsim.accumulators.kahan import KahanSum
from accsim.accumulators.kulisch import KulischSum
from accsim.accumulators.pairwise import PairwiseSum
from accsim.accumulators.promotion import PromotedSum
from accsim.accumulators.recursive import RecursiveSum
from accsim.numbers.formats import FloatFormat

from . import register

HW = "Higham, Accuracy and Stability of Numerical Algorithms (2002), ch. 4"

#: RZ-E8M13: 13 fraction bits (p = 14) with fp32's exponent range (docs/hwmodels.md, Ada/Hopper
#: fp8 output rounding; DeepSeek-V3: "only about 14 bits kept").
E8M13 = FloatFormat.from_bits(8, 13, name="e8m13")


def _models() -> dict:
    return {
        "fp16-fma-chain": lambda: RecursiveSum(
            name="fp16-fma-chain", acc_format="binary16", mode="rne", product="fused",
            source=f"{HW}: recursive summation, products fused (an FMA chain, one "
                   "rounding per term), fp16 accumulator, RNE"),
        "fp32-fma-chain": lambda: RecursiveSum(
            name="fp32-fma-chain", acc_format="binary32", mode="rne", product="fused",
            source="docs/hwmodels.md: AMD fp32/fp64 mfma are chains of correctly rounded "
                   "fp32 or fp64 FMAs, one per term (MMA-Sim, arXiv:2511.10909)"),
        "fp64-fma-chain": lambda: RecursiveSum(
            name="fp64-fma-chain", acc_format="binary64", mode="rne", product="fused",
            source="docs/hwmodels.md: 'fp64 mma on every architecture: a chain of correctly "
                   "rounded fp64 FMAs, one per term'"),
        "fp16-recursive-rne": lambda: RecursiveSum(
            name="fp16-recursive-rne", acc_format="binary16", mode="rne",
            source=f"{HW}: recursive summation, exact products, fp16 RNE"),
        "fp32-recursive": lambda: RecursiveSum(
            name="fp32-recursive", acc_format="binary32", mode="rne",
            source=f"{HW}: recursive summation, exact products, fp32 RNE"),
        "bf16-sr-accumulator": lambda: RecursiveSum(
            name="bf16-sr-accumulator", acc_format="bfloat16", mode="sr", sr_bits=16,
            source="Connolly, Higham, Mary, SISC 43 (2021): stochastic rounding "
                   "accumulation with r random bits (as in Graphcore IPU, AWS Trainium "
                   "SR units); r = 16"),
        "bf16-sr-exact": lambda: RecursiveSum(
            name="bf16-sr-exact", acc_format="bfloat16", mode="sr", sr_bits=None,
            source="Connolly, Higham, Mary, SISC 43 (2021): stochastic rounding "
                   "accumulation with exact probabilities"),
        "fp8-e4m3-blocked8": lambda: BlockedSum(
            name="fp8-e4m3-blocked8", block=8, inner_format="float8_e4m3",
            outer_format="float8_e4m3", mode="rne",
            source="El Arar, Filip, Mary, Riccietti, arXiv:2503.15568 (2025): blocks of "
                   "8; float8_e4m3 round-to-nearest for block and outer sums"),
        "fp8-promotion-128": lambda: PromotedSum(
            name="fp8-promotion-128", chunk=128, outer_format="binary32", outer_mode="rne",
            inner=RecursiveSum(name="e8m13-rz-recursive", acc_format=E8M13, mode="rz"),
            source="DeepSeek-V3 (arXiv:2412.19437, section 3.3.2): ~14 bits kept "
                   "while accumulating fp8 products (modelled as recursive RZ into "
                   "E8M13), promoted to fp32 every N_C = 128 terms"),
        "fp16-kahan": lambda: KahanSum(
            name="fp16-kahan", acc_format="binary16", mode="rne",
            source="Kahan 1965; Higham, Accuracy and Stability, Alg. 4.2: compensated "
                   "summation, every operation in fp16 RNE"),
        "fp16-pairwise": lambda: PairwiseSum(
            name="fp16-pairwise", acc_format="binary16", mode="rne",
            source=f"{HW}: pairwise (tree) summation, fp16 RNE"),
        "kulisch-fp32": lambda: KulischSum(
            name="kulisch-fp32", out_format="binary32", mode="rne",
            source="Kulisch, Computer Arithmetic and Validity (2013): exact "
                   "(long fixed-point) accumulator, rounded once to fp32"),
        "kulisch-fp64": lambda: KulischSum(
            name="kulisch-fp64", out_format="binary64", mode="rne",
            source="Kulisch, Computer Arithmetic and Validity (2013): exact "
                   "(long fixed-point) accumulator, rounded once to fp64"),
    }


MODELS = _models()
for _name, _factory in MODELS.items():
    register(_name, _factory)
