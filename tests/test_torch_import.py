"""PyTorch front end (``accsim.import_torch`` / ``accsim.simulate``): every network here is
an ``nn.Module`` built in the test, never an architecture written out for accsim.

The reference is torch's own float64 forward: on a binary64 FMA chain
(``{family = "recursive", acc_format = "binary64", product = "fused"}``) with binary64
activations the simulated output must match it within 1e-12 relative (infinity norm).
Low-precision runs of an imported graph must give the bits of the hand-declared graph of
the same network (configs/mnist_cnn.toml).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import accsim  # noqa: E402

B64 = {"family": "recursive", "acc_format": "binary64", "product": "fused"}
FP16 = {"family": "recursive", "acc_format": "binary16", "mode": "rne", "product": "exact"}


def _rel(out, ref) -> float:
    """``max |out - ref| / max |ref|``."""
    return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


def _check_b64(module, x, **kw):
    """Import, simulate on binary64 FMA chains, compare with torch's float64 forward;
    returns (relative error, result)."""
    module = module.double().eval()
    x = x.double()
    g = accsim.import_torch(module, x)
    with torch.no_grad():
        ref = module(x).numpy()
    r = accsim.simulate(g, x, B64, activation_format="binary64", **kw)
    assert r.outputs.shape == ref.shape
    err = _rel(r.outputs, ref)
    assert err <= 1e-12, err
    return err, r


def _randomize_bn(module, gen):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class _CNN(nn.Module):
    """BatchNorm, a residual block, a depthwise (dilated) conv, GELU, adaptive average
    pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block = _Residual(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        y = F.relu(self.bn(self.stem(x)))
        y = self.block(y)
        y = F.gelu(self.pw(self.dw(y)))
        return self.fc(torch.flatten(self.pool(y), 1))


def test_cnn_with_batchnorm_residual_depthwise_gelu_adaptive_pool():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    m = _CNN()
    _randomize_bn(m, gen)
    x = torch.randn(3, 3, 12, 12, generator=gen)
    _, r = _check_b64(m, x, record_samples=1)
    ds = r.dataset
    classes = dict(zip(ds.layer.values, ds.layer_class.values, strict=True))
    assert sorted(set(classes.values())) == ["avgpool", "conv", "dense"]
    assert ds.violations.item() == 0
    # the depthwise conv: groups = 8, each output one inner product of 3*3 terms
    (dw,) = [op for op in r.graph.linear_ops if op.name == "conv2d_3"]
    assert dw.op.groups == 8 and dw.inner_length == 9


def test_transformer_encoder_layer_batch_first():
    torch.manual_seed(2)
    m = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                   activation="gelu")
    x = torch.randn(2, 6, 16)
    _, r = _check_b64(m, x)
    cls = list(r.dataset.layer_class.values)
    # q/k/v projection, per-head scores and context, out projection, two FFN linears,
    # softmax denominators and the two LayerNorms' mean and variance sums
    assert cls.count("matmul") == 2 and cls.count("softmax") == 1
    assert cls.count("dense") == 4 and cls.count("norm") == 4
    # on fp16 every component (scores, context, sums included) is within its bound
    r16 = accsim.simulate(r.graph, x.double(), FP16)
    assert r16.dataset.violations.item() == 0
    ratio = r16.dataset.max_error_bound_ratio_layer.values[0]
    assert np.all(ratio > 0) and np.all(ratio <= 1)


class _LinearMatmul(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(7, 5))
        self.b = nn.Parameter(torch.randn(7))
        self.m = nn.Parameter(torch.randn(7, 3))

    def forward(self, x):                         # x: (B, 4, 5)
        y = F.linear(x, self.w, self.b)           # (B, 4, 7), weights x activations
        s = torch.matmul(y, y.transpose(1, 2))    # (B, 4, 4), activations x activations
        return torch.matmul(torch.softmax(s, -1), torch.matmul(y, self.m))


