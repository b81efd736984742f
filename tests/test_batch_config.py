"""Sweep configs: schema, error locations, expansion, seeds (accsim.batch.config/cells)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accsim.batch import ConfigError, json_schema, load_config
from accsim.batch.cells import derive_seed
from accsim.batch.config import parse_config
from accsim.run.tomlkeys import key_lines

ROOT = Path(__file__).resolve().parents[1]
HW = "ampere:mma.m16n8k16.f32.f16.f16.f32"
HW2 = "ampere:mma.m16n8k8.f32.tf32.tf32.f32"

BASE = f"""
[sweep]
name = "t"
seed = 3
samples = 8

[models.rec]
family = "recursive"
acc_format = {{p = "3..5", emax = 15}}
mode = ["rne", "sr"]
sr_bits = 8

[[grid]]
network = ["mlp-relu", "mlp-tanh"]
low = ["rec", "{HW}"]
seed = [0, 1]

[[grid]]
network = "mlp-relu"
strategy = "adaptive"
low = "rec"
high = "{HW2}"
tau = [0.1, 0.5]
"""


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def load(tmp_path, text):
    return load_config(write(tmp_path, text))


def test_expansion_counts_labels_and_sr_bits(tmp_path):
    sw = load(tmp_path, BASE)
    # grid 0: 2 networks x (6 rec variants + 1 hw) x 2 seeds; grid 1: 6 x 2 taus
    assert len(sw.cells) == 2 * 7 * 2 + 6 * 2
    assert len({c.id for c in sw.cells}) == len(sw.cells)
    labels = {c.coords["model"] for c in sw.cells}
    assert "rec[acc_format=p3emax15,mode=sr]" in labels and HW in labels
    for c in sw.cells:
        low = c.kwargs["low"]
        if isinstance(low, dict):
            assert ("sr_bits" in low) == (low["mode"] == "sr")
            assert low["acc_format"]["emax"] == 15 and 3 <= low["acc_format"]["p"] <= 5
        if c.kwargs["strategy"] == "uniform":
            assert c.kwargs["tau"] is None and c.kwargs["high"] is None
    assert [c.index for c in sw.cells] == list(range(len(sw.cells)))


def test_seeds_depend_on_parameters_not_order(tmp_path):
    a = load(tmp_path, BASE)
    b = load(tmp_path, BASE.replace('["mlp-relu", "mlp-tanh"]', '["mlp-tanh", "mlp-relu"]')
             .replace("seed = [0, 1]", "seed = [1, 0]"))
    ka = {c.id: c.kwargs["seed"] for c in a.cells}
    kb = {c.id: c.kwargs["seed"] for c in b.cells}
    assert ka == kb and [c.id for c in a.cells] != [c.id for c in b.cells]
    seeds = [c.kwargs["seed"] for c in a.cells]
    assert len(set(seeds)) == len(seeds)  # default: every parameter enters the seed
    c = load(tmp_path, BASE.replace("seed = 3", "seed = 4"))
    assert {x.kwargs["seed"] for x in c.cells}.isdisjoint(seeds)


def test_seed_keys_give_common_random_numbers(tmp_path):
    sw = load(tmp_path, BASE.replace("samples = 8", 'samples = 8\nseed_keys = ["network", '
                                     '"samples", "seed"]'))
    by = {}
    for c in sw.cells:
        by.setdefault((c.kwargs["network"], c.coords["seed"]), set()).add(c.kwargs["seed"])
    assert all(len(s) == 1 for s in by.values())
    assert by[("mlp-relu", 0)] == {derive_seed(3, {"network": "mlp-relu", "samples": 8,
                                                   "seed": 0})}


def test_explicit_cells_and_dedupe(tmp_path):
    text = f"""
