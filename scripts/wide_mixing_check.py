"""Why adaptive accumulation hurts the wide MLP (docs/results.md): its last layer alone.

Layer-2 activations of 1,000 seeded MNIST test images (binary64 forward, rounded to
binary32 as the executor feeds them) go into the last layer (n = 2048), computed exactly
(binary64), in e4m3 blocked-8 (the main job's fp8), and mixed: a random 36 % of the logits
exact, the rest fp8 (20 masks). Run: ``python scripts/wide_mixing_check.py``.
"""

import numpy as np

import networks
from accsim.accumulators.factory import build_model
from networks.data import load_mnist

FP8 = {"family": "blocked", "block": 8, "inner_format": "float8_e4m3",
       "outer_format": "float8_e4m3", "mode": "rne"}


def main(n_images=1000, frac=0.36, masks=20):
    net = networks.load("mlp-relu-wide-mnist-s0")
    x, y = load_mnist("test")[:2]
    idx = np.random.default_rng(0).permutation(len(y))[:n_images]
    x, y = np.asarray(x, np.float64)[idx], np.asarray(y)[idx]
    h = x.T.astype(np.float32).astype(np.float64)
    for layer in net.layers[:-1]:
        h = layer.forward(h).astype(np.float32).astype(np.float64)
    W = net.layers[-1].W.astype(np.float64)
    b = net.layers[-1].b.astype(np.float64)
    z = W @ h + b[:, None]
    z8 = np.asarray(build_model(FP8).matmul(W, h, np.broadcast_to(b[:, None], z.shape).copy()),
                    np.float64)

    def acc(Z):
        return float(np.mean(np.argmax(Z, 0) == y))

    print(f"n = {W.shape[1]}: accuracy exact {acc(z):.4f}, uniform fp8 {acc(z8):.4f}")
    pos = z > 1
    q = np.quantile(z8[pos] / z[pos], [0.5, 0.1, 0.9])
    print(f"fp8 / exact on logits > 1: median {q[0]:.3f} (10 % {q[1]:.3f}, 90 % {q[2]:.3f})")
    top, cols = np.argmax(z, 0), np.arange(z.shape[1])
    print(f"top logit: exact median {np.median(z[top, cols]):.2f}, "
          f"fp8 median {np.median(z8[top, cols]):.2f}")
    accs = [acc(np.where(np.random.default_rng(100 + s).random(z.shape) < frac, z, z8))
            for s in range(masks)]
    print(f"{frac:.0%} of logits exact at random, the rest fp8: accuracy mean "
          f"{np.mean(accs):.4f} (min {min(accs):.4f}, max {max(accs):.4f}, {masks} masks)")


if __name__ == "__main__":
    main()