def test_functional_linear_and_matmul():
    torch.manual_seed(3)
    x = torch.randn(3, 4, 5)
    _, r = _check_b64(_LinearMatmul(), x)
    assert sorted(r.dataset.layer_class.values) == ["dense", "dense", "matmul", "matmul",
                                                    "softmax"]
    # images are independent: one batch of 3 or three batches of 1, the same bits
    one = accsim.simulate(r.graph, x.double(), FP16, batch=1, reference=False).outputs
    three = accsim.simulate(r.graph, x.double(), FP16, batch=3, reference=False).outputs
    np.testing.assert_array_equal(one.view(np.uint64), three.view(np.uint64))
    assert not np.array_equal(one, r.outputs)
    # a short repr: shape and rows, not the dataset dump
    assert repr(r).startswith("Result(outputs (3, 4, 3), 1 row(s): uniform-") and len(repr(r)) < 200


class _Coverage(nn.Module):
    """The remaining ops: conv1d, embedding, RMSNorm, nn.MultiheadAttention, bmm, max and
    average pooling, cat / slicing / permute, sum and mean, silu, sigmoid, tanh,
    gelu(tanh), mul, BatchNorm1d."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=2, dilation=2, stride=1)
        self.bn = nn.BatchNorm1d(8)
        self.rms = nn.RMSNorm(8, eps=1e-6)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.img = nn.Conv2d(1, 2, 3, stride=(1, 2), padding=(1, 0))
        self.mp = nn.MaxPool2d(2)
        self.ap = nn.AvgPool2d(2, stride=1)

    def forward(self, ids):                                   # ids: (B, 6)
        e = self.emb(ids)                                     # (B, 6, 8)
        c = F.silu(self.bn(self.conv(e.transpose(1, 2)))).transpose(1, 2)
        h = self.rms(c * torch.sigmoid(e))
        a, _ = self.mha(h, h, h, need_weights=False)
        g = torch.bmm(a, h.transpose(1, 2))                   # (B, 6, 6)
        im = self.img(g[:, None])                             # (B, 2, 6, 2)
        p = torch.cat([self.mp(im).flatten(1), self.ap(im)[:, :, 1:3].flatten(1)], 1)
        t = torch.tanh(F.gelu(p, approximate="tanh"))
        return torch.cat([t, a.sum(1), h.mean((1, 2))[:, None]], 1)


def test_remaining_ops_against_torch():
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    m = _Coverage()
    _randomize_bn(m, gen)
    ids = torch.randint(0, 11, (3, 6), generator=gen)
    m = m.double().eval()
    g = accsim.import_torch(m, ids)
    with torch.no_grad():
        ref = m(ids).numpy()
    r = accsim.simulate(g, ids.numpy(), B64, activation_format="binary64")
    assert _rel(r.outputs, ref) <= 1e-12
    assert {"conv", "dense", "matmul", "softmax", "norm", "avgpool", "sum"} <= set(
        r.dataset.layer_class.values)
    # token ids are indices: with binary16 activations they stay exact (id 2049 is not a
    # binary16 number)
    big = nn.Sequential(nn.Embedding(2050, 4), nn.Linear(4, 1)).double().eval()
    ids = torch.tensor([[2049, 3], [1, 2048]])
    g = accsim.import_torch(big, ids)
    r64 = accsim.simulate(g, ids, B64, activation_format="binary64")
    with torch.no_grad():
        assert _rel(r64.outputs, big(ids).numpy()) <= 1e-12
    r16 = accsim.simulate(g, ids, B64, activation_format="binary16")
    assert r16.dataset.attrs["input_format"] == "binary64"
    with torch.no_grad():  # rows 2049 and 2048 both looked up (else an O(1) error)
        assert _rel(r16.outputs, big(ids).numpy()) < 1e-2
    with pytest.raises(ValueError, match="no inner product or reduction"):
        accsim.simulate(accsim.import_torch(big[0], ids), ids, B64)


@pytest.mark.parametrize("make", ["cnn", "transformer", "coverage"])
def test_core_aten_programs_import_too(make):
    """The core-ATen form of the same programs (``run_decompositions()``, what older
    torch versions export: convolution, addmm, native_layer_norm, the CPU flash attention
    op, ...) lowers to a graph with torch's float64 results as well."""
    from accsim.graph.importers.torch_export import import_exported

    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    if make == "cnn":
        m, x = _CNN(), torch.randn(2, 3, 12, 12, generator=gen)
    elif make == "transformer":
        m = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        x = torch.randn(2, 5, 8, generator=gen)
    else:
        m, x = _Coverage(), torch.randint(0, 11, (2, 6), generator=gen)
    _randomize_bn(m, gen)
    m = m.double().eval()
    x = x if make == "coverage" else x.double()
    table = torch.export.default_decompositions()  # the CPU attention op stays whole
    del table[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default]
    ep = torch.export.export(m, (x[:1],)).run_decompositions(table)
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.linear.default" not in ops and "aten.layer_norm.default" not in ops
    if make == "transformer":
        assert {"aten.addmm.default", "aten.native_layer_norm.default",
                "aten._scaled_dot_product_flash_attention_for_cpu.default"} <= ops
    g = import_exported(ep, make)
    with torch.no_grad():
        ref = m(x).numpy()
    r = accsim.simulate(g, x.numpy(), B64, activation_format="binary64", reference=False)
    assert _rel(r.outputs, ref) <= 1e-12


