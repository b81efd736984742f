"""``accsim run``: happy path on a tiny configuration and clear configuration errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from accsim.cli import app
from accsim.run.config import load_config, parse_config
from accsim.run.experiment import evaluate, prepare

TINY = """
[run]
network = "mlp-relu"
samples = 12
batch = 8
record_samples = 3
output = "{out}"
plots = true

[models.fp8]
family = "blocked"
block = 8
inner_format = "float8_e4m3"
outer_format = "float8_e4m3"
mode = "rne"

[models.fp16]
family = "recursive"
acc_format = "binary16"

[models.fp32]
family = "recursive"
acc_format = "binary32"

[[strategies]]
kind = "uniform"
model = "fp8"

[[strategies]]
kind = "uniform"
model = "fp16"

[[strategies]]
kind = "adaptive"
low = "fp8"
high = "fp16"
tau = [1.0, 10.0]

[[strategies]]
kind = "adaptive"
low = "fp8"
high = "fp16"
criterion = "authors"
tau = 0.3

[[strategies]]
kind = "multilevel"
levels = ["fp8", "fp16", "fp32"]
tau = 1.0
"""


def _write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_run_happy_path(tmp_path):
    import xarray as xr

    out = tmp_path / "res" / "tiny.zarr"
    cfg = _write(tmp_path, TINY.format(out=out))
    res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output.replace("\n", "")
    ds = xr.open_zarr(out, consolidated=False).load()
    labels = list(ds["strategy"].values)
    assert labels == ["uniform-fp8", "uniform-fp16", "adaptive-tau=1", "adaptive-tau=10",
                      "authors-tol=0.3", "multilevel-tau=1"]
    for k in ("accuracy", "recomputed_fraction", "bit_cost", "max_error_bound_ratio"):
        assert ds[k].dims == ("strategy",)
    assert (ds["n_samples"] == 12).all()
    assert (ds["violations"] == 0).all()
    assert list(ds["criterion"].values) == ["none", "none", "predicted", "predicted",
                                            "authors", "predicted"]
    assert ds["recomputed_fraction_layer"].shape == (6, 3)
    assert ds["computed"].shape[0] == 6 and ds.sizes["component"] == (784 + 128 + 10) * 3
    assert bool(ds["holds"].all())
    assert (tmp_path / "res" / "tiny_img" / "accuracy_vs_cost.png").is_file()
    assert (tmp_path / "res" / "tiny_img" / "error_vs_condition.png").is_file()
    # --out overrides the configured path, and results are deterministic
    out2 = tmp_path / "other.zarr"
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out2), "--no-plots"])
    assert res.exit_code == 0, res.output
    ds2 = xr.open_zarr(out2, consolidated=False).load()
    np.testing.assert_array_equal(ds["accuracy"].values, ds2["accuracy"].values)
    np.testing.assert_array_equal(ds["computed"].values, ds2["computed"].values)


def test_evaluate_matches_run_and_is_deterministic():
    a = evaluate("mlp-relu", "adaptive", low={"family": "blocked", "block": 8,
                 "inner_format": "float8_e4m3", "outer_format": "float8_e4m3",
                 "mode": "rne"}, high={"family": "recursive", "acc_format": "binary16"},
                 tau=3.0, samples=10, seed=1)
    b = evaluate("mlp-relu", "adaptive", low={"family": "blocked", "block": 8,
                 "inner_format": "float8_e4m3", "outer_format": "float8_e4m3",
                 "mode": "rne"}, high={"family": "recursive", "acc_format": "binary16"},
                 tau=3.0, samples=10, seed=1, batch=3)
    assert a == b
    for k in ("accuracy", "recomputed_fraction", "bit_cost", "max_error_bound_ratio",
              "max_rel_error", "n_samples", "violations"):
        assert k in a
    assert a["n_samples"] == 10 and 0 < a["recomputed_fraction"] < 1


BAD = [
    ("[run]\nnetwork = 'mlp-relu'\nbogus = 1\n[[strategies]]\nkind='uniform'\nmodel='x'\n",
     "run.bogus"),
    ("[run]\nnetwork = 'mlp-relu'\nsamples = -1\n[[strategies]]\nkind='uniform'\nmodel='x'\n",
     "run.samples"),
    ("[run]\nnetwork = 'mlp-relu'\n[[strategies]]\nkind='adaptive'\nlow='a'\nhigh='b'\n"
     "tau=-1.0\n", "strategies[0].tau"),
    ("[run]\nnetwork = 'mlp-relu'\n[[strategies]]\nkind='magic'\nmodel='a'\n",
     "strategies[0].kind"),
    ("[run]\nnetwork = 'mlp-relu'\n[[strategies]]\nkind='adaptive'\nlow='a'\ntau=1.0\n",
     "strategies[0]: adaptive strategy needs 'high'"),
    ("[run]\nnetwork = 'mlp-relu'\n", "strategies"),
    ("[run]\nnetwork = 'mlp-relu'\n[[strategies]]\nkind='uniform'\nmodel='x'\ntau=1.0\n",
     "does not take tau"),
    ("not toml [", "not valid TOML"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_bad_config_errors(tmp_path, text, needle):
    p = _write(tmp_path, text)
    with pytest.raises(ValueError) as exc:
        load_config(p)
    assert needle in str(exc.value)
    res = CliRunner().invoke(app, ["run", str(p)])
    assert res.exit_code == 2
    assert needle in res.output


def _cfg(**run):
    base = {"network": "mlp-relu", "samples": 2}
    base.update(run)
    return {"run": base, "models": {"fp16": {"family": "recursive", "acc_format": "binary16"}},
            "strategies": [{"kind": "uniform", "model": "fp16"}]}


def test_semantic_errors_before_work(tmp_path):
    with pytest.raises(ValueError, match="run.network.*unknown network 'mlp-nope'"):
        prepare(parse_config(_cfg(network="mlp-nope")))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        prepare(parse_config(_cfg(activations=["relu", "swish", "identity"])))
    with pytest.raises(ValueError, match="3 layers, got 2"):
        prepare(parse_config(_cfg(activations=["relu", "relu"])))
    d = _cfg()
    d["strategies"][0]["model"] = "no-such-model"
    with pytest.raises(ValueError, match="strategies\\[0\\].model"):
        prepare(parse_config(d))
    d = _cfg()
    d["models"]["fp16"]["family"] = "no-family"
    with pytest.raises(ValueError, match="models.fp16"):
        prepare(parse_config(d))
    x = np.zeros((3, 784), np.float32)
    x[1, 5] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"non-finite value x\[1, 5\]"):
        prepare(parse_config(_cfg(inputs=str(tmp_path / "nan.npz"))))
    np.savez(tmp_path / "shape.npz", x=np.zeros((3, 100), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"expected shape \(N, 784\)"):
        prepare(parse_config(_cfg(inputs=str(tmp_path / "shape.npz"))))
    with pytest.raises(ValueError, match="run.activation_format"):
        prepare(parse_config(_cfg(activation_format="binary99")))
    d = _cfg()
    d["strategies"].append({"kind": "uniform", "model": "fp16"})
    with pytest.raises(ValueError, match="duplicate labels"):
        prepare(parse_config(d))


def _assert_same_bits(a, b):
    """Every variable of two run datasets equal bit for bit (NaN payloads and signed
    zeros included), timings aside."""
    for k in a.data_vars:
        if k in ("run_seconds", "wall_seconds"):
            continue
        va, vb = a[k].values, b[k].values
        if va.dtype.kind == "f":
            va, vb = va.view(np.uint64 if va.itemsize == 8 else np.uint32), \
                vb.view(np.uint64 if vb.itemsize == 8 else np.uint32)
        np.testing.assert_array_equal(va, vb, err_msg=k)


def test_run_scheduler_same_bits(tmp_path):
    """``accsim run --scheduler``: the batches run on a dask cluster (a scheduler and two
    single-thread worker processes on the loopback interface) and the dataset equals a
    local run's bit for bit, every variable (5 batches of at most 3 inputs in flight 2 at a
    time, so results arrive out of order and must be put back in batch order)."""
    import xarray as xr
    from distributed import LocalCluster

    text = TINY.replace("samples = 12\nbatch = 8", "samples = 13\nbatch = 3")
    text = text.replace("plots = true", "plots = false")
    local, dist = tmp_path / "local.zarr", tmp_path / "dist.zarr"
    cfg = _write(tmp_path, text.format(out=local))
    res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"}) as cluster:
        addr = cluster.scheduler_address
        res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(dist),
                                       "--scheduler", addr])
        assert res.exit_code == 0, res.output
        assert f"batches on {addr}" in res.output.replace("\n", "")
    a = xr.open_zarr(local, consolidated=False).load()
    b = xr.open_zarr(dist, consolidated=False).load()
    assert a.sizes == b.sizes and set(a.data_vars) == set(b.data_vars)
    assert int(a["n_samples"][0]) == 13
    _assert_same_bits(a, b)


def test_run_scheduler_unreachable(tmp_path):
    """An unreachable scheduler: exit 2, a message naming it, before any work; nothing
    written."""
    import socket

    with socket.socket() as s:  # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "res" / "x.zarr"
    cfg = _write(tmp_path, TINY.format(out=out))
    addr = f"tcp://127.0.0.1:{port}"
    res = CliRunner().invoke(app, ["run", str(cfg), "--scheduler", addr,
                                   "--connect-timeout", "1"])
    assert res.exit_code == 2, res.output
    assert addr in res.output and "cannot reach the dask scheduler" in res.output
    assert not out.exists() and not (tmp_path / "res").exists()


def test_run_scheduler_graph_config_same_bits(tmp_path):
    """A layer-graph configuration (the shipped MNIST CNN, 7 images in batches of 3) with
    an adaptive row and its random / random-active / oracle controls: ``accsim run
    --scheduler`` on a loopback cluster of two worker processes gives the local run's
    dataset bit for bit, every variable. The local run uses the process's BLAS threads
    (both cores), the workers one each: the label-free reference is the exact network,
    which does not depend on them."""
    from pathlib import Path

    import xarray as xr
    from distributed import LocalCluster

    if _installed_ccexam() is None:
        pytest.skip("ccexam not installed (scripts/install_pretrained.sh)")
    src = (Path(__file__).resolve().parents[1] / "configs" / "mnist_cnn.toml").read_text()
    head = src[:src.index("[run]")]
    models = TINY[TINY.index("[models.fp8]"):TINY.index("[[strategies]]")]  # TINY's models
    local, dist = tmp_path / "local.zarr", tmp_path / "dist.zarr"
    text = head + f"""[run]
