"""The backbone of an interference network: any shared network with ``K * C`` outputs.

The authors use a LeNet-style CNN on MNIST, DLA on CIFAR-10 and a pretrained
ResNet-152 on ImageNet; here the architecture is a parameter, so the same
defense trains a small CNN on a CPU or a ResNet on a GPU.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from robustlearn.networks import MLP, ResNet, SmallCNN

#: Built-in architectures and their default constructor parameters.
ARCHITECTURES = {
    "small_cnn": dict(channels=(32, 64), hidden=128),
    "resnet": dict(width=16, blocks=(2, 2, 2, 2)),
    "mlp": dict(hidden_layer_sizes=(256, 256)),
}


def build_network(architecture, params, input_shape, n_outputs, standardize=True):
    """The backbone mapping (n, C, H, W) inputs to ``n_outputs`` joint logits.

    Parameters
    ----------
    architecture : {"small_cnn", "resnet", "mlp"} or callable
        A callable is called as ``architecture(input_shape, n_outputs, **params)``
        and must return a ``torch.nn.Module``.
    params : dict or None
        Constructor parameters, overriding the defaults of :data:`ARCHITECTURES`
        (``channels``/``hidden`` of :class:`~robustlearn.networks.SmallCNN`,
        ``width``/``blocks`` of :class:`~robustlearn.networks.ResNet`,
        ``hidden_layer_sizes`` of :class:`~robustlearn.networks.MLP`).
    input_shape : tuple (C, H, W)
    n_outputs : int
    standardize : bool, default=True
        Put a per-channel standardisation (batch norm without affine parameters,
        running statistics at prediction) in front of the backbone: the squashed,
        noisy inputs are far from zero mean and unit scale (``exp`` maps them to
        [1, 3.7] on MNIST), which stalls a small CNN without normalisation; the
        authors' CIFAR-10 script normalises too.
    """
    backbone = _backbone(architecture, dict(params or {}), input_shape, n_outputs)
    if not standardize:
        return backbone
    return nn.Sequential(nn.BatchNorm2d(input_shape[0], affine=False), backbone)


def _backbone(architecture, params, input_shape, n_outputs):
    if callable(architecture):
        return architecture(tuple(input_shape), n_outputs, **params)
    settings = {**ARCHITECTURES[architecture], **params}
    if architecture == "small_cnn":
        return SmallCNN(input_shape, tuple(settings["channels"]), int(settings["hidden"]),
                        n_outputs)
    if architecture == "resnet":
        return ResNet(input_shape, n_outputs, width=int(settings["width"]),
                      blocks=tuple(settings["blocks"]))
    return MLP(int(np.prod(input_shape)), tuple(settings["hidden_layer_sizes"]), n_outputs)