class _Broadcasts(nn.Module):
    """Batch axes broadcast in matmul, expand adding axes, views splitting heads."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.p = nn.Parameter(torch.randn(6, 8))

    def forward(self, x):                                           # (B, 6, 8)
        h = self.q(x).view(x.shape[0], 6, 2, 4).transpose(1, 2)     # (B, 2, 6, 4)
        w = torch.matmul(h, x[:, :, :4].unsqueeze(1).transpose(-1, -2))  # (B, 2, 6, 6)
        z = torch.matmul(w, x[:, None])                              # (B, 2, 6, 8)
        u = x.unsqueeze(1).expand(-1, 3, -1, -1)                     # (B, 3, 6, 8)
        return z.sum(1) + self.p.expand(2, 6, 8).sum(0) + u.mean(1)


class _Masks(nn.Module):
    """scaled_dot_product_attention with a boolean mask, an additive mask and a scale,
    causal; nn.MultiheadAttention returning its weights (the explicit bmm path)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(9)
        keep = torch.rand(5, 5, generator=gen) > 0.3
        keep[:, 0] = True
        self.register_buffer("keep", keep)
        self.register_buffer("bias", torch.randn(5, 5, generator=gen))
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):                                            # (B, 2, 5, 4)
        a = F.scaled_dot_product_attention(x, x, x, attn_mask=self.keep)
        b = F.scaled_dot_product_attention(x, 2 * x, x, attn_mask=self.bias, scale=0.3)
        c = F.scaled_dot_product_attention(x, x, x, is_causal=True)
        h = x[:, 0]
        return a + b + c + self.mha(h, h, h, need_weights=True)[0][:, None]


def test_attention_masks():
    torch.manual_seed(9)
    _check_b64(_Masks(), torch.randn(3, 2, 5, 4), reference=False)


def test_broadcasting_ops():
    torch.manual_seed(8)
    _check_b64(_Broadcasts(), torch.randn(3, 6, 8), reference=False)


