"""``accsim minilm`` configs: validation errors before any work, shipped configs parse,
and a tiny end-to-end run (skipped without the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accsim.transformer.minilm_run import expand, load_config

ROOT = Path(__file__).resolve().parents[1]
BASE = """
[run]
sentences = 3
batch = 2
layers = 1
seeds = [0, 1]
output = "{out}"
plots = false

[models.fp16acc]
family = "recursive"
acc_format = "binary16"
mode = "rne"
product = "exact"
"""


def _write(tmp_path, body, out="res"):
    p = tmp_path / "c.toml"
    p.write_text(BASE.format(out=tmp_path / out) + body)
    return p


@pytest.mark.parametrize("name", ["minilm.toml", "minilm_lamp.toml", "minilm_sweep.toml",
                                  "lamp_paper_m.toml",
                                  "lamp_paper.toml",
                                  "minilm_adaptive.toml"])
def test_shipped_configs_parse(name):
    cfg = load_config(ROOT / "configs" / name)
    cells = expand(cfg)
    assert cells and len({c.label for c in cells}) == len(cells)


@pytest.mark.parametrize("body, match", [
    ('[[strategies]]\nname = "a"\nops = { attention = "fp16acc" }\n',
     "unknown operation class"),
    ('[[strategies]]\nname = "a"\ndefault = "nosuch"\n', "unknown model 'nosuch'"),
    ('[[strategies]]\nname = "a"\nattention = { kind = "lamp-v1", high = "fp16acc", '
     'tau = [2.5] }\n', "tau must be in"),
    ('[[strategies]]\nname = "a"\nlinear = { kind = "magic", high = "fp16acc" }\n',
     "unknown linear policy"),
    ('[[strategies]]\nname = "a"\nbogus = 1\n', "strategies.0.bogus"),
])
def test_bad_configs_name_the_problem(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, body))


def _config(tmp_path, run: str, strategies: str):
    """A one-layer config file: ``[run]`` lines, output under tmp_path, strategies."""
    p = tmp_path / "c.toml"
    p.write_text(f"[run]\n{run}\nlayers = 1\nseeds = [0]\noutput = "
                 f"\"{tmp_path / 'res'}\"\nplots = false\n{strategies}")
    return p


def _model_or_skip():
    """Skip (with the reason) when the model or the corpus package is not installed."""
    minilm = pytest.importorskip("networks.minilm")
    try:
        minilm.model_dir()
        from networks.sentences import corpus_path

        corpus_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_tiny_run_writes_results(tmp_path):
    _model_or_skip()
    import xarray as xr

    from accsim.transformer.minilm_run import run

    p = _write(tmp_path, """
[[strategies]]
name = "u"
default = "fp16acc"
[[strategies]]
name = "r"
default = "fp16acc"
attention = { kind = "random", rule = "lamp-v1", high = "fp64", tau = 1.5 }
""")
    res = run(load_config(p))
    rows = res["rows"]
    assert [(r["label"], r["seed"]) for r in rows] == [
        ("u", 0), ("r att-tau=1.5", 0), ("r att-tau=1.5", 1)]
    for r in rows:
        assert 0.99 < r["cos_min"] <= 1 and r["emb_err_median"] > 0
    ds = xr.open_dataset(res["paths"]["nc"])
    assert ds.sizes["strategy"] == 3 and ds["layer_rel_error"].shape == (3, 2)
    assert list(ds["strategy"].values) == ["u", "r att-tau=1.5 seed=0", "r att-tau=1.5 seed=1"]
    assert list(ds["strategy_name"].values) == ["u", "r", "r"]
    np.testing.assert_allclose(ds["emb_err_median"].values,
                               [r["emb_err_median"] for r in rows])


@pytest.mark.parametrize("body, match", [
    ('[[strategies]]\nname = "a"\nm_bits = [0]\n', "m_bits must be in 1..23"),
    ('[[strategies]]\nname = "a"\nm_bits = [4]\nops = { scores = "fp16acc" }\n',
     "do not also give ops.scores"),
    ('[[strategies]]\nname = "a"\nattention = { kind = "random", high = "fp64", '
     'tau = 0.1 }\n', "needs the 'rule' it matches"),
    ('[[strategies]]\nname = "a"\nattention = { kind = "lamp", high = "fp64", '
     'tau = 0.0 }\n', r"lamp tau must be in \(0"),
    ('[[strategies]]\nname = "a"\nattention = { kind = "lamp-v3", high = "fp64", '
     'tau = 0.5 }\n', "unknown attention policy 'lamp-v3'"),
])
def test_lamp_config_errors(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, body))


def test_long_input_bounds_are_checked(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\nmin_tokens = 300\nmax_length = 256\n[[strategies]]\nname = "a"\n')
    with pytest.raises(ValueError, match=r"min_tokens \(300\) exceeds max_length \(256\)"):
        load_config(p)
    p.write_text('[run]\nsentences = 400\n[[strategies]]\nname = "a"\n')
    with pytest.raises(ValueError, match="290 lead sentences"):
        load_config(p)


def test_lamp_paper_config_cells():
    cells = expand(load_config(ROOT / "configs" / "lamp_paper.toml"))
    rules = {(c.attention.kind, c.attention.rule, c.m_bits, c.att_tau) for c in cells
             if c.attention.kind != "uniform"}
    for kind in ("lamp-v1", "lamp", "lamp-relaxed"):
        mine = {(m, t) for k, _, m, t in rules if k == kind}
        ctrl = {(m, t) for k, r, m, t in rules if k == "random" and r == kind}
        assert mine and mine == ctrl  # every rule cell has its random control
    sweep = sorted(c.m_bits for c in cells if c.attention.kind == "uniform" and c.m_bits)
    assert sweep[0] == 2 and sweep[-1] == 22
    for c in cells:
        if c.m_bits:
            assert c.ops["scores"].acc_format.mantissa_bits == c.m_bits
            assert c.attention.score_format.mantissa_bits == c.m_bits
        assert c.ops["qkv"].family == "fp64"


def test_tiny_lamp_run_pairs_rules_with_controls(tmp_path):
    _model_or_skip()
    import xarray as xr

    from accsim.transformer import embed_metrics as em
    from accsim.transformer.minilm_run import run

    p = _config(tmp_path, "sentences = 4\nmin_tokens = 40\nmax_length = 64\nbatch = 3", """
