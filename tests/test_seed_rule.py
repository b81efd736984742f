"""The one seed rule (issue 14): integers in [0, 2**64); floats, bools, negatives and
values >= 2**64 are errors naming the seed, everywhere a seed is taken."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import accsim
import hwmodels
from accsim.batch import ConfigError
from accsim.batch.config import parse_config
from accsim.cli import app
from accsim.numbers import atoms
from accsim.numbers.codecs import to_ml_dtypes
from accsim.numbers.seeds import check_seed
from accsim.run.config import parse_config as parse_run

BAD = [-1, 2**64, 2**64 + 1, 1.5, 1.0, True, "1", None, np.float64(2.0)]
X = np.array([0.1, 1 / 3, 1e-3, 7.7], np.float32).astype(np.float64)


@pytest.mark.parametrize("seed", BAD)
def test_check_seed_refuses(seed):
    with pytest.raises(ValueError, match="my_seed"):
        check_seed(seed, "my_seed")


@pytest.mark.parametrize("seed", [0, 1, 2**63, 2**64 - 1, np.uint64(2**64 - 1), np.int8(5)])
def test_check_seed_accepts(seed):
    assert check_seed(seed) == int(seed)


@pytest.mark.parametrize("seed", BAD)
def test_every_api_entry_point_refuses(seed):
    calls = [
        lambda: accsim.round(X, "bf16", "sr", sr_bits=8, seed=seed),
        lambda: atoms.add(X, X, "bf16", "sr", sr_bits=8, seed=seed),
        lambda: atoms.mul(X, X, "bf16", "sr", seed=seed),
        lambda: atoms.fma(X, X, X, "bf16", "sr", seed=seed),
        lambda: to_ml_dtypes(X, "bf16", "sr", seed=seed),
        lambda: hwmodels.get("bf16-sr-accumulator").matmul(X[None, :], X[:, None],
                                                           seed=seed),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="seed"):
            call()


def test_hardware_models_hold_the_rule_too():
    import ml_dtypes

    m = hwmodels.get("ampere:mma.m16n8k16.f32.f16.f16.f32")
    A = np.ones((16, 16), ml_dtypes.float16 if hasattr(ml_dtypes, "float16") else np.float16)
    B = np.ones((16, 8), A.dtype)
    C = np.zeros((16, 8), np.float32)
    with pytest.raises(ValueError, match="seed"):
        m.matmul(A, B, C, seed=-1)


def test_no_wrap_around_at_2_to_64():
    """Seed 1 and 1 + 2**64 used to give the same stream; now the second is an error,
    and the largest seed is a stream of its own."""
    x = np.random.default_rng(0).standard_normal(4096)
    top = accsim.round(x, "bf16", "sr", seed=2**64 - 1)
    zero = accsim.round(x, "bf16", "sr", seed=0)
    assert not np.array_equal(top.view(np.uint64), zero.view(np.uint64))
    with pytest.raises(ValueError):
        accsim.round(x, "bf16", "sr", seed=1 + 2**64)


RUN = """
[run]
network = "mlp-relu"
seed = {seed}
[[strategies]]
kind = "uniform"
model = "fp16-recursive-rne"
"""


@pytest.mark.parametrize("seed", ["-1", "1.5", "true", str(2**64)])
def test_run_config_seed(seed):
    import tomllib

    text = RUN.format(seed=seed)
    with pytest.raises(ValueError, match="run.seed"):
        parse_run(tomllib.loads(text), "c.toml", text)


SWEEP = """
[sweep]
name = "x"
seed = {master}
[[grid]]
network = "mlp-relu"
low = "fp16-recursive-rne"
seed = {rep}
"""


@pytest.mark.parametrize("master,rep,key", [
    ("-1", "0", "sweep.seed"), ("1.5", "0", "sweep.seed"), (str(2**64), "0", "sweep.seed"),
    ("0", "-1", "grid[0].seed"), ("0", '"-3..2"', "grid[0].seed"), ("0", "1.5", "grid[0].seed"),
    ("0", str(2**64), "grid[0].seed"),
])
def test_sweep_config_seeds(master, rep, key):
    with pytest.raises(ConfigError) as ei:
        parse_config(SWEEP.format(master=master, rep=rep), "s.toml")
    assert ei.value.key.startswith(key), str(ei.value)


def test_cli_seed_option_is_named():
    r = CliRunner().invoke(app, ["verify", "-m", "fp16-recursive-rne", "-o", "x.zarr",
                                 "--seed", "-1"])
    assert r.exit_code == 2 and "--seed" in r.output, r.output


GENERIC = [n for n in hwmodels.available() if ":" not in n]


@pytest.mark.parametrize("seed", [1.5, -1, 2**64])
def test_every_generic_family_refuses(seed):
    """Every generic model (the families recursive, blocked, pairwise, Kahan, Kulisch,
    promotion) refuses a bad seed before any kernel sees it."""
    v = np.array([0.5, 1.0, 0.25, 2.0])  # exact in every input format
    A, B = v[None, :], v[:, None]
    for name in GENERIC:
        with pytest.raises(ValueError, match="seed"):
            hwmodels.get(name).matmul(A, B, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        hwmodels.get("fp16-kahan").matmul_with_compensation(A, B, seed=seed)
