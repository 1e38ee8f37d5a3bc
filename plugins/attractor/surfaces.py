"""Adaptive-attack surfaces of the attractor defense: maps from images to logits.

Iterating a contracting map shrinks gradients (every factor of the unrolled
Jacobian has eigenvalues below one near the attractors), the failure mode
Athalye, Carlini & Wagner call vanishing gradients ("Obfuscated Gradients Give
a False Sense of Security", ICML 2018). These surfaces let an attacker skip the
loop on the backward pass (BPDA), attack the static one-pass network, or take
the correlation detector into account; :meth:`AttractorClassifier.attack_surfaces`
lists them by name.
"""

from __future__ import annotations

import torch

from .detector import correlation_score
from .dynamics import iterate_to_fixed_point, straight_through


def _run(estimator, x):
    network = estimator.module_
    flat = estimator._as_batch(x).flatten(1)
    return network, flat


def bpda_logits(estimator, x, backward="identity"):
    """Logits with the real iterations forward and a surrogate on the backward pass.

    Parameters
    ----------
    backward : {"identity", "one-pass"}
        ``identity`` treats the whole loop as x_K = x_0 on the backward pass;
        ``one-pass`` differentiates a single pass f(x_0) instead.
    """
    network, flat = _run(estimator, x)
    with torch.no_grad():
        final = iterate_to_fixed_point(
            network.step, flat, max_iter=estimator.max_iter, tol=estimator.tol
        ).x
    surrogate = flat if backward == "identity" else network.step(flat)
    return network.classify(straight_through(final, surrogate))


def one_pass_logits(estimator, x):
    """Logits of the static network ``head(E(x_0))``, without the loop (a transfer source)."""
    network, flat = _run(estimator, x)
    return network.classify(flat)


class DetectorAwareLogits:
    """Logits that reward misclassification only while the detector stays quiet.

    For label y the returned logits are ``l + weight * ReLU(s - t) * onehot(y)``
    with ``s`` the correlation score, ``t`` the detection threshold and ``l``
    the defense's logits (through the iterations, or BPDA with
    ``backward="identity"``). Cross-entropy on y is then
    CE(l, y) minus about ``weight * ReLU(s - t)``: an attacker maximising it
    is pushed out of the detector's region, so a success means "misclassified
    and not flagged" (the joint attack of Carlini & Wagner, "Adversarial
    Examples Are Not Easily Detected", AISec 2017).

    Parameters
    ----------
    estimator : AttractorClassifier
        Fitted.
    weight : float, default=100.0
        Penalty per unit of score above the threshold.
    backward : {"iterations", "identity"}, default="identity"
        Gradient path through the loop for the logits and the score.

    Notes
    -----
    Called as ``surface(x, y)``. Called as ``surface(x)`` (as a generic
    attack does) it uses the defense's own prediction at ``x`` in place of y,
    which penalises detection until the prediction flips.
    """

    def __init__(self, estimator, weight=100.0, backward="identity"):
        self.estimator = estimator
        self.weight = weight
        self.backward = backward

    def __call__(self, x, y=None):
        estimator = self.estimator
        network, flat = _run(estimator, x)
        if self.backward == "identity":
            with torch.no_grad():
                final = iterate_to_fixed_point(
                    network.step, flat, max_iter=estimator.max_iter, tol=estimator.tol
                ).x
            final = straight_through(final, flat)
        else:
            final = iterate_to_fixed_point(
                network.step, flat, max_iter=estimator.max_iter, tol=estimator.tol
            ).x
        logits = network.classify(final)
        excess = torch.relu(correlation_score(flat, final) - estimator.detect_threshold_)
        if y is None:
            y = logits.detach().argmax(dim=1)
        bonus = torch.nn.functional.one_hot(y.to(logits.device), logits.shape[1])
        return logits + self.weight * excess[:, None] * bonus.to(logits.dtype)
