"""The set-up warm-up runs the shipped configs' strategies without writing anything."""

from pathlib import Path

from accsim import warmup


def test_warmup_runs_a_config_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Path(__file__).parents[1] / "configs" / "cnn.toml"
    seconds = warmup.warm([cfg])
    assert seconds > 0
    assert list(tmp_path.iterdir()) == []


def test_kernel_jobs_one_per_kernel_plus_rounding_and_exact():
    cfg = Path(__file__).parents[1] / "configs" / "paper_mlp.toml"
    jobs = warmup.kernel_jobs([cfg])
    # fp8 blocked, then fp16/bf16/fp32 share the recursive kernel: two model jobs
    assert [j[0] for j in jobs] == ["model", "model", "round", "exact"]
    assert jobs[0][1]["family"] == "blocked" and jobs[1][1]["family"] == "recursive"


def test_parallel_warmup_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Path(__file__).parents[1] / "configs" / "cnn.toml"
    assert warmup.warm_parallel([cfg], workers=2) > 0
    assert list(tmp_path.iterdir()) == []
