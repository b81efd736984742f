"""Batches in parallel threads (accsim.run.parallel): the datasets of a network run and of
a graph run are the same bits with 1, 2 and 3 workers; ordered_map keeps the order,
bounds the batches in flight and raises a worker's error."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from helpers import tiny_cnn

import networks
from accsim.accumulators.factory import build_model
from accsim.graph import Assignment
from accsim.graph.experiment import GraphPlan, run_graph_plan
from accsim.run import parallel
from accsim.run.experiment import Plan, run_dataset, run_plan
from accsim.run.strategies import Adaptive, Control, Uniform

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}
FP16_SR = {"family": "recursive", "acc_format": "binary16", "mode": "sr", "product": "exact"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _same_bits(ds1, ds2):
    assert sorted(ds1.data_vars) == sorted(ds2.data_vars)
    for k in ds1.data_vars:
        a, b = np.asarray(ds1[k].values), np.asarray(ds2[k].values)
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if a.dtype.kind in "fciub":
            assert a.tobytes() == b.tobytes(), k
        else:
            assert a.tolist() == b.tolist(), k
    for k in ("n_samples",):
        if k in ds1.attrs:
            assert ds1.attrs[k] == ds2.attrs[k]


def _dense_plan():
    rng = np.random.default_rng(0)
    to8 = networks.to_e4m3
    layers = [networks.Layer(kind="dense", W=to8(rng.standard_normal((12, 16)) * .5)
                             .astype(np.float64), b=to8(rng.standard_normal(12) * .1)
                             .astype(np.float64), activation="relu"),
              networks.Layer(kind="dense", W=to8(rng.standard_normal((4, 12)) * .5)
                             .astype(np.float64), b=to8(rng.standard_normal(4) * .1)
                             .astype(np.float64), activation="identity")]
    net = networks.Network(name="tiny", layers=layers)
    x = rng.uniform(0, 1, (70, 16)).astype(np.float32)
    y = np.argmax(net.forward(x), axis=1)
    lo, hi, sr = build_model(dict(FP8)), build_model(dict(FP16)), build_model(dict(FP16_SR))
    strategies = [Uniform(hi, label="fp16"), Uniform(sr, label="sr"),
                  Adaptive(lo, hi, 0.5, criterion="authors", label="a"),
                  Control(lo, hi, "random", "a", label="random@a")]
    return Plan(net, x, y, strategies, batch=9, seed=3, record_samples=20, bootstrap=200)


@pytest.mark.parametrize("workers", [2, 3])
def test_network_run_same_bits_for_any_worker_count(workers):
    plan = _dense_plan()
    acc1, _ = run_plan(plan, workers=1)
    accn, _ = run_plan(plan, workers=workers)
    _same_bits(run_dataset(plan, acc1), run_dataset(plan, accn))


def test_graph_run_same_bits_for_any_worker_count(monkeypatch):
    rng = np.random.default_rng(4)
    g = tiny_cnn(rng)
    lo, hi, sr = build_model(dict(FP8)), build_model(dict(FP16)), build_model(dict(FP16_SR))
    assignments = [Assignment({"conv": Uniform(sr), "dense": Uniform(hi)}, "u"),
                   Assignment({"conv": Adaptive(lo, hi, 0.5), "dense": Uniform(lo)}, "a",
                              None, {"conv"})]
    x = rng.standard_normal((23, 2, 6, 6))
    y = rng.integers(0, 4, 23)

    def plan():
        return GraphPlan(g, x, y, list(assignments),
                         controls={"a": (lo, hi, None, {"dense": Uniform(lo)})},
                         batch=4, seed=5, record_samples=6)

    p1 = plan()
    acc1, _ = run_graph_plan(p1, workers=1)
    p2 = plan()
    monkeypatch.setenv(parallel.ENV_WORKERS, "2")  # the default comes from the environment
    acc2, _ = run_graph_plan(p2)
    labels = [a.label for a in p1.assignments]
    assert labels[:2] == ["u", "a"] and {"random@a", "oracle@a"} <= set(labels)
    _same_bits(run_dataset(p1, acc1), run_dataset(p2, acc2))


def test_ordered_map_order_bound_and_errors(monkeypatch):
    live, peak, lock = [0], [0], threading.Lock()

    def slow(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002 * (7 - i % 7))  # later items finish first
        with lock:
            live[0] -= 1
        return i * i

    assert list(parallel.ordered_map(slow, range(20), 3)) == [i * i for i in range(20)]
    assert 2 <= peak[0] <= 3

    def boom(i):
        if i == 4:
            raise RuntimeError("batch 4 failed")
        return i

    got = []
    with pytest.raises(RuntimeError, match="batch 4"):
        for v in parallel.ordered_map(boom, range(10), 2):
            got.append(v)
    assert got == [0, 1, 2, 3]
    monkeypatch.setenv(parallel.ENV_WORKERS, "0")
    with pytest.raises(ValueError, match="ACCSIM_WORKERS must be a positive integer"):
        parallel.default_workers()
    monkeypatch.setenv(parallel.ENV_WORKERS, "3")
    assert parallel.default_workers() == 3
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(parallel.ordered_map(boom, range(3), 0))


def test_ordered_map_runs_serially_where_concurrent_launches_are_unsafe(monkeypatch):
    """numba's workqueue layer aborts on concurrent kernel launches: one batch at a time."""
    live, peak, lock = [0], [0], threading.Lock()

    def slow(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002)
        with lock:
            live[0] -= 1
        return -i

    monkeypatch.setattr(parallel, "concurrent_launch_safe", lambda: False)
    assert list(parallel.ordered_map(slow, range(8), 3)) == [-i for i in range(8)]
    assert peak[0] == 1