samples = 7
seed = 3
batch = 3
output = "{local}"

{models}
[[strategies]]
kind = "uniform"
model = "fp16"

[[strategies]]
kind = "adaptive"
low = "fp8"
high = "fp16"
criterion = "predicted"
tau = 1.0
controls = true
"""
    cfg = _write(tmp_path, text)
    res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"NUMBA_NUM_THREADS": "1",
                                                   "OPENBLAS_NUM_THREADS": "1",
                                                   "OMP_NUM_THREADS": "1"}) as cluster:
        addr = cluster.scheduler_address
        res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(dist),
                                       "--scheduler", addr])
        assert res.exit_code == 0, res.output
        assert f"batches on {addr}" in res.output.replace("\n", "")
    a = xr.open_zarr(local, consolidated=False).load()
    b = xr.open_zarr(dist, consolidated=False).load()
    assert a.sizes == b.sizes and set(a.data_vars) == set(b.data_vars)
    assert a.sizes["strategy"] >= 5  # uniform, adaptive and its three controls
    _assert_same_bits(a, b)


def _installed_ccexam():
    from accsim.graph.config import resolve_file

    try:
        return resolve_file("pkg:ccexam/weights/mnist.pth")
    except ValueError:
        return None


MINILM_TINY = """
[run]
sentences = 5
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

