"""ccexam's MNIST CNN as its own ``nn.Module`` (``ccexam.models.MNISTNet``) with its
shipped weights, for ``[network] format = "torch"`` (configs/mnist_cnn_torch.toml): the
architecture comes from the module, nothing is declared by hand."""

import torch
from ccexam.models import MNISTNet

from accsim.graph.config import resolve_file


def build():
    """``(module, example_inputs)``: the network and one 1x28x28 image (for tracing)."""
    model = MNISTNet(28)
    weights = resolve_file("pkg:ccexam/weights/mnist.pth")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), torch.zeros(1, 1, 28, 28)
