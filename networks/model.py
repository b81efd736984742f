"""Layers and networks whose every layer is ``phi(W @ X + b)``.

Layout convention
-----------------
Between layers, activations are stored as a ``(features, batch)`` matrix, one
column per image.  For convolutional layers the features of one image are its
``(C, H, W)`` feature map flattened in C-order (channel slowest), so a dense
layer after a convolution sees the usual "flatten".  A layer computes::

    X = layer.to_columns(h)            # (n, P)   n = W.shape[1]
    Z = layer.W @ X + layer.b[:, None] # (m, P)   pre-activations (inner products)
    h_next = layer.from_columns(layer.phi(Z))

For a dense layer ``P = batch`` and both ``to_columns`` and ``from_columns``
are the identity.  For a convolution ``to_columns`` is im2col: column
``p = (b, i, j)`` (batch slowest) of ``X`` is the zero-padded input patch under
output pixel ``(i, j)`` of image ``b``, its rows ordered ``(c, ki, kj)``, which
matches ``W = kernel.reshape(out_channels, in_channels * kh * kw)``.
``from_columns`` only reorders ``(out_channels, batch*Ho*Wo)`` into the
``(out_channels*Ho*Wo, batch)`` layout; there is no pooling (the CNN
downsamples with stride-2 convolutions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations

__all__ = ["Layer", "Network", "im2col", "col2im", "conv_output_size"]


def conv_output_size(size, kernel, stride, padding):
    """Spatial output size of a convolution.

    Parameters
    ----------
    size, kernel, stride, padding : int
        Input size, kernel size, stride and zero padding along one axis.

    Returns
    -------
    int
    """
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kernel, stride=1, padding=0):
    """Patch matrix of a batch of images.

    Parameters
    ----------
    x : numpy.ndarray
        Images, shape (B, C, H, W).
    kernel : tuple of int
        ``(kh, kw)``.
    stride, padding : int
        Stride and symmetric zero padding.

    Returns
    -------
    numpy.ndarray
        Shape ``(C*kh*kw, B*Ho*Wo)``; rows ordered ``(c, ki, kj)``, columns
        ``(b, i, j)``, both C-order.
    """
    b, c, h, w = x.shape
    kh, kw = kernel
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((c, kh, kw, b, ho, wo), dtype=x.dtype)
    for ki in range(kh):
        for kj in range(kw):
            win = xp[:, :, ki:ki + stride * ho:stride, kj:kj + stride * wo:stride]
            cols[:, ki, kj] = win.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, b * ho * wo)


def col2im(cols, x_shape, kernel, stride=1, padding=0):
    """Adjoint of :func:`im2col` (sums overlapping patch entries).

    Parameters
    ----------
    cols : numpy.ndarray
        Shape ``(C*kh*kw, B*Ho*Wo)``.
    x_shape : tuple of int
        ``(B, C, H, W)`` of the image batch.
    kernel : tuple of int
        ``(kh, kw)``.
    stride, padding : int
        Stride and symmetric zero padding.

    Returns
    -------
    numpy.ndarray
        Shape ``(B, C, H, W)``.
    """
    b, c, h, w = x_shape
    kh, kw = kernel
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    cols = cols.reshape(c, kh, kw, b, ho, wo)
    xp = np.zeros((b, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for ki in range(kh):
        for kj in range(kw):
            xp[:, :, ki:ki + stride * ho:stride, kj:kj + stride * wo:stride] += (
                cols[:, ki, kj].transpose(1, 0, 2, 3)
            )
    return xp[:, :, padding:padding + h, padding:padding + w]


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer ``h -> phi(W @ to_columns(h) + b)``.

    Parameters
    ----------
    kind : {"dense", "conv"}
        Layer type.
    W : numpy.ndarray
        float64 weights, shape (m, n); for "conv" the matrix
        ``(out_channels, in_channels*kh*kw)``.
    b : numpy.ndarray
        float64 biases, shape (m,).
    activation : str
        One of :data:`networks.activations.ACTIVATIONS`.
    in_shape : tuple of int, optional
        ``(C, H, W)`` input feature map (conv only).
    kernel : tuple of int, optional
        ``(kh, kw)`` (conv only).
    stride : int
        Convolution stride (conv only).
    padding : int
        Symmetric zero padding (conv only).
    """

    kind: str
    W: np.ndarray
    b: np.ndarray
    activation: str
    in_shape: tuple | None = None
    kernel: tuple | None = None
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        if self.kind not in ("dense", "conv"):
            raise ValueError(f"unknown layer kind {self.kind!r}")
        if self.activation not in activations.ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        m, n = self.W.shape
        if self.b.shape != (m,):
            raise ValueError("b must have shape (W.shape[0],)")
        if self.kind == "conv":
            c, _, _ = self.in_shape
            kh, kw = self.kernel
            if n != c * kh * kw:
                raise ValueError("conv W must have in_channels*kh*kw columns")

    # -- shapes -----------------------------------------------------------
    @property
    def out_shape(self):
        """Output shape of one image: ``(m,)`` or ``(out_channels, Ho, Wo)``."""
        if self.kind == "dense":
            return (self.W.shape[0],)
        _, h, w = self.in_shape
        kh, kw = self.kernel
        return (
            self.W.shape[0],
            conv_output_size(h, kh, self.stride, self.padding),
            conv_output_size(w, kw, self.stride, self.padding),
        )

    @property
    def n_in(self):
        """Number of input features of one image."""
        return self.W.shape[1] if self.kind == "dense" else int(np.prod(self.in_shape))

    @property
    def n_out(self):
        """Number of output features of one image."""
        return int(np.prod(self.out_shape))

    @property
    def n_params(self):
        """Number of weights plus biases."""
        return self.W.size + self.b.size

    # -- layout -------------------------------------------------------------
    def _batch(self, h):
        h = np.asarray(h)
        if h.ndim == 1:
            h = h[:, None]
        if h.shape[0] != self.n_in:
            raise ValueError(f"expected {self.n_in} input features, got shape {h.shape}")
        return h

    def to_columns(self, h):
        """Matrix ``X`` with ``pre-activation = W @ X + b[:, None]``.

        Parameters
        ----------
        h : numpy.ndarray
            Input, shape ``(n_in, batch)`` (or ``(n_in,)`` for one image).

        Returns
        -------
        numpy.ndarray
            ``h`` itself for dense layers; the im2col patch matrix
            ``(C*kh*kw, batch*Ho*Wo)`` for conv layers.
        """
        h = self._batch(h)
        if self.kind == "dense":
            return h
        x = h.T.reshape((h.shape[1],) + tuple(self.in_shape))
        return im2col(x, self.kernel, self.stride, self.padding)

    def from_columns(self, v):
        """Reorder a ``(m, P)`` result of ``W @ X`` into the layer output layout.

        Parameters
        ----------
        v : numpy.ndarray
            Shape ``(m, P)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_out, batch)``; identity for dense layers.
        """
        if self.kind == "dense":
            return v
        m, ho, wo = self.out_shape
        batch = v.shape[1] // (ho * wo)
        return v.reshape(m, batch, ho, wo).transpose(0, 2, 3, 1).reshape(m * ho * wo, batch)

    def from_columns_adjoint(self, g):
        """Adjoint (= inverse) of :meth:`from_columns`, used by backprop.

        Parameters
        ----------
        g : numpy.ndarray
            Shape ``(n_out, batch)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(m, P)``.
        """
        if self.kind == "dense":
            return g
        m, ho, wo = self.out_shape
        batch = g.shape[1]
        return g.reshape(m, ho, wo, batch).transpose(0, 3, 1, 2).reshape(m, batch * ho * wo)

    def to_columns_adjoint(self, g_cols, batch):
        """Adjoint of :meth:`to_columns` (col2im), used by backprop.

        Parameters
        ----------
        g_cols : numpy.ndarray
            Shape ``(n, P)``.
        batch : int
            Number of images.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_in, batch)``.
        """
        if self.kind == "dense":
            return g_cols
        x = col2im(g_cols, (batch,) + tuple(self.in_shape), self.kernel, self.stride,
                   self.padding)
        return x.reshape(batch, -1).T

    # -- math -------------------------------------------------------------
    def phi(self, z):
        """Activation of this layer (see :mod:`networks.activations`)."""
        return activations.phi(self.activation, z)

    def dphi(self, z):
        """Derivative of the activation of this layer."""
        return activations.dphi(self.activation, z)

    def kappa(self, z):
        """Condition number ``|z phi'(z) / phi(z)|`` of the activation."""
        return activations.kappa(self.activation, z)

    def preactivation(self, h, dtype=np.float64):
        """``W @ to_columns(h) + b[:, None]`` computed with numpy in ``dtype``."""
        x = self.to_columns(np.asarray(h, dtype=dtype))
        return self.W.astype(dtype) @ x + self.b.astype(dtype)[:, None]

    def forward(self, h, dtype=np.float64):
        """Layer output ``from_columns(phi(preactivation(h)))``, shape (n_out, batch)."""
        return self.from_columns(self.phi(self.preactivation(h, dtype)))


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network: a name and a list of :class:`Layer`.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"mlp-relu"``.
    layers : list of Layer
        Layers in order; the last one has the identity activation (logits).
    """

    name: str
    layers: list

    @property
    def n_params(self):
        """Total number of weights and biases."""
        return sum(layer.n_params for layer in self.layers)

    @property
    def input_size(self):
        """Number of input features (784)."""
        return self.layers[0].n_in

    def forward(self, x, dtype=np.float64):
        """Reference forward pass with numpy matmuls in ``dtype``.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, shape (N, 784) (or (784,)).
        dtype : numpy dtype, optional
            Working precision of matmuls and activations (default float64).

        Returns
        -------
        numpy.ndarray
            Logits, shape (N, 10).
        """
        x = np.asarray(x)
        single = x.ndim == 1
        h = np.asarray(x, dtype=dtype).reshape(-1, self.input_size).T
        for layer in self.layers:
            h = layer.forward(h, dtype)
        out = h.T
        return out[0] if single else out

    def predict(self, x, dtype=np.float64):
        """Predicted classes ``argmax(forward(x))``, shape (N,)."""
        return np.argmax(self.forward(x, dtype), axis=-1)

    def accuracy(self, x, y, dtype=np.float64):
        """Fraction of correctly classified inputs.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, shape (N, 784).
        y : numpy.ndarray
            Integer labels, shape (N,).
        dtype : numpy dtype, optional
            Working precision of the forward pass.

        Returns
        -------
        float
        """
        return float(np.mean(self.predict(x, dtype) == np.asarray(y)))
