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
    certified : {"linf", "l2"} or None
        The defense certifies robustness in this norm (``certified_radius`` and
        ``certify`` work); reports show certified accuracy beside the attacks.
    adversarially_trained : bool
        Training used adversarial examples (listed as a capability by the
        registry and ``robustlearn plugins``, and kept in every report's
        provenance, so leaderboards can tell trained robustness from a defense
        mechanism).
    gradient_attacks : bool
        ``logits`` is differentiable (False for defenses attackable only by black-box attacks).
    """

    iterative: bool = False
    stochastic: bool = False
    has_detector: bool = True
    custom_detector: bool = False
    certified: str | None = None
    adversarially_trained: bool = False
    gradient_attacks: bool = True

    def __post_init__(self):
        if self.certified not in (None, "linf", "l2"):
            raise ValueError(f"certified must be None, 'linf' or 'l2', got {self.certified!r}")

    def capabilities(self) -> tuple:
        """Names of the tags that are set (the capabilities ``robustlearn plugins`` lists)."""
        out = []
        for key, value in asdict(self).items():
            if key == "gradient_attacks":
                if not value:
                    out.append("no_gradient")
            elif key == "certified":
                if value:
                    out.append(f"certified_{value}")
            elif value:
                out.append(key)
        return tuple(out)

    def to_dict(self) -> dict:
        """The tags as a plain dict (for reports)."""
        return asdict(self)


def get_defense_tags(estimator) -> DefenseTags:
    """Return the :class:`DefenseTags` of ``estimator`` (defaults for other estimators)."""
    getter = getattr(estimator, "__robustlearn_tags__", None)
    if getter is None:
        from .composition import is_pipeline, pipeline_tags

        if is_pipeline(estimator):
            return pipeline_tags(estimator)
        return DefenseTags(has_detector=hasattr(estimator, "detect"))
    return getter()