[sweep]
name = "x"
[[cells]]
network = "mlp-relu"
low = "{HW}"
samples = 4
[[cells]]
network = "mlp-relu"
low = "{HW}"
samples = 4
[[cells]]
network = "cnn-relu"
strategy = "multilevel"
levels = ["{HW}", "{HW2}"]
tau = 0.01
"""
    sw = load(tmp_path, text)
    assert len(sw.cells) == 2
    ml = sw.cells[1].kwargs
    assert ml["levels"] == [HW, HW2] and ml["low"] is None and ml["tau"] == 0.01
    assert sw.cells[1].coords["model"] == f"{HW} > {HW2}"


def test_glob_and_all_networks(tmp_path):
    import hwmodels
    import networks

    text = '[sweep]\nname = "g"\n[[grid]]\nnetwork = "all"\nlow = "volta:*"\n'
    sw = load(tmp_path, text)
    volta = hwmodels.available("volta")
    assert len(sw.cells) == len(networks.available()) * len(volta)


def test_key_lines_scanner():
    text = '[sweep]\nname = "x" # c\n[[grid]]\nlow = [\n  "a",\n  {family = "b"},\n]\n' \
           '[[grid]]\ntau = [1, 2]\n'
    lines = key_lines(text)
    assert lines[("sweep", "name")] == 2
    assert lines[("grid", 0, "low", 0)] == 5 and lines[("grid", 0, "low", 1)] == 6
    assert lines[("grid", 1, "tau")] == 9 and lines[("grid", 1)] == 8


@pytest.mark.parametrize("old, new, anchor, key, words", [
    # unknown key in a table
    ("samples = 8\n", "samples = 8\nsampels = 3\n", "sampels", "sweep.sampels",
     "unknown key"),
    # wrong type inside a list: the element is located
    ("tau = [0.1, 0.5]", 'tau = [0.1, "big"]', "tau = [0.1", "grid[1].tau[1]", "number"),
    # unknown network, in a multi-line list
    ('["mlp-relu", "mlp-tanh"]', '[\n  "mlp-relu",\n  "mlp-tahn",\n]', '"mlp-tahn"',
     "grid[0].network[1]", "unknown network 'mlp-tahn'"),
    # unknown model name, with close matches
    (f'"{HW2}"', '"ampere:mma.m16n8k8.f32.tf32.tf32.f33"', "f33", "grid[1].high",
     "did you mean"),
    # bad range
    ('"3..5"', '"5..3"', '"5..3"', "models.rec.acc_format.p", "range"),
    # parameter not used by the strategy
    ('strategy = "adaptive"', 'strategy = "uniform"', "high =", "grid[1].high", "not used"),
    # adaptive without tau: the grid's header line
    ("tau = [0.1, 0.5]\n", "\n", "[[grid]]\nnetwork = \"mlp-relu\"", "grid[1].tau",
     "needs 'tau'"),
    # invalid strategy value
    ('strategy = "adaptive"', 'strategy = "adaptiv"', "adaptiv", "grid[1].strategy",
     "unknown strategy kind 'adaptiv'; valid: uniform, adaptive, multilevel"),
    # TOML syntax error
    ("seed = 3", "seed = = 3", "seed = =", "", "TOML syntax"),
])
def test_malformed_configs_fail_with_location(tmp_path, old, new, anchor, key, words):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    line = text[:text.index(anchor)].count("\n") + 1
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    e = ei.value
    assert (e.line, e.key) == (line, key), str(e)
    assert words in str(e)
    assert str(e).startswith(f"{p}:{line}: ")


def test_missing_sections(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep: required key is missing"):
        parse_config('[[grid]]\nnetwork = "mlp-relu"\nlow = "x"\n')
    with pytest.raises(ConfigError, match=r"no \[\[grid\]\] and no \[\[cells\]\]"):
        parse_config('[sweep]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"exponent_bits and mantissa_bits, or p and emax"):
        parse_config('[sweep]\nname = "x"\n[models.m]\nfamily = "recursive"\n'
                     'acc_format = {p = 3, exponent_bits = 5}\n[[grid]]\nnetwork = "mlp-relu"'
                     '\nlow = "m"\n')


def test_shipped_configs_load():
    for name in ("smoke_sweep", "paper_sweep", "design_space", "hardware_comparison"):
        sw = load_config(ROOT / "configs" / f"{name}.toml")
        assert sw.cells, name
    assert len(load_config(ROOT / "configs" / "smoke_sweep.toml").cells) >= 8


def test_json_schema_doc_is_current():
    """docs/sweep_schema.json is generated from the pydantic model (cannot drift):
    regenerate with ``python -m accsim.batch.config > docs/sweep_schema.json``."""
    doc = json.loads((ROOT / "docs" / "sweep_schema.json").read_text())
    assert doc == json.loads(json.dumps(json_schema()))
