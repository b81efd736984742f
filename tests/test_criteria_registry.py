"""Adding a criterion is one registration (accsim/run/criteria.py, issue 18): a toy
criterion registered by the test is accepted by the run config, the sweep config and
``make_strategy``, runs in the adaptive strategy through the engine, and recomputes
exactly the components its flag names."""

import numpy as np
import pytest
from helpers import run_network

import networks
from accsim.accumulators.factory import build_model
from accsim.run import criteria
from accsim.run.criteria import Criterion, register_criterion
from accsim.run.strategies import Uniform

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _big(s, ctx, v_low, c, S_hat):
    """Toy score: the magnitude of the low value."""
    return np.abs(v_low)


@pytest.fixture
def toy():
    c = register_criterion(Criterion("toy-big", False, lambda s, ctx, v, c, S:
                                     _big(s, ctx, v, c, S) > s.tau, _big, "toy-tau="))
    try:
        yield c
    finally:
        criteria._CRITERIA.pop("toy-big")


def test_a_registered_criterion_runs_everywhere(toy):
    from accsim.batch.config import parse_config as parse_sweep
    from accsim.run.config import parse_config
    from accsim.run.experiment import make_strategy

    lo, hi = build_model(FP8), build_model(FP16)
    s = make_strategy("adaptive", low=lo, high=hi, tau=0.5, criterion="toy-big")
    assert s.label == "toy-tau=0.5" and not s.uses_estimate
    cfg = parse_config({"run": {"network": "mlp-relu"}, "models": {"a": FP8, "b": FP16},
                        "strategies": [{"kind": "adaptive", "low": "a", "high": "b",
                                        "tau": 0.5, "criterion": "toy-big"}]})
    assert cfg.strategies[0].criterion == "toy-big"
    sweep, _ = parse_sweep('[sweep]\nname = "t"\ncriterion = "toy-big"\n'
                           '[[grid]]\nnetwork = "mlp-relu"\nstrategy = "adaptive"\n'
                           'low = "fp8"\nhigh = "fp16"\ntau = [0.5]\n')
    assert sweep.sweep.criterion == "toy-big"
    # through the engine: recomputed exactly where |v_low| > 0.5, on every layer
    net = networks.load("mlp-relu")
    x = networks.digits_dataset()[2][:5]
    _, ada = run_network(net, s, x)
    _, low = run_network(net, Uniform(lo), x)
    flagged = np.abs(low[0].computed) > 0.5
    assert flagged.any() and not flagged.all()
    np.testing.assert_array_equal(ada[0].level.astype(bool), flagged)
    for r in ada:
        assert r.info["criterion"] == "toy-big"


def test_unknown_criterion_is_refused_with_the_valid_names(toy):
    from accsim.run.strategies import Adaptive

    lo, hi = build_model(FP8), build_model(FP16)
    with pytest.raises(ValueError, match="unknown criterion 'nope'; valid: .*toy-big"):
        Adaptive(lo, hi, 1.0, criterion="nope")
    with pytest.raises(ValueError, match="already registered"):
        register_criterion(toy)
