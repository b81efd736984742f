"""``accsim models``: the registry as a user sees it."""

from typer.testing import CliRunner

import hwmodels
from accsim.cli import app
from accsim.cli.models import models_table

runner = CliRunner()


def test_overview_lists_every_generic_model_and_every_architecture():
    rows = dict(models_table())
    names = hwmodels.available()
    for name in names:
        if ":" not in name:
            assert name in rows
    for arch in {n.split(":", 1)[0] for n in names if ":" in n}:
        count = sum(n.startswith(arch + ":") for n in names)
        assert rows[f"{arch}:*"].startswith(f"{count} instructions")


def test_arch_listing_and_filter():
    rows = [n for n, _ in models_table("hopper", "wgmma.m64n8k32.f32.e4m3.*")]
    assert "hopper:wgmma.m64n8k32.f32.e4m3.e4m3" in rows
    assert all(n.startswith("hopper:wgmma.m64n8k32.f32.e4m3.") for n in rows)
    res = runner.invoke(app, ["models", "ampere"])
    assert res.exit_code == 0
    assert "ampere:mma.m16n8k16.f32.f16.f16.f32" in res.output


def test_unknown_architecture_is_a_clear_error():
    res = runner.invoke(app, ["models", "pentium"])
    assert res.exit_code == 2
    assert "unknown architecture 'pentium'" in res.output
    assert "hopper" in res.output