class _Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """He et al. 2016's ResNet-18 (torchvision's layout: 7x7/2 stem, 3x3/2 max pool,
    four stages of two basic blocks, adaptive average pool, linear)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(_Basic(cin, cout, stride), _Basic(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_resnet18_architecture():
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    m = ResNet18()
    _randomize_bn(m, gen)
    _, r = _check_b64(m, torch.randn(1, 3, 32, 32, generator=gen), reference=False)
    macs = []  # the MACs of every conv and linear, counted on torch's own forward
    hooks = [mod.register_forward_hook(lambda mod, i, o: macs.append(
        o.numel() * mod.weight[0].numel())) for mod in m.modules()
        if isinstance(mod, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        m(torch.zeros(1, 3, 32, 32, dtype=torch.float64))
    for h in hooks:
        h.remove()
    ops = r.graph.linear_ops
    assert len(macs) == 21 and len(ops) == 22  # 20 convs, fc, the average pool
    assert sum(op.macs() for op in ops if op.op_class != "avgpool") == sum(macs)
    assert "exact" not in r.dataset and "violations" not in r.dataset


def _mnist_module():
    from accsim.graph.config import resolve_file

    ccexam = pytest.importorskip("ccexam.models")
    try:
        path = resolve_file("pkg:ccexam/weights/mnist.pth")
    except ValueError:
        pytest.skip("ccexam weights not installed (scripts/install_pretrained.sh)")
    m = ccexam.MNISTNet(28)
    m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return m.eval()


def _mnist_inputs(n):
    from accsim.graph.config import load_graph_config
    from accsim.graph.experiment import load_graph, load_inputs

    cfg = load_graph_config("configs/mnist_cnn.toml")
    hand = load_graph(cfg.network)
    try:
        x, y = load_inputs(cfg.inputs, hand)
    except ValueError:
        pytest.skip("foolbox images not installed (scripts/install_pretrained.sh)")
    return hand, x[:n], y[:n]


def test_ccexam_mnist_cnn_as_module():
    m = _mnist_module()
    _, x, y = _mnist_inputs(4)
    _check_b64(m, torch.from_numpy(x))


def test_imported_mnist_cnn_gives_the_hand_declared_graphs_bits():
    """fp16 recursive, the paper's fp8 blocked accumulator and the adaptive strategy
    between them, binary32 activations: the imported module's graph and
    configs/mnist_cnn.toml's hand-declared graph give the same bits, output and every
    linear op's computed components and recompute levels."""
    from accsim.accumulators.factory import build_model
    from accsim.graph import Assignment, run_graph
    from accsim.run.strategies import Adaptive, Uniform

    m = _mnist_module()
    hand, x, _ = _mnist_inputs(3)
    g = accsim.import_torch(m, torch.from_numpy(x.astype(np.float32)))
    fp8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
           "outer_format": "float8_e4m3", "mode": "rne"}
    lo, hi = build_model(fp8), build_model(FP16)
    assert [op.activation for op in g.linear_ops] == ["relu", "relu", "relu", "identity"]
    for strat in (Uniform(hi), Uniform(lo), Adaptive(lo, hi, tau=1.0)):
        a = Assignment({"default": strat}, "u")
        o1, r1 = run_graph(hand, a, x, reference=False)
        o2, r2 = run_graph(g, a, x, reference=False)
        out1, out2 = o1[hand.ops[-1].name], o2[g.ops[-1].name]
        assert out1.shape == out2.shape
        np.testing.assert_array_equal(out1.view(np.uint64), out2.view(np.uint64))
        assert len(r1) == len(r2) == 4
        for a1, a2 in zip(r1, r2, strict=True):
            np.testing.assert_array_equal(a1.computed.view(np.uint64),
                                          a2.computed.view(np.uint64))
            np.testing.assert_array_equal(a1.level, a2.level)
    assert 0 < np.mean(np.concatenate([r.level.ravel() for r in r2])) < 1
    # and the result is not trivially the binary64 network's
    assert not np.array_equal(out2, hand.forward(x))


def test_shipped_torch_config_is_the_hand_declared_network():
    """configs/mnist_cnn_torch.toml (format = "torch") and configs/mnist_cnn.toml give the
    same binary64 network, bit for bit, on the same images."""
    from accsim.graph.config import load_graph_config
    from accsim.graph.experiment import load_graph

    _mnist_module()  # skips without ccexam
    hand, x, _ = _mnist_inputs(4)
    cfg = load_graph_config("configs/mnist_cnn_torch.toml")
    g = load_graph(cfg.network, Path("configs"))
    assert g.input_shape == hand.input_shape and g.macs() == hand.macs()
    np.testing.assert_array_equal(g.forward(x).view(np.uint64),
                                  hand.forward(x).view(np.uint64))


def test_simulate_strategy_forms():
    """One model by name, a mapping op class -> model with a default, an adaptive
    strategy with its controls: rows of one dataset schema."""
    from accsim.accumulators.factory import build_model
    from accsim.run.strategies import Adaptive

    torch.manual_seed(6)
    mod = _LinearMatmul().eval()
    x = torch.randn(4, 4, 5)
    g = accsim.import_torch(mod, x)
    r1 = accsim.simulate(g, x, "fp32-recursive")
    r2 = accsim.simulate(g, x, {"matmul": FP16, "default": "fp32-recursive"})
    assert r1.dataset["models"].item().startswith("default:")
    assert "matmul:" in r2.dataset["models"].item()
    assert not np.array_equal(r1.outputs, r2.outputs)
    ad = Adaptive(build_model(FP16), build_model({"family": "recursive",
                                                   "acc_format": "binary32"}), tau=1.0)
    r3 = accsim.simulate(g, x, ad, controls=True, record_samples=1)
    labels = list(r3.dataset.strategy.values)
    kinds = [lab.split("@")[0] for lab in labels[1:]]
    assert "random" in kinds and "oracle" in kinds
    assert all(lab.endswith("@" + labels[0]) for lab in labels[1:])
    assert set(r3.rows) == set(labels)
    with pytest.raises(ValueError, match="no strategy for op class 'dense'"):
        accsim.simulate(g, x, {"matmul": "fp16-recursive-rne"})
    with pytest.raises(ValueError, match="cannot build accumulator model"):
        accsim.simulate(g, x, "no-such-model")
    with pytest.raises(ValueError, match=r"unknown op classes \['lstm'\]"):
        accsim.simulate(g, x, {"lstm": "fp32-recursive", "default": "fp32-recursive"})


