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
                                  "minilm_adaptive.toml"])
def test_shipped_configs_parse(name):
    cfg = load_config(ROOT / "configs" / name)
    cells = expand(cfg)
    assert cells and len({c.label for c in cells}) == len(cells)


@pytest.mark.parametrize("body, match", [
    ('[[strategies]]\nname = "a"\nops = { attention = "fp16acc" }\n',
     "unknown operation class"),
    ('[[strategies]]\nname = "a"\ndefault = "nosuch"\n', "unknown model 'nosuch'"),
    ('[[strategies]]\nname = "a"\nattention = { kind = "lamp", high = "fp16acc", '
     'tau = [2.5] }\n', "tau must be in"),
    ('[[strategies]]\nname = "a"\nlinear = { kind = "magic", high = "fp16acc" }\n',
     "unknown linear policy"),
    ('[[strategies]]\nname = "a"\nbogus = 1\n', "strategies.0.bogus"),
])
def test_bad_configs_name_the_problem(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, body))


def skip_without_minilm() -> None:
    """Skip the calling test unless the MiniLM weights and the corpus are installed."""
    minilm = pytest.importorskip("networks.minilm")
    try:
        minilm.model_dir()
        from networks.sentences import corpus_path

        corpus_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_tiny_run_writes_results(tmp_path):
    skip_without_minilm()
    import xarray as xr

    from accsim.transformer.minilm_run import run

    p = _write(tmp_path, """
[[strategies]]
name = "u"
default = "fp16acc"
[[strategies]]
name = "r"
default = "fp16acc"
attention = { kind = "random", high = "fp64", tau = 1.5 }
""")
    res = run(load_config(p))
    rows = res["rows"]
    assert [(r["label"], r["seed"]) for r in rows] == [
        ("u", 0), ("r att-tau=1.5", 0), ("r att-tau=1.5", 1)]
    for r in rows:
        assert 0.99 < r["cos_min"] <= 1 and r["emb_err_median"] > 0
    ds = xr.open_dataset(res["paths"]["nc"])
    assert ds.sizes["cell"] == 3 and ds["layer_rel_error"].shape == (3, 2)
    np.testing.assert_allclose(ds["emb_err_median"].values,
                               [r["emb_err_median"] for r in rows])
