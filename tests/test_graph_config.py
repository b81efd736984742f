"""``accsim run`` on a layer-graph config: end to end on a tiny .npz network, and
configuration errors naming file, line and key before any work."""

from __future__ import annotations

import numpy as np
import pytest

from accsim.cli.run import run_command

TOML = """
[network]
name = "tiny"
format = "npz"
file = "sd.npz"
input_shape = [1, 6, 6]

[[network.layers]]
type = "conv2d"
name = "c"
out_channels = 2
kernel = 3
padding = 1
activation = "relu"

[[network.layers]]
type = "avgpool2d"
name = "pool"
kernel = 2

[[network.layers]]
type = "flatten"
name = "f"

[[network.layers]]
type = "dense"
name = "fc"
out_features = 3

[inputs]
source = "npz"
file = "inputs.npz"
scale = 0.5

[run]
batch = 3
record_samples = 2
output = "out.zarr"

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
model = "fp16"
assign = { avgpool = "fp32" }

[[strategies]]
kind = "adaptive"
low = "fp8"
high = "fp16"
tau = 1.0
assign = { avgpool = "fp32" }
controls = true
"""


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    f32 = np.float32  # as framework weights: float32 products with fp32 inputs are exact
    np.savez(tmp_path / "sd.npz", **{"c.weight": rng.standard_normal((2, 1, 3, 3)).astype(f32),
                                     "c.bias": rng.standard_normal(2).astype(f32),
                                     "fc.weight": rng.standard_normal((3, 18)).astype(f32),
                                     "fc.bias": rng.standard_normal(3).astype(f32)})
    np.savez(tmp_path / "inputs.npz", x=rng.standard_normal((5, 1, 6, 6)),
             y=rng.integers(0, 3, 5))
    p = tmp_path / "tiny.toml"
    p.write_text(TOML)
    return p


def test_graph_config_runs_end_to_end(tiny, tmp_path):
    ds, out = run_command(tiny, tmp_path / "r.zarr", quiet=True)
    assert out.exists()
    labels = list(ds["strategy"].values)
    assert labels == ["uniform-fp16|avgpool=fp32", "adaptive-tau=1|avgpool=fp32",
                      "random@adaptive-tau=1|avgpool=fp32",
                      "random-active@adaptive-tau=1|avgpool=fp32",
                      "oracle@adaptive-tau=1|avgpool=fp32"]
    assert list(ds["layer"].values) == ["c", "pool", "fc"]
    assert list(ds["layer_class"].values) == ["conv", "avgpool", "dense"]
    assert int(ds["violations"].sum()) == 0
    assert int(ds["n_samples"][0]) == 5
    # controls recompute the adaptive row's per-layer counts
    fr = ds["recomputed_fraction_layer"].values
    np.testing.assert_allclose(fr[2], fr[1], atol=0.05)
    np.testing.assert_allclose(fr[3], fr[1], atol=0.05)
    np.testing.assert_allclose(fr[4], fr[1], atol=0.05)
    assert np.all(fr[:, 1] == 0)  # avgpool on uniform fp32 in every row
    assert ds["computed"].shape[1] == 2 * (2 * 36 + 2 * 9 + 3)


@pytest.mark.parametrize("edit, match", [
    (("file = \"sd.npz\"", "file = \"nope.npz\""), r"tiny.toml:\d+: network.file: .*does "
                                                    "not exist"),
    (("assign = { avgpool = \"fp32\" }\n\n[[strategies]]",
      "assign = { lstm = \"fp32\" }\n\n[[strategies]]"),
     r"strategies\[0\].assign: unknown op classes \['lstm'\]"),
    (("out_features = 3", "out_features = 4"),
     r"layer 'fc': tensor 'fc.weight' has shape \(3, 18\), the declared architecture needs "
     r"\(4, 18\)"),
    (("kernel = 2", "kernel = 2\nbogus = 1"), r"layer 'pool': unknown keys \['bogus'\]"),
    (("format = \"npz\"", "format = \"onnx\""), r"tiny.toml:\d+: network.format"),
])
def test_graph_config_errors(tiny, tmp_path, edit, match):
    tiny.write_text(TOML.replace(*edit))
    with pytest.raises(ValueError, match=match):
        run_command(tiny, tmp_path / "r.zarr", quiet=True)
    assert not (tmp_path / "r.zarr").exists()
