"""Hook implementations, found through the ``robustlearn.plugins`` entry point."""

import robustlearn

from .defense import NearestPrototypeClassifier


@robustlearn.hookimpl
def register_defenses(register):
    register(
        "nearest-prototype",
        NearestPrototypeClassifier,
        description="One learned prototype per class; logits are negative squared distances.",
        paper="Snell, Swersky, Zemel, Prototypical Networks for Few-shot Learning, NeurIPS 2017",
        capabilities=("has_detector",),
    )
