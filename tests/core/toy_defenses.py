"""Small defenses with known gradient pathologies, for the adaptive-evaluation tests.

Each wraps the same tiny MLP, so their predictions equal a plain model's and
any difference in measured robustness comes from the gradient alone.
"""

from __future__ import annotations

import torch

from robustlearn import BaseDefense, DefenseTags, Surface
from robustlearn.fixed_point import straight_through
from robustlearn.networks import MLP


class _ToyBase(BaseDefense):
    def __init__(self, *, max_epochs=30, **kwargs):
        super().__init__(max_epochs=max_epochs, **kwargs)

    def _build_module(self, input_shape, n_classes):
        return MLP(input_shape[0] * input_shape[1] * input_shape[2], (64,), n_classes)


class VanishingGradientDefense(_ToyBase):
    """An "iterative" defense whose exact gradient is zero; its BPDA surface is the plain MLP.

    The prediction is the MLP's, computed on a detached copy of the input (as a
    loop that saturates would leave it); the declared ``bpda`` surface passes the
    gradient straight through.
    """

    def _forward(self, x):
        return self.module_(x.detach()) + 0.0 * x.flatten(1).sum(1, keepdim=True)

    def __robustlearn_tags__(self):
        return DefenseTags(iterative=True)

    def attack_surfaces(self):
        def bpda(x):
            x = self._as_batch(x)
            return self.module_(straight_through(x.detach(), x))

        return {**super().attack_surfaces(),
                "bpda-identity": Surface(bpda, "bpda", "the MLP, gradient straight through")}


class RandomSignGradientDefense(_ToyBase):
    """A "stochastic" defense whose gradient is 3 g or -g at random; its mean is g.

    Its predictions are the MLP's; without EOT a sign-gradient attack does a
    random walk, with EOT it follows the true gradient (Athalye et al. 2018).
    """

    def _forward(self, x):
        logits = self.module_(x)
        if not torch.is_grad_enabled():
            return logits
        sign = torch.randint(0, 2, (x.shape[0], 1), device=x.device) * 4.0 - 1.0
        return logits.detach() + sign * (logits - logits.detach())

    def __robustlearn_tags__(self):
        return DefenseTags(stochastic=True)
