"""The authors' script's choices: saturating e4m3 accumulation and the bias added after
the sum (checked against Fraction references, bit for bit)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers import run_network as run_batch
from reference import float8_e4m3, ref_add, ref_round

import networks
from accsim.graph.engine import add_bias_after
from accsim.run.experiment import resolve_model
from accsim.run.formatspec import format_from_table, materialize
from accsim.run.strategies import Adaptive, Uniform

SAT = {"name": "float8_e4m3", "saturate": True}
FP8_SAT = {"family": "blocked", "block": 8, "inner_format": SAT, "outer_format": SAT,
           "mode": "rne"}
FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _bits(a):
    return np.asarray(a, np.float64).view(np.uint64)


def test_preset_table_gives_saturating_e4m3_of_max_240():
    f = format_from_table(SAT)
    assert f.name == "float8_e4m3_sat" and f.saturate and f.max == 240.0
    assert f.bias == 7 and f.p == 4
    assert format_from_table({"name": "float8_e4m3"}).saturate is False
    # nested in a model spec; 'name' of a model spec (with family) is not a format
    spec = materialize({"family": "blocked", "inner_format": SAT, "name": "x"})
    assert spec["name"] == "x" and spec["inner_format"].saturate


@pytest.mark.parametrize("table, word", [
    ({"name": "float8_e4m3", "saturat": True}, "saturat"),
    ({"name": "float8_e4m3", "saturate": 1}, "true or false"),
    ({"name": "nosuchformat"}, "nosuchformat"),
])
def test_bad_format_table_named(table, word):
    with pytest.raises(ValueError, match=word):
        resolve_model({"family": "blocked", "block": 8, "inner_format": table,
                       "outer_format": table})


def test_saturating_accumulator_matches_fraction_reference():
    """Blocked-8 e4m3 sums that overflow: +-240 with saturation, inf without; every
    result equals the Fraction reference of the blocked order (each block summed in e4m3,
    then added to the running e4m3 total), with the reference's saturating e4m3."""
    rng = np.random.default_rng(3)
    W = rng.choice([-15.0, 15.0, 14.0, 13.0, -1.5, 0.875], size=(6, 16))
    W[0] = 15.0  # all 16 products are 30: the sum 480 overflows
    W[1] = -15.0
    X = np.full((16, 1), 2.0)
    C = np.zeros((6, 1))
    sat, ieee = resolve_model(FP8_SAT), resolve_model(FP8)
    got = sat.matmul(W, X, C)
    assert got[0, 0] == 240.0 and got[1, 0] == -240.0
    assert np.isinf(ieee.matmul(W, X, C)[0, 0])
    ref_fmt = float8_e4m3()
    from dataclasses import replace

    ref_fmt = replace(ref_fmt, saturate=True)
    for i in range(W.shape[0]):
        total = ref_round(Fraction(0), ref_fmt)
        for k in range(0, 16, 8):
            blk = ref_round(Fraction(0), ref_fmt)
            for j in range(k, k + 8):
                blk = ref_add(blk, Fraction(W[i, j]) * Fraction(X[j, 0]), ref_fmt)
            total = ref_add(total, blk, ref_fmt)
        assert _bits(got[i, 0]) == _bits(float(total)), i


def _layer_net(W, b, activation="identity"):
    return networks.Network(name="one", layers=[networks.Layer(
        kind="dense", W=W, b=b, activation=activation)])


@pytest.mark.parametrize("spec", [FP8_SAT, FP8, FP16])
def test_bias_after_is_one_rounded_addition_fraction_reference(spec):
    """``bias = "after"``: ``v = fl(fl(W x) + b)`` with one rounding to the output
    format; the Fraction reference adds exactly and rounds once."""
    from accsim.run.formatspec import materialize as mat

    rng = np.random.default_rng(7)
    m, n, P = 12, 20, 5
    W = np.ldexp(rng.integers(8, 16, (m, n)) / 8.0, rng.integers(-4, 1, (m, n)))
    W *= rng.choice([-1.0, 1.0], (m, n))
    b = np.ldexp(rng.integers(8, 16, m) / 8.0, rng.integers(-6, 2, m)) * \
        rng.choice([-1.0, 1.0], m)
    x = rng.integers(0, 9, (P, n)) / 8.0
    model = resolve_model(spec)
    _, layers = run_batch(_layer_net(W, b), Uniform(model), x, bias="after",
                          input_format="binary32")
    got = layers[0].computed
    s = model.matmul(W, x.T, np.zeros((m, P)))  # the sum without bias, model's own bits
    fmt = mat(spec)
    out = fmt.get("outer_format", fmt.get("acc_format"))
    from accsim.numbers.formats import format as get_format

    out = get_format(out)
    from reference import RefFormat

    ref_fmt = RefFormat(out.name, out.p, out.emin, out.emax, out.max,
                        saturate=out.saturate)
    for i in range(m):
        for p in range(P):
            want = ref_add(Fraction(s[i, p]), Fraction(b[i]), ref_fmt)
            assert _bits(got[i, p]) == _bits(float(want)), (i, p)
    # the bias-initial run differs somewhere (the option is not a no-op)
    _, init = run_batch(_layer_net(W, b), Uniform(model), x, input_format="binary32")
    assert np.any(_bits(init[0].computed) != _bits(got)) or spec is FP16
    # the recorded bound holds
    assert np.all(layers[0].holds)


