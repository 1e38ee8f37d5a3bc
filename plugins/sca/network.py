"""The SCA classifier network: normalisation, stacked SCA layers, dropout, a linear head."""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlearn.fixed_point import straight_through
from robustlearn.networks import Normalize

from .layer import SCALayer


class SCANetwork(nn.Module):
    """``(x - 0.5) / 0.5``, flatten, SCA layers, dropout, linear logits.

    The normalisation is the network's first layer (as in the authors' MNIST
    models), so the network, and every attack on it, takes images in [0, 1].

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    n_classes : int
    width : int
        Units per SCA layer.
    n_layers : int
        Stacked SCA layers; layer k > 1 reconstructs the activity of layer k - 1.
    dropout : float
        Dropout after every SCA layer (training only).
    **layer_params
        T, eta, lambda_, g, clip, inner_gradient of :class:`SCALayer`.
    """

    def __init__(self, input_shape, n_classes, width, n_layers=1, dropout=0.2, **layer_params):
        super().__init__()
        self.normalize = Normalize(0.5, 0.5)
        sizes = [int(math.prod(input_shape))] + [int(width)] * int(n_layers)
        self.sca = nn.ModuleList(SCALayer(d_in, d_out, **layer_params)
                                 for d_in, d_out in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(width), int(n_classes))

    def hidden(self, x, T=None, T_backward=None):
        """Activity of the last SCA layer (before dropout), shape (n, width).

        ``T`` overrides the inner steps of every layer; ``T_backward`` makes each
        layer's inner loop a straight-through estimator (see :meth:`SCALayer.forward`).
        """
        h = self.normalize(x).flatten(1)
        for index, layer in enumerate(self.sca):
            if index:
                h = self.dropout(h)
            h = layer(h, T, T_backward)
        return h

    def forward(self, x, T=None, T_backward=None):
        """Logits, shape (n, n_classes); ``T`` and ``T_backward`` as in :meth:`hidden`."""
        return self.head(self.dropout(self.hidden(x, T, T_backward)))

    def forward_bpda(self, x, T, T_surrogate):
        """Logits of the whole network at ``T`` with the gradient of the whole network at
        ``T_surrogate`` (BPDA at the level of the network rather than of each loop)."""
        with torch.no_grad():
            value = self(x, T)
        return straight_through(value, self(x, T_surrogate))
