"""A nearest-prototype classifier as a robustlearn defense."""

import torch
from torch import nn

from robustlearn import BaseDefense
from robustlearn.validation import check_float


class PrototypeLayer(nn.Module):
    """Logits ``-||x - p_k||^2 / temperature`` for learned prototypes ``p_k``.

    The softmax over negative squared Euclidean distances is the classifier of
    prototypical networks (Snell, Swersky, Zemel, NeurIPS 2017, Eq. 2), here
    with the prototypes learned directly in pixel space.

    Parameters
    ----------
    n_inputs : int
        Values per image.
    n_classes : int
    temperature : float
        Divides the squared distances; larger values give softer probabilities.
    """

    def __init__(self, n_inputs: int, n_classes: int, temperature: float):
        super().__init__()
        self.prototypes = nn.Parameter(0.5 + 0.01 * torch.randn(n_classes, n_inputs))
        self.temperature = temperature

    def forward(self, x):
        flat = x.flatten(1)
        squared = (flat.unsqueeze(1) - self.prototypes.unsqueeze(0)).pow(2).sum(dim=2)
        return -squared / self.temperature


class NearestPrototypeClassifier(BaseDefense):
    """Classify an image by its nearest learned class prototype.

    Parameters
    ----------
    temperature : float, default=1.0
        Scale of the squared distances in the logits (must be > 0).
    **kwargs
        Shared training parameters (``max_epochs``, ``lr``, ``optimizer__*``, ``callbacks``,
        ...), see :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(max_epochs=30, lr=0.05)

    def __init__(
        self,
        temperature=1.0,
        *,
        lr=1e-2,
        **kwargs,
    ):
        self.temperature = temperature
        super().__init__(lr=lr, **kwargs)

    def _validate_params(self):
        super()._validate_params()
        check_float(self.temperature, "temperature", low=0, low_open=True)

    def _build_module(self, input_shape, n_classes):
        n_inputs = input_shape[0] * input_shape[1] * input_shape[2]
        return PrototypeLayer(n_inputs, n_classes, float(self.temperature))
