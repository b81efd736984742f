"""Keras HDF5 (``model.save("m.h5")``, Keras 2.x) Sequential models -> :class:`Graph`.

The architecture is read from the file (the ``model_config`` JSON attribute), the
weights from ``model_weights/<layer>/<layer>/<var>:0`` (the ``weight_names`` attribute
of each layer group). Keras is channel-last; the graph is channel-first, so conv kernels
``(kh, kw, C_in, O)`` become ``(O, C_in, kh, kw)``, input images ``(H, W, C)`` must be
transposed to ``(C, H, W)`` (:func:`accsim.graph.data.to_channel_first`), and the
weights of a Dense layer that follows a Flatten of a feature map are permuted from
Keras's ``(h, w, c)`` flattening order to the graph's ``(c, h, w)``.

Supported layers: InputLayer, Conv2D (``valid``, or ``same`` with stride 1 and odd
kernels; groups; no dilation), Dense, BatchNormalization (channel axis), MaxPooling2D,
AveragePooling2D (``valid``), Flatten, Dropout (identity at inference), Activation and
ReLU. Anything else raises ``ValueError`` naming the layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from accsim.graph.graph import Graph
from accsim.graph.ops import Activation, AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d

__all__ = ["load_keras_h5"]

_ACT = {"linear": "identity", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
        "gelu": "gelu", "swish": "silu", "silu": "silu", "softmax": "softmax"}


def _weights(f, name: str, path: str) -> dict:
    grp = f.get(f"model_weights/{name}")
    if grp is None:
        raise ValueError(f"{path}: layer {name!r}: no weights group model_weights/{name}")
    out = {}
    for wn in grp.attrs.get("weight_names", []):
        wn = wn.decode() if isinstance(wn, bytes) else str(wn)
        short = wn.split("/")[-1].split(":")[0]
        out[short] = np.asarray(grp[wn], np.float64)
    return out


def _tensor(w: dict, key: str, layer: str, path: str, shape=None):
    if key not in w:
        raise ValueError(f"{path}: layer {layer!r}: tensor {key!r} missing (has "
                         f"{sorted(w)})")
    a = w[key]
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{path}: layer {layer!r}: tensor {key!r} has shape {a.shape}, "
                         f"expected {tuple(shape)}")
    return a


def _act(cfg, layer, path):
    a = cfg.get("activation", "linear")
    if a not in _ACT:
        raise ValueError(f"{path}: layer {layer!r}: activation {a!r} is not supported "
                         f"(supported: {', '.join(_ACT)})")
    return _ACT[a]


def load_keras_h5(path: str | Path, name: str | None = None) -> Graph:
    """Build a :class:`Graph` from a Keras 2 HDF5 model file.

    Raises
    ------
    ValueError
        Missing or unreadable file, a non-Sequential model, an unsupported layer or
        option (naming the layer), or weights whose shapes do not match.
    """
    import h5py

    path = str(path)
    if not Path(path).is_file():
        raise ValueError(f"Keras model file {path!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file: {exc}") from None
    with f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError(f"{path}: no 'model_config' attribute (not a Keras model "
                             "saved with model.save(...h5))")
        try:
            cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: attribute 'model_config' is not valid JSON "
                             f"({exc})") from None
        if not isinstance(cfg, dict) or cfg.get("class_name") != "Sequential":
            raise ValueError(f"{path}: model_config: model class "
                             f"{cfg.get('class_name') if isinstance(cfg, dict) else cfg!r}"
                             " is not supported (only Sequential)")
        layers = _checked_layers(cfg, path)
        shape = None  # current per-image shape, channel-last (H, W, C) or (n,)
        ops = []
        flattened_from = None
        for lay in layers:
            cls, lc = lay["class_name"], lay["config"]
            lname = lc.get("name", cls)
            if shape is None:
                bis = lc.get("batch_input_shape")
                if bis is None:
                    raise ValueError(f"{path}: layer {lname!r}: no input shape")
                shape = tuple(int(s) for s in bis[1:])
                input_shape = shape
            if cls == "InputLayer" or cls == "Dropout":
                continue
            if lc.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"{path}: layer {lname!r}: data_format "
                                 f"{lc['data_format']!r} is not supported")
            if cls == "Conv2D":
                if tuple(lc.get("dilation_rate", (1, 1))) != (1, 1):
                    raise ValueError(f"{path}: layer {lname!r}: dilation is not supported")
                kh, kw = lc["kernel_size"]
                st = tuple(lc["strides"])
                groups = int(lc.get("groups", 1))
                if lc["padding"] == "valid":
                    pad = 0
                elif lc["padding"] == "same" and st == (1, 1) and kh == kw and kh % 2:
                    pad = (kh - 1) // 2
                else:
                    raise ValueError(f"{path}: layer {lname!r}: padding {lc['padding']!r} "
                                     f"with strides {st} and kernel {kh}x{kw} is not "
                                     "supported")
                w = _weights(f, lname, path)
                C = shape[-1]
                k = _tensor(w, "kernel", lname, path, (kh, kw, C // groups, lc["filters"]))
                b = _tensor(w, "bias", lname, path, (lc["filters"],)) \
                    if lc.get("use_bias", True) else None
                ops.append(Conv2d(lname, k.transpose(3, 2, 0, 1), b, stride=st[0],
                                  padding=pad, groups=groups,
                                  activation=_conv_act(lc, lname, path, ops)))
                if _act(lc, lname, path) == "softmax":
                    ops.append(Activation(lname + "_softmax", "softmax"))
            elif cls == "Dense":
                w = _weights(f, lname, path)
                n_in = int(np.prod(shape))
                k = _tensor(w, "kernel", lname, path, (n_in, lc["units"]))
                b = _tensor(w, "bias", lname, path, (lc["units"],)) \
                    if lc.get("use_bias", True) else None
                if flattened_from is not None:
                    h, ww, c = flattened_from
                    k = k.reshape(h, ww, c, -1).transpose(2, 0, 1, 3).reshape(n_in, -1)
                    flattened_from = None
                ops.append(Dense(lname, k.T, b, activation=_conv_act(lc, lname, path, ops)))
                if _act(lc, lname, path) == "softmax":
                    ops.append(Activation(lname + "_softmax", "softmax"))
            elif cls == "BatchNormalization":
                ax = lc.get("axis", -1)
                ax = ax[0] if isinstance(ax, list) else ax
                if ax not in (-1, len(shape)):
                    raise ValueError(f"{path}: layer {lname!r}: BatchNormalization over "
                                     f"axis {ax} is not supported (channel axis only)")
                w = _weights(f, lname, path)
                n = shape[-1]
                g = _tensor(w, "gamma", lname, path, (n,)) if lc.get("scale", True) \
                    else np.ones(n)
                be = _tensor(w, "beta", lname, path, (n,)) if lc.get("center", True) \
                    else np.zeros(n)
                ops.append(BatchNorm(lname, g, be,
                                     _tensor(w, "moving_mean", lname, path, (n,)),
                                     _tensor(w, "moving_variance", lname, path, (n,)),
                                     eps=lc.get("epsilon", 1e-3)))
            elif cls in ("MaxPooling2D", "AveragePooling2D"):
                if lc.get("padding", "valid") != "valid":
                    raise ValueError(f"{path}: layer {lname!r}: padding "
                                     f"{lc['padding']!r} is not supported")
                ps = lc["pool_size"]
                st = lc.get("strides") or ps
                if cls == "MaxPooling2D":
                    ops.append(MaxPool2d(lname, ps, st))
                else:
                    ops.append(AvgPool2d(lname, ps, st))
            elif cls == "Flatten":
                if len(shape) == 3:
                    flattened_from = shape
                ops.append(Flatten(lname))
            elif cls in ("Activation", "ReLU"):
                a = "relu" if cls == "ReLU" else _act(lc, lname, path)
                if cls == "ReLU" and (lc.get("max_value") is not None
                                      or lc.get("negative_slope", 0) not in (0, 0.0)
                                      or lc.get("threshold", 0) not in (0, 0.0)):
                    raise ValueError(f"{path}: layer {lname!r}: ReLU options are not "
                                     "supported")
                ops.append(Activation(lname, a))
            else:
                raise ValueError(f"{path}: layer {lname!r}: layer type {cls!r} is not "
                                 "supported (supported: InputLayer, Conv2D, Dense, "
                                 "BatchNormalization, MaxPooling2D, AveragePooling2D, "
                                 "Flatten, Dropout, Activation, ReLU)")
            shape = _keras_shape(ops[-1], shape) if ops else shape
    cf = (input_shape[2], input_shape[0], input_shape[1]) if len(input_shape) == 3 \
        else input_shape
    try:
        return Graph(name or Path(path).stem, cf, ops)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


#: Keys each supported Keras layer class must have in its ``config``.
_REQUIRED = {"Conv2D": ("filters", "kernel_size", "strides", "padding"),
             "Dense": ("units",), "MaxPooling2D": ("pool_size",),
             "AveragePooling2D": ("pool_size",)}


def _checked_layers(cfg: dict, path: str) -> list:
    """``model_config.config.layers``, each a ``{"class_name": str, "config": dict}``
    holding the keys its class needs (:data:`_REQUIRED`); ``ValueError`` naming the
    layer and the key otherwise (before any weight is read)."""
    conf = cfg.get("config")
    layers = conf.get("layers") if isinstance(conf, dict) else None
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{path}: model_config.config.layers is missing or empty (a "
                         "Sequential model lists its layers there)")
    for i, lay in enumerate(layers):
        where = f"{path}: model_config.config.layers[{i}]"
        if not isinstance(lay, dict) or not isinstance(lay.get("class_name"), str):
            raise ValueError(f"{where}: class_name is missing (each layer names its "
                             "Keras class)")
        lc = lay.get("config")
        if not isinstance(lc, dict):
            raise ValueError(f"{where} ({lay['class_name']}): config is missing")
        for key in _REQUIRED.get(lay["class_name"], ()):
            if key not in lc:
                raise ValueError(f"{where} ({lay['class_name']} "
                                 f"{lc.get('name', '')!r}): required key {key!r} is "
                                 "missing")
        size = lc.get("kernel_size", lc.get("pool_size"))
        if lay["class_name"] in _REQUIRED and size is not None and not (
                isinstance(size, list) and len(size) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                        for x in size)):
            raise ValueError(f"{where} ({lay['class_name']}): kernel/pool size must be "
                             f"two integers >= 1, got {size!r}")
    return layers


def _conv_act(lc, lname, path, ops):
    a = _act(lc, lname, path)
    return "identity" if a == "softmax" else a


def _keras_shape(op, shape):
    """Channel-last shape after ``op`` (for the next layer's weight shapes)."""
    if isinstance(op, Flatten):
        return (int(np.prod(shape)),)
    if isinstance(op, Dense):
        return (op.weight.shape[0],)
    if isinstance(op, MaxPool2d | AvgPool2d | Conv2d):
        from networks.model import conv_output_size

        if isinstance(op, MaxPool2d):
            (kh, kw), (sh, sw), p = op.kernel, op.stride, op.padding
            c = shape[-1]
        elif isinstance(op, AvgPool2d):
            (kh, kw), (sh, sw), p = op.kernel, op._stride, 0
            c = shape[-1]
        else:
            kh, kw = op.weight.shape[2:]
            sh = sw = op.stride[0]
            p = op.padding[0]
            c = op.weight.shape[0]
        return (conv_output_size(shape[0], kh, sh, p), conv_output_size(shape[1], kw, sw, p),
                c)
    return shape