class _WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.proj = nn.Linear(4, 4)
        self.encoder.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return self.encoder.lstm(self.encoder.proj(x))[0]


def test_unsupported_op_is_refused_naming_module_and_op():
    with pytest.raises(ValueError, match=r"^model\.encoder\.lstm: aten\.lstm is not "
                                         r"supported"):
        accsim.import_torch(_WithLSTM(), torch.randn(2, 3, 4))


class _Block(nn.Module):
    """Two linear layers and a LayerNorm (for op classes by module path)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.norm = nn.Linear(6, 8), nn.Linear(8, 6), nn.LayerNorm(6)

    def forward(self, x):
        return self.norm(x + self.fc2(F.gelu(self.fc1(x))))


class _Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("traced")


def test_op_classes_by_module_path():
    torch.manual_seed(4)
    m, x = _Block(), torch.randn(3, 5, 6)
    g = accsim.import_torch(m, x, op_classes={"fc1": "ffn_in", "norm:norm[1]": "ln_var"})
    assert [op.op_class for op in g.linear_ops] == ["ffn_in", "dense", "norm", "ln_var"]
    generic = accsim.import_torch(m, x)  # the generic classes are unchanged without it
    assert [op.op_class for op in generic.linear_ops] == ["dense", "dense", "norm", "norm"]
    # each class on its own model: fc1 on fp16, everything else on the binary64 chain
    mixed = accsim.simulate(g, x, {"ffn_in": FP16, "default": B64}, reference=False)
    fp64 = accsim.simulate(g, x, B64, reference=False)
    assert not np.array_equal(mixed.outputs, fp64.outputs)
    with torch.no_grad():
        ref = m.double()(x.double()).numpy()
    r = accsim.simulate(g, x, B64, activation_format="binary64", reference=False)
    assert _rel(r.outputs, ref) <= 1e-12


@pytest.mark.parametrize(("op_classes", "message"), [
    ({"fc1": "qkvv"}, r"op_classes\['fc1'\]: unknown op class 'qkvv'; valid: conv, "),
    ({"fc1:lienar": "qkv"}, r"selector 'fc1:lienar': 'lienar' is not an op class"),
    ({"fc1:dense[a]": "qkv"}, r"selector 'fc1:dense\[a\]' is not PATH, PATH:CLASS"),
    ({"fc1..x": "qkv"}, r"selector 'fc1..x': module path 'fc1..x' must be"),
    (["fc1"], r"a mapping selector -> op class expected"),
])
def test_bad_op_classes_are_refused_before_the_export(op_classes, message):
    with pytest.raises(ValueError, match=message):
        accsim.import_torch(_Exploding(), torch.randn(2, 3), op_classes=op_classes)


def test_op_classes_matching_nothing_or_conflicting_are_refused():
    m, x = _Block(), torch.randn(3, 5, 6)
    with pytest.raises(ValueError, match=r"selector 'fc3' matches no inner product(.|\n)*"
                                         r"module paths with their generic classes: "
                                         r"fc1:dense, fc2:dense, norm:norm"):
        accsim.import_torch(m, x, op_classes={"fc1": "qkv", "fc3": "qkv"})
    with pytest.raises(ValueError, match=r"model\.fc1 \(dense \[0\].*selectors "
                                         r"\['fc1', '\*'\] give different classes "
                                         r"\['ffn_in', 'qkv'\]"):
        accsim.import_torch(m, x, op_classes={"fc1": "qkv", "*": "ffn_in"})


def test_a_wrong_lowering_is_caught_at_import(monkeypatch):
    """import_torch compares the lowered graph with torch's forward on the example image:
    a lowering that computes the wrong function is an error, not a silent result."""
    from accsim.graph import tensor_ops

    monkeypatch.setitem(tensor_ops.ELEMENTWISE, "tanh", (np.sin, 1))
    with pytest.raises(ValueError, match="differs from torch's forward.*lowering error"):
        accsim.import_torch(nn.Sequential(nn.Tanh(), nn.Linear(3, 3)), torch.randn(2, 3))


BUILD = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), torch.randn(2, 4)

def lstm():
    return nn.LSTM(4, 4, batch_first=True), torch.randn(2, 3, 4)

def broken():
    raise RuntimeError("no weights here")
"""

