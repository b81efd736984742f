"""MiniLM linear-layer controls of issue 20 (``random-active``, matched counts), the
per-sentence agreement and hardware columns, and the verdict family
(``scripts/minilm_verdict.py``) built from a run's dataset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[run]
sentences = 4
batch = 2
layers = 1
seeds = [0, 1]
output = "{out}"
plots = false

[models.bf16acc]
family = "recursive"
acc_format = "bfloat16"
mode = "rne"
product = "exact"

[models.fp32acc]
family = "recursive"
acc_format = "binary32"
mode = "rne"
product = "exact"

[[strategies]]
name = "u"
default = "fp32acc"
ops = {{ qkv = "bf16acc", attn_out = "bf16acc", ffn_in = "bf16acc", ffn_out = "bf16acc" }}
{extra}
"""

LIN = ('ops = { qkv = "bf16acc", attn_out = "bf16acc", ffn_in = "bf16acc", '
       'ffn_out = "bf16acc" }\n')


def _strategy(name, kind):
    return (f'[[strategies]]\nname = "{name}"\ndefault = "fp32acc"\n{LIN}'
            f'linear = {{ kind = "{kind}", high = "fp32acc", tau = 100.0 }}\n')


def _script():
    spec = importlib.util.spec_from_file_location("minilm_verdict",
                                                  ROOT / "scripts/minilm_verdict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run_ds(tmp_path_factory):
    from test_minilm_config import _model_or_skip

    _model_or_skip()
    import xarray as xr

    from accsim.transformer.minilm_run import load_config, run

    tmp = tmp_path_factory.mktemp("mc")
    extra = "".join(_strategy(n, k) for n, k in (("a", "adaptive"), ("r", "random"),
                                                 ("ra", "random-active"),
                                                 ("o", "oracle")))
    p = tmp / "c.toml"
    p.write_text(CONFIG.format(out=tmp / "res", extra=extra))
    res = run(load_config(p))
    with xr.open_dataset(res["paths"]["nc"], engine="h5netcdf") as ds:
        return res, ds.load()


def test_controls_recompute_the_adaptive_count(run_ds):
    res, ds = run_ds
    rows = {(r["label"], r["seed"]): r for r in res["rows"]}
    a = rows[("a lin-tau=100", 0)]
    assert 0 < a["lin_recomputed"] < 1
    # a control recomputes, per sentence and projection, exactly the count the adaptive
    # cell recorded (not the criterion's count on its own forward pass, whose inputs
    # differ after the first projection)
    for lab, sd in [("r lin-tau=100", 0), ("r lin-tau=100", 1), ("ra lin-tau=100", 0),
                    ("ra lin-tau=100", 1), ("o lin-tau=100", 0)]:
        assert rows[(lab, sd)]["lin_recomputed"] == a["lin_recomputed"], (lab, sd)
    # random-active draws from its own stream: not the random control's components
    assert rows[("ra lin-tau=100", 0)]["emb_err_median"] != \
        rows[("r lin-tau=100", 0)]["emb_err_median"]
    # the oracle recomputes the largest actual errors: more accurate than random here
    assert rows[("o lin-tau=100", 0)]["emb_err_median"] < \
        rows[("r lin-tau=100", 0)]["emb_err_median"]


def test_agreement_and_hardware_columns(run_ds):
    res, ds = run_ds
    agree = ds["out_agree"].values
    assert agree.shape == (ds.sizes["strategy"], 4)
    assert set(np.unique(agree)) <= {0.0, 1.0}
    np.testing.assert_array_equal(1 - agree.mean(axis=1), ds["flip_rate"].values)
    for k in ("energy_pj", "h100_time_ns", "h100_tile_time_ns"):
        v = ds[k].values
        assert (v > 0).all(), k
    lab = [str(x) for x in ds["label"].values]
    e = dict(zip(lab, ds["energy_pj"].values, strict=False))
    # the adaptive strategy pays an estimation pass and the recomputations: more energy
    # than the uniform bf16 projections and than its random control
    assert e["a lin-tau=100"] > e["r lin-tau=100"] > e["u"]


def test_verdict_family_pairs_rows_with_their_controls(run_ds):
    from accsim.analysis.stats import comparison_family

    _, ds = run_ds
    rows = _script().family_rows(ds)
    kinds = {r["label"]: (r["kind"], r["matched_to"]) for r in rows}
    assert kinds["a lin-tau=100"] == ("adaptive", "")
    assert kinds["u"] == ("uniform", "")
    for lab in ("r lin-tau=100", "r lin-tau=100#1"):
        assert kinds[lab] == ("random", "a lin-tau=100")
    assert kinds["ra lin-tau=100"] == ("random-active", "a lin-tau=100")
    assert kinds["o lin-tau=100"] == ("oracle", "a lin-tau=100")
    comps = comparison_family(rows)
    rel = sorted(c["relation"] for c in comps)
    assert rel == ["oracle", "random", "random-active", "uniform"]
    # the Wilcoxon test of the random relation uses the mean over both seeds
    from accsim.analysis.stats import log10_error, wilcoxon_paired

    by = {r["label"]: r for r in rows}
    la = log10_error(by["a lin-tau=100"]["error"])
    lb = (log10_error(by["r lin-tau=100"]["error"])
          + log10_error(by["r lin-tau=100#1"]["error"])) / 2
    (c,) = [c for c in comps if c["relation"] == "random"]
    assert (c["median_log10_diff"], c["p_wilcoxon"]) == wilcoxon_paired(la, lb)[:2]
    assert c["n"] == 4 and c["p_wilcoxon_holm"] >= c["p_wilcoxon"]


@pytest.mark.parametrize("name", ["minilm_verdict_lamp.toml", "minilm_verdict_adaptive.toml"])
def test_verdict_configs_parse(name):
    from accsim.transformer.minilm_run import expand, load_config

    cfg = load_config(ROOT / "configs" / name)
    cells = expand(cfg)
    assert cfg.run.sentences == 290 and cfg.run.checkpoint and cfg.run.seeds == [0, 1, 2]
    kinds = {(c.linear.kind, c.attention.kind) for c in cells}
    ctrl = {k for pair in kinds for k in pair} & {"random", "oracle"}
    assert ctrl == {"random", "oracle"}


def test_a_control_without_its_adaptive_cell_is_refused(tmp_path):
    from accsim.transformer.minilm_run import load_config, run

    p = tmp_path / "c.toml"
    p.write_text(CONFIG.format(out=tmp_path / "res", extra=_strategy("r", "random")))
    with pytest.raises(ValueError, match="'r lin-tau=100': a linear control needs the "
                                         "adaptive cell it matches"):
        run(load_config(p))
    assert not (tmp_path / "res").exists()


def test_a_control_listed_before_its_adaptive_cell_reads_its_counts(tmp_path):
    from test_minilm_config import _model_or_skip

    _model_or_skip()
    from accsim.transformer.minilm_run import load_config, run

    p = tmp_path / "c.toml"
    p.write_text(CONFIG.format(out=tmp_path / "res", extra=_strategy("o", "oracle")
                               + _strategy("a", "adaptive")))
    rows = {r["label"]: r for r in run(load_config(p))["rows"]}
    assert [r for r in rows] == ["u", "o lin-tau=100", "a lin-tau=100"]
    assert 0 < rows["o lin-tau=100"]["lin_recomputed"] == rows["a lin-tau=100"]["lin_recomputed"]
