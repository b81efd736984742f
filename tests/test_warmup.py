"""The set-up warm-up runs the shipped configs' strategies without writing anything."""

from pathlib import Path

from accsim import warmup


def test_warmup_runs_a_config_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Path(__file__).parents[1] / "configs" / "cnn.toml"
    seconds = warmup.warm([cfg])
    assert seconds > 0
    assert list(tmp_path.iterdir()) == []