def _wide_conv(rng):
    """conv (16 -> 32 channels, 3x3, K = 144) -> maxpool -> flatten -> dense on
    (16, 14, 14) inputs, binary32 weights: on 7 images the conv is one ``32 x 144 x
    1372`` product, large enough for OpenBLAS to split it between threads (a binary64
    ``W @ X`` of it differs in its last bits between 1 and 2 threads here)."""
    from accsim.graph import Conv2d, Dense, Flatten, Graph, MaxPool2d

    def w(shape):
        return (rng.standard_normal(shape) * .3).astype(np.float32).astype(np.float64)

    return Graph("wide", (16, 14, 14), [
        Conv2d("c1", w((32, 16, 3, 3)), w(32), padding=1, activation="relu"),
        MaxPool2d("p", 2), Flatten("f"), Dense("d", w((10, 32 * 49)), w(10))])


@pytest.mark.parametrize("record_samples", [2, 7])
def test_graph_run_same_bits_for_any_blas_thread_count(record_samples):
    """The seed fixes every result whatever the BLAS thread count: a graph run (uniform
    and adaptive rows, bounds, the label-free reference) with BLAS limited to 1 and to 2
    threads gives the same dataset, every variable bit for bit. Binary32 inputs and
    weights: binary64 sums of their 48-bit products are rarely exact, in any order.
    With records of the first 2 images it failed while the label-free reference was the
    BLAS forward; with records of all 7 it failed while the bounds' and the condition
    estimates' ``|W||X|`` was a BLAS product (now :func:`accsim.kernels.absmatmul.
    abs_matmul`, fixed order)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(7)
    g = _wide_conv(rng)
    lo, hi = build_model(dict(FP8)), build_model(dict(FP16))
    assignments = [Assignment({"default": Uniform(hi)}, "u"),
                   Assignment({"default": Adaptive(lo, hi, 0.5)}, "a")]
    x = rng.uniform(0, 1, (7, 16, 14, 14))
    y = rng.integers(0, 10, 7)
    ds = []
    for threads in (1, 2):
        plan = GraphPlan(g, x, y, list(assignments), batch=7, seed=5,
                         record_samples=record_samples)
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            acc, _ = run_graph_plan(plan, workers=1)
        ds.append(run_dataset(plan, acc))
    _same_bits(*ds)
