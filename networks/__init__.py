"""Small trained networks with float8_e4m3 weights for accumulation studies.

Examples
--------
>>> import networks
>>> networks.available()
['mlp-relu', 'mlp-tanh', 'mlp-sigmoid', 'mlp-gelu', 'cnn-relu']
>>> net = networks.load("mlp-relu")
>>> x_train, y_train, x_test, y_test = networks.digits_dataset()
>>> acc = net.accuracy(x_test, y_test)
"""

from .activations import ACTIVATIONS, dphi, kappa, phi
from .data import DataUnavailable, digits_dataset, load_dataset, load_fashion_mnist, load_mnist
from .model import Layer, Network, col2im, im2col
from .quant import E4M3, E4M3_MAX, is_e4m3, to_e4m3
from .registry import available, build, layer_specs, load, manifest

__all__ = [
    "ACTIVATIONS", "E4M3", "E4M3_MAX", "DataUnavailable", "Layer", "Network", "available",
    "build", "col2im", "load_dataset", "load_fashion_mnist", "load_mnist",
    "digits_dataset", "dphi", "im2col", "is_e4m3", "kappa", "layer_specs", "load", "manifest",
    "phi", "to_e4m3",
]
