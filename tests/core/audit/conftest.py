"""Planted faults for the audit: tiny defenses and an attack, each broken in one known way.

Each is the plain MLP baseline with one thing changed, so that exactly the
check meant for that fault has something to find:

- :class:`QuantisedMLP` rounds its input to 5 grey levels inside the forward
  pass (a non-differentiable quantiser: zero gradients, shattered gradients);
- :class:`NoisyMLP` adds Gaussian noise at inference but keeps the default
  tags, which say it is deterministic (so nothing would run EOT);
- :class:`ProbabilityMLP` returns softmax probabilities instead of logits;
- :class:`BorderDetectorMLP` rejects inputs of high total variation, which
  a classifier-only attack's sign perturbations always have, and which a joint
  attack can avoid;
- :class:`SilentSuccessAttack` finds an adversarial point and returns the clean one.
"""

import numpy as np
import pytest
import torch

from robustlearn.attacks.base import BaseAttack
from robustlearn.plugins.baselines import MLPClassifier
from robustlearn.tags import DefenseTags

FAST = dict(hidden_layer_sizes=(64,), max_epochs=15, random_state=0, device="cpu")


class QuantisedMLP(MLPClassifier):
    """MLP whose inference rounds pixels to multiples of 1/4 (``torch.round`` has zero gradient)."""

    def _forward(self, x):
        return self.module_(torch.round(x * 4) / 4)

    def __robustlearn_tags__(self):
        return DefenseTags()


class NoisyMLP(MLPClassifier):
    """MLP with Gaussian input noise at inference, whose tags do not say so."""

    def _forward(self, x):
        return self.module_(x + 0.3 * torch.randn_like(x))

    def __robustlearn_tags__(self):
        return DefenseTags()


class ProbabilityMLP(MLPClassifier):
    """MLP whose forward pass ends in a softmax."""

    def _forward(self, x):
        return torch.softmax(self.module_(x), dim=1)

    def __robustlearn_tags__(self):
        return DefenseTags()


class BorderDetectorMLP(MLPClassifier):
    """MLP whose detector flags ink in the first and last columns (blank in most digits)."""

    def _detect_score(self, x):
        img = x.reshape(len(x), 8, 8)
        return img[:, :, 0].sum(1) + img[:, :, 7].sum(1)

    def __robustlearn_tags__(self):
        return DefenseTags(has_detector=True, custom_detector=True)


class SilentSuccessAttack(BaseAttack):
    """FGSM that queries its adversarial point, then returns the clean input (the bug)."""

    norm = "linf"
    is_minimization = False
    needs_gradient = True

    def __init__(self, epsilon=None, *, estimator=None, surrogate=None, surface="default",
                 batch_size=256, random_state=None):
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size, random_state=random_state)

    def _run(self, victim, x, labels, epsilons):
        x0 = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(victim.logits(x0), labels)
        (grad,) = torch.autograd.grad(loss, x0)
        out = []
        for eps in epsilons:
            adv = (x + eps * grad.sign()).clamp(0, 1)
            with torch.no_grad():
                victim.logits(adv)  # checks the point, then forgets it
            out.append(x.detach().clone())
        return torch.stack(out)


@pytest.fixture(scope="module")
def planted(digits):
    """Fit each planted defense once per module (a few seconds in all)."""
    X, y, _, _ = digits
    models = {}
    for name, cls in (("quantised", QuantisedMLP), ("noisy", NoisyMLP),
                      ("probability", ProbabilityMLP), ("detector", BorderDetectorMLP),
                      ("declared-noisy", DeclaredNoisyMLP)):
        models[name] = cls(**FAST).fit(X, y)
    return models


@pytest.fixture(scope="module")
def test_split(digits):
    _, _, X_test, y_test = digits
    return np.asarray(X_test), np.asarray(y_test)


class DeclaredNoisyMLP(NoisyMLP):
    """The same noisy MLP, with its randomness declared."""

    def __robustlearn_tags__(self):
        return DefenseTags(stochastic=True)