CONFIG = """
[network]
name = "user-mlp"
format = "torch"
file = "{file}"

[inputs]
source = "npz"
file = "inputs.npz"

[run]
output = "{out}"

[[strategies]]
kind = "uniform"
model = "fp16-recursive-rne"
"""


def test_config_format_torch_runs_and_refuses(tmp_path):
    from accsim.graph.cli import graph_run_command

    (tmp_path / "mymodel.py").write_text(BUILD)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "inputs.npz", x=rng.standard_normal((5, 4)), y=rng.integers(0, 2, 5))
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG.format(file="mymodel.py:build", out=tmp_path / "out.zarr"))
    ds, out = graph_run_command(cfg, quiet=True)
    assert out == tmp_path / "out.zarr" and out.exists()
    assert list(ds.layer_class.values) == ["dense", "dense"]
    assert ds.n_samples.item() == 5

    # the same module as an exported program (.pt2) with a dynamic batch: same results
    exec_ns = {}
    exec(BUILD, exec_ns)
    mod, ex = exec_ns["build"]()
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(mod, (ex,), dynamic_shapes=({0: batch},)),
                      tmp_path / "m.pt2")
    cfg2 = tmp_path / "run2.toml"
    cfg2.write_text(CONFIG.format(file="m.pt2", out=tmp_path / "out2.zarr"))
    ds2, _ = graph_run_command(cfg2, quiet=True)
    for k in ("bit_cost", "logit_rel_error_max", "agreement"):
        np.testing.assert_array_equal(ds2[k].values, ds[k].values)
    # a program specialised to a batch of 2 cannot run one image: a clear error
    torch.export.save(torch.export.export(mod, (ex,)), tmp_path / "static.pt2")
    cfg3 = tmp_path / "run3.toml"
    cfg3.write_text(CONFIG.format(file="static.pt2", out=tmp_path / "out3.zarr"))
    with pytest.raises(ValueError, match="exported on a batch of 2.*x\\[:1\\]"):
        graph_run_command(cfg3, quiet=True)

    # unsupported op: refused naming module and op; nothing written
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.format(file="mymodel.py:lstm", out=tmp_path / "bad.zarr"))
    with pytest.raises(ValueError, match=r"network.file.*model: aten\.lstm is not supported"):
        graph_run_command(bad, quiet=True)
    assert not (tmp_path / "bad.zarr").exists()
    assert not list(tmp_path.glob("bad.zarr*"))

    # the user's function fails: its error, with its place
    cfg4 = tmp_path / "run4.toml"
    cfg4.write_text(CONFIG.format(file="mymodel.py:broken", out=tmp_path / "o4.zarr"))
    with pytest.raises(ValueError, match=r"mymodel.py:broken\(\): RuntimeError: no weights"):
        graph_run_command(cfg4, quiet=True)

    # a whole pickled module: a one-line hint, not unpickled (the tripwire's
    # __setstate__ would write a file)
    torch.save(_Tripwire(str(tmp_path / "unpickled")), tmp_path / "whole.pt")
    pk = tmp_path / "pk.toml"
    pk.write_text(CONFIG.format(file="whole.pt", out=tmp_path / "pk.zarr"))
    with pytest.raises(ValueError, match=r"pickled module.*state_dict\(\).*\.pt2"):
        graph_run_command(pk, quiet=True)
    assert not list(tmp_path.glob("pk.zarr*"))
    assert not (tmp_path / "unpickled").exists()
    with pytest.raises(ValueError, match=r"pickled module"):
        accsim.import_torch(tmp_path / "whole.pt")
    assert not (tmp_path / "unpickled").exists()
    assert accsim.import_torch(tmp_path / "m.pt2").macs() == 18
    # only the two successful runs wrote anything (no partial outputs, no locks)
    assert sorted(p.name for p in tmp_path.iterdir() if ".zarr" in p.name) == \
        ["out.zarr", "out2.zarr"]