[models.fp16sr]
family = "recursive"
acc_format = "binary16"
mode = "sr"
product = "exact"

[models.fp32acc]
family = "recursive"
acc_format = "binary32"
mode = "rne"
product = "exact"

[[strategies]]
name = "u-bf16"
default = "bf16acc"
ops = {{ ln_mean = "fp32acc", ln_var = "fp32acc", softmax_sum = "fp32acc" }}

[[strategies]]
name = "u-sr"
default = "fp16sr"

[[strategies]]
name = "r"
default = "fp32acc"
ops = {{ qkv = "bf16acc", attn_out = "bf16acc", ffn_in = "bf16acc", ffn_out = "bf16acc" }}
linear = {{ kind = "random", high = "fp32acc", tau = 100.0 }}

[[strategies]]
name = "a"
default = "fp32acc"
ops = {{ qkv = "bf16acc", attn_out = "bf16acc", ffn_in = "bf16acc", ffn_out = "bf16acc" }}
linear = {{ kind = "adaptive", high = "fp32acc", tau = 100.0 }}

[[strategies]]
name = "lamp"
default = "fp32acc"
ops = {{ scores = "bf16acc" }}
attention = {{ kind = "lamp-v1", high = "fp32acc", tau = 1.5 }}
"""


def test_run_scheduler_minilm_same_bits(tmp_path, monkeypatch):
    """A MiniLM configuration (5 sentences in batches of 2, one layer; uniform bf16,
    uniform stochastic rounding, an adaptive cell with its random control listed before
    it (2 seeds), LAMP): ``accsim run --scheduler`` on a loopback cluster of two worker
    processes gives the local run's dataset and JSON rows bit for bit, timings aside.

    Both runs use one BLAS thread (the binary64 reference and the "fp64" classes go
    through BLAS, whose last bits depend on its thread count; dask's workers use 1)."""
    import json

    import xarray as xr
    from distributed import LocalCluster
    from test_minilm_config import _model_or_skip

    _model_or_skip()
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cfg = _write(tmp_path, MINILM_TINY.format(out=tmp_path / "local"))
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output
    # the client computes nothing itself: it prices the workers' hardware counts
    from accsim.run import cost

    monkeypatch.setattr(cost, "_HW_MODELS", {})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"NUMBA_NUM_THREADS": "1",
                                                   "OPENBLAS_NUM_THREADS": "1",
                                                   "OMP_NUM_THREADS": "1"}) as cluster:
        addr = cluster.scheduler_address
        res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "dist"),
                                       "--scheduler", addr])
        assert res.exit_code == 0, res.output
        assert f"batches on {addr}" in res.output.replace("\n", "")
    timing = ("seconds", "mac_per_s")
    with xr.open_dataset(tmp_path / "local.nc", engine="h5netcdf") as a, \
            xr.open_dataset(tmp_path / "dist.nc", engine="h5netcdf") as b:
        assert a.sizes == b.sizes and set(a.data_vars) == set(b.data_vars)
        assert a.sizes["strategy"] == 6 and a.attrs["sentences"] == 5
        for k in a.data_vars:
            if k not in timing:
                va, vb = a[k].values, b[k].values
                assert va.dtype == vb.dtype and va.tobytes() == vb.tobytes(), k
        assert float(a["lin_recomputed"].sel(strategy="a lin-tau=100")) > 0
    ra = json.loads((tmp_path / "local.json").read_text())
    rb = json.loads((tmp_path / "dist.json").read_text())
    for d in (ra, rb):
        d.pop("reference_seconds")
        for r in d["rows"]:
            for k in timing:
                r.pop(k)
    assert ra == rb