def test_bias_after_matches_add_bias_after_and_adaptive_uses_it():
    rng = np.random.default_rng(1)
    W = np.ldexp(rng.integers(8, 16, (8, 24)) / 8.0, rng.integers(-3, 1, (8, 24)))
    b = np.full(8, 0.4375)
    x = rng.integers(0, 5, (4, 24)) / 4.0
    lo, hi = resolve_model(FP8_SAT), resolve_model(FP16)
    st = Adaptive(lo, hi, 0.3, criterion="authors", zero="recompute")
    _, lay = run_batch(_layer_net(W, b, "relu"), st, x, bias="after")
    low = add_bias_after(lo, lo.matmul(W, x.T, np.zeros((8, 4))), np.broadcast_to(
        b[:, None], (8, 4)))
    high = add_bias_after(hi, hi.matmul(W, x.T, np.zeros((8, 4))), np.broadcast_to(
        b[:, None], (8, 4)))
    want = np.where(lay[0].level == 1, high, low)
    assert np.array_equal(_bits(lay[0].computed), _bits(want))


def test_bias_mode_errors():
    W, b = np.ones((2, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="unknown bias mode 'late'"):
        run_batch(_layer_net(W, b), Uniform(resolve_model(FP16)), np.ones((1, 3)),
                  bias="late")
    sr = {"family": "recursive", "acc_format": "binary16", "mode": "sr",
          "product": "exact"}
    with pytest.raises(ValueError, match="deterministic rounding mode"):
        run_batch(_layer_net(W, b), Uniform(resolve_model(sr)), np.ones((1, 3)),
                  bias="after")


# ------------------------------------------------------------- the one strategy-kind check
def test_strategy_kind_checked_in_one_place_for_runs_and_sweeps():
    from accsim.batch.config import parse_config as parse_sweep
    from accsim.run.config import parse_config as parse_run
    from accsim.run.experiment import evaluate, make_strategy
    from accsim.run.strategies import STRATEGY_KINDS, check_kind

    assert STRATEGY_KINDS == ("uniform", "adaptive", "multilevel")
    msg = "unknown strategy kind 'bogus'; valid: uniform, adaptive, multilevel"
    with pytest.raises(ValueError, match=msg):
        check_kind("bogus")
    with pytest.raises(ValueError, match=msg):
        parse_run({"run": {"network": "mlp-relu"},
                   "strategies": [{"kind": "bogus", "model": "x"}]})
    with pytest.raises(ValueError, match=msg):
        parse_sweep('[sweep]\nname = "a"\n[[grid]]\nnetwork = "mlp-relu"\n'
                    'strategy = "bogus"\n', "s.toml")
    with pytest.raises(ValueError, match=msg):
        make_strategy("bogus")
    with pytest.raises(ValueError, match=msg):
        evaluate("mlp-relu", "bogus", "fp16")
    with pytest.raises(ValueError, match=r"is a control: ask for it with controls"):
        parse_run({"run": {"network": "mlp-relu"},
                   "strategies": [{"kind": "oracle", "model": "x"}]})


def test_ablation_variants_undo_one_choice_each():
    """scripts/ablate_authors.py: every variant is a valid run config differing from the
    full authors configuration in exactly the choice it names."""
    import importlib.util
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("ablate", root / "scripts/ablate_authors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = tomllib.loads((root / "configs/paper_mlp_authors.toml").read_text())
    full = mod.build(cfg, mod.variants()["full"][1])
    assert full.run.bias == "after" and full.run.network.endswith("-norm-s0")
    auth = full.strategies[2]
    assert (auth.criterion, auth.zero, auth.output_kappa) == ("authors", "recompute", "relu")
    assert full.models[auth.low]["inner_format"] == {"name": "float8_e4m3",
                                                     "saturate": True}
    seen = set()
    for name, (_, edit) in mod.variants().items():
        if name == "full":
            continue
        v = mod.build(cfg, edit)
        diffs = set()
        if v.run != full.run:
            diffs.add("run")
        if v.models != full.models:
            diffs.add("models")
        if v.strategies != full.strategies:
            diffs.add("strategies")
        assert len(diffs) == 1, (name, diffs)
        seen.add(name)
    assert len(seen) == 6
