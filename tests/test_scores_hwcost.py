"""Hardware columns of the attention scores (issue 20): ``hardware_counts(bias=False)``
and the LAMP recomputation priced in the MiniLM tallies.

The counts are checked against the cost model written out by hand from
:mod:`accsim.run.hwcost` (per-operation energies, dense H100 rates, 64x8 tiles); the
MiniLM wiring against a direct tally of one head's score mask.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accsim.run import hwcost as hw
from accsim.run.cost import _hw_values, hardware_counts
from accsim.run.experiment import resolve_model

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP32 = {"family": "recursive", "acc_format": "binary32", "mode": "rne",
        "product": "exact"}


def _by_hand(low, high, shape, recomputed, d, tiles_outputs):
    """(energy pJ, H100 s, H100 tile s) of a score matrix of ``shape`` on ``low`` with
    ``recomputed`` scores on ``high`` whose touched tiles hold ``tiles_outputs``."""
    total = shape[0] * shape[1]
    reread = sum(hw.OPERAND_BITS) * hw.SRAM_PJ_PER_BIT
    e = total * hw.inner_product_energy(low, d) + \
        recomputed * (hw.inner_product_energy(high, d) + d * reread)
    t = hw.pass_seconds(low, total * d) + (hw.pass_seconds(high, recomputed * d)
                                           if recomputed else 0.0)
    tt = hw.pass_seconds(low, total * d) + (hw.pass_seconds(high, tiles_outputs * d)
                                            if recomputed else 0.0)
    return e, t, tt


def test_scores_counts_have_no_bias_term():
    low, high = resolve_model(FP8), resolve_model(FP32)
    d = 32
    level = np.zeros((70, 20), np.int8)  # 2 x 3 tiles of 64 x 8 (edge tiles smaller)
    level[0, 0] = level[65, 17] = level[3, 5] = 1  # tiles (0, 0) twice and (1, 2)
    got = _hw_values(hardware_counts([low, high], level, d, "none", bias=False))
    # touched tiles: (0, 0) 64 x 8 outputs, (1, 2) 6 x 4 outputs
    want = _by_hand(low, high, level.shape, 3, d, 64 * 8 + 6 * 4)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, rel=1e-12)
    # with the bias every inner product has one more term: more energy, same GEMMs
    with_bias = _hw_values(hardware_counts([low, high], level, d, "none"))
    e_bias = (level.size * hw.inner_product_energy(low, d + 1)
              + 3 * (hw.inner_product_energy(high, d + 1)
                     + d * sum(hw.OPERAND_BITS) * hw.SRAM_PJ_PER_BIT))
    assert with_bias[0] == pytest.approx(e_bias, rel=1e-12)
    assert with_bias[0] > got[0]
    assert with_bias[1:] == got[1:]


def test_uniform_scores_cost_one_low_pass():
    low = resolve_model(FP8)
    level = np.zeros((30, 30), np.int8)
    e, t, tt = _hw_values(hardware_counts([low], level, 32, "none", bias=False))
    assert e == pytest.approx(900 * hw.inner_product_energy(low, 32), rel=1e-12)
    assert t == tt == pytest.approx(900 * 32 / (hw.H100_TFLOPS["fp8"] * 1e12 / 2),
                                    rel=1e-12)
    assert math.isfinite(e) and e > 0


def test_minilm_run_prices_the_lamp_recomputation():
    """MiniLM through the graph (2 layers, 3 sentences, the shipped minilm_lamp cells):
    LAMP's tally minus the uniform scores' tally is the recomputation priced by hand,
    ``k`` recomputed scores of ``d = 32`` terms on the high model with their operand
    re-reads (energy) and a gathered ``k x d`` GEMM (time): the projections and the
    low score pass are the same in both."""
    pytest.importorskip("safetensors")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_minilm import minilm  # skips without the model's registry packages

    from accsim.transformer.minilm_graph import GraphEncoder
    from accsim.transformer.minilm_run import expand, load_config

    root = Path(__file__).resolve().parents[1]
    cells = {c.label: c for c in expand(load_config(root / "configs" / "minilm_lamp.toml"))}
    w = minilm.load_weights(layers=2)
    ids = minilm.load_tokenizer().encode(["A dog barks at the postman.",
                                          "Stocks fell sharply on Monday."])
    out = {}
    for lab in ("scores fp8 (uniform)", "LAMP att-tau=1.5"):
        c = cells[lab]
        enc = GraphEncoder(w, c.ops, c.linear, c.attention, seed=0)
        enc.encode(ids)
        out[lab] = (enc.tally, c)
    (tu, _), (tl, cl) = out["scores fp8 (uniform)"], out["LAMP att-tau=1.5"]
    k = tl.recomputed["scores"]
    assert k > 0 and tu.recomputed["scores"] == 0
    high, d = cl.attention.high, 32
    reread = sum(hw.OPERAND_BITS) * hw.SRAM_PJ_PER_BIT
    hu, hl = tu.hardware(1), tl.hardware(1)
    assert hl["energy_pj"] - hu["energy_pj"] == pytest.approx(
        k * (hw.inner_product_energy(high, d) + d * reread), rel=1e-9)
    assert hl["h100_time_ns"] - hu["h100_time_ns"] == pytest.approx(
        hw.pass_seconds(high, k * d) * 1e9, rel=1e-9)
    assert hl["h100_tile_time_ns"] - hu["h100_tile_time_ns"] >= \
        hl["h100_time_ns"] - hu["h100_time_ns"]
