"""Model-name errors of ``hwmodels.get``: short messages with close matches."""

from __future__ import annotations

import pytest

import hwmodels


def test_unknown_instruction_message_is_short_with_close_matches():
    with pytest.raises(ValueError) as exc:
        hwmodels.get("hopper:wgmma.m64n8k32.f32.e4m3.e4m4")
    msg = str(exc.value)
    assert len(hwmodels.available("hopper")) > 100
    assert len(msg) < 1200, msg  # was every one of ~400 instructions
    assert "did you mean wgmma.m64n8k32.f32.e4m3.e4m3" in msg
    assert "hwmodels.available('hopper')" in msg


@pytest.mark.parametrize("bad", [None, 3, ("hopper",)])
def test_get_non_string_is_value_error(bad):
    with pytest.raises(ValueError, match="model names are strings"):
        hwmodels.get(bad)
