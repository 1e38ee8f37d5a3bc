"""Networks any defense may build on: an MLP, a small conv net and a ResNet of any width.

Every module maps images (n, C, H, W) in [0, 1] to logits; input
normalisation, where a recipe needs it, is a :class:`Normalize` layer inside the
module, so attacks always work in pixel space.
"""

from __future__ import annotations

import math

import torch
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


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as the first layer of a network.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value, or one per channel.
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if bool((std <= 0).any()):
            raise ValueError(f"std must be positive, got {std.flatten().tolist()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and a residual connection (He et al., CVPR 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet of basic blocks with a width multiplier.

    ``blocks=(2, 2, 2, 2)`` and ``width=64`` is ResNet-18 (He, Zhang, Ren & Sun,
    "Deep Residual Learning for Image Recognition", CVPR 2016) with a 3x3 stem
    for small images; ``width=8`` or ``16`` gives a narrow version that trains
    on a CPU. Stages double the width and halve the resolution.

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    n_classes : int
    width : int, default=64
        Channels of the first stage.
    blocks : tuple of int, default=(2, 2, 2, 2)
        Basic blocks per stage.
    stem_kernel : int, default=3
        Odd kernel size of the stride-1 stem convolution (padded to keep the
        resolution); some recipes use 7 (for example Li et al., NeurIPS 2019,
        and the pixel-similarity regulariser built on it).
    """

    def __init__(self, input_shape, n_classes: int, width: int = 64, blocks=(2, 2, 2, 2),
                 stem_kernel: int = 3):
        super().__init__()
        if stem_kernel < 1 or stem_kernel % 2 == 0:
            raise ValueError(f"stem_kernel must be a positive odd int, got {stem_kernel!r}")
        c = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(c, width, stem_kernel, 1, stem_kernel // 2, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
        )
        stages = []
        channels = width
        for i, count in enumerate(blocks):
            out = width * 2**i
            layers = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(channels, out, stride))
                channels = out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, n_classes)

    def features(self, x):
        """Representations after the stem and after each stage, in order."""
        out = [self.stem(x)]
        for stage in self.stages:
            out.append(stage(out[-1]))
        return out

    def forward(self, x):
        return self.head(self.pool(self.features(x)[-1]).flatten(1))