[[strategies]]
name = "u"
m_bits = [4]
[[strategies]]
name = "l"
m_bits = [4]
attention = { kind = "lamp", high = "fp64", tau = 0.2 }
[[strategies]]
name = "lr"
m_bits = [4]
attention = { kind = "random", rule = "lamp", high = "fp64", tau = 0.2 }
""")
    res = run(load_config(p))
    assert res["sentences"] == 4 and res["tokens"] >= 4 * 40
    rows = {r["label"]: r for r in res["rows"]}
    lamp_row, ctrl = rows["l m=4 att-tau=0.2"], rows["lr m=4 att-tau=0.2"]
    assert 0 < lamp_row["scores_recomputed"] == ctrl["scores_recomputed"] < 0.2
    assert rows["u m=4"]["scores_recomputed"] == 0
    (c,) = res["comparisons"]
    assert c["uniform_label"] == "u m=4" and len(c["controls"]) == 1
    k = c["controls"][0]
    want = em.paired_log_ratio(res["out_kl"][("l m=4 att-tau=0.2", 0)],
                               res["out_kl"][("lr m=4 att-tau=0.2", 0)])
    assert k["out_log10_ratio"] == want
    assert c["out_kl_ratio"] == pytest.approx(rows["u m=4"]["out_kl_mean"]
                                              / lamp_row["out_kl_mean"])
    ds = xr.open_dataset(res["paths"]["nc"])
    assert ds["att_kl"].shape == (3, 4) and ds["out_kl"].attrs["units"] == "nat"
    assert "long_name" in ds["flip_rate"].attrs
    np.testing.assert_allclose(ds["att_kl"].mean("sentence").values,
                               [np.mean(res["att_kl"][(lb, 0)]) for lb in rows])


def test_checkpoints_and_input_limits(tmp_path):
    """With checkpoint = true the results are on disk after every batch; a strategy's
    inputs limit runs its cells on the first inputs only (NaN beyond in the store)."""
    _model_or_skip()
    import json

    import xarray as xr

    from accsim.transformer import minilm_run

    p = _config(tmp_path, "sentences = 5\nbatch = 2\ncheckpoint = true", """
[[strategies]]
name = "full"
m_bits = [6]
[[strategies]]
name = "part"
inputs = 3
m_bits = [6]
""")
    cfg = load_config(p)
    seen = []
    real = minilm_run._results

    def spy(rs, jobs, acc, state, out):
        res = real(rs, jobs, acc, state, out)
        seen.append(json.loads((tmp_path / "res.json").read_text())["sentences"])
        return res

    minilm_run._results = spy
    try:
        res = minilm_run.run(cfg)
    finally:
        minilm_run._results = real
    assert seen == [2, 4, 5]
    rows = {r["label"]: r for r in res["rows"]}
    assert rows["full m=6"]["inputs"] == 5 and rows["part m=6"]["inputs"] == 3
    ds = xr.open_dataset(res["paths"]["nc"])
    part = ds["att_kl"].values[1]
    assert np.all(np.isfinite(part[:3])) and np.all(np.isnan(part[3:]))
    # the same three inputs give the same per-input attention KL in both cells
    np.testing.assert_array_equal(part[:3], ds["att_kl"].values[0][:3])
