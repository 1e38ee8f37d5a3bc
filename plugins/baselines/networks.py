"""The torch modules of the baselines: a multilayer perceptron and a small conv net."""

from __future__ import annotations

import math

from torch import nn


class MLP(nn.Module):
    """Flatten, then ReLU hidden layers, then a linear readout of logits.

    Parameters
    ----------
    n_inputs : int
    hidden_layer_sizes : tuple of int
    n_classes : int
    """

    def __init__(self, n_inputs: int, hidden_layer_sizes, n_classes: int):
        super().__init__()
        layers = [nn.Flatten()]
        width = n_inputs
        for hidden in hidden_layer_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class SmallCNN(nn.Module):
    """Conv blocks (3x3 conv, ReLU, 2x2 max-pool) then a ReLU hidden layer and logits.

    Pooling is skipped along an axis that is already 1 wide, so flat (1 x d)
    inputs work too.

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    channels : tuple of int
        Output channels of each conv block.
    hidden : int
        Width of the fully connected layer.
    n_classes : int
    """

    def __init__(self, input_shape, channels, hidden: int, n_classes: int):
        super().__init__()
        c, h, w = input_shape
        blocks = []
        for out in channels:
            pool = (2 if h >= 2 else 1, 2 if w >= 2 else 1)
            blocks += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool)]
            c, h, w = out, math.floor(h / pool[0]), math.floor(w / pool[1])
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))