class _Tripwire(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.fc = nn.Linear(4, 2)

    def __setstate__(self, state):  # runs only if the file is unpickled
        open(state["path"], "w").close()
        super().__setstate__(state)


def test_unfused_activation_is_seen_by_the_criterion_not_by_the_values():
    """``Linear -> GELU`` (not fused: torch rounds the linear output first): the linear
    op's tasks carry ``criterion_activation = "gelu"``; the engine's ``kappa_phi`` is
    :func:`accsim.analysis.kappa.kappa_phi` of GELU at the exact ``v`` (not identity's 1),
    the adaptive criterion's choice depends on it, and the computed values of every
    uniform and adaptive level do not."""
    from accsim.accumulators.factory import build_model
    from accsim.analysis.kappa import kappa_phi
    from accsim.graph.engine import run_task
    from accsim.run.strategies import Adaptive, Uniform

    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(24, 16), nn.GELU(), nn.Linear(16, 4), nn.SiLU()).eval()
    x = np.random.default_rng(3).standard_normal((5, 24)).astype(np.float32)
    g = accsim.import_torch(m, torch.from_numpy(x))
    first, second = g.linear_ops
    assert (first.activation, first.criterion_activation) == ("identity", "gelu")
    assert (second.activation, second.criterion_activation) == ("identity", "silu")
    t = first.lower(x.astype(np.float64))[0]
    assert t.criterion_activation == "gelu"
    lo = build_model({"family": "recursive", "acc_format": "bfloat16", "mode": "rne",
                      "product": "exact"})
    hi = build_model(FP16)
    plain = dataclasses.replace(t, criterion_activation=None)
    r = run_task(t, Uniform(lo), index=(0,), seed=0, extras=True)
    r0 = run_task(plain, Uniform(lo), index=(0,), seed=0, extras=True)
    np.testing.assert_array_equal(r.kappa_phi, kappa_phi(r.exact, "gelu"))
    assert np.all(r0.kappa_phi == 1.0) and not np.all(r.kappa_phi == 1.0)
    np.testing.assert_array_equal(r.computed.view(np.uint64), r0.computed.view(np.uint64))
    a = run_task(t, Adaptive(lo, hi, tau=1.0), index=(0,), seed=0)
    a0 = run_task(plain, Adaptive(lo, hi, tau=1.0), index=(0,), seed=0)
    assert not np.array_equal(a.level, a0.level)


def test_conv1d_activation_is_seen_through_its_reshape():
    """A conv1d is lowered as reshape -> conv2d -> reshape; the activation that reads it
    commutes with the last reshape: ReLU is fused into the conv (same bits as the equal
    Conv2d with a (1, k) kernel, whose ReLU is fused directly), SiLU becomes the conv's
    ``criterion_activation``."""
    torch.manual_seed(5)
    c1 = nn.Conv1d(4, 6, 3, padding=1)
    c2 = nn.Conv2d(4, 6, (1, 3), padding=(0, 1))
    with torch.no_grad():
        c2.weight.copy_(c1.weight[:, :, None, :])
        c2.bias.copy_(c1.bias)
    x = torch.randn(5, 4, 10)
    g1 = accsim.import_torch(nn.Sequential(c1, nn.ReLU(), nn.Flatten()).eval(), x)
    g2 = accsim.import_torch(nn.Sequential(c2, nn.ReLU(), nn.Flatten()).eval(),
                             x[:, :, None, :])
    (conv1,), (conv2,) = g1.linear_ops, g2.linear_ops
    assert conv1.activation == conv2.activation == "relu"
    assert not any(getattr(op, "fn", None) == "relu" for op in g1.ops)
    r1 = accsim.simulate(g1, x.numpy(), FP16)
    r2 = accsim.simulate(g2, x.numpy()[:, :, None, :], FP16)
    np.testing.assert_array_equal(r1.outputs.view(np.uint64), r2.outputs.view(np.uint64))
    g = accsim.import_torch(nn.Sequential(c1, nn.SiLU()).eval(), x)
    (conv,) = g.linear_ops
    assert (conv.activation, conv.criterion_activation) == ("identity", "silu")
