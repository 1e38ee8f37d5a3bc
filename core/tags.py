"""Capability tags of a defense: the one place evaluation code reads them from."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class DefenseTags:
    """What an attacker and an evaluator need to know about a defense.

    Attributes
    ----------
    iterative : bool
        Prediction runs an inner loop (iterations, a fixed-point solver); attacks
        should add BPDA and check convergence.
    stochastic : bool
        Prediction draws random numbers; attacks should use EOT.
    has_detector : bool
        ``detect`` flags inputs; attacks should be detector-aware.
    custom_detector : bool
        The detector is the defense's own, not the default max-softmax one.
    lipschitz_bound : bool
        The defense can report a certified Lipschitz bound.
    adversarially_trained : bool
        Training used adversarial examples.
    gradient_attacks : bool
        ``logits`` is differentiable (False for defenses attackable only by black-box attacks).
    """

    iterative: bool = False
    stochastic: bool = False
    has_detector: bool = True
    custom_detector: bool = False
    lipschitz_bound: bool = False
    adversarially_trained: bool = False
    gradient_attacks: bool = True

    def to_dict(self) -> dict:
        """The tags as a plain dict (for reports)."""
        return asdict(self)


def get_defense_tags(estimator) -> DefenseTags:
    """Return the :class:`DefenseTags` of ``estimator`` (defaults for other estimators)."""
    getter = getattr(estimator, "__robustlearn_tags__", None)
    if getter is None:
        return DefenseTags(has_detector=hasattr(estimator, "detect"))
    return getter()
